/* migrate.c -- applies the embedded SQL migrations once each, in order, under an advisory lock. */
#include "daemon/migrations.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/pgconn.h"

/* Session advisory-lock key of every hms-sync migrate run: the first eight
 * bytes of sha256("hms_sync.migrate") as a big-endian int64 (0x392f6d0ff91d3b34).
 * A fixed constant rather than hashtext(), whose values PostgreSQL does not
 * promise to keep across releases.  Advisory locks are per database, so runs
 * against different databases of one cluster do not wait for each other. */
#define MIGRATE_LOCK_KEY "4120632099438672692"

#define LEDGER_MAX 48

/* Leading decimal number of a migration file name; -1 if there is none. */
static int file_version(const char *name)
{
    long v = 0;
    const char *p = name;
    if (!isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p)) {
        v = v * 10 + (*p - '0');
        if (v > 1000000)
            return -1;
        p++;
    }
    return (int)v;
}

static bool ledger_name_ok(const char *ledger)
{
    size_t n = strlen(ledger);
    if (n == 0 || n >= LEDGER_MAX || isdigit((unsigned char)ledger[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)ledger[i]) || isdigit((unsigned char)ledger[i]) ||
              ledger[i] == '_'))
            return false;
    return true;
}

/* Server error positions count characters (not bytes) from 1; the line is
 * what a person editing the file wants. */
static int error_line(const char *sql, const char *pos)
{
    if (pos == NULL)
        return 0;
    long want = strtol(pos, NULL, 10);
    int line = 1;
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)sql; *p != '\0'; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        if (++chars >= want)
            break;
        if (*p == '\n')
            line++;
    }
    return line;
}

/* Names the failed file, PostgreSQL's message and, when the server gave one,
 * the line in the file or the PL/pgSQL context. */
static hms_status_t file_error(hms_err_t *err, const char *target, const hms_sql_file_t *f,
                               PGconn *conn, const PGresult *res)
{
    char msg[256], ctx[160];
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    hms_pg_one_line(primary != NULL ? primary : PQerrorMessage(conn), msg, sizeof(msg));
    int line =
        res != NULL ? error_line(f->sql, PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION)) : 0;
    const char *context = res != NULL ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
    if (line > 0)
        return hms_err_set(err, HMS_ERR_PG,
                           "migrations: %s failed on %s at line %d: %s (nothing of it was "
                           "applied)",
                           f->name, target, line, msg);
    if (context != NULL) {
        hms_pg_one_line(context, ctx, sizeof(ctx));
        return hms_err_set(err, HMS_ERR_PG,
                           "migrations: %s failed on %s: %s (%s; nothing of it was applied)",
                           f->name, target, msg, ctx);
    }
    return hms_err_set(err, HMS_ERR_PG,
                       "migrations: %s failed on %s: %s (nothing of it was applied)", f->name,
                       target, msg);
}

/* Runs a statement that returns no rows; on failure fills err with `doing`. */
static hms_status_t exec_cmd(PGconn *conn, const char *sql, const char *target, const char *doing,
                             hms_err_t *err)
{
    char line[HMS_ERR_MSG_MAX / 2];
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    PQclear(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return HMS_OK;
    hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line));
    return hms_err_set(err, HMS_ERR_PG, "migrations: %s on %s: %s", doing, target, line);
}

static hms_status_t check_files(const hms_sql_file_t *files, size_t count, hms_err_t *err)
{
    int prev = -1;
    for (size_t i = 0; i < count; i++) {
        int v = file_version(files[i].name);
        if (v < 0 || files[i].sql == NULL)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "migrations: %s: file name must start with its version number",
                               files[i].name);
        if (v <= prev)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "migrations: %s: version %d does not follow the previous file's %d",
                               files[i].name, v, prev);
        prev = v;
    }
    return HMS_OK;
}

/* Applies one file if its version is not recorded; refuses one whose text
 * changed since it was recorded.  *applied tells the caller which it was. */
