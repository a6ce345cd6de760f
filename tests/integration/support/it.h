/* it.h -- the integration-test harness: a scratch database per test program,
 * the hms-sync binary as a child process, an AMQP consumer, PostgreSQL and
 * JSON helpers, and schema validation of received events.
 *
 * Servers come from the environment that tests/servers.sh writes:
 * HMS_TEST_PG (superuser conninfo), HMS_TEST_AMQP (amqp:// URL) and
 * HMS_TEST_RABBITMQCTL.  Without them a program exits 77 (skipped) unless
 * HMS_TEST_REQUIRE_SERVERS=1, when it fails.
 *
 * Conventions: functions returning int give 0 on success and -1 on failure
 * after printing one line on stderr naming what failed; functions returning
 * a pointer give NULL on failure.  Strings returned as char * are owned by
 * the caller (free()). */
#ifndef HMS_IT_H
#define HMS_IT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <amqp.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "hms_check.h"

#define IT_SKIP 77
#define IT_CONNINFO_MAX 1024

/* One test program's scratch database and server addresses. */
typedef struct {
    char name[64];                        /* test program name, e.g. "stream" */
    char dbname[128];                     /* hms_it_<name>_<pid> */
    char super_conninfo[IT_CONNINFO_MAX]; /* superuser, to dbname */
    char conninfo[IT_CONNINFO_MAX];       /* role hms_sync, to dbname: what the connector uses */
    char host[256];
    char port[16];
    const char *amqp_url;
    const char *rabbitmqctl; /* may be NULL */
    char logdir[512];        /* connector logs: <dir of HMS_BIN>/it-logs */
    PGconn *pg;              /* superuser session on dbname */
    unsigned seq;            /* for unique slot and exchange names */
    bool role_saved;         /* role hms_sync's password verifier was saved: */
    char *role_password;     /* it (NULL: none), restored by it_env_cleanup */
} it_env_t;

/* Reads the environment, creates the database, runs `hms-sync migrate`,
 * gives role hms_sync its test password (the role is cluster-wide: the old
 * one is saved and put back by it_env_cleanup) and opens env->pg.  Returns 0,
 * IT_SKIP when the servers are not configured (and not required), or -1. */
int it_env_init(it_env_t *env, const char *name);
/* Drops every slot of the database and the database itself, gives role
 * hms_sync back the password it had before, and closes env->pg. */
void it_env_cleanup(it_env_t *env);
/* For a server (or tool) the program needs and the environment does not
 * name: prints "it: <name>: <what>" and returns IT_SKIP, or -1 when
 * HMS_TEST_REQUIRE_SERVERS=1 (CI), where a missing server is a failure. */
int it_missing(const char *name, const char *what);
/* Fresh names: slot hms_it_<pid>_<n>, exchange hms.it.<pid>.<n>. */
void it_env_slot_name(it_env_t *env, char *out, size_t n);
void it_env_exchange_name(it_env_t *env, char *out, size_t n);

/* ---- child processes (the connector) ---- */

typedef struct {
    pid_t pid;       /* 0 once reaped */
    int status;      /* exit code, or 128 + signal, once reaped */
    char log[700];   /* the child's stdout+stderr */
    double start_ms; /* it_now_ms() at spawn */
} it_proc_t;

/* Spawns HMS_BIN with argv (argv[0] is the first argument, NULL-terminated),
 * its stdout and stderr appended to <logdir>/<tag>.log. */
int it_proc_spawn(it_env_t *env, it_proc_t *p, const char *tag, const char *const argv[]);
/* it_proc_spawn with the child's environment changed: each entry of envset
 * (NULL-terminated, may be NULL) is "NAME=VALUE", set or replacing the
 * test's own, or "NAME", removed.  The strings are copied into the child by
 * exec; the caller keeps them. */
int it_proc_spawn_env(it_env_t *env, it_proc_t *p, const char *tag, const char *const argv[],
                      const char *const envset[]);
/* Spawns `hms-sync run` against env's database with the given slot and
 * exchange, plus extra arguments (NULL-terminated, may be NULL). */
