/* INI configuration files: schema-checked parsing with FILE:LINE errors. */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bytes.h"

#define MAX_FILE (1024 * 1024) /* bytes in a configuration file */
#define MAX_LINE 4096          /* bytes in a line, without the '\n' */
#define MAX_NAME 64            /* bytes in the NAME of [prefix.NAME] */
#define SHOW_MAX 60            /* bytes of operator text quoted in a message */
#define SHOW_BUF (SHOW_MAX * 4 + 16)
#define WHY_BUF 768
#define CHUNK 16384

#define HOSTPORT_EXAMPLES "192.0.2.1:5000, rx.example:5000, [2001:db8::1]:5000"

#if defined(__GNUC__)
#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF(f, a)
#endif

/* Strings live in chunks freed together with the config. */
struct chunk {
	struct chunk *next;
	size_t used, size;
	char data[];
};

/* A schema key, copied, with its default parsed. */
struct kdef {
	const char *section; /* "link" or a pattern such as "channel.*" */
	const char *name;
	enum dd_config_type type;
	bool required, list;
	uint64_t min, max;
	const char *choices;
	bool has_default;
	const char *dflt;
	uint64_t dnum;
	size_t ditems;
};

struct entry {
	const struct kdef *def;
	const char *value;
	uint64_t num;
	size_t items;
	unsigned line;
	const char *where;
};

/* Sections appear once, so the keys of a section are contiguous entries. */
struct section {
	const char *name;
	const char *pattern; /* the kdef section it matched */
	unsigned line;
	const char *where;
	size_t first, count;
};

struct dd_config {
	struct chunk *arena;
	const char *name;
	struct kdef *defs;
	size_t ndefs;
	struct section *secs;
	size_t nsecs, capsecs;
	struct entry *ents;
	size_t nents, capents;
	size_t *slots; /* open addressing on section names: index + 1, 0 = free */
	size_t nslots;
};

struct parser {
	struct dd_config *cfg;
	const char *name;
	char *err;
	size_t errlen;
	size_t cur; /* current section: index + 1, 0 = none yet */
};

/* What a getter finds: a value from the file or a default. */
struct found {
	const struct kdef *def;
	const char *value;
	uint64_t num;
	size_t items;
	const char *where;
};

typedef int suffix_fn(const char *s, size_t n, uint64_t *mult);

/* ---- characters and text ---- */

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_xdigit(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char
to_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && is_space(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_space((*s)[*n - 1]))
		(*n)--;
}

static bool
eq_nocase(const char *s, size_t n, const char *word)
{
	size_t i;

	if (strlen(word) != n)
		return false;
	for (i = 0; i < n; i++)
		if (to_lower(s[i]) != word[i])
			return false;
	return true;
}

/*
 * Operator text for a message: at most SHOW_MAX bytes (not cutting a UTF-8
 * sequence), control characters and invalid UTF-8 as \xNN. Always
 * NUL-terminates buf.
 */
static const char *
show(char *buf, size_t size, const char *text, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)text;
	bool cut = false;
	size_t i = 0, j = 0, ul;

	if (n > SHOW_MAX) {
		n = SHOW_MAX;
		while (n > 0 && (s[n] & 0xc0) == 0x80)
			n--;
		cut = true;
	}
	while (i < n && j + 8 < size) {
		if (s[i] >= 0x20 && s[i] < 0x7f) {
			buf[j++] = (char)s[i++];
		} else if (s[i] >= 0x80 && (ul = dd_utf8_len(s + i, n - i)) > 0) {
			memcpy(buf + j, s + i, ul);
			j += ul;
			i += ul;
		} else {
			buf[j++] = '\\';
			buf[j++] = 'x';
			buf[j++] = hex[s[i] >> 4];
			buf[j++] = hex[s[i] & 15];
			i++;
		}
	}
	if (cut && j + 4 <= size) {
		memcpy(buf + j, "...", 3);
		j += 3;
	}
	buf[j] = '\0';
	return buf;
}

/* "channel.*" -> "channel.NAME" for messages. */
static const char *
pattern_show(char *buf, size_t size, const char *pattern)
{
	const char *star = strchr(pattern, '*');

	if (star == NULL)
		snprintf(buf, size, "%s", pattern);
	else
		snprintf(buf, size, "%.*sNAME%s", (int)(star - pattern), pattern, star + 1);
	return buf;
}

/* Appends to a NUL-terminated buffer, truncating. */
static void PRINTF(3, 0)
vappend(char *buf, size_t size, const char *fmt, va_list ap)
{
	size_t len;

	if (buf == NULL || size == 0)
		return;
	len = strnlen(buf, size - 1);
	vsnprintf(buf + len, size - len, fmt, ap);
}

static void PRINTF(3, 4)
append(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vappend(buf, size, fmt, ap);
	va_end(ap);
}

