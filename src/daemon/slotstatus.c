/* slotstatus.c -- reads a replication slot's position, lag and retained WAL for `hms-sync status`.
 */
#include "daemon/slotstatus.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "common/pgconn.h"
#include "daemon/migrations.h"
#include "daemon/snapreq.h"

/* Width of the key column in text output: the longest key plus its colon. */
#define KEY_WIDTH 27

#define UTC_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

/* On a standby pg_current_wal_lsn() raises an error; the replayed position is
 * the one the slot is measured against there. */
static const char slot_sql[] =
    "SELECT s.slot_name, s.plugin, s.slot_type, s.database, s.active, s.active_pid,"
    " s.confirmed_flush_lsn, s.restart_lsn, w.lsn,"
    " pg_wal_lsn_diff(w.lsn, s.confirmed_flush_lsn)::bigint,"
    " pg_wal_lsn_diff(w.lsn, s.restart_lsn)::bigint,"
    " s.wal_status, s.safe_wal_size,"
    " to_char(r.reply_time AT TIME ZONE 'UTC', " UTC_FMT ")"
    " FROM pg_catalog.pg_replication_slots s"
    " CROSS JOIN (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    "   ELSE pg_current_wal_lsn() END AS lsn) w"
    " LEFT JOIN pg_catalog.pg_stat_replication r ON s.active AND r.pid = s.active_pid"
    " WHERE s.slot_name = $1";

static const char progress_sql[] =
    "SELECT last_commit_lsn, to_char(last_commit_time AT TIME ZONE 'UTC', " UTC_FMT "),"
    " round(extract(epoch FROM now() - last_commit_time)::numeric, 3),"
    " to_char(updated_at AT TIME ZONE 'UTC', " UTC_FMT ")"
    " FROM hms_sync.slot_progress WHERE slot_name = $1";

typedef enum { COL_STR, COL_INT, COL_BOOL, COL_NUM } col_kind_t;

typedef struct {
    const char *key;
    col_kind_t kind;
} col_t;

/* Column order of slot_sql and progress_sql, which is also the output order. */
static const col_t slot_cols[] = {
    {"slot_name", COL_STR},
    {"plugin", COL_STR},
    {"slot_type", COL_STR},
    {"database", COL_STR},
    {"active", COL_BOOL},
    {"active_pid", COL_INT},
    {"confirmed_flush_lsn", COL_STR},
    {"restart_lsn", COL_STR},
    {"current_wal_lsn", COL_STR},
    {"lag_bytes", COL_INT},
    {"wal_retained_bytes", COL_INT},
    {"wal_status", COL_STR},
    {"safe_wal_size", COL_INT},
    {"reply_time", COL_STR},
};
static const col_t progress_cols[] = {
    {"last_commit_lsn", COL_STR},
    {"last_commit_time", COL_STR},
    {"seconds_since_last_commit", COL_NUM},
    {"progress_updated_at", COL_STR},
};

/* Adds one result value under key; a NULL value or a missing row is JSON null. */
static hms_status_t add_value(json_object *obj, const col_t *col, const PGresult *res, int col_no,
                              hms_err_t *err)
{
    json_object *v = NULL;
    if (res != NULL && PQntuples(res) > 0 && !PQgetisnull(res, 0, col_no)) {
        const char *s = PQgetvalue(res, 0, col_no);
        switch (col->kind) {
        case COL_STR: v = json_object_new_string(s); break;
        case COL_INT: v = json_object_new_int64(strtoll(s, NULL, 10)); break;
        case COL_BOOL: v = json_object_new_boolean(s[0] == 't'); break;
        case COL_NUM: v = json_object_new_double_s(strtod(s, NULL), s); break;
        }
        if (v == NULL)
            return hms_err_set(err, HMS_ERR_NOMEM, "status: out of memory");
    }
    if (json_object_object_add(obj, col->key, v) != 0) {
        json_object_put(v);
        return hms_err_set(err, HMS_ERR_NOMEM, "status: out of memory");
    }
    return HMS_OK;
}

/* One snapshot of the "snapshots" array as a text line's value:
 * "<id> running, 4608/10240 rows, to queue warehouse". */
static void snapshot_text(json_object *snap, char *out, size_t outlen)
{
    json_object *v;
    const char *id = "", *state = "", *queue = NULL;
    int64_t done = 0, total = -1;
    if (json_object_object_get_ex(snap, "id", &v))
        id = json_object_get_string(v);
    if (json_object_object_get_ex(snap, "state", &v))
        state = json_object_get_string(v);
    if (json_object_object_get_ex(snap, "queue", &v) && v != NULL)
        queue = json_object_get_string(v);
    if (json_object_object_get_ex(snap, "rows_done", &v) && v != NULL)
        done = json_object_get_int64(v);
    if (json_object_object_get_ex(snap, "rows_total", &v) && v != NULL)
        total = json_object_get_int64(v);
    char rows[64];
    if (total >= 0)
        snprintf(rows, sizeof(rows), "%lld/%lld rows", (long long)done, (long long)total);
    else
        snprintf(rows, sizeof(rows), "%lld rows", (long long)done);
    snprintf(out, outlen, "%s %s, %s, to %s%s", id, state, rows, queue ? "queue " : "the exchange",
             queue ? queue : "");
}

