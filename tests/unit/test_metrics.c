/* test_metrics.c -- readiness and its reason, and the replica identity gauge
 * in the Prometheus rendering. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "core/metrics.h"
#include "core/pgoutput.h"
#include "hms_check.h"

/* Connected and streaming, the captured table FULL. */
static hms_metrics_t streaming(void)
{
    hms_metrics_t m;
    memset(&m, 0, sizeof m);
    m.pg_up = m.amqp_up = m.streaming = true;
    snprintf(m.identity_table, sizeof m.identity_table, "public.incidents");
    m.identity = 'f';
    return m;
}

static char *render(const hms_metrics_t *m, hms_buf_t *b)
{
    hms_buf_reset(b);
    ck_assert_int_eq(hms_metrics_render(m, "9.9.9", b), HMS_OK);
    return b->data;
}

START_TEST(test_ready_when_full)
{
    hms_metrics_t m = streaming();
    char why[400] = "stale";
    ck_assert(hms_metrics_ready(&m, why, sizeof why));
    ck_assert_str_eq(why, "");
    /* Before any session has looked at the table, nothing is known against it. */
    m.identity_table[0] = '\0';
    m.identity = 0;
    ck_assert(hms_metrics_ready(&m, why, sizeof why));
    ck_assert(hms_metrics_ready(&m, NULL, 0));
}
END_TEST

START_TEST(test_not_ready_without_full)
{
    hms_metrics_t m = streaming();
    char why[400];
    m.identity = 'd';
    ck_assert(!hms_metrics_ready(&m, why, sizeof why));
    ck_assert_str_eq(why, "public.incidents has REPLICA IDENTITY DEFAULT, not FULL: its deletes "
                          "reach subscribers only while the trigger hms_sync_old_row logs their "
                          "rows; run ALTER TABLE public.incidents REPLICA IDENTITY FULL;");
    m.identity = 'i';
    ck_assert(!hms_metrics_ready(&m, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "REPLICA IDENTITY USING INDEX, not FULL"));
    /* A connection down is said first: it is what stops everything. */
    m.pg_up = false;
    ck_assert(!hms_metrics_ready(&m, why, sizeof why));
    ck_assert_str_eq(why, "PostgreSQL replication connection down");
    /* A short buffer gets a cut, terminated reason. */
    m.pg_up = true;
    char small[8];
    ck_assert(!hms_metrics_ready(&m, small, sizeof small));
    ck_assert_str_eq(small, "public.");
}
END_TEST

START_TEST(test_gauge_rendering)
{
    hms_buf_t b = HMS_BUF_INIT;
    hms_metrics_t m = streaming();
    const char *text = render(&m, &b);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE hms_sync_replica_identity_full gauge\n"));
    ck_assert_ptr_nonnull(
        strstr(text, "\nhms_sync_replica_identity_full{table=\"public.incidents\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nhms_sync_up 1\n"));

    m.identity = 'd';
    text = render(&m, &b);
    ck_assert_ptr_nonnull(
        strstr(text, "\nhms_sync_replica_identity_full{table=\"public.incidents\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nhms_sync_up 0\n"));

    /* Unknown table: the family without a sample, rather than a guess. */
    m.identity_table[0] = '\0';
    m.identity = 0;
    text = render(&m, &b);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE hms_sync_replica_identity_full gauge\n"));
    ck_assert_ptr_null(strstr(text, "hms_sync_replica_identity_full{"));

    /* A label value is escaped, whatever the table is called. */
    snprintf(m.identity_table, sizeof m.identity_table, "public.\"odd\\name\"");
    m.identity = 'f';
    text = render(&m, &b);
    ck_assert_ptr_nonnull(
        strstr(text, "hms_sync_replica_identity_full{table=\"public.\\\"odd\\\\name\\\"\"} 1\n"));
    hms_buf_free(&b);
}
END_TEST

START_TEST(test_replident_names)
{
    ck_assert_str_eq(hms_pgo_replident_name('d'), "DEFAULT");
    ck_assert_str_eq(hms_pgo_replident_name('n'), "NOTHING");
    ck_assert_str_eq(hms_pgo_replident_name('f'), "FULL");
    ck_assert_str_eq(hms_pgo_replident_name('i'), "USING INDEX");
    ck_assert_str_eq(hms_pgo_replident_name(0), "unknown");
    ck_assert_str_eq(hms_pgo_replident_name('x'), "unknown");
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, test_ready_when_full);
    tcase_add_test(tc, test_not_ready_without_full);
    tcase_add_test(tc, test_gauge_rendering);
    tcase_add_test(tc, test_replident_names);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(metrics_suite)
