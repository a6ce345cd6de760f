/* reject.h -- the message a rejected change becomes: a committed change
 * that cannot become a valid event (it fails its schema, the encoder cannot
 * express the row, or the event is too large for the broker) is published
 * instead as one JSON document of schemas/RejectedChange.v1.json, with the
 * id the event would have had, so the slot can pass it like any event.
 *
 * Pure: no I/O. */
#ifndef HMS_CORE_REJECT_H
#define HMS_CORE_REJECT_H

#include <stddef.h>

#include "core/event.h"
#include "core/pgoutput.h"
#include "core/status.h"

/* The bounded reasons: the metric's label values and the body's reason. */
typedef enum {
    HMS_REJECT_INVALID,     /* the event failed its own schema */
    HMS_REJECT_UNENCODABLE, /* no event could be made from the row */
    HMS_REJECT_OVERSIZE,    /* the event is larger than max_event_bytes */
    HMS_REJECT_NREASONS
} hms_reject_reason_t;

/* The AMQP type property and the schema of a rejection. */
#define HMS_REJECT_TYPE "gov.hms.ehr.RejectedChange.v1"
#define HMS_REJECT_SCHEMA_ID "https://hms.gov/schemas/ehr/RejectedChange.v1.json"

/* "invalid", "unencodable", "oversize". */
const char *hms_reject_reason_name(hms_reject_reason_t r);

/* What is known about one rejected change.  Everything is borrowed for the
 * call. */
typedef struct {
    hms_reject_reason_t reason;
    const char *detail;    /* why, one line: line breaks become spaces */
    const char *source;    /* "/hms-ehr/<system id>/<database>/<schema>.<table>" */
    const char *table;     /* "<schema>.<table>" */
    const hms_txctx_t *tx; /* the change's transaction and ordinal: its id */
    const char *subject;   /* the row's key as text; NULL when unknown */
    size_t subject_len;
    const char *intended_type; /* the event's type; NULL when unknown */
    /* invalid: the event document (JSON text, embedded as it is). */
    const char *event;
    size_t event_len;
    /* unencodable: the row (NULL: none known, an empty object); rel names
     * its columns. */
    const hms_pgo_relation_t *rel;
    const hms_pgo_tuple_t *row;
    size_t size; /* oversize: the event's size in bytes */
} hms_reject_t;

/* Writes the rejection of r into ev (its previous content is discarded):
 * id as the event's, body the RejectedChange document, reason
 * "<reason>: <detail>" (the x-reason header), type HMS_REJECT_TYPE,
 * time_unix the commit time, routing_key "rejected.<reason>" and no queue.
 * HMS_ERR_NOMEM, or HMS_ERR_STATE when r lacks what its reason needs (an
 * invalid rejection without its event). */
hms_status_t hms_reject_build(const hms_reject_t *r, hms_event_t *ev, hms_err_t *err);

#endif
