/* test_outq.c -- unit and randomized model tests of the outbound event ring
 * (go-back-N on refusal, delivery-tag epochs, slot reuse). */
#include "core/outq.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hms_check.h"

/* ---- helpers ------------------------------------------------------------- */

/* For hot loops: Check's ck_assert records its location through the forked
 * runner's pipe on every call, which would dominate the run time. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                                  \
    } while (0)

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* Encodes a stand-in event into the reserved tail slot and queues it, the
 * way the loop's on_change does. */
static hms_outq_slot_t *push_id(hms_outq_t *q, uint64_t seq, const char *id)
{
    hms_outq_slot_t *s = hms_outq_reserve(q);
    REQUIRE(s != NULL);
    hms_buf_reset(&s->ev.body);
    REQUIRE(hms_buf_printf(&s->ev.body, "{\"seq\":%llu}", ull(seq)) == HMS_OK);
    snprintf(s->ev.id, sizeof(s->ev.id), "%s", id);
    hms_outq_push(q, seq);
    return s;
}

static hms_outq_slot_t *push_seq(hms_outq_t *q, uint64_t seq)
{
    char id[40];
    snprintf(id, sizeof(id), "ev-%llu", ull(seq));
    return push_id(q, seq, id);
}

/* Publishes every slot next() offers with tags *tag+1, *tag+2, ...; checks
 * the slots come in the order of want[] (n entries) and nothing more. */
static void publish_expect(hms_outq_t *q, uint64_t *tag, const uint64_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hms_outq_slot_t *s = hms_outq_next(q);
        if (s == NULL)
            ck_abort_msg("publish %zu: next() is NULL, want seq %llu", i, ull(want[i]));
        if (s->seq != want[i])
            ck_abort_msg("publish %zu: seq %llu, want %llu", i, ull(s->seq), ull(want[i]));
        hms_outq_sent(q, ++*tag);
        ck_assert_uint_eq(s->tag, *tag);
        ck_assert_int_eq(s->state, HMS_SLOT_SENT);
    }
}

#define PUBLISH(q, tag, ...)                                                                       \
    publish_expect((q), (tag), (const uint64_t[]){__VA_ARGS__},                                    \
                   sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))

/* Acks tag and checks exactly want[] (in order) was newly confirmed. */
static void ack_expect(hms_outq_t *q, uint64_t tag, bool multiple, const uint64_t *want, size_t n)
{
    uint64_t got[64];
    memset(got, 0xAB, sizeof(got));
    size_t k = hms_outq_ack(q, tag, multiple, got, 64);
    if (k != n)
        ck_abort_msg("ack %llu%s: %zu confirmed, want %zu", ull(tag), multiple ? " multiple" : "",
                     k, n);
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i])
            ck_abort_msg("ack %llu: confirmed[%zu] = %llu, want %llu", ull(tag), i, ull(got[i]),
                         ull(want[i]));
    }
}

#define ACK(q, tag, multiple, ...)                                                                 \
    ack_expect((q), (tag), (multiple), (const uint64_t[]){__VA_ARGS__},                            \
               sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))
#define ACK_NONE(q, tag, multiple) ack_expect((q), (tag), (multiple), NULL, 0)

/* ---- basic bookkeeping --------------------------------------------------- */

START_TEST(test_new_free)
{
    ck_assert_ptr_null(hms_outq_new(0));
    hms_outq_free(NULL);
    hms_outq_t *q = hms_outq_new(1);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(hms_outq_len(q), 0);
    ck_assert_uint_eq(hms_outq_outstanding(q), 0);
    ck_assert(!hms_outq_full(q));
    ck_assert(!hms_outq_refused(q));
    ck_assert(!hms_outq_rewind_ready(q));
    ck_assert_ptr_null(hms_outq_next(q));
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 0);
    hms_outq_free(q); /* never-used slot buffers */
}
END_TEST

START_TEST(test_reserve_push_full_len)
{
    hms_outq_t *q = hms_outq_new(4);
    hms_outq_slot_t *a = hms_outq_reserve(q);
    ck_assert_ptr_nonnull(a);
    /* Reserving does not queue: the same slot until pushed. */
    ck_assert_ptr_eq(hms_outq_reserve(q), a);
    ck_assert_uint_eq(hms_outq_len(q), 0);
    ck_assert_ptr_null(hms_outq_next(q));

    hms_outq_slot_t *seen[4];
    for (uint64_t i = 0; i < 4; i++) {
        ck_assert(!hms_outq_full(q));
        seen[i] = push_seq(q, 10 + i);
        ck_assert_uint_eq(hms_outq_len(q), i + 1);
        ck_assert_int_eq(seen[i]->state, HMS_SLOT_PENDING);
        ck_assert_uint_eq(seen[i]->seq, 10 + i);
        for (uint64_t j = 0; j < i; j++)
            ck_assert_ptr_ne(seen[i], seen[j]);
    }
    ck_assert_ptr_eq(seen[0], a);
    ck_assert(hms_outq_full(q));
    ck_assert_ptr_null(hms_outq_reserve(q));
    ck_assert_uint_eq(hms_outq_outstanding(q), 0);
    /* next() starts at the oldest and does not move until sent(). */
    ck_assert_ptr_eq(hms_outq_next(q), seen[0]);
    ck_assert_ptr_eq(hms_outq_next(q), seen[0]);
    hms_outq_free(q);
}
END_TEST

/* ---- acks ---------------------------------------------------------------- */

