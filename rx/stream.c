/* Stream channels: block reassembly and repair, delivery in record order, loss reports by sequence range. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "rx.h"
#include "sandbox.h"
#include "state.h"

#define WIN 128              /* blocks of a channel held at once */
#define EVIDENCE_MAX 64
#define LOSS_TIMER_MS 10
#define HOUSEKEEP_MS 250
#define SAVE_MS 1000
#define UNKNOWN_REPORT_MS 60000
#define FRAGS_MAX (DD_STREAM_K_MAX + DD_STREAM_M_MAX)

struct st_block {
	bool used, complete, bad;
	uint64_t block, first_seq;
	uint8_t k, m;
	uint16_t count, have;
	uint32_t bytes;
	uint8_t present[FRAGS_MAX];
	uint8_t *buf; /* k + m fragments; grown as needed, kept */
	size_t cap;
};

struct rx_channel {
	struct rx *rx;
	char name[72], section[80];
	uint32_t id;
	struct rx_sink *sink;
	uint64_t loss_wait_ms;

	/* This session */
	bool active, from_start, base_known;
	uint32_t session;
	uint64_t next_block;   /* every block below is delivered or reported */
	uint64_t max_seen;     /* highest block seen + 1 */
	uint64_t passed;       /* every block below was completely sent */
	struct {
		uint64_t below, at_ms;
	} ev[EVIDENCE_MAX];    /* when passed grew: how long a block has been overdue */
	unsigned nev;
	bool status_known;
	uint64_t status_blocks, status_seq, sender_dropped;
	bool gap_open;         /* blocks lost without a trace: records from next_seq on */
	uint64_t gap_blocks;
	bool adopted_blind;    /* next_seq was taken from a block, without knowing what came before */
	uint64_t first_delivered;
	bool warned_absent;
	struct st_block win[WIN];

	/* Across sessions and restarts */
	bool seq_known;
	uint64_t next_seq;     /* the seq the next record delivered should have */
	bool saved_valid;
	uint32_t saved_session;
	uint64_t saved_block, saved_seq;

	uint64_t delivered, lost, late, duplicates, malformed;
	/* For the status file, since diode-rx started: records_lost events,
	 * blocks given up, records diode-tx dropped, when records were last lost. */
	uint64_t gaps, blocks_lost, sender_dropped_total, last_loss_ms;
	struct dd_ratelimit lost_rl;
};

struct rx_streams {
	struct rx_channel *ch;
	unsigned n;
	int state_fd;
	uv_timer_t housekeep, loss_timer;
	uv_check_t flush_check;
	bool started, loss_armed;
	uint64_t last_save_ms;
	struct {
		uint32_t id;
		uint64_t at_ms;
	} unknown[16];
	unsigned nunknown;
};

/* ---------------------------------------------------------------- state files */

static void
state_name(const struct rx_channel *ch, char *out, size_t len)
{
	snprintf(out, len, "channel-%s", ch->name);
}

static void
load_state(struct rx_streams *ss, struct rx_channel *ch)
{
	char name[128], buf[256];
	uint64_t session, block, seq;

	state_name(ch, name, sizeof(name));
	if (dd_state_read(ss->state_fd, name, buf, sizeof(buf)) < 0)
		return;
	if (dd_state_get_u64(buf, "session", &session) != 0 || session > UINT32_MAX ||
	    dd_state_get_u64(buf, "block", &block) != 0 || dd_state_get_u64(buf, "seq", &seq) != 0) {
		dd_warn("[state] dir: %s unreadable; [%s] starts without knowing which records it "
			"delivered last (a gap across this restart would not be reported)", name,
			ch->section);
		return;
	}
	ch->saved_valid = true;
	ch->saved_session = (uint32_t)session;
	ch->saved_block = block;
	ch->saved_seq = seq;
	ch->seq_known = true;
	ch->next_seq = seq;
}

/* Periodic saves do not wait for the disk (an fsync on the event loop would
 * hold up every record behind it); the save at stop does. */
