/* Record queue: bounded FIFO of records in a memory ring, then in a ring file with a small header. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "recq.h"

/*
 * Memory: a byte ring of frames [u32 length][bytes]. A frame never wraps:
 * when it does not fit before the end, a marker (length 0xffffffff, or less
 * than 4 bytes left) sends the reader back to offset 0. The ring is never
 * filled completely, so head == tail means empty.
 *
 * File: a 4096-byte header, then a ring of file_cap bytes holding the same
 * frames, which may straddle the end. head and tail are absolute byte
 * positions (taken modulo file_cap); tail counts buffered appends too.
 */
#define HDR_SIZE 4096
#define HDR_USED 64
#define WBUF_CAP (64 * 1024)
#define RBUF_MIN (256 * 1024)
#define WRAP_MARK 0xffffffffu
#define FRAME 4
#define NONE ((size_t)-1)
#define FILE_MIN (64 * 1024)

static const char magic[16] = "diode-recq-v1\n";

struct dd_recq {
	size_t max_record;
	uint8_t *mem;
	size_t mem_cap, mem_head, mem_tail;
	uint64_t mem_count, mem_bytes;
	int fd;
	uint64_t file_cap, want_cap, head, tail, file_count, file_bytes;
	uint8_t *wbuf;
	size_t wlen;
	uint8_t *rbuf;
	size_t rbuf_cap;
	bool dirty;
};

int
dd_recq_new(struct dd_recq **out, size_t mem_bytes, size_t max_record)
{
	struct dd_recq *q;

	*out = NULL;
	if (mem_bytes < max_record + 2 * FRAME)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->fd = -1;
	q->max_record = max_record;
	q->mem_cap = mem_bytes;
	q->mem = malloc(mem_bytes);
	if (q->mem == NULL) {
		free(q);
		return -ENOMEM;
	}
	*out = q;
	return 0;
}

void
dd_recq_free(struct dd_recq *q)
{
	if (q == NULL)
		return;
	if (q->fd >= 0)
		close(q->fd);
	free(q->mem);
	free(q->wbuf);
	free(q->rbuf);
	free(q);
}

uint64_t
dd_recq_records(const struct dd_recq *q)
{
	return q->mem_count + q->file_count;
}

uint64_t
dd_recq_bytes(const struct dd_recq *q)
{
	return q->mem_bytes + q->file_bytes;
}

uint64_t
dd_recq_file_records(const struct dd_recq *q)
{
	return q->file_count;
}

/* ---- memory ring ---- */

/* Where a frame of need bytes goes, or NONE; writes a wrap marker when needed. */
static size_t
mem_place(struct dd_recq *q, size_t need)
{
	if (q->mem_count == 0) {
		q->mem_head = q->mem_tail = 0;
		return need < q->mem_cap ? 0 : NONE;
	}
	if (q->mem_tail >= q->mem_head) {
		if (q->mem_cap - q->mem_tail >= need)
			return q->mem_tail;
		if (need < q->mem_head) {
			if (q->mem_cap - q->mem_tail >= FRAME)
				dd_store_be32(q->mem + q->mem_tail, WRAP_MARK);
			return 0;
		}
		return NONE;
	}
	return q->mem_head - q->mem_tail > need ? q->mem_tail : NONE;
}

static bool
mem_put(struct dd_recq *q, const void *rec, size_t len)
{
	size_t pos = mem_place(q, FRAME + len);

	if (pos == NONE)
		return false;
	dd_store_be32(q->mem + pos, (uint32_t)len);
	if (len > 0)
		memcpy(q->mem + pos + FRAME, rec, len);
	q->mem_tail = pos + FRAME + len;
	q->mem_count++;
	q->mem_bytes += len;
	return true;
}

/* Offset of the frame at the head (following a wrap marker). */
static size_t
mem_front(struct dd_recq *q)
{
	if (q->mem_cap - q->mem_head < FRAME || dd_load_be32(q->mem + q->mem_head) == WRAP_MARK)
		q->mem_head = 0;
	return q->mem_head;
}

