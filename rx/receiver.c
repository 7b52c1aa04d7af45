/* Receiver: batched UDP reads, then length, header, session, replay and tag checks before any parsing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "keys.h"
#include "rx.h"

#define BATCH 64
#define RECV_BUF 65536 /* a datagram, or a UDP_GRO run of them: at most 64 KiB */
/* Then back to the loop (timers, other sockets, sinks): the same bound with
 * UDP_GRO, where one batch may hold up to 64 runs of datagrams. */
#define MAX_DATAGRAMS_PER_WAKE 2048

static struct mmsghdr msgs[BATCH];
static struct iovec iovs[BATCH];
static union {
	struct cmsghdr align;
	uint8_t buf[DD_NET_GRO_CMSG_SPACE];
} ctrl[BATCH];
static uint8_t *bufs;

static void
announce_event(struct rx *rx, const struct dd_hdr *h, const struct dd_announce *a, int result)
{
	struct dd_audit_event ev;
	char fp[17];

	dd_keys_fingerprint(a->sender, fp);
	if (result == DD_ANNOUNCE_NEW_SESSION) {
		bool restarted = rx->session != 0 && rx->session != h->session;

		if (restarted)
			reasm_fail_all(rx, "the sender restarted (new session) before it completed");
		rx->session = h->session;
		if (restarted || rx->journal_fd < 0)
			partial_rewrite_journal(rx, h->session);
		/* Before the fragment size changes: the old session's blocks are settled. */
		streams_new_session(rx, h->session, h->seq <= 16);
		rx->plain_len = a->dgram_size - DD_SEALED_OVERHEAD;
		rx->frag_len = dd_wire_frag_len(a->dgram_size);
		rx->persisted_seq = 0;
		rx->seq_top = h->seq;
		if (h->seq <= 16) {
			/* We hear the session from its first datagrams: every transfer
			 * id of it can be accounted for. */
			rx->checked_below = 1;
			rx->checked_known = true;
		}
		rx_report_rejections(rx, dd_mono_ms(), true);
		rx->delivered_before += rx->c.files_delivered;
		rx->failed_before += rx->c.files_failed;
		rx_counters_add(&rx->c_before, &rx->c); /* metrics stay monotonic */
		rx->session_started_ms = dd_now_ms();
		memset(&rx->c, 0, sizeof(rx->c));
		memset(&rx->c_reported, 0, sizeof(rx->c_reported));
		dd_notice("session %u from sender %s: %s, datagrams of %u bytes", h->session, fp,
			  dd_crypto_cipher_name(a->cipher), a->dgram_size);
		dd_audit_begin(&ev, "session_started");
		dd_audit_u64(&ev, "session", h->session);
		dd_audit_str(&ev, "sender", fp);
		dd_audit_str(&ev, "cipher", dd_crypto_cipher_name(a->cipher));
		dd_audit_commit(&ev);
	} else {
		dd_info("session %u: key epoch %u announced", h->session, h->epoch);
	}
}

/* Gaps in the authentic sequence are datagrams lost on the link (or still on
 * their way: a late one turns a loss into a reordering). */
static void
count_sequence(struct rx *rx, uint64_t seq)
{
	if (seq > rx->seq_top) {
		if (rx->seq_top != 0)
			rx->c.lost += seq - rx->seq_top - 1;
		rx->seq_top = seq;
	} else {
		rx->c.reordered++;
		if (rx->c.lost > 0)
			rx->c.lost--;
	}
}

static void
handle_announce(struct rx *rx, const struct dd_hdr *h, const uint8_t *buf, size_t len)
{
	struct dd_announce a;
	int rc = dd_crypto_rx_announce(rx->crypto, h, buf, len, dd_mono_ms(), &a);

	rx->c.announces++;
	switch (rc) {
	case DD_ANNOUNCE_KNOWN:
		rx->last_auth_ms = rx->now_ms;
		count_sequence(rx, h->seq);
		return;
	case DD_ANNOUNCE_NEW_SESSION:
	case DD_ANNOUNCE_NEW_EPOCH:
		rx->last_auth_ms = rx->now_ms;
		announce_event(rx, h, &a, rc);
		count_sequence(rx, h->seq);
		return;
	case -EKEYREJECTED:
	case -EXDEV:
		rx->c.unknown_sender++;
		return;
	case -ESTALE:
		rx->c.stale++;
		return;
	case -EALREADY:
		rx->c.replay++;
		return;
	case -EBUSY:
		rx->c.rate_limited++;
		return;
	case -EPROTONOSUPPORT: {
		static struct dd_ratelimit rl = { .interval_ms = 60000 };

		if (dd_ratelimit_ok(&rl, dd_mono_ms(), NULL))
			dd_error("the sender seals with AES-256-GCM but this CPU has no AES-NI; set "
				 "[link] cipher = chacha20poly1305 on diode-tx");
		rx->c.no_key++;
		return;
	}
	default:
		rx->c.bad_tag++;
		return;
	}
}

