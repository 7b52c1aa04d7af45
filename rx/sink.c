/* Sinks of stream channels: segment files in a directory, a reconnecting TCP client with a disk buffer, UDP datagrams. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "mqttrec.h"
#include "recq.h"
#include "rx.h"
#include "sandbox.h"

#define DIR_WBUF (256 * 1024)
#define TCP_MEM (1024 * 1024)      /* memory part of the TCP sink's buffer */
#define FLIGHT_CAP (4 * 1024 * 1024) /* bytes handed to one connection, not yet acknowledged */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CLOSING_MS 2000            /* wait for the destination to finish reading after its EOF */
#define UDP_BATCH 64
#define UDP_BUF (1024 * 1024)
#define UDP_MAX 65507
#define DROP_REPORT_MS 1000
#define FAILING_MS 10000           /* status: a dir: or udp: sink dropped records this recently */
/* Offset of tcpi_bytes_acked (u64) in the kernel's struct tcp_info (Linux 4.1
 * and later, include/uapi/linux/tcp.h); glibc's copy of the struct stops
 * before it, so the field is read from the raw bytes. */
#define TCPI_BYTES_ACKED_OFF 120
#define TCPI_LEN 256

enum sink_kind { SINK_DIR, SINK_TCP, SINK_UDP, SINK_MQTT };
enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP, CONN_CLOSING };

struct rx_sink {
	struct rx *rx;
	enum sink_kind kind;
	struct rx_mqtt *mqtt; /* mqtt:// (sink_mqtt.c) */
	bool mqtt_lines;      /* records = mqtt on a dir:, tcp:// or udp:// sink: text lines */
	char *line;           /* one such line */
	char section[80], channel[72], target[256];

	/* A run of records that could not be handed on, reported as one event. */
	uint64_t drop_first, drop_last, drop_count, drop_since_ms;
	const char *drop_reason;
	char drop_detail[128];
	uint64_t dropped_total, last_drop_ms; /* since diode-rx started, for the status file */

	/* dir: */
	int dirfd;
	const char *dir_path;
	uint64_t segment_ms, segment_bytes;
	int seg_fd;
	uint64_t seg_no, seg_first, seg_last, seg_records, seg_bytes, seg_started_ms;
	char seg_part[64], seg_final[64];
	uint8_t *wbuf;
	size_t wlen;
	uint64_t w_first, w_count;

	/* tcp: */
	struct dd_addr addr;
	int fd;
	uv_poll_t *poll;
	enum conn_state st;
	struct dd_recq *q;
	uint64_t buffer_bytes;
	uint8_t *fl;       /* records of this connection, as bytes, from fl_base on */
	size_t fl_len;
	uint64_t fl_base;  /* connection byte offset of fl[0] */
	uint64_t written;  /* connection bytes handed to the kernel */
	uint64_t ack_base; /* tcpi_bytes_acked when connected (the SYN) */
	uint64_t retry_at_ms, backoff_ms, closing_since_ms, down_since_ms;
	bool down_reported, want_write;
	uv_timer_t retry;  /* reconnects when the back-off is over */
	bool retry_init;
	uint64_t sent_total;

	/* udp: */
	int ufd;
	uint8_t *ubuf;
	size_t ulen;
	unsigned un;
	uint64_t useq[UDP_BATCH];
	struct iovec uiov[UDP_BATCH];
	struct mmsghdr umsg[UDP_BATCH];
};

static struct dd_ratelimit sink_rl = { .interval_ms = 10000 };

/* ---------------------------------------------------------------- drop reports */

static void
drop_report(struct rx_sink *s)
{
	struct dd_audit_event ev;
	uint64_t suppressed;

	if (s->drop_count == 0)
		return;
	if (dd_ratelimit_ok(&sink_rl, dd_mono_ms(), &suppressed))
		dd_warn("[%s] records %" PRIu64 "..%" PRIu64 " (%" PRIu64 ") not delivered to %s: "
			"%s%s%s", s->section, s->drop_first, s->drop_last, s->drop_count, s->target,
			s->drop_reason, s->drop_detail[0] ? ": " : "", s->drop_detail);
	dd_audit_begin(&ev, "records_dropped");
	dd_audit_str(&ev, "channel", s->channel);
	dd_audit_str(&ev, "sink", s->target);
	dd_audit_u64(&ev, "first", s->drop_first);
	dd_audit_u64(&ev, "last", s->drop_last);
	dd_audit_u64(&ev, "count", s->drop_count);
	dd_audit_str(&ev, "reason", s->drop_reason);
	if (s->drop_detail[0])
		dd_audit_str(&ev, "detail", s->drop_detail);
	dd_audit_commit(&ev);
	s->drop_count = 0;
}

