/* progress.c -- non-blocking upserts into hms_sync.slot_progress. */
#include "daemon/progress.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "core/lsn.h"
#include "core/pgoutput.h"

#define PROGRESS_INTERVAL_MS 1000
/* How often the slot's WAL retention is read for the status page and
 * /metrics: it moves with the WAL, not with every event. */
#define WAL_INTERVAL_MS 10000
#define PROGRESS_RETRY_MS 30000
#define PROGRESS_FINAL_WAIT_MS 2000

struct hms_progress {
    char *conninfo;
    char *slot;
    int connect_timeout_s;
    hms_pg_connecting_t attempt; /* attempt.conn is set while connecting */
    PGconn *conn;
    bool busy;     /* an upsert is in flight */
    bool flushing; /* libpq still holds part of it: wait for POLLOUT */
    int64_t last_write_ms;
    int64_t retry_at_ms;
    int64_t written_commit_time;
    bool warned;
    bool reading_wal;    /* the request in flight is the WAL query */
    int64_t wal_read_ms; /* when it was last sent */
    hms_progress_wal_t wal;
};

hms_progress_t *hms_progress_new(const char *conninfo, const char *slot, int connect_timeout_s)
{
    hms_progress_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->attempt.fd = -1;
    p->connect_timeout_s = connect_timeout_s;
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
    hms_pg_connect_cancel(&p->attempt);
    if (p->conn != NULL)
        PQfinish(p->conn);
    free(p->conninfo);
    free(p->slot);
    free(p);
}

static void give_up_for_now(hms_progress_t *p, const char *why, int64_t now_ms)
{
    if (!p->warned) {
        char line[300];
        hms_log(HMS_LOG_WARN,
                "cannot record progress in hms_sync.slot_progress (status will not know the lag "
                "in seconds); streaming continues",
                "error", hms_pg_one_line(why, line, sizeof(line)), NULL);
        p->warned = true;
    }
    hms_pg_connect_cancel(&p->attempt);
    if (p->conn != NULL)
        PQfinish(p->conn);
    p->conn = NULL;
    p->busy = p->flushing = false;
    p->retry_at_ms = now_ms + PROGRESS_RETRY_MS;
}

/* The WAL query's one row: retained bytes, wal_status, the limit in MB. */
static void take_wal(hms_progress_t *p, const PGresult *res)
{
    if (PQntuples(res) != 1)
        return;
    p->wal.known = true;
    p->wal.retained_bytes = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(p->wal.status, sizeof(p->wal.status), "%s",
             PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1));
    long long mb = PQgetisnull(res, 0, 2) ? -1 : strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    p->wal.keep_max_bytes = mb < 0 ? -1 : mb * 1024 * 1024;
}

