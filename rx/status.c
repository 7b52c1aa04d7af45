/* Link status for operators: counters, loss summaries, the status file and `diode-rx status`. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rx.h"
#include "state.h"

#define STATUS_FILE "status"
#define STATUS_MAX 16384
#define LOSS_REPORT_MS 10000
/* A failed file or lost records keep the verdict at "attention" this long
 * (and failures stay listed as recent), whatever the session counters say. */
#define RECENT_S 3600

void
rx_note_failure(struct rx *rx, const struct rx_transfer *t, const char *reason)
{
	struct rx_failure *f = &rx->failures[rx->nfailures++ % 8];

	f->when_ms = dd_now_ms();
	snprintf(f->id, sizeof(f->id), "%" PRIu32 "-%" PRIu32, rx->session, t->id);
	snprintf(f->path, sizeof(f->path), "%s", t->path != NULL ? t->path : "(path unknown)");
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
}

static double
percent(uint64_t part, uint64_t whole)
{
	return whole == 0 ? 0.0 : 100.0 * (double)part / (double)whole;
}

/* While the link loses datagrams, say so every 10 s. */
void
status_loss_summary(struct rx *rx, uint64_t now)
{
	static uint64_t last_ms, last_lost, last_accepted, last_recovered, last_unrecoverable;
	uint64_t lost = rx->c.lost - last_lost, accepted = rx->c.accepted - last_accepted;
	uint64_t recovered = rx->c.blocks_recovered - last_recovered;
	uint64_t unrecoverable = rx->c.blocks_lost - last_unrecoverable;

	if (now - last_ms < LOSS_REPORT_MS)
		return;
	if (rx->c.lost < last_lost || rx->c.accepted < last_accepted) {
		/* New session: counters restarted. */
		last_lost = last_accepted = last_recovered = last_unrecoverable = 0;
		return;
	}
	if (lost > 0 || unrecoverable > 0)
		dd_warn("link loss in the last %" PRIu64 " s: %" PRIu64 " of %" PRIu64
			" datagrams lost (%.2f %%), %" PRIu64 " blocks repaired by FEC, %" PRIu64
			" blocks unrecoverable", (now - last_ms) / 1000, lost, lost + accepted,
			percent(lost, lost + accepted), recovered, unrecoverable);
	last_ms = now;
	last_lost = rx->c.lost;
	last_accepted = rx->c.accepted;
	last_recovered = rx->c.blocks_recovered;
	last_unrecoverable = rx->c.blocks_lost;
}

/* "N" seconds since mono_ms, or "never" when 0. */
static const char *
seconds_ago(char *out, size_t len, uint64_t mono_ms)
{
	if (mono_ms == 0)
		snprintf(out, len, "never");
	else
		snprintf(out, len, "%" PRIu64, (dd_mono_ms() - mono_ms) / 1000);
	return out;
}

/* The status file: "key value" lines, replaced atomically every second. */
void
status_write(struct rx *rx)
{
	/* Failures counted across sessions (a new session resets rx->c): when
	 * the total last grew is when a file last failed, whatever its kind
	 * (failed, rejected, aborted, lost entirely). */
	static uint64_t seen_failed, last_failure_ms;
	char buf[STATUS_MAX], ts[32], fail_ago[32], loss_ago[32];
	const struct rx_counters *c = &rx->c;
	time_t now = time(NULL);
	uint64_t failed = rx->failed_before + c->files_failed, last_loss_ms = 0;
	struct tm tm;
	int n;

	if (failed > seen_failed) {
		seen_failed = failed;
		last_failure_ms = dd_mono_ms();
	}

	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(buf, sizeof(buf),
		     "updated %s\n"
		     "pid %ld\n"
		     "link %s\n"
		     "last_authentic_ms_ago %" PRIu64 "\n"
		     "session %" PRIu32 "\n"
		     "transfers_active %u\n"
		     "datagrams_received %" PRIu64 "\n"
		     "datagrams_accepted %" PRIu64 "\n"
		     "datagrams_lost %" PRIu64 "\n"
		     "datagrams_reordered %" PRIu64 "\n"
		     "datagrams_duplicate %" PRIu64 "\n"
		     "rejected_bad_tag %" PRIu64 "\n"
		     "rejected_replay %" PRIu64 "\n"
		     "rejected_malformed %" PRIu64 "\n"
		     "rejected_no_session_key %" PRIu64 "\n"
		     "rejected_unknown_sender %" PRIu64 "\n"
		     "rejected_old_session %" PRIu64 "\n"
		     "announces_rate_limited %" PRIu64 "\n"
		     "blocks_recovered %" PRIu64 "\n"
		     "blocks_unrecoverable %" PRIu64 "\n"
		     "files_delivered %" PRIu64 "\n"
		     "files_failed %" PRIu64 "\n"
		     "recent_window_s %d\n"
		     "last_file_failure_s_ago %s\n",
		     ts, (long)getpid(),
		     rx->last_auth_ms == 0 ? "never-up" : rx->link_up ? "up" : "down",
		     rx->last_auth_ms == 0 ? 0 : dd_mono_ms() - rx->last_auth_ms, rx->session,
		     reasm_active(rx), c->received, c->accepted, c->lost, c->reordered,
		     c->duplicates, c->bad_tag, c->replay, c->malformed, c->no_key,
		     c->unknown_sender, c->stale, c->rate_limited, c->blocks_recovered,
		     c->blocks_lost, c->files_delivered, c->files_failed, RECENT_S,
		     seconds_ago(fail_ago, sizeof(fail_ago), last_failure_ms));
	if (n > 0 && (size_t)n < sizeof(buf)) {
		n += (int)streams_status_text(rx, buf + n, sizeof(buf) - (size_t)n, &last_loss_ms);
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "last_record_loss_s_ago %s\n",
			      seconds_ago(loss_ago, sizeof(loss_ago), last_loss_ms));
	}
	for (unsigned i = 0; i < 8 && i < rx->nfailures && n > 0 && (size_t)n < sizeof(buf); i++) {
		const struct rx_failure *f = &rx->failures[(rx->nfailures - 1 - i) % 8];
		time_t when = (time_t)(f->when_ms / 1000);

		/* Only recent ones: each keeps the verdict at attention. */
		if ((uint64_t)now * 1000 > f->when_ms + (uint64_t)RECENT_S * 1000)
			break;

		gmtime_r(&when, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "failure %s %s %s: %s\n", ts, f->id,
			      f->path, f->reason);
	}
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = (int)strlen(buf);
	dd_state_write_lazy(rx->state_fd, STATUS_FILE, buf, (size_t)n);
}

