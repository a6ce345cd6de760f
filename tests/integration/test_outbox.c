/* test_outbox.c -- the transactional outbox end to end: hms_sync.emit in a
 * committed transaction, a rolled-back one and a rolled-back savepoint,
 * interleaved with incident changes in one transaction (ids and order),
 * the calls the function refuses and who may call it, a type with an
 * installed data schema (valid data carries dataschema, invalid data goes
 * to the rejected exchange and the stream goes on), a type no queue is
 * bound for (it waits in <events>.unrouted), 10,000 emits in one
 * transaction, and kill -9 of the connector while transactions emit, after
 * which a real subscriber's table holds every emitted event exactly once. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/jsonschema.h"
#include "it.h"
#include "it_sub.h"
#include "schema_files.h"

#define ASSIGNED "org.example.cases.InvestigatorAssigned.v1"
#define ESCALATED "org.example.cases.Escalated.v1"
#define ESCALATED_ID "https://schemas.example.org/cases/Escalated.v1.json"

static it_env_t g_env;
static char *g_source; /* .../public.incidents */
static it_subdb_t g_sub;

static struct {
    char slot[64], exchange[128], events[160], unrouted[180], rejected[160], dlx[160];
    char queue[200], schemas[600];
    it_amqp_t ctl, tap, inc, rej;
    it_proc_t conn, sub;
    int metrics_port;
    hms_schema_t *envelope;
    char emit_source[300]; /* .../hms_sync.emit */
} E;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void start_connector(void)
{
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", E.metrics_port);
    const char *extra[] = {"--events-exchange", E.events, "--schemas", E.schemas,
                           "--metrics",         listen,   NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &E.conn, "emit-conn", E.slot, E.exchange, extra), 0);
    if (it_pg_wait_slot_active(g_env.pg, E.slot, 30000) != 0) {
        it_proc_dump(&E.conn, NULL);
        ck_abort_msg("the connector never streamed from %s", E.slot);
    }
}

