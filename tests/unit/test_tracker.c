/* test_tracker.c -- unit and randomized property tests of the LSN tracker
 * (guarantee 2: the flush position never passes an unconfirmed change). */
#include "core/tracker.h"

#include <check.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include "hms_check.h"

/* Adds n events to the open transaction, storing their seqs in seqs. */
static void add_n(hms_tracker_t *t, uint64_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (hms_tracker_add_event(t, &seqs[i]) != HMS_OK)
            ck_abort_msg("add_event %zu failed", i);
    }
}

START_TEST(test_empty)
{
    hms_tracker_t *t = hms_tracker_new(100);
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 100);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 0);
    ck_assert(!hms_tracker_in_tx(t));
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 0);
    hms_tracker_confirm(t, 0);
    hms_tracker_confirm(t, 1);
    hms_tracker_confirm(t, UINT64_MAX);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 0);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 100);
    hms_tracker_free(t);
    hms_tracker_free(NULL);
}
END_TEST

START_TEST(test_one_tx)
{
    hms_tracker_t *t = hms_tracker_new(100);
    uint64_t s[2];
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    ck_assert(hms_tracker_in_tx(t));
    add_n(t, s, 2);
    ck_assert_uint_lt(s[0], s[1]);
    ck_assert_int_eq(hms_tracker_commit(t, 1000, 77), HMS_OK);
    ck_assert(!hms_tracker_in_tx(t));
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 2);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 100);
    hms_tracker_confirm(t, s[0]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 100);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 1);
    hms_tracker_confirm(t, s[1]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 1000);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 77);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 0);
    hms_tracker_free(t);
}
END_TEST

START_TEST(test_out_of_order)
{
    hms_tracker_t *t = hms_tracker_new(0);
    uint64_t s[3][2];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
        add_n(t, s[i], 2);
        ck_assert_int_eq(hms_tracker_commit(t, 1000 * (uint64_t)(i + 1), i + 1), HMS_OK);
    }
    /* The two newer transactions complete first: nothing may move. */
    hms_tracker_confirm(t, s[2][1]);
    hms_tracker_confirm(t, s[1][0]);
    hms_tracker_confirm(t, s[2][0]);
    hms_tracker_confirm(t, s[1][1]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 0);
    /* Half of the oldest still holds everything back. */
    hms_tracker_confirm(t, s[0][1]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 0);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 1);
    hms_tracker_confirm(t, s[0][0]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 3000);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 3);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 0);
    hms_tracker_free(t);
}
END_TEST

START_TEST(test_partial_prefix)
{
    hms_tracker_t *t = hms_tracker_new(0);
    uint64_t s[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
        add_n(t, &s[i], 1);
        ck_assert_int_eq(hms_tracker_commit(t, 10 * (uint64_t)(i + 1), 100 + i), HMS_OK);
    }
    hms_tracker_confirm(t, s[0]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 10);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 100);
    hms_tracker_confirm(t, s[2]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 10);
    hms_tracker_confirm(t, s[1]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 30);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 102);
    hms_tracker_free(t);
}
END_TEST

START_TEST(test_zero_event_tx)
{
    hms_tracker_t *t = hms_tracker_new(0);
    uint64_t s;
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    ck_assert_int_eq(hms_tracker_commit(t, 500, 5), HMS_OK);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 500);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 5);

    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    add_n(t, &s, 1);
    ck_assert_int_eq(hms_tracker_commit(t, 600, 6), HMS_OK);
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    ck_assert_int_eq(hms_tracker_commit(t, 700, 7), HMS_OK);
    /* The empty transaction waits for the older one. */
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 500);
    hms_tracker_confirm(t, s);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 700);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 7);
    hms_tracker_free(t);
}
END_TEST

