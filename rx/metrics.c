/* diode-rx monitoring: its counters as a Prometheus text file every [log] metrics_interval, and syslog set-up. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "rx.h"
#include "sandbox.h"

#define METRICS_BUF (256 * 1024)

static struct dd_metrics_file mfile = { .dirfd = -1 };
static uint64_t interval_ms;
static uv_timer_t timer;
static char text[METRICS_BUF];

_Static_assert(sizeof(struct rx_counters) % sizeof(uint64_t) == 0,
	       "struct rx_counters holds uint64_t counters only");

void
rx_counters_add(struct rx_counters *sum, const struct rx_counters *c)
{
	uint64_t a[sizeof(*sum) / sizeof(uint64_t)], b[sizeof(*c) / sizeof(uint64_t)];

	memcpy(a, sum, sizeof(a));
	memcpy(b, c, sizeof(b));
	for (size_t i = 0; i < sizeof(a) / sizeof(a[0]); i++)
		a[i] += b[i];
	memcpy(sum, a, sizeof(a));
}

int
rx_monitoring_open(struct rx *rx, const struct dd_config *cfg)
{
	(void)rx;
	return dd_monitoring_open(cfg, &mfile, &interval_ms);
}

void
rx_monitoring_sandbox(struct rx *rx, struct dd_sandbox *sb)
{
	(void)rx;
	if (mfile.dirfd >= 0)
		dd_sandbox_allow(sb, mfile.dir, true);
	if (dd_syslog_fd() >= 0)
		dd_sandbox_syslog_socket(sb, dd_syslog_fd());
}

static void
reason(struct dd_metrics *m, const char *why, uint64_t v)
{
	dd_metrics_u64(m, (const struct dd_metrics_label[]){ { "reason", why } }, 1, v);
}

/* One family with one sample per channel. */
static void
per_channel(struct dd_metrics *m, const struct rx *rx, const char *name, const char *help,
	    size_t field)
{
	unsigned n = streams_count(rx);
	size_t len = strlen(name);
	bool counter = len > 6 && strcmp(name + len - 6, "_total") == 0;

	if (n == 0)
		return;
	dd_metrics_family(m, name, counter ? DD_METRIC_COUNTER : DD_METRIC_GAUGE, help);
	for (unsigned i = 0; i < n; i++) {
		struct rx_channel_stats st;
		uint64_t v;

		streams_stats(rx, i, &st);
		memcpy(&v, (const char *)&st + field, sizeof(v));
		dd_metrics_u64(m, (const struct dd_metrics_label[]){ { "channel", st.name } }, 1, v);
	}
}

static void
channel_metrics(struct dd_metrics *m, const struct rx *rx, const struct rx_counters *t)
{
	per_channel(m, rx, "diode_rx_channel_records_delivered_total",
		    "Records handed to the channel's sink, in order.",
		    offsetof(struct rx_channel_stats, delivered));
	per_channel(m, rx, "diode_rx_channel_records_lost_total",
		    "Records reported lost (gaps in the record sequence).",
		    offsetof(struct rx_channel_stats, lost));
	per_channel(m, rx, "diode_rx_channel_gaps_total",
		    "Gaps in the record sequence reported (records_lost events).",
		    offsetof(struct rx_channel_stats, gaps));
	per_channel(m, rx, "diode_rx_channel_records_dropped_by_sender_total",
		    "Records diode-tx reported it dropped (buffer and journal full).",
		    offsetof(struct rx_channel_stats, sender_dropped));
	per_channel(m, rx, "diode_rx_channel_sink_dropped_records_total",
		    "Records the sink could not hand on (reported in the audit log).",
		    offsetof(struct rx_channel_stats, sink_dropped));
	per_channel(m, rx, "diode_rx_channel_sink_backlog_records",
		    "Records waiting in the sink (TCP: not yet sent or acknowledged).",
		    offsetof(struct rx_channel_stats, sink_backlog));
	per_channel(m, rx, "diode_rx_channel_late_fragments_total",
		    "Fragments of blocks already delivered or reported lost.",
		    offsetof(struct rx_channel_stats, late));
	per_channel(m, rx, "diode_rx_channel_duplicate_fragments_total",
		    "Fragments received twice.", offsetof(struct rx_channel_stats, duplicates));
	per_channel(m, rx, "diode_rx_channel_malformed_total",
		    "Fragments or blocks that did not fit the block they belong to.",
		    offsetof(struct rx_channel_stats, malformed));
	if (streams_count(rx) == 0 && t->stream_unknown == 0)
		return;
	dd_metrics_counter(m, "diode_rx_stream_blocks_lost_total",
		"Stream blocks that could not be completed (all channels).", t->stream_blocks_lost);
	dd_metrics_counter(m, "diode_rx_stream_unknown_channel_fragments_total",
		"Stream fragments of a channel this receiver has no [channel.NAME] for.",
		t->stream_unknown);
}