START_TEST(test_ack_single)
{
    hms_outq_t *q = hms_outq_new(8);
    uint64_t tag = 0;
    for (uint64_t i = 0; i < 3; i++)
        push_seq(q, 100 + i);
    PUBLISH(q, &tag, 100, 101, 102);
    ck_assert_uint_eq(hms_outq_outstanding(q), 3);

    ACK(q, 2, false, 101);
    ck_assert_uint_eq(hms_outq_outstanding(q), 2);
    ACK_NONE(q, 2, false);                           /* a duplicate confirms nothing twice */
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 0); /* head not confirmed */
    ACK(q, 1, false, 100);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 2);
    ck_assert_uint_eq(hms_outq_len(q), 1);
    ACK_NONE(q, 1, false); /* popped: ignored */
    ACK(q, 3, false, 102);
    ck_assert_uint_eq(hms_outq_outstanding(q), 0);
    ck_assert(!hms_outq_refused(q));
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 1);
    ck_assert_uint_eq(hms_outq_len(q), 0);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_ack_multiple)
{
    hms_outq_t *q = hms_outq_new(8);
    uint64_t tag = 0;
    for (uint64_t i = 0; i < 7; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2, 3, 4, 5, 6);
    ck_assert_ptr_null(hms_outq_next(q));
    ACK(q, 2, false, 1);
    ACK(q, 4, false, 3);
    /* Covers 1..5: the already-settled 2 and 4 are not reported again. */
    ACK(q, 5, true, 0, 2, 4);
    ck_assert_uint_eq(hms_outq_outstanding(q), 2);
    ACK_NONE(q, 5, true);
    ACK_NONE(q, 3, true);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 5);
    /* multiple covering one outstanding publish */
    ACK(q, 6, true, 5);
    ACK(q, 7, true, 6);
    ACK_NONE(q, 7, true);
    ck_assert_uint_eq(hms_outq_outstanding(q), 0);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 2);

    /* A multiple ack whose range starts after some settled-then-popped
     * slots and ends on an already-confirmed one still settles the rest. */
    for (uint64_t i = 7; i < 11; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 7, 8, 9, 10); /* tags 8..11 */
    ACK(q, 10, false, 9);
    ACK(q, 10, true, 7, 8);
    ACK(q, 11, true, 10);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 4);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_ack_report_limit)
{
    /* The loop passes capacity entries; fewer settles the rest unreported,
     * as the header says.  NULL is accepted with max 0. */
    hms_outq_t *q = hms_outq_new(4);
    uint64_t tag = 0, got[2];
    for (uint64_t i = 0; i < 4; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2, 3);
    ck_assert_uint_eq(hms_outq_ack(q, 3, true, got, 2), 2);
    ck_assert_uint_eq(got[0], 0);
    ck_assert_uint_eq(got[1], 1);
    ck_assert_uint_eq(hms_outq_outstanding(q), 1);
    ck_assert_uint_eq(hms_outq_ack(q, 4, false, NULL, 0), 0);
    ck_assert_uint_eq(hms_outq_outstanding(q), 0);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 4);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_unknown_tags)
{
    hms_outq_t *q = hms_outq_new(8);
    /* Before anything was published every tag is unknown. */
    ACK_NONE(q, 0, false);
    ACK_NONE(q, 1, true);
    hms_outq_nack(q, 1, true);
    ck_assert(!hms_outq_refused(q));
    ck_assert(!hms_outq_returned(q, "ev-1"));

    /* The channel already used tags 1..9 (e.g. before a clear). */
    uint64_t tag = 9;
    for (uint64_t i = 0; i < 4; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2); /* tags 10..12; seq 3 stays pending */
    ACK_NONE(q, 0, false);
    ACK_NONE(q, 9, false); /* before the epoch */
    ACK_NONE(q, 9, true);
    ACK_NONE(q, 13, false); /* the pending slot's would-be tag */
    ACK_NONE(q, 13, true);
    ACK_NONE(q, 1000, true);
    ACK_NONE(q, UINT64_MAX, true);
    hms_outq_nack(q, 13, true);
    hms_outq_nack(q, 5, false);
    hms_outq_nack(q, UINT64_MAX, false);
    ck_assert(!hms_outq_refused(q));
    ck_assert_uint_eq(hms_outq_outstanding(q), 3);
    ck_assert(!hms_outq_returned(q, "ev-3")); /* pending, not outstanding */
    ck_assert(!hms_outq_returned(q, "nope"));
    ck_assert(!hms_outq_returned(q, ""));
    ACK(q, 12, true, 0, 1, 2);
    ck_assert(!hms_outq_returned(q, "ev-0")); /* settled */
    PUBLISH(q, &tag, 3);
    ACK(q, 13, false, 3);
    hms_outq_free(q);
}
END_TEST

/* ---- refusals and go-back-N ---------------------------------------------- */

START_TEST(test_nack_pauses_until_rewind)
{
    hms_outq_t *q = hms_outq_new(8);
    uint64_t tag = 0;
    for (uint64_t i = 0; i < 3; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2);
    push_seq(q, 3);
    push_seq(q, 4);
    ck_assert_ptr_nonnull(hms_outq_next(q));

    hms_outq_nack(q, 2, false);
    ck_assert(hms_outq_refused(q));
    ck_assert_ptr_null(hms_outq_next(q)); /* paused with slots pending */
    ck_assert(!hms_outq_rewind_ready(q)); /* 1 and 3 outstanding */
    ck_assert_uint_eq(hms_outq_outstanding(q), 2);
    ACK(q, 1, false, 0);
    ck_assert(!hms_outq_rewind_ready(q));
    ck_assert_ptr_null(hms_outq_next(q));
    ACK(q, 3, false, 2); /* accepted, but will be re-sent after 1 */
    ck_assert(hms_outq_rewind_ready(q));
    ck_assert_ptr_null(hms_outq_next(q)); /* still paused until rewind */
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 1);

    hms_outq_rewind(q);
    ck_assert(!hms_outq_refused(q));
    ck_assert(!hms_outq_rewind_ready(q));
    /* Same channel: tags go on from 4. */
    PUBLISH(q, &tag, 1, 2, 3, 4);
    ck_assert_ptr_null(hms_outq_next(q));
    ACK_NONE(q, 3, true); /* the old epoch's last tag is stale */
    ACK(q, 7, true, 1, 2, 3, 4);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 4);
    ck_assert_uint_eq(hms_outq_len(q), 0);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_nack_multiple)
{
    hms_outq_t *q = hms_outq_new(8);
    uint64_t tag = 0;
    for (uint64_t i = 0; i < 5; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2, 3, 4);
    ACK(q, 1, false, 0);
    ACK(q, 3, false, 2);
    hms_outq_nack(q, 4, true); /* refuses 2 and 4 (tags), not the confirmed ones */
    ck_assert(hms_outq_refused(q));
    ck_assert_uint_eq(hms_outq_outstanding(q), 1);
    ACK(q, 5, false, 4);
    ck_assert(hms_outq_rewind_ready(q));
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 1);
    hms_outq_rewind(q);
    PUBLISH(q, &tag, 1, 2, 3, 4);
    ACK(q, 9, true, 1, 2, 3, 4);
    hms_outq_free(q);
}
END_TEST

