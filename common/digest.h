/* SHA-256 file digests through OpenSSL libcrypto (SHA-NI accelerated where present). */
#ifndef DD_DIGEST_H
#define DD_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DD_DIGEST_LEN 32

struct dd_digest; /* opaque; reusable after final via reset */

int dd_digest_new(struct dd_digest **out);
void dd_digest_free(struct dd_digest *d);
void dd_digest_reset(struct dd_digest *d);
void dd_digest_update(struct dd_digest *d, const void *data, size_t len);
void dd_digest_final(struct dd_digest *d, uint8_t out[DD_DIGEST_LEN]);
/* Lowercase hex into out (65 bytes). */
void dd_digest_hex(const uint8_t digest[DD_DIGEST_LEN], char out[65]);

#endif
