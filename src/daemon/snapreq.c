/* snapreq.c -- snapshot requests in hms_sync.snapshots, from the command
 * line's side. */
#include "daemon/snapreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pgconn.h"
#include "core/wherecheck.h"

#define UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Column order of every read: see row_to_req. */
#define COLUMNS                                                                                    \
    "id, slot, state, where_sql, queue, rows_total, rows_done, chunks_done, " UTC(                 \
        "requested_at") ", " UTC("started_at") ", " UTC("finished_at") ", " UTC("updated_at") ", " \
                                                                                              "er" \
                                                                                              "ro" \
                                                                                              "r," \
                                                                                              " i" \
                                                                                              "ni" \
                                                                                              "ti" \
                                                                                              "al"

/* What --where is checked in; its length places the server's error
 * position inside the condition. */
#define EXPLAIN_HEAD "EXPLAIN SELECT 1 FROM %s.%s WHERE ("

void hms_snapreq_clear(hms_snapreq_t *r)
{
    free(r->where_sql);
    free(r->queue);
    free(r->error);
    memset(r, 0, sizeof(*r));
}

bool hms_snapreq_finished(const hms_snapreq_t *r)
{
    return strcmp(r->state, "pending") != 0 && strcmp(r->state, "running") != 0;
}

/* The server's error on conn as one line, primary message first. */
static const char *pg_reason(PGconn *conn, const PGresult *res, char *out, size_t outlen)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return hms_pg_one_line(primary ? primary : PQerrorMessage(conn), out, outlen);
}

static hms_status_t fail(PGconn *conn, PGresult *res, hms_err_t *err, const char *what)
{
    char line[300];
    pg_reason(conn, res, line, sizeof(line));
    PQclear(res);
    return hms_err_set(err, HMS_ERR_PG, "snapshot: %s: %s", what, line);
}

hms_status_t hms_snapreq_table_ok(PGconn *conn, const char *target, hms_err_t *err)
{
    PGresult *res = PQexec(conn, "SELECT to_regclass('hms_sync.snapshots') IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return fail(conn, res, err, "cannot look for hms_sync.snapshots");
    bool ok = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!ok)
        return hms_err_set(err, HMS_ERR_PG,
                           "snapshot: table hms_sync.snapshots does not exist on %s; install it "
                           "with `hms-sync migrate` (a binary with snapshots)",
                           target);
    return HMS_OK;
}

/* Runs one command that returns no rows; false on failure (res kept in
 * *failed for the message, or NULL). */
static bool command(PGconn *conn, const char *sql, PGresult **failed)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        return true;
    }
    *failed = res;
    return false;
}

hms_status_t hms_snapreq_check_where(PGconn *conn, const hms_capture_t *cap, const char *where,
                                     hms_err_t *err)
{
    char why[200];
    if (!hms_where_check(where, why, sizeof(why)))
        return hms_err_set(err, HMS_ERR_CONFIG, "snapshot: --where: %s", why);

    /* The connector pastes the condition as "(<where>\n)": the new line
     * ends a comment the scanner missed before it can swallow the ')'.  Sent
     * with the extended protocol, which takes one statement only. */
    int prefix = snprintf(NULL, 0, EXPLAIN_HEAD, cap->schema, cap->table);
    char *sql = NULL;
    if (asprintf(&sql, EXPLAIN_HEAD "%s\n)", cap->schema, cap->table, where) < 0)
        return hms_err_set(err, HMS_ERR_NOMEM, "snapshot: out of memory");

    PGresult *res = NULL;
    hms_status_t st = HMS_OK;
    if (!command(conn, "BEGIN READ ONLY", &res) ||
        !command(conn, "SET LOCAL statement_timeout = '30s'", &res)) {
        st = fail(conn, res, err, "cannot check --where");
        goto done;
    }
    res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (PQstatus(conn) != CONNECTION_OK) {
            st = fail(conn, res, err, "cannot check --where");
            goto done;
        }
        /* The server's words, and where in the condition it stopped. */
        char line[300], hint[200] = "", at[48] = "";
        pg_reason(conn, res, line, sizeof(line));
        const char *h = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
        if (h != NULL)
            snprintf(hint, sizeof(hint), "; hint: %s", h);
        const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
        long p = pos != NULL ? strtol(pos, NULL, 10) - prefix : 0;
        if (p > 0 && (size_t)p <= strlen(where))
            snprintf(at, sizeof(at), " at character %ld of it", p);
        st = hms_err_set(err, HMS_ERR_CONFIG, "snapshot: --where (a condition on %s.%s): %s%s%s",
                         cap->schema, cap->table, line, at, hint);
    }
    PQclear(res);
    res = NULL;
