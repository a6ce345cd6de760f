/* test_rejected.c -- changes that cannot become a valid event, end to end:
 * an occurred_at of 'infinity' and one BC (the event fails its own schema),
 * an updated_at of 'infinity' (the encoder cannot express it), a region too
 * long for the routing key, and an event larger than the broker takes (its
 * max_message_size lowered at runtime, max_event_bytes set to match).  Each
 * must reach the rejected exchange with x-reason and a body valid against
 * schemas/RejectedChange.v1.json, move hms_sync_changes_rejected_total, be
 * logged once and passed by the slot, while the connector keeps running,
 * the changes after it arrive, and a subscriber ends equal to the source
 * for the valid rows; fixing a rejected row at the source publishes it.
 * Also: sql/006 applies to a table that already holds such rows and
 * refuses new ones by the constraint's name. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonschema.h"
#include "it.h"
#include "it_sub.h"
#include "schema_files.h"

/* 1 MiB: the broker's limit during the test, and the connector's setting. */
#define LIMIT "1048576"
#define BROKER_DEFAULT "134217728"

static it_env_t g_env;
static char *g_source;
static it_subdb_t g_sub;

static const char *const constraints[] = {"incidents_occurred_at_finite",
                                          "incidents_updated_at_finite",
                                          "incidents_region_fits_routing_key"};

static struct {
    char slot[64], exchange[128], rejected[160], dlx[160], queue[200];
    it_amqp_t ctl, tap, rej;
    it_proc_t conn, sub;
    int metrics_port;
    bool limit_lowered;
} E;

static long count_sub(const char *sql)
{
    char *v = it_pg_value(g_sub.pg, "%s", sql);
    ck_assert_msg(v != NULL, "query failed: %s", sql);
    long n = atol(v);
    free(v);
    return n;
}

static void set_broker_limit(const char *bytes)
{
    char expr[160];
    snprintf(expr, sizeof expr, "application:set_env(rabbit, max_message_size, %s).", bytes);
    ck_assert_int_eq(it_rabbitmqctl(&g_env, 30000, "eval", expr, NULL), 0);
}

static void fixture_up(void)
{
    memset(&E, 0, sizeof E);
    if (g_env.rabbitmqctl == NULL)
        ck_abort_msg("HMS_TEST_RABBITMQCTL is needed to lower the broker's max_message_size");
    it_env_slot_name(&g_env, E.slot, sizeof E.slot);
    it_env_exchange_name(&g_env, E.exchange, sizeof E.exchange);
    snprintf(E.rejected, sizeof E.rejected, "%s.rejected", E.exchange);
    snprintf(E.dlx, sizeof E.dlx, "%s.dlx", E.exchange);
    ck_assert_int_eq(it_amqp_open(&E.ctl, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&E.ctl, E.exchange), 0);
    ck_assert_int_eq(it_amqp_declare_dlx(&E.ctl, E.dlx), 0);
    /* The rejected exchange as the connector declares it, with a queue. */
    ck_assert_int_eq(it_amqp_declare_rejected(&E.ctl, E.exchange), 0);
    ck_assert_int_eq(it_amqp_tap(&E.rej, g_env.amqp_url, E.rejected), 0);
    ck_assert_int_eq(it_amqp_tap(&E.tap, g_env.amqp_url, E.exchange), 0);

    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents"), 0);
    /* The rows below are what a table held before sql/006, or what a
     * writer without it can still commit. */
    for (size_t i = 0; i < sizeof constraints / sizeof constraints[0]; i++)
        ck_assert_int_eq(it_pg_exec(g_env.pg, "ALTER TABLE incidents DROP CONSTRAINT IF EXISTS %s",
                                    constraints[i]),
                         0);
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "TRUNCATE incident_facts, hms_sync.inbox"), 0);

    /* A channel reads max_message_size when it opens: lower it first. */
    set_broker_limit(LIMIT);
    E.limit_lowered = true;
    E.metrics_port = it_free_port();
    ck_assert_int_ge(E.metrics_port, 0);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", E.metrics_port);
    const char *extra[] = {"--metrics", listen, "--max-event-bytes", LIMIT, NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &E.conn, "rejected-conn", E.slot, E.exchange, extra), 0);
    if (it_pg_wait_slot_active(g_env.pg, E.slot, 30000) != 0) {
        it_proc_dump(&E.conn, NULL);
        ck_abort_msg("the connector never streamed from %s", E.slot);
    }
    snprintf(E.queue, sizeof E.queue, "%s.warehouse", E.exchange);
    if (it_consume_start(&g_env, &E.sub, "rejected-warehouse", g_sub.conninfo, E.exchange, E.dlx,
                         E.queue, "hms_sync.apply_warehouse", NULL) != 0)
        ck_abort_msg("the subscriber never started consuming");
}

