/* test_migrate.c -- the migrations, the migrate runner and `status` against a real PostgreSQL. */
#include <check.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/migrations.h"
#include "daemon/slotstatus.h"
#include "it.h"

static const char *admin_conninfo; /* HMS_TEST_PG: a superuser conninfo */
static char db_a[64], db_b[64], db_c[64], db_d[64], db_e[64], db_f[64];
static char slot_name[64];

/* Appends key='value' with libpq's quoting. */
static void append_kv(char *buf, size_t len, const char *key, const char *val)
{
    size_t n = strlen(buf);
    n += (size_t)snprintf(buf + n, len - n, "%s%s='", n ? " " : "", key);
    for (const char *p = val; *p && n + 3 < len; p++) {
        if (*p == '\'' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    snprintf(buf + n, len - n, "'");
}

/* HMS_TEST_PG with its database replaced by db; the caller frees it. */
static char *conninfo_for(const char *db)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(admin_conninfo, &perr);
    ck_assert_msg(opts != NULL, "HMS_TEST_PG does not parse: %s", perr ? perr : "");
    char *buf = calloc(1, 2048);
    ck_assert_ptr_nonnull(buf);
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (o->val != NULL && *o->val && strcmp(o->keyword, "dbname") != 0)
            append_kv(buf, 2048, o->keyword, o->val);
    append_kv(buf, 2048, "dbname", db);
    PQconninfoFree(opts);
    return buf;
}

static PGconn *connect_db(const char *db)
{
    char *ci = db != NULL ? conninfo_for(db) : strdup(admin_conninfo);
    PGconn *c = PQconnectdb(ci);
    free(ci);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect %s: %s", db ? db : "admin",
                  PQerrorMessage(c));
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

/* Runs sql with up to one parameter and returns the first value of the
 * first row (NULL for SQL NULL or no rows); the caller frees it. */
static char *q1(PGconn *c, const char *sql, const char *param)
{
    const char *params[1] = {param};
    PGresult *r = PQexecParams(c, sql, param ? 1 : 0, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql,
                  PQerrorMessage(c));
    char *v = NULL;
    if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void expect(PGconn *c, const char *sql, const char *want)
{
    char *got = q1(c, sql, NULL);
    ck_assert_msg(got != NULL && strcmp(got, want) == 0, "%s: got %s, want %s", sql,
                  got ? got : "NULL", want);
    free(got);
}

/* Runs the publisher migrations on db; returns the status and the output. */
static hms_status_t migrate_db(const char *db, char **output, hms_err_t *err)
{
    char *ci = conninfo_for(db);
    size_t len;
    char *buf = NULL;
    FILE *out = open_memstream(&buf, &len);
    err->msg[0] = '\0';
    hms_status_t st = hms_migrate_run(ci, NULL, 10, out, err);
    fclose(out);
    free(ci);
    if (output != NULL)
        *output = buf;
    else
        free(buf);
    return st;
}

static void migrate_ok(const char *db)
{
    hms_err_t err;
    hms_status_t st = migrate_db(db, NULL, &err);
    ck_assert_msg(st == HMS_OK, "migrate %s: %s", db, err.msg);
}

static void setup_dbs(void)
{
    PGconn *c = connect_db(NULL);
    const char *dbs[] = {db_a, db_b, db_c, db_d, db_e, db_f};
    for (size_t i = 0; i < 6; i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbs[i]);
        free(q1(c, sql, NULL));
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbs[i]);
        free(q1(c, sql, NULL));
    }
    PQfinish(c);
}

static void teardown_dbs(void)
{
    PGconn *c = PQconnectdb(admin_conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return;
    }
    const char *params[1] = {slot_name};
    PQclear(PQexecParams(c,
                         "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                         "WHERE slot_name = $1",
                         1, NULL, params, NULL, NULL, 0));
    const char *dbs[] = {db_a, db_b, db_c, db_d, db_e, db_f};
    for (size_t i = 0; i < 6; i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbs[i]);
        PQclear(PQexec(c, sql));
    }
    PQfinish(c);
}

