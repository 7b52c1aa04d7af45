/* diode-rx internals shared by its roles: receiver, reassembler, writer, link monitor. */
#ifndef DD_RX_H
#define DD_RX_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "crypto.h"
#include "digest.h"
#include "fec.h"
#include "log.h"
#include "net.h"
#include "record.h"
#include "wire.h"

struct dd_config;
struct dd_sandbox;
struct rx_streams;

#define RX_LISTEN_MAX 8 /* [link] listen addresses, one socket each */

struct rx_settings {
	struct dd_addr listen[RX_LISTEN_MAX];
	unsigned nlisten;
	uint64_t timeout_ms;
	uint64_t rcvbuf;
	unsigned announce_rate;
	const char *inbox, *staging, *quarantine;
	bool overwrite;
	uint64_t max_file_size;
	uint64_t min_free;      /* bytes to keep free on the inbox file system */
	unsigned max_transfers;
	unsigned block_pool;
	unsigned workers;       /* [link] workers: 0 all on the loop thread, else the disk thread */
};

#define RX_OPEN_MAX 64       /* blocks of one transfer being reassembled at once */
#define RX_FINISHED_BITS 65536

/* One block being reassembled (a slot of the block pool). */
struct rx_block {
	struct rx_transfer *t; /* owner, NULL when free */
	uint32_t block;
	uint8_t k, m;
	uint16_t count;
	bool done;             /* written to disk, kept until hashed in order */
	bool disk;             /* the disk thread's (queued, being written, or held): hands off */
	uint64_t last_ms;
	uint8_t present[DD_FEC_MAX_TOTAL];
	uint8_t *buf;          /* (k + m) fragments; owned by the pool */
	size_t cap;
};

struct rx_transfer {
	bool used;
	uint32_t id;
	uint64_t size;
	unsigned k_full, m_full;
	uint32_t blocks, blocks_done, hashed;
	uint64_t *done_bits;
	int fd;
	char stage_name[64];
	char *path;            /* from the manifest, NUL-terminated */
	uint32_t mode;
	uint64_t mtime;
	uint8_t sha256[DD_SHA256_LEN];
	bool final;            /* final manifest seen: digest known, all data sent */
	struct dd_digest *digest;
	struct rx_block *open[RX_OPEN_MAX];
	unsigned nopen;
	uint64_t first_ms, last_ms;
	uint64_t fail_at_ms;   /* 0: no deadline */
	uint64_t datagrams;
	bool last_pass_seen;   /* the final manifest of the sender's last pass arrived */
	bool dirty;            /* progress not yet saved as partial state */

	/* The disk thread (disk.c), when it runs. Loop thread: */
	unsigned disk_slots;   /* its blocks (and hash-only jobs) with the disk thread; 0: none */
	int disk_write_err;    /* a write failed: its errno, -1 for a short write */
	bool disk_read_err;    /* reading a block back to hash it failed */
	bool disk_check;       /* results arrived: failed, or complete? (reasm_after_disk) */
	bool disk_synced;      /* staging file fsynced once every block was hashed */
	int disk_sync_err;     /* that fsync failed: its errno */
	/* The disk thread's while disk_slots > 0 (and so is digest): */
	uint64_t *written_bits; /* blocks on disk; done_bits also has those handed over */
	uint32_t disk_hashed;  /* blocks hashed in order; the loop's copy is hashed */
};

struct rx_counters {
	uint64_t received, accepted, announces;
	uint64_t malformed, no_key, bad_tag, replay, unknown_sender, stale, rate_limited;
	uint64_t duplicates, blocks_recovered, blocks_lost;
	uint64_t lost, reordered; /* sequence gaps, and gaps later filled */
	uint64_t files_delivered, files_failed;
	uint64_t stream_records, stream_records_lost, stream_blocks_lost, stream_unknown;
	uint64_t received_bytes; /* UDP payload bytes of every datagram received */
};

struct rx {
	uv_loop_t *loop;
	struct rx_settings set;
	struct dd_crypto_rx *crypto;
	struct dd_fec *fec;
	int socks[RX_LISTEN_MAX];     /* one per [link] listen address, all feeding one receiver */
	unsigned nsocks;
	int inbox_fd, staging_fd, quarantine_fd, state_fd;
	uv_poll_t sock_polls[RX_LISTEN_MAX];
	uint64_t now_ms;              /* dd_mono_ms() read once per receive batch */
	uv_timer_t tick_timer;
	uv_signal_t sig_term, sig_int, sig_hup;
	bool stopping;

