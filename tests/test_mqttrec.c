/* Unit tests for common/mqttrec.c: golden bytes, strict parsing (truncation, bit flips, oversize, bad topics), text lines. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqttrec.h"

static const uint8_t zeros[sizeof(struct dd_mqttrec)];

/* topic "plant/t1", payload "21.5", retain, QoS 1 */
static const uint8_t golden[] = {
	0x4d, 0x01, 0x03, 0x00, 0x08,                   /* magic, version, flags, topic length */
	'p', 'l', 'a', 'n', 't', '/', 't', '1', /* topic */
	'2', '1', '.', '5',                             /* payload */
};

static const struct dd_mqttrec golden_msg = {
	.topic = "plant/t1", .topic_len = 8, .payload = (const uint8_t *)"21.5",
	.payload_len = 4, .retain = true, .qos = 1,
};

static void
test_mqttrec_encode_golden(void **state)
{
	uint8_t out[64];

	(void)state;
	assert_int_equal(dd_mqttrec_len(&golden_msg), sizeof(golden));
	assert_int_equal(dd_mqttrec_encode(out, sizeof(out), &golden_msg), (int)sizeof(golden));
	assert_memory_equal(out, golden, sizeof(golden));
}

static void
test_mqttrec_parse_golden(void **state)
{
	struct dd_mqttrec m;

	(void)state;
	assert_int_equal(dd_mqttrec_parse(&m, golden, sizeof(golden)), 0);
	assert_int_equal(m.topic_len, 8);
	assert_memory_equal(m.topic, "plant/t1", 8);
	assert_int_equal(m.payload_len, 4);
	assert_memory_equal(m.payload, "21.5", 4);
	assert_true(m.retain);
	assert_int_equal(m.qos, 1);
}

static void
test_mqttrec_parse_empty_payload(void **state)
{
	static const uint8_t rec[] = { 0x4d, 0x01, 0x00, 0x00, 0x01, 'a' };
	struct dd_mqttrec m;

	(void)state;
	assert_int_equal(dd_mqttrec_parse(&m, rec, sizeof(rec)), 0);
	assert_int_equal(m.payload_len, 0);
	assert_false(m.retain);
	assert_int_equal(m.qos, 0);
}

static void
test_mqttrec_parse_rejects_every_truncation(void **state)
{
	struct dd_mqttrec m;

	(void)state;
	/* Cut inside the header or the topic: refused. Cut in the payload, the
	 * record is still well-formed (a shorter payload): the stream framing,
	 * not this layout, carries the record's length. */
	for (size_t len = 0; len < DD_MQTTREC_HDR_LEN + 8; len++) {
		assert_int_equal(dd_mqttrec_parse(&m, golden, len), -EBADMSG);
		assert_memory_equal(&m, zeros, sizeof(m));
	}
	for (size_t len = DD_MQTTREC_HDR_LEN + 8; len <= sizeof(golden); len++) {
		assert_int_equal(dd_mqttrec_parse(&m, golden, len), 0);
		assert_int_equal(m.payload_len, len - DD_MQTTREC_HDR_LEN - 8);
	}
}

static void
test_mqttrec_parse_rejects_header_bit_flips(void **state)
{
	uint8_t rec[sizeof(golden)];
	struct dd_mqttrec m;

	(void)state;
	for (size_t bit = 0; bit < 8 * DD_MQTTREC_HDR_LEN; bit++) {
		int rc;

		memcpy(rec, golden, sizeof(rec));
		rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		rc = dd_mqttrec_parse(&m, rec, sizeof(rec));
		if (bit == 16) { /* the retain flag */
			assert_int_equal(rc, 0);
			assert_false(m.retain);
		} else if (bit == 17) { /* QoS 1 -> 0 */
			assert_int_equal(rc, 0);
			assert_int_equal(m.qos, 0);
		} else if (bit == 18) { /* QoS 1 -> 3 */
			assert_int_equal(rc, -EBADMSG);
		} else if (bit >= 32 && rec[4] >= 1 && rec[4] <= sizeof(golden) - DD_MQTTREC_HDR_LEN) {
			/* Another topic length that fits: "plant/t121.5" has only
			 * valid characters, so the record is still well-formed. */
			assert_int_equal(rc, 0);
			assert_int_equal(m.topic_len, rec[4]);
		} else {
			assert_int_equal(rc, -EBADMSG);
			assert_memory_equal(&m, zeros, sizeof(m));
		}
	}
}

static void
test_mqttrec_parse_rejects_bad_topics(void **state)
{
	static const char *const bad[] = {
		"a+b", "a/#", "a\tb", "a\nb", "a\x7f", "\xc2\x80", "\xc2\x9f", /* C1 */
		"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff",
		"\xe2\x82", /* cut sequence */
	};
	uint8_t rec[64];
	struct dd_mqttrec m;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t tl = strlen(bad[i]);

		rec[0] = 0x4d;
		rec[1] = 0x01;
		rec[2] = 0;
		rec[3] = 0;
		rec[4] = (uint8_t)tl;
		memcpy(rec + 5, bad[i], tl);
		assert_int_equal(dd_mqttrec_parse(&m, rec, 5 + tl), -EBADMSG);
		assert_false(dd_mqttrec_topic_valid(bad[i], tl));
	}
	/* NUL inside, and the empty topic */
	memcpy(rec, "\x4d\x01\x00\x00\x03" "a\0b", 8);
	assert_int_equal(dd_mqttrec_parse(&m, rec, 8), -EBADMSG);
	memcpy(rec, "\x4d\x01\x00\x00\x00" "ab", 7);
	assert_int_equal(dd_mqttrec_parse(&m, rec, 7), -EBADMSG);
	/* UTF-8 that is fine: é, €, U+10000, '$SYS'-like and spaces */
	assert_true(dd_mqttrec_topic_valid("caf\xc3\xa9/\xe2\x82\xac/\xf0\x90\x80\x80", 14));
	assert_true(dd_mqttrec_topic_valid("$x/a b", 6));
	assert_true(dd_mqttrec_topic_valid("\xc2\xa0", 2));
}

