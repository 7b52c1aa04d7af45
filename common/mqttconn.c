/* An MQTT client connection on the libuv loop: probe, connect, poll, keepalive, backoff. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "config.h"
#include "log.h"
#include "mqttconn.h"

#define TICK_MS 250
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNACK_MS 10000       /* an attempt without CONNACK by then is given up */
#define STILL_DOWN_MS 60000    /* "still down" at most this often */
#define PACKETS_PER_WAKE 64

enum conn_state { ST_DOWN, ST_PROBING, ST_CONNECTING, ST_UP, ST_STOPPED };

struct dd_mqttc {
	struct mosquitto *mosq;
	uv_loop_t *loop;
	uv_timer_t timer;
	bool timer_init;
	uv_poll_t *poll;        /* on the probe socket, then on libmosquitto's */
	int probe_fd;
	enum conn_state st;
	struct dd_mqttc_cb cb;
	void *arg;
	char where[300];
	struct dd_addr addr;
	char host[64];
	int port;
	char *client_id, *username, *password;
	bool clean_start;
	uint32_t session_expiry_s;
	unsigned keepalive_s;
	uint64_t retry_at_ms, backoff_ms, since_ms, down_since_ms, down_logged_ms;
	bool down_reported;
	char lost[160];         /* set by libmosquitto's callbacks */
};

static bool lib_ready;

static void attempt(struct dd_mqttc *c);
static void on_mosq_socket(uv_poll_t *p, int status, int events);

/* ---------------------------------------------------------------- helpers */

static void
poll_closed(uv_handle_t *h)
{
	free(h);
}

static void
poll_close(struct dd_mqttc *c)
{
	if (c->poll == NULL)
		return;
	uv_poll_stop(c->poll);
	uv_close((uv_handle_t *)c->poll, poll_closed);
	c->poll = NULL;
}

static const char *
mosq_error(int rc, char *buf, size_t len)
{
	if (rc == MOSQ_ERR_ERRNO)
		snprintf(buf, len, "%s", strerror(errno));
	else
		snprintf(buf, len, "%s", mosquitto_strerror(rc));
	return buf;
}

/* The connection or the attempt ended: report, and try again later. */
static void
lost(struct dd_mqttc *c, const char *why)
{
	uint64_t now = dd_mono_ms();
	bool was_up = c->st == ST_UP;

	poll_close(c);
	if (c->probe_fd >= 0) {
		close(c->probe_fd);
		c->probe_fd = -1;
	}
	if (c->st == ST_STOPPED)
		return;
	c->st = ST_DOWN;
	c->retry_at_ms = now + c->backoff_ms;
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
	if (!c->down_reported) {
		c->down_reported = true;
		c->down_since_ms = c->down_logged_ms = now;
		dd_warn("%s: %s (%s); trying again every %d s at most", c->where,
			was_up ? "connection to the broker lost" : "cannot connect to the broker", why,
			BACKOFF_MAX_MS / 1000);
	} else if (now - c->down_logged_ms >= STILL_DOWN_MS) {
		c->down_logged_ms = now;
		dd_warn("%s: broker still unreachable after %" PRIu64 " s (%s); check that it runs "
			"and that this host may connect to it", c->where,
			(now - c->down_since_ms) / 1000, why);
	}
	if (c->cb.down != NULL)
		c->cb.down(c->arg, why);
}

static void
update_events(struct dd_mqttc *c)
{
	int ev;

	if (c->poll == NULL || (c->st != ST_CONNECTING && c->st != ST_UP))
		return;
	ev = UV_READABLE | (mosquitto_want_write(c->mosq) ? UV_WRITABLE : 0);
	uv_poll_start(c->poll, ev, on_mosq_socket);
}

/* ---------------------------------------------------------------- libmosquitto callbacks */

static void
on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	struct dd_mqttc *c = obj;

	(void)mosq;
	if (rc != 0) {
		snprintf(c->lost, sizeof(c->lost), "the broker refused the connection: %s",
			 mosquitto_reason_string(rc));
		return;
	}
	c->st = ST_UP;
	c->backoff_ms = BACKOFF_MIN_MS;
	if (c->down_reported)
		dd_notice("%s: connected to the broker again after %" PRIu64 " s", c->where,
			  (dd_mono_ms() - c->down_since_ms) / 1000);
	else
		dd_notice("%s: connected to the broker", c->where);
	c->down_reported = false;
	if (c->cb.up != NULL)
		c->cb.up(c->arg);
}

static void
on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	struct dd_mqttc *c = obj;

	(void)mosq;
	if (c->lost[0] == '\0')
		snprintf(c->lost, sizeof(c->lost), "%s",
			 rc == 0 ? "disconnected" : "connection closed or broken");
}

