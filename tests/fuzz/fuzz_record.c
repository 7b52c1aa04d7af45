/* libFuzzer harness for common/record.c: stream fragment and status parsers, record framing walk, round trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FRAG_LEN 1408                            /* payload of a 1472-byte datagram */
#define PLAIN_LEN (DD_STREAM_HDR_LEN + FRAG_LEN) /* its sealed plaintext */

static const uint8_t zeros[sizeof(struct dd_stream_status)];

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

static int
count_records(void *arg, const uint8_t *rec, size_t len)
{
	size_t *total = arg;

	/* Touch every byte, so ASan checks the record lies inside the area. */
	for (size_t i = 0; i < len; i++)
		*total += rec[i] != 0;
	*total += 1;
	return 0;
}

static void
fuzz_frag(const uint8_t *plain, size_t len)
{
	struct dd_stream_frag f;
	uint8_t out[DD_STREAM_HDR_LEN];
	size_t total = 0;
	uint8_t *area;

	if (dd_record_parse_frag(&f, plain, len, FRAG_LEN) != 0) {
		check_zeroed(&f, sizeof(f));
		return;
	}
	if (len != PLAIN_LEN || f.k == 0 || f.k > DD_STREAM_K_MAX || f.m > DD_STREAM_M_MAX ||
	    f.index >= f.k + f.m || f.count == 0 || f.bytes > (size_t)f.k * FRAG_LEN ||
	    f.bytes <= (size_t)(f.k - 1) * FRAG_LEN || 2u * f.count > f.bytes)
		abort();
	dd_record_put_frag(out, &f);
	if (memcmp(out, plain, DD_STREAM_HDR_LEN) != 0)
		abort();
	/* The payload as the record area of a one-fragment block (k = 1 blocks
	 * are the common case); a walk either refuses or stays inside. */
	if (f.k == 1) {
		area = copy_fit(plain + DD_STREAM_HDR_LEN, len - DD_STREAM_HDR_LEN, FRAG_LEN);
		if (dd_record_block_walk(area, FRAG_LEN, &f, count_records, &total) == 0 &&
		    total < f.count)
			abort();
		free(area);
	}
}

static void
fuzz_status(const uint8_t *plain, size_t len)
{
	static struct dd_stream_status s;
	uint8_t *out;

	if (dd_record_parse_status(&s, plain, len) != 0) {
		check_zeroed(&s, sizeof(s));
		return;
	}
	if (s.count == 0 || s.count > dd_record_status_capacity(len) || s.interval_ms == 0)
		abort();
	for (size_t i = 0; i < s.count; i++)
		if ((i > 0 && s.entries[i].channel <= s.entries[i - 1].channel) ||
		    s.entries[i].start_seq > s.entries[i].next_seq)
			abort();
	out = calloc(1, len);
	if (out == NULL)
		abort();
	if (dd_record_put_status(out, len, &s) !=
		    (int)(DD_STREAM_STATUS_HDR_LEN + s.count * DD_STREAM_STATUS_ENTRY_LEN) ||
	    memcmp(out, plain, len) != 0)
		abort();
	free(out);
}

/* The input as a record area: the first 6 bytes give bytes and count. */
static void
fuzz_walk(const uint8_t *data, size_t size)
{
	struct dd_stream_frag f = { .k = 1 };
	size_t total = 0;
	uint8_t *area;

	if (size < 6)
		return;
	f.bytes = (uint32_t)data[0] << 8 | data[1];
	f.count = (uint16_t)(data[2] << 8 | data[3]);
	area = copy_fit(data + 6, size - 6, size - 6);
	if (dd_record_block_walk(area, size - 6, &f, count_records, &total) == 0 &&
	    total < f.count)
		abort();
	free(area);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;

	fuzz_frag(data, size);
	fuzz_status(data, size);
	fuzz_walk(data, size);
	p = copy_fit(data, size, PLAIN_LEN);
	fuzz_frag(p, PLAIN_LEN);
	fuzz_status(p, PLAIN_LEN);
	free(p);
	return 0;
}
