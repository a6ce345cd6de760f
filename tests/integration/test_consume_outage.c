/* test_consume_outage.c -- hms-sync consume while its PostgreSQL stalls:
 * the subscriber's --pg goes through a TCP proxy that is switched to
 * "accept and never answer" for several heartbeats while events keep
 * arriving in its queue.  Its AMQP connection must stay up (the broker still
 * lists the same connection, and the subscriber never logs a reconnect), the
 * events that arrive meanwhile wait unacknowledged, and once the proxy
 * passes again every event is applied exactly once.  Two outages: one that
 * drops the session and black-holes every new connection (the subscriber
 * reconnects through it, attempt after attempt), one that freezes the
 * session mid-statement.  A SIGHUP during the outage must not end it; a
 * SIGTERM with a statement frozen in flight ends it cleanly, unacked. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"
#include "it_sub.h"
#include "it_proxy.h"

#define HEARTBEAT_S 2
#define OUTAGE_MS 9000 /* clearly longer than 2 x heartbeat */

static it_env_t g_env;

static it_proxy_t g_px; /* between the subscriber and PostgreSQL */

static void px_set(it_proxy_mode_t mode)
{
    ck_assert_int_eq(it_proxy_set(&g_px, mode), 0);
}

/* ---- the broker's view, through rabbitmqctl ---- */

/* The lines of `rabbitmqctl -q <args>` that contain needle, joined by '\n'
 * into out; how many there were, -1 when it could not run. */
static int ctl_lines(const char *args, const char *needle, char *out, size_t outlen)
{
    char cmd[512], line[4096];
    snprintf(cmd, sizeof cmd, "'%s' -q %s 2>/dev/null", g_env.rabbitmqctl, args);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    int n = 0;
    size_t w = 0;
    out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, needle))
            continue;
        n++;
        int k = snprintf(out + w, outlen - w, "%s", line);
        if (k > 0 && (size_t)k < outlen - w)
            w += (size_t)k;
    }
    return pclose(f) == 0 ? n : -1;
}

/* The subscriber's consuming connection as the broker lists it: "pid
 * heartbeat", exactly one of them. */
static void sub_connection(const char *queue, char *out, size_t outlen)
{
    char needle[300], lines[2048];
    snprintf(needle, sizeof needle, "\"hms-sync consume %s\"", queue);
    int n = ctl_lines("list_connections --no-table-headers pid timeout client_properties", needle,
                      lines, sizeof lines);
    ck_assert_msg(n == 1, "the broker lists %d consuming connections of %s:\n%s", n, queue, lines);
    /* "<rabbit@host.1.234.0>\t2\t[...]": keep the pid and the heartbeat. */
    char *tab = strchr(lines, '\t');
    char *tab2 = tab ? strchr(tab + 1, '\t') : NULL;
    ck_assert_ptr_nonnull(tab2);
    snprintf(out, outlen, "%.*s", (int)(tab2 - lines), lines);
}

/* Messages of queue delivered and not yet acknowledged. */
static long unacked(const char *queue)
{
    char lines[1024], needle[300];
    snprintf(needle, sizeof needle, "%s\t", queue);
    if (ctl_lines("list_queues --no-table-headers name messages_unacknowledged", needle, lines,
                  sizeof lines) != 1)
        return -1;
    return atol(lines + strlen(needle));
}

/* ---- fixture ---- */

static char g_slot[64], g_exchange[128], g_dlx[160], g_queue[192];
static char g_via_proxy[IT_CONNINFO_MAX + 64];
static it_proc_t g_conn, g_sub;

/* Asserts that sql's one value is want. */
static void expect_value(const char *sql, long want)
{
    char w[24], *v = it_pg_value(g_env.pg, "%s", sql);
    snprintf(w, sizeof w, "%ld", want);
    ck_assert_msg(v && strcmp(v, w) == 0, "%s: %s, want %s", sql, v ? v : "(failed)", w);
    free(v);
}

static void insert(int n, const char *tag)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "INSERT INTO incidents (region, severity, summary) SELECT '%s', 1 + g %% 5, "
             "'outage ' || g FROM generate_series(1, %d) g",
             tag, n);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "%s", sql), 0);
}

static void wait_inbox(long want, int timeout_ms)
{
    long n = it_inbox_wait(g_env.pg, g_queue, want, timeout_ms);
    if (n != want)
        it_proc_dump(&g_sub, "consume");
    ck_assert_msg(n == want, "inbox holds %ld rows, want %ld", n, want);
}

static void fx_setup(void)
{
    it_env_slot_name(&g_env, g_slot, sizeof g_slot);
    it_env_exchange_name(&g_env, g_exchange, sizeof g_exchange);
    snprintf(g_dlx, sizeof g_dlx, "%s.dlx", g_exchange);
    snprintf(g_queue, sizeof g_queue, "%s.outage", g_exchange);
    it_amqp_t a;
    ck_assert_int_eq(it_amqp_open(&a, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&a, g_exchange), 0);
    /* The dead-letter exchange is the administrator's, as in deploy/. */
    ck_assert_int_eq(it_amqp_declare_dlx(&a, g_dlx), 0);
    it_amqp_close(&a);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents"), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "TRUNCATE hms_sync.inbox, public.incident_facts"), 0);
    ck_assert_int_eq(it_proxy_start(&g_px, atoi(g_env.port)), 0);
    /* libpq takes the last of repeated keywords: the proxy's address wins. */
    snprintf(g_via_proxy, sizeof g_via_proxy, "%s host=127.0.0.1 port=%d", g_env.super_conninfo,
             g_px.port);
}

