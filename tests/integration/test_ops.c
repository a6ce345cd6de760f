/* test_ops.c -- what operators rely on, against real PostgreSQL and
 * RabbitMQ: the /metrics figures during a live run (lag rising while
 * RabbitMQ blocks publishing and falling after), /healthz and /readyz,
 * sd_notify over a real notify socket, hot-standby takeover after kill -9,
 * and the systemd unit files' required settings. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "it.h"
#include "it_proxy.h"

#ifndef HMS_SCHEMAS_DIR
#error "HMS_SCHEMAS_DIR must name <repo>/schemas"
#endif
#ifndef HMS_VERSION
#error "HMS_VERSION must be the project's version"
#endif

#define REPO_ROOT HMS_SCHEMAS_DIR "/.."

#define CREATED "gov.hms.ehr.IncidentCreated.v1"
#define UPDATED "gov.hms.ehr.IncidentUpdated.v1"
#define DELETED "gov.hms.ehr.IncidentDeleted.v1"

static it_env_t g_env;
static char *g_source;

/* ---- a scraper: one HTTP/1.0 GET over a plain socket ---- */

typedef struct {
    int status; /* HTTP status, or -1 when nothing sensible came back */
    char body[65536];
} http_resp_t;

/* GETs path from 127.0.0.1:port into r; returns r->status. */
static int http_get(int port, const char *path, http_resp_t *r)
{
    r->status = it_http_get("127.0.0.1", port, path, r->body, sizeof r->body);
    return r->status;
}

typedef struct {
    double published_created, published_updated, published_deleted;
    double confirms, nacks, returns, inflight, lag_bytes, lag_seconds, flush_lsn, feedback, up;
    double reconnects_pg;
    char text[65536];
} scrape_t;

static void scrape(int port, scrape_t *s)
{
    static http_resp_t r;
    ck_assert_msg(http_get(port, "/metrics", &r) == 200, "GET /metrics on port %d: status %d", port,
                  r.status);
    snprintf(s->text, sizeof s->text, "%s", r.body);
    s->published_created =
        it_metric(r.body, "hms_sync_events_published_total{type=\"" CREATED "\"}");
    s->published_updated =
        it_metric(r.body, "hms_sync_events_published_total{type=\"" UPDATED "\"}");
    s->published_deleted =
        it_metric(r.body, "hms_sync_events_published_total{type=\"" DELETED "\"}");
    s->confirms = it_metric(r.body, "hms_sync_confirms_total");
    s->nacks = it_metric(r.body, "hms_sync_nacks_total");
    s->returns = it_metric(r.body, "hms_sync_returns_total");
    s->inflight = it_metric(r.body, "hms_sync_inflight_events");
    s->lag_bytes = it_metric(r.body, "hms_sync_replication_lag_bytes");
    s->lag_seconds = it_metric(r.body, "hms_sync_replication_lag_seconds");
    s->flush_lsn = it_metric(r.body, "hms_sync_confirmed_flush_lsn");
    s->feedback = it_metric(r.body, "hms_sync_last_feedback_timestamp_seconds");
    s->up = it_metric(r.body, "hms_sync_up");
    s->reconnects_pg = it_metric(r.body, "hms_sync_reconnects_total{target=\"postgresql\"}");
}

/* Polls path until it answers want (and, if not NULL, a body containing
 * needle) or timeout_ms pass; returns the milliseconds it took or -1. */
static double wait_http(int port, const char *path, int want, const char *needle, int timeout_ms)
{
    static http_resp_t r;
    double t0 = it_now_ms(), deadline = t0 + timeout_ms;
    for (;;) {
        if (http_get(port, path, &r) == want && (!needle || strstr(r.body, needle)))
            return it_now_ms() - t0;
        if (it_now_ms() >= deadline) {
            fprintf(stderr, "ops: %s on port %d: last answer %d %s", path, port, r.status, r.body);
            return -1;
        }
        it_sleep_ms(50);
    }
}

/* ---- fixture ---- */

typedef struct {
    char slot[64];
    char exchange[128];
    it_amqp_t amqp;
    it_proc_t conn, conn2;
    bool exchange_declared;
    bool broker_blocked; /* the memory alarm is raised: teardown clears it */
    it_proxy_t proxy;
    char notify_path[108];
    int notify_fd;
} fx_t;

static fx_t F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    F.notify_fd = -1;
    it_env_slot_name(&g_env, F.slot, sizeof F.slot);
    it_env_exchange_name(&g_env, F.exchange, sizeof F.exchange);
    ck_assert_int_eq(it_amqp_open(&F.amqp, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&F.amqp, F.exchange), 0);
    F.exchange_declared = true;
}

static void broker_unblock(void)
{
    /* Other test programs share this broker: never leave it blocked. */
    if (F.broker_blocked &&
        it_rabbitmqctl(&g_env, 30000, "set_vm_memory_high_watermark", "0.4", NULL) == 0)
        F.broker_blocked = false;
}

