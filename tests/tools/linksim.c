/* linksim: a deterministic UDP link simulator (loss, bursts, reordering, duplication,
 * corruption, truncation, rate cap, injection) to put between diode-tx and diode-rx. */

/*
 * Every datagram received on --listen goes through the models below, in this order,
 * and what survives is sent to --forward from a socket of our own:
 *
 *   blackout window -> Gilbert-Elliott burst loss -> independent loss
 *   -> capture (original bytes) -> truncate -> corrupt -> duplicate -> reorder hold
 *   -> rate-capped FIFO (tail drop) -> sendmmsg
 *
 * Determinism: the per-datagram decisions come from one xoshiro256** stream seeded
 * with --seed, and every received datagram consumes exactly DRAWS_PER_DGRAM numbers
 * whatever the options, so the decision for the n-th datagram depends only on the
 * seed and n. Time-based behaviour (the loss and blackout windows, the rate queue,
 * the reorder hold timeout) is by nature tied to the clock. Injected datagrams draw
 * from a second stream so that their timing cannot shift the link decisions.
 *
 * Injected datagrams (random and replays) model an attacker on the receiving side of
 * the link: they skip the loss models and the rate cap.
 *
 * Memory is bounded: the replay ring, the reorder hold and the rate FIFO are
 * preallocated byte rings; nothing is allocated per datagram.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "config.h"
#include "log.h"
#include "net.h"
#include "pace.h"
#include "wire.h"

#define BATCH 64           /* datagrams per recvmmsg / sendmmsg */
#define READS_PER_WAKE 16  /* recvmmsg calls before timers get a turn */
#define DGRAM_BUF 65536    /* larger than any UDP payload */
#define UDP_MAX 65535      /* largest record accepted from a replay file */
#define RING_ENTRIES 10000 /* replay ring: last forwarded originals */
#define RING_BYTES (32u << 20)
#define HOLD_ENTRIES 4096 /* reorder hold */
#define HOLD_BYTES (16u << 20)
#define HOLD_MAX_NS 200000000ull /* a held datagram leaves after at most 200 ms */
#define QUEUE_MAX (256ull << 20) /* largest --queue */
#define INJECT_PER_WAKE 256      /* injections caught up per wake-up at most */
#define RCVBUF_WANT (32u << 20)
#define SNDBUF_WANT (4u << 20)
#define DRAWS_PER_DGRAM 8
#define NS 1000000000ull
#define SEND_STALL_NS 1000000000ull /* give up on a full socket buffer after 1 s */

/* ---- PRNG: splitmix64 to seed xoshiro256** ---- */

struct rng {
	uint64_t s[4];
};

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void
rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * UINT64_C(0xd1b54a32d192ed03));
	int i;

	for (i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1): u < p is true with probability p, never for p = 0, always for 1. */
static double
unit(uint64_t v)
{
	return (double)(v >> 11) * 0x1.0p-53;
}

static void
rng_fill(struct rng *r, uint8_t *p, size_t n)
{
	while (n > 0) {
		uint64_t v = rng_next(r);
		size_t k = n < 8 ? n : 8;

		memcpy(p, &v, k);
		p += k;
		n -= k;
	}
}

/* ---- byte FIFO of datagrams ----
 * Datagram bytes live contiguously in buf at virtual offsets that only grow; the
 * physical place is v % cap, and a datagram that would straddle the end starts at the
 * next multiple of cap instead. Live bytes are the virtual range [head_v, tail_v). */

struct fifo_ent {
	uint64_t v;     /* virtual offset of the bytes */
	uint64_t due;   /* reorder: release when this many non-held datagrams went out */
	uint64_t at_ns; /* when it entered */
	uint32_t len;
	uint8_t copies; /* 2 for a duplicated datagram */
};

struct fifo {
	uint8_t *buf; /* owned */
	uint64_t cap;
	struct fifo_ent *ent; /* owned, ecap entries, count live from first */
	size_t ecap, first, count;
	uint64_t head_v, tail_v;
};

static int
fifo_init(struct fifo *f, uint64_t cap, size_t ecap)
{
	memset(f, 0, sizeof(*f));
	f->buf = malloc(cap);
	f->ent = calloc(ecap, sizeof(*f->ent));
	if (f->buf == NULL || f->ent == NULL) {
		free(f->buf);
		free(f->ent);
		memset(f, 0, sizeof(*f));
		return -ENOMEM;
	}
	f->cap = cap;
	f->ecap = ecap;
	return 0;
}

static void
fifo_free(struct fifo *f)
{
	free(f->buf);
	free(f->ent);
	memset(f, 0, sizeof(*f));
}

static struct fifo_ent *
fifo_at(const struct fifo *f, size_t k)
{
	return &f->ent[(f->first + k) % f->ecap];
}

static struct fifo_ent *
fifo_front(const struct fifo *f)
{
	return f->count > 0 ? fifo_at(f, 0) : NULL;
}

static const uint8_t *
fifo_data(const struct fifo *f, const struct fifo_ent *e)
{
	return f->buf + e->v % f->cap;
}

/* Where len bytes would go, or false when the FIFO is full. */
static bool
fifo_fits(const struct fifo *f, uint32_t len, uint64_t *v_out)
{
	uint64_t v = f->tail_v;

	if (f->cap == 0 || f->count == f->ecap || len > f->cap)
		return false;
	if (v % f->cap + len > f->cap)
		v += f->cap - v % f->cap;
	if (v + len - f->head_v > f->cap)
		return false;
	*v_out = v;
	return true;
}

static void
fifo_pop(struct fifo *f)
{
	if (f->count == 0)
		return;
	f->first = (f->first + 1) % f->ecap;
	f->count--;
	f->head_v = f->count > 0 ? fifo_at(f, 0)->v : f->tail_v;
}

