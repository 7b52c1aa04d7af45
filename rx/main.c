/* diode-rx: arguments, configuration, keys and directories, link monitor, then the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "keys.h"
#include "metrics.h"
#include "rx.h"
#include "sandbox.h"
#include "state.h"

#define SESSION_FILE "rx-session"
#define TICK_MS 250
#define REJECT_REPORT_MS 10000

static const struct dd_config_key rx_schema[] = {
	{ "link", "listen", DD_CFG_HOSTPORT, true, NULL, 0, 0, NULL, true },
	{ "link", "timeout", DD_CFG_DURATION, false, "5s", 100, 0, NULL, false },
	{ "link", "rcvbuf", DD_CFG_SIZE, false, "32M", 65536, 1ull << 31, NULL, false },
	{ "link", "announce_rate", DD_CFG_UINT, false, "20", 1, 100000, NULL, false },
	{ "link", "workers", DD_CFG_UINT, false, NULL, 0, 16, NULL, false }, /* none: auto */
	{ "keys", "secret", DD_CFG_STRING, true, NULL, 0, 0, NULL, false },
	{ "keys", "peer", DD_CFG_STRING, true, NULL, 0, 0, NULL, true },
	{ "files", "inbox", DD_CFG_STRING, true, NULL, 0, 0, NULL, false },
	{ "files", "staging", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "files", "quarantine", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "files", "collision", DD_CFG_ENUM, false, "rename", 0, 0, "rename|overwrite", false },
	{ "files", "max_file_size", DD_CFG_SIZE, false, "64G", 1, 0, NULL, false },
	{ "files", "min_free", DD_CFG_SIZE, false, "0", 0, 0, NULL, false },
	{ "files", "max_transfers", DD_CFG_UINT, false, "64", 1, 4096, NULL, false },
	{ "files", "block_pool", DD_CFG_UINT, false, "256", 16, 65536, NULL, false },
	{ "state", "dir", DD_CFG_STRING, true, NULL, 0, 0, NULL, false },
	{ "log", "audit", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "log", "level", DD_CFG_ENUM, false, "info", 0, 0, "error|warning|notice|info|debug", false },
	DD_MONITORING_CONFIG_KEYS, /* metrics file, syslog (rx/metrics.c) */
	/* stream channels (rx/stream.c, rx/sink.c, docs/OPERATIONS.md "Stream channels") */
	{ "channel.*", "sink", DD_CFG_STRING, true, NULL, 0, 0, NULL, false },
	{ "channel.*", "segment_ms", DD_CFG_DURATION, false, "60s", 100, 86400000, NULL, false },
	{ "channel.*", "segment_bytes", DD_CFG_SIZE, false, "64M", 4096, 1ull << 40, NULL, false },
	{ "channel.*", "buffer", DD_CFG_SIZE, false, "256M", 65536, 1ull << 40, NULL, false },
	{ "channel.*", "loss_wait", DD_CFG_DURATION, false, "100ms", 1, 60000, NULL, false },
	/* MQTT records (rx/sink_mqtt.c, docs/OPERATIONS.md "MQTT bridge") */
	{ "channel.*", "records", DD_CFG_ENUM, false, NULL, 0, 0, "raw|mqtt", false },
	{ "channel.*", "mqtt_topic_prefix", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "channel.*", "mqtt_qos", DD_CFG_UINT, false, "1", 0, 2, NULL, false },
	{ "channel.*", "mqtt_client_id", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "channel.*", "mqtt_username", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	{ "channel.*", "mqtt_password_file", DD_CFG_STRING, false, NULL, 0, 0, NULL, false },
	DD_SANDBOX_CONFIG_KEYS,
	{ NULL, NULL, 0, false, NULL, 0, 0, NULL, false },
};

static char staging_default[4200];