/* A returned event addressed to one queue is not retried: its ack settles
 * it as delivered, and only it is taken; others stay to hms_outq_returned. */
START_TEST(test_returned_to_queue)
{
    hms_outq_t *q = hms_outq_new(8);
    uint64_t tag = 0;
    char queue[16] = "";
    push_seq(q, 0);
    hms_outq_slot_t *s = push_seq(q, 1);
    REQUIRE(hms_buf_append_str(&s->ev.queue, "warehouse.resync-queue") == HMS_OK);
    push_seq(q, 2);
    ck_assert(!hms_outq_returned_to_queue(q, "ev-1", queue, sizeof(queue))); /* not sent yet */
    PUBLISH(q, &tag, 0, 1, 2);
    ck_assert(!hms_outq_returned_to_queue(q, "ev-0", queue, sizeof(queue)));
    ck_assert_str_eq(queue, "");
    ck_assert(hms_outq_returned_to_queue(q, "ev-1", queue, sizeof(queue)));
    ck_assert_str_eq(queue, "warehouse.resyn"); /* cut to the buffer, terminated */
    ACK(q, 3, true, 0, 1, 2);
    ck_assert(!hms_outq_refused(q));
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 3);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_returned_then_acked)
{
    hms_outq_t *q = hms_outq_new(8);
    uint64_t tag = 0;
    for (uint64_t i = 0; i < 4; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2, 3);
    ck_assert(hms_outq_returned(q, "ev-1"));
    ck_assert(!hms_outq_returned(q, "ev-1")); /* already returned */
    ck_assert(!hms_outq_refused(q));          /* the refusal is its ack */
    ck_assert_uint_eq(hms_outq_outstanding(q), 4);
    ACK(q, 3, true, 0, 2); /* 1 refused, not confirmed */
    ck_assert(hms_outq_refused(q));
    ck_assert_ptr_null(hms_outq_next(q));
    ck_assert(!hms_outq_rewind_ready(q));
    ck_assert(hms_outq_returned(q, "ev-3"));
    hms_outq_nack(q, 4, false); /* returned then nacked: refused too */
    ck_assert(hms_outq_rewind_ready(q));
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 1);
    hms_outq_rewind(q);
    PUBLISH(q, &tag, 1, 2, 3);
    ACK(q, 5, false, 1);
    ACK(q, 7, true, 2, 3);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 3);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_go_back_n_epoch)
{
    hms_outq_t *q = hms_outq_new(8);
    uint64_t tag = 0;
    for (uint64_t i = 0; i < 6; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2, 3, 4, 5);
    ACK(q, 1, false, 0);
    hms_outq_nack(q, 3, false); /* seq 2 */
    ACK(q, 6, true, 1, 3, 4, 5);
    ck_assert(hms_outq_rewind_ready(q));
    /* More events arrive while paused. */
    push_seq(q, 6);
    push_seq(q, 7);
    ck_assert(hms_outq_full(q));
    ck_assert_ptr_null(hms_outq_next(q));
    hms_outq_rewind(q);
    /* Restart at the refused slot; confirmed 3, 4, 5 are re-sent too, then
     * the new ones, with tags 7..12 of the same channel. */
    PUBLISH(q, &tag, 2, 3, 4, 5, 6, 7);
    ck_assert_ptr_null(hms_outq_next(q));
    ck_assert_uint_eq(tag, 12);
    ck_assert_uint_eq(hms_outq_outstanding(q), 6);
    /* Tags of the old epoch no longer map to slots. */
    ACK_NONE(q, 4, false);
    ACK_NONE(q, 6, true);
    hms_outq_nack(q, 5, true);
    ck_assert(!hms_outq_refused(q));
    ACK(q, 7, false, 2);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 3);
    /* The re-sent copy of 4 refused: 3 stays confirmed, 4 goes back. */
    hms_outq_nack(q, 9, false);
    ACK(q, 12, true, 3, 5, 6, 7);
    ck_assert(hms_outq_rewind_ready(q));
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 1); /* 3; stops at 4 */
    hms_outq_rewind(q);
    PUBLISH(q, &tag, 4, 5, 6, 7); /* tags 13..16 */
    ACK(q, 16, true, 4, 5, 6, 7);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 4);
    ck_assert_uint_eq(hms_outq_len(q), 0);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_connection_lost_rewind)
{
    hms_outq_t *q = hms_outq_new(8);
    uint64_t tag = 0;
    for (uint64_t i = 0; i < 5; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2, 3, 4);
    ACK(q, 1, false, 0);
    ACK(q, 3, false, 2);
    ck_assert(hms_outq_returned(q, "ev-3"));
    ck_assert_uint_eq(hms_outq_outstanding(q), 3);
    /* Lost: never settled; the new channel numbers from 1 again. */
    hms_outq_rewind(q);
    ck_assert_uint_eq(hms_outq_outstanding(q), 0);
    ck_assert(!hms_outq_refused(q));
    ck_assert(!hms_outq_rewind_ready(q));
    ck_assert_uint_eq(hms_outq_len(q), 5);
    tag = 0;
    PUBLISH(q, &tag, 1, 2, 3, 4);
    ACK(q, 2, true, 1, 2);
    ACK(q, 3, false, 3); /* the old return does not carry over */
    ACK_NONE(q, 5, false);
    ACK(q, 4, true, 4);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 5);

    /* Lost while a refusal was pending with publishes outstanding. */
    for (uint64_t i = 5; i < 9; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 5, 6, 7, 8); /* tags 5..8 */
    ACK(q, 5, false, 5);
    hms_outq_nack(q, 6, false);
    ck_assert(hms_outq_refused(q));
    ck_assert(!hms_outq_rewind_ready(q));
    hms_outq_rewind(q);
    ck_assert(!hms_outq_refused(q));
    tag = 0;
    PUBLISH(q, &tag, 6, 7, 8);
    ck_assert_ptr_null(hms_outq_next(q));
    ACK(q, 3, true, 6, 7, 8);

    /* Lost with nothing outstanding: harmless. */
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 4);
    push_seq(q, 9);
    hms_outq_rewind(q);
    tag = 0;
    PUBLISH(q, &tag, 9);
    ACK(q, 1, false, 9);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_clear_late_acks)
{
    hms_outq_t *q = hms_outq_new(4);
    uint64_t tag = 0;
    for (uint64_t i = 0; i < 4; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2);
    ACK(q, 1, false, 0);
    ck_assert(hms_outq_full(q));
    hms_outq_clear(q);
    ck_assert_uint_eq(hms_outq_len(q), 0);
    ck_assert_uint_eq(hms_outq_outstanding(q), 0);
    ck_assert(!hms_outq_full(q));
    ck_assert_ptr_null(hms_outq_next(q));
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 0);
    /* Late verdicts before anything new is published. */
    ACK_NONE(q, 2, false);
    ACK_NONE(q, 3, true);
    ck_assert(!hms_outq_returned(q, "ev-2"));

    /* PostgreSQL resends: same events, new seqs, the channel goes on. */
    push_id(q, 10, "ev-1");
    push_id(q, 11, "ev-2");
    push_id(q, 12, "ev-3");
    PUBLISH(q, &tag, 10, 11);   /* tags 4, 5 */
    hms_outq_nack(q, 3, false); /* late nack of a dropped publish */
    ck_assert(!hms_outq_refused(q));
    ACK_NONE(q, 3, true);
    ACK_NONE(q, 2, false);
    ck_assert_uint_eq(hms_outq_outstanding(q), 2);
    ACK(q, 4, true, 10);
    ACK(q, 5, false, 11);
    PUBLISH(q, &tag, 12);
    ACK(q, 6, false, 12);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 3);

    /* Cleared while a refusal is pending: publishing resumes at once. */
    push_seq(q, 20);
    push_seq(q, 21);
    PUBLISH(q, &tag, 20, 21); /* tags 7, 8 */
    hms_outq_nack(q, 7, false);
    ck_assert(hms_outq_refused(q));
    hms_outq_clear(q);
    ck_assert(!hms_outq_refused(q));
    ck_assert(!hms_outq_rewind_ready(q));
    push_seq(q, 30);
    push_seq(q, 31);
    PUBLISH(q, &tag, 30, 31); /* tags 9, 10 */
    ACK_NONE(q, 8, true);
    ck_assert_uint_eq(hms_outq_outstanding(q), 2);
    /* A multiple ack over dropped and new publishes confirms only new ones. */
    ACK(q, 10, true, 30, 31);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 2);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_clear_then_connection_lost)
{
    hms_outq_t *q = hms_outq_new(4);
    uint64_t tag = 0;
    push_seq(q, 0);
    push_seq(q, 1);
    PUBLISH(q, &tag, 0, 1);
    hms_outq_clear(q);
    push_seq(q, 2);
    PUBLISH(q, &tag, 2); /* tag 3 */
    hms_outq_rewind(q);  /* and then the broker went too */
    tag = 0;
    PUBLISH(q, &tag, 2); /* tag 1 on the new channel */
    ACK(q, 1, true, 2);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_stale_return_after_clear)
{
    /* A basic.return of a dropped publish can name the id of its re-pushed
     * copy.  That copy must then never be confirmed by its ack: it is
     * refused (a needless re-send, not a lost event). */
    hms_outq_t *q = hms_outq_new(4);
    uint64_t tag = 0;
    push_seq(q, 0);
    PUBLISH(q, &tag, 0);
    hms_outq_clear(q);
    push_id(q, 1, "ev-0");
    PUBLISH(q, &tag, 1); /* tag 2 */
    /* The broker now delivers the old publish's return, then its ack. */
    bool matched = hms_outq_returned(q, "ev-0");
    ACK_NONE(q, 1, false);
    if (matched) {
        ACK_NONE(q, 2, false);
        ck_assert(hms_outq_rewind_ready(q));
        hms_outq_rewind(q);
        PUBLISH(q, &tag, 1);
        ACK(q, 3, false, 1);
    } else {
        ACK(q, 2, false, 1);
    }
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 1);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_stale_tag_on_reused_slot)
{
    /* A tag whose slot was popped and recycled must not reach the slot's
     * new occupant, even within one epoch. */
    hms_outq_t *q = hms_outq_new(2);
    uint64_t tag = 0;
    push_seq(q, 0);
    push_seq(q, 1);
    PUBLISH(q, &tag, 0, 1);
    ACK(q, 2, true, 0, 1);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 2);
    push_seq(q, 2);
    push_seq(q, 3);
    PUBLISH(q, &tag, 2, 3); /* same ring slots, tags 3, 4 */
    ACK_NONE(q, 1, false);
    ACK_NONE(q, 2, false);
    ACK_NONE(q, 2, true);
    hms_outq_nack(q, 1, false);
    hms_outq_nack(q, 2, true);
    ck_assert(!hms_outq_refused(q));
    ck_assert_uint_eq(hms_outq_outstanding(q), 2);
    ACK(q, 4, true, 2, 3);
    hms_outq_free(q);
}
END_TEST

