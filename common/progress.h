/* The transfer progress file of diode-tx (<state dir>/transfers): one line per transfer, format and parse. */
#ifndef DD_PROGRESS_H
#define DD_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

/*
 * The file is written by the running diode-tx (replaced atomically, at most
 * every 250 ms while transfers are in flight) and read by `diode-tx send`:
 *
 *   diode-tx transfers 1
 *   pid 1234
 *   session 1700000000
 *   next_transfer 17        (highest transfer id used so far in the session)
 *   queued 3                (files in the outbox not yet started)
 *   T<TAB>id<TAB>state<TAB>inode<TAB>size<TAB>done<TAB>pass<TAB>passes<TAB>reason<TAB>path
 *   ...
 *
 * state is one of the names below; done is the number of bytes of the
 * current pass read and coded into the send queue; reason is "-" unless the
 * transfer was abandoned. The path comes last: paths never hold a tab or a
 * newline (dd_path_check refuses control characters).
 */
#define DD_PROGRESS_FILE "transfers"
#define DD_PROGRESS_MAGIC "diode-tx transfers 1\n"
#define DD_PROGRESS_LINE_MAX 4400 /* a 4096-byte path, a reason and the numbers */

enum dd_progress_state {
	DD_PROGRESS_SENDING,   /* a pass is being read and coded */
	DD_PROGRESS_WAITING,   /* between carousel passes */
	DD_PROGRESS_FINISHING, /* last pass coded; its final manifest not yet on the wire */
	DD_PROGRESS_SENT,      /* completely on the wire; left the outbox */
	DD_PROGRESS_ABANDONED, /* not sent (reason); stays in the outbox, sent again later */
	DD_PROGRESS_STATES,
};

/* One transfer line. path and reason point into the parsed buffer (parse) or
 * are the caller's (format). */
struct dd_progress_entry {
	uint32_t id;
	enum dd_progress_state state;
	uint64_t ino, size, done;
	unsigned pass, passes;
	const char *reason; /* NULL or "" when none */
	const char *path;
	size_t path_len, reason_len;
};

const char *dd_progress_state_name(enum dd_progress_state s);

/* Format one line (with its newline) into out; its length, or -ENOSPC, or
 * -EINVAL for a path or reason holding a tab or a newline. */
int dd_progress_format(char *out, size_t outlen, const struct dd_progress_entry *e);

/* Parse one line (without its newline) of len bytes: exact fields, numbers
 * in range, done <= size, pass < passes. 0 or -EBADMSG; *e is zeroed on
 * failure. */
int dd_progress_parse(struct dd_progress_entry *e, const char *line, size_t len);

#endif