static void
save_state(struct rx_streams *ss, struct rx_channel *ch, bool durable)
{
	char name[128], buf[160];
	int rc;

	if (!ch->seq_known || !ch->active)
		return;
	if (ch->saved_valid && ch->saved_session == ch->session &&
	    ch->saved_block == ch->next_block && ch->saved_seq == ch->next_seq)
		return;
	state_name(ch, name, sizeof(name));
	snprintf(buf, sizeof(buf), "session %" PRIu32 "\nblock %" PRIu64 "\nseq %" PRIu64 "\n",
		 ch->session, ch->next_block, ch->next_seq);
	rc = durable ? dd_state_write(ss->state_fd, name, buf, strlen(buf))
		     : dd_state_write_lazy(ss->state_fd, name, buf, strlen(buf));
	if (rc != 0) {
		static struct dd_ratelimit rl = { .interval_ms = 60000 };

		if (dd_ratelimit_ok(&rl, dd_mono_ms(), NULL))
			dd_error("[state] dir: cannot write %s: %s; a gap across a restart of "
				 "diode-rx may go unreported", name, strerror(-rc));
		return;
	}
	ch->saved_valid = true;
	ch->saved_session = ch->session;
	ch->saved_block = ch->next_block;
	ch->saved_seq = ch->next_seq;
}

/* ---------------------------------------------------------------- reports */

static void
report_lost(struct rx_channel *ch, uint64_t first, uint64_t last, const char *reason)
{
	struct dd_audit_event ev;
	uint64_t suppressed = 0;

	ch->lost += last - first + 1;
	ch->gaps++;
	ch->last_loss_ms = dd_mono_ms();
	ch->rx->c.stream_records_lost += last - first + 1;
	if (dd_ratelimit_ok(&ch->lost_rl, dd_mono_ms(), &suppressed))
		dd_warn("[%s] records %" PRIu64 "..%" PRIu64 " (%" PRIu64 ") lost: %s%s", ch->section,
			first, last, last - first + 1, reason,
			suppressed ? " (and earlier gaps: see the audit log)" : "");
	dd_audit_begin(&ev, "records_lost");
	dd_audit_str(&ev, "channel", ch->name);
	dd_audit_u64(&ev, "session", ch->session);
	dd_audit_u64(&ev, "first", first);
	dd_audit_u64(&ev, "last", last);
	dd_audit_u64(&ev, "count", last - first + 1);
	dd_audit_str(&ev, "reason", reason);
	dd_audit_commit(&ev);
}

/* The next record delivered or accounted for has seq upto: anything between
 * is lost; going back means the sender's numbering restarted. */
static void
seq_advance(struct rx_channel *ch, uint64_t upto, const char *reason)
{
	struct dd_audit_event ev;

	if (!ch->seq_known) {
		ch->seq_known = true;
		ch->next_seq = upto;
		ch->adopted_blind = true;
		return;
	}
	if (upto > ch->next_seq) {
		report_lost(ch, ch->next_seq, upto - 1, reason);
	} else if (upto < ch->next_seq) {
		dd_warn("[%s] record numbers went back from %" PRIu64 " to %" PRIu64 ": diode-tx "
			"lost its channel state (or crashed); records may be repeated", ch->section,
			ch->next_seq, upto);
		dd_audit_begin(&ev, "channel_reset");
		dd_audit_str(&ev, "channel", ch->name);
		dd_audit_u64(&ev, "session", ch->session);
		dd_audit_u64(&ev, "expected", ch->next_seq);
		dd_audit_u64(&ev, "got", upto);
		dd_audit_commit(&ev);
	}
	ch->next_seq = upto;
	ch->gap_open = false;
	ch->gap_blocks = 0;
}

/* ---------------------------------------------------------------- blocks */

static struct st_block *
slot_of(struct rx_channel *ch, uint64_t block)
{
	struct st_block *b = &ch->win[block % WIN];

	return b->used && b->block == block ? b : NULL;
}

static void
note_passed(struct rx_channel *ch, uint64_t below, uint64_t now)
{
	if (below <= ch->passed)
		return;
	if (ch->nev == EVIDENCE_MAX) {
		/* Forget the oldest: its blocks then look overdue since later, which
		 * only makes the wait longer. */
		memmove(ch->ev, ch->ev + 1, sizeof(ch->ev[0]) * (EVIDENCE_MAX - 1));
		ch->nev--;
	}
	ch->ev[ch->nev].below = below;
	ch->ev[ch->nev].at_ms = now;
	ch->nev++;
	ch->passed = below;
}

