/* Operational logging and the append-only JSON Lines audit log. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_program = "diode";
static enum dd_log_level log_max = DD_LOG_INFO;
static int audit_fd = -1;
static char audit_path[4096];
static int syslog_fd = -1;
static bool syslog_connected;
static char syslog_path[108];
static char syslog_host[256];
static int syslog_facility = 3;
static enum dd_syslog_format syslog_format;
static long syslog_pid;
static uint64_t syslog_sent, syslog_dropped, syslog_dropped_reported, syslog_retry_ms;

static const char *const level_names[] = { "error", "warning", "notice", "info", "debug" };

static void syslog_send(int severity, const char *msgid, const char *sd, size_t sdlen,
			const char *msg, size_t msglen);
static bool syslog_sd_wanted(void);

/* syslog(3) severities of enum dd_log_level, and of audit events. */
static const int level_severity[] = { 3, 4, 5, 6, 7 };
#define SEVERITY_NOTICE 5
#define SEVERITY_WARNING 4

void
dd_log_init(const char *program, enum dd_log_level max_level)
{
	log_program = program;
	log_max = max_level;
}

uint64_t
dd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
dd_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t
format_time(char *out, size_t len, uint64_t ms)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&secs, &tm);
	n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(out + n, len - n, ".%03uZ", (unsigned)(ms % 1000));
	return n;
}

void
dd_log(enum dd_log_level level, const char *fmt, ...)
{
	char line[2048], ts[40];
	va_list ap;
	int n, m, prefix;

	if (level > log_max)
		return;
	format_time(ts, sizeof(ts), dd_now_ms());
	n = snprintf(line, sizeof(line), "%s %s: %s: ", ts, log_program, level_names[level]);
	prefix = n;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
	/* The message alone: syslog has its own time stamp, program and severity. */
	syslog_send(level_severity[level], NULL, NULL, 0, line + prefix, (size_t)(n - 1 - prefix));
}

bool
dd_ratelimit_ok(struct dd_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed)
{
	if (rl->last_ms != 0 && now_ms - rl->last_ms < rl->interval_ms) {
		rl->suppressed++;
		return false;
	}
	if (suppressed != NULL)
		*suppressed = rl->suppressed;
	rl->suppressed = 0;
	rl->last_ms = now_ms ? now_ms : 1;
	return true;
}

int
dd_audit_open(const char *path, char *err, size_t errlen)
{
	int fd;

	dd_audit_close();
	if (path == NULL)
		return 0;
	if (strlen(path) >= sizeof(audit_path)) {
		snprintf(err, errlen, "%s: audit log path too long", path);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open audit log: %s", path, strerror(errno));
		return -errno;
	}
	strcpy(audit_path, path);
	audit_fd = fd;
	return 0;
}

int
dd_audit_reopen(void)
{
	int fd;

	if (audit_fd < 0)
		return 0;
	fd = open(audit_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		dd_error("%s: cannot reopen audit log: %s; still writing to the old file",
			 audit_path, strerror(errno));
		return -errno;
	}
	close(audit_fd);
	audit_fd = fd;
	return 0;
}

void
dd_audit_close(void)
{
	if (audit_fd >= 0)
		close(audit_fd);
	audit_fd = -1;
}

int
dd_json_escape(char *out, size_t outlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7];
		size_t n = 0;

		if (c == '"' || c == '\\') {
			esc[n++] = '\\';
			esc[n++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		} else {
			esc[n++] = (char)c;
		}
		if (o + n + 1 > outlen)
			return -ENOSPC;
		memcpy(out + o, esc, n);
		o += n;
	}
	if (o + 1 > outlen)
		return -ENOSPC;
	out[o] = '\0';
	return (int)o;
}

static void
append(struct dd_audit_event *ev, const char *s, size_t n)
{
	if (ev->overflow || ev->len + n + 3 > sizeof(ev->buf)) {
		ev->overflow = true;
		return;
	}
	memcpy(ev->buf + ev->len, s, n);
	ev->len += n;
}

