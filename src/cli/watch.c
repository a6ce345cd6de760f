/* watch.c -- status --watch: frames, the lag's trend, and the stop. */
#include "cli/watch.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "common/clock.h"
#include "common/signals.h"
#include "core/buf.h"
#include "core/statuspage.h"
#include "core/trend.h"

/* The sparkline's width: the newest samples that fit a terminal line. */
#define SPARK_WIDTH 40

hms_status_t hms_cli_watch_seconds(const char *value, int *seconds, hms_err_t *err)
{
    if (value[0] == '\0') {
        *seconds = 2;
        return HMS_OK;
    }
    char *end;
    long v = strtol(value, &end, 10);
    if (*end != '\0' || end == value || v < 1 || v > 3600)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: option --watch: SECONDS must be a whole number from 1 to "
                           "3600, got \"%.40s\"",
                           value);
    *seconds = (int)v;
    return HMS_OK;
}

static void utc_now(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* One frame into text (a memory stream, so that a terminal sees it whole),
 * with the trend of lag samples taken so far. */
static void draw(int seconds, bool json, hms_watch_frame_fn frame, const void *arg, hms_trend_t *t,
                 const char *since, bool tty)
{
    char now[40];
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem == NULL)
        return;
    double lag = -1;
    hms_err_t err;
    hms_status_t st = frame(arg, json, mem, &lag, &err);
    fclose(mem);
    if (st == HMS_OK && lag >= 0) {
        double v[HMS_TREND_SERIES] = {lag, 0, 0, 0};
        hms_trend_add(t, hms_clock_ms(), v);
    }
    utc_now(now, sizeof(now));
    if (json) {
        /* One JSON object a line, as status --json prints it. */
        if (st == HMS_OK) {
            fputs(text, stdout);
        } else {
            hms_buf_t e = HMS_BUF_INIT;
            hms_buf_append_str(&e, "{\"error\":");
            hms_buf_append_json_str(&e, err.msg, strlen(err.msg));
            hms_buf_append_str(&e, "}\n");
            if (e.data != NULL)
                fputs(e.data, stdout);
            hms_buf_free(&e);
        }
        fflush(stdout);
        free(text);
        return;
    }
    hms_buf_t line = HMS_BUF_INIT;
    hms_page_trend_line(t, 0, "bytes", SPARK_WIDTH, &line);
    if (tty)
        fputs("\033[H\033[2J", stdout); /* home, clear: the frame replaces the last */
    else
        fputs("\n", stdout);
    printf("hms-sync status --watch %d: %s (every %d s; Ctrl-C stops)\n\n", seconds, now, seconds);
    if (st == HMS_OK)
        fputs(text, stdout);
    else
        printf("error: %s\n", err.msg);
    printf("\nlag trend since %s: %s\n", since, line.data ? line.data : "");
    fflush(stdout);
    hms_buf_free(&line);
    free(text);
}

int hms_cli_watch(int seconds, bool json, hms_watch_frame_fn frame, const void *arg)
{
    hms_signals_saved_t saved;
    hms_signals_install(&saved);
    /* 14 KB of samples, too large for the stack of a frame's caller. */
    hms_trend_t *t = malloc(sizeof(*t));
    if (t == NULL) {
        hms_err_t err;
        hms_err_set(&err, HMS_ERR_NOMEM, "status: out of memory");
        hms_signals_restore(&saved);
        return hms_cli_fail(HMS_ERR_NOMEM, &err);
    }
    /* Every frame's sample, up to the ring's size. */
    hms_trend_init(t, (int64_t)seconds * 1000 / 2);
    char since[40];
    utc_now(since, sizeof(since));
    bool tty = isatty(STDOUT_FILENO) == 1;
    while (hms_signals_stop() == 0) {
        draw(seconds, json, frame, arg, t, since, tty);
        int64_t until = hms_clock_ms() + (int64_t)seconds * 1000;
        while (hms_signals_stop() == 0 && hms_clock_ms() < until)
            usleep(100 * 1000);
    }
    free(t);
    hms_signals_restore(&saved);
    return HMS_EXIT_OK;
}