static void fixture_down(void)
{
    if (E.limit_lowered)
        set_broker_limit(BROKER_DEFAULT);
    /* Put the constraints back as migrate left them. */
    it_pg_exec(g_env.pg, "DELETE FROM incidents");
    it_pg_exec(g_env.pg,
               "ALTER TABLE incidents ADD CONSTRAINT incidents_occurred_at_finite CHECK "
               "(occurred_at >= '0001-01-01 00:00:00+00' AND occurred_at < '10000-01-01 "
               "00:00:00+00') NOT VALID, ADD CONSTRAINT incidents_updated_at_finite CHECK "
               "(updated_at >= '0001-01-01 00:00:00+00' AND updated_at < '10000-01-01 "
               "00:00:00+00') NOT VALID, ADD CONSTRAINT incidents_region_fits_routing_key "
               "CHECK (octet_length(region) <= 237) NOT VALID");
    it_proc_kill(&E.sub);
    it_proc_kill(&E.conn);
    if (E.tap.conn)
        it_amqp_close(&E.tap);
    if (E.rej.conn)
        it_amqp_close(&E.rej);
    it_amqp_close(&E.ctl);
    if (E.queue[0])
        it_amqp_drop_subscriber(g_env.amqp_url, E.queue, NULL, NULL);
    it_amqp_drop_subscriber(g_env.amqp_url, NULL, E.exchange, E.dlx);
    it_pg_drop_slot(g_env.pg, E.slot);
}

/* Inserts one row in its own transaction; returns its key (caller frees). */
static char *insert(const char *columns, const char *values)
{
    char *id = it_pg_value(g_env.pg, "INSERT INTO incidents (%s) VALUES (%s) RETURNING id", columns,
                           values);
    ck_assert_msg(id != NULL, "INSERT (%s) VALUES (%s) failed", columns, values);
    return id;
}

/* One case: the row inserted, the reason and the detail it must get. */
typedef struct {
    const char *what, *columns, *values, *reason, *detail;
    char *id;
    bool seen;
} case_t;

static hms_schema_t *rejected_schema(void)
{
    hms_err_t e = {0};
    hms_schema_t *s = hms_test_schema_load_file(HMS_SCHEMAS_DIR "/RejectedChange.v1.json", &e);
    ck_assert_msg(s != NULL, "RejectedChange.v1.json: %s", e.msg);
    return s;
}

