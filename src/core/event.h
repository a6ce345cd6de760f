/* event.h -- turns one decoded row change into one CloudEvents 1.0 event
 * (structured JSON mode) as docs/event-contract.md and schemas/ define it.
 *
 * Pure: no I/O.  What is captured and how it is named comes from a table of
 * hms_capture_t entries, so more tables are a matter of configuration, not
 * of code.  An application's own events (hms_sync.emit) are core/emit.h's. */
#ifndef HMS_CORE_EVENT_H
#define HMS_CORE_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/pgoutput.h"
#include "core/status.h"

/* How one captured table maps to events.  All strings are borrowed for the
 * encoder's lifetime. */
typedef struct {
    const char *schema;         /* "public" */
    const char *table;          /* "incidents" */
    const char *type_prefix;    /* "gov.hms.ehr.Incident": + Created|Updated|Deleted + ".v1" */
    const char *routing_prefix; /* "incident": + .created|updated|deleted + .<region> */
    const char *key_column;     /* "id": the event's subject */
    const char *region_column;  /* "region": last routing key word ("_" when NULL/absent) */
    const char *version_column; /* "version" */
    const char *updated_column; /* "updated_at" */
    const char *origin_column;  /* "origin" */
    const char *schema_base;    /* dataschema = schema_base + "IncidentCreated.v1.json" etc. */
    /* "IncidentsTruncated": a TRUNCATE's type (in type_prefix's namespace) and
     * data schema file; NULL: the type_prefix's last word + "Truncated". */
    const char *truncated_name;
    /* The contract's columns, NULL-terminated: exactly these go in `data`
     * (in this order), every other column of the row under data member
     * `_extra`, so a column added to the table never breaks the data
     * schemas.  A contract column the relation lacks (dropped, renamed)
     * fails every change of it.  NULL: every column goes in `data`. */
    const char *const *columns;
} hms_capture_t;

/* The built-in capture of public.incidents. */
extern const hms_capture_t hms_capture_incidents;

/* Transaction context of one change. */
typedef struct {
    uint64_t commit_lsn; /* Begin's final_lsn */
    uint32_t xid;
    int64_t commit_time; /* microseconds since 2000-01-01 UTC */
    uint32_t ordinal;    /* 0-based index of the change in its transaction */
} hms_txctx_t;

/* One encoded event.  Owns its buffers; reuse it for the next event (the
 * encoder resets the buffers) and release with hms_event_free(). */
typedef struct {
    hms_buf_t body;        /* the CloudEvents JSON document */
    hms_buf_t routing_key; /* incident.created.<region> */
    /* Empty: published to the exchange.  Otherwise the one queue the event
     * goes to, through the default exchange (a snapshot for one
     * subscriber). */
    hms_buf_t queue;
    /* Empty: an event.  Otherwise a rejected change (core/reject.h): the
     * body is its RejectedChange document, published to the rejected
     * exchange with this one line as header x-reason. */
    hms_buf_t reason;
    /* The event's subject (the incident's id; the table for a truncation),
     * also sent as header "subject" so that a consistent-hash exchange can
     * keep each incident's events on one queue.  Empty for a rejection. */
    hms_buf_t subject;
    /* An application's own event (core/emit.h): published to the events
     * exchange (hms.events) with its type as the routing key. */
    bool emitted;
    hms_buf_t own_type; /* an emitted event's type, which ev->type points to */
    char id[40];        /* "<commit LSN, 16 hex>-<ordinal>" */
    const char *type;   /* e.g. "gov.hms.ehr.IncidentCreated.v1"; the encoder's or own_type */
    int64_t time_unix;  /* commit time, seconds since the Unix epoch */
} hms_event_t;

void hms_event_free(hms_event_t *ev);

typedef struct hms_encoder hms_encoder_t;

/* Creates an encoder for the database identified by its system identifier
 * (decimal text) and name; both are copied.  captures is borrowed and must
 * outlive the encoder.  NULL on out of memory. */
