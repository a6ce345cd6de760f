/* metrics.h -- the subscriber's figures as Prometheus text, and whether it
 * is ready, for `hms-sync consume --metrics`.  Pure. */
#ifndef HMS_CONSUMER_METRICS_H
#define HMS_CONSUMER_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "hms_consumer.h"

/* Appends the Prometheus text of s to out; every sample carries the label
 * queue="<s->queue>". */
hms_status_t hms_cmetrics_render(const hms_consumer_stats_t *s, const char *version,
                                 hms_buf_t *out);

/* True when both the PostgreSQL session and the consuming connection are
 * up; otherwise false with a one-line reason in why (may be NULL). */
bool hms_cmetrics_ready(const hms_consumer_stats_t *s, char *why, size_t whylen);

/* Counts one event taken in with latency seconds. */
void hms_cmetrics_observe(hms_consumer_stats_t *s, double seconds);

#endif
