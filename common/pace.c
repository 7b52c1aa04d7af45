/* Token bucket: tokens are wire bytes, refilled at rate/8 per second, capped at burst. */
#include "pace.h"

void
dd_pace_init(struct dd_pace *p, uint64_t rate_bps, uint64_t burst_bytes, uint64_t now_ns)
{
	p->rate_bps = rate_bps;
	p->burst_bytes = burst_bytes;
	p->tokens = (double)burst_bytes;
	p->last_ns = now_ns;
}

uint64_t
dd_pace_refill(struct dd_pace *p, uint64_t now_ns, uint64_t catchup_bytes)
{
	if (now_ns > p->last_ns) {
		double cap = (double)p->burst_bytes + (double)catchup_bytes;

		p->tokens += (double)(now_ns - p->last_ns) * (double)p->rate_bps / 8e9;
		if (p->tokens > cap)
			p->tokens = cap;
		p->last_ns = now_ns;
	}
	return p->tokens > 0 ? (uint64_t)p->tokens : 0;
}

uint64_t
dd_pace_available(struct dd_pace *p, uint64_t now_ns)
{
	return dd_pace_refill(p, now_ns, 0);
}

void
dd_pace_consume(struct dd_pace *p, uint64_t bytes)
{
	p->tokens -= (double)bytes;
}

uint64_t
dd_pace_wait_ns(const struct dd_pace *p, uint64_t bytes)
{
	double missing = (double)bytes - p->tokens;

	if (missing <= 0)
		return 0;
	return (uint64_t)(missing * 8e9 / (double)p->rate_bps) + 1;
}
