/* test_stream.c -- hms-sync run end to end against real PostgreSQL and
 * RabbitMQ: the events a queue receives, the slot's confirmed position under
 * kill -9, nacks, returns and idleness, and the one-line errors. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "it.h"

static it_env_t g_env;
static char *g_source; /* the event source this database must produce */

/* One test's slot, exchange, consumer and connector; torn down even when the
 * test fails (Check runs checked teardowns after a failed test, also with
 * CK_FORK=no). */
typedef struct {
    it_bus_t bus;
    it_proc_t conn;
    it_proc_t conn2;
} fx_t;

static fx_t F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    ck_assert_int_eq(it_bus_open(&g_env, &F.bus, false), 0);
}

static void fx_teardown(void)
{
    it_proc_kill(&F.conn);
    it_proc_kill(&F.conn2);
    it_bus_close(&g_env, &F.bus);
}

/* Prints the connector's log on stderr: what a failing test leaves behind. */
static void dump_log(const it_proc_t *p, const char *what)
{
    char *out = it_proc_output(p);
    fprintf(stderr, "---- %s (%s) ----\n%s---- end ----\n", what, p->log, out ? out : "");
    free(out);
}

static void start_connector(it_proc_t *p, const char *tag, const char *const extra[])
{
    ck_assert_int_eq(it_conn_start(&g_env, p, tag, F.bus.slot, F.bus.exchange, extra), 0);
    if (it_pg_wait_slot_active(g_env.pg, F.bus.slot, 30000) != 0) {
        dump_log(p, tag);
        ck_abort_msg("connector did not start streaming from slot %s", F.bus.slot);
    }
}

/* ---- received events ---- */

/* Every distinct event received, by id, and in arrival order. */
typedef struct {
    json_object *by_id;  /* id -> body string of the first arrival */
    json_object *order;  /* parsed events, first arrivals, in arrival order */
    json_object *events; /* parsed events, every arrival (duplicates too) */
    size_t received;
    size_t dups;
    uint64_t max_lsn;
} coll_t;

static void coll_init(coll_t *c)
{
    memset(c, 0, sizeof *c);
    c->by_id = json_object_new_object();
    c->order = json_object_new_array();
    c->events = json_object_new_array();
}

static void coll_free(coll_t *c)
{
    json_object_put(c->by_id);
    json_object_put(c->order);
    json_object_put(c->events);
}

static size_t coll_count(const coll_t *c)
{
    return json_object_array_length(c->order);
}

/* Checks one message against the contract and records it; a duplicate must
 * carry the identical body. */
static void coll_add(coll_t *c, it_msg_t *m)
{
    char why[512];
    json_object *ev = it_event_check(m, g_source, why, sizeof why);
    ck_assert_msg(ev != NULL, "event violates the contract: %s", why);
    const char *id = it_json_str(ev, "id");
    json_object *prev = it_json_get(c->by_id, id);
    c->received++;
    json_object_array_add(c->events, json_object_get(ev));
    if (prev) {
        ck_assert_msg(strcmp(json_object_get_string(prev), m->body) == 0,
                      "duplicate %s with a different body:\n%s\n%s", id,
                      json_object_get_string(prev), m->body);
        c->dups++;
        json_object_put(ev);
        return;
    }
    json_object_object_add(c->by_id, id, json_object_new_string(m->body));
    json_object_array_add(c->order, ev);
    uint64_t lsn = 0;
    it_lsn_parse(it_json_str(ev, "lsn"), &lsn);
    if (lsn > c->max_lsn)
        c->max_lsn = lsn;
}

/* Takes what is already waiting, without blocking long. */
static void coll_drain(coll_t *c, it_amqp_t *a)
{
    it_msg_t m;
    int r;
    while ((r = it_amqp_get(a, 1, &m)) == 1) {
        coll_add(c, &m);
        it_msg_free(&m);
    }
    ck_assert_int_ge(r, 0);
}

