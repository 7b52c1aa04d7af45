/* Reassembler: collects fragments into blocks, repairs them with Reed–Solomon, hashes in order. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rx.h"

#define FINAL_GRACE_MS 2000     /* after the final manifest, wait this long for stragglers */
#define BEACON_GRACE_MS 2000
#define UNSEEN_GRACE_MS 16000   /* the sender's last manifest repeat is at +15 s */
#define STALL_MS 60000          /* no datagram nor beacon word of a transfer this long: failed */

int
reasm_init(struct rx *rx)
{
	rx->transfers = calloc(rx->set.max_transfers, sizeof(*rx->transfers));
	rx->pool = calloc(rx->set.block_pool, sizeof(*rx->pool));
	if (rx->transfers == NULL || rx->pool == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < rx->set.max_transfers; i++)
		rx->transfers[i].fd = -1;
	return 0;
}

static void
release_transfer(struct rx *rx, struct rx_transfer *t)
{
	disk_settle(rx, t); /* nothing of it may stay with the disk thread */
	for (unsigned i = 0; i < t->nopen; i++) {
		t->open[i]->t = NULL;
		t->open[i]->done = false;
	}
	if (t->fd >= 0)
		close(t->fd);
	free(t->done_bits); /* and written_bits, in the same allocation */
	free(t->path);
	dd_digest_free(t->digest);
	if (rx->last_hit == t)
		rx->last_hit = NULL;
	memset(t, 0, sizeof(*t));
	t->fd = -1;
}

void
reasm_free(struct rx *rx)
{
	if (rx->transfers != NULL)
		for (unsigned i = 0; i < rx->set.max_transfers; i++)
			if (rx->transfers[i].used)
				release_transfer(rx, &rx->transfers[i]);
	if (rx->pool != NULL)
		for (unsigned i = 0; i < rx->set.block_pool; i++)
			free(rx->pool[i].buf);
	free(rx->pool);
	free(rx->transfers);
	free(rx->scratch);
}

/* ---- finished transfer ids: a sliding bitmap over the session's ids ---- */

static bool
is_finished(const struct rx *rx, uint32_t id)
{
	uint32_t off;

	if (id < rx->finished_base)
		return true;
	off = id - rx->finished_base;
	if (off >= RX_FINISHED_BITS)
		return false;
	return (rx->finished_bits[off / 64] >> (off % 64)) & 1;
}

void
reasm_mark_finished_quiet(struct rx *rx, uint32_t id)
{
	uint32_t off;

	if (id < rx->finished_base)
		return;
	while (id - rx->finished_base >= RX_FINISHED_BITS) {
		/* Slide by a quarter: ids far behind are treated as finished. */
		memmove(rx->finished_bits, rx->finished_bits + RX_FINISHED_BITS / 256,
			sizeof(rx->finished_bits) * 3 / 4);
		memset(rx->finished_bits + RX_FINISHED_BITS / 256 * 3, 0,
		       sizeof(rx->finished_bits) / 4);
		rx->finished_base += RX_FINISHED_BITS / 4;
	}
	off = id - rx->finished_base;
	rx->finished_bits[off / 64] |= (uint64_t)1 << (off % 64);
}

static void
mark_finished(struct rx *rx, uint32_t id)
{
	if (is_finished(rx, id))
		return;
	reasm_mark_finished_quiet(rx, id);
	partial_finished(rx, id);
}

static struct rx_transfer *
find_transfer(struct rx *rx, uint32_t id)
{
	if (rx->last_hit != NULL && rx->last_hit->used && rx->last_hit->id == id)
		return rx->last_hit;
	for (unsigned i = 0; i < rx->set.max_transfers; i++)
		if (rx->transfers[i].used && rx->transfers[i].id == id) {
			rx->last_hit = &rx->transfers[i];
			return rx->last_hit;
		}
	return NULL;
}

/* End a transfer that will not be delivered. */
static void
fail_transfer(struct rx *rx, struct rx_transfer *t, const char *reason, bool quarantine)
{
	disk_settle(rx, t);
	rx->c.files_failed++;
	rx_audit_transfer(rx, "file_failed", t, reason, NULL);
	rx_note_failure(rx, t, reason);
	dd_warn("transfer %u-%u %s%s%s failed: %s", rx->session, t->id,
		t->path ? "(" : "", t->path ? t->path : "", t->path ? ")" : "", reason);
	writer_discard(rx, t, quarantine);
	mark_finished(rx, t->id);
	release_transfer(rx, t);
}