done:
    PQclear(res);
    PQclear(PQexec(conn, "ROLLBACK"));
    free(sql);
    return st;
}

hms_status_t hms_snapreq_slot(PGconn *conn, const char *slot, hms_snapreq_slot_t *state,
                              hms_err_t *err)
{
    const char *params[1] = {slot};
    PGresult *res = PQexecParams(conn,
                                 "SELECT active FROM pg_catalog.pg_replication_slots "
                                 "WHERE slot_name = $1",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(conn, res, err, "cannot read pg_replication_slots");
    *state = PQntuples(res) == 0               ? HMS_SNAPREQ_SLOT_MISSING
             : PQgetvalue(res, 0, 0)[0] == 't' ? HMS_SNAPREQ_SLOT_STREAMING
                                               : HMS_SNAPREQ_SLOT_IDLE;
    PQclear(res);
    return HMS_OK;
}

hms_status_t hms_snapreq_insert(PGconn *conn, const char *slot, const char *where,
                                const char *queue, char *id, size_t idlen, hms_err_t *err)
{
    const char *params[3] = {slot, where, queue};
    PGresult *res = PQexecParams(conn,
                                 "INSERT INTO hms_sync.snapshots (slot, where_sql, queue) "
                                 "VALUES ($1, $2, $3) RETURNING id",
                                 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        return fail(conn, res, err, "cannot queue the request in hms_sync.snapshots");
    snprintf(id, idlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return HMS_OK;
}

static char *dup_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : strdup(PQgetvalue(res, row, col));
}

static int64_t count_or_unknown(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? -1 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Fills r from row of a result with COLUMNS; false on out of memory. */
static bool row_to_req(const PGresult *res, int row, hms_snapreq_t *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "%s", PQgetvalue(res, row, 0));
    snprintf(r->slot, sizeof(r->slot), "%s", PQgetvalue(res, row, 1));
    snprintf(r->state, sizeof(r->state), "%s", PQgetvalue(res, row, 2));
    r->where_sql = dup_or_null(res, row, 3);
    r->queue = dup_or_null(res, row, 4);
    r->rows_total = count_or_unknown(res, row, 5);
    r->rows_done = count_or_unknown(res, row, 6);
    r->chunks_done = count_or_unknown(res, row, 7);
    char *times[4] = {r->requested_at, r->started_at, r->finished_at, r->updated_at};
    for (int k = 0; k < 4; k++)
        snprintf(times[k], sizeof(r->requested_at), "%s", PQgetvalue(res, row, 8 + k));
    r->error = dup_or_null(res, row, 12);
    r->initial = PQgetvalue(res, row, 13)[0] == 't';
    return (r->where_sql != NULL || PQgetisnull(res, row, 3)) &&
           (r->queue != NULL || PQgetisnull(res, row, 4)) &&
           (r->error != NULL || PQgetisnull(res, row, 12));
}

hms_status_t hms_snapreq_get(PGconn *conn, const char *id, hms_snapreq_t *r, bool *found,
                             hms_err_t *err)
{
    hms_snapreq_clear(r);
    *found = false;
    const char *params[1] = {id};
    PGresult *res = PQexecParams(conn, "SELECT " COLUMNS " FROM hms_sync.snapshots WHERE id = $1",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(conn, res, err, "cannot read hms_sync.snapshots");
    hms_status_t st = HMS_OK;
    if (PQntuples(res) == 1) {
        *found = true;
        if (!row_to_req(res, 0, r))
            st = hms_err_set(err, HMS_ERR_NOMEM, "snapshot: out of memory");
    }
    PQclear(res);
    return st;
}

hms_status_t hms_snapreq_cancel(PGconn *conn, const char *id, hms_snapreq_t *r, bool *found,
                                bool *cancelled, hms_err_t *err)
{
    /* A running request is the connector's to stop: it checks the state
     * before each chunk and leaves a cancelled row as it is. */
    const char *params[1] = {id};
    PGresult *res = PQexecParams(conn,
                                 "UPDATE hms_sync.snapshots SET state = 'cancelled', "
                                 "finished_at = now(), updated_at = now() "
                                 "WHERE id = $1 AND state IN ('pending', 'running')",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail(conn, res, err, "cannot cancel");
    *cancelled = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    return hms_snapreq_get(conn, id, r, found, err);
}

hms_status_t hms_snapreq_list(PGconn *conn, const char *slot, bool current, hms_snapreq_t **out,
                              size_t *n, hms_err_t *err)
{
    static const char all_sql[] =
        "SELECT " COLUMNS " FROM hms_sync.snapshots WHERE slot = $1 ORDER BY requested_at, id";
    static const char current_sql[] =
        "SELECT " COLUMNS " FROM hms_sync.snapshots WHERE slot = $1 AND (state IN ('pending', "
        "'running') OR id = (SELECT id FROM hms_sync.snapshots WHERE slot = $1 AND state NOT IN "
        "('pending', 'running') ORDER BY finished_at DESC NULLS LAST, requested_at DESC LIMIT 1)) "
        "ORDER BY requested_at, id";
    *out = NULL;
    *n = 0;
    const char *params[1] = {slot};
    PGresult *res =
        PQexecParams(conn, current ? current_sql : all_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return fail(conn, res, err, "cannot read hms_sync.snapshots");
    int rows = PQntuples(res);
    hms_snapreq_t *list = rows > 0 ? calloc((size_t)rows, sizeof(*list)) : NULL;
    if (rows > 0 && list == NULL) {
        PQclear(res);
        return hms_err_set(err, HMS_ERR_NOMEM, "snapshot: out of memory");
    }
    for (int i = 0; i < rows; i++) {
        if (!row_to_req(res, i, &list[i])) {
            hms_snapreq_free_list(list, (size_t)i + 1);
            PQclear(res);
            return hms_err_set(err, HMS_ERR_NOMEM, "snapshot: out of memory");
        }
    }
    PQclear(res);
    *out = list;
    *n = (size_t)rows;
    return HMS_OK;
}

void hms_snapreq_free_list(hms_snapreq_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hms_snapreq_clear(&list[i]);
    free(list);
}

static json_object *str_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? json_object_new_string(s) : NULL;
}

static json_object *count_or_null(int64_t v)
{
    return v >= 0 ? json_object_new_int64(v) : NULL;
}

json_object *hms_snapreq_json(const hms_snapreq_t *r)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    struct {
        const char *key;
        json_object *v;
        bool null_ok;
    } m[] = {
        {"id", json_object_new_string(r->id), false},
        {"state", json_object_new_string(r->state), false},
        {"rows_done", count_or_null(r->rows_done), true},
        {"rows_total", count_or_null(r->rows_total), true},
        {"chunks_done", count_or_null(r->chunks_done), true},
        {"queue", str_or_null(r->queue), true},
        {"where", str_or_null(r->where_sql), true},
        {"initial", json_object_new_boolean(r->initial), false},
        {"requested_at", str_or_null(r->requested_at), true},
        {"started_at", str_or_null(r->started_at), true},
        {"finished_at", str_or_null(r->finished_at), true},
        {"updated_at", str_or_null(r->updated_at), true},
        {"error", str_or_null(r->error), true},
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        if (m[i].v == NULL && !m[i].null_ok)
            ok = false;
        if (!ok || json_object_object_add(o, m[i].key, m[i].v) != 0) {
            ok = false;
            json_object_put(m[i].v);
        }
    }
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

json_object *hms_snapreq_json_list(const hms_snapreq_t *reqs, size_t n)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_object *o = hms_snapreq_json(&reqs[i]);
        if (o == NULL || json_object_array_add(arr, o) != 0) {
            json_object_put(o);
            json_object_put(arr);
            arr = NULL;
        }
    }
    return arr;
}

void hms_snapreq_rows(const hms_snapreq_t *r, char *out, size_t outlen)
{
    if (r->rows_total >= 0)
        snprintf(out, outlen, "%lld/%lld rows", (long long)r->rows_done, (long long)r->rows_total);
    else
        snprintf(out, outlen, "%lld rows", (long long)(r->rows_done > 0 ? r->rows_done : 0));
}