static void
append_key(struct dd_audit_event *ev, const char *key)
{
	append(ev, ",\"", 2);
	append(ev, key, strlen(key));
	append(ev, "\":", 2);
}

void
dd_audit_begin(struct dd_audit_event *ev, const char *name)
{
	char ts[40];
	size_t n = format_time(ts, sizeof(ts), dd_now_ms());

	ev->len = 0;
	ev->overflow = false;
	ev->sd_len = 0;
	ev->sd_overflow = !syslog_sd_wanted();
	snprintf(ev->event, sizeof(ev->event), "%s", name);
	append(ev, "{\"ts\":\"", 7);
	append(ev, ts, n);
	append(ev, "\"", 1);
	dd_audit_str(ev, "program", log_program);
	dd_audit_str(ev, "event", name);
	/* Time, program and event are in the syslog header, not in its SD. */
	ev->sd_len = 0;
}

/* One SD-PARAM: key="value" with '"', '\\' and ']' escaped (RFC 5424 6.3.3);
 * control characters become '?', so no collector splits a record. */
static void
sd_param(struct dd_audit_event *ev, const char *key, const char *value, size_t len)
{
	size_t klen = strlen(key), need = klen + 4;

	if (ev->sd_overflow)
		return;
	for (size_t i = 0; i < len; i++)
		need += value[i] == '"' || value[i] == '\\' || value[i] == ']' ? 2 : 1;
	if (ev->sd_len + need >= sizeof(ev->sd)) {
		ev->sd_overflow = true;
		return;
	}
	ev->sd[ev->sd_len++] = ' ';
	memcpy(ev->sd + ev->sd_len, key, klen);
	ev->sd_len += klen;
	ev->sd[ev->sd_len++] = '=';
	ev->sd[ev->sd_len++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c == '"' || c == '\\' || c == ']')
			ev->sd[ev->sd_len++] = '\\';
		ev->sd[ev->sd_len++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	ev->sd[ev->sd_len++] = '"';
}

void
dd_audit_strn(struct dd_audit_event *ev, const char *key, const char *value, size_t len)
{
	char esc[DD_AUDIT_LINE_MAX];
	int n;

	append_key(ev, key);
	n = dd_json_escape(esc, sizeof(esc), value, len);
	if (n < 0) {
		ev->overflow = true;
		return;
	}
	append(ev, "\"", 1);
	append(ev, esc, (size_t)n);
	append(ev, "\"", 1);
	sd_param(ev, key, value, len);
}

void
dd_audit_str(struct dd_audit_event *ev, const char *key, const char *value)
{
	dd_audit_strn(ev, key, value, strlen(value));
}

void
dd_audit_u64(struct dd_audit_event *ev, const char *key, uint64_t value)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)value);

	append_key(ev, key);
	append(ev, num, (size_t)n);
	sd_param(ev, key, num, (size_t)n);
}

void
dd_audit_hex(struct dd_audit_event *ev, const char *key, const uint8_t *bytes, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char out[2 * 64];

	if (n > 64) {
		ev->overflow = true;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[bytes[i] >> 4];
		out[2 * i + 1] = hex[bytes[i] & 15];
	}
	append_key(ev, key);
	append(ev, "\"", 1);
	append(ev, out, 2 * n);
	append(ev, "\"", 1);
	sd_param(ev, key, out, 2 * n);
}

/* Audit events that report a loss, a refusal or a failure: syslog warning. */
static int
audit_severity(const char *event)
{
	static const char *const warnings[] = {
		"file_failed",	   "file_rejected",   "file_abandoned", "staging_refused",
		"auth_failures",   "records_dropped", "records_lost",	"records_refused",
		"clients_refused", "sender_dropped",  "sink_down",	"link_down",
		"channel_reset",
	};

	for (size_t i = 0; i < sizeof(warnings) / sizeof(warnings[0]); i++)
		if (strcmp(event, warnings[i]) == 0)
			return SEVERITY_WARNING;
	return SEVERITY_NOTICE;
}