/* Since when block b is known to have been sent completely. */
static uint64_t
overdue_since(struct rx_channel *ch, uint64_t b)
{
	unsigned drop = 0;
	uint64_t at = UINT64_MAX;

	for (unsigned i = 0; i < ch->nev; i++) {
		if (ch->ev[i].below <= ch->next_block) {
			drop = i + 1;
			continue;
		}
		if (ch->ev[i].below > b) {
			at = ch->ev[i].at_ms;
			break;
		}
	}
	if (drop > 0) {
		memmove(ch->ev, ch->ev + drop, sizeof(ch->ev[0]) * (ch->nev - drop));
		ch->nev -= drop;
	}
	return at;
}

struct deliver_ctx {
	struct rx_channel *ch;
	uint64_t seq;
};

static int
deliver_one(void *arg, const uint8_t *rec, size_t len)
{
	struct deliver_ctx *d = arg;

	sink_record(d->ch->sink, d->seq++, rec, len);
	return 0;
}

static void
release(struct st_block *b)
{
	b->used = b->complete = b->bad = false;
}

static void
deliver_block(struct rx_channel *ch, struct st_block *b)
{
	struct deliver_ctx d = { ch, b->first_seq };
	char reason[96];

	seq_advance(ch, b->first_seq, "no fragment of their blocks arrived");
	if (ch->first_delivered == UINT64_MAX)
		ch->first_delivered = b->first_seq;
	if (b->bad || dd_record_block_walk(b->buf, (size_t)b->k * ch->rx->frag_len,
					   &(struct dd_stream_frag){ .bytes = b->bytes,
								     .count = b->count },
					   deliver_one, &d) != 0) {
		ch->malformed++;
		snprintf(reason, sizeof(reason), "block %" PRIu64 " could not be decoded", b->block);
		report_lost(ch, b->first_seq, b->first_seq + b->count - 1, reason);
	} else {
		ch->delivered += b->count;
		ch->rx->c.stream_records += b->count;
	}
	ch->next_seq = b->first_seq + b->count;
	release(b);
}

static void
declare_lost(struct rx_channel *ch, struct st_block *b, const char *why)
{
	char reason[160];

	if (b == NULL) {
		/* Not a single fragment: the range ends where the next known block
		 * (or the sender's status) starts. */
		ch->gap_open = true;
		ch->gap_blocks++;
		ch->blocks_lost++;
		ch->rx->c.stream_blocks_lost++;
		return;
	}
	ch->blocks_lost++;
	ch->rx->c.stream_blocks_lost++;
	seq_advance(ch, b->first_seq, "no fragment of their blocks arrived");
	snprintf(reason, sizeof(reason), "block %" PRIu64 ": %u of %u fragments arrived, %u needed%s%s",
		 b->block, b->have, b->k + b->m, b->k, why ? "; " : "", why ? why : "");
	report_lost(ch, b->first_seq, b->first_seq + b->count - 1, reason);
	ch->next_seq = b->first_seq + b->count;
	release(b);
}

/* The sender's status says every record below status_seq left in blocks
 * below status_blocks: once those are settled, anything missing is lost. */
static void
settle_status(struct rx_channel *ch)
{
	if (ch->status_known && ch->base_known && ch->next_block == ch->status_blocks &&
	    (ch->seq_known || ch->gap_open))
		seq_advance(ch, ch->status_seq, "no fragment of their blocks arrived");
}

/* Deliver complete blocks in order; give up overdue ones (all when force). */
static void
resolve(struct rx_channel *ch, uint64_t now, bool force, const char *why)
{
	for (;;) {
		struct st_block *b = slot_of(ch, ch->next_block);

		if (b != NULL && b->complete) {
			deliver_block(ch, b);
		} else if (ch->next_block < ch->passed) {
			uint64_t since = overdue_since(ch, ch->next_block);

			if (!force && (since == UINT64_MAX || now - since < ch->loss_wait_ms))
				break;
			declare_lost(ch, b, why);
		} else {
			break;
		}
		ch->next_block++;
	}
	settle_status(ch);
}