/* Receives until `want` distinct events are in or timeout_ms pass. */
static size_t coll_until(coll_t *c, it_amqp_t *a, size_t want, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    while (coll_count(c) < want && it_now_ms() < deadline) {
        it_msg_t m;
        int r = it_amqp_get(a, 200, &m);
        ck_assert_int_ge(r, 0);
        if (r == 1) {
            coll_add(c, &m);
            it_msg_free(&m);
        }
    }
    return coll_count(c);
}

static uint64_t ev_lsn(json_object *ev)
{
    uint64_t lsn = 0;
    it_lsn_parse(it_json_str(ev, "lsn"), &lsn);
    return lsn;
}

static unsigned ev_ordinal(json_object *ev)
{
    uint64_t lsn;
    unsigned ord = 0;
    it_event_id_parse(it_json_str(ev, "id"), &lsn, &ord);
    return ord;
}

static int cmp_pos(const void *a, const void *b)
{
    json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
    uint64_t lx = ev_lsn(x), ly = ev_lsn(y);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    unsigned ox = ev_ordinal(x), oy = ev_ordinal(y);
    return ox < oy ? -1 : ox > oy;
}

/* Distinct events sorted by (commit LSN, ordinal): a borrowed, malloc'd array. */
static json_object **coll_sorted(const coll_t *c)
{
    size_t n = coll_count(c);
    json_object **v = calloc(n ? n : 1, sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_object_array_get_idx(c->order, i);
    qsort(v, n, sizeof *v, cmp_pos);
    return v;
}

/* Records the types expected for each subject, in commit order. */
static void expect(json_object *want, json_object *ids, const char *type)
{
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        const char *id = json_object_get_string(json_object_array_get_idx(ids, i));
        json_object *list = it_json_get(want, id);
        if (!list) {
            list = json_object_new_array();
            json_object_object_add(want, id, list);
        }
        json_object_array_add(list, json_object_new_string(type));
    }
    json_object_put(ids);
}

#define CREATED "gov.hms.ehr.IncidentCreated.v1"
#define UPDATED "gov.hms.ehr.IncidentUpdated.v1"
#define DELETED "gov.hms.ehr.IncidentDeleted.v1"