static void
test_mqttrec_oversize(void **state)
{
	size_t big = 65536;
	uint8_t *rec = calloc(1, big + 16);
	char *topic = malloc(big);
	struct dd_mqttrec m = { .topic = "t", .topic_len = 1 };

	(void)state;
	assert_non_null(rec);
	assert_non_null(topic);
	memset(topic, 'a', big);
	/* The longest record: 65535 bytes, accepted; one more: refused. */
	m.payload = (const uint8_t *)topic;
	m.payload_len = 65535 - DD_MQTTREC_HDR_LEN - 1;
	assert_int_equal(dd_mqttrec_encode(rec, big + 16, &m), 65535);
	assert_int_equal(dd_mqttrec_parse(&m, rec, 65535), 0);
	assert_int_equal(dd_mqttrec_parse(&m, rec, 65536), -EBADMSG);
	m = (struct dd_mqttrec){ .topic = "t", .topic_len = 1, .payload = (const uint8_t *)topic,
				 .payload_len = 65535 - DD_MQTTREC_HDR_LEN };
	assert_int_equal(dd_mqttrec_encode(rec + 8, big, &m), -EMSGSIZE);
	/* Does not fit the caller's buffer. */
	m.payload_len = 10;
	assert_int_equal(dd_mqttrec_encode(rec + 8, 15, &m), -EMSGSIZE);
	assert_int_equal(dd_mqttrec_encode(rec + 8, 16, &m), 16);
	/* A topic longer than a record can hold, and a topic length beyond the record. */
	assert_false(dd_mqttrec_topic_valid(topic, 65535));
	m = (struct dd_mqttrec){ .topic = topic, .topic_len = 65535 };
	assert_int_equal(dd_mqttrec_encode(rec, big + 16, &m), -EINVAL);
	memcpy(rec, "\x4d\x01\x00\xff\xff" "abc", 8);
	assert_int_equal(dd_mqttrec_parse(&m, rec, 8), -EBADMSG);
	/* QoS above 2, and a bad topic, refused when encoding. */
	m = golden_msg;
	m.qos = 3;
	assert_int_equal(dd_mqttrec_encode(rec, big, &m), -EINVAL);
	m = golden_msg;
	m.topic = "a/+";
	m.topic_len = 3;
	assert_int_equal(dd_mqttrec_encode(rec, big, &m), -EINVAL);
	free(rec);
	free(topic);
}

static void
test_mqttrec_round_trip(void **state)
{
	uint8_t payload[300], rec[400];
	struct dd_mqttrec m, back;
	int len;

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	for (size_t n = 0; n < sizeof(payload); n += 37) {
		m = (struct dd_mqttrec){ .topic = "a/b/c", .topic_len = 5, .payload = payload,
					 .payload_len = n, .retain = n % 2, .qos = (uint8_t)(n % 3) };
		len = dd_mqttrec_encode(rec, sizeof(rec), &m);
		assert_int_equal(len, (int)(5 + 5 + n));
		assert_int_equal(dd_mqttrec_parse(&back, rec, (size_t)len), 0);
		assert_int_equal(back.payload_len, n);
		assert_memory_equal(back.payload, payload, n);
		assert_int_equal(back.retain, m.retain);
		assert_int_equal(back.qos, m.qos);
	}
}

static void
test_mqttrec_line(void **state)
{
	char line[128];
	struct dd_mqttrec m = golden_msg;
	static const char *const want[] = { "", "YQ==", "YWI=", "YWJj", "YWJjZA==" };

	(void)state;
	assert_int_equal(dd_mqttrec_line(line, sizeof(line), &m), 19);
	assert_string_equal(line, "plant/t1\t1\tMjEuNQ==");
	m.retain = false;
	for (size_t n = 0; n < 5; n++) {
		char expect[64];

		m.payload = (const uint8_t *)"abcd";
		m.payload_len = n;
		snprintf(expect, sizeof(expect), "plant/t1\t0\t%s", want[n]);
		assert_int_equal(dd_mqttrec_line(line, sizeof(line), &m), (int)strlen(expect));
		assert_string_equal(line, expect);
		assert_true(strlen(expect) + 1 <= dd_mqttrec_line_max(dd_mqttrec_len(&m)));
		/* One byte short: refused. */
		assert_int_equal(dd_mqttrec_line(line, strlen(expect), &m), -ENOSPC);
	}
	/* Binary payload with newlines: the line has none. */
	m.payload = (const uint8_t *)"\n\n\n\xff";
	m.payload_len = 4;
	assert_true(dd_mqttrec_line(line, sizeof(line), &m) > 0);
	assert_null(strchr(line, '\n'));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mqttrec_encode_golden),
		cmocka_unit_test(test_mqttrec_parse_golden),
		cmocka_unit_test(test_mqttrec_parse_empty_payload),
		cmocka_unit_test(test_mqttrec_parse_rejects_every_truncation),
		cmocka_unit_test(test_mqttrec_parse_rejects_header_bit_flips),
		cmocka_unit_test(test_mqttrec_parse_rejects_bad_topics),
		cmocka_unit_test(test_mqttrec_oversize),
		cmocka_unit_test(test_mqttrec_round_trip),
		cmocka_unit_test(test_mqttrec_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
