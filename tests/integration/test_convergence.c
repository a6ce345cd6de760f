/* test_convergence.c -- the subscribers' convergence property: two concurrent writers, the real
 * event stream, three replicas fed with duplicates and reordering, all ending equal to the source.
 *
 * Per trial: a source database (publisher migrations) gets an initial batch
 * of incidents, then two writers (origins hms-ehr and casemgmt) insert,
 * update and delete the same incidents concurrently, on their own
 * connections, in random transactions, retrying deadlocks.  They also insert
 * deleted incidents again under their old keys (restores), sometimes in the
 * transaction that deleted them, sometimes both writers at once, sometimes
 * naming a stale version that the trigger must override; a key may die and
 * come back several times.  They change keys (UPDATE ... SET id), to a new
 * key or to a deleted one, which the connector publishes as a Deleted of the
 * old key and a Created of the new one.  Rarely a writer truncates the table,
 * sometimes with inserts after it in the same transaction, after which the
 * old keys may come back too.  The changes are
 * read back from a logical slot (pgoutput, publication hms_sync_incidents)
 * and turned into events by the project's own decoder and encoder, exactly
 * as src/daemon/changes.c does: those are the bytes subscribers receive.  Each
 * of three replica databases (subscriber migrations) runs the three seed
 * subscribers, each subscriber fed its own delivery order: some events
 * delivered 2-4 times, incidents (and the table's truncations, a subject of
 * their own) interleaved at random, and in about a third of the orders the
 * events of one subject shuffled too.
 *
 * Asserted: event positions (commit LSN, ordinal) rise in stream order;
 * every incident's history is a valid life (Created only of a dead key,
 * Updated and Deleted only of a live one, a truncation kills every key) and
 * its events rise strictly in last-write-wins order, a re-insert above the
 * delete before it; every key change and every TRUNCATE the writers
 * committed is in the stream; every delivery's outcome is what an
 * independent model predicts (inbox duplicate; a truncation applies unless a
 * later one was applied, and tombstones every row last written before it; a
 * row event before the newest applied truncation is stale, else it applies
 * exactly when it is later in its incident's commit order than what the
 * replica holds); every replica table equals what the source's final rows
 * and the writers' DELETE ... RETURNING rows determine (a live incident,
 * restored ones included, is live with the source's row; a deleted one is a
 * tombstone with the deleted row; one whose last event precedes the last
 * truncation is absent or a tombstone carrying that truncation's tuple); the
 * replicas agree on every row that does not depend on delivery order; each
 * subscriber's inbox holds one row per distinct event.
 *
 * HMS_CONVERGENCE_TRIALS=N (default 30) sets the number of trials and
 * HMS_CONVERGENCE_SEED=S the first trial's seed (trial i uses S + i).  A
 * seed replays every random choice (operations, values, deliveries); the
 * interleaving of the two writers is the server's, so a failing trial also
 * writes its events and the failing delivery order to it-logs/.  Every
 * trial runs even after a failure, so a long run shows how often one
 * happens.  HMS_CONVERGENCE_TRUNCATIONS_IN_ORDER (set) delivers each
 * truncation before every event that follows it in the stream, as one queue
 * read in publish order does: it tells a failure that needs a late
 * truncation from any other.  Needs only HMS_TEST_PG. */
#include <assert.h>
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/event.h"
#include "common/pgconn.h"
#include "core/lww.h"
#include "core/pgoutput.h"
#include "daemon/migrations.h"
#include "it.h"

#define N_REPLICAS 3
#define N_SUBS 3
#define PUBLICATION "hms_sync_incidents"
#define BATCH 64 /* consume calls in flight on one pipelined connection */

/* The contract's time form, so replica and source values compare as text
 * with event times. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* clang-format off */
/* Source columns, in the order of the C_* indexes. */
#define SRC_COLS                                                                \
    "id::text, " TS("occurred_at") ", region, severity::text, status, "         \
    "summary, reported_by, version::text, " TS("updated_at") ", origin"
enum { C_ID, C_OCC, C_REGION, C_SEV, C_STATUS, C_SUMMARY, C_REPORTED, C_VERSION, C_UPDATED,
       C_ORIGIN, NSRC };

static const struct {
    const char *name;  /* the subscriber (queue) name in the inbox */
    const char *apply;
    const char *query; /* the replica table, ordered like the expected rows */
} subs[N_SUBS] = {
    {"warehouse", "hms_sync.apply_warehouse(jsonb)",
     "SELECT incident_id::text, " TS("occurred_at") ", region, severity::text, status, "
     "summary, reported_by, version::text, " TS("updated_at") ", origin, deleted::text "
     "FROM public.incident_facts ORDER BY incident_id"},
    {"scheduling", "hms_sync.apply_scheduling(jsonb)",
     "SELECT incident_id::text, region, severity::text, priority, title, incident_status, "
     "status, assignee, version::text, " TS("updated_at") ", origin, deleted::text "
     "FROM public.investigation_tasks ORDER BY incident_id"},
    {"casemgmt", "hms_sync.apply_casemgmt(jsonb)",
     "SELECT incident_id::text, region, severity::text, summary, reported_by, "
     "incident_status, state, " TS("opened_at") ", " TS("closed_at") ", notes, "
     "version::text, " TS("updated_at") ", origin, deleted::text "
     "FROM public.cases ORDER BY incident_id"},
};
/* clang-format on */
static const char *const sub_cols[N_SUBS][14] = {
    {"incident_id", "occurred_at", "region", "severity", "status", "summary", "reported_by",
     "version", "updated_at", "origin", "deleted"},
    {"incident_id", "region", "severity", "priority", "title", "incident_status", "status",
     "assignee", "version", "updated_at", "origin", "deleted"},
    {"incident_id", "region", "severity", "summary", "reported_by", "incident_status", "state",
     "opened_at", "closed_at", "notes", "version", "updated_at", "origin", "deleted"},
};
static const int sub_ncols[N_SUBS] = {11, 12, 14};

/* ---- random numbers: one generator per user, so a seed replays ---- */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t splitmix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15u;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return x ^ (x >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed, uint64_t stream)
{
    r->s = splitmix(seed ^ splitmix(stream));
    if (r->s == 0)
        r->s = 1;
}

static uint64_t rnd(rng_t *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static unsigned below(rng_t *r, unsigned n)
{
    return (unsigned)(rnd(r) % n);
}

/* ---- program state ---- */

static char admin_conninfo[IT_CONNINFO_MAX];
static char src_conninfo[IT_CONNINFO_MAX];
static char rep_conninfo[N_REPLICAS][IT_CONNINFO_MAX];
static char src_name[64], rep_name[N_REPLICAS][64], slot_name[64];
static char sysid[32];
static char logdir[600];

/* Totals over the run, printed at the end. */
static struct {
    int trials, writer_txs, retries, inserts, updates, deletes, reinserts;
    int truncations, trunc_inserts;     /* TRUNCATEs; of them, followed by inserts in their tx */
    int keychanges, keychange_restores; /* key changes; of them, onto a deleted key */
    long events, deliveries, dup_delivered, dup_skipped, stale_skipped, applied, lww_dup;
    long over_tombstone; /* re-inserts applied over a tombstone the replica held */
    long shuffled_orders, orders, incidents, tombstones;
    long trunc_events, trunc_applied, trunc_stale, trunc_rows; /* rows a truncation tombstoned */
    long keychange_applied, keychange_stale;                   /* deliveries of key-change events */
    long truncated_gone, truncated_held; /* truncated keys: absent, tombstoned at replicas */
} tot;

/* ---- setup and teardown ---- */

/* base with dbname replaced, values quoted as libpq wants. */
static int conninfo_for(const char *base, const char *dbname, char *out, size_t n)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &errmsg);
    if (opts == NULL) {
        fprintf(stderr, "convergence: HMS_TEST_PG is not a valid conninfo: %s\n",
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
        fprintf(stderr, "convergence: conninfo too long\n");
        return -1;
    }
    return 0;
}

static PGconn *connect_quiet(const char *conninfo)
{
    PGconn *c = it_pg_connect(conninfo);
    if (c != NULL)
        PQclear(PQexec(c, "SET client_min_messages = warning"));
    return c;
}

static int migrate(const char *conninfo, const hms_sql_file_t *files, size_t n, const char *ledger)
{
    PGconn *c = NULL;
    hms_err_t err;
    if (hms_pg_open(conninfo, "convergence", 10, &c, &err) != HMS_OK ||
        hms_migrate_apply(c, files, n, ledger, NULL, &err) != HMS_OK) {
        fprintf(stderr, "convergence: migrate %s: %s\n", ledger, err.msg);
        PQfinish(c);
        return -1;
    }
    PQfinish(c);
    return 0;
}

/* Drops the slots and databases an earlier run of this program left behind
 * when it was killed (their names carry the pid of a process that is gone). */
