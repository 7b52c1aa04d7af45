/* Publishes diode-tx's transfers (<state dir>/transfers) and holds its lock file, for `diode-tx send`. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"
#include "progress.h"
#include "state.h"
#include "tx.h"

#define PROGRESS_MS 250
#define RECENT_ENDED 64
#define SENT_SLOTS 256

/* A group of a transfer was coded into the data ring up to slot idx; once the
 * sender passed idx, `bytes` of that pass are on the wire. */
struct mark {
	uint32_t start, idx, id; /* the group's slots: [start, idx) */
	unsigned pass;
	uint64_t before, bytes;  /* bytes of the pass before and after the group */
};

/* Bytes of the current pass of a transfer on the wire. */
struct sent_bytes {
	uint32_t id;
	unsigned pass;
	uint64_t bytes;
	bool used;
};

/* A transfer that ended (sent or abandoned), kept so that `send` sees how. */
struct ended {
	char *path; /* owned */
	const char *reason; /* static string of the scheduler, or NULL */
	uint64_t ino, size;
	uint32_t id;
	unsigned passes;
	bool sent;
};

struct tx_progress {
	int state_fd, lock_fd;
	uv_timer_t timer;
	bool timer_ready, dirty, write_failed;
	struct ended ended[RECENT_ENDED];
	unsigned nended, ended_head;
	struct mark *marks; /* FIFO in production order, as the ring */
	uint32_t mcap, mhead, mtail, last_idx;
	struct sent_bytes sent[SENT_SLOTS];
	unsigned sent_next;
	char *buf;
	size_t cap;
};

