/* test_consume.c -- hms-sync consume end to end: the real connector streams a
 * source database to RabbitMQ and subscribers apply the events to a separate
 * subscriber database (migrate --subscriber): all three seed subscribers
 * converge on the source, kill -9 loses and doubles nothing, poison messages
 * end in <queue>.dlq with their reason, a terminated backend is retried, and
 * --origin skips echoes. */
#include <check.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"
#include "it_sub.h"

static it_env_t g_env;
static it_subdb_t g_sub;

#define MAX_QUEUES 4

/* One test's slot, exchanges, queues and processes; torn down even when the
 * test fails. */
typedef struct {
    char slot[64];
    char exchange[128];
    char dlx[160];
    char queues[MAX_QUEUES][192];
    int nqueues;
    it_amqp_t ctl; /* declares, deletes, publishes, reads dead letters */
    it_amqp_t tap; /* a copy of every event, to republish */
    it_proc_t conn;
    it_proc_t subs[MAX_QUEUES];
} fx_t;

static fx_t F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    it_env_slot_name(&g_env, F.slot, sizeof F.slot);
    it_env_exchange_name(&g_env, F.exchange, sizeof F.exchange);
    snprintf(F.dlx, sizeof F.dlx, "%s.dlx", F.exchange);
    ck_assert_int_eq(it_amqp_open(&F.ctl, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&F.ctl, F.exchange), 0);
    /* The dead-letter exchange is the administrator's: consume only checks
     * that it exists. */
    ck_assert_int_eq(it_amqp_declare_dlx(&F.ctl, F.dlx), 0);
    /* Changes made before the test's slot exists are never streamed, so
     * every test starts from empty tables on both sides. */
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents"), 0);
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "TRUNCATE hms_sync.inbox, public.incident_facts, "
                                          "public.investigation_tasks, public.cases"),
                     0);
}

static void fx_teardown(void)
{
    for (int i = 0; i < MAX_QUEUES; i++)
        it_proc_kill(&F.subs[i]);
    it_proc_kill(&F.conn);
    if (F.tap.conn)
        it_amqp_close(&F.tap);
    /* A fresh connection: the broker may have closed the test's (another
     * program's fault test can force-close every connection). */
    it_amqp_close(&F.ctl);
    if (it_amqp_open(&F.ctl, g_env.amqp_url) == 0) {
        char dlq[220];
        for (int i = 0; i < F.nqueues; i++) {
            snprintf(dlq, sizeof dlq, "%s.dlq", F.queues[i]);
            it_amqp_delete_queue(&F.ctl, F.queues[i]);
            it_amqp_delete_queue(&F.ctl, dlq);
        }
        it_amqp_delete_exchange(&F.ctl, F.dlx);
        it_amqp_delete_exchange(&F.ctl, F.exchange);
    }
    it_amqp_close(&F.ctl);
    it_pg_drop_slot(g_env.pg, F.slot);
}

static void start_connector(void)
{
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, "consume-conn", F.slot, F.exchange, NULL), 0);
    if (it_pg_wait_slot_active(g_env.pg, F.slot, 30000) != 0) {
        it_proc_dump(&F.conn, "connector");
        ck_abort_msg("connector did not start streaming from slot %s", F.slot);
    }
}

/* A fresh queue name for this test, remembered for deletion. */
static const char *new_queue(const char *what)
{
    ck_assert_int_lt(F.nqueues, MAX_QUEUES);
    snprintf(F.queues[F.nqueues], sizeof F.queues[0], "%s.%s", F.exchange, what);
    return F.queues[F.nqueues++];
}

/* Starts `hms-sync consume` as subs[i] and waits until it consumes. */
static void start_sub(int i, const char *tag, const char *queue, const char *apply,
                      const char *const extra[])
{
    const char *args[32] = {"--retry-min", "100ms", "--retry-max", "2s"};
    int n = 4;
    for (int k = 0; extra && extra[k]; k++) {
        ck_assert_int_lt(n, 31);
        args[n++] = extra[k];
    }
    args[n] = NULL;
    if (it_consume_start(&g_env, &F.subs[i], tag, g_sub.conninfo, F.exchange, F.dlx, queue, apply,
                         args) != 0)
        ck_abort_msg("subscriber %s did not start consuming", queue);
}

