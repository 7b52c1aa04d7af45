/* Unit tests for common/path.c: wire path checks, symlink-proof opening, name variants. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "path.h"

#define S(lit) lit, sizeof(lit) - 1 /* a literal with its length, NULs included */

struct named {
	const char *name;
	size_t len;
	const char *reason; /* NULL: accepted */
};

/* Long names, filled in by fill_long_names() before the tables are used. */
static char comp256[256];          /* one 256-byte component */
static char comp255[255];          /* one 255-byte component */
static char mid256[2 + 256 + 2];   /* "x/" + 256 bytes + "/y" */
static char umlaut256[128 * 2];    /* 128 x "ü": 256 bytes, 128 characters */
static char umlaut255[127 * 2 + 1];/* 127 x "ü" + "a": 255 bytes */
static char euro255[85 * 3];       /* 85 x "€": 255 bytes */
static char path1024[1024];        /* components of <= 255 bytes */
static char path1025[1025];
static char flat1025[1025];        /* a single 1025-byte run, no '/' */

static void
fill_components(char *p, size_t len)
{
	size_t i;

	/* 200-byte components: "aaa...a/aaa...a/..." never ending in '/'. */
	for (i = 0; i < len; i++)
		p[i] = (i % 201 == 200) ? '/' : 'a';
	if (p[len - 1] == '/')
		p[len - 1] = 'b';
}

static void
fill_long_names(void)
{
	size_t i;

	memset(comp256, 'a', sizeof(comp256));
	memset(comp255, 'z', sizeof(comp255));
	memcpy(mid256, "x/", 2);
	memset(mid256 + 2, 'm', 256);
	memcpy(mid256 + 258, "/y", 2);
	for (i = 0; i < 128; i++)
		memcpy(umlaut256 + 2 * i, "\xc3\xbc", 2);
	for (i = 0; i < 127; i++)
		memcpy(umlaut255 + 2 * i, "\xc3\xbc", 2);
	umlaut255[254] = 'a';
	for (i = 0; i < 85; i++)
		memcpy(euro255 + 3 * i, "\xe2\x82\xac", 3);
	fill_components(path1024, sizeof(path1024));
	fill_components(path1025, sizeof(path1025));
	memset(flat1025, 'f', sizeof(flat1025));
}

