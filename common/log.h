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
	/* RFC 5424 structured data of the same fields, for syslog (only built
	 * when syslog in that format is on). */
	char sd[DD_AUDIT_LINE_MAX];
	size_t sd_len;
	bool sd_overflow;
	char event[48];     /* the event name (syslog MSGID) */
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

/* ---- syslog: operational lines and audit events to a local syslog socket ---- */
/*
 * With [log] syslog = yes every line dd_log prints (at the configured level)
 * and every audit event also go, one datagram each, to a Unix datagram
 * socket (/dev/log unless [log] syslog_socket says otherwise):
 *  - rfc3164 (default): "<PRI>Mmm dd hh:mm:ss diode-rx[PID]: MSG", what
 *    syslog(3) sends, which journald, rsyslog and syslog-ng all parse;
 *  - rfc5424: "<PRI>1 TIMESTAMP HOST diode-rx PID MSGID SD MSG" (for a
 *    collector told to expect it), audit events with MSGID = the event name
 *    and their fields as structured data [diode@32473 key="value" ...].
 * The MSG of an audit event is its JSON object, as in the audit log.
 * Operational lines are at the severity of their level; audit events at
 * notice, or warning for events that report a loss or a failure.
 * Sending never blocks: the socket is non-blocking, a datagram the syslog
 * daemon has no room for is dropped and counted (and the count reported once
 * it accepts again); when it restarts, the socket is connected again (the
 * same descriptor, so the sandbox only has to allow connect() on it).
 */
enum dd_syslog_format { DD_SYSLOG_RFC3164, DD_SYSLOG_RFC5424 };
#define DD_SYSLOG_FACILITIES \
	"daemon|user|auth|authpriv|local0|local1|local2|local3|local4|local5|local6|local7"

/* Facility number of a name from DD_SYSLOG_FACILITIES (and kern, mail, lpr,
 * news, uucp, cron, ftp, syslog), or -EINVAL. */
int dd_syslog_facility(const char *name);
/* Create the socket and connect it (before the sandbox). 0, or a negative
 * errno with the reason in err. A socket path that does not accept yet (no
 * syslog daemon running) is not an error: a warning is logged and the
 * connection retried when there is something to send. */
int dd_syslog_open(const char *path, int facility, enum dd_syslog_format format, char *err,
		   size_t errlen);
void dd_syslog_close(void);
/* The socket, for dd_sandbox_syslog_socket; -1 when syslog is off. */
int dd_syslog_fd(void);
/* Datagrams sent, and dropped (syslog daemon slow, down or message too long). */
uint64_t dd_syslog_sent(void);
uint64_t dd_syslog_dropped(void);

/* JSON string escaping of len bytes into out (NUL-terminated); returns bytes
 * written or -ENOSPC. Bytes >= 0x80 are copied (callers pass UTF-8). */
int dd_json_escape(char *out, size_t outlen, const char *s, size_t len);

#endif
