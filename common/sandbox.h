/* Least privilege: unprivileged user, no new privileges, Landlock, seccomp allow-list. */
#ifndef DD_SANDBOX_H
#define DD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

/*
 * A daemon opens everything it needs first (sockets, directories, keys, the
 * audit log), then calls dd_sandbox_apply() once, just before its event loop:
 *
 *   1. switch to [process] user / group (setgroups, setgid, setuid), or refuse
 *      to go on as root when no user is configured and allow_root is not set;
 *      when it stays root, every capability is dropped;
 *   2. PR_SET_NO_NEW_PRIVS;
 *   3. Landlock (when the kernel has it): file system access only beneath the
 *      directories added with dd_sandbox_allow(); no execution anywhere;
 *   4. a seccomp allow-list of the system calls the daemon uses after start-up
 *      (dd_sandbox_syscalls()); any other call kills the process (SIGSYS).
 *      diode-rx has no call that sends a datagram, diode-tx none that
 *      receives one, unless stream channels or sinks ask for them
 *      (dd_sandbox_allow_net), and never on the link socket
 *      (dd_sandbox_link_socket).
 *
 * WARNING: call it before any thread is created (libuv's thread pool
 * included): Landlock and the user switch apply to the calling thread and to
 * threads started after it. The seccomp filter is synchronised to all threads.
 * WARNING: after it, the process can no longer open files outside the allowed
 * directories, nor create sockets, nor execute programs: everything the event
 * loop needs must be open already.
 */

/* Enough for the daemon's own directories and one per stream channel (24). */
#define DD_SANDBOX_PATHS_MAX 40
#define DD_SANDBOX_PORTS_MAX 32
#define DD_SANDBOX_LINKS_MAX 8 /* link sockets ([link] listen list on diode-rx) */

/* Local sockets used after the sandbox (stream channels and sinks), besides
 * the diode link socket. Each admits a few more system calls. */
#define DD_SANDBOX_NET_ACCEPT 0x1u      /* accept on listening sockets opened before */
#define DD_SANDBOX_NET_RECV 0x2u        /* receive on sockets opened before */
#define DD_SANDBOX_NET_SEND 0x4u        /* send on sockets opened before */
#define DD_SANDBOX_NET_TCP_CONNECT 0x8u /* set by dd_sandbox_allow_tcp_connect */
#define DD_SANDBOX_THREADS 0x10u        /* set by dd_sandbox_allow_threads */

enum dd_sandbox_role {
	DD_SANDBOX_TX, /* diode-tx: sends, never receives */
	DD_SANDBOX_RX, /* diode-rx: receives, never sends */
};

enum dd_sandbox_seccomp {
	DD_SECCOMP_NO,  /* no filter */
	DD_SECCOMP_YES, /* allow-list, anything else kills the process */
	DD_SECCOMP_LOG, /* allow-list, anything else is allowed and logged by the kernel */
};

/* Settings read from [process]; paths point into the configuration (or into
 * strings the caller keeps alive until dd_sandbox_apply returns). */
struct dd_sandbox {
	enum dd_sandbox_role role;
	const char *user;  /* NULL: keep the current user */
	const char *group; /* NULL: the user's primary group */
	bool allow_root;   /* may keep running as root without a user */
	enum dd_sandbox_seccomp seccomp;
	uid_t uid; /* resolved by dd_sandbox_from_config */
	gid_t gid;
	int link_fd;  /* the diode link socket, -1 when not given */
	size_t nlinks; /* every link socket (diode-rx may listen on several) */
	int links[DD_SANDBOX_LINKS_MAX];
	int syslog_fd; /* the syslog socket ([log] syslog), -1 when not given */
	unsigned net; /* DD_SANDBOX_NET_* */
	size_t nports;
	uint16_t tcp_ports[DD_SANDBOX_PORTS_MAX];
	size_t npaths;
	bool too_many; /* dd_sandbox_allow* overflowed */
	struct {
		const char *path;
		bool write;
	} paths[DD_SANDBOX_PATHS_MAX];
};