static void collect(hms_progress_t *p, int64_t now_ms)
{
    int flushed = PQflush(p->conn);
    if (flushed < 0 || PQconsumeInput(p->conn) == 0) {
        give_up_for_now(p, PQerrorMessage(p->conn), now_ms);
        return;
    }
    p->flushing = flushed == 1;
    if (PQisBusy(p->conn))
        return;
    PGresult *res;
    bool ok = true;
    char why[300] = "";
    while ((res = PQgetResult(p->conn)) != NULL) {
        if (p->reading_wal && PQresultStatus(res) == PGRES_TUPLES_OK) {
            take_wal(p, res);
        } else if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ok = false;
            snprintf(why, sizeof(why), "%s", PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    p->busy = false;
    p->reading_wal = false;
    if (!ok)
        give_up_for_now(p, why, now_ms);
    else
        p->warned = false;
}

/* Starts or advances the connection without waiting; true once there is
 * one.  revents: what poll() said about the attempt's socket. */
static bool connected(hms_progress_t *p, short revents, int64_t now_ms)
{
    hms_err_t err;
    if (p->conn != NULL)
        return true;
    if (p->attempt.conn == NULL) {
        hms_pg_params_t params = {.conninfo = p->conninfo,
                                  .application_name = "hms-sync progress",
                                  .connect_timeout_s = p->connect_timeout_s};
        if (hms_pg_connect_start(&p->attempt, &params, now_ms, &err) != HMS_OK)
            give_up_for_now(p, err.msg, now_ms);
        return false;
    }
    if (revents == 0 && (p->attempt.deadline_ms == 0 || now_ms < p->attempt.deadline_ms))
        return false;
    int rc = hms_pg_connect_poll(&p->attempt, now_ms, &p->conn, &err);
    if (rc < 0)
        give_up_for_now(p, err.msg, now_ms);
    if (rc <= 0)
        return false;
    PQsetnonblocking(p->conn, 1);
    return true;
}

int hms_progress_fd(const hms_progress_t *p, short *events, int64_t *deadline_ms)
{
    *events = 0;
    *deadline_ms = 0;
    if (p->attempt.conn != NULL) {
        *events = p->attempt.events;
        *deadline_ms = p->attempt.deadline_ms;
        return p->attempt.fd;
    }
    if (!p->busy)
        return -1;
    *events = (short)(POLLIN | (p->flushing ? POLLOUT : 0));
    return PQsocket(p->conn);
}

/* Asks how much WAL the slot keeps, its wal_status, and the server's
 * limit (max_slot_wal_keep_size in MB, -1: none). */
static void send_wal_query(hms_progress_t *p, int64_t now_ms)
{
    const char *params[] = {p->slot};
    int sent = PQsendQueryParams(
        p->conn,
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, wal_status, "
        "(SELECT setting::bigint FROM pg_catalog.pg_settings WHERE name = "
        "'max_slot_wal_keep_size') FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
        1, NULL, params, NULL, NULL, 0);
    int flushed = sent ? PQflush(p->conn) : -1;
    p->wal_read_ms = now_ms;
    if (flushed < 0) {
        give_up_for_now(p, PQerrorMessage(p->conn), now_ms);
        return;
    }
    p->busy = true;
    p->reading_wal = true;
    p->flushing = flushed == 1;
}

const hms_progress_wal_t *hms_progress_wal(const hms_progress_t *p)
{
    return &p->wal;
}

void hms_progress_tick(hms_progress_t *p, short revents, uint64_t confirmed_lsn,
                       int64_t commit_time, int64_t now_ms)
{
    if (p->busy) {
        collect(p, now_ms);
        if (p->busy)
            return;
    }
    if (now_ms < p->retry_at_ms)
        return;
    bool write = commit_time != 0 && commit_time != p->written_commit_time &&
                 now_ms - p->last_write_ms >= PROGRESS_INTERVAL_MS;
    bool read_wal = p->wal_read_ms == 0 || now_ms - p->wal_read_ms >= WAL_INTERVAL_MS;
    if ((!write && !read_wal) || !connected(p, revents, now_ms))
        return;
    if (!write) {
        send_wal_query(p, now_ms);
        return;
    }
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
    int flushed = sent ? PQflush(p->conn) : -1;
    if (flushed < 0) {
        give_up_for_now(p, PQerrorMessage(p->conn), now_ms);
        return;
    }
    p->busy = true;
    p->flushing = flushed == 1;
    p->last_write_ms = now_ms;
    p->written_commit_time = commit_time;
}

void hms_progress_final(hms_progress_t *p, uint64_t confirmed_lsn, int64_t commit_time,
                        int64_t now_ms)
{
    int64_t now = now_ms, end = now_ms + PROGRESS_FINAL_WAIT_MS;
    short revents = 0;
    for (;;) {
        p->last_write_ms = 0; /* the once-a-second limit does not apply now */
        p->wal_read_ms = now; /* and no WAL reading is due: stopping is */
        hms_progress_tick(p, revents, confirmed_lsn, commit_time, now);
        short events;
        int64_t deadline;
        int fd = hms_progress_fd(p, &events, &deadline);
        if (fd < 0 || now >= end) /* written, nothing to write, or given up */
            return;
        int64_t wait = deadline != 0 && deadline < end ? deadline - now : end - now;
        struct pollfd pfd = {.fd = fd, .events = events};
        revents = poll(&pfd, 1, wait > 0 ? (int)wait : 0) > 0 ? pfd.revents : 0;
        now = hms_clock_ms();
    }
}
