/* test_partitions.c -- `consume --partitions 4`: a consistent-hash exchange
 * spreads the events over four quorum queues by their subject header, one
 * worker process each.  Randomized writes to 40 incidents, and a kill -9 of
 * one worker mid-stream (the supervisor starts it again): the warehouse
 * converges on the source, every event is taken in once, none was applied
 * after a newer one of its incident (no stale outcome in the inbox), and
 * every partition applied some.  Also: a worker killed outright with its
 * supervisor stops too. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"
#include "it_sub.h"

#define NPART 4

static it_env_t g_env;
static char *g_source;
static it_subdb_t g_sub;

static struct {
    char slot[64], exchange[128], dlx[160], queue[192];
    it_amqp_t ctl;
    it_proc_t conn, sub;
} F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    it_env_slot_name(&g_env, F.slot, sizeof F.slot);
    it_env_exchange_name(&g_env, F.exchange, sizeof F.exchange);
    snprintf(F.dlx, sizeof F.dlx, "%s.dlx", F.exchange);
    snprintf(F.queue, sizeof F.queue, "%s.wh", F.exchange);
    ck_assert_int_eq(it_amqp_open(&F.ctl, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&F.ctl, F.exchange), 0);
    ck_assert_int_eq(it_amqp_declare_dlx(&F.ctl, F.dlx), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents"), 0);
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "TRUNCATE hms_sync.inbox, public.incident_facts"), 0);
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, "part-conn", F.slot, F.exchange, NULL), 0);
    if (it_pg_wait_slot_active(g_env.pg, F.slot, 30000) != 0) {
        it_proc_dump(&F.conn, NULL);
        ck_abort_msg("the connector never streamed from %s", F.slot);
    }
}

static void fx_teardown(void)
{
    /* SIGTERM first: the supervisor stops its workers. */
    it_proc_signal(&F.sub, SIGTERM);
    it_proc_wait(&F.sub, 30000);
    it_proc_kill(&F.sub);
    it_proc_kill(&F.conn);
    it_amqp_close(&F.ctl);
    if (it_amqp_open(&F.ctl, g_env.amqp_url) == 0) {
        char name[256];
        for (int p = 1; p <= NPART; p++) {
            snprintf(name, sizeof name, "%s.p%d", F.queue, p);
            it_amqp_delete_queue(&F.ctl, name);
        }
        snprintf(name, sizeof name, "%s.dlq", F.queue);
        it_amqp_delete_queue(&F.ctl, name);
        snprintf(name, sizeof name, "%s.hash", F.queue);
        it_amqp_delete_exchange(&F.ctl, name);
        it_amqp_delete_exchange(&F.ctl, F.dlx);
        it_amqp_delete_rejected(&F.ctl, F.exchange);
        it_amqp_delete_exchange(&F.ctl, F.exchange);
    }
    it_amqp_close(&F.ctl);
    it_pg_drop_slot(g_env.pg, F.slot);
}

static long count(PGconn *c, const char *sql)
{
    char *v = it_pg_value(c, "%s", sql);
    ck_assert_msg(v != NULL, "%s failed", sql);
    long n = atol(v);
    free(v);
    return n;
}

/* n random changes to the 40 incidents, each in its own transaction:
 * mostly updates, some deletes and re-inserts of deleted ones. */
static void random_writes(int n, int seed)
{
    ck_assert_int_eq(
        it_pg_exec(
            g_env.pg,
            "DO $$ DECLARE k int; BEGIN PERFORM setseed(%d / 1000.0); "
            "FOR i IN 1..%d LOOP k := 1 + floor(random() * 40)::int; "
            "IF random() < 0.05 THEN DELETE FROM incidents WHERE region = 'part' || k; "
            "ELSIF NOT EXISTS (SELECT 1 FROM incidents WHERE region = 'part' || k) THEN "
            "INSERT INTO incidents (region, severity, summary) VALUES ('part' || k, 1, 'back'); "
            "ELSE UPDATE incidents SET severity = 1 + floor(random() * 5)::int, summary = "
            "'change ' || i WHERE region = 'part' || k; END IF; COMMIT; END LOOP; END $$",
            seed, n),
        0);
}

/* The pid the supervisor's log gives worker i, 0 when none. */
static pid_t worker_pid(int i)
{
    char *log = it_proc_output(&F.sub), want[64];
    pid_t pid = 0;
    snprintf(want, sizeof want, "partition=%d pid=", i);
    for (const char *at = strstr(log, want); at != NULL; at = strstr(at + 1, want))
        pid = (pid_t)atol(at + strlen(want));
    free(log);
    return pid;
}

