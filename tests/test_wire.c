/* Unit tests for common/wire.c: golden bytes, strict header and message parsing, block layout. */
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
#include "path.h"
#include "wire.h"

#define FRAG_LEN 1408                                /* dd_wire_frag_len(DD_DGRAM_DEFAULT) */
#define PLAIN_LEN (DD_DGRAM_DEFAULT - DD_SEALED_OVERHEAD) /* 1440 */
#define GOLDEN_PATH "dir/report.csv"

static const uint8_t zero_block[sizeof(struct dd_beacon)];

static void
assert_zeroed(const void *p, size_t n)
{
	assert_memory_equal(p, zero_block, n);
}

/* Field by field: structs have padding, so never memcmp them. */
static void
assert_frag_equal(const struct dd_frag *a, const struct dd_frag *b)
{
	assert_int_equal(a->k, b->k);
	assert_int_equal(a->m, b->m);
	assert_int_equal(a->index, b->index);
	assert_int_equal(a->k_full, b->k_full);
	assert_int_equal(a->pass, b->pass);
	assert_int_equal(a->transfer, b->transfer);
	assert_int_equal(a->block, b->block);
	assert_true(a->size == b->size);
}

static void
assert_announce_equal(const struct dd_announce *a, const struct dd_announce *b)
{
	assert_int_equal(a->cipher, b->cipher);
	assert_int_equal(a->dgram_size, b->dgram_size);
	assert_memory_equal(a->ephemeral, b->ephemeral, DD_KEY_LEN);
	assert_memory_equal(a->sender, b->sender, DD_KEY_LEN);
	assert_memory_equal(a->receiver, b->receiver, DD_KEY_LEN);
	assert_true(a->started == b->started);
}

static void
assert_beacon_equal(const struct dd_beacon *a, const struct dd_beacon *b)
{
	assert_int_equal(a->interval_ms, b->interval_ms);
	assert_true(a->time_ms == b->time_ms);
	assert_true(a->datagrams == b->datagrams);
	assert_true(a->bytes == b->bytes);
	assert_int_equal(a->files_queued, b->files_queued);
	assert_int_equal(a->transfers_active, b->transfers_active);
	assert_int_equal(a->transfers_done, b->transfers_done);
	assert_int_equal(a->complete_below, b->complete_below);
	assert_int_equal(a->count, b->count);
	for (size_t i = 0; i < a->count; i++) {
		const struct dd_beacon_entry *x = &a->entries[i], *y = &b->entries[i];

		assert_int_equal(x->transfer, y->transfer);
		assert_int_equal(x->status, y->status);
		assert_int_equal(x->pass, y->pass);
		assert_true(x->size == y->size);
		assert_true(x->last_seq == y->last_seq);
	}
}

/* ------------------------------------------------------------ golden data */

static const struct dd_hdr golden_hdr = {
	.type = DD_TYPE_SEALED,
	.epoch = 0x0102,
	.session = 0x03040506,
	.seq = 0x0708090a0b0c0d0eull,
};

static const uint8_t golden_hdr_bytes[DD_HDR_LEN] = {
	0x01, 0x02, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
	0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
};

static void
fill_key(uint8_t *key, uint8_t first)
{
	for (size_t i = 0; i < DD_KEY_LEN; i++)
		key[i] = (uint8_t)(first + i);
}

static struct dd_announce
golden_announce(void)
{
	struct dd_announce a = {
		.cipher = DD_CIPHER_CHACHA20POLY1305,
		.dgram_size = DD_DGRAM_DEFAULT,
		.started = 0x0000000065a1b2c3ull,
	};

	fill_key(a.ephemeral, 0x10);
	fill_key(a.sender, 0x40);
	fill_key(a.receiver, 0x80);
	return a;
}

/* A whole announce datagram: header, body, AEAD tag and static tag (neither
 * checked by the wire layer). */
static void
golden_announce_dgram(uint8_t buf[DD_ANNOUNCE_LEN])
{
	struct dd_hdr h = golden_hdr;
	struct dd_announce a = golden_announce();

	h.type = DD_TYPE_ANNOUNCE;
	dd_wire_put_header(buf, &h);
	dd_wire_put_announce(buf + DD_HDR_LEN, &a);
	memset(buf + DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN, 0xee, DD_TAG_LEN);
	memset(buf + DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN + DD_TAG_LEN, 0xdd, DD_STATIC_TAG_LEN);
}

/* A sealed datagram of len bytes: header, then ciphertext-like bytes. */
static uint8_t *
golden_sealed_dgram(size_t len)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	dd_wire_put_header(buf, &golden_hdr);
	for (size_t i = DD_HDR_LEN; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	return buf;
}

/* Golden manifest: FINAL, digest set, 32+8 FEC, path "dir/report.csv". */
static struct dd_manifest
golden_manifest(void)
{
	struct dd_manifest m = {
		.flags = DD_MANIFEST_FINAL,
		.transfer = 0x01020304,
		.size = 100000,
		.mtime = 1700000000,
		.mode = 0644,
		.k_full = 32,
		.m_full = 8,
		.pass = 0,
		.passes = 1,
		.path_len = sizeof(GOLDEN_PATH) - 1,
		.path = GOLDEN_PATH,
	};

	for (size_t i = 0; i < DD_SHA256_LEN; i++)
		m.sha256[i] = (uint8_t)(0xa0 + i);
	return m;
}

/* Encode m into a zeroed plaintext of PLAIN_LEN bytes; returns bytes used. */
static size_t
put_manifest_plain(uint8_t plain[PLAIN_LEN], const struct dd_manifest *m)
{
	int n;

	memset(plain, 0, PLAIN_LEN);
	n = dd_wire_put_manifest(plain, PLAIN_LEN, m);
	assert_true(n > 0);
	return (size_t)n;
}

/* Golden fragment: block 1 of 3 (10 data fragments), a parity fragment. The
 * file has two full blocks of 10 x 1408 bytes and 3000 bytes in block 2. */
#define GOLDEN_FRAG_SIZE (2ull * 10 * FRAG_LEN + 3000)

static struct dd_frag
golden_frag(void)
{
	struct dd_frag f = {
		.k = 10, .m = 4, .index = 12, .k_full = 10, .pass = 2,
		.transfer = 77, .block = 1, .size = GOLDEN_FRAG_SIZE,
	};

	return f;
}

static void
put_frag_plain(uint8_t plain[PLAIN_LEN], const struct dd_frag *f)
{
	memset(plain, 0x5a, PLAIN_LEN); /* payload bytes are opaque */
	dd_wire_put_frag(plain, f);
}