static void
fail_missing(struct rx *rx, struct rx_transfer *t, const char *what)
{
	char reason[160];

	snprintf(reason, sizeof(reason), "%s: %" PRIu32 " of %" PRIu32 " blocks missing",
		 what, t->blocks - t->blocks_done, t->blocks);
	rx->c.blocks_lost += t->blocks - t->blocks_done;
	fail_transfer(rx, t, reason, false);
}

struct rx_transfer *
reasm_new_transfer(struct rx *rx, uint32_t id, uint64_t size, unsigned k_full, unsigned m_full,
		   bool create)
{
	struct rx_transfer *t = NULL;
	char reason[160];
	size_t words;

	if (size > rx->set.max_file_size) {
		struct rx_transfer tmp = { .id = id, .size = size, .fd = -1 };

		snprintf(reason, sizeof(reason), "larger than [files] max_file_size (%" PRIu64
			 " bytes)", rx->set.max_file_size);
		rx->c.files_failed++;
		rx_audit_transfer(rx, "file_rejected", &tmp, reason, NULL);
		dd_warn("transfer %u-%u of %" PRIu64 " bytes refused: %s", rx->session, id, size,
			reason);
		mark_finished(rx, id);
		return NULL;
	}
	for (unsigned i = 0; i < rx->set.max_transfers && t == NULL; i++)
		if (!rx->transfers[i].used)
			t = &rx->transfers[i];
	if (t == NULL && rx->disk != NULL) {
		/* Some may be complete but for the disk thread's work: finish
		 * them first, as the inline path would have. */
		disk_poll(rx, true);
		for (unsigned i = 0; i < rx->set.max_transfers && t == NULL; i++)
			if (!rx->transfers[i].used)
				t = &rx->transfers[i];
	}
	if (t == NULL) {
		struct rx_transfer tmp = { .id = id, .size = size, .fd = -1 };

		rx->c.files_failed++;
		rx_audit_transfer(rx, "file_failed", &tmp,
				  "too many concurrent transfers ([files] max_transfers)", NULL);
		dd_warn("transfer %u-%u refused: more than %u transfers at once; raise [files] "
			"max_transfers", rx->session, id, rx->set.max_transfers);
		mark_finished(rx, id);
		return NULL;
	}
	t->used = true;
	t->id = id;
	t->size = size;
	t->k_full = k_full;
	t->m_full = m_full;
	t->blocks = dd_wire_block_count(size, k_full, rx->frag_len);
	t->fd = -1;
	t->first_ms = t->last_ms = dd_mono_ms();
	words = (t->blocks + 63) / 64 + 1;
	t->done_bits = calloc(2 * words, sizeof(uint64_t));
	if (t->done_bits != NULL)
		t->written_bits = t->done_bits + words;
	if (t->done_bits == NULL || dd_digest_new(&t->digest) != 0 ||
	    writer_stage_open(rx, t, create) != 0) {
		if (!create) {
			reasm_drop_transfer(rx, t);
			return NULL;
		}
		fail_transfer(rx, t, "cannot create the staging file", false);
		return NULL;
	}
	t->dirty = true;
	rx->last_hit = t;
	return t;
}

void
reasm_drop_transfer(struct rx *rx, struct rx_transfer *t)
{
	release_transfer(rx, t);
}

static bool
block_done(const struct rx_transfer *t, uint32_t b)
{
	return (t->done_bits[b / 64] >> (b % 64)) & 1;
}

static void
unlist(struct rx_transfer *t, struct rx_block *blk)
{
	for (unsigned i = 0; i < t->nopen; i++)
		if (t->open[i] == blk) {
			t->open[i] = t->open[--t->nopen];
			break;
		}
}

static void
free_slot(struct rx_transfer *t, struct rx_block *blk)
{
	unlist(t, blk);
	blk->t = NULL;
	blk->done = false;
}

static int advance_hash(struct rx *rx, struct rx_transfer *t);

