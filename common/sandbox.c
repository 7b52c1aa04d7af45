/* Least privilege: user switch, no new privileges, Landlock file system rules, seccomp allow-list. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
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

#define LL_READ (LL_FS_READ_FILE | LL_FS_READ_DIR)
#define LL_WRITE                                                                                 \
	(LL_READ | LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_DIR |     \
	 LL_FS_MAKE_REG | LL_FS_REFER | LL_FS_TRUNCATE)
/* A directory holding a log file that is appended to and recreated after rotation. */
#define LL_APPEND (LL_FS_WRITE_FILE | LL_FS_MAKE_REG)

/*
 * System calls of both daemons after start-up: the libuv loop (epoll, signals
 * through a self-pipe), UDP batches, file and directory work relative to
 * descriptors opened before, inotify on the sender, memory management
 * (malloc, libsodium's guarded allocations), clocks, and the exit path.
 * Found by running the integration tests with the daemons under strace
 * (see docs/SECURITY.md), then reviewed one by one. Not in it, among others:
 * execve, fork/clone, socket/connect/bind, ptrace, mount, setuid, prctl,
 * ioctl beyond FIONBIO/FIOCLEX, kill of another process, executable memory.
 */
static const char *const allowed[] = {
	/* event loop and signals */
	"epoll_wait", "epoll_pwait", "epoll_ctl", "rt_sigaction", "rt_sigprocmask",
	"rt_sigreturn", "restart_syscall",
	/* descriptors opened before */
	"read", "write", "writev", "pread64", "pwrite64", "preadv", "pwritev", "close", "fcntl",
	"dup", "lseek",
	/* UDP on the socket opened before */
	"recvmmsg", "sendmmsg", "recvmsg", "sendmsg", "getsockopt",
	/* files and directories, relative to descriptors opened before */
	"openat", "newfstatat", "fstat", "getdents64", "fsync", "fdatasync", "ftruncate",
	"fallocate", "fadvise64", "renameat", "renameat2", "unlinkat", "mkdirat", "fchmod",
	"utimensat", "copy_file_range", "fstatfs", "inotify_add_watch", "inotify_rm_watch",
	/* memory: malloc, libsodium's guarded pages */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mlock", "munlock",
	/* clocks (when the vDSO cannot answer), randomness for new key epochs, locks */
	"clock_gettime", "gettimeofday", "getrandom", "futex", "getpid",
	/* ending: exit, abort() and fatal signals to ourselves */
	"exit", "exit_group", "tgkill", "kill",
	/* ioctl, restricted to FIONBIO and FIOCLEX (libuv) */
	"ioctl",
#ifdef DD_SANITIZER_BUILD
	/* the sanitizer runtime: leak check at exit (ptrace from a helper
	 * task), reports, and its own memory and file handling */
	"clone", "ptrace", "wait4", "prctl", "getppid", "sched_getaffinity", "readlink",
	"open", "stat", "lstat", "access", "getrlimit", "prlimit64", "setrlimit", "uname",
	"pipe", "getuid", "geteuid", "sigaltstack", "gettid", "sched_yield", "getdents",
#endif
};

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

const char *const *
dd_sandbox_syscalls(size_t *count)
{
	*count = sizeof(allowed) / sizeof(allowed[0]);
	return allowed;
}

/* ---------------------------------------------------------------- config */