static void fx_teardown(void)
{
    broker_unblock();
    if (F.broker_blocked)
        fprintf(stderr, "ops: COULD NOT clear the RabbitMQ memory alarm: run "
                        "`rabbitmqctl set_vm_memory_high_watermark 0.4`\n");
    it_proc_kill(&F.conn);
    it_proc_kill(&F.conn2);
    it_proxy_stop(&F.proxy);
    if (F.notify_fd >= 0) {
        close(F.notify_fd);
        unlink(F.notify_path);
    }
    if (F.amqp.conn && F.exchange_declared)
        it_amqp_delete_exchange(&F.amqp, F.exchange);
    it_amqp_close(&F.amqp);
    it_pg_drop_slot(g_env.pg, F.slot);
}

static void dump_log(const it_proc_t *p, const char *what)
{
    char *out = it_proc_output(p);
    fprintf(stderr, "---- %s (%s) ----\n%s---- end ----\n", what, p->log, out ? out : "");
    free(out);
}

/* Spawns `hms-sync run` on F's slot and exchange with conninfo (NULL: the
 * env's), extra arguments and environment changes (both may be NULL). */
static void spawn_run(it_proc_t *p, const char *tag, const char *conninfo,
                      const char *const extra[], const char *const envset[])
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = "run";
    argv[n++] = "--pg";
    argv[n++] = conninfo ? conninfo : g_env.conninfo;
    argv[n++] = "--amqp";
    argv[n++] = g_env.amqp_url;
    argv[n++] = "--slot";
    argv[n++] = F.slot;
    argv[n++] = "--exchange";
    argv[n++] = F.exchange;
    for (size_t i = 0; extra && extra[i] && n < 63; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    ck_assert_int_eq(it_proc_spawn_env(&g_env, p, tag, argv, envset), 0);
}

static void wait_streaming(it_proc_t *p, const char *tag)
{
    if (it_pg_wait_slot_active(g_env.pg, F.slot, 30000) != 0) {
        dump_log(p, tag);
        ck_abort_msg("%s did not start streaming from slot %s", tag, F.slot);
    }
}

/* ---- received events ---- */

/* Distinct events by id; a duplicate must carry the identical body. */
typedef struct {
    json_object *by_id;
    size_t distinct, received, dups;
    uint64_t max_lsn;
    uint64_t min_lsn_after; /* lowest commit LSN above `after` (0: none yet) */
    uint64_t after;
} coll_t;

static void coll_init(coll_t *c)
{
    memset(c, 0, sizeof *c);
    c->by_id = json_object_new_object();
}

static void coll_free(coll_t *c)
{
    json_object_put(c->by_id);
}

static void coll_add(coll_t *c, it_msg_t *m)
{
    char why[512];
    json_object *ev = it_event_check(m, g_source, why, sizeof why);
    ck_assert_msg(ev != NULL, "event violates the contract: %s", why);
    const char *id = it_json_str(ev, "id");
    json_object *prev = it_json_get(c->by_id, id);
    c->received++;
    if (prev) {
        ck_assert_msg(strcmp(json_object_get_string(prev), m->body) == 0,
                      "duplicate %s with a different body", id);
        c->dups++;
    } else {
        json_object_object_add(c->by_id, id, json_object_new_string(m->body));
        c->distinct++;
        uint64_t lsn = 0;
        it_lsn_parse(it_json_str(ev, "lsn"), &lsn);
        if (lsn > c->max_lsn)
            c->max_lsn = lsn;
        if (lsn > c->after && (c->min_lsn_after == 0 || lsn < c->min_lsn_after))
            c->min_lsn_after = lsn;
    }
    json_object_put(ev);
}

/* Receives for up to wait_ms per message until want distinct events are in
 * or timeout_ms pass; wait_ms 1 just drains. */
static size_t coll_until(coll_t *c, size_t want, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    while (c->distinct < want && it_now_ms() < deadline) {
        it_msg_t m;
        int r = it_amqp_get(&F.amqp, 100, &m);
        ck_assert_int_ge(r, 0);
        if (r == 1) {
            coll_add(c, &m);
            it_msg_free(&m);
        }
    }
    return c->distinct;
}

static void coll_drain(coll_t *c)
{
    it_msg_t m;
    int r;
    while ((r = it_amqp_get(&F.amqp, 1, &m)) == 1) {
        coll_add(c, &m);
        it_msg_free(&m);
    }
    ck_assert_int_ge(r, 0);
}

static void insert_rows(int n, const char *tag)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO incidents (region, summary) "
                                "SELECT '%s', 'ops ' || g FROM generate_series(1, %d) g",
                                tag, n),
                     0);
}

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- (1) metrics during a live run, with RabbitMQ blocked and unblocked ---- */

