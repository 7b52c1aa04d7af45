/* Unit tests for common/metrics.c (Prometheus text format, metrics file) and the syslog output of common/log.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"

#define L1(a, b) (const struct dd_metrics_label[]){ { a, b } }, 1
#define L2(a, b, c, d) (const struct dd_metrics_label[]){ { a, b }, { c, d } }, 2

static void
test_metrics_exact_text_for_a_small_set(void **state)
{
	char buf[1024];
	struct dd_metrics m;

	dd_metrics_init(&m, buf, sizeof(buf));
	dd_metrics_family(&m, "diode_rx_files_delivered_total", DD_METRIC_COUNTER,
			  "Files delivered.");
	dd_metrics_u64(&m, NULL, 0, 2);
	dd_metrics_family(&m, "diode_rx_rejected_datagrams_total", DD_METRIC_COUNTER,
			  "Rejected, by reason.");
	dd_metrics_u64(&m, L1("reason", "bad_tag"), 18446744073709551615ull);
	dd_metrics_u64(&m, L1("reason", "replay"), 0);
	dd_metrics_family(&m, "diode_tx_channel_records_dropped_total", DD_METRIC_COUNTER, "D.");
	dd_metrics_u64(&m, L2("channel", "hist", "reason", "overflow"), 7);
	dd_metrics_family(&m, "diode_rx_link_up", DD_METRIC_GAUGE, "Link.");
	dd_metrics_double(&m, NULL, 0, 1);
	dd_metrics_family(&m, "diode_rx_session_age_seconds", DD_METRIC_GAUGE, "Age.");
	dd_metrics_double(&m, NULL, 0, 0.25);
	assert_int_equal(dd_metrics_finish(&m), 0);
	assert_string_equal(buf,
			    "# HELP diode_rx_files_delivered_total Files delivered.\n"
			    "# TYPE diode_rx_files_delivered_total counter\n"
			    "diode_rx_files_delivered_total 2\n"
			    "# HELP diode_rx_rejected_datagrams_total Rejected, by reason.\n"
			    "# TYPE diode_rx_rejected_datagrams_total counter\n"
			    "diode_rx_rejected_datagrams_total{reason=\"bad_tag\"} "
			    "18446744073709551615\n"
			    "diode_rx_rejected_datagrams_total{reason=\"replay\"} 0\n"
			    "# HELP diode_tx_channel_records_dropped_total D.\n"
			    "# TYPE diode_tx_channel_records_dropped_total counter\n"
			    "diode_tx_channel_records_dropped_total{channel=\"hist\",reason="
			    "\"overflow\"} 7\n"
			    "# HELP diode_rx_link_up Link.\n"
			    "# TYPE diode_rx_link_up gauge\n"
			    "diode_rx_link_up 1\n"
			    "# HELP diode_rx_session_age_seconds Age.\n"
			    "# TYPE diode_rx_session_age_seconds gauge\n"
			    "diode_rx_session_age_seconds 0.25\n");
	assert_int_equal(m.len, strlen(buf));
}

static void
test_metrics_escapes_label_values_and_help(void **state)
{
	char buf[512];
	struct dd_metrics m;

	dd_metrics_init(&m, buf, sizeof(buf));
	dd_metrics_family(&m, "x", DD_METRIC_GAUGE, "back\\slash \"quoted\"\nnext");
	dd_metrics_u64(&m, L1("channel", "a\\b\"c\nd}e,f=g"), 1);
	assert_int_equal(dd_metrics_finish(&m), 0);
	assert_string_equal(buf, "# HELP x back\\\\slash \"quoted\"\\nnext\n"
				 "# TYPE x gauge\n"
				 "x{channel=\"a\\\\b\\\"c\\nd}e,f=g\"} 1\n");
}

static void
test_metrics_special_float_values(void **state)
{
	char buf[512];
	struct dd_metrics m;

	dd_metrics_init(&m, buf, sizeof(buf));
	dd_metrics_family(&m, "g", DD_METRIC_GAUGE, "h");
	dd_metrics_double(&m, L1("v", "nan"), NAN);
	dd_metrics_double(&m, L1("v", "inf"), INFINITY);
	dd_metrics_double(&m, L1("v", "-inf"), -INFINITY);
	dd_metrics_double(&m, L1("v", "big"), 1e300);
	assert_int_equal(dd_metrics_finish(&m), 0);
	assert_string_equal(buf, "# HELP g h\n# TYPE g gauge\n"
				 "g{v=\"nan\"} NaN\ng{v=\"inf\"} +Inf\ng{v=\"-inf\"} -Inf\n"
				 "g{v=\"big\"} 1.0000000000000001e+300\n");
}

static void
expect_invalid(void (*build)(struct dd_metrics *m))
{
	char buf[512];
	struct dd_metrics m;

	dd_metrics_init(&m, buf, sizeof(buf));
	build(&m);
	assert_int_equal(dd_metrics_finish(&m), -EINVAL);
	assert_string_equal(buf, "");
}

static void
counter_without_total(struct dd_metrics *m)
{
	dd_metrics_family(m, "diode_rx_files", DD_METRIC_COUNTER, "h");
	dd_metrics_u64(m, NULL, 0, 1);
}

static void
gauge_with_total(struct dd_metrics *m)
{
	dd_metrics_family(m, "diode_rx_files_total", DD_METRIC_GAUGE, "h");
}

static void
bad_metric_name(struct dd_metrics *m)
{
	dd_metrics_family(m, "1diode", DD_METRIC_GAUGE, "h");
}

static void
bad_metric_char(struct dd_metrics *m)
{
	dd_metrics_family(m, "diode-rx", DD_METRIC_GAUGE, "h");
}

static void
reserved_label(struct dd_metrics *m)
{
	dd_metrics_family(m, "g", DD_METRIC_GAUGE, "h");
	dd_metrics_u64(m, L1("__name__", "x"), 1);
}

static void
bad_label_name(struct dd_metrics *m)
{
	dd_metrics_family(m, "g", DD_METRIC_GAUGE, "h");
	dd_metrics_u64(m, L1("a:b", "x"), 1);
}

static void
label_twice(struct dd_metrics *m)
{
	dd_metrics_family(m, "g", DD_METRIC_GAUGE, "h");
	dd_metrics_u64(m, L2("a", "x", "a", "y"), 1);
}

static void
sample_without_family(struct dd_metrics *m)
{
	dd_metrics_u64(m, NULL, 0, 1);
}

static void
null_label_value(struct dd_metrics *m)
{
	dd_metrics_family(m, "g", DD_METRIC_GAUGE, "h");
	dd_metrics_u64(m, L1("a", NULL), 1);
}

static void
test_metrics_rejects_bad_names(void **state)
{
	expect_invalid(counter_without_total);
	expect_invalid(gauge_with_total);
	expect_invalid(bad_metric_name);
	expect_invalid(bad_metric_char);
	expect_invalid(reserved_label);
	expect_invalid(bad_label_name);
	expect_invalid(label_twice);
	expect_invalid(sample_without_family);
	expect_invalid(null_label_value);
	assert_true(dd_metrics_name_ok("a:b_c9"));
	assert_false(dd_metrics_name_ok(""));
	assert_true(dd_metrics_label_name_ok("_a9"));
	assert_false(dd_metrics_label_name_ok("9a"));
}

static void
test_metrics_reports_a_full_buffer(void **state)
{
	char buf[64];
	struct dd_metrics m;

	/* Every size from nothing to just enough: -ENOSPC, never an overrun. */
	for (size_t cap = 1; cap <= sizeof(buf); cap++) {
		memset(buf, 'Z', sizeof(buf));
		dd_metrics_init(&m, buf, cap);
		dd_metrics_family(&m, "a_total", DD_METRIC_COUNTER, "help");
		dd_metrics_u64(&m, NULL, 0, 12345);
		if (dd_metrics_finish(&m) == 0) {
			assert_int_equal(strlen(buf), m.len);
			assert_true(m.len < cap);
			assert_string_equal(buf, "# HELP a_total help\n# TYPE a_total counter\n"
						 "a_total 12345\n");
		} else {
			assert_int_equal(m.error, -ENOSPC);
			assert_int_equal(buf[0], '\0');
		}
		for (size_t i = cap; i < sizeof(buf); i++)
			assert_int_equal(buf[i], 'Z');
	}
	dd_metrics_init(&m, buf, 0);
	assert_int_equal(m.error, -ENOSPC);
}