START_TEST(test_fresh_migrate_creates_everything)
{
    hms_err_t err;
    char *out = NULL;
    ck_assert_int_eq(migrate_db(db_a, &out, &err), HMS_OK);
    for (size_t i = 0; i < hms_sql_migrations_count; i++) {
        char line[128];
        snprintf(line, sizeof(line), "migrations: applied %s\n", hms_sql_migrations[i].name);
        ck_assert_msg(strstr(out, line) != NULL, "missing \"%s\" in:\n%s", line, out);
    }
    free(out);

    PGconn *c = connect_db(db_a);
    expect(c,
           "SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable, ',' "
           "ORDER BY ordinal_position) FROM information_schema.columns "
           "WHERE table_schema = 'public' AND table_name = 'incidents'",
           "id:uuid:NO,occurred_at:timestamp with time zone:NO,region:text:NO,"
           "severity:smallint:NO,status:text:NO,summary:text:YES,reported_by:text:YES,"
           "version:bigint:NO,updated_at:timestamp with time zone:NO,origin:text:NO");
    expect(c,
           "SELECT string_agg(column_name || '=' || column_default, ',' ORDER BY "
           "ordinal_position) FROM information_schema.columns WHERE table_schema = "
           "'public' AND table_name = 'incidents' AND column_default IS NOT NULL",
           "id=gen_random_uuid(),occurred_at=now(),severity=3,status='open'::text,version=1,"
           "updated_at=now(),origin='hms-ehr'::text");
    expect(c,
           "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.incidents'::regclass "
           "AND contype = 'p'",
           "1");
    PGresult *r = PQexec(c, "INSERT INTO public.incidents (region, severity) VALUES ('x', 9)");
    ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);

    /* Versions come from one sequence, drawn before the CHECK above failed:
     * that insert used 1, so this one gets 2 and each update the next. */
    char *id = q1(c,
                  "INSERT INTO public.incidents (region, summary) VALUES ('north', 'fall') "
                  "RETURNING id",
                  NULL);
    expect(c, "SELECT version || ':' || origin || ':' || status FROM public.incidents",
           "2:hms-ehr:open");
    char *t1 = q1(c, "SELECT updated_at::text FROM public.incidents WHERE id = $1", id);
    free(q1(c, "UPDATE public.incidents SET status = 'assigned' WHERE id = $1", id));
    expect(c, "SELECT version || ':' || origin FROM public.incidents", "3:hms-ehr");
    char *later = q1(c, "SELECT updated_at > $1::timestamptz FROM public.incidents", t1);
    ck_assert_str_eq(later, "t");
    free(later);
    free(t1);

    /* A writer that declares itself is recorded; an explicit origin wins;
     * an undeclared writer is the EHR again. */
    free(q1(c, "SET hms_sync.origin = 'casemgmt'", NULL));
    free(q1(c, "UPDATE public.incidents SET severity = 2 WHERE id = $1", id));
    expect(c, "SELECT version || ':' || origin FROM public.incidents", "4:casemgmt");
    free(q1(c, "UPDATE public.incidents SET origin = 'warehouse' WHERE id = $1", id));
    expect(c, "SELECT version || ':' || origin FROM public.incidents", "5:warehouse");
    free(q1(c, "UPDATE public.incidents SET version = 100 WHERE id = $1", id));
    expect(c, "SELECT version || ':' || origin FROM public.incidents", "6:casemgmt");
    free(q1(c, "RESET hms_sync.origin", NULL));
    free(q1(c, "UPDATE public.incidents SET summary = 'fall, minor' WHERE id = $1", id));
    expect(c, "SELECT version || ':' || origin FROM public.incidents", "7:hms-ehr");
    free(id);

    expect(c, "SELECT relreplident FROM pg_class WHERE oid = 'public.incidents'::regclass", "f");
    expect(c,
           "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'hms_sync_incidents' "
           "AND schemaname = 'public' AND tablename = 'incidents'",
           "1");
    expect(c,
           "SELECT rolcanlogin || ':' || rolreplication || ':' || rolsuper "
           "FROM pg_authid WHERE rolname = 'hms_sync'",
           "true:true:false");
    /* Roles are cluster-wide and an operator (or another test) may have set
     * a password already, so check the migrations themselves never do. */
    for (size_t i = 0; i < hms_sql_migrations_count; i++)
        ck_assert_msg(strcasestr(hms_sql_migrations[i].sql, "PASSWORD '") == NULL,
                      "%s sets a password", hms_sql_migrations[i].name);
    expect(c,
           "SELECT has_database_privilege('hms_sync', current_database(), 'CONNECT') AND "
           "has_schema_privilege('hms_sync', 'hms_sync', 'USAGE') AND "
           "has_table_privilege('hms_sync', 'public.incidents', 'SELECT') AND "
           "has_table_privilege('hms_sync', 'hms_sync.slot_progress', 'INSERT, UPDATE, "
           "SELECT') AND NOT has_table_privilege('hms_sync', 'public.incidents', 'UPDATE') "
           "AND NOT has_table_privilege('hms_sync', 'hms_sync.slot_progress', 'DELETE')",
           "t");
    /* Every embedded file, each recorded under its leading number. */
    char ledger[1024] = "";
    for (size_t i = 0; i < hms_sql_migrations_count; i++)
        snprintf(ledger + strlen(ledger), sizeof(ledger) - strlen(ledger), "%s%d=%s", i ? "," : "",
                 atoi(hms_sql_migrations[i].name), hms_sql_migrations[i].name);
    ck_assert_str_eq(hms_sql_migrations[0].name, "001_schema.sql");
    expect(c,
           "SELECT string_agg(version || '=' || name, ',' ORDER BY version) FROM "
           "hms_sync.schema_migrations",
           ledger);
    PQfinish(c);
}
END_TEST

