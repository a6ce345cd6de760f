/* outq.h -- the outbound queue: encoded events waiting to be published or
 * confirmed, in stream order.
 *
 * A ring of slots addressed by absolute positions (pos % capacity).  Three
 * cursors split it: [head, pub) has been handed to the broker, [pub, tail)
 * waits to be published.  Slots keep their event buffers when recycled, so
 * the steady state allocates nothing.
 *
 * Why go-back-N: when the broker refuses an event (basic.nack, or
 * basic.return followed by basic.ack), publishing stops; once every
 * outstanding publish is settled, publishing restarts from the oldest
 * refused event and re-sends everything after it, confirmed or not.  The
 * last copy of each event then reaches the broker in stream order, so within
 * one subject the accepted sequence is in commit order; re-sent events carry
 * the same ids and subscribers drop the duplicates.
 *
 * Delivery tags: the broker numbers publishes on a channel 1, 2, 3, ...  A
 * "tag epoch" records which position got which tag when publishing (re)started,
 * so a tag maps back to a position arithmetically: publishes between two
 * restarts are consecutive in both.  Pure: no I/O. */
#ifndef HMS_CORE_OUTQ_H
#define HMS_CORE_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/status.h"

typedef enum {
    HMS_SLOT_PENDING = 0, /* encoded, not yet published */
    HMS_SLOT_SENT,        /* published, awaiting the broker's verdict */
    HMS_SLOT_RETURNED,    /* basic.return seen; its ack will be a refusal */
    HMS_SLOT_CONFIRMED,   /* acked without a return */
    HMS_SLOT_REFUSED,     /* nacked, or returned then acked: to re-send */
} hms_slot_state_t;

typedef struct {
    hms_event_t ev;
    uint64_t seq; /* the LSN tracker's sequence number */
    uint64_t tag; /* delivery tag of the latest publish */
    hms_slot_state_t state;
} hms_outq_slot_t;

typedef struct hms_outq hms_outq_t;

/* A queue of capacity slots; NULL on out of memory. */
hms_outq_t *hms_outq_new(size_t capacity);
void hms_outq_free(hms_outq_t *q);

/* The free slot at the tail, to encode an event into, or NULL when full.
 * Its ev buffers may hold a previous event's bytes; the encoder resets them.
 * The slot joins the queue only on hms_outq_push(). */
hms_outq_slot_t *hms_outq_reserve(hms_outq_t *q);
void hms_outq_push(hms_outq_t *q, uint64_t seq);

size_t hms_outq_len(const hms_outq_t *q);         /* slots in the queue */
size_t hms_outq_outstanding(const hms_outq_t *q); /* SENT or RETURNED */
bool hms_outq_full(const hms_outq_t *q);
size_t hms_outq_room(const hms_outq_t *q); /* free slots */

/* The next slot to publish, or NULL when none is pending or publishing is
 * paused because a refusal is being handled. */
hms_outq_slot_t *hms_outq_next(hms_outq_t *q);
/* Records that the slot hms_outq_next() returned was published with tag. */
void hms_outq_sent(hms_outq_t *q, uint64_t tag);

/* Settles the publish with this tag (all outstanding ones up to it when
 * multiple).  Newly confirmed slots have their seq written to confirmed[]
 * (at most max entries; the count is returned) so the caller can tell the
 * LSN tracker; refused slots pause publishing.  Unknown tags are ignored. */
size_t hms_outq_ack(hms_outq_t *q, uint64_t tag, bool multiple, uint64_t *confirmed, size_t max);
void hms_outq_nack(hms_outq_t *q, uint64_t tag, bool multiple);
/* Marks the outstanding slot whose event id is message_id as returned.
 * Returns false if no outstanding slot has that id. */
bool hms_outq_returned(hms_outq_t *q, const char *message_id);
/* An outstanding event addressed to one queue (ev.queue, a snapshot for one
 * subscriber) that the broker returned: that queue is gone, and no retry
 * can route it.  Leaves the slot to be settled by its ack, as delivered,
 * copies the queue's name and returns true; false (nothing changed) for
 * any other event, which hms_outq_returned then takes. */
bool hms_outq_returned_to_queue(hms_outq_t *q, const char *message_id, char *queue, size_t len);

/* True when a refusal is pending and every outstanding publish is settled:
 * the caller may restart publishing (after its backoff) with
 * hms_outq_rewind(). */
bool hms_outq_refused(const hms_outq_t *q);
bool hms_outq_rewind_ready(const hms_outq_t *q);
/* Restarts publishing at the oldest unconfirmed slot; every slot from there
 * on becomes PENDING again.  Also used after the broker connection is lost
 * (its outstanding publishes will never be settled); tags start over. */
void hms_outq_rewind(hms_outq_t *q);
/* Drops every slot (after the PostgreSQL connection is lost: PostgreSQL will
 * send those changes again).  Tags of publishes still outstanding are
 * ignored from now on. */
void hms_outq_clear(hms_outq_t *q);
/* Removes confirmed slots from the head; returns how many. */
size_t hms_outq_pop_confirmed(hms_outq_t *q);

#endif
