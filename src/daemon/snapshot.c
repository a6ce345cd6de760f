/* snapshot.c -- chunked snapshots with WAL watermarks, on a non-blocking
 * SQL connection (see snapshot.h for the why). */
#include "daemon/snapshot.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "core/backoff.h"
#include "core/buf.h"
#include "core/keyset.h"
#include "core/lsn.h"
#include "core/snapsql.h"

/* How often an idle connector looks for a new request. */
#define FIND_INTERVAL_MS 1000
/* Keys noted while a chunk's SELECT runs, before its rows are known: a
 * stream busier than this drops the read and tries the chunk again. */
#define PRENOTE_LIMIT 65536
/* Chunks published and awaiting the broker, most at once. */
#define INFLIGHT_MAX 64
/* Confirmed chunks are recorded at most this often (and whenever half of
 * INFLIGHT_MAX wait, or the request ends): one statement per chunk would
 * double the snapshot's statements, and a kill -9 reads at most this much
 * again. */
#define RECORD_MS 500
/* Pacing.  A live change committed after a chunk's watermark is published
 * after the chunk's rows, so while the stream carries changes (one within
 * LIVE_MS) a chunk is at most LIVE_CHUNK_ROWS rows, and the next is read
 * only once the last is confirmed and PAUSE_FACTOR times as long as it took
 * has passed: a change then waits behind a few milliseconds of snapshot
 * rows at most, and the snapshot's statements, watermark commits and
 * publishes take about a quarter of the time.
 * Alone, chunks are snapshot_chunk rows and up to IDLE_CHUNKS of them may be
 * unconfirmed, which keeps the broker busy. */
#define LIVE_MS 1000
#define LIVE_CHUNK_ROWS 32
#define IDLE_CHUNKS 4
#define PAUSE_FACTOR 3
#define PAUSE_MAX_MS 1000

typedef enum {
    OP_NONE,
    OP_FIND,     /* the oldest pending or running request of the slot */
    OP_START,    /* mark it running, count its rows */
    OP_SELECT,   /* read the chunk, if the request still runs */
    OP_MARK,     /* write the chunk's high watermark */
    OP_PROGRESS, /* record confirmed chunks */
    OP_FINISH,   /* done, or failed */
} op_t;

typedef enum {
    CH_NONE,    /* no chunk: the next may start */
    CH_READING, /* SELECT sent; rows not in hand; keys noted in prenoted */
    CH_HELD,    /* rows in hand, waiting for the stream to reach the watermark */
    CH_DUE,     /* the stream reached it: rows being taken */
    CH_EMITTED, /* all taken; waiting for the watermark transaction's commit */
} chunk_state_t;

/* A chunk published, waiting for the slot to pass its transaction. */
typedef struct {
    uint64_t end_lsn;
    int64_t rows;
    char last_key[80];
} inflight_t;

struct hms_snapshot {
    char *conninfo, *slot;
    const hms_capture_t *cap;
    int chunk_rows, connect_timeout_s, retry_min_ms, retry_max_ms;

    hms_pg_connecting_t attempt;
    PGconn *conn;
    op_t op;        /* the statement in flight */
    bool flushing;  /* libpq still holds part of it */
    unsigned epoch; /* bumped when the stream restarts: a late result is stale */
    unsigned op_epoch;
    int backoff_ms;
    int64_t retry_at_ms, next_find_ms;
    int64_t live_at_ms;     /* when the stream last carried a change of the table; 0: never */
    int64_t select_at_ms;   /* when the last chunk's SELECT was sent */
    int64_t pause_until_ms; /* while live: no chunk before; 0: not yet set */
    int64_t recorded_at_ms; /* when confirmed chunks were last recorded */
    uint64_t flush_lsn;     /* how far the broker confirmed, at the last tick */

