/* tracker.c -- the LSN tracker: the slot position that guarantee 2 allows. */
#include "core/tracker.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Why this representation.
 *
 * The tracker sits on the hot path (one add and one confirm per event) and
 * must stay small however long the stream runs, so it keeps only what is in
 * flight:
 *
 * - Confirmations are a watermark plus a bitmap.  base_seq is the oldest
 *   sequence number that is neither confirmed nor forgotten; everything below
 *   it is settled and costs nothing.  Sequence numbers in [base_seq, next_seq)
 *   have one bit each in a power-of-two ring indexed by seq & (nbits - 1), set
 *   when the broker confirmed them out of order.  A confirm of base_seq slides
 *   the watermark over the run of set bits behind it, clearing them, so a
 *   confirmed prefix collapses to nothing: a million-event transaction
 *   confirmed as it goes occupies a few words, not a million entries.
 *   Invariant: every bit outside the window is clear, so a seq entering the
 *   window starts unconfirmed.
 *
 * - Committed transactions are a ring of {end_lsn, commit_time, end_seq},
 *   end_seq being the first sequence number after the transaction's events.
 *   Because sequence numbers follow stream order, a transaction is complete
 *   exactly when base_seq >= end_seq, and that also implies every older
 *   transaction is complete.  So the flush position is advanced by popping the
 *   head while it is complete; no per-transaction counters are needed, and a
 *   transaction with no events is complete as soon as it and everything before
 *   it are.  The open transaction is not in the ring: it has no end LSN yet.
 *
 * Both rings double when full and halve when at most a quarter used, so each
 * operation is O(1) amortized and memory follows the in-flight window, not
 * the history. */

#define HMS_TRACKER_MIN_BITS 256
#define HMS_TRACKER_MIN_TXS 16

typedef struct {
    uint64_t end_lsn;
    int64_t commit_time;
    uint64_t end_seq;
} hms_tracker_tx_t;

struct hms_tracker {
    uint64_t flush_lsn;
    int64_t flushed_commit_time;
    uint64_t flushed_tx_end; /* end LSN of the newest complete transaction */
    uint64_t newest_end;     /* greatest end LSN ever committed; kept by a reset */
    bool any_flushed_tx;
    bool in_tx;

    uint64_t next_seq; /* the number the next event gets */
    uint64_t base_seq; /* every seq below is confirmed or forgotten */
    size_t unconfirmed;
    uint64_t *bits; /* out-of-order confirmations, nbits bits */
    size_t nbits;   /* power of two, >= HMS_TRACKER_MIN_BITS */

    hms_tracker_tx_t *txs; /* committed, not yet complete; tx_cap slots */
    size_t tx_cap;         /* power of two, >= HMS_TRACKER_MIN_TXS */
    size_t tx_head;
    size_t tx_len;
};

static size_t bit_index(size_t nbits, uint64_t seq)
{
    return (size_t)(seq & (uint64_t)(nbits - 1));
}

static bool bit_get(const uint64_t *bits, size_t nbits, uint64_t seq)
{
    size_t i = bit_index(nbits, seq);
    return (bits[i / 64] >> (i % 64)) & 1u;
}

static void bit_set(uint64_t *bits, size_t nbits, uint64_t seq)
{
    size_t i = bit_index(nbits, seq);
    bits[i / 64] |= (uint64_t)1 << (i % 64);
}

/* Rebuilds the bitmap with nbits bits, keeping the window's bits.  On failure
 * the old bitmap stays valid. */
static hms_status_t bits_resize(hms_tracker_t *t, size_t nbits)
{
    uint64_t *nb = calloc(nbits / 64, sizeof(*nb));
    if (nb == NULL)
        return HMS_ERR_NOMEM;
    for (uint64_t s = t->base_seq; s < t->next_seq; s++) {
        if (bit_get(t->bits, t->nbits, s))
            bit_set(nb, nbits, s);
    }
    free(t->bits);
    t->bits = nb;
    t->nbits = nbits;
    return HMS_OK;
}