START_TEST(test_keepalive)
{
    hms_tracker_t *t = hms_tracker_new(100);
    uint64_t s;
    hms_tracker_keepalive(t, 200);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 200);
    hms_tracker_keepalive(t, 150);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 200);

    /* Open transaction, even without events: ignored. */
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    hms_tracker_keepalive(t, 300);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 200);
    add_n(t, &s, 1);
    hms_tracker_keepalive(t, 300);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 200);
    ck_assert_int_eq(hms_tracker_commit(t, 400, 4), HMS_OK);
    /* Committed but unconfirmed: ignored. */
    hms_tracker_keepalive(t, 500);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 200);
    hms_tracker_confirm(t, s);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 400);
    hms_tracker_keepalive(t, 500);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 500);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 4);

    /* An event confirmed in an open transaction still blocks it. */
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    add_n(t, &s, 1);
    hms_tracker_confirm(t, s);
    hms_tracker_keepalive(t, 600);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 500);
    ck_assert_int_eq(hms_tracker_commit(t, 650, 6), HMS_OK);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 650);
    hms_tracker_keepalive(t, 640);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 650);
    hms_tracker_free(t);
}
END_TEST

START_TEST(test_reset)
{
    hms_tracker_t *t = hms_tracker_new(100);
    uint64_t old[3], s;
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    add_n(t, old, 2);
    ck_assert_int_eq(hms_tracker_commit(t, 300, 3), HMS_OK);
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    add_n(t, &old[2], 1);

    hms_tracker_reset(t, 50);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 100);
    /* The newest commit handed out is remembered though nothing confirmed
     * it and the reset forgot it: a fence must pass it. */
    ck_assert_uint_eq(hms_tracker_newest_end(t), 300);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 0);
    ck_assert(!hms_tracker_in_tx(t));
    ck_assert_int_eq(hms_tracker_commit(t, 300, 3), HMS_ERR_STATE);

    /* Late confirms of forgotten events change nothing. */
    for (int i = 0; i < 3; i++)
        hms_tracker_confirm(t, old[i]);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 0);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 100);

    /* The resent transaction gets fresh numbers. */
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    add_n(t, &s, 1);
    ck_assert_uint_gt(s, old[2]);
    hms_tracker_confirm(t, old[0]);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 1);
    ck_assert_int_eq(hms_tracker_commit(t, 300, 3), HMS_OK);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 100);
    hms_tracker_confirm(t, s);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 300);

    hms_tracker_reset(t, 1000);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 1000);
    ck_assert_uint_eq(hms_tracker_newest_end(t), 300);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 3);
    hms_tracker_keepalive(t, 1100);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 1100);
    hms_tracker_free(t);
}
END_TEST

START_TEST(test_state_errors)
{
    hms_tracker_t *t = hms_tracker_new(0);
    uint64_t s = 12345;
    ck_assert_int_eq(hms_tracker_add_event(t, &s), HMS_ERR_STATE);
    ck_assert_uint_eq(s, 12345);
    ck_assert_int_eq(hms_tracker_commit(t, 10, 1), HMS_ERR_STATE);
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    ck_assert_int_eq(hms_tracker_begin(t), HMS_ERR_STATE);
    ck_assert(hms_tracker_in_tx(t));
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 0);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 0);
    hms_tracker_free(t);
}
END_TEST

START_TEST(test_duplicate_unknown_confirms)
{
    hms_tracker_t *t = hms_tracker_new(0);
    uint64_t s[3];
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    add_n(t, s, 3);
    hms_tracker_confirm(t, s[1]);
    hms_tracker_confirm(t, s[1]);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 2);
    hms_tracker_confirm(t, s[2] + 1); /* not issued yet */
    hms_tracker_confirm(t, s[2] + 1000);
    hms_tracker_confirm(t, 0);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 2);
    ck_assert_int_eq(hms_tracker_commit(t, 10, 1), HMS_OK);
    hms_tracker_confirm(t, s[0]);
    hms_tracker_confirm(t, s[0]);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 1);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 0);
    hms_tracker_confirm(t, s[2]);
    hms_tracker_confirm(t, s[2]);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 0);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 10);
    hms_tracker_free(t);
}
END_TEST

START_TEST(test_flush_never_decreases)
{
    hms_tracker_t *t = hms_tracker_new(1000);
    uint64_t s;
    /* A transaction resent from below the flush position completes. */
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    add_n(t, &s, 1);
    ck_assert_int_eq(hms_tracker_commit(t, 900, 9), HMS_OK);
    hms_tracker_confirm(t, s);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 1000);
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    ck_assert_int_eq(hms_tracker_commit(t, 2000, 20), HMS_OK);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 2000);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 20);
    /* An older transaction completing later keeps the newer commit time. */
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    ck_assert_int_eq(hms_tracker_commit(t, 1500, 15), HMS_OK);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 2000);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), 20);
    hms_tracker_keepalive(t, 10);
    hms_tracker_reset(t, 10);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 2000);
    hms_tracker_free(t);
}
END_TEST

