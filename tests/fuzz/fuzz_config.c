/* libFuzzer harness for common/config.c: parse arbitrary bytes, then read every key back. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct dd_config_key schema[] = {
	{ .section = "link", .name = "rate", .type = DD_CFG_RATE, .min = 1000, .max = UINT64_C(100000000000) },
	{ .section = "link", .name = "mtu", .type = DD_CFG_UINT, .fallback = "1500", .min = 576, .max = 9000 },
	{ .section = "link", .name = "peer", .type = DD_CFG_HOSTPORT },
	{ .section = "link", .name = "peers", .type = DD_CFG_HOSTPORT, .list = true },
	{ .section = "link", .name = "fec", .type = DD_CFG_BOOL, .fallback = "yes" },
	{ .section = "queue", .name = "size", .type = DD_CFG_SIZE, .fallback = "64M", .min = 4096 },
	{ .section = "queue", .name = "policy", .type = DD_CFG_ENUM, .fallback = "drop-oldest",
	  .choices = "drop-oldest|drop-newest" },
	{ .section = "queue", .name = "timeout", .type = DD_CFG_DURATION, .fallback = "5s" },
	{ .section = "tx", .name = "name", .type = DD_CFG_STRING, .fallback = "\" tx \"" },
	{ .section = "tx", .name = "tags", .type = DD_CFG_STRING, .list = true },
	{ .section = "channel.*", .name = "dir", .type = DD_CFG_STRING, .required = true },
	{ .section = "channel.*", .name = "rate", .type = DD_CFG_RATE, .fallback = "100M" },
	{ .section = "channel.*", .name = "peers", .type = DD_CFG_HOSTPORT, .list = true },
	{ .section = NULL },
};

struct walk {
	const struct dd_config *cfg;
	size_t sum;
};

static void
read_key(struct walk *w, const char *section, const char *key)
{
	char item[64];
	const char *s;
	size_t i, n;

	w->sum += dd_config_has(w->cfg, section, key);
	s = dd_config_str(w->cfg, section, key);
	if (s != NULL)
		w->sum += strlen(s);
	w->sum += (size_t)dd_config_u64(w->cfg, section, key);
	w->sum += dd_config_bool(w->cfg, section, key);
	w->sum += strlen(dd_config_where(w->cfg, section, key));
	n = dd_config_list_len(w->cfg, section, key);
	for (i = 0; i <= n; i++)
		if (dd_config_list_item(w->cfg, section, key, i, item, sizeof(item)) == 0)
			w->sum += strlen(item);
}

static int
visit(const char *section, void *arg)
{
	struct walk *w = arg;
	const struct dd_config_key *k;

	for (k = schema; k->section != NULL; k++)
		read_key(w, section, k->name);
	read_key(w, section, "undeclared");
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dd_config *cfg = NULL;
	struct walk w = { .sum = 0 };
	char err[256], text[64];
	uint64_t v;

	if (dd_config_parse(&cfg, "fuzz.conf", (const char *)data, size, schema, err, sizeof(err)) == 0) {
		w.cfg = cfg;
		dd_config_each_section(cfg, "", visit, &w);
		visit("link", &w);
		visit("queue", &w);
		visit("channel.absent", &w);
		dd_config_free(cfg);
	} else if (strnlen(err, sizeof(err)) == sizeof(err)) {
		__builtin_trap(); /* the message must be NUL-terminated */
	}

	/* the command-line helpers see the same bytes as a C string */
	if (size < sizeof(text)) {
		memcpy(text, data, size);
		text[size] = '\0';
		dd_config_parse_size(text, &v);
		dd_config_parse_rate(text, &v);
		dd_config_parse_duration(text, &v);
	}
	return 0;
}
