/* runview.c -- run's metrics, readiness, status page and status JSON. */
#include "daemon/runview.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "core/lsn.h"
#include "core/metrics.h"
#include "core/statuspage.h"

/* The trend's series. */
enum { S_LAG_BYTES, S_LAG_SECONDS, S_PUBLISHED, S_CONFIRMED };

static const hms_page_chart_t charts[] = {
    {"Lag", "seconds", S_LAG_SECONDS, false},
    {"Lag in WAL", "bytes", S_LAG_BYTES, false},
    {"Published", "events/s", S_PUBLISHED, true},
    {"Confirmed", "events/s", S_CONFIRMED, true},
};
#define NCHARTS (sizeof(charts) / sizeof(charts[0]))

/* A lag this long is worth a look (deploy/'s alert fires at 60 s). */
#define LAG_WARN_SECONDS 60.0

static uint64_t published_total(const hms_metrics_t *m)
{
    uint64_t n = 0;
    for (int i = 0; i < HMS_METRICS_MAX_TYPES && m->type_name[i] != NULL; i++)
        n += m->published[i];
    return n;
}

static uint64_t rejected_total(const hms_metrics_t *m)
{
    uint64_t n = 0;
    for (int r = 0; r < HMS_REJECT_NREASONS; r++)
        n += m->rejected[r];
    return n;
}

static hms_status_t render(const void *snap, hms_buf_t *out)
{
    return hms_metrics_render(snap, HMS_VERSION, out);
}

static bool ready(const void *snap, char *why, size_t whylen)
{
    return hms_metrics_ready(snap, why, whylen);
}

static void sample(const void *snap, double v[HMS_TREND_SERIES])
{
    const hms_metrics_t *m = snap;
    v[S_LAG_BYTES] = (double)m->lag_bytes;
    v[S_LAG_SECONDS] = m->lag_seconds;
    v[S_PUBLISHED] = (double)published_total(m);
    v[S_CONFIRMED] = (double)m->confirms;
}

/* The newest rate of series s in the trend, or -1 before two samples. */
static double last_rate(const hms_trend_t *t, int s)
{
    size_t n = hms_trend_len(t);
    return n >= 2 ? hms_trend_rate(t, n - 1, s) : -1;
}

static void rate_text(double r, char *out, size_t n)
{
    if (r < 0)
        snprintf(out, n, "(after two samples)");
    else
        snprintf(out, n, "%.1f events/s", r);
}

/* Where the slot's WAL stands against the server's limit; a warning once
 * it is past 80 % of it, or no longer "reserved" (section 4.3 of
 * docs/operations.md). */
static void wal_row(hms_page_row_t *row, const hms_metrics_t *m)
{
    if (m->wal_retained_bytes < 0) {
        hms_page_row(row, "WAL retained", false, "not read yet");
        return;
    }
    bool unreserved = m->wal_status[0] != '\0' && strcmp(m->wal_status, "reserved") != 0;
    if (m->wal_keep_max_bytes < 0) {
        hms_page_row(row, "WAL retained", unreserved,
                     "%lld bytes (max_slot_wal_keep_size: no limit; wal_status %s)",
                     (long long)m->wal_retained_bytes, m->wal_status);
        return;
    }
    double share = m->wal_keep_max_bytes > 0
                       ? (double)m->wal_retained_bytes / (double)m->wal_keep_max_bytes
                       : 1;
    hms_page_row(row, "WAL retained", unreserved || share > 0.8,
                 "%lld of %lld bytes (%.1f %% of max_slot_wal_keep_size; wal_status %s)",
                 (long long)m->wal_retained_bytes, (long long)m->wal_keep_max_bytes, share * 100.0,
                 m->wal_status);
}

