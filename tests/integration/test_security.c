/* test_security.c -- secrets and least privilege (docs/security.md).
 *
 * Secrets: run and consume get known passwords from the environment, a 0600
 * config file and an AMQP password file, fail in ways whose messages name
 * the targets (wrong passwords, unreachable servers), print their config,
 * and log at debug level; no output may hold a password.  A world-readable
 * config file or password file that holds a password is refused.
 *
 * Permissions, on the shared broker with users of the test's own (deleted
 * at the end) holding exactly the patterns docs/security.md gives: the
 * connector's user may configure and write only its exchange and the
 * rejected exchange beside it, and read
 * nothing; the subscriber's user may configure only its own queue and
 * dead-letter queue, and may neither publish to nor delete the exchange nor
 * delete the shared dead-letter exchange (403 ACCESS_REFUSED); both work
 * end to end, dead letters included.  The PostgreSQL roles that migrate
 * creates are not superusers and only the connector's may replicate. */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it.h"

static it_env_t g_env;
static char g_tmp[256];      /* password and config files */
static char g_pg_secret[64]; /* role g_pg_role's password */
static char g_pg_role[64];
static char g_pg_sub_role[64], g_pg_sub_secret[64]; /* consume's PostgreSQL role */
static char g_pg_sub_conn[IT_CONNINFO_MAX];
static char g_pub_user[64], g_pub_secret[64]; /* the connector's RabbitMQ user */
static char g_sub_user[64], g_sub_secret[64]; /* the subscriber's */
static char g_wrong_secret[64];               /* a wrong password: a secret too */
static char g_exchange[128], g_dlx[160], g_queue[64];
static char g_host_port[64];            /* of the shared broker */
static char g_pg_conn[IT_CONNINFO_MAX]; /* g_pg_role with its password */
static bool g_users_made;
static int g_outputs_checked;

/* Asserts that no secret appears in p's output (stdout and stderr). */
static char *check_no_secrets(const it_proc_t *p, const char *tag)
{
    char *out = it_proc_output(p);
    ck_assert_ptr_nonnull(out);
    const char *secrets[] = {g_pg_secret, g_pg_sub_secret, g_pub_secret, g_sub_secret,
                             g_wrong_secret};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        ck_assert_msg(strstr(out, secrets[i]) == NULL, "%s: output holds a secret:\n%s", tag, out);
    g_outputs_checked++;
    return out;
}

/* Runs hms-sync with argv and envset to its end; asserts the exit code and
 * that the output mentions every needle (NULL-terminated) and no secret. */
static void expect(const char *tag, int want, const char *const argv[], const char *const envset[],
                   ...)
{
    it_proc_t p;
    ck_assert_int_eq(it_proc_spawn_env(&g_env, &p, tag, argv, envset), 0);
    int code = it_proc_wait(&p, 40000);
    it_proc_kill(&p);
    char *out = check_no_secrets(&p, tag);
    ck_assert_msg(code == want, "%s: exit %d, want %d: %s", tag, code, want, out);
    va_list ap;
    va_start(ap, envset);
    const char *needle;
    while ((needle = va_arg(ap, const char *)) != NULL)
        ck_assert_msg(strstr(out, needle) != NULL, "%s: output does not mention '%s': %s", tag,
                      needle, out);
    va_end(ap);
    fprintf(stderr, "%s: exit %d: %.*s\n", tag, code, (int)strcspn(out, "\n"), out);
    free(out);
}

