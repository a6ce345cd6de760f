/* test_resume.c -- the resume decision: where a (re)connecting session
 * streams from, and which slots it refuses. */
#include "core/resume.h"

#include <check.h>
#include <stdint.h>

#include "hms_check.h"

typedef struct {
    hms_resume_verdict_t verdict;
    uint64_t request, start;
} outcome_t;

typedef struct {
    const char *why;
    hms_resume_facts_t f;
    outcome_t want;
} case_t;

/* A first start and a reconnect to the same source, with the slot there. */
#define FIRST .first = true, .may_create = true, .slot_exists = true
#define AGAIN .same_source = true, .slot_exists = true

static const case_t cases[] = {
    {"first: streams from the slot's own position",
     {FIRST, .slot_lsn = 500},
     {HMS_RESUME_STREAM, 0, 500}},
    {"first: a progress row ahead weighs nothing (nothing of ours yet)",
     {FIRST, .slot_lsn = 500, .remembered = true, .progress_lsn = 900},
     {HMS_RESUME_STREAM, 0, 500}},
    {"first: the source check is for reconnects",
     {FIRST, .slot_lsn = 500, .same_source = false},
     {HMS_RESUME_STREAM, 0, 500}},
    {"first: a never-used slot is created",
     {.first = true, .may_create = true},
     {HMS_RESUME_CREATE, 0, 0}},
    {"first: once created it streams from where it begins",
     {FIRST, .slot_lsn = 0x16B3748},
     {HMS_RESUME_STREAM, 0, 0x16B3748}},
    {"first: missing but remembered: someone dropped it",
     {.first = true, .may_create = true, .remembered = true, .progress_lsn = 700},
     {HMS_RESUME_DROPPED, 0, 0}},
    {"first: a row at 0/0 still remembers the slot",
     {.first = true, .may_create = true, .remembered = true},
     {HMS_RESUME_DROPPED, 0, 0}},
    {"first: missing and not to be created", {.first = true}, {HMS_RESUME_VANISHED, 0, 0}},
    {"again: missing: it vanished while we ran",
     {.same_source = true, .ours = 100},
     {HMS_RESUME_VANISHED, 0, 0}},
    {"again: missing comes before another source",
     {.ours = 100, .remembered = true, .progress_lsn = 100},
     {HMS_RESUME_VANISHED, 0, 0}},
    {"again: the slot where we left it",
     {AGAIN, .ours = 1000, .slot_lsn = 1000},
     {HMS_RESUME_STREAM, 1000, 1000}},
    {"again: our own progress row changes nothing",
     {AGAIN, .ours = 1000, .slot_lsn = 1000, .remembered = true, .progress_lsn = 1000},
     {HMS_RESUME_STREAM, 1000, 1000}},
    {"again: behind us after a crash: PostgreSQL skips what we confirmed",
     {AGAIN, .ours = 1000, .slot_lsn = 400},
     {HMS_RESUME_STREAM, 1000, 1000}},
    {"again: another system or database",
     {.slot_exists = true, .ours = 1000, .slot_lsn = 1000},
     {HMS_RESUME_OTHER_SOURCE, 0, 0}},
    {"again: another source comes before the position",
     {.slot_exists = true,
      .ours = 1000,
      .slot_lsn = 2000,
      .remembered = true,
      .progress_lsn = 2000},
     {HMS_RESUME_OTHER_SOURCE, 0, 0}},
    {"again: ahead of us with no progress row",
     {AGAIN, .ours = 1000, .slot_lsn = 1001},
     {HMS_RESUME_SLOT_AHEAD, 0, 0}},
    {"again: ahead, and the row is ours (not past us)",
     {AGAIN, .ours = 1000, .slot_lsn = 1001, .remembered = true, .progress_lsn = 1000},
     {HMS_RESUME_SLOT_AHEAD, 0, 0}},
    {"again: ahead, and the row is older still",
     {AGAIN, .ours = 1000, .slot_lsn = 3000, .remembered = true, .progress_lsn = 10},
     {HMS_RESUME_SLOT_AHEAD, 0, 0}},
    {"again: a standby confirmed past us: carry on from the slot",
     {AGAIN, .ours = 1000, .slot_lsn = 3000, .remembered = true, .progress_lsn = 1001},
     {HMS_RESUME_TAKEOVER, 1000, 3000}},
    {"again: the row may lag the slot (written once a second)",
     {AGAIN, .ours = 1000, .slot_lsn = 3000, .remembered = true, .progress_lsn = 2000},
     {HMS_RESUME_TAKEOVER, 1000, 3000}},
    /* on_slot_loss = resnapshot: only a missing slot changes. */
    {"resnapshot: a never-used slot is still only created",
     {.first = true, .may_create = true, .resnapshot = true},
     {HMS_RESUME_CREATE, 0, 0}},
    {"resnapshot: missing but remembered at start (failover while stopped)",
     {.first = true,
      .may_create = true,
      .resnapshot = true,
      .remembered = true,
      .progress_lsn = 700},
     {HMS_RESUME_RECREATE, 0, 0}},
    {"resnapshot: vanished while we ran (failover)",
     {.same_source = true, .resnapshot = true, .ours = 100},
     {HMS_RESUME_RECREATE, 0, 0}},
    {"resnapshot: never for another system or database",
     {.resnapshot = true, .ours = 100, .remembered = true, .progress_lsn = 100},
     {HMS_RESUME_OTHER_SOURCE, 0, 0}},
    {"resnapshot: a slot that is there is weighed as always",
     {AGAIN, .resnapshot = true, .ours = 1000, .slot_lsn = 1001},
     {HMS_RESUME_SLOT_AHEAD, 0, 0}},
};