/* Polls /metrics until confirms reaches want and nothing is in flight. */
static void scrape_settled(int port, double confirms, scrape_t *s, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    for (;;) {
        scrape(port, s);
        if (s->confirms == confirms && s->inflight == 0 && s->lag_seconds == 0)
            return;
        if (it_now_ms() > deadline)
            ck_abort_msg("metrics did not settle at %g confirms: confirms %g inflight %g "
                         "lag_seconds %g",
                         confirms, s->confirms, s->inflight, s->lag_seconds);
        it_sleep_ms(100);
    }
}

START_TEST(test_metrics_live)
{
    if (!g_env.rabbitmqctl) {
        fprintf(stderr, "ops: metrics: HMS_TEST_RABBITMQCTL not set, cannot block the broker\n");
        ck_abort_msg("HMS_TEST_RABBITMQCTL is needed to block RabbitMQ");
    }
    int port = it_free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    ck_assert_int_eq(it_amqp_queue(&F.amqp, F.exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&F.amqp), 0);
    const char *const extra[] = {"--metrics", listen, "--feedback_interval", "1s", NULL};
    spawn_run(&F.conn, "metrics", NULL, extra, NULL);
    wait_streaming(&F.conn, "metrics");
    ck_assert_msg(wait_http(port, "/readyz", 200, "ready", 10000) >= 0, "never ready");

    /* Phase 1: 10 created, 3 updated, 2 deleted, all confirmed. */
    insert_rows(10, "metrics");
    ck_assert_int_eq(it_pg_exec(g_env.pg, "UPDATE incidents SET severity = 2 WHERE id IN "
                                          "(SELECT id FROM incidents WHERE region = 'metrics' "
                                          "ORDER BY id LIMIT 3)"),
                     0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents WHERE id IN "
                                          "(SELECT id FROM incidents WHERE region = 'metrics' "
                                          "ORDER BY id DESC LIMIT 2)"),
                     0);
    coll_t c;
    coll_init(&c);
    ck_assert_uint_eq(coll_until(&c, 15, 30000), 15);
    static scrape_t s;
    scrape_settled(port, 15, &s, 10000);
    ck_assert_msg(s.published_created == 10 && s.published_updated == 3 && s.published_deleted == 2,
                  "published by type: created %g updated %g deleted %g, want 10 3 2\n%s",
                  s.published_created, s.published_updated, s.published_deleted, s.text);
    ck_assert(s.nacks == 0 && s.returns == 0);
    ck_assert(s.up == 1);
    /* The gauge is what the slot was told: past every commit seen. */
    double deadline = it_now_ms() + 10000;
    while (!(s.flush_lsn > (double)c.max_lsn) && it_now_ms() < deadline) {
        it_sleep_ms(100);
        scrape(port, &s);
    }
    ck_assert_msg(s.flush_lsn > (double)c.max_lsn, "confirmed_flush_lsn %g, last commit at %s",
                  s.flush_lsn, it_lsn_str(c.max_lsn));
    double age = unix_now() - s.feedback;
    ck_assert_msg(age >= -1 && age < 5, "last feedback %g s ago (feedback_interval 1s)", age);
    char build[128];
    snprintf(build, sizeof build, "hms_sync_build_info{version=\"%s\"}", HMS_VERSION);
    ck_assert_msg(it_metric(s.text, build) == 1, "no %s 1 in:\n%s", build, s.text);
    static const char *const families[] = {
        "# TYPE hms_sync_events_published_total counter",
        "# TYPE hms_sync_confirms_total counter",
        "# TYPE hms_sync_nacks_total counter",
        "# TYPE hms_sync_returns_total counter",
        "# TYPE hms_sync_reconnects_total counter",
        "# TYPE hms_sync_inflight_events gauge",
        "# TYPE hms_sync_replication_lag_bytes gauge",
        "# TYPE hms_sync_replication_lag_seconds gauge",
        "# TYPE hms_sync_confirmed_flush_lsn gauge",
        "# TYPE hms_sync_last_feedback_timestamp_seconds gauge",
        "# TYPE hms_sync_build_info gauge",
        "# TYPE hms_sync_slot_wal_retained_bytes gauge",
        "# TYPE hms_sync_slot_wal_keep_max_bytes gauge",
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        ck_assert_msg(strstr(s.text, families[i]), "missing \"%s\"", families[i]);

    /* Phase 2: RabbitMQ blocks publishers (memory alarm).  Changes keep
     * committing; nothing can be confirmed, so both lags must rise. */
    c.after = c.max_lsn;
    c.min_lsn_after = 0;
    ck_assert_int_eq(it_rabbitmqctl(&g_env, 30000, "set_vm_memory_high_watermark", "0", NULL), 0);
    F.broker_blocked = true;
    it_sleep_ms(300);
    for (int i = 0; i < 10; i++)
        insert_rows(1, "blocked");
    it_sleep_ms(700);
    static scrape_t b1, b2;
    scrape(port, &b1);
    for (int i = 0; i < 10; i++)
        insert_rows(1, "blocked");
    it_sleep_ms(1000);
    scrape(port, &b2);
    coll_drain(&c);
    fprintf(stderr,
            "ops: blocked: lag %g B / %g s, then %g B / %g s; confirms %g; inflight %g; "
            "received %zu\n",
            b1.lag_bytes, b1.lag_seconds, b2.lag_bytes, b2.lag_seconds, b2.confirms, b2.inflight,
            c.distinct);
    ck_assert_msg(b2.confirms == 15 && c.distinct == 15,
                  "the broker was not blocking: %g confirms, %zu events received", b2.confirms,
                  c.distinct);
    ck_assert_msg(b1.lag_bytes > 0 && b2.lag_bytes > b1.lag_bytes,
                  "lag_bytes did not rise while blocked: %g then %g", b1.lag_bytes, b2.lag_bytes);
    ck_assert_msg(b1.lag_seconds > 0 && b2.lag_seconds > b1.lag_seconds,
                  "lag_seconds did not rise while blocked: %g then %g", b1.lag_seconds,
                  b2.lag_seconds);
    /* Decided: blocked is not down.  Both connections are up and the slot
     * streams, so readiness holds (restarting or failing over to a standby
     * would only meet the same broker); the lag gauges are what alerts. */
    static http_resp_t r;
    ck_assert_int_eq(http_get(port, "/readyz", &r), 200);
    ck_assert(b2.up == 1);
    /* The status page and /status.json say the same, and show why. */
    ck_assert_int_eq(http_get(port, "/", &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "<p id=\"headline\" class=\"ok\">ready: streaming"));
    ck_assert_ptr_nonnull(strstr(r.body, "<tr id=\"row-lag_in_wal\""));
    ck_assert_ptr_nonnull(strstr(r.body, "id=\"chart-lag\""));
    ck_assert_ptr_nonnull(strstr(r.body, "RabbitMQ blocked publishing"));
    ck_assert_int_eq(http_get(port, "/status.json", &r), 200);
    json_object *js = json_tokener_parse(r.body);
    ck_assert_msg(js != NULL, "status.json is not JSON: %.300s", r.body);
    ck_assert(json_object_get_boolean(it_json_get(js, "ready")));
    ck_assert_int_gt(json_object_get_int64(it_json_get(js, "lag_bytes")), 0);
    ck_assert_int_eq(json_object_get_int64(it_json_get(js, "confirmed_total")), 15);
    ck_assert_str_eq(it_json_str(js, "slot"), F.slot);
    ck_assert_ptr_nonnull(strstr(it_json_str(it_json_get(js, "last_problem"), "message"),
                                 "RabbitMQ blocked publishing"));
    ck_assert(json_object_is_type(it_json_get(it_json_get(js, "trend"), "age_s"), json_type_array));
    json_object_put(js);

    /* Phase 3: unblock; everything arrives and the lag falls to 0. */
    broker_unblock();
    ck_assert_msg(!F.broker_blocked, "could not clear the memory alarm");
    ck_assert_uint_eq(coll_until(&c, 35, 30000), 35);
    /* While blocked the slot may move over other databases' WAL, never
     * over the first transaction the broker had not confirmed. */
    ck_assert_msg(b2.flush_lsn <= (double)c.min_lsn_after,
                  "confirmed_flush_lsn reached %g while the commit at %s was unconfirmed",
                  b2.flush_lsn, it_lsn_str(c.min_lsn_after));
    scrape_settled(port, 35, &s, 15000);
    ck_assert_msg(s.published_created == 30, "published created %g, want 30", s.published_created);
    deadline = it_now_ms() + 20000;
    while (s.lag_bytes != 0 && it_now_ms() < deadline) {
        it_sleep_ms(100);
        scrape(port, &s);
    }
    ck_assert_msg(s.lag_bytes == 0 && s.lag_seconds == 0, "lag after unblocking: %g B, %g s",
                  s.lag_bytes, s.lag_seconds);
    ck_assert_uint_eq(c.dups, 0);
    ck_assert_int_eq(it_pg_wait_confirmed(g_env.pg, F.slot, c.max_lsn + 1, 15000), 0);
    coll_free(&c);
}
END_TEST

