/* test_edge_cases.c -- changes that must never fork subscribers, end to end:
 * a TRUNCATE of incidents and an UPDATE of a primary key go through the real
 * connector to `hms-sync consume` with the three seed subscribers, which must
 * end equal to the source (live rows equal, every other row a tombstone);
 * an event committed before the truncation, delivered after it, must not
 * bring a row back; and deletes and key changes made while the table's
 * REPLICA IDENTITY is DEFAULT still reach the subscribers whole. */
#include <check.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"
#include "it_sub.h"

static it_env_t g_env;
static char *g_source;
static it_subdb_t g_sub;

enum { WAREHOUSE, SCHEDULING, CASEMGMT, NSUBS };
static const char *const sub_apply[NSUBS] = {
    "hms_sync.apply_warehouse", "hms_sync.apply_scheduling", "hms_sync.apply_casemgmt"};
static const char *const sub_word[NSUBS] = {"warehouse", "scheduling", "casemgmt"};

/* The live rows of each replica, as the source would show them. */
static const char *const live_sql[NSUBS] = {
    "SELECT incident_id || '|' || region || '|' || severity || '|' || status || '|' || "
    "coalesce(summary, '') || '|' || version FROM incident_facts WHERE NOT deleted ORDER BY 1",
    "SELECT incident_id || '|' || region || '|' || severity || '|' || incident_status || '|' || "
    "version FROM investigation_tasks WHERE NOT deleted AND status = 'open' ORDER BY 1",
    "SELECT incident_id || '|' || region || '|' || severity || '|' || incident_status || '|' || "
    "version FROM cases WHERE NOT deleted AND state = 'open' ORDER BY 1"};
static const char *const source_sql[NSUBS] = {
    "SELECT id || '|' || region || '|' || severity || '|' || status || '|' || "
    "coalesce(summary, '') || '|' || version FROM incidents ORDER BY 1",
    "SELECT id || '|' || region || '|' || severity || '|' || status || '|' || version "
    "FROM incidents ORDER BY 1",
    "SELECT id || '|' || region || '|' || severity || '|' || status || '|' || version "
    "FROM incidents ORDER BY 1"};
static const char *const table_of[NSUBS] = {"incident_facts", "investigation_tasks", "cases"};

/* Everything one run starts, torn down even when it fails. */
static struct {
    char slot[64], exchange[128], dlx[160];
    char queue[NSUBS][200];
    it_amqp_t ctl, tap;
    it_proc_t conn, subs[NSUBS];
} E;

/* The first value of a query on conn, as a number. */
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

/* Waits until every subscriber's inbox holds want rows. */
static void await_inboxes(long want)
{
    for (int i = 0; i < NSUBS; i++) {
        long n = it_inbox_wait(g_sub.pg, E.queue[i], want, 60000);
        if (n != want) {
            it_proc_dump(&E.subs[i], NULL);
            json_object *odd = it_pg_column(
                g_sub.pg,
                "SELECT id || ' ' || type || ' ' || subject || ' ' || outcome FROM "
                "hms_sync.inbox WHERE subscriber = '%s' AND outcome <> 'applied' ORDER BY id",
                E.queue[i]);
            fprintf(stderr, "not applied: %s\n", json_object_to_json_string(odd));
            json_object_put(odd);
        }
        ck_assert_msg(n == want, "%s inbox: %ld rows, want %ld", E.queue[i], n, want);
    }
}

static void spawn_subscriber(int i)
{
    snprintf(E.queue[i], sizeof E.queue[i], "%s.%s", E.exchange, sub_word[i]);
    if (it_consume_start(&g_env, &E.subs[i], sub_word[i], g_sub.conninfo, E.exchange, E.dlx,
                         E.queue[i], sub_apply[i], NULL) != 0)
        ck_abort_msg("%s never started consuming", E.queue[i]);
}

