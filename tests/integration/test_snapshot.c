/* test_snapshot.c -- snapshots alongside the change stream, against real
 * PostgreSQL and RabbitMQ: a table that already holds 50,000 rows, written
 * to (inserts, updates, deletes) all through its initial snapshot, with the
 * connector killed (-9) in the middle.  What subscribers end with is
 * checked, not only what was published: a subscriber that applies every
 * event in arrival order with no version check, and the last-write-wins
 * warehouse of `hms-sync consume`, both end equal to the source.  Then a
 * backfill for one queue (nothing reaches the exchange), a snapshot of no
 * rows, rows deleted and updated while their chunk is read, and a cancelled
 * snapshot. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"
#include "it_sub.h"

static it_env_t g_env;
static char *g_source;
static it_subdb_t g_sub;

#define ROWS 50000
#define TYPE_SNAPSHOT "gov.hms.ehr.IncidentSnapshot.v1"

/* Everything one test starts, torn down even when it fails. */
static struct {
    char slot[64], exchange[128], dlx[160], queue[200], naive_q[200];
    it_amqp_t ctl, naive;
    it_proc_t conn, sub;
    long events, snapshot_events, applied;
} E;

static void start_connector(const char *tag)
{
    const char *const extra[] = {"--snapshot", "initial", "--snapshot_chunk", "1000", NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &E.conn, tag, E.slot, E.exchange, extra), 0);
    if (it_pg_wait_slot_active(g_env.pg, E.slot, 30000) != 0) {
        it_proc_dump(&E.conn, NULL);
        ck_abort_msg("the connector never streamed from %s", E.slot);
    }
}

static void spawn_warehouse(void)
{
    snprintf(E.queue, sizeof E.queue, "%s.warehouse", E.exchange);
    if (it_consume_start(&g_env, &E.sub, "snap-warehouse", g_sub.conninfo, E.exchange, E.dlx,
                         E.queue, "hms_sync.apply_warehouse", NULL) != 0)
        ck_abort_msg("the warehouse subscriber never started consuming");
}

static void fixture_up(void)
{
    memset(&E, 0, sizeof E);
    it_env_slot_name(&g_env, E.slot, sizeof E.slot);
    it_env_exchange_name(&g_env, E.exchange, sizeof E.exchange);
    snprintf(E.dlx, sizeof E.dlx, "%s.dlx", E.exchange);
    snprintf(E.naive_q, sizeof E.naive_q, "%s.naive", E.exchange);
    ck_assert_int_eq(it_amqp_open(&E.ctl, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&E.ctl, E.exchange), 0);
    ck_assert_int_eq(it_amqp_declare_dlx(&E.ctl, E.dlx), 0);
    /* The naive subscriber's queue: durable, so it keeps every event while
     * the test is busy writing. */
    ck_assert_int_eq(it_amqp_open(&E.naive, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_queue_durable(&E.naive, E.naive_q, E.exchange), 0);
    ck_assert_int_eq(it_amqp_consume(&E.naive), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents"), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM hms_sync.snapshots"), 0);
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "TRUNCATE incident_facts, investigation_tasks, cases, "
                                          "hms_sync.inbox, hms_sync.truncations, naive"),
                     0);
}

static void fixture_down(void)
{
    it_proc_kill(&E.sub);
    it_proc_kill(&E.conn);
    if (E.naive.conn)
        it_amqp_close(&E.naive);
    it_amqp_close(&E.ctl);
    it_amqp_drop_subscriber(g_env.amqp_url, E.naive_q, NULL, NULL);
    if (E.queue[0])
        it_amqp_drop_subscriber(g_env.amqp_url, E.queue, NULL, NULL);
    it_amqp_drop_subscriber(g_env.amqp_url, NULL, E.exchange, E.dlx);
    it_pg_drop_slot(g_env.pg, E.slot);
}

/* ---- the naive subscriber: arrival order, no version check ---- */

/* Applies one event to table naive as a subscriber that trusts the order
 * of its queue would: a row event replaces the row, a delete removes it, a
 * truncation empties the table. */
