/* Sender: paces, numbers, seals and batches datagrams onto the UDP socket (sendmmsg, UDP GSO). */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "log.h"
#include "tx.h"

#define MAX_BATCHES_PER_TICK 16 /* of TX_SEND_BATCH: then let the loop breathe */

static struct dd_ratelimit send_error_rl = { .interval_ms = 10000 };

bool
sender_idle(const struct tx *tx)
{
	return ring_used(&tx->ctrl) == 0 && ring_used(&tx->stream) == 0 &&
	       ring_used(&tx->data) == 0 && tx->batch_pos == tx->batch_len;
}

struct ring *
sender_ring(struct tx *tx, enum tx_ring_id id)
{
	return id == TX_RING_CTRL ? &tx->ctrl : id == TX_RING_STREAM ? &tx->stream : &tx->data;
}

uint8_t *
sender_ctrl_plain(struct tx *tx, struct tx_transfer *last_of)
{
	uint32_t idx;
	struct slot_meta *meta;

	if (ring_free_slots(&tx->ctrl) == 0)
		return NULL;
	idx = tx->ctrl.head++;
	meta = ring_meta(&tx->ctrl, idx);
	meta->kind = SLOT_SEALED;
	meta->last_of = last_of;
	memset(ring_slot(&tx->ctrl, idx) + DD_HDR_LEN, 0, tx->plain_len);
	sender_kick(tx);
	return ring_slot(&tx->ctrl, idx) + DD_HDR_LEN;
}

int
sender_queue_announce(struct tx *tx, bool next)
{
	uint32_t idx;

	if (ring_free_slots(&tx->ctrl) == 0)
		return -ENOBUFS;
	idx = tx->ctrl.head++;
	ring_meta(&tx->ctrl, idx)->kind = next ? SLOT_ANNOUNCE_NEXT : SLOT_ANNOUNCE;
	ring_meta(&tx->ctrl, idx)->last_of = NULL;
	sender_kick(tx);
	return 0;
}

int
sender_queue_beacon(struct tx *tx)
{
	struct dd_beacon b;
	size_t cap = dd_wire_beacon_capacity(tx->plain_len);
	uint8_t *plain;

	memset(&b, 0, sizeof(b));
	b.interval_ms = 1000;
	b.time_ms = dd_now_ms();
	b.datagrams = tx->datagrams_sent;
	b.bytes = tx->bytes_sent;
	b.files_queued = spool_queued(tx->spool);
	b.transfers_active = tx->nactive;
	b.transfers_done = (uint32_t)(tx->files_sent + tx->files_abandoned);
	b.complete_below = sched_complete_below(tx);
	for (int l = 0; l < 2; l++)
		for (struct tx_transfer *t = l == 0 ? tx->active : tx->waiting;
		     t != NULL && b.count < cap; t = t->next)
			b.entries[b.count++] = (struct dd_beacon_entry){
				.transfer = t->id, .status = DD_XFER_SENDING,
				.pass = (uint8_t)t->pass, .size = t->size,
			};
	for (unsigned i = 0; i < tx->nrecent && b.count < cap; i++) {
		const struct tx_recent *r =
			&tx->recent[(tx->recent_head + TX_RECENT_MAX - 1 - i) % TX_RECENT_MAX];

		b.entries[b.count++] = (struct dd_beacon_entry){
			.transfer = r->transfer, .status = r->status, .size = r->size,
			.last_seq = r->last_seq,
		};
	}
	plain = sender_ctrl_plain(tx, NULL);
	if (plain == NULL)
		return -ENOBUFS;
	return dd_wire_put_beacon(plain, tx->plain_len, &b) < 0 ? -ENOSPC : 0;
}

/* Destination of the next datagram of ring id: control datagrams go to every
 * destination (a lost link must not starve announces, beacons or manifests;
 * the receiver's replay window drops the copies), data and stream datagrams
 * round-robin, one run of up to a GSO message per destination. */
static uint8_t
next_dest(struct tx *tx, enum tx_ring_id id)
{
	uint8_t d;

	if (tx->set.ndest <= 1)
		return 0;
	if (id == TX_RING_CTRL)
		return TX_DEST_ALL;
	d = (uint8_t)tx->dest_next;
	if (++tx->dest_run >= tx->set.burst) {
		tx->dest_run = 0;
		tx->dest_next = (tx->dest_next + 1) % tx->set.ndest;
	}
	return d;
}

/* Take the next slot (control first, then stream blocks, then file data) and
 * make it a wire datagram. */