static struct dd_beacon
golden_beacon(void)
{
	struct dd_beacon b = {
		.interval_ms = 1000,
		.time_ms = 1700000000123ull,
		.datagrams = 123456789,
		.bytes = 181702705408ull,
		.files_queued = 5,
		.transfers_active = 2,
		.transfers_done = 9,
		.complete_below = 0x0a0b0c0d,
		.count = 3,
	};

	b.entries[0] = (struct dd_beacon_entry){ .transfer = 7, .status = DD_XFER_SENDING,
						 .pass = 0, .size = 1 };
	b.entries[1] = (struct dd_beacon_entry){ .transfer = 8, .status = DD_XFER_SENT,
						 .pass = 3, .size = 1ull << 40,
						 .last_seq = 0x1122334455667788ull };
	b.entries[2] = (struct dd_beacon_entry){ .transfer = 0xffffffff,
						 .status = DD_XFER_ABANDONED, .pass = 255,
						 .size = UINT64_MAX, .last_seq = 42 };
	return b;
}

static size_t
put_beacon_plain(uint8_t plain[PLAIN_LEN], const struct dd_beacon *b)
{
	int n;

	memset(plain, 0, PLAIN_LEN);
	n = dd_wire_put_beacon(plain, PLAIN_LEN, b);
	assert_true(n > 0);
	return (size_t)n;
}

/* ------------------------------------------------------------------ header */

static void
test_wire_header_golden_bytes(void **state)
{
	uint8_t buf[DD_HDR_LEN];

	memset(buf, 0xcc, sizeof(buf));
	dd_wire_put_header(buf, &golden_hdr);
	assert_memory_equal(buf, golden_hdr_bytes, DD_HDR_LEN);
}