static void write_file(const char *path, mode_t mode, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void write_file(const char *path, mode_t mode, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
}

/* Waits until p's log holds marker, or fails. */
static void wait_log(it_proc_t *p, const char *marker, const char *what)
{
    if (it_proc_wait_log(p, marker, 30000) == 0)
        return;
    it_proc_dump(p, what);
    ck_abort_msg("%s: no '%s' in its log", what, marker);
}

static void url_for(char *out, size_t n, const char *user, const char *password)
{
    if (password)
        snprintf(out, n, "amqp://%s:%s@%s/", user, password, g_host_port);
    else
        snprintf(out, n, "amqp://%s@%s/", user, g_host_port);
}

/* The code of the channel.close the broker answered r with (the channel
 * and connection are then closed: a's connection is gone), 0 when r is a
 * normal reply, -1 for a library error. */
static int close_code(it_amqp_t *a, amqp_rpc_reply_t r)
{
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != AMQP_CHANNEL_CLOSE_METHOD) {
        it_amqp_abandon(a);
        return -1;
    }
    int code = ((amqp_channel_close_t *)r.reply.decoded)->reply_code;
    amqp_channel_close_ok_t ok = {0};
    amqp_send_method(a->conn, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    amqp_connection_close(a->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(a->conn);
    a->conn = NULL;
    return code;
}

/* What refused() tries as a user. */
typedef enum {
    OP_PUBLISH,         /* "{}" to the exchange */
    OP_DECLARE_QUEUE,   /* an exclusive queue */
    OP_DELETE_EXCHANGE, /* */
    OP_DECLARE_TOPIC,   /* a durable exchange */
    OP_DECLARE_DIRECT,  /* */
} op_t;

/* Does op on name as url's user: the code of the channel.close the broker
 * answered with (403 for ACCESS_REFUSED), 0 when it allowed it, -1 when
 * the connection failed.  A publish is not answered, so a passive declare
 * of the exchange follows it to hear the verdict. */
static int refused(const char *url, op_t op, const char *name)
{
    it_amqp_t a;
    amqp_bytes_t n = amqp_cstring_bytes(name);
    if (it_amqp_open(&a, url) != 0)
        return -1;
    switch (op) {
    case OP_PUBLISH:
        amqp_basic_publish(a.conn, 1, n, amqp_cstring_bytes("incident.created.north"), 0, 0, NULL,
                           amqp_cstring_bytes("{}"));
        amqp_exchange_declare(a.conn, 1, n, amqp_cstring_bytes("topic"), 1, 0, 0, 0,
                              amqp_empty_table);
        break;
    case OP_DECLARE_QUEUE: amqp_queue_declare(a.conn, 1, n, 0, 0, 0, 1, amqp_empty_table); break;
    case OP_DELETE_EXCHANGE: amqp_exchange_delete(a.conn, 1, n, 0); break;
    case OP_DECLARE_TOPIC:
    case OP_DECLARE_DIRECT:
        amqp_exchange_declare(a.conn, 1, n,
                              amqp_cstring_bytes(op == OP_DECLARE_TOPIC ? "topic" : "direct"), 0, 1,
                              0, 0, amqp_empty_table);
        break;
    }
    int code = close_code(&a, amqp_get_rpc_reply(a.conn));
    it_amqp_close(&a);
    return code;
}

/* Messages ready in queue name (a passive declare on a's connection); -1
 * when it does not exist. */
static long queue_depth(it_amqp_t *a, const char *name)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(a->conn, 1, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
    return ok ? (long)ok->message_count : -1;
}

/* ---- secrets --------------------------------------------------------- */

START_TEST(test_secrets_in_errors)
{
    char env_pg[IT_CONNINFO_MAX + 16], env_amqp[300], bad[IT_CONNINFO_MAX + 16];
    char url[256];
    snprintf(env_pg, sizeof env_pg, "HMS_SYNC_PG=%s", g_pg_conn);
    url_for(url, sizeof url, g_pub_user, g_pub_secret);
    snprintf(env_amqp, sizeof env_amqp, "HMS_SYNC_AMQP=%s", url);
    const char *const good[] = {env_pg, env_amqp, NULL};
    const char *const print[] = {"run", "--print-config", NULL};
    expect("sec-print-config", 0, print, good, "***", "pg = ", "amqp = ", NULL);

    /* Unreachable PostgreSQL, password in the conninfo. */
    snprintf(bad, sizeof bad,
             "HMS_SYNC_PG=host=127.0.0.1 port=1 user=%s password=%s dbname=x connect_timeout=3",
             g_pg_role, g_pg_secret);
    const char *const pg_down[] = {bad, env_amqp, NULL};
    const char *const run[] = {"run", "--exchange", g_exchange, "--slot", "hms_it_sec_never", NULL};
    expect("sec-pg-unreachable", 1, run, pg_down, "127.0.0.1", NULL);

    /* Wrong PostgreSQL password. */
    char conn[IT_CONNINFO_MAX];
    snprintf(conn, sizeof conn, "%s", g_pg_conn);
    char *pw = strstr(conn, g_pg_secret);
    ck_assert_ptr_nonnull(pw);
    snprintf(bad, sizeof bad, "HMS_SYNC_PG=%.*s%s", (int)(pw - conn), conn, g_wrong_secret);
    const char *const pg_wrong[] = {bad, env_amqp, NULL};
    expect("sec-pg-wrong-password", 1, run, pg_wrong, "password authentication failed", NULL);

    /* Unreachable RabbitMQ, password in the URL. */
    char amqp_bad[300];
    snprintf(amqp_bad, sizeof amqp_bad, "HMS_SYNC_AMQP=amqp://%s:%s@127.0.0.1:1/", g_pub_user,
             g_pub_secret);
    const char *const mq_down[] = {env_pg, amqp_bad, NULL};
    expect("sec-amqp-unreachable", 1, run, mq_down, "127.0.0.1:1", NULL);

    /* Wrong RabbitMQ password, for run and for consume. */
    url_for(url, sizeof url, g_pub_user, g_wrong_secret);
    snprintf(amqp_bad, sizeof amqp_bad, "HMS_SYNC_AMQP=%s", url);
    const char *const mq_wrong[] = {env_pg, amqp_bad, NULL};
    expect("sec-amqp-wrong-password", 1, run, mq_wrong, "ACCESS_REFUSED", g_pub_user, NULL);
    const char *const consume[] = {
        "consume", "--queue", g_queue, "--apply", "hms_sync.apply_warehouse", NULL};
    expect("sec-consume-wrong-password", 1, consume, mq_wrong, "ACCESS_REFUSED", NULL);

    /* A password file readable by others is refused, naming it. */
    char pwfile[300], env_pwfile[340], env_url[300];
    snprintf(pwfile, sizeof pwfile, "%s/amqp-password-644", g_tmp);
    write_file(pwfile, 0644, "%s\n", g_pub_secret);
    snprintf(env_pwfile, sizeof env_pwfile, "HMS_SYNC_AMQP_PASSWORD_FILE=%s", pwfile);
    url_for(url, sizeof url, g_pub_user, NULL);
    snprintf(env_url, sizeof env_url, "HMS_SYNC_AMQP=%s", url);
    const char *const pw644[] = {env_pg, env_url, env_pwfile, NULL};
    expect("sec-password-file-644", 2, run, pw644, "amqp_password_file", pwfile, "chmod 600", NULL);

    /* A password file with the URL's password too is a config error. */
    const char *const both[] = {env_pg, env_amqp, env_pwfile, NULL};
    expect("sec-password-twice", 2, run, both, "amqp_password_file", NULL);

    /* A world-readable config file holding a password (also in test_config). */
    char cfg[300];
    snprintf(cfg, sizeof cfg, "%s/world.ini", g_tmp);
    write_file(cfg, 0644, "pg = %s\n", g_pg_conn);
    const char *const world[] = {"run", "--config", cfg, "--check-config", NULL};
    const char *const none[] = {env_amqp, NULL};
    expect("sec-config-644", 2, world, none, "readable by group or others", cfg, NULL);
}
END_TEST

/* ---- the happy paths: secrets from files, least-privilege users ------ */

START_TEST(test_least_privilege_end_to_end)
{
    /* run: PostgreSQL password in a 0600 config file, the AMQP password in
     * a 0600 password file, debug logging. */
    char cfg[300], pwfile[300], url[256], slot[64];
    it_env_slot_name(&g_env, slot, sizeof slot);
    snprintf(cfg, sizeof cfg, "%s/hms-sync.ini", g_tmp);
    snprintf(pwfile, sizeof pwfile, "%s/amqp-password", g_tmp);
    write_file(pwfile, 0600, "%s\n", g_pub_secret);
    url_for(url, sizeof url, g_pub_user, NULL);
    write_file(cfg, 0600,
               "pg = %s\namqp = %s\namqp_password_file = %s\nexchange = %s\nslot = %s\n"
               "log_level = debug\n",
               g_pg_conn, url, pwfile, g_exchange, slot);

    /* consume: as the subscriber's user, its password in the environment. */
    char sub_url[256], env_amqp[300];
    url_for(sub_url, sizeof sub_url, g_sub_user, g_sub_secret);
    snprintf(env_amqp, sizeof env_amqp, "HMS_SYNC_AMQP=%s", sub_url);
    const char *const sub_env[] = {env_amqp, NULL};
    const char *const cargv[] = {"consume",
                                 "--pg",
                                 g_pg_sub_conn,
                                 "--exchange",
                                 g_exchange,
                                 "--dead-letter-exchange",
                                 g_dlx,
                                 "--queue",
                                 g_queue,
                                 "--queue-type",
                                 "classic",
                                 "--apply",
                                 "hms_sync.apply_warehouse",
                                 "--log-level",
                                 "debug",
                                 NULL};
    it_proc_t sub, run;
    ck_assert_int_eq(it_proc_spawn_env(&g_env, &sub, "sec-consume", cargv, sub_env), 0);
    wait_log(&sub, "msg=consuming", "consume as the subscriber's user");
    const char *const rargv[] = {"run", "--config", cfg, NULL};
    ck_assert_int_eq(it_proc_spawn(&g_env, &run, "sec-run", rargv), 0);
    wait_log(&run, "streaming from replication slot", "run as the connector's user");
    ck_assert_int_eq(it_pg_exec(g_env.pg, "INSERT INTO incidents (region, summary) VALUES "
                                          "('north', 'least-privilege')"),
                     0);
    double end = it_now_ms() + 20000;
    bool applied = false;
    while (!applied && it_now_ms() < end) {
        char *v = it_pg_value(g_env.pg, "SELECT count(*) FROM incident_facts WHERE summary = "
                                        "'least-privilege'");
        applied = v && strcmp(v, "1") == 0;
        free(v);
        if (!applied)
            it_sleep_ms(200);
    }
    if (!applied) {
        it_proc_dump(&run, "run");
        it_proc_dump(&sub, "consume");
    }
    ck_assert_msg(applied, "the event did not reach the subscriber's table");
    /* A poison message: the subscriber's user may dead-letter it. */
    char pub_url[256], dlq[80];
    url_for(pub_url, sizeof pub_url, g_pub_user, g_pub_secret);
    snprintf(dlq, sizeof dlq, "%s.dlq", g_queue);
    ck_assert_int_eq(refused(pub_url, OP_PUBLISH, g_exchange), 0);
    it_amqp_t adm;
    ck_assert_int_eq(it_amqp_open(&adm, g_env.amqp_url), 0);
    long dead = 0;
    for (end = it_now_ms() + 20000; dead < 1 && it_now_ms() < end; it_sleep_ms(200))
        dead = queue_depth(&adm, dlq);
    it_amqp_close(&adm);
    if (dead != 1)
        it_proc_dump(&sub, "consume");
    ck_assert_msg(dead == 1, "%s holds %ld messages, want the one dead letter", dlq, dead);
    /* The user has no permission on the events exchange: run streamed all
     * the same (a warning at connect), and an emitted event holds the slot
     * before it, naming what to grant, instead of being lost. */
    wait_log(&run, "the events exchange cannot be declared", "run without the events exchange");
    ck_assert_int_eq(
        it_pg_exec(g_env.pg, "SELECT hms_sync.emit('org.example.cases.Assigned.v1', 'c-1', '{}')"),
        0);
    uint64_t emitted_at = it_pg_insert_lsn(g_env.pg);
    wait_log(&run, "cannot publish emitted event", "run with an emitted event it cannot publish");
    ck_assert_msg(it_pg_confirmed(g_env.pg, slot) < emitted_at,
                  "the slot passed an emitted event that was never published");
    it_proc_signal(&run, SIGTERM);
    it_proc_signal(&sub, SIGTERM);
    ck_assert_int_eq(it_proc_wait(&run, 20000), 0);
    ck_assert_int_eq(it_proc_wait(&sub, 20000), 0);
    free(check_no_secrets(&run, "sec-run (debug log)"));
    free(check_no_secrets(&sub, "sec-consume (debug log)"));
    it_pg_drop_slot(g_env.pg, slot);
    fprintf(stderr, "sec: run (config file + password file) and consume as least-privilege "
                    "users delivered and applied an event, and dead-lettered a poison one\n");
}
END_TEST

START_TEST(test_broker_permissions)
{
    char sub_url[256], pub_url[256];
    url_for(sub_url, sizeof sub_url, g_sub_user, g_sub_secret);
    url_for(pub_url, sizeof pub_url, g_pub_user, g_pub_secret);

    /* What subscribers share is not theirs to delete. */
    int code = refused(sub_url, OP_DELETE_EXCHANGE, g_exchange);
    ck_assert_msg(code == 403, "subscriber's user deleting %s: channel close %d, want 403",
                  g_exchange, code);
    fprintf(stderr, "sec: the subscriber's user deleting %s: 403 ACCESS_REFUSED\n", g_exchange);
    code = refused(sub_url, OP_DELETE_EXCHANGE, g_dlx);
    ck_assert_msg(code == 403, "subscriber's user deleting %s: channel close %d, want 403", g_dlx,
                  code);
    fprintf(stderr, "sec: the subscriber's user deleting %s: 403 ACCESS_REFUSED\n", g_dlx);
    it_amqp_t a;
    ck_assert_int_eq(it_amqp_open(&a, g_env.amqp_url), 0);
    amqp_exchange_declare(a.conn, 1, amqp_cstring_bytes(g_exchange), amqp_cstring_bytes("topic"), 1,
                          0, 0, 0, amqp_empty_table);
    ck_assert_int_eq(close_code(&a, amqp_get_rpc_reply(a.conn)), 0);
    amqp_exchange_declare(a.conn, 1, amqp_cstring_bytes(g_dlx), amqp_cstring_bytes("direct"), 1, 0,
                          0, 0, amqp_empty_table);
    ck_assert_int_eq(close_code(&a, amqp_get_rpc_reply(a.conn)), 0);
    it_amqp_close(&a);

    code = refused(sub_url, OP_PUBLISH, g_exchange);
    ck_assert_msg(code == 403, "subscriber's user publishing to %s: channel close %d, want 403",
                  g_exchange, code);
    fprintf(stderr, "sec: the subscriber's user publishing to %s: 403 ACCESS_REFUSED\n",
            g_exchange);
    code = refused(pub_url, OP_PUBLISH, g_exchange);
    ck_assert_msg(code == 0, "the connector's user cannot publish: %d", code);
    code = refused(pub_url, OP_DECLARE_QUEUE, g_queue);
    ck_assert_msg(code == 403, "the connector's user declaring queue %s: %d, want 403", g_queue,
                  code);
}
END_TEST

START_TEST(test_pg_roles)
{
    char *v = it_pg_value(g_env.pg, "SELECT rolsuper::text || ' ' || rolreplication::text FROM "
                                    "pg_roles WHERE rolname = 'hms_sync'");
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "false true");
    free(v);
    v = it_pg_value(g_env.pg, "SELECT rolsuper::text || ' ' || rolreplication::text FROM pg_roles "
                              "WHERE rolname = 'hms_sync_subscriber'");
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "false false");
    free(v);
}
END_TEST