/* Writes "NAME:LINE: message" (or "NAME: message" when line is 0). */
static int PRINTF(4, 5)
fail(const struct parser *p, unsigned line, int rc, const char *fmt, ...)
{
	va_list ap;

	if (p->err == NULL || p->errlen == 0)
		return rc;
	p->err[0] = '\0';
	if (line)
		append(p->err, p->errlen, "%s:%u: ", p->name, line);
	else
		append(p->err, p->errlen, "%s: ", p->name);
	va_start(ap, fmt);
	vappend(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* A message that is not about the file ("schema: ..."). */
static int PRINTF(3, 4)
fail_plain(const struct parser *p, int rc, const char *fmt, ...)
{
	va_list ap;

	if (p->err == NULL || p->errlen == 0)
		return rc;
	p->err[0] = '\0';
	va_start(ap, fmt);
	vappend(p->err, p->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- memory ---- */

static char *
arena_alloc(struct dd_config *cfg, size_t n)
{
	struct chunk *c = cfg->arena;
	char *mem;

	if (c == NULL || c->size - c->used < n) {
		size_t size = n > CHUNK ? n : CHUNK;

		if (size > SIZE_MAX - sizeof(*c))
			return NULL;
		c = malloc(sizeof(*c) + size);
		if (c == NULL)
			return NULL;
		c->next = cfg->arena;
		c->used = 0;
		c->size = size;
		cfg->arena = c;
	}
	mem = c->data + c->used;
	c->used += n;
	return mem;
}

static char *
arena_strndup(struct dd_config *cfg, const char *s, size_t n)
{
	char *copy;

	if (n == SIZE_MAX)
		return NULL;
	copy = arena_alloc(cfg, n + 1);
	if (copy == NULL)
		return NULL;
	if (n)
		memcpy(copy, s, n);
	copy[n] = '\0';
	return copy;
}

static char *
arena_where(struct dd_config *cfg, unsigned line)
{
	int n = snprintf(NULL, 0, "%s:%u", cfg->name, line);
	char *s;

	if (n < 0)
		return NULL;
	s = arena_alloc(cfg, (size_t)n + 1);
	if (s != NULL)
		snprintf(s, (size_t)n + 1, "%s:%u", cfg->name, line);
	return s;
}

/* Returns a larger array (or arr when large enough), NULL when out of memory. */
static void *
grow(void *arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *mem;

	if (need <= *cap && arr != NULL)
		return arr;
	ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return NULL;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / elem)
		return NULL;
	mem = realloc(arr, ncap * elem);
	if (mem == NULL)
		return NULL;
	*cap = ncap;
	return mem;
}

/* ---- section lookup ---- */

static size_t
hash_str(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(1099511628211);
	}
	return (size_t)(h ^ (h >> 32));
}

static void
slot_put(struct dd_config *cfg, size_t idx)
{
	size_t mask = cfg->nslots - 1;
	size_t i = hash_str(cfg->secs[idx].name) & mask;

	while (cfg->slots[i])
		i = (i + 1) & mask;
	cfg->slots[i] = idx + 1;
}

/* Indexes secs[idx]; call after nsecs counts it. */
static int
hash_add(struct dd_config *cfg, size_t idx)
{
	if (cfg->nsecs * 2 > cfg->nslots) {
		size_t n = cfg->nslots ? cfg->nslots * 2 : 64;
		size_t *slots = calloc(n, sizeof(*slots));
		size_t i;

		if (slots == NULL)
			return -ENOMEM;
		free(cfg->slots);
		cfg->slots = slots;
		cfg->nslots = n;
		for (i = 0; i < idx; i++)
			slot_put(cfg, i);
	}
	slot_put(cfg, idx);
	return 0;
}

static const struct section *
find_section(const struct dd_config *cfg, const char *name)
{
	size_t mask, i;

	if (cfg->nslots == 0)
		return NULL;
	mask = cfg->nslots - 1;
	for (i = hash_str(name) & mask; cfg->slots[i]; i = (i + 1) & mask) {
		const struct section *s = &cfg->secs[cfg->slots[i] - 1];

		if (strcmp(s->name, name) == 0)
			return s;
	}
	return NULL;
}

/*
 * Whether name is an instance of a "prefix*suffix" pattern: 1 yes, 0 no,
 * -1 when it has the prefix and suffix but the NAME part is not
 * 1..MAX_NAME characters of [A-Za-z0-9_-].
 */
static int
match_wild(const char *pattern, const char *name)
{
	const char *star = strchr(pattern, '*');
	size_t pl, sl, nl, ml, i;

	if (star == NULL)
		return 0;
	pl = (size_t)(star - pattern);
	sl = strlen(star + 1);
	nl = strlen(name);
	if (nl < pl + sl || memcmp(name, pattern, pl) != 0 ||
	    memcmp(name + nl - sl, star + 1, sl) != 0)
		return 0;
	ml = nl - pl - sl;
	if (ml < 1 || ml > MAX_NAME)
		return -1;
	for (i = pl; i < pl + ml; i++)
		if (!is_alnum(name[i]) && name[i] != '_' && name[i] != '-')
			return -1;
	return 1;
}

/*
 * The schema section a section name belongs to, exact names first. When
 * there is none but a pattern's NAME part is malformed, *bad is that pattern.
 */
static const char *
find_pattern(const struct dd_config *cfg, const char *name, const char **bad)
{
	size_t i;

	if (bad != NULL)
		*bad = NULL;
	for (i = 0; i < cfg->ndefs; i++)
		if (strchr(cfg->defs[i].section, '*') == NULL &&
		    strcmp(cfg->defs[i].section, name) == 0)
			return cfg->defs[i].section;
	for (i = 0; i < cfg->ndefs; i++) {
		int m = match_wild(cfg->defs[i].section, name);

		if (m > 0)
			return cfg->defs[i].section;
		if (m < 0 && bad != NULL && *bad == NULL)
			*bad = cfg->defs[i].section;
	}
	return NULL;
}

static const struct kdef *
find_def(const struct dd_config *cfg, const char *pattern, const char *key, size_t kl)
{
	size_t i;

	for (i = 0; i < cfg->ndefs; i++) {
		const struct kdef *d = &cfg->defs[i];

		if (strcmp(d->section, pattern) == 0 && strlen(d->name) == kl &&
		    memcmp(d->name, key, kl) == 0)
			return d;
	}
	return NULL;
}

static const struct entry *
section_entry(const struct dd_config *cfg, const struct section *sec, const struct kdef *def)
{
	size_t i;

	for (i = sec->first; i < sec->first + sec->count; i++)
		if (cfg->ents[i].def == def)
			return &cfg->ents[i];
	return NULL;
}

/* ---- numbers ---- */

static uint64_t
gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

static int
rate_suffix(const char *s, size_t n, uint64_t *mult)
{
	if (n == 0) {
		*mult = 1;
		return 0;
	}
	if (n != 1)
		return -EINVAL;
	switch (s[0]) {
	case 'k':
	case 'K':
		*mult = UINT64_C(1000);
		return 0;
	case 'm':
	case 'M':
		*mult = UINT64_C(1000000);
		return 0;
	case 'g':
	case 'G':
		*mult = UINT64_C(1000000000);
		return 0;
	}
	return -EINVAL;
}

static int
size_suffix(const char *s, size_t n, uint64_t *mult)
{
	static const char units[] = "kmgt";
	const char *u;

	if (n == 0 || (n == 1 && s[0] == 'B')) {
		*mult = 1;
		return 0;
	}
	u = memchr(units, to_lower(s[0]), sizeof(units) - 1);
	if (u == NULL)
		return -EINVAL;
	if (!(n == 1 || (n == 2 && s[1] == 'B') || (n == 3 && s[1] == 'i' && s[2] == 'B')))
		return -EINVAL;
	*mult = UINT64_C(1) << (10 * (u - units + 1));
	return 0;
}

static int
duration_suffix(const char *s, size_t n, uint64_t *mult)
{
	if (n == 0 || (n == 2 && s[0] == 'm' && s[1] == 's')) {
		*mult = 1;
		return 0;
	}
	if (n != 1)
		return -EINVAL;
	switch (s[0]) {
	case 's':
		*mult = UINT64_C(1000);
		return 0;
	case 'm':
		*mult = UINT64_C(60000);
		return 0;
	case 'h':
		*mult = UINT64_C(3600000);
		return 0;
	}
	return -EINVAL;
}

/*
 * "DIGITS[.DIGITS][ ]SUFFIX" times the suffix's multiplier. 0, -EINVAL (not
 * a number), -ERANGE (does not fit in 64 bits), -EDOM (not a whole unit).
 */
static int
parse_scaled(const char *s, size_t n, suffix_fn *suffix, uint64_t *out)
{
	uint64_t ip = 0, mult, v;
	size_t i = 0, fs = 0, fe = 0;
	bool big = false;

	if (n == 0 || !is_digit(s[0]))
		return -EINVAL;
	for (; i < n && is_digit(s[i]); i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (ip > (UINT64_MAX - d) / 10)
			big = true;
		else
			ip = ip * 10 + d;
	}
	if (i < n && s[i] == '.') {
		fs = ++i;
		if (i >= n || !is_digit(s[i]))
			return -EINVAL;
		while (i < n && is_digit(s[i]))
			i++;
		fe = i;
		while (fe > fs && s[fe - 1] == '0')
			fe--;
	}
	while (i < n && is_space(s[i]))
		i++;
	if (suffix(s + i, n - i, &mult) < 0)
		return -EINVAL;
	if (big || (ip != 0 && mult > UINT64_MAX / ip))
		return -ERANGE;
	v = ip * mult;
	if (fe > fs) {
		uint64_t f = 0, p10 = 1, g, q, add;
		size_t j;

		if (fe - fs > 19)
			return -EDOM;
		for (j = fs; j < fe; j++) {
			f = f * 10 + (uint64_t)(s[j] - '0');
			p10 *= 10;
		}
		/* f / p10 * mult must be whole: reduce to avoid overflow. */
		g = gcd(mult, p10);
		q = p10 / g;
		if (f % q != 0)
			return -EDOM;
		add = f / q * (mult / g);
		if (v > UINT64_MAX - add)
			return -ERANGE;
		v += add;
	}
	*out = v;
	return 0;
}

static int
parse_uint(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	bool big = false;
	size_t i;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		unsigned d;

		if (!is_digit(s[i]))
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			big = true;
		else
			v = v * 10 + d;
	}
	if (big)
		return -ERANGE;
	*out = v;
	return 0;
}

static int
parse_number(enum dd_config_type type, const char *s, size_t n, uint64_t *out)
{
	switch (type) {
	case DD_CFG_SIZE:
		return parse_scaled(s, n, size_suffix, out);
	case DD_CFG_RATE:
		return parse_scaled(s, n, rate_suffix, out);
	case DD_CFG_DURATION:
		return parse_scaled(s, n, duration_suffix, out);
	default:
		return parse_uint(s, n, out);
	}
}

/* A number the way a user would write it for this type: "1G", "64M", "5s". */
static const char *
fmt_num(enum dd_config_type type, uint64_t v, char *buf, size_t size)
{
	struct unit {
		uint64_t mult;
		const char *sfx;
	};
	static const struct unit rate[] = {
		{ UINT64_C(1000000000), "G" }, { UINT64_C(1000000), "M" },
		{ UINT64_C(1000), "k" }, { 0, NULL },
	};
	static const struct unit bytes[] = {
		{ UINT64_C(1) << 40, "T" }, { UINT64_C(1) << 30, "G" },
		{ UINT64_C(1) << 20, "M" }, { UINT64_C(1) << 10, "K" }, { 0, NULL },
	};
	static const struct unit time[] = {
		{ UINT64_C(3600000), "h" }, { UINT64_C(60000), "m" },
		{ UINT64_C(1000), "s" }, { 1, "ms" }, { 0, NULL },
	};
	const struct unit *u = NULL;

	if (type == DD_CFG_RATE)
		u = rate;
	else if (type == DD_CFG_SIZE)
		u = bytes;
	else if (type == DD_CFG_DURATION)
		u = time;
	if (v != 0 && u != NULL) {
		for (; u->sfx != NULL; u++) {
			if (v % u->mult == 0) {
				snprintf(buf, size, "%" PRIu64 "%s", v / u->mult, u->sfx);
				return buf;
			}
		}
	}
	snprintf(buf, size, "%" PRIu64, v);
	return buf;
}

/* ---- values ---- */

/* "a|b|c" -> "a, b, c" */
static const char *
choices_show(char *buf, size_t size, const char *choices)
{
	size_t j = 0;

	for (; *choices && j + 3 < size; choices++) {
		if (*choices == '|') {
			buf[j++] = ',';
			buf[j++] = ' ';
		} else {
			buf[j++] = *choices;
		}
	}
	buf[j] = '\0';
	return buf;
}

/* What a key wants, and an example line: "bits per second", "rate = 1G". */
static void
describe(const struct kdef *k, char *desc, size_t dl, char *ex, size_t el)
{
	char num[32], list[256];
	uint64_t v = 0;
	const char *what = NULL;

	switch (k->type) {
	case DD_CFG_STRING:
		snprintf(desc, dl, "%s", k->list ? "a comma separated list" : "text");
		snprintf(ex, el, "%s = %s", k->name, k->list ? "one, two" : "...");
		return;
	case DD_CFG_BOOL:
		snprintf(desc, dl, "yes or no");
		snprintf(ex, el, "%s = yes", k->name);
		return;
	case DD_CFG_ENUM:
		snprintf(desc, dl, "one of %s", choices_show(list, sizeof(list), k->choices));
		snprintf(ex, el, "%s = %.*s", k->name, (int)strcspn(k->choices, "|"), k->choices);
		return;
	case DD_CFG_HOSTPORT:
		snprintf(desc, dl, "%s", k->list ? "HOST:PORT, several separated by commas" : "HOST:PORT");
		snprintf(ex, el, "%s = %s", k->name,
			 k->list ? "192.0.2.1:5000, 192.0.2.2:5000" : "192.0.2.1:5000");
		return;
	case DD_CFG_UINT:
		what = "a whole number";
		v = 1;
		break;
	case DD_CFG_SIZE:
		what = "bytes";
		v = UINT64_C(64) << 20;
		break;
	case DD_CFG_RATE:
		what = "bits per second";
		v = UINT64_C(1000000000);
		break;
	case DD_CFG_DURATION:
		what = "milliseconds, or with a unit ms, s, m or h";
		v = 5000;
		break;
	}
	if (v < k->min)
		v = k->min;
	if (k->max != 0 && v > k->max)
		v = k->max;
	snprintf(desc, dl, "%s", what);
	snprintf(ex, el, "%s = %s", k->name, fmt_num(k->type, v, num, sizeof(num)));
}

/* NULL when s is "HOST:PORT" or "[V6]:PORT", else what is wrong. */
static const char *
hostport_problem(const char *s, size_t n)
{
	size_t i, hl;
	uint32_t port = 0;
	const char *host;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		bool colon = false;

		if (close == NULL)
			return "the '[' has no closing ']'";
		host = s + 1;
		hl = (size_t)(close - host);
		if (hl == 0)
			return "the host is empty";
		for (i = 0; i < hl && host[i] != '%'; i++) {
			if (host[i] == ':')
				colon = true;
			else if (!is_xdigit(host[i]) && host[i] != '.')
				return "the address in brackets is not an IPv6 address";
		}
		if (!colon)
			return "the address in brackets is not an IPv6 address";
		if (i < hl && i + 1 == hl)
			return "the IPv6 zone after '%' is empty";
		for (i++; i < hl; i++)
			if (!is_alnum(host[i]) && host[i] != '_' && host[i] != '-' && host[i] != '.')
				return "the IPv6 zone has a character that is not allowed";
		i = (size_t)(close - s) + 1;
		if (i >= n || s[i] != ':')
			return "the port is missing (write [ADDRESS]:PORT)";
		i++;
	} else {
		size_t colon = n;

		for (i = 0; i < n; i++)
			if (s[i] == ':')
				colon = i;
		if (colon == n)
			return "the port is missing";
		host = s;
		hl = colon;
		if (hl == 0)
			return "the host is empty";
		if (memchr(host, ':', hl) != NULL)
			return "an IPv6 address must be in brackets, e.g. [2001:db8::1]:5000";
		for (i = 0; i < hl; i++)
			if (!is_alnum(host[i]) && host[i] != '.' && host[i] != '-' && host[i] != '_')
				return "the host may only have letters, digits, '.', '-' and '_'";
		i = colon + 1;
	}
	if (i >= n)
		return "the port is missing";
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return "the port is not a number";
		port = port * 10 + (uint32_t)(s[i] - '0');
		if (port > 65535)
			return "the port must be 1..65535";
	}
	if (port == 0)
		return "the port must be 1..65535";
	return NULL;
}

