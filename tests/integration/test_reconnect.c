/* test_reconnect.c -- hms-sync run survives losing either server mid-stream
 * (walsender terminated, broker connections closed, broker app restarted)
 * and a broker memory alarm longer than wal_sender_timeout: every committed
 * change still arrives, duplicates are identical, the slot reaches the end.
 *
 * These tests disturb the shared scratch broker (they close every connection
 * and restart its app), so they run serially and put the broker back as
 * they found it in their teardown, also when they fail. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"
#include "it_proxy.h"

#define CREATED "gov.hms.ehr.IncidentCreated.v1"
#define UPDATED "gov.hms.ehr.IncidentUpdated.v1"
#define DELETED "gov.hms.ehr.IncidentDeleted.v1"

/* The broker's default, which tests/servers.sh leaves in place. */
#define WATERMARK_NORMAL "0.4"

static it_env_t g_env;
static char *g_source;
/* Set while this program holds the broker's memory alarm: the atexit
 * handler clears it if the program ends some other way than teardown. */
static bool g_alarm_held;

typedef struct {
    char slot[64];
    char exchange[128];
    char queue[160];
    it_amqp_t amqp;
    bool consumer_up;
    double consumer_retry_at;
    int consumer_reopens;
    it_proc_t conn;
    it_proc_t fault;       /* an asynchronous rabbitmqctl */
    bool app_restarted;    /* stop_app was issued: teardown makes sure of start_app */
    const char *amqp_list; /* what the connector gets: g_env's URL unless a test lists nodes */
    it_proxy_t px;         /* a stand-in node of a cluster, when a test needs one */
} fx_t;

static fx_t F;

static void clear_alarm(void)
{
    if (g_alarm_held &&
        it_rabbitmqctl(&g_env, 30000, "set_vm_memory_high_watermark", WATERMARK_NORMAL, NULL) == 0)
        g_alarm_held = false;
}

/* The program's setup: the alarm is cleared however the program ends. */
static int clear_alarm_at_exit(void)
{
    return atexit(clear_alarm) == 0 ? 0 : -1;
}

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    F.amqp_list = g_env.amqp_url;
    it_env_slot_name(&g_env, F.slot, sizeof F.slot);
    it_env_exchange_name(&g_env, F.exchange, sizeof F.exchange);
    snprintf(F.queue, sizeof F.queue, "%s.q", F.exchange);
    ck_assert_ptr_nonnull(g_env.rabbitmqctl);
    ck_assert_int_eq(it_amqp_open(&F.amqp, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&F.amqp, F.exchange), 0);
    ck_assert_int_eq(it_amqp_queue_durable(&F.amqp, F.queue, F.exchange), 0);
    ck_assert_int_eq(it_amqp_consume(&F.amqp), 0);
    F.consumer_up = true;
}

static void fx_teardown(void)
{
    it_proc_kill(&F.conn);
    it_proxy_stop(&F.px);
    if (F.fault.pid > 0 && it_proc_wait(&F.fault, 30000) < 0)
        it_proc_kill(&F.fault);
    clear_alarm();
    if (F.app_restarted)
        it_rabbitmqctl(&g_env, 60000, "start_app", NULL);
    /* A fresh connection: the consumer's may be dead.  The broker may still
     * be starting after start_app, so try for a while. */
    it_amqp_abandon(&F.amqp);
    it_amqp_t admin;
    memset(&admin, 0, sizeof admin);
    double deadline = it_now_ms() + 30000;
    while (it_amqp_open(&admin, g_env.amqp_url) != 0 && it_now_ms() < deadline)
        it_sleep_ms(500);
    if (admin.conn) {
        it_amqp_delete_queue(&admin, F.queue);
        it_amqp_delete_exchange(&admin, F.exchange);
        it_amqp_close(&admin);
    }
    if (PQtransactionStatus(g_env.pg) == PQTRANS_INTRANS ||
        PQtransactionStatus(g_env.pg) == PQTRANS_INERROR)
        PQclear(PQexec(g_env.pg, "ROLLBACK")); /* a test failed inside one */
    it_pg_drop_slot(g_env.pg, F.slot);
}