START_TEST(test_four_partitions)
{
    const char *extra[] = {"--partitions", "4", "--retry-min", "100ms", "--retry-max", "1s", NULL};
    if (it_consume_start(&g_env, &F.sub, "part-sub", g_sub.conninfo, F.exchange, F.dlx, F.queue,
                         "public.it_apply_2ms", extra) != 0)
        ck_abort_msg("the partitioned subscriber never started consuming");
    for (int i = 1; i <= NPART; i++) {
        char want[256];
        snprintf(want, sizeof want, "queue=%s.p%d", F.queue, i);
        if (it_proc_wait_log(&F.sub, want, 30000) != 0) {
            it_proc_dump(&F.sub, "subscriber");
            ck_abort_msg("worker %d never consumed", i);
        }
    }
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO incidents (region, severity, summary) "
                                "SELECT 'part' || g, 3, 'new' FROM generate_series(1, 40) g"),
                     0);
    random_writes(1500, 1);
    /* Mid-stream (at 2 ms an event the workers are still applying the first
     * half): kill -9 one worker while the rest go on. */
    pid_t victim = worker_pid(2);
    ck_assert_int_gt(victim, 0);
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    random_writes(1500, 2);

    char sql[512];
    double end = it_now_ms() + 120000;
    char *src = NULL, *dst = NULL;
    for (;;) {
        free(src);
        free(dst);
        src = it_pg_value(g_env.pg, "SELECT string_agg(id || ':' || version, ',' ORDER BY id) "
                                    "FROM incidents");
        dst = it_pg_value(g_sub.pg, "SELECT string_agg(incident_id || ':' || version, ',' "
                                    "ORDER BY incident_id) FROM incident_facts WHERE NOT deleted");
        if ((src && dst && strcmp(src, dst) == 0) || it_now_ms() > end)
            break;
        it_sleep_ms(200);
    }
    if (!src || !dst || strcmp(src, dst) != 0)
        it_proc_dump(&F.sub, "subscriber");
    ck_assert_msg(src && dst && strcmp(src, dst) == 0, "the warehouse did not converge");
    free(src);
    free(dst);

    /* Every incident's events were applied in commit order: an event taken
     * in after a newer one of its incident would have been stale. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = '%s' AND outcome = 'stale'",
             F.queue);
    long stale = count(g_sub.pg, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = '%s'",
             F.queue);
    long taken = count(g_sub.pg, sql);
    ck_assert_int_eq(stale, 0);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = '%s' AND outcome = "
             "'duplicate'",
             F.queue);
    long dups = count(g_sub.pg, sql);
    char *log = it_proc_output(&F.sub);
    ck_assert_msg(strstr(log, "msg=\"worker ended; restarting it\" partition=2") != NULL,
                  "worker 2 was not restarted");
    free(log);

    it_proc_signal(&F.sub, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&F.sub, 60000), 0);
    log = it_proc_output(&F.sub);
    for (int i = 1; i <= NPART; i++) {
        /* Each worker's last counters line: it applied events of its own. */
        char want[256];
        snprintf(want, sizeof want, "msg=stopped queue=%s.p%d applied=", F.queue, i);
        const char *at = strstr(log, want);
        ck_assert_msg(at != NULL, "no counters of worker %d", i);
        ck_assert_msg(atol(at + strlen(want)) > 0, "worker %d applied nothing", i);
    }
    free(log);
    fprintf(stderr,
            "partitions: 4 workers, worker 2 killed and restarted: %ld events taken in (%ld "
            "duplicates by last-write-wins), 0 stale, the warehouse equals the source\n",
            taken, dups);
}
END_TEST

/* The supervisor killed outright: its workers stop with it. */
START_TEST(test_orphans_stop)
{
    const char *extra[] = {"--partitions", "2", NULL};
    snprintf(F.queue, sizeof F.queue, "%s.orph", F.exchange);
    if (it_consume_start(&g_env, &F.sub, "part-orph", g_sub.conninfo, F.exchange, F.dlx, F.queue,
                         "hms_sync.apply_warehouse", extra) != 0)
        ck_abort_msg("the partitioned subscriber never started consuming");
    pid_t w1 = 0;
    for (double end = it_now_ms() + 10000; (w1 = worker_pid(1)) == 0 && it_now_ms() < end;)
        it_sleep_ms(50);
    ck_assert_int_gt(w1, 0);
    it_proc_kill(&F.sub);
    double end = it_now_ms() + 20000;
    while (kill(w1, 0) == 0 && it_now_ms() < end)
        it_sleep_ms(100);
    ck_assert_msg(kill(w1, 0) != 0, "worker %d outlived its supervisor", (int)w1);
}
END_TEST

static Suite *partitions_suite(void)
{
    Suite *s = suite_create("partitions");
    it_tcase(s, "four", fx_setup, fx_teardown, 300, test_four_partitions);
    it_tcase(s, "orphans", fx_setup, fx_teardown, 120, test_orphans_stop);
    return s;
}

/* The warehouse with 2 ms an event, so that a backlog is in flight when a
 * worker is killed. */
static int sub_db_init(void)
{
    return it_pg_exec(g_sub.pg, "CREATE FUNCTION public.it_apply_2ms(event jsonb) RETURNS text "
                                "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.002); "
                                "RETURN hms_sync.apply_warehouse(event); END $$");
}

IT_MAIN(.name = "partitions", .env = &g_env, .source = &g_source, .sub = &g_sub,
        .setup = sub_db_init, .suite = partitions_suite)