/* (1) Transactions of mixed sizes arrive as exactly the expected events. */
START_TEST(test_stream_mixed)
{
    PGconn *pg = g_env.pg;
    ck_assert_int_eq(it_amqp_queue(&F.bus.amqp, F.bus.exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&F.bus.amqp), 0);
    start_connector(&F.conn, "stream", NULL);

    json_object *want = json_object_new_object();
    /* T1: one row, a region with every character a routing key cannot carry. */
    json_object *first = it_pg_column(
        pg, "INSERT INTO incidents (region, summary) VALUES ('a.b*c#d', 'one') RETURNING id");
    ck_assert_ptr_nonnull(first);
    char first_id[64];
    snprintf(first_id, sizeof first_id, "%s",
             json_object_get_string(json_object_array_get_idx(first, 0)));
    expect(want, first, CREATED);
    /* T2: three single-row statements in one transaction. */
    ck_assert_int_eq(it_pg_exec(pg, "BEGIN"), 0);
    char three[3][64];
    const char *regions[] = {"north", "south", "east"};
    for (int i = 0; i < 3; i++) {
        json_object *ids = it_pg_column(
            pg, "INSERT INTO incidents (region, severity) VALUES ('%s', %d) RETURNING id",
            regions[i], i + 1);
        ck_assert_ptr_nonnull(ids);
        snprintf(three[i], sizeof three[i], "%s",
                 json_object_get_string(json_object_array_get_idx(ids, 0)));
        expect(want, ids, CREATED);
    }
    ck_assert_int_eq(it_pg_exec(pg, "COMMIT"), 0);
    /* T3: 100 rows from one statement. */
    expect(want,
           it_pg_column(pg, "INSERT INTO incidents (region, summary, reported_by) "
                            "SELECT 'west', 'bulk ' || g, 'nurse ' || g "
                            "FROM generate_series(1, 100) g RETURNING id"),
           CREATED);
    /* T4: a multi-row VALUES insert (several changes at one WAL position). */
    expect(want,
           it_pg_column(pg, "INSERT INTO incidents (region, summary) VALUES "
                            "('multi', 'x'), ('multi', 'y'), ('multi', NULL) RETURNING id"),
           CREATED);
    /* T5: an UPDATE touching 100 rows. */
    expect(want,
           it_pg_column(pg, "UPDATE incidents SET status = 'closed' WHERE region = 'west' "
                            "RETURNING id"),
           UPDATED);
    /* T6: one row updated twice in a transaction. */
    ck_assert_int_eq(it_pg_exec(pg, "BEGIN"), 0);
    expect(want,
           it_pg_column(pg, "UPDATE incidents SET severity = 1 WHERE id = '%s' RETURNING id",
                        first_id),
           UPDATED);
    expect(want,
           it_pg_column(pg, "UPDATE incidents SET summary = 'twice' WHERE id = '%s' RETURNING id",
                        first_id),
           UPDATED);
    ck_assert_int_eq(it_pg_exec(pg, "COMMIT"), 0);
    /* T7: deletes, one by key and three by predicate. */
    ck_assert_int_eq(it_pg_exec(pg, "BEGIN"), 0);
    expect(want, it_pg_column(pg, "DELETE FROM incidents WHERE id = '%s' RETURNING id", three[1]),
           DELETED);
    expect(want, it_pg_column(pg, "DELETE FROM incidents WHERE region = 'multi' RETURNING id"),
           DELETED);
    ck_assert_int_eq(it_pg_exec(pg, "COMMIT"), 0);
    const size_t ntx = 7, nev = 1 + 3 + 100 + 3 + 100 + 2 + 4;
    const size_t tx_sizes[] = {1, 3, 100, 3, 100, 2, 4};

    coll_t c;
    coll_init(&c);
    size_t got = coll_until(&c, &F.bus.amqp, nev, 60000);
    if (got != nev)
        dump_log(&F.conn, "connector");
    ck_assert_uint_eq(got, nev);
    /* Nothing more may come: no duplicates, no other traffic. */
    size_t before = c.received;
    it_msg_t m;
    int r = it_amqp_get(&F.bus.amqp, 1500, &m);
    if (r == 1) {
        coll_add(&c, &m);
        it_msg_free(&m);
    }
    ck_assert_msg(r == 0, "unexpected extra message after the %zu expected", before);
    ck_assert_uint_eq(c.dups, 0);

    /* Per subject: exactly the expected types, in commit order, versions
     * increasing with each update and kept by the delete. */
    json_object *seen = json_object_new_object();
    for (size_t i = 0; i < got; i++) {
        json_object *ev = json_object_array_get_idx(c.order, i);
        const char *subj = it_json_str(ev, "subject");
        json_object *list = it_json_get(seen, subj);
        if (!list) {
            list = json_object_new_array();
            json_object_object_add(seen, subj, list);
        }
        json_object_array_add(list, json_object_get(ev));
    }
    ck_assert_int_eq(json_object_object_length(seen), json_object_object_length(want));
    json_object_object_foreach(want, subj, types)
    {
        json_object *list = it_json_get(seen, subj);
        ck_assert_msg(list != NULL, "no event for incident %s", subj);
        ck_assert_uint_eq(json_object_array_length(list), json_object_array_length(types));
        int64_t prev_version = 0;
        json_object *prev = NULL;
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            json_object *ev = json_object_array_get_idx(list, i);
            const char *type = it_json_str(ev, "type");
            const char *wt = json_object_get_string(json_object_array_get_idx(types, i));
            ck_assert_msg(strcmp(type, wt) == 0, "incident %s event %zu: %s, want %s", subj, i,
                          type, wt);
            int64_t v = json_object_get_int64(it_json_get(ev, "version"));
            /* Versions come from one sequence shared by all incidents:
             * each write of this one draws a higher one, not the next. */
            if (strcmp(type, CREATED) == 0)
                ck_assert_int_ge(v, 1);
            else if (strcmp(type, UPDATED) == 0)
                ck_assert_int_gt(v, prev_version);
            else
                ck_assert_int_eq(v, prev_version);
            if (prev)
                ck_assert_msg(cmp_pos(&prev, &ev) < 0, "incident %s: %s arrived after %s", subj,
                              it_json_str(ev, "id"), it_json_str(prev, "id"));
            prev_version = v;
            prev = ev;
        }
    }
    json_object_put(seen);
    json_object_put(want);

    /* Per transaction: one commit LSN, ordinals 0..n-1, one txid and time. */
    json_object **v = coll_sorted(&c);
    size_t tx = 0, start = 0;
    for (size_t i = 1; i <= got; i++) {
        if (i < got && ev_lsn(v[i]) == ev_lsn(v[start]))
            continue;
        ck_assert_uint_lt(tx, ntx);
        ck_assert_uint_eq(i - start, tx_sizes[tx]);
        for (size_t k = start; k < i; k++) {
            ck_assert_uint_eq(ev_ordinal(v[k]), k - start);
            ck_assert_int_eq(json_object_get_int64(it_json_get(v[k], "txid")),
                             json_object_get_int64(it_json_get(v[start], "txid")));
            ck_assert_str_eq(it_json_str(v[k], "time"), it_json_str(v[start], "time"));
        }
        tx++;
        start = i;
    }
    ck_assert_uint_eq(tx, ntx);
    /* The region with '.', '*' and '#' made a routing key word of its own. */
    json_object *e0 = v[0];
    ck_assert_str_eq(it_json_str(e0, "subject"), first_id);
    ck_assert_str_eq(it_json_str(it_json_get(e0, "data"), "region"), "a.b*c#d");
    free(v);

    /* The slot confirms past the last commit. */
    ck_assert_int_eq(it_pg_wait_confirmed(pg, F.bus.slot, c.max_lsn + 1, 15000), 0);
    coll_free(&c);
}
END_TEST

