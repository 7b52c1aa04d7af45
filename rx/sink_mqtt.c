/* MQTT sink of a stream channel: republishes MQTT records to a broker, in order, at least once (sink = mqtt://HOST:PORT). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <mosquitto.h>

#include "config.h"
#include "log.h"
#include "mqttconn.h"
#include "mqttrec.h"
#include "recq.h"
#include "rx.h"
#include "sandbox.h"

#define MQTT_MEM (1024 * 1024) /* memory part of the sink's buffer */
#define WINDOW 64              /* messages published, not yet acknowledged */
#define KEEPALIVE_S 30
#define TOPIC_MAX 65535        /* MQTT's longest topic name */
#define PREFIX_MAX 1024

/* A published message waiting for its PUBACK (a copy of its record). */
struct flight {
	uint8_t *rec;
	size_t len;
	uint64_t seq; /* 0 when it came back from the buffer (seq unknown) */
	int mid;      /* 0: not sent on this connection */
	bool acked;
};

struct rx_mqtt {
	struct rx_sink *sink;
	char section[80], channel[72], target[256], where[300];
	struct dd_mqttc *conn;
	struct dd_addr addr;
	struct dd_recq *q;
	uint64_t buffer_bytes;
	char prefix[PREFIX_MAX];
	size_t prefix_len;
	int qos;
	char *topic;                /* prefix + topic + NUL */
	struct flight win[WINDOW];  /* ring: oldest at head */
	unsigned head, n;
	bool down_reported;
	uint64_t down_since_ms;
	uint64_t published, acked, refused;
};

static struct dd_ratelimit mqtt_rl = { .interval_ms = 10000 };

static void pump(struct rx_mqtt *m);

static struct flight *
win_at(struct rx_mqtt *m, unsigned i)
{
	return &m->win[(m->head + i) % WINDOW];
}

/* Errors of publishing that are about the message, not the connection. */
static bool
message_error(int rc)
{
	return rc == MOSQ_ERR_INVAL || rc == MOSQ_ERR_PAYLOAD_SIZE ||
	       rc == MOSQ_ERR_OVERSIZE_PACKET || rc == MOSQ_ERR_MALFORMED_UTF8 ||
	       rc == MOSQ_ERR_QOS_NOT_SUPPORTED || rc == MOSQ_ERR_NOT_SUPPORTED;
}

/* Publish one message of the window on the current connection; false when
 * the connection failed (it is then reset). A message the broker or
 * libmosquitto cannot take is dropped with a report. */
static bool
publish(struct rx_mqtt *m, struct flight *f)
{
	struct dd_mqttrec r;
	int rc, mid = 0;

	if (dd_mqttrec_parse(&r, f->rec, f->len) != 0) {
		f->acked = true; /* checked when it came in; cannot happen */
		return true;
	}
	memcpy(m->topic + m->prefix_len, r.topic, r.topic_len);
	m->topic[m->prefix_len + r.topic_len] = '\0';
	rc = mosquitto_publish_v5(dd_mqttc_mosq(m->conn), &mid, m->topic, (int)r.payload_len,
				  r.payload, m->qos, r.retain, NULL);
	if (rc != MOSQ_ERR_SUCCESS && message_error(rc)) {
		m->refused++;
		sink_drop(m->sink, f->seq, 1, "the broker or libmosquitto refused the message",
			  mosquitto_strerror(rc));
		f->acked = true;
		return true;
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		dd_mqttc_reset(m->conn, mosquitto_strerror(rc));
		return false;
	}
	f->mid = mid;
	m->published++;
	if (m->qos == 0) {
		/* Nothing will acknowledge it: handed to libmosquitto is all there is
		 * (its on_publish may even have run already, inside the call). */
		f->acked = true;
		m->acked++;
	}
	return true;
}

/* Forget the acknowledged messages at the front of the window. */
static void
win_trim(struct rx_mqtt *m)
{
	while (m->n > 0 && win_at(m, 0)->acked) {
		struct flight *f = win_at(m, 0);

		free(f->rec);
		memset(f, 0, sizeof(*f));
		m->head = (m->head + 1) % WINDOW;
		m->n--;
	}
}