static void drop_leftovers(PGconn *admin)
{
    json_object *names = it_pg_column(
        admin, "SELECT 's' || slot_name FROM pg_replication_slots WHERE slot_name ~ "
               "'^converge_[0-9]+$' UNION ALL SELECT 'd' || datname FROM pg_database WHERE "
               "datname ~ '^converge_(src|rep[0-9])_[0-9]+$' ORDER BY 1 DESC");
    for (size_t i = 0; names != NULL && i < json_object_array_length(names); i++) {
        const char *n = json_object_get_string(json_object_array_get_idx(names, i));
        const char *us = n != NULL ? strrchr(n, '_') : NULL;
        long pid = us != NULL ? strtol(us + 1, NULL, 10) : 0;
        if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if (n[0] == 's')
            it_pg_drop_slot(admin, n + 1);
        else
            it_pg_exec(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", n + 1);
    }
    json_object_put(names);
}

/* The program's setup: it_main has seen HMS_TEST_PG set. */
static int setup(void)
{
    const char *pg = getenv("HMS_TEST_PG");
    snprintf(admin_conninfo, sizeof(admin_conninfo), "%s", pg);
    long pid = (long)getpid();
    snprintf(src_name, sizeof(src_name), "converge_src_%ld", pid);
    snprintf(slot_name, sizeof(slot_name), "converge_%ld", pid);
    if (conninfo_for(pg, src_name, src_conninfo, sizeof(src_conninfo)) != 0)
        return -1;
    for (int r = 0; r < N_REPLICAS; r++) {
        snprintf(rep_name[r], sizeof(rep_name[r]), "converge_rep%d_%ld", r, pid);
        if (conninfo_for(pg, rep_name[r], rep_conninfo[r], sizeof(rep_conninfo[r])) != 0)
            return -1;
    }
    snprintf(logdir, sizeof(logdir), "%s", HMS_BIN);
    char *slash = strrchr(logdir, '/');
    snprintf(slash ? slash : logdir, sizeof(logdir) - (size_t)(slash ? slash - logdir : 0), "%s",
             slash ? "/it-logs" : "it-logs");
    if (mkdir(logdir, 0755) != 0 && errno != EEXIST)
        snprintf(logdir, sizeof(logdir), "/tmp");

    PGconn *admin = connect_quiet(pg);
    if (admin == NULL)
        return -1;
    drop_leftovers(admin); /* slots first ('s' > 'd'): a database with a slot stays */
    int rc = it_pg_exec(admin, "CREATE DATABASE %s", src_name);
    for (int r = 0; r < N_REPLICAS && rc == 0; r++)
        rc = it_pg_exec(admin, "CREATE DATABASE %s", rep_name[r]);
    PQfinish(admin);
    if (rc != 0)
        return -1;
    if (migrate(src_conninfo, hms_sql_migrations, hms_sql_migrations_count, HMS_MIGRATE_LEDGER))
        return -1;
    for (int r = 0; r < N_REPLICAS; r++)
        if (migrate(rep_conninfo[r], hms_sql_subscriber_migrations,
                    hms_sql_subscriber_migrations_count, "subscriber_migrations"))
            return -1;

    PGconn *src = connect_quiet(src_conninfo);
    if (src == NULL)
        return -1;
    char *id = it_pg_value(src, "SELECT system_identifier::text FROM pg_control_system()");
    rc = id != NULL ? it_pg_exec(src, "SELECT pg_create_logical_replication_slot('%s', 'pgoutput')",
                                 slot_name)
                    : -1;
    snprintf(sysid, sizeof(sysid), "%s", id ? id : "");
    free(id);
    PQfinish(src);
    return rc;
}

static void teardown(void)
{
    PGconn *admin = connect_quiet(admin_conninfo);
    if (admin == NULL)
        return;
    if (slot_name[0] != '\0')
        it_pg_drop_slot(admin, slot_name); /* a database with a slot cannot be dropped */
    if (src_name[0] != '\0')
        it_pg_exec(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", src_name);
    for (int r = 0; r < N_REPLICAS; r++)
        if (rep_name[r][0] != '\0')
            it_pg_exec(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", rep_name[r]);
    PQfinish(admin);
}

/* ---- rows ---- */

typedef struct {
    char *f[NSRC]; /* text values, NULL for SQL NULL */
} srow_t;

static void srow_free(srow_t *r)
{
    for (int i = 0; i < NSRC; i++)
        free(r->f[i]);
    memset(r, 0, sizeof *r);
}

static void srow_from(srow_t *out, PGresult *res, int row)
{
    for (int i = 0; i < NSRC; i++)
        out->f[i] = PQgetisnull(res, row, i) ? NULL : strdup(PQgetvalue(res, row, i));
}

/* ---- the shared pool of incidents the writers work on ---- */

typedef struct {
    char id[37];
    bool deleted;
    bool truncated; /* deleted by a TRUNCATE: no row to show for it */
    srow_t tomb;    /* the row as DELETE ... RETURNING gave it */
} inc_t;

typedef struct {
    pthread_mutex_t mu;
    inc_t *v;
    size_t n, cap;
} pool_t;

static void pool_add(pool_t *p, const char *id)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
        assert(p->v != NULL);
    }
    memset(&p->v[p->n], 0, sizeof p->v[p->n]);
    snprintf(p->v[p->n].id, sizeof p->v[p->n].id, "%s", id);
    p->n++;
}

static inc_t *pool_find(pool_t *p, const char *id)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].id, id) == 0)
            return &p->v[i];
    return NULL;
}

static void pool_free(pool_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        srow_free(&p->v[i].tomb);
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* ---- the writers ---- */

typedef struct {
    pool_t *pool;
    const char *origin; /* declared with SET hms_sync.origin, or NULL */
    uint64_t seed;
    int stream;
    int ntx;
    /* results */
    int commits, retries, inserts, updates, deletes, reinserts;
    int truncations, trunc_inserts, keychanges, keychange_restores;
    char err[600];
} writer_t;

static const char *const regions[] = {"north", "south", "east", "west", "ward.3*#"};
static const char *const statuses[] = {"open", "investigating", "escalated", "resolved"};
static const char *const summaries[] = {"Fall on ward 3",
                                        "Medication error",
                                        "",
                                        "Wrong patient \"ID\" band",
                                        "Near miss: O'Brien",
                                        "Équipement défaillant",
                                        "Line\nbreak\tand tab",
                                        "Needle-stick injury"};

/* A text value or NULL (about one in five). */
static const char *maybe(rng_t *r, const char *const *v, size_t n)
{
    return below(r, 5) == 0 ? NULL : v[below(r, (unsigned)n)];
}

/* What one writer transaction did, filed in the pool only once it commits,
 * in the order it did it (a key may be deleted and inserted again in one
 * transaction).  A key change files a W_DELETE of the old key and a
 * W_INSERT or W_REINSERT of the new one; a TRUNCATE, W_TRUNCATE. */
typedef enum { W_INSERT, W_REINSERT, W_DELETE, W_TRUNCATE } wkind_t;

#define WLOG 10

typedef struct {
    char ids[WLOG][37]; /* inserted (or inserted again) in this transaction */
    int nids;
    struct {
        wkind_t kind;
        char id[37];
        srow_t row; /* W_DELETE: the row DELETE ... RETURNING gave */
    } log[WLOG];
    int nlog;
    int nins, nreins, ndels;
    int nupd;            /* UPDATE statements, whether they matched a row or not */
    int nkey, nkeyreins; /* key changes; of them, onto a deleted key */
    bool truncated;      /* this transaction truncated the table */
    bool inserts_after;  /* ... and inserted after it */
} wtx_t;

static void wtx_clear(wtx_t *t)
{
    for (int i = 0; i < t->nlog; i++)
        srow_free(&t->log[i].row);
    memset(t, 0, sizeof *t);
}

/* counted false: half of a key change, counted as that instead. */
static void wtx_log(wtx_t *t, wkind_t kind, const char *id, PGresult *row, bool counted)
{
    assert(t->nlog < WLOG);
    t->log[t->nlog].kind = kind;
    snprintf(t->log[t->nlog].id, 37, "%s", id);
    if (row != NULL)
        srow_from(&t->log[t->nlog].row, row, 0);
    t->nlog++;
    if ((kind == W_INSERT || kind == W_REINSERT) && t->nids < WLOG)
        snprintf(t->ids[t->nids++], 37, "%s", id);
    t->inserts_after |= t->truncated && (kind == W_INSERT || kind == W_REINSERT);
    if (!counted)
        return;
    t->nins += kind == W_INSERT;
    t->nreins += kind == W_REINSERT;
    t->ndels += kind == W_DELETE;
}

/* A key to insert again: one deleted by a committed transaction or by this
 * one, and the version its delete carried.  It may meanwhile be live again
 * (the other writer, or this transaction, restored it): the insert then does
 * nothing. */
static bool pick_deleted(writer_t *w, rng_t *r, const wtx_t *t, char out[37], char ver[24])
{
    int mine = 0;
    for (int i = 0; i < t->nlog; i++)
        mine += t->log[i].kind == W_DELETE;
    pthread_mutex_lock(&w->pool->mu);
    int dead = 0;
    for (size_t i = 0; i < w->pool->n; i++)
        dead += w->pool->v[i].deleted;
    int k = dead + mine > 0 ? (int)below(r, (unsigned)(dead + mine)) : -1;
    for (size_t i = 0; k >= 0 && k < dead && i < w->pool->n; i++)
        if (w->pool->v[i].deleted && k-- == 0) {
            /* A truncated key left no row: a restore then names version 1,
             * as an insert from an old export would. */
            const char *v = w->pool->v[i].tomb.f[C_VERSION];
            snprintf(out, 37, "%s", w->pool->v[i].id);
            snprintf(ver, 24, "%s", v != NULL ? v : "1");
        }
    pthread_mutex_unlock(&w->pool->mu);
    if (k >= dead) {
        k -= dead;
        for (int i = 0; i < t->nlog; i++)
            if (t->log[i].kind == W_DELETE && k-- == 0) {
                snprintf(out, 37, "%s", t->log[i].id);
                snprintf(ver, 24, "%s", t->log[i].row.f[C_VERSION]);
            }
    }
    return dead + mine > 0;
}

/* Picks a target: often one this transaction inserted, else any incident
 * ever made (a deleted one just matches no row). */
static bool pick(writer_t *w, rng_t *r, const wtx_t *t, char out[37])
{
    if (t->nids > 0 && below(r, 4) == 0) {
        snprintf(out, 37, "%s", t->ids[below(r, (unsigned)t->nids)]);
        return true;
    }
    pthread_mutex_lock(&w->pool->mu);
    bool ok = w->pool->n > 0;
    if (ok)
        snprintf(out, 37, "%s", w->pool->v[below(r, (unsigned)w->pool->n)].id);
    pthread_mutex_unlock(&w->pool->mu);
    return ok;
}

/* A key change of target (when it is live): to a new key, or now and then
 * to a deleted key, which restores that key with target's row.  The old row
 * is read under the row lock first: the UPDATE's own RETURNING shows only
 * the new one, and the old key's tombstone is the old row.  A deleted key
 * may meanwhile be live again (the other writer restored it): the unique
 * violation is then undone by a savepoint and the change does nothing. */
static PGresult *key_change(writer_t *w, rng_t *r, wtx_t *t, PGconn *c, const char *target)
{
    char onto[37], ver[24];
    bool restore =
        below(r, 4) == 0 && pick_deleted(w, r, t, onto, ver) && strcmp(onto, target) != 0;
    PGresult *res;
    if (restore) {
        res = PQexec(c, "SAVEPOINT key_change");
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            return res;
        PQclear(res);
    }
    const char *p[2] = {target, restore ? onto : NULL};
    PGresult *old =
        PQexecParams(c, "SELECT " SRC_COLS " FROM public.incidents WHERE id = $1::uuid FOR UPDATE",
                     1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(old) != PGRES_TUPLES_OK || PQntuples(old) != 1)
        return old;
    res = PQexecParams(c,
                       "UPDATE public.incidents SET id = coalesce($2::uuid, gen_random_uuid()) "
                       "WHERE id = $1::uuid RETURNING id::text",
                       2, NULL, p, NULL, NULL, 0);
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        wtx_log(t, W_DELETE, target, old, false);
        wtx_log(t, restore ? W_REINSERT : W_INSERT, PQgetvalue(res, 0, 0), NULL, false);
        t->nkey++;
        t->nkeyreins += restore;
    } else if (restore && st != NULL && strcmp(st, "23505") == 0) {
        PQclear(res);
        res = PQexec(c, "ROLLBACK TO SAVEPOINT key_change");
    }
    PQclear(old);
    return res;
}

