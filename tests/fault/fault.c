/* fault.c -- the fault suite: runs the real connector against PostgreSQL and
 * RabbitMQ under load, injects faults (kill -9, broker restart and kill,
 * PostgreSQL fast and immediate shutdown, network stall/drop/reset through
 * a proxy, broker nack and unroutable, a huge transaction, poison rows),
 * and compares everything consumed with the ledger of committed changes.
 *
 *   fault_suite [--long] [--seed N] [--only NAME[,NAME]] [--results FILE]
 *               [--break-checker drop|reorder]
 *
 * Prints a summary table; exits 0 when every scenario passed.  Scenarios
 * that the integration tests already cover (memory alarm, slot lost or
 * dropped) are cited in the table, not run again. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"

it_env_t g_env;
int g_break;

static bool g_long;
static bool g_cluster; /* --cluster: the cluster scenarios instead */
static unsigned g_seed;
static const char *g_only;
static char g_scratch[512];   /* the shared servers' scratch directory */
static bool g_broker_changed; /* max_message_size lowered: restore at exit */
static bool g_app_stopped;    /* stop_app issued: start_app at exit */
static bool g_broker_killed;  /* beam killed: servers.sh start at exit */
static fault_row_t g_rows[32];
static int g_nrows;

#define MAX_MESSAGE_SIZE_DEFAULT "134217728"

int fault_rnd(int lo, int hi)
{
    return lo + rand() % (hi - lo + 1);
}

