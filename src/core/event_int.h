/* event_int.h -- the parts of an event every encoder writes the same way
 * (row changes in event.c, emitted events in emit.c).  Pure: no I/O. */
#ifndef HMS_CORE_EVENT_INT_H
#define HMS_CORE_EVENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/event.h"
#include "core/status.h"

/* Appends v in decimal. */
hms_status_t hms_ev_put_u64(hms_buf_t *b, uint64_t v);
/* Writes v in upper-case hex, at least min_digits wide, to out (no NUL);
 * returns the digits written.  lsn.c has this too; a private copy keeps the
 * encoders free of a link dependency. */
size_t hms_ev_put_hex(char *out, uint32_t v, int min_digits);
/* Writes lsn in PostgreSQL's text form ("16/B374D848") and a NUL to out
 * (HMS_LSN_STR_MAX bytes); returns its length. */
size_t hms_ev_lsn_text(uint64_t lsn, char *out);

/* Empties ev: no id, body, routing key, queue or subject; not emitted. */
void hms_ev_clear(hms_event_t *ev);
/* Empties ev and writes its id ("<commit LSN, 16 hex>-<ordinal>"), then the
 * commit time as RFC 3339 into ts (HMS_PGVALUE_RFC3339_LEN + 1 bytes) and
 * as Unix seconds into ev->time_unix.  HMS_ERR_ENCODE for a commit time out
 * of range. */
hms_status_t hms_ev_start(hms_event_t *ev, const hms_txctx_t *tx, char *ts, hms_err_t *err);
/* Empties what ev holds after a failure st, so that half an event is never
 * published; names the event on HMS_ERR_NOMEM.  Returns st. */
hms_status_t hms_ev_fail(hms_event_t *ev, hms_status_t st, hms_err_t *err);

#endif