/* Checks one rejected message against its case and its schema. */
static void check_rejection(const it_msg_t *m, case_t *cases, size_t ncases,
                            const hms_schema_t *schema)
{
    json_object *doc = json_tokener_parse(m->body);
    ck_assert_msg(doc != NULL, "rejection is not JSON: %.200s", m->body);
    hms_err_t e = {0};
    ck_assert_msg(hms_schema_validate(schema, doc, &e) == HMS_OK, "rejection fails its schema: %s",
                  e.msg);
    const char *subject = it_json_str(doc, "subject"), *reason = it_json_str(doc, "reason");
    case_t *c = NULL;
    for (size_t i = 0; i < ncases; i++)
        if (subject != NULL && strcmp(cases[i].id, subject) == 0)
            c = &cases[i];
    ck_assert_msg(c != NULL, "a rejection of an unexpected change: %.300s", m->body);
    ck_assert_msg(!c->seen, "%s rejected twice", c->what);
    c->seen = true;
    ck_assert_str_eq(reason, c->reason);
    ck_assert_msg(strstr(it_json_str(doc, "detail"), c->detail) != NULL, "%s: detail %s", c->what,
                  it_json_str(doc, "detail"));
    /* The header: one line, the reason first. */
    ck_assert_msg(strncmp(m->x_reason, c->reason, strlen(c->reason)) == 0 &&
                      strchr(m->x_reason, '\n') == NULL,
                  "%s: x-reason %s", c->what, m->x_reason);
    ck_assert_str_eq(m->message_id, it_json_str(doc, "id"));
    ck_assert_str_eq(m->type, "gov.hms.ehr.RejectedChange.v1");
    ck_assert_str_eq(m->content_type, "application/json");
    ck_assert_int_eq(m->delivery_mode, 2);
    ck_assert_str_eq(it_json_str(doc, "source"), g_source);
    ck_assert_str_eq(it_json_str(doc, "table"), "public.incidents");
    uint64_t lsn, lsn2;
    unsigned ord;
    ck_assert(it_event_id_parse(it_json_str(doc, "id"), &lsn, &ord));
    ck_assert(it_lsn_parse(it_json_str(doc, "lsn"), &lsn2));
    ck_assert_uint_eq(lsn, lsn2);
    ck_assert_uint_eq(ord, 0); /* one change per transaction */
    if (strcmp(c->reason, "oversize") == 0) {
        ck_assert_int_gt(json_object_get_int64(it_json_get(doc, "size")), 1048576);
        ck_assert_int_lt((long)m->len, 4096);
    }
    json_object_put(doc);
}

