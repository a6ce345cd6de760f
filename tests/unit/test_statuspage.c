/* test_statuspage.c -- the status page's pieces: the trend ring (bounded,
 * one sample per interval, rates of counters), the page (self-contained,
 * escaped, figures findable by id), the SVG chart, and the trend's JSON. */
#include <check.h>
#include <json-c/json.h>
#include <string.h>

#include "core/statuspage.h"
#include "core/trend.h"
#include "hms_check.h"

static hms_trend_t trend;
static hms_buf_t out;

static void setup(void)
{
    hms_trend_init(&trend, 10000);
    memset(&out, 0, sizeof out);
}

static void teardown(void)
{
    hms_buf_free(&out);
}

static void add(int64_t t_ms, double a, double b)
{
    double v[HMS_TREND_SERIES] = {a, b, 0, 0};
    hms_trend_add(&trend, t_ms, v);
}

START_TEST(trend_takes_one_sample_per_interval)
{
    double v[HMS_TREND_SERIES] = {1, 2, 3, 4};
    ck_assert(hms_trend_add(&trend, 5000, v));
    ck_assert(!hms_trend_add(&trend, 14999, v)); /* too soon */
    ck_assert(hms_trend_add(&trend, 15000, v));
    ck_assert_uint_eq(hms_trend_len(&trend), 2);
    ck_assert_int_eq(hms_trend_at(&trend, 1)->t_ms, 15000);
    ck_assert(hms_trend_at(&trend, 1)->v[3] == 4);
}
END_TEST

START_TEST(trend_keeps_the_last_hour_and_no_more)
{
    /* Two hours of samples: the ring holds the newest hour, oldest first. */
    for (int i = 0; i < 2 * HMS_TREND_POINTS; i++)
        add((int64_t)i * 10000, i, 0);
    ck_assert_uint_eq(hms_trend_len(&trend), HMS_TREND_POINTS);
    ck_assert(hms_trend_at(&trend, 0)->v[0] == HMS_TREND_POINTS);
    ck_assert(hms_trend_at(&trend, HMS_TREND_POINTS - 1)->v[0] == 2 * HMS_TREND_POINTS - 1);
    ck_assert_uint_le(sizeof(hms_trend_t), 64 * 1024); /* flat, and small */
}
END_TEST

START_TEST(trend_rate_of_a_counter)
{
    add(0, 100, 0);
    add(10000, 600, 0);
    add(20000, 50, 0); /* the counter went back: a restart, not a negative rate */
    ck_assert(hms_trend_rate(&trend, 1, 0) == 50.0);
    ck_assert(hms_trend_rate(&trend, 2, 0) == 0.0);
}
END_TEST

static const hms_page_chart_t charts[] = {
    {"Lag", "seconds", 1, false},
    {"Published", "events/s", 0, true},
};

START_TEST(page_is_self_contained_and_escaped)
{
    add(0, 0, 1.5);
    add(10000, 2000, 3);
    hms_page_row_t rows[2] = {{"Slot", "hms_sync", false}, {"Last error", "<b>&\"'", true}};
    hms_page_t pg = {.title = "hms-sync run",
                     .headline = "not ready: RabbitMQ connection down",
                     .ok = false,
                     .rows = rows,
                     .nrows = 2,
                     .charts = charts,
                     .ncharts = 2,
                     .trend = &trend,
                     .refresh_s = 5};
    ck_assert_int_eq(hms_page_render(&pg, &out), HMS_OK);
    const char *html = out.data;
    ck_assert_ptr_nonnull(strstr(html, "<meta http-equiv=\"refresh\" content=\"5\">"));
    ck_assert_ptr_nonnull(strstr(html, "<p id=\"headline\" class=\"bad\">not ready: RabbitMQ"));
    ck_assert_ptr_nonnull(
        strstr(html, "<tr id=\"row-slot\"><th>Slot</th><td class=\"v\">hms_sync"));
    ck_assert_ptr_nonnull(strstr(html,
                                 "<tr id=\"row-last_error\" class=\"warn\"><th>Last error</th><td "
                                 "class=\"v\">&lt;b&gt;&amp;&quot;&#39;</td>"));
    ck_assert_ptr_null(strstr(html, "<b>&"));
    ck_assert_ptr_nonnull(
        strstr(html, "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"chart-lag\""));
    ck_assert_ptr_nonnull(strstr(html, "id=\"chart-published\""));
    /* Nothing from anywhere else: no script, no external reference but the
     * SVG namespace (an identifier, never fetched). */
    ck_assert_ptr_null(strstr(html, "<script"));
    ck_assert_ptr_null(strstr(html, "<link"));
    ck_assert_ptr_null(strstr(html, "src="));
    const char *p = html;
    while ((p = strstr(p, "http")) != NULL) {
        ck_assert_msg(strncmp(p, "http-equiv", 10) == 0 ||
                          strncmp(p, "http://www.w3.org/2000/svg", 26) == 0,
                      "an outside reference: %.60s", p);
        p++;
    }
}
END_TEST

