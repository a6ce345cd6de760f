/* snapshot.h -- snapshots of the captured table's rows, read alongside the
 * change stream: the initial snapshot of a new slot and the backfills that
 * `hms-sync snapshot` asks for, one at a time, from hms_sync.snapshots.
 *
 * How a row never lands after a newer change of itself (watermarks, as in
 * Netflix's DBLog): the rows are read in chunks, in key order (keyset, no
 * OFFSET), on a second, ordinary SQL connection.  From the moment a chunk's
 * SELECT is sent, every key the change stream carries is noted.  When the
 * rows are in hand, a high watermark is written into the WAL
 * (pg_logical_emit_message, in its own transaction).  When the change stream
 * reaches that watermark, the chunk's rows are published right there, in
 * stream order, less every row whose key was noted: such a row's change
 * reached the stream after the read began, and that change (which carries
 * the whole row) is newer than or as new as what was read.  A TRUNCATE in
 * the window drops the whole chunk.  So in any queue a snapshot event of a
 * row never follows a change of that row newer than the read.
 *
 * The chunk's events belong to the watermark's transaction: the slot passes
 * it only when the broker has confirmed them all.  Only then is the chunk
 * recorded as done (last_key, rows_done) in hms_sync.snapshots, a few
 * confirmed chunks at a time, so after a kill -9 the snapshot resumes after
 * the last recorded chunk; a chunk published but not recorded is read again
 * (new ids; last-write-wins makes the repeat harmless).  Memory is one chunk of rows and its keys,
 * whatever the table's size.
 *
 * The SQL connection is non-blocking and driven by the caller's poll loop,
 * like the progress connection: one statement in flight at a time, and a
 * database that is away delays the snapshot, never the stream.
 *
 * Ownership: everything is copied or owned; rows handed out stay valid
 * until the next call that takes a row or ends the chunk. */
#ifndef HMS_DAEMON_SNAPSHOT_H
#define HMS_DAEMON_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/pgoutput.h"

/* The prefix of the watermark messages in the WAL. */
#define HMS_SNAPSHOT_PREFIX "hms_sync.snapshot"

typedef struct {
    const char *conninfo;
    const char *slot;         /* requests are for the connector of this slot */
    const hms_capture_t *cap; /* the captured table: schema, table, key column */
    int chunk_rows;           /* rows per chunk */
    int connect_timeout_s;
    int retry_min_ms, retry_max_ms;
} hms_snapshot_opts_t;

typedef struct hms_snapshot hms_snapshot_t;

/* Strings are copied; cap is borrowed.  NULL on out of memory. */
hms_snapshot_t *hms_snapshot_new(const hms_snapshot_opts_t *o);
void hms_snapshot_free(hms_snapshot_t *s);

/* The socket to poll and for what, or -1 (then *events 0); *deadline_ms
 * when hms_snapshot_tick must run again by itself (0: none). */
int hms_snapshot_fd(const hms_snapshot_t *s, short *events, int64_t *deadline_ms);

/* Each loop turn, with what poll() said of hms_snapshot_fd's socket:
 * collects a finished statement, records chunks the slot has passed
 * (flush_lsn: the LSN tracker's flush position) and starts the next step. */
void hms_snapshot_tick(hms_snapshot_t *s, short revents, uint64_t flush_lsn, int64_t now_ms);

/* ---- the change stream's side (called by daemon/changes.c) ---- */

/* A change of the captured table carried key (text form). */
void hms_snapshot_note_key(hms_snapshot_t *s, const char *key, size_t len);
/* The captured table was truncated. */
void hms_snapshot_note_truncate(hms_snapshot_t *s);
/* A transactional message with HMS_SNAPSHOT_PREFIX: true when it is the
 * watermark of the chunk in hand, whose rows are now due. */
bool hms_snapshot_watermark(hms_snapshot_t *s, const char *content, size_t len);

/* The next due row, in key order, skipping rows the stream superseded:
 * fills *row and *rel (a description of the result's columns, valid while
 * the row is) and returns true, or returns false when the chunk has no row
 * left.  *snapshot_id is the request's id, *queue its target queue or NULL
 * (the change exchange). */
bool hms_snapshot_next_row(hms_snapshot_t *s, hms_pgo_tuple_t *row, const hms_pgo_relation_t **rel,
                           const char **snapshot_id, const char **queue);
/* Whether rows are due (a watermark was reached and not all taken). */
bool hms_snapshot_due(const hms_snapshot_t *s);
/* The watermark's transaction, which carried the chunk's rows, committed at
 * end_lsn: the chunk is done once the slot is confirmed there. */
void hms_snapshot_committed(hms_snapshot_t *s, uint64_t end_lsn);
/* The stream starts again from the slot's confirmed position: a chunk in
 * hand is dropped (its watermark, if replayed, is ignored) and the
 * snapshot resumes from its last recorded chunk. */
void hms_snapshot_stream_restart(hms_snapshot_t *s, uint64_t flush_lsn);

/* ---- for metrics and status ---- */
typedef struct {
    char id[64];             /* "" when no snapshot runs */
    int64_t rows_done;       /* recorded as confirmed */
    int64_t rows_total;      /* -1 while unknown */
    uint64_t rows_published; /* events handed to the queue by this process, all snapshots */
    uint64_t rows_skipped;   /* rows read but superseded by the stream */
} hms_snapshot_stats_t;
void hms_snapshot_stats(const hms_snapshot_t *s, hms_snapshot_stats_t *out);

/* The broker returned a row addressed to queue: when that is the request's
 * queue, the request fails (a queue that is gone cannot take the rest) and
 * the stream goes on. */
void hms_snapshot_queue_gone(hms_snapshot_t *s, const char *queue);

#endif