static void
on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
	struct dd_mqttc *c = obj;

	(void)mosq;
	if (c->cb.message != NULL)
		c->cb.message(c->arg, msg);
}

static void
on_publish(struct mosquitto *mosq, void *obj, int mid, int reason, const mosquitto_property *props)
{
	struct dd_mqttc *c = obj;

	(void)mosq;
	(void)props;
	if (c->cb.published != NULL)
		c->cb.published(c->arg, mid, reason);
}

/* A fresh libmosquitto state with our options and callbacks. */
static int
setup(struct dd_mqttc *c, bool first)
{
	int rc;

	if (first) {
		c->mosq = mosquitto_new(c->client_id, c->clean_start, c);
		if (c->mosq == NULL)
			return errno != 0 ? -errno : -ENOMEM;
	} else {
		rc = mosquitto_reinitialise(c->mosq, c->client_id, c->clean_start, c);
		if (rc != MOSQ_ERR_SUCCESS)
			return -ENOMEM;
	}
	(void)mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	(void)mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_connect_callback_set(c->mosq, on_connect);
	mosquitto_disconnect_callback_set(c->mosq, on_disconnect);
	mosquitto_message_callback_set(c->mosq, on_message);
	mosquitto_publish_v5_callback_set(c->mosq, on_publish);
	if (c->username != NULL &&
	    mosquitto_username_pw_set(c->mosq, c->username, c->password) != MOSQ_ERR_SUCCESS)
		return -ENOMEM;
	return 0;
}

/* ---------------------------------------------------------------- the socket */

static void
check_lost(struct dd_mqttc *c, int rc)
{
	char buf[128];

	if (c->lost[0] != '\0') {
		char why[sizeof(c->lost)];

		memcpy(why, c->lost, sizeof(why));
		c->lost[0] = '\0';
		lost(c, why);
		return;
	}
	if (rc != MOSQ_ERR_SUCCESS) {
		lost(c, mosq_error(rc, buf, sizeof(buf)));
		return;
	}
	update_events(c);
}

static void
on_mosq_socket(uv_poll_t *p, int status, int events)
{
	struct dd_mqttc *c = p->data;
	int rc = MOSQ_ERR_SUCCESS;

	if (status < 0 || (events & UV_READABLE))
		rc = mosquitto_loop_read(c->mosq, PACKETS_PER_WAKE);
	if (rc == MOSQ_ERR_SUCCESS && c->lost[0] == '\0' && (events & UV_WRITABLE) &&
	    c->poll != NULL)
		rc = mosquitto_loop_write(c->mosq, PACKETS_PER_WAKE);
	check_lost(c, rc);
}

/* The probe answered: let libmosquitto connect (at once: the broker is there). */
static void
probe_done(struct dd_mqttc *c)
{
	mosquitto_property *props = NULL;
	char buf[128];
	int rc, fd;

	poll_close(c);
	close(c->probe_fd);
	c->probe_fd = -1;
	if (c->session_expiry_s > 0 &&
	    mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
					 c->session_expiry_s) != MOSQ_ERR_SUCCESS) {
		lost(c, "out of memory");
		return;
	}
	c->lost[0] = '\0';
	rc = mosquitto_connect_bind_v5(c->mosq, c->host, c->port, (int)c->keepalive_s, NULL, props);
	mosquitto_property_free_all(&props);
	if (rc != MOSQ_ERR_SUCCESS) {
		lost(c, mosq_error(rc, buf, sizeof(buf)));
		return;
	}
	fd = mosquitto_socket(c->mosq);
	c->poll = malloc(sizeof(*c->poll));
	if (fd < 0 || c->poll == NULL || uv_poll_init(c->loop, c->poll, fd) != 0) {
		free(c->poll);
		c->poll = NULL;
		lost(c, "cannot poll the connection");
		return;
	}
	c->poll->data = c;
	c->st = ST_CONNECTING;
	c->since_ms = dd_mono_ms();
	uv_poll_start(c->poll, UV_READABLE | UV_WRITABLE, on_mosq_socket);
}

static void
on_probe(uv_poll_t *p, int status, int events)
{
	struct dd_mqttc *c = p->data;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)events;
	if (getsockopt(c->probe_fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0 && status < 0)
		err = -status;
	if (err != 0) {
		lost(c, strerror(err));
		return;
	}
	probe_done(c);
}