/* ---- setup ----------------------------------------------------------- */

/* "^a\.b$" for an exact AMQP name in a permission pattern. */
static void exact(char *out, size_t n, const char *const names[])
{
    size_t w = (size_t)snprintf(out, n, "^(");
    for (int i = 0; names[i] && w < n; i++) {
        if (i)
            out[w++] = '|';
        for (const char *c = names[i]; *c && w + 2 < n; c++) {
            if (*c == '.')
                out[w++] = '\\';
            out[w++] = *c;
        }
    }
    snprintf(out + w, n - w, ")$");
}

static void cleanup_all(void)
{
    if (g_users_made) {
        it_rabbitmqctl(&g_env, 30000, "delete_user", g_pub_user, NULL);
        it_rabbitmqctl(&g_env, 30000, "delete_user", g_sub_user, NULL);
        g_users_made = false;
        it_amqp_drop_subscriber(g_env.amqp_url, g_queue, g_exchange, g_dlx);
    }
    if (g_pg_role[0] && g_env.pg) {
        it_pg_exec(g_env.pg, "DROP ROLE IF EXISTS %s", g_pg_role);
        g_pg_role[0] = '\0';
    }
    if (g_pg_sub_role[0] && g_env.pg) {
        it_pg_exec(g_env.pg, "DROP ROLE IF EXISTS %s", g_pg_sub_role);
        g_pg_sub_role[0] = '\0';
    }
    if (g_tmp[0]) {
        const char *argv[] = {"/bin/rm", "-rf", g_tmp, NULL};
        it_cmd_run(&g_env, "sec-rm", 30000, argv);
        g_tmp[0] = '\0';
    }
}