/* Settle everything seen so far (a new session, or diode-rx stops). */
static void
finish_session(struct rx_channel *ch, const char *why)
{
	uint64_t end = ch->max_seen;

	if (!ch->active || !ch->base_known)
		return;
	/* Up to the last block heard of, or the last the sender said it sent. */
	if (ch->status_known && ch->status_blocks > end)
		end = ch->status_blocks;
	note_passed(ch, end, dd_mono_ms());
	resolve(ch, dd_mono_ms(), true, why);
}

static void
complete_block(struct rx_channel *ch, struct st_block *b)
{
	size_t F = ch->rx->frag_len;
	uint8_t *frags[FRAGS_MAX];
	bool missing = false;

	for (unsigned i = 0; i < b->k; i++)
		missing |= !b->present[i];
	if (missing) {
		for (unsigned i = 0; i < (unsigned)b->k + b->m; i++)
			frags[i] = b->buf + i * F;
		if (dd_fec_decode(ch->rx->fec, b->k, b->m, F, frags, b->present) != 0)
			b->bad = true;
		else
			ch->rx->c.blocks_recovered++;
	}
	b->complete = true;
}

/* ---------------------------------------------------------------- timers */

static void
arm_loss_timer(struct rx_streams *ss);

static void
on_loss_timer(uv_timer_t *t)
{
	struct rx *rx = t->data;
	struct rx_streams *ss = rx->streams;
	uint64_t now = dd_mono_ms();
	bool pending = false;

	for (unsigned i = 0; i < ss->n; i++) {
		struct rx_channel *ch = &ss->ch[i];

		if (!ch->active || !ch->base_known)
			continue;
		resolve(ch, now, false, NULL);
		pending |= ch->next_block < ch->passed;
	}
	if (!pending) {
		uv_timer_stop(t);
		ss->loss_armed = false;
	}
}

static void
arm_loss_timer(struct rx_streams *ss)
{
	if (ss->loss_armed || !ss->started)
		return;
	uv_timer_start(&ss->loss_timer, on_loss_timer, LOSS_TIMER_MS, LOSS_TIMER_MS);
	ss->loss_armed = true;
}

static void
on_housekeep(uv_timer_t *t)
{
	struct rx *rx = t->data;
	struct rx_streams *ss = rx->streams;
	uint64_t now = dd_mono_ms();
	bool save = now - ss->last_save_ms >= SAVE_MS;

	for (unsigned i = 0; i < ss->n; i++) {
		sink_tick(ss->ch[i].sink, now);
		if (save)
			save_state(ss, &ss->ch[i], false);
	}
	if (save)
		ss->last_save_ms = now;
}

static void
on_flush_check(uv_check_t *c)
{
	struct rx *rx = c->data;
	struct rx_streams *ss = rx->streams;

	for (unsigned i = 0; i < ss->n; i++)
		sink_flush(ss->ch[i].sink);
}

/* ---------------------------------------------------------------- config */

struct open_ctx {
	struct rx *rx;
	const struct dd_config *cfg;
	bool check_only;
	unsigned n;
};

static int
open_channel(const char *section, void *arg)
{
	struct open_ctx *ctx = arg;
	struct rx_streams *ss = ctx->rx->streams;
	struct rx_channel *ch = &ss->ch[ss->n];
	const char *spec = dd_config_str(ctx->cfg, section, "sink");

	memset(ch, 0, sizeof(*ch));
	ch->rx = ctx->rx;
	ch->first_delivered = UINT64_MAX;
	ch->lost_rl.interval_ms = 1000;
	snprintf(ch->section, sizeof(ch->section), "%s", section);
	snprintf(ch->name, sizeof(ch->name), "%s", section + strlen("channel."));
	ch->id = dd_record_channel_id(ch->name);
	ch->loss_wait_ms = dd_config_u64(ctx->cfg, section, "loss_wait");
	for (unsigned i = 0; i < ss->n; i++) {
		if (ss->ch[i].id == ch->id) {
			fprintf(stderr, "%s: [%s] and [%s] have the same channel id %08x on the wire; "
				"rename one of them (on both sides)\n",
				dd_config_where(ctx->cfg, section, NULL), section, ss->ch[i].section,
				ch->id);
			return -EINVAL;
		}
		if (strncmp(spec, "dir:", 4) == 0 &&
		    strcmp(spec, dd_config_str(ctx->cfg, ss->ch[i].section, "sink")) == 0) {
			fprintf(stderr, "%s: [%s] sink: %s is also the sink of [%s]; give each channel "
				"its own directory\n", dd_config_where(ctx->cfg, section, "sink"),
				section, spec, ss->ch[i].section);
			return -EINVAL;
		}
	}
	ss->n++;
	if (sink_open(&ch->sink, ctx->rx, ctx->cfg, section, ch->name, ss->state_fd,
		      ctx->check_only) != 0)
		return -EINVAL;
	if (ctx->check_only)
		return 0;
	load_state(ss, ch);
	dd_notice("[%s] delivering to %s%s", section, spec,
		  ch->seq_known ? "" : " (first start: no record delivered before)");
	return 0;
}

