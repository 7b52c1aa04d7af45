/* `diode-tx send`: places files in the running diode-tx's outbox and waits until they are on the wire. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "path.h"
#include "progress.h"
#include "state.h"
#include "tx.h"

#define POLL_MS 200
#define PROGRESS_BUF (2u << 20) /* larger than any progress file */
#define MAX_DEPTH 64
#define SHOWN_MAX 8 /* files with a progress line at once on a terminal */
#define BAR_LEN 12

enum item_state { ITEM_WAITING, ITEM_SENT, ITEM_FAILED };

struct item {
	char *src; /* owned: the path given (or found in a given directory) */
	char *rel; /* owned: its path in the outbox */
	uint64_t size, ino;
	bool placed, reported;
	enum item_state state;
	char reason[160];
	/* progress seen in the transfers file */
	bool active;
	unsigned pass, passes;
	uint64_t done;         /* bytes of all passes so far */
	uint64_t rate_done;    /* done at the last rate sample */
	uint64_t rate_ms;
	double rate;           /* bytes/s, smoothed */
};

struct send {
	const char *outbox, *state_dir;
	int outbox_fd, state_fd, lock_fd;
	struct item *items;
	size_t n, cap;
	bool quiet, tty, errors;
	uint64_t timeout_ms;
	bool base_known;
	uint64_t base_session, base_id;
	char stage[64]; /* hidden staging directory in the outbox */
	int stage_fd;
	char *buf;
	unsigned drawn;   /* progress lines drawn on the terminal */
	uint64_t start_ms, total_rate_done, total_rate_ms;
	double total_rate;
};

static volatile sig_atomic_t interrupted;

static void
on_interrupt(int sig)
{
	interrupted = sig;
}

static void
send_usage(FILE *f)
{
	fprintf(f, "usage: diode-tx -c FILE send [--quiet] [--timeout DURATION] PATH...\n"
		   "  Place the files (directories: every file in them, under the directory's\n"
		   "  name) in the outbox of the running diode-tx and wait until they are on the\n"
		   "  wire. Exit 0 when every file was sent, 1 when some were not, 2 when nothing\n"
		   "  was placed (bad arguments).\n"
		   "  -q, --quiet           print nothing but errors\n"
		   "  -t, --timeout DUR     give up waiting after DUR (e.g. 90s, 10m); the files\n"
		   "                        stay in the outbox and are still sent\n");
}

static void
human(char *out, size_t len, double bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	unsigned u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%.0f %s", bytes, units[u]);
	else
		snprintf(out, len, "%.1f %s", bytes, units[u]);
}

static void
duration(char *out, size_t len, double seconds)
{
	unsigned long s;

	if (!(seconds >= 0) || seconds > 359999) {
		snprintf(out, len, "--:--");
		return;
	}
	s = (unsigned long)(seconds + 0.5);
	if (s >= 3600)
		snprintf(out, len, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(out, len, "%lu:%02lu", s / 60, s % 60);
}

/* ------------------------------------------------------------ collecting */

static bool
ignored_by_outbox(const char *name)
{
	size_t n = strlen(name);

	return name[0] == '.' || (n >= 4 && strcmp(name + n - 4, ".tmp") == 0) ||
	       (n >= 5 && strcmp(name + n - 5, ".part") == 0);
}

static void
problem(struct send *s, const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "diode-tx send: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	s->errors = true;
}

static int
add_item(struct send *s, const char *src, const char *rel)
{
	const char *reason = NULL;
	struct item *it;

	if (dd_path_check(rel, strlen(rel), &reason) != 0) {
		problem(s, "%s: cannot be sent as '%s': ", src, rel);
		fprintf(stderr, "  %s; rename it\n", reason != NULL ? reason : "invalid name");
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct item *items = realloc(s->items, cap * sizeof(*items));

		if (items == NULL)
			return -ENOMEM;
		s->items = items;
		s->cap = cap;
	}
	it = &s->items[s->n];
	memset(it, 0, sizeof(*it));
	it->src = strdup(src);
	it->rel = strdup(rel);
	if (it->src == NULL || it->rel == NULL) {
		free(it->src);
		free(it->rel);
		return -ENOMEM;
	}
	it->passes = 1;
	s->n++;
	return 0;
}

static int
walk_dir(struct send *s, const char *dir, const char *rel, unsigned depth)
{
	char src[PATH_MAX], sub[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (depth > MAX_DEPTH) {
		problem(s, "%s: directories nested too deeply%s", dir, "");
		return 0;
	}
	d = opendir(dir);
	if (d == NULL) {
		problem(s, "%s: %s", dir, strerror(errno));
		return 0;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(src, sizeof(src), "%s/%s", dir, de->d_name) >= (int)sizeof(src) ||
		    snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name) >= (int)sizeof(sub)) {
			problem(s, "%s/%s: path too long", dir, de->d_name);
			continue;
		}
		if (lstat(src, &st) < 0) {
			problem(s, "%s: %s", src, strerror(errno));
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = walk_dir(s, src, sub, depth + 1);
		} else if (S_ISLNK(st.st_mode)) {
			problem(s, "%s: a symbolic link%s; diode-tx never follows them: give the file "
				"itself", src, "");
		} else if (!S_ISREG(st.st_mode)) {
			problem(s, "%s: not a regular file%s", src, "");
		} else if (ignored_by_outbox(de->d_name)) {
			problem(s, "%s: the outbox ignores hidden, *.tmp and *.part names%s; rename "
				"it", src, "");
		} else {
			rc = add_item(s, src, sub);
		}
	}
	closedir(d);
	return rc;
}