START_TEST(test_cases)
{
    const case_t *c = &cases[_i];
    uint64_t request = 0xdeadbeef, start = 0xdeadbeef; /* every verdict sets both */
    hms_resume_verdict_t v = hms_resume_decide(&c->f, &request, &start);
    ck_assert_msg(v == c->want.verdict, "%s: verdict %d, want %d", c->why, v, c->want.verdict);
    ck_assert_msg(request == c->want.request && start == c->want.start,
                  "%s: request %llu start %llu, want %llu %llu", c->why,
                  (unsigned long long)request, (unsigned long long)start,
                  (unsigned long long)c->want.request, (unsigned long long)c->want.start);
}
END_TEST

START_TEST(test_refused)
{
    ck_assert(!hms_resume_refused(HMS_RESUME_STREAM));
    ck_assert(!hms_resume_refused(HMS_RESUME_CREATE));
    ck_assert(!hms_resume_refused(HMS_RESUME_TAKEOVER));
    ck_assert(!hms_resume_refused(HMS_RESUME_RECREATE));
    ck_assert(hms_resume_refused(HMS_RESUME_VANISHED));
    ck_assert(hms_resume_refused(HMS_RESUME_DROPPED));
    ck_assert(hms_resume_refused(HMS_RESUME_OTHER_SOURCE));
    ck_assert(hms_resume_refused(HMS_RESUME_SLOT_AHEAD));
}
END_TEST

/* Every combination of the facts over a few positions: the rules that keep
 * "nothing lost" whatever the slot looks like. */
START_TEST(test_invariants)
{
    static const uint64_t lsns[] = {0, 100, 200, 300};
    enum { N = sizeof(lsns) / sizeof(lsns[0]) };
    int combos = 0;
    for (int bits = 0; bits < 64; bits++)
        for (int o = 0; o < N; o++)
            for (int s = 0; s < N; s++)
                for (int p = 0; p < N; p++) {
                    hms_resume_facts_t f = {.first = bits & 1,
                                            .may_create = bits & 2,
                                            .same_source = bits & 4,
                                            .slot_exists = bits & 8,
                                            .remembered = bits & 16,
                                            .resnapshot = bits & 32,
                                            .ours = lsns[o],
                                            .slot_lsn = lsns[s],
                                            .progress_lsn = (bits & 16) ? lsns[p] : 0};
                    uint64_t req = 0xdeadbeef, start = 0xdeadbeef;
                    hms_resume_verdict_t v = hms_resume_decide(&f, &req, &start);
                    combos++;
                    if (!f.slot_exists) {
                        ck_assert(v == HMS_RESUME_CREATE || v == HMS_RESUME_DROPPED ||
                                  v == HMS_RESUME_VANISHED || v == HMS_RESUME_RECREATE ||
                                  v == HMS_RESUME_OTHER_SOURCE);
                        ck_assert(v != HMS_RESUME_CREATE || (f.may_create && !f.remembered));
                        /* A lost slot is made again only when asked to, and
                         * only on the stream's own system and database. */
                        ck_assert(v != HMS_RESUME_RECREATE ||
                                  (f.resnapshot && (f.first || f.same_source)));
                        ck_assert(v != HMS_RESUME_OTHER_SOURCE || f.resnapshot);
                    } else {
                        ck_assert(v != HMS_RESUME_RECREATE);
                    }
                    if (hms_resume_refused(v) || v == HMS_RESUME_CREATE ||
                        v == HMS_RESUME_RECREATE) {
                        ck_assert_uint_eq(req, 0);
                        ck_assert_uint_eq(start, 0);
                        continue;
                    }
                    /* PostgreSQL starts a logical slot at the later of the
                     * request and its confirmed position: start says so. */
                    uint64_t server = req > f.slot_lsn ? req : f.slot_lsn;
                    ck_assert_uint_eq(start, server);
                    if (f.first)
                        continue;
                    ck_assert(f.same_source);
                    /* Never before our position (that is only duplicates,
                     * but the request is ours), and past it only when
                     * another hms-sync provably confirmed past it. */
                    ck_assert_uint_eq(req, f.ours);
                    ck_assert_uint_ge(start, f.ours);
                    if (start > f.ours)
                        ck_assert(v == HMS_RESUME_TAKEOVER && f.remembered &&
                                  f.progress_lsn > f.ours);
                    else
                        ck_assert_int_eq(v, HMS_RESUME_STREAM);
                }
    ck_assert_int_eq(combos, 64 * N * N * N);
}
END_TEST

static Suite *resume_suite(void)
{
    Suite *s = suite_create("resume");
    TCase *tc = tcase_create("resume");
    tcase_add_loop_test(tc, test_cases, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_invariants);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(resume_suite)
