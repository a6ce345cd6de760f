/* test_replica_identity.c -- public.incidents without REPLICA IDENTITY FULL,
 * against real PostgreSQL and RabbitMQ: `run` refuses to start (exit 2, one
 * line with the fix); while streaming, the change shows on /readyz and in
 * hms_sync_replica_identity_full and goes away with FULL; a DELETE that
 * arrives with only its key and without the old row hms-sync's trigger logs
 * for it (the trigger disabled) is never published and never passed: the
 * stream stops before it, and stops there again on restart.  (With the
 * trigger, such deletes reach subscribers whole: test_edge_cases.) */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"

#define FIX "ALTER TABLE public.incidents REPLICA IDENTITY FULL;"
#define GAUGE "hms_sync_replica_identity_full{table=\"public.incidents\"}"

static it_env_t g_env;
static char *g_source;

typedef struct {
    it_bus_t bus;
    it_proc_t conn;
} fx_t;

static fx_t F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    ck_assert_int_eq(it_bus_open(&g_env, &F.bus, true), 0);
}

static void fx_teardown(void)
{
    it_proc_kill(&F.conn);
    /* The next test (and program) expects the table as migrate left it. */
    it_pg_exec(g_env.pg, "ALTER TABLE public.incidents REPLICA IDENTITY FULL");
    it_pg_exec(g_env.pg, "ALTER TABLE public.incidents ENABLE TRIGGER hms_sync_old_row");
    it_bus_close(&g_env, &F.bus);
}

static void set_identity(const char *ident)
{
    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "ALTER TABLE public.incidents REPLICA IDENTITY %s", ident), 0);
}

/* Inserts one incident of region tag; returns its id (caller frees). */
static char *insert_one(const char *tag)
{
    char *id = it_pg_value(g_env.pg,
                           "INSERT INTO incidents (region, summary) VALUES ('%s', 'ri') "
                           "RETURNING id::text",
                           tag);
    ck_assert_ptr_nonnull(id);
    return id;
}

static void touch(const char *id)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "UPDATE incidents SET severity = severity %% 5 + 1 WHERE id = '%s'",
                                id),
                     0);
}

/* The next event: valid against the contract and schemas, of type `type`
 * and subject `subject`.  Returns its version. */
static long next_event(const char *type, const char *subject)
{
    it_msg_t m;
    char why[512];
    ck_assert_int_eq(it_amqp_get(&F.bus.amqp, 20000, &m), 1);
    json_object *ev = it_event_check(&m, g_source, why, sizeof why);
    ck_assert_msg(ev != NULL, "event violates the contract: %s\n%s", why, m.body);
    ck_assert_str_eq(it_json_str(ev, "type"), type);
    ck_assert_str_eq(it_json_str(ev, "subject"), subject);
    long version = (long)json_object_get_int64(it_json_get(ev, "version"));
    json_object_put(ev);
    it_msg_free(&m);
    return version;
}

/* Polls path until it answers status `want` with needle in the body (and
 * without `absent`, when not NULL); the last body stays in body. */
static void await_http(int port, const char *path, int want, const char *needle, const char *absent,
                       char *body, size_t len)
{
    int got = -1;
    for (double end = it_now_ms() + 15000; it_now_ms() < end; it_sleep_ms(100)) {
        got = it_http_get("127.0.0.1", port, path, body, len);
        if (got == want && strstr(body, needle) && (absent == NULL || !strstr(body, absent)))
            return;
    }
    ck_abort_msg("%s: want %d with \"%s\", last answer %d: %s", path, want, needle, got, body);
}

/* True when needle stands in hay exactly once. */
static bool once(const char *hay, const char *needle)
{
    const char *first = strstr(hay, needle);
    return first != NULL && strstr(first + strlen(needle), needle) == NULL;
}

/* (a) A first start against a table without FULL: exit 2, one line that
 * names the table, its identity and the fix, and no slot made. */