void
dd_audit_commit(struct dd_audit_event *ev)
{
	if (audit_fd < 0 && syslog_fd < 0)
		return;
	if (ev->overflow) {
		dd_error("audit event too long for one line; event dropped (this is a bug)");
		return;
	}
	ev->buf[ev->len++] = '}';
	syslog_send(audit_severity(ev->event), ev->event, ev->sd_overflow ? NULL : ev->sd,
		    ev->sd_len, ev->buf, ev->len);
	ev->buf[ev->len++] = '\n';
	if (audit_fd >= 0 && write(audit_fd, ev->buf, ev->len) != (ssize_t)ev->len)
		dd_error("%s: writing audit log: %s", audit_path, strerror(errno));
}

/* ---------------------------------------------------------------- syslog */

static const struct {
	const char *name;
	int code;
} facilities[] = {
	{ "kern", 0 },	   { "user", 1 },     { "mail", 2 },	 { "daemon", 3 },
	{ "auth", 4 },	   { "syslog", 5 },   { "lpr", 6 },	 { "news", 7 },
	{ "uucp", 8 },	   { "cron", 9 },     { "authpriv", 10 }, { "ftp", 11 },
	{ "local0", 16 },  { "local1", 17 },  { "local2", 18 },  { "local3", 19 },
	{ "local4", 20 },  { "local5", 21 },  { "local6", 22 },  { "local7", 23 },
};

int
dd_syslog_facility(const char *name)
{
	for (size_t i = 0; name != NULL && i < sizeof(facilities) / sizeof(facilities[0]); i++)
		if (strcmp(name, facilities[i].name) == 0)
			return facilities[i].code;
	return -EINVAL;
}

static bool
syslog_sd_wanted(void)
{
	return syslog_fd >= 0 && syslog_format == DD_SYSLOG_RFC5424;
}

static int
syslog_connect(void)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, syslog_path, strlen(syslog_path) + 1);
	if (connect(syslog_fd, (const struct sockaddr *)&sun, sizeof(sun)) < 0)
		return -errno;
	return 0;
}

int
dd_syslog_open(const char *path, int facility, enum dd_syslog_format format, char *err,
	       size_t errlen)
{
	int rc;

	dd_syslog_close();
	if (path == NULL || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
	    path[0] != '/') {
		snprintf(err, errlen, "%s: a syslog socket needs an absolute path shorter than "
			 "%zu bytes (e.g. /dev/log)", path != NULL ? path : "(none)",
			 sizeof(((struct sockaddr_un *)0)->sun_path));
		return -EINVAL;
	}
	if (facility < 0 || facility > 23) {
		snprintf(err, errlen, "syslog facility %d out of range", facility);
		return -EINVAL;
	}
	strcpy(syslog_path, path);
	syslog_facility = facility;
	syslog_format = format;
	syslog_pid = (long)getpid();
	if (gethostname(syslog_host, sizeof(syslog_host)) != 0 || syslog_host[0] == '\0')
		strcpy(syslog_host, "-");
	syslog_host[sizeof(syslog_host) - 1] = '\0';
	for (char *p = syslog_host; *p != '\0'; p++)
		if (*p <= ' ' || *p > '~')
			*p = '_';
	/* Local time for RFC 3164 stamps: read the zone now, while /etc is readable. */
	tzset();
	syslog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (syslog_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "syslog: cannot create a Unix datagram socket: %s",
			 strerror(-rc));
		return rc;
	}
	syslog_sent = syslog_dropped = syslog_dropped_reported = 0;
	syslog_retry_ms = 0;
	rc = syslog_connect();
	syslog_connected = rc == 0;
	if (rc != 0)
		dd_warn("[log] syslog_socket %s: %s; messages are dropped (and counted) until a "
			"syslog daemon listens there", syslog_path, strerror(-rc));
	return 0;
}