static void fixture_up(void)
{
    memset(&E, 0, sizeof E);
    it_env_slot_name(&g_env, E.slot, sizeof E.slot);
    it_env_exchange_name(&g_env, E.exchange, sizeof E.exchange);
    snprintf(E.dlx, sizeof E.dlx, "%s.dlx", E.exchange);
    ck_assert_int_eq(it_amqp_open(&E.ctl, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&E.ctl, E.exchange), 0);
    ck_assert_int_eq(it_amqp_declare_dlx(&E.ctl, E.dlx), 0);
    /* The tap: a copy of every event, to look at what was published. */
    ck_assert_int_eq(it_amqp_tap(&E.tap, g_env.amqp_url, E.exchange), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents"), 0);
    /* Each test starts with empty replicas, as from a fresh slot. */
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "TRUNCATE incident_facts, investigation_tasks, cases, "
                                          "hms_sync.inbox, hms_sync.truncations"),
                     0);
    ck_assert_int_eq(it_conn_start(&g_env, &E.conn, "edge-conn", E.slot, E.exchange, NULL), 0);
    if (it_pg_wait_slot_active(g_env.pg, E.slot, 30000) != 0) {
        it_proc_dump(&E.conn, NULL);
        ck_abort_msg("the connector never streamed from %s", E.slot);
    }
    for (int i = 0; i < NSUBS; i++)
        spawn_subscriber(i);
}

static void fixture_down(void)
{
    /* The next test (and program) expects the table as migrate left it. */
    it_pg_exec(g_env.pg, "ALTER TABLE public.incidents REPLICA IDENTITY FULL");
    for (int i = 0; i < NSUBS; i++)
        it_proc_kill(&E.subs[i]);
    it_proc_kill(&E.conn);
    if (E.tap.conn)
        it_amqp_close(&E.tap);
    it_amqp_close(&E.ctl);
    for (int i = 0; i < NSUBS; i++)
        if (E.queue[i][0])
            it_amqp_drop_subscriber(g_env.amqp_url, E.queue[i], NULL, NULL);
    it_amqp_drop_subscriber(g_env.amqp_url, NULL, E.exchange, E.dlx);
    it_pg_drop_slot(g_env.pg, E.slot);
}

/* Every published event, read from the tap until it has been quiet for a
 * second; each is checked against the contract. */
static json_object *drain_tap(void)
{
    json_object *all = json_object_new_array();
    it_msg_t m;
    char why[512];
    while (it_amqp_get(&E.tap, 1000, &m) == 1) {
        json_object *ev = it_event_check(&m, g_source, why, sizeof why);
        ck_assert_msg(ev != NULL, "published event breaks the contract: %s", why);
        json_object_array_add(all, ev);
        it_msg_free(&m);
    }
    return all;
}

static json_object *find_event(json_object *all, const char *type, const char *subject, int nth)
{
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *ev = json_object_array_get_idx(all, i);
        if (strcmp(it_json_str(ev, "type"), type) == 0 &&
            (subject == NULL || strcmp(it_json_str(ev, "subject"), subject) == 0) && nth-- == 0)
            return ev;
    }
    return NULL;
}

/* A copy of ev, committed before the truncation, sent again as a new
 * message straight to queue: a new ordinal (so the inbox does not drop it
 * as a duplicate) and a version high enough that last-write-wins alone
 * would let it win over the truncation's tombstone. */
static char *redeliver_stale(json_object *ev, const char *queue, int ordinal)
{
    json_object *copy = NULL;
    ck_assert_int_eq(json_object_deep_copy(ev, &copy, NULL), 0);
    char id[64];
    snprintf(id, sizeof id, "%.16s-%d", it_json_str(ev, "id"), ordinal);
    json_object_object_add(copy, "id", json_object_new_string(id));
    json_object_object_add(copy, "version", json_object_new_int(99));
    json_object_object_add(it_json_get(copy, "data"), "version", json_object_new_int(99));
    json_object_object_add(it_json_get(copy, "data"), "summary",
                           json_object_new_string("resurrected"));
    amqp_basic_properties_t props = {0};
    props._flags =
        AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
    props.content_type = amqp_cstring_bytes("application/cloudevents+json");
    props.delivery_mode = 2;
    props.message_id = amqp_cstring_bytes(id);
    ck_assert_int_eq(
        amqp_basic_publish(
            E.ctl.conn, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(queue), 0, 0, &props,
            amqp_cstring_bytes(json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN))),
        AMQP_STATUS_OK);
    json_object_put(copy);
    return strdup(id);
}

static void assert_replica_equals_source(int i)
{
    json_object *src = it_pg_column(g_env.pg, "%s", source_sql[i]);
    json_object *rep = it_pg_column(g_sub.pg, "%s", live_sql[i]);
    ck_assert_ptr_nonnull(src);
    ck_assert_ptr_nonnull(rep);
    ck_assert_msg(json_object_equal(src, rep), "%s live rows differ from the source:\n%s\n%s",
                  table_of[i], json_object_to_json_string(src), json_object_to_json_string(rep));
    json_object_put(src);
    json_object_put(rep);
}

