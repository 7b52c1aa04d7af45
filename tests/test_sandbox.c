/* Unit tests for common/sandbox.c: [process] settings, user switch, no_new_privs, Landlock,
 * seccomp. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "sandbox.h"

static const struct dd_config_key schema[] = {
	DD_SANDBOX_CONFIG_KEYS,
	{ NULL, NULL, 0, false, NULL, 0, 0, NULL, false },
};

/* Configurations parsed by settings(): the sandbox settings point into
 * them, so they are freed only when the group ends. */
static struct dd_config *held[64];
static size_t nheld;

static int
free_held(void **state)
{
	while (nheld > 0)
		dd_config_free(held[--nheld]);
	return 0;
}

/* Parse text as a configuration and read [process] from it (receiver role
 * unless settings_role says otherwise). */
static enum dd_sandbox_role settings_role = DD_SANDBOX_RX;

static int
settings(struct dd_sandbox *sb, const char *text, char *err, size_t errlen)
{
	struct dd_config *cfg = NULL;
	int rc = dd_config_parse(&cfg, "test.conf", text, strlen(text), schema, err, errlen);

	assert_int_equal(rc, 0);
	assert_true(nheld < sizeof(held) / sizeof(held[0]));
	held[nheld++] = cfg;
	return dd_sandbox_from_config(sb, cfg, settings_role, err, errlen);
}

/* Run fn in a child process (the sandbox cannot be undone) and return its
 * wait status. The child reports its verdict with its exit code. */
static int
in_child(int (*fn)(void *), void *arg)
{
	int status = 0;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static bool
is_root(void)
{
	return geteuid() == 0;
}

/* A line "Name:\tvalue" of an already open /proc/self/status, read now. */
static bool
status_has(int fd, const char *line)
{
	char buf[8192];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, line) != NULL;
}

/* ------------------------------------------------------------ settings */

static void
test_sandbox_config_defaults(void **state)
{
	struct dd_sandbox sb;
	char err[512];

	assert_int_equal(settings(&sb, "", err, sizeof(err)), 0);
	assert_null(sb.user);
	assert_null(sb.group);
	assert_false(sb.allow_root);
	assert_int_equal(sb.seccomp, DD_SECCOMP_YES);
	assert_int_equal(sb.npaths, 0);
}

static void
test_sandbox_config_reads_every_key(void **state)
{
	struct dd_sandbox sb;
	char err[512];

	assert_int_equal(settings(&sb,
				  "[process]\nuser = root\ngroup = root\nallow_root = yes\n"
				  "seccomp = log\n",
				  err, sizeof(err)),
			 0);
	assert_string_equal(sb.user, "root");
	assert_int_equal(sb.uid, 0);
	assert_int_equal(sb.gid, 0);
	assert_true(sb.allow_root);
	assert_int_equal(sb.seccomp, DD_SECCOMP_LOG);
	assert_int_equal(settings(&sb, "[process]\nseccomp = no\n", err, sizeof(err)), 0);
	assert_int_equal(sb.seccomp, DD_SECCOMP_NO);
}

static void
test_sandbox_config_rejects_unknown_user(void **state)
{
	struct dd_sandbox sb;
	char err[512];

	assert_int_equal(settings(&sb, "[process]\nuser = no-such-user-dd\n", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "test.conf:2: [process] user: no user 'no-such-user-dd'"));
	assert_non_null(strstr(err, "useradd"));
}

static void
test_sandbox_config_rejects_unknown_group(void **state)
{
	struct dd_sandbox sb;
	char err[512];

	assert_int_equal(settings(&sb, "[process]\nuser = root\ngroup = no-such-group-dd\n", err,
				  sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "test.conf:3: [process] group: no group 'no-such-group-dd'"));
}

static void
test_sandbox_config_rejects_group_without_user(void **state)
{
	struct dd_sandbox sb;
	char err[512];

	assert_int_equal(settings(&sb, "[process]\ngroup = root\n", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "needs [process] user"));
}

static void
test_sandbox_config_rejects_bad_seccomp_value(void **state)
{
	struct dd_config *cfg = NULL;
	char err[512];
	const char *text = "[process]\nseccomp = maybe\n";

	assert_int_equal(
		dd_config_parse(&cfg, "test.conf", text, strlen(text), schema, err, sizeof(err)),
		-EINVAL);
	assert_non_null(strstr(err, "test.conf:2"));
}

