/* MQTT records: one MQTT message (topic, payload, retain, QoS) inside one stream record (docs/PROTOCOL.md §11.6). */
#ifndef DD_MQTTREC_H
#define DD_MQTTREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Layout, version 1 (all of it inside one record of a stream channel):
 *
 *   0  magic    0x4d ('M')
 *   1  version  0x01
 *   2  flags    bit 0 retain, bits 1-2 QoS the bridge received it with
 *               (0..2), bits 3-7 zero
 *   3  topic length, u16 big-endian, >= 1
 *   5  topic    (topic length bytes)
 *      payload  (the rest of the record, 0 or more bytes)
 *
 * A topic is strict UTF-8 (no overlong forms, no surrogates), without NUL,
 * without the wildcards '+' and '#', and without control characters
 * (U+0001..U+001F, U+007F..U+009F, which MQTT says SHOULD NOT appear): a
 * topic name to publish to, that also fits a tab separated line.
 */

#define DD_MQTTREC_MAGIC 0x4d
#define DD_MQTTREC_VERSION 1
#define DD_MQTTREC_HDR_LEN 5
#define DD_MQTTREC_RETAIN 0x01
#define DD_MQTTREC_QOS_SHIFT 1
#define DD_MQTTREC_FLAGS_MASK 0x07

/* One message; the pointers belong to the caller (encode) or point into the
 * record (parse). topic is not NUL-terminated. */
struct dd_mqttrec {
	const char *topic;
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
	bool retain;
	uint8_t qos; /* 0..2 */
};

/* True when topic (len bytes) may be carried: see above. */
bool dd_mqttrec_topic_valid(const char *topic, size_t len);

/* Bytes the record of m takes. */
size_t dd_mqttrec_len(const struct dd_mqttrec *m);

/* Writes the record of m into out (cap bytes); returns its length, -EINVAL
 * for a topic that may not be carried or a QoS above 2, -EMSGSIZE when it
 * does not fit cap (or is longer than 65535 bytes). */
int dd_mqttrec_encode(uint8_t *out, size_t cap, const struct dd_mqttrec *m)
	__attribute__((warn_unused_result));

/* Parses a record strictly (magic, version, flags, topic length within the
 * record, topic rules); -EBADMSG otherwise, with m zeroed. */
int dd_mqttrec_parse(struct dd_mqttrec *m, const uint8_t *rec, size_t len)
	__attribute__((warn_unused_result));

/* Longest line dd_mqttrec_line writes for a record of rec_len bytes,
 * terminating NUL included. */
size_t dd_mqttrec_line_max(size_t rec_len);

/* The message as one text line for line-oriented sinks, without newline:
 * "TOPIC<TAB>R<TAB>BASE64(payload)" with R = 1 for retain, 0 otherwise, and
 * standard base64 with padding. Returns the line's length (NUL-terminated in
 * out), or -ENOSPC when cap is below dd_mqttrec_line_max. */
int dd_mqttrec_line(char *out, size_t cap, const struct dd_mqttrec *m)
	__attribute__((warn_unused_result));

#endif
