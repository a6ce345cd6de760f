/* consumeview.c -- consume's metrics, readiness, status page and JSON. */
#include "cli/consumeview.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "common/log.h"
#include "consumer/metrics.h"
#include "core/statuspage.h"

/* The trend's series. */
enum { S_APPLIED, S_DEPTH, S_DEAD, S_TAKEN };

static const hms_page_chart_t charts[] = {
    {"Applied", "events/s", S_APPLIED, true},
    {"Queue depth", "messages", S_DEPTH, false},
    {"Dead-lettered", "events/s", S_DEAD, true},
};
#define NCHARTS (sizeof(charts) / sizeof(charts[0]))

static hms_status_t render(const void *snap, hms_buf_t *out)
{
    return hms_cmetrics_render(snap, HMS_VERSION, out);
}

static bool ready(const void *snap, char *why, size_t whylen)
{
    return hms_cmetrics_ready(snap, why, whylen);
}

/* Events committed: applied, stale or duplicate. */
static uint64_t taken(const hms_consumer_stats_t *s)
{
    return s->n.applied + s->n.stale + s->n.duplicate;
}

static void sample(const void *snap, double v[HMS_TREND_SERIES])
{
    const hms_consumer_stats_t *s = snap;
    v[S_APPLIED] = (double)s->n.applied;
    v[S_DEPTH] = s->queue_messages >= 0 ? (double)s->queue_messages : 0;
    v[S_DEAD] = (double)s->n.dead_lettered;
    v[S_TAKEN] = (double)taken(s);
}

/* Mean seconds from the source's commit to the subscriber's, so far. */
static double mean_latency(const hms_consumer_stats_t *s)
{
    uint64_t n = 0;
    for (int i = 0; i <= HMS_CONSUMER_LATENCY_BUCKETS; i++)
        n += s->latency[i];
    return n > 0 ? s->latency_sum / (double)n : 0;
}

static double unix_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static hms_status_t page(const void *snap, const hms_trend_t *t, hms_buf_t *out)
{
    const hms_consumer_stats_t *s = snap;
    char why[400], rate[48];
    bool ok = hms_cmetrics_ready(s, why, sizeof(why));
    size_t len = hms_trend_len(t);
    hms_page_row_t rows[12];
    size_t n = 0;
    if (len >= 2)
        snprintf(rate, sizeof(rate), "%.1f events/s", hms_trend_rate(t, len - 1, S_APPLIED));
    else
        snprintf(rate, sizeof(rate), "(after two samples)");
    hms_page_row(&rows[n++], "Queue", false, "%s", s->queue);
    hms_page_row(&rows[n++], "Applied", false, "%s (%llu in all)", rate,
                 (unsigned long long)s->n.applied);
    hms_page_row(&rows[n++], "Stale, duplicate, echo", false, "%llu, %llu, %llu",
                 (unsigned long long)s->n.stale, (unsigned long long)s->n.duplicate,
                 (unsigned long long)s->n.echo);
    hms_page_row(&rows[n++], "Dead-lettered", s->n.dead_lettered > 0, "%llu",
                 (unsigned long long)s->n.dead_lettered);
    hms_page_row(&rows[n++], "Retried", false, "%llu", (unsigned long long)s->n.retried);
    if (s->queue_messages >= 0)
        hms_page_row(&rows[n++], "Queue depth", false, "%lld messages",
                     (long long)s->queue_messages);
    else
        hms_page_row(&rows[n++], "Queue depth", false, "not known yet");
    hms_page_row(&rows[n++], "Latency", false,
                 "%.3f s on average (source commit to subscriber commit)", mean_latency(s));
    if (s->last_event_time > 0)
        hms_page_row(&rows[n++], "Last event", false, "%.1f s ago",
                     unix_now() - s->last_event_time);
    else
        hms_page_row(&rows[n++], "Last event", false, "none yet");
    hms_page_row(&rows[n++], "RabbitMQ node", !s->amqp_up, "%s",
                 s->amqp_node[0] ? s->amqp_node : "(disconnected)");
    hms_page_row(&rows[n++], "PostgreSQL", !s->pg_up, "%s",
                 s->pg_up ? "connected" : "disconnected");
    hms_log_problem_t lp;
    hms_log_last_problem(&lp);
    hms_page_problem_row(&rows[n++], lp.when, lp.what, lp.age_s);
    hms_page_t pg = {.title = "hms-sync consume",
                     .headline = ok ? "ready: consuming" : why,
                     .ok = ok,
                     .rows = rows,
                     .nrows = n,
                     .charts = charts,
                     .ncharts = NCHARTS,
                     .trend = t,
                     .refresh_s = 5};
    return hms_page_render(&pg, out);
}

static hms_status_t json(const void *snap, const hms_trend_t *t, hms_buf_t *out)
{
    const hms_consumer_stats_t *s = snap;
    char why[400];
    bool ok = hms_cmetrics_ready(s, why, sizeof(why));
    hms_buf_printf(out,
                   "{\"command\":\"consume\",\"ready\":%s,\"not_ready\":", ok ? "true" : "false");
    hms_buf_append_json_str(out, ok ? "" : why, ok ? 0 : strlen(why));
    hms_buf_printf(out, ",\"queue\":");
    hms_buf_append_json_str(out, s->queue, strlen(s->queue));
    hms_buf_printf(out,
                   ",\"applied_total\":%llu,\"stale_total\":%llu,\"duplicate_total\":%llu,"
                   "\"echo_total\":%llu,\"dead_lettered_total\":%llu,\"retried_total\":%llu,"
                   "\"queue_messages\":%lld,\"mean_latency_seconds\":%.6f,"
                   "\"last_event_time\":%.6f,\"pg_up\":%s,\"amqp_up\":%s,\"amqp_node\":",
                   (unsigned long long)s->n.applied, (unsigned long long)s->n.stale,
                   (unsigned long long)s->n.duplicate, (unsigned long long)s->n.echo,
                   (unsigned long long)s->n.dead_lettered, (unsigned long long)s->n.retried,
                   (long long)s->queue_messages, mean_latency(s), s->last_event_time,
                   s->pg_up ? "true" : "false", s->amqp_up ? "true" : "false");
    hms_buf_append_json_str(out, s->amqp_node, strlen(s->amqp_node));
    hms_log_problem_t lp;
    hms_log_last_problem(&lp);
    return hms_page_json_end(lp.when, lp.what, lp.age_s, t, charts, NCHARTS, out);
}

const hms_http_view_t hms_consume_view = {
    .size = sizeof(hms_consumer_stats_t),
    .render = render,
    .ready = ready,
    .sample = sample,
    .page = page,
    .json = json,
};
