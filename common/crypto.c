/* Session crypto: announce construction and verification, per-datagram AEAD seal/open. */
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

#include "bytes.h"
#include "crypto.h"

#define KDF_LABEL "diode-v1 keys"
#define STATIC_LABEL "diode-v1 static tag"
#define MAX_PEERS 8
#define MAX_SEALERS 64 /* threads sealing with their own OpenSSL context; more use libsodium */

struct epoch_key {
	crypto_aead_aes256gcm_state aes; /* first: needs 16-byte alignment */
	bool valid;
	uint16_t epoch;
	uint8_t ephemeral_public[DD_KEY_LEN];
	uint8_t announce_key[32];
	uint8_t data_key[32];
};

/* One sealing thread's OpenSSL context, keyed with the current epoch's data
 * key. Only its owner thread seals with it; it is re-keyed (or freed) only
 * between batches, when no thread seals (see tx/sender.c). */
struct sealer_ctx {
	EVP_CIPHER_CTX *evp;
	pthread_t owner;
	bool ready; /* false: this thread seals with libsodium */
};

struct dd_crypto_tx {
	struct epoch_key current, next; /* first: sodium_malloc alignment */
	uint8_t secret[DD_KEY_LEN];
	uint8_t static_key[32]; /* static tag key, from DH(S, R) (static_tag_key) */
	uint8_t ephemeral_secret[DD_KEY_LEN], next_ephemeral_secret[DD_KEY_LEN];
	struct dd_announce announce, next_announce;
	uint32_t session;
	/* OpenSSL seals about twice as fast as libsodium 1.0.18 here, same bytes
	 * on the wire; one context per sealing thread (tx/sender.c workers), the
	 * key schedule computed once per epoch, not per datagram. */
	uint64_t id; /* unique in the process: what a thread's cached context is for */
	bool evp_on;
	pthread_mutex_t sealers_mu; /* guards claiming an entry of sealers */
	size_t nsealers;
	struct sealer_ctx sealers[MAX_SEALERS];
};

static atomic_uint_fast64_t tx_ids;

/* The calling thread's context for the dd_crypto_tx numbered tx_id. */
static _Thread_local struct {
	uint64_t tx_id;
	struct sealer_ctx *s;
} my_sealer;

struct peer {
	uint8_t public_key[DD_KEY_LEN];
	uint8_t static_dh[DD_KEY_LEN]; /* DH(R, S), computed once */
	uint8_t static_key[32];        /* static tag key from static_dh, computed once */
};

struct dd_crypto_rx {
	struct epoch_key slots[2]; /* first: sodium_malloc alignment */
	/* The same keys for OpenSSL, which opens datagrams about twice as fast as
	 * libsodium 1.0.18 here (VAES/AVX-512 AES-GCM, AVX-512 ChaCha20-Poly1305).
	 * Same algorithms, same bytes on the wire. NULL, or not ready: libsodium. */
	EVP_CIPHER_CTX *evp[2];
	bool evp_ready[2];
	uint8_t secret[DD_KEY_LEN];
	uint8_t public_key[DD_KEY_LEN];
	struct peer peers[MAX_PEERS];
	size_t npeers;
	bool has_session;
	uint32_t session, min_session;
	uint64_t seq_floor;
	uint16_t max_epoch;
	uint8_t cipher;
	uint16_t dgram_size;
	uint8_t sender[DD_KEY_LEN];
	struct dd_replay replay;
	double tokens;
	unsigned per_second;
	uint64_t last_refill_ms;
};

int
dd_crypto_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

bool
dd_crypto_aes_available(void)
{
	return crypto_aead_aes256gcm_is_available() != 0;
}

const char *
dd_crypto_cipher_name(uint8_t cipher)
{
	switch (cipher) {
	case DD_CIPHER_AES256GCM:
		return "aes256gcm";
	case DD_CIPHER_CHACHA20POLY1305:
		return "chacha20poly1305";
	default:
		return "unknown";
	}
}