static bool want(const char *name)
{
    if (!g_only)
        return true;
    size_t n = strlen(name);
    for (const char *p = g_only; (p = strstr(p, name)) != NULL; p += n)
        if ((p == g_only || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

void fault_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fault: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- the shared broker, put back in every path ---- */

static int servers_start(void)
{
    char script[600];
    snprintf(script, sizeof script, "%s/tests/servers.sh", HMS_SOURCE_DIR);
    setenv("HMS_SCRATCH", g_scratch, 1);
    const char *argv[] = {"/bin/bash", script, "start", NULL};
    for (int attempt = 0; attempt < 3; attempt++)
        if (it_cmd_run(&g_env, "servers-start", 240000, argv) == 0)
            return 0;
    return -1;
}

static void restore_broker(void)
{
    if (g_broker_killed && servers_start() == 0)
        g_broker_killed = false;
    if (g_app_stopped && it_rabbitmqctl(&g_env, 60000, "start_app", NULL) == 0)
        g_app_stopped = false;
    if (g_broker_changed &&
        it_rabbitmqctl(&g_env, 30000, "eval",
                       "application:set_env(rabbit, max_message_size, " MAX_MESSAGE_SIZE_DEFAULT
                       ").",
                       NULL) == 0)
        g_broker_changed = false;
}

static void on_fatal_signal(int sig)
{
    (void)sig;
    exit(3); /* atexit handlers restore the broker and stop clusters */
}

/* ---- the connector ---- */

static char *proc_log(const it_proc_t *p)
{
    char *s = it_proc_output(p);
    return s ? s : strdup("");
}

int fault_count_in_log(const it_proc_t *p, const char *needle)
{
    char *s = proc_log(p);
    int n = 0;
    for (char *q = s; (q = strstr(q, needle)) != NULL; q += strlen(needle))
        n++;
    free(s);
    return n;
}

void fault_dump_tail(const it_proc_t *p, const char *what)
{
    char *s = proc_log(p);
    size_t len = strlen(s);
    const char *from = len > 3000 ? s + len - 3000 : s;
    fprintf(stderr, "---- %s (%s), last lines ----\n%s---- end ----\n", what, p->log, from);
    free(s);
}

static int conn_start(fault_sc_t *S)
{
    char window[16], tag[96];
    snprintf(window, sizeof window, "%d", S->window);
    snprintf(tag, sizeof tag, "fault-%s-%d", S->name, ++S->conn_starts);
    const char *argv[48] = {"run",        "--pg",
                            S->conn_pg,   "--amqp",
                            S->conn_amqp, "--slot",
                            S->slot,      "--exchange",
                            S->exchange,  "--window",
                            window,       "--retry_min",
                            "100ms",      "--retry_max",
                            "1s",         "--feedback_interval",
                            "1s",         "--replication_timeout",
                            "5s",         "--heartbeat",
                            "2s",         "--slot_wait",
                            "60s"};
    size_t n = 0;
    while (argv[n])
        n++;
    for (size_t i = 0; S->extra[i] && n < 47; i++)
        argv[n++] = S->extra[i];
    argv[n] = NULL;
    return it_proc_spawn(&g_env, &S->conn, tag, argv);
}

/* ---- fixture ---- */

void fault_sc_init(fault_sc_t *S, const char *name, const char *super, const char *conn_pg)
{
    memset(S, 0, sizeof *S);
    S->name = name;
    pthread_mutex_init(&S->led.mu, NULL);
    pthread_mutex_init(&S->arr.mu, NULL);
    snprintf(S->super, sizeof S->super, "%s", super);
    snprintf(S->conn_pg, sizeof S->conn_pg, "%s", conn_pg);
    snprintf(S->conn_amqp, sizeof S->conn_amqp, "%s", g_env.amqp_url);
    snprintf(S->slot, sizeof S->slot, "hms_fault_%ld_%u", (long)getpid(), ++g_env.seq);
    snprintf(S->exchange, sizeof S->exchange, "hms.fault.%ld.%u", (long)getpid(), ++g_env.seq);
    snprintf(S->queue, sizeof S->queue, "%s.check", S->exchange);
    S->window = 256;
    S->lg_pace_ms = 30;
    S->lg_max_rows = 1000;
    S->sample_every = 10;
}

/* The event source of the database S->super names. */
static int sc_source(fault_sc_t *S)
{
    if (!fault_admin_ok(S))
        return -1;
    char *sysid = it_pg_value(S->admin, "SELECT system_identifier FROM pg_control_system()");
    char *db = it_pg_value(S->admin, "SELECT current_database()");
    if (sysid && db)
        snprintf(S->source, sizeof S->source, "/hms-ehr/%s/%s/public.incidents", sysid, db);
    int rc = sysid && db ? 0 : -1;
    free(sysid);
    free(db);
    return rc;
}

static int declare_queue(fault_sc_t *S)
{
    it_amqp_t a;
    if (it_amqp_open(&a, g_env.amqp_url) != 0)
        return -1;
    int rc = it_amqp_declare_exchange(&a, S->exchange);
    if (rc == 0) {
        amqp_table_entry_t e[3];
        int n = 0;
        if (S->quorum) {
            e[n].key = amqp_cstring_bytes("x-queue-type");
            e[n].value.kind = AMQP_FIELD_KIND_UTF8;
            e[n].value.value.bytes = amqp_cstring_bytes("quorum");
            n++;
        }
        if (S->queue_max_length > 0) {
            e[n].key = amqp_cstring_bytes("x-max-length");
            e[n].value.kind = AMQP_FIELD_KIND_I64;
            e[n].value.value.i64 = S->queue_max_length;
            n++;
            e[n].key = amqp_cstring_bytes("x-overflow");
            e[n].value.kind = AMQP_FIELD_KIND_UTF8;
            e[n].value.value.bytes = amqp_cstring_bytes("reject-publish");
            n++;
        }
        amqp_table_t args = {n, e};
        amqp_queue_declare(a.conn, 1, amqp_cstring_bytes(S->queue), 0, 1, 0, 0, args);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(a.conn);
        rc = r.reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
        snprintf(a.queue, sizeof a.queue, "%s", S->queue);
        if (rc == 0)
            rc = it_amqp_bind(&a, S->exchange);
    }
    it_amqp_close(&a);
    return rc;
}

/* Binds or unbinds the checker's queue (an unroutable exchange). */
static int set_binding(fault_sc_t *S, bool bound)
{
    it_amqp_t a;
    if (it_amqp_open(&a, g_env.amqp_url) != 0)
        return -1;
    snprintf(a.queue, sizeof a.queue, "%s", S->queue);
    int rc;
    if (bound) {
        rc = it_amqp_bind(&a, S->exchange);
    } else {
        amqp_queue_unbind(a.conn, 1, amqp_cstring_bytes(S->queue), amqp_cstring_bytes(S->exchange),
                          amqp_cstring_bytes("#"), amqp_empty_table);
        rc = amqp_get_rpc_reply(a.conn).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
    }
    it_amqp_close(&a);
    return rc;
}

/* Starts checker, connector and (unless no_load) the load generator. */
int fault_sc_start(fault_sc_t *S, bool load)
{
    if (sc_source(S) != 0 || declare_queue(S) != 0) {
        fault_say("%s: cannot set up the source or the queue", S->name);
        return -1;
    }
    pthread_create(&S->ck_thr, NULL, fault_checker_main, S);
    S->ck_running = true;
    if (conn_start(S) != 0)
        return -1;
    /* The slot is active while CREATE_REPLICATION_SLOT still waits for a
     * consistent point; a transaction committed before that point is not
     * in the stream.  Streaming has begun once the connector says so. */
    double deadline = it_now_ms() + 60000;
    while (fault_count_in_log(&S->conn, "streaming from replication slot") == 0 &&
           it_now_ms() < deadline)
        it_sleep_ms(50);
    if (it_pg_wait_slot_active(S->admin, S->slot, 60000) != 0 ||
        fault_count_in_log(&S->conn, "streaming from replication slot") == 0) {
        fault_dump_tail(&S->conn, "connector");
        return -1;
    }
    if (load)
        fault_sc_start_load(S);
    return 0;
}

void fault_sc_start_load(fault_sc_t *S)
{
    pthread_create(&S->lg_thr, NULL, fault_loadgen_main, S);
    S->lg_running = true;
}

void fault_sc_stop_load(fault_sc_t *S)
{
    if (S->lg_running) {
        S->lg_stop = 1;
        pthread_join(S->lg_thr, NULL);
        S->lg_running = false;
    }
}

static void lg_pause(fault_sc_t *S, bool on)
{
    S->lg_pause = on;
    for (int i = 0; on && S->lg_running && !S->lg_paused && i < 3000; i++)
        it_sleep_ms(10);
}

/* Stops the load, checks, records the row, tears down.  `alive`: the
 * connector should still be running. */
void fault_sc_finish(fault_sc_t *S, int trials, bool alive, int check_timeout_ms)
{
    fault_sc_stop_load(S);
    fault_row_t *row = &g_rows[g_nrows++];
    fault_check(S, check_timeout_ms, row);
    row->trials = trials;
    row->max_recovery_ms = S->max_recovery_ms;
    row->max_detect_ms = S->max_detect_ms;
    size_t max_tx = S->led.max_tx ? S->led.max_tx : 1;
    row->dup_bound =
        S->dups_unbounded ? 0 : (size_t)(S->faults ? S->faults : 1) * ((size_t)S->window + max_tx);
    row->connector_died = alive && it_proc_wait(&S->conn, 0) >= 0;
    if (S->arr.finding_bad)
        fault_note(S, "FINDING: %zu events of rows the contract does not cover fail the checks: %s",
                   S->arr.finding_bad, S->arr.first_finding);
    snprintf(row->note, sizeof row->note, "%s", S->note);
    row->pass = row->lost == 0 && row->unknown == 0 && row->id_conflicts == 0 &&
                row->last_inversions == 0 && row->contract_bad == 0 && !row->connector_died &&
                (row->dup_bound == 0 || row->dups <= row->dup_bound) && row->changes > 0 &&
                strstr(S->note, "FAIL") == NULL;
    if (!row->pass || row->connector_died)
        fault_dump_tail(&S->conn, "connector");
    fault_say("%s: %s -- %zu changes (%zu tx, %zu uncertain, %zu aborted), %zu events, lost %zu, "
              "dups %zu (bound %zu), redelivered %zu, unknown %zu, conflicts %zu, order inversions "
              "first %zu last %zu, max recovery %.0f ms",
              S->name, row->pass ? "PASS" : "FAIL", row->changes, S->led.n_tx,
              S->led.n_uncertain_tx, S->led.n_aborted_tx, row->events, row->lost, row->dups,
              row->dup_bound, row->redeliveries, row->unknown, row->id_conflicts,
              row->first_inversions, row->last_inversions, row->max_recovery_ms);

    it_proc_kill(&S->conn);
    if (S->ck_running) {
        S->ck_stop = 1;
        pthread_join(S->ck_thr, NULL);
    }
    it_amqp_t a;
    if (it_amqp_open(&a, g_env.amqp_url) == 0) {
        it_amqp_delete_queue(&a, S->queue);
        it_amqp_delete_exchange(&a, S->exchange);
        it_amqp_close(&a);
    }
    if (fault_admin_ok(S))
        it_pg_drop_slot(S->admin, S->slot);
    if (S->admin)
        PQfinish(S->admin);
    free(S->led.v);
    free(S->arr.v);
}

void fault_note(fault_sc_t *S, const char *fmt, ...)
{
    size_t used = strlen(S->note);
    if (used && used + 3 < sizeof S->note)
        S->note[used++] = ';', S->note[used++] = ' ', S->note[used] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(S->note + used, sizeof S->note - used, fmt, ap);
    va_end(ap);
    fault_say("%s: %s", S->name, S->note + used);
}

double fault_recover(fault_sc_t *S, double since, const char *what)
{
    double ms = fault_marker(S, since, 120000);
    if (ms < 0) {
        fault_note(S, "FAIL: no recovery within 120 s after %s", what);
        fault_dump_tail(&S->conn, "connector");
    } else {
        fault_say("%s: %s: recovered in %.0f ms", S->name, what, ms);
    }
    return ms;
}

/* ---- (1) kill -9 of the connector ---- */

static void scenario_kill9(void)
{
    fault_sc_t S;
    fault_sc_init(&S, "kill9-connector", g_env.super_conninfo, g_env.conninfo);
    if (fault_sc_start(&S, true) != 0) {
        fault_note(&S, "FAIL: setup");
        fault_sc_finish(&S, 0, true, 1000);
        return;
    }
    int trials = getenv("FAULT_KILL_TRIALS") ? atoi(getenv("FAULT_KILL_TRIALS"))
                 : g_long                    ? 200
                                             : 20;
    for (int t = 0; t < trials; t++) {
        it_sleep_ms(fault_rnd(200, 1500));
        it_proc_signal(&S.conn, SIGKILL);
        it_proc_wait(&S.conn, 10000);
        S.faults++;
        double at = it_now_ms();
        it_sleep_ms(fault_rnd(0, 300));
        if (conn_start(&S) != 0) {
            fault_note(&S, "FAIL: restart");
            break;
        }
        if (fault_recover(&S, at, "kill -9") < 0)
            break;
    }
    fault_note(&S, "%d kills at random points (0.2-1.5 s apart) under load", S.faults);
    fault_sc_finish(&S, S.faults, true, 120000);
}

/* ---- (2) RabbitMQ restarted and killed ---- */

static pid_t beam_pid(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/rabbitmq/rabbitmq.pid", g_scratch);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

static void scenario_broker(void)
{
    fault_sc_t S;
    fault_sc_init(&S, "rabbitmq-restart-kill", g_env.super_conninfo, g_env.conninfo);
    if (fault_sc_start(&S, true) != 0) {
        fault_note(&S, "FAIL: setup");
        fault_sc_finish(&S, 0, true, 1000);
        return;
    }
    int rounds = g_long ? 3 : 1;
    for (int r = 0; r < rounds; r++) {
        it_sleep_ms(fault_rnd(1000, 3000));
        g_app_stopped = true;
        if (it_rabbitmqctl(&g_env, 60000, "stop_app", NULL) != 0)
            fault_note(&S, "FAIL: stop_app");
        S.faults++;
        it_sleep_ms(fault_rnd(1000, 4000));
        if (it_rabbitmqctl(&g_env, 120000, "start_app", NULL) == 0)
            g_app_stopped = false;
        else
            fault_note(&S, "FAIL: start_app");
        fault_recover(&S, it_now_ms(), "stop_app/start_app");

        it_sleep_ms(fault_rnd(1000, 3000));
        pid_t pid = beam_pid();
        if (pid <= 0 || kill(pid, 0) != 0) {
            fault_note(&S, "FAIL: no beam pid in %s/rabbitmq/rabbitmq.pid", g_scratch);
            break;
        }
        g_broker_killed = true;
        kill(pid, SIGKILL);
        S.faults++;
        for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
            it_sleep_ms(50);
        it_sleep_ms(fault_rnd(500, 3000));
        double t0 = it_now_ms();
        if (servers_start() != 0) {
            fault_note(&S, "FAIL: tests/servers.sh start did not bring RabbitMQ back");
            break;
        }
        g_broker_killed = false;
        fault_say("%s: broker back after kill -9 in %.0f ms", S.name, it_now_ms() - t0);
        fault_recover(&S, it_now_ms(), "kill -9 of beam + restart");
    }
    fault_note(&S, "%d stop_app/start_app and %d kill -9 of the broker node, mid-stream", rounds,
               rounds);
    fault_sc_finish(&S, S.faults, true, 120000);
}

/* ---- (3) PostgreSQL fast and immediate shutdown (throwaway cluster) ---- */

static int pg_ctl(it_cluster_t *c, const char *action, const char *mode)
{
    char bin[300];
    const char *b = getenv("HMS_TEST_PGBIN");
    snprintf(bin, sizeof bin, "%s/pg_ctl", b && *b ? b : "/usr/lib/postgresql/15/bin");
    char logfile[400];
    snprintf(logfile, sizeof logfile, "%s/server.log", c->dir);
    const char *argv[16];
    size_t n = 0;
    if (geteuid() == 0) {
        argv[n++] = "/usr/sbin/runuser";
        argv[n++] = "-u";
        argv[n++] = "postgres";
        argv[n++] = "--";
    }
    argv[n++] = bin;
    argv[n++] = "-D";
    argv[n++] = c->datadir;
    argv[n++] = "-w";
    if (mode) {
        argv[n++] = "-m";
        argv[n++] = mode;
    } else {
        argv[n++] = "-l";
        argv[n++] = logfile;
    }
    argv[n++] = action;
    argv[n] = NULL;
    return it_cmd_run(&g_env, "pg_ctl", 120000, argv);
}

static void scenario_pg_restart(void)
{
    static it_cluster_t cl;
    fault_sc_t S;
    char super[IT_CONNINFO_MAX], conn[IT_CONNINFO_MAX];
    /* synchronous_commit on: an acknowledged COMMIT must survive the crash,
     * or the ledger would count a change PostgreSQL itself lost. */
    if (it_cluster_start(&g_env, &cl, NULL,
                         "wal_level = logical\nsynchronous_commit = on\n"
                         "wal_sender_timeout = 20s\n") != 0) {
        fault_sc_init(&S, "postgres-fast-immediate", "", "");
        fault_note(&S, "FAIL: throwaway cluster");
        g_rows[g_nrows] = (fault_row_t){0};
        snprintf(g_rows[g_nrows].scenario, sizeof g_rows[0].scenario, "%s", S.name);
        snprintf(g_rows[g_nrows].note, sizeof g_rows[0].note, "%s", S.note);
        g_nrows++;
        return;
    }
    PGconn *a = it_pg_connect(cl.super_conninfo);
    int rc = a ? it_pg_exec(a, "CREATE DATABASE hms") : -1;
    PQfinish(a);
    it_cluster_conninfo(&cl, "postgres", "hms", super, sizeof super);
    it_cluster_conninfo(&cl, "hms_sync", "hms", conn, sizeof conn);
    it_proc_t mig;
    const char *argv[] = {"migrate", "--pg", super, NULL};
    if (rc == 0 && it_proc_spawn(&g_env, &mig, "fault-migrate", argv) == 0)
        rc = it_proc_wait(&mig, 120000);
    fault_sc_init(&S, "postgres-fast-immediate", super, conn);
    if (rc != 0 || fault_sc_start(&S, true) != 0) {
        fault_note(&S, "FAIL: setup");
        fault_sc_finish(&S, 0, true, 1000);
        it_cluster_stop(&cl);
        return;
    }
    int rounds = g_long ? 4 : 1;
    for (int r = 0; r < rounds; r++) {
        const char *modes[] = {"fast", "immediate"};
        for (int m = 0; m < 2; m++) {
            it_sleep_ms(fault_rnd(1000, 3000));
            if (pg_ctl(&cl, "stop", modes[m]) != 0)
                fault_note(&S, "FAIL: pg_ctl stop -m %s", modes[m]);
            S.faults++;
            it_sleep_ms(fault_rnd(500, 3000));
            if (pg_ctl(&cl, "start", NULL) != 0) {
                fault_note(&S, "FAIL: pg_ctl start after %s", modes[m]);
                break;
            }
            char what[64];
            snprintf(what, sizeof what, "%s shutdown + restart", modes[m]);
            fault_recover(&S, it_now_ms(), what);
        }
    }
    /* After a crash the slot comes back at its last checkpointed position,
     * which may be behind what the connector had confirmed: the resend is
     * not bounded by the window. */
    S.dups_unbounded = true;
    fault_note(&S,
               "%d fast + %d immediate shutdowns of a throwaway cluster; duplicates after a crash "
               "are bounded by the slot's last checkpoint, not the window",
               rounds, rounds);
    fault_sc_finish(&S, S.faults, true, 120000);
    it_cluster_stop(&cl);
}

/* ---- (4) network faults through the proxy ---- */

typedef struct {
    it_proc_t proc;
    int port;
    char control[600];
    long seq;
} proxy_t;

static int proxy_start(proxy_t *p, const char *target_port)
{
    memset(p, 0, sizeof *p);
    p->port = it_free_port();
    snprintf(p->control, sizeof p->control, "%s/fault-proxy-%ld-%d.ctl", g_env.logdir,
             (long)getpid(), p->port);
    unlink(p->control);
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    const char *argv[] = {FAULT_PROXY_BIN, port, "127.0.0.1", target_port, p->control, NULL};
    if (it_cmd_spawn(&g_env, &p->proc, "fault-proxy", argv) != 0)
        return -1;
    it_sleep_ms(200);
    return 0;
}

/* Sets the proxy's mode and waits until it applied it. */
static int proxy_mode(proxy_t *p, const char *mode)
{
    char tmp[620], ack[620];
    snprintf(tmp, sizeof tmp, "%s.tmp", p->control);
    snprintf(ack, sizeof ack, "%s.ack", p->control);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%ld %s\n", ++p->seq, mode);
    fclose(f);
    rename(tmp, p->control);
    for (int i = 0; i < 200; i++) {
        f = fopen(ack, "r");
        long got = 0;
        if (f) {
            if (fscanf(f, "%ld", &got) != 1)
                got = 0;
            fclose(f);
        }
        if (got == p->seq)
            return 0;
        it_sleep_ms(10);
    }
    return -1;
}

static void proxy_stop(proxy_t *p)
{
    it_proc_signal(&p->proc, SIGTERM);
    if (it_proc_wait(&p->proc, 3000) < 0)
        it_proc_kill(&p->proc);
    char s[620];
    unlink(p->control);
    snprintf(s, sizeof s, "%s.ack", p->control);
    unlink(s);
}

/* One network scenario: `side` "pg" or "amqp". */
static void scenario_net(const char *side)
{
    bool pg = strcmp(side, "pg") == 0;
    proxy_t px;
    char target[16];
    if (pg)
        snprintf(target, sizeof target, "%s", g_env.port);
    else {
        const char *colon = strrchr(g_env.amqp_url, ':');
        snprintf(target, sizeof target, "%d", colon ? atoi(colon + 1) : 5672);
    }
    fault_sc_t S;
    fault_sc_init(&S, pg ? "net-proxy-postgres" : "net-proxy-rabbitmq", g_env.super_conninfo,
                  g_env.conninfo);
    if (proxy_start(&px, target) != 0) {
        fault_note(&S, "FAIL: proxy");
        fault_sc_finish(&S, 0, true, 1000);
        return;
    }
    if (pg) {
        snprintf(S.conn_pg, sizeof S.conn_pg, "%.900s port=%d", g_env.conninfo, px.port);
    } else {
        snprintf(S.conn_amqp, sizeof S.conn_amqp, "amqp://guest:guest@127.0.0.1:%d/", px.port);
    }
    if (fault_sc_start(&S, true) != 0) {
        fault_note(&S, "FAIL: setup");
        proxy_stop(&px);
        fault_sc_finish(&S, 0, true, 1000);
        return;
    }
    const char *lost_line =
        pg ? "lost the PostgreSQL replication connection" : "lost the RabbitMQ connection";
    /* Detection bounds: replication_timeout 5 s (+1 s poll) for PostgreSQL;
     * for AMQP rabbitmq-c gives up after two missed 2 s heartbeats. */
    double bound_ms = pg ? 7000 : 7000;
    int rounds = g_long ? 5 : 1;
    const char *modes[] = {"stall", "drop", "reset"};
    for (int r = 0; r < rounds; r++)
        for (int m = 0; m < 3; m++) {
            it_sleep_ms(fault_rnd(1000, 3000));
            int before = fault_count_in_log(&S.conn, lost_line);
            double t0 = it_now_ms();
            if (proxy_mode(&px, modes[m]) != 0)
                fault_note(&S, "FAIL: proxy did not take mode %s", modes[m]);
            S.faults++;
            if (strcmp(modes[m], "stall") == 0) {
                double detect = -1;
                double hold = t0 + bound_ms + fault_rnd(1000, 3000);
                while (it_now_ms() < hold) {
                    if (detect < 0 && fault_count_in_log(&S.conn, lost_line) > before)
                        detect = it_now_ms() - t0;
                    it_sleep_ms(100);
                }
                if (detect < 0)
                    fault_note(&S, "FAIL: silent stall not detected within %.0f ms", bound_ms);
                else if (detect > S.max_detect_ms)
                    S.max_detect_ms = detect;
                fault_say("%s: stall detected after %.0f ms", S.name, detect);
                proxy_mode(&px, "pass");
            }
            char what[32];
            snprintf(what, sizeof what, "proxy %s", modes[m]);
            fault_recover(&S, it_now_ms(), what);
        }
    int pg_lost = fault_count_in_log(&S.conn, "lost the PostgreSQL replication connection");
    int amqp_lost = fault_count_in_log(&S.conn, "lost the RabbitMQ connection");
    fault_note(&S,
               "stall (held past the bound), drop, reset x%d; connector saw %d PostgreSQL and %d "
               "RabbitMQ losses",
               rounds, pg_lost, amqp_lost);
    /* Reconnecting to PostgreSQL is a step of the loop, so a cut-off
     * PostgreSQL must never cost the broker connection (heartbeats 2 s
     * here); tests/integration/test_pg_outage.c shows it in isolation. */
    if (pg && amqp_lost > 0)
        fault_note(&S,
                   "FAIL: the broker dropped the AMQP connection %d times while only PostgreSQL "
                   "was cut off: the event loop stalled past the heartbeat",
                   amqp_lost);
    fault_sc_finish(&S, S.faults, true, 120000);
    proxy_stop(&px);
}

/* ---- (6) nack (reject-publish) and unroutable ---- */

static void scenario_refusals(void)
{
    fault_sc_t S;
    fault_sc_init(&S, "nack-unroutable", g_env.super_conninfo, g_env.conninfo);
    S.queue_max_length = 500;
    if (fault_sc_start(&S, true) != 0) {
        fault_note(&S, "FAIL: setup");
        fault_sc_finish(&S, 0, true, 1000);
        return;
    }
    int rounds = g_long ? 4 : 1;
    for (int r = 0; r < rounds; r++) {
        it_sleep_ms(fault_rnd(500, 2000));
        S.ck_pause = 1; /* the queue fills to its limit: basic.nack */
        S.faults++;
        it_sleep_ms(fault_rnd(3000, 6000));
        S.ck_pause = 0;
        fault_recover(&S, it_now_ms(), "nack (queue full) released");

        it_sleep_ms(fault_rnd(500, 2000));
        if (set_binding(&S, false) != 0)
            fault_note(&S, "FAIL: unbind");
        S.faults++;
        it_sleep_ms(fault_rnd(3000, 6000));
        if (set_binding(&S, true) != 0)
            fault_note(&S, "FAIL: rebind");
        fault_recover(&S, it_now_ms(), "unroutable released");
    }
    int nacked = fault_count_in_log(&S.conn, "basic.nack"),
        returned = fault_count_in_log(&S.conn, "basic.return");
    if (nacked == 0 || returned == 0)
        fault_note(&S, "FAIL: the faults did not bite (nack warnings %d, return warnings %d)",
                   nacked, returned);
    fault_note(&S,
               "queue x-max-length 500 reject-publish with the consumer paused 3-6 s, then the "
               "queue unbound 3-6 s, x%d; refusal warnings: nack %d, return %d",
               rounds, nacked, returned);
    fault_sc_finish(&S, S.faults, true, 120000);
}

/* ---- (8) one huge transaction ---- */

static long vm_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, strlen(field)) == 0)
            kb = atol(line + strlen(field) + 1);
    if (f)
        fclose(f);
    return kb;
}

static void scenario_big_tx(void)
{
    fault_sc_t S;
    fault_sc_init(&S, g_long ? "huge-tx-1000000" : "huge-tx-100000", g_env.super_conninfo,
                  g_env.conninfo);
    S.window = 1000;   /* the default */
    S.lg_pace_ms = 50; /* small transactions around it */
    S.lg_max_rows = 20;
    S.sample_every = 100; /* schema-check a sample: the checker must keep up */
    if (fault_sc_start(&S, true) != 0) {
        fault_note(&S, "FAIL: setup");
        fault_sc_finish(&S, 0, true, 1000);
        return;
    }
    int rows = g_long ? 1000000 : 100000;
    it_sleep_ms(2000);
    long base = vm_kb(S.conn.pid, "VmHWM:");
    char sql[400];
    snprintf(sql, sizeof sql,
             "INSERT INTO incidents (region, summary, reported_by) SELECT 'big' || (g %% 3), "
             "'bulk row ' || g || ' ' || md5(g::text), 'bulk' FROM generate_series(1, %d) g "
             "RETURNING id, version",
             rows);
    double t0 = it_now_ms();
    if (fault_admin_change(&S, 'C', sql) != 0)
        fault_note(&S, "FAIL: the big insert failed");
    double committed = it_now_ms();
    double ms = fault_recover(&S, committed, "the big transaction");
    long peak = vm_kb(S.conn.pid, "VmHWM:");
    S.faults = 0;
    fault_note(&S,
               "one INSERT of %d rows (commit took %.0f ms); all through %.0f ms after commit; "
               "connector VmHWM %ld kB before, %ld kB after",
               rows, committed - t0, ms, base, peak);
    if (peak > 512 * 1024)
        fault_note(&S, "FAIL: connector peak RSS above 512 MB");
    fault_sc_finish(&S, 1, true, g_long ? 600000 : 180000);
}

/* ---- (9) poison rows ---- */

static void scenario_poison(void)
{
    fault_sc_t S;
    fault_sc_init(&S, "poison-rows", g_env.super_conninfo, g_env.conninfo);
    S.lg_pace_ms = 30;
    S.lg_max_rows = 50;
    S.sample_every = 1;
    if (fault_sc_start(&S, true) != 0) {
        fault_note(&S, "FAIL: setup");
        fault_sc_finish(&S, 0, true, 1000);
        return;
    }
    /* (a) values the contract maps: each must arrive, correct. */
    static const char *const rows[] = {
        /* larger than frame_max (131072): the body spans frames */
        "INSERT INTO incidents (region, summary) VALUES ('big', repeat('x', 300000)) "
        "RETURNING id, version",
        /* several MB of text that JSON must escape */
        "INSERT INTO incidents (region, summary, reported_by) VALUES ('esc', "
        "repeat(E'\"\\\\\\n\\t\\u00e9\\u2028\\U0001F600<>&''', 250000), E'\\x01\\x1f') "
        "RETURNING id, version",
        /* NULL in every nullable column */
        "INSERT INTO incidents (region, summary, reported_by) VALUES ('nulls', NULL, NULL) "
        "RETURNING id, version",
        /* routing-key characters and odd regions */
        "INSERT INTO incidents (region) VALUES ('a.b*c#d') RETURNING id, version",
        /* an empty region: the harness expects the empty routing word,
         * the connector sends '_' (a contract ambiguity: a finding) */
        "INSERT INTO incidents (region, summary) VALUES ('', 'finding') RETURNING id, version",
        /* a 400-byte region: its routing key would pass AMQP's 255-byte
         * shortstr limit; the source refuses it now (sql/006) */
        "INSERT INTO incidents (region, summary) VALUES (repeat('\\u00e9', 200), 'finding') "
        "RETURNING id, version",
        /* boundary integers: version beyond 2^53, severities 1 and 5 */
        "INSERT INTO incidents (region, severity, version) VALUES ('v', 1, 9007199254740993) "
        "RETURNING id, version",
        "INSERT INTO incidents (region, severity, version) VALUES ('v', 5, 9223372036854775806) "
        "RETURNING id, version",
        /* timestamps at the edges RFC 3339 can express, and beyond */
        "INSERT INTO incidents (region, occurred_at) VALUES ('t', '0001-01-01 00:00:00+00') "
        "RETURNING id, version",
        "INSERT INTO incidents (region, occurred_at) VALUES ('t', '9999-12-31 23:59:59.999999+00') "
        "RETURNING id, version",
        /* beyond RFC 3339: the contract has no encoding for these, and the
         * source refuses them now (sql/006); (c) below sends one through */
        "INSERT INTO incidents (region, summary, occurred_at) VALUES ('t', 'finding', "
        "'infinity') RETURNING id, version",
        "INSERT INTO incidents (region, summary, occurred_at) VALUES ('t', 'finding', "
        "'4713-01-01 00:00:00+00 BC') RETURNING id, version",
    };
    const char *ops = "CCCCCCCCCCCC";
    int applied = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (fault_admin_change(&S, ops[i], rows[i]) == 0)
            applied++;
    /* An update of the big row (a TOASTed value unchanged) and a delete. */
    if (fault_admin_change(&S, 'U',
                           "UPDATE incidents SET status = 'seen' WHERE region IN ('big', 'esc') "
                           "RETURNING id, version") == 0)
        applied++;
    if (fault_admin_change(
            &S, 'D', "DELETE FROM incidents WHERE region = 'nulls' RETURNING id, version") == 0)
        applied++;
    double ms = fault_recover(&S, it_now_ms(), "poison values");
    fault_note(&S,
               "%d poison statements (300 kB and 2 MB text, escapes, NULLs, routing chars, "
               "2^53+1 and 2^63-2 versions, year 1 and 9999, infinity and BC timestamps); later "
               "events through in %.0f ms",
               applied, ms);

    /* (b) a message larger than the broker's max_message_size. */
    if (it_rabbitmqctl(&g_env, 30000, "eval",
                       "application:set_env(rabbit, max_message_size, 1048576).", NULL) == 0) {
        g_broker_changed = true;
        /* The limit is read when a channel opens: restart the connector. */
        it_proc_signal(&S.conn, SIGTERM);
        it_proc_wait(&S.conn, 15000);
        it_proc_kill(&S.conn);
        conn_start(&S);
        it_pg_wait_slot_active(S.admin, S.slot, 60000);
        fault_admin_change(&S, 'C',
                           "INSERT INTO incidents (region, summary) VALUES ('oversize', "
                           "repeat('y', 2000000)) RETURNING id, version");
        double t0 = it_now_ms();
        it_sleep_ms(15000);
        int losses = fault_count_in_log(&S.conn, "lost the RabbitMQ connection");
        bool exited = it_proc_wait(&S.conn, 0) >= 0;
        char *log = proc_log(&S.conn);
        bool says_size = strstr(log, "max size") != NULL || strstr(log, "message_size") != NULL ||
                         strstr(log, "too large") != NULL;
        free(log);
        fault_note(&S,
                   "2 MB event with max_message_size 1 MB: in %.0f s the connector %s, lost the "
                   "broker %d times, %s",
                   (it_now_ms() - t0) / 1000, exited ? "exited" : "kept running", losses,
                   says_size ? "naming the size limit" : "without naming the size limit");
        /* Republishing it forever would hide the cause: the connector must
         * stop with one line naming the size limit (the slot stays before
         * the event, so nothing is lost), and deliver it once the limit
         * is raised. */
        if (!exited || !says_size)
            fault_note(&S,
                       "FAIL: the oversize event did not stop the connector with a line naming "
                       "the size limit (%d reconnects)",
                       losses);
        restore_broker();
        it_proc_kill(&S.conn);
        conn_start(&S);
        fault_recover(&S, it_now_ms(), "limit restored");
    }

    /* (c) a row the contract cannot express, on a source that does not keep
     * it out (its constraint dropped, as where the migrations do not own
     * the column): updated_at = infinity.  The connector publishes a
     * rejection instead of an event and goes on: it keeps running and the
     * slot passes the row with nobody's help. */
    lg_pause(&S, true);
    fault_marker(&S, it_now_ms(), 60000);
    if (it_pg_exec(S.admin, "ALTER TABLE incidents DROP CONSTRAINT IF EXISTS "
                            "incidents_updated_at_finite") != 0)
        fault_note(&S, "FAIL: could not drop the updated_at constraint");
    PGresult *r = PQexec(S.admin, "INSERT INTO incidents (region, updated_at) VALUES "
                                  "('poison', 'infinity') RETURNING id, version");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        fault_change_t c;
        memset(&c, 0, sizeof c);
        snprintf(c.subj, sizeof c.subj, "%s", PQgetvalue(r, 0, 0));
        c.op = 'C';
        c.version = atoll(PQgetvalue(r, 0, 1));
        c.state = CH_SKIPPED; /* a rejection, not an event */
        fault_ledger_add(&S.led, &c, 1);
    } else {
        fault_note(&S, "FAIL: the poison row was not inserted: %s", PQresultErrorMessage(r));
    }
    PQclear(r);
    uint64_t after = it_pg_insert_lsn(S.admin);
    lg_pause(&S, false);
    double t0 = it_now_ms();
    bool passed = it_pg_wait_confirmed(S.admin, S.slot, after, 30000) == 0;
    bool running = it_proc_wait(&S.conn, 0) < 0;
    int rejected = fault_count_in_log(&S.conn, "change rejected");
    if (!passed || !running || rejected < 1)
        fault_note(&S,
                   "FAIL: updated_at=infinity: slot %s the row, connector %s, %d rejections logged",
                   passed ? "passed" : "did not pass", running ? "running" : "exited", rejected);
    else
        fault_note(
            &S,
            "updated_at=infinity: rejected (logged and sent to the rejected exchange), the slot "
            "passed it in %.0f ms, the connector kept running",
            it_now_ms() - t0);
    fault_recover(&S, it_now_ms(), "after the rejected row");
    S.faults = 3;
    fault_sc_finish(&S, 1, true, 120000);
}

