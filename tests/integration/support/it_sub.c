/* it_sub.c -- the subscriber side of an end-to-end test (see it_sub.h). */
#include "it_sub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IT_CONSUME_ARGS 64

int it_subdb_create(it_env_t *env, it_subdb_t *s, const char *tag)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dbname, sizeof s->dbname, "%s_sub", env->dbname);
    PGconn *admin = it_pg_connect(getenv("HMS_TEST_PG"));
    if (admin == NULL)
        return -1;
    int rc = it_pg_exec(admin, "CREATE DATABASE %s", s->dbname);
    PQfinish(admin);
    if (rc != 0)
        return -1;
    /* A repeated keyword wins over the earlier one in a conninfo. */
    snprintf(s->conninfo, sizeof s->conninfo, "%s dbname=%s", env->super_conninfo, s->dbname);
    const char *argv[] = {HMS_BIN, "migrate", "--subscriber", "--pg", s->conninfo, NULL};
    if (it_cmd_run(env, tag, 120000, argv) != 0) {
        fprintf(stderr, "it: %s: hms-sync migrate --subscriber failed\n", s->dbname);
        return -1;
    }
    s->pg = it_pg_connect(s->conninfo);
    return s->pg != NULL ? 0 : -1;
}

void it_subdb_drop(it_subdb_t *s)
{
    if (s->pg != NULL)
        PQfinish(s->pg);
    s->pg = NULL;
    const char *pg = getenv("HMS_TEST_PG");
    PGconn *admin = s->dbname[0] && pg ? it_pg_connect(pg) : NULL;
    if (admin != NULL) {
        it_pg_exec(admin, "DROP DATABASE IF EXISTS %s WITH (FORCE)", s->dbname);
        PQfinish(admin);
    }
    s->dbname[0] = '\0';
}

int it_consume_start(it_env_t *env, it_proc_t *p, const char *tag, const char *pg,
                     const char *exchange, const char *dlx, const char *queue, const char *apply,
                     const char *const extra[])
{
    const char *argv[IT_CONSUME_ARGS] = {
        "consume",     "--pg",       pg,       "--amqp",
        env->amqp_url, "--exchange", exchange, "--dead-letter-exchange",
        dlx,           "--queue",    queue,    "--apply",
        apply};
    int n = 13;
    for (int k = 0; extra != NULL && extra[k] != NULL; k++) {
        if (n == IT_CONSUME_ARGS - 1) {
            fprintf(stderr, "it: %s: more than %d arguments for consume\n", tag, n);
            return -1;
        }
        argv[n++] = extra[k];
    }
    argv[n] = NULL;
    if (it_proc_spawn(env, p, tag, argv) != 0)
        return -1;
    if (it_proc_wait_log(p, "msg=consuming", 30000) == 0)
        return 0;
    it_proc_dump(p, tag);
    return -1;
}

long it_inbox_count(PGconn *sub, const char *queue)
{
    char *v =
        it_pg_value(sub, "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = '%s'", queue);
    long n = v != NULL ? atol(v) : -1;
    free(v);
    return n;
}

long it_inbox_wait(PGconn *sub, const char *queue, long want, int timeout_ms)
{
    double end = it_now_ms() + timeout_ms;
    long n;
    while ((n = it_inbox_count(sub, queue)) >= 0 && n < want && it_now_ms() < end)
        it_sleep_ms(100);
    return n;
}
