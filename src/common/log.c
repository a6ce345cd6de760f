/* log.c -- logfmt / JSON-lines logging to stderr, which may be a log file. */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>
#include <time.h>

#include "core/buf.h"

/* The one piece of process-wide state: a logger is shared by every module.
 * It is set up before any thread exists and changed later only by a reload
 * in the thread that logs. */
static hms_log_level_t log_level = HMS_LOG_INFO;
static bool log_json = false;

static const char *level_name[] = {"debug", "info", "warn", "error"};

/* The newest warning or error, for the status page: written by whichever
 * thread logs, read by the HTTP thread's snapshot. */
static struct {
    pthread_mutex_t lock;
    char when[40];
    char what[400];
    double at; /* seconds since the epoch */
} last = {PTHREAD_MUTEX_INITIALIZER, "", "", 0};

/* Keeps msg, and the value of key "error" when the line has one, as the
 * newest problem. */
static void note_problem(const char *ts, double at, const char *msg, va_list ap)
{
    const char *k, *error = NULL;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        if (strcmp(k, "error") == 0)
            error = v;
    }
    pthread_mutex_lock(&last.lock);
    snprintf(last.when, sizeof(last.when), "%s", ts);
    snprintf(last.what, sizeof(last.what), "%s%s%s", msg, error ? ": " : "", error ? error : "");
    last.at = at;
    pthread_mutex_unlock(&last.lock);
}

bool hms_log_last_problem(hms_log_problem_t *out)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    pthread_mutex_lock(&last.lock);
    bool any = last.when[0] != '\0';
    snprintf(out->when, sizeof(out->when), "%s", last.when);
    snprintf(out->what, sizeof(out->what), "%s", last.what);
    out->age_s = any ? (double)tv.tv_sec + (double)tv.tv_usec / 1e6 - last.at : 0;
    pthread_mutex_unlock(&last.lock);
    return any;
}

void hms_log_setup(hms_log_level_t level, bool json)
{
    log_level = level;
    log_json = json;
}

hms_status_t hms_log_open(const char *path, hms_err_t *err)
{
    if (path == NULL || path[0] == '\0')
        return HMS_OK;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return hms_err_set(err, HMS_ERR_IO, "log_file: cannot open %s: %s", path, strerror(errno));
    /* fd 2 itself is replaced, so whatever a library writes to stderr lands
     * in the same file, and a rotated file is let go of at once. */
    fflush(stderr);
    int rc = dup2(fd, STDERR_FILENO);
    int saved = errno;
    close(fd);
    if (rc < 0)
        return hms_err_set(err, HMS_ERR_IO, "log_file: cannot use %s: %s", path, strerror(saved));
    return HMS_OK;
}

bool hms_log_enabled(hms_log_level_t level)
{
    return level >= log_level;
}

/* logfmt quotes a value when it is empty or holds a space, quote, '=' or a
 * control character; inside quotes JSON escaping keeps it one line. */
static void logfmt_value(hms_buf_t *b, const char *v)
{
    bool quote = v[0] == '\0';
    for (const char *p = v; *p && !quote; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20 || *p == '\\')
            quote = true;
    if (quote)
        hms_buf_append_json_str(b, v, strlen(v));
    else
        hms_buf_append_str(b, v);
}

void hms_log_write(hms_log_level_t level, const char *msg, ...)
{
    char ts[40];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(tv.tv_usec / 1000));

    hms_buf_t b = HMS_BUF_INIT;
    va_list ap;
    if (level >= HMS_LOG_WARN) {
        va_start(ap, msg);
        note_problem(ts, (double)tv.tv_sec + (double)tv.tv_usec / 1e6, msg, ap);
        va_end(ap);
    }
    va_start(ap, msg);
    if (log_json) {
        hms_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_name[level]);
        hms_buf_append_json_str(&b, msg, strlen(msg));
        const char *k;
        while ((k = va_arg(ap, const char *)) != NULL) {
            const char *v = va_arg(ap, const char *);
            hms_buf_append_char(&b, ',');
            hms_buf_append_json_str(&b, k, strlen(k));
            hms_buf_append_char(&b, ':');
            hms_buf_append_json_str(&b, v ? v : "", v ? strlen(v) : 0);
        }
        hms_buf_append_str(&b, "}\n");
    } else {
        hms_buf_printf(&b, "ts=%s level=%s msg=", ts, level_name[level]);
        logfmt_value(&b, msg);
        const char *k;
        while ((k = va_arg(ap, const char *)) != NULL) {
            const char *v = va_arg(ap, const char *);
            hms_buf_printf(&b, " %s=", k);
            logfmt_value(&b, v ? v : "");
        }
        hms_buf_append_char(&b, '\n');
    }
    va_end(ap);
    if (b.data != NULL)
        fwrite(b.data, 1, b.len, stderr);
    hms_buf_free(&b);
}
