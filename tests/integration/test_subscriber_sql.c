/* test_subscriber_sql.c -- the subscriber-side SQL against real PostgreSQL: migrate --subscriber,
 * the inbox, the seed subscribers, the SQL LWW against src/core/lww.c, and races on one subject.
 *
 * Needs only HMS_TEST_PG (no broker).  The program makes its own databases,
 * subsql_<pid> (subscriber migrations only: no publisher objects) and
 * subsql_icu_<pid> (an ICU en-US default collation, where 'Z' < 'a' is
 * false, so the "C" comparisons are really tested), and drops them at the
 * end.  Role hms_sync_subscriber is cluster-wide and is left in place. */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/lww.h"
#include "common/pgconn.h"
#include "daemon/migrations.h"
#include "it.h"

#define SOURCE "/hms-ehr/7/subsql/public.incidents"

static char admin_conninfo[IT_CONNINFO_MAX];
static char db_conninfo[IT_CONNINFO_MAX];  /* subsql_<pid> */
static char icu_conninfo[IT_CONNINFO_MAX]; /* subsql_icu_<pid>, or db_conninfo */
static char db_name[64], icu_name[64], mig_name[64];
static bool icu_made;

static uint64_t rng = 0x2545F4914F6CDD1Du;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* ---- setup ---- */

/* base conninfo with dbname replaced, values quoted as libpq wants. */
static int conninfo_for(const char *base, const char *dbname, char *out, size_t n)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &errmsg);
    if (opts == NULL) {
        fprintf(stderr, "subsql: HMS_TEST_PG is not a valid conninfo: %s\n",
                errmsg ? errmsg : "out of memory");
        PQfreemem(errmsg);
        return -1;
    }
    size_t len = 0;
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *val = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
        if (val == NULL)
            continue;
        len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s='", len ? " " : "",
                                o->keyword);
        for (const char *p = val; *p != '\0' && len + 3 < n; p++) {
            if (*p == '\'' || *p == '\\')
                out[len++] = '\\';
            out[len++] = *p;
        }
        len += (size_t)snprintf(out + len, len < n ? n - len : 0, "'");
    }
    PQconninfoFree(opts);
    if (len >= n) {
        fprintf(stderr, "subsql: conninfo too long\n");
        return -1;
    }
    return 0;
}

/* Runs hms-sync with argv (NULL-terminated, argv[0] the first argument);
 * returns its exit code and its stdout+stderr in out (caller frees). */
