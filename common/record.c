/* Stream channels on the wire: encoding and strict parsing of stream fragments and status, record framing. */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "digest.h"
#include "record.h"

void
dd_record_put_frag(uint8_t *plain, const struct dd_stream_frag *f)
{
	memset(plain, 0, DD_STREAM_HDR_LEN);
	plain[0] = DD_KIND_STREAM;
	plain[1] = f->k;
	plain[2] = f->m;
	plain[3] = f->index;
	dd_store_be32(plain + 4, f->channel);
	dd_store_be64(plain + 8, f->block);
	dd_store_be64(plain + 16, f->first_seq);
	dd_store_be32(plain + 24, f->bytes);
	dd_store_be16(plain + 28, f->count);
}

int
dd_record_parse_frag(struct dd_stream_frag *f, const uint8_t *plain, size_t len, size_t frag_len)
{
	memset(f, 0, sizeof(*f));
	if (frag_len == 0 || len != DD_STREAM_HDR_LEN + frag_len || plain[0] != DD_KIND_STREAM ||
	    !dd_all_zero(plain + 30, 2))
		return -EBADMSG;
	f->k = plain[1];
	f->m = plain[2];
	f->index = plain[3];
	f->channel = dd_load_be32(plain + 4);
	f->block = dd_load_be64(plain + 8);
	f->first_seq = dd_load_be64(plain + 16);
	f->bytes = dd_load_be32(plain + 24);
	f->count = dd_load_be16(plain + 28);
	if (f->k == 0 || f->k > DD_STREAM_K_MAX || f->m > DD_STREAM_M_MAX ||
	    f->index >= f->k + f->m || f->count == 0)
		goto bad;
	/* k is the fewest fragments that hold the records: nothing sent for nothing. */
	if ((uint64_t)f->bytes > (uint64_t)f->k * frag_len ||
	    (uint64_t)f->bytes <= (uint64_t)(f->k - 1) * frag_len)
		goto bad;
	if ((uint64_t)f->count * DD_RECORD_FRAME > f->bytes ||
	    f->first_seq > UINT64_MAX - f->count)
		goto bad;
	return 0;
bad:
	memset(f, 0, sizeof(*f));
	return -EBADMSG;
}

size_t
dd_record_status_capacity(size_t plain_len)
{
	size_t n;

	if (plain_len < DD_STREAM_STATUS_HDR_LEN)
		return 0;
	n = (plain_len - DD_STREAM_STATUS_HDR_LEN) / DD_STREAM_STATUS_ENTRY_LEN;
	return n < DD_CHANNELS_MAX ? n : DD_CHANNELS_MAX;
}

int
dd_record_put_status(uint8_t *plain, size_t cap, const struct dd_stream_status *s)
{
	size_t need = DD_STREAM_STATUS_HDR_LEN + (size_t)s->count * DD_STREAM_STATUS_ENTRY_LEN;

	if (s->count > dd_record_status_capacity(cap) || need > cap)
		return -ENOSPC;
	if (s->count == 0 || s->interval_ms == 0)
		return -EINVAL;
	for (size_t i = 0; i < s->count; i++)
		if ((i > 0 && s->entries[i].channel <= s->entries[i - 1].channel) ||
		    s->entries[i].start_seq > s->entries[i].next_seq)
			return -EINVAL;
	memset(plain, 0, cap);
	plain[0] = DD_KIND_STREAM_STATUS;
	dd_store_be16(plain + 2, s->count);
	dd_store_be32(plain + 4, s->interval_ms);
	for (size_t i = 0; i < s->count; i++) {
		uint8_t *e = plain + DD_STREAM_STATUS_HDR_LEN + i * DD_STREAM_STATUS_ENTRY_LEN;

		dd_store_be32(e, s->entries[i].channel);
		dd_store_be64(e + 8, s->entries[i].blocks);
		dd_store_be64(e + 16, s->entries[i].next_seq);
		dd_store_be64(e + 24, s->entries[i].start_seq);
		dd_store_be64(e + 32, s->entries[i].dropped);
	}
	return (int)need;
}

