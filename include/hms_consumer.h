/* hms_consumer.h -- the subscriber library behind `hms-sync consume`: read
 * events from a RabbitMQ queue, validate them against the v1 contract,
 * record and apply each one in one PostgreSQL transaction, and only then
 * acknowledge it.  This header is self-contained: a subscriber written in C
 * needs nothing else of hms-sync's sources.
 *
 * Per message, as it is taken in:
 *   1. not JSON, an unknown type, or a schema violation: published
 *      (confirmed) to the dead-letter exchange with routing key <queue> and a
 *      header x-hms-reason saying why, then acked; counted dead_lettered.
 *   2. origin equal to opts.origin: acked with the batch, unapplied;
 *      counted echo.
 *   3. otherwise it joins the batch.
 * A batch is every message in hand, up to opts.batch (waiting up to
 * batch_linger_ms for more when there are fewer), applied in one statement
 * and one transaction: SELECT hms_sync.consume_batch(<queue>, <apply>,
 * <events>), which runs hms_sync.consume() for each event in arrival order,
 * so every inbox row and every apply commits together.  After the commit
 * one multiple ack settles the batch; each event is counted by its outcome
 * (applied, stale, duplicate).  A kill between commit and ack redelivers the
 * batch, and the inbox makes every event of it a duplicate.
 *   A transient failure (connection lost, serialization failure, deadlock,
 *   admin shutdown, out of resources) rolls the whole batch back; it is
 *   retried with capped exponential backoff, without an ack; counted
 *   retried.  An event whose apply raises any other error is left out of
 *   the batch (the others commit) and then tried alone: rejected with
 *   requeue (quorum queues count the deliveries) or retried locally
 *   (classic), and once it has been tried delivery_limit times it is
 *   dead-lettered with the SQL error as its reason.
 *
 * PostgreSQL is never waited for in a way that stops RabbitMQ from being
 * served: connecting, reconnecting and every statement are driven by the
 * library's poll loop, which keeps reading the queue's connection (AMQP
 * heartbeats, a consumer cancelled by the broker).  While PostgreSQL is
 * unreachable, deliveries the broker sends ahead (up to prefetch) wait in
 * arrival order, unacknowledged, and are applied once it is back.
 *
 * Ownership: the library borrows every string in hms_consumer_opts_t for the
 * duration of hms_consumer_run() and keeps nothing afterwards.  Counters and
 * error messages are written into the caller's structs. */
#ifndef HMS_CONSUMER_H
#define HMS_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What hms_consumer_run() ended with. */
typedef enum {
    HMS_CONSUMER_OK = 0,
    HMS_CONSUMER_ERR_CONFIG = -1, /* an option or a file it names is unusable */
    HMS_CONSUMER_ERR_PG = -2,     /* PostgreSQL unreachable at start, or the apply function
                                     or hms_sync.consume is missing */
    HMS_CONSUMER_ERR_AMQP = -3,   /* RabbitMQ unreachable at start, the login refused, an
                                     exchange missing or a declaration refused */
    HMS_CONSUMER_ERR_NOMEM = -4,  /* out of memory */
    HMS_CONSUMER_ERR_SYSTEM = -5, /* a system call failed, or an internal error */
} hms_consumer_status_t;

/* A static, never-NULL name for a status. */
const char *hms_consumer_strerror(hms_consumer_status_t st);

#define HMS_CONSUMER_ERR_MAX 512

/* One line saying what went wrong and where (host:port, file, setting);
 * never a password. */
typedef struct {
    char msg[HMS_CONSUMER_ERR_MAX];
} hms_consumer_err_t;

typedef struct hms_consumer_stats hms_consumer_stats_t;

