/* trend.h -- the last hour of a process's figures, for the status page's
 * charts and /status.json: a fixed ring of samples, one every interval at
 * most, so that memory stays flat however long the process runs.
 *
 * Pure: the caller passes the clock. */
#ifndef HMS_CORE_TREND_H
#define HMS_CORE_TREND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values per sample: what one command charts (run: lag in bytes and in
 * seconds, events published and confirmed so far). */
#define HMS_TREND_SERIES 4
/* An hour at the default interval of 10 s. */
#define HMS_TREND_POINTS 360

typedef struct {
    int64_t t_ms; /* the sample's clock (any monotonic milliseconds) */
    double v[HMS_TREND_SERIES];
} hms_trend_point_t;

typedef struct {
    hms_trend_point_t p[HMS_TREND_POINTS];
    size_t first, n; /* the oldest sample's index, and how many are held */
    int64_t every_ms;
} hms_trend_t;

/* An empty ring taking a sample at most every every_ms (at least 1). */
void hms_trend_init(hms_trend_t *t, int64_t every_ms);

/* Takes v as the sample at now_ms when the newest one is at least
 * every_ms old (or there is none), dropping the oldest when full.  True
 * when it was taken. */
bool hms_trend_add(hms_trend_t *t, int64_t now_ms, const double v[HMS_TREND_SERIES]);

/* Samples held, and sample i of them, 0 the oldest (i < hms_trend_len). */
size_t hms_trend_len(const hms_trend_t *t);
const hms_trend_point_t *hms_trend_at(const hms_trend_t *t, size_t i);

/* Per second between samples i - 1 and i of series s, a counter (0 when it
 * went down, as after a restart of what it counts; i >= 1). */
double hms_trend_rate(const hms_trend_t *t, size_t i, int s);

#endif