static void
try_finish(struct rx *rx, struct rx_transfer *t)
{
	if (!t->final || t->blocks_done != t->blocks || t->disk_slots != 0)
		return;
	if (t->hashed < t->blocks) {
		/* Every block was on disk before a restart (hashing starts over
		 * then) and none will arrive: hash them from the staging file. */
		if (rx->disk != NULL) {
			disk_submit_hash(rx, t); /* reasm_after_disk comes back here */
			return;
		}
		if (advance_hash(rx, t) != 0) {
			fail_transfer(rx, t, "reading back the staging file failed", false);
			return;
		}
	}
	if (t->hashed == t->blocks)
		writer_deliver(rx, t); /* releases t via reasm_release_delivered */
}

void
reasm_after_disk(struct rx *rx, struct rx_transfer *t)
{
	char reason[160];

	if (t->disk_write_err != 0) {
		snprintf(reason, sizeof(reason), "writing the staging file: %s",
			 t->disk_write_err > 0 ? strerror(t->disk_write_err) : "short write");
		fail_transfer(rx, t, reason, false);
	} else if (t->disk_read_err) {
		fail_transfer(rx, t, "reading back the staging file failed", false);
	} else {
		try_finish(rx, t);
	}
}

/* Hash blocks in file order, from memory where still held, else from disk. */
static int
advance_hash(struct rx *rx, struct rx_transfer *t)
{
	size_t block_bytes = (size_t)t->k_full * rx->frag_len;

	while (t->hashed < t->blocks && block_done(t, t->hashed)) {
		uint64_t off = (uint64_t)t->hashed * block_bytes;
		size_t len = t->size - off < block_bytes ? (size_t)(t->size - off) : block_bytes;
		struct rx_block *held = NULL;

		for (unsigned i = 0; i < t->nopen; i++)
			if (t->open[i]->done && t->open[i]->block == t->hashed)
				held = t->open[i];
		if (held != NULL) {
			dd_digest_update(t->digest, held->buf, len);
			free_slot(t, held);
		} else {
			ssize_t n;

			if (rx->scratch == NULL) {
				rx->scratch = malloc((size_t)DD_FEC_MAX_TOTAL * rx->frag_len);
				if (rx->scratch == NULL)
					return -ENOMEM;
			}
			n = pread(t->fd, rx->scratch, len, (off_t)off);
			if (n != (ssize_t)len)
				return n < 0 ? -errno : -EIO;
			dd_digest_update(t->digest, rx->scratch, len);
		}
		t->hashed++;
	}
	return 0;
}

static struct rx_block *
evict_one(struct rx *rx)
{
	struct rx_block *victim;

again:
	victim = NULL;
	/* Prefer a decoded block waiting to be hashed (its data is on disk),
	 * else the incomplete block that has waited longest. */
	for (unsigned i = 0; i < rx->set.block_pool; i++) {
		struct rx_block *b = &rx->pool[i];

		if (b->disk)
			continue; /* the disk thread's until it gives it back */
		if (b->t == NULL)
			return b;
		if (victim == NULL || (b->done && !victim->done) ||
		    (b->done == victim->done && b->last_ms < victim->last_ms))
			victim = b;
	}
	/* Decoded blocks the disk thread has are the ones inline would give
	 * up first: wait for one to come back rather than lose a block. */
	if ((victim == NULL || !victim->done) && disk_reclaim(rx))
		goto again;
	if (victim != NULL) {
		if (!victim->done)
			rx->c.blocks_lost++;
		free_slot(victim->t, victim);
	}
	return victim;
}

static struct rx_block *
open_block(struct rx *rx, struct rx_transfer *t, const struct dd_frag *f)
{
	size_t need = (size_t)(f->k + f->m) * rx->frag_len;
	struct rx_block *blk;

	for (unsigned i = 0; i < t->nopen; i++)
		if (t->open[i]->block == f->block)
			return t->open[i];
	if (t->nopen == RX_OPEN_MAX) {
		struct rx_block *oldest = t->open[0];

		for (unsigned i = 1; i < t->nopen; i++)
			if (t->open[i]->last_ms < oldest->last_ms)
				oldest = t->open[i];
		if (!oldest->done)
			rx->c.blocks_lost++;
		free_slot(t, oldest);
	}
	blk = evict_one(rx);
	if (blk == NULL)
		return NULL;
	if (blk->cap < need) {
		uint8_t *p = realloc(blk->buf, need);

		if (p == NULL)
			return NULL;
		blk->buf = p;
		blk->cap = need;
	}
	blk->t = t;
	blk->block = f->block;
	blk->k = f->k;
	blk->m = f->m;
	blk->count = 0;
	blk->done = false;
	memset(blk->present, 0, sizeof(blk->present));
	t->open[t->nopen++] = blk;
	return blk;
}