/* ---- summary ---- */

static void print_table(FILE *f, bool md)
{
    if (md)
        fputs("| scenario | trials | changes | events | lost | duplicates (bound) | redelivered | "
              "order inv. first/last | contract | max detect ms | max recovery ms | result |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|\n",
              f);
    else
        fprintf(f, "%-26s %6s %8s %8s %5s %18s %6s %10s %5s %8s %9s %s\n", "scenario", "trials",
                "changes", "events", "lost", "dups(bound)", "redel", "inv f/l", "bad", "detect",
                "recovery", "result");
    for (int i = 0; i < g_nrows; i++) {
        fault_row_t *r = &g_rows[i];
        char bound[48], inv[32], det[24], rec[24];
        if (r->dup_bound)
            snprintf(bound, sizeof bound, "%zu (%zu)", r->dups, r->dup_bound);
        else
            snprintf(bound, sizeof bound, "%zu (ckpt)", r->dups);
        snprintf(inv, sizeof inv, "%zu/%zu", r->first_inversions, r->last_inversions);
        snprintf(det, sizeof det, r->max_detect_ms > 0 ? "%.0f" : "-", r->max_detect_ms);
        snprintf(rec, sizeof rec, "%.0f", r->max_recovery_ms);
        const char *res = r->pass ? "PASS" : "FAIL";
        if (md)
            fprintf(f, "| %s | %d | %zu | %zu | %zu | %s | %zu | %s | %zu | %s | %s | %s |\n",
                    r->scenario, r->trials, r->changes, r->events, r->lost, bound, r->redeliveries,
                    inv, r->contract_bad, det, rec, res);
        else
            fprintf(f, "%-26s %6d %8zu %8zu %5zu %18s %6zu %10s %5zu %8s %9s %s\n", r->scenario,
                    r->trials, r->changes, r->events, r->lost, bound, r->redeliveries, inv,
                    r->contract_bad, det, rec, res);
    }
    const char *cited[][2] = {
        {"memory-alarm (5)", "tests/integration/test_reconnect.c memory_alarm: 12 s alarm, "
                             "wal_sender_timeout 5 s"},
        {"slot lost / dropped (7)", "tests/integration/test_cluster_errors.c slot_lost, "
                                    "slot_dropped, slot_recreated"},
    };
    for (size_t i = 0; i < 2; i++) {
        if (md)
            fprintf(f, "| %s | cited | | | | | | | | | | %s |\n", cited[i][0], cited[i][1]);
        else
            fprintf(f, "%-26s cited: %s\n", cited[i][0], cited[i][1]);
    }
}