static void
test_wire_header_parse_golden_sealed_and_announce(void **state)
{
	uint8_t ann[DD_ANNOUNCE_LEN];
	uint8_t *sealed = golden_sealed_dgram(DD_DGRAM_DEFAULT);
	struct dd_hdr h;

	assert_int_equal(dd_wire_parse_header(&h, sealed, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(h.type, DD_TYPE_SEALED);
	assert_int_equal(h.epoch, 0x0102);
	assert_int_equal(h.session, 0x03040506);
	assert_true(h.seq == 0x0708090a0b0c0d0eull);

	golden_announce_dgram(ann);
	assert_int_equal(dd_wire_parse_header(&h, ann, sizeof(ann)), 0);
	assert_int_equal(h.type, DD_TYPE_ANNOUNCE);
	assert_int_equal(h.session, 0x03040506);
	free(sealed);
}

static void
test_wire_header_parse_rejects_every_truncation_of_announce(void **state)
{
	uint8_t ann[DD_ANNOUNCE_LEN];
	struct dd_hdr h;

	golden_announce_dgram(ann);
	for (size_t len = 0; len < DD_ANNOUNCE_LEN; len++) {
		memset(&h, 0xff, sizeof(h));
		assert_int_equal(dd_wire_parse_header(&h, ann, len), -EBADMSG);
		assert_zeroed(&h, sizeof(h));
	}
}

static void
test_wire_header_parse_rejects_every_truncation_of_min_sealed(void **state)
{
	uint8_t *sealed = golden_sealed_dgram(DD_DGRAM_MIN);
	struct dd_hdr h;

	for (size_t len = 0; len < DD_DGRAM_MIN; len++) {
		memset(&h, 0xff, sizeof(h));
		assert_int_equal(dd_wire_parse_header(&h, sealed, len), -EBADMSG);
		assert_zeroed(&h, sizeof(h));
	}
	free(sealed);
}

/* A sealed datagram cut to another valid datagram size still has a well-formed
 * header: the wire layer cannot know the session's size, so only those cuts pass
 * here (dd_crypto_rx_open refuses them with -EMSGSIZE, see test_crypto). */
static void
test_wire_header_parse_rejects_truncations_of_sealed_unless_valid_size(void **state)
{
	uint8_t *sealed = golden_sealed_dgram(DD_DGRAM_DEFAULT);
	struct dd_hdr h;
	unsigned accepted = 0;

	for (size_t len = 0; len < DD_DGRAM_DEFAULT; len++) {
		int rc = dd_wire_parse_header(&h, sealed, len);

		if (len >= DD_DGRAM_MIN && len % 64 == 0) {
			assert_int_equal(rc, 0);
			accepted++;
		} else {
			assert_int_equal(rc, -EBADMSG);
			assert_zeroed(&h, sizeof(h));
		}
	}
	assert_int_equal(accepted, (DD_DGRAM_DEFAULT - DD_DGRAM_MIN) / 64); /* 1152..1408 */
	free(sealed);
}

static void
test_wire_header_parse_rejects_oversize(void **state)
{
	size_t cap = DD_DGRAM_MAX + 128;
	uint8_t *sealed = golden_sealed_dgram(cap);
	struct dd_hdr h;

	assert_int_equal(dd_wire_parse_header(&h, sealed, DD_DGRAM_MAX), 0);
	assert_int_equal(dd_wire_parse_header(&h, sealed, DD_DGRAM_MAX + 64), -EBADMSG);
	assert_int_equal(dd_wire_parse_header(&h, sealed, DD_DGRAM_MAX + 1), -EBADMSG);
	assert_int_equal(dd_wire_parse_header(&h, sealed, cap), -EBADMSG);
	assert_int_equal(dd_wire_parse_header(&h, sealed, SIZE_MAX), -EBADMSG);
	free(sealed);
}

static void
test_wire_header_parse_rejects_wrong_version(void **state)
{
	uint8_t *sealed = golden_sealed_dgram(DD_DGRAM_DEFAULT);
	struct dd_hdr h;

	for (unsigned v = 0; v < 256; v++) {
		sealed[0] = (uint8_t)v;
		assert_int_equal(dd_wire_parse_header(&h, sealed, DD_DGRAM_DEFAULT),
				 v == DD_VERSION ? 0 : -EBADMSG);
	}
	free(sealed);
}

static void
test_wire_header_parse_rejects_unknown_type(void **state)
{
	uint8_t *sealed = golden_sealed_dgram(DD_DGRAM_DEFAULT);
	uint8_t ann[DD_ANNOUNCE_LEN];
	struct dd_hdr h;

	golden_announce_dgram(ann);
	for (unsigned t = 0; t < 256; t++) {
		sealed[1] = (uint8_t)t;
		ann[1] = (uint8_t)t;
		assert_int_equal(dd_wire_parse_header(&h, sealed, DD_DGRAM_DEFAULT),
				 t == DD_TYPE_SEALED ? 0 : -EBADMSG);
		assert_int_equal(dd_wire_parse_header(&h, ann, DD_ANNOUNCE_LEN),
				 t == DD_TYPE_ANNOUNCE ? 0 : -EBADMSG);
	}
	free(sealed);
}

static void
test_wire_header_parse_rejects_sealed_sizes_not_multiple_of_64(void **state)
{
	uint8_t *sealed = golden_sealed_dgram(DD_DGRAM_MAX);
	struct dd_hdr h;

	for (size_t len = DD_DGRAM_MIN; len <= DD_DGRAM_MAX; len++)
		assert_int_equal(dd_wire_parse_header(&h, sealed, len),
				 len % 64 == 0 ? 0 : -EBADMSG);
	free(sealed);
}

static void
test_wire_header_parse_rejects_announce_of_other_length(void **state)
{
	uint8_t *buf = golden_sealed_dgram(DD_DGRAM_MAX);
	struct dd_hdr h;

	buf[1] = DD_TYPE_ANNOUNCE;
	for (size_t len = 0; len <= DD_DGRAM_MAX; len++)
		assert_int_equal(dd_wire_parse_header(&h, buf, len),
				 len == DD_ANNOUNCE_LEN ? 0 : -EBADMSG);
	free(buf);
}

static void
test_wire_header_bit_flips_rejected_or_round_trip(void **state)
{
	uint8_t *sealed = golden_sealed_dgram(DD_DGRAM_DEFAULT);
	uint8_t out[DD_HDR_LEN];
	struct dd_hdr h;

	for (size_t bit = 0; bit < DD_HDR_LEN * 8; bit++) {
		int rc;

		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = dd_wire_parse_header(&h, sealed, DD_DGRAM_DEFAULT);
		if (bit < 16) {
			/* Version 1 and type 2 have no valid single-bit neighbour. */
			assert_int_equal(rc, -EBADMSG);
		} else {
			assert_int_equal(rc, 0);
			dd_wire_put_header(out, &h);
			assert_memory_equal(out, sealed, DD_HDR_LEN);
		}
		sealed[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	free(sealed);
}

static void
test_wire_dgram_size_ok_table(void **state)
{
	assert_false(dd_wire_dgram_size_ok(0));
	assert_false(dd_wire_dgram_size_ok(DD_DGRAM_MIN - 64));
	assert_false(dd_wire_dgram_size_ok(DD_DGRAM_MIN - 1));
	assert_true(dd_wire_dgram_size_ok(DD_DGRAM_MIN));
	assert_false(dd_wire_dgram_size_ok(DD_DGRAM_MIN + 1));
	assert_true(dd_wire_dgram_size_ok(DD_DGRAM_DEFAULT));
	assert_false(dd_wire_dgram_size_ok(1500));
	assert_true(dd_wire_dgram_size_ok(DD_DGRAM_MAX));
	assert_false(dd_wire_dgram_size_ok(DD_DGRAM_MAX + 64));
	assert_false(dd_wire_dgram_size_ok(65536));
	assert_false(dd_wire_dgram_size_ok(SIZE_MAX));
	assert_int_equal(dd_wire_frag_len(DD_DGRAM_DEFAULT), FRAG_LEN);
	assert_int_equal(DD_ANNOUNCE_LEN, 160);
}

/* ---------------------------------------------------------------- announce */

static void
test_wire_announce_golden_layout(void **state)
{
	struct dd_announce a = golden_announce();
	uint8_t body[DD_ANNOUNCE_BODY_LEN], expect[DD_ANNOUNCE_BODY_LEN];

	/* Layout from docs/PROTOCOL.md, written out independently of the encoder. */
	memset(expect, 0, sizeof(expect));
	expect[0] = DD_CIPHER_CHACHA20POLY1305;
	expect[4] = 0x05; /* 1472 = 0x05c0 */
	expect[5] = 0xc0;
	fill_key(expect + 8, 0x10);
	fill_key(expect + 40, 0x40);
	fill_key(expect + 72, 0x80);
	memcpy(expect + 104, "\x00\x00\x00\x00\x65\xa1\xb2\xc3", 8);

	memset(body, 0xcc, sizeof(body));
	dd_wire_put_announce(body, &a);
	assert_memory_equal(body, expect, sizeof(expect));
}

static void
test_wire_announce_round_trip(void **state)
{
	struct dd_announce a = golden_announce(), b;
	uint8_t body[DD_ANNOUNCE_BODY_LEN];

	dd_wire_put_announce(body, &a);
	assert_int_equal(dd_wire_parse_announce(&b, body, sizeof(body)), 0);
	assert_announce_equal(&a, &b);

	a.cipher = DD_CIPHER_AES256GCM;
	a.dgram_size = DD_DGRAM_MAX;
	dd_wire_put_announce(body, &a);
	assert_int_equal(dd_wire_parse_announce(&b, body, sizeof(body)), 0);
	assert_int_equal(b.cipher, DD_CIPHER_AES256GCM);
	assert_int_equal(b.dgram_size, DD_DGRAM_MAX);
}

static void
test_wire_announce_parse_rejects_wrong_length_and_fields(void **state)
{
	struct dd_announce a = golden_announce(), b;
	uint8_t body[DD_ANNOUNCE_BODY_LEN + 1];
	static const unsigned bad_sizes[] = { 0, 1088, 1151, 1153, 1471, 1473, 65535 };

	dd_wire_put_announce(body, &a);
	body[DD_ANNOUNCE_BODY_LEN] = 0;
	for (size_t len = 0; len <= sizeof(body); len++) {
		memset(&b, 0xff, sizeof(b));
		assert_int_equal(dd_wire_parse_announce(&b, body, len),
				 len == DD_ANNOUNCE_BODY_LEN ? 0 : -EBADMSG);
		if (len != DD_ANNOUNCE_BODY_LEN)
			assert_zeroed(&b, sizeof(b));
	}
	for (unsigned c = 0; c < 256; c++) {
		body[0] = (uint8_t)c;
		assert_int_equal(dd_wire_parse_announce(&b, body, DD_ANNOUNCE_BODY_LEN),
				 c == DD_CIPHER_AES256GCM || c == DD_CIPHER_CHACHA20POLY1305 ?
				 0 : -EBADMSG);
	}
	dd_wire_put_announce(body, &a);
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		dd_store_be16(body + 4, (uint16_t)bad_sizes[i]);
		assert_int_equal(dd_wire_parse_announce(&b, body, DD_ANNOUNCE_BODY_LEN), -EBADMSG);
		assert_zeroed(&b, sizeof(b));
	}
	dd_wire_put_announce(body, &a);
	for (size_t off = 1; off < 8; off++) {
		if (off == 4 || off == 5)
			continue;
		body[off] = 0x01;
		assert_int_equal(dd_wire_parse_announce(&b, body, DD_ANNOUNCE_BODY_LEN), -EBADMSG);
		body[off] = 0;
	}
}

static void
test_wire_announce_every_bit_flip_rejected_or_changes_fields(void **state)
{
	struct dd_announce a = golden_announce(), b;
	uint8_t body[DD_ANNOUNCE_BODY_LEN], out[DD_ANNOUNCE_BODY_LEN];
	unsigned refused = 0;

	dd_wire_put_announce(body, &a);
	for (size_t bit = 0; bit < DD_ANNOUNCE_BODY_LEN * 8; bit++) {
		body[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (dd_wire_parse_announce(&b, body, sizeof(body)) != 0) {
			assert_zeroed(&b, sizeof(b));
			refused++;
		} else {
			/* Accepted: the parsed fields encode back to the flipped bytes,
			 * so they differ from the golden announce. */
			assert_true(b.cipher != a.cipher || b.dgram_size != a.dgram_size ||
				    memcmp(b.ephemeral, a.ephemeral, DD_KEY_LEN) != 0 ||
				    memcmp(b.sender, a.sender, DD_KEY_LEN) != 0 ||
				    memcmp(b.receiver, a.receiver, DD_KEY_LEN) != 0 ||
				    b.started != a.started);
			dd_wire_put_announce(out, &b);
			assert_memory_equal(out, body, sizeof(body));
		}
		body[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	/* cipher 8, reserved 5 x 8, dgram_size bits 0-5 (not a multiple of 64) and
	 * bit 10 (1472 ^ 1024 = 448 < 1152) */
	assert_int_equal(refused, 8 + 40 + 6 + 1);
}

/* ---------------------------------------------------------------- fragment */

static void
test_wire_frag_round_trip(void **state)
{
	struct dd_frag f = golden_frag(), g;
	uint8_t plain[PLAIN_LEN];

	put_frag_plain(plain, &f);
	assert_int_equal(plain[0], DD_KIND_FRAGMENT);
	assert_int_equal(dd_wire_parse_frag(&g, plain, PLAIN_LEN, FRAG_LEN), 0);
	assert_frag_equal(&f, &g);

	/* The short last block. */
	f.block = 2;
	f.k = 3;
	f.index = 0;
	put_frag_plain(plain, &f);
	assert_int_equal(dd_wire_parse_frag(&g, plain, PLAIN_LEN, FRAG_LEN), 0);
	assert_frag_equal(&f, &g);

	/* k + m == 255, the most a block may hold. */
	f = (struct dd_frag){ .k = 200, .m = 55, .index = 254, .k_full = 200,
			      .size = 200ull * FRAG_LEN };
	put_frag_plain(plain, &f);
	assert_int_equal(dd_wire_parse_frag(&g, plain, PLAIN_LEN, FRAG_LEN), 0);
	assert_frag_equal(&f, &g);
}

static void
expect_frag_refused(const struct dd_frag *f, const char *why)
{
	uint8_t plain[PLAIN_LEN];
	struct dd_frag g;

	put_frag_plain(plain, f);
	memset(&g, 0xff, sizeof(g));
	if (dd_wire_parse_frag(&g, plain, PLAIN_LEN, FRAG_LEN) != -EBADMSG)
		fail_msg("fragment accepted: %s", why);
	assert_zeroed(&g, sizeof(g));
}

static void
test_wire_frag_parse_rejects_bad_headers(void **state)
{
	struct dd_frag f;

	f = golden_frag();
	f.index = 14;
	expect_frag_refused(&f, "index == k + m");
	f.index = 255;
	expect_frag_refused(&f, "index 255");
	f = golden_frag();
	f.block = 3;
	expect_frag_refused(&f, "block == block count");
	f.block = UINT32_MAX;
	expect_frag_refused(&f, "block UINT32_MAX");
	f = golden_frag();
	f.k = 9;
	expect_frag_refused(&f, "k 9 for a full block of 10");
	f.k = 11;
	expect_frag_refused(&f, "k 11 for a full block of 10");
	f = golden_frag();
	f.block = 2;
	expect_frag_refused(&f, "k 10 for the last block of 3");
	f = golden_frag();
	f.size = 0;
	expect_frag_refused(&f, "size 0");
	f = golden_frag();
	f.k = 0;
	expect_frag_refused(&f, "k 0");
	f = golden_frag();
	f.k_full = 0;
	expect_frag_refused(&f, "k_full 0");
	f = (struct dd_frag){ .k = 200, .m = 56, .index = 0, .k_full = 200,
			      .size = 200ull * FRAG_LEN };
	expect_frag_refused(&f, "k + m == 256");
	f.m = 255;
	expect_frag_refused(&f, "k + m == 455");
	/* Block count saturates at UINT32_MAX: the last block can never be named. */
	f = (struct dd_frag){ .k = 1, .m = 0, .index = 0, .k_full = 1, .size = UINT64_MAX,
			      .block = UINT32_MAX };
	expect_frag_refused(&f, "block beyond a saturated count");
}

static void
test_wire_frag_parse_rejects_wrong_length(void **state)
{
	struct dd_frag f = golden_frag(), g;
	uint8_t plain[PLAIN_LEN + 1];

	put_frag_plain(plain, &f);
	plain[PLAIN_LEN] = 0x5a;
	for (size_t len = 0; len <= sizeof(plain); len++) {
		memset(&g, 0xff, sizeof(g));
		assert_int_equal(dd_wire_parse_frag(&g, plain, len, FRAG_LEN),
				 len == PLAIN_LEN ? 0 : -EBADMSG);
		if (len != PLAIN_LEN)
			assert_zeroed(&g, sizeof(g));
	}
	/* The same bytes under another datagram size's layout. */
	assert_int_equal(dd_wire_parse_frag(&g, plain, PLAIN_LEN, FRAG_LEN - 64), -EBADMSG);
}

static void
test_wire_frag_parse_rejects_wrong_kind_and_reserved(void **state)
{
	struct dd_frag f = golden_frag(), g;
	uint8_t plain[PLAIN_LEN];
	static const size_t reserved[] = { 14, 15, 24, 25, 26, 27, 28, 29, 30, 31 };

	put_frag_plain(plain, &f);
	for (unsigned kind = 0; kind < 256; kind++) {
		plain[0] = (uint8_t)kind;
		assert_int_equal(dd_wire_parse_frag(&g, plain, PLAIN_LEN, FRAG_LEN),
				 kind == DD_KIND_FRAGMENT ? 0 : -EBADMSG);
	}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		put_frag_plain(plain, &f);
		plain[reserved[i]] = 0x80;
		assert_int_equal(dd_wire_parse_frag(&g, plain, PLAIN_LEN, FRAG_LEN), -EBADMSG);
		assert_zeroed(&g, sizeof(g));
	}
}

static void
test_wire_frag_every_header_bit_flip_rejected_or_round_trip(void **state)
{
	struct dd_frag f = golden_frag(), g;
	uint8_t plain[PLAIN_LEN], out[PLAIN_LEN];

	put_frag_plain(plain, &f);
	for (size_t bit = 0; bit < DD_FRAG_HDR_LEN * 8; bit++) {
		plain[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (dd_wire_parse_frag(&g, plain, PLAIN_LEN, FRAG_LEN) == 0) {
			memcpy(out, plain, sizeof(out));
			dd_wire_put_frag(out, &g);
			assert_memory_equal(out, plain, DD_FRAG_HDR_LEN);
		} else {
			assert_zeroed(&g, sizeof(g));
		}
		plain[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}

/* ----------------------------------------------------------- block layout */

struct block_case {
	uint64_t size;
	unsigned k_full;
	size_t frag_len;
	uint32_t blocks;
	uint32_t block; /* block to ask dd_wire_block_k about */
	unsigned k;
};

static void
test_wire_block_count_and_k_table(void **state)
{
	const uint64_t full = 10ull * FRAG_LEN; /* bytes in a block of 10 */
	const struct block_case cases[] = {
		{ 0, 10, FRAG_LEN, 0, 0, 0 },
		{ 1, 10, FRAG_LEN, 1, 0, 1 },
		{ FRAG_LEN - 1, 10, FRAG_LEN, 1, 0, 1 },
		{ FRAG_LEN, 10, FRAG_LEN, 1, 0, 1 },
		{ FRAG_LEN + 1, 10, FRAG_LEN, 1, 0, 2 },
		{ full - 1, 10, FRAG_LEN, 1, 0, 10 },
		{ full, 10, FRAG_LEN, 1, 0, 10 },
		{ full, 10, FRAG_LEN, 1, 1, 0 },
		{ full + 1, 10, FRAG_LEN, 2, 0, 10 },
		{ full + 1, 10, FRAG_LEN, 2, 1, 1 },
		{ 2 * full, 10, FRAG_LEN, 2, 1, 10 },
		{ 2 * full, 10, FRAG_LEN, 2, 2, 0 },
		{ 2 * full + 3000, 10, FRAG_LEN, 3, 2, 3 },
		{ 2 * full + 3000, 10, FRAG_LEN, 3, 3, 0 },
		{ 100, 1, 1, 100, 99, 1 },
		{ 100, 1, 1, 100, 100, 0 },
		{ 255ull * 65408, 255, 65408, 1, 0, 255 },
		/* No blocks without data fragments. */
		{ 1000, 0, FRAG_LEN, 0, 0, 0 },
		/* Exactly UINT32_MAX - 1 and UINT32_MAX blocks, and saturation above. */
		{ (uint64_t)(UINT32_MAX - 1) * FRAG_LEN, 1, FRAG_LEN, UINT32_MAX - 1,
		  UINT32_MAX - 2, 1 },
		{ (uint64_t)UINT32_MAX * FRAG_LEN, 1, FRAG_LEN, UINT32_MAX, UINT32_MAX - 1, 1 },
		{ (uint64_t)UINT32_MAX * FRAG_LEN + 1, 1, FRAG_LEN, UINT32_MAX, UINT32_MAX - 1, 1 },
		{ UINT64_MAX, 1, FRAG_LEN, UINT32_MAX, UINT32_MAX, 1 },
		{ UINT64_MAX, 255, 65408, UINT32_MAX, 0, 255 },
		{ UINT64_MAX, 255, 65408, UINT32_MAX, UINT32_MAX, 255 },
		{ UINT64_MAX, 1, 1, UINT32_MAX, UINT32_MAX, 1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct block_case *c = &cases[i];
		uint32_t blocks = dd_wire_block_count(c->size, c->k_full, c->frag_len);
		unsigned k = dd_wire_block_k(c->size, c->k_full, c->frag_len, c->block);

		if (blocks != c->blocks || k != c->k)
			fail_msg("case %zu: size %llu k_full %u frag_len %zu: %u blocks (want %u), "
				 "block %u has k %u (want %u)", i, (unsigned long long)c->size,
				 c->k_full, c->frag_len, blocks, c->blocks, c->block, k, c->k);
	}
	/* A zero fragment length has no layout either (callers never pass one:
	 * it comes from a checked datagram size). */
	assert_int_equal(dd_wire_block_count(1000, 10, 0), 0);
}

static void
test_wire_block_k_sums_to_size(void **state)
{
	/* For every size around block boundaries, the blocks' data fragments
	 * cover the file: sum(k) == ceil(size / frag_len). */
	const unsigned k_full = 4;
	const size_t fl = 64;

	for (uint64_t size = 1; size < 3 * k_full * fl + 2; size++) {
		uint32_t blocks = dd_wire_block_count(size, k_full, fl);
		uint64_t frags = 0;

		for (uint32_t b = 0; b < blocks; b++) {
			unsigned k = dd_wire_block_k(size, k_full, fl, b);

			assert_true(k >= 1 && k <= k_full);
			if (b + 1 < blocks)
				assert_int_equal(k, k_full);
			frags += k;
		}
		assert_int_equal(frags, (size + fl - 1) / fl);
		assert_int_equal(dd_wire_block_k(size, k_full, fl, blocks), 0);
	}
}

/* ---------------------------------------------------------------- manifest */

static void
test_wire_manifest_round_trip(void **state)
{
	struct dd_manifest m = golden_manifest(), p;
	uint8_t plain[PLAIN_LEN];
	size_t used = put_manifest_plain(plain, &m);

	assert_int_equal(used, DD_MANIFEST_HDR_LEN + m.path_len);
	assert_int_equal(plain[0], DD_KIND_MANIFEST);
	/* Whole plaintext (zero padding) and exact fit both parse. */
	assert_int_equal(dd_wire_parse_manifest(&p, plain, PLAIN_LEN, FRAG_LEN), 0);
	assert_int_equal(p.flags, m.flags);
	assert_int_equal(p.transfer, m.transfer);
	assert_true(p.size == m.size);
	assert_true(p.mtime == m.mtime);
	assert_int_equal(p.mode, m.mode);
	assert_int_equal(p.k_full, m.k_full);
	assert_int_equal(p.m_full, m.m_full);
	assert_memory_equal(p.sha256, m.sha256, DD_SHA256_LEN);
	assert_int_equal(p.path_len, m.path_len);
	assert_ptr_equal(p.path, (const char *)plain + DD_MANIFEST_HDR_LEN);
	assert_memory_equal(p.path, GOLDEN_PATH, m.path_len);
	assert_int_equal(dd_wire_parse_manifest(&p, plain, used, FRAG_LEN), 0);

	/* Not final: digest zero. ABORT alone. */
	m.flags = 0;
	memset(m.sha256, 0, DD_SHA256_LEN);
	put_manifest_plain(plain, &m);
	assert_int_equal(dd_wire_parse_manifest(&p, plain, PLAIN_LEN, FRAG_LEN), 0);
	m.flags = DD_MANIFEST_ABORT;
	put_manifest_plain(plain, &m);
	assert_int_equal(dd_wire_parse_manifest(&p, plain, PLAIN_LEN, FRAG_LEN), 0);
	assert_int_equal(p.flags, DD_MANIFEST_ABORT);
}

static void
test_wire_manifest_accepts_limits(void **state)
{
	struct dd_manifest m = golden_manifest(), p;
	uint8_t *plain = calloc(1, DD_MANIFEST_HDR_LEN + DD_PATH_MAX);
	char *path = malloc(DD_PATH_MAX);
	int n;

	assert_non_null(plain);
	assert_non_null(path);
	/* 1024-byte path: 200-byte components. */
	for (size_t i = 0; i < DD_PATH_MAX; i++)
		path[i] = i % 201 == 200 ? '/' : 'p';
	m.path = path;
	m.path_len = DD_PATH_MAX;
	m.mode = 07777;
	m.k_full = 1;
	m.m_full = 254;
	m.size = 0;
	n = dd_wire_put_manifest(plain, DD_MANIFEST_HDR_LEN + DD_PATH_MAX, &m);
	assert_int_equal(n, DD_MANIFEST_HDR_LEN + DD_PATH_MAX);
	assert_int_equal(dd_wire_parse_manifest(&p, plain, (size_t)n, FRAG_LEN), 0);
	assert_int_equal(p.path_len, DD_PATH_MAX);
	assert_int_equal(p.mode, 07777);
	/* The encoder refuses a path that does not fit. */
	assert_int_equal(dd_wire_put_manifest(plain, (size_t)n - 1, &m), -ENOSPC);
	free(plain);
	free(path);
}

static void
expect_manifest_refused(const uint8_t *plain, size_t len, const char *why)
{
	struct dd_manifest p;

	memset(&p, 0xff, sizeof(p));
	if (dd_wire_parse_manifest(&p, plain, len, FRAG_LEN) != -EBADMSG)
		fail_msg("manifest accepted: %s", why);
	assert_zeroed(&p, sizeof(p));
}

static void
test_wire_manifest_parse_rejects_bad_fields(void **state)
{
	struct dd_manifest g = golden_manifest(), m;
	uint8_t plain[PLAIN_LEN];
	char why[64];

	for (unsigned bit = 2; bit < 8; bit++) {
		m = g;
		m.flags = (uint8_t)(DD_MANIFEST_FINAL | 1u << bit);
		put_manifest_plain(plain, &m);
		snprintf(why, sizeof(why), "unknown flag 0x%02x", 1u << bit);
		expect_manifest_refused(plain, PLAIN_LEN, why);
	}
	m = g;
	m.flags = DD_MANIFEST_FINAL | DD_MANIFEST_ABORT;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "FINAL|ABORT");

	m = g;
	m.passes = 0;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "passes 0");
	m.passes = 3;
	m.pass = 3;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "pass 3 of 3");
	m = g;
	m.mode = 010000;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "mode 010000");
	m.mode = UINT32_MAX;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "mode 0xffffffff");

	m = g;
	m.k_full = 0;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "k_full 0");
	m.k_full = 200;
	m.m_full = 56;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "k + m 256");
	m.k_full = 255;
	m.m_full = 255;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "k + m 510");

	m = g;
	m.size = UINT64_MAX;
	m.k_full = 1;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "size needs 2^32-1 blocks or more");

	m = g;
	m.flags = 0;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "digest without FINAL");
	m.flags = DD_MANIFEST_ABORT;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "digest with ABORT");
	memset(m.sha256, 0, DD_SHA256_LEN);
	m.sha256[DD_SHA256_LEN - 1] = 1;
	put_manifest_plain(plain, &m);
	expect_manifest_refused(plain, PLAIN_LEN, "last digest byte without FINAL");

	put_manifest_plain(plain, &g);
	plain[0] = DD_KIND_FRAGMENT;
	expect_manifest_refused(plain, PLAIN_LEN, "kind fragment");
	plain[0] = DD_KIND_BEACON;
	expect_manifest_refused(plain, PLAIN_LEN, "kind beacon");
}