static void
attempt(struct dd_mqttc *c)
{
	int fd, rc;

	rc = setup(c, false);
	if (rc != 0) {
		lost(c, strerror(-rc));
		return;
	}
	fd = socket(c->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		lost(c, strerror(errno));
		return;
	}
	c->probe_fd = fd;
	c->st = ST_PROBING;
	c->since_ms = dd_mono_ms();
	if (connect(fd, (const struct sockaddr *)&c->addr.ss, c->addr.len) == 0) {
		probe_done(c);
		return;
	}
	if (errno != EINPROGRESS) {
		lost(c, strerror(errno));
		return;
	}
	c->poll = malloc(sizeof(*c->poll));
	if (c->poll == NULL || uv_poll_init(c->loop, c->poll, fd) != 0) {
		free(c->poll);
		c->poll = NULL;
		lost(c, "cannot poll the connection");
		return;
	}
	c->poll->data = c;
	uv_poll_start(c->poll, UV_WRITABLE, on_probe);
}

static void
on_tick(uv_timer_t *t)
{
	struct dd_mqttc *c = t->data;
	uint64_t now = dd_mono_ms();

	switch (c->st) {
	case ST_DOWN:
		if (now >= c->retry_at_ms)
			attempt(c);
		break;
	case ST_PROBING:
	case ST_CONNECTING:
		if (now - c->since_ms >= CONNACK_MS) {
			lost(c, c->st == ST_PROBING ? "no answer to the TCP connection within 10 s"
						    : "no CONNACK within 10 s");
			break;
		}
		if (c->st == ST_CONNECTING)
			check_lost(c, mosquitto_loop_misc(c->mosq));
		break;
	case ST_UP:
		/* Keepalive: PINGREQ when due; a broker that stopped answering. */
		check_lost(c, mosquitto_loop_misc(c->mosq));
		break;
	case ST_STOPPED:
		break;
	}
}

/* ---------------------------------------------------------------- API */

int
dd_mqttc_new(struct dd_mqttc **out, const struct dd_mqttc_opts *o, const struct dd_mqttc_cb *cb,
	     void *arg, char *err, size_t errlen)
{
	struct dd_mqttc *c;
	int rc;

	*out = NULL;
	if (!lib_ready) {
		if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
			snprintf(err, errlen, "cannot initialise libmosquitto");
			return -ENOMEM;
		}
		lib_ready = true;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->probe_fd = -1;
	c->cb = *cb;
	c->arg = arg;
	c->addr = *o->addr;
	c->clean_start = o->clean_start;
	c->session_expiry_s = o->session_expiry_s;
	c->keepalive_s = o->keepalive_s < 5 ? 5 : o->keepalive_s;
	c->backoff_ms = BACKOFF_MIN_MS;
	snprintf(c->where, sizeof(c->where), "%s", o->where);
	rc = getnameinfo((const struct sockaddr *)&o->addr->ss, o->addr->len, c->host, sizeof(c->host),
			 NULL, 0, NI_NUMERICHOST);
	c->port = o->addr->ss.ss_family == AF_INET6 ?
			  ntohs(((const struct sockaddr_in6 *)&o->addr->ss)->sin6_port) :
			  ntohs(((const struct sockaddr_in *)&o->addr->ss)->sin_port);
	c->client_id = strdup(o->client_id);
	c->username = o->username != NULL ? strdup(o->username) : NULL;
	c->password = o->password != NULL ? strdup(o->password) : NULL;
	if (rc != 0 || c->client_id == NULL || (o->username != NULL && c->username == NULL) ||
	    (o->password != NULL && c->password == NULL) || setup(c, true) != 0) {
		snprintf(err, errlen, "%s", rc != 0 ? gai_strerror(rc) : "out of memory");
		dd_mqttc_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void
dd_mqttc_start(struct dd_mqttc *c, uv_loop_t *loop)
{
	c->loop = loop;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	c->timer_init = true;
	uv_timer_start(&c->timer, on_tick, TICK_MS, TICK_MS);
	c->st = ST_DOWN;
	c->retry_at_ms = 0;
	attempt(c);
}

struct mosquitto *
dd_mqttc_mosq(struct dd_mqttc *c)
{
	return c->mosq;
}

bool
dd_mqttc_is_up(const struct dd_mqttc *c)
{
	return c != NULL && c->st == ST_UP;
}

void
dd_mqttc_flush(struct dd_mqttc *c)
{
	if (c->st == ST_UP || c->st == ST_CONNECTING)
		check_lost(c, MOSQ_ERR_SUCCESS);
}

void
dd_mqttc_reset(struct dd_mqttc *c, const char *why)
{
	if (c->st == ST_UP || c->st == ST_CONNECTING || c->st == ST_PROBING)
		lost(c, why);
}

void
dd_mqttc_stop(struct dd_mqttc *c)
{
	if (c == NULL)
		return;
	if (c->st == ST_UP) {
		/* Best effort: the DISCONNECT goes if the socket takes it now. A
		 * session kept by the broker (clean_start off) stays. */
		if (mosquitto_disconnect(c->mosq) == MOSQ_ERR_SUCCESS)
			(void)mosquitto_loop_write(c->mosq, 1);
	}
	c->st = ST_STOPPED;
	poll_close(c);
	if (c->probe_fd >= 0) {
		close(c->probe_fd);
		c->probe_fd = -1;
	}
	if (c->timer_init) {
		uv_timer_stop(&c->timer);
		uv_close((uv_handle_t *)&c->timer, NULL);
		c->timer_init = false;
	}
}

void
dd_mqttc_free(struct dd_mqttc *c)
{
	if (c == NULL)
		return;
	if (c->probe_fd >= 0)
		close(c->probe_fd);
	if (c->mosq != NULL)
		mosquitto_destroy(c->mosq);
	if (c->password != NULL) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->username);
	free(c->client_id);
	free(c);
}

int
dd_mqttc_parse_url(const char *url, struct dd_addr *addr, const char **rest, char *err,
		   size_t errlen)
{
	const char *hp, *slash;
	char host[256];
	size_t n;

	*rest = "";
	if (strncmp(url, "mqtt://", 7) != 0) {
		snprintf(err, errlen, "'%s': expected mqtt://HOST:PORT", url);
		return -EINVAL;
	}
	hp = url + 7;
	slash = strchr(hp, '/');
	n = slash != NULL ? (size_t)(slash - hp) : strlen(hp);
	if (n == 0 || n >= sizeof(host)) {
		snprintf(err, errlen, "'%s': expected mqtt://HOST:PORT", url);
		return -EINVAL;
	}
	memcpy(host, hp, n);
	host[n] = '\0';
	if (dd_net_resolve(host, addr, err, errlen) != 0)
		return -EINVAL;
	if (slash != NULL)
		*rest = slash + 1;
	return 0;
}

int
dd_mqttc_read_password(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	ssize_t n;
	char *nl;

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0007) != 0) {
		snprintf(err, errlen, "%s: must be a regular file that others cannot read "
			 "(chmod 600 or 640)", path);
		close(fd);
		return -EPERM;
	}
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0 || (size_t)n >= len - 1) {
		snprintf(err, errlen, "%s: %s", path,
			 n < 0 ? strerror(errno) : "longer than a password can be");
		explicit_bzero(buf, len);
		return -EINVAL;
	}
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl != NULL)
		*nl = '\0';
	if (nl != NULL && nl > buf && nl[-1] == '\r')
		nl[-1] = '\0';
	return 0;
}

