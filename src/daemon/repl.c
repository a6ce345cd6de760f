/* repl.c -- the logical replication connection (libpq, replication=database). */
#include "daemon/repl.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "core/lsn.h"
#include "core/pgoutput.h"
#include "core/snapsql.h"
#include "core/walproto.h"

/* Every value's text form must be unambiguous for the encoder (repl.h). */
#define SESSION_OPTIONS                                                                            \
    "-c datestyle=ISO -c timezone=UTC -c extra_float_digits=3 -c intervalstyle=iso_8601"

struct hms_repl {
    hms_repl_opts_t opts;
    bool first;            /* want->first */
    uint64_t confirmed;    /* want->confirmed */
    uint64_t decoded;      /* want->decoded */
    char want_sysid[32];   /* want->sysid */
    char want_dbname[128]; /* want->dbname */
    hms_pg_connecting_t attempt;
    PGconn *conn;
    char *copybuf;
    char sysid[32];
    char dbname[128];
    char target[300];
    uint64_t start_lsn;
    hms_resume_verdict_t verdict;
    int sender_timeout_ms;    /* this walsender's wal_sender_timeout; 0 = none */
    char identity_table[128]; /* hms_repl_identity_table */
    char identity;            /* hms_repl_identity */
};

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

/* pg_class.relreplident of one captured table into *ident (0 when the
 * table does not exist: the publication check speaks for that). */
static hms_status_t table_identity(hms_repl_t *r, const hms_capture_t *c, char *ident,
                                   hms_err_t *err)
{
    char sql[512];
    hms_status_t st = HMS_OK;
    PGresult *res = NULL;
    char *schema = PQescapeLiteral(r->conn, c->schema, strlen(c->schema));
    char *table = PQescapeLiteral(r->conn, c->table, strlen(c->table));
    *ident = 0;
    if (schema == NULL || table == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
        goto done;
    }
    snprintf(sql, sizeof(sql),
             "SELECT c.relreplident FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
             "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
             schema, table);
    if ((res = query(r, sql, PGRES_TUPLES_OK, err, "replica identity check")) == NULL) {
        st = HMS_ERR_PG;
        goto done;
    }
    if (PQntuples(res) == 1)
        *ident = PQgetvalue(res, 0, 0)[0];
done:
    PQclear(res);
    PQfreemem(schema);
    PQfreemem(table);
    return st;
}

/* Only REPLICA IDENTITY FULL puts a deleted row's columns in the WAL; under
 * any other a DELETE arrives with its key alone, from which no valid
 * Deleted event (and no last-write-wins version) can be made.  A first start
 * refuses such a table, so the operator fixes it before any delete is lost;
 * a later session (a reconnect) streams on, not ready, as the running one
 * did after the change (daemon/changes.h). */
static hms_status_t check_identity(hms_repl_t *r, hms_err_t *err)
{
    for (size_t i = 0; i < r->opts.ncaptures; i++) {
        const hms_capture_t *c = &r->opts.captures[i];
        char ident;
        hms_status_t st = table_identity(r, c, &ident, err);
        if (st != HMS_OK)
            return st;
        if (ident == 0 || (r->identity != 0 && ident == 'f'))
            continue;
        snprintf(r->identity_table, sizeof(r->identity_table), "%s.%s", c->schema, c->table);
        r->identity = ident;
        if (ident != 'f' && r->first)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "pg: table %s in %s has REPLICA IDENTITY %s, so a DELETE would "
                               "carry only its key and could not become a valid event; run "
                               "ALTER TABLE %s REPLICA IDENTITY FULL; and start again",
                               r->identity_table, r->target, hms_pgo_replident_name(ident),
                               r->identity_table);
        if (ident != 'f')
            break;
    }
    return HMS_OK;
}

/* Reads hms_sync.slot_progress's row for the slot into f (the table is
 * absent until migrate has run, the row until something was confirmed). */
static void read_progress(hms_repl_t *r, const char *lit_slot, hms_resume_facts_t *f)
{
    char sql[512];
    PGresult *res = PQexec(r->conn, "SELECT to_regclass('hms_sync.slot_progress') IS NOT NULL");
    bool have = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!have)
        return;
    snprintf(sql, sizeof(sql),
             "SELECT confirmed_lsn::text FROM hms_sync.slot_progress WHERE slot_name = %s",
             lit_slot);
    res = PQexec(r->conn, sql);
    f->remembered = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (f->remembered)
        hms_lsn_parse(PQgetvalue(res, 0, 0), &f->progress_lsn);
    PQclear(res);
}