static void fixture_up(void)
{
    memset(&E, 0, sizeof E);
    hms_err_t e = {0};
    E.envelope = hms_test_schema_load_file(HMS_SCHEMAS_DIR "/emitted-envelope.v1.json", &e);
    ck_assert_msg(E.envelope != NULL, "emitted-envelope.v1.json: %s", e.msg);
    it_env_slot_name(&g_env, E.slot, sizeof E.slot);
    it_env_exchange_name(&g_env, E.exchange, sizeof E.exchange);
    snprintf(E.events, sizeof E.events, "%s.events", E.exchange);
    snprintf(E.unrouted, sizeof E.unrouted, "%s.unrouted", E.events);
    snprintf(E.rejected, sizeof E.rejected, "%s.rejected", E.exchange);
    snprintf(E.dlx, sizeof E.dlx, "%s.dlx", E.exchange);
    snprintf(E.emit_source, sizeof E.emit_source, "%.*s/hms_sync.emit",
             (int)(strrchr(g_source, '/') - g_source), g_source);

    /* One data schema: an escalation names its level, 1 to 3. */
    snprintf(E.schemas, sizeof E.schemas, "%s/emit-schemas-%d", g_env.logdir, (int)getpid());
    mkdir(E.schemas, 0755);
    char path[700];
    snprintf(path, sizeof path, "%s/" ESCALATED ".json", E.schemas);
    write_file(path, "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
                     "\"$id\":\"" ESCALATED_ID "\",\"type\":\"object\",\"required\":[\"level\"],"
                     "\"properties\":{\"level\":{\"type\":\"integer\",\"minimum\":1,"
                     "\"maximum\":3}}}");

    ck_assert_int_eq(it_amqp_open(&E.ctl, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&E.ctl, E.exchange), 0);
    ck_assert_int_eq(it_amqp_declare_dlx(&E.ctl, E.dlx), 0);
    ck_assert_int_eq(it_amqp_declare_rejected(&E.ctl, E.exchange), 0);
    ck_assert_int_eq(it_amqp_tap(&E.rej, g_env.amqp_url, E.rejected), 0);
    ck_assert_int_eq(it_amqp_tap(&E.inc, g_env.amqp_url, E.exchange), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents"), 0);
    E.metrics_port = it_free_port();
    ck_assert_int_ge(E.metrics_port, 0);
    start_connector();
    /* The connector declared the events exchange; the tap takes the
     * example's types only, so that another type has no queue. */
    ck_assert_int_eq(it_amqp_tap_key(&E.tap, g_env.amqp_url, E.events, "org.example.#"), 0);
}

static void fixture_down(void)
{
    it_proc_kill(&E.sub);
    it_proc_kill(&E.conn);
    if (E.tap.conn)
        it_amqp_close(&E.tap);
    if (E.inc.conn)
        it_amqp_close(&E.inc);
    if (E.rej.conn)
        it_amqp_close(&E.rej);
    it_amqp_delete_queue(&E.ctl, E.unrouted);
    it_amqp_delete_exchange(&E.ctl, E.events);
    it_amqp_delete_exchange(&E.ctl, E.unrouted);
    it_amqp_close(&E.ctl);
    if (E.queue[0])
        it_amqp_drop_subscriber(g_env.amqp_url, E.queue, NULL, NULL);
    it_amqp_drop_subscriber(g_env.amqp_url, NULL, E.exchange, E.dlx);
    it_pg_drop_slot(g_env.pg, E.slot);
    hms_schema_free(E.envelope);
    char path[700];
    snprintf(path, sizeof path, "%s/" ESCALATED ".json", E.schemas);
    remove(path);
    rmdir(E.schemas);
}

/* The next message of a, which must come within 30 s. */
static void next(it_amqp_t *a, it_msg_t *m, const char *what)
{
    int got = it_amqp_get(a, 30000, m);
    if (got != 1)
        it_proc_dump(&E.conn, NULL);
    ck_assert_msg(got == 1, "no message: %s", what);
}

/* Nothing more on a within ms. */
static void nothing_more(it_amqp_t *a, int ms, const char *what)
{
    it_msg_t m;
    int got = it_amqp_get(a, ms, &m);
    if (got == 1) {
        ck_abort_msg("%s: unexpected message %s: %.300s", what, m.routing_key, m.body);
        it_msg_free(&m);
    }
}

/* An emitted event as it must be: valid, its properties mirroring it.
 * Returns the parsed body (caller puts it). */
static json_object *emitted(const it_msg_t *m, const char *type, const char *subject)
{
    json_object *doc = json_tokener_parse(m->body);
    ck_assert_msg(doc != NULL, "not JSON: %.300s", m->body);
    hms_err_t e = {0};
    ck_assert_msg(hms_schema_validate(E.envelope, doc, &e) == HMS_OK, "%s: %.300s", e.msg, m->body);
    ck_assert_str_eq(it_json_str(doc, "type"), type);
    ck_assert_str_eq(it_json_str(doc, "subject"), subject);
    ck_assert_str_eq(it_json_str(doc, "source"), E.emit_source);
    ck_assert_str_eq(m->exchange, E.events);
    ck_assert_str_eq(m->routing_key, type);
    ck_assert_str_eq(m->type, type);
    ck_assert_str_eq(m->subject, subject);
    ck_assert_str_eq(m->message_id, it_json_str(doc, "id"));
    ck_assert_str_eq(m->content_type, "application/cloudevents+json");
    ck_assert_int_eq(m->delivery_mode, 2);
    uint64_t lsn, lsn2;
    unsigned ord;
    ck_assert(it_event_id_parse(it_json_str(doc, "id"), &lsn, &ord));
    ck_assert(it_lsn_parse(it_json_str(doc, "lsn"), &lsn2));
    ck_assert_uint_eq(lsn, lsn2);
    return doc;
}

static void id_of(json_object *doc, uint64_t *lsn, unsigned *ord)
{
    ck_assert(it_event_id_parse(it_json_str(doc, "id"), lsn, ord));
}

/* Runs sql (one statement or several) and expects it to fail with sqlstate
 * and a message holding says. */
static void refused(PGconn *c, const char *sql, const char *sqlstate, const char *says)
{
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "accepted: %s", sql);
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    ck_assert_msg(code != NULL && strcmp(code, sqlstate) == 0, "%s: sqlstate %s, want %s", sql,
                  code ? code : "(none)", sqlstate);
    ck_assert_msg(strstr(PQresultErrorMessage(r), says) != NULL, "%s: %s", sql,
                  PQresultErrorMessage(r));
    PQclear(r);
}

