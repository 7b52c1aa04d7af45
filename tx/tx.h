/* diode-tx internals shared by its roles: spool watcher, scheduler, sender. */
#ifndef DD_TX_H
#define DD_TX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

#include "crypto.h"
#include "digest.h"
#include "fec.h"
#include "net.h"
#include "pace.h"
#include "wire.h"

struct tx;
struct dd_config;
struct dd_sandbox;

/* ------------------------------------------------------------ settings */
#define TX_DEST_MAX 8 /* [link] destination: at most this many HOST:PORT */

struct tx_settings {
	struct dd_addr destination[TX_DEST_MAX]; /* file data round-robin, control to all */
	unsigned ndest;
	uint64_t rate_bps;
	unsigned burst;         /* datagrams sent back to back at most (pacing, GSO run) */
	bool gso;               /* try UDP GSO (UDP_SEGMENT); falls back by itself */
	unsigned workers;       /* threads sealing beside the loop thread (0: none) */
	uint16_t dgram_size;
	unsigned fec_data, fec_parity, interleave;
	uint8_t cipher;
	uint64_t rekey_ms;
	uint64_t sndbuf;
	const char *outbox, *sent;
	uint64_t settle_ms, rescan_ms;
	unsigned max_active;
	unsigned repeat;        /* carousel passes per file */
	uint64_t repeat_gap_ms; /* pause between the passes of one file */
};

/* --------------------------------------------------------------- spool */
enum spool_state {
	SPOOL_PENDING, /* waiting to settle */
	SPOOL_QUEUED,  /* ready, waiting for a send slot */
	SPOOL_ACTIVE,  /* being sent */
};

struct spool_entry {
	struct spool_entry *hash_next; /* bucket chain */
	struct spool_entry *queue_next; /* FIFO of queued entries */
	enum spool_state state;
	bool seen_in_scan;
	bool recheck;    /* changed while active: settle again once done */
	off_t size;
	struct timespec mtime;
	uint64_t stable_since_ms;
	char rel[];      /* path relative to the outbox */
};

struct spool;

int spool_new(struct spool **out, struct tx *tx, uv_loop_t *loop, const char *outbox,
	      uint64_t settle_ms, uint64_t rescan_ms);
void spool_free(struct spool *s);
int spool_outbox_fd(const struct spool *s);
/* Next queued entry, or NULL; it becomes ACTIVE. */
struct spool_entry *spool_take(struct spool *s);
/* The transfer of e ended: sent (remove the entry) or not (settle again). */
void spool_done(struct spool *s, struct spool_entry *e, bool sent);
unsigned spool_queued(const struct spool *s);
void spool_close(struct spool *s);

/* ----------------------------------------------------------- transfers */
enum xfer_state {
	XFER_SENDING,   /* groups of the current pass being produced */
	XFER_WAITING,   /* between carousel passes */
	XFER_FINISHING, /* last pass produced; waiting for its final manifest to leave */
	XFER_REPEATING, /* on the wire; repeating the final manifest */
};

struct tx_transfer {
	struct tx_transfer *next;
	struct spool_entry *entry;
	uint32_t id;
	int fd;
	struct stat st;
	uint64_t size;
	uint32_t blocks, next_block;
	unsigned k_full, m_full;
	struct dd_digest *digest;
	uint8_t sha256[DD_SHA256_LEN];
	bool aborted;
	const char *abort_reason;
	enum xfer_state state;
	unsigned pass, passes;  /* carousel: current pass (0-based) of how many */
	uint64_t resume_ms;     /* XFER_WAITING: when the next pass starts */
	uint64_t started_ms;
	uint64_t last_seq;
	unsigned repeats_left, repeats_done;
	uint64_t next_repeat_ms;
	uint8_t *manifest; /* final (or abort) manifest plaintext, for repeats */
};

/* Recently finished transfers, reported in beacons. */
struct tx_recent {
	uint32_t transfer;
	uint8_t status;
	uint64_t size;
	uint64_t last_seq;
};

/* ------------------------------------------------------- datagram ring */
enum slot_kind { SLOT_SEALED, SLOT_ANNOUNCE, SLOT_ANNOUNCE_NEXT };

struct tx_channel;

