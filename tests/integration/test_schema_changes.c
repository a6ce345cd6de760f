/* test_schema_changes.c -- ALTER TABLE incidents while the connector streams,
 * end to end, with a `hms-sync consume` warehouse subscriber applying:
 * ADD COLUMN (the new column travels under data._extra), DROP COLUMN,
 * compatible type changes (smallint -> bigint, text -> varchar(200)), a type
 * change whose values the schema refuses, and a contract column renamed
 * away and back.  Every published event must be valid against the v1
 * schemas; a change that cannot be one must reach the rejected exchange
 * instead, with an x-reason naming the column, while the stream goes on;
 * and the subscriber's table must end equal to the source on the contract's
 * columns. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"
#include "it_sub.h"

static it_env_t g_env;
static char *g_source;
static it_subdb_t g_sub;

/* The contract's columns of every live row, at the source and at the
 * warehouse: what the subscriber must end equal to. */
#define ROW_TEXT(key)                                                                              \
    key " || '|' || occurred_at || '|' || region || '|' || severity || '|' || status || '|' || "   \
        "coalesce(summary, '-') || '|' || coalesce(reported_by, '-') || '|' || version || '|' || " \
        "updated_at || '|' || origin"
#define SOURCE_SQL "SELECT " ROW_TEXT("id") " FROM incidents ORDER BY 1"
#define REPLICA_SQL                                                                                \
    "SELECT " ROW_TEXT("incident_id") " FROM incident_facts WHERE NOT deleted ORDER BY 1"

#define MISSING_SUMMARY "column summary is missing from public.incidents (dropped or renamed?)"

static struct {
    char slot[64], exchange[128], rejected[160], dlx[160], queue[200];
    it_amqp_t ctl, tap, rej;
    it_proc_t conn, sub;
    int metrics_port;
    long events; /* published so far: what the inbox must hold */
} E;