static void
mem_pop(struct dd_recq *q)
{
	size_t pos = mem_front(q);
	size_t len = dd_load_be32(q->mem + pos);

	q->mem_head = pos + FRAME + len;
	q->mem_count--;
	q->mem_bytes -= len;
	if (q->mem_count == 0)
		q->mem_head = q->mem_tail = 0;
}

/* ---- file ring ---- */

static int
io_all(int fd, bool write, uint8_t *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t r = write ? pwrite(fd, p, n, off) : pread(fd, p, n, off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* Read or write n bytes at ring position pos, in two pieces at the wrap. */
static int
f_io(struct dd_recq *q, bool write, uint64_t pos, void *buf, size_t n)
{
	uint64_t off = pos % q->file_cap;
	size_t first = q->file_cap - off < n ? (size_t)(q->file_cap - off) : n;
	int rc = io_all(q->fd, write, buf, first, (off_t)(HDR_SIZE + off));

	if (rc == 0 && n > first)
		rc = io_all(q->fd, write, (uint8_t *)buf + first, n - first, HDR_SIZE);
	return rc;
}

static int
flush_w(struct dd_recq *q)
{
	int rc;

	if (q->wlen == 0)
		return 0;
	rc = f_io(q, true, q->tail - q->wlen, q->wbuf, q->wlen);
	if (rc == 0)
		q->wlen = 0;
	return rc;
}

static int
write_header(struct dd_recq *q)
{
	uint8_t h[HDR_USED];
	int rc;

	memset(h, 0, sizeof(h));
	memcpy(h, magic, sizeof(magic));
	dd_store_be64(h + 16, q->file_cap);
	dd_store_be64(h + 24, q->head);
	dd_store_be64(h + 32, q->tail);
	dd_store_be64(h + 40, q->file_count);
	rc = io_all(q->fd, true, h, sizeof(h), 0);
	if (rc == 0)
		q->dirty = false;
	return rc;
}

/* The file part just became empty: start again at 0, at the wanted size. */
static void
file_emptied(struct dd_recq *q)
{
	if (q->file_count != 0 || q->wlen != 0)
		return;
	q->head = q->tail = 0;
	q->file_cap = q->want_cap;
	q->dirty = true;
}

/* Discard the file part after a read-back failure (a damaged journal). */
static void
file_reset(struct dd_recq *q)
{
	q->wlen = 0;
	q->file_count = q->file_bytes = 0;
	file_emptied(q);
}

/* Move frames from the head of the file into memory while they fit. */
static int
refill(struct dd_recq *q)
{
	int rc = flush_w(q);

	if (rc != 0)
		return rc;
	while (q->file_count > 0) {
		uint64_t avail = q->tail - q->head;
		size_t chunk = avail < q->rbuf_cap ? (size_t)avail : q->rbuf_cap, off = 0;
		bool full = false;

		rc = f_io(q, false, q->head, q->rbuf, chunk);
		if (rc != 0)
			return rc;
		while (q->file_count > 0 && chunk - off >= FRAME) {
			size_t len = dd_load_be32(q->rbuf + off);

			if (len > q->max_record || FRAME + len > avail - off) {
				file_reset(q);
				return -EIO;
			}
			if (chunk - off < FRAME + len)
				break;
			if (!mem_put(q, q->rbuf + off + FRAME, len)) {
				full = true;
				break;
			}
			off += FRAME + len;
			q->head += FRAME + len;
			q->file_count--;
			q->file_bytes -= len;
		}
		q->dirty = true;
		if (full || off == 0)
			break;
	}
	if (q->file_count == 0 && q->head != q->tail) {
		file_reset(q);
		return -EIO;
	}
	file_emptied(q);
	return 0;
}

static bool
file_has_room(const struct dd_recq *q, size_t need)
{
	return q->fd >= 0 && q->tail - q->head + need <= q->file_cap;
}

static int
file_append(struct dd_recq *q, const void *rec, size_t len)
{
	uint8_t frame[FRAME];
	size_t need = FRAME + len;
	int rc;

	if (q->wlen + need > WBUF_CAP && (rc = flush_w(q)) != 0)
		return rc;
	dd_store_be32(frame, (uint32_t)len);
	if (need > WBUF_CAP) {
		rc = f_io(q, true, q->tail, frame, FRAME);
		if (rc == 0 && len > 0)
			rc = f_io(q, true, q->tail + FRAME, (void *)(uintptr_t)rec, len);
		if (rc != 0)
			return rc;
	} else {
		memcpy(q->wbuf + q->wlen, frame, FRAME);
		if (len > 0)
			memcpy(q->wbuf + q->wlen + FRAME, rec, len);
		q->wlen += need;
	}
	q->tail += need;
	q->file_count++;
	q->file_bytes += len;
	q->dirty = true;
	return 0;
}

int
dd_recq_push(struct dd_recq *q, const void *rec, size_t len)
{
	size_t need = FRAME + len;
	int rc;

	if (len > q->max_record)
		return -ENOSPC;
	if (q->file_count == 0 && mem_put(q, rec, len))
		return 0;
	if (!file_has_room(q, need) && q->file_count > 0 &&
	    q->mem_bytes + FRAME * q->mem_count < q->mem_cap / 2) {
		/* Memory has room again: make room in the file by moving its head. */
		rc = refill(q);
		if (rc != 0)
			return rc;
		if (q->file_count == 0 && mem_put(q, rec, len))
			return 0;
	}
	if (!file_has_room(q, need))
		return -ENOSPC;
	return file_append(q, rec, len);
}

/* Drop the oldest records, at least want bytes of frames (or everything). */
static int
evict(struct dd_recq *q, uint64_t want, uint64_t *dropped)
{
	uint64_t freed = 0;
	int rc;

	while (freed < want && dd_recq_records(q) > 0) {
		uint64_t before = dd_recq_bytes(q) + FRAME * dd_recq_records(q);

		rc = dd_recq_drop_oldest(q);
		if (rc != 0)
			return rc;
		(*dropped)++;
		freed += before - (dd_recq_bytes(q) + FRAME * dd_recq_records(q));
	}
	return 0;
}

int
dd_recq_push_drop_oldest(struct dd_recq *q, const void *rec, size_t len, uint64_t *dropped)
{
	uint64_t chunk = (q->mem_cap + (q->fd >= 0 ? q->file_cap : 0)) / 64;
	int rc;

	*dropped = 0;
	if (len > q->max_record)
		return -ENOSPC;
	if (chunk > 64 * 1024)
		chunk = 64 * 1024;
	if (chunk < FRAME + len)
		chunk = FRAME + len;
	for (;;) {
		rc = dd_recq_push(q, rec, len);
		if (rc != -ENOSPC || dd_recq_records(q) == 0)
			return rc;
		/* Evict a batch, not one record at a time: a flood then costs a few
		 * large moves instead of one file read per record. */
		rc = evict(q, chunk, dropped);
		if (rc == 0 && q->file_count > 0)
			rc = refill(q);
		if (rc != 0)
			return rc;
	}
}

int
dd_recq_peek(struct dd_recq *q, const uint8_t **rec, size_t *len)
{
	size_t pos;
	int rc;

	*rec = NULL;
	*len = 0;
	if (q->mem_count == 0) {
		if (q->file_count == 0)
			return -ENOENT;
		rc = refill(q);
		if (rc != 0)
			return rc;
		if (q->mem_count == 0)
			return -ENOENT;
	}
	pos = mem_front(q);
	*len = dd_load_be32(q->mem + pos);
	*rec = q->mem + pos + FRAME;
	return 0;
}

void
dd_recq_pop(struct dd_recq *q)
{
	if (q->mem_count > 0)
		mem_pop(q);
}

int
dd_recq_drop_oldest(struct dd_recq *q)
{
	uint8_t frame[FRAME];
	size_t len;
	int rc;

	if (q->mem_count > 0) {
		mem_pop(q);
		return 0;
	}
	if (q->file_count == 0)
		return -ENOENT;
	rc = flush_w(q);
	if (rc == 0)
		rc = f_io(q, false, q->head, frame, FRAME);
	if (rc != 0)
		return rc;
	len = dd_load_be32(frame);
	if (len > q->max_record || FRAME + len > q->tail - q->head) {
		file_reset(q);
		return -EIO;
	}
	q->head += FRAME + len;
	q->file_count--;
	q->file_bytes -= len;
	q->dirty = true;
	file_emptied(q);
	return 0;
}

int
dd_recq_sync(struct dd_recq *q)
{
	int rc;

	if (q->fd < 0)
		return 0;
	rc = flush_w(q);
	if (rc == 0 && q->dirty)
		rc = write_header(q);
	return rc;
}

/* ---- attach: load or create the file ---- */

static void
note_set(char *note, size_t notelen, const char *fmt, const char *a, const char *b)
{
	if (note != NULL && notelen > 0)
		snprintf(note, notelen, fmt, a, b);
}

/* Walk the frames between head and tail; the number of frames, or -EBADMSG. */
static int64_t
walk_file(struct dd_recq *q, uint64_t *bytes)
{
	uint64_t pos = q->head, n = 0;

	*bytes = 0;
	while (pos < q->tail) {
		uint64_t avail = q->tail - pos;
		size_t chunk = avail < q->rbuf_cap ? (size_t)avail : q->rbuf_cap, off = 0;

		if (f_io(q, false, pos, q->rbuf, chunk) != 0)
			return -EIO;
		while (chunk - off >= FRAME) {
			size_t len = dd_load_be32(q->rbuf + off);

			if (len > q->max_record || FRAME + len > avail - off)
				return -EBADMSG;
			if (chunk - off < FRAME + len)
				break;
			off += FRAME + len;
			n++;
			*bytes += len;
		}
		if (off == 0)
			return -EBADMSG;
		pos += off;
	}
	return (int64_t)n;
}

int
dd_recq_attach(struct dd_recq *q, int dirfd, const char *name, uint64_t file_bytes,
	       uint64_t *recovered, char *note, size_t notelen)
{
	uint8_t h[HDR_USED];
	struct stat st;
	uint64_t cap, head, tail, bytes = 0;
	int64_t n;
	int fd, rc;
	bool fresh = false;

	*recovered = 0;
	if (note != NULL && notelen > 0)
		note[0] = '\0';
	if (q->fd >= 0 || file_bytes < FILE_MIN || file_bytes < q->max_record + FRAME)
		return -EINVAL;
	q->rbuf_cap = q->max_record + FRAME > RBUF_MIN ? q->max_record + FRAME : RBUF_MIN;
	q->wbuf = malloc(WBUF_CAP);
	q->rbuf = malloc(q->rbuf_cap);
	if (q->wbuf == NULL || q->rbuf == NULL)
		return -ENOMEM;
	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		note_set(note, notelen, "%s: %s", name, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		note_set(note, notelen, "%s: %s", name, "not a regular file");
		close(fd);
		return -EINVAL;
	}
	q->fd = fd;
	q->want_cap = file_bytes;
	if (st.st_size == 0) {
		fresh = true;
	} else if (st.st_size < HDR_USED || io_all(fd, false, h, sizeof(h), 0) != 0 ||
		   memcmp(h, magic, sizeof(magic)) != 0) {
		note_set(note, notelen, "%s: %s; emptied it", name, "not a record journal");
		fresh = true;
	} else {
		cap = dd_load_be64(h + 16);
		head = dd_load_be64(h + 24);
		tail = dd_load_be64(h + 32);
		if (cap < FILE_MIN || cap > (1ull << 40) || tail < head || tail - head > cap) {
			note_set(note, notelen, "%s: %s; emptied it", name, "damaged header");
			fresh = true;
		} else {
			q->file_cap = cap;
			q->head = head;
			q->tail = tail;
			n = walk_file(q, &bytes);
			if (n < 0) {
				note_set(note, notelen, "%s: %s; emptied it (its records are lost)",
					 name, "records cannot be read back (after a crash?)");
				fresh = true;
			} else {
				q->file_count = (uint64_t)n;
				q->file_bytes = bytes;
				*recovered = (uint64_t)n;
			}
		}
	}
	if (fresh) {
		q->file_cap = file_bytes;
		q->head = q->tail = q->file_count = q->file_bytes = 0;
		if (ftruncate(fd, HDR_SIZE) < 0) {
			rc = -errno;
			note_set(note, notelen, "%s: %s", name, strerror(-rc));
			return rc;
		}
	} else if (q->file_count == 0) {
		file_emptied(q);
	} else if (q->file_cap != file_bytes && note != NULL && notelen > 0 && note[0] == '\0') {
		snprintf(note, notelen, "%s: keeps its earlier size of %llu bytes until the %llu "
			 "records it holds are sent", name, (unsigned long long)q->file_cap,
			 (unsigned long long)q->file_count);
	}
	rc = write_header(q);
	if (rc != 0)
		note_set(note, notelen, "%s: %s", name, strerror(-rc));
	return rc;
}

/* ---- save at a clean stop ---- */

int
dd_recq_save(struct dd_recq *q, const struct iovec *front, size_t nfront, uint64_t *dropped)
{
	size_t nmem = (size_t)q->mem_count, n = nfront + nmem, keep, first;
	struct iovec *v = NULL;
	uint64_t total = 0;
	uint8_t *buf = NULL, *p;
	int rc = 0;

	*dropped = 0;
	v = calloc(n > 0 ? n : 1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	/* Oldest first: the front records, then memory in ring order. */
	for (size_t i = 0; i < nfront; i++)
		v[i] = front[i];
	for (size_t i = 0, pos = q->mem_head; i < nmem; i++) {
		size_t len;

		if (q->mem_cap - pos < FRAME || dd_load_be32(q->mem + pos) == WRAP_MARK)
			pos = 0;
		len = dd_load_be32(q->mem + pos);
		v[nfront + i] = (struct iovec){ q->mem + pos + FRAME, len };
		pos += FRAME + len;
	}
	if (q->fd < 0) {
		*dropped = n;
		goto out;
	}
	rc = flush_w(q);
	if (rc != 0)
		goto out;
	/* Keep the newest that fit in front of the file; drop the older rest. */
	first = n;
	while (first > 0 &&
	       q->tail - q->head + total + FRAME + v[first - 1].iov_len <= q->file_cap) {
		total += FRAME + v[first - 1].iov_len;
		first--;
	}
	*dropped = first;
	keep = n - first;
	if (keep > 0) {
		buf = malloc((size_t)total);
		if (buf == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		p = buf;
		for (size_t i = first; i < n; i++) {
			dd_store_be32(p, (uint32_t)v[i].iov_len);
			if (v[i].iov_len > 0)
				memcpy(p + FRAME, v[i].iov_base, v[i].iov_len);
			p += FRAME + v[i].iov_len;
		}
		/* Positions are absolute: moving the head back below 0 wraps the
		 * same way modulo the capacity when head is raised by a multiple. */
		if (q->head < total) {
			uint64_t lift = ((total - q->head) / q->file_cap + 1) * q->file_cap;

			q->head += lift;
			q->tail += lift;
		}
		rc = f_io(q, true, q->head - total, buf, (size_t)total);
		if (rc != 0)
			goto out;
		q->head -= total;
		q->file_count += keep;
		for (size_t i = first; i < n; i++)
			q->file_bytes += v[i].iov_len;
	}
	rc = write_header(q);
	if (rc == 0 && fdatasync(q->fd) < 0)
		rc = -errno;
out:
	if (rc == 0) {
		q->mem_head = q->mem_tail = 0;
		q->mem_count = q->mem_bytes = 0;
	}
	free(buf);
	free(v);
	return rc;
}