static void
drop(struct rx_sink *s, uint64_t seq, uint64_t n, const char *reason, const char *detail)
{
	if (n == 0)
		return;
	if (s->drop_count > 0 &&
	    (seq != s->drop_last + 1 || s->drop_reason != reason ||
	     strcmp(s->drop_detail, detail != NULL ? detail : "") != 0))
		drop_report(s);
	if (s->drop_count == 0) {
		s->drop_first = seq;
		s->drop_since_ms = dd_mono_ms();
		s->drop_reason = reason;
		snprintf(s->drop_detail, sizeof(s->drop_detail), "%s", detail != NULL ? detail : "");
	}
	s->drop_last = seq + n - 1;
	s->drop_count += n;
	s->dropped_total += n;
	s->last_drop_ms = dd_mono_ms();
}

/* ---------------------------------------------------------------- dir: */

static bool
parse_segment_name(const char *name, bool *part, uint64_t *no)
{
	const char *p = name;
	size_t len = strlen(name);

	*part = name[0] == '.';
	if (*part)
		p++, len--;
	if (len != 12 + 1 + 20 + (*part ? 5 : 4) || p[12] != '-')
		return false;
	for (int i = 0; i < 33; i++)
		if (i != 12 && (p[i] < '0' || p[i] > '9'))
			return false;
	if (strcmp(p + 33, *part ? ".part" : ".log") != 0)
		return false;
	*no = strtoull(p, NULL, 10);
	return true;
}

