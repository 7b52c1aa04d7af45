/* Disk thread: staging-file writes, in-order SHA-256 and the staging fsync, off the event loop. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rx.h"

/*
 * The loop thread receives, opens, reassembles and decodes; a decoded block
 * is handed over here as a job, and its pool slot (rx_block.disk) belongs to
 * this thread until it is given back. The thread writes the block at its
 * offset, marks it in the transfer's written_bits, and advances the
 * transfer's hash in file order: from the block itself, a block it holds,
 * or read back from disk. A block that cannot be hashed yet is held (up to
 * hold_max slots in all), else given back at once and read back later. Once
 * every block of a transfer is hashed, its staging file is fsynced here, so
 * the loop only renames it.
 *
 * Results (events) come back in a ring and a uv_async_t wakes the loop,
 * which applies them (slot given back, write errors, hash progress) and
 * then, outside any barrier, calls reasm_after_disk() on each transfer
 * concerned: fail it, or deliver it once complete.
 *
 * Waking a sleeping thread is a system call and, on a virtual machine, an
 * inter-processor interrupt; per block that would be some 12 000 a GiB. So
 * both sides batch: the loop signals the thread every KICK_JOBS jobs and at
 * the end of each receive batch (disk_kick), and the thread wakes the loop
 * when it runs out of work or has WAKE_EVENTS results waiting.
 *
 * A transfer resumed after a restart with every block already on disk
 * gets one job without a block: hash it all from the staging file.
 *
 * Both rings cannot overflow: a job holds a slot, and a slot yields at most
 * two events (written; given back later when it was held); a job without a
 * block (at most one per transfer) yields one. The loop hands over at most
 * half the pool (cap) and otherwise waits, so reassembly always keeps half
 * of it.
 */

#define KICK_JOBS 8
#define WAKE_EVENTS 16

struct disk_job {
	struct rx_transfer *t;
	struct rx_block *blk;  /* NULL: only hash what is on disk */
	uint64_t off;
	size_t len;
	size_t block_bytes;
};

struct disk_event {
	struct rx_transfer *t;
	struct rx_block *blk;  /* slot given back, NULL: none (held) */
	uint32_t block;        /* blk's block number (a written event) */
	uint32_t hashed;       /* t's hash progress after this job */
	int write_err;         /* 0, errno of the failed write, -1: short write */
	bool written;          /* an event for the job's own block (not a give-back) */
	bool hash_only;        /* the end of a job without a block */
	bool read_err;
	bool synced;           /* every block hashed and the staging file fsynced */
	int sync_err;
};

struct rx_disk {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work_cv;   /* to the thread: a job, or quit */
	pthread_cond_t event_cv;  /* to the loop: an event, or idle */
	uv_async_t async;
	/* under mu */
	struct disk_job *jobs;
	unsigned jobs_head, jobs_len, jobs_cap;
	struct disk_event *evs;
	unsigned evs_head, evs_len, evs_cap;
	bool busy, quit;
	/* the thread's; the loop's only while the thread is idle, under mu */
	struct rx_block **held;
	unsigned nheld, hold_max;
	uint8_t *scratch;
	size_t scratch_cap;
	struct disk_event *out;   /* events of one job: 1 + hold_max */
	uint64_t written, held_hashed, read_back; /* blocks */
	/* the loop's */
	struct disk_event *batch; /* events taken from the ring at once */
	unsigned owned, cap;      /* slots handed over and not given back; at most */
	unsigned unsignaled;      /* jobs queued since the thread was last signalled */
	struct rx_transfer **check;
	unsigned ncheck, check_cap;
	bool check_all;           /* check overflowed: look at every transfer */
	uint64_t waits;           /* times the loop waited for a free hand-over */
};

/* ------------------------------------------------------- the disk thread */

static bool
written(const struct rx_transfer *t, uint32_t b)
{
	return (t->written_bits[b / 64] >> (b % 64)) & 1;
}

