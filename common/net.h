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

#endif
