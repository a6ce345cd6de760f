/* test_feedback.c -- when a standby status update is due: on an advance
 * (coalesced), on a reply-requested keepalive, at least every
 * feedback_interval, paced by wal_sender_timeout; and, with the LSN
 * tracker, the rule that a keepalive moves the slot only when nothing is in
 * flight. */
#include "core/feedback.h"

#include <check.h>
#include <stdint.h>

#include "core/tracker.h"
#include "hms_check.h"

/* A monotonic clock well past zero, as hms_clock_ms() is. */
#define T0 1000000

START_TEST(test_due_at_once_after_start)
{
    hms_feedback_t f;
    hms_feedback_start(&f, 10000, 60000, T0);
    /* Nothing sent this session: tell the walsender where we are now. */
    ck_assert(hms_feedback_due(&f, 0, T0));
    ck_assert(hms_feedback_due(&f, 500, T0));
    ck_assert_int_le(hms_feedback_next_ms(&f, 0), T0);
    ck_assert(!hms_feedback_ask(&f, T0)); /* just heard from it */
    ck_assert_uint_eq(f.sent_flush, 0);
}
END_TEST

START_TEST(test_interval_when_nothing_moves)
{
    hms_feedback_t f;
    hms_feedback_start(&f, 10000, 0, T0);
    hms_feedback_sent(&f, 500, T0);
    ck_assert_int_eq(hms_feedback_next_ms(&f, 500), T0 + 10000);
    ck_assert(!hms_feedback_due(&f, 500, T0 + 1));
    ck_assert(!hms_feedback_due(&f, 500, T0 + 9999));
    ck_assert(hms_feedback_due(&f, 500, T0 + 10000));
    /* A flush position behind what was sent is no advance. */
    ck_assert(!hms_feedback_due(&f, 400, T0 + 5000));
}
END_TEST

START_TEST(test_advance_is_coalesced)
{
    hms_feedback_t f;
    hms_feedback_start(&f, 10000, 0, T0);
    hms_feedback_sent(&f, 500, T0);
    /* Acks keep moving the position: at most one status per 20 ms. */
    for (int64_t t = 1; t < HMS_FEEDBACK_COALESCE_MS; t++)
        ck_assert_msg(!hms_feedback_due(&f, 500 + (uint64_t)t, T0 + t), "due after %lld ms",
                      (long long)t);
    ck_assert_int_eq(hms_feedback_next_ms(&f, 501), T0 + HMS_FEEDBACK_COALESCE_MS);
    ck_assert(hms_feedback_due(&f, 520, T0 + HMS_FEEDBACK_COALESCE_MS));
    hms_feedback_sent(&f, 520, T0 + HMS_FEEDBACK_COALESCE_MS);
    ck_assert_uint_eq(f.sent_flush, 520);
    ck_assert(!hms_feedback_due(&f, 520, T0 + HMS_FEEDBACK_COALESCE_MS + 1));
}
END_TEST

START_TEST(test_reply_requested_at_once)
{
    hms_feedback_t f;
    hms_feedback_start(&f, 10000, 0, T0);
    hms_feedback_sent(&f, 500, T0);
    hms_feedback_reply_asked(&f);
    /* The walsender asked: answer now, not after the coalescing delay. */
    ck_assert(hms_feedback_due(&f, 500, T0 + 1));
    ck_assert(hms_feedback_due(&f, 500, T0));
    /* The deadline the loop sleeps to is bounded by the coalescing delay. */
    ck_assert_int_le(hms_feedback_next_ms(&f, 500), T0 + HMS_FEEDBACK_COALESCE_MS);
    hms_feedback_sent(&f, 500, T0 + 1);
    ck_assert(!f.reply_requested);
    ck_assert(!hms_feedback_due(&f, 500, T0 + 2));
}
END_TEST

START_TEST(test_paced_by_sender_timeout)
{
    hms_feedback_t f;
    hms_feedback_start(&f, 10000, 5000, T0);
    ck_assert_int_eq(hms_feedback_interval(&f), 1666);
    hms_feedback_start(&f, 10000, 60000, T0); /* a third is 20 s: the interval wins */
    ck_assert_int_eq(hms_feedback_interval(&f), 10000);
    hms_feedback_start(&f, 10000, 0, T0); /* disabled or unknown */
    ck_assert_int_eq(hms_feedback_interval(&f), 10000);
    hms_feedback_start(&f, 100, 30000, T0);
    ck_assert_int_eq(hms_feedback_interval(&f), 100);

    /* An absurdly short timeout: even an advance waits no longer than it. */
    hms_feedback_start(&f, 10000, 30, T0);
    hms_feedback_sent(&f, 500, T0);
    ck_assert_int_eq(hms_feedback_next_ms(&f, 600), T0 + 10);
    ck_assert_int_eq(hms_feedback_next_ms(&f, 500), T0 + 10);
}
END_TEST

/* While the queue is full the loop reads nothing and never sees a
 * keepalive: its own timer alone must keep the walsender from timing out. */