/* A million-event transaction confirmed as it goes (with a little lag) must
 * stay at the tracker's minimum size; a burst must be given back. */
START_TEST(test_million_rolling)
{
    hms_tracker_t *t = hms_tracker_new(0);
    size_t base = hms_tracker_mem_bytes(t);
    enum { LAG = 100, N = 1000000 };
    uint64_t ring[LAG];
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    for (size_t i = 0; i < N; i++) {
        if (i >= LAG)
            hms_tracker_confirm(t, ring[i % LAG]);
        /* Plain ifs: Check's asserts cost a syscall each in fork mode. */
        if (hms_tracker_add_event(t, &ring[i % LAG]) != HMS_OK)
            ck_abort_msg("add_event failed at event %zu", i);
        if (hms_tracker_mem_bytes(t) > base)
            ck_abort_msg("memory grew to %zu at event %zu", hms_tracker_mem_bytes(t), i);
    }
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), LAG);
    ck_assert_int_eq(hms_tracker_commit(t, 123456, 1), HMS_OK);
    for (size_t i = 0; i < LAG; i++)
        hms_tracker_confirm(t, ring[i]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 123456);
    ck_assert_uint_eq(hms_tracker_mem_bytes(t), base);
    hms_tracker_free(t);
}
END_TEST

START_TEST(test_burst_shrinks)
{
    hms_tracker_t *t = hms_tracker_new(0);
    size_t base = hms_tracker_mem_bytes(t);
    enum { N = 100000 };
    uint64_t *s = malloc(N * sizeof(*s));
    ck_assert_ptr_nonnull(s);
    /* One event per transaction, nothing confirmed: both rings grow. */
    for (size_t i = 0; i < N; i++) {
        if (hms_tracker_begin(t) != HMS_OK || hms_tracker_add_event(t, &s[i]) != HMS_OK ||
            hms_tracker_commit(t, 10 * (uint64_t)(i + 1), (int64_t)i) != HMS_OK)
            ck_abort_msg("transaction %zu failed", i);
    }
    ck_assert_uint_gt(hms_tracker_mem_bytes(t), base);
    /* Newest first: nothing moves until the oldest is confirmed. */
    for (size_t i = N; i-- > 1;)
        hms_tracker_confirm(t, s[i]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 0);
    ck_assert_uint_eq(hms_tracker_unconfirmed(t), 1);
    hms_tracker_confirm(t, s[0]);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 10 * (uint64_t)N);
    ck_assert_int_eq(hms_tracker_flushed_commit_time(t), N - 1);
    ck_assert_uint_eq(hms_tracker_mem_bytes(t), base);
    free(s);
    hms_tracker_free(t);
}
END_TEST

/* ---- Randomized property test against a reference model ----------------
 *
 * Three actors are simulated.  The server streams transactions (begin, adds,
 * commit, keepalives) and, after a reset, replays its history from the slot's
 * position as PostgreSQL does.  The broker acks single events, acks "multiple"
 * up to a seq, nacks or returns events (which stay unconfirmed until a later
 * retry succeeds), and sends duplicate or unknown confirms.  The reference
 * model is the tracker's specification written plainly over arrays.
 *
 * After every operation: the tracker equals the reference exactly, its flush
 * position never decreases, and it never reaches the end LSN of a
 * transaction some of whose changes the broker has never confirmed in any
 * incarnation (the real guarantee 2, checked against the server's truth). */

#define P_MAX_OPS 1500
#define P_MAX_EVENTS 64

typedef struct {
    uint64_t s;
} prng_t;

