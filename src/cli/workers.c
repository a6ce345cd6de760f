/* workers.c -- a supervisor of worker processes, one per partition. */
#include "cli/workers.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/signals.h"

#define START_GRACE_MS 10000 /* a failure this soon after a start is a start-up error */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STOP_WAIT_MS 60000 /* then SIGKILL: a worker waits connect_timeout for a statement */
#define TICK_MS 100

typedef struct {
    pid_t pid;     /* 0: not running */
    bool ever_ran; /* it ran past START_GRACE_MS once */
    int64_t started_ms, restart_at_ms;
    int backoff_ms;
} worker_t;

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal may end it early: the loop looks again */
}

static void spawn(worker_t *w, int i, int (*run)(int, void *), void *arg,
                  const hms_signals_saved_t *saved)
{
    char num[16], pid[16];
    pid_t parent = getpid();
    pid_t p = fork();
    if (p == 0) {
        /* A supervisor killed outright (kill -9) must not leave its workers
         * applying behind a new one's back: they stop with it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            exit(0);
        /* The worker installs its own handlers; until then, the defaults. */
        hms_signals_restore(saved);
        exit(run(i, arg));
    }
    snprintf(num, sizeof(num), "%d", i);
    if (p < 0) {
        hms_log(HMS_LOG_ERROR, "cannot start a worker; retrying", "partition", num, "error",
                strerror(errno), NULL);
        w->restart_at_ms = hms_clock_ms() + BACKOFF_MAX_MS;
        return;
    }
    w->pid = p;
    w->started_ms = hms_clock_ms();
    snprintf(pid, sizeof(pid), "%d", (int)p);
    hms_log(HMS_LOG_INFO, "worker started", "partition", num, "pid", pid, NULL);
}

static void signal_all(const worker_t *w, int n, int sig)
{
    for (int i = 0; i < n; i++)
        if (w[i].pid > 0)
            kill(w[i].pid, sig);
}

/* Stops every worker: SIGTERM, then SIGKILL for one still there after
 * STOP_WAIT_MS. */
static void stop_all(worker_t *w, int n)
{
    signal_all(w, n, SIGTERM);
    int64_t deadline = hms_clock_ms() + STOP_WAIT_MS;
    for (int left = n; left > 0;) {
        left = 0;
        for (int i = 0; i < n; i++) {
            if (w[i].pid > 0 && waitpid(w[i].pid, NULL, WNOHANG) == w[i].pid)
                w[i].pid = 0;
            left += w[i].pid > 0;
        }
        if (left > 0 && hms_clock_ms() >= deadline) {
            hms_log(HMS_LOG_WARN, "workers did not stop in time; killing them", NULL);
            signal_all(w, n, SIGKILL);
            deadline = INT64_MAX;
        }
        if (left > 0)
            nap(TICK_MS);
    }
}

int hms_cli_workers(int n, int (*run)(int i, void *arg), void *arg)
{
    worker_t *w = calloc((size_t)n, sizeof(*w));
    if (w == NULL) {
        hms_log(HMS_LOG_ERROR, "out of memory for the workers", NULL);
        return 1;
    }
    hms_signals_saved_t saved;
    hms_signals_install(&saved);
    int code = 0;
    for (int i = 0; i < n; i++)
        spawn(&w[i], i + 1, run, arg, &saved);
    while (hms_signals_stop() == 0 && code == 0) {
        if (hms_signals_take_reload())
            signal_all(w, n, SIGHUP);
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (int i = 0; i < n; i++) {
                if (w[i].pid != pid)
                    continue;
                int64_t now = hms_clock_ms();
                int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                char num[16], st[16], ms[16];
                snprintf(num, sizeof(num), "%d", i + 1);
                snprintf(st, sizeof(st), "%d", rc);
                w[i].pid = 0;
                w[i].ever_ran = w[i].ever_ran || now - w[i].started_ms >= START_GRACE_MS;
                if (!w[i].ever_ran && WIFEXITED(status) && rc != 0) {
                    hms_log(HMS_LOG_ERROR, "worker failed at start; stopping", "partition", num,
                            "status", st, NULL);
                    code = rc;
                    break;
                }
                w[i].backoff_ms = w[i].backoff_ms == 0                    ? BACKOFF_MIN_MS
                                  : w[i].backoff_ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS
                                                                          : 2 * w[i].backoff_ms;
                if (now - w[i].started_ms >= START_GRACE_MS)
                    w[i].backoff_ms = BACKOFF_MIN_MS; /* it ran a while: start over */
                w[i].restart_at_ms = now + w[i].backoff_ms;
                snprintf(ms, sizeof(ms), "%d", w[i].backoff_ms);
                hms_log(HMS_LOG_WARN, "worker ended; restarting it", "partition", num, "status", st,
                        "backoff_ms", ms, NULL);
            }
        }
        int64_t now = hms_clock_ms();
        for (int i = 0; i < n && code == 0; i++)
            if (w[i].pid == 0 && now >= w[i].restart_at_ms)
                spawn(&w[i], i + 1, run, arg, &saved);
        nap(TICK_MS);
    }
    stop_all(w, n);
    hms_signals_restore(&saved);
    free(w);
    return code;
}