/* SIGTERM, exit 0, and the final counters line of its log. */
static char *stop_sub(int i)
{
    it_proc_signal(&F.subs[i], SIGTERM);
    int code = it_proc_wait(&F.subs[i], 15000);
    if (code != 0)
        it_proc_dump(&F.subs[i], "subscriber");
    ck_assert_int_eq(code, 0);
    char *out = it_proc_output(&F.subs[i]);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(strstr(out, "msg=stopped") != NULL, "no counters line:\n%s", out);
    return out;
}

/* A counter from the last "stopped" line of a subscriber's log. */
static long counter(const char *log, const char *name)
{
    const char *line = NULL;
    for (const char *p = log; (p = strstr(p, "msg=stopped")) != NULL; p++)
        line = p;
    ck_assert_ptr_nonnull(line);
    char key[64];
    snprintf(key, sizeof key, " %s=", name);
    const char *v = strstr(line, key);
    ck_assert_msg(v != NULL, "no %s in %s", name, line);
    return strtol(v + strlen(key), NULL, 10);
}

static long inbox_count(const char *queue, const char *extra_where)
{
    char *v = it_pg_value(g_sub.pg, "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = '%s'%s",
                          queue, extra_where ? extra_where : "");
    ck_assert_ptr_nonnull(v);
    long n = atol(v);
    free(v);
    return n;
}

/* Waits until the queue's inbox holds want rows; fails when it does not,
 * or holds more. */
static void wait_inbox(const char *queue, long want, int timeout_ms, const it_proc_t *p)
{
    long n = it_inbox_wait(g_sub.pg, queue, want, timeout_ms);
    if (n != want && p)
        it_proc_dump(p, queue);
    ck_assert_msg(n == want, "inbox of %s holds %ld rows, want %ld", queue, n, want);
}

/* Runs SQL on the source returning a count (e.g. a CTE over RETURNING). */
static long src_count(const char *sql)
{
    char *v = it_pg_value(g_env.pg, "%s", sql);
    ck_assert_msg(v != NULL, "%s failed", sql);
    long n = atol(v);
    free(v);
    return n;
}

static long inserts(int n, const char *tag)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "WITH c AS (INSERT INTO incidents (region, severity, summary, reported_by) "
             "SELECT '%s' || (g %% 7), 1 + g %% 5, 'inc ' || g, 'nurse' FROM "
             "generate_series(1, %d) g RETURNING 1) SELECT count(*) FROM c",
             tag, n);
    return src_count(sql);
}

static long updates(const char *set, const char *where)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "WITH c AS (UPDATE incidents SET %s WHERE %s RETURNING 1) SELECT count(*) FROM c", set,
             where);
    return src_count(sql);
}

static long deletes(const char *where)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "WITH c AS (DELETE FROM incidents WHERE %s RETURNING 1) "
             "SELECT count(*) FROM c",
             where);
    return src_count(sql);
}

/* Every replica table equals the source's live rows; deleted incidents are
 * tombstones (cancelled tasks, closed cases) and never live rows. */
static void check_replicas(long deleted)
{
    json_object *src = it_pg_column(
        g_env.pg, "SELECT id || '|' || region || '|' || severity || '|' || status || '|' || "
                  "coalesce(summary, '') || '|' || version || '|' || origin FROM incidents "
                  "ORDER BY id");
    json_object *wh = it_pg_column(
        g_sub.pg, "SELECT incident_id || '|' || region || '|' || severity || '|' || status || '|' "
                  "|| coalesce(summary, '') || '|' || version || '|' || origin FROM incident_facts "
                  "WHERE NOT deleted ORDER BY incident_id");
    ck_assert_ptr_nonnull(src);
    ck_assert_ptr_nonnull(wh);
    ck_assert_msg(json_object_equal(src, wh), "incident_facts differs from incidents:\n%s\n%s",
                  json_object_to_json_string(src), json_object_to_json_string(wh));
    json_object_put(src);
    json_object_put(wh);

    const char *short_src = "SELECT id || '|' || region || '|' || severity || '|' || status || "
                            "'|' || version FROM incidents ORDER BY id";
    src = it_pg_column(g_env.pg, "%s", short_src);
    json_object *tasks = it_pg_column(
        g_sub.pg,
        "SELECT incident_id || '|' || region || '|' || severity || '|' || incident_status "
        "|| '|' || version FROM investigation_tasks WHERE status = 'open' ORDER BY "
        "incident_id");
    json_object *cases = it_pg_column(
        g_sub.pg,
        "SELECT incident_id || '|' || region || '|' || severity || '|' || incident_status "
        "|| '|' || version FROM cases WHERE NOT deleted ORDER BY incident_id");
    ck_assert_msg(json_object_equal(src, tasks), "investigation_tasks differs:\n%s\n%s",
                  json_object_to_json_string(src), json_object_to_json_string(tasks));
    ck_assert_msg(json_object_equal(src, cases), "cases differs:\n%s\n%s",
                  json_object_to_json_string(src), json_object_to_json_string(cases));
    json_object_put(src);
    json_object_put(tasks);
    json_object_put(cases);

    char *v = it_pg_value(g_sub.pg, "SELECT (SELECT count(*) FROM incident_facts WHERE deleted) "
                                    "|| '/' || (SELECT count(*) FROM investigation_tasks WHERE "
                                    "deleted AND status = 'cancelled') || '/' || (SELECT count(*) "
                                    "FROM cases WHERE deleted)");
    char want[64];
    snprintf(want, sizeof want, "%ld/%ld/%ld", deleted, deleted, deleted);
    ck_assert_str_eq(v, want);
    free(v);
}