/* ---- (2) readiness: /healthz always, /readyz only while streaming ---- */

START_TEST(test_readiness)
{
    ck_assert_int_eq(it_proxy_start(&F.proxy, atoi(g_env.port)), 0);
    char via[IT_CONNINFO_MAX + 64];
    /* libpq takes the last of repeated keys: the proxy's address wins. */
    snprintf(via, sizeof via, "%s host=127.0.0.1 port=%d", g_env.conninfo, F.proxy.port);
    int pa = it_free_port(), pb = it_free_port();
    char la[64], lb[64];
    snprintf(la, sizeof la, "127.0.0.1:%d", pa);
    snprintf(lb, sizeof lb, "127.0.0.1:%d", pb);
    ck_assert_int_eq(it_amqp_queue(&F.amqp, F.exchange, 0, false), 0);
    const char *const ea[] = {"--metrics",   la,      "--retry_min", "100ms",
                              "--retry_max", "500ms", NULL};
    spawn_run(&F.conn, "ready-a", via, ea, NULL);
    wait_streaming(&F.conn, "ready-a");
    ck_assert_msg(wait_http(pa, "/readyz", 200, "ready", 10000) >= 0, "A never ready");
    static http_resp_t r;
    static scrape_t s;
    ck_assert_int_eq(http_get(pa, "/healthz", &r), 200);
    ck_assert_int_eq(http_get(pa, "/nope", &r), 404);

    /* PostgreSQL unreachable: not ready (saying why), still alive. */
    ck_assert_int_eq(it_proxy_set(&F.proxy, IT_PROXY_DOWN), 0);
    ck_assert_msg(wait_http(pa, "/readyz", 503, "PostgreSQL", 5000) >= 0,
                  "A stayed ready with PostgreSQL unreachable");
    ck_assert_int_eq(http_get(pa, "/healthz", &r), 200);
    scrape(pa, &s);
    ck_assert(s.up == 0);
    /* Back: ready again, and the reconnect counted. */
    ck_assert_int_eq(it_proxy_set(&F.proxy, IT_PROXY_PASS), 0);
    if (wait_http(pa, "/readyz", 200, "ready", 10000) < 0) {
        dump_log(&F.conn, "A");
        ck_abort_msg("A not ready after PostgreSQL came back");
    }
    scrape(pa, &s);
    ck_assert(s.up == 1 && s.reconnects_pg >= 1);

    /* A standby on the same slot: alive, not ready, and says why. */
    const char *const eb[] = {"--metrics", lb, "--standby", NULL};
    spawn_run(&F.conn2, "ready-b", NULL, eb, NULL);
    if (wait_http(pb, "/readyz", 503, "standby", 15000) < 0) {
        dump_log(&F.conn2, "standby");
        ck_abort_msg("standby's /readyz is not 503 standby");
    }
    ck_assert_int_eq(http_get(pb, "/healthz", &r), 200);
    ck_assert_int_eq(http_get(pa, "/readyz", &r), 200);

    /* A cut off again: its walsender dies with the link and the standby
     * takes the slot. */
    ck_assert_int_eq(it_proxy_set(&F.proxy, IT_PROXY_DOWN), 0);
    ck_assert_msg(wait_http(pa, "/readyz", 503, "PostgreSQL", 5000) >= 0,
                  "A stayed ready with PostgreSQL unreachable");
    ck_assert_msg(wait_http(pb, "/readyz", 200, "ready", 10000) >= 0,
                  "the standby did not take over while A was cut off");

    /* PostgreSQL reachable, but the slot is held by another process: A is
     * alive, not ready, and keeps trying rather than exiting.  (When A
     * finally gets the slot back it now exits 1, "slot ... past where
     * hms-sync left it": B moved it.  Deliberately not asserted here; see
     * the ops report.) */
    ck_assert_int_eq(it_proxy_set(&F.proxy, IT_PROXY_PASS), 0);
    double until = it_now_ms() + 3000;
    while (it_now_ms() < until) {
        ck_assert_int_eq(http_get(pa, "/readyz", &r), 503);
        ck_assert_msg(strstr(r.body, "PostgreSQL") != NULL, "reason: %s", r.body);
        ck_assert_int_eq(http_get(pa, "/healthz", &r), 200);
        ck_assert_int_eq(http_get(pb, "/readyz", &r), 200);
        it_sleep_ms(200);
    }
    ck_assert_msg(it_proc_wait(&F.conn, 0) < 0, "A exited while the slot was busy");
}
END_TEST