/* Append a copy of buf; NULL when full (evict is false) or when len can never fit. */
static struct fifo_ent *
fifo_push(struct fifo *f, const uint8_t *buf, uint32_t len, bool evict)
{
	struct fifo_ent *e;
	uint64_t v;

	while (!fifo_fits(f, len, &v)) {
		if (!evict || f->count == 0)
			return NULL;
		fifo_pop(f);
	}
	e = fifo_at(f, f->count);
	memset(e, 0, sizeof(*e));
	e->v = v;
	e->len = len;
	e->copies = 1;
	if (len > 0)
		memcpy(f->buf + v % f->cap, buf, len);
	if (f->count == 0)
		f->head_v = v;
	f->count++;
	f->tail_v = v + len;
	return e;
}

/* ---- options ---- */

struct window {
	bool set;
	double start, end; /* seconds since the first datagram */
};

struct opts {
	const char *listen, *forward;
	uint64_t seed;
	double loss, burst_loss, burst_len, reorder, duplicate, corrupt, truncate;
	bool burst_len_set, reorder_delay_set, queue_set;
	uint64_t reorder_delay;
	uint64_t rate_bps, queue_bytes;
	double inject_random, inject_replay; /* per second */
	const char *capture, *replay_file, *stats;
	struct window loss_window, blackout;
};

struct stats {
	uint64_t received, forwarded, dropped_loss, dropped_burst, dropped_queue, reordered,
		duplicated, corrupted, truncated, injected_random, injected_replay,
		dropped_blackout, send_failed;
};

enum origin {
	ORIGINAL,
	INJECTED_RANDOM,
	INJECTED_REPLAY
};

struct sim {
	struct opts o;
	struct stats st;
	struct rng link, inject;
	int in_fd, out_fd, timer_fd, sig_fd, ep_fd;
	struct dd_addr to;

	uint8_t *rx_buf; /* owned, BATCH * DGRAM_BUF */
	struct mmsghdr rx_msg[BATCH];
	struct iovec rx_iov[BATCH];

	uint8_t *tx_buf; /* owned, BATCH * DGRAM_BUF: copies waiting for sendmmsg */
	struct mmsghdr tx_msg[BATCH];
	struct iovec tx_iov[BATCH];
	enum origin tx_origin[BATCH];
	size_t tx_n;

	uint8_t *scratch; /* owned, DGRAM_BUF: injected datagrams are built here */

	/* Gilbert-Elliott two-state chain. */
	bool ge_bad;
	double p_gb, p_bg;

	bool started;
	uint64_t t0_ns;   /* arrival of the first datagram */
	uint64_t emitted; /* non-held originals sent on, the clock of the reorder hold */

	struct fifo hold, queue, ring;
	uint64_t queued_wire; /* wire bytes in queue */
	struct dd_pace pace;

	uint64_t next_random_ns, next_replay_ns;
	uint64_t armed_ns; /* deadline the timer is set to */
	uint32_t recent_len;
	uint8_t recent_hdr[8];
	bool have_recent;

	FILE *capture;    /* NULL when off or after a write error */
	uint64_t tick_ns; /* last once-a-second chore (capture flush) */
	FILE *replay;     /* NULL when off or unusable */
	uint64_t replay_pass_records;

	struct dd_ratelimit send_rl;
	bool stop;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

/* ---- statistics ---- */

/* clang-format off */
#define STAT_FIELDS(X)                                                                     \
	X(received) X(forwarded) X(dropped_loss) X(dropped_burst) X(dropped_queue)         \
	X(reordered) X(duplicated) X(corrupted) X(truncated) X(injected_random)            \
	X(injected_replay) X(dropped_blackout) X(send_failed)
/* clang-format on */

#define X(name) { #name, offsetof(struct stats, name) },
static const struct {
	const char *name;
	size_t offset;
} stat_fields[] = { STAT_FIELDS(X) };
#undef X

static void
stats_format(const struct stats *st, char *out, size_t len, char sep)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++) {
		uint64_t v;
		int m;

		memcpy(&v, (const char *)st + stat_fields[i].offset, sizeof(v));
		m = snprintf(out + n, len - n, "%.*s%s=%" PRIu64, i > 0 ? 1 : 0, &sep,
			     stat_fields[i].name, v);
		if (m < 0 || (size_t)m >= len - n)
			return;
		n += (size_t)m;
	}
}

/* Write key=value lines to path through a temporary file, so readers never see half. */
static void
stats_write(const struct sim *s)
{
	char text[1024], tmp[4096];
	FILE *f;

	if (s->o.stats == NULL)
		return;
	stats_format(&s->st, text, sizeof(text), '\n');
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", s->o.stats) >= sizeof(tmp)) {
		dd_error("--stats %s: path too long", s->o.stats);
		return;
	}
	f = fopen(tmp, "w");
	if (f == NULL) {
		dd_error(
			"--stats %s: cannot create: %s; check the directory exists and is writable",
			tmp, strerror(errno));
		return;
	}
	fprintf(f, "%s\n", text);
	if (fclose(f) != 0 || rename(tmp, s->o.stats) != 0) {
		dd_error("--stats %s: cannot write: %s", s->o.stats, strerror(errno));
		(void)unlink(tmp);
	}
}

static void
stats_report(const struct sim *s, const char *what)
{
	char text[1024];

	stats_format(&s->st, text, sizeof(text), ' ');
	dd_notice("%s: %s", what, text);
	stats_write(s);
}

/* ---- sending ---- */

static void
count_sent(struct sim *s, enum origin o)
{
	switch (o) {
	case ORIGINAL:
		s->st.forwarded++;
		break;
	case INJECTED_RANDOM:
		s->st.injected_random++;
		break;
	case INJECTED_REPLAY:
		s->st.injected_replay++;
		break;
	}
}

static void
send_failed(struct sim *s, int err)
{
	uint64_t suppressed = 0;
	char where[80];

	s->st.send_failed++;
	if (dd_ratelimit_ok(&s->send_rl, dd_mono_ms(), &suppressed)) {
		dd_net_format(&s->to, where, sizeof(where));
		dd_warn("sending to %s failed: %s (%" PRIu64 " failures not shown since the "
			"last message); the datagram is counted in send_failed",
			where, strerror(err), suppressed);
	}
}