/* Rebuilds the transaction ring with cap slots, oldest first at slot 0. */
static hms_status_t txs_resize(hms_tracker_t *t, size_t cap)
{
    hms_tracker_tx_t *nt = malloc(cap * sizeof(*nt));
    if (nt == NULL)
        return HMS_ERR_NOMEM;
    for (size_t i = 0; i < t->tx_len; i++)
        nt[i] = t->txs[(t->tx_head + i) & (t->tx_cap - 1)];
    free(t->txs);
    t->txs = nt;
    t->tx_cap = cap;
    t->tx_head = 0;
    return HMS_OK;
}

/* Gives memory back after a burst.  Halving only at a quarter full keeps a
 * window that hovers around a boundary from resizing on every operation.  A
 * failed shrink is harmless: the larger ring still works. */
static void maybe_shrink(hms_tracker_t *t)
{
    size_t window = (size_t)(t->next_seq - t->base_seq);
    size_t nbits = t->nbits;
    while (nbits > HMS_TRACKER_MIN_BITS && window <= nbits / 4)
        nbits /= 2;
    if (nbits != t->nbits)
        (void)bits_resize(t, nbits);

    size_t cap = t->tx_cap;
    while (cap > HMS_TRACKER_MIN_TXS && t->tx_len <= cap / 4)
        cap /= 2;
    if (cap != t->tx_cap)
        (void)txs_resize(t, cap);
}

/* Slides base_seq over the run of confirmed bits behind it, a word at a
 * time, clearing them so the invariant (clear outside the window) holds. */
static void advance_watermark(hms_tracker_t *t)
{
    while (t->base_seq < t->next_seq) {
        size_t i = bit_index(t->nbits, t->base_seq);
        uint64_t *w = &t->bits[i / 64];
        unsigned off = (unsigned)(i % 64);
        uint64_t run = ~(*w >> off);
        unsigned n = run == 0 ? 64 - off : (unsigned)__builtin_ctzll(run);
        if (n > 64 - off)
            n = 64 - off;
        if (n == 0)
            return;
        assert((uint64_t)n <= t->next_seq - t->base_seq);
        uint64_t mask = n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1) << off;
        *w &= ~mask;
        t->base_seq += n;
    }
}

static void take_tx(hms_tracker_t *t, const hms_tracker_tx_t *tx)
{
    if (tx->end_lsn > t->flush_lsn)
        t->flush_lsn = tx->end_lsn;
    if (!t->any_flushed_tx || tx->end_lsn >= t->flushed_tx_end) {
        t->any_flushed_tx = true;
        t->flushed_tx_end = tx->end_lsn;
        t->flushed_commit_time = tx->commit_time;
    }
}

/* Pops every complete transaction at the head; see the comment at the top
 * for why base_seq >= end_seq is the whole test. */
static void pop_complete(hms_tracker_t *t)
{
    while (t->tx_len > 0) {
        const hms_tracker_tx_t *tx = &t->txs[t->tx_head];
        if (tx->end_seq > t->base_seq)
            return;
        take_tx(t, tx);
        t->tx_head = (t->tx_head + 1) & (t->tx_cap - 1);
        t->tx_len--;
    }
}

/* The caller owns the returned tracker and releases it with
 * hms_tracker_free(). */
hms_tracker_t *hms_tracker_new(uint64_t start_lsn)
{
    hms_tracker_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        goto fail;
    t->flush_lsn = start_lsn;
    t->next_seq = t->base_seq = 1; /* 0 is never a valid seq: easier to spot */
    t->nbits = HMS_TRACKER_MIN_BITS;
    t->bits = calloc(t->nbits / 64, sizeof(*t->bits));
    if (t->bits == NULL)
        goto fail;
    t->tx_cap = HMS_TRACKER_MIN_TXS;
    t->txs = malloc(t->tx_cap * sizeof(*t->txs));
    if (t->txs == NULL)
        goto fail;
    return t;
fail:
    hms_tracker_free(t);
    return NULL;
}

/* Releases t and everything it owns; NULL is allowed. */
void hms_tracker_free(hms_tracker_t *t)
{
    if (t == NULL)
        return;
    free(t->bits);
    free(t->txs);
    free(t);
}