static void
test_wire_manifest_parse_rejects_bad_path_len(void **state)
{
	struct dd_manifest g = golden_manifest();
	uint8_t *plain = calloc(1, 4096);
	size_t used;

	assert_non_null(plain);
	used = put_manifest_plain(plain, &g);

	dd_store_be16(plain + 2, 0);
	expect_manifest_refused(plain, PLAIN_LEN, "path_len 0");
	/* 1025 path bytes that are otherwise fine. */
	memset(plain + DD_MANIFEST_HDR_LEN, 'x', DD_PATH_MAX + 1);
	dd_store_be16(plain + 2, DD_PATH_MAX + 1);
	expect_manifest_refused(plain, DD_MANIFEST_HDR_LEN + DD_PATH_MAX + 1, "path_len 1025");
	dd_store_be16(plain + 2, UINT16_MAX);
	expect_manifest_refused(plain, 4096, "path_len 65535");
	/* The path runs past the end of the buffer. */
	dd_store_be16(plain + 2, DD_PATH_MAX);
	expect_manifest_refused(plain, DD_MANIFEST_HDR_LEN + DD_PATH_MAX - 1, "path past end");
	dd_store_be16(plain + 2, 10);
	expect_manifest_refused(plain, DD_MANIFEST_HDR_LEN + 9, "path past end by one");
	/* Shorter than the header. */
	memset(plain, 0, 4096);
	used = put_manifest_plain(plain, &g);
	for (size_t len = 0; len < used; len++)
		expect_manifest_refused(plain, len, "truncated");
	free(plain);
}