/* Twelve rows in regions <tag>0..2. */
#define INSERT_12                                                                                  \
    "WITH c AS (INSERT INTO incidents (region, severity, summary) SELECT '%s' || (g %% 3), "       \
    "1 + g %% 5, 'row ' || g FROM generate_series(1, 12) g RETURNING 1) SELECT count(*) FROM c"

START_TEST(test_truncate_and_key_change)
{
    long events = count_on(g_env.pg, INSERT_12, "pre");
    events += count_on(g_env.pg,
                       "WITH c AS (UPDATE incidents SET summary = 'edited' WHERE %s "
                       "RETURNING 1) SELECT count(*) FROM c",
                       "severity <= 2");
    events += count_on(g_env.pg,
                       "WITH c AS (DELETE FROM incidents WHERE %s RETURNING 1) "
                       "SELECT count(*) FROM c",
                       "summary = 'row 12'");
    char *reused = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE summary = 'row 3'");
    char *gone = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE summary = 'row 4'");
    ck_assert_ptr_nonnull(reused);
    ck_assert_ptr_nonnull(gone);
    await_inboxes(events);

    ck_assert_int_eq(it_pg_exec(g_env.pg, "TRUNCATE incidents"), 0);
    events += 1;
    events += count_on(g_env.pg, INSERT_12, "post");
    /* A truncated key used again: any version beats the tombstone's 0. */
    events += count_on(g_env.pg,
                       "WITH c AS (INSERT INTO incidents (id, region, summary) VALUES ('%s', "
                       "'north', 'reborn') RETURNING 1) SELECT count(*) FROM c",
                       reused);
    /* A key change, then another change in the same transaction: the
     * second takes ordinal 2, after the Deleted (0) and Created (1). */
    char *moved = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE summary = 'row 5' AND "
                                        "region LIKE 'post%%'");
    ck_assert_ptr_nonnull(moved);
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "BEGIN; UPDATE incidents SET id = gen_random_uuid(), "
                                "summary = 'moved' WHERE id = '%s'; UPDATE incidents SET "
                                "severity = 1 WHERE summary = 'row 6' AND region LIKE 'post%%'; "
                                "COMMIT",
                                moved),
                     0);
    events += 3;
    await_inboxes(events);

    json_object *all = drain_tap();
    ck_assert_int_eq((long)json_object_array_length(all), events);
    json_object *trunc = find_event(all, "gov.hms.ehr.IncidentsTruncated.v1", NULL, 0);
    ck_assert_ptr_nonnull(trunc);
    ck_assert_str_eq(it_json_str(trunc, "subject"), "public.incidents");
    /* Its version divides the rows: drawn after every write before it. */
    int64_t trunc_version = json_object_get_int64(it_json_get(trunc, "version"));
    ck_assert_int_gt(trunc_version, 0);
    ck_assert_int_eq(json_object_object_length(it_json_get(trunc, "data")), 0);
    json_object *del = find_event(all, "gov.hms.ehr.IncidentDeleted.v1", moved, 0);
    ck_assert_ptr_nonnull(del);
    char *newkey = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE summary = 'moved'");
    ck_assert_ptr_nonnull(newkey);
    json_object *cre = find_event(all, "gov.hms.ehr.IncidentCreated.v1", newkey, 0);
    ck_assert_ptr_nonnull(cre);
    ck_assert_int_gt(json_object_get_int64(it_json_get(cre, "version")), trunc_version);
    json_object *after = find_event(all, "gov.hms.ehr.IncidentUpdated.v1", NULL, 0);
    for (int k = 1; after != NULL && strcmp(it_json_str(after, "lsn"), it_json_str(del, "lsn"));
         k++)
        after = find_event(all, "gov.hms.ehr.IncidentUpdated.v1", NULL, k);
    ck_assert_ptr_nonnull(after);
    uint64_t l1, l2, l3;
    unsigned o1, o2, o3;
    ck_assert(it_event_id_parse(it_json_str(del, "id"), &l1, &o1));
    ck_assert(it_event_id_parse(it_json_str(cre, "id"), &l2, &o2));
    ck_assert(it_event_id_parse(it_json_str(after, "id"), &l3, &o3));
    ck_assert(l1 == l2 && l2 == l3);
    ck_assert_uint_eq(o1, 0);
    ck_assert_uint_eq(o2, 1);
    ck_assert_uint_eq(o3, 2);
    ck_assert_str_eq(it_json_str(it_json_get(del, "data"), "summary"), "row 5");
    ck_assert_str_eq(it_json_str(it_json_get(cre, "data"), "summary"), "moved");

    /* Events committed before the truncation, arriving after it. */
    json_object *old_reused = find_event(all, "gov.hms.ehr.IncidentCreated.v1", reused, 0);
    json_object *old_gone = find_event(all, "gov.hms.ehr.IncidentCreated.v1", gone, 0);
    ck_assert_ptr_nonnull(old_reused);
    ck_assert_ptr_nonnull(old_gone);
    char *stale_ids[2][NSUBS];
    for (int i = 0; i < NSUBS; i++) {
        stale_ids[0][i] = redeliver_stale(old_reused, E.queue[i], 9998);
        stale_ids[1][i] = redeliver_stale(old_gone, E.queue[i], 9999);
    }
    await_inboxes(events + 2);
    for (int i = 0; i < NSUBS; i++) {
        for (int k = 0; k < 2; k++) {
            char *outcome =
                it_pg_value(g_sub.pg,
                            "SELECT outcome FROM hms_sync.inbox WHERE subscriber = '%s' "
                            "AND id = '%s'",
                            E.queue[i], stale_ids[k][i]);
            ck_assert_msg(outcome != NULL && strcmp(outcome, "stale") == 0,
                          "%s: the late pre-truncation event %s was %s", E.queue[i],
                          stale_ids[k][i], outcome ? outcome : "(not recorded)");
            free(outcome);
            free(stale_ids[k][i]);
        }
    }

    /* Live rows equal the source; every other row is a tombstone. */
    for (int i = 0; i < NSUBS; i++)
        assert_replica_equals_source(i);
    long src_n = count_on(g_env.pg, "SELECT count(*) FROM %s", "incidents");
    ck_assert_int_eq(
        count_on(g_sub.pg, "SELECT count(*) FROM %s WHERE NOT deleted", "incident_facts"), src_n);
    long tomb = count_on(g_sub.pg, "SELECT count(*) FROM %s WHERE deleted", "incident_facts");
    long total = count_on(g_sub.pg, "SELECT count(*) FROM %s", "incident_facts");
    ck_assert_int_eq(total, src_n + tomb);
    /* The 12 rows truncated, less the key inserted again, plus the moved
     * row's old key. */
    ck_assert_int_eq(tomb, 12 - 1 + 1);
    char *facts = it_pg_value(g_sub.pg,
                              "SELECT summary || '/' || version || '/' || deleted FROM "
                              "incident_facts WHERE incident_id = '%s'",
                              gone);
    char want[64];
    snprintf(want, sizeof want, "row 4/%" PRId64 "/true", trunc_version);
    ck_assert_str_eq(facts, want);
    free(facts);
    facts = it_pg_value(g_sub.pg,
                        "SELECT summary || '/' || deleted FROM "
                        "incident_facts WHERE incident_id = '%s'",
                        reused);
    ck_assert_str_eq(facts, "reborn/false");
    free(facts);
    facts =
        it_pg_value(g_sub.pg, "SELECT deleted FROM incident_facts WHERE incident_id = '%s'", moved);
    ck_assert_str_eq(facts, "t");
    free(facts);
    fprintf(stderr,
            "edge: events=%ld source_rows=%ld warehouse_rows=%ld tombstones=%ld "
            "late_pre_truncation=stale x%d\n",
            events, src_n, total, tomb, 2 * NSUBS);
    json_object_put(all);
    free(reused);
    free(gone);
    free(moved);
    free(newkey);
}
END_TEST

