/* consumeview.h -- what `hms-sync consume` serves on its metrics listener:
 * /metrics, /readyz, the status page at / and /status.json, from the
 * figures the library hands its stats callback. */
#ifndef HMS_CLI_CONSUMEVIEW_H
#define HMS_CLI_CONSUMEVIEW_H

#include "daemon/http.h"
#include "hms_consumer.h"

extern const hms_http_view_t hms_consume_view;

#endif
