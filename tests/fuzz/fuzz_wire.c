/* libFuzzer harness for common/wire.c: every parser of cleartext and inner bytes, with round-trip invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FRAG_LEN 1408                          /* payload of a 1472-byte datagram */
#define PLAIN_LEN (DD_FRAG_HDR_LEN + FRAG_LEN) /* its sealed plaintext */

static const uint8_t zeros[sizeof(struct dd_beacon)];

/* Parsers leave their output zeroed when they refuse. */
static void
check_zeroed(const void *p, size_t n)
{
	if (memcmp(p, zeros, n) != 0)
		abort();
}

/* A heap copy of exactly len bytes (zero padded or cut), so ASan sees overreads. */
static uint8_t *
copy_fit(const uint8_t *data, size_t size, size_t len)
{
	uint8_t *p = malloc(len > 0 ? len : 1);

	if (p == NULL)
		abort();
	memset(p, 0, len);
	memcpy(p, data, size < len ? size : len);
	return p;
}

static void
fuzz_header(const uint8_t *buf, size_t len)
{
	struct dd_hdr h;
	uint8_t out[DD_HDR_LEN];

	if (dd_wire_parse_header(&h, buf, len) != 0) {
		check_zeroed(&h, sizeof(h));
		return;
	}
	if (h.type == DD_TYPE_ANNOUNCE ? len != DD_ANNOUNCE_LEN :
	    h.type != DD_TYPE_SEALED || !dd_wire_dgram_size_ok(len))
		abort();
	dd_wire_put_header(out, &h);
	if (memcmp(out, buf, DD_HDR_LEN) != 0)
		abort();
}

static void
fuzz_announce(const uint8_t *body, size_t len)
{
	struct dd_announce a;
	uint8_t out[DD_ANNOUNCE_BODY_LEN];

	if (dd_wire_parse_announce(&a, body, len) != 0) {
		check_zeroed(&a, sizeof(a));
		return;
	}
	if (len != DD_ANNOUNCE_BODY_LEN || !dd_wire_dgram_size_ok(a.dgram_size) ||
	    (a.cipher != DD_CIPHER_AES256GCM && a.cipher != DD_CIPHER_CHACHA20POLY1305))
		abort();
	dd_wire_put_announce(out, &a);
	if (memcmp(out, body, DD_ANNOUNCE_BODY_LEN) != 0)
		abort();
}

static void
fuzz_frag(const uint8_t *plain, size_t len)
{
	struct dd_frag f;
	uint8_t out[DD_FRAG_HDR_LEN];

	if (dd_wire_parse_frag(&f, plain, len, FRAG_LEN) != 0) {
		check_zeroed(&f, sizeof(f));
		return;
	}
	if (len != PLAIN_LEN || f.k == 0 || f.k_full == 0 || f.index >= f.k + f.m ||
	    f.k + f.m > 255 || f.size == 0 ||
	    f.block >= dd_wire_block_count(f.size, f.k_full, FRAG_LEN) ||
	    f.k != dd_wire_block_k(f.size, f.k_full, FRAG_LEN, f.block) || f.k > f.k_full)
		abort();
	dd_wire_put_frag(out, &f);
	if (memcmp(out, plain, DD_FRAG_HDR_LEN) != 0)
		abort();
}

static void
fuzz_manifest(const uint8_t *plain, size_t len)
{
	struct dd_manifest m;
	uint8_t *out;

	if (dd_wire_parse_manifest(&m, plain, len, FRAG_LEN) != 0) {
		check_zeroed(&m, sizeof(m));
		return;
	}
	if (m.path_len == 0 || m.path_len > DD_PATH_MAX ||
	    m.path != (const char *)plain + DD_MANIFEST_HDR_LEN ||
	    DD_MANIFEST_HDR_LEN + (size_t)m.path_len > len ||
	    dd_path_check(m.path, m.path_len, NULL) != 0 || m.mode > 07777 || m.k_full == 0 ||
	    (m.flags & DD_MANIFEST_FINAL && m.flags & DD_MANIFEST_ABORT) ||
	    dd_wire_block_count(m.size, m.k_full, FRAG_LEN) == UINT32_MAX)
		abort();
	/* Everything accepted is canonical: encoding gives back the input. */
	out = calloc(1, len);
	if (out == NULL)
		abort();
	if (dd_wire_put_manifest(out, len, &m) != DD_MANIFEST_HDR_LEN + m.path_len ||
	    memcmp(out, plain, len) != 0)
		abort();
	free(out);
}

static void
fuzz_beacon(const uint8_t *plain, size_t len)
{
	struct dd_beacon b;
	uint8_t *out;

	if (dd_wire_parse_beacon(&b, plain, len) != 0) {
		check_zeroed(&b, sizeof(b));
		return;
	}
	if (b.count > dd_wire_beacon_capacity(len))
		abort();
	for (size_t i = 0; i < b.count; i++)
		if (b.entries[i].status < DD_XFER_SENDING || b.entries[i].status > DD_XFER_ABANDONED)
			abort();
	out = calloc(1, len);
	if (out == NULL)
		abort();
	if (dd_wire_put_beacon(out, len, &b) != (int)(DD_BEACON_HDR_LEN +
						       b.count * DD_BEACON_ENTRY_LEN) ||
	    memcmp(out, plain, len) != 0)
		abort();
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;

	/* The raw input as a datagram, an announce body and every inner message. */
	fuzz_header(data, size);
	fuzz_announce(data, size);
	fuzz_frag(data, size);
	fuzz_manifest(data, size);
	fuzz_beacon(data, size);

	/* The same bytes fitted to the sizes the parsers want, so mutations of
	 * the fields count rather than only of the length. */
	if (size >= DD_HDR_LEN) {
		uint16_t dgram = (uint16_t)(DD_DGRAM_MIN + 64 * (data[size - 1] % 8));

		p = copy_fit(data, size, data[1] == DD_TYPE_ANNOUNCE ? DD_ANNOUNCE_LEN : dgram);
		fuzz_header(p, data[1] == DD_TYPE_ANNOUNCE ? DD_ANNOUNCE_LEN : dgram);
		free(p);
	}
	p = copy_fit(data, size, DD_ANNOUNCE_BODY_LEN);
	fuzz_announce(p, DD_ANNOUNCE_BODY_LEN);
	free(p);
	p = copy_fit(data, size, PLAIN_LEN);
	fuzz_frag(p, PLAIN_LEN);
	fuzz_manifest(p, PLAIN_LEN);
	fuzz_beacon(p, PLAIN_LEN);
	free(p);
	return 0;
}
