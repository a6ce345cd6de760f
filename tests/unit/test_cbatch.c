/* test_cbatch.c -- the subscriber's batch: bodies copied out of the
 * broker's buffers, the JSON array sent to hms_sync.consume_batch (echoes
 * left out, one item alone on demand), the view of an item as a delivery,
 * and the tag one multiple ack settles the batch with. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "consumer/batch.h"
#include "hms_check.h"

static hms_cdelivery_t delivery(const char *body, uint64_t tag, const char *id)
{
    hms_cdelivery_t d;
    memset(&d, 0, sizeof(d));
    d.body = body;
    d.len = strlen(body);
    d.tag = tag;
    d.delivery_count = (long)tag - 1;
    snprintf(d.routing_key, sizeof(d.routing_key), "incident.created.north");
    snprintf(d.message_id, sizeof(d.message_id), "%s", id);
    return d;
}

START_TEST(array_of_applied_events_in_order)
{
    hms_cbatch_t b;
    hms_cbatch_init(&b);
    char body[16];
    /* The broker reuses its buffer: the batch must have copied each body. */
    strcpy(body, "{\"id\":\"a\"}");
    hms_cdelivery_t d = delivery(body, 7, "a");
    ck_assert_int_eq(hms_cbatch_add(&b, &d, false, 0), HMS_OK);
    strcpy(body, "{\"id\":\"e\"}");
    d = delivery(body, 8, "e");
    ck_assert_int_eq(hms_cbatch_add(&b, &d, true, 0), HMS_OK);
    strcpy(body, "{\"id\":\"c\"}");
    d = delivery(body, 9, "c");
    ck_assert_int_eq(hms_cbatch_add(&b, &d, false, 0), HMS_OK);

    ck_assert_uint_eq(b.n, 3);
    ck_assert_uint_eq(b.napply, 2);
    ck_assert_str_eq(hms_cbatch_json(&b, b.n), "[{\"id\":\"a\"},{\"id\":\"c\"}]");
    ck_assert_str_eq(hms_cbatch_json(&b, 2), "[{\"id\":\"c\"}]");
    /* Alone, even an echo can be named (the caller never does). */
    ck_assert_str_eq(hms_cbatch_json(&b, 1), "[{\"id\":\"e\"}]");
    ck_assert_uint_eq(hms_cbatch_last_tag(&b), 9);

    hms_cdelivery_t v;
    hms_cbatch_delivery(&b, 0, &v);
    ck_assert_uint_eq(v.tag, 7);
    ck_assert_int_eq((int)v.delivery_count, 6);
    ck_assert_str_eq(v.message_id, "a");
    ck_assert_str_eq(v.routing_key, "incident.created.north");
    ck_assert_int_eq((int)v.len, 10);
    ck_assert(memcmp(v.body, "{\"id\":\"a\"}", v.len) == 0);
    hms_cbatch_free(&b);
}
END_TEST

START_TEST(empty_and_reset)
{
    hms_cbatch_t b;
    hms_cbatch_init(&b);
    ck_assert_str_eq(hms_cbatch_json(&b, 0), "[]");
    ck_assert_uint_eq(hms_cbatch_last_tag(&b), 0);
    hms_cdelivery_t d = delivery("{}", 1, "x");
    ck_assert_int_eq(hms_cbatch_add(&b, &d, true, 0), HMS_OK);
    /* Only echoes: nothing to apply. */
    ck_assert_uint_eq(b.napply, 0);
    ck_assert_str_eq(hms_cbatch_json(&b, b.n), "[]");
    hms_cbatch_reset(&b);
    ck_assert_uint_eq(b.n, 0);
    /* Many: the items and bodies grow past their first allocation. */
    for (uint64_t t = 1; t <= 1000; t++) {
        d = delivery("{\"k\":1}", t, "m");
        ck_assert_int_eq(hms_cbatch_add(&b, &d, false, 0), HMS_OK);
    }
    const char *json = hms_cbatch_json(&b, b.n);
    ck_assert_uint_eq(strlen(json), 2 + 1000 * 7 + 999);
    ck_assert_uint_eq(hms_cbatch_last_tag(&b), 1000);
    hms_cbatch_free(&b);
}
END_TEST

static Suite *cbatch_suite(void)
{
    Suite *s = suite_create("cbatch");
    TCase *tc = tcase_create("batch");
    tcase_add_test(tc, array_of_applied_events_in_order);
    tcase_add_test(tc, empty_and_reset);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(cbatch_suite)