static void
test_wire_manifest_parse_rejects_nonzero_padding_after_path(void **state)
{
	struct dd_manifest g = golden_manifest();
	uint8_t plain[PLAIN_LEN];
	size_t used = put_manifest_plain(plain, &g);
	struct dd_manifest p;

	for (size_t off = used; off < PLAIN_LEN; off++) {
		plain[off] = 0x20;
		expect_manifest_refused(plain, PLAIN_LEN, "padding byte set");
		plain[off] = 0;
	}
	assert_int_equal(dd_wire_parse_manifest(&p, plain, PLAIN_LEN, FRAG_LEN), 0);
}

static void
test_wire_manifest_parse_rejects_hostile_paths(void **state)
{
	static const struct {
		const char *path;
		size_t len;
	} hostile[] = {
#define P(lit) { lit, sizeof(lit) - 1 }
		P("../x"), P(".."), P("a/../../etc/passwd"), P("/etc/passwd"), P("/"),
		P("a//b"), P("a/"), P("./a"), P("a/./b"), P("."), P("a\\b"),
		P("a\nb"), P("a\x7f"), P("\xc0\xaf"), P("\xed\xa0\x80"), P("a\xc2\x85"),
		P("a\0b"),
#undef P
	};
	struct dd_manifest m = golden_manifest();
	uint8_t plain[PLAIN_LEN];

	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		m.path = hostile[i].path;
		m.path_len = (uint16_t)hostile[i].len;
		put_manifest_plain(plain, &m);
		expect_manifest_refused(plain, PLAIN_LEN, hostile[i].path);
		expect_manifest_refused(plain, DD_MANIFEST_HDR_LEN + hostile[i].len,
					hostile[i].path);
	}
}