static void
complete_block(struct rx *rx, struct rx_transfer *t, struct rx_block *blk)
{
	uint8_t *frags[DD_FEC_MAX_TOTAL];
	size_t block_bytes = (size_t)t->k_full * rx->frag_len;
	uint64_t off = (uint64_t)blk->block * block_bytes;
	size_t len;
	ssize_t n;
	int rc;
	bool missing = false;

	for (unsigned i = 0; i < blk->k; i++)
		missing |= !blk->present[i];
	if (missing) {
		for (unsigned i = 0; i < (unsigned)blk->k + blk->m; i++)
			frags[i] = blk->buf + i * rx->frag_len;
		rc = dd_fec_decode(rx->fec, blk->k, blk->m, rx->frag_len, frags, blk->present);
		if (rc != 0) {
			fail_transfer(rx, t, "Reed-Solomon decoding failed", false);
			return;
		}
		rx->c.blocks_recovered++;
	}
	len = t->size - off < block_bytes ? (size_t)(t->size - off) : block_bytes;
	if (rx->disk != NULL) {
		/* Done for reassembly: later fragments of it are duplicates. The
		 * disk thread writes and hashes it and gives the slot back; a
		 * failed write clears the bit again (disk.c). */
		t->done_bits[blk->block / 64] |= (uint64_t)1 << (blk->block % 64);
		t->blocks_done++;
		unlist(t, blk);
		disk_submit(rx, t, blk, off, len);
		return;
	}
	n = pwrite(t->fd, blk->buf, len, (off_t)off);
	if (n != (ssize_t)len) {
		char reason[160];

		snprintf(reason, sizeof(reason), "writing the staging file: %s",
			 n < 0 ? strerror(errno) : "short write");
		fail_transfer(rx, t, reason, false);
		return;
	}
	t->done_bits[blk->block / 64] |= (uint64_t)1 << (blk->block % 64);
	t->blocks_done++;
	t->dirty = true;
	blk->done = true;
	rc = advance_hash(rx, t);
	if (rc != 0) {
		fail_transfer(rx, t, "reading back the staging file failed", false);
		return;
	}
	/* A decoded block that is not next in hash order stays until it is. */
	try_finish(rx, t);
}

void
reasm_fragment(struct rx *rx, const struct dd_frag *f, const uint8_t *payload)
{
	struct rx_transfer *t = find_transfer(rx, f->transfer);
	struct rx_block *blk;

	if (t == NULL) {
		if (is_finished(rx, f->transfer)) {
			rx->c.duplicates++;
			return;
		}
		t = reasm_new_transfer(rx, f->transfer, f->size, f->k_full, 0, true);
		if (t == NULL)
			return;
	}
	if (f->size != t->size || f->k_full != t->k_full) {
		rx->c.malformed++;
		return;
	}
	t->last_ms = rx->now_ms; /* read once per receive batch */
	t->datagrams++;
	if (block_done(t, f->block)) {
		rx->c.duplicates++;
		return;
	}
	blk = open_block(rx, t, f);
	if (blk == NULL) {
		rx->c.blocks_lost++;
		return;
	}
	if (blk->k != f->k || blk->m != f->m) {
		rx->c.malformed++;
		return;
	}
	if (blk->present[f->index]) {
		rx->c.duplicates++;
		return;
	}
	memcpy(blk->buf + (size_t)f->index * rx->frag_len, payload, rx->frag_len);
	blk->present[f->index] = 1;
	blk->count++;
	blk->last_ms = t->last_ms;
	if (blk->count == blk->k)
		complete_block(rx, t, blk);
}

