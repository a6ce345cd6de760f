/* test_pg_outage.c -- PostgreSQL unreachable the black-hole way (its
 * connections cut, new ones accepted and never answered) for far longer
 * than the AMQP heartbeat: the connector keeps its RabbitMQ connection,
 * keeps answering /metrics, and resumes by itself when PostgreSQL is back,
 * with every change committed before, during and after the outage
 * delivered.
 *
 * Why it matters: rabbitmq-c services heartbeats only while the loop runs.
 * A reconnect that waited inside libpq for a server that never answers
 * stalled the loop for connect_timeout, and the broker dropped the AMQP
 * connection for missed heartbeats. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"
#include "it_proxy.h"

/* The outage outlasts connect_timeout, so one reconnect attempt runs into
 * its deadline, and both are many heartbeats long. */
#define HEARTBEAT "2s"
#define HEARTBEAT_MS 2000
#define CONNECT_TIMEOUT "10s"
#define OUTAGE_MS 12000
#define ROWS_BEFORE 20
#define ROWS_AFTER 20

static it_env_t g_env;
static char *g_source;

typedef struct {
    it_bus_t bus;
    it_proc_t conn;
    it_proxy_t proxy;
    int metrics_port;
    json_object *summaries; /* summary -> times received */
    size_t received;
} fx_t;

static fx_t F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    ck_assert_int_eq(it_bus_open(&g_env, &F.bus, true), 0);
    F.summaries = json_object_new_object();
    ck_assert_int_eq(it_proxy_start(&F.proxy, atoi(g_env.port)), 0);
}

static void fx_teardown(void)
{
    it_proc_kill(&F.conn);
    it_proxy_stop(&F.proxy);
    it_bus_close(&g_env, &F.bus);
    json_object_put(F.summaries);
}

static void dump_log(void)
{
    char *out = it_proc_output(&F.conn);
    fprintf(stderr, "---- connector (%s) ----\n%s---- end ----\n", F.conn.log, out ? out : "");
    free(out);
}

static int log_count(const char *needle)
{
    char *out = it_proc_output(&F.conn);
    int n = 0;
    for (const char *p = out; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(out);
    return n;
}

#define STREAMING "streaming from replication slot"

/* Waits until the connector has logged STREAMING n times: the slot is
 * active before that already, while a new slot is still being created
 * (changes committed then are not the slot's). */
static bool wait_streaming(int n, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    while (log_count(STREAMING) < n) {
        if (it_now_ms() >= deadline || it_proc_wait(&F.conn, 0) >= 0)
            return false;
        it_sleep_ms(10);
    }
    return true;
}

/* One scrape: the value of the series (labels as rendered) and how long
 * the answer took; NAN when /metrics did not answer 200. */
static double scrape(const char *series, double *took_ms)
{
    static char body[1 << 16];
    double t0 = it_now_ms();
    int status = it_http_get("127.0.0.1", F.metrics_port, "/metrics", body, sizeof body);
    *took_ms = it_now_ms() - t0;
    if (status != 200)
        return NAN;
    char key[256];
    snprintf(key, sizeof key, "\n%s ", series);
    const char *at = strstr(body, key);
    return at ? strtod(at + strlen(key), NULL) : NAN;
}

#define AMQP_RECONNECTS "hms_sync_reconnects_total{target=\"rabbitmq\"}"
#define PG_RECONNECTS "hms_sync_reconnects_total{target=\"postgresql\"}"

static void insert_row(const char *summary)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO incidents (region, summary) VALUES ('outage', '%s')",
                                summary),
                     0);
}

/* Takes what has arrived (up to wait_ms for the first message). */
static void receive(int wait_ms)
{
    it_msg_t m;
    int r;
    while ((r = it_amqp_get(&F.bus.amqp, wait_ms, &m)) == 1) {
        char why[512];
        json_object *ev = it_event_check(&m, g_source, why, sizeof why);
        ck_assert_msg(ev != NULL, "event violates the contract: %s", why);
        const char *summary = it_json_str(it_json_get(ev, "data"), "summary");
        ck_assert_ptr_nonnull(summary);
        json_object *n = it_json_get(F.summaries, summary);
        json_object_object_add(F.summaries, summary,
                               json_object_new_int(n ? json_object_get_int(n) + 1 : 1));
        F.received++;
        json_object_put(ev);
        it_msg_free(&m);
        wait_ms = 1;
    }
    ck_assert_int_ge(r, 0);
}

/* Receives until every summary "<phase> <i>" of the phases is in, or
 * timeout_ms pass; returns how many are missing. */
static int missing(const char *const phases[], const int counts[], int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    for (;;) {
        int absent = 0;
        for (int p = 0; phases[p]; p++)
            for (int i = 0; i < counts[p]; i++) {
                char s[64];
                snprintf(s, sizeof s, "%s %d", phases[p], i);
                absent += it_json_get(F.summaries, s) == NULL;
            }
        if (absent == 0 || it_now_ms() >= deadline)
            return absent;
        receive(100);
    }
}

