/* Unit tests for common/replay.c: the sliding anti-replay window and the restart floor. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

/* Counters this far behind top are still judged by the bitmap; one more is too old. */
#define SPAN (DD_REPLAY_WINDOW - 64)

/* Check, then record: what the receiver does after a tag verified. */
static bool
accept(struct dd_replay *r, uint64_t seq)
{
	if (!dd_replay_check(r, seq))
		return false;
	dd_replay_update(r, seq);
	return true;
}

static void
test_replay_fresh_window_accepts_anything_and_check_records_nothing(void **state)
{
	struct dd_replay r;
	static const uint64_t seqs[] = { 0, 1, 5000, UINT64_MAX - 1, UINT64_MAX };

	dd_replay_reset(&r, 0, false);
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		assert_true(dd_replay_check(&r, seqs[i]));
		assert_true(dd_replay_check(&r, seqs[i])); /* check alone records nothing */
	}
	assert_true(accept(&r, 5000));
	assert_false(dd_replay_check(&r, 5000));
	assert_true(r.top == 5000);
}

static void
test_replay_in_order(void **state)
{
	struct dd_replay r;

	dd_replay_reset(&r, 0, false);
	for (uint64_t seq = 1; seq <= 3 * DD_REPLAY_WINDOW; seq++) {
		assert_true(accept(&r, seq));
		assert_false(dd_replay_check(&r, seq));
		assert_false(dd_replay_check(&r, seq - 1 > 0 ? seq - 1 : seq));
	}
	assert_true(r.top == 3 * DD_REPLAY_WINDOW);
}

static void
test_replay_out_of_order_within_window(void **state)
{
	struct dd_replay r;

	dd_replay_reset(&r, 0, false);
	assert_true(accept(&r, 1000));
	assert_true(accept(&r, 998));
	assert_true(accept(&r, 1003));
	assert_true(accept(&r, 999));
	assert_true(accept(&r, 1001));
	assert_true(accept(&r, 1002));
	assert_true(r.top == 1003);
	for (uint64_t seq = 998; seq <= 1003; seq++)
		assert_false(dd_replay_check(&r, seq));
	assert_true(dd_replay_check(&r, 997));
	assert_true(dd_replay_check(&r, 1004));
	/* Older than the first one seen, but still in the window. */
	assert_true(accept(&r, 10));
	assert_false(dd_replay_check(&r, 10));
}

static void
test_replay_out_of_order_reverse_full_window(void **state)
{
	struct dd_replay r;
	const uint64_t top = 20000;

	dd_replay_reset(&r, 0, false);
	assert_true(accept(&r, top));
	for (uint64_t seq = top - 1; seq > top - SPAN; seq--)
		assert_true(accept(&r, seq));
	for (uint64_t seq = top - SPAN + 1; seq <= top; seq++)
		assert_false(dd_replay_check(&r, seq));
}

static void
test_replay_duplicates_refused(void **state)
{
	struct dd_replay r;

	dd_replay_reset(&r, 0, false);
	assert_true(accept(&r, 7));
	assert_false(accept(&r, 7));
	assert_true(accept(&r, 64)); /* next word */
	assert_false(accept(&r, 64));
	assert_false(accept(&r, 7));
	assert_true(accept(&r, 63));
	assert_false(accept(&r, 63));
	assert_true(accept(&r, 0));
	assert_false(accept(&r, 0));
}

static void
test_replay_too_old_refused_at_exact_boundary(void **state)
{
	struct dd_replay r;
	const uint64_t top = 100000;

	dd_replay_reset(&r, 0, false);
	assert_true(accept(&r, top));
	assert_false(dd_replay_check(&r, top - SPAN));
	assert_false(dd_replay_check(&r, top - DD_REPLAY_WINDOW));
	assert_false(dd_replay_check(&r, 0));
	assert_true(dd_replay_check(&r, top - SPAN + 1));
	assert_true(accept(&r, top - SPAN + 1));
	assert_false(dd_replay_check(&r, top - SPAN + 1));
}

/* Mark every counter of the window as seen, jump ahead by `jump`, and check that
 * exactly the counters seen before (still in the window) and the new top are refused. */
static void
check_jump(uint64_t old_top, uint64_t jump)
{
	struct dd_replay r;
	uint64_t new_top = old_top + jump;

	dd_replay_reset(&r, 0, false);
	for (uint64_t seq = old_top - SPAN + 1; seq <= old_top; seq++)
		assert_true(accept(&r, seq));
	assert_true(accept(&r, new_top));
	for (uint64_t seq = new_top - SPAN - 64; seq <= new_top + 64; seq++) {
		bool in_window = seq > new_top - SPAN;
		bool seen = seq == new_top || (seq <= old_top && seq > old_top - SPAN);
		bool want = seq > new_top || (in_window && !seen);

		if (dd_replay_check(&r, seq) != want)
			fail_msg("top %llu jump %llu: seq %llu should be %s",
				 (unsigned long long)old_top, (unsigned long long)jump,
				 (unsigned long long)seq, want ? "new" : "refused");
	}
}