static void fx_teardown(void)
{
    it_proc_kill(&g_sub);
    it_proc_kill(&g_conn);
    it_proxy_stop(&g_px);
    it_amqp_drop_subscriber(g_env.amqp_url, g_queue, g_exchange, g_dlx);
    it_pg_drop_slot(g_env.pg, g_slot);
}

static void start_sub(void)
{
    char hb[16];
    snprintf(hb, sizeof hb, "%ds", HEARTBEAT_S);
    const char *extra[] = {"--heartbeat", hb,      "--connect-timeout", "2s",
                           "--retry-min", "100ms", "--retry-max",       "1s",
                           NULL};
    if (it_consume_start(&g_env, &g_sub, "consume-outage", g_via_proxy, g_exchange, g_dlx, g_queue,
                         "hms_sync.apply_warehouse", extra) != 0)
        ck_abort_msg("consume did not start");
}

/* One outage in `mode`: events keep arriving, none can be applied; the
 * subscriber's AMQP connection survives; afterwards all are applied. */
static long outage(it_proxy_mode_t mode, const char *tag, long events, const char *conn_before)
{
    int held_before = atomic_load(&g_px.held);
    double t0 = it_now_ms();
    px_set(mode);
    int published = 0;
    bool hup = false;
    while (it_now_ms() - t0 < OUTAGE_MS) {
        insert(1, tag);
        published++;
        if (!hup && it_now_ms() - t0 > OUTAGE_MS / 2) {
            it_proc_signal(&g_sub, SIGHUP);
            hup = true;
        }
        it_sleep_ms(1000);
    }
    long in_during = it_inbox_count(g_env.pg, g_queue);
    long held_unacked = unacked(g_queue);
    char conn_during[256];
    sub_connection(g_queue, conn_during, sizeof conn_during);
    double stalled_ms = it_now_ms() - t0;
    px_set(IT_PROXY_PASS);
    double t1 = it_now_ms();
    events += published;
    wait_inbox(events, 60000);
    double caught_up_ms = it_now_ms() - t1;
    char conn_after[256];
    sub_connection(g_queue, conn_after, sizeof conn_after);
    ck_assert_msg(it_proc_wait(&g_sub, 0) < 0, "consume ended during the outage");

    ck_assert_int_eq(in_during, events - published); /* nothing applied while stalled */
    ck_assert_msg(held_unacked >= 1, "no delivery waited unacknowledged (%ld)", held_unacked);
    ck_assert_str_eq(conn_during, conn_before);
    ck_assert_str_eq(conn_after, conn_before);
    fprintf(stderr,
            "consume-outage: %s: stalled %.1f s (heartbeat %d s), %d events published meanwhile, "
            "%ld held unacked at the end of it, %d connection attempts black-holed, all applied "
            "%.1f s after the proxy passed again; AMQP connection unchanged (%s)\n",
            tag, stalled_ms / 1000, HEARTBEAT_S, published, held_unacked,
            atomic_load(&g_px.held) - held_before, caught_up_ms / 1000, conn_after);
    return events;
}

/* ---- the test ---- */

START_TEST(test_pg_stall_keeps_amqp)
{
    ck_assert_int_eq(
        it_conn_start(&g_env, &g_conn, "consume-outage-conn", g_slot, g_exchange, NULL), 0);
    if (it_pg_wait_slot_active(g_env.pg, g_slot, 30000) != 0) {
        it_proc_dump(&g_conn, "connector");
        ck_abort_msg("the connector did not start streaming");
    }
    start_sub();
    insert(20, "before");
    long events = 20;
    wait_inbox(events, 30000);
    char conn[256];
    sub_connection(g_queue, conn, sizeof conn);
    char want_hb[32];
    snprintf(want_hb, sizeof want_hb, "\t%d", HEARTBEAT_S);
    ck_assert_msg(strstr(conn, want_hb) != NULL, "heartbeat not %d s: %s", HEARTBEAT_S, conn);

    /* Idle session dropped, every new connection black-holed. */
    events = outage(IT_PROXY_BLACKHOLE, "blackhole", events, conn);
    /* The session frozen with a statement in flight. */
    events = outage(IT_PROXY_STALL, "freeze", events, conn);

    it_sleep_ms(1000);
    ck_assert_int_eq(it_inbox_count(g_env.pg, g_queue), events);
    expect_value("SELECT count(*) FROM incidents", events);
    expect_value("SELECT count(*) FROM incidents i JOIN incident_facts f ON f.incident_id = i.id "
                 "AND f.version = i.version AND NOT f.deleted",
                 events);
    it_proc_signal(&g_sub, SIGTERM);
    int code = it_proc_wait(&g_sub, 20000);
    char *log = it_proc_output(&g_sub);
    ck_assert_ptr_nonnull(log);
    if (code != 0)
        it_proc_dump(&g_sub, "consume");
    ck_assert_int_eq(code, 0);
    ck_assert_msg(strstr(log, "RabbitMQ connection lost") == NULL &&
                      strstr(log, "RabbitMQ reconnected") == NULL,
                  "the subscriber reconnected to RabbitMQ:\n%s", log);
    ck_assert_msg(strstr(log, "PostgreSQL unreachable") != NULL, "no reconnect attempt logged");
    ck_assert_msg(strstr(log, "SIGHUP") != NULL, "SIGHUP not seen:\n%s", log);
    const char *stopped = strstr(log, "msg=stopped");
    ck_assert_ptr_nonnull(stopped);
    char want[64];
    snprintf(want, sizeof want, " applied=%ld ", events);
    ck_assert_msg(strstr(stopped, want) != NULL && strstr(stopped, " duplicate=0 ") != NULL,
                  "want%s and no duplicate: %s", want, stopped);
    fprintf(stderr, "consume-outage: %ld events, %ld applied once each, 0 AMQP reconnects\n",
            events, events);
    free(log);
}
END_TEST

