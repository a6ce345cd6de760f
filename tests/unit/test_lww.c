/* test_lww.c -- last-write-wins: the order, the outcome table, tombstones, and order-independence.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/lww.h"
#include "hms_check.h"

#define K(v, t, o) ((hms_lww_key_t){(v), (t), (o)})

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static unsigned rnd_below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

START_TEST(test_compare_order)
{
    hms_lww_key_t a = K(2, 100, "a"), b = K(1, 900, "z");
    ck_assert_int_eq(hms_lww_compare(&a, &b), 1); /* version beats a later time */
    ck_assert_int_eq(hms_lww_compare(&b, &a), -1);
    a = K(3, 101, "a");
    b = K(3, 100, "z");
    ck_assert_int_eq(hms_lww_compare(&a, &b), 1); /* time beats a greater origin */
    a = K(3, 100, "b");
    b = K(3, 100, "a");
    ck_assert_int_eq(hms_lww_compare(&a, &b), 1);
    b = K(3, 100, "b");
    ck_assert_int_eq(hms_lww_compare(&a, &b), 0);
    /* Negative and extreme values order as integers. */
    a = K(INT64_MIN, -5, "");
    b = K(INT64_MAX, -6, "");
    ck_assert_int_eq(hms_lww_compare(&a, &b), -1);
    a = K(0, -5, "");
    b = K(0, -6, "");
    ck_assert_int_eq(hms_lww_compare(&a, &b), 1);
}
END_TEST

START_TEST(test_compare_origin_bytewise)
{
    /* "C" collation: bytes, not a language's idea of order. */
    static const struct {
        const char *lo, *hi;
    } pairs[] = {
        {"", "a"},
        {"Z", "a"},
        {"B", "a"},
        {"a", "ab"},
        {"casemgmt", "hms-ehr"},
        {"hms-ehr", "hms-ehr2"},
        {"z", "\xc3\xa9"}, /* z < é */
        {"E", "e"},
        {"e\xcc\x81", "\xc3\xa9"}, /* e+combining < é */
        {"hms-ehr", "hms_ehr"},    /* '-' 0x2d < '_' 0x5f */
        {"\x7f", "\xc2\x80"},      /* bytes are unsigned */
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        hms_lww_key_t lo = K(1, 1, pairs[i].lo), hi = K(1, 1, pairs[i].hi);
        ck_assert_msg(hms_lww_compare(&lo, &hi) == -1, "pair %zu: expected lo < hi", i);
        ck_assert_msg(hms_lww_compare(&hi, &lo) == 1, "pair %zu: expected hi > lo", i);
    }
}
END_TEST

START_TEST(test_rules_table)
{
    static const struct {
        hms_lww_key_t in;
        bool del;
        hms_lww_state_t state;
        hms_lww_key_t cur;
        hms_lww_outcome_t want;
    } rows[] = {
        /* nothing held: anything applies, a delete too (a tombstone is born) */
        {{1, 10, "a"}, false, HMS_LWW_NONE, {0, 0, ""}, HMS_LWW_APPLIED},
        {{1, 10, "a"}, true, HMS_LWW_NONE, {0, 0, ""}, HMS_LWW_APPLIED},
        /* live row */
        {{2, 10, "a"}, false, HMS_LWW_LIVE, {1, 10, "a"}, HMS_LWW_APPLIED},
        {{1, 10, "a"}, false, HMS_LWW_LIVE, {2, 10, "a"}, HMS_LWW_STALE},
        {{1, 10, "a"}, false, HMS_LWW_LIVE, {1, 10, "a"}, HMS_LWW_DUPLICATE},
        {{1, 11, "a"}, false, HMS_LWW_LIVE, {1, 10, "a"}, HMS_LWW_APPLIED},
        {{1, 10, "b"}, false, HMS_LWW_LIVE, {1, 10, "a"}, HMS_LWW_APPLIED},
        {{1, 10, "a"}, false, HMS_LWW_LIVE, {1, 10, "b"}, HMS_LWW_STALE},
        {{1, 10, "a"}, true, HMS_LWW_LIVE, {1, 10, "a"}, HMS_LWW_APPLIED},
        {{2, 10, "a"}, true, HMS_LWW_LIVE, {1, 10, "a"}, HMS_LWW_APPLIED},
        {{1, 9, "a"}, true, HMS_LWW_LIVE, {1, 10, "a"}, HMS_LWW_STALE},
        /* tombstone */
        {{1, 10, "a"}, false, HMS_LWW_TOMBSTONE, {1, 10, "a"}, HMS_LWW_STALE},
        {{1, 9, "a"}, false, HMS_LWW_TOMBSTONE, {1, 10, "a"}, HMS_LWW_STALE},
        {{1, 10, "a"}, true, HMS_LWW_TOMBSTONE, {1, 10, "a"}, HMS_LWW_DUPLICATE},
        {{1, 9, "a"}, true, HMS_LWW_TOMBSTONE, {1, 10, "a"}, HMS_LWW_STALE},
        {{2, 1, "a"}, true, HMS_LWW_TOMBSTONE, {1, 10, "a"}, HMS_LWW_APPLIED},
        /* only a strictly greater write replaces a tombstone */
        {{2, 1, "a"}, false, HMS_LWW_TOMBSTONE, {1, 10, "a"}, HMS_LWW_APPLIED},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        hms_lww_outcome_t got = hms_lww_decide(&rows[i].in, rows[i].del, rows[i].state,
                                               rows[i].state == HMS_LWW_NONE ? NULL : &rows[i].cur);
        ck_assert_msg(got == rows[i].want, "row %zu: got %s, want %s", i, hms_lww_outcome_name(got),
                      hms_lww_outcome_name(rows[i].want));
    }
}
END_TEST

