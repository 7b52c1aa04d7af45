/* diode-tx: arguments, configuration, keys and session set-up, then the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "record.h"
#include "state.h"
#include "tx.h"
#include "sandbox.h"

#define SESSION_FILE "tx-session"
#define REKEY_OVERLAP_MS 3000

static const struct dd_config_key tx_schema[] = {
	{ "link", "destination", DD_CFG_HOSTPORT, true, NULL, 0, 0, NULL, true },
	{ "link", "burst", DD_CFG_UINT, false, "64", 2, 1024, NULL, false },
	{ "link", "gso", DD_CFG_BOOL, false, "yes", 0, 0, NULL, false },
	{ "link", "workers", DD_CFG_UINT, false, NULL, 0, 16, NULL, false }, /* none: auto */
	{ "link", "rate", DD_CFG_RATE, true, NULL, 100000, 400000000000ull, NULL, false },
	{ "link", "datagram_size", DD_CFG_UINT, false, "1472", DD_DGRAM_MIN, DD_DGRAM_MAX, NULL, false },
	{ "link", "fec_data", DD_CFG_UINT, false, "64", 1, 254, NULL, false },
	{ "link", "fec_parity", DD_CFG_UINT, false, "16", 0, 254, NULL, false },
	{ "link", "interleave", DD_CFG_UINT, false, "16", 1, 64, NULL, false },
	{ "link", "cipher", DD_CFG_ENUM, false, "auto", 0, 0, "auto|aes256gcm|chacha20poly1305", false },
	{ "link", "rekey", DD_CFG_DURATION, false, "1h", 10000, 0, NULL, false },
	{ "link", "repeat", DD_CFG_UINT, false, "1", 1, 16, NULL, false },
	{ "link", "repeat_gap", DD_CFG_DURATION, false, "2s", 0, 3600000, NULL, false },
	{ "link", "sndbuf", DD_CFG_SIZE, false, "4M", 65536, 1ull << 30, NULL, false },
	{ "keys", "secret", DD_CFG_STRING, true, NULL, 0, 0, NULL, false },
	{ "keys", "peer", DD_CFG_STRING, true, NULL, 0, 0, NULL, false },
	{ "files", "outbox", DD_CFG_STRING, true, NULL, 0, 0, NULL, false },
	{ "files", "sent", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "files", "settle_ms", DD_CFG_DURATION, false, "2000", 0, 3600000, NULL, false },
	{ "files", "rescan", DD_CFG_DURATION, false, "30s", 1000, 0, NULL, false },
	{ "files", "max_active", DD_CFG_UINT, false, "4", 1, 256, NULL, false },
	{ "state", "dir", DD_CFG_STRING, true, NULL, 0, 0, NULL, false },
	{ "log", "audit", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "log", "level", DD_CFG_ENUM, false, "info", 0, 0, "error|warning|notice|info|debug", false },
	DD_MONITORING_CONFIG_KEYS, /* metrics file, syslog (tx/metrics.c) */
	/* stream channels (tx/channel.c, docs/OPERATIONS.md "Stream channels") */
	{ "channel.*", "listen", DD_CFG_STRING, true, NULL, 0, 0, NULL, true },
	{ "channel.*", "max_record", DD_CFG_SIZE, false, "8K", 1, 65535, NULL, false },
	{ "channel.*", "buffer", DD_CFG_SIZE, false, "4M", 4096, 1ull << 32, NULL, false },
	{ "channel.*", "journal", DD_CFG_SIZE, false, "64M", 0, 1ull << 40, NULL, false },
	{ "channel.*", "overflow", DD_CFG_ENUM, false, "drop-oldest", 0, 0, "drop-oldest|drop-newest", false },
	{ "channel.*", "flush_ms", DD_CFG_DURATION, false, "5", 1, 1000, NULL, false },
	{ "channel.*", "fec_parity", DD_CFG_UINT, false, "2", 0, DD_STREAM_M_MAX, NULL, false },
	{ "channel.*", "max_clients", DD_CFG_UINT, false, "64", 1, 4096, NULL, false },
	/* listen = mqtt://... (tx/channel_mqtt.c, docs/OPERATIONS.md "MQTT bridge") */
	{ "channel.*", "mqtt_client_id", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "channel.*", "mqtt_username", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "channel.*", "mqtt_password_file", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "channel.*", "mqtt_session_expiry", DD_CFG_DURATION, false, "24h", 0, 4294967295000ull, NULL, false },
	DD_SANDBOX_CONFIG_KEYS,
	{ NULL, NULL, 0, false, NULL, 0, 0, NULL, false },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: diode-tx -c FILE [-n] [-v]\n"
		   "       diode-tx -c FILE send [--quiet] [--timeout DURATION] PATH...\n"
		   "  -c FILE  configuration (INI; see config/tx.conf)\n"
		   "  -n       check the configuration and keys, print 'configuration OK', exit\n"
		   "  -v       debug logging\n"
		   "  send     queue PATHs (files, directories) through the running diode-tx and\n"
		   "           wait until they are on the wire (`send --help`)\n");
}

