/* test_snapshot_cli.c -- `hms-sync snapshot` and the snapshots in `status`,
 * against real PostgreSQL and RabbitMQ, as the role hms_sync: a bad --where
 * is refused with the server's own message (exit 2, nothing queued); a
 * request prints its id and is queued pending; --queue with --amqp refuses
 * a queue that does not exist; --cancel, --list (text and JSON); --wait,
 * with the connector's side played by the test writing the row's progress,
 * prints a line per tenth off a terminal and exits 0 when done, 1 when
 * failed or cancelled; status shows the slot's snapshots; and, with no
 * server, consume's validator takes snapshot events and refuses malformed
 * ones. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/validate.h"
#include "it.h"

static it_env_t g_env;

static struct {
    char slot[64];
    it_proc_t p;
    unsigned runs;
} F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    it_env_slot_name(&g_env, F.slot, sizeof F.slot);
}

static void fx_teardown(void)
{
    it_proc_kill(&F.p);
    it_pg_exec(g_env.pg, "DELETE FROM hms_sync.snapshots WHERE slot = '%s'", F.slot);
}

/* Starts `hms-sync snapshot --pg <hms_sync's conninfo> --slot <F.slot>`
 * with the extra arguments (NULL-terminated) into F.p. */
static void spawn(const char *const extra[])
{
    const char *argv[32] = {"snapshot", "--pg", g_env.conninfo, "--slot", F.slot};
    size_t n = 5;
    for (size_t i = 0; extra[i] != NULL && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char tag[96];
    snprintf(tag, sizeof tag, "snapcli-%s-%u", F.slot, F.runs++);
    ck_assert_int_eq(it_proc_spawn(&g_env, &F.p, tag, argv), 0);
}

/* Runs it to the end; returns the exit code, its output in *out (freed by
 * the caller). */
static int run(const char *const extra[], char **out)
{
    spawn(extra);
    int rc = it_proc_wait(&F.p, 60000);
    *out = it_proc_output(&F.p);
    ck_assert_ptr_nonnull(*out);
    return rc;
}

static long count(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long count(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char *v = it_pg_value(g_env.pg, "%s", sql);
    ck_assert_msg(v != NULL, "query failed: %s", sql);
    long n = atol(v);
    free(v);
    return n;
}

/* The id a request printed: its first line that starts with "snap-". */
static void id_of(const char *out, char *id, size_t n)
{
    const char *p = strstr(out, "snap-");
    ck_assert_msg(p != NULL && (p == out || p[-1] == '\n'), "no id in: %s", out);
    size_t len = strcspn(p, "\n");
    ck_assert(len < n);
    memcpy(id, p, len);
    id[len] = '\0';
}

START_TEST(test_bad_where_refused)
{
    static const struct {
        const char *where, *want;
    } cases[] = {
        /* The server's own words, and where in the condition. */
        {"regin = 'north'", "column \"regin\" does not exist at character 1 of it"},
        {"severity", "argument of WHERE must be type boolean"},
        {"region = 'x' AND nosuch(1)", "function nosuch(integer) does not exist"},
        {"1/0 = 1", "division by zero"},
        /* What would reach past the condition in the connector's query. */
        {"true) OR (true", "closes a parenthesis the condition did not open"},
        {"true; DELETE FROM public.incidents", "';'"},
        {"true -- ", "a comment"},
        {"id::text > $1", "a parameter"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        const char *const extra[] = {"--where", cases[i].where, NULL};
        int rc = run(extra, &out);
        ck_assert_msg(rc == 2, "--where %s: exit %d, want 2: %s", cases[i].where, rc, out);
        ck_assert_msg(it_count_lines(out) == 1, "--where %s: not one line: %s", cases[i].where,
                      out);
        ck_assert_msg(strstr(out, "hms-sync: snapshot: --where") != NULL &&
                          strstr(out, cases[i].want) != NULL,
                      "--where %s: no \"%s\" in: %s", cases[i].where, cases[i].want, out);
        free(out);
    }
    ck_assert_int_eq(count("SELECT count(*) FROM hms_sync.snapshots WHERE slot = '%s'", F.slot), 0);
    /* Nothing the check ran stayed behind: the table is untouched. */
    ck_assert_int_eq(count("SELECT count(*) FROM public.incidents WHERE region = 'snapcli'"), 0);
}
END_TEST

START_TEST(test_request_queued)
{
    char *out, id[64];
    const char *const extra[] = {"--where", "region = 'north' AND severity <= 2", NULL};
    int rc = run(extra, &out);
    ck_assert_msg(rc == 0, "exit %d: %s", rc, out);
    id_of(out, id, sizeof id);
    /* No connector has the slot: the request waits, and the command says so. */
    ck_assert_msg(strstr(out, "does not exist") != NULL, "no note about the slot: %s", out);
    free(out);
    char *row = it_pg_value(g_env.pg,
                            "SELECT concat_ws('|', slot, state, where_sql, coalesce(queue, '-'), "
                            "rows_done, coalesce(rows_total::text, '-'), initial) FROM "
                            "hms_sync.snapshots WHERE id = '%s'",
                            id);
    char want[256];
    snprintf(want, sizeof want, "%s|pending|region = 'north' AND severity <= 2|-|0|-|f", F.slot);
    ck_assert_msg(row != NULL && strcmp(row, want) == 0, "row %s, want %s", row, want);
    free(row);

    /* Every row, to one queue: checked with --amqp first. */
    it_amqp_t a = {0};
    char queue[160], exchange[128];
    it_env_exchange_name(&g_env, exchange, sizeof exchange);
    snprintf(queue, sizeof queue, "%s.snapcli", exchange);
    ck_assert_int_eq(it_amqp_open(&a, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&a, exchange), 0);
    ck_assert_int_eq(it_amqp_queue_durable(&a, queue, exchange), 0);
    const char *const to_queue[] = {"--queue", queue, "--amqp", g_env.amqp_url, NULL};
    rc = run(to_queue, &out);
    it_amqp_delete_queue(&a, queue);
    it_amqp_delete_exchange(&a, exchange);
    it_amqp_close(&a);
    ck_assert_msg(rc == 0, "--queue: exit %d: %s", rc, out);
    id_of(out, id, sizeof id);
    free(out);
    row = it_pg_value(g_env.pg,
                      "SELECT concat_ws('|', state, coalesce(where_sql, '-'), queue) FROM "
                      "hms_sync.snapshots WHERE id = '%s'",
                      id);
    snprintf(want, sizeof want, "pending|-|%s", queue);
    ck_assert_msg(row != NULL && strcmp(row, want) == 0, "row %s, want %s", row, want);
    free(row);

    /* A queue that is not there is refused: its events would come back. */
    const char *const missing[] = {"--queue", "hms.it.snapcli.nosuch", "--amqp", g_env.amqp_url,
                                   NULL};
    rc = run(missing, &out);
    ck_assert_msg(rc == 2 && it_count_lines(out) == 1 &&
                      strstr(out, "queue \"hms.it.snapcli.nosuch\" does not exist") != NULL,
                  "missing queue: exit %d: %s", rc, out);
    free(out);
    ck_assert_int_eq(count("SELECT count(*) FROM hms_sync.snapshots WHERE slot = '%s'", F.slot), 2);

    /* Options that do not go together. */
    const char *const clash[] = {"--list", "--where", "true", NULL};
    rc = run(clash, &out);
    ck_assert_msg(rc == 2 && strstr(out, "--where belongs to a new request") != NULL,
                  "clash: exit %d: %s", rc, out);
    free(out);
}
END_TEST

START_TEST(test_cancel_and_list)
{
    char *out, a[64], b[64], c[64];
    const char *const none[] = {NULL};
    ck_assert_int_eq(run(none, &out), 0);
    id_of(out, a, sizeof a);
    free(out);
    const char *const where[] = {"--where", "status = 'open'", NULL};
    ck_assert_int_eq(run(where, &out), 0);
    id_of(out, b, sizeof b);
    free(out);
    ck_assert_int_eq(run(none, &out), 0);
    id_of(out, c, sizeof c);
    free(out);

    /* Pending: cancelled at once, and finished. */
    const char *const cancel_a[] = {"--cancel", a, NULL};
    int rc = run(cancel_a, &out);
    ck_assert_msg(rc == 0 && strstr(out, "cancelled") != NULL, "cancel: exit %d: %s", rc, out);
    free(out);
    ck_assert_int_eq(count("SELECT count(*) FROM hms_sync.snapshots WHERE id = '%s' AND state = "
                           "'cancelled' AND finished_at IS NOT NULL",
                           a),
                     1);
    rc = run(cancel_a, &out);
    ck_assert_msg(rc == 0 && strstr(out, "already cancelled") != NULL, "again: exit %d: %s", rc,
                  out);
    free(out);
    /* Running (the connector stops it at its next chunk). */
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "UPDATE hms_sync.snapshots SET state = 'running', rows_total = 10 "
                                "WHERE id = '%s'",
                                b),
                     0);
    const char *const cancel_b[] = {"--cancel", b, NULL};
    ck_assert_int_eq(run(cancel_b, &out), 0);
    free(out);
    ck_assert_int_eq(
        count("SELECT count(*) FROM hms_sync.snapshots WHERE id = '%s' AND state = 'cancelled'", b),
        1);
    /* Finished, or unknown: nothing to cancel. */
    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "UPDATE hms_sync.snapshots SET state = 'done' WHERE id = '%s'", c), 0);
    const char *const cancel_c[] = {"--cancel", c, NULL};
    rc = run(cancel_c, &out);
    ck_assert_msg(rc == 1 && it_count_lines(out) == 1 && strstr(out, "already done") != NULL,
                  "done: exit %d: %s", rc, out);
    free(out);
    const char *const cancel_x[] = {"--cancel", "snap-nosuch", NULL};
    rc = run(cancel_x, &out);
    ck_assert_msg(rc == 1 && strstr(out, "no snapshot \"snap-nosuch\"") != NULL,
                  "unknown: exit %d: %s", rc, out);
    free(out);
    ck_assert_int_eq(
        count("SELECT count(*) FROM hms_sync.snapshots WHERE id = '%s' AND state = 'done'", c), 1);

    /* --list: the three, oldest first, in text and in JSON. */
    const char *const list[] = {"--list", NULL};
    rc = run(list, &out);
    ck_assert_msg(rc == 0, "list: exit %d: %s", rc, out);
    const char *pa = strstr(out, a), *pb = strstr(out, b), *pc = strstr(out, c);
    ck_assert_msg(pa && pb && pc && pa < pb && pb < pc, "list: %s", out);
    ck_assert_msg(strstr(out, "status = 'open'") != NULL, "list lacks the condition: %s", out);
    free(out);
    const char *const list_json[] = {"--list", "--json", NULL};
    rc = run(list_json, &out);
    ck_assert_msg(rc == 0, "list --json: exit %d: %s", rc, out);
    json_object *arr = json_tokener_parse(out);
    ck_assert_msg(arr != NULL && json_object_is_type(arr, json_type_array) &&
                      json_object_array_length(arr) == 3,
                  "list --json: %s", out);
    json_object *second = json_object_array_get_idx(arr, 1);
    ck_assert_str_eq(it_json_str(second, "id"), b);
    ck_assert_str_eq(it_json_str(second, "state"), "cancelled");
    ck_assert_str_eq(it_json_str(second, "where"), "status = 'open'");
    ck_assert_int_eq(json_object_get_int64(it_json_get(second, "rows_total")), 10);
    json_object_put(arr);
    free(out);
}
END_TEST

