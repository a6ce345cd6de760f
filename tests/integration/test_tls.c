/* test_tls.c -- PostgreSQL with sslmode=verify-full and RabbitMQ over
 * amqps://, against a throwaway CA (tls_env.sh certs): the happy path
 * streams an event; a wrong CA, a wrong host name, an expired certificate
 * and a TLS 1.0/1.1-only server are each refused with one clear line; and
 * SASL EXTERNAL logs run and consume in with a client certificate.
 *
 * PostgreSQL: a throwaway cluster (it_cluster_start); its certificate and
 * protocol versions change with ALTER SYSTEM and a reload.  RabbitMQ: a
 * second, throwaway node (tls_env.sh rmq-start) with one TLS listener; its
 * certificate is swapped by rewriting the files and clearing Erlang's PEM
 * cache, and only the TLS 1.1 case restarts the app.  Both are stopped and
 * removed at exit in every path. */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"

#define SCRIPT HMS_SCHEMAS_DIR "/../tests/integration/tls_env.sh"

static it_env_t g_env;
static char g_dir[256];        /* certificates and the node's files */
static int g_amqps_port;       /* the node's TLS listener */
static int g_amqp_port;        /* its plain listener, for the test's own consumer */
static bool g_rmq_started;     /* rmq-start was attempted: stop it at exit */
static it_proc_t g_node;       /* tls_env.sh rmq-start, running while PostgreSQL is tested */
static it_cluster_t g_cluster; /* PostgreSQL with ssl = on */
static char g_pg_super[IT_CONNINFO_MAX];

/* Runs tls_env.sh CMD g_dir ARGS...; its exit code. */
static int tls_env(const char *cmd, int timeout_ms, ...)
{
    const char *argv[16] = {"/bin/bash", SCRIPT, cmd, g_dir};
    int n = 4;
    va_list ap;
    va_start(ap, timeout_ms);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    char tag[64];
    snprintf(tag, sizeof tag, "tls-env-%s", cmd);
    return it_cmd_run(&g_env, tag, timeout_ms, argv);
}

static void path(char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", g_dir, file);
}

static void cleanup_all(void)
{
    if (g_rmq_started && !getenv("HMS_IT_KEEP")) {
        it_proc_wait(&g_node, 150000); /* a start still under way would outlive the stop */
        it_proc_kill(&g_node);
        tls_env("rmq-stop", 60000, NULL);
        g_rmq_started = false;
    }
    it_cluster_stop(&g_cluster);
    if (g_dir[0] && getenv("HMS_IT_KEEP")) {
        fprintf(stderr, "test_tls: HMS_IT_KEEP is set: keeping %s\n", g_dir);
    } else if (g_dir[0]) {
        const char *argv[] = {"/bin/rm", "-rf", g_dir, NULL};
        it_cmd_run(&g_env, "tls-rm", 30000, argv);
        g_dir[0] = '\0';
    }
}

/* Runs hms-sync with argv to its end within timeout_ms and asserts exit 1
 * and one line holding every needle (NULL-terminated). */
static void expect_refused(const char *tag, const char *const argv[], ...)
{
    it_proc_t p;
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, tag, argv), 0);
    int code = it_proc_wait(&p, 30000);
    it_proc_kill(&p);
    char *out = it_proc_output(&p);
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(code == 1, "%s: exit %d, want 1: %s", tag, code, out);
    ck_assert_msg(it_count_lines(out) == 1, "%s: want one line, got:\n%s", tag, out);
    va_list ap;
    va_start(ap, argv);
    const char *needle;
    while ((needle = va_arg(ap, const char *)) != NULL)
        ck_assert_msg(strstr(out, needle) != NULL, "%s: line does not mention '%s': %s", tag,
                      needle, out);
    va_end(ap);
    fprintf(stderr, "%s: refused: %s", tag, out);
    free(out);
}

/* Inserts a row into db (a superuser session) and waits until a message
 * arrives on a's queue. */
static void insert_and_receive(PGconn *db, it_amqp_t *a, const char *summary)
{
    ck_assert_int_eq(
        it_pg_exec(db, "INSERT INTO incidents (region, summary) VALUES ('north', '%s')", summary),
        0);
    it_msg_t m;
    int got = 0;
    double end = it_now_ms() + 20000;
    while (it_now_ms() < end && (got = it_amqp_get(a, 1000, &m)) == 0) {
    }
    ck_assert_msg(got == 1, "no event for '%s' arrived", summary);
    ck_assert_msg(strstr(m.body, summary) != NULL, "unexpected event: %s", m.body);
    it_msg_free(&m);
}

