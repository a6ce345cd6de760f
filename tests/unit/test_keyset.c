/* test_keyset.c -- the bounded key set: values, updates, growth past the
 * first table, the limit, and clearing for the next chunk. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "core/keyset.h"
#include "hms_check.h"

static hms_keyset_t s;

static void teardown(void)
{
    hms_keyset_free(&s);
}

static hms_status_t put(const char *k, int32_t v)
{
    return hms_keyset_put(&s, k, strlen(k), v);
}

static int32_t get(const char *k)
{
    return hms_keyset_get(&s, k, strlen(k));
}

START_TEST(values)
{
    hms_keyset_init(&s, 10);
    ck_assert_int_eq(get("a"), -1); /* an empty set has no table yet */
    ck_assert_int_eq(put("a", 1), HMS_OK);
    ck_assert_int_eq(put("ab", 2), HMS_OK);
    ck_assert_int_eq(put("", 3), HMS_OK);
    ck_assert_int_eq(get("a"), 1);
    ck_assert_int_eq(get("ab"), 2);
    ck_assert_int_eq(get(""), 3);
    ck_assert_int_eq(get("b"), -1);
    ck_assert_int_eq(put("a", 7), HMS_OK); /* an update is not a new key */
    ck_assert_int_eq(get("a"), 7);
    ck_assert_uint_eq(s.count, 3);
    /* Keys are bytes, not C strings. */
    ck_assert_int_eq(hms_keyset_put(&s, "x\0y", 3, 4), HMS_OK);
    ck_assert_int_eq(hms_keyset_get(&s, "x\0y", 3), 4);
    ck_assert_int_eq(hms_keyset_get(&s, "x", 1), -1);
}
END_TEST

START_TEST(growth_and_limit)
{
    char k[64];
    hms_keyset_init(&s, 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "6f1c1a7e-8d3e-4c55-9b0e-%012d", i);
        ck_assert_int_eq(put(k, i), HMS_OK);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "6f1c1a7e-8d3e-4c55-9b0e-%012d", i);
        ck_assert_int_eq(get(k), i);
    }
    ck_assert_uint_le(s.count * 2, s.nslots);
    ck_assert_int_eq(put("one more", 1), HMS_ERR_FULL);
    ck_assert_int_eq(get("one more"), -1);
    ck_assert_int_eq(put("6f1c1a7e-8d3e-4c55-9b0e-000000000007", 70), HMS_OK); /* still updates */
    size_t nslots = s.nslots;
    hms_keyset_clear(&s);
    ck_assert_uint_eq(s.count, 0);
    ck_assert_uint_eq(s.nslots, nslots); /* the memory stays for the next chunk */
    ck_assert_int_eq(get("6f1c1a7e-8d3e-4c55-9b0e-000000000007"), -1);
    ck_assert_int_eq(put("again", 1), HMS_OK);
    ck_assert_int_eq(get("again"), 1);
}
END_TEST

static Suite *keyset_suite(void)
{
    Suite *su = suite_create("keyset");
    TCase *tc = tcase_create("keyset");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, values);
    tcase_add_test(tc, growth_and_limit);
    suite_add_tcase(su, tc);
    return su;
}

HMS_CHECK_MAIN(keyset_suite)