static long count_on(PGconn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long count_on(PGconn *conn, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char *v = it_pg_value(conn, "%s", sql);
    ck_assert_msg(v != NULL, "query failed: %s", sql);
    long n = atol(v);
    free(v);
    return n;
}

/* Runs a statement at the source that changes rows; each changed row is
 * one event to come. */
static void change(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void change(const char *fmt, ...)
{
    char sql[1024], wrapped[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    snprintf(wrapped, sizeof wrapped, "WITH c AS (%s RETURNING 1) SELECT count(*) FROM c", sql);
    E.events += count_on(g_env.pg, "%s", wrapped);
}

static char *key_of(const char *where)
{
    char *id = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE %s", where);
    ck_assert_msg(id != NULL, "no incident where %s", where);
    return id;
}

/* Waits until the subscriber's inbox holds every event published so far,
 * each applied. */
static void await_inbox(void)
{
    long n = it_inbox_wait(g_sub.pg, E.queue, E.events, 60000);
    if (n != E.events) {
        it_proc_dump(&E.conn, NULL);
        it_proc_dump(&E.sub, NULL);
    }
    ck_assert_msg(n == E.events, "inbox: %ld events, want %ld", n, E.events);
    ck_assert_int_eq(count_on(g_sub.pg,
                              "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = '%s' AND "
                              "outcome <> 'applied'",
                              E.queue),
                     0);
}

/* The warehouse's live rows against rows (the source's, unless given). */
static void assert_replica(json_object *want)
{
    json_object *src = want != NULL ? want : it_pg_column(g_env.pg, SOURCE_SQL);
    json_object *rep = it_pg_column(g_sub.pg, REPLICA_SQL);
    ck_assert_ptr_nonnull(src);
    ck_assert_ptr_nonnull(rep);
    ck_assert_msg(json_object_equal(src, rep), "the warehouse differs from the source:\n%s\n%s",
                  json_object_to_json_string(src), json_object_to_json_string(rep));
    if (want == NULL)
        json_object_put(src);
    json_object_put(rep);
}

/* Every event published since the last call, read until the tap has been
 * quiet for a second; each must be valid against the schemas. */
static json_object *drain_tap(void)
{
    json_object *all = json_object_new_array();
    it_msg_t m;
    char why[512];
    while (it_amqp_get(&E.tap, 1000, &m) == 1) {
        json_object *ev = it_event_check(&m, g_source, why, sizeof why);
        ck_assert_msg(ev != NULL, "published event breaks the contract: %s\n%.600s", why, m.body);
        json_object_array_add(all, ev);
        it_msg_free(&m);
    }
    return all;
}

/* The first event of subject of type suffix ("Created.v1"), or NULL. */
static json_object *find_event(json_object *all, const char *suffix, const char *subject)
{
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *ev = json_object_array_get_idx(all, i);
        const char *type = it_json_str(ev, "type");
        size_t n = strlen(type), m = strlen(suffix);
        if (n >= m && strcmp(type + n - m, suffix) == 0 &&
            strcmp(it_json_str(ev, "subject"), subject) == 0)
            return ev;
    }
    return NULL;
}

/* data._extra of ev, or NULL when absent. */
static json_object *extra_of(json_object *ev)
{
    return it_json_get(it_json_get(ev, "data"), "_extra");
}

/* Reads want rejections; each must name reason and detail, in its body
 * and in its one-line x-reason.  Returns their subjects as a JSON array. */
static json_object *drain_rejected(int want, const char *reason, const char *detail)
{
    json_object *subjects = json_object_new_array();
    it_msg_t m;
    int got = 0;
    while (got < want && it_amqp_get(&E.rej, 20000, &m) == 1) {
        json_object *doc = json_tokener_parse(m.body);
        ck_assert_msg(doc != NULL, "a rejection is not JSON: %.200s", m.body);
        ck_assert_str_eq(m.type, "gov.hms.ehr.RejectedChange.v1");
        ck_assert_str_eq(it_json_str(doc, "reason"), reason);
        ck_assert_str_eq(it_json_str(doc, "table"), "public.incidents");
        ck_assert_msg(strstr(it_json_str(doc, "detail"), detail) != NULL, "detail: %s",
                      it_json_str(doc, "detail"));
        ck_assert_msg(strncmp(m.x_reason, reason, strlen(reason)) == 0 &&
                          strstr(m.x_reason, detail) != NULL && strchr(m.x_reason, '\n') == NULL,
                      "x-reason: %s", m.x_reason);
        json_object_array_add(subjects, json_object_new_string(it_json_str(doc, "subject")));
        json_object_put(doc);
        it_msg_free(&m);
        got++;
    }
    if (got != want)
        it_proc_dump(&E.conn, NULL);
    ck_assert_msg(got == want, "%d rejection(s) of %s, want %d", got, reason, want);
    ck_assert_int_eq(it_amqp_get(&E.rej, 500, &m), 0);
    return subjects;
}

static bool has_string(json_object *arr, const char *s)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++)
        if (strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), s) == 0)
            return true;
    return false;
}

/* Messages in the subscriber's dead-letter queue. */
static long dead_letters(void)
{
    char dlq[220];
    snprintf(dlq, sizeof dlq, "%s.dlq", E.queue);
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(E.ctl.conn, 1, amqp_cstring_bytes(dlq), 1, 0, 0, 0, amqp_empty_table);
    ck_assert_msg(ok != NULL, "no queue %s", dlq);
    return (long)ok->message_count;
}

static void spawn_subscriber(void)
{
    snprintf(E.queue, sizeof E.queue, "%s.warehouse", E.exchange);
    if (it_consume_start(&g_env, &E.sub, "schema-warehouse", g_sub.conninfo, E.exchange, E.dlx,
                         E.queue, "hms_sync.apply_warehouse", NULL) != 0)
        ck_abort_msg("the subscriber never started consuming");
}

