/* Partial state that survives a diode-rx restart: finished-transfer journal and per-transfer metadata. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "path.h"
#include "rx.h"
#include "state.h"

#define JOURNAL "rx-finished"
#define META_MAGIC "diode-partial 1\n"

/* ---- finished ids: an append-only journal, compacted at start ---- */

int
partial_open(struct rx *rx, uint32_t session)
{
	char line[64];
	FILE *f;
	int fd;
	unsigned n = 0;

	fd = openat(rx->state_fd, JOURNAL, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && (f = fdopen(fd, "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			unsigned long long s, id;

			if (sscanf(line, "%llu %llu", &s, &id) == 2 && s == session &&
			    id <= UINT32_MAX) {
				reasm_mark_finished_quiet(rx, (uint32_t)id);
				n++;
			}
		}
		fclose(f);
	} else if (fd >= 0) {
		close(fd);
	}
	/* Compact: rewrite only what is still relevant, then append from there. */
	rx->journal_fd = -1;
	if (partial_rewrite_journal(rx, session) != 0)
		return -EIO;
	if (n > 0)
		dd_info("restored %u finished transfers of session %" PRIu32 " from [state] dir", n,
			session);
	return 0;
}

int
partial_rewrite_journal(struct rx *rx, uint32_t session)
{
	size_t count = 0, len = 0, cap;
	char *buf;
	int rc;

	for (size_t w = 0; w < RX_FINISHED_BITS / 64; w++)
		count += (size_t)__builtin_popcountll(rx->finished_bits[w]);
	cap = count * 24 + 1; /* "%u %u\n" of two u32 fits 22 bytes */
	buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	buf[0] = '\0';
	for (uint32_t off = 0; off < RX_FINISHED_BITS; off++) {
		if (!((rx->finished_bits[off / 64] >> (off % 64)) & 1))
			continue;
		len += (size_t)snprintf(buf + len, cap - len, "%" PRIu32 " %" PRIu32 "\n", session,
					rx->finished_base + off);
	}
	rc = dd_state_write(rx->state_fd, JOURNAL, buf, len);
	free(buf);
	if (rc != 0) {
		dd_error("[state] dir: cannot write %s: %s", JOURNAL, strerror(-rc));
		return rc;
	}
	if (rx->journal_fd >= 0)
		close(rx->journal_fd);
	rx->journal_fd = openat(rx->state_fd, JOURNAL, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	rx->journal_lines = 0;
	return rx->journal_fd < 0 ? -errno : 0;
}

void
partial_finished(struct rx *rx, uint32_t id)
{
	char line[32];
	int n;

	if (rx->journal_fd < 0)
		return;
	/* One write per finished transfer, before anything else can replay it:
	 * the page cache keeps it across a crash of this process. */
	n = snprintf(line, sizeof(line), "%" PRIu32 " %" PRIu32 "\n", rx->session, id);
	if (write(rx->journal_fd, line, (size_t)n) != n) {
		static struct dd_ratelimit rl = { .interval_ms = 60000 };

		if (dd_ratelimit_ok(&rl, dd_mono_ms(), NULL))
			dd_error("[state] dir: cannot append to %s: %s; after a restart a repeated "
				 "pass could deliver a file twice", JOURNAL, strerror(errno));
	}
	if (++rx->journal_lines > 4 * RX_FINISHED_BITS)
		partial_rewrite_journal(rx, rx->session);
}

/* ---- per-transfer metadata beside the staging file ---- */

static void
meta_name(const struct rx_transfer *t, uint32_t session, char *out, size_t len)
{
	snprintf(out, len, "%" PRIu32 "-%" PRIu32 ".meta", session, t->id);
}

static void
hex(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
unhex(uint8_t *out, const char *in, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(in + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (uint8_t)v;
	}
	return 0;
}

int
partial_save(struct rx *rx, struct rx_transfer *t)
{
	size_t bitmap_bytes = ((size_t)t->blocks + 63) / 64 * 8;
	size_t cap = 512 + DD_PATH_MAX + 2 * bitmap_bytes;
	char *buf = malloc(cap), name[64], sha[65];
	uint64_t *bits = NULL;
	int n, rc;

	if (buf == NULL)
		return -ENOMEM;
	if (t->disk_slots > 0) {
		/* Blocks still with the disk thread may not be written yet. */
		bits = malloc(bitmap_bytes);
		if (bits == NULL) {
			free(buf);
			return -ENOMEM;
		}
		memcpy(bits, t->done_bits, bitmap_bytes);
		disk_unwritten(rx, t, bits);
	}
	/* Saved every second on the event loop, so nothing here waits for the
	 * disk: writeback of the data is started, not awaited, and the metadata
	 * is replaced without fsync. After a process crash both are intact (page
	 * cache). After a power cut the metadata may claim blocks whose data did
	 * not reach the disk: the file then fails its SHA-256 check and is
	 * reported, never delivered wrong. */
	if (t->fd >= 0)
		sync_file_range(t->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	hex(sha, t->sha256, sizeof(t->sha256));
	n = snprintf(buf, cap,
		     META_MAGIC "session %" PRIu32 "\ntransfer %" PRIu32 "\ndgram %u\nsize %" PRIu64
		     "\nk_full %u\nm_full %u\nfinal %d\nsha256 %s\nmode %" PRIu32 "\nmtime %" PRIu64
		     "\nlast_pass %d\npath %s\ndone ",
		     rx->session, t->id, (unsigned)(rx->frag_len + 64), t->size, t->k_full,
		     t->m_full, t->final ? 1 : 0, sha, t->mode, t->mtime, t->last_pass_seen ? 1 : 0,
		     t->path != NULL ? t->path : "");
	hex(buf + n, (const uint8_t *)(bits != NULL ? bits : t->done_bits), bitmap_bytes);
	free(bits);
	n += (int)(2 * bitmap_bytes);
	buf[n++] = '\n';
	meta_name(t, rx->session, name, sizeof(name));
	rc = dd_state_write_lazy(rx->staging_fd, name, buf, (size_t)n);
	free(buf);
	if (rc == 0)
		t->dirty = false;
	return rc;
}

void
partial_remove(struct rx *rx, const struct rx_transfer *t)
{
	char name[64];

	meta_name(t, rx->session, name, sizeof(name));
	unlinkat(rx->staging_fd, name, 0);
}

static const char *
field(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
			return p + klen + 1;
	return NULL;
}

static int
field_u64(const char *text, const char *key, uint64_t *v)
{
	const char *p = field(text, key);
	char *end;

	if (p == NULL || *p < '0' || *p > '9')
		return -EINVAL;
	*v = strtoull(p, &end, 10);
	return *end == '\n' ? 0 : -EINVAL;
}

/* Load one metadata file into a free transfer slot. */
static int
load_one(struct rx *rx, const char *text, uint32_t session)
{
	uint64_t sess, id, dgram, size, k_full, m_full, fin, mode, mtime, last_pass;
	const char *path, *done, *sha;
	struct rx_transfer *t;
	size_t path_len, bitmap_bytes;

	if (strncmp(text, META_MAGIC, strlen(META_MAGIC)) != 0 ||
	    field_u64(text, "session", &sess) || field_u64(text, "transfer", &id) ||
	    field_u64(text, "dgram", &dgram) || field_u64(text, "size", &size) ||
	    field_u64(text, "k_full", &k_full) || field_u64(text, "m_full", &m_full) ||
	    field_u64(text, "final", &fin) || field_u64(text, "mode", &mode) ||
	    field_u64(text, "mtime", &mtime) || field_u64(text, "last_pass", &last_pass) ||
	    (path = field(text, "path")) == NULL || (done = field(text, "done")) == NULL ||
	    (sha = field(text, "sha256")) == NULL)
		return -EINVAL;
	if (sess != session && id <= UINT32_MAX) {
		/* The sender started a new session while diode-rx was down: this
		 * transfer can no longer complete. Report it, by path. */
		struct dd_audit_event ev;
		char idtext[32];
		size_t plen = (size_t)(strchr(path, '\n') - path);

		snprintf(idtext, sizeof(idtext), "%" PRIu64 "-%" PRIu64, sess, id);
		dd_audit_begin(&ev, "file_failed");
		dd_audit_str(&ev, "id", idtext);
		dd_audit_u64(&ev, "session", sess);
		dd_audit_u64(&ev, "transfer", id);
		if (plen > 0 && dd_path_check(path, plen, NULL) == 0)
			dd_audit_strn(&ev, "path", path, plen);
		dd_audit_u64(&ev, "size", size);
		dd_audit_str(&ev, "reason", "the sender session ended while diode-rx was down");
		dd_audit_commit(&ev);
		dd_warn("transfer %s (%.*s) failed: the sender session ended while diode-rx was "
			"down", idtext, (int)(plen < 300 ? plen : 300), path);
		return -ESTALE;
	}
	if (sess != session || id > UINT32_MAX || !dd_wire_dgram_size_ok(dgram) || k_full == 0 ||
	    k_full + m_full > 255 || mode > 07777 || size > rx->set.max_file_size)
		return -EINVAL;
	if (rx->frag_len != 0 && rx->frag_len != dd_wire_frag_len(dgram))
		return -EINVAL;
	rx->frag_len = dd_wire_frag_len(dgram);
	rx->plain_len = dgram - DD_SEALED_OVERHEAD;
	t = reasm_new_transfer(rx, (uint32_t)id, size, (unsigned)k_full, (unsigned)m_full, false);
	if (t == NULL)
		return -ENOSPC;
	path_len = (size_t)(strchr(path, '\n') - path);
	if (path_len > 0) {
		if (dd_path_check(path, path_len, NULL) != 0 ||
		    (t->path = strndup(path, path_len)) == NULL)
			goto bad;
	}
	bitmap_bytes = ((size_t)t->blocks + 63) / 64 * 8;
	if ((size_t)(strchr(done, '\n') - done) != 2 * bitmap_bytes ||
	    unhex((uint8_t *)t->done_bits, done, bitmap_bytes) != 0 ||
	    unhex(t->sha256, sha, sizeof(t->sha256)) != 0)
		goto bad;
	memcpy(t->written_bits, t->done_bits, bitmap_bytes); /* for the disk thread */
	for (uint32_t b = 0; b < t->blocks; b++)
		if ((t->done_bits[b / 64] >> (b % 64)) & 1)
			t->blocks_done++;
	t->final = fin != 0;
	t->mode = (uint32_t)mode;
	t->mtime = mtime;
	t->last_pass_seen = last_pass != 0;
	return 0;
bad:
	reasm_drop_transfer(rx, t);
	return -EINVAL;
}

int
partial_load_all(struct rx *rx, uint32_t session)
{
	int fd = dup(rx->staging_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	unsigned loaded = 0, dropped = 0;
	char *text = malloc(1u << 20);

	/* dup shares the offset with the directory fd: start from the top. */
	if (d != NULL)
		rewinddir(d);
	if (d == NULL || text == NULL) {
		if (d != NULL)
			closedir(d);
		else if (fd >= 0)
			close(fd);
		free(text);
		return -ENOMEM;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char part[300];

		if (n <= 5 || strcmp(de->d_name + n - 5, ".meta") != 0)
			continue;
		snprintf(part, sizeof(part), "%.*s.part", (int)(n - 5), de->d_name);
		if (dd_state_read(rx->staging_fd, de->d_name, text, 1u << 20) < 0 ||
		    load_one(rx, text, session) != 0) {
			unlinkat(rx->staging_fd, de->d_name, 0);
			unlinkat(rx->staging_fd, part, 0);
			dropped++;
			continue;
		}
		loaded++;
	}
	closedir(d);
	free(text);
	if (loaded > 0)
		dd_notice("resuming %u partial transfers of session %" PRIu32
			  " (the next carousel pass fills their gaps)", loaded, session);
	if (dropped > 0)
		dd_notice("staging: dropped %u partial transfers of older sessions or unreadable",
			  dropped);
	return 0;
}
