/* feedback.h -- when `run` owes the walsender a standby status update.
 *
 * PostgreSQL advances the slot only when told, and drops a client it has not
 * heard from for wal_sender_timeout.  So a status goes out:
 *   - soon after the flush position advances, but at most every
 *     HMS_FEEDBACK_COALESCE_MS, so a stream of acks does not become a stream
 *     of status messages, yet the slot follows the broker within a few tens
 *     of milliseconds;
 *   - at once when a keepalive asked for a reply;
 *   - otherwise at least every feedback_interval, and every third of the
 *     walsender's wal_sender_timeout when that is shorter: while the queue
 *     is full the loop reads nothing, so it never sees the walsender's
 *     reply-requested keepalives and must not rely on them.
 * A status asks for a reply itself when PostgreSQL has been quiet for a
 * feedback_interval, so silence means a dead link rather than an idle server.
 *
 * The flush position given here is the LSN tracker's, which already applies
 * the rule that a keepalive's WAL end counts only while nothing is in flight.
 *
 * Pure: no I/O; the caller passes its monotonic clock (milliseconds). */
#ifndef HMS_CORE_FEEDBACK_H
#define HMS_CORE_FEEDBACK_H

#include <stdbool.h>
#include <stdint.h>

#define HMS_FEEDBACK_COALESCE_MS 20

/* One replication session's feedback state.  The loop reads the fields; it
 * changes them only through the functions below. */
typedef struct {
    int interval_ms;       /* feedback_interval */
    int sender_timeout_ms; /* the walsender's wal_sender_timeout; 0: none or unknown */
    int64_t last_sent_ms;  /* when the last status went out; 0: none yet this session */
    uint64_t sent_flush;   /* the flush position it carried */
    int64_t last_recv_ms;  /* when PostgreSQL was last heard from (or not listened to) */
    bool reply_requested;  /* a keepalive asked for a reply not yet sent */
} hms_feedback_t;

/* Starts a session at now_ms: nothing sent yet, so a status is due at once
 * (the walsender learns where we are without waiting an interval). */
void hms_feedback_start(hms_feedback_t *f, int interval_ms, int sender_timeout_ms, int64_t now_ms);

/* The longest gap between two status updates: feedback_interval, or a third
 * of wal_sender_timeout when that is shorter. */
int64_t hms_feedback_interval(const hms_feedback_t *f);

/* When the next status is due given the tracker's flush position: the
 * caller's poll deadline.  May be in the past. */
int64_t hms_feedback_next_ms(const hms_feedback_t *f, uint64_t flush);

/* Whether a status should go out now. */
bool hms_feedback_due(const hms_feedback_t *f, uint64_t flush, int64_t now_ms);

/* Whether the status sent now should ask the walsender for a reply. */
bool hms_feedback_ask(const hms_feedback_t *f, int64_t now_ms);

/* The write position to report: what was received, never behind flush. */
uint64_t hms_feedback_write_lsn(uint64_t received, uint64_t flush);

/* Records what the caller hears and does. */
void hms_feedback_heard(hms_feedback_t *f, int64_t now_ms);
void hms_feedback_reply_asked(hms_feedback_t *f);
void hms_feedback_sent(hms_feedback_t *f, uint64_t flush, int64_t now_ms);

#endif
