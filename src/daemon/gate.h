/* gate.h -- what every encoded event passes before it is queued: it must be
 * valid against its own schema (envelope and data, the schemas compiled into
 * the binary) and no larger than max_event_bytes.  A change that fails, or
 * that the encoder could not express at all, becomes a rejection instead
 * (core/reject.h): published to the rejected exchange, counted, logged once,
 * and confirmed to the slot like an event, so the stream goes on.
 *
 * Ownership: the gate owns its validator and scratch; it borrows the
 * encoder given to hms_gate_attach(), which must outlive that use. */
#ifndef HMS_DAEMON_GATE_H
#define HMS_DAEMON_GATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/emit.h"
#include "core/event.h"
#include "core/pgoutput.h"
#include "core/reject.h"
#include "core/status.h"

typedef struct hms_gate hms_gate_t;

/* A gate for events of at most max_event_bytes; NULL with err when the
 * embedded schemas do not load. */
hms_gate_t *hms_gate_new(size_t max_event_bytes, hms_err_t *err);
void hms_gate_free(hms_gate_t *g);

/* Names the database the events come from (a rejection's source is the
 * event's) and the encoder whose captures name tables and keys.  Strings
 * are copied.  HMS_ERR_NOMEM. */
hms_status_t hms_gate_attach(hms_gate_t *g, const hms_encoder_t *enc, const char *sysid,
                             const char *dbname);

/* Takes the encoder's result for one event of relation rel: st is what the
 * encode call returned, ev what it wrote, tx its transaction (with the
 * event's ordinal) and row the row it was made from (NULL: none, as for a
 * truncation).  When st is HMS_OK and ev is valid and small enough, ev is
 * left as it is.  When ev fails its schema, is too large, or st is
 * HMS_ERR_ENCODE (the row cannot be expressed), ev is rewritten into the
 * change's rejection, which is logged and counted; the caller queues ev
 * either way.  Returns HMS_OK then.  Any other st is returned unchanged
 * with err as the encoder left it; HMS_ERR_NOMEM and HMS_ERR_FATAL (a
 * rejection that fails its own schema: never published) with err. */
hms_status_t hms_gate_pass(hms_gate_t *g, hms_status_t st, const hms_txctx_t *tx,
                           const hms_pgo_relation_t *rel, const hms_pgo_tuple_t *row,
                           hms_event_t *ev, hms_err_t *err);

/* As hms_gate_pass, for the event an hms_sync.emit message m became (m
 * NULL: the message could not be read; st is then HMS_ERR_ENCODE).  Its
 * rejection names table hms_sync.emit and the event's subject. */
hms_status_t hms_gate_pass_emitted(hms_gate_t *g, hms_status_t st, const hms_txctx_t *tx,
                                   const hms_emit_t *m, hms_event_t *ev, hms_err_t *err);

/* Installs the data schemas of emitted types from dir (see
 * hms_cval_load_types), logging how many.  HMS_ERR_CONFIG naming the file. */
hms_status_t hms_gate_load_types(hms_gate_t *g, const char *dir, hms_err_t *err);

/* The $id of the data schema installed for emitted type type, or NULL. */
const char *hms_gate_dataschema(const hms_gate_t *g, const char *type);

/* Rejections so far, by reason (counted when made: a change sent again
 * after a lost connection counts again). */
uint64_t hms_gate_rejected(const hms_gate_t *g, hms_reject_reason_t reason);

#endif