static uint64_t prng_next(prng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static uint64_t prng_below(prng_t *r, uint64_t n)
{
    return prng_next(r) % n;
}

typedef struct {
    uint64_t end_lsn;
    size_t n_events;
    size_t ev_first;    /* index into the delivered flags */
    size_t undelivered; /* events the broker never confirmed */
} p_hist_t;

enum { PUB_WAIT, PUB_RETRY, PUB_ACKED };

typedef struct {
    uint64_t seq;
    size_t hist, hist_ev;
    int state;
} p_pub_t;

typedef struct {
    uint64_t seq;
    bool confirmed;
} p_ref_ev_t;

typedef struct {
    uint64_t end_lsn;
    int64_t commit_time;
    size_t ev_first, ev_end;
    bool committed;
} p_ref_tx_t;

typedef struct {
    uint64_t seed;
    int op;
    prng_t rng;
    hms_tracker_t *t;

    /* server */
    p_hist_t hist[P_MAX_OPS];
    bool delivered[P_MAX_OPS];
    size_t hist_len, n_hist_ev;
    size_t cursor;  /* next history entry to replay */
    bool srv_in_tx; /* streaming hist[srv_cur] */
    size_t srv_cur, srv_sent;
    uint64_t pos;      /* server's decoding position; rewinds on reset */
    uint64_t tip;      /* highest WAL position ever seen; never rewinds */
    uint64_t slot_lsn; /* last flush position reported to the server */
    size_t first_undelivered;

    /* broker */
    p_pub_t pubs[P_MAX_OPS];
    size_t n_pubs;
    size_t wait[P_MAX_OPS], n_wait;
    size_t retry[P_MAX_OPS], n_retry;
    uint64_t max_seq;

    /* reference model */
    p_ref_ev_t rev[P_MAX_OPS];
    size_t n_rev, r_unconfirmed;
    p_ref_tx_t rtx[P_MAX_OPS];
    size_t n_rtx, r_done;
    bool r_in_tx, r_any;
    uint64_t r_flush, r_max_end;
    int64_t r_ct;

    uint64_t last_flush;
} p_sim_t;

/* A crash (assert in the tracker, sanitizer report) cannot go through
 * PCHECK, so the seed of the running case is kept here for the handlers. */
static volatile uint64_t p_running_seed;

#define PCHECK(sim, cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            char m_[256];                                                                          \
            snprintf(m_, sizeof(m_), __VA_ARGS__);                                                 \
            ck_abort_msg("seed %" PRIu64 " (HMS_TRACKER_SEED=%" PRIu64 ") op %d: %s", (sim)->seed, \
                         (sim)->seed, (sim)->op, m_);                                              \
        }                                                                                          \
    } while (0)

static void ref_update(p_sim_t *m)
{
    while (m->r_done < m->n_rtx) {
        p_ref_tx_t *tx = &m->rtx[m->r_done];
        if (!tx->committed)
            return;
        for (size_t i = tx->ev_first; i < tx->ev_end; i++) {
            if (!m->rev[i].confirmed)
                return;
        }
        if (tx->end_lsn > m->r_flush)
            m->r_flush = tx->end_lsn;
        if (!m->r_any || tx->end_lsn >= m->r_max_end) {
            m->r_any = true;
            m->r_max_end = tx->end_lsn;
            m->r_ct = tx->commit_time;
        }
        m->r_done++;
    }
}

static void ref_confirm(p_sim_t *m, uint64_t seq)
{
    /* Live events are in seq order: binary search keeps the model cheap. */
    size_t lo = 0, hi = m->n_rev;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->rev[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->n_rev && m->rev[lo].seq == seq && !m->rev[lo].confirmed) {
        m->rev[lo].confirmed = true;
        m->r_unconfirmed--;
    }
    ref_update(m);
}

static void list_remove(size_t *list, size_t *n, size_t at)
{
    list[at] = list[--*n];
}

/* The broker finally confirmed pubs[p]: the truth and the tracker learn. */
static void deliver(p_sim_t *m, size_t p)
{
    p_pub_t *pub = &m->pubs[p];
    pub->state = PUB_ACKED;
    if (!m->delivered[pub->hist_ev]) {
        m->delivered[pub->hist_ev] = true;
        m->hist[pub->hist].undelivered--;
    }
    hms_tracker_confirm(m->t, pub->seq);
    ref_confirm(m, pub->seq);
}