/* The id of the one request of F.slot, once the command has queued it. */
static void wait_for_request(char *id, size_t n)
{
    for (int i = 0; i < 300; i++) {
        char *v =
            it_pg_value(g_env.pg, "SELECT id FROM hms_sync.snapshots WHERE slot = '%s'", F.slot);
        if (v != NULL) {
            snprintf(id, n, "%s", v);
            free(v);
            return;
        }
        it_sleep_ms(50);
    }
    ck_abort_msg("the request never appeared in hms_sync.snapshots");
}

/* Plays the connector: running with 1000 rows, then a tenth more every
 * step, slower than the command polls. */
static void progress(const char *id, int upto_tenths)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "UPDATE hms_sync.snapshots SET state = 'running', rows_total = "
                                "1000, started_at = now() WHERE id = '%s'",
                                id),
                     0);
    for (int t = 1; t <= upto_tenths; t++) {
        it_sleep_ms(600);
        ck_assert_int_eq(it_pg_exec(g_env.pg,
                                    "UPDATE hms_sync.snapshots SET rows_done = %d, chunks_done = "
                                    "%d, last_key = 'k%d', updated_at = now() WHERE id = '%s'",
                                    t * 100, t, t, id),
                         0);
    }
    it_sleep_ms(600);
}

START_TEST(test_wait_done)
{
    const char *const extra[] = {"--wait", NULL};
    spawn(extra);
    char id[64];
    wait_for_request(id, sizeof id);
    progress(id, 10);
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "UPDATE hms_sync.snapshots SET state = 'done', finished_at = now() "
                                "WHERE id = '%s'",
                                id),
                     0);
    int rc = it_proc_wait(&F.p, 30000);
    char *out = it_proc_output(&F.p);
    ck_assert_msg(rc == 0, "--wait: exit %d: %s", rc, out);
    /* Off a terminal: the id, a line when it starts, one per tenth, the end. */
    char want[160];
    snprintf(want, sizeof want, "%s\n", id);
    ck_assert_msg(strstr(out, want) != NULL, "no id line: %s", out);
    snprintf(want, sizeof want, "snapshot %s: running, 1000 rows to read\n", id);
    ck_assert_msg(strstr(out, want) != NULL, "no start line: %s", out);
    const char *at = out;
    for (int t = 1; t <= 10; t++) {
        snprintf(want, sizeof want, "snapshot %s: %d%% (%d/1000 rows)\n", id, t * 10, t * 100);
        const char *p = strstr(at, want);
        ck_assert_msg(p != NULL, "no \"%s\" (in order) in: %s", want, out);
        at = p + 1;
    }
    snprintf(want, sizeof want, "snapshot %s: done, 1000 rows\n", id);
    ck_assert_msg(strstr(out, want) != NULL, "no end line: %s", out);
    ck_assert_msg(strchr(out, '\r') == NULL && strchr(out, '#') == NULL,
                  "a progress bar off a terminal: %s", out);
    free(out);
}
END_TEST

