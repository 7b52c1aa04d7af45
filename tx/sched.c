/* Scheduler: turns queued files into interleaved, Reed–Solomon coded datagrams in the send ring. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "path.h"
#include "tx.h"

#define MAX_INTERLEAVE 64

int
ring_init(struct ring *r, uint32_t cap, size_t slot_size)
{
	memset(r, 0, sizeof(*r));
	r->slot_size = (slot_size + 63) & ~(size_t)63;
	r->mem = aligned_alloc(64, (size_t)cap * r->slot_size);
	r->meta = calloc(cap, sizeof(*r->meta));
	if (r->mem == NULL || r->meta == NULL) {
		ring_free(r);
		return -ENOMEM;
	}
	r->cap = cap;
	return 0;
}

void
ring_free(struct ring *r)
{
	free(r->mem);
	free(r->meta);
	memset(r, 0, sizeof(*r));
}

/* P(more than m of n fragments lost) when each is lost with probability p. */
static double
loss_tail(unsigned n, unsigned m, double p)
{
	double pmf[DD_FEC_MAX_TOTAL + 1], tail = 0;

	pmf[0] = pow(1 - p, n);
	for (unsigned i = 0; i < n; i++)
		pmf[i + 1] = pmf[i] * (double)(n - i) / (double)(i + 1) * p / (1 - p);
	for (unsigned i = n; i > m; i--)
		tail += pmf[i];
	return tail;
}

/*
 * Parity for blocks of every size. A full block gets fec_parity. A shorter one
 * (the last block of a file, or a small file) gets the least parity that makes
 * it fail no more often than a full block does, at the loss rate the full
 * code is designed for (a quarter of its parity ratio): proportional parity
 * would make small blocks the weak spot.
 */
void
sched_init_parity(struct tx *tx)
{
	unsigned kf = tx->set.fec_data, mf = tx->set.fec_parity;
	double p = mf == 0 ? 0 : (double)mf / (4.0 * (kf + mf)), target;

	tx->parity_for_k[kf] = mf;
	if (mf == 0) {
		memset(tx->parity_for_k, 0, sizeof(tx->parity_for_k));
		return;
	}
	target = loss_tail(kf + mf, mf, p);
	for (unsigned k = 1; k < kf; k++) {
		unsigned m = 1;

		while (k + m < DD_FEC_MAX_TOTAL && m < mf && loss_tail(k + m, m, p) > target)
			m++;
		tx->parity_for_k[k] = m;
	}
}

static unsigned
parity_for(const struct tx *tx, unsigned k)
{
	return tx->parity_for_k[k];
}

static unsigned
group_slots(const struct tx *tx, const struct tx_transfer *t)
{
	unsigned nb = tx->set.interleave, total = 0;

	if (nb > t->blocks - t->next_block)
		nb = t->blocks - t->next_block;
	for (unsigned j = 0; j < nb; j++) {
		unsigned k = dd_wire_block_k(t->size, t->k_full, tx->frag_len, t->next_block + j);

		total += k + parity_for(tx, k);
	}
	return total;
}

static void
audit_transfer(const char *event, const struct tx *tx, const struct tx_transfer *t,
	       const char *reason)
{
	struct dd_audit_event ev;
	char id[32], hex[65];

	snprintf(id, sizeof(id), "%u-%u", tx->session, t->id);
	dd_audit_begin(&ev, event);
	dd_audit_str(&ev, "id", id);
	dd_audit_u64(&ev, "session", tx->session);
	dd_audit_u64(&ev, "transfer", t->id);
	dd_audit_str(&ev, "path", t->entry->rel);
	dd_audit_u64(&ev, "size", t->size);
	if (strcmp(event, "file_sent") == 0) {
		dd_digest_hex(t->sha256, hex);
		dd_audit_str(&ev, "sha256", hex);
		dd_audit_u64(&ev, "ms", dd_mono_ms() - t->started_ms);
	}
	if (reason != NULL)
		dd_audit_str(&ev, "reason", reason);
	dd_audit_commit(&ev);
}

static void
put_manifest(struct tx *tx, struct tx_transfer *t, uint8_t *plain, uint8_t flags)
{
	struct dd_manifest m = {
		.flags = flags,
		.transfer = t->id,
		.size = t->size,
		.mtime = (uint64_t)(t->st.st_mtim.tv_sec > 0 ? t->st.st_mtim.tv_sec : 0),
		.mode = (uint32_t)(t->st.st_mode & 0777),
		.k_full = (uint8_t)t->k_full,
		.m_full = (uint8_t)t->m_full,
		.pass = (uint8_t)t->pass,
		.passes = (uint8_t)t->passes,
		.path_len = (uint16_t)strlen(t->entry->rel),
		.path = t->entry->rel,
	};

	if (flags & DD_MANIFEST_FINAL)
		memcpy(m.sha256, t->sha256, DD_SHA256_LEN);
	memset(plain, 0, tx->plain_len);
	dd_wire_put_manifest(plain, tx->plain_len, &m);
}