static int
check_list(const struct kdef *k, const char *v, size_t n, size_t *items, char *why, size_t wl)
{
	char shown[SHOW_BUF];
	const char *p = v, *end = v + n;
	size_t count = 0;

	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item = p, *problem;
		size_t il = (size_t)((comma ? comma : end) - p);

		trim(&item, &il);
		count++;
		if (il == 0) {
			snprintf(why, wl, "item %zu of the list is empty (items are separated by ',')", count);
			return -EINVAL;
		}
		if (k->type == DD_CFG_HOSTPORT && (problem = hostport_problem(item, il)) != NULL) {
			snprintf(why, wl, "item %zu '%s' is not HOST:PORT: %s (examples: %s)", count,
				 show(shown, sizeof(shown), item, il), problem, HOSTPORT_EXAMPLES);
			return -EINVAL;
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	*items = count;
	return 0;
}

static int
check_number(const struct kdef *k, const char *v, size_t n, uint64_t *num, char *why, size_t wl)
{
	char shown[SHOW_BUF], lo[32], hi[32];
	const char *what = "a whole number", *examples = "0, 10, 1500", *unit = "units";
	uint64_t x = 0;
	int rc;

	switch (k->type) {
	case DD_CFG_SIZE:
		what = "a size";
		examples = "4096, 64K, 64M, 1.5G, 64MiB";
		unit = "bytes";
		break;
	case DD_CFG_RATE:
		what = "a rate";
		examples = "100M, 1G, 9.5G";
		unit = "bits per second";
		break;
	case DD_CFG_DURATION:
		what = "a duration";
		examples = "250ms, 5s, 2m, 1h; a bare number is milliseconds";
		unit = "milliseconds";
		break;
	default:
		break;
	}
	rc = parse_number(k->type, v, n, &x);
	show(shown, sizeof(shown), v, n);
	if (rc == -EINVAL) {
		snprintf(why, wl, "'%s' is not %s (examples: %s)", shown, what, examples);
		return -EINVAL;
	}
	if (rc == -EDOM) {
		snprintf(why, wl, "'%s' is not a whole number of %s", shown, unit);
		return -EINVAL;
	}
	if (rc == 0 && x >= k->min && (k->max == 0 || x <= k->max)) {
		*num = x;
		return 0;
	}
	fmt_num(k->type, k->min, lo, sizeof(lo));
	fmt_num(k->type, k->max, hi, sizeof(hi));
	if (k->max != 0)
		snprintf(why, wl, "'%s' is out of range (allowed %s..%s)", shown, lo, hi);
	else if (rc == -ERANGE)
		snprintf(why, wl, "'%s' is too large", shown);
	else
		snprintf(why, wl, "'%s' is too small (must be at least %s)", shown, lo);
	return -EINVAL;
}

/* Checks a value (unquoted) against its key; why gets the reason. */
static int
check_value(const struct kdef *k, const char *v, uint64_t *num, size_t *items, char *why, size_t wl)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	char shown[SHOW_BUF], desc[320], ex[320];
	size_t n = strlen(v), i;
	const char *problem;

	*num = 0;
	*items = 1;
	if (n == 0) {
		describe(k, desc, sizeof(desc), ex, sizeof(ex));
		snprintf(why, wl, "value is empty (%s, e.g. %s)", desc, ex);
		return -EINVAL;
	}
	switch (k->type) {
	case DD_CFG_STRING:
		return k->list ? check_list(k, v, n, items, why, wl) : 0;
	case DD_CFG_HOSTPORT:
		if (k->list)
			return check_list(k, v, n, items, why, wl);
		problem = hostport_problem(v, n);
		if (problem == NULL)
			return 0;
		snprintf(why, wl, "'%s' is not HOST:PORT: %s (examples: %s)",
			 show(shown, sizeof(shown), v, n), problem, HOSTPORT_EXAMPLES);
		return -EINVAL;
	case DD_CFG_BOOL:
		for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
			if (eq_nocase(v, n, yes[i])) {
				*num = 1;
				return 0;
			}
			if (eq_nocase(v, n, no[i]))
				return 0;
		}
		snprintf(why, wl, "'%s' is not yes or no (use yes/no, true/false, on/off or 1/0)",
			 show(shown, sizeof(shown), v, n));
		return -EINVAL;
	case DD_CFG_ENUM: {
		const char *c = k->choices;
		char list[256];

		for (;;) {
			size_t cl = strcspn(c, "|");

			if (cl == n && memcmp(c, v, n) == 0)
				return 0;
			if (c[cl] == '\0')
				break;
			c += cl + 1;
		}
		snprintf(why, wl, "'%s' is not one of: %s", show(shown, sizeof(shown), v, n),
			 choices_show(list, sizeof(list), k->choices));
		return -EINVAL;
	}
	default:
		return check_number(k, v, n, num, why, wl);
	}
}

