/* Least privilege: user switch, no new privileges, Landlock rules, seccomp allow-list. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "digest.h"
#include "log.h"
#include "sandbox.h"

/* Sanitizer runtimes need a little more at run time and at exit (the leak
 * checker reads /proc/self/maps and stops the process with ptrace). */
#if defined(__SANITIZE_ADDRESS__)
#define DD_SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DD_SANITIZER_BUILD 1
#endif
#endif

/* ---- Landlock, declared here so that older kernel headers do not matter ---- */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1

#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REMOVE_DIR (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_CHAR (1ULL << 6)
#define LL_FS_MAKE_DIR (1ULL << 7)
#define LL_FS_MAKE_REG (1ULL << 8)
#define LL_FS_MAKE_SOCK (1ULL << 9)
#define LL_FS_MAKE_FIFO (1ULL << 10)
#define LL_FS_MAKE_BLOCK (1ULL << 11)
#define LL_FS_MAKE_SYM (1ULL << 12)
#define LL_FS_REFER (1ULL << 13)     /* ABI 2 */
#define LL_FS_TRUNCATE (1ULL << 14)  /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ULL << 15) /* ABI 5 */
#define LL_NET_BIND_TCP (1ULL << 0)  /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_RULE_NET_PORT 2
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

struct ll_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};

#define LL_READ (LL_FS_READ_FILE | LL_FS_READ_DIR)
#define LL_WRITE                                                                                   \
	(LL_READ | LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_DIR |      \
	 LL_FS_MAKE_REG | LL_FS_REFER | LL_FS_TRUNCATE)
/* A directory holding a log file that is appended to and recreated after rotation. */
#define LL_APPEND (LL_FS_WRITE_FILE | LL_FS_MAKE_REG)

/*
 * System calls of the daemons after start-up: the libuv loop (epoll, signals
 * through a self-pipe), UDP batches, file and directory work relative to
 * descriptors opened before, memory management (malloc, libsodium's guarded
 * allocations), clocks, and the exit path. Found by running the integration
 * tests with the daemons under strace and with seccomp = log (see
 * docs/SECURITY.md), then reviewed one by one. The receiver gets no call that
 * sends (its socket is not connected, so write(2) on it fails too), the sender
 * none that receives. Not in either list, among others: execve, fork/clone,
 * socket/connect/bind, ptrace, mount, setuid, prctl, ioctl beyond
 * FIONBIO/FIOCLEX, kill of another process, new executable memory.
 */
#define TX (1U << DD_SANDBOX_TX)
#define RX (1U << DD_SANDBOX_RX)
#define BOTH (TX | RX)

/* needs: 0 for every daemon of the roles, else only when one of these
 * DD_SANDBOX_NET_* was allowed (stream channels and sinks). */