/* TRUNCATE in the writer's open transaction: it waits for the other
 * writer's open transaction, and deadlocks with it now and then. */
static PGresult *truncate_all(wtx_t *t, PGconn *c)
{
    PGresult *res = PQexec(c, "TRUNCATE public.incidents");
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        wtx_log(t, W_TRUNCATE, "", NULL, true);
        t->truncated = true;
    }
    return res;
}

/* One random change in the writer's open transaction: an insert, a
 * restore, an update of some columns (or none), a key change or a delete,
 * of any incident; insert true: an insert whenever there is room.  Returns
 * the statement's result (caller clears) for the retry decision. */
static PGresult *op(writer_t *w, rng_t *r, wtx_t *t, PGconn *c, bool insert)
{
    char target[37], sev[4], ver[24];
    unsigned kind = insert ? 0 : below(r, 100);
    if (kind >= 12 && kind < 22 && t->nlog < WLOG && pick_deleted(w, r, t, target, ver)) {
        /* A restore: the old key, new values, and half the time the version
         * the deleted row had, as a restore from an export would bring: the
         * trigger must replace it, or the insert ties with its tombstone. */
        snprintf(sev, sizeof sev, "%u", 1 + below(r, 5));
        const char *p[6] = {
            target, regions[below(r, 5)], sev, statuses[below(r, 4)], maybe(r, summaries, 8), ver};
        bool named = below(r, 2) == 0;
        PGresult *res = PQexecParams(
            c,
            named ? "INSERT INTO public.incidents (id, region, severity, status, summary, "
                    "version) VALUES ($1::uuid, $2, $3::smallint, $4, $5, $6::bigint) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id::text"
                  : "INSERT INTO public.incidents (id, region, severity, status, summary) "
                    "VALUES ($1::uuid, $2, $3::smallint, $4, $5) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id::text",
            named ? 6 : 5, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            wtx_log(t, W_REINSERT, target, NULL, true);
        return res;
    }
    bool have = (kind >= 12) && pick(w, r, t, target);
    if (!have && t->nids < WLOG && t->nlog < WLOG) {
        snprintf(sev, sizeof sev, "%u", 1 + below(r, 5));
        const char *p[6] = {regions[below(r, 5)],  sev,
                            statuses[below(r, 4)], maybe(r, summaries, 8),
                            maybe(r, regions, 5),  w->origin};
        /* casemgmt names its origin on insert only sometimes: the column
         * default then says hms-ehr, as the trigger's comment describes. */
        bool named = w->origin != NULL && below(r, 2) == 0;
        PGresult *res = PQexecParams(
            c,
            named ? "INSERT INTO public.incidents (region, severity, status, summary, reported_by, "
                    "origin) VALUES ($1, $2::smallint, $3, $4, $5, $6) RETURNING id::text"
                  : "INSERT INTO public.incidents (region, severity, status, summary, reported_by) "
                    "VALUES ($1, $2::smallint, $3, $4, $5) RETURNING id::text",
            named ? 6 : 5, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
            wtx_log(t, W_INSERT, PQgetvalue(res, 0, 0), NULL, true);
        return res;
    }
    if (!have)
        return PQexec(c, "SELECT 1");
    if (kind >= 80 && kind < 88 && t->nlog + 2 <= WLOG && t->nids < WLOG)
        return key_change(w, r, t, c, target);
    if (kind < 88 || t->nlog == WLOG) {
        /* An update of some columns, sometimes of none: version still moves. */
        snprintf(sev, sizeof sev, "%u", 1 + below(r, 5));
        bool set_sum = below(r, 3) == 0, set_rep = below(r, 4) == 0;
        const char *p[7] = {target,
                            below(r, 2) ? statuses[below(r, 4)] : NULL,
                            below(r, 3) == 0 ? sev : NULL,
                            set_sum ? "t" : "f",
                            set_sum ? maybe(r, summaries, 8) : NULL,
                            set_rep ? "t" : "f",
                            set_rep ? maybe(r, regions, 5) : NULL};
        PGresult *res =
            PQexecParams(c,
                         "UPDATE public.incidents SET status = coalesce($2, status), "
                         "severity = coalesce($3::smallint, severity), "
                         "summary = CASE WHEN $4::bool THEN $5 ELSE summary END, "
                         "reported_by = CASE WHEN $6::bool THEN $7 ELSE reported_by END "
                         "WHERE id = $1::uuid",
                         7, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_COMMAND_OK)
            t->nupd++;
        return res;
    }
    const char *p[1] = {target};
    PGresult *res =
        PQexecParams(c, "DELETE FROM public.incidents WHERE id = $1::uuid RETURNING " SRC_COLS, 1,
                     NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        wtx_log(t, W_DELETE, target, res, true);
    return res;
}

static bool retryable(PGresult *res)
{
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return st != NULL && (strcmp(st, "40P01") == 0 || strcmp(st, "40001") == 0);
}

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    rng_t r;
    rng_seed(&r, w->seed, (uint64_t)w->stream);
    wtx_t t;
    memset(&t, 0, sizeof t);
    PGconn *c = connect_quiet(src_conninfo);
    if (c == NULL) {
        snprintf(w->err, sizeof w->err, "writer %s: cannot connect", w->origin);
        return NULL;
    }
    /* Deadlocks are part of the test; detect them fast.  Commits wait for
     * their WAL flush: logical decoding reads only flushed WAL, and the test
     * cluster runs with synchronous_commit = off. */
    PGresult *res = PQexec(c, "SET deadlock_timeout = '20ms'; SET synchronous_commit = on");
    PQclear(res);
    if (w->origin != NULL) {
        char sql[128];
        snprintf(sql, sizeof sql, "SET hms_sync.origin = '%s'", w->origin);
        PQclear(PQexec(c, sql));
    }
    for (int i = 0; i < w->ntx && w->err[0] == '\0';) {
        PQclear(PQexec(c, "BEGIN"));
        int nops = 1 + (int)below(&r, below(&r, 4) == 0 ? 8 : 4);
        /* A TRUNCATE is rare (one trial in three has none), somewhere in the
         * transaction; half the time only inserts follow it. */
        int trunc_at = below(&r, 70) == 0 ? (int)below(&r, (unsigned)nops) : -1;
        bool insert_after = below(&r, 2) == 0;
        bool failed = false;
        for (int k = 0; k < nops && !failed; k++) {
            if (k == trunc_at && t.nlog < WLOG)
                res = truncate_all(&t, c);
            else
                res = op(w, &r, &t, c, t.truncated && insert_after);
            ExecStatusType st = PQresultStatus(res);
            if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
                failed = true;
                if (!retryable(res))
                    snprintf(w->err, sizeof w->err, "writer %s: %s", w->origin,
                             PQresultErrorMessage(res));
            }
            PQclear(res);
            if (below(&r, 3) == 0)
                usleep(below(&r, 300)); /* let the other writer take locks in between */
        }
        /* Commit and file under the pool's lock, so the pool sees the two
         * writers' transactions in commit order: a key's deletes and
         * re-inserts must alternate there as they did in the database. */
        pthread_mutex_lock(&w->pool->mu);
        res = PQexec(c, failed ? "ROLLBACK" : "COMMIT");
        if (!failed && PQresultStatus(res) != PGRES_COMMAND_OK) {
            failed = true;
            if (!retryable(res))
                snprintf(w->err, sizeof w->err, "writer %s: COMMIT: %s", w->origin,
                         PQresultErrorMessage(res));
        }
        PQclear(res);
        if (failed) {
            pthread_mutex_unlock(&w->pool->mu);
            w->retries++;
            wtx_clear(&t);
            continue; /* a new transaction with new choices */
        }
        for (int k = 0; k < t.nlog && w->err[0] == '\0'; k++) {
            if (t.log[k].kind == W_INSERT) {
                pool_add(w->pool, t.log[k].id);
                continue;
            }
            if (t.log[k].kind == W_TRUNCATE) {
                for (size_t p = 0; p < w->pool->n; p++) {
                    inc_t *inc = &w->pool->v[p];
                    if (!inc->deleted) {
                        inc->deleted = inc->truncated = true;
                        srow_free(&inc->tomb);
                    }
                }
                continue;
            }
            inc_t *inc = pool_find(w->pool, t.log[k].id);
            bool del = t.log[k].kind == W_DELETE;
            if (inc == NULL || inc->deleted == del) {
                snprintf(w->err, sizeof w->err, "writer %s: incident %s %s twice", w->origin,
                         t.log[k].id, del ? "deleted" : "restored");
                break;
            }
            inc->deleted = del;
            inc->truncated = false;
            srow_free(&inc->tomb);
            if (del) {
                inc->tomb = t.log[k].row;
                memset(&t.log[k].row, 0, sizeof t.log[k].row);
            }
        }
        pthread_mutex_unlock(&w->pool->mu);
        w->commits++;
        w->inserts += t.nins;
        w->reinserts += t.nreins;
        w->updates += t.nupd;
        w->deletes += t.ndels;
        w->keychanges += t.nkey;
        w->keychange_restores += t.nkeyreins;
        w->truncations += t.truncated;
        w->trunc_inserts += t.inserts_after;
        wtx_clear(&t);
        i++;
    }
    wtx_clear(&t);
    PQfinish(c);
    return NULL;
}

/* ---- the event stream ---- */

typedef struct {
    char *body;
    char id[40];
    char subject[40];
    char type[64];
    char time[40];
    char updatedat[40];
    char origin[64];
    int64_t version;
    bool is_delete;
    bool is_trunc; /* a truncation of the table: its subject is the table */
    bool keychg;   /* one of the two events of a key change */
    uint64_t lsn;  /* commit LSN, from its id */
    uint32_t ord;  /* ordinal, from its id */
    int subj;      /* index of its subject */
    int rank;      /* position among its subject's events, in commit order */
} event_t;

typedef struct {
    char id[40];
    int *ev; /* indexes of its events, in commit order */
    int n, cap;
    bool table; /* the table's own subject, whose events are truncations */
} subject_t;

typedef struct {
    event_t *ev;
    int nev, cap;
    subject_t *sub;
    int nsub, subcap;
    int last_trunc;      /* index of the last truncation event, -1 without one */
    int ntrunc, nkeychg; /* truncation events; key changes (event pairs) */
} stream_t;

static void stream_free(stream_t *s)
{
    for (int i = 0; i < s->nev; i++)
        free(s->ev[i].body);
    for (int i = 0; i < s->nsub; i++)
        free(s->sub[i].ev);
    free(s->ev);
    free(s->sub);
    memset(s, 0, sizeof *s);
}

static int subject_index(stream_t *s, const char *id)
{
    for (int i = 0; i < s->nsub; i++)
        if (strcmp(s->sub[i].id, id) == 0)
            return i;
    if (s->nsub == s->subcap) {
        s->subcap = s->subcap ? s->subcap * 2 : 64;
        s->sub = realloc(s->sub, (size_t)s->subcap * sizeof *s->sub);
        assert(s->sub != NULL);
    }
    memset(&s->sub[s->nsub], 0, sizeof s->sub[s->nsub]);
    snprintf(s->sub[s->nsub].id, sizeof s->sub[s->nsub].id, "%s", id);
    return s->nsub++;
}

static void copy_str(char *out, size_t n, json_object *o, const char *key)
{
    const char *v = it_json_str(o, key);
    snprintf(out, n, "%s", v ? v : "");
}

/* Files one encoded event: its envelope fields and its place in its
 * subject's history. */
static int stream_add(stream_t *s, const hms_event_t *ev, bool keychg, char *why, size_t whylen)
{
    json_object *o = json_tokener_parse(ev->body.data);
    if (o == NULL) {
        snprintf(why, whylen, "event %s is not JSON", ev->id);
        return -1;
    }
    if (s->nev == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->ev = realloc(s->ev, (size_t)s->cap * sizeof *s->ev);
        assert(s->ev != NULL);
    }
    event_t *e = &s->ev[s->nev];
    memset(e, 0, sizeof *e);
    e->body = strdup(ev->body.data);
    snprintf(e->id, sizeof e->id, "%s", ev->id);
    copy_str(e->subject, sizeof e->subject, o, "subject");
    copy_str(e->type, sizeof e->type, o, "type");
    copy_str(e->time, sizeof e->time, o, "time");
    copy_str(e->updatedat, sizeof e->updatedat, o, "updatedat");
    copy_str(e->origin, sizeof e->origin, o, "origin");
    e->version = json_object_get_int64(it_json_get(o, "version"));
    e->is_delete = strstr(e->type, "Deleted") != NULL;
    e->is_trunc = strstr(e->type, "Truncated") != NULL;
    e->keychg = keychg;
    json_object_put(o);
    char *dash = NULL;
    e->lsn = strtoull(e->id, &dash, 16);
    if (dash == NULL || *dash != '-') {
        snprintf(why, whylen, "event id %s is not <commit LSN>-<ordinal>", e->id);
        return -1;
    }
    e->ord = (uint32_t)strtoul(dash + 1, NULL, 10);

    e->subj = subject_index(s, e->subject);
    subject_t *sj = &s->sub[e->subj];
    sj->table = e->is_trunc;
    if (e->is_trunc) {
        s->last_trunc = s->nev;
        s->ntrunc++;
    }
    if (sj->n == sj->cap) {
        sj->cap = sj->cap ? sj->cap * 2 : 8;
        sj->ev = realloc(sj->ev, (size_t)sj->cap * sizeof *sj->ev);
        assert(sj->ev != NULL);
    }
    e->rank = sj->n;
    sj->ev[sj->n++] = s->nev;
    s->nev++;
    return 0;
}

/* Reads the slot's changes since the last call and encodes them as the
 * connector would.  keep false: only drain.  Returns 0 or -1 with why. */
static int read_slot(PGconn *c, stream_t *s, bool keep, char *why, size_t whylen)
{
    const char *p[1] = {slot_name};
    PGresult *res =
        PQexecParams(c,
                     "SELECT data FROM pg_logical_slot_get_binary_changes($1, NULL, "
                     "NULL, 'proto_version', '1', 'publication_names', '" PUBLICATION "', "
                     "'messages', 'true')",
                     1, NULL, p, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "reading slot %s: %s", slot_name, PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    int rc = 0;
    if (!keep) {
        PQclear(res);
        return 0;
    }
    hms_pgo_decoder_t *dec = hms_pgo_decoder_new();
    hms_encoder_t *enc = hms_encoder_new(sysid, src_name, &hms_capture_incidents, 1);
    hms_event_t ev;
    memset(&ev, 0, sizeof ev);
    hms_txctx_t tx;
    memset(&tx, 0, sizeof tx);
    uint64_t trunc_version = 0;
    hms_err_t err;
    assert(dec != NULL && enc != NULL);
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        hms_pgo_msg_t m;
        const uint8_t *buf = (const uint8_t *)PQgetvalue(res, i, 0);
        size_t len = (size_t)PQgetlength(res, i, 0);
        if (hms_pgo_decode(dec, buf, len, &m, &err) != HMS_OK) {
            snprintf(why, whylen, "decoding message %d: %s", i, err.msg);
            rc = -1;
            break;
        }
        switch (m.kind) {
        case HMS_PGO_BEGIN:
            tx.commit_lsn = m.u.begin.final_lsn;
            tx.xid = m.u.begin.xid;
            tx.commit_time = m.u.begin.commit_time;
            tx.ordinal = 0;
            trunc_version = 0;
            break;
        case HMS_PGO_MESSAGE:
            /* As changes.c: the version a TRUNCATE drew comes just before
             * it, from sql/009_truncate_version.sql's trigger. */
            if (strcmp(m.u.message.prefix, "hms_sync.truncate") == 0) {
                char num[32];
                snprintf(num, sizeof num, "%.*s", (int)m.u.message.len, m.u.message.content);
                trunc_version = strtoull(num, NULL, 10);
            }
            break;
        case HMS_PGO_INSERT:
        case HMS_PGO_UPDATE:
        case HMS_PGO_DELETE: {
            /* As changes.c: every change the publication sends counts, and a
             * key change is two events with consecutive ordinals. */
            hms_txctx_t this_tx = tx;
            tx.ordinal++;
            if (hms_encoder_capture(enc, m.u.change.rel) == NULL)
                break;
            unsigned nparts = 1;
            for (unsigned part = 0; part < nparts && rc == 0; part++) {
                this_tx.ordinal = tx.ordinal - 1 + part;
                if (hms_encoder_encode_part(enc, &this_tx, &m, part, &ev, &nparts, &err) !=
                    HMS_OK) {
                    snprintf(why, whylen, "encoding message %d: %s", i, err.msg);
                    rc = -1;
                    break;
                }
                rc = stream_add(s, &ev, nparts == 2, why, whylen);
            }
            tx.ordinal += nparts - 1;
            s->nkeychg += nparts == 2;
            break;
        }
        case HMS_PGO_TRUNCATE: {
            /* As changes.c: one ordinal for the message, one event per
             * captured table in it. */
            hms_txctx_t this_tx = tx;
            tx.ordinal++;
            for (uint32_t k = 0; k < m.u.truncate.nrels && rc == 0; k++) {
                const hms_pgo_relation_t *rel = hms_pgo_relation(dec, m.u.truncate.relids[k]);
                if (rel == NULL) {
                    snprintf(why, whylen, "truncation %d: relation %u never described", i,
                             m.u.truncate.relids[k]);
                    rc = -1;
                    break;
                }
                if (hms_encoder_capture(enc, rel) == NULL)
                    continue;
                if (hms_encoder_encode_truncate(enc, &this_tx, rel, trunc_version, &ev, &err) !=
                    HMS_OK) {
                    snprintf(why, whylen, "encoding truncation %d: %s", i, err.msg);
                    rc = -1;
                    break;
                }
                rc = stream_add(s, &ev, false, why, whylen);
            }
            break;
        }
        default: break;
        }
    }
    hms_event_free(&ev);
    hms_encoder_free(enc);
    hms_pgo_decoder_free(dec);
    PQclear(res);
    return rc;
}

/* What the source guarantees about the stream, checked before any
 * delivery: unique ids; positions (commit LSN, ordinal) rising in stream
 * order, which the model below takes as the order of positions, as the
 * subscribers' truncation watermark compares them; per incident a life: a
 * Created only of a key that is not live (first, after a Deleted, or after
 * a truncation), Updated and Deleted only of a live key, a truncation ending
 * every life; and (key, is_delete) strictly increasing in commit order
 * across deletes and truncations (every insert and update draws a higher
 * version; a delete repeats it, and the re-insert after it must beat that
 * tombstone outright).  A key change is a Deleted and a Created of another
 * key at consecutive ordinals. */
static int stream_check(const stream_t *s, char *why, size_t whylen)
{
    for (int i = 0; i < s->nev; i++)
        for (int j = i + 1; j < s->nev; j++)
            if (strcmp(s->ev[i].id, s->ev[j].id) == 0) {
                snprintf(why, whylen, "event id %s appears twice in the stream", s->ev[i].id);
                return -1;
            }
    for (int i = 1; i < s->nev; i++) {
        const event_t *p = &s->ev[i - 1], *e = &s->ev[i];
        if (p->lsn > e->lsn || (p->lsn == e->lsn && p->ord >= e->ord)) {
            snprintf(why, whylen, "event %s follows %s in the stream", e->id, p->id);
            return -1;
        }
        bool pair_opened = p->keychg && p->is_delete, pair_closed = e->keychg && !e->is_delete;
        if (pair_opened != pair_closed ||
            (pair_opened && !(strstr(e->type, "Created") != NULL && p->lsn == e->lsn &&
                              p->ord + 1 == e->ord && strcmp(p->subject, e->subject) != 0))) {
            snprintf(why, whylen, "key change %s, %s: not a Deleted then a Created of another key",
                     p->id, e->id);
            return -1;
        }
    }
    bool *live = calloc((size_t)s->nsub, sizeof *live);
    int *prev = malloc((size_t)s->nsub * sizeof *prev);
    assert(live != NULL && prev != NULL);
    for (int k = 0; k < s->nsub; k++)
        prev[k] = -1;
    int rc = 0;
    for (int i = 0; i < s->nev && rc == 0; i++) {
        const event_t *e = &s->ev[i];
        if (e->is_trunc) {
            memset(live, 0, (size_t)s->nsub * sizeof *live);
            continue;
        }
        bool created = strstr(e->type, "Created") != NULL;
        if (s->sub[e->subj].table || created == live[e->subj]) {
            snprintf(why, whylen, "incident %s: event %d of its history (%s, %s) %s", e->subject,
                     e->rank, e->id, e->type,
                     created ? "is a Created of a live incident"
                             : "is not a Created but the incident is not live");
            rc = -1;
            break;
        }
        live[e->subj] = !e->is_delete;
        const event_t *p = prev[e->subj] >= 0 ? &s->ev[prev[e->subj]] : NULL;
        prev[e->subj] = i;
        if (p == NULL)
            continue;
        hms_lww_key_t a = {p->version, 0, p->origin}, b = {e->version, 0, e->origin};
        if (!hms_lww_parse_time(p->updatedat, &a.updatedat) ||
            !hms_lww_parse_time(e->updatedat, &b.updatedat)) {
            snprintf(why, whylen, "event %s or %s: bad updatedat", p->id, e->id);
            rc = -1;
            break;
        }
        int c = hms_lww_compare(&a, &b);
        if (c > 0 || (c == 0 && !(e->is_delete && !p->is_delete))) {
            snprintf(why, whylen,
                     "incident %s: %s (v%" PRId64 " %s %s%s) then %s (v%" PRId64
                     " %s %s%s) is not increasing",
                     e->subject, p->id, p->version, p->updatedat, p->origin,
                     p->is_delete ? " delete" : "", e->id, e->version, e->updatedat, e->origin,
                     e->is_delete ? " delete" : "");
            rc = -1;
        }
    }
    free(live);
    free(prev);
    return rc;
}

/* ---- deliveries ---- */

typedef struct {
    int *d; /* event indexes in delivery order */
    int n;
    bool shuffled; /* events of one incident shuffled too */
    int dups;      /* extra copies */
} order_t;

/* One delivery order: each event once, about 20% of them with 1-3 extra
 * copies; per incident the commit order (a copy lands at a random place
 * after its original, as a redelivery would) or, when shuffled, any order;
 * incidents interleaved at random. */
typedef struct {
    double key;
    int ev;
} slot_t;

static int slot_cmp(const void *a, const void *b)
{
    double x = ((const slot_t *)a)->key, y = ((const slot_t *)b)->key;
    return x < y ? -1 : x > y;
}

static double unit(rng_t *r)
{
    return (double)(rnd(r) >> 11) / 9007199254740992.0; /* [0, 1) */
}

/* Moves the first copy of each truncation before every event that follows
 * it in the stream, as one queue fed in publish order delivers it. */
static void truncations_first(const stream_t *s, order_t *o)
{
    for (int t = 0; t < s->nev; t++) {
        if (!s->ev[t].is_trunc)
            continue;
        int at = -1, first_later = -1;
        for (int i = 0; i < o->n && at < 0; i++) {
            if (o->d[i] == t)
                at = i;
            else if (o->d[i] > t && first_later < 0)
                first_later = i;
        }
        if (at >= 0 && first_later >= 0 && first_later < at) {
            memmove(&o->d[first_later + 1], &o->d[first_later],
                    (size_t)(at - first_later) * sizeof *o->d);
            o->d[first_later] = t;
        }
    }
}

static void order_make(const stream_t *s, rng_t *r, order_t *o)
{
    memset(o, 0, sizeof *o);
    o->shuffled = below(r, 3) == 0;
    slot_t **lists = calloc((size_t)s->nsub, sizeof *lists);
    int *len = calloc((size_t)s->nsub, sizeof *len);
    int *pos = calloc((size_t)s->nsub, sizeof *pos);
    int total = 0;
    assert(lists && len && pos);
    for (int k = 0; k < s->nsub; k++) {
        const subject_t *sj = &s->sub[k];
        lists[k] = malloc((size_t)sj->n * 4 * sizeof(slot_t));
        assert(lists[k] != NULL);
        for (int i = 0; i < sj->n; i++) {
            int copies = below(r, 5) == 0 ? 1 + (int)below(r, 3) : 0;
            for (int c = 0; c <= copies; c++) {
                double key = o->shuffled ? unit(r) * sj->n
                             : c == 0    ? (double)i
                                         : i + 0.5 + unit(r) * (sj->n - i);
                lists[k][len[k]++] = (slot_t){key, sj->ev[i]};
            }
            o->dups += copies;
        }
        qsort(lists[k], (size_t)len[k], sizeof(slot_t), slot_cmp);
        total += len[k];
    }
    o->d = malloc((size_t)total * sizeof(int));
    assert(o->d != NULL);
    for (int left = total; left > 0; left--) {
        int pickn = (int)below(r, (unsigned)left), k = 0;
        for (;; k++) {
            int rem = len[k] - pos[k];
            if (pickn < rem)
                break;
            pickn -= rem;
        }
        o->d[o->n++] = lists[k][pos[k]++].ev;
    }
    for (int k = 0; k < s->nsub; k++)
        free(lists[k]);
    free(lists);
    if (getenv("HMS_CONVERGENCE_TRUNCATIONS_IN_ORDER") != NULL)
        truncations_first(s, o);
    free(len);
    free(pos);
}

/* ---- applying an order to a replica ---- */

/* What the model says one subscriber holds: per subject the rank of the
 * event its row carries, NONE, or TOMB for a row a truncation tombstoned;
 * and the stream index of the newest truncation applied (-1: none). */
enum { NONE = -1, TOMB = -2 };

typedef struct {
    bool *seen;
    int *held;
    int wm;
} model_t;

typedef struct {
    int replica;
    const stream_t *s;
    order_t order[N_SUBS];
    /* results */
    long applied[N_SUBS], stale[N_SUBS], dup_inbox[N_SUBS], lww_dup, over_tombstone;
    long trunc_applied, trunc_stale, trunc_rows, keychg_applied, keychg_stale;
    int bad_sub, bad_at; /* the first unexpected outcome: subscriber, delivery */
    char err[1200];
} replica_job_t;

/* The model's outcome of delivering event ev: an event already taken in is
 * an inbox duplicate.  A truncation applies unless a later one was applied,
 * and tombstones every row whose event is earlier than it in the stream (a
 * row written after it, delivered before it, stays).  A row event earlier
 * than the newest applied truncation is stale; otherwise it applies exactly
 * when it is later in its incident's commit order than the event held (the
 * stream check made that order the LWW order), or when the row is a
 * truncation's tombstone, whose version (drawn when the TRUNCATE ran) every
 * later write beats. */
static const char *model(const stream_t *s, int ev, model_t *m, replica_job_t *j)
{
    const event_t *e = &s->ev[ev];
    if (m->seen[ev])
        return "duplicate";
    m->seen[ev] = true;
    if (e->is_trunc) {
        if (ev < m->wm)
            return "stale";
        m->wm = ev;
        for (int k = 0; k < s->nsub; k++) {
            if (m->held[k] < 0 || s->sub[k].ev[m->held[k]] > ev)
                continue;
            j->trunc_rows += !s->ev[s->sub[k].ev[m->held[k]]].is_delete;
            m->held[k] = TOMB;
        }
        return "applied";
    }
    int h = m->held[e->subj];
    if (ev < m->wm || (h >= 0 && e->rank <= h))
        return "stale";
    if (!e->is_delete && (h == TOMB || (h >= 0 && s->ev[s->sub[e->subj].ev[h]].is_delete)))
        j->over_tombstone++;
    m->held[e->subj] = e->rank;
    return "applied";
}

static int apply_order(replica_job_t *j, PGconn *c, int sub)
{
    const stream_t *s = j->s;
    const order_t *o = &j->order[sub];
    model_t m = {calloc((size_t)s->nev, sizeof *m.seen), malloc((size_t)s->nsub * sizeof *m.held),
                 -1};
    assert(m.seen && m.held);
    for (int k = 0; k < s->nsub; k++)
        m.held[k] = NONE;
    int rc = 0;
    if (PQenterPipelineMode(c) != 1) {
        snprintf(j->err, sizeof j->err, "replica %d: cannot enter pipeline mode: %s", j->replica,
                 PQerrorMessage(c));
        rc = -1;
    }
    for (int base = 0; base < o->n && rc == 0; base += BATCH) {
        int end = base + BATCH < o->n ? base + BATCH : o->n;
        for (int i = base; i < end && rc == 0; i++) {
            const char *p[3] = {subs[sub].name, subs[sub].apply, s->ev[o->d[i]].body};
            if (PQsendQueryPrepared(c, "consume", 3, p, NULL, NULL, 0) != 1 ||
                PQpipelineSync(c) != 1) {
                snprintf(j->err, sizeof j->err, "replica %d: send: %s", j->replica,
                         PQerrorMessage(c));
                rc = -1;
            }
        }
        for (int i = base; i < end && rc == 0; i++) {
            const event_t *e = &s->ev[o->d[i]];
            PGresult *res = PQgetResult(c);
            char got[32] = "";
            if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
                snprintf(got, sizeof got, "%s", PQgetvalue(res, 0, 0));
            else
                snprintf(j->err, sizeof j->err, "replica %d %s: consume(%s %s): %s", j->replica,
                         subs[sub].name, e->id, e->type, PQresultErrorMessage(res));
            PQclear(res);
            while ((res = PQgetResult(c)) != NULL)
                PQclear(res);
            res = PQgetResult(c);
            if (PQresultStatus(res) != PGRES_PIPELINE_SYNC && j->err[0] == '\0')
                snprintf(j->err, sizeof j->err, "replica %d: expected a pipeline sync, got %s",
                         j->replica, PQresStatus(PQresultStatus(res)));
            PQclear(res);
            if (j->err[0] != '\0') {
                rc = -1;
                break;
            }
            const char *want = model(s, o->d[i], &m, j);
            bool applied = strcmp(got, "applied") == 0, stale = strcmp(got, "stale") == 0;
            j->applied[sub] += applied;
            j->stale[sub] += stale;
            j->trunc_applied += e->is_trunc && applied;
            j->trunc_stale += e->is_trunc && stale;
            j->keychg_applied += e->keychg && applied;
            j->keychg_stale += e->keychg && stale;
            if (strcmp(want, "duplicate") == 0 && strcmp(got, "duplicate") == 0)
                j->dup_inbox[sub]++;
            else if (strcmp(got, "duplicate") == 0)
                j->lww_dup++;
            if (strcmp(got, want) != 0) {
                snprintf(j->err, sizeof j->err,
                         "replica %d %s: delivery %d of %d, event %s (%s, incident %s, v%" PRId64
                         " %s %s, #%d of its %d): got %s, want %s",
                         j->replica, subs[sub].name, i, o->n, e->id, e->type, e->subject,
                         e->version, e->updatedat, e->origin, e->rank, s->sub[e->subj].n, got,
                         want);
                j->bad_sub = sub;
                j->bad_at = i;
                rc = -1;
            }
        }
    }
    if (rc != 0) {
        /* drain what is still in flight before leaving pipeline mode */
        PGresult *res;
        for (int idle = 0; idle < 2;) {
            res = PQgetResult(c);
            if (res == NULL) {
                idle++;
                continue;
            }
            idle = 0;
            PQclear(res);
        }
    }
    PQexitPipelineMode(c);
    free(m.seen);
    free(m.held);
    return rc;
}

static void *replica_main(void *arg)
{
    replica_job_t *j = arg;
    PGconn *c = connect_quiet(rep_conninfo[j->replica]);
    if (c == NULL) {
        snprintf(j->err, sizeof j->err, "replica %d: cannot connect", j->replica);
        return NULL;
    }
    PGresult *res = PQprepare(c, "consume",
                              "SELECT hms_sync.consume($1, $2::regprocedure, $3::jsonb)", 3, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        snprintf(j->err, sizeof j->err, "replica %d: prepare: %s", j->replica,
                 PQresultErrorMessage(res));
    PQclear(res);
    j->bad_sub = -1;
    for (int sub = 0; sub < N_SUBS && j->err[0] == '\0'; sub++)
        apply_order(j, c, sub);
    PQfinish(c);
    return NULL;
}

/* ---- the expected replica rows ---- */

typedef struct {
    srow_t row; /* gone: only the id */
    bool deleted;
    /* Its last event precedes the last truncation.  A replica that took in
     * none of its events before that truncation holds no row; one that did
     * holds a tombstone with the truncation's tuple, and whatever values the
     * events it took in before the truncation left: they depend on the
     * delivery order. */
    bool gone;
    const char *closed_at; /* the delete's commit time (its event's time) */
} expect_t;

static int expect_cmp(const void *a, const void *b)
{
    return strcmp(((const expect_t *)a)->row.f[C_ID], ((const expect_t *)b)->row.f[C_ID]);
}

static const char *priority(const char *sev)
{
    return strcmp(sev, "1") == 0   ? "urgent"
           : strcmp(sev, "2") == 0 ? "high"
           : strcmp(sev, "3") == 0 ? "normal"
                                   : "low";
}

/* The row subscriber sub should hold for x, as n text values (NULL for SQL
 * NULL); title is scratch for the scheduling title. */
static void expected_cols(int sub, const expect_t *x, const char **v, char *title, size_t tlen)
{
    char *const *f = x->row.f;
    const char *del = x->deleted ? "true" : "false";
    if (sub == 0) {
        for (int i = 0; i < NSRC; i++)
            v[i] = f[i];
        v[NSRC] = del;
    } else if (sub == 1) {
        if (f[C_SUMMARY] != NULL && f[C_SUMMARY][0] != '\0')
            snprintf(title, tlen, "%s", f[C_SUMMARY]);
        else
            snprintf(title, tlen, "Investigate incident %s", f[C_ID]);
        const char *w[12] = {f[C_ID],
                             f[C_REGION],
                             f[C_SEV],
                             priority(f[C_SEV]),
                             title,
                             f[C_STATUS],
                             x->deleted ? "cancelled" : "open",
                             NULL,
                             f[C_VERSION],
                             f[C_UPDATED],
                             f[C_ORIGIN],
                             del};
        memcpy(v, w, sizeof w);
    } else {
        const char *w[14] = {f[C_ID],
                             f[C_REGION],
                             f[C_SEV],
                             f[C_SUMMARY],
                             f[C_REPORTED],
                             f[C_STATUS],
                             x->deleted ? "closed" : "open",
                             f[C_OCC],
                             x->deleted ? x->closed_at : NULL,
                             NULL,
                             f[C_VERSION],
                             f[C_UPDATED],
                             f[C_ORIGIN],
                             del};
        memcpy(v, w, sizeof w);
    }
}

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int col_of(int sub, const char *name)
{
    for (int k = 0; k < sub_ncols[sub]; k++)
        if (strcmp(sub_cols[sub][k], name) == 0)
            return k;
    assert(!"no such column");
    return 0;
}

/* Checks one row of a gone incident: a tombstone with the last truncation's
 * tuple (trunc), cancelled or closed as a deleted incident's is. */
static int check_gone(PGresult *res, int i, int r, int sub, const event_t *trunc, char *why,
                      size_t whylen)
{
    char version[24];
    snprintf(version, sizeof version, "%" PRId64, trunc->version);
    struct {
        const char *col, *want; /* want NULL: any value but NULL */
    } w[4] = {{"deleted", "true"},
              {"version", version},
              {"updated_at", trunc->updatedat},
              {"origin", trunc->origin}};
    for (int k = 0; k < 4; k++) {
        int col = col_of(sub, w[k].col);
        const char *got = PQgetisnull(res, i, col) ? NULL : PQgetvalue(res, i, col);
        if (!same(got, w[k].want)) {
            snprintf(why, whylen,
                     "replica %d %s: incident %s (truncated by %s): column %s is \"%s\", want "
                     "\"%s\"",
                     r, subs[sub].name, PQgetvalue(res, i, 0), trunc->id, w[k].col,
                     got ? got : "NULL", w[k].want);
            return -1;
        }
    }
    const char *col = sub == 1 ? "status" : sub == 2 ? "state" : NULL;
    const char *want = sub == 1 ? "cancelled" : "closed";
    int k = col != NULL ? col_of(sub, col) : -1;
    int kc = sub == 2 ? col_of(sub, "closed_at") : -1;
    if ((k >= 0 && strcmp(PQgetvalue(res, i, k), want) != 0) ||
        (kc >= 0 && PQgetisnull(res, i, kc))) {
        snprintf(why, whylen, "replica %d %s: incident %s (truncated by %s) is not %s", r,
                 subs[sub].name, PQgetvalue(res, i, 0), trunc->id, want);
        return -1;
    }
    return 0;
}

/* Compares replica r's table of subscriber sub with the expected rows (by
 * id, both sorted); the text of its rows that do not depend on the delivery
 * order goes to snap (caller frees) for the cross-replica check.  held and
 * absent count the gone incidents the replica keeps a tombstone of, or
 * none. */
static int check_table(PGconn *c, int r, int sub, const expect_t *x, int nx, const event_t *trunc,
                       char **snap, long *held, long *absent, char *why, size_t whylen)
{
    PGresult *res = PQexec(c, subs[sub].query);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "replica %d: %s", r, PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    int rc = 0, n = PQntuples(res), nc = sub_ncols[sub];
    hms_buf_t b = {0};
    for (int i = 0, k = 0; (i < n || k < nx) && rc == 0;) {
        int cmp = i < n && k < nx ? strcmp(PQgetvalue(res, i, 0), x[k].row.f[C_ID])
                  : i < n         ? -1
                                  : 1;
        if (cmp < 0) {
            snprintf(why, whylen,
                     "replica %d %s: a row for incident %s, which has none at the source", r,
                     subs[sub].name, PQgetvalue(res, i, 0));
            rc = -1;
        } else if (cmp > 0 && x[k].gone) {
            (*absent)++;
            k++;
        } else if (cmp > 0) {
            snprintf(why, whylen, "replica %d %s: no row for incident %s%s", r, subs[sub].name,
                     x[k].row.f[C_ID], x[k].deleted ? " (deleted)" : "");
            rc = -1;
        } else if (x[k].gone) {
            rc = check_gone(res, i, r, sub, trunc, why, whylen);
            (*held)++;
            i++, k++;
        } else {
            const char *v[14];
            char title[256];
            expected_cols(sub, &x[k], v, title, sizeof title);
            for (int col = 0; col < nc && rc == 0; col++) {
                const char *got = PQgetisnull(res, i, col) ? NULL : PQgetvalue(res, i, col);
                if (!same(got, v[col])) {
                    snprintf(why, whylen,
                             "replica %d %s: incident %s%s: column %s is \"%s\", want \"%s\"", r,
                             subs[sub].name, x[k].row.f[C_ID], x[k].deleted ? " (deleted)" : "",
                             sub_cols[sub][col], got ? got : "NULL", v[col] ? v[col] : "NULL");
                    rc = -1;
                }
                hms_buf_append_str(&b, got != NULL ? got : "\\N");
                hms_buf_append_char(&b, col + 1 < nc ? '|' : '\n');
            }
            i++, k++;
        }
    }
    *snap = b.data ? b.data : strdup("");
    PQclear(res);
    return rc;
}

/* Each subscriber's inbox: one row per distinct event, outcomes as counted. */
static int check_inbox(PGconn *c, int r, const replica_job_t *j, int nev, char *why, size_t whylen)
{
    for (int sub = 0; sub < N_SUBS; sub++) {
        char *got = it_pg_value(
            c,
            "SELECT count(*) || '|' || count(DISTINCT (source, id)) || '|' || "
            "count(*) FILTER (WHERE outcome = 'applied') || '|' || "
            "count(*) FILTER (WHERE outcome = 'stale') FROM hms_sync.inbox WHERE subscriber = '%s'",
            subs[sub].name);
        char want[96];
        snprintf(want, sizeof want, "%d|%d|%ld|%ld", nev, nev, j->applied[sub], j->stale[sub]);
        if (got == NULL || strcmp(got, want) != 0) {
            snprintf(why, whylen, "replica %d %s inbox: rows|distinct|applied|stale = %s, want %s",
                     r, subs[sub].name, got ? got : "(error)", want);
            free(got);
            return -1;
        }
        free(got);
    }
    return 0;
}

/* ---- one trial ---- */

static void dump(uint64_t seed, const stream_t *s, const replica_job_t *jobs, const char *why)
{
    char path[700];
    snprintf(path, sizeof path, "%s/convergence-%" PRIu64 ".txt", logdir, seed);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    fprintf(f, "# seed %" PRIu64 ": %s\n# events in stream order\n", seed, why);
    for (int i = 0; s != NULL && i < s->nev; i++)
        fprintf(f, "%s\n", s->ev[i].body);
    for (int r = 0; jobs != NULL && r < N_REPLICAS; r++) {
        if (jobs[r].bad_sub < 0 || jobs[r].err[0] == '\0')
            continue;
        const order_t *o = &jobs[r].order[jobs[r].bad_sub];
        fprintf(f, "# replica %d %s: delivery order (stream indexes), failed at %d%s\n", r,
                subs[jobs[r].bad_sub].name, jobs[r].bad_at, o->shuffled ? ", shuffled" : "");
        for (int i = 0; i < o->n; i++)
            fprintf(f, "%d%c", o->d[i], i + 1 < o->n ? ' ' : '\n');
    }
    fclose(f);
    fprintf(stderr, "convergence: seed %" PRIu64 ": events and delivery order written to %s\n",
            seed, path);
}

static int exec_all(const char *conninfo, const char *sql, char *why, size_t whylen)
{
    PGconn *c = connect_quiet(conninfo);
    if (c == NULL) {
        snprintf(why, whylen, "cannot connect for: %s", sql);
        return -1;
    }
    PGresult *res = PQexec(c, sql);
    int rc =
        PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0)
        snprintf(why, whylen, "%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    PQfinish(c);
    return rc;
}

/* Runs trial `seed`; 0, or -1 with a one-line reason in why. */
static int trial(uint64_t seed, char *why, size_t whylen)
{
    rng_t r;
    rng_seed(&r, seed, 0);
    pool_t pool;
    memset(&pool, 0, sizeof pool);
    pthread_mutex_init(&pool.mu, NULL);
    stream_t s;
    memset(&s, 0, sizeof s);
    s.last_trunc = -1;
    replica_job_t *jobs = calloc(N_REPLICAS, sizeof *jobs);
    expect_t *x = NULL;
    int nx = 0, rc = -1;
    char *snaps[N_REPLICAS][N_SUBS];
    memset(snaps, 0, sizeof snaps);
    PGconn *src = NULL;
    assert(jobs != NULL);

    /* A clean slate: empty replicas, an empty source, a drained slot. */
    for (int i = 0; i < N_REPLICAS; i++)
        if (exec_all(rep_conninfo[i],
                     "TRUNCATE hms_sync.inbox, hms_sync.truncations, public.incident_facts, "
                     "public.investigation_tasks, public.cases",
                     why, whylen))
            goto done;
    src = connect_quiet(src_conninfo);
    if (src == NULL || it_pg_exec(src, "SET synchronous_commit = on") != 0 ||
        it_pg_exec(src, "TRUNCATE public.incidents") != 0 ||
        read_slot(src, &s, false, why, whylen) != 0) {
        if (why[0] == '\0')
            snprintf(why, whylen, "cannot reset the source");
        goto done;
    }

    /* The first incidents, in one multi-row INSERT (one transaction,
     * several ordinals at one commit LSN). */
    int first = 4 + (int)below(&r, 10);
    PGresult *res = PQexec(src, "SELECT 1");
    PQclear(res);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO public.incidents (region, severity, summary, reported_by) "
             "SELECT (ARRAY['north','south','east','west'])[1 + g %% 4], 1 + g %% 5, "
             "'initial ' || g, CASE WHEN g %% 3 = 0 THEN NULL ELSE 'nurse ' || g END "
             "FROM generate_series(1, %d) g RETURNING id::text",
             first);
    res = PQexec(src, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "initial insert: %s", PQresultErrorMessage(res));
        PQclear(res);
        goto done;
    }
    for (int i = 0; i < PQntuples(res); i++)
        pool_add(&pool, PQgetvalue(res, i, 0));
    PQclear(res);

    /* The two writers, concurrently. */
    writer_t w[2] = {
        {.pool = &pool, .origin = NULL, .seed = seed, .stream = 1, .ntx = 25 + (int)below(&r, 30)},
        {.pool = &pool,
         .origin = "casemgmt",
         .seed = seed,
         .stream = 2,
         .ntx = 25 + (int)below(&r, 30)},
    };
    double t_write = it_now_ms();
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, writer_main, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        if (w[i].err[0] != '\0') {
            snprintf(why, whylen, "%s", w[i].err);
            goto done;
        }
        tot.writer_txs += w[i].commits;
        tot.retries += w[i].retries;
        tot.inserts += w[i].inserts;
        tot.updates += w[i].updates;
        tot.deletes += w[i].deletes;
        tot.reinserts += w[i].reinserts;
        tot.truncations += w[i].truncations;
        tot.trunc_inserts += w[i].trunc_inserts;
        tot.keychanges += w[i].keychanges;
        tot.keychange_restores += w[i].keychange_restores;
    }

    /* The stream, as the connector would publish it.  Every commit above
     * waited for its WAL flush (synchronous_commit = on), so logical
     * decoding, which reads only flushed WAL, sees them all. */
    if (read_slot(src, &s, true, why, whylen) != 0 || stream_check(&s, why, whylen) != 0)
        goto done;
    if (s.ntrunc != w[0].truncations + w[1].truncations ||
        s.nkeychg != w[0].keychanges + w[1].keychanges) {
        snprintf(why, whylen,
                 "the writers committed %d TRUNCATEs and %d key changes, the stream has %d "
                 "truncations and %d key changes",
                 w[0].truncations + w[1].truncations, w[0].keychanges + w[1].keychanges, s.ntrunc,
                 s.nkeychg);
        goto done;
    }
    const event_t *trunc = s.last_trunc >= 0 ? &s.ev[s.last_trunc] : NULL;

    if (getenv("HMS_CONVERGENCE_VERBOSE") != NULL)
        printf("convergence: seed %" PRIu64 ": %d initial incidents, writers committed %d + %d "
               "transactions (%d + %d retried, %d TRUNCATEs, %d key changes) in %.0f ms, "
               "%d events of %d subjects\n",
               seed, first, w[0].commits, w[1].commits, w[0].retries, w[1].retries, s.ntrunc,
               s.nkeychg, it_now_ms() - t_write, s.nev, s.nsub);

    /* The expected rows: the source's; a tombstone with the row its DELETE
     * returned per incident deleted after the last truncation; and per
     * incident whose last event precedes the last truncation, a gone one.
     * The stream and the writers' own account must agree on which is which. */
    res = PQexec(src, "SELECT " SRC_COLS " FROM public.incidents ORDER BY id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(why, whylen, "source rows: %s", PQresultErrorMessage(res));
        PQclear(res);
        goto done;
    }
    x = calloc(pool.n + 1, sizeof *x);
    assert(x != NULL);
    int nlive = PQntuples(res), nsubj = s.nsub;
    for (int i = 0; i < nlive && i < (int)pool.n; i++)
        srow_from(&x[nx++].row, res, i);
    PQclear(res);
    for (int i = 0; i < nx; i++) {
        int k = subject_index(&s, x[i].row.f[C_ID]);
        const subject_t *sj = &s.sub[k];
        int last = sj->n > 0 ? sj->ev[sj->n - 1] : -1;
        if (last < 0 || s.ev[last].is_delete || last < s.last_trunc) {
            snprintf(why, whylen, "incident %s is live at the source but its last event is %s",
                     x[i].row.f[C_ID], last < 0 ? "missing" : s.ev[last].id);
            goto done;
        }
    }
    int ntomb = 0, ngone = 0;
    for (size_t i = 0; i < pool.n; i++) {
        inc_t *inc = &pool.v[i];
        if (!inc->deleted)
            continue;
        int k = subject_index(&s, inc->id);
        const subject_t *sj = &s.sub[k];
        int last = sj->n > 0 ? sj->ev[sj->n - 1] : -1;
        const event_t *le = last >= 0 ? &s.ev[last] : NULL;
        if (le != NULL && last < s.last_trunc) {
            x[nx].row.f[C_ID] = strdup(inc->id);
            x[nx++].gone = true;
            ngone++;
            continue;
        }
        if (le == NULL || !le->is_delete || inc->truncated) {
            snprintf(why, whylen,
                     "incident %s was %s but its last event (%s) is not a delete before the "
                     "last truncation (%s)",
                     inc->id, inc->truncated ? "truncated" : "deleted", le ? le->id : "none",
                     trunc ? trunc->id : "none");
            goto done;
        }
        x[nx].row = inc->tomb;
        memset(&inc->tomb, 0, sizeof inc->tomb);
        x[nx].deleted = true;
        x[nx++].closed_at = le->time;
        ntomb++;
    }
    if (nlive + ntomb + ngone != (int)pool.n || nsubj != (int)pool.n + (s.ntrunc > 0) ||
        s.nsub != nsubj) {
        snprintf(why, whylen,
                 "%zu incidents made, the source holds %d, %d were deleted and %d truncated; %d "
                 "subjects in the stream",
                 pool.n, nlive, ntomb, ngone, s.nsub);
        goto done;
    }
    qsort(x, (size_t)nx, sizeof *x, expect_cmp);

    /* Nine delivery orders, then the three replicas at once. */
    rng_t dr;
    rng_seed(&dr, seed, 3);
    for (int i = 0; i < N_REPLICAS; i++) {
        jobs[i].replica = i;
        jobs[i].s = &s;
        jobs[i].bad_sub = -1;
        for (int sub = 0; sub < N_SUBS; sub++)
            order_make(&s, &dr, &jobs[i].order[sub]);
    }
    double t_apply = it_now_ms();
    pthread_t rt[N_REPLICAS];
    for (int i = 0; i < N_REPLICAS; i++)
        pthread_create(&rt[i], NULL, replica_main, &jobs[i]);
    for (int i = 0; i < N_REPLICAS; i++)
        pthread_join(rt[i], NULL);
    for (int i = 0; i < N_REPLICAS; i++)
        if (jobs[i].err[0] != '\0') {
            snprintf(why, whylen, "%s", jobs[i].err);
            goto done;
        }

    if (getenv("HMS_CONVERGENCE_VERBOSE") != NULL)
        printf("convergence: seed %" PRIu64 ": applied in %.0f ms\n", seed, it_now_ms() - t_apply);

    /* The end state. */
    long truncated_held = 0, truncated_gone = 0;
    for (int i = 0; i < N_REPLICAS; i++) {
        PGconn *c = connect_quiet(rep_conninfo[i]);
        int bad = c == NULL ? -1 : 0;
        if (c == NULL)
            snprintf(why, whylen, "replica %d: cannot connect", i);
        for (int sub = 0; sub < N_SUBS && bad == 0; sub++)
            bad = check_table(c, i, sub, x, nx, trunc, &snaps[i][sub], &truncated_held,
                              &truncated_gone, why, whylen);
        if (bad == 0)
            bad = check_inbox(c, i, &jobs[i], s.nev, why, whylen);
        PQfinish(c);
        if (bad != 0)
            goto done;
    }
    /* Equality with the expected rows implies it for all rows but the
     * truncated ones; said outright anyway. */
    for (int i = 1; i < N_REPLICAS; i++)
        for (int sub = 0; sub < N_SUBS; sub++)
            if (strcmp(snaps[i][sub], snaps[0][sub]) != 0) {
                snprintf(why, whylen, "replicas 0 and %d disagree on %s", i, subs[sub].name);
                goto done;
            }

    tot.events += s.nev;
    tot.incidents += (long)pool.n;
    tot.tombstones += ntomb + ngone;
    tot.trunc_events += s.ntrunc;
    tot.truncated_held += truncated_held;
    tot.truncated_gone += truncated_gone;
    for (int i = 0; i < N_REPLICAS; i++) {
        for (int sub = 0; sub < N_SUBS; sub++) {
            const order_t *o = &jobs[i].order[sub];
            tot.orders++;
            tot.shuffled_orders += o->shuffled;
            tot.deliveries += o->n;
            tot.dup_delivered += o->dups;
            tot.dup_skipped += jobs[i].dup_inbox[sub];
            tot.stale_skipped += jobs[i].stale[sub];
            tot.applied += jobs[i].applied[sub];
        }
        tot.lww_dup += jobs[i].lww_dup;
        tot.over_tombstone += jobs[i].over_tombstone;
        tot.trunc_applied += jobs[i].trunc_applied;
        tot.trunc_stale += jobs[i].trunc_stale;
        tot.trunc_rows += jobs[i].trunc_rows;
        tot.keychange_applied += jobs[i].keychg_applied;
        tot.keychange_stale += jobs[i].keychg_stale;
    }
    rc = 0;

