/* test_status_page.c -- run's status page as a person sees it: headless
 * Chromium (Debian's chromium) loads GET / from a connector under load,
 * with every address but loopback unreachable, so a page that needed
 * anything from the network would not render.  The rendered DOM
 * (--dump-dom) must show the figures /status.json gives and charts with
 * lines; a screenshot is kept beside the logs (status-page-<pid>.png). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"

static it_env_t g_env;

static struct {
    char slot[64], exchange[128], chromium[256], profile[600];
    it_amqp_t tap;
    it_proc_t conn;
    PGconn *load;
    int port;
} F;

static int setup(void)
{
    const char *c = getenv("HMS_TEST_CHROMIUM");
    snprintf(F.chromium, sizeof F.chromium, "%s", c != NULL && c[0] ? c : "/usr/bin/chromium");
    if (access(F.chromium, X_OK) != 0)
        return it_missing("chromium", "install Debian's chromium or set HMS_TEST_CHROMIUM");
    return 0;
}

static void fixture_up(void)
{
    memset(&F.tap, 0, sizeof F.tap);
    it_env_slot_name(&g_env, F.slot, sizeof F.slot);
    it_env_exchange_name(&g_env, F.exchange, sizeof F.exchange);
    snprintf(F.profile, sizeof F.profile, "%s/chromium-profile-%d", g_env.logdir, (int)getpid());
    ck_assert_int_eq(it_amqp_open(&F.tap, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&F.tap, F.exchange), 0);
    ck_assert_int_eq(it_amqp_queue(&F.tap, F.exchange, 0, false), 0);
    F.port = it_free_port();
    ck_assert_int_ge(F.port, 0);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", F.port);
    const char *extra[] = {"--metrics", listen, NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, "page-conn", F.slot, F.exchange, extra), 0);
    if (it_pg_wait_slot_active(g_env.pg, F.slot, 30000) != 0) {
        it_proc_dump(&F.conn, NULL);
        ck_abort_msg("the connector never streamed from %s", F.slot);
    }
}

static void fixture_down(void)
{
    it_pg_load_stop(&F.load);
    it_proc_kill(&F.conn);
    if (F.tap.conn) {
        it_amqp_delete_exchange(&F.tap, F.exchange);
        it_amqp_delete_rejected(&F.tap, F.exchange);
        it_amqp_close(&F.tap);
    }
    it_pg_drop_slot(g_env.pg, F.slot);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", F.profile);
    if (system(cmd) != 0)
        fprintf(stderr, "status_page: cannot remove %s\n", F.profile);
}

/* Runs chromium headless on the page with what (--dump-dom, or
 * --screenshot=FILE) and its stdout into out (a file); every host but
 * 127.0.0.1 resolves to nothing and every other request goes to a proxy
 * that is not there, so nothing outside the machine can be loaded.  Its
 * stderr goes to the test's log. */