/* ---------------------------------------------------------- allow-list */

static bool
listed(enum dd_sandbox_role role, const char *name)
{
	const char *names[256];
	size_t n = dd_sandbox_syscalls(role, names, 256);

	assert_true(n <= 256);
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static void
test_sandbox_allowlist_names_resolve(void **state)
{
	const char *names[256];

	for (int role = DD_SANDBOX_TX; role <= DD_SANDBOX_RX; role++) {
		size_t n = dd_sandbox_syscalls((enum dd_sandbox_role)role, names, 256);

		assert_true(n > 20 && n <= 256);
		for (size_t i = 0; i < n; i++) {
			if (seccomp_syscall_resolve_name(names[i]) == __NR_SCMP_ERROR)
				fail_msg("'%s' is not a system call on this architecture",
					 names[i]);
			for (size_t j = 0; j < i; j++)
				if (strcmp(names[i], names[j]) == 0)
					fail_msg("'%s' is listed twice", names[i]);
		}
	}
}

static void
test_sandbox_allowlist_excludes_dangerous_calls(void **state)
{
	static const char *const never[] = {
		"execve",
		"execveat",
		"fork",
		"vfork",
		"socket",
		"socketpair",
		"connect",
		"bind",
		"listen",
		"accept",
		"accept4",
		"setuid",
		"setgid",
		"setresuid",
		"setgroups",
		"mount",
		"umount2",
		"pivot_root",
		"chroot",
		"unshare",
		"setns",
		"init_module",
		"finit_module",
		"kexec_load",
		"bpf",
		"keyctl",
		"add_key",
		"personality",
		"process_vm_writev",
		"symlinkat",
		"linkat",
		"chown",
		"fchown",
		"fchownat",
		"open_by_handle_at",
		"userfaultfd",
		"perf_event_open",
		"io_uring_setup",
		"landlock_restrict_self",
		"seccomp",
		"sendto",
		"recvfrom",
	};

	for (int role = DD_SANDBOX_TX; role <= DD_SANDBOX_RX; role++)
		for (size_t j = 0; j < sizeof(never) / sizeof(never[0]); j++)
			if (listed((enum dd_sandbox_role)role, never[j]))
				fail_msg("'%s' must not be allowed (role %d)", never[j], role);
}

/* One way each: the receiver cannot send, the sender cannot receive. */
static void
test_sandbox_allowlist_is_one_way(void **state)
{
	assert_true(listed(DD_SANDBOX_RX, "recvmmsg"));
	assert_false(listed(DD_SANDBOX_RX, "sendmmsg"));
	assert_false(listed(DD_SANDBOX_RX, "sendmsg"));
	assert_true(listed(DD_SANDBOX_TX, "sendmmsg"));
	assert_false(listed(DD_SANDBOX_TX, "recvmmsg"));
	assert_false(listed(DD_SANDBOX_TX, "recvmsg"));
	assert_false(listed(DD_SANDBOX_RX, "inotify_add_watch"));
}

/* --------------------------------------------------------------- apply */

static int
child_apply_expect(void *arg)
{
	const struct dd_sandbox *sb = arg;
	char err[1024];
	int rc = dd_sandbox_apply(sb, err, sizeof(err));

	if (rc == -EPERM && strstr(err, "[process] allow_root = yes") != NULL &&
	    strstr(err, "[process] user") != NULL)
		return 0;
	return 1;
}

static void
test_sandbox_refuses_root_without_user(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	if (!is_root())
		skip();
	assert_int_equal(settings(&sb, "", err, sizeof(err)), 0);
	status = in_child(child_apply_expect, &sb);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int
child_too_many(void *arg)
{
	const struct dd_sandbox *sb = arg;
	char err[1024];

	return dd_sandbox_apply(sb, err, sizeof(err)) == -ENOSPC && strstr(err, "more than") ? 0 :
											       1;
}

static void
test_sandbox_refuses_too_many_paths(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	assert_int_equal(settings(&sb, "[process]\nallow_root = yes\n", err, sizeof(err)), 0);
	for (int i = 0; i <= DD_SANDBOX_PATHS_MAX; i++)
		dd_sandbox_allow(&sb, "/tmp", true);
	status = in_child(child_too_many, &sb);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* After apply: NoNewPrivs and an active filter in /proc/self/status (opened
 * before, since /proc is outside the allowed paths), and a forbidden system
 * call kills the process with SIGSYS. */
static int
child_forbidden_call(void *arg)
{
	const struct dd_sandbox *sb = arg;
	char err[1024];
	int status_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (status_fd < 0 || dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 2;
	if (!status_has(status_fd, "NoNewPrivs:\t1\n"))
		return 3;
	if (!status_has(status_fd,
			sb->seccomp == DD_SECCOMP_NO ? "Seccomp:\t0\n" : "Seccomp:\t2\n"))
		return 4;
	/* Not on the list: socket(2). */
	if (syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0) < 0 && sb->seccomp != DD_SECCOMP_NO)
		return 5;
	return 0;
}

static void
test_sandbox_seccomp_kills_a_forbidden_call(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	assert_int_equal(settings(&sb, "[process]\nallow_root = yes\n", err, sizeof(err)), 0);
	status = in_child(child_forbidden_call, &sb);
	if (WIFEXITED(status))
		fail_msg("the child was not killed: exit code %d", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void
test_sandbox_seccomp_log_mode_does_not_kill(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	assert_int_equal(
		settings(&sb, "[process]\nallow_root = yes\nseccomp = log\n", err, sizeof(err)), 0);
	status = in_child(child_forbidden_call, &sb);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_sandbox_seccomp_no_installs_no_filter(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	assert_int_equal(
		settings(&sb, "[process]\nallow_root = yes\nseccomp = no\n", err, sizeof(err)), 0);
	status = in_child(child_forbidden_call, &sb);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A sandboxed receiver holding an (unconnected) UDP socket cannot send: write
 * fails for want of a destination, sendto kills it. */
static int
child_rx_send(void *arg)
{
	const struct dd_sandbox *sb = arg;
	struct sockaddr_in to = { .sin_family = AF_INET,
				  .sin_port = htons(9),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char err[1024];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 2;
	if (write(fd, "x", 1) >= 0 || errno != EDESTADDRREQ)
		return 3;
	(void)sendto(fd, "x", 1, 0, (const struct sockaddr *)&to, sizeof(to));
	return 0;
}

static void
test_sandbox_rx_cannot_send(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	assert_int_equal(settings(&sb, "[process]\nallow_root = yes\n", err, sizeof(err)), 0);
	status = in_child(child_rx_send, &sb);
	if (WIFEXITED(status))
		fail_msg("the receiver was not killed: exit code %d", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* A sandboxed sender cannot receive on its socket. */
static int
child_tx_receive(void *arg)
{
	const struct dd_sandbox *sb = arg;
	struct mmsghdr m;
	char err[1024];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 2;
	memset(&m, 0, sizeof(m));
	(void)recvmmsg(fd, &m, 1, 0, NULL);
	return 0;
}

static void
test_sandbox_tx_cannot_receive(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	settings_role = DD_SANDBOX_TX;
	assert_int_equal(settings(&sb, "[process]\nallow_root = yes\n", err, sizeof(err)), 0);
	settings_role = DD_SANDBOX_RX;
	status = in_child(child_tx_receive, &sb);
	if (WIFEXITED(status))
		fail_msg("the sender was not killed: exit code %d", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* A UDP socket bound to a free loopback port; its port in *port. */
static int
udp_on_loopback(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static int
connect_to(int fd, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	return connect(fd, (struct sockaddr *)&a, sizeof(a));
}

/* diode-rx with a UDP sink: sending on the sink's socket works, writing to
 * the link socket (even connected) kills. */
static int
child_rx_link_guard(void *arg)
{
	struct dd_sandbox *sb = arg;
	char err[1024];
	uint16_t pa, pb;
	int a = udp_on_loopback(&pa), b = udp_on_loopback(&pb), link, sink;

	link = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	sink = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (a < 0 || b < 0 || link < 0 || sink < 0 || connect_to(link, pa) < 0 ||
	    connect_to(sink, pb) < 0)
		return 2;
	dd_sandbox_link_socket(sb, link);
	dd_sandbox_allow_net(sb, DD_SANDBOX_NET_SEND);
	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 3;
	if (send(sink, "sink", 4, 0) != 4 || write(sink, "sink", 4) != 4)
		return 4;
	if (write(link, "link", 4) < 0)
		return 5;
	return 0;
}

static void
test_sandbox_rx_link_socket_is_never_written(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	assert_int_equal(settings(&sb, "[process]\nallow_root = yes\n", err, sizeof(err)), 0);
	status = in_child(child_rx_link_guard, &sb);
	if (WIFEXITED(status))
		fail_msg("not killed: exit code %d", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* diode-rx listening on two addresses: a socket opened between the two link
 * sockets can still send; writing to the second link socket kills. */
static int
child_rx_two_links_guard(void *arg)
{
	struct dd_sandbox *sb = arg;
	char err[1024];
	uint16_t pa;
	int a = udp_on_loopback(&pa), link1, sink, link2;

	link1 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	sink = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	link2 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (a < 0 || link1 < 0 || sink < 0 || link2 < 0 || connect_to(link1, pa) < 0 ||
	    connect_to(sink, pa) < 0 || connect_to(link2, pa) < 0)
		return 2;
	dd_sandbox_link_socket(sb, link1);
	dd_sandbox_link_socket(sb, link2);
	dd_sandbox_allow_net(sb, DD_SANDBOX_NET_SEND);
	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 3;
	if (send(sink, "sink", 4, 0) != 4 || write(sink, "sink", 4) != 4)
		return 4;
	if (write(link2, "link", 4) < 0)
		return 5;
	return 0;
}

static void
test_sandbox_rx_every_link_socket_is_never_written(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	assert_int_equal(settings(&sb, "[process]\nallow_root = yes\n", err, sizeof(err)), 0);
	status = in_child(child_rx_two_links_guard, &sb);
	if (WIFEXITED(status))
		fail_msg("not killed: exit code %d", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* diode-tx with stream channels: receiving on a channel's socket works,
 * reading the link socket kills. */
static int
child_tx_link_guard(void *arg)
{
	struct dd_sandbox *sb = arg;
	struct mmsghdr m;
	struct iovec iov;
	char err[1024], buf[16];
	uint16_t plink, pchan;
	int link = udp_on_loopback(&plink), chan = udp_on_loopback(&pchan);
	int out = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (link < 0 || chan < 0 || out < 0 || connect_to(out, pchan) < 0 ||
	    send(out, "rec", 3, 0) != 3 || connect_to(out, plink) < 0 ||
	    send(out, "bad", 3, 0) != 3)
		return 2;
	dd_sandbox_link_socket(sb, link);
	dd_sandbox_allow_net(sb, DD_SANDBOX_NET_RECV);
	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 3;
	memset(&m, 0, sizeof(m));
	iov.iov_base = buf;
	iov.iov_len = sizeof(buf);
	m.msg_hdr.msg_iov = &iov;
	m.msg_hdr.msg_iovlen = 1;
	if (recvmmsg(chan, &m, 1, MSG_DONTWAIT, NULL) != 1 || m.msg_len != 3)
		return 4;
	if (read(link, buf, sizeof(buf)) < 0)
		return 5;
	return 0;
}

static void
test_sandbox_tx_link_socket_is_never_read(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	settings_role = DD_SANDBOX_TX;
	assert_int_equal(settings(&sb, "[process]\nallow_root = yes\n", err, sizeof(err)), 0);
	settings_role = DD_SANDBOX_RX;
	status = in_child(child_tx_link_guard, &sb);
	if (WIFEXITED(status))
		fail_msg("not killed: exit code %d", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* Stream channels on the sender: connections queued on a listening socket
 * are accepted and read after the sandbox. */
static int
child_accept(void *arg)
{
	struct dd_sandbox *sb = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	char err[1024], buf[16];
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c, fd;

	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0 ||
	    connect_to(c, ntohs(a.sin_port)) < 0 || write(c, "line\n", 5) != 5)
		return 2;
	dd_sandbox_allow_net(sb, DD_SANDBOX_NET_ACCEPT);
	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0)
		return 3;
	fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf)) != 5 || shutdown(fd, SHUT_RDWR) != 0)
		return 4;
	return 0;
}

static void
test_sandbox_accept_when_allowed(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	settings_role = DD_SANDBOX_TX;
	assert_int_equal(settings(&sb, "[process]\nallow_root = yes\n", err, sizeof(err)), 0);
	settings_role = DD_SANDBOX_RX;
	status = in_child(child_accept, &sb);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* TCP sinks on the receiver: connect to the allowed port only (Landlock
 * ABI 4), and only TCP sockets can be created (a UDP one kills). */
struct tcp_case {
	struct dd_sandbox sb;
	uint16_t allowed_port, other_port;
};

static int
child_tcp_connect(void *arg)
{
	struct tcp_case *c = arg;
	char err[1024];
	int fd;

	dd_sandbox_allow_tcp_connect(&c->sb, c->allowed_port);
	if (dd_sandbox_apply(&c->sb, err, sizeof(err)) != 0)
		return 2;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect_to(fd, c->allowed_port) != 0)
		return 3;
	close(fd);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect_to(fd, c->other_port) == 0 || errno != EACCES)
		return 4;
	close(fd);
	(void)socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	return 0;
}

static int
tcp_listener(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static void
test_sandbox_tcp_connect_only_to_allowed_ports(void **state)
{
	static struct tcp_case c;
	char err[512];
	int status, l1, l2;

	if (dd_sandbox_landlock_abi() < 4)
		skip();
	l1 = tcp_listener(&c.allowed_port);
	l2 = tcp_listener(&c.other_port);
	assert_int_equal(settings(&c.sb, "[process]\nallow_root = yes\n", err, sizeof(err)), 0);
	status = in_child(child_tcp_connect, &c);
	close(l1);
	close(l2);
	if (WIFEXITED(status))
		fail_msg("not killed by the UDP socket: exit code %d", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* Landlock: inside an allowed directory files can be made, written, renamed
 * and removed; outside nothing can be read or made; no symlinks, no exec. */
struct landlock_case {
	struct dd_sandbox sb;
	char dir[64];
	char ro[64];
};

static int
child_landlock(void *arg)
{
	struct landlock_case *c = arg;
	char err[1024], path[128], path2[128];
	int fd;

	if (dd_sandbox_apply(&c->sb, err, sizeof(err)) != 0)
		return 2;
	snprintf(path, sizeof(path), "%s/new", c->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1 || close(fd) != 0)
		return 3;
	snprintf(path2, sizeof(path2), "%s/sub", c->dir);
	if (mkdir(path2, 0700) != 0)
		return 4;
	snprintf(path2, sizeof(path2), "%s/sub/moved", c->dir);
	if (rename(path, path2) != 0 || unlink(path2) != 0)
		return 5;
	snprintf(path2, sizeof(path2), "%s/link", c->dir);
	if (symlinkat("/etc/passwd", AT_FDCWD, path2) == 0 || errno != EACCES)
		return 6;
	if (open("/etc/passwd", O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES)
		return 7;
	snprintf(path2, sizeof(path2), "%s/escape", c->ro);
	if (open(path2, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) >= 0 || errno != EACCES)
		return 8;
	snprintf(path2, sizeof(path2), "%s/readable", c->ro);
	fd = open(path2, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 9;
	close(fd);
	return 0;
}

static void
test_sandbox_landlock_confines_the_file_system(void **state)
{
	static struct landlock_case lc;
	struct landlock_case *c = &lc;
	char err[512], path[128];
	int status, fd;

	if (dd_sandbox_landlock_abi() <= 0)
		skip();
	strcpy(c->dir, "/tmp/test_sandbox.XXXXXX");
	strcpy(c->ro, "/tmp/test_sandbox_ro.XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	assert_non_null(mkdtemp(c->ro));
	snprintf(path, sizeof(path), "%s/readable", c->ro);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(
		settings(&c->sb, "[process]\nallow_root = yes\nseccomp = no\n", err, sizeof(err)),
		0);
	dd_sandbox_allow(&c->sb, c->dir, true);
	dd_sandbox_allow(&c->sb, c->ro, false);
	status = in_child(child_landlock, c);
	unlink(path);
	rmdir(c->ro);
	snprintf(path, sizeof(path), "%s/sub", c->dir);
	rmdir(path);
	rmdir(c->dir);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("Landlock check failed at step %d",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* As root with a user configured: the process ends up as that user, without
 * a way back to root. */
static int
child_switch(void *arg)
{
	const struct dd_sandbox *sb = arg;
	char err[1024];
	uid_t r, e, s;

	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (getresuid(&r, &e, &s) != 0 || r != sb->uid || e != sb->uid || s != sb->uid)
		return 3;
	if (getgid() != sb->gid || getegid() != sb->gid)
		return 4;
	if (setuid(0) == 0 || errno != EPERM)
		return 5;
	if (getgroups(0, NULL) != 1)
		return 6;
	return 0;
}

static void
test_sandbox_switches_to_the_configured_user(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	if (!is_root() || getpwnam("nobody") == NULL)
		skip();
	/* seccomp = no so that setuid(0) can be tried (the filter would kill). */
	assert_int_equal(
		settings(&sb, "[process]\nuser = nobody\nseccomp = no\n", err, sizeof(err)), 0);
	assert_int_not_equal(sb.uid, 0);
	status = in_child(child_switch, &sb);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int
child_unwritable(void *arg)
{
	const struct dd_sandbox *sb = arg;
	char err[1024];
	int rc = dd_sandbox_apply(sb, err, sizeof(err));

	return rc == -EACCES && strstr(err, "not writable by uid") != NULL &&
			       strstr(err, "chown") != NULL ?
		       0 :
		       1;
}

static void
test_sandbox_refuses_a_directory_the_user_cannot_write(void **state)
{
	struct dd_sandbox sb;
	char err[512], dir[64];
	int status;

	if (!is_root() || getpwnam("nobody") == NULL)
		skip();
	strcpy(dir, "/tmp/test_sandbox_root.XXXXXX"); /* 0700, owned by root */
	assert_non_null(mkdtemp(dir));
	assert_int_equal(settings(&sb, "[process]\nuser = nobody\n", err, sizeof(err)), 0);
	dd_sandbox_allow(&sb, dir, true);
	status = in_child(child_unwritable, &sb);
	rmdir(dir);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int
child_refuse_switch(void *arg)
{
	const struct dd_sandbox *sb = arg;
	char err[1024];

	/* Become someone else first: a non-root process cannot switch users. */
	if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
		return 2;
	return dd_sandbox_apply(sb, err, sizeof(err)) == -EPERM &&
			       strstr(err, "cannot switch to uid 0") != NULL ?
		       0 :
		       1;
}

static void
test_sandbox_non_root_cannot_switch_user(void **state)
{
	struct dd_sandbox sb;
	char err[512];
	int status;

	if (!is_root())
		skip();
	assert_int_equal(settings(&sb, "[process]\nuser = root\n", err, sizeof(err)), 0);
	status = in_child(child_refuse_switch, &sb);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sandbox_config_defaults),
		cmocka_unit_test(test_sandbox_config_reads_every_key),
		cmocka_unit_test(test_sandbox_config_rejects_unknown_user),
		cmocka_unit_test(test_sandbox_config_rejects_unknown_group),
		cmocka_unit_test(test_sandbox_config_rejects_group_without_user),
		cmocka_unit_test(test_sandbox_config_rejects_bad_seccomp_value),
		cmocka_unit_test(test_sandbox_allowlist_names_resolve),
		cmocka_unit_test(test_sandbox_allowlist_excludes_dangerous_calls),
		cmocka_unit_test(test_sandbox_allowlist_is_one_way),
		cmocka_unit_test(test_sandbox_refuses_root_without_user),
		cmocka_unit_test(test_sandbox_refuses_too_many_paths),
		cmocka_unit_test(test_sandbox_seccomp_kills_a_forbidden_call),
		cmocka_unit_test(test_sandbox_seccomp_log_mode_does_not_kill),
		cmocka_unit_test(test_sandbox_seccomp_no_installs_no_filter),
		cmocka_unit_test(test_sandbox_rx_cannot_send),
		cmocka_unit_test(test_sandbox_tx_cannot_receive),
		cmocka_unit_test(test_sandbox_rx_link_socket_is_never_written),
		cmocka_unit_test(test_sandbox_rx_every_link_socket_is_never_written),
		cmocka_unit_test(test_sandbox_tx_link_socket_is_never_read),
		cmocka_unit_test(test_sandbox_accept_when_allowed),
		cmocka_unit_test(test_sandbox_tcp_connect_only_to_allowed_ports),
		cmocka_unit_test(test_sandbox_landlock_confines_the_file_system),
		cmocka_unit_test(test_sandbox_switches_to_the_configured_user),
		cmocka_unit_test(test_sandbox_refuses_a_directory_the_user_cannot_write),
		cmocka_unit_test(test_sandbox_non_root_cannot_switch_user),
	};

	dd_log_init("test_sandbox", DD_LOG_WARNING);
	return cmocka_run_group_tests(tests, NULL, free_held);
}