static const struct named hostile[] = {
	{ S(""), "empty path" },
	{ S("/"), "absolute path" },
	{ S("/etc/passwd"), "absolute path" },
	{ S("//a"), "absolute path" },
	{ S("/a/"), "absolute path" },
	{ S(".."), "component is '..'" },
	{ S("../a"), "component is '..'" },
	{ S("a/.."), "component is '..'" },
	{ S("a/../b"), "component is '..'" },
	{ S("a/../../etc/passwd"), "component is '..'" },
	{ S("."), "component is '.'" },
	{ S("./a"), "component is '.'" },
	{ S("a/./b"), "component is '.'" },
	{ S("a/."), "component is '.'" },
	{ S("a//b"), "empty component" },
	{ S("a/b//c"), "empty component" },
	{ S("a/"), "trailing slash" },
	{ S("a/b/"), "trailing slash" },
	{ S("a//"), "trailing slash" },
	{ S("a\0b"), "NUL byte" },
	{ S("\0"), "NUL byte" },
	{ S("a\0"), "NUL byte" },
	{ S("a/\0/b"), "NUL byte" },
	{ S("a\nb"), "control character" },
	{ S("a\tb"), "control character" },
	{ S("a\rb"), "control character" },
	{ S("\x01"), "control character" },
	{ S("\x1b[31mred"), "control character" },
	{ S("a\x1f"), "control character" },
	{ S("a\x7f"), "control character" },
	{ S("a\xc2\x85" "b"), "control character" },
	{ S("\xc2\x80"), "control character" },
	{ S("\xc2\x9f"), "control character" },
	{ S("\xc0\xaf"), "invalid UTF-8" },
	{ S("\xc0\x80"), "invalid UTF-8" },
	{ S("\xc1\xbf"), "invalid UTF-8" },
	{ S("\xe0\x80\xaf"), "invalid UTF-8" },
	{ S("\xe0\x9f\xbf"), "invalid UTF-8" },
	{ S("\xf0\x80\x80\xaf"), "invalid UTF-8" },
	{ S("\xf0\x8f\xbf\xbf"), "invalid UTF-8" },
	{ S("\xed\xa0\x80"), "invalid UTF-8" },
	{ S("\xed\xbf\xbf"), "invalid UTF-8" },
	{ S("\xed\xa0\xbd\xed\xb8\x80"), "invalid UTF-8" },
	{ S("\xf4\x90\x80\x80"), "invalid UTF-8" },
	{ S("\xf5\x80\x80\x80"), "invalid UTF-8" },
	{ S("\xf8\x88\x80\x80\x80"), "invalid UTF-8" },
	{ S("\xfe"), "invalid UTF-8" },
	{ S("\xff"), "invalid UTF-8" },
	{ S("\xe2\x82"), "invalid UTF-8" },
	{ S("a\xe2\x82/b"), "invalid UTF-8" },
	{ S("\xc3"), "invalid UTF-8" },
	{ S("\xf0\x9f\x98"), "invalid UTF-8" },
	{ S("\x80"), "invalid UTF-8" },
	{ S("a\xbf" "b"), "invalid UTF-8" },
	{ S("\xc3\xbc\xbc"), "invalid UTF-8" },
	{ S("\xe2\x28\xa1"), "invalid UTF-8" },
	{ S("a\\b"), "backslash" },
	{ S("\\"), "backslash" },
	{ S("..\\..\\windows"), "backslash" },
	{ S("C:\\x"), "backslash" },
	{ comp256, sizeof(comp256), "component longer than 255 bytes" },
	{ mid256, sizeof(mid256), "component longer than 255 bytes" },
	{ umlaut256, sizeof(umlaut256), "component longer than 255 bytes" },
	{ path1025, sizeof(path1025), "path longer than 1024 bytes" },
	{ flat1025, sizeof(flat1025), "path longer than 1024 bytes" },
};

static const struct named good[] = {
	{ S("a"), NULL },
	{ S("file.txt"), NULL },
	{ S("dir/sub/file.csv"), NULL },
	{ S("with space"), NULL },
	{ S(" leading and trailing "), NULL },
	{ S("\xc3\xbc"), NULL },                          /* ü */
	{ S("gr\xc3\xbc\xc3\x9f" "e/\xc3\xbc.txt"), NULL },   /* grüße/ü.txt */
	{ S("\xe6\x97\xa5\xe6\x9c\xac/\xe8\xaa\x9e.txt"), NULL }, /* 日本/語.txt */
	{ S("\xf0\x9f\x98\x80.png"), NULL },              /* emoji */
	{ S("..."), NULL },
	{ S("..a"), NULL },
	{ S("a.."), NULL },
	{ S(".hidden"), NULL },
	{ S("a/.hidden/b"), NULL },
	{ S("a/.../b"), NULL },
	{ S("~"), NULL },
	{ S("-rf"), NULL },
	{ S("a:b;c|d*e?f\"g<h>i"), NULL },
	{ S("\xc2\xa0"), NULL },                          /* U+00A0, first after C1 */
	{ S("\xc2\xbf"), NULL },
	{ S("\xdf\xbf"), NULL },                          /* U+07FF */
	{ S("\xe0\xa0\x80"), NULL },                      /* U+0800 */
	{ S("\xed\x9f\xbf"), NULL },                      /* U+D7FF */
	{ S("\xee\x80\x80"), NULL },                      /* U+E000 */
	{ S("\xef\xbf\xbd"), NULL },                      /* U+FFFD */
	{ S("\xf0\x90\x80\x80"), NULL },                  /* U+10000 */
	{ S("\xf4\x8f\xbf\xbf"), NULL },                  /* U+10FFFF */
	{ comp255, sizeof(comp255), NULL },
	{ umlaut255, sizeof(umlaut255), NULL },
	{ euro255, sizeof(euro255), NULL },
	{ path1024, sizeof(path1024), NULL },
};

/* Check a name from an exactly sized heap copy, so ASan sees any over-read. */
static int
check_exact(const char *name, size_t len, const char **reason)
{
	char *copy = malloc(len > 0 ? len : 1);
	int r;

	assert_non_null(copy);
	memcpy(copy, name, len);
	r = dd_path_check(copy, len, reason);
	free(copy);
	return r;
}

