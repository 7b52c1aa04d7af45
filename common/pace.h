/* Token-bucket pacing of wire bytes with a fine monotonic clock. */
#ifndef DD_PACE_H
#define DD_PACE_H

#include <stdint.h>

/* Bytes a datagram of n UDP payload bytes occupies on an Ethernet link:
 * IPv4 (20) + UDP (8) + Ethernet header, FCS, preamble and gap (38). */
#define DD_WIRE_OVERHEAD 66

struct dd_pace {
	uint64_t rate_bps;    /* bits per second on the wire */
	uint64_t burst_bytes; /* bucket depth */
	double tokens;        /* bytes that may be sent now */
	uint64_t last_ns;
};

void dd_pace_init(struct dd_pace *p, uint64_t rate_bps, uint64_t burst_bytes, uint64_t now_ns);
/* Refill from the clock; returns the whole bytes available. */
uint64_t dd_pace_available(struct dd_pace *p, uint64_t now_ns);
/* Same, for a sender that had work waiting since the last refill (it was
 * busy, not idle): the bucket may then hold catchup_bytes beyond its depth,
 * so time lost to a stall (reading and coding a group of blocks) is made up
 * afterwards instead of being lost from the rate. */
uint64_t dd_pace_refill(struct dd_pace *p, uint64_t now_ns, uint64_t catchup_bytes);
void dd_pace_consume(struct dd_pace *p, uint64_t bytes);
/* Nanoseconds until bytes will be available (0 if now). */
uint64_t dd_pace_wait_ns(const struct dd_pace *p, uint64_t bytes);

#endif
