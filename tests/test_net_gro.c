/* Unit tests for the receive-offload helpers of common/net.c: UDP_GRO control messages and segment splitting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

/* Walk a buffer; record the segments; return how many. */
static size_t
walk(size_t len, size_t seg, size_t *offs, size_t *lens, size_t cap)
{
	size_t off = 0, so, sl, n = 0;

	while (dd_net_next_segment(len, seg, &off, &so, &sl)) {
		assert_true(n < cap);
		offs[n] = so;
		lens[n] = sl;
		n++;
	}
	return n;
}

static void
test_net_segment_without_gro_is_one_datagram(void **state)
{
	size_t offs[4], lens[4];

	(void)state;
	assert_int_equal(walk(1472, 0, offs, lens, 4), 1);
	assert_int_equal(offs[0], 0);
	assert_int_equal(lens[0], 1472);
}

static void
test_net_segment_empty_datagram_is_seen_once(void **state)
{
	size_t offs[4], lens[4];

	(void)state;
	assert_int_equal(walk(0, 0, offs, lens, 4), 1);
	assert_int_equal(lens[0], 0);
	assert_int_equal(walk(0, 1472, offs, lens, 4), 1);
	assert_int_equal(lens[0], 0);
}

static void
test_net_segment_splits_equal_runs(void **state)
{
	size_t offs[64], lens[64];

	(void)state;
	assert_int_equal(walk(1472 * 44, 1472, offs, lens, 64), 44);
	for (size_t i = 0; i < 44; i++) {
		assert_int_equal(offs[i], i * 1472);
		assert_int_equal(lens[i], 1472);
	}
}

static void
test_net_segment_last_may_be_shorter(void **state)
{
	size_t offs[8], lens[8];

	(void)state;
	/* Every truncation of the last segment: it comes out exactly that short. */
	for (size_t tail = 1; tail < 1472; tail++) {
		assert_int_equal(walk(1472 * 3 + tail, 1472, offs, lens, 8), 4);
		assert_int_equal(lens[2], 1472);
		assert_int_equal(offs[3], 1472 * 3);
		assert_int_equal(lens[3], tail);
	}
}

static void
test_net_segment_oversize_or_odd_sizes_never_leave_the_buffer(void **state)
{
	static const size_t sizes[] = { 1, 2, 15, 16, 1471, 1473, 65535, 65536, 1u << 20 };
	static const size_t lengths[] = { 1, 16, 1472, 65535, 65536 };

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		for (size_t j = 0; j < sizeof(lengths) / sizeof(lengths[0]); j++) {
			size_t len = lengths[j], seg = sizes[i], off = 0, so, sl, n = 0, sum = 0;

			while (dd_net_next_segment(len, seg, &off, &so, &sl)) {
				assert_true(sl > 0);
				assert_true(sl <= seg);
				assert_true(so + sl <= len);
				assert_int_equal(so, sum);
				sum += sl;
				n++;
			}
			/* A segment size above the length: one datagram, as without GRO. */
			assert_int_equal(sum, len);
			assert_int_equal(n, seg >= len ? 1 : (len + seg - 1) / seg);
		}
}

/* A message with the given control messages, for dd_net_gro_size. */
static size_t
gro_size_of(int level, int type, const void *data, size_t data_len, size_t cmsg_len)
{
	union {
		struct cmsghdr align;
		uint8_t buf[CMSG_SPACE(16)];
	} ctrl;
	struct msghdr msg;
	struct cmsghdr *c;

	memset(&ctrl, 0, sizeof(ctrl));
	memset(&msg, 0, sizeof(msg));
	msg.msg_control = ctrl.buf;
	msg.msg_controllen = CMSG_SPACE(data_len);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = level;
	c->cmsg_type = type;
	c->cmsg_len = cmsg_len;
	memcpy(CMSG_DATA(c), data, data_len);
	return dd_net_gro_size(&msg);
}

static void
test_net_gro_size_reads_the_udp_gro_message(void **state)
{
	int size = 1472;

	(void)state;
	assert_int_equal(gro_size_of(IPPROTO_UDP, UDP_GRO, &size, sizeof(size),
				     CMSG_LEN(sizeof(size))), 1472);
}