/* Waits until p's log shows it streaming (or it exits). */
static void wait_streaming(it_proc_t *p, const char *what)
{
    if (it_proc_wait_log(p, "streaming from replication slot", 30000) == 0)
        return;
    it_proc_dump(p, what);
    ck_abort_msg("%s did not start streaming", what);
}

/* ---- PostgreSQL ------------------------------------------------------ */

static void pg_conninfo(char *out, size_t n, const char *ca)
{
    char cafile[300];
    path(cafile, sizeof cafile, ca);
    snprintf(out, n,
             "host=localhost port=%d user=hms_sync dbname=hms sslmode=verify-full "
             "sslrootcert=%s connect_timeout=10",
             g_cluster.port, cafile);
}

/* Points the cluster at certificate NAME.{crt,key} (copied into its data
 * directory), with the given protocol range, and reloads. */
static void pg_use(const char *name, const char *min, const char *max)
{
    ck_assert_int_eq(tls_env("pg-files", 30000, g_cluster.datadir, NULL), 0);
    PGconn *c = it_pg_connect(g_pg_super);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(it_pg_exec(c, "ALTER SYSTEM SET ssl_cert_file = '%s.crt'", name), 0);
    ck_assert_int_eq(it_pg_exec(c, "ALTER SYSTEM SET ssl_key_file = '%s.key'", name), 0);
    ck_assert_int_eq(it_pg_exec(c, "ALTER SYSTEM SET ssl_min_protocol_version = '%s'", min), 0);
    ck_assert_int_eq(it_pg_exec(c, "ALTER SYSTEM SET ssl_max_protocol_version = '%s'", max), 0);
    ck_assert_int_eq(it_pg_exec(c, "ALTER SYSTEM SET ssl = on"), 0);
    ck_assert_int_eq(it_pg_exec(c, "SELECT pg_reload_conf()"), 0);
    PQfinish(c);
    /* The postmaster applies the reload asynchronously; new sessions see it
     * once ssl_cert_file shows the new value. */
    char want[64];
    snprintf(want, sizeof want, "%s.crt", name);
    double end = it_now_ms() + 10000;
    while (it_now_ms() < end) {
        c = it_pg_connect(g_pg_super);
        char *v = c ? it_pg_value(c, "SHOW ssl_cert_file") : NULL;
        char *w = c ? it_pg_value(c, "SHOW ssl_max_protocol_version") : NULL;
        bool done = v && w && strcmp(v, want) == 0 && strcmp(w, max) == 0;
        free(v);
        free(w);
        if (c)
            PQfinish(c);
        if (done)
            return;
        it_sleep_ms(100);
    }
    ck_abort_msg("the cluster did not reload its ssl settings");
}

static void pg_run_argv(const char **argv, const char *conninfo, const char *slot,
                        const char *exchange)
{
    const char *base[] = {"run", "--pg",       conninfo, "--amqp",      g_env.amqp_url, "--slot",
                          slot,  "--exchange", exchange, "--log-level", "error",        NULL};
    memcpy(argv, base, sizeof base);
}