static int setup_all(void)
{
    long pid = (long)getpid();
    snprintf(g_tmp, sizeof g_tmp, "/var/tmp/hms-it-sec-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        g_tmp[0] = '\0';
        return -1;
    }
    snprintf(g_pg_role, sizeof g_pg_role, "hms_it_sec_%ld", pid);
    snprintf(g_pg_secret, sizeof g_pg_secret, "PgS3cret-%ld-q7", pid);
    snprintf(g_pub_user, sizeof g_pub_user, "hms_it_pub_%ld", pid);
    snprintf(g_pub_secret, sizeof g_pub_secret, "PubS3cret-%ld-x9", pid);
    snprintf(g_sub_user, sizeof g_sub_user, "hms_it_sub_%ld", pid);
    snprintf(g_sub_secret, sizeof g_sub_secret, "SubS3cret-%ld-k2", pid);
    snprintf(g_wrong_secret, sizeof g_wrong_secret, "WrongS3cret-%ld-z5", pid);
    snprintf(g_queue, sizeof g_queue, "hms_it_sec_%ld", pid);
    it_env_exchange_name(&g_env, g_exchange, sizeof g_exchange);
    snprintf(g_dlx, sizeof g_dlx, "%s.dlx", g_exchange);
    struct amqp_connection_info ci;
    char *copy = strdup(g_env.amqp_url);
    if (!copy || amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
        free(copy);
        return -1;
    }
    snprintf(g_host_port, sizeof g_host_port, "%s:%d", ci.host, ci.port);
    free(copy);

    /* A connector role like hms_sync (whose privileges it inherits), with a
     * password of its own, so the test never changes hms_sync's. */
    if (it_pg_exec(g_env.pg, "CREATE ROLE %s LOGIN REPLICATION IN ROLE hms_sync PASSWORD '%s'",
                   g_pg_role, g_pg_secret) != 0)
        return -1;
    snprintf(g_pg_conn, sizeof g_pg_conn, "host=%s port=%s dbname=%s user=%s password=%s",
             g_env.host, g_env.port, g_env.dbname, g_pg_role, g_pg_secret);

    /* consume's apply function lives in the subscriber schema, which also
     * creates hms_sync_subscriber; consume logs in as a member of it. */
    it_proc_t mig;
    const char *margv[] = {"migrate", "--subscriber", "--pg", g_env.super_conninfo, NULL};
    if (it_proc_spawn(&g_env, &mig, "sec-migrate-sub", margv) != 0 || it_proc_wait(&mig, 120000))
        return -1;
    snprintf(g_pg_sub_role, sizeof g_pg_sub_role, "hms_it_subr_%ld", pid);
    snprintf(g_pg_sub_secret, sizeof g_pg_sub_secret, "PgSubS3cret-%ld-m4", pid);
    if (it_pg_exec(g_env.pg, "CREATE ROLE %s LOGIN IN ROLE hms_sync_subscriber PASSWORD '%s'",
                   g_pg_sub_role, g_pg_sub_secret) != 0)
        return -1;
    snprintf(g_pg_sub_conn, sizeof g_pg_sub_conn, "host=%s port=%s dbname=%s user=%s password=%s",
             g_env.host, g_env.port, g_env.dbname, g_pg_sub_role, g_pg_sub_secret);

    char e_re[300], pub_read[] = "^$", sub_conf[600], sub_write[600], sub_read[600], dlq[80];
    snprintf(dlq, sizeof dlq, "%s.dlq", g_queue);
    char rejected[200];
    snprintf(rejected, sizeof rejected, "%s.rejected", g_exchange);
    const char *const e_names[] = {g_exchange, rejected, NULL};
    /* docs/security.md's patterns: configure only its own queues (consume
     * checks the two exchanges passively), write its queues (to bind them)
     * and the DLX (to dead-letter), read its queue and the two exchanges. */
    const char *const conf_names[] = {g_queue, dlq, NULL};
    const char *const read_names[] = {g_queue, g_exchange, g_dlx, NULL};
    const char *const write_names[] = {g_queue, dlq, g_dlx, NULL};
    exact(e_re, sizeof e_re, e_names);
    exact(sub_conf, sizeof sub_conf, conf_names);
    exact(sub_write, sizeof sub_write, write_names);
    exact(sub_read, sizeof sub_read, read_names);
    g_users_made = true;
    if (it_rabbitmqctl(&g_env, 30000, "add_user", g_pub_user, g_pub_secret, NULL) != 0 ||
        it_rabbitmqctl(&g_env, 30000, "add_user", g_sub_user, g_sub_secret, NULL) != 0 ||
        it_rabbitmqctl(&g_env, 30000, "set_permissions", g_pub_user, e_re, e_re, pub_read, NULL) !=
            0 ||
        it_rabbitmqctl(&g_env, 30000, "set_permissions", g_sub_user, sub_conf, sub_write, sub_read,
                       NULL) != 0)
        return -1;
    /* The connector's user declares the exchange (as run does); the
     * dead-letter exchange is the administrator's (deploy/'s definitions). */
    char pub_url[256];
    url_for(pub_url, sizeof pub_url, g_pub_user, g_pub_secret);
    if (refused(pub_url, OP_DECLARE_TOPIC, g_exchange) != 0 ||
        refused(g_env.amqp_url, OP_DECLARE_DIRECT, g_dlx) != 0)
        return -1;
    fprintf(stderr, "sec: %s configure %s write %s read %s\n", g_pub_user, e_re, e_re, pub_read);
    fprintf(stderr, "sec: %s configure %s write %s read %s\n", g_sub_user, sub_conf, sub_write,
            sub_read);
    return 0;
}

static double g_t0; /* when setup began */

/* The program's setup: the users, roles and scratch directory every test
 * shares, made with rabbitmqctl. */
static int security_setup(void)
{
    g_t0 = it_now_ms();
    if (!g_env.rabbitmqctl)
        return it_missing("security", "HMS_TEST_RABBITMQCTL is not set");
    return setup_all();
}

/* Removes what setup made and says how many outputs were searched. */
static void security_teardown(void)
{
    cleanup_all();
    fprintf(stderr, "test_security: %d outputs checked for secrets, total %.0f ms\n",
            g_outputs_checked, it_now_ms() - g_t0);
}

static Suite *security_suite(void)
{
    Suite *s = suite_create("security");
    TCase *tc = tcase_create("security");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_secrets_in_errors);
    tcase_add_test(tc, test_broker_permissions);
    tcase_add_test(tc, test_least_privilege_end_to_end);
    tcase_add_test(tc, test_pg_roles);
    suite_add_tcase(s, tc);
    return s;
}

IT_MAIN(.name = "security", .env = &g_env, .setup = security_setup, .teardown = security_teardown,
        .suite = security_suite)
