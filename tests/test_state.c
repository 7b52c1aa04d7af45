/* Unit tests for common/state.c: state directory, atomic replace, reads, "key value" parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state.h"

#define S(lit) lit, sizeof(lit) - 1

/* A scratch directory per test, and the state directory inside it. */
struct fs {
	char root[64];
	char dir[96]; /* root/state */
	int dirfd;
};

static int
fs_setup(void **state)
{
	struct fs *fs = calloc(1, sizeof(*fs));

	if (fs == NULL)
		return -1;
	strcpy(fs->root, "/tmp/test_state.XXXXXX");
	if (mkdtemp(fs->root) == NULL)
		return -1;
	snprintf(fs->dir, sizeof(fs->dir), "%s/state", fs->root);
	fs->dirfd = dd_state_open_dir(fs->dir);
	if (fs->dirfd < 0)
		return -1;
	*state = fs;
	return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
fs_teardown(void **state)
{
	struct fs *fs = *state;

	close(fs->dirfd);
	nftw(fs->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fs);
	return 0;
}

static bool
exists_at(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---------------------------------------------------------------- open_dir */

static void
test_state_open_dir_creates_private_dir_and_reopens(void **state)
{
	struct fs *fs = *state;
	struct stat st;
	int fd;

	assert_int_equal(stat(fs->dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 077, 0);
	fd = dd_state_open_dir(fs->dir);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(fd);
}

static void
test_state_open_dir_errors(void **state)
{
	struct fs *fs = *state;
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/missing/state", fs->root);
	assert_int_equal(dd_state_open_dir(path), -ENOENT);
	snprintf(path, sizeof(path), "%s/file", fs->root);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(dd_state_open_dir(path), -ENOTDIR);
}

/* ------------------------------------------------------------ write / read */

static void
test_state_write_read_round_trip(void **state)
{
	struct fs *fs = *state;
	char buf[256];
	struct stat st;

	assert_int_equal(dd_state_write(fs->dirfd, "rx-session", S("session 7\nseq 99\n")), 0);
	assert_int_equal(dd_state_read(fs->dirfd, "rx-session", buf, sizeof(buf)), 17);
	assert_string_equal(buf, "session 7\nseq 99\n");
	assert_int_equal(fstatat(fs->dirfd, "rx-session", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_false(exists_at(fs->dirfd, ".rx-session.tmp"));
}

static void
test_state_write_replaces_whole_file(void **state)
{
	struct fs *fs = *state;
	char buf[256];

	assert_int_equal(dd_state_write(fs->dirfd, "s", S("session 123456789\n")), 0);
	assert_int_equal(dd_state_write(fs->dirfd, "s", S("session 1\n")), 0);
	assert_int_equal(dd_state_read(fs->dirfd, "s", buf, sizeof(buf)), 10);
	assert_string_equal(buf, "session 1\n");
	assert_int_equal(dd_state_write(fs->dirfd, "s", "", 0), 0);
	assert_int_equal(dd_state_read(fs->dirfd, "s", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_false(exists_at(fs->dirfd, ".s.tmp"));
}

static void
test_state_write_binary_and_large_data(void **state)
{
	struct fs *fs = *state;
	static char data[200000], back[200001];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 13 + 1);
	data[100] = '\0';
	assert_int_equal(dd_state_write(fs->dirfd, "big", data, sizeof(data)), 0);
	assert_int_equal(dd_state_read(fs->dirfd, "big", back, sizeof(back)), (int)sizeof(data));
	assert_memory_equal(back, data, sizeof(data));
	assert_int_equal(back[sizeof(data)], '\0');
}

static void
test_state_read_truncates_to_cap_and_terminates(void **state)
{
	struct fs *fs = *state;
	char buf[8];

	assert_int_equal(dd_state_write(fs->dirfd, "s", S("session 42\n")), 0);
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(dd_state_read(fs->dirfd, "s", buf, 5), 4);
	assert_string_equal(buf, "sess");
	assert_int_equal(dd_state_read(fs->dirfd, "s", buf, 1), 0);
	assert_string_equal(buf, "");
}

static void
test_state_read_missing_and_symlink(void **state)
{
	struct fs *fs = *state;
	char buf[64];

	assert_int_equal(dd_state_read(fs->dirfd, "absent", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(dd_state_write(fs->dirfd, "real", S("seq 1\n")), 0);
	assert_int_equal(symlinkat("real", fs->dirfd, "link"), 0);
	assert_int_equal(dd_state_read(fs->dirfd, "link", buf, sizeof(buf)), -ELOOP);
}

static void
test_state_write_does_not_follow_symlinked_temp_file(void **state)
{
	struct fs *fs = *state;
	char target[160], buf[64];

	/* Someone who can write the state dir plants the temporary name. */
	snprintf(target, sizeof(target), "%s/victim", fs->root);
	assert_int_equal(symlinkat(target, fs->dirfd, ".s.tmp"), 0);
	assert_int_equal(dd_state_write(fs->dirfd, "s", S("seq 1\n")), -ELOOP);
	assert_int_equal(access(target, F_OK), -1);
	assert_int_equal(dd_state_read(fs->dirfd, "s", buf, sizeof(buf)), -ENOENT);
}

static void
test_state_write_errors(void **state)
{
	struct fs *fs = *state;
	char name[400];

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(dd_state_write(fs->dirfd, name, S("x")), -ENAMETOOLONG);
	assert_int_equal(dd_state_write(-1, "s", S("x")), -EBADF);
	assert_int_equal(dd_state_write(fs->dirfd, "no/such/dir", S("x")), -ENOENT);
	assert_false(exists_at(fs->dirfd, ".no"));
}

/* ------------------------------------------------------------------ get_u64 */

static void
test_state_get_u64_parses_keys(void **state)
{
	const char *text = "session 7\nseq 18446744073709551615\nsequence 5\nzero 0\nlast 12";
	uint64_t v;

	assert_int_equal(dd_state_get_u64(text, "session", &v), 0);
	assert_true(v == 7);
	assert_int_equal(dd_state_get_u64(text, "seq", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(dd_state_get_u64(text, "sequence", &v), 0);
	assert_true(v == 5);
	assert_int_equal(dd_state_get_u64(text, "zero", &v), 0);
	assert_true(v == 0);
	assert_int_equal(dd_state_get_u64(text, "last", &v), 0); /* no final newline */
	assert_true(v == 12);
	/* Leading zeros are plain decimal, not octal. */
	assert_int_equal(dd_state_get_u64("mode 0755\n", "mode", &v), 0);
	assert_true(v == 755);
}

static void
test_state_get_u64_missing_key(void **state)
{
	uint64_t v;

	assert_int_equal(dd_state_get_u64("", "seq", &v), -ENOENT);
	assert_int_equal(dd_state_get_u64("\n\n", "seq", &v), -ENOENT);
	assert_int_equal(dd_state_get_u64("session 7\n", "seq", &v), -ENOENT);
	/* Keys match whole words at the start of a line only. */
	assert_int_equal(dd_state_get_u64("sequence 7\n", "seq", &v), -ENOENT);
	assert_int_equal(dd_state_get_u64("xseq 7\n", "seq", &v), -ENOENT);
	assert_int_equal(dd_state_get_u64("a seq 7\n", "seq", &v), -ENOENT);
	assert_int_equal(dd_state_get_u64("seq\n", "seq", &v), -ENOENT);
	assert_int_equal(dd_state_get_u64("seq", "seq", &v), -ENOENT);
}

static void
test_state_get_u64_rejects_malformed_values(void **state)
{
	static const char *const bad[] = {
		"seq \n", "seq ", "seq abc\n", "seq 12x\n", "seq 5 \n", "seq 5\r\n",
		"seq 0x10\n", "seq 1.5\n", "seq 18446744073709551616\n",
		"seq 99999999999999999999999\n", "seq -1\n", "seq -0\n", "seq +5\n",
		"seq  5\n", "seq \t5\n", "seq \n5\n",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (dd_state_get_u64(bad[i], "seq", &v) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	/* The first matching line decides. */
	assert_int_equal(dd_state_get_u64("seq x\nseq 5\n", "seq", &v), -EINVAL);
	assert_int_equal(dd_state_get_u64("seq 4\nseq x\n", "seq", &v), 0);
	assert_true(v == 4);
}

static void
test_state_round_trip_through_file(void **state)
{
	struct fs *fs = *state;
	char buf[128];
	uint64_t session, seq;

	snprintf(buf, sizeof(buf), "session %u\nseq %llu\n", 4294967295u,
		 (unsigned long long)UINT64_MAX - 1);
	assert_int_equal(dd_state_write(fs->dirfd, "rx-session", buf, strlen(buf)), 0);
	memset(buf, 0, sizeof(buf));
	assert_true(dd_state_read(fs->dirfd, "rx-session", buf, sizeof(buf)) > 0);
	assert_int_equal(dd_state_get_u64(buf, "session", &session), 0);
	assert_int_equal(dd_state_get_u64(buf, "seq", &seq), 0);
	assert_true(session == 4294967295u);
	assert_true(seq == UINT64_MAX - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define FS_TEST(fn) cmocka_unit_test_setup_teardown(fn, fs_setup, fs_teardown)
		FS_TEST(test_state_open_dir_creates_private_dir_and_reopens),
		FS_TEST(test_state_open_dir_errors),
		FS_TEST(test_state_write_read_round_trip),
		FS_TEST(test_state_write_replaces_whole_file),
		FS_TEST(test_state_write_binary_and_large_data),
		FS_TEST(test_state_read_truncates_to_cap_and_terminates),
		FS_TEST(test_state_read_missing_and_symlink),
		FS_TEST(test_state_write_does_not_follow_symlinked_temp_file),
		FS_TEST(test_state_write_errors),
		FS_TEST(test_state_round_trip_through_file),
#undef FS_TEST
		cmocka_unit_test(test_state_get_u64_parses_keys),
		cmocka_unit_test(test_state_get_u64_missing_key),
		cmocka_unit_test(test_state_get_u64_rejects_malformed_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
