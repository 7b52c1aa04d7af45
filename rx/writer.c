/* Writer: staging files, verification, atomic delivery into the inbox, quarantine. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "path.h"
#include "rx.h"

/* Whether the inbox file system can take t whole and still keep [files]
 * min_free: the space not yet written by the other transfers in progress
 * (staging files are sparse) counts as taken. 0, or -ENOSPC with the reason. */
static int
space_check(struct rx *rx, const struct rx_transfer *t, char *reason, size_t len)
{
	struct statvfs vfs;
	struct stat st;
	uint64_t avail, pending = 0, allocated;

	if (fstatvfs(rx->staging_fd, &vfs) < 0)
		return 0; /* cannot tell: the writes will say */
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	for (unsigned i = 0; i < rx->set.max_transfers; i++) {
		const struct rx_transfer *o = &rx->transfers[i];

		if (o == t || !o->used || o->fd < 0 || fstat(o->fd, &st) < 0)
			continue;
		allocated = (uint64_t)st.st_blocks * 512;
		if (o->size > allocated)
			pending += o->size - allocated;
	}
	if (t->size <= avail && pending <= avail - t->size &&
	    rx->set.min_free <= avail - t->size - pending)
		return 0;
	snprintf(reason, len, "not enough space on the inbox file system: %" PRIu64 " bytes for "
		 "this file + %" PRIu64 " still to be written by other transfers + [files] "
		 "min_free %" PRIu64 " > %" PRIu64 " bytes free", t->size, pending,
		 rx->set.min_free, avail);
	return -ENOSPC;
}