static void srv_step(p_sim_t *m)
{
    if (!m->srv_in_tx) {
        if (m->cursor < m->hist_len) {
            m->srv_cur = m->cursor++;
        } else {
            if (m->hist_len == P_MAX_OPS)
                return;
            p_hist_t *e = &m->hist[m->hist_len];
            uint64_t k = prng_below(&m->rng, 100);
            e->n_events = k < 20   ? 0
                          : k < 80 ? 1 + prng_below(&m->rng, 3)
                          : k < 95 ? 4 + prng_below(&m->rng, 9)
                                   : 20 + prng_below(&m->rng, P_MAX_EVENTS - 20);
            if (m->n_hist_ev + e->n_events > P_MAX_OPS)
                e->n_events = 0;
            e->end_lsn = m->tip + 1 + prng_below(&m->rng, 100);
            e->ev_first = m->n_hist_ev;
            e->undelivered = e->n_events;
            m->n_hist_ev += e->n_events;
            m->srv_cur = m->hist_len++;
            m->cursor = m->hist_len;
        }
        m->srv_in_tx = true;
        m->srv_sent = 0;
        PCHECK(m, hms_tracker_begin(m->t) == HMS_OK, "begin failed");
        p_ref_tx_t *rt = &m->rtx[m->n_rtx++];
        rt->end_lsn = 0;
        rt->ev_first = rt->ev_end = m->n_rev;
        rt->committed = false;
        m->r_in_tx = true;
        return;
    }
    p_hist_t *e = &m->hist[m->srv_cur];
    p_ref_tx_t *rt = &m->rtx[m->n_rtx - 1];
    if (m->srv_sent < e->n_events) {
        if (m->n_pubs == P_MAX_OPS)
            return;
        uint64_t seq;
        PCHECK(m, hms_tracker_add_event(m->t, &seq) == HMS_OK, "add failed");
        PCHECK(m, seq > m->max_seq, "seq %" PRIu64 " not increasing", seq);
        m->max_seq = seq;
        p_pub_t *pub = &m->pubs[m->n_pubs];
        pub->seq = seq;
        pub->hist = m->srv_cur;
        pub->hist_ev = e->ev_first + m->srv_sent++;
        pub->state = PUB_WAIT;
        m->wait[m->n_wait++] = m->n_pubs++;
        m->rev[m->n_rev].seq = seq;
        m->rev[m->n_rev++].confirmed = false;
        m->r_unconfirmed++;
        rt->ev_end = m->n_rev;
        return;
    }
    int64_t ct = (int64_t)e->end_lsn * 10;
    PCHECK(m, hms_tracker_commit(m->t, e->end_lsn, ct) == HMS_OK, "commit failed");
    m->srv_in_tx = false;
    if (e->end_lsn > m->pos)
        m->pos = e->end_lsn;
    if (e->end_lsn > m->tip)
        m->tip = e->end_lsn;
    rt->end_lsn = e->end_lsn;
    rt->commit_time = ct;
    rt->committed = true;
    m->r_in_tx = false;
    ref_update(m);
}

static void srv_keepalive(p_sim_t *m)
{
    uint64_t wal_end;
    bool replaying = m->cursor < m->hist_len;
    uint64_t k = prng_below(&m->rng, 10);
    if (k == 0) {
        wal_end = m->pos > 0 ? prng_below(&m->rng, m->pos) : 0; /* stale */
    } else if (m->srv_in_tx) {
        /* The walsender has read the commit before it sends the tx. */
        wal_end = m->hist[m->srv_cur].end_lsn + (replaying ? 0 : prng_below(&m->rng, 20));
    } else {
        wal_end = replaying ? m->pos : m->tip + prng_below(&m->rng, 20);
    }
    if (!replaying && wal_end > m->pos)
        m->pos = wal_end;
    if (!replaying && wal_end > m->tip)
        m->tip = wal_end;
    hms_tracker_keepalive(m->t, wal_end);
    if (!m->r_in_tx && m->r_unconfirmed == 0 && wal_end > m->r_flush)
        m->r_flush = wal_end;
}

static void srv_reset(p_sim_t *m)
{
    /* A reconnect: PostgreSQL resends every transaction after the slot. */
    uint64_t start = m->slot_lsn;
    hms_tracker_reset(m->t, start);
    m->srv_in_tx = false;
    m->cursor = 0;
    while (m->cursor < m->hist_len && m->hist[m->cursor].end_lsn <= start)
        m->cursor++;
    m->pos = start;
    /* Broker answers for the old connection's events may still arrive;
     * they stay in the broker lists on purpose. */
    m->n_rev = m->n_rtx = m->r_done = m->r_unconfirmed = 0;
    m->r_in_tx = false;
    if (start > m->r_flush)
        m->r_flush = start;
}