static void write_results(const char *path, double secs)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fault_say("cannot write %s: %s", path, strerror(errno));
        return;
    }
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    struct utsname u;
    uname(&u);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long mem = (long)((long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGE_SIZE) >> 20);
    fprintf(f,
            "# Fault suite: latest results%s\n\n"
            "Written by `tests/fault/run.sh%s%s` (fault_suite, seed %u) on %s; machine: %s %s, "
            "%ld CPUs, %ld MB RAM; PostgreSQL 15, RabbitMQ 3.10%s, rabbitmq-c 0.11.  Run time "
            "%.0f s.\n\n",
            g_cluster ? " on a three-node RabbitMQ cluster" : "", g_cluster ? " --cluster" : "",
            g_long ? " --long" : "", g_seed, date, u.sysname, u.release, cpus, mem,
            g_cluster ? " (three nodes on this machine, pause_minority, quorum queues)" : "", secs);
    fputs("Columns: *changes* are the committed row changes the load generator recorded "
          "(ground truth, read back with RETURNING; commits whose outcome was unknown are not "
          "counted); *events* the distinct event ids consumed from a durable queue bound to the "
          "scenario's exchange; *lost* committed changes never received; *duplicates* copies "
          "beyond the first that the connector published again, with the bound faults x (window "
          "+ largest transaction) -- `ckpt` where a PostgreSQL crash rewinds the slot to its "
          "last checkpoint; *redelivered* copies the broker redelivered to the checker itself; "
          "*order inv.* per-incident inversions of first arrivals (reported) and of last copies "
          "(must be 0), among the copies not marked redelivered (a redelivered copy comes back "
          "after the checker's own consumer failed, and is noted apart); *contract* events failing "
          "the schemas or the AMQP property checks; "
          "*detect* how long a silent stall went unnoticed; *recovery* from the fault's end "
          "until a change committed then arrived.\n\n",
          f);
    print_table(f, true);
    fputs("\nNotes per scenario:\n\n", f);
    for (int i = 0; i < g_nrows; i++)
        fprintf(f, "- **%s**: %s\n", g_rows[i].scenario, g_rows[i].note);
    fclose(f);
    fault_say("wrote %s", path);
}