START_TEST(test_wait_failed_or_cancelled)
{
    for (int round = 0; round < 2; round++) {
        const char *const extra[] = {"--wait", NULL};
        spawn(extra);
        char id[64];
        wait_for_request(id, sizeof id);
        progress(id, 3);
        if (round == 0)
            ck_assert_int_eq(it_pg_exec(g_env.pg,
                                        "UPDATE hms_sync.snapshots SET state = 'failed', error = "
                                        "'chunk read failed: canceling statement due to "
                                        "statement timeout', finished_at = now() WHERE id = '%s'",
                                        id),
                             0);
        else
            ck_assert_int_eq(it_pg_exec(g_env.pg,
                                        "UPDATE hms_sync.snapshots SET state = 'cancelled', "
                                        "finished_at = now() WHERE id = '%s'",
                                        id),
                             0);
        int rc = it_proc_wait(&F.p, 30000);
        char *out = it_proc_output(&F.p);
        ck_assert_msg(rc == 1, "round %d: exit %d: %s", round, rc, out);
        char want[200];
        if (round == 0)
            snprintf(want, sizeof want,
                     "hms-sync: snapshot %s failed at 300/1000 rows: chunk read failed: "
                     "canceling statement due to statement timeout\n",
                     id);
        else
            snprintf(want, sizeof want, "hms-sync: snapshot %s was cancelled at 300/1000 rows\n",
                     id);
        ck_assert_msg(strstr(out, want) != NULL, "round %d: no \"%s\" in: %s", round, want, out);
        ck_assert_msg(strstr(out, "30% (300/1000 rows)") != NULL, "round %d: %s", round, out);
        free(out);
        it_proc_kill(&F.p);
        ck_assert_int_eq(
            it_pg_exec(g_env.pg, "DELETE FROM hms_sync.snapshots WHERE slot = '%s'", F.slot), 0);
    }
}
END_TEST