/* At start: finish segments left by an earlier run, find the next number. */
static int
dir_scan(struct rx_sink *s)
{
	int fd = dup(s->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	uint64_t max = 0, no;
	bool part, any = false;

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((e = readdir(d)) != NULL) {
		if (!parse_segment_name(e->d_name, &part, &no))
			continue;
		if (!any || no > max)
			max = no;
		any = true;
		if (part) {
			char final[64];
			struct stat st;

			snprintf(final, sizeof(final), "%.33s.log", e->d_name + 1);
			if (fstatat(s->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(st.st_mode) && st.st_size == 0)
				unlinkat(s->dirfd, e->d_name, 0);
			else if (renameat(s->dirfd, e->d_name, s->dirfd, final) == 0)
				dd_notice("[%s] %s/%s: segment left by an earlier run, finished", s->section,
					  s->dir_path, final);
		}
	}
	closedir(d);
	s->seg_no = any ? max + 1 : 1;
	return 0;
}

static void
dir_write_out(struct rx_sink *s)
{
	size_t off = 0;

	while (off < s->wlen) {
		ssize_t n = write(s->seg_fd, s->wbuf + off, s->wlen - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			char detail[128];

			snprintf(detail, sizeof(detail), "%s: %s", s->seg_part,
				 n < 0 ? strerror(errno) : "short write");
			/* Bytes already written stay (a cut line at worst); the
			 * records of the buffer are reported. */
			drop(s, s->w_first, s->w_count, "cannot write the segment file", detail);
			break;
		}
		off += (size_t)n;
	}
	s->wlen = 0;
	s->w_count = 0;
}

static void
dir_finish(struct rx_sink *s)
{
	struct dd_audit_event ev;

	if (s->seg_fd < 0)
		return;
	dir_write_out(s);
	if (fdatasync(s->seg_fd) < 0 && dd_ratelimit_ok(&sink_rl, dd_mono_ms(), NULL))
		dd_error("[%s] %s/%s: fdatasync: %s", s->section, s->dir_path, s->seg_part,
			 strerror(errno));
	close(s->seg_fd);
	s->seg_fd = -1;
	if (renameat(s->dirfd, s->seg_part, s->dirfd, s->seg_final) < 0) {
		dd_error("[%s] %s/%s: cannot rename it to %s: %s; it stays under its hidden name",
			 s->section, s->dir_path, s->seg_part, s->seg_final, strerror(errno));
		return;
	}
	dd_audit_begin(&ev, "segment_finished");
	dd_audit_str(&ev, "channel", s->channel);
	dd_audit_str(&ev, "segment", s->seg_final);
	dd_audit_u64(&ev, "first", s->seg_first);
	dd_audit_u64(&ev, "last", s->seg_last);
	dd_audit_u64(&ev, "records", s->seg_records);
	dd_audit_u64(&ev, "bytes", s->seg_bytes);
	dd_audit_commit(&ev);
}

static bool
dir_begin(struct rx_sink *s, uint64_t seq)
{
	snprintf(s->seg_part, sizeof(s->seg_part), ".%012" PRIu64 "-%020" PRIu64 ".part",
		 s->seg_no, seq);
	snprintf(s->seg_final, sizeof(s->seg_final), "%012" PRIu64 "-%020" PRIu64 ".log",
		 s->seg_no, seq);
	s->seg_fd = openat(s->dirfd, s->seg_part,
			   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (s->seg_fd < 0) {
		char detail[128];

		snprintf(detail, sizeof(detail), "%s: %s", s->seg_part, strerror(errno));
		drop(s, seq, 1, "cannot create a segment file", detail);
		/* Next time a fresh number, in case the name is taken. */
		s->seg_no++;
		return false;
	}
	s->seg_no++;
	s->seg_first = seq;
	s->seg_records = s->seg_bytes = 0;
	s->seg_started_ms = dd_mono_ms();
	return true;
}

static void
dir_record(struct rx_sink *s, uint64_t seq, const uint8_t *rec, size_t len)
{
	if (s->seg_fd >= 0 && s->seg_bytes > 0 && s->seg_bytes + len + 1 > s->segment_bytes)
		dir_finish(s);
	if (s->seg_fd < 0 && !dir_begin(s, seq))
		return;
	if (s->wlen + len + 1 > DIR_WBUF)
		dir_write_out(s);
	if (s->w_count == 0)
		s->w_first = seq;
	memcpy(s->wbuf + s->wlen, rec, len);
	s->wbuf[s->wlen + len] = '\n';
	s->wlen += len + 1;
	s->w_count++;
	s->seg_last = seq;
	s->seg_records++;
	s->seg_bytes += len + 1;
}

/* ---------------------------------------------------------------- tcp: */

static void tcp_pump(struct rx_sink *s);
static void tcp_connect(struct rx_sink *s);
static void on_tcp(uv_poll_t *p, int status, int events);

static void
on_retry(uv_timer_t *t)
{
	struct rx_sink *s = t->data;

	if (s->st == CONN_DOWN && !s->rx->stopping)
		tcp_connect(s);
}

static void
poll_closed(uv_handle_t *h)
{
	free(h);
}

static void
tcp_poll_events(struct rx_sink *s)
{
	int ev;

	if (s->poll == NULL)
		return;
	ev = s->st == CONN_CONNECTING ? UV_WRITABLE
	     : UV_READABLE | (s->st == CONN_UP && s->want_write ? UV_WRITABLE : 0);
	uv_poll_start(s->poll, ev, on_tcp);
}

/* tcpi_bytes_acked of a connection, or -1 when the kernel does not say. */
static int64_t
bytes_acked(int fd)
{
	uint8_t ti[TCPI_LEN];
	socklen_t len = sizeof(ti);
	uint64_t v;

	memset(ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) < 0 ||
	    len < TCPI_BYTES_ACKED_OFF + sizeof(v))
		return -1;
	memcpy(&v, ti + TCPI_BYTES_ACKED_OFF, sizeof(v));
	return v > INT64_MAX ? -1 : (int64_t)v;
}

/* Bytes of this connection the destination's TCP acknowledged. */
static uint64_t
tcp_acked(struct rx_sink *s)
{
	int64_t v = s->fd >= 0 ? bytes_acked(s->fd) : -1;
	uint64_t acked;

	if (v < 0) /* an old kernel: written counts as delivered */
		return s->written;
	/* tcpi_bytes_acked counts the SYN and the FIN as one byte each. */
	acked = (uint64_t)v > s->ack_base ? (uint64_t)v - s->ack_base : 0;
	return acked < s->written ? acked : s->written;
}

/* Forget the records the destination acknowledged (whole records only). */
static void
tcp_trim(struct rx_sink *s, uint64_t acked)
{
	size_t n;
	const uint8_t *nl;

	if (acked <= s->fl_base)
		return;
	n = (size_t)(acked - s->fl_base);
	nl = memrchr(s->fl, '\n', n);
	if (nl == NULL)
		return;
	n = (size_t)(nl - s->fl) + 1;
	memmove(s->fl, s->fl + n, s->fl_len - n);
	s->fl_len -= n;
	s->fl_base += n;
	s->sent_total += n;
}

static void
tcp_down(struct rx_sink *s, const char *why)
{
	if (s->fd >= 0) {
		tcp_trim(s, tcp_acked(s));
		if (s->poll != NULL) {
			uv_poll_stop(s->poll);
			uv_close((uv_handle_t *)s->poll, poll_closed);
			s->poll = NULL;
		}
		close(s->fd);
		s->fd = -1;
	}
	/* What was not acknowledged is sent again on the next connection. */
	s->fl_base = s->written = 0;
	s->want_write = false;
	s->st = CONN_DOWN;
	s->retry_at_ms = dd_mono_ms() + s->backoff_ms;
	/* On time, not at the next tick: records wait for the destination meanwhile. */
	if (s->retry_init)
		uv_timer_start(&s->retry, on_retry, s->backoff_ms, 0);
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
	if (!s->down_reported) {
		s->down_reported = true;
		s->down_since_ms = dd_mono_ms();
		sink_report_down(s->section, s->channel, s->target, why, s->buffer_bytes);
	}
}

void
sink_report_down(const char *section, const char *channel, const char *target, const char *why,
		 uint64_t buffer_bytes)
{
	struct dd_audit_event ev;

	dd_warn("[%s] sink %s is down (%s); records wait in the buffer (%" PRIu64
		" bytes on disk at most) until it is back", section, target, why, buffer_bytes);
	dd_audit_begin(&ev, "sink_down");
	dd_audit_str(&ev, "channel", channel);
	dd_audit_str(&ev, "sink", target);
	dd_audit_str(&ev, "reason", why);
	dd_audit_commit(&ev);
}

static void
tcp_up(struct rx_sink *s)
{
	int64_t base = bytes_acked(s->fd);
	struct dd_audit_event ev;

	s->ack_base = base > 0 ? (uint64_t)base : 0;
	s->st = CONN_UP;
	s->want_write = false;
	s->backoff_ms = BACKOFF_MIN_MS;
	tcp_poll_events(s);
	if (s->down_reported) {
		s->down_reported = false;
		dd_notice("[%s] sink %s is up again after %" PRIu64 " ms; sending the %" PRIu64
			  " records that waited", s->section, s->target,
			  dd_mono_ms() - s->down_since_ms, dd_recq_records(s->q));
	}
	dd_audit_begin(&ev, "sink_up");
	dd_audit_str(&ev, "channel", s->channel);
	dd_audit_str(&ev, "sink", s->target);
	dd_audit_u64(&ev, "waiting", dd_recq_records(s->q));
	dd_audit_commit(&ev);
	tcp_pump(s);
}

static void
on_tcp(uv_poll_t *p, int status, int events)
{
	struct rx_sink *s = p->data;
	uint8_t junk[4096];
	ssize_t n;

	if (status < 0 || s->st == CONN_CONNECTING) {
		/* libuv reports a socket error (POLLERR) as UV_EBADF: ask the socket. */
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err == 0 && status < 0)
			err = -status;
		if (err != 0) {
			tcp_down(s, strerror(err));
			return;
		}
		if (s->st == CONN_CONNECTING) {
			tcp_up(s);
			return;
		}
	}
	if (events & UV_READABLE) {
		/* The destination does not talk; what it sends is read and ignored,
		 * its end of stream means it wants to stop. */
		n = read(s->fd, junk, sizeof(junk));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			if (s->st == CONN_UP && n == 0) {
				/* Stop writing and let it read what is on its way; what
				 * it acknowledged by then was delivered. */
				(void)shutdown(s->fd, SHUT_WR);
				s->st = CONN_CLOSING;
				s->closing_since_ms = dd_mono_ms();
				s->want_write = false;
				tcp_poll_events(s);
				return;
			}
			tcp_down(s, n == 0 ? "closed by the destination" : strerror(errno));
			return;
		}
	}
	if ((events & UV_WRITABLE) && s->st == CONN_UP)
		tcp_pump(s);
}