START_TEST(chart_draws_the_hour_newest_at_the_right)
{
    add(0, 0, 0);
    add(1800 * 1000, 0, 5);  /* half an hour later */
    add(3600 * 1000, 0, 10); /* the newest, an hour after the first */
    ck_assert_int_eq(hms_page_chart(&trend, &charts[0], &out), HMS_OK);
    /* x from 56 (an hour ago) to 632 (now), y from 146 (0) to 28 (the max). */
    ck_assert_msg(strstr(out.data, "points=\"56.0,146.0 344.0,87.0 632.0,28.0\"") != NULL, "%s",
                  out.data);
    ck_assert_ptr_nonnull(strstr(out.data, "now 10, max 10"));
    ck_assert_ptr_nonnull(strstr(out.data, ">-60 min<"));
}
END_TEST

START_TEST(chart_axis_follows_what_the_samples_cover)
{
    /* Five minutes of samples: the axis spans ten, not sixty. */
    for (int i = 0; i <= 30; i++)
        add((int64_t)i * 10000, 0, i);
    ck_assert_int_eq(hms_page_chart(&trend, &charts[0], &out), HMS_OK);
    ck_assert_ptr_nonnull(strstr(out.data, ">-10 min<"));
    /* The oldest sample, 300 s before the newest, halfway along. */
    ck_assert_msg(strstr(out.data, "points=\"344.0,146.0 ") != NULL, "%s", out.data);
}
END_TEST

START_TEST(chart_says_it_is_collecting)
{
    add(0, 7, 0);
    /* A rate needs two samples. */
    ck_assert_int_eq(hms_page_chart(&trend, &charts[1], &out), HMS_OK);
    ck_assert_ptr_nonnull(strstr(out.data, "collecting samples (one every 10 s)"));
    ck_assert_ptr_null(strstr(out.data, "<polyline"));
}
END_TEST

START_TEST(trend_line_in_a_terminal)
{
    ck_assert_int_eq(hms_page_trend_line(&trend, 0, "bytes", 5, &out), HMS_OK);
    ck_assert_str_eq(out.data, "(a trend after two samples)");
    hms_buf_reset(&out);
    /* Two minutes: 12000 -> 36000 bytes, max 52000, with a dip. */
    add(0, 12000, 0);
    add(30000, 52000, 0);
    add(60000, 20000, 0);
    add(90000, 28000, 0);
    add(120000, 36000, 0);
    ck_assert_int_eq(hms_page_trend_line(&trend, 0, "bytes", 3, &out), HMS_OK);
    ck_assert_str_eq(out.data, "12 k -> 36 k bytes (max 52 k), +12 k bytes/min "
                               "\u2581\u2585\u2588");
}
END_TEST

START_TEST(problem_row_warns_while_recent)
{
    hms_page_row_t row;
    hms_page_problem_row(&row, "", "", 0);
    ck_assert_str_eq(row.value, "none since start");
    ck_assert(!row.warn);
    hms_page_problem_row(&row, "2026-12-06T03:12:09.123Z", "lost the RabbitMQ connection", 90);
    ck_assert_str_eq(row.value,
                     "2026-12-06T03:12:09.123Z (2 min ago) lost the RabbitMQ connection");
    ck_assert(row.warn);
    /* Past ten minutes it is history: shown, not red. */
    hms_page_problem_row(&row, "2026-12-06T03:12:09.123Z", "x", HMS_PAGE_PROBLEM_RECENT_S + 1);
    ck_assert(!row.warn);
}
END_TEST

START_TEST(trend_json_parses)
{
    add(0, 100, 1);
    add(10000, 600, 2);
    ck_assert_int_eq(hms_page_trend_json(&trend, charts, 2, &out), HMS_OK);
    json_object *o = json_tokener_parse(out.data);
    ck_assert_msg(o != NULL, "%s", out.data);
    ck_assert_str_eq(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                     "{\"every_s\":10,\"age_s\":[10,0],\"lag\":[1,2],\"published\":[null,50]}");
    json_object_put(o);
}
END_TEST

static Suite *statuspage_suite(void)
{
    Suite *s = suite_create("statuspage");
    TCase *tc = tcase_create("statuspage");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, trend_takes_one_sample_per_interval);
    tcase_add_test(tc, trend_keeps_the_last_hour_and_no_more);
    tcase_add_test(tc, trend_rate_of_a_counter);
    tcase_add_test(tc, page_is_self_contained_and_escaped);
    tcase_add_test(tc, chart_draws_the_hour_newest_at_the_right);
    tcase_add_test(tc, chart_axis_follows_what_the_samples_cover);
    tcase_add_test(tc, chart_says_it_is_collecting);
    tcase_add_test(tc, trend_line_in_a_terminal);
    tcase_add_test(tc, problem_row_warns_while_recent);
    tcase_add_test(tc, trend_json_parses);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(statuspage_suite)
