/* apply.c -- one PostgreSQL session that records and applies events through
 * hms_sync.consume(), as a state machine the consumer's poll loop drives. */
#include "consumer/apply.h"

#include <assert.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/pgconn.h"

#define STMT "hms_consume"
#define CHECK_SQL                                                                                  \
    "SELECT $1::regprocedure::text, "                                                              \
    "to_regprocedure('hms_sync.consume_batch(text,regprocedure,jsonb)') IS NOT NULL"

/* An open goes DOWN -> CONNECTING -> CHECKING -> PREPARING -> READY; an
 * event READY -> RUNNING -> READY.  Any failure that loses the connection
 * goes back to DOWN. */
typedef enum {
    S_DOWN,
    S_CONNECTING, /* `attempt` under way */
    S_CHECKING,   /* the apply function's check in flight */
    S_PREPARING,  /* the PREPARE in flight */
    S_READY,
    S_RUNNING, /* a batch's statement in flight */
} state_t;

struct hms_capply {
    const char *conninfo;
    const char *subscriber;
    int connect_timeout_s;
    char apply[160]; /* with its argument list, for ::regprocedure */
    state_t state;
    hms_pg_connecting_t attempt;
    PGconn *conn;
    int64_t open_deadline_ms; /* the whole open, not only the connect; 0: none */
    bool flushing;            /* the statement is not all sent yet */
    PGresult *res;            /* the statement's result, once it came */
    PGresult *batch;          /* the last batch's rows, until the next send */
    size_t batch_n;           /* events in the batch under way */
    char target[300];         /* host:port/db, for messages */
};

static bool is_transient(const char *sqlstate)
{
    if (sqlstate == NULL)
        return true; /* no SQLSTATE: libpq lost the connection itself */
    return strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0 ||
           strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 ||
           strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0 ||
           strcmp(sqlstate, "57P03") == 0;
}

hms_status_t hms_capply_new(const char *conninfo, const char *subscriber, const char *apply,
                            int connect_timeout_ms, hms_capply_t **out, hms_err_t *err)
{
    hms_capply_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
    a->conninfo = conninfo;
    a->subscriber = subscriber;
    a->connect_timeout_s = (connect_timeout_ms + 999) / 1000;
    snprintf(a->apply, sizeof(a->apply), "%s%s", apply, strchr(apply, '(') ? "" : "(jsonb)");
    a->attempt.fd = -1;
    a->state = S_DOWN;
    *out = a;
    return HMS_OK;
}

void hms_capply_close(hms_capply_t *a)
{
    hms_pg_connect_cancel(&a->attempt);
    PQclear(a->res);
    a->res = NULL;
    PQclear(a->batch);
    a->batch = NULL;
    /* Non-blocking, so the goodbye never waits on a stalled server. */
    PQfinish(a->conn);
    a->conn = NULL;
    a->flushing = false;
    a->state = S_DOWN;
}

void hms_capply_free(hms_capply_t *a)
{
    if (a == NULL)
        return;
    hms_capply_close(a);
    free(a);
}

bool hms_capply_ready(const hms_capply_t *a)
{
    return a->state == S_READY;
}

bool hms_capply_up(const hms_capply_t *a)
{
    return a->state == S_READY || a->state == S_RUNNING;
}

bool hms_capply_busy(const hms_capply_t *a)
{
    return a->state != S_DOWN && a->state != S_READY;
}

hms_status_t hms_capply_open(hms_capply_t *a, int64_t now_ms, hms_err_t *err)
{
    hms_capply_close(a);
    hms_pg_params_t p = {.conninfo = a->conninfo,
                         .application_name = "hms-sync consume",
                         .connect_timeout_s = a->connect_timeout_s};
    hms_status_t st = hms_pg_connect_start(&a->attempt, &p, now_ms, err);
    if (st != HMS_OK)
        return st;
    snprintf(a->target, sizeof(a->target), "%s", a->attempt.target);
    a->open_deadline_ms = a->attempt.deadline_ms;
    a->state = S_CONNECTING;
    return HMS_OK;
}

void hms_capply_wait(const hms_capply_t *a, hms_capply_wait_t *w)
{
    w->fd = -1;
    w->events = 0;
    w->deadline_ms = 0;
    switch (a->state) {
    case S_CONNECTING:
        w->fd = a->attempt.fd;
        w->events = a->attempt.events;
        w->deadline_ms = a->attempt.deadline_ms;
        break;
    case S_CHECKING:
    case S_PREPARING:
    case S_RUNNING:
        w->fd = PQsocket(a->conn);
        w->events = POLLIN | (a->flushing ? POLLOUT : 0);
        w->deadline_ms = a->state == S_RUNNING ? 0 : a->open_deadline_ms;
        break;
    default: break;
    }
}