static void chromium(const char *what, const char *out)
{
    char cmd[2600], url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", F.port);
    snprintf(cmd, sizeof cmd,
             "exec '%s' --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
             "--no-first-run --user-data-dir='%s' --window-size=1100,1500 "
             "--host-resolver-rules='MAP * ~NOTFOUND, EXCLUDE 127.0.0.1' "
             "--proxy-server='http://127.0.0.1:9' --proxy-bypass-list='127.0.0.1' "
             "%s '%s' >'%s'",
             F.chromium, F.profile, what, url, out);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    ck_assert_msg(it_cmd_run(&g_env, "chromium", 90000, argv) == 0, "chromium failed: %s", cmd);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* The text of the value cell of figure row `id` in the DOM. */
static void cell(const char *dom, const char *id, char *out, size_t n)
{
    char key[96];
    snprintf(key, sizeof key, "<tr id=\"row-%s\"", id);
    const char *p = strstr(dom, key);
    ck_assert_msg(p != NULL, "the rendered page has no row %s", id);
    p = strstr(p, "<td class=\"v\">");
    ck_assert_ptr_nonnull(p);
    p += strlen("<td class=\"v\">");
    const char *end = strstr(p, "</td>");
    ck_assert_ptr_nonnull(end);
    snprintf(out, n, "%.*s", (int)(end - p), p);
}

/* Points in the polyline of chart id. */
static int chart_points(const char *dom, const char *id)
{
    char key[96];
    snprintf(key, sizeof key, "id=\"chart-%s\"", id);
    const char *p = strstr(dom, key);
    ck_assert_msg(p != NULL, "the rendered page has no chart %s", id);
    const char *end = strstr(p, "</svg>");
    const char *pl = strstr(p, "points=\"");
    if (pl == NULL || pl > end)
        return 0;
    int n = 1;
    for (pl += 8; *pl != '"'; pl++)
        n += *pl == ' ';
    return n;
}

START_TEST(test_page_in_a_browser)
{
    /* Load: inserts, 200 a second, on a session of their own. */
    F.load = it_pg_load_start(g_env.super_conninfo, "page", 6000, 5);
    ck_assert_ptr_nonnull(F.load);
    /* Two samples of the trend (one every 10 s) draw every chart. */
    static char body[1 << 17];
    json_object *js = NULL;
    double deadline = it_now_ms() + 40000;
    for (;;) {
        ck_assert_int_eq(it_http_get("127.0.0.1", F.port, "/status.json", body, sizeof body), 200);
        js = json_tokener_parse(body);
        ck_assert_msg(js != NULL, "status.json: %.300s", body);
        json_object *ages = it_json_get(it_json_get(js, "trend"), "age_s");
        if (json_object_array_length(ages) >= 3 || it_now_ms() > deadline)
            break;
        json_object_put(js);
        it_sleep_ms(500);
    }
    ck_assert_int_ge(json_object_array_length(it_json_get(it_json_get(js, "trend"), "age_s")), 3);
    ck_assert_int_gt(json_object_get_int64(it_json_get(js, "confirmed_total")), 100);

    char dom_path[600], png[600];
    snprintf(dom_path, sizeof dom_path, "%s/status-page-%d.html", g_env.logdir, (int)getpid());
    snprintf(png, sizeof png, "%s/status-page-%d.png", g_env.logdir, (int)getpid());
    chromium("--dump-dom", dom_path);
    const char *dom = slurp(dom_path, NULL);

    char v[512], want[256];
    ck_assert_msg(strstr(dom, "<p id=\"headline\" class=\"ok\">ready: streaming</p>") != NULL,
                  "headline: %.2000s", dom);
    cell(dom, "slot", v, sizeof v);
    ck_assert_str_eq(v, F.slot);
    cell(dom, "rabbitmq_node", v, sizeof v);
    ck_assert_str_eq(v, it_json_str(js, "amqp_node"));
    cell(dom, "postgresql", v, sizeof v);
    ck_assert_str_eq(v, "connected");
    /* Under load the rate is a figure, and the totals only grow: the page
     * was rendered after the JSON was read. */
    cell(dom, "published", v, sizeof v);
    ck_assert_msg(strstr(v, " events/s (") != NULL, "published: %s", v);
    long long shown = atoll(strchr(v, '(') + 1);
    ck_assert_int_ge(shown, json_object_get_int64(it_json_get(js, "published_total")));
    cell(dom, "confirmed_lsn", v, sizeof v);
    uint64_t lsn_page, lsn_json;
    ck_assert(it_lsn_parse(v, &lsn_page));
    ck_assert(it_lsn_parse(it_json_str(js, "confirmed_lsn"), &lsn_json));
    ck_assert_uint_ge(lsn_page, lsn_json);
    /* The WAL the slot keeps, read on the progress connection. */
    cell(dom, "wal_retained", v, sizeof v);
    ck_assert_msg(strstr(v, " bytes") != NULL && strstr(v, "wal_status reserved") != NULL,
                  "WAL retained: %s", v);
    ck_assert_str_eq(it_json_str(js, "wal_status"), "reserved");
    ck_assert_int_gt(json_object_get_int64(it_json_get(js, "wal_retained_bytes")), 0);
    cell(dom, "lag", v, sizeof v);
    ck_assert_msg(strstr(v, " s") != NULL, "lag: %s", v);
    snprintf(want, sizeof want, "%s", "none since start");
    cell(dom, "last_error_or_warning", v, sizeof v);
    ck_assert_msg(strcmp(v, want) == 0, "a problem was logged: %s", v);
    /* Every chart has a line: the lags from the first sample, the rates
     * from the second. */
    ck_assert_int_ge(chart_points(dom, "lag"), 3);
    ck_assert_int_ge(chart_points(dom, "lag_in_wal"), 3);
    ck_assert_int_ge(chart_points(dom, "published"), 2);
    ck_assert_int_ge(chart_points(dom, "confirmed"), 2);
    json_object_put(js);

    /* The screenshot, kept for a person to look at. */
    char shot[700];
    snprintf(shot, sizeof shot, "--screenshot='%s'", png);
    char devnull[] = "/dev/null";
    chromium(shot, devnull);
    size_t len;
    const char *img = slurp(png, &len);
    ck_assert_msg(len > 10000 && memcmp(img, "\x89PNG", 4) == 0, "%s: %zu bytes, not a PNG", png,
                  len);
    fprintf(stderr, "status_page: rendered in chromium; DOM %s, screenshot %s (%zu bytes)\n",
            dom_path, png, len);
}
END_TEST

static Suite *page_suite(void)
{
    Suite *s = suite_create("status_page");
    it_tcase(s, "browser", fixture_up, fixture_down, 240, test_page_in_a_browser);
    return s;
}

IT_MAIN(.name = "status_page", .env = &g_env, .setup = setup, .suite = page_suite)
