/* test_cluster_errors.c -- hms-sync run against PostgreSQL clusters of its
 * own (so the shared scratch cluster's settings never change): it stops
 * with one clear line and exit 1 when wal_level is not logical, when its
 * slot's WAL is lost, and when its slot is dropped while it runs, and it
 * never recreates a slot silently in those cases. */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"

#define SLOT "hms_it_errors"

static it_env_t g_env;

/* One case's cluster (database "hms", migrated), exchange and processes. */
typedef struct {
    it_cluster_t cluster;
    char super[IT_CONNINFO_MAX]; /* superuser, to hms */
    char conn[IT_CONNINFO_MAX];  /* role hms_sync, to hms: the connector's */
    PGconn *pg;                  /* superuser session on hms */
    char exchange[128];
    it_amqp_t amqp;
    it_proc_t run;
} fx_t;

static fx_t F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    it_env_exchange_name(&g_env, F.exchange, sizeof F.exchange);
}

static void fx_teardown(void)
{
    it_proc_kill(&F.run);
    if (F.pg)
        PQfinish(F.pg);
    F.pg = NULL;
    it_cluster_stop(&F.cluster);
    it_amqp_close(&F.amqp);
    it_amqp_t admin;
    if (it_amqp_open(&admin, g_env.amqp_url) == 0) {
        it_amqp_delete_exchange(&admin, F.exchange);
        it_amqp_close(&admin);
    }
}

static void dump_log(const it_proc_t *p, const char *what)
{
    char *out = it_proc_output(p);
    fprintf(stderr, "---- %s (%s) ----\n%s---- end ----\n", what, p->log, out ? out : "");
    free(out);
}

/* Starts a cluster with conf, creates database hms and migrates it. */
static void cluster_up(const char *const initdb_extra[], const char *conf)
{
    ck_assert_int_eq(it_cluster_start(&g_env, &F.cluster, initdb_extra, conf), 0);
    PGconn *admin = it_pg_connect(F.cluster.super_conninfo);
    ck_assert_ptr_nonnull(admin);
    int rc = it_pg_exec(admin, "CREATE DATABASE hms");
    PQfinish(admin);
    ck_assert_int_eq(rc, 0);
    it_cluster_conninfo(&F.cluster, "postgres", "hms", F.super, sizeof F.super);
    it_cluster_conninfo(&F.cluster, "hms_sync", "hms", F.conn, sizeof F.conn);
    it_proc_t mig;
    const char *argv[] = {"migrate", "--pg", F.super, NULL};
    ck_assert_int_eq(it_proc_spawn(&g_env, &mig, "errors-migrate", argv), 0);
    int code = it_proc_wait(&mig, 120000);
    it_proc_kill(&mig);
    if (code != 0)
        dump_log(&mig, "migrate");
    ck_assert_int_eq(code, 0);
    F.pg = it_pg_connect(F.super);
    ck_assert_ptr_nonnull(F.pg);
}

