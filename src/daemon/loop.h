/* loop.h -- `hms-sync run`: the one event loop that moves committed changes
 * from the replication slot to RabbitMQ and confirms the slot only as far as
 * the broker has confirmed.
 *
 *   walsender --CopyData--> decoder --> encoder --> outq --> publisher
 *       ^                                            |          |
 *       +---- standby status (flush) <--- tracker <--+-- acks --+
 *
 * One poll() over both sockets, with timers for feedback, heartbeats,
 * reconnects and republishing: neither side ever blocks the other. */
#ifndef HMS_DAEMON_LOOP_H
#define HMS_DAEMON_LOOP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "daemon/publisher.h"
#include "daemon/repl.h"

typedef struct {
    hms_repl_opts_t repl;
    hms_pub_opts_t pub;
    int window;                 /* unconfirmed publishes in flight */
    size_t max_event_bytes;     /* larger events are rejected as a reference */
    const char *schemas;        /* data schemas of emitted types (a directory); NULL: none */
    int snapshot_chunk;         /* rows per snapshot chunk */
    int feedback_interval_ms;   /* standby status at least this often */
    int replication_timeout_ms; /* silence from PostgreSQL that counts as a dead link; 0: never */
    int shutdown_timeout_ms;    /* how long SIGTERM waits for confirms */
    int retry_min_ms;           /* reconnect / republish backoff */
    int retry_max_ms;
    bool discard;        /* debugging: drop events instead of publishing */
    const char *metrics; /* HOST:PORT for /metrics, /healthz, /readyz; NULL: off */
    bool standby;        /* wait (not ready) while another process holds the slot */
    /* Called from the loop after SIGHUP (NULL: SIGHUP is ignored): re-read
     * what can change without a restart and reopen the log. */
    void (*reload)(void *arg);
    void *reload_arg;
} hms_run_opts_t;

/* Runs until SIGTERM/SIGINT (HMS_OK after a clean stop) or a fatal error
 * (err says what and how to fix it): HMS_ERR_CONFIG when the operator must
 * change the database first (a captured table without REPLICA IDENTITY FULL
 * at start), HMS_ERR_FATAL (or an earlier failure's own status) otherwise.
 * Failing to reach either server at start is an error; losing one later is
 * retried with capped exponential backoff. */
hms_status_t hms_run(const hms_run_opts_t *opts, hms_err_t *err);

#endif