static void *
secure_alloc(size_t size)
{
	/* sodium_malloc aligns the end of the region to a page; round the size so
	 * the start keeps the 16-byte alignment AES-GCM state needs. */
	size_t rounded = (size + 63) & ~(size_t)63;
	void *p = sodium_malloc(rounded);

	if (p != NULL)
		memset(p, 0, rounded);
	return p;
}

static void
make_nonce(uint8_t nonce[12], uint64_t seq)
{
	memset(nonce, 0, 4);
	dd_store_be64(nonce + 4, seq);
}

/* K = BLAKE2b-512(key = dh1 || dh2, msg = label || body || session || epoch). */
static void
derive(struct epoch_key *k, uint8_t cipher, const uint8_t *dh1, const uint8_t *dh2,
       const uint8_t *body, uint32_t session, uint16_t epoch)
{
	uint8_t ikm[64], okm[64], tail[6];
	crypto_generichash_state st;

	memcpy(ikm, dh1, 32);
	memcpy(ikm + 32, dh2, 32);
	dd_store_be32(tail, session);
	dd_store_be16(tail + 4, epoch);
	crypto_generichash_init(&st, ikm, sizeof(ikm), sizeof(okm));
	crypto_generichash_update(&st, (const uint8_t *)KDF_LABEL, strlen(KDF_LABEL));
	crypto_generichash_update(&st, body, DD_ANNOUNCE_BODY_LEN);
	crypto_generichash_update(&st, tail, sizeof(tail));
	crypto_generichash_final(&st, okm, sizeof(okm));
	memcpy(k->announce_key, okm, 32);
	memcpy(k->data_key, okm + 32, 32);
	if (cipher == DD_CIPHER_AES256GCM)
		crypto_aead_aes256gcm_beforenm(&k->aes, k->data_key);
	k->epoch = epoch;
	k->valid = true;
	sodium_memzero(ikm, sizeof(ikm));
	sodium_memzero(okm, sizeof(okm));
	sodium_memzero(&st, sizeof(st));
}

/*
 * The static tag key, once per peer: BLAKE2b-256(key = DH(S, R),
 * msg = "diode-v1 static tag" || S_public || R_public). Its own label, key
 * length and output length keep it apart from every epoch's K.
 */
static void
static_tag_key(uint8_t key[32], const uint8_t *static_dh, const uint8_t *sender_public,
	       const uint8_t *receiver_public)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, static_dh, DD_KEY_LEN, 32);
	crypto_generichash_update(&st, (const uint8_t *)STATIC_LABEL, strlen(STATIC_LABEL));
	crypto_generichash_update(&st, sender_public, DD_KEY_LEN);
	crypto_generichash_update(&st, receiver_public, DD_KEY_LEN);
	crypto_generichash_final(&st, key, 32);
	sodium_memzero(&st, sizeof(st));
}

/* Static tag of an announce: BLAKE2b-128 keyed with the static tag key over
 * every byte before it (header, body, AEAD tag). No public-key work, so the
 * receiver can check it on every announce before spending a rate-limit token;
 * only a holder of S's or R's secret can compute it. */
static void
static_tag(uint8_t tag[DD_STATIC_TAG_LEN], const uint8_t key[32], const uint8_t *buf)
{
	crypto_generichash(tag, DD_STATIC_TAG_LEN, buf, DD_ANNOUNCE_LEN - DD_STATIC_TAG_LEN, key,
			   32);
}

/* ---------------------------------------------------------------- sender */

/* (Re)key a sealer's context with the current data key; the reset wipes the
 * previous epoch's key schedule (OpenSSL cleanses it on its heap). */
