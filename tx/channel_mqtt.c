/* MQTT input of a stream channel: a QoS 1 subscriber whose messages become MQTT records (listen = mqtt://HOST:PORT/FILTER). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "config.h"
#include "log.h"
#include "mqttconn.h"
#include "mqttrec.h"
#include "sandbox.h"
#include "tx.h"

#define KEEPALIVE_S 30
#define FILTER_MAX 1024

struct tx_mqtt {
	struct tx_channel *ch;
	struct dd_mqttc *conn;
	struct dd_addr addr;
	char filter[FILTER_MAX];
	char where[300];
	uint8_t *buf;     /* one encoded record, max_record bytes */
	size_t cap;
};

/* ---------------------------------------------------------------- callbacks */

static void
on_up(void *arg)
{
	struct tx_mqtt *m = arg;
	int rc;

	/* QoS 1; the retain flag as the publisher set it (MQTT v5); retained
	 * messages only when the subscription is new, not at every reconnection
	 * of a session the broker kept. */
	rc = mosquitto_subscribe_v5(dd_mqttc_mosq(m->conn), NULL, m->filter, 1,
				    MQTT_SUB_OPT_RETAIN_AS_PUBLISHED | MQTT_SUB_OPT_SEND_RETAIN_NEW, NULL);
	if (rc != MOSQ_ERR_SUCCESS)
		dd_error("%s: cannot subscribe to '%s': %s", m->where, m->filter,
			 mosquitto_strerror(rc));
}

static void
on_message(void *arg, const struct mosquitto_message *msg)
{
	struct tx_mqtt *m = arg;
	struct dd_mqttrec r = {
		.topic = msg->topic,
		.topic_len = msg->topic != NULL ? strlen(msg->topic) : 0,
		.payload = msg->payload,
		.payload_len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0,
		.retain = msg->retain,
		.qos = msg->qos >= 0 && msg->qos <= 2 ? (uint8_t)msg->qos : 1,
	};
	int len;

	if (!dd_mqttrec_topic_valid(r.topic, r.topic_len)) {
		channel_refuse(m->ch, CHANNEL_REFUSED_INPUT);
		return;
	}
	if (dd_mqttrec_len(&r) > m->cap) {
		channel_refuse(m->ch, CHANNEL_REFUSED_LONG);
		return;
	}
	len = dd_mqttrec_encode(m->buf, m->cap, &r);
	if (len < 0) {
		channel_refuse(m->ch, len == -EMSGSIZE ? CHANNEL_REFUSED_LONG : CHANNEL_REFUSED_INPUT);
		return;
	}
	channel_record(m->ch, m->buf, (size_t)len);
}

/* ---------------------------------------------------------------- API */

int
mqtt_input_open(struct tx_mqtt **out, struct tx_channel *ch, const struct dd_config *cfg,
		const char *section, const char *channel, const char *url, bool check_only)
{
	const char *where = dd_config_where(cfg, section, "listen");
	struct dd_mqttc_cb cb = { .up = on_up, .message = on_message };
	struct dd_mqttc_opts o;
	char err[512], id[DD_MQTT_CLIENT_ID_MAX + 1], password[DD_MQTT_PASSWORD_MAX];
	const char *filter, *user = NULL;
	struct tx_mqtt *m;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		fprintf(stderr, "out of memory\n");
		return -ENOMEM;
	}
	*out = m;
	m->ch = ch;
	snprintf(m->where, sizeof(m->where), "[%s] %.200s", section, url);
	if (dd_mqttc_parse_url(url, &m->addr, &filter, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: [%s] listen: %s (listen = mqtt://HOST:PORT/TOPIC-FILTER)\n",
			where, section, err);
		return -EINVAL;
	}
	if (filter[0] == '\0' || strlen(filter) >= sizeof(m->filter) ||
	    mosquitto_sub_topic_check(filter) != MOSQ_ERR_SUCCESS ||
	    mosquitto_validate_utf8(filter, (int)strlen(filter)) != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "%s: [%s] listen: '%s': needs a valid MQTT topic filter after the "
			"port, such as mqtt://127.0.0.1:1883/plant/# ('+' and '#' only as whole "
			"levels)\n", where, section, url);
		return -EINVAL;
	}
	snprintf(m->filter, sizeof(m->filter), "%s", filter);
	rc = dd_mqttc_config_identity(cfg, section, "diode-tx", channel, id, &user, password);
	if (rc != 0)
		return rc;
	if (check_only) {
		explicit_bzero(password, sizeof(password));
		return 0;
	}
	m->cap = channel_max_record(ch);
	m->buf = malloc(m->cap > 0 ? m->cap : 1);
	o = (struct dd_mqttc_opts){
		.where = m->where,
		.addr = &m->addr,
		.client_id = id,
		.clean_start = false,
		.session_expiry_s = (uint32_t)(dd_config_u64(cfg, section, "mqtt_session_expiry") / 1000),
		.username = user,
		.password = dd_config_has(cfg, section, "mqtt_password_file") ? password : NULL,
		.keepalive_s = KEEPALIVE_S,
	};
	/* Without a session kept by the broker, a clean start each time. */
	o.clean_start = o.session_expiry_s == 0;
	rc = m->buf == NULL ? -ENOMEM : dd_mqttc_new(&m->conn, &o, &cb, m, err, sizeof(err));
	explicit_bzero(password, sizeof(password));
	if (rc != 0) {
		fprintf(stderr, "%s: [%s] listen: %s: %s\n", where, section, url,
			m->buf == NULL ? "out of memory" : err);
		return rc;
	}
	return 0;
}

void
mqtt_input_sandbox(const struct tx_mqtt *m, struct dd_sandbox *sb)
{
	const struct sockaddr_storage *ss = &m->addr.ss;

	dd_sandbox_allow_tcp_connect(
		sb, ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
						    : ((const struct sockaddr_in *)ss)->sin_port));
}

void
mqtt_input_start(struct tx_mqtt *m, uv_loop_t *loop)
{
	if (m->conn != NULL)
		dd_mqttc_start(m->conn, loop);
}

void
mqtt_input_stop(struct tx_mqtt *m)
{
	if (m != NULL)
		dd_mqttc_stop(m->conn);
}

void
mqtt_input_free(struct tx_mqtt *m)
{
	if (m == NULL)
		return;
	dd_mqttc_free(m->conn);
	free(m->buf);
	free(m);
}
