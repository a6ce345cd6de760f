/* trend.c -- a fixed ring of samples. */
#include "core/trend.h"

void hms_trend_init(hms_trend_t *t, int64_t every_ms)
{
    t->first = 0;
    t->n = 0;
    t->every_ms = every_ms > 0 ? every_ms : 1;
}

bool hms_trend_add(hms_trend_t *t, int64_t now_ms, const double v[HMS_TREND_SERIES])
{
    if (t->n > 0 && now_ms - hms_trend_at(t, t->n - 1)->t_ms < t->every_ms)
        return false;
    size_t slot;
    if (t->n < HMS_TREND_POINTS) {
        slot = (t->first + t->n) % HMS_TREND_POINTS;
        t->n++;
    } else {
        slot = t->first;
        t->first = (t->first + 1) % HMS_TREND_POINTS;
    }
    t->p[slot].t_ms = now_ms;
    for (int s = 0; s < HMS_TREND_SERIES; s++)
        t->p[slot].v[s] = v[s];
    return true;
}

size_t hms_trend_len(const hms_trend_t *t)
{
    return t->n;
}

const hms_trend_point_t *hms_trend_at(const hms_trend_t *t, size_t i)
{
    return &t->p[(t->first + i) % HMS_TREND_POINTS];
}

double hms_trend_rate(const hms_trend_t *t, size_t i, int s)
{
    const hms_trend_point_t *a = hms_trend_at(t, i - 1), *b = hms_trend_at(t, i);
    double dt = (double)(b->t_ms - a->t_ms) / 1000.0;
    double dv = b->v[s] - a->v[s];
    return dt > 0 && dv > 0 ? dv / dt : 0;
}