/* (2) kill -9 mid-stream, restart: every event at least once, duplicates
 * identical. */
START_TEST(test_stream_kill9)
{
    PGconn *pg = g_env.pg;
    ck_assert_int_eq(it_amqp_queue(&F.bus.amqp, F.bus.exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&F.bus.amqp), 0);
    start_connector(&F.conn, "kill9", NULL);

    const int ntx = 300, per_tx = 10;
    json_object *subjects = json_object_new_object();
    coll_t c;
    coll_init(&c);
    bool killed = false;
    size_t at_kill = 0;
    for (int t = 0; t < ntx; t++) {
        json_object *ids = it_pg_column(pg,
                                        "INSERT INTO incidents (region, summary) "
                                        "SELECT 'r' || (g %% 7), 'kill ' || g "
                                        "FROM generate_series(1, %d) g RETURNING id",
                                        per_tx);
        ck_assert_ptr_nonnull(ids);
        for (size_t i = 0; i < json_object_array_length(ids); i++)
            json_object_object_add(subjects,
                                   json_object_get_string(json_object_array_get_idx(ids, i)), NULL);
        json_object_put(ids);
        coll_drain(&c, &F.bus.amqp);
        if (!killed && coll_count(&c) >= 600) {
            it_proc_signal(&F.conn, SIGKILL);
            ck_assert_int_eq(it_proc_wait(&F.conn, 10000), 128 + SIGKILL);
            killed = true;
            at_kill = coll_count(&c);
        }
    }
    if (!killed) {
        /* The writer outran the connector: let a third of the events
         * through, then kill it while the rest are flowing. */
        coll_until(&c, &F.bus.amqp, (size_t)(ntx * per_tx) / 3, 30000);
        it_proc_signal(&F.conn, SIGKILL);
        ck_assert_int_eq(it_proc_wait(&F.conn, 10000), 128 + SIGKILL);
        at_kill = coll_count(&c);
    }
    ck_assert_uint_lt(at_kill, (size_t)(ntx * per_tx));

    start_connector(&F.conn2, "kill9-restart", NULL);
    size_t want = (size_t)(ntx * per_tx);
    size_t got = coll_until(&c, &F.bus.amqp, want, 120000);
    if (got != want)
        dump_log(&F.conn2, "restarted connector");
    ck_assert_uint_eq(got, want);
    for (size_t i = 0; i < got; i++) {
        const char *subj = it_json_str(json_object_array_get_idx(c.order, i), "subject");
        ck_assert_msg(json_object_object_get_ex(subjects, subj, NULL), "unknown incident %s", subj);
    }
    ck_assert_int_eq(json_object_object_length(subjects), (int)want);
    fprintf(stderr, "kill9: %zu distinct events, %zu received before the kill, %zu duplicates\n",
            got, at_kill, c.dups);
    ck_assert_int_eq(it_pg_wait_confirmed(pg, F.bus.slot, c.max_lsn + 1, 15000), 0);
    json_object_put(subjects);
    coll_free(&c);
}
END_TEST