START_TEST(test_emit_contract)
{
    PGconn *pg = g_env.pg;
    it_msg_t m;
    uint64_t lsn, lsn2;
    unsigned ord;

    /* Committed: one event. */
    ck_assert_int_eq(it_pg_exec(pg, "SELECT hms_sync.emit('" ASSIGNED "', 'case-1', "
                                    "'{\"case\": 1, \"investigator\": \"dr-okafor\"}')"),
                     0);
    next(&E.tap, &m, "a committed emit");
    json_object *doc = emitted(&m, ASSIGNED, "case-1");
    ck_assert_str_eq(
        json_object_to_json_string_ext(it_json_get(doc, "data"), JSON_C_TO_STRING_PLAIN),
        "{\"case\":1,\"investigator\":\"dr-okafor\"}");
    ck_assert_ptr_null(it_json_get(doc, "dataschema"));
    id_of(doc, &lsn, &ord);
    ck_assert_uint_eq(ord, 0);
    json_object_put(doc);
    it_msg_free(&m);

    /* Rolled back: nothing, whole transaction or savepoint. */
    ck_assert_int_eq(it_pg_exec(pg, "BEGIN; SELECT hms_sync.emit('" ASSIGNED "', 'gone', '{}'); "
                                    "ROLLBACK"),
                     0);
    ck_assert_int_eq(
        it_pg_exec(pg, "BEGIN; SELECT hms_sync.emit('" ASSIGNED "', 'kept-a', '{}'); "
                       "SAVEPOINT s; SELECT hms_sync.emit('" ASSIGNED "', 'gone', '{}'); "
                       "ROLLBACK TO SAVEPOINT s; SELECT hms_sync.emit('" ASSIGNED "', 'kept-b', "
                       "'{}'); COMMIT"),
        0);
    next(&E.tap, &m, "the savepoint's transaction, first");
    doc = emitted(&m, ASSIGNED, "kept-a");
    id_of(doc, &lsn, &ord);
    ck_assert_uint_eq(ord, 0);
    json_object_put(doc);
    it_msg_free(&m);
    next(&E.tap, &m, "the savepoint's transaction, second");
    doc = emitted(&m, ASSIGNED, "kept-b");
    id_of(doc, &lsn2, &ord);
    ck_assert_uint_eq(lsn2, lsn);
    ck_assert_uint_eq(ord, 1); /* the rolled-back call was never sent: no gap */
    json_object_put(doc);
    it_msg_free(&m);

    /* Interleaved with incident changes: one numbering, stream order. */
    char *id = it_pg_value(pg, "INSERT INTO incidents (region) VALUES ('north') RETURNING id");
    ck_assert_ptr_nonnull(id);
    next(&E.inc, &m, "the insert");
    it_msg_free(&m);
    ck_assert_int_eq(it_pg_exec(pg,
                                "BEGIN; UPDATE incidents SET severity = 2 WHERE id = '%s'; "
                                "SELECT hms_sync.emit('" ASSIGNED "', 'case-2', '{\"n\": 1}'); "
                                "UPDATE incidents SET severity = 3 WHERE id = '%s'; "
                                "SELECT hms_sync.emit('" ASSIGNED
                                "', 'case-2', '{\"n\": 2}'); COMMIT",
                                id, id),
                     0);
    uint64_t tx_lsn = 0;
    for (unsigned want = 0; want < 4; want++) {
        it_amqp_t *from = want % 2 == 0 ? &E.inc : &E.tap;
        next(from, &m, "the interleaved transaction");
        doc = json_tokener_parse(m.body);
        ck_assert_ptr_nonnull(doc);
        id_of(doc, &lsn, &ord);
        if (want == 0)
            tx_lsn = lsn;
        ck_assert_uint_eq(lsn, tx_lsn);
        ck_assert_msg(ord == want, "%s has ordinal %u, want %u", m.routing_key, ord, want);
        json_object_put(doc);
        it_msg_free(&m);
    }
    free(id);

    /* Refused in the caller's transaction, naming what is wrong. */
    refused(pg, "SELECT hms_sync.emit('InvestigatorAssigned', 's', '{}')", "22023",
            "not a reverse-DNS name with a version suffix");
    refused(pg, "SELECT hms_sync.emit('org.example.cases.Assigned', 's', '{}')", "22023",
            "not a reverse-DNS name");
    refused(pg, "SELECT hms_sync.emit('gov.hms.ehr.IncidentCreated.v1', 's', '{}')", "22023",
            "hms-sync's own change events");
    refused(pg, "SELECT hms_sync.emit('" ASSIGNED "', E'two\\nlines', '{}')", "22023",
            "subject must be");
    refused(pg, "SELECT hms_sync.emit('" ASSIGNED "', '', '{}')", "22023", "subject must be");
    refused(pg, "SELECT hms_sync.emit('" ASSIGNED "', 's', NULL)", "22004", "data is NULL");
    /* Only a role granted hms_sync_emitter may call it. */
    ck_assert_int_eq(it_pg_exec(pg, "DROP ROLE IF EXISTS hms_it_app; CREATE ROLE hms_it_app; "
                                    "GRANT USAGE ON SCHEMA hms_sync TO hms_it_app"),
                     0);
    refused(pg, "SET ROLE hms_it_app; SELECT hms_sync.emit('" ASSIGNED "', 's', '{}')", "42501",
            "permission denied");
    ck_assert_int_eq(it_pg_exec(pg, "RESET ROLE; GRANT hms_sync_emitter TO hms_it_app; "
                                    "SET ROLE hms_it_app; SELECT hms_sync.emit('" ASSIGNED
                                    "', 'by-app', '{}'); RESET ROLE"),
                     0);
    it_pg_exec(pg, "RESET ROLE; DROP OWNED BY hms_it_app; DROP ROLE hms_it_app");
    next(&E.tap, &m, "the granted role's emit");
    json_object_put(emitted(&m, ASSIGNED, "by-app"));
    it_msg_free(&m);
    nothing_more(&E.tap, 500, "after the refused calls");

    /* A type with a data schema: valid data names it, invalid data is
     * rejected and the stream goes on. */
    ck_assert_int_eq(
        it_pg_exec(pg, "SELECT hms_sync.emit('" ESCALATED "', 'case-3', '{\"level\": 2}')"), 0);
    ck_assert_int_eq(
        it_pg_exec(pg, "SELECT hms_sync.emit('" ESCALATED "', 'case-4', '{\"level\": \"high\"}')"),
        0);
    ck_assert_int_eq(it_pg_exec(pg, "SELECT hms_sync.emit('" ASSIGNED "', 'after', '{}')"), 0);
    next(&E.tap, &m, "valid escalation");
    doc = emitted(&m, ESCALATED, "case-3");
    ck_assert_str_eq(it_json_str(doc, "dataschema"), ESCALATED_ID);
    json_object_put(doc);
    it_msg_free(&m);
    next(&E.rej, &m, "the invalid escalation's rejection");
    doc = json_tokener_parse(m.body);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(it_json_str(doc, "reason"), "invalid");
    ck_assert_str_eq(it_json_str(doc, "table"), "hms_sync.emit");
    ck_assert_str_eq(it_json_str(doc, "subject"), "case-4");
    ck_assert_str_eq(it_json_str(doc, "intendedtype"), ESCALATED);
    ck_assert_str_eq(it_json_str(doc, "source"), E.emit_source);
    ck_assert_msg(strstr(it_json_str(doc, "detail"), "/level") != NULL, "detail: %s",
                  it_json_str(doc, "detail"));
    json_object_put(doc);
    it_msg_free(&m);
    next(&E.tap, &m, "the emit after the rejection");
    json_object_put(emitted(&m, ASSIGNED, "after"));
    it_msg_free(&m);

    /* A type no queue is bound for waits in <events>.unrouted, and the
     * stream goes on past it. */
    ck_assert_int_eq(
        it_pg_exec(pg, "SELECT hms_sync.emit('net.example.billing.Invoiced.v1', 'inv-9', '{}')"),
        0);
    ck_assert_int_eq(it_pg_exec(pg, "SELECT hms_sync.emit('" ASSIGNED "', 'past-it', '{}')"), 0);
    next(&E.tap, &m, "the emit after the unrouted one");
    json_object_put(emitted(&m, ASSIGNED, "past-it"));
    it_msg_free(&m);
    it_amqp_t un = {0};
    ck_assert_int_eq(it_amqp_open(&un, g_env.amqp_url), 0);
    snprintf(un.queue, sizeof un.queue, "%s", E.unrouted);
    ck_assert_int_eq(it_amqp_consume(&un), 0);
    next(&un, &m, "the unrouted event");
    json_object_put(emitted(&m, "net.example.billing.Invoiced.v1", "inv-9"));
    it_msg_free(&m);
    it_amqp_close(&un);
    ck_assert_int_eq(it_pg_wait_confirmed(pg, E.slot, it_pg_insert_lsn(pg), 30000), 0);
    nothing_more(&E.tap, 300, "the end");
}
END_TEST

