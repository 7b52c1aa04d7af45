/* INI configuration files: schema-checked parsing with file:line errors. */
#ifndef DD_CONFIG_H
#define DD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Syntax: "[section]" or "[section.name]" headers, "key = value" lines,
 * full-line comments starting with '#' or ';', blank lines. Leading and
 * trailing white space of keys and values is ignored; a value may be quoted
 * with double quotes to keep surrounding spaces ("\"" and "\\" escapes).
 * A key may appear once per section; a section may appear once.
 *
 * Every key must be declared in the schema, otherwise loading fails with
 * "FILE:LINE: unknown key 'x' in [section]". Values are checked by type at
 * load time, so getters cannot fail for a declared key.
 */

enum dd_config_type {
	DD_CFG_STRING,   /* any non-empty text */
	DD_CFG_BOOL,     /* yes/no, true/false, on/off, 1/0 */
	DD_CFG_UINT,     /* decimal integer within [min, max] */
	DD_CFG_SIZE,     /* bytes; suffix K/M/G/T = 1024-based; within [min, max] */
	DD_CFG_RATE,     /* bits per second; suffix K/M/G = 1000-based; within [min, max] */
	DD_CFG_DURATION, /* milliseconds; suffix ms, s, m, h; bare number = ms; within [min, max] */
	DD_CFG_ENUM,     /* one of the '|' separated words in choices */
	DD_CFG_HOSTPORT, /* "HOST:PORT" or "[v6]:PORT"; a comma separated list if list */
};

struct dd_config_key {
	const char *section;  /* "link", or "channel.*" for any [channel.NAME] */
	const char *name;
	enum dd_config_type type;
	bool required;        /* missing in a present-or-required section: error */
	const char *fallback; /* default, written as a user would; NULL = none */
	uint64_t min, max;    /* numeric types; max 0 = no upper bound */
	const char *choices;  /* DD_CFG_ENUM: "drop-oldest|drop-newest" */
	bool list;            /* value may be a comma separated list (STRING, HOSTPORT) */
};

/* A schema is an array of keys ended by an entry whose section is NULL. */
struct dd_config;

/*
 * Load and check PATH against SCHEMA. On failure returns a negative errno and
 * writes "PATH:LINE: message" (or "PATH: message") into err. Required keys of
 * sections whose name has no '*' are required even when the section is absent.
 */
int dd_config_load(struct dd_config **out, const char *path,
		   const struct dd_config_key *schema, char *err, size_t errlen);
/* Same, from a string in memory; name is used in messages. */
int dd_config_parse(struct dd_config **out, const char *name, const char *text,
		    size_t len, const struct dd_config_key *schema, char *err,
		    size_t errlen);
void dd_config_free(struct dd_config *cfg);

/*
 * Getters: section is the full section name ("link", "channel.hist").
 * A key that is absent returns its schema default; a key with neither value
 * nor default returns NULL / 0 / false and has_value() is false.
 * DURATION returns milliseconds, RATE bits/s, SIZE bytes.
 */
bool dd_config_has(const struct dd_config *cfg, const char *section, const char *key);
const char *dd_config_str(const struct dd_config *cfg, const char *section, const char *key);
uint64_t dd_config_u64(const struct dd_config *cfg, const char *section, const char *key);
bool dd_config_bool(const struct dd_config *cfg, const char *section, const char *key);

/* Number of comma separated items of a list value, and the i-th one, trimmed
 * (copied into buf; returns -ENOSPC if it does not fit). */
size_t dd_config_list_len(const struct dd_config *cfg, const char *section, const char *key);
int dd_config_list_item(const struct dd_config *cfg, const char *section, const char *key,
			size_t i, char *buf, size_t buflen);

/* "PATH:LINE" of a key (or of its section when the key is absent, or just
 * PATH), for messages about values that are well-formed but unusable. */
const char *dd_config_where(const struct dd_config *cfg, const char *section, const char *key);

/* Iterate the sections whose name starts with prefix ("channel."): calls fn
 * with the full section name; stops and returns fn's value if non-zero. */
int dd_config_each_section(const struct dd_config *cfg, const char *prefix,
			   int (*fn)(const char *section, void *arg), void *arg);

/* Number of sections whose name starts with prefix. */
unsigned dd_config_count_sections(const struct dd_config *cfg, const char *prefix);

/* Parse helpers shared with command-line handling; 0 or -EINVAL. */
int dd_config_parse_size(const char *text, uint64_t *bytes);
int dd_config_parse_rate(const char *text, uint64_t *bits_per_second);
int dd_config_parse_duration(const char *text, uint64_t *ms);

#endif