/* Samples the slot's confirmed position for a while: the highest seen. */
static uint64_t confirmed_over(const char *slot, int ms)
{
    uint64_t hi = 0;
    double until = it_now_ms() + ms;
    while (it_now_ms() < until) {
        uint64_t at = it_pg_confirmed(g_env.pg, slot);
        if (at > hi)
            hi = at;
        it_sleep_ms(200);
    }
    return hi;
}

static const char *const fast_retry[] = {"--retry_min", "100ms", "--retry_max", "1s", NULL};

/* (3) A full queue nacks: the slot waits, then every event arrives. */
START_TEST(test_stream_nack)
{
    PGconn *pg = g_env.pg;
    const long cap = 5;
    const int n = 20;
    ck_assert_int_eq(it_amqp_queue(&F.bus.amqp, F.bus.exchange, cap, true), 0);
    start_connector(&F.conn, "nack", fast_retry);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(
            it_pg_exec(pg, "INSERT INTO incidents (region, summary) VALUES ('nack', 'n%d')", i), 0);

    double deadline = it_now_ms() + 20000;
    long ready = 0;
    while ((ready = it_amqp_ready(&F.bus.amqp)) < cap && it_now_ms() < deadline)
        it_sleep_ms(100);
    ck_assert_int_eq(ready, cap);
    uint64_t stuck = confirmed_over(F.bus.slot, 3000);
    ck_assert_int_eq(it_amqp_ready(&F.bus.amqp), cap);
    if (it_proc_wait(&F.conn, 0) >= 0) {
        dump_log(&F.conn, "connector");
        ck_abort_msg("the connector exited (%d) on a nack instead of retrying", F.conn.status);
    }

    ck_assert_int_eq(it_amqp_consume(&F.bus.amqp), 0);
    coll_t c;
    coll_init(&c);
    size_t got = coll_until(&c, &F.bus.amqp, (size_t)n, 60000);
    if (got != (size_t)n)
        dump_log(&F.conn, "connector");
    ck_assert_uint_eq(got, (size_t)n);
    json_object **v = coll_sorted(&c);
    uint64_t refused = ev_lsn(v[cap]);
    free(v);
    ck_assert_msg(stuck <= refused,
                  "slot confirmed %s while the event committed at %s was refused by the broker",
                  it_lsn_str(stuck), it_lsn_str(refused));
    ck_assert_int_eq(it_pg_wait_confirmed(pg, F.bus.slot, c.max_lsn + 1, 15000), 0);
    coll_free(&c);
}
END_TEST

/* (4) An unroutable event is returned: the slot waits until a queue is bound. */
START_TEST(test_stream_return)
{
    PGconn *pg = g_env.pg;
    const int n = 3;
    start_connector(&F.conn, "return", fast_retry);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(
            it_pg_exec(pg, "INSERT INTO incidents (region, summary) VALUES ('ret', 'r%d')", i), 0);
    uint64_t stuck = confirmed_over(F.bus.slot, 3000);
    if (it_proc_wait(&F.conn, 0) >= 0) {
        dump_log(&F.conn, "connector");
        ck_abort_msg("the connector exited (%d) on a return instead of retrying", F.conn.status);
    }

    ck_assert_int_eq(it_amqp_queue(&F.bus.amqp, F.bus.exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&F.bus.amqp), 0);
    coll_t c;
    coll_init(&c);
    size_t got = coll_until(&c, &F.bus.amqp, (size_t)n, 60000);
    if (got != (size_t)n)
        dump_log(&F.conn, "connector");
    ck_assert_uint_eq(got, (size_t)n);
    json_object **v = coll_sorted(&c);
    uint64_t first = ev_lsn(v[0]);
    free(v);
    ck_assert_msg(stuck <= first,
                  "slot confirmed %s while the event committed at %s was unroutable",
                  it_lsn_str(stuck), it_lsn_str(first));
    ck_assert_int_eq(it_pg_wait_confirmed(pg, F.bus.slot, c.max_lsn + 1, 15000), 0);
    coll_free(&c);
}
END_TEST