/* ---------------------------------------------------------- the file */

static void
test_metrics_file_is_replaced_with_mode_0644(void **state)
{
	char dir[] = "/tmp/test_metrics.XXXXXX", path[128], err[256], buf[512], text[256];
	struct dd_metrics_file f;
	struct dd_metrics m;
	struct stat st;
	mode_t old = umask(077);
	int fd;
	ssize_t n;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/diode.prom", dir);
	assert_int_equal(dd_metrics_file_open(&f, path, err, sizeof(err)), 0);
	assert_string_equal(f.dir, dir);
	assert_string_equal(f.name, "diode.prom");
	for (int round = 0; round < 2; round++) {
		dd_metrics_init(&m, buf, sizeof(buf));
		dd_metrics_family(&m, "a_total", DD_METRIC_COUNTER, "h");
		dd_metrics_u64(&m, NULL, 0, (uint64_t)round);
		assert_int_equal(dd_metrics_finish(&m), 0);
		assert_int_equal(dd_metrics_file_write(&f, &m), 0);
	}
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	text[n] = '\0';
	assert_string_equal(text, "# HELP a_total h\n# TYPE a_total counter\na_total 1\n");
	/* No temporary file left beside it. */
	snprintf(text, sizeof(text), "%s/.diode.prom.tmp", dir);
	assert_int_equal(access(text, F_OK), -1);
	/* A text that failed to build is not written. */
	m.error = -EINVAL;
	assert_int_equal(dd_metrics_file_write(&f, &m), -EINVAL);
	assert_int_equal(f.failures, 1);
	dd_metrics_file_close(&f);
	unlink(path);
	rmdir(dir);
	umask(old);
}

