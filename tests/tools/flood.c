/* flood: forged announces and garbage at full speed to a diode-rx on loopback (tests only). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "keys.h"
#include "wire.h"

/*
 * usage: flood PORT SECONDS SENDER_PUB RECEIVER_PUB SESSION
 *
 * Sends to 127.0.0.1:PORT, in batches of 64 (sendmmsg), for SECONDS:
 *  - forged announces: exactly DD_ANNOUNCE_LEN (160) bytes, well-formed
 *    body naming the trusted sender's and the receiver's real public keys,
 *    sessions at, above and far from SESSION, random epochs and sequence
 *    numbers, a garbage tag and a garbage static tag: without the static tag
 *    each one would cost the receiver X25519 work, or a rate-limit token;
 *  - sealed datagrams of the right size in session SESSION with random
 *    sequence numbers and garbage content: each costs an AEAD check;
 *  - random bytes of random length.
 * Prints what it sent, also when stopped early by SIGTERM or SIGINT.
 * Loopback only: any other address is refused.
 */

#define POOL 1024
#define BATCH 64
#define SEALED_LEN 1472

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static volatile sig_atomic_t stop;

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)next_rand();
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

enum kind {
	KIND_ANNOUNCE,
	KIND_SEALED,
	KIND_GARBAGE
};

int
main(int argc, char **argv)
{
	static uint8_t pool[POOL][SEALED_LEN + 64];
	static size_t lens[POOL];
	static enum kind kinds[POOL];
	uint8_t sender[DD_KEY_LEN], receiver[DD_KEY_LEN];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_in dst;
	struct sigaction sa;
	unsigned long long sent[3] = { 0, 0, 0 }, errors = 0;
	char err[512];
	double seconds, start, elapsed;
	uint32_t session;
	int port, fd;

	if (argc != 6) {
		fprintf(stderr, "usage: flood PORT SECONDS SENDER_PUB RECEIVER_PUB SESSION\n");
		return 2;
	}
	port = atoi(argv[1]);
	seconds = atof(argv[2]);
	session = (uint32_t)strtoul(argv[5], NULL, 10);
	if (port <= 0 || port > 65535 || seconds <= 0 || seconds > 120) {
		fprintf(stderr, "flood: bad port or duration (at most 120 s)\n");
		return 2;
	}
	if (dd_keys_load_public(argv[3], sender, err, sizeof(err)) != 0 ||
	    dd_keys_load_public(argv[4], receiver, err, sizeof(err)) != 0) {
		fprintf(stderr, "flood: %s\n", err);
		return 2;
	}
	rng ^= (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);

	for (size_t i = 0; i < POOL; i++) {
		uint8_t *d = pool[i];
		struct dd_hdr h = { .type = DD_TYPE_ANNOUNCE };
		struct dd_announce a;
		unsigned r = (unsigned)(next_rand() % 10);

		if (r < 4) {
			kinds[i] = KIND_ANNOUNCE;
			memset(&a, 0, sizeof(a));
			a.cipher =
				next_rand() & 1 ? DD_CIPHER_AES256GCM : DD_CIPHER_CHACHA20POLY1305;
			a.dgram_size = SEALED_LEN;
			fill_random(a.ephemeral, sizeof(a.ephemeral));
			memcpy(a.sender, sender, DD_KEY_LEN);
			memcpy(a.receiver, receiver, DD_KEY_LEN);
			a.started = (uint64_t)time(NULL);
			switch (next_rand() % 3) {
			case 0: /* the current session, a new epoch */
				h.session = session;
				h.epoch = (uint16_t)(1 + next_rand() % 3);
				break;
			case 1: /* a newer session: would replace the current one */
				h.session = session + 1 + (uint32_t)(next_rand() % 1000);
				break;
			default:
				h.session = (uint32_t)next_rand();
				h.epoch = (uint16_t)next_rand();
				break;
			}
			h.seq = 1 + next_rand() % 1000000;
			dd_wire_put_header(d, &h);
			dd_wire_put_announce(d + DD_HDR_LEN, &a);
			fill_random(d + DD_HDR_LEN + DD_ANNOUNCE_BODY_LEN,
				    DD_TAG_LEN + DD_STATIC_TAG_LEN);
			lens[i] = DD_ANNOUNCE_LEN;
		} else if (r < 7) {
			kinds[i] = KIND_SEALED;
			h.type = DD_TYPE_SEALED;
			h.session = session;
			h.seq = next_rand() >> 8;
			dd_wire_put_header(d, &h);
			fill_random(d + DD_HDR_LEN, SEALED_LEN - DD_HDR_LEN);
			lens[i] = SEALED_LEN;
		} else {
			kinds[i] = KIND_GARBAGE;
			lens[i] = (size_t)(next_rand() % (SEALED_LEN + 64));
			fill_random(d, lens[i]);
		}
	}

	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)port);
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		perror("flood: socket");
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	start = now_s();
	for (unsigned long long round = 0;; round++) {
		size_t base = (size_t)(next_rand() % (POOL - BATCH));
		int n;

		if (stop || ((round & 63) == 0 && now_s() - start >= seconds))
			break;
		for (size_t j = 0; j < BATCH; j++) {
			uint8_t *d = pool[base + j];

			/* A fresh sequence number, so nothing is refused as a replay
			 * before the expensive checks. */
			if (kinds[base + j] != KIND_GARBAGE)
				dd_store_be64(d + 8, kinds[base + j] == KIND_ANNOUNCE ?
							     1 + next_rand() % 1000000 :
							     next_rand() >> 8);
			iov[j].iov_base = d;
			iov[j].iov_len = lens[base + j];
			memset(&msgs[j], 0, sizeof(msgs[j]));
			msgs[j].msg_hdr.msg_iov = &iov[j];
			msgs[j].msg_hdr.msg_iovlen = 1;
		}
		n = sendmmsg(fd, msgs, BATCH, 0);
		if (n < 0 && stop)
			break;
		if (n < 0) {
			/* ECONNREFUSED after an ICMP error, ENOBUFS: go on. */
			errors++;
			continue;
		}
		for (int j = 0; j < n; j++)
			sent[kinds[base + (size_t)j]]++;
	}
	elapsed = now_s() - start;
	printf("flood: %llu datagrams in %.1f s (%.0f/s): %llu forged announces, %llu forged "
	       "sealed, %llu garbage; %llu send errors\n",
	       sent[0] + sent[1] + sent[2], elapsed, (sent[0] + sent[1] + sent[2]) / elapsed,
	       sent[0], sent[1], sent[2], errors);
	close(fd);
	return 0;
}