	/* Session */
	uint32_t session;
	size_t frag_len, plain_len;
	uint64_t persisted_seq;
	uint32_t persisted_checked;
	uint64_t last_auth_ms;
	bool link_up;

	/* Reassembly */
	struct rx_transfer *transfers; /* max_transfers entries */
	struct rx_transfer *last_hit;
	struct rx_block *pool;
	uint32_t finished_base;
	uint64_t finished_bits[RX_FINISHED_BITS / 64];
	uint8_t *scratch;             /* one block, for hashing from disk */
	uint32_t checked_below;       /* every id below it is finished or reported */
	struct rx_unseen {
		uint32_t id;
		uint64_t report_at_ms;
	} unseen[1024];               /* ids sent but never seen: reported after a grace */
	unsigned unseen_head, unseen_len;
	bool checked_known;
	int journal_fd;               /* finished-transfer journal, O_APPEND */
	unsigned journal_lines;
	uint64_t seq_top;             /* highest authentic seq, for gap counting */
	struct rx_failure {
		uint64_t when_ms;
		char id[32];
		char path[128];
		char reason[96];
	} failures[8];               /* most recent failures, for the status file */
	unsigned nfailures;

	struct rx_streams *streams;           /* [channel.NAME] (stream.c); NULL without any */
	struct rx_disk *disk;                 /* the disk thread (disk.c); NULL: all inline */

	struct rx_counters c, c_reported;     /* this session */
	uint64_t delivered_before, failed_before; /* earlier sessions of this process */
	struct rx_counters c_before;          /* every counter, summed over earlier sessions */
	uint64_t session_started_ms;          /* wall clock when this session was first heard */
	struct dd_ratelimit reject_rl;
};

/* receiver.c */
int receiver_start(struct rx *rx);
void receiver_stop(struct rx *rx);
void rx_handle_datagram(struct rx *rx, uint8_t *buf, size_t len);

/* reassembly.c */
int reasm_init(struct rx *rx);
void reasm_free(struct rx *rx);
void reasm_fragment(struct rx *rx, const struct dd_frag *f, const uint8_t *payload);
void reasm_manifest(struct rx *rx, const struct dd_manifest *m);
void reasm_beacon(struct rx *rx, const struct dd_beacon *b, uint64_t beacon_seq);
/* Check deadlines; called from the periodic tick. */
void reasm_tick(struct rx *rx, uint64_t now_ms);
/* Fail every transfer in progress (new session, or stopping). */
void reasm_fail_all(struct rx *rx, const char *reason);
/* Forget a transfer the writer has finished with (delivered or rejected). */
void reasm_release_delivered(struct rx *rx, struct rx_transfer *t);
/* Create a transfer (resume: reopen its staging file instead of creating it). */
struct rx_transfer *reasm_new_transfer(struct rx *rx, uint32_t id, uint64_t size,
				       unsigned k_full, unsigned m_full, bool create);
void reasm_drop_transfer(struct rx *rx, struct rx_transfer *t);
void reasm_mark_finished_quiet(struct rx *rx, uint32_t id);
/* Save every transfer in progress as partial state and close it (stopping). */
void reasm_suspend_all(struct rx *rx);
/* Save the partial state of transfers that progressed (periodic). */
void reasm_save_dirty(struct rx *rx);
unsigned reasm_active(const struct rx *rx);

/* Results of the disk thread about t were applied: fail it, or deliver it
 * when complete (loop thread, outside any disk_settle). */
void reasm_after_disk(struct rx *rx, struct rx_transfer *t);

/* disk.c: the disk thread ([link] workers > 0). It writes decoded blocks
 * into the staging files and hashes each transfer in file order, from a
 * block it still holds or read back from disk, then fsyncs the staging file
 * once all is hashed. Results come back to the loop through a uv_async_t.
 * WARNING: a slot with disk set, and a transfer's digest, written_bits and
 * disk_hashed while its disk_slots > 0, are the disk thread's: the loop
 * thread calls disk_settle() before it tears down, closes or hashes t. */
/* After the sandbox (dd_sandbox_allow_threads): start the thread. Without
 * it (workers 0, or it cannot start) rx->disk stays NULL: all inline. */
void disk_start(struct rx *rx);
/* Settle everything, stop the thread, free (after the loop ended; if its
 * handle is still open, it is closed, and freed when the loop runs again). */
void disk_stop(struct rx *rx);
/* Hand a decoded block over: the disk thread writes and hashes it and
 * gives the slot back. t's done bit is the loop's to set. Waits for the
 * disk thread when it owns too many slots already (half the pool). */
void disk_submit(struct rx *rx, struct rx_transfer *t, struct rx_block *blk, uint64_t off,
		 size_t len);