    /* The request being served ("" when none). */
    char id[64];
    char *where;  /* NULL: every row */
    char *queue;  /* NULL: the change exchange */
    bool started; /* START done in this process since the last restart */
    bool finishing, failed;
    char error[300];
    int64_t rows_done, rows_total;
    char resume_key[80]; /* read after this key ("" from the start) */
    bool resume_null;
    /* Rows up to this version only (see hms_snapsql_chunk); "" without a
     * version column. */
    char version_bound[24];

    /* The chunk. */
    chunk_state_t chunk;
    PGresult *res;
    int nrows, next; /* rows, and the next to take */
    bool *dropped;
    size_t capdropped;
    bool truncated, overflow;
    bool marked;                 /* the chunk's watermark was written */
    hms_keyset_t prenoted, keys; /* keys noted before the rows came; the rows' keys */
    char nonce[128];             /* "<request id> <time>-<pid>-<chunk>": this chunk's watermark */
    unsigned chunk_no;
    hms_pgo_relation_t rel; /* the result's columns, for the encoder */
    hms_pgo_column_t *cols;
    size_t capcols;
    hms_pgo_value_t *values;
    size_t capvalues;
    uint64_t generation;

    inflight_t inflight[INFLIGHT_MAX];
    int ninflight;
    int64_t to_record_rows; /* confirmed, being recorded by OP_PROGRESS */
    int to_record_chunks;
    char to_record_key[80];

    uint64_t rows_published, rows_skipped;
};

hms_snapshot_t *hms_snapshot_new(const hms_snapshot_opts_t *o)
{
    hms_snapshot_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->conninfo = strdup(o->conninfo);
    s->slot = strdup(o->slot);
    s->cap = o->cap;
    s->chunk_rows = o->chunk_rows > 0 ? o->chunk_rows : 1024;
    s->connect_timeout_s = o->connect_timeout_s;
    s->retry_min_ms = o->retry_min_ms;
    s->retry_max_ms = o->retry_max_ms;
    s->attempt.fd = -1;
    s->rows_total = -1;
    /* Relation ids of the stream count up from 1 in each session; the
     * snapshot's own descriptions live in the top half. */
    s->generation = (uint64_t)1 << 63;
    hms_keyset_init(&s->prenoted, PRENOTE_LIMIT);
    hms_keyset_init(&s->keys, (size_t)s->chunk_rows);
    if (s->conninfo == NULL || s->slot == NULL) {
        hms_snapshot_free(s);
        return NULL;
    }
    return s;
}

static void chunk_drop(hms_snapshot_t *s)
{
    PQclear(s->res);
    s->res = NULL;
    s->nrows = s->next = 0;
    s->chunk = CH_NONE;
    s->truncated = s->overflow = s->marked = false;
    hms_keyset_clear(&s->prenoted);
    hms_keyset_clear(&s->keys);
}

static void request_forget(hms_snapshot_t *s)
{
    chunk_drop(s);
    s->id[0] = '\0';
    free(s->where);
    free(s->queue);
    s->where = s->queue = NULL;
    s->started = s->finishing = s->failed = false;
    /* Chunks of a request that stopped are not recorded: its row says
     * where it stopped, and a cancelled one needs no more. */
    s->ninflight = 0;
    s->rows_done = 0;
    s->rows_total = -1;
    s->version_bound[0] = '\0';
}

void hms_snapshot_free(hms_snapshot_t *s)
{
    if (s == NULL)
        return;
    hms_pg_connect_cancel(&s->attempt);
    if (s->conn != NULL)
        PQfinish(s->conn);
    request_forget(s);
    hms_keyset_free(&s->prenoted);
    hms_keyset_free(&s->keys);
    for (uint16_t i = 0; i < s->rel.ncols; i++)
        free(s->cols[i].name);
    free(s->cols);
    free(s->values);
    free(s->dropped);
    free(s->conninfo);
    free(s->slot);
    free(s);
}

/* ---- the connection ---- */

