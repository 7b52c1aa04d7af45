/* UDP sockets: address parsing, non-blocking sender and receiver sockets with large buffers. */
#ifndef DD_NET_H
#define DD_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct dd_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* "HOST:PORT" or "[V6]:PORT"; HOST may be a name. Error text names the input. */
int dd_net_resolve(const char *hostport, struct dd_addr *out, char *err, size_t errlen);
/* Printable "host:port" of an address. */
void dd_net_format(const struct dd_addr *a, char *out, size_t len);

/* A non-blocking UDP socket for sending to dst's family. *granted gets the send
 * buffer the kernel gave. */
int dd_net_udp_sender(const struct dd_addr *dst, uint64_t sndbuf, uint64_t *granted,
		      char *err, size_t errlen);
/* A non-blocking UDP socket bound to addr, asking for rcvbuf bytes of receive
 * buffer (SO_RCVBUFFORCE when privileged); *granted gets what the kernel gave. */
int dd_net_udp_receiver(const struct dd_addr *addr, uint64_t rcvbuf, uint64_t *granted,
			char *err, size_t errlen);

/*
 * Receive offload (UDP_GRO): the kernel may hand over a run of datagrams of one
 * flow and one size as a single buffer, with their size in a control message;
 * only the last may be shorter. Without it each datagram arrives on its own.
 */
/* Ask for UDP_GRO on fd: 0, or a negative errno (kernel without it; harmless). */
int dd_net_enable_gro(int fd);
/* Control buffer a receive needs for the UDP_GRO message (a constant expression). */
#define DD_NET_GRO_CMSG_SPACE CMSG_SPACE(sizeof(int))
/* The segment size given by the UDP_GRO control message of a received msg, or 0
 * when there is none (the buffer is one datagram). */
size_t dd_net_gro_size(const struct msghdr *msg);
/*
 * Walk the datagrams of a received buffer of len bytes cut in segments of seg
 * bytes (seg 0, or >= len: one datagram). Start with *off = 0; each call gives
 * the next one's offset and length and returns 1, then 0 when none is left.
 */
int dd_net_next_segment(size_t len, size_t seg, size_t *off, size_t *seg_off, size_t *seg_len);

#endif