/* SIGTERM with a statement frozen in flight: consume waits for it about
 * connect_timeout (2 s here), then ends cleanly without acking; the next
 * run applies the event, once. */
START_TEST(test_stop_during_stalled_statement)
{
    ck_assert_int_eq(
        it_conn_start(&g_env, &g_conn, "consume-outage-conn", g_slot, g_exchange, NULL), 0);
    ck_assert_int_eq(it_pg_wait_slot_active(g_env.pg, g_slot, 30000), 0);
    start_sub();
    insert(1, "first");
    wait_inbox(1, 30000);
    px_set(IT_PROXY_STALL);
    insert(1, "frozen");
    double end = it_now_ms() + 20000;
    while (unacked(g_queue) < 1 && it_now_ms() < end)
        it_sleep_ms(100);
    ck_assert_int_eq(unacked(g_queue), 1);
    it_sleep_ms(500); /* the statement is on its way into the frozen session */
    double t0 = it_now_ms();
    it_proc_signal(&g_sub, SIGTERM);
    int code = it_proc_wait(&g_sub, 20000);
    double took = it_now_ms() - t0;
    char *log = it_proc_output(&g_sub);
    ck_assert_ptr_nonnull(log);
    if (code != 0 || !strstr(log, "abandoned a statement in flight"))
        it_proc_dump(&g_sub, "consume");
    ck_assert_int_eq(code, 0);
    ck_assert_ptr_nonnull(strstr(log, "abandoned a statement in flight"));
    ck_assert_msg(took >= 1500 && took < 10000, "stopping took %.0f ms", took);
    free(log);
    /* The abandoned statement may still sit in a socket buffer and commit
     * when the network moves again: the redelivery is then a duplicate.
     * Either way the event is recorded once. */
    px_set(IT_PROXY_PASS);
    start_sub();
    wait_inbox(2, 30000);
    it_sleep_ms(500);
    it_proc_signal(&g_sub, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&g_sub, 20000), 0);
    ck_assert_int_eq(it_inbox_count(g_env.pg, g_queue), 2);
    expect_value("SELECT count(*) FROM incident_facts", 2);
    log = it_proc_output(&g_sub);
    bool applied = strstr(log, " applied=1 stale=0 duplicate=0 ") != NULL;
    bool duplicate = strstr(log, " applied=0 stale=0 duplicate=1 ") != NULL;
    ck_assert_msg(applied || duplicate, "the redelivery was not taken once:\n%s", log);
    free(log);
    fprintf(stderr,
            "consume-outage: SIGTERM with a frozen statement: exit 0 after %.1f s; the next run "
            "took the redelivery once (%s)\n",
            took / 1000,
            applied ? "applied" : "a duplicate: the abandoned statement had reached the server");
}
END_TEST

static Suite *outage_suite(void)
{
    Suite *s = suite_create("consume_outage");
    TCase *tc = tcase_create("pg_stall");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_pg_stall_keeps_amqp);
    tcase_add_test(tc, test_stop_during_stalled_statement);
    suite_add_tcase(s, tc);
    return s;
}

/* The subscriber's side lives in the test's own database; the proxy's
 * outages need the broker's view. */
static int setup(void)
{
    if (!g_env.rabbitmqctl)
        return it_missing("consume_outage", "HMS_TEST_RABBITMQCTL is not set");
    const char *argv[] = {HMS_BIN, "migrate", "--subscriber", "--pg", g_env.super_conninfo, NULL};
    return it_cmd_run(&g_env, "migrate-subscriber", 120000, argv) == 0 ? 0 : -1;
}

IT_MAIN(.name = "consume_outage", .env = &g_env, .suite = outage_suite, .setup = setup)
