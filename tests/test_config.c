/* Unit tests for common/config.c: INI parsing, type checks, messages, getters. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define NAME "tx.conf"

static const struct dd_config_key schema[] = {
	{ .section = "link", .name = "rate", .type = DD_CFG_RATE, .required = true,
	  .min = UINT64_C(1000000), .max = UINT64_C(100000000000) },
	{ .section = "link", .name = "mtu", .type = DD_CFG_UINT, .fallback = "1500",
	  .min = 576, .max = 9000 },
	{ .section = "link", .name = "peer", .type = DD_CFG_HOSTPORT },
	{ .section = "link", .name = "peers", .type = DD_CFG_HOSTPORT, .list = true },
	{ .section = "link", .name = "fec", .type = DD_CFG_BOOL, .fallback = "yes" },
	{ .section = "queue", .name = "size", .type = DD_CFG_SIZE, .fallback = "64M", .min = 4096 },
	{ .section = "queue", .name = "policy", .type = DD_CFG_ENUM, .fallback = "drop-oldest",
	  .choices = "drop-oldest|drop-newest" },
	{ .section = "queue", .name = "timeout", .type = DD_CFG_DURATION, .fallback = "5s",
	  .max = UINT64_C(3600000) },
	{ .section = "tx", .name = "name", .type = DD_CFG_STRING },
	{ .section = "tx", .name = "tags", .type = DD_CFG_STRING, .list = true },
	{ .section = "channel.*", .name = "dir", .type = DD_CFG_STRING, .required = true },
	{ .section = "channel.*", .name = "rate", .type = DD_CFG_RATE, .fallback = "100M" },
	{ .section = "channel.*", .name = "priority", .type = DD_CFG_UINT, .fallback = "0", .max = 7 },
	{ .section = NULL },
};

/* Same, with nothing required: for tests about single values. */
static struct dd_config_key loose[sizeof(schema) / sizeof(schema[0])];

static const char good[] =
	"# diode-tx configuration\n"
	"; another comment style\n"
	"\n"
	"[link]\n"
	"rate = 9.5G\n"
	"  mtu=9000\t\n"
	"peer = [2001:db8::1]:5000\n"
	"peers = 192.0.2.1:5000, rx.example:5001 , [::1]:5002\n"
	"fec = off\n"
	"\n"
	"[queue]\n"
	"size = 1.5GiB\n"
	"policy = drop-newest\n"
	"timeout = 250ms\n"
	"\n"
	"[tx]\n"
	"name = \"  spaced \\\"name\\\" \\\\ \"\n"
	"tags = alpha, beta ,gamma\n"
	"\n"
	"[channel.hist]\n"
	"dir = /var/spool/hist\n"
	"rate = 10k\n"
	"\n"
	"[ channel.live-2 ]\n"
	"dir = /var/spool/live\n"
	"priority = 7\n";

#define assert_contains(hay, needle)                                                  \
	do {                                                                          \
		const char *hay_ = (hay), *needle_ = (needle);                        \
		if (strstr(hay_, needle_) == NULL)                                    \
			fail_msg("'%s' does not contain '%s'", hay_, needle_);        \
	} while (0)

static int
setup_loose(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(schema) / sizeof(schema[0]); i++) {
		loose[i] = schema[i];
		loose[i].required = false;
	}
	return 0;
}

static int
parse_with(const struct dd_config_key *keys, const char *text, size_t len,
	   struct dd_config **cfg, char *err, size_t errlen)
{
	return dd_config_parse(cfg, NAME, text, len, keys, err, errlen);
}

/* Parses text, expects failure with "tx.conf:LINE: " (or "tx.conf: ") and needle. */
static void
expect_error_with(const struct dd_config_key *keys, const char *text, size_t len,
		  unsigned line, const char *needle)
{
	struct dd_config *cfg = (struct dd_config *)1;
	char err[1024], prefix[64];
	int rc;

	rc = parse_with(keys, text, len, &cfg, err, sizeof(err));
	if (rc != -EINVAL)
		fail_msg("expected -EINVAL, got %d for:\n%s", rc, text);
	assert_null(cfg);
	if (line)
		snprintf(prefix, sizeof(prefix), NAME ":%u: ", line);
	else
		snprintf(prefix, sizeof(prefix), NAME ": ");
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("'%s' does not start with '%s'", err, prefix);
	assert_contains(err, needle);
}

static void
expect_text_error(const struct dd_config_key *keys, const char *text, unsigned line, const char *needle)
{
	expect_error_with(keys, text, strlen(text), line, needle);
}

static void
expect_error(const char *text, unsigned line, const char *needle)
{
	expect_error_with(schema, text, strlen(text), line, needle);
}

static void
expect_loose_error(const char *text, unsigned line, const char *needle)
{
	expect_error_with(loose, text, strlen(text), line, needle);
}

static struct dd_config *
parse_ok_with(const struct dd_config_key *keys, const char *text)
{
	struct dd_config *cfg = NULL;
	char err[1024] = "";
	int rc;

	rc = parse_with(keys, text, strlen(text), &cfg, err, sizeof(err));
	if (rc != 0)
		fail_msg("parse failed (%d): %s", rc, err);
	assert_non_null(cfg);
	return cfg;
}

static struct dd_config *
parse_loose(const char *text)
{
	return parse_ok_with(loose, text);
}

/* ---- a good file ---- */