/* Send everything staged. A full socket buffer is waited for (the simulated link
 * decides about loss, not our own socket), up to SEND_STALL_NS. */
static void
tx_flush(struct sim *s)
{
	size_t i = 0;
	uint64_t stall_since = 0;
	int err;

	while (i < s->tx_n) {
		int r = sendmmsg(s->out_fd, s->tx_msg + i, (unsigned)(s->tx_n - i), 0);

		if (r > 0) {
			for (int k = 0; k < r; k++)
				count_sent(s, s->tx_origin[i + (size_t)k]);
			i += (size_t)r;
			stall_since = 0;
			continue;
		}
		err = r < 0 ? errno : EIO;
		if (err == EINTR)
			continue;
		if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
			struct pollfd pfd = { .fd = s->out_fd, .events = POLLOUT };
			uint64_t t = now_ns();

			if (stall_since == 0)
				stall_since = t;
			if (t - stall_since > SEND_STALL_NS) {
				send_failed(s, err);
				i++;
				continue;
			}
			(void)poll(&pfd, 1, 10);
			continue;
		}
		/* Per-message errors (EMSGSIZE, unreachable) cost that message only. */
		send_failed(s, err);
		i++;
	}
	s->tx_n = 0;
}

static void
tx_add(struct sim *s, const uint8_t *buf, size_t len, enum origin o)
{
	uint8_t *slot;

	if (s->tx_n == BATCH)
		tx_flush(s);
	slot = s->tx_buf + s->tx_n * DGRAM_BUF;
	if (len > 0)
		memcpy(slot, buf, len);
	s->tx_iov[s->tx_n].iov_base = slot;
	s->tx_iov[s->tx_n].iov_len = len;
	s->tx_origin[s->tx_n] = o;
	s->tx_n++;
}

/* ---- the link: rate cap, reorder hold ---- */

/* An original that survived the models: to the rate FIFO or straight out. */
static void
link_out(struct sim *s, const uint8_t *buf, size_t len)
{
	uint64_t wire = len + DD_WIRE_OVERHEAD;

	if (s->o.rate_bps == 0) {
		tx_add(s, buf, len, ORIGINAL);
		return;
	}
	if (s->queued_wire + wire > s->o.queue_bytes ||
	    fifo_push(&s->queue, buf, (uint32_t)len, false) == NULL) {
		s->st.dropped_queue++;
		return;
	}
	s->queued_wire += wire;
}

static void
hold_release_front(struct sim *s)
{
	struct fifo_ent *e = fifo_front(&s->hold);

	for (int c = 0; c < e->copies; c++)
		link_out(s, fifo_data(&s->hold, e), e->len);
	fifo_pop(&s->hold);
}

/* Release the rate FIFO as far as the token bucket allows (all of it when force). */
static void
queue_release(struct sim *s, uint64_t now, bool force)
{
	struct fifo_ent *e;

	while ((e = fifo_front(&s->queue)) != NULL) {
		uint64_t wire = e->len + DD_WIRE_OVERHEAD;

		/* Send while there is any credit and let the bucket go into debt: the
		 * long-run rate is exact and a datagram never waits for a full bucket. */
		if (!force && dd_pace_available(&s->pace, now) == 0)
			break;
		tx_add(s, fifo_data(&s->queue, e), e->len, ORIGINAL);
		dd_pace_consume(&s->pace, wire);
		s->queued_wire -= wire;
		fifo_pop(&s->queue);
	}
}

/* ---- capture and replay files ---- */

static void
capture_append(struct sim *s, const uint8_t *buf, size_t len)
{
	uint8_t hdr[4];

	if (s->capture == NULL)
		return;
	dd_store_be32(hdr, (uint32_t)len);
	if (fwrite(hdr, 1, 4, s->capture) != 4 || fwrite(buf, 1, len, s->capture) != len) {
		dd_error("--capture %s: write failed: %s; capturing stopped (disk full?)",
			 s->o.capture, strerror(errno));
		(void)fclose(s->capture);
		s->capture = NULL;
	}
}

static void
replay_file_stop(struct sim *s, const char *why)
{
	dd_warn("--replay-file %s: %s; replays from this file stopped", s->o.replay_file, why);
	(void)fclose(s->replay);
	s->replay = NULL;
}

/* Next record of the replay file, starting over at its end; a short last record
 * counts as the end (the capture may have been cut while running). */
static int
replay_file_next(struct sim *s, uint8_t *buf, size_t *len)
{
	uint8_t hdr[4];
	char why[160];

	for (int pass = 0; pass < 2 && s->replay != NULL; pass++) {
		long at = ftell(s->replay);

		if (fread(hdr, 1, 4, s->replay) == 4) {
			uint32_t n = dd_load_be32(hdr);

			if (n > UDP_MAX) {
				snprintf(why, sizeof(why),
					 "record at offset %ld says %" PRIu32
					 " bytes, more than %u: not a capture file",
					 at, n, UDP_MAX);
				replay_file_stop(s, why);
				return -EBADMSG;
			}
			if (fread(buf, 1, n, s->replay) == n) {
				s->replay_pass_records++;
				*len = n;
				return 0;
			}
		}
		if (ferror(s->replay)) {
			snprintf(why, sizeof(why), "read failed: %s", strerror(errno));
			replay_file_stop(s, why);
			return -EIO;
		}
		if (s->replay_pass_records == 0) {
			replay_file_stop(s,
					 "no complete record (4-byte big-endian length + bytes)");
			return -ENODATA;
		}
		rewind(s->replay);
		s->replay_pass_records = 0;
	}
	return -ENODATA;
}

/* ---- injection ---- */