/* After a PQsend*: pushes out what the socket takes now; the rest goes out
 * in collect().  false when the connection broke. */
static bool sent(hms_capply_t *a, int ok)
{
    int f = ok ? PQflush(a->conn) : -1;
    a->flushing = f == 1;
    return f >= 0;
}

/* Reads what the server sent for the statement in flight: 0 while it runs,
 * 1 when it is over, with its result in a->res (NULL when the connection
 * broke: the outcome is then unknown, and retrying is safe because the inbox
 * turns a second commit into a duplicate). */
static int collect(hms_capply_t *a)
{
    if (!PQconsumeInput(a->conn))
        goto broken;
    if (a->flushing) {
        int f = PQflush(a->conn);
        if (f < 0)
            goto broken;
        a->flushing = f == 1;
        if (a->flushing)
            return 0;
    }
    while (!PQisBusy(a->conn)) {
        PGresult *r = PQgetResult(a->conn);
        if (r == NULL)
            return 1;
        /* One statement, one result; an error after it wins. */
        if (a->res == NULL || PQresultStatus(r) == PGRES_FATAL_ERROR) {
            PQclear(a->res);
            a->res = r;
        } else {
            PQclear(r);
        }
    }
    return 0;
broken:
    PQclear(a->res);
    a->res = NULL;
    return 1;
}

/* The one-line reason: the result's primary message, else libpq's. */
static const char *why(hms_capply_t *a, char *line, size_t len)
{
    const char *primary = a->res ? PQresultErrorField(a->res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return hms_pg_one_line(primary != NULL  ? primary
                           : a->res != NULL ? PQresultErrorMessage(a->res)
                                            : PQerrorMessage(a->conn),
                           line, len);
}

/* Ends an open that failed; err is already set. */
static int open_failed(hms_capply_t *a)
{
    hms_capply_close(a);
    return HMS_ERR_PG;
}

/* CONNECTING: on connection, sends the check of the apply function. */
static int step_connect(hms_capply_t *a, int64_t now_ms, hms_err_t *err)
{
    char line[300];
    PGconn *conn = NULL;
    int r = hms_pg_connect_poll(&a->attempt, now_ms, &conn, err);
    if (r < 0)
        a->state = S_DOWN;
    if (r <= 0)
        return r;
    a->conn = conn;
    hms_pg_target(conn, a->target, sizeof(a->target));
    const char *pv[] = {a->apply};
    if (PQsetnonblocking(conn, 1) != 0 ||
        !sent(a, PQsendQueryParams(conn, CHECK_SQL, 1, NULL, pv, NULL, NULL, 0))) {
        hms_err_set(err, HMS_ERR_PG, "pg: cannot talk to %s: %s", a->target,
                    hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line)));
        return open_failed(a);
    }
    a->state = S_CHECKING;
    return 0;
}

/* CHECKING: the apply function and hms_sync.consume exist; then prepares. */
static int checked(hms_capply_t *a, hms_err_t *err)
{
    char line[300];
    if (PQresultStatus(a->res) != PGRES_TUPLES_OK) {
        hms_err_set(err, HMS_ERR_PG,
                    "pg: apply function %s not found in %s: %s (create it, or run hms-sync "
                    "migrate --subscriber for the seed subscribers)",
                    a->apply, a->target, why(a, line, sizeof(line)));
        return open_failed(a);
    }
    if (strcmp(PQgetvalue(a->res, 0, 1), "t") != 0) {
        hms_err_set(err, HMS_ERR_PG,
                    "pg: hms_sync.consume_batch(text, regprocedure, jsonb) is missing in %s (run "
                    "hms-sync migrate --subscriber --pg ...)",
                    a->target);
        return open_failed(a);
    }
    PQclear(a->res);
    a->res = NULL;
    if (!sent(a, PQsendPrepare(a->conn, STMT,
                               "SELECT outcome, sqlstate, message "
                               "FROM hms_sync.consume_batch($1, $2::regprocedure, $3::jsonb)",
                               3, NULL))) {
        hms_err_set(err, HMS_ERR_PG, "pg: lost %s while opening: %s", a->target,
                    why(a, line, sizeof(line)));
        return open_failed(a);
    }
    a->state = S_PREPARING;
    return 0;
}