static void
sealer_key(const struct dd_crypto_tx *tx, struct sealer_ctx *s)
{
	const EVP_CIPHER *c = tx->announce.cipher == DD_CIPHER_AES256GCM ? EVP_aes_256_gcm()
									  : EVP_chacha20_poly1305();

	s->ready = false;
	if (s->evp == NULL || EVP_CIPHER_CTX_reset(s->evp) != 1)
		return;
	s->ready = EVP_EncryptInit_ex(s->evp, c, NULL, tx->current.data_key, NULL) == 1;
}

/* The calling thread's OpenSSL context for tx, made on its first seal; NULL
 * (libsodium) if none can be had. */
static struct sealer_ctx *
sealer_get(struct dd_crypto_tx *tx)
{
	pthread_t self = pthread_self();
	struct sealer_ctx *s = NULL;

	if (my_sealer.tx_id == tx->id)
		return my_sealer.s;
	pthread_mutex_lock(&tx->sealers_mu);
	for (size_t i = 0; i < tx->nsealers && s == NULL; i++)
		if (pthread_equal(tx->sealers[i].owner, self))
			s = &tx->sealers[i];
	if (s == NULL && tx->nsealers < MAX_SEALERS) {
		s = &tx->sealers[tx->nsealers++];
		s->owner = self;
		s->evp = EVP_CIPHER_CTX_new();
		sealer_key(tx, s);
	}
	pthread_mutex_unlock(&tx->sealers_mu);
	my_sealer.tx_id = tx->id;
	my_sealer.s = s;
	return s;
}

/* Encrypt n bytes at p in place and put the tag right after them, with the
 * 12-byte nonce and the header as associated data, as libsodium's detached
 * AEADs do. -EAGAIN: failed before touching p; -EIO: failed after.
 *
 * The tag is read with EVP_CIPHER_CTX_get_params rather than
 * EVP_CIPHER_CTX_ctrl(EVP_CTRL_AEAD_GET_TAG): in OpenSSL 3 the ctrl builds
 * the same parameter and then asks the provider anyway, at 20 ns (AES-GCM)
 * to 170 ns (ChaCha20-Poly1305) more per datagram here (tests/tools/
 * sealbench). The IV still goes through EVP_EncryptInit_ex: OpenSSL 3.0 has
 * no cheaper public way to set it, and the init re-reads the IV length from
 * the provider each time (most of what is left of the parameter lookups). */
static int
evp_seal(EVP_CIPHER_CTX *c, const uint8_t *nonce, const uint8_t *ad, uint8_t *p, size_t n)
{
	OSSL_PARAM tag[2] = {
		OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, p + n, DD_TAG_LEN),
		OSSL_PARAM_END,
	};
	int len = 0, fin = 0;

	if (EVP_EncryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &len, ad, DD_HDR_LEN) != 1)
		return -EAGAIN;
	if (EVP_EncryptUpdate(c, p, &len, p, (int)n) != 1 ||
	    EVP_EncryptFinal_ex(c, p + len, &fin) != 1 ||
	    EVP_CIPHER_CTX_get_params(c, tag) != 1)
		return -EIO;
	return 0;
}

static int
tx_make_epoch(struct dd_crypto_tx *tx, struct epoch_key *k, uint8_t *eph_secret,
	      struct dd_announce *a, uint16_t epoch)
{
	uint8_t dh1[32], dh2[32], body[DD_ANNOUNCE_BODY_LEN];
	int rc = 0;

	crypto_box_keypair(a->ephemeral, eph_secret);
	if (crypto_scalarmult(dh1, eph_secret, a->receiver) != 0 ||
	    crypto_scalarmult(dh2, tx->secret, a->receiver) != 0) {
		rc = -EINVAL; /* the peer public key is a low-order point */
		goto out;
	}
	memcpy(k->ephemeral_public, a->ephemeral, DD_KEY_LEN);
	dd_wire_put_announce(body, a);
	derive(k, a->cipher, dh1, dh2, body, tx->session, epoch);
out:
	sodium_memzero(dh1, sizeof(dh1));
	sodium_memzero(dh2, sizeof(dh2));
	return rc;
}