static void
inject_random(struct sim *s)
{
	uint64_t r = rng_next(&s->inject);
	uint8_t *p = s->scratch;
	size_t len;

	if (r & 1) {
		len = 1 + (size_t)((r >> 8) % 1500);
		rng_fill(&s->inject, p, len);
	} else {
		/* Looks like ours: version 1, announce (160 bytes) or sealed (the size
		 * of recent real datagrams); half of them carry a recent epoch and
		 * session so that they get as far as the AEAD check. */
		uint8_t type = (r >> 1) & 1 ? 1 : 2;

		len = type == 1 ? DD_ANNOUNCE_LEN :
				  (s->have_recent && s->recent_len >= 2 ? s->recent_len : 1472);
		rng_fill(&s->inject, p, len);
		p[0] = 1;
		p[1] = type;
		if ((r >> 2) & 1 && s->have_recent && len >= 8)
			memcpy(p + 2, s->recent_hdr + 2, 6);
	}
	tx_add(s, p, len, INJECTED_RANDOM);
}

static void
inject_replay(struct sim *s)
{
	uint64_t r = rng_next(&s->inject);
	bool from_file = s->replay != NULL && (s->ring.count == 0 || (r & 1));
	size_t len;

	if (from_file) {
		if (replay_file_next(s, s->scratch, &len) == 0)
			tx_add(s, s->scratch, len, INJECTED_REPLAY);
		return;
	}
	if (s->ring.count > 0) {
		const struct fifo_ent *e = fifo_at(&s->ring, (size_t)((r >> 1) % s->ring.count));

		tx_add(s, fifo_data(&s->ring, e), e->len, INJECTED_REPLAY);
	}
}

/* Run fn at rate per second on the schedule *next; never more than INJECT_PER_WAKE
 * at once, and a schedule more than a second late starts afresh. */
static void
inject_due(struct sim *s, double rate, uint64_t *next, uint64_t now, void (*fn)(struct sim *))
{
	uint64_t period;
	int k;

	if (rate <= 0)
		return;
	period = (uint64_t)((double)NS / rate);
	if (period == 0)
		period = 1;
	for (k = 0; k < INJECT_PER_WAKE && now >= *next; k++) {
		fn(s);
		*next += period;
	}
	if (now > *next + NS)
		*next = now + period;
}

/* ---- one received datagram through the models ---- */

static bool
in_window(const struct window *w, double t)
{
	return w->set && t >= w->start && t < w->end;
}

static void
flip_bits(uint8_t *buf, size_t len, uint64_t r)
{
	uint64_t bits = (uint64_t)len * 8, pos[3];
	int n = (int)(r >> 62) < 2 ? 1 : (int)(r >> 62); /* 1 bit half the time, else 2 or 3 */

	for (int k = 0; k < n; k++) {
		pos[k] = ((r >> (20 * k)) & 0xfffff) % bits;
		for (int j = 0; j < k; j++)
			if (pos[j] == pos[k])
				pos[k] = (pos[k] + 1) % bits;
		buf[pos[k] / 8] ^= (uint8_t)(1u << (pos[k] % 8));
	}
}

static void
handle_original(struct sim *s, uint8_t *buf, size_t len, uint64_t now)
{
	uint64_t r[DRAWS_PER_DGRAM];
	bool lossy;
	int copies = 1;
	double t;

	for (int i = 0; i < DRAWS_PER_DGRAM; i++)
		r[i] = rng_next(&s->link);
	s->st.received++;
	if (!s->started) {
		s->started = true;
		s->t0_ns = now;
	}
	t = (double)(now - s->t0_ns) / (double)NS;
	s->have_recent = true;
	s->recent_len = (uint32_t)len;
	memset(s->recent_hdr, 0, sizeof(s->recent_hdr));
	memcpy(s->recent_hdr, buf, len < 8 ? len : 8);

	/* The chain moves on every datagram, in the window or not, so that the
	 * decisions stay a function of the arrival index. */
	if (s->o.burst_loss > 0) {
		if (s->ge_bad)
			s->ge_bad = !(unit(r[1]) < s->p_bg);
		else
			s->ge_bad = unit(r[1]) < s->p_gb;
	}
	if (in_window(&s->o.blackout, t)) {
		s->st.dropped_blackout++;
		return;
	}
	lossy = !s->o.loss_window.set || in_window(&s->o.loss_window, t);
	if (lossy && s->ge_bad) {
		s->st.dropped_burst++;
		return;
	}
	if (lossy && unit(r[0]) < s->o.loss) {
		s->st.dropped_loss++;
		return;
	}

	capture_append(s, buf, len);
	if (s->o.inject_replay > 0)
		(void)fifo_push(&s->ring, buf, (uint32_t)len, true);

	if (len > 0 && unit(r[6]) < s->o.truncate) {
		len = (size_t)(r[7] % len);
		s->st.truncated++;
	}
	if (len > 0 && unit(r[4]) < s->o.corrupt) {
		flip_bits(buf, len, r[5]);
		s->st.corrupted++;
	}
	if (unit(r[3]) < s->o.duplicate) {
		copies = 2;
		s->st.duplicated++;
	}
	if (unit(r[2]) < s->o.reorder) {
		struct fifo_ent *e = fifo_push(&s->hold, buf, (uint32_t)len, false);

		/* A full hold lets the datagram through in order rather than lose it. */
		if (e != NULL) {
			e->due = s->emitted + s->o.reorder_delay;
			e->at_ns = now;
			e->copies = (uint8_t)copies;
			s->st.reordered++;
			return;
		}
	}
	for (int c = 0; c < copies; c++)
		link_out(s, buf, len);
	s->emitted++;
	while (s->hold.count > 0 && fifo_front(&s->hold)->due <= s->emitted)
		hold_release_front(s);
}

/* ---- event loop ---- */