START_TEST(test_outcome_names)
{
    ck_assert_str_eq(hms_lww_outcome_name(HMS_LWW_APPLIED), "applied");
    ck_assert_str_eq(hms_lww_outcome_name(HMS_LWW_STALE), "stale");
    ck_assert_str_eq(hms_lww_outcome_name(HMS_LWW_DUPLICATE), "duplicate");
    ck_assert_str_eq(hms_lww_outcome_name((hms_lww_outcome_t)42), "unknown");
}
END_TEST

/* A tombstone stays whatever stream of not-newer updates follows it. */
START_TEST(test_tombstone_not_resurrected)
{
    static const char *origins[] = {"", "a", "hms-ehr", "casemgmt", "zz"};
    hms_lww_key_t tomb = K(5, 500, "hms-ehr");
    for (int i = 0; i < 5000; i++) {
        hms_lww_key_t late = K(rnd_below(6), 497 + (int64_t)rnd_below(4), origins[rnd_below(5)]);
        if (hms_lww_compare(&late, &tomb) > 0)
            continue;
        ck_assert_int_eq(hms_lww_decide(&late, false, HMS_LWW_TOMBSTONE, &tomb), HMS_LWW_STALE);
    }
}
END_TEST

typedef struct {
    hms_lww_key_t key;
    bool del;
} ev_t;

typedef struct {
    hms_lww_state_t state;
    ev_t held; /* meaningful unless state is NONE */
} replica_t;

static hms_lww_outcome_t apply_ev(replica_t *r, const ev_t *e)
{
    hms_lww_outcome_t o = hms_lww_decide(&e->key, e->del, r->state, &r->held.key);
    if (o == HMS_LWW_APPLIED) {
        r->state = e->del ? HMS_LWW_TOMBSTONE : HMS_LWW_LIVE;
        r->held = *e;
    }
    return o;
}

/* The total order the rules induce: key, then a delete after its update. */
static int ev_cmp(const void *pa, const void *pb)
{
    const ev_t *a = pa, *b = pb;
    int c = hms_lww_compare(&a->key, &b->key);
    if (c != 0)
        return c;
    return (int)a->del - (int)b->del;
}

/* Random events of one subject, with duplicates, in any order, end in the
 * same state as when applied in the LWW order, i.e. the greatest event. */
START_TEST(test_any_order_converges)
{
    static const char *origins[] = {"hms-ehr", "casemgmt", "Z", "a", "\xc3\xa9"};
    enum { MAXN = 14, TRIALS = 20000 };
    long applied = 0, stale = 0, dup = 0;
    for (int t = 0; t < TRIALS; t++) {
        ev_t evs[MAXN], sorted[MAXN];
        int n = 1 + (int)rnd_below(MAXN);
        for (int i = 0; i < n; i++) {
            if (i > 0 && rnd_below(4) == 0) {
                evs[i] = evs[rnd_below((unsigned)i)]; /* redelivery */
                continue;
            }
            evs[i].key =
                K(1 + (int64_t)rnd_below(4), 1000 + (int64_t)rnd_below(3), origins[rnd_below(5)]);
            evs[i].del = rnd_below(4) == 0;
        }
        memcpy(sorted, evs, sizeof(ev_t) * (size_t)n);
        qsort(sorted, (size_t)n, sizeof(ev_t), ev_cmp);
        replica_t in_order = {HMS_LWW_NONE, {{0, 0, ""}, false}};
        for (int i = 0; i < n; i++)
            apply_ev(&in_order, &sorted[i]);
        const ev_t *max = &sorted[n - 1];
        ck_assert(in_order.state == (max->del ? HMS_LWW_TOMBSTONE : HMS_LWW_LIVE));
        ck_assert_int_eq(ev_cmp(&in_order.held, max), 0);

        for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)rnd_below((unsigned)i + 1);
            ev_t tmp = evs[i];
            evs[i] = evs[j];
            evs[j] = tmp;
        }
        replica_t r = {HMS_LWW_NONE, {{0, 0, ""}, false}};
        for (int i = 0; i < n; i++) {
            ev_t before = r.held;
            hms_lww_state_t before_state = r.state;
            hms_lww_outcome_t o = apply_ev(&r, &evs[i]);
            /* What is held only ever moves up the order. */
            if (o == HMS_LWW_APPLIED && before_state != HMS_LWW_NONE)
                ck_assert_int_gt(ev_cmp(&r.held, &before), 0);
            applied += o == HMS_LWW_APPLIED;
            stale += o == HMS_LWW_STALE;
            dup += o == HMS_LWW_DUPLICATE;
        }
        ck_assert_int_eq(r.state, in_order.state);
        ck_assert_int_eq(ev_cmp(&r.held, &in_order.held), 0);
    }
    /* The domains are small on purpose: every outcome must occur often. */
    ck_assert_int_gt(applied, TRIALS / 2);
    ck_assert_int_gt(stale, TRIALS / 2);
    ck_assert_int_gt(dup, TRIALS / 4);
}
END_TEST

