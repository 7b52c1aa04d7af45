/* Unit tests for common/recq.c: order through memory and file, bounds, overflow, saving and reloading. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recq.h"

#define MAXREC 300
#define FILE_CAP (64 * 1024)

struct fixture {
	char dir[64];
	int dirfd;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_recq.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	fx->dirfd = open(fx->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = fx;
	return fx->dirfd < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	close(fx->dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

/* Record i: a length that varies (0 included) and bytes that name it. */
static size_t
make_rec(uint8_t *buf, uint64_t i)
{
	size_t len = (size_t)((i * 37) % 120);

	for (size_t j = 0; j < len; j++)
		buf[j] = (uint8_t)(i + j);
	if (len >= 8)
		memcpy(buf, &i, 8);
	return len;
}

static void
expect_rec(struct dd_recq *q, uint64_t i)
{
	uint8_t want[MAXREC];
	const uint8_t *rec;
	size_t len, wlen = make_rec(want, i);

	assert_int_equal(dd_recq_peek(q, &rec, &len), 0);
	if (len != wlen || memcmp(rec, want, len) != 0)
		fail_msg("record %llu: got %zu bytes, wanted %zu", (unsigned long long)i, len, wlen);
	dd_recq_pop(q);
}

static void
push_rec(struct dd_recq *q, uint64_t i)
{
	uint8_t buf[MAXREC];

	assert_int_equal(dd_recq_push(q, buf, make_rec(buf, i)), 0);
}

static void
test_recq_memory_keeps_order_across_wraps(void **state)
{
	struct dd_recq *q;
	const uint8_t *rec;
	size_t len;
	uint64_t in = 0, out = 0;

	(void)state;
	assert_int_equal(dd_recq_new(&q, 1000, MAXREC), 0);
	/* Push a few, take a few, many times: the ring wraps at every offset. */
	for (int round = 0; round < 2000; round++) {
		for (int i = 0; i < 1 + round % 5; i++) {
			uint8_t buf[MAXREC];
			size_t n = make_rec(buf, in);

			if (dd_recq_push(q, buf, n) != 0)
				break;
			in++;
		}
		for (int i = 0; i < 1 + round % 4 && out < in; i++)
			expect_rec(q, out++);
	}
	while (out < in)
		expect_rec(q, out++);
	assert_int_equal(dd_recq_peek(q, &rec, &len), -ENOENT);
	assert_int_equal(dd_recq_records(q), 0);
	assert_int_equal(dd_recq_bytes(q), 0);
	dd_recq_free(q);
}

static void
test_recq_memory_only_refuses_when_full(void **state)
{
	struct dd_recq *q;
	uint8_t buf[100];
	int n = 0;

	(void)state;
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(dd_recq_new(&q, 1040, 100), 0);
	while (dd_recq_push(q, buf, 100) == 0)
		n++;
	assert_int_equal(n, 10); /* 104-byte frames */
	assert_int_equal(dd_recq_push(q, buf, 100), -ENOSPC);
	assert_int_equal(dd_recq_records(q), 10);
	assert_int_equal(dd_recq_bytes(q), 1000);
	assert_int_equal(dd_recq_push(q, buf, 101), -ENOSPC);
	dd_recq_free(q);
}

static void
test_recq_push_drop_oldest_keeps_the_newest_in_order(void **state)
{
	struct dd_recq *q;
	uint64_t dropped, total = 0;
	uint64_t first;

	(void)state;
	assert_int_equal(dd_recq_new(&q, 4096, MAXREC), 0);
	for (uint64_t i = 0; i < 1000; i++) {
		uint8_t buf[MAXREC];

		assert_int_equal(dd_recq_push_drop_oldest(q, buf, make_rec(buf, i), &dropped), 0);
		total += dropped;
	}
	assert_true(total > 0);
	assert_int_equal(total + dd_recq_records(q), 1000);
	first = total;
	for (uint64_t i = first; i < 1000; i++)
		expect_rec(q, i);
	assert_int_equal(dd_recq_records(q), 0);
	dd_recq_free(q);
}