static const struct {
	const char *name;
	unsigned roles;
	unsigned needs;
} allowed[] = {
	/* event loop and signals */
	{ "epoll_wait", BOTH, 0 },
	{ "epoll_pwait", BOTH, 0 },
	{ "epoll_ctl", BOTH, 0 },
	{ "rt_sigaction", BOTH, 0 },
	{ "rt_sigprocmask", BOTH, 0 },
	{ "rt_sigreturn", BOTH, 0 },
	{ "restart_syscall", BOTH, 0 },
	/* descriptors opened before */
	{ "read", BOTH, 0 },
	{ "write", BOTH, 0 },
	{ "writev", BOTH, 0 },
	{ "pread64", BOTH, 0 },
	{ "pwrite64", BOTH, 0 },
	{ "preadv", BOTH, 0 },
	{ "pwritev", BOTH, 0 },
	{ "close", BOTH, 0 },
	{ "fcntl", BOTH, 0 },
	{ "dup", BOTH, 0 },
	{ "lseek", BOTH, 0 },
	/* UDP on the socket opened before: one way each */
	{ "sendmmsg", TX, 0 },
	{ "sendmsg", TX, 0 },
	{ "recvmmsg", RX, 0 },
	{ "recvmsg", RX, 0 },
	{ "getsockopt", BOTH, 0 },
	/* files and directories, relative to descriptors opened before */
	{ "openat", BOTH, 0 },
	{ "newfstatat", BOTH, 0 },
	{ "fstat", BOTH, 0 },
	{ "getdents64", BOTH, 0 },
	{ "fsync", BOTH, 0 },
	{ "fdatasync", BOTH, 0 },
	{ "sync_file_range", RX, 0 },   /* start writeback of staging data (rx/partial.c) */
	{ "ftruncate", BOTH, 0 },
	{ "fallocate", BOTH, 0 },
	{ "fadvise64", BOTH, 0 },
	{ "renameat", BOTH, 0 },
	{ "renameat2", BOTH, 0 },
	{ "unlinkat", BOTH, 0 },
	{ "mkdirat", BOTH, 0 },
	{ "fchmod", BOTH, 0 },
	{ "utimensat", BOTH, 0 },
	{ "copy_file_range", BOTH, 0 },
	{ "fstatfs", BOTH, 0 },
	/* the outbox watcher */
	{ "inotify_add_watch", TX, 0 },
	{ "inotify_rm_watch", TX, 0 },
	/* memory: malloc, libsodium's guarded pages */
	{ "brk", BOTH, 0 },
	{ "mmap", BOTH, 0 },
	{ "munmap", BOTH, 0 },
	{ "mremap", BOTH, 0 },
	{ "mprotect", BOTH, 0 },
	{ "madvise", BOTH, 0 },
	{ "mlock", BOTH, 0 },
	{ "munlock", BOTH, 0 },
	/* clocks (when the vDSO cannot answer), randomness for new key epochs, locks */
	{ "clock_gettime", BOTH, 0 },
	{ "gettimeofday", BOTH, 0 },
	{ "getrandom", BOTH, 0 },
	{ "timerfd_settime", TX, 0 },   /* fine pacing waits (tx/sender.c) */
	{ "futex", BOTH, 0 },
	{ "getpid", BOTH, 0 },
	/* ending: exit, abort() and fatal signals to ourselves only */
	{ "exit", BOTH, 0 },
	{ "exit_group", BOTH, 0 },
	{ "tgkill", BOTH, 0 },
	{ "kill", BOTH, 0 },
	/* ioctl, restricted to FIONBIO and FIOCLEX (libuv) */
	{ "ioctl", BOTH, 0 },
	/* local stream sockets, only when asked for; never on the link socket */
	{ "accept4", BOTH, DD_SANDBOX_NET_ACCEPT },
	{ "recvmmsg", TX, DD_SANDBOX_NET_RECV },
	{ "recvmsg", TX, DD_SANDBOX_NET_RECV },
	{ "recvfrom", BOTH, DD_SANDBOX_NET_RECV },
	{ "sendmmsg", RX, DD_SANDBOX_NET_SEND },
	{ "sendmsg", RX, DD_SANDBOX_NET_SEND },
	{ "sendto", BOTH, DD_SANDBOX_NET_SEND },
	{ "socket", BOTH, DD_SANDBOX_NET_TCP_CONNECT },
	{ "connect", BOTH, DD_SANDBOX_NET_TCP_CONNECT },
	/* libmosquitto (mqtt:// inputs and sinks) makes an AF_UNIX socket pair
	 * (its wake-up pipe) at each connection attempt; AF_UNIX only */
	{ "socketpair", BOTH, DD_SANDBOX_NET_TCP_CONNECT },
	{ "setsockopt", BOTH, DD_SANDBOX_NET_TCP_CONNECT | DD_SANDBOX_NET_ACCEPT },
	{ "shutdown", BOTH, DD_SANDBOX_NET_TCP_CONNECT | DD_SANDBOX_NET_ACCEPT },
	/* threads started after the sandbox ([link] workers: diode-tx's sealing
	 * threads, diode-rx's disk thread) */
#ifndef DD_SANITIZER_BUILD
	{ "clone", BOTH, DD_SANDBOX_THREADS },  /* with CLONE_THREAD only, see seccomp_apply */
	/* libuv's loop thread yields while another thread's uv_async_send is
	 * half done (diode-rx's disk thread wakes the loop that way) */
	{ "sched_yield", BOTH, DD_SANDBOX_THREADS },
#endif
	{ "clone3", BOTH, DD_SANDBOX_THREADS }, /* ENOSYS: its flags cannot be checked */
	{ "set_robust_list", BOTH, DD_SANDBOX_THREADS },
	{ "rseq", BOTH, DD_SANDBOX_THREADS },
#ifdef DD_SANITIZER_BUILD
	/* the sanitizer runtime: leak check at exit (ptrace from a helper
	 * task), reports, and its own memory and file handling */
	{ "clone", BOTH, 0 },
	{ "ptrace", BOTH, 0 },
	{ "wait4", BOTH, 0 },
	{ "prctl", BOTH, 0 },
	{ "getppid", BOTH, 0 },
	{ "sched_getaffinity", BOTH, 0 },
	{ "readlink", BOTH, 0 },
	{ "open", BOTH, 0 },
	{ "stat", BOTH, 0 },
	{ "lstat", BOTH, 0 },
	{ "access", BOTH, 0 },
	{ "getrlimit", BOTH, 0 },
	{ "prlimit64", BOTH, 0 },
	{ "setrlimit", BOTH, 0 },
	{ "uname", BOTH, 0 },
	{ "pipe", BOTH, 0 },
	{ "getuid", BOTH, 0 },
	{ "geteuid", BOTH, 0 },
	{ "sigaltstack", BOTH, 0 },
	{ "gettid", BOTH, 0 },
	{ "sched_yield", BOTH, 0 },
	{ "getdents", BOTH, 0 },
#endif
};