struct dir_count {
	const struct dd_config *cfg;
	unsigned n;
};

static int
count_dir_sink(const char *section, void *arg)
{
	struct dir_count *cd = arg;

	cd->n += strncmp(dd_config_str(cd->cfg, section, "sink"), "dir:", 4) == 0;
	return 0;
}

int
streams_open(struct rx *rx, const struct dd_config *cfg, bool check_only)
{
	struct open_ctx ctx = { .rx = rx, .cfg = cfg, .check_only = check_only };
	struct rx_streams *ss;

	ctx.n = dd_config_count_sections(cfg, "channel.");
	if (ctx.n == 0)
		return 0;
	if (ctx.n > DD_CHANNELS_MAX) {
		fprintf(stderr, "%s: at most %d [channel.NAME] sections\n",
			dd_config_where(cfg, "link", NULL), DD_CHANNELS_MAX);
		return -1;
	}
	ss = calloc(1, sizeof(*ss));
	if (ss == NULL || (ss->ch = calloc(ctx.n, sizeof(*ss->ch))) == NULL) {
		free(ss);
		fprintf(stderr, "out of memory\n");
		return -1;
	}
	ss->state_fd = -1;
	rx->streams = ss;
	{
		/* Each dir: sink is one more path for Landlock; the daemon itself
		 * needs up to 6 (inbox, staging, quarantine, state, audit, spare). */
		struct dir_count cd = { cfg, 0 };

		dd_config_each_section(cfg, "channel.", count_dir_sink, &cd);
		if (cd.n > DD_SANDBOX_PATHS_MAX - 6) {
			fprintf(stderr, "%s: at most %d channels with a dir: sink\n",
				dd_config_where(cfg, "link", NULL), DD_SANDBOX_PATHS_MAX - 6);
			return -1;
		}
	}
	if (!check_only) {
		ss->state_fd = dd_state_open_dir(dd_config_str(cfg, "state", "dir"));
		if (ss->state_fd < 0) {
			fprintf(stderr, "%s: [state] dir: %s\n", dd_config_where(cfg, "state", "dir"),
				strerror(-ss->state_fd));
			return -1;
		}
	}
	return dd_config_each_section(cfg, "channel.", open_channel, &ctx) != 0 ? -1 : 0;
}

void
streams_sandbox(struct rx *rx, struct dd_sandbox *sb)
{
	struct rx_streams *ss = rx->streams;

	if (ss == NULL)
		return;
	for (unsigned i = 0; i < ss->n; i++)
		sink_sandbox(ss->ch[i].sink, sb);
}

void
streams_start(struct rx *rx)
{
	struct rx_streams *ss = rx->streams;

	if (ss == NULL)
		return;
	uv_timer_init(rx->loop, &ss->housekeep);
	uv_timer_init(rx->loop, &ss->loss_timer);
	uv_check_init(rx->loop, &ss->flush_check);
	ss->housekeep.data = ss->loss_timer.data = ss->flush_check.data = rx;
	uv_timer_start(&ss->housekeep, on_housekeep, HOUSEKEEP_MS, HOUSEKEEP_MS);
	uv_check_start(&ss->flush_check, on_flush_check);
	ss->started = true;
	for (unsigned i = 0; i < ss->n; i++)
		sink_start(ss->ch[i].sink);
}

/* ---------------------------------------------------------------- datagrams */

static struct rx_channel *
find_channel(struct rx *rx, uint32_t id)
{
	struct rx_streams *ss = rx->streams;

	if (ss != NULL)
		for (unsigned i = 0; i < ss->n; i++)
			if (ss->ch[i].id == id)
				return &ss->ch[i];
	return NULL;
}