/*
 * The text after '=': trimmed, and unquoted when it starts with '"'.
 * 0, -ENOMEM, or -EINVAL with *why set.
 */
static int
take_value(struct dd_config *cfg, const char *s, size_t n, const char **out, const char **why)
{
	bool closed = false;
	size_t i, j = 0;
	char *buf;

	trim(&s, &n);
	if (n == 0 || s[0] != '"') {
		*out = arena_strndup(cfg, s, n);
		return *out != NULL ? 0 : -ENOMEM;
	}
	buf = arena_alloc(cfg, n);
	if (buf == NULL)
		return -ENOMEM;
	for (i = 1; i < n; i++) {
		if (s[i] == '\\') {
			if (i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\')) {
				buf[j++] = s[++i];
				continue;
			}
			*why = "in a quoted value a backslash must be followed by '\"' or '\\' "
			       "(write \\\\ for one backslash)";
			return -EINVAL;
		}
		if (s[i] == '"') {
			closed = true;
			i++;
			break;
		}
		buf[j++] = s[i];
	}
	if (!closed) {
		*why = "the quoted value has no closing '\"'";
		return -EINVAL;
	}
	if (i != n) {
		*why = "unexpected text after the closing '\"' (comments must be on their own line)";
		return -EINVAL;
	}
	buf[j] = '\0';
	*out = buf;
	return 0;
}