/* ---- (3) sd_notify over a real notify socket ---- */

typedef struct {
    double at_ms;
    char text[512];
} dgram_t;

/* Receives one datagram within timeout_ms: 1, or 0 on timeout. */
static int notify_recv(dgram_t *d, int timeout_ms)
{
    struct pollfd pfd = {F.notify_fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return 0;
    ssize_t n = recv(F.notify_fd, d->text, sizeof d->text - 1, 0);
    ck_assert_int_ge(n, 0);
    d->text[n] = '\0';
    d->at_ms = it_now_ms();
    return 1;
}

/* Waits for a datagram containing needle; others are skipped, WATCHDOG=1
 * ones counted in *watchdogs (may be NULL).  Returns ms waited or -1. */
static double notify_wait(const char *needle, int timeout_ms, int *watchdogs, dgram_t *got)
{
    double t0 = it_now_ms(), deadline = t0 + timeout_ms;
    dgram_t d;
    while (it_now_ms() < deadline) {
        if (!notify_recv(&d, (int)(deadline - it_now_ms()) + 1))
            break;
        if (watchdogs && strstr(d.text, "WATCHDOG=1"))
            (*watchdogs)++;
        if (strstr(d.text, needle)) {
            if (got)
                *got = d;
            return d.at_ms - t0;
        }
    }
    return -1;
}

START_TEST(test_sd_notify)
{
    snprintf(F.notify_path, sizeof F.notify_path, "/tmp/hms-ops-notify-%ld.sock", (long)getpid());
    unlink(F.notify_path);
    F.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(F.notify_fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", F.notify_path);
    ck_assert_int_eq(bind(F.notify_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char ns[160];
    snprintf(ns, sizeof ns, "NOTIFY_SOCKET=%s", F.notify_path);
    /* WATCHDOG_PID is removed: libsystemd ignores the watchdog when it
     * names another process. */
    const char *const envset[] = {ns, "WATCHDOG_USEC=2000000", "WATCHDOG_PID", NULL};
    ck_assert_int_eq(it_amqp_queue(&F.amqp, F.exchange, 0, false), 0);
    const char *const extra[] = {"--retry_min", "100ms", "--retry_max", "500ms", NULL};
    spawn_run(&F.conn, "notify", NULL, extra, envset);

    dgram_t d;
    double ms = notify_wait("READY=1", 30000, NULL, &d);
    if (ms < 0)
        dump_log(&F.conn, "connector");
    ck_assert_msg(ms >= 0, "no READY=1");
    ck_assert_msg(strstr(d.text, "STATUS=streaming"), "READY without a streaming STATUS: %s",
                  d.text);
    /* It says ready only once it really streams. */
    ck_assert_int_eq(it_pg_wait_slot_active(g_env.pg, F.slot, 1000), 0);

    /* WATCHDOG=1 every second (half of WATCHDOG_USEC), also while idle. */
    int wd = 0;
    double last = -1, worst = 0, until = it_now_ms() + 3500;
    while (it_now_ms() < until) {
        if (!notify_recv(&d, (int)(until - it_now_ms()) + 1))
            break;
        if (strstr(d.text, "WATCHDOG=1")) {
            if (last >= 0 && d.at_ms - last > worst)
                worst = d.at_ms - last;
            last = d.at_ms;
            wd++;
        }
    }
    fprintf(stderr, "ops: notify: %d WATCHDOG=1 in 3.5 s, longest gap %.0f ms\n", wd, worst);
    ck_assert_msg(wd >= 3, "%d WATCHDOG=1 in 3.5 s", wd);
    /* systemd would kill it after 2 s without one; the slack is for a
     * loaded CI machine. */
    ck_assert_msg(worst <= 1600, "WATCHDOG=1 gap of %.0f ms (WATCHDOG_USEC 2 s)", worst);

    /* PostgreSQL lost (walsender terminated) and back: STATUS says both. */
    char *pid = it_pg_value(g_env.pg,
                            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                            "WHERE slot_name = '%s'",
                            F.slot);
    ck_assert_msg(pid && strcmp(pid, "t") == 0, "could not terminate the walsender");
    free(pid);
    wd = 0;
    ms = notify_wait("STATUS=PostgreSQL replication connection lost", 10000, &wd, &d);
    ck_assert_msg(ms >= 0, "no STATUS about the lost PostgreSQL connection");
    ms = notify_wait("STATUS=streaming", 15000, &wd, &d);
    if (ms < 0)
        dump_log(&F.conn, "connector");
    ck_assert_msg(ms >= 0, "no STATUS=streaming after reconnecting");

    /* SIGTERM: STOPPING=1, then a clean exit. */
    it_proc_signal(&F.conn, SIGTERM);
    ck_assert_msg(notify_wait("STOPPING=1", 10000, NULL, &d) >= 0, "no STOPPING=1");
    ck_assert_int_eq(it_proc_wait(&F.conn, 15000), 0);
}
END_TEST

/* ---- (4) HA: the standby takes over after kill -9 ---- */

START_TEST(test_ha_takeover)
{
    int pa = it_free_port(), pb = it_free_port();
    char la[64], lb[64];
    snprintf(la, sizeof la, "127.0.0.1:%d", pa);
    snprintf(lb, sizeof lb, "127.0.0.1:%d", pb);
    ck_assert_int_eq(it_amqp_queue(&F.amqp, F.exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&F.amqp), 0);
    const char *const ea[] = {"--metrics", la, NULL};
    const char *const eb[] = {"--metrics", lb, "--standby", NULL};
    spawn_run(&F.conn, "ha-active", NULL, ea, NULL);
    wait_streaming(&F.conn, "ha-active");
    spawn_run(&F.conn2, "ha-standby", NULL, eb, NULL);
    if (wait_http(pb, "/readyz", 503, "standby", 15000) < 0) {
        dump_log(&F.conn2, "standby");
        ck_abort_msg("the standby is not waiting as a standby");
    }
    ck_assert_int_eq(wait_http(pa, "/readyz", 200, NULL, 5000) >= 0, 1);

    /* A steady stream: one transaction of 5 rows every ~25 ms. */
    const int ntx = 240, per_tx = 5, kill_at = 60;
    coll_t c;
    coll_init(&c);
    double killed_at = 0, takeover_ms = -1;
    static http_resp_t r;
    for (int t = 0; t < ntx; t++) {
        insert_rows(per_tx, "ha");
        if (t == kill_at) {
            it_proc_signal(&F.conn, SIGKILL);
            killed_at = it_now_ms();
            ck_assert_int_eq(it_proc_wait(&F.conn, 5000), 128 + SIGKILL);
        }
        if (killed_at > 0 && takeover_ms < 0 && http_get(pb, "/readyz", &r) == 200)
            takeover_ms = it_now_ms() - killed_at;
        coll_drain(&c);
        it_sleep_ms(20);
    }
    if (takeover_ms < 0) {
        double ms = wait_http(pb, "/readyz", 200, NULL, 15000);
        takeover_ms = ms < 0 ? -1 : it_now_ms() - killed_at;
    }
    size_t want = (size_t)(ntx * per_tx);
    size_t got = coll_until(&c, want, 60000);
    fprintf(stderr,
            "ops: HA takeover: standby ready %.0f ms after kill -9; %zu distinct events, %zu "
            "duplicates\n",
            takeover_ms, got, c.dups);
    if (got != want || takeover_ms < 0)
        dump_log(&F.conn2, "standby");
    ck_assert_msg(takeover_ms >= 0 && takeover_ms <= 10000, "takeover took %.0f ms", takeover_ms);
    ck_assert_uint_eq(got, want);
    char *took = it_proc_output(&F.conn2);
    ck_assert_msg(took && strstr(took, "standby took over"), "the standby did not log a takeover");
    free(took);
    ck_assert_int_eq(it_pg_wait_confirmed(g_env.pg, F.slot, c.max_lsn + 1, 15000), 0);
    coll_free(&c);
}
END_TEST

/* ---- (5) the systemd units carry what operations depend on ---- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* True when text has the line "key=value" exactly (outside comments). */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* The seconds of a "key=Ns" line, or -1. */
static int seconds_of(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        int v;
        if (strncmp(p, key, n) == 0 && p[n] == '=' && sscanf(p + n + 1, "%ds", &v) == 1)
            return v;
    }
    return -1;
}

START_TEST(test_unit_files)
{
    const char *path = REPO_ROOT "/deploy/systemd/hms-sync.service";
    const char *text = read_text(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    static const char *const required[] = {
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "RestartSec=2s",
        "ExecStart=/usr/bin/hms-sync run --config /etc/hms-sync/hms-sync.ini",
        "User=hms-sync",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=",
        "[Install]",
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        ck_assert_msg(has_line(text, required[i]), "%s lacks the line \"%s\"", path, required[i]);
    /* SIGKILL must not cut the shutdown_timeout (10 s) wait for confirms short. */
    int stop = seconds_of(text, "TimeoutStopSec");
    ck_assert_msg(stop > 10, "TimeoutStopSec=%ds is not above shutdown_timeout (10s)", stop);
    /* The watchdog is petted every WatchdogSec/2; a loop blocked for up to
     * connect_timeout (10 s) must not be killed for it. */
    ck_assert_int_gt(seconds_of(text, "WatchdogSec"), 2 * 10);

    path = REPO_ROOT "/deploy/systemd/hms-sync-consume@.service";
    text = read_text(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    ck_assert(has_line(text, "ExecStart=/usr/bin/hms-sync consume --config "
                             "/etc/hms-sync/consume-%i.ini"));
    ck_assert(has_line(text, "User=hms-sync"));
    ck_assert(has_line(text, "Restart=on-failure"));
    ck_assert(has_line(text, "NoNewPrivileges=yes"));
    ck_assert(has_line(text, "ProtectSystem=strict"));
    ck_assert(has_line(text, "CapabilityBoundingSet="));
    /* consume never sends READY=1: Type=notify would hang its start. */
    ck_assert(!has_line(text, "Type=notify"));
    ck_assert_int_gt(seconds_of(text, "TimeoutStopSec"), 10);
}
END_TEST

/* ---- (6) the listener on an IPv6 address and on a host name ---- */

/* Whether this machine can listen on ::1 at all: a CI container may run
 * without IPv6. */
static bool ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* `run --metrics listen` answers GET /metrics at host:port, `status
 * --metrics listen` reads the same figures, and the run stops cleanly. */
static void check_listener(const char *tag, const char *host, const char *listen, int port)
{
    static char body[65536];
    char stag[64];
    const char *const extra[] = {"--metrics", listen, NULL};
    spawn_run(&F.conn, tag, NULL, extra, NULL);
    wait_streaming(&F.conn, tag);
    int code = it_http_get(host, port, "/metrics", body, sizeof body);
    if (code != 200)
        dump_log(&F.conn, tag);
    ck_assert_msg(code == 200, "%s: GET http://%s/metrics: status %d", tag, listen, code);
    ck_assert_msg(strstr(body, "\nhms_sync_up ") != NULL, "%s: no hms_sync_up in %s", tag, body);

    const char *const status[] = {"status", "--pg",      g_env.conninfo, "--slot",
                                  F.slot,   "--metrics", listen,         NULL};
    it_proc_t p;
    snprintf(stag, sizeof stag, "%s-status", tag);
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, stag, status), 0);
    code = it_proc_wait(&p, 30000);
    it_proc_kill(&p);
    char *out = it_proc_output(&p);
    ck_assert_msg(code == 0 && out && strstr(out, "hms_sync_confirms_total"),
                  "%s: status --metrics %s exited %d: %s", tag, listen, code, out ? out : "");
    free(out);
    it_proc_signal(&F.conn, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&F.conn, 20000), 0);
}

START_TEST(test_listen_forms)
{
    char listen[64];
    int port = it_free_port();
    if (ipv6_loopback()) {
        snprintf(listen, sizeof listen, "[::1]:%d", port);
        check_listener("listen-ipv6", "::1", listen, port);
    } else {
        fprintf(stderr, "ops: listen: SKIPPING the [::1]:PORT case: this machine cannot bind "
                        "::1 (no IPv6)\n");
    }
    port = it_free_port();
    snprintf(listen, sizeof listen, "localhost:%d", port);
    check_listener("listen-name", "localhost", listen, port);
}
END_TEST

/* ---- status --watch: frames while lag grows, then a clean stop ---- */

/* How many times needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

START_TEST(test_status_watch)
{
    /* A bad interval is refused at once, with one line. */
    const char *const bad[] = {"status", "--pg", g_env.conninfo, "--watch", "0", NULL};
    it_proc_t p;
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, "watch-bad", bad), 0);
    ck_assert_int_eq(it_proc_wait(&p, 10000), 2);
    char *out = it_proc_output(&p);
    ck_assert_msg(out &&
                      strstr(out, "--watch: SECONDS must be a whole number from 1 to 3600, got "
                                  "\"0\"") &&
                      it_count_lines(out) == 1,
                  "%s", out ? out : "");
    free(out);

    /* The slot exists and stands still (no connector), while rows commit:
     * its lag grows, and the frames' trend says so. */
    spawn_run(&F.conn, "watch-run", NULL, NULL, NULL);
    wait_streaming(&F.conn, "watch-run");
    it_proc_signal(&F.conn, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&F.conn, 20000), 0);
    const char *const watch[] = {"status", "--pg", g_env.conninfo, "--slot", F.slot, "--watch",
                                 "1",      NULL};
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, "watch", watch), 0);
    for (int i = 0; i < 8; i++) {
        insert_rows(20, "watch");
        it_sleep_ms(500);
    }
    it_proc_signal(&p, SIGINT);
    ck_assert_int_eq(it_proc_wait(&p, 10000), 0);
    out = it_proc_output(&p);
    ck_assert_ptr_nonnull(out);
    int frames = count_of(out, "hms-sync status --watch 1: ");
    ck_assert_msg(frames >= 3, "%d frames:\n%s", frames, out);
    ck_assert_int_eq(count_of(out, "confirmed_flush_lsn:"), frames);
    ck_assert_ptr_null(strstr(out, "\033[")); /* not a terminal: no screen control */
    /* The last frame's trend: the lag rose since the view started. */
    const char *last = strstr(out, "lag trend since ");
    for (const char *q = last; q != NULL; q = strstr(q + 1, "lag trend since "))
        last = q;
    ck_assert_msg(last != NULL && strstr(last, " bytes/min ") != NULL &&
                      strstr(last, ", +") != NULL,
                  "no rising trend in the last frame:\n%s", out);
    fprintf(stderr, "ops: status --watch: %d frames; %.*s", frames, (int)strcspn(last, "\n") + 1,
            last);
    free(out);
}
END_TEST

static TCase *tcase(const char *name, const TTest *fn, bool servers)
{
    TCase *tc = tcase_create(name);
    if (servers)
        tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fn);
    return tc;
}

/* The unit files need no server: checked even when the servers are not
 * configured. */
static Suite *files_suite(void)
{
    Suite *s = suite_create("ops-files");
    suite_add_tcase(s, tcase("units", test_unit_files, false));
    return s;
}

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    suite_add_tcase(s, tcase("metrics", test_metrics_live, true));
    suite_add_tcase(s, tcase("readiness", test_readiness, true));
    suite_add_tcase(s, tcase("sd_notify", test_sd_notify, true));
    suite_add_tcase(s, tcase("ha", test_ha_takeover, true));
    suite_add_tcase(s, tcase("listen", test_listen_forms, true));
    suite_add_tcase(s, tcase("watch", test_status_watch, true));
    return s;
}

IT_MAIN(.name = "ops", .env = &g_env, .source = &g_source, .offline = files_suite,
        .suite = ops_suite)