static void lose_connection(hms_snapshot_t *s, const char *why, int64_t now_ms)
{
    char line[300];
    hms_log(HMS_LOG_WARN,
            "snapshot: lost its SQL connection; the snapshot waits, the stream goes on", "error",
            hms_pg_one_line(why, line, sizeof(line)), NULL);
    hms_pg_connect_cancel(&s->attempt);
    if (s->conn != NULL)
        PQfinish(s->conn);
    s->conn = NULL;
    s->op = OP_NONE;
    s->flushing = false;
    /* A chunk being read or held is read again after the reconnect; one
     * already due or taken is in the stream and will be confirmed. */
    if (s->chunk == CH_READING || s->chunk == CH_HELD)
        chunk_drop(s);
    s->started = false;
    s->backoff_ms = hms_backoff_next(s->backoff_ms, s->retry_min_ms, s->retry_max_ms);
    s->retry_at_ms = now_ms + s->backoff_ms;
}

static bool connected(hms_snapshot_t *s, short revents, int64_t now_ms)
{
    hms_err_t err;
    if (s->conn != NULL)
        return true;
    if (now_ms < s->retry_at_ms)
        return false;
    if (s->attempt.conn == NULL) {
        /* synchronous_commit on: the walsender sends only flushed WAL, so
         * with it off (as some servers run) every watermark would wait for
         * the WAL writer, up to wal_writer_delay, and the snapshot with it. */
        hms_pg_params_t p = {.conninfo = s->conninfo,
                             .application_name = "hms-sync snapshot",
                             .options = "-c synchronous_commit=on",
                             .connect_timeout_s = s->connect_timeout_s};
        if (hms_pg_connect_start(&s->attempt, &p, now_ms, &err) != HMS_OK)
            lose_connection(s, err.msg, now_ms);
        return false;
    }
    if (revents == 0 && (s->attempt.deadline_ms == 0 || now_ms < s->attempt.deadline_ms))
        return false;
    int rc = hms_pg_connect_poll(&s->attempt, now_ms, &s->conn, &err);
    if (rc < 0)
        lose_connection(s, err.msg, now_ms);
    if (rc <= 0)
        return false;
    PQsetnonblocking(s->conn, 1);
    s->backoff_ms = 0;
    return true;
}

static bool send(hms_snapshot_t *s, op_t op, const char *sql, int nparams,
                 const char *const *params, int64_t now_ms)
{
    int flushed = PQsendQueryParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0)
                      ? PQflush(s->conn)
                      : -1;
    if (flushed < 0) {
        lose_connection(s, PQerrorMessage(s->conn), now_ms);
        return false;
    }
    s->op = op;
    s->op_epoch = s->epoch;
    s->flushing = flushed == 1;
    return true;
}

int hms_snapshot_fd(const hms_snapshot_t *s, short *events, int64_t *deadline_ms)
{
    *events = 0;
    *deadline_ms = 0;
    if (s->attempt.conn != NULL) {
        *events = s->attempt.events;
        *deadline_ms = s->attempt.deadline_ms;
        return s->attempt.fd;
    }
    if (s->conn == NULL) {
        *deadline_ms = s->retry_at_ms;
        return -1;
    }
    if (s->op == OP_NONE) {
        *deadline_ms = s->id[0] == '\0' ? s->next_find_ms : s->pause_until_ms;
        /* Confirmed chunks wait at most RECORD_MS to be recorded. */
        int64_t record_ms = s->recorded_at_ms + RECORD_MS;
        if (s->ninflight > 0 && s->inflight[0].end_lsn <= s->flush_lsn &&
            (*deadline_ms == 0 || record_ms < *deadline_ms))
            *deadline_ms = record_ms;
        return -1;
    }
    *events = (short)(POLLIN | (s->flushing ? POLLOUT : 0));
    return PQsocket(s->conn);
}

/* ---- the stream's side ---- */

void hms_snapshot_note_key(hms_snapshot_t *s, const char *key, size_t len)
{
    s->live_at_ms = hms_clock_ms();
    if (s->chunk == CH_READING) {
        if (!s->overflow && hms_keyset_put(&s->prenoted, key, len, 0) != HMS_OK)
            s->overflow = true;
    } else if (s->chunk == CH_HELD) {
        int32_t i = hms_keyset_get(&s->keys, key, len);
        if (i >= 0)
            s->dropped[i] = true;
    }
}

