/* libFuzzer harness for dd_progress_parse: an accepted line keeps every invariant and formats back identically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_progress_entry e;
	char path[DD_PROGRESS_LINE_MAX], reason[DD_PROGRESS_LINE_MAX], out[DD_PROGRESS_LINE_MAX];
	int n;

	if (dd_progress_parse(&e, (const char *)data, size) != 0) {
		if (e.path != NULL || e.size != 0 || e.id != 0)
			abort(); /* output not cleared */
		return 0;
	}
	if (e.done > e.size || e.pass >= e.passes || e.passes > 255 || e.path_len == 0 ||
	    (unsigned)e.state >= DD_PROGRESS_STATES)
		abort();
	if (memchr(e.path, '\t', e.path_len) != NULL || memchr(e.path, '\n', e.path_len) != NULL)
		abort();
	/* Round trip: formatting the parsed entry gives the input back. */
	memcpy(path, e.path, e.path_len);
	path[e.path_len] = '\0';
	memcpy(reason, e.reason, e.reason_len);
	reason[e.reason_len] = '\0';
	e.path = path;
	e.reason = reason;
	n = dd_progress_format(out, sizeof(out), &e);
	if (n < 0 || (size_t)n != size + 1 || memcmp(out, data, size) != 0)
		abort();
	return 0;
}
