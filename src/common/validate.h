/* validate.h -- checks one message body against the v1 event contract whose
 * schemas are compiled into the binary (hms_schema_files[]): `consume` checks
 * what it receives, `run` what it is about to publish.
 *
 * Ownership: a validator owns its schemas; the checks borrow the body, and
 * hms_cval_check() hands the parsed event to the caller. */
#ifndef HMS_COMMON_VALIDATE_H
#define HMS_COMMON_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "core/status.h"

typedef struct hms_cval hms_cval_t;

/* Builds the envelope and data schemas from the embedded JSON texts.  NULL
 * with err when one fails to parse or load, or the envelope is missing. */
hms_cval_t *hms_cval_new(hms_err_t *err);
void hms_cval_free(hms_cval_t *v);

/* Installs the data schemas of emitted types from directory dir: each file
 * <type>.json (e.g. org.example.cases.InvestigatorAssigned.v1.json) is the
 * schema of that type, with an $id that its events' dataschema names.
 * *count gets how many.  HMS_ERR_CONFIG with one line naming the file when
 * a file is not named after a type, does not parse, or lacks an $id. */
hms_status_t hms_cval_load_types(hms_cval_t *v, const char *dir, size_t *count, hms_err_t *err);

/* The $id of the data schema installed for emitted type type, or NULL. */
const char *hms_cval_type_schema_id(const hms_cval_t *v, const char *type);

/* Parses body[0..len) (any bytes) and checks it: a JSON object, a known
 * type, the envelope schema, a dataschema naming the type's data schema, and
 * data against it.  An emitted event (source ending in /hms_sync.emit)
 * is checked against the emitted envelope and, when one is installed, its
 * type's data schema.  HMS_OK with *event set (the caller puts it), or
 * HMS_ERR_MALFORMED with *event NULL and err holding one line why, e.g.
 * "not JSON: ...", "unknown type \"x\"", "schema: /data/severity: ...". */
hms_status_t hms_cval_check(const hms_cval_t *v, const char *body, size_t len, json_object **event,
                            hms_err_t *err);

/* As hms_cval_check, for an event about to be published, with less
 * allocation: the parser is the validator's own, reused (so one thread per
 * validator), and the parsed event is released.  *parsed tells whether body
 * was one JSON document (so a failure is the schema's). */
hms_status_t hms_cval_check_outgoing(hms_cval_t *v, const char *body, size_t len, bool *parsed,
                                     hms_err_t *err);

/* Checks a rejected change's document against RejectedChange.v1.json:
 * HMS_OK, or HMS_ERR_MALFORMED with err saying why. */
hms_status_t hms_cval_check_rejection(hms_cval_t *v, const char *body, size_t len, hms_err_t *err);

#endif
