/* Stream channels: TCP, UDP and Unix inputs, bounded buffering (memory, then journal), packing records into coded blocks. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "recq.h"
#include "record.h"
#include "state.h"
#include "tx.h"

#define INPUTS_MAX 8          /* listen addresses per channel */
#define READ_BUF (64 * 1024)  /* one read from a stream client */
#define READS_PER_WAKE 8      /* reads per client per wake-up, for fairness */
#define UDP_BATCH 32
#define UDP_BUF 65536         /* larger than any UDP payload: nothing is truncated */
#define UDP_BATCHES_PER_WAKE 16
#define UDP_RCVBUF (8u << 20)
#define LISTEN_BACKLOG 128
#define HOUSEKEEP_MS 1000
#define REPORT_MS 10000       /* at most one summary of drops per channel this often */
#define STREAM_RING 256       /* slots of the stream ring */
#define STATUS_INTERVAL_MS 1000
#define IDLE_EVICT_MS 60000   /* at max_clients, a client silent this long makes room */
#define KEEPALIVE_IDLE_S 60   /* TCP keepalive: a vanished client is noticed in ~90 s */
#define KEEPALIVE_INTVL_S 10
#define KEEPALIVE_CNT 3

enum input_kind { IN_TCP, IN_UDP, IN_UNIX, IN_MQTT };

struct tx_input {
	struct tx_channel *ch;
	enum input_kind kind;
	int fd;
	uv_poll_t poll;
	bool polling;
	bool paused;     /* out of descriptors: accepting again at the next housekeeping */
	char where[256]; /* as configured: tcp://..., udp://..., unix:..., mqtt://... */
	struct tx_mqtt *mqtt; /* IN_MQTT (channel_mqtt.c); fd is -1 */
};

struct tx_client {
	struct tx_client *next;
	struct tx_channel *ch;
	int fd;
	uv_poll_t poll;
	uint64_t last_ms; /* last bytes from it */
	bool discarding; /* inside a line longer than max_record */
	size_t len;      /* bytes of the unfinished line */
	uint8_t line[];  /* max_record bytes */
};

struct tx_channel {
	struct tx *tx;
	char name[72];
	char section[80];
	uint32_t id;
	size_t max_record;
	uint64_t mem_bytes, journal_bytes, flush_ms;
	bool drop_oldest;
	unsigned parity, max_clients;
	struct dd_recq *q;
	struct tx_input inputs[INPUTS_MAX];
	unsigned ninputs;
	struct tx_client *clients;
	unsigned nclients;

	/* The block being filled: record area of up to DD_STREAM_K_MAX fragments. */
	uint8_t *area;
	size_t used;
	uint16_t count;
	uint64_t first_seq;
	bool flush_due;
	uv_timer_t flush_timer;

	uint64_t start_seq;   /* seq of this session's first record */
	uint64_t next_seq;    /* seq the next packed record gets */
	uint64_t next_block;  /* block number of the next block (this session) */
	uint64_t sent_blocks; /* blocks whose last datagram left */
	uint64_t sent_seq;    /* every record below this seq left */
	uint64_t saved_seq;   /* next_seq as last written to the state file */

	/* counters of this session, and what was already reported */
	uint64_t accepted, dropped, refused_long, refused_newline, clients_refused, io_errors;
	uint64_t refused_input, rep_input; /* refused by an input for its own reason (MQTT topic) */
	uint64_t rep_dropped, rep_long, rep_newline, rep_clients;
	uint64_t last_report_ms;
};

struct tx_channels {
	struct tx_channel *ch;
	unsigned n;
	unsigned rr;
	int state_fd;
	unsigned backlog; /* stream ring slots allowed in flight */
	uv_timer_t housekeep;
	uint8_t *readbuf;
	uint8_t *udp_bufs;
	struct mmsghdr udp_msgs[UDP_BATCH];
	struct iovec udp_iovs[UDP_BATCH];
};

static struct dd_ratelimit io_rl = { .interval_ms = 10000 };

/* ---------------------------------------------------------------- config */

static int
parse_listen(struct tx_channel *ch, const struct dd_config *cfg, const char *text,
	     struct tx_input *in, struct dd_addr *addr, char *unix_path, size_t pathlen)
{
	char err[256];
	const char *where = dd_config_where(cfg, ch->section, "listen");

