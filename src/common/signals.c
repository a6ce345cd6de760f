/* signals.c -- stop and reload flags set by signal handlers. */
#include "common/signals.h"

#include <string.h>

static volatile sig_atomic_t stop_signal = 0;
static volatile sig_atomic_t reload_signal = 0;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static void on_hangup(int sig)
{
    (void)sig;
    reload_signal = 1;
}

void hms_signals_install(hms_signals_saved_t *saved)
{
    hms_signals_saved_t ignored;
    struct sigaction sa;
    if (saved == NULL)
        saved = &ignored;
    stop_signal = 0;
    reload_signal = 0;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, &saved->term);
    sigaction(SIGINT, &sa, &saved->intr);
    sa.sa_handler = on_hangup;
    sigaction(SIGHUP, &sa, &saved->hup);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &saved->pipe);
}

void hms_signals_restore(const hms_signals_saved_t *saved)
{
    sigaction(SIGTERM, &saved->term, NULL);
    sigaction(SIGINT, &saved->intr, NULL);
    sigaction(SIGHUP, &saved->hup, NULL);
    sigaction(SIGPIPE, &saved->pipe, NULL);
}

int hms_signals_stop(void)
{
    return stop_signal;
}

const char *hms_signals_stop_name(void)
{
    return stop_signal == SIGTERM ? "TERM" : stop_signal == SIGINT ? "INT" : "";
}

bool hms_signals_take_reload(void)
{
    if (reload_signal == 0)
        return false;
    reload_signal = 0;
    return true;
}