int
dd_record_parse_status(struct dd_stream_status *s, const uint8_t *plain, size_t len)
{
	size_t count, used;

	memset(s, 0, sizeof(*s));
	if (len < DD_STREAM_STATUS_HDR_LEN || plain[0] != DD_KIND_STREAM_STATUS || plain[1] != 0 ||
	    !dd_all_zero(plain + 8, 8))
		goto bad;
	count = dd_load_be16(plain + 2);
	s->interval_ms = dd_load_be32(plain + 4);
	if (count == 0 || count > dd_record_status_capacity(len) || s->interval_ms == 0)
		goto bad;
	for (size_t i = 0; i < count; i++) {
		const uint8_t *e = plain + DD_STREAM_STATUS_HDR_LEN + i * DD_STREAM_STATUS_ENTRY_LEN;
		struct dd_stream_status_entry *se = &s->entries[i];

		if (!dd_all_zero(e + 4, 4))
			goto bad;
		se->channel = dd_load_be32(e);
		se->blocks = dd_load_be64(e + 8);
		se->next_seq = dd_load_be64(e + 16);
		se->start_seq = dd_load_be64(e + 24);
		se->dropped = dd_load_be64(e + 32);
		if ((i > 0 && se->channel <= s->entries[i - 1].channel) ||
		    se->start_seq > se->next_seq)
			goto bad;
	}
	used = DD_STREAM_STATUS_HDR_LEN + count * DD_STREAM_STATUS_ENTRY_LEN;
	if (!dd_all_zero(plain + used, len - used))
		goto bad;
	s->count = (uint16_t)count;
	return 0;
bad:
	memset(s, 0, sizeof(*s));
	return -EBADMSG;
}

uint32_t
dd_record_channel_id(const char *name)
{
	static const char prefix[] = "diode-channel:";
	struct dd_digest *d = NULL;
	uint8_t out[DD_DIGEST_LEN];

	/* Only at start-up; an allocation failure there is not survivable anyway,
	 * and 0 is as good an id as any other (collisions are checked). */
	if (dd_digest_new(&d) != 0)
		return 0;
	dd_digest_update(d, prefix, sizeof(prefix) - 1);
	dd_digest_update(d, name, strlen(name));
	dd_digest_final(d, out);
	dd_digest_free(d);
	return dd_load_be32(out);
}

size_t
dd_record_max_for(size_t frag_len)
{
	size_t cap = (size_t)DD_STREAM_K_MAX * frag_len;

	if (cap < DD_RECORD_FRAME)
		return 0;
	cap -= DD_RECORD_FRAME;
	return cap < DD_RECORD_MAX ? cap : DD_RECORD_MAX;
}

size_t
dd_record_append(uint8_t *area, size_t cap, size_t used, const void *rec, size_t len)
{
	if (len > DD_RECORD_MAX || used > cap || cap - used < DD_RECORD_FRAME + len)
		return 0;
	dd_store_be16(area + used, (uint16_t)len);
	if (len > 0)
		memcpy(area + used + DD_RECORD_FRAME, rec, len);
	return used + DD_RECORD_FRAME + len;
}

int
dd_record_block_walk(const uint8_t *area, size_t area_len, const struct dd_stream_frag *f,
		     int (*fn)(void *arg, const uint8_t *rec, size_t len), void *arg)
{
	size_t off = 0;
	int rc;

	if (f->bytes > area_len)
		return -EBADMSG;
	/* Check everything first: a block is delivered whole or not at all. */
	for (unsigned i = 0; i < f->count; i++) {
		size_t n;

		if (f->bytes - off < DD_RECORD_FRAME)
			return -EBADMSG;
		n = dd_load_be16(area + off);
		if (f->bytes - off - DD_RECORD_FRAME < n)
			return -EBADMSG;
		off += DD_RECORD_FRAME + n;
	}
	if (off != f->bytes || !dd_all_zero(area + off, area_len - off))
		return -EBADMSG;
	off = 0;
	for (unsigned i = 0; i < f->count; i++) {
		size_t n = dd_load_be16(area + off);

		rc = fn(arg, area + off + DD_RECORD_FRAME, n);
		if (rc != 0)
			return rc;
		off += DD_RECORD_FRAME + n;
	}
	return 0;
}
