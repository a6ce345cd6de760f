/* rowtext.h -- reads one row in PostgreSQL's composite text form, the way
 * `row::text` (record_out) writes it: "(v1,v2,...)".
 *
 * hms-sync's trigger logs the old row of a DELETE (or of a key change) in
 * this form as a logical message when the table's REPLICA IDENTITY is not
 * FULL, so that the connector can still publish the whole old row; this
 * turns it back into a tuple of text values like the ones pgoutput sends.
 *
 * The form: fields separated by commas; an empty unquoted field is NULL; a
 * field may be double-quoted (record_out quotes empty strings and values
 * holding quotes, backslashes, parentheses, commas or white space); inside
 * quotes "" is one quote; anywhere a backslash takes the next character
 * literally.
 *
 * Pure: no I/O.  Ownership: the parser owns the values and their text; a
 * tuple it returns stays valid until the next parse or hms_rowtext_free(). */
#ifndef HMS_CORE_ROWTEXT_H
#define HMS_CORE_ROWTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "core/pgoutput.h"
#include "core/status.h"

typedef struct {
    hms_pgo_value_t *values;
    size_t capvalues;
    char *text; /* the unescaped values, back to back */
    size_t captext;
} hms_rowtext_t;

/* Parses len bytes at s into *out (text and NULL values).  Fails with
 * HMS_ERR_MALFORMED, naming the byte offset, on text that is not one
 * composite value, HMS_ERR_NOMEM when out of memory. */
hms_status_t hms_rowtext_parse(hms_rowtext_t *rt, const char *s, size_t len, hms_pgo_tuple_t *out,
                               hms_err_t *err);

void hms_rowtext_free(hms_rowtext_t *rt);

#endif
