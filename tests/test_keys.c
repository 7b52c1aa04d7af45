/* Unit tests for common/keys.c: key generation, strict loading, the key line parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"

#define GOLDEN_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0x00..0x1f */
#define S(lit) lit, sizeof(lit) - 1

/* A scratch directory per test; paths inside it. */
struct fs {
	char dir[64];
	char prefix[128]; /* dir/k */
	char key[160];    /* dir/k.key */
	char pub[160];    /* dir/k.pub */
	char err[512];
};

static int
fs_setup(void **state)
{
	struct fs *fs = calloc(1, sizeof(*fs));

	if (fs == NULL)
		return -1;
	strcpy(fs->dir, "/tmp/test_keys.XXXXXX");
	if (mkdtemp(fs->dir) == NULL)
		return -1;
	snprintf(fs->prefix, sizeof(fs->prefix), "%s/k", fs->dir);
	snprintf(fs->key, sizeof(fs->key), "%s.key", fs->prefix);
	snprintf(fs->pub, sizeof(fs->pub), "%s.pub", fs->prefix);
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

	nftw(fs->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fs);
	return 0;
}

static void
path_in(const struct fs *fs, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s", fs->dir, name);
}

/* Write exactly len bytes with exactly this mode (umask does not apply). */
static void
write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static size_t
read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, cap);
	close(fd);
	assert_true(n >= 0);
	return (size_t)n;
}

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---------------------------------------------------------------- generate */

