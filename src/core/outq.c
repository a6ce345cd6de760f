/* outq.c -- the outbound event ring with go-back-N on refusal. */
#include "core/outq.h"

#include <assert.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

struct hms_outq {
    hms_outq_slot_t *slots;
    size_t cap;
    uint64_t head; /* oldest slot */
    uint64_t pub;  /* next slot to publish */
    uint64_t tail; /* next free slot */
    /* Lowest position that may still be outstanding: everything in
     * [head, floor) is settled.  Keeps multiple-acks amortized O(1). */
    uint64_t floor;
    /* Tag epoch: position epoch_pos was published with tag epoch_tag and
     * every later publish of this epoch got the next tag. */
    bool epoch_valid;
    uint64_t epoch_pos;
    uint64_t epoch_tag;
    size_t outstanding;
    bool refused;
};

static hms_outq_slot_t *at(const hms_outq_t *q, uint64_t pos)
{
    return &q->slots[pos % q->cap];
}

hms_outq_t *hms_outq_new(size_t capacity)
{
    if (capacity == 0)
        return NULL;
    hms_outq_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->slots = calloc(capacity, sizeof(*q->slots));
    if (q->slots == NULL) {
        free(q);
        return NULL;
    }
    q->cap = capacity;
    return q;
}

void hms_outq_free(hms_outq_t *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->cap; i++)
        hms_event_free(&q->slots[i].ev);
    free(q->slots);
    free(q);
}

hms_outq_slot_t *hms_outq_reserve(hms_outq_t *q)
{
    if (hms_outq_full(q))
        return NULL;
    hms_outq_slot_t *s = at(q, q->tail);
    /* The encoder resets the buffers it writes; only a rejection writes
     * reason, so a recycled slot must not carry one into its next event. */
    hms_buf_reset(&s->ev.reason);
    return s;
}

void hms_outq_push(hms_outq_t *q, uint64_t seq)
{
    assert(!hms_outq_full(q));
    hms_outq_slot_t *s = at(q, q->tail);
    s->seq = seq;
    s->tag = 0;
    s->state = HMS_SLOT_PENDING;
    q->tail++;
}

size_t hms_outq_len(const hms_outq_t *q)
{
    return (size_t)(q->tail - q->head);
}

size_t hms_outq_outstanding(const hms_outq_t *q)
{
    return q->outstanding;
}

bool hms_outq_full(const hms_outq_t *q)
{
    return q->tail - q->head >= q->cap;
}

size_t hms_outq_room(const hms_outq_t *q)
{
    return hms_outq_full(q) ? 0 : q->cap - (size_t)(q->tail - q->head);
}

hms_outq_slot_t *hms_outq_next(hms_outq_t *q)
{
    if (q->refused || q->pub >= q->tail)
        return NULL;
    return at(q, q->pub);
}

void hms_outq_sent(hms_outq_t *q, uint64_t tag)
{
    assert(q->pub < q->tail);
    if (!q->epoch_valid) {
        q->epoch_valid = true;
        q->epoch_pos = q->pub;
        q->epoch_tag = tag;
    }
    /* Publishes of one epoch are consecutive in position and in tag. */
    assert(tag == q->epoch_tag + (q->pub - q->epoch_pos));
    hms_outq_slot_t *s = at(q, q->pub);
    s->tag = tag;
    s->state = HMS_SLOT_SENT;
    q->outstanding++;
    q->pub++;
}

/* The position a tag of the current epoch was published at, or false for a
 * tag that is stale (an earlier epoch) or not yet used. */
static bool tag_pos(const hms_outq_t *q, uint64_t tag, uint64_t *pos)
{
    if (!q->epoch_valid || tag < q->epoch_tag)
        return false;
    uint64_t p = q->epoch_pos + (tag - q->epoch_tag);
    if (p >= q->pub || p < q->head)
        return false;
    *pos = p;
    return true;
}

static void advance_floor(hms_outq_t *q)
{
    if (q->floor < q->head)
        q->floor = q->head;
    while (q->floor < q->pub) {
        hms_slot_state_t st = at(q, q->floor)->state;
        if (st == HMS_SLOT_SENT || st == HMS_SLOT_RETURNED)
            break;
        q->floor++;
    }
}