/* The name a given PATH gets in the outbox: its last component. */
static int
top_name(const char *path, char *out, size_t len)
{
	char *real = realpath(path, NULL);
	const char *base;

	if (real == NULL)
		return -errno;
	base = strrchr(real, '/');
	base = base != NULL ? base + 1 : real;
	if (base[0] == '\0' || snprintf(out, len, "%s", base) >= (int)len) {
		free(real);
		return -EINVAL;
	}
	free(real);
	return 0;
}

static int
collect(struct send *s, char **paths, int npaths)
{
	for (int i = 0; i < npaths; i++) {
		char name[NAME_MAX + 1] = "";
		struct stat st;
		int rc;

		if (stat(paths[i], &st) < 0) {
			problem(s, "%s: %s", paths[i], strerror(errno));
			continue;
		}
		if (top_name(paths[i], name, sizeof(name)) != 0) {
			problem(s, "%s: cannot tell its name%s", paths[i], "");
			continue;
		}
		if (ignored_by_outbox(name)) {
			problem(s, "%s: the outbox ignores hidden, *.tmp and *.part names (%s); "
				"rename it", paths[i], name);
			continue;
		}
		if (S_ISDIR(st.st_mode))
			rc = walk_dir(s, paths[i], name, 0);
		else if (S_ISREG(st.st_mode))
			rc = add_item(s, paths[i], name);
		else {
			problem(s, "%s: not a regular file or a directory%s", paths[i], "");
			rc = 0;
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
cmp_rel(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->rel, ((const struct item *)b)->rel);
}

/* Every name is new, in the outbox and among the items. */
static void
check_names(struct send *s)
{
	if (s->items == NULL)
		return;
	qsort(s->items, s->n, sizeof(*s->items), cmp_rel);
	for (size_t i = 0; i < s->n; i++) {
		struct stat st;

		if (i > 0 && strcmp(s->items[i].rel, s->items[i - 1].rel) == 0)
			problem(s, "%s and %s would both be placed as the same name", s->items[i - 1].src,
				s->items[i].src);
		if (fstatat(s->outbox_fd, s->items[i].rel, &st, AT_SYMLINK_NOFOLLOW) == 0)
			problem(s, "%s: already in the outbox (%s); not overwritten: wait until it "
				"is sent, or send this one under another name", s->items[i].rel,
				s->outbox);
	}
}

/* -------------------------------------------------------------- placing */

static int
mkdirs(int dirfd, const char *rel)
{
	char path[PATH_MAX];
	size_t len = strlen(rel);

	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, rel, len + 1);
	for (char *p = strchr(path, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdirat(dirfd, path, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

/* Copy src into dirfd/rel (another file system, or linking refused). */
static int
copy_file(const char *src, int dirfd, const char *rel)
{
	struct stat st;
	int in, out, rc = 0;
	char buf[1 << 16];

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	if (fstat(in, &st) < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	out = openat(dirfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		     st.st_mode & 0777);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	for (;;) {
		ssize_t r = read(in, buf, sizeof(buf)), w = 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : 0;
			break;
		}
		while (w < r) {
			ssize_t n = write(out, buf + w, (size_t)(r - w));

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				rc = -errno;
				break;
			}
			w += n;
		}
		if (rc != 0)
			break;
	}
	if (rc == 0) {
		struct timespec times[2] = { st.st_atim, st.st_mtim };

		/* Durable before it is offered: a crash must not send a truncated copy. */
		if (fsync(out) < 0 || futimens(out, times) < 0)
			rc = -errno;
	}
	close(out);
	close(in);
	if (rc != 0)
		unlinkat(dirfd, rel, 0);
	return rc;
}

/* Remove what is left in the staging directory (directories, and files of a
 * failed placement: links or copies, never the originals). */
static void
remove_tree(int parent, const char *name, unsigned depth)
{
	int fd;
	DIR *d;
	struct dirent *de;

	if (unlinkat(parent, name, 0) == 0 || depth > MAX_DEPTH + 1)
		return;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			remove_tree(dirfd(d), de->d_name, depth + 1);
	closedir(d);
	unlinkat(parent, name, AT_REMOVEDIR);
}

/* Stage every file (hard link, else copy) in a hidden directory of the
 * outbox, which the spool ignores. */
static int
stage(struct send *s)
{
	snprintf(s->stage, sizeof(s->stage), ".diode-send.%ld", (long)getpid());
	if (mkdirat(s->outbox_fd, s->stage, 0755) < 0) {
		fprintf(stderr, "diode-tx send: %s/%s: cannot create: %s (run as a user who may "
			"write to the outbox)\n", s->outbox, s->stage, strerror(errno));
		return -1;
	}
	s->stage_fd = openat(s->outbox_fd, s->stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
	if (s->stage_fd < 0) {
		fprintf(stderr, "diode-tx send: %s/%s: %s\n", s->outbox, s->stage, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < s->n; i++) {
		struct item *it = &s->items[i];
		struct stat st;
		int rc = mkdirs(s->stage_fd, it->rel);

		if (rc == 0 && linkat(AT_FDCWD, it->src, s->stage_fd, it->rel, AT_SYMLINK_FOLLOW) < 0)
			rc = copy_file(it->src, s->stage_fd, it->rel);
		if (rc == 0 && fstatat(s->stage_fd, it->rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
		if (rc != 0) {
			fprintf(stderr, "diode-tx send: %s: cannot place it in the outbox %s: %s; "
				"nothing was placed\n", it->src, s->outbox, strerror(-rc));
			return -1;
		}
		it->ino = (uint64_t)st.st_ino;
		it->size = (uint64_t)st.st_size;
	}
	return 0;
}

/* Rename the staged files into the outbox: the topmost directory that does not
 * exist there yet as a whole (the spool takes a renamed directory at once),
 * else the file itself. Never replaces anything. */
static void
place(struct send *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct item *it = &s->items[i];
		char prefix[PATH_MAX];
		struct stat st;
		const char *slash = it->rel;

		if (fstatat(s->outbox_fd, it->rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if ((uint64_t)st.st_ino == it->ino) {
				it->placed = true; /* came with its directory */
				continue;
			}
			it->state = ITEM_FAILED;
			snprintf(it->reason, sizeof(it->reason), "a file of that name appeared in "
				 "the outbox meanwhile; not overwritten");
			continue;
		}
		for (;;) {
			size_t len;

			slash = strchr(slash, '/');
			len = slash != NULL ? (size_t)(slash - it->rel) : strlen(it->rel);
			memcpy(prefix, it->rel, len);
			prefix[len] = '\0';
			if (slash == NULL || fstatat(s->outbox_fd, prefix, &st, AT_SYMLINK_NOFOLLOW) < 0)
				break;
			slash++;
		}
		if (renameat2(s->stage_fd, prefix, s->outbox_fd, prefix, RENAME_NOREPLACE) < 0) {
			it->state = ITEM_FAILED;
			snprintf(it->reason, sizeof(it->reason), "cannot move it into the outbox: %s",
				 strerror(errno));
			continue;
		}
		it->placed = true;
	}
	remove_tree(s->outbox_fd, s->stage, 0);
	close(s->stage_fd);
	s->stage_fd = -1;
	for (size_t i = 0; i < s->n; i++)
		if (s->items[i].state == ITEM_FAILED) {
			fprintf(stderr, "diode-tx send: not placed: %s: %s\n", s->items[i].rel,
				s->items[i].reason);
			s->items[i].reported = true;
		}
}

/* ------------------------------------------------------------- watching */

/* 1: diode-tx holds its lock; 0: it does not run; -1: cannot tell. */
static int
daemon_running(struct send *s)
{
	if (s->lock_fd < 0) {
		s->lock_fd = openat(s->state_fd, TX_LOCK_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (s->lock_fd < 0)
			return errno == ENOENT ? 0 : -1;
	}
	if (flock(s->lock_fd, LOCK_SH | LOCK_NB) == 0) {
		flock(s->lock_fd, LOCK_UN);
		return 0;
	}
	return errno == EWOULDBLOCK ? 1 : -1;
}

/* Read the transfers file: the baseline (first call) and the progress of our
 * files. Absent or unreadable: nothing learnt. */
static void
read_progress(struct send *s, bool baseline)
{
	uint64_t session = 0, next = 0;
	char *p, *end;
	int n = dd_state_read(s->state_fd, DD_PROGRESS_FILE, s->buf, PROGRESS_BUF);

	if (n < 0 || strncmp(s->buf, DD_PROGRESS_MAGIC, strlen(DD_PROGRESS_MAGIC)) != 0)
		return;
	if (dd_state_get_u64(s->buf, "session", &session) != 0 ||
	    dd_state_get_u64(s->buf, "next_transfer", &next) != 0)
		return;
	if (baseline) {
		s->base_known = true;
		s->base_session = session;
		s->base_id = next;
		return;
	}
	for (size_t i = 0; i < s->n; i++)
		s->items[i].active = false;
	end = s->buf + n;
	for (p = s->buf; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		struct dd_progress_entry e;

		if (nl == NULL)
			break; /* a line is complete only with its newline */
		if (len > 0 && p[0] == 'T' && dd_progress_parse(&e, p, len) == 0 &&
		    (!s->base_known || session != s->base_session || e.id > s->base_id)) {
			for (size_t i = 0; i < s->n; i++) {
				struct item *it = &s->items[i];

				if (it->state != ITEM_WAITING || it->ino != e.ino ||
				    strlen(it->rel) != e.path_len ||
				    memcmp(it->rel, e.path, e.path_len) != 0)
					continue;
				it->passes = e.passes;
				it->pass = e.pass;
				if (e.state == DD_PROGRESS_ABANDONED) {
					it->state = ITEM_FAILED;
					snprintf(it->reason, sizeof(it->reason),
						 "%.*s; it stays in the outbox and diode-tx sends "
						 "it again once it is stable",
						 (int)(e.reason_len < 100 ? e.reason_len : 100),
						 e.reason_len ? e.reason : "abandoned");
				} else {
					it->active = e.state != DD_PROGRESS_SENT;
					it->done = e.state == DD_PROGRESS_SENT
							   ? e.size * e.passes
							   : e.size * e.pass + e.done;
				}
			}
		}
		p = nl + 1;
	}
}

static void
update_rate(double *rate, uint64_t *last_done, uint64_t *last_ms, uint64_t done, uint64_t now)
{
	if (*last_ms == 0) {
		*last_ms = now;
		*last_done = done;
		return;
	}
	if (now - *last_ms < 500 || done < *last_done)
		return;
	{
		double r = (double)(done - *last_done) * 1000.0 / (double)(now - *last_ms);

		*rate = *rate == 0 ? r : 0.6 * *rate + 0.4 * r;
	}
	*last_ms = now;
	*last_done = done;
}

static unsigned
term_width(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col;
	return 80;
}

static void
bar_line(char *out, size_t len, unsigned width, const char *name, uint64_t done, uint64_t total,
	 double rate, const char *note)
{
	char d[32], t[32], r[32], eta[32], bar[BAR_LEN + 1], label[64];
	double frac = total ? (double)done / (double)total : 1;
	unsigned filled, namew = width > 80 ? 16 + (width - 80) / 2 : 16;
	size_t nlen = strlen(name);

	if (namew > sizeof(label) - 1)
		namew = sizeof(label) - 1;
	if (frac > 1)
		frac = 1;
	filled = (unsigned)(frac * BAR_LEN);
	for (unsigned i = 0; i < BAR_LEN; i++)
		bar[i] = i < filled ? '#' : '-';
	bar[BAR_LEN] = '\0';
	if (nlen > namew)
		snprintf(label, sizeof(label), "...%s", name + nlen - (namew - 3));
	else
		snprintf(label, sizeof(label), "%s", name);
	human(d, sizeof(d), (double)done);
	human(t, sizeof(t), (double)total);
	human(r, sizeof(r), rate);
	duration(eta, sizeof(eta), rate > 0 ? (double)(total - (done < total ? done : total)) / rate
					    : -1);
	if (note != NULL)
		snprintf(out, len, "  %-*s [%s] %3.0f%% %s", (int)namew, label, bar, frac * 100,
			 note);
	else
		snprintf(out, len, "  %-*s [%s] %3.0f%% %s/%s %s/s ETA %s", (int)namew, label, bar,
			 frac * 100, d, t, r, eta);
	if (strlen(out) > width - 1)
		out[width - 1] = '\0';
}

/* An item ended: one line, on a terminal above the redrawn block. */
static void
report_item(struct send *s, const struct item *it)
{
	char sz[32];

	if (s->quiet) {
		if (it->state == ITEM_FAILED)
			fprintf(stderr, "diode-tx send: not sent: %s: %s\n", it->rel, it->reason);
		return;
	}
	human(sz, sizeof(sz), (double)it->size);
	if (s->tty)
		fputs("\r\033[K", stdout);
	if (it->state == ITEM_SENT)
		printf("sent %s (%llu bytes)\n", it->rel, (unsigned long long)it->size);
	else
		printf("not sent: %s: %s\n", it->rel, it->reason);
}

static void
draw(struct send *s, uint64_t now, bool final)
{
	unsigned width = term_width(), shown = 0, queued = 0, nsent = 0, nfailed = 0;
	uint64_t done = 0, total = 0;
	char line[512];

	if (!s->tty || s->quiet)
		return;
	if (s->drawn > 0)
		printf("\033[%uA", s->drawn);
	s->drawn = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct item *it = &s->items[i];

		total += it->size * it->passes;
		done += it->state == ITEM_SENT ? it->size * it->passes : it->done;
		nsent += it->state == ITEM_SENT;
		nfailed += it->state == ITEM_FAILED;
		if (it->state != ITEM_WAITING || final)
			continue;
		if (!it->active) {
			queued++;
			continue;
		}
		if (shown++ >= SHOWN_MAX)
			continue;
		bar_line(line, sizeof(line), width, it->rel, it->done, it->size * it->passes,
			 it->rate, NULL);
		if (it->passes > 1) {
			size_t l = strlen(line);

			snprintf(line + l, sizeof(line) - l, " (pass %u/%u)", it->pass + 1, it->passes);
			if (strlen(line) > width - 1)
				line[width - 1] = '\0';
		}
		printf("\r\033[K%s\n", line);
		s->drawn++;
	}
	if (shown > SHOWN_MAX || queued > 0) {
		printf("\r\033[K  ... %u more sending, %u queued\n",
		       shown > SHOWN_MAX ? shown - SHOWN_MAX : 0, queued);
		s->drawn++;
	}
	update_rate(&s->total_rate, &s->total_rate_done, &s->total_rate_ms, done, now);
	{
		char label[64];

		snprintf(label, sizeof(label), "total: %u/%zu files", nsent, s->n);
		bar_line(line, sizeof(line), width, label, done, total, s->total_rate,
			 final ? (nfailed ? "some files not sent" : "done") : NULL);
		printf("\r\033[K%s\n", line);
		s->drawn++;
	}
	if (final)
		s->drawn = 0;
	fflush(stdout);
}

static int
wait_sent(struct send *s)
{
	uint64_t deadline = s->timeout_ms ? dd_mono_ms() + s->timeout_ms : 0;
	bool stopped = false;
	size_t left;

	for (;;) {
		uint64_t now = dd_mono_ms();
		struct timespec ts = { 0, POLL_MS * 1000000L };
		int running;

		read_progress(s, false);
		left = 0;
		for (size_t i = 0; i < s->n; i++) {
			struct item *it = &s->items[i];
			struct stat st;

			if (it->state == ITEM_WAITING &&
			    (fstatat(s->outbox_fd, it->rel, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			     (uint64_t)st.st_ino != it->ino))
				it->state = ITEM_SENT;
			if (it->state != ITEM_WAITING) {
				if (!it->reported)
					report_item(s, it);
				it->reported = true;
				continue;
			}
			update_rate(&it->rate, &it->rate_done, &it->rate_ms, it->done, now);
			left++;
		}
		if (left == 0)
			break;
		running = daemon_running(s);
		if (running == 0) {
			stopped = true;
			break;
		}
		if (interrupted || (deadline && now >= deadline))
			break;
		draw(s, now, false);
		nanosleep(&ts, NULL);
	}
	draw(s, dd_mono_ms(), true);
	if (left == 0)
		return 0;
	if (stopped)
		fprintf(stderr, "diode-tx send: diode-tx is not running (nothing holds %s/%s): %zu "
			"file%s not sent; they stay in the outbox %s and are sent when diode-tx "
			"starts\n", s->state_dir, TX_LOCK_FILE, left, left == 1 ? "" : "s", s->outbox);
	else if (interrupted)
		fprintf(stderr, "diode-tx send: interrupted: %zu file%s not yet sent; they stay in "
			"the outbox %s and diode-tx sends them\n", left, left == 1 ? "" : "s",
			s->outbox);
	else
		fprintf(stderr, "diode-tx send: timed out: %zu file%s not yet sent; they stay in "
			"the outbox %s and diode-tx sends them\n", left, left == 1 ? "" : "s",
			s->outbox);
	for (size_t i = 0; i < s->n && !s->quiet; i++)
		if (s->items[i].state == ITEM_WAITING)
			fprintf(stderr, "  waiting: %s\n", s->items[i].rel);
	return 1;
}

static void
send_free(struct send *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->items[i].src);
		free(s->items[i].rel);
	}
	free(s->items);
	free(s->buf);
	if (s->stage_fd >= 0) {
		close(s->stage_fd);
		remove_tree(s->outbox_fd, s->stage, 0);
	}
	if (s->outbox_fd >= 0)
		close(s->outbox_fd);
	if (s->state_fd >= 0)
		close(s->state_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
}

int
send_main(const struct dd_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct send s = { .outbox_fd = -1, .state_fd = -1, .lock_fd = -1, .stage_fd = -1 };
	struct sigaction sa;
	size_t failed = 0;
	int opt, rc = 2, running;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "qt:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			s.quiet = true;
			break;
		case 't':
			if (dd_config_parse_duration(optarg, &s.timeout_ms) != 0 || s.timeout_ms == 0) {
				fprintf(stderr, "diode-tx send: --timeout '%s': expected a duration such "
					"as 30s, 10m or 1h\n", optarg);
				return 2;
			}
			break;
		case 'h':
			send_usage(stdout);
			return 0;
		default:
			send_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		send_usage(stderr);
		return 2;
	}
	s.outbox = dd_config_str(cfg, "files", "outbox");
	s.state_dir = dd_config_str(cfg, "state", "dir");
	s.tty = isatty(STDOUT_FILENO) == 1;
	s.outbox_fd = open(s.outbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s.outbox_fd < 0) {
		fprintf(stderr, "%s: [files] outbox: %s: %s\n", dd_config_where(cfg, "files", "outbox"),
			s.outbox, strerror(errno));
		goto out;
	}
	s.state_fd = open(s.state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s.state_fd < 0) {
		fprintf(stderr, "%s: [state] dir: %s: %s (has diode-tx ever run? run send as "
			"diode-tx's user)\n", dd_config_where(cfg, "state", "dir"), s.state_dir,
			strerror(errno));
		goto out;
	}
	s.buf = malloc(PROGRESS_BUF);
	if (s.buf == NULL || collect(&s, argv + optind, argc - optind) != 0) {
		fprintf(stderr, "diode-tx send: out of memory\n");
		goto out;
	}
	if (s.n == 0 && !s.errors) {
		fprintf(stderr, "diode-tx send: no file to send in the given paths\n");
		goto out;
	}
	check_names(&s);
	if (s.errors) {
		fprintf(stderr, "diode-tx send: nothing was placed in the outbox\n");
		goto out;
	}
	running = daemon_running(&s);
	read_progress(&s, true);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = 1;
	if (stage(&s) != 0)
		goto out;
	place(&s);
	if (running == 0) {
		rc = 1;
		fprintf(stderr, "diode-tx send: diode-tx is not running (nothing holds %s/%s): the "
			"files were placed in the outbox %s and are sent when it starts\n",
			s.state_dir, TX_LOCK_FILE, s.outbox);
		goto out;
	}
	if (running < 0)
		fprintf(stderr, "diode-tx send: cannot tell whether diode-tx runs (%s/%s: %s); "
			"waiting anyway\n", s.state_dir, TX_LOCK_FILE, strerror(errno));
	s.start_ms = dd_mono_ms();
	rc = wait_sent(&s);
	for (size_t i = 0; i < s.n; i++)
		failed += s.items[i].state == ITEM_FAILED;
	if (failed > 0) {
		fprintf(stderr, "diode-tx send: %zu of %zu file%s not sent\n", failed, s.n,
			s.n == 1 ? "" : "s");
		rc = 1;
	}
	if (interrupted && rc != 0)
		rc = 128 + interrupted;
out:
	send_free(&s);
	return rc;
}