static bool
build_next(struct tx *tx, uint64_t *avail)
{
	struct ring *r = NULL;
	enum tx_ring_id id;
	uint32_t idx = 0;
	struct slot_meta *meta;
	uint8_t *buf;
	size_t len;
	uint64_t cost;
	unsigned n = tx->batch_len;

	if (n == TX_SEND_BATCH)
		return false;
	/* Slots are consumed in ring order; skip what is already in the batch. */
	for (id = TX_RING_CTRL; id < TX_RINGS; id++) {
		r = sender_ring(tx, id);
		idx = r->tail + tx->batch_in_ring[id];
		if (idx != r->head)
			break;
	}
	if (id == TX_RINGS)
		return false;
	meta = ring_meta(r, idx);
	len = meta->kind == SLOT_SEALED ? tx->set.dgram_size : DD_ANNOUNCE_LEN;
	cost = (len + DD_WIRE_OVERHEAD) * (id == TX_RING_CTRL ? tx->set.ndest : 1);
	if (*avail < cost)
		return false;
	buf = ring_slot(r, idx);
	tx->batch_seal[n] = meta->kind == SLOT_SEALED;
	if (meta->kind == SLOT_SEALED) {
		++tx->seq; /* sealed with this number by seal_batch() */
	} else {
		dd_crypto_tx_announce(tx->crypto, meta->kind == SLOT_ANNOUNCE_NEXT, ++tx->seq,
				      tx->announce_buf[n]);
		buf = tx->announce_buf[n];
	}
	tx->iovs[n] = (struct iovec){ buf, len };
	tx->batch_seq[n] = tx->seq;
	tx->batch_ring[n] = (uint8_t)id;
	tx->batch_dest[n] = next_dest(tx, id);
	tx->batch_in_ring[id]++;
	tx->batch_len = n + 1;
	*avail -= cost;
	dd_pace_consume(&tx->pace, cost);
	return true;
}

/* ------------------------------------------------------------- sealing */

/*
 * Sealing (AES-GCM over every datagram) is most of diode-tx's work. With
 * [link] workers = n, a batch is cut into n + 1 parts: the loop thread seals
 * one, each worker another, and the loop waits for all before sending.
 * Numbers are given on the loop thread (build_next), in order, before; a
 * worker only seals slots already numbered, so nonces stay unique. The
 * session keys change only on the loop thread, between batches.
 */
#define SEAL_MIN_PER_THREAD 8 /* smaller batches are sealed on the loop thread */

struct sealer {
	pthread_t thread;
	struct tx *tx;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned from, to;    /* batch positions to seal */
	uint64_t posted, done;
	bool quit;
};

struct tx_sealers {
	unsigned n;
	struct sealer s[];
};

static void
seal_range(struct tx *tx, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++)
		if (tx->batch_seal[i]) {
			dd_crypto_tx_seal(tx->crypto, tx->batch_seq[i], tx->iovs[i].iov_base,
					  tx->iovs[i].iov_len);
			tx->batch_seal[i] = 0;
		}
}

static void *
sealer_main(void *arg)
{
	struct sealer *w = arg;
	uint64_t seen = 0;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->posted == seen && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->quit)
			break;
		seen = w->posted;
		pthread_mutex_unlock(&w->mu);
		seal_range(w->tx, w->from, w->to);
		pthread_mutex_lock(&w->mu);
		w->done = seen;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Seal the batch positions [from, to): split across the workers when there
 * is enough to share. */
static void
seal_batch(struct tx *tx, unsigned from, unsigned to)
{
	struct tx_sealers *ws = tx->sealers;
	unsigned parts, per, pos;

	if (ws == NULL || to - from < 2 * SEAL_MIN_PER_THREAD) {
		seal_range(tx, from, to);
		return;
	}
	parts = (to - from) / SEAL_MIN_PER_THREAD;
	if (parts > ws->n + 1)
		parts = ws->n + 1;
	per = (to - from + parts - 1) / parts;
	pos = from + per; /* the loop thread's share: [from, from + per) */
	for (unsigned i = 0; i + 1 < parts; i++) {
		struct sealer *w = &ws->s[i];

		pthread_mutex_lock(&w->mu);
		w->from = pos;
		w->to = pos + per < to ? pos + per : to;
		w->posted++;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pos = w->to;
	}
	seal_range(tx, from, from + per);
	for (unsigned i = 0; i + 1 < parts; i++) {
		struct sealer *w = &ws->s[i];

		pthread_mutex_lock(&w->mu);
		while (w->done != w->posted)
			pthread_cond_wait(&w->cv, &w->mu);
		pthread_mutex_unlock(&w->mu);
	}
}