/* ---- raw AMQP: publishing straight to the exchange, reading dead letters ---- */

static void publish_raw(const char *routing_key, const char *body)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/cloudevents+json");
    props.delivery_mode = 2;
    ck_assert_int_eq(amqp_basic_publish(F.ctl.conn, 1, amqp_cstring_bytes(F.exchange),
                                        amqp_cstring_bytes(routing_key), 0, 0, &props,
                                        amqp_cstring_bytes(body)),
                     AMQP_STATUS_OK);
}

/* Takes one message from queue with basic.get; returns its x-hms-reason
 * header (caller frees) and body in *body (caller frees), or NULL when the
 * queue is empty. */
static char *dlq_get(const char *queue, char **body)
{
    amqp_rpc_reply_t r = amqp_basic_get(F.ctl.conn, 1, amqp_cstring_bytes(queue), 1);
    ck_assert_int_eq(r.reply_type, AMQP_RESPONSE_NORMAL);
    if (r.reply.id != AMQP_BASIC_GET_OK_METHOD)
        return NULL;
    amqp_message_t m;
    r = amqp_read_message(F.ctl.conn, 1, &m, 0);
    ck_assert_int_eq(r.reply_type, AMQP_RESPONSE_NORMAL);
    char *reason = NULL;
    bool has_sub = false;
    if (m.properties._flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < m.properties.headers.num_entries; i++) {
            amqp_table_entry_t *e = &m.properties.headers.entries[i];
            if (e->value.kind != AMQP_FIELD_KIND_UTF8)
                continue;
            if (e->key.len == 12 && memcmp(e->key.bytes, "x-hms-reason", 12) == 0)
                reason = strndup(e->value.value.bytes.bytes, e->value.value.bytes.len);
            if (e->key.len == 16 && memcmp(e->key.bytes, "x-hms-subscriber", 16) == 0)
                has_sub = true;
        }
    }
    ck_assert_msg(reason != NULL && has_sub, "dead letter without x-hms-reason/subscriber");
    *body = strndup(m.body.bytes, m.body.len);
    amqp_destroy_message(&m);
    amqp_maybe_release_buffers(F.ctl.conn);
    return reason;
}

/* Opens the tap: a queue of our own receiving a copy of every event. */
/* The first dead letter of queue q within 10 s, whose reason must hold
 * want; its body (caller frees).  Shows sub's log when none came. */
static char *dead_letter_of(const char *q, const it_proc_t *sub, const char *want)
{
    char dlq[220], *body = NULL, *reason = NULL;
    snprintf(dlq, sizeof dlq, "%s.dlq", q);
    double end = it_now_ms() + 10000;
    while ((reason = dlq_get(dlq, &body)) == NULL && it_now_ms() < end)
        it_sleep_ms(100);
    if (reason == NULL)
        it_proc_dump(sub, "subscriber");
    ck_assert_ptr_nonnull(reason);
    ck_assert_msg(strstr(reason, want) != NULL, "reason: %s, want %s", reason, want);
    free(reason);
    return body;
}

static void open_tap(void)
{
    ck_assert_int_eq(it_amqp_tap(&F.tap, g_env.amqp_url, F.exchange), 0);
}