int
dd_crypto_tx_new(struct dd_crypto_tx **out, const uint8_t *secret, const uint8_t *public_key,
		 const uint8_t *peer_public, uint8_t cipher, uint32_t session,
		 uint16_t dgram_size, uint64_t started)
{
	struct dd_crypto_tx *tx;
	uint8_t static_dh[DD_KEY_LEN];
	int rc;

	*out = NULL;
	if ((cipher != DD_CIPHER_AES256GCM && cipher != DD_CIPHER_CHACHA20POLY1305) ||
	    (cipher == DD_CIPHER_AES256GCM && !dd_crypto_aes_available()) ||
	    !dd_wire_dgram_size_ok(dgram_size))
		return -EINVAL;
	tx = secure_alloc(sizeof(*tx));
	if (tx == NULL)
		return -ENOMEM;
	memcpy(tx->secret, secret, DD_KEY_LEN);
	tx->session = session;
	tx->announce.cipher = cipher;
	tx->announce.dgram_size = dgram_size;
	memcpy(tx->announce.sender, public_key, DD_KEY_LEN);
	memcpy(tx->announce.receiver, peer_public, DD_KEY_LEN);
	tx->announce.started = started;
	if (crypto_scalarmult(static_dh, tx->secret, peer_public) != 0) {
		sodium_free(tx);
		return -EINVAL; /* the peer public key is a low-order point */
	}
	static_tag_key(tx->static_key, static_dh, public_key, peer_public);
	sodium_memzero(static_dh, sizeof(static_dh));
	rc = tx_make_epoch(tx, &tx->current, tx->ephemeral_secret, &tx->announce, 0);
	if (rc != 0) {
		sodium_free(tx);
		return rc;
	}
	tx->id = atomic_fetch_add(&tx_ids, 1) + 1;
	tx->evp_on = true;
	pthread_mutex_init(&tx->sealers_mu, NULL);
	/* The calling thread's context now: OpenSSL loads what it needs for the
	 * cipher before the process is sandboxed. */
	(void)sealer_get(tx);
	*out = tx;
	return 0;
}

void
dd_crypto_tx_free(struct dd_crypto_tx *tx)
{
	if (tx == NULL)
		return;
	/* EVP_CIPHER_CTX_free wipes the key schedule it holds. */
	for (size_t i = 0; i < tx->nsealers; i++)
		EVP_CIPHER_CTX_free(tx->sealers[i].evp);
	pthread_mutex_destroy(&tx->sealers_mu);
	sodium_free(tx);
}

void
dd_crypto_tx_set_evp(struct dd_crypto_tx *tx, bool on)
{
	tx->evp_on = on;
}

int
dd_crypto_tx_prepare_next(struct dd_crypto_tx *tx)
{
	if (tx->next.valid)
		return 0;
	if (tx->current.epoch == UINT16_MAX)
		return -ERANGE;
	tx->next_announce = tx->announce;
	return tx_make_epoch(tx, &tx->next, tx->next_ephemeral_secret, &tx->next_announce,
			     (uint16_t)(tx->current.epoch + 1));
}

void
dd_crypto_tx_switch(struct dd_crypto_tx *tx)
{
	if (!tx->next.valid)
		return;
	tx->current = tx->next;
	tx->announce = tx->next_announce;
	memcpy(tx->ephemeral_secret, tx->next_ephemeral_secret, DD_KEY_LEN);
	sodium_memzero(&tx->next, sizeof(tx->next));
	sodium_memzero(tx->next_ephemeral_secret, DD_KEY_LEN);
	/* Every thread's context to the new key, the old one wiped. */
	pthread_mutex_lock(&tx->sealers_mu);
	for (size_t i = 0; i < tx->nsealers; i++)
		sealer_key(tx, &tx->sealers[i]);
	pthread_mutex_unlock(&tx->sealers_mu);
}