START_TEST(test_pop_confirmed_prefix)
{
    hms_outq_t *q = hms_outq_new(6);
    uint64_t tag = 0;
    for (uint64_t i = 0; i < 6; i++)
        push_seq(q, i);
    PUBLISH(q, &tag, 0, 1, 2, 3);
    ACK(q, 2, false, 1);
    ACK(q, 4, false, 3);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 0);
    ACK(q, 1, false, 0);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 2);
    ck_assert_uint_eq(hms_outq_len(q), 4);
    ck_assert(!hms_outq_full(q));
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 0); /* 2 still outstanding */
    ACK(q, 3, false, 2);
    /* Pending slots are never popped. */
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 2);
    ck_assert_uint_eq(hms_outq_len(q), 2);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 0);
    /* Popped room is reusable at once. */
    for (uint64_t i = 6; i < 10; i++)
        push_seq(q, i);
    ck_assert(hms_outq_full(q));
    PUBLISH(q, &tag, 4, 5, 6, 7, 8, 9);
    ACK(q, 10, true, 4, 5, 6, 7, 8, 9);
    ck_assert_uint_eq(hms_outq_pop_confirmed(q), 6);
    hms_outq_free(q);
}
END_TEST

/* ---- wrap-around --------------------------------------------------------- */

START_TEST(test_wraparound_reuse)
{
    enum { N = 10000 };
    for (size_t cap = 4; cap <= 8; cap++) {
        hms_outq_t *q = hms_outq_new(cap);
        hms_outq_slot_t *slot_at[8] = {0};
        char *data_at[8] = {0};
        uint64_t pushed = 0, next_confirm = 0, tag = 0, acked_tag = 0;
        size_t round = 0;
        while (next_confirm < N) {
            round++;
            while (pushed < N && !hms_outq_full(q)) {
                hms_outq_slot_t *s = push_seq(q, pushed);
                size_t i = (size_t)(pushed % cap);
                /* Slots recycle in ring order and keep their buffers
                 * (every body has room for the longest one). */
                if (pushed < cap) {
                    slot_at[i] = s;
                    REQUIRE(hms_buf_reserve(&s->ev.body, 64) == HMS_OK);
                    data_at[i] = s->ev.body.data;
                } else {
                    REQUIRE(s == slot_at[i]);
                    REQUIRE(s->ev.body.data == data_at[i]);
                }
                pushed++;
            }
            /* Publish up to a varying window, then settle in a varying
             * pattern: single, multiple, or part of each. */
            size_t window = 1 + round % cap;
            hms_outq_slot_t *s;
            while (hms_outq_outstanding(q) < window && (s = hms_outq_next(q)) != NULL) {
                char want[40];
                snprintf(want, sizeof(want), "ev-%llu", ull(s->seq));
                REQUIRE(strcmp(s->ev.id, want) == 0);
                hms_outq_sent(q, ++tag);
            }
            uint64_t got[8];
            size_t n = 0;
            if (round % 3 == 0) {
                n = hms_outq_ack(q, tag, true, got, 8);
                acked_tag = tag;
            } else {
                while (acked_tag < tag && n < 8) {
                    size_t k = hms_outq_ack(q, ++acked_tag, round % 3 == 2, got + n, 8 - n);
                    n += k;
                    if (round % 5 == 0)
                        break;
                }
            }
            for (size_t i = 0; i < n; i++) {
                if (got[i] != next_confirm)
                    ck_abort_msg("cap %zu: confirmed %llu, want %llu", cap, ull(got[i]),
                                 ull(next_confirm));
                next_confirm++;
            }
            hms_outq_pop_confirmed(q);
            REQUIRE(hms_outq_len(q) <= cap);
        }
        ck_assert_uint_eq(hms_outq_len(q), 0);
        ck_assert_uint_eq(hms_outq_outstanding(q), 0);
        ck_assert_uint_eq(tag, N);
        hms_outq_free(q);
    }
}
END_TEST