/* One event from the tap, parsed (caller puts), with its routing key. */
static json_object *tap_event(char *rk, size_t rklen)
{
    it_msg_t m;
    ck_assert_int_eq(it_amqp_get(&F.tap, 30000, &m), 1);
    json_object *ev = json_tokener_parse(m.body);
    ck_assert_ptr_nonnull(ev);
    snprintf(rk, rklen, "%s", m.routing_key);
    it_msg_free(&m);
    return ev;
}

/* ---- tests ---- */

/* The three seed subscribers each apply every event, and converge. */
START_TEST(test_three_subscribers)
{
    start_connector();
    const char *q[3] = {new_queue("scheduling"), new_queue("casemgmt"), new_queue("warehouse")};
    const char *apply[3] = {"hms_sync.apply_scheduling", "hms_sync.apply_casemgmt",
                            "hms_sync.apply_warehouse"};
    const char *tags[3] = {"consume-sched", "consume-case", "consume-wh"};
    for (int i = 0; i < 3; i++)
        start_sub(i, tags[i], q[i], apply[i], NULL);
    long events = inserts(300, "three");
    events += updates("severity = 1 + (severity % 5), summary = 'changed'", "true");
    events += updates("status = 'closed'", "region LIKE '%1'");
    long del = deletes("region LIKE '%2'");
    events += del;
    for (int i = 0; i < 3; i++)
        wait_inbox(q[i], events, 120000, &F.subs[i]);
    check_replicas(del);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(inbox_count(q[i], " AND outcome = 'applied'"), events);
        char *log = stop_sub(i);
        ck_assert_int_eq(counter(log, "applied"), events);
        ck_assert_int_eq(counter(log, "dead_lettered"), 0);
        fprintf(stderr, "consume: three: %s: events=%ld applied=%ld duplicate=%ld stale=%ld\n",
                q[i], events, counter(log, "applied"), counter(log, "duplicate"),
                counter(log, "stale"));
        free(log);
    }
}
END_TEST

/* kill -9 mid-stream, restart: every event applied exactly once; events
 * delivered again are counted as duplicates and change nothing. */