void hms_snapshot_note_truncate(hms_snapshot_t *s)
{
    if (s->chunk == CH_READING || s->chunk == CH_HELD)
        s->truncated = true;
}

bool hms_snapshot_watermark(hms_snapshot_t *s, const char *content, size_t len)
{
    if (s->chunk != CH_HELD || strlen(s->nonce) != len || memcmp(s->nonce, content, len) != 0)
        return false;
    s->chunk = CH_DUE;
    s->next = 0;
    return true;
}

bool hms_snapshot_due(const hms_snapshot_t *s)
{
    return s->chunk == CH_DUE;
}

bool hms_snapshot_next_row(hms_snapshot_t *s, hms_pgo_tuple_t *row, const hms_pgo_relation_t **rel,
                           const char **snapshot_id, const char **queue)
{
    if (s->chunk != CH_DUE)
        return false;
    while (s->next < s->nrows && (s->truncated || s->dropped[s->next])) {
        s->next++;
        s->rows_skipped++;
    }
    if (s->next >= s->nrows) {
        s->chunk = CH_EMITTED;
        return false;
    }
    int r = s->next++;
    for (int c = 0; c < s->rel.ncols; c++) {
        bool null = PQgetisnull(s->res, r, c);
        s->values[c] = (hms_pgo_value_t){.kind = null ? HMS_PGO_VAL_NULL : HMS_PGO_VAL_TEXT,
                                         .len = null ? 0 : (uint32_t)PQgetlength(s->res, r, c),
                                         .data = null ? NULL : PQgetvalue(s->res, r, c)};
    }
    *row = (hms_pgo_tuple_t){.ncols = s->rel.ncols, .values = s->values};
    *rel = &s->rel;
    *snapshot_id = s->id;
    *queue = s->queue;
    s->rows_published++;
    return true;
}

/* The key column's index in the result, or -1. */
static int key_col(const hms_snapshot_t *s)
{
    return s->res != NULL ? PQfnumber(s->res, s->cap->key_column) : -1;
}

void hms_snapshot_committed(hms_snapshot_t *s, uint64_t end_lsn)
{
    if (s->chunk != CH_EMITTED && s->chunk != CH_DUE)
        return;
    inflight_t *f = &s->inflight[s->ninflight++];
    int k = key_col(s);
    f->end_lsn = end_lsn;
    f->rows = s->nrows;
    snprintf(f->last_key, sizeof(f->last_key), "%s", PQgetvalue(s->res, s->nrows - 1, k));
    /* The next chunk reads on from here, before this one is confirmed. */
    snprintf(s->resume_key, sizeof(s->resume_key), "%s", f->last_key);
    s->resume_null = false;
    chunk_drop(s);
}

void hms_snapshot_stream_restart(hms_snapshot_t *s, uint64_t flush_lsn)
{
    /* What the slot passed is confirmed and will be recorded; the rest was
     * lost with the outbound queue and is read again. */
    int keep = 0;
    while (keep < s->ninflight && s->inflight[keep].end_lsn <= flush_lsn)
        keep++;
    s->ninflight = keep;
    chunk_drop(s);
    s->epoch++;
    s->started = false; /* START again: resume from the recorded position */
    /* A snapshot that had read its last chunk is not done if chunks were
     * lost unconfirmed: they are read again first. */
    s->finishing = s->failed;
}

void hms_snapshot_stats(const hms_snapshot_t *s, hms_snapshot_stats_t *out)
{
    snprintf(out->id, sizeof(out->id), "%s", s->id);
    out->rows_done = s->rows_done;
    out->rows_total = s->rows_total;
    out->rows_published = s->rows_published;
    out->rows_skipped = s->rows_skipped;
}

/* ---- the statements ---- */