static void
test_replay_jumps_clear_exactly_the_stale_bits(void **state)
{
	static const uint64_t jumps[] = {
		1, 2, 63, 64, 65, 127, 128, 1000, SPAN - 1, SPAN, SPAN + 1,
		DD_REPLAY_WINDOW - 1, DD_REPLAY_WINDOW, DD_REPLAY_WINDOW + 1,
		2 * DD_REPLAY_WINDOW, 2 * DD_REPLAY_WINDOW + 63, 1000000,
	};

	for (size_t i = 0; i < sizeof(jumps) / sizeof(jumps[0]); i++) {
		check_jump(50000, jumps[i]);       /* mid-word top */
		check_jump(64 * 1000 - 1, jumps[i]); /* top at the end of a word */
		check_jump(64 * 1000, jumps[i]);     /* top at the start of a word */
	}
}

static void
test_replay_big_jump_does_not_alias_old_bits(void **state)
{
	struct dd_replay r;

	/* 10 and 10 + WINDOW share a bitmap word slot: after the jump it is clean. */
	dd_replay_reset(&r, 0, false);
	assert_true(accept(&r, 10));
	assert_true(accept(&r, 70));
	assert_true(accept(&r, 10 + DD_REPLAY_WINDOW));
	assert_true(dd_replay_check(&r, 8 + DD_REPLAY_WINDOW));
	assert_true(dd_replay_check(&r, 9 + DD_REPLAY_WINDOW));
	assert_false(dd_replay_check(&r, 10 + DD_REPLAY_WINDOW));
	assert_false(dd_replay_check(&r, 10));
	assert_false(dd_replay_check(&r, 70)); /* 8132 behind: too old */
	assert_true(dd_replay_check(&r, 75));  /* 8127 behind: still judged, unseen */
	assert_true(dd_replay_check(&r, 134));
}

static void
test_replay_top_near_uint64_max(void **state)
{
	struct dd_replay r;

	dd_replay_reset(&r, 0, false);
	assert_true(accept(&r, UINT64_MAX - 5));
	assert_true(accept(&r, UINT64_MAX));
	assert_false(dd_replay_check(&r, UINT64_MAX));
	assert_true(dd_replay_check(&r, UINT64_MAX - 1));
	assert_false(dd_replay_check(&r, UINT64_MAX - 5));
	assert_false(dd_replay_check(&r, 0));
}

static void
test_replay_floor_refuses_up_to_floor(void **state)
{
	struct dd_replay r;

	dd_replay_reset(&r, 1000, true);
	assert_false(dd_replay_check(&r, 0));
	assert_false(dd_replay_check(&r, 1));
	assert_false(dd_replay_check(&r, 999));
	assert_false(dd_replay_check(&r, 1000));
	assert_true(dd_replay_check(&r, 1001));
	assert_true(accept(&r, 1005));
	assert_true(accept(&r, 1001));
	assert_false(dd_replay_check(&r, 1000));
	/* The floor holds even when the window has moved far past it. */
	assert_true(accept(&r, 1000 + SPAN - 1));
	assert_false(dd_replay_check(&r, 1000));
	assert_true(dd_replay_check(&r, 1002));
}

static void
test_replay_floor_zero_refuses_zero(void **state)
{
	struct dd_replay r;

	/* "Counters <= floor are treated as already seen" holds for floor 0 too. */
	dd_replay_reset(&r, 0, true);
	assert_false(dd_replay_check(&r, 0));
	assert_true(accept(&r, 1));
	assert_false(dd_replay_check(&r, 0));
	assert_true(accept(&r, 2));
}

static void
test_replay_reset_without_floor_forgets_everything(void **state)
{
	struct dd_replay r;

	dd_replay_reset(&r, 1000, true);
	assert_true(accept(&r, 5000));
	dd_replay_reset(&r, 1000, false);
	assert_true(dd_replay_check(&r, 5));
	assert_true(dd_replay_check(&r, 1000));
	assert_true(dd_replay_check(&r, 5000));
	assert_true(accept(&r, 5));
	assert_false(dd_replay_check(&r, 5));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_fresh_window_accepts_anything_and_check_records_nothing),
		cmocka_unit_test(test_replay_in_order),
		cmocka_unit_test(test_replay_out_of_order_within_window),
		cmocka_unit_test(test_replay_out_of_order_reverse_full_window),
		cmocka_unit_test(test_replay_duplicates_refused),
		cmocka_unit_test(test_replay_too_old_refused_at_exact_boundary),
		cmocka_unit_test(test_replay_jumps_clear_exactly_the_stale_bits),
		cmocka_unit_test(test_replay_big_jump_does_not_alias_old_bits),
		cmocka_unit_test(test_replay_top_near_uint64_max),
		cmocka_unit_test(test_replay_floor_refuses_up_to_floor),
		cmocka_unit_test(test_replay_floor_zero_refuses_zero),
		cmocka_unit_test(test_replay_reset_without_floor_forgets_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
