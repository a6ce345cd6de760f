/* http.h -- the metrics and health endpoint of `hms-sync run`:
 * GET /metrics (Prometheus text), /healthz (alive) and /readyz (ready).
 *
 * libmicrohttpd serves it from its own thread, so a slow scraper never
 * touches the event loop.  The loop hands over a snapshot of its figures
 * with hms_http_publish(); the server renders only snapshots. */
#ifndef HMS_DAEMON_HTTP_H
#define HMS_DAEMON_HTTP_H

#include "core/metrics.h"
#include "core/status.h"

typedef struct hms_http hms_http_t;

/* Listens on listen (HOST:PORT or [IPV6]:PORT, core/hostport.h): on every
 * address the host resolves to, warning about any of them it cannot bind,
 * and failing only when it can bind none.  On success *out owns the server;
 * stop it with hms_http_stop().  listen is only read. */
hms_status_t hms_http_start(const char *listen, hms_http_t **out, hms_err_t *err);
void hms_http_stop(hms_http_t *h);

/* Copies m as the snapshot the next requests will see. */
void hms_http_publish(hms_http_t *h, const hms_metrics_t *m);

#endif
