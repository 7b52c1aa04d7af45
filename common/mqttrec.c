/* MQTT records: encoding, strict parsing, and the text line of line-oriented sinks. */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "mqttrec.h"

#define RECORD_MAX 65535 /* DD_RECORD_MAX: the longest record a block carries */

/* Length of the UTF-8 sequence at s (at most n bytes) when it is a code
 * point a topic may hold, else 0. */
static size_t
topic_char_len(const unsigned char *s, size_t n)
{
	if (s[0] < 0x80)
		return s[0] >= 0x20 && s[0] != 0x7f && s[0] != '+' && s[0] != '#' ? 1 : 0;
	return dd_utf8_len(s, n);
}

bool
dd_mqttrec_topic_valid(const char *topic, size_t len)
{
	const unsigned char *s = (const unsigned char *)topic;
	size_t i = 0;

	if (len == 0 || len > RECORD_MAX - DD_MQTTREC_HDR_LEN)
		return false;
	while (i < len) {
		size_t n = topic_char_len(s + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

size_t
dd_mqttrec_len(const struct dd_mqttrec *m)
{
	return DD_MQTTREC_HDR_LEN + m->topic_len + m->payload_len;
}

int
dd_mqttrec_encode(uint8_t *out, size_t cap, const struct dd_mqttrec *m)
{
	size_t len;

	if (m->qos > 2 || !dd_mqttrec_topic_valid(m->topic, m->topic_len))
		return -EINVAL;
	if (m->payload_len > RECORD_MAX)
		return -EMSGSIZE;
	len = dd_mqttrec_len(m);
	if (len > RECORD_MAX || len > cap)
		return -EMSGSIZE;
	out[0] = DD_MQTTREC_MAGIC;
	out[1] = DD_MQTTREC_VERSION;
	out[2] = (uint8_t)((m->retain ? DD_MQTTREC_RETAIN : 0) | m->qos << DD_MQTTREC_QOS_SHIFT);
	dd_store_be16(out + 3, (uint16_t)m->topic_len);
	memcpy(out + DD_MQTTREC_HDR_LEN, m->topic, m->topic_len);
	if (m->payload_len > 0)
		memcpy(out + DD_MQTTREC_HDR_LEN + m->topic_len, m->payload, m->payload_len);
	return (int)len;
}

int
dd_mqttrec_parse(struct dd_mqttrec *m, const uint8_t *rec, size_t len)
{
	size_t tlen;
	uint8_t qos;

	memset(m, 0, sizeof(*m));
	if (len < DD_MQTTREC_HDR_LEN + 1 || len > RECORD_MAX)
		return -EBADMSG;
	if (rec[0] != DD_MQTTREC_MAGIC || rec[1] != DD_MQTTREC_VERSION ||
	    (rec[2] & ~DD_MQTTREC_FLAGS_MASK) != 0)
		return -EBADMSG;
	qos = (uint8_t)((rec[2] >> DD_MQTTREC_QOS_SHIFT) & 3);
	tlen = dd_load_be16(rec + 3);
	if (qos > 2 || tlen > len - DD_MQTTREC_HDR_LEN ||
	    !dd_mqttrec_topic_valid((const char *)rec + DD_MQTTREC_HDR_LEN, tlen))
		return -EBADMSG;
	m->topic = (const char *)rec + DD_MQTTREC_HDR_LEN;
	m->topic_len = tlen;
	m->payload = rec + DD_MQTTREC_HDR_LEN + tlen;
	m->payload_len = len - DD_MQTTREC_HDR_LEN - tlen;
	m->retain = (rec[2] & DD_MQTTREC_RETAIN) != 0;
	m->qos = qos;
	return 0;
}

size_t
dd_mqttrec_line_max(size_t rec_len)
{
	/* topic + payload <= rec_len; base64 takes 4 bytes per 3, rounded up */
	return rec_len + (rec_len + 2) / 3 * 2 + 4 + 8;
}

int
dd_mqttrec_line(char *out, size_t cap, const struct dd_mqttrec *m)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = m->payload;
	size_t n = m->payload_len, need, o;

	need = m->topic_len + 3 + (n + 2) / 3 * 4 + 1;
	if (need > cap)
		return -ENOSPC;
	memcpy(out, m->topic, m->topic_len);
	o = m->topic_len;
	out[o++] = '\t';
	out[o++] = m->retain ? '1' : '0';
	out[o++] = '\t';
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = '\0';
	return (int)o;
}
