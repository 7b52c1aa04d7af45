/* Unit tests for common/digest.c: SHA-256 known vectors, incremental updates, reset and hex. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "digest.h"

/* FIPS 180-2 / NIST CSHS example vectors. */
#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define MSG_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
#define SHA_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define SHA_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static int
setup(void **state)
{
	struct dd_digest *d = NULL;

	if (dd_digest_new(&d) != 0 || d == NULL)
		return -1;
	*state = d;
	return 0;
}

static int
teardown(void **state)
{
	dd_digest_free(*state);
	return 0;
}

static void
final_hex(struct dd_digest *d, char hex[65])
{
	uint8_t out[DD_DIGEST_LEN];

	dd_digest_final(d, out);
	dd_digest_hex(out, hex);
}

static void
one_shot_hex(struct dd_digest *d, const void *data, size_t len, char hex[65])
{
	dd_digest_update(d, data, len);
	final_hex(d, hex);
}

static void
test_digest_sha256_of_empty_string(void **state)
{
	char hex[65];

	final_hex(*state, hex);
	assert_string_equal(hex, SHA_EMPTY);
	one_shot_hex(*state, "", 0, hex);
	assert_string_equal(hex, SHA_EMPTY);
}

static void
test_digest_sha256_of_abc(void **state)
{
	char hex[65];

	one_shot_hex(*state, "abc", 3, hex);
	assert_string_equal(hex, SHA_ABC);
}

static void
test_digest_sha256_of_two_block_message(void **state)
{
	char hex[65];

	one_shot_hex(*state, MSG_448, strlen(MSG_448), hex);
	assert_string_equal(hex, SHA_448);
}

static void
test_digest_sha256_of_a_million_a_in_uneven_chunks(void **state)
{
	static char a[1000000];
	size_t off = 0, step = 1;
	char hex[65];

	memset(a, 'a', sizeof(a));
	while (off < sizeof(a)) {
		size_t n = step < sizeof(a) - off ? step : sizeof(a) - off;

		dd_digest_update(*state, a + off, n);
		off += n;
		step = step * 3 + 1; /* 1, 4, 13, 40, ... */
	}
	final_hex(*state, hex);
	assert_string_equal(hex, SHA_MILLION_A);
}

static void
test_digest_incremental_updates_equal_one_shot(void **state)
{
	struct dd_digest *d = *state;
	uint8_t msg[300], one[DD_DIGEST_LEN], inc[DD_DIGEST_LEN];

	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 151 + 7);
	/* Every length around the 64-byte block size, every split point. */
	for (size_t len = 0; len <= sizeof(msg); len += (len < 140 ? 1 : 37)) {
		dd_digest_update(d, msg, len);
		dd_digest_final(d, one);
		for (size_t cut = 0; cut <= len; cut++) {
			dd_digest_update(d, msg, cut);
			dd_digest_update(d, msg + cut, 0);
			dd_digest_update(d, msg + cut, len - cut);
			dd_digest_final(d, inc);
			if (memcmp(one, inc, sizeof(one)) != 0)
				fail_msg("length %zu split at %zu differs", len, cut);
		}
	}
	/* Byte by byte. */
	dd_digest_update(d, msg, sizeof(msg));
	dd_digest_final(d, one);
	for (size_t i = 0; i < sizeof(msg); i++)
		dd_digest_update(d, msg + i, 1);
	dd_digest_final(d, inc);
	assert_memory_equal(one, inc, sizeof(one));
}

static void
test_digest_final_starts_over_and_reset_discards_input(void **state)
{
	struct dd_digest *d = *state;
	char hex[65];

	one_shot_hex(d, "abc", 3, hex);
	assert_string_equal(hex, SHA_ABC);
	/* final leaves the object ready for the next file. */
	one_shot_hex(d, "abc", 3, hex);
	assert_string_equal(hex, SHA_ABC);
	/* reset drops what was fed so far. */
	dd_digest_update(d, "partial file", 12);
	dd_digest_reset(d);
	one_shot_hex(d, "abc", 3, hex);
	assert_string_equal(hex, SHA_ABC);
	dd_digest_update(d, "x", 1);
	dd_digest_reset(d);
	final_hex(d, hex);
	assert_string_equal(hex, SHA_EMPTY);
}

static void
test_digest_hex_encoding(void **state)
{
	uint8_t bytes[DD_DIGEST_LEN];
	char hex[65];

	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(i * 8 + (i & 7));
	bytes[0] = 0x00;
	bytes[31] = 0xff;
	memset(hex, 'Z', sizeof(hex));
	dd_digest_hex(bytes, hex);
	assert_int_equal(strlen(hex), 64);
	assert_memory_equal(hex, "00", 2);
	assert_memory_equal(hex + 62, "ff", 2);
	assert_memory_equal(hex + 2, "09", 2);  /* 1 * 8 + 1 */
	assert_memory_equal(hex + 20, "52", 2); /* 10 * 8 + 2 */
	assert_int_equal(strspn(hex, "0123456789abcdef"), 64);
}

static void
test_digest_objects_are_independent(void **state)
{
	struct dd_digest *a = *state, *b = NULL;
	char ha[65], hb[65];

	assert_int_equal(dd_digest_new(&b), 0);
	dd_digest_update(a, "ab", 2);
	dd_digest_update(b, MSG_448, strlen(MSG_448));
	dd_digest_update(a, "c", 1);
	final_hex(a, ha);
	final_hex(b, hb);
	assert_string_equal(ha, SHA_ABC);
	assert_string_equal(hb, SHA_448);
	dd_digest_free(b);
	dd_digest_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_digest_sha256_of_empty_string),
		T(test_digest_sha256_of_abc),
		T(test_digest_sha256_of_two_block_message),
		T(test_digest_sha256_of_a_million_a_in_uneven_chunks),
		T(test_digest_incremental_updates_equal_one_shot),
		T(test_digest_final_starts_over_and_reset_discards_input),
		T(test_digest_hex_encoding),
		T(test_digest_objects_are_independent),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