int
dd_mqttc_config_identity(const struct dd_config *cfg, const char *section,
			 const char *default_prefix, const char *channel,
			 char id[DD_MQTT_CLIENT_ID_MAX + 1], const char **user,
			 char password[DD_MQTT_PASSWORD_MAX])
{
	char err[512];
	int rc;

	*user = NULL;
	password[0] = '\0';
	if (dd_config_has(cfg, section, "mqtt_client_id"))
		snprintf(id, DD_MQTT_CLIENT_ID_MAX + 1, "%s",
			 dd_config_str(cfg, section, "mqtt_client_id"));
	else
		snprintf(id, DD_MQTT_CLIENT_ID_MAX + 1, "%s-%s", default_prefix, channel);
	if (mosquitto_validate_utf8(id, (int)strlen(id)) != MOSQ_ERR_SUCCESS ||
	    strlen(id) >= DD_MQTT_CLIENT_ID_MAX) {
		fprintf(stderr, "%s: [%s] mqtt_client_id: UTF-8 text of at most %d bytes\n",
			dd_config_where(cfg, section, "mqtt_client_id"), section,
			DD_MQTT_CLIENT_ID_MAX - 1);
		return -EINVAL;
	}
	if (dd_config_has(cfg, section, "mqtt_username"))
		*user = dd_config_str(cfg, section, "mqtt_username");
	if (!dd_config_has(cfg, section, "mqtt_password_file"))
		return 0;
	if (*user == NULL) {
		fprintf(stderr, "%s: [%s] mqtt_password_file needs mqtt_username as well\n",
			dd_config_where(cfg, section, "mqtt_password_file"), section);
		return -EINVAL;
	}
	rc = dd_mqttc_read_password(dd_config_str(cfg, section, "mqtt_password_file"), password,
				    DD_MQTT_PASSWORD_MAX, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "%s: [%s] mqtt_password_file: %s\n",
			dd_config_where(cfg, section, "mqtt_password_file"), section, err);
	return rc;
}