START_TEST(test_rejected_changes)
{
    char *before = insert("region, summary", "'north', 'before'");
    case_t cases[] = {
        {"occurred_at infinity", "region, occurred_at", "'north', 'infinity'", "invalid",
         "/occurred_at", NULL, false},
        {"occurred_at BC", "region, occurred_at", "'north', '0044-03-15 12:00+00 BC'", "invalid",
         "schema: data: /occurred_at", NULL, false},
        {"updated_at infinity", "region, updated_at", "'north', 'infinity'", "unencodable",
         "updated_at cannot be expressed in RFC 3339", NULL, false},
        {"long region", "region", "repeat('r', 300)", "unencodable", "the region is 300 bytes",
         NULL, false},
        {"oversize", "region, summary", "'north', repeat('x', 1500000)", "oversize",
         "over max_event_bytes 1048576", NULL, false},
    };
    const size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < ncases; i++)
        cases[i].id = insert(cases[i].columns, cases[i].values);
    char *after = insert("region, summary", "'south', 'after'");
    uint64_t end = it_pg_insert_lsn(g_env.pg);

    /* Passed by the slot once confirmed, like any event. */
    if (it_pg_wait_confirmed(g_env.pg, E.slot, end, 60000) != 0) {
        it_proc_dump(&E.conn, NULL);
        ck_abort_msg("the slot did not pass the rejected changes");
    }
    ck_assert_msg(it_proc_wait(&E.conn, 0) == -1, "the connector stopped");

    hms_schema_t *schema = rejected_schema();
    it_msg_t m;
    size_t got = 0;
    while (got < ncases && it_amqp_get(&E.rej, 15000, &m) == 1) {
        check_rejection(&m, cases, ncases, schema);
        it_msg_free(&m);
        got++;
    }
    ck_assert_int_eq((long)got, (long)ncases);
    ck_assert_int_eq(it_amqp_get(&E.rej, 500, &m), 0);
    hms_schema_free(schema);

    /* The events: only the valid rows, each valid against its schemas. */
    char why[512];
    int events = 0;
    bool saw_before = false, saw_after = false;
    while (it_amqp_get(&E.tap, 1500, &m) == 1) {
        json_object *ev = it_event_check(&m, g_source, why, sizeof why);
        ck_assert_msg(ev != NULL, "published event breaks the contract: %s", why);
        const char *subject = it_json_str(ev, "subject");
        saw_before = saw_before || strcmp(subject, before) == 0;
        saw_after = saw_after || strcmp(subject, after) == 0;
        for (size_t i = 0; i < ncases; i++)
            ck_assert_msg(strcmp(subject, cases[i].id) != 0, "%s was published as an event",
                          cases[i].what);
        json_object_put(ev);
        it_msg_free(&m);
        events++;
    }
    ck_assert(saw_before && saw_after);
    ck_assert_int_eq(events, 2);

    /* Counted by reason, and logged once each with table, key and LSN. */
    char body[65536];
    ck_assert_int_eq(it_http_get("127.0.0.1", E.metrics_port, "/metrics", body, sizeof body), 200);
    ck_assert_ptr_nonnull(
        strstr(body, "\nhms_sync_changes_rejected_total{reason=\"invalid\"} 2\n"));
    ck_assert_ptr_nonnull(
        strstr(body, "\nhms_sync_changes_rejected_total{reason=\"unencodable\"} 2\n"));
    ck_assert_ptr_nonnull(
        strstr(body, "\nhms_sync_changes_rejected_total{reason=\"oversize\"} 1\n"));
    char *log = it_proc_output(&E.conn);
    ck_assert_ptr_nonnull(log);
    for (size_t i = 0; i < ncases; i++) {
        const char *hit = strstr(log, cases[i].id);
        ck_assert_msg(hit != NULL, "%s: no log line names key %s", cases[i].what, cases[i].id);
        const char *bol = hit;
        while (bol > log && bol[-1] != '\n')
            bol--;
        ck_assert_msg(strstr(bol, "change rejected") != NULL && strstr(bol, "lsn=") != NULL &&
                          strstr(bol, "table=public.incidents"),
                      "%s: log line %.300s", cases[i].what, bol);
        ck_assert_msg(strstr(hit + 1, cases[i].id) == NULL, "%s logged twice", cases[i].what);
    }
    free(log);

    /* Fixed at the source, a rejected row is published by its next change. */
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "UPDATE incidents SET occurred_at = now() WHERE id = '%s'",
                                cases[0].id),
                     0);
    for (double stop = it_now_ms() + 60000;
         count_sub("SELECT count(*) FROM hms_sync.inbox") < 3 && it_now_ms() < stop;)
        it_sleep_ms(100);
    ck_assert_int_eq(count_sub("SELECT count(*) FROM hms_sync.inbox"), 3);
    ck_assert_msg(it_proc_wait(&E.conn, 0) == -1, "the connector stopped");

    /* The subscriber equals the source for the rows that are valid. */
    char ids[400];
    snprintf(ids, sizeof ids, "'%s', '%s', '%s', '%s'", cases[1].id, cases[2].id, cases[3].id,
             cases[4].id);
    json_object *src = it_pg_column(
        g_env.pg,
        "SELECT id || '|' || region || '|' || severity || '|' || status || '|' || "
        "coalesce(summary, '') || '|' || version FROM incidents WHERE id NOT IN (%s) ORDER BY 1",
        ids);
    json_object *dst = it_pg_column(
        g_sub.pg,
        "SELECT incident_id || '|' || region || '|' || severity || '|' || status || '|' || "
        "coalesce(summary, '') || '|' || version FROM incident_facts WHERE NOT deleted "
        "ORDER BY 1");
    ck_assert_ptr_nonnull(src);
    ck_assert_ptr_nonnull(dst);
    ck_assert_int_eq((long)json_object_array_length(src), 3);
    ck_assert_str_eq(json_object_to_json_string(dst), json_object_to_json_string(src));
    fprintf(stderr, "rejected: %zu rejections, %d events, replica rows %zu\n", got, events,
            json_object_array_length(dst));
    json_object_put(src);
    json_object_put(dst);
    for (size_t i = 0; i < ncases; i++)
        free(cases[i].id);
    free(before);
    free(after);
}
END_TEST