/* CHECKING and PREPARING, each within the open's deadline. */
static int step_open(hms_capply_t *a, int64_t now_ms, hms_err_t *err)
{
    char line[300];
    if (collect(a) == 0) {
        if (a->open_deadline_ms == 0 || now_ms < a->open_deadline_ms)
            return 0;
        hms_err_set(err, HMS_ERR_PG,
                    "pg: %s accepted the connection but did not answer within connect_timeout",
                    a->target);
        return open_failed(a);
    }
    if (a->res == NULL) {
        hms_err_set(err, HMS_ERR_PG, "pg: lost %s while opening: %s", a->target,
                    why(a, line, sizeof(line)));
        return open_failed(a);
    }
    if (a->state == S_CHECKING)
        return checked(a, err);
    if (PQresultStatus(a->res) != PGRES_COMMAND_OK) {
        hms_err_set(err, HMS_ERR_PG, "pg: cannot prepare the consume statement in %s: %s",
                    a->target, why(a, line, sizeof(line)));
        return open_failed(a);
    }
    PQclear(a->res);
    a->res = NULL;
    a->state = S_READY;
    return 1;
}

/* RUNNING: the batch's rows, one per event in order. */
static int step_batch(hms_capply_t *a, hms_err_t *err)
{
    char line[300];
    if (collect(a) == 0)
        return 0;
    int st = 1;
    PGresult *res = a->res;
    a->res = NULL;
    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 3 &&
        (size_t)PQntuples(res) == a->batch_n) {
        a->batch = res;
        res = NULL;
    } else if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        st = hms_err_set(err, HMS_ERR_PG,
                         "apply failed: hms_sync.consume_batch returned %d rows for %zu events",
                         PQntuples(res), a->batch_n);
    } else {
        const char *sqlstate = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        a->res = res;
        why(a, line, sizeof(line));
        a->res = NULL;
        if (res == NULL || PQstatus(a->conn) != CONNECTION_OK || is_transient(sqlstate))
            st = hms_err_set(err, HMS_ERR_RETRY, "pg: transient failure%s%s: %s",
                             sqlstate ? " " : "", sqlstate ? sqlstate : "", line);
        else
            st = hms_err_set(err, HMS_ERR_PG, "apply failed: SQLSTATE %s: %s", sqlstate, line);
    }
    PQclear(res);
    a->state = S_READY;
    if (PQstatus(a->conn) != CONNECTION_OK)
        hms_capply_close(a);
    return st;
}

int hms_capply_step(hms_capply_t *a, int64_t now_ms, hms_err_t *err)
{
    switch (a->state) {
    case S_CONNECTING: return step_connect(a, now_ms, err);
    case S_CHECKING:
    case S_PREPARING: return step_open(a, now_ms, err);
    case S_RUNNING: return step_batch(a, err);
    default: return hms_err_set(err, HMS_ERR_STATE, "pg: nothing under way");
    }
}

hms_status_t hms_capply_send(hms_capply_t *a, const char *events_json, size_t n, hms_err_t *err)
{
    char line[300];
    assert(a->state == S_READY);
    PQclear(a->batch);
    a->batch = NULL;
    a->batch_n = n;
    const char *params[] = {a->subscriber, a->apply, events_json};
    if (!sent(a, PQsendQueryPrepared(a->conn, STMT, 3, params, NULL, NULL, 0))) {
        hms_err_set(err, HMS_ERR_RETRY, "pg: transient failure: %s",
                    hms_pg_one_line(PQerrorMessage(a->conn), line, sizeof(line)));
        hms_capply_close(a);
        return HMS_ERR_RETRY;
    }
    a->state = S_RUNNING;
    return HMS_OK;
}

bool hms_capply_result(const hms_capply_t *a, size_t i, hms_capply_outcome_t *out)
{
    if (a->batch == NULL || i >= a->batch_n)
        return false;
    int r = (int)i;
    out->outcome = PQgetisnull(a->batch, r, 0) ? NULL : PQgetvalue(a->batch, r, 0);
    out->sqlstate = PQgetisnull(a->batch, r, 1) ? NULL : PQgetvalue(a->batch, r, 1);
    out->message = PQgetisnull(a->batch, r, 2) ? NULL : PQgetvalue(a->batch, r, 2);
    return true;
}