static void
test_keys_generate_writes_pair_with_secret_mode_0600(void **state)
{
	struct fs *fs = *state;
	struct stat st;
	char text[256];
	size_t n;

	assert_int_equal(dd_keys_generate(fs->prefix, fs->err, sizeof(fs->err)), 0);
	assert_int_equal(lstat(fs->key, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(lstat(fs->pub, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 022, 0); /* 0644 minus the umask: never writable by others */

	n = read_file(fs->key, text, sizeof(text));
	assert_int_equal(n, strlen(DD_SECRET_TAG) + 1 + 44 + 1);
	assert_memory_equal(text, DD_SECRET_TAG " ", strlen(DD_SECRET_TAG) + 1);
	assert_int_equal(text[n - 1], '\n');
	n = read_file(fs->pub, text, sizeof(text));
	assert_int_equal(n, strlen(DD_PUBLIC_TAG) + 1 + 44 + 1);
	assert_memory_equal(text, DD_PUBLIC_TAG " ", strlen(DD_PUBLIC_TAG) + 1);
}

static void
test_keys_generate_refuses_to_overwrite(void **state)
{
	struct fs *fs = *state;
	char before_key[256], before_pub[256], after[256];
	size_t nk, np;

	assert_int_equal(dd_keys_generate(fs->prefix, fs->err, sizeof(fs->err)), 0);
	nk = read_file(fs->key, before_key, sizeof(before_key));
	np = read_file(fs->pub, before_pub, sizeof(before_pub));
	fs->err[0] = '\0';
	assert_int_equal(dd_keys_generate(fs->prefix, fs->err, sizeof(fs->err)), -EEXIST);
	assert_non_null(strstr(fs->err, fs->key));
	assert_non_null(strstr(fs->err, "refusing to overwrite"));
	assert_int_equal(read_file(fs->key, after, sizeof(after)), nk);
	assert_memory_equal(after, before_key, nk);
	assert_int_equal(read_file(fs->pub, after, sizeof(after)), np);
	assert_memory_equal(after, before_pub, np);
}

static void
test_keys_generate_with_existing_pub_leaves_no_secret_behind(void **state)
{
	struct fs *fs = *state;

	write_file(fs->pub, S("keep me\n"), 0644);
	assert_int_equal(dd_keys_generate(fs->prefix, fs->err, sizeof(fs->err)), -EEXIST);
	assert_non_null(strstr(fs->err, fs->pub));
	assert_false(exists(fs->key));
	assert_true(exists(fs->pub));
}

static void
test_keys_generate_does_not_follow_symlink(void **state)
{
	struct fs *fs = *state;
	char target[160];

	/* A dangling link where the secret goes must not create its target. */
	path_in(fs, "elsewhere", target, sizeof(target));
	assert_int_equal(symlink(target, fs->key), 0);
	assert_int_equal(dd_keys_generate(fs->prefix, fs->err, sizeof(fs->err)), -EEXIST);
	assert_false(exists(target));
	assert_false(exists(fs->pub));
}

static void
test_keys_generate_in_missing_dir_fails_cleanly(void **state)
{
	struct fs *fs = *state;
	char prefix[160];

	path_in(fs, "no/such/dir/k", prefix, sizeof(prefix));
	assert_int_equal(dd_keys_generate(prefix, fs->err, sizeof(fs->err)), -ENOENT);
	assert_non_null(strstr(fs->err, "no/such/dir/k.key"));
}

/* -------------------------------------------------------------------- load */

static void
test_keys_load_round_trip(void **state)
{
	struct fs *fs = *state;
	uint8_t secret[DD_KEY_BYTES], derived[DD_KEY_BYTES], pub[DD_KEY_BYTES];
	uint8_t check[DD_KEY_BYTES], zero[DD_KEY_BYTES] = { 0 };
	char fp1[17], fp2[17];

	assert_int_equal(dd_keys_generate(fs->prefix, fs->err, sizeof(fs->err)), 0);
	assert_int_equal(dd_keys_load_secret(fs->key, secret, derived, fs->err,
					     sizeof(fs->err)), 0);
	assert_int_equal(dd_keys_load_public(fs->pub, pub, fs->err, sizeof(fs->err)), 0);
	assert_memory_equal(derived, pub, DD_KEY_BYTES);
	assert_memory_not_equal(secret, zero, DD_KEY_BYTES);
	crypto_scalarmult_base(check, secret);
	assert_memory_equal(check, pub, DD_KEY_BYTES);

	dd_keys_fingerprint(pub, fp1);
	dd_keys_fingerprint(derived, fp2);
	assert_int_equal(strlen(fp1), 16);
	assert_string_equal(fp1, fp2);
	assert_int_equal(strspn(fp1, "0123456789abcdef"), 16);

	/* Two generations give two different keys. */
	snprintf(fs->prefix + strlen(fs->prefix), sizeof(fs->prefix) - strlen(fs->prefix), "2");
	assert_int_equal(dd_keys_generate(fs->prefix, fs->err, sizeof(fs->err)), 0);
	snprintf(fs->pub, sizeof(fs->pub), "%s.pub", fs->prefix);
	assert_int_equal(dd_keys_load_public(fs->pub, check, fs->err, sizeof(fs->err)), 0);
	assert_memory_not_equal(check, pub, DD_KEY_BYTES);
}

static void
test_keys_load_golden_files(void **state)
{
	struct fs *fs = *state;
	uint8_t key[DD_KEY_BYTES], pub[DD_KEY_BYTES], expect[DD_KEY_BYTES], derived[DD_KEY_BYTES];

	for (size_t i = 0; i < sizeof(expect); i++)
		expect[i] = (uint8_t)i;
	write_file(fs->key, S(DD_SECRET_TAG " " GOLDEN_B64 "\n"), 0600);
	write_file(fs->pub, S(DD_PUBLIC_TAG " " GOLDEN_B64 "\n"), 0644);
	assert_int_equal(dd_keys_load_secret(fs->key, key, pub, fs->err, sizeof(fs->err)), 0);
	assert_memory_equal(key, expect, DD_KEY_BYTES);
	crypto_scalarmult_base(derived, expect);
	assert_memory_equal(pub, derived, DD_KEY_BYTES);
	assert_int_equal(dd_keys_load_public(fs->pub, key, fs->err, sizeof(fs->err)), 0);
	assert_memory_equal(key, expect, DD_KEY_BYTES);
	/* Owner-only modes other than 0600 are fine. */
	assert_int_equal(chmod(fs->key, 0400), 0);
	assert_int_equal(dd_keys_load_secret(fs->key, key, pub, fs->err, sizeof(fs->err)), 0);
}

static void
test_keys_load_secret_refuses_group_or_world_access(void **state)
{
	struct fs *fs = *state;
	static const mode_t modes[] = { 0640, 0604, 0660, 0644, 0666, 0620, 0602, 0610, 0601,
					0700 | 0070, 0607 };
	uint8_t key[DD_KEY_BYTES], pub[DD_KEY_BYTES];

	write_file(fs->key, S(DD_SECRET_TAG " " GOLDEN_B64 "\n"), 0600);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		assert_int_equal(chmod(fs->key, modes[i]), 0);
		fs->err[0] = '\0';
		assert_int_equal(dd_keys_load_secret(fs->key, key, pub, fs->err, sizeof(fs->err)),
				 -EPERM);
		assert_non_null(strstr(fs->err, "chmod 600"));
		assert_non_null(strstr(fs->err, fs->key));
	}
	/* The public key has no permission rule. */
	write_file(fs->pub, S(DD_PUBLIC_TAG " " GOLDEN_B64 "\n"), 0666);
	assert_int_equal(dd_keys_load_public(fs->pub, key, fs->err, sizeof(fs->err)), 0);
}

static void
test_keys_load_refuses_symlink(void **state)
{
	struct fs *fs = *state;
	uint8_t key[DD_KEY_BYTES], pub[DD_KEY_BYTES];
	char link[160];

	assert_int_equal(dd_keys_generate(fs->prefix, fs->err, sizeof(fs->err)), 0);
	path_in(fs, "link.key", link, sizeof(link));
	assert_int_equal(symlink(fs->key, link), 0);
	fs->err[0] = '\0';
	assert_int_equal(dd_keys_load_secret(link, key, pub, fs->err, sizeof(fs->err)), -ELOOP);
	assert_non_null(strstr(fs->err, "symbolic link"));
	assert_non_null(strstr(fs->err, link));
	path_in(fs, "link.pub", link, sizeof(link));
	assert_int_equal(symlink(fs->pub, link), 0);
	assert_int_equal(dd_keys_load_public(link, key, fs->err, sizeof(fs->err)), -ELOOP);
	assert_non_null(strstr(fs->err, "symbolic link"));
}

static void
test_keys_load_refuses_directory_and_missing_file(void **state)
{
	struct fs *fs = *state;
	uint8_t key[DD_KEY_BYTES], pub[DD_KEY_BYTES];
	char dir[160];

	path_in(fs, "adir", dir, sizeof(dir));
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(dd_keys_load_secret(dir, key, pub, fs->err, sizeof(fs->err)), -EINVAL);
	assert_non_null(strstr(fs->err, "not a regular file"));
	assert_int_equal(dd_keys_load_public(dir, key, fs->err, sizeof(fs->err)), -EINVAL);
	assert_int_equal(dd_keys_load_secret(fs->key, key, pub, fs->err, sizeof(fs->err)),
			 -ENOENT);
	assert_non_null(strstr(fs->err, fs->key));
	assert_int_equal(dd_keys_load_public(fs->pub, key, fs->err, sizeof(fs->err)), -ENOENT);
}

static void
test_keys_load_refuses_malformed_files(void **state)
{
	struct fs *fs = *state;
	static const struct {
		const char *text;
		size_t len;
		const char *why;
	} bad[] = {
		{ S(DD_PUBLIC_TAG " " GOLDEN_B64 "\n"), "public key in the secret file" },
		{ S("DIODE-SECRET-KEY-V2 " GOLDEN_B64 "\n"), "other version" },
		{ S("diode-secret-key-v1 " GOLDEN_B64 "\n"), "lowercase tag" },
		{ S(DD_SECRET_TAG GOLDEN_B64 "\n"), "no space" },
		{ S(DD_SECRET_TAG "  " GOLDEN_B64 "\n"), "two spaces" },
		{ S(DD_SECRET_TAG "\t" GOLDEN_B64 "\n"), "tab" },
		{ S(" " DD_SECRET_TAG " " GOLDEN_B64 "\n"), "leading space" },
		{ S(DD_SECRET_TAG " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n"), "43 chars" },
		{ S(DD_SECRET_TAG " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==\n"), "45 chars" },
		{ S(DD_SECRET_TAG " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AAAA\n"),
		  "48 chars" },
		{ S(DD_SECRET_TAG " " GOLDEN_B64 "\nx"), "garbage after the line" },
		{ S(DD_SECRET_TAG " " GOLDEN_B64 " \n"), "trailing space" },
		{ S(DD_SECRET_TAG " " GOLDEN_B64 "\n\n"), "two newlines" },
		{ S(DD_SECRET_TAG " " GOLDEN_B64 "\r\n"), "CRLF" },
		{ S(DD_SECRET_TAG " " GOLDEN_B64 "\0"), "NUL after the line" },
		{ S(DD_SECRET_TAG " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-=\n"), "url-safe" },
		{ S(DD_SECRET_TAG " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd Hh=\n"), "inner space" },
		{ S(DD_SECRET_TAG "\n"), "no key" },
		{ S(DD_SECRET_TAG " \n"), "empty key" },
		{ S("\n"), "newline only" },
	};
	uint8_t key[DD_KEY_BYTES], pub[DD_KEY_BYTES];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(fs->key, bad[i].text, bad[i].len, 0600);
		fs->err[0] = '\0';
		if (dd_keys_load_secret(fs->key, key, pub, fs->err, sizeof(fs->err)) != -EINVAL)
			fail_msg("secret key file accepted: %s", bad[i].why);
		assert_non_null(strstr(fs->err, "not a diode secret key"));
		assert_non_null(strstr(fs->err, fs->key));
	}
	/* The secret line in the public file. */
	write_file(fs->pub, S(DD_SECRET_TAG " " GOLDEN_B64 "\n"), 0644);
	assert_int_equal(dd_keys_load_public(fs->pub, key, fs->err, sizeof(fs->err)), -EINVAL);
	assert_non_null(strstr(fs->err, "not a diode public key"));
}

static void
test_keys_load_refuses_empty_and_oversize_files(void **state)
{
	struct fs *fs = *state;
	uint8_t key[DD_KEY_BYTES], pub[DD_KEY_BYTES];
	char big[4096];

	write_file(fs->key, "", 0, 0600);
	assert_int_equal(dd_keys_load_secret(fs->key, key, pub, fs->err, sizeof(fs->err)), -EINVAL);
	assert_non_null(strstr(fs->err, "wrong size"));

	/* A valid line followed by padding up to 255 and 256 bytes. */
	memset(big, ' ', sizeof(big));
	memcpy(big, DD_SECRET_TAG " " GOLDEN_B64 "\n", strlen(DD_SECRET_TAG " " GOLDEN_B64 "\n"));
	write_file(fs->key, big, 255, 0600);
	assert_int_equal(dd_keys_load_secret(fs->key, key, pub, fs->err, sizeof(fs->err)), -EINVAL);
	assert_non_null(strstr(fs->err, "not a diode secret key"));
	write_file(fs->key, big, 256, 0600);
	assert_int_equal(dd_keys_load_secret(fs->key, key, pub, fs->err, sizeof(fs->err)), -EINVAL);
	assert_non_null(strstr(fs->err, "wrong size"));
	write_file(fs->key, big, sizeof(big), 0600);
	assert_int_equal(dd_keys_load_secret(fs->key, key, pub, fs->err, sizeof(fs->err)), -EINVAL);
	assert_non_null(strstr(fs->err, "wrong size"));
	write_file(fs->pub, big, sizeof(big), 0644);
	assert_int_equal(dd_keys_load_public(fs->pub, key, fs->err, sizeof(fs->err)), -EINVAL);
	assert_non_null(strstr(fs->err, "wrong size"));
}

/* ------------------------------------------------------------------- parse */

static void
test_keys_parse_golden(void **state)
{
	uint8_t key[DD_KEY_BYTES], expect[DD_KEY_BYTES];

	for (size_t i = 0; i < sizeof(expect); i++)
		expect[i] = (uint8_t)i;
	memset(key, 0xff, sizeof(key));
	assert_int_equal(dd_keys_parse(S(DD_PUBLIC_TAG " " GOLDEN_B64 "\n"), DD_PUBLIC_TAG, key),
			 0);
	assert_memory_equal(key, expect, DD_KEY_BYTES);
	memset(key, 0xff, sizeof(key));
	assert_int_equal(dd_keys_parse(S(DD_SECRET_TAG " " GOLDEN_B64), DD_SECRET_TAG, key), 0);
	assert_memory_equal(key, expect, DD_KEY_BYTES);
	/* All-ones key. */
	assert_int_equal(dd_keys_parse(S(DD_PUBLIC_TAG
					 " //////////////////////////////////////////8=\n"),
				       DD_PUBLIC_TAG, key), 0);
	memset(expect, 0xff, sizeof(expect));
	assert_memory_equal(key, expect, DD_KEY_BYTES);
	/* len, not a NUL, ends the text. */
	assert_int_equal(dd_keys_parse(DD_PUBLIC_TAG " " GOLDEN_B64 "\nmore",
				       strlen(DD_PUBLIC_TAG " " GOLDEN_B64 "\n"), DD_PUBLIC_TAG,
				       key), 0);
}

static void
test_keys_parse_rejects_every_truncation_and_wrong_tag(void **state)
{
	static const char line[] = DD_PUBLIC_TAG " " GOLDEN_B64 "\n";
	uint8_t key[DD_KEY_BYTES];

	/* Every cut but the one that only drops the newline. */
	for (size_t len = 0; len < sizeof(line) - 2; len++)
		assert_int_equal(dd_keys_parse(line, len, DD_PUBLIC_TAG, key), -EINVAL);
	assert_int_equal(dd_keys_parse(line, sizeof(line) - 2, DD_PUBLIC_TAG, key), 0);
	assert_int_equal(dd_keys_parse(line, sizeof(line) - 1, DD_SECRET_TAG, key), -EINVAL);
	assert_int_equal(dd_keys_parse(line, sizeof(line) - 1, "DIODE-PUBLIC-KEY", key), -EINVAL);
	assert_int_equal(dd_keys_parse(line, sizeof(line) - 1, DD_PUBLIC_TAG "X", key), -EINVAL);
}

static void
test_keys_parse_rejects_noncanonical_base64_and_wipes_key(void **state)
{
	static const char *const bad[] = {
		/* Non-zero bits in the padding position: decodes to the same bytes. */
		DD_PUBLIC_TAG " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",
		DD_PUBLIC_TAG " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh/=",
		/* '=' replaced by data: 33 bytes. */
		DD_PUBLIC_TAG " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8A",
		DD_PUBLIC_TAG " AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH==A",
		DD_PUBLIC_TAG " =AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
	};
	uint8_t key[DD_KEY_BYTES], zero[DD_KEY_BYTES] = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(key, 0xaa, sizeof(key));
		if (dd_keys_parse(bad[i], strlen(bad[i]), DD_PUBLIC_TAG, key) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_memory_equal(key, zero, DD_KEY_BYTES);
	}
}

static void
test_keys_parse_rejects_every_non_alphabet_byte_at_every_position(void **state)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
	char line[] = DD_PUBLIC_TAG " " GOLDEN_B64 "\n";
	const size_t start = strlen(DD_PUBLIC_TAG) + 1;
	uint8_t key[DD_KEY_BYTES];

	/* Bytes >= 0x80 included: libsodium 1.0.18 alone would read them as '/'. */
	for (size_t pos = start; pos < start + 44; pos++) {
		char saved = line[pos];

		for (unsigned c = 0; c < 256; c++) {
			if (c != 0 && memchr(alphabet, (int)c, sizeof(alphabet) - 1) != NULL)
				continue;
			line[pos] = (char)c;
			if (dd_keys_parse(line, sizeof(line) - 1, DD_PUBLIC_TAG, key) != -EINVAL)
				fail_msg("byte 0x%02x at offset %zu accepted", c, pos);
		}
		line[pos] = saved;
	}
	assert_int_equal(dd_keys_parse(line, sizeof(line) - 1, DD_PUBLIC_TAG, key), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define FS_TEST(fn) cmocka_unit_test_setup_teardown(fn, fs_setup, fs_teardown)
		FS_TEST(test_keys_generate_writes_pair_with_secret_mode_0600),
		FS_TEST(test_keys_generate_refuses_to_overwrite),
		FS_TEST(test_keys_generate_with_existing_pub_leaves_no_secret_behind),
		FS_TEST(test_keys_generate_does_not_follow_symlink),
		FS_TEST(test_keys_generate_in_missing_dir_fails_cleanly),
		FS_TEST(test_keys_load_round_trip),
		FS_TEST(test_keys_load_golden_files),
		FS_TEST(test_keys_load_secret_refuses_group_or_world_access),
		FS_TEST(test_keys_load_refuses_symlink),
		FS_TEST(test_keys_load_refuses_directory_and_missing_file),
		FS_TEST(test_keys_load_refuses_malformed_files),
		FS_TEST(test_keys_load_refuses_empty_and_oversize_files),
#undef FS_TEST
		cmocka_unit_test(test_keys_parse_golden),
		cmocka_unit_test(test_keys_parse_rejects_every_truncation_and_wrong_tag),
		cmocka_unit_test(test_keys_parse_rejects_noncanonical_base64_and_wipes_key),
		cmocka_unit_test(test_keys_parse_rejects_every_non_alphabet_byte_at_every_position),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
