/* libFuzzer harness for the authenticated path: seal fuzzed plaintexts with a real session, open, parse inside. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "path.h"
#include "wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/*
 * The sessions made once in LLVMFuzzerInitialize live as long as the process.
 * Their OpenSSL cipher contexts are pointed to from sodium_malloc memory
 * (mmap'd, which LeakSanitizer does not scan), so it would call them leaked;
 * allocations made while fuzzing an input are still checked.
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:LLVMFuzzerInitialize\n";
}

#define SESSION 1
#define DGRAM DD_DGRAM_DEFAULT
#define PLAIN_LEN (DGRAM - DD_SEALED_OVERHEAD)
#define FRAG_LEN dd_wire_frag_len(DGRAM)

/*
 * Two receivers with the same keys and session: `sealed_rx` only ever sees
 * datagrams sealed here (so every one must open), `raw_rx` gets the raw input
 * as a datagram. A deterministic randombytes makes the session keys (the
 * ephemeral key pair) the same on every run, so crashes reproduce exactly.
 */
static struct dd_crypto_tx *tx;
static struct dd_crypto_rx *sealed_rx, *raw_rx;
static uint64_t next_seq, now_ms;

static uint64_t rb_counter;

static const char *
rb_name(void)
{
	return "fuzz-deterministic";
}

static void
rb_buf(void *buf, size_t size)
{
	uint8_t seed[randombytes_SEEDBYTES] = { 0 };

	memcpy(seed, &rb_counter, sizeof(rb_counter));
	rb_counter++;
	randombytes_buf_deterministic(buf, size, seed);
}

static uint32_t
rb_random(void)
{
	uint32_t v;

	rb_buf(&v, sizeof(v));
	return v;
}

static struct randombytes_implementation rb_impl = {
	.implementation_name = rb_name,
	.random = rb_random,
	.buf = rb_buf,
};

static struct dd_crypto_rx *
make_rx(const uint8_t *sk, const uint8_t *pk, const uint8_t *peer)
{
	struct dd_crypto_rx *rx;

	if (dd_crypto_rx_new(&rx, sk, pk) != 0 || dd_crypto_rx_add_peer(rx, peer) != 0)
		abort();
	dd_crypto_rx_set_announce_rate(rx, 1000);
	return rx;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t tx_seed[crypto_box_SEEDBYTES], rx_seed[crypto_box_SEEDBYTES];
	uint8_t tx_pk[DD_KEY_LEN], tx_sk[DD_KEY_LEN], rx_pk[DD_KEY_LEN], rx_sk[DD_KEY_LEN];
	uint8_t ann[DD_ANNOUNCE_LEN];
	struct dd_announce a;
	struct dd_hdr h;

	randombytes_set_implementation(&rb_impl);
	if (dd_crypto_init() != 0)
		abort();
	memset(tx_seed, 0x01, sizeof(tx_seed));
	memset(rx_seed, 0x02, sizeof(rx_seed));
	crypto_box_seed_keypair(tx_pk, tx_sk, tx_seed);
	crypto_box_seed_keypair(rx_pk, rx_sk, rx_seed);
	sealed_rx = make_rx(rx_sk, rx_pk, tx_pk);
	raw_rx = make_rx(rx_sk, rx_pk, tx_pk);
	if (dd_crypto_tx_new(&tx, tx_sk, tx_pk, rx_pk, DD_CIPHER_CHACHA20POLY1305, SESSION, DGRAM,
			     1700000000) != 0)
		abort();
	dd_crypto_tx_announce(tx, false, ++next_seq, ann);
	if (dd_wire_parse_header(&h, ann, sizeof(ann)) != 0)
		abort();
	now_ms = 1000;
	if (dd_crypto_rx_announce(sealed_rx, &h, ann, sizeof(ann), now_ms, &a) !=
		    DD_ANNOUNCE_NEW_SESSION ||
	    dd_crypto_rx_announce(raw_rx, &h, ann, sizeof(ann), now_ms, &a) !=
		    DD_ANNOUNCE_NEW_SESSION)
		abort();
	sodium_memzero(tx_sk, sizeof(tx_sk));
	sodium_memzero(rx_sk, sizeof(rx_sk));
	return 0;
}