void
rx_audit_transfer(struct rx *rx, const char *event, const struct rx_transfer *t,
		  const char *reason, const char *delivered_as)
{
	struct dd_audit_event ev;
	char id[32], hex[65];

	snprintf(id, sizeof(id), "%" PRIu32 "-%" PRIu32, rx->session, t->id);
	dd_audit_begin(&ev, event);
	dd_audit_str(&ev, "id", id);
	dd_audit_u64(&ev, "session", rx->session);
	dd_audit_u64(&ev, "transfer", t->id);
	if (t->path != NULL)
		dd_audit_str(&ev, "path", t->path);
	if (delivered_as != NULL && (t->path == NULL || strcmp(delivered_as, t->path) != 0))
		dd_audit_str(&ev, "delivered_as", delivered_as);
	dd_audit_u64(&ev, "size", t->size);
	if (t->final) {
		dd_digest_hex(t->sha256, hex);
		dd_audit_str(&ev, "sha256", hex);
	}
	if (t->blocks > 0 && t->blocks_done < t->blocks)
		dd_audit_u64(&ev, "missing_blocks", t->blocks - t->blocks_done);
	if (t->first_ms != 0)
		dd_audit_u64(&ev, "ms", dd_mono_ms() - t->first_ms);
	if (reason != NULL)
		dd_audit_str(&ev, "reason", reason);
	dd_audit_commit(&ev);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: diode-rx -c FILE [-n] [-v]\n"
		   "       diode-rx -c FILE status\n"
		   "  -c FILE  configuration (INI; see config/rx.conf)\n"
		   "  status   print link state, session, counters and recent failures of the\n"
		   "           running receiver; exit 0 when healthy, 1 when not, 2 when the\n"
		   "           status cannot be read\n"
		   "  -n       check the configuration and keys, print 'configuration OK', exit\n"
		   "  -v       debug logging\n");
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
open_dir(const struct dd_config *cfg, const char *section, const char *key, const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		fprintf(stderr, "%s: [%s] %s: %s: %s (create the directory first)\n",
			dd_config_where(cfg, section, key), section, key, path, strerror(errno));
	return fd;
}

static void
persist_session(struct rx *rx)
{
	char buf[128];
	uint64_t top = dd_crypto_rx_top_seq(rx->crypto);
	int rc;

	if (!dd_crypto_rx_has_session(rx->crypto) ||
	    (top == rx->persisted_seq && rx->checked_below == rx->persisted_checked))
		return;
	if (rx->checked_known)
		snprintf(buf, sizeof(buf), "session %" PRIu32 "\nseq %" PRIu64 "\nchecked %" PRIu32
			 "\n", rx->session, top, rx->checked_below);
	else
		snprintf(buf, sizeof(buf), "session %" PRIu32 "\nseq %" PRIu64 "\n", rx->session,
			 top);
	rc = dd_state_write(rx->state_fd, SESSION_FILE, buf, strlen(buf));
	if (rc != 0) {
		static struct dd_ratelimit rl = { .interval_ms = 60000 };

		if (dd_ratelimit_ok(&rl, dd_mono_ms(), NULL))
			dd_error("[state] dir: cannot write %s: %s; replay protection across "
				 "restarts is weakened until this is fixed", SESSION_FILE,
				 strerror(-rc));
		return;
	}
	rx->persisted_seq = top;
	rx->persisted_checked = rx->checked_below;
}

static void
link_event(struct rx *rx, bool up)
{
	struct dd_audit_event ev;

	rx->link_up = up;
	dd_audit_begin(&ev, up ? "link_up" : "link_down");
	dd_audit_u64(&ev, "session", rx->session);
	dd_audit_commit(&ev);
	if (up)
		dd_notice("link up: authentic datagrams arriving (session %u)", rx->session);
	else
		dd_warn("link down: no authentic datagram for %" PRIu64 " ms; check diode-tx and "
			"the diode link", rx->set.timeout_ms);
}

/* Summarise rejected datagrams: at most one log line and audit event per 10 s,
 * unless forced (a new session resets the counters, or diode-rx stops). */