/* Forgets what is in flight.  The window's bits are cleared before the
 * watermark jumps to next_seq, so late confirms of forgotten events fall
 * below it and are ignored. */
void hms_tracker_reset(hms_tracker_t *t, uint64_t start_lsn)
{
    memset(t->bits, 0, t->nbits / 8);
    t->base_seq = t->next_seq;
    t->unconfirmed = 0;
    t->tx_len = 0;
    t->tx_head = 0;
    t->in_tx = false;
    if (start_lsn > t->flush_lsn)
        t->flush_lsn = start_lsn;
    maybe_shrink(t);
}

hms_status_t hms_tracker_begin(hms_tracker_t *t)
{
    if (t->in_tx)
        return HMS_ERR_STATE;
    t->in_tx = true;
    return HMS_OK;
}

/* On HMS_ERR_NOMEM nothing changed and no seq was assigned. */
hms_status_t hms_tracker_add_event(hms_tracker_t *t, uint64_t *seq)
{
    if (!t->in_tx)
        return HMS_ERR_STATE;
    if (t->next_seq - t->base_seq >= t->nbits) {
        if (t->nbits > SIZE_MAX / 2)
            return HMS_ERR_NOMEM;
        hms_status_t st = bits_resize(t, t->nbits * 2);
        if (st != HMS_OK)
            return st;
    }
    *seq = t->next_seq++;
    t->unconfirmed++;
    return HMS_OK;
}

/* On HMS_ERR_NOMEM the transaction stays open and nothing changed. */
hms_status_t hms_tracker_commit(hms_tracker_t *t, uint64_t end_lsn, int64_t commit_time)
{
    if (!t->in_tx)
        return HMS_ERR_STATE;
    if (t->tx_len == t->tx_cap) {
        if (t->tx_cap > SIZE_MAX / 2 / sizeof(*t->txs))
            return HMS_ERR_NOMEM;
        hms_status_t st = txs_resize(t, t->tx_cap * 2);
        if (st != HMS_OK)
            return st;
    }
    hms_tracker_tx_t *tx = &t->txs[(t->tx_head + t->tx_len) & (t->tx_cap - 1)];
    tx->end_lsn = end_lsn;
    tx->commit_time = commit_time;
    if (end_lsn > t->newest_end)
        t->newest_end = end_lsn;
    tx->end_seq = t->next_seq;
    t->tx_len++;
    t->in_tx = false;
    pop_complete(t);
    return HMS_OK;
}

void hms_tracker_confirm(hms_tracker_t *t, uint64_t seq)
{
    if (seq < t->base_seq || seq >= t->next_seq || bit_get(t->bits, t->nbits, seq))
        return;
    bit_set(t->bits, t->nbits, seq);
    t->unconfirmed--;
    if (seq != t->base_seq)
        return;
    advance_watermark(t);
    pop_complete(t);
    maybe_shrink(t);
}

void hms_tracker_keepalive(hms_tracker_t *t, uint64_t wal_end)
{
    if (t->in_tx || t->base_seq != t->next_seq)
        return;
    assert(t->tx_len == 0); /* all events settled, so every commit was popped */
    if (wal_end > t->flush_lsn)
        t->flush_lsn = wal_end;
}

uint64_t hms_tracker_newest_end(const hms_tracker_t *t)
{
    return t->newest_end;
}

uint64_t hms_tracker_flush_lsn(const hms_tracker_t *t)
{
    return t->flush_lsn;
}

size_t hms_tracker_unconfirmed(const hms_tracker_t *t)
{
    return t->unconfirmed;
}

bool hms_tracker_in_tx(const hms_tracker_t *t)
{
    return t->in_tx;
}

int64_t hms_tracker_flushed_commit_time(const hms_tracker_t *t)
{
    return t->flushed_commit_time;
}

size_t hms_tracker_mem_bytes(const hms_tracker_t *t)
{
    return sizeof(*t) + t->nbits / 8 + t->tx_cap * sizeof(*t->txs);
}