START_TEST(test_second_run_is_noop)
{
    hms_err_t err;
    char *out = NULL, want[64];
    migrate_ok(db_b);
    ck_assert_int_eq(migrate_db(db_b, &out, &err), HMS_OK);
    snprintf(want, sizeof(want), "migrations: up to date (%zu applied)\n",
             hms_sql_migrations_count);
    ck_assert_str_eq(out, want);
    free(out);
}
END_TEST

START_TEST(test_second_database_reuses_role)
{
    /* The role is cluster-wide: whichever database ran first created it. */
    migrate_ok(db_a);
    migrate_ok(db_b);
    PGconn *c = connect_db(db_b);
    expect(c, "SELECT count(*) FROM pg_roles WHERE rolname = 'hms_sync'", "1");
    expect(c, "SELECT has_database_privilege('hms_sync', current_database(), 'CONNECT')", "t");
    PQfinish(c);
}
END_TEST

START_TEST(test_attaches_to_existing_table)
{
    PGconn *c = connect_db(db_d);
    free(q1(c,
            "CREATE TABLE public.incidents (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
            "occurred_at timestamptz NOT NULL DEFAULT now(), region text NOT NULL, "
            "severity smallint NOT NULL DEFAULT 3, status text NOT NULL DEFAULT 'open', "
            "summary text, reported_by text)",
            NULL));
    free(q1(c, "INSERT INTO public.incidents (region) VALUES ('south')", NULL));
    migrate_ok(db_d);
    expect(c, "SELECT version || ':' || origin || ':' || region FROM public.incidents",
           "1:hms-ehr:south");
    free(q1(c, "UPDATE public.incidents SET status = 'closed'", NULL));
    expect(c, "SELECT version || ':' || origin FROM public.incidents", "2:hms-ehr");
    PQfinish(c);
}
END_TEST

/* Number of publisher migration files numbered up to v. */
static size_t files_through(int v)
{
    size_t n = 0;
    while (n < hms_sql_migrations_count && atoi(hms_sql_migrations[n].name) <= v)
        n++;
    return n;
}

/* 005 on a table whose rows already carry versions (written under 001-004,
 * where an INSERT kept the version it was given): every later write, a
 * restored key included, gets a version above all of them. */