static void
test_path_check_rejects_hostile_table(void **state)
{
	const char *reason;
	size_t i;

	assert_true(sizeof(hostile) / sizeof(hostile[0]) >= 40);
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		reason = NULL;
		if (check_exact(hostile[i].name, hostile[i].len, &reason) != -EINVAL ||
		    reason == NULL || strcmp(reason, hostile[i].reason) != 0)
			fail_msg("hostile[%zu] (len %zu): want \"%s\", got \"%s\"", i,
				 hostile[i].len, hostile[i].reason,
				 reason ? reason : "(accepted)");
		/* Without a reason pointer it still rejects. */
		assert_int_equal(check_exact(hostile[i].name, hostile[i].len, NULL),
				 -EINVAL);
	}
}

static void
test_path_check_accepts_good_table(void **state)
{
	const char *reason;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		reason = NULL;
		if (check_exact(good[i].name, good[i].len, &reason) != 0)
			fail_msg("good[%zu] (len %zu) rejected: %s", i, good[i].len,
				 reason);
		assert_null(reason); /* untouched on success */
	}
}

static void
test_path_check_null_path_is_empty(void **state)
{
	const char *reason = NULL;

	assert_int_equal(dd_path_check(NULL, 5, &reason), -EINVAL);
	assert_string_equal(reason, "empty path");
}

static void
test_path_check_len_excludes_bytes_beyond_it(void **state)
{
	const char *reason = NULL;

	/* Only len bytes count: what follows (here "/..") is not looked at. */
	assert_int_equal(dd_path_check("abc/..", 3, &reason), 0);
	assert_int_equal(dd_path_check("a/b", 1, &reason), 0);
	assert_int_equal(dd_path_check("a/b", 2, &reason), -EINVAL);
	assert_string_equal(reason, "trailing slash");
}

/* The reason a prefix of a good, slash-separated name must get (NULL: ok). */
static const char *
truncation_verdict(const char *name, size_t full, size_t k)
{
	if (k == 0)
		return "empty path";
	if (k < full && ((unsigned char)name[k] & 0xc0) == 0x80)
		return "invalid UTF-8"; /* cut inside a character */
	if (name[k - 1] == '/')
		return "trailing slash";
	return NULL;
}

static void
test_path_check_truncations_of_multibyte_names_are_consistent(void **state)
{
	static const struct named names[] = {
		{ S("\xc3\xbc"), NULL },
		{ S("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.txt"), NULL },
		{ S("\xf0\x9f\x98\x80/\xc3\xbcn\xc3\xaf.csv"), NULL },
		{ S("a\xe2\x82\xac" "b/\xf4\x8f\xbf\xbf"), NULL },
		{ S("\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"), NULL },
		{ euro255, sizeof(euro255), NULL },
		{ umlaut255, sizeof(umlaut255), NULL },
	};
	const char *reason, *again, *want;
	size_t i, k;
	int r1, r2;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (k = 0; k <= names[i].len; k++) {
			want = truncation_verdict(names[i].name, names[i].len, k);
			reason = NULL;
			again = NULL;
			r1 = check_exact(names[i].name, k, &reason);
			r2 = check_exact(names[i].name, k, &again);
			assert_int_equal(r1, r2);
			if (want == NULL) {
				if (r1 != 0)
					fail_msg("names[%zu] prefix %zu rejected: %s",
						 i, k, reason);
			} else {
				if (r1 != -EINVAL || strcmp(reason, want) != 0)
					fail_msg("names[%zu] prefix %zu: want \"%s\" got \"%s\"",
						 i, k, want, reason ? reason : "(accepted)");
				assert_string_equal(again, reason);
			}
		}
	}
}

/*
 * An independent, arithmetic model of the byte rules: decode any lead with
 * its announced length, then judge the code point. Returns the reason of the
 * first offending character or NULL. No '/' or '.' may be in s.
 */