#define NALLOWED (sizeof(allowed) / sizeof(allowed[0]))

#ifdef DD_SANITIZER_BUILD
static const bool sanitizer_build = true; /* clone stays unrestricted (LSan helper) */
#else
static const bool sanitizer_build = false;
#endif

/* Calls that would move data the wrong way on the link socket: allowed only on
 * other descriptors once the link socket is known. */
static const char *const rx_guarded[] = { "write",   "writev", "sendmmsg",
					  "sendmsg", "sendto", "connect" };
static const char *const tx_guarded[] = { "read", "recvmmsg", "recvmsg", "recvfrom", "connect" };

static bool
entry_applies(size_t i, enum dd_sandbox_role role, unsigned net)
{
	return (allowed[i].roles & (1U << role)) &&
	       (allowed[i].needs == 0 || (allowed[i].needs & net) != 0);
}

static bool
guarded(enum dd_sandbox_role role, const char *name)
{
	const char *const *g = role == DD_SANDBOX_RX ? rx_guarded : tx_guarded;
	size_t n = role == DD_SANDBOX_RX ? sizeof(rx_guarded) / sizeof(rx_guarded[0]) :
					   sizeof(tx_guarded) / sizeof(tx_guarded[0]);

	for (size_t i = 0; i < n; i++)
		if (strcmp(g[i], name) == 0)
			return true;
	return false;
}

static size_t
count_allowed(enum dd_sandbox_role role, unsigned net)
{
	size_t n = 0;

	for (size_t i = 0; i < NALLOWED; i++)
		n += entry_applies(i, role, net);
	return n;
}

static int landlock_abi_cached = 0;

int
dd_sandbox_landlock_abi(void)
{
	long abi;

	if (landlock_abi_cached != 0)
		return landlock_abi_cached;
	abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
	landlock_abi_cached = abi > 0 ? (int)abi : (errno != 0 ? -errno : -ENOSYS);
	return landlock_abi_cached;
}