static void print_text(json_object *obj, FILE *out)
{
    json_object_object_foreach(obj, key, val)
    {
        const char *s;
        char line[400];
        if (json_object_is_type(val, json_type_array)) {
            /* The snapshots: one line each, or one saying there is none. */
            size_t n = json_object_array_length(val);
            if (n == 0)
                fprintf(out, "%s:%*s%s\n", key, (int)(KEY_WIDTH - strlen(key)), "", "none");
            for (size_t i = 0; i < n; i++) {
                snapshot_text(json_object_array_get_idx(val, i), line, sizeof(line));
                fprintf(out, "%s:%*s%s\n", "snapshot", (int)(KEY_WIDTH - strlen("snapshot")), "",
                        line);
            }
            continue;
        }
        if (val == NULL)
            s = "unknown";
        else if (json_object_is_type(val, json_type_string))
            s = json_object_get_string(val);
        else
            s = json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN);
        fprintf(out, "%s:%*s%s\n", key, (int)(KEY_WIDTH - strlen(key)), "", s);
    }
}

/* Reads the connector's progress row; the table is absent until migrate has
 * run, and the row until the connector has confirmed something, and both
 * simply leave the values unknown.  *res is NULL when the table is absent. */
static hms_status_t read_progress(PGconn *conn, const char *slot, const char *target,
                                  PGresult **res, hms_err_t *err)
{
    char line[256];
    *res = NULL;
    PGresult *r = PQexec(conn, "SELECT to_regclass('hms_sync.slot_progress') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        goto fail;
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return HMS_OK;
    const char *params[1] = {slot};
    r = PQexecParams(conn, progress_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        goto fail;
    *res = r;
    return HMS_OK;

fail:
    snprintf(line, sizeof(line), "%s", PQerrorMessage(conn));
    line[strcspn(line, "\n")] = '\0';
    PQclear(r);
    return hms_err_set(err, HMS_ERR_PG, "status: reading hms_sync.slot_progress on %s: %s", target,
                       line);
}

/* The slot's snapshots that are pending or running, and the one that
 * finished last, as a JSON array into *out; JSON null when the table is
 * absent (migrations from before snapshots). */
static hms_status_t read_snapshots(PGconn *conn, const char *slot, const char *target,
                                   json_object **out, hms_err_t *err)
{
    *out = NULL;
    PGresult *r = PQexec(conn, "SELECT to_regclass('hms_sync.snapshots') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char line[256];
        hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line));
        PQclear(r);
        return hms_err_set(err, HMS_ERR_PG, "status: looking for hms_sync.snapshots on %s: %s",
                           target, line);
    }
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return HMS_OK;
    hms_snapreq_t *reqs = NULL;
    size_t n = 0;
    hms_status_t st = hms_snapreq_list(conn, slot, true, &reqs, &n, err);
    if (st != HMS_OK)
        return st;
    json_object *arr = hms_snapreq_json_list(reqs, n);
    hms_snapreq_free_list(reqs, n);
    if (arr == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "status: out of memory");
    *out = arr;
    return HMS_OK;
}

hms_status_t hms_slot_status_read(const char *conninfo, const char *slot, int connect_timeout_s,
                                  json_object **out, hms_err_t *err)
{
    char target[256], line[256];
    PGconn *conn = NULL;
    PGresult *sres = NULL, *pres = NULL;
    json_object *obj = NULL, *snaps = NULL;
    hms_status_t st;

    if (slot == NULL)
        slot = HMS_SLOT_DEFAULT;
    if (*slot == '\0' || strlen(slot) > 63)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "status: slot name must be 1 to 63 characters, got \"%.80s\"", slot);
    if ((st = hms_pg_open(conninfo, "status", connect_timeout_s, &conn, err)) != HMS_OK)
        return st;
    hms_pg_target(conn, target, sizeof(target));

    const char *params[1] = {slot};
    sres = PQexecParams(conn, slot_sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(sres) != PGRES_TUPLES_OK) {
        snprintf(line, sizeof(line), "%s", PQerrorMessage(conn));
        line[strcspn(line, "\n")] = '\0';
        st = hms_err_set(err, HMS_ERR_PG, "status: reading slot \"%s\" on %s: %s", slot, target,
                         line);
        goto fail;
    }
    if (PQntuples(sres) == 0) {
        st = hms_err_set(err, HMS_ERR_PG,
                         "status: replication slot \"%s\" does not exist on %s; run `hms-sync "
                         "run` once against this database to create it",
                         slot, target);
        goto fail;
    }
    if ((st = read_progress(conn, slot, target, &pres, err)) != HMS_OK ||
        (st = read_snapshots(conn, slot, target, &snaps, err)) != HMS_OK)
        goto fail;

    obj = json_object_new_object();
    if (obj == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "status: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < sizeof(slot_cols) / sizeof(slot_cols[0]); i++)
        if ((st = add_value(obj, &slot_cols[i], sres, (int)i, err)) != HMS_OK)
            goto fail;
    for (size_t i = 0; i < sizeof(progress_cols) / sizeof(progress_cols[0]); i++)
        if ((st = add_value(obj, &progress_cols[i], pres, (int)i, err)) != HMS_OK)
            goto fail;
    if (json_object_object_add(obj, "snapshots", snaps) != 0) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "status: out of memory");
        goto fail;
    }
    snaps = NULL; /* obj holds it */
    *out = obj;
    obj = NULL;
    st = HMS_OK;

fail:
    json_object_put(snaps);
    json_object_put(obj);
    PQclear(pres);
    PQclear(sres);
    PQfinish(conn);
    return st;
}

void hms_slot_status_print(json_object *obj, bool json, FILE *out)
{
    if (json)
        fprintf(out, "%s\n",
                json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    else
        print_text(obj, out);
    fflush(out);
}

hms_status_t hms_slot_status(const char *conninfo, const char *slot, int connect_timeout_s,
                             bool json, FILE *out, hms_err_t *err)
{
    json_object *obj;
    hms_status_t st = hms_slot_status_read(conninfo, slot, connect_timeout_s, &obj, err);
    if (st != HMS_OK)
        return st;
    hms_slot_status_print(obj, json, out);
    json_object_put(obj);
    return HMS_OK;
}
