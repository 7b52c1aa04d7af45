/* libFuzzer harness for common/mqttrec.c: the MQTT record parser, round trips and text lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mqttrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t zeros[sizeof(struct dd_mqttrec)];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_mqttrec m;
	uint8_t *rec, *out;
	char *line;
	size_t lmax;
	int len;

	/* A heap copy of exactly size bytes, so ASan sees overreads. */
	rec = malloc(size > 0 ? size : 1);
	if (rec == NULL)
		abort();
	if (size > 0)
		memcpy(rec, data, size);
	if (dd_mqttrec_parse(&m, rec, size) != 0) {
		if (memcmp(&m, zeros, sizeof(m)) != 0)
			abort();
		free(rec);
		return 0;
	}
	if (m.topic_len == 0 || m.qos > 2 || dd_mqttrec_len(&m) != size ||
	    (const uint8_t *)m.topic != rec + DD_MQTTREC_HDR_LEN ||
	    !dd_mqttrec_topic_valid(m.topic, m.topic_len) ||
	    memchr(m.topic, '\t', m.topic_len) != NULL || memchr(m.topic, '\n', m.topic_len) != NULL)
		abort();
	/* Encoding what was parsed gives the same bytes back. */
	out = malloc(size);
	if (out == NULL)
		abort();
	len = dd_mqttrec_encode(out, size, &m);
	if (len != (int)size || memcmp(out, rec, size) != 0)
		abort();
	/* The text line fits its bound and has no newline. */
	lmax = dd_mqttrec_line_max(size);
	line = malloc(lmax);
	if (line == NULL)
		abort();
	len = dd_mqttrec_line(line, lmax, &m);
	if (len < 0 || (size_t)len + 1 > lmax || memchr(line, '\n', (size_t)len) != NULL)
		abort();
	free(line);
	free(out);
	free(rec);
	return 0;
}