bool
dd_crypto_tx_has_next(const struct dd_crypto_tx *tx)
{
	return tx->next.valid;
}

uint16_t
dd_crypto_tx_epoch(const struct dd_crypto_tx *tx)
{
	return tx->current.epoch;
}

void
dd_crypto_tx_announce(struct dd_crypto_tx *tx, bool next, uint64_t seq, uint8_t *buf)
{
	const struct epoch_key *k = next && tx->next.valid ? &tx->next : &tx->current;
	const struct dd_announce *a = next && tx->next.valid ? &tx->next_announce : &tx->announce;
	struct dd_hdr h = {
		.type = DD_TYPE_ANNOUNCE, .epoch = k->epoch, .session = tx->session, .seq = seq,
	};
	uint8_t nonce[12];

	dd_wire_put_header(buf, &h);
	dd_wire_put_announce(buf + DD_HDR_LEN, a);
	make_nonce(nonce, seq);
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(
		buf + DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN, buf + DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN,
		NULL, NULL, 0, buf, DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN, NULL, nonce,
		k->announce_key);
	static_tag(buf + DD_ANNOUNCE_LEN - DD_STATIC_TAG_LEN, tx->static_key, buf);
}

void
dd_crypto_tx_seal(struct dd_crypto_tx *tx, uint64_t seq, uint8_t *buf, size_t len)
{
	struct dd_hdr h = {
		.type = DD_TYPE_SEALED, .epoch = tx->current.epoch, .session = tx->session,
		.seq = seq,
	};
	uint8_t nonce[12];
	uint8_t *plain = buf + DD_HDR_LEN;
	size_t plain_len = len - DD_SEALED_OVERHEAD;
	struct sealer_ctx *s = tx->evp_on ? sealer_get(tx) : NULL;

	dd_wire_put_header(buf, &h);
	make_nonce(nonce, seq);
	if (s != NULL && s->ready) {
		int rc = evp_seal(s->evp, nonce, buf, plain, plain_len);

		if (rc == 0)
			return;
		s->ready = false; /* this thread seals with libsodium from now on */
		if (rc == -EIO) {
			/* Part of the payload may be encrypted already: send nothing
			 * of it, and a datagram that fails authentication (counted
			 * by diode-rx, repaired by FEC like a lost one). */
			sodium_memzero(plain, plain_len + DD_TAG_LEN);
			return;
		}
	}
	if (tx->announce.cipher == DD_CIPHER_AES256GCM)
		crypto_aead_aes256gcm_encrypt_detached_afternm(
			plain, plain + plain_len, NULL, plain, plain_len, buf, DD_HDR_LEN, NULL,
			nonce, &tx->current.aes);
	else
		crypto_aead_chacha20poly1305_ietf_encrypt_detached(
			plain, plain + plain_len, NULL, plain, plain_len, buf, DD_HDR_LEN, NULL,
			nonce, tx->current.data_key);
}

/* -------------------------------------------------------------- receiver */

int
dd_crypto_rx_new(struct dd_crypto_rx **out, const uint8_t *secret, const uint8_t *public_key)
{
	struct dd_crypto_rx *rx;

	*out = NULL;
	rx = secure_alloc(sizeof(*rx));
	if (rx == NULL)
		return -ENOMEM;
	memcpy(rx->secret, secret, DD_KEY_LEN);
	memcpy(rx->public_key, public_key, DD_KEY_LEN);
	rx->evp[0] = EVP_CIPHER_CTX_new();
	rx->evp[1] = EVP_CIPHER_CTX_new();
	rx->per_second = 20;
	rx->tokens = 20;
	*out = rx;
	return 0;
}

void
dd_crypto_rx_free(struct dd_crypto_rx *rx)
{
	if (rx == NULL)
		return;
	/* EVP_CIPHER_CTX_free wipes the key schedule it holds. */
	EVP_CIPHER_CTX_free(rx->evp[0]);
	EVP_CIPHER_CTX_free(rx->evp[1]);
	sodium_free(rx);
}