void
rx_report_rejections(struct rx *rx, uint64_t now, bool force)
{
	struct rx_counters *c = &rx->c, *r = &rx->c_reported;
	uint64_t bad = c->bad_tag - r->bad_tag, replay = c->replay - r->replay;
	uint64_t malformed = c->malformed - r->malformed, nokey = c->no_key - r->no_key;
	uint64_t unknown = c->unknown_sender - r->unknown_sender, stale = c->stale - r->stale;
	uint64_t limited = c->rate_limited - r->rate_limited;
	struct dd_audit_event ev;

	if (bad + replay + malformed + nokey + unknown + stale + limited == 0)
		return;
	if (!dd_ratelimit_ok(&rx->reject_rl, now, NULL) && !force)
		return;
	dd_warn("rejected datagrams in the last period: %" PRIu64 " bad tag, %" PRIu64
		" replayed, %" PRIu64 " malformed, %" PRIu64 " without a session key, %" PRIu64
		" announces from unknown senders, %" PRIu64 " from old sessions, %" PRIu64
		" announces over the rate limit", bad, replay, malformed, nokey, unknown, stale,
		limited);
	dd_audit_begin(&ev, "auth_failures");
	dd_audit_u64(&ev, "bad_tag", bad);
	dd_audit_u64(&ev, "replay", replay);
	dd_audit_u64(&ev, "malformed", malformed);
	dd_audit_u64(&ev, "no_session_key", nokey);
	dd_audit_u64(&ev, "unknown_sender", unknown);
	dd_audit_u64(&ev, "old_session", stale);
	dd_audit_u64(&ev, "announce_rate_limited", limited);
	dd_audit_commit(&ev);
	r->bad_tag = c->bad_tag;
	r->replay = c->replay;
	r->malformed = c->malformed;
	r->no_key = c->no_key;
	r->unknown_sender = c->unknown_sender;
	r->stale = c->stale;
	r->rate_limited = c->rate_limited;
}

