/* notify.h -- tells the service manager how run is doing, over libsystemd's
 * sd_notify: READY once streaming, STATUS on every change of state,
 * WATCHDOG from the event loop (so a stuck loop gets the service
 * restarted), STOPPING on a clean stop.  Without NOTIFY_SOCKET (not under
 * systemd) every call does nothing. */
#ifndef HMS_DAEMON_NOTIFY_H
#define HMS_DAEMON_NOTIFY_H

#include <stdint.h>

/* Reads WATCHDOG_USEC; call once at start. */
void hms_notify_init(void);
void hms_notify_ready(const char *status);
void hms_notify_status(const char *status);
/* Pets the watchdog when half its interval has passed since the last time.
 * now_ms is a monotonic clock. */
void hms_notify_watchdog(int64_t now_ms);
/* Milliseconds until the watchdog is next due, or -1 when it is off. */
int64_t hms_notify_watchdog_due(int64_t now_ms);
void hms_notify_stopping(void);

#endif