/* Put slot i's data key into its OpenSSL context; libsodium opens the slot's
 * datagrams if this fails. */
static void
evp_install(struct dd_crypto_rx *rx, size_t i)
{
	const EVP_CIPHER *c = rx->cipher == DD_CIPHER_AES256GCM ? EVP_aes_256_gcm()
								  : EVP_chacha20_poly1305();

	rx->evp_ready[i] = false;
	if (rx->evp[i] == NULL || EVP_CIPHER_CTX_reset(rx->evp[i]) != 1)
		return;
	rx->evp_ready[i] = EVP_DecryptInit_ex(rx->evp[i], c, NULL, rx->slots[i].data_key,
					      NULL) == 1;
}

/* Forget slot i's key in its OpenSSL context (the reset wipes it). */
static void
evp_forget(struct dd_crypto_rx *rx, size_t i)
{
	rx->evp_ready[i] = false;
	if (rx->evp[i] != NULL)
		EVP_CIPHER_CTX_reset(rx->evp[i]);
}

/* Verify and decrypt n bytes at p in place; the 12-byte nonce, the header as
 * associated data and the tag right after the ciphertext, as libsodium's
 * detached AEADs take them. Nothing decrypted is left behind on failure: the
 * tag is checked by EVP_DecryptFinal_ex, before the caller sees any of it.
 * The expected tag goes in with EVP_CIPHER_CTX_set_params, cheaper than
 * EVP_CIPHER_CTX_ctrl(EVP_CTRL_AEAD_SET_TAG) (see evp_seal); passing it with
 * the IV to EVP_DecryptInit_ex2 measured no better. */
static int
evp_open(EVP_CIPHER_CTX *c, const uint8_t *nonce, const uint8_t *ad, uint8_t *p, size_t n)
{
	OSSL_PARAM tag[2] = {
		OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, p + n, DD_TAG_LEN),
		OSSL_PARAM_END,
	};
	int len = 0, fin = 0;

	if (EVP_DecryptInit_ex(c, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &len, ad, DD_HDR_LEN) != 1 ||
	    EVP_CIPHER_CTX_set_params(c, tag) != 1 ||
	    EVP_DecryptUpdate(c, p, &len, p, (int)n) != 1 ||
	    EVP_DecryptFinal_ex(c, p + len, &fin) != 1) {
		sodium_memzero(p, n);
		return -1;
	}
	return 0;
}

int
dd_crypto_rx_add_peer(struct dd_crypto_rx *rx, const uint8_t *peer_public)
{
	struct peer *p;

	if (rx->npeers == MAX_PEERS)
		return -ENOSPC;
	p = &rx->peers[rx->npeers];
	memcpy(p->public_key, peer_public, DD_KEY_LEN);
	if (crypto_scalarmult(p->static_dh, rx->secret, peer_public) != 0)
		return -EINVAL;
	static_tag_key(p->static_key, p->static_dh, peer_public, rx->public_key);
	rx->npeers++;
	return 0;
}

void
dd_crypto_rx_set_floor(struct dd_crypto_rx *rx, uint32_t min_session, uint64_t seq_floor)
{
	rx->min_session = min_session;
	rx->seq_floor = seq_floor;
}

void
dd_crypto_rx_set_announce_rate(struct dd_crypto_rx *rx, unsigned per_second)
{
	rx->per_second = per_second > 0 ? per_second : 1;
	rx->tokens = rx->per_second;
}

static bool
take_token(struct dd_crypto_rx *rx, uint64_t now_ms)
{
	if (now_ms > rx->last_refill_ms) {
		rx->tokens += (double)(now_ms - rx->last_refill_ms) * rx->per_second / 1000.0;
		if (rx->tokens > rx->per_second)
			rx->tokens = rx->per_second;
		rx->last_refill_ms = now_ms;
	}
	if (rx->tokens < 1.0)
		return false;
	rx->tokens -= 1.0;
	return true;
}