void
rx_handle_datagram(struct rx *rx, uint8_t *buf, size_t len)
{
	struct dd_hdr h;
	uint8_t *plain;
	size_t plain_len;
	int rc;

	rx->c.received++;
	rx->c.received_bytes += len;
	if (dd_wire_parse_header(&h, buf, len) != 0) {
		rx->c.malformed++;
		return;
	}
	if (h.type == DD_TYPE_ANNOUNCE) {
		handle_announce(rx, &h, buf, len);
		return;
	}
	rc = dd_crypto_rx_open(rx->crypto, &h, buf, len, &plain, &plain_len);
	if (rc != 0) {
		if (rc == -EALREADY)
			rx->c.replay++;
		else if (rc == -EBADMSG)
			rx->c.bad_tag++;
		else if (rc == -EMSGSIZE)
			rx->c.malformed++;
		else
			rx->c.no_key++;
		return;
	}
	/* Authentic from here on: only now is the inside parsed. */
	rx->c.accepted++;
	rx->last_auth_ms = rx->now_ms;
	count_sequence(rx, h.seq);
	switch (plain[0]) {
	case DD_KIND_FRAGMENT: {
		struct dd_frag f;

		if (dd_wire_parse_frag(&f, plain, plain_len, rx->frag_len) != 0) {
			rx->c.malformed++;
			return;
		}
		reasm_fragment(rx, &f, plain + DD_FRAG_HDR_LEN);
		return;
	}
	case DD_KIND_MANIFEST: {
		struct dd_manifest m;

		if (dd_wire_parse_manifest(&m, plain, plain_len, rx->frag_len) != 0) {
			rx->c.malformed++;
			return;
		}
		reasm_manifest(rx, &m);
		return;
	}
	case DD_KIND_STREAM: {
		struct dd_stream_frag sf;

		if (dd_record_parse_frag(&sf, plain, plain_len, rx->frag_len) != 0) {
			rx->c.malformed++;
			return;
		}
		streams_fragment(rx, &sf, plain + DD_STREAM_HDR_LEN);
		return;
	}
	case DD_KIND_STREAM_STATUS: {
		static struct dd_stream_status st;

		if (dd_record_parse_status(&st, plain, plain_len) != 0) {
			rx->c.malformed++;
			return;
		}
		streams_status(rx, &st);
		return;
	}
	case DD_KIND_BEACON: {
		static struct dd_beacon b;

		if (dd_wire_parse_beacon(&b, plain, plain_len) != 0) {
			rx->c.malformed++;
			return;
		}
		reasm_beacon(rx, &b, h.seq);
		return;
	}
	default:
		rx->c.malformed++;
		return;
	}
}

/* One received buffer: a datagram, or a UDP_GRO run of datagrams of seg bytes
 * (the last may be shorter). Each goes through every check on its own, so a
 * forged or truncated one costs only itself. */
static unsigned
handle_buffer(struct rx *rx, uint8_t *buf, size_t len, size_t seg)
{
	size_t off = 0, seg_off, seg_len;
	unsigned n = 0;

	while (dd_net_next_segment(len, seg, &off, &seg_off, &seg_len)) {
		rx_handle_datagram(rx, buf + seg_off, seg_len);
		n++;
	}
	return n;
}

static void
on_readable(uv_poll_t *p, int status, int events)
{
	struct rx *rx = p->data;
	uv_os_fd_t fd;
	unsigned handled = 0;

	(void)events;
	if (status < 0 || uv_fileno((uv_handle_t *)p, &fd) != 0)
		return;
	while (handled < MAX_DATAGRAMS_PER_WAKE) {
		int n;

		for (int i = 0; i < BATCH; i++) {
			iovs[i].iov_base = bufs + (size_t)i * RECV_BUF;
			iovs[i].iov_len = RECV_BUF;
			msgs[i].msg_hdr.msg_iov = &iovs[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_name = NULL;
			msgs[i].msg_hdr.msg_namelen = 0;
			msgs[i].msg_hdr.msg_control = ctrl[i].buf;
			msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i].buf);
			msgs[i].msg_hdr.msg_flags = 0;
		}
		n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			break;
		/* One clock read per batch: the link monitor and the stall
		 * timers count in milliseconds. */
		rx->now_ms = dd_mono_ms();
		for (int i = 0; i < n; i++) {
			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
				rx->c.received++;
				rx->c.malformed++;
				handled++;
				continue;
			}
			handled += handle_buffer(rx, bufs + (size_t)i * RECV_BUF, msgs[i].msg_len,
						 dd_net_gro_size(&msgs[i].msg_hdr));
		}
		/* Hand the blocks of this batch to the disk thread, and deliver
		 * what it finished, before the next (not only when the loop is
		 * idle: a burst of small files would fill the transfer table). */
		disk_poll(rx, false);
		if (n < BATCH)
			break;
	}
}

int
receiver_start(struct rx *rx)
{
	unsigned gro = 0;

	bufs = malloc((size_t)BATCH * RECV_BUF);
	if (bufs == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < rx->nsocks; i++) {
		int rc;

		/* Before the sandbox, which has no setsockopt. */
		if (dd_net_enable_gro(rx->socks[i]) == 0)
			gro++;
		uv_poll_init(rx->loop, &rx->sock_polls[i], rx->socks[i]);
		rx->sock_polls[i].data = rx;
		rc = uv_poll_start(&rx->sock_polls[i], UV_READABLE, on_readable);
		if (rc != 0)
			return rc;
	}
	if (gro < rx->nsocks)
		dd_info("receive offload (UDP_GRO) not available on this kernel: datagrams are "
			"read one by one");
	return 0;
}

void
receiver_stop(struct rx *rx)
{
	for (unsigned i = 0; i < rx->nsocks; i++)
		uv_poll_stop(&rx->sock_polls[i]);
	free(bufs);
	bufs = NULL;
}
