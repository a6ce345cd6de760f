/* snapwait.c -- follows a snapshot request until the connector finishes it:
 * a bar on a terminal, a line per tenth of the rows otherwise. */
#include "cli/snapwait.h"

#include <string.h>
#include <time.h>

#include "daemon/snapreq.h"

#define BAR_WIDTH 30

typedef struct {
    FILE *out;
    bool tty;
    char state[16]; /* as last reported */
    int tenths;     /* tenths of the rows last reported (logs) */
    int width;      /* of the line last drawn (terminal) */
} follow_t;

/* Percent of the rows done, or -1 while the total is unknown.  Rows that
 * appeared after the count may take it past the total. */
static int percent(const hms_snapreq_t *r)
{
    if (r->rows_total < 0)
        return -1;
    if (r->rows_total == 0)
        return 100;
    int64_t p = (r->rows_done > 0 ? r->rows_done : 0) * 100 / r->rows_total;
    return p > 100 ? 100 : (int)p;
}

static void draw(follow_t *f, const hms_snapreq_t *r)
{
    int pct = percent(r);
    char bar[BAR_WIDTH + 1], rows[64], line[256];
    int fill = pct < 0 ? 0 : pct * BAR_WIDTH / 100;
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(BAR_WIDTH - fill));
    bar[BAR_WIDTH] = '\0';
    hms_snapreq_rows(r, rows, sizeof(rows));
    int n;
    if (pct < 0)
        n = snprintf(line, sizeof(line), "%s %-9s [%s]    %s", r->id, r->state, bar, rows);
    else
        n = snprintf(line, sizeof(line), "%s %-9s [%s] %3d%% %s", r->id, r->state, bar, pct, rows);
    /* Blank what a longer earlier line left behind. */
    fprintf(f->out, "\r%s%*s", line, f->width > n ? f->width - n : 0, "");
    f->width = n;
    fflush(f->out);
}

static void log_progress(follow_t *f, const hms_snapreq_t *r)
{
    char rows[64];
    hms_snapreq_rows(r, rows, sizeof(rows));
    if (strcmp(f->state, r->state) != 0) {
        if (strcmp(r->state, "pending") == 0)
            fprintf(f->out, "snapshot %s: pending, waiting for the connector of slot %s\n", r->id,
                    r->slot);
        else if (strcmp(r->state, "running") == 0 && r->rows_total >= 0)
            fprintf(f->out, "snapshot %s: running, %lld rows to read\n", r->id,
                    (long long)r->rows_total);
        else if (strcmp(r->state, "running") == 0)
            fprintf(f->out, "snapshot %s: running\n", r->id);
    }
    int pct = percent(r);
    if (pct >= 0 && pct / 10 > f->tenths && strcmp(r->state, "pending") != 0) {
        f->tenths = pct / 10;
        fprintf(f->out, "snapshot %s: %d%% (%s)\n", r->id, pct, rows);
    }
    fflush(f->out);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The end of the story, as an exit code. */
static int finish(follow_t *f, const hms_snapreq_t *r)
{
    if (f->tty)
        fputc('\n', f->out);
    char rows[64];
    hms_snapreq_rows(r, rows, sizeof(rows));
    if (strcmp(r->state, "done") == 0) {
        fprintf(f->out, "snapshot %s: done, %lld rows\n", r->id,
                (long long)(r->rows_done > 0 ? r->rows_done : 0));
        fflush(f->out);
        return 0;
    }
    fflush(f->out);
    if (strcmp(r->state, "cancelled") == 0)
        fprintf(stderr, "hms-sync: snapshot %s was cancelled at %s\n", r->id, rows);
    else
        fprintf(stderr, "hms-sync: snapshot %s %s at %s: %s\n", r->id, r->state, rows,
                r->error != NULL ? r->error : "no reason recorded");
    return 1;
}

int hms_cli_snapshot_wait(PGconn *conn, const char *id, FILE *out, bool tty, int poll_ms)
{
    follow_t f = {.out = out, .tty = tty};
    hms_snapreq_t r = {0};
    int rc;
    for (bool retried = false;;) {
        bool found = false;
        hms_err_t err;
        if (hms_snapreq_get(conn, id, &r, &found, &err) != HMS_OK) {
            /* One reconnect: a restarted server need not end the wait. */
            if (!retried && PQstatus(conn) != CONNECTION_OK) {
                retried = true;
                PQreset(conn);
                continue;
            }
            if (f.tty)
                fputc('\n', out);
            fprintf(stderr,
                    "hms-sync: %s; the snapshot goes on in the connector (see hms-sync snapshot "
                    "--list)\n",
                    err.msg);
            rc = 1;
            break;
        }
        retried = false;
        if (!found) {
            if (f.tty)
                fputc('\n', out);
            fprintf(stderr, "hms-sync: snapshot %s is no longer in hms_sync.snapshots\n", id);
            rc = 1;
            break;
        }
        if (f.tty)
            draw(&f, &r);
        else
            log_progress(&f, &r);
        snprintf(f.state, sizeof(f.state), "%s", r.state);
        if (hms_snapreq_finished(&r)) {
            rc = finish(&f, &r);
            break;
        }
        sleep_ms(poll_ms);
    }
    hms_snapreq_clear(&r);
    return rc;
}