static bool
verify_announce_tag(const struct epoch_key *k, const struct dd_hdr *h, const uint8_t *buf)
{
	uint8_t nonce[12], empty[1] = { 0 };

	make_nonce(nonce, h->seq);
	return crypto_aead_chacha20poly1305_ietf_decrypt_detached(
		       empty, NULL, empty, 0, buf + DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN, buf,
		       DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN, nonce, k->announce_key) == 0;
}

static bool
verify_static_tag(const struct peer *peer, const uint8_t *buf)
{
	uint8_t tag[DD_STATIC_TAG_LEN];

	static_tag(tag, peer->static_key, buf);
	return crypto_verify_16(tag, buf + DD_ANNOUNCE_LEN - DD_STATIC_TAG_LEN) == 0;
}

static struct epoch_key *
find_slot(struct dd_crypto_rx *rx, uint16_t epoch)
{
	for (size_t i = 0; i < 2; i++)
		if (rx->slots[i].valid && rx->slots[i].epoch == epoch)
			return &rx->slots[i];
	return NULL;
}

int
dd_crypto_rx_announce(struct dd_crypto_rx *rx, const struct dd_hdr *h, const uint8_t *buf,
		      size_t len, uint64_t now_ms, struct dd_announce *out)
{
	struct dd_announce a;
	const struct peer *peer = NULL;
	struct epoch_key fresh, *slot;
	uint8_t dh1[32];
	bool new_session;
	int rc;

	if (len != DD_ANNOUNCE_LEN || h->type != DD_TYPE_ANNOUNCE)
		return -EBADMSG;
	if (dd_wire_parse_announce(&a, buf + DD_HDR_LEN, DD_ANNOUNCE_BODY_LEN) != 0)
		return -EBADMSG;
	for (size_t i = 0; i < rx->npeers; i++)
		if (memcmp(rx->peers[i].public_key, a.sender, DD_KEY_LEN) == 0)
			peer = &rx->peers[i];
	if (peer == NULL)
		return -EKEYREJECTED;
	if (memcmp(a.receiver, rx->public_key, DD_KEY_LEN) != 0)
		return -EXDEV;
	if (h->session < rx->min_session || (rx->has_session && h->session < rx->session))
		return -ESTALE;
	if (h->session == rx->min_session && h->seq <= rx->seq_floor)
		return -EALREADY;
	/* Only a key holder can make the static tag: a forged announce stops
	 * here, before it can take a rate-limit token from a genuine one. */
	if (!verify_static_tag(peer, buf))
		return -EBADMSG;
	new_session = !rx->has_session || h->session > rx->session;
	if (!new_session) {
		if (!dd_replay_check(&rx->replay, h->seq))
			return -EALREADY;
		slot = find_slot(rx, h->epoch);
		if (slot != NULL) {
			if (memcmp(slot->ephemeral_public, a.ephemeral, DD_KEY_LEN) != 0 ||
			    !verify_announce_tag(slot, h, buf))
				return -EBADMSG;
			dd_replay_update(&rx->replay, h->seq);
			*out = a;
			return DD_ANNOUNCE_KNOWN;
		}
		if (h->epoch + 1 < rx->max_epoch)
			return -ESTALE;
		if (a.cipher != rx->cipher || a.dgram_size != rx->dgram_size ||
		    memcmp(a.sender, rx->sender, DD_KEY_LEN) != 0)
			return -EBADMSG;
	}
	if (a.cipher == DD_CIPHER_AES256GCM && !dd_crypto_aes_available())
		return -EPROTONOSUPPORT;
	if (!take_token(rx, now_ms))
		return -EBUSY;
	memset(&fresh, 0, sizeof(fresh));
	if (crypto_scalarmult(dh1, rx->secret, a.ephemeral) != 0)
		return -EBADMSG;
	derive(&fresh, a.cipher, dh1, peer->static_dh, buf + DD_HDR_LEN, h->session, h->epoch);
	sodium_memzero(dh1, sizeof(dh1));
	memcpy(fresh.ephemeral_public, a.ephemeral, DD_KEY_LEN);
	if (!verify_announce_tag(&fresh, h, buf)) {
		rc = -EBADMSG;
		goto out;
	}
	if (new_session) {
		sodium_memzero(rx->slots, sizeof(rx->slots));
		evp_forget(rx, 1);
		rx->has_session = true;
		rx->session = h->session;
		rx->cipher = a.cipher;
		rx->dgram_size = a.dgram_size;
		memcpy(rx->sender, a.sender, DD_KEY_LEN);
		rx->max_epoch = h->epoch;
		dd_replay_reset(&rx->replay, rx->seq_floor, h->session == rx->min_session);
		rx->slots[0] = fresh;
		evp_install(rx, 0);
		rc = DD_ANNOUNCE_NEW_SESSION;
	} else {
		/* Keep the newest two epochs: replace the invalid or older slot. */
		size_t victim = !rx->slots[0].valid ? 0 : !rx->slots[1].valid ? 1 :
			rx->slots[0].epoch < rx->slots[1].epoch ? 0 : 1;

		rx->slots[victim] = fresh;
		evp_install(rx, victim);
		if (h->epoch > rx->max_epoch)
			rx->max_epoch = h->epoch;
		rc = DD_ANNOUNCE_NEW_EPOCH;
	}
	dd_replay_update(&rx->replay, h->seq);
	*out = a;
out:
	sodium_memzero(&fresh, sizeof(fresh));
	return rc;
}