/* Wake the disk thread for the blocks handed over since it was last woken
 * (waking it per block would cost a system call each). */
void disk_kick(struct rx *rx);
/* Between receive batches: kick, apply the results ready, and deliver or
 * fail the transfers they complete (as the inline path would have by now).
 * wait: first settle everything (the transfer table is full). */
void disk_poll(struct rx *rx, bool wait);
/* Hash t from its staging file: every block was on disk already (a
 * transfer resumed after a restart), so no block will be handed over. */
void disk_submit_hash(struct rx *rx, struct rx_transfer *t);
/* The block pool is exhausted: wait until the disk thread gives a slot
 * back (bookkeeping only). false when it has none to give. */
bool disk_reclaim(struct rx *rx);
/* Barrier: wait until the disk thread is idle, apply its results (no
 * delivery nor failure from here: reasm_after_disk follows from the loop),
 * and take back the blocks it holds of t (NULL: of every transfer). Then
 * t->disk_slots is 0. No-op when the thread holds nothing of t. */
void disk_settle(struct rx *rx, struct rx_transfer *t);
/* Clear in bits the blocks of t the disk thread may not have written yet
 * (partial state claims only blocks on disk). */
void disk_unwritten(const struct rx *rx, const struct rx_transfer *t, uint64_t *bits);

/* partial.c */
int partial_open(struct rx *rx, uint32_t session);
int partial_rewrite_journal(struct rx *rx, uint32_t session);
void partial_finished(struct rx *rx, uint32_t id);
int partial_save(struct rx *rx, struct rx_transfer *t);
void partial_remove(struct rx *rx, const struct rx_transfer *t);
int partial_load_all(struct rx *rx, uint32_t session);

/* writer.c */
int writer_stage_open(struct rx *rx, struct rx_transfer *t, bool create);
/* Verify, fsync and rename into the inbox; quarantine on failure. */
void writer_deliver(struct rx *rx, struct rx_transfer *t);
/* Remove or quarantine the staging file of a transfer that did not complete. */
void writer_discard(struct rx *rx, struct rx_transfer *t, bool quarantine);
void writer_clean_staging(struct rx *rx);

/* stream.c: stream channels, in-order delivery, loss reports */
/* Read and check every [channel.NAME]; unless check_only, open the sinks
 * and load the channels' state. Before the sandbox. 0, or -1 after printing
 * "FILE:LINE: ..." on stderr. */
int streams_open(struct rx *rx, const struct dd_config *cfg, bool check_only);
/* What the sinks need from the sandbox: directories, TCP ports to connect to. */
void streams_sandbox(struct rx *rx, struct dd_sandbox *sb);
/* Start the timers and the sinks (the loop exists, after the sandbox). */
void streams_start(struct rx *rx);
/* A new sender session (from_start: heard from its first datagrams). */
void streams_new_session(struct rx *rx, uint32_t session, bool from_start);
void streams_fragment(struct rx *rx, const struct dd_stream_frag *f, const uint8_t *payload);
void streams_status(struct rx *rx, const struct dd_stream_status *s);
/* diode-rx stops: deliver what is complete, report what is not, save state. */
void streams_stop(struct rx *rx);
void streams_close(struct rx *rx);

/* sink.c: where a channel's records go (dir:, tcp:, udp:) */
struct rx_sink;
int sink_open(struct rx_sink **out, struct rx *rx, const struct dd_config *cfg,
	      const char *section, const char *channel, int state_fd, bool check_only);
void sink_sandbox(const struct rx_sink *s, struct dd_sandbox *sb);
void sink_start(struct rx_sink *s);
/* One record, in order; seq for reports. May buffer: see sink_flush. */
void sink_record(struct rx_sink *s, uint64_t seq, const uint8_t *rec, size_t len);
/* Hand buffered records on (end of a receive batch). */
void sink_flush(struct rx_sink *s);
/* Periodic: rotation by age, reconnection, reports. */
void sink_tick(struct rx_sink *s, uint64_t now_ms);
/* Stopping: finish the segment, keep undelivered records for the next start. */
void sink_stop(struct rx_sink *s);
void sink_free(struct rx_sink *s);
/* What the status file shows of a sink; pointers into the sink. */
struct sink_status {
	const char *state;     /* tcp: up, connecting, down, closing; dir:, udp: ok, failing */
	const char *target;    /* as configured */
	uint64_t backlog;      /* tcp: records waiting or not yet acknowledged */
	uint64_t dropped;      /* records not handed on, since diode-rx started */
	uint64_t last_drop_ms; /* dd_mono_ms() of the last one, 0: never */
};
void sink_get_status(const struct rx_sink *s, struct sink_status *out);
/* A record the sink could not hand on (reported as a run, audited). */
void sink_drop(struct rx_sink *s, uint64_t seq, uint64_t n, const char *reason, const char *detail);
/* Log and audit (sink_down) that a sink went down; records wait in its buffer. */
void sink_report_down(const char *section, const char *channel, const char *target, const char *why,
		      uint64_t buffer_bytes);