static struct rx_block *
take_held(struct rx_disk *d, const struct rx_transfer *t, uint32_t b)
{
	for (unsigned i = 0; i < d->nheld; i++)
		if (d->held[i]->t == t && d->held[i]->block == b) {
			struct rx_block *h = d->held[i];

			d->held[i] = d->held[--d->nheld];
			return h;
		}
	return NULL;
}

/* Write one block, hash what follows in order; the events into d->out. */
static unsigned
run_job(struct rx_disk *d, const struct disk_job *j)
{
	struct rx_transfer *t = j->t;
	struct rx_block *blk = j->blk;
	struct disk_event *ev = &d->out[0];
	bool own_hashed = false;
	unsigned n = 1;
	ssize_t w;

	if (blk == NULL) {
		*ev = (struct disk_event){ .t = t, .hash_only = true };
		own_hashed = true;
	} else {
		*ev = (struct disk_event){ .t = t, .blk = blk, .block = blk->block,
					   .written = true };
		w = pwrite(t->fd, blk->buf, j->len, (off_t)j->off);
		if (w != (ssize_t)j->len) {
			ev->write_err = w < 0 ? errno : -1;
			ev->hashed = t->disk_hashed;
			return n;
		}
		t->written_bits[blk->block / 64] |= (uint64_t)1 << (blk->block % 64);
		d->written++;
	}
	while (t->disk_hashed < t->blocks && written(t, t->disk_hashed)) {
		uint32_t b = t->disk_hashed;
		uint64_t off = (uint64_t)b * j->block_bytes;
		size_t len = t->size - off < j->block_bytes ? (size_t)(t->size - off)
							     : j->block_bytes;
		struct rx_block *h;

		if (blk != NULL && b == blk->block) {
			dd_digest_update(t->digest, blk->buf, len);
			own_hashed = true;
		} else if ((h = take_held(d, t, b)) != NULL) {
			dd_digest_update(t->digest, h->buf, len);
			d->out[n++] = (struct disk_event){ .t = t, .blk = h };
			d->held_hashed++;
		} else {
			ssize_t r;

			if (d->scratch_cap < len) {
				uint8_t *p = realloc(d->scratch, len);

				if (p == NULL) {
					ev->read_err = true;
					break;
				}
				d->scratch = p;
				d->scratch_cap = len;
			}
			r = pread(t->fd, d->scratch, len, (off_t)off);
			if (r != (ssize_t)len) {
				ev->read_err = true;
				break;
			}
			dd_digest_update(t->digest, d->scratch, len);
			d->read_back++;
		}
		t->disk_hashed++;
	}
	if (blk == NULL && t->disk_hashed < t->blocks)
		ev->read_err = true; /* told all was on disk, and it is not: never complete */
	if (!own_hashed && !ev->read_err && d->nheld < d->hold_max) {
		d->held[d->nheld++] = blk; /* next in hash order soon, we hope */
		ev->blk = NULL;
	}
	if (t->disk_hashed == t->blocks && !ev->read_err) {
		/* The loop thread then only renames: a slow disk stalls us, not it. */
		ev->synced = true;
		if (fsync(t->fd) < 0)
			ev->sync_err = errno;
	}
	for (unsigned i = 0; i < n; i++)
		d->out[i].hashed = t->disk_hashed;
	return n;
}