int
dd_crypto_rx_open(struct dd_crypto_rx *rx, const struct dd_hdr *h, uint8_t *buf, size_t len,
		  uint8_t **plain, size_t *plain_len)
{
	struct epoch_key *k;
	uint8_t nonce[12];
	uint8_t *p = buf + DD_HDR_LEN;
	size_t n = len - DD_SEALED_OVERHEAD;
	int bad;

	*plain = NULL;
	*plain_len = 0;
	if (!rx->has_session || h->session != rx->session)
		return -ENOKEY;
	if (len != rx->dgram_size)
		return -EMSGSIZE;
	k = find_slot(rx, h->epoch);
	if (k == NULL)
		return -ENOKEY;
	if (!dd_replay_check(&rx->replay, h->seq))
		return -EALREADY;
	make_nonce(nonce, h->seq);
	if (rx->evp_ready[k - rx->slots])
		bad = evp_open(rx->evp[k - rx->slots], nonce, buf, p, n);
	else if (rx->cipher == DD_CIPHER_AES256GCM)
		bad = crypto_aead_aes256gcm_decrypt_detached_afternm(p, NULL, p, n, p + n, buf,
								     DD_HDR_LEN, nonce, &k->aes);
	else
		bad = crypto_aead_chacha20poly1305_ietf_decrypt_detached(p, NULL, p, n, p + n, buf,
									 DD_HDR_LEN, nonce,
									 k->data_key);
	if (bad != 0)
		return -EBADMSG;
	dd_replay_update(&rx->replay, h->seq);
	*plain = p;
	*plain_len = n;
	return 0;
}

bool
dd_crypto_rx_has_session(const struct dd_crypto_rx *rx)
{
	return rx->has_session;
}

uint32_t
dd_crypto_rx_session(const struct dd_crypto_rx *rx)
{
	return rx->session;
}

uint64_t
dd_crypto_rx_top_seq(const struct dd_crypto_rx *rx)
{
	return rx->replay.top;
}

uint16_t
dd_crypto_rx_dgram_size(const struct dd_crypto_rx *rx)
{
	return rx->dgram_size;
}

const uint8_t *
dd_crypto_rx_sender(const struct dd_crypto_rx *rx)
{
	return rx->sender;
}
