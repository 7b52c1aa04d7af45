/* Path safety: checking relative paths from the wire and opening them beneath a root. */
#ifndef DD_PATH_H
#define DD_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define DD_PATH_MAX 1024     /* bytes in a relative path on the wire */
#define DD_PATH_COMPONENT_MAX 255

/*
 * Accepts a relative path of 1..DD_PATH_MAX bytes (no NUL inside: len is the
 * whole path) made of '/'-separated components that are each 1..255 bytes,
 * valid UTF-8 (no overlongs, no surrogates), free of control characters
 * (U+0000–U+001F, U+007F–U+009F) and backslashes, and are neither "." nor "..".
 * No leading or trailing '/', no "//". Returns 0, or -EINVAL and sets *reason
 * (static text, e.g. "component is '..'") when reason is not NULL.
 */
int dd_path_check(const char *path, size_t len, const char **reason);

/*
 * Open the directory that holds PATH (already checked) beneath the directory
 * rootfd, one component at a time with O_NOFOLLOW, so a symlink anywhere on the
 * way is refused (-ELOOP or -ENOTDIR) rather than followed. With create, missing
 * directories are made with mode. On success *dirfd is an O_DIRECTORY fd the
 * caller closes (a dup of rootfd for a one-component path) and *leaf points to
 * the last component inside PATH. Negative errno on failure.
 */
int dd_path_open_parent(int rootfd, const char *path, bool create, mode_t mode,
			int *dirfd, const char **leaf);

/*
 * Build a collision-free variant of leaf for attempt n >= 1: "name.csv" ->
 * "name.1.csv", "archive.tar.gz" -> "archive.tar.1.gz", "README" -> "README.1",
 * ".profile" -> ".profile.1". Returns 0 or -ENAMETOOLONG if it would not fit
 * in out or exceed 255 bytes.
 */
int dd_path_variant(const char *leaf, unsigned n, char *out, size_t outlen);

#endif