static void *
disk_main(void *arg)
{
	struct rx_disk *d = arg;

	pthread_mutex_lock(&d->mu);
	for (;;) {
		struct disk_job job;
		unsigned n;

		while (d->jobs_len == 0 && !d->quit) {
			d->busy = false;
			pthread_cond_broadcast(&d->event_cv);
			pthread_cond_wait(&d->work_cv, &d->mu);
		}
		if (d->jobs_len == 0)
			break;
		job = d->jobs[d->jobs_head];
		d->jobs_head = (d->jobs_head + 1) % d->jobs_cap;
		d->jobs_len--;
		d->busy = true;
		pthread_mutex_unlock(&d->mu);

		n = run_job(d, &job);

		pthread_mutex_lock(&d->mu);
		for (unsigned i = 0; i < n; i++) {
			if (d->evs_len == d->evs_cap)
				abort(); /* a broken invariant: see the sizes at the top */
			d->evs[(d->evs_head + d->evs_len++) % d->evs_cap] = d->out[i];
		}
		pthread_cond_broadcast(&d->event_cv); /* a loop waiting for a slot */
		if (d->jobs_len == 0 || d->evs_len >= WAKE_EVENTS) {
			pthread_mutex_unlock(&d->mu);
			/* Before busy goes false, so that a settled thread sends
			 * nothing more to the loop (the handle may be closed after). */
			uv_async_send(&d->async);
			pthread_mutex_lock(&d->mu);
		}
	}
	d->busy = false;
	pthread_cond_broadcast(&d->event_cv);
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* ------------------------------------------------------ the loop thread */

static void
mark_check(struct rx_disk *d, struct rx_transfer *t)
{
	if (t->disk_check)
		return;
	t->disk_check = true;
	if (d->ncheck < d->check_cap)
		d->check[d->ncheck++] = t;
	else
		d->check_all = true;
}

static void
give_back(struct rx_disk *d, struct rx_transfer *t, struct rx_block *blk)
{
	blk->disk = false;
	blk->done = false;
	blk->t = NULL;
	t->disk_slots--;
	d->owned--;
}

static void
apply(struct rx_disk *d, const struct disk_event *ev)
{
	struct rx_transfer *t = ev->t;

	if (ev->blk != NULL)
		give_back(d, t, ev->blk);
	if (ev->hash_only)
		t->disk_slots--;
	t->hashed = ev->hashed;
	if (ev->written && ev->write_err != 0) {
		/* Handed over as done: it is not on disk after all. */
		t->done_bits[ev->block / 64] &= ~((uint64_t)1 << (ev->block % 64));
		t->blocks_done--;
		if (t->disk_write_err == 0)
			t->disk_write_err = ev->write_err;
	} else if (ev->written) {
		t->dirty = true; /* on disk now: the partial state may claim it */
	}
	t->disk_read_err |= ev->read_err;
	if (ev->synced) {
		t->disk_synced = ev->sync_err == 0;
		t->disk_sync_err = ev->sync_err;
	}
	mark_check(d, t);
}

/* Apply every event waiting (bookkeeping only: nothing here can come back
 * into the disk code); returns how many. */
static unsigned
apply_events(struct rx_disk *d)
{
	unsigned n;

	pthread_mutex_lock(&d->mu);
	n = d->evs_len;
	for (unsigned i = 0; i < n; i++)
		d->batch[i] = d->evs[(d->evs_head + i) % d->evs_cap];
	d->evs_head = (d->evs_head + n) % d->evs_cap;
	d->evs_len = 0;
	pthread_mutex_unlock(&d->mu);
	for (unsigned i = 0; i < n; i++)
		apply(d, &d->batch[i]);
	return n;
}

static void
check_one(struct rx *rx, struct rx_transfer *t)
{
	/* A transfer failed meanwhile was cleared (and its slot maybe reused). */
	if (t->used && t->disk_check) {
		t->disk_check = false;
		reasm_after_disk(rx, t);
	}
}

/* Transfers with results: fail or deliver them. That may settle, which may
 * mark more: go on until none is left. */
static void
run_checks(struct rx *rx, struct rx_disk *d)
{
	for (;;) {
		if (d->check_all) {
			d->check_all = false;
			d->ncheck = 0;
			for (unsigned i = 0; i < rx->set.max_transfers; i++)
				check_one(rx, &rx->transfers[i]);
		} else if (d->ncheck > 0) {
			check_one(rx, d->check[--d->ncheck]);
		} else {
			return;
		}
	}
}

static void
free_disk(struct rx_disk *d)
{
	free(d->jobs);
	free(d->evs);
	free(d->batch);
	free(d->held);
	free(d->out);
	free(d->check);
	free(d->scratch);
	free(d);
}

static void
free_closed(uv_handle_t *h)
{
	free_disk(h->data);
}

void
disk_poll(struct rx *rx, bool wait)
{
	struct rx_disk *d = rx->disk;

	if (d == NULL)
		return;
	if (wait) {
		disk_settle(rx, NULL);
	} else {
		disk_kick(rx);
		apply_events(d);
	}
	run_checks(rx, d);
}

static void
on_async(uv_async_t *a)
{
	struct rx *rx = a->data;
	struct rx_disk *d = rx->disk;

	if (d == NULL)
		return; /* stopped */

	apply_events(d);
	run_checks(rx, d);
}

void
disk_kick(struct rx *rx)
{
	struct rx_disk *d = rx->disk;

	if (d == NULL || d->unsignaled == 0)
		return;
	d->unsignaled = 0;
	pthread_mutex_lock(&d->mu);
	pthread_cond_signal(&d->work_cv);
	pthread_mutex_unlock(&d->mu);
}

bool
disk_reclaim(struct rx *rx)
{
	struct rx_disk *d = rx->disk;
	unsigned before;

	if (d == NULL || d->owned == 0)
		return false;
	before = d->owned;
	d->waits++;
	disk_kick(rx);
	while (d->owned >= before) {
		pthread_mutex_lock(&d->mu);
		while (d->evs_len == 0 && (d->jobs_len > 0 || d->busy))
			pthread_cond_wait(&d->event_cv, &d->mu);
		pthread_mutex_unlock(&d->mu);
		if (apply_events(d) == 0)
			disk_settle(rx, NULL); /* only held slots left: take them back */
	}
	return true;
}

void
disk_submit(struct rx *rx, struct rx_transfer *t, struct rx_block *blk, uint64_t off, size_t len)
{
	struct rx_disk *d = rx->disk;

	while (d->owned >= d->cap)
		disk_reclaim(rx); /* the disk is behind: wait as the inline path would have */
	blk->disk = true;
	t->disk_slots++;
	d->owned++;
	pthread_mutex_lock(&d->mu);
	d->jobs[(d->jobs_head + d->jobs_len++) % d->jobs_cap] = (struct disk_job){
		.t = t,
		.blk = blk,
		.off = off,
		.len = len,
		.block_bytes = (size_t)t->k_full * rx->frag_len,
	};
	if (++d->unsignaled >= KICK_JOBS) {
		d->unsignaled = 0;
		pthread_cond_signal(&d->work_cv);
	}
	pthread_mutex_unlock(&d->mu);
}

void
disk_submit_hash(struct rx *rx, struct rx_transfer *t)
{
	struct rx_disk *d = rx->disk;

	t->disk_slots++; /* so that disk_settle waits for it */
	pthread_mutex_lock(&d->mu);
	if (d->jobs_len == d->jobs_cap)
		abort(); /* a broken invariant: at most one per transfer beside the slots */
	d->jobs[(d->jobs_head + d->jobs_len++) % d->jobs_cap] = (struct disk_job){
		.t = t,
		.block_bytes = (size_t)t->k_full * rx->frag_len,
	};
	pthread_cond_signal(&d->work_cv);
	pthread_mutex_unlock(&d->mu);
}

void
disk_settle(struct rx *rx, struct rx_transfer *t)
{
	struct rx_disk *d = rx->disk;

	if (d == NULL || (t != NULL && t->disk_slots == 0))
		return;
	disk_kick(rx);
	pthread_mutex_lock(&d->mu);
	while (d->jobs_len > 0 || d->busy)
		pthread_cond_wait(&d->event_cv, &d->mu);
	pthread_mutex_unlock(&d->mu);
	apply_events(d);
	/* Idle, and it stays so until the next job: its held slots are ours. */
	pthread_mutex_lock(&d->mu);
	for (unsigned i = 0; i < d->nheld;) {
		struct rx_block *h = d->held[i];

		if (t != NULL && h->t != t) {
			i++;
			continue;
		}
		d->held[i] = d->held[--d->nheld];
		mark_check(d, h->t);
		give_back(d, h->t, h);
	}
	pthread_mutex_unlock(&d->mu);
}

void
disk_unwritten(const struct rx *rx, const struct rx_transfer *t, uint64_t *bits)
{
	if (t->disk_slots == 0)
		return;
	for (unsigned i = 0; i < rx->set.block_pool; i++) {
		const struct rx_block *b = &rx->pool[i];

		if (b->disk && b->t == t)
			bits[b->block / 64] &= ~((uint64_t)1 << (b->block % 64));
	}
}

void
disk_start(struct rx *rx)
{
	struct rx_disk *d;
	sigset_t all, old;
	unsigned pool = rx->set.block_pool;
	int rc;

	if (rx->set.workers == 0)
		return;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		goto nomem;
	d->cap = pool / 2;
	d->hold_max = pool / 8 < 32 ? pool / 8 : 32;
	d->jobs_cap = pool + rx->set.max_transfers; /* blocks, and hash-only jobs */
	d->evs_cap = 2 * pool + rx->set.max_transfers;
	d->check_cap = rx->set.max_transfers;
	d->jobs = calloc(d->jobs_cap, sizeof(*d->jobs));
	d->evs = calloc(d->evs_cap, sizeof(*d->evs));
	d->batch = calloc(d->evs_cap, sizeof(*d->batch));
	d->held = calloc(d->hold_max, sizeof(struct rx_block *));
	d->out = calloc(1 + d->hold_max, sizeof(*d->out));
	d->check = calloc(d->check_cap, sizeof(struct rx_transfer *));
	if (d->jobs == NULL || d->evs == NULL || d->batch == NULL || d->held == NULL ||
	    d->out == NULL || d->check == NULL)
		goto nomem;
	/* The loop's wake-up descriptor exists since uv_loop_init (its work
	 * queue has one): nothing here needs a call the sandbox refuses. */
	rc = uv_async_init(rx->loop, &d->async, on_async);
	if (rc != 0) {
		dd_warn("[link] workers: cannot set up the disk thread's wake-up (%s); writing on "
			"the event loop thread", uv_strerror(rc));
		goto free;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->work_cv, NULL);
	pthread_cond_init(&d->event_cv, NULL);
	/* Signals stay with the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&d->thread, NULL, disk_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		dd_warn("[link] workers: the disk thread cannot start (%s); writing on the event "
			"loop thread", strerror(rc));
		pthread_mutex_destroy(&d->mu);
		pthread_cond_destroy(&d->work_cv);
		pthread_cond_destroy(&d->event_cv);
		d->async.data = d;
		uv_close((uv_handle_t *)&d->async, free_closed);
		return;
	}
	d->async.data = rx;
	rx->disk = d;
	return;
nomem:
	dd_warn("[link] workers: out of memory for the disk thread; writing on the event loop "
		"thread");
free:
	if (d != NULL)
		free_disk(d);
}

void
disk_stop(struct rx *rx)
{
	struct rx_disk *d = rx->disk;

	if (d == NULL)
		return;
	disk_settle(rx, NULL);
	pthread_mutex_lock(&d->mu);
	d->quit = true;
	pthread_cond_signal(&d->work_cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->work_cv);
	pthread_cond_destroy(&d->event_cv);
	dd_info("disk thread: %" PRIu64 " blocks written, %" PRIu64 " hashed after waiting in "
		"memory for earlier ones, %" PRIu64 " read back from disk to hash; the event loop "
		"waited for it %" PRIu64 " times", d->written, d->held_hashed, d->read_back,
		d->waits);
	rx->disk = NULL;
	/* diode-rx closed every handle when it stopped; otherwise close it
	 * here and free d once the loop ran its close callback. */
	if (uv_is_closing((uv_handle_t *)&d->async)) {
		free_disk(d);
	} else {
		d->async.data = d;
		uv_close((uv_handle_t *)&d->async, free_closed);
	}
}
