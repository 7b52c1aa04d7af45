/* Prometheus text exposition format writer and the atomically replaced metrics file. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "state.h"

static void
fail(struct dd_metrics *m, int error)
{
	if (m->error == 0)
		m->error = error;
}

static void
put(struct dd_metrics *m, const char *s, size_t n)
{
	if (m->error != 0)
		return;
	/* Keep room for the terminating NUL of dd_metrics_finish. */
	if (n >= m->cap - m->len) {
		fail(m, -ENOSPC);
		return;
	}
	memcpy(m->buf + m->len, s, n);
	m->len += n;
}

static void
puts_(struct dd_metrics *m, const char *s)
{
	put(m, s, strlen(s));
}

void
dd_metrics_init(struct dd_metrics *m, char *buf, size_t cap)
{
	memset(m, 0, sizeof(*m));
	m->buf = buf;
	m->cap = cap;
	if (cap == 0)
		m->error = -ENOSPC;
}

static bool
name_char(char c, bool first, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

bool
dd_metrics_name_ok(const char *name)
{
	if (name == NULL || name[0] == '\0')
		return false;
	for (size_t i = 0; name[i] != '\0'; i++)
		if (!name_char(name[i], i == 0, true))
			return false;
	return true;
}

bool
dd_metrics_label_name_ok(const char *name)
{
	if (name == NULL || name[0] == '\0' || strncmp(name, "__", 2) == 0)
		return false;
	for (size_t i = 0; name[i] != '\0'; i++)
		if (!name_char(name[i], i == 0, false))
			return false;
	return true;
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int
escape(char *out, size_t outlen, const char *s, bool quote)
{
	size_t o = 0;

	for (; *s != '\0'; s++) {
		char esc[2];
		size_t n = 1;

		esc[0] = *s;
		if (*s == '\\' || (quote && *s == '"')) {
			esc[0] = '\\';
			esc[1] = *s;
			n = 2;
		} else if (*s == '\n') {
			esc[0] = '\\';
			esc[1] = 'n';
			n = 2;
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

int
dd_metrics_escape_label(char *out, size_t outlen, const char *s)
{
	return escape(out, outlen, s, true);
}

int
dd_metrics_escape_help(char *out, size_t outlen, const char *s)
{
	return escape(out, outlen, s, false);
}

void
dd_metrics_family(struct dd_metrics *m, const char *name, enum dd_metric_type type,
		  const char *help)
{
	char esc[1024];
	bool counter = type == DD_METRIC_COUNTER;

	m->in_family = false;
	if (!dd_metrics_name_ok(name) || strlen(name) >= sizeof(m->family) ||
	    counter != ends_with(name, "_total")) {
		fail(m, -EINVAL);
		return;
	}
	if (dd_metrics_escape_help(esc, sizeof(esc), help) < 0) {
		fail(m, -EINVAL);
		return;
	}
	strcpy(m->family, name);
	m->in_family = true;
	puts_(m, "# HELP ");
	puts_(m, name);
	puts_(m, " ");
	puts_(m, esc);
	puts_(m, "\n# TYPE ");
	puts_(m, name);
	puts_(m, counter ? " counter\n" : " gauge\n");
}

/* name{a="x",b="y"} and the space before the value. */
static void
sample_start(struct dd_metrics *m, const struct dd_metrics_label *labels, size_t nlabels)
{
	char esc[1024];

	if (!m->in_family) {
		fail(m, -EINVAL);
		return;
	}
	puts_(m, m->family);
	for (size_t i = 0; i < nlabels; i++) {
		if (!dd_metrics_label_name_ok(labels[i].name) || labels[i].value == NULL ||
		    dd_metrics_escape_label(esc, sizeof(esc), labels[i].value) < 0) {
			fail(m, -EINVAL);
			return;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(labels[j].name, labels[i].name) == 0) {
				fail(m, -EINVAL);
				return;
			}
		puts_(m, i == 0 ? "{" : ",");
		puts_(m, labels[i].name);
		puts_(m, "=\"");
		puts_(m, esc);
		puts_(m, "\"");
	}
	if (nlabels > 0)
		puts_(m, "}");
	puts_(m, " ");
}

void
dd_metrics_u64(struct dd_metrics *m, const struct dd_metrics_label *labels, size_t nlabels,
	       uint64_t value)
{
	char num[32];

	sample_start(m, labels, nlabels);
	snprintf(num, sizeof(num), "%" PRIu64 "\n", value);
	puts_(m, num);
}

void
dd_metrics_double(struct dd_metrics *m, const struct dd_metrics_label *labels, size_t nlabels,
		  double value)
{
	char num[40];

	sample_start(m, labels, nlabels);
	if (isnan(value))
		snprintf(num, sizeof(num), "NaN\n");
	else if (isinf(value))
		snprintf(num, sizeof(num), "%s\n", value > 0 ? "+Inf" : "-Inf");
	else
		snprintf(num, sizeof(num), "%.17g\n", value);
	puts_(m, num);
}

int
dd_metrics_finish(struct dd_metrics *m)
{
	if (m->error == 0 && m->len < m->cap)
		m->buf[m->len] = '\0';
	else if (m->cap > 0)
		m->buf[0] = '\0';
	return m->error;
}

/* ------------------------------------------------------------ the file */

int
dd_metrics_file_open(struct dd_metrics_file *f, const char *path, char *err, size_t errlen)
{
	const char *slash, *base;
	size_t dirlen;

	memset(f, 0, sizeof(*f));
	f->dirfd = -1;
	if (path == NULL)
		return 0;
	slash = strrchr(path, '/');
	base = slash != NULL ? slash + 1 : path;
	if (path[0] != '/') {
		snprintf(err, errlen, "%s: give an absolute path (e.g. "
			 "/var/lib/prometheus/node-exporter/diode.prom)", path);
		return -EINVAL;
	}
	if (base[0] == '\0' || base[0] == '.' || strlen(base) >= sizeof(f->name) - 8) {
		snprintf(err, errlen, "%s: needs a file name that does not start with '.' and "
			 "is shorter than %zu bytes (e.g. diode.prom)", path, sizeof(f->name) - 8);
		return -EINVAL;
	}
	dirlen = slash == path ? 1 : (size_t)(slash - path);
	if (dirlen >= sizeof(f->dir)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(f->dir, path, dirlen);
	f->dir[dirlen] = '\0';
	strcpy(f->name, base);
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->dirfd < 0) {
		int e = errno;

		snprintf(err, errlen, "%s: directory %s: %s (create it, writable by the daemon's "
			 "user, first)", path, f->dir, strerror(e));
		return -e;
	}
	return 0;
}

int
dd_metrics_file_write(struct dd_metrics_file *f, const struct dd_metrics *m)
{
	static struct dd_ratelimit rl = { .interval_ms = 60000 };
	uint64_t suppressed = 0;
	int rc;

	if (f->dirfd < 0)
		return 0;
	rc = m->error != 0 ? m->error : dd_state_write_shared(f->dirfd, f->name, m->buf, m->len);
	if (rc != 0) {
		f->failures++;
		if (dd_ratelimit_ok(&rl, dd_mono_ms(), &suppressed))
			dd_error("[log] metrics: cannot write %s/%s: %s (%" PRIu64 " more failures "
				 "not shown); check the directory's owner and free space",
				 f->dir, f->name, strerror(-rc), suppressed);
	}
	return rc;
}

void
dd_metrics_file_close(struct dd_metrics_file *f)
{
	if (f->dirfd >= 0)
		close(f->dirfd);
	f->dirfd = -1;
}

/* ------------------------------------------- [log] monitoring settings */

int
dd_monitoring_open(const struct dd_config *cfg, struct dd_metrics_file *f, uint64_t *interval_ms)
{
	char err[4400];
	const char *format = dd_config_str(cfg, "log", "syslog_format");

	*interval_ms = dd_config_u64(cfg, "log", "metrics_interval");
	if (dd_metrics_file_open(f, dd_config_str(cfg, "log", "metrics"), err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: [log] metrics: %s\n", dd_config_where(cfg, "log", "metrics"),
			err);
		return -1;
	}
	if (!dd_config_bool(cfg, "log", "syslog"))
		return 0;
	if (dd_syslog_open(dd_config_str(cfg, "log", "syslog_socket"),
			   dd_syslog_facility(dd_config_str(cfg, "log", "syslog_facility")),
			   strcmp(format, "rfc5424") == 0 ? DD_SYSLOG_RFC5424 : DD_SYSLOG_RFC3164,
			   err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: [log] syslog_socket: %s\n",
			dd_config_where(cfg, "log", "syslog_socket"), err);
		dd_metrics_file_close(f);
		return -1;
	}
	return 0;
}

void
dd_metrics_counter(struct dd_metrics *m, const char *name, const char *help, uint64_t v)
{
	dd_metrics_family(m, name, DD_METRIC_COUNTER, help);
	dd_metrics_u64(m, NULL, 0, v);
}

void
dd_metrics_gauge(struct dd_metrics *m, const char *name, const char *help, double v)
{
	dd_metrics_family(m, name, DD_METRIC_GAUGE, help);
	dd_metrics_double(m, NULL, 0, v);
}

void
dd_metrics_publish(struct dd_metrics *m, struct dd_metrics_file *f, const char *prefix)
{
	static bool said;
	char name[128];

	if (dd_syslog_fd() >= 0) {
		snprintf(name, sizeof(name), "%s_syslog_sent_messages_total", prefix);
		dd_metrics_counter(m, name, "Messages sent to the syslog socket.",
				   dd_syslog_sent());
		snprintf(name, sizeof(name), "%s_syslog_dropped_messages_total", prefix);
		dd_metrics_counter(m, name,
				   "Messages not sent to syslog (syslog daemon slow or down).",
				   dd_syslog_dropped());
	}
	if (dd_metrics_finish(m) != 0) {
		if (!said)
			dd_error("[log] metrics: cannot format the metrics (%s); this is a bug",
				 strerror(-m->error));
		said = true;
	}
	dd_metrics_file_write(f, m);
}