START_TEST(test_refused_at_start)
{
    set_identity("DEFAULT");
    const char *argv[] = {"run",          "--pg",        g_env.conninfo, "--amqp",
                          g_env.amqp_url, "--slot",      F.bus.slot,     "--exchange",
                          F.bus.exchange, "--log_level", "error",        NULL};
    it_proc_t p;
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, "ri-refused", argv), 0);
    int code = it_proc_wait(&p, 30000);
    it_proc_kill(&p);
    char *out = it_proc_output(&p);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(code == 2, "exit %d, want 2: %s", code, out);
    ck_assert_msg(it_count_lines(out) == 1, "want one line, got:\n%s", out);
    ck_assert_msg(strstr(out, "public.incidents") && strstr(out, "REPLICA IDENTITY DEFAULT") &&
                      strstr(out, FIX),
                  "line does not name the table, its identity and the fix: %s", out);
    fprintf(stderr, "ri-refused: exit %d: %s", code, out);
    free(out);
    ck_assert_ptr_null(it_pg_value(
        g_env.pg, "SELECT 1 FROM pg_replication_slots WHERE slot_name = '%s'", F.bus.slot));

    /* USING INDEX sends only the index's columns too. */
    set_identity("USING INDEX incidents_pkey");
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, "ri-refused-index", argv), 0);
    code = it_proc_wait(&p, 30000);
    it_proc_kill(&p);
    out = it_proc_output(&p);
    ck_assert_msg(code == 2 && out && strstr(out, "REPLICA IDENTITY USING INDEX") &&
                      strstr(out, FIX),
                  "exit %d: %s", code, out ? out : "");
    free(out);
}
END_TEST

/* (b) While streaming: DEFAULT shows at the table's next change (pgoutput
 * describes the table again then), FULL again clears it. */
START_TEST(test_readyz_follows_identity)
{
    static char body[65536];
    int port = it_free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *const extra[] = {"--metrics", listen, NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, "ri-readyz", F.bus.slot, F.bus.exchange, extra),
                     0);
    ck_assert_int_eq(it_pg_wait_slot_active(g_env.pg, F.bus.slot, 30000), 0);
    await_http(port, "/readyz", 200, "ready", NULL, body, sizeof body);

    char *id = insert_one("ri-readyz");
    next_event("gov.hms.ehr.IncidentCreated.v1", id);
    await_http(port, "/metrics", 200, "\n" GAUGE " 1\n", NULL, body, sizeof body);

    set_identity("DEFAULT");
    touch(id);
    /* An update still carries the whole new row: published as ever. */
    long v1 = next_event("gov.hms.ehr.IncidentUpdated.v1", id);
    await_http(port, "/readyz", 503,
               "not ready: public.incidents has REPLICA IDENTITY DEFAULT, not FULL", NULL, body,
               sizeof body);
    ck_assert_msg(strstr(body, FIX), "readyz reason lacks the fix: %s", body);
    await_http(port, "/metrics", 200, "\n" GAUGE " 0\n", NULL, body, sizeof body);
    ck_assert_msg(strstr(body, "\nhms_sync_up 0\n"), "hms_sync_up is not 0:\n%s", body);

    set_identity("FULL");
    touch(id);
    long v2 = next_event("gov.hms.ehr.IncidentUpdated.v1", id);
    ck_assert_int_gt(v2, v1);
    await_http(port, "/readyz", 200, "ready", NULL, body, sizeof body);
    await_http(port, "/metrics", 200, "\n" GAUGE " 1\n", NULL, body, sizeof body);
    ck_assert_msg(strstr(body, "\nhms_sync_up 1\n"), "hms_sync_up is not 1:\n%s", body);
    ck_assert_msg(it_proc_wait(&F.conn, 0) < 0, "the connector exited");

    /* One warning with the fix for the change, one notice for the way back. */
    it_proc_signal(&F.conn, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&F.conn, 20000), 0);
    char *log = it_proc_output(&F.conn);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(once(log, "REPLICA IDENTITY is no longer FULL") && once(log, FIX) &&
                      once(log, "REPLICA IDENTITY FULL is back"),
                  "want one warning with the fix and one notice:\n%s", log);
    free(log);
    free(id);
}
END_TEST