/* ---- schema ---- */

static int
load_schema(struct parser *p, const struct dd_config_key *schema)
{
	struct dd_config *cfg = p->cfg;
	char why[WHY_BUF];
	size_t n = 0, i, j;

	if (schema == NULL)
		return fail_plain(p, -EINVAL, "schema: missing");
	while (schema[n].section != NULL)
		n++;
	cfg->defs = calloc(n ? n : 1, sizeof(*cfg->defs));
	if (cfg->defs == NULL)
		return fail_plain(p, -ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		const struct dd_config_key *k = &schema[i];
		struct kdef *d = &cfg->defs[i];
		const char *star = strchr(k->section, '*');

		if (k->section[0] == '\0' || k->name == NULL || k->name[0] == '\0')
			return fail_plain(p, -EINVAL, "schema: entry %zu has no section or name", i);
		if (star != NULL && strchr(star + 1, '*') != NULL)
			return fail_plain(p, -EINVAL, "schema: [%s] has more than one '*'", k->section);
		if ((unsigned)k->type > DD_CFG_HOSTPORT)
			return fail_plain(p, -EINVAL, "schema: [%s] %s has an unknown type",
					  k->section, k->name);
		if (k->type == DD_CFG_ENUM &&
		    (k->choices == NULL || k->choices[0] == '\0' || k->choices[0] == '|' ||
		     strstr(k->choices, "||") != NULL || k->choices[strlen(k->choices) - 1] == '|'))
			return fail_plain(p, -EINVAL, "schema: [%s] %s needs choices like \"a|b\"",
					  k->section, k->name);
		if (k->list && k->type != DD_CFG_STRING && k->type != DD_CFG_HOSTPORT)
			return fail_plain(p, -EINVAL, "schema: [%s] %s: only STRING and HOSTPORT can be lists",
					  k->section, k->name);
		if (k->max != 0 && k->min > k->max)
			return fail_plain(p, -EINVAL, "schema: [%s] %s has min > max", k->section, k->name);
		for (j = 0; j < i; j++)
			if (strcmp(schema[j].section, k->section) == 0 &&
			    strcmp(schema[j].name, k->name) == 0)
				return fail_plain(p, -EINVAL, "schema: [%s] %s is declared twice",
						  k->section, k->name);

		d->section = arena_strndup(cfg, k->section, strlen(k->section));
		d->name = arena_strndup(cfg, k->name, strlen(k->name));
		d->choices = k->choices ? arena_strndup(cfg, k->choices, strlen(k->choices)) : NULL;
		if (d->section == NULL || d->name == NULL || (k->choices && d->choices == NULL))
			return fail_plain(p, -ENOMEM, "out of memory");
		d->type = k->type;
		d->required = k->required;
		d->list = k->list;
		d->min = k->min;
		d->max = k->max;
		cfg->ndefs = i + 1;

		if (k->fallback != NULL) {
			const char *reason = "";
			int rc = take_value(cfg, k->fallback, strlen(k->fallback), &d->dflt, &reason);

			if (rc == -ENOMEM)
				return fail_plain(p, rc, "out of memory");
			if (rc == 0)
				rc = check_value(d, d->dflt, &d->dnum, &d->ditems, why, sizeof(why));
			else
				snprintf(why, sizeof(why), "%s", reason);
			if (rc < 0)
				return fail_plain(p, -EINVAL, "schema: bad default for [%s] %s: %s",
						  k->section, k->name, why);
			d->has_default = true;
		}
	}
	return 0;
}