START_TEST(test_status_shows_snapshots)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "SELECT pg_create_logical_replication_slot('%s', "
                                "'pgoutput')",
                                F.slot),
                     0);
    /* One finished long ago, one finished last, one running, one pending. */
    ck_assert_int_eq(
        it_pg_exec(g_env.pg,
                   "INSERT INTO hms_sync.snapshots (id, slot, state, rows_total, rows_done, "
                   "queue, finished_at, requested_at) VALUES "
                   "('snap-old', '%s', 'done', 5, 5, NULL, now() - interval '2 days', now() - "
                   "interval '3 days'), "
                   "('snap-last', '%s', 'failed', 9, 4, NULL, now() - interval '1 day', now() - "
                   "interval '2 days'), "
                   "('snap-run', '%s', 'running', 10240, 4608, 'warehouse', NULL, now() - "
                   "interval '1 hour'), "
                   "('snap-wait', '%s', 'pending', NULL, 0, NULL, NULL, now())",
                   F.slot, F.slot, F.slot, F.slot),
        0);
    char *out;
    const char *argv[] = {"status", "--pg", g_env.conninfo, "--slot", F.slot, NULL};
    ck_assert_int_eq(it_proc_spawn(&g_env, &F.p, "snapcli-status", argv), 0);
    int rc = it_proc_wait(&F.p, 30000);
    out = it_proc_output(&F.p);
    ck_assert_msg(rc == 0, "status: exit %d: %s", rc, out);
    const char *lines[] = {
        "snapshot:                   snap-last failed, 4/9 rows, to the exchange\n",
        "snapshot:                   snap-run running, 4608/10240 rows, to queue warehouse\n",
        "snapshot:                   snap-wait pending, 0 rows, to the exchange\n"};
    for (size_t i = 0; i < 3; i++)
        ck_assert_msg(strstr(out, lines[i]) != NULL, "no \"%s\" in: %s", lines[i], out);
    ck_assert_msg(strstr(out, "snap-old") == NULL, "an older finished snapshot shown: %s", out);
    free(out);

    const char *argv_json[] = {"status", "--pg", g_env.conninfo, "--slot", F.slot, "--json", NULL};
    ck_assert_int_eq(it_proc_spawn(&g_env, &F.p, "snapcli-status-json", argv_json), 0);
    rc = it_proc_wait(&F.p, 30000);
    out = it_proc_output(&F.p);
    ck_assert_msg(rc == 0, "status --json: exit %d: %s", rc, out);
    json_object *o = json_tokener_parse(out);
    json_object *snaps = it_json_get(o, "snapshots");
    ck_assert_msg(snaps != NULL && json_object_array_length(snaps) == 3, "json: %s", out);
    json_object *run = json_object_array_get_idx(snaps, 1);
    ck_assert_str_eq(it_json_str(run, "id"), "snap-run");
    ck_assert_int_eq(json_object_get_int64(it_json_get(run, "rows_done")), 4608);
    ck_assert_int_eq(json_object_get_int64(it_json_get(run, "rows_total")), 10240);
    ck_assert_str_eq(it_json_str(run, "queue"), "warehouse");
    ck_assert_ptr_null(it_json_get(json_object_array_get_idx(snaps, 2), "rows_total"));
    json_object_put(o);
    free(out);
    it_pg_drop_slot(g_env.pg, F.slot);
}
END_TEST