/* Settles one slot; returns true when it became confirmed. */
static bool settle(hms_outq_t *q, hms_outq_slot_t *s, bool ack)
{
    if (s->state != HMS_SLOT_SENT && s->state != HMS_SLOT_RETURNED)
        return false;
    q->outstanding--;
    if (ack && s->state == HMS_SLOT_SENT) {
        s->state = HMS_SLOT_CONFIRMED;
        return true;
    }
    s->state = HMS_SLOT_REFUSED;
    q->refused = true;
    return false;
}

static size_t settle_upto(hms_outq_t *q, uint64_t tag, bool multiple, bool ack, uint64_t *confirmed,
                          size_t max)
{
    uint64_t pos;
    size_t n = 0;
    if (!tag_pos(q, tag, &pos))
        return 0;
    advance_floor(q);
    uint64_t from = multiple ? q->floor : pos;
    if (from < q->epoch_pos)
        from = q->epoch_pos;
    for (uint64_t p = from; p <= pos; p++) {
        hms_outq_slot_t *s = at(q, p);
        if (settle(q, s, ack) && confirmed != NULL && n < max)
            confirmed[n++] = s->seq;
    }
    advance_floor(q);
    return n;
}

size_t hms_outq_ack(hms_outq_t *q, uint64_t tag, bool multiple, uint64_t *confirmed, size_t max)
{
    return settle_upto(q, tag, multiple, true, confirmed, max);
}

void hms_outq_nack(hms_outq_t *q, uint64_t tag, bool multiple)
{
    settle_upto(q, tag, multiple, false, NULL, 0);
}

bool hms_outq_returned(hms_outq_t *q, const char *message_id)
{
    advance_floor(q);
    for (uint64_t p = q->floor; p < q->pub; p++) {
        hms_outq_slot_t *s = at(q, p);
        if (s->state == HMS_SLOT_SENT && strcmp(s->ev.id, message_id) == 0) {
            s->state = HMS_SLOT_RETURNED;
            return true;
        }
    }
    return false;
}

bool hms_outq_returned_to_queue(hms_outq_t *q, const char *message_id, char *queue, size_t len)
{
    advance_floor(q);
    for (uint64_t p = q->floor; p < q->pub; p++) {
        hms_outq_slot_t *s = at(q, p);
        if (s->state == HMS_SLOT_SENT && s->ev.queue.len > 0 && strcmp(s->ev.id, message_id) == 0) {
            snprintf(queue, len, "%.*s", (int)s->ev.queue.len, s->ev.queue.data);
            return true;
        }
    }
    return false;
}

bool hms_outq_refused(const hms_outq_t *q)
{
    return q->refused;
}

bool hms_outq_rewind_ready(const hms_outq_t *q)
{
    return q->refused && q->outstanding == 0;
}

void hms_outq_rewind(hms_outq_t *q)
{
    uint64_t p = q->head;
    while (p < q->pub && at(q, p)->state == HMS_SLOT_CONFIRMED)
        p++;
    for (uint64_t i = p; i < q->pub; i++)
        at(q, i)->state = HMS_SLOT_PENDING;
    q->pub = p;
    q->floor = p;
    q->outstanding = 0;
    q->refused = false;
    q->epoch_valid = false;
}

void hms_outq_clear(hms_outq_t *q)
{
    q->head = q->pub = q->floor = q->tail;
    q->outstanding = 0;
    q->refused = false;
    /* Acks still in flight for dropped slots must not match new publishes:
     * the next epoch starts at a higher tag, and until it starts every tag
     * is ignored. */
    q->epoch_valid = false;
}

size_t hms_outq_pop_confirmed(hms_outq_t *q)
{
    size_t n = 0;
    while (q->head < q->pub && at(q, q->head)->state == HMS_SLOT_CONFIRMED) {
        q->head++;
        n++;
    }
    if (q->floor < q->head)
        q->floor = q->head;
    return n;
}
