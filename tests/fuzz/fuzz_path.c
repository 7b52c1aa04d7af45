/* libFuzzer harness for dd_path_check and dd_path_variant: accepted paths must keep every invariant. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_component(const uint8_t *c, size_t n)
{
	if (n == 0 || n > DD_PATH_COMPONENT_MAX)
		abort();
	if (n == 1 && c[0] == '.')
		abort();
	if (n == 2 && c[0] == '.' && c[1] == '.')
		abort();
}

static void
check_variant(const uint8_t *leaf, size_t n, unsigned attempt)
{
	char name[DD_PATH_COMPONENT_MAX + 1], out[DD_PATH_COMPONENT_MAX + 1];
	size_t outlen;
	int r;

	memcpy(name, leaf, n);
	name[n] = '\0';
	r = dd_path_variant(name, attempt, out, sizeof(out));
	if (r == -ENAMETOOLONG)
		return;
	if (r != 0)
		abort();
	/* The variant grew, is itself a safe single component, and leaf is intact. */
	outlen = strlen(out);
	if (outlen <= n || outlen > DD_PATH_COMPONENT_MAX)
		abort();
	if (memchr(out, '/', outlen) != NULL)
		abort();
	if (dd_path_check(out, outlen, NULL) != 0)
		abort();
	if (memcmp(name, leaf, n) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *reason = NULL;
	size_t i, start = 0;
	unsigned attempt;

	if (dd_path_check((const char *)data, size, &reason) != 0) {
		if (reason == NULL || reason[0] == '\0')
			abort();
		return 0;
	}
	if (reason != NULL)
		abort();
	if (size == 0 || size > DD_PATH_MAX)
		abort();
	if (data[0] == '/' || data[size - 1] == '/')
		abort();
	for (i = 0; i < size; i++) {
		if (data[i] < 0x20 || data[i] == 0x7f || data[i] == '\\')
			abort();
		/* C1 controls U+0080..U+009F are encoded as C2 80..C2 9F. */
		if (data[i] == 0xc2 && i + 1 < size && data[i + 1] <= 0x9f)
			abort();
		if (data[i] == '/') {
			check_component(data + start, i - start);
			start = i + 1;
		}
	}
	check_component(data + start, size - start);

	attempt = size > 1 ? 1u + data[0] * 257u + data[1] : 1u;
	check_variant(data + start, size - start, attempt);
	check_variant(data + start, size - start, 4294967295u);
	return 0;
}