static hms_status_t apply_one(PGconn *conn, const hms_sql_file_t *f, const char *ledger,
                              const char *target, bool *applied, hms_err_t *err)
{
    char q[256], version[16], line[HMS_ERR_MSG_MAX / 2];
    PGresult *res = NULL;
    hms_status_t st;

    *applied = false;
    snprintf(version, sizeof(version), "%d", file_version(f->name));
    snprintf(q, sizeof(q),
             "SELECT l.checksum, c.sum FROM (SELECT encode(sha256(convert_to($1, 'UTF8')), "
             "'hex') AS sum) c LEFT JOIN hms_sync.%s l ON l.version = $2::int",
             ledger);
    const char *params[3] = {f->sql, version, NULL};
    res = PQexecParams(conn, q, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line));
        st = hms_err_set(err, HMS_ERR_PG, "migrations: reading hms_sync.%s on %s: %s", ledger,
                         target, line);
        goto fail;
    }
    if (!PQgetisnull(res, 0, 0)) {
        const char *recorded = PQgetvalue(res, 0, 0), *current = PQgetvalue(res, 0, 1);
        if (strcmp(recorded, current) == 0) {
            PQclear(res);
            return HMS_OK;
        }
        st = hms_err_set(err, HMS_ERR_PG,
                         "migrations: checksum mismatch for %s on %s: recorded %.64s, current "
                         "%s; use the hms-sync release that applied it, or if the database "
                         "already matches the new file, UPDATE hms_sync.%s SET checksum = "
                         "<current> WHERE version = %s",
                         f->name, target, recorded, current, ledger, version);
        goto fail;
    }
    PQclear(res);
    res = NULL;

    /* The file and its ledger row commit together or not at all, so a
     * failure leaves the database as it was and the next run retries it. */
    if ((st = exec_cmd(conn, "BEGIN", target, "starting a transaction", err)) != HMS_OK)
        goto fail;
    res = PQexec(conn, f->sql);
    ExecStatusType rst = PQresultStatus(res);
    if (rst != PGRES_COMMAND_OK && rst != PGRES_TUPLES_OK && rst != PGRES_EMPTY_QUERY) {
        st = file_error(err, target, f, conn, res);
        goto rollback;
    }
    PQclear(res);
    snprintf(q, sizeof(q),
             "INSERT INTO hms_sync.%s (version, name, checksum) "
             "VALUES ($1::int, $2, encode(sha256(convert_to($3, 'UTF8')), 'hex'))",
             ledger);
    const char *ins[3] = {version, f->name, f->sql};
    res = PQexecParams(conn, q, 3, NULL, ins, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line));
        st = hms_err_set(err, HMS_ERR_PG, "migrations: recording %s in hms_sync.%s on %s: %s",
                         f->name, ledger, target, line);
        goto rollback;
    }
    PQclear(res);
    res = NULL;
    if ((st = exec_cmd(conn, "COMMIT", target, "committing", err)) != HMS_OK)
        goto fail;
    *applied = true;
    return HMS_OK;

rollback:
    PQclear(res);
    res = PQexec(conn, "ROLLBACK");
fail:
    PQclear(res);
    return st;
}

/* Counts ledger rows, and those from a newer hms-sync (versions above ours). */
static hms_status_t count_recorded(PGconn *conn, const char *ledger, int max_known,
                                   const char *target, long *total, long *newer, hms_err_t *err)
{
    char q[160], known[16], line[HMS_ERR_MSG_MAX / 2];
    snprintf(q, sizeof(q),
             "SELECT count(*), count(*) FILTER (WHERE version > $1::int) FROM hms_sync.%s", ledger);
    snprintf(known, sizeof(known), "%d", max_known);
    const char *params[1] = {known};
    PGresult *res = PQexecParams(conn, q, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line));
        PQclear(res);
        return hms_err_set(err, HMS_ERR_PG, "migrations: reading hms_sync.%s on %s: %s", ledger,
                           target, line);
    }
    *total = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    *newer = strtol(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return HMS_OK;
}