static hms_status_t page(const void *snap, const hms_trend_t *t, hms_buf_t *out)
{
    const hms_metrics_t *m = snap;
    char why[400], lsn[HMS_LSN_STR_MAX], rate[48];
    bool ok = hms_metrics_ready(m, why, sizeof(why));
    hms_page_row_t rows[14];
    size_t n = 0;
    hms_lsn_format(m->confirmed_flush_lsn, lsn);
    hms_page_row(&rows[n++], "Slot", false, "%s", m->slot);
    hms_page_row(&rows[n++], "Confirmed LSN", false, "%s", lsn);
    hms_page_row(&rows[n++], "Lag", m->lag_seconds >= LAG_WARN_SECONDS, "%.1f s", m->lag_seconds);
    hms_page_row(&rows[n++], "Lag in WAL", false, "%llu bytes", (unsigned long long)m->lag_bytes);
    rate_text(last_rate(t, S_PUBLISHED), rate, sizeof(rate));
    hms_page_row(&rows[n++], "Published", false, "%s (%llu in all)", rate,
                 (unsigned long long)published_total(m));
    rate_text(last_rate(t, S_CONFIRMED), rate, sizeof(rate));
    hms_page_row(&rows[n++], "Confirmed", false, "%s (%llu in all)", rate,
                 (unsigned long long)m->confirms);
    wal_row(&rows[n++], m);
    hms_page_row(&rows[n++], "In flight", false, "%llu", (unsigned long long)m->inflight);
    hms_page_row(&rows[n++], "RabbitMQ node", !m->amqp_up, "%s",
                 m->amqp_node[0] ? m->amqp_node : "(disconnected)");
    hms_page_row(&rows[n++], "PostgreSQL", !m->pg_up, "%s",
                 m->pg_up ? "connected" : "disconnected");
    hms_page_row(&rows[n++], "Rejected changes", rejected_total(m) > 0, "%llu",
                 (unsigned long long)rejected_total(m));
    if (m->snapshot_id[0] != '\0')
        hms_page_row(&rows[n++], "Snapshot", false, "%s: %lld of %lld rows", m->snapshot_id,
                     (long long)m->snapshot_rows_done, (long long)m->snapshot_rows_total);
    else
        hms_page_row(&rows[n++], "Snapshot", false, "none in progress");
    hms_log_problem_t lp;
    hms_log_last_problem(&lp);
    hms_page_problem_row(&rows[n++], lp.when, lp.what, lp.age_s);
    hms_page_t pg = {.title = "hms-sync run",
                     .headline = ok ? "ready: streaming" : why,
                     .ok = ok,
                     .rows = rows,
                     .nrows = n,
                     .charts = charts,
                     .ncharts = NCHARTS,
                     .trend = t,
                     .refresh_s = 5};
    return hms_page_render(&pg, out);
}

static void json_str(hms_buf_t *out, const char *key, const char *v)
{
    hms_buf_printf(out, ",\"%s\":", key);
    hms_buf_append_json_str(out, v, strlen(v));
}

static hms_status_t json(const void *snap, const hms_trend_t *t, hms_buf_t *out)
{
    const hms_metrics_t *m = snap;
    char why[400], lsn[HMS_LSN_STR_MAX];
    bool ok = hms_metrics_ready(m, why, sizeof(why));
    hms_lsn_format(m->confirmed_flush_lsn, lsn);
    hms_buf_printf(out, "{\"command\":\"run\",\"ready\":%s", ok ? "true" : "false");
    json_str(out, "not_ready", ok ? "" : why);
    json_str(out, "slot", m->slot);
    json_str(out, "confirmed_lsn", lsn);
    hms_buf_printf(out,
                   ",\"lag_bytes\":%llu,\"lag_seconds\":%.3f,\"published_total\":%llu,"
                   "\"confirmed_total\":%llu,\"inflight\":%llu,\"rejected_total\":%llu,"
                   "\"pg_up\":%s,\"amqp_up\":%s",
                   (unsigned long long)m->lag_bytes, m->lag_seconds,
                   (unsigned long long)published_total(m), (unsigned long long)m->confirms,
                   (unsigned long long)m->inflight, (unsigned long long)rejected_total(m),
                   m->pg_up ? "true" : "false", m->amqp_up ? "true" : "false");
    json_str(out, "amqp_node", m->amqp_node);
    if (m->wal_retained_bytes >= 0) {
        hms_buf_printf(out, ",\"wal_retained_bytes\":%lld,\"wal_keep_max_bytes\":%lld",
                       (long long)m->wal_retained_bytes, (long long)m->wal_keep_max_bytes);
        json_str(out, "wal_status", m->wal_status);
    } else {
        hms_buf_printf(out, ",\"wal_retained_bytes\":null,\"wal_keep_max_bytes\":null,"
                            "\"wal_status\":null");
    }
    if (m->snapshot_id[0] != '\0') {
        hms_buf_printf(out, ",\"snapshot\":{\"id\":");
        hms_buf_append_json_str(out, m->snapshot_id, strlen(m->snapshot_id));
        hms_buf_printf(out, ",\"rows_done\":%lld,\"rows_total\":%lld}",
                       (long long)m->snapshot_rows_done, (long long)m->snapshot_rows_total);
    } else {
        hms_buf_printf(out, ",\"snapshot\":null");
    }
    hms_log_problem_t lp;
    hms_log_last_problem(&lp);
    return hms_page_json_end(lp.when, lp.what, lp.age_s, t, charts, NCHARTS, out);
}

const hms_http_view_t hms_run_view = {
    .size = sizeof(hms_metrics_t),
    .render = render,
    .ready = ready,
    .sample = sample,
    .page = page,
    .json = json,
};
