/* test_cmetrics.c -- the subscriber's /metrics text: every outcome, a
 * cumulative latency histogram whose +Inf bucket equals its count, the
 * queue label escaped, the depth left out while unknown, and /readyz's
 * reasons. */
#include <check.h>
#include <string.h>

#include "consumer/metrics.h"
#include "hms_check.h"

static void has(const char *text, const char *line)
{
    ck_assert_msg(strstr(text, line) != NULL, "no \"%s\" in:\n%s", line, text);
}

START_TEST(render_all)
{
    hms_consumer_stats_t s;
    memset(&s, 0, sizeof(s));
    strcpy(s.queue, "ware\"house");
    s.n.applied = 7;
    s.n.stale = 2;
    s.n.duplicate = 1;
    s.n.echo = 3;
    s.n.dead_lettered = 4;
    s.n.retried = 5;
    s.batches = 6;
    s.queue_messages = -1;
    s.pg_up = s.amqp_up = true;
    hms_cmetrics_observe(&s, 0.001); /* first bucket */
    hms_cmetrics_observe(&s, 0.005); /* a bound belongs to its own bucket */
    hms_cmetrics_observe(&s, 0.2);
    hms_cmetrics_observe(&s, 1000); /* above every bound */
    hms_buf_t b = HMS_BUF_INIT;
    ck_assert_int_eq(hms_cmetrics_render(&s, "1.2.3", &b), HMS_OK);
    const char *t = b.data;
    has(t, "hms_sync_consumer_events_total{queue=\"ware\\\"house\",outcome=\"applied\"} 7\n");
    has(t, "{queue=\"ware\\\"house\",outcome=\"stale\"} 2\n");
    has(t, "{queue=\"ware\\\"house\",outcome=\"duplicate\"} 1\n");
    has(t, "{queue=\"ware\\\"house\",outcome=\"echo\"} 3\n");
    has(t, "{queue=\"ware\\\"house\",outcome=\"dead_lettered\"} 4\n");
    has(t, "hms_sync_consumer_retries_total{queue=\"ware\\\"house\"} 5\n");
    has(t, "hms_sync_consumer_batches_total{queue=\"ware\\\"house\"} 6\n");
    has(t, "# TYPE hms_sync_consumer_event_latency_seconds histogram\n");
    has(t, "_bucket{queue=\"ware\\\"house\",le=\"0.005\"} 2\n");
    has(t, "_bucket{queue=\"ware\\\"house\",le=\"0.1\"} 2\n");
    has(t, "_bucket{queue=\"ware\\\"house\",le=\"0.25\"} 3\n");
    has(t, "_bucket{queue=\"ware\\\"house\",le=\"300\"} 3\n");
    has(t, "_bucket{queue=\"ware\\\"house\",le=\"+Inf\"} 4\n");
    has(t, "hms_sync_consumer_event_latency_seconds_count{queue=\"ware\\\"house\"} 4\n");
    has(t, "hms_sync_consumer_event_latency_seconds_sum{queue=\"ware\\\"house\"} 1000.206");
    ck_assert_ptr_null(strstr(t, "hms_sync_consumer_queue_messages"));
    has(t, "hms_sync_consumer_up{queue=\"ware\\\"house\"} 1\n");
    has(t, "hms_sync_build_info{version=\"1.2.3\"} 1\n");

    s.queue_messages = 12;
    hms_buf_reset(&b);
    hms_cmetrics_render(&s, "1.2.3", &b);
    has(b.data, "hms_sync_consumer_queue_messages{queue=\"ware\\\"house\"} 12\n");
    hms_buf_free(&b);
}
END_TEST

START_TEST(ready_reasons)
{
    hms_consumer_stats_t s;
    memset(&s, 0, sizeof(s));
    char why[64];
    ck_assert(!hms_cmetrics_ready(&s, why, sizeof(why)));
    ck_assert_str_eq(why, "PostgreSQL session down");
    s.pg_up = true;
    ck_assert(!hms_cmetrics_ready(&s, why, sizeof(why)));
    ck_assert_str_eq(why, "RabbitMQ connection down");
    s.amqp_up = true;
    ck_assert(hms_cmetrics_ready(&s, why, sizeof(why)));
    ck_assert_str_eq(why, "");
    ck_assert(hms_cmetrics_ready(&s, NULL, 0));
}
END_TEST

static Suite *cmetrics_suite(void)
{
    Suite *s = suite_create("cmetrics");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, render_all);
    tcase_add_test(tc, ready_reasons);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(cmetrics_suite)