START_TEST(test_version_sequence_on_existing_rows)
{
    hms_err_t err;
    PGconn *c = connect_db(db_f);
    size_t n4 = files_through(4);
    ck_assert_uint_eq(n4, 4);
    ck_assert_msg(hms_migrate_apply(c, hms_sql_migrations, n4, HMS_MIGRATE_LEDGER, NULL, &err) ==
                      HMS_OK,
                  "migrate 001-004: %s", err.msg);
    free(q1(c,
            "INSERT INTO public.incidents (id, region, version) VALUES "
            "('00000000-0000-4000-8000-000000000001', 'a', 41), "
            "('00000000-0000-4000-8000-000000000002', 'b', 7)",
            NULL));
    free(q1(c, "UPDATE public.incidents SET status = 'x' WHERE region = 'b'", NULL));
    expect(c, "SELECT string_agg(version::text, ',' ORDER BY id) FROM public.incidents", "41,8");
    migrate_ok(db_f);
    char last[16];
    snprintf(last, sizeof last, "%d", atoi(hms_sql_migrations[hms_sql_migrations_count - 1].name));
    expect(c, "SELECT max(version) FROM hms_sync.schema_migrations", last);

    /* An explicit version is replaced; the insert lands above 41. */
    char *v1 = q1(c,
                  "INSERT INTO public.incidents (region, version) VALUES ('c', 3) "
                  "RETURNING version",
                  NULL);
    ck_assert_msg(atoll(v1) > 41, "first insert after 005: version %s, want > 41", v1);
    char *v2 = q1(c,
                  "UPDATE public.incidents SET status = 'y' WHERE region = 'b' "
                  "RETURNING version",
                  NULL);
    ck_assert_msg(atoll(v2) > atoll(v1), "update after 005: version %s, want > %s", v2, v1);

    /* Deleted, then inserted again with its old version: it must beat the
     * tombstone its delete left at the subscribers. */
    const char *key = "00000000-0000-4000-8000-000000000001";
    char *vd = q1(c, "DELETE FROM public.incidents WHERE id = $1 RETURNING version", key);
    ck_assert_str_eq(vd, "41");
    char *vr = q1(c,
                  "INSERT INTO public.incidents (id, region, version) VALUES ($1, 'a', 41) "
                  "RETURNING version",
                  key);
    ck_assert_msg(atoll(vr) > atoll(v2), "re-insert: version %s, want > %s", vr, v2);

    /* TRUNCATE ... RESTART IDENTITY must not rewind the versions. */
    free(q1(c, "TRUNCATE public.incidents RESTART IDENTITY", NULL));
    char *vt = q1(c,
                  "INSERT INTO public.incidents (id, region) VALUES ($1, 'a') "
                  "RETURNING version",
                  key);
    ck_assert_msg(atoll(vt) > atoll(vr), "after TRUNCATE: version %s, want > %s", vt, vr);
    free(v1);
    free(v2);
    free(vd);
    free(vr);
    free(vt);
    PQfinish(c);
}
END_TEST

/* Waits until backend pid waits on a lock; false after 10 s. */
static bool waits_on_lock(PGconn *c, int pid)
{
    char p[16];
    snprintf(p, sizeof p, "%d", pid);
    for (int i = 0; i < 1000; i++) {
        char *w = q1(c, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1::int", p);
        bool yes = w != NULL && strcmp(w, "Lock") == 0;
        free(w);
        if (yes)
            return true;
        usleep(10000);
    }
    return false;
}

/* One race: `holder` has written `key` and keeps its transaction open;
 * another session inserts `key` and must wait; the holder then updates and
 * deletes the key and commits.  The waiting insert goes through, and its
 * version must beat the holder's delete, which subscribers keep as the
 * tombstone. */
static void insert_races_holder(PGconn *holder, PGconn *ins, const char *key)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "INSERT INTO public.incidents (id, region) VALUES ('%s', 'racer') RETURNING version",
             key);
    ck_assert_int_eq(PQsendQuery(ins, sql), 1);
    ck_assert_msg(waits_on_lock(holder, PQbackendPID(ins)), "the insert of %s did not wait", key);
    free(q1(holder, "UPDATE public.incidents SET status = 'u' WHERE id = $1", key));
    char *vd = q1(holder, "DELETE FROM public.incidents WHERE id = $1 RETURNING version", key);
    free(q1(holder, "COMMIT", NULL));
    PGresult *r = PQgetResult(ins);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "insert %s: %s", key,
                  PQresultErrorMessage(r));
    long long vi = atoll(PQgetvalue(r, 0, 0));
    ck_assert_msg(vi > atoll(vd), "insert after the delete: version %lld, tombstone %s", vi, vd);
    PQclear(r);
    while ((r = PQgetResult(ins)) != NULL)
        PQclear(r);
    free(vd);
}