static void start_find(hms_snapshot_t *s, int64_t now_ms)
{
    const char *params[] = {s->slot};
    send(s, OP_FIND, HMS_SNAPSQL_FIND, 1, params, now_ms);
}

static void start_start(hms_snapshot_t *s, int64_t now_ms)
{
    char *sql = hms_snapsql_start(s->cap, s->where);
    if (sql == NULL) {
        lose_connection(s, "out of memory", now_ms);
        return;
    }
    const char *params[] = {s->id};
    send(s, OP_START, sql, 1, params, now_ms);
    free(sql);
}

static bool live(const hms_snapshot_t *s, int64_t now_ms)
{
    return s->live_at_ms != 0 && now_ms - s->live_at_ms < LIVE_MS;
}

/* Rows the next chunk reads (see LIVE_CHUNK_ROWS). */
static int chunk_limit(const hms_snapshot_t *s, int64_t now_ms)
{
    return live(s, now_ms) && s->chunk_rows > LIVE_CHUNK_ROWS ? LIVE_CHUNK_ROWS : s->chunk_rows;
}

static void start_select(hms_snapshot_t *s, int64_t now_ms)
{
    char *sql = hms_snapsql_chunk(s->cap, s->where, !s->resume_null, chunk_limit(s, now_ms));
    if (sql == NULL) {
        lose_connection(s, "out of memory", now_ms);
        return;
    }
    const char *params[] = {s->id, s->version_bound[0] ? s->version_bound : NULL,
                            s->resume_null ? NULL : s->resume_key};
    s->select_at_ms = now_ms;
    s->pause_until_ms = 0;
    if (send(s, OP_SELECT, sql, 3, params, now_ms)) {
        /* From now on every key the stream carries may be newer than the
         * row the SELECT reads. */
        chunk_drop(s);
        s->chunk = CH_READING;
    }
    free(sql);
}

static void start_mark(hms_snapshot_t *s, int64_t now_ms)
{
    const char *params[] = {s->nonce};
    if (send(s, OP_MARK,
             "SELECT pg_catalog.pg_logical_emit_message(true, '" HMS_SNAPSHOT_PREFIX "', $1)", 1,
             params, now_ms))
        s->marked = true;
}

static void start_progress(hms_snapshot_t *s, uint64_t flush_lsn, int64_t now_ms)
{
    s->to_record_rows = 0;
    s->to_record_chunks = 0;
    int done = 0;
    while (done < s->ninflight && s->inflight[done].end_lsn <= flush_lsn) {
        s->to_record_rows += s->inflight[done].rows;
        s->to_record_chunks++;
        snprintf(s->to_record_key, sizeof(s->to_record_key), "%s", s->inflight[done].last_key);
        done++;
    }
    if (done == 0)
        return;
    s->recorded_at_ms = now_ms;
    memmove(s->inflight, s->inflight + done, (size_t)(s->ninflight - done) * sizeof(inflight_t));
    s->ninflight -= done;
    char rows[24], chunks[16];
    snprintf(rows, sizeof(rows), "%lld", (long long)s->to_record_rows);
    snprintf(chunks, sizeof(chunks), "%d", s->to_record_chunks);
    const char *params[] = {s->id, rows, s->to_record_key, chunks};
    send(s, OP_PROGRESS, HMS_SNAPSQL_PROGRESS, 4, params, now_ms);
}

static void start_finish(hms_snapshot_t *s, int64_t now_ms)
{
    const char *params[] = {s->id, s->failed ? s->error : NULL};
    send(s, OP_FINISH, HMS_SNAPSQL_FINISH, 2, params, now_ms);
}

/* ---- results ---- */

/* The result's columns as a relation the encoder understands; a new
 * generation only when they changed (a column added, say). */