static void naive_apply(json_object *ev)
{
    const char *type = it_json_str(ev, "type");
    const char *subject = it_json_str(ev, "subject");
    if (strstr(type, "Truncated") != NULL) {
        ck_assert_int_eq(it_pg_exec(g_sub.pg, "DELETE FROM naive"), 0);
        return;
    }
    char *lit = PQescapeLiteral(g_sub.pg, subject, strlen(subject));
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "DELETE FROM naive WHERE id = %s", lit), 0);
    if (strstr(type, "Deleted") == NULL) {
        const char *data =
            json_object_to_json_string_ext(it_json_get(ev, "data"), JSON_C_TO_STRING_PLAIN);
        char *dlit = PQescapeLiteral(g_sub.pg, data, strlen(data));
        ck_assert_int_eq(it_pg_exec(g_sub.pg,
                                    "INSERT INTO naive SELECT * FROM "
                                    "jsonb_populate_record(NULL::naive, %s::jsonb)",
                                    dlit),
                         0);
        PQfreemem(dlit);
    }
    PQfreemem(lit);
}

/* Reads the naive queue until it has been quiet for quiet_ms, applying
 * every event (each checked against the contract) in one transaction per
 * batch. */
static void naive_drain(int quiet_ms)
{
    it_msg_t m;
    char why[512];
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "BEGIN"), 0);
    int in_tx = 0;
    while (it_amqp_get(&E.naive, quiet_ms, &m) == 1) {
        json_object *ev = it_event_check(&m, g_source, why, sizeof why);
        ck_assert_msg(ev != NULL, "published event breaks the contract: %s", why);
        if (strcmp(it_json_str(ev, "type"), TYPE_SNAPSHOT) == 0)
            E.snapshot_events++;
        E.events++;
        naive_apply(ev);
        json_object_put(ev);
        it_msg_free(&m);
        if (++in_tx == 1000) {
            ck_assert_int_eq(it_pg_exec(g_sub.pg, "COMMIT; BEGIN"), 0);
            in_tx = 0;
        }
    }
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "COMMIT"), 0);
}

/* ---- the source's writers ---- */

/* One transaction of a few random writes: updates and deletes of random
 * existing rows, and new rows. */
static void write_some(unsigned *seed)
{
    int op = (int)(rand_r(seed) % 10);
    if (op < 5)
        ck_assert_int_eq(it_pg_exec(g_env.pg,
                                    "UPDATE incidents SET severity = severity %% 5 + 1, summary = "
                                    "'edit ' || version WHERE id IN (SELECT id FROM incidents "
                                    "TABLESAMPLE SYSTEM_ROWS(3))"),
                         0);
    else if (op < 7)
        ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents WHERE id IN (SELECT id FROM "
                                              "incidents TABLESAMPLE SYSTEM_ROWS(2))"),
                         0);
    else
        ck_assert_int_eq(it_pg_exec(g_env.pg, "INSERT INTO incidents (region, severity, summary) "
                                              "SELECT 'live' || (g %% 4), 1 + g %% 5, 'new' FROM "
                                              "generate_series(1, 3) g"),
                         0);
}

static const char *state_of(const char *where_slot, char *buf, size_t n)
{
    char *v = it_pg_value(g_env.pg,
                          "SELECT state || ' ' || rows_done || '/' || coalesce(rows_total, -1) "
                          "FROM hms_sync.snapshots WHERE slot = '%s' ORDER BY requested_at DESC "
                          "LIMIT 1",
                          where_slot);
    snprintf(buf, n, "%s", v ? v : "(none)");
    free(v);
    return buf;
}

/* Waits for the slot to confirm everything written so far. */
static void await_confirmed(void)
{
    uint64_t lsn = it_pg_insert_lsn(g_env.pg);
    if (it_pg_wait_confirmed(g_env.pg, E.slot, lsn, 120000) != 0) {
        it_proc_dump(&E.conn, NULL);
        ck_abort_msg("the slot never confirmed %s", it_lsn_str(lsn));
    }
}

#define SOURCE_ROWS                                                                                \
    "SELECT id || '|' || region || '|' || severity || '|' || status || '|' || "                    \
    "coalesce(summary, '') || '|' || version FROM %s ORDER BY 1"