/* `consume` checks messages against the schemas compiled into the binary:
 * a snapshot event passes, and one without its request id, a change that
 * claims one, or a snapshot under another data schema does not. */
START_TEST(test_consume_validates_snapshots)
{
    static const char event[] =
        "{\"specversion\":\"1.0\",\"type\":\"gov.hms.ehr.IncidentSnapshot.v1\","
        "\"source\":\"/hms-ehr/7712499927554658015/ehr/public.incidents\","
        "\"datacontenttype\":\"application/json\","
        "\"dataschema\":\"https://hms.gov/schemas/ehr/IncidentSnapshot.v1.json\","
        "\"id\":\"000000000EF38000-17\",\"subject\":\"8d3c1f0a-5b7e-4e2a-9f61-2c4d6e8a0b1c\","
        "\"time\":\"2026-11-26T15:42:10.516203Z\",\"lsn\":\"0/EF38000\",\"txid\":1320,"
        "\"version\":12,\"updatedat\":\"2026-11-20T08:01:44.120334Z\",\"origin\":\"hms-ehr\","
        "\"snapshot\":\"snap-20261126T152912-3f9a1c\",\"data\":{\"id\":"
        "\"8d3c1f0a-5b7e-4e2a-9f61-2c4d6e8a0b1c\",\"occurred_at\":\"2026-11-20T07:55:00.000000Z\","
        "\"region\":\"east\",\"severity\":4,\"status\":\"closed\",\"summary\":null,"
        "\"reported_by\":null,\"version\":12,\"updated_at\":\"2026-11-20T08:01:44.120334Z\","
        "\"origin\":\"hms-ehr\"}}";
    static const struct {
        const char *from, *to, *why;
    } bad[] = {
        {"\"snapshot\":\"snap-20261126T152912-3f9a1c\",", "", "schema: envelope"},
        {"IncidentSnapshot.v1\",", "IncidentCreated.v1\",", "schema: envelope"},
        {"IncidentSnapshot.v1.json", "IncidentCreated.v1.json", "does not belong to type"},
        {"\"severity\":4", "\"severity\":9", "schema: data"},
    };
    hms_err_t err;
    hms_cval_t *v = hms_cval_new(&err);
    ck_assert_msg(v != NULL, "%s", err.msg);
    json_object *ev = NULL;
    ck_assert_msg(hms_cval_check(v, event, strlen(event), &ev, &err) == HMS_OK, "%s", err.msg);
    json_object_put(ev);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[2048];
        const char *at = strstr(event, bad[i].from);
        ck_assert_ptr_nonnull(at);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - event), event, bad[i].to,
                 at + strlen(bad[i].from));
        ev = NULL;
        ck_assert_msg(hms_cval_check(v, buf, strlen(buf), &ev, &err) != HMS_OK, "case %zu passed",
                      i);
        ck_assert_msg(strstr(err.msg, bad[i].why) != NULL, "case %zu: %s", i, err.msg);
    }
    hms_cval_free(v);
}
END_TEST

/* What needs no server. */
static Suite *offline_suite(void)
{
    Suite *s = suite_create("snapshot_cli_offline");
    TCase *tc = tcase_create("schemas");
    tcase_add_test(tc, test_consume_validates_snapshots);
    suite_add_tcase(s, tc);
    return s;
}

static Suite *snapshot_cli_suite(void)
{
    Suite *s = suite_create("snapshot_cli");
    TCase *tc = tcase_create("snapshot_cli");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bad_where_refused);
    tcase_add_test(tc, test_request_queued);
    tcase_add_test(tc, test_cancel_and_list);
    tcase_add_test(tc, test_wait_done);
    tcase_add_test(tc, test_wait_failed_or_cancelled);
    tcase_add_test(tc, test_status_shows_snapshots);
    suite_add_tcase(s, tc);
    return s;
}

IT_MAIN(.name = "snapshot_cli", .env = &g_env, .suite = snapshot_cli_suite,
        .offline = offline_suite)