static enum dd_log_level
level_from(const char *s)
{
	static const char *const names[] = { "error", "warning", "notice", "info", "debug" };

	for (int i = 0; i < 5; i++)
		if (strcmp(s, names[i]) == 0)
			return (enum dd_log_level)i;
	return DD_LOG_INFO;
}

static int
open_dir(const struct dd_config *cfg, const char *section, const char *key, const char *what)
{
	const char *path = dd_config_str(cfg, section, key);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		fprintf(stderr, "%s: [%s] %s: %s: %s (create the %s directory first)\n",
			dd_config_where(cfg, section, key), section, key, path, strerror(errno),
			what);
	return fd;
}

/* Next session number: above the last one used and at least the clock, so a
 * lost state directory still yields a session the receiver accepts. */
static int
next_session(int state_fd, uint32_t *session, char *err, size_t errlen)
{
	char buf[128];
	uint64_t last = 0, now = (uint64_t)time(NULL), next;
	int rc = dd_state_read(state_fd, SESSION_FILE, buf, sizeof(buf));

	if (rc >= 0 && dd_state_get_u64(buf, "session", &last) != 0) {
		snprintf(err, errlen, "%s: unreadable; remove it to start afresh", SESSION_FILE);
		return -EINVAL;
	}
	if (rc < 0 && rc != -ENOENT) {
		snprintf(err, errlen, "%s: %s", SESSION_FILE, strerror(-rc));
		return rc;
	}
	next = last + 1 > now ? last + 1 : now;
	if (next > UINT32_MAX) {
		snprintf(err, errlen, "session counter exhausted");
		return -ERANGE;
	}
	snprintf(buf, sizeof(buf), "session %llu\n", (unsigned long long)next);
	rc = dd_state_write(state_fd, SESSION_FILE, buf, strlen(buf));
	if (rc != 0) {
		snprintf(err, errlen, "writing %s: %s", SESSION_FILE, strerror(-rc));
		return rc;
	}
	*session = (uint32_t)next;
	return 0;
}

static void
on_announce(uv_timer_t *t)
{
	struct tx *tx = t->data;

	if (tx->switch_epoch_at_ms != 0 && dd_mono_ms() >= tx->switch_epoch_at_ms) {
		dd_crypto_tx_switch(tx->crypto);
		tx->switch_epoch_at_ms = 0;
		dd_info("session %u: now sealing with key epoch %u", tx->session,
			dd_crypto_tx_epoch(tx->crypto));
	}
	sender_queue_announce(tx, false);
	if (dd_crypto_tx_has_next(tx->crypto))
		sender_queue_announce(tx, true);
}

static void
on_beacon(uv_timer_t *t)
{
	struct tx *tx = t->data;

	sender_queue_beacon(tx);
	channels_queue_status(tx);
}

static void
on_rekey(uv_timer_t *t)
{
	struct tx *tx = t->data;
	int rc = dd_crypto_tx_prepare_next(tx->crypto);

	if (rc != 0) {
		dd_warn("session %u: cannot prepare the next key epoch (%s); restart diode-tx "
			"to start a new session", tx->session, strerror(-rc));
		return;
	}
	/* Announce the next epoch beside the current one before switching, so the
	 * receiver holds its key when the first datagram sealed with it arrives. */
	tx->switch_epoch_at_ms = dd_mono_ms() + REKEY_OVERLAP_MS;
	sender_queue_announce(tx, true);
}

static void
close_cb(uv_handle_t *h)
{
	(void)h;
}

static void
close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, close_cb);
}