static void
read_datagrams(struct sim *s)
{
	for (int round = 0; round < READS_PER_WAKE; round++) {
		int n;
		uint64_t now;

		for (int i = 0; i < BATCH; i++) {
			s->rx_iov[i].iov_base = s->rx_buf + (size_t)i * DGRAM_BUF;
			s->rx_iov[i].iov_len = DGRAM_BUF;
			s->rx_msg[i].msg_hdr.msg_iov = &s->rx_iov[i];
			s->rx_msg[i].msg_hdr.msg_iovlen = 1;
			s->rx_msg[i].msg_hdr.msg_name = NULL;
			s->rx_msg[i].msg_hdr.msg_namelen = 0;
			s->rx_msg[i].msg_hdr.msg_control = NULL;
			s->rx_msg[i].msg_hdr.msg_controllen = 0;
			s->rx_msg[i].msg_hdr.msg_flags = 0;
		}
		n = recvmmsg(s->in_fd, s->rx_msg, BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				dd_warn("receiving on --listen %s: %s", s->o.listen,
					strerror(errno));
			return;
		}
		now = now_ns();
		for (int i = 0; i < n; i++) {
			size_t len = s->rx_msg[i].msg_len;

			if (len > DGRAM_BUF)
				len = DGRAM_BUF;
			handle_original(s, s->rx_buf + (size_t)i * DGRAM_BUF, len, now);
		}
		if (s->o.rate_bps > 0)
			queue_release(s, now, false);
		tx_flush(s);
		if (n < BATCH)
			return;
	}
}

static void
service(struct sim *s, uint64_t now)
{
	while (s->hold.count > 0 && now - fifo_front(&s->hold)->at_ns >= HOLD_MAX_NS)
		hold_release_front(s);
	if (s->o.rate_bps > 0)
		queue_release(s, now, false);
	inject_due(s, s->o.inject_random, &s->next_random_ns, now, inject_random);
	inject_due(s, s->o.inject_replay, &s->next_replay_ns, now, inject_replay);
	tx_flush(s);
	if (now - s->tick_ns >= NS) {
		if (s->capture != NULL && fflush(s->capture) != 0) {
			dd_error("--capture %s: write failed: %s; capturing stopped", s->o.capture,
				 strerror(errno));
			(void)fclose(s->capture);
			s->capture = NULL;
		}
		s->tick_ns = now;
	}
}

static void
arm_timer(struct sim *s, uint64_t now)
{
	/* A tick at least every second for the capture flush. */
	uint64_t due = s->tick_ns + NS;
	struct itimerspec its;

	if (s->hold.count > 0 && fifo_front(&s->hold)->at_ns + HOLD_MAX_NS < due)
		due = fifo_front(&s->hold)->at_ns + HOLD_MAX_NS;
	if (s->queue.count > 0) {
		uint64_t w = now + dd_pace_wait_ns(&s->pace, 1);

		if (w < due)
			due = w;
	}
	if (s->o.inject_random > 0 && s->next_random_ns < due)
		due = s->next_random_ns;
	if (s->o.inject_replay > 0 && s->next_replay_ns < due)
		due = s->next_replay_ns;
	if (due <= now)
		due = now + 1;
	if (due == s->armed_ns)
		return; /* saves a system call per batch at high rates */
	s->armed_ns = due;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(due / NS);
	its.it_value.tv_nsec = (long)(due % NS);
	if (timerfd_settime(s->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		dd_error("timerfd_settime: %s", strerror(errno));
}

static void
read_signals(struct sim *s)
{
	struct signalfd_siginfo si;

	while (read(s->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1)
			stats_report(s, "statistics");
		else
			s->stop = true;
	}
}

static int
run(struct sim *s)
{
	struct epoll_event evs[4];
	uint64_t tick;

	while (!s->stop) {
		int n = epoll_wait(s->ep_fd, evs, 4, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			dd_error("epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == s->in_fd)
				read_datagrams(s);
			else if (fd == s->timer_fd)
				(void)!read(s->timer_fd, &tick, sizeof(tick));
			else if (fd == s->sig_fd)
				read_signals(s);
		}
		service(s, now_ns());
		arm_timer(s, now_ns());
	}
	/* Stopping: what is still held or queued goes out at once. */
	while (s->hold.count > 0)
		hold_release_front(s);
	queue_release(s, now_ns(), true);
	tx_flush(s);
	return 0;
}

/* ---- options ---- */

static void
usage(FILE *f)
{
	/* clang-format off */
	fprintf(f,
		"usage: linksim --listen HOST:PORT --forward HOST:PORT [options]\n"
		"A deterministic UDP link simulator: receives on --listen, sends what survives\n"
		"the models to --forward. HOST:PORT or [IPv6]:PORT.\n"
		"\n"
		"  --seed N                 PRNG seed (default 1); same seed and arrival order,\n"
		"                           same decisions\n"
		"  --loss P                 independent loss, probability 0..1\n"
		"  --burst-loss P --burst-len L\n"
		"                           Gilbert-Elliott loss: average loss P, mean burst L\n"
		"                           datagrams (L >= 1, P <= L/(L+1))\n"
		"  --loss-window START:END  apply --loss/--burst-loss only from START to END\n"
		"                           seconds after the first datagram (END may be inf)\n"
		"  --blackout START:END     drop everything in this window (seconds, as above)\n"
		"  --reorder P --reorder-delay N\n"
		"                           hold a datagram back with probability P, send it after\n"
		"                           N later ones (or 200 ms, whichever comes first)\n"
		"  --duplicate P            send a datagram twice\n"
		"  --corrupt P              flip 1 to 3 random bits\n"
		"  --truncate P             cut a datagram to a random shorter length (0..len-1)\n"
		"  --rate BITS --queue BYTES\n"
		"                           release at BITS/s (suffix k/M/G, counting payload + %d\n"
		"                           bytes per datagram) from a FIFO of at most BYTES wire\n"
		"                           bytes (suffix K/M/G = 1024-based, max 256M); tail drop\n"
		"  --inject-random R        inject R random datagrams per second (half of them\n"
		"                           with a header like ours)\n"
		"  --inject-replay R        inject R replays per second of earlier forwarded\n"
		"                           datagrams (ring of the last %u) and of --replay-file\n"
		"  --capture FILE           append every original datagram that got past the\n"
		"                           loss models to FILE, unmodified, in arrival order\n"
		"                           (4-byte big-endian length + bytes)\n"
		"  --replay-file FILE       a capture to replay from (needs --inject-replay)\n"
		"  --stats FILE             write key=value statistics there on exit and SIGUSR1\n"
		"  -h, --help               this text\n"
		"\n"
		"Stops on SIGTERM/SIGINT (sending at once what is still held or queued) and logs\n"
		"one line: received forwarded dropped_loss dropped_burst dropped_queue reordered\n"
		"duplicated corrupted truncated injected_random injected_replay dropped_blackout\n"
		"send_failed. forwarded counts duplicates too, so received + duplicated =\n"
		"forwarded + the dropped_* counters + send_failed. Injected datagrams skip the\n"
		"loss models and the rate cap; the ring and the replay file feed the replays.\n",
		DD_WIRE_OVERHEAD, RING_ENTRIES);
	/* clang-format on */
}

static void bad_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Say what is wrong with the command line and exit 2. */
static void
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("linksim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nrun 'linksim --help' for the accepted options\n", stderr);
	exit(2);
}

static double
parse_double(const char *opt, const char *text, double lo, double hi, const char *form)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(text, &end);
	if (end == text || *end != '\0' || errno != 0 || isnan(v) || v < lo || v > hi)
		bad_usage("%s '%s': expected %s", opt, text, form);
	return v;
}

static uint64_t
parse_uint(const char *opt, const char *text, uint64_t lo, uint64_t hi, const char *form)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (text[0] == '-' || text[0] == '\0')
		bad_usage("%s '%s': expected %s", opt, text, form);
	v = strtoull(text, &end, 0);
	if (*end != '\0' || errno != 0 || v < lo || v > hi)
		bad_usage("%s '%s': expected %s", opt, text, form);
	return v;
}