static void
on_tick(uv_timer_t *timer)
{
	struct rx *rx = timer->data;
	uint64_t now = dd_mono_ms();
	static uint64_t last_persist;

	if (rx->last_auth_ms != 0) {
		bool alive = now - rx->last_auth_ms < rx->set.timeout_ms;

		if (alive != rx->link_up)
			link_event(rx, alive);
	}
	reasm_tick(rx, now);
	rx_report_rejections(rx, now, false);
	status_loss_summary(rx, now);
	if (now - last_persist >= 1000) {
		reasm_save_dirty(rx);
		persist_session(rx);
		status_write(rx);
		last_persist = now;
	}
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
on_signal(uv_signal_t *s, int signum)
{
	struct rx *rx = s->data;

	if (signum == SIGHUP) {
		dd_audit_reopen();
		dd_info("SIGHUP: audit log reopened");
		return;
	}
	if (rx->stopping)
		return;
	rx->stopping = true;
	dd_notice("%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	receiver_stop(rx);
	persist_session(rx);
	/* Partial transfers are kept: the sender's next pass can complete them
	 * after a restart; if not, they are reported then. */
	reasm_suspend_all(rx);
	streams_stop(rx);
	rx_report_rejections(rx, dd_mono_ms(), true);
	status_write(rx);
	uv_walk(rx->loop, close_walk, NULL);
}

static int
load_peers(struct rx *rx, const struct dd_config *cfg)
{
	size_t n = dd_config_list_len(cfg, "keys", "peer");
	char path[4096], err[512], fp[17];
	uint8_t pub[DD_KEY_LEN];

	for (size_t i = 0; i < n; i++) {
		if (dd_config_list_item(cfg, "keys", "peer", i, path, sizeof(path)) != 0 ||
		    dd_keys_load_public(path, pub, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: [keys] peer: %s\n", dd_config_where(cfg, "keys", "peer"),
				err);
			return -EINVAL;
		}
		if (dd_crypto_rx_add_peer(rx->crypto, pub) != 0) {
			fprintf(stderr, "%s: [keys] peer: %s: unusable key, or more than 8 peers\n",
				dd_config_where(cfg, "keys", "peer"), path);
			return -EINVAL;
		}
		dd_keys_fingerprint(pub, fp);
		dd_info("trusting sender key %s (%s)", fp, path);
	}
	return 0;
}

static int
setup(struct rx *rx, const struct dd_config *cfg, bool check_only)
{
	struct rx_settings *set = &rx->set;
	char err[512], buf[256];
	uint8_t *secret = NULL, public_key[DD_KEY_LEN];
	uint64_t session = 0, seq = 0, checked = 0, granted = 0;
	struct stat st_inbox, st_staging;
	int rc = -EINVAL;

	set->nlisten = (unsigned)dd_config_list_len(cfg, "link", "listen");
	if (set->nlisten > RX_LISTEN_MAX) {
		fprintf(stderr, "%s: [link] listen: at most %d addresses\n",
			dd_config_where(cfg, "link", "listen"), RX_LISTEN_MAX);
		goto out;
	}
	for (unsigned i = 0; i < set->nlisten; i++) {
		char item[300];

		if (dd_config_list_item(cfg, "link", "listen", i, item, sizeof(item)) != 0) {
			fprintf(stderr, "%s: [link] listen: address %u is too long\n",
				dd_config_where(cfg, "link", "listen"), i + 1);
			goto out;
		}
		if (dd_net_resolve(item, &set->listen[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "%s: [link] listen: %s\n",
				dd_config_where(cfg, "link", "listen"), err);
			goto out;
		}
	}
	set->timeout_ms = dd_config_u64(cfg, "link", "timeout");
	set->rcvbuf = dd_config_u64(cfg, "link", "rcvbuf");
	set->announce_rate = (unsigned)dd_config_u64(cfg, "link", "announce_rate");
	if (dd_config_has(cfg, "link", "workers")) {
		set->workers = (unsigned)dd_config_u64(cfg, "link", "workers");
	} else {
		/* The disk thread pays where a second core can run it. */
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		set->workers = ncpu > 1 ? 1 : 0;
	}
	set->inbox = dd_config_str(cfg, "files", "inbox");
	set->quarantine = dd_config_str(cfg, "files", "quarantine");
	set->overwrite = strcmp(dd_config_str(cfg, "files", "collision"), "overwrite") == 0;
	set->max_file_size = dd_config_u64(cfg, "files", "max_file_size");
	set->min_free = dd_config_u64(cfg, "files", "min_free");
	set->max_transfers = (unsigned)dd_config_u64(cfg, "files", "max_transfers");
	set->block_pool = (unsigned)dd_config_u64(cfg, "files", "block_pool");
	if (dd_config_has(cfg, "files", "staging")) {
		set->staging = dd_config_str(cfg, "files", "staging");
	} else {
		snprintf(staging_default, sizeof(staging_default), "%s/.diode-staging", set->inbox);
		set->staging = staging_default;
	}

	secret = sodium_malloc(DD_KEY_LEN);
	if (secret == NULL)
		goto out;
	if (dd_keys_load_secret(dd_config_str(cfg, "keys", "secret"), secret, public_key, err,
				sizeof(err)) != 0) {
		fprintf(stderr, "%s: [keys] secret: %s\n", dd_config_where(cfg, "keys", "secret"),
			err);
		goto out;
	}
	if (dd_crypto_rx_new(&rx->crypto, secret, public_key) != 0)
		goto out;
	dd_crypto_rx_set_announce_rate(rx->crypto, set->announce_rate);
	if (load_peers(rx, cfg) != 0)
		goto out;

	rx->inbox_fd = open_dir(cfg, "files", "inbox", set->inbox);
	if (rx->inbox_fd < 0)
		goto out;
	if (mkdir(set->staging, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "%s: [files] staging: %s: %s\n",
			dd_config_where(cfg, "files", "staging"), set->staging, strerror(errno));
		goto out;
	}
	rx->staging_fd = open_dir(cfg, "files", "staging", set->staging);
	if (rx->staging_fd < 0)
		goto out;
	if (fstat(rx->inbox_fd, &st_inbox) == 0 && fstat(rx->staging_fd, &st_staging) == 0 &&
	    st_inbox.st_dev != st_staging.st_dev) {
		fprintf(stderr, "%s: [files] staging must be on the inbox's file system (files are "
			"renamed into the inbox)\n", dd_config_where(cfg, "files", "staging"));
		goto out;
	}
	if (set->quarantine != NULL) {
		rx->quarantine_fd = open_dir(cfg, "files", "quarantine", set->quarantine);
		if (rx->quarantine_fd < 0)
			goto out;
	}
	rx->state_fd = dd_state_open_dir(dd_config_str(cfg, "state", "dir"));
	if (rx->state_fd < 0) {
		fprintf(stderr, "%s: [state] dir: %s: %s\n", dd_config_where(cfg, "state", "dir"),
			dd_config_str(cfg, "state", "dir"), strerror(-rx->state_fd));
		goto out;
	}
	rc = dd_state_read(rx->state_fd, SESSION_FILE, buf, sizeof(buf));
	if (rc >= 0 && (dd_state_get_u64(buf, "session", &session) != 0 ||
			dd_state_get_u64(buf, "seq", &seq) != 0 || session > UINT32_MAX)) {
		fprintf(stderr, "%s/%s: unreadable; remove it only if you accept that old "
			"datagrams could be replayed once\n", dd_config_str(cfg, "state", "dir"),
			SESSION_FILE);
		rc = -EINVAL;
		goto out;
	}
	if (rc >= 0 && dd_state_get_u64(buf, "checked", &checked) == 0 && checked <= UINT32_MAX) {
		rx->checked_below = rx->persisted_checked = (uint32_t)checked;
		rx->checked_known = true;
	}
	rc = -EINVAL;
	dd_crypto_rx_set_floor(rx->crypto, (uint32_t)session, seq);
	rx->session = (uint32_t)session;
	rx->persisted_seq = seq;
	if (dd_config_has(cfg, "log", "audit") &&
	    dd_audit_open(dd_config_str(cfg, "log", "audit"), err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: [log] audit: %s\n", dd_config_where(cfg, "log", "audit"), err);
		goto out;
	}
	if (check_only) {
		rc = 0;
		goto out;
	}
	for (unsigned i = 0; i < set->nlisten; i++) {
		int fd = dd_net_udp_receiver(&set->listen[i], set->rcvbuf, &granted, err,
					     sizeof(err));

		if (fd < 0) {
			fprintf(stderr, "%s: [link] listen: %s\n",
				dd_config_where(cfg, "link", "listen"), err);
			goto out;
		}
		rx->socks[rx->nsocks++] = fd;
		if (granted < set->rcvbuf && i == 0)
			dd_warn("receive buffer is %" PRIu64 " bytes, not the %" PRIu64 " asked for "
				"by [link] rcvbuf: bursts may be dropped; raise the cap with "
				"'sysctl -w net.core.rmem_max=%" PRIu64 "'", granted, set->rcvbuf,
				set->rcvbuf);
	}
	rc = 0;
out:
	sodium_free(secret);
	return rc;
}

/* Drop privileges and confine the process to the directories it writes. */
static int
restrict_process(struct rx *rx, const struct dd_config *cfg, struct dd_sandbox *sb)
{
	char err[1024];

	dd_sandbox_allow(sb, rx->set.inbox, true);
	dd_sandbox_allow(sb, rx->set.staging, true);
	dd_sandbox_allow(sb, rx->set.quarantine, true);
	dd_sandbox_allow(sb, dd_config_str(cfg, "state", "dir"), true);
	dd_sandbox_allow(sb, dd_config_str(cfg, "log", "audit"), true);
	rx_monitoring_sandbox(rx, sb);
	/* Nothing may ever be sent through the diode socket. */
	for (unsigned i = 0; i < rx->nsocks; i++)
		dd_sandbox_link_socket(sb, rx->socks[i]);
	streams_sandbox(rx, sb);
	if (rx->set.workers > 0)
		dd_sandbox_allow_threads(sb); /* the disk thread, started after: it inherits it */
	if (dd_sandbox_apply(sb, err, sizeof(err)) != 0) {
		dd_error("%s", err);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static struct rx rx;
	struct dd_config *cfg = NULL;
	const char *config_path = NULL;
	bool check_only = false, verbose = false;
	char err[1024], where[RX_LISTEN_MAX * 82];
	struct dd_sandbox sb;
	int opt, rc = 1;

	while ((opt = getopt(argc, argv, "c:nvh")) != -1) {
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
	if (config_path == NULL || (optind != argc && !(optind + 1 == argc &&
						 strcmp(argv[optind], "status") == 0))) {
		usage(stderr);
		return 2;
	}
	if (optind + 1 == argc) {
		if (dd_config_load(&cfg, config_path, rx_schema, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s\n", err);
			return 2;
		}
		rc = status_print(dd_config_str(cfg, "state", "dir"));
		dd_config_free(cfg);
		return rc;
	}
	if (dd_crypto_init() != 0) {
		fprintf(stderr, "diode-rx: libsodium failed to initialise\n");
		return 1;
	}
	if (dd_config_load(&cfg, config_path, rx_schema, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	dd_log_init("diode-rx", verbose ? DD_LOG_DEBUG : level_from(dd_config_str(cfg, "log", "level")));
	rx.inbox_fd = rx.staging_fd = rx.quarantine_fd = rx.state_fd = -1;
	rx.reject_rl.interval_ms = REJECT_REPORT_MS;
	if (dd_sandbox_from_config(&sb, cfg, DD_SANDBOX_RX, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	if (setup(&rx, cfg, check_only) != 0 || rx_monitoring_open(&rx, cfg) != 0)
		goto out;
	if (streams_open(&rx, cfg, check_only) != 0)
		goto out;
	if (check_only) {
		printf("configuration OK\n");
		rc = 0;
		goto out;
	}
	rx.loop = uv_default_loop();
	if (reasm_init(&rx) != 0 || dd_fec_new(&rx.fec) != 0 || receiver_start(&rx) != 0) {
		dd_error("out of memory setting up reassembly");
		goto out;
	}
	rx.journal_fd = -1;
	if (partial_open(&rx, rx.session) != 0) {
		dd_error("[state] dir: cannot keep the finished-transfer journal; refusing to run "
			 "(a restart could deliver files twice)");
		goto out;
	}
	writer_clean_staging(&rx);
	partial_load_all(&rx, rx.session);
	uv_timer_init(rx.loop, &rx.tick_timer);
	rx.tick_timer.data = &rx;
	uv_timer_start(&rx.tick_timer, on_tick, TICK_MS, TICK_MS);
	uv_signal_init(rx.loop, &rx.sig_term);
	uv_signal_init(rx.loop, &rx.sig_int);
	uv_signal_init(rx.loop, &rx.sig_hup);
	rx.sig_term.data = rx.sig_int.data = rx.sig_hup.data = &rx;
	uv_signal_start(&rx.sig_term, on_signal, SIGTERM);
	uv_signal_start(&rx.sig_int, on_signal, SIGINT);
	uv_signal_start(&rx.sig_hup, on_signal, SIGHUP);
	if (restrict_process(&rx, cfg, &sb) != 0)
		goto out;
	disk_start(&rx);
	streams_start(&rx);
	rx_metrics_start(&rx);
	where[0] = '\0';
	for (unsigned i = 0; i < rx.set.nlisten; i++) {
		char one[80];
		size_t used = strlen(where);

		dd_net_format(&rx.set.listen[i], one, sizeof(one));
		snprintf(where + used, sizeof(where) - used, "%s%s", i > 0 ? ", " : "", one);
	}
	if (rx.set.workers > 1)
		dd_notice("[link] workers = %u: diode-rx uses one helper thread (the disk thread)",
			  rx.set.workers);
	dd_notice("listening on %s; delivering into %s; staging writes and SHA-256 %s", where,
		  rx.set.inbox, rx.disk != NULL ? "on the disk thread" : "on the event loop thread");
	uv_run(rx.loop, UV_RUN_DEFAULT);
	rx_metrics_write(&rx);
	dd_notice("stopped: %" PRIu64 " files delivered, %" PRIu64 " failed",
		  rx.delivered_before + rx.c.files_delivered, rx.failed_before + rx.c.files_failed);
	rc = 0;
out:
	disk_stop(&rx);
	streams_close(&rx);
	reasm_free(&rx);
	dd_fec_free(rx.fec);
	dd_crypto_rx_free(rx.crypto);
	dd_config_free(cfg);
	dd_audit_close();
	rx_monitoring_close(&rx);
	return rc;
}
