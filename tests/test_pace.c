/* Unit tests for common/pace.c: token-bucket refill, burst cap, debt and wait times on a synthetic clock. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "pace.h"

#define T0 1000000000ull /* synthetic monotonic clock start, ns */
#define MS 1000000ull
#define US 1000ull

/* 8 Mb/s is one byte per microsecond: easy numbers. */
#define RATE_1B_PER_US 8000000ull

static void
test_pace_starts_with_full_burst(void **state)
{
	struct dd_pace p;

	dd_pace_init(&p, RATE_1B_PER_US, 10000, T0);
	assert_int_equal(dd_pace_available(&p, T0), 10000);
	assert_int_equal(dd_pace_wait_ns(&p, 10000), 0);
	assert_int_equal(dd_pace_wait_ns(&p, 1), 0);
	assert_true(dd_pace_wait_ns(&p, 10001) > 0);
}

static void
test_pace_refills_at_rate(void **state)
{
	struct dd_pace p;

	dd_pace_init(&p, RATE_1B_PER_US, 10000, T0);
	dd_pace_consume(&p, 10000);
	assert_int_equal(dd_pace_available(&p, T0), 0);
	assert_int_equal(dd_pace_available(&p, T0 + 1 * US), 1);
	assert_int_equal(dd_pace_available(&p, T0 + 500 * US), 500);
	assert_int_equal(dd_pace_available(&p, T0 + 1 * MS), 1000);
	assert_int_equal(dd_pace_available(&p, T0 + 7 * MS), 7000);
	/* Whole bytes only: 1.5 us gives 1 byte now, the half is kept. */
	dd_pace_consume(&p, 7000);
	assert_int_equal(dd_pace_available(&p, T0 + 7 * MS + 1500), 1);
	assert_int_equal(dd_pace_available(&p, T0 + 7 * MS + 2000), 2);
}

static void
test_pace_refill_in_small_steps_equals_one_big_step(void **state)
{
	struct dd_pace a, b;
	uint64_t now = T0;

	dd_pace_init(&a, RATE_1B_PER_US, 100000, T0);
	dd_pace_init(&b, RATE_1B_PER_US, 100000, T0);
	dd_pace_consume(&a, 100000);
	dd_pace_consume(&b, 100000);
	for (int i = 0; i < 50000; i++) {
		now += 1 * US;
		(void)dd_pace_available(&a, now);
	}
	assert_int_equal(dd_pace_available(&a, now), 50000);
	assert_int_equal(dd_pace_available(&b, now), 50000);
}

static void
test_pace_caps_at_burst(void **state)
{
	struct dd_pace p;

	dd_pace_init(&p, RATE_1B_PER_US, 10000, T0);
	assert_int_equal(dd_pace_available(&p, T0 + 1000 * MS), 10000);
	dd_pace_consume(&p, 4000);
	assert_int_equal(dd_pace_available(&p, T0 + 1000 * MS + 3 * MS), 9000);
	assert_int_equal(dd_pace_available(&p, T0 + 1000 * MS + 3 * MS + 1 * US), 9001);
	assert_int_equal(dd_pace_available(&p, T0 + 1000 * MS + 10 * MS), 10000);
	/* Idle for an hour, or a clock jump as big as it gets: still the burst. */
	assert_int_equal(dd_pace_available(&p, T0 + 3600000 * MS), 10000);
	assert_int_equal(dd_pace_available(&p, UINT64_MAX), 10000);
}

static void
test_pace_debt_is_paid_back_before_sending(void **state)
{
	struct dd_pace p;

	/* A datagram larger than what is left may go out; the bucket goes negative. */
	dd_pace_init(&p, RATE_1B_PER_US, 10000, T0);
	dd_pace_consume(&p, 12000);
	assert_int_equal(dd_pace_available(&p, T0), 0);
	assert_int_equal(dd_pace_available(&p, T0 + 1 * MS), 0);
	assert_int_equal(dd_pace_available(&p, T0 + 2 * MS), 0);
	assert_int_equal(dd_pace_available(&p, T0 + 3 * MS), 1000);
}

static void
test_pace_clock_going_backwards_adds_nothing(void **state)
{
	struct dd_pace p;

	dd_pace_init(&p, RATE_1B_PER_US, 10000, T0);
	dd_pace_consume(&p, 10000);
	assert_int_equal(dd_pace_available(&p, T0 + 2 * MS), 2000);
	assert_int_equal(dd_pace_available(&p, T0), 2000);
	assert_int_equal(dd_pace_available(&p, T0 + 1 * MS), 2000);
	/* Refill resumes from the latest time seen, not from the older one. */
	assert_int_equal(dd_pace_available(&p, T0 + 3 * MS), 3000);
}

static void
test_pace_wait_ns_exact_values(void **state)
{
	struct dd_pace p;
	uint64_t w;

	dd_pace_init(&p, RATE_1B_PER_US, 10000, T0);
	dd_pace_consume(&p, 10000);
	/* 1000 bytes at one byte per microsecond: 1 ms, rounded up by a nanosecond. */
	w = dd_pace_wait_ns(&p, 1000);
	assert_true(w >= 1 * MS && w <= 1 * MS + 1);
	/* With 400 bytes in the bucket, 600 more are missing. */
	(void)dd_pace_available(&p, T0 + 400 * US);
	w = dd_pace_wait_ns(&p, 1000);
	assert_true(w >= 600 * US && w <= 600 * US + 1);
	/* Debt counts too. */
	dd_pace_consume(&p, 1400);
	w = dd_pace_wait_ns(&p, 1000);
	assert_true(w >= 2 * MS && w <= 2 * MS + 1);
	/* A full 1538-byte Ethernet frame at 1 Gb/s takes 12.304 us. */
	dd_pace_init(&p, 1000000000ull, 1538, T0);
	dd_pace_consume(&p, 1538);
	w = dd_pace_wait_ns(&p, 1472 + DD_WIRE_OVERHEAD);
	assert_true(w >= 12304 && w <= 12305);
}