struct slot_meta {
	struct tx_transfer *last_of; /* this datagram completes the transfer */
	struct tx_channel *block_of; /* this datagram completes a stream block of this channel */
	uint64_t block_next_seq;     /* ...whose last record has seq block_next_seq - 1 */
	uint8_t kind;
};

struct ring {
	uint8_t *mem;
	struct slot_meta *meta;
	size_t slot_size;
	uint32_t cap, head, tail; /* head: next to fill, tail: next to send */
};

int ring_init(struct ring *r, uint32_t cap, size_t slot_size);
void ring_free(struct ring *r);
static inline uint32_t
ring_used(const struct ring *r)
{
	return r->head - r->tail;
}
static inline uint32_t
ring_free_slots(const struct ring *r)
{
	return r->cap - ring_used(r);
}
static inline uint8_t *
ring_slot(const struct ring *r, uint32_t index)
{
	return r->mem + (size_t)(index % r->cap) * r->slot_size;
}
static inline struct slot_meta *
ring_meta(const struct ring *r, uint32_t index)
{
	return &r->meta[index % r->cap];
}

/* ----------------------------------------------------------------- tx */
#define TX_RECENT_MAX 48
#define TX_IN_FLIGHT_MAX 48 /* files sending or between passes; below rx's max_transfers */
#define TX_SEND_BATCH 256 /* datagrams sealed per sendmmsg call at most */
#define TX_SEND_MSGS 64   /* messages per sendmmsg call (a GSO message carries a run) */

/* The rings the sender takes datagrams from, in this order of priority. */
enum tx_ring_id { TX_RING_CTRL, TX_RING_STREAM, TX_RING_DATA, TX_RINGS };

struct tx_channels;
struct tx_sealers;

struct tx {
	uv_loop_t *loop;
	struct tx_settings set;
	struct dd_crypto_tx *crypto;
	struct dd_fec *fec;
	struct spool *spool;
	int sock;
	int sent_fd;          /* -1: delete sent files */
	uint32_t session;
	uint64_t started_ms;
	uint64_t seq;         /* last sequence number used */
	uint32_t next_transfer;
	size_t plain_len, frag_len;
	uint8_t parity_for_k[DD_FEC_MAX_TOTAL + 1]; /* parity of a block of k data fragments */
	/* Scratch of the scheduler: fragment pointers of one interleaved group
	 * (up to 64 blocks) and the read vector of one block. */
	uint8_t *group_ptrs[64][DD_FEC_MAX_TOTAL];
	struct iovec group_iov[DD_FEC_MAX_TOTAL];
	unsigned nwaiting;

	struct ring data, ctrl;
	struct ring stream;             /* coded stream blocks: after control, before file data */
	struct tx_channels *channels;   /* [channel.NAME] inputs (channel.c); NULL without any */
	struct tx_transfer *active;     /* producing groups, round-robin */
	struct tx_transfer *finishing;  /* waiting for the final manifest to leave / repeating */
	struct tx_transfer *waiting;    /* between carousel passes */
	unsigned nactive, nrepeating;
	struct tx_transfer *rr_next;
	struct tx_recent recent[TX_RECENT_MAX];
	unsigned nrecent, recent_head;

	struct dd_pace pace;
	uv_timer_t pace_timer, announce_timer, beacon_timer, repeat_timer, rekey_timer;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_poll_t pace_poll;  /* fine pacing waits: a timerfd (sender.c) */
	int pace_fd;          /* the timerfd, -1: millisecond libuv timer only */
	bool pace_armed, stopping;
	bool send_blocked;    /* the kernel refused the last send: back off */
	uint64_t switch_epoch_at_ms;