/* (5) Writes in another database only: the slot still advances. */
START_TEST(test_stream_idle_advances)
{
    ck_assert_int_eq(it_amqp_queue(&F.bus.amqp, F.bus.exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&F.bus.amqp), 0);
    start_connector(&F.conn, "idle", NULL);

    char other[160];
    snprintf(other, sizeof other, "%s_other", g_env.dbname);
    PGconn *admin = it_pg_connect(getenv("HMS_TEST_PG"));
    ck_assert_ptr_nonnull(admin);
    ck_assert_int_eq(it_pg_exec(admin, "SET client_min_messages = warning"), 0);
    ck_assert_int_eq(it_pg_exec(admin, "DROP DATABASE IF EXISTS %s", other), 0);
    ck_assert_int_eq(it_pg_exec(admin, "CREATE DATABASE %s", other), 0);
    char conninfo[IT_CONNINFO_MAX];
    snprintf(conninfo, sizeof conninfo, "%s dbname=%s", getenv("HMS_TEST_PG"), other);
    PGconn *o = it_pg_connect(conninfo);
    ck_assert_ptr_nonnull(o);
    uint64_t c0 = it_pg_confirmed(g_env.pg, F.bus.slot);
    ck_assert_int_eq(it_pg_exec(o, "CREATE TABLE busy (x int)"), 0);
    ck_assert_int_eq(it_pg_exec(o, "BEGIN"), 0);
    ck_assert_int_eq(it_pg_exec(o, "INSERT INTO busy SELECT generate_series(1, 1000)"), 0);
    /* The commit record lies at or after this position. */
    uint64_t target = it_pg_insert_lsn(o);
    ck_assert_int_eq(it_pg_exec(o, "COMMIT"), 0);
    PQfinish(o);

    int rc = it_pg_wait_confirmed(g_env.pg, F.bus.slot, target, 15000);
    if (rc != 0)
        dump_log(&F.conn, "connector");
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_gt(it_pg_confirmed(g_env.pg, F.bus.slot), c0);
    it_msg_t m;
    ck_assert_int_eq(it_amqp_get(&F.bus.amqp, 500, &m), 0);
    it_pg_exec(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", other);
    PQfinish(admin);
}
END_TEST

/* ---- (6) clear errors ---- */

/* Runs hms-sync with argv; asserts the exit code and that its output is one
 * line containing `needle` (when not NULL).  Returns elapsed ms. */
static double expect_error(const char *tag, const char *const argv[], int want_code,
                           const char *needle, int timeout_ms)
{
    it_proc_t p;
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, tag, argv), 0);
    int code = it_proc_wait(&p, timeout_ms);
    double elapsed = it_now_ms() - p.start_ms;
    it_proc_kill(&p);
    char *out = it_proc_output(&p);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(code == want_code, "%s: exit %d (-1: still running after %d ms), want %d: %s",
                  tag, code, timeout_ms, want_code, out);
    ck_assert_msg(it_count_lines(out) == 1, "%s: want one line, got:\n%s", tag, out);
    if (needle)
        ck_assert_msg(strstr(out, needle) != NULL, "%s: line does not mention '%s': %s", tag,
                      needle, out);
    fprintf(stderr, "%s: exit %d after %.0f ms: %s", tag, code, elapsed, out);
    free(out);
    return elapsed;
}