static void
on_drain(uv_timer_t *t)
{
	struct tx *tx = t->data;
	static unsigned waited;

	if ((ring_used(&tx->ctrl) > 0 || ring_used(&tx->stream) > 0 ||
	     tx->batch_pos != tx->batch_len) && ++waited < 100)
		return;
	uv_walk(tx->loop, close_walk, NULL);
}

static void
stop(struct tx *tx, const char *why)
{
	static uv_timer_t drain;

	if (tx->stopping)
		return;
	dd_notice("%s: stopping; files not completely sent stay in the outbox", why);
	tx->stopping = true;
	/* Drop queued data, announce the unfinished transfers as aborted, and
	 * give the control queue a moment to leave. */
	sender_drop_data(tx);
	channels_stop(tx);
	sched_abort_all(tx);
	spool_close(tx->spool);
	uv_timer_stop(&tx->announce_timer);
	uv_timer_stop(&tx->beacon_timer);
	uv_timer_stop(&tx->rekey_timer);
	uv_timer_stop(&tx->repeat_timer);
	uv_timer_init(tx->loop, &drain);
	drain.data = tx;
	uv_timer_start(&drain, on_drain, 10, 10);
	sender_kick(tx);
}

static void
on_signal(uv_signal_t *s, int signum)
{
	struct tx *tx = s->data;

	if (signum == SIGHUP) {
		dd_audit_reopen();
		dd_info("SIGHUP: audit log reopened");
		return;
	}
	stop(tx, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int
setup(struct tx *tx, const struct dd_config *cfg, bool check_only)
{
	struct tx_settings *set = &tx->set;
	char err[512];
	const char *cipher = dd_config_str(cfg, "link", "cipher");
	uint8_t *secret = NULL, public_key[DD_KEY_LEN], peer[DD_KEY_LEN];
	uint64_t granted;
	int state_fd = -1, outbox_fd = -1, rc = -EINVAL;
	struct stat st_out, st_sent;

	set->ndest = (unsigned)dd_config_list_len(cfg, "link", "destination");
	if (set->ndest == 0 || set->ndest > TX_DEST_MAX) {
		fprintf(stderr, "%s: [link] destination: give 1 to %d HOST:PORT, comma separated\n",
			dd_config_where(cfg, "link", "destination"), TX_DEST_MAX);
		goto out;
	}
	for (unsigned i = 0; i < set->ndest; i++) {
		char item[300];

		if (dd_config_list_item(cfg, "link", "destination", i, item, sizeof(item)) != 0)
			snprintf(err, sizeof(err), "item %u is too long", i + 1);
		else if (dd_net_resolve(item, &set->destination[i], err, sizeof(err)) == 0)
			err[0] = '\0';
		if (err[0] != '\0') {
			fprintf(stderr, "%s: [link] destination: %s\n",
				dd_config_where(cfg, "link", "destination"), err);
			goto out;
		}
		if (set->destination[i].ss.ss_family != set->destination[0].ss.ss_family) {
			fprintf(stderr, "%s: [link] destination: '%s' is not of the first one's "
				"address family; use all IPv4 or all IPv6 (one socket sends to "
				"all)\n", dd_config_where(cfg, "link", "destination"), item);
			goto out;
		}
	}
	set->burst = (unsigned)dd_config_u64(cfg, "link", "burst");
	set->gso = dd_config_bool(cfg, "link", "gso");
	if (dd_config_has(cfg, "link", "workers")) {
		set->workers = (unsigned)dd_config_u64(cfg, "link", "workers");
	} else {
		/* One sealing thread per further core, up to 4. */
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		set->workers = ncpu > 5 ? 4 : ncpu > 1 ? (unsigned)(ncpu - 1) : 0;
	}
	set->rate_bps = dd_config_u64(cfg, "link", "rate");
	set->dgram_size = (uint16_t)dd_config_u64(cfg, "link", "datagram_size");
	if (!dd_wire_dgram_size_ok(set->dgram_size)) {
		fprintf(stderr, "%s: [link] datagram_size must be a multiple of 64 between %d and "
			"%d (1472 for a 1500-byte MTU)\n",
			dd_config_where(cfg, "link", "datagram_size"), DD_DGRAM_MIN, DD_DGRAM_MAX);
		goto out;
	}
	set->fec_data = (unsigned)dd_config_u64(cfg, "link", "fec_data");
	set->fec_parity = (unsigned)dd_config_u64(cfg, "link", "fec_parity");
	if (set->fec_data + set->fec_parity > DD_FEC_MAX_TOTAL) {
		fprintf(stderr, "%s: fec_data + fec_parity must be at most 255 (Reed-Solomon over "
			"GF(2^8))\n", dd_config_where(cfg, "link", "fec_parity"));
		goto out;
	}
	set->interleave = (unsigned)dd_config_u64(cfg, "link", "interleave");
	if (strcmp(cipher, "aes256gcm") == 0 ||
	    (strcmp(cipher, "auto") == 0 && dd_crypto_aes_available()))
		set->cipher = DD_CIPHER_AES256GCM;
	else
		set->cipher = DD_CIPHER_CHACHA20POLY1305;
	if (set->cipher == DD_CIPHER_AES256GCM && !dd_crypto_aes_available()) {
		fprintf(stderr, "%s: [link] cipher = aes256gcm, but this CPU has no AES-NI; use "
			"chacha20poly1305 or auto\n", dd_config_where(cfg, "link", "cipher"));
		goto out;
	}
	set->rekey_ms = dd_config_u64(cfg, "link", "rekey");
	set->repeat = (unsigned)dd_config_u64(cfg, "link", "repeat");
	set->repeat_gap_ms = dd_config_u64(cfg, "link", "repeat_gap");
	set->sndbuf = dd_config_u64(cfg, "link", "sndbuf");
	set->outbox = dd_config_str(cfg, "files", "outbox");
	set->sent = dd_config_str(cfg, "files", "sent");
	set->settle_ms = dd_config_u64(cfg, "files", "settle_ms");
	set->rescan_ms = dd_config_u64(cfg, "files", "rescan");
	set->max_active = (unsigned)dd_config_u64(cfg, "files", "max_active");

	secret = sodium_malloc(DD_KEY_LEN);
	if (secret == NULL) {
		fprintf(stderr, "out of memory\n");
		goto out;
	}
	if (dd_keys_load_secret(dd_config_str(cfg, "keys", "secret"), secret, public_key, err,
				sizeof(err)) != 0) {
		fprintf(stderr, "%s: [keys] secret: %s\n", dd_config_where(cfg, "keys", "secret"),
			err);
		goto out;
	}
	if (dd_keys_load_public(dd_config_str(cfg, "keys", "peer"), peer, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: [keys] peer: %s\n", dd_config_where(cfg, "keys", "peer"), err);
		goto out;
	}
	outbox_fd = open_dir(cfg, "files", "outbox", "outbox");
	if (outbox_fd < 0)
		goto out;
	tx->sent_fd = -1;
	if (set->sent != NULL) {
		tx->sent_fd = open_dir(cfg, "files", "sent", "sent");
		if (tx->sent_fd < 0)
			goto out;
		if (fstat(outbox_fd, &st_out) == 0 && fstat(tx->sent_fd, &st_sent) == 0 &&
		    st_out.st_dev != st_sent.st_dev) {
			fprintf(stderr, "%s: [files] sent must be on the outbox's file system (files "
				"are renamed there)\n", dd_config_where(cfg, "files", "sent"));
			goto out;
		}
	}
	state_fd = dd_state_open_dir(dd_config_str(cfg, "state", "dir"));
	if (state_fd < 0) {
		fprintf(stderr, "%s: [state] dir: %s: %s\n", dd_config_where(cfg, "state", "dir"),
			dd_config_str(cfg, "state", "dir"), strerror(-state_fd));
		goto out;
	}
	if (dd_config_has(cfg, "log", "audit") &&
	    dd_audit_open(dd_config_str(cfg, "log", "audit"), err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: [log] audit: %s\n", dd_config_where(cfg, "log", "audit"), err);
		goto out;
	}
	if (check_only) {
		rc = 0;
		goto out;
	}
	if (next_session(state_fd, &tx->session, err, sizeof(err)) != 0) {
		fprintf(stderr, "[state] dir %s: %s\n", dd_config_str(cfg, "state", "dir"), err);
		goto out;
	}
	tx->started_ms = dd_now_ms();
	rc = dd_crypto_tx_new(&tx->crypto, secret, public_key, peer, set->cipher, tx->session,
			      set->dgram_size, tx->started_ms / 1000);
	if (rc != 0) {
		fprintf(stderr, "%s: [keys] peer: unusable public key\n",
			dd_config_where(cfg, "keys", "peer"));
		goto out;
	}
	rc = -EINVAL;
	tx->sock = dd_net_udp_sender(&set->destination[0], set->sndbuf, &granted, err, sizeof(err));
	if (tx->sock < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	rc = 0;
out:
	if (outbox_fd >= 0)
		close(outbox_fd);
	if (state_fd >= 0)
		close(state_fd);
	sodium_free(secret);
	return rc;
}

static int
any_section(const char *section, void *arg)
{
	(void)section;
	(void)arg;
	return 1;
}

/* Drop privileges and confine the process to the directories it writes. */
static int
restrict_process(struct tx *tx, const struct dd_config *cfg, struct dd_sandbox *sb)
{
	char err[1024];

	dd_sandbox_allow(sb, tx->set.outbox, true);
	dd_sandbox_allow(sb, tx->set.sent, true);
	dd_sandbox_allow(sb, dd_config_str(cfg, "state", "dir"), true);
	dd_sandbox_allow(sb, dd_config_str(cfg, "log", "audit"), true);
	tx_monitoring_sandbox(tx, sb);
	/* Nothing may ever be received from the diode socket; stream channels
	 * accept and read local producers on the sockets they opened. */
	dd_sandbox_link_socket(sb, tx->sock);
	if (tx->set.workers > 0)
		dd_sandbox_allow_threads(sb); /* started after the sandbox, they inherit it */
	if (dd_config_each_section(cfg, "channel.", any_section, NULL) != 0)
		dd_sandbox_allow_net(sb, DD_SANDBOX_NET_ACCEPT | DD_SANDBOX_NET_RECV);
	channels_sandbox(tx, sb); /* MQTT inputs connect to their brokers */
	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0) {
		dd_error("%s", err);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static struct tx tx;
	struct dd_config *cfg = NULL;
	const char *config_path = NULL;
	bool check_only = false, verbose = false;
	char err[1024];
	struct dd_sandbox sb;
	uint32_t ring_cap;
	int opt, rc;

	/* '+': stop at the first non-option, so `send` parses its own options. */
	while ((opt = getopt(argc, argv, "+c:nvh")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'n':
			check_only = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (config_path != NULL && optind < argc && strcmp(argv[optind], "send") == 0) {
		if (dd_config_load(&cfg, config_path, tx_schema, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s\n", err);
			return 2;
		}
		rc = send_main(cfg, argc - optind, argv + optind);
		dd_config_free(cfg);
		return rc;
	}
	if (config_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (dd_crypto_init() != 0) {
		fprintf(stderr, "diode-tx: libsodium failed to initialise\n");
		return 1;
	}
	if (dd_config_load(&cfg, config_path, tx_schema, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	dd_log_init("diode-tx", verbose ? DD_LOG_DEBUG : level_from(dd_config_str(cfg, "log", "level")));
	tx.sock = -1;
	if (dd_sandbox_from_config(&sb, cfg, DD_SANDBOX_TX, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		dd_config_free(cfg);
		return 1;
	}
	if (!check_only &&
	    progress_open(&tx, dd_config_str(cfg, "state", "dir"), err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: [state] dir: %s\n", dd_config_where(cfg, "state", "dir"), err);
		dd_config_free(cfg);
		return 1;
	}
	if (setup(&tx, cfg, check_only) != 0 || tx_monitoring_open(&tx, cfg) != 0) {
		dd_config_free(cfg);
		return 1;
	}
	tx.plain_len = tx.set.dgram_size - DD_SEALED_OVERHEAD;
	tx.frag_len = dd_wire_frag_len(tx.set.dgram_size);
	if (channels_open(&tx, cfg, check_only) != 0) {
		channels_close(&tx);
		dd_config_free(cfg);
		return 1;
	}
	if (check_only) {
		channels_close(&tx);
		printf("configuration OK\n");
		dd_config_free(cfg);
		return 0;
	}

	tx.loop = uv_default_loop();
	ring_cap = 2 * tx.set.interleave * DD_FEC_MAX_TOTAL;
	if (ring_cap < 2048)
		ring_cap = 2048;
	if (ring_init(&tx.data, ring_cap, tx.set.dgram_size) != 0 ||
	    ring_init(&tx.ctrl, 256, tx.set.dgram_size) != 0 || dd_fec_new(&tx.fec) != 0) {
		dd_error("out of memory setting up the send rings");
		return 1;
	}
	sched_init_parity(&tx);
	/* Pacing (token bucket of [link] burst datagrams, fine timer) and GSO. */
	sender_init(&tx);

	uv_timer_init(tx.loop, &tx.announce_timer);
	uv_timer_init(tx.loop, &tx.beacon_timer);
	uv_timer_init(tx.loop, &tx.repeat_timer);
	uv_timer_init(tx.loop, &tx.rekey_timer);
	tx.announce_timer.data = tx.beacon_timer.data = &tx;
	tx.repeat_timer.data = tx.rekey_timer.data = &tx;
	uv_signal_init(tx.loop, &tx.sig_term);
	uv_signal_init(tx.loop, &tx.sig_int);
	uv_signal_init(tx.loop, &tx.sig_hup);
	tx.sig_term.data = tx.sig_int.data = tx.sig_hup.data = &tx;
	uv_signal_start(&tx.sig_term, on_signal, SIGTERM);
	uv_signal_start(&tx.sig_int, on_signal, SIGINT);
	uv_signal_start(&tx.sig_hup, on_signal, SIGHUP);

	{
		char dest[80 * TX_DEST_MAX];
		struct dd_audit_event ev;
		size_t used = 0;

		for (unsigned i = 0; i < tx.set.ndest; i++) {
			if (i > 0)
				used += (size_t)snprintf(dest + used, sizeof(dest) - used, ", ");
			dd_net_format(&tx.set.destination[i], dest + used, sizeof(dest) - used);
			used += strlen(dest + used);
		}
		dd_notice("session %u started: sending to %s at %.3f Mb/s, %s, FEC %u+%u, "
			  "interleave %u, datagrams of %u bytes, %u sealing workers", tx.session, dest,
			  (double)tx.set.rate_bps / 1e6, dd_crypto_cipher_name(tx.set.cipher),
			  tx.set.fec_data, tx.set.fec_parity, tx.set.interleave, tx.set.dgram_size,
			  tx.set.workers);
		dd_audit_begin(&ev, "session_started");
		dd_audit_u64(&ev, "session", tx.session);
		dd_audit_str(&ev, "destination", dest);
		dd_audit_str(&ev, "cipher", dd_crypto_cipher_name(tx.set.cipher));
		dd_audit_commit(&ev);
	}
	/* Announce first, a few times, so the receiver holds the key before data. */
	for (int i = 0; i < 3; i++)
		sender_queue_announce(&tx, false);
	uv_timer_start(&tx.announce_timer, on_announce, 500, 500);
	uv_timer_start(&tx.beacon_timer, on_beacon, 1000, 1000);
	uv_timer_start(&tx.rekey_timer, on_rekey, tx.set.rekey_ms, tx.set.rekey_ms);

	rc = spool_new(&tx.spool, &tx, tx.loop, tx.set.outbox, tx.set.settle_ms, tx.set.rescan_ms);
	if (rc != 0) {
		dd_error("outbox %s: %s", tx.set.outbox, strerror(-rc));
		return 1;
	}
	if (restrict_process(&tx, cfg, &sb) != 0)
		return 1;
	sender_start_workers(&tx);
	channels_start(&tx);
	tx_metrics_start(&tx);
	progress_start(&tx);
	sched_fill(&tx);
	uv_run(tx.loop, UV_RUN_DEFAULT);
	uv_run(tx.loop, UV_RUN_NOWAIT);
	sender_stop_workers(&tx);
	tx_metrics_write(&tx);

	{
		struct dd_audit_event ev;

		dd_audit_begin(&ev, "session_stopped");
		dd_audit_u64(&ev, "session", tx.session);
		dd_audit_u64(&ev, "files_sent", tx.files_sent);
		dd_audit_u64(&ev, "datagrams", tx.datagrams_sent);
		dd_audit_commit(&ev);
	}
	dd_notice("stopped: %llu files sent, %llu datagrams, %llu wire bytes",
		  (unsigned long long)tx.files_sent, (unsigned long long)tx.datagrams_sent,
		  (unsigned long long)tx.bytes_sent);
	channels_close(&tx);
	sched_free_all(&tx);
	progress_close(&tx);
	spool_free(tx.spool);
	dd_crypto_tx_free(tx.crypto);
	dd_fec_free(tx.fec);
	ring_free(&tx.data);
	ring_free(&tx.ctrl);
	dd_config_free(cfg);
	dd_audit_close();
	tx_monitoring_close(&tx);
	return 0;
}