void
reasm_manifest(struct rx *rx, const struct dd_manifest *m)
{
	struct rx_transfer *t = find_transfer(rx, m->transfer);

	if (t == NULL) {
		if (is_finished(rx, m->transfer)) {
			rx->c.duplicates++;
			return;
		}
		t = reasm_new_transfer(rx, m->transfer, m->size, m->k_full, m->m_full, true);
		if (t == NULL)
			return;
	}
	if (m->size != t->size || m->k_full != t->k_full) {
		rx->c.malformed++;
		return;
	}
	t->last_ms = dd_mono_ms();
	if (t->path == NULL) {
		t->path = malloc((size_t)m->path_len + 1);
		if (t->path == NULL) {
			fail_transfer(rx, t, "out of memory", false);
			return;
		}
		memcpy(t->path, m->path, m->path_len);
		t->path[m->path_len] = '\0';
		t->mode = m->mode;
		t->mtime = m->mtime;
	} else if (strlen(t->path) != m->path_len || memcmp(t->path, m->path, m->path_len) != 0) {
		rx->c.malformed++;
		return;
	}
	if (m->flags & DD_MANIFEST_ABORT) {
		rx->c.files_failed++;
		rx_audit_transfer(rx, "file_aborted", t, "abandoned by the sender", NULL);
		dd_notice("transfer %u-%u (%s) abandoned by the sender; it will be sent again",
			  rx->session, t->id, t->path);
		disk_settle(rx, t);
		writer_discard(rx, t, false);
		mark_finished(rx, t->id);
		release_transfer(rx, t);
		return;
	}
	if (m->flags & DD_MANIFEST_FINAL) {
		if (!t->final) {
			t->final = true;
			t->dirty = true;
			memcpy(t->sha256, m->sha256, DD_SHA256_LEN);
		}
		/* Only the last carousel pass can be given up on; earlier passes
		 * leave gaps the next pass fills. */
		if (m->pass + 1 >= m->passes && !t->last_pass_seen) {
			t->last_pass_seen = true;
			t->dirty = true;
			t->fail_at_ms = t->last_ms + FINAL_GRACE_MS;
		}
		try_finish(rx, t);
	}
}

void
reasm_release_delivered(struct rx *rx, struct rx_transfer *t)
{
	mark_finished(rx, t->id);
	release_transfer(rx, t);
}

/* Every id below the sender's complete_below is finished there: whatever is
 * still open here, or was never seen, is now known to be lost. */
static void report_unseen(struct rx *rx, uint64_t now, bool force_one);

static void
check_complete_below(struct rx *rx, uint32_t complete_below, uint64_t now)
{
	unsigned budget = 100000; /* per beacon; the rest at the next one */

	if (!rx->checked_known) {
		/* First beacon of a fresh receiver: nothing earlier can be judged. */
		rx->checked_below = complete_below;
		rx->checked_known = true;
		return;
	}
	while (rx->checked_below < complete_below && budget-- > 0) {
		uint32_t id = rx->checked_below++;
		struct rx_transfer *t;

		if (is_finished(rx, id))
			continue;
		t = find_transfer(rx, id);
		if (t != NULL) {
			if (t->fail_at_ms == 0 || t->fail_at_ms > now + BEACON_GRACE_MS)
				t->fail_at_ms = now + BEACON_GRACE_MS;
			t->last_pass_seen = true;
			continue;
		}
		/* Nothing of it arrived. The sender repeats final manifests for
		 * 15 s: wait for one so the report can name the file. */
		if (rx->unseen_len == sizeof(rx->unseen) / sizeof(rx->unseen[0]))
			report_unseen(rx, now, true);
		rx->unseen[(rx->unseen_head + rx->unseen_len++) % 1024] =
			(struct rx_unseen){ .id = id, .report_at_ms = now + UNSEEN_GRACE_MS };
	}
}

/* Report the oldest unseen transfers whose grace is over (or one, forced). */
static void
report_unseen(struct rx *rx, uint64_t now, bool force_one)
{
	while (rx->unseen_len > 0) {
		struct rx_unseen *u = &rx->unseen[rx->unseen_head];
		struct rx_transfer tmp = { .id = u->id, .fd = -1 };

		if (!force_one && now < u->report_at_ms)
			break;
		force_one = false;
		rx->unseen_head = (rx->unseen_head + 1) % 1024;
		rx->unseen_len--;
		if (is_finished(rx, u->id) || find_transfer(rx, u->id) != NULL)
			continue; /* a manifest arrived after all: reported by path */
		rx->c.files_failed++;
		rx_audit_transfer(rx, "file_failed", &tmp,
				  "lost entirely: no datagram of it arrived", NULL);
		rx_note_failure(rx, &tmp, "lost entirely");
		dd_warn("transfer %u-%u was sent but nothing of it arrived (not even its "
			"manifest)", rx->session, u->id);
		mark_finished(rx, u->id);
	}
}