/* An INSERT's version is drawn only after every other writer of its key
 * has finished: an uncommitted insert of the same key, or an uncommitted
 * update (then delete) of the live row. */
START_TEST(test_insert_waits_for_writers_of_its_key)
{
    migrate_ok(db_a);
    PGconn *holder = connect_db(db_a), *ins = connect_db(db_a);
    const char *k1 = "00000000-0000-4000-8000-0000000000a1";
    free(q1(holder, "BEGIN", NULL));
    free(q1(holder, "INSERT INTO public.incidents (id, region) VALUES ($1, 'holder')", k1));
    insert_races_holder(holder, ins, k1);

    const char *k2 = "00000000-0000-4000-8000-0000000000a2";
    free(q1(holder, "INSERT INTO public.incidents (id, region) VALUES ($1, 'holder')", k2));
    free(q1(holder, "BEGIN", NULL));
    free(q1(holder, "UPDATE public.incidents SET status = 'first' WHERE id = $1", k2));
    insert_races_holder(holder, ins, k2);
    PQfinish(holder);
    PQfinish(ins);
}
END_TEST

START_TEST(test_checksum_mismatch_refused)
{
    hms_err_t err;
    migrate_ok(db_b);
    PGconn *c = connect_db(db_b);
    free(q1(c, "UPDATE hms_sync.schema_migrations SET checksum = 'x' WHERE version = 2", NULL));
    ck_assert_int_eq(migrate_db(db_b, NULL, &err), HMS_ERR_PG);
    ck_assert_msg(strstr(err.msg, "checksum mismatch for 002_incidents.sql") != NULL &&
                      strstr(err.msg, "recorded x, current ") != NULL &&
                      strstr(err.msg, "UPDATE hms_sync.schema_migrations") != NULL &&
                      strchr(err.msg, '\n') == NULL,
                  "message: %s", err.msg);
    /* The lock was released on the way out: a corrected ledger migrates. */
    const char *sql = hms_sql_migrations[1].sql;
    free(q1(c,
            "UPDATE hms_sync.schema_migrations SET checksum = "
            "encode(sha256(convert_to($1, 'UTF8')), 'hex') WHERE version = 2",
            sql));
    PQfinish(c);
    migrate_ok(db_b);
}
END_TEST

typedef struct {
    hms_status_t st;
    hms_err_t err;
    char *out;
} run_result_t;

static void *migrate_thread(void *arg)
{
    run_result_t *res = arg;
    res->st = migrate_db(db_c, &res->out, &res->err);
    return NULL;
}

static int count_lines(const char *s, const char *prefix)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, prefix)) != NULL; p += strlen(prefix))
        n++;
    return n;
}