/* A loopback port nothing listens on: one the kernel just handed out and
 * that was released again. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

START_TEST(test_err_bad_conninfo)
{
    const char *argv[] = {"run", "--pg", "host=127.0.0.1 nonsense", "--amqp", g_env.amqp_url, NULL};
    expect_error("err-conninfo", argv, 2, "pg", 10000);
}
END_TEST

START_TEST(test_err_bad_amqp_url)
{
    const char *argv[] = {"run", "--pg", g_env.conninfo, "--amqp", "http://nowhere/", NULL};
    expect_error("err-amqp-url", argv, 2, "amqp", 10000);
}
END_TEST

START_TEST(test_err_pg_unreachable)
{
    char ci[IT_CONNINFO_MAX], port[16];
    snprintf(port, sizeof port, "%d", closed_port());
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%s user=hms_sync password=x dbname=%s", port,
             g_env.dbname);
    const char *argv[] = {"run",          "--pg",        ci,         "--amqp",
                          g_env.amqp_url, "--slot",      F.bus.slot, "--connect_timeout",
                          "2s",           "--log_level", "error",    NULL};
    expect_error("err-pg-unreachable", argv, 1, port, 30000);
}
END_TEST

START_TEST(test_err_amqp_unreachable)
{
    char url[128], port[16];
    snprintf(port, sizeof port, "%d", closed_port());
    snprintf(url, sizeof url, "amqp://guest:guest@127.0.0.1:%s/", port);
    const char *argv[] = {"run", "--pg",        g_env.conninfo, "--amqp",
                          url,   "--slot",      F.bus.slot,     "--connect_timeout",
                          "2s",  "--log_level", "error",        NULL};
    expect_error("err-amqp-unreachable", argv, 1, port, 30000);
}
END_TEST

START_TEST(test_err_wrong_password)
{
    char ci[IT_CONNINFO_MAX];
    snprintf(ci, sizeof ci, "host=%s port=%s user=hms_sync password=wrong dbname=%s", g_env.host,
             g_env.port, g_env.dbname);
    const char *argv[] = {"run",      "--pg",        ci,      "--amqp", g_env.amqp_url, "--slot",
                          F.bus.slot, "--log_level", "error", NULL};
    expect_error("err-password", argv, 1, "password", 30000);
}
END_TEST

START_TEST(test_err_no_publication)
{
    const char *argv[] = {
        "run",      "--pg",       g_env.conninfo, "--amqp",        g_env.amqp_url, "--slot",
        F.bus.slot, "--exchange", F.bus.exchange, "--publication", "nope",         "--log_level",
        "error",    NULL};
    it_proc_t p;
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, "err-publication", argv), 0);
    /* pgoutput only looks the publication up when a change arrives. */
    int code = it_proc_wait(&p, 2000);
    if (code < 0) {
        it_pg_exec(g_env.pg, "INSERT INTO incidents (region) VALUES ('nopub')");
        code = it_proc_wait(&p, 20000);
    }
    it_proc_kill(&p);
    char *out = it_proc_output(&p);
    ck_assert_msg(code == 1, "exit %d, want 1: %s", code, out ? out : "");
    ck_assert_msg(it_count_lines(out) == 1, "want one line, got:\n%s", out);
    ck_assert_msg(strstr(out, "nope") != NULL, "line does not name the publication: %s", out);
    fprintf(stderr, "err-publication: %s", out);
    free(out);
}
END_TEST

START_TEST(test_err_slot_busy)
{
    start_connector(&F.conn, "slot-holder", NULL);
    const char *argv[] = {"run",          "--pg",        g_env.conninfo, "--amqp",
                          g_env.amqp_url, "--slot",      F.bus.slot,     "--exchange",
                          F.bus.exchange, "--slot_wait", "2s",           "--log_level",
                          "error",        NULL};
    double ms = expect_error("err-slot-busy", argv, 1, F.bus.slot, 30000);
    ck_assert_msg(ms >= 1500, "gave up after %.0f ms, before --slot_wait 2s", ms);
    ck_assert_msg(it_proc_wait(&F.conn, 0) < 0, "the slot's holder exited");
}
END_TEST

/* Not covered here, deliberately:
 * - a slot whose wal_status is "lost": producing one needs max_slot_wal_keep_size
 *   on the shared scratch cluster plus enough WAL to pass it, too slow and too
 *   intrusive for the other users of that cluster;
 * - wal_level not logical: needs a second PostgreSQL cluster (initdb + start
 *   costs more than this whole program). */

