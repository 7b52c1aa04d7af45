/* Unit tests for common/crypto.c: announces, sealed datagrams, replay, floors, rekeying, rate limit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "crypto.h"
#include "wire.h"

#define SESSION 5
#define STARTED 1700000000ull
#define PLAIN_LEN(len) ((len) - DD_SEALED_OVERHEAD)

struct keypair {
	uint8_t pk[DD_KEY_LEN];
	uint8_t sk[DD_KEY_LEN];
};

/* One sender and one receiver with real keys; owns rx and tx. */
struct fix {
	struct keypair sender, receiver;
	struct dd_crypto_rx *rx;
	struct dd_crypto_tx *tx;
	uint8_t cipher;
	uint64_t now_ms; /* receiver clock, advanced one second per announce */
};

static void
make_keypair(struct keypair *kp)
{
	crypto_box_keypair(kp->pk, kp->sk);
}

static struct dd_crypto_tx *
new_tx(const struct keypair *self, const uint8_t *claimed_pk, const uint8_t *peer_pk,
       uint8_t cipher, uint32_t session, uint16_t dgram_size)
{
	struct dd_crypto_tx *tx = NULL;

	assert_int_equal(dd_crypto_tx_new(&tx, self->sk, claimed_pk, peer_pk, cipher, session,
					  dgram_size, STARTED), 0);
	assert_non_null(tx);
	return tx;
}

static struct dd_crypto_rx *
new_rx(const uint8_t *sk, const uint8_t *pk, const uint8_t *peer_pk)
{
	struct dd_crypto_rx *rx = NULL;

	assert_int_equal(dd_crypto_rx_new(&rx, sk, pk), 0);
	assert_non_null(rx);
	if (peer_pk != NULL)
		assert_int_equal(dd_crypto_rx_add_peer(rx, peer_pk), 0);
	return rx;
}

static struct fix *
fix_new(uint8_t cipher)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	make_keypair(&f->sender);
	make_keypair(&f->receiver);
	f->cipher = cipher;
	f->now_ms = 1000000;
	f->rx = new_rx(f->receiver.sk, f->receiver.pk, f->sender.pk);
	f->tx = new_tx(&f->sender, f->sender.pk, f->receiver.pk, cipher, SESSION,
		       DD_DGRAM_DEFAULT);
	return f;
}

static int
setup_chacha(void **state)
{
	*state = fix_new(DD_CIPHER_CHACHA20POLY1305);
	return 0;
}

static int
setup_aes(void **state)
{
	if (!dd_crypto_aes_available()) {
		*state = NULL;
		return 0;
	}
	*state = fix_new(DD_CIPHER_AES256GCM);
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	if (f != NULL) {
		dd_crypto_tx_free(f->tx);
		dd_crypto_rx_free(f->rx);
		free(f);
	}
	return 0;
}

/* The fixture, or skip the test when its cipher is not available here. */
static struct fix *
fixture(void **state)
{
	if (*state == NULL)
		skip();
	return *state;
}

/* Build an announce with tx and hand it to rx; returns rx's verdict. */
static int
deliver_announce(struct dd_crypto_rx *rx, struct dd_crypto_tx *tx, bool next, uint64_t seq,
		 uint64_t now_ms, struct dd_announce *out)
{
	uint8_t buf[DD_ANNOUNCE_LEN];
	struct dd_announce dummy;
	struct dd_hdr h;

	dd_crypto_tx_announce(tx, next, seq, buf);
	assert_int_equal(dd_wire_parse_header(&h, buf, sizeof(buf)), 0);
	return dd_crypto_rx_announce(rx, &h, buf, sizeof(buf), now_ms, out ? out : &dummy);
}

static int
announce(struct fix *f, struct dd_crypto_tx *tx, bool next, uint64_t seq)
{
	f->now_ms += 1000;
	return deliver_announce(f->rx, tx, next, seq, f->now_ms, NULL);
}

static void
fill_plain(uint8_t *buf, size_t len, uint64_t seq)
{
	for (size_t i = DD_HDR_LEN; i < len - DD_TAG_LEN; i++)
		buf[i] = (uint8_t)(i * 31 + seq);
}

/* A sealed datagram of len bytes (caller frees) with a pattern plaintext. */
static uint8_t *
seal(struct dd_crypto_tx *tx, uint64_t seq, size_t len)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	fill_plain(buf, len, seq);
	dd_crypto_tx_seal(tx, seq, buf, len);
	return buf;
}

/* Parse the header and open; the header verdict if it is refused. */
static int
open_dgram(struct dd_crypto_rx *rx, uint8_t *buf, size_t len, uint8_t **plain,
	   size_t *plain_len)
{
	struct dd_hdr h;
	int rc = dd_wire_parse_header(&h, buf, len);

	*plain = NULL;
	*plain_len = 0;
	if (rc != 0)
		return rc;
	return dd_crypto_rx_open(rx, &h, buf, len, plain, plain_len);
}

/* Seal seq with tx, open it with rx, and check the plaintext came back. */
static int
round_trip(struct dd_crypto_rx *rx, struct dd_crypto_tx *tx, uint64_t seq, size_t len)
{
	uint8_t *buf = seal(tx, seq, len), *expect = malloc(len), *plain;
	size_t plain_len;
	int rc;

	assert_non_null(expect);
	fill_plain(expect, len, seq);
	rc = open_dgram(rx, buf, len, &plain, &plain_len);
	if (rc == 0) {
		assert_ptr_equal(plain, buf + DD_HDR_LEN);
		assert_int_equal(plain_len, PLAIN_LEN(len));
		assert_memory_equal(plain, expect + DD_HDR_LEN, plain_len);
	} else {
		assert_null(plain);
		assert_int_equal(plain_len, 0);
	}
	free(expect);
	free(buf);
	return rc;
}

/* ---------------------------------------------------------------- announce */

