/* Path safety: strict checking of wire paths and symlink-proof opening beneath a root. */
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

static int
fail(const char **reason, const char *text)
{
	if (reason != NULL)
		*reason = text;
	return -EINVAL;
}

/*
 * Length of the well-formed UTF-8 sequence (Unicode table 3-7) starting at
 * s[0], a byte >= 0x80, reading at most avail bytes; 0 when it is ill-formed
 * or truncated. The code point goes to *cp.
 */
static size_t
utf8_sequence(const unsigned char *s, size_t avail, uint32_t *cp)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;
	uint32_t c;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0f;
		if (s[0] == 0xe0)
			lo = 0xa0; /* overlong below U+0800 */
		else if (s[0] == 0xed)
			hi = 0x9f; /* surrogates U+D800..U+DFFF */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07;
		if (s[0] == 0xf0)
			lo = 0x90; /* overlong below U+10000 */
		else if (s[0] == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0; /* stray continuation, overlong C0/C1 lead, F5..FF */
	}
	if (avail < n)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 1; i < n; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	*cp = c;
	return n;
}

/* The component p[0..len) is complete: check what only a whole one shows. */
static int
check_component(const unsigned char *p, size_t len, const char **reason)
{
	if (len == 0)
		return fail(reason, "empty component");
	if (len == 1 && p[0] == '.')
		return fail(reason, "component is '.'");
	if (len == 2 && p[0] == '.' && p[1] == '.')
		return fail(reason, "component is '..'");
	return 0;
}

int
dd_path_check(const char *path, size_t len, const char **reason)
{
	const unsigned char *p = (const unsigned char *)path;
	size_t i = 0, start = 0, n;
	uint32_t cp;
	int r;

	if (path == NULL || len == 0)
		return fail(reason, "empty path");
	if (len > DD_PATH_MAX)
		return fail(reason, "path longer than 1024 bytes");
	if (p[0] == '/')
		return fail(reason, "absolute path");
	if (p[len - 1] == '/')
		return fail(reason, "trailing slash");

	while (i < len) {
		if (p[i] == '/') {
			r = check_component(p + start, i - start, reason);
			if (r < 0)
				return r;
			start = ++i;
			continue;
		}
		if (p[i] == '\0')
			return fail(reason, "NUL byte");
		if (p[i] < 0x20 || p[i] == 0x7f)
			return fail(reason, "control character");
		if (p[i] == '\\')
			return fail(reason, "backslash");
		if (p[i] < 0x80) {
			n = 1;
		} else {
			n = utf8_sequence(p + i, len - i, &cp);
			if (n == 0)
				return fail(reason, "invalid UTF-8");
			if (cp <= 0x9f)
				return fail(reason, "control character");
		}
		i += n;
		if (i - start > DD_PATH_COMPONENT_MAX)
			return fail(reason, "component longer than 255 bytes");
	}
	return check_component(p + start, len - start, reason);
}

/* Open directory name beneath at without following a symlink, making it if asked. */
static int
open_dir(int at, const char *name, bool create, mode_t mode)
{
	int fd;

	fd = openat(at, name, DIR_FLAGS);
	if (fd >= 0)
		return fd;
	if (errno != ENOENT || !create)
		return -errno;
	if (mkdirat(at, name, mode) < 0 && errno != EEXIST)
		return -errno;
	/* Whoever made it (us or a racer), it must be a real directory now. */
	fd = openat(at, name, DIR_FLAGS);
	return fd >= 0 ? fd : -errno;
}

int
dd_path_open_parent(int rootfd, const char *path, bool create, mode_t mode,
		    int *dirfd, const char **leaf)
{
	char comp[DD_PATH_COMPONENT_MAX + 1];
	const char *p, *slash, *end;
	size_t len, n;
	int fd = -1, r;

	if (dirfd != NULL)
		*dirfd = -1;
	if (leaf != NULL)
		*leaf = NULL;
	if (path == NULL || dirfd == NULL || leaf == NULL)
		return -EINVAL;
	/* Cheap, and keeps a caller that forgot the check from escaping root. */
	len = strnlen(path, DD_PATH_MAX + 1);
	if (dd_path_check(path, len, NULL) < 0)
		return -EINVAL;

	p = path;
	end = path + len;
	while ((slash = memchr(p, '/', (size_t)(end - p))) != NULL) {
		n = (size_t)(slash - p);
		memcpy(comp, p, n); /* n <= 255: dd_path_check bounds components */
		comp[n] = '\0';
		r = open_dir(fd >= 0 ? fd : rootfd, comp, create, mode);
		if (r < 0)
			goto out;
		if (fd >= 0)
			close(fd);
		fd = r;
		p = slash + 1;
	}
	if (fd < 0) {
		fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			r = -errno;
			goto out;
		}
	}
	*dirfd = fd;
	*leaf = p;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int
dd_path_variant(const char *leaf, unsigned n, char *out, size_t outlen)
{
	char num[16], buf[DD_PATH_COMPONENT_MAX + 1];
	size_t len, cut, numlen, total, i;

	if (leaf == NULL || out == NULL || n == 0 || leaf[0] == '\0')
		return -EINVAL;
	len = strnlen(leaf, DD_PATH_COMPONENT_MAX + 1);
	numlen = (size_t)snprintf(num, sizeof(num), ".%u", n);
	total = len + numlen;
	if (total > DD_PATH_COMPONENT_MAX || total >= outlen)
		return -ENAMETOOLONG;

	/* Before the last '.' unless that is the leading dot of a hidden name. */
	cut = len;
	for (i = len; i > 1; i--) {
		if (leaf[i - 1] == '.') {
			cut = i - 1;
			break;
		}
	}
	/* Built aside so that out may be the same buffer as leaf. */
	memcpy(buf, leaf, cut);
	memcpy(buf + cut, num, numlen);
	memcpy(buf + cut + numlen, leaf + cut, len - cut);
	buf[total] = '\0';
	memcpy(out, buf, total + 1);
	return 0;
}