START_TEST(test_kill9_exactly_once)
{
    open_tap();
    start_connector();
    const char *q = new_queue("wh");
    const char *const extra[] = {"--prefetch", "20", NULL};
    start_sub(0, "consume-k1", q, "hms_sync.apply_warehouse", extra);
    long events = 0;
    for (int b = 0; b < 6; b++) {
        char tag[16];
        snprintf(tag, sizeof tag, "k%d-", b);
        events += inserts(100, tag);
        char where[64];
        snprintf(where, sizeof where, "region LIKE 'k%d-%%'", b);
        events += updates("summary = 'again', severity = 5", where);
    }
    /* Mid-stream: some but not all events are in. */
    double end = it_now_ms() + 30000;
    while (inbox_count(q, NULL) < 50 && it_now_ms() < end)
        it_sleep_ms(5);
    long before = inbox_count(q, NULL);
    it_proc_kill(&F.subs[0]);
    ck_assert_int_lt(before, events);
    events += deletes("region LIKE 'k0-%'");
    start_sub(1, "consume-k2", q, "hms_sync.apply_warehouse", extra);
    wait_inbox(q, events, 120000, &F.subs[1]);

    /* Deliver five events again, as a crash between commit and ack would. */
    for (int i = 0; i < 5; i++) {
        char rk[256];
        json_object *ev = tap_event(rk, sizeof rk);
        publish_raw(rk, json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
        json_object_put(ev);
    }
    it_sleep_ms(1500);
    ck_assert_int_eq(inbox_count(q, NULL), events);
    char *v = it_pg_value(g_env.pg, "SELECT count(*) FROM incidents");
    char *w = it_pg_value(g_sub.pg, "SELECT count(*) FROM incident_facts WHERE NOT deleted");
    ck_assert_str_eq(v, w);
    free(v);
    free(w);
    /* Every live row holds the source's last write (its update). */
    v = it_pg_value(g_env.pg, "SELECT string_agg(id || ':' || version, ',' ORDER BY id) "
                              "FROM incidents");
    w = it_pg_value(g_sub.pg, "SELECT string_agg(incident_id || ':' || version, ',' ORDER BY "
                              "incident_id) FROM incident_facts WHERE NOT deleted");
    ck_assert_str_eq(v, w);
    free(v);
    free(w);
    char *log = stop_sub(1);
    long dups = counter(log, "duplicate");
    ck_assert_int_ge(dups, 5);
    fprintf(stderr,
            "consume: kill9: events=%ld applied_before_kill>=%ld applied_after_restart=%ld "
            "duplicate=%ld stale=%ld\n",
            events, before, counter(log, "applied"), dups, counter(log, "stale"));
    free(log);
}
END_TEST

/* The type of queue `name` as the broker lists it ("quorum", "classic"). */
static char *queue_type(const char *name)
{
    ck_assert_ptr_nonnull(g_env.rabbitmqctl);
    const char *argv[] = {g_env.rabbitmqctl, "-q", "list_queues", "name", "type", NULL};
    it_proc_t p;
    ck_assert_int_eq(it_cmd_spawn(&g_env, &p, "list-queues", argv), 0);
    ck_assert_int_eq(it_proc_wait(&p, 60000), 0);
    char *out = it_proc_output(&p), want[300], *type = NULL;
    snprintf(want, sizeof want, "\n%s\t", name);
    const char *at = out ? strstr(out, want) : NULL;
    if (at != NULL) {
        at += strlen(want);
        type = strndup(at, strcspn(at, "\n"));
    }
    free(out);
    return type;
}

/* Invalid JSON, a schema violation and an unknown type go to <queue>.dlq
 * with their reason; the subscriber keeps applying what follows. */
START_TEST(test_poison)
{
    open_tap();
    start_connector();
    const char *q = new_queue("poison");
    start_sub(0, "consume-poison", q, "hms_sync.apply_warehouse", NULL);
    long events = inserts(1, "p");
    wait_inbox(q, events, 30000, &F.subs[0]);
    char rk[256];
    json_object *ev = tap_event(rk, sizeof rk);

    publish_raw("incident.created.p", "{\"specversion\": \"1.0\", \"id\": ");
    json_object *data = NULL;
    json_object_object_get_ex(ev, "data", &data);
    json_object_object_add(data, "severity", json_object_new_int(9));
    json_object_object_add(ev, "id", json_object_new_string("00000000FFFFFFFF-1"));
    publish_raw(rk, json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
    json_object_object_add(data, "severity", json_object_new_int(2));
    json_object_object_add(ev, "type", json_object_new_string("gov.hms.ehr.IncidentExploded.v1"));
    publish_raw(rk, json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN));
    json_object_put(ev);

    events += inserts(10, "after");
    wait_inbox(q, events, 30000, &F.subs[0]);

    char dlq[220];
    snprintf(dlq, sizeof dlq, "%s.dlq", q);
    const char *want[3] = {"not JSON", "schema: data: /severity", "unknown type"};
    double end = it_now_ms() + 10000;
    for (int i = 0; i < 3; i++) {
        char *body = NULL, *reason;
        while ((reason = dlq_get(dlq, &body)) == NULL && it_now_ms() < end)
            it_sleep_ms(100);
        ck_assert_msg(reason != NULL, "dead letter %d missing", i);
        ck_assert_msg(strstr(reason, want[i]) != NULL, "reason \"%s\", want \"%s\"", reason,
                      want[i]);
        fprintf(stderr, "consume: poison %d -> %s: %s\n", i, dlq, reason);
        free(reason);
        free(body);
    }
    char *body = NULL;
    ck_assert_ptr_null(dlq_get(dlq, &body));
    /* On a cluster a dead letter must outlive a node, like the events. */
    char *type = queue_type(dlq);
    ck_assert_ptr_nonnull(type);
    ck_assert_str_eq(type, "quorum");
    free(type);
    char *log = stop_sub(0);
    ck_assert_int_eq(counter(log, "dead_lettered"), 3);
    ck_assert_int_eq(counter(log, "applied"), events);
    free(log);
}
END_TEST

/* An apply that keeps failing is tried delivery_limit times, then
 * dead-lettered with the SQL error, here into a classic dead-letter queue
 * an earlier version declared, which consume keeps with a warning. */
START_TEST(test_apply_error_delivery_limit)
{
    start_connector();
    const char *q = new_queue("boom");
    char dlq[220];
    snprintf(dlq, sizeof dlq, "%s.dlq", q);
    amqp_queue_declare(F.ctl.conn, 1, amqp_cstring_bytes(dlq), 0, 1, 0, 0, amqp_empty_table);
    ck_assert_int_eq(amqp_get_rpc_reply(F.ctl.conn).reply_type, AMQP_RESPONSE_NORMAL);
    const char *const extra[] = {"--delivery-limit", "3", NULL};
    start_sub(0, "consume-boom", q, "public.it_apply_boom", extra);
    long events = inserts(5, "b");
    events += updates("summary = 'boom'", "summary = 'inc 3'");
    events += inserts(2, "c");
    wait_inbox(q, events - 1, 30000, &F.subs[0]);
    char *body = dead_letter_of(q, &F.subs[0], "boom on purpose");
    ck_assert_ptr_nonnull(strstr(body, "IncidentUpdated"));
    free(body);
    char *log = stop_sub(0);
    ck_assert_ptr_nonnull(strstr(log, "the dead-letter queue is a classic queue"));
    char *type = queue_type(dlq);
    ck_assert_ptr_nonnull(type);
    ck_assert_str_eq(type, "classic");
    free(type);
    ck_assert_int_eq(counter(log, "dead_lettered"), 1);
    ck_assert_int_eq(counter(log, "retried"), 2);
    ck_assert_int_eq(counter(log, "applied"), events - 1);
    free(log);
}
END_TEST

/* The subscriber's backend is terminated in the middle of a statement: the
 * message is retried on a new session and applied once. */
START_TEST(test_transient_terminate)
{
    start_connector();
    const char *q = new_queue("transient");
    start_sub(0, "consume-transient", q, "hms_sync.apply_scheduling", NULL);
    long events = inserts(3, "t");
    wait_inbox(q, events, 30000, &F.subs[0]);

    PGconn *locker = it_pg_connect(g_sub.conninfo);
    ck_assert_ptr_nonnull(locker);
    ck_assert_int_eq(
        it_pg_exec(locker, "BEGIN; LOCK TABLE hms_sync.inbox IN ACCESS EXCLUSIVE MODE"), 0);
    events += inserts(4, "t2");
    char *pid = NULL;
    double end = it_now_ms() + 30000;
    while (!pid && it_now_ms() < end) {
        pid = it_pg_value(g_sub.pg,
                          "SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND "
                          "application_name = 'hms-sync consume' AND wait_event_type = 'Lock'",
                          g_sub.dbname);
        if (!pid)
            it_sleep_ms(50);
    }
    ck_assert_msg(pid != NULL, "the subscriber never waited on the lock");
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "SELECT pg_terminate_backend(%s)", pid), 0);
    free(pid);
    it_sleep_ms(300);
    ck_assert_int_eq(it_pg_exec(locker, "COMMIT"), 0);
    PQfinish(locker);
    wait_inbox(q, events, 30000, &F.subs[0]);
    it_sleep_ms(500);
    ck_assert_int_eq(inbox_count(q, NULL), events);
    char *log = stop_sub(0);
    ck_assert_ptr_nonnull(strstr(log, "transient database failure"));
    ck_assert_int_ge(counter(log, "retried"), 1);
    ck_assert_int_eq(counter(log, "applied"), events);
    ck_assert_int_eq(counter(log, "duplicate"), 0);
    fprintf(stderr, "consume: transient: events=%ld retried=%ld\n", events,
            counter(log, "retried"));
    free(log);
}
END_TEST

