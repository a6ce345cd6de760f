/* scrape.h -- `hms-sync status --metrics HOST:PORT` (or [IPV6]:PORT): reads a running
 * connector's /metrics so status can show its figures (events, confirms,
 * in-flight, lag) next to the slot's. */
#ifndef HMS_DAEMON_SCRAPE_H
#define HMS_DAEMON_SCRAPE_H

#include <json-c/json.h>

#include "core/status.h"

/* GETs http://listen/metrics (timeout about 3 s) and returns the hms_sync_*
 * samples as a new JSON object, sample name (with labels) -> number; the
 * caller owns it.  NULL with err when the connector cannot be reached or
 * does not answer 200. */
json_object *hms_scrape_metrics(const char *listen, hms_err_t *err);

#endif