void
sender_start_workers(struct tx *tx)
{
	struct tx_sealers *ws;
	unsigned n = tx->set.workers;

	if (n == 0)
		return;
	ws = calloc(1, sizeof(*ws) + n * sizeof(ws->s[0]));
	if (ws == NULL) {
		dd_warn("[link] workers: out of memory; sealing on the event loop thread");
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		struct sealer *w = &ws->s[i];
		int rc;

		w->tx = tx;
		pthread_mutex_init(&w->mu, NULL);
		pthread_cond_init(&w->cv, NULL);
		rc = pthread_create(&w->thread, NULL, sealer_main, w);
		if (rc != 0) {
			pthread_mutex_destroy(&w->mu);
			pthread_cond_destroy(&w->cv);
			dd_warn("[link] workers: thread %u of %u cannot start (%s); going on with %u",
				i + 1, n, strerror(rc), i);
			break;
		}
		ws->n++;
	}
	if (ws->n == 0) {
		free(ws);
		return;
	}
	tx->sealers = ws;
}

void
sender_stop_workers(struct tx *tx)
{
	struct tx_sealers *ws = tx->sealers;

	if (ws == NULL)
		return;
	for (unsigned i = 0; i < ws->n; i++) {
		struct sealer *w = &ws->s[i];

		pthread_mutex_lock(&w->mu);
		w->quit = true;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
	}
	free(ws);
	tx->sealers = NULL;
}

/* ------------------------------------------------------------ messages */

/* One message of the next sendmmsg: datagrams [first, first + count) to
 * destination dest; GSO when count > 1. completes: the datagrams are done
 * once the kernel took this message (false for all but the last copy of a
 * control datagram). */
static void
add_msg(struct tx *tx, unsigned m, unsigned first, unsigned count, unsigned dest, bool completes)
{
	struct msghdr *h = &tx->msgs[m].msg_hdr;

	memset(&tx->msgs[m], 0, sizeof(tx->msgs[m]));
	h->msg_name = &tx->set.destination[dest].ss;
	h->msg_namelen = tx->set.destination[dest].len;
	h->msg_iov = &tx->iovs[first];
	h->msg_iovlen = count;
	if (count > 1) {
		struct cmsghdr *c;
		uint16_t seg = (uint16_t)tx->set.dgram_size;

		h->msg_control = tx->msg_ctl[m].buf;
		h->msg_controllen = sizeof(tx->msg_ctl[m].buf);
		c = CMSG_FIRSTHDR(h);
		c->cmsg_level = SOL_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(seg));
		memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	}
	tx->msg_ndgram[m] = completes ? (uint16_t)count : 0;
}

/* Group the batch from batch_pos into messages: runs of full-size datagrams
 * to one destination become one GSO message (at most gso_segs), the rest one
 * message per datagram and destination. Returns the number of messages. */
static unsigned
build_msgs(struct tx *tx)
{
	unsigned m = 0, i = tx->batch_pos;

	while (i < tx->batch_len && m < TX_SEND_MSGS) {
		unsigned dest = tx->batch_dest[i], run = 1;

		if (dest == TX_DEST_ALL) {
			if (m + tx->set.ndest > TX_SEND_MSGS)
				break;
			for (unsigned d = 0; d < tx->set.ndest; d++)
				add_msg(tx, m++, i, 1, d, d + 1 == tx->set.ndest);
			i++;
			continue;
		}
		if (tx->gso_segs > 1 && tx->iovs[i].iov_len == tx->set.dgram_size)
			while (i + run < tx->batch_len && run < tx->gso_segs &&
			       tx->batch_dest[i + run] == dest &&
			       tx->iovs[i + run].iov_len == tx->set.dgram_size)
				run++;
		add_msg(tx, m++, i, run, dest, true);
		i += run;
	}
	return m;
}

/* The kernel took the datagram at batch position i. */
static void
complete(struct tx *tx, unsigned i)
{
	struct ring *r = sender_ring(tx, (enum tx_ring_id)tx->batch_ring[i]);
	struct slot_meta *meta = ring_meta(r, r->tail);
	uint64_t seq = tx->batch_seq[i];
	unsigned copies = tx->batch_dest[i] == TX_DEST_ALL ? tx->set.ndest : 1;

	tx->datagrams_sent++;
	tx->bytes_sent += (tx->iovs[i].iov_len + DD_WIRE_OVERHEAD) * copies;
	tx->batch_in_ring[tx->batch_ring[i]]--;
	r->tail++;
	if (meta->last_of != NULL) {
		struct tx_transfer *t = meta->last_of;

		meta->last_of = NULL;
		sched_on_last_sent(tx, t, seq);
	}
	if (meta->block_of != NULL) {
		struct tx_channel *ch = meta->block_of;

		meta->block_of = NULL;
		channels_block_sent(tx, ch, meta->block_next_seq);
	}
}