static bool describe(hms_snapshot_t *s)
{
    int n = PQnfields(s->res);
    bool same = n == s->rel.ncols;
    for (int c = 0; same && c < n; c++)
        same = s->cols[c].type_oid == PQftype(s->res, c) &&
               strcmp(s->cols[c].name, PQfname(s->res, c)) == 0;
    if (same)
        return true;
    for (uint16_t i = 0; i < s->rel.ncols; i++)
        free(s->cols[i].name);
    s->rel.ncols = 0;
    if (n > UINT16_MAX ||
        hms_array_grow((void **)&s->cols, &s->capcols, (size_t)n, sizeof(*s->cols)) != HMS_OK ||
        hms_array_grow((void **)&s->values, &s->capvalues, (size_t)n, sizeof(*s->values)) != HMS_OK)
        return false;
    for (int c = 0; c < n; c++) {
        s->cols[c] = (hms_pgo_column_t){.name = strdup(PQfname(s->res, c)),
                                        .type_oid = PQftype(s->res, c),
                                        .typmod = PQfmod(s->res, c)};
        if (s->cols[c].name == NULL)
            return false;
        s->rel.ncols = (uint16_t)(c + 1);
        if (strcmp(s->cols[c].name, s->cap->key_column) == 0)
            s->cols[c].flags = 1;
    }
    s->rel.nspname = (char *)s->cap->schema;
    s->rel.relname = (char *)s->cap->table;
    s->rel.replident = 'f';
    s->rel.cols = s->cols;
    s->rel.generation = ++s->generation;
    return true;
}

/* A chunk's rows came: keep them, learn their keys, and drop those the
 * stream changed while the SELECT ran.  False when the chunk must be read
 * again (out of memory, or too busy a stream). */
static bool rows_arrived(hms_snapshot_t *s, PGresult *res)
{
    s->res = res;
    s->nrows = PQntuples(res);
    int k = key_col(s);
    if (k < 0 || !describe(s) ||
        hms_array_grow((void **)&s->dropped, &s->capdropped, (size_t)s->nrows + 1,
                       sizeof(*s->dropped)) != HMS_OK ||
        s->overflow)
        return false;
    for (int r = 0; r < s->nrows; r++) {
        const char *key = PQgetvalue(res, r, k);
        size_t len = (size_t)PQgetlength(res, r, k);
        if (hms_keyset_put(&s->keys, key, len, r) != HMS_OK)
            return false;
        s->dropped[r] = hms_keyset_get(&s->prenoted, key, len) >= 0;
    }
    hms_keyset_clear(&s->prenoted);
    snprintf(s->nonce, sizeof(s->nonce), "%s %llx-%x-%u", s->id, (unsigned long long)hms_clock_ms(),
             (unsigned)getpid(), ++s->chunk_no);
    s->chunk = CH_HELD;
    return true;
}

static void request_failed(hms_snapshot_t *s, const char *what, const char *why)
{
    char line[260];
    hms_pg_one_line(why, line, sizeof(line));
    snprintf(s->error, sizeof(s->error), "%s: %s", what, line);
    hms_log(HMS_LOG_ERROR, "snapshot failed; the stream goes on", "snapshot", s->id, "error",
            s->error, NULL);
    chunk_drop(s);
    s->failed = s->finishing = true;
}

void hms_snapshot_queue_gone(hms_snapshot_t *s, const char *queue)
{
    if (s->id[0] == '\0' || s->failed || s->queue == NULL || strcmp(s->queue, queue) != 0)
        return;
    request_failed(s, "its queue", "the broker returned its rows: the queue no longer exists");
}

static void take_find(hms_snapshot_t *s, PGresult *res, int64_t now_ms)
{
    s->next_find_ms = now_ms + FIND_INTERVAL_MS;
    if (PQntuples(res) != 1)
        return;
    request_forget(s);
    snprintf(s->id, sizeof(s->id), "%s", PQgetvalue(res, 0, 0));
    s->where = PQgetisnull(res, 0, 1) ? NULL : strdup(PQgetvalue(res, 0, 1));
    s->queue = PQgetisnull(res, 0, 2) ? NULL : strdup(PQgetvalue(res, 0, 2));
    hms_log(HMS_LOG_INFO, "snapshot starting", "snapshot", s->id, "where",
            s->where ? s->where : "(every row)", "queue", s->queue ? s->queue : "(exchange)", NULL);
}

