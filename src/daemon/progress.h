/* progress.h -- records, in hms_sync.slot_progress, how far the connector
 * has confirmed and the commit time of that transaction, so `hms-sync
 * status` can say how many seconds behind the slot is, and so a slot that
 * vanished is noticed instead of silently recreated.
 *
 * It uses its own normal (non-replication) connection, connects and writes
 * without blocking (one upsert in flight at a time, at most one a second,
 * and only when the confirmed commit changed, so an idle database sees no
 * writes), and never stops the stream: if the server is away, the table is
 * missing or the write fails it says so once and keeps trying now and then.
 *
 * On the same connection it reads, every 10 s, how much WAL the slot keeps
 * and the server's limit, for the status page and /metrics. */
#ifndef HMS_DAEMON_PROGRESS_H
#define HMS_DAEMON_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hms_progress hms_progress_t;

/* The slot's WAL retention, as last read. */
typedef struct {
    bool known;             /* read at least once */
    int64_t retained_bytes; /* current WAL - restart_lsn; -1 unknown */
    int64_t keep_max_bytes; /* max_slot_wal_keep_size; -1: no limit */
    char status[16];        /* wal_status: reserved, extended, unreserved, lost */
} hms_progress_wal_t;

/* The newest reading (known false before the first). */
const hms_progress_wal_t *hms_progress_wal(const hms_progress_t *p);

/* Both strings are copied.  NULL on out of memory.  Connects lazily, with
 * common/pgconn.h's policy (connect_timeout_s its default limit). */
hms_progress_t *hms_progress_new(const char *conninfo, const char *slot, int connect_timeout_s);
void hms_progress_free(hms_progress_t *p);

/* The socket the caller's poll should watch for p, or -1 when p waits for
 * nothing (*events 0 then); *events gets POLLIN and/or POLLOUT,
 * *deadline_ms the hms_clock_ms() by which hms_progress_tick must run
 * again (0: none). */
int hms_progress_fd(const hms_progress_t *p, short *events, int64_t *deadline_ms);

/* Called on every loop turn with what poll() reported for hms_progress_fd's
 * socket (0: nothing, or not polled): advances a connection attempt,
 * collects the result of a finished write and, when due, starts the next
 * one.  commit_time is microseconds since 2000-01-01 (0: nothing confirmed
 * yet). */
void hms_progress_tick(hms_progress_t *p, short revents, uint64_t confirmed_lsn,
                       int64_t commit_time, int64_t now_ms);

/* On a clean stop: waits (about two seconds at most) for a connection or a
 * write under way and records the final position if it changed since. */
void hms_progress_final(hms_progress_t *p, uint64_t confirmed_lsn, int64_t commit_time,
                        int64_t now_ms);

#endif
