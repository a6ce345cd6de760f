/* metrics.c -- Prometheus text of the subscriber's figures. */
#include "consumer/metrics.h"

#include <stdio.h>

#include "core/prom.h"

const double hms_consumer_latency_bounds[HMS_CONSUMER_LATENCY_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

void hms_cmetrics_observe(hms_consumer_stats_t *s, double seconds)
{
    int i = 0;
    while (i < HMS_CONSUMER_LATENCY_BUCKETS && seconds > hms_consumer_latency_bounds[i])
        i++;
    s->latency[i]++;
    s->latency_sum += seconds;
}

/* name{queue="..."[,extra]} — the start of one sample. */
static void sample(hms_buf_t *b, const hms_consumer_stats_t *s, const char *name, const char *extra)
{
    hms_buf_printf(b, "%s{queue=\"", name);
    hms_prom_label_value(b, s->queue);
    hms_buf_printf(b, "\"%s%s} ", extra ? "," : "", extra ? extra : "");
}

static void one(hms_buf_t *b, const hms_consumer_stats_t *s, const char *name, const char *type,
                const char *help, double v)
{
    hms_prom_family(b, name, type, help);
    sample(b, s, name, NULL);
    hms_buf_printf(b, "%.17g\n", v);
}

hms_status_t hms_cmetrics_render(const hms_consumer_stats_t *s, const char *version, hms_buf_t *out)
{
    const char *name = "hms_sync_consumer_events_total";
    hms_prom_family(out, name, "counter",
                    "Events taken off the queue, by outcome: applied; stale (older than what "
                    "the replica holds, rejected by last-write-wins); duplicate (already in the "
                    "inbox or the replica); echo (this subscriber's own origin, not applied); "
                    "dead_lettered (invalid, or failing at the delivery limit).");
    const struct {
        const char *outcome;
        uint64_t v;
    } outcomes[] = {{"applied", s->n.applied},
                    {"stale", s->n.stale},
                    {"duplicate", s->n.duplicate},
                    {"echo", s->n.echo},
                    {"dead_lettered", s->n.dead_lettered}};
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
        char extra[64];
        snprintf(extra, sizeof(extra), "outcome=\"%s\"", outcomes[i].outcome);
        sample(out, s, name, extra);
        hms_buf_printf(out, "%llu\n", (unsigned long long)outcomes[i].v);
    }
    one(out, s, "hms_sync_consumer_retries_total", "counter",
        "Retries: batches after a transient database failure, events after their apply failed.",
        (double)s->n.retried);
    one(out, s, "hms_sync_consumer_batches_total", "counter",
        "Transactions that committed events (each one acknowledged as a whole).",
        (double)s->batches);

    name = "hms_sync_consumer_event_latency_seconds";
    hms_prom_family(out, name, "histogram",
                    "Seconds from an event's commit at the source (its time) to the commit that "
                    "took it in here: the whole path, connector and broker included.");
    uint64_t cum = 0;
    char bucket[64], le[48];
    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    for (int i = 0; i <= HMS_CONSUMER_LATENCY_BUCKETS; i++) {
        cum += s->latency[i];
        if (i < HMS_CONSUMER_LATENCY_BUCKETS)
            snprintf(le, sizeof(le), "le=\"%g\"", hms_consumer_latency_bounds[i]);
        else
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        sample(out, s, bucket, le);
        hms_buf_printf(out, "%llu\n", (unsigned long long)cum);
    }
    snprintf(bucket, sizeof(bucket), "%s_sum", name);
    sample(out, s, bucket, NULL);
    hms_buf_printf(out, "%.17g\n", s->latency_sum);
    snprintf(bucket, sizeof(bucket), "%s_count", name);
    sample(out, s, bucket, NULL);
    hms_buf_printf(out, "%llu\n", (unsigned long long)cum);

    if (s->queue_messages >= 0)
        one(out, s, "hms_sync_consumer_queue_messages", "gauge",
            "Messages ready in the subscriber's queue when last asked (every few seconds), not "
            "counting those delivered and not yet acknowledged.",
            (double)s->queue_messages);
    one(out, s, "hms_sync_consumer_last_event_timestamp_seconds", "gauge",
        "The source commit time (Unix) of the newest event taken in; 0 before the first.",
        s->last_event_time);
    hms_prom_family(out, "hms_sync_consumer_amqp_node_info", "gauge",
                    "The RabbitMQ node the subscriber consumes from (host:port); no sample "
                    "while disconnected.");
    if (s->amqp_node[0] != '\0') {
        hms_buf_append_str(out, "hms_sync_consumer_amqp_node_info{queue=\"");
        hms_prom_label_value(out, s->queue);
        hms_buf_append_str(out, "\",node=\"");
        hms_prom_label_value(out, s->amqp_node);
        hms_buf_append_str(out, "\"} 1\n");
    }
    one(out, s, "hms_sync_consumer_up", "gauge",
        "1 when the PostgreSQL session and the consuming connection are both up.",
        hms_cmetrics_ready(s, NULL, 0) ? 1 : 0);
    hms_prom_family(out, "hms_sync_build_info", "gauge", "Build information; always 1.");
    hms_buf_append_str(out, "hms_sync_build_info{version=\"");
    hms_prom_label_value(out, version);
    return hms_buf_append_str(out, "\"} 1\n");
}

bool hms_cmetrics_ready(const hms_consumer_stats_t *s, char *why, size_t whylen)
{
    const char *w = !s->pg_up     ? "PostgreSQL session down"
                    : !s->amqp_up ? "RabbitMQ connection down"
                                  : NULL;
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "%s", w ? w : "");
    return w == NULL;
}
