/* udpceil: the raw one-way UDP ceiling of this machine (sendmmsg → recvmmsg, no crypto, no FEC), and a rate meter. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
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
		"       udpceil recv HOST:PORT SECONDS [gro]\n"
		"  send blasts SIZE-byte datagrams (default 1472) with sendmmsg for SECONDS;\n"
		"  recv counts what arrives with recvmmsg and prints one JSON line:\n"
		"  datagrams, payload bytes, the seconds between the first and last datagram,\n"
		"  and the rate (payload and wire bytes = payload + %d per datagram).\n"
		"  The ceiling is send + recv without gro (one datagram per system call\n"
		"  slot, as a real NIC delivers them). 'gro' makes recv a meter that keeps\n"
		"  up with fast senders (UDP_GRO: the kernel hands over runs of datagrams);\n"
		"  it still counts datagrams one by one.\n",
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
	/* Connected: no address and route lookup per datagram, the fastest
	 * plain UDP there is (still one datagram per message, no GSO). */
	if (connect(fd, (const struct sockaddr *)&dst->ss, dst->len) != 0) {
		perror("udpceil: connect");
		return 1;
	}
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		memset(buf[i], 0xa5, size);
		iov[i] = (struct iovec){ buf[i], size };
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
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

/* Segment size of a GRO run (its UDP_GRO control message), or 0. */
static size_t
gro_segment(struct msghdr *h)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c))
		if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
			int seg;

			memcpy(&seg, CMSG_DATA(c), sizeof(seg));
			return seg > 0 ? (size_t)seg : 0;
		}
	return 0;
}

static int
do_recv(const struct dd_addr *addr, double seconds, bool gro)
{
	static uint8_t buf[BATCH][65536];
	static union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl[BATCH];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint64_t granted, datagrams = 0, bytes = 0;
	double first = 0, last = 0, deadline;
	char err[256];
	int one = 1;
	struct timeval tv = { 0, 100000 };
	int fd = dd_net_udp_receiver(addr, 64u << 20, &granted, err, sizeof(err));

	if (fd < 0) {
		fprintf(stderr, "udpceil: %s\n", err);
		return 1;
	}
	if (gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) != 0) {
		perror("udpceil: UDP_GRO");
		return 1;
	}
	/* Blocking batches (at most 100 ms), no poll per batch: the receiver
	 * is the side that limits the ceiling, so it does nothing else. Blocking
	 * needs the descriptor back in blocking mode. */
	{
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
			perror("udpceil: socket set-up");
			return 1;
		}
	}
	fprintf(stderr, "udpceil: ready (receive buffer %" PRIu64 " bytes%s)\n", granted,
		gro ? ", GRO" : "");
	deadline = now_s() + seconds + 30;
	for (int i = 0; i < BATCH; i++)
		iov[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
	for (;;) {
		double t = now_s();
		int n;

		if (t > deadline || (first != 0 && t - first > seconds + 1) ||
		    (first != 0 && t - last > 0.5))
			break;
		for (int i = 0; i < BATCH; i++) {
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			if (gro) {
				msgs[i].msg_hdr.msg_control = ctl[i].buf;
				msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
			}
		}
		n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue;
		t = now_s();
		for (int i = 0; i < n; i++) {
			size_t len = msgs[i].msg_len;
			size_t seg = gro ? gro_segment(&msgs[i].msg_hdr) : 0;

			/* The window opens at the first full-size datagram: a sender's
			 * start-up chatter (small announces) is not its sustained rate. */
			if (first == 0 && len < 1000)
				continue;
			if (first == 0)
				first = t;
			datagrams += seg > 0 ? (len + seg - 1) / seg : 1;
			bytes += len;
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
		return do_recv(&addr, seconds, argc > 4 && strcmp(argv[4], "gro") == 0);
	usage();
	return 2;
}