/* "[link], [queue], [channel.NAME]" */
static void
known_sections(const struct dd_config *cfg, char *buf, size_t size)
{
	char pat[160];
	size_t i, j;

	buf[0] = '\0';
	for (i = 0; i < cfg->ndefs; i++) {
		for (j = 0; j < i; j++)
			if (strcmp(cfg->defs[j].section, cfg->defs[i].section) == 0)
				break;
		if (j == i)
			append(buf, size, "%s[%s]", buf[0] ? ", " : "",
			       pattern_show(pat, sizeof(pat), cfg->defs[i].section));
	}
}

/* ---- parsing ---- */

static int
nomem(const struct parser *p)
{
	return fail(p, 0, -ENOMEM, "out of memory");
}

static int
parse_header(struct parser *p, unsigned line, const char *s, size_t n)
{
	struct dd_config *cfg = p->cfg;
	char shown[SHOW_BUF], pat[160], list[512];
	const char *close = memchr(s, ']', n);
	const char *name = s + 1, *rest, *pattern, *bad;
	const struct section *dup;
	struct section *sec;
	size_t nl, rl;
	char *copy;
	void *mem;

	if (close == NULL)
		return fail(p, line, -EINVAL, "section header '%s' has no closing ']'",
			    show(shown, sizeof(shown), s, n));
	nl = (size_t)(close - name);
	rest = close + 1;
	rl = n - (size_t)(rest - s);
	trim(&rest, &rl);
	if (rl != 0)
		return fail(p, line, -EINVAL,
			    "unexpected text '%s' after the section header (comments must be on their own line)",
			    show(shown, sizeof(shown), rest, rl));
	trim(&name, &nl);
	if (nl == 0)
		return fail(p, line, -EINVAL, "empty section name '[]'");
	copy = arena_strndup(cfg, name, nl);
	if (copy == NULL)
		return nomem(p);
	pattern = find_pattern(cfg, copy, &bad);
	if (pattern == NULL && bad != NULL)
		return fail(p, line, -EINVAL,
			    "bad section name [%s] (expected [%s] where NAME is 1 to %d letters, digits, '_' or '-')",
			    show(shown, sizeof(shown), name, nl), pattern_show(pat, sizeof(pat), bad), MAX_NAME);
	if (pattern == NULL) {
		known_sections(cfg, list, sizeof(list));
		return fail(p, line, -EINVAL, "unknown section [%s] (known sections: %s)",
			    show(shown, sizeof(shown), name, nl), list);
	}
	dup = find_section(cfg, copy);
	if (dup != NULL)
		return fail(p, line, -EINVAL,
			    "duplicate section [%s] (first at line %u; a section may appear only once)",
			    copy, dup->line);

	mem = grow(cfg->secs, &cfg->capsecs, cfg->nsecs + 1, sizeof(*cfg->secs));
	if (mem == NULL)
		return nomem(p);
	cfg->secs = mem;
	sec = &cfg->secs[cfg->nsecs];
	sec->name = copy;
	sec->pattern = pattern;
	sec->line = line;
	sec->where = arena_where(cfg, line);
	sec->first = cfg->nents;
	sec->count = 0;
	if (sec->where == NULL)
		return nomem(p);
	cfg->nsecs++;
	if (hash_add(cfg, cfg->nsecs - 1) < 0)
		return nomem(p);
	p->cur = cfg->nsecs;
	return 0;
}

static int
unknown_key(const struct parser *p, unsigned line, const struct section *sec, const char *key, size_t kl)
{
	const struct dd_config *cfg = p->cfg;
	char shown[SHOW_BUF], pat[160], list[512] = "";
	size_t i;

	show(shown, sizeof(shown), key, kl);
	for (i = 0; i < cfg->ndefs; i++) {
		const struct kdef *d = &cfg->defs[i];

		if (strlen(d->name) == kl && memcmp(d->name, key, kl) == 0)
			return fail(p, line, -EINVAL, "unknown key '%s' in [%s] ('%s' belongs in [%s])",
				    shown, sec->name, shown, pattern_show(pat, sizeof(pat), d->section));
	}
	for (i = 0; i < cfg->ndefs; i++)
		if (strcmp(cfg->defs[i].section, sec->pattern) == 0)
			append(list, sizeof(list), "%s%s", list[0] ? ", " : "", cfg->defs[i].name);
	return fail(p, line, -EINVAL, "unknown key '%s' in [%s] (known keys: %s)", shown, sec->name, list);
}