static void take_start(hms_snapshot_t *s, PGresult *res)
{
    if (PQntuples(res) != 1) { /* cancelled or finished meanwhile */
        request_forget(s);
        return;
    }
    s->rows_total = PQgetisnull(res, 0, 0) ? -1 : atoll(PQgetvalue(res, 0, 0));
    s->rows_done = atoll(PQgetvalue(res, 0, 1));
    s->resume_null = PQgetisnull(res, 0, 2);
    snprintf(s->resume_key, sizeof(s->resume_key), "%s", PQgetvalue(res, 0, 2));
    snprintf(s->version_bound, sizeof(s->version_bound), "%s", PQgetvalue(res, 0, 3));
    s->started = true;
    /* No row matched when it first started: the stream carries every row
     * written since, so there is nothing to read. */
    if (s->cap->version_column != NULL && PQgetisnull(res, 0, 3))
        s->finishing = true;
}

/* A statement finished: what it means. */
static void take_result(hms_snapshot_t *s, op_t op, PGresult *res, int64_t now_ms)
{
    ExecStatusType rs = PQresultStatus(res);
    bool ok = rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK;
    bool stale = s->op_epoch != s->epoch;
    switch (op) {
    case OP_FIND:
        if (!ok) {
            /* Most likely migrations older than the snapshots table: say
             * so once in a while, never stop the stream for it. */
            char line[300];
            s->next_find_ms = now_ms + 30 * FIND_INTERVAL_MS;
            hms_log(HMS_LOG_WARN,
                    "snapshot: cannot read hms_sync.snapshots (run hms-sync migrate); snapshots "
                    "wait, the stream goes on",
                    "error", hms_pg_one_line(PQresultErrorMessage(res), line, sizeof(line)), NULL);
        } else if (!stale) {
            take_find(s, res, now_ms);
        }
        break;
    case OP_START:
        if (stale)
            break;
        if (ok)
            take_start(s, res);
        else
            request_failed(s, "counting its rows", PQresultErrorMessage(res));
        break;
    case OP_SELECT:
        if (stale || s->chunk != CH_READING)
            break;
        if (!ok) {
            request_failed(s, "reading a chunk", PQresultErrorMessage(res));
        } else if (PQntuples(res) == 0) {
            chunk_drop(s);
            s->finishing = true;
        } else if (rows_arrived(s, res)) {
            return; /* the chunk keeps res */
        } else {
            hms_log(HMS_LOG_DEBUG, "snapshot: reading the chunk again", "snapshot", s->id, NULL);
            s->res = NULL; /* cleared below */
            chunk_drop(s);
        }
        break;
    case OP_MARK:
        if (!ok && !stale && s->chunk == CH_HELD) {
            request_failed(s, "writing a watermark", PQresultErrorMessage(res));
        }
        break;
    case OP_PROGRESS:
        if (ok) {
            s->rows_done += s->to_record_rows;
            /* The total was counted at the start; rows inserted since and
             * read too raise it, so progress never passes 100%. */
            if (s->rows_total >= 0 && s->rows_done > s->rows_total)
                s->rows_total = s->rows_done;
            if (hms_log_enabled(HMS_LOG_DEBUG)) {
                char d[24];
                snprintf(d, sizeof(d), "%lld", (long long)s->rows_done);
                hms_log(HMS_LOG_DEBUG, "snapshot chunk confirmed", "snapshot", s->id, "rows_done",
                        d, NULL);
            }
        }
        break;
    case OP_FINISH:
        if (ok) {
            char d[24];
            snprintf(d, sizeof(d), "%lld", (long long)s->rows_done);
            if (PQntuples(res) == 0)
                hms_log(HMS_LOG_INFO, "snapshot stopped: no longer running (cancelled?)",
                        "snapshot", s->id, "rows", d, NULL);
            else
                hms_log(HMS_LOG_INFO, s->failed ? "snapshot marked failed" : "snapshot done",
                        "snapshot", s->id, "rows", d, NULL);
            request_forget(s);
            s->next_find_ms = 0;
        }
        break;
    case OP_NONE: break;
    }
    PQclear(res);
}

