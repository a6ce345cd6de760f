/* it.c -- the integration-test harness (see it.h): scratch database, the
 * connector as a child process, an AMQP consumer and event checks. */
#include "it.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp_tcp_socket.h>

#include "core/amqpnodes.h"
#include "core/jsonschema.h"
#include "schema_files.h"

#ifndef HMS_BIN
#error "HMS_BIN must name the hms-sync binary"
#endif

#define IT_PASSWORD "it-secret"

static void it_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void it_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("it: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Appends key='value' to out, quoting as libpq's conninfo syntax wants. */
static void it_conninfo_add(char *out, size_t n, const char *key, const char *val)
{
    size_t len = strlen(out);
    int w = snprintf(out + len, n - len, "%s%s='", len ? " " : "", key);
    if (w < 0 || (size_t)w >= n - len)
        return;
    len += (size_t)w;
    for (const char *p = val; *p && len + 3 < n; p++) {
        if (*p == '\'' || *p == '\\')
            out[len++] = '\\';
        out[len++] = *p;
    }
    if (len + 2 <= n) {
        out[len++] = '\'';
        out[len] = '\0';
    }
}

/* Rebuilds the superuser conninfo for another database, and the connector's
 * conninfo (role hms_sync with a password over TCP, as in production). */
static int it_env_conninfos(it_env_t *env, const char *base)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(base, &errmsg);
    if (!opts) {
        it_fail("HMS_TEST_PG is not a valid conninfo: %s", errmsg ? errmsg : "out of memory");
        PQfreemem(errmsg);
        return -1;
    }
    env->super_conninfo[0] = '\0';
    snprintf(env->host, sizeof env->host, "127.0.0.1");
    snprintf(env->port, sizeof env->port, "5432");
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val || strcmp(o->keyword, "dbname") == 0)
            continue;
        if (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0)
            snprintf(env->host, sizeof env->host, "%s", o->val);
        if (strcmp(o->keyword, "port") == 0)
            snprintf(env->port, sizeof env->port, "%s", o->val);
        it_conninfo_add(env->super_conninfo, sizeof env->super_conninfo, o->keyword, o->val);
    }
    PQconninfoFree(opts);
    it_conninfo_add(env->super_conninfo, sizeof env->super_conninfo, "dbname", env->dbname);
    env->conninfo[0] = '\0';
    it_conninfo_add(env->conninfo, sizeof env->conninfo, "host", env->host);
    it_conninfo_add(env->conninfo, sizeof env->conninfo, "port", env->port);
    it_conninfo_add(env->conninfo, sizeof env->conninfo, "user", "hms_sync");
    it_conninfo_add(env->conninfo, sizeof env->conninfo, "password", IT_PASSWORD);
    it_conninfo_add(env->conninfo, sizeof env->conninfo, "dbname", env->dbname);
    return 0;
}

int it_missing(const char *name, const char *what)
{
    const char *req = getenv("HMS_TEST_REQUIRE_SERVERS");
    if (req && strcmp(req, "1") == 0) {
        it_fail("%s: %s, and HMS_TEST_REQUIRE_SERVERS=1 requires it; run tests/servers.sh "
                "start and source its env file",
                name, what);
        return -1;
    }
    fprintf(stderr, "it: %s: %s: skipping\n", name, what);
    return IT_SKIP;
}