/* --origin casemgmt skips the events of casemgmt's own writes. */
START_TEST(test_origin_echo)
{
    start_connector();
    const char *q = new_queue("cm");
    const char *const extra[] = {"--origin", "casemgmt", "--queue-type", "classic", NULL};
    start_sub(0, "consume-echo", q, "hms_sync.apply_casemgmt", extra);
    long events = inserts(20, "e");
    long echoes = updates("origin = 'casemgmt', summary = 'from cm'", "summary LIKE 'inc 1%'");
    events += echoes;
    events += updates("origin = 'hms-ehr', summary = 'ehr again'", "summary = 'inc 2'");
    ck_assert_int_gt(echoes, 0);
    wait_inbox(q, events - echoes, 30000, &F.subs[0]);
    it_sleep_ms(1000);
    ck_assert_int_eq(inbox_count(q, NULL), events - echoes);
    char *log = stop_sub(0);
    ck_assert_int_eq(counter(log, "echo"), echoes);
    ck_assert_int_eq(counter(log, "applied"), events - echoes);
    fprintf(stderr, "consume: origin: events=%ld echo=%ld\n", events, echoes);
    free(log);
}
END_TEST

/* A backlog is applied in batches (the inbox rows of one transaction share
 * its start time), and an event whose apply fails in the middle of a batch
 * costs the others nothing: they commit, and it alone is retried and then
 * dead-lettered at the delivery limit. */
