/* test_prometheus.c -- the dashboard and the alert rules against a real
 * Prometheus (Debian's prometheus) scraping a running connector (job
 * hms-sync) and subscriber (job hms-sync-consume) under load, with
 * max_slot_wal_keep_size set so that the WAL gauges report:
 *   - every PromQL expression of deploy/grafana/hms-sync.json returns data;
 *   - every hms-sync metric the alert rules name has series, and Prometheus
 *     evaluates every rule without error (the pg_* metrics of the
 *     postgres_exporter group are named and skipped: Debian 12 ships no
 *     exporter that has them);
 *   - promtool check rules accepts the rules. */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"
#include "it_sub.h"

#define DASHBOARD HMS_DEPLOY_DIR "/grafana/hms-sync.json"
#define ALERTS HMS_DEPLOY_DIR "/prometheus/alerts.yml"
/* What Grafana puts in $__rate_interval at this scrape interval. */
#define RATE_INTERVAL "15s"

static it_env_t g_env;
static it_subdb_t g_sub;

static struct {
    char prometheus[256], promtool[256], dir[600];
    char slot[64], exchange[128], dlx[160], queue[200];
    it_proc_t conn, sub, prom;
    PGconn *load;
    int run_port, sub_port, prom_port;
    bool keep_size_set;
} F;

static int setup(void)
{
    const char *p = getenv("HMS_TEST_PROMETHEUS");
    snprintf(F.prometheus, sizeof F.prometheus, "%s", p && p[0] ? p : "/usr/bin/prometheus");
    snprintf(F.promtool, sizeof F.promtool, "%s", F.prometheus);
    char *slash = strrchr(F.promtool, '/');
    snprintf(slash != NULL ? slash + 1 : F.promtool,
             sizeof F.promtool - (size_t)(slash != NULL ? slash + 1 - F.promtool : 0), "promtool");
    if (access(F.prometheus, X_OK) != 0 || access(F.promtool, X_OK) != 0)
        return it_missing("prometheus", "install Debian's prometheus or set HMS_TEST_PROMETHEUS");
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void fixture_up(void)
{
    it_env_slot_name(&g_env, F.slot, sizeof F.slot);
    it_env_exchange_name(&g_env, F.exchange, sizeof F.exchange);
    snprintf(F.dlx, sizeof F.dlx, "%s.dlx", F.exchange);
    snprintf(F.queue, sizeof F.queue, "%s.warehouse", F.exchange);
    snprintf(F.dir, sizeof F.dir, "%s/prometheus-%d", g_env.logdir, (int)getpid());
    mkdir(F.dir, 0755);
    /* The WAL limit makes hms_sync_slot_wal_keep_max_bytes report. */
    ck_assert_int_eq(it_pg_exec(g_env.pg, "ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'"), 0);
    F.keep_size_set = true;
    ck_assert_int_eq(it_pg_exec(g_env.pg, "SELECT pg_reload_conf()"), 0);
    it_amqp_t ctl;
    ck_assert_int_eq(it_amqp_open(&ctl, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&ctl, F.exchange), 0);
    ck_assert_int_eq(it_amqp_declare_dlx(&ctl, F.dlx), 0);
    it_amqp_close(&ctl);

    char listen[64];
    F.run_port = it_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", F.run_port);
    const char *run_extra[] = {"--metrics", listen, NULL};
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, "prom-conn", F.slot, F.exchange, run_extra), 0);
    ck_assert_int_eq(it_pg_wait_slot_active(g_env.pg, F.slot, 30000), 0);
    F.sub_port = it_free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", F.sub_port);
    const char *sub_extra[] = {"--metrics", listen, NULL};
    ck_assert_int_eq(it_consume_start(&g_env, &F.sub, "prom-sub", g_sub.conninfo, F.exchange, F.dlx,
                                      F.queue, "hms_sync.apply_warehouse", sub_extra),
                     0);

    /* Prometheus scraping both every second, with the rules loaded. */
    char cfg[2048], path[700], data[700], web[64];
    snprintf(cfg, sizeof cfg,
             "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
             "rule_files:\n  - %s\n"
             "scrape_configs:\n"
             "  - job_name: hms-sync\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
             "  - job_name: hms-sync-consume\n    static_configs:\n"
             "      - targets: ['127.0.0.1:%d']\n",
             ALERTS, F.run_port, F.sub_port);
    snprintf(path, sizeof path, "%s/prometheus.yml", F.dir);
    write_file(path, cfg);
    snprintf(data, sizeof data, "--storage.tsdb.path=%s/data", F.dir);
    F.prom_port = it_free_port();
    snprintf(web, sizeof web, "--web.listen-address=127.0.0.1:%d", F.prom_port);
    char config[720];
    snprintf(config, sizeof config, "--config.file=%s", path);
    const char *argv[] = {F.prometheus, config, data, web, NULL};
    ck_assert_int_eq(it_cmd_spawn(&g_env, &F.prom, "prometheus", argv), 0);
    char body[256];
    int code = -1;
    for (double end = it_now_ms() + 30000; code != 200 && it_now_ms() < end; it_sleep_ms(200))
        code = it_http_get("127.0.0.1", F.prom_port, "/-/ready", body, sizeof body);
    if (code != 200)
        it_proc_dump(&F.prom, "prometheus");
    ck_assert_msg(code == 200, "Prometheus never became ready: %d", code);
}

