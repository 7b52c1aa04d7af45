/* Wire format: datagram header and the messages sealed inside datagrams (see docs/PROTOCOL.md). */
#ifndef DD_WIRE_H
#define DD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DD_VERSION 1
#define DD_HDR_LEN 16
#define DD_TAG_LEN 16
#define DD_DGRAM_MAX 65472     /* largest datagram size we ever produce or accept */
#define DD_DGRAM_MIN 1152
#define DD_DGRAM_DEFAULT 1472  /* fits a 1500-byte Ethernet MTU over IPv4 */
#define DD_SEALED_OVERHEAD (DD_HDR_LEN + DD_TAG_LEN)

/* Datagram types (cleartext header byte 1). */
enum dd_type {
	DD_TYPE_ANNOUNCE = 1, /* session key announce, authenticated, body in clear */
	DD_TYPE_SEALED = 2,   /* AEAD-sealed message of one of the kinds below */
};

/* Message kinds (first byte of a sealed plaintext). */
enum dd_kind {
	DD_KIND_FRAGMENT = 1,
	DD_KIND_MANIFEST = 2,
	DD_KIND_BEACON = 3,
	DD_KIND_STREAM = 4,        /* stream channel fragment (common/record.h) */
	DD_KIND_STREAM_STATUS = 5, /* stream channel progress (common/record.h) */
};

/* Cleartext header: associated data of the AEAD. */
struct dd_hdr {
	uint8_t type;
	uint16_t epoch;   /* key epoch within the session */
	uint32_t session; /* sender session counter, grows at every diode-tx start */
	uint64_t seq;     /* datagram counter within the session; the AEAD nonce */
};

void dd_wire_put_header(uint8_t *buf, const struct dd_hdr *h);
/* Length, version and type checks; exact layout or -EBADMSG. */
int dd_wire_parse_header(struct dd_hdr *h, const uint8_t *buf, size_t len);

/* ---- announce (DD_TYPE_ANNOUNCE), fixed size ---- */
#define DD_ANNOUNCE_BODY_LEN 112
#define DD_STATIC_TAG_LEN 16 /* keyed BLAKE2b under the static-static DH, checked first */
/* header || body || tag (AEAD) || static tag: 160 bytes */
#define DD_ANNOUNCE_LEN (DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN + DD_TAG_LEN + DD_STATIC_TAG_LEN)
#define DD_KEY_LEN 32

enum dd_cipher {
	DD_CIPHER_AES256GCM = 1,
	DD_CIPHER_CHACHA20POLY1305 = 2,
};

struct dd_announce {
	uint8_t cipher;                  /* enum dd_cipher for sealed datagrams */
	uint16_t dgram_size;             /* every sealed datagram of the session has this size */
	uint8_t ephemeral[DD_KEY_LEN];   /* X25519 public key, fresh per epoch */
	uint8_t sender[DD_KEY_LEN];      /* sender's static X25519 public key */
	uint8_t receiver[DD_KEY_LEN];    /* receiver's static X25519 public key */
	uint64_t started;                /* session start, Unix seconds */
};

void dd_wire_put_announce(uint8_t *body, const struct dd_announce *a);
int dd_wire_parse_announce(struct dd_announce *a, const uint8_t *body, size_t len);

/* ---- fragment (DD_KIND_FRAGMENT) ---- */
#define DD_FRAG_HDR_LEN 32

struct dd_frag {
	uint8_t k;          /* data fragments in this block */
	uint8_t m;          /* parity fragments in this block */
	uint8_t index;      /* 0..k-1 data, k..k+m-1 parity */
	uint8_t k_full;     /* data fragments of every block but the last */
	uint8_t pass;       /* carousel pass, 0 for the first */
	uint32_t transfer;  /* transfer id within the session */
	uint32_t block;     /* block number within the transfer */
	uint64_t size;      /* file size in bytes */
};

/* Fragment payload size for a datagram size. */
static inline size_t
dd_wire_frag_len(size_t dgram_size)
{
	return dgram_size - DD_SEALED_OVERHEAD - DD_FRAG_HDR_LEN;
}

void dd_wire_put_frag(uint8_t *plain, const struct dd_frag *f);
/* Checks the header against the block layout the size implies: frag_len is
 * the payload length of this datagram size. */
int dd_wire_parse_frag(struct dd_frag *f, const uint8_t *plain, size_t len, size_t frag_len);

/* Number of blocks of a file and data fragments of block b. */
uint32_t dd_wire_block_count(uint64_t size, unsigned k_full, size_t frag_len);
unsigned dd_wire_block_k(uint64_t size, unsigned k_full, size_t frag_len, uint32_t block);

/* ---- manifest (DD_KIND_MANIFEST) ---- */
#define DD_MANIFEST_HDR_LEN 64
#define DD_MANIFEST_FINAL 0x01 /* all data sent; digest is valid */
#define DD_MANIFEST_ABORT 0x02 /* transfer abandoned by the sender */
#define DD_SHA256_LEN 32

struct dd_manifest {
	uint8_t flags;
	uint32_t transfer;
	uint64_t size;
	uint64_t mtime;            /* Unix seconds */
	uint32_t mode;             /* permission bits */
	uint8_t k_full, m_full;
	uint8_t pass, passes;      /* this carousel pass (0-based) of how many */
	uint8_t sha256[DD_SHA256_LEN];
	uint16_t path_len;
	const char *path;          /* points into the parsed buffer; not NUL-terminated */
};

/* Returns the plaintext bytes used, or -ENOSPC if the path does not fit. */
int dd_wire_put_manifest(uint8_t *plain, size_t cap, const struct dd_manifest *m);
/* Checks flags, sizes and path bytes (dd_path_check); -EBADMSG otherwise. */
int dd_wire_parse_manifest(struct dd_manifest *m, const uint8_t *plain, size_t len,
			   size_t frag_len);

/* ---- beacon (DD_KIND_BEACON) ---- */
#define DD_BEACON_HDR_LEN 48
#define DD_BEACON_ENTRY_LEN 24

enum dd_beacon_status {
	DD_XFER_SENDING = 1,
	DD_XFER_SENT = 2,      /* every datagram of the last pass is on the wire */
	DD_XFER_ABANDONED = 3,
};

struct dd_beacon_entry {
	uint32_t transfer;
	uint8_t status;    /* enum dd_beacon_status */
	uint8_t pass;
	uint64_t size;
	uint64_t last_seq; /* seq of the transfer's last datagram when SENT */
};

struct dd_beacon {
	uint32_t interval_ms;
	uint64_t time_ms;          /* sender clock, Unix milliseconds */
	uint64_t datagrams;        /* datagrams sent in the session, this one excluded */
	uint64_t bytes;            /* wire bytes sent in the session */
	uint32_t files_queued, transfers_active, transfers_done;
	uint32_t complete_below;   /* every transfer id below this is finished on the sender */
	uint16_t count;
	struct dd_beacon_entry entries[64];
};

size_t dd_wire_beacon_capacity(size_t plain_len);
int dd_wire_put_beacon(uint8_t *plain, size_t cap, const struct dd_beacon *b);
int dd_wire_parse_beacon(struct dd_beacon *b, const uint8_t *plain, size_t len);

/* Datagram size is valid: multiple of 64 within [DD_DGRAM_MIN, DD_DGRAM_MAX]. */
bool dd_wire_dgram_size_ok(size_t size);

#endif