static void
test_crypto_announce_from_trusted_sender_starts_session(void **state)
{
	struct fix *f = fixture(state);
	struct dd_announce a;

	assert_false(dd_crypto_rx_has_session(f->rx));
	f->now_ms += 1000;
	assert_int_equal(deliver_announce(f->rx, f->tx, false, 1, f->now_ms, &a),
			 DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(a.cipher, f->cipher);
	assert_int_equal(a.dgram_size, DD_DGRAM_DEFAULT);
	assert_memory_equal(a.sender, f->sender.pk, DD_KEY_LEN);
	assert_memory_equal(a.receiver, f->receiver.pk, DD_KEY_LEN);
	assert_true(a.started == STARTED);
	assert_true(dd_crypto_rx_has_session(f->rx));
	assert_int_equal(dd_crypto_rx_session(f->rx), SESSION);
	assert_int_equal(dd_crypto_rx_dgram_size(f->rx), DD_DGRAM_DEFAULT);
	assert_memory_equal(dd_crypto_rx_sender(f->rx), f->sender.pk, DD_KEY_LEN);
	assert_int_equal(dd_crypto_rx_top_seq(f->rx), 1);

	/* The same key again under a new sequence number: nothing changes. */
	assert_int_equal(announce(f, f->tx, false, 2), DD_ANNOUNCE_KNOWN);
	assert_int_equal(dd_crypto_rx_top_seq(f->rx), 2);
}

static void
test_crypto_announce_replay_is_ealready(void **state)
{
	struct fix *f = fixture(state);
	uint8_t buf[DD_ANNOUNCE_LEN];
	struct dd_announce a;
	struct dd_hdr h;

	dd_crypto_tx_announce(f->tx, false, 1, buf);
	assert_int_equal(dd_wire_parse_header(&h, buf, sizeof(buf)), 0);
	assert_int_equal(dd_crypto_rx_announce(f->rx, &h, buf, sizeof(buf), f->now_ms, &a),
			 DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(dd_crypto_rx_announce(f->rx, &h, buf, sizeof(buf), f->now_ms, &a),
			 -EALREADY);
	/* Still a replay after later traffic. */
	assert_int_equal(round_trip(f->rx, f->tx, 2, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(announce(f, f->tx, false, 3), DD_ANNOUNCE_KNOWN);
	assert_int_equal(dd_crypto_rx_announce(f->rx, &h, buf, sizeof(buf), f->now_ms, &a),
			 -EALREADY);
	/* And an announce may not reuse a datagram's sequence number. */
	assert_int_equal(announce(f, f->tx, false, 2), -EALREADY);
}

static void
test_crypto_announce_to_another_receiver_key_is_exdev(void **state)
{
	struct fix *f = fixture(state);
	struct keypair other;
	struct dd_crypto_tx *tx;

	make_keypair(&other);
	tx = new_tx(&f->sender, f->sender.pk, other.pk, f->cipher, SESSION, DD_DGRAM_DEFAULT);
	assert_int_equal(announce(f, tx, false, 1), -EXDEV);
	assert_false(dd_crypto_rx_has_session(f->rx));
	dd_crypto_tx_free(tx);
}

static void
test_crypto_receiver_with_other_secret_rejects_announce(void **state)
{
	struct fix *f = fixture(state);
	struct keypair other;
	struct dd_crypto_rx *rx;

	/* Right public key in the configuration, wrong secret: the keys differ. */
	make_keypair(&other);
	rx = new_rx(other.sk, f->receiver.pk, f->sender.pk);
	assert_int_equal(deliver_announce(rx, f->tx, false, 1, f->now_ms, NULL), -EBADMSG);
	assert_false(dd_crypto_rx_has_session(rx));
	assert_int_equal(round_trip(rx, f->tx, 2, DD_DGRAM_DEFAULT), -ENOKEY);
	dd_crypto_rx_free(rx);
}

static void
test_crypto_announce_from_unknown_sender_is_keyrejected(void **state)
{
	struct fix *f = fixture(state);
	struct keypair stranger;
	struct dd_crypto_tx *tx;
	struct dd_crypto_rx *rx;

	make_keypair(&stranger);
	tx = new_tx(&stranger, stranger.pk, f->receiver.pk, f->cipher, SESSION,
		    DD_DGRAM_DEFAULT);
	assert_int_equal(announce(f, tx, false, 1), -EKEYREJECTED);
	assert_false(dd_crypto_rx_has_session(f->rx));
	/* A receiver that trusts nobody refuses the real sender too. */
	rx = new_rx(f->receiver.sk, f->receiver.pk, NULL);
	assert_int_equal(deliver_announce(rx, f->tx, false, 1, f->now_ms, NULL), -EKEYREJECTED);
	dd_crypto_rx_free(rx);
	dd_crypto_tx_free(tx);
}

static void
test_crypto_announce_forging_trusted_sender_key_is_badmsg(void **state)
{
	struct fix *f = fixture(state);
	struct keypair forger;
	struct dd_crypto_tx *tx;

	/* The forger knows every public key but holds only its own secret. */
	make_keypair(&forger);
	tx = new_tx(&forger, f->sender.pk, f->receiver.pk, f->cipher, SESSION + 1,
		    DD_DGRAM_DEFAULT);
	assert_int_equal(announce(f, tx, false, 1), -EBADMSG);
	assert_false(dd_crypto_rx_has_session(f->rx));
	/* Nor can it take over a running session. */
	assert_int_equal(announce(f, f->tx, false, 2), DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(announce(f, tx, false, 3), -EBADMSG);
	assert_int_equal(dd_crypto_rx_session(f->rx), SESSION);
	assert_int_equal(round_trip(f->rx, tx, 4, DD_DGRAM_DEFAULT), -ENOKEY);
	assert_int_equal(round_trip(f->rx, f->tx, 5, DD_DGRAM_DEFAULT), 0);
	dd_crypto_tx_free(tx);
}

static void
test_crypto_trusts_several_sender_keys(void **state)
{
	struct fix *f = fixture(state);
	struct keypair second;
	struct dd_crypto_tx *tx;

	make_keypair(&second);
	assert_int_equal(dd_crypto_rx_add_peer(f->rx, second.pk), 0);
	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	tx = new_tx(&second, second.pk, f->receiver.pk, f->cipher, SESSION + 1,
		    DD_DGRAM_DEFAULT);
	assert_int_equal(announce(f, tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	assert_memory_equal(dd_crypto_rx_sender(f->rx), second.pk, DD_KEY_LEN);
	assert_int_equal(round_trip(f->rx, tx, 2, DD_DGRAM_DEFAULT), 0);
	dd_crypto_tx_free(tx);
}

/* Expected verdict for a flip of bit `bit` of an announce datagram on a
 * receiver without a session. */
static int
announce_flip_verdict(size_t bit)
{
	size_t byte = bit / 8, body = byte - DD_HDR_LEN;

	if (byte < 2)
		return -EBADMSG; /* version, type: the header parser */
	if (byte < DD_HDR_LEN)
		return -EBADMSG; /* epoch, session, seq: the tag */
	if (byte >= DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN)
		return -EBADMSG; /* the AEAD tag and the static tag */
	if (body >= 40 && body < 72)
		return -EKEYREJECTED; /* sender key */
	if (body >= 72 && body < 104)
		return -EXDEV; /* receiver key */
	return -EBADMSG; /* cipher, reserved, size, ephemeral, start time */
}

static void
test_crypto_announce_rejects_every_bit_flip(void **state)
{
	struct fix *f = fixture(state);
	uint8_t good[DD_ANNOUNCE_LEN], buf[DD_ANNOUNCE_LEN];
	struct dd_announce a;
	struct dd_hdr h;

	dd_crypto_rx_set_announce_rate(f->rx, 100000);
	dd_crypto_tx_announce(f->tx, false, 1, good);
	for (size_t bit = 0; bit < sizeof(good) * 8; bit++) {
		int rc;

		memcpy(buf, good, sizeof(buf));
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = dd_wire_parse_header(&h, buf, sizeof(buf));
		if (rc == 0)
			rc = dd_crypto_rx_announce(f->rx, &h, buf, sizeof(buf), ++f->now_ms, &a);
		if (rc != announce_flip_verdict(bit))
			fail_msg("announce with bit %zu flipped: %d, want %d", bit, rc,
				 announce_flip_verdict(bit));
		assert_false(dd_crypto_rx_has_session(f->rx));
	}
	/* None of them left state behind. */
	assert_int_equal(dd_wire_parse_header(&h, good, sizeof(good)), 0);
	assert_int_equal(dd_crypto_rx_announce(f->rx, &h, good, sizeof(good), ++f->now_ms, &a),
			 DD_ANNOUNCE_NEW_SESSION);
}

static void
test_crypto_announce_of_wrong_length_or_type_is_badmsg(void **state)
{
	struct fix *f = fixture(state);
	uint8_t buf[DD_ANNOUNCE_LEN + 1];
	struct dd_announce a;
	struct dd_hdr h;

	dd_crypto_tx_announce(f->tx, false, 1, buf);
	assert_int_equal(dd_wire_parse_header(&h, buf, DD_ANNOUNCE_LEN), 0);
	assert_int_equal(dd_crypto_rx_announce(f->rx, &h, buf, DD_ANNOUNCE_LEN - 1, f->now_ms,
					       &a), -EBADMSG);
	assert_int_equal(dd_crypto_rx_announce(f->rx, &h, buf, DD_ANNOUNCE_LEN + 1, f->now_ms,
					       &a), -EBADMSG);
	h.type = DD_TYPE_SEALED;
	assert_int_equal(dd_crypto_rx_announce(f->rx, &h, buf, DD_ANNOUNCE_LEN, f->now_ms, &a),
			 -EBADMSG);
	assert_false(dd_crypto_rx_has_session(f->rx));
}

static void
test_crypto_older_session_after_newer_is_estale(void **state)
{
	struct fix *f = fixture(state);
	struct dd_crypto_tx *newer;

	newer = new_tx(&f->sender, f->sender.pk, f->receiver.pk, f->cipher, SESSION + 1,
		       DD_DGRAM_DEFAULT);
	assert_int_equal(announce(f, newer, false, 1), DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(announce(f, f->tx, false, 2), -ESTALE);
	assert_int_equal(dd_crypto_rx_session(f->rx), SESSION + 1);
	/* Datagrams of the old session have no key any more. */
	assert_int_equal(round_trip(f->rx, f->tx, 3, DD_DGRAM_DEFAULT), -ENOKEY);
	assert_int_equal(round_trip(f->rx, newer, 3, DD_DGRAM_DEFAULT), 0);
	dd_crypto_tx_free(newer);
}

static void
test_crypto_newer_session_replaces_older(void **state)
{
	struct fix *f = fixture(state);
	struct dd_crypto_tx *newer;

	assert_int_equal(announce(f, f->tx, false, 100), DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(round_trip(f->rx, f->tx, 101, DD_DGRAM_DEFAULT), 0);
	newer = new_tx(&f->sender, f->sender.pk, f->receiver.pk, f->cipher, SESSION + 1,
		       DD_DGRAM_MIN);
	/* A restarted sender counts from 1 again: the replay window starts over. */
	assert_int_equal(announce(f, newer, false, 1), DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(dd_crypto_rx_dgram_size(f->rx), DD_DGRAM_MIN);
	assert_int_equal(round_trip(f->rx, newer, 2, DD_DGRAM_MIN), 0);
	assert_int_equal(round_trip(f->rx, f->tx, 102, DD_DGRAM_DEFAULT), -ENOKEY);
	dd_crypto_tx_free(newer);
}

/* ----------------------------------------------------------------- floor */

static void
test_crypto_floor_refuses_seq_at_or_below_it(void **state)
{
	struct fix *f = fixture(state);
	struct dd_crypto_tx *older, *newer;

	dd_crypto_rx_set_floor(f->rx, SESSION, 100);
	assert_int_equal(announce(f, f->tx, false, 1), -EALREADY);
	assert_int_equal(announce(f, f->tx, false, 100), -EALREADY);
	assert_false(dd_crypto_rx_has_session(f->rx));
	assert_int_equal(announce(f, f->tx, false, 101), DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(round_trip(f->rx, f->tx, 2, DD_DGRAM_DEFAULT), -EALREADY);
	assert_int_equal(round_trip(f->rx, f->tx, 99, DD_DGRAM_DEFAULT), -EALREADY);
	assert_int_equal(round_trip(f->rx, f->tx, 100, DD_DGRAM_DEFAULT), -EALREADY);
	assert_int_equal(round_trip(f->rx, f->tx, 102, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(announce(f, f->tx, false, 50), -EALREADY);

	/* Sessions below the floor's are stale; later ones start clean. */
	older = new_tx(&f->sender, f->sender.pk, f->receiver.pk, f->cipher, SESSION - 1,
		       DD_DGRAM_DEFAULT);
	assert_int_equal(announce(f, older, false, 1000), -ESTALE);
	newer = new_tx(&f->sender, f->sender.pk, f->receiver.pk, f->cipher, SESSION + 1,
		       DD_DGRAM_DEFAULT);
	assert_int_equal(announce(f, newer, false, 1), DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(round_trip(f->rx, newer, 2, DD_DGRAM_DEFAULT), 0);
	dd_crypto_tx_free(older);
	dd_crypto_tx_free(newer);
}

static void
test_crypto_floor_refuses_first_session_datagrams_up_to_it(void **state)
{
	struct fix *f = fixture(state);

	/* A receiver restarted after authenticating up to seq 5000 of the session:
	 * any datagram up to that one, even inside the window, is a replay. */
	dd_crypto_rx_set_floor(f->rx, SESSION, 5000);
	assert_int_equal(announce(f, f->tx, false, 5001), DD_ANNOUNCE_NEW_SESSION);
	for (uint64_t seq = 4990; seq <= 5000; seq++)
		assert_int_equal(round_trip(f->rx, f->tx, seq, DD_DGRAM_DEFAULT), -EALREADY);
	assert_int_equal(round_trip(f->rx, f->tx, 5003, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(round_trip(f->rx, f->tx, 5002, DD_DGRAM_DEFAULT), 0);
}

static void
test_crypto_floor_zero_refuses_seq_zero(void **state)
{
	struct fix *f = fixture(state);

	/* "Up to seq_floor" includes seq_floor itself, also when it is 0. */
	dd_crypto_rx_set_floor(f->rx, SESSION, 0);
	assert_int_equal(announce(f, f->tx, false, 0), -EALREADY);
	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(round_trip(f->rx, f->tx, 0, DD_DGRAM_DEFAULT), -EALREADY);
	assert_int_equal(round_trip(f->rx, f->tx, 2, DD_DGRAM_DEFAULT), 0);
}

/* ---------------------------------------------------------- sealed datagrams */

static void
test_crypto_sealed_round_trip(void **state)
{
	struct fix *f = fixture(state);
	static const uint16_t sizes[] = { DD_DGRAM_MIN, DD_DGRAM_DEFAULT, 9024, DD_DGRAM_MAX };

	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	for (uint64_t seq = 2; seq < 50; seq++)
		assert_int_equal(round_trip(f->rx, f->tx, seq, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(dd_crypto_rx_top_seq(f->rx), 49);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct dd_crypto_tx *tx = new_tx(&f->sender, f->sender.pk, f->receiver.pk,
						 f->cipher, (uint32_t)(SESSION + 1 + i), sizes[i]);

		assert_int_equal(announce(f, tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
		assert_int_equal(round_trip(f->rx, tx, 2, sizes[i]), 0);
		assert_int_equal(round_trip(f->rx, tx, 3, sizes[i]), 0);
		dd_crypto_tx_free(tx);
	}
}

static void
test_crypto_seal_encrypts_in_place(void **state)
{
	struct fix *f = fixture(state);
	uint8_t buf[DD_DGRAM_DEFAULT], clear[DD_DGRAM_DEFAULT], *plain;
	size_t plain_len;
	struct dd_hdr h;

	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	fill_plain(clear, sizeof(clear), 7);
	memcpy(buf, clear, sizeof(buf));
	dd_crypto_tx_seal(f->tx, 7, buf, sizeof(buf));
	/* Header written in clear, plaintext replaced by ciphertext of the same size. */
	assert_int_equal(dd_wire_parse_header(&h, buf, sizeof(buf)), 0);
	assert_int_equal(h.type, DD_TYPE_SEALED);
	assert_int_equal(h.session, SESSION);
	assert_int_equal(h.epoch, 0);
	assert_true(h.seq == 7);
	assert_memory_not_equal(buf + DD_HDR_LEN, clear + DD_HDR_LEN, 64);
	assert_memory_not_equal(buf + sizeof(buf) - 64 - DD_TAG_LEN,
				clear + sizeof(clear) - 64 - DD_TAG_LEN, 64);
	/* Decrypted where it lies. */
	assert_int_equal(dd_crypto_rx_open(f->rx, &h, buf, sizeof(buf), &plain, &plain_len), 0);
	assert_ptr_equal(plain, buf + DD_HDR_LEN);
	assert_int_equal(plain_len, PLAIN_LEN(sizeof(buf)));
	assert_memory_equal(plain, clear + DD_HDR_LEN, plain_len);
}

static void
test_crypto_same_plaintext_different_seq_gives_different_ciphertext(void **state)
{
	struct fix *f = fixture(state);
	uint8_t a[DD_DGRAM_MIN], b[DD_DGRAM_MIN];

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	dd_crypto_tx_seal(f->tx, 1, a, sizeof(a));
	dd_crypto_tx_seal(f->tx, 2, b, sizeof(b));
	assert_memory_not_equal(a + DD_HDR_LEN, b + DD_HDR_LEN, sizeof(a) - DD_HDR_LEN);
}

/* Expected verdict for a flip of bit `bit` of a sealed datagram. */
static int
sealed_flip_verdict(size_t bit)
{
	size_t byte = bit / 8;

	if (byte < 2)
		return -EBADMSG; /* version, type: the header parser */
	if (byte < 8)
		return -ENOKEY; /* epoch or session nobody announced */
	return -EBADMSG; /* seq (the nonce), ciphertext, tag */
}

static void
test_crypto_open_rejects_every_bit_flip(void **state)
{
	struct fix *f = fixture(state);
	uint8_t *good, *buf = malloc(DD_DGRAM_DEFAULT), *plain;
	size_t plain_len;

	assert_non_null(buf);
	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	good = seal(f->tx, 1000, DD_DGRAM_DEFAULT);
	for (size_t bit = 0; bit < DD_DGRAM_DEFAULT * 8; bit++) {
		int rc;

		memcpy(buf, good, DD_DGRAM_DEFAULT);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = open_dgram(f->rx, buf, DD_DGRAM_DEFAULT, &plain, &plain_len);
		if (rc != sealed_flip_verdict(bit))
			fail_msg("datagram with bit %zu flipped: %d, want %d", bit, rc,
				 sealed_flip_verdict(bit));
		assert_null(plain);
		assert_int_equal(plain_len, 0);
	}
	/* Failures recorded nothing: the genuine datagram still opens, once. */
	assert_int_equal(dd_crypto_rx_top_seq(f->rx), 1);
	memcpy(buf, good, DD_DGRAM_DEFAULT);
	assert_int_equal(open_dgram(f->rx, buf, DD_DGRAM_DEFAULT, &plain, &plain_len), 0);
	memcpy(buf, good, DD_DGRAM_DEFAULT);
	assert_int_equal(open_dgram(f->rx, buf, DD_DGRAM_DEFAULT, &plain, &plain_len), -EALREADY);
	free(good);
	free(buf);
}

static void
test_crypto_sealed_replay_is_ealready(void **state)
{
	struct fix *f = fixture(state);
	uint8_t *good = NULL, *buf = malloc(DD_DGRAM_DEFAULT), *plain;
	size_t plain_len;

	assert_non_null(buf);
	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	good = seal(f->tx, 10, DD_DGRAM_DEFAULT);
	memcpy(buf, good, DD_DGRAM_DEFAULT);
	assert_int_equal(open_dgram(f->rx, buf, DD_DGRAM_DEFAULT, &plain, &plain_len), 0);
	memcpy(buf, good, DD_DGRAM_DEFAULT);
	assert_int_equal(open_dgram(f->rx, buf, DD_DGRAM_DEFAULT, &plain, &plain_len), -EALREADY);
	assert_null(plain);
	/* Out of order is fine once; later traffic does not make 10 new again. */
	assert_int_equal(round_trip(f->rx, f->tx, 12, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(round_trip(f->rx, f->tx, 11, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(round_trip(f->rx, f->tx, 11, DD_DGRAM_DEFAULT), -EALREADY);
	assert_int_equal(round_trip(f->rx, f->tx, 1, DD_DGRAM_DEFAULT), -EALREADY);
	memcpy(buf, good, DD_DGRAM_DEFAULT);
	assert_int_equal(open_dgram(f->rx, buf, DD_DGRAM_DEFAULT, &plain, &plain_len), -EALREADY);
	/* Far behind the window. */
	assert_int_equal(round_trip(f->rx, f->tx, 100000, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(round_trip(f->rx, f->tx, 13, DD_DGRAM_DEFAULT), -EALREADY);
	free(good);
	free(buf);
}

static void
test_crypto_datagram_without_announce_is_enokey(void **state)
{
	struct fix *f = fixture(state);
	struct dd_crypto_tx *other;

	assert_int_equal(round_trip(f->rx, f->tx, 2, DD_DGRAM_DEFAULT), -ENOKEY);
	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(round_trip(f->rx, f->tx, 2, DD_DGRAM_DEFAULT), 0);
	/* Another session number, never announced. */
	other = new_tx(&f->sender, f->sender.pk, f->receiver.pk, f->cipher, SESSION + 1,
		       DD_DGRAM_DEFAULT);
	assert_int_equal(round_trip(f->rx, other, 3, DD_DGRAM_DEFAULT), -ENOKEY);
	/* The next epoch switched to without its announce. */
	assert_int_equal(dd_crypto_tx_prepare_next(f->tx), 0);
	dd_crypto_tx_switch(f->tx);
	assert_int_equal(dd_crypto_tx_epoch(f->tx), 1);
	assert_int_equal(round_trip(f->rx, f->tx, 4, DD_DGRAM_DEFAULT), -ENOKEY);
	dd_crypto_tx_free(other);
}

static void
test_crypto_wrong_datagram_size_is_emsgsize(void **state)
{
	struct fix *f = fixture(state);
	uint8_t *buf, *plain;
	size_t plain_len;

	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(round_trip(f->rx, f->tx, 2, DD_DGRAM_DEFAULT - 64), -EMSGSIZE);
	assert_int_equal(round_trip(f->rx, f->tx, 3, DD_DGRAM_DEFAULT + 64), -EMSGSIZE);
	assert_int_equal(round_trip(f->rx, f->tx, 4, DD_DGRAM_MIN), -EMSGSIZE);
	/* A genuine datagram cut to another valid size. */
	buf = seal(f->tx, 5, DD_DGRAM_DEFAULT);
	assert_int_equal(open_dgram(f->rx, buf, DD_DGRAM_DEFAULT - 64, &plain, &plain_len),
			 -EMSGSIZE);
	assert_int_equal(open_dgram(f->rx, buf, DD_DGRAM_DEFAULT, &plain, &plain_len), 0);
	free(buf);
}

/* ------------------------------------------------------------------ rekey */

static void
test_crypto_rekey_next_epoch_and_overlap(void **state)
{
	struct fix *f = fixture(state);
	uint8_t *epoch0_late, *epoch1_late, *epoch0_stale, ann0_late[DD_ANNOUNCE_LEN], *plain;
	struct dd_announce a0, a1;
	size_t plain_len;
	struct dd_hdr h;

	f->now_ms += 1000;
	assert_int_equal(deliver_announce(f->rx, f->tx, false, 1, f->now_ms, &a0),
			 DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(round_trip(f->rx, f->tx, 2, DD_DGRAM_DEFAULT), 0);

	/* Next epoch announced beside the current one. */
	assert_false(dd_crypto_tx_has_next(f->tx));
	assert_int_equal(dd_crypto_tx_prepare_next(f->tx), 0);
	assert_true(dd_crypto_tx_has_next(f->tx));
	assert_int_equal(dd_crypto_tx_epoch(f->tx), 0);
	f->now_ms += 1000;
	assert_int_equal(deliver_announce(f->rx, f->tx, true, 3, f->now_ms, &a1),
			 DD_ANNOUNCE_NEW_EPOCH);
	assert_memory_not_equal(a0.ephemeral, a1.ephemeral, DD_KEY_LEN);
	assert_int_equal(announce(f, f->tx, true, 4), DD_ANNOUNCE_KNOWN);
	assert_int_equal(announce(f, f->tx, false, 5), DD_ANNOUNCE_KNOWN);

	/* Sealed before the switch, delivered after it. */
	epoch0_late = seal(f->tx, 6, DD_DGRAM_DEFAULT);
	epoch0_stale = seal(f->tx, 7, DD_DGRAM_DEFAULT);
	dd_crypto_tx_announce(f->tx, false, 8, ann0_late);
	assert_int_equal(round_trip(f->rx, f->tx, 9, DD_DGRAM_DEFAULT), 0);

	dd_crypto_tx_switch(f->tx);
	assert_false(dd_crypto_tx_has_next(f->tx));
	assert_int_equal(dd_crypto_tx_epoch(f->tx), 1);
	assert_int_equal(round_trip(f->rx, f->tx, 10, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(open_dgram(f->rx, epoch0_late, DD_DGRAM_DEFAULT, &plain, &plain_len), 0);
	assert_int_equal(announce(f, f->tx, false, 11), DD_ANNOUNCE_KNOWN);
	epoch1_late = seal(f->tx, 12, DD_DGRAM_DEFAULT);

	/* Second rekey: epochs 1 and 2 are kept, epoch 0 is dropped. */
	assert_int_equal(dd_crypto_tx_prepare_next(f->tx), 0);
	assert_int_equal(announce(f, f->tx, true, 13), DD_ANNOUNCE_NEW_EPOCH);
	dd_crypto_tx_switch(f->tx);
	assert_int_equal(dd_crypto_tx_epoch(f->tx), 2);
	assert_int_equal(round_trip(f->rx, f->tx, 14, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(open_dgram(f->rx, epoch1_late, DD_DGRAM_DEFAULT, &plain, &plain_len), 0);
	assert_int_equal(open_dgram(f->rx, epoch0_stale, DD_DGRAM_DEFAULT, &plain, &plain_len),
			 -ENOKEY);
	/* An epoch-0 announce never seen before cannot bring epoch 0 back. */
	assert_int_equal(dd_wire_parse_header(&h, ann0_late, sizeof(ann0_late)), 0);
	assert_int_equal(h.epoch, 0);
	assert_int_equal(dd_crypto_rx_announce(f->rx, &h, ann0_late, sizeof(ann0_late),
					       f->now_ms += 1000, &a0), -ESTALE);
	assert_int_equal(dd_crypto_rx_session(f->rx), SESSION);
	free(epoch0_late);
	free(epoch0_stale);
	free(epoch1_late);
}

static void
test_crypto_prepare_next_is_idempotent_and_switch_without_next_is_noop(void **state)
{
	struct fix *f = fixture(state);

	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	dd_crypto_tx_switch(f->tx);
	assert_int_equal(dd_crypto_tx_epoch(f->tx), 0);
	assert_int_equal(round_trip(f->rx, f->tx, 2, DD_DGRAM_DEFAULT), 0);
	/* Announcing "next" when none is prepared announces the current epoch. */
	assert_int_equal(announce(f, f->tx, true, 3), DD_ANNOUNCE_KNOWN);
	assert_int_equal(dd_crypto_tx_prepare_next(f->tx), 0);
	assert_int_equal(announce(f, f->tx, true, 4), DD_ANNOUNCE_NEW_EPOCH);
	assert_int_equal(dd_crypto_tx_prepare_next(f->tx), 0); /* keeps the prepared key */
	assert_int_equal(announce(f, f->tx, true, 5), DD_ANNOUNCE_KNOWN);
	dd_crypto_tx_switch(f->tx);
	assert_int_equal(round_trip(f->rx, f->tx, 6, DD_DGRAM_DEFAULT), 0);
}

/* ------------------------------------------------------------- rate limit */

static void
test_crypto_announce_rate_limit_busy_then_recovers(void **state)
{
	struct fix *f = fixture(state);
	struct dd_crypto_tx *tx[8];
	const uint64_t t0 = 5000000;

	/* Each new session needs public-key work. */
	for (size_t i = 0; i < 8; i++)
		tx[i] = new_tx(&f->sender, f->sender.pk, f->receiver.pk, f->cipher,
			       (uint32_t)(SESSION + i), DD_DGRAM_DEFAULT);
	dd_crypto_rx_set_announce_rate(f->rx, 3);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(deliver_announce(f->rx, tx[i], false, 1, t0, NULL),
				 DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(deliver_announce(f->rx, tx[3], false, 1, t0, NULL), -EBUSY);
	assert_int_equal(deliver_announce(f->rx, tx[3], false, 1, t0 + 100, NULL), -EBUSY);
	assert_int_equal(dd_crypto_rx_session(f->rx), SESSION + 2);
	/* Repeats of the announce in force need no work and pass meanwhile. */
	assert_int_equal(deliver_announce(f->rx, tx[2], false, 2, t0 + 100, NULL),
			 DD_ANNOUNCE_KNOWN);
	/* One token per 333 ms: refused just before, accepted from then on. */
	assert_int_equal(deliver_announce(f->rx, tx[3], false, 1, t0 + 330, NULL), -EBUSY);
	assert_int_equal(deliver_announce(f->rx, tx[3], false, 1, t0 + 340, NULL),
			 DD_ANNOUNCE_NEW_SESSION);
	/* After a long quiet spell the burst is still only 3. */
	for (size_t i = 4; i < 7; i++)
		assert_int_equal(deliver_announce(f->rx, tx[i], false, 1, t0 + 3600000, NULL),
				 DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(deliver_announce(f->rx, tx[7], false, 1, t0 + 3600000, NULL), -EBUSY);
	/* A clock going backwards gives no tokens. */
	assert_int_equal(deliver_announce(f->rx, tx[7], false, 1, t0, NULL), -EBUSY);
	assert_int_equal(deliver_announce(f->rx, tx[7], false, 1, t0 + 3601000, NULL),
			 DD_ANNOUNCE_NEW_SESSION);
	for (size_t i = 0; i < 8; i++)
		dd_crypto_tx_free(tx[i]);
}

static void
test_crypto_announce_rate_zero_means_one_per_second(void **state)
{
	struct fix *f = fixture(state);
	struct dd_crypto_tx *tx2;

	tx2 = new_tx(&f->sender, f->sender.pk, f->receiver.pk, f->cipher, SESSION + 1,
		     DD_DGRAM_DEFAULT);
	dd_crypto_rx_set_announce_rate(f->rx, 0);
	assert_int_equal(deliver_announce(f->rx, f->tx, false, 1, 10000, NULL),
			 DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(deliver_announce(f->rx, tx2, false, 1, 10000, NULL), -EBUSY);
	assert_int_equal(deliver_announce(f->rx, tx2, false, 1, 11000, NULL),
			 DD_ANNOUNCE_NEW_SESSION);
	dd_crypto_tx_free(tx2);
}

/* Flip every bit of the announce good, one at a time, with the receiver's
 * clock standing still at now_ms: each must get announce_flip_verdict (or
 * -ESTALE for a session flipped below the receiver's current one), never
 * -EBUSY, and must change nothing. */
static void
flip_every_bit_without_token(struct fix *f, const uint8_t *good, uint64_t now_ms)
{
	uint8_t buf[DD_ANNOUNCE_LEN];
	bool had_session = dd_crypto_rx_has_session(f->rx);
	uint32_t session = dd_crypto_rx_session(f->rx);
	uint64_t top = dd_crypto_rx_top_seq(f->rx);
	struct dd_announce a;
	struct dd_hdr h;

	for (size_t bit = 0; bit < DD_ANNOUNCE_LEN * 8; bit++) {
		int rc, want = announce_flip_verdict(bit);

		memcpy(buf, good, sizeof(buf));
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = dd_wire_parse_header(&h, buf, sizeof(buf));
		if (rc == 0) {
			if (had_session && h.session < session)
				want = -ESTALE;
			rc = dd_crypto_rx_announce(f->rx, &h, buf, sizeof(buf), now_ms, &a);
		}
		if (rc != want)
			fail_msg("announce with bit %zu flipped: %d, want %d", bit, rc, want);
		assert_int_equal(dd_crypto_rx_has_session(f->rx), had_session);
		assert_int_equal(dd_crypto_rx_session(f->rx), session);
		assert_true(dd_crypto_rx_top_seq(f->rx) == top);
	}
}

/*
 * The static tag is checked before the rate limit: forged announces (the
 * trusted sender's public key, made without its secret) and genuine ones
 * with any bit flipped take no token. With announce_rate = 1 and a clock
 * that stands still, a genuine new session and then a genuine new epoch get
 * in at once after thousands of them; a second genuine new session, which
 * really needs a token, is still refused.
 */
static void
test_crypto_forged_announces_take_no_rate_limit_token(void **state)
{
	struct fix *f = fixture(state);
	struct keypair forger;
	struct dd_crypto_tx *forged_session, *forged_epoch, *later;
	uint8_t good[DD_ANNOUNCE_LEN];
	const uint64_t t0 = 5000000, t1 = t0 + 1000; /* one token each */

	make_keypair(&forger);
	forged_session = new_tx(&forger, f->sender.pk, f->receiver.pk, f->cipher, SESSION + 1,
				DD_DGRAM_DEFAULT);
	forged_epoch = new_tx(&forger, f->sender.pk, f->receiver.pk, f->cipher, SESSION,
			      DD_DGRAM_DEFAULT);
	later = new_tx(&f->sender, f->sender.pk, f->receiver.pk, f->cipher, SESSION + 2,
		       DD_DGRAM_DEFAULT);
	assert_int_equal(dd_crypto_tx_prepare_next(forged_epoch), 0);
	dd_crypto_rx_set_announce_rate(f->rx, 1);

	/* New session. */
	for (uint64_t i = 0; i < 3000; i++)
		assert_int_equal(deliver_announce(f->rx, forged_session, false, 100 + i, t0, NULL),
				 -EBADMSG);
	dd_crypto_tx_announce(f->tx, false, 1, good);
	flip_every_bit_without_token(f, good, t0);
	assert_false(dd_crypto_rx_has_session(f->rx));
	assert_int_equal(deliver_announce(f->rx, f->tx, false, 1, t0, NULL),
			 DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(deliver_announce(f->rx, later, false, 1, t0, NULL), -EBUSY);
	assert_int_equal(round_trip(f->rx, f->tx, 2, DD_DGRAM_DEFAULT), 0);

	/* New epoch of the running session, forgeries of every kind meanwhile. */
	assert_int_equal(dd_crypto_tx_prepare_next(f->tx), 0);
	for (uint64_t i = 0; i < 1000; i++) {
		assert_int_equal(deliver_announce(f->rx, forged_epoch, true, 5000 + 3 * i, t1, NULL),
				 -EBADMSG); /* epoch 1 */
		assert_int_equal(deliver_announce(f->rx, forged_epoch, false, 5001 + 3 * i, t1,
						  NULL), -EBADMSG); /* epoch 0, held */
		assert_int_equal(deliver_announce(f->rx, forged_session, false, 5002 + 3 * i, t1,
						  NULL), -EBADMSG);
	}
	dd_crypto_tx_announce(f->tx, true, 3, good);
	flip_every_bit_without_token(f, good, t1);
	assert_int_equal(deliver_announce(f->rx, f->tx, true, 3, t1, NULL), DD_ANNOUNCE_NEW_EPOCH);
	assert_int_equal(deliver_announce(f->rx, later, false, 2, t1, NULL), -EBUSY);
	dd_crypto_tx_switch(f->tx);
	assert_int_equal(round_trip(f->rx, f->tx, 4, DD_DGRAM_DEFAULT), 0);
	assert_int_equal(dd_crypto_rx_session(f->rx), SESSION);
	dd_crypto_tx_free(forged_session);
	dd_crypto_tx_free(forged_epoch);
	dd_crypto_tx_free(later);
}

/* --------------------------------------------------------------- arguments */

static void
test_crypto_tx_new_rejects_bad_arguments(void **state)
{
	static int sentinel;
	struct keypair s, r;
	struct dd_crypto_tx *tx = (struct dd_crypto_tx *)&sentinel; /* must be reset to NULL */
	uint8_t zero[DD_KEY_LEN] = { 0 };

	make_keypair(&s);
	make_keypair(&r);
	assert_int_equal(dd_crypto_tx_new(&tx, s.sk, s.pk, r.pk, 0, 1, DD_DGRAM_DEFAULT, 0),
			 -EINVAL);
	assert_null(tx);
	assert_int_equal(dd_crypto_tx_new(&tx, s.sk, s.pk, r.pk, 3, 1, DD_DGRAM_DEFAULT, 0),
			 -EINVAL);
	assert_int_equal(dd_crypto_tx_new(&tx, s.sk, s.pk, r.pk, DD_CIPHER_CHACHA20POLY1305, 1,
					  1500, 0), -EINVAL);
	assert_int_equal(dd_crypto_tx_new(&tx, s.sk, s.pk, r.pk, DD_CIPHER_CHACHA20POLY1305, 1,
					  DD_DGRAM_MIN - 64, 0), -EINVAL);
	/* A low-order peer key would give an all-zero shared secret. */
	assert_int_equal(dd_crypto_tx_new(&tx, s.sk, s.pk, zero, DD_CIPHER_CHACHA20POLY1305, 1,
					  DD_DGRAM_DEFAULT, 0), -EINVAL);
	assert_null(tx);
	if (!dd_crypto_aes_available())
		assert_int_equal(dd_crypto_tx_new(&tx, s.sk, s.pk, r.pk, DD_CIPHER_AES256GCM, 1,
						  DD_DGRAM_DEFAULT, 0), -EINVAL);
	dd_crypto_tx_free(NULL);
}

static void
test_crypto_rx_add_peer_limits(void **state)
{
	struct keypair r, p;
	struct dd_crypto_rx *rx;
	uint8_t zero[DD_KEY_LEN] = { 0 };

	make_keypair(&r);
	rx = new_rx(r.sk, r.pk, NULL);
	assert_int_equal(dd_crypto_rx_add_peer(rx, zero), -EINVAL);
	for (int i = 0; i < 8; i++) {
		make_keypair(&p);
		assert_int_equal(dd_crypto_rx_add_peer(rx, p.pk), 0);
	}
	make_keypair(&p);
	assert_int_equal(dd_crypto_rx_add_peer(rx, p.pk), -ENOSPC);
	dd_crypto_rx_free(rx);
	dd_crypto_rx_free(NULL);
}

static void
test_crypto_cipher_names(void **state)
{
	assert_string_equal(dd_crypto_cipher_name(DD_CIPHER_AES256GCM), "aes256gcm");
	assert_string_equal(dd_crypto_cipher_name(DD_CIPHER_CHACHA20POLY1305),
			    "chacha20poly1305");
	assert_string_equal(dd_crypto_cipher_name(0), "unknown");
	assert_string_equal(dd_crypto_cipher_name(255), "unknown");
}

/* ---- the OpenSSL seal against an independent libsodium reference ---- */

/* The data key of tx's current epoch, derived as the receiver does
 * (docs/PROTOCOL.md), from the announce and the receiver's secret only. */
static void
reference_data_key(const struct fix *f, uint8_t key[32])
{
	uint8_t ann[DD_ANNOUNCE_LEN], ikm[64], okm[64], tail[6];
	crypto_generichash_state st;
	struct dd_announce a;
	struct dd_hdr h;

	dd_crypto_tx_announce(f->tx, false, 1, ann);
	assert_int_equal(dd_wire_parse_header(&h, ann, sizeof(ann)), 0);
	assert_int_equal(dd_wire_parse_announce(&a, ann + DD_HDR_LEN, DD_ANNOUNCE_BODY_LEN), 0);
	assert_int_equal(crypto_scalarmult(ikm, f->receiver.sk, a.ephemeral), 0);
	assert_int_equal(crypto_scalarmult(ikm + 32, f->receiver.sk, f->sender.pk), 0);
	dd_store_be32(tail, h.session);
	dd_store_be16(tail + 4, h.epoch);
	crypto_generichash_init(&st, ikm, sizeof(ikm), sizeof(okm));
	crypto_generichash_update(&st, (const uint8_t *)"diode-v1 keys", 13);
	crypto_generichash_update(&st, ann + DD_HDR_LEN, DD_ANNOUNCE_BODY_LEN);
	crypto_generichash_update(&st, tail, sizeof(tail));
	crypto_generichash_final(&st, okm, sizeof(okm));
	memcpy(key, okm + 32, 32);
}

/* An announce's static tag computed as docs/PROTOCOL.md §3.2 says, on the
 * receiver's side: key = BLAKE2b-256(key = DH(R, S), "diode-v1 static tag" ||
 * S || R), tag = BLAKE2b-128(key, datagram bytes 0..143). */
static void
reference_static_tag(const uint8_t *receiver_sk, const uint8_t *receiver_pk,
		     const uint8_t *sender_pk, const uint8_t *ann, uint8_t tag[16])
{
	uint8_t dh[32], key[32];
	crypto_generichash_state st;

	assert_int_equal(crypto_scalarmult(dh, receiver_sk, sender_pk), 0);
	crypto_generichash_init(&st, dh, sizeof(dh), sizeof(key));
	crypto_generichash_update(&st, (const uint8_t *)"diode-v1 static tag", 19);
	crypto_generichash_update(&st, sender_pk, 32);
	crypto_generichash_update(&st, receiver_pk, 32);
	crypto_generichash_final(&st, key, sizeof(key));
	assert_int_equal(crypto_generichash(tag, 16, ann, 144, key, sizeof(key)), 0);
}

/* The worked example of docs/PROTOCOL.md §10 (S and R from seeds 32 x 0x01
 * and 32 x 0x02, cipher 2, dgram_size 1152, session 1700000000, seq 1). */
static const uint8_t worked_example_announce[DD_ANNOUNCE_LEN] = {
	0x01, 0x01, 0x00, 0x00, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x02, 0x00, 0x00, 0x00, 0x04, 0x80, 0x00, 0x00, 0x5d, 0xfe, 0xdd, 0x3b, 0x6b, 0xd4, 0x7f, 0x6f,
	0xa2, 0x8e, 0xe1, 0x5d, 0x96, 0x9d, 0x5b, 0xb0, 0xea, 0x53, 0x77, 0x4d, 0x48, 0x8b, 0xda, 0xf9,
	0xdf, 0x1c, 0x6e, 0x01, 0x24, 0xb3, 0xef, 0x22, 0x1b, 0x1b, 0x58, 0xdd, 0x50, 0xea, 0x14, 0xb6,
	0x0d, 0xa1, 0x7b, 0x79, 0x0c, 0xd0, 0x27, 0x54, 0xd9, 0x70, 0xc9, 0xba, 0xb8, 0x64, 0xeb, 0xb3,
	0xc0, 0xf3, 0x01, 0x6f, 0xe5, 0x1d, 0x3f, 0x57, 0x60, 0x34, 0x6e, 0x7c, 0x91, 0x1a, 0x5f, 0x6b,
	0xa1, 0x54, 0x12, 0x91, 0x74, 0xca, 0xfe, 0x75, 0xb2, 0x94, 0xac, 0x3b, 0xbd, 0x55, 0x49, 0x63,
	0x2f, 0x48, 0xce, 0xc6, 0x26, 0x6f, 0x84, 0x10, 0x00, 0x00, 0x00, 0x00, 0x65, 0x53, 0xf1, 0x00,
	0x72, 0x0a, 0xca, 0x4d, 0x37, 0xba, 0xc5, 0x94, 0xf1, 0xd2, 0x05, 0x4a, 0x7c, 0xef, 0xab, 0xe0,
	0xc2, 0xd6, 0x24, 0x73, 0x14, 0xf2, 0x44, 0xb3, 0xfe, 0x3f, 0x17, 0x33, 0xb7, 0x4d, 0x76, 0x3c,
};

/* The sender's static tags (current and next epoch) equal the reference, and
 * the worked example of PROTOCOL.md is accepted and matches it too. */
static void
test_crypto_static_tag_matches_reference_and_worked_example(void **state)
{
	struct fix *f = fixture(state);
	uint8_t ann[DD_ANNOUNCE_LEN], buf[DD_ANNOUNCE_LEN], tag[16], seed[32];
	struct keypair s, r;
	struct dd_crypto_rx *rx;
	struct dd_announce a;
	struct dd_hdr h;

	dd_crypto_tx_announce(f->tx, false, 7, ann);
	reference_static_tag(f->receiver.sk, f->receiver.pk, f->sender.pk, ann, tag);
	assert_memory_equal(ann + 144, tag, 16);
	assert_int_equal(dd_crypto_tx_prepare_next(f->tx), 0);
	dd_crypto_tx_announce(f->tx, true, 8, ann);
	reference_static_tag(f->receiver.sk, f->receiver.pk, f->sender.pk, ann, tag);
	assert_memory_equal(ann + 144, tag, 16);

	memset(seed, 0x01, sizeof(seed));
	crypto_box_seed_keypair(s.pk, s.sk, seed);
	memset(seed, 0x02, sizeof(seed));
	crypto_box_seed_keypair(r.pk, r.sk, seed);
	reference_static_tag(r.sk, r.pk, s.pk, worked_example_announce, tag);
	assert_memory_equal(worked_example_announce + 144, tag, 16);
	/* A flipped static tag first (no token spent), then the genuine one. */
	rx = new_rx(r.sk, r.pk, s.pk);
	dd_crypto_rx_set_announce_rate(rx, 1);
	memcpy(buf, worked_example_announce, sizeof(buf));
	buf[DD_ANNOUNCE_LEN - 1] ^= 0x80;
	assert_int_equal(dd_wire_parse_header(&h, buf, sizeof(buf)), 0);
	assert_int_equal(dd_crypto_rx_announce(rx, &h, buf, sizeof(buf), 1000, &a), -EBADMSG);
	assert_int_equal(dd_crypto_rx_announce(rx, &h, worked_example_announce,
					       sizeof(worked_example_announce), 1000, &a),
			 DD_ANNOUNCE_NEW_SESSION);
	assert_int_equal(dd_crypto_rx_session(rx), 1700000000);
	assert_int_equal(dd_crypto_rx_dgram_size(rx), 1152);
	dd_crypto_rx_free(rx);
}

/* Seal plain (len - overhead bytes) into out as the libsodium-only sealer did. */
static void
reference_seal(const struct fix *f, const uint8_t key[32], uint64_t seq, const uint8_t *plain,
	       uint8_t *out, size_t len)
{
	struct dd_hdr h = {
		.type = DD_TYPE_SEALED, .epoch = dd_crypto_tx_epoch(f->tx), .session = SESSION,
		.seq = seq,
	};
	uint8_t nonce[12] = { 0 };
	size_t n = PLAIN_LEN(len);

	dd_wire_put_header(out, &h);
	dd_store_be64(nonce + 4, seq);
	if (f->cipher == DD_CIPHER_AES256GCM)
		crypto_aead_aes256gcm_encrypt_detached(out + DD_HDR_LEN, out + DD_HDR_LEN + n, NULL,
						       plain, n, out, DD_HDR_LEN, NULL, nonce, key);
	else
		crypto_aead_chacha20poly1305_ietf_encrypt_detached(out + DD_HDR_LEN,
								   out + DD_HDR_LEN + n, NULL,
								   plain, n, out, DD_HDR_LEN,
								   NULL, nonce, key);
}

/* Open a datagram with the libsodium reference; 0 if authentic. */
static int
reference_open(const struct fix *f, const uint8_t key[32], const uint8_t *dgram, size_t len,
	       uint8_t *plain)
{
	struct dd_hdr h;
	uint8_t nonce[12] = { 0 };
	size_t n = PLAIN_LEN(len);

	assert_int_equal(dd_wire_parse_header(&h, dgram, len), 0);
	dd_store_be64(nonce + 4, h.seq);
	if (f->cipher == DD_CIPHER_AES256GCM)
		return crypto_aead_aes256gcm_decrypt_detached(plain, NULL, dgram + DD_HDR_LEN, n,
							      dgram + DD_HDR_LEN + n, dgram,
							      DD_HDR_LEN, nonce, key);
	return crypto_aead_chacha20poly1305_ietf_decrypt_detached(plain, NULL, dgram + DD_HDR_LEN,
								  n, dgram + DD_HDR_LEN + n,
								  dgram, DD_HDR_LEN, nonce, key);
}

/* Seal with tx (OpenSSL, or libsodium only when evp is false) and compare
 * with the reference, byte for byte; then both ways of opening. */
static void
check_seal_against_reference(struct fix *f, const uint8_t key[32], uint64_t seq, size_t len,
			     bool evp)
{
	uint8_t *mine = malloc(len), *ref = malloc(len), *plain = malloc(len), *back = malloc(len);
	uint8_t *opened;
	size_t opened_len;
	struct dd_hdr h;

	assert_non_null(mine);
	assert_non_null(ref);
	assert_non_null(plain);
	assert_non_null(back);
	randombytes_buf(plain, PLAIN_LEN(len));
	memcpy(mine + DD_HDR_LEN, plain, PLAIN_LEN(len));
	dd_crypto_tx_set_evp(f->tx, evp);
	dd_crypto_tx_seal(f->tx, seq, mine, len);
	dd_crypto_tx_set_evp(f->tx, true);
	reference_seal(f, key, seq, plain, ref, len);
	assert_memory_equal(mine, ref, len);
	assert_int_equal(reference_open(f, key, mine, len, back), 0);
	assert_memory_equal(back, plain, PLAIN_LEN(len));
	/* The reference's datagram opens on the receiver (OpenSSL there). */
	assert_int_equal(dd_wire_parse_header(&h, ref, len), 0);
	if (len == DD_DGRAM_DEFAULT) { /* the session's size */
		assert_int_equal(dd_crypto_rx_open(f->rx, &h, ref, len, &opened, &opened_len), 0);
		assert_int_equal(opened_len, PLAIN_LEN(len));
		assert_memory_equal(opened, plain, PLAIN_LEN(len));
	}
	/* A flipped tag bit fails the reference. */
	mine[len - 1] ^= 1;
	assert_int_not_equal(reference_open(f, key, mine, len, back), 0);
	free(mine);
	free(ref);
	free(plain);
	free(back);
}

static void
test_crypto_seal_matches_libsodium_reference_across_rekeys(void **state)
{
	static const uint64_t seqs[] = { 2, 3, 255, 256, 65537, 0x100000001ull,
					 0x0123456789abcdefull };
	struct fix *f = fixture(state);
	uint8_t key[32];

	assert_int_equal(announce(f, f->tx, false, 1), DD_ANNOUNCE_NEW_SESSION);
	for (uint64_t epoch = 0; epoch < 3; epoch++) {
		/* Increasing numbers, so the receiver's replay window lets all in. */
		uint64_t base = epoch << 58;

		assert_int_equal(dd_crypto_tx_epoch(f->tx), epoch);
		reference_data_key(f, key);
		for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
			check_seal_against_reference(f, key, base + seqs[i], DD_DGRAM_DEFAULT, true);
			check_seal_against_reference(f, key, base + seqs[i] + 1, DD_DGRAM_MIN, true);
			check_seal_against_reference(f, key, base + seqs[i] + 2, DD_DGRAM_DEFAULT,
						     false);
		}
		assert_int_equal(dd_crypto_tx_prepare_next(f->tx), 0);
		assert_int_equal(announce(f, f->tx, true, base + (1ull << 57)),
				 DD_ANNOUNCE_NEW_EPOCH);
		dd_crypto_tx_switch(f->tx);
	}
	reference_data_key(f, key);
	check_seal_against_reference(f, key, UINT64_MAX - 3, DD_DGRAM_DEFAULT, true);
	check_seal_against_reference(f, key, UINT64_MAX - 2, DD_DGRAM_DEFAULT, false);
	sodium_memzero(key, sizeof(key));
}

/* Several threads seal parts of one batch at once (as tx/sender.c's workers
 * do), each with its own OpenSSL context; rekeys happen between batches. */
#define THREAD_SEALERS 4
#define PER_SEALER 64

struct sealer_job {
	struct dd_crypto_tx *tx;
	uint8_t *batch; /* THREAD_SEALERS * PER_SEALER datagrams of DD_DGRAM_DEFAULT */
	uint64_t first_seq;
	unsigned part;
};

static void *
sealer_thread(void *arg)
{
	const struct sealer_job *j = arg;

	for (unsigned i = j->part * PER_SEALER; i < (j->part + 1) * PER_SEALER; i++)
		dd_crypto_tx_seal(j->tx, j->first_seq + i, j->batch + (size_t)i * DD_DGRAM_DEFAULT,
				  DD_DGRAM_DEFAULT);
	return NULL;
}

static void
test_crypto_seal_from_several_threads_across_rekeys(void **state)
{
	const size_t count = THREAD_SEALERS * PER_SEALER;
	struct fix *f = fixture(state);
	uint8_t *batch = malloc(count * DD_DGRAM_DEFAULT), *plain = malloc(count * DD_DGRAM_DEFAULT);
	uint8_t *ref = malloc(DD_DGRAM_DEFAULT), key[32];
	struct sealer_job jobs[THREAD_SEALERS];
	pthread_t threads[THREAD_SEALERS];
	uint64_t seq = 2;

	assert_non_null(batch);
	assert_non_null(plain);
	assert_non_null(ref);
	for (int epoch = 0; epoch < 3; epoch++) {
		reference_data_key(f, key);
		randombytes_buf(plain, count * DD_DGRAM_DEFAULT);
		memcpy(batch, plain, count * DD_DGRAM_DEFAULT);
		for (unsigned t = 0; t < THREAD_SEALERS; t++) {
			jobs[t] = (struct sealer_job){ f->tx, batch, seq, t };
			if (t > 0)
				assert_int_equal(pthread_create(&threads[t], NULL, sealer_thread,
								&jobs[t]), 0);
		}
		sealer_thread(&jobs[0]); /* the loop thread seals its share too */
		for (unsigned t = 1; t < THREAD_SEALERS; t++)
			assert_int_equal(pthread_join(threads[t], NULL), 0);
		for (size_t i = 0; i < count; i++) {
			reference_seal(f, key, seq + i, plain + i * DD_DGRAM_DEFAULT + DD_HDR_LEN,
				       ref, DD_DGRAM_DEFAULT);
			assert_memory_equal(batch + i * DD_DGRAM_DEFAULT, ref, DD_DGRAM_DEFAULT);
		}
		seq += count;
		assert_int_equal(dd_crypto_tx_prepare_next(f->tx), 0);
		dd_crypto_tx_switch(f->tx);
	}
	sodium_memzero(key, sizeof(key));
	free(batch);
	free(plain);
	free(ref);
}

static int
group_setup(void **state)
{
	return dd_crypto_init();
}

#define BOTH(fn) \
	cmocka_unit_test_setup_teardown(fn, setup_chacha, teardown), \
	cmocka_unit_test_setup_teardown(fn, setup_aes, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_crypto_announce_from_trusted_sender_starts_session),
		BOTH(test_crypto_announce_replay_is_ealready),
		cmocka_unit_test_setup_teardown(test_crypto_announce_to_another_receiver_key_is_exdev,
						setup_chacha, teardown),
		cmocka_unit_test_setup_teardown(test_crypto_receiver_with_other_secret_rejects_announce,
						setup_chacha, teardown),
		cmocka_unit_test_setup_teardown(test_crypto_announce_from_unknown_sender_is_keyrejected,
						setup_chacha, teardown),
		BOTH(test_crypto_announce_forging_trusted_sender_key_is_badmsg),
		cmocka_unit_test_setup_teardown(test_crypto_trusts_several_sender_keys,
						setup_chacha, teardown),
		BOTH(test_crypto_announce_rejects_every_bit_flip),
		cmocka_unit_test_setup_teardown(test_crypto_announce_of_wrong_length_or_type_is_badmsg,
						setup_chacha, teardown),
		BOTH(test_crypto_older_session_after_newer_is_estale),
		BOTH(test_crypto_newer_session_replaces_older),
		BOTH(test_crypto_floor_refuses_seq_at_or_below_it),
		cmocka_unit_test_setup_teardown(test_crypto_floor_refuses_first_session_datagrams_up_to_it,
						setup_chacha, teardown),
		cmocka_unit_test_setup_teardown(test_crypto_floor_zero_refuses_seq_zero,
						setup_chacha, teardown),
		BOTH(test_crypto_sealed_round_trip),
		BOTH(test_crypto_seal_encrypts_in_place),
		BOTH(test_crypto_same_plaintext_different_seq_gives_different_ciphertext),
		BOTH(test_crypto_open_rejects_every_bit_flip),
		BOTH(test_crypto_sealed_replay_is_ealready),
		BOTH(test_crypto_datagram_without_announce_is_enokey),
		BOTH(test_crypto_wrong_datagram_size_is_emsgsize),
		BOTH(test_crypto_rekey_next_epoch_and_overlap),
		cmocka_unit_test_setup_teardown(
			test_crypto_prepare_next_is_idempotent_and_switch_without_next_is_noop,
			setup_chacha, teardown),
		cmocka_unit_test_setup_teardown(test_crypto_announce_rate_limit_busy_then_recovers,
						setup_chacha, teardown),
		cmocka_unit_test_setup_teardown(test_crypto_announce_rate_zero_means_one_per_second,
						setup_chacha, teardown),
		BOTH(test_crypto_forged_announces_take_no_rate_limit_token),
		cmocka_unit_test(test_crypto_tx_new_rejects_bad_arguments),
		cmocka_unit_test(test_crypto_rx_add_peer_limits),
		cmocka_unit_test(test_crypto_cipher_names),
		BOTH(test_crypto_seal_matches_libsodium_reference_across_rekeys),
		cmocka_unit_test_setup_teardown(test_crypto_static_tag_matches_reference_and_worked_example,
						setup_chacha, teardown),
		BOTH(test_crypto_seal_from_several_threads_across_rekeys),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