/* Which single-bit flips of the golden manifest's 64-byte header must be
 * refused; worked out by hand from the field rules, not from the parser. */
static bool
manifest_flip_refused(size_t byte, unsigned bit)
{
	unsigned pos;

	if (byte == 0)
		return true; /* kind */
	if (byte == 1)
		return true; /* FINAL cleared with a digest set, FINAL|ABORT, unknown flag */
	if (byte == 2 || byte == 3)
		return true; /* path_len: shorter leaves path bytes as padding, longer
			      * takes in a NUL or passes 1024 */
	if (byte < 8)
		return false; /* transfer: any value */
	if (byte < 16) {
		/* size: from 2^48 bytes on, blocks of 32 x 1408 bytes number
		 * 2^32-1 or more; 2^47 + 100000 still needs fewer. */
		pos = (unsigned)(15 - byte) * 8 + bit;
		return pos >= 48;
	}
	if (byte < 24)
		return false; /* mtime: any value */
	if (byte < 28) {
		pos = (unsigned)(27 - byte) * 8 + bit;
		return pos >= 12; /* mode above 07777 */
	}
	if (byte == 28)
		return bit == 5; /* k_full 32 -> 0; the largest flip, 160 + 8, fits 255 */
	if (byte == 29)
		return false; /* m_full 8: at most 136 + 32 */
	if (byte == 30)
		return true; /* pass 0 of 1: any flip makes pass >= passes */
	if (byte == 31)
		return bit == 0; /* passes 1 -> 0; larger pass counts are fine */
	return false; /* digest of a FINAL manifest: any value */
}