	/* Batched send state: sealed but not yet accepted by the kernel. */
	struct iovec iovs[TX_SEND_BATCH];
	uint64_t batch_seq[TX_SEND_BATCH];
	uint8_t batch_ring[TX_SEND_BATCH]; /* enum tx_ring_id of each batched datagram */
	uint8_t batch_dest[TX_SEND_BATCH]; /* destination index; TX_DEST_ALL: every one */
	uint8_t batch_seal[TX_SEND_BATCH]; /* numbered, still to be sealed (build_next) */
	struct tx_sealers *sealers;        /* [link] workers threads; NULL: none */
	unsigned batch_len, batch_pos;
	unsigned batch_in_ring[TX_RINGS];  /* datagrams of each ring in the batch */
	uint8_t announce_buf[TX_SEND_BATCH][DD_ANNOUNCE_LEN];
	/* Messages of one sendmmsg call, rebuilt from the batch before each call. */
	struct mmsghdr msgs[TX_SEND_MSGS];
	uint16_t msg_ndgram[TX_SEND_MSGS]; /* datagrams it completes (0: not the last copy) */
	union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} msg_ctl[TX_SEND_MSGS];
	unsigned gso_segs;    /* datagrams per GSO message at most; < 2: GSO off */
	unsigned dest_next;   /* round-robin destination of the next data run */
	unsigned dest_run;    /* data datagrams sent to it in the current run */
	uint64_t gso_messages;
	uint64_t pace_catchup; /* bytes beyond the bucket a busy sender may make up */
	bool pace_backlog;     /* work was waiting at the end of the last pacing tick */

	uint64_t datagrams_sent, bytes_sent, send_errors, files_sent, files_abandoned;
	struct tx_progress *progress; /* progress.c: transfers file and lock; NULL before set-up */
};

/* scheduler (sched.c) */
void sched_init_parity(struct tx *tx);
void sched_fill(struct tx *tx);
void sched_on_last_sent(struct tx *tx, struct tx_transfer *t, uint64_t seq);
/* Announce every transfer not yet on the wire as aborted (diode-tx stops). */
void sched_abort_all(struct tx *tx);
void sched_free_all(struct tx *tx);
/* Lowest transfer id not yet completely on the wire (for beacons). */
uint32_t sched_complete_below(const struct tx *tx);
/* Run the scheduler's timer (manifest repeats, carousel pauses). */
void sched_arm_timer(struct tx *tx);

/* sender (sender.c) */
#define TX_DEST_ALL 0xff
/* Before the sandbox: pacing clock (timerfd), GSO probe, token bucket. */
int sender_init(struct tx *tx);
/* After the sandbox: start the [link] workers sealing threads (none when
 * they cannot be started: a warning, and sealing stays on the loop thread). */
void sender_start_workers(struct tx *tx);
/* After the loop: stop and join them. */
void sender_stop_workers(struct tx *tx);
void sender_kick(struct tx *tx);
int sender_queue_announce(struct tx *tx, bool next);
int sender_queue_beacon(struct tx *tx);
/* Reserve a control slot for a sealed message; returns its plaintext area. */
uint8_t *sender_ctrl_plain(struct tx *tx, struct tx_transfer *last_of);
bool sender_idle(const struct tx *tx);
/* Forget queued file data (diode-tx stops); sealed control and stream datagrams stay. */
void sender_drop_data(struct tx *tx);
struct ring *sender_ring(struct tx *tx, enum tx_ring_id id);

/* stream channels (channel.c) */
/* Read and check every [channel.NAME]; unless check_only, open the inputs
 * (bound sockets) and journals. Before the sandbox. 0, or -1 after printing
 * "FILE:LINE: ..." on stderr. */
int channels_open(struct tx *tx, const struct dd_config *cfg, bool check_only);
/* Start polling the inputs and the timers (the loop exists). */
void channels_start(struct tx *tx);
/* Pack queued records into blocks while the stream ring has room. */
void channels_fill(struct tx *tx);
/* The last datagram of a block of ch was handed to the kernel. */
void channels_block_sent(struct tx *tx, struct tx_channel *ch, uint64_t next_seq);
/* Queue the stream status message (with every beacon). */
int channels_queue_status(struct tx *tx);
/* diode-tx stops: close the inputs, flush the open blocks into the ring. */
void channels_stop(struct tx *tx);
/* After the loop: keep unsent records in the journals, save the record
 * counters, report, and free. */
void channels_close(struct tx *tx);
/* What the channels' inputs need from the sandbox (MQTT brokers to connect to). */
void channels_sandbox(struct tx *tx, struct dd_sandbox *sb);

