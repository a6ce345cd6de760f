/* test_metrics.c -- readiness and its reason, the replica identity, snapshot
 * and rejection figures in the Prometheus rendering, and the alert rules'
 * metrics. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "consumer/metrics.h"
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

/* The snapshot being served: its progress under its request id, none while
 * idle; the row counters always. */
START_TEST(test_snapshot_rendering)
{
    hms_metrics_t m = streaming();
    hms_buf_t b = HMS_BUF_INIT;
    const char *out = render(&m, &b);
    ck_assert_ptr_null(strstr(out, "hms_sync_snapshot_rows_done{"));
    ck_assert_ptr_nonnull(strstr(out, "\nhms_sync_snapshot_rows_published_total 0\n"));
    snprintf(m.snapshot_id, sizeof m.snapshot_id, "snap-1\"x");
    m.snapshot_rows_done = 2048;
    m.snapshot_rows_total = -1; /* not counted yet */
    m.snapshot_rows_published = 3000;
    m.snapshot_rows_superseded = 7;
    out = render(&m, &b);
    ck_assert_ptr_nonnull(
        strstr(out, "\nhms_sync_snapshot_rows_done{snapshot=\"snap-1\\\"x\"} 2048\n"));
    ck_assert_ptr_null(strstr(out, "hms_sync_snapshot_rows_total{"));
    m.snapshot_rows_total = 50000;
    out = render(&m, &b);
    ck_assert_ptr_nonnull(
        strstr(out, "\nhms_sync_snapshot_rows_total{snapshot=\"snap-1\\\"x\"} 50000\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nhms_sync_snapshot_rows_published_total 3000\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nhms_sync_snapshot_rows_superseded_total 7\n"));
    hms_buf_free(&b);
}
END_TEST

START_TEST(test_rejected_rendering)
{
    hms_metrics_t m = streaming();
    hms_buf_t b = HMS_BUF_INIT;
    m.rejected[HMS_REJECT_INVALID] = 2;
    m.rejected[HMS_REJECT_OVERSIZE] = 1;
    const char *out = render(&m, &b);
    ck_assert_ptr_nonnull(strstr(out, "# TYPE hms_sync_changes_rejected_total counter\n"));
    /* Every reason is rendered from the start, so increase() sees the first. */
    ck_assert_ptr_nonnull(strstr(out, "\nhms_sync_changes_rejected_total{reason=\"invalid\"} 2\n"));
    ck_assert_ptr_nonnull(
        strstr(out, "\nhms_sync_changes_rejected_total{reason=\"unencodable\"} 0\n"));
    ck_assert_ptr_nonnull(
        strstr(out, "\nhms_sync_changes_rejected_total{reason=\"oversize\"} 1\n"));
    hms_buf_free(&b);
}
END_TEST

/* Every hms_sync_ metric an alert rule of deploy/ uses is one the connector
 * or the subscriber renders: a renamed metric would leave its alert silent
 * forever. */
START_TEST(test_alert_rules_use_rendered_metrics)
{
    hms_metrics_t m = streaming();
    hms_buf_t b = HMS_BUF_INIT;
    render(&m, &b);
    hms_consumer_stats_t cs;
    memset(&cs, 0, sizeof(cs));
    cs.queue_messages = 0; /* rendered once known */
    ck_assert_int_eq(hms_cmetrics_render(&cs, "test", &b), HMS_OK);
    const char *out = b.data;
    FILE *f = fopen(HMS_TEST_DATA "/../../deploy/prometheus/alerts.yml", "r");
    ck_assert_ptr_nonnull(f);
    char line[2048];
    int used = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "expr:") == NULL)
            continue;
        for (const char *p = strstr(line, "hms_sync_"); p != NULL; p = strstr(p + 1, "hms_sync_")) {
            if (p > line && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z')))
                continue; /* pg_... exporter names that merely contain it */
            size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
            char want[200];
            snprintf(want, sizeof want, "# TYPE %.*s ", (int)n, p);
            ck_assert_msg(strstr(out, want) != NULL, "alerts.yml uses %.*s, which is not rendered",
                          (int)n, p);
            used++;
        }
    }
    fclose(f);
    ck_assert_int_ge(used, 8);
    ck_assert_ptr_nonnull(strstr(out, "# TYPE hms_sync_changes_rejected_total "));
    hms_buf_free(&b);
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
    tcase_add_test(tc, test_snapshot_rendering);
    tcase_add_test(tc, test_rejected_rendering);
    tcase_add_test(tc, test_alert_rules_use_rendered_metrics);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(metrics_suite)