size_t
dd_sandbox_syscalls(enum dd_sandbox_role role, const char **names, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < NALLOWED; i++) {
		if (!entry_applies(i, role, 0))
			continue;
		if (n < cap)
			names[n] = allowed[i].name;
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------- config */

int
dd_sandbox_from_config(struct dd_sandbox *sb, const struct dd_config *cfg,
		       enum dd_sandbox_role role, char *err, size_t errlen)
{
	const char *seccomp = dd_config_str(cfg, "process", "seccomp");
	struct passwd *pw;
	struct group *gr;

	memset(sb, 0, sizeof(*sb));
	sb->role = role;
	sb->link_fd = -1;
	sb->syslog_fd = -1;
	sb->uid = (uid_t)-1;
	sb->gid = (gid_t)-1;
	sb->allow_root = dd_config_bool(cfg, "process", "allow_root");
	if (seccomp == NULL || strcmp(seccomp, "yes") == 0)
		sb->seccomp = DD_SECCOMP_YES;
	else if (strcmp(seccomp, "log") == 0)
		sb->seccomp = DD_SECCOMP_LOG;
	else
		sb->seccomp = DD_SECCOMP_NO;
	if (dd_config_has(cfg, "process", "user")) {
		sb->user = dd_config_str(cfg, "process", "user");
		errno = 0;
		pw = getpwnam(sb->user);
		if (pw == NULL) {
			snprintf(
				err, errlen,
				"%s: [process] user: no user '%s'%s%s (create it, e.g. "
				"'useradd --system --no-create-home --shell /usr/sbin/nologin %s')",
				dd_config_where(cfg, "process", "user"), sb->user,
				errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "",
				sb->user);
			return -EINVAL;
		}
		sb->uid = pw->pw_uid;
		sb->gid = pw->pw_gid;
	}
	if (dd_config_has(cfg, "process", "group")) {
		sb->group = dd_config_str(cfg, "process", "group");
		if (sb->user == NULL) {
			snprintf(err, errlen, "%s: [process] group needs [process] user as well",
				 dd_config_where(cfg, "process", "group"));
			return -EINVAL;
		}
		errno = 0;
		gr = getgrnam(sb->group);
		if (gr == NULL) {
			snprintf(err, errlen, "%s: [process] group: no group '%s'%s%s",
				 dd_config_where(cfg, "process", "group"), sb->group,
				 errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
			return -EINVAL;
		}
		sb->gid = gr->gr_gid;
	}
	return 0;
}

void
dd_sandbox_allow(struct dd_sandbox *sb, const char *path, bool write)
{
	if (path == NULL)
		return;
	if (sb->npaths >= DD_SANDBOX_PATHS_MAX) {
		sb->too_many = true;
		return;
	}
	sb->paths[sb->npaths].path = path;
	sb->paths[sb->npaths].write = write;
	sb->npaths++;
}

void
dd_sandbox_link_socket(struct dd_sandbox *sb, int fd)
{
	if (fd < 0 || sb->nlinks >= DD_SANDBOX_LINKS_MAX) {
		sb->too_many = true;
		return;
	}
	if (sb->nlinks == 0)
		sb->link_fd = fd;
	sb->links[sb->nlinks++] = fd;
}

void
dd_sandbox_syslog_socket(struct dd_sandbox *sb, int fd)
{
	sb->syslog_fd = fd;
}

void
dd_sandbox_allow_net(struct dd_sandbox *sb, unsigned what)
{
	sb->net |= what & (DD_SANDBOX_NET_ACCEPT | DD_SANDBOX_NET_RECV | DD_SANDBOX_NET_SEND);
}

void
dd_sandbox_allow_threads(struct dd_sandbox *sb)
{
	sb->net |= DD_SANDBOX_THREADS;
}

void
dd_sandbox_allow_tcp_connect(struct dd_sandbox *sb, uint16_t port)
{
	sb->net |= DD_SANDBOX_NET_TCP_CONNECT;
	for (size_t i = 0; i < sb->nports; i++)
		if (sb->tcp_ports[i] == port)
			return;
	if (sb->nports >= DD_SANDBOX_PORTS_MAX) {
		sb->too_many = true;
		return;
	}
	sb->tcp_ports[sb->nports++] = port;
}

/* The directory of a file path ("." for a bare name) into buf; -ENAMETOOLONG. */
static int
parent_dir(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == NULL || slash == path ? 1 : (size_t)(slash - path);

	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, slash == NULL ? "." : path, n);
	buf[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------ privileges */

static int
drop_capabilities(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	return syscall(SYS_capset, &hdr, data) < 0 ? -errno : 0;
}

static int
switch_user(const struct dd_sandbox *sb, char *err, size_t errlen)
{
	uid_t euid = geteuid();

	if (sb->user == NULL) {
		if (euid == 0 && !sb->allow_root) {
			snprintf(err, errlen,
				 "refusing to run as root: set [process] user to an "
				 "unprivileged account that owns the spool and state directories "
				 "(e.g. "
				 "user = diode), or set [process] allow_root = yes to run as root "
				 "anyway");
			return -EPERM;
		}
		return euid == 0 ? drop_capabilities() : 0;
	}
	if (euid != 0) {
		if (euid == sb->uid && getegid() == sb->gid)
			return 0;
		snprintf(err, errlen,
			 "[process] user = %s: cannot switch to uid %u from uid %u "
			 "(not root); start the daemon as root or as %s",
			 sb->user, (unsigned)sb->uid, (unsigned)euid, sb->user);
		return -EPERM;
	}
	if (setgroups(1, &sb->gid) < 0 || setresgid(sb->gid, sb->gid, sb->gid) < 0 ||
	    setresuid(sb->uid, sb->uid, sb->uid) < 0) {
		snprintf(err, errlen, "[process] user = %s: cannot switch to uid %u gid %u: %s",
			 sb->user, (unsigned)sb->uid, (unsigned)sb->gid, strerror(errno));
		return -EPERM;
	}
	if (sb->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errlen,
			 "[process] user = %s: root privileges could be regained after "
			 "the switch; refusing to run",
			 sb->user);
		return -EPERM;
	}
	if (sb->uid == 0)
		return drop_capabilities();
#ifdef DD_SANITIZER_BUILD
	/* The leak checker stops the process with ptrace from a helper task,
	 * which a non-dumpable process refuses. Test builds only. */
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	return 0;
}

/* Every directory that will be written must be writable by the user now in
 * force (checked with access(), which honours ACLs), so that a wrong owner is
 * reported at start and not at the first delivery. */
static int
check_writable(const struct dd_sandbox *sb, char *err, size_t errlen)
{
	char dir[4096];
	struct stat st;

	for (size_t i = 0; i < sb->npaths; i++) {
		const char *p = sb->paths[i].path;

		if (!sb->paths[i].write)
			continue;
		if (stat(p, &st) == 0 && !S_ISDIR(st.st_mode)) {
			if (parent_dir(p, dir, sizeof(dir)) != 0)
				continue;
			if (access(p, W_OK) < 0)
				dd_warn("%s: not writable by uid %u: %s; reopening it after "
					"rotation "
					"(SIGHUP) will fail",
					p, (unsigned)getuid(), strerror(errno));
			p = dir;
		}
		if (access(p, W_OK | X_OK) < 0) {
			snprintf(err, errlen,
				 "%s: not writable by uid %u (gid %u): %s; give the "
				 "directory to the daemon's user (e.g. chown %u:%u %s)",
				 p, (unsigned)getuid(), (unsigned)getgid(), strerror(errno),
				 (unsigned)getuid(), (unsigned)getgid(), p);
			return -EACCES;
		}
	}
	return 0;
}

/* -------------------------------------------------------------- Landlock */

static int
landlock_add(int ruleset, const char *path, uint64_t rights, uint64_t handled, char *err,
	     size_t errlen)
{
	struct ll_path_beneath_attr pb;
	struct stat st;
	char dir[4096];
	int fd;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) {
		/* A file (the audit log): allow creating and appending in its directory. */
		close(fd);
		fd = -1;
		errno = ENAMETOOLONG;
		if (parent_dir(path, dir, sizeof(dir)) == 0)
			fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		rights = rights & LL_FS_WRITE_FILE ? LL_APPEND : LL_FS_READ_FILE;
	}
	if (fd < 0) {
		snprintf(err, errlen, "Landlock: %s: %s", path, strerror(errno));
		return -errno;
	}
	pb.allowed_access = rights & handled;
	pb.parent_fd = fd;
	if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0) < 0) {
		int e = errno;

		snprintf(err, errlen, "Landlock: rule for %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	close(fd);
	return 0;
}

/* Returns the ABI in force, 0 when Landlock is unavailable, or a negative errno. */
static int
landlock_apply(const struct dd_sandbox *sb, char *err, size_t errlen)
{
	struct ll_ruleset_attr attr;
	size_t attr_size;
	int abi = dd_sandbox_landlock_abi(), ruleset, rc = 0;

	if (abi <= 0)
		return 0;
	memset(&attr, 0, sizeof(attr));
	attr.handled_access_fs = LL_READ | LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR |
				 LL_FS_REMOVE_FILE | LL_FS_MAKE_CHAR | LL_FS_MAKE_DIR |
				 LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO |
				 LL_FS_MAKE_BLOCK | LL_FS_MAKE_SYM;
	attr_size = sizeof(attr.handled_access_fs);
	if (abi >= 2)
		attr.handled_access_fs |= LL_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LL_FS_TRUNCATE;
	if (abi >= 5)
		attr.handled_access_fs |= LL_FS_IOCTL_DEV;
	if (abi >= 4) {
		/* TCP only to the ports of TCP sinks, never bind: UDP is not covered
		 * by Landlock (seccomp keeps the link socket one way). */
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		attr_size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 6) {
		/* No signals to processes outside the sandbox, no abstract sockets. */
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (ruleset < 0) {
		snprintf(err, errlen, "Landlock: cannot create a ruleset: %s", strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < sb->npaths && rc == 0; i++)
		rc = landlock_add(ruleset, sb->paths[i].path,
				  sb->paths[i].write ? LL_WRITE : LL_READ, attr.handled_access_fs,
				  err, errlen);
	for (size_t i = 0; abi >= 4 && i < sb->nports && rc == 0; i++) {
		struct ll_net_port_attr np = { .allowed_access = LL_NET_CONNECT_TCP,
					       .port = sb->tcp_ports[i] };

		if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_NET_PORT, &np, 0) < 0) {
			rc = -errno;
			snprintf(err, errlen, "Landlock: rule for TCP port %u: %s",
				 (unsigned)sb->tcp_ports[i], strerror(errno));
		}
	}
#ifdef DD_SANITIZER_BUILD
	/* The leak checker reads /proc/self/maps and /proc/self/task. */
	if (rc == 0)
		rc = landlock_add(ruleset, "/proc", LL_READ, attr.handled_access_fs, err, errlen);
#endif
	if (rc == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		rc = -errno;
		snprintf(err, errlen, "Landlock: cannot restrict the process: %s", strerror(errno));
	}
	close(ruleset);
	return rc < 0 ? rc : abi;
}

/* --------------------------------------------------------------- seccomp */

static bool
is_link(const struct dd_sandbox *sb, int fd)
{
	for (size_t i = 0; i < sb->nlinks; i++)
		if (sb->links[i] == fd)
			return true;
	return false;
}

/*
 * Allow call nr on every descriptor but the link sockets. libseccomp takes one
 * comparison per argument in a rule, so with several sockets: one rule below
 * the lowest, one above the highest, and one per descriptor number between
 * them that is not a link socket (none when they were opened in a row). With
 * one socket this is exactly "fd != link".
 */
static int
allow_off_links(scmp_filter_ctx ctx, int nr, const struct dd_sandbox *sb)
{
	int lo = sb->links[0], hi = sb->links[0], rc;

	for (size_t i = 1; i < sb->nlinks; i++) {
		lo = sb->links[i] < lo ? sb->links[i] : lo;
		hi = sb->links[i] > hi ? sb->links[i] : hi;
	}
	if (hi - lo > 256)
		return -E2BIG; /* link sockets scattered: refuse rather than build a huge filter */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_LT, (scmp_datum_t)lo));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
				      SCMP_A0(SCMP_CMP_GT, (scmp_datum_t)hi));
	for (int fd = lo + 1; rc == 0 && fd < hi; fd++)
		if (!is_link(sb, fd))
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fd));
	return rc;
}