START_TEST(test_pg_tls)
{
    char conninfo[IT_CONNINFO_MAX], exchange[128], slot[64];
    it_env_exchange_name(&g_env, exchange, sizeof exchange);
    snprintf(slot, sizeof slot, "hms_it_tls");
    pg_use("server", "TLSv1.2", "");

    /* Happy path: migrate and run over verify-full; an event streams. */
    char super_tls[IT_CONNINFO_MAX], cafile[300];
    path(cafile, sizeof cafile, "ca.crt");
    snprintf(super_tls, sizeof super_tls,
             "host=localhost port=%d user=postgres dbname=hms sslmode=verify-full sslrootcert=%s",
             g_cluster.port, cafile);
    it_proc_t p;
    const char *mig[] = {"migrate", "--pg", super_tls, NULL};
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, "tls-pg-migrate", mig), 0);
    int code = it_proc_wait(&p, 120000);
    it_proc_kill(&p);
    if (code != 0)
        it_proc_dump(&p, "migrate over TLS");
    ck_assert_int_eq(code, 0);

    it_amqp_t a;
    ck_assert_int_eq(it_amqp_open(&a, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&a, exchange), 0);
    ck_assert_int_eq(it_amqp_queue(&a, exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&a), 0);
    pg_conninfo(conninfo, sizeof conninfo, "ca.crt");
    const char *argv[16];
    pg_run_argv(argv, conninfo, slot, exchange);
    argv[10] = "info";
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, "tls-pg-run", argv), 0);
    wait_streaming(&p, "run over PostgreSQL TLS");
    char super_hms[IT_CONNINFO_MAX];
    it_cluster_conninfo(&g_cluster, "postgres", "hms", super_hms, sizeof super_hms);
    PGconn *db = it_pg_connect(super_hms);
    ck_assert_ptr_nonnull(db);
    insert_and_receive(db, &a, "over-pg-tls");
    /* The replication connection itself is encrypted, with TLS 1.2+. */
    char *v =
        it_pg_value(db, "SELECT s.ssl::text || ' ' || s.version FROM pg_stat_ssl s "
                        "JOIN pg_stat_replication r USING (pid) WHERE r.usename = 'hms_sync'");
    ck_assert_msg(v && (strcmp(v, "true TLSv1.3") == 0 || strcmp(v, "true TLSv1.2") == 0),
                  "walsender TLS: %s", v ? v : "(none)");
    fprintf(stderr, "tls-pg: happy path streamed an event; walsender ssl/version: %s\n", v);
    free(v);
    it_proc_signal(&p, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&p, 20000), 0);
    it_amqp_close(&a);

    /* A CA that did not sign the server's certificate. */
    pg_conninfo(conninfo, sizeof conninfo, "other-ca.crt");
    pg_run_argv(argv, conninfo, slot, exchange);
    expect_refused("tls-pg-wrong-ca", argv, "pg:", "certificate verify failed", NULL);

    /* The right CA, a certificate for another name. */
    pg_use("wrong", "TLSv1.2", "");
    pg_conninfo(conninfo, sizeof conninfo, "ca.crt");
    pg_run_argv(argv, conninfo, slot, exchange);
    expect_refused("tls-pg-wrong-name", argv, "pg:", "does not match host name", NULL);

    /* Expired in 2020. */
    pg_use("expired", "TLSv1.2", "");
    expect_refused("tls-pg-expired", argv, "pg:", "certificate verify failed", NULL);

    /* A server that offers only TLS 1.0/1.1: libpq requires 1.2. */
    pg_use("server", "TLSv1", "TLSv1.1");
    expect_refused("tls-pg-tls11", argv, "pg:", "SSL", NULL);

    it_pg_exec(db, "SELECT pg_drop_replication_slot('%s')", slot);
    PQfinish(db);
    it_amqp_t admin;
    if (it_amqp_open(&admin, g_env.amqp_url) == 0) {
        it_amqp_delete_exchange(&admin, exchange);
        it_amqp_close(&admin);
    }
}
END_TEST

/* ---- RabbitMQ -------------------------------------------------------- */

static char g_plain_url[128]; /* the node's plain listener */

/* Swaps the node's certificate for NAME.{crt,key} without a restart. */
static void rmq_use(const char *name)
{
    ck_assert_int_eq(tls_env("rmq-cert", 60000, name, NULL), 0);
}

/* argv of `hms-sync run` from the shared PostgreSQL to the TLS node. */
static void rmq_run_argv(const char **argv, const char *url, const char *slot, const char *exchange,
                         const char *const extra[])
{
    int n = 0;
    const char *base[] = {"run", "--pg",       g_env.conninfo, "--amqp",      url,     "--slot",
                          slot,  "--exchange", exchange,       "--log-level", "error", NULL};
    for (int i = 0; base[i]; i++)
        argv[n++] = base[i];
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
}

