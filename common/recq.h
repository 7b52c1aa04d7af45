/* Record queue: a bounded FIFO of records in memory, then in a ring file (journal) that survives restarts. */
#ifndef DD_RECQ_H
#define DD_RECQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * Records (0..max_record bytes each) go into memory while the file part is
 * empty and memory has room; otherwise they are appended to the file, so
 * everything in memory is older than everything in the file and the order is
 * kept. Taking a record refills memory from the file in large reads once
 * memory is empty. Appends to the file go through a small write buffer; the
 * file's header (head and tail positions) is written by dd_recq_sync and
 * dd_recq_save, so after a crash some records may come out twice or be
 * missing; after dd_recq_save (a clean stop) the file holds exactly the
 * records that were queued, and the next dd_recq_attach gives them back.
 *
 * WARNING: the pointer returned by dd_recq_peek is valid only until the next
 * call on the queue.
 */
struct dd_recq;

/* mem_bytes of memory (at least max_record + 8). */
int dd_recq_new(struct dd_recq **out, size_t mem_bytes, size_t max_record);
/* Closes the file (without saving: call dd_recq_save first) and frees. NULL is a no-op. */
void dd_recq_free(struct dd_recq *q);

/*
 * Use dirfd/name as the file part, of file_bytes capacity (at least
 * max_record + 4 and 64 KiB). Records left in it by an earlier run are kept,
 * ahead of anything pushed later; *recovered gets their number. A file that
 * cannot be read back consistently is emptied, and a file made with another
 * capacity keeps it while it holds records; both cases leave a sentence in
 * note (else note is ""). On failure returns a negative errno with the reason
 * in note.
 */
int dd_recq_attach(struct dd_recq *q, int dirfd, const char *name, uint64_t file_bytes,
		   uint64_t *recovered, char *note, size_t notelen);

/* Appends a record: 0, -ENOSPC when neither memory nor the file has room
 * (or len > max_record), -EIO when the file cannot be written. */
int dd_recq_push(struct dd_recq *q, const void *rec, size_t len);
/* Same, but when full drops the oldest records (a batch of up to 64 KiB, at
 * least enough for this one) to make room; *dropped gets how many. */
int dd_recq_push_drop_oldest(struct dd_recq *q, const void *rec, size_t len, uint64_t *dropped);
/* Oldest record: 0, -ENOENT when empty, -EIO when the file cannot be read. */
int dd_recq_peek(struct dd_recq *q, const uint8_t **rec, size_t *len);
/* Removes the record the last successful dd_recq_peek returned. */
void dd_recq_pop(struct dd_recq *q);
/* Removes the oldest record without reading it: 0, -ENOENT, -EIO. */
int dd_recq_drop_oldest(struct dd_recq *q);

uint64_t dd_recq_records(const struct dd_recq *q);
/* Record bytes queued (framing excluded), in memory and in the file. */
uint64_t dd_recq_bytes(const struct dd_recq *q);
uint64_t dd_recq_file_records(const struct dd_recq *q);

/* Writes buffered appends and the header (no fsync). 0 or -errno. */
int dd_recq_sync(struct dd_recq *q);

/*
 * Clean stop: puts the nfront records of front (older than anything queued,
 * oldest first), then the records held in memory, ahead of the file's
 * records, writes the header and fdatasyncs. What does not fit is dropped,
 * oldest first, and counted in *dropped (everything in memory when there is
 * no file). The queue is then empty in memory; it can still be used.
 */
int dd_recq_save(struct dd_recq *q, const struct iovec *front, size_t nfront, uint64_t *dropped);

#endif