static void fixture_up(void)
{
    memset(&E, 0, sizeof E);
    it_env_slot_name(&g_env, E.slot, sizeof E.slot);
    it_env_exchange_name(&g_env, E.exchange, sizeof E.exchange);
    snprintf(E.rejected, sizeof E.rejected, "%s.rejected", E.exchange);
    snprintf(E.dlx, sizeof E.dlx, "%s.dlx", E.exchange);
    ck_assert_int_eq(it_amqp_open(&E.ctl, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&E.ctl, E.exchange), 0);
    ck_assert_int_eq(it_amqp_declare_dlx(&E.ctl, E.dlx), 0);
    /* The rejected exchange as the connector declares it, with a queue
     * bound before the first change can be rejected. */
    ck_assert_int_eq(it_amqp_declare_rejected(&E.ctl, E.exchange), 0);
    ck_assert_int_eq(it_amqp_tap(&E.rej, g_env.amqp_url, E.rejected), 0);
    ck_assert_int_eq(it_amqp_tap(&E.tap, g_env.amqp_url, E.exchange), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents"), 0);
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "TRUNCATE incident_facts, hms_sync.inbox"), 0);

    E.metrics_port = it_free_port();
    ck_assert_int_ge(E.metrics_port, 0);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", E.metrics_port);
    const char *extra[] = {"--metrics", listen, NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &E.conn, "schema-conn", E.slot, E.exchange, extra), 0);
    if (it_pg_wait_slot_active(g_env.pg, E.slot, 30000) != 0) {
        it_proc_dump(&E.conn, NULL);
        ck_abort_msg("the connector never streamed from %s", E.slot);
    }
    spawn_subscriber();
}

static void fixture_down(void)
{
    it_proc_kill(&E.sub);
    it_proc_kill(&E.conn);
    /* The table as migrate left it, whatever step failed. */
    it_pg_exec(g_env.pg,
               "DO $$ BEGIN IF EXISTS (SELECT 1 FROM information_schema.columns WHERE "
               "table_name = 'incidents' AND column_name = 'description') THEN ALTER TABLE "
               "incidents RENAME COLUMN description TO summary; END IF; END $$");
    it_pg_exec(g_env.pg, "ALTER TABLE incidents DROP COLUMN IF EXISTS ward, ALTER COLUMN severity "
                         "TYPE smallint USING severity::smallint, ALTER COLUMN reported_by TYPE "
                         "text");
    if (E.tap.conn)
        it_amqp_close(&E.tap);
    if (E.rej.conn)
        it_amqp_close(&E.rej);
    it_amqp_delete_rejected(&E.ctl, E.exchange);
    it_amqp_close(&E.ctl);
    if (E.queue[0])
        it_amqp_drop_subscriber(g_env.amqp_url, E.queue, NULL, NULL);
    it_amqp_drop_subscriber(g_env.amqp_url, NULL, E.exchange, E.dlx);
    it_pg_drop_slot(g_env.pg, E.slot);
}

/* ADD COLUMN ward: the rows' ward reaches subscribers under data._extra in
 * every kind of event, and the events stay valid. */
static void step_add_column(void)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg, "ALTER TABLE incidents ADD COLUMN ward text"), 0);
    change("INSERT INTO incidents (region, severity, summary, ward) VALUES "
           "('north', 2, 'ward set', '3B'), ('south', 4, 'ward null', NULL)");
    char *a = key_of("summary = 'ward set'"), *b = key_of("summary = 'ward null'");
    char *edited = key_of("summary = 'row 1'"), *gone = key_of("summary = 'row 2'");
    change("UPDATE incidents SET ward = 'ICU', summary = 'moved to ICU' WHERE id = '%s'", edited);
    change("UPDATE incidents SET ward = 'A1' WHERE id = '%s'", gone);
    change("DELETE FROM incidents WHERE id = '%s'", gone);
    await_inbox();
    assert_replica(NULL);

    json_object *all = drain_tap();
    ck_assert_int_eq((long)json_object_array_length(all), 5);
    json_object *ev = find_event(all, "Created.v1", a);
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(it_json_str(extra_of(ev), "ward"), "3B");
    ck_assert(!json_object_object_get_ex(it_json_get(ev, "data"), "ward", NULL));
    ev = find_event(all, "Created.v1", b);
    ck_assert_ptr_nonnull(ev);
    json_object *ward = NULL;
    ck_assert(json_object_object_get_ex(extra_of(ev), "ward", &ward));
    ck_assert_ptr_null(ward); /* SQL NULL */
    ev = find_event(all, "Updated.v1", edited);
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(it_json_str(extra_of(ev), "ward"), "ICU");
    ck_assert_str_eq(it_json_str(it_json_get(ev, "data"), "summary"), "moved to ICU");
    ev = find_event(all, "Deleted.v1", gone);
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(it_json_str(extra_of(ev), "ward"), "A1");
    ck_assert_int_eq(count_on(g_sub.pg, "SELECT count(*) FROM incident_facts WHERE deleted"), 1);
    json_object_put(all);
    free(a);
    free(b);
    free(edited);
    free(gone);
}

