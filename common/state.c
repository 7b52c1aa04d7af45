/* Persistent state files with atomic replacement. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"

int
dd_state_open_dir(const char *path)
{
	int fd;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int
replace(int dirfd, const char *name, const void *data, size_t len, bool durable, mode_t mode)
{
	char tmp[300];
	const char *p = data;
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* Whatever the umask: a file others must read gets exactly its mode. */
	if (mode != 0600 && fchmod(fd, mode) < 0)
		rc = -errno;
	while (rc == 0 && len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (rc == 0 && durable && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = -errno;
	if (rc == 0 && durable)
		fsync(dirfd);
	else if (rc != 0)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

int
dd_state_write(int dirfd, const char *name, const void *data, size_t len)
{
	return replace(dirfd, name, data, len, true, 0600);
}

int
dd_state_write_lazy(int dirfd, const char *name, const void *data, size_t len)
{
	return replace(dirfd, name, data, len, false, 0600);
}

int
dd_state_write_shared(int dirfd, const char *name, const void *data, size_t len)
{
	return replace(dirfd, name, data, len, false, 0644);
}

int
dd_state_read(int dirfd, const char *name, char *buf, size_t cap)
{
	ssize_t n;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

int
dd_state_get_u64(const char *text, const char *key, uint64_t *value)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
			char *end;

			/* strtoull would take " 5", "+5" and "-1" (as UINT64_MAX). */
			if (p[klen + 1] < '0' || p[klen + 1] > '9')
				return -EINVAL;
			errno = 0;
			*value = strtoull(p + klen + 1, &end, 10);
			if (errno != 0 || end == p + klen + 1 || (*end != '\n' && *end != '\0'))
				return -EINVAL;
			return 0;
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return -ENOENT;
}