static void
unknown_channel(struct rx *rx, uint32_t id)
{
	static struct {
		uint32_t id;
		uint64_t at_ms;
	} seen[16];
	static unsigned next;
	uint64_t now = dd_mono_ms();
	unsigned i;

	rx->c.stream_unknown++;
	for (i = 0; i < 16; i++)
		if (seen[i].at_ms != 0 && seen[i].id == id)
			break;
	if (i < 16 && now - seen[i].at_ms < UNKNOWN_REPORT_MS)
		return;
	if (i == 16)
		i = next++ % 16;
	seen[i].id = id;
	seen[i].at_ms = now;
	dd_warn("records of a channel with id %08x arrive, but no [channel.NAME] here has that "
		"id; add the sender's [channel.NAME] section (same NAME) to this configuration",
		id);
}

static void
channel_begin(struct rx_channel *ch, uint32_t session, bool from_start)
{
	finish_session(ch, "the sender started a new session before the block completed");
	for (unsigned j = 0; j < WIN; j++)
		release(&ch->win[j]);
	ch->active = true;
	ch->session = session;
	ch->from_start = from_start;
	ch->passed = ch->max_seen = 0;
	ch->nev = 0;
	ch->status_known = false;
	ch->sender_dropped = 0;
	ch->gap_open = ch->adopted_blind = ch->warned_absent = false;
	ch->gap_blocks = 0;
	ch->first_delivered = UINT64_MAX;
	if (ch->saved_valid && ch->saved_session == session) {
		/* diode-rx restarted within the session: go on where it stopped. */
		ch->base_known = true;
		ch->next_block = ch->saved_block;
	} else {
		ch->base_known = from_start;
		ch->next_block = 0;
	}
}

void
streams_new_session(struct rx *rx, uint32_t session, bool from_start)
{
	struct rx_streams *ss = rx->streams;

	if (ss == NULL)
		return;
	for (unsigned i = 0; i < ss->n; i++)
		channel_begin(&ss->ch[i], session, from_start);
}

void
streams_fragment(struct rx *rx, const struct dd_stream_frag *f, const uint8_t *payload)
{
	struct rx_channel *ch = find_channel(rx, f->channel);
	size_t F = rx->frag_len;
	uint64_t now = dd_mono_ms();
	struct st_block *b;

	if (ch == NULL) {
		unknown_channel(rx, f->channel);
		return;
	}
	if (!ch->active)
		channel_begin(ch, rx->session, false);
	if (!ch->base_known) {
		/* Joined a running session: start at the first block heard. */
		ch->base_known = true;
		ch->next_block = f->block;
	}
	if (f->block < ch->next_block) {
		ch->late++;
		rx->c.duplicates++;
		return;
	}
	if (f->block >= ch->max_seen)
		ch->max_seen = f->block + 1;
	/* Blocks leave whole and in order: a fragment of block b means every
	 * earlier block was sent completely. */
	note_passed(ch, f->block, now);
	while (f->block >= ch->next_block + WIN) {
		bool any = false;

		for (unsigned i = 0; i < WIN && !any; i++)
			any = ch->win[i].used;
		if (!any) {
			/* A jump with nothing held: everything skipped is lost. */
			ch->rx->c.stream_blocks_lost += f->block - WIN + 1 - ch->next_block;
			ch->blocks_lost += f->block - WIN + 1 - ch->next_block;
			ch->gap_open = true;
			ch->next_block = f->block - WIN + 1;
			break;
		}
		b = slot_of(ch, ch->next_block);
		if (b != NULL && b->complete)
			deliver_block(ch, b);
		else
			declare_lost(ch, b, "newer blocks arrived");
		ch->next_block++;
	}
	b = &ch->win[f->block % WIN];
	if (!b->used && b->cap < (size_t)(f->k + f->m) * F) {
		uint8_t *p = realloc(b->buf, (size_t)FRAGS_MAX * F);

		if (p == NULL) {
			rx->c.blocks_lost++;
			return;
		}
		b->buf = p;
		b->cap = (size_t)FRAGS_MAX * F;
	}
	if (!b->used) {
		b->used = true;
		b->complete = b->bad = false;
		b->block = f->block;
		b->k = f->k;
		b->m = f->m;
		b->first_seq = f->first_seq;
		b->count = f->count;
		b->bytes = f->bytes;
		b->have = 0;
		memset(b->present, 0, sizeof(b->present));
		memset(b->buf, 0, (size_t)(f->k + f->m) * F);
	} else if (b->k != f->k || b->m != f->m || b->first_seq != f->first_seq ||
		   b->count != f->count || b->bytes != f->bytes) {
		ch->malformed++;
		rx->c.malformed++;
		return;
	}
	if (b->complete || b->present[f->index]) {
		ch->duplicates++;
		rx->c.duplicates++;
		return;
	}
	memcpy(b->buf + (size_t)f->index * F, payload, F);
	b->present[f->index] = 1;
	b->have++;
	if (b->have == b->k)
		complete_block(ch, b);
	resolve(ch, now, false, NULL);
	if (ch->next_block < ch->passed)
		arm_loss_timer(rx->streams);
}

