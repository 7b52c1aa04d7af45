/* Stream channels on the wire: stream fragments, stream status, record framing in a block (docs/PROTOCOL.md §11). */
#ifndef DD_RECORD_H
#define DD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h" /* DD_KIND_STREAM, DD_KIND_STREAM_STATUS */

/*
 * A channel carries records (byte strings of 0..DD_RECORD_MAX bytes). The
 * sender numbers them per channel (u64 record seq) and packs whole records,
 * each framed as a 2-byte length and its bytes, into small Reed-Solomon
 * blocks of at most DD_STREAM_K_MAX data fragments of the session's fragment
 * size F (the FRAGMENT payload size, dgram_size - 64). A record never spans
 * two blocks. Blocks are numbered per channel and session from 0. Every
 * fragment, data or parity, repeats the block's header, so one fragment that
 * arrives is enough to know which records a lost block held.
 */

#define DD_STREAM_HDR_LEN 32
#define DD_STREAM_K_MAX 16      /* data fragments per stream block */
#define DD_STREAM_M_MAX 16      /* parity fragments per stream block */
#define DD_RECORD_MAX 65535     /* longest record the framing can carry */
#define DD_RECORD_FRAME 2       /* bytes of framing before each record */
#define DD_CHANNELS_MAX 24      /* channels per daemon: one status message holds them all */

#define DD_STREAM_STATUS_HDR_LEN 16
#define DD_STREAM_STATUS_ENTRY_LEN 40

/* Header of one stream fragment; the payload (F bytes) follows it. */
struct dd_stream_frag {
	uint8_t k;          /* data fragments of the block: 1..DD_STREAM_K_MAX */
	uint8_t m;          /* parity fragments of the block: 0..DD_STREAM_M_MAX */
	uint8_t index;      /* 0..k-1 data, k..k+m-1 parity */
	uint32_t channel;   /* dd_record_channel_id of the channel's name */
	uint64_t block;     /* block number within the session and channel, from 0 */
	uint64_t first_seq; /* record seq of the block's first record */
	uint32_t bytes;     /* framed record bytes in the block: (k-1)*F < bytes <= k*F */
	uint16_t count;     /* records in the block, >= 1 */
};

void dd_record_put_frag(uint8_t *plain, const struct dd_stream_frag *f);
/* Exact length DD_STREAM_HDR_LEN + frag_len, kind, limits, zero bytes, and the
 * block size consistent with k; -EBADMSG otherwise (f zeroed). */
int dd_record_parse_frag(struct dd_stream_frag *f, const uint8_t *plain, size_t len,
			 size_t frag_len) __attribute__((warn_unused_result));

/* One entry per channel of the sender. */
struct dd_stream_status_entry {
	uint32_t channel;
	uint64_t blocks;   /* blocks of the channel completely handed to the kernel this session */
	uint64_t next_seq; /* every record below this seq was sent (in those blocks or earlier) */
	uint64_t start_seq; /* seq of the session's first record (of block 0) */
	uint64_t dropped;  /* records dropped or refused by diode-tx this session */
};

struct dd_stream_status {
	uint32_t interval_ms; /* how often the sender sends it */
	uint16_t count;
	struct dd_stream_status_entry entries[DD_CHANNELS_MAX];
};

/* Entries that fit a plaintext of plain_len bytes (at most DD_CHANNELS_MAX). */
size_t dd_record_status_capacity(size_t plain_len);
/* Encodes into plain (zeroing cap bytes); entries must have strictly increasing
 * channel ids. Returns the bytes used, or -ENOSPC / -EINVAL. */
int dd_record_put_status(uint8_t *plain, size_t cap, const struct dd_stream_status *s);
/* 1 <= count <= capacity, strictly increasing ids, start_seq <= next_seq, zero
 * bytes; -EBADMSG otherwise. */
int dd_record_parse_status(struct dd_stream_status *s, const uint8_t *plain, size_t len)
	__attribute__((warn_unused_result));

/* Channel id carried on the wire: the first 4 bytes (big-endian) of
 * SHA-256("diode-channel:" || name). Both sides derive it from the NAME of
 * [channel.NAME]; each checks at start that its channels' ids differ. */
uint32_t dd_record_channel_id(const char *name);

/* Largest record a block can carry at this fragment size (<= DD_RECORD_MAX). */
size_t dd_record_max_for(size_t frag_len);

/* Appends one framed record at area + used when it fits within cap; returns
 * the new used length, or 0 when it does not fit (len > DD_RECORD_MAX included). */
size_t dd_record_append(uint8_t *area, size_t cap, size_t used, const void *rec, size_t len);

/*
 * Checks the record area of a decoded block (area_len = k * F bytes): exactly
 * f->count frames filling exactly f->bytes, then only zero bytes. On success
 * calls fn for each record in order (fn may stop the walk by returning
 * non-zero, which is returned). -EBADMSG when the framing is wrong (fn is
 * then never called).
 */
int dd_record_block_walk(const uint8_t *area, size_t area_len, const struct dd_stream_frag *f,
			 int (*fn)(void *arg, const uint8_t *rec, size_t len), void *arg);

#endif