START_TEST(test_amqps)
{
    char url[128], bad_ip_url[128], exchange[128], slot[64], ca[300], other[300];
    it_env_exchange_name(&g_env, exchange, sizeof exchange);
    it_env_slot_name(&g_env, slot, sizeof slot);
    snprintf(url, sizeof url, "amqps://hms_tls_plain:tls-test@localhost:%d/", g_amqps_port);
    snprintf(bad_ip_url, sizeof bad_ip_url, "amqps://hms_tls_plain:tls-test@127.0.0.1:%d/",
             g_amqps_port);
    path(ca, sizeof ca, "ca.crt");
    path(other, sizeof other, "other-ca.crt");
    const char *const with_ca[] = {"--amqp-cacert", ca, NULL};
    const char *argv[32];
    int code = it_proc_wait(&g_node, 150000);
    if (code != 0)
        it_proc_dump(&g_node, "rmq-start");
    ck_assert_msg(code == 0, "the RabbitMQ node did not start");

    /* Happy path: run publishes over amqps:// (name and IP SAN both work). */
    /* A freshly booted node was seen closing its listeners again for a
     * few seconds after reporting them up: retry the first connection. */
    it_amqp_t a;
    int open_rc = -1;
    for (int i = 0; i < 60 && (open_rc = it_amqp_open(&a, g_plain_url)) != 0; i++)
        it_sleep_ms(500);
    ck_assert_int_eq(open_rc, 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&a, exchange), 0);
    /* consume checks that its dead-letter exchange exists. */
    ck_assert_int_eq(it_amqp_declare_dlx(&a, "hms.it.tls.dlx"), 0);
    ck_assert_int_eq(it_amqp_queue(&a, exchange, 0, false), 0);
    ck_assert_int_eq(it_amqp_consume(&a), 0);
    it_proc_t p;
    rmq_run_argv(argv, bad_ip_url, slot, exchange, with_ca);
    argv[10] = "info";
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, "tls-amqps-run", argv), 0);
    wait_streaming(&p, "run over amqps://127.0.0.1");
    insert_and_receive(g_env.pg, &a, "over-amqps");
    it_proc_signal(&p, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&p, 20000), 0);
    fprintf(stderr, "tls-amqps: happy path published an event\n");

    /* SASL EXTERNAL: run and consume log in with the client certificate
     * (CN hms_tls_ext, a user without a password) and no user in the URL. */
    char ext_url[128], cert[300], key[300], queue[64];
    snprintf(ext_url, sizeof ext_url, "amqps://localhost:%d/", g_amqps_port);
    path(cert, sizeof cert, "client.crt");
    path(key, sizeof key, "client.key");
    snprintf(queue, sizeof queue, "tls_ext_%ld", (long)getpid());
    const char *const ext[] = {"--amqp-cacert", ca,         "--amqp-cert", cert, "--amqp-key", key,
                               "--amqp-auth",   "external", NULL};
    it_proc_t sub;
    const char *cargv[32] = {"consume",
                             "--pg",
                             g_env.super_conninfo,
                             "--amqp",
                             ext_url,
                             "--exchange",
                             exchange,
                             "--queue",
                             queue,
                             "--apply",
                             "hms_sync.apply_warehouse",
                             "--queue-type",
                             "classic",
                             "--dead-letter-exchange",
                             "hms.it.tls.dlx"};
    int n = 15;
    for (int i = 0; ext[i]; i++)
        cargv[n++] = ext[i];
    cargv[n] = NULL;
    ck_assert_int_eq(it_proc_spawn(&g_env, &sub, "tls-ext-consume", cargv), 0);
    bool consuming = it_proc_wait_log(&sub, "msg=consuming", 30000) == 0;
    if (!consuming)
        it_proc_dump(&sub, "consume with SASL EXTERNAL");
    ck_assert(consuming);
    rmq_run_argv(argv, ext_url, slot, exchange, ext);
    argv[10] = "info";
    ck_assert_int_eq(it_proc_spawn(&g_env, &p, "tls-ext-run", argv), 0);
    wait_streaming(&p, "run with SASL EXTERNAL");
    insert_and_receive(g_env.pg, &a, "over-external");
    double end = it_now_ms() + 20000;
    char *applied = NULL;
    while (it_now_ms() < end) {
        applied = it_pg_value(
            g_env.pg, "SELECT count(*) FROM incident_facts WHERE summary = 'over-external'");
        if (applied && strcmp(applied, "1") == 0)
            break;
        free(applied);
        applied = NULL;
        it_sleep_ms(200);
    }
    if (!applied)
        it_proc_dump(&sub, "consume with SASL EXTERNAL");
    ck_assert_msg(applied != NULL, "consume (EXTERNAL) did not apply the event");
    free(applied);
    /* hms_tls_ext has no password and the URL names no user: only SASL
     * EXTERNAL with the certificate (CN hms_tls_ext) can have logged in. */
    fprintf(stderr, "tls-amqps: run and consume logged in by SASL EXTERNAL\n");
    it_proc_signal(&p, SIGTERM);
    it_proc_signal(&sub, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&p, 20000), 0);
    ck_assert_int_eq(it_proc_wait(&sub, 20000), 0);
    it_amqp_close(&a);

    /* A CA that did not sign the broker's certificate; and none at all
     * (the system's CAs do not know the throwaway one). */
    const char *const with_other[] = {"--amqp-cacert", other, NULL};
    rmq_run_argv(argv, url, slot, exchange, with_other);
    expect_refused("tls-amqps-wrong-ca", argv, "certificate was refused", other, NULL);
    rmq_run_argv(argv, url, slot, exchange, NULL);
    expect_refused("tls-amqps-system-ca", argv, "certificate was refused", NULL);

    /* consume shares the TLS code: the same refusal. */
    cargv[4] = url;
    cargv[15] = "--amqp-cacert";
    cargv[16] = other;
    cargv[17] = "--log-level";
    cargv[18] = "error";
    cargv[19] = NULL;
    expect_refused("tls-consume-wrong-ca", cargv, "certificate was refused", NULL);

    /* Wrong name, then expired. */
    rmq_run_argv(argv, url, slot, exchange, with_ca);
    rmq_use("wrong");
    expect_refused("tls-amqps-wrong-name", argv, "certificate was refused", "hostname mismatch",
                   NULL);
    rmq_use("expired");
    expect_refused("tls-amqps-expired", argv, "certificate was refused", "expired", NULL);

    /* A listener that offers only TLS 1.0/1.1 (checked to negotiate 1.1). */
    rmq_use("server");
    ck_assert_int_eq(tls_env("rmq-tls11", 120000, NULL), 0);
    expect_refused("tls-amqps-tls11", argv, "TLS handshake", "TLS 1.2 or later", NULL);

    it_pg_drop_slot(g_env.pg, slot);
}
END_TEST

