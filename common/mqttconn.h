/* An MQTT client connection driven by the libuv loop without threads: reconnection with backoff, keepalive, callbacks. */
#ifndef DD_MQTTCONN_H
#define DD_MQTTCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net.h"

struct mosquitto;
struct mosquitto_message;

/*
 * libmosquitto does the MQTT protocol; this module owns its socket's place in
 * the loop: a uv_poll_t for readable/writable (mosquitto_loop_read/write), a
 * timer for keepalive (mosquitto_loop_misc), connection attempts with
 * exponential backoff (0.1 s .. 5 s), and a CONNACK deadline.
 *
 * Each attempt starts from a fresh libmosquitto state (mosquitto_reinitialise):
 * nothing libmosquitto queued for an earlier connection is sent again by it;
 * the caller resends what it needs after up(). An attempt first probes the
 * broker with a non-blocking TCP connect, and only once that succeeded asks
 * libmosquitto to connect (its MQTT v5 connect with properties exists only in
 * a blocking form): the loop never waits for a broker that does not answer.
 *
 * MQTT v5 is used, so that a subscription can keep the retain flag of the
 * messages as published, and the session expiry interval is sent.
 *
 * WARNING: the callbacks run from inside libmosquitto calls; they may publish
 * or subscribe, but must not call dd_mqttc_stop or dd_mqttc_free.
 */
struct dd_mqttc;

struct dd_mqttc_opts {
	const char *where;         /* for messages: "[channel.x] mqtt://host:1883" */
	const struct dd_addr *addr; /* broker, resolved */
	const char *client_id;
	bool clean_start;
	uint32_t session_expiry_s; /* kept by the broker after a disconnect; 0: none */
	const char *username;      /* NULL: none */
	const char *password;      /* NULL: none; copied */
	unsigned keepalive_s;      /* >= 5 */
};

struct dd_mqttc_cb {
	void (*up)(void *arg);                       /* CONNACK accepted: subscribe, publish */
	void (*down)(void *arg, const char *why);    /* an attempt failed or the connection ended */
	void (*message)(void *arg, const struct mosquitto_message *msg);
	/* PUBACK (QoS 1) or PUBCOMP (QoS 2) with the broker's reason code
	 * (>= 0x80: refused), or written (QoS 0, reason 0) */
	void (*published)(void *arg, int mid, int reason);
};

/* Creates the client (libmosquitto initialised once per process). 0, or a
 * negative errno with the reason in err. */
int dd_mqttc_new(struct dd_mqttc **out, const struct dd_mqttc_opts *o, const struct dd_mqttc_cb *cb,
		 void *arg, char *err, size_t errlen);
/* Starts the timer and the first attempt (the loop exists). */
void dd_mqttc_start(struct dd_mqttc *c, uv_loop_t *loop);
/* The libmosquitto handle, to subscribe and publish while up. */
struct mosquitto *dd_mqttc_mosq(struct dd_mqttc *c);
bool dd_mqttc_is_up(const struct dd_mqttc *c);
/* After a publish or subscribe: write what libmosquitto queued. */
void dd_mqttc_flush(struct dd_mqttc *c);
/* Drop the connection (if any) and try again after the backoff. */
void dd_mqttc_reset(struct dd_mqttc *c, const char *why);
/* Disconnect cleanly (best effort, without waiting) and close the handles.
 * dd_mqttc_free after the loop ran the close callbacks. */
void dd_mqttc_stop(struct dd_mqttc *c);
/* NULL is a no-op. */
void dd_mqttc_free(struct dd_mqttc *c);

/* "mqtt://HOST:PORT[/REST]": resolves HOST:PORT into addr and points *rest
 * at what follows the '/' (or at "" without one). -EINVAL with the reason in
 * err. */
int dd_mqttc_parse_url(const char *url, struct dd_addr *addr, const char **rest, char *err,
		       size_t errlen);

/* Reads a password file (first line, without its newline) into buf. Refused
 * when others may read it. 0, or a negative errno with the reason in err. */
int dd_mqttc_read_password(const char *path, char *buf, size_t len, char *err, size_t errlen);

#define DD_MQTT_CLIENT_ID_MAX 128  /* bytes of a client id, with its NUL */
#define DD_MQTT_PASSWORD_MAX 1024  /* bytes of a password, with its NUL */

struct dd_config;

/* The identity keys of a [channel.NAME] section, the same on both daemons:
 * mqtt_client_id (default "DEFAULT_PREFIX-CHANNEL") into id, mqtt_username
 * into *user (NULL: none; points into cfg) and the first line of
 * mqtt_password_file into password ("" when none). 0, or -EINVAL/-errno after
 * printing "FILE:LINE: [section] key: ..." on stderr. The caller wipes
 * password. */
int dd_mqttc_config_identity(const struct dd_config *cfg, const char *section,
			     const char *default_prefix, const char *channel,
			     char id[DD_MQTT_CLIENT_ID_MAX + 1], const char **user,
			     char password[DD_MQTT_PASSWORD_MAX]);

#endif