void
streams_status(struct rx *rx, const struct dd_stream_status *s)
{
	struct rx_streams *ss = rx->streams;
	uint64_t now = dd_mono_ms();

	for (unsigned i = 0; i < s->count; i++) {
		const struct dd_stream_status_entry *e = &s->entries[i];
		struct rx_channel *ch = find_channel(rx, e->channel);

		if (ch == NULL) {
			unknown_channel(rx, e->channel);
			continue;
		}
		if (!ch->active)
			channel_begin(ch, rx->session, false);
		if (e->dropped > ch->sender_dropped) {
			struct dd_audit_event ev;

			dd_warn("[%s] diode-tx dropped or refused %" PRIu64 " records at its input "
				"(%" PRIu64 " this session; see its audit log)", ch->section,
				e->dropped - ch->sender_dropped, e->dropped);
			dd_audit_begin(&ev, "sender_dropped");
			dd_audit_str(&ev, "channel", ch->name);
			dd_audit_u64(&ev, "session", ch->session);
			dd_audit_u64(&ev, "count", e->dropped - ch->sender_dropped);
			dd_audit_u64(&ev, "total", e->dropped);
			dd_audit_commit(&ev);
			ch->sender_dropped_total += e->dropped - ch->sender_dropped;
			ch->last_loss_ms = now;
			ch->sender_dropped = e->dropped;
		}
		if (!ch->base_known) {
			/* Joined a running session: nothing before its status is expected. */
			ch->base_known = true;
			ch->next_block = e->blocks;
		}
		if (ch->first_delivered == UINT64_MAX && ch->next_block == 0 && !ch->seq_known) {
			/* Nothing delivered yet, nothing known: the session's first seq. */
			ch->seq_known = true;
			ch->next_seq = e->start_seq;
		} else if (ch->adopted_blind && ch->from_start && ch->first_delivered != UINT64_MAX &&
			   e->start_seq < ch->first_delivered) {
			/* The first blocks of a session heard from its start were lost
			 * before anything told where the numbering began. */
			report_lost(ch, e->start_seq, ch->first_delivered - 1,
				    "no fragment of their blocks arrived");
		}
		ch->adopted_blind = false;
		ch->status_known = true;
		ch->status_blocks = e->blocks;
		ch->status_seq = e->next_seq;
		note_passed(ch, e->blocks, now);
		resolve(ch, now, false, NULL);
		if (ch->next_block < ch->passed)
			arm_loss_timer(ss);
	}
	for (unsigned i = 0; ss != NULL && i < ss->n; i++) {
		struct rx_channel *ch = &ss->ch[i];
		bool listed = false;

		for (unsigned j = 0; j < s->count && !listed; j++)
			listed = s->entries[j].channel == ch->id;
		if (!listed && !ch->warned_absent && ch->active) {
			ch->warned_absent = true;
			dd_warn("[%s] is not a channel of diode-tx (session %" PRIu32 "): add the same "
				"[%s] section to its configuration", ch->section, ch->session,
				ch->section);
		}
	}
}

/* ---------------------------------------------------------------- stop */

