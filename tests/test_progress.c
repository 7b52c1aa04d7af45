/* Unit tests for common/progress.c: the transfer lines of diode-tx's progress file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "progress.h"

static const char golden[] = "T\t17\tsending\t123456\t3000000\t1441792\t1\t3\t-\tdir/sub/a b.bin\n";

static void
test_progress_format_golden_line(void **state)
{
	struct dd_progress_entry e = {
		.id = 17, .state = DD_PROGRESS_SENDING, .ino = 123456, .size = 3000000,
		.done = 1441792, .pass = 1, .passes = 3, .path = "dir/sub/a b.bin",
	};
	char out[DD_PROGRESS_LINE_MAX];

	(void)state;
	assert_int_equal(dd_progress_format(out, sizeof(out), &e), (int)strlen(golden));
	assert_string_equal(out, golden);
	/* Too small a buffer: -ENOSPC, never a cut line. */
	assert_int_equal(dd_progress_format(out, 20, &e), -ENOSPC);
}

static void
test_progress_parse_golden_line(void **state)
{
	struct dd_progress_entry e;

	(void)state;
	assert_int_equal(dd_progress_parse(&e, golden, strlen(golden) - 1), 0);
	assert_int_equal(e.id, 17);
	assert_int_equal(e.state, DD_PROGRESS_SENDING);
	assert_int_equal(e.ino, 123456);
	assert_int_equal(e.size, 3000000);
	assert_int_equal(e.done, 1441792);
	assert_int_equal(e.pass, 1);
	assert_int_equal(e.passes, 3);
	assert_int_equal(e.reason_len, 0);
	assert_int_equal(e.path_len, strlen("dir/sub/a b.bin"));
	assert_memory_equal(e.path, "dir/sub/a b.bin", e.path_len);
}

static void
test_progress_round_trips_every_state_with_reason(void **state)
{
	for (int s = 0; s < DD_PROGRESS_STATES; s++) {
		struct dd_progress_entry in = {
			.id = UINT32_MAX, .state = (enum dd_progress_state)s, .ino = UINT64_MAX,
			.size = UINT64_MAX, .done = 0, .pass = 254, .passes = 255, .path = "x",
			.reason = s == DD_PROGRESS_ABANDONED ? "file changed while being sent" : NULL,
		}, out;
		char line[DD_PROGRESS_LINE_MAX];
		int n = dd_progress_format(line, sizeof(line), &in);

		(void)state;
		assert_true(n > 0);
		assert_int_equal(dd_progress_parse(&out, line, (size_t)n - 1), 0);
		assert_int_equal(out.id, in.id);
		assert_int_equal(out.state, in.state);
		assert_true(out.ino == in.ino && out.size == in.size && out.done == 0);
		assert_int_equal(out.pass, 254);
		assert_int_equal(out.passes, 255);
		if (in.reason != NULL) {
			assert_int_equal(out.reason_len, strlen(in.reason));
			assert_memory_equal(out.reason, in.reason, out.reason_len);
		}
		assert_string_equal(dd_progress_state_name(out.state), dd_progress_state_name(in.state));
	}
}

static void
test_progress_format_rejects_separators_in_path_or_reason(void **state)
{
	struct dd_progress_entry e = { .id = 1, .passes = 1, .path = "a\tb" };
	char out[256];

	(void)state;
	assert_int_equal(dd_progress_format(out, sizeof(out), &e), -EINVAL);
	e.path = "a\nb";
	assert_int_equal(dd_progress_format(out, sizeof(out), &e), -EINVAL);
	e.path = "";
	assert_int_equal(dd_progress_format(out, sizeof(out), &e), -EINVAL);
	e.path = "ok";
	e.reason = "bad\treason";
	assert_int_equal(dd_progress_format(out, sizeof(out), &e), -EINVAL);
	e.reason = NULL;
	e.state = DD_PROGRESS_STATES;
	assert_int_equal(dd_progress_format(out, sizeof(out), &e), -EINVAL);
}

static void
assert_rejected(const char *line)
{
	struct dd_progress_entry e;

	memset(&e, 0x5a, sizeof(e));
	assert_int_equal(dd_progress_parse(&e, line, strlen(line)), -EBADMSG);
	/* Defined output on failure: all zero. */
	assert_null(e.path);
	assert_int_equal(e.size, 0);
}