	snprintf(in->where, sizeof(in->where), "%s", text);
	if (strncmp(text, "tcp://", 6) == 0 || strncmp(text, "udp://", 6) == 0) {
		in->kind = text[0] == 't' ? IN_TCP : IN_UDP;
		if (dd_net_resolve(text + 6, addr, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: [%s] listen: %s\n", where, ch->section, err);
			return -EINVAL;
		}
		return 0;
	}
	if (strncmp(text, "mqtt://", 7) == 0) {
		in->kind = IN_MQTT; /* parsed by mqtt_input_open */
		return 0;
	}
	if (strncmp(text, "unix:", 5) == 0) {
		const char *path = text + 5;

		in->kind = IN_UNIX;
		if (path[0] != '/' || strlen(path) >= pathlen ||
		    strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			fprintf(stderr, "%s: [%s] listen: '%s': a Unix socket needs an absolute path "
				"of at most %zu bytes (unix:/run/diode/NAME.sock)\n", where, ch->section,
				text, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			return -EINVAL;
		}
		snprintf(unix_path, pathlen, "%s", path);
		return 0;
	}
	fprintf(stderr, "%s: [%s] listen: '%s': expected tcp://HOST:PORT, udp://HOST:PORT or "
		"unix:/PATH or mqtt://HOST:PORT/TOPIC-FILTER\n", where, ch->section, text);
	return -EINVAL;
}

static int
open_tcp(struct tx_channel *ch, struct tx_input *in, const struct dd_addr *a)
{
	int one = 1, fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	in->fd = fd;
	return 0;
}

static int
open_udp(struct tx_channel *ch, struct tx_input *in, const struct dd_addr *a, char *err,
	 size_t errlen)
{
	uint64_t granted;
	int fd = dd_net_udp_receiver(a, UDP_RCVBUF, &granted, err, errlen);

	if (fd < 0)
		return fd;
	if (granted < UDP_RCVBUF)
		dd_notice("[%s] %s: UDP receive buffer is %" PRIu64 " bytes, not %u: bursts from "
			  "producers may be dropped by the kernel (raise net.core.rmem_max)",
			  ch->section, in->where, granted, UDP_RCVBUF);
	in->fd = fd;
	return 0;
}

static int
open_unix(struct tx_channel *ch, struct tx_input *in, const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		/* A socket left by an earlier run is removed, one in use is not. */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(fd);
			return -EADDRINUSE;
		}
		if (fd >= 0)
			close(fd);
		if (unlink(path) < 0)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	in->fd = fd;
	return 0;
}

/* The per-channel record counter, kept across restarts: "seq N". */
static void
state_name(const struct tx_channel *ch, const char *suffix, char *out, size_t len)
{
	snprintf(out, len, "channel-%s%s", ch->name, suffix);
}

static int
load_seq(struct tx_channels *cs, struct tx_channel *ch)
{
	char name[128], buf[128];
	uint64_t seq = 0;
	int rc;

	state_name(ch, "", name, sizeof(name));
	rc = dd_state_read(cs->state_fd, name, buf, sizeof(buf));
	if (rc == -ENOENT)
		return 0;
	if (rc < 0 || dd_state_get_u64(buf, "seq", &seq) != 0) {
		fprintf(stderr, "[state] dir: %s: unreadable; remove it to number the records of "
			"[%s] from 0 again (the receiver then reports the restart)\n", name,
			ch->section);
		return -EINVAL;
	}
	ch->start_seq = ch->next_seq = ch->sent_seq = ch->saved_seq = seq;
	return 0;
}

/* Periodic saves do not wait for the disk (an fsync on the event loop would
 * hold up records and files alike); the save at stop does. After a power cut
 * numbers may then repeat, which the receiver reports (channel_reset). */
static void
save_seq(struct tx_channels *cs, struct tx_channel *ch, bool durable)
{
	char name[128], buf[64];
	int rc;

	if (ch->next_seq == ch->saved_seq)
		return;
	state_name(ch, "", name, sizeof(name));
	snprintf(buf, sizeof(buf), "seq %" PRIu64 "\n", ch->next_seq);
	rc = durable ? dd_state_write(cs->state_fd, name, buf, strlen(buf))
		     : dd_state_write_lazy(cs->state_fd, name, buf, strlen(buf));
	if (rc == 0)
		ch->saved_seq = ch->next_seq;
	else if (dd_ratelimit_ok(&io_rl, dd_mono_ms(), NULL))
		dd_error("[state] dir: cannot write %s: %s; after a restart record numbers of [%s] "
			 "may repeat", name, strerror(-rc), ch->section);
}

struct open_ctx {
	struct tx *tx;
	const struct dd_config *cfg;
	bool check_only;
	unsigned n;
	int rc;
};

static int
open_channel(const char *section, void *arg)
{
	struct open_ctx *ctx = arg;
	struct tx *tx = ctx->tx;
	struct tx_channels *cs = tx->channels;
	const struct dd_config *cfg = ctx->cfg;
	struct tx_channel *ch = &cs->ch[cs->n];
	size_t limit = dd_record_max_for(tx->frag_len), nlisten;
	char item[240], path[256], err[512], jname[128], note[512];
	uint64_t recovered;
	int rc;

	memset(ch, 0, sizeof(*ch));
	ch->tx = tx;
	snprintf(ch->section, sizeof(ch->section), "%s", section);
	snprintf(ch->name, sizeof(ch->name), "%s", section + strlen("channel."));
	ch->id = dd_record_channel_id(ch->name);
	for (unsigned i = 0; i < cs->n; i++)
		if (cs->ch[i].id == ch->id) {
			fprintf(stderr, "%s: [%s] and [%s] have the same channel id %08x on the wire; "
				"rename one of them (on both sides)\n",
				dd_config_where(cfg, section, NULL), section, cs->ch[i].section, ch->id);
			return -EINVAL;
		}
	ch->max_record = (size_t)dd_config_u64(cfg, section, "max_record");
	ch->mem_bytes = dd_config_u64(cfg, section, "buffer");
	ch->journal_bytes = dd_config_u64(cfg, section, "journal");
	ch->drop_oldest = strcmp(dd_config_str(cfg, section, "overflow"), "drop-oldest") == 0;
	ch->flush_ms = dd_config_u64(cfg, section, "flush_ms");
	ch->parity = (unsigned)dd_config_u64(cfg, section, "fec_parity");
	ch->max_clients = (unsigned)dd_config_u64(cfg, section, "max_clients");
	if (ch->max_record > limit) {
		fprintf(stderr, "%s: [%s] max_record = %zu is more than a stream block of %d "
			"fragments can carry at datagram_size %u (%zu bytes); lower it or raise "
			"[link] datagram_size\n", dd_config_where(cfg, section, "max_record"), section,
			ch->max_record, DD_STREAM_K_MAX, tx->set.dgram_size, limit);
		return -EINVAL;
	}
	if (ch->mem_bytes < 2 * (ch->max_record + 8)) {
		fprintf(stderr, "%s: [%s] buffer must hold at least two records of max_record "
			"bytes (%zu)\n", dd_config_where(cfg, section, "buffer"), section,
			2 * (ch->max_record + 8));
		return -EINVAL;
	}
	if (ch->journal_bytes != 0 &&
	    (ch->journal_bytes < 65536 || ch->journal_bytes < ch->max_record + 4)) {
		fprintf(stderr, "%s: [%s] journal must be 0 (none) or at least 64K\n",
			dd_config_where(cfg, section, "journal"), section);
		return -EINVAL;
	}
	nlisten = dd_config_list_len(cfg, section, "listen");
	if (nlisten > INPUTS_MAX) {
		fprintf(stderr, "%s: [%s] listen: at most %d addresses per channel\n",
			dd_config_where(cfg, section, "listen"), section, INPUTS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < nlisten; i++) {
		struct tx_input *in = &ch->inputs[ch->ninputs];
		struct dd_addr addr;

		in->fd = -1;
		in->ch = ch;
		if (dd_config_list_item(cfg, section, "listen", i, item, sizeof(item)) != 0 ||
		    item[0] == '\0') {
			fprintf(stderr, "%s: [%s] listen: empty or over-long item\n",
				dd_config_where(cfg, section, "listen"), section);
			return -EINVAL;
		}
		rc = parse_listen(ch, cfg, item, in, &addr, path, sizeof(path));
		if (rc != 0)
			return rc;
		ch->ninputs++;
		if (in->kind == IN_MQTT) {
			/* An MQTT channel carries MQTT records only (docs/PROTOCOL.md §11). */
			if (nlisten > 1) {
				fprintf(stderr, "%s: [%s] listen: an mqtt:// input must be the only "
					"input of its channel; use one channel per broker\n",
					dd_config_where(cfg, section, "listen"), section);
				return -EINVAL;
			}
			rc = mqtt_input_open(&in->mqtt, ch, cfg, section, ch->name, item,
					     ctx->check_only);
			if (rc != 0)
				return rc;
			continue;
		}
		if (ctx->check_only)
			continue;
		err[0] = '\0';
		rc = in->kind == IN_TCP ? open_tcp(ch, in, &addr)
		     : in->kind == IN_UDP ? open_udp(ch, in, &addr, err, sizeof(err))
					  : open_unix(ch, in, path);
		if (rc != 0) {
			fprintf(stderr, "%s: [%s] listen: cannot listen on %s: %s%s\n",
				dd_config_where(cfg, section, "listen"), section, item,
				err[0] ? err : strerror(-rc),
				rc == -EADDRINUSE ? " (another program, or another channel, uses it)"
				: rc == -EEXIST	  ? " (a file that is not a socket is in the way)"
						  : "");
			return rc;
		}
	}
	if (ctx->check_only) {
		cs->n++;
		return 0;
	}
	ch->area = calloc(1, (size_t)DD_STREAM_K_MAX * tx->frag_len);
	if (ch->area == NULL || dd_recq_new(&ch->q, (size_t)ch->mem_bytes, ch->max_record) != 0) {
		fprintf(stderr, "[%s]: out of memory for a buffer of %" PRIu64 " bytes\n", section,
			ch->mem_bytes);
		return -ENOMEM;
	}
	if (load_seq(cs, ch) != 0)
		return -EINVAL;
	cs->n++;
	recovered = 0;
	if (ch->journal_bytes > 0) {
		state_name(ch, ".journal", jname, sizeof(jname));
		rc = dd_recq_attach(ch->q, cs->state_fd, jname, ch->journal_bytes, &recovered, note,
				    sizeof(note));
		if (rc != 0) {
			fprintf(stderr, "[state] dir: [%s] journal: %s\n", section, note);
			return rc;
		}
		if (note[0] != '\0')
			dd_notice("[%s] journal %s", section, note);
	}
	{
		struct dd_audit_event ev;
		char id[16], list[INPUTS_MAX * 260];

		snprintf(id, sizeof(id), "%08x", ch->id);
		list[0] = '\0';
		for (unsigned i = 0; i < ch->ninputs; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 i ? ", " : "", ch->inputs[i].where);
		dd_notice("[%s] listening on %s; %" PRIu64 " records waiting from an earlier run, "
			  "next record seq %" PRIu64, section, list, recovered, ch->next_seq);
		dd_audit_begin(&ev, "channel_started");
		dd_audit_str(&ev, "channel", ch->name);
		dd_audit_str(&ev, "channel_id", id);
		dd_audit_str(&ev, "listen", list);
		dd_audit_u64(&ev, "next_seq", ch->next_seq);
		dd_audit_u64(&ev, "recovered", recovered);
		dd_audit_commit(&ev);
	}
	return 0;
}

int
channels_open(struct tx *tx, const struct dd_config *cfg, bool check_only)
{
	struct open_ctx ctx = { .tx = tx, .cfg = cfg, .check_only = check_only };
	struct tx_channels *cs;
	unsigned max_parity = 0;
	uint64_t per_20ms;

	ctx.n = dd_config_count_sections(cfg, "channel.");
	if (ctx.n == 0)
		return 0;
	if (ctx.n > DD_CHANNELS_MAX) {
		fprintf(stderr, "%s: at most %d [channel.NAME] sections\n",
			dd_config_where(cfg, "link", NULL), DD_CHANNELS_MAX);
		return -1;
	}
	cs = calloc(1, sizeof(*cs));
	if (cs == NULL || (cs->ch = calloc(ctx.n, sizeof(*cs->ch))) == NULL) {
		free(cs);
		fprintf(stderr, "out of memory\n");
		return -1;
	}
	cs->state_fd = -1;
	tx->channels = cs;
	if (!check_only) {
		cs->state_fd = dd_state_open_dir(dd_config_str(cfg, "state", "dir"));
		if (cs->state_fd < 0) {
			fprintf(stderr, "%s: [state] dir: %s\n", dd_config_where(cfg, "state", "dir"),
				strerror(-cs->state_fd));
			return -1;
		}
	}
	if (dd_config_each_section(cfg, "channel.", open_channel, &ctx) != 0)
		return -1;
	if (check_only)
		return 0;
	for (unsigned i = 0; i < cs->n; i++)
		if (cs->ch[i].parity > max_parity)
			max_parity = cs->ch[i].parity;
	/* Numbered records in flight on the link: two full blocks at least, at
	 * most what 20 ms of the link carry (the rest waits in the buffers,
	 * where the overflow policy applies). */
	per_20ms = tx->set.rate_bps / 8 / 50 / (tx->set.dgram_size + DD_WIRE_OVERHEAD);
	cs->backlog = 2 * (DD_STREAM_K_MAX + max_parity);
	if (per_20ms > cs->backlog)
		cs->backlog = per_20ms < STREAM_RING ? (unsigned)per_20ms : STREAM_RING;
	cs->readbuf = malloc(READ_BUF);
	if (cs->readbuf == NULL || ring_init(&tx->stream, STREAM_RING, tx->set.dgram_size) != 0) {
		fprintf(stderr, "out of memory\n");
		return -1;
	}
	for (unsigned i = 0; i < cs->n; i++)
		for (unsigned j = 0; j < cs->ch[i].ninputs; j++)
			if (cs->ch[i].inputs[j].kind == IN_UDP && cs->udp_bufs == NULL) {
				cs->udp_bufs = malloc((size_t)UDP_BATCH * UDP_BUF);
				if (cs->udp_bufs == NULL) {
					fprintf(stderr, "out of memory\n");
					return -1;
				}
			}
	return 0;
}

/* ---------------------------------------------------------------- reports */

static void
report(struct tx_channel *ch, bool force)
{
	uint64_t now = dd_mono_ms();
	uint64_t dropped = ch->dropped - ch->rep_dropped, lng = ch->refused_long - ch->rep_long;
	uint64_t nl = ch->refused_newline - ch->rep_newline;
	uint64_t inp = ch->refused_input - ch->rep_input;
	uint64_t clients = ch->clients_refused - ch->rep_clients;
	struct dd_audit_event ev;

	if (dropped + lng + nl + inp + clients == 0)
		return;
	if (!force && ch->last_report_ms != 0 && now - ch->last_report_ms < REPORT_MS)
		return;
	ch->last_report_ms = now;
	if (dropped > 0) {
		dd_warn("[%s] %" PRIu64 " records dropped (%s): records arrive faster than the "
			"link carries them and the buffer and journal are full (%" PRIu64 " dropped "
			"in this session); raise [link] rate, buffer or journal, or slow the producers",
			ch->section, dropped, ch->drop_oldest ? "oldest first" : "newest first",
			ch->dropped);
		dd_audit_begin(&ev, "records_dropped");
		dd_audit_str(&ev, "channel", ch->name);
		dd_audit_u64(&ev, "count", dropped);
		dd_audit_u64(&ev, "total", ch->dropped);
		dd_audit_str(&ev, "overflow", ch->drop_oldest ? "drop-oldest" : "drop-newest");
		dd_audit_str(&ev, "reason", "buffer and journal full");
		dd_audit_commit(&ev);
		ch->rep_dropped = ch->dropped;
	}
	for (int i = 0; i < 3; i++) {
		uint64_t n = i == 0 ? lng : i == 1 ? nl : inp;
		char reason[96];

		if (n == 0)
			continue;
		if (i == 0)
			snprintf(reason, sizeof(reason), "longer than max_record (%zu bytes)",
				 ch->max_record);
		else if (i == 1)
			snprintf(reason, sizeof(reason), "a UDP record containing a newline");
		else
			snprintf(reason, sizeof(reason), "an MQTT topic with control characters or "
				 "invalid UTF-8");
		dd_warn("[%s] %" PRIu64 " records refused: %s", ch->section, n, reason);
		dd_audit_begin(&ev, "records_refused");
		dd_audit_str(&ev, "channel", ch->name);
		dd_audit_u64(&ev, "count", n);
		dd_audit_u64(&ev, "total", i == 0   ? ch->refused_long
					   : i == 1 ? ch->refused_newline
						    : ch->refused_input);
		dd_audit_str(&ev, "reason", reason);
		dd_audit_commit(&ev);
	}
	ch->rep_long = ch->refused_long;
	ch->rep_newline = ch->refused_newline;
	ch->rep_input = ch->refused_input;
	if (clients > 0) {
		dd_warn("[%s] %" PRIu64 " connections refused: more than max_clients = %u at once",
			ch->section, clients, ch->max_clients);
		dd_audit_begin(&ev, "clients_refused");
		dd_audit_str(&ev, "channel", ch->name);
		dd_audit_u64(&ev, "count", clients);
		dd_audit_u64(&ev, "max_clients", ch->max_clients);
		dd_audit_commit(&ev);
		ch->rep_clients = ch->clients_refused;
	}
}

/* ---------------------------------------------------------------- packing */

static void
on_flush_timer(uv_timer_t *t)
{
	struct tx_channel *ch = t->data;

	ch->flush_due = true;
	channels_fill(ch->tx);
}

/* Code the open block into the stream ring; false when the ring has no room. */
static bool
flush_block(struct tx_channel *ch)
{
	struct tx *tx = ch->tx;
	struct tx_channels *cs = tx->channels;
	size_t F = tx->frag_len;
	unsigned k = (unsigned)((ch->used + F - 1) / F), m = ch->parity, n = k + m;
	uint8_t *data[DD_STREAM_K_MAX], *parity[DD_STREAM_M_MAX];
	struct slot_meta *meta;

	if (ch->used == 0 || ring_free_slots(&tx->stream) < n ||
	    (ring_used(&tx->stream) > 0 && ring_used(&tx->stream) + n > cs->backlog))
		return false;
	for (unsigned i = 0; i < n; i++) {
		uint32_t idx = tx->stream.head + i;
		uint8_t *plain = ring_slot(&tx->stream, idx) + DD_HDR_LEN;
		struct dd_stream_frag f = {
			.k = (uint8_t)k, .m = (uint8_t)m, .index = (uint8_t)i, .channel = ch->id,
			.block = ch->next_block, .first_seq = ch->first_seq,
			.bytes = (uint32_t)ch->used, .count = ch->count,
		};

		dd_record_put_frag(plain, &f);
		if (i < k) {
			memcpy(plain + DD_STREAM_HDR_LEN, ch->area + (size_t)i * F, F);
			data[i] = plain + DD_STREAM_HDR_LEN;
		} else {
			parity[i - k] = plain + DD_STREAM_HDR_LEN;
		}
		meta = ring_meta(&tx->stream, idx);
		meta->kind = SLOT_SEALED;
		meta->last_of = NULL;
		meta->block_of = NULL;
	}
	if (m > 0)
		dd_fec_encode(tx->fec, k, m, F, data, parity);
	/* The last datagram of the block tells the sender the block has left. */
	meta = ring_meta(&tx->stream, tx->stream.head + n - 1);
	meta->block_of = ch;
	meta->block_next_seq = ch->first_seq + ch->count;
	tx->stream.head += n;
	memset(ch->area, 0, (size_t)k * F);
	ch->used = 0;
	ch->count = 0;
	ch->next_block++;
	ch->flush_due = false;
	uv_timer_stop(&ch->flush_timer);
	return true;
}

/* Move queued records into the open block; flush it when full or due. A
 * block that is due while the ring has no room keeps taking records until it
 * is full: when the link is the bottleneck, blocks are full ones. */
static void
pump(struct tx_channel *ch)
{
	size_t cap = (size_t)DD_STREAM_K_MAX * ch->tx->frag_len;

	for (;;) {
		const uint8_t *rec;
		size_t len, used;
		int rc;

		if (ch->count > 0 && ch->flush_due && flush_block(ch))
			continue;
		/* Stopping: what is not numbered yet stays queued for the journal. */
		if (ch->tx->stopping && ch->count == 0)
			return;
		rc = dd_recq_peek(ch->q, &rec, &len);
		if (rc != 0) {
			if (rc == -EIO) {
				ch->io_errors++;
				if (dd_ratelimit_ok(&io_rl, dd_mono_ms(), NULL))
					dd_error("[%s] journal in the state directory cannot be read "
						 "back; its records were discarded", ch->section);
			}
			return;
		}
		used = ch->count < UINT16_MAX ? dd_record_append(ch->area, cap, ch->used, rec, len)
					      : 0;
		if (used == 0 && ch->count == 0) {
			/* Cannot happen: max_record is checked against the block size. */
			ch->refused_long++;
			dd_recq_pop(ch->q);
			continue;
		}
		if (used == 0) {
			/* Full: flush it, or wait for room in the ring. */
			ch->flush_due = true;
			if (!flush_block(ch))
				return;
			continue;
		}
		if (ch->count == 0) {
			ch->first_seq = ch->next_seq;
			if (!ch->tx->stopping)
				uv_timer_start(&ch->flush_timer, on_flush_timer, ch->flush_ms, 0);
		}
		ch->used = used;
		ch->count++;
		ch->next_seq++;
		dd_recq_pop(ch->q);
	}
}

void
channels_fill(struct tx *tx)
{
	struct tx_channels *cs = tx->channels;

	if (cs == NULL)
		return;
	/* Round-robin start, so no channel always gets the ring first. */
	for (unsigned i = 0; i < cs->n; i++)
		pump(&cs->ch[(cs->rr + i) % cs->n]);
	cs->rr++;
	if (ring_used(&tx->stream) > 0)
		sender_kick(tx);
}

void
channels_block_sent(struct tx *tx, struct tx_channel *ch, uint64_t next_seq)
{
	(void)tx;
	ch->sent_blocks++;
	ch->sent_seq = next_seq;
}

/* ---------------------------------------------------------------- records in */

static void
accept_record(struct tx_channel *ch, const uint8_t *rec, size_t len)
{
	uint64_t dropped = 0;
	int rc;

	if (len > ch->max_record) {
		ch->refused_long++;
		return;
	}
	if (ch->drop_oldest) {
		rc = dd_recq_push_drop_oldest(ch->q, rec, len, &dropped);
		ch->dropped += dropped;
	} else {
		rc = dd_recq_push(ch->q, rec, len);
	}
	if (rc == 0) {
		ch->accepted++;
		return;
	}
	ch->dropped++;
	if (rc != -ENOSPC) {
		ch->io_errors++;
		if (dd_ratelimit_ok(&io_rl, dd_mono_ms(), NULL))
			dd_error("[%s] journal in the state directory: %s; records are dropped "
				 "while the buffer is full", ch->section, strerror(-rc));
	}
}

static void
client_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
client_close(struct tx_client *c)
{
	struct tx_channel *ch = c->ch;
	struct tx_client **p = &ch->clients;

	while (*p != NULL && *p != c)
		p = &(*p)->next;
	if (*p == c)
		*p = c->next;
	ch->nclients--;
	uv_poll_stop(&c->poll);
	close(c->fd);
	c->fd = -1;
	c->poll.data = c;
	uv_close((uv_handle_t *)&c->poll, client_closed);
}

/* Split bytes into newline-terminated records; an unfinished line is kept. */
static void
client_bytes(struct tx_client *c, const uint8_t *p, size_t n)
{
	struct tx_channel *ch = c->ch;
	const uint8_t *end = p + n;

	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t seg = (size_t)((nl != NULL ? nl : end) - p);

		if (nl == NULL) {
			if (c->discarding)
				return;
			if (c->len + seg > ch->max_record) {
				/* Too long already: refuse it once, skip to its end. */
				ch->refused_long++;
				c->discarding = true;
				c->len = 0;
				return;
			}
			memcpy(c->line + c->len, p, seg);
			c->len += seg;
			return;
		}
		if (c->discarding) {
			c->discarding = false;
		} else if (c->len == 0) {
			accept_record(ch, p, seg);
		} else if (c->len + seg > ch->max_record) {
			ch->refused_long++;
			c->len = 0;
		} else {
			memcpy(c->line + c->len, p, seg);
			accept_record(ch, c->line, c->len + seg);
			c->len = 0;
		}
		p = nl + 1;
	}
}

static void
on_client(uv_poll_t *p, int status, int events)
{
	struct tx_client *c = p->data;
	struct tx_channel *ch = c->ch;
	uint8_t *buf = ch->tx->channels->readbuf;

	(void)events;
	for (int i = 0; i < READS_PER_WAKE; i++) {
		ssize_t n = status < 0 ? -1 : read(c->fd, buf, READ_BUF);

		if (n > 0) {
			c->last_ms = dd_mono_ms();
			client_bytes(c, buf, (size_t)n);
			if ((size_t)n < READ_BUF)
				break;
			continue;
		}
		if (n < 0 && status >= 0 && (errno == EAGAIN || errno == EINTR))
			break;
		/* End of stream: a last line without a newline is still a record;
		 * after an error it may be cut, so it is dropped with the connection. */
		if (n == 0 && c->len > 0 && !c->discarding)
			accept_record(ch, c->line, c->len);
		client_close(c);
		break;
	}
	pump(ch);
	if (ring_used(&ch->tx->stream) > 0)
		sender_kick(ch->tx);
}

/* At max_clients: close the client silent the longest, if long enough. */
static bool
evict_idle(struct tx_channel *ch)
{
	struct tx_client *idlest = NULL;
	uint64_t now = dd_mono_ms();

	for (struct tx_client *c = ch->clients; c != NULL; c = c->next)
		if (idlest == NULL || c->last_ms < idlest->last_ms)
			idlest = c;
	if (idlest == NULL || now - idlest->last_ms < IDLE_EVICT_MS)
		return false;
	client_close(idlest);
	return true;
}

static void
on_listener(uv_poll_t *p, int status, int events)
{
	struct tx_input *in = p->data;
	struct tx_channel *ch = in->ch;

	(void)events;
	if (status < 0)
		return;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(in->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct tx_client *c;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* The pending connection stays readable: pause instead of
				 * spinning, and try again at the next housekeeping. */
				uv_poll_stop(&in->poll);
				in->paused = true;
			}
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED &&
			    dd_ratelimit_ok(&io_rl, dd_mono_ms(), NULL))
				dd_warn("[%s] %s: accepting a connection: %s", ch->section, in->where,
					strerror(errno));
			return;
		}
		if (ch->tx->stopping || (ch->nclients >= ch->max_clients && !evict_idle(ch))) {
			/* Never stop accepting: a connection over the limit is closed at once. */
			ch->clients_refused++;
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c) + ch->max_record);
		if (c == NULL) {
			close(fd);
			ch->clients_refused++;
			continue;
		}
		if (in->kind == IN_TCP) {
			/* A producer that vanished (power, cable) is noticed and its
			 * connection closed; best effort. */
			int on = 1, idle = KEEPALIVE_IDLE_S, intvl = KEEPALIVE_INTVL_S,
			    cnt = KEEPALIVE_CNT;

			(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
			(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
			(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
			(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
		}
		c->ch = ch;
		c->fd = fd;
		c->last_ms = dd_mono_ms();
		uv_poll_init(ch->tx->loop, &c->poll, fd);
		c->poll.data = c;
		uv_poll_start(&c->poll, UV_READABLE, on_client);
		c->next = ch->clients;
		ch->clients = c;
		ch->nclients++;
	}
}

static void
on_udp(uv_poll_t *p, int status, int events)
{
	struct tx_input *in = p->data;
	struct tx_channel *ch = in->ch;
	struct tx_channels *cs = ch->tx->channels;

	(void)events;
	if (status < 0)
		return;
	for (int round = 0; round < UDP_BATCHES_PER_WAKE; round++) {
		int n;

		for (int i = 0; i < UDP_BATCH; i++) {
			cs->udp_iovs[i] = (struct iovec){ cs->udp_bufs + (size_t)i * UDP_BUF, UDP_BUF };
			memset(&cs->udp_msgs[i], 0, sizeof(cs->udp_msgs[i]));
			cs->udp_msgs[i].msg_hdr.msg_iov = &cs->udp_iovs[i];
			cs->udp_msgs[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(in->fd, cs->udp_msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			uint8_t *rec = cs->udp_bufs + (size_t)i * UDP_BUF;
			size_t len = cs->udp_msgs[i].msg_len;

			/* Sinks end every record with a newline of their own; one at
			 * the end of the datagram is the producer's line ending. */
			if (len > 0 && rec[len - 1] == '\n')
				len--;
			if (memchr(rec, '\n', len) != NULL) {
				ch->refused_newline++;
				continue;
			}
			accept_record(ch, rec, len);
		}
		if (n < UDP_BATCH)
			break;
	}
	pump(ch);
	if (ring_used(&ch->tx->stream) > 0)
		sender_kick(ch->tx);
}

/* ---------------------------------------------------------------- timers, status */

static void
on_housekeep(uv_timer_t *t)
{
	struct tx *tx = t->data;
	struct tx_channels *cs = tx->channels;

	for (unsigned i = 0; i < cs->n; i++) {
		struct tx_channel *ch = &cs->ch[i];
		int rc = dd_recq_sync(ch->q);

		if (rc != 0 && dd_ratelimit_ok(&io_rl, dd_mono_ms(), NULL))
			dd_error("[%s] journal in the state directory: %s", ch->section, strerror(-rc));
		save_seq(cs, ch, false);
		report(ch, false);
		for (unsigned j = 0; j < ch->ninputs; j++)
			if (ch->inputs[j].paused && ch->inputs[j].polling) {
				ch->inputs[j].paused = false;
				uv_poll_start(&ch->inputs[j].poll, UV_READABLE, on_listener);
			}
	}
	channels_fill(tx);
}

void
channels_start(struct tx *tx)
{
	struct tx_channels *cs = tx->channels;

	if (cs == NULL)
		return;
	uv_timer_init(tx->loop, &cs->housekeep);
	cs->housekeep.data = tx;
	uv_timer_start(&cs->housekeep, on_housekeep, HOUSEKEEP_MS, HOUSEKEEP_MS);
	for (unsigned i = 0; i < cs->n; i++) {
		struct tx_channel *ch = &cs->ch[i];

		uv_timer_init(tx->loop, &ch->flush_timer);
		ch->flush_timer.data = ch;
		for (unsigned j = 0; j < ch->ninputs; j++) {
			struct tx_input *in = &ch->inputs[j];

			if (in->kind == IN_MQTT) {
				mqtt_input_start(in->mqtt, tx->loop);
				continue;
			}
			uv_poll_init(tx->loop, &in->poll, in->fd);
			in->poll.data = in;
			uv_poll_start(&in->poll, UV_READABLE, in->kind == IN_UDP ? on_udp : on_listener);
			in->polling = true;
		}
	}
	channels_fill(tx);
}

static int
cmp_entry(const void *a, const void *b)
{
	uint32_t x = ((const struct dd_stream_status_entry *)a)->channel;
	uint32_t y = ((const struct dd_stream_status_entry *)b)->channel;

	return x < y ? -1 : x > y;
}

int
channels_queue_status(struct tx *tx)
{
	struct tx_channels *cs = tx->channels;
	struct dd_stream_status s;
	uint8_t *plain;

	if (cs == NULL || cs->n == 0)
		return 0;
	memset(&s, 0, sizeof(s));
	s.interval_ms = STATUS_INTERVAL_MS;
	for (unsigned i = 0; i < cs->n && i < dd_record_status_capacity(tx->plain_len); i++) {
		const struct tx_channel *ch = &cs->ch[i];

		/* Only what has left: the receiver may then expect every block
		 * below blocks, and every record below next_seq. */
		s.entries[s.count++] = (struct dd_stream_status_entry){
			.channel = ch->id, .blocks = ch->sent_blocks, .next_seq = ch->sent_seq,
			.start_seq = ch->start_seq,
			.dropped = ch->dropped + ch->refused_long + ch->refused_newline +
				   ch->refused_input,
		};
	}
	qsort(s.entries, s.count, sizeof(s.entries[0]), cmp_entry);
	plain = sender_ctrl_plain(tx, NULL);
	if (plain == NULL)
		return -ENOBUFS;
	return dd_record_put_status(plain, tx->plain_len, &s) < 0 ? -EINVAL : 0;
}

/* ---------------------------------------------------------------- stop */

void
channels_stop(struct tx *tx)
{
	struct tx_channels *cs = tx->channels;

	if (cs == NULL)
		return;
	uv_timer_stop(&cs->housekeep);
	for (unsigned i = 0; i < cs->n; i++) {
		struct tx_channel *ch = &cs->ch[i];

		for (unsigned j = 0; j < ch->ninputs; j++) {
			struct tx_input *in = &ch->inputs[j];

			mqtt_input_stop(in->mqtt);
			if (in->polling) {
				uv_poll_stop(&in->poll);
				uv_close((uv_handle_t *)&in->poll, NULL);
				in->polling = false;
			}
			if (in->fd >= 0)
				close(in->fd);
			in->fd = -1;
		}
		while (ch->clients != NULL) {
			struct tx_client *c = ch->clients;

			/* A last line without its newline is not taken: the client was
			 * cut off, not finished. */
			client_close(c);
		}
		/* What is packed already leaves with the drain; the rest stays queued. */
		uv_timer_stop(&ch->flush_timer);
		if (ch->count > 0) {
			/* What does not leave in the drain goes back to the journal. */
			ch->flush_due = true;
			(void)flush_block(ch);
		}
	}
	sender_kick(tx);
}

/* Records taken back from blocks that never left, per channel. */
struct unsent {
	struct iovec *v;
	size_t n, cap;
	uint64_t first_seq;
	bool any;
};

static int
take_record(void *arg, const uint8_t *rec, size_t len)
{
	struct unsent *u = arg;

	if (u->n == u->cap) {
		size_t cap = u->cap ? 2 * u->cap : 256;
		struct iovec *v = realloc(u->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		u->v = v;
		u->cap = cap;
	}
	u->v[u->n++] = (struct iovec){ (void *)(uintptr_t)rec, len };
	return 0;
}

/*
 * At stop, blocks still whole and unsealed in the stream ring, and the open
 * block, never left: their records go back to the front of the queue (and to
 * the journal) and their numbers are given back, so a clean stop loses at most
 * the block that was partly on the wire (the receiver reports that one).
 * The block copies are kept in *keep (freed by the caller).
 */
static void
take_back_unsent(struct tx *tx, struct unsent *u, uint8_t **keep, size_t *nkeep)
{
	struct tx_channels *cs = tx->channels;
	size_t F = tx->frag_len;
	uint32_t idx = tx->stream.tail;

	/* Sealed in place for a batch that did not leave: not readable any more. */
	for (unsigned i = tx->batch_pos; i < tx->batch_len; i++)
		idx += tx->batch_ring[i] == TX_RING_STREAM;
	while (ring_used(&tx->stream) > 0 && idx - tx->stream.tail < ring_used(&tx->stream)) {
		uint8_t *plain = ring_slot(&tx->stream, idx) + DD_HDR_LEN;
		unsigned n, ci;
		struct dd_stream_frag f;
		uint8_t *area;

		if (dd_record_parse_frag(&f, plain, DD_STREAM_HDR_LEN + F, F) != 0) {
			idx++;
			continue;
		}
		n = (unsigned)f.k + f.m;
		if (f.index != 0 || tx->stream.head - idx < n) {
			idx += f.index < n ? n - f.index : 1; /* the rest of a block partly sent */
			continue;
		}
		for (ci = 0; ci < cs->n && cs->ch[ci].id != f.channel; ci++)
			;
		area = ci < cs->n ? malloc((size_t)f.k * F) : NULL;
		if (area != NULL) {
			for (unsigned i = 0; i < f.k; i++)
				memcpy(area + (size_t)i * F,
				       ring_slot(&tx->stream, idx + i) + DD_HDR_LEN + DD_STREAM_HDR_LEN, F);
			keep[(*nkeep)++] = area;
			if (!u[ci].any) {
				u[ci].any = true;
				u[ci].first_seq = f.first_seq;
			}
			(void)dd_record_block_walk(area, (size_t)f.k * F, &f, take_record, &u[ci]);
		}
		idx += n;
	}
	for (unsigned ci = 0; ci < cs->n; ci++) {
		struct tx_channel *ch = &cs->ch[ci];
		struct dd_stream_frag f = { .bytes = (uint32_t)ch->used, .count = ch->count };

		if (ch->count > 0) {
			if (!u[ci].any) {
				u[ci].any = true;
				u[ci].first_seq = ch->first_seq;
			}
			(void)dd_record_block_walk(ch->area, (size_t)DD_STREAM_K_MAX * F, &f,
						   take_record, &u[ci]);
			ch->count = 0;
		}
		if (u[ci].any)
			ch->next_seq = u[ci].first_seq;
	}
}

void
channels_close(struct tx *tx)
{
	struct tx_channels *cs = tx->channels;
	struct unsent u[DD_CHANNELS_MAX];
	uint8_t *keep[STREAM_RING];
	size_t nkeep = 0;

	if (cs == NULL)
		return;
	memset(u, 0, sizeof(u));
	if (tx->stream.mem != NULL)
		take_back_unsent(tx, u, keep, &nkeep);
	for (unsigned i = 0; i < cs->n; i++) {
		struct tx_channel *ch = &cs->ch[i];
		struct dd_audit_event ev;
		uint64_t lost = 0, kept;
		int rc;

		for (unsigned j = 0; j < ch->ninputs; j++) {
			mqtt_input_free(ch->inputs[j].mqtt);
			ch->inputs[j].mqtt = NULL;
		}
		if (ch->q == NULL)
			continue;
		rc = dd_recq_save(ch->q, u[i].v, u[i].n, &lost);
		if (rc != 0)
			dd_error("[%s] journal in the state directory: %s; records still queued are "
				 "lost", ch->section, strerror(-rc));
		kept = dd_recq_records(ch->q);
		ch->dropped += lost;
		if (lost > 0)
			dd_warn("[%s] %" PRIu64 " queued records dropped at stop (%s)", ch->section,
				lost, ch->journal_bytes == 0 ? "no journal" : "journal full");
		report(ch, true);
		save_seq(cs, ch, true);
		dd_audit_begin(&ev, "channel_stopped");
		dd_audit_str(&ev, "channel", ch->name);
		dd_audit_u64(&ev, "accepted", ch->accepted);
		dd_audit_u64(&ev, "sent_up_to_seq", ch->sent_seq);
		dd_audit_u64(&ev, "next_seq", ch->next_seq);
		dd_audit_u64(&ev, "dropped", ch->dropped);
		dd_audit_u64(&ev, "refused",
			     ch->refused_long + ch->refused_newline + ch->refused_input);
		dd_audit_u64(&ev, "journaled", kept);
		dd_audit_commit(&ev);
		dd_notice("[%s] stopped: %" PRIu64 " records taken, sent up to seq %" PRIu64 ", %"
			  PRIu64 " dropped, %" PRIu64 " refused, %" PRIu64 " kept in the journal "
			  "for the next start", ch->section, ch->accepted, ch->sent_seq, ch->dropped,
			  ch->refused_long + ch->refused_newline + ch->refused_input, kept);
		dd_recq_free(ch->q);
		free(ch->area);
		free(u[i].v);
	}
	for (size_t i = 0; i < nkeep; i++)
		free(keep[i]);
	if (cs->state_fd >= 0)
		close(cs->state_fd);
	free(cs->readbuf);
	free(cs->udp_bufs);
	free(cs->ch);
	free(cs);
	tx->channels = NULL;
	ring_free(&tx->stream);
}

/* ---------------------------------------------------------------- metrics */

unsigned
channels_count(const struct tx *tx)
{
	return tx->channels != NULL ? tx->channels->n : 0;
}

void
channels_stats(const struct tx *tx, unsigned i, struct tx_channel_stats *out)
{
	const struct tx_channel *ch = &tx->channels->ch[i];

	memset(out, 0, sizeof(*out));
	out->name = ch->name;
	out->accepted = ch->accepted;
	out->dropped = ch->dropped;
	out->refused_long = ch->refused_long;
	out->refused_newline = ch->refused_newline;
	out->clients_refused = ch->clients_refused;
	out->io_errors = ch->io_errors;
	out->sent = ch->sent_seq - ch->start_seq;
	out->buffered_records = ch->q != NULL ? dd_recq_records(ch->q) : 0;
	out->buffered_bytes = ch->q != NULL ? dd_recq_bytes(ch->q) : 0;
	out->clients = ch->nclients;
}

/* ---------------------------------------------------------------- inputs in other files */

void
channel_record(struct tx_channel *ch, const uint8_t *rec, size_t len)
{
	accept_record(ch, rec, len);
	pump(ch);
	if (ring_used(&ch->tx->stream) > 0)
		sender_kick(ch->tx);
}

void
channel_refuse(struct tx_channel *ch, enum channel_refusal why)
{
	if (why == CHANNEL_REFUSED_LONG)
		ch->refused_long++;
	else
		ch->refused_input++;
}

size_t
channel_max_record(const struct tx_channel *ch)
{
	return ch->max_record;
}

void
channels_sandbox(struct tx *tx, struct dd_sandbox *sb)
{
	struct tx_channels *cs = tx->channels;

	if (cs == NULL)
		return;
	for (unsigned i = 0; i < cs->n; i++)
		for (unsigned j = 0; j < cs->ch[i].ninputs; j++)
			if (cs->ch[i].inputs[j].mqtt != NULL)
				mqtt_input_sandbox(cs->ch[i].inputs[j].mqtt, sb);
}
