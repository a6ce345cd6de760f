/* status.h -- the one status enum of hms-sync and the error-message carrier.
 *
 * Every fallible function returns hms_status_t: HMS_OK (0) or a negative
 * code.  Functions that can say more also take an hms_err_t * which they fill
 * with a one-line, human-readable message naming what went wrong and where.
 * The caller owns the hms_err_t (usually on its stack); passing NULL is
 * allowed and simply drops the message. */
#ifndef HMS_CORE_STATUS_H
#define HMS_CORE_STATUS_H

#include <stddef.h>

typedef enum {
    HMS_OK = 0,
    HMS_ERR_TRUNCATED = -1,   /* input ended before a complete item */
    HMS_ERR_MALFORMED = -2,   /* input is not what the format allows */
    HMS_ERR_UNKNOWN_REL = -3, /* a change names a relation never described */
    HMS_ERR_NOMEM = -4,       /* allocation failed */
    HMS_ERR_ENCODE = -5,      /* a row cannot be turned into an event */
    HMS_ERR_CONFIG = -6,      /* a setting is missing or invalid */
    HMS_ERR_IO = -7,          /* a system call failed */
    HMS_ERR_PG = -8,          /* PostgreSQL refused or lost the connection */
    HMS_ERR_AMQP = -9,        /* RabbitMQ refused or lost the connection */
    HMS_ERR_FULL = -10,       /* a bounded structure has no room; retry later */
    HMS_ERR_STATE = -11,      /* call not valid in the current state */
    HMS_ERR_FATAL = -12,      /* unrecoverable; the process must stop */
    HMS_ERR_RETRY = -13,      /* transient; back off and try again */
} hms_status_t;

/* Returns a static, never-NULL name for a status code. */
const char *hms_strerror(hms_status_t st);

#define HMS_ERR_MSG_MAX 512

typedef struct {
    char msg[HMS_ERR_MSG_MAX];
} hms_err_t;

/* Formats a message into err (if err is not NULL) and returns st, so that a
 * caller can write `return hms_err_set(err, HMS_ERR_MALFORMED, "...")`. */
hms_status_t hms_err_set(hms_err_t *err, hms_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
