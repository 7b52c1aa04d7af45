/* Unit tests for common/fec.c: Reed–Solomon encode, erasure decode, argument checks. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fec.h"

#define FILL_LOST 0xA5 /* written into lost buffers to prove they get rebuilt */

/* One block: k data and m parity buffers of len bytes, plus a pristine copy. */
struct block {
	unsigned k, m;
	size_t len;
	uint8_t *frags[DD_FEC_MAX_TOTAL];
	uint8_t *orig[DD_FEC_MAX_TOTAL];
	uint8_t present[DD_FEC_MAX_TOTAL];
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t
rng(void)
{
	/* xorshift64*: deterministic, so failures reproduce. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

/* GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1 (0x11d), bit by bit, as an
 * oracle that does not share code with ISA-L. */
static uint8_t
ref_mul(uint8_t a, uint8_t b)
{
	uint8_t p = 0;

	while (b) {
		if (b & 1)
			p ^= a;
		a = (uint8_t)((a << 1) ^ ((a & 0x80) ? 0x1d : 0));
		b >>= 1;
	}
	return p;
}

static uint8_t
ref_inv(uint8_t a)
{
	unsigned x;

	for (x = 1; x < 256; x++)
		if (ref_mul(a, (uint8_t)x) == 1)
			return (uint8_t)x;
	return 0;
}

/* Parity byte p at offset off, by the Cauchy rule A[k+p][j] = 1 / ((k+p) ^ j). */
static uint8_t
ref_parity(const struct block *b, unsigned p, size_t off)
{
	uint8_t acc = 0;
	unsigned j;

	for (j = 0; j < b->k; j++)
		acc ^= ref_mul(ref_inv((uint8_t)((b->k + p) ^ j)), b->orig[j][off]);
	return acc;
}

static void
block_init(struct block *b, unsigned k, unsigned m, size_t len)
{
	unsigned i;
	size_t j;

	memset(b, 0, sizeof(*b));
	b->k = k;
	b->m = m;
	b->len = len;
	for (i = 0; i < k + m; i++) {
		b->frags[i] = malloc(len);
		b->orig[i] = malloc(len);
		assert_non_null(b->frags[i]);
		assert_non_null(b->orig[i]);
		for (j = 0; j < len; j++)
			b->frags[i][j] = i < k ? (uint8_t)rng() : 0;
		b->present[i] = 1;
	}
}

static void
block_free(struct block *b)
{
	unsigned i;

	for (i = 0; i < b->k + b->m; i++) {
		free(b->frags[i]);
		free(b->orig[i]);
	}
}

/* Encode in place and remember the full block as the expected contents. */
static void
block_encode(struct dd_fec *fec, struct block *b)
{
	unsigned i;

	assert_int_equal(dd_fec_encode(fec, b->k, b->m, b->len, b->frags,
				       b->frags + b->k), 0);
	for (i = 0; i < b->k + b->m; i++)
		memcpy(b->orig[i], b->frags[i], b->len);
}

static void
block_erase(struct block *b, unsigned i)
{
	b->present[i] = 0;
	memset(b->frags[i], FILL_LOST, b->len);
}

/* After a successful decode: all data rebuilt, parity as it was (even the
 * garbage in erased parity). Then restore the block for the next pattern. */
static void
block_check_and_restore(struct block *b)
{
	uint8_t *fill = NULL;
	unsigned i;

	for (i = 0; i < b->k; i++)
		assert_memory_equal(b->frags[i], b->orig[i], b->len);
	for (i = b->k; i < b->k + b->m; i++) {
		if (b->present[i]) {
			assert_memory_equal(b->frags[i], b->orig[i], b->len);
			continue;
		}
		if (fill == NULL) {
			fill = malloc(b->len);
			assert_non_null(fill);
			memset(fill, FILL_LOST, b->len);
		}
		assert_memory_equal(b->frags[i], fill, b->len);
	}
	free(fill);
	for (i = 0; i < b->k + b->m; i++) {
		memcpy(b->frags[i], b->orig[i], b->len);
		b->present[i] = 1;
	}
}

static int
setup(void **state)
{
	struct dd_fec *fec;

	if (dd_fec_new(&fec) != 0)
		return -1;
	*state = fec;
	return 0;
}

static int
teardown(void **state)
{
	dd_fec_free(*state);
	return 0;
}

static void
test_new_and_free_including_free_null(void **state)
{
	struct dd_fec *fec = NULL;

	assert_int_equal(dd_fec_new(&fec), 0);
	assert_non_null(fec);
	dd_fec_free(fec);
	dd_fec_free(NULL);
}

static void
round_trip(struct dd_fec *fec, unsigned k, unsigned m, size_t len)
{
	struct block b;
	unsigned i, lose, p;
	size_t off;

	block_init(&b, k, m, len);
	block_encode(fec, &b);
	for (p = 0; p < m; p++)
		for (off = 0; off < len; off += 1 + len / 7)
			assert_int_equal(b.frags[k + p][off], ref_parity(&b, p, off));

	/* Nothing lost: decode succeeds and changes nothing. */
	assert_int_equal(dd_fec_decode(fec, k, m, len, b.frags, b.present), 0);
	block_check_and_restore(&b);

	/* Lose as many data fragments as there is parity (spread out). */
	lose = m < k ? m : k;
	for (i = 0; i < lose; i++)
		block_erase(&b, (unsigned)((size_t)i * k / lose));
	assert_int_equal(dd_fec_decode(fec, k, m, len, b.frags, b.present), 0);
	block_check_and_restore(&b);
	block_free(&b);
}

static void
test_round_trip_recovers_data_for_each_code_shape(void **state)
{
	static const unsigned shapes[][2] = {
		{1, 0}, {1, 1}, {4, 2}, {32, 4}, {64, 8}, {200, 40}, {254, 1},
		{128, 127}, {127, 128},
	};
	size_t i;

	for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
		round_trip(*state, shapes[i][0], shapes[i][1], 1408);
}

static void
test_round_trip_works_for_lengths_64_1408_1_and_100(void **state)
{
	static const size_t lens[] = {64, 1408, 1, 100, 63, 65, 4096};
	size_t i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		round_trip(*state, 10, 4, lens[i]);
		round_trip(*state, 64, 8, lens[i]);
	}
}

/* Every pattern of at most m lost fragments, data and parity alike. */
static void
every_pattern(struct dd_fec *fec, unsigned k, unsigned m, size_t len)
{
	struct block b;
	unsigned long mask, patterns = 0;
	unsigned i, n = k + m;

	block_init(&b, k, m, len);
	block_encode(fec, &b);
	for (mask = 0; mask < (1ul << n); mask++) {
		if ((unsigned)__builtin_popcountl(mask) > m)
			continue;
		for (i = 0; i < n; i++)
			if (mask & (1ul << i))
				block_erase(&b, i);
		assert_int_equal(dd_fec_decode(fec, k, m, len, b.frags, b.present), 0);
		block_check_and_restore(&b);
		patterns++;
	}
	assert_true(patterns > n);
	block_free(&b);
}

static void
test_every_erasure_pattern_up_to_m_recovers_6_3(void **state)
{
	every_pattern(*state, 6, 3, 100);
}

static void
test_every_erasure_pattern_up_to_m_recovers_10_4(void **state)
{
	every_pattern(*state, 10, 4, 64);
}

static void
test_random_patterns_of_m_erasures_recover_64_8(void **state)
{
	struct block b;
	unsigned i, n, lost, pick, iter;

	block_init(&b, 64, 8, 1408);
	block_encode(*state, &b);
	n = b.k + b.m;
	for (iter = 0; iter < 3000; iter++) {
		for (lost = 0; lost < b.m;) {
			pick = (unsigned)(rng() % n);
			if (b.present[pick]) {
				block_erase(&b, pick);
				lost++;
			}
		}
		assert_int_equal(dd_fec_decode(*state, b.k, b.m, b.len, b.frags,
					       b.present), 0);
		block_check_and_restore(&b);
	}
	/* And the worst case for the inverse: the last m data fragments. */
	for (i = b.k - b.m; i < b.k; i++)
		block_erase(&b, i);
	assert_int_equal(dd_fec_decode(*state, b.k, b.m, b.len, b.frags, b.present), 0);
	block_check_and_restore(&b);
	block_free(&b);
}

static void
m_plus_one(struct dd_fec *fec, unsigned k, unsigned m, unsigned iters)
{
	struct block b;
	unsigned i, n = k + m, lost, pick, iter;

	block_init(&b, k, m, 100);
	block_encode(fec, &b);
	for (iter = 0; iter < iters; iter++) {
		/* At least one data fragment, or there would be nothing to do. */
		block_erase(&b, (unsigned)(rng() % k));
		for (lost = 1; lost < m + 1;) {
			pick = (unsigned)(rng() % n);
			if (b.present[pick]) {
				block_erase(&b, pick);
				lost++;
			}
		}
		for (i = 0; i < n; i++)
			memcpy(b.orig[i], b.frags[i], b.len);
		assert_int_equal(dd_fec_decode(fec, k, m, b.len, b.frags, b.present),
				 -ENODATA);
		for (i = 0; i < n; i++)
			assert_memory_equal(b.frags[i], b.orig[i], b.len);
		/* Re-encode to get back to a clean block. */
		for (i = 0; i < n; i++)
			b.present[i] = 1;
		block_encode(fec, &b);
	}
	block_free(&b);
}

static void
test_m_plus_one_erasures_return_enodata_and_leave_buffers_untouched(void **state)
{
	m_plus_one(*state, 6, 3, 50);
	m_plus_one(*state, 10, 4, 50);
	m_plus_one(*state, 64, 8, 50);
	m_plus_one(*state, 1, 0, 1);
	m_plus_one(*state, 254, 1, 2);
}

static void
test_no_data_missing_returns_zero_and_touches_nothing(void **state)
{
	struct block b;
	unsigned i;

	block_init(&b, 6, 3, 64);
	block_encode(*state, &b);
	/* All parity gone, all data here: fine, nothing rebuilt. */
	for (i = b.k; i < b.k + b.m; i++)
		block_erase(&b, i);
	assert_int_equal(dd_fec_decode(*state, b.k, b.m, b.len, b.frags, b.present), 0);
	block_check_and_restore(&b);
	block_free(&b);
}

static void
test_decode_uses_only_present_fragments_not_stale_parity(void **state)
{
	struct block b;

	/* Lose data 0 and parity 0: parity 1 must be used, parity 0's garbage
	 * must not leak into the result (checked by block_check_and_restore). */
	block_init(&b, 4, 2, 1408);
	block_encode(*state, &b);
	block_erase(&b, 0);
	block_erase(&b, 4);
	assert_int_equal(dd_fec_decode(*state, b.k, b.m, b.len, b.frags, b.present), 0);
	block_check_and_restore(&b);
	block_free(&b);
}

static void
test_encode_with_no_parity_is_a_no_op(void **state)
{
	uint8_t d[3][16] = {{1}, {2}, {3}};
	uint8_t *data[3] = {d[0], d[1], d[2]};

	assert_int_equal(dd_fec_encode(*state, 3, 0, sizeof(d[0]), data, NULL), 0);
	assert_int_equal(d[0][0], 1);
	assert_int_equal(d[2][0], 3);
}

static void
test_more_code_shapes_than_cache_slots_stay_correct(void **state)
{
	struct dd_fec *fresh;
	struct block b[12];
	uint8_t *par[DD_FEC_MAX_TOTAL];
	unsigned i, round, p;

	for (i = 0; i < 12; i++) {
		block_init(&b[i], 3 + i * 5, 1 + i % 5, 200);
		block_encode(*state, &b[i]);
	}
	/* Cycle through them twice so every slot is evicted and reused. */
	for (round = 0; round < 2; round++) {
		for (i = 0; i < 12; i++) {
			assert_int_equal(dd_fec_new(&fresh), 0);
			for (p = 0; p < b[i].m; p++) {
				par[p] = malloc(b[i].len);
				assert_non_null(par[p]);
			}
			assert_int_equal(dd_fec_encode(*state, b[i].k, b[i].m, b[i].len,
						       b[i].frags, par), 0);
			for (p = 0; p < b[i].m; p++)
				assert_memory_equal(par[p], b[i].orig[b[i].k + p], b[i].len);
			assert_int_equal(dd_fec_encode(fresh, b[i].k, b[i].m, b[i].len,
						       b[i].frags, par), 0);
			for (p = 0; p < b[i].m; p++) {
				assert_memory_equal(par[p], b[i].orig[b[i].k + p], b[i].len);
				free(par[p]);
			}
			dd_fec_free(fresh);

			/* Decode through the same shared coder as well. */
			block_erase(&b[i], 1);
			assert_int_equal(dd_fec_decode(*state, b[i].k, b[i].m, b[i].len,
						       b[i].frags, b[i].present), 0);
			block_check_and_restore(&b[i]);
		}
	}
	for (i = 0; i < 12; i++)
		block_free(&b[i]);
}

static void
test_invalid_arguments_return_einval(void **state)
{
	struct dd_fec *fec = *state;
	uint8_t buf[DD_FEC_MAX_TOTAL + 1][4];
	uint8_t *ptrs[DD_FEC_MAX_TOTAL + 1], present[DD_FEC_MAX_TOTAL + 1];
	unsigned i;

	for (i = 0; i <= DD_FEC_MAX_TOTAL; i++) {
		ptrs[i] = buf[i];
		present[i] = 1;
	}
	memset(buf, 7, sizeof(buf));

	assert_int_equal(dd_fec_new(NULL), -EINVAL);

	assert_int_equal(dd_fec_encode(NULL, 2, 1, 4, ptrs, ptrs + 2), -EINVAL);
	assert_int_equal(dd_fec_encode(fec, 0, 1, 4, ptrs, ptrs + 2), -EINVAL);
	assert_int_equal(dd_fec_encode(fec, 255, 1, 4, ptrs, ptrs + 2), -EINVAL);
	assert_int_equal(dd_fec_encode(fec, 200, 56, 4, ptrs, ptrs + 200), -EINVAL);
	assert_int_equal(dd_fec_encode(fec, 1, UINT_MAX, 4, ptrs, ptrs + 1), -EINVAL);
	assert_int_equal(dd_fec_encode(fec, 256, 0, 4, ptrs, NULL), -EINVAL);
	assert_int_equal(dd_fec_encode(fec, 2, 1, 0, ptrs, ptrs + 2), -EINVAL);
	assert_int_equal(dd_fec_encode(fec, 2, 1, (size_t)INT_MAX + 1, ptrs, ptrs + 2),
			 -EINVAL);
	assert_int_equal(dd_fec_encode(fec, 2, 1, 4, NULL, ptrs + 2), -EINVAL);
	assert_int_equal(dd_fec_encode(fec, 2, 1, 4, ptrs, NULL), -EINVAL);
	ptrs[1] = NULL;
	assert_int_equal(dd_fec_encode(fec, 2, 1, 4, ptrs, ptrs + 2), -EINVAL);
	ptrs[1] = buf[1];
	ptrs[2] = NULL;
	assert_int_equal(dd_fec_encode(fec, 2, 1, 4, ptrs, ptrs + 2), -EINVAL);
	ptrs[2] = buf[2];
	/* The largest legal shape is accepted. */
	assert_int_equal(dd_fec_encode(fec, 254, 1, 4, ptrs, ptrs + 254), 0);
	assert_int_equal(dd_fec_encode(fec, 1, 254, 4, ptrs, ptrs + 1), 0);

	present[0] = 0;
	assert_int_equal(dd_fec_decode(NULL, 2, 1, 4, ptrs, present), -EINVAL);
	assert_int_equal(dd_fec_decode(fec, 0, 1, 4, ptrs, present), -EINVAL);
	assert_int_equal(dd_fec_decode(fec, 255, 1, 4, ptrs, present), -EINVAL);
	assert_int_equal(dd_fec_decode(fec, 2, 1, 0, ptrs, present), -EINVAL);
	assert_int_equal(dd_fec_decode(fec, 2, 1, (size_t)INT_MAX + 1, ptrs, present),
			 -EINVAL);
	assert_int_equal(dd_fec_decode(fec, 2, 1, 4, NULL, present), -EINVAL);
	assert_int_equal(dd_fec_decode(fec, 2, 1, 4, ptrs, NULL), -EINVAL);
	ptrs[2] = NULL;
	assert_int_equal(dd_fec_decode(fec, 2, 1, 4, ptrs, present), -EINVAL);
	ptrs[2] = buf[2];
}

/*
 * k = 4, m = 2, len = 64, data[i][j] = i * 64 + j: the first and last bytes of
 * both parity fragments and an FNV-1a hash over both. Computed once with this
 * code, checked against an independent Python GF(2^8) oracle, and hard-coded:
 * a change of matrix, field or coding breaks it.
 */
static void
test_golden_vector_4_2_parity_is_unchanged(void **state)
{
	uint8_t d[4][64], p[2][64];
	uint8_t *data[4] = {d[0], d[1], d[2], d[3]}, *parity[2] = {p[0], p[1]};
	uint32_t h = 2166136261u;
	unsigned i, j;

	for (i = 0; i < 4; i++)
		for (j = 0; j < 64; j++)
			d[i][j] = (uint8_t)(i * 64 + j);
	assert_int_equal(dd_fec_encode(*state, 4, 2, 64, data, parity), 0);
	for (i = 0; i < 2; i++)
		for (j = 0; j < 64; j++)
			h = (h ^ p[i][j]) * 16777619u;
	assert_int_equal(p[0][0], 0x87);
	assert_int_equal(p[0][1], 0xa7);
	assert_int_equal(p[0][2], 0xc7);
	assert_int_equal(p[0][63], 0x34);
	assert_int_equal(p[1][0], 0x6f);
	assert_int_equal(p[1][1], 0x4f);
	assert_int_equal(p[1][2], 0x2f);
	assert_int_equal(p[1][63], 0xdc);
	assert_int_equal(h, 0x1329ce45u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_and_free_including_free_null),
		cmocka_unit_test_setup_teardown(test_round_trip_recovers_data_for_each_code_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_works_for_lengths_64_1408_1_and_100, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_erasure_pattern_up_to_m_recovers_6_3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_erasure_pattern_up_to_m_recovers_10_4, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_patterns_of_m_erasures_recover_64_8, setup, teardown),
		cmocka_unit_test_setup_teardown(test_m_plus_one_erasures_return_enodata_and_leave_buffers_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_data_missing_returns_zero_and_touches_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_uses_only_present_fragments_not_stale_parity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encode_with_no_parity_is_a_no_op, setup, teardown),
		cmocka_unit_test_setup_teardown(test_more_code_shapes_than_cache_slots_stay_correct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_arguments_return_einval, setup, teardown),
		cmocka_unit_test_setup_teardown(test_golden_vector_4_2_parity_is_unchanged, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
