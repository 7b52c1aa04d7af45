/* Operational logging and the append-only JSON Lines audit log. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *log_program = "diode";
static enum dd_log_level log_max = DD_LOG_INFO;
static int audit_fd = -1;
static char audit_path[4096];

static const char *const level_names[] = { "error", "warning", "notice", "info", "debug" };

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
	int n, m;

	if (level > log_max)
		return;
	format_time(ts, sizeof(ts), dd_now_ms());
	n = snprintf(line, sizeof(line), "%s %s: %s: ", ts, log_program, level_names[level]);
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
	append(ev, "{\"ts\":\"", 7);
	append(ev, ts, n);
	append(ev, "\"", 1);
	dd_audit_str(ev, "program", log_program);
	dd_audit_str(ev, "event", name);
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
}

void
dd_audit_commit(struct dd_audit_event *ev)
{
	if (audit_fd < 0)
		return;
	if (ev->overflow) {
		dd_error("audit event too long for one line; event dropped (this is a bug)");
		return;
	}
	ev->buf[ev->len++] = '}';
	ev->buf[ev->len++] = '\n';
	if (write(audit_fd, ev->buf, ev->len) != (ssize_t)ev->len)
		dd_error("%s: writing audit log: %s", audit_path, strerror(errno));
}