static void
test_wire_manifest_every_header_bit_flip_refused_exactly_when_invalid(void **state)
{
	struct dd_manifest g = golden_manifest(), p;
	uint8_t plain[PLAIN_LEN], out[PLAIN_LEN];
	size_t used = put_manifest_plain(plain, &g);
	unsigned refused = 0;

	for (size_t bit = 0; bit < DD_MANIFEST_HDR_LEN * 8; bit++) {
		size_t byte = bit / 8;
		bool want_refused = manifest_flip_refused(byte, bit % 8);
		int rc;

		plain[byte] ^= (uint8_t)(1u << (bit % 8));
		rc = dd_wire_parse_manifest(&p, plain, PLAIN_LEN, FRAG_LEN);
		if (want_refused != (rc != 0))
			fail_msg("flip of byte %zu bit %zu: parse returned %d", byte, bit % 8, rc);
		if (rc == 0) {
			memset(out, 0, sizeof(out));
			assert_int_equal(dd_wire_put_manifest(out, sizeof(out), &p), (int)used);
			assert_memory_equal(out, plain, PLAIN_LEN);
		} else {
			assert_int_equal(rc, -EBADMSG);
			assert_zeroed(&p, sizeof(p));
			refused++;
		}
		plain[byte] ^= (uint8_t)(1u << (bit % 8));
	}
	/* kind 8, flags 8, path_len 16, size 16, mode 20, k_full 1, pass 8, passes 1 */
	assert_int_equal(refused, 78);
}

/* ------------------------------------------------------------------ beacon */

static void
test_wire_beacon_round_trip(void **state)
{
	struct dd_beacon b = golden_beacon(), p;
	uint8_t plain[PLAIN_LEN];
	size_t used = put_beacon_plain(plain, &b);

	assert_int_equal(used, DD_BEACON_HDR_LEN + 3 * DD_BEACON_ENTRY_LEN);
	assert_int_equal(plain[0], DD_KIND_BEACON);
	assert_int_equal(dd_wire_parse_beacon(&p, plain, PLAIN_LEN), 0);
	assert_beacon_equal(&p, &b);
	assert_int_equal(dd_wire_parse_beacon(&p, plain, used), 0);
	assert_beacon_equal(&p, &b);

	/* No entries: the header alone. */
	b.count = 0;
	memset(b.entries, 0, sizeof(b.entries));
	used = put_beacon_plain(plain, &b);
	assert_int_equal(used, DD_BEACON_HDR_LEN);
	assert_int_equal(dd_wire_parse_beacon(&p, plain, DD_BEACON_HDR_LEN), 0);
	assert_beacon_equal(&p, &b);
}

static void
test_wire_beacon_full_capacity_round_trip(void **state)
{
	struct dd_beacon b = golden_beacon(), p;
	uint8_t plain[PLAIN_LEN];
	size_t cap = dd_wire_beacon_capacity(PLAIN_LEN);
	uint8_t *big;

	assert_int_equal(cap, (PLAIN_LEN - DD_BEACON_HDR_LEN) / DD_BEACON_ENTRY_LEN); /* 58 */
	for (size_t i = 0; i < cap; i++)
		b.entries[i] = (struct dd_beacon_entry){ .transfer = (uint32_t)i,
							 .status = (uint8_t)(1 + i % 3),
							 .size = i * 1000, .last_seq = i };
	b.count = (uint16_t)cap;
	put_beacon_plain(plain, &b);
	assert_int_equal(dd_wire_parse_beacon(&p, plain, PLAIN_LEN), 0);
	assert_beacon_equal(&p, &b);

	/* The encoder refuses one entry more than fits. */
	b.count = (uint16_t)(cap + 1);
	assert_int_equal(dd_wire_put_beacon(plain, PLAIN_LEN, &b), -ENOSPC);
	assert_int_equal(dd_wire_put_beacon(plain, DD_BEACON_HDR_LEN - 1, &b), -ENOSPC);

	/* Large datagrams: capacity stops at the 64 entries of struct dd_beacon. */
	assert_int_equal(dd_wire_beacon_capacity(DD_DGRAM_MAX - DD_SEALED_OVERHEAD), 64);
	big = calloc(1, DD_DGRAM_MAX);
	assert_non_null(big);
	for (size_t i = 0; i < 64; i++)
		b.entries[i] = (struct dd_beacon_entry){ .transfer = (uint32_t)i,
							 .status = DD_XFER_SENDING };
	b.count = 64;
	assert_int_equal(dd_wire_put_beacon(big, DD_DGRAM_MAX, &b),
			 DD_BEACON_HDR_LEN + 64 * DD_BEACON_ENTRY_LEN);
	assert_int_equal(dd_wire_parse_beacon(&p, big, DD_DGRAM_MAX), 0);
	assert_int_equal(p.count, 64);
	/* A 65th entry, well formed, is still refused by the parser. */
	dd_store_be16(big + 2, 65);
	dd_store_be32(big + DD_BEACON_HDR_LEN + 64 * DD_BEACON_ENTRY_LEN, 64);
	big[DD_BEACON_HDR_LEN + 64 * DD_BEACON_ENTRY_LEN + 4] = DD_XFER_SENDING;
	assert_int_equal(dd_wire_parse_beacon(&p, big, DD_DGRAM_MAX), -EBADMSG);
	assert_zeroed(&p, sizeof(p));
	free(big);
}