static int
seccomp_apply(const struct dd_sandbox *sb, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int rc = 0;
	const char *failed = NULL;

	ctx = seccomp_init(sb->seccomp == DD_SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL) {
		snprintf(err, errlen, "seccomp: cannot allocate a filter");
		return -ENOMEM;
	}
	/* Threads started before (none are expected) get the filter too. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	for (size_t i = 0; rc == 0 && i < NALLOWED; i++) {
		const char *name = allowed[i].name;
		int nr = seccomp_syscall_resolve_name(name);

		if (!entry_applies(i, sb->role, sb->net) || nr == __NR_SCMP_ERROR)
			continue; /* not this daemon's, or not on this architecture */
		failed = name;
		if (sb->nlinks > 0 && guarded(sb->role, name)) {
			rc = allow_off_links(ctx, nr, sb);
		} else if (strcmp(name, "socket") == 0) {
			/* TCP sockets only, for the sinks' connections. */
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 2,
					      SCMP_A0(SCMP_CMP_EQ, AF_INET),
					      SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM));
			if (rc == 0)
				rc = seccomp_rule_add(
					ctx, SCMP_ACT_ALLOW, nr, 2, SCMP_A0(SCMP_CMP_EQ, AF_INET6),
					SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM));
		} else if (strcmp(name, "clone") == 0 && (sb->net & DD_SANDBOX_THREADS) &&
			   !sanitizer_build) {
			/* Threads of this process only: never a new process. */
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
		} else if (strcmp(name, "clone3") == 0) {
			rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
		} else if (strcmp(name, "socketpair") == 0) {
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
		} else if (strcmp(name, "ioctl") == 0) {
			static const unsigned long requests[] = { FIONBIO, FIOCLEX };

			for (size_t j = 0; rc == 0 && j < sizeof(requests) / sizeof(requests[0]);
			     j++)
				rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
						      SCMP_A1(SCMP_CMP_EQ, requests[j]));
		} else if (strcmp(name, "kill") == 0 || strcmp(name, "tgkill") == 0) {
			/* Signals to ourselves only (abort(), re-raised fatal signals). */
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
		} else if (strcmp(name, "mmap") == 0 || strcmp(name, "mprotect") == 0) {
			/* No new executable memory. */
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
		} else {
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		}
	}
	if (rc == 0 && sb->syslog_fd >= 0 && sb->syslog_fd != sb->link_fd) {
		/* Reconnecting the syslog socket after the syslog daemon restarted:
		 * on that descriptor only (-EEXIST: connect is allowed already). */
		failed = "connect (syslog socket)";
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(connect), 1,
				      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)sb->syslog_fd));
		if (rc == -EEXIST)
			rc = 0;
	}
	if (rc == 0) {
		failed = "loading the filter";
		rc = seccomp_load(ctx);
	}
	if (rc != 0)
		snprintf(err, errlen, "seccomp: %s: %s", failed != NULL ? failed : "set-up",
			 strerror(-rc));
	seccomp_release(ctx);
	return rc;
}

