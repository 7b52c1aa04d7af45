/* diode-tx monitoring: its counters as a Prometheus text file every [log] metrics_interval, and syslog set-up. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "sandbox.h"
#include "tx.h"

#define METRICS_BUF (256 * 1024)

static struct dd_metrics_file mfile = { .dirfd = -1 };
static uint64_t interval_ms;
static uv_timer_t timer;
static char text[METRICS_BUF];

int
tx_monitoring_open(struct tx *tx, const struct dd_config *cfg)
{
	(void)tx;
	return dd_monitoring_open(cfg, &mfile, &interval_ms);
}

void
tx_monitoring_sandbox(struct tx *tx, struct dd_sandbox *sb)
{
	(void)tx;
	if (mfile.dirfd >= 0)
		dd_sandbox_allow(sb, mfile.dir, true);
	if (dd_syslog_fd() >= 0)
		dd_sandbox_syslog_socket(sb, dd_syslog_fd());
}

/* One family with one sample per channel. */
static void
per_channel(struct dd_metrics *m, const struct tx *tx, const char *name, enum dd_metric_type type,
	    const char *help, size_t field)
{
	unsigned n = channels_count(tx);

	if (n == 0)
		return;
	dd_metrics_family(m, name, type, help);
	for (unsigned i = 0; i < n; i++) {
		struct tx_channel_stats st;
		uint64_t v;

		channels_stats(tx, i, &st);
		memcpy(&v, (const char *)&st + field, sizeof(v));
		dd_metrics_u64(m, (const struct dd_metrics_label[]){ { "channel", st.name } }, 1, v);
	}
}

static void
channel_metrics(struct dd_metrics *m, const struct tx *tx)
{
	unsigned n = channels_count(tx);

	per_channel(m, tx, "diode_tx_channel_records_total", DD_METRIC_COUNTER,
		    "Records taken from the channel's producers.",
		    offsetof(struct tx_channel_stats, accepted));
	per_channel(m, tx, "diode_tx_channel_records_sent_total", DD_METRIC_COUNTER,
		    "Records whose block was handed to the kernel.",
		    offsetof(struct tx_channel_stats, sent));
	if (n > 0) {
		dd_metrics_family(m, "diode_tx_channel_records_dropped_total", DD_METRIC_COUNTER,
				  "Records dropped by diode-tx, by reason: overflow (buffer and "
				  "journal full), too_long (over max_record), newline (a UDP "
				  "record containing a newline).");
		for (unsigned i = 0; i < n; i++) {
			struct tx_channel_stats st;

			channels_stats(tx, i, &st);
			dd_metrics_u64(m, (const struct dd_metrics_label[]){
				{ "channel", st.name }, { "reason", "overflow" } }, 2, st.dropped);
			dd_metrics_u64(m, (const struct dd_metrics_label[]){
				{ "channel", st.name }, { "reason", "too_long" } }, 2,
				st.refused_long);
			dd_metrics_u64(m, (const struct dd_metrics_label[]){
				{ "channel", st.name }, { "reason", "newline" } }, 2,
				st.refused_newline);
		}
	}
	per_channel(m, tx, "diode_tx_channel_clients_refused_total", DD_METRIC_COUNTER,
		    "Producer connections refused (max_clients reached, or out of descriptors).",
		    offsetof(struct tx_channel_stats, clients_refused));
	per_channel(m, tx, "diode_tx_channel_io_errors_total", DD_METRIC_COUNTER,
		    "Read errors on producer connections and journal errors.",
		    offsetof(struct tx_channel_stats, io_errors));
	per_channel(m, tx, "diode_tx_channel_buffered_records", DD_METRIC_GAUGE,
		    "Records waiting to be sent (memory and journal).",
		    offsetof(struct tx_channel_stats, buffered_records));
	per_channel(m, tx, "diode_tx_channel_buffered_bytes", DD_METRIC_GAUGE,
		    "Bytes of records waiting to be sent (memory and journal).",
		    offsetof(struct tx_channel_stats, buffered_bytes));
	if (n > 0) {
		dd_metrics_family(m, "diode_tx_channel_clients", DD_METRIC_GAUGE,
				  "Producers connected (TCP and Unix stream inputs).");
		for (unsigned i = 0; i < n; i++) {
			struct tx_channel_stats st;

			channels_stats(tx, i, &st);
			dd_metrics_u64(m, (const struct dd_metrics_label[]){ { "channel", st.name } },
				       1, st.clients);
		}
	}
}

