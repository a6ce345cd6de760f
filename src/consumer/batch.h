/* batch.h -- the deliveries a subscriber applies in one transaction: their
 * bodies copied out of the broker's buffers, what is needed to settle each
 * one afterwards (tag, delivery count, ids for the log and dead letters),
 * and the JSON array of the events to apply, in arrival order.
 *
 * An echo (an event of the subscriber's own origin) rides along: it is not
 * applied, but it is acknowledged with the others, so one multiple ack
 * settles the whole batch.
 *
 * Ownership: the batch owns its copies; a delivery view from
 * hms_cbatch_delivery() points into them and lives until the next add,
 * reset or free. */
#ifndef HMS_CONSUMER_BATCH_H
#define HMS_CONSUMER_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consumer/broker.h"
#include "core/buf.h"

typedef struct {
    uint64_t tag;
    long delivery_count;
    bool redelivered;
    bool echo;       /* acknowledged, not applied */
    bool failed;     /* its apply failed in the batch: to be tried alone */
    int64_t time_us; /* the event's time (source commit), Unix microseconds; 0: unknown */
    size_t off, len; /* the body in bodies */
    char routing_key[256];
    char message_id[128];
} hms_cbatch_item_t;

typedef struct {
    hms_cbatch_item_t *items;
    size_t n, cap;
    size_t napply;    /* items that are not echoes */
    hms_buf_t bodies; /* every item's body, back to back */
    hms_buf_t json;   /* the array hms_cbatch_json() built */
} hms_cbatch_t;

void hms_cbatch_init(hms_cbatch_t *b);
void hms_cbatch_reset(hms_cbatch_t *b);
void hms_cbatch_free(hms_cbatch_t *b);

/* Copies delivery d (a JSON object the caller has validated, whose time is
 * time_us) into the batch.  HMS_ERR_NOMEM leaves the batch as it was. */
hms_status_t hms_cbatch_add(hms_cbatch_t *b, const hms_cdelivery_t *d, bool echo, int64_t time_us);

/* "[e1,e2,...]" of the items that are not echoes, in order, NUL-terminated;
 * or of item `only` alone when only < n.  NULL when out of memory.  Valid
 * until the next call, reset or free. */
const char *hms_cbatch_json(hms_cbatch_t *b, size_t only);

/* Item i as a delivery (for dead letters and the log). */
void hms_cbatch_delivery(const hms_cbatch_t *b, size_t i, hms_cdelivery_t *d);

/* The highest delivery tag in the batch, 0 when empty. */
uint64_t hms_cbatch_last_tag(const hms_cbatch_t *b);

#endif
