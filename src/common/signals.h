/* signals.h -- how run and consume hear from their service manager: SIGTERM
 * and SIGINT ask for a stop, SIGHUP for a reload, and SIGPIPE is ignored (a
 * peer that went away is an error return from send(), not a death).  The
 * handlers only set flags; each loop looks at them between steps, so no
 * work ever runs inside a handler. */
#ifndef HMS_COMMON_SIGNALS_H
#define HMS_COMMON_SIGNALS_H

#include <signal.h>
#include <stdbool.h>

/* The dispositions hms_signals_install replaced, to put back. */
typedef struct {
    struct sigaction term, intr, hup, pipe;
} hms_signals_saved_t;

/* Clears both flags and installs the handlers; the previous dispositions go
 * to saved (may be NULL when they are never put back). */
void hms_signals_install(hms_signals_saved_t *saved);
/* Puts back what hms_signals_install saved. */
void hms_signals_restore(const hms_signals_saved_t *saved);

/* The stop signal received since install (SIGTERM or SIGINT), else 0. */
int hms_signals_stop(void);
/* "TERM" or "INT" for the stop signal, "" for none: for log lines. */
const char *hms_signals_stop_name(void);
/* True once for every run of SIGHUPs since the last call. */
bool hms_signals_take_reload(void);

#endif