/* migrate --publication NAME makes that publication, and run --publication
 * NAME streams from it. */
START_TEST(test_custom_publication)
{
    char pub[64];
    snprintf(pub, sizeof pub, "hms_it_pub_%d", (int)getpid());
    const char *mig[] = {HMS_BIN,         "migrate", "--pg", g_env.super_conninfo,
                         "--publication", pub,       NULL};
    ck_assert_int_eq(it_cmd_run(&g_env, "migrate-publication", 60000, mig), 0);
    char *tables = it_pg_value(g_env.pg,
                               "SELECT string_agg(schemaname || '.' || tablename, ',') "
                               "FROM pg_publication_tables WHERE pubname = '%s'",
                               pub);
    ck_assert_msg(tables != NULL && strcmp(tables, "public.incidents") == 0,
                  "publication %s carries %s", pub, tables ? tables : "nothing");
    free(tables);

    /* Told apart from the default publication: this one publishes inserts
     * only, so an update between two inserts must not arrive. */
    ck_assert_int_eq(it_pg_exec(g_env.pg, "ALTER PUBLICATION %s SET (publish = 'insert')", pub), 0);
    ck_assert_int_eq(it_amqp_queue(&F.bus.amqp, F.bus.exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&F.bus.amqp), 0);
    const char *const extra[] = {"--publication", pub, NULL};
    start_connector(&F.conn, "custom-publication", extra);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "INSERT INTO incidents (region) VALUES ('pub1')"), 0);
    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "UPDATE incidents SET severity = 1 WHERE region = 'pub1'"), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "INSERT INTO incidents (region) VALUES ('pub2')"), 0);
    for (int i = 1; i <= 2; i++) {
        it_msg_t m;
        ck_assert_int_eq(it_amqp_get(&F.bus.amqp, 30000, &m), 1);
        bool created = strcmp(m.type, CREATED) == 0;
        it_msg_free(&m);
        ck_assert_msg(created, "event %d is not an IncidentCreated: run ignored --publication", i);
    }
    it_proc_kill(&F.conn);
    it_pg_drop_slot(g_env.pg, F.bus.slot);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DROP PUBLICATION %s", pub), 0);
}
END_TEST

/* SIGTERM: a clean stop within the shutdown timeout, final feedback sent. */
START_TEST(test_sigterm)
{
    ck_assert_int_eq(it_amqp_queue(&F.bus.amqp, F.bus.exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&F.bus.amqp), 0);
    const char *const extra[] = {"--shutdown_timeout", "5s", "--feedback_interval", "10s", NULL};
    start_connector(&F.conn, "sigterm", extra);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(
            it_pg_exec(g_env.pg, "INSERT INTO incidents (region) VALUES ('term%d')", i), 0);
    coll_t c;
    coll_init(&c);
    ck_assert_uint_eq(coll_until(&c, &F.bus.amqp, 5, 30000), 5);
    it_proc_signal(&F.conn, SIGTERM);
    int code = it_proc_wait(&F.conn, 6500); /* --shutdown_timeout 5s, plus slack */
    if (code != 0)
        dump_log(&F.conn, "connector");
    ck_assert_int_eq(code, 0);
    ck_assert_int_eq(it_pg_wait_confirmed(g_env.pg, F.bus.slot, c.max_lsn + 1, 3000), 0);
    coll_free(&c);
}
END_TEST

static Suite *stream_suite(void)
{
    Suite *s = suite_create("stream");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"mixed", test_stream_mixed},
        {"kill9", test_stream_kill9},
        {"nack", test_stream_nack},
        {"return", test_stream_return},
        {"idle", test_stream_idle_advances},
        {"errors", test_err_bad_conninfo},
        {"errors", test_err_bad_amqp_url},
        {"errors", test_err_pg_unreachable},
        {"errors", test_err_amqp_unreachable},
        {"errors", test_err_wrong_password},
        {"errors", test_err_no_publication},
        {"errors", test_err_slot_busy},
        {"publication", test_custom_publication},
        {"sigterm", test_sigterm},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

IT_MAIN(.name = "stream", .env = &g_env, .source = &g_source, .suite = stream_suite)