void
tx_metrics_write(struct tx *tx)
{
	struct dd_metrics m;
	uint64_t now = dd_now_ms();
	uint64_t payload = tx->bytes_sent - tx->datagrams_sent * DD_WIRE_OVERHEAD;

	if (mfile.dirfd < 0)
		return;
	dd_metrics_init(&m, text, sizeof(text));
	dd_metrics_gauge(&m, "diode_tx_session", "Session number of this diode-tx run.", tx->session);
	dd_metrics_gauge(&m, "diode_tx_session_start_time_seconds",
	      "When this session started, in seconds since the epoch.",
	      (double)tx->started_ms / 1000.0);
	dd_metrics_gauge(&m, "diode_tx_session_age_seconds", "Seconds since this session started.",
	      now > tx->started_ms ? (double)(now - tx->started_ms) / 1000.0 : 0.0);
	dd_metrics_gauge(&m, "diode_tx_rate_limit_bytes_per_second",
	      "Configured link rate ([link] rate), counting framing, in bytes per second.",
	      (double)tx->set.rate_bps / 8.0);
	dd_metrics_counter(&m, "diode_tx_sent_datagrams_total", "Datagrams handed to the kernel.",
		tx->datagrams_sent);
	dd_metrics_counter(&m, "diode_tx_sent_bytes_total", "UDP payload bytes handed to the kernel.",
		payload);
	dd_metrics_counter(&m, "diode_tx_sent_wire_bytes_total",
		"Bytes on the wire as paced: UDP payload plus 66 bytes of IPv4, UDP and "
		"Ethernet framing per datagram.", tx->bytes_sent);
	dd_metrics_counter(&m, "diode_tx_gso_messages_total",
		"Send calls that carried several datagrams at once (UDP GSO).", tx->gso_messages);
	dd_metrics_counter(&m, "diode_tx_send_errors_total",
		"Sends the kernel refused (the datagrams were sent again later).",
		tx->send_errors);
	dd_metrics_gauge(&m, "diode_tx_send_blocked",
	      "1 while the kernel refuses datagrams (send buffer full or link down), else 0.",
	      tx->send_blocked ? 1 : 0);
	dd_metrics_counter(&m, "diode_tx_files_sent_total",
		"Files completely sent (all passes) and removed from the outbox.", tx->files_sent);
	dd_metrics_counter(&m, "diode_tx_files_abandoned_total",
		"Transfers abandoned (file changed or unreadable while sent); sent again "
		"once the file settles.", tx->files_abandoned);
	dd_metrics_gauge(&m, "diode_tx_files_queued", "Files in the outbox ready and waiting for a send slot.",
	      tx->spool != NULL ? spool_queued(tx->spool) : 0);
	dd_metrics_gauge(&m, "diode_tx_transfers_active", "Files being sent now.", tx->nactive);
	dd_metrics_gauge(&m, "diode_tx_transfers_waiting", "Files between two carousel passes.",
	      tx->nwaiting);
	dd_metrics_gauge(&m, "diode_tx_transfers_repeating",
	      "Files on the wire whose final manifest is still being repeated.", tx->nrepeating);
	dd_metrics_family(&m, "diode_tx_queued_datagrams", DD_METRIC_GAUGE,
			  "Datagrams waiting to be sent, by queue (control, stream, data).");
	dd_metrics_u64(&m, (const struct dd_metrics_label[]){ { "queue", "control" } }, 1,
		       ring_used(&tx->ctrl));
	dd_metrics_u64(&m, (const struct dd_metrics_label[]){ { "queue", "stream" } }, 1,
		       tx->stream.mem != NULL ? ring_used(&tx->stream) : 0);
	dd_metrics_u64(&m, (const struct dd_metrics_label[]){ { "queue", "data" } }, 1,
		       ring_used(&tx->data));
	channel_metrics(&m, tx);
	dd_metrics_publish(&m, &mfile, "diode_tx");
}

static void
on_timer(uv_timer_t *t)
{
	tx_metrics_write(t->data);
}

void
tx_metrics_start(struct tx *tx)
{
	if (mfile.dirfd < 0)
		return;
	tx_metrics_write(tx);
	uv_timer_init(tx->loop, &timer);
	timer.data = tx;
	uv_timer_start(&timer, on_timer, interval_ms, interval_ms);
}

void
tx_monitoring_close(struct tx *tx)
{
	(void)tx;
	dd_metrics_file_close(&mfile);
	dd_syslog_close();
}
