/* Unit tests for common/record.c: stream fragment and status golden bytes, strict parsing, record framing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "record.h"

#define FRAG_LEN 1408                     /* dd_wire_frag_len(1472) */
#define PLAIN_LEN (DD_STREAM_HDR_LEN + FRAG_LEN) /* 1440 */

static const uint8_t zeros[sizeof(struct dd_stream_status)];

static const struct dd_stream_frag golden_frag = {
	.k = 2, .m = 2, .index = 3, .channel = 0x11223344, .block = 0x0102030405060708ull,
	.first_seq = 1000, .bytes = 1500, .count = 3,
};

static const uint8_t golden_frag_bytes[DD_STREAM_HDR_LEN] = {
	0x04, 0x02, 0x02, 0x03, 0x11, 0x22, 0x33, 0x44, /* kind, k, m, index, channel */
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* block */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, /* first_seq 1000 */
	0x00, 0x00, 0x05, 0xdc, 0x00, 0x03, 0x00, 0x00, /* bytes 1500, count 3, zero */
};

static void
assert_frag_equal(const struct dd_stream_frag *a, const struct dd_stream_frag *b)
{
	assert_int_equal(a->k, b->k);
	assert_int_equal(a->m, b->m);
	assert_int_equal(a->index, b->index);
	assert_int_equal(a->channel, b->channel);
	assert_true(a->block == b->block);
	assert_true(a->first_seq == b->first_seq);
	assert_int_equal(a->bytes, b->bytes);
	assert_int_equal(a->count, b->count);
}

static void
frag_plain(uint8_t *plain, const struct dd_stream_frag *f)
{
	memset(plain, 0, PLAIN_LEN);
	dd_record_put_frag(plain, f);
	memset(plain + DD_STREAM_HDR_LEN, 0x5a, FRAG_LEN);
}

static void
expect_frag_refused(const uint8_t *plain, size_t len, const char *why)
{
	struct dd_stream_frag f;

	memset(&f, 0xa5, sizeof(f));
	if (dd_record_parse_frag(&f, plain, len, FRAG_LEN) != -EBADMSG)
		fail_msg("stream fragment accepted: %s", why);
	assert_memory_equal(&f, zeros, sizeof(f));
}

static void
expect_frag_fields_refused(const struct dd_stream_frag *f, const char *why)
{
	uint8_t plain[PLAIN_LEN];

	frag_plain(plain, f);
	expect_frag_refused(plain, PLAIN_LEN, why);
}

static void
test_record_frag_golden_bytes(void **state)
{
	uint8_t plain[PLAIN_LEN];
	struct dd_stream_frag f;

	(void)state;
	frag_plain(plain, &golden_frag);
	assert_memory_equal(plain, golden_frag_bytes, DD_STREAM_HDR_LEN);
	assert_int_equal(dd_record_parse_frag(&f, plain, PLAIN_LEN, FRAG_LEN), 0);
	assert_frag_equal(&f, &golden_frag);
}

static void
test_record_frag_parse_rejects_every_other_length(void **state)
{
	uint8_t *plain = calloc(1, PLAIN_LEN + 64);

	(void)state;
	assert_non_null(plain);
	dd_record_put_frag(plain, &golden_frag);
	for (size_t len = 0; len < PLAIN_LEN; len++)
		expect_frag_refused(plain, len, "truncated");
	for (size_t len = PLAIN_LEN + 1; len <= PLAIN_LEN + 64; len++)
		expect_frag_refused(plain, len, "oversize");
	free(plain);
}

static void
test_record_frag_parse_rejects_kind_and_reserved(void **state)
{
	uint8_t plain[PLAIN_LEN];

	(void)state;
	frag_plain(plain, &golden_frag);
	for (unsigned kind = 0; kind < 256; kind++) {
		if (kind == DD_KIND_STREAM)
			continue;
		plain[0] = (uint8_t)kind;
		expect_frag_refused(plain, PLAIN_LEN, "wrong kind");
	}
	plain[0] = DD_KIND_STREAM;
	for (size_t at = 30; at < 32; at++) {
		plain[at] = 0x80;
		expect_frag_refused(plain, PLAIN_LEN, "reserved byte set");
		plain[at] = 0;
	}
}

