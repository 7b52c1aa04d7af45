/* Wire format: encoding and strict parsing of datagram headers and sealed messages. */
#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "path.h"
#include "wire.h"

bool
dd_wire_dgram_size_ok(size_t size)
{
	return size >= DD_DGRAM_MIN && size <= DD_DGRAM_MAX && size % 64 == 0;
}

void
dd_wire_put_header(uint8_t *buf, const struct dd_hdr *h)
{
	buf[0] = DD_VERSION;
	buf[1] = h->type;
	dd_store_be16(buf + 2, h->epoch);
	dd_store_be32(buf + 4, h->session);
	dd_store_be64(buf + 8, h->seq);
}

int
dd_wire_parse_header(struct dd_hdr *h, const uint8_t *buf, size_t len)
{
	memset(h, 0, sizeof(*h));
	if (len < DD_HDR_LEN + DD_TAG_LEN || len > DD_DGRAM_MAX)
		return -EBADMSG;
	if (buf[0] != DD_VERSION)
		return -EBADMSG;
	if (buf[1] == DD_TYPE_ANNOUNCE) {
		if (len != DD_ANNOUNCE_LEN)
			return -EBADMSG;
	} else if (buf[1] == DD_TYPE_SEALED) {
		if (!dd_wire_dgram_size_ok(len))
			return -EBADMSG;
	} else {
		return -EBADMSG;
	}
	h->type = buf[1];
	h->epoch = dd_load_be16(buf + 2);
	h->session = dd_load_be32(buf + 4);
	h->seq = dd_load_be64(buf + 8);
	return 0;
}

void
dd_wire_put_announce(uint8_t *body, const struct dd_announce *a)
{
	memset(body, 0, DD_ANNOUNCE_BODY_LEN);
	body[0] = a->cipher;
	dd_store_be16(body + 4, a->dgram_size);
	memcpy(body + 8, a->ephemeral, DD_KEY_LEN);
	memcpy(body + 40, a->sender, DD_KEY_LEN);
	memcpy(body + 72, a->receiver, DD_KEY_LEN);
	dd_store_be64(body + 104, a->started);
}

int
dd_wire_parse_announce(struct dd_announce *a, const uint8_t *body, size_t len)
{
	memset(a, 0, sizeof(*a));
	if (len != DD_ANNOUNCE_BODY_LEN)
		return -EBADMSG;
	if (body[0] != DD_CIPHER_AES256GCM && body[0] != DD_CIPHER_CHACHA20POLY1305)
		return -EBADMSG;
	if (!dd_all_zero(body + 1, 3) || !dd_all_zero(body + 6, 2))
		return -EBADMSG;
	if (!dd_wire_dgram_size_ok(dd_load_be16(body + 4)))
		return -EBADMSG;
	a->cipher = body[0];
	a->dgram_size = dd_load_be16(body + 4);
	memcpy(a->ephemeral, body + 8, DD_KEY_LEN);
	memcpy(a->sender, body + 40, DD_KEY_LEN);
	memcpy(a->receiver, body + 72, DD_KEY_LEN);
	a->started = dd_load_be64(body + 104);
	return 0;
}

uint32_t
dd_wire_block_count(uint64_t size, unsigned k_full, size_t frag_len)
{
	uint64_t block_bytes = (uint64_t)k_full * frag_len;
	uint64_t blocks;

	if (block_bytes == 0)
		return 0;
	blocks = size / block_bytes + (size % block_bytes != 0);
	return blocks > UINT32_MAX ? UINT32_MAX : (uint32_t)blocks;
}

unsigned
dd_wire_block_k(uint64_t size, unsigned k_full, size_t frag_len, uint32_t block)
{
	uint64_t block_bytes = (uint64_t)k_full * frag_len;
	uint64_t start = (uint64_t)block * block_bytes;
	uint64_t rest;

	if (start >= size)
		return 0;
	rest = size - start;
	if (rest >= block_bytes)
		return k_full;
	return (unsigned)((rest + frag_len - 1) / frag_len);
}

