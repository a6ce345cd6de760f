/* loop_figures.c -- what run's loop reports: the gauges of /metrics and
 * the status page, and the periodic progress line of the log. */
#include "daemon/loop_int.h"

#include <sys/time.h>

#include "common/log.h"
#include "core/lsn.h"
#include "daemon/notify.h"

#define STATS_INTERVAL_MS 30000

void hms_loop_update_metrics(loop_t *L, int64_t now)
{
    hms_metrics_t *m = &L->m;
    m->inflight = hms_outq_outstanding(L->q);
    m->confirmed_flush_lsn = L->fb.sent_flush;
    m->lag_bytes =
        L->ch.received_lsn > L->fb.sent_flush ? L->ch.received_lsn - L->fb.sent_flush : 0;
    bool pending = hms_outq_len(L->q) > 0 || L->ch.in_tx;
    if (!pending) {
        L->pending_since_ms = 0;
        m->lag_seconds = 0;
    } else {
        if (L->pending_since_ms == 0)
            L->pending_since_ms = now;
        int64_t commit = hms_tracker_flushed_commit_time(L->trk);
        double since_pending = (double)(now - L->pending_since_ms) / 1000.0;
        if (commit != 0) {
            struct timeval tv;
            gettimeofday(&tv, NULL);
            int64_t unix_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
            double behind = (double)(unix_us - (commit + HMS_PG_EPOCH_OFFSET_USEC)) / 1e6;
            m->lag_seconds = behind > since_pending ? behind : since_pending;
        } else {
            m->lag_seconds = since_pending;
        }
    }
    snprintf(m->slot, sizeof(m->slot), "%s", L->opts->repl.slot);
    const hms_progress_wal_t *w = L->progress != NULL ? hms_progress_wal(L->progress) : NULL;
    m->wal_retained_bytes = w != NULL && w->known ? w->retained_bytes : -1;
    m->wal_keep_max_bytes = w != NULL && w->known ? w->keep_max_bytes : -1;
    snprintf(m->wal_status, sizeof(m->wal_status), "%s", w != NULL ? w->status : "");
    m->pg_up = L->repl != NULL;
    m->amqp_up = L->pub != NULL || L->opts->discard;
    snprintf(m->amqp_node, sizeof(m->amqp_node), "%s", L->pub ? hms_pub_target(L->pub) : "");
    m->streaming = L->repl != NULL && !L->stopping;
    m->standby = L->repl == NULL && L->pg_first_pending && L->opts->standby;
    snprintf(m->identity_table, sizeof(m->identity_table), "%s", L->ch.identity_table);
    m->identity = L->ch.identity;
    for (int r = 0; r < HMS_REJECT_NREASONS; r++)
        m->rejected[r] = hms_gate_rejected(L->gate, (hms_reject_reason_t)r);
    hms_snapshot_stats_t ss;
    hms_snapshot_stats(L->snap, &ss);
    snprintf(m->snapshot_id, sizeof(m->snapshot_id), "%s", ss.id);
    m->snapshot_rows_done = ss.rows_done;
    m->snapshot_rows_total = ss.rows_total;
    m->snapshot_rows_published = ss.rows_published;
    m->snapshot_rows_superseded = ss.rows_skipped;
    if (L->http != NULL)
        hms_http_publish(L->http, m);
    hms_notify_watchdog(now);
}

void hms_loop_log_stats(loop_t *L, int64_t now)
{
    if (now - L->last_stats_ms < STATS_INTERVAL_MS)
        return;
    L->last_stats_ms = now;
    char a[24], b[24], c[24], d[24], e[24], lsn[HMS_LSN_STR_MAX];
    hms_lsn_format(hms_tracker_flush_lsn(L->trk), lsn);
    hms_log(HMS_LOG_INFO, "progress", "published", hms_loop_u64s(L->n_published, a, sizeof(a)),
            "confirmed", hms_loop_u64s(L->n_confirmed, b, sizeof(b)), "nacked",
            hms_loop_u64s(L->n_nacked, c, sizeof(c)), "returned",
            hms_loop_u64s(L->n_returned, d, sizeof(d)), "inflight",
            hms_loop_u64s(hms_outq_outstanding(L->q), e, sizeof(e)), "lsn", lsn, NULL);
}