static const char *
reference_bytes(const unsigned char *s, size_t len)
{
	static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
	size_t i = 0, need, j;
	uint32_t cp;

	while (i < len) {
		if (s[i] < 0x80) {
			cp = s[i];
			need = 0;
			if (cp == 0)
				return "NUL byte";
			if (cp < 0x20 || cp == 0x7f)
				return "control character";
			if (cp == '\\')
				return "backslash";
		} else if ((s[i] & 0xe0) == 0xc0) {
			cp = s[i] & 0x1f;
			need = 1;
		} else if ((s[i] & 0xf0) == 0xe0) {
			cp = s[i] & 0x0f;
			need = 2;
		} else if ((s[i] & 0xf8) == 0xf0) {
			cp = s[i] & 0x07;
			need = 3;
		} else {
			return "invalid UTF-8";
		}
		if (len - i - 1 < need)
			return "invalid UTF-8";
		for (j = 1; j <= need; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return "invalid UTF-8";
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return "invalid UTF-8";
		if (cp >= 0x80 && cp <= 0x9f)
			return "control character";
		i += need + 1;
	}
	return NULL;
}

/* Compare "x" + seq + "x" (so '.' cannot form a dot component) with the model. */
static void
compare_with_reference(const unsigned char *seq, size_t n)
{
	unsigned char buf[8];
	const char *reason = NULL, *want;
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		if (seq[i] == '/')
			return; /* structure, tested elsewhere */
	buf[0] = 'x';
	memcpy(buf + 1, seq, n);
	buf[n + 1] = 'x';
	want = reference_bytes(buf, n + 2);
	r = dd_path_check((const char *)buf, n + 2, &reason);
	if (want == NULL ? r != 0 : r != -EINVAL || strcmp(reason, want) != 0)
		fail_msg("%02x %02x %02x %02x (n %zu): want \"%s\" got \"%s\"",
			 seq[0], n > 1 ? seq[1] : 0, n > 2 ? seq[2] : 0,
			 n > 3 ? seq[3] : 0, n, want ? want : "(accepted)",
			 r == 0 ? "(accepted)" : reason);
}

static void
test_path_check_utf8_matches_reference_decoder(void **state)
{
	static const unsigned char tails[] = { 0x00, 0x41, 0x7f, 0x80, 0x8f,
					       0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff };
	unsigned char s[4];
	unsigned a, b, c, t;

	for (a = 0; a < 256; a++) {
		s[0] = (unsigned char)a;
		compare_with_reference(s, 1);
		for (b = 0; b < 256; b++) {
			s[1] = (unsigned char)b;
			compare_with_reference(s, 2);
			if (a < 0xc0)
				continue; /* a lone ASCII or continuation byte is covered */
			for (c = 0; c < 256; c++) {
				s[2] = (unsigned char)c;
				compare_with_reference(s, 3);
				if (a < 0xf0)
					continue;
				for (t = 0; t < sizeof(tails); t++) {
					s[3] = tails[t];
					compare_with_reference(s, 4);
				}
			}
		}
	}
}

/* --- dd_path_open_parent ------------------------------------------------ */

struct fsfix {
	char root[64];
	char outside[64];
	int rootfd;
};

static int
fsfix_setup(void **state)
{
	struct fsfix *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->root, "/tmp/test_path_root.XXXXXX");
	strcpy(f->outside, "/tmp/test_path_out.XXXXXX");
	if (mkdtemp(f->root) == NULL || mkdtemp(f->outside) == NULL)
		return -1;
	f->rootfd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->rootfd < 0)
		return -1;
	*state = f;
	return 0;
}