void
streams_stop(struct rx *rx)
{
	struct rx_streams *ss = rx->streams;

	if (ss == NULL)
		return;
	for (unsigned i = 0; i < ss->n; i++) {
		struct rx_channel *ch = &ss->ch[i];

		finish_session(ch, "diode-rx stopped before the block completed");
		sink_stop(ch->sink);
		save_state(ss, ch, true);
	}
	if (ss->started) {
		uv_timer_stop(&ss->housekeep);
		uv_timer_stop(&ss->loss_timer);
		uv_check_stop(&ss->flush_check);
	}
}

void
streams_close(struct rx *rx)
{
	struct rx_streams *ss = rx->streams;

	if (ss == NULL)
		return;
	for (unsigned i = 0; i < ss->n; i++) {
		sink_free(ss->ch[i].sink);
		for (unsigned j = 0; j < WIN; j++)
			free(ss->ch[i].win[j].buf);
	}
	if (ss->state_fd >= 0)
		close(ss->state_fd);
	free(ss->ch);
	free(ss);
	rx->streams = NULL;
}

/* ---------------------------------------------------------------- metrics */

unsigned
streams_count(const struct rx *rx)
{
	return rx->streams != NULL ? rx->streams->n : 0;
}

void
streams_stats(const struct rx *rx, unsigned i, struct rx_channel_stats *out)
{
	const struct rx_channel *ch = &rx->streams->ch[i];

	memset(out, 0, sizeof(*out));
	out->name = ch->name;
	out->delivered = ch->delivered;
	out->lost = ch->lost;
	out->late = ch->late;
	out->duplicates = ch->duplicates;
	out->malformed = ch->malformed;
	out->gaps = ch->gaps;
	out->sender_dropped = ch->sender_dropped_total;
	if (ch->sink != NULL) {
		struct sink_status st;

		sink_get_status(ch->sink, &st);
		out->sink_dropped = st.dropped;
		out->sink_backlog = st.backlog;
	}
}

/* ---------------------------------------------------------------- status */

static void
append(char *buf, size_t len, size_t *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
append(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (*n + 1 >= len)
		return;
	va_start(ap, fmt);
	r = vsnprintf(buf + *n, len - *n, fmt, ap);
	va_end(ap);
	if (r > 0)
		*n = (size_t)r < len - *n ? *n + (size_t)r : len - 1; /* cut: the rest is lost */
}

size_t
streams_status_text(struct rx *rx, char *buf, size_t len, uint64_t *last_loss_ms)
{
	struct rx_streams *ss = rx->streams;
	uint64_t now = dd_mono_ms();
	size_t n = 0;

	*last_loss_ms = 0;
	if (ss == NULL || len == 0)
		return 0;
	buf[0] = '\0';
	append(buf, len, &n,
	       "stream_records_delivered %" PRIu64 "\nstream_records_lost %" PRIu64
	       "\nstream_blocks_lost %" PRIu64 "\nstream_unknown_datagrams %" PRIu64 "\n",
	       rx->c.stream_records, rx->c.stream_records_lost, rx->c.stream_blocks_lost,
	       rx->c.stream_unknown);
	for (unsigned i = 0; i < ss->n; i++) {
		const struct rx_channel *ch = &ss->ch[i];
		struct sink_status st;
		uint64_t loss_ms;
		char ago[32];

		sink_get_status(ch->sink, &st);
		loss_ms = ch->last_loss_ms > st.last_drop_ms ? ch->last_loss_ms : st.last_drop_ms;
		if (loss_ms > *last_loss_ms)
			*last_loss_ms = loss_ms;
		if (loss_ms == 0)
			snprintf(ago, sizeof(ago), "never");
		else
			snprintf(ago, sizeof(ago), "%" PRIu64, (now - loss_ms) / 1000);
		/* One line per channel, "key value" pairs; the sink's target last
		 * (a dir: path may hold spaces). */
		append(buf, len, &n,
		       "channel %s delivered %" PRIu64 " lost %" PRIu64 " gaps %" PRIu64
		       " blocks_lost %" PRIu64 " sender_dropped %" PRIu64 " sink_state %s"
		       " sink_backlog %" PRIu64 " sink_dropped %" PRIu64 " last_loss_s_ago %s"
		       " sink %s\n", ch->name, ch->delivered, ch->lost, ch->gaps, ch->blocks_lost,
		       ch->sender_dropped_total, st.state, st.backlog, st.dropped, ago, st.target);
	}
	return n;
}
