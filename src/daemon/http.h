/* http.h -- the metrics and health endpoint of `hms-sync run` and
 * `hms-sync consume`: GET /metrics (Prometheus text), /healthz (alive),
 * /readyz (ready), and, for a view that has them, the status page (GET /)
 * and /status.json with the last hour's trend.
 *
 * libmicrohttpd serves it from its own thread, so a slow scraper never
 * touches the event loop.  The loop hands over a snapshot of its figures
 * with hms_http_publish(); the server renders only snapshots, through the
 * view it was started with (each command has its own figures). */
#ifndef HMS_DAEMON_HTTP_H
#define HMS_DAEMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/status.h"
#include "core/trend.h"

/* How often the trend takes a sample: an hour fits its ring. */
#define HMS_HTTP_TREND_EVERY_MS 10000

/* How one command's figures are served.  A snapshot is size bytes, copied
 * as they are (so it holds no pointer to memory the loop changes). */
typedef struct {
    size_t size;
    /* Appends the Prometheus text of snap to out. */
    hms_status_t (*render)(const void *snap, hms_buf_t *out);
    /* True when ready; otherwise false with a one-line reason in why. */
    bool (*ready)(const void *snap, char *why, size_t whylen);
    /* Optional, all three or none: the trend's values for snap; the status
     * page of snap and trend (HTML); the same as JSON. */
    void (*sample)(const void *snap, double v[HMS_TREND_SERIES]);
    hms_status_t (*page)(const void *snap, const hms_trend_t *t, hms_buf_t *out);
    hms_status_t (*json)(const void *snap, const hms_trend_t *t, hms_buf_t *out);
} hms_http_view_t;

typedef struct hms_http hms_http_t;

/* Listens on listen (HOST:PORT or [IPV6]:PORT, core/hostport.h): on every
 * address the host resolves to, warning about any of them it cannot bind,
 * and failing only when it can bind none.  Until the first publish every
 * request sees a snapshot of zeros.  On success *out owns the server; stop
 * it with hms_http_stop().  listen is only read; view must outlive the
 * server. */
hms_status_t hms_http_start(const char *listen, const hms_http_view_t *view, hms_http_t **out,
                            hms_err_t *err);
void hms_http_stop(hms_http_t *h);

/* Copies snap (view->size bytes) as the snapshot the next requests see,
 * and takes it into the trend when a sample is due. */
void hms_http_publish(hms_http_t *h, const void *snap);

#endif
