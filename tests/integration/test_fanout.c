/* test_fanout.c -- a subscriber written the way the EHR's integration guide
 * teaches (tests/node/fanout_client.js: Node's amqplib, assertExchange of a
 * plain fanout exchange, an exclusive server-named queue bound with '',
 * JSON.parse, ack after the handler, dedupe by id) receives every event of
 * `run --fanout-exchange` unchanged: byte for byte what a queue on the topic
 * exchange receives.  Also: without the setting no fanout exchange appears,
 * and a fanout exchange of the wrong type stops run with one clear line. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it.h"

static it_env_t g_env;

static struct {
    char slot[64], exchange[128], fanout[160];
    it_amqp_t ctl, tap;
    it_proc_t conn, client;
} F;

/* node on PATH, and amqplib installed beside the client (npm ci the first
 * time: the lock file pins every package). */
static void need_node(void)
{
    if (system("command -v node >/dev/null 2>&1") != 0)
        ck_abort_msg("node is not installed (scripts/install-deps.sh installs nodejs)");
    if (access(HMS_TEST_NODE_DIR "/node_modules/amqplib/package.json", R_OK) == 0)
        return;
    const char *argv[] = {"/usr/bin/env",    "npm",        "ci",        "--prefix",
                          HMS_TEST_NODE_DIR, "--no-audit", "--no-fund", NULL};
    ck_assert_msg(it_cmd_run(&g_env, "npm-ci", 300000, argv) == 0,
                  "npm ci in %s failed (is the npm registry reachable?)", HMS_TEST_NODE_DIR);
}