static void assert_equal(PGconn *a, const char *ta, PGconn *b, const char *tb, const char *what)
{
    json_object *x = it_pg_column(a, SOURCE_ROWS, ta);
    json_object *y = it_pg_column(b, SOURCE_ROWS, tb);
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    size_t nx = json_object_array_length(x), ny = json_object_array_length(y);
    if (!json_object_equal(x, y)) {
        size_t shown = 0;
        for (size_t i = 0, j = 0; (i < nx || j < ny) && shown < 10;) {
            const char *sx =
                i < nx ? json_object_get_string(json_object_array_get_idx(x, i)) : NULL;
            const char *sy =
                j < ny ? json_object_get_string(json_object_array_get_idx(y, j)) : NULL;
            int c = sx && sy ? strcmp(sx, sy) : sx ? -1 : 1;
            if (c == 0) {
                i++, j++;
                continue;
            }
            fprintf(stderr, "%s: %s %s\n", what,
                    c < 0 ? "source only:" : "replica only:", c < 0 ? sx : sy);
            shown++;
            c < 0 ? i++ : j++;
        }
        ck_abort_msg("%s differs from the source (%zu source rows, %zu replica rows)", what, nx,
                     ny);
    }
    json_object_put(x);
    json_object_put(y);
}

/* Waits until the warehouse has taken every event (its queue is empty and
 * its inbox stopped growing). */
static void await_warehouse(void)
{
    long last = -1, n;
    for (double stop = it_now_ms() + 180000; it_now_ms() < stop; it_sleep_ms(1000)) {
        n = it_pg_count(g_sub.pg, "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = '%s'",
                        E.queue);
        if (n == last && n > 0)
            return;
        last = n;
    }
    it_proc_dump(&E.sub, NULL);
    ck_abort_msg("the warehouse never settled (%ld events)", last);
}

/* (a) The initial snapshot of 50,000 rows, written to throughout, with a
 * kill -9 in the middle. */
START_TEST(test_initial_snapshot_under_load)
{
    unsigned seed = (unsigned)it_now_ms();
    fprintf(stderr, "snapshot: seed %u\n", seed);
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO incidents (region, severity, summary) SELECT 'r' || "
                                "(g %% 7), 1 + g %% 5, 'existing ' || g FROM "
                                "generate_series(1, %d) g",
                                ROWS),
                     0);
    spawn_warehouse();
    start_connector("snap-initial");
    char st[128];
    long writes = 0;
    bool killed = false;
    double stop = it_now_ms() + 240000;
    for (;;) {
        write_some(&seed);
        writes++;
        state_of(E.slot, st, sizeof st);
        long done = 0, total = 0;
        char state[32] = "";
        sscanf(st, "%31s %ld/%ld", state, &done, &total);
        if (!killed && done >= ROWS / 3) {
            /* Mid-snapshot: the chunk in hand and everything unconfirmed
             * are lost with the process; the restart resumes from the last
             * recorded chunk. */
            fprintf(stderr, "snapshot: kill -9 at %s after %ld write transactions\n", st, writes);
            it_proc_signal(&E.conn, SIGKILL);
            it_proc_wait(&E.conn, 10000);
            write_some(&seed);
            start_connector("snap-initial-again");
            killed = true;
        }
        if (strcmp(state, "done") == 0 && killed)
            break;
        if (strcmp(state, "failed") == 0 || it_now_ms() > stop) {
            it_proc_dump(&E.conn, NULL);
            ck_abort_msg("snapshot did not finish: %s", st);
        }
        /* Writes come in bursts of about half a second with a quiet
         * second and a bit between them: the snapshot then runs both ways,
         * paced while changes flow and at full speed in between. */
        it_sleep_ms(writes % 50 == 0 ? 1200 : 5);
    }
    /* Some more changes after it, then everything settles. */
    for (int i = 0; i < 20; i++)
        write_some(&seed);
    await_confirmed();
    naive_drain(3000);
    await_warehouse();
    fprintf(stderr,
            "snapshot: %ld write transactions, %ld events to the naive subscriber (%ld snapshot "
            "events), final state %s\n",
            writes + 20, E.events, E.snapshot_events, state_of(E.slot, st, sizeof st));
    ck_assert_int_ge(E.snapshot_events, ROWS / 2);
    assert_equal(g_env.pg, "incidents", g_sub.pg, "naive", "naive subscriber (arrival order)");
    assert_equal(g_env.pg, "incidents", g_sub.pg,
                 "(SELECT incident_id AS id, region, severity, status, summary, version FROM "
                 "incident_facts WHERE NOT deleted) f",
                 "last-write-wins warehouse");
}
END_TEST