hms_status_t hms_migrate_apply(PGconn *conn, const hms_sql_file_t *files, size_t count,
                               const char *ledger, FILE *out, hms_err_t *err)
{
    char target[256], q[320];
    bool locked = false;
    size_t n_applied = 0;
    long total = 0, newer = 0;
    hms_status_t st;
    PGresult *res = NULL;

    if (ledger == NULL || !ledger_name_ok(ledger))
        return hms_err_set(err, HMS_ERR_CONFIG, "migrations: invalid ledger table name");
    if ((st = check_files(files, count, err)) != HMS_OK)
        return st;
    hms_pg_target(conn, target, sizeof(target));

    /* Two runs at once (two deploy hosts, a retry) must not both apply a
     * file: the second waits here, then finds everything recorded. */
    res = PQexec(conn, "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char line[HMS_ERR_MSG_MAX / 2];
        hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line));
        st = hms_err_set(err, HMS_ERR_PG, "migrations: taking the migration lock on %s: %s", target,
                         line);
        goto fail;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        if (out != NULL) {
            fprintf(out, "migrations: waiting for another hms-sync migrate on %s\n", target);
            fflush(out);
        }
        if ((st = exec_cmd(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", target,
                           "taking the migration lock", err)) != HMS_OK)
            goto fail;
    }
    locked = true;
    PQclear(res);
    res = NULL;

    snprintf(q, sizeof(q),
             "CREATE SCHEMA IF NOT EXISTS hms_sync; "
             "CREATE TABLE IF NOT EXISTS hms_sync.%s (version int PRIMARY KEY, name text NOT "
             "NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
             ledger);
    if ((st = exec_cmd(conn, q, target, "creating the migrations ledger", err)) != HMS_OK)
        goto fail;

    for (size_t i = 0; i < count; i++) {
        bool applied;
        if ((st = apply_one(conn, &files[i], ledger, target, &applied, err)) != HMS_OK)
            goto fail;
        if (applied) {
            n_applied++;
            if (out != NULL) {
                fprintf(out, "migrations: applied %s\n", files[i].name);
                fflush(out);
            }
        }
    }

    int max_known = count > 0 ? file_version(files[count - 1].name) : -1;
    if ((st = count_recorded(conn, ledger, max_known, target, &total, &newer, err)) != HMS_OK)
        goto fail;
    if (out != NULL) {
        if (newer > 0)
            fprintf(out,
                    "migrations: warning: %s has %ld migration(s) newer than this hms-sync "
                    "knows (above version %d)\n",
                    target, newer, max_known);
        if (n_applied == 0)
            fprintf(out, "migrations: up to date (%ld applied)\n", total);
        else
            fprintf(out, "migrations: %zu new, up to date (%ld applied)\n", n_applied, total);
        fflush(out);
    }
    st = exec_cmd(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", target,
                  "releasing the migration lock", err);
    return st;

fail:
    PQclear(res);
    /* A session lock outlives a failed transaction; release it so this
     * connection, if the caller keeps it, does not block the next run. */
    if (locked && PQstatus(conn) == CONNECTION_OK)
        PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")"));
    return st;
}

/* The publication migration 003 makes is hms_sync_incidents; an operator
 * who names another one gets it made here, by the same rule: created for
 * public.incidents when missing, an existing one kept but made to carry the
 * table.  It is not a migration file because its name is a setting. */
static hms_status_t ensure_publication(PGconn *conn, const char *name, FILE *out, hms_err_t *err)
{
    char target[300], line[HMS_ERR_MSG_MAX], sql[400];
    hms_status_t st = HMS_ERR_PG;
    char *ident = NULL;
    hms_pg_target(conn, target, sizeof(target));
    const char *params[] = {name};
    PGresult *res = PQexecParams(conn,
                                 "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication "
                                 "WHERE pubname = $1), "
                                 "EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables "
                                 "WHERE pubname = $1 AND schemaname = 'public' "
                                 "AND tablename = 'incidents')",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        goto fail;
    bool exists = PQgetvalue(res, 0, 0)[0] == 't';
    bool carries = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    res = NULL;
    if (exists && carries)
        return HMS_OK;
    if ((ident = PQescapeIdentifier(conn, name, strlen(name))) == NULL)
        goto fail;
    snprintf(sql, sizeof(sql),
             exists ? "ALTER PUBLICATION %s ADD TABLE public.incidents"
                    : "CREATE PUBLICATION %s FOR TABLE public.incidents",
             ident);
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        /* Another migrate made it a moment ago: what we wanted exists. */
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state == NULL || strcmp(state, "42710") != 0)
            goto fail;
    } else if (out != NULL) {
        fprintf(out, "publication %s: %s public.incidents\n", name,
                exists ? "added" : "created for");
    }
    st = HMS_OK;
fail:
    if (st != HMS_OK)
        hms_err_set(err, HMS_ERR_PG, "migrate: publication \"%s\" on %s: %s", name, target,
                    hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line)));
    PQclear(res);
    PQfreemem(ident);
    return st;
}

hms_status_t hms_migrate_run(const char *conninfo, const char *publication, int connect_timeout_s,
                             FILE *out, hms_err_t *err)
{
    PGconn *conn = NULL;
    hms_status_t st = hms_pg_open(conninfo, "migrate", connect_timeout_s, &conn, err);
    if (st != HMS_OK)
        return st;
    st = hms_migrate_apply(conn, hms_sql_migrations, hms_sql_migrations_count, HMS_MIGRATE_LEDGER,
                           out, err);
    if (st == HMS_OK && publication != NULL)
        st = ensure_publication(conn, publication, out, err);
    PQfinish(conn);
    return st;
}