/* `hms-sync run` on the case's cluster with the given extra arguments. */
static void run_argv(const char **argv, size_t cap, const char *const extra[])
{
    size_t n = 0;
    const char *base[] = {"run",    "--pg", F.conn,       "--amqp",   g_env.amqp_url,
                          "--slot", SLOT,   "--exchange", F.exchange, NULL};
    for (size_t i = 0; base[i]; i++)
        argv[n++] = base[i];
    for (size_t i = 0; extra && extra[i] && n + 1 < cap; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
}

/* Runs the connector to its end (at most timeout_ms) and asserts exit 1 and
 * one line of output holding each of the NULL-terminated needles. */
static void expect_fatal(const char *tag, int timeout_ms, ...)
{
    const char *argv[32];
    const char *const quiet[] = {"--log_level", "error", NULL};
    run_argv(argv, 32, quiet);
    ck_assert_int_eq(it_proc_spawn(&g_env, &F.run, tag, argv), 0);
    int code = it_proc_wait(&F.run, timeout_ms);
    double ms = it_now_ms() - F.run.start_ms;
    it_proc_kill(&F.run);
    char *out = it_proc_output(&F.run);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(code == 1, "%s: exit %d (-1: still running after %d ms), want 1: %s", tag, code,
                  timeout_ms, out);
    ck_assert_msg(it_count_lines(out) == 1, "%s: want one line, got:\n%s", tag, out);
    va_list ap;
    va_start(ap, timeout_ms);
    const char *needle;
    while ((needle = va_arg(ap, const char *)) != NULL)
        ck_assert_msg(strstr(out, needle) != NULL, "%s: line does not mention '%s': %s", tag,
                      needle, out);
    va_end(ap);
    fprintf(stderr, "%s: exit 1 after %.0f ms: %s", tag, ms, out);
    free(out);
}

static long slot_count(void)
{
    char *v = it_pg_value(F.pg, "SELECT count(*) FROM pg_replication_slots");
    ck_assert_ptr_nonnull(v);
    long n = atol(v);
    free(v);
    return n;
}

/* (1) wal_level = replica: refused at once, nothing created. */
START_TEST(test_wal_level_replica)
{
    cluster_up(NULL, "wal_level = replica\n");
    expect_fatal("errors-wal-level", 30000, "wal_level", "logical", NULL);
    ck_assert_int_eq(slot_count(), 0);
}
END_TEST

/* (2) The slot fell behind max_slot_wal_keep_size and its WAL was removed:
 * refused, and the slot is left for the operator (not dropped, not
 * recreated). */
START_TEST(test_slot_lost)
{
    const char *const segsize[] = {"--wal-segsize=1", NULL};
    cluster_up(segsize, "wal_level = logical\nmax_slot_wal_keep_size = 1MB\n"
                        "min_wal_size = 2MB\nmax_wal_size = 4MB\n");
    ck_assert_int_eq(
        it_pg_exec(F.pg, "SELECT pg_create_logical_replication_slot('" SLOT "', 'pgoutput')"), 0);
    ck_assert_int_eq(it_pg_exec(F.pg, "INSERT INTO incidents (region) VALUES ('lost')"), 0);
    /* A table the publication does not capture, to make WAL with. */
    ck_assert_int_eq(it_pg_exec(F.pg, "CREATE TABLE filler (x text)"), 0);
    char *status = NULL;
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(it_pg_exec(F.pg, "INSERT INTO filler SELECT repeat(md5(g::text), 16) "
                                          "FROM generate_series(1, 2000) g"),
                         0);
        ck_assert_int_eq(it_pg_exec(F.pg, "SELECT pg_switch_wal()"), 0);
        ck_assert_int_eq(it_pg_exec(F.pg, "CHECKPOINT"), 0);
        free(status);
        status = it_pg_value(
            F.pg, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '" SLOT "'");
        if (status && strcmp(status, "lost") == 0)
            break;
    }
    ck_assert_msg(status && strcmp(status, "lost") == 0, "slot's wal_status is %s, want lost",
                  status ? status : "(none)");
    free(status);

    expect_fatal("errors-slot-lost", 30000, "wal_status", "'lost'", SLOT, NULL);
    /* Still the one slot, still lost: neither dropped nor recreated. */
    ck_assert_int_eq(slot_count(), 1);
    status = it_pg_value(
        F.pg, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '" SLOT "'");
    ck_assert_msg(status && strcmp(status, "lost") == 0,
                  "after the run the slot's wal_status is %s, want lost",
                  status ? status : "(none)");
    free(status);
}
END_TEST

/* Terminates the slot's walsender and drops the slot in one server-side
 * step, so a connector reconnecting quickly cannot take the slot back in
 * between; retried while the slot is (again) active. */
static void drop_slot_under_connector(void)
{
    PQclear(PQexec(F.pg, "SET client_min_messages = error"));
    const char *sql = "DO $$ BEGIN "
                      "PERFORM pg_terminate_backend(active_pid) FROM pg_replication_slots "
                      "  WHERE slot_name = '" SLOT "' AND active_pid IS NOT NULL; "
                      "FOR i IN 1..500 LOOP "
                      "  EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_replication_slots "
                      "                        WHERE slot_name = '" SLOT "' AND active); "
                      "  PERFORM pg_sleep(0.01); "
                      "END LOOP; "
                      "PERFORM pg_drop_replication_slot('" SLOT "'); "
                      "END $$";
    for (int attempt = 0; attempt < 20; attempt++) {
        PGresult *r = PQexec(F.pg, sql);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (ok)
            return;
        it_sleep_ms(50);
    }
    ck_abort_msg("could not drop slot %s: %s", SLOT, PQerrorMessage(F.pg));
}

/* Starts a cluster and the connector on it, and waits until one event went
 * through, the slot confirmed it and hms_sync.slot_progress recorded it. */
static void stream_one_confirmed(const char *tag, const char *retry_min)
{
    cluster_up(NULL, "wal_level = logical\n");
    ck_assert_int_eq(it_amqp_open(&F.amqp, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&F.amqp, F.exchange), 0);
    ck_assert_int_eq(it_amqp_queue(&F.amqp, F.exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&F.amqp), 0);

    const char *argv[32];
    const char *const fast[] = {"--retry_min", retry_min ? retry_min : "100ms", "--retry_max", "1s",
                                NULL};
    run_argv(argv, 32, fast);
    ck_assert_int_eq(it_proc_spawn(&g_env, &F.run, tag, argv), 0);
    if (it_pg_wait_slot_active(F.pg, SLOT, 30000) != 0) {
        dump_log(&F.run, "connector");
        ck_abort_msg("connector did not start streaming");
    }

    /* One event through and confirmed, and the progress table told of it. */
    ck_assert_int_eq(it_pg_exec(F.pg, "INSERT INTO incidents (region) VALUES ('dropped')"), 0);
    it_msg_t m;
    ck_assert_int_eq(it_amqp_get(&F.amqp, 30000, &m), 1);
    char why[512];
    json_object *ev = it_event_check(&m, NULL, why, sizeof why);
    ck_assert_msg(ev != NULL, "event violates the contract: %s", why);
    uint64_t lsn = 0;
    ck_assert(it_lsn_parse(it_json_str(ev, "lsn"), &lsn));
    json_object_put(ev);
    it_msg_free(&m);
    ck_assert_int_eq(it_pg_wait_confirmed(F.pg, SLOT, lsn + 1, 15000), 0);
    char *remembered = NULL;
    for (double until = it_now_ms() + 10000; !remembered && it_now_ms() < until; it_sleep_ms(100))
        remembered =
            it_pg_value(F.pg, "SELECT confirmed_lsn::text FROM hms_sync.slot_progress "
                              "WHERE slot_name = '" SLOT "' AND confirmed_lsn IS NOT NULL");
    if (!remembered)
        dump_log(&F.run, "connector");
    ck_assert_msg(remembered != NULL, "hms_sync.slot_progress never recorded slot %s", SLOT);
    free(remembered);
}

/* (3) The slot is dropped while the connector streams: it stops, says so,
 * and neither it nor a fresh start recreates the slot. */
START_TEST(test_slot_dropped_while_running)
{
    stream_one_confirmed("errors-slot-dropped", NULL);
    drop_slot_under_connector();
    double dropped_at = it_now_ms();
    int code = it_proc_wait(&F.run, 30000);
    char *out = it_proc_output(&F.run);
    ck_assert_ptr_nonnull(out);
    if (code != 1)
        dump_log(&F.run, "connector");
    ck_assert_msg(code == 1, "connector exit %d (-1: still running 30 s after the drop), want 1",
                  code);
    ck_assert_msg(strstr(out, "disappeared") != NULL && strstr(out, SLOT) != NULL,
                  "the connector did not say the slot disappeared:\n%s", out);
    fprintf(stderr, "slot dropped: the connector exited 1 after %.0f ms\n",
            it_now_ms() - dropped_at);
    free(out);
    ck_assert_int_eq(slot_count(), 0);

    /* A fresh process remembers the slot through hms_sync.slot_progress. */
    expect_fatal("errors-slot-dropped-restart", 30000, SLOT, "dropped", NULL);
    ck_assert_int_eq(slot_count(), 0);
}
END_TEST

/* (4) The slot is dropped and created again under the connector (by an
 * operator or another instance) while it is disconnected: the new slot
 * starts after changes the connector never saw, so carrying on would skip
 * them silently.  It must stop. */
START_TEST(test_slot_recreated_while_running)
{
    /* A slower reconnect, so the connector comes back after the re-creation. */
    stream_one_confirmed("errors-slot-recreated", "1s");
    drop_slot_under_connector();
    ck_assert_int_eq(it_pg_exec(F.pg, "INSERT INTO incidents (region) VALUES ('skipped')"), 0);
    ck_assert_int_eq(
        it_pg_exec(F.pg, "SELECT pg_create_logical_replication_slot('" SLOT "', 'pgoutput')"), 0);
    double at = it_now_ms();
    int code = it_proc_wait(&F.run, 30000);
    char *out = it_proc_output(&F.run);
    ck_assert_ptr_nonnull(out);
    if (code != 1)
        dump_log(&F.run, "connector");
    ck_assert_msg(code == 1,
                  "connector exit %d (-1: still running 30 s after its slot was recreated, "
                  "skipping the change committed in between), want 1",
                  code);
    /* Depending on when it reconnected, it found no slot or the new one. */
    ck_assert_msg(strstr(out, SLOT) != NULL &&
                      (strstr(out, "recreated") != NULL || strstr(out, "disappeared") != NULL),
                  "the connector did not say its slot was recreated:\n%s", out);
    ck_assert_int_eq(slot_count(), 1); /* the operator's new slot, left alone */
    fprintf(stderr, "slot recreated: the connector exited 1 after %.0f ms\n", it_now_ms() - at);
    free(out);
}
END_TEST

static Suite *errors_suite(void)
{
    Suite *s = suite_create("cluster_errors");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"wal_level", test_wal_level_replica},
        {"slot_lost", test_slot_lost},
        {"slot_dropped", test_slot_dropped_while_running},
        {"slot_recreated", test_slot_recreated_while_running},
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

IT_MAIN(.name = "errors", .env = &g_env, .suite = errors_suite)
