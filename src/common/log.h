/* log.h -- one line per event of note on stderr, as logfmt or JSON lines.
 *
 * A line is a level, a message and key/value pairs given as a NULL-ended
 * list of (const char *key, const char *value) strings:
 *
 *     hms_log(HMS_LOG_INFO, "slot created", "slot", slot, "lsn", lsnbuf, NULL);
 *
 * The level check happens in the macro, before any argument is formatted.
 * Never pass a secret (passwords, full connection strings) as a value. */
#ifndef HMS_COMMON_LOG_H
#define HMS_COMMON_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

typedef enum {
    HMS_LOG_DEBUG = 0,
    HMS_LOG_INFO = 1,
    HMS_LOG_WARN = 2,
    HMS_LOG_ERROR = 3,
} hms_log_level_t;

/* Process-wide settings: at start, and again on a reload, from the thread
 * that logs.  Defaults: info, logfmt. */
void hms_log_setup(hms_log_level_t level, bool json);
/* Sends the log (and anything else written to stderr) to the end of the
 * file at path, created 0640 if missing; NULL or "": stderr stays as it is.
 * Called again after a log rotation it opens the new file.  On error stderr
 * is left unchanged and err names the file. */
hms_status_t hms_log_open(const char *path, hms_err_t *err);
bool hms_log_enabled(hms_log_level_t level);
void hms_log_write(hms_log_level_t level, const char *msg, ...) __attribute__((sentinel));

/* The newest warning or error logged (levels below the log level are not
 * logged, so not kept): its time as the log wrote it and its message, with
 * the line's "error" value after a colon when it had one, and how many
 * seconds ago it was logged.  False, with both empty, when there was
 * none. */
typedef struct {
    char when[40]; /* "" when there was none */
    char what[400];
    double age_s;
} hms_log_problem_t;
bool hms_log_last_problem(hms_log_problem_t *out);

#define hms_log(level, ...)                                                                        \
    do {                                                                                           \
        if (hms_log_enabled(level))                                                                \
            hms_log_write(level, __VA_ARGS__);                                                     \
    } while (0)

#endif