static const char *
value(const char *text, const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);

	for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
			const char *v = p + klen + 1, *e = strchr(v, '\n');
			size_t n = e != NULL ? (size_t)(e - v) : strlen(v);

			snprintf(out, len, "%.*s", (int)n, v);
			return out;
		}
	snprintf(out, len, "?");
	return out;
}

static uint64_t
num(const char *text, const char *key)
{
	char v[64];

	return strtoull(value(text, key, v, sizeof(v)), NULL, 10);
}

/* Seconds ago as written by status_write; false for "never" (or an older file). */
static bool
recent(const char *text, const char *key, uint64_t *ago)
{
	char v[64];

	value(text, key, v, sizeof(v));
	if (v[0] < '0' || v[0] > '9')
		return false;
	*ago = strtoull(v, NULL, 10);
	return *ago < RECENT_S;
}

/* "key value" of a channel line ("channel NAME key value key value ... sink TARGET"). */
static uint64_t
field(const char *line, const char *end, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = line; p < end; p++)
		if (p[-1] == ' ' && strncmp(p, key, klen) == 0 && p[klen] == ' ')
			return strtoull(p + klen + 1, NULL, 10);
	return 0;
}

static const char *
field_str(const char *line, const char *end, const char *key, char *out, size_t len)
{
	size_t klen = strlen(key);

	snprintf(out, len, "?");
	for (const char *p = line; p < end; p++)
		if (p[-1] == ' ' && strncmp(p, key, klen) == 0 && p[klen] == ' ') {
			const char *v = p + klen + 1, *e = v;

			while (e < end && *e != ' ')
				e++;
			snprintf(out, len, "%.*s", (int)(e - v), v);
			break;
		}
	return out;
}

/* The streams part: session totals and one line per channel. */
static void
print_streams(const char *text)
{
	char name[80], state[32], ago[32];

	if (strstr(text, "\nstream_records_delivered ") == NULL)
		return;
	printf("  records:    %" PRIu64 " delivered, %" PRIu64 " lost, %" PRIu64
	       " blocks lost, %" PRIu64 " datagrams of unknown channels (this session)\n",
	       num(text, "stream_records_delivered"), num(text, "stream_records_lost"),
	       num(text, "stream_blocks_lost"), num(text, "stream_unknown_datagrams"));
	for (const char *line = text, *e; *line != '\0'; line = e + 1) {
		const char *target, *rest;
		uint64_t gaps;

		e = strchr(line, '\n');
		if (e == NULL)
			break;
		if (strncmp(line, "channel ", 8) != 0)
			continue;
		/* The pairs are between the name (which could look like a key) and
		 * the sink's target (a path that could hold anything). */
		rest = line + 8 + strcspn(line + 8, " \n");
		target = strstr(rest, " sink ");
		if (target == NULL || target > e)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(rest - line - 8), line + 8);
		field_str(rest, target, "last_loss_s_ago", ago, sizeof(ago));
		gaps = field(rest, target, "gaps");
		printf("  channel %s: %" PRIu64 " delivered, %" PRIu64 " lost in %" PRIu64
		       " gap%s (%" PRIu64 " blocks), %" PRIu64 " dropped by diode-tx; "
		       "last loss: %s%s\n", name, field(rest, target, "delivered"),
		       field(rest, target, "lost"), gaps, gaps == 1 ? "" : "s",
		       field(rest, target, "blocks_lost"), field(rest, target, "sender_dropped"),
		       ago, strcmp(ago, "never") == 0 ? "" : " s ago");
		printf("    sink %.*s: %s, %" PRIu64 " records waiting, %" PRIu64 " dropped\n",
		       (int)(e - target - 6), target + 6,
		       field_str(rest, target, "sink_state", state, sizeof(state)),
		       field(rest, target, "sink_backlog"), field(rest, target, "sink_dropped"));
	}
}

