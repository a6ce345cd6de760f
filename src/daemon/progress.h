/* progress.h -- records, in hms_sync.slot_progress, how far the connector
 * has confirmed and the commit time of that transaction, so `hms-sync
 * status` can say how many seconds behind the slot is, and so a slot that
 * vanished is noticed instead of silently recreated.
 *
 * It uses its own normal (non-replication) connection, writes without
 * blocking (one upsert in flight at a time, at most one a second, and only
 * when the confirmed commit changed, so an idle database sees no writes),
 * and never stops the stream: if the table is missing or the write fails it
 * says so once and keeps trying now and then. */
#ifndef HMS_DAEMON_PROGRESS_H
#define HMS_DAEMON_PROGRESS_H

#include <stdint.h>

typedef struct hms_progress hms_progress_t;

/* Both strings are copied.  NULL on out of memory.  Connects lazily. */
hms_progress_t *hms_progress_new(const char *conninfo, const char *slot);
void hms_progress_free(hms_progress_t *p);

/* Called on every loop turn: collects the result of a finished write and,
 * when due, starts the next one.  commit_time is microseconds since
 * 2000-01-01 (0: nothing confirmed yet). */
void hms_progress_tick(hms_progress_t *p, uint64_t confirmed_lsn, int64_t commit_time,
                       int64_t now_ms);

/* On a clean stop: waits (at most about two seconds) for a write in flight
 * and records the final position if it changed since. */
void hms_progress_final(hms_progress_t *p, uint64_t confirmed_lsn, int64_t commit_time,
                        int64_t now_ms);

#endif