/* channel.c, for inputs implemented in files of their own (channel_mqtt.c) */
enum channel_refusal {
	CHANNEL_REFUSED_LONG,  /* longer than max_record */
	CHANNEL_REFUSED_INPUT, /* the input's own reason (an MQTT topic that cannot be carried) */
};
/* One record from an input of ch: queued by the overflow policy and packed. */
void channel_record(struct tx_channel *ch, const uint8_t *rec, size_t len);
/* A record an input refused: counted, reported, and sent as dropped in the status. */
void channel_refuse(struct tx_channel *ch, enum channel_refusal why);
size_t channel_max_record(const struct tx_channel *ch);

/* channel_mqtt.c: listen = mqtt://HOST:PORT/TOPIC-FILTER (docs/OPERATIONS.md "MQTT bridge") */
struct tx_mqtt;
/* Parse and check the URL and the mqtt_* keys; unless check_only, create the
 * client (no connection yet). 0, or a negative errno after printing
 * "FILE:LINE: ..." on stderr (*out is then freed by mqtt_input_free). */
int mqtt_input_open(struct tx_mqtt **out, struct tx_channel *ch, const struct dd_config *cfg,
		    const char *section, const char *channel, const char *url, bool check_only);
void mqtt_input_sandbox(const struct tx_mqtt *m, struct dd_sandbox *sb);
/* Connect (and keep reconnecting) and subscribe. */
void mqtt_input_start(struct tx_mqtt *m, uv_loop_t *loop);
void mqtt_input_stop(struct tx_mqtt *m);
void mqtt_input_free(struct tx_mqtt *m);
/* Counters of channel i (0 .. channels_count - 1), for the metrics file.
 * name points into the channel (valid until channels_close). */
struct tx_channel_stats {
	const char *name;
	uint64_t accepted;        /* records taken from producers */
	uint64_t dropped;         /* dropped: buffer and journal full */
	uint64_t refused_long;    /* refused: longer than max_record */
	uint64_t refused_newline; /* refused: a UDP record containing a newline */
	uint64_t clients_refused, io_errors;
	uint64_t sent;            /* records whose block left, this run */
	uint64_t buffered_records, buffered_bytes; /* waiting (memory and journal) */
	unsigned clients;
};
unsigned channels_count(const struct tx *tx);
void channels_stats(const struct tx *tx, unsigned i, struct tx_channel_stats *out);

/* metrics.c: [log] metrics (Prometheus text file) and [log] syslog */
struct dd_sandbox;
/* Read [log]; open the metrics directory and the syslog socket (before the
 * sandbox). 0, or -1 after printing "FILE:LINE: ..." on stderr. */
int tx_monitoring_open(struct tx *tx, const struct dd_config *cfg);
/* What the sandbox must allow: the metrics directory, the syslog socket. */
void tx_monitoring_sandbox(struct tx *tx, struct dd_sandbox *sb);
/* Write the metrics file now and then every [log] metrics_interval. */
void tx_metrics_start(struct tx *tx);
/* Write it now (diode-tx stops: after the loop, before the channels close). */
void tx_metrics_write(struct tx *tx);
void tx_monitoring_close(struct tx *tx);

/* progress file and lock (progress.c), read by `diode-tx send` (send.c) */
#define TX_LOCK_FILE "tx.lock" /* in the state directory; held (flock) while diode-tx runs */
/* Open the state directory, take the lock (0, or -EIO with a message in err
 * naming the running instance); before the sandbox. */
int progress_open(struct tx *tx, const char *state_dir, char *err, size_t errlen);
/* The loop exists: write the file once, then on changes and every 250 ms while
 * transfers are in flight. */
void progress_start(struct tx *tx);
/* The list of transfers changed: write it within 250 ms. */
void progress_changed(struct tx *tx);
/* A group of t was coded into the data ring (sched.c produce_group). */
void progress_group(struct tx *tx, const struct tx_transfer *t);
/* Transfer t ended, sent or abandoned (t->entry still set). */
void progress_ended(struct tx *tx, const struct tx_transfer *t, bool sent);
/* Last write, release the lock, free. */
void progress_close(struct tx *tx);

/* `diode-tx -c FILE send [options] PATH...` (send.c); argv[0] is "send".
 * Returns the exit status. */
int send_main(const struct dd_config *cfg, int argc, char **argv);

#endif