/* The Deleted event of subject id, with the whole old row: summary and the
 * version the row had when it was deleted. */
static void assert_deleted_row(json_object *all, const char *id, const char *summary, long version)
{
    json_object *del = find_event(all, "gov.hms.ehr.IncidentDeleted.v1", id, 0);
    ck_assert_msg(del != NULL, "no Deleted event for %s", id);
    json_object *data = it_json_get(del, "data");
    ck_assert_str_eq(it_json_str(data, "summary"), summary);
    ck_assert_int_eq(json_object_get_int64(it_json_get(data, "version")), version);
    ck_assert_int_eq(json_object_get_int64(it_json_get(del, "version")), version);
}

/* REPLICA IDENTITY DEFAULT while streaming: PostgreSQL logs only the key of
 * a deleted row or of a key change's old row, and the trigger of
 * sql/007_old_rows.sql logs the whole old row beside it.  Deletes (one, a
 * statement deleting several, one after a rolled-back savepoint that
 * deleted another) and key changes still reach the subscribers whole, with
 * their versions, and every replica ends equal to the source. */
START_TEST(test_identity_default)
{
    long events = count_on(g_env.pg, INSERT_12, "ri");
    await_inboxes(events);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "ALTER TABLE incidents REPLICA IDENTITY DEFAULT"), 0);

    char *one = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE summary = 'row 1'");
    char *one_v = it_pg_value(g_env.pg, "SELECT version FROM incidents WHERE id = '%s'", one);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents WHERE id = '%s'", one), 0);
    events += 1;
    /* One statement, several rows: each row's old row just before it. */
    events +=
        count_on(g_env.pg, "WITH c AS (DELETE FROM incidents WHERE summary IN ('row 2', 'row 3', "
                           "'row 4') RETURNING 1) SELECT count(*) FROM c");
    /* A delete rolled back to a savepoint, then another one committed. */
    char *kept = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE summary = 'row 5'");
    char *six = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE summary = 'row 6'");
    char *six_v = it_pg_value(g_env.pg, "SELECT version FROM incidents WHERE id = '%s'", six);
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "BEGIN; SAVEPOINT s; DELETE FROM incidents WHERE id = '%s'; "
                                "ROLLBACK TO s; DELETE FROM incidents WHERE id = '%s'; COMMIT",
                                kept, six),
                     0);
    events += 1;
    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "BEGIN; DELETE FROM incidents WHERE id = '%s'; ROLLBACK", kept), 0);
    /* An update of a row first, then its key change: the Deleted of the
     * old key carries the updated row. */
    char *moved = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE summary = 'row 7'");
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "BEGIN; UPDATE incidents SET summary = 'row 7 edited' WHERE id = "
                                "'%s'; UPDATE incidents SET id = gen_random_uuid(), summary = "
                                "'moved' WHERE id = '%s'; COMMIT",
                                moved, moved),
                     0);
    events += 3;
    await_inboxes(events);

    json_object *all = drain_tap();
    ck_assert_int_eq((long)json_object_array_length(all), events);
    assert_deleted_row(all, one, "row 1", atol(one_v));
    assert_deleted_row(all, six, "row 6", atol(six_v));
    ck_assert_ptr_null(find_event(all, "gov.hms.ehr.IncidentDeleted.v1", kept, 0));
    json_object *edit = find_event(all, "gov.hms.ehr.IncidentUpdated.v1", moved, 0);
    ck_assert_ptr_nonnull(edit);
    assert_deleted_row(all, moved, "row 7 edited",
                       json_object_get_int64(it_json_get(edit, "version")));
    char *newkey = it_pg_value(g_env.pg, "SELECT id FROM incidents WHERE summary = 'moved'");
    ck_assert_ptr_nonnull(find_event(all, "gov.hms.ehr.IncidentCreated.v1", newkey, 0));

    for (int i = 0; i < NSUBS; i++)
        assert_replica_equals_source(i);
    long src_n = count_on(g_env.pg, "SELECT count(*) FROM %s", "incidents");
    long tomb = count_on(g_sub.pg, "SELECT count(*) FROM %s WHERE deleted", "incident_facts");
    ck_assert_int_eq(src_n, 12 - 5);
    ck_assert_int_eq(tomb, 5 + 1); /* five deletes and the moved row's old key */
    fprintf(stderr, "edge identity DEFAULT: events=%ld source_rows=%ld tombstones=%ld\n", events,
            src_n, tomb);
    json_object_put(all);
    free(one);
    free(one_v);
    free(kept);
    free(six);
    free(six_v);
    free(moved);
    free(newkey);
}
END_TEST

static Suite *edge_suite(void)
{
    Suite *s = suite_create("edge_cases");
    it_tcase(s, "truncate_key_change", fixture_up, fixture_down, 300, test_truncate_and_key_change);
    it_tcase(s, "identity_default", fixture_up, fixture_down, 300, test_identity_default);
    return s;
}

/* A subscriber database of its own, set up by migrate --subscriber. */
IT_MAIN(.name = "edge", .env = &g_env, .source = &g_source, .sub = &g_sub, .suite = edge_suite)
