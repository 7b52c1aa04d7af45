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

/* ------------------------------------------------------------ settings */
struct tx_settings {
	struct dd_addr destination;
	uint64_t rate_bps;
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
#define TX_SEND_BATCH 64

/* The rings the sender takes datagrams from, in this order of priority. */
enum tx_ring_id { TX_RING_CTRL, TX_RING_STREAM, TX_RING_DATA, TX_RINGS };

struct tx_channels;

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
	bool pace_armed, stopping;
	bool send_blocked;    /* the kernel refused the last send: back off */
	uint64_t switch_epoch_at_ms;

	/* Batched send state: sealed but not yet accepted by the kernel. */
	struct mmsghdr msgs[TX_SEND_BATCH];
	struct iovec iovs[TX_SEND_BATCH];
	uint64_t batch_seq[TX_SEND_BATCH];
	uint8_t batch_ring[TX_SEND_BATCH]; /* enum tx_ring_id of each batched datagram */
	unsigned batch_len, batch_pos;
	uint8_t announce_buf[TX_SEND_BATCH][DD_ANNOUNCE_LEN];

	uint64_t datagrams_sent, bytes_sent, send_errors, files_sent, files_abandoned;
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

#endif
