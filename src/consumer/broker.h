/* broker.h -- the subscriber's RabbitMQ side: the topology it declares, a
 * consumer with manual acks, and confirmed dead-letter publishes.
 *
 * Two connections: one consumes (channel 1), the other publishes dead
 * letters on a confirm channel.  Waiting for a confirm reads frames; on the
 * consuming connection those reads would swallow deliveries the broker sends
 * ahead (prefetch), so confirms get a connection of their own.  It is opened
 * on the first dead letter and reopened when it fails.
 *
 * rabbitmq-c answers heartbeats only while its caller reads or writes, so
 * every wait of the subscriber goes through hms_cbroker_wait() (or the
 * confirm wait, which does the same): it reads the consuming connection
 * whatever else it waits for.  Deliveries read that way queue up in arrival
 * order, at most prefetch of them, until hms_cbroker_next() hands them out.
 * Once the consuming connection fails, every call says so (HMS_ERR_AMQP with
 * the first failure's message): close and reconnect; the broker redelivers
 * whatever was not acknowledged.
 *
 * Ownership: the broker borrows the opts it is given for its whole life (the
 * caller keeps them alive); a delivery's bytes and properties belong to the
 * broker and stay valid until hms_cbroker_release() or hms_cbroker_close(),
 * so a batch of them can be in hand at once. */
#ifndef HMS_CONSUMER_BROKER_H
#define HMS_CONSUMER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "hms_consumer.h"

typedef struct hms_cbroker hms_cbroker_t;

typedef struct {
    const char *body; /* not NUL-terminated; owned by the broker */
    size_t len;
    uint64_t tag;
    bool redelivered;
    long delivery_count; /* x-delivery-count (quorum queues), -1 when absent */
    char routing_key[256];
    char message_id[128]; /* "" when absent */
} hms_cdelivery_t;

/* Connects to the first node of the URL list that answers, trying them in
 * order from first_node (wrapping around), logs in, checks with passive declares that the exchange
 * and the dead-letter exchange exist (they are shared with other subscribers, so a subscriber
 * neither creates nor may delete them), declares <queue>.dlq bound to the dead-letter exchange with
 * key <queue> and <queue> with its dead-letter and type arguments bound with every key, sets the
 * prefetch and starts consuming with manual acks.  *out is the caller's to hms_cbroker_close().
 * HMS_ERR_AMQP (unreachable, refused login, a missing exchange or a declaration the broker refused:
 * the message says which), HMS_ERR_CONFIG or HMS_ERR_NOMEM. */
hms_status_t hms_cbroker_connect(const hms_consumer_opts_t *opts, int first_node,
                                 hms_cbroker_t **out, hms_err_t *err);
void hms_cbroker_close(hms_cbroker_t *b);

/* The consuming connection's node: "host:port", and its index in the list. */
const char *hms_cbroker_target(const hms_cbroker_t *b);
int hms_cbroker_node(const hms_cbroker_t *b);

/* The next delivery: the oldest read ahead, else the first to come within
 * timeout_ms.  HMS_OK with *d filled; HMS_ERR_RETRY when none came in time
 * (or a signal cut the wait short); HMS_ERR_AMQP when the connection or
 * channel is lost or the broker cancelled the consumer. */
hms_status_t hms_cbroker_next(hms_cbroker_t *b, int timeout_ms, hms_cdelivery_t *d, hms_err_t *err);

/* Frees every delivery handed out so far (the caller has settled them or
 * will let the broker redeliver them). */
void hms_cbroker_release(hms_cbroker_t *b);

/* Waits up to timeout_ms (a signal may end it sooner) for fd, which may be
 * -1, to be ready for events, reading the consuming connection meanwhile:
 * deliveries queue up, heartbeats go out, a missing heartbeat or a closed or
 * cancelled consumer is noticed.  *ready says whether fd is ready.  HMS_OK,
 * or HMS_ERR_AMQP when the consuming connection is lost. */
hms_status_t hms_cbroker_wait(hms_cbroker_t *b, int fd, short events, int timeout_ms, bool *ready,
                              hms_err_t *err);

/* Acknowledges one delivery, or with multiple every delivery up to and
 * including tag that is not yet settled; or rejects one with requeue.
 * HMS_ERR_AMQP when the connection is lost. */
hms_status_t hms_cbroker_ack(hms_cbroker_t *b, uint64_t tag, bool multiple, hms_err_t *err);
hms_status_t hms_cbroker_requeue(hms_cbroker_t *b, uint64_t tag, hms_err_t *err);

/* The messages ready in the queue (delivered and unacknowledged ones not
 * counted), by a passive queue.declare on the dead-letter connection,
 * opened as needed; it waits at most 2 s for the answer, without reading
 * the consuming connection meanwhile.  HMS_ERR_AMQP when it fails (the
 * dead-letter connection is then dropped). */
hms_status_t hms_cbroker_queue_depth(hms_cbroker_t *b, int64_t *messages, hms_err_t *err);

/* Publishes d, a delivery in hand (not yet released), with its body and properties to the
 * dead-letter exchange with routing key <queue>, persistent and mandatory,
 * adding the headers x-hms-reason = reason, x-hms-subscriber = <queue> and
 * x-hms-original-routing-key, and waits up to timeout_ms for the broker's
 * confirm, reading the consuming connection meanwhile.  HMS_OK only for an
 * ack without a return; otherwise HMS_ERR_AMQP (the publish connection is
 * then dropped, to be reopened next time). */
hms_status_t hms_cbroker_dead_letter(hms_cbroker_t *b, const hms_cdelivery_t *d, const char *reason,
                                     int timeout_ms, hms_err_t *err);

#endif