/* Runs the connector until it stops by itself; returns its one-line output
 * (caller frees) after checking exit 1. */
static char *run_until_stopped(const char *tag)
{
    const char *const extra[] = {"--log_level", "error", NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, tag, F.bus.slot, F.bus.exchange, extra), 0);
    int code = it_proc_wait(&F.conn, 30000);
    char *out = it_proc_output(&F.conn);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(code == 1, "%s: exit %d, want 1: %s", tag, code, out);
    ck_assert_msg(it_count_lines(out) == 1, "%s: want one line, got:\n%s", tag, out);
    fprintf(stderr, "%s: exit %d: %s", tag, code, out);
    return out;
}

/* (c) A DELETE under DEFAULT carries only the key, and with the trigger
 * disabled nothing logs the old row.  No valid IncidentDeleted can be made
 * from the key alone, so none is published and the slot does not pass it:
 * the connector stops with one line naming the key and the fix, and a
 * restart (FULL again) stops at the same delete. */
START_TEST(test_keyonly_delete_stops)
{
    const char *const extra[] = {"--log_level", "error", NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, "ri-delete", F.bus.slot, F.bus.exchange, extra),
                     0);
    ck_assert_int_eq(it_pg_wait_slot_active(g_env.pg, F.bus.slot, 30000), 0);
    char *gone = insert_one("ri-delete");
    next_event("gov.hms.ehr.IncidentCreated.v1", gone);

    set_identity("DEFAULT");
    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "ALTER TABLE public.incidents DISABLE TRIGGER hms_sync_old_row"), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents WHERE id = '%s'", gone), 0);
    uint64_t after_delete = it_pg_insert_lsn(g_env.pg);
    char *kept = insert_one("ri-delete"); /* a later change must not pass it either */
    int code = it_proc_wait(&F.conn, 30000);
    char *out = it_proc_output(&F.conn);
    ck_assert_msg(code == 1, "exit %d, want 1: %s", code, out ? out : "");
    ck_assert_msg(it_count_lines(out) == 1, "want one line, got:\n%s", out);
    ck_assert_msg(strstr(out, gone) && strstr(out, "only its key") && strstr(out, FIX) &&
                      strstr(out, "hms_sync_old_row") && strstr(out, "A DELETE without its row"),
                  "line lacks the key, the cause or the fix: %s", out);
    fprintf(stderr, "ri-delete: exit %d: %s", code, out);
    free(out);

    /* Nothing was published for the delete, nor for what came after it. */
    it_msg_t m;
    int r = it_amqp_get(&F.bus.amqp, 1000, &m);
    ck_assert_msg(r == 0, "an event was published past the key-only delete: %s",
                  r == 1 ? m.body : "(error)");
    uint64_t confirmed = it_pg_confirmed(g_env.pg, F.bus.slot);
    ck_assert_msg(confirmed < after_delete, "slot confirmed %s, past the delete (ends by %s)",
                  it_lsn_str(confirmed), it_lsn_str(after_delete));

    /* FULL again does not rewrite the WAL: a restart stops at the same delete. */
    set_identity("FULL");
    out = run_until_stopped("ri-delete-again");
    ck_assert_msg(strstr(out, gone) && strstr(out, "only its key"), "not the same stop: %s", out);
    free(out);
    ck_assert_int_eq(it_amqp_get(&F.bus.amqp, 500, &m), 0);
    ck_assert_msg(it_pg_confirmed(g_env.pg, F.bus.slot) < after_delete, "the slot moved past it");
    free(gone);
    free(kept);
}
END_TEST

static TCase *tcase(const char *name, const TTest *fn)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, fn);
    return tc;
}

static Suite *ri_suite(void)
{
    Suite *s = suite_create("replica_identity");
    suite_add_tcase(s, tcase("refused_at_start", test_refused_at_start));
    suite_add_tcase(s, tcase("readyz", test_readyz_follows_identity));
    suite_add_tcase(s, tcase("keyonly_delete", test_keyonly_delete_stops));
    return s;
}

IT_MAIN(.name = "replica_identity", .env = &g_env, .source = &g_source, .suite = ri_suite)
