/* progress.c -- non-blocking upserts into hms_sync.slot_progress. */
#include "daemon/progress.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/lsn.h"
#include "core/pgoutput.h"
#include "common/log.h"

#define PROGRESS_INTERVAL_MS 1000
#define PROGRESS_RETRY_MS 30000

struct hms_progress {
    char *conninfo;
    char *slot;
    PGconn *conn;
    bool busy;
    int64_t last_write_ms;
    int64_t retry_at_ms;
    int64_t written_commit_time;
    bool warned;
};

hms_progress_t *hms_progress_new(const char *conninfo, const char *slot)
{
    hms_progress_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->conninfo = strdup(conninfo);
    p->slot = strdup(slot);
    if (p->conninfo == NULL || p->slot == NULL) {
        hms_progress_free(p);
        return NULL;
    }
    return p;
}

void hms_progress_free(hms_progress_t *p)
{
    if (p == NULL)
        return;
    if (p->conn != NULL)
        PQfinish(p->conn);
    free(p->conninfo);
    free(p->slot);
    free(p);
}

static void give_up_for_now(hms_progress_t *p, const char *why, int64_t now_ms)
{
    if (!p->warned) {
        /* libpq messages can span lines; keep the first. */
        char line[300];
        snprintf(line, sizeof(line), "%s", why);
        line[strcspn(line, "\n")] = '\0';
        hms_log(HMS_LOG_WARN,
                "cannot record progress in hms_sync.slot_progress (status will not know the lag "
                "in seconds); streaming continues",
                "error", line, NULL);
        p->warned = true;
    }
    if (p->conn != NULL)
        PQfinish(p->conn);
    p->conn = NULL;
    p->busy = false;
    p->retry_at_ms = now_ms + PROGRESS_RETRY_MS;
}

static void collect(hms_progress_t *p, int64_t now_ms)
{
    if (PQconsumeInput(p->conn) == 0) {
        give_up_for_now(p, PQerrorMessage(p->conn), now_ms);
        return;
    }
    if (PQisBusy(p->conn))
        return;
    PGresult *res;
    bool ok = true;
    char why[300] = "";
    while ((res = PQgetResult(p->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ok = false;
            snprintf(why, sizeof(why), "%s", PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    p->busy = false;
    if (!ok)
        give_up_for_now(p, why, now_ms);
    else
        p->warned = false;
}

static bool connect_now(hms_progress_t *p, int64_t now_ms)
{
    const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", NULL};
    const char *vals[] = {p->conninfo, "hms-sync progress", "5", NULL};
    p->conn = PQconnectdbParams(keys, vals, 1);
    if (p->conn == NULL || PQstatus(p->conn) != CONNECTION_OK) {
        give_up_for_now(p, p->conn ? PQerrorMessage(p->conn) : "out of memory", now_ms);
        return false;
    }
    PQsetnonblocking(p->conn, 1);
    return true;
}

void hms_progress_tick(hms_progress_t *p, uint64_t confirmed_lsn, int64_t commit_time,
                       int64_t now_ms)
{
    if (p->busy) {
        collect(p, now_ms);
        if (p->busy)
            return;
    }
    if (commit_time == 0 || commit_time == p->written_commit_time)
        return;
    if (now_ms - p->last_write_ms < PROGRESS_INTERVAL_MS || now_ms < p->retry_at_ms)
        return;
    if (p->conn == NULL && !connect_now(p, now_ms))
        return;
    char lsn[HMS_LSN_STR_MAX], ts[32];
    hms_lsn_format(confirmed_lsn, lsn);
    /* Seconds since the Unix epoch with microseconds: to_timestamp() takes
     * that directly and needs no time zone agreement. */
    int64_t unix_us = commit_time + HMS_PG_EPOCH_OFFSET_USEC;
    snprintf(ts, sizeof(ts), "%lld.%06lld", (long long)(unix_us / 1000000),
             (long long)(unix_us % 1000000));
    const char *params[] = {p->slot, lsn, ts};
    int sent = PQsendQueryParams(
        p->conn,
        "INSERT INTO hms_sync.slot_progress AS sp (slot_name, confirmed_lsn, last_commit_lsn, "
        "last_commit_time, updated_at) VALUES ($1, $2::pg_lsn, $2::pg_lsn, "
        "to_timestamp($3::double precision), now()) ON CONFLICT (slot_name) DO UPDATE SET "
        "confirmed_lsn = GREATEST(sp.confirmed_lsn, EXCLUDED.confirmed_lsn), last_commit_lsn = "
        "EXCLUDED.last_commit_lsn, last_commit_time = EXCLUDED.last_commit_time, updated_at = "
        "now()",
        3, NULL, params, NULL, NULL, 0);
    if (!sent) {
        give_up_for_now(p, PQerrorMessage(p->conn), now_ms);
        return;
    }
    PQflush(p->conn);
    p->busy = true;
    p->last_write_ms = now_ms;
    p->written_commit_time = commit_time;
}

void hms_progress_final(hms_progress_t *p, uint64_t confirmed_lsn, int64_t commit_time,
                        int64_t now_ms)
{
    for (int i = 0; i < 2; i++) {
        for (int waited = 0; p->busy && waited < 1000; waited += 10) {
            usleep(10 * 1000);
            collect(p, now_ms);
        }
        p->last_write_ms = 0; /* the once-a-second limit does not apply now */
        hms_progress_tick(p, confirmed_lsn, commit_time, now_ms);
    }
}