typedef struct {
    const char *amqp_url;           /* amqp:// or amqps:// */
    const char *amqp_cacert;        /* amqps://: trusted CAs (PEM); NULL: the system's */
    const char *amqp_cert;          /* amqps://: client certificate (PEM); NULL: none */
    const char *amqp_key;           /* its private key (PEM) */
    bool amqp_external;             /* log in with SASL EXTERNAL (the client certificate) */
    const char *amqp_password_file; /* the password's file; NULL: the URL's password */
    const char *pg_conninfo;        /* the subscriber's database */
    const char *exchange;           /* topic exchange the queue binds to (hms.incidents) */
    const char *queue;              /* the queue; also the inbox's subscriber name */
    /* 0: consume queue.  N > 0: the events are spread over N partitions by
     * their subject header (consistent-hash exchange <queue>.hash, queues
     * <queue>.p1 .. <queue>.pN with a single active consumer each; every
     * run declares them all), and this run consumes <queue>.p<partition>,
     * 1 <= partition <= N.  The inbox and the dead-letter queue stay
     * <queue>'s: an incident's events always meet the same partition, and a
     * redelivery through another one is still a duplicate. */
    int partitions;
    int partition;
    const char *apply; /* SQL function f(event jsonb) returns text */
    /* Directory of emitted types' data schemas (<type>.json), checked
     * like run checks them; NULL: none. */
    const char *schemas;
    const char *const *binds;         /* binding keys; nbinds of them (at least one) */
    size_t nbinds;                    /* */
    const char *origin;               /* skip events with this origin; NULL: none */
    const char *dead_letter_exchange; /* direct exchange for dead letters (hms.incidents.dlx) */
    bool classic;                     /* classic queue instead of quorum */
    int prefetch;                     /* basic.qos prefetch count, 1..65535 */
    int batch;                        /* most events per transaction, >= 1 (0: 1) */
    int batch_linger_ms;              /* a short batch waits this long for more; 0: none */
    int delivery_limit;               /* tries of an event whose apply fails, >= 1 */
    int heartbeat_s;                  /* AMQP heartbeat; 0 disables */
    int connect_timeout_ms;           /* per connection attempt; also how long a statement in
                                         flight at SIGTERM is waited for */
    int retry_min_ms;                 /* backoff of retries and reconnects */
    int retry_max_ms;                 /* its cap */
    int stats_interval_ms;            /* counters are logged this often when they change */
    /* Called from the consumer's loop, never from the signal handler, after
     * each SIGHUP (several close together may make one call); NULL: SIGHUP
     * is ignored.  It runs between two waits, possibly while a statement is
     * in flight, and must return promptly. */
    void (*reload)(void *arg);
    void *reload_arg;
    /* Called from the consumer's loop with its figures after every batch
     * and at least once a second, also while a server is down; NULL: none.
     * With it the consumer also asks the broker for the queue's depth every
     * few seconds.  It must return promptly; s is valid for the call. */
    void (*stats)(const hms_consumer_stats_t *s, void *arg);
    void *stats_arg;
} hms_consumer_opts_t;

typedef struct {
    uint64_t applied;       /* apply said applied */
    uint64_t stale;         /* apply said stale: an older event than what the replica holds */
    uint64_t duplicate;     /* already in the inbox, or apply said duplicate */
    uint64_t echo;          /* skipped: its origin is opts.origin */
    uint64_t dead_lettered; /* published to the dead-letter exchange */
    uint64_t retried;       /* retries: transient failures and failed applies */
} hms_consumer_counters_t;

/* Upper bounds, in seconds, of the latency histogram's buckets. */
#define HMS_CONSUMER_LATENCY_BUCKETS 14
extern const double hms_consumer_latency_bounds[HMS_CONSUMER_LATENCY_BUCKETS];

/* What opts.stats receives.  Plain data: a struct copy is a snapshot. */
struct hms_consumer_stats {
    char queue[256];
    hms_consumer_counters_t n;
    uint64_t batches; /* transactions that committed events */
    /* Events committed (applied, stale or duplicate) by their latency: from
     * the source's commit (the event's time) to the commit that took them
     * in.  Bucket i counts latencies above bound i - 1 and up to bound i;
     * the last, those above every bound. */
    uint64_t latency[HMS_CONSUMER_LATENCY_BUCKETS + 1];
    double latency_sum;     /* seconds, over the events counted */
    double last_event_time; /* Unix time of the newest event taken in; 0: none yet */
    int64_t queue_messages; /* ready in the queue when last asked; -1: not known */
    bool pg_up;             /* the PostgreSQL session is open */
    bool amqp_up;           /* the consuming connection is up */
    char amqp_node[264];    /* its RabbitMQ node, "host:port"; "" while down */
};

/* Checks that the exchange and the dead-letter exchange exist (the
 * subscriber does not create them), declares <queue> and <queue>.dlq with
 * their bindings, then consumes until SIGTERM or SIGINT, which end the run
 * after the batch in hand is finished: HMS_CONSUMER_OK.  A statement in
 * flight at that moment is waited for up to connect_timeout_ms, then
 * abandoned unacknowledged (the broker redelivers it; if it had committed,
 * the inbox makes the redelivery a duplicate).  The handlers of SIGTERM,
 * SIGINT, SIGHUP and SIGPIPE (ignored) are installed for the duration of the
 * call and the old ones put back.  Failing to reach a server, to find the
 * exchanges, to declare the queues or to resolve the apply function at
 * start is an error (err, which may be NULL, says what and where); losing a
 * server later is retried with capped exponential backoff.  counters (may be
 * NULL) receives the final counts in every case; they are also logged
 * periodically and at exit. */
hms_consumer_status_t hms_consumer_run(const hms_consumer_opts_t *opts,
                                       hms_consumer_counters_t *counters, hms_consumer_err_t *err);

#endif
