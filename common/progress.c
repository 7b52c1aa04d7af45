/* The transfer progress file of diode-tx: format and strictly parse one transfer line. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "progress.h"

static const char *const state_names[DD_PROGRESS_STATES] = {
	"sending", "waiting", "finishing", "sent", "abandoned",
};

const char *
dd_progress_state_name(enum dd_progress_state s)
{
	return (unsigned)s < DD_PROGRESS_STATES ? state_names[s] : "?";
}

static int
has_separator(const char *s, size_t len)
{
	return memchr(s, '\t', len) != NULL || memchr(s, '\n', len) != NULL;
}

int
dd_progress_format(char *out, size_t outlen, const struct dd_progress_entry *e)
{
	const char *reason = e->reason != NULL && e->reason[0] != '\0' ? e->reason : "-";
	size_t plen = strlen(e->path);
	int n;

	if (has_separator(reason, strlen(reason)) || has_separator(e->path, plen) || plen == 0 ||
	    (unsigned)e->state >= DD_PROGRESS_STATES)
		return -EINVAL;
	n = snprintf(out, outlen, "T\t%u\t%s\t%llu\t%llu\t%llu\t%u\t%u\t%s\t%s\n", (unsigned)e->id,
		     state_names[e->state], (unsigned long long)e->ino,
		     (unsigned long long)e->size, (unsigned long long)e->done, e->pass, e->passes,
		     reason, e->path);
	if (n < 0 || (size_t)n >= outlen)
		return -ENOSPC;
	return n;
}

/* The next tab-separated field of [*p, end): its start and length. */
static int
next_field(const char **p, const char *end, const char **f, size_t *flen)
{
	const char *tab;

	if (*p > end)
		return -EBADMSG;
	tab = memchr(*p, '\t', (size_t)(end - *p));
	*f = *p;
	if (tab == NULL)
		return -EBADMSG;
	*flen = (size_t)(tab - *p);
	*p = tab + 1;
	return 0;
}

/* Plain decimal, no sign, no leading zero (except "0"), at most max. */
static int
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		v = v * 10 + d;
	}
	if (v > max)
		return -EBADMSG;
	*out = v;
	return 0;
}

int
dd_progress_parse(struct dd_progress_entry *e, const char *line, size_t len)
{
	const char *p = line, *end = line + len, *f;
	size_t flen;
	uint64_t v[7];
	int st = -1;

	memset(e, 0, sizeof(*e));
	if (len < 2 || len >= DD_PROGRESS_LINE_MAX || memchr(line, '\n', len) != NULL ||
	    memchr(line, '\0', len) != NULL)
		goto bad;
	if (next_field(&p, end, &f, &flen) != 0 || flen != 1 || f[0] != 'T')
		goto bad;
	if (next_field(&p, end, &f, &flen) != 0 || parse_u64(f, flen, UINT32_MAX, &v[0]) != 0)
		goto bad;
	if (next_field(&p, end, &f, &flen) != 0)
		goto bad;
	for (int i = 0; i < DD_PROGRESS_STATES; i++)
		if (strlen(state_names[i]) == flen && memcmp(state_names[i], f, flen) == 0)
			st = i;
	if (st < 0)
		goto bad;
	for (int i = 1; i < 6; i++) {
		uint64_t max = i >= 4 ? 255 : UINT64_MAX;

		if (next_field(&p, end, &f, &flen) != 0 || parse_u64(f, flen, max, &v[i]) != 0)
			goto bad;
	}
	/* v[1] inode, v[2] size, v[3] done, v[4] pass, v[5] passes */
	if (v[3] > v[2] || v[5] == 0 || v[4] >= v[5])
		goto bad;
	if (next_field(&p, end, &f, &flen) != 0 || flen == 0)
		goto bad;
	e->reason = f;
	e->reason_len = flen;
	if (flen == 1 && f[0] == '-') {
		e->reason = "";
		e->reason_len = 0;
	}
	if (p >= end || memchr(p, '\t', (size_t)(end - p)) != NULL)
		goto bad;
	e->path = p;
	e->path_len = (size_t)(end - p);
	e->id = (uint32_t)v[0];
	e->state = (enum dd_progress_state)st;
	e->ino = v[1];
	e->size = v[2];
	e->done = v[3];
	e->pass = (unsigned)v[4];
	e->passes = (unsigned)v[5];
	return 0;
bad:
	memset(e, 0, sizeof(*e));
	return -EBADMSG;
}
