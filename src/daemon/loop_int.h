/* loop_int.h -- the state of `hms-sync run`'s event loop, shared by the
 * files the loop is made of: loop.c (connections, reading, publishing,
 * the loop itself) and loop_figures.c (what it reports). */
#ifndef HMS_DAEMON_LOOP_INT_H
#define HMS_DAEMON_LOOP_INT_H

#include <stdint.h>
#include <stdio.h>

#include "core/feedback.h"
#include "core/metrics.h"
#include "core/outq.h"
#include "core/pgoutput.h"
#include "core/tracker.h"
#include "daemon/changes.h"
#include "daemon/gate.h"
#include "daemon/http.h"
#include "daemon/loop.h"
#include "daemon/progress.h"
#include "daemon/publisher.h"
#include "daemon/repl.h"
#include "daemon/snapshot.h"

typedef struct {
    const hms_run_opts_t *opts;
    hms_repl_t *repl;       /* the replication session, once streaming */
    hms_repl_t *pg_attempt; /* a session being opened (connecting) */
    hms_pub_t *pub;
    hms_pgo_decoder_t *dec;
    hms_encoder_t *enc;
    hms_tracker_t *trk;
    hms_outq_t *q;
    hms_progress_t *progress;
    hms_snapshot_t *snap;
    hms_gate_t *gate;    /* schema and size check before queueing; rejections */
    uint64_t *confirmed; /* scratch for hms_outq_ack, queue capacity entries */
    size_t confirmed_cap;
    char sysid[32];
    char dbname[128];

    hms_changes_t ch; /* the stream's decoding state; borrows dec, enc, trk, q */

    hms_feedback_t fb; /* its last_recv_ms also serves the silence check */

    int64_t pg_retry_at, amqp_retry_at, republish_at;
    int pg_backoff, amqp_backoff, republish_backoff;
    /* One event in flight until the broker accepts one (core/outq.h: why). */
    bool probing;
    int amqp_next_node; /* the node of the amqp list the next connect tries first */

    uint64_t discard_tag;
    bool stopping;
    int64_t stop_deadline;
    bool fatal;
    hms_status_t fatal_st; /* HMS_ERR_CONFIG: the operator must change something (exit 2) */
    hms_err_t fatal_err;

    /* No replication session yet: the next connect is the first (creates
     * the encoder, may create the slot).  A standby stays here until the
     * active connector lets go of the slot. */
    bool pg_first_pending;
    bool pg_waiting;         /* said so: waiting for a busy slot (or as a standby) */
    int64_t slot_wait_until; /* the first start waits this long for a busy slot */
    uint64_t n_published, n_confirmed, n_nacked, n_returned;
    hms_metrics_t m;
    hms_http_t *http;
    int64_t pending_since_ms;
    uint64_t refusals_in_round;
    int64_t last_stats_ms;
} loop_t;

/* v in decimal into buf, which it returns: for log values. */
static inline const char *hms_loop_u64s(uint64_t v, char *buf, size_t n)
{
    snprintf(buf, n, "%llu", (unsigned long long)v);
    return buf;
}

/* Refreshes the gauges and hands a snapshot to the HTTP thread (and pets
 * the watchdog): every loop turn. */
void hms_loop_update_metrics(loop_t *L, int64_t now);
/* Logs the counters every 30 s. */
void hms_loop_log_stats(loop_t *L, int64_t now);

#endif