START_TEST(test_batch_backlog)
{
    open_tap();
    start_connector();
    const char *q = new_queue("batch");
    const char *const extra[] = {"--delivery-limit", "2", "--batch", "50", NULL};
    /* The first run declares the queue; the backlog piles up while none runs. */
    start_sub(0, "consume-batch1", q, "public.it_apply_boom", extra);
    free(stop_sub(0));
    long events = inserts(300, "bb");
    events += updates("summary = 'boom'", "summary = 'inc 150'");
    events += updates("severity = 4", "region LIKE 'bb%' AND summary <> 'boom'");
    /* An event on the tap is on the subscriber's queue too: both are bound
     * to the exchange it was routed through. */
    for (long i = 0; i < events; i++) {
        char rk[256];
        json_object_put(tap_event(rk, sizeof rk));
    }
    start_sub(1, "consume-batch2", q, "public.it_apply_boom", extra);
    wait_inbox(q, events - 1, 60000, &F.subs[1]);

    free(dead_letter_of(q, &F.subs[1], "boom on purpose"));

    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(DISTINCT received_at) FROM hms_sync.inbox WHERE subscriber = '%s'", q);
    char *v = it_pg_value(g_sub.pg, "%s", sql);
    long txs = atol(v);
    free(v);
    ck_assert_msg(txs * 10 <= events, "%ld events took %ld transactions", events - 1, txs);
    /* Every incident but the one whose update failed holds the source's
     * state; that one stays at the state before the failed update. */
    v = it_pg_value(g_env.pg, "SELECT string_agg(id || ':' || version, ',' ORDER BY id) "
                              "FROM incidents WHERE summary <> 'boom'");
    char *w = it_pg_value(
        g_sub.pg, "SELECT string_agg(incident_id || ':' || version, ',' ORDER BY "
                  "incident_id) FROM incident_facts WHERE NOT deleted AND summary <> 'inc 150'");
    ck_assert_str_eq(v, w);
    free(v);
    free(w);
    char *log = stop_sub(1);
    ck_assert_int_eq(counter(log, "applied"), events - 1);
    ck_assert_int_eq(counter(log, "dead_lettered"), 1);
    ck_assert_int_eq(counter(log, "retried"), 1);
    fprintf(stderr, "consume: batch: %ld events in %ld transactions, 1 dead-lettered\n", events,
            txs);
    free(log);
}
END_TEST

/* consume --metrics: /readyz, and /metrics with the events by outcome, the
 * batches, the latency histogram and the queue's depth, while a backlog
 * drains through a slow apply and after. */
static double sub_metric(int port, const char *series)
{
    static char body[1 << 16];
    if (it_http_get("127.0.0.1", port, "/metrics", body, sizeof body) != 200)
        return NAN;
    return it_metric(body, series);
}