/* ---- randomized model ---------------------------------------------------- */

/* The broker side is a FIFO of publishes on the current channel, settled in
 * publication order (RabbitMQ confirms in order on one channel); a return is
 * delivered when the publish is routed, before its ack.  Publishes of slots
 * dropped by hms_outq_clear() stay in the FIFO (same channel) and are settled
 * too; a lost connection empties the FIFO and tags restart at 1. */

typedef enum { FATE_ACK, FATE_NACK, FATE_RETURN } fate_t;

typedef struct {
    uint64_t tag;
    uint64_t pos;
    uint32_t idnum;
    fate_t fate;
    bool live; /* false once hms_outq_clear() dropped its slot */
} flight_t;

typedef enum { M_PENDING, M_SENT, M_CONFIRMED, M_REFUSED } mstate_t;

typedef struct {
    uint64_t seq;
    uint32_t idnum;
    mstate_t state;
    bool returned; /* outq should hold it RETURNED */
    uint32_t confirms;
    bool dropped_unconfirmed;
} mslot_t;

typedef struct {
    uint64_t seed;
    uint64_t rng;
    hms_outq_t *q;
    size_t cap;
    /* model of the queue, by absolute position (same as the ring's) */
    mslot_t *slots;
    size_t slots_max;
    uint64_t head, pub, tail;
    bool refused;
    size_t outstanding;
    /* the broker */
    flight_t *flight;
    size_t nflight, flight_max;
    size_t routed; /* leading flight entries whose return (if any) went out */
    uint64_t next_tag;
    /* PostgreSQL resends dropped events (same ids) before new ones */
    uint32_t *resend;
    size_t nresend, resend_max;
    uint32_t next_idnum;
    bool failures; /* refusals and losses on */
    /* counts across runs */
    size_t n_publish, n_confirm, n_refuse, n_rewind, n_lost, n_clear, n_stale_ret;
} sim_t;

