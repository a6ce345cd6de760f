/* pgvalue.h -- turns PostgreSQL's text output of one column value into JSON,
 * per the event contract's type map: bool, integers and floats as
 * JSON numbers (NaN and infinities as strings), numeric, uuid, text and
 * unknown types as strings, timestamps as RFC 3339 UTC strings with six
 * fraction digits, json and jsonb embedded after a validity check, and the
 * arrays of those types parsed from PostgreSQL's array literal syntax.
 *
 * Pure: no I/O, no allocation beyond the caller's output buffer and the
 * scratch buffers it hands in.  Input text is borrowed for the call only and
 * need not be NUL-terminated; any byte string is accepted. */
#ifndef HMS_CORE_PGVALUE_H
#define HMS_CORE_PGVALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ": length without the NUL. */
#define HMS_PGVALUE_RFC3339_LEN 27

/* Working memory for hms_pgvalue_put_json, kept by the caller so that the
 * buffers grow once and are reused for every value.  All-zero (calloc or
 * HMS_PGVALUE_SCRATCH_INIT) is ready to use; the caller owns it and
 * releases it with hms_pgvalue_scratch_free().  Nothing in it outlives a
 * call, so one scratch serves any number of values, but not two calls at
 * once. */
typedef struct {
    hms_buf_t elem_text; /* one unescaped array element */
    hms_buf_t jsonstack; /* open containers while checking embedded json */
} hms_pgvalue_scratch_t;

#define HMS_PGVALUE_SCRATCH_INIT                                                                   \
    {                                                                                              \
        HMS_BUF_INIT, HMS_BUF_INIT                                                                 \
    }

void hms_pgvalue_scratch_free(hms_pgvalue_scratch_t *scratch);

/* Appends text[0..len), the text form of a value of type type_oid, to out
 * as one JSON value.  Types outside the map travel as JSON strings, and so
 * do timestamps RFC 3339 cannot express (infinity, BC, years past 9999) and
 * array literals we do not convert (explicit bounds, malformed).  Fails with
 * HMS_ERR_ENCODE and a message naming the type oid when the text is not
 * what its type allows (a corrupt value never becomes a plausible wrong
 * one), or HMS_ERR_NOMEM; either way out may hold a partial value, which
 * the caller discards.  err may be NULL. */
hms_status_t hms_pgvalue_put_json(hms_buf_t *out, uint32_t type_oid, const char *text, size_t len,
                                  hms_pgvalue_scratch_t *scratch, hms_err_t *err);

/* Converts PostgreSQL's ISO output of a timestamp or timestamptz
 * ("YYYY-MM-DD HH:MM:SS[.ffffff][+-HH[:MM[:SS]]]", no offset meaning UTC)
 * into out as RFC 3339 UTC with six fraction digits, NUL-terminated.  False,
 * with out unspecified, for any other text and for instants outside years
 * 0000-9999. */
bool hms_pgvalue_timestamp_rfc3339(const char *text, size_t len,
                                   char out[HMS_PGVALUE_RFC3339_LEN + 1]);

/* Writes unix_usec (microseconds since 1970-01-01 UTC) into out as RFC 3339
 * UTC with six fraction digits, NUL-terminated.  False, with out
 * unspecified, outside years 0000-9999. */
bool hms_pgvalue_format_rfc3339(int64_t unix_usec, char out[HMS_PGVALUE_RFC3339_LEN + 1]);

/* True when text[0..len) is a JSON number with no fraction or exponent, so
 * it can be copied into JSON unchanged. */
bool hms_pgvalue_is_integer(const char *text, size_t len);

#endif
