/* test_amqpnodes.c -- splitting the amqp setting into a cluster's nodes. */
#include <check.h>
#include <string.h>

#include "core/amqpnodes.h"
#include "hms_check.h"

static void expect_item(const char *list, size_t i, const char *want)
{
    const char *s;
    size_t len;
    ck_assert(hms_amqp_nodes_get(list, i, &s, &len));
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(s, want, len) == 0);
}

START_TEST(split)
{
    const char *one = "amqp://u:p@h:5672/v";
    ck_assert_uint_eq(hms_amqp_nodes_count(one), 1);
    expect_item(one, 0, one);
    const char *s;
    size_t len;
    ck_assert(!hms_amqp_nodes_get(one, 1, &s, &len));

    const char *three = " amqp://a:1/ ,amqp://b:2/,\tamqp://c:3/\t";
    ck_assert_uint_eq(hms_amqp_nodes_count(three), 3);
    expect_item(three, 0, "amqp://a:1/");
    expect_item(three, 1, "amqp://b:2/");
    expect_item(three, 2, "amqp://c:3/");
    ck_assert(!hms_amqp_nodes_get(three, 3, &s, &len));

    ck_assert_uint_eq(hms_amqp_nodes_count("a,,b"), 3);
    expect_item("a,,b", 1, "");
    expect_item("a,", 1, "");
    ck_assert_uint_eq(hms_amqp_nodes_count(""), 1);
    expect_item("", 0, "");
}
END_TEST

START_TEST(check)
{
    char why[160];
    ck_assert(hms_amqp_nodes_check("amqp://a", why, sizeof(why)));
    ck_assert(hms_amqp_nodes_check("amqps://a,amqps://b", why, sizeof(why)));
    ck_assert(!hms_amqp_nodes_check("", why, sizeof(why)));
    ck_assert_str_eq(why, "is empty");
    ck_assert(!hms_amqp_nodes_check("amqp://a, ,amqp://c", why, sizeof(why)));
    ck_assert_str_eq(why, "node 2 of 3 is empty");
    ck_assert(!hms_amqp_nodes_check("amqps://a,amqp://b", why, sizeof(why)));
    ck_assert_str_eq(why, "node 2 of 2 uses amqp:// and node 1 amqps://; every node must use the "
                          "same scheme");
    char many[400] = "";
    for (int i = 0; i < HMS_AMQP_NODES_MAX; i++)
        strcat(many, i ? ",amqp://h" : "amqp://h");
    ck_assert(hms_amqp_nodes_check(many, why, sizeof(why)));
    strcat(many, ",amqp://h");
    ck_assert(!hms_amqp_nodes_check(many, why, sizeof(why)));
    ck_assert_str_eq(why, "lists 17 nodes; at most 16 are allowed");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("amqpnodes");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, split);
    tcase_add_test(tc, check);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(suite)