int it_conn_start(it_env_t *env, it_proc_t *p, const char *tag, const char *slot,
                  const char *exchange, const char *const extra[]);
/* Waits up to timeout_ms for the child to end; returns its exit code (128 +
 * signal when killed) or -1 on timeout (the child keeps running). */
int it_proc_wait(it_proc_t *p, int timeout_ms);
/* Sends sig if the child is still running. */
void it_proc_signal(it_proc_t *p, int sig);
/* SIGKILLs and reaps a child that is still running; safe to call twice. */
void it_proc_kill(it_proc_t *p);
/* The log's content (caller frees), "" when empty, NULL when unreadable. */
char *it_proc_output(const it_proc_t *p);
/* Number of lines in s (a trailing text without '\n' counts as one). */
int it_count_lines(const char *s);
/* Prints the child's log on stderr between "---- <what> (<log path>) ----"
 * and "---- end ----" (what NULL: the path alone), for a failing test to
 * show what the child said. */
void it_proc_dump(const it_proc_t *p, const char *what);
/* Waits up to timeout_ms for marker to appear in the child's log (the
 * moment a daemon says it is ready: "msg=consuming", "streaming from
 * replication slot").  Returns 0 once it does, or -1 when the child ended
 * without it or the time ran out; prints nothing, the caller decides what
 * a failure shows. */
int it_proc_wait_log(it_proc_t *p, const char *marker, int timeout_ms);

double it_now_ms(void);
void it_sleep_ms(int ms);

/* ---- PostgreSQL ---- */