/* ---- setup ----------------------------------------------------------- */

static int setup_all(void)
{
    snprintf(g_dir, sizeof g_dir, "/var/tmp/hms-it-tls-XXXXXX");
    if (!mkdtemp(g_dir)) {
        g_dir[0] = '\0';
        return -1;
    }
    chmod(g_dir, 0755); /* the postgres user reads the CA files */
    if (tls_env("certs", 60000, NULL) != 0)
        return -1;
    g_amqps_port = it_free_port();
    g_amqp_port = it_free_port();
    int dist = it_free_port(), epmd = it_free_port();
    if (g_amqps_port < 0 || g_amqp_port < 0 || dist < 0 || epmd < 0)
        return -1;
    char ports[4][16];
    snprintf(ports[0], 16, "%d", g_amqps_port);
    snprintf(ports[1], 16, "%d", g_amqp_port);
    snprintf(ports[2], 16, "%d", dist);
    snprintf(ports[3], 16, "%d", epmd);
    snprintf(g_plain_url, sizeof g_plain_url, "amqp://hms_tls_plain:tls-test@127.0.0.1:%d/",
             g_amqp_port);
    /* Start the node in the background while the cluster comes up. */
    g_rmq_started = true;
    it_proc_t node;
    const char *argv[] = {"/bin/bash", SCRIPT,   "rmq-start", g_dir, ports[0],
                          ports[1],    ports[2], ports[3],    NULL};
    if (it_cmd_spawn(&g_env, &node, "tls-env-rmq-start", argv) != 0)
        return -1;
    int rc = it_cluster_start(&g_env, &g_cluster, NULL, "wal_level = logical\n");
    if (rc == 0) {
        PGconn *c = it_pg_connect(g_cluster.super_conninfo);
        rc = c ? it_pg_exec(c, "CREATE DATABASE hms") : -1;
        if (c)
            PQfinish(c);
        it_cluster_conninfo(&g_cluster, "postgres", "postgres", g_pg_super, sizeof g_pg_super);
    }
    /* consume's apply function lives in the subscriber schema. */
    it_proc_t mig;
    const char *margv[] = {"migrate", "--subscriber", "--pg", g_env.super_conninfo, NULL};
    if (rc != 0 || it_proc_spawn(&g_env, &mig, "tls-migrate-sub", margv) != 0)
        return -1;
    int code = it_proc_wait(&mig, 120000);
    it_proc_kill(&mig);
    return code == 0 ? 0 : -1;
}

static double g_t0; /* when setup began */

/* The program's setup: certificates, a PostgreSQL cluster and a RabbitMQ
 * node of its own, stopped however the program ends. */
static int tls_setup(void)
{
    g_t0 = it_now_ms();
    atexit(cleanup_all);
    if (setup_all() != 0)
        return -1;
    fprintf(stderr, "test_tls: setup (certificates, cluster; RabbitMQ starting) took %.0f ms\n",
            it_now_ms() - g_t0);
    return 0;
}

static void tls_teardown(void)
{
    cleanup_all();
    fprintf(stderr, "test_tls: total %.0f ms\n", it_now_ms() - g_t0);
}

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *pg = tcase_create("postgresql");
    tcase_set_timeout(pg, 300);
    tcase_add_test(pg, test_pg_tls);
    suite_add_tcase(s, pg);
    TCase *mq = tcase_create("rabbitmq");
    tcase_set_timeout(mq, 300);
    tcase_add_test(mq, test_amqps);
    suite_add_tcase(s, mq);
    return s;
}

IT_MAIN(.name = "tls", .env = &g_env, .setup = tls_setup, .teardown = tls_teardown,
        .suite = tls_suite)