/* The kernel refused a GSO message as a whole (no checksum offload on the
 * route's device, an IPsec policy, a too small MTU, an old kernel): send
 * datagram by datagram from now on. */
static bool
gso_refused(struct tx *tx, int err)
{
	if (tx->gso_segs < 2 || tx->msgs[0].msg_hdr.msg_iovlen < 2)
		return false;
	if (err != EIO && err != EINVAL && err != EMSGSIZE && err != EOPNOTSUPP &&
	    err != ENOPROTOOPT)
		return false;
	tx->gso_segs = 1;
	dd_notice("UDP GSO refused by the kernel (%s) after %llu GSO sends; sending one "
		  "datagram per message from now on (slower; set [link] gso = no to skip "
		  "the attempt)", strerror(err), (unsigned long long)tx->gso_messages);
	return true;
}

static void
on_pace(uv_timer_t *timer);
static void
on_pace_fd(uv_poll_t *poll, int status, int events);

/* Wake up in delay_ns: the loop's timer for 0 (next iteration) and for long
 * waits, the timerfd for fine ones (libuv timers have 1 ms resolution). */
static void
arm(struct tx *tx, uint64_t delay_ns)
{
	if (tx->pace_fd >= 0 && delay_ns > 0 && delay_ns < 2000000) {
		struct itimerspec its = { .it_value = { 0, (long)delay_ns } };

		if (timerfd_settime(tx->pace_fd, 0, &its, NULL) == 0) {
			tx->pace_armed = true;
			return;
		}
	}
	uv_timer_start(&tx->pace_timer, on_pace,
		       delay_ns == 0 ? 0 : delay_ns < 1000000 ? 1 : delay_ns / 1000000, 0);
	tx->pace_armed = true;
}

/* Bytes worth waking up for: half the bucket (at least one datagram), so a
 * late wake-up still finds room before the bucket overflows. */
static uint64_t
pace_want(const struct tx *tx)
{
	uint64_t dgram = tx->set.dgram_size + DD_WIRE_OVERHEAD;

	return tx->pace.burst_bytes / 2 > dgram ? tx->pace.burst_bytes / 2 : dgram;
}

static void
send_some(struct tx *tx)
{
	for (unsigned round = 0; round < MAX_BATCHES_PER_TICK; round++) {
		unsigned nmsg, done = 0;
		int n;

		if (tx->batch_pos == tx->batch_len) {
			uint64_t avail = dd_pace_refill(&tx->pace, uv_hrtime(),
							tx->pace_backlog ? tx->pace_catchup : 0);

			/* Later rounds only for a worthwhile batch: a trickle of
			 * tokens is better sent with the next wake-up. */
			if (round > 0 && avail < pace_want(tx))
				break;
			tx->batch_pos = tx->batch_len = 0;
			while (build_next(tx, &avail))
				;
			if (tx->batch_len == 0)
				break;
			seal_batch(tx, 0, tx->batch_len);
		}
		nmsg = build_msgs(tx);
		n = sendmmsg(tx->sock, tx->msgs, nmsg, 0);
		if (n < 0) {
			uint64_t suppressed;
			int err = errno;

			if (err == EAGAIN || err == ENOBUFS || err == EINTR)
				break;
			if (gso_refused(tx, err))
				continue;
			/* A datagram the kernel refused has not left: keep it and try again
			 * later, so no file is retired before it really went out. */
			tx->send_errors++;
			tx->send_blocked = true;
			if (dd_ratelimit_ok(&send_error_rl, dd_mono_ms(), &suppressed))
				dd_error("sending to the diode link fails: %s (%llu more like it not "
					 "shown); retrying; check [link] destination, the route and "
					 "datagram_size against the MTU", strerror(err),
					 (unsigned long long)suppressed);
			break;
		}
		tx->send_blocked = false;
		for (int i = 0; i < n; i++) {
			if (tx->msgs[i].msg_hdr.msg_iovlen > 1)
				tx->gso_messages++;
			done += tx->msg_ndgram[i];
		}
		for (unsigned i = 0; i < done; i++)
			complete(tx, tx->batch_pos++);
		channels_fill(tx);
		sched_fill(tx);
	}
}