START_TEST(test_emit_10000_in_one_transaction)
{
    enum { N = 10000 };
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "SELECT hms_sync.emit('" ASSIGNED "', 'bulk', "
                                "jsonb_build_object('n', i)) FROM generate_series(0, %d) i",
                                N - 1),
                     0);
    uint64_t first = 0;
    for (unsigned i = 0; i < N; i++) {
        it_msg_t m;
        next(&E.tap, &m, "the bulk transaction");
        json_object *doc = json_tokener_parse(m.body);
        ck_assert_ptr_nonnull(doc);
        uint64_t lsn;
        unsigned ord;
        id_of(doc, &lsn, &ord);
        if (i == 0)
            first = lsn;
        ck_assert_uint_eq(lsn, first);
        ck_assert_msg(ord == i, "event %u has ordinal %u", i, ord);
        ck_assert_int_eq(json_object_get_int(it_json_get(it_json_get(doc, "data"), "n")), (int)i);
        json_object_put(doc);
        it_msg_free(&m);
    }
    nothing_more(&E.tap, 300, "after the bulk transaction");
    /* The metrics count them all under one bounded label, never under
     * the application's type. */
    static char body[1 << 16];
    ck_assert_int_eq(it_http_get("127.0.0.1", E.metrics_port, "/metrics", body, sizeof body), 200);
    double emitted = it_metric(body, "hms_sync_events_published_total{type=\"emitted\"}");
    ck_assert_msg(emitted >= N, "published emitted events: %.0f, want >= %d", emitted, N);
    ck_assert_ptr_null(strstr(body, ASSIGNED));
}
END_TEST

