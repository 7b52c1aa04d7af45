/* SHA-256 through OpenSSL EVP. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include "digest.h"

struct dd_digest {
	EVP_MD_CTX *ctx;
};

int
dd_digest_new(struct dd_digest **out)
{
	struct dd_digest *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (d == NULL)
		return -ENOMEM;
	d->ctx = EVP_MD_CTX_new();
	if (d->ctx == NULL || EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
		dd_digest_free(d);
		return -ENOMEM;
	}
	*out = d;
	return 0;
}

void
dd_digest_free(struct dd_digest *d)
{
	if (d == NULL)
		return;
	EVP_MD_CTX_free(d->ctx);
	free(d);
}

void
dd_digest_reset(struct dd_digest *d)
{
	EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL);
}

void
dd_digest_update(struct dd_digest *d, const void *data, size_t len)
{
	EVP_DigestUpdate(d->ctx, data, len);
}

void
dd_digest_final(struct dd_digest *d, uint8_t out[DD_DIGEST_LEN])
{
	unsigned int n = DD_DIGEST_LEN;

	EVP_DigestFinal_ex(d->ctx, out, &n);
	EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL);
}

void
dd_digest_hex(const uint8_t digest[DD_DIGEST_LEN], char out[65])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < DD_DIGEST_LEN; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[64] = '\0';
}
