/* Small persistent state files, replaced atomically (write, fsync, rename, fsync dir). */
#ifndef DD_STATE_H
#define DD_STATE_H

#include <stddef.h>
#include <stdint.h>

/* Open (creating with mode 0700) the state directory; returns an fd or -errno. */
int dd_state_open_dir(const char *path);
/* Replace dirfd/name with len bytes of data atomically and durably. */
int dd_state_write(int dirfd, const char *name, const void *data, size_t len);
/* Same, atomic but without waiting for the disk (no fsync): for state that is
 * rewritten often and whose loss in a power cut is detected and tolerated. */
int dd_state_write_lazy(int dirfd, const char *name, const void *data, size_t len);
/* Same as dd_state_write_lazy, but the file gets mode 0644 whatever the umask:
 * for files other users read (a metrics file for a textfile collector). */
int dd_state_write_shared(int dirfd, const char *name, const void *data, size_t len);
/* Read at most cap-1 bytes of dirfd/name, NUL-terminate; -ENOENT if absent. */
int dd_state_read(int dirfd, const char *name, char *buf, size_t cap);
/* "key value" lines helpers for u64 values. Missing key: -ENOENT. */
int dd_state_get_u64(const char *text, const char *key, uint64_t *value);

#endif
