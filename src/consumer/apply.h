/* apply.h -- the subscriber's PostgreSQL side: one session, one prepared
 * statement, SELECT hms_sync.consume(subscriber, apply, event) per event.
 *
 * Ownership: the session borrows its strings for its whole life; outcome
 * buffers are the caller's. */
#ifndef HMS_CONSUMER_APPLY_H
#define HMS_CONSUMER_APPLY_H

#include <stddef.h>

#include "core/status.h"

typedef struct hms_capply hms_capply_t;

/* Connects to conninfo, checks that `apply` names a function of one jsonb
 * argument (appending "(jsonb)" when it has no argument list) and that
 * hms_sync.consume exists, and prepares the statement.  *out is the
 * caller's to hms_capply_close().  HMS_ERR_PG when the server cannot be
 * reached (err names host:port/db) or a check fails (err says how to fix
 * it: run migrate --subscriber, create the function). */
hms_status_t hms_capply_connect(const char *conninfo, const char *subscriber, const char *apply,
                                int connect_timeout_ms, hms_capply_t **out, hms_err_t *err);
void hms_capply_close(hms_capply_t *a);

/* Runs hms_sync.consume for one event (a NUL-terminated JSON text) in one
 * autocommit transaction.  HMS_OK with its result ("applied", "stale",
 * "duplicate", or what the apply function returned) in outcome;
 * HMS_ERR_RETRY for a transient failure (connection lost, class 08, 40001,
 * 40P01, 57P01..57P03, class 53): retry after a backoff, reconnecting when
 * hms_capply_ok() says the session is gone; HMS_ERR_PG for an error the
 * event causes (err holds SQLSTATE and message). */
hms_status_t hms_capply_event(hms_capply_t *a, const char *event_json, char *outcome,
                              size_t outcome_len, hms_err_t *err);

/* False when the session is lost and must be closed and reopened. */
int hms_capply_ok(const hms_capply_t *a);

#endif