int it_env_init(it_env_t *env, const char *name)
{
    memset(env, 0, sizeof *env);
    const char *pg = getenv("HMS_TEST_PG");
    const char *amqp = getenv("HMS_TEST_AMQP");
    if (!pg || !*pg || !amqp || !*amqp)
        return it_missing(name, "HMS_TEST_PG or HMS_TEST_AMQP is not set");
    env->amqp_url = amqp;
    env->rabbitmqctl = getenv("HMS_TEST_RABBITMQCTL");
    snprintf(env->name, sizeof env->name, "%s", name);
    snprintf(env->dbname, sizeof env->dbname, "hms_it_%s_%ld", name, (long)getpid());

    /* Logs go next to the binary, under the build tree. */
    char bindir[400];
    snprintf(bindir, sizeof bindir, "%s", HMS_BIN);
    char *slash = strrchr(bindir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(bindir, sizeof bindir, ".");
    snprintf(env->logdir, sizeof env->logdir, "%s/it-logs", bindir);
    if (mkdir(env->logdir, 0755) != 0 && errno != EEXIST) {
        it_fail("mkdir %s: %s", env->logdir, strerror(errno));
        return -1;
    }

    if (it_env_conninfos(env, pg) != 0)
        return -1;
    PGconn *admin = it_pg_connect(pg);
    if (!admin)
        return -1;
    int rc = it_pg_exec(admin, "CREATE DATABASE %s", env->dbname);
    PQfinish(admin);
    if (rc != 0)
        return -1;

    it_proc_t mig;
    const char *argv[] = {"migrate", "--pg", env->super_conninfo, NULL};
    if (it_proc_spawn(env, &mig, "migrate", argv) != 0)
        return -1;
    int code = it_proc_wait(&mig, 120000);
    if (code != 0) {
        char *out = it_proc_output(&mig);
        it_fail("hms-sync migrate exited %d: %s", code, out ? out : "");
        free(out);
        it_proc_kill(&mig);
        return -1;
    }
    env->pg = it_pg_connect(env->super_conninfo);
    if (!env->pg)
        return -1;
    /* Roles are cluster-wide and other programs (test_migrate) look at this
     * one: keep its verifier to restore it afterwards. */
    PGresult *r = PQexec(env->pg, "SELECT rolpassword FROM pg_authid WHERE rolname = 'hms_sync'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        it_fail("role hms_sync missing after migrate: %s", PQerrorMessage(env->pg));
        PQclear(r);
        return -1;
    }
    env->role_password = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    env->role_saved = true;
    PQclear(r);
    if (it_pg_exec(env->pg, "ALTER ROLE hms_sync PASSWORD '" IT_PASSWORD "'") != 0)
        return -1;
    return 0;
}

void it_env_cleanup(it_env_t *env)
{
    if (env->pg) {
        json_object *slots = it_pg_column(
            env->pg, "SELECT slot_name FROM pg_replication_slots WHERE database = '%s'",
            env->dbname);
        for (size_t i = 0; slots && i < json_object_array_length(slots); i++)
            it_pg_drop_slot(env->pg, json_object_get_string(json_object_array_get_idx(slots, i)));
        json_object_put(slots);
        if (env->role_saved && !env->role_password) {
            it_pg_exec(env->pg, "ALTER ROLE hms_sync PASSWORD NULL");
        } else if (env->role_saved) {
            /* A SCRAM or MD5 verifier given as the password is stored as is. */
            char *lit = PQescapeLiteral(env->pg, env->role_password, strlen(env->role_password));
            if (lit)
                it_pg_exec(env->pg, "ALTER ROLE hms_sync PASSWORD %s", lit);
            PQfreemem(lit);
        }
        free(env->role_password);
        env->role_password = NULL;
        env->role_saved = false;
        PQfinish(env->pg);
        env->pg = NULL;
    }
    const char *pg = getenv("HMS_TEST_PG");
    if (pg && env->dbname[0]) {
        PGconn *admin = it_pg_connect(pg);
        if (admin) {
            it_pg_exec(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", env->dbname);
            PQfinish(admin);
        }
    }
}

void it_env_slot_name(it_env_t *env, char *out, size_t n)
{
    snprintf(out, n, "hms_it_%ld_%u", (long)getpid(), ++env->seq);
}

void it_env_exchange_name(it_env_t *env, char *out, size_t n)
{
    snprintf(out, n, "hms.it.%ld.%u", (long)getpid(), ++env->seq);
}

char *it_env_source(it_env_t *env)
{
    char *sysid = it_pg_value(env->pg, "SELECT system_identifier FROM pg_control_system()");
    if (!sysid)
        return NULL;
    char *out = malloc(strlen(sysid) + strlen(env->dbname) + 64);
    if (out)
        sprintf(out, "/hms-ehr/%s/%s/public.incidents", sysid, env->dbname);
    free(sysid);
    return out;
}

/* ---- child processes ---- */

/* Forks and execs path with args (args[0] included), output to p->log, in
 * the environment envp (NULL: the test's own). */
static int it_spawn_path(it_proc_t *p, const char *path, char *const args[], char *const envp[])
{
    int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        it_fail("open %s: %s", p->log, strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        it_fail("fork: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        /* Start it as a service manager would: no inherited sockets of the
         * test's, default signal dispositions (the test ignores SIGPIPE). */
        closefrom(3);
        signal(SIGPIPE, SIG_DFL);
        if (envp)
            execve(path, args, envp);
        else
            execv(path, args);
        fprintf(stderr, "it: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(fd);
    p->pid = pid;
    p->start_ms = it_now_ms();
    return 0;
}

int it_proc_spawn(it_env_t *env, it_proc_t *p, const char *tag, const char *const argv[])
{
    memset(p, 0, sizeof *p);
    snprintf(p->log, sizeof p->log, "%s/%s-%ld.log", env->logdir, tag, (long)getpid());
    size_t argc = 0;
    while (argv[argc])
        argc++;
    char **args = calloc(argc + 2, sizeof *args);
    if (!args)
        return -1;
    args[0] = (char *)HMS_BIN;
    for (size_t i = 0; i < argc; i++)
        args[i + 1] = (char *)argv[i];
    int rc = it_spawn_path(p, HMS_BIN, args, NULL);
    free(args);
    return rc;
}

/* True when environment entry e ("NAME=VALUE") is for the variable that
 * change c ("NAME=VALUE" or "NAME") names. */
static bool it_env_same_name(const char *e, const char *c)
{
    size_t n = strcspn(c, "=");
    return strncmp(e, c, n) == 0 && e[n] == '=';
}

int it_proc_spawn_env(it_env_t *env, it_proc_t *p, const char *tag, const char *const argv[],
                      const char *const envset[])
{
    /* Built before fork: the child of a threaded test may only exec. */
    size_t ne = 0, nc = 0;
    while (environ[ne])
        ne++;
    while (envset && envset[nc])
        nc++;
    char **envp = calloc(ne + nc + 1, sizeof *envp);
    if (!envp)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        bool changed = false;
        for (size_t j = 0; j < nc && !changed; j++)
            changed = it_env_same_name(environ[i], envset[j]);
        if (!changed)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < nc; j++)
        if (strchr(envset[j], '='))
            envp[k++] = (char *)envset[j];
    envp[k] = NULL;

    memset(p, 0, sizeof *p);
    snprintf(p->log, sizeof p->log, "%s/%s-%ld.log", env->logdir, tag, (long)getpid());
    size_t argc = 0;
    while (argv[argc])
        argc++;
    char **args = calloc(argc + 2, sizeof *args);
    if (!args) {
        free(envp);
        return -1;
    }
    args[0] = (char *)HMS_BIN;
    for (size_t i = 0; i < argc; i++)
        args[i + 1] = (char *)argv[i];
    int rc = it_spawn_path(p, HMS_BIN, args, envp);
    free(args);
    free(envp);
    return rc;
}

int it_cmd_spawn(it_env_t *env, it_proc_t *p, const char *tag, const char *const argv[])
{
    memset(p, 0, sizeof *p);
    snprintf(p->log, sizeof p->log, "%s/%s-%ld.log", env->logdir, tag, (long)getpid());
    return it_spawn_path(p, argv[0], (char *const *)argv, NULL);
}

int it_conn_start(it_env_t *env, it_proc_t *p, const char *tag, const char *slot,
                  const char *exchange, const char *const extra[])
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = "run";
    argv[n++] = "--pg";
    argv[n++] = env->conninfo;
    argv[n++] = "--amqp";
    argv[n++] = env->amqp_url;
    argv[n++] = "--slot";
    argv[n++] = slot;
    argv[n++] = "--exchange";
    argv[n++] = exchange;
    for (size_t i = 0; extra && extra[i] && n < 63; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return it_proc_spawn(env, p, tag, argv);
}

int it_proc_wait(it_proc_t *p, int timeout_ms)
{
    if (p->pid == 0)
        return p->status;
    double deadline = it_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return p->status;
        }
        if (r < 0 && errno != EINTR) {
            it_fail("waitpid: %s", strerror(errno));
            return -1;
        }
        if (it_now_ms() >= deadline)
            return -1;
        it_sleep_ms(20);
    }
}

void it_proc_signal(it_proc_t *p, int sig)
{
    if (p->pid > 0)
        kill(p->pid, sig);
}

void it_proc_kill(it_proc_t *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        it_proc_wait(p, 10000);
    }
}

char *it_proc_output(const it_proc_t *p)
{
    FILE *f = fopen(p->log, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    while (s) {
        size_t r = fread(s + len, 1, cap - len - 1, f);
        len += r;
        if (r == 0)
            break;
        if (cap - len - 1 == 0) {
            char *t = realloc(s, cap * 2);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    fclose(f);
    if (s)
        s[len] = '\0';
    return s;
}

void it_proc_dump(const it_proc_t *p, const char *what)
{
    char *out = it_proc_output(p);
    if (what != NULL)
        fprintf(stderr, "---- %s (%s) ----\n%s---- end ----\n", what, p->log, out ? out : "");
    else
        fprintf(stderr, "---- %s ----\n%s---- end ----\n", p->log, out ? out : "");
    free(out);
}

int it_proc_wait_log(it_proc_t *p, const char *marker, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    for (bool ended = false;;) {
        char *out = it_proc_output(p);
        bool seen = out != NULL && strstr(out, marker) != NULL;
        free(out);
        /* The log is read once more after the child ended: it may have
         * written the marker just before. */
        if (seen)
            return 0;
        if (ended || it_now_ms() >= deadline)
            return -1;
        ended = it_proc_wait(p, 50) >= 0;
    }
}

int it_count_lines(const char *s)
{
    int n = 0;
    const char *p = s;
    for (; *p; p++)
        if (*p == '\n')
            n++;
    if (p > s && p[-1] != '\n')
        n++;
    return n;
}

/* ---- PostgreSQL ---- */

PGconn *it_pg_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        it_fail("connect to PostgreSQL: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

static PGresult *it_pg_vquery(PGconn *c, const char *fmt, va_list ap)
{
    char sql[8192];
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof sql) {
        it_fail("SQL too long: %.60s...", fmt);
        return NULL;
    }
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        it_fail("SQL failed: %s -- %s", sql, PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    return r;
}

int it_pg_exec(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = it_pg_vquery(c, fmt, ap);
    va_end(ap);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

char *it_pg_value(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = it_pg_vquery(c, fmt, ap);
    va_end(ap);
    if (!r)
        return NULL;
    char *v = NULL;
    if (PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

long it_pg_count(PGconn *c, const char *fmt, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char *v = it_pg_value(c, "%s", sql);
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

json_object *it_pg_column(PGconn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = it_pg_vquery(c, fmt, ap);
    va_end(ap);
    if (!r)
        return NULL;
    json_object *arr = json_object_new_array();
    for (int i = 0; arr && i < PQntuples(r); i++) {
        json_object *v = PQgetisnull(r, i, 0) ? NULL : json_object_new_string(PQgetvalue(r, i, 0));
        json_object_array_add(arr, v);
    }
    PQclear(r);
    return arr;
}

bool it_lsn_parse(const char *s, uint64_t *out)
{
    unsigned hi, lo;
    int used = 0;
    if (!s || sscanf(s, "%X/%X%n", &hi, &lo, &used) != 2 || s[used] != '\0')
        return false;
    *out = ((uint64_t)hi << 32) | lo;
    return true;
}

bool it_lsn_parse_hex16(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char ch = s[i];
        int d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

const char *it_lsn_str(uint64_t lsn)
{
    static char bufs[4][24];
    static unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    return b;
}

PGconn *it_pg_load_start(const char *conninfo, const char *region, int rows, int pause_ms)
{
    char sql[512];
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "it: load: cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN FOR i IN 1..%d LOOP INSERT INTO incidents (region, summary) VALUES "
             "('%s', 'load ' || i); COMMIT; PERFORM pg_sleep(%g); END LOOP; END $$",
             rows, region, pause_ms / 1000.0);
    if (!PQsendQuery(c, sql)) {
        fprintf(stderr, "it: load: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

void it_pg_load_stop(PGconn **c)
{
    if (*c == NULL)
        return;
    PQrequestCancel(*c);
    PQfinish(*c);
    *c = NULL;
}

uint64_t it_pg_insert_lsn(PGconn *c)
{
    char *v = it_pg_value(c, "SELECT pg_current_wal_insert_lsn()");
    uint64_t lsn = 0;
    if (v && !it_lsn_parse(v, &lsn))
        lsn = 0;
    free(v);
    return lsn;
}

uint64_t it_pg_confirmed(PGconn *c, const char *slot)
{
    char *v = it_pg_value(
        c, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '%s'", slot);
    uint64_t lsn = 0;
    if (v && !it_lsn_parse(v, &lsn))
        lsn = 0;
    free(v);
    return lsn;
}

int it_pg_wait_confirmed(PGconn *c, const char *slot, uint64_t lsn, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    uint64_t at = 0;
    for (;;) {
        at = it_pg_confirmed(c, slot);
        if (at >= lsn)
            return 0;
        if (it_now_ms() >= deadline)
            break;
        it_sleep_ms(100);
    }
    it_fail("slot %s: confirmed_flush_lsn %s did not reach %s within %d ms", slot, it_lsn_str(at),
            it_lsn_str(lsn), timeout_ms);
    return -1;
}

int it_pg_wait_slot_active(PGconn *c, const char *slot, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    for (;;) {
        /* Active is not enough: a slot being created is held by its
         * walsender before its consistent point, and rows committed then
         * are never decoded.  Streaming means START_REPLICATION ran. */
        char *v = it_pg_value(c,
                              "SELECT count(*) FROM pg_replication_slots s "
                              "JOIN pg_stat_replication r ON r.pid = s.active_pid "
                              "WHERE s.slot_name = '%s' AND r.state IN ('catchup', 'streaming')",
                              slot);
        bool active = v && strcmp(v, "1") == 0;
        free(v);
        if (active)
            return 0;
        if (it_now_ms() >= deadline)
            break;
        it_sleep_ms(100);
    }
    it_fail("slot %s not active within %d ms", slot, timeout_ms);
    return -1;
}

int it_pg_drop_slot(PGconn *c, const char *slot)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        char *exists = it_pg_value(
            c, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s'", slot);
        bool gone = exists && strcmp(exists, "0") == 0;
        free(exists);
        if (gone)
            return 0;
        /* A walsender still holding the slot makes the drop fail: end it. */
        PQclear(PQexec(c, "SET client_min_messages = error"));
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                 "WHERE slot_name = '%s' AND active_pid IS NOT NULL",
                 slot);
        PQclear(PQexec(c, sql));
        snprintf(sql, sizeof sql,
                 "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                 "WHERE slot_name = '%s' AND NOT active",
                 slot);
        PQclear(PQexec(c, sql));
        it_sleep_ms(100);
    }
    it_fail("could not drop slot %s", slot);
    return -1;
}

/* ---- AMQP ---- */

/* Describes a failed RPC reply in one line. */
static int it_amqp_check(amqp_connection_state_t c, amqp_rpc_reply_t r, const char *what)
{
    (void)c;
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return 0;
    case AMQP_RESPONSE_NONE: it_fail("AMQP %s: no reply", what); break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        it_fail("AMQP %s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *m = r.reply.decoded;
            it_fail("AMQP %s: channel closed: %u %.*s", what, m->reply_code, (int)m->reply_text.len,
                    (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *m = r.reply.decoded;
            it_fail("AMQP %s: connection closed: %u %.*s", what, m->reply_code,
                    (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            it_fail("AMQP %s: server method 0x%08X", what, r.reply.id);
        }
        break;
    }
    return -1;
}

/* Opens a connection and channel 1 to the one node url names. */
static int amqp_open_node(it_amqp_t *a, const char *url, bool quiet)
{
    char *copy = strdup(url);
    struct amqp_connection_info ci;
    if (!copy)
        return -1;
    if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK) {
        it_fail("bad AMQP URL %s", url);
        free(copy);
        return -1;
    }
    /* Strictly "amqp://host/" names the vhost "", which RabbitMQ does not
     * have; take it as the default vhost like most clients do. */
    if (!ci.vhost || !*ci.vhost)
        ci.vhost = "/";
    a->conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(a->conn);
    struct timeval tv = {10, 0};
    if (!sock || amqp_socket_open_noblock(sock, ci.host, ci.port, &tv) != AMQP_STATUS_OK) {
        if (!quiet)
            it_fail("cannot connect to RabbitMQ at %s:%d", ci.host, ci.port);
        goto fail;
    }
    if (it_amqp_check(a->conn,
                      amqp_login(a->conn, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, ci.user,
                                 ci.password),
                      "login") != 0)
        goto fail;
    amqp_channel_open(a->conn, 1);
    if (it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "channel.open") != 0)
        goto fail;
    free(copy);
    return 0;
fail:
    amqp_destroy_connection(a->conn);
    a->conn = NULL;
    free(copy);
    return -1;
}

int it_amqp_open(it_amqp_t *a, const char *url)
{
    memset(a, 0, sizeof *a);
    /* A cluster's nodes, comma-separated: each open starts one node further,
     * so the test's connections spread over the nodes and outlive one. */
    static unsigned next;
    size_t n = hms_amqp_nodes_count(url), len;
    size_t first = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
    const char *node;
    for (size_t k = 0; k < n; k++) {
        if (!hms_amqp_nodes_get(url, (first + k) % n, &node, &len))
            break;
        char one[IT_CONNINFO_MAX];
        snprintf(one, sizeof one, "%.*s", (int)len, node);
        if (amqp_open_node(a, one, n > 1 && k + 1 < n) == 0)
            return 0;
    }
    return -1;
}

void it_amqp_close(it_amqp_t *a)
{
    if (!a->conn)
        return;
    amqp_channel_close(a->conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(a->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(a->conn);
    a->conn = NULL;
}

int it_amqp_declare_exchange(it_amqp_t *a, const char *exchange)
{
    amqp_exchange_declare(a->conn, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes("topic"), 0,
                          1, 0, 0, amqp_empty_table);
    return it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "exchange.declare");
}

int it_amqp_delete_exchange(it_amqp_t *a, const char *exchange)
{
    amqp_exchange_delete(a->conn, 1, amqp_cstring_bytes(exchange), 0);
    return it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "exchange.delete");
}

void it_amqp_delete_rejected(it_amqp_t *a, const char *exchange)
{
    char name[300];
    snprintf(name, sizeof name, "%s.rejected", exchange);
    /* exchange.delete of a missing exchange is fine in RabbitMQ 3.10. */
    amqp_exchange_delete(a->conn, 1, amqp_cstring_bytes(name), 0);
    amqp_get_rpc_reply(a->conn);
}

int it_amqp_tap(it_amqp_t *a, const char *url, const char *exchange)
{
    if (it_amqp_open(a, url) != 0)
        return -1;
    return it_amqp_queue(a, exchange, 0, false) == 0 && it_amqp_consume(a) == 0 ? 0 : -1;
}

int it_amqp_declare_dlx(it_amqp_t *a, const char *dlx)
{
    amqp_exchange_declare(a->conn, 1, amqp_cstring_bytes(dlx), amqp_cstring_bytes("direct"), 0, 1,
                          0, 0, amqp_empty_table);
    return it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "exchange.declare (dead letters)");
}

int it_amqp_declare_rejected(it_amqp_t *a, const char *exchange)
{
    char name[300];
    snprintf(name, sizeof name, "%s.rejected", exchange);
    amqp_exchange_declare(a->conn, 1, amqp_cstring_bytes(name), amqp_cstring_bytes("fanout"), 0, 1,
                          0, 0, amqp_empty_table);
    return it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "exchange.declare (rejected)");
}

/* Declares an exclusive, auto-delete, server-named queue with args into
 * a->queue. */
static int declare_own_queue(it_amqp_t *a, amqp_table_t args)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(a->conn, 1, amqp_empty_bytes, 0, 0, 1, 1, args);
    if (it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "queue.declare") != 0 || !ok)
        return -1;
    snprintf(a->queue, sizeof a->queue, "%.*s", (int)ok->queue.len, (const char *)ok->queue.bytes);
    return 0;
}

int it_amqp_queue(it_amqp_t *a, const char *exchange, long max_length, bool reject_publish)
{
    amqp_table_entry_t e[2];
    int n = 0;
    if (max_length > 0) {
        e[n].key = amqp_cstring_bytes("x-max-length");
        e[n].value.kind = AMQP_FIELD_KIND_I64;
        e[n].value.value.i64 = max_length;
        n++;
    }
    if (reject_publish) {
        e[n].key = amqp_cstring_bytes("x-overflow");
        e[n].value.kind = AMQP_FIELD_KIND_UTF8;
        e[n].value.value.bytes = amqp_cstring_bytes("reject-publish");
        n++;
    }
    if (declare_own_queue(a, (amqp_table_t){n, e}) != 0)
        return -1;
    return it_amqp_bind(a, exchange);
}

int it_amqp_bind(it_amqp_t *a, const char *exchange)
{
    return it_amqp_bind_key(a, exchange, "#");
}

int it_amqp_bind_key(it_amqp_t *a, const char *exchange, const char *key)
{
    amqp_queue_bind(a->conn, 1, amqp_cstring_bytes(a->queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    return it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "queue.bind");
}

int it_amqp_tap_key(it_amqp_t *a, const char *url, const char *exchange, const char *key)
{
    if (it_amqp_open(a, url) != 0 || declare_own_queue(a, amqp_empty_table) != 0)
        return -1;
    return it_amqp_bind_key(a, exchange, key) == 0 && it_amqp_consume(a) == 0 ? 0 : -1;
}

long it_amqp_ready(it_amqp_t *a)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(a->conn, 1, amqp_cstring_bytes(a->queue), 1, 0, 1, 1, amqp_empty_table);
    if (it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "queue.declare passive") != 0 || !ok)
        return -1;
    return (long)ok->message_count;
}

int it_amqp_consume(it_amqp_t *a)
{
    amqp_basic_qos(a->conn, 1, 0, 1000, 0);
    if (it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "basic.qos") != 0)
        return -1;
    amqp_basic_consume(a->conn, 1, amqp_cstring_bytes(a->queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    if (it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "basic.consume") != 0)
        return -1;
    a->consuming = true;
    return 0;
}

static void it_copy_bytes(char *out, size_t n, amqp_bytes_t b)
{
    snprintf(out, n, "%.*s", (int)b.len, (const char *)b.bytes);
}

int it_amqp_get(it_amqp_t *a, int timeout_ms, it_msg_t *m)
{
    memset(m, 0, sizeof *m);
    amqp_envelope_t env;
    struct timeval tv = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000L};
    amqp_maybe_release_buffers(a->conn);
    amqp_rpc_reply_t r = amqp_consume_message(a->conn, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
        return 0;
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            amqp_frame_t f;
            if (amqp_simple_wait_frame(a->conn, &f) == AMQP_STATUS_OK &&
                f.frame_type == AMQP_FRAME_METHOD)
                it_fail("AMQP consume: unexpected method 0x%08X", f.payload.method.id);
            else
                it_fail("AMQP consume: unexpected frame");
            return -1;
        }
        it_amqp_check(a->conn, r, "consume");
        return -1;
    }
    amqp_basic_properties_t *p = &env.message.properties;
    m->body = malloc(env.message.body.len + 1);
    if (m->body) {
        memcpy(m->body, env.message.body.bytes, env.message.body.len);
        m->body[env.message.body.len] = '\0';
    }
    m->len = env.message.body.len;
    it_copy_bytes(m->routing_key, sizeof m->routing_key, env.routing_key);
    it_copy_bytes(m->exchange, sizeof m->exchange, env.exchange);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        it_copy_bytes(m->message_id, sizeof m->message_id, p->message_id);
    if (p->_flags & AMQP_BASIC_TYPE_FLAG)
        it_copy_bytes(m->type, sizeof m->type, p->type);
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        it_copy_bytes(m->content_type, sizeof m->content_type, p->content_type);
    if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
        m->delivery_mode = p->delivery_mode;
    if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) {
        m->timestamp = p->timestamp;
        m->has_timestamp = true;
    }
    for (int i = 0; (p->_flags & AMQP_BASIC_HEADERS_FLAG) && i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *h = &p->headers.entries[i];
        if (h->value.kind == AMQP_FIELD_KIND_UTF8 && h->key.len == 8 &&
            memcmp(h->key.bytes, "x-reason", 8) == 0)
            it_copy_bytes(m->x_reason, sizeof m->x_reason, h->value.value.bytes);
        if (h->value.kind == AMQP_FIELD_KIND_UTF8 && h->key.len == 7 &&
            memcmp(h->key.bytes, "subject", 7) == 0)
            it_copy_bytes(m->subject, sizeof m->subject, h->value.value.bytes);
    }
    m->delivery_tag = env.delivery_tag;
    m->redelivered = env.redelivered;
    amqp_destroy_envelope(&env);
    if (amqp_basic_ack(a->conn, 1, m->delivery_tag, 0) != 0) {
        it_fail("AMQP basic.ack failed");
        it_msg_free(m);
        return -1;
    }
    return m->body ? 1 : -1;
}

void it_msg_free(it_msg_t *m)
{
    free(m->body);
    m->body = NULL;
}

/* ---- JSON and events ---- */

json_object *it_json_get(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!obj || !json_object_is_type(obj, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return NULL;
    return v;
}

const char *it_json_str(json_object *obj, const char *key)
{
    json_object *v = it_json_get(obj, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

bool it_event_id_parse(const char *id, uint64_t *lsn, unsigned *ordinal)
{
    if (!id || strlen(id) < 18 || id[16] != '-' || !it_lsn_parse_hex16(id, lsn))
        return false;
    const char *p = id + 17;
    if (!*p || (*p == '0' && p[1]))
        return false;
    unsigned long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000000UL)
            return false;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    *ordinal = (unsigned)v;
    return true;
}

void it_region_word(const char *region, char *out, size_t n)
{
    size_t i = 0;
    for (; region[i] && i + 1 < n; i++)
        out[i] = (region[i] == '.' || region[i] == '*' || region[i] == '#') ? '_' : region[i];
    out[i] = '\0';
}

/* RFC 3339 UTC with exactly six fraction digits; sets *secs (Unix time). */
static bool it_time_parse(const char *s, int64_t *secs)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || strlen(s) != 27 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != '.' || s[26] != 'Z')
        return false;
    for (int i = 0; i < 26; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && i != 19 &&
            (s[i] < '0' || s[i] > '9'))
            return false;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *secs = (int64_t)timegm(&tm);
    return true;
}

/* The schemas of schemas/, loaded on first use and kept for the program's
 * lifetime (a test program checks thousands of events against them). */
static hms_schema_set_t *it_schemas;
static const hms_schema_t *it_envelope;

static int it_schemas_load(char *why, size_t whylen)
{
    hms_err_t err = {{0}};
    if (it_schemas)
        return 0;
    hms_schema_set_t *set = hms_schema_set_new();
    if (!set) {
        snprintf(why, whylen, "out of memory loading schemas");
        return -1;
    }
    if (hms_test_schema_load_dir(set, HMS_SCHEMAS_DIR, NULL, &err) != HMS_OK) {
        snprintf(why, whylen, "schemas in %s: %s", HMS_SCHEMAS_DIR, err.msg);
        hms_schema_set_free(set);
        return -1;
    }
    /* The envelope is the one schema no event names in dataschema. */
    hms_schema_t *env = hms_test_schema_load_file(HMS_SCHEMAS_DIR "/envelope.v1.json", &err);
    if (!env) {
        snprintf(why, whylen, "envelope schema: %s", err.msg);
        hms_schema_set_free(set);
        return -1;
    }
    it_envelope = hms_schema_set_find(set, hms_schema_id(env));
    hms_schema_free(env);
    if (!it_envelope) {
        snprintf(why, whylen, "envelope schema's $id not found in the set");
        hms_schema_set_free(set);
        return -1;
    }
    it_schemas = set;
    return 0;
}

/* Validates ev against the envelope schema, and its data against the schema
 * its dataschema names. */
static int it_schema_check(json_object *ev, char *why, size_t whylen)
{
    hms_err_t err = {{0}};
    if (it_schemas_load(why, whylen) != 0)
        return -1;
    const char *id = it_json_str(ev, "id");
    if (hms_schema_validate(it_envelope, ev, &err) != HMS_OK) {
        snprintf(why, whylen, "event %s fails the envelope schema: %s", id, err.msg);
        return -1;
    }
    const char *ds = it_json_str(ev, "dataschema");
    const hms_schema_t *data = ds ? hms_schema_set_find(it_schemas, ds) : NULL;
    if (!data) {
        snprintf(why, whylen, "event %s: dataschema %s names no schema in schemas/", id,
                 ds ? ds : "(missing)");
        return -1;
    }
    if (hms_schema_validate(data, it_json_get(ev, "data"), &err) != HMS_OK) {
        snprintf(why, whylen, "event %s: data fails %s: %s", id, ds, err.msg);
        return -1;
    }
    return 0;
}

#define WHY(...)                                                                                   \
    do {                                                                                           \
        snprintf(why, whylen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

json_object *it_event_check(const it_msg_t *m, const char *want_source, char *why, size_t whylen)
{
    enum json_tokener_error jerr = json_tokener_success;
    json_object *ev = json_tokener_parse_verbose(m->body, &jerr);
    if (!ev)
        WHY("body is not JSON (%s): %.200s", json_tokener_error_desc(jerr), m->body);
    if (!json_object_is_type(ev, json_type_object))
        WHY("body is not a JSON object");

    const char *id = it_json_str(ev, "id");
    const char *type = it_json_str(ev, "type");
    const char *subject = it_json_str(ev, "subject");
    const char *lsn_s = it_json_str(ev, "lsn");
    const char *time_s = it_json_str(ev, "time");
    json_object *data = it_json_get(ev, "data");
    uint64_t id_lsn = 0, lsn = 0;
    unsigned ordinal = 0;
    int64_t t = 0;

    const char *spec = it_json_str(ev, "specversion");
    if (!spec || strcmp(spec, "1.0") != 0)
        WHY("specversion is not \"1.0\"");
    if (!it_event_id_parse(id, &id_lsn, &ordinal))
        WHY("id %s is not <16 upper-case hex>-<ordinal>", id ? id : "(missing)");
    if (!it_lsn_parse(lsn_s, &lsn) || lsn != id_lsn)
        WHY("event %s: lsn %s does not match its id", id, lsn_s ? lsn_s : "(missing)");
    if (!it_time_parse(time_s, &t))
        WHY("event %s: time %s is not RFC 3339 UTC with 6 fraction digits", id,
            time_s ? time_s : "(missing)");
    int64_t ut = 0;
    if (!it_time_parse(it_json_str(ev, "updatedat"), &ut))
        WHY("event %s: updatedat is not RFC 3339 UTC with 6 fraction digits", id);
    if (!json_object_is_type(it_json_get(ev, "txid"), json_type_int))
        WHY("event %s: txid is not an integer", id);
    if (!json_object_is_type(it_json_get(ev, "version"), json_type_int))
        WHY("event %s: version is not an integer", id);
    if (!it_json_str(ev, "origin"))
        WHY("event %s: origin missing", id);
    const char *dct = it_json_str(ev, "datacontenttype");
    if (!dct || strcmp(dct, "application/json") != 0)
        WHY("event %s: datacontenttype is not application/json", id);
    if (want_source &&
        (!it_json_str(ev, "source") || strcmp(it_json_str(ev, "source"), want_source) != 0))
        WHY("event %s: source %s, want %s", id,
            it_json_str(ev, "source") ? it_json_str(ev, "source") : "(missing)", want_source);

    const char *verb;
    if (type && strcmp(type, "gov.hms.ehr.IncidentCreated.v1") == 0)
        verb = "created";
    else if (type && strcmp(type, "gov.hms.ehr.IncidentUpdated.v1") == 0)
        verb = "updated";
    else if (type && strcmp(type, "gov.hms.ehr.IncidentDeleted.v1") == 0)
        verb = "deleted";
    else if (type && strcmp(type, "gov.hms.ehr.IncidentsTruncated.v1") == 0)
        verb = "truncated";
    else if (type && strcmp(type, "gov.hms.ehr.IncidentSnapshot.v1") == 0)
        verb = "snapshot";
    else
        WHY("event %s: unexpected type %s", id, type ? type : "(missing)");

    if (!data || !json_object_is_type(data, json_type_object))
        WHY("event %s: data is not an object", id);
    if (strcmp(verb, "truncated") == 0) {
        /* No row: the subject is the table, the routing key has no region. */
        if (!subject || strcmp(subject, "public.incidents") != 0)
            WHY("event %s: truncation subject %s", id, subject ? subject : "(missing)");
        if (strcmp(m->routing_key, "incident.truncated") != 0)
            WHY("event %s: routing key %s, want incident.truncated", id, m->routing_key);
        goto properties;
    }
    const char *data_id = it_json_str(data, "id");
    if (!subject || !data_id || strcmp(subject, data_id) != 0)
        WHY("event %s: subject %s differs from data.id %s", id, subject ? subject : "(missing)",
            data_id ? data_id : "(missing)");
    json_object *dv = it_json_get(data, "version");
    if (!dv || json_object_get_int64(dv) != json_object_get_int64(it_json_get(ev, "version")))
        WHY("event %s: version differs from data.version", id);
    const char *region = it_json_str(data, "region");
    char word[200], rk[256];
    it_region_word(region ? region : "", word, sizeof word);
    snprintf(rk, sizeof rk, "incident.%s.%s", verb, word);
    /* A snapshot for one queue comes through the default exchange, routed
     * by the queue's name. */
    bool to_queue = strcmp(verb, "snapshot") == 0 && m->exchange[0] == '\0';
    if (!to_queue && strcmp(m->routing_key, rk) != 0)
        WHY("event %s: routing key %s, want %s", id, m->routing_key, rk);
    if (strcmp(verb, "snapshot") == 0 && !it_json_str(ev, "snapshot"))
        WHY("event %s: a snapshot event without its snapshot request id", id);

properties:
    /* The header a consistent-hash exchange partitions by. */
    if (!subject || strcmp(m->subject, subject) != 0)
        WHY("event %s: subject header \"%s\", want the subject %s", id, m->subject,
            subject ? subject : "(missing)");
    if (strcmp(m->message_id, id) != 0)
        WHY("event %s: message_id property %s", id, m->message_id);
    if (strcmp(m->type, type) != 0)
        WHY("event %s: type property %s", id, m->type);
    if (strcmp(m->content_type, "application/cloudevents+json") != 0)
        WHY("event %s: content_type property %s", id, m->content_type);
    if (m->delivery_mode != 2)
        WHY("event %s: delivery_mode %d, want 2 (persistent)", id, m->delivery_mode);
    if (!m->has_timestamp || (int64_t)m->timestamp < t - 1 || (int64_t)m->timestamp > t + 1)
        WHY("event %s: timestamp property %" PRIu64 " does not match time %s", id, m->timestamp,
            time_s);

    if (it_schema_check(ev, why, whylen) != 0)
        goto fail;
    return ev;
fail:
    json_object_put(ev);
    return NULL;
}

/* ---- other programs ---- */

int it_cmd_run(it_env_t *env, const char *tag, int timeout_ms, const char *const argv[])
{
    it_proc_t p;
    if (it_cmd_spawn(env, &p, tag, argv) != 0)
        return -1;
    int code = it_proc_wait(&p, timeout_ms);
    if (code < 0) {
        it_proc_kill(&p);
        char *out = it_proc_output(&p);
        it_fail("%s did not finish within %d ms: %s", argv[0], timeout_ms, out ? out : "");
        free(out);
        return -1;
    }
    return code;
}

int it_rabbitmqctl(it_env_t *env, int timeout_ms, ...)
{
    const char *argv[16];
    size_t n = 0;
    if (!env->rabbitmqctl || !*env->rabbitmqctl) {
        it_fail("HMS_TEST_RABBITMQCTL is not set");
        return -1;
    }
    argv[n++] = env->rabbitmqctl;
    va_list ap;
    va_start(ap, timeout_ms);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return it_cmd_run(env, "rabbitmqctl", timeout_ms, argv);
}

int it_loopback_socket(int port, bool listening)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = listening ? bind(fd, (struct sockaddr *)&sa, sizeof sa)
                       : connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc != 0 || (listening && listen(fd, 16) != 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether port is free on loopback now: a listener can take it. */
static bool port_free(int port)
{
    int fd = it_loopback_socket(port, true);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* Ports come from below Linux's ephemeral range (32768-60999 by default):
 * a port the kernel handed out as free can be taken by any outgoing
 * connection's local end before the server it was meant for binds it, which
 * was seen to keep a test's RabbitMQ node from listening on a busy machine. */
int it_free_port(void)
{
    static unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
    for (int attempt = 0; attempt < 200; attempt++) {
        seed = seed * 1103515245u + 12345u;
        int port = 20000 + (int)((seed >> 8) % 12000);
        if (port_free(port))
            return port;
    }
    return -1;
}

/* ---- throwaway PostgreSQL clusters ---- */

/* Directories of clusters still running, for the atexit handler: copies,
 * so a test's it_cluster_t may live anywhere. */
#define IT_MAX_CLUSTERS 8
static it_cluster_t it_live_clusters[IT_MAX_CLUSTERS];
static bool it_clusters_hooked;

static void it_clusters_atexit(void)
{
    for (int i = 0; i < IT_MAX_CLUSTERS; i++)
        if (it_live_clusters[i].dir[0])
            it_cluster_stop(&it_live_clusters[i]);
}

/* Runs a PostgreSQL server program as user postgres (initdb refuses root). */
static int it_pg_tool(it_env_t *env, const char *tag, int timeout_ms, const char *const argv[])
{
    const char *full[32];
    size_t n = 0;
    if (geteuid() == 0) {
        full[n++] = "/usr/sbin/runuser";
        full[n++] = "-u";
        full[n++] = "postgres";
        full[n++] = "--";
    }
    for (size_t i = 0; argv[i] && n < 31; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    return it_cmd_run(env, tag, timeout_ms, full);
}

static void it_print_file(const char *path, const char *what)
{
    it_proc_t fake;
    memset(&fake, 0, sizeof fake);
    snprintf(fake.log, sizeof fake.log, "%s", path);
    char *s = it_proc_output(&fake);
    fprintf(stderr, "---- %s (%s) ----\n%s---- end ----\n", what, path, s ? s : "(unreadable)\n");
    free(s);
}

/* Removes dir and everything in it. */
static void it_rm_rf(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/rm", "rm", "-rf", "--", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
}

/* A fresh /var/tmp directory owned by postgres, registered with the atexit
 * handler before anything is put in it: whatever happens next, it is removed.
 * -1 after it_fail (c->dir set: it_cluster_stop removes it). */
static int it_cluster_mkdir(it_env_t *env, it_cluster_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/var/tmp/hms-it-%s-XXXXXX", env->name);
    if (!mkdtemp(c->dir)) {
        it_fail("mkdtemp %s: %s", c->dir, strerror(errno));
        c->dir[0] = '\0';
        return -1;
    }
    int slot = -1;
    for (int i = 0; i < IT_MAX_CLUSTERS && slot < 0; i++)
        if (!it_live_clusters[i].dir[0])
            slot = i;
    if (slot < 0) {
        it_fail("more than %d throwaway clusters at once", IT_MAX_CLUSTERS);
        it_rm_rf(c->dir);
        c->dir[0] = '\0';
        return -1;
    }
    if (!it_clusters_hooked) {
        atexit(it_clusters_atexit);
        it_clusters_hooked = true;
    }
    snprintf(c->datadir, sizeof c->datadir, "%s/data", c->dir);
    it_live_clusters[slot] = *c;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(c->dir, pw->pw_uid, pw->pw_gid) != 0) {
            it_fail("chown %s to postgres: %s", c->dir, pw ? strerror(errno) : "no such user");
            return -1;
        }
    }
    return 0;
}

/* Keeps the atexit handler's copy of c in step with c (its running flag
 * decides whether the handler stops a server). */
static void it_cluster_sync(const it_cluster_t *c)
{
    for (int i = 0; i < IT_MAX_CLUSTERS; i++)
        if (c->dir[0] && strcmp(it_live_clusters[i].dir, c->dir) == 0)
            it_live_clusters[i] = *c;
}

int it_cluster_start(it_env_t *env, it_cluster_t *c, const char *const initdb_extra[],
                     const char *conf)
{
    char pgbin[256];
    const char *b = getenv("HMS_TEST_PGBIN");
    snprintf(pgbin, sizeof pgbin, "%s", b && *b ? b : "/usr/lib/postgresql/15/bin");
    if (it_cluster_mkdir(env, c) != 0) {
        if (c->dir[0])
            goto fail;
        return -1;
    }
    char initdb[300], pg_ctl[300], logfile[300];
    snprintf(initdb, sizeof initdb, "%s/initdb", pgbin);
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", pgbin);
    snprintf(logfile, sizeof logfile, "%s/server.log", c->dir);
    const char *argv[32] = {initdb, "-D",   c->datadir,         "-U", "postgres", "--auth=trust",
                            "-E",   "UTF8", "--locale=C.UTF-8", "-N"};
    size_t n = 10;
    for (size_t i = 0; initdb_extra && initdb_extra[i] && n < 31; i++)
        argv[n++] = initdb_extra[i];
    argv[n] = NULL;
    if (it_pg_tool(env, "initdb", 120000, argv) != 0) {
        it_fail("initdb into %s failed", c->datadir);
        goto fail;
    }
    c->port = it_free_port();
    char path[400];
    snprintf(path, sizeof path, "%s/postgresql.conf", c->datadir);
    FILE *f = fopen(path, "a");
    if (!f || c->port < 0) {
        it_fail("cannot configure %s", path);
        if (f)
            fclose(f);
        goto fail;
    }
    fprintf(f,
            "\n# hms-sync integration test cluster\n"
            "listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
            "max_wal_senders = 5\nmax_replication_slots = 5\nfsync = off\n"
            "synchronous_commit = off\nlog_min_messages = warning\n%s\n",
            c->port, c->dir, conf ? conf : "");
    fclose(f);
    const char *start[] = {pg_ctl, "-D", c->datadir, "-l",    logfile,
                           "-w",   "-t", "60",       "start", NULL};
    if (it_pg_tool(env, "pg_ctl-start", 90000, start) != 0) {
        it_fail("pg_ctl start of %s failed", c->datadir);
        it_print_file(logfile, "server log");
        goto fail;
    }
    c->running = true;
    it_cluster_conninfo(c, "postgres", "postgres", c->super_conninfo, sizeof c->super_conninfo);
    it_cluster_sync(c);
    return 0;
fail:
    it_cluster_stop(c);
    return -1;
}

/* pg_ctl stop -m immediate (as user postgres when root), quietly: it runs
 * from atexit too, where no env is at hand.  Returns pg_ctl's exit code,
 * or -1 when it could not run. */
static int it_stop_immediate(const char *datadir)
{
    char pg_ctl[300];
    const char *b = getenv("HMS_TEST_PGBIN");
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", b && *b ? b : "/usr/lib/postgresql/15/bin");
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        if (geteuid() == 0)
            execl("/usr/sbin/runuser", "runuser", "-u", "postgres", "--", pg_ctl, "-D", datadir,
                  "-m", "immediate", "-w", "stop", (char *)NULL);
        else
            execl(pg_ctl, "pg_ctl", "-D", datadir, "-m", "immediate", "-w", "stop", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid < 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void it_cluster_stop(it_cluster_t *c)
{
    if (!c->dir[0])
        return;
    char dir[sizeof c->dir];
    snprintf(dir, sizeof dir, "%s", c->dir);
    if (c->running) {
        it_stop_immediate(c->datadir);
        c->running = false;
    }
    it_rm_rf(dir);
    for (int i = 0; i < IT_MAX_CLUSTERS; i++)
        if (strcmp(it_live_clusters[i].dir, dir) == 0)
            memset(&it_live_clusters[i], 0, sizeof it_live_clusters[i]);
    c->dir[0] = '\0';
}

void it_cluster_conninfo(const it_cluster_t *c, const char *user, const char *dbname, char *out,
                         size_t n)
{
    snprintf(out, n, "host=127.0.0.1 port=%d user=%s dbname=%s connect_timeout=10", c->port, user,
             dbname);
}

/* ---- standbys and failover ---- */

/* The server programs' directory, as it_cluster_start finds it. */
static void it_pgbin_path(const char *prog, char *out, size_t n)
{
    const char *b = getenv("HMS_TEST_PGBIN");
    snprintf(out, n, "%s/%s", b && *b ? b : "/usr/lib/postgresql/15/bin", prog);
}

/* pg_basebackup needs a replication connection from loopback; initdb
 * --auth=trust writes that rule (PG 10 and later), but a changed
 * pg_hba.conf would make the backup fail with a less obvious message. */
static int it_check_replication_hba(const it_cluster_t *primary)
{
    PGconn *pg = it_pg_connect(primary->super_conninfo);
    if (!pg)
        return -1;
    char *v = it_pg_value(pg, "SELECT count(*) FROM pg_hba_file_rules WHERE type = 'host' "
                              "AND 'replication' = ANY (database) AND address = '127.0.0.1' "
                              "AND auth_method = 'trust'");
    PQfinish(pg);
    bool ok = v && strcmp(v, "0") != 0;
    free(v);
    if (!ok)
        it_fail("pg_hba.conf of %s does not trust replication from 127.0.0.1", primary->datadir);
    return ok ? 0 : -1;
}

int it_cluster_standby(it_env_t *env, const it_cluster_t *primary, it_cluster_t *standby,
                       const char *conf)
{
    char basebackup[300], pg_ctl[300], logfile[300], port[16], path[400];
    if (it_cluster_mkdir(env, standby) != 0)
        goto fail;
    if (it_check_replication_hba(primary) != 0)
        goto fail;
    it_pgbin_path("pg_basebackup", basebackup, sizeof basebackup);
    it_pgbin_path("pg_ctl", pg_ctl, sizeof pg_ctl);
    snprintf(logfile, sizeof logfile, "%s/server.log", standby->dir);
    snprintf(port, sizeof port, "%d", primary->port);
    /* -R: standby.signal and primary_conninfo, so it streams at once;
     * -X stream: the WAL written during the copy comes along; -c fast: no
     * wait for the primary's next checkpoint. */
    const char *backup[] = {
        basebackup, "-D", standby->datadir, "-h", "127.0.0.1", "-p", port, "-U", "postgres",
        "-R",       "-X", "stream",         "-c", "fast",      "-N", NULL};
    if (it_pg_tool(env, "pg_basebackup", 120000, backup) != 0) {
        it_fail("pg_basebackup of port %d into %s failed", primary->port, standby->datadir);
        goto fail;
    }
    /* The copied postgresql.conf names the primary's port and socket
     * directory: the last setting of a name wins, so appended lines take
     * over (postgresql.auto.conf, read later still, holds only
     * primary_conninfo). */
    standby->port = it_free_port();
    snprintf(path, sizeof path, "%s/postgresql.conf", standby->datadir);
    FILE *f = fopen(path, "a");
    if (!f || standby->port < 0) {
        it_fail("cannot configure %s", path);
        if (f)
            fclose(f);
        goto fail;
    }
    fprintf(
        f, "\n# hms-sync integration test standby\nport = %d\nunix_socket_directories = '%s'\n%s\n",
        standby->port, standby->dir, conf ? conf : "");
    fclose(f);
    const char *start[] = {pg_ctl, "-D", standby->datadir, "-l", logfile, "-w",
                           "-t",   "60", "start",          NULL};
    if (it_pg_tool(env, "pg_ctl-start-standby", 90000, start) != 0) {
        it_fail("pg_ctl start of standby %s failed", standby->datadir);
        it_print_file(logfile, "standby server log");
        goto fail;
    }
    standby->running = true;
    it_cluster_conninfo(standby, "postgres", "postgres", standby->super_conninfo,
                        sizeof standby->super_conninfo);
    it_cluster_sync(standby);
    return 0;
fail:
    it_cluster_stop(standby);
    return -1;
}

int it_cluster_crash(it_cluster_t *c)
{
    if (!c->running) {
        it_fail("%s is not running", c->datadir);
        return -1;
    }
    if (it_stop_immediate(c->datadir) != 0) {
        it_fail("pg_ctl stop -m immediate of %s failed", c->datadir);
        return -1;
    }
    c->running = false;
    it_cluster_sync(c);
    return 0;
}

int it_cluster_promote(it_env_t *env, it_cluster_t *c)
{
    char pg_ctl[300];
    it_pgbin_path("pg_ctl", pg_ctl, sizeof pg_ctl);
    const char *promote[] = {pg_ctl, "-D", c->datadir, "-w", "-t", "60", "promote", NULL};
    if (it_pg_tool(env, "pg_ctl-promote", 90000, promote) != 0) {
        it_fail("pg_ctl promote of %s failed", c->datadir);
        return -1;
    }
    return 0;
}

/* ---- more AMQP ---- */

int it_amqp_queue_durable(it_amqp_t *a, const char *name, const char *exchange)
{
    amqp_queue_declare(a->conn, 1, amqp_cstring_bytes(name), 0, 1, 0, 0, amqp_empty_table);
    if (it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "queue.declare durable") != 0)
        return -1;
    snprintf(a->queue, sizeof a->queue, "%s", name);
    return it_amqp_bind(a, exchange);
}

int it_amqp_delete_queue(it_amqp_t *a, const char *name)
{
    amqp_queue_delete(a->conn, 1, amqp_cstring_bytes(name), 0, 0);
    return it_amqp_check(a->conn, amqp_get_rpc_reply(a->conn), "queue.delete");
}

void it_amqp_abandon(it_amqp_t *a)
{
    if (a->conn)
        amqp_destroy_connection(a->conn);
    a->conn = NULL;
    a->consuming = false;
}

void it_amqp_drop_subscriber(const char *url, const char *queue, const char *exchange,
                             const char *dlx)
{
    it_amqp_t a;
    if (it_amqp_open(&a, url) != 0)
        return;
    if (queue) {
        char dlq[300];
        snprintf(dlq, sizeof dlq, "%s.dlq", queue);
        it_amqp_delete_queue(&a, queue);
        it_amqp_delete_queue(&a, dlq);
    }
    if (dlx)
        it_amqp_delete_exchange(&a, dlx);
    if (exchange) {
        it_amqp_delete_exchange(&a, exchange);
        it_amqp_delete_rejected(&a, exchange);
    }
    it_amqp_close(&a);
}

/* ---- the broker side of one connector under test ---- */

int it_bus_open(it_env_t *env, it_bus_t *b, bool consume)
{
    memset(b, 0, sizeof(*b));
    it_env_slot_name(env, b->slot, sizeof b->slot);
    it_env_exchange_name(env, b->exchange, sizeof b->exchange);
    if (it_amqp_open(&b->amqp, env->amqp_url) != 0 ||
        it_amqp_declare_exchange(&b->amqp, b->exchange) != 0)
        return -1;
    b->declared = true;
    if (consume &&
        (it_amqp_queue(&b->amqp, b->exchange, 0, false) != 0 || it_amqp_consume(&b->amqp) != 0))
        return -1;
    return 0;
}

void it_bus_close(it_env_t *env, it_bus_t *b)
{
    if (b->amqp.conn != NULL && b->declared) {
        it_amqp_delete_exchange(&b->amqp, b->exchange);
        it_amqp_delete_rejected(&b->amqp, b->exchange);
    }
    b->declared = false;
    it_amqp_close(&b->amqp);
    if (b->slot[0] != '\0' && env->pg != NULL)
        it_pg_drop_slot(env->pg, b->slot);
}

/* ---- HTTP ---- */

int it_http_get(const char *host, int port, const char *path, char *body, size_t bodylen)
{
    char portstr[16], req[512];
    const size_t rawcap = 1 << 20; /* on the heap: scrapers may run in threads */
    char *raw = malloc(rawcap);
    size_t len = 0;
    int status = -1, fd = -1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (body != NULL && bodylen > 0)
        body[0] = '\0';
    snprintf(portstr, sizeof portstr, "%d", port);
    if (raw == NULL || getaddrinfo(host, portstr, &hints, &ai) != 0) {
        free(raw);
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0)
        goto done;
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        goto done;
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
    if (write(fd, req, (size_t)n) != n)
        goto done;
    for (;;) {
        ssize_t got = read(fd, raw + len, rawcap - 1 - len);
        if (got <= 0)
            break;
        len += (size_t)got;
        if (len == rawcap - 1)
            break;
    }
    raw[len] = '\0';
    int code;
    char *start = strstr(raw, "\r\n\r\n");
    if (sscanf(raw, "HTTP/1.%*d %d", &code) == 1 && start != NULL) {
        status = code;
        if (body != NULL && bodylen > 0)
            snprintf(body, bodylen, "%s", start + 4);
    }
done:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    free(raw);
    return status;
}

double it_metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
    }
    return NAN;
}