/* Connects; NULL (and a message) on failure. */
PGconn *it_pg_connect(const char *conninfo);
/* Runs a command that returns no rows or whose rows are ignored. */
int it_pg_exec(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first column of the first row; NULL on error, no row, or SQL NULL. */
char *it_pg_value(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first value of the first row as a number (a count); -1 when the query
 * failed (its reason on stderr) or gave no row or NULL. */
long it_pg_count(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Every row's first column, in order, as a json array of strings (NULL
 * values become json null); NULL on error.  Caller puts the array. */
json_object *it_pg_column(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* pg_current_wal_insert_lsn(). 0 on error. */
uint64_t it_pg_insert_lsn(PGconn *c);
/* Starts a background load on a session of its own (superuser conninfo):
 * rows inserts into incidents with region `region`, each committed alone,
 * pause_ms apart.  Returns the session, or NULL after a line on stderr;
 * stop it with it_pg_load_stop. */
PGconn *it_pg_load_start(const char *conninfo, const char *region, int rows, int pause_ms);
/* Cancels the load (if still running) and closes its session; safe on
 * NULL, and sets *c to NULL. */
void it_pg_load_stop(PGconn **c);
/* The slot's confirmed_flush_lsn; 0 when it does not exist or is NULL. */
uint64_t it_pg_confirmed(PGconn *c, const char *slot);
/* Waits until the slot's confirmed_flush_lsn >= lsn; returns 0, or -1 on
 * timeout after printing the position it reached. */
int it_pg_wait_confirmed(PGconn *c, const char *slot, uint64_t lsn, int timeout_ms);
/* Waits until a walsender streams from the slot (START_REPLICATION ran). */
int it_pg_wait_slot_active(PGconn *c, const char *slot, int timeout_ms);
/* Terminates the slot's walsender if any and drops the slot; 0 when gone. */
int it_pg_drop_slot(PGconn *c, const char *slot);

/* "X/X" -> LSN; false on anything else. */
bool it_lsn_parse(const char *s, uint64_t *out);
/* 16 hex digits (as in an event id) -> LSN. */
bool it_lsn_parse_hex16(const char *s, uint64_t *out);
/* Formats an LSN as "X/X" into a static buffer of 4 rotating slots. */
const char *it_lsn_str(uint64_t lsn);

/* ---- AMQP consumer ---- */

typedef struct {
    amqp_connection_state_t conn;
    char queue[256];
    bool consuming;
} it_amqp_t;

typedef struct {
    char *body; /* NUL-terminated copy; caller frees with it_msg_free */
    size_t len;
    char routing_key[256];
    char exchange[256];
    char message_id[128];
    char type[128];
    char content_type[128];
    int delivery_mode; /* 0 when absent */
    uint64_t timestamp;
    bool has_timestamp;
    uint64_t delivery_tag;
    bool redelivered;
    char x_reason[1024]; /* header x-reason (a rejected change), "" when absent */
    char subject[256];   /* header subject (every event), "" when absent */
} it_msg_t;

/* Opens a connection and channel 1 to url. */
int it_amqp_open(it_amqp_t *a, const char *url);
void it_amqp_close(it_amqp_t *a);
/* Declares a durable topic exchange (as the connector does). */
int it_amqp_declare_exchange(it_amqp_t *a, const char *exchange);
int it_amqp_delete_exchange(it_amqp_t *a, const char *exchange);
/* Deletes the connector's rejected exchange beside exchange
 * (<exchange>.rejected), if it exists. */
void it_amqp_delete_rejected(it_amqp_t *a, const char *exchange);
/* Declares dlx as an administrator declares a dead-letter exchange for
 * `hms-sync consume` (durable, direct): consume only checks that it
 * exists. */
int it_amqp_declare_dlx(it_amqp_t *a, const char *dlx);
/* Declares <exchange>.rejected as the connector does (durable, fanout), so
 * that a queue can be bound to it before the first change is rejected. */
int it_amqp_declare_rejected(it_amqp_t *a, const char *exchange);
/* Declares an exclusive, auto-delete, server-named queue bound to exchange
 * with '#'.  max_length > 0 adds x-max-length, and reject_publish adds
 * x-overflow=reject-publish.  Does not consume (see it_amqp_consume). */
int it_amqp_queue(it_amqp_t *a, const char *exchange, long max_length, bool reject_publish);
/* Binds the queue to another exchange with '#'. */
int it_amqp_bind(it_amqp_t *a, const char *exchange);
/* Binds the queue to exchange with binding key key. */
int it_amqp_bind_key(it_amqp_t *a, const char *exchange, const char *key);
/* Messages ready in the queue, or -1. */
long it_amqp_ready(it_amqp_t *a);
/* Starts basic.consume with manual ack and a prefetch of 1000. */
int it_amqp_consume(it_amqp_t *a);
/* it_amqp_open, it_amqp_queue (no limit) and it_amqp_consume in one: a tap
 * that sees a copy of everything published to exchange from now on. */
int it_amqp_tap(it_amqp_t *a, const char *url, const char *exchange);
/* As it_amqp_tap, bound with key instead of '#'. */
int it_amqp_tap_key(it_amqp_t *a, const char *url, const char *exchange, const char *key);
/* Waits up to timeout_ms for one delivery; 1 = got one into m (free with
 * it_msg_free after use), 0 = timeout, -1 = error.  Acks the message. */
int it_amqp_get(it_amqp_t *a, int timeout_ms, it_msg_t *m);
void it_msg_free(it_msg_t *m);

/* ---- JSON and events ---- */

/* Member of obj (NULL if obj is not an object or lacks it). */
json_object *it_json_get(json_object *obj, const char *key);
/* String member, or NULL. */
const char *it_json_str(json_object *obj, const char *key);

/* Checks an event body against the contract: valid JSON, the envelope and
 * its data schema from schemas/, the id/lsn/subject/time formats, source
 * (when want_source is not NULL), and the AMQP properties and routing key
 * that must mirror it.  Returns the parsed event (caller puts it) or NULL
 * with a one-line reason in why. */
json_object *it_event_check(const it_msg_t *m, const char *want_source, char *why, size_t whylen);
/* The event source this env's database should produce:
 * /hms-ehr/<system identifier>/<dbname>/public.incidents; NULL on error. */
char *it_env_source(it_env_t *env);

/* Parses an event id "<16 hex>-<ordinal>"; false when malformed. */
bool it_event_id_parse(const char *id, uint64_t *lsn, unsigned *ordinal);

/* Replaces '.', '*' and '#' by '_' as the routing key's region word. */
void it_region_word(const char *region, char *out, size_t n);

/* ---- other programs, the broker's control tool, throwaway clusters ---- */

/* Spawns the program argv[0] (a path) with argv, output appended to
 * <logdir>/<tag>-<pid>.log as it_proc_spawn does for hms-sync. */
int it_cmd_spawn(it_env_t *env, it_proc_t *p, const char *tag, const char *const argv[]);
/* Runs argv to completion within timeout_ms (then kills it); returns its
 * exit code, or -1 on a spawn failure or timeout (its log is printed then). */
int it_cmd_run(it_env_t *env, const char *tag, int timeout_ms, const char *const argv[]);
/* Runs $HMS_TEST_RABBITMQCTL with the NULL-terminated arguments; returns its
 * exit code, -1 when it timed out or is not configured. */
int it_rabbitmqctl(it_env_t *env, int timeout_ms, ...) __attribute__((sentinel));
/* A TCP socket on 127.0.0.1:port, SO_REUSEADDR: listening (bound, backlog
 * 16) or connected to it; the caller closes it.  -1 on failure. */
int it_loopback_socket(int port, bool listening);
/* A loopback TCP port that is free now, chosen at random below the
 * kernel's ephemeral range (so no outgoing connection takes it meanwhile);
 * -1 on failure. */
int it_free_port(void);

/* A PostgreSQL cluster of the test's own: initdb (as user postgres when
 * root) into a fresh directory under /var/tmp, trust auth, loopback on a
 * free port, started with pg_ctl -w.  Stopped and removed by
 * it_cluster_stop, and by an atexit handler if the program ends first. */
typedef struct {
    char dir[256];     /* the directory removed at the end */
    char datadir[300]; /* <dir>/data */
    int port;
    char super_conninfo[IT_CONNINFO_MAX]; /* user postgres, dbname postgres */
    bool running;
} it_cluster_t;

/* initdb_extra: extra initdb arguments (NULL-terminated, may be NULL);
 * conf: lines appended to postgresql.conf (may be NULL).  Returns 0 or -1
 * (having cleaned up). */
int it_cluster_start(it_env_t *env, it_cluster_t *c, const char *const initdb_extra[],
                     const char *conf);
/* Stops the server (immediate) and removes its directory; safe to call twice. */
void it_cluster_stop(it_cluster_t *c);
/* A conninfo for the cluster as user to dbname, into out. */
void it_cluster_conninfo(const it_cluster_t *c, const char *user, const char *dbname, char *out,
                         size_t n);

/* Failover: a real streaming standby of a throwaway cluster, a crash, a
 * promotion. */

/* A hot standby of primary: pg_basebackup (-R -X stream -c fast, as user
 * postgres from 127.0.0.1) into a fresh directory under /var/tmp, on a port
 * of its own, started with pg_ctl -w.  conf: lines appended to its
 * postgresql.conf (may be NULL); the primary's own lines are copied with
 * the data.  Stopped and removed like any it_cluster_t.  Returns 0 or -1
 * (having cleaned up). */
int it_cluster_standby(it_env_t *env, const it_cluster_t *primary, it_cluster_t *standby,
                       const char *conf);
/* Stops the server as a crash would (pg_ctl stop -m immediate: no shutdown
 * checkpoint, walsenders cut off) and keeps its directory until
 * it_cluster_stop. */
int it_cluster_crash(it_cluster_t *c);
/* Promotes a standby (pg_ctl promote -w): it accepts writes on return. */
int it_cluster_promote(it_env_t *env, it_cluster_t *c);

/* ---- more AMQP ---- */

/* Declares the durable, non-exclusive, non-auto-delete queue `name` (it
 * survives the consumer's connection and a broker restart) and binds it to
 * exchange with '#'.  Sets a->queue. */
int it_amqp_queue_durable(it_amqp_t *a, const char *name, const char *exchange);
int it_amqp_delete_queue(it_amqp_t *a, const char *name);
/* Frees a connection the broker already closed, without a close handshake. */
void it_amqp_abandon(it_amqp_t *a);
/* For teardowns: deletes a subscriber's queue and <queue>.dlq, its
 * dead-letter exchange and exchange (any may be NULL) on a connection of its
 * own to url, since the test's may be gone; failures are ignored. */
void it_amqp_drop_subscriber(const char *url, const char *queue, const char *exchange,
                             const char *dlx);

/* ---- the broker side of one connector under test ---- */

/* Fresh slot and exchange names, an AMQP connection with the exchange
 * declared as the connector declares it, and with consume a server-named
 * queue bound to it and being consumed (it_amqp_get reads it). */
typedef struct {
    char slot[64];
    char exchange[128];
    it_amqp_t amqp;
    bool declared; /* the exchange exists: it_bus_close deletes it */
} it_bus_t;

/* Fills b (zeroing it first); 0, or -1 after a line on stderr. */
int it_bus_open(it_env_t *env, it_bus_t *b, bool consume);
/* Deletes the exchange, closes the connection and drops the slot; safe on a
 * zeroed or half-opened bus, and twice. */
void it_bus_close(it_env_t *env, it_bus_t *b);

/* ---- HTTP (the connector's metrics listener) ---- */

/* One HTTP/1.0 GET of path from host:port (host: a numeric IPv4 or IPv6
 * address or a name), 3 s per step.  Returns the status code, or -1 when
 * nothing sensible came back; the body (NUL-terminated, cut to bodylen - 1)
 * goes to body when it is not NULL. */
int it_http_get(const char *host, int port, const char *path, char *body, size_t bodylen);
/* The value of the sample whose name (with labels, exactly as rendered) is
 * series in a Prometheus text exposition; NAN when it lacks one. */
double it_metric(const char *text, const char *series);

/* ---- the program's main ---- */

struct it_subdb; /* it_sub.h */

/* What an integration program runs, in order: `offline` (tests that need no
 * server; they run even when the servers are missing), then it_env_init
 * into env, source, sub, setup, `suite`, teardown, sub's drop and
 * it_env_cleanup.  The pointers are the program's own statics; it_main
 * keeps none of them. */
typedef struct {
    const char *name;        /* "stream": messages, and the scratch database's name */
    Suite *(*suite)(void);   /* the tests that need the servers */
    it_env_t *env;           /* NULL: the program makes its own databases and
                                needs only HMS_TEST_PG (setup reads it) */
    char **source;           /* optional: set to it_env_source(env); freed at the end */
    struct it_subdb *sub;    /* optional, with env: a subscriber database made by
                                it_subdb_create before setup, dropped after teardown */
    Suite *(*offline)(void); /* optional */
    int (*setup)(void);      /* optional: 0, IT_SKIP (through it_missing) or -1 */
    void (*teardown)(void);  /* optional: runs whenever setup ran, even if it failed */
} it_main_t;

/* Runs the program m describes with SIGPIPE ignored (a broken broker
 * connection must fail a test, not kill the program before its cleanup) and
 * returns its exit status: 0 when every test passed; IT_SKIP when the
 * servers are not configured, nor required, and no offline test failed;
 * 1 otherwise. */
int it_main(const it_main_t *m);

/* Adds to s a TCase `name` of the one test, with the checked fixture
 * setup/teardown (either may be NULL) and a timeout of timeout_s seconds:
 * the shape most programs give each of their tests. */
void it_tcase(Suite *s, const char *name, void (*setup)(void), void (*teardown)(void),
              double timeout_s, const TTest *test);

/* An integration program's whole main: IT_MAIN(.name = "stream", .env =
 * &g_env, .suite = stream_suite), with any other it_main_t member. */
#define IT_MAIN(...)                                                                               \
    int main(void)                                                                                 \
    {                                                                                              \
        static const it_main_t it_main_program = {__VA_ARGS__};                                    \
        return it_main(&it_main_program);                                                          \
    }

#endif