static int
parse_key(struct parser *p, unsigned line, const char *s, size_t n)
{
	struct dd_config *cfg = p->cfg;
	char shown[SHOW_BUF], why[WHY_BUF];
	const char *eq = memchr(s, '=', n);
	const char *key = s, *value = NULL, *reason = "";
	const struct kdef *def;
	const struct entry *dup;
	struct section *sec;
	struct entry *e;
	uint64_t num;
	size_t kl, items;
	void *mem;
	int rc;

	if (eq == NULL)
		return fail(p, line, -EINVAL, "expected 'key = value', got '%s'",
			    show(shown, sizeof(shown), s, n));
	kl = (size_t)(eq - s);
	trim(&key, &kl);
	if (kl == 0)
		return fail(p, line, -EINVAL, "expected 'key = value' but the key before '=' is missing");
	if (p->cur == 0)
		return fail(p, line, -EINVAL,
			    "'%s' comes before any [section] header (put it below the section it belongs to)",
			    show(shown, sizeof(shown), key, kl));
	sec = &cfg->secs[p->cur - 1];
	def = find_def(cfg, sec->pattern, key, kl);
	if (def == NULL)
		return unknown_key(p, line, sec, key, kl);
	dup = section_entry(cfg, sec, def);
	if (dup != NULL)
		return fail(p, line, -EINVAL, "duplicate key '%s' in [%s] (first set at line %u)",
			    def->name, sec->name, dup->line);

	rc = take_value(cfg, eq + 1, n - (size_t)(eq + 1 - s), &value, &reason);
	if (rc == -ENOMEM)
		return nomem(p);
	if (rc < 0)
		return fail(p, line, rc, "[%s] %s: %s", sec->name, def->name, reason);
	if (check_value(def, value, &num, &items, why, sizeof(why)) < 0)
		return fail(p, line, -EINVAL, "[%s] %s: %s", sec->name, def->name, why);

	mem = grow(cfg->ents, &cfg->capents, cfg->nents + 1, sizeof(*cfg->ents));
	if (mem == NULL)
		return nomem(p);
	cfg->ents = mem;
	e = &cfg->ents[cfg->nents];
	e->def = def;
	e->value = value;
	e->num = num;
	e->items = items;
	e->line = line;
	e->where = arena_where(cfg, line);
	if (e->where == NULL)
		return nomem(p);
	cfg->nents++;
	sec->count++;
	return 0;
}

static int
parse_text(struct parser *p, const char *text, size_t len)
{
	const char *pos = text, *end;
	unsigned line = 0;

	if (len == 0)
		return 0;
	end = text + len;
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos += 3; /* a UTF-8 byte order mark */
	while (pos < end) {
		const char *nl = memchr(pos, '\n', (size_t)(end - pos));
		size_t n = (size_t)((nl ? nl : end) - pos);
		const char *s = pos;
		int rc;

		line++;
		if (n > MAX_LINE)
			return fail(p, line, -EINVAL, "line is longer than %d bytes (%zu)", MAX_LINE, n);
		if (memchr(pos, '\0', n) != NULL)
			return fail(p, line, -EINVAL, "NUL byte (a configuration file must be plain text)");
		trim(&s, &n);
		if (n == 0 || s[0] == '#' || s[0] == ';')
			rc = 0;
		else if (s[0] == '[')
			rc = parse_header(p, line, s, n);
		else
			rc = parse_key(p, line, s, n);
		if (rc < 0)
			return rc;
		pos = nl ? nl + 1 : end;
	}
	return 0;
}

static int
check_required(const struct parser *p)
{
	const struct dd_config *cfg = p->cfg;
	char desc[320], ex[320];
	size_t i, j;

	for (i = 0; i < cfg->nsecs; i++) {
		const struct section *sec = &cfg->secs[i];

		for (j = 0; j < cfg->ndefs; j++) {
			const struct kdef *d = &cfg->defs[j];

			if (!d->required || strcmp(d->section, sec->pattern) != 0 ||
			    section_entry(cfg, sec, d) != NULL)
				continue;
			describe(d, desc, sizeof(desc), ex, sizeof(ex));
			return fail(p, sec->line, -EINVAL, "[%s] %s is required (%s, e.g. %s)",
				    sec->name, d->name, desc, ex);
		}
	}
	for (j = 0; j < cfg->ndefs; j++) {
		const struct kdef *d = &cfg->defs[j];

		if (!d->required || strchr(d->section, '*') != NULL ||
		    find_section(cfg, d->section) != NULL)
			continue;
		describe(d, desc, sizeof(desc), ex, sizeof(ex));
		return fail(p, 0, -EINVAL,
			    "missing required key '%s' in [%s] (add a [%s] section with e.g. %s; %s)",
			    d->name, d->section, d->section, ex, desc);
	}
	return 0;
}

int
dd_config_parse(struct dd_config **out, const char *name, const char *text, size_t len,
		const struct dd_config_key *schema, char *err, size_t errlen)
{
	struct parser p = { .name = name ? name : "config", .err = err, .errlen = errlen };
	struct dd_config *cfg;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out == NULL)
		return fail_plain(&p, -EINVAL, "dd_config_parse: no output pointer");
	*out = NULL;
	if (text == NULL && len > 0)
		return fail_plain(&p, -EINVAL, "dd_config_parse: no text");
	if (len > MAX_FILE)
		return fail(&p, 0, -EFBIG, "file is larger than 1 MiB (%zu bytes)", len);
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		return fail(&p, 0, -ENOMEM, "out of memory");
	p.cfg = cfg;
	cfg->name = arena_strndup(cfg, p.name, strlen(p.name));
	if (cfg->name == NULL)
		rc = nomem(&p);
	else if ((rc = load_schema(&p, schema)) == 0 && (rc = parse_text(&p, text, len)) == 0)
		rc = check_required(&p);
	if (rc < 0) {
		dd_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

int
dd_config_load(struct dd_config **out, const char *path, const struct dd_config_key *schema,
	       char *err, size_t errlen)
{
	struct parser p = { .name = path ? path : "config", .err = err, .errlen = errlen };
	size_t len = 0, cap = 0;
	char *buf = NULL;
	int fd, rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out != NULL)
		*out = NULL;
	if (out == NULL || path == NULL)
		return fail_plain(&p, -EINVAL, "dd_config_load: no output pointer or path");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = errno;
		return fail(&p, 0, -rc, "cannot open: %s", strerror(rc));
	}
	for (;;) {
		ssize_t r;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *mem;

			if (ncap > MAX_FILE + 1)
				ncap = MAX_FILE + 1;
			mem = realloc(buf, ncap);
			if (mem == NULL) {
				rc = fail(&p, 0, -ENOMEM, "out of memory");
				goto out;
			}
			buf = mem;
			cap = ncap;
		}
		r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = errno;
			rc = fail(&p, 0, -rc, "cannot read: %s", strerror(rc));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > MAX_FILE) {
			rc = fail(&p, 0, -EFBIG, "file is larger than 1 MiB");
			goto out;
		}
	}
	close(fd);
	fd = -1;
	rc = dd_config_parse(out, path, buf, len, schema, err, errlen);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

