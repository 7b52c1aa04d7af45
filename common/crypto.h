/* Session crypto: one-way key agreement by signed-by-DH announces and per-datagram AEAD. */
#ifndef DD_CRYPTO_H
#define DD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replay.h"
#include "wire.h"

/*
 * Key agreement (Noise "K"-like, one way): for each epoch the sender makes a
 * fresh X25519 key pair e and derives
 *   K = BLAKE2b-512(key = DH(e, R) || DH(S, R), msg = "diode-v1 keys" || announce body || session || epoch)
 * where S is its static key and R the receiver's. K[0..31] authenticates
 * announces (ChaCha20-Poly1305, empty plaintext), K[32..63] seals datagrams.
 * Every announce also ends in a static tag, keyed BLAKE2b under a key derived
 * once from DH(S, R): the receiver checks it before any public-key work or
 * rate-limit token, so forged announces cannot crowd out genuine ones.
 * Only the holder of S (or R) can produce a valid announce; only R can read.
 * See docs/PROTOCOL.md.
 */

int dd_crypto_init(void); /* sodium_init; -EIO on failure */
bool dd_crypto_aes_available(void);
const char *dd_crypto_cipher_name(uint8_t cipher);

/* ---- sender ---- */
struct dd_crypto_tx;

int dd_crypto_tx_new(struct dd_crypto_tx **out, const uint8_t *secret, const uint8_t *public_key,
		     const uint8_t *peer_public, uint8_t cipher, uint32_t session,
		     uint16_t dgram_size, uint64_t started);
void dd_crypto_tx_free(struct dd_crypto_tx *tx);
/* Make the next epoch's key (announced beside the current one until switch). */
int dd_crypto_tx_prepare_next(struct dd_crypto_tx *tx);
/* Seal with the prepared next epoch from now on; no-op if none prepared. */
void dd_crypto_tx_switch(struct dd_crypto_tx *tx);
bool dd_crypto_tx_has_next(const struct dd_crypto_tx *tx);
uint16_t dd_crypto_tx_epoch(const struct dd_crypto_tx *tx);
/* Write a complete announce datagram (DD_ANNOUNCE_LEN bytes) for the current
 * epoch, or the prepared next one. */
void dd_crypto_tx_announce(struct dd_crypto_tx *tx, bool next, uint64_t seq, uint8_t *buf);
/* Seal in place: buf[0..len) is a datagram whose plaintext sits at
 * buf + DD_HDR_LEN, len - DD_SEALED_OVERHEAD bytes; writes header and tag. */
void dd_crypto_tx_seal(struct dd_crypto_tx *tx, uint64_t seq, uint8_t *buf, size_t len);
/* Seal with OpenSSL (the default; each thread keeps its own context) or with
 * libsodium only (for tests and measurements). Same bytes either way. */
void dd_crypto_tx_set_evp(struct dd_crypto_tx *tx, bool on);

/* ---- receiver ---- */
struct dd_crypto_rx;

enum dd_announce_result {
	DD_ANNOUNCE_KNOWN = 0,       /* repeat of an announce already in force */
	DD_ANNOUNCE_NEW_SESSION = 1, /* a new sender session started */
	DD_ANNOUNCE_NEW_EPOCH = 2,   /* same session, next key epoch */
};

int dd_crypto_rx_new(struct dd_crypto_rx **out, const uint8_t *secret, const uint8_t *public_key);
void dd_crypto_rx_free(struct dd_crypto_rx *rx);
/* Trust a sender's static public key (several for key rollover). */
int dd_crypto_rx_add_peer(struct dd_crypto_rx *rx, const uint8_t *peer_public);
/* Sessions below min are refused; for session == min, sequence numbers up to
 * seq_floor are refused too (restart protection against replays). */
void dd_crypto_rx_set_floor(struct dd_crypto_rx *rx, uint32_t min_session, uint64_t seq_floor);
/* Announces that need public-key work are limited to per_second (burst equal). */
void dd_crypto_rx_set_announce_rate(struct dd_crypto_rx *rx, unsigned per_second);

/*
 * Handle an announce datagram (header already parsed). Returns an
 * enum dd_announce_result, or: -EKEYREJECTED unknown sender key, -EXDEV
 * addressed to another receiver key, -ESTALE older session or epoch,
 * -EBUSY rate limit hit, -EBADMSG malformed or bad tag (static tag or AEAD
 * tag; a bad static tag costs no rate-limit token), -EALREADY replay,
 * -EPROTONOSUPPORT cipher not available here. Outputs only on success.
 */
int dd_crypto_rx_announce(struct dd_crypto_rx *rx, const struct dd_hdr *h, const uint8_t *buf,
			  size_t len, uint64_t now_ms, struct dd_announce *out);

/*
 * Verify and decrypt a sealed datagram in place. On success *plain points into
 * buf. Errors: -ENOKEY no session or epoch key, -EMSGSIZE size differs from the
 * session's, -EALREADY replay, -EBADMSG authentication failed.
 */
int dd_crypto_rx_open(struct dd_crypto_rx *rx, const struct dd_hdr *h, uint8_t *buf, size_t len,
		      uint8_t **plain, size_t *plain_len);

bool dd_crypto_rx_has_session(const struct dd_crypto_rx *rx);
uint32_t dd_crypto_rx_session(const struct dd_crypto_rx *rx);
/* Highest sequence number authenticated in the current session. */
uint64_t dd_crypto_rx_top_seq(const struct dd_crypto_rx *rx);
/* Datagram size and sender key of the current session. */
uint16_t dd_crypto_rx_dgram_size(const struct dd_crypto_rx *rx);
const uint8_t *dd_crypto_rx_sender(const struct dd_crypto_rx *rx);

#endif