/* DROP COLUMN ward: _extra is gone again. */
static void step_drop_column(void)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg, "ALTER TABLE incidents DROP COLUMN ward"), 0);
    change("UPDATE incidents SET status = 'investigating' WHERE summary IN ('row 3', 'ward set')");
    change("INSERT INTO incidents (region, summary) VALUES ('west', 'after drop')");
    await_inbox();
    assert_replica(NULL);
    json_object *all = drain_tap();
    ck_assert_int_eq((long)json_object_array_length(all), 3);
    for (size_t i = 0; i < json_object_array_length(all); i++)
        ck_assert_ptr_null(extra_of(json_object_array_get_idx(all, i)));
    json_object_put(all);
}

/* Types changed compatibly: the values are written by the new types and
 * still fit the schemas.  Then severity as numeric: its values become
 * strings, which the data schema refuses, so the change is rejected by the
 * connector's validation instead of reaching subscribers. */
static void step_type_changes(void)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg, "ALTER TABLE incidents ALTER COLUMN reported_by TYPE "
                                          "varchar(200), ALTER COLUMN severity TYPE bigint"),
                     0);
    change("UPDATE incidents SET severity = 5, reported_by = 'nurse.adams' WHERE summary IN "
           "('row 4', 'after drop')");
    change("INSERT INTO incidents (region, severity, summary, reported_by) VALUES "
           "('east', 1, 'after retype', 'dr.who')");
    await_inbox();
    assert_replica(NULL);
    json_object *all = drain_tap();
    ck_assert_int_eq((long)json_object_array_length(all), 3);
    char *id = key_of("summary = 'after retype'");
    json_object *ev = find_event(all, "Created.v1", id);
    ck_assert_ptr_nonnull(ev);
    ck_assert_int_eq(json_object_get_int(it_json_get(it_json_get(ev, "data"), "severity")), 1);
    ck_assert_str_eq(it_json_str(it_json_get(ev, "data"), "reported_by"), "dr.who");
    json_object_put(all);
    free(id);

    json_object *before = it_pg_column(g_env.pg, SOURCE_SQL);
    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "ALTER TABLE incidents ALTER COLUMN severity TYPE numeric"), 0);
    char *numeric = key_of("summary = 'row 5'");
    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "UPDATE incidents SET severity = 2 WHERE id = '%s'", numeric), 0);
    json_object *rejected = drain_rejected(1, "invalid", "severity");
    ck_assert(has_string(rejected, numeric));
    json_object_put(rejected);
    all = drain_tap();
    ck_assert_int_eq((long)json_object_array_length(all), 0);
    json_object_put(all);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "ALTER TABLE incidents ALTER COLUMN severity TYPE "
                                          "smallint USING severity::smallint"),
                     0);
    /* The subscriber still holds the row as it was. */
    await_inbox();
    assert_replica(before);
    json_object_put(before);
    free(numeric);
}

/* summary renamed to description: each change (insert, update, delete) is
 * rejected with the reason, none is published as an event, the subscriber
 * keeps what it held; renamed back, changes are events again and the
 * subscriber converges for the rows changed after. */