void
dd_config_free(struct dd_config *cfg)
{
	struct chunk *c, *next;

	if (cfg == NULL)
		return;
	for (c = cfg->arena; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(cfg->defs);
	free(cfg->secs);
	free(cfg->ents);
	free(cfg->slots);
	free(cfg);
}

/* ---- getters ---- */

static bool
lookup(const struct dd_config *cfg, const char *section, const char *key, struct found *f)
{
	const struct section *sec;
	const char *pattern;
	const struct kdef *def;

	memset(f, 0, sizeof(*f));
	if (cfg == NULL)
		return false;
	f->where = cfg->name;
	if (section == NULL)
		return false;
	sec = find_section(cfg, section);
	if (sec != NULL) {
		f->where = sec->where;
		pattern = sec->pattern;
	} else {
		pattern = find_pattern(cfg, section, NULL);
	}
	if (pattern == NULL || key == NULL)
		return false;
	def = find_def(cfg, pattern, key, strlen(key));
	if (def == NULL)
		return false;
	f->def = def;
	if (sec != NULL) {
		const struct entry *e = section_entry(cfg, sec, def);

		if (e != NULL) {
			f->value = e->value;
			f->num = e->num;
			f->items = e->items;
			f->where = e->where;
			return true;
		}
	}
	if (!def->has_default)
		return false;
	f->value = def->dflt;
	f->num = def->dnum;
	f->items = def->ditems;
	return true;
}

bool
dd_config_has(const struct dd_config *cfg, const char *section, const char *key)
{
	struct found f;

	return lookup(cfg, section, key, &f);
}

const char *
dd_config_str(const struct dd_config *cfg, const char *section, const char *key)
{
	struct found f;

	return lookup(cfg, section, key, &f) ? f.value : NULL;
}

uint64_t
dd_config_u64(const struct dd_config *cfg, const char *section, const char *key)
{
	struct found f;

	return lookup(cfg, section, key, &f) ? f.num : 0;
}

bool
dd_config_bool(const struct dd_config *cfg, const char *section, const char *key)
{
	struct found f;

	return lookup(cfg, section, key, &f) && f.def->type == DD_CFG_BOOL && f.num != 0;
}

size_t
dd_config_list_len(const struct dd_config *cfg, const char *section, const char *key)
{
	struct found f;

	if (!lookup(cfg, section, key, &f))
		return 0;
	return f.def->list ? f.items : 1;
}

int
dd_config_list_item(const struct dd_config *cfg, const char *section, const char *key,
		    size_t i, char *buf, size_t buflen)
{
	const char *item, *end, *comma;
	struct found f;
	size_t n;

	if (buf != NULL && buflen > 0)
		buf[0] = '\0';
	if (!lookup(cfg, section, key, &f))
		return -ENOENT;
	item = f.value;
	n = strlen(item);
	if (f.def->list) {
		end = item + n;
		for (;;) {
			comma = memchr(item, ',', (size_t)(end - item));
			if (i == 0 || comma == NULL)
				break;
			item = comma + 1;
			i--;
		}
		if (i != 0)
			return -ENOENT;
		n = (size_t)((comma ? comma : end) - item);
		trim(&item, &n);
	} else if (i != 0) {
		return -ENOENT;
	}
	if (buf == NULL || n >= buflen)
		return -ENOSPC;
	memcpy(buf, item, n);
	buf[n] = '\0';
	return 0;
}

const char *
dd_config_where(const struct dd_config *cfg, const char *section, const char *key)
{
	struct found f;

	lookup(cfg, section, key, &f);
	return f.where != NULL ? f.where : "";
}

int
dd_config_each_section(const struct dd_config *cfg, const char *prefix,
		       int (*fn)(const char *section, void *arg), void *arg)
{
	size_t i, pl;

	if (cfg == NULL || fn == NULL)
		return -EINVAL;
	if (prefix == NULL)
		prefix = "";
	pl = strlen(prefix);
	for (i = 0; i < cfg->nsecs; i++) {
		if (strncmp(cfg->secs[i].name, prefix, pl) == 0) {
			int rc = fn(cfg->secs[i].name, arg);

			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

/* ---- shared parse helpers ---- */

static int
parse_public(const char *text, suffix_fn *suffix, uint64_t *out)
{
	const char *s = text;
	size_t n;
	uint64_t v;

	if (text == NULL || out == NULL)
		return -EINVAL;
	n = strlen(text);
	trim(&s, &n);
	if (parse_scaled(s, n, suffix, &v) < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

int
dd_config_parse_size(const char *text, uint64_t *bytes)
{
	return parse_public(text, size_suffix, bytes);
}

int
dd_config_parse_rate(const char *text, uint64_t *bits_per_second)
{
	return parse_public(text, rate_suffix, bits_per_second);
}

int
dd_config_parse_duration(const char *text, uint64_t *ms)
{
	return parse_public(text, duration_suffix, ms);
}

static int
count_one(const char *section, void *arg)
{
	(void)section;
	(*(unsigned *)arg)++;
	return 0;
}

unsigned
dd_config_count_sections(const struct dd_config *cfg, const char *prefix)
{
	unsigned n = 0;

	dd_config_each_section(cfg, prefix, count_one, &n);
	return n;
}
