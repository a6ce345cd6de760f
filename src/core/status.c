/* status.c -- names for hms_status_t and the error-message helper. */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>

const char *hms_strerror(hms_status_t st)
{
    switch (st) {
    case HMS_OK: return "ok";
    case HMS_ERR_TRUNCATED: return "truncated input";
    case HMS_ERR_MALFORMED: return "malformed input";
    case HMS_ERR_UNKNOWN_REL: return "unknown relation";
    case HMS_ERR_NOMEM: return "out of memory";
    case HMS_ERR_ENCODE: return "cannot encode row";
    case HMS_ERR_CONFIG: return "invalid configuration";
    case HMS_ERR_IO: return "i/o error";
    case HMS_ERR_PG: return "postgresql error";
    case HMS_ERR_AMQP: return "rabbitmq error";
    case HMS_ERR_FULL: return "no room";
    case HMS_ERR_STATE: return "invalid state";
    case HMS_ERR_FATAL: return "fatal error";
    case HMS_ERR_RETRY: return "transient error";
    }
    return "unknown status";
}

hms_status_t hms_err_set(hms_err_t *err, hms_status_t st, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return st;
}