static void step_rename(void)
{
    /* What the subscriber holds (the numeric step's row is behind). */
    json_object *before = it_pg_column(g_sub.pg, REPLICA_SQL);
    char *edited = key_of("summary = 'row 6'"), *gone = key_of("summary = 'ward null'");
    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "ALTER TABLE incidents RENAME COLUMN summary TO description"), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "UPDATE incidents SET description = 'renamed edit' WHERE id = '%s'",
                                edited),
                     0);
    char *born = it_pg_value(g_env.pg, "INSERT INTO incidents (region, description) VALUES "
                                       "('north', 'born renamed') RETURNING id");
    ck_assert_ptr_nonnull(born);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents WHERE id = '%s'", gone), 0);
    uint64_t end = it_pg_insert_lsn(g_env.pg);
    if (it_pg_wait_confirmed(g_env.pg, E.slot, end, 60000) != 0) {
        it_proc_dump(&E.conn, NULL);
        ck_abort_msg("the slot did not pass the rejected changes");
    }
    json_object *rejected = drain_rejected(3, "unencodable", MISSING_SUMMARY);
    ck_assert(has_string(rejected, edited) && has_string(rejected, born) &&
              has_string(rejected, gone));
    json_object_put(rejected);
    json_object *all = drain_tap();
    ck_assert_msg(json_object_array_length(all) == 0, "published while renamed: %s",
                  json_object_to_json_string(all));
    json_object_put(all);
    ck_assert_msg(it_proc_wait(&E.conn, 0) == -1, "the connector stopped");
    char *log = it_proc_output(&E.conn);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(strstr(log, MISSING_SUMMARY) != NULL, "the connector did not log the reason");
    free(log);
    await_inbox();
    assert_replica(before);
    json_object_put(before);

    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "ALTER TABLE incidents RENAME COLUMN description TO summary"), 0);
    /* Every row the subscriber missed changes again: the edited one, the
     * one born while renamed, the numeric step's, and the deleted key
     * restored and deleted once more. */
    change("UPDATE incidents SET status = 'closed' WHERE id IN ('%s', '%s') OR summary = 'row 5'",
           edited, born);
    change("INSERT INTO incidents (id, region, summary) VALUES ('%s', 'south', 'restored')", gone);
    change("DELETE FROM incidents WHERE id = '%s'", gone);
    await_inbox();
    all = drain_tap();
    ck_assert_int_eq((long)json_object_array_length(all), 5);
    json_object *ev = find_event(all, "Updated.v1", born);
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(it_json_str(it_json_get(ev, "data"), "summary"), "born renamed");
    ck_assert_ptr_null(extra_of(ev));
    json_object_put(all);
    free(edited);
    free(gone);
    free(born);
}

START_TEST(test_schema_changes)
{
    change("INSERT INTO incidents (region, severity, summary) SELECT 'r' || (g %% 3), "
           "1 + g %% 5, 'row ' || g FROM generate_series(1, 8) g");
    await_inbox();
    assert_replica(NULL);
    json_object_put(drain_tap());

    step_add_column();
    step_drop_column();
    step_type_changes();
    step_rename();

    /* What the subscriber ends with: every live row equal to the source on
     * the contract's columns, the two deletes as tombstones, nothing
     * dead-lettered. */
    assert_replica(NULL);
    ck_assert_int_eq(count_on(g_sub.pg, "SELECT count(*) FROM incident_facts WHERE deleted"), 2);
    ck_assert_int_eq(count_on(g_sub.pg, "SELECT count(*) FROM incident_facts WHERE NOT deleted"),
                     count_on(g_env.pg, "SELECT count(*) FROM incidents"));
    ck_assert_int_eq(dead_letters(), 0);
    char body[65536];
    ck_assert_int_eq(it_http_get("127.0.0.1", E.metrics_port, "/metrics", body, sizeof body), 200);
    ck_assert_ptr_nonnull(
        strstr(body, "\nhms_sync_changes_rejected_total{reason=\"unencodable\"} 3\n"));
    ck_assert_ptr_nonnull(
        strstr(body, "\nhms_sync_changes_rejected_total{reason=\"invalid\"} 1\n"));
    fprintf(stderr, "schema changes: events=%ld rejected=4 source_rows=%ld\n", E.events,
            count_on(g_env.pg, "SELECT count(*) FROM incidents"));
}
END_TEST

static Suite *schema_changes_suite(void)
{
    Suite *s = suite_create("schema_changes");
    it_tcase(s, "alter_table", fixture_up, fixture_down, 300, test_schema_changes);
    return s;
}

/* A subscriber database of its own, set up by migrate --subscriber. */
IT_MAIN(.name = "schema", .env = &g_env, .source = &g_source, .sub = &g_sub,
        .suite = schema_changes_suite)