static void
test_progress_parse_rejects_every_truncation(void **state)
{
	size_t len = strlen(golden) - 1;

	(void)state;
	/* Any cut that ends inside the numbers or before the path. */
	for (size_t n = 0; n < len; n++) {
		struct dd_progress_entry e;
		int rc = dd_progress_parse(&e, golden, n);
		const char *path_start = strstr(golden, "\t-\t") + 3;

		if (golden + n > path_start)
			assert_int_equal(rc, 0); /* a shorter path is still a line */
		else
			assert_int_equal(rc, -EBADMSG);
	}
}

static void
test_progress_parse_rejects_malformed_fields(void **state)
{
	(void)state;
	assert_rejected("X\t1\tsending\t1\t10\t5\t0\t1\t-\tp");        /* tag */
	assert_rejected("T\t1\tsendin\t1\t10\t5\t0\t1\t-\tp");         /* state */
	assert_rejected("T\t1\tsending\t1\t10\t11\t0\t1\t-\tp");       /* done > size */
	assert_rejected("T\t1\tsending\t1\t10\t5\t1\t1\t-\tp");        /* pass >= passes */
	assert_rejected("T\t1\tsending\t1\t10\t5\t0\t0\t-\tp");        /* passes 0 */
	assert_rejected("T\t1\tsending\t1\t10\t5\t0\t256\t-\tp");      /* passes > 255 */
	assert_rejected("T\t4294967296\tsending\t1\t10\t5\t0\t1\t-\tp"); /* id > 32 bits */
	assert_rejected("T\t1\tsending\t1\t18446744073709551616\t5\t0\t1\t-\tp"); /* overflow */
	assert_rejected("T\t+1\tsending\t1\t10\t5\t0\t1\t-\tp");       /* sign */
	assert_rejected("T\t01\tsending\t1\t10\t5\t0\t1\t-\tp");       /* leading zero */
	assert_rejected("T\t-1\tsending\t1\t10\t5\t0\t1\t-\tp");
	assert_rejected("T\t1\tsending\t1\t\t5\t0\t1\t-\tp");          /* empty number */
	assert_rejected("T\t1\tsending\t1\t10\t5\t0\t1\t\tp");         /* empty reason */
	assert_rejected("T\t1\tsending\t1\t10\t5\t0\t1\t-\t");         /* empty path */
	assert_rejected("T\t1\tsending\t1\t10\t5\t0\t1\t-\tp\tq");     /* tab in path */
	assert_rejected("T\t1\tsending\t1\t10\t5\t0\t1\t-\tp\nq");     /* newline */
}

static void
test_progress_parse_rejects_oversize_and_nul(void **state)
{
	static char big[DD_PROGRESS_LINE_MAX + 16];
	struct dd_progress_entry e;
	const char nul[] = "T\t1\tsending\t1\t10\t5\t0\t1\t-\tp\0q";
	int n = snprintf(big, sizeof(big), "T\t1\tsending\t1\t10\t5\t0\t1\t-\t");

	(void)state;
	memset(big + n, 'a', sizeof(big) - 1 - (size_t)n);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(dd_progress_parse(&e, big, strlen(big)), -EBADMSG);
	assert_int_equal(dd_progress_parse(&e, nul, sizeof(nul) - 1), -EBADMSG);
}

static void
test_progress_parse_survives_bit_flips(void **state)
{
	char line[128];
	size_t len = strlen(golden) - 1;

	(void)state;
	for (size_t i = 0; i < len; i++)
		for (int b = 0; b < 8; b++) {
			struct dd_progress_entry e;

			memcpy(line, golden, len);
			line[i] ^= (char)(1 << b);
			if (dd_progress_parse(&e, line, len) == 0) {
				/* Accepted: still self-consistent. */
				assert_true(e.done <= e.size);
				assert_true(e.pass < e.passes);
				assert_true(e.path_len > 0);
				assert_null(memchr(e.path, '\t', e.path_len));
			}
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_progress_format_golden_line),
		cmocka_unit_test(test_progress_parse_golden_line),
		cmocka_unit_test(test_progress_round_trips_every_state_with_reason),
		cmocka_unit_test(test_progress_format_rejects_separators_in_path_or_reason),
		cmocka_unit_test(test_progress_parse_rejects_every_truncation),
		cmocka_unit_test(test_progress_parse_rejects_malformed_fields),
		cmocka_unit_test(test_progress_parse_rejects_oversize_and_nul),
		cmocka_unit_test(test_progress_parse_survives_bit_flips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
