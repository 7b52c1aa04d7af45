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
#define LOSS_REPORT_MS 10000

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

/* The status file: "key value" lines, replaced atomically every second. */
void
status_write(struct rx *rx)
{
	char buf[8192], ts[32];
	const struct rx_counters *c = &rx->c;
	time_t now = time(NULL);
	struct tm tm;
	int n;

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
		     "files_failed %" PRIu64 "\n",
		     ts, (long)getpid(),
		     rx->last_auth_ms == 0 ? "never-up" : rx->link_up ? "up" : "down",
		     rx->last_auth_ms == 0 ? 0 : dd_mono_ms() - rx->last_auth_ms, rx->session,
		     reasm_active(rx), c->received, c->accepted, c->lost, c->reordered,
		     c->duplicates, c->bad_tag, c->replay, c->malformed, c->no_key,
		     c->unknown_sender, c->stale, c->rate_limited, c->blocks_recovered,
		     c->blocks_lost, c->files_delivered, c->files_failed);
	for (unsigned i = 0; i < 8 && i < rx->nfailures && n > 0 && (size_t)n < sizeof(buf); i++) {
		const struct rx_failure *f = &rx->failures[(rx->nfailures - 1 - i) % 8];
		time_t when = (time_t)(f->when_ms / 1000);

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

/* `diode-rx -c FILE status`: the state at a glance. Exit 0 healthy, 1 not. */
int
status_print(const char *state_dir)
{
	char path[4200], text[8192], v[128];
	struct stat st;
	int fd, dirfd;
	uint64_t received, lost, age;
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
	healthy = !stale && strncmp(value(text, "link", v, sizeof(v)), "up", 2) == 0 &&
		  num(text, "files_failed") == 0;
	printf("  verdict:    %s\n", healthy ? "healthy" : "ATTENTION NEEDED");
	return healthy ? 0 : 1;
}