/* ----------------------------------------------------------------- apply */

/* Libraries that initialise lazily on first use read files (OpenSSL its
 * configuration): make them do it now, while files can still be opened. */
static void
warm_up(void)
{
	struct dd_digest *d = NULL;
	uint8_t out[DD_DIGEST_LEN];

	if (dd_digest_new(&d) == 0) {
		dd_digest_update(d, "", 0);
		dd_digest_final(d, out);
		dd_digest_free(d);
	}
}

int
dd_sandbox_apply(const struct dd_sandbox *sb, char *err, size_t errlen)
{
	struct dd_audit_event ev;
	char landlock[96], filter[96];
	uid_t uid;
	gid_t gid;
	int rc, abi;

	if (sb->too_many) {
		snprintf(err, errlen, "sandbox: more than %d paths, %d TCP ports or %d link "
			 "sockets to allow", DD_SANDBOX_PATHS_MAX, DD_SANDBOX_PORTS_MAX,
			 DD_SANDBOX_LINKS_MAX);
		return -ENOSPC;
	}
	warm_up();
	rc = switch_user(sb, err, errlen);
	if (rc != 0)
		return rc;
	rc = check_writable(sb, err, errlen);
	if (rc != 0)
		return rc;
	uid = getuid();
	gid = getgid();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -errno;
	}
	abi = landlock_apply(sb, err, errlen);
	if (abi < 0)
		return abi;
	if (abi == 0) {
		snprintf(landlock, sizeof(landlock),
			 "no Landlock (%s): file access limited by "
			 "permissions only",
			 strerror(-dd_sandbox_landlock_abi()));
		dd_notice("Landlock is not available in this kernel (%s); file access is limited "
			  "by file permissions only",
			  strerror(-dd_sandbox_landlock_abi()));
	} else {
		snprintf(landlock, sizeof(landlock), "Landlock ABI %d: %zu paths", abi, sb->npaths);
	}
	if (sb->seccomp != DD_SECCOMP_NO) {
		rc = seccomp_apply(sb, err, errlen);
		if (rc != 0)
			return rc;
		snprintf(filter, sizeof(filter), "seccomp allow-list of %zu system calls (%s)",
			 count_allowed(sb->role, sb->net),
			 sb->seccomp == DD_SECCOMP_LOG ? "others logged" : "others kill");
	} else {
		snprintf(filter, sizeof(filter), "no seccomp filter ([process] seccomp = no)");
	}
	dd_notice("restricted: uid %u gid %u%s, no new privileges, %s, %s", (unsigned)uid,
		  (unsigned)gid, uid == 0 ? " (root, no capabilities)" : "", landlock, filter);
	dd_audit_begin(&ev, "process_restricted");
	dd_audit_u64(&ev, "uid", uid);
	dd_audit_u64(&ev, "gid", gid);
	dd_audit_u64(&ev, "landlock_abi", (uint64_t)abi);
	dd_audit_str(&ev, "seccomp",
		     sb->seccomp == DD_SECCOMP_YES ? "kill" :
		     sb->seccomp == DD_SECCOMP_LOG ? "log" :
						     "off");
	dd_audit_u64(&ev, "syscalls",
		     sb->seccomp == DD_SECCOMP_NO ? 0 : count_allowed(sb->role, sb->net));
	dd_audit_commit(&ev);
	return 0;
}
