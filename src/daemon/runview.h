/* runview.h -- what `hms-sync run` serves on its metrics listener, from the
 * figures the loop fills (core/metrics.h): /metrics, /readyz, the status
 * page at / and /status.json. */
#ifndef HMS_DAEMON_RUNVIEW_H
#define HMS_DAEMON_RUNVIEW_H

#include "daemon/http.h"

extern const hms_http_view_t hms_run_view;

#endif
