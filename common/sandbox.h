/* Least privilege: drop to an unprivileged user, no new privileges, Landlock, seccomp allow-list. */
#ifndef DD_SANDBOX_H
#define DD_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
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
 *   4. a seccomp allow-list of the system calls the daemons use after start-up
 *      (dd_sandbox_syscalls()); any other call kills the process (SIGSYS).
 *
 * WARNING: call it before any thread is created (libuv's thread pool
 * included): Landlock and the user switch apply to the calling thread and to
 * threads started after it. The seccomp filter is synchronised to all threads.
 * WARNING: after it, the process can no longer open files outside the allowed
 * directories, nor create sockets, nor execute programs: everything the event
 * loop needs must be open already.
 */

#define DD_SANDBOX_PATHS_MAX 16

enum dd_sandbox_seccomp {
	DD_SECCOMP_NO,  /* no filter */
	DD_SECCOMP_YES, /* allow-list, anything else kills the process */
	DD_SECCOMP_LOG, /* allow-list, anything else is allowed and logged by the kernel */
};

/* Settings read from [process]; paths point into the configuration (or into
 * strings the caller keeps alive until dd_sandbox_apply returns). */
struct dd_sandbox {
	const char *user;       /* NULL: keep the current user */
	const char *group;      /* NULL: the user's primary group */
	bool allow_root;        /* may keep running as root without a user */
	enum dd_sandbox_seccomp seccomp;
	uid_t uid;              /* resolved by dd_sandbox_from_config */
	gid_t gid;
	size_t npaths;
	bool too_many;          /* dd_sandbox_allow overflowed */
	struct {
		const char *path;
		bool write;
	} paths[DD_SANDBOX_PATHS_MAX];
};

/* The [process] schema entries, to put at the end of a daemon's schema. */
#define DD_SANDBOX_CONFIG_KEYS                                                                    \
	{ "process", "user", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },                    \
	{ "process", "group", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },                   \
	{ "process", "allow_root", DD_CFG_BOOL, false, "no", 0, 0, NULL, false },                \
	{ "process", "seccomp", DD_CFG_ENUM, false, "yes", 0, 0, "yes|no|log", false }

/*
 * Read [process] and resolve user and group names (the password and group
 * databases are read here, before anything is restricted). Returns 0, or
 * -EINVAL with "FILE:LINE: [process] user: ..." in err.
 */
int dd_sandbox_from_config(struct dd_sandbox *sb, const struct dd_config *cfg, char *err,
			   size_t errlen) __attribute__((warn_unused_result));

/*
 * Allow access beneath the directory path: read (files and listings), and with
 * write also create, write, truncate, rename and remove files and directories.
 * path may also name a file: then only creating and appending to files in its
 * directory is allowed (an audit log that is reopened after rotation). NULL is
 * a no-op. More than DD_SANDBOX_PATHS_MAX paths make dd_sandbox_apply fail.
 */
void dd_sandbox_allow(struct dd_sandbox *sb, const char *path, bool write);

/*
 * Apply the restrictions in the order above. Returns 0, or a negative errno
 * with what failed and what to do in err; the process must then exit, since
 * it may be partly restricted. Logs one notice saying what is in force and
 * writes a "process_restricted" audit event.
 */
int dd_sandbox_apply(const struct dd_sandbox *sb, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The system calls allowed by the seccomp filter (names, as the kernel's
 * tables spell them), and how many there are. */
const char *const *dd_sandbox_syscalls(size_t *count);

/* Landlock ABI version of the running kernel, or a negative errno when it has
 * none (-ENOSYS) or it is disabled (-EOPNOTSUPP). */
int dd_sandbox_landlock_abi(void);

#endif