void
rx_metrics_write(struct rx *rx)
{
	struct dd_metrics m;
	struct rx_counters t = rx->c_before;
	uint64_t now = dd_now_ms(), mono = dd_mono_ms();

	if (mfile.dirfd < 0)
		return;
	rx_counters_add(&t, &rx->c);
	dd_metrics_init(&m, text, sizeof(text));
	dd_metrics_gauge(&m, "diode_rx_link_up",
	      "1 while authentic datagrams arrive (within [link] timeout), else 0.",
	      rx->link_up ? 1 : 0);
	if (rx->last_auth_ms != 0 && mono >= rx->last_auth_ms)
		dd_metrics_gauge(&m, "diode_rx_last_authentic_timestamp_seconds",
		      "When the last authentic datagram arrived, in seconds since the epoch.",
		      (double)(now - (mono - rx->last_auth_ms)) / 1000.0);
	dd_metrics_gauge(&m, "diode_rx_session", "Session number of the sender (0: none heard yet).",
	      rx->session);
	if (rx->session_started_ms != 0 && now >= rx->session_started_ms)
		dd_metrics_gauge(&m, "diode_rx_session_age_seconds",
		      "Seconds since this receiver first heard the current session.",
		      (double)(now - rx->session_started_ms) / 1000.0);
	dd_metrics_counter(&m, "diode_rx_received_datagrams_total",
		"Datagrams received, authentic or not.", t.received);
	dd_metrics_counter(&m, "diode_rx_received_bytes_total", "UDP payload bytes received.",
		t.received_bytes);
	dd_metrics_counter(&m, "diode_rx_accepted_datagrams_total",
		"Datagrams whose tag verified (or authentic announces).", t.accepted);
	dd_metrics_family(&m, "diode_rx_rejected_datagrams_total", DD_METRIC_COUNTER,
			  "Datagrams rejected or discarded, by reason.");
	reason(&m, "bad_tag", t.bad_tag);
	reason(&m, "replay", t.replay);
	reason(&m, "malformed", t.malformed);
	reason(&m, "no_session_key", t.no_key);
	reason(&m, "unknown_sender", t.unknown_sender);
	reason(&m, "old_session", t.stale);
	reason(&m, "announce_rate_limited", t.rate_limited);
	dd_metrics_counter(&m, "diode_rx_announces_total", "Announce datagrams received, whatever the outcome.",
		t.announces);
	dd_metrics_counter(&m, "diode_rx_sequence_gap_datagrams_total",
		"Authentic datagrams found missing from the sequence when a later one arrived "
		"(lost on the link = this minus diode_rx_reordered_datagrams_total).",
		t.lost + t.reordered);
	dd_metrics_counter(&m, "diode_rx_reordered_datagrams_total",
		"Authentic datagrams that arrived after a later one.", t.reordered);
	dd_metrics_counter(&m, "diode_rx_duplicate_fragments_total",
		"Fragments received again (carousel passes, duplicated datagrams).", t.duplicates);
	dd_metrics_counter(&m, "diode_rx_fec_blocks_recovered_total",
		"File blocks rebuilt by Reed-Solomon from parity.", t.blocks_recovered);
	dd_metrics_counter(&m, "diode_rx_fec_blocks_lost_total",
		"File blocks given up as unrecoverable.", t.blocks_lost);
	dd_metrics_counter(&m, "diode_rx_files_delivered_total",
		"Files verified (size and SHA-256) and delivered into the inbox.",
		t.files_delivered);
	dd_metrics_counter(&m, "diode_rx_files_failed_total",
		"Transfers reported failed (not completed, rejected or lost).",
		t.files_failed);
	dd_metrics_gauge(&m, "diode_rx_transfers_active", "Transfers being reassembled now.",
	      rx->transfers != NULL ? reasm_active(rx) : 0);
	channel_metrics(&m, rx, &t);
	dd_metrics_publish(&m, &mfile, "diode_rx");
}

static void
on_timer(uv_timer_t *t)
{
	rx_metrics_write(t->data);
}

void
rx_metrics_start(struct rx *rx)
{
	if (mfile.dirfd < 0)
		return;
	rx_metrics_write(rx);
	uv_timer_init(rx->loop, &timer);
	timer.data = rx;
	uv_timer_start(&timer, on_timer, interval_ms, interval_ms);
}

void
rx_monitoring_close(struct rx *rx)
{
	(void)rx;
	dd_metrics_file_close(&mfile);
	dd_syslog_close();
}