void
dd_syslog_close(void)
{
	if (syslog_fd >= 0)
		close(syslog_fd);
	syslog_fd = -1;
	syslog_connected = false;
}

int
dd_syslog_fd(void)
{
	return syslog_fd;
}

uint64_t
dd_syslog_sent(void)
{
	return syslog_sent;
}

uint64_t
dd_syslog_dropped(void)
{
	return syslog_dropped;
}

/* One datagram; on a refused or lost connection, connect again (at most once a
 * second) and retry once. Never blocks, never logs through syslog itself. */
static bool
syslog_write(const char *buf, size_t len)
{
	uint64_t now;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!syslog_connected) {
			now = dd_mono_ms();
			if (syslog_retry_ms != 0 && now - syslog_retry_ms < 1000)
				return false;
			syslog_retry_ms = now;
			if (syslog_connect() != 0)
				return false;
			syslog_connected = true;
		}
		if (write(syslog_fd, buf, len) == (ssize_t)len)
			return true;
		if (errno != ECONNREFUSED && errno != ENOTCONN && errno != ECONNRESET &&
		    errno != ENOENT)
			return false; /* EAGAIN (syslog daemon busy), EMSGSIZE...: dropped */
		syslog_connected = false;
		syslog_retry_ms = 0;
	}
	return false;
}

static bool
syslog_format_and_send(int severity, const char *msgid, const char *sd, size_t sdlen,
		       const char *msg, size_t msglen)
{
	char buf[2 * DD_AUDIT_LINE_MAX + 512], ts[40];
	uint64_t ms = dd_now_ms();
	int pri = syslog_facility * 8 + severity, n;
	size_t room;

	if (syslog_format == DD_SYSLOG_RFC5424) {
		format_time(ts, sizeof(ts), ms);
		n = snprintf(buf, sizeof(buf), "<%d>1 %s %s %s %ld %s ", pri, ts, syslog_host,
			     log_program, syslog_pid, msgid != NULL ? msgid : "-");
		if (n < 0)
			return false;
		if (sd != NULL && sdlen > 0 && (size_t)n + sdlen + 20 < sizeof(buf)) {
			n += snprintf(buf + n, sizeof(buf) - (size_t)n, "[diode@32473%.*s] ",
				      (int)sdlen, sd);
		} else {
			memcpy(buf + n, "- ", 2);
			n += 2;
		}
	} else {
		time_t secs = (time_t)(ms / 1000);
		struct tm tm;

		localtime_r(&secs, &tm);
		n = snprintf(buf, sizeof(buf), "<%d>", pri);
		n += (int)strftime(buf + n, sizeof(buf) - (size_t)n, "%b %e %H:%M:%S ", &tm);
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s[%ld]: ", log_program, syslog_pid);
	}
	room = sizeof(buf) - (size_t)n;
	if (msglen > room)
		msglen = room;
	for (size_t i = 0; i < msglen; i++) {
		unsigned char c = (unsigned char)msg[i];

		buf[n + (int)i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	n += (int)msglen;
	return syslog_write(buf, (size_t)n);
}

static void
syslog_send(int severity, const char *msgid, const char *sd, size_t sdlen, const char *msg,
	    size_t msglen)
{
	static bool busy;

	if (syslog_fd < 0 || busy)
		return;
	busy = true;
	if (!syslog_format_and_send(severity, msgid, sd, sdlen, msg, msglen)) {
		syslog_dropped++;
	} else {
		syslog_sent++;
		/* It accepts again: say how many it missed (not counted itself). */
		if (syslog_dropped > syslog_dropped_reported) {
			char note[200];
			int k = snprintf(note, sizeof(note), "syslog: %" PRIu64 " messages were "
					 "dropped (the syslog daemon was slow or not running); "
					 "stderr and the audit log have them",
					 syslog_dropped - syslog_dropped_reported);

			if (syslog_format_and_send(SEVERITY_WARNING, NULL, NULL, 0, note,
						   (size_t)k))
				syslog_dropped_reported = syslog_dropped;
		}
	}
	busy = false;
}
