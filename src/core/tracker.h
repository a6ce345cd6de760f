/* tracker.h -- the LSN tracker: which WAL position may be confirmed to the
 * replication slot.
 *
 * Its one rule (guarantee 2): the flush position never passes a change whose
 * event the broker has not confirmed.  Events get a sequence number in stream
 * order; transactions are closed by their commit's end LSN.  The flush
 * position is the end LSN of the newest transaction such that it and every
 * older transaction are complete (commit seen) and all their events
 * confirmed.  Confirmations may arrive in any order and more than once.
 *
 * When nothing is in flight (no open transaction, every event confirmed) a
 * keepalive's walEnd may be taken as the flush position, so that an idle or
 * unrelated-busy database does not retain WAL.
 *
 * Pure: no I/O.  The tracker owns its storage. */
#ifndef HMS_CORE_TRACKER_H
#define HMS_CORE_TRACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct hms_tracker hms_tracker_t;

/* NULL on out of memory.  start_lsn is the initial flush position. */
hms_tracker_t *hms_tracker_new(uint64_t start_lsn);
void hms_tracker_free(hms_tracker_t *t);
/* Forgets every transaction and event (e.g. after a reconnect); the flush
 * position becomes max(current, start_lsn); sequence numbers keep growing. */
void hms_tracker_reset(hms_tracker_t *t, uint64_t start_lsn);

/* Opens a transaction.  HMS_ERR_STATE if one is already open. */
hms_status_t hms_tracker_begin(hms_tracker_t *t);
/* Adds one event to the open transaction; *seq receives its number.
 * HMS_ERR_STATE outside a transaction. */
hms_status_t hms_tracker_add_event(hms_tracker_t *t, uint64_t *seq);
/* Closes the open transaction at its commit's end LSN; commit_time
 * (microseconds since 2000-01-01) is remembered for lag reporting. */
hms_status_t hms_tracker_commit(hms_tracker_t *t, uint64_t end_lsn, int64_t commit_time);
/* Marks event seq confirmed by the broker.  Unknown or already confirmed
 * sequence numbers are ignored. */
void hms_tracker_confirm(hms_tracker_t *t, uint64_t seq);
/* A keepalive reported the server's WAL end: taken only when nothing is in
 * flight. */
void hms_tracker_keepalive(hms_tracker_t *t, uint64_t wal_end);

uint64_t hms_tracker_flush_lsn(const hms_tracker_t *t);
/* The greatest end LSN any transaction was committed at, confirmed or not,
 * across resets (0: none): every event handed out lies below it.  A slot
 * recreated after a failover must start past it (daemon/repl.c). */
uint64_t hms_tracker_newest_end(const hms_tracker_t *t);
/* Events added but not yet confirmed. */
size_t hms_tracker_unconfirmed(const hms_tracker_t *t);
bool hms_tracker_in_tx(const hms_tracker_t *t);
/* Commit time of the newest transaction covered by the flush position
 * (microseconds since 2000-01-01), or 0 if none yet. */
int64_t hms_tracker_flushed_commit_time(const hms_tracker_t *t);
/* Bytes the tracker currently owns (struct and rings); for tests and metrics
 * that check memory follows what is in flight, not the history. */
size_t hms_tracker_mem_bytes(const hms_tracker_t *t);

#endif