static void dump_log(const it_proc_t *p, const char *what)
{
    char *out = it_proc_output(p);
    fprintf(stderr, "---- %s (%s) ----\n%s---- end ----\n", what, p->log, out ? out : "");
    free(out);
}

static int count_substr(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static const char *const fast_retry[] = {"--retry_min", "100ms", "--retry_max", "1s", NULL};

static void start_connector(const char *conninfo, const char *tag, const char *const extra[])
{
    const char *argv[40];
    size_t n = 0;
    const char *base[] = {"run",    "--pg", conninfo,     "--amqp",   F.amqp_list,
                          "--slot", F.slot, "--exchange", F.exchange, NULL};
    for (size_t i = 0; base[i]; i++)
        argv[n++] = base[i];
    for (size_t i = 0; extra && extra[i] && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    ck_assert_int_eq(it_proc_spawn(&g_env, &F.conn, tag, argv), 0);
    if (it_pg_wait_slot_active(g_env.pg, F.slot, 30000) != 0) {
        dump_log(&F.conn, tag);
        ck_abort_msg("connector did not start streaming from slot %s", F.slot);
    }
}

/* ---- a consumer that outlives the broker's connection ---- */

/* Waits up to timeout_ms for one message.  A dead connection is dropped and
 * reopened (at most once a second) on the durable queue, whose unacked
 * messages the broker has put back. */
static int cons_get(int timeout_ms, it_msg_t *m)
{
    if (!F.consumer_up) {
        double now = it_now_ms();
        if (now < F.consumer_retry_at) {
            double wait = F.consumer_retry_at - now;
            it_sleep_ms(wait < timeout_ms ? (int)wait : timeout_ms);
            return 0;
        }
        F.consumer_retry_at = now + 1000;
        if (it_amqp_open(&F.amqp, g_env.amqp_url) != 0)
            return 0;
        snprintf(F.amqp.queue, sizeof F.amqp.queue, "%s", F.queue);
        if (it_amqp_consume(&F.amqp) != 0) {
            it_amqp_abandon(&F.amqp);
            return 0;
        }
        F.consumer_up = true;
        F.consumer_reopens++;
    }
    int r = it_amqp_get(&F.amqp, timeout_ms, m);
    if (r < 0) {
        it_amqp_abandon(&F.amqp);
        F.consumer_up = false;
        F.consumer_retry_at = it_now_ms() + 200;
        return 0;
    }
    return r;
}

/* ---- what arrived ---- */

typedef struct {
    json_object *by_id;    /* id -> body of the first copy */
    json_object *arrivals; /* every copy, parsed, in arrival order */
    size_t dups;
    uint64_t max_lsn;
} rx_t;

static void rx_init(rx_t *rx)
{
    memset(rx, 0, sizeof *rx);
    rx->by_id = json_object_new_object();
    rx->arrivals = json_object_new_array();
}

static void rx_free(rx_t *rx)
{
    json_object_put(rx->by_id);
    json_object_put(rx->arrivals);
}

static size_t rx_distinct(const rx_t *rx)
{
    return (size_t)json_object_object_length(rx->by_id);
}

/* Checks one message against the contract; a copy must equal the first. */
static void rx_add(rx_t *rx, const it_msg_t *m)
{
    char why[512];
    json_object *ev = it_event_check(m, g_source, why, sizeof why);
    ck_assert_msg(ev != NULL, "event violates the contract: %s", why);
    const char *id = it_json_str(ev, "id");
    json_object *prev = it_json_get(rx->by_id, id);
    if (prev) {
        ck_assert_msg(strcmp(json_object_get_string(prev), m->body) == 0,
                      "duplicate %s with a different body:\n%s\n%s", id,
                      json_object_get_string(prev), m->body);
        rx->dups++;
    } else {
        json_object_object_add(rx->by_id, id, json_object_new_string(m->body));
    }
    json_object_array_add(rx->arrivals, ev);
    uint64_t lsn = 0;
    it_lsn_parse(it_json_str(ev, "lsn"), &lsn);
    if (lsn > rx->max_lsn)
        rx->max_lsn = lsn;
}

static void rx_drain(rx_t *rx)
{
    it_msg_t m;
    while (cons_get(1, &m) == 1) {
        rx_add(rx, &m);
        it_msg_free(&m);
    }
}

static size_t rx_until(rx_t *rx, size_t want, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    while (rx_distinct(rx) < want && it_now_ms() < deadline) {
        it_msg_t m;
        if (cons_get(200, &m) == 1) {
            rx_add(rx, &m);
            it_msg_free(&m);
        }
    }
    return rx_distinct(rx);
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

/* ---- the workload: creates, updates and deletes, 20 events a commit ---- */

typedef struct {
    const char *tag;
    int t;             /* transactions committed */
    int rows;          /* incidents created per transaction */
    json_object *want; /* subject -> expected event types, in commit order */
    size_t events;     /* events expected in all */
} wl_t;

static void wl_init(wl_t *w, const char *tag)
{
    memset(w, 0, sizeof *w);
    w->tag = tag;
    w->rows = 10;
    w->want = json_object_new_object();
}

static void wl_expect(wl_t *w, json_object *ids, const char *type)
{
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        const char *id = json_object_get_string(json_object_array_get_idx(ids, i));
        json_object *list = it_json_get(w->want, id);
        if (!list) {
            list = json_object_new_array();
            json_object_object_add(w->want, id, list);
        }
        json_object_array_add(list, json_object_new_string(type));
        w->events++;
    }
    json_object_put(ids);
}

/* One transaction: w->rows new incidents, the previous transaction's
 * updated, and every tenth commit the ones before those deleted. */
static void wl_step(wl_t *w)
{
    PGconn *pg = g_env.pg;
    int t = w->t;
    ck_assert_int_eq(it_pg_exec(pg, "BEGIN"), 0);
    wl_expect(w,
              it_pg_column(pg,
                           "INSERT INTO incidents (region, summary, reported_by) "
                           "SELECT 'r' || (g %% 5), '%s b%d', 'nurse ' || g "
                           "FROM generate_series(1, %d) g RETURNING id",
                           w->tag, t, w->rows),
              CREATED);
    if (t >= 1)
        wl_expect(w,
                  it_pg_column(pg,
                               "UPDATE incidents SET status = 'seen' WHERE summary = '%s b%d' "
                               "RETURNING id",
                               w->tag, t - 1),
                  UPDATED);
    if (t >= 2 && t % 10 == 9)
        wl_expect(w,
                  it_pg_column(pg, "DELETE FROM incidents WHERE summary = '%s b%d' RETURNING id",
                               w->tag, t - 2),
                  DELETED);
    ck_assert_int_eq(it_pg_exec(pg, "COMMIT"), 0);
    w->t++;
}

/* Receives until every expected event is in, then checks: each subject's
 * events (their last copies, in arrival order) are exactly the expected
 * types in commit order with versions as the trigger sets them, and the
 * slot confirms past the last commit. */
static void verify_all(rx_t *rx, wl_t *w, int timeout_ms)
{
    size_t got = rx_until(rx, w->events, timeout_ms);
    if (got != w->events)
        dump_log(&F.conn, "connector");
    ck_assert_msg(got == w->events, "%zu distinct events arrived, want %zu", got, w->events);

    /* Index of each id's last copy. */
    size_t n = json_object_array_length(rx->arrivals);
    json_object *last = json_object_new_object();
    for (size_t i = 0; i < n; i++)
        json_object_object_add(last, it_json_str(json_object_array_get_idx(rx->arrivals, i), "id"),
                               json_object_new_int64((int64_t)i));
    json_object *seen = json_object_new_object();
    for (size_t i = 0; i < n; i++) {
        json_object *ev = json_object_array_get_idx(rx->arrivals, i);
        if ((size_t)json_object_get_int64(it_json_get(last, it_json_str(ev, "id"))) != i)
            continue;
        const char *subj = it_json_str(ev, "subject");
        ck_assert_msg(it_json_get(w->want, subj) != NULL, "event %s for unknown incident %s",
                      it_json_str(ev, "id"), subj);
        json_object *list = it_json_get(seen, subj);
        if (!list) {
            list = json_object_new_array();
            json_object_object_add(seen, subj, list);
        }
        json_object_array_add(list, json_object_get(ev));
    }
    ck_assert_int_eq(json_object_object_length(seen), json_object_object_length(w->want));
    json_object_object_foreach(w->want, subj, types)
    {
        json_object *list = it_json_get(seen, subj);
        ck_assert_msg(list != NULL, "no event for incident %s", subj);
        ck_assert_msg(json_object_array_length(list) == json_object_array_length(types),
                      "incident %s: %zu events, want %zu", subj, json_object_array_length(list),
                      json_object_array_length(types));
        int64_t prev_version = 0;
        json_object *prev = NULL;
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            json_object *ev = json_object_array_get_idx(list, i);
            const char *type = it_json_str(ev, "type");
            const char *wt = json_object_get_string(json_object_array_get_idx(types, i));
            ck_assert_msg(strcmp(type, wt) == 0, "incident %s event %zu (%s): %s, want %s", subj, i,
                          it_json_str(ev, "id"), type, wt);
            int64_t v = json_object_get_int64(it_json_get(ev, "version"));
            /* Versions come from one sequence shared by all incidents:
             * each write of this one draws a higher one, not the next. */
            if (strcmp(type, CREATED) == 0)
                ck_assert_int_ge(v, 1);
            else if (strcmp(type, UPDATED) == 0)
                ck_assert_int_gt(v, prev_version);
            else
                ck_assert_int_eq(v, prev_version);
            if (prev) {
                bool before = ev_lsn(prev) < ev_lsn(ev) ||
                              (ev_lsn(prev) == ev_lsn(ev) && ev_ordinal(prev) < ev_ordinal(ev));
                ck_assert_msg(before, "incident %s: the last copy of %s arrived after that of %s",
                              subj, it_json_str(ev, "id"), it_json_str(prev, "id"));
            }
            prev_version = v;
            prev = ev;
        }
    }
    json_object_put(seen);
    json_object_put(last);
    if (it_pg_wait_confirmed(g_env.pg, F.slot, rx->max_lsn + 1, 20000) != 0) {
        dump_log(&F.conn, "connector");
        ck_abort_msg("the slot did not reach the last commit");
    }
    if (it_proc_wait(&F.conn, 0) >= 0) {
        dump_log(&F.conn, "connector");
        ck_abort_msg("the connector exited (%d)", F.conn.status);
    }
}

/* Asserts the connector's log holds `needle` at least `min` times. */
static void log_has(const char *needle, int min)
{
    char *out = it_proc_output(&F.conn);
    ck_assert_ptr_nonnull(out);
    int n = count_substr(out, needle);
    if (n < min)
        dump_log(&F.conn, "connector");
    ck_assert_msg(n >= min, "connector log has '%s' %d times, want at least %d", needle, n, min);
    free(out);
}

/* Milliseconds of the day from a log line's "ts=...THH:MM:SS.mmmZ"; -1 if
 * it has none. */
static long line_ms(const char *line)
{
    const char *t = strstr(line, "ts=");
    int h, m, sec, ms;
    if (!t || !(t = strchr(t, 'T')) || sscanf(t, "T%2d:%2d:%2d.%3dZ", &h, &m, &sec, &ms) != 4)
        return -1;
    return ((h * 60L + m) * 60L + sec) * 1000L + ms;
}

/* Whether the line starting at line holds needle. */
static bool line_has(const char *line, const char *needle)
{
    const char *end = strchr(line, '\n');
    const char *hit = strstr(line, needle);
    return hit && (!end || hit < end);
}

/* The retries after the first `lost` line, up to `back`, must back off
 * exponentially from --retry_min 100ms to the --retry_max 1s cap: no busy
 * loop, no stall. */
static void check_backoff(const char *lost, const char *retry, const char *back)
{
    char *out = it_proc_output(&F.conn);
    ck_assert_ptr_nonnull(out);
    char *p = strstr(out, lost);
    ck_assert_msg(p != NULL, "no '%s' in the connector's log", lost);
    while (p > out && p[-1] != '\n')
        p--;
    long prev_ms = line_ms(p), expect = 100;
    int retries = 0;
    for (char *line = strchr(p, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        bool is_retry = line_has(line + 1, retry);
        bool is_back = line_has(line + 1, back);
        if (!is_retry && !is_back)
            continue;
        long at = line_ms(line + 1);
        long gap = at - prev_ms;
        if (gap < 0)
            gap += 24L * 3600 * 1000; /* midnight */
        /* A refused connection fails at once, so its line comes a backoff
         * after the previous one; a slower failure (the broker starting)
         * adds its own duration. */
        bool quick = is_retry && line_has(line + 1, "Connection refused");
        if (gap < expect * 8 / 10 || (quick && gap > expect + 600)) {
            dump_log(&F.conn, "connector");
            ck_abort_msg("reconnect attempt %d came %ld ms after the previous, want about %ld",
                         retries + 1, gap, expect);
        }
        if (is_back)
            break;
        retries++;
        expect = expect * 2 > 1000 ? 1000 : expect * 2;
        prev_ms = at;
    }
    ck_assert_msg(retries >= 2, "only %d failed reconnect attempts while the broker was down",
                  retries);
    fprintf(stderr, "backoff: %d retries before reconnecting\n", retries);
    free(out);
}

/* Milliseconds from the first log line with `from` to the next line after
 * it with `to`; -1 when there is no such pair. */
static long log_gap(const char *from, const char *to)
{
    char *out = it_proc_output(&F.conn);
    ck_assert_ptr_nonnull(out);
    long gap = -1;
    char *p = strstr(out, from);
    while (p != NULL && p > out && p[-1] != '\n')
        p--;
    for (char *line = p ? strchr(p, '\n') : NULL; line && line[1]; line = strchr(line + 1, '\n'))
        if (line_has(line + 1, to)) {
            gap = line_ms(line + 1) - line_ms(p);
            if (gap < 0)
                gap += 24L * 3600 * 1000; /* midnight */
            break;
        }
    free(out);
    return gap;
}

static void report(const char *what, const rx_t *rx, const wl_t *w)
{
    /* How many events were awaiting confirms when the broker went away:
     * what the republish path had to do. */
    char inflight[128] = "";
    char *out = it_proc_output(&F.conn);
    size_t used = 0;
    for (char *p = out; p && (p = strstr(p, "unconfirmed=")) != NULL && used + 24 < sizeof inflight;
         p++) {
        long n = atol(p + strlen("unconfirmed="));
        used += (size_t)snprintf(inflight + used, sizeof inflight - used, " %ld", n);
    }
    free(out);
    fprintf(stderr,
            "%s: %d commits, %zu events, %zu copies (%zu duplicates), %d consumer reopens, "
            "unconfirmed at broker loss:%s\n",
            what, w->t, w->events, json_object_array_length(rx->arrivals), rx->dups,
            F.consumer_reopens, used ? inflight : " -");
}

/* Terminates the walsender holding the slot, waiting for one to hold it. */
static void terminate_walsender(void)
{
    ck_assert_int_eq(it_pg_wait_slot_active(g_env.pg, F.slot, 30000), 0);
    char *v = it_pg_value(g_env.pg,
                          "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                          "WHERE slot_name = '%s' AND active_pid IS NOT NULL",
                          F.slot);
    ck_assert_msg(v && strcmp(v, "t") == 0, "could not terminate the walsender of %s", F.slot);
    free(v);
}

/* (1) The walsender is terminated twice while events flow. */
START_TEST(test_pg_walsender_terminated)
{
    rx_t rx;
    wl_t w;
    rx_init(&rx);
    wl_init(&w, "pgterm");
    start_connector(g_env.conninfo, "reconnect-pg", fast_retry);
    for (int t = 0; t < 150; t++) {
        wl_step(&w);
        rx_drain(&rx);
        if (t == 50 || t == 100) {
            /* Mid-stream: some events are through, more are on the way. */
            rx_until(&rx, w.events / 3, 20000);
            terminate_walsender();
        }
    }
    verify_all(&rx, &w, 60000);
    log_has("lost the PostgreSQL replication connection", 2);
    log_has("streaming from replication slot", 3);
    report("walsender terminated", &rx, &w);
    rx_free(&rx);
    json_object_put(w.want);
}
END_TEST

/* Commits (with drains) while F.fault runs, and `after` more commits once it
 * has ended; at least `min` commits in all.  Asserts the fault succeeded. */
static void commit_through_fault(rx_t *rx, wl_t *w, int min, int after, int pace_ms)
{
    int ended_at = -1;
    double deadline = it_now_ms() + 90000;
    while (w->t < min || ended_at < 0 || w->t < ended_at + after) {
        wl_step(w);
        rx_drain(rx);
        it_sleep_ms(pace_ms);
        if (ended_at < 0 && it_proc_wait(&F.fault, 0) >= 0) {
            ended_at = w->t;
            if (F.fault.status != 0)
                dump_log(&F.fault, "rabbitmqctl");
            ck_assert_int_eq(F.fault.status, 0);
        }
        ck_assert_msg(it_now_ms() < deadline, "the broker fault did not end within 90 s");
    }
}

/* (2) The broker closes every connection mid-stream. */
START_TEST(test_amqp_connections_closed)
{
    rx_t rx;
    wl_t w;
    rx_init(&rx);
    wl_init(&w, "amqpclose");
    start_connector(g_env.conninfo, "reconnect-amqp", fast_retry);
    for (int t = 0; t < 40; t++) {
        wl_step(&w);
        rx_drain(&rx);
        it_sleep_ms(10);
    }
    rx_until(&rx, w.events / 2, 20000);
    const char *argv[] = {g_env.rabbitmqctl, "close_all_connections", "test", NULL};
    ck_assert_int_eq(it_cmd_spawn(&g_env, &F.fault, "rabbitmqctl-close", argv), 0);
    /* Bigger commits while the fault is under way, so that the connection
     * is likely lost with events awaiting confirms. */
    w.rows = 50;
    commit_through_fault(&rx, &w, 60, 10, 2);
    verify_all(&rx, &w, 60000);
    log_has("lost the RabbitMQ connection", 1);
    log_has("connected to RabbitMQ", 2);
    ck_assert_int_ge(F.consumer_reopens, 1); /* the fault did hit connections */
    report("connections closed", &rx, &w);
    rx_free(&rx);
    json_object_put(w.want);
}
END_TEST

/* (3) The broker's app restarts mid-stream (stop_app, 2 s, start_app). */
START_TEST(test_amqp_broker_restart)
{
    rx_t rx;
    wl_t w;
    rx_init(&rx);
    wl_init(&w, "restart");
    start_connector(g_env.conninfo, "reconnect-restart", fast_retry);
    for (int t = 0; t < 40; t++) {
        wl_step(&w);
        rx_drain(&rx);
        it_sleep_ms(10);
    }
    rx_until(&rx, w.events / 2, 20000);
    char script[1200];
    snprintf(script, sizeof script, "'%s' stop_app && sleep 2 && '%s' start_app", g_env.rabbitmqctl,
             g_env.rabbitmqctl);
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    F.app_restarted = true;
    ck_assert_int_eq(it_cmd_spawn(&g_env, &F.fault, "rabbitmqctl-restart", argv), 0);
    commit_through_fault(&rx, &w, 150, 30, 20);
    verify_all(&rx, &w, 90000);
    log_has("lost the RabbitMQ connection", 1);
    log_has("connected to RabbitMQ", 2);
    ck_assert_int_ge(F.consumer_reopens, 1);
    check_backoff("lost the RabbitMQ connection", "RabbitMQ still unreachable",
                  "connected to RabbitMQ");
    report("broker restarted", &rx, &w);
    rx_free(&rx);
    json_object_put(w.want);
}
END_TEST

/* (4) A memory alarm blocks publishing for longer than wal_sender_timeout:
 * the connector keeps answering PostgreSQL, then publishes everything. */
START_TEST(test_amqp_memory_alarm)
{
    /* The shared cluster's wal_sender_timeout is 60 s; this connection's
     * walsender gets 5 s (PGC_USERSET since PostgreSQL 12). */
    char conninfo[IT_CONNINFO_MAX + 64];
    snprintf(conninfo, sizeof conninfo, "%s options='-c wal_sender_timeout=5s'", g_env.conninfo);
    char probe_ci[sizeof conninfo + 32];
    snprintf(probe_ci, sizeof probe_ci, "%s replication=database", conninfo);
    PGconn *probe = it_pg_connect(probe_ci);
    ck_assert_ptr_nonnull(probe);
    char *wst = it_pg_value(probe, "SHOW wal_sender_timeout");
    PQfinish(probe);
    ck_assert_msg(wst && strcmp(wst, "5s") == 0, "walsender's wal_sender_timeout is %s, want 5s",
                  wst ? wst : "(unknown)");
    free(wst);

    rx_t rx;
    wl_t w;
    rx_init(&rx);
    wl_init(&w, "alarm");
    /* A small window fills the connector's queue during the alarm, so it
     * stops reading the stream: only its own status updates keep the
     * walsender from timing out.  feedback_interval keeps its 10 s default,
     * twice the walsender's timeout: the connector must pace its reports by
     * wal_sender_timeout itself.  A 2 s heartbeat, far shorter than the
     * alarm, must keep being serviced too. */
    const char *const extra[] = {"--retry_min", "100ms",       "--retry_max", "1s", "--window",
                                 "50",          "--heartbeat", "2s",          NULL};
    start_connector(conninfo, "reconnect-alarm", extra);
    for (int t = 0; t < 10; t++)
        wl_step(&w);
    ck_assert_uint_eq(rx_until(&rx, w.events, 30000), w.events);

    g_alarm_held = true;
    ck_assert_int_eq(it_rabbitmqctl(&g_env, 30000, "set_vm_memory_high_watermark", "0", NULL), 0);
    double hold_until = it_now_ms() + 12000;
    while (it_now_ms() < hold_until) {
        wl_step(&w);
        rx_drain(&rx);
        it_sleep_ms(100);
    }
    size_t during = rx_distinct(&rx);
    size_t committed = w.events;
    ck_assert_msg(it_proc_wait(&F.conn, 0) < 0, "the connector exited during the alarm");
    clear_alarm();
    ck_assert_msg(!g_alarm_held, "could not clear the memory alarm");

    verify_all(&rx, &w, 60000);
    fprintf(stderr, "memory alarm: %zu of %zu events arrived while it was held\n", during,
            committed);
    ck_assert_msg(during < committed, "every event arrived during the alarm: it blocked nothing");
    log_has("RabbitMQ blocked publishing", 1);
    char *out = it_proc_output(&F.conn);
    ck_assert_ptr_nonnull(out);
    bool lost = strstr(out, "lost the PostgreSQL replication connection") != NULL;
    if (lost)
        dump_log(&F.conn, "connector");
    ck_assert_msg(!lost, "PostgreSQL dropped the connector while the broker blocked it");
    lost = strstr(out, "lost the RabbitMQ connection") != NULL;
    if (lost)
        dump_log(&F.conn, "connector");
    ck_assert_msg(!lost, "the connector lost the broker (heartbeats?) while it was blocked");
    free(out);
    report("memory alarm", &rx, &w);
    rx_free(&rx);
    json_object_put(w.want);
}
END_TEST

/* The port of the broker's amqp:// URL. */
static int broker_port(void)
{
    const char *colon = strrchr(g_env.amqp_url, ':');
    return colon ? atoi(colon + 1) : 0;
}

/* "host:port" of the node /metrics says the connector uses ("" when it
 * says none). */
static void metrics_node(int port, char node[64])
{
    static char body[1 << 16];
    node[0] = '\0';
    ck_assert_int_eq(it_http_get("127.0.0.1", port, "/metrics", body, sizeof body), 200);
    const char *at = strstr(body, "\nhms_sync_amqp_node_info{node=\"");
    if (at != NULL)
        sscanf(at + strlen("\nhms_sync_amqp_node_info{node=\""), "%63[^\"]", node);
}

/* (5) A cluster's nodes in --amqp: the first node (a proxy to the broker)
 * goes away mid-stream; the connector goes on with the second at once,
 * republishes what was unconfirmed, and /metrics names the node in use. */
START_TEST(test_amqp_next_node)
{
    rx_t rx;
    wl_t w;
    rx_init(&rx);
    wl_init(&w, "nextnode");
    ck_assert_int_eq(it_proxy_start(&F.px, broker_port()), 0);
    char list[600], mport[16], listen[64], via_proxy[64], direct[64], node[64];
    snprintf(list, sizeof list, "amqp://guest:guest@127.0.0.1:%d/, %s", F.px.port, g_env.amqp_url);
    F.amqp_list = list;
    int port = it_free_port();
    snprintf(mport, sizeof mport, "%d", port);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *extra[] = {"--retry_min", "100ms", "--retry_max", "1s", "--metrics", listen, NULL};
    start_connector(g_env.conninfo, "reconnect-next-node", extra);
    snprintf(via_proxy, sizeof via_proxy, "127.0.0.1:%d", F.px.port);
    snprintf(direct, sizeof direct, "127.0.0.1:%d", broker_port());
    for (int t = 0; t < 40; t++) {
        wl_step(&w);
        rx_drain(&rx);
        it_sleep_ms(10);
    }
    rx_until(&rx, w.events / 2, 20000);
    metrics_node(port, node);
    ck_assert_str_eq(node, via_proxy);
    /* The node stops: its connections close and new ones are refused. */
    w.rows = 50;
    ck_assert_int_eq(it_proxy_set(&F.px, IT_PROXY_DOWN), 0);
    for (int t = 0; t < 60; t++) {
        wl_step(&w);
        rx_drain(&rx);
        it_sleep_ms(10);
    }
    verify_all(&rx, &w, 60000);
    log_has("lost the RabbitMQ connection", 1);
    log_has("connected to RabbitMQ", 2);
    log_has(direct, 1);
    metrics_node(port, node);
    ck_assert_str_eq(node, direct);
    /* The second node answers the first retry (retry_min 100 ms); it is
     * not waited for over a growing backoff as one node would be. */
    char back[100];
    snprintf(back, sizeof back, "msg=\"connected to RabbitMQ\" target=%s", direct);
    long gap = log_gap("lost the RabbitMQ connection", back);
    ck_assert_msg(gap >= 0 && gap < 1000, "moved to the next node %ld ms after the loss", gap);
    fprintf(stderr, "next node: connected to the second node %ld ms after losing the first\n", gap);
    report("next node", &rx, &w);
    rx_free(&rx);
    json_object_put(w.want);
}
END_TEST

/* (6) No node answers at start: one line with each node's reason, exit 1. */
START_TEST(test_amqp_no_node)
{
    int a = it_free_port(), b = it_free_port();
    char list[200];
    snprintf(list, sizeof list, "amqp://guest:guest@127.0.0.1:%d/,amqp://127.0.0.1:%d/", a, b);
    F.amqp_list = list;
    const char *argv[] = {"run",    "--pg", g_env.conninfo, "--amqp",   F.amqp_list,
                          "--slot", F.slot, "--exchange",   F.exchange, NULL};
    ck_assert_int_eq(it_proc_spawn(&g_env, &F.conn, "reconnect-no-node", argv), 0);
    ck_assert_int_eq(it_proc_wait(&F.conn, 60000), 1);
    char want[300];
    snprintf(want, sizeof want,
             "amqp: cannot connect to any of 2 RabbitMQ nodes: cannot connect to RabbitMQ at "
             "127.0.0.1:%d: ",
             a);
    log_has(want, 1);
    snprintf(want, sizeof want, "; cannot connect to RabbitMQ at 127.0.0.1:%d: ", b);
    log_has(want, 1);
    char *out = it_proc_output(&F.conn);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(strstr(out, "guest:guest") == NULL, "a password reached the log");
    free(out);
}
END_TEST

static Suite *reconnect_suite(void)
{
    Suite *s = suite_create("reconnect");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"pg_terminated", test_pg_walsender_terminated},
        {"amqp_closed", test_amqp_connections_closed},
        {"broker_restart", test_amqp_broker_restart},
        {"memory_alarm", test_amqp_memory_alarm},
        {"next_node", test_amqp_next_node},
        {"no_node", test_amqp_no_node},
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

IT_MAIN(.name = "reconnect", .env = &g_env, .source = &g_source, .suite = reconnect_suite,
        .setup = clear_alarm_at_exit)
