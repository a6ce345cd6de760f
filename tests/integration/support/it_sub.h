/* it_sub.h -- the subscriber side of an end-to-end test: a subscriber
 * database of the test's own set up by `hms-sync migrate --subscriber`,
 * `hms-sync consume` started and waited for until it consumes, and its
 * inbox waited on until it holds what was published.
 *
 * Several programs (consume, consume_outage, rejected, schema_changes,
 * snapshot, edge_cases) drive the real subscriber after the real
 * connector; each carried its own copy of this set-up and its waits, so
 * they live here once.  Conventions as in it.h: 0 or -1 after one line on
 * stderr. */
#ifndef HMS_IT_SUB_H
#define HMS_IT_SUB_H

#include "it.h"

/* A subscriber database beside the test's scratch database. */
typedef struct it_subdb {
    char dbname[160];                     /* <env->dbname>_sub */
    char conninfo[IT_CONNINFO_MAX + 200]; /* superuser, to dbname */
    PGconn *pg;                           /* superuser session on dbname */
} it_subdb_t;

/* Creates <env->dbname>_sub, runs `hms-sync migrate --subscriber` on it
 * (its output in <logdir>/<tag>-<pid>.log) and opens s->pg.  Returns 0 or
 * -1; either way it_subdb_drop undoes what was done. */
int it_subdb_create(it_env_t *env, it_subdb_t *s, const char *tag);
/* Closes s->pg and drops the database (WITH (FORCE): a subscriber a failed
 * test left running may still hold a session); safe on a zeroed s and
 * twice. */
void it_subdb_drop(it_subdb_t *s);

/* Spawns `hms-sync consume --pg pg --amqp <env's> --exchange exchange
 * --dead-letter-exchange dlx --queue queue --apply apply` plus extra
 * (NULL-terminated, may be NULL) as p, and waits up to 30 s until its log
 * says msg=consuming.  Returns 0, or -1 after printing the child's log
 * (spawn failed, it ended, or it never consumed); the caller still kills
 * p. */
int it_consume_start(it_env_t *env, it_proc_t *p, const char *tag, const char *pg,
                     const char *exchange, const char *dlx, const char *queue, const char *apply,
                     const char *const extra[]);

/* The rows of subscriber queue in hms_sync.inbox on sub; -1 when the query
 * failed. */
long it_inbox_count(PGconn *sub, const char *queue);
/* Waits up to timeout_ms until the inbox of queue holds want rows, polling
 * every 100 ms; returns the last count (or -1 on a failed query) for the
 * caller to assert on. */
long it_inbox_wait(PGconn *sub, const char *queue, long want, int timeout_ms);

#endif
