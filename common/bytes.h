/* Big-endian load/store helpers for wire fields (never cast buffers to structs). */
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

#endif