static struct window
parse_window(const char *opt, const char *text)
{
	struct window w = { .set = true };
	const char *form = "START:END in seconds since the first datagram, "
			   "0 <= START < END (e.g. 2:5 or 10:inf)";
	const char *second;
	char *end;

	errno = 0;
	w.start = strtod(text, &end);
	if (end == text || *end != ':' || errno != 0)
		bad_usage("%s '%s': expected %s", opt, text, form);
	second = end + 1;
	w.end = strtod(second, &end);
	if (end == second || *end != '\0' || errno != 0 || isnan(w.start) || isnan(w.end) ||
	    w.start < 0 || !(w.end > w.start) || isinf(w.start))
		bad_usage("%s '%s': expected %s", opt, text, form);
	return w;
}

#define PROB_FORM "a probability from 0 to 1 (e.g. 0.05)"

static void
parse_options(struct opts *o, int argc, char **argv)
{
	enum {
		O_LISTEN = 256,
		O_FORWARD,
		O_SEED,
		O_LOSS,
		O_BURST_LOSS,
		O_BURST_LEN,
		O_REORDER,
		O_REORDER_DELAY,
		O_DUPLICATE,
		O_CORRUPT,
		O_TRUNCATE,
		O_RATE,
		O_QUEUE,
		O_INJECT_RANDOM,
		O_INJECT_REPLAY,
		O_CAPTURE,
		O_REPLAY_FILE,
		O_LOSS_WINDOW,
		O_BLACKOUT,
		O_STATS,
	};
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "forward", required_argument, NULL, O_FORWARD },
		{ "seed", required_argument, NULL, O_SEED },
		{ "loss", required_argument, NULL, O_LOSS },
		{ "burst-loss", required_argument, NULL, O_BURST_LOSS },
		{ "burst-len", required_argument, NULL, O_BURST_LEN },
		{ "reorder", required_argument, NULL, O_REORDER },
		{ "reorder-delay", required_argument, NULL, O_REORDER_DELAY },
		{ "duplicate", required_argument, NULL, O_DUPLICATE },
		{ "corrupt", required_argument, NULL, O_CORRUPT },
		{ "truncate", required_argument, NULL, O_TRUNCATE },
		{ "rate", required_argument, NULL, O_RATE },
		{ "queue", required_argument, NULL, O_QUEUE },
		{ "inject-random", required_argument, NULL, O_INJECT_RANDOM },
		{ "inject-replay", required_argument, NULL, O_INJECT_REPLAY },
		{ "capture", required_argument, NULL, O_CAPTURE },
		{ "replay-file", required_argument, NULL, O_REPLAY_FILE },
		{ "loss-window", required_argument, NULL, O_LOSS_WINDOW },
		{ "blackout", required_argument, NULL, O_BLACKOUT },
		{ "stats", required_argument, NULL, O_STATS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->seed = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN:
			o->listen = optarg;
			break;
		case O_FORWARD:
			o->forward = optarg;
			break;
		case O_SEED:
			o->seed = parse_uint("--seed", optarg, 0, UINT64_MAX,
					     "an unsigned 64-bit integer");
			break;
		case O_LOSS:
			o->loss = parse_double("--loss", optarg, 0, 1, PROB_FORM);
			break;
		case O_BURST_LOSS:
			o->burst_loss = parse_double("--burst-loss", optarg, 0, 1, PROB_FORM);
			break;
		case O_BURST_LEN:
			o->burst_len = parse_double("--burst-len", optarg, 1, 1e9,
						    "a mean burst length >= 1 (datagrams)");
			o->burst_len_set = true;
			break;
		case O_REORDER:
			o->reorder = parse_double("--reorder", optarg, 0, 1, PROB_FORM);
			break;
		case O_REORDER_DELAY:
			o->reorder_delay = parse_uint("--reorder-delay", optarg, 1, 100000,
						      "a count of datagrams from 1 to 100000");
			o->reorder_delay_set = true;
			break;
		case O_DUPLICATE:
			o->duplicate = parse_double("--duplicate", optarg, 0, 1, PROB_FORM);
			break;
		case O_CORRUPT:
			o->corrupt = parse_double("--corrupt", optarg, 0, 1, PROB_FORM);
			break;
		case O_TRUNCATE:
			o->truncate = parse_double("--truncate", optarg, 0, 1, PROB_FORM);
			break;
		case O_RATE:
			if (dd_config_parse_rate(optarg, &o->rate_bps) < 0 || o->rate_bps < 1000 ||
			    o->rate_bps > UINT64_C(400000000000))
				bad_usage(
					"--rate '%s': expected bits per second from 1000 to 400G, "
					"suffix k/M/G (e.g. 100M)",
					optarg);
			break;
		case O_QUEUE:
			if (dd_config_parse_size(optarg, &o->queue_bytes) < 0 ||
			    o->queue_bytes < 1 || o->queue_bytes > QUEUE_MAX)
				bad_usage("--queue '%s': expected bytes from 1 to 256M, suffix "
					  "K/M/G = 1024-based (e.g. 256K)",
					  optarg);
			o->queue_set = true;
			break;
		case O_INJECT_RANDOM:
			o->inject_random = parse_double("--inject-random", optarg, 0, 1e6,
							"datagrams per second from 0 to 1000000");
			break;
		case O_INJECT_REPLAY:
			o->inject_replay = parse_double("--inject-replay", optarg, 0, 1e6,
							"datagrams per second from 0 to 1000000");
			break;
		case O_CAPTURE:
			o->capture = optarg;
			break;
		case O_REPLAY_FILE:
			o->replay_file = optarg;
			break;
		case O_LOSS_WINDOW:
			o->loss_window = parse_window("--loss-window", optarg);
			break;
		case O_BLACKOUT:
			o->blackout = parse_window("--blackout", optarg);
			break;
		case O_STATS:
			o->stats = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			bad_usage("%s needs a value", argv[optind - 1]);
		default:
			bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s' (every setting is an --option)", argv[optind]);
	if (o->listen == NULL || o->forward == NULL)
		bad_usage("--listen HOST:PORT and --forward HOST:PORT are both required");
	if (o->burst_loss > 0 && !o->burst_len_set)
		bad_usage("--burst-loss needs --burst-len L (mean burst length in datagrams)");
	if (o->burst_loss >= 1 ||
	    (o->burst_loss > 0 && o->burst_loss / (o->burst_len * (1 - o->burst_loss)) > 1))
		bad_usage("--burst-loss %g with --burst-len %g is impossible: the average loss "
			  "can be at most L/(L+1) = %g",
			  o->burst_loss, o->burst_len, o->burst_len / (o->burst_len + 1));
	if (o->reorder > 0 && !o->reorder_delay_set)
		bad_usage("--reorder needs --reorder-delay N (datagrams to hold back for)");
	if ((o->rate_bps > 0) != o->queue_set)
		bad_usage("--rate BITS and --queue BYTES go together (e.g. --rate 100M "
			  "--queue 256K)");
	if (o->queue_set && o->queue_bytes < (uint64_t)1472 + DD_WIRE_OVERHEAD)
		fprintf(stderr,
			"linksim: note: --queue %" PRIu64 " is smaller than a 1472-byte "
			"datagram (%d wire bytes); those will all be dropped\n",
			o->queue_bytes, 1472 + DD_WIRE_OVERHEAD);
	if (o->replay_file != NULL && o->inject_replay == 0)
		bad_usage("--replay-file needs --inject-replay R (replays per second)");
	if (o->loss_window.set && o->loss == 0 && o->burst_loss == 0)
		bad_usage("--loss-window has nothing to apply: add --loss P or --burst-loss P");
}