static void
expect_beacon_refused(const uint8_t *plain, size_t len, const char *why)
{
	struct dd_beacon p;

	memset(&p, 0xff, sizeof(p));
	if (dd_wire_parse_beacon(&p, plain, len) != -EBADMSG)
		fail_msg("beacon accepted: %s", why);
	assert_zeroed(&p, sizeof(p));
}

static void
test_wire_beacon_parse_rejects_count_over_capacity(void **state)
{
	struct dd_beacon b = golden_beacon();
	uint8_t plain[PLAIN_LEN];

	put_beacon_plain(plain, &b);
	/* 3 entries need 120 bytes. */
	expect_beacon_refused(plain, DD_BEACON_HDR_LEN + 3 * DD_BEACON_ENTRY_LEN - 1,
			      "third entry cut");
	expect_beacon_refused(plain, DD_BEACON_HDR_LEN, "entries missing");
	dd_store_be16(plain + 2, 59);
	expect_beacon_refused(plain, PLAIN_LEN, "count 59 in 1440 bytes");
	dd_store_be16(plain + 2, UINT16_MAX);
	expect_beacon_refused(plain, PLAIN_LEN, "count 65535");
	for (size_t len = 0; len < DD_BEACON_HDR_LEN; len++)
		expect_beacon_refused(plain, len, "shorter than the header");
}

static void
test_wire_beacon_parse_rejects_bad_status(void **state)
{
	struct dd_beacon b = golden_beacon(), p;
	uint8_t plain[PLAIN_LEN];
	uint8_t *status = plain + DD_BEACON_HDR_LEN + DD_BEACON_ENTRY_LEN + 4;

	put_beacon_plain(plain, &b);
	for (unsigned s = 0; s < 256; s++) {
		*status = (uint8_t)s;
		assert_int_equal(dd_wire_parse_beacon(&p, plain, PLAIN_LEN),
				 s >= DD_XFER_SENDING && s <= DD_XFER_ABANDONED ? 0 : -EBADMSG);
	}
}

static void
test_wire_beacon_parse_rejects_nonzero_padding(void **state)
{
	struct dd_beacon b = golden_beacon();
	uint8_t plain[PLAIN_LEN];
	size_t used = put_beacon_plain(plain, &b);
	size_t spots[] = { 1,
			   DD_BEACON_HDR_LEN + 6, DD_BEACON_HDR_LEN + 7,
			   DD_BEACON_HDR_LEN + 2 * DD_BEACON_ENTRY_LEN + 6,
			   used, used + 1, PLAIN_LEN - 1 };

	for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
		plain[spots[i]] = 0x01;
		expect_beacon_refused(plain, PLAIN_LEN, "padding set");
		plain[spots[i]] = 0;
	}
	plain[0] = DD_KIND_MANIFEST;
	expect_beacon_refused(plain, PLAIN_LEN, "kind manifest");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_header_golden_bytes),
		cmocka_unit_test(test_wire_header_parse_golden_sealed_and_announce),
		cmocka_unit_test(test_wire_header_parse_rejects_every_truncation_of_announce),
		cmocka_unit_test(test_wire_header_parse_rejects_every_truncation_of_min_sealed),
		cmocka_unit_test(test_wire_header_parse_rejects_truncations_of_sealed_unless_valid_size),
		cmocka_unit_test(test_wire_header_parse_rejects_oversize),
		cmocka_unit_test(test_wire_header_parse_rejects_wrong_version),
		cmocka_unit_test(test_wire_header_parse_rejects_unknown_type),
		cmocka_unit_test(test_wire_header_parse_rejects_sealed_sizes_not_multiple_of_64),
		cmocka_unit_test(test_wire_header_parse_rejects_announce_of_other_length),
		cmocka_unit_test(test_wire_header_bit_flips_rejected_or_round_trip),
		cmocka_unit_test(test_wire_dgram_size_ok_table),
		cmocka_unit_test(test_wire_announce_golden_layout),
		cmocka_unit_test(test_wire_announce_round_trip),
		cmocka_unit_test(test_wire_announce_parse_rejects_wrong_length_and_fields),
		cmocka_unit_test(test_wire_announce_every_bit_flip_rejected_or_changes_fields),
		cmocka_unit_test(test_wire_frag_round_trip),
		cmocka_unit_test(test_wire_frag_parse_rejects_bad_headers),
		cmocka_unit_test(test_wire_frag_parse_rejects_wrong_length),
		cmocka_unit_test(test_wire_frag_parse_rejects_wrong_kind_and_reserved),
		cmocka_unit_test(test_wire_frag_every_header_bit_flip_rejected_or_round_trip),
		cmocka_unit_test(test_wire_block_count_and_k_table),
		cmocka_unit_test(test_wire_block_k_sums_to_size),
		cmocka_unit_test(test_wire_manifest_round_trip),
		cmocka_unit_test(test_wire_manifest_accepts_limits),
		cmocka_unit_test(test_wire_manifest_parse_rejects_bad_fields),
		cmocka_unit_test(test_wire_manifest_parse_rejects_bad_path_len),
		cmocka_unit_test(test_wire_manifest_parse_rejects_nonzero_padding_after_path),
		cmocka_unit_test(test_wire_manifest_parse_rejects_hostile_paths),
		cmocka_unit_test(test_wire_manifest_every_header_bit_flip_refused_exactly_when_invalid),
		cmocka_unit_test(test_wire_beacon_round_trip),
		cmocka_unit_test(test_wire_beacon_full_capacity_round_trip),
		cmocka_unit_test(test_wire_beacon_parse_rejects_count_over_capacity),
		cmocka_unit_test(test_wire_beacon_parse_rejects_bad_status),
		cmocka_unit_test(test_wire_beacon_parse_rejects_nonzero_padding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
