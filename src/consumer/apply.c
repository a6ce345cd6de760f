/* apply.c -- one PostgreSQL session that records and applies events through
 * hms_sync.consume(). */
#include "consumer/apply.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/pgconn.h"

#define STMT "hms_consume"

struct hms_capply {
    PGconn *conn;
    const char *subscriber;
    char apply[160]; /* with its argument list, for ::regprocedure */
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

hms_status_t hms_capply_connect(const char *conninfo, const char *subscriber, const char *apply,
                                int connect_timeout_ms, hms_capply_t **out, hms_err_t *err)
{
    hms_status_t st;
    PGresult *res = NULL;
    char target[300], line[300];
    hms_capply_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
    a->subscriber = subscriber;
    snprintf(a->apply, sizeof(a->apply), "%s%s", apply, strchr(apply, '(') ? "" : "(jsonb)");
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", (connect_timeout_ms + 999) / 1000);
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *vals[] = {conninfo, timeout, "hms-sync consume", NULL};
    a->conn = PQconnectdbParams(keys, vals, 1);
    if (a->conn == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
        goto fail;
    }
    if (PQstatus(a->conn) != CONNECTION_OK) {
        hms_pg_target(a->conn, target, sizeof(target));
        hms_pg_one_line(PQerrorMessage(a->conn), line, sizeof(line));
        st = hms_err_set(err, HMS_ERR_PG, "pg: cannot connect to %s: %s", target, line);
        goto fail;
    }
    hms_pg_target(a->conn, target, sizeof(target));
    const char *pv[] = {a->apply};
    res = PQexecParams(a->conn,
                       "SELECT $1::regprocedure::text, "
                       "to_regprocedure('hms_sync.consume(text,regprocedure,jsonb)') IS NOT NULL",
                       1, NULL, pv, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        hms_pg_one_line(primary != NULL ? primary : PQresultErrorMessage(res), line, sizeof(line));
        st = hms_err_set(err, HMS_ERR_PG,
                         "pg: apply function %s not found in %s: %s (create it, or run hms-sync "
                         "migrate --subscriber for the seed subscribers)",
                         a->apply, target, line);
        goto fail;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        st = hms_err_set(err, HMS_ERR_PG,
                         "pg: hms_sync.consume(text, regprocedure, jsonb) is missing in %s (run "
                         "hms-sync migrate --subscriber --pg ...)",
                         target);
        goto fail;
    }
    PQclear(res);
    res = PQprepare(a->conn, STMT, "SELECT hms_sync.consume($1, $2::regprocedure, $3::jsonb)", 3,
                    NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        hms_pg_one_line(PQresultErrorMessage(res), line, sizeof(line));
        st = hms_err_set(err, HMS_ERR_PG, "pg: cannot prepare the consume statement in %s: %s",
                         target, line);
        goto fail;
    }
    PQclear(res);
    *out = a;
    return HMS_OK;
fail:
    PQclear(res);
    hms_capply_close(a);
    return st;
}

void hms_capply_close(hms_capply_t *a)
{
    if (a == NULL)
        return;
    PQfinish(a->conn);
    free(a);
}

int hms_capply_ok(const hms_capply_t *a)
{
    return a != NULL && PQstatus(a->conn) == CONNECTION_OK;
}

hms_status_t hms_capply_event(hms_capply_t *a, const char *event_json, char *outcome,
                              size_t outcome_len, hms_err_t *err)
{
    const char *params[] = {a->subscriber, a->apply, event_json};
    PGresult *res = PQexecPrepared(a->conn, STMT, 3, params, NULL, NULL, 0);
    hms_status_t st = HMS_OK;
    char line[300];
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        snprintf(outcome, outcome_len, "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
    } else {
        const char *sqlstate = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        hms_pg_one_line(primary != NULL ? primary
                        : res != NULL   ? PQresultErrorMessage(res)
                                        : PQerrorMessage(a->conn),
                        line, sizeof(line));
        if (PQstatus(a->conn) != CONNECTION_OK || is_transient(sqlstate))
            st = hms_err_set(err, HMS_ERR_RETRY, "pg: transient failure%s%s: %s",
                             sqlstate ? " " : "", sqlstate ? sqlstate : "", line);
        else
            st = hms_err_set(err, HMS_ERR_PG, "apply failed: SQLSTATE %s: %s", sqlstate, line);
    }
    PQclear(res);
    return st;
}