static void fixture_up(void)
{
    memset(&F, 0, sizeof F);
    need_node();
    it_env_slot_name(&g_env, F.slot, sizeof F.slot);
    it_env_exchange_name(&g_env, F.exchange, sizeof F.exchange);
    snprintf(F.fanout, sizeof F.fanout, "%s.guide", F.exchange);
    ck_assert_int_eq(it_amqp_open(&F.ctl, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&F.ctl, F.exchange), 0);
    ck_assert_int_eq(it_amqp_tap(&F.tap, g_env.amqp_url, F.exchange), 0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents"), 0);
}

static void fixture_down(void)
{
    it_proc_kill(&F.client);
    it_proc_kill(&F.conn);
    if (F.tap.conn)
        it_amqp_close(&F.tap);
    if (F.ctl.conn) {
        it_amqp_delete_exchange(&F.ctl, F.fanout);
        it_amqp_delete_rejected(&F.ctl, F.exchange);
        it_amqp_delete_exchange(&F.ctl, F.exchange);
        it_amqp_close(&F.ctl);
    }
    it_pg_drop_slot(g_env.pg, F.slot);
}

static void start_connector(const char *fanout)
{
    const char *extra[] = {"--fanout-exchange", fanout, NULL};
    ck_assert_int_eq(
        it_conn_start(&g_env, &F.conn, "fanout-conn", F.slot, F.exchange, fanout ? extra : NULL),
        0);
    if (it_pg_wait_slot_active(g_env.pg, F.slot, 30000) != 0) {
        it_proc_dump(&F.conn, NULL);
        ck_abort_msg("the connector never streamed from %s", F.slot);
    }
}

/* Whether exchange name exists: a passive declare on a connection of its
 * own (a refusal closes the channel). */
static bool exchange_exists(const char *name)
{
    it_amqp_t a;
    memset(&a, 0, sizeof a);
    ck_assert_int_eq(it_amqp_open(&a, g_env.amqp_url), 0);
    amqp_exchange_declare(a.conn, 1, amqp_cstring_bytes(name), amqp_cstring_bytes("fanout"), 1, 0,
                          0, 0, amqp_empty_table);
    bool ok = amqp_get_rpc_reply(a.conn).reply_type == AMQP_RESPONSE_NORMAL;
    it_amqp_close(&a);
    return ok;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The client's "event <body>" lines, sorted; *n of them. */
static char **client_events(size_t *n)
{
    char *out = it_proc_output(&F.client);
    ck_assert_ptr_nonnull(out);
    size_t cap = 16;
    char **v = malloc(cap * sizeof(*v));
    *n = 0;
    for (char *line = strtok(out, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "event ", 6) != 0)
            continue;
        if (*n == cap)
            v = realloc(v, (cap *= 2) * sizeof(*v));
        v[(*n)++] = strdup(line + 6);
    }
    free(out);
    qsort(v, *n, sizeof(*v), cmp_str);
    return v;
}

static void free_all(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

START_TEST(test_guide_client)
{
    start_connector(F.fanout);
    const char *argv[] = {"/usr/bin/env", "node",   HMS_TEST_NODE_DIR "/fanout_client.js",
                          g_env.amqp_url, F.fanout, NULL};
    ck_assert_int_eq(it_cmd_spawn(&g_env, &F.client, "fanout-client", argv), 0);
    if (it_proc_wait_log(&F.client, "ready", 30000) != 0) {
        it_proc_dump(&F.client, "client");
        ck_abort_msg("the guide's client never started consuming");
    }
    /* Inserts, updates and deletes, in several transactions. */
    ck_assert_int_eq(it_pg_exec(g_env.pg, "INSERT INTO incidents (region, severity, summary) "
                                          "SELECT 'r' || (g %% 3), 1 + g %% 5, 'guide ' || g "
                                          "FROM generate_series(1, 40) g"),
                     0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "UPDATE incidents SET severity = 5 WHERE region = 'r1'"),
                     0);
    ck_assert_int_eq(it_pg_exec(g_env.pg, "DELETE FROM incidents WHERE region = 'r2'"), 0);
    char *v = it_pg_value(g_env.pg, "SELECT 40 + count(*) FILTER (WHERE region = 'r1') + 13 "
                                    "FROM incidents");
    long want = atol(v); /* 40 inserts, the updates of r1, the 13 deletes of r2 */
    free(v);

    /* What a queue on the topic exchange received, sorted. */
    char **tap = malloc((size_t)want * sizeof(*tap));
    for (long i = 0; i < want; i++) {
        it_msg_t m;
        ck_assert_msg(it_amqp_get(&F.tap, 30000, &m) == 1, "the tap got %ld of %ld events", i,
                      want);
        tap[i] = strdup(m.body);
        it_msg_free(&m);
    }
    qsort(tap, (size_t)want, sizeof(*tap), cmp_str);

    size_t got = 0;
    char **seen = NULL;
    double end = it_now_ms() + 30000;
    for (;;) {
        seen = client_events(&got);
        if ((long)got >= want || it_now_ms() > end)
            break;
        free_all(seen, got);
        it_sleep_ms(100);
    }
    if ((long)got != want)
        it_proc_dump(&F.client, "client");
    ck_assert_int_eq((long)got, want);
    for (long i = 0; i < want; i++)
        ck_assert_msg(strcmp(seen[i], tap[i]) == 0, "event %ld differs:\n fanout: %s\n topic:  %s",
                      i, seen[i], tap[i]);
    free_all(seen, got);
    free_all(tap, (size_t)want);

    it_proc_signal(&F.client, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&F.client, 10000), 0);
    fprintf(stderr, "fanout: the guide's amqplib client received all %ld events unchanged\n", want);
}
END_TEST

/* Off by default: run declares no fanout exchange (a passive declare of
 * the name the guide uses fails); and a name taken by an exchange of
 * another type stops run at start with the broker's reason. */
START_TEST(test_off_and_conflict)
{
    start_connector(NULL);
    it_proc_kill(&F.conn);
    it_pg_drop_slot(g_env.pg, F.slot);
    ck_assert(!exchange_exists(F.fanout));

    /* A topic exchange where a fanout one is asked for. */
    ck_assert_int_eq(it_amqp_declare_exchange(&F.ctl, F.fanout), 0);
    const char *extra[] = {"--fanout-exchange", F.fanout, NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, "fanout-conflict", F.slot, F.exchange, extra),
                     0);
    int code = it_proc_wait(&F.conn, 30000);
    char *out = it_proc_output(&F.conn);
    ck_assert_msg(code != 0 && code != -1, "run exited %d", code);
    char want[300];
    snprintf(want, sizeof want, "cannot declare exchange %s (fanout, durable)", F.fanout);
    ck_assert_msg(strstr(out, want) != NULL, "no \"%s\" in:\n%s", want, out);
    free(out);
}
END_TEST

static Suite *fanout_suite(void)
{
    Suite *s = suite_create("fanout");
    it_tcase(s, "guide_client", fixture_up, fixture_down, 300, test_guide_client);
    it_tcase(s, "off_and_conflict", fixture_up, fixture_down, 120, test_off_and_conflict);
    return s;
}

IT_MAIN(.name = "fanout", .env = &g_env, .suite = fanout_suite)