/* `diode-rx -c FILE status`: the state at a glance. Exit 0 healthy, 1 not. */
int
status_print(const char *state_dir)
{
	char path[4200], text[STATUS_MAX], v[128], why[256];
	struct stat st;
	int fd, dirfd;
	uint64_t received, lost, age, ago;
	bool stale, healthy;

	dirfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || dd_state_read(dirfd, STATUS_FILE, text, sizeof(text)) < 0) {
		fprintf(stderr, "%s/%s: %s; is diode-rx running with this configuration?\n",
			state_dir, STATUS_FILE, strerror(errno));
		if (dirfd >= 0)
			close(dirfd);
		return 2;
	}
	fd = openat(dirfd, STATUS_FILE, O_RDONLY | O_CLOEXEC);
	age = fd >= 0 && fstat(fd, &st) == 0 ? (uint64_t)(time(NULL) - st.st_mtime) : 0;
	if (fd >= 0)
		close(fd);
	close(dirfd);
	snprintf(path, sizeof(path), "%s/%s", state_dir, STATUS_FILE);
	stale = age > 5;
	received = num(text, "datagrams_accepted");
	lost = num(text, "datagrams_lost");
	printf("diode-rx status (%s, updated %s%s)\n", path, value(text, "updated", v, sizeof(v)),
	       stale ? " -- STALE: diode-rx is not running or is stuck" : "");
	printf("  link:       %s (last authentic datagram %s ms ago)\n",
	       value(text, "link", v, sizeof(v)),
	       value(text, "last_authentic_ms_ago", path, sizeof(path)));
	printf("  session:    %s, %s transfers in progress\n", value(text, "session", v, sizeof(v)),
	       value(text, "transfers_active", path, sizeof(path)));
	printf("  datagrams:  %" PRIu64 " accepted, %" PRIu64 " lost (%.2f %%), %" PRIu64
	       " reordered, %" PRIu64 " duplicate fragments\n", received, lost,
	       percent(lost, lost + received), num(text, "datagrams_reordered"),
	       num(text, "datagrams_duplicate"));
	printf("  rejected:   %" PRIu64 " bad tag, %" PRIu64 " replayed, %" PRIu64 " malformed, %"
	       PRIu64 " without session key, %" PRIu64 " unknown sender, %" PRIu64
	       " old session, %" PRIu64 " announces rate-limited\n",
	       num(text, "rejected_bad_tag"), num(text, "rejected_replay"),
	       num(text, "rejected_malformed"), num(text, "rejected_no_session_key"),
	       num(text, "rejected_unknown_sender"), num(text, "rejected_old_session"),
	       num(text, "announces_rate_limited"));
	printf("  FEC:        %" PRIu64 " blocks repaired, %" PRIu64 " unrecoverable\n",
	       num(text, "blocks_recovered"), num(text, "blocks_unrecoverable"));
	printf("  files:      %" PRIu64 " delivered, %" PRIu64 " failed (this session)\n",
	       num(text, "files_delivered"), num(text, "files_failed"));
	print_streams(text);
	for (const char *line = text, *e; *line != '\0'; line = e + 1) {
		static bool header;

		e = strchr(line, '\n');
		if (e == NULL)
			break;
		if (strncmp(line, "failure ", 8) != 0)
			continue;
		if (!header)
			printf("  recent failures:\n");
		header = true;
		printf("    %.*s\n", (int)(e - line - 8), line + 8);
	}
	/* Attention while a failure or a loss is recent, even when a new sender
	 * session has reset the counters since. */
	why[0] = '\0';
	if (stale)
		snprintf(why, sizeof(why), "; the status file is stale");
	else if (strncmp(value(text, "link", v, sizeof(v)), "up", 2) != 0)
		snprintf(why, sizeof(why), "; the link is %s", v);
	if (num(text, "files_failed") > 0)
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 "; files failed this session");
	else if (recent(text, "last_file_failure_s_ago", &ago))
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 "; a file failed %" PRIu64 " s ago", ago);
	if (recent(text, "last_record_loss_s_ago", &ago))
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 "; records lost %" PRIu64 " s ago", ago);
	healthy = why[0] == '\0';
	if (healthy)
		printf("  verdict:    healthy\n");
	else
		printf("  verdict:    ATTENTION NEEDED (%s)\n", why + 2);
	return healthy ? 0 : 1;
}