static void
tcp_connect(struct rx_sink *s)
{
	int one = 1, fd;

	fd = socket(s->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tcp_down(s, strerror(errno));
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->fd = fd;
	s->fl_base = s->written = 0;
	s->poll = malloc(sizeof(*s->poll));
	if (s->poll == NULL) {
		tcp_down(s, "out of memory");
		return;
	}
	uv_poll_init(s->rx->loop, s->poll, fd);
	s->poll->data = s;
	if (connect(fd, (const struct sockaddr *)&s->addr.ss, s->addr.len) == 0) {
		uv_poll_start(s->poll, UV_READABLE, on_tcp);
		tcp_up(s);
		return;
	}
	if (errno != EINPROGRESS) {
		tcp_down(s, strerror(errno));
		return;
	}
	s->st = CONN_CONNECTING;
	uv_poll_start(s->poll, UV_WRITABLE, on_tcp);
}

/* Move queued records into the connection's bytes, and write what the kernel takes. */
static void
tcp_pump(struct rx_sink *s)
{
	for (;;) {
		size_t off, avail;
		ssize_t n;

		while (s->fl_len < FLIGHT_CAP) {
			const uint8_t *rec;
			size_t len;

			if (dd_recq_peek(s->q, &rec, &len) != 0 || s->fl_len + len + 1 > FLIGHT_CAP)
				break;
			memcpy(s->fl + s->fl_len, rec, len);
			s->fl[s->fl_len + len] = '\n';
			s->fl_len += len + 1;
			dd_recq_pop(s->q);
		}
		if (s->st != CONN_UP)
			return;
		off = (size_t)(s->written - s->fl_base);
		avail = s->fl_len - off;
		if (avail == 0) {
			size_t before = s->fl_len;

			if (s->want_write) {
				s->want_write = false;
				tcp_poll_events(s);
			}
			/* All written: make room for more if the destination acknowledged
			 * some (else the next tick tries again). */
			if (dd_recq_records(s->q) == 0 || s->fl_len < FLIGHT_CAP / 2)
				return;
			tcp_trim(s, tcp_acked(s));
			if (s->fl_len == before)
				return;
			continue;
		}
		n = write(s->fd, s->fl + off, avail);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* The kernel's buffer is full: make room in ours meanwhile. */
			tcp_trim(s, tcp_acked(s));
			if (!s->want_write) {
				s->want_write = true;
				tcp_poll_events(s);
			}
			return;
		}
		if (n < 0) {
			tcp_down(s, strerror(errno));
			return;
		}
		s->written += (uint64_t)n;
		if (s->fl_len == FLIGHT_CAP || dd_recq_records(s->q) > 0)
			tcp_trim(s, tcp_acked(s));
	}
}

