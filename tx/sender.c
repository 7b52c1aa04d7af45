/* Sender: paces, numbers, seals and batches datagrams onto the UDP socket (sendmmsg). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "tx.h"

#define MAX_BATCHES_PER_TICK 64

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
	unsigned n = tx->batch_len;

	if (n == TX_SEND_BATCH)
		return false;
	/* Slots are consumed in ring order; skip what is already in the batch. */
	for (id = TX_RING_CTRL; id < TX_RINGS; id++) {
		r = sender_ring(tx, id);
		if (ring_used(r) == 0)
			continue;
		idx = r->tail;
		for (unsigned i = tx->batch_pos; i < n; i++)
			if (tx->batch_ring[i] == id)
				idx++;
		if (idx != r->head)
			break;
	}
	if (id == TX_RINGS)
		return false;
	meta = ring_meta(r, idx);
	len = meta->kind == SLOT_SEALED ? tx->set.dgram_size : DD_ANNOUNCE_LEN;
	if (*avail < len + DD_WIRE_OVERHEAD)
		return false;
	buf = ring_slot(r, idx);
	if (meta->kind == SLOT_SEALED) {
		dd_crypto_tx_seal(tx->crypto, ++tx->seq, buf, len);
	} else {
		dd_crypto_tx_announce(tx->crypto, meta->kind == SLOT_ANNOUNCE_NEXT, ++tx->seq,
				      tx->announce_buf[n]);
		buf = tx->announce_buf[n];
	}
	tx->iovs[n] = (struct iovec){ buf, len };
	memset(&tx->msgs[n], 0, sizeof(tx->msgs[n]));
	tx->msgs[n].msg_hdr.msg_name = &tx->set.destination.ss;
	tx->msgs[n].msg_hdr.msg_namelen = tx->set.destination.len;
	tx->msgs[n].msg_hdr.msg_iov = &tx->iovs[n];
	tx->msgs[n].msg_hdr.msg_iovlen = 1;
	tx->batch_seq[n] = tx->seq;
	tx->batch_ring[n] = (uint8_t)id;
	tx->batch_len = n + 1;
	*avail -= len + DD_WIRE_OVERHEAD;
	dd_pace_consume(&tx->pace, len + DD_WIRE_OVERHEAD);
	return true;
}

/* The kernel took the datagram at batch position i. */
static void
complete(struct tx *tx, unsigned i)
{
	struct ring *r = sender_ring(tx, (enum tx_ring_id)tx->batch_ring[i]);
	struct slot_meta *meta = ring_meta(r, r->tail);
	uint64_t seq = tx->batch_seq[i];

	tx->datagrams_sent++;
	tx->bytes_sent += tx->iovs[i].iov_len + DD_WIRE_OVERHEAD;
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

static void
on_pace(uv_timer_t *timer);

static void
arm(struct tx *tx, uint64_t delay_ms)
{
	uv_timer_start(&tx->pace_timer, on_pace, delay_ms, 0);
	tx->pace_armed = true;
}

static void
send_some(struct tx *tx)
{
	uint64_t now = uv_hrtime();
	uint64_t avail = dd_pace_available(&tx->pace, now);

	for (unsigned round = 0; round < MAX_BATCHES_PER_TICK; round++) {
		int n;

		if (tx->batch_pos == tx->batch_len) {
			tx->batch_pos = tx->batch_len = 0;
			while (build_next(tx, &avail))
				;
			if (tx->batch_len == 0)
				break;
		}
		n = sendmmsg(tx->sock, tx->msgs + tx->batch_pos, tx->batch_len - tx->batch_pos, 0);
		if (n < 0) {
			uint64_t suppressed;

			if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR)
				break;
			/* A datagram the kernel refused has not left: keep it and try again
			 * later, so no file is retired before it really went out. */
			tx->send_errors++;
			tx->send_blocked = true;
			if (dd_ratelimit_ok(&send_error_rl, dd_mono_ms(), &suppressed))
				dd_error("sending to the diode link fails: %s (%llu more like it not "
					 "shown); retrying; check [link] destination, the route and "
					 "datagram_size against the MTU", strerror(errno),
					 (unsigned long long)suppressed);
			break;
		}
		tx->send_blocked = false;
		for (int i = 0; i < n; i++)
			complete(tx, tx->batch_pos++);
		channels_fill(tx);
		sched_fill(tx);
	}
}

static void
on_pace(uv_timer_t *timer)
{
	struct tx *tx = timer->data;
	uint64_t wait_ns;

	tx->pace_armed = false;
	send_some(tx);
	if (sender_idle(tx))
		return;
	if (tx->send_blocked) {
		arm(tx, 100);
		return;
	}
	wait_ns = dd_pace_wait_ns(&tx->pace, tx->set.dgram_size + DD_WIRE_OVERHEAD);
	arm(tx, wait_ns > 1000000 ? wait_ns / 1000000 : 1);
}

void
sender_kick(struct tx *tx)
{
	if (!tx->pace_armed)
		arm(tx, 0);
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
		tx->msgs[w] = tx->msgs[i];
		tx->iovs[w] = tx->iovs[i];
		tx->msgs[w].msg_hdr.msg_iov = &tx->iovs[w];
		tx->batch_ring[w] = tx->batch_ring[i];
		tx->batch_seq[w] = tx->batch_seq[i];
		w++;
	}
	tx->batch_len = w;
	tx->data.tail = tx->data.head;
}