/* Put a record at the end of the window, and publish it when connected. */
static bool
win_add(struct rx_mqtt *m, uint64_t seq, const uint8_t *rec, size_t len)
{
	struct flight *f;

	win_trim(m);
	if (m->n == WINDOW)
		return false;
	f = win_at(m, m->n);
	f->rec = malloc(len > 0 ? len : 1);
	if (f->rec == NULL)
		return false;
	memcpy(f->rec, rec, len);
	f->len = len;
	f->seq = seq;
	f->mid = 0;
	f->acked = false;
	m->n++;
	if (dd_mqttc_is_up(m->conn))
		(void)publish(m, f);
	return true;
}

/* Move records from the buffer into the window while it has room. */
static void
pump(struct rx_mqtt *m)
{
	while (m->n < WINDOW && dd_mqttc_is_up(m->conn)) {
		const uint8_t *rec;
		size_t len;

		if (dd_recq_peek(m->q, &rec, &len) != 0 || !win_add(m, 0, rec, len))
			break;
		dd_recq_pop(m->q);
	}
	if (dd_mqttc_is_up(m->conn))
		dd_mqttc_flush(m->conn);
}

/* ---------------------------------------------------------------- connection */

static void
on_up(void *arg)
{
	struct rx_mqtt *m = arg;
	struct dd_audit_event ev;
	uint64_t waiting = dd_recq_records(m->q) + m->n;

	if (m->down_reported) {
		m->down_reported = false;
		dd_notice("[%s] sink %s is up again after %" PRIu64 " ms; publishing the %" PRIu64
			  " records that waited", m->section, m->target,
			  dd_mono_ms() - m->down_since_ms, waiting);
	}
	dd_audit_begin(&ev, "sink_up");
	dd_audit_str(&ev, "channel", m->channel);
	dd_audit_str(&ev, "sink", m->target);
	dd_audit_u64(&ev, "waiting", waiting);
	dd_audit_commit(&ev);
	/* What was not acknowledged on the last connection goes again, in order
	 * (the broker may have had some: duplicates, never gaps). */
	for (unsigned i = 0; i < m->n; i++) {
		struct flight *f = win_at(m, i);

		if (!f->acked && !publish(m, f))
			return;
	}
	pump(m);
}

static void
on_down(void *arg, const char *why)
{
	struct rx_mqtt *m = arg;

	for (unsigned i = 0; i < m->n; i++)
		win_at(m, i)->mid = 0;
	if (m->down_reported)
		return;
	m->down_reported = true;
	m->down_since_ms = dd_mono_ms();
	sink_report_down(m->section, m->channel, m->target, why, m->buffer_bytes);
}

static void
on_published(void *arg, int mid, int reason)
{
	struct rx_mqtt *m = arg;

	for (unsigned i = 0; i < m->n; i++) {
		struct flight *f = win_at(m, i);

		if (f->mid != mid || f->acked)
			continue;
		f->acked = true;
		if (reason >= 0x80) {
			/* Refused for good (not authorised, topic name invalid, quota,
			 * payload format...): sending it again would not help. */
			m->refused++;
			sink_drop(m->sink, f->seq, 1, "the broker refused the message",
				  mosquitto_reason_string(reason));
		} else {
			m->acked++;
		}
		break;
	}
	win_trim(m);
	/* More from the buffer once the callback returned (sink_tick, sink_flush). */
}

/* ---------------------------------------------------------------- API */

