/* statuspage.h -- the status page a process serves at GET / beside its
 * metrics: one self-contained HTML document (no script, font, style sheet
 * or image from anywhere else: it must work in a hospital network without
 * internet) that reloads itself, with the figures as a table and the last
 * hour of a trend as inline SVG charts; and that trend as JSON for
 * /status.json.
 *
 * Pure: no I/O. */
#ifndef HMS_CORE_STATUSPAGE_H
#define HMS_CORE_STATUSPAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/status.h"
#include "core/trend.h"

/* One figure: its label, its value as text (escaped when written), and
 * whether it needs attention (drawn as a warning). */
typedef struct {
    const char *label;
    char value[512];
    bool warn;
} hms_page_row_t;

/* One chart of the trend: series `series`, drawn as it is or, for a
 * counter, as its rate per second. */
typedef struct {
    const char *title; /* "Lag" */
    const char *unit;  /* "bytes", "s", "events/s" */
    int series;
    bool rate;
} hms_page_chart_t;

typedef struct {
    const char *title;    /* "hms-sync run" */
    const char *headline; /* one line: "streaming", or why it is not ready */
    bool ok;              /* the headline is good news */
    const hms_page_row_t *rows;
    size_t nrows;
    const hms_page_chart_t *charts;
    size_t ncharts;
    const hms_trend_t *trend;
    int refresh_s; /* the page reloads itself this often */
} hms_page_t;

/* Fills *row: its label, whether it warns, and its value formatted. */
void hms_page_row(hms_page_row_t *row, const char *label, bool warn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Fills *row with the figure every page ends with: the newest warning or
 * error logged (when is its time, "" when there was none; age_s how long
 * ago).  It warns for HMS_PAGE_PROBLEM_RECENT_S, then reads as history. */
#define HMS_PAGE_PROBLEM_RECENT_S 600
void hms_page_problem_row(hms_page_row_t *row, const char *when, const char *problem, double age_s);

/* Appends the whole HTML document of pg to out. */
hms_status_t hms_page_render(const hms_page_t *pg, hms_buf_t *out);

/* Appends one chart as an <svg> element: the trend's samples, the newest
 * at the right edge and the x axis as long as they reach back (10 to 60
 * minutes, in steps of 10), the largest value at the top. */
hms_status_t hms_page_chart(const hms_trend_t *t, const hms_page_chart_t *c, hms_buf_t *out);

/* Appends the trend as a JSON object: "every_s" (the sampling interval),
 * "age_s" (each sample's age relative to the newest, oldest first) and one
 * array per chart named by its title, lower-cased with '_' for anything
 * but a letter or digit (a rate's first sample is null). */
hms_status_t hms_page_trend_json(const hms_trend_t *t, const hms_page_chart_t *charts,
                                 size_t ncharts, hms_buf_t *out);

/* Appends what every /status.json ends with, and closes its object:
 * "last_problem" ({"time", "age_s", "message"}, or null when when is "")
 * and "trend" (hms_page_trend_json). */
hms_status_t hms_page_json_end(const char *when, const char *problem, double age_s,
                               const hms_trend_t *t, const hms_page_chart_t *charts, size_t ncharts,
                               hms_buf_t *out);

/* Appends one line of text about series s of t (values in unit): where it
 * started, where it is and its largest value, its change per minute since
 * the first sample, and a sparkline of the newest `width` samples, e.g.
 * "12 k -> 40.1 k bytes (max 52 k), +13 k bytes/min ▁▂▃▅▇".  With fewer
 * than two samples it says so. */
hms_status_t hms_page_trend_line(const hms_trend_t *t, int s, const char *unit, size_t width,
                                 hms_buf_t *out);

/* Appends s HTML-escaped (&, <, >, ", '). */
hms_status_t hms_page_escape(hms_buf_t *out, const char *s);

#endif