/* Looks the slot up: whether it exists and where it is, whether another
 * process holds it (*holder: its pid, 0 if unknown), and refuses a slot
 * hms-sync cannot use whatever the resume decision. */
static hms_status_t check_slot(hms_repl_t *r, hms_resume_facts_t *f, bool *busy, int *holder,
                               hms_err_t *err)
{
    char sql[768];
    const char *slot = r->opts.slot;
    hms_status_t st = HMS_OK;
    PGresult *res = NULL;
    char *lit = PQescapeLiteral(r->conn, slot, strlen(slot));
    if (lit == NULL) {
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
    read_progress(r, lit, f);
    f->slot_exists = PQntuples(res) > 0;
    if (!f->slot_exists)
        goto done;
    const char *plugin = PQgetvalue(res, 0, 0), *type = PQgetvalue(res, 0, 1);
    const char *db = PQgetvalue(res, 0, 2), *wal_status = PQgetvalue(res, 0, 5);
    if (strcmp(type, "logical") != 0 || strcmp(plugin, "pgoutput") != 0 ||
        strcmp(db, r->dbname) != 0) {
        st = hms_err_set(err, HMS_ERR_FATAL,
                         "pg: replication slot \"%s\" exists but is a %s slot with plugin '%s' "
                         "on database '%s'; hms-sync needs a logical pgoutput slot on '%s' "
                         "(choose another --slot)",
                         slot, type, plugin, db, r->dbname);
        goto done;
    }
    if (strcmp(wal_status, "lost") == 0) {
        st = hms_err_set(err, HMS_ERR_FATAL,
                         "pg: replication slot \"%s\" on %s has wal_status 'lost': PostgreSQL "
                         "removed WAL it still needed, so changes are gone; hms-sync will not "
                         "recreate it silently: re-sync subscribers, drop the slot "
                         "(SELECT pg_drop_replication_slot('%s')) and start again",
                         slot, r->target, slot);
        goto done;
    }
    *busy = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
    *holder = PQgetisnull(res, 0, 4) ? 0 : atoi(PQgetvalue(res, 0, 4));
    hms_lsn_parse(PQgetvalue(res, 0, 6), &f->slot_lsn);
done:
    PQclear(res);
    PQfreemem(lit);
    return st;
}

/* Before a new slot is made: a request for a snapshot of every row, so
 * that the rows that exist before the slot reach subscribers too.  Written
 * first, so that no crash leaves a new slot without it (a request without
 * a slot only runs once the slot exists).  A failure names the way out:
 * the setting that asked for the snapshot is the one to change. */
static hms_status_t request_initial_snapshot(hms_repl_t *r, const char *setting, hms_err_t *err)
{
    char *lit = PQescapeLiteral(r->conn, r->opts.slot, strlen(r->opts.slot));
    char *sql = lit != NULL ? hms_snapsql_initial(lit) : NULL;
    PQfreemem(lit);
    if (sql == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
    PGresult *res = query(r, sql, PGRES_COMMAND_OK, err, "requesting the initial snapshot");
    free(sql);
    if (res == NULL) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return hms_err_set(err, HMS_ERR_CONFIG, "%s (run hms-sync migrate, or set %s)", why,
                           setting);
    }
    hms_log(HMS_LOG_INFO, "initial snapshot requested: the new slot's first events are every row",
            "slot", r->opts.slot, NULL);
    PQclear(res);
    return HMS_OK;
}

static hms_status_t create_slot(hms_repl_t *r, uint64_t *lsn_out, hms_err_t *err)
{
    char sql[512];
    char *ident = PQescapeIdentifier(r->conn, r->opts.slot, strlen(r->opts.slot));
    if (ident == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
    snprintf(sql, sizeof(sql), "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput NOEXPORT_SNAPSHOT",
             ident);
    PQfreemem(ident);
    PGresult *res = query(r, sql, PGRES_TUPLES_OK, err, "CREATE_REPLICATION_SLOT");
    if (res == NULL)
        return HMS_ERR_PG;
    const char *lsn = PQntuples(res) == 1 ? PQgetvalue(res, 0, 1) : "";
    hms_lsn_parse(lsn, lsn_out);
    hms_log(HMS_LOG_INFO, "created replication slot", "slot", r->opts.slot, "lsn", lsn, "target",
            r->target, NULL);
    PQclear(res);
    return HMS_OK;
}

/* Runs one statement on the replication connection that returns nothing
 * the caller reads; a function that migrate has not installed yet is a
 * configuration error that names the fix. */
static hms_status_t exec_step(hms_repl_t *r, const char *sql, ExecStatusType want, const char *what,
                              hms_err_t *err)
{
    char line[600];
    PGresult *res = PQexec(r->conn, sql);
    hms_status_t st = HMS_OK;
    if (PQresultStatus(res) != want) {
        const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool missing = code != NULL && (strcmp(code, "42883") == 0 || strcmp(code, "42P01") == 0);
        st = hms_err_set(err, missing ? HMS_ERR_CONFIG : HMS_ERR_PG, "pg: %s on %s failed: %s%s",
                         what, r->target,
                         hms_pg_one_line(PQerrorMessage(r->conn), line, sizeof(line)),
                         missing ? " (run hms-sync migrate)" : "");
    }
    PQclear(res);
    return st;
}

/* on_slot_loss = resnapshot: the slot is gone (the standby it was not
 * copied to was promoted, or someone dropped it).  In this order, so that a
 * crash at any step is repaired by running the steps again:
 *   1. fence: the server's WAL moves past every position this process and
 *      the progress row know were published, so the new slot's event ids
 *      never repeat one that subscribers hold (sql/011_slot_fence.sql);
 *   2. a new initial snapshot request replaces one still under way;
 *   3. the slot is created: its changes stream, the snapshot re-sends the
 *      rows whose changes it will never see.
 * *lsn_out gets the new slot's position. */
static hms_status_t recreate_slot(hms_repl_t *r, const hms_resume_facts_t *f, uint64_t *lsn_out,
                                  hms_err_t *err)
{
    uint64_t fence = f->ours;
    if (r->decoded > fence)
        fence = r->decoded;
    if (f->remembered && f->progress_lsn > fence)
        fence = f->progress_lsn;
    char fence_s[HMS_LSN_STR_MAX], sql[256];
    hms_lsn_format(fence, fence_s);
    hms_log(HMS_LOG_WARN,
            "replication slot is missing (failover?); recreating the replication slot and "
            "re-snapshotting every row (on_slot_loss = resnapshot)",
            "slot", r->opts.slot, "target", r->target, "fence", fence_s, NULL);
    snprintf(sql, sizeof(sql), "SELECT hms_sync.fence_wal('%s')", fence_s);
    hms_status_t st = exec_step(r, sql, PGRES_TUPLES_OK, "fencing the WAL", err);
    char *lit = st == HMS_OK ? PQescapeLiteral(r->conn, r->opts.slot, strlen(r->opts.slot)) : NULL;
    char *cancel = lit != NULL ? hms_snapsql_cancel_initial(lit) : NULL;
    PQfreemem(lit);
    if (st == HMS_OK && cancel == NULL)
        st = hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
    if (st == HMS_OK)
        st = exec_step(r, cancel, PGRES_COMMAND_OK, "cancelling the lost slot's snapshot", err);
    free(cancel);
    if (st == HMS_OK)
        st = request_initial_snapshot(r, "on_slot_loss = fail", err);
    if (st == HMS_OK)
        st = create_slot(r, lsn_out, err);
    if (st != HMS_OK)
        return st;
    char from[HMS_LSN_STR_MAX], to[HMS_LSN_STR_MAX];
    hms_lsn_format(f->first ? f->progress_lsn : f->ours, from);
    hms_lsn_format(*lsn_out, to);
    /* The old slot's last confirmed position and the new slot's start are
     * on different timelines, but the window tells an operator how much
     * went by: a row deleted in it is still live at subscribers. */
    hms_log(HMS_LOG_WARN,
            "changes between the lost slot's last confirmed position and the new slot reach "
            "subscribers only as snapshot rows; a row deleted in between stays at subscribers",
            "slot", r->opts.slot, "from", from, "to", to, NULL);
    return HMS_OK;
}

/* The message of each refusal: what happened and what the operator does. */
static hms_status_t refuse(hms_repl_t *r, hms_resume_verdict_t v, const hms_resume_facts_t *f,
                           hms_err_t *err)
{
    const char *slot = r->opts.slot;
    char ours[HMS_LSN_STR_MAX], theirs[HMS_LSN_STR_MAX];
    hms_lsn_format(f->ours, ours);
    hms_lsn_format(v == HMS_RESUME_DROPPED ? f->progress_lsn : f->slot_lsn, theirs);
    switch (v) {
    case HMS_RESUME_VANISHED:
        return hms_err_set(err, HMS_ERR_FATAL,
                           "pg: replication slot \"%s\" disappeared from %s while hms-sync was "
                           "running (dropped?); changes after the last confirmed position may "
                           "be lost: re-sync subscribers, then start hms-sync again to create "
                           "a new slot",
                           slot, r->target);
    case HMS_RESUME_DROPPED:
        return hms_err_set(err, HMS_ERR_FATAL,
                           "pg: replication slot \"%s\" is missing on %s but hms-sync had "
                           "confirmed up to %s with it: it was dropped, and changes since may "
                           "be lost; re-sync subscribers, then DELETE FROM hms_sync.slot_progress "
                           "WHERE slot_name = '%s' and start again",
                           slot, r->target, theirs, slot);
    case HMS_RESUME_OTHER_SOURCE:
        return hms_err_set(err, HMS_ERR_FATAL,
                           "pg: after reconnecting, %s is database %s of system %s, not %s of "
                           "%s; refusing to mix event sources (restart hms-sync deliberately)",
                           r->target, r->dbname, r->sysid, r->want_dbname, r->want_sysid);
    default:
        /* The slot only ever confirms what we told it, so a slot ahead of
         * us was dropped and recreated (or advanced) by someone else while
         * we were away: streaming on would skip the changes in between. */
        return hms_err_set(err, HMS_ERR_FATAL,
                           "pg: after reconnecting, replication slot \"%s\" on %s is at %s, past "
                           "%s where hms-sync left it: it was recreated or advanced by another "
                           "process and changes in between may be lost; re-sync subscribers, "
                           "then start hms-sync again",
                           slot, r->target, theirs, ours);
    }
}

static hms_status_t slot_busy(hms_repl_t *r, int holder, hms_err_t *err)
{
    return hms_err_set(err, HMS_ERR_RETRY,
                       "pg: replication slot \"%s\" on %s is in use by another process (pid %d)",
                       r->opts.slot, r->target, holder);
}

static hms_status_t start_replication(hms_repl_t *r, uint64_t lsn, bool *busy, hms_err_t *err)
{
    char sql[1024], lsnbuf[HMS_LSN_STR_MAX], line[600];
    hms_status_t st = HMS_OK;
    char *ident = PQescapeIdentifier(r->conn, r->opts.slot, strlen(r->opts.slot));
    char *pubident = PQescapeIdentifier(r->conn, r->opts.publication, strlen(r->opts.publication));
    char *publit = pubident ? PQescapeLiteral(r->conn, pubident, strlen(pubident)) : NULL;
    if (ident == NULL || publit == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
        goto done;
    }
    hms_lsn_format(lsn, lsnbuf);
    snprintf(sql, sizeof(sql),
             "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', publication_names %s, "
             "messages 'true')",
             ident, lsnbuf, publit);
    PGresult *res = PQexec(r->conn, sql);
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

/* The session's setup on a server that has just answered the login.  Its
 * queries block: they are few and short, and run only once the server has
 * shown it is there (an outage before the login stalls nothing, see
 * repl.h). */
static hms_status_t setup(hms_repl_t *r, hms_err_t *err)
{
    hms_resume_facts_t f = {.first = r->first,
                            .may_create = r->first && r->opts.create_slot,
                            .resnapshot = r->opts.resnapshot,
                            .ours = r->confirmed};
    bool busy = false;
    int holder = 0;
    uint64_t request, start;
    hms_status_t st = identify(r, err);
    if (st == HMS_OK)
        st = check_publication(r, r->opts.publication, err);
    if (st == HMS_OK)
        st = check_identity(r, err);
    if (st == HMS_OK)
        st = check_slot(r, &f, &busy, &holder, err);
    if (st != HMS_OK)
        return st;
    if (busy) /* often a walsender of ours still dying after a kill -9 */
        return slot_busy(r, holder, err);
    f.same_source =
        f.first || (strcmp(r->sysid, r->want_sysid) == 0 && strcmp(r->dbname, r->want_dbname) == 0);
    hms_resume_verdict_t v = hms_resume_decide(&f, &request, &start);
    if (v == HMS_RESUME_CREATE) {
        if (r->opts.initial_snapshot &&
            (st = request_initial_snapshot(r, "snapshot = never", err)) != HMS_OK)
            return st;
        if ((st = create_slot(r, &f.slot_lsn, err)) != HMS_OK)
            return st;
        f.slot_exists = true;
        v = hms_resume_decide(&f, &request, &start);
    } else if (v == HMS_RESUME_RECREATE) {
        if ((st = recreate_slot(r, &f, &start, err)) != HMS_OK)
            return st;
        request = 0; /* the new slot's own position */
    }
    if (hms_resume_refused(v))
        return refuse(r, v, &f, err);
    r->verdict = v;
    r->start_lsn = start;
    st = start_replication(r, request, &busy, err);
    if (busy)
        return slot_busy(r, 0, err);
    if (st != HMS_OK)
        return st;
    if (PQsetnonblocking(r->conn, 1) != 0)
        return hms_err_set(err, HMS_ERR_PG, "pg: cannot make the connection non-blocking");
    return HMS_OK;
}

hms_status_t hms_repl_begin(const hms_repl_opts_t *opts, const hms_repl_want_t *want,
                            int64_t now_ms, hms_repl_t **out, hms_err_t *err)
{
    *out = NULL;
    hms_repl_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory");
    r->opts = *opts;
    r->first = want->first;
    r->confirmed = want->confirmed;
    r->decoded = want->decoded;
    if (!want->first) {
        snprintf(r->want_sysid, sizeof(r->want_sysid), "%s", want->sysid);
        snprintf(r->want_dbname, sizeof(r->want_dbname), "%s", want->dbname);
    }
    hms_pg_params_t p = {.conninfo = opts->conninfo,
                         .application_name = "hms-sync",
                         .replication = true,
                         .options = SESSION_OPTIONS,
                         .connect_timeout_s = opts->connect_timeout_s};
    hms_status_t st = hms_pg_connect_start(&r->attempt, &p, now_ms, err);
    if (st != HMS_OK) {
        free(r);
        return st;
    }
    snprintf(r->target, sizeof(r->target), "%s", r->attempt.target);
    *out = r;
    return HMS_OK;
}

int hms_repl_attempt_fd(const hms_repl_t *r, short *events, int64_t *deadline_ms)
{
    *events = 0;
    *deadline_ms = 0;
    if (r == NULL || r->attempt.conn == NULL)
        return -1;
    *events = r->attempt.events;
    *deadline_ms = r->attempt.deadline_ms;
    return r->attempt.fd;
}

int hms_repl_attempt_poll(hms_repl_t *r, short revents, int64_t now_ms, hms_err_t *err)
{
    if (revents == 0 && (r->attempt.deadline_ms == 0 || now_ms < r->attempt.deadline_ms))
        return 0;
    int rc = hms_pg_connect_poll(&r->attempt, now_ms, &r->conn, err);
    if (rc <= 0)
        return rc;
    hms_pg_target(r->conn, r->target, sizeof(r->target));
    hms_status_t st = setup(r, err);
    return st == HMS_OK ? 1 : st;
}

void hms_repl_close(hms_repl_t *r)
{
    if (r == NULL)
        return;
    hms_pg_connect_cancel(&r->attempt);
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

const char *hms_repl_identity_table(const hms_repl_t *r)
{
    return r->identity_table;
}

char hms_repl_identity(const hms_repl_t *r)
{
    return r->identity;
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

hms_resume_verdict_t hms_repl_verdict(const hms_repl_t *r)
{
    return r->verdict;
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