/* sink_mqtt.c: sink = mqtt://HOST:PORT (docs/OPERATIONS.md "MQTT bridge") */
struct rx_mqtt;
/* Parse and check; unless check_only, create the client and attach the
 * buffer (state directory). 0, or a negative errno after printing
 * "FILE:LINE: ..." on stderr (*out is then freed by mqtt_sink_free). */
int mqtt_sink_open(struct rx_mqtt **out, struct rx_sink *s, const struct dd_config *cfg,
		   const char *section, const char *channel, const char *spec, int state_fd,
		   bool check_only);
void mqtt_sink_sandbox(const struct rx_mqtt *m, struct dd_sandbox *sb);
void mqtt_sink_start(struct rx_mqtt *m, uv_loop_t *loop);
void mqtt_sink_record(struct rx_mqtt *m, uint64_t seq, const uint8_t *rec, size_t len);
void mqtt_sink_flush(struct rx_mqtt *m);
void mqtt_sink_tick(struct rx_mqtt *m, uint64_t now_ms);
/* Unacknowledged messages back into the buffer, disconnect. */
void mqtt_sink_stop(struct rx_mqtt *m);
bool mqtt_sink_is_up(const struct rx_mqtt *m);
uint64_t mqtt_sink_backlog(const struct rx_mqtt *m);
void mqtt_sink_free(struct rx_mqtt *m);
/* stream.c: the streams part of the status file (counters of this session,
 * one "channel NAME key value ..." line per channel); *last_loss_ms: when
 * records were last lost, dropped by diode-tx or by a sink (dd_mono_ms(), 0:
 * never). Returns the bytes written (at most len - 1, NUL-terminated). */
size_t streams_status_text(struct rx *rx, char *buf, size_t len, uint64_t *last_loss_ms);

/* Per-channel counters for the metrics file (this process; never reset).
 * name points into the channel (valid until streams_close). */
struct rx_channel_stats {
	const char *name;
	uint64_t delivered;  /* records handed to the sink */
	uint64_t lost;       /* records reported lost (by sequence range) */
	uint64_t late;       /* fragments of blocks already settled */
	uint64_t duplicates; /* fragments received twice */
	uint64_t malformed;  /* fragments or blocks that did not fit */
	uint64_t gaps;       /* records_lost reports (gaps in the record sequence) */
	uint64_t sender_dropped; /* records diode-tx said it dropped */
	uint64_t sink_dropped;   /* records the sink could not hand on */
	uint64_t sink_backlog;   /* records waiting in the sink (gauge) */
};
unsigned streams_count(const struct rx *rx);
void streams_stats(const struct rx *rx, unsigned i, struct rx_channel_stats *out);

/* metrics.c: [log] metrics (Prometheus text file) and [log] syslog */
/* Read [log]; open the metrics directory and the syslog socket (before the
 * sandbox). 0, or -1 after printing "FILE:LINE: ..." on stderr. */
int rx_monitoring_open(struct rx *rx, const struct dd_config *cfg);
/* What the sandbox must allow: the metrics directory, the syslog socket. */
void rx_monitoring_sandbox(struct rx *rx, struct dd_sandbox *sb);
/* Write the metrics file now and then every [log] metrics_interval. */
void rx_metrics_start(struct rx *rx);
/* Write it now (diode-rx stops: after the loop, before the channels close). */
void rx_metrics_write(struct rx *rx);
void rx_monitoring_close(struct rx *rx);
/* sum += c, every counter (a new session resets rx->c; metrics must not go down) */
void rx_counters_add(struct rx_counters *sum, const struct rx_counters *c);

/* status.c */
void status_loss_summary(struct rx *rx, uint64_t now);
void status_write(struct rx *rx);
int status_print(const char *state_dir);

/* main.c: audit helpers shared by the roles */
void rx_report_rejections(struct rx *rx, uint64_t now, bool force);
/* Remember a failure for the status file. */
void rx_note_failure(struct rx *rx, const struct rx_transfer *t, const char *reason);
void rx_audit_transfer(struct rx *rx, const char *event, const struct rx_transfer *t,
		       const char *reason, const char *delivered_as);

#endif