void
dd_wire_put_frag(uint8_t *plain, const struct dd_frag *f)
{
	memset(plain, 0, DD_FRAG_HDR_LEN);
	plain[0] = DD_KIND_FRAGMENT;
	plain[1] = f->k;
	plain[2] = f->m;
	plain[3] = f->index;
	dd_store_be32(plain + 4, f->transfer);
	dd_store_be32(plain + 8, f->block);
	plain[12] = f->k_full;
	plain[13] = f->pass;
	dd_store_be64(plain + 16, f->size);
}

int
dd_wire_parse_frag(struct dd_frag *f, const uint8_t *plain, size_t len, size_t frag_len)
{
	uint32_t blocks;

	memset(f, 0, sizeof(*f));
	if (len != DD_FRAG_HDR_LEN + frag_len || plain[0] != DD_KIND_FRAGMENT)
		return -EBADMSG;
	if (!dd_all_zero(plain + 14, 2) || !dd_all_zero(plain + 24, 8))
		return -EBADMSG;
	f->k = plain[1];
	f->m = plain[2];
	f->index = plain[3];
	f->transfer = dd_load_be32(plain + 4);
	f->block = dd_load_be32(plain + 8);
	f->k_full = plain[12];
	f->pass = plain[13];
	f->size = dd_load_be64(plain + 16);
	if (f->k == 0 || f->k_full == 0 || (unsigned)f->k + f->m > 255 ||
	    f->index >= f->k + f->m || f->size == 0)
		goto bad;
	blocks = dd_wire_block_count(f->size, f->k_full, frag_len);
	if (f->block >= blocks ||
	    f->k != dd_wire_block_k(f->size, f->k_full, frag_len, f->block))
		goto bad;
	return 0;
bad:
	memset(f, 0, sizeof(*f));
	return -EBADMSG;
}

int
dd_wire_put_manifest(uint8_t *plain, size_t cap, const struct dd_manifest *m)
{
	size_t need = DD_MANIFEST_HDR_LEN + m->path_len;

	if (need > cap)
		return -ENOSPC;
	memset(plain, 0, DD_MANIFEST_HDR_LEN);
	plain[0] = DD_KIND_MANIFEST;
	plain[1] = m->flags;
	dd_store_be16(plain + 2, m->path_len);
	dd_store_be32(plain + 4, m->transfer);
	dd_store_be64(plain + 8, m->size);
	dd_store_be64(plain + 16, m->mtime);
	dd_store_be32(plain + 24, m->mode);
	plain[28] = m->k_full;
	plain[29] = m->m_full;
	plain[30] = m->pass;
	plain[31] = m->passes;
	memcpy(plain + 32, m->sha256, DD_SHA256_LEN);
	memcpy(plain + DD_MANIFEST_HDR_LEN, m->path, m->path_len);
	return (int)need;
}

int
dd_wire_parse_manifest(struct dd_manifest *m, const uint8_t *plain, size_t len,
		       size_t frag_len)
{
	memset(m, 0, sizeof(*m));
	if (len < DD_MANIFEST_HDR_LEN || plain[0] != DD_KIND_MANIFEST)
		return -EBADMSG;
	m->flags = plain[1];
	m->path_len = dd_load_be16(plain + 2);
	m->transfer = dd_load_be32(plain + 4);
	m->size = dd_load_be64(plain + 8);
	m->mtime = dd_load_be64(plain + 16);
	m->mode = dd_load_be32(plain + 24);
	m->k_full = plain[28];
	m->m_full = plain[29];
	m->pass = plain[30];
	m->passes = plain[31];
	memcpy(m->sha256, plain + 32, DD_SHA256_LEN);
	if ((m->flags & ~(DD_MANIFEST_FINAL | DD_MANIFEST_ABORT)) != 0 ||
	    (m->flags & DD_MANIFEST_FINAL && m->flags & DD_MANIFEST_ABORT) ||
	    m->passes == 0 || m->pass >= m->passes || m->mode > 07777 || m->k_full == 0 ||
	    (unsigned)m->k_full + m->m_full > 255 || m->path_len == 0 ||
	    m->path_len > DD_PATH_MAX || DD_MANIFEST_HDR_LEN + (size_t)m->path_len > len ||
	    dd_wire_block_count(m->size, m->k_full, frag_len) == UINT32_MAX)
		goto bad;
	if (!(m->flags & DD_MANIFEST_FINAL) && !dd_all_zero(m->sha256, DD_SHA256_LEN))
		goto bad;
	if (!dd_all_zero(plain + DD_MANIFEST_HDR_LEN + m->path_len,
		      len - DD_MANIFEST_HDR_LEN - m->path_len))
		goto bad;
	m->path = (const char *)plain + DD_MANIFEST_HDR_LEN;
	if (dd_path_check(m->path, m->path_len, NULL) != 0)
		goto bad;
	return 0;
bad:
	memset(m, 0, sizeof(*m));
	return -EBADMSG;
}