static void broker_ack_one(p_sim_t *m)
{
    if (m->n_wait == 0)
        return;
    size_t at = (size_t)prng_below(&m->rng, m->n_wait);
    size_t p = m->wait[at];
    list_remove(m->wait, &m->n_wait, at);
    deliver(m, p);
}

static void broker_ack_multiple(p_sim_t *m)
{
    if (m->n_wait == 0)
        return;
    uint64_t upto = m->pubs[m->wait[prng_below(&m->rng, m->n_wait)]].seq;
    for (size_t i = 0; i < m->n_wait;) {
        size_t p = m->wait[i];
        if (m->pubs[p].seq <= upto) {
            list_remove(m->wait, &m->n_wait, i);
            deliver(m, p);
        } else {
            i++;
        }
    }
}

static void broker_nack(p_sim_t *m)
{
    if (m->n_wait == 0)
        return;
    size_t at = (size_t)prng_below(&m->rng, m->n_wait);
    size_t p = m->wait[at];
    list_remove(m->wait, &m->n_wait, at);
    m->pubs[p].state = PUB_RETRY;
    m->retry[m->n_retry++] = p;
}

static void broker_retry_ok(p_sim_t *m)
{
    if (m->n_retry == 0)
        return;
    size_t at = (size_t)prng_below(&m->rng, m->n_retry);
    size_t p = m->retry[at];
    list_remove(m->retry, &m->n_retry, at);
    deliver(m, p);
}

static void broker_noise(p_sim_t *m)
{
    /* A repeated confirm of an acked event, or a seq never issued. */
    uint64_t seq = prng_below(&m->rng, m->max_seq + 5);
    if (m->n_pubs > 0 && prng_below(&m->rng, 2) == 0) {
        const p_pub_t *pub = &m->pubs[prng_below(&m->rng, m->n_pubs)];
        if (pub->state != PUB_ACKED)
            return;
        seq = pub->seq;
    } else {
        for (size_t i = 0; i < m->n_pubs; i++) {
            if (m->pubs[i].seq == seq && m->pubs[i].state != PUB_ACKED)
                return;
        }
    }
    hms_tracker_confirm(m->t, seq);
    ref_confirm(m, seq);
}

static void misuse(p_sim_t *m)
{
    uint64_t seq;
    if (m->r_in_tx) {
        PCHECK(m, hms_tracker_begin(m->t) == HMS_ERR_STATE, "nested begin accepted");
    } else {
        PCHECK(m, hms_tracker_add_event(m->t, &seq) == HMS_ERR_STATE, "add outside tx accepted");
        PCHECK(m, hms_tracker_commit(m->t, 1, 1) == HMS_ERR_STATE, "commit outside tx accepted");
    }
}

static void check_state(p_sim_t *m)
{
    hms_tracker_t *t = m->t;
    uint64_t f = hms_tracker_flush_lsn(t);
    PCHECK(m, f == m->r_flush, "flush %" PRIu64 " != reference %" PRIu64, f, m->r_flush);
    PCHECK(m, f >= m->last_flush, "flush went back %" PRIu64 " -> %" PRIu64, m->last_flush, f);
    m->last_flush = f;
    PCHECK(m, hms_tracker_unconfirmed(t) == m->r_unconfirmed, "unconfirmed %zu != %zu",
           hms_tracker_unconfirmed(t), m->r_unconfirmed);
    PCHECK(m, hms_tracker_in_tx(t) == m->r_in_tx, "in_tx mismatch");
    PCHECK(m, hms_tracker_flushed_commit_time(t) == m->r_ct, "commit time %" PRId64 " != %" PRId64,
           hms_tracker_flushed_commit_time(t), m->r_ct);
    while (m->first_undelivered < m->hist_len && m->hist[m->first_undelivered].undelivered == 0)
        m->first_undelivered++;
    if (m->first_undelivered < m->hist_len) {
        uint64_t limit = m->hist[m->first_undelivered].end_lsn;
        PCHECK(m, f < limit, "flush %" PRIu64 " passes undelivered tx ending %" PRIu64, f, limit);
    }
}

