/* statuspage.c -- the status page's HTML, its SVG charts and the trend's
 * JSON. */
#include "core/statuspage.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The chart's drawing area inside its viewBox, in SVG units. */
#define W 640
#define H 170
#define X0 56
#define X1 632
#define Y0 28
#define Y1 146

hms_status_t hms_page_escape(hms_buf_t *out, const char *s)
{
    hms_status_t st = HMS_OK;
    for (const char *p = s; *p != '\0' && st == HMS_OK; p++) {
        switch (*p) {
        case '&': st = hms_buf_append_str(out, "&amp;"); break;
        case '<': st = hms_buf_append_str(out, "&lt;"); break;
        case '>': st = hms_buf_append_str(out, "&gt;"); break;
        case '"': st = hms_buf_append_str(out, "&quot;"); break;
        case '\'': st = hms_buf_append_str(out, "&#39;"); break;
        default: st = hms_buf_append_char(out, *p); break;
        }
    }
    return st;
}

/* s lower-cased, with '_' for anything but a letter or digit: "WAL
 * retained" -> "wal_retained". */
static void slug(const char *s, char *out, size_t n)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        out[i] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_';
    }
    out[i] = '\0';
}

/* v in at most 4 significant digits, with k, M, G for thousands. */
static void human(double v, char *out, size_t n)
{
    static const char *const suffix[] = {"", " k", " M", " G", " T"};
    int i = 0;
    while (fabs(v) >= 1000 && i < 4) {
        v /= 1000;
        i++;
    }
    snprintf(out, n, "%.4g%s", v, suffix[i]);
}

/* The minutes the x axis spans: what the samples cover, in steps of 10,
 * from 10 to 60, so that a process started a minute ago shows a line,
 * not a dot at the edge. */
static int span_minutes(const hms_trend_t *t)
{
    size_t n = hms_trend_len(t);
    int64_t covered = n > 0 ? hms_trend_at(t, n - 1)->t_ms - hms_trend_at(t, 0)->t_ms : 0;
    int m = (int)((covered + 599999) / 600000) * 10;
    return m < 10 ? 10 : m > 60 ? 60 : m;
}

/* The value chart c draws at sample i (a rate needs the sample before). */
static double value_at(const hms_trend_t *t, const hms_page_chart_t *c, size_t i)
{
    return c->rate ? hms_trend_rate(t, i, c->series) : hms_trend_at(t, i)->v[c->series];
}

hms_status_t hms_page_chart(const hms_trend_t *t, const hms_page_chart_t *c, hms_buf_t *out)
{
    char id[64], now[32], top[32];
    slug(c->title, id, sizeof(id));
    size_t n = hms_trend_len(t), from = c->rate ? 1 : 0;
    double max = 0;
    for (size_t i = from; i < n; i++)
        if (value_at(t, c, i) > max)
            max = value_at(t, c, i);
    /* A flat zero line sits at the bottom of a scale of 1. */
    double scale = max > 0 ? max : 1;
    hms_status_t st = hms_buf_printf(out,
                                     "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"chart-%s\" "
                                     "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
                                     "role=\"img\" aria-label=\"",
                                     id, W, H, W, H);
    if (st == HMS_OK)
        st = hms_page_escape(out, c->title);
    if (st != HMS_OK)
        return st;
    human(n > from ? value_at(t, c, n - 1) : 0, now, sizeof(now));
    human(max, top, sizeof(top));
    hms_buf_printf(out, ", last hour\"><text x=\"4\" y=\"16\" class=\"ct\">");
    hms_page_escape(out, c->title);
    hms_buf_printf(out, " (");
    hms_page_escape(out, c->unit);
    hms_buf_printf(out, ")</text>");
    if (n <= from) {
        hms_buf_printf(out,
                       "<text x=\"%d\" y=\"%d\" class=\"ax\">collecting samples (one every "
                       "%lld s)</text>",
                       X0, (Y0 + Y1) / 2, (long long)(t->every_ms / 1000));
    } else {
        hms_buf_printf(
            out, "<text x=\"%d\" y=\"16\" class=\"ax\" text-anchor=\"end\">now %s, max %s</text>",
            X1, now, top);
        hms_buf_printf(out, "<polyline class=\"ln\" fill=\"none\" points=\"");
        int64_t newest = hms_trend_at(t, n - 1)->t_ms;
        double span_s = span_minutes(t) * 60.0;
        for (size_t i = from; i < n; i++) {
            double age_s = (double)(newest - hms_trend_at(t, i)->t_ms) / 1000.0;
            double x = X1 - (X1 - X0) * (age_s / span_s);
            double y = Y1 - (Y1 - Y0) * (value_at(t, c, i) / scale);
            hms_buf_printf(out, "%s%.1f,%.1f", i > from ? " " : "", x < X0 ? X0 : x, y);
        }
        hms_buf_printf(out, "\"/>");
    }
    st = hms_buf_printf(out,
                        "<line class=\"ax\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                        "<line class=\"ax\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                        "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"end\">%s</text>"
                        "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"end\">0</text>"
                        "<text x=\"%d\" y=\"%d\" class=\"ax\">-%d min</text>"
                        "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"end\">now</text>"
                        "</svg>",
                        X0, Y1, X1, Y1, X0, Y0, X0, Y1, X0 - 4, Y0 + 4, top, X0 - 4, Y1, X0,
                        Y1 + 16, span_minutes(t), X1, Y1 + 16);
    return st;
}

