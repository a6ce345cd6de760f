/* notify.c -- sd_notify READY / STATUS / WATCHDOG / STOPPING. */
#include "daemon/notify.h"

#include <stdio.h>
#include <systemd/sd-daemon.h>

/* Process-wide like the service manager it talks to: one per process. */
static int64_t watchdog_interval_ms = -1;
static int64_t watchdog_last_ms = 0;

void hms_notify_init(void)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        watchdog_interval_ms = (int64_t)(usec / 2000); /* pet twice per interval */
}

void hms_notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void hms_notify_status(const char *status)
{
    sd_notifyf(0, "STATUS=%s", status);
}

void hms_notify_watchdog(int64_t now_ms)
{
    if (watchdog_interval_ms < 0 || now_ms - watchdog_last_ms < watchdog_interval_ms)
        return;
    sd_notify(0, "WATCHDOG=1");
    watchdog_last_ms = now_ms;
}

int64_t hms_notify_watchdog_due(int64_t now_ms)
{
    if (watchdog_interval_ms < 0)
        return -1;
    int64_t due = watchdog_last_ms + watchdog_interval_ms - now_ms;
    return due < 0 ? 0 : due;
}

void hms_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: waiting for outstanding confirms");
}
