/* watch.h -- `hms-sync status --watch [SECONDS]`: the status drawn again
 * every SECONDS until SIGINT or SIGTERM, with the lag's trend since the
 * view started.  On a terminal each frame replaces the last; otherwise
 * frames follow one another, each after a header line. */
#ifndef HMS_CLI_WATCH_H
#define HMS_CLI_WATCH_H

#include <stdbool.h>
#include <stdio.h>

#include "core/status.h"

/* Writes one frame's figures to out (JSON when json), and the slot's lag
 * in bytes to *lag_bytes (-1 when unknown); arg is the caller's. */
typedef hms_status_t (*hms_watch_frame_fn)(const void *arg, bool json, FILE *out, double *lag_bytes,
                                           hms_err_t *err);

/* The seconds --watch asks for: "" (the flag alone) is 2; otherwise a
 * whole number from 1 to 3600, or HMS_ERR_CONFIG naming the value. */
hms_status_t hms_cli_watch_seconds(const char *value, int *seconds, hms_err_t *err);

/* Draws frames every `seconds` until a stop signal; returns the exit code
 * (0).  A frame that fails shows its error and the next one tries again:
 * an outage is when the view is watched most. */
int hms_cli_watch(int seconds, bool json, hms_watch_frame_fn frame, const void *arg);

#endif