/* sql/006 on a table that already holds bad rows: it applies, and only new
 * writes are refused, naming the constraint. */
START_TEST(test_constraints_not_valid)
{
    char db[200], conninfo[IT_CONNINFO_MAX + 300];
    snprintf(db, sizeof db, "%s_pre", g_env.dbname);
    PGconn *admin = it_pg_connect(getenv("HMS_TEST_PG"));
    ck_assert_ptr_nonnull(admin);
    ck_assert_int_eq(it_pg_exec(admin, "CREATE DATABASE %s", db), 0);
    snprintf(conninfo, sizeof conninfo, "%s dbname=%s", g_env.super_conninfo, db);
    PGconn *pre = it_pg_connect(conninfo);
    ck_assert_ptr_nonnull(pre);
    /* The EHR's own table, as it was before hms-sync. */
    ck_assert_int_eq(
        it_pg_exec(pre, "CREATE TABLE public.incidents (id uuid PRIMARY KEY DEFAULT "
                        "gen_random_uuid(), occurred_at timestamptz NOT NULL DEFAULT now(), "
                        "region text NOT NULL, severity smallint NOT NULL DEFAULT 3, status text "
                        "NOT NULL DEFAULT 'open', summary text, reported_by text); "
                        "INSERT INTO public.incidents (occurred_at, region) VALUES ('infinity', "
                        "'north'), (now(), repeat('r', 300))"),
        0);
    const char *argv[] = {HMS_BIN, "migrate", "--pg", conninfo, NULL};
    ck_assert_int_eq(it_cmd_run(&g_env, "rejected-migrate-pre", 120000, argv), 0);
    char *n = it_pg_value(pre, "SELECT count(*) FROM incidents");
    ck_assert_str_eq(n, "2");
    free(n);
    n = it_pg_value(pre, "SELECT count(*) FROM pg_constraint WHERE conrelid = "
                         "'public.incidents'::regclass AND NOT convalidated");
    ck_assert_str_eq(n, "3");
    free(n);
    const char *bad[][2] = {
        {"occurred_at, region", "'infinity', 'north'"},
        {"occurred_at, region", "'0044-03-15 BC', 'north'"},
        {"updated_at, region", "'-infinity', 'north'"},
        {"region", "repeat('r', 238)"},
    };
    const char *name[] = {"incidents_occurred_at_finite", "incidents_occurred_at_finite",
                          "incidents_updated_at_finite", "incidents_region_fits_routing_key"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char sql[300];
        snprintf(sql, sizeof sql, "INSERT INTO incidents (%s) VALUES (%s)", bad[i][0], bad[i][1]);
        PGresult *r = PQexec(pre, sql);
        ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
        const char *c = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        ck_assert_msg(c != NULL && strcmp(c, name[i]) == 0, "%s: refused by %s, want %s", sql,
                      c ? c : "(none)", name[i]);
        PQclear(r);
    }
    /* The largest region that fits still goes in, and so does a fixed row. */
    ck_assert_int_eq(it_pg_exec(pre, "INSERT INTO incidents (region) VALUES (repeat('r', 237))"),
                     0);
    ck_assert_int_eq(it_pg_exec(pre, "UPDATE incidents SET occurred_at = now() WHERE occurred_at "
                                     "= 'infinity'"),
                     0);
    PQfinish(pre);
    it_pg_exec(admin, "DROP DATABASE %s WITH (FORCE)", db);
    PQfinish(admin);
}
END_TEST

static Suite *rejected_suite(void)
{
    Suite *s = suite_create("rejected");
    it_tcase(s, "rejected_changes", fixture_up, fixture_down, 300, test_rejected_changes);
    it_tcase(s, "constraints", NULL, NULL, 300, test_constraints_not_valid);
    return s;
}

/* A subscriber database of its own, set up by migrate --subscriber. */
IT_MAIN(.name = "rejected", .env = &g_env, .source = &g_source, .sub = &g_sub,
        .suite = rejected_suite)
