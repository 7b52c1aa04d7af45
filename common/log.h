/* Operational log lines on stderr, rate limiting, and the JSON Lines audit log. */
#ifndef DD_LOG_H
#define DD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dd_log_level { DD_LOG_ERROR, DD_LOG_WARNING, DD_LOG_NOTICE, DD_LOG_INFO, DD_LOG_DEBUG };

/* Program name in every line; messages above max_level are dropped. */
void dd_log_init(const char *program, enum dd_log_level max_level);
void dd_log(enum dd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define dd_error(...) dd_log(DD_LOG_ERROR, __VA_ARGS__)
#define dd_warn(...) dd_log(DD_LOG_WARNING, __VA_ARGS__)
#define dd_notice(...) dd_log(DD_LOG_NOTICE, __VA_ARGS__)
#define dd_info(...) dd_log(DD_LOG_INFO, __VA_ARGS__)
#define dd_debug(...) dd_log(DD_LOG_DEBUG, __VA_ARGS__)

/* Clocks: wall clock in ms since the epoch, monotonic in ms. */
uint64_t dd_now_ms(void);
uint64_t dd_mono_ms(void);

/* At most one message per interval; counts the rest. */
struct dd_ratelimit {
	uint64_t interval_ms;
	uint64_t last_ms;
	uint64_t suppressed;
};
/* True when a message may be printed now; *suppressed gets the number held back since. */
bool dd_ratelimit_ok(struct dd_ratelimit *rl, uint64_t now_ms, uint64_t *suppressed);

/* ---- audit: one JSON object per line, appended with a single write ---- */
#define DD_AUDIT_LINE_MAX 8192

struct dd_audit_event {
	char buf[DD_AUDIT_LINE_MAX];
	size_t len;
	bool overflow;
};

/* Open (append, create 0640) the audit log; path NULL disables auditing. */
int dd_audit_open(const char *path, char *err, size_t errlen);
/* Reopen after rotation (SIGHUP). */
int dd_audit_reopen(void);
void dd_audit_close(void);

/* Start an event: {"ts":"…","program":"diode-rx","event":NAME */
void dd_audit_begin(struct dd_audit_event *ev, const char *name);
void dd_audit_str(struct dd_audit_event *ev, const char *key, const char *value);
void dd_audit_strn(struct dd_audit_event *ev, const char *key, const char *value, size_t len);
void dd_audit_u64(struct dd_audit_event *ev, const char *key, uint64_t value);
void dd_audit_hex(struct dd_audit_event *ev, const char *key, const uint8_t *bytes, size_t n);
/* Close the object and append it to the log (no-op when auditing is off). */
void dd_audit_commit(struct dd_audit_event *ev);

/* JSON string escaping of len bytes into out (NUL-terminated); returns bytes
 * written or -ENOSPC. Bytes >= 0x80 are copied (callers pass UTF-8). */
int dd_json_escape(char *out, size_t outlen, const char *s, size_t len);

#endif
