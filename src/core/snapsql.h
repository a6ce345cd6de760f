/* snapsql.h -- the text of the statements a snapshot runs on its SQL
 * connection, built from the capture and the request.
 *
 * Pure: no I/O, so the statements can be checked without a server.  Each
 * returns a string the caller frees, or NULL when out of memory.  A
 * request's condition (where_sql) goes in verbatim, in parentheses, after a
 * newline that ends a trailing -- comment: it was checked by PostgreSQL when
 * it was asked for (see core/wherecheck.h), and only hms-sync and the
 * database's administrators can insert requests. */
#ifndef HMS_CORE_SNAPSQL_H
#define HMS_CORE_SNAPSQL_H

#include <stdbool.h>

#include "core/event.h"

/* The oldest pending or running request of slot $1: id, where_sql, queue,
 * rows_done, rows_total, last_key. */
#define HMS_SNAPSQL_FIND                                                                           \
    "SELECT id, where_sql, queue, rows_done, rows_total, last_key FROM hms_sync.snapshots WHERE "  \
    "slot = $1 AND state IN ('pending', 'running') ORDER BY requested_at, id LIMIT 1"

/* Records confirmed chunks of request $1: $2 rows, $3 the last key, $4
 * chunks.  The total rises with rows done, so progress never passes 100%. */
#define HMS_SNAPSQL_PROGRESS                                                                       \
    "UPDATE hms_sync.snapshots SET rows_done = rows_done + $2::bigint, rows_total = "              \
    "greatest(rows_total, rows_done + $2::bigint), last_key = $3, chunks_done = chunks_done + "    \
    "$4::bigint, updated_at = now() WHERE id = $1 AND state = 'running'"

/* Ends request $1: done, or failed with error $2.  No row back: it was no
 * longer pending or running (cancelled). */
#define HMS_SNAPSQL_FINISH                                                                         \
    "UPDATE hms_sync.snapshots SET state = CASE WHEN $2::text IS NULL THEN 'done' ELSE 'failed' "  \
    "END, error = $2, finished_at = now(), updated_at = now() WHERE id = $1 AND state IN "         \
    "('pending', 'running') RETURNING state"

/* The request `run` inserts, on the replication connection just before it
 * creates a slot, so that no crash can leave a new slot without its
 * snapshot; slot_lit is the slot's name as an SQL literal. */
char *hms_snapsql_initial(const char *slot_lit);

/* Before the request of a slot recreated after it was lost: an initial
 * snapshot of the lost slot still under way is cancelled, since the rows it
 * already read may have changed in the changes the new slot never streams;
 * the new request starts from the first key. */
char *hms_snapsql_cancel_initial(const char *slot_lit);

/* Marks request $1 running and returns rows_total, rows_done, last_key,
 * version_bound.  The count of matching rows and the greatest version among
 * them are taken when the request first starts; a resumed one keeps both (a
 * coalesce does not run its subquery).  Without a version column the bound
 * is NULL. */
char *hms_snapsql_start(const hms_capture_t *cap, const char *where);

/* Reads the next chunk of at most limit rows, in key order.  Three
 * parameters: $1 the request's id (a cancelled request reads nothing), $2
 * the version bound (NULL: every version, and the only value without a
 * version column), $3 the last key read with after_key (untyped, so
 * PostgreSQL gives it the key column's type), NULL without. */
char *hms_snapsql_chunk(const hms_capture_t *cap, const char *where, bool after_key, int limit);

#endif