START_TEST(test_silent_reader_beats_sender_timeout)
{
    const int sender_timeout = 5000;
    hms_feedback_t f;
    hms_feedback_start(&f, 10000, sender_timeout, T0);
    int64_t last = 0;
    int sent = 0;
    for (int64_t now = T0; now < T0 + 60000; now++) {
        if (!hms_feedback_due(&f, 0, now))
            continue;
        if (last != 0)
            ck_assert_int_lt(now - last, sender_timeout);
        hms_feedback_sent(&f, 0, now);
        last = now;
        sent++;
    }
    ck_assert_int_ge(sent, 60000 / 1667);
    ck_assert_int_le(sent, 60000 / 1666 + 1);
}
END_TEST

/* Acks every millisecond for a second: the slot follows within the
 * coalescing delay, with one status per delay, not one per ack. */
START_TEST(test_ack_stream)
{
    hms_feedback_t f;
    hms_feedback_start(&f, 10000, 60000, T0);
    hms_feedback_sent(&f, 0, T0);
    int sent = 0;
    uint64_t flush = 0;
    int64_t advanced_at = 0;
    for (int64_t now = T0 + 1; now <= T0 + 1000; now++) {
        if (flush == f.sent_flush)
            advanced_at = now;
        flush += 10;
        if (hms_feedback_due(&f, flush, now)) {
            ck_assert_int_le(now - advanced_at, HMS_FEEDBACK_COALESCE_MS);
            hms_feedback_sent(&f, flush, now);
            sent++;
        }
    }
    ck_assert_int_eq(sent, 1000 / HMS_FEEDBACK_COALESCE_MS);
}
END_TEST

START_TEST(test_ask_for_a_reply_on_a_quiet_stream)
{
    hms_feedback_t f;
    hms_feedback_start(&f, 10000, 3000, T0);
    /* feedback_interval of silence, not the paced interval. */
    ck_assert(!hms_feedback_ask(&f, T0 + 9999));
    ck_assert(hms_feedback_ask(&f, T0 + 10000));
    hms_feedback_heard(&f, T0 + 9000);
    ck_assert_int_eq(f.last_recv_ms, T0 + 9000);
    ck_assert(!hms_feedback_ask(&f, T0 + 10000));
    ck_assert(hms_feedback_ask(&f, T0 + 19000));
}
END_TEST

START_TEST(test_write_position)
{
    ck_assert_uint_eq(hms_feedback_write_lsn(900, 500), 900);
    ck_assert_uint_eq(hms_feedback_write_lsn(500, 900), 900); /* a keepalive-only flush */
    ck_assert_uint_eq(hms_feedback_write_lsn(0, 0), 0);
}
END_TEST

/* A keepalive's WAL end becomes the flush position (and so prompts a
 * status) only when nothing is in flight. */
START_TEST(test_keepalive_moves_slot_only_when_idle)
{
    hms_tracker_t *t = hms_tracker_new(100);
    ck_assert_ptr_nonnull(t);
    hms_feedback_t f;
    hms_feedback_start(&f, 10000, 0, T0);
    hms_feedback_sent(&f, hms_tracker_flush_lsn(t), T0);

    /* An event awaits its confirm: the keepalive must not move the slot. */
    uint64_t seq;
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    ck_assert_int_eq(hms_tracker_add_event(t, &seq), HMS_OK);
    ck_assert_int_eq(hms_tracker_commit(t, 200, 1), HMS_OK);
    hms_tracker_keepalive(t, 500);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 100);
    ck_assert(!hms_feedback_due(&f, hms_tracker_flush_lsn(t), T0 + 100));

    /* Confirmed: the commit is flushed, then the idle keepalive counts. */
    hms_tracker_confirm(t, seq);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 200);
    ck_assert(hms_feedback_due(&f, hms_tracker_flush_lsn(t), T0 + 100));
    hms_feedback_sent(&f, 200, T0 + 100);
    hms_tracker_keepalive(t, 500);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 500);
    ck_assert(!hms_feedback_due(&f, 500, T0 + 110));
    ck_assert(hms_feedback_due(&f, 500, T0 + 120));

    /* An open transaction is in flight too, even without events yet. */
    hms_feedback_sent(&f, 500, T0 + 120);
    ck_assert_int_eq(hms_tracker_begin(t), HMS_OK);
    hms_tracker_keepalive(t, 800);
    ck_assert_uint_eq(hms_tracker_flush_lsn(t), 500);
    ck_assert(!hms_feedback_due(&f, hms_tracker_flush_lsn(t), T0 + 200));
    hms_tracker_free(t);
}
END_TEST

static Suite *feedback_suite(void)
{
    Suite *s = suite_create("feedback");
    TCase *tc = tcase_create("feedback");
    tcase_add_test(tc, test_due_at_once_after_start);
    tcase_add_test(tc, test_interval_when_nothing_moves);
    tcase_add_test(tc, test_advance_is_coalesced);
    tcase_add_test(tc, test_reply_requested_at_once);
    tcase_add_test(tc, test_paced_by_sender_timeout);
    tcase_add_test(tc, test_silent_reader_beats_sender_timeout);
    tcase_add_test(tc, test_ack_stream);
    tcase_add_test(tc, test_ask_for_a_reply_on_a_quiet_stream);
    tcase_add_test(tc, test_write_position);
    tcase_add_test(tc, test_keepalive_moves_slot_only_when_idle);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(feedback_suite)
