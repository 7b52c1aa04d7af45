/* Byte helpers for outside input: big-endian load/store (never cast buffers to structs), UTF-8. */
#ifndef DD_BYTES_H
#define DD_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline uint16_t
dd_load_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t
dd_load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
dd_load_be64(const uint8_t *p)
{
	return (uint64_t)dd_load_be32(p) << 32 | dd_load_be32(p + 4);
}

static inline void
dd_store_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
dd_store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
dd_store_be64(uint8_t *p, uint64_t v)
{
	dd_store_be32(p, (uint32_t)(v >> 32));
	dd_store_be32(p + 4, (uint32_t)v);
}

/* True when all n bytes are zero (reserved fields and padding of messages). */
static inline bool
dd_all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/*
 * Length of the well-formed multi-byte UTF-8 sequence at s (at most n bytes,
 * Unicode table 3-7: no overlongs, surrogates or code points above U+10FFFF),
 * or 0 when it is not one or is a C1 control character (U+0080..U+009F).
 * ASCII bytes (< 0x80) are the caller's to judge: they return 0 as well.
 */
static inline size_t
dd_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (n == 0)
		return 0;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xc2 || s[0] == 0xe0)
		lo = 0xa0; /* C1 controls; overlong */
	else if (s[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

#endif