void hms_page_row(hms_page_row_t *row, const char *label, bool warn, const char *fmt, ...)
{
    va_list ap;
    row->label = label;
    row->warn = warn;
    va_start(ap, fmt);
    vsnprintf(row->value, sizeof(row->value), fmt, ap);
    va_end(ap);
}

void hms_page_problem_row(hms_page_row_t *row, const char *when, const char *problem, double age_s)
{
    if (when[0] != '\0')
        hms_page_row(row, "Last error or warning", age_s < HMS_PAGE_PROBLEM_RECENT_S,
                     "%s (%.0f min ago) %s", when, age_s / 60.0, problem);
    else
        hms_page_row(row, "Last error or warning", false, "none since start");
}

/* The document's own look: no style sheet comes from anywhere else. */
static const char style[] =
    "body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff}"
    "h1{font-size:1.3em;margin:0 0 .3em}"
    ".ok{color:#17692e}.bad{color:#b00020}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}"
    "td.v{font-family:monospace}tr.warn td{color:#b00020;font-weight:bold}"
    "svg{display:block;margin:.6em 0;border:1px solid #ddd}"
    "svg .ct{font-size:13px;font-weight:bold;fill:#222}svg .ax{font-size:11px;fill:#555;"
    "stroke:#999}svg text.ax{stroke:none}svg .ln{stroke:#1f5fa8;stroke-width:1.5}"
    "footer{color:#777;font-size:.85em}";

hms_status_t hms_page_render(const hms_page_t *pg, hms_buf_t *out)
{
    char id[96];
    hms_buf_printf(out,
                   "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<meta http-equiv=\"refresh\" content=\"%d\">"
                   "<meta name=\"viewport\" content=\"width=device-width\"><title>",
                   pg->refresh_s);
    hms_page_escape(out, pg->title);
    hms_buf_printf(out, "</title><style>%s</style></head><body><h1>", style);
    hms_page_escape(out, pg->title);
    hms_buf_printf(out, "</h1><p id=\"headline\" class=\"%s\">", pg->ok ? "ok" : "bad");
    hms_page_escape(out, pg->headline);
    hms_buf_printf(out, "</p><table id=\"figures\">");
    for (size_t i = 0; i < pg->nrows; i++) {
        slug(pg->rows[i].label, id, sizeof(id));
        hms_buf_printf(out, "<tr id=\"row-%s\"%s><th>", id,
                       pg->rows[i].warn ? " class=\"warn\"" : "");
        hms_page_escape(out, pg->rows[i].label);
        hms_buf_printf(out, "</th><td class=\"v\">");
        hms_page_escape(out, pg->rows[i].value);
        hms_buf_printf(out, "</td></tr>");
    }
    hms_buf_printf(out, "</table>");
    for (size_t i = 0; i < pg->ncharts; i++)
        hms_page_chart(pg->trend, &pg->charts[i], out);
    return hms_buf_printf(out,
                          "<footer>Reloads every %d s. The same figures: <a "
                          "href=\"status.json\">status.json</a>, <a "
                          "href=\"metrics\">metrics</a>.</footer></body></html>\n",
                          pg->refresh_s);
}