int
dd_sandbox_from_config(struct dd_sandbox *sb, const struct dd_config *cfg, char *err,
		       size_t errlen)
{
	const char *seccomp = dd_config_str(cfg, "process", "seccomp");
	struct passwd *pw;
	struct group *gr;

	memset(sb, 0, sizeof(*sb));
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
			snprintf(err, errlen, "%s: [process] user: no user '%s'%s%s (create it, e.g. "
				 "'useradd --system --no-create-home --shell /usr/sbin/nologin %s')",
				 dd_config_where(cfg, "process", "user"), sb->user,
				 errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "", sb->user);
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
			snprintf(err, errlen, "refusing to run as root: set [process] user to an "
				 "unprivileged account that owns the spool and state directories (e.g. "
				 "user = diode), or set [process] allow_root = yes to run as root "
				 "anyway");
			return -EPERM;
		}
		return euid == 0 ? drop_capabilities() : 0;
	}
	if (euid != 0) {
		if (euid == sb->uid && getegid() == sb->gid)
			return 0;
		snprintf(err, errlen, "[process] user = %s: cannot switch to uid %u from uid %u "
			 "(not root); start the daemon as root or as %s", sb->user,
			 (unsigned)sb->uid, (unsigned)euid, sb->user);
		return -EPERM;
	}
	if (setgroups(1, &sb->gid) < 0 || setresgid(sb->gid, sb->gid, sb->gid) < 0 ||
	    setresuid(sb->uid, sb->uid, sb->uid) < 0) {
		snprintf(err, errlen, "[process] user = %s: cannot switch to uid %u gid %u: %s",
			 sb->user, (unsigned)sb->uid, (unsigned)sb->gid, strerror(errno));
		return -EPERM;
	}
	if (sb->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errlen, "[process] user = %s: root privileges could be regained after "
			 "the switch; refusing to run", sb->user);
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
			const char *slash = strrchr(p, '/');
			size_t n = slash == NULL ? 1 : slash == p ? 1 : (size_t)(slash - p);

			if (n >= sizeof(dir))
				continue;
			memcpy(dir, slash == NULL ? "." : p, n);
			dir[n] = '\0';
			if (access(p, W_OK) < 0)
				dd_warn("%s: not writable by uid %u: %s; reopening it after rotation "
					"(SIGHUP) will fail", p, (unsigned)getuid(), strerror(errno));
			p = dir;
		}
		if (access(p, W_OK | X_OK) < 0) {
			snprintf(err, errlen, "%s: not writable by uid %u (gid %u): %s; give the "
				 "directory to the daemon's user (e.g. chown %u:%u %s)", p,
				 (unsigned)getuid(), (unsigned)getgid(), strerror(errno),
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
		const char *slash = strrchr(path, '/');
		size_t n = slash == NULL ? 1 : slash == path ? 1 : (size_t)(slash - path);

		close(fd);
		fd = -1;
		if (n < sizeof(dir)) {
			memcpy(dir, slash == NULL ? "." : path, n);
			dir[n] = '\0';
			fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		}
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
		/* No TCP at all: no rule grants it. UDP is not covered by Landlock. */
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
		rc = landlock_add(ruleset, sb->paths[i].path, sb->paths[i].write ? LL_WRITE : LL_READ,
				  attr.handled_access_fs, err, errlen);
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
	for (size_t i = 0; rc == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);

		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture */
		failed = allowed[i];
		if (strcmp(allowed[i], "ioctl") == 0) {
			static const unsigned long requests[] = { FIONBIO, FIOCLEX };

			for (size_t j = 0; rc == 0 && j < sizeof(requests) / sizeof(requests[0]); j++)
				rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
						      SCMP_A1(SCMP_CMP_EQ, requests[j]));
		} else if (strcmp(allowed[i], "kill") == 0 || strcmp(allowed[i], "tgkill") == 0) {
			/* Signals to ourselves only (abort(), re-raised fatal signals). */
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
		} else if (strcmp(allowed[i], "mmap") == 0 || strcmp(allowed[i], "mprotect") == 0) {
			/* No new executable memory. */
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
		} else {
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		}
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
		snprintf(err, errlen, "sandbox: more than %d paths to allow", DD_SANDBOX_PATHS_MAX);
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
		snprintf(landlock, sizeof(landlock), "no Landlock (%s): file access limited by "
			 "permissions only", strerror(-dd_sandbox_landlock_abi()));
		dd_notice("Landlock is not available in this kernel (%s); file access is limited "
			  "by file permissions only", strerror(-dd_sandbox_landlock_abi()));
	} else {
		snprintf(landlock, sizeof(landlock), "Landlock ABI %d: %zu paths", abi, sb->npaths);
	}
	if (sb->seccomp != DD_SECCOMP_NO) {
		rc = seccomp_apply(sb, err, errlen);
		if (rc != 0)
			return rc;
		snprintf(filter, sizeof(filter), "seccomp allow-list of %zu system calls (%s)",
			 sizeof(allowed) / sizeof(allowed[0]),
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
	dd_audit_str(&ev, "seccomp", sb->seccomp == DD_SECCOMP_YES   ? "kill"
				     : sb->seccomp == DD_SECCOMP_LOG ? "log" : "off");
	dd_audit_u64(&ev, "syscalls", sb->seccomp == DD_SECCOMP_NO
					      ? 0 : sizeof(allowed) / sizeof(allowed[0]));
	dd_audit_commit(&ev);
	return 0;
}