static void run_one(p_sim_t *m, uint64_t seed)
{
    memset(m, 0, sizeof(*m));
    p_running_seed = seed;
    m->seed = seed;
    m->rng.s = seed;
    m->pos = m->tip = m->slot_lsn = m->r_flush = m->last_flush = prng_below(&m->rng, 1000);
    m->t = hms_tracker_new(m->pos);
    ck_assert_ptr_nonnull(m->t);
    /* A quarter of the runs have a slow broker, so hundreds of events are in
     * flight and the tracker's rings grow, wrap and shrink again. */
    bool laggy = prng_below(&m->rng, 4) == 0;
    int n_ops = laggy ? 600 + (int)prng_below(&m->rng, P_MAX_OPS - 600)
                      : 200 + (int)prng_below(&m->rng, 400);
    for (m->op = 0; m->op < n_ops; m->op++) {
        uint64_t k = prng_below(&m->rng, 1000);
        if (laggy && k >= 440 && k < 880 && prng_below(&m->rng, 8) != 0)
            k = 380; /* most broker answers are late: stream instead */
        if (laggy && k >= 975 && k < 990 && prng_below(&m->rng, 10) != 0)
            k = 380; /* and reconnects are rarer, so the window gets wide */
        if (k < 380)
            srv_step(m);
        else if (k < 440)
            srv_keepalive(m);
        else if (k < 640)
            broker_ack_one(m);
        else if (k < 690)
            broker_ack_multiple(m);
        else if (k < 780)
            broker_nack(m);
        else if (k < 880)
            broker_retry_ok(m);
        else if (k < 930)
            broker_noise(m);
        else if (k < 975)
            m->slot_lsn = hms_tracker_flush_lsn(m->t); /* standby status update */
        else if (k < 990)
            srv_reset(m);
        else
            misuse(m);
        check_state(m);
    }
    /* The broker catches up, in random order. */
    while (m->n_wait + m->n_retry > 0) {
        if (prng_below(&m->rng, m->n_wait + m->n_retry) < m->n_wait)
            broker_ack_one(m);
        else
            broker_retry_ok(m);
        check_state(m);
        m->op++;
    }
    hms_tracker_free(m->t);
}

static void p_print_seed(void)
{
    char buf[64] = "\nproperty test died; rerun with HMS_TRACKER_SEED=";
    size_t n = strlen(buf);
    char digits[24];
    size_t d = 0;
    uint64_t v = p_running_seed;
    do {
        digits[d++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && d < sizeof(digits));
    while (d > 0 && n < sizeof(buf) - 2)
        buf[n++] = digits[--d];
    buf[n++] = '\n';
    (void)!write(STDERR_FILENO, buf, n);
}

static void p_on_signal(int sig)
{
    p_print_seed();
    signal(sig, SIG_DFL);
    raise(sig);
}

START_TEST(test_property_random)
{
    signal(SIGABRT, p_on_signal);
    signal(SIGSEGV, p_on_signal);
    signal(SIGBUS, p_on_signal);
    signal(SIGFPE, p_on_signal);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(p_print_seed);
#endif
    p_sim_t *m = malloc(sizeof(*m));
    ck_assert_ptr_nonnull(m);
    const char *one = getenv("HMS_TRACKER_SEED");
    if (one != NULL) {
        run_one(m, strtoull(one, NULL, 0));
    } else {
        const uint64_t base = 0x5EED0000u;
        for (uint64_t i = 0; i < 4000; i++)
            run_one(m, base + i);
    }
    free(m);
}
END_TEST

static Suite *tracker_suite(void)
{
    Suite *s = suite_create("tracker");
    TCase *tc = tcase_create("unit");
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_one_tx);
    tcase_add_test(tc, test_out_of_order);
    tcase_add_test(tc, test_partial_prefix);
    tcase_add_test(tc, test_zero_event_tx);
    tcase_add_test(tc, test_keepalive);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_state_errors);
    tcase_add_test(tc, test_duplicate_unknown_confirms);
    tcase_add_test(tc, test_flush_never_decreases);
    tcase_add_test(tc, test_million_rolling);
    tcase_add_test(tc, test_burst_shrinks);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("property");
    tcase_set_timeout(tp, 60);
    tcase_add_test(tp, test_property_random);
    suite_add_tcase(s, tp);
    return s;
}

HMS_CHECK_MAIN(tracker_suite)