int
mqtt_sink_open(struct rx_mqtt **out, struct rx_sink *s, const struct dd_config *cfg,
	       const char *section, const char *channel, const char *spec, int state_fd,
	       bool check_only)
{
	const char *where = dd_config_where(cfg, section, "sink");
	struct dd_mqttc_cb cb = { .up = on_up, .down = on_down, .published = on_published };
	char err[512], note[512], name[128], id[DD_MQTT_CLIENT_ID_MAX + 1], password[DD_MQTT_PASSWORD_MAX];
	const char *rest, *user = NULL;
	struct dd_mqttc_opts o;
	uint64_t recovered = 0;
	struct rx_mqtt *m;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		fprintf(stderr, "out of memory\n");
		return -ENOMEM;
	}
	*out = m;
	m->sink = s;
	snprintf(m->section, sizeof(m->section), "%s", section);
	snprintf(m->channel, sizeof(m->channel), "%s", channel);
	snprintf(m->target, sizeof(m->target), "%s", spec);
	snprintf(m->where, sizeof(m->where), "[%s] sink %.200s", section, spec);
	if (dd_mqttc_parse_url(spec, &m->addr, &rest, err, sizeof(err)) != 0 || rest[0] != '\0') {
		fprintf(stderr, "%s: [%s] sink: %s (sink = mqtt://HOST:PORT; a topic prefix goes in "
			"mqtt_topic_prefix)\n", where, section,
			rest[0] != '\0' ? "nothing may follow the port" : err);
		return -EINVAL;
	}
	if (dd_config_has(cfg, section, "records") &&
	    strcmp(dd_config_str(cfg, section, "records"), "mqtt") != 0) {
		fprintf(stderr, "%s: [%s] records: an mqtt:// sink takes MQTT records only; remove "
			"the key or set records = mqtt\n", dd_config_where(cfg, section, "records"),
			section);
		return -EINVAL;
	}
	if (dd_config_has(cfg, section, "mqtt_topic_prefix")) {
		const char *p = dd_config_str(cfg, section, "mqtt_topic_prefix");

		if (strlen(p) >= sizeof(m->prefix) || !dd_mqttrec_topic_valid(p, strlen(p))) {
			fprintf(stderr, "%s: [%s] mqtt_topic_prefix: '%s': at most %d bytes of "
				"UTF-8, without '+', '#' or control characters (such as ot/)\n",
				dd_config_where(cfg, section, "mqtt_topic_prefix"), section, p,
				PREFIX_MAX - 1);
			return -EINVAL;
		}
		snprintf(m->prefix, sizeof(m->prefix), "%s", p);
		m->prefix_len = strlen(m->prefix);
	}
	m->qos = (int)dd_config_u64(cfg, section, "mqtt_qos");
	rc = dd_mqttc_config_identity(cfg, section, "diode-rx", channel, id, &user, password);
	if (rc != 0)
		return rc;
	if (check_only) {
		explicit_bzero(password, sizeof(password));
		return 0;
	}
	o = (struct dd_mqttc_opts){
		.where = m->where,
		.addr = &m->addr,
		.client_id = id,
		.clean_start = true, /* what is not acknowledged is resent from here */
		.username = user,
		.password = dd_config_has(cfg, section, "mqtt_password_file") ? password : NULL,
		.keepalive_s = KEEPALIVE_S,
	};
	m->buffer_bytes = dd_config_u64(cfg, section, "buffer");
	m->topic = malloc(PREFIX_MAX + TOPIC_MAX + 1);
	if (m->topic != NULL)
		memcpy(m->topic, m->prefix, m->prefix_len);
	rc = m->topic == NULL ? -ENOMEM : dd_mqttc_new(&m->conn, &o, &cb, m, err, sizeof(err));
	explicit_bzero(password, sizeof(password));
	if (rc != 0) {
		fprintf(stderr, "%s: [%s] sink: %s: %s\n", where, section, spec,
			m->topic == NULL ? "out of memory" : err);
		return rc;
	}
	if (dd_recq_new(&m->q, MQTT_MEM, DD_RECORD_MAX) != 0) {
		fprintf(stderr, "out of memory\n");
		return -ENOMEM;
	}
	/* The same buffer as a tcp:// sink of this channel would use. */
	snprintf(name, sizeof(name), "channel-%s.sink", channel);
	rc = dd_recq_attach(m->q, state_fd, name, m->buffer_bytes, &recovered, note, sizeof(note));
	if (rc != 0) {
		fprintf(stderr, "%s: [%s] sink buffer in the state directory: %s\n", where, section,
			note);
		return rc;
	}
	if (note[0] != '\0')
		dd_notice("[%s] sink buffer %s", section, note);
	if (recovered > 0)
		dd_notice("[%s] %" PRIu64 " records from an earlier run wait for %s", section,
			  recovered, spec);
	return 0;
}