static void
test_config_accepts_good_file_with_every_type_and_comments(void **state)
{
	struct dd_config *cfg = parse_ok_with(schema, good);
	char buf[64];

	assert_int_equal(dd_config_u64(cfg, "link", "rate"), UINT64_C(9500000000));
	assert_int_equal(dd_config_u64(cfg, "link", "mtu"), 9000);
	assert_string_equal(dd_config_str(cfg, "link", "mtu"), "9000");
	assert_string_equal(dd_config_str(cfg, "link", "peer"), "[2001:db8::1]:5000");
	assert_int_equal(dd_config_list_len(cfg, "link", "peers"), 3);
	assert_int_equal(dd_config_list_item(cfg, "link", "peers", 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "rx.example:5001");
	assert_false(dd_config_bool(cfg, "link", "fec"));
	assert_true(dd_config_has(cfg, "link", "fec"));
	assert_int_equal(dd_config_u64(cfg, "queue", "size"), UINT64_C(1610612736));
	assert_string_equal(dd_config_str(cfg, "queue", "policy"), "drop-newest");
	assert_int_equal(dd_config_u64(cfg, "queue", "timeout"), 250);
	assert_string_equal(dd_config_str(cfg, "tx", "name"), "  spaced \"name\" \\ ");
	assert_int_equal(dd_config_list_len(cfg, "tx", "tags"), 3);
	assert_string_equal(dd_config_str(cfg, "channel.hist", "dir"), "/var/spool/hist");
	assert_int_equal(dd_config_u64(cfg, "channel.hist", "rate"), 10000);
	assert_int_equal(dd_config_u64(cfg, "channel.live-2", "priority"), 7);
	assert_string_equal(dd_config_where(cfg, "link", "rate"), NAME ":5");
	assert_string_equal(dd_config_where(cfg, "link", "mtu"), NAME ":6");
	assert_string_equal(dd_config_where(cfg, "channel.live-2", "dir"), NAME ":25");
	dd_config_free(cfg);
}

static void
test_config_accepts_crlf_line_ends_and_byte_order_mark(void **state)
{
	struct dd_config *cfg = parse_ok_with(schema,
		"\xef\xbb\xbf[link]\r\nrate = 1G\r\n# comment\r\nfec = true\r\n");

	assert_int_equal(dd_config_u64(cfg, "link", "rate"), UINT64_C(1000000000));
	assert_true(dd_config_bool(cfg, "link", "fec"));
	assert_string_equal(dd_config_where(cfg, "link", "fec"), NAME ":4");
	dd_config_free(cfg);
}

static void
test_config_accepts_empty_file_when_nothing_is_required(void **state)
{
	struct dd_config *cfg = NULL;
	char err[256];

	assert_int_equal(dd_config_parse(&cfg, NAME, NULL, 0, loose, err, sizeof(err)), 0);
	assert_non_null(cfg);
	assert_false(dd_config_has(cfg, "tx", "name"));
	dd_config_free(cfg);
	dd_config_free(NULL);
}

/* ---- syntax errors ---- */

static void
test_config_rejects_unknown_key_with_file_and_line(void **state)
{
	expect_error("[link]\nrate = 1G\n\nfoo = 1\n", 4, "unknown key 'foo' in [link]");
	expect_error("[link]\nrate = 1G\nfoo = 1\n", 3, "(known keys: rate, mtu, peer, peers, fec)");
}

static void
test_config_unknown_key_says_which_section_it_belongs_in(void **state)
{
	expect_error("[link]\nrate = 1G\n[queue]\nmtu = 1500\n", 4,
		     "unknown key 'mtu' in [queue] ('mtu' belongs in [link])");
	expect_error("[link]\nrate = 1G\n[channel.a]\nmtu = 1500\n", 4, "in [channel.a]");
}

static void
test_config_rejects_unknown_section_and_lists_known_ones(void **state)
{
	expect_error("[link]\nrate = 1G\n[foo]\n", 3, "unknown section [foo]");
	expect_error("[foo]\n", 1, "known sections: [link], [queue], [tx], [channel.NAME]");
	expect_error("[channel]\n", 1, "unknown section [channel]");
}

static void
test_config_rejects_line_without_equals(void **state)
{
	expect_error("[link]\nrate = 1G\njust words\n", 3, "expected 'key = value', got 'just words'");
}

static void
test_config_rejects_line_without_key(void **state)
{
	expect_error("[link]\n = 1G\n", 2, "expected 'key = value'");
}

static void
test_config_rejects_key_before_any_section(void **state)
{
	expect_error("# header\nrate = 1G\n[link]\n", 2, "'rate' comes before any [section] header");
}

static void
test_config_rejects_duplicate_key_with_both_lines(void **state)
{
	expect_error("[link]\nrate = 1G\nmtu = 1500\nrate = 2G\n", 4,
		     "duplicate key 'rate' in [link] (first set at line 2)");
}

static void
test_config_rejects_duplicate_section_with_both_lines(void **state)
{
	expect_error("[link]\nrate = 1G\n\n[queue]\n[link]\n", 5,
		     "duplicate section [link] (first at line 1");
	expect_error("[channel.a]\ndir = x\n[channel.b]\ndir = y\n[channel.a]\n", 5,
		     "duplicate section [channel.a]");
}

static void
test_config_rejects_truncated_section_header(void **state)
{
	expect_error("[link]\nrate = 1G\n[link", 3, "section header '[link' has no closing ']'");
	expect_error("[", 1, "has no closing ']'");
}

static void
test_config_rejects_text_after_section_header(void **state)
{
	expect_error("[link] # the link\n", 1, "unexpected text '# the link' after the section header");
	expect_error("[]\n", 1, "empty section name");
}

static void
test_config_rejects_bad_channel_names(void **state)
{
	char text[128];

	expect_error("[channel.]\n", 1, "bad section name [channel.] (expected [channel.NAME]");
	expect_error("[channel.a b]\n", 1, "bad section name [channel.a b]");
	expect_error("[channel.a/b]\n", 1, "bad section name");
	snprintf(text, sizeof(text), "[channel.%065d]\n", 0);
	expect_error(text, 1, "1 to 64 letters");
}

static void
test_config_accepts_channel_name_of_64_characters(void **state)
{
	struct dd_config *cfg;
	char text[128], name[80];

	snprintf(name, sizeof(name), "channel.%064d", 0);
	snprintf(text, sizeof(text), "[%s]\ndir = d\n", name);
	cfg = parse_loose(text);
	assert_string_equal(dd_config_str(cfg, name, "dir"), "d");
	dd_config_free(cfg);
}

static void
test_config_rejects_nul_byte_with_line(void **state)
{
	static const char text[] = "[link]\nrate = 1G\nmtu = 15\0000\n";

	expect_error_with(schema, text, sizeof(text) - 1, 3, "NUL byte");
}

static void
test_config_rejects_line_longer_than_4096_bytes(void **state)
{
	size_t len = 4 + 4097 + 1;
	char *text = malloc(len + 1);
	struct dd_config *cfg;
	char err[256];

	assert_non_null(text);
	memcpy(text, "[tx]\n", 5);
	memset(text + 5, '#', 4097);
	text[5 + 4097] = '\n';
	expect_error_with(loose, text, 5 + 4097 + 1, 2, "line is longer than 4096 bytes");

	/* 4096 is still fine */
	text[5 + 4096] = '\n';
	assert_int_equal(dd_config_parse(&cfg, NAME, text, 5 + 4097, loose, err, sizeof(err)), 0);
	dd_config_free(cfg);
	free(text);
}

static void
test_config_rejects_file_larger_than_1mib(void **state)
{
	size_t len = 1024 * 1024 + 1;
	char *text = malloc(len);
	struct dd_config *cfg = NULL;
	char err[256];

	assert_non_null(text);
	memset(text, '\n', len);
	assert_int_equal(dd_config_parse(&cfg, NAME, text, len, loose, err, sizeof(err)), -EFBIG);
	assert_null(cfg);
	assert_contains(err, NAME ": file is larger than 1 MiB");
	/* exactly 1 MiB of blank lines is fine */
	assert_int_equal(dd_config_parse(&cfg, NAME, text, len - 1, loose, err, sizeof(err)), 0);
	dd_config_free(cfg);
	free(text);
}

static void
test_config_escapes_control_characters_in_messages(void **state)
{
	struct dd_config *cfg;
	char err[256];
	static const char text[] = "[link]\nra\x1b[2Jte = 1\n";
	static const char utf8[] = "[link]\nrate = \xc3\xa9\xff\n";

	assert_int_equal(dd_config_parse(&cfg, NAME, text, sizeof(text) - 1, schema, err, sizeof(err)),
			 -EINVAL);
	assert_contains(err, "unknown key 'ra\\x1b[2Jte'");
	assert_null(strchr(err, '\x1b'));

	/* valid UTF-8 is shown as is, invalid bytes are escaped */
	assert_int_equal(dd_config_parse(&cfg, NAME, utf8, sizeof(utf8) - 1, schema, err, sizeof(err)),
			 -EINVAL);
	assert_contains(err, "'\xc3\xa9\\xff' is not a rate");
}

static void
test_config_truncates_message_to_errlen(void **state)
{
	struct dd_config *cfg;
	char err[16];

	memset(err, 'x', sizeof(err));
	assert_int_equal(dd_config_parse(&cfg, NAME, "[foo]\n", 6, schema, err, sizeof(err)), -EINVAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(dd_config_parse(&cfg, NAME, "[foo]\n", 6, schema, NULL, 0), -EINVAL);
}

/* ---- required keys ---- */

static void
test_config_rejects_missing_required_key_in_present_section(void **state)
{
	expect_error("# x\n[link]\nmtu = 1500\n", 2,
		     "[link] rate is required (bits per second, e.g. rate = 1G)");
}

static void
test_config_rejects_missing_required_key_in_absent_section(void **state)
{
	expect_error("[queue]\nsize = 1G\n", 0, "missing required key 'rate' in [link]");
	expect_error("", 0, "missing required key 'rate' in [link] (add a [link] section");
}

static void
test_config_rejects_channel_section_without_required_key(void **state)
{
	expect_error("[link]\nrate = 1G\n[channel.a]\ndir = x\n[channel.b]\nrate = 1G\n", 5,
		     "[channel.b] dir is required");
}

/* ---- values ---- */

static void
test_config_rejects_bad_rate_with_examples(void **state)
{
	expect_error("[link]\nrate = abc\n", 2,
		     "[link] rate: 'abc' is not a rate (examples: 100M, 1G, 9.5G)");
}

static void
test_config_rejects_empty_value(void **state)
{
	expect_error("[link]\nrate =\n", 2, "[link] rate: value is empty (bits per second, e.g. rate = 1G)");
	expect_loose_error("[tx]\nname = \"\"\n", 2, "[tx] name: value is empty");
}

static void
test_config_reports_range_with_units(void **state)
{
	expect_error("[link]\nrate = 500k\n", 2, "'500k' is out of range (allowed 1M..100G)");
	expect_error("[link]\nrate = 101G\n", 2, "out of range (allowed 1M..100G)");
	expect_loose_error("[link]\nmtu = 100\n", 2, "'100' is out of range (allowed 576..9000)");
	expect_loose_error("[queue]\nsize = 1K\n", 2, "'1K' is too small (must be at least 4K)");
	expect_loose_error("[queue]\ntimeout = 2h\n", 2, "'2h' is out of range (allowed 0..1h)");
	expect_loose_error("[queue]\nsize = 99999999999999999999\n", 2, "is too large");
	expect_loose_error("[queue]\nsize = 16384P\n", 2, "is not a size");
}

static void
test_config_accepts_range_boundaries(void **state)
{
	struct dd_config *cfg = parse_loose("[link]\nmtu = 576\n[queue]\ntimeout = 1h\nsize=4KiB\n");

	assert_int_equal(dd_config_u64(cfg, "link", "mtu"), 576);
	assert_int_equal(dd_config_u64(cfg, "queue", "timeout"), 3600000);
	assert_int_equal(dd_config_u64(cfg, "queue", "size"), 4096);
	dd_config_free(cfg);
}

static void
test_config_rejects_uint_overflow_and_junk(void **state)
{
	static const struct dd_config_key keys[] = {
		{ .section = "s", .name = "n", .type = DD_CFG_UINT },
		{ .section = NULL },
	};
	struct dd_config *cfg;

	cfg = parse_ok_with(keys, "[s]\nn = 18446744073709551615\n");
	assert_true(dd_config_u64(cfg, "s", "n") == UINT64_MAX);
	dd_config_free(cfg);
	expect_text_error(keys, "[s]\nn = 18446744073709551616\n", 2, "is too large");
	expect_text_error(keys, "[s]\nn = -1\n", 2, "'-1' is not a whole number");
	expect_text_error(keys, "[s]\nn = 1.5\n", 2, "is not a whole number");
	expect_text_error(keys, "[s]\nn = 1k\n", 2, "is not a whole number");
}

struct num_case {
	const char *text;
	int rc;
	uint64_t value;
};

static void
run_cases(int (*fn)(const char *, uint64_t *), const struct num_case *c, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t v = 12345;
		int rc = fn(c[i].text, &v);

		if (rc != c[i].rc)
			fail_msg("'%s': rc %d, expected %d", c[i].text, rc, c[i].rc);
		if (rc == 0 && v != c[i].value)
			fail_msg("'%s': %llu, expected %llu", c[i].text, (unsigned long long)v,
				 (unsigned long long)c[i].value);
		if (rc != 0 && v != 12345)
			fail_msg("'%s': output written on failure", c[i].text);
	}
}

static void
test_parse_rate_table(void **state)
{
	static const struct num_case c[] = {
		{ "1000000", 0, UINT64_C(1000000) },
		{ "100M", 0, UINT64_C(100000000) },
		{ "100m", 0, UINT64_C(100000000) },
		{ "1G", 0, UINT64_C(1000000000) },
		{ "9.5G", 0, UINT64_C(9500000000) },
		{ "9.50G", 0, UINT64_C(9500000000) },
		{ "10k", 0, UINT64_C(10000) },
		{ "10K", 0, UINT64_C(10000) },
		{ "1.5k", 0, UINT64_C(1500) },
		{ "0.001G", 0, UINT64_C(1000000) },
		{ " 2 G ", 0, UINT64_C(2000000000) },
		{ "0", 0, 0 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -EINVAL, 0 },
		{ "18446744073G", 0, UINT64_C(18446744073000000000) },
		{ "18446744074G", -EINVAL, 0 },
		{ "18446744073.709551615G", 0, UINT64_MAX },
		{ "18446744073.709551616G", -EINVAL, 0 },
		{ "1.0001k", -EINVAL, 0 },
		{ "0.5", -EINVAL, 0 },
		{ "abc", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "G", -EINVAL, 0 },
		{ ".5G", -EINVAL, 0 },
		{ "5.G", -EINVAL, 0 },
		{ "-1G", -EINVAL, 0 },
		{ "+1G", -EINVAL, 0 },
		{ "1T", -EINVAL, 0 },
		{ "1Gb", -EINVAL, 0 },
		{ "1bps", -EINVAL, 0 },
		{ "1GG", -EINVAL, 0 },
		{ "1e9", -EINVAL, 0 },
		{ "0x10", -EINVAL, 0 },
	};
	uint64_t v;

	run_cases(dd_config_parse_rate, c, sizeof(c) / sizeof(c[0]));
	assert_int_equal(dd_config_parse_rate(NULL, &v), -EINVAL);
}

static void
test_parse_size_table(void **state)
{
	static const struct num_case c[] = {
		{ "4096", 0, 4096 },
		{ "4096B", 0, 4096 },
		{ "64K", 0, UINT64_C(65536) },
		{ "64k", 0, UINT64_C(65536) },
		{ "64M", 0, UINT64_C(67108864) },
		{ "64MB", 0, UINT64_C(67108864) },
		{ "64MiB", 0, UINT64_C(67108864) },
		{ "1G", 0, UINT64_C(1073741824) },
		{ "1.5G", 0, UINT64_C(1610612736) },
		{ "0.5K", 0, 512 },
		{ "2T", 0, UINT64_C(2199023255552) },
		{ "16777215T", 0, UINT64_C(16777215) << 40 },
		{ "16777216T", -EINVAL, 0 },
		{ "99999999999999999999", -EINVAL, 0 },
		{ "1.1K", -EINVAL, 0 }, /* 1126.4 bytes */
		{ "0.3", -EINVAL, 0 },
		{ "1P", -EINVAL, 0 },
		{ "1b", -EINVAL, 0 },
		{ "1iB", -EINVAL, 0 },
		{ "1Mib", -EINVAL, 0 },
		{ "1MiBB", -EINVAL, 0 },
		{ "M", -EINVAL, 0 },
		{ "1,5G", -EINVAL, 0 },
	};

	run_cases(dd_config_parse_size, c, sizeof(c) / sizeof(c[0]));
}

static void
test_parse_duration_table(void **state)
{
	static const struct num_case c[] = {
		{ "250ms", 0, 250 },
		{ "250", 0, 250 },
		{ "5s", 0, 5000 },
		{ "2m", 0, 120000 },
		{ "1h", 0, 3600000 },
		{ "1.5s", 0, 1500 },
		{ "0.5m", 0, 30000 },
		{ "0", 0, 0 },
		{ "0.0001s", -EINVAL, 0 },
		{ "1.5ms", -EINVAL, 0 },
		{ "5S", -EINVAL, 0 },
		{ "1d", -EINVAL, 0 },
		{ "1sec", -EINVAL, 0 },
		{ "5124095576031h", -EINVAL, 0 },
		{ "5124095576030h", 0, UINT64_C(18446744073708000000) },
		{ "ms", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
	};

	run_cases(dd_config_parse_duration, c, sizeof(c) / sizeof(c[0]));
}

static void
test_config_rejects_inexact_decimal_with_unit_in_message(void **state)
{
	expect_loose_error("[link]\nrate = 1.0000001M\n", 2, "'1.0000001M' is not a whole number of bits per second");
	expect_loose_error("[queue]\ntimeout = 1.5ms\n", 2, "not a whole number of milliseconds");
	expect_loose_error("[queue]\ntimeout = 5 days\n", 2, "is not a duration (examples: 250ms, 5s");
	expect_loose_error("[queue]\nsize = lots\n", 2, "'lots' is not a size (examples:");
}

static void
test_config_accepts_every_bool_spelling(void **state)
{
	static const char *const yes[] = { "yes", "YES", "true", "True", "on", "1" };
	static const char *const no[] = { "no", "No", "false", "off", "OFF", "0" };
	char text[64];
	size_t i;

	for (i = 0; i < 6; i++) {
		struct dd_config *cfg;

		snprintf(text, sizeof(text), "[link]\nfec = %s\n", yes[i]);
		cfg = parse_loose(text);
		assert_true(dd_config_bool(cfg, "link", "fec"));
		dd_config_free(cfg);
		snprintf(text, sizeof(text), "[link]\nfec = %s\n", no[i]);
		cfg = parse_loose(text);
		assert_false(dd_config_bool(cfg, "link", "fec"));
		dd_config_free(cfg);
	}
	expect_loose_error("[link]\nfec = maybe\n", 2, "[link] fec: 'maybe' is not yes or no");
	expect_loose_error("[link]\nfec = 2\n", 2, "is not yes or no");
}

static void
test_config_rejects_enum_word_and_lists_choices(void **state)
{
	struct dd_config *cfg = parse_loose("[queue]\npolicy = drop-oldest\n");

	assert_string_equal(dd_config_str(cfg, "queue", "policy"), "drop-oldest");
	dd_config_free(cfg);
	expect_loose_error("[queue]\npolicy = drop\n", 2,
			   "[queue] policy: 'drop' is not one of: drop-oldest, drop-newest");
	expect_loose_error("[queue]\npolicy = Drop-Oldest\n", 2, "is not one of");
	expect_loose_error("[queue]\npolicy = drop-oldest|drop-newest\n", 2, "is not one of");
}

static void
test_config_checks_host_and_port(void **state)
{
	static const char *const okay[] = {
		"192.0.2.1:5000", "rx.example:1", "rx-1_a.example:65535", "[::1]:5000",
		"[2001:db8::1]:5000", "[fe80::1%eth0]:9", "[::ffff:192.0.2.1]:80", "h:05000",
	};
	static const struct {
		const char *value, *why;
	} bad[] = {
		{ "192.0.2.1", "the port is missing" },
		{ ":5000", "the host is empty" },
		{ "host:", "the port is missing" },
		{ "host:0", "the port must be 1..65535" },
		{ "host:65536", "the port must be 1..65535" },
		{ "host:99999999999999999999", "the port must be 1..65535" },
		{ "host:5x", "the port is not a number" },
		{ "host:-1", "the port is not a number" },
		{ "2001:db8::1:5000", "must be in brackets" },
		{ "[2001:db8::1]5000", "the port is missing" },
		{ "[2001:db8::1:5000", "has no closing ']'" },
		{ "[]:5000", "the host is empty" },
		{ "[host]:5000", "not an IPv6 address" },
		{ "[fe80::1%]:5000", "zone" },
		{ "bad host:5000", "the host may only have" },
		{ "a,b:5000", "the host may only have" },
	};
	char text[128];
	size_t i;

	for (i = 0; i < sizeof(okay) / sizeof(okay[0]); i++) {
		struct dd_config *cfg;

		snprintf(text, sizeof(text), "[link]\npeer = %s\n", okay[i]);
		cfg = parse_loose(text);
		assert_string_equal(dd_config_str(cfg, "link", "peer"), okay[i]);
		assert_int_equal(dd_config_list_len(cfg, "link", "peer"), 1);
		dd_config_free(cfg);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[link]\npeer = %s\n", bad[i].value);
		expect_loose_error(text, 2, "is not HOST:PORT");
		expect_loose_error(text, 2, bad[i].why);
	}
}

static void
test_config_checks_each_item_of_hostport_list(void **state)
{
	struct dd_config *cfg = parse_loose("[link]\npeers = a:1,[::1]:2 ,  c:3\n");
	char buf[32];

	assert_int_equal(dd_config_list_len(cfg, "link", "peers"), 3);
	assert_int_equal(dd_config_list_item(cfg, "link", "peers", 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "a:1");
	assert_int_equal(dd_config_list_item(cfg, "link", "peers", 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "[::1]:2");
	assert_int_equal(dd_config_list_item(cfg, "link", "peers", 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "c:3");
	assert_int_equal(dd_config_list_item(cfg, "link", "peers", 3, buf, sizeof(buf)), -ENOENT);
	dd_config_free(cfg);

	expect_loose_error("[link]\npeers = a:1, b, c:3\n", 2,
			   "[link] peers: item 2 'b' is not HOST:PORT: the port is missing");
	expect_loose_error("[link]\npeers = a:1,,c:3\n", 2, "item 2 of the list is empty");
	expect_loose_error("[link]\npeers = a:1,\n", 2, "item 2 of the list is empty");
	/* a single HOSTPORT does not take a list */
	expect_loose_error("[link]\npeer = a:1,b:2\n", 2, "is not HOST:PORT");
}

static void
test_config_splits_and_trims_string_list_items(void **state)
{
	struct dd_config *cfg = parse_loose("[tx]\ntags = alpha, beta ,gamma\nname = a, b\n");
	char buf[8];

	assert_int_equal(dd_config_list_len(cfg, "tx", "tags"), 3);
	assert_int_equal(dd_config_list_item(cfg, "tx", "tags", 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "beta");
	assert_int_equal(dd_config_list_item(cfg, "tx", "tags", 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "gamma");
	assert_string_equal(dd_config_str(cfg, "tx", "tags"), "alpha, beta ,gamma");
	/* not a list: one item, commas and all */
	assert_int_equal(dd_config_list_len(cfg, "tx", "name"), 1);
	assert_int_equal(dd_config_list_item(cfg, "tx", "name", 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "a, b");
	assert_int_equal(dd_config_list_item(cfg, "tx", "name", 1, buf, sizeof(buf)), -ENOENT);
	dd_config_free(cfg);

	expect_loose_error("[tx]\ntags = a, ,b\n", 2, "[tx] tags: item 2 of the list is empty");
	expect_loose_error("[tx]\ntags = ,\n", 2, "item 1 of the list is empty");
}

static void
test_config_list_item_reports_small_buffer_and_missing_key(void **state)
{
	struct dd_config *cfg = parse_loose("[tx]\ntags = alpha, beta\n");
	char buf[5];

	assert_int_equal(dd_config_list_item(cfg, "tx", "tags", 0, buf, sizeof(buf)), -ENOSPC);
	assert_string_equal(buf, "");
	assert_int_equal(dd_config_list_item(cfg, "tx", "tags", 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "beta");
	assert_int_equal(dd_config_list_item(cfg, "tx", "tags", 1, NULL, 0), -ENOSPC);
	assert_int_equal(dd_config_list_item(cfg, "tx", "name", 0, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(dd_config_list_len(cfg, "tx", "name"), 0);
	assert_int_equal(dd_config_list_item(cfg, "tx", "nope", 0, buf, sizeof(buf)), -ENOENT);
	dd_config_free(cfg);
}

static void
test_config_quoted_values_keep_spaces_and_unescape(void **state)
{
	struct dd_config *cfg = parse_loose("[tx]\n"
					    "name = \" a = b # c \"  \n"
					    "tags = \" x , y \"\n"
					    "[link]\n"
					    "rate = \"1G\"\n");
	char buf[8];

	assert_string_equal(dd_config_str(cfg, "tx", "name"), " a = b # c ");
	assert_int_equal(dd_config_list_item(cfg, "tx", "tags", 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "x");
	assert_int_equal(dd_config_u64(cfg, "link", "rate"), UINT64_C(1000000000));
	dd_config_free(cfg);

	/* a quote that does not start the value is kept as is */
	cfg = parse_loose("[tx]\nname = say \"hi\"\n");
	assert_string_equal(dd_config_str(cfg, "tx", "name"), "say \"hi\"");
	dd_config_free(cfg);

	expect_loose_error("[tx]\nname = \"open\n", 2, "[tx] name: the quoted value has no closing '\"'");
	expect_loose_error("[tx]\nname = \"a\\\"\n", 2, "has no closing");
	expect_loose_error("[tx]\nname = \"a\\n\"\n", 2, "a backslash must be followed by");
	expect_loose_error("[tx]\nname = \"a\" b\n", 2, "unexpected text after the closing '\"'");
}

/* ---- sections, defaults, where ---- */

struct seen {
	char names[8][80];
	size_t n;
	size_t stop_at;
};

static int
collect(const char *section, void *arg)
{
	struct seen *s = arg;

	if (s->n < 8)
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", section);
	s->n++;
	return s->n == s->stop_at ? 42 : 0;
}

static void
test_config_iterates_channel_sections_in_file_order(void **state)
{
	struct dd_config *cfg = parse_ok_with(schema,
		"[channel.zeta]\ndir = z\n[link]\nrate = 1G\n[channel.alpha]\ndir = a\nrate = 5M\n"
		"[channel.m_1]\ndir = m\n");
	struct seen s = { .n = 0 };

	assert_int_equal(dd_config_each_section(cfg, "channel.", collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "channel.zeta");
	assert_string_equal(s.names[1], "channel.alpha");
	assert_string_equal(s.names[2], "channel.m_1");
	assert_int_equal(dd_config_u64(cfg, "channel.alpha", "rate"), 5000000);
	assert_int_equal(dd_config_u64(cfg, "channel.zeta", "rate"), 100000000);
	assert_string_equal(dd_config_str(cfg, "channel.m_1", "dir"), "m");

	memset(&s, 0, sizeof(s));
	assert_int_equal(dd_config_each_section(cfg, "", collect, &s), 0);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.names[1], "link");

	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	assert_int_equal(dd_config_each_section(cfg, "channel.", collect, &s), 42);
	assert_int_equal(s.n, 2);

	memset(&s, 0, sizeof(s));
	assert_int_equal(dd_config_each_section(cfg, "queue", collect, &s), 0);
	assert_int_equal(s.n, 0);

	assert_int_equal(dd_config_count_sections(cfg, "channel."), 3);
	assert_int_equal(dd_config_count_sections(cfg, ""), 4);
	assert_int_equal(dd_config_count_sections(cfg, "queue"), 0);
	dd_config_free(cfg);
}

static void
test_config_returns_defaults_for_absent_keys(void **state)
{
	struct dd_config *cfg = parse_ok_with(schema, "[link]\nrate = 1G\n[channel.a]\ndir = x\n");

	assert_int_equal(dd_config_u64(cfg, "link", "mtu"), 1500);
	assert_string_equal(dd_config_str(cfg, "link", "mtu"), "1500");
	assert_true(dd_config_bool(cfg, "link", "fec"));
	/* absent section [queue] */
	assert_true(dd_config_has(cfg, "queue", "size"));
	assert_int_equal(dd_config_u64(cfg, "queue", "size"), UINT64_C(64) << 20);
	assert_string_equal(dd_config_str(cfg, "queue", "policy"), "drop-oldest");
	assert_int_equal(dd_config_u64(cfg, "queue", "timeout"), 5000);
	/* pattern sections, present or not */
	assert_int_equal(dd_config_u64(cfg, "channel.a", "rate"), 100000000);
	assert_int_equal(dd_config_u64(cfg, "channel.other", "rate"), 100000000);
	/* neither value nor default */
	assert_false(dd_config_has(cfg, "link", "peer"));
	assert_null(dd_config_str(cfg, "link", "peer"));
	assert_int_equal(dd_config_u64(cfg, "link", "peer"), 0);
	assert_int_equal(dd_config_list_len(cfg, "link", "peers"), 0);
	assert_false(dd_config_has(cfg, "channel.b", "dir"));
	dd_config_free(cfg);
}

static void
test_config_getters_return_nothing_for_undeclared_keys(void **state)
{
	struct dd_config *cfg = parse_ok_with(schema, "[link]\nrate = 1G\n");

	assert_false(dd_config_has(cfg, "link", "nope"));
	assert_null(dd_config_str(cfg, "nope", "rate"));
	assert_null(dd_config_str(cfg, "channel.", "dir"));
	assert_int_equal(dd_config_u64(cfg, "link", NULL), 0);
	assert_false(dd_config_bool(cfg, "link", "rate"));
	assert_false(dd_config_has(NULL, "link", "rate"));
	assert_string_equal(dd_config_where(cfg, NULL, "rate"), NAME);
	dd_config_free(cfg);
}

static void
test_config_where_names_key_line_or_section_line_or_file(void **state)
{
	struct dd_config *cfg = parse_ok_with(schema, "\n[link]\n\nrate = 1G\n[channel.x]\ndir = d\n");

	assert_string_equal(dd_config_where(cfg, "link", "rate"), NAME ":4");
	assert_string_equal(dd_config_where(cfg, "link", "mtu"), NAME ":2");
	assert_string_equal(dd_config_where(cfg, "link", NULL), NAME ":2");
	assert_string_equal(dd_config_where(cfg, "channel.x", "rate"), NAME ":5");
	assert_string_equal(dd_config_where(cfg, "channel.x", "dir"), NAME ":6");
	assert_string_equal(dd_config_where(cfg, "queue", "size"), NAME);
	dd_config_free(cfg);
}

/* ---- schema errors ---- */

static void
test_config_rejects_bad_schema_default(void **state)
{
	static const struct dd_config_key keys[] = {
		{ .section = "link", .name = "rate", .type = DD_CFG_RATE, .fallback = "fast" },
		{ .section = NULL },
	};
	static const struct dd_config_key out_of_range[] = {
		{ .section = "channel.*", .name = "n", .type = DD_CFG_UINT, .fallback = "9", .max = 8 },
		{ .section = NULL },
	};
	struct dd_config *cfg;
	char err[256];

	assert_int_equal(dd_config_parse(&cfg, NAME, "", 0, keys, err, sizeof(err)), -EINVAL);
	assert_contains(err, "schema: bad default for [link] rate");
	assert_int_equal(dd_config_parse(&cfg, NAME, "", 0, out_of_range, err, sizeof(err)), -EINVAL);
	assert_contains(err, "schema: bad default for [channel.*] n: '9' is out of range");
}

static void
test_config_rejects_inconsistent_schema(void **state)
{
	static const struct dd_config_key twice[] = {
		{ .section = "a", .name = "k", .type = DD_CFG_STRING },
		{ .section = "a", .name = "k", .type = DD_CFG_UINT },
		{ .section = NULL },
	};
	static const struct dd_config_key no_choices[] = {
		{ .section = "a", .name = "k", .type = DD_CFG_ENUM },
		{ .section = NULL },
	};
	static const struct dd_config_key empty_choice[] = {
		{ .section = "a", .name = "k", .type = DD_CFG_ENUM, .choices = "x||y" },
		{ .section = NULL },
	};
	static const struct dd_config_key uint_list[] = {
		{ .section = "a", .name = "k", .type = DD_CFG_UINT, .list = true },
		{ .section = NULL },
	};
	static const struct dd_config_key min_max[] = {
		{ .section = "a", .name = "k", .type = DD_CFG_UINT, .min = 5, .max = 4 },
		{ .section = NULL },
	};
	struct dd_config *cfg;
	char err[256];

	assert_int_equal(dd_config_parse(&cfg, NAME, "", 0, twice, err, sizeof(err)), -EINVAL);
	assert_contains(err, "schema: [a] k is declared twice");
	assert_int_equal(dd_config_parse(&cfg, NAME, "", 0, no_choices, err, sizeof(err)), -EINVAL);
	assert_contains(err, "schema:");
	assert_int_equal(dd_config_parse(&cfg, NAME, "", 0, empty_choice, err, sizeof(err)), -EINVAL);
	assert_int_equal(dd_config_parse(&cfg, NAME, "", 0, uint_list, err, sizeof(err)), -EINVAL);
	assert_int_equal(dd_config_parse(&cfg, NAME, "", 0, min_max, err, sizeof(err)), -EINVAL);
	assert_int_equal(dd_config_parse(&cfg, NAME, "", 0, NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(dd_config_parse(NULL, NAME, "", 0, schema, err, sizeof(err)), -EINVAL);
}

static void
test_config_accepts_quoted_schema_default(void **state)
{
	static const struct dd_config_key keys[] = {
		{ .section = "a", .name = "k", .type = DD_CFG_STRING, .fallback = "\" x \"" },
		{ .section = NULL },
	};
	struct dd_config *cfg = parse_ok_with(keys, "");

	assert_string_equal(dd_config_str(cfg, "a", "k"), " x ");
	dd_config_free(cfg);
}

/* ---- files ---- */

static void
test_config_load_reads_real_file(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	struct dd_config *cfg = NULL;
	char err[512] = "";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, good, sizeof(good) - 1), (ssize_t)(sizeof(good) - 1));
	close(fd);
	if (dd_config_load(&cfg, path, schema, err, sizeof(err)) != 0)
		fail_msg("load: %s", err);
	assert_int_equal(dd_config_u64(cfg, "link", "rate"), UINT64_C(9500000000));
	assert_true(strncmp(dd_config_where(cfg, "link", "rate"), path, strlen(path)) == 0);
	assert_string_equal(dd_config_where(cfg, "link", "rate") + strlen(path), ":5");
	dd_config_free(cfg);

	/* errors name the path */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[link]\nrate = 1G\nbogus = 1\n", 27), 27);
	close(fd);
	assert_int_equal(dd_config_load(&cfg, path, schema, err, sizeof(err)), -EINVAL);
	assert_null(cfg);
	assert_true(strncmp(err, path, strlen(path)) == 0);
	assert_contains(err, ":3: unknown key 'bogus' in [link]");
	unlink(path);
}

static void
test_config_load_rejects_file_larger_than_1mib(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	struct dd_config *cfg = NULL;
	size_t len = 1024 * 1024 + 100;
	char *blank = malloc(len);
	char err[512] = "";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_non_null(blank);
	memset(blank, '\n', len);
	assert_int_equal(write(fd, blank, len), (ssize_t)len);
	close(fd);
	assert_int_equal(dd_config_load(&cfg, path, loose, err, sizeof(err)), -EFBIG);
	assert_contains(err, "larger than 1 MiB");
	assert_true(strncmp(err, path, strlen(path)) == 0);
	unlink(path);
	free(blank);
}

static void
test_config_load_missing_file_names_path_and_reason(void **state)
{
	struct dd_config *cfg = (struct dd_config *)1;
	char err[512] = "";

	assert_int_equal(dd_config_load(&cfg, "/nonexistent/diode/tx.conf", schema, err, sizeof(err)),
			 -ENOENT);
	assert_null(cfg);
	assert_contains(err, "/nonexistent/diode/tx.conf: ");
	assert_contains(err, strerror(ENOENT));
}

static void
test_config_load_directory_reports_read_error(void **state)
{
	struct dd_config *cfg = NULL;
	char err[512] = "";

	assert_int_equal(dd_config_load(&cfg, "/", schema, err, sizeof(err)), -EISDIR);
	assert_contains(err, "/: cannot read: ");
	assert_contains(err, strerror(EISDIR));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_accepts_good_file_with_every_type_and_comments),
		cmocka_unit_test(test_config_accepts_crlf_line_ends_and_byte_order_mark),
		cmocka_unit_test(test_config_accepts_empty_file_when_nothing_is_required),
		cmocka_unit_test(test_config_rejects_unknown_key_with_file_and_line),
		cmocka_unit_test(test_config_unknown_key_says_which_section_it_belongs_in),
		cmocka_unit_test(test_config_rejects_unknown_section_and_lists_known_ones),
		cmocka_unit_test(test_config_rejects_line_without_equals),
		cmocka_unit_test(test_config_rejects_line_without_key),
		cmocka_unit_test(test_config_rejects_key_before_any_section),
		cmocka_unit_test(test_config_rejects_duplicate_key_with_both_lines),
		cmocka_unit_test(test_config_rejects_duplicate_section_with_both_lines),
		cmocka_unit_test(test_config_rejects_truncated_section_header),
		cmocka_unit_test(test_config_rejects_text_after_section_header),
		cmocka_unit_test(test_config_rejects_bad_channel_names),
		cmocka_unit_test(test_config_accepts_channel_name_of_64_characters),
		cmocka_unit_test(test_config_rejects_nul_byte_with_line),
		cmocka_unit_test(test_config_rejects_line_longer_than_4096_bytes),
		cmocka_unit_test(test_config_rejects_file_larger_than_1mib),
		cmocka_unit_test(test_config_escapes_control_characters_in_messages),
		cmocka_unit_test(test_config_truncates_message_to_errlen),
		cmocka_unit_test(test_config_rejects_missing_required_key_in_present_section),
		cmocka_unit_test(test_config_rejects_missing_required_key_in_absent_section),
		cmocka_unit_test(test_config_rejects_channel_section_without_required_key),
		cmocka_unit_test(test_config_rejects_bad_rate_with_examples),
		cmocka_unit_test(test_config_rejects_empty_value),
		cmocka_unit_test(test_config_reports_range_with_units),
		cmocka_unit_test(test_config_accepts_range_boundaries),
		cmocka_unit_test(test_config_rejects_uint_overflow_and_junk),
		cmocka_unit_test(test_parse_rate_table),
		cmocka_unit_test(test_parse_size_table),
		cmocka_unit_test(test_parse_duration_table),
		cmocka_unit_test(test_config_rejects_inexact_decimal_with_unit_in_message),
		cmocka_unit_test(test_config_accepts_every_bool_spelling),
		cmocka_unit_test(test_config_rejects_enum_word_and_lists_choices),
		cmocka_unit_test(test_config_checks_host_and_port),
		cmocka_unit_test(test_config_checks_each_item_of_hostport_list),
		cmocka_unit_test(test_config_splits_and_trims_string_list_items),
		cmocka_unit_test(test_config_list_item_reports_small_buffer_and_missing_key),
		cmocka_unit_test(test_config_quoted_values_keep_spaces_and_unescape),
		cmocka_unit_test(test_config_iterates_channel_sections_in_file_order),
		cmocka_unit_test(test_config_returns_defaults_for_absent_keys),
		cmocka_unit_test(test_config_getters_return_nothing_for_undeclared_keys),
		cmocka_unit_test(test_config_where_names_key_line_or_section_line_or_file),
		cmocka_unit_test(test_config_rejects_bad_schema_default),
		cmocka_unit_test(test_config_rejects_inconsistent_schema),
		cmocka_unit_test(test_config_accepts_quoted_schema_default),
		cmocka_unit_test(test_config_load_reads_real_file),
		cmocka_unit_test(test_config_load_rejects_file_larger_than_1mib),
		cmocka_unit_test(test_config_load_missing_file_names_path_and_reason),
		cmocka_unit_test(test_config_load_directory_reports_read_error),
	};

	return cmocka_run_group_tests(tests, setup_loose, NULL);
}