/* (b) A backfill for one queue reaches that queue only; (c) one that
 * matches no row finishes with nothing published. */
START_TEST(test_targeted_and_empty)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO incidents (region, summary) SELECT 'q' || (g %% 3), "
                                "'row ' || g FROM generate_series(1, 300) g"),
                     0);
    start_connector("snap-targeted");
    /* The initial snapshot (every row) reaches the exchange. */
    char st[128];
    for (double stop = it_now_ms() + 60000;
         strncmp(state_of(E.slot, st, sizeof st), "done", 4) != 0; it_sleep_ms(100))
        ck_assert_msg(it_now_ms() < stop, "initial snapshot: %s", st);
    naive_drain(1500);
    ck_assert_int_eq(E.snapshot_events, 300);

    it_amqp_t target;
    char tq[200];
    snprintf(tq, sizeof tq, "%s.resync", E.exchange);
    ck_assert_int_eq(it_amqp_open(&target, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_queue_durable(&target, tq, "amq.direct"), 0);
    ck_assert_int_eq(it_amqp_consume(&target), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO hms_sync.snapshots (slot, where_sql, queue) VALUES "
                                "('%s', 'region = ''q1''', '%s')",
                                E.slot, tq),
                     0);
    long want = it_pg_count(g_env.pg, "SELECT count(*) FROM incidents WHERE region = 'q1'");
    ck_assert_int_ge(want, 0);
    long got = 0;
    it_msg_t m;
    char why[512];
    while (got < want && it_amqp_get(&target, 20000, &m) == 1) {
        json_object *ev = it_event_check(&m, g_source, why, sizeof why);
        ck_assert_msg(ev != NULL, "targeted event breaks the contract: %s", why);
        ck_assert_str_eq(it_json_str(ev, "type"), TYPE_SNAPSHOT);
        ck_assert_str_eq(it_json_str(it_json_get(ev, "data"), "region"), "q1");
        ck_assert_str_eq(m.exchange, "");
        ck_assert_str_eq(m.routing_key, tq);
        json_object_put(ev);
        it_msg_free(&m);
        got++;
    }
    ck_assert_int_eq(got, want);
    ck_assert_int_eq(it_amqp_get(&target, 500, &m), 0);
    /* Nothing of it on the exchange. */
    long before = E.events;
    naive_drain(1500);
    ck_assert_int_eq(E.events, before);

    /* (c) No rows: done, nothing published. */
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO hms_sync.snapshots (slot, where_sql) VALUES ('%s', "
                                "'region = ''nowhere''')",
                                E.slot),
                     0);
    for (double stop = it_now_ms() + 30000;; it_sleep_ms(100)) {
        state_of(E.slot, st, sizeof st);
        if (strcmp(st, "done 0/0") == 0)
            break;
        ck_assert_msg(it_now_ms() < stop, "empty snapshot: %s", st);
    }
    naive_drain(1000);
    ck_assert_int_eq(E.events, before);
    it_amqp_delete_queue(&target, tq);
    it_amqp_close(&target);
}
END_TEST

/* (d) Rows deleted and updated while their chunk is being read (the read
 * is made slow) never come back after their change; (e) a cancelled
 * snapshot stops and stays cancelled. */