void
reasm_beacon(struct rx *rx, const struct dd_beacon *b, uint64_t beacon_seq)
{
	uint64_t now = dd_mono_ms();

	for (unsigned i = 0; i < b->count; i++) {
		const struct dd_beacon_entry *e = &b->entries[i];
		struct rx_transfer *t;

		if (is_finished(rx, e->transfer))
			continue;
		t = find_transfer(rx, e->transfer);
		if (e->status == DD_XFER_SENDING) {
			/* Still being sent (maybe slowly, sharing the link with other
			 * files, or between carousel passes): not stalled. */
			if (t != NULL)
				t->last_ms = now;
			continue;
		}
		if (t == NULL && e->status == DD_XFER_ABANDONED) {
			mark_finished(rx, e->transfer);
			continue;
		}
	}
	check_complete_below(rx, b->complete_below, now);
	(void)beacon_seq;
}

void
reasm_tick(struct rx *rx, uint64_t now_ms)
{
	report_unseen(rx, now_ms, false);
	for (unsigned i = 0; i < rx->set.max_transfers; i++) {
		struct rx_transfer *t = &rx->transfers[i];

		if (!t->used)
			continue;
		if (t->disk_slots > 0 && ((t->fail_at_ms != 0 && t->last_pass_seen &&
					   now_ms >= t->fail_at_ms && now_ms - t->last_ms >= 500) ||
					  now_ms - t->last_ms >= STALL_MS)) {
			/* What the disk thread still has of it may complete it. */
			disk_settle(rx, t);
			reasm_after_disk(rx, t);
			if (!t->used || t->disk_slots > 0)
				continue; /* delivered, failed, or being hashed: next tick */
		}
		if (t->fail_at_ms != 0 && t->last_pass_seen && now_ms >= t->fail_at_ms &&
		    now_ms - t->last_ms >= 500) {
			if (!t->final)
				fail_missing(rx, t, "final manifest never arrived");
			else
				fail_missing(rx, t, "loss beyond repair after the last pass");
		} else if (now_ms - t->last_ms >= STALL_MS) {
			fail_missing(rx, t, "no data and no word from the sender for 60 s");
		}
	}
}

void
reasm_save_dirty(struct rx *rx)
{
	for (unsigned i = 0; i < rx->set.max_transfers; i++) {
		struct rx_transfer *t = &rx->transfers[i];

		if (t->used && t->dirty && partial_save(rx, t) != 0) {
			static struct dd_ratelimit rl = { .interval_ms = 60000 };

			if (dd_ratelimit_ok(&rl, dd_mono_ms(), NULL))
				dd_error("staging: cannot save partial state of transfer %u-%u: %s",
					 rx->session, t->id, strerror(errno));
		}
	}
}

void
reasm_suspend_all(struct rx *rx)
{
	unsigned saved = 0;

	/* Ids never seen would be forgotten past the persisted checkpoint. */
	while (rx->unseen_len > 0)
		report_unseen(rx, 0, true);
	for (unsigned i = 0; i < rx->set.max_transfers; i++) {
		struct rx_transfer *t = &rx->transfers[i];

		if (!t->used)
			continue;
		disk_settle(rx, t); /* every block it wrote is then in the saved state */
		if (partial_save(rx, t) == 0)
			saved++;
		release_transfer(rx, t);
	}
	if (saved > 0)
		dd_notice("kept %u partial transfers in %s for the next start", saved,
			  rx->set.staging);
}

unsigned
reasm_active(const struct rx *rx)
{
	unsigned n = 0;

	for (unsigned i = 0; i < rx->set.max_transfers; i++)
		n += rx->transfers[i].used;
	return n;
}

void
reasm_fail_all(struct rx *rx, const char *reason)
{
	for (unsigned i = 0; i < rx->set.max_transfers; i++)
		if (rx->transfers[i].used)
			fail_transfer(rx, &rx->transfers[i], reason, false);
	rx->finished_base = 0;
	memset(rx->finished_bits, 0, sizeof(rx->finished_bits));
	while (rx->unseen_len > 0)
		report_unseen(rx, 0, true);
	rx->checked_below = 0;
	rx->checked_known = false;
}
