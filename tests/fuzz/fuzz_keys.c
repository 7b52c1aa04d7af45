/* libFuzzer harness for dd_keys_parse: whatever it accepts is the one canonical line for the key. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define B64_LEN (sodium_base64_ENCODED_LEN(DD_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL) - 1)

static void
check(const char *text, size_t len, const char *tag)
{
	uint8_t key[DD_KEY_BYTES], untouched[DD_KEY_BYTES], zero[DD_KEY_BYTES] = { 0 };
	char b64[B64_LEN + 1];
	size_t tag_len = strlen(tag), want;

	memset(untouched, 0xa5, sizeof(untouched));
	memcpy(key, untouched, sizeof(key));
	if (dd_keys_parse(text, len, tag, key) != 0) {
		/* Refused: the key is left alone or wiped, never half written. */
		if (memcmp(key, untouched, sizeof(key)) != 0 && memcmp(key, zero, sizeof(key)) != 0)
			abort();
		return;
	}
	/* Accepted: "TAG <canonical base64 of key>" with an optional final newline. */
	sodium_bin2base64(b64, sizeof(b64), key, DD_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
	want = tag_len + 1 + B64_LEN;
	if (!(len == want || (len == want + 1 && text[want] == '\n')))
		abort();
	if (memcmp(text, tag, tag_len) != 0 || text[tag_len] != ' ' ||
	    memcmp(text + tag_len + 1, b64, B64_LEN) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int initialized;
	char *text;

	if (!initialized) {
		if (sodium_init() < 0)
			abort();
		initialized = 1;
	}
	/* A heap copy of exactly size bytes: no NUL after it, so overreads show. */
	text = malloc(size > 0 ? size : 1);
	if (text == NULL)
		abort();
	memcpy(text, data, size);
	check(text, size, DD_SECRET_TAG);
	check(text, size, DD_PUBLIC_TAG);
	free(text);
	return 0;
}
