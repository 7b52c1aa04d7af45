/* sealbench: ns per datagram of dd_crypto_tx_seal and dd_crypto_rx_open (OpenSSL; libsodium sealing and forged tags for comparison), best of many rounds. */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "wire.h"

#define SESSION 7
#define PER_ROUND 256 /* datagrams sealed, then opened, per timed round */

struct figures {
	double best, p10, median; /* ns per datagram */
};

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts ns[0..n): the best round and two quantiles. Best and p10 are the
 * figures to compare on a shared machine; the median shows the noise. */
static struct figures
summarize(double *ns, size_t n)
{
	qsort(ns, n, sizeof(ns[0]), cmp_double);
	return (struct figures){ ns[0], ns[n / 10], ns[n / 2] };
}

static void
print_figures(const char *what, struct figures f)
{
	printf("  %-16s %7.1f ns  (p10 %.1f, median %.1f)\n", what, f.best, f.p10, f.median);
}

/* Seal and open `rounds` rounds of PER_ROUND datagrams of dgram_size bytes
 * with a fresh session; 0, or -1 if a datagram failed to open. */
static int
bench_cipher(uint8_t cipher, size_t dgram_size, size_t rounds)
{
	uint8_t spk[DD_KEY_LEN], ssk[DD_KEY_LEN], rpk[DD_KEY_LEN], rsk[DD_KEY_LEN];
	uint8_t ann[DD_ANNOUNCE_LEN], *plain;
	struct dd_crypto_tx *tx = NULL;
	struct dd_crypto_rx *rx = NULL;
	struct dd_announce a;
	struct dd_hdr h, *hdrs = calloc(PER_ROUND, sizeof(*hdrs));
	uint8_t *bufs = malloc(PER_ROUND * dgram_size), *forged = malloc(PER_ROUND * dgram_size);
	double *seal_ns = calloc(rounds, sizeof(double)), *open_ns = calloc(rounds, sizeof(double));
	double *sodium_ns = calloc(rounds, sizeof(double)), *forged_ns = calloc(rounds, sizeof(double));
	size_t plain_len;
	uint64_t seq = 2;
	int rc = -1;

	if (hdrs == NULL || bufs == NULL || forged == NULL || seal_ns == NULL || open_ns == NULL ||
	    sodium_ns == NULL || forged_ns == NULL) {
		fprintf(stderr, "sealbench: out of memory\n");
		goto out;
	}
	crypto_box_keypair(spk, ssk);
	crypto_box_keypair(rpk, rsk);
	if (dd_crypto_tx_new(&tx, ssk, spk, rpk, cipher, SESSION, (uint16_t)dgram_size, 1) != 0 ||
	    dd_crypto_rx_new(&rx, rsk, rpk) != 0 || dd_crypto_rx_add_peer(rx, spk) != 0) {
		fprintf(stderr, "sealbench: cannot set up a %s session\n",
			dd_crypto_cipher_name(cipher));
		goto out;
	}
	dd_crypto_tx_announce(tx, false, 1, ann);
	if (dd_wire_parse_header(&h, ann, sizeof(ann)) != 0 ||
	    dd_crypto_rx_announce(rx, &h, ann, sizeof(ann), 1000, &a) != DD_ANNOUNCE_NEW_SESSION) {
		fprintf(stderr, "sealbench: the receiver refused the announce\n");
		goto out;
	}
	memset(bufs, 0xa5, PER_ROUND * dgram_size);
	for (size_t r = 0; r < rounds; r++) {
		double t0, t1, t2, t3;

		t0 = now_ns();
		for (size_t i = 0; i < PER_ROUND; i++)
			dd_crypto_tx_seal(tx, seq + i, bufs + i * dgram_size, dgram_size);
		t1 = now_ns();
		for (size_t i = 0; i < PER_ROUND; i++)
			(void)dd_wire_parse_header(&hdrs[i], bufs + i * dgram_size, dgram_size);
		/* The same datagrams with one tag bit flipped: what a flood of
		 * forgeries that get as far as the AEAD costs diode-rx. */
		memcpy(forged, bufs, PER_ROUND * dgram_size);
		for (size_t i = 0; i < PER_ROUND; i++)
			forged[(i + 1) * dgram_size - 1] ^= 1;
		t2 = now_ns();
		for (size_t i = 0; i < PER_ROUND; i++)
			if (dd_crypto_rx_open(rx, &hdrs[i], forged + i * dgram_size, dgram_size,
					      &plain, &plain_len) != -EBADMSG) {
				fprintf(stderr, "sealbench: a forged tag was not refused\n");
				goto out;
			}
		forged_ns[r] = (now_ns() - t2) / PER_ROUND;
		t2 = now_ns();
		for (size_t i = 0; i < PER_ROUND; i++)
			if (dd_crypto_rx_open(rx, &hdrs[i], bufs + i * dgram_size, dgram_size,
					      &plain, &plain_len) != 0) {
				fprintf(stderr, "sealbench: datagram %" PRIu64 " did not open\n",
					(uint64_t)(seq + i));
				goto out;
			}
		t3 = now_ns();
		seal_ns[r] = (t1 - t0) / PER_ROUND;
		open_ns[r] = (t3 - t2) / PER_ROUND;
		seq += PER_ROUND;
		/* The libsodium fallback, same bytes: for comparison only. */
		dd_crypto_tx_set_evp(tx, false);
		t0 = now_ns();
		for (size_t i = 0; i < PER_ROUND; i++)
			dd_crypto_tx_seal(tx, seq + i, bufs + i * dgram_size, dgram_size);
		sodium_ns[r] = (now_ns() - t0) / PER_ROUND;
		dd_crypto_tx_set_evp(tx, true);
		seq += PER_ROUND;
	}
	printf("%s, %zu B datagrams (%zu B payload), %zu rounds of %d:\n",
	       dd_crypto_cipher_name(cipher), dgram_size, dgram_size - DD_SEALED_OVERHEAD, rounds,
	       PER_ROUND);
	print_figures("seal (OpenSSL)", summarize(seal_ns, rounds));
	print_figures("open (OpenSSL)", summarize(open_ns, rounds));
	print_figures("forged (OpenSSL)", summarize(forged_ns, rounds));
	print_figures("seal (libsodium)", summarize(sodium_ns, rounds));
	rc = 0;
out:
	dd_crypto_tx_free(tx);
	dd_crypto_rx_free(rx);
	sodium_memzero(ssk, sizeof(ssk));
	sodium_memzero(rsk, sizeof(rsk));
	free(hdrs);
	free(bufs);
	free(forged);
	free(forged_ns);
	free(seal_ns);
	free(open_ns);
	free(sodium_ns);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *which = argc > 1 ? argv[1] : "both";
	long rounds = argc > 2 ? strtol(argv[2], NULL, 10) : 400;
	long size = argc > 3 ? strtol(argv[3], NULL, 10) : DD_DGRAM_DEFAULT;
	int rc = 0;

	if (argc > 4 || (strcmp(which, "aes") != 0 && strcmp(which, "chacha") != 0 &&
			 strcmp(which, "both") != 0) ||
	    rounds < 10 || rounds > 1000000 || size < 0 || size > DD_DGRAM_MAX ||
	    !dd_wire_dgram_size_ok((uint16_t)size)) {
		fprintf(stderr, "usage: sealbench [aes|chacha|both] [ROUNDS >= 10] "
				"[DATAGRAM_SIZE: a multiple of 64 in %d..%d]\n",
			DD_DGRAM_MIN, DD_DGRAM_MAX);
		return 2;
	}
	if (dd_crypto_init() != 0) {
		fprintf(stderr, "sealbench: libsodium failed to initialize\n");
		return 1;
	}
	if (strcmp(which, "chacha") != 0) {
		if (dd_crypto_aes_available())
			rc |= bench_cipher(DD_CIPHER_AES256GCM, (size_t)size, (size_t)rounds);
		else
			printf("aes256gcm: not available on this CPU (no AES-NI)\n");
	}
	if (strcmp(which, "aes") != 0)
		rc |= bench_cipher(DD_CIPHER_CHACHA20POLY1305, (size_t)size, (size_t)rounds);
	return rc != 0;
}