static void
test_net_gro_size_ignores_other_short_and_negative_messages(void **state)
{
	int size = 1472, negative = -5, zero = 0;
	struct msghdr none;

	(void)state;
	memset(&none, 0, sizeof(none));
	assert_int_equal(dd_net_gro_size(&none), 0);
	assert_int_equal(gro_size_of(SOL_SOCKET, UDP_GRO, &size, sizeof(size),
				     CMSG_LEN(sizeof(size))), 0);
	assert_int_equal(gro_size_of(IPPROTO_UDP, UDP_SEGMENT, &size, sizeof(size),
				     CMSG_LEN(sizeof(size))), 0);
	/* Truncated: the header claims less than an int. */
	assert_int_equal(gro_size_of(IPPROTO_UDP, UDP_GRO, &size, sizeof(size), CMSG_LEN(2)), 0);
	assert_int_equal(gro_size_of(IPPROTO_UDP, UDP_GRO, &negative, sizeof(negative),
				     CMSG_LEN(sizeof(negative))), 0);
	assert_int_equal(gro_size_of(IPPROTO_UDP, UDP_GRO, &zero, sizeof(zero),
				     CMSG_LEN(sizeof(zero))), 0);
}

/*
 * Through the kernel on loopback: a GSO send of 5 datagrams (the last shorter)
 * to a UDP_GRO socket comes back either as one buffer with its segment size,
 * or (kernel without pass-through) as 5 datagrams; either way, split, it gives
 * back exactly what was sent.
 */
static void
test_net_gro_loopback_round_trip(void **state)
{
	enum { SEG = 1200, N = 5, TAIL = 333, TOTAL = SEG * (N - 1) + TAIL };
	struct sockaddr_in addr;
	socklen_t alen = sizeof(addr);
	static uint8_t out[TOTAL], in[65536];
	size_t got = 0;
	int rx, tx, seg = SEG;

	(void)state;
	for (size_t i = 0; i < TOTAL; i++)
		out[i] = (uint8_t)(i * 7 + i / SEG);
	rx = socket(AF_INET, SOCK_DGRAM, 0);
	tx = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(rx >= 0 && tx >= 0);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(rx, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(getsockname(rx, (struct sockaddr *)&addr, &alen), 0);
	if (dd_net_enable_gro(rx) != 0 ||
	    setsockopt(tx, IPPROTO_UDP, UDP_SEGMENT, &seg, sizeof(seg)) != 0 ||
	    sendto(tx, out, TOTAL, 0, (struct sockaddr *)&addr, sizeof(addr)) != TOTAL) {
		close(rx);
		close(tx);
		skip(); /* no GSO/GRO on this kernel */
	}
	while (got < TOTAL) {
		union {
			struct cmsghdr align;
			uint8_t buf[DD_NET_GRO_CMSG_SPACE];
		} ctrl;
		struct iovec iov = { .iov_base = in, .iov_len = sizeof(in) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf,
				      .msg_controllen = sizeof(ctrl.buf) };
		struct pollfd pfd = { .fd = rx, .events = POLLIN };
		size_t off = 0, so, sl, size;
		ssize_t n;

		assert_int_equal(poll(&pfd, 1, 2000), 1);
		n = recvmsg(rx, &msg, 0);
		assert_true(n > 0);
		assert_false(msg.msg_flags & MSG_TRUNC);
		size = dd_net_gro_size(&msg);
		assert_true(size == 0 || size == SEG);
		while (dd_net_next_segment((size_t)n, size, &off, &so, &sl)) {
			size_t want = got + SEG <= TOTAL ? SEG : TOTAL - got;

			assert_int_equal(sl, want);
			assert_memory_equal(in + so, out + got, sl);
			got += sl;
		}
	}
	assert_int_equal(got, TOTAL);
	close(rx);
	close(tx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_net_segment_without_gro_is_one_datagram),
		cmocka_unit_test(test_net_segment_empty_datagram_is_seen_once),
		cmocka_unit_test(test_net_segment_splits_equal_runs),
		cmocka_unit_test(test_net_segment_last_may_be_shorter),
		cmocka_unit_test(test_net_segment_oversize_or_odd_sizes_never_leave_the_buffer),
		cmocka_unit_test(test_net_gro_size_reads_the_udp_gro_message),
		cmocka_unit_test(test_net_gro_size_ignores_other_short_and_negative_messages),
		cmocka_unit_test(test_net_gro_loopback_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