static void
test_pace_waiting_wait_ns_makes_bytes_available(void **state)
{
	static const uint64_t rates[] = { 1000, 1000000, 8000000, 123456789, 1000000000,
					  10000000000ull, 400000000000ull };
	static const uint64_t sizes[] = { 1, 66, 1000, 1538, 9066, 65538 };

	for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			struct dd_pace p;
			uint64_t w;

			dd_pace_init(&p, rates[r], 100000, T0);
			dd_pace_consume(&p, 100000);
			w = dd_pace_wait_ns(&p, sizes[s]);
			assert_true(w > 0);
			if (dd_pace_available(&p, T0 + w) < sizes[s])
				fail_msg("rate %llu: %llu bytes not there after %llu ns",
					 (unsigned long long)rates[r],
					 (unsigned long long)sizes[s], (unsigned long long)w);
			/* And the wait was not much longer than needed. */
			dd_pace_init(&p, rates[r], 100000, T0);
			dd_pace_consume(&p, 100000);
			if (w > 2 && dd_pace_available(&p, T0 + w - 2) >= sizes[s])
				fail_msg("rate %llu: %llu bytes there before %llu ns",
					 (unsigned long long)rates[r],
					 (unsigned long long)sizes[s], (unsigned long long)w);
		}
	}
}

static void
test_pace_long_run_average_matches_rate(void **state)
{
	struct dd_pace p;
	const uint64_t rate = 100000000; /* 100 Mb/s */
	const uint64_t frame = 1472 + DD_WIRE_OVERHEAD;
	uint64_t now = T0, sent = 0;

	/* Send whenever allowed, sleep exactly wait_ns otherwise, for 10 s. */
	dd_pace_init(&p, rate, 4 * frame, T0);
	while (now < T0 + 10000 * MS) {
		if (dd_pace_available(&p, now) >= frame) {
			dd_pace_consume(&p, frame);
			sent += frame;
		} else {
			now += dd_pace_wait_ns(&p, frame);
		}
	}
	/* 125 MB in 10 s plus the initial burst, within one frame. */
	assert_true(sent * 8 >= rate * 10);
	assert_true(sent <= rate / 8 * 10 + 5 * frame);
}

static void
test_pace_catchup_keeps_what_a_busy_sender_earned(void **state)
{
	struct dd_pace p;

	/* Busy for 30 ms with a 10000-byte bucket: 20000 more may be made up. */
	dd_pace_init(&p, RATE_1B_PER_US, 10000, T0);
	dd_pace_consume(&p, 10000);
	assert_int_equal(dd_pace_refill(&p, T0 + 30 * MS, 20000), 30000);
	assert_int_equal(dd_pace_refill(&p, T0 + 60 * MS, 20000), 30000);
	/* An idle refill cuts back to the depth. */
	assert_int_equal(dd_pace_refill(&p, T0 + 61 * MS, 0), 10000);
	/* Within the depth, both refills agree. */
	dd_pace_consume(&p, 10000);
	assert_int_equal(dd_pace_refill(&p, T0 + 64 * MS, 20000), 3000);
	assert_int_equal(dd_pace_available(&p, T0 + 66 * MS), 5000);
}

static void
test_pace_stalling_sender_keeps_its_rate_with_catchup(void **state)
{
	struct dd_pace p;
	const uint64_t rate = 1000000000; /* 1 Gb/s */
	const uint64_t frame = 1472 + DD_WIRE_OVERHEAD, depth = 64 * frame;
	uint64_t now = T0, sent = 0;
	unsigned ticks = 0;

	/* Every 10th wake-up stalls 3 ms (a group being read and coded): with a
	 * 4 ms catch-up allowance the long-run rate is still the rate. */
	dd_pace_init(&p, rate, depth, T0);
	while (now < T0 + 1000 * MS) {
		uint64_t avail = dd_pace_refill(&p, now, rate / 8 / 250);

		while (avail >= frame) {
			dd_pace_consume(&p, frame);
			avail -= frame;
			sent += frame;
		}
		if (++ticks % 10 == 0)
			now += 3 * MS;
		now += dd_pace_wait_ns(&p, depth / 2);
	}
	assert_true(sent * 8 >= rate / 100 * 99);
	assert_true(sent * 8 <= rate / 100 * 101 + depth * 8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pace_starts_with_full_burst),
		cmocka_unit_test(test_pace_catchup_keeps_what_a_busy_sender_earned),
		cmocka_unit_test(test_pace_stalling_sender_keeps_its_rate_with_catchup),
		cmocka_unit_test(test_pace_refills_at_rate),
		cmocka_unit_test(test_pace_refill_in_small_steps_equals_one_big_step),
		cmocka_unit_test(test_pace_caps_at_burst),
		cmocka_unit_test(test_pace_debt_is_paid_back_before_sending),
		cmocka_unit_test(test_pace_clock_going_backwards_adds_nothing),
		cmocka_unit_test(test_pace_wait_ns_exact_values),
		cmocka_unit_test(test_pace_waiting_wait_ns_makes_bytes_available),
		cmocka_unit_test(test_pace_long_run_average_matches_rate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