hms_encoder_t *hms_encoder_new(const char *sysid, const char *dbname, const hms_capture_t *captures,
                               size_t ncaptures);
void hms_encoder_free(hms_encoder_t *e);

/* The capture entry for a relation, or NULL when the relation is not
 * captured (its changes produce no event). */
const hms_capture_t *hms_encoder_capture(const hms_encoder_t *e, const hms_pgo_relation_t *rel);

/* Encodes an Insert, Update or Delete message of a captured relation into
 * ev (its previous content is discarded; after a failure body and
 * routing_key are empty).  Fails with HMS_ERR_ENCODE and a message naming
 * the table, column and event id when a value cannot be represented
 * faithfully (e.g. an unchanged TOASTed value with no old row to take it
 * from) or when the relation lacks a contract column ("column summary is
 * missing from public.incidents (dropped or renamed?)"; the relation as the
 * last Relation message described it), and with HMS_ERR_STATE for a
 * message that is not a row change or a relation that is not captured.  An
 * Update that changes the key is two events (see hms_encoder_encode_part);
 * this gives the first. */
hms_status_t hms_encoder_encode(hms_encoder_t *e, const hms_txctx_t *tx, const hms_pgo_msg_t *msg,
                                hms_event_t *ev, hms_err_t *err);

/* The most events one change message becomes. */
#define HMS_ENCODER_MAX_PARTS 2

/* Encodes event number part (from 0) of a change, as hms_encoder_encode
 * does; *nparts gets how many events the change becomes.  An Update whose
 * old row (REPLICA IDENTITY FULL, or the old key) shows another key than the
 * new row becomes two: part 0 a Deleted of the old key with the old row,
 * part 1 a Created of the new key with the new row, so that a subscriber
 * keyed by subject never keeps the old key alive.  tx->ordinal is the
 * ordinal of this part's event: the caller numbers the parts consecutively.
 * part >= *nparts fails with HMS_ERR_STATE. */
hms_status_t hms_encoder_encode_part(hms_encoder_t *e, const hms_txctx_t *tx,
                                     const hms_pgo_msg_t *msg, unsigned part, hms_event_t *ev,
                                     unsigned *nparts, hms_err_t *err);

/* Encodes the TRUNCATE of captured relation rel as one event: type
 * <namespace>.<truncated_name>.v1, subject "<schema>.<table>", data {},
 * routing key <routing_prefix>.truncated.  A truncation has no row: its
 * last-write-wins attributes are version (what the TRUNCATE drew from the
 * version sequence, which divides the rows it removed from those written
 * after it; 0 where the source did not say, meaning every row), updatedat
 * the commit time and origin "hms-ehr".  tx's ordinal is the Truncate
 * message's.  Errors as hms_encoder_encode. */
hms_status_t hms_encoder_encode_truncate(hms_encoder_t *e, const hms_txctx_t *tx,
                                         const hms_pgo_relation_t *rel, uint64_t version,
                                         hms_event_t *ev, hms_err_t *err);

/* Encodes one row a snapshot read as an event of type
 * <namespace>.<stem>Snapshot.v1 (data: the row, as in Created), routing key
 * <routing_prefix>.snapshot.<region>, with extension attribute `snapshot`
 * (snapshot_id).  rel describes the row's columns (the SELECT's result; it
 * must name the capture's schema and table, and give each description a
 * new generation); tx is the watermark transaction's, with the row's
 * ordinal.  queue: NULL for the exchange, else the one queue (ev->queue).
 * Errors as hms_encoder_encode. */
hms_status_t hms_encoder_encode_snapshot(hms_encoder_t *e, const hms_txctx_t *tx,
                                         const hms_pgo_relation_t *rel, const hms_pgo_tuple_t *row,
                                         const char *snapshot_id, const char *queue,
                                         hms_event_t *ev, hms_err_t *err);

#endif