START_TEST(test_concurrent_runs_apply_once)
{
    run_result_t res[2];
    pthread_t th[2];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, migrate_thread, &res[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(res[i].st == HMS_OK, "run %d: %s", i, res[i].err.msg);
    int applied = count_lines(res[0].out, "migrations: applied ") +
                  count_lines(res[1].out, "migrations: applied ");
    ck_assert_int_eq(applied, (int)hms_sql_migrations_count);
    free(res[0].out);
    free(res[1].out);
    PGconn *c = connect_db(db_c);
    char want[24];
    snprintf(want, sizeof(want), "%zu", hms_sql_migrations_count);
    expect(c, "SELECT count(*) FROM hms_sync.schema_migrations", want);
    PQfinish(c);
}
END_TEST

START_TEST(test_failed_file_leaves_nothing)
{
    const hms_sql_file_t files[] = {
        {"001_ok.sql", "CREATE TABLE public.it_ok (a int);\n"},
        {"002_bad.sql", "CREATE TABLE public.it_bad (a int);\n\nSELECT no_such_column FROM "
                        "public.it_ok;\n"},
    };
    hms_err_t err;
    PGconn *c = connect_db(db_e);
    ck_assert_int_eq(hms_migrate_apply(c, files, 2, "it_ledger", NULL, &err), HMS_ERR_PG);
    ck_assert_msg(strstr(err.msg, "002_bad.sql") != NULL && strstr(err.msg, "line 3") != NULL &&
                      strstr(err.msg, "no_such_column") != NULL,
                  "message: %s", err.msg);
    expect(c, "SELECT to_regclass('public.it_ok') IS NOT NULL", "t");
    expect(c, "SELECT to_regclass('public.it_bad') IS NULL", "t");
    expect(c, "SELECT string_agg(name, ',') FROM hms_sync.it_ledger", "001_ok.sql");
    /* The connection is usable and unlocked afterwards. */
    expect(c,
           "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = "
           "pg_backend_pid()",
           "0");

    const hms_sql_file_t unnumbered[] = {{"ok.sql", "SELECT 1"}};
    ck_assert_int_eq(hms_migrate_apply(c, unnumbered, 1, "it_ledger", NULL, &err), HMS_ERR_CONFIG);
    const hms_sql_file_t unordered[] = {{"002_a.sql", "SELECT 1"}, {"001_b.sql", "SELECT 1"}};
    ck_assert_int_eq(hms_migrate_apply(c, unordered, 2, "it_ledger", NULL, &err), HMS_ERR_CONFIG);
    ck_assert_int_eq(hms_migrate_apply(c, files, 1, "Bad; DROP", NULL, &err), HMS_ERR_CONFIG);
    PQfinish(c);
}
END_TEST

START_TEST(test_connect_errors_name_target_not_password)
{
    hms_err_t err;
    hms_status_t st = hms_migrate_run(
        "host=127.0.0.1 port=1 dbname=nodb user=u password=sekret connect_timeout=3", NULL, 10,
        NULL, &err);
    ck_assert_int_eq(st, HMS_ERR_PG);
    ck_assert_msg(strstr(err.msg, "127.0.0.1:1/nodb") != NULL &&
                      strstr(err.msg, "sekret") == NULL && strchr(err.msg, '\n') == NULL,
                  "message: %s", err.msg);

    st = hms_migrate_run("host=127.0.0.1 password=sekret junk", NULL, 10, NULL, &err);
    ck_assert_int_eq(st, HMS_ERR_CONFIG);
    ck_assert_msg(strstr(err.msg, "sekret") == NULL, "message: %s", err.msg);
    st = hms_migrate_run("host=127.0.0.1 nosuchoption=1", NULL, 10, NULL, &err);
    ck_assert_int_eq(st, HMS_ERR_CONFIG);
    ck_assert_msg(strstr(err.msg, "nosuchoption") != NULL, "message: %s", err.msg);

    char *ci = conninfo_for("hms_it_no_such_database");
    st = hms_migrate_run(ci, NULL, 10, NULL, &err);
    free(ci);
    ck_assert_int_eq(st, HMS_ERR_PG);
    ck_assert_msg(strstr(err.msg, "/hms_it_no_such_database") != NULL, "message: %s", err.msg);

    st = hms_slot_status("host=127.0.0.1 port=1 dbname=nodb password=sekret connect_timeout=3",
                         NULL, 10, false, stdout, &err);
    ck_assert_int_eq(st, HMS_ERR_PG);
    ck_assert_msg(strstr(err.msg, "sekret") == NULL, "message: %s", err.msg);
}
END_TEST

static char *status_of(const char *db, const char *slot, bool json, hms_status_t *st,
                       hms_err_t *err)
{
    char *ci = conninfo_for(db);
    size_t len;
    char *buf = NULL;
    FILE *out = open_memstream(&buf, &len);
    *st = hms_slot_status(ci, slot, 10, json, out, err);
    fclose(out);
    free(ci);
    return buf;
}

extern char **environ;

/* While pg_recvlogical streams from the slot, status shows the walsender's
 * pid and its last reply.  Skipped without HMS_TEST_PGBIN. */
static void check_active_slot(void)
{
    const char *bin = getenv("HMS_TEST_PGBIN");
    if (bin == NULL || *bin == '\0')
        return;
    char path[512];
    snprintf(path, sizeof(path), "%s/pg_recvlogical", bin);
    char *ci = conninfo_for(db_a);
    char *argv[] = {path,      "-d",
                    ci,        "--slot",
                    slot_name, "--start",
                    "-f",      "/dev/null",
                    "-o",      "proto_version=1",
                    "-o",      "publication_names=hms_sync_incidents",
                    "-s",      "1",
                    NULL};
    pid_t pid;
    ck_assert_int_eq(posix_spawn(&pid, path, NULL, NULL, argv, environ), 0);
    hms_status_t st;
    hms_err_t err;
    json_object *o = NULL, *v;
    bool seen = false;
    for (int i = 0; i < 100 && !seen; i++) {
        usleep(100 * 1000);
        char *js = status_of(db_a, slot_name, true, &st, &err);
        json_object_put(o);
        o = json_tokener_parse(js);
        free(js);
        seen = st == HMS_OK && o != NULL && json_object_object_get_ex(o, "reply_time", &v) &&
               v != NULL;
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    free(ci);
    ck_assert_msg(seen, "reply_time never appeared while pg_recvlogical streamed");
    ck_assert(json_object_object_get_ex(o, "active", &v) && json_object_get_boolean(v));
    ck_assert(json_object_object_get_ex(o, "active_pid", &v) &&
              json_object_is_type(v, json_type_int));
    json_object_put(o);
    /* The walsender may take a moment to release the slot before it drops. */
    PGconn *c = connect_db(db_a);
    for (int i = 0; i < 50; i++) {
        char *active =
            q1(c, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot_name);
        bool busy = active != NULL && strcmp(active, "t") == 0;
        free(active);
        if (!busy)
            break;
        usleep(100 * 1000);
    }
    PQfinish(c);
}

START_TEST(test_status_reports_slot)
{
    hms_status_t st;
    hms_err_t err;
    migrate_ok(db_a);
    PGconn *c = connect_db(db_a);
    free(q1(c, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot_name));

    /* Connected to a database without hms_sync.slot_progress: unknown. */
    char *text = status_of(db_e, slot_name, false, &st, &err);
    ck_assert_msg(st == HMS_OK, "status: %s", err.msg);
    char want[128];
    snprintf(want, sizeof(want), "slot_name:                  %s\n", slot_name);
    ck_assert_msg(strstr(text, want) != NULL, "text:\n%s", text);
    const char *lines[] = {
        "plugin:                     pgoutput\n", "active:                     false\n",
        "active_pid:                 unknown\n",  "lag_bytes:                  ",
        "wal_retained_bytes:         ",           "confirmed_flush_lsn:        ",
        "current_wal_lsn:            ",           "wal_status:                 reserved\n",
        "seconds_since_last_commit:  unknown\n",  "last_commit_time:           unknown\n",
        "reply_time:                 unknown\n"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        ck_assert_msg(strstr(text, lines[i]) != NULL, "missing \"%s\" in:\n%s", lines[i], text);
    free(text);

    /* With the connector's progress row. */
    free(q1(c,
            "INSERT INTO hms_sync.slot_progress (slot_name, confirmed_lsn, last_commit_lsn, "
            "last_commit_time) VALUES ($1, '0/10', '0/8', now() - interval '5 seconds')",
            slot_name));
    char *js = status_of(db_a, slot_name, true, &st, &err);
    ck_assert_msg(st == HMS_OK, "status: %s", err.msg);
    ck_assert_msg(strchr(js, '\n') == js + strlen(js) - 1, "one line: %s", js);
    json_object *o = json_tokener_parse(js), *v;
    ck_assert_msg(o != NULL && json_object_is_type(o, json_type_object), "json: %s", js);
    ck_assert(json_object_object_get_ex(o, "slot_name", &v));
    ck_assert_str_eq(json_object_get_string(v), slot_name);
    ck_assert(json_object_object_get_ex(o, "plugin", &v));
    ck_assert_str_eq(json_object_get_string(v), "pgoutput");
    ck_assert(json_object_object_get_ex(o, "active", &v));
    ck_assert(json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v));
    ck_assert(json_object_object_get_ex(o, "active_pid", &v) && v == NULL);
    ck_assert(json_object_object_get_ex(o, "reply_time", &v) && v == NULL);
    const char *ints[] = {"lag_bytes", "wal_retained_bytes"};
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(json_object_object_get_ex(o, ints[i], &v) &&
                          json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0,
                      "%s in %s", ints[i], js);
    }
    const char *lsns[] = {"confirmed_flush_lsn", "restart_lsn", "current_wal_lsn",
                          "last_commit_lsn"};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(json_object_object_get_ex(o, lsns[i], &v) &&
                          json_object_is_type(v, json_type_string) &&
                          strchr(json_object_get_string(v), '/') != NULL,
                      "%s in %s", lsns[i], js);
    }
    ck_assert(json_object_object_get_ex(o, "last_commit_lsn", &v));
    ck_assert_str_eq(json_object_get_string(v), "0/8");
    ck_assert(json_object_object_get_ex(o, "seconds_since_last_commit", &v));
    ck_assert_msg(json_object_is_type(v, json_type_double) && json_object_get_double(v) >= 5.0,
                  "seconds_since_last_commit in %s", js);
    ck_assert(json_object_object_get_ex(o, "last_commit_time", &v));
    const char *lct = json_object_get_string(v);
    ck_assert_msg(lct != NULL && strlen(lct) == 27 && lct[26] == 'Z', "time %s", lct);
    json_object_put(o);
    free(js);

    check_active_slot();
    free(q1(c, "SELECT pg_drop_replication_slot($1)", slot_name));
    PQfinish(c);
}
END_TEST