static uint64_t rnd(sim_t *m)
{
    /* splitmix64: reproducible from the printed seed */
    uint64_t z = (m->rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static size_t rnd_below(sim_t *m, size_t n)
{
    return (size_t)(rnd(m) % n);
}

#define SIM_CHECK(m, cond, ...)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            char msg_[256];                                                                        \
            snprintf(msg_, sizeof(msg_), __VA_ARGS__);                                             \
            ck_abort_msg("seed %llu (rerun: HMS_OUTQ_SEED=%llu): %s: %s", ull((m)->seed),          \
                         ull((m)->seed), #cond, msg_);                                             \
        }                                                                                          \
    } while (0)

static void sim_observe(sim_t *m)
{
    hms_outq_t *q = m->q;
    SIM_CHECK(m, hms_outq_len(q) == m->tail - m->head, "len %zu", hms_outq_len(q));
    SIM_CHECK(m, hms_outq_full(q) == (m->tail - m->head == m->cap), "full");
    SIM_CHECK(m, hms_outq_outstanding(q) == m->outstanding, "outstanding %zu, model %zu",
              hms_outq_outstanding(q), m->outstanding);
    SIM_CHECK(m, hms_outq_refused(q) == m->refused, "refused %d", hms_outq_refused(q));
    SIM_CHECK(m, hms_outq_rewind_ready(q) == (m->refused && m->outstanding == 0), "rewind_ready");
    hms_outq_slot_t *s = hms_outq_next(q);
    bool want = !m->refused && m->pub < m->tail;
    SIM_CHECK(m, (s != NULL) == want, "next() %s", s ? "non-NULL" : "NULL");
}

static void sim_push(sim_t *m)
{
    if (hms_outq_full(m->q) || m->tail == m->slots_max)
        return;
    uint32_t idnum;
    if (m->nresend > 0) {
        idnum = m->resend[0];
        memmove(m->resend, m->resend + 1, --m->nresend * sizeof(*m->resend));
    } else {
        idnum = m->next_idnum++;
    }
    char id[40];
    snprintf(id, sizeof(id), "e-%u", idnum);
    mslot_t *ms = &m->slots[m->tail];
    *ms = (mslot_t){.seq = 1000 + m->tail * 3, .idnum = idnum, .state = M_PENDING};
    push_id(m->q, ms->seq, id);
    m->tail++;
}

static void sim_publish(sim_t *m, size_t limit)
{
    for (size_t i = 0; i < limit; i++) {
        hms_outq_slot_t *s = hms_outq_next(m->q);
        if (s == NULL)
            break;
        /* Publishing goes forward one position at a time from the rewind
         * point: the slot offered is exactly the model's next position. */
        mslot_t *ms = &m->slots[m->pub];
        SIM_CHECK(m, s->seq == ms->seq, "next() seq %llu, want %llu (pos %llu)", ull(s->seq),
                  ull(ms->seq), ull(m->pub));
        char id[40], body[64];
        snprintf(id, sizeof(id), "e-%u", ms->idnum);
        snprintf(body, sizeof(body), "{\"seq\":%llu}", ull(ms->seq));
        SIM_CHECK(m, strcmp(s->ev.id, id) == 0, "id %s, want %s", s->ev.id, id);
        SIM_CHECK(m, s->ev.body.len == strlen(body) && strcmp(s->ev.body.data, body) == 0,
                  "body %s", s->ev.body.data);
        SIM_CHECK(m, ms->state == M_PENDING, "publishing a non-pending slot");
        fate_t fate = FATE_ACK;
        if (m->failures) {
            size_t r = rnd_below(m, 100);
            fate = r < 8 ? FATE_NACK : r < 16 ? FATE_RETURN : FATE_ACK;
        }
        if (m->nflight == m->flight_max) {
            m->flight_max *= 2;
            m->flight = realloc(m->flight, m->flight_max * sizeof(*m->flight));
            REQUIRE(m->flight != NULL);
        }
        m->flight[m->nflight++] = (flight_t){
            .tag = m->next_tag, .pos = m->pub, .idnum = ms->idnum, .fate = fate, .live = true};
        hms_outq_sent(m->q, m->next_tag++);
        ms->state = M_SENT;
        ms->returned = false;
        m->pub++;
        m->outstanding++;
        m->n_publish++;
    }
}

/* The broker routes the next publish: its return goes out if unroutable. */
static void sim_route(sim_t *m)
{
    if (m->routed == m->nflight)
        return;
    flight_t *f = &m->flight[m->routed++];
    if (f->fate != FATE_RETURN)
        return;
    /* outq matches the outstanding (SENT, not yet returned) slot with that
     * id; for a dropped publish that may be its re-pushed copy. */
    mslot_t *hit = NULL;
    for (uint64_t p = m->head; p < m->pub; p++) {
        mslot_t *ms = &m->slots[p];
        if (ms->state == M_SENT && !ms->returned && ms->idnum == f->idnum) {
            hit = ms;
            break;
        }
    }
    /* unless a stale return already took it */
    SIM_CHECK(m, !f->live || hit == &m->slots[f->pos] || (hit == NULL && m->slots[f->pos].returned),
              "a live return must hit its slot");
    char id[40];
    snprintf(id, sizeof(id), "e-%u", f->idnum);
    bool got = hms_outq_returned(m->q, id);
    SIM_CHECK(m, got == (hit != NULL), "returned(%s) = %d", id, got);
    if (hit != NULL) {
        hit->returned = true;
        if (!f->live)
            m->n_stale_ret++;
    }
}

/* The broker settles the oldest k routed publishes with one ack or nack. */
static void sim_settle(sim_t *m)
{
    if (m->routed == 0)
        return;
    bool nack = m->flight[0].fate == FATE_NACK;
    size_t run = 1;
    while (run < m->routed && (m->flight[run].fate == FATE_NACK) == nack)
        run++;
    size_t k = 1 + rnd_below(m, run);
    bool multiple = k > 1 || rnd_below(m, 4) == 0;
    uint64_t tag = m->flight[k - 1].tag;

    uint64_t want[64];
    size_t nwant = 0;
    for (size_t i = 0; i < k; i++) {
        flight_t *f = &m->flight[i];
        if (!f->live)
            continue;
        mslot_t *ms = &m->slots[f->pos];
        SIM_CHECK(m, ms->state == M_SENT, "live publish of a settled slot");
        SIM_CHECK(m, f->fate != FATE_RETURN || ms->returned, "return not recorded");
        m->outstanding--;
        if (!nack && !ms->returned) {
            ms->state = M_CONFIRMED;
            ms->confirms++;
            REQUIRE(nwant < 64);
            want[nwant++] = ms->seq;
            m->n_confirm++;
        } else {
            ms->state = M_REFUSED;
            m->refused = true;
            m->n_refuse++;
        }
    }
    uint64_t got[64];
    size_t n = 0;
    if (nack)
        hms_outq_nack(m->q, tag, multiple);
    else
        n = hms_outq_ack(m->q, tag, multiple, got, 64);
    /* Exactly the live publishes accepted by this verdict, each once: never
     * a dropped slot, never a refused one. */
    SIM_CHECK(m, n == nwant, "%s %llu%s confirmed %zu, want %zu", nack ? "nack" : "ack", ull(tag),
              multiple ? " multiple" : "", n, nwant);
    for (size_t i = 0; i < n; i++)
        SIM_CHECK(m, got[i] == want[i], "confirmed[%zu] = %llu, want %llu", i, ull(got[i]),
                  ull(want[i]));
    memmove(m->flight, m->flight + k, (m->nflight - k) * sizeof(*m->flight));
    m->nflight -= k;
    m->routed -= k;
}

/* A verdict for a tag that names no live outstanding publish (settled,
 * popped, dropped, or never used) changes nothing.  RabbitMQ does not send
 * these; the header promises to ignore them. */
static void sim_bogus_verdict(sim_t *m)
{
    uint64_t tag = rnd_below(m, (size_t)m->next_tag + 3);
    uint64_t lowest_live = UINT64_MAX;
    for (size_t i = 0; i < m->nflight; i++) {
        if (m->flight[i].live && m->flight[i].tag == tag)
            return;
        if (m->flight[i].live && m->flight[i].tag < lowest_live)
            lowest_live = m->flight[i].tag;
    }
    bool multiple = tag < lowest_live && rnd_below(m, 2) == 0;
    uint64_t got[64];
    if (rnd_below(m, 2) == 0) {
        size_t n = hms_outq_ack(m->q, tag, multiple, got, 64);
        SIM_CHECK(m, n == 0, "bogus ack %llu confirmed %zu", ull(tag), n);
    } else {
        hms_outq_nack(m->q, tag, multiple);
    }
}

static void sim_rewind_model(sim_t *m)
{
    uint64_t p = m->head;
    while (p < m->pub && m->slots[p].state == M_CONFIRMED)
        p++;
    for (uint64_t i = p; i < m->pub; i++) {
        m->slots[i].state = M_PENDING;
        m->slots[i].returned = false;
    }
    m->pub = p;
    m->refused = false;
    m->outstanding = 0;
    m->n_rewind++;
}

static void sim_connection_lost(sim_t *m)
{
    m->nflight = 0;
    m->routed = 0;
    m->next_tag = 1;
    hms_outq_rewind(m->q);
    sim_rewind_model(m);
    m->n_lost++;
}

static void sim_pg_lost(sim_t *m)
{
    hms_outq_clear(m->q);
    size_t ndrop = (size_t)(m->tail - m->head);
    if (m->nresend + ndrop > m->resend_max) {
        m->resend_max = m->nresend + ndrop + 16;
        m->resend = realloc(m->resend, m->resend_max * sizeof(*m->resend));
        REQUIRE(m->resend != NULL);
    }
    /* Stream order: the dropped events come before the ones never pushed. */
    if (m->nresend > 0)
        memmove(m->resend + ndrop, m->resend, m->nresend * sizeof(*m->resend));
    for (uint64_t p = m->head; p < m->tail; p++) {
        mslot_t *ms = &m->slots[p];
        m->resend[p - m->head] = ms->idnum;
        if (ms->confirms == 0)
            ms->dropped_unconfirmed = true;
        ms->state = M_PENDING;
        ms->returned = false;
    }
    m->nresend += ndrop;
    for (size_t i = 0; i < m->nflight; i++)
        m->flight[i].live = false;
    m->head = m->pub = m->tail;
    m->refused = false;
    m->outstanding = 0;
    m->n_clear++;
}

static void sim_pop(sim_t *m)
{
    uint64_t p = m->head;
    while (p < m->pub && m->slots[p].state == M_CONFIRMED)
        p++;
    size_t n = hms_outq_pop_confirmed(m->q);
    SIM_CHECK(m, n == p - m->head, "popped %zu, want %llu", n, ull(p - m->head));
    m->head = p;
}

static void sim_step(sim_t *m)
{
    size_t r = rnd_below(m, 1000);
    if (r < 250) {
        size_t n = 1 + rnd_below(m, m->cap);
        for (size_t i = 0; i < n; i++)
            sim_push(m);
    } else if (r < 450) {
        sim_publish(m, 1 + rnd_below(m, m->cap));
    } else if (r < 650) {
        sim_route(m);
    } else if (r < 850) {
        sim_settle(m);
    } else if (r < 930) {
        if (hms_outq_rewind_ready(m->q)) {
            hms_outq_rewind(m->q);
            sim_rewind_model(m);
        }
    } else if (r < 980) {
        sim_pop(m);
    } else if (r < 990) {
        sim_bogus_verdict(m);
    } else if (m->failures && r < 995) {
        sim_connection_lost(m);
    } else if (m->failures) {
        sim_pg_lost(m);
    }
    sim_observe(m);
}

static void sim_run(sim_t *m, size_t steps)
{
    m->failures = true;
    for (size_t i = 0; i < steps; i++)
        sim_step(m);
    /* Drain: no more failures or events; everything must get through. */
    m->failures = false;
    for (size_t i = 0; i < 100000 && (m->tail > m->head || m->nflight > 0); i++) {
        sim_route(m);
        sim_settle(m);
        if (hms_outq_rewind_ready(m->q)) {
            hms_outq_rewind(m->q);
            sim_rewind_model(m);
        }
        sim_publish(m, m->cap);
        sim_pop(m);
        sim_observe(m);
    }
    SIM_CHECK(m, m->tail == m->head && m->nflight == 0, "drain did not finish");
    /* Every pushed event was confirmed at least once unless cleared first. */
    for (uint64_t p = 0; p < m->tail; p++) {
        mslot_t *ms = &m->slots[p];
        SIM_CHECK(m, ms->confirms > 0 || ms->dropped_unconfirmed, "seq %llu never confirmed",
                  ull(ms->seq));
    }
}

START_TEST(test_randomized_model)
{
    uint64_t base;
    const char *env = getenv("HMS_OUTQ_SEED");
    if (env != NULL && *env != '\0')
        base = strtoull(env, NULL, 10);
    else
        base = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
    size_t runs = env != NULL && *env != '\0' ? 1 : 250;
    size_t tot_publish = 0, tot_confirm = 0, tot_refuse = 0, tot_rewind = 0, tot_lost = 0,
           tot_clear = 0, tot_stale = 0;
    for (size_t run = 0; run < runs; run++) {
        sim_t m = {0};
        m.seed = base + run;
        m.rng = m.seed;
        m.cap = 1 + rnd_below(&m, 8);
        m.q = hms_outq_new(m.cap);
        ck_assert_ptr_nonnull(m.q);
        m.slots_max = 4000;
        m.slots = calloc(m.slots_max, sizeof(*m.slots));
        m.flight_max = 16;
        m.flight = calloc(m.flight_max, sizeof(*m.flight));
        m.next_tag = 1;
        m.next_idnum = 1;
        ck_assert_ptr_nonnull(m.slots);
        ck_assert_ptr_nonnull(m.flight);
        sim_run(&m, 3000);
        tot_publish += m.n_publish;
        tot_confirm += m.n_confirm;
        tot_refuse += m.n_refuse;
        tot_rewind += m.n_rewind;
        tot_lost += m.n_lost;
        tot_clear += m.n_clear;
        tot_stale += m.n_stale_ret;
        hms_outq_free(m.q);
        free(m.slots);
        free(m.flight);
        free(m.resend);
    }
    /* Each behaviour was exercised, not just the happy path. */
    if (runs > 1) {
        ck_assert_uint_gt(tot_refuse, 1000);
        ck_assert_uint_gt(tot_rewind, 1000);
        ck_assert_uint_gt(tot_lost, 100);
        ck_assert_uint_gt(tot_clear, 100);
        ck_assert_uint_gt(tot_stale, 0);
    }
    if (getenv("HMS_OUTQ_VERBOSE") != NULL)
        fprintf(stderr,
                "outq model: base seed %llu, %zu runs: %zu publishes, %zu confirms, %zu "
                "refusals, %zu rewinds, %zu connection losses, %zu clears, %zu stale returns\n",
                ull(base), runs, tot_publish, tot_confirm, tot_refuse, tot_rewind, tot_lost,
                tot_clear, tot_stale);
}
END_TEST

static Suite *outq_suite(void)
{
    Suite *s = suite_create("outq");
    TCase *tc = tcase_create("basic");
    tcase_add_test(tc, test_new_free);
    tcase_add_test(tc, test_reserve_push_full_len);
    tcase_add_test(tc, test_ack_single);
    tcase_add_test(tc, test_ack_multiple);
    tcase_add_test(tc, test_ack_report_limit);
    tcase_add_test(tc, test_unknown_tags);
    tcase_add_test(tc, test_stale_tag_on_reused_slot);
    tcase_add_test(tc, test_pop_confirmed_prefix);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("refusal");
    tcase_add_test(tr, test_nack_pauses_until_rewind);
    tcase_add_test(tr, test_nack_multiple);
    tcase_add_test(tr, test_returned_then_acked);
    tcase_add_test(tr, test_returned_to_queue);
    tcase_add_test(tr, test_go_back_n_epoch);
    tcase_add_test(tr, test_connection_lost_rewind);
    tcase_add_test(tr, test_clear_late_acks);
    tcase_add_test(tr, test_clear_then_connection_lost);
    tcase_add_test(tr, test_stale_return_after_clear);
    suite_add_tcase(s, tr);
    TCase *tw = tcase_create("stress");
    tcase_add_test(tw, test_wraparound_reuse);
    tcase_add_test(tw, test_randomized_model);
    tcase_set_timeout(tw, 30);
    suite_add_tcase(s, tw);
    return s;
}

HMS_CHECK_MAIN(outq_suite)