/* Reserve the next data-ring slot and return its plaintext area. */
static uint8_t *
data_plain(struct tx *tx, struct tx_transfer *last_of)
{
	uint32_t idx = tx->data.head++;
	struct slot_meta *meta = ring_meta(&tx->data, idx);

	meta->kind = SLOT_SEALED;
	meta->last_of = last_of;
	return ring_slot(&tx->data, idx) + DD_HDR_LEN;
}

static void
free_transfer(struct tx_transfer *t)
{
	if (t->fd >= 0)
		close(t->fd);
	dd_digest_free(t->digest);
	free(t->manifest);
	free(t);
}

static struct tx_transfer *
start_transfer(struct tx *tx, struct spool_entry *e)
{
	struct tx_transfer *t = calloc(1, sizeof(*t));
	int fd;

	if (t == NULL)
		goto retry;
	t->fd = -1;
	fd = openat(spool_outbox_fd(tx->spool), e->rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			dd_warn("outbox: cannot open %s: %s; will retry", e->rel, strerror(errno));
		goto retry;
	}
	t->fd = fd;
	if (fstat(fd, &t->st) < 0 || !S_ISREG(t->st.st_mode))
		goto retry;
	if (dd_digest_new(&t->digest) != 0)
		goto retry;
	t->entry = e;
	t->id = ++tx->next_transfer;
	t->size = (uint64_t)t->st.st_size;
	t->k_full = tx->set.fec_data;
	t->m_full = tx->set.fec_parity;
	t->blocks = dd_wire_block_count(t->size, t->k_full, tx->frag_len);
	t->started_ms = dd_mono_ms();
	t->state = XFER_SENDING;
	t->passes = tx->set.repeat;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	audit_transfer("file_queued", tx, t, NULL);
	progress_changed(tx);
	dd_debug("sending %s (%llu bytes) as transfer %u-%u", e->rel,
		 (unsigned long long)t->size, tx->session, t->id);
	put_manifest(tx, t, data_plain(tx, NULL), 0);
	return t;
retry:
	if (t != NULL)
		free_transfer(t);
	spool_done(tx->spool, e, false);
	return NULL;
}