static void
test_recq_spills_to_file_and_keeps_order(void **state)
{
	struct fixture *fx = *state;
	struct dd_recq *q;
	uint64_t recovered;
	char note[256];
	uint64_t in = 0, out = 0;

	assert_int_equal(dd_recq_new(&q, 2048, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, note,
					 sizeof(note)), 0);
	assert_int_equal(recovered, 0);
	assert_string_equal(note, "");
	/* Far more than memory holds, taken out in uneven steps so the file
	 * ring wraps several times. */
	for (int round = 0; round < 400; round++) {
		for (int i = 0; i < 40; i++) {
			uint8_t buf[MAXREC];

			if (dd_recq_push(q, buf, make_rec(buf, in)) != 0)
				break;
			in++;
		}
		for (int i = 0; i < 30 + round % 20 && out < in; i++)
			expect_rec(q, out++);
	}
	assert_true(dd_recq_file_records(q) > 0 || out == in);
	while (out < in)
		expect_rec(q, out++);
	assert_true(in > 10000);
	assert_int_equal(dd_recq_records(q), 0);
	dd_recq_free(q);
}

static void
test_recq_refuses_when_memory_and_file_are_full(void **state)
{
	struct fixture *fx = *state;
	struct dd_recq *q;
	uint64_t recovered, n = 0;
	uint8_t buf[100];

	memset(buf, 'y', sizeof(buf));
	assert_int_equal(dd_recq_new(&q, 1040, 100), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, NULL, 0), 0);
	while (dd_recq_push(q, buf, 100) == 0)
		n++;
	assert_int_equal(n, 10 + FILE_CAP / 104);
	assert_int_equal(dd_recq_push(q, buf, 0), 0); /* a 4-byte frame still fits */
	assert_int_equal(dd_recq_push(q, buf, 100), -ENOSPC);
	dd_recq_free(q);
}

static void
test_recq_drop_oldest_with_file_drops_oldest_first(void **state)
{
	struct fixture *fx = *state;
	struct dd_recq *q;
	uint64_t recovered, dropped, total = 0;

	assert_int_equal(dd_recq_new(&q, 2048, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, NULL, 0), 0);
	for (uint64_t i = 0; i < 5000; i++) {
		uint8_t buf[MAXREC];

		assert_int_equal(dd_recq_push_drop_oldest(q, buf, make_rec(buf, i), &dropped), 0);
		total += dropped;
	}
	assert_true(total > 0);
	assert_int_equal(total + dd_recq_records(q), 5000);
	for (uint64_t i = total; i < 5000; i++)
		expect_rec(q, i);
	dd_recq_free(q);
}

static void
test_recq_save_and_reload_keeps_every_record_in_order(void **state)
{
	struct fixture *fx = *state;
	struct dd_recq *q;
	uint64_t recovered, dropped, in = 0, out = 0;
	struct iovec front[2] = { { "front-0", 7 }, { "front-1", 7 } };
	const uint8_t *rec;
	size_t len;
	char note[256];

	assert_int_equal(dd_recq_new(&q, 2048, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, NULL, 0), 0);
	for (; in < 300; in++)
		push_rec(q, in);
	for (; out < 20; out++)
		expect_rec(q, out); /* memory now holds some, the file the rest */
	assert_int_equal(dd_recq_save(q, front, 2, &dropped), 0);
	assert_int_equal(dropped, 0);
	dd_recq_free(q);

	assert_int_equal(dd_recq_new(&q, 2048, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, note,
					 sizeof(note)), 0);
	assert_string_equal(note, "");
	assert_int_equal(recovered, 2 + 300 - 20);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(dd_recq_peek(q, &rec, &len), 0);
		assert_int_equal(len, 7);
		assert_memory_equal(rec, front[i].iov_base, 7);
		dd_recq_pop(q);
	}
	/* New records go after the old ones. */
	push_rec(q, in++);
	while (out < in)
		expect_rec(q, out++);
	assert_int_equal(dd_recq_peek(q, &rec, &len), -ENOENT);
	dd_recq_free(q);
}

static void
test_recq_save_without_file_counts_everything_dropped(void **state)
{
	struct dd_recq *q;
	uint64_t dropped;
	struct iovec front[1] = { { "x", 1 } };

	(void)state;
	assert_int_equal(dd_recq_new(&q, 2048, MAXREC), 0);
	for (uint64_t i = 0; i < 5; i++)
		push_rec(q, i);
	assert_int_equal(dd_recq_save(q, front, 1, &dropped), 0);
	assert_int_equal(dropped, 6);
	assert_int_equal(dd_recq_records(q), 0);
	dd_recq_free(q);
}

static void
test_recq_save_drops_the_oldest_when_the_file_is_full(void **state)
{
	struct fixture *fx = *state;
	struct dd_recq *q;
	uint64_t recovered, dropped, n = 0;
	uint8_t buf[100];
	const uint8_t *rec;
	size_t len;

	assert_int_equal(dd_recq_new(&q, 1040, 100), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, NULL, 0), 0);
	for (;; n++) {
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &n, sizeof(n));
		if (dd_recq_push(q, buf, 100) != 0)
			break;
	}
	/* Memory holds records 0..9; the file has no room left for them. */
	assert_int_equal(dd_recq_save(q, NULL, 0, &dropped), 0);
	assert_int_equal(dropped, 10);
	assert_int_equal(dd_recq_peek(q, &rec, &len), 0);
	memcpy(&n, rec, sizeof(n));
	assert_int_equal(n, 10);
	dd_recq_free(q);
}

