/* publisher.h -- the AMQP side: one connection (to one node of a cluster),
 * one channel in confirm mode,
 * the exchange declared at start, pipelined persistent mandatory publishes,
 * and a non-blocking reader for confirms, returns and blocked notices.
 *
 * rabbitmq-c 0.11 services heartbeats only while the caller reads or writes
 * and its publish blocks on a full socket, so the event loop calls
 * hms_pub_poll() whenever the socket is readable (and at least once a
 * second), and publishes only while hms_pub_writable() says the kernel has
 * room: a publish can then never stall the PostgreSQL side. */
#ifndef HMS_DAEMON_PUBLISHER_H
#define HMS_DAEMON_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/status.h"
#include "common/amqp_tls.h"

/* The fanout exchange rejected changes go to is named after the topic one:
 * hms.incidents.rejected beside hms.incidents. */
#define HMS_PUB_REJECTED_SUFFIX ".rejected"
/* The alternate exchange of the events exchange, and its queue:
 * hms.events.unrouted beside hms.events. */
#define HMS_PUB_UNROUTED_SUFFIX ".unrouted"

typedef struct {
    const char *url;      /* amqp:// or amqps://; a cluster's nodes comma-separated */
    hms_amqp_tls_t tls;   /* CA, client certificate, login method, password file */
    const char *exchange; /* declared topic, durable */
    /* Declared fanout, durable, and bound to exchange with '#', so clients
     * of a plain fanout exchange get every event; NULL: none. */
    const char *fanout_exchange;
    /* Declared topic, durable, with <events_exchange>.unrouted as its
     * alternate exchange: emitted events go here; NULL: hms.events. */
    const char *events_exchange;
    int heartbeat_s; /* 0 disables */
    int connect_timeout_ms;
} hms_pub_opts_t;

/* What the broker said; the loop implements these. */
typedef struct {
    void (*on_ack)(void *ctx, uint64_t tag, bool multiple);
    void (*on_nack)(void *ctx, uint64_t tag, bool multiple);
    /* A mandatory publish could not be routed.  message_id is borrowed for
     * the call. */
    void (*on_return)(void *ctx, const char *message_id, int reply_code, const char *reply_text);
    void (*on_blocked)(void *ctx, bool blocked, const char *reason);
} hms_pub_handlers_t;

typedef struct hms_pub hms_pub_t;

/* Validates an amqp(s):// URL without connecting: HMS_ERR_CONFIG and a
 * message naming the problem (never the password). */
hms_status_t hms_pub_check_url(const char *url, hms_err_t *err);

/* Connects to the first node of opts->url that answers, trying them in
 * order from first_node (an index into the list, wrapping around), logs in
 * (advertising connection.blocked), opens channel 1, enables confirms and
 * declares the exchange, its rejected exchange (fanout, durable), the
 * events exchange with its unrouted exchange and queue, and the fanout
 * exchange when there is one.  On success *out owns the connection;
 * release it with hms_pub_close(). */
hms_status_t hms_pub_connect(const hms_pub_opts_t *opts, int first_node, hms_pub_t **out,
                             hms_err_t *err);
void hms_pub_close(hms_pub_t *p);

int hms_pub_fd(const hms_pub_t *p);
/* True when rabbitmq-c already holds received bytes or frames, so the loop
 * must call hms_pub_poll() without waiting for the socket. */
bool hms_pub_pending_input(const hms_pub_t *p);
/* True when the broker has not blocked us and the socket's send queue has
 * room for a message of about len bytes, so a publish will not block.  The
 * queue is read from the kernel once per batch (after each flush). */
bool hms_pub_writable(hms_pub_t *p, size_t len);
bool hms_pub_blocked(const hms_pub_t *p);

/* Publishes ev (persistent, mandatory) and returns its delivery tag in *tag.
 * An emitted event goes to the events exchange.  A rejection (ev->reason not empty) goes to the
 * rejected exchange instead, not mandatory, with header x-reason and content type application/json.
 * On plain TCP the frames wait in a batch until hms_pub_flush(); call it
 * after the last publish of a turn.  Any failure means the connection is
 * lost: close it and reconnect. */
hms_status_t hms_pub_publish(hms_pub_t *p, const hms_event_t *ev, uint64_t *tag, hms_err_t *err);
/* Writes the batched frames: one send() when the kernel has room, as it
 * does when publishes kept to hms_pub_writable().  Waits for the socket
 * otherwise, up to the heartbeat interval (30 s without heartbeats). */
hms_status_t hms_pub_flush(hms_pub_t *p, hms_err_t *err);

/* Reads every frame available without blocking and dispatches it; also
 * sends a heartbeat when due and detects a silent broker.  Any failure
 * means the connection is lost. */
hms_status_t hms_pub_poll(hms_pub_t *p, const hms_pub_handlers_t *h, void *ctx, hms_err_t *err);

/* Closes the confirm channel and opens another (a new number), in confirm
 * mode, its delivery tags starting over at 1.  Call it only when no
 * publish is outstanding.  Why: in RabbitMQ 3.10 a channel that published
 * to a quorum queue before its leader was re-elected can have every later
 * publish nacked for as long as it lives, while a new channel on the same
 * connection is confirmed at once.  Any failure means the connection is
 * lost. */
hms_status_t hms_pub_reopen_channel(hms_pub_t *p, hms_err_t *err);

/* "host:port" of the broker node, for log lines and metrics (no
 * credentials). */
const char *hms_pub_target(const hms_pub_t *p);
/* The node's index in the URL list. */
int hms_pub_node(const hms_pub_t *p);

#endif