int
writer_stage_open(struct rx *rx, struct rx_transfer *t, bool create)
{
	char reason[300];

	t->fd = -1;
	if (create && space_check(rx, t, reason, sizeof(reason)) != 0) {
		rx_audit_transfer(rx, "staging_refused", t, reason, NULL);
		dd_error("transfer %u-%u refused: %s; free space or lower [files] min_free",
			 rx->session, t->id, reason);
		return -ENOSPC;
	}
	snprintf(t->stage_name, sizeof(t->stage_name), "%" PRIu32 "-%" PRIu32 ".part",
		 rx->session, t->id);
	t->fd = openat(rx->staging_fd, t->stage_name,
		       O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
	if (t->fd < 0) {
		dd_error("staging: cannot create %s/%s: %s", rx->set.staging, t->stage_name,
			 strerror(errno));
		return -errno;
	}
	return 0;
}

void
writer_clean_staging(struct rx *rx)
{
	int fd = dup(rx->staging_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	unsigned removed = 0;

	/* dup shares the offset with the directory fd: start from the top. */
	if (d != NULL)
		rewinddir(d);
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		char meta[300];
		struct stat st;

		if (n <= 5 || strcmp(de->d_name + n - 5, ".part") != 0)
			continue;
		/* Partial files with metadata are resumed; the others are debris. */
		snprintf(meta, sizeof(meta), "%.*s.meta", (int)(n - 5), de->d_name);
		if (fstatat(rx->staging_fd, meta, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (unlinkat(rx->staging_fd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	if (removed > 0)
		dd_notice("staging: removed %u partial files left by an earlier run", removed);
}

/* Copy a file across file systems (quarantine on another device). */
static int
copy_file(int src_fd, int dst_dir, const char *name)
{
	int out = openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	off_t off = 0;
	struct stat st;
	int rc = 0;

	if (out < 0)
		return -errno;
	if (fstat(src_fd, &st) < 0)
		rc = -errno;
	while (rc == 0 && off < st.st_size) {
		ssize_t n = copy_file_range(src_fd, &off, out, NULL, (size_t)(st.st_size - off), 0);

		if (n <= 0)
			rc = n < 0 ? -errno : -EIO;
	}
	if (rc == 0 && fsync(out) < 0)
		rc = -errno;
	close(out);
	if (rc != 0)
		unlinkat(dst_dir, name, 0);
	return rc;
}

void
writer_discard(struct rx *rx, struct rx_transfer *t, bool quarantine)
{
	char name[300];
	const char *leaf;
	int rc;

	disk_settle(rx, t); /* no write of it may land after this */
	if (t->fd < 0)
		return;
	if (quarantine && rx->quarantine_fd >= 0) {
		leaf = t->path != NULL ? strrchr(t->path, '/') : NULL;
		leaf = leaf != NULL ? leaf + 1 : t->path != NULL ? t->path : "unnamed";
		snprintf(name, sizeof(name), "%" PRIu32 "-%" PRIu32 "-%.200s", rx->session, t->id,
			 leaf);
		rc = renameat(rx->staging_fd, t->stage_name, rx->quarantine_fd, name) < 0 ? -errno
											  : 0;
		if (rc == -EXDEV)
			rc = copy_file(t->fd, rx->quarantine_fd, name);
		if (rc == 0)
			dd_notice("quarantined as %s/%s", rx->set.quarantine, name);
		else
			dd_error("quarantine: cannot keep %s: %s", name, strerror(-rc));
	}
	unlinkat(rx->staging_fd, t->stage_name, 0);
	partial_remove(rx, t);
	close(t->fd);
	t->fd = -1;
}

static int
place(struct rx *rx, struct rx_transfer *t, char *delivered_as, size_t len, bool *replaced)
{
	char variant[DD_PATH_COMPONENT_MAX + 1];
	const char *leaf;
	int dirfd, rc;

	rc = dd_path_open_parent(rx->inbox_fd, t->path, true, 0755, &dirfd, &leaf);
	if (rc != 0)
		return rc;
	snprintf(delivered_as, len, "%s", t->path);
	rc = renameat2(rx->staging_fd, t->stage_name, dirfd, leaf, RENAME_NOREPLACE) < 0 ? -errno
										       : 0;
	if (rc == -EEXIST && rx->set.overwrite) {
		/* Replacing is what the operator asked for; the audit says so. */
		rc = renameat(rx->staging_fd, t->stage_name, dirfd, leaf) < 0 ? -errno : 0;
		if (rc == 0)
			*replaced = true;
	} else {
		for (unsigned n = 1; rc == -EEXIST && n < 100000; n++) {
			if (dd_path_variant(leaf, n, variant, sizeof(variant)) != 0)
				break;
			rc = renameat2(rx->staging_fd, t->stage_name, dirfd, variant,
				       RENAME_NOREPLACE) < 0 ? -errno : 0;
			if (rc == 0)
				snprintf(delivered_as + (leaf - t->path), len - (size_t)(leaf - t->path),
					 "%s", variant);
		}
	}
	if (rc == 0)
		fsync(dirfd);
	close(dirfd);
	return rc;
}

void
writer_deliver(struct rx *rx, struct rx_transfer *t)
{
	uint8_t digest[DD_DIGEST_LEN];
	char delivered_as[DD_PATH_MAX + 32], reason[200];
	struct timespec times[2];
	struct stat st;
	bool replaced = false;
	int rc;

	disk_settle(rx, t); /* a no-op: complete means the disk thread is done with it */
	dd_digest_final(t->digest, digest);
	if (fstat(t->fd, &st) < 0 || (uint64_t)st.st_size != t->size) {
		/* Blocks are written at their offsets; a trailing gap cannot occur, but a
		 * zero-length last write could leave the file short: extend it. */
		if (ftruncate(t->fd, (off_t)t->size) < 0) {
			snprintf(reason, sizeof(reason), "cannot size the staging file: %s",
				 strerror(errno));
			goto failed;
		}
		t->disk_synced = false; /* the new size is not on disk yet */
	}
	if (memcmp(digest, t->sha256, DD_DIGEST_LEN) != 0) {
		rx->c.files_failed++;
		rx_audit_transfer(rx, "file_rejected", t, "SHA-256 mismatch", NULL);
		dd_error("transfer %u-%u (%s): SHA-256 mismatch; not delivered", rx->session,
			 t->id, t->path);
		writer_discard(rx, t, true);
		reasm_release_delivered(rx, t);
		return;
	}
	/* The disk thread, when it runs, fsynced it once all was hashed. */
	if (t->disk_sync_err != 0 || (!t->disk_synced && fsync(t->fd) < 0)) {
		snprintf(reason, sizeof(reason), "fsync of the staging file: %s",
			 strerror(t->disk_sync_err != 0 ? t->disk_sync_err : errno));
		goto failed;
	}
	fchmod(t->fd, (mode_t)(t->mode & 0755));
	times[0].tv_sec = times[1].tv_sec = (time_t)t->mtime;
	times[0].tv_nsec = times[1].tv_nsec = 0;
	futimens(t->fd, times);
	rc = place(rx, t, delivered_as, sizeof(delivered_as), &replaced);
	if (rc != 0) {
		snprintf(reason, sizeof(reason), "cannot place it in the inbox: %s%s", strerror(-rc),
			 rc == -ENOTDIR || rc == -ELOOP
				 ? " (a file or symbolic link is in the way of its directory)" : "");
		goto failed;
	}
	rx->c.files_delivered++;
	partial_remove(rx, t);
	if (replaced)
		rx_audit_transfer(rx, "file_replaced", t, "an older file of that name was replaced "
				  "([files] collision = overwrite)", delivered_as);
	rx_audit_transfer(rx, "file_delivered", t, NULL, delivered_as);
	dd_info("delivered %s (%" PRIu64 " bytes, transfer %u-%u, %" PRIu64 " ms)", delivered_as,
		t->size, rx->session, t->id, dd_mono_ms() - t->first_ms);
	close(t->fd);
	t->fd = -1;
	reasm_release_delivered(rx, t);
	return;
failed:
	rx->c.files_failed++;
	rx_audit_transfer(rx, "file_failed", t, reason, NULL);
	dd_error("transfer %u-%u (%s) not delivered: %s", rx->session, t->id, t->path, reason);
	writer_discard(rx, t, true);
	reasm_release_delivered(rx, t);
}