/* Pace again: wake up when pace_want() bytes are back. */
static void
after_send(struct tx *tx)
{
	uint64_t dgram = tx->set.dgram_size + DD_WIRE_OVERHEAD;
	uint64_t want = pace_want(tx);
	uint64_t wait_ns;

	tx->pace_backlog = !sender_idle(tx);
	if (!tx->pace_backlog)
		return;
	if (tx->send_blocked) {
		arm(tx, 100000000);
		return;
	}
	wait_ns = dd_pace_wait_ns(&tx->pace, want);
	if (tx->batch_pos != tx->batch_len || wait_ns == 0) {
		/* The kernel was full (EAGAIN), or the bucket is: try soon. */
		wait_ns = dd_pace_wait_ns(&tx->pace, dgram);
		if (wait_ns < 20000)
			wait_ns = 20000;
	}
	arm(tx, wait_ns);
}

/* A pacing wake-up. Kicks from inside (the scheduler refilling the ring)
 * arm nothing while it runs: after_send() decides the next wake-up. */
static void
pace_tick(struct tx *tx)
{
	tx->pace_armed = true;
	send_some(tx);
	tx->pace_armed = false;
	after_send(tx);
}

static void
on_pace(uv_timer_t *timer)
{
	pace_tick(timer->data);
}

static void
on_pace_fd(uv_poll_t *poll, int status, int events)
{
	struct tx *tx = poll->data;
	uint64_t expirations;

	(void)status;
	(void)events;
	if (read(tx->pace_fd, &expirations, sizeof(expirations)) < 0)
		return; /* not armed or not yet: spurious */
	pace_tick(tx);
}

void
sender_kick(struct tx *tx)
{
	if (!tx->pace_armed)
		arm(tx, 0);
}

int
sender_init(struct tx *tx)
{
	uint64_t depth, dgram = tx->set.dgram_size + DD_WIRE_OVERHEAD;
	int val = 0;
	socklen_t len = sizeof(val);

	uv_timer_init(tx->loop, &tx->pace_timer);
	tx->pace_timer.data = tx;
	tx->pace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	/* The timerfd stays polled: it is readable only once armed and expired. */
	if (tx->pace_fd >= 0 && (uv_poll_init(tx->loop, &tx->pace_poll, tx->pace_fd) != 0 ||
				 uv_poll_start(&tx->pace_poll, UV_READABLE, on_pace_fd) != 0)) {
		close(tx->pace_fd);
		tx->pace_fd = -1;
	}
	if (tx->pace_fd < 0)
		dd_warn("no timerfd (%s): pacing with 1 ms timers, less even at high rates",
			strerror(errno));
	else
		tx->pace_poll.data = tx;

	/* GSO: runs of equal datagrams, at most burst, 64 KiB (the IP length)
	 * and the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.9). */
	tx->gso_segs = 1;
	if (tx->set.gso && getsockopt(tx->sock, SOL_UDP, UDP_SEGMENT, &val, &len) == 0) {
		tx->gso_segs = 65000u / tx->set.dgram_size;
		if (tx->gso_segs > 64)
			tx->gso_segs = 64;
		if (tx->gso_segs > tx->set.burst)
			tx->gso_segs = tx->set.burst;
	} else if (tx->set.gso) {
		dd_notice("UDP GSO not available (%s): one datagram per message", strerror(errno));
	}

	/* Bucket depth: one burst, every control copy included. */
	depth = (uint64_t)tx->set.burst * dgram;
	if (depth < dgram * tx->set.ndest)
		depth = dgram * tx->set.ndest;
	dd_pace_init(&tx->pace, tx->set.rate_bps, depth, uv_hrtime());
	/* What a busy sender may make up after a stall: 4 ms at the rate. */
	tx->pace_catchup = tx->set.rate_bps / 8 / 250;
	return 0;
}

void
sender_drop_data(struct tx *tx)
{
	unsigned w = tx->batch_pos;

	/* Sealed control and stream datagrams must still leave as they are:
	 * sealing is in place, so they cannot be rebuilt, and stream records are
	 * numbered already. File data is simply dropped. */
	for (unsigned i = tx->batch_pos; i < tx->batch_len; i++) {
		if (tx->batch_ring[i] == TX_RING_DATA)
			continue;
		tx->iovs[w] = tx->iovs[i];
		tx->batch_ring[w] = tx->batch_ring[i];
		tx->batch_seq[w] = tx->batch_seq[i];
		tx->batch_dest[w] = tx->batch_dest[i];
		tx->batch_seal[w] = tx->batch_seal[i];
		w++;
	}
	tx->batch_len = w;
	tx->batch_in_ring[TX_RING_DATA] = 0;
	tx->data.tail = tx->data.head;
}