START_TEST(test_parse_time_known)
{
    int64_t us;
    ck_assert(hms_lww_parse_time("1970-01-01T00:00:00.000000Z", &us));
    ck_assert_int_eq(us, 0);
    ck_assert(hms_lww_parse_time("2026-11-26T14:18:01.791510Z", &us));
    ck_assert_int_eq(us, INT64_C(1795702681791510));
    ck_assert(hms_lww_parse_time("1969-12-31T23:59:59.999999Z", &us));
    ck_assert_int_eq(us, -1);
    ck_assert(hms_lww_parse_time("2024-02-29T00:00:00.000000Z", &us));
    ck_assert(hms_lww_parse_time("2000-02-29T23:59:59.000001Z", &us));
}
END_TEST

START_TEST(test_parse_time_bad)
{
    static const char *bad[] = {
        "",
        "2026-11-26T14:18:01.79151Z",   /* five fraction digits */
        "2026-11-26T14:18:01.7915100Z", /* seven */
        "2026-11-26T14:18:01Z",
        "2026-11-26 14:18:01.791510Z",
        "2026-11-26T14:18:01.791510+00:00",
        "2026-11-26T14:18:01.791510z",
        "2026-11-26T14:18:01.791510Z ",
        "2026-02-29T00:00:00.000000Z", /* not a leap year */
        "1900-02-29T00:00:00.000000Z",
        "2026-13-01T00:00:00.000000Z",
        "2026-00-01T00:00:00.000000Z",
        "2026-04-31T00:00:00.000000Z",
        "2026-11-00T00:00:00.000000Z",
        "2026-11-26T24:00:00.000000Z",
        "2026-11-26T23:60:00.000000Z",
        "2026-11-26T23:59:60.000000Z",
        "2026-1x-26T14:18:01.791510Z",
        "-026-11-26T14:18:01.791510Z",
    };
    int64_t us = 77;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!hms_lww_parse_time(bad[i], &us), "accepted \"%s\"", bad[i]);
    ck_assert_int_eq(us, 77);
}
END_TEST

/* Against the C library's calendar, over years 1..9999. */
START_TEST(test_parse_time_round_trip)
{
    for (int i = 0; i < 20000; i++) {
        time_t secs = (time_t)(-62135596800LL + (int64_t)(rnd() % 315537897600ULL));
        int frac = (int)rnd_below(1000000);
        struct tm tm;
        ck_assert_ptr_nonnull(gmtime_r(&secs, &tm));
        char s[96];
        snprintf(s, sizeof(s), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
        int64_t us;
        ck_assert_msg(hms_lww_parse_time(s, &us), "rejected %s", s);
        ck_assert_int_eq(us, (int64_t)secs * 1000000 + frac);
    }
}
END_TEST

static Suite *lww_suite(void)
{
    Suite *s = suite_create("lww");
    TCase *tc = tcase_create("lww");
    tcase_add_test(tc, test_compare_order);
    tcase_add_test(tc, test_compare_origin_bytewise);
    tcase_add_test(tc, test_rules_table);
    tcase_add_test(tc, test_outcome_names);
    tcase_add_test(tc, test_tombstone_not_resurrected);
    tcase_add_test(tc, test_any_order_converges);
    tcase_add_test(tc, test_parse_time_known);
    tcase_add_test(tc, test_parse_time_bad);
    tcase_add_test(tc, test_parse_time_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(lww_suite)