hms_status_t hms_page_trend_json(const hms_trend_t *t, const hms_page_chart_t *charts,
                                 size_t ncharts, hms_buf_t *out)
{
    char name[64];
    size_t n = hms_trend_len(t);
    int64_t newest = n > 0 ? hms_trend_at(t, n - 1)->t_ms : 0;
    hms_buf_printf(out, "{\"every_s\":%g,\"age_s\":[", (double)t->every_ms / 1000.0);
    for (size_t i = 0; i < n; i++)
        hms_buf_printf(out, "%s%g", i ? "," : "",
                       (double)(newest - hms_trend_at(t, i)->t_ms) / 1000.0);
    hms_buf_printf(out, "]");
    for (size_t c = 0; c < ncharts; c++) {
        slug(charts[c].title, name, sizeof(name));
        hms_buf_printf(out, ",\"%s\":[", name);
        for (size_t i = 0; i < n; i++) {
            if (charts[c].rate && i == 0)
                hms_buf_printf(out, "null");
            else
                hms_buf_printf(out, "%s%.6g", i ? "," : "", value_at(t, &charts[c], i));
        }
        hms_buf_printf(out, "]");
    }
    return hms_buf_printf(out, "}");
}

hms_status_t hms_page_json_end(const char *when, const char *problem, double age_s,
                               const hms_trend_t *t, const hms_page_chart_t *charts, size_t ncharts,
                               hms_buf_t *out)
{
    if (when[0] != '\0') {
        hms_buf_printf(out, ",\"last_problem\":{\"time\":");
        hms_buf_append_json_str(out, when, strlen(when));
        hms_buf_printf(out, ",\"age_s\":%.1f", age_s);
        hms_buf_printf(out, ",\"message\":");
        hms_buf_append_json_str(out, problem, strlen(problem));
        hms_buf_printf(out, "}");
    } else {
        hms_buf_printf(out, ",\"last_problem\":null");
    }
    hms_buf_printf(out, ",\"trend\":");
    hms_page_trend_json(t, charts, ncharts, out);
    return hms_buf_printf(out, "}\n");
}

hms_status_t hms_page_trend_line(const hms_trend_t *t, int s, const char *unit, size_t width,
                                 hms_buf_t *out)
{
    /* Eight heights of a block, lowest first (UTF-8). */
    static const char *const bars[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                       "\u2585", "\u2586", "\u2587", "\u2588"};
    size_t n = hms_trend_len(t);
    if (n < 2)
        return hms_buf_printf(out, "(a trend after two samples)");
    const hms_trend_point_t *first = hms_trend_at(t, 0), *last = hms_trend_at(t, n - 1);
    size_t from = n > width ? n - width : 0;
    double max = 0, lo = last->v[s], hi = last->v[s];
    for (size_t i = 0; i < n; i++)
        max = hms_trend_at(t, i)->v[s] > max ? hms_trend_at(t, i)->v[s] : max;
    for (size_t i = from; i < n; i++) {
        double v = hms_trend_at(t, i)->v[s];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double minutes = (double)(last->t_ms - first->t_ms) / 60000.0;
    double per_min = minutes > 0 ? (last->v[s] - first->v[s]) / minutes : 0;
    char a[32], b[32], m[32], d[32];
    human(first->v[s], a, sizeof(a));
    human(last->v[s], b, sizeof(b));
    human(max, m, sizeof(m));
    human(fabs(per_min), d, sizeof(d));
    hms_buf_printf(out, "%s -> %s %s (max %s), %s%s %s/min ", a, b, unit, m,
                   per_min < 0 ? "-" : "+", d, unit);
    hms_status_t st = HMS_OK;
    for (size_t i = from; i < n && st == HMS_OK; i++) {
        double v = hms_trend_at(t, i)->v[s];
        int k = hi > lo ? (int)((v - lo) / (hi - lo) * 7.0 + 0.5) : 0;
        st = hms_buf_append_str(out, bars[k < 0 ? 0 : k > 7 ? 7 : k]);
    }
    return st;
}