/* Reads what the server sent; true when the statement in flight ended. */
static bool collect(hms_snapshot_t *s, int64_t now_ms)
{
    int flushed = PQflush(s->conn);
    if (flushed < 0 || PQconsumeInput(s->conn) == 0) {
        lose_connection(s, PQerrorMessage(s->conn), now_ms);
        return false;
    }
    s->flushing = flushed == 1;
    if (PQisBusy(s->conn))
        return false;
    op_t op = s->op;
    PGresult *res, *first = NULL;
    while ((res = PQgetResult(s->conn)) != NULL) {
        if (first == NULL)
            first = res;
        else
            PQclear(res);
    }
    s->op = OP_NONE;
    if (first != NULL)
        take_result(s, op, first, now_ms);
    return true;
}

/* Snapshot rows published and not yet confirmed by the broker. */
static long unconfirmed_rows(const hms_snapshot_t *s, uint64_t flush_lsn)
{
    long n = 0;
    for (int i = 0; i < s->ninflight; i++)
        if (s->inflight[i].end_lsn > flush_lsn)
            n += s->inflight[i].rows;
    return n;
}

/* The next statement, if one is due, in order of urgency: the watermark
 * of rows in hand (the stream waits for it), recording confirmed chunks,
 * then the request's own course. */
static void next_step(hms_snapshot_t *s, uint64_t flush_lsn, int64_t now_ms)
{
    if (s->chunk == CH_HELD && !s->marked) {
        start_mark(s, now_ms);
        return;
    }
    if (s->ninflight > 0 && s->inflight[0].end_lsn <= flush_lsn && s->id[0] != '\0' &&
        (s->finishing || s->ninflight >= INFLIGHT_MAX / 2 ||
         now_ms - s->recorded_at_ms >= RECORD_MS)) {
        start_progress(s, flush_lsn, now_ms);
        return;
    }
    if (s->id[0] == '\0') {
        if (now_ms >= s->next_find_ms)
            start_find(s, now_ms);
        return;
    }
    if (s->finishing) {
        /* Done only once every chunk is confirmed and recorded. */
        if (s->ninflight == 0 && s->chunk == CH_NONE)
            start_finish(s, now_ms);
        return;
    }
    if (!s->started) {
        start_start(s, now_ms);
        return;
    }
    long unconfirmed = unconfirmed_rows(s, flush_lsn);
    if (s->chunk != CH_NONE || s->ninflight >= INFLIGHT_MAX)
        return;
    if (live(s, now_ms)) {
        if (unconfirmed > 0)
            return;
        /* PAUSE_FACTOR times as long as the last chunk took, a second at
         * most. */
        if (s->pause_until_ms == 0 && s->select_at_ms != 0) {
            int64_t pause = (now_ms - s->select_at_ms) * PAUSE_FACTOR;
            s->pause_until_ms = now_ms + (pause < PAUSE_MAX_MS ? pause : PAUSE_MAX_MS);
        }
        if (now_ms < s->pause_until_ms)
            return;
    } else if (unconfirmed >= (long)s->chunk_rows * IDLE_CHUNKS) {
        return;
    }
    start_select(s, now_ms);
}

void hms_snapshot_tick(hms_snapshot_t *s, short revents, uint64_t flush_lsn, int64_t now_ms)
{
    s->flush_lsn = flush_lsn;
    if (s->conn == NULL && !connected(s, revents, now_ms))
        return;
    if (s->op != OP_NONE && !collect(s, now_ms))
        return;
    if (s->conn != NULL && s->op == OP_NONE)
        next_step(s, flush_lsn, now_ms);
}
