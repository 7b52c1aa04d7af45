/* Anti-replay window: check before decryption, update only after the tag verified. */
#include <string.h>

#include "replay.h"

#define WORDS (DD_REPLAY_WINDOW / 64)

void
dd_replay_reset(struct dd_replay *r, uint64_t floor, bool use_floor)
{
	memset(r, 0, sizeof(*r));
	if (use_floor) {
		r->floor = floor;
		r->top = floor;
		r->any = true;
		/* Everything up to floor counts as seen: check() refuses seq <= floor
		 * for floor > 0; marking floor itself covers floor 0 too. */
		r->bits[(floor / 64) % WORDS] |= (uint64_t)1 << (floor % 64);
	}
}

static bool
bit_get(const struct dd_replay *r, uint64_t seq)
{
	return (r->bits[(seq / 64) % WORDS] >> (seq % 64)) & 1;
}

bool
dd_replay_check(const struct dd_replay *r, uint64_t seq)
{
	if (!r->any)
		return true;
	if (r->floor != 0 && seq <= r->floor)
		return false;
	if (seq > r->top)
		return true;
	if (r->top - seq >= DD_REPLAY_WINDOW - 64)
		return false;
	return !bit_get(r, seq);
}

void
dd_replay_update(struct dd_replay *r, uint64_t seq)
{
	if (!r->any) {
		r->any = true;
		r->top = seq;
		memset(r->bits, 0, sizeof(r->bits));
	} else if (seq > r->top) {
		uint64_t old_word = r->top / 64, new_word = seq / 64;
		uint64_t steps = new_word - old_word;

		if (steps >= WORDS)
			memset(r->bits, 0, sizeof(r->bits));
		else
			for (uint64_t w = old_word + 1; w <= new_word; w++)
				r->bits[w % WORDS] = 0;
		r->top = seq;
	}
	r->bits[(seq / 64) % WORDS] |= (uint64_t)1 << (seq % 64);
}