/* preadv until every iov is full or EOF; returns bytes read or -errno. */
static ssize_t
preadv_full(int fd, struct iovec *iov, int n, off_t off)
{
	ssize_t total = 0;

	while (n > 0) {
		ssize_t r = preadv(fd, iov, n, off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		total += r;
		off += r;
		while (n > 0 && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0 && r > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return total;
}

static void
abort_transfer(struct tx_transfer *t, const char *reason)
{
	if (!t->aborted) {
		t->aborted = true;
		t->abort_reason = reason;
	}
}

/* Produce one interleaved group of up to `interleave` blocks. */
static void
produce_group(struct tx *tx, struct tx_transfer *t)
{
	unsigned nb = tx->set.interleave, ks[MAX_INTERLEAVE], ms[MAX_INTERLEAVE], maxn = 0;
	uint8_t *(*ptrs)[DD_FEC_MAX_TOTAL] = tx->group_ptrs;
	struct iovec *iov = tx->group_iov;
	size_t F = tx->frag_len;

	if (nb > t->blocks - t->next_block)
		nb = t->blocks - t->next_block;
	for (unsigned j = 0; j < nb; j++) {
		ks[j] = dd_wire_block_k(t->size, t->k_full, F, t->next_block + j);
		ms[j] = parity_for(tx, ks[j]);
		if (ks[j] + ms[j] > maxn)
			maxn = ks[j] + ms[j];
	}
	/* Fragment i of every block, then fragment i+1: a burst of lost datagrams
	 * is spread over the blocks of the group. */
	for (unsigned i = 0; i < maxn; i++)
		for (unsigned j = 0; j < nb; j++) {
			struct dd_frag f;
			uint8_t *plain;

			if (i >= ks[j] + ms[j])
				continue;
			plain = data_plain(tx, NULL);
			f = (struct dd_frag){
				.k = (uint8_t)ks[j], .m = (uint8_t)ms[j], .index = (uint8_t)i,
				.k_full = (uint8_t)t->k_full, .pass = (uint8_t)t->pass,
				.transfer = t->id,
				.block = t->next_block + j, .size = t->size,
			};
			dd_wire_put_frag(plain, &f);
			ptrs[j][i] = plain + DD_FRAG_HDR_LEN;
		}
	for (unsigned j = 0; j < nb && !t->aborted; j++) {
		uint64_t off = (uint64_t)(t->next_block + j) * t->k_full * F;
		uint64_t want = t->size - off < (uint64_t)ks[j] * F ? t->size - off
								     : (uint64_t)ks[j] * F;
		ssize_t got;

		for (unsigned i = 0; i < ks[j]; i++)
			iov[i] = (struct iovec){ ptrs[j][i], F };
		got = preadv_full(t->fd, iov, (int)ks[j], (off_t)off);
		if (got < 0) {
			abort_transfer(t, "read error");
			dd_warn("outbox: reading %s: %s; will retry", t->entry->rel,
				strerror((int)-got));
			break;
		}
		if ((uint64_t)got < want) {
			abort_transfer(t, "file shrank while being sent");
			break;
		}
		/* Zero the tail of the last fragment past the end of the file. */
		if (want < (uint64_t)ks[j] * F) {
			size_t last = (size_t)(want - (uint64_t)(ks[j] - 1) * F);

			memset(ptrs[j][ks[j] - 1] + last, 0, F - last);
		}
		for (unsigned i = 0; i < ks[j]; i++) {
			size_t n = i + 1 < ks[j] ? F : (size_t)(want - (uint64_t)i * F);

			dd_digest_update(t->digest, ptrs[j][i], n);
		}
		if (ms[j] > 0)
			dd_fec_encode(tx->fec, ks[j], ms[j], F, ptrs[j], ptrs[j] + ks[j]);
	}
	t->next_block += nb;
	progress_group(tx, t);
}

static void
unlink_active(struct tx *tx, struct tx_transfer *t)
{
	struct tx_transfer **p = &tx->active;

	while (*p != NULL && *p != t)
		p = &(*p)->next;
	if (*p == NULL)
		return; /* not active: nothing to unlink */
	*p = t->next;
	if (tx->rr_next == t)
		tx->rr_next = t->next;
	tx->nactive--;
}

/* A pass is produced: check the file did not change (also against the digest
 * of the first pass), then its final manifest. Between passes the transfer
 * waits; after the last one it waits for the final manifest to leave. */
static void
finish_pass(struct tx *tx, struct tx_transfer *t)
{
	uint8_t digest[DD_SHA256_LEN];
	struct stat now;
	bool last;

	if (!t->aborted) {
		if (fstat(t->fd, &now) < 0 || now.st_nlink == 0)
			abort_transfer(t, "file removed while being sent");
		else if (now.st_size != t->st.st_size ||
			 now.st_mtim.tv_sec != t->st.st_mtim.tv_sec ||
			 now.st_mtim.tv_nsec != t->st.st_mtim.tv_nsec)
			abort_transfer(t, "file changed while being sent");
	}
	if (!t->aborted) {
		dd_digest_final(t->digest, digest);
		if (t->pass == 0)
			memcpy(t->sha256, digest, DD_SHA256_LEN);
		else if (memcmp(digest, t->sha256, DD_SHA256_LEN) != 0)
			abort_transfer(t, "file changed between carousel passes");
	}
	last = t->aborted || t->pass + 1 >= t->passes;
	unlink_active(tx, t);
	if (t->manifest == NULL)
		t->manifest = malloc(tx->plain_len);
	if (t->manifest == NULL) {
		/* No repeats then; the copy in the ring is still sent. */
		put_manifest(tx, t, data_plain(tx, last ? t : NULL),
			     t->aborted ? DD_MANIFEST_ABORT : DD_MANIFEST_FINAL);
	} else {
		put_manifest(tx, t, t->manifest,
			     t->aborted ? DD_MANIFEST_ABORT : DD_MANIFEST_FINAL);
		memcpy(data_plain(tx, last ? t : NULL), t->manifest, tx->plain_len);
	}
	if (last) {
		t->state = XFER_FINISHING;
		t->next = tx->finishing;
		tx->finishing = t;
		return;
	}
	t->state = XFER_WAITING;
	t->resume_ms = dd_mono_ms() + tx->set.repeat_gap_ms;
	t->next = tx->waiting;
	tx->waiting = t;
	tx->nwaiting++;
	sched_arm_timer(tx);
}

static void
append_active(struct tx *tx, struct tx_transfer *t)
{
	struct tx_transfer **p = &tx->active;

	/* Append so that round-robin order is arrival order. */
	t->next = NULL;
	while (*p != NULL)
		p = &(*p)->next;
	*p = t;
	tx->nactive++;
}

/* Start the next pass of the transfers whose pause is over. */
static void
resume_waiting(struct tx *tx)
{
	struct tx_transfer **p = &tx->waiting;
	uint64_t now = dd_mono_ms();

	while (*p != NULL) {
		struct tx_transfer *t = *p;

		if (now < t->resume_ms || tx->nactive >= tx->set.max_active) {
			p = &t->next;
			continue;
		}
		*p = t->next;
		tx->nwaiting--;
		t->pass++;
		t->next_block = 0;
		t->state = XFER_SENDING;
		dd_digest_reset(t->digest);
		dd_debug("transfer %u-%u (%s): pass %u of %u", tx->session, t->id, t->entry->rel,
			 t->pass + 1, t->passes);
		append_active(tx, t);
	}
}

void
sched_fill(struct tx *tx)
{
	struct spool_entry *e;

	if (tx->stopping)
		return;
	if (tx->waiting != NULL)
		resume_waiting(tx);
	for (;;) {
		struct tx_transfer *t;
		unsigned need;

		/* Files between carousel passes count too: the receiver holds each
		 * incomplete one, and refuses more than its max_transfers. */
		while (tx->nactive < tx->set.max_active &&
		       tx->nactive + tx->nwaiting < TX_IN_FLIGHT_MAX &&
		       ring_free_slots(&tx->data) > 2 && (e = spool_take(tx->spool)) != NULL) {
			t = start_transfer(tx, e);
			if (t != NULL)
				append_active(tx, t);
		}
		if (tx->active == NULL)
			break;
		t = tx->rr_next != NULL ? tx->rr_next : tx->active;
		if (t->next_block >= t->blocks || t->aborted) {
			if (ring_free_slots(&tx->data) < 1)
				break;
			tx->rr_next = t->next;
			finish_pass(tx, t);
			continue;
		}
		need = group_slots(tx, t);
		if (ring_free_slots(&tx->data) < need)
			break;
		produce_group(tx, t);
		tx->rr_next = t->next;
	}
	sender_kick(tx);
}

uint32_t
sched_complete_below(const struct tx *tx)
{
	const struct tx_transfer *lists[3] = { tx->active, tx->waiting, tx->finishing };
	uint32_t lowest = tx->next_transfer + 1;

	for (size_t l = 0; l < 3; l++)
		for (const struct tx_transfer *t = lists[l]; t != NULL; t = t->next)
			if (t->state != XFER_REPEATING && t->id < lowest)
				lowest = t->id;
	return lowest;
}

static void
remember(struct tx *tx, const struct tx_transfer *t, uint8_t status)
{
	struct tx_recent *r = &tx->recent[tx->recent_head];

	r->transfer = t->id;
	r->status = status;
	r->size = t->size;
	r->last_seq = t->last_seq;
	tx->recent_head = (tx->recent_head + 1) % TX_RECENT_MAX;
	if (tx->nrecent < TX_RECENT_MAX)
		tx->nrecent++;
}

/* Move a sent file to [files] sent (relative path kept) or delete it. */
static int
retire_file(struct tx *tx, const char *rel)
{
	int outbox = spool_outbox_fd(tx->spool), dirfd, rc = 0;
	const char *leaf;
	char variant[256];

	if (tx->sent_fd < 0)
		return unlinkat(outbox, rel, 0) < 0 ? -errno : 0;
	rc = dd_path_open_parent(tx->sent_fd, rel, true, 0755, &dirfd, &leaf);
	if (rc != 0)
		return rc;
	if (renameat2(outbox, rel, dirfd, leaf, RENAME_NOREPLACE) < 0) {
		rc = -errno;
		for (unsigned n = 1; rc == -EEXIST && n < 10000; n++) {
			if (dd_path_variant(leaf, n, variant, sizeof(variant)) != 0)
				break;
			rc = renameat2(outbox, rel, dirfd, variant, RENAME_NOREPLACE) < 0 ? -errno
											 : 0;
		}
	}
	close(dirfd);
	return rc;
}

void
sched_on_last_sent(struct tx *tx, struct tx_transfer *t, uint64_t seq)
{
	int rc;

	t->last_seq = seq;
	close(t->fd);
	t->fd = -1;
	progress_ended(tx, t, !t->aborted);
	if (t->aborted) {
		dd_notice("%s: not sent: %s; it stays in the outbox and is sent again once stable",
			  t->entry->rel, t->abort_reason);
		audit_transfer("file_abandoned", tx, t, t->abort_reason);
		tx->files_abandoned++;
		remember(tx, t, DD_XFER_ABANDONED);
		spool_done(tx->spool, t->entry, false);
		t->entry = NULL;
		/* Abort manifests are repeated like final ones. */
	} else {
		audit_transfer("file_sent", tx, t, NULL);
		dd_info("sent %s (%llu bytes, transfer %u-%u)", t->entry->rel,
			(unsigned long long)t->size, tx->session, t->id);
		tx->files_sent++;
		remember(tx, t, DD_XFER_SENT);
		if (t->entry->recheck) {
			dd_notice("%s changed after it was sent; sending it again", t->entry->rel);
			spool_done(tx->spool, t->entry, false);
		} else {
			rc = retire_file(tx, t->entry->rel);
			if (rc != 0)
				dd_error("%s was sent but could not be %s: %s; it will be sent "
					 "again", t->entry->rel,
					 tx->sent_fd >= 0 ? "moved to the sent directory" : "deleted",
					 strerror(-rc));
			spool_done(tx->spool, t->entry, rc == 0);
		}
		t->entry = NULL;
	}
	t->state = XFER_REPEATING;
	/* Repeat the final manifest at +0.1, +0.4, +1.4, +5 and +15 s, so a lost
	 * copy or an outage does not leave the receiver without the digest, or
	 * without the path of a transfer it must report as lost. When many files
	 * are in flight only the short tail is kept, bounding memory. */
	t->repeats_left = t->manifest == NULL ? 0 : tx->nrepeating < 1024 ? 5 : 3;
	t->next_repeat_ms = dd_mono_ms() + 100;
	tx->nrepeating++;
	sched_arm_timer(tx);
	sched_fill(tx);
}

/* Gaps after the first repeat (+100 ms): +400 ms, +1.4 s, +5 s, +15 s. */
static const uint64_t repeat_gaps_ms[] = { 300, 1000, 3600, 10000 };

static void
on_sched_timer(uv_timer_t *timer)
{
	struct tx *tx = timer->data;
	struct tx_transfer **p = &tx->finishing;
	uint64_t now = dd_mono_ms();

	while (*p != NULL) {
		struct tx_transfer *t = *p;

		if (t->state == XFER_REPEATING && t->repeats_left > 0 && now >= t->next_repeat_ms) {
			uint8_t *plain = sender_ctrl_plain(tx, NULL);

			if (plain == NULL)
				break;
			memcpy(plain, t->manifest, tx->plain_len);
			t->next_repeat_ms = now + repeat_gaps_ms[t->repeats_done++ % 4];
			t->repeats_left--;
		}
		if (t->state == XFER_REPEATING && t->repeats_left == 0) {
			*p = t->next;
			tx->nrepeating--;
			free_transfer(t);
			continue;
		}
		p = &t->next;
	}
	if (tx->waiting != NULL)
		sched_fill(tx);
	if (tx->finishing == NULL && tx->waiting == NULL)
		uv_timer_stop(timer);
	sender_kick(tx);
}

void
sched_arm_timer(struct tx *tx)
{
	if (!uv_is_active((uv_handle_t *)&tx->repeat_timer))
		uv_timer_start(&tx->repeat_timer, on_sched_timer, 50, 50);
}

void
sched_abort_all(struct tx *tx)
{
	struct tx_transfer *lists[3] = { tx->active, tx->waiting, tx->finishing };

	for (size_t l = 0; l < 3; l++)
		for (struct tx_transfer *t = lists[l]; t != NULL; t = t->next) {
			uint8_t *plain;

			if (t->state == XFER_REPEATING)
				continue;
			abort_transfer(t, "diode-tx stopped");
			plain = sender_ctrl_plain(tx, NULL);
			if (plain != NULL)
				put_manifest(tx, t, plain, DD_MANIFEST_ABORT);
			audit_transfer("file_abandoned", tx, t, t->abort_reason);
			progress_ended(tx, t, false);
		}
}

void
sched_free_all(struct tx *tx)
{
	struct tx_transfer *lists[3] = { tx->active, tx->waiting, tx->finishing }, *t, *next;

	for (size_t l = 0; l < 3; l++)
		for (t = lists[l]; t != NULL; t = next) {
			next = t->next;
			free_transfer(t);
		}
	tx->active = tx->finishing = tx->waiting = tx->rr_next = NULL;
	tx->nwaiting = 0;
	tx->nactive = 0;
}