static int run_hms(const char *const argv[], char **out)
{
    char path[] = "/tmp/subsql_out_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        const char *args[16] = {HMS_BIN};
        for (int i = 0; argv[i] != NULL && i < 14; i++)
            args[i + 1] = argv[i];
        dup2(fd, 1);
        dup2(fd, 2);
        execv(HMS_BIN, (char *const *)args);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    off_t size = lseek(fd, 0, SEEK_END);
    *out = calloc(1, (size_t)size + 1);
    if (*out != NULL && size > 0 && pread(fd, *out, (size_t)size, 0) != size)
        (*out)[0] = '\0';
    close(fd);
    unlink(path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static PGconn *connect_db(const char *conninfo)
{
    PGconn *c = it_pg_connect(conninfo);
    ck_assert_ptr_nonnull(c);
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

/* ---- events ---- */

typedef struct {
    const char *kind; /* "Created", "Updated" or "Deleted" */
    const char *id;
    const char *subject;
    long long version;
    int tick; /* updatedat = 2026-01-01T00:00:00 + tick seconds */
    const char *origin;
    const char *region;
    int severity;
    const char *status;
    const char *summary; /* NULL: JSON null */
} ev_t;

static void ev_time(int tick, char out[32])
{
    snprintf(out, 32, "2026-01-01T%02d:%02d:%02d.000000Z", (tick / 3600) % 24, (tick / 60) % 60,
             tick % 60);
}

/* The event's JSON text (caller frees); each field a test sets directly. */
static char *ev_json(const ev_t *e)
{
    char t[32], when[32], summary[160];
    ev_time(e->tick, t);
    ev_time(e->tick + 1, when); /* commit a second after the row's update */
    if (e->summary != NULL)
        snprintf(summary, sizeof(summary), "\"%s\"", e->summary);
    else
        strcpy(summary, "null");
    char *s = NULL;
    int n = asprintf(
        &s,
        "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"%s\","
        "\"type\":\"gov.hms.ehr.Incident%s.v1\",\"subject\":\"%s\",\"time\":\"%s\","
        "\"datacontenttype\":\"application/json\","
        "\"dataschema\":\"https://hms.gov/schemas/ehr/Incident%s.v1.json\","
        "\"lsn\":\"0/16B3748\",\"txid\":700,\"version\":%lld,\"updatedat\":\"%s\","
        "\"origin\":\"%s\",\"data\":{\"id\":\"%s\",\"occurred_at\":\"2025-12-31T23:00:00.000000Z\","
        "\"region\":\"%s\",\"severity\":%d,\"status\":\"%s\",\"summary\":%s,\"reported_by\":null,"
        "\"version\":%lld,\"updated_at\":\"%s\",\"origin\":\"%s\"}}",
        e->id, SOURCE, e->kind, e->subject, when, e->kind, e->version, t, e->origin, e->subject,
        e->region, e->severity, e->status, summary, e->version, t, e->origin);
    ck_assert_int_gt(n, 0);
    return s;
}

/* SELECT hms_sync.consume(...): the outcome (caller frees), or NULL with
 * the server's primary message in err. */
static char *consume_text(PGconn *c, const char *sub, const char *fn, const char *json, char *err,
                          size_t errlen)
{
    const char *params[3] = {sub, fn, json};
    PGresult *r = PQexecParams(c, "SELECT hms_sync.consume($1, $2::regprocedure, $3::jsonb)", 3,
                               NULL, params, NULL, NULL, 0);
    char *out = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        out = strdup(PQgetvalue(r, 0, 0));
    else if (err != NULL)
        snprintf(err, errlen, "%s", PQerrorMessage(c));
    PQclear(r);
    return out;
}

/* consume() must succeed with outcome want. */
static void expect(PGconn *c, const char *sub, const char *fn, const ev_t *e, const char *want)
{
    char err[1024] = "";
    char *json = ev_json(e);
    char *got = consume_text(c, sub, fn, json, err, sizeof(err));
    ck_assert_msg(got != NULL, "%s(%s v%lld): %s", fn, e->id, e->version, err);
    ck_assert_msg(strcmp(got, want) == 0, "%s(%s %s v%lld tick %d %s): got %s, want %s", fn, e->id,
                  e->kind, e->version, e->tick, e->origin, got, want);
    free(got);
    free(json);
}

/* consume() must fail with a message containing want; nothing recorded. */
static void expect_error(PGconn *c, const char *sub, const char *fn, const char *json,
                         const char *want)
{
    char err[1024] = "";
    char *got = consume_text(c, sub, fn, json, err, sizeof(err));
    ck_assert_msg(got == NULL, "%s accepted a bad event (%s): %s", fn, got, json);
    ck_assert_msg(strstr(err, want) != NULL, "%s: error \"%s\" lacks \"%s\"", fn, err, want);
}

static void new_uuid(char out[37])
{
    uint64_t a = rnd(), b = rnd();
    snprintf(out, 37, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64 "-%012" PRIx64,
             a >> 32, (a >> 16) & 0xFFFF, a & 0xFFF, b >> 52, b & 0xFFFFFFFFFFFFu);
}

static unsigned id_seq;

/* Unique across the tests even when Check forks each one (the counter and
 * the generator then restart in every child): the pid and time go in. */
static const char *new_id(char out[40])
{
    id_seq++;
    snprintf(out, 40, "%08X%08X-%u", (unsigned)getpid(), id_seq, id_seq % 7);
    return out;
}

static void reseed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rng ^= ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
    if (rng == 0)
        rng = 1;
}

static char *value(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *value(PGconn *c, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return it_pg_value(c, "%s", sql);
}

static void expect_value(PGconn *c, const char *want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void expect_value(PGconn *c, const char *want, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    char *got = it_pg_value(c, "%s", sql);
    ck_assert_msg(got != NULL && strcmp(got, want) == 0, "%s: got %s, want %s", sql,
                  got ? got : "(null)", want);
    free(got);
}

/* ---- migrate ---- */

START_TEST(test_migrate_subscriber_twice)
{
    char conninfo[IT_CONNINFO_MAX], *out = NULL;
    ck_assert_int_eq(conninfo_for(admin_conninfo, mig_name, conninfo, sizeof(conninfo)), 0);
    PGconn *admin = connect_db(admin_conninfo);
    ck_assert_int_eq(it_pg_exec(admin, "CREATE DATABASE %s", mig_name), 0);

    const char *argv[] = {"migrate", "--subscriber", "--pg", conninfo, NULL};
    int rc = run_hms(argv, &out);
    ck_assert_msg(rc == 0, "first migrate --subscriber: exit %d: %s", rc, out);
    for (size_t i = 0; i < hms_sql_subscriber_migrations_count; i++) {
        char line[160];
        snprintf(line, sizeof(line), "applied %s", hms_sql_subscriber_migrations[i].name);
        ck_assert_msg(strstr(out, line) != NULL, "no \"%s\" in: %s", line, out);
    }
    free(out);
    rc = run_hms(argv, &out);
    ck_assert_msg(rc == 0, "second migrate --subscriber: exit %d: %s", rc, out);
    ck_assert_msg(strstr(out, "migrations: up to date") != NULL && strstr(out, "applied 0") == NULL,
                  "second run was not a no-op: %s", out);
    free(out);

    PGconn *c = connect_db(conninfo);
    char n[16];
    snprintf(n, sizeof(n), "%zu", hms_sql_subscriber_migrations_count);
    expect_value(c, n, "SELECT count(*) FROM hms_sync.subscriber_migrations");
    /* Nothing of the publisher side was needed or made. */
    expect_value(c, "t",
                 "SELECT to_regclass('public.incidents') IS NULL AND "
                 "to_regclass('hms_sync.schema_migrations') IS NULL");
    expect_value(c, "t|f|f|f",
                 "SELECT concat_ws('|', rolcanlogin, rolsuper, rolreplication, rolcreaterole) "
                 "FROM pg_roles WHERE rolname = 'hms_sync_subscriber'");
    PQfinish(c);
    ck_assert_int_eq(it_pg_exec(admin, "DROP DATABASE %s WITH (FORCE)", mig_name), 0);
    PQfinish(admin);
}
END_TEST

/* ---- the inbox ---- */

START_TEST(test_consume_inbox)
{
    PGconn *c = connect_db(db_conninfo);
    ck_assert_int_eq(
        it_pg_exec(c, "CREATE TABLE public.subsql_calls (id text);"
                      "CREATE FUNCTION public.subsql_count(e jsonb) RETURNS text LANGUAGE sql AS "
                      "$$ INSERT INTO public.subsql_calls VALUES (e->>'id'); SELECT 'applied' $$;"
                      "CREATE FUNCTION public.subsql_fail(e jsonb) RETURNS text LANGUAGE plpgsql "
                      "AS $$ BEGIN INSERT INTO public.subsql_calls VALUES ('fail'); "
                      "RAISE EXCEPTION 'subsql refuses %%', e->>'id'; END $$;"
                      "CREATE FUNCTION public.subsql_null(e jsonb) RETURNS text LANGUAGE sql AS "
                      "$$ SELECT NULL::text $$;"
                      "CREATE FUNCTION public.subsql_int(e jsonb) RETURNS int LANGUAGE sql AS "
                      "$$ SELECT 1 $$"),
        0);
    char subj[37], id[40];
    new_uuid(subj);
    new_id(id);
    ev_t e = {"Created", id, subj, 1, 0, "hms-ehr", "north", 3, "open", "s"};
    expect(c, "q.a", "public.subsql_count(jsonb)", &e, "applied");
    expect(c, "q.a", "public.subsql_count(jsonb)", &e, "duplicate");
    expect(c, "q.a", "public.subsql_count(jsonb)", &e, "duplicate");
    /* Another subscriber in the same database keeps its own inbox. */
    expect(c, "q.b", "public.subsql_count(jsonb)", &e, "applied");
    expect_value(c, "2", "SELECT count(*) FROM public.subsql_calls WHERE id = '%s'", id);
    expect_value(c, "applied|IncidentCreated",
                 "SELECT outcome || '|' || split_part(type, '.', 4) FROM "
                 "hms_sync.inbox WHERE subscriber = 'q.a' AND id = '%s'",
                 id);
    /* The key is (source, id): the same id from another source is new. */
    char *json = ev_json(&e), *other = NULL;
    ck_assert_int_gt(asprintf(&other, "%.*s/other%s",
                              (int)(strstr(json, SOURCE) - json + strlen(SOURCE)), json,
                              strstr(json, SOURCE) + strlen(SOURCE)),
                     0);
    char err[1024],
        *got = consume_text(c, "q.a", "public.subsql_count(jsonb)", other, err, sizeof(err));
    ck_assert_msg(got != NULL && strcmp(got, "applied") == 0, "other source: %s %s", got, err);
    free(got);
    free(other);

    /* An error in apply rolls everything back: no inbox row, no side effect,
     * and a later delivery is taken in afresh. */
    char id2[40];
    ev_t f = e;
    f.id = new_id(id2);
    char *fj = ev_json(&f);
    expect_error(c, "q.a", "public.subsql_fail(jsonb)", fj, "subsql refuses");
    expect_value(c, "0", "SELECT count(*) FROM hms_sync.inbox WHERE id = '%s'", id2);
    expect_value(c, "0", "SELECT count(*) FROM public.subsql_calls WHERE id = 'fail'");
    expect_error(c, "q.a", "public.subsql_null(jsonb)", fj, "returned no outcome");
    expect_error(c, "q.a", "public.subsql_int(jsonb)", fj,
                 "is not a function (event jsonb) RETURNS text");
    expect_error(c, "q.a", "public.subsql_nosuch(jsonb)", fj, "does not exist");
    expect_error(c, "", "public.subsql_count(jsonb)", fj, "subscriber name must not be empty");
    expect(c, "q.a", "public.subsql_count(jsonb)", &f, "applied");
    free(fj);

    /* Envelope members consume needs. */
    expect_error(c, "q.a", "public.subsql_count(jsonb)", "[1]", "must be a JSON object");
    expect_error(c, "q.a", "public.subsql_count(jsonb)", "{\"source\":\"/s\",\"type\":\"t\"}",
                 "\"id\" must be a non-empty string");
    expect_error(c, "q.a", "public.subsql_count(jsonb)",
                 "{\"source\":\"/s\",\"id\":\"x\",\"type\":\"t\",\"subject\":7}",
                 "\"subject\" must be a non-empty string");
    free(json);
    PQfinish(c);
}
END_TEST

/* ---- the seed subscribers ---- */

typedef struct {
    const char *fn;
    const char *table;
} seed_t;

static const seed_t seeds[] = {
    {"hms_sync.apply_warehouse(jsonb)", "public.incident_facts"},
    {"hms_sync.apply_scheduling(jsonb)", "public.investigation_tasks"},
    {"hms_sync.apply_casemgmt(jsonb)", "public.cases"},
};

/* version|deleted|region|severity|origin of the replica row, columns all three share. */
static void expect_row(PGconn *c, const seed_t *s, const char *subj, const char *want)
{
    expect_value(c, want,
                 "SELECT concat_ws('|', version, deleted, region, severity, origin) FROM %s "
                 "WHERE incident_id = '%s'",
                 s->table, subj);
}

static void scenarios(const seed_t *s)
{
    PGconn *c = connect_db(db_conninfo);
    const char *q = "q.seed";
    char a[37], b[37], d[37], g[37], h[37], i1[40], i2[40], i3[40], i4[40], i5[40], i6[40];

    /* In order: create, update, update. */
    new_uuid(a);
    ev_t c1 = {"Created", new_id(i1), a, 1, 10, "hms-ehr", "north", 3, "open", "first"};
    ev_t u2 = {"Updated", new_id(i2), a, 2, 20, "casemgmt", "south", 2, "triaged", "second"};
    ev_t u3 = {"Updated", new_id(i3), a, 3, 30, "hms-ehr", "east", 1, "assigned", NULL};
    expect(c, q, s->fn, &c1, "applied");
    expect(c, q, s->fn, &u2, "applied");
    expect(c, q, s->fn, &u3, "applied");
    expect_row(c, s, a, "3|f|east|1|hms-ehr");

    /* Reversed, on a fresh incident: the newest wins at once, the rest are stale. */
    new_uuid(b);
    ev_t r3 = u3, r2 = u2, r1 = c1;
    r3.subject = r2.subject = r1.subject = b;
    r3.id = new_id(i4);
    r2.id = new_id(i5);
    r1.id = new_id(i6);
    expect(c, q, s->fn, &r3, "applied");
    expect(c, q, s->fn, &r2, "stale");
    expect(c, q, s->fn, &r1, "stale");
    expect_row(c, s, b, "3|f|east|1|hms-ehr");
    /* Redelivered (same id): the inbox says duplicate.  Re-published under a
     * new id with the same tuple: LWW says duplicate. */
    expect(c, q, s->fn, &r3, "duplicate");
    char i7[40];
    ev_t again = r3;
    again.id = new_id(i7);
    expect(c, q, s->fn, &again, "duplicate");
    expect_value(c, "applied,stale,stale,duplicate",
                 "SELECT string_agg(outcome, ',' ORDER BY received_at, id) FROM hms_sync.inbox "
                 "WHERE subscriber = '%s' AND subject = '%s'",
                 q, b);

    /* Delete with the version of the row it removed wins the tie; the
     * tombstone then holds against late and re-sent writes. */
    new_uuid(d);
    char j1[40], j2[40], j3[40], j4[40], j5[40], j6[40];
    ev_t dc = {"Created", new_id(j1), d, 1, 100, "hms-ehr", "west", 4, "open", "x"};
    ev_t du = {"Updated", new_id(j2), d, 2, 110, "hms-ehr", "west", 5, "closed", "x"};
    ev_t dd = du;
    dd.kind = "Deleted";
    dd.id = new_id(j3);
    expect(c, q, s->fn, &dc, "applied");
    expect(c, q, s->fn, &du, "applied");
    expect(c, q, s->fn, &dd, "applied");
    expect_row(c, s, d, "2|t|west|5|hms-ehr");
    ev_t late = du;
    late.id = new_id(j4);
    expect(c, q, s->fn, &late, "stale");
    late = dc;
    late.id = new_id(j5);
    expect(c, q, s->fn, &late, "stale");
    ev_t dd2 = dd;
    dd2.id = new_id(j6);
    expect(c, q, s->fn, &dd2, "duplicate");
    expect(c, q, s->fn, &dd, "duplicate");
    expect_row(c, s, d, "2|t|west|5|hms-ehr");

    /* The delete arrives first: a tombstone is born and nothing older revives it. */
    new_uuid(g);
    char k1[40], k2[40], k3[40];
    ev_t gd = {"Deleted", new_id(k1), g, 2, 50, "hms-ehr", "north", 3, "open", NULL};
    ev_t gc = {"Created", new_id(k2), g, 1, 40, "hms-ehr", "north", 3, "open", NULL};
    ev_t gu = {"Updated", new_id(k3), g, 2, 50, "hms-ehr", "north", 2, "open", NULL};
    expect(c, q, s->fn, &gd, "applied");
    expect(c, q, s->fn, &gc, "stale");
    expect(c, q, s->fn, &gu, "stale");
    expect_row(c, s, g, "2|t|north|3|hms-ehr");

    /* A full tie on version and updatedat falls to the greater origin,
     * whichever arrives first. */
    new_uuid(h);
    char m1[40], m2[40], m3[40], m4[40];
    ev_t ho = {"Updated", new_id(m1), h, 4, 60, "casemgmt", "north", 3, "open", NULL};
    ev_t he = {"Updated", new_id(m2), h, 4, 60, "hms-ehr", "south", 3, "open", NULL};
    expect(c, q, s->fn, &ho, "applied");
    expect(c, q, s->fn, &he, "applied");
    expect_row(c, s, h, "4|f|south|3|hms-ehr");
    new_uuid(h);
    ho.subject = he.subject = h;
    ho.id = new_id(m3);
    he.id = new_id(m4);
    expect(c, q, s->fn, &he, "applied");
    expect(c, q, s->fn, &ho, "stale");
    expect_row(c, s, h, "4|f|south|3|hms-ehr");
    PQfinish(c);
}

START_TEST(test_seed_sequences)
{
    scenarios(&seeds[_i]);
}
END_TEST

/* What each seed subscriber adds to the shared columns. */
START_TEST(test_seed_specifics)
{
    PGconn *c = connect_db(db_conninfo);
    /* Each subscriber its own queue name, as in production: one event
     * goes to all three. */
    const char *q = "q.specific.scheduling";
    char t[37], i1[40], i2[40], i3[40];
    new_uuid(t);
    ev_t c1 = {"Created", new_id(i1), t, 1, 10, "hms-ehr", "north", 1, "open", NULL};
    ev_t u2 = {"Updated", new_id(i2), t, 2, 20, "hms-ehr", "north", 4, "triaged", "Fall on ward 3"};
    ev_t d2 = u2;
    d2.kind = "Deleted";
    d2.id = new_id(i3);

    /* Scheduling: one task, the scheduler's assignee survives updates, a
     * delete cancels. */
    const char *fn = seeds[1].fn;
    expect(c, q, fn, &c1, "applied");
    char want[256];
    snprintf(want, sizeof(want), "urgent|Investigate incident %s|open|open", t);
    expect_value(c, want,
                 "SELECT concat_ws('|', priority, title, incident_status, status) FROM "
                 "public.investigation_tasks WHERE incident_id = '%s'",
                 t);
    ck_assert_int_eq(it_pg_exec(c,
                                "UPDATE public.investigation_tasks SET assignee = 'alice' WHERE "
                                "incident_id = '%s'",
                                t),
                     0);
    expect(c, q, fn, &u2, "applied");
    expect_value(c, "low|Fall on ward 3|triaged|open|alice",
                 "SELECT concat_ws('|', priority, title, incident_status, status, assignee) FROM "
                 "public.investigation_tasks WHERE incident_id = '%s'",
                 t);
    expect(c, q, fn, &d2, "applied");
    expect_value(c, "cancelled|alice|t",
                 "SELECT concat_ws('|', status, assignee, deleted) FROM "
                 "public.investigation_tasks WHERE incident_id = '%s'",
                 t);

    /* Case management: opened at the incident's time, notes survive,
     * closed at the delete's commit time. */
    fn = seeds[2].fn;
    q = "q.specific.casemgmt";
    expect(c, q, fn, &c1, "applied");
    expect_value(c, "open|open|2025-12-31 23:00:00+00|",
                 "SET TIME ZONE 'UTC'; SELECT concat_ws('|', state, incident_status, opened_at, "
                 "coalesce(closed_at::text, '')) FROM public.cases WHERE incident_id = '%s'",
                 t);
    ck_assert_int_eq(
        it_pg_exec(c, "UPDATE public.cases SET notes = 'called ward' WHERE incident_id = '%s'", t),
        0);
    expect(c, q, fn, &u2, "applied");
    expect(c, q, fn, &d2, "applied");
    expect_value(c, "closed|triaged|2026-01-01 00:00:21+00|called ward|t",
                 "SET TIME ZONE 'UTC'; SELECT concat_ws('|', state, incident_status, closed_at, "
                 "notes, deleted) FROM public.cases WHERE incident_id = '%s'",
                 t);

    /* Warehouse: a faithful copy of the row, the summary's NULL included. */
    fn = seeds[0].fn;
    q = "q.specific.warehouse";
    expect(c, q, fn, &c1, "applied");
    expect_value(c, "2025-12-31 23:00:00+00|open|<null>|<null>|2026-01-01 00:00:10+00",
                 "SET TIME ZONE 'UTC'; SELECT concat_ws('|', occurred_at, status, "
                 "coalesce(summary, '<null>'), coalesce(reported_by, '<null>'), updated_at) FROM "
                 "public.incident_facts WHERE incident_id = '%s'",
                 t);
    PQfinish(c);
}
END_TEST

/* Replaces the first occurrence of from in json by to (caller frees). */
static char *edit(const char *json, const char *from, const char *to)
{
    const char *p = strstr(json, from);
    ck_assert_msg(p != NULL, "no %s in %s", from, json);
    char *out = NULL;
    ck_assert_int_gt(asprintf(&out, "%.*s%s%s", (int)(p - json), json, to, p + strlen(from)), 0);
    return out;
}

START_TEST(test_seed_malformed)
{
    static const struct {
        const char *from, *to, *why;
    } cases[] = {
        {"\"severity\":3", "\"severity\":\"abc\"", "column severity"},
        {"\"region\":\"north\"", "\"region\":null", "region"},
        {"\"version\":1,\"updatedat\"", "\"version\":1.5,\"updatedat\"",
         "\"version\" must be a non-negative integer"},
        {"\"version\":1,\"updatedat\"", "\"version\":\"1\",\"updatedat\"",
         "\"version\" must be a non-negative integer"},
        {"\"updatedat\":\"2026-01-01T00:00:00.000000Z\"", "\"updatedat\":\"yesterday\"",
         "\"updatedat\" must be an RFC 3339 time"},
        {"\"origin\":\"hms-ehr\",\"data\"", "\"origin\":5,\"data\"", "\"origin\" must be a string"},
        {"IncidentCreated.v1\",\"subject", "IncidentMerged.v1\",\"subject", "unknown event type"},
        {"\"occurred_at\":\"2025-12-31T23:00:00.000000Z\"", "\"occurred_at\":\"2025-13-31\"",
         "out of range: \"2025-13-31\""},
        {"\"data\":{\"id\"", "\"data\":[],\"x\":{\"id\"", "\"data\" must be a JSON object"},
    };
    PGconn *c = connect_db(db_conninfo);
    for (size_t si = 0; si < 3; si++) {
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
            /* The scheduler keeps no occurred_at, so it does not read it. */
            if (si == 1 && strstr(cases[k].from, "occurred_at") != NULL)
                continue;
            char subj[37], id[40];
            new_uuid(subj);
            ev_t e = {"Created", new_id(id), subj, 1, 0, "hms-ehr", "north", 3, "open", NULL};
            char *json = ev_json(&e), *bad = edit(json, cases[k].from, cases[k].to);
            expect_error(c, "q.bad", seeds[si].fn, bad, cases[k].why);
            expect_value(c, "0", "SELECT count(*) FROM hms_sync.inbox WHERE id = '%s'", id);
            expect_value(c, "0", "SELECT count(*) FROM %s WHERE incident_id = '%s'",
                         seeds[si].table, subj);
            free(bad);
            free(json);
        }
        /* Subject and data.id must agree; a subject that is no uuid is refused. */
        char subj[37], id[40];
        new_uuid(subj);
        ev_t e = {"Created", new_id(id), subj, 1, 0, "hms-ehr", "north", 3, "open", NULL};
        char *json = ev_json(&e);
        char *bad = edit(json, "\"data\":{\"id\":\"", "\"data\":{\"id\":\"0");
        expect_error(c, "q.bad", seeds[si].fn, bad, "is not the subject");
        free(bad);
        e.subject = "not-a-uuid";
        char *bad2 = ev_json(&e);
        expect_error(c, "q.bad", seeds[si].fn, bad2, "column incident_id");
        free(bad2);
        free(json);
    }
    PQfinish(c);
}
END_TEST

/* The subscriber role can run every seed subscriber with its own grants. */
START_TEST(test_role_privileges)
{
    PGconn *c = connect_db(db_conninfo);
    ck_assert_int_eq(it_pg_exec(c, "SET ROLE hms_sync_subscriber"), 0);
    for (size_t si = 0; si < 3; si++) {
        char subj[37], id[40];
        new_uuid(subj);
        ev_t e = {"Created", new_id(id), subj, 1, 0, "hms-ehr", "north", 3, "open", NULL};
        expect(c, "q.role", seeds[si].fn, &e, "applied");
    }
    /* ...and nothing beyond: no deletes, no other tables. */
    PGresult *r = PQexec(c, "DELETE FROM hms_sync.inbox WHERE false");
    ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501");
    PQclear(r);
    r = PQexec(c, "CREATE TABLE public.subsql_nope (x int)");
    ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    PQfinish(c);
}
END_TEST

/* ---- SQL LWW against src/core/lww.c ---- */

static const char *origins[] = {"",   "a",         "A",           "Z",        "b",
                                "ab", "hms-ehr",   "hms_ehr",     "casemgmt", "\xc3\xa9" /* é */,
                                "e",  "e\xcc\x81", "\xe2\x82\xac" /* € */};

/* A contract-form time (microseconds) from a pool that makes ties common,
 * or anywhere in years 1..9999. */
static int64_t rand_micros(void)
{
    static const int64_t pool[] = {INT64_C(1767225600000000), INT64_C(1767225600000001),
                                   INT64_C(1767225599999999), 0, -1};
    if (rnd_below(4) != 0)
        return pool[rnd_below(5)];
    return -INT64_C(62135596800000000) + (int64_t)(rnd() % UINT64_C(315537897600000000));
}

static void format_micros(int64_t us, char out[96])
{
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int frac = (int)(us - secs * 1000000);
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 96, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

START_TEST(test_sql_matches_c)
{
    enum { N = 6000 };
    PGconn *c = connect_db(icu_conninfo);
    PGresult *r = PQprepare(
        c, "lww",
        "SELECT hms_sync.lww_outcome($1::bigint, $2::timestamptz, $3, $4::boolean, $5::bigint, "
        "$6::timestamptz, $7, $8::boolean), "
        "hms_sync.lww_compare($1::bigint, $2::timestamptz, $3, $5::bigint, $6::timestamptz, $7), "
        "(extract(epoch FROM $2::timestamptz) * 1000000)::bigint",
        8, NULL);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    static const int64_t versions[] = {0, 1, 2, 3, INT64_MAX, INT64_MAX - 1};
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        char ts_in[96], ts_cur[96], v_in[24], v_cur[24];
        int64_t us_in = rand_micros(), us_cur = rnd_below(3) == 0 ? us_in : rand_micros();
        format_micros(us_in, ts_in);
        format_micros(us_cur, ts_cur);
        hms_lww_key_t in = {versions[rnd_below(6)], 0, origins[rnd_below(13)]};
        hms_lww_key_t cur = {rnd_below(3) == 0 ? in.version : versions[rnd_below(6)], 0,
                             rnd_below(3) == 0 ? in.origin : origins[rnd_below(13)]};
        ck_assert_msg(hms_lww_parse_time(ts_in, &in.updatedat), "C rejects %s", ts_in);
        ck_assert_msg(hms_lww_parse_time(ts_cur, &cur.updatedat), "C rejects %s", ts_cur);
        bool del = rnd_below(3) == 0;
        hms_lww_state_t st = (hms_lww_state_t)rnd_below(3);
        snprintf(v_in, sizeof(v_in), "%" PRId64, in.version);
        snprintf(v_cur, sizeof(v_cur), "%" PRId64, cur.version);
        const char *p[8] = {v_in,
                            ts_in,
                            in.origin,
                            del ? "true" : "false",
                            st == HMS_LWW_NONE ? NULL : v_cur,
                            st == HMS_LWW_NONE ? NULL : ts_cur,
                            st == HMS_LWW_NONE ? NULL : cur.origin,
                            st == HMS_LWW_NONE        ? NULL
                            : st == HMS_LWW_TOMBSTONE ? "true"
                                                      : "false"};
        r = PQexecPrepared(c, "lww", 8, p, NULL, NULL, 0);
        ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
        hms_lww_outcome_t want = hms_lww_decide(&in, del, st, &cur);
        const char *sql_outcome = PQgetvalue(r, 0, 0);
        ck_assert_msg(strcmp(sql_outcome, hms_lww_outcome_name(want)) == 0,
                      "in (%s, %s, \"%s\", del=%d) over state %d (%s, %s, \"%s\"): SQL %s, C %s",
                      v_in, ts_in, in.origin, del, (int)st, v_cur, ts_cur, cur.origin, sql_outcome,
                      hms_lww_outcome_name(want));
        if (st != HMS_LWW_NONE)
            ck_assert_int_eq(atoi(PQgetvalue(r, 0, 1)), hms_lww_compare(&in, &cur));
        else
            ck_assert(PQgetisnull(r, 0, 1));
        ck_assert_msg(strtoll(PQgetvalue(r, 0, 2), NULL, 10) == in.updatedat,
                      "%s: SQL %s us, C %" PRId64, ts_in, PQgetvalue(r, 0, 2), in.updatedat);
        counts[want]++;
        PQclear(r);
    }
    ck_assert_int_gt(counts[HMS_LWW_APPLIED], N / 10);
    ck_assert_int_gt(counts[HMS_LWW_STALE], N / 10);
    ck_assert_int_gt(counts[HMS_LWW_DUPLICATE], N / 100);
    fprintf(stderr, "subsql: SQL = C on %d tuples (applied %d, stale %d, duplicate %d)%s\n", N,
            counts[0], counts[1], counts[2], icu_made ? " in an ICU en-US database" : "");
    PQfinish(c);
}
END_TEST

/* ---- races on one subject ---- */

/* Sends consume() on c without waiting. */
static void send_consume(PGconn *c, const char *fn, const ev_t *e)
{
    char *json = ev_json(e);
    const char *params[3] = {"q.race", fn, json};
    ck_assert_int_eq(PQsendQueryParams(c,
                                       "SELECT hms_sync.consume($1, $2::regprocedure, $3::jsonb)",
                                       3, NULL, params, NULL, NULL, 0),
                     1);
    free(json);
}

/* True while c's query is still running (it waits on a lock). */
static bool still_busy(PGconn *c, int ms)
{
    it_sleep_ms(ms);
    ck_assert_int_eq(PQconsumeInput(c), 1);
    return PQisBusy(c) == 1;
}

static void finish_consume(PGconn *c, const char *want)
{
    PGresult *r = PQgetResult(c);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    ck_assert_msg(strcmp(PQgetvalue(r, 0, 0), want) == 0, "got %s, want %s", PQgetvalue(r, 0, 0),
                  want);
    PQclear(r);
    ck_assert_ptr_null(PQgetResult(c));
}

/* A holds its event's transaction open; B's consume() of another event of
 * the same subject must wait, then decide against what A committed. */
static void race(const char *fn, const ev_t *first, const ev_t *second, const char *want_second,
                 bool commit_first)
{
    PGconn *a = connect_db(db_conninfo), *b = connect_db(db_conninfo);
    ck_assert_int_eq(it_pg_exec(a, "BEGIN"), 0);
    expect(a, "q.race", fn, first, "applied");
    send_consume(b, fn, second);
    ck_assert_msg(still_busy(b, 300), "second consume did not wait for the first");
    ck_assert_int_eq(it_pg_exec(a, commit_first ? "COMMIT" : "ROLLBACK"), 0);
    finish_consume(b, want_second);
    PQfinish(a);
    PQfinish(b);
}

START_TEST(test_race_pairs)
{
    const char *fn = seeds[0].fn;
    PGconn *c = connect_db(db_conninfo);
    char s[37], i1[40], i2[40], i3[40];

    /* No row yet, the newer event first: the older one, blocked on the
     * INSERT, finds the committed row and is stale. */
    new_uuid(s);
    ev_t hi = {"Updated", new_id(i1), s, 3, 30, "hms-ehr", "north", 2, "open", NULL};
    ev_t lo = {"Updated", new_id(i2), s, 2, 20, "hms-ehr", "south", 2, "open", NULL};
    race(fn, &hi, &lo, "stale", true);
    expect_row(c, &seeds[0], s, "3|f|north|2|hms-ehr");

    /* No row yet, the older event first: the newer one replaces it. */
    new_uuid(s);
    hi.subject = lo.subject = s;
    hi.id = new_id(i1);
    lo.id = new_id(i2);
    race(fn, &lo, &hi, "applied", true);
    expect_row(c, &seeds[0], s, "3|f|north|2|hms-ehr");

    /* An existing row: an update and its delete race; the delete, blocked
     * on the row lock, still wins the tie. */
    new_uuid(s);
    ev_t c1 = {"Created", new_id(i3), s, 1, 10, "hms-ehr", "north", 2, "open", NULL};
    expect(c, "q.race", fn, &c1, "applied");
    ev_t u2 = {"Updated", new_id(i1), s, 2, 20, "hms-ehr", "east", 2, "open", NULL};
    ev_t d2 = u2;
    d2.kind = "Deleted";
    d2.id = new_id(i2);
    race(fn, &u2, &d2, "applied", true);
    expect_row(c, &seeds[0], s, "2|t|east|2|hms-ehr");

    /* The same event delivered twice at once: the second waits on the
     * inbox row and is a duplicate; if the first rolls back, it applies. */
    new_uuid(s);
    ev_t e = {"Created", new_id(i1), s, 1, 10, "hms-ehr", "north", 2, "open", NULL};
    race(fn, &e, &e, "duplicate", true);
    new_uuid(s);
    e.subject = s;
    e.id = new_id(i2);
    race(fn, &e, &e, "applied", false);
    expect_value(c, "1", "SELECT count(*) FROM hms_sync.inbox WHERE id = '%s'", e.id);
    PQfinish(c);
}
END_TEST

typedef struct {
    const ev_t *evs;
    char **json;
    int n;
    int *order;
    char err[512];
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    PGconn *c = PQconnectdb(db_conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(w->err, sizeof(w->err), "connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    for (int i = 0; i < w->n && w->err[0] == '\0'; i++) {
        char *got =
            consume_text(c, "q.stress", seeds[0].fn, w->json[w->order[i]], w->err, sizeof(w->err));
        free(got);
    }
    PQfinish(c);
    return NULL;
}

/* Two sessions deliver the same events of a few subjects, each in its own
 * random order, at the same time; every replica row ends at its subject's
 * LWW maximum and every event is recorded once. */
START_TEST(test_race_stress)
{
    enum { SUBJECTS = 3, PER = 40, N = SUBJECTS * PER, ROUNDS = 4 };
    PGconn *c = connect_db(db_conninfo);
    for (int round = 0; round < ROUNDS; round++) {
        static char subj[SUBJECTS][37], ids[N][40];
        static ev_t evs[N];
        char *json[N];
        int order[2][N];
        for (int s = 0; s < SUBJECTS; s++)
            new_uuid(subj[s]);
        for (int i = 0; i < N; i++) {
            static const char *orgs[] = {"hms-ehr", "casemgmt"};
            static const char *regions[] = {"north", "south", "east", "west"};
            static const char *kinds[] = {"Created", "Updated", "Updated", "Deleted"};
            /* The region is a function of the tuple, as a real row's
             * content is, so equal tuples carry equal rows. */
            long long v = 1 + rnd_below(5);
            int tick = (int)rnd_below(3);
            int o = (int)rnd_below(2);
            evs[i] = (ev_t){kinds[rnd_below(4)],
                            new_id(ids[i]),
                            subj[i % SUBJECTS],
                            v,
                            tick,
                            orgs[o],
                            regions[(v + (long long)tick * 2 + o) % 4],
                            3,
                            "open",
                            NULL};
            json[i] = ev_json(&evs[i]);
            order[0][i] = order[1][i] = i;
        }
        for (int t = 0; t < 2; t++)
            for (int i = N - 1; i > 0; i--) {
                int j = (int)rnd_below((unsigned)i + 1), tmp = order[t][i];
                order[t][i] = order[t][j];
                order[t][j] = tmp;
            }
        worker_t w[2] = {{evs, json, N, order[0], ""}, {evs, json, N, order[1], ""}};
        pthread_t th[2];
        for (int t = 0; t < 2; t++)
            ck_assert_int_eq(pthread_create(&th[t], NULL, worker, &w[t]), 0);
        for (int t = 0; t < 2; t++)
            pthread_join(th[t], NULL);
        for (int t = 0; t < 2; t++)
            ck_assert_msg(w[t].err[0] == '\0', "worker %d: %s", t, w[t].err);

        for (int s = 0; s < SUBJECTS; s++) {
            const ev_t *max = NULL;
            bool max_del = false;
            for (int i = s; i < N; i += SUBJECTS) {
                hms_lww_key_t k = {evs[i].version, evs[i].tick, evs[i].origin};
                bool del = strcmp(evs[i].kind, "Deleted") == 0;
                if (max != NULL) {
                    hms_lww_key_t mk = {max->version, max->tick, max->origin};
                    int cmp = hms_lww_compare(&k, &mk);
                    if (cmp < 0 || (cmp == 0 && (!del || max_del)))
                        continue;
                }
                max = &evs[i];
                max_del = del;
            }
            char want[128];
            snprintf(want, sizeof(want), "%lld|%s|%s|3|%s", max->version, max_del ? "t" : "f",
                     max->region, max->origin);
            expect_row(c, &seeds[0], subj[s], want);
        }
        char *n = value(c,
                        "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = 'q.stress' "
                        "AND subject IN ('%s', '%s', '%s')",
                        subj[0], subj[1], subj[2]);
        char want_n[16];
        snprintf(want_n, sizeof(want_n), "%d", N);
        ck_assert_msg(n != NULL && strcmp(n, want_n) == 0, "inbox rows %s, want %d", n, N);
        free(n);
        for (int i = 0; i < N; i++)
            free(json[i]);
    }
    PQfinish(c);
}
END_TEST

/* ---- main ---- */

/* The program's setup: it_main has seen HMS_TEST_PG set. */
static int setup(void)
{
    const char *pg = getenv("HMS_TEST_PG");
    snprintf(admin_conninfo, sizeof(admin_conninfo), "%s", pg);
    snprintf(db_name, sizeof(db_name), "subsql_%d", (int)getpid());
    snprintf(icu_name, sizeof(icu_name), "subsql_icu_%d", (int)getpid());
    snprintf(mig_name, sizeof(mig_name), "subsql_mig_%d", (int)getpid());
    if (conninfo_for(pg, db_name, db_conninfo, sizeof(db_conninfo)) != 0 ||
        conninfo_for(pg, icu_name, icu_conninfo, sizeof(icu_conninfo)) != 0)
        return -1;
    PGconn *admin = it_pg_connect(pg);
    if (admin == NULL)
        return -1;
    PQclear(PQexec(admin, "SET client_min_messages = warning"));
    int rc = it_pg_exec(admin, "CREATE DATABASE %s", db_name);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "CREATE DATABASE %s TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
             "LOCALE 'C.UTF-8'",
             icu_name);
    PGresult *r = PQexec(admin, sql);
    icu_made = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!icu_made) {
        fprintf(stderr, "subsql: no ICU database (%s); cross-checking in %s\n",
                PQerrorMessage(admin), db_name);
        snprintf(icu_conninfo, sizeof(icu_conninfo), "%s", db_conninfo);
    }
    PQfinish(admin);
    if (rc != 0)
        return -1;

    /* The main database through the binary, the ICU one through the
     * library call the binary makes. */
    char *out = NULL;
    const char *argv[] = {"migrate", "--subscriber", "--pg", db_conninfo, NULL};
    rc = run_hms(argv, &out);
    if (rc != 0) {
        fprintf(stderr, "subsql: migrate --subscriber failed (%d): %s\n", rc, out);
        free(out);
        return -1;
    }
    free(out);
    if (icu_made) {
        PGconn *icu = NULL;
        hms_err_t err;
        if (hms_pg_open(icu_conninfo, "subsql", 10, &icu, &err) != HMS_OK ||
            hms_migrate_apply(icu, hms_sql_subscriber_migrations,
                              hms_sql_subscriber_migrations_count, "subscriber_migrations", NULL,
                              &err) != HMS_OK) {
            fprintf(stderr, "subsql: %s\n", err.msg);
            PQfinish(icu);
            return -1;
        }
        char *lt = it_pg_value(icu, "SELECT 'Z' < 'a'");
        if (lt == NULL || strcmp(lt, "f") != 0)
            fprintf(stderr, "subsql: note: the ICU database orders 'Z' < 'a' = %s\n", lt);
        free(lt);
        PQfinish(icu);
    }
    return 0;
}

static void teardown(void)
{
    PGconn *admin = PQconnectdb(admin_conninfo);
    if (PQstatus(admin) == CONNECTION_OK) {
        char sql[160];
        PQclear(PQexec(admin, "SET client_min_messages = warning"));
        const char *names[3] = {db_name, icu_name, mig_name};
        for (int i = 0; i < 3; i++) {
            snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", names[i]);
            PQclear(PQexec(admin, sql));
        }
    }
    PQfinish(admin);
}

/* ---- snapshot events ---- */

/* A snapshot event of e (its kind is ignored): type IncidentSnapshot.v1,
 * its own data schema and request id, and the commit LSN of the watermark it
 * was published at (caller frees). */
static char *snap_json(const ev_t *e, const char *lsn)
{
    ev_t s = *e;
    s.kind = "Snapshot";
    char *json = ev_json(&s), repl[96];
    snprintf(repl, sizeof(repl), "\"snapshot\":\"snap-t\",\"lsn\":\"%s\"", lsn);
    char *out = edit(json, "\"lsn\":\"0/16B3748\"", repl);
    free(json);
    return out;
}

static void expect_json(PGconn *c, const char *sub, const char *fn, const char *json,
                        const char *want)
{
    char err[1024] = "";
    char *got = consume_text(c, sub, fn, json, err, sizeof(err));
    ck_assert_msg(got != NULL, "%s: %s: %s", fn, err, json);
    ck_assert_msg(strcmp(got, want) == 0, "%s: got %s, want %s: %s", fn, got, want, json);
    free(got);
}

/* Every seed subscriber applies a snapshot event as an upsert under
 * last-write-wins: it creates a row, replaces an older version, is a
 * duplicate of the version it already holds, loses to a newer one, and
 * never brings back a deleted incident. */
START_TEST(test_seed_snapshots)
{
    const seed_t *s = &seeds[_i];
    PGconn *c = connect_db(db_conninfo);
    const char *q = "q.snapshot";
    char a[37], b[37], d[37], i1[40], i2[40], i3[40], i4[40], i5[40], i6[40], i7[40];
    new_uuid(a);
    ev_t row = {"Snapshot", new_id(i1), a, 5, 50, "hms-ehr", "north", 2, "open", "snap"};
    char *js = snap_json(&row, "0/20000000");
    expect_json(c, q, s->fn, js, "applied");
    free(js);
    expect_row(c, s, a, "5|f|north|2|hms-ehr");
    /* The same row from the change stream: a duplicate; a newer one wins. */
    ev_t same = row;
    same.kind = "Updated";
    same.id = new_id(i2);
    expect(c, q, s->fn, &same, "duplicate");
    ev_t newer = row;
    newer.kind = "Updated";
    newer.id = new_id(i3);
    newer.version = 6;
    newer.tick = 60;
    newer.region = "south";
    expect(c, q, s->fn, &newer, "applied");
    /* A snapshot that read the row before that update loses to it. */
    row.id = new_id(i4);
    js = snap_json(&row, "0/20000000");
    expect_json(c, q, s->fn, js, "stale");
    free(js);
    expect_row(c, s, a, "6|f|south|2|hms-ehr");
    /* A snapshot newer than what is held replaces it. */
    new_uuid(b);
    ev_t old = {"Created", new_id(i5), b, 1, 10, "hms-ehr", "east", 3, "open", NULL};
    expect(c, q, s->fn, &old, "applied");
    ev_t fresh = old;
    fresh.id = new_id(i6);
    fresh.version = 4;
    fresh.tick = 40;
    fresh.severity = 1;
    js = snap_json(&fresh, "0/20000000");
    expect_json(c, q, s->fn, js, "applied");
    free(js);
    expect_row(c, s, b, "4|f|east|1|hms-ehr");
    /* After a delete, a snapshot that read the row (its tuple is the
     * tombstone's, or older) cannot resurrect it. */
    new_uuid(d);
    ev_t del = {"Deleted", new_id(i7), d, 3, 30, "hms-ehr", "west", 4, "open", NULL};
    expect(c, q, s->fn, &del, "applied");
    for (int v = 3; v >= 2; v--) {
        char id[40];
        ev_t read = del;
        read.id = new_id(id);
        read.version = v;
        read.tick = 10 * v;
        js = snap_json(&read, "0/20000000");
        expect_json(c, q, s->fn, js, "stale");
        free(js);
    }
    expect_row(c, s, d, "3|t|west|4|hms-ehr");
    PQfinish(c);
}
END_TEST

/* Against a truncation watermark a snapshot event counts by its lsn, the
 * watermark's commit LSN: read after the truncation, it applies (over the
 * truncation's tombstone); read before it, it is stale.  On a table of its
 * own, shaped like the seeds, so the truncation touches no other test. */
START_TEST(test_snapshot_after_truncation)
{
    PGconn *c = connect_db(db_conninfo);
    ck_assert_int_eq(
        it_pg_exec(c,
                   "CREATE TABLE public.snapsql_facts (incident_id uuid PRIMARY KEY, region text, "
                   "version bigint NOT NULL, updated_at timestamptz NOT NULL, origin text NOT "
                   "NULL, deleted boolean NOT NULL DEFAULT false);"
                   "CREATE FUNCTION public.snapsql_apply(event jsonb) RETURNS text LANGUAGE "
                   "plpgsql AS $$ BEGIN RETURN coalesce(hms_sync.lww_truncation("
                   "'public.snapsql_facts', event, '{}'), hms_sync.lww_upsert("
                   "'public.snapsql_facts', 'incident_id', event, jsonb_build_object("
                   "'incident_id', event -> 'subject', 'region', "
                   "hms_sync.incident_data(event) -> 'region'))); END $$"),
        0);
    const char *fn = "public.snapsql_apply(jsonb)", *q = "q.snaptrunc";
    char a[37], b[37], i1[40], i2[40], i3[40], i4[40];
    new_uuid(a);
    new_uuid(b);
    ev_t ca = {"Created", new_id(i1), a, 7, 70, "hms-ehr", "north", 3, "open", NULL};
    ev_t cb = {"Created", new_id(i2), b, 8, 80, "hms-ehr", "south", 3, "open", NULL};
    expect(c, q, fn, &ca, "applied"); /* lsn 0/16B3748 */
    expect(c, q, fn, &cb, "applied");
    char *trunc = NULL;
    ck_assert_int_gt(
        asprintf(
            &trunc,
            "{\"specversion\":\"1.0\",\"id\":\"0000000003000000-0\",\"source\":\"%s\","
            "\"type\":\"gov.hms.ehr.IncidentsTruncated.v1\",\"subject\":\"public.incidents\","
            "\"time\":\"2026-01-01T05:00:00.000000Z\",\"datacontenttype\":\"application/json\","
            "\"dataschema\":\"https://hms.gov/schemas/ehr/IncidentsTruncated.v1.json\","
            "\"lsn\":\"0/3000000\",\"txid\":900,\"version\":0,"
            "\"updatedat\":\"2026-01-01T05:00:00.000000Z\",\"origin\":\"hms-ehr\",\"data\":{}}",
            SOURCE),
        0);
    expect_json(c, q, fn, trunc, "applied");
    free(trunc);
    expect_value(c, "0|t",
                 "SELECT concat_ws('|', version, deleted) FROM public.snapsql_facts "
                 "WHERE incident_id = '%s'",
                 a);
    /* Read after the truncation (a later watermark): the row is back. */
    ev_t sa = ca;
    sa.id = new_id(i3);
    char *js = snap_json(&sa, "0/3000010");
    expect_json(c, q, fn, js, "applied");
    free(js);
    expect_value(c, "7|f|north",
                 "SELECT concat_ws('|', version, deleted, region) FROM "
                 "public.snapsql_facts WHERE incident_id = '%s'",
                 a);
    /* Read before it, delivered late: stale, the tombstone stays. */
    ev_t sb = cb;
    sb.id = new_id(i4);
    js = snap_json(&sb, "0/2FFFFF0");
    expect_json(c, q, fn, js, "stale");
    free(js);
    expect_value(c, "0|t",
                 "SELECT concat_ws('|', version, deleted) FROM public.snapsql_facts "
                 "WHERE incident_id = '%s'",
                 b);
    PQfinish(c);
}
END_TEST

/* consume_batch: every event of the array in order, in one transaction; an
 * event whose apply fails is reported with its SQLSTATE and leaves nothing
 * behind (not even what its apply wrote before failing), while the others
 * commit once each; a repeat inside the batch is a duplicate; a transient
 * error fails the whole statement and keeps nothing. */
static char *batch_rows(PGconn *c, const char *json, char *err, size_t errlen)
{
    const char *params[1] = {json};
    PGresult *r = PQexecParams(
        c,
        "SELECT string_agg(coalesce(outcome, '-') || '/' || coalesce(sqlstate, '-'), ',') "
        "FROM hms_sync.consume_batch('q.batch', 'public.subsql_pick(jsonb)', $1::jsonb)",
        1, NULL, params, NULL, NULL, 0);
    char *out = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        out = strdup(PQgetvalue(r, 0, 0));
    else
        snprintf(err, errlen, "%s", PQresultErrorField(r, PG_DIAG_SQLSTATE));
    PQclear(r);
    return out;
}

START_TEST(test_consume_batch)
{
    PGconn *c = connect_db(db_conninfo);
    ck_assert_int_eq(
        it_pg_exec(c, "CREATE TABLE public.subsql_batch (n serial, id text);"
                      "CREATE FUNCTION public.subsql_pick(e jsonb) RETURNS text LANGUAGE plpgsql "
                      "AS $$ BEGIN INSERT INTO public.subsql_batch (id) VALUES (e->>'id'); "
                      "IF e->'data'->>'summary' = 'bad' THEN "
                      "RAISE EXCEPTION 'bad %%', e->>'id' USING ERRCODE = '22023'; END IF; "
                      "IF e->'data'->>'summary' = 'deadlock' THEN "
                      "RAISE EXCEPTION 'simulated' USING ERRCODE = '40P01'; END IF; "
                      "RETURN 'applied'; END $$"),
        0);
    const char *summary[] = {"ok", "bad", "ok", "bad", "ok"};
    char ids[5][40], subj[37];
    char *json = strdup("["), *next = NULL;
    for (int i = 0; i < 6; i++) {
        if (i < 5)
            new_id(ids[i]);
        new_uuid(subj);
        ev_t e = {"Created", ids[i % 5], subj, 1, i, "hms-ehr", "north", 3, "open", summary[i % 5]};
        char *ev = ev_json(&e);
        ck_assert_int_gt(asprintf(&next, "%s%s%s", json, i ? "," : "", ev), 0);
        free(json);
        free(ev);
        json = next;
    }
    ck_assert_int_gt(asprintf(&next, "%s]", json), 0);
    free(json);
    json = next;

    char err[64] = "";
    char *got = batch_rows(c, json, err, sizeof(err));
    ck_assert_msg(got != NULL, "consume_batch failed: %s", err);
    ck_assert_str_eq(got, "applied/-,-/22023,applied/-,-/22023,applied/-,duplicate/-");
    free(got);
    free(json);
    /* The good events' writes, once each and in order; none of the bad ones'. */
    expect_value(c, "3", "SELECT count(*) FROM public.subsql_batch");
    got = value(c, "SELECT string_agg(id, ',' ORDER BY n) FROM public.subsql_batch");
    char want[200];
    snprintf(want, sizeof(want), "%s,%s,%s", ids[0], ids[2], ids[4]);
    ck_assert_str_eq(got, want);
    free(got);
    expect_value(c, "3", "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = 'q.batch'");
    expect_value(c, "0",
                 "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = 'q.batch' "
                 "AND id IN ('%s', '%s')",
                 ids[1], ids[3]);

    /* A transient failure is the whole statement's. */
    char id6[40], id7[40];
    new_uuid(subj);
    ev_t a = {"Created", new_id(id6), subj, 1, 9, "hms-ehr", "north", 3, "open", "ok"};
    new_uuid(subj);
    ev_t b = {"Created", new_id(id7), subj, 1, 9, "hms-ehr", "north", 3, "open", "deadlock"};
    char *ja = ev_json(&a), *jb = ev_json(&b);
    ck_assert_int_gt(asprintf(&json, "[%s,%s]", ja, jb), 0);
    ck_assert_ptr_null(batch_rows(c, json, err, sizeof(err)));
    ck_assert_str_eq(err, "40P01");
    expect_value(c, "0", "SELECT count(*) FROM hms_sync.inbox WHERE id = '%s'", id6);
    free(ja);
    free(jb);
    free(json);

    /* Not an array: refused, naming what it got. */
    ck_assert_ptr_null(batch_rows(c, "{}", err, sizeof(err)));
    ck_assert_str_eq(err, "22023");
    expect_value(c, "0",
                 "SELECT count(*) FROM "
                 "hms_sync.consume_batch('q.batch', 'public.subsql_pick(jsonb)', '[]')");
    PQfinish(c);
}
END_TEST

static Suite *subscriber_sql_suite(void)
{
    Suite *s = suite_create("subscriber_sql");
    TCase *tc = tcase_create("subscriber_sql");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, reseed, NULL);
    tcase_add_test(tc, test_migrate_subscriber_twice);
    tcase_add_test(tc, test_consume_inbox);
    tcase_add_test(tc, test_consume_batch);
    tcase_add_loop_test(tc, test_seed_sequences, 0, 3);
    tcase_add_test(tc, test_seed_specifics);
    tcase_add_test(tc, test_seed_malformed);
    tcase_add_test(tc, test_role_privileges);
    tcase_add_test(tc, test_sql_matches_c);
    tcase_add_test(tc, test_race_pairs);
    tcase_add_test(tc, test_race_stress);
    tcase_add_loop_test(tc, test_seed_snapshots, 0, 3);
    tcase_add_test(tc, test_snapshot_after_truncation);
    suite_add_tcase(s, tc);
    return s;
}

IT_MAIN(.name = "subscriber_sql", .setup = setup, .teardown = teardown,
        .suite = subscriber_sql_suite)