/* The scenarios on the scratch servers' one broker. */
static void run_single_broker(void)
{
    if (want("kill9"))
        scenario_kill9();
    if (want("broker"))
        scenario_broker();
    if (want("postgres"))
        scenario_pg_restart();
    if (want("net-pg"))
        scenario_net("pg");
    if (want("net-amqp"))
        scenario_net("amqp");
    if (want("refusals"))
        scenario_refusals();
    if (want("bigtx"))
        scenario_big_tx();
    if (want("poison"))
        scenario_poison();
}

int main(int argc, char **argv)
{
    const char *results = NULL;
    g_seed = (unsigned)time(NULL);
    /* The scenarios check the change stream of a fresh slot, event by
     * event: no initial snapshot of the rows a previous scenario left. */
    setenv("HMS_SYNC_SNAPSHOT", "never", 0);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--long") == 0)
            g_long = true;
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            g_seed = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            g_only = argv[++i];
        else if (strcmp(argv[i], "--results") == 0 && i + 1 < argc)
            results = argv[++i];
        else if (strcmp(argv[i], "--cluster") == 0)
            g_cluster = true;
        else if (strcmp(argv[i], "--break-checker") == 0 && i + 1 < argc)
            g_break = strcmp(argv[++i], "drop") == 0 ? 1 : 2;
        else {
            fprintf(stderr,
                    "usage: %s [--long] [--seed N] [--only a,b] [--results FILE] "
                    "[--break-checker drop|reorder] [--cluster]\n  scenarios: kill9 broker "
                    "postgres net-pg net-amqp refusals bigtx poison\n  with --cluster: "
                    "cluster-kill cluster-leader cluster-partition cluster-rolling\n",
                    argv[0]);
            return 2;
        }
    }
    srand(g_seed);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGINT, on_fatal_signal);
    /* The cluster comes from tests/cluster.sh, which test.sh starts; run by
     * hand without it, the scenarios are skipped like a missing server. */
    if (g_cluster && !fault_cluster_available()) {
        const char *req = getenv("HMS_TEST_REQUIRE_SERVERS");
        fprintf(stderr, "fault: --cluster needs HMS_TEST_CLUSTER_AMQP and HMS_TEST_CLUSTER_SCRIPT "
                        "(. \"$(tests/cluster.sh env)\" after tests/cluster.sh start)\n");
        return req && strcmp(req, "1") == 0 ? 1 : IT_SKIP;
    }
    int rc = it_env_init(&g_env, "fault");
    if (rc == IT_SKIP)
        return IT_SKIP;
    if (rc != 0) {
        it_env_cleanup(&g_env);
        return 1;
    }
    const char *ctl = g_env.rabbitmqctl ? g_env.rabbitmqctl : "";
    snprintf(g_scratch, sizeof g_scratch, "%s", ctl);
    for (int k = 0; k < 2; k++) {
        char *slash = strrchr(g_scratch, '/');
        if (slash)
            *slash = '\0';
    }
    atexit(restore_broker);
    fault_say("seed %u%s", g_seed, g_long ? ", long mode" : "");
    double t0 = it_now_ms();
    if (g_cluster) {
        /* Every connection of the suite (checker, set-up, clean-up) now
         * reaches the cluster, any of its nodes. */
        g_env.amqp_url = getenv("HMS_TEST_CLUSTER_AMQP");
        fault_cluster_run(want, g_long);
    } else {
        run_single_broker();
    }
    restore_broker();
    double secs = (it_now_ms() - t0) / 1000;
    printf("\nfault suite summary (seed %u, %.0f s)\n", g_seed, secs);
    print_table(stdout, false);
    int failed = 0;
    for (int i = 0; i < g_nrows; i++)
        if (!g_rows[i].pass)
            failed++;
    printf("%d of %d scenarios passed\n", g_nrows - failed, g_nrows);
    if (results && !g_break)
        write_results(results, secs);
    it_env_cleanup(&g_env);
    return failed == 0 ? 0 : 1;
}
