/* emit.h -- an application's own event: the logical message that
 * hms_sync.emit(type, subject, data) writes in the application's
 * transaction (sql/012_emit.sql), and the CloudEvent it becomes on the
 * events exchange (schemas/emitted-envelope.v1.json).
 *
 * Pure: no I/O. */
#ifndef HMS_CORE_EMIT_H
#define HMS_CORE_EMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/event.h"
#include "core/status.h"

/* The logical message's prefix. */
#define HMS_EMIT_PREFIX "hms_sync.emit"
/* Where an emitted event comes from: the last part of its source
 * (/hms-ehr/<system identifier>/<database>/hms_sync.emit) and the table a
 * rejection of it names. */
#define HMS_EMIT_ORIGIN "hms_sync.emit"

/* One message's parts, borrowed from its content. */
typedef struct {
    const char *type; /* "org.example.cases.InvestigatorAssigned.v1" */
    size_t type_len;
    const char *subject;
    size_t subject_len;
    const char *data; /* JSON text (jsonb's output) */
    size_t data_len;
} hms_emit_t;

/* Whether type[0..len) is a type hms_sync.emit takes: a reverse-DNS name
 * of at least three dot-separated names (the first lower-case letters,
 * digits and '-'; the others letters, digits, '_' and '-', not starting
 * with '_' or '-'), then ".v<number>", at most 200 bytes, outside
 * gov.hms.ehr (hms-sync's own events).  The same rule as the SQL function
 * and schemas/emitted-envelope.v1.json. */
bool hms_emit_type_ok(const char *type, size_t len);

/* Splits a message's content into type, subject and data at its first two
 * line breaks.  HMS_ERR_MALFORMED, with one line saying which part is
 * wrong, when a part is missing or empty, or the type is longer than a
 * routing key may be: only a message written by hand with this prefix,
 * not through hms_sync.emit, can be. */
hms_status_t hms_emit_parse(const char *content, size_t len, hms_emit_t *out, hms_err_t *err);

/* Encodes m, emitted in transaction tx (with the message's ordinal), into
 * ev: the CloudEvent body, routing key = type, subject, emitted = true,
 * ev->type = the type.  source names the database:
 * "/hms-ehr/<system identifier>/<database>".  dataschema: the $id of the
 * type's data schema, or NULL for none.  Fails as hms_encoder_encode does:
 * HMS_ERR_ENCODE for a commit time out of range, HMS_ERR_NOMEM. */
hms_status_t hms_emit_encode(const char *source, const hms_txctx_t *tx, const hms_emit_t *m,
                             const char *dataschema, hms_event_t *ev, hms_err_t *err);

#endif