done:
    if (rc != 0)
        dump(seed, &s, jobs, why);
    PQfinish(src);
    for (int i = 0; i < N_REPLICAS; i++)
        for (int sub = 0; sub < N_SUBS; sub++) {
            free(snaps[i][sub]);
            free(jobs[i].order[sub].d);
        }
    free(jobs);
    for (int i = 0; i < nx; i++)
        srow_free(&x[i].row);
    free(x);
    stream_free(&s);
    pool_free(&pool);
    pthread_mutex_destroy(&pool.mu);
    return rc;
}

/* ---- the test ---- */

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return dflt;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') {
        fprintf(stderr, "convergence: %s=%s is not a number; using %" PRIu64 "\n", name, v, dflt);
        return dflt;
    }
    return (uint64_t)n;
}

START_TEST(test_convergence)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t base = env_u64("HMS_CONVERGENCE_SEED",
                            (splitmix((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32)) >> 20));
    int trials = (int)env_u64("HMS_CONVERGENCE_TRIALS", 30);
    printf("convergence: %d trials from seed %" PRIu64 " (HMS_CONVERGENCE_SEED=%" PRIu64
           " HMS_CONVERGENCE_TRIALS=%d replays them)\n",
           trials, base, base, trials);
    fflush(stdout);
    double t0 = it_now_ms();
    /* Every trial runs, so a long run tells how often a failure shows; the
     * test fails at the end, naming the first failure. */
    int failures = 0;
    char first[1700] = "";
    for (int i = 0; i < trials; i++) {
        char why[1500] = "";
        uint64_t seed = base + (uint64_t)i;
        bool ok = trial(seed, why, sizeof why) == 0;
        if (trials >= 100 && (i + 1) % 25 == 0) { /* a sign of life on long runs */
            printf("convergence: %d of %d trials run, %d failed, %.0f s\n", i + 1, trials,
                   failures + !ok, (it_now_ms() - t0) / 1000.0);
            fflush(stdout);
        }
        if (!ok) {
            failures++;
            printf("convergence: trial %d, seed %" PRIu64 " FAILED: %s (replay: "
                   "HMS_CONVERGENCE_SEED=%" PRIu64 " HMS_CONVERGENCE_TRIALS=1)\n",
                   i, seed, why, seed);
            fflush(stdout);
            if (first[0] == '\0')
                snprintf(first, sizeof first, "trial %d, seed %" PRIu64 ": %s", i, seed, why);
            continue;
        }
        tot.trials++;
    }
    double secs = (it_now_ms() - t0) / 1000.0;
    printf("convergence: %d trials passed, %ld events (%ld incidents, %ld deleted or truncated), "
           "%ld deliveries to "
           "%d replicas x %d subscribers (%ld orders, %ld shuffled within incidents); "
           "%ld duplicates delivered, %ld skipped by the inbox; %ld stale skipped; %ld applied; "
           "%ld LWW duplicates; %ld truncation events\n",
           tot.trials, tot.events, tot.incidents, tot.tombstones, tot.deliveries, N_REPLICAS,
           N_SUBS, tot.orders, tot.shuffled_orders, tot.dup_delivered, tot.dup_skipped,
           tot.stale_skipped, tot.applied, tot.lww_dup, tot.trunc_events);
    printf("convergence: writers committed %d transactions (%d inserts, %d re-inserts of deleted "
           "keys, %d updates, %d deletes, %d key changes of which %d onto a deleted key, "
           "%d TRUNCATEs of which %d with inserts after them), %d retried after a deadlock or "
           "serialization failure\n",
           tot.writer_txs, tot.inserts, tot.reinserts, tot.updates, tot.deletes, tot.keychanges,
           tot.keychange_restores, tot.truncations, tot.trunc_inserts, tot.retries);
    printf("convergence: subscribers applied %ld re-inserts over a held tombstone; %ld deliveries "
           "of truncations applied (%ld stale), tombstoning %ld live rows; %ld deliveries of "
           "key-change events applied (%ld stale); truncated incidents at the end: %ld held as "
           "tombstones, %ld never taken in; %.1f s\n",
           tot.over_tombstone, tot.trunc_applied, tot.trunc_stale, tot.trunc_rows,
           tot.keychange_applied, tot.keychange_stale, tot.truncated_held, tot.truncated_gone,
           secs);
    printf("convergence: %d of %d trials failed\n", failures, trials);
    fflush(stdout);
    ck_assert_msg(failures == 0, "%d of %d trials failed; the first: %s", failures, trials, first);
    ck_assert_int_eq(tot.dup_skipped, tot.dup_delivered);
    /* Enough trials always restore some incidents, change keys and truncate;
     * one replayed seed may not. */
    if (trials >= 10) {
        ck_assert_msg(tot.reinserts > 0 && tot.over_tombstone > 0,
                      "no re-insert of a deleted key was exercised (%d re-inserts, %ld applied "
                      "over a tombstone)",
                      tot.reinserts, tot.over_tombstone);
        ck_assert_msg(tot.keychanges > 0 && tot.keychange_applied > 0,
                      "no key change was exercised (%d committed, %ld deliveries applied)",
                      tot.keychanges, tot.keychange_applied);
        ck_assert_msg(tot.truncations > 0 && tot.trunc_applied > 0 && tot.trunc_rows > 0,
                      "no truncation was exercised (%d committed, %ld deliveries applied, %ld "
                      "rows tombstoned)",
                      tot.truncations, tot.trunc_applied, tot.trunc_rows);
    }
}
END_TEST

static Suite *convergence_suite(void)
{
    Suite *s = suite_create("convergence");
    TCase *tc = tcase_create("convergence");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, test_convergence);
    suite_add_tcase(s, tc);
    return s;
}

IT_MAIN(.name = "convergence", .setup = setup, .teardown = teardown, .suite = convergence_suite)
