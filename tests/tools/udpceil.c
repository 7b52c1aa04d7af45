/* udpceil: the raw one-way UDP ceiling of this machine (sendmmsg → recvmmsg, no crypto, no FEC). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "pace.h"

#define BATCH 64

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: udpceil send HOST:PORT SECONDS [SIZE]\n"
		"       udpceil recv HOST:PORT SECONDS\n"
		"  send blasts SIZE-byte datagrams (default 1472) with sendmmsg for SECONDS;\n"
		"  recv counts what arrives with recvmmsg and prints one JSON line:\n"
		"  datagrams, payload bytes, the seconds between the first and last datagram,\n"
		"  and the rate (payload and wire bytes = payload + %d per datagram).\n",
		DD_WIRE_OVERHEAD);
	exit(2);
}

static int
do_send(const struct dd_addr *dst, double seconds, size_t size)
{
	static uint8_t buf[BATCH][65536];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint64_t granted, sent = 0;
	char err[256];
	double end;
	int fd = dd_net_udp_sender(dst, 8u << 20, &granted, err, sizeof(err));

	if (fd < 0) {
		fprintf(stderr, "udpceil: %s\n", err);
		return 1;
	}
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		memset(buf[i], 0xa5, size);
		iov[i] = (struct iovec){ buf[i], size };
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = (void *)&dst->ss;
		msgs[i].msg_hdr.msg_namelen = dst->len;
	}
	end = now_s() + seconds;
	while (now_s() < end) {
		int n = sendmmsg(fd, msgs, BATCH, 0);

		if (n < 0) {
			if (errno == EAGAIN || errno == ENOBUFS) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };

				poll(&p, 1, 1);
				continue;
			}
			if (errno == ECONNREFUSED)
				continue;
			perror("udpceil: sendmmsg");
			return 1;
		}
		sent += (uint64_t)n;
	}
	printf("{\"sent_datagrams\":%" PRIu64 "}\n", sent);
	return 0;
}

static int
do_recv(const struct dd_addr *addr, double seconds)
{
	static uint8_t buf[BATCH][65536];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint64_t granted, datagrams = 0, bytes = 0;
	double first = 0, last = 0, deadline;
	char err[256];
	int fd = dd_net_udp_receiver(addr, 64u << 20, &granted, err, sizeof(err));

	if (fd < 0) {
		fprintf(stderr, "udpceil: %s\n", err);
		return 1;
	}
	fprintf(stderr, "udpceil: ready\n");
	deadline = now_s() + seconds + 30;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double t = now_s();
		int n;

		if (t > deadline || (first != 0 && t - first > seconds + 1) ||
		    (first != 0 && t - last > 0.5))
			break;
		if (poll(&p, 1, 100) <= 0)
			continue;
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			continue;
		t = now_s();
		for (int i = 0; i < n; i++) {
			/* The window opens at the first full-size datagram: a sender's
			 * start-up chatter (small announces) is not its sustained rate. */
			if (first == 0 && msgs[i].msg_len < 1000)
				continue;
			if (first == 0)
				first = t;
			datagrams++;
			bytes += msgs[i].msg_len;
		}
		if (first != 0)
			last = t;
	}
	{
		double span = last - first > 0 ? last - first : 1e-9;

		printf("{\"datagrams\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.6f,"
		       "\"payload_bytes_per_s\":%.0f,\"wire_bits_per_s\":%.0f}\n",
		       datagrams, bytes, span, (double)bytes / span,
		       8.0 * ((double)bytes + (double)datagrams * DD_WIRE_OVERHEAD) / span);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct dd_addr addr;
	char err[256];
	double seconds;

	if (argc < 4)
		usage();
	if (dd_net_resolve(argv[2], &addr, err, sizeof(err)) != 0) {
		fprintf(stderr, "udpceil: %s\n", err);
		return 2;
	}
	seconds = atof(argv[3]);
	if (seconds <= 0)
		usage();
	if (strcmp(argv[1], "send") == 0)
		return do_send(&addr, seconds, argc > 4 ? (size_t)atoi(argv[4]) : 1472);
	if (strcmp(argv[1], "recv") == 0)
		return do_recv(&addr, seconds);
	usage();
	return 2;
}