START_TEST(test_metrics)
{
    open_tap();
    start_connector();
    const char *q = new_queue("metrics");
    int port = it_free_port();
    char listen[64], series[300];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *const extra[] = {"--metrics", listen, "--batch", "10", "--prefetch", "20", NULL};
    start_sub(0, "consume-metrics1", q, "public.it_apply_slow", extra);
    free(stop_sub(0));
    long events = inserts(400, "m");
    for (long i = 0; i < events; i++) {
        char rk[256];
        json_object_put(tap_event(rk, sizeof rk));
    }
    start_sub(1, "consume-metrics2", q, "public.it_apply_slow", extra);
    char body[512];
    int ready = 0;
    for (double until = it_now_ms() + 5000; ready != 200 && it_now_ms() < until; it_sleep_ms(50))
        ready = it_http_get("127.0.0.1", port, "/readyz", body, sizeof body);
    ck_assert_msg(ready == 200, "/readyz: %d %s", ready, body);
    /* 400 events at 20 ms each take 8 s: the depth is seen while they drain. */
    snprintf(series, sizeof series, "hms_sync_consumer_queue_messages{queue=\"%s\"}", q);
    double depth = NAN, end = it_now_ms() + 10000;
    while (!(depth > 0) && it_now_ms() < end) {
        depth = sub_metric(port, series);
        it_sleep_ms(200);
    }
    ck_assert_msg(depth > 0 && depth < events, "queue depth %g while draining %ld", depth, events);
    wait_inbox(q, events, 60000, &F.subs[1]);
    /* The depth is asked for every 5 s: it reaches 0 within that. */
    end = it_now_ms() + 8000;
    while ((depth = sub_metric(port, series)) != 0 && it_now_ms() < end)
        it_sleep_ms(200);
    ck_assert_msg(depth == 0, "queue depth %g after the drain", depth);
    snprintf(series, sizeof series,
             "hms_sync_consumer_events_total{queue=\"%s\",outcome=\"applied\"}", q);
    ck_assert_int_eq((long)sub_metric(port, series), events);
    snprintf(series, sizeof series, "hms_sync_consumer_event_latency_seconds_count{queue=\"%s\"}",
             q);
    ck_assert_int_eq((long)sub_metric(port, series), events);
    snprintf(series, sizeof series,
             "hms_sync_consumer_event_latency_seconds_bucket{queue=\"%s\",le=\"+Inf\"}", q);
    ck_assert_int_eq((long)sub_metric(port, series), events);
    snprintf(series, sizeof series, "hms_sync_consumer_batches_total{queue=\"%s\"}", q);
    double batches = sub_metric(port, series);
    ck_assert_msg(batches >= events / 10 && batches < events / 2, "%g batches", batches);
    snprintf(series, sizeof series, "hms_sync_consumer_up{queue=\"%s\"}", q);
    ck_assert(sub_metric(port, series) == 1);
    /* The status page and /status.json show the same figures. */
    static char page[1 << 17];
    ck_assert_int_eq(it_http_get("127.0.0.1", port, "/", page, sizeof page), 200);
    ck_assert_ptr_nonnull(strstr(page, "<p id=\"headline\" class=\"ok\">ready: consuming"));
    char row[128];
    snprintf(row, sizeof row,
             "<tr id=\"row-dead_lettered\"><th>Dead-lettered</th><td "
             "class=\"v\">0</td>");
    ck_assert_msg(strstr(page, row) != NULL, "no %s in %.3000s", row, page);
    ck_assert_ptr_nonnull(strstr(page, "id=\"chart-queue_depth\""));
    ck_assert_int_eq(it_http_get("127.0.0.1", port, "/status.json", page, sizeof page), 200);
    json_object *js = json_tokener_parse(page);
    ck_assert_msg(js != NULL, "status.json: %.300s", page);
    ck_assert_str_eq(it_json_str(js, "queue"), q);
    ck_assert_int_eq(json_object_get_int64(it_json_get(js, "applied_total")), events);
    ck_assert_int_eq(json_object_get_int64(it_json_get(js, "queue_messages")), 0);
    ck_assert(json_object_get_boolean(it_json_get(js, "ready")));
    json_object_put(js);
    free(stop_sub(1));
    fprintf(stderr, "consume: metrics: %ld events in %g batches, depth seen while draining\n",
            events, batches);
}
END_TEST

static Suite *consume_suite(void)
{
    Suite *s = suite_create("consume");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"three", test_three_subscribers},
        {"kill9", test_kill9_exactly_once},
        {"poison", test_poison},
        {"apply_error", test_apply_error_delivery_limit},
        {"transient", test_transient_terminate},
        {"origin", test_origin_echo},
        {"batch", test_batch_backlog},
        {"metrics", test_metrics},
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

/* The subscriber database (.sub: its own, set up by migrate --subscriber)
 * gets an apply function that fails on purpose for the delivery-limit
 * test. */
static int sub_db_init(void)
{
    return it_pg_exec(g_sub.pg,
                      "CREATE FUNCTION public.it_apply_boom(event jsonb) RETURNS text "
                      "LANGUAGE plpgsql AS $$ BEGIN IF event -> 'data' ->> 'summary' = 'boom' "
                      "THEN RAISE EXCEPTION 'boom on purpose'; END IF; "
                      "RETURN hms_sync.apply_warehouse(event); END $$;"
                      "CREATE FUNCTION public.it_apply_slow(event jsonb) RETURNS text "
                      "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.02); "
                      "RETURN hms_sync.apply_warehouse(event); END $$");
}

IT_MAIN(.name = "consume", .env = &g_env, .suite = consume_suite, .sub = &g_sub,
        .setup = sub_db_init)