void
mqtt_sink_sandbox(const struct rx_mqtt *m, struct dd_sandbox *sb)
{
	const struct sockaddr_storage *ss = &m->addr.ss;

	dd_sandbox_allow_tcp_connect(
		sb, ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
						    : ((const struct sockaddr_in *)ss)->sin_port));
}

void
mqtt_sink_start(struct rx_mqtt *m, uv_loop_t *loop)
{
	dd_mqttc_start(m->conn, loop);
}

void
mqtt_sink_record(struct rx_mqtt *m, uint64_t seq, const uint8_t *rec, size_t len)
{
	struct dd_mqttrec r;
	int rc;

	if (dd_mqttrec_parse(&r, rec, len) != 0) {
		m->refused++;
		sink_drop(m->sink, seq, 1, "not an MQTT record (the channel's input on diode-tx "
			  "must be mqtt://)", NULL);
		return;
	}
	if (m->prefix_len + r.topic_len > TOPIC_MAX) {
		m->refused++;
		sink_drop(m->sink, seq, 1, "topic longer than MQTT allows with mqtt_topic_prefix",
			  NULL);
		return;
	}
	/* Straight into the window when nothing waits before it. */
	if (dd_recq_records(m->q) == 0 && win_add(m, seq, rec, len))
		return;
	rc = dd_recq_push(m->q, rec, len);
	if (rc == -ENOSPC)
		sink_drop(m->sink, seq, 1,
			  "the broker is down or slow and the sink buffer is full", NULL);
	else if (rc != 0)
		sink_drop(m->sink, seq, 1, "cannot write the sink buffer in the state directory",
			  strerror(-rc));
}

void
mqtt_sink_flush(struct rx_mqtt *m)
{
	pump(m);
}

void
mqtt_sink_tick(struct rx_mqtt *m, uint64_t now)
{
	pump(m);
	if (dd_recq_sync(m->q) != 0 && dd_ratelimit_ok(&mqtt_rl, now, NULL))
		dd_error("[%s] cannot write the sink buffer in the state directory", m->section);
}

void
mqtt_sink_stop(struct rx_mqtt *m)
{
	struct iovec front[WINDOW];
	uint64_t dropped = 0;
	unsigned n = 0;

	/* Messages not acknowledged go back in front of the buffer: they may
	 * reach the broker twice, never not at all. */
	for (unsigned i = 0; i < m->n; i++) {
		struct flight *f = win_at(m, i);

		if (!f->acked)
			front[n++] = (struct iovec){ f->rec, f->len };
	}
	if (dd_recq_save(m->q, front, n, &dropped) != 0)
		dd_error("[%s] cannot keep the sink buffer in the state directory; records "
			 "waiting for %s are lost", m->section, m->target);
	if (dropped > 0)
		dd_warn("[%s] %" PRIu64 " records waiting for %s did not fit in the sink buffer at "
			"stop and are lost", m->section, dropped, m->target);
	for (unsigned i = 0; i < m->n; i++) {
		struct flight *f = win_at(m, i);

		free(f->rec);
		memset(f, 0, sizeof(*f));
	}
	m->n = 0;
	dd_mqttc_stop(m->conn);
	dd_notice("[%s] sink %s: %" PRIu64 " messages published, %" PRIu64 " acknowledged, %" PRIu64
		  " records refused; %" PRIu64 " kept in the buffer for the next start", m->section,
		  m->target, m->published, m->acked, m->refused, dd_recq_records(m->q));
}

bool
mqtt_sink_is_up(const struct rx_mqtt *m)
{
	return dd_mqttc_is_up(m->conn);
}

uint64_t
mqtt_sink_backlog(const struct rx_mqtt *m)
{
	return dd_recq_records(m->q) + m->n;
}

void
mqtt_sink_free(struct rx_mqtt *m)
{
	if (m == NULL)
		return;
	for (unsigned i = 0; i < WINDOW; i++)
		free(m->win[i].rec);
	dd_mqttc_free(m->conn);
	dd_recq_free(m->q);
	free(m->topic);
	free(m);
}