static int
remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static int
fsfix_teardown(void **state)
{
	struct fsfix *f = *state;
	int r = 0;

	close(f->rootfd);
	if (nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		r = -1;
	if (nftw(f->outside, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
		r = -1;
	free(f);
	return r;
}

/* True when fd is the directory at rel beneath rootfd (not following links). */
static bool
same_dir(int fd, int rootfd, const char *rel)
{
	struct stat a, b;

	if (fstat(fd, &a) < 0)
		return false;
	if (rel[0] == '\0') {
		if (fstat(rootfd, &b) < 0)
			return false;
	} else if (fstatat(rootfd, rel, &b, AT_SYMLINK_NOFOLLOW) < 0) {
		return false;
	}
	return S_ISDIR(a.st_mode) && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static bool
exists_at(int dirfd, const char *rel)
{
	struct stat st;

	return fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int
open_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static bool
is_symlink_refusal(int r)
{
	return r == -ELOOP || r == -ENOTDIR;
}

static void
test_path_open_parent_creates_nested_dirs(void **state)
{
	struct fsfix *f = *state;
	const char *path = "a/b/c/file.txt";
	const char *leaf = NULL;
	struct stat st;
	int dirfd = -2;

	assert_int_equal(dd_path_open_parent(f->rootfd, path, true, 0750, &dirfd,
					     &leaf), 0);
	assert_true(dirfd >= 0);
	assert_ptr_equal(leaf, path + 6);
	assert_string_equal(leaf, "file.txt");
	assert_true(same_dir(dirfd, f->rootfd, "a/b/c"));
	assert_true(fcntl(dirfd, F_GETFD) & FD_CLOEXEC);
	assert_false(exists_at(dirfd, "file.txt")); /* the leaf is not made */
	assert_int_equal(fstatat(f->rootfd, "a/b", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777 & ~(mode_t)0750, 0);
	close(dirfd);
}

static void
test_path_open_parent_works_when_dirs_exist(void **state)
{
	struct fsfix *f = *state;
	const char *path = "x/y/z";
	const char *leaf = NULL;
	int dirfd = -2;

	assert_int_equal(mkdirat(f->rootfd, "x", 0755), 0);
	assert_int_equal(mkdirat(f->rootfd, "x/y", 0755), 0);
	assert_int_equal(dd_path_open_parent(f->rootfd, path, false, 0, &dirfd,
					     &leaf), 0);
	assert_ptr_equal(leaf, path + 4);
	assert_true(same_dir(dirfd, f->rootfd, "x/y"));
	close(dirfd);

	/* create on existing directories changes nothing and succeeds. */
	assert_int_equal(dd_path_open_parent(f->rootfd, path, true, 0700, &dirfd,
					     &leaf), 0);
	assert_true(same_dir(dirfd, f->rootfd, "x/y"));
	close(dirfd);
}

static void
test_path_open_parent_missing_dir_without_create_fails(void **state)
{
	struct fsfix *f = *state;
	const char *leaf = "untouched";
	int dirfd = 99;

	assert_int_equal(dd_path_open_parent(f->rootfd, "nope/f", false, 0755,
					     &dirfd, &leaf), -ENOENT);
	assert_int_equal(dirfd, -1);
	assert_false(exists_at(f->rootfd, "nope"));
}

static void
test_path_open_parent_one_component_dups_root(void **state)
{
	struct fsfix *f = *state;
	const char *path = "only.txt";
	const char *leaf = NULL;
	int dirfd = -2;

	assert_int_equal(dd_path_open_parent(f->rootfd, path, false, 0, &dirfd,
					     &leaf), 0);
	assert_true(dirfd >= 0);
	assert_int_not_equal(dirfd, f->rootfd);
	assert_ptr_equal(leaf, path);
	assert_true(same_dir(dirfd, f->rootfd, ""));
	assert_true(fcntl(dirfd, F_GETFD) & FD_CLOEXEC);
	close(dirfd);
	/* rootfd is still ours and open. */
	assert_true(fcntl(f->rootfd, F_GETFD) >= 0);
}

static void
test_path_open_parent_refuses_symlinked_intermediate_dir(void **state)
{
	struct fsfix *f = *state;
	const char *leaf;
	int outfd, dirfd, r;
	bool create;

	outfd = open(f->outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(outfd >= 0);
	assert_int_equal(mkdirat(outfd, "sub", 0755), 0);
	assert_int_equal(symlinkat(f->outside, f->rootfd, "link"), 0);
	assert_int_equal(mkdirat(f->rootfd, "a", 0755), 0);
	assert_int_equal(symlinkat(f->outside, f->rootfd, "a/link"), 0);

	for (create = false; ; create = true) {
		dirfd = 7;
		r = dd_path_open_parent(f->rootfd, "link/sub/f", create, 0755,
					&dirfd, &leaf);
		assert_true(is_symlink_refusal(r));
		assert_int_equal(dirfd, -1);

		dirfd = 7;
		r = dd_path_open_parent(f->rootfd, "link/new/deeper/f", create,
					0755, &dirfd, &leaf);
		assert_true(is_symlink_refusal(r));
		assert_int_equal(dirfd, -1);

		dirfd = 7;
		r = dd_path_open_parent(f->rootfd, "a/link/new/f", create, 0755,
					&dirfd, &leaf);
		assert_true(is_symlink_refusal(r));
		assert_int_equal(dirfd, -1);
		if (create)
			break;
	}
	/* Nothing was made outside the root. */
	assert_false(exists_at(outfd, "new"));
	close(outfd);
}

static void
test_path_open_parent_refuses_symlink_leaf_dir(void **state)
{
	struct fsfix *f = *state;
	char target[128];
	const char *leaf;
	int outfd, dirfd, r;
	bool create;

	/* d/out -> outside, d/in -> a sibling inside root, dangling -> outside/gone */
	outfd = open(f->outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(outfd >= 0);
	assert_int_equal(mkdirat(f->rootfd, "d", 0755), 0);
	assert_int_equal(mkdirat(f->rootfd, "sibling", 0755), 0);
	assert_int_equal(symlinkat(f->outside, f->rootfd, "d/out"), 0);
	assert_int_equal(symlinkat("../sibling", f->rootfd, "d/in"), 0);
	snprintf(target, sizeof(target), "%s/gone", f->outside);
	assert_int_equal(symlinkat(target, f->rootfd, "d/dangling"), 0);

	for (create = false; ; create = true) {
		dirfd = 7;
		r = dd_path_open_parent(f->rootfd, "d/out/f", create, 0755, &dirfd,
					&leaf);
		assert_true(is_symlink_refusal(r));
		assert_int_equal(dirfd, -1);

		dirfd = 7;
		r = dd_path_open_parent(f->rootfd, "d/in/f", create, 0755, &dirfd,
					&leaf);
		assert_true(is_symlink_refusal(r));
		assert_int_equal(dirfd, -1);

		dirfd = 7;
		r = dd_path_open_parent(f->rootfd, "d/dangling/f", create, 0755,
					&dirfd, &leaf);
		assert_true(is_symlink_refusal(r));
		assert_int_equal(dirfd, -1);
		if (create)
			break;
	}
	/* mkdirat did not make the dangling link's target. */
	assert_false(exists_at(outfd, "gone"));
	close(outfd);
}

static void
test_path_open_parent_leaves_leaf_symlink_to_caller(void **state)
{
	struct fsfix *f = *state;
	const char *path = "e/leaflink";
	const char *leaf = NULL;
	int dirfd = -2;

	/* The leaf itself is not opened: the caller opens it with O_NOFOLLOW. */
	assert_int_equal(mkdirat(f->rootfd, "e", 0755), 0);
	assert_int_equal(symlinkat(f->outside, f->rootfd, "e/leaflink"), 0);
	assert_int_equal(dd_path_open_parent(f->rootfd, path, false, 0, &dirfd,
					     &leaf), 0);
	assert_ptr_equal(leaf, path + 2);
	assert_true(same_dir(dirfd, f->rootfd, "e"));
	assert_int_equal(openat(dirfd, leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), -1);
	assert_int_equal(errno, ELOOP);
	close(dirfd);
}

static void
test_path_open_parent_refuses_file_as_dir(void **state)
{
	struct fsfix *f = *state;
	const char *leaf;
	int fd, dirfd = 7;

	fd = openat(f->rootfd, "plain", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(dd_path_open_parent(f->rootfd, "plain/x", true, 0755,
					     &dirfd, &leaf), -ENOTDIR);
	assert_int_equal(dirfd, -1);
}

static void
test_path_open_parent_rejects_unchecked_paths(void **state)
{
	static const char *const bad[] = {
		"", "/etc/passwd", "../x", "a/../../x", "a//b", "a/", ".", "a\\b",
	};
	struct fsfix *f = *state;
	const char *leaf;
	size_t i;
	int dirfd;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dirfd = 7;
		assert_int_equal(dd_path_open_parent(f->rootfd, bad[i], true, 0755,
						     &dirfd, &leaf), -EINVAL);
		assert_int_equal(dirfd, -1);
	}
	dirfd = 7;
	assert_int_equal(dd_path_open_parent(f->rootfd, NULL, true, 0755, &dirfd,
					     &leaf), -EINVAL);
	assert_int_equal(dirfd, -1);
	assert_false(exists_at(f->rootfd, "a"));
}

static void
test_path_open_parent_closes_fds_on_every_path(void **state)
{
	struct fsfix *f = *state;
	const char *leaf;
	int before, dirfd, i;

	assert_int_equal(dd_path_open_parent(f->rootfd, "p/q/r/f", true, 0755,
					     &dirfd, &leaf), 0);
	close(dirfd);
	assert_int_equal(symlinkat(f->outside, f->rootfd, "p/q/link"), 0);

	before = open_fd_count();
	for (i = 0; i < 50; i++) {
		assert_int_equal(dd_path_open_parent(f->rootfd, "p/q/r/f", false, 0,
						     &dirfd, &leaf), 0);
		close(dirfd);
		assert_true(is_symlink_refusal(dd_path_open_parent(
			f->rootfd, "p/q/link/x/f", true, 0755, &dirfd, &leaf)));
		assert_int_equal(dd_path_open_parent(f->rootfd, "p/q/missing/f",
						     false, 0, &dirfd, &leaf),
				 -ENOENT);
		assert_int_equal(dd_path_open_parent(f->rootfd, "p/q/r/f/g/h", false,
						     0, &dirfd, &leaf), -ENOENT);
		assert_int_equal(dd_path_open_parent(f->rootfd, "..", false, 0,
						     &dirfd, &leaf), -EINVAL);
	}
	assert_int_equal(open_fd_count(), before);
}

static void
test_path_open_parent_tolerates_mkdir_races(void **state)
{
	enum { WORKERS = 8, ROUNDS = 200 };
	struct fsfix *f = *state;
	char path[64];
	const char *leaf;
	pid_t pid[WORKERS];
	int i, w, dirfd, status, bad;

	/* Workers build the same fresh trees at once; a lost mkdirat race
	 * (EEXIST) must not fail the open. */
	for (w = 0; w < WORKERS; w++) {
		pid[w] = fork();
		assert_true(pid[w] >= 0);
		if (pid[w] > 0)
			continue;
		bad = 0;
		for (i = 0; i < ROUNDS; i++) {
			snprintf(path, sizeof(path), "r%d/a/b/c/f", i);
			if (dd_path_open_parent(f->rootfd, path, true, 0755, &dirfd,
						&leaf) < 0)
				bad = 1;
			else
				close(dirfd);
		}
		_exit(bad);
	}
	for (w = 0; w < WORKERS; w++) {
		assert_int_equal(waitpid(pid[w], &status, 0), pid[w]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_true(exists_at(f->rootfd, "r0/a/b/c"));
}

static void
test_path_open_parent_bad_rootfd_fails_cleanly(void **state)
{
	const char *leaf;
	int dirfd = 7;

	assert_int_equal(dd_path_open_parent(-1, "f", false, 0, &dirfd, &leaf),
			 -EBADF);
	assert_int_equal(dirfd, -1);
	dirfd = 7;
	assert_int_equal(dd_path_open_parent(-1, "a/f", true, 0755, &dirfd,
					     &leaf), -EBADF);
	assert_int_equal(dirfd, -1);
}

/* --- dd_path_variant ---------------------------------------------------- */

static void
test_path_variant_table(void **state)
{
	static const struct {
		const char *leaf;
		unsigned n;
		const char *want;
	} cases[] = {
		{ "name.csv", 1, "name.1.csv" },
		{ "archive.tar.gz", 1, "archive.tar.1.gz" },
		{ "README", 1, "README.1" },
		{ ".profile", 1, ".profile.1" },
		{ ".config.json", 2, ".config.2.json" },
		{ "name.csv", 10, "name.10.csv" },
		{ "name.csv", 4294967295u, "name.4294967295.csv" },
		{ "name.", 3, "name.3." },
		{ "...", 1, "...1." },
		{ "a", 7, "a.7" },
		{ "\xc3\xbc.txt", 3, "\xc3\xbc.3.txt" },
		{ "with space.tar", 12, "with space.12.tar" },
	};
	char out[DD_PATH_COMPONENT_MAX + 1];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(out, 'X', sizeof(out));
		assert_int_equal(dd_path_variant(cases[i].leaf, cases[i].n, out,
						 sizeof(out)), 0);
		assert_string_equal(out, cases[i].want);
		assert_int_equal(dd_path_check(out, strlen(out), NULL), 0);
	}
}

static void
test_path_variant_rejects_too_long(void **state)
{
	char leaf[DD_PATH_COMPONENT_MAX + 1], out[DD_PATH_COMPONENT_MAX + 1];
	char small[11];

	/* 253 + ".1" = 255: fits exactly. */
	memset(leaf, 'a', 253);
	leaf[253] = '\0';
	assert_int_equal(dd_path_variant(leaf, 1, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 255);
	assert_int_equal(dd_path_check(out, strlen(out), NULL), 0);
	/* 253 + ".10" = 256: too long for a component, whatever out holds. */
	assert_int_equal(dd_path_variant(leaf, 10, out, sizeof(out)),
			 -ENAMETOOLONG);
	{
		char big[600];

		assert_int_equal(dd_path_variant(leaf, 10, big, sizeof(big)),
				 -ENAMETOOLONG);
	}
	/* 250 + ".csv" + ".1" = 256 */
	memset(leaf, 'b', 250);
	strcpy(leaf + 250, ".csv");
	assert_int_equal(dd_path_variant(leaf, 1, out, sizeof(out)),
			 -ENAMETOOLONG);
	/* A 255-byte leaf can never grow. */
	memset(leaf, 'c', 255);
	leaf[255] = '\0';
	assert_int_equal(dd_path_variant(leaf, 1, out, sizeof(out)),
			 -ENAMETOOLONG);

	/* "name.1.csv" is 10 bytes: needs 11 with the NUL. */
	assert_int_equal(dd_path_variant("name.csv", 1, small, 10), -ENAMETOOLONG);
	assert_int_equal(dd_path_variant("name.csv", 1, small, 0), -ENAMETOOLONG);
	assert_int_equal(dd_path_variant("name.csv", 1, small, 11), 0);
	assert_string_equal(small, "name.1.csv");
}

static void
test_path_variant_in_place_and_bad_args(void **state)
{
	char buf[DD_PATH_COMPONENT_MAX + 1] = "photo.jpeg";
	char out[32];

	assert_int_equal(dd_path_variant(buf, 5, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "photo.5.jpeg");
	assert_int_equal(dd_path_variant("x", 0, out, sizeof(out)), -EINVAL);
	assert_int_equal(dd_path_variant("", 1, out, sizeof(out)), -EINVAL);
	assert_int_equal(dd_path_variant(NULL, 1, out, sizeof(out)), -EINVAL);
	assert_int_equal(dd_path_variant("x", 1, NULL, 8), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_check_rejects_hostile_table),
		cmocka_unit_test(test_path_check_accepts_good_table),
		cmocka_unit_test(test_path_check_null_path_is_empty),
		cmocka_unit_test(test_path_check_len_excludes_bytes_beyond_it),
		cmocka_unit_test(test_path_check_truncations_of_multibyte_names_are_consistent),
		cmocka_unit_test(test_path_check_utf8_matches_reference_decoder),
		cmocka_unit_test_setup_teardown(test_path_open_parent_creates_nested_dirs,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_works_when_dirs_exist,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_missing_dir_without_create_fails,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_one_component_dups_root,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_refuses_symlinked_intermediate_dir,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_refuses_symlink_leaf_dir,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_leaves_leaf_symlink_to_caller,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_refuses_file_as_dir,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_rejects_unchecked_paths,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_closes_fds_on_every_path,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test_setup_teardown(test_path_open_parent_tolerates_mkdir_races,
						fsfix_setup, fsfix_teardown),
		cmocka_unit_test(test_path_open_parent_bad_rootfd_fails_cleanly),
		cmocka_unit_test(test_path_variant_table),
		cmocka_unit_test(test_path_variant_rejects_too_long),
		cmocka_unit_test(test_path_variant_in_place_and_bad_args),
	};

	fill_long_names();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