START_TEST(test_changed_mid_chunk_and_cancel)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO incidents (region, summary) SELECT 'm', 'row ' || g "
                                "FROM generate_series(1, 200) g"),
                     0);
    start_connector("snap-midchunk");
    char st[128];
    for (double stop = it_now_ms() + 60000;
         strncmp(state_of(E.slot, st, sizeof st), "done", 4) != 0; it_sleep_ms(100))
        ck_assert_msg(it_now_ms() < stop, "initial snapshot: %s", st);
    naive_drain(1500);

    /* Every chunk's SELECT sleeps 3 s: the changes below commit while the
     * chunk that holds their rows is read. */
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO hms_sync.snapshots (slot, where_sql) VALUES ('%s', "
                                "'region = ''m'' AND (SELECT pg_sleep(3)) IS NOT NULL')",
                                E.slot),
                     0);
    for (double stop = it_now_ms() + 30000;
         strncmp(state_of(E.slot, st, sizeof st), "running", 7) != 0; it_sleep_ms(50))
        ck_assert_msg(it_now_ms() < stop, "backfill never started: %s", st);
    it_sleep_ms(1000);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents WHERE summary IN ('row 10', "
                                          "'row 150')"),
                     0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "UPDATE incidents SET summary = 'changed' WHERE summary "
                                          "= 'row 20'"),
                     0);
    for (double stop = it_now_ms() + 60000;
         strncmp(state_of(E.slot, st, sizeof st), "done", 4) != 0; it_sleep_ms(100))
        ck_assert_msg(it_now_ms() < stop, "backfill: %s", st);
    await_confirmed();
    naive_drain(1500);
    assert_equal(g_env.pg, "incidents", g_sub.pg, "naive", "naive subscriber after the backfill");

    /* (e) Cancelled while it runs (three chunks, each read in a second):
     * no more chunks, and the state stays cancelled. */
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO incidents (region, summary) SELECT 'c', 'row ' || g "
                                "FROM generate_series(1, 2500) g"),
                     0);
    await_confirmed();
    naive_drain(1500);
    long before = E.snapshot_events;
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO hms_sync.snapshots (slot, where_sql) VALUES ('%s', "
                                "'(SELECT pg_sleep(1)) IS NOT NULL')",
                                E.slot),
                     0);
    for (double stop = it_now_ms() + 30000;
         strncmp(state_of(E.slot, st, sizeof st), "running", 7) != 0; it_sleep_ms(50))
        ck_assert_msg(it_now_ms() < stop, "snapshot never started: %s", st);
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "UPDATE hms_sync.snapshots SET state = 'cancelled' WHERE slot = "
                                "'%s' AND state = 'running'",
                                E.slot),
                     0);
    it_sleep_ms(4000);
    long total = it_pg_count(g_env.pg, "SELECT count(*) FROM incidents");
    ck_assert_int_ge(total, 0);
    state_of(E.slot, st, sizeof st);
    ck_assert_msg(strncmp(st, "cancelled ", 10) == 0, "after the cancel: %s", st);
    ck_assert_msg(it_proc_wait(&E.conn, 0) < 0, "the connector exited");
    naive_drain(1500);
    long published = E.snapshot_events - before;
    fprintf(stderr, "snapshot: cancelled at %s after %ld of %ld rows published\n", st, published,
            total);
    ck_assert_int_lt(published, total);
    assert_equal(g_env.pg, "incidents", g_sub.pg, "naive", "naive subscriber after the cancel");
}
END_TEST

static Suite *snapshot_suite(void)
{
    Suite *s = suite_create("snapshot");
    it_tcase(s, "initial_under_load", fixture_up, fixture_down, 600,
             test_initial_snapshot_under_load);
    it_tcase(s, "targeted_and_empty", fixture_up, fixture_down, 300, test_targeted_and_empty);
    it_tcase(s, "changed_mid_chunk_and_cancel", fixture_up, fixture_down, 300,
             test_changed_mid_chunk_and_cancel);
    return s;
}

/* In the subscriber database (.sub: its own, set up by migrate
 * --subscriber), the naive subscriber's table shaped like the source's. */
static int snap_setup(void)
{
    /* tsm_system_rows picks random rows to change cheaply. */
    if (it_pg_exec(g_env.pg, "CREATE EXTENSION IF NOT EXISTS tsm_system_rows") != 0)
        return -1;
    return it_pg_exec(g_sub.pg, "CREATE TABLE naive (id uuid PRIMARY KEY, occurred_at timestamptz, "
                                "region text, severity int, status text, summary text, reported_by "
                                "text, version bigint, updated_at timestamptz, origin text)");
}

IT_MAIN(.name = "snapshot", .env = &g_env, .source = &g_source, .sub = &g_sub,
        .suite = snapshot_suite, .setup = snap_setup)