int
progress_open(struct tx *tx, const char *state_dir, char *err, size_t errlen)
{
	struct tx_progress *p = calloc(1, sizeof(*p));
	char pid[32];
	int n;

	tx->progress = NULL;
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->lock_fd = -1;
	p->state_fd = dd_state_open_dir(state_dir);
	if (p->state_fd < 0) {
		snprintf(err, errlen, "%s: %s", state_dir, strerror(-p->state_fd));
		free(p);
		return -EIO;
	}
	p->lock_fd = openat(p->state_fd, TX_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			    0644);
	if (p->lock_fd < 0) {
		snprintf(err, errlen, "%s/%s: %s", state_dir, TX_LOCK_FILE, strerror(errno));
		goto fail;
	}
	if (flock(p->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		char other[32] = "";
		ssize_t r = pread(p->lock_fd, other, sizeof(other) - 1, 0);

		if (r > 0)
			other[strcspn(other, "\n")] = '\0';
		if (e == EWOULDBLOCK)
			snprintf(err, errlen, "another diode-tx (pid %s) is running with the state "
				 "directory %s; stop it first, or give each instance its own "
				 "[state] dir", r > 0 ? other : "?", state_dir);
		else
			snprintf(err, errlen, "%s/%s: cannot lock: %s", state_dir, TX_LOCK_FILE,
				 strerror(e));
		goto fail;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(p->lock_fd, 0) < 0 || pwrite(p->lock_fd, pid, (size_t)n, 0) != n)
		dd_warn("%s/%s: cannot record the pid: %s", state_dir, TX_LOCK_FILE,
			strerror(errno));
	tx->progress = p;
	return 0;
fail:
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	close(p->state_fd);
	free(p);
	return -EIO;
}

static bool
in_flight(const struct tx *tx)
{
	if (tx->active != NULL || tx->waiting != NULL)
		return true;
	for (const struct tx_transfer *t = tx->finishing; t != NULL; t = t->next)
		if (t->state != XFER_REPEATING)
			return true;
	return false;
}

static int
append(struct tx_progress *p, size_t *len, const char *s, size_t n)
{
	if (*len + n + 1 > p->cap) {
		size_t cap = p->cap ? p->cap : 16384;
		char *b;

		while (*len + n + 1 > cap)
			cap *= 2;
		b = realloc(p->buf, cap);
		if (b == NULL)
			return -ENOMEM;
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + *len, s, n);
	*len += n;
	return 0;
}

static int
append_entry(struct tx_progress *p, size_t *len, const struct dd_progress_entry *e)
{
	char line[DD_PROGRESS_LINE_MAX];
	int n = dd_progress_format(line, sizeof(line), e);

	return n < 0 ? 0 : append(p, len, line, (size_t)n); /* an unsendable name: left out */
}

static struct sent_bytes *
sent_find(struct tx_progress *p, uint32_t id, bool create)
{
	struct sent_bytes *sb;

	for (unsigned i = 0; i < SENT_SLOTS; i++)
		if (p->sent[i].used && p->sent[i].id == id)
			return &p->sent[i];
	if (!create)
		return NULL;
	for (unsigned i = 0; i < SENT_SLOTS; i++)
		if (!p->sent[i].used)
			return &p->sent[i];
	sb = &p->sent[p->sent_next++ % SENT_SLOTS]; /* more than can be in flight: reuse */
	return sb;
}

static void
apply_mark(struct tx_progress *p, const struct mark *m)
{
	struct sent_bytes *sb = sent_find(p, m->id, true);

	*sb = (struct sent_bytes){ .id = m->id, .pass = m->pass, .bytes = m->bytes, .used = true };
}

/* The sender passed these marks: their bytes are on the wire. */
static void
apply_marks(struct tx *tx, struct tx_progress *p)
{
	while (p->mtail != p->mhead &&
	       (int32_t)(tx->data.tail - p->marks[p->mtail % p->mcap].idx) >= 0) {
		apply_mark(p, &p->marks[p->mtail % p->mcap]);
		p->mtail++;
	}
	/* The sender is inside the oldest group left: count the part it passed. */
	if (p->mtail != p->mhead) {
		const struct mark *m = &p->marks[p->mtail % p->mcap];
		uint32_t span = m->idx - m->start, passed = tx->data.tail - m->start;
		struct sent_bytes *sb = sent_find(p, m->id, true);

		uint64_t now_sent = m->before + (m->bytes - m->before) * passed / (span ? span : 1);

		if (span > 0 && passed < span &&
		    (!sb->used || sb->id != m->id || sb->pass != m->pass || sb->bytes < now_sent))
			*sb = (struct sent_bytes){
				.id = m->id, .pass = m->pass, .bytes = now_sent, .used = true,
			};
	}
}

void
progress_group(struct tx *tx, const struct tx_transfer *t)
{
	struct tx_progress *p = tx->progress;
	uint64_t unit = (uint64_t)t->k_full * tx->frag_len;
	uint64_t bytes = t->next_block * unit;
	/* Groups start at multiples of interleave blocks. */
	uint64_t before = t->next_block > 0 ? (uint64_t)((t->next_block - 1) / tx->set.interleave) *
						      tx->set.interleave * unit
					    : 0;

	if (p == NULL || p->marks == NULL)
		return;
	if (p->mhead - p->mtail == p->mcap) {
		apply_mark(p, &p->marks[p->mtail % p->mcap]); /* full: count the oldest as sent */
		p->mtail++;
	}
	p->marks[p->mhead % p->mcap] = (struct mark){
		.start = p->last_idx, .idx = tx->data.head, .id = t->id, .pass = t->pass,
		.before = before < t->size ? before : t->size,
		.bytes = bytes < t->size ? bytes : t->size,
	};
	p->mhead++;
	p->last_idx = tx->data.head;
}

static void
write_now(struct tx *tx)
{
	struct tx_progress *p = tx->progress;
	const struct tx_transfer *lists[3] = { tx->active, tx->waiting, tx->finishing };
	char head[256];
	size_t len = 0;
	int n, rc = 0;

	p->dirty = false;
	apply_marks(tx, p);
	n = snprintf(head, sizeof(head), "%spid %ld\nsession %u\nnext_transfer %u\nqueued %u\n",
		     DD_PROGRESS_MAGIC, (long)getpid(), tx->session, tx->next_transfer,
		     tx->spool != NULL ? spool_queued(tx->spool) : 0);
	rc = append(p, &len, head, (size_t)n);
	for (size_t l = 0; l < 3 && rc == 0; l++)
		for (const struct tx_transfer *t = lists[l]; t != NULL && rc == 0; t = t->next) {
			struct dd_progress_entry e = {
				.id = t->id, .ino = (uint64_t)t->st.st_ino, .size = t->size,
				.pass = t->pass, .passes = t->passes ? t->passes : 1,
			};
			const struct sent_bytes *sb = sent_find(p, t->id, false);
			uint64_t done = sb != NULL && sb->pass == t->pass ? sb->bytes : 0;

			if (t->state == XFER_REPEATING || t->entry == NULL)
				continue;
			e.path = t->entry->rel;
			e.state = t->state == XFER_SENDING	 ? DD_PROGRESS_SENDING
				  : t->state == XFER_WAITING ? DD_PROGRESS_WAITING
							     : DD_PROGRESS_FINISHING;
			e.done = t->state != XFER_WAITING && done < t->size ? done : t->size;
			if (e.pass >= e.passes)
				e.pass = e.passes - 1;
			rc = append_entry(p, &len, &e);
		}
	for (unsigned i = 0; i < p->nended && rc == 0; i++) {
		const struct ended *d =
			&p->ended[(p->ended_head + RECENT_ENDED - p->nended + i) % RECENT_ENDED];
		struct dd_progress_entry e = {
			.id = d->id, .ino = d->ino, .size = d->size, .done = d->size,
			.pass = d->passes - 1, .passes = d->passes, .path = d->path,
			.state = d->sent ? DD_PROGRESS_SENT : DD_PROGRESS_ABANDONED,
			.reason = d->sent ? NULL : d->reason,
		};

		if (!d->sent)
			e.done = 0;
		rc = append_entry(p, &len, &e);
	}
	if (rc == 0)
		rc = dd_state_write_lazy(p->state_fd, DD_PROGRESS_FILE, p->buf, len);
	if (rc != 0 && !p->write_failed)
		dd_warn("[state] dir: cannot write %s: %s; `diode-tx send` shows no progress",
			DD_PROGRESS_FILE, strerror(-rc));
	p->write_failed = rc != 0;
}

static void
on_progress_timer(uv_timer_t *timer)
{
	struct tx *tx = timer->data;
	struct tx_progress *p = tx->progress;

	if (!p->dirty && !in_flight(tx)) {
		uv_timer_stop(timer);
		return;
	}
	write_now(tx);
}

void
progress_start(struct tx *tx)
{
	struct tx_progress *p = tx->progress;

	if (p == NULL)
		return;
	p->mcap = tx->data.cap > 0 ? tx->data.cap : 1;
	p->marks = calloc(p->mcap, sizeof(*p->marks));
	p->last_idx = tx->data.head;
	if (p->marks == NULL)
		dd_warn("out of memory for the progress marks; `diode-tx send` shows less");
	uv_timer_init(tx->loop, &p->timer);
	p->timer.data = tx;
	p->timer_ready = true;
	write_now(tx);
}

void
progress_changed(struct tx *tx)
{
	struct tx_progress *p = tx->progress;

	if (p == NULL || !p->timer_ready)
		return;
	p->dirty = true;
	if (!uv_is_active((uv_handle_t *)&p->timer) && !uv_is_closing((uv_handle_t *)&p->timer))
		uv_timer_start(&p->timer, on_progress_timer, PROGRESS_MS, PROGRESS_MS);
}

void
progress_ended(struct tx *tx, const struct tx_transfer *t, bool sent)
{
	struct tx_progress *p = tx->progress;
	struct ended *d;
	char *path;

	if (p == NULL || t->entry == NULL)
		return;
	{
		struct sent_bytes *sb = sent_find(p, t->id, false);

		if (sb != NULL)
			sb->used = false;
	}
	path = strdup(t->entry->rel);
	if (path == NULL)
		return;
	d = &p->ended[p->ended_head];
	free(d->path);
	*d = (struct ended){
		.path = path, .reason = sent ? NULL : t->abort_reason,
		.ino = (uint64_t)t->st.st_ino, .size = t->size, .id = t->id,
		.passes = t->passes ? t->passes : 1, .sent = sent,
	};
	p->ended_head = (p->ended_head + 1) % RECENT_ENDED;
	if (p->nended < RECENT_ENDED)
		p->nended++;
	progress_changed(tx);
}

void
progress_close(struct tx *tx)
{
	struct tx_progress *p = tx->progress;

	if (p == NULL)
		return;
	write_now(tx);
	for (unsigned i = 0; i < RECENT_ENDED; i++)
		free(p->ended[i].path);
	free(p->buf);
	free(p->marks);
	close(p->state_fd);
	close(p->lock_fd); /* releases the lock: `send` sees diode-tx is gone */
	free(p);
	tx->progress = NULL;
}