static void
test_record_frag_parse_rejects_bad_fields(void **state)
{
	struct dd_stream_frag f;

	(void)state;
	f = golden_frag, f.k = 0;
	expect_frag_fields_refused(&f, "k 0");
	f = golden_frag, f.k = DD_STREAM_K_MAX + 1, f.bytes = (uint32_t)(16 * FRAG_LEN + 1);
	expect_frag_fields_refused(&f, "k over the maximum");
	f = golden_frag, f.m = DD_STREAM_M_MAX + 1;
	expect_frag_fields_refused(&f, "m over the maximum");
	f = golden_frag, f.index = 4;
	expect_frag_fields_refused(&f, "index k + m");
	f = golden_frag, f.count = 0;
	expect_frag_fields_refused(&f, "no records");
	f = golden_frag, f.bytes = 2 * FRAG_LEN + 1;
	expect_frag_fields_refused(&f, "more bytes than k fragments hold");
	f = golden_frag, f.bytes = FRAG_LEN;
	expect_frag_fields_refused(&f, "k larger than needed");
	f = golden_frag, f.k = 1, f.m = 0, f.index = 0, f.bytes = 0;
	expect_frag_fields_refused(&f, "no bytes");
	f = golden_frag, f.count = 751;
	expect_frag_fields_refused(&f, "more records than bytes can frame");
	f = golden_frag, f.first_seq = UINT64_MAX - 2;
	expect_frag_fields_refused(&f, "seq range overflows");
}

static void
test_record_frag_accepts_limits(void **state)
{
	uint8_t plain[PLAIN_LEN];
	struct dd_stream_frag f, out;

	(void)state;
	f = golden_frag, f.count = 750, f.first_seq = UINT64_MAX - 750;
	frag_plain(plain, &f);
	assert_int_equal(dd_record_parse_frag(&out, plain, PLAIN_LEN, FRAG_LEN), 0);
	assert_frag_equal(&out, &f);
	f = (struct dd_stream_frag){ .k = DD_STREAM_K_MAX, .m = DD_STREAM_M_MAX,
				     .index = DD_STREAM_K_MAX + DD_STREAM_M_MAX - 1,
				     .channel = UINT32_MAX, .block = UINT64_MAX,
				     .bytes = DD_STREAM_K_MAX * FRAG_LEN, .count = 1 };
	frag_plain(plain, &f);
	assert_int_equal(dd_record_parse_frag(&out, plain, PLAIN_LEN, FRAG_LEN), 0);
	assert_frag_equal(&out, &f);
	f = (struct dd_stream_frag){ .k = 1, .bytes = 2, .count = 1 };
	frag_plain(plain, &f);
	assert_int_equal(dd_record_parse_frag(&out, plain, PLAIN_LEN, FRAG_LEN), 0);
	assert_frag_equal(&out, &f);
}