static void
test_recq_attach_empties_a_damaged_file(void **state)
{
	struct fixture *fx = *state;
	struct dd_recq *q;
	uint64_t recovered;
	char note[256];
	int fd = openat(fx->dirfd, "j", O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "this is not a journal at all, just some text\n", 45), 45);
	close(fd);
	assert_int_equal(dd_recq_new(&q, 2048, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, note,
					 sizeof(note)), 0);
	assert_int_equal(recovered, 0);
	assert_non_null(strstr(note, "emptied"));
	push_rec(q, 1);
	expect_rec(q, 1);
	dd_recq_free(q);
}

static void
test_recq_attach_empties_a_file_with_bad_frames(void **state)
{
	struct fixture *fx = *state;
	struct dd_recq *q;
	uint64_t recovered, dropped;
	char note[256];
	int fd;
	uint8_t junk[4] = { 0xff, 0xff, 0xff, 0xf0 };

	assert_int_equal(dd_recq_new(&q, 1024, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, NULL, 0), 0);
	for (uint64_t i = 0; i < 100; i++)
		push_rec(q, i);
	assert_int_equal(dd_recq_save(q, NULL, 0, &dropped), 0);
	dd_recq_free(q);
	fd = openat(fx->dirfd, "j", O_WRONLY);
	assert_true(fd >= 0);
	/* The length of the first record that went to the file (ring offset 0;
	 * those saved from memory were put in front of it, at the end of the ring). */
	assert_int_equal(pwrite(fd, junk, 4, 4096), 4);
	close(fd);
	assert_int_equal(dd_recq_new(&q, 1024, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, note,
					 sizeof(note)), 0);
	assert_non_null(strstr(note, "cannot be read back"));
	assert_int_equal(dd_recq_records(q), 0);
	dd_recq_free(q);
}

static void
test_recq_attach_keeps_an_earlier_size_while_it_holds_records(void **state)
{
	struct fixture *fx = *state;
	struct dd_recq *q;
	uint64_t recovered, dropped;
	char note[256];

	assert_int_equal(dd_recq_new(&q, 1024, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", FILE_CAP, &recovered, NULL, 0), 0);
	for (uint64_t i = 0; i < 50; i++)
		push_rec(q, i);
	assert_int_equal(dd_recq_save(q, NULL, 0, &dropped), 0);
	dd_recq_free(q);
	assert_int_equal(dd_recq_new(&q, 1024, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", 2 * FILE_CAP, &recovered, note,
					 sizeof(note)), 0);
	assert_int_equal(recovered, 50);
	assert_non_null(strstr(note, "earlier size"));
	for (uint64_t i = 0; i < 50; i++)
		expect_rec(q, i);
	dd_recq_free(q);
}

static void
test_recq_new_and_attach_refuse_bad_sizes(void **state)
{
	struct fixture *fx = *state;
	struct dd_recq *q;
	uint64_t recovered;

	assert_int_equal(dd_recq_new(&q, 100, 100), -EINVAL);
	assert_null(q);
	assert_int_equal(dd_recq_new(&q, 1024, MAXREC), 0);
	assert_int_equal(dd_recq_attach(q, fx->dirfd, "j", 1000, &recovered, NULL, 0), -EINVAL);
	dd_recq_free(q);
	dd_recq_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recq_memory_keeps_order_across_wraps),
		cmocka_unit_test(test_recq_memory_only_refuses_when_full),
		cmocka_unit_test(test_recq_push_drop_oldest_keeps_the_newest_in_order),
		cmocka_unit_test_setup_teardown(test_recq_spills_to_file_and_keeps_order, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_recq_refuses_when_memory_and_file_are_full,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_recq_drop_oldest_with_file_drops_oldest_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_recq_save_and_reload_keeps_every_record_in_order,
						setup, teardown),
		cmocka_unit_test(test_recq_save_without_file_counts_everything_dropped),
		cmocka_unit_test_setup_teardown(test_recq_save_drops_the_oldest_when_the_file_is_full,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_recq_attach_empties_a_damaged_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_recq_attach_empties_a_file_with_bad_frames,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_recq_attach_keeps_an_earlier_size_while_it_holds_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recq_new_and_attach_refuse_bad_sizes, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