static void
tcp_record(struct rx_sink *s, uint64_t seq, const uint8_t *rec, size_t len)
{
	int rc;

	/* Straight into the connection's bytes when nothing waits before it. */
	if (dd_recq_records(s->q) == 0 && s->fl_len + len + 1 <= FLIGHT_CAP) {
		memcpy(s->fl + s->fl_len, rec, len);
		s->fl[s->fl_len + len] = '\n';
		s->fl_len += len + 1;
		return;
	}
	rc = dd_recq_push(s->q, rec, len);
	if (rc == -ENOSPC)
		drop(s, seq, 1, "the destination is down or slow and the sink buffer is full",
		     NULL);
	else if (rc != 0)
		drop(s, seq, 1, "cannot write the sink buffer in the state directory",
		     strerror(-rc));
}

/* ---------------------------------------------------------------- udp: */

static void
udp_send(struct rx_sink *s)
{
	unsigned done = 0;

	while (done < s->un) {
		int n = sendmmsg(s->ufd, s->umsg + done, s->un - done, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* The destination's socket or ours is full: these are lost. */
			drop(s, s->useq[done], s->un - done, "cannot send to the UDP destination",
			     n < 0 ? strerror(errno) : NULL);
			break;
		}
		done += (unsigned)n;
	}
	s->un = 0;
	s->ulen = 0;
}

static void
udp_record(struct rx_sink *s, uint64_t seq, const uint8_t *rec, size_t len)
{
	if (len > UDP_MAX) {
		drop(s, seq, 1, "longer than a UDP datagram can carry", NULL);
		return;
	}
	if (s->un == UDP_BATCH || s->ulen + len > UDP_BUF)
		udp_send(s);
	memcpy(s->ubuf + s->ulen, rec, len);
	s->uiov[s->un] = (struct iovec){ s->ubuf + s->ulen, len };
	memset(&s->umsg[s->un], 0, sizeof(s->umsg[s->un]));
	s->umsg[s->un].msg_hdr.msg_iov = &s->uiov[s->un];
	s->umsg[s->un].msg_hdr.msg_iovlen = 1;
	s->useq[s->un] = seq;
	s->un++;
	s->ulen += len;
}

