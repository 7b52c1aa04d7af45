/* UDP socket set-up shared by diode-tx and diode-rx. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h> /* UDP_GRO */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

int
dd_net_resolve(const char *hostport, struct dd_addr *out, char *err, size_t errlen)
{
	char host[256];
	const char *port, *colon;
	struct addrinfo hints, *res = NULL;
	size_t hlen;
	int rc;

	memset(out, 0, sizeof(*out));
	if (hostport[0] == '[') {
		const char *close = strchr(hostport, ']');

		if (close == NULL || close[1] != ':')
			goto bad;
		hlen = (size_t)(close - hostport - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad;
		memcpy(host, hostport + 1, hlen);
		port = close + 2;
	} else {
		colon = strrchr(hostport, ':');
		if (colon == NULL)
			goto bad;
		hlen = (size_t)(colon - hostport);
		if (hlen == 0 || hlen >= sizeof(host))
			goto bad;
		memcpy(host, hostport, hlen);
		port = colon + 1;
	}
	host[hlen] = '\0';
	if (*port == '\0')
		goto bad;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "'%s': cannot resolve: %s", hostport, gai_strerror(rc));
		return -EINVAL;
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	snprintf(err, errlen, "'%s': expected HOST:PORT or [IPv6]:PORT", hostport);
	return -EINVAL;
}

void
dd_net_format(const struct dd_addr *a, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;

		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		snprintf(out, len, "%s:%u", host, ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;

		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		snprintf(out, len, "[%s]:%u", host, ntohs(s->sin6_port));
	}
}

static uint64_t
set_buffer(int fd, int opt, int force_opt, uint64_t want)
{
	int val = want > INT32_MAX / 2 ? INT32_MAX / 2 : (int)want;
	int got = 0;
	socklen_t len = sizeof(got);

	/* The privileged variant ignores net.core.[rw]mem_max; fall back quietly. */
	if (setsockopt(fd, SOL_SOCKET, force_opt, &val, sizeof(val)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, opt, &val, sizeof(val));
	if (getsockopt(fd, SOL_SOCKET, opt, &got, &len) < 0)
		return 0;
	return (uint64_t)got / 2; /* the kernel reports twice the usable size */
}

int
dd_net_udp_sender(const struct dd_addr *dst, uint64_t sndbuf, uint64_t *granted,
		  char *err, size_t errlen)
{
	int fd = socket(dst->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen, "UDP socket: %s", strerror(errno));
		return -errno;
	}
	*granted = set_buffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, sndbuf);
	return fd;
}

int
dd_net_udp_receiver(const struct dd_addr *addr, uint64_t rcvbuf, uint64_t *granted,
		    char *err, size_t errlen)
{
	char where[80];
	int fd = socket(addr->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rc;

	if (fd < 0) {
		snprintf(err, errlen, "UDP socket: %s", strerror(errno));
		return -errno;
	}
	*granted = set_buffer(fd, SO_RCVBUF, SO_RCVBUFFORCE, rcvbuf);
	if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0) {
		rc = -errno;
		dd_net_format(addr, where, sizeof(where));
		snprintf(err, errlen, "cannot listen on %s: %s%s", where, strerror(errno),
			 errno == EADDRINUSE ? " (another diode-rx running?)" : "");
		close(fd);
		return rc;
	}
	return fd;
}

int
dd_net_enable_gro(int fd)
{
	int on = 1;

	return setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof(on)) < 0 ? -errno : 0;
}

size_t
dd_net_gro_size(const struct msghdr *msg)
{
	const struct cmsghdr *c;

	/* The macros take a non-const header; they only read through it. */
	for (c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL;
	     c = CMSG_NXTHDR((struct msghdr *)msg, (struct cmsghdr *)c)) {
		int size;

		if (c->cmsg_level != IPPROTO_UDP || c->cmsg_type != UDP_GRO ||
		    c->cmsg_len < CMSG_LEN(sizeof(size)))
			continue;
		memcpy(&size, CMSG_DATA(c), sizeof(size));
		return size > 0 ? (size_t)size : 0;
	}
	return 0;
}

int
dd_net_next_segment(size_t len, size_t seg, size_t *off, size_t *seg_off, size_t *seg_len)
{
	if (*off >= len) {
		/* An empty datagram is still one datagram, seen once. */
		if (len == 0 && *off == 0) {
			*off = 1;
			*seg_off = 0;
			*seg_len = 0;
			return 1;
		}
		return 0;
	}
	if (seg == 0 || seg > len)
		seg = len;
	*seg_off = *off;
	*seg_len = len - *off < seg ? len - *off : seg;
	*off += *seg_len;
	return 1;
}