START_TEST(test_status_missing_slot)
{
    hms_status_t st;
    hms_err_t err;
    char *text = status_of(db_e, "hms_it_no_such_slot", false, &st, &err);
    ck_assert_int_eq(st, HMS_ERR_PG);
    ck_assert_msg(strstr(err.msg, "\"hms_it_no_such_slot\" does not exist") != NULL &&
                      strstr(err.msg, "hms-sync run") != NULL,
                  "message: %s", err.msg);
    ck_assert_str_eq(text, "");
    free(text);
    text = status_of(db_e, "", false, &st, &err);
    ck_assert_int_eq(st, HMS_ERR_CONFIG);
    free(text);
}
END_TEST

/* The program's setup: this run's database and slot names, from the pid so
 * that runs side by side never meet.  The fixture makes the databases. */
static int name_dbs(void)
{
    admin_conninfo = getenv("HMS_TEST_PG");
    int pid = (int)getpid();
    snprintf(db_a, sizeof(db_a), "hms_it_migrate_%d_a", pid);
    snprintf(db_b, sizeof(db_b), "hms_it_migrate_%d_b", pid);
    snprintf(db_c, sizeof(db_c), "hms_it_migrate_%d_c", pid);
    snprintf(db_d, sizeof(db_d), "hms_it_migrate_%d_d", pid);
    snprintf(db_e, sizeof(db_e), "hms_it_migrate_%d_e", pid);
    snprintf(db_f, sizeof(db_f), "hms_it_migrate_%d_f", pid);
    snprintf(slot_name, sizeof(slot_name), "hms_it_migrate_%d", pid);
    return 0;
}

static Suite *migrate_suite(void)
{
    Suite *s = suite_create("migrate");
    TCase *tc = tcase_create("postgres");
    tcase_add_unchecked_fixture(tc, setup_dbs, teardown_dbs);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fresh_migrate_creates_everything);
    tcase_add_test(tc, test_second_run_is_noop);
    tcase_add_test(tc, test_second_database_reuses_role);
    tcase_add_test(tc, test_attaches_to_existing_table);
    tcase_add_test(tc, test_version_sequence_on_existing_rows);
    tcase_add_test(tc, test_insert_waits_for_writers_of_its_key);
    tcase_add_test(tc, test_checksum_mismatch_refused);
    tcase_add_test(tc, test_concurrent_runs_apply_once);
    tcase_add_test(tc, test_failed_file_leaves_nothing);
    tcase_add_test(tc, test_connect_errors_name_target_not_password);
    tcase_add_test(tc, test_status_reports_slot);
    tcase_add_test(tc, test_status_missing_slot);
    suite_add_tcase(s, tc);
    return s;
}

IT_MAIN(.name = "migrate", .setup = name_dbs, .suite = migrate_suite)
