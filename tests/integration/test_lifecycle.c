/* test_lifecycle.c -- signals a running connector gets from its service
 * manager: SIGTERM while /metrics is scraped in a tight loop (the listener
 * must stop before what it renders is freed; meaningful under ASan, where
 * the spawned connector is sanitized), and SIGHUP, which re-reads the log
 * settings and reopens the log file instead of ending the process. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"

static it_env_t g_env;

typedef struct {
    it_bus_t bus;
    it_proc_t conn;
    char dir[256]; /* config and log files */
} fx_t;

static fx_t F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    ck_assert_int_eq(it_bus_open(&g_env, &F.bus, true), 0);
    snprintf(F.dir, sizeof F.dir, "/tmp/hms-it-lifecycle-%d", (int)getpid());
    mkdir(F.dir, 0700);
}

static void fx_teardown(void)
{
    it_proc_kill(&F.conn);
    it_bus_close(&g_env, &F.bus);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", F.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "lifecycle: could not remove %s\n", F.dir);
}

static void spawn_run(const char *tag, const char *const extra[])
{
    ck_assert_int_eq(it_conn_start(&g_env, &F.conn, tag, F.bus.slot, F.bus.exchange, extra), 0);
    ck_assert_msg(it_pg_wait_slot_active(g_env.pg, F.bus.slot, 30000) == 0,
                  "%s did not start streaming", tag);
}

/* Inserts n rows in region tag and waits until n events arrive. */
static void insert_and_receive(int n, const char *tag)
{
    ck_assert_int_eq(it_pg_exec(g_env.pg,
                                "INSERT INTO incidents (region, summary) "
                                "SELECT '%s', 'lifecycle ' || g FROM generate_series(1, %d) g",
                                tag, n),
                     0);
    for (int got = 0; got < n;) {
        it_msg_t m;
        int rc = it_amqp_get(&F.bus.amqp, 15000, &m);
        ck_assert_msg(rc == 1, "only %d of %d events arrived (%s)", got, n, tag);
        it_msg_free(&m);
        got++;
    }
}

/* The sanitizers' reports, which a sanitized connector writes to stderr:
 * the log its spawner keeps (what), or its own log_file.  Frees text. */
static void assert_no_report(char *text, const char *what)
{
    ck_assert_msg(text != NULL, "cannot read %s", what);
    bool bad = strstr(text, "AddressSanitizer") || strstr(text, "runtime error:") ||
               strstr(text, "LeakSanitizer");
    if (bad)
        fprintf(stderr, "---- %s ----\n%s---- end ----\n", what, text);
    free(text);
    ck_assert_msg(!bad, "%s holds a sanitizer report", what);
}

static void assert_clean_log(const it_proc_t *p)
{
    assert_no_report(it_proc_output(p), p->log);
}

/* ---- SIGTERM while scrapers hammer /metrics ---- */

typedef struct {
    int port;
    atomic_bool stop;
    atomic_long answered;
} scrapers_t;

static void *scrape_loop(void *arg)
{
    scrapers_t *s = arg;
    char body[16384];
    while (!atomic_load(&s->stop))
        if (it_http_get("127.0.0.1", s->port, "/metrics", body, sizeof body) == 200)
            atomic_fetch_add(&s->answered, 1);
    return NULL;
}

START_TEST(test_sigterm_during_scrapes)
{
    enum { ROUNDS = 4, THREADS = 4 };
    for (int round = 0; round < ROUNDS; round++) {
        scrapers_t s = {.port = it_free_port()};
        char listen[64], tag[32];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", s.port);
        snprintf(tag, sizeof tag, "sigterm-%d", round);
        const char *const extra[] = {"--metrics", listen, NULL};
        spawn_run(tag, extra);
        /* Published events put their type names into what /metrics renders. */
        insert_and_receive(20, tag);
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++)
            ck_assert_int_eq(pthread_create(&th[i], NULL, scrape_loop, &s), 0);
        it_sleep_ms(300);
        it_proc_signal(&F.conn, SIGTERM);
        int rc = it_proc_wait(&F.conn, 30000);
        atomic_store(&s.stop, true);
        for (int i = 0; i < THREADS; i++)
            pthread_join(th[i], NULL);
        assert_clean_log(&F.conn);
        ck_assert_msg(rc == 0, "round %d: the connector exited %d after SIGTERM", round, rc);
        ck_assert_msg(atomic_load(&s.answered) > 0, "round %d: no scrape was answered", round);
    }
}
END_TEST

/* ---- SIGHUP: reload the log settings, reopen the log file ---- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Waits until the file at path holds needle; false after timeout_ms. */
static bool wait_for_text(const char *path, const char *needle, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    do {
        char *text = read_file(path);
        bool found = text != NULL && strstr(text, needle) != NULL;
        free(text);
        if (found)
            return true;
        it_sleep_ms(100);
    } while (it_now_ms() < deadline);
    return false;
}

START_TEST(test_sighup_reloads)
{
    char config[300], logf[300], rotated[300];
    snprintf(config, sizeof config, "%s/hms-sync.ini", F.dir);
    snprintf(logf, sizeof logf, "%s/hms-sync.log", F.dir);
    snprintf(rotated, sizeof rotated, "%s/hms-sync.log.1", F.dir);
    write_file(config, "log_level = info\n");
    const char *const extra[] = {"--config", config, "--log_file", logf, NULL};
    spawn_run("sighup", extra);
    insert_and_receive(3, "hup-a");
    ck_assert_msg(wait_for_text(logf, "level=info", 10000), "nothing logged to %s", logf);
    char *before = read_file(logf);
    ck_assert_ptr_null(strstr(before, "level=debug"));
    free(before);

    /* A reload that turns on debug logging: the process goes on streaming. */
    write_file(config, "log_level = debug\n");
    it_proc_signal(&F.conn, SIGHUP);
    ck_assert_msg(wait_for_text(logf, "reloaded", 10000), "no reload was logged");
    insert_and_receive(3, "hup-b");
    ck_assert_msg(wait_for_text(logf, "level=debug", 10000), "log_level = debug not applied");
    ck_assert_int_eq(it_proc_wait(&F.conn, 0), -1);

    /* Rotation: the file is moved away, SIGHUP opens a new one. */
    ck_assert_int_eq(rename(logf, rotated), 0);
    it_proc_signal(&F.conn, SIGHUP);
    ck_assert_msg(wait_for_text(logf, "reloaded", 10000), "SIGHUP did not reopen %s", logf);
    insert_and_receive(3, "hup-c");

    /* A reload that cannot be applied keeps the old settings and says so. */
    write_file(config, "log_level = shouting\n");
    it_proc_signal(&F.conn, SIGHUP);
    ck_assert_msg(wait_for_text(logf, "keeping the current settings", 10000),
                  "a bad reload was not reported");
    insert_and_receive(2, "hup-d");

    it_proc_signal(&F.conn, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&F.conn, 30000), 0);
    assert_clean_log(&F.conn);
    assert_no_report(read_file(rotated), rotated);
    assert_no_report(read_file(logf), logf);
}
END_TEST

static Suite *lifecycle_suite(void)
{
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("signals");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_sigterm_during_scrapes);
    tcase_add_test(tc, test_sighup_reloads);
    suite_add_tcase(s, tc);
    return s;
}

IT_MAIN(.name = "lifecycle", .env = &g_env, .suite = lifecycle_suite)
