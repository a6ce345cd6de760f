/* apply.h -- the subscriber's PostgreSQL side: one session, one prepared
 * statement, hms_sync.consume_batch(subscriber, apply, events) per batch of
 * events (one transaction, one row of outcome per event),
 * driven by the consumer's poll loop so that a server that stalls or
 * vanishes never blocks the caller.
 *
 * Use: hms_capply_open() or hms_capply_send() starts an operation; then,
 * until hms_capply_step() says it is over, wait as hms_capply_wait() says
 * (the socket, events and deadline) and call hms_capply_step() when the
 * socket is ready or the deadline has passed.  One operation at a time.
 *
 * Ownership: the session borrows its strings for its whole life; outcome
 * buffers are the caller's. */
#ifndef HMS_CONSUMER_APPLY_H
#define HMS_CONSUMER_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct hms_capply hms_capply_t;

/* One event's row of the last batch: outcome ("applied", "stale",
 * "duplicate" or what the apply function returned) when it was applied;
 * otherwise outcome is NULL and sqlstate and message say why its apply
 * failed (nothing of it was kept; the other events of the batch were).  The
 * strings belong to the session and live until the next send or close. */
typedef struct {
    const char *outcome;
    const char *sqlstate;
    const char *message;
} hms_capply_outcome_t;

/* What to wait for before the next hms_capply_step(). */
typedef struct {
    int fd;              /* -1: nothing under way */
    short events;        /* POLLIN and/or POLLOUT */
    int64_t deadline_ms; /* hms_clock_ms() after which to step anyway; 0: none */
} hms_capply_wait_t;

/* A session with no connection yet.  apply names a function of one jsonb
 * argument ("(jsonb)" is appended when it has no argument list).  Each open
 * gives up after the conninfo's connect_timeout, else PGCONNECT_TIMEOUT,
 * else connect_timeout_ms.  *out is the caller's to hms_capply_free(). */
hms_status_t hms_capply_new(const char *conninfo, const char *subscriber, const char *apply,
                            int connect_timeout_ms, hms_capply_t **out, hms_err_t *err);
void hms_capply_free(hms_capply_t *a);

/* Starts opening the session, dropping any it had: connect, check that the
 * apply function and hms_sync.consume_batch exist, prepare the statement.
 * HMS_OK, or an error when the attempt cannot even start. */
hms_status_t hms_capply_open(hms_capply_t *a, int64_t now_ms, hms_err_t *err);

/* Sends hms_sync.consume_batch for n events, events_json being a JSON array
 * of them (NUL-terminated, copied before the call returns), on a ready
 * session.  HMS_ERR_RETRY when the session broke (it is then closed). */
hms_status_t hms_capply_send(hms_capply_t *a, const char *events_json, size_t n, hms_err_t *err);

/* Event i's row of the batch that last ended with 1; false when there is no
 * such row. */
bool hms_capply_result(const hms_capply_t *a, size_t i, hms_capply_outcome_t *out);

/* What the operation under way waits for. */
void hms_capply_wait(const hms_capply_t *a, hms_capply_wait_t *w);

/* Advances the operation under way: 0 while it goes on; 1 when it is over
 * (an open: the session is ready; a batch: it committed, and
 * hms_capply_result() gives each event's row).  Otherwise a negative status,
 * the session ready again or closed:
 *   open:  HMS_ERR_PG, the server unreachable or silent past the deadline
 *          (err names host:port/db), or a check failed (err says how to fix
 *          it: run migrate --subscriber, create the function);
 *   batch: HMS_ERR_RETRY for a transient failure (connection lost, class 08,
 *          40001, 40P01, 57P01..57P03, class 53): nothing committed; back
 *          off and retry, reopening when hms_capply_ready() says so;
 *          HMS_ERR_PG when the statement itself failed (err holds SQLSTATE
 *          and message), which an event's own error never does. */
int hms_capply_step(hms_capply_t *a, int64_t now_ms, hms_err_t *err);

/* Open and idle: an event may be sent. */
bool hms_capply_ready(const hms_capply_t *a);
/* Open: ready, or running a statement. */
bool hms_capply_up(const hms_capply_t *a);
/* An open or an event is under way. */
bool hms_capply_busy(const hms_capply_t *a);
/* Drops the connection and whatever was under way. */
void hms_capply_close(hms_capply_t *a);

#endif
