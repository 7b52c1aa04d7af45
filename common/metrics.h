/* Prometheus text exposition format (0.0.4): metrics built in a caller-owned buffer, written to a file replaced atomically. */
#ifndef DD_METRICS_H
#define DD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/*
 * Usage, once per write:
 *
 *   dd_metrics_init(&m, buf, sizeof(buf));
 *   dd_metrics_family(&m, "diode_rx_files_delivered_total", DD_METRIC_COUNTER, "Files ...");
 *   dd_metrics_u64(&m, NULL, 0, n);
 *   dd_metrics_family(&m, "diode_rx_rejected_datagrams_total", DD_METRIC_COUNTER, "...");
 *   dd_metrics_u64(&m, (const struct dd_metrics_label[]){ { "reason", "bad_tag" } }, 1, n);
 *   ...
 *   if (dd_metrics_finish(&m) == 0) dd_metrics_file_write(&f, &m);
 *
 * Every family gets its # HELP and # TYPE lines once, before its samples, and
 * its samples stay together. Names are checked (metric names
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* not starting
 * with "__", counters end in "_total", other types do not): a bad name is a
 * bug of the caller, and makes dd_metrics_finish fail with -EINVAL. Label
 * values and help texts are escaped as the format requires.
 * WARNING: the writer does not detect two samples of one family with the
 * same labels; callers must not emit them.
 */

enum dd_metric_type { DD_METRIC_COUNTER, DD_METRIC_GAUGE };

struct dd_metrics_label {
	const char *name;
	const char *value; /* any bytes but NUL; escaped */
};

/* The text being built; buf is the caller's. */
struct dd_metrics {
	char *buf;
	size_t cap, len;
	int error;          /* 0, -ENOSPC (buffer too small) or -EINVAL (bad name) */
	bool in_family;
	char family[128];   /* the family samples go to */
};

void dd_metrics_init(struct dd_metrics *m, char *buf, size_t cap);
/* Start a family: "# HELP name help" and "# TYPE name counter|gauge". */
void dd_metrics_family(struct dd_metrics *m, const char *name, enum dd_metric_type type,
		       const char *help);
/* One sample of the current family: name{labels} value. */
void dd_metrics_u64(struct dd_metrics *m, const struct dd_metrics_label *labels, size_t nlabels,
		    uint64_t value);
/* Same with a floating-point value (NaN and infinities as the format spells them). */
void dd_metrics_double(struct dd_metrics *m, const struct dd_metrics_label *labels,
		       size_t nlabels, double value);
/* A family with one unlabelled sample. */
void dd_metrics_counter(struct dd_metrics *m, const char *name, const char *help, uint64_t v);
void dd_metrics_gauge(struct dd_metrics *m, const char *name, const char *help, double v);
/* 0 when the text is complete and valid, else the first error; NUL-terminates. */
int dd_metrics_finish(struct dd_metrics *m) __attribute__((warn_unused_result));

/* Escaping (label value: \\ \" \n; help text: \\ \n) into out, NUL-terminated;
 * returns the length, or -ENOSPC. */
int dd_metrics_escape_label(char *out, size_t outlen, const char *s);
int dd_metrics_escape_help(char *out, size_t outlen, const char *s);
bool dd_metrics_name_ok(const char *name);
bool dd_metrics_label_name_ok(const char *name);

/* ------------------------------------------------------------ the file */

/* The metrics file ([log] metrics = PATH): its directory stays open, and the
 * file is replaced by rename from a hidden temporary file beside it (which a
 * textfile collector ignores: it does not end in ".prom"). */
struct dd_metrics_file {
	int dirfd;           /* -1: metrics are off */
	char dir[4096];      /* the directory, for the sandbox's write rules */
	char name[256];      /* the file name inside it */
	uint64_t failures;   /* writes that failed (logged at most once a minute) */
};

/* Split path, open its directory (which must exist). 0, or a negative errno
 * with "PATH: what is wrong (what to do)" in err. path NULL: metrics off. */
int dd_metrics_file_open(struct dd_metrics_file *f, const char *path, char *err, size_t errlen);
/* Replace the file with the text of m (mode 0644, no fsync: a metrics file is
 * rewritten every few seconds). 0 or a negative errno (logged, rate-limited). */
int dd_metrics_file_write(struct dd_metrics_file *f, const struct dd_metrics *m);
void dd_metrics_file_close(struct dd_metrics_file *f);
/* The end of every daemon's metrics: the syslog counters (when syslog is on)
 * as PREFIX_syslog_*_total, finish (a formatting error is logged once: it is a
 * bug) and replace the file. */
void dd_metrics_publish(struct dd_metrics *m, struct dd_metrics_file *f, const char *prefix);

/* ------------------------------------------- [log] monitoring settings */

/* The [log] keys for metrics and syslog, to put in a daemon's schema. */
#define DD_MONITORING_CONFIG_KEYS                                                             \
	{ "log", "metrics", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },                  \
		{ "log", "metrics_interval", DD_CFG_DURATION, false, "5s", 1000, 3600000, NULL, \
		  false },                                                                      \
		{ "log", "syslog", DD_CFG_BOOL, false, "no", 0, 0, NULL, false },               \
		{ "log", "syslog_socket", DD_CFG_STRING, false, "/dev/log", 0, 0, NULL, false }, \
		{ "log", "syslog_facility", DD_CFG_ENUM, false, "daemon", 0, 0,                 \
		  DD_SYSLOG_FACILITIES, false },                                                \
	{                                                                                     \
		"log", "syslog_format", DD_CFG_ENUM, false, "rfc3164", 0, 0, "rfc3164|rfc5424", \
			false                                                                   \
	}

struct dd_config;

/* Read the [log] keys above: open the metrics file's directory into f and
 * *interval_ms, and with syslog = yes the syslog socket (before the
 * sandbox). 0, or -1 after printing "FILE:LINE: [log] key: ..." on stderr. */
int dd_monitoring_open(const struct dd_config *cfg, struct dd_metrics_file *f,
		       uint64_t *interval_ms);

#endif