/* ---- set-up ---- */

static int
open_files(struct sim *s)
{
	if (s->o.capture != NULL) {
		int fd = open(s->o.capture, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

		if (fd < 0 || (s->capture = fdopen(fd, "a")) == NULL) {
			dd_error("--capture %s: cannot open for appending: %s", s->o.capture,
				 strerror(errno));
			if (fd >= 0)
				close(fd);
			return -EIO;
		}
		(void)setvbuf(s->capture, NULL, _IOFBF, 1 << 20);
	}
	if (s->o.replay_file != NULL) {
		s->replay = fopen(s->o.replay_file, "rbe");
		if (s->replay == NULL) {
			dd_error("--replay-file %s: cannot open: %s", s->o.replay_file,
				 strerror(errno));
			return -EIO;
		}
	}
	return 0;
}

static int
open_sockets(struct sim *s)
{
	struct dd_addr from;
	struct epoll_event ev;
	sigset_t mask;
	uint64_t granted;
	char err[256];

	if (dd_net_resolve(s->o.listen, &from, err, sizeof(err)) < 0) {
		dd_error("--listen %s", err);
		return -EINVAL;
	}
	if (dd_net_resolve(s->o.forward, &s->to, err, sizeof(err)) < 0) {
		dd_error("--forward %s", err);
		return -EINVAL;
	}
	s->in_fd = dd_net_udp_receiver(&from, RCVBUF_WANT, &granted, err, sizeof(err));
	if (s->in_fd < 0) {
		dd_error("--listen: %s", err);
		return -EIO;
	}
	if (granted < RCVBUF_WANT)
		dd_warn("--listen %s: receive buffer %" PRIu64 " bytes instead of %u; raise "
			"net.core.rmem_max (sysctl -w net.core.rmem_max=%u) or run as root",
			s->o.listen, granted, RCVBUF_WANT, RCVBUF_WANT);
	s->out_fd = dd_net_udp_sender(&s->to, SNDBUF_WANT, &granted, err, sizeof(err));
	if (s->out_fd < 0) {
		dd_error("--forward: %s", err);
		return -EIO;
	}
	for (int i = 0; i < BATCH; i++) {
		s->tx_msg[i].msg_hdr.msg_name = &s->to.ss;
		s->tx_msg[i].msg_hdr.msg_namelen = s->to.len;
		s->tx_msg[i].msg_hdr.msg_iov = &s->tx_iov[i];
		s->tx_msg[i].msg_hdr.msg_iovlen = 1;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (s->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    (s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    (s->ep_fd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		dd_error("event loop set-up: %s", strerror(errno));
		return -errno;
	}
	int fds[3] = { s->in_fd, s->timer_fd, s->sig_fd };
	for (int i = 0; i < 3; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.fd = fds[i];
		if (epoll_ctl(s->ep_fd, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
			dd_error("epoll_ctl: %s", strerror(errno));
			return -errno;
		}
	}
	/* Timer wake-ups on time matter for the rate cap. */
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	return 0;
}

static int
sim_init(struct sim *s)
{
	uint64_t now = now_ns();

	s->in_fd = s->out_fd = s->timer_fd = s->sig_fd = s->ep_fd = -1;
	rng_seed(&s->link, s->o.seed, 1);
	rng_seed(&s->inject, s->o.seed, 2);
	if (s->o.burst_loss > 0) {
		s->p_bg = 1.0 / s->o.burst_len;
		s->p_gb = s->o.burst_loss * s->p_bg / (1.0 - s->o.burst_loss);
		/* Start in the stationary distribution. */
		s->ge_bad = unit(rng_next(&s->link)) < s->o.burst_loss;
	}
	s->send_rl.interval_ms = 1000;
	s->rx_buf = malloc((size_t)BATCH * DGRAM_BUF);
	s->tx_buf = malloc((size_t)BATCH * DGRAM_BUF);
	s->scratch = malloc(DGRAM_BUF);
	if (s->rx_buf == NULL || s->tx_buf == NULL || s->scratch == NULL)
		goto nomem;
	if (s->o.reorder > 0 && fifo_init(&s->hold, HOLD_BYTES, HOLD_ENTRIES) < 0)
		goto nomem;
	if (s->o.inject_replay > 0 && fifo_init(&s->ring, RING_BYTES, RING_ENTRIES) < 0)
		goto nomem;
	if (s->o.rate_bps > 0) {
		/* Stored bytes never exceed the wire bytes; the slack is for the wrap. */
		if (fifo_init(&s->queue, s->o.queue_bytes + DGRAM_BUF,
			      (size_t)(s->o.queue_bytes / DD_WIRE_OVERHEAD) + 1) < 0)
			goto nomem;
		/* A bucket of 1 ms of traffic: short bursts only, exact long-run rate. */
		dd_pace_init(&s->pace, s->o.rate_bps, s->o.rate_bps / 8000 + 1, now);
	}
	s->next_random_ns =
		now + (s->o.inject_random > 0 ? (uint64_t)(NS / s->o.inject_random) : 0);
	s->next_replay_ns =
		now + (s->o.inject_replay > 0 ? (uint64_t)(NS / s->o.inject_replay) : 0);
	s->tick_ns = now;
	return 0;
nomem:
	dd_error("out of memory for the buffers (about %u MB are needed)", 48);
	return -ENOMEM;
}

static void
sim_free(struct sim *s)
{
	if (s->capture != NULL && fclose(s->capture) != 0)
		dd_error("--capture %s: write failed at close: %s", s->o.capture, strerror(errno));
	if (s->replay != NULL)
		fclose(s->replay);
	fifo_free(&s->hold);
	fifo_free(&s->ring);
	fifo_free(&s->queue);
	free(s->rx_buf);
	free(s->tx_buf);
	free(s->scratch);
	int fds[5] = { s->in_fd, s->out_fd, s->timer_fd, s->sig_fd, s->ep_fd };
	for (int i = 0; i < 5; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void
describe(const struct sim *s)
{
	char line[1024];
	size_t n = 0;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		int m_ = snprintf(line + n, sizeof(line) - n, __VA_ARGS__);                        \
		if (m_ > 0 && (size_t)m_ < sizeof(line) - n)                                       \
			n += (size_t)m_;                                                           \
	} while (0)
	ADD("%s -> %s, seed %" PRIu64, s->o.listen, s->o.forward, s->o.seed);
	if (s->o.loss > 0)
		ADD(", loss %g", s->o.loss);
	if (s->o.burst_loss > 0)
		ADD(", burst loss %g (mean burst %g; p(good->bad) %.6f, p(bad->good) %.6f)",
		    s->o.burst_loss, s->o.burst_len, s->p_gb, s->p_bg);
	if (s->o.loss_window.set)
		ADD(", loss window %g..%g s", s->o.loss_window.start, s->o.loss_window.end);
	if (s->o.blackout.set)
		ADD(", blackout %g..%g s", s->o.blackout.start, s->o.blackout.end);
	if (s->o.reorder > 0)
		ADD(", reorder %g by %" PRIu64, s->o.reorder, s->o.reorder_delay);
	if (s->o.duplicate > 0)
		ADD(", duplicate %g", s->o.duplicate);
	if (s->o.corrupt > 0)
		ADD(", corrupt %g", s->o.corrupt);
	if (s->o.truncate > 0)
		ADD(", truncate %g", s->o.truncate);
	if (s->o.rate_bps > 0)
		ADD(", rate %" PRIu64 " b/s, queue %" PRIu64 " B", s->o.rate_bps, s->o.queue_bytes);
	if (s->o.inject_random > 0)
		ADD(", inject random %g/s", s->o.inject_random);
	if (s->o.inject_replay > 0)
		ADD(", inject replay %g/s", s->o.inject_replay);
#undef ADD
	dd_notice("%s", line);
}

int
main(int argc, char **argv)
{
	struct sim *s = calloc(1, sizeof(*s));
	int rc = 1;

	if (s == NULL) {
		fputs("linksim: out of memory\n", stderr);
		return 1;
	}
	dd_log_init("linksim", DD_LOG_INFO);
	parse_options(&s->o, argc, argv);
	if (sim_init(s) < 0 || open_files(s) < 0 || open_sockets(s) < 0)
		goto out;
	describe(s);
	arm_timer(s, now_ns());
	if (run(s) == 0)
		rc = 0;
	stats_report(s, "stopped");
out:
	sim_free(s);
	free(s);
	return rc;
}