/* The [process] schema entries, to put at the end of a daemon's schema. */
#define DD_SANDBOX_CONFIG_KEYS                                                                     \
	{ "process", "user", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },                      \
		{ "process", "group", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },             \
		{ "process", "allow_root", DD_CFG_BOOL, false, "no", 0, 0, NULL, false },          \
	{                                                                                          \
		"process", "seccomp", DD_CFG_ENUM, false, "yes", 0, 0, "yes|no|log", false         \
	}

/*
 * Read [process] and resolve user and group names (the password and group
 * databases are read here, before anything is restricted). Returns 0, or
 * -EINVAL with "FILE:LINE: [process] user: ..." in err.
 */
int dd_sandbox_from_config(struct dd_sandbox *sb, const struct dd_config *cfg,
			   enum dd_sandbox_role role, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Allow access beneath the directory path: read (files and listings), and with
 * write also create, write, truncate, rename and remove files and directories.
 * path may also name a file: then only creating and appending to files in its
 * directory is allowed (an audit log that is reopened after rotation). NULL is
 * a no-op. More than DD_SANDBOX_PATHS_MAX paths make dd_sandbox_apply fail.
 */
void dd_sandbox_allow(struct dd_sandbox *sb, const char *path, bool write);

/*
 * The diode link socket. On diode-rx no call may send through it, nor
 * connect it (write, writev, sendmmsg, sendmsg, sendto, connect are allowed
 * only on other descriptors); on diode-tx none may receive from it (read,
 * recvmmsg, recvmsg, recvfrom, connect likewise). Set it before apply.
 */
void dd_sandbox_link_socket(struct dd_sandbox *sb, int fd);
/* (Called once per socket when there are several, at most DD_SANDBOX_LINKS_MAX;
 * they should be opened one after the other, as the filter then stays small.) */

/* The Unix datagram socket to syslog (common/log.c): connect() is allowed on
 * this descriptor only, so that the connection can be made again when the
 * syslog daemon restarts; datagrams go out with write(). Set it before apply. */
void dd_sandbox_syslog_socket(struct dd_sandbox *sb, int fd);

/* Allow DD_SANDBOX_NET_ACCEPT, _RECV and/or _SEND on local sockets opened
 * before apply (never on the link socket). */
void dd_sandbox_allow_net(struct dd_sandbox *sb, unsigned what);
/* Threads will be started after dd_sandbox_apply() ([link] workers:
 * diode-tx's sealing threads, diode-rx's disk thread): clone with
 * CLONE_THREAD only (no new process), clone3 answered ENOSYS (glibc then
 * uses clone), what a new thread does at start, and sched_yield (libuv's
 * loop spins on a half-done uv_async_send). Started after the sandbox,
 * threads inherit all of it. */
void dd_sandbox_allow_threads(struct dd_sandbox *sb);

/* Allow creating TCP sockets and connecting them to port (any address: the
 * configuration names the host); Landlock (ABI 4) refuses other ports. At
 * most DD_SANDBOX_PORTS_MAX ports. */
void dd_sandbox_allow_tcp_connect(struct dd_sandbox *sb, uint16_t port);

/*
 * Apply the restrictions in the order above. Returns 0, or a negative errno
 * with what failed and what to do in err; the process must then exit, since
 * it may be partly restricted. Logs one notice saying what is in force and
 * writes a "process_restricted" audit event.
 */
int dd_sandbox_apply(const struct dd_sandbox *sb, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The system calls the seccomp filter allows a role without any
 * DD_SANDBOX_NET_* (names, as the kernel's tables spell them): up to cap of
 * them into names (may be NULL with cap 0), and how many there are. */
size_t dd_sandbox_syscalls(enum dd_sandbox_role role, const char **names, size_t cap);

/* Landlock ABI version of the running kernel, or a negative errno when it has
 * none (-ENOSYS) or it is disabled (-EOPNOTSUPP). */
int dd_sandbox_landlock_abi(void);

#endif