static void fixture_down(void)
{
    it_pg_load_stop(&F.load);
    it_proc_kill(&F.prom);
    it_proc_kill(&F.sub);
    it_proc_kill(&F.conn);
    if (F.keep_size_set) {
        it_pg_exec(g_env.pg, "ALTER SYSTEM RESET max_slot_wal_keep_size");
        it_pg_exec(g_env.pg, "SELECT pg_reload_conf()");
    }
    it_amqp_drop_subscriber(g_env.amqp_url, F.queue, NULL, NULL);
    it_amqp_drop_subscriber(g_env.amqp_url, NULL, F.exchange, F.dlx);
    it_pg_drop_slot(g_env.pg, F.slot);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", F.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "prometheus: cannot remove %s\n", F.dir);
}

/* expr percent-encoded for a query string. */
static void urlencode(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (; *s != '\0' && k + 4 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            out[k++] = (char)c;
        else
            k += (size_t)snprintf(out + k, n - k, "%%%02X", c);
    }
    out[k] = '\0';
}

/* expr with Grafana's $__rate_interval replaced (cut to n - 1 bytes). */
static void grafana_expr(const char *expr, char *out, size_t n)
{
    static const char var[] = "$__rate_interval";
    size_t k = 0;
    for (const char *p = expr; *p != '\0' && k + 1 < n;) {
        if (strncmp(p, var, sizeof var - 1) == 0) {
            for (const char *r = RATE_INTERVAL; *r != '\0' && k + 1 < n; r++)
                out[k++] = *r;
            p += sizeof var - 1;
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = '\0';
}

/* Series in the result of an instant query of expr; -1 when the query
 * failed.  why gets Prometheus's answer when it is not a success. */
static int query(const char *expr, char *why, size_t whylen)
{
    static char enc[4096], path[4200], body[1 << 18];
    urlencode(expr, enc, sizeof enc);
    snprintf(path, sizeof path, "/api/v1/query?query=%s", enc);
    int code = it_http_get("127.0.0.1", F.prom_port, path, body, sizeof body);
    json_object *o = code == 200 ? json_tokener_parse(body) : NULL;
    const char *status = o ? it_json_str(o, "status") : NULL;
    if (o == NULL || status == NULL || strcmp(status, "success") != 0) {
        snprintf(why, whylen, "HTTP %d: %.300s", code, body);
        json_object_put(o);
        return -1;
    }
    int n = (int)json_object_array_length(it_json_get(it_json_get(o, "data"), "result"));
    json_object_put(o);
    return n;
}

/* Waits up to timeout_ms until expr returns data. */
static void returns_data(const char *what, const char *expr, int timeout_ms)
{
    char why[512] = "";
    int n = -1;
    for (double end = it_now_ms() + timeout_ms;; it_sleep_ms(500)) {
        n = query(expr, why, sizeof why);
        if (n > 0 || it_now_ms() > end)
            break;
    }
    ck_assert_msg(n > 0, "%s: %s returns %s %s", what, expr, n < 0 ? "an error:" : "no data", why);
}

/* The metric names of the form prefix... in expr, each once, into names
 * (n of them). */
static int metric_names(const char *expr, const char *prefix, char names[][96], int max)
{
    int n = 0;
    for (const char *p = strstr(expr, prefix); p != NULL && n < max; p = strstr(p + 1, prefix)) {
        if (p > expr && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
            continue;
        size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
        snprintf(names[n], sizeof names[n], "%.*s", (int)len, p);
        bool seen = false;
        for (int i = 0; i < n && !seen; i++)
            seen = strcmp(names[i], names[n]) == 0;
        if (!seen)
            n++;
    }
    return n;
}

START_TEST(test_dashboard_and_rules)
{
    /* Load: 100 commits a second for the length of the test. */
    F.load = it_pg_load_start(g_env.super_conninfo, "prom", 12000, 10);
    ck_assert_ptr_nonnull(F.load);
    /* Rates over 15 s want a few scrapes of it. */
    it_sleep_ms(8000);

    json_object *dash = json_object_from_file(DASHBOARD);
    ck_assert_msg(dash != NULL, "%s does not parse", DASHBOARD);
    json_object *panels = it_json_get(dash, "panels");
    int exprs = 0;
    for (size_t i = 0; i < json_object_array_length(panels); i++) {
        json_object *panel = json_object_array_get_idx(panels, i);
        json_object *targets = it_json_get(panel, "targets");
        for (size_t k = 0; k < json_object_array_length(targets); k++) {
            char e[1024];
            grafana_expr(it_json_str(json_object_array_get_idx(targets, k), "expr"), e, sizeof e);
            returns_data(it_json_str(panel, "title"), e, 30000);
            exprs++;
        }
    }
    json_object_put(dash);
    ck_assert_int_ge(exprs, 10);

    /* The alert rules: each hms-sync metric they name has series. */
    FILE *f = fopen(ALERTS, "r");
    ck_assert_msg(f != NULL, "cannot read %s", ALERTS);
    char line[2048], names[16][96];
    int rules = 0, metrics = 0, skipped = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        const char *e = strstr(line, "expr: ");
        if (e == NULL)
            continue;
        rules++;
        int n = metric_names(e + 6, "hms_sync_", names, 16);
        for (int i = 0; i < n; i++) {
            char q[200];
            snprintf(q, sizeof q, "count(%.96s)", names[i]);
            returns_data("alert rule", q, 30000);
            metrics++;
        }
        skipped += metric_names(e + 6, "pg_", names, 16);
    }
    fclose(f);
    ck_assert_int_ge(rules, 15);

    /* Prometheus evaluated every rule, and none failed. */
    static char body[1 << 18];
    ck_assert_int_eq(it_http_get("127.0.0.1", F.prom_port, "/api/v1/rules", body, sizeof body),
                     200);
    json_object *r = json_tokener_parse(body);
    ck_assert_ptr_nonnull(r);
    json_object *groups = it_json_get(it_json_get(r, "data"), "groups");
    int evaluated = 0;
    for (size_t g = 0; g < json_object_array_length(groups); g++) {
        json_object *rs = it_json_get(json_object_array_get_idx(groups, g), "rules");
        for (size_t k = 0; k < json_object_array_length(rs); k++) {
            json_object *rule = json_object_array_get_idx(rs, k);
            ck_assert_msg(strcmp(it_json_str(rule, "health"), "ok") == 0, "rule %s: %s %s",
                          it_json_str(rule, "name"), it_json_str(rule, "health"),
                          it_json_str(rule, "lastError"));
            evaluated++;
        }
    }
    json_object_put(r);
    ck_assert_int_eq(evaluated, rules);

    const char *check[] = {F.promtool, "check", "rules", ALERTS, NULL};
    ck_assert_int_eq(it_cmd_run(&g_env, "promtool", 60000, check), 0);
    fprintf(stderr,
            "prometheus: %d dashboard expressions return data; %d rules evaluated, %d hms-sync "
            "metrics they name have series, %d postgres_exporter metrics skipped\n",
            exprs, evaluated, metrics, skipped);
}
END_TEST

static Suite *prom_suite(void)
{
    Suite *s = suite_create("prometheus");
    it_tcase(s, "dashboard_and_rules", fixture_up, fixture_down, 280, test_dashboard_and_rules);
    return s;
}

IT_MAIN(.name = "prometheus", .env = &g_env, .sub = &g_sub, .setup = setup, .suite = prom_suite)
