/* broker.h -- the subscriber's RabbitMQ side: the topology it declares, a
 * consumer with manual acks, and confirmed dead-letter publishes.
 *
 * Two connections: one consumes (channel 1), the other publishes dead
 * letters on a confirm channel.  Waiting for a confirm reads frames; on the
 * consuming connection those reads would swallow deliveries the broker sends
 * ahead (prefetch), so confirms get a connection of their own.  It is opened
 * on the first dead letter and reopened when it fails.
 *
 * Ownership: the broker borrows the opts it is given for its whole life (the
 * caller keeps them alive); a delivery's bytes belong to the broker and stay
 * valid until the next hms_cbroker_next() or hms_cbroker_close(). */
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

/* Connects, logs in, declares the topology of issue 3 (exchange topic
 * durable, the dead-letter exchange direct durable, <queue>.dlq bound to it
 * with key <queue>, <queue> with its dead-letter and type arguments bound
 * with every key), sets the prefetch and starts consuming with manual acks.
 * *out is the caller's to hms_cbroker_close().  HMS_ERR_AMQP (unreachable,
 * refused login, a declaration the broker refused: the message says which)
 * or HMS_ERR_NOMEM. */
hms_status_t hms_cbroker_connect(const hms_consumer_opts_t *opts, hms_cbroker_t **out,
                                 hms_err_t *err);
void hms_cbroker_close(hms_cbroker_t *b);

/* Waits up to timeout_ms for the next delivery.  HMS_OK with *d filled;
 * HMS_ERR_RETRY when none came in time; HMS_ERR_AMQP when the connection or
 * channel is lost (close and reconnect). */
hms_status_t hms_cbroker_next(hms_cbroker_t *b, int timeout_ms, hms_cdelivery_t *d, hms_err_t *err);

/* Acknowledges, or rejects with requeue, one delivery.  HMS_ERR_AMQP when
 * the connection is lost. */
hms_status_t hms_cbroker_ack(hms_cbroker_t *b, uint64_t tag, hms_err_t *err);
hms_status_t hms_cbroker_requeue(hms_cbroker_t *b, uint64_t tag, hms_err_t *err);

/* Publishes d's body and properties to the dead-letter exchange with
 * routing key <queue>, persistent and mandatory, adding the headers
 * x-hms-reason = reason, x-hms-subscriber = <queue> and
 * x-hms-original-routing-key, and waits up to timeout_ms for the broker's
 * confirm.  HMS_OK only for an ack without a return; otherwise HMS_ERR_AMQP
 * (the publish connection is then dropped, to be reopened next time). */
hms_status_t hms_cbroker_dead_letter(hms_cbroker_t *b, const hms_cdelivery_t *d, const char *reason,
                                     int timeout_ms, hms_err_t *err);

#endif