size_t
dd_wire_beacon_capacity(size_t plain_len)
{
	size_t n = (plain_len - DD_BEACON_HDR_LEN) / DD_BEACON_ENTRY_LEN;
	size_t max = sizeof(((struct dd_beacon *)0)->entries) /
		     sizeof(((struct dd_beacon *)0)->entries[0]);

	return n < max ? n : max;
}

int
dd_wire_put_beacon(uint8_t *plain, size_t cap, const struct dd_beacon *b)
{
	size_t need = DD_BEACON_HDR_LEN + (size_t)b->count * DD_BEACON_ENTRY_LEN;

	if (cap < DD_BEACON_HDR_LEN || b->count > dd_wire_beacon_capacity(cap) || need > cap)
		return -ENOSPC;
	memset(plain, 0, need);
	plain[0] = DD_KIND_BEACON;
	dd_store_be16(plain + 2, b->count);
	dd_store_be32(plain + 4, b->interval_ms);
	dd_store_be64(plain + 8, b->time_ms);
	dd_store_be64(plain + 16, b->datagrams);
	dd_store_be64(plain + 24, b->bytes);
	dd_store_be32(plain + 32, b->files_queued);
	dd_store_be32(plain + 36, b->transfers_active);
	dd_store_be32(plain + 40, b->transfers_done);
	dd_store_be32(plain + 44, b->complete_below);
	for (size_t i = 0; i < b->count; i++) {
		uint8_t *e = plain + DD_BEACON_HDR_LEN + i * DD_BEACON_ENTRY_LEN;
		const struct dd_beacon_entry *be = &b->entries[i];

		dd_store_be32(e, be->transfer);
		e[4] = be->status;
		e[5] = be->pass;
		dd_store_be64(e + 8, be->size);
		dd_store_be64(e + 16, be->last_seq);
	}
	return (int)need;
}

int
dd_wire_parse_beacon(struct dd_beacon *b, const uint8_t *plain, size_t len)
{
	size_t count;

	memset(b, 0, sizeof(*b));
	if (len < DD_BEACON_HDR_LEN || plain[0] != DD_KIND_BEACON || plain[1] != 0)
		goto bad;
	count = dd_load_be16(plain + 2);
	if (count > dd_wire_beacon_capacity(len))
		goto bad;
	b->count = (uint16_t)count;
	b->interval_ms = dd_load_be32(plain + 4);
	b->time_ms = dd_load_be64(plain + 8);
	b->datagrams = dd_load_be64(plain + 16);
	b->bytes = dd_load_be64(plain + 24);
	b->files_queued = dd_load_be32(plain + 32);
	b->transfers_active = dd_load_be32(plain + 36);
	b->transfers_done = dd_load_be32(plain + 40);
	b->complete_below = dd_load_be32(plain + 44);
	for (size_t i = 0; i < count; i++) {
		const uint8_t *e = plain + DD_BEACON_HDR_LEN + i * DD_BEACON_ENTRY_LEN;
		struct dd_beacon_entry *be = &b->entries[i];

		be->transfer = dd_load_be32(e);
		be->status = e[4];
		be->pass = e[5];
		be->size = dd_load_be64(e + 8);
		be->last_seq = dd_load_be64(e + 16);
		if (be->status < DD_XFER_SENDING || be->status > DD_XFER_ABANDONED ||
		    !dd_all_zero(e + 6, 2))
			goto bad;
	}
	if (!dd_all_zero(plain + DD_BEACON_HDR_LEN + count * DD_BEACON_ENTRY_LEN,
		      len - DD_BEACON_HDR_LEN - count * DD_BEACON_ENTRY_LEN))
		goto bad;
	return 0;
bad:
	memset(b, 0, sizeof(*b));
	return -EBADMSG;
}