START_TEST(test_blackhole_outage)
{
    char via[IT_CONNINFO_MAX + 64], listen[64];
    /* libpq takes the last of repeated keys: the proxy's address wins. */
    snprintf(via, sizeof via, "%s host=127.0.0.1 port=%d", g_env.conninfo, F.proxy.port);
    F.metrics_port = it_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", F.metrics_port);
    /* The last --pg wins: the connector reaches PostgreSQL only through
     * the proxy. */
    const char *const extra[] = {
        "--pg",          via,           "--heartbeat", HEARTBEAT,     "--connect_timeout",
        CONNECT_TIMEOUT, "--retry_min", "100ms",       "--retry_max", "1s",
        "--metrics",     listen,        NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, "pg-outage", F.bus.slot, F.bus.exchange, extra),
                     0);
    if (!wait_streaming(1, 30000)) {
        dump_log();
        ck_abort_msg("the connector did not start streaming");
    }

    /* Before: events flow. */
    const char *const phases[] = {"before", "during", "after", NULL};
    int counts[] = {ROWS_BEFORE, 0, ROWS_AFTER};
    for (int i = 0; i < ROWS_BEFORE; i++) {
        char s[64];
        snprintf(s, sizeof s, "before %d", i);
        insert_row(s);
    }
    ck_assert_int_eq(missing(phases, (int[]){ROWS_BEFORE, 0, 0}, 30000), 0);
    double took, amqp0 = scrape(AMQP_RECONNECTS, &took), pg0 = scrape(PG_RECONNECTS, &took);
    ck_assert_msg(!isnan(amqp0) && !isnan(pg0), "no reconnect counters in /metrics");

    /* The outage: the walsender's connection is cut, and every reconnect
     * is accepted and never answered.  Changes keep being committed. */
    double t0 = it_now_ms(), slowest_scrape = 0;
    int scrapes = 0, not_up = 0;
    ck_assert_int_eq(it_proxy_set(&F.proxy, IT_PROXY_BLACKHOLE), 0);
    while (it_now_ms() < t0 + OUTAGE_MS) {
        if (it_now_ms() >= t0 + 1000.0 * counts[1]) {
            char s[64];
            snprintf(s, sizeof s, "during %d", counts[1]++);
            insert_row(s);
        }
        double up = scrape("hms_sync_up", &took);
        ck_assert_msg(!isnan(up), "/metrics did not answer %.0f ms into the outage",
                      it_now_ms() - t0);
        slowest_scrape = took > slowest_scrape ? took : slowest_scrape;
        scrapes++;
        not_up += up == 0;
        double amqp = scrape(AMQP_RECONNECTS, &took);
        if (amqp != amqp0)
            dump_log();
        ck_assert_msg(amqp == amqp0,
                      "the RabbitMQ connection was lost %.0f ms into the PostgreSQL outage "
                      "(reconnects %g, were %g): the loop stalled past the %d ms heartbeat",
                      it_now_ms() - t0, amqp, amqp0, HEARTBEAT_MS);
        receive(1); /* events queued before the cut may still arrive */
        it_sleep_ms(250);
    }
    ck_assert_msg(it_proc_wait(&F.conn, 0) < 0, "the connector exited during the outage");
    int held = atomic_load(&F.proxy.held);
    ck_assert_msg(held >= 1, "the connector never tried to reconnect during the outage");
    ck_assert_msg(not_up > 0, "hms_sync_up never showed PostgreSQL down");
    int deadlines = log_count("no answer within connect_timeout");

    /* Back: it resumes by itself, and everything arrives. */
    double t1 = it_now_ms();
    ck_assert_int_eq(it_proxy_set(&F.proxy, IT_PROXY_PASS), 0);
    if (!wait_streaming(2, 30000)) {
        dump_log();
        ck_abort_msg("the connector did not resume streaming after the outage");
    }
    double resumed_ms = it_now_ms() - t1;
    for (int i = 0; i < ROWS_AFTER; i++) {
        char s[64];
        snprintf(s, sizeof s, "after %d", i);
        insert_row(s);
    }
    int lost = missing(phases, counts, 60000);
    if (lost != 0)
        dump_log();
    ck_assert_msg(lost == 0, "%d committed changes never arrived", lost);
    double amqp1 = scrape(AMQP_RECONNECTS, &took), pg1 = scrape(PG_RECONNECTS, &took);
    ck_assert_msg(amqp1 == amqp0, "RabbitMQ reconnects %g, were %g", amqp1, amqp0);
    ck_assert_msg(pg1 >= pg0 + 1, "PostgreSQL reconnects %g, were %g", pg1, pg0);
    ck_assert_int_eq(log_count("lost the RabbitMQ connection"), 0);
    ck_assert_int_eq(log_count("connected to RabbitMQ"), 1);
    int committed = ROWS_BEFORE + counts[1] + ROWS_AFTER;
    fprintf(stderr,
            "pg-outage: black hole %d ms, heartbeat %d ms, connect_timeout %s: %d reconnect "
            "attempts held, %d ended by their deadline; /metrics answered %d scrapes, slowest "
            "%.0f ms; RabbitMQ reconnects %g; PostgreSQL reconnects %g; streaming again %.0f ms "
            "after the proxy came back; %d of %d committed changes delivered (%d before, %d "
            "during, %d after), %zu copies received, 0 lost\n",
            OUTAGE_MS, HEARTBEAT_MS, CONNECT_TIMEOUT, held, deadlines, scrapes, slowest_scrape,
            amqp1 - amqp0, pg1 - pg0, resumed_ms, committed, committed, ROWS_BEFORE, counts[1],
            ROWS_AFTER, F.received);
}
END_TEST

static Suite *outage_suite(void)
{
    Suite *s = suite_create("pg_outage");
    TCase *tc = tcase_create("blackhole");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_blackhole_outage);
    suite_add_tcase(s, tc);
    return s;
}

IT_MAIN(.name = "pg_outage", .env = &g_env, .source = &g_source, .suite = outage_suite)
