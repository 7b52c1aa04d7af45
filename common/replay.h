/* Anti-replay: a sliding bitmap window over 64-bit datagram counters (RFC 6479 style). */
#ifndef DD_REPLAY_H
#define DD_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#define DD_REPLAY_WINDOW 8192 /* bitmap size; counters 8128 or more below the top are refused */

struct dd_replay {
	uint64_t top;   /* highest counter accepted so far */
	uint64_t floor; /* counters <= floor are refused (restart high-water mark) */
	bool any;       /* a counter was accepted since reset */
	uint64_t bits[DD_REPLAY_WINDOW / 64];
};

/* Start empty; counters <= floor are treated as already seen. */
void dd_replay_reset(struct dd_replay *r, uint64_t floor, bool use_floor);
/* True when seq is new. Does not record it: call after authentication. */
bool dd_replay_check(const struct dd_replay *r, uint64_t seq);
/* Record seq (must have passed check and authentication). */
void dd_replay_update(struct dd_replay *r, uint64_t seq);

#endif
