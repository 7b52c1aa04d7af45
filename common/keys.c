/* Key files: generation, strict loading and fingerprints. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"

#define KEY_FILE_MAX 256

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
format_key(char *out, size_t outlen, const char *tag, const uint8_t *key)
{
	char b64[sodium_base64_ENCODED_LEN(DD_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL)];

	sodium_bin2base64(b64, sizeof(b64), key, DD_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
	return snprintf(out, outlen, "%s %s\n", tag, b64);
}

int
dd_keys_generate(const char *prefix, char *err, size_t errlen)
{
	char key_path[4096], pub_path[4096], line[KEY_FILE_MAX];
	uint8_t *secret = NULL, public_key[DD_KEY_BYTES];
	int key_fd = -1, pub_fd = -1, rc = 0, len;

	if (snprintf(key_path, sizeof(key_path), "%s.key", prefix) >= (int)sizeof(key_path) ||
	    snprintf(pub_path, sizeof(pub_path), "%s.pub", prefix) >= (int)sizeof(pub_path)) {
		snprintf(err, errlen, "%s: key file prefix too long", prefix);
		return -ENAMETOOLONG;
	}
	secret = sodium_malloc(DD_KEY_BYTES);
	if (secret == NULL) {
		snprintf(err, errlen, "out of memory for the secret key");
		return -ENOMEM;
	}
	crypto_box_keypair(public_key, secret);
	key_fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (key_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s%s", key_path, strerror(errno),
			 errno == EEXIST ? " (refusing to overwrite a key: move it away or pick "
					   "another prefix)" : "");
		goto out;
	}
	pub_fd = open(pub_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (pub_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s%s", pub_path, strerror(errno),
			 errno == EEXIST ? " (refusing to overwrite a key: move it away or pick "
					   "another prefix)" : "");
		goto out;
	}
	len = format_key(line, sizeof(line), DD_SECRET_TAG, secret);
	rc = write_all(key_fd, line, (size_t)len);
	sodium_memzero(line, sizeof(line));
	if (rc == 0)
		rc = fsync(key_fd) < 0 ? -errno : 0;
	if (rc == 0) {
		len = format_key(line, sizeof(line), DD_PUBLIC_TAG, public_key);
		rc = write_all(pub_fd, line, (size_t)len);
	}
	if (rc == 0)
		rc = fsync(pub_fd) < 0 ? -errno : 0;
	if (rc != 0)
		snprintf(err, errlen, "%s: writing keys: %s", prefix, strerror(-rc));
out:
	if (key_fd >= 0)
		close(key_fd);
	if (pub_fd >= 0)
		close(pub_fd);
	if (rc != 0 && key_fd >= 0)
		unlink(key_path);
	if (rc != 0 && pub_fd >= 0)
		unlink(pub_path);
	sodium_free(secret);
	return rc;
}

int
dd_keys_parse(const char *text, size_t len, const char *tag, uint8_t *key)
{
	size_t tag_len = strlen(tag), b64_len;
	const char *b64, *end;
	size_t bin_len = 0;
	const char *b64_end = NULL;

	if (len < tag_len + 2 || memcmp(text, tag, tag_len) != 0 || text[tag_len] != ' ')
		return -EINVAL;
	b64 = text + tag_len + 1;
	end = text + len;
	if (end > b64 && end[-1] == '\n')
		end--;
	b64_len = (size_t)(end - b64);
	if (b64_len != sodium_base64_ENCODED_LEN(DD_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL) - 1)
		return -EINVAL;
	/* libsodium 1.0.18 decodes any byte >= 0x80 as '/' (signed char): refuse them. */
	for (size_t i = 0; i < b64_len; i++)
		if ((unsigned char)b64[i] >= 0x80)
			return -EINVAL;
	if (sodium_base642bin(key, DD_KEY_BYTES, b64, b64_len, NULL, &bin_len, &b64_end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bin_len != DD_KEY_BYTES || b64_end != end) {
		sodium_memzero(key, DD_KEY_BYTES);
		return -EINVAL;
	}
	return 0;
}

static int
read_key_file(const char *path, bool secret, char *buf, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		if (errno == ELOOP)
			snprintf(err, errlen, "%s: is a symbolic link; point the configuration "
				 "at the real key file", path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (secret && (st.st_mode & 077) != 0) {
		rc = -EPERM;
		snprintf(err, errlen, "%s: secret key is accessible by group or others "
			 "(mode %04o); run 'chmod 600 %s'", path,
			 (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size <= 0 || st.st_size >= KEY_FILE_MAX) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: wrong size for a key file (%lld bytes); generate "
			 "keys with diode-keygen", path, (long long)st.st_size);
		goto out;
	}
	n = read(fd, buf, KEY_FILE_MAX - 1);
	if (n < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	*len = (size_t)n;
out:
	close(fd);
	return rc;
}

int
dd_keys_load_secret(const char *path, uint8_t *secret, uint8_t *public_key,
		    char *err, size_t errlen)
{
	char buf[KEY_FILE_MAX];
	size_t len = 0;
	int rc;

	rc = read_key_file(path, true, buf, &len, err, errlen);
	if (rc == 0 && dd_keys_parse(buf, len, DD_SECRET_TAG, secret) != 0) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a diode secret key (expected one line '%s "
			 "<base64>'); generate one with diode-keygen", path, DD_SECRET_TAG);
	}
	sodium_memzero(buf, sizeof(buf));
	if (rc == 0)
		crypto_scalarmult_base(public_key, secret);
	return rc;
}

int
dd_keys_load_public(const char *path, uint8_t *public_key, char *err, size_t errlen)
{
	char buf[KEY_FILE_MAX];
	size_t len = 0;
	int rc;

	rc = read_key_file(path, false, buf, &len, err, errlen);
	if (rc == 0 && dd_keys_parse(buf, len, DD_PUBLIC_TAG, public_key) != 0) {
		rc = -EINVAL;
		snprintf(err, errlen, "%s: not a diode public key (expected one line '%s "
			 "<base64>'; the peer's PREFIX.pub from diode-keygen)", path,
			 DD_PUBLIC_TAG);
	}
	return rc;
}

void
dd_keys_fingerprint(const uint8_t *public_key, char out[17])
{
	uint8_t h[8];

	crypto_generichash(h, sizeof(h), public_key, DD_KEY_BYTES, NULL, 0);
	sodium_bin2hex(out, 17, h, sizeof(h));
}
