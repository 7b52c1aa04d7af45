/* Key files: X25519 key pairs stored as one-line text files, checked strictly on load. */
#ifndef DD_KEYS_H
#define DD_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define DD_KEY_BYTES 32
#define DD_SECRET_TAG "DIODE-SECRET-KEY-V1"
#define DD_PUBLIC_TAG "DIODE-PUBLIC-KEY-V1"

/*
 * Secret key: PREFIX.key, mode 0600, "DIODE-SECRET-KEY-V1 <base64 of 32 bytes>\n".
 * Public key: PREFIX.pub, "DIODE-PUBLIC-KEY-V1 <base64 of 32 bytes>\n".
 * Errors are written into err as a full sentence naming the file and what to do.
 */

/* Write PREFIX.key and PREFIX.pub; refuses to overwrite either (-EEXIST). */
int dd_keys_generate(const char *prefix, char *err, size_t errlen);

/* Load a secret key into out (caller provides sodium_malloc'ed memory) and
 * derive its public key. Refuses symlinks, non-regular files, group/world
 * access, wrong size or format. */
int dd_keys_load_secret(const char *path, uint8_t *secret, uint8_t *public_key,
			char *err, size_t errlen);
/* Load a public key (no permission rule, but no symlink, regular file). */
int dd_keys_load_public(const char *path, uint8_t *public_key, char *err, size_t errlen);

/* Parse one key line (exported for tests and the fuzzer). */
int dd_keys_parse(const char *text, size_t len, const char *tag, uint8_t *key);

/* Short printable fingerprint of a public key: 16 hex chars. */
void dd_keys_fingerprint(const uint8_t *public_key, char out[17]);

#endif