/* What diode-rx does with an authenticated plaintext: dispatch on the kind
 * and parse strictly; whatever is accepted must encode back to the input. */
static void
parse_inner(const uint8_t *plain, size_t len)
{
	uint8_t out[DD_DGRAM_MAX];
	struct dd_manifest m;
	struct dd_beacon b;
	struct dd_frag f;

	if (len > sizeof(out))
		abort();
	if (dd_wire_parse_frag(&f, plain, len, dd_wire_frag_len(len + DD_SEALED_OVERHEAD)) == 0) {
		dd_wire_put_frag(out, &f);
		if (memcmp(out, plain, DD_FRAG_HDR_LEN) != 0 || f.index >= f.k + f.m)
			abort();
	}
	if (dd_wire_parse_manifest(&m, plain, len, dd_wire_frag_len(len + DD_SEALED_OVERHEAD)) ==
	    0) {
		memset(out, 0, len);
		if (dd_path_check(m.path, m.path_len, NULL) != 0 ||
		    dd_wire_put_manifest(out, len, &m) < 0 || memcmp(out, plain, len) != 0)
			abort();
	}
	if (dd_wire_parse_beacon(&b, plain, len) == 0) {
		memset(out, 0, len);
		if (dd_wire_put_beacon(out, len, &b) < 0 || memcmp(out, plain, len) != 0)
			abort();
	}
}

/* The input as a plaintext, sealed by the real sender: must open, unchanged. */
static void
fuzz_sealed_plaintext(const uint8_t *data, size_t size)
{
	uint8_t buf[DGRAM], expect[PLAIN_LEN], *plain;
	size_t plain_len;
	struct dd_hdr h;

	memset(expect, 0, sizeof(expect));
	memcpy(expect, data, size < PLAIN_LEN ? size : PLAIN_LEN);
	memcpy(buf + DD_HDR_LEN, expect, PLAIN_LEN);
	dd_crypto_tx_seal(tx, ++next_seq, buf, sizeof(buf));
	if (dd_wire_parse_header(&h, buf, sizeof(buf)) != 0 ||
	    dd_crypto_rx_open(sealed_rx, &h, buf, sizeof(buf), &plain, &plain_len) != 0 ||
	    plain != buf + DD_HDR_LEN || plain_len != PLAIN_LEN ||
	    memcmp(plain, expect, PLAIN_LEN) != 0)
		abort();
	parse_inner(plain, plain_len);
}

/* The input as a datagram off the wire: must not open unless it is genuine. */
static void
fuzz_raw_datagram(const uint8_t *data, size_t size)
{
	struct dd_announce a;
	uint8_t *buf, *plain;
	size_t plain_len;
	struct dd_hdr h;
	int rc;

	if (size > DD_DGRAM_MAX)
		return;
	buf = malloc(size > 0 ? size : 1);
	if (buf == NULL)
		abort();
	memcpy(buf, data, size);
	if (dd_wire_parse_header(&h, buf, size) == 0) {
		if (h.type == DD_TYPE_ANNOUNCE) {
			now_ms += 1000;
			rc = dd_crypto_rx_announce(raw_rx, &h, buf, size, now_ms, &a);
			if (rc >= 0 && !dd_wire_dgram_size_ok(a.dgram_size))
				abort();
		} else {
			rc = dd_crypto_rx_open(raw_rx, &h, buf, size, &plain, &plain_len);
			if (rc == 0)
				parse_inner(plain, plain_len);
			else if (plain != NULL || plain_len != 0)
				abort();
		}
	}
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_sealed_plaintext(data, size);
	fuzz_raw_datagram(data, size);
	return 0;
}