static void
test_record_frag_every_header_bit_flip_refused_or_round_trips(void **state)
{
	uint8_t plain[PLAIN_LEN], again[DD_STREAM_HDR_LEN];
	struct dd_stream_frag f;

	(void)state;
	frag_plain(plain, &golden_frag);
	for (size_t bit = 0; bit < DD_STREAM_HDR_LEN * 8; bit++) {
		plain[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (dd_record_parse_frag(&f, plain, PLAIN_LEN, FRAG_LEN) == 0) {
			dd_record_put_frag(again, &f);
			assert_memory_equal(again, plain, DD_STREAM_HDR_LEN);
		} else {
			assert_memory_equal(&f, zeros, sizeof(f));
		}
		plain[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}

/* ---------------------------------------------------------------- status */

static const uint8_t golden_status_bytes[] = {
	0x05, 0x00, 0x00, 0x02, 0x00, 0x00, 0x03, 0xe8, /* kind, zero, count 2, interval 1000 */
	0, 0, 0, 0, 0, 0, 0, 0,                         /* zero */
	0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0,             /* channel, zero */
	0, 0, 0, 0, 0, 0, 0, 5,                         /* blocks */
	0, 0, 0, 0, 0, 0, 0, 77,                        /* next_seq */
	0, 0, 0, 0, 0, 0, 0, 70,                        /* start_seq */
	0, 0, 0, 0, 0, 0, 0, 9,                         /* dropped */
	0xa0, 0x00, 0x00, 0x00, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0,
};

static struct dd_stream_status
golden_status(void)
{
	struct dd_stream_status s;

	memset(&s, 0, sizeof(s));
	s.interval_ms = 1000;
	s.count = 2;
	s.entries[0] = (struct dd_stream_status_entry){ 0x01020304, 5, 77, 70, 9 };
	s.entries[1] = (struct dd_stream_status_entry){ 0xa0000000, 0, 0, 0, 0 };
	return s;
}

static void
assert_status_equal(const struct dd_stream_status *a, const struct dd_stream_status *b)
{
	assert_int_equal(a->interval_ms, b->interval_ms);
	assert_int_equal(a->count, b->count);
	for (size_t i = 0; i < a->count; i++) {
		assert_int_equal(a->entries[i].channel, b->entries[i].channel);
		assert_true(a->entries[i].blocks == b->entries[i].blocks);
		assert_true(a->entries[i].next_seq == b->entries[i].next_seq);
		assert_true(a->entries[i].start_seq == b->entries[i].start_seq);
		assert_true(a->entries[i].dropped == b->entries[i].dropped);
	}
}

static void
expect_status_refused(const uint8_t *plain, size_t len, const char *why)
{
	static struct dd_stream_status s;

	memset(&s, 0xa5, sizeof(s));
	if (dd_record_parse_status(&s, plain, len) != -EBADMSG)
		fail_msg("stream status accepted: %s", why);
	assert_memory_equal(&s, zeros, sizeof(s));
}

static void
test_record_status_golden_bytes_and_round_trip(void **state)
{
	uint8_t plain[1440];
	struct dd_stream_status s = golden_status(), out;

	(void)state;
	assert_int_equal(dd_record_put_status(plain, sizeof(plain), &s),
			 (int)sizeof(golden_status_bytes));
	assert_memory_equal(plain, golden_status_bytes, sizeof(golden_status_bytes));
	for (size_t i = sizeof(golden_status_bytes); i < sizeof(plain); i++)
		assert_int_equal(plain[i], 0);
	assert_int_equal(dd_record_parse_status(&out, plain, sizeof(plain)), 0);
	assert_status_equal(&out, &s);
}

static void
test_record_status_capacity(void **state)
{
	(void)state;
	assert_int_equal(dd_record_status_capacity(0), 0);
	assert_int_equal(dd_record_status_capacity(15), 0);
	assert_int_equal(dd_record_status_capacity(16 + 39), 0);
	assert_int_equal(dd_record_status_capacity(16 + 40), 1);
	assert_int_equal(dd_record_status_capacity(16 + 5 * 40 + 39), 5);
	/* The smallest datagram (1152: plaintext 1120) holds every channel. */
	assert_true((1120 - 16) / 40 >= DD_CHANNELS_MAX);
	assert_int_equal(dd_record_status_capacity(1120), DD_CHANNELS_MAX);
	assert_int_equal(dd_record_status_capacity(65440), DD_CHANNELS_MAX);
}

static void
test_record_status_full_capacity_round_trip(void **state)
{
	uint8_t plain[1120];
	struct dd_stream_status s, out;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.interval_ms = 1;
	s.count = (uint16_t)dd_record_status_capacity(sizeof(plain));
	for (unsigned i = 0; i < s.count; i++)
		s.entries[i] = (struct dd_stream_status_entry){ i * 7 + 1, UINT64_MAX - i, i * 2, i,
								 i * 3 };
	assert_true(dd_record_put_status(plain, sizeof(plain), &s) > 0);
	assert_int_equal(dd_record_parse_status(&out, plain, sizeof(plain)), 0);
	assert_status_equal(&out, &s);
	s.count++;
	assert_int_equal(dd_record_put_status(plain, sizeof(plain), &s), -ENOSPC);
}

static void
test_record_status_put_refuses_unsorted_and_empty(void **state)
{
	uint8_t plain[1440];
	struct dd_stream_status s = golden_status();

	(void)state;
	s.entries[1].channel = s.entries[0].channel;
	assert_int_equal(dd_record_put_status(plain, sizeof(plain), &s), -EINVAL);
	s = golden_status();
	s.count = 0;
	assert_int_equal(dd_record_put_status(plain, sizeof(plain), &s), -EINVAL);
	s = golden_status();
	s.interval_ms = 0;
	assert_int_equal(dd_record_put_status(plain, sizeof(plain), &s), -EINVAL);
	s = golden_status();
	s.entries[0].start_seq = s.entries[0].next_seq + 1;
	assert_int_equal(dd_record_put_status(plain, sizeof(plain), &s), -EINVAL);
}

static void
test_record_status_parse_rejects_bad_messages(void **state)
{
	uint8_t plain[1440];
	struct dd_stream_status s = golden_status();

	(void)state;
	assert_true(dd_record_put_status(plain, sizeof(plain), &s) > 0);
	for (size_t len = 0; len < sizeof(golden_status_bytes); len++)
		expect_status_refused(plain, len, "truncated");
	plain[0] = DD_KIND_BEACON;
	expect_status_refused(plain, sizeof(plain), "wrong kind");
	plain[0] = DD_KIND_STREAM_STATUS;
	for (size_t at = 0; at < sizeof(plain); at++) {
		static const size_t zero_at[] = { 1, 8, 15, 20, 23, 60, 63, 96, 100, 1439 };
		bool is_zero = false;

		for (size_t j = 0; j < sizeof(zero_at) / sizeof(zero_at[0]); j++)
			is_zero |= zero_at[j] == at;
		if (!is_zero)
			continue;
		plain[at] = 1;
		expect_status_refused(plain, sizeof(plain), "reserved byte or padding set");
		plain[at] = 0;
	}
	dd_store_be16(plain + 2, 0);
	expect_status_refused(plain, sizeof(plain), "no entries");
	dd_store_be16(plain + 2, DD_CHANNELS_MAX + 1);
	expect_status_refused(plain, sizeof(plain), "more entries than a daemon has channels");
	dd_store_be16(plain + 2, 2);
	dd_store_be32(plain + 4, 0);
	expect_status_refused(plain, sizeof(plain), "interval 0");
	dd_store_be32(plain + 4, 1000);
	dd_store_be32(plain + 56, 0x01020304);
	expect_status_refused(plain, sizeof(plain), "the same channel twice");
	dd_store_be32(plain + 56, 0x01020303);
	expect_status_refused(plain, sizeof(plain), "channels not increasing");
	dd_store_be32(plain + 56, 0xa0000000);
	plain[16 + 31] = 78;
	expect_status_refused(plain, sizeof(plain), "start_seq above next_seq");
	plain[16 + 31] = 70;
	assert_int_equal(dd_record_parse_status(&s, plain, sizeof(plain)), 0);
	{
		uint8_t small[16 + 1 * 40 + 39];

		memcpy(small, plain, sizeof(small));
		expect_status_refused(small, sizeof(small), "entries past the end");
	}
}

/* --------------------------------------------------------- channel ids */

static void
test_record_channel_id_golden(void **state)
{
	(void)state;
	/* First 4 bytes of SHA-256("diode-channel:" NAME), computed with Python's hashlib. */
	assert_int_equal(dd_record_channel_id("hist"), 0xa9b709c4);
	assert_int_equal(dd_record_channel_id("syslog"), 0x26974a9d);
	assert_int_equal(dd_record_channel_id("a"), 0x2716efe9);
	assert_int_equal(dd_record_channel_id("b"), 0x96074ab8);
}

/* -------------------------------------------------------- record framing */

struct collected {
	unsigned n;
	size_t lens[64];
	uint8_t first[64];
	int stop_at;
};

static int
collect(void *arg, const uint8_t *rec, size_t len)
{
	struct collected *c = arg;

	if (c->stop_at >= 0 && (int)c->n == c->stop_at)
		return 42;
	c->lens[c->n] = len;
	c->first[c->n] = len > 0 ? rec[0] : 0;
	c->n++;
	return 0;
}

static void
test_record_max_for_fragment_sizes(void **state)
{
	(void)state;
	assert_int_equal(dd_record_max_for(1408), 16 * 1408 - 2);
	assert_int_equal(dd_record_max_for(1088), 16 * 1088 - 2);
	assert_int_equal(dd_record_max_for(65408), DD_RECORD_MAX);
	assert_int_equal(dd_record_max_for(0), 0);
}

static void
test_record_append_and_walk_round_trip(void **state)
{
	uint8_t area[2 * FRAG_LEN], rec[1500];
	struct dd_stream_frag f = { .k = 2, .m = 0, .count = 0 };
	struct collected c = { .stop_at = -1 };
	size_t used = 0, lens[] = { 0, 1, 100, 1500, 7 };

	(void)state;
	memset(area, 0, sizeof(area));
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		memset(rec, (int)('a' + i), sizeof(rec));
		used = dd_record_append(area, sizeof(area), used, rec, lens[i]);
		assert_true(used > 0);
		f.count++;
	}
	f.bytes = (uint32_t)used;
	assert_int_equal(used, 5 * 2 + 0 + 1 + 100 + 1500 + 7);
	assert_int_equal(dd_record_block_walk(area, sizeof(area), &f, collect, &c), 0);
	assert_int_equal(c.n, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(c.lens[i], lens[i]);
		if (lens[i] > 0)
			assert_int_equal(c.first[i], 'a' + i);
	}
	/* A callback can stop the walk. */
	c = (struct collected){ .stop_at = 2 };
	assert_int_equal(dd_record_block_walk(area, sizeof(area), &f, collect, &c), 42);
	assert_int_equal(c.n, 2);
}

static void
test_record_append_refuses_what_does_not_fit(void **state)
{
	uint8_t area[64], big[DD_RECORD_MAX + 1];

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(dd_record_append(area, sizeof(area), 0, big, 62), 64);
	assert_int_equal(dd_record_append(area, sizeof(area), 0, big, 63), 0);
	assert_int_equal(dd_record_append(area, sizeof(area), 60, big, 2), 64);
	assert_int_equal(dd_record_append(area, sizeof(area), 60, big, 3), 0);
	assert_int_equal(dd_record_append(area, sizeof(area), 65, big, 0), 0);
	{
		uint8_t *huge = calloc(1, DD_RECORD_MAX * 2);

		assert_non_null(huge);
		assert_int_equal(dd_record_append(huge, DD_RECORD_MAX * 2, 0, big, DD_RECORD_MAX + 1), 0);
		assert_int_equal(dd_record_append(huge, DD_RECORD_MAX * 2, 0, big, DD_RECORD_MAX),
				 DD_RECORD_MAX + 2);
		free(huge);
	}
}

static void
expect_walk_refused(const uint8_t *area, size_t len, const struct dd_stream_frag *f,
		    const char *why)
{
	struct collected c = { .stop_at = -1 };

	if (dd_record_block_walk(area, len, f, collect, &c) != -EBADMSG)
		fail_msg("block accepted: %s", why);
	assert_int_equal(c.n, 0);
}

static void
test_record_walk_rejects_bad_framing(void **state)
{
	uint8_t area[FRAG_LEN];
	struct dd_stream_frag f = { .k = 1, .count = 2 };
	size_t used;

	(void)state;
	memset(area, 0, sizeof(area));
	used = dd_record_append(area, sizeof(area), 0, "hello", 5);
	used = dd_record_append(area, sizeof(area), used, "world!", 6);
	f.bytes = (uint32_t)used;
	f.count = 3;
	expect_walk_refused(area, sizeof(area), &f, "more records announced than framed");
	f.count = 1;
	expect_walk_refused(area, sizeof(area), &f, "fewer records announced than framed");
	f.count = 2;
	f.bytes = (uint32_t)used + 1;
	expect_walk_refused(area, sizeof(area), &f, "bytes past the last record");
	f.bytes = (uint32_t)used - 1;
	expect_walk_refused(area, sizeof(area), &f, "last record cut by bytes");
	f.bytes = (uint32_t)used;
	area[used + 10] = 1;
	expect_walk_refused(area, sizeof(area), &f, "padding not zero");
	area[used + 10] = 0;
	area[1] = 200;
	expect_walk_refused(area, sizeof(area), &f, "length runs past bytes");
	area[1] = 5;
	f.bytes = sizeof(area) + 1;
	expect_walk_refused(area, sizeof(area), &f, "bytes beyond the area");
	f.bytes = (uint32_t)used;
	{
		struct collected c = { .stop_at = -1 };

		assert_int_equal(dd_record_block_walk(area, sizeof(area), &f, collect, &c), 0);
		assert_int_equal(c.n, 2);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_frag_golden_bytes),
		cmocka_unit_test(test_record_frag_parse_rejects_every_other_length),
		cmocka_unit_test(test_record_frag_parse_rejects_kind_and_reserved),
		cmocka_unit_test(test_record_frag_parse_rejects_bad_fields),
		cmocka_unit_test(test_record_frag_accepts_limits),
		cmocka_unit_test(test_record_frag_every_header_bit_flip_refused_or_round_trips),
		cmocka_unit_test(test_record_status_golden_bytes_and_round_trip),
		cmocka_unit_test(test_record_status_capacity),
		cmocka_unit_test(test_record_status_full_capacity_round_trip),
		cmocka_unit_test(test_record_status_put_refuses_unsorted_and_empty),
		cmocka_unit_test(test_record_status_parse_rejects_bad_messages),
		cmocka_unit_test(test_record_channel_id_golden),
		cmocka_unit_test(test_record_max_for_fragment_sizes),
		cmocka_unit_test(test_record_append_and_walk_round_trip),
		cmocka_unit_test(test_record_append_refuses_what_does_not_fit),
		cmocka_unit_test(test_record_walk_rejects_bad_framing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