/* ---------------------------------------------------------------- common */

int
sink_open(struct rx_sink **out, struct rx *rx, const struct dd_config *cfg, const char *section,
	  const char *channel, int state_fd, bool check_only)
{
	const char *spec = dd_config_str(cfg, section, "sink");
	const char *where = dd_config_where(cfg, section, "sink");
	struct rx_sink *s = calloc(1, sizeof(*s));
	char err[256], note[512], name[128];
	uint64_t recovered = 0;
	int rc;

	*out = NULL;
	if (s == NULL) {
		fprintf(stderr, "out of memory\n");
		return -ENOMEM;
	}
	s->rx = rx;
	s->dirfd = s->seg_fd = s->fd = s->ufd = -1;
	s->backoff_ms = BACKOFF_MIN_MS;
	snprintf(s->section, sizeof(s->section), "%s", section);
	snprintf(s->channel, sizeof(s->channel), "%s", channel);
	snprintf(s->target, sizeof(s->target), "%s", spec);
	*out = s;
	if (strncmp(spec, "mqtt://", 7) == 0) {
		s->kind = SINK_MQTT;
		return mqtt_sink_open(&s->mqtt, s, cfg, section, channel, spec, state_fd, check_only);
	}
	if (dd_config_has(cfg, section, "records") &&
	    strcmp(dd_config_str(cfg, section, "records"), "mqtt") == 0) {
		/* MQTT records become "TOPIC<TAB>RETAIN<TAB>BASE64" lines. */
		s->mqtt_lines = true;
		s->line = check_only ? NULL : malloc(dd_mqttrec_line_max(DD_RECORD_MAX));
		if (!check_only && s->line == NULL) {
			fprintf(stderr, "out of memory\n");
			return -ENOMEM;
		}
	}
	if (strncmp(spec, "dir:", 4) == 0) {
		s->kind = SINK_DIR;
		s->dir_path = spec + 4;
		s->segment_ms = dd_config_u64(cfg, section, "segment_ms");
		s->segment_bytes = dd_config_u64(cfg, section, "segment_bytes");
		if (s->dir_path[0] == '\0') {
			fprintf(stderr, "%s: [%s] sink: dir: needs a directory (dir:/var/spool/diode/"
				"%s)\n", where, section, channel);
			return -EINVAL;
		}
		s->dirfd = open(s->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->dirfd < 0) {
			fprintf(stderr, "%s: [%s] sink: %s: %s (create the directory first)\n", where,
				section, s->dir_path, strerror(errno));
			return -errno;
		}
		if (check_only)
			return 0;
		s->wbuf = malloc(DIR_WBUF);
		if (s->wbuf == NULL)
			return -ENOMEM;
		rc = dir_scan(s);
		if (rc != 0) {
			fprintf(stderr, "%s: [%s] sink: %s: %s\n", where, section, s->dir_path,
				strerror(-rc));
			return rc;
		}
		return 0;
	}
	if (strncmp(spec, "tcp://", 6) == 0 || strncmp(spec, "udp://", 6) == 0) {
		s->kind = spec[0] == 't' ? SINK_TCP : SINK_UDP;
		if (dd_net_resolve(spec + 6, &s->addr, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: [%s] sink: %s\n", where, section, err);
			return -EINVAL;
		}
		if (check_only)
			return 0;
		if (s->kind == SINK_UDP) {
			s->ufd = socket(s->addr.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
					0);
			s->ubuf = malloc(UDP_BUF);
			if (s->ufd < 0 || s->ubuf == NULL ||
			    connect(s->ufd, (const struct sockaddr *)&s->addr.ss, s->addr.len) < 0) {
				fprintf(stderr, "%s: [%s] sink: %s: %s\n", where, section, spec,
					strerror(errno));
				return -EINVAL;
			}
			return 0;
		}
		s->buffer_bytes = dd_config_u64(cfg, section, "buffer");
		s->fl = malloc(FLIGHT_CAP);
		if (s->fl == NULL || dd_recq_new(&s->q, TCP_MEM, DD_RECORD_MAX) != 0) {
			fprintf(stderr, "out of memory\n");
			return -ENOMEM;
		}
		snprintf(name, sizeof(name), "channel-%s.sink", channel);
		rc = dd_recq_attach(s->q, state_fd, name, s->buffer_bytes, &recovered, note,
				    sizeof(note));
		if (rc != 0) {
			fprintf(stderr, "%s: [%s] sink buffer in the state directory: %s\n", where,
				section, note);
			return rc;
		}
		if (note[0] != '\0')
			dd_notice("[%s] sink buffer %s", section, note);
		if (recovered > 0)
			dd_notice("[%s] %" PRIu64 " records from an earlier run wait for %s", section,
				  recovered, spec);
		return 0;
	}
	fprintf(stderr, "%s: [%s] sink: '%s': expected dir:PATH, tcp://HOST:PORT, "
		"udp://HOST:PORT or mqtt://HOST:PORT\n", where, section, spec);
	return -EINVAL;
}

void
sink_sandbox(const struct rx_sink *s, struct dd_sandbox *sb)
{
	uint16_t port = 0;

	switch (s->kind) {
	case SINK_DIR:
		dd_sandbox_allow(sb, s->dir_path, true);
		break;
	case SINK_TCP:
		if (s->addr.ss.ss_family == AF_INET)
			port = ntohs(((const struct sockaddr_in *)&s->addr.ss)->sin_port);
		else
			port = ntohs(((const struct sockaddr_in6 *)&s->addr.ss)->sin6_port);
		dd_sandbox_allow_tcp_connect(sb, port);
		break;
	case SINK_UDP:
		dd_sandbox_allow_net(sb, DD_SANDBOX_NET_SEND);
		break;
	case SINK_MQTT:
		mqtt_sink_sandbox(s->mqtt, sb);
		break;
	}
}

void
sink_start(struct rx_sink *s)
{
	if (s->kind == SINK_MQTT) {
		mqtt_sink_start(s->mqtt, s->rx->loop);
		return;
	}
	if (s->kind != SINK_TCP)
		return;
	uv_timer_init(s->rx->loop, &s->retry);
	s->retry.data = s;
	s->retry_init = true;
	tcp_connect(s);
}

void
sink_record(struct rx_sink *s, uint64_t seq, const uint8_t *rec, size_t len)
{
	if (s->kind == SINK_MQTT) {
		mqtt_sink_record(s->mqtt, seq, rec, len);
		return;
	}
	if (s->mqtt_lines) {
		struct dd_mqttrec m;
		int n;

		if (dd_mqttrec_parse(&m, rec, len) != 0) {
			drop(s, seq, 1, "not an MQTT record (records = mqtt)", NULL);
			return;
		}
		n = dd_mqttrec_line(s->line, dd_mqttrec_line_max(DD_RECORD_MAX), &m);
		if (n < 0) {
			drop(s, seq, 1, "not an MQTT record (records = mqtt)", NULL);
			return;
		}
		rec = (const uint8_t *)s->line;
		len = (size_t)n;
	}
	if (s->kind != SINK_UDP && memchr(rec, '\n', len) != NULL) {
		/* diode-tx never sends one; a line-oriented sink could not keep it whole. */
		drop(s, seq, 1, "contains a newline", NULL);
		return;
	}
	if (s->drop_count > 0 && s->kind != SINK_TCP)
		drop_report(s);
	switch (s->kind) {
	case SINK_DIR:
		dir_record(s, seq, rec, len);
		break;
	case SINK_TCP:
		tcp_record(s, seq, rec, len);
		break;
	case SINK_UDP:
		udp_record(s, seq, rec, len);
		break;
	case SINK_MQTT: /* taken above */
		break;
	}
}

void
sink_flush(struct rx_sink *s)
{
	switch (s->kind) {
	case SINK_DIR:
		if (s->wlen > 0)
			dir_write_out(s);
		break;
	case SINK_TCP:
		if (s->st == CONN_UP && !s->want_write)
			tcp_pump(s);
		break;
	case SINK_UDP:
		if (s->un > 0)
			udp_send(s);
		break;
	case SINK_MQTT:
		mqtt_sink_flush(s->mqtt);
		break;
	}
}

void
sink_tick(struct rx_sink *s, uint64_t now)
{
	if (s->drop_count > 0 && now - s->drop_since_ms >= DROP_REPORT_MS)
		drop_report(s);
	switch (s->kind) {
	case SINK_DIR:
		if (s->seg_fd >= 0 && now - s->seg_started_ms >= s->segment_ms)
			dir_finish(s);
		break;
	case SINK_TCP:
		if (s->st == CONN_DOWN && now >= s->retry_at_ms)
			tcp_connect(s);
		else if (s->st == CONN_CLOSING && now - s->closing_since_ms >= CLOSING_MS)
			tcp_down(s, "closed by the destination");
		else if (s->st == CONN_UP) {
			tcp_trim(s, tcp_acked(s));
			tcp_pump(s);
		}
		if (dd_recq_sync(s->q) != 0 && dd_ratelimit_ok(&sink_rl, now, NULL))
			dd_error("[%s] cannot write the sink buffer in the state directory",
				 s->section);
		break;
	case SINK_UDP:
		break;
	case SINK_MQTT:
		mqtt_sink_tick(s->mqtt, now);
		break;
	}
}

void
sink_stop(struct rx_sink *s)
{
	switch (s->kind) {
	case SINK_MQTT:
		mqtt_sink_stop(s->mqtt);
		break;
	case SINK_DIR:
		dir_finish(s);
		break;
	case SINK_UDP:
		if (s->un > 0)
			udp_send(s);
		break;
	case SINK_TCP: {
		struct iovec *front = NULL;
		size_t n = 0;
		uint64_t dropped = 0;

		if (s->retry_init)
			uv_timer_stop(&s->retry);
		if (s->st == CONN_UP)
			tcp_pump(s);
		if (s->fd >= 0)
			tcp_trim(s, tcp_acked(s));
		/* Records not acknowledged go back in front of the buffer: they may
		 * reach the destination twice, never not at all. */
		for (size_t i = 0; i < s->fl_len; i++)
			n += s->fl[i] == '\n';
		if (n > 0)
			front = calloc(n, sizeof(*front));
		if (front != NULL) {
			size_t start = 0, k = 0;

			for (size_t i = 0; i < s->fl_len; i++)
				if (s->fl[i] == '\n') {
					front[k++] = (struct iovec){ s->fl + start, i - start };
					start = i + 1;
				}
		}
		if (dd_recq_save(s->q, front, front != NULL ? n : 0, &dropped) != 0 ||
		    (n > 0 && front == NULL))
			dd_error("[%s] cannot keep the sink buffer in the state directory; records "
				 "waiting for %s are lost", s->section, s->target);
		if (dropped > 0)
			dd_warn("[%s] %" PRIu64 " records waiting for %s did not fit in the sink "
				"buffer at stop and are lost", s->section, dropped, s->target);
		free(front);
		if (s->fd >= 0) {
			if (s->poll != NULL) {
				uv_poll_stop(s->poll);
				uv_close((uv_handle_t *)s->poll, poll_closed);
				s->poll = NULL;
			}
			close(s->fd);
			s->fd = -1;
		}
		s->fl_len = 0;
		break;
	}
	}
	drop_report(s);
}

void
sink_get_status(const struct rx_sink *s, struct sink_status *out)
{
	static const char *const conn[] = { "down", "connecting", "up", "closing" };
	bool failing = s->last_drop_ms != 0 && dd_mono_ms() - s->last_drop_ms < FAILING_MS;

	memset(out, 0, sizeof(*out));
	out->target = s->target;
	out->dropped = s->dropped_total;
	out->last_drop_ms = s->last_drop_ms;
	switch (s->kind) {
	case SINK_TCP:
		out->state = conn[s->st];
		/* Waiting in the buffer, and handed to the connection but not
		 * acknowledged (sent again if it breaks). */
		out->backlog = s->q != NULL ? dd_recq_records(s->q) : 0;
		for (const uint8_t *p = s->fl, *end = s->fl + s->fl_len;
		     p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
			out->backlog++;
		break;
	case SINK_MQTT:
		out->state = mqtt_sink_is_up(s->mqtt) ? "up" : "down";
		out->backlog = mqtt_sink_backlog(s->mqtt);
		break;
	case SINK_DIR:
	case SINK_UDP:
	default:
		out->state = failing ? "failing" : "ok";
		break;
	}
}

void
sink_free(struct rx_sink *s)
{
	if (s == NULL)
		return;
	if (s->seg_fd >= 0)
		close(s->seg_fd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	if (s->fd >= 0)
		close(s->fd);
	if (s->ufd >= 0)
		close(s->ufd);
	dd_recq_free(s->q);
	mqtt_sink_free(s->mqtt);
	free(s->line);
	free(s->fl);
	free(s->wbuf);
	free(s->ubuf);
	free(s);
}

void
sink_drop(struct rx_sink *s, uint64_t seq, uint64_t n, const char *reason, const char *detail)
{
	drop(s, seq, n, reason, detail);
}
