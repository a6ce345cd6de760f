/* repl.c -- the logical replication connection (libpq, replication=database). */
#include "daemon/repl.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "core/lsn.h"
#include "core/pgoutput.h"
#include "core/walproto.h"

struct hms_repl {
    PGconn *conn;
    char *copybuf;
    char sysid[32];
    char dbname[128];
    char target[300];
    uint64_t start_lsn;
    uint64_t progress_lsn; /* hms_sync.slot_progress.confirmed_lsn, 0 if none */
    int sender_timeout_ms; /* this walsender's wal_sender_timeout; 0 = none */
};

/* The value the user gave for keyword in conninfo, or NULL.  Copied. */
static char *conninfo_value(const char *conninfo, const char *keyword)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    char *v = NULL;
    if (opts == NULL)
        return NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, keyword) == 0 && o->val != NULL && o->val[0] != '\0')
            v = strdup(o->val);
    PQconninfoFree(opts);
    return v;
}

static PGconn *connect_replication(const hms_repl_opts_t *opts, hms_err_t *err, hms_status_t *st)
{
    char timeout[16], options[1024], line[600];
    char *user_options = conninfo_value(opts->conninfo, "options");
    char *user_timeout = conninfo_value(opts->conninfo, "connect_timeout");
    snprintf(timeout, sizeof(timeout), "%d", opts->connect_timeout_s);
    snprintf(
        options, sizeof(options),
        "%s -c datestyle=ISO -c timezone=UTC -c extra_float_digits=3 -c intervalstyle=iso_8601",
        user_options ? user_options : "");
    const char *keys[] = {
        "dbname",           "replication", "options",         "fallback_application_name",
        "connect_timeout",  "keepalives",  "keepalives_idle", "keepalives_interval",
        "keepalives_count", NULL};
    const char *vals[] = {
        opts->conninfo, "database", options, "hms-sync", user_timeout ? user_timeout : timeout, "1",
        "10",           "5",        "3",     NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    free(user_options);
    free(user_timeout);
    if (conn == NULL) {
        *st = hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        *st = hms_err_set(err, HMS_ERR_PG, "pg: cannot connect to PostgreSQL: %s",
                          hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line)));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* Runs a query expecting tuples; returns NULL (and sets err) on failure. */
static PGresult *query(hms_repl_t *r, const char *sql, ExecStatusType want, hms_err_t *err,
                       const char *what)
{
    char line[600];
    PGresult *res = PQexec(r->conn, sql);
    if (PQresultStatus(res) != want) {
        hms_err_set(err, HMS_ERR_PG, "pg: %s on %s failed: %s", what, r->target,
                    hms_pg_one_line(PQerrorMessage(r->conn), line, sizeof(line)));
        PQclear(res);
        return NULL;
    }
    return res;
}

static hms_status_t identify(hms_repl_t *r, hms_err_t *err)
{
    PGresult *res = query(r, "IDENTIFY_SYSTEM", PGRES_TUPLES_OK, err, "IDENTIFY_SYSTEM");
    if (res == NULL)
        return HMS_ERR_PG;
    if (PQntuples(res) != 1 || PQnfields(res) < 4 || PQgetisnull(res, 0, 3)) {
        PQclear(res);
        return hms_err_set(err, HMS_ERR_FATAL,
                           "pg: %s did not identify a database; the connection string must name "
                           "the database to capture (dbname=...)",
                           r->target);
    }
    snprintf(r->sysid, sizeof(r->sysid), "%s", PQgetvalue(res, 0, 0));
    snprintf(r->dbname, sizeof(r->dbname), "%s", PQgetvalue(res, 0, 3));
    PQclear(res);
    snprintf(r->target + strlen(r->target), sizeof(r->target) - strlen(r->target), "/%s",
             r->dbname);

    res = query(r, "SHOW wal_level", PGRES_TUPLES_OK, err, "SHOW wal_level");
    if (res == NULL)
        return HMS_ERR_PG;
    const char *level = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "?";
    if (strcmp(level, "logical") != 0) {
        hms_err_set(err, HMS_ERR_FATAL,
                    "pg: wal_level is '%s' on %s; hms-sync needs wal_level = logical "
                    "(set it in postgresql.conf and restart PostgreSQL)",
                    level, r->target);
        PQclear(res);
        return HMS_ERR_FATAL;
    }
    PQclear(res);

    /* The walsender drops a client that sends no status for this long; the
     * loop must report at least that often even while it reads nothing.
     * Asked through SQL so a per-connection setting (options=-c...) counts. */
    res = PQexec(r->conn,
                 "SELECT setting FROM pg_catalog.pg_settings WHERE name = 'wal_sender_timeout'");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        r->sender_timeout_ms = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return HMS_OK;
}

static hms_status_t check_publication(hms_repl_t *r, const char *pub, hms_err_t *err)
{
    char sql[512];
    char *lit = PQescapeLiteral(r->conn, pub, strlen(pub));
    if (lit == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
    snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s", lit);
    PQfreemem(lit);
    PGresult *res = query(r, sql, PGRES_TUPLES_OK, err, "publication check");
    if (res == NULL)
        return HMS_ERR_PG;
    int n = PQntuples(res);
    PQclear(res);
    if (n == 0)
        return hms_err_set(err, HMS_ERR_FATAL,
                           "pg: publication \"%s\" does not exist in %s; install it with "
                           "`hms-sync migrate` or fix --publication",
                           pub, r->target);
    return HMS_OK;
}

/* A slot that is missing although hms_sync.slot_progress remembers it was
 * dropped behind our back: recreating it would silently skip changes. */
static bool slot_remembered(hms_repl_t *r, const char *lit_slot, char *lsn, size_t lsnlen)
{
    char sql[512];
    PGresult *res = PQexec(r->conn, "SELECT to_regclass('hms_sync.slot_progress') IS NOT NULL");
    bool have = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!have)
        return false;
    snprintf(sql, sizeof(sql),
             "SELECT confirmed_lsn::text FROM hms_sync.slot_progress WHERE slot_name = %s",
             lit_slot);
    res = PQexec(r->conn, sql);
    bool found = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (found)
        snprintf(lsn, lsnlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return found;
}

typedef enum { SLOT_READY, SLOT_BUSY } slot_state_t;

static hms_status_t check_slot(hms_repl_t *r, const hms_repl_opts_t *opts, slot_state_t *state,
                               int *holder, uint64_t *confirmed, hms_err_t *err)
{
    char sql[768], remembered[32];
    hms_status_t st = HMS_OK;
    char *lit = PQescapeLiteral(r->conn, opts->slot, strlen(opts->slot));
    char *ident = PQescapeIdentifier(r->conn, opts->slot, strlen(opts->slot));
    PGresult *res = NULL;
    if (lit == NULL || ident == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
        goto done;
    }
    snprintf(sql, sizeof(sql),
             "SELECT plugin, slot_type, database, active, active_pid, wal_status, "
             "confirmed_flush_lsn FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
             lit);
    res = query(r, sql, PGRES_TUPLES_OK, err, "slot check");
    if (res == NULL) {
        st = HMS_ERR_PG;
        goto done;
    }
    if (PQntuples(res) == 0) {
        if (!opts->create_slot) {
            st = hms_err_set(err, HMS_ERR_FATAL,
                             "pg: replication slot \"%s\" disappeared from %s while hms-sync was "
                             "running (dropped?); changes after the last confirmed position may "
                             "be lost: re-sync subscribers, then start hms-sync again to create "
                             "a new slot",
                             opts->slot, r->target);
            goto done;
        }
        if (slot_remembered(r, lit, remembered, sizeof(remembered))) {
            st =
                hms_err_set(err, HMS_ERR_FATAL,
                            "pg: replication slot \"%s\" is missing on %s but hms-sync had "
                            "confirmed up to %s with it: it was dropped, and changes since may "
                            "be lost; re-sync subscribers, then DELETE FROM hms_sync.slot_progress "
                            "WHERE slot_name = '%s' and start again",
                            opts->slot, r->target, remembered, opts->slot);
            goto done;
        }
        PQclear(res);
        snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput NOEXPORT_SNAPSHOT",
                 ident);
        res = query(r, sql, PGRES_TUPLES_OK, err, "CREATE_REPLICATION_SLOT");
        if (res == NULL) {
            st = HMS_ERR_PG;
            goto done;
        }
        const char *lsn = PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : "";
        hms_lsn_parse(lsn, confirmed);
        hms_log(HMS_LOG_INFO, "created replication slot", "slot", opts->slot, "lsn", lsn, "target",
                r->target, NULL);
        *state = SLOT_READY;
        goto done;
    }
    const char *plugin = PQgetvalue(res, 0, 0), *type = PQgetvalue(res, 0, 1);
    const char *db = PQgetvalue(res, 0, 2), *wal_status = PQgetvalue(res, 0, 5);
    if (strcmp(type, "logical") != 0 || strcmp(plugin, "pgoutput") != 0 ||
        strcmp(db, r->dbname) != 0) {
        st = hms_err_set(err, HMS_ERR_FATAL,
                         "pg: replication slot \"%s\" exists but is a %s slot with plugin '%s' "
                         "on database '%s'; hms-sync needs a logical pgoutput slot on '%s' "
                         "(choose another --slot)",
                         opts->slot, type, plugin, db, r->dbname);
        goto done;
    }
    if (strcmp(wal_status, "lost") == 0) {
        st = hms_err_set(err, HMS_ERR_FATAL,
                         "pg: replication slot \"%s\" on %s has wal_status 'lost': PostgreSQL "
                         "removed WAL it still needed, so changes are gone; hms-sync will not "
                         "recreate it silently: re-sync subscribers, drop the slot "
                         "(SELECT pg_drop_replication_slot('%s')) and start again",
                         opts->slot, r->target, opts->slot);
        goto done;
    }
    *state = strcmp(PQgetvalue(res, 0, 3), "t") == 0 ? SLOT_BUSY : SLOT_READY;
    *holder = PQgetisnull(res, 0, 4) ? 0 : atoi(PQgetvalue(res, 0, 4));
    hms_lsn_parse(PQgetvalue(res, 0, 6), confirmed);
    if (slot_remembered(r, lit, remembered, sizeof(remembered)))
        hms_lsn_parse(remembered, &r->progress_lsn);
done:
    PQclear(res);
    PQfreemem(lit);
    PQfreemem(ident);
    return st;
}

static hms_status_t start_replication(hms_repl_t *r, const hms_repl_opts_t *opts, uint64_t lsn,
                                      bool *busy, hms_err_t *err)
{
    char sql[1024], lsnbuf[HMS_LSN_STR_MAX], line[600];
    hms_status_t st = HMS_OK;
    char *ident = PQescapeIdentifier(r->conn, opts->slot, strlen(opts->slot));
    char *pubident = PQescapeIdentifier(r->conn, opts->publication, strlen(opts->publication));
    char *publit = pubident ? PQescapeLiteral(r->conn, pubident, strlen(pubident)) : NULL;
    if (ident == NULL || publit == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
        goto done;
    }
    hms_lsn_format(lsn, lsnbuf);
    snprintf(sql, sizeof(sql),
             "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', publication_names %s)",
             ident, lsnbuf, publit);
    PGresult *res = PQexec(r->conn, sql);
    *busy = false;
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        *busy = code != NULL && strcmp(code, "55006") == 0; /* object_in_use */
        st = hms_err_set(err, HMS_ERR_PG, "pg: START_REPLICATION on %s failed: %s", r->target,
                         hms_pg_one_line(PQerrorMessage(r->conn), line, sizeof(line)));
    }
    PQclear(res);
done:
    PQfreemem(ident);
    PQfreemem(pubident);
    PQfreemem(publit);
    return st;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

hms_status_t hms_repl_open(const hms_repl_opts_t *opts, uint64_t start_lsn, hms_repl_t **out,
                           hms_err_t *err)
{
    hms_status_t st;
    hms_repl_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
    int64_t deadline = mono_ms() + opts->slot_wait_ms;
    bool said_waiting = false;
    for (;;) {
        r->conn = connect_replication(opts, err, &st);
        if (r->conn == NULL)
            goto fail;
        snprintf(r->target, sizeof(r->target), "%s:%s", PQhost(r->conn), PQport(r->conn));
        st = identify(r, err);
        if (st == HMS_OK)
            st = check_publication(r, opts->publication, err);
        slot_state_t state = SLOT_READY;
        int holder = 0;
        uint64_t confirmed = 0;
        if (st == HMS_OK)
            st = check_slot(r, opts, &state, &holder, &confirmed, err);
        if (st != HMS_OK)
            goto fail;
        bool busy = state == SLOT_BUSY;
        if (!busy) {
            r->start_lsn = start_lsn > confirmed ? start_lsn : confirmed;
            st = start_replication(r, opts, start_lsn, &busy, err);
            if (st == HMS_OK)
                break;
            if (!busy)
                goto fail;
        }
        /* Another process holds the slot: often a walsender of ours still
         * dying after a kill -9, or an active twin.  Wait a bounded time. */
        if (mono_ms() >= deadline) {
            st = hms_err_set(err, HMS_ERR_PG,
                             "pg: replication slot \"%s\" on %s is in use by another process "
                             "(pid %d) and stayed busy for %d ms; stop the other consumer or "
                             "raise slot_wait",
                             opts->slot, r->target, holder, opts->slot_wait_ms);
            goto fail;
        }
        if (!said_waiting) {
            char pid[16], wait[16];
            snprintf(pid, sizeof(pid), "%d", holder);
            snprintf(wait, sizeof(wait), "%d", opts->slot_wait_ms);
            hms_log(HMS_LOG_WARN, "replication slot is in use by another process; waiting", "slot",
                    opts->slot, "pid", pid, "max_wait_ms", wait, NULL);
            said_waiting = true;
        }
        PQfinish(r->conn);
        r->conn = NULL;
        for (int i = 0; i < 10 && !(opts->cancel && *opts->cancel); i++)
            usleep(100 * 1000);
        if (opts->cancel && *opts->cancel) {
            st = hms_err_set(err, HMS_ERR_PG,
                             "pg: stopped while waiting for replication slot \"%s\"", opts->slot);
            goto fail;
        }
    }
    if (PQsetnonblocking(r->conn, 1) != 0) {
        st = hms_err_set(err, HMS_ERR_PG, "pg: cannot make the connection non-blocking");
        goto fail;
    }
    *out = r;
    return HMS_OK;
fail:
    hms_repl_close(r);
    return st;
}

void hms_repl_close(hms_repl_t *r)
{
    if (r == NULL)
        return;
    if (r->copybuf != NULL)
        PQfreemem(r->copybuf);
    if (r->conn != NULL)
        PQfinish(r->conn);
    free(r);
}

const char *hms_repl_sysid(const hms_repl_t *r)
{
    return r->sysid;
}

int hms_repl_sender_timeout_ms(const hms_repl_t *r)
{
    return r->sender_timeout_ms;
}

const char *hms_repl_dbname(const hms_repl_t *r)
{
    return r->dbname;
}

const char *hms_repl_target(const hms_repl_t *r)
{
    return r->target;
}

uint64_t hms_repl_start_lsn(const hms_repl_t *r)
{
    return r->start_lsn;
}

uint64_t hms_repl_progress_lsn(const hms_repl_t *r)
{
    return r->progress_lsn;
}

int hms_repl_fd(const hms_repl_t *r)
{
    return PQsocket(r->conn);
}

hms_status_t hms_repl_consume(hms_repl_t *r, hms_err_t *err)
{
    char line[600];
    if (PQconsumeInput(r->conn) == 0)
        return hms_err_set(err, HMS_ERR_PG, "pg: replication connection to %s lost: %s", r->target,
                           hms_pg_one_line(PQerrorMessage(r->conn), line, sizeof(line)));
    return HMS_OK;
}

int hms_repl_read(hms_repl_t *r, const uint8_t **buf, size_t *len, hms_err_t *err)
{
    char line[600];
    if (r->copybuf != NULL) {
        PQfreemem(r->copybuf);
        r->copybuf = NULL;
    }
    int n = PQgetCopyData(r->conn, &r->copybuf, 1);
    if (n > 0) {
        *buf = (const uint8_t *)r->copybuf;
        *len = (size_t)n;
        return 1;
    }
    if (n == 0)
        return 0;
    if (n == -1) {
        /* The server ended the copy; its final result says why. */
        PGresult *res = PQgetResult(r->conn);
        const char *msg = res ? PQresultErrorMessage(res) : "";
        hms_err_set(err, HMS_ERR_PG, "pg: %s ended the replication stream: %s", r->target,
                    msg[0] ? hms_pg_one_line(msg, line, sizeof(line)) : "no reason given");
        PQclear(res);
        return HMS_ERR_PG;
    }
    return hms_err_set(err, HMS_ERR_PG, "pg: replication connection to %s lost: %s", r->target,
                       hms_pg_one_line(PQerrorMessage(r->conn), line, sizeof(line)));
}

hms_status_t hms_repl_send_status(hms_repl_t *r, uint64_t write_lsn, uint64_t flush_lsn,
                                  bool reply_requested, hms_err_t *err)
{
    char line[600];
    uint8_t msg[HMS_STANDBY_STATUS_LEN];
    size_t n = hms_walmsg_standby_status(msg, write_lsn, flush_lsn, flush_lsn, hms_clock_pg_us(),
                                         reply_requested);
    int rc = PQputCopyData(r->conn, (const char *)msg, (int)n);
    if (rc == 0)
        return HMS_ERR_FULL;
    if (rc < 0)
        return hms_err_set(err, HMS_ERR_PG, "pg: sending standby status to %s failed: %s",
                           r->target, hms_pg_one_line(PQerrorMessage(r->conn), line, sizeof(line)));
    if (hms_repl_flush(r) < 0)
        return hms_err_set(err, HMS_ERR_PG, "pg: sending standby status to %s failed: %s",
                           r->target, hms_pg_one_line(PQerrorMessage(r->conn), line, sizeof(line)));
    return HMS_OK;
}

int hms_repl_flush(hms_repl_t *r)
{
    return PQflush(r->conn);
}

void hms_repl_finish(hms_repl_t *r)
{
    if (PQputCopyEnd(r->conn, NULL) > 0) {
        for (int i = 0; i < 100 && PQflush(r->conn) == 1; i++)
            usleep(10 * 1000);
    }
}
