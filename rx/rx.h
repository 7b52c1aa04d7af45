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
#include "wire.h"

struct rx_settings {
	struct dd_addr listen;
	uint64_t timeout_ms;
	uint64_t rcvbuf;
	unsigned announce_rate;
	const char *inbox, *staging, *quarantine;
	bool overwrite;
	uint64_t max_file_size;
	unsigned max_transfers;
	unsigned block_pool;
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
};

struct rx_counters {
	uint64_t received, accepted, announces;
	uint64_t malformed, no_key, bad_tag, replay, unknown_sender, stale, rate_limited;
	uint64_t duplicates, blocks_recovered, blocks_lost;
	uint64_t files_delivered, files_failed;
};

struct rx {
	uv_loop_t *loop;
	struct rx_settings set;
	struct dd_crypto_rx *crypto;
	struct dd_fec *fec;
	int sock, inbox_fd, staging_fd, quarantine_fd, state_fd;
	uv_poll_t sock_poll;
	uv_timer_t tick_timer;
	uv_signal_t sig_term, sig_int, sig_hup;
	bool stopping;

	/* Session */
	uint32_t session;
	size_t frag_len, plain_len;
	uint64_t persisted_seq;
	uint64_t first_seq;   /* first authentic seq this process saw in the session */
	uint64_t last_auth_ms;
	bool link_up;

	/* Reassembly */
	struct rx_transfer *transfers; /* max_transfers entries */
	struct rx_transfer *last_hit;
	struct rx_block *pool;
	uint32_t finished_base;
	uint64_t finished_bits[RX_FINISHED_BITS / 64];
	uint8_t *scratch;             /* one block, for hashing from disk */

	struct rx_counters c, c_reported;     /* this session */
	uint64_t delivered_before, failed_before; /* earlier sessions of this process */
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

/* writer.c */
int writer_stage_open(struct rx *rx, struct rx_transfer *t);
/* Verify, fsync and rename into the inbox; quarantine on failure. */
void writer_deliver(struct rx *rx, struct rx_transfer *t);
/* Remove or quarantine the staging file of a transfer that did not complete. */
void writer_discard(struct rx *rx, struct rx_transfer *t, bool quarantine);
void writer_clean_staging(struct rx *rx);

/* main.c: audit helpers shared by the roles */
void rx_report_rejections(struct rx *rx, uint64_t now, bool force);
void rx_audit_transfer(struct rx *rx, const char *event, const struct rx_transfer *t,
		       const char *reason, const char *delivered_as);

#endif