/* The subscriber of the docs' example: one emitted type into a table. */
static const char *const subscriber_sql =
    "CREATE TABLE case_assignments (case_id integer PRIMARY KEY, investigator text NOT NULL, "
    "event_id text NOT NULL);"
    "CREATE FUNCTION apply_assignment(event jsonb) RETURNS text LANGUAGE sql AS $$ "
    "INSERT INTO case_assignments VALUES ((event->'data'->>'case')::integer, "
    "event->'data'->>'investigator', event->>'id') ON CONFLICT (case_id) DO UPDATE SET "
    "investigator = EXCLUDED.investigator, event_id = EXCLUDED.event_id; SELECT 'applied' $$;";

START_TEST(test_emit_kill9_subscriber_ends_equal)
{
    enum { N = 3000 };
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "%s", subscriber_sql), 0);
    snprintf(E.queue, sizeof E.queue, "%s.assignments", E.events);
    const char *extra[] = {"--bind", ASSIGNED, "--schemas", E.schemas, NULL};
    if (it_consume_start(&g_env, &E.sub, "emit-sub", g_sub.conninfo, E.events, E.dlx, E.queue,
                         "apply_assignment", extra) != 0)
        ck_abort_msg("the subscriber never started consuming");

    /* N transactions, each assigning case i, on a session of their own,
     * a millisecond apart, so that the kill falls amid them. */
    PGconn *load = PQconnectdb(g_env.super_conninfo);
    ck_assert_int_eq(PQstatus(load), CONNECTION_OK);
    char sql[500];
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN FOR i IN 1..%d LOOP PERFORM hms_sync.emit('" ASSIGNED "', 'case-' || "
             "i, jsonb_build_object('case', i, 'investigator', 'inv-' || i)); COMMIT; "
             "PERFORM pg_sleep(0.001); END LOOP; "
             "END $$",
             N);
    ck_assert_int_eq(PQsendQuery(load, sql), 1);
    it_sleep_ms(1000);
    it_proc_signal(&E.conn, SIGKILL);
    it_proc_wait(&E.conn, 10000);
    ck_assert_int_eq(PQconsumeInput(load), 1);
    ck_assert_msg(PQisBusy(load), "the load ended before the kill");
    long before = it_inbox_count(g_sub.pg, E.queue);
    ck_assert_msg(before > 0 && before < N, "%ld of %d applied at the kill", before, N);
    fprintf(stderr, "it: outbox: kill -9 of the connector with %ld of %d emitted events applied\n",
            before, N);
    start_connector();
    PGresult *r;
    while ((r = PQgetResult(load)) != NULL) {
        ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "load: %s", PQresultErrorMessage(r));
        PQclear(r);
    }
    PQfinish(load);

    /* What the subscriber ends with: every case once, from its own event. */
    long n = it_inbox_wait(g_sub.pg, E.queue, N, 120000);
    if (n != N) {
        it_proc_dump(&E.conn, "connector");
        it_proc_dump(&E.sub, "subscriber");
    }
    ck_assert_int_eq(n, N);
    ck_assert_int_eq(it_pg_count(g_sub.pg, "SELECT count(*) FROM case_assignments"), N);
    ck_assert_int_eq(it_pg_count(g_sub.pg,
                                 "SELECT count(*) FROM case_assignments WHERE investigator <> "
                                 "'inv-' || case_id"),
                     0);
    ck_assert_int_eq(it_pg_count(g_sub.pg, "SELECT min(case_id) FROM case_assignments"), 1);
    ck_assert_int_eq(it_pg_count(g_sub.pg, "SELECT max(case_id) FROM case_assignments"), N);
    /* Each transaction's id once: the inbox deduplicated any republished
     * copy. */
    ck_assert_int_eq(it_pg_count(g_sub.pg, "SELECT count(DISTINCT event_id) FROM case_assignments"),
                     N);
}
END_TEST

static Suite *emit_suite(void)
{
    Suite *s = suite_create("emit");
    it_tcase(s, "contract", fixture_up, fixture_down, 300, test_emit_contract);
    it_tcase(s, "bulk", fixture_up, fixture_down, 300, test_emit_10000_in_one_transaction);
    it_tcase(s, "kill9", fixture_up, fixture_down, 300, test_emit_kill9_subscriber_ends_equal);
    return s;
}

IT_MAIN(.name = "outbox", .env = &g_env, .source = &g_source, .sub = &g_sub, .suite = emit_suite)