static void
test_metrics_file_open_explains_bad_paths(void **state)
{
	struct dd_metrics_file f;
	char err[256];

	assert_int_equal(dd_metrics_file_open(&f, NULL, err, sizeof(err)), 0);
	assert_int_equal(f.dirfd, -1);
	assert_int_equal(dd_metrics_file_write(&f, NULL), 0); /* off: nothing to do */
	assert_int_equal(dd_metrics_file_open(&f, "relative.prom", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "absolute"));
	assert_int_equal(dd_metrics_file_open(&f, "/tmp/", err, sizeof(err)), -EINVAL);
	assert_int_equal(dd_metrics_file_open(&f, "/tmp/.hidden", err, sizeof(err)), -EINVAL);
	assert_int_equal(dd_metrics_file_open(&f, "/nonexistent-dir-xyz/d.prom", err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "/nonexistent-dir-xyz"));
	assert_non_null(strstr(err, "create it"));
	assert_int_equal(f.dirfd, -1);
}

/* ---------------------------------------------------------- syslog */

struct listener {
	char dir[40], path[100];
	int fd;
};

static int
listen_at(struct listener *l)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", l->path);
	unlink(l->path);
	return bind(l->fd, (struct sockaddr *)&sun, sizeof(sun));
}

/* Next datagram, NUL-terminated; length or -1 when none waits. */
static ssize_t
next_msg(struct listener *l, char *buf, size_t cap)
{
	ssize_t n = recv(l->fd, buf, cap - 1, MSG_DONTWAIT);

	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static int
syslog_setup(void **state)
{
	struct listener *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return -1;
	strcpy(l->dir, "/tmp/test_syslog.XXXXXX");
	if (mkdtemp(l->dir) == NULL)
		return -1;
	snprintf(l->path, sizeof(l->path), "%s/log", l->dir);
	if (listen_at(l) != 0)
		return -1;
	*state = l;
	return 0;
}

static int
syslog_teardown(void **state)
{
	struct listener *l = *state;

	dd_syslog_close();
	close(l->fd);
	unlink(l->path);
	rmdir(l->dir);
	free(l);
	return 0;
}

static void
test_syslog_facility_names(void **state)
{
	assert_int_equal(dd_syslog_facility("daemon"), 3);
	assert_int_equal(dd_syslog_facility("auth"), 4);
	assert_int_equal(dd_syslog_facility("authpriv"), 10);
	assert_int_equal(dd_syslog_facility("local0"), 16);
	assert_int_equal(dd_syslog_facility("local7"), 23);
	assert_int_equal(dd_syslog_facility("user"), 1);
	assert_int_equal(dd_syslog_facility("local8"), -EINVAL);
	assert_int_equal(dd_syslog_facility(NULL), -EINVAL);
}

static void
test_syslog_rfc3164_log_line_and_audit_event(void **state)
{
	struct listener *l = *state;
	struct dd_audit_event ev;
	char err[256], msg[20000], want[64];

	dd_log_init("diode-test", DD_LOG_INFO);
	assert_int_equal(dd_syslog_open(l->path, 16, DD_SYSLOG_RFC3164, err, sizeof(err)), 0);
	assert_true(dd_syslog_fd() >= 0);
	dd_warn("disk %s is full", "/x");
	assert_true(next_msg(l, msg, sizeof(msg)) > 0);
	/* local0.warning = 16 * 8 + 4 */
	assert_memory_equal(msg, "<132>", 5);
	snprintf(want, sizeof(want), " diode-test[%ld]: disk /x is full", (long)getpid());
	assert_non_null(strstr(msg, want));
	assert_int_equal(strlen(strstr(msg, want)), strlen(want)); /* no trailing newline */
	dd_debug("not at this level");
	assert_true(next_msg(l, msg, sizeof(msg)) < 0);

	dd_audit_begin(&ev, "file_delivered");
	dd_audit_str(&ev, "path", "a/b \"c\".txt");
	dd_audit_u64(&ev, "size", 42);
	dd_audit_commit(&ev);
	assert_true(next_msg(l, msg, sizeof(msg)) > 0);
	assert_memory_equal(msg, "<133>", 5); /* local0.notice */
	assert_non_null(strstr(msg, "]: {\"ts\":\""));
	assert_non_null(strstr(msg, "\"event\":\"file_delivered\",\"path\":\"a/b \\\"c\\\".txt\","
				    "\"size\":42}"));
	dd_audit_begin(&ev, "file_failed");
	dd_audit_commit(&ev);
	assert_true(next_msg(l, msg, sizeof(msg)) > 0);
	assert_memory_equal(msg, "<132>", 5); /* a failure: warning */
	assert_int_equal(dd_syslog_sent(), 3);
	assert_int_equal(dd_syslog_dropped(), 0);
}

static void
test_syslog_rfc5424_structured_data(void **state)
{
	struct listener *l = *state;
	struct dd_audit_event ev;
	char err[256], msg[20000], want[128];

	dd_log_init("diode-rx", DD_LOG_INFO);
	assert_int_equal(dd_syslog_open(l->path, 3, DD_SYSLOG_RFC5424, err, sizeof(err)), 0);
	dd_audit_begin(&ev, "file_delivered");
	dd_audit_str(&ev, "path", "x]\"\\\ny");
	dd_audit_u64(&ev, "size", 7);
	dd_audit_commit(&ev);
	assert_true(next_msg(l, msg, sizeof(msg)) > 0);
	/* daemon.notice = 3 * 8 + 5; version 1; time stamp in UTC */
	assert_memory_equal(msg, "<29>1 20", 8);
	assert_non_null(strchr(msg, 'Z'));
	snprintf(want, sizeof(want), " diode-rx %ld file_delivered [diode@32473 path=\"x\\]\\\"\\\\?y\" "
		 "size=\"7\"] {\"ts\":", (long)getpid());
	assert_non_null(strstr(msg, want));
	dd_info("plain line");
	assert_true(next_msg(l, msg, sizeof(msg)) > 0);
	assert_memory_equal(msg, "<30>1 ", 6); /* daemon.info */
	snprintf(want, sizeof(want), " diode-rx %ld - - plain line", (long)getpid());
	assert_non_null(strstr(msg, want));
}

static void
test_syslog_never_blocks_drops_and_reconnects(void **state)
{
	struct listener *l = *state;
	char err[256], msg[20000];
	uint64_t sent;
	int got = 0, saved, devnull;

	dd_log_init("diode-test", DD_LOG_INFO);
	assert_int_equal(dd_syslog_open(l->path, 3, DD_SYSLOG_RFC3164, err, sizeof(err)), 0);
	/* Nobody reads: the queue fills, the rest is dropped without blocking
	 * (stderr, which gets every line too, is silenced meanwhile). */
	saved = dup(STDERR_FILENO);
	devnull = open("/dev/null", O_WRONLY);
	assert_true(saved >= 0 && devnull >= 0);
	dup2(devnull, STDERR_FILENO);
	for (int i = 0; i < 3000; i++)
		dd_info("message %d", i);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(devnull);
	assert_true(dd_syslog_dropped() > 0);
	assert_int_equal(dd_syslog_sent() + dd_syslog_dropped(), 3000);
	while (next_msg(l, msg, sizeof(msg)) > 0)
		got++;
	assert_int_equal((uint64_t)got, dd_syslog_sent());
	/* The next message that goes through says how many were dropped. */
	dd_info("after");
	assert_true(next_msg(l, msg, sizeof(msg)) > 0);
	assert_non_null(strstr(msg, ": after"));
	assert_true(next_msg(l, msg, sizeof(msg)) > 0);
	assert_non_null(strstr(msg, "messages were dropped"));

	/* The syslog daemon restarts: a new socket at the same path. */
	close(l->fd);
	assert_int_equal(listen_at(l), 0);
	sent = dd_syslog_sent();
	dd_info("reconnected");
	assert_true(dd_syslog_sent() > sent);
	got = 0;
	while (next_msg(l, msg, sizeof(msg)) > 0)
		got += strstr(msg, "reconnected") != NULL;
	assert_int_equal(got, 1);
}

static void
test_syslog_open_refuses_bad_paths_but_not_a_missing_daemon(void **state)
{
	char err[256];

	assert_int_equal(dd_syslog_open("relative", 3, DD_SYSLOG_RFC3164, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(dd_syslog_fd(), -1);
	assert_int_equal(dd_syslog_open("/tmp/no-such-syslog-socket-xyz", 3, DD_SYSLOG_RFC3164,
					err, sizeof(err)), 0);
	dd_info("goes nowhere");
	assert_true(dd_syslog_dropped() >= 1);
	dd_syslog_close();
	assert_int_equal(dd_syslog_fd(), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_exact_text_for_a_small_set),
		cmocka_unit_test(test_metrics_escapes_label_values_and_help),
		cmocka_unit_test(test_metrics_special_float_values),
		cmocka_unit_test(test_metrics_rejects_bad_names),
		cmocka_unit_test(test_metrics_reports_a_full_buffer),
		cmocka_unit_test(test_metrics_file_is_replaced_with_mode_0644),
		cmocka_unit_test(test_metrics_file_open_explains_bad_paths),
		cmocka_unit_test(test_syslog_facility_names),
		cmocka_unit_test_setup_teardown(test_syslog_rfc3164_log_line_and_audit_event,
						syslog_setup, syslog_teardown),
		cmocka_unit_test_setup_teardown(test_syslog_rfc5424_structured_data, syslog_setup,
						syslog_teardown),
		cmocka_unit_test_setup_teardown(test_syslog_never_blocks_drops_and_reconnects,
						syslog_setup, syslog_teardown),
		cmocka_unit_test(test_syslog_open_refuses_bad_paths_but_not_a_missing_daemon),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
