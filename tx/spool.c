/* Outbox watcher: inotify on every directory, start-up and periodic scans, settle logic. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"
#include "path.h"
#include "tx.h"

#define BUCKETS 4096
#define WATCH_MASK                                                                         \
	(IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | \
	 IN_MOVE_SELF)

struct watch {
	int wd;
	char *rel; /* "" for the outbox itself */
};

struct spool {
	struct tx *tx;
	uv_loop_t *loop;
	int outbox_fd;
	char *outbox;
	uint64_t settle_ms, rescan_ms;
	int inotify_fd;
	uv_poll_t inotify_poll;
	uv_timer_t settle_timer, rescan_timer;
	struct watch *watches;
	size_t nwatches, cap_watches;
	struct spool_entry *buckets[BUCKETS];
	struct spool_entry *queue_head, *queue_tail;
	unsigned queued, pending;
	bool watch_limit_warned;
};

static uint32_t
hash_rel(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static struct spool_entry **
find_slot(struct spool *s, const char *rel)
{
	struct spool_entry **p = &s->buckets[hash_rel(rel) % BUCKETS];

	while (*p != NULL && strcmp((*p)->rel, rel) != 0)
		p = &(*p)->hash_next;
	return p;
}

/* Names the outbox never sends: hidden files and files still being written. */
static bool
ignored_name(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.')
		return true;
	if (n >= 4 && strcmp(name + n - 4, ".tmp") == 0)
		return true;
	if (n >= 5 && strcmp(name + n - 5, ".part") == 0)
		return true;
	return false;
}

static int
join(char *out, size_t len, const char *dir, const char *name)
{
	int n = dir[0] ? snprintf(out, len, "%s/%s", dir, name) : snprintf(out, len, "%s", name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void
enqueue(struct spool *s, struct spool_entry *e)
{
	if (e->state == SPOOL_PENDING)
		s->pending--;
	e->state = SPOOL_QUEUED;
	e->queue_next = NULL;
	if (s->queue_tail != NULL)
		s->queue_tail->queue_next = e;
	else
		s->queue_head = e;
	s->queue_tail = e;
	s->queued++;
	sched_fill(s->tx);
}

static void
remove_entry(struct spool *s, struct spool_entry *e)
{
	struct spool_entry **p = find_slot(s, e->rel);

	if (*p == e)
		*p = e->hash_next;
	if (e->state == SPOOL_PENDING)
		s->pending--;
	free(e);
}

/* A file was seen (scan or event). immediate: it was renamed into place. */
static void
note_file(struct spool *s, const char *rel, bool immediate)
{
	struct spool_entry **slot = find_slot(s, rel), *e = *slot;
	struct stat st;
	const char *reason = NULL;
	uint64_t now = dd_mono_ms();

	if (fstatat(s->outbox_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (e != NULL && e->state == SPOOL_PENDING)
			remove_entry(s, e);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		if (S_ISLNK(st.st_mode) && e == NULL) {
			/* Parked below so the warning is not repeated at every scan. */
			dd_warn("outbox: %s is a symbolic link; not sent (place the file itself in "
				"the outbox)", rel);
		} else {
			return;
		}
	}
	if (e != NULL) {
		e->seen_in_scan = true;
		if (e->state != SPOOL_PENDING) {
			if (e->size != st.st_size || e->mtime.tv_sec != st.st_mtim.tv_sec ||
			    e->mtime.tv_nsec != st.st_mtim.tv_nsec)
				e->recheck = true;
			return;
		}
		if (e->size != st.st_size || e->mtime.tv_sec != st.st_mtim.tv_sec ||
		    e->mtime.tv_nsec != st.st_mtim.tv_nsec) {
			e->size = st.st_size;
			e->mtime = st.st_mtim;
			e->stable_since_ms = now;
		}
		if (immediate && S_ISREG(st.st_mode))
			enqueue(s, e);
		return;
	}
	if (dd_path_check(rel, strlen(rel), &reason) != 0) {
		/* Remembered below (parked) so the warning is not repeated. */
		dd_warn("outbox: '%s' cannot be sent: %s; rename it", rel, reason);
	}
	e = calloc(1, sizeof(*e) + strlen(rel) + 1);
	if (e == NULL) {
		dd_error("outbox: out of memory noting %s; will retry at the next scan", rel);
		return;
	}
	strcpy(e->rel, rel);
	e->size = st.st_size;
	e->mtime = st.st_mtim;
	e->stable_since_ms = now;
	e->seen_in_scan = true;
	e->state = SPOOL_PENDING;
	*slot = e;
	s->pending++;
	if (!S_ISREG(st.st_mode) || reason != NULL) {
		/* Parked forever (until it disappears): never queued. */
		e->stable_since_ms = UINT64_MAX;
		return;
	}
	if (immediate)
		enqueue(s, e);
}

static void
add_watch(struct spool *s, const char *rel)
{
	char full[PATH_MAX];
	int wd;

	if (snprintf(full, sizeof(full), "%s%s%s", s->outbox, rel[0] ? "/" : "", rel) >=
	    (int)sizeof(full))
		return;
	wd = inotify_add_watch(s->inotify_fd, full, WATCH_MASK | IN_ONLYDIR | IN_DONT_FOLLOW);
	if (wd < 0) {
		if (errno == ENOSPC && !s->watch_limit_warned) {
			s->watch_limit_warned = true;
			dd_warn("outbox: inotify watch limit reached at %s; files there are found "
				"by the periodic rescan only (raise fs.inotify.max_user_watches)",
				full);
		}
		return;
	}
	for (size_t i = 0; i < s->nwatches; i++)
		if (s->watches[i].wd == wd) {
			free(s->watches[i].rel);
			s->watches[i].rel = strdup(rel);
			return;
		}
	if (s->nwatches == s->cap_watches) {
		size_t cap = s->cap_watches ? s->cap_watches * 2 : 64;
		struct watch *w = realloc(s->watches, cap * sizeof(*w));

		if (w == NULL)
			return;
		s->watches = w;
		s->cap_watches = cap;
	}
	s->watches[s->nwatches].wd = wd;
	s->watches[s->nwatches].rel = strdup(rel);
	if (s->watches[s->nwatches].rel != NULL)
		s->nwatches++;
}

static void
scan_dir(struct spool *s, const char *rel, bool immediate, unsigned depth)
{
	char child[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int fd;

	if (depth > 64)
		return;
	fd = rel[0] ? openat(s->outbox_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
		    : dup(s->outbox_fd);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	/* A dup of the outbox fd shares its offset: always start from the top. */
	rewinddir(d);
	add_watch(s, rel);
	while ((de = readdir(d)) != NULL) {
		if (ignored_name(de->d_name))
			continue;
		if (join(child, sizeof(child), rel, de->d_name) != 0)
			continue;
		if (de->d_type == DT_DIR) {
			scan_dir(s, child, immediate, depth + 1);
		} else if (de->d_type == DT_UNKNOWN) {
			struct stat st;

			if (fstatat(s->outbox_fd, child, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(st.st_mode))
				scan_dir(s, child, immediate, depth + 1);
			else
				note_file(s, child, immediate);
		} else {
			note_file(s, child, immediate);
		}
	}
	closedir(d);
}

static const char *
watch_rel(struct spool *s, int wd)
{
	for (size_t i = 0; i < s->nwatches; i++)
		if (s->watches[i].wd == wd)
			return s->watches[i].rel;
	return NULL;
}

static void
drop_watch(struct spool *s, int wd)
{
	for (size_t i = 0; i < s->nwatches; i++)
		if (s->watches[i].wd == wd) {
			free(s->watches[i].rel);
			s->watches[i] = s->watches[--s->nwatches];
			return;
		}
}

static void
on_inotify(uv_poll_t *h, int status, int events)
{
	struct spool *s = h->data;
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	char rel[PATH_MAX];

	for (;;) {
		ssize_t n = read(s->inotify_fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			const char *dir;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				dd_warn("outbox: inotify queue overflowed; rescanning");
				scan_dir(s, "", false, 0);
				continue;
			}
			if (ev->mask & IN_IGNORED) {
				drop_watch(s, ev->wd);
				continue;
			}
			if (ev->len == 0 || ignored_name(ev->name))
				continue;
			dir = watch_rel(s, ev->wd);
			if (dir == NULL || join(rel, sizeof(rel), dir, ev->name) != 0)
				continue;
			if (ev->mask & IN_ISDIR) {
				if (ev->mask & (IN_CREATE | IN_MOVED_TO))
					scan_dir(s, rel, (ev->mask & IN_MOVED_TO) != 0, 1);
			} else {
				note_file(s, rel, (ev->mask & IN_MOVED_TO) != 0);
			}
		}
	}
}

static void
on_settle(uv_timer_t *t)
{
	struct spool *s = t->data;
	uint64_t now = dd_mono_ms();

	if (s->pending == 0)
		return;
	for (size_t b = 0; b < BUCKETS; b++) {
		struct spool_entry *e = s->buckets[b], *next;

		for (; e != NULL; e = next) {
			struct stat st;

			next = e->hash_next;
			if (e->state != SPOOL_PENDING || e->stable_since_ms == UINT64_MAX)
				continue;
			if (fstatat(s->outbox_fd, e->rel, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode)) {
				remove_entry(s, e);
				continue;
			}
			if (st.st_size != e->size || st.st_mtim.tv_sec != e->mtime.tv_sec ||
			    st.st_mtim.tv_nsec != e->mtime.tv_nsec) {
				e->size = st.st_size;
				e->mtime = st.st_mtim;
				e->stable_since_ms = now;
			} else if (now - e->stable_since_ms >= s->settle_ms) {
				enqueue(s, e);
			}
		}
	}
}

static void
on_rescan(uv_timer_t *t)
{
	struct spool *s = t->data;

	/* Forget parked entries that vanished, then look at everything again. */
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct spool_entry *e = s->buckets[b]; e != NULL; e = e->hash_next)
			e->seen_in_scan = false;
	scan_dir(s, "", false, 0);
	for (size_t b = 0; b < BUCKETS; b++) {
		struct spool_entry *e = s->buckets[b], *next;

		for (; e != NULL; e = next) {
			next = e->hash_next;
			if (!e->seen_in_scan && e->state == SPOOL_PENDING)
				remove_entry(s, e);
		}
	}
}

int
spool_new(struct spool **out, struct tx *tx, uv_loop_t *loop, const char *outbox,
	  uint64_t settle_ms, uint64_t rescan_ms)
{
	struct spool *s = calloc(1, sizeof(*s));
	uint64_t tick;
	int rc;

	*out = NULL;
	if (s == NULL)
		return -ENOMEM;
	s->tx = tx;
	s->loop = loop;
	s->settle_ms = settle_ms;
	s->rescan_ms = rescan_ms;
	s->inotify_fd = -1;
	s->outbox = strdup(outbox);
	s->outbox_fd = open(outbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->outbox == NULL || s->outbox_fd < 0) {
		rc = s->outbox == NULL ? -ENOMEM : -errno;
		goto fail;
	}
	s->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->inotify_fd < 0) {
		rc = -errno;
		goto fail;
	}
	uv_poll_init(loop, &s->inotify_poll, s->inotify_fd);
	s->inotify_poll.data = s;
	uv_poll_start(&s->inotify_poll, UV_READABLE, on_inotify);
	uv_timer_init(loop, &s->settle_timer);
	s->settle_timer.data = s;
	tick = settle_ms / 4;
	if (tick < 50)
		tick = 50;
	if (tick > 1000)
		tick = 1000;
	uv_timer_start(&s->settle_timer, on_settle, tick, tick);
	uv_timer_init(loop, &s->rescan_timer);
	s->rescan_timer.data = s;
	uv_timer_start(&s->rescan_timer, on_rescan, rescan_ms, rescan_ms);
	*out = s;
	scan_dir(s, "", false, 0);
	return 0;
fail:
	if (s->outbox_fd >= 0)
		close(s->outbox_fd);
	free(s->outbox);
	free(s);
	return rc;
}

int
spool_outbox_fd(const struct spool *s)
{
	return s->outbox_fd;
}

struct spool_entry *
spool_take(struct spool *s)
{
	struct spool_entry *e = s->queue_head;

	if (e == NULL)
		return NULL;
	s->queue_head = e->queue_next;
	if (s->queue_head == NULL)
		s->queue_tail = NULL;
	s->queued--;
	e->state = SPOOL_ACTIVE;
	return e;
}

void
spool_done(struct spool *s, struct spool_entry *e, bool sent)
{
	if (sent) {
		remove_entry(s, e);
		return;
	}
	e->state = SPOOL_PENDING;
	e->recheck = false;
	e->stable_since_ms = dd_mono_ms();
	s->pending++;
}

unsigned
spool_queued(const struct spool *s)
{
	return s->queued + s->pending;
}

static void
close_noop(uv_handle_t *h)
{
	(void)h;
}

void
spool_close(struct spool *s)
{
	uv_close((uv_handle_t *)&s->inotify_poll, close_noop);
	uv_close((uv_handle_t *)&s->settle_timer, close_noop);
	uv_close((uv_handle_t *)&s->rescan_timer, close_noop);
}

void
spool_free(struct spool *s)
{
	if (s == NULL)
		return;
	for (size_t b = 0; b < BUCKETS; b++) {
		struct spool_entry *e = s->buckets[b], *next;

		for (; e != NULL; e = next) {
			next = e->hash_next;
			free(e);
		}
	}
	for (size_t i = 0; i < s->nwatches; i++)
		free(s->watches[i].rel);
	free(s->watches);
	if (s->inotify_fd >= 0)
		close(s->inotify_fd);
	if (s->outbox_fd >= 0)
		close(s->outbox_fd);
	free(s->outbox);
	free(s);
}
