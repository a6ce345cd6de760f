/* test_lsn.c -- LSN text forms: "X/X" formatting and parsing, 16-digit hex. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/lsn.h"
#include "hms_check.h"

START_TEST(test_format)
{
    char s[HMS_LSN_STR_MAX];
    hms_lsn_format(0, s);
    ck_assert_str_eq(s, "0/0");
    hms_lsn_format(0x16B3748u, s);
    ck_assert_str_eq(s, "0/16B3748");
    hms_lsn_format(0x0000000A00000000u, s);
    ck_assert_str_eq(s, "A/0");
    hms_lsn_format(UINT64_MAX, s);
    ck_assert_str_eq(s, "FFFFFFFF/FFFFFFFF");
    ck_assert_uint_eq(strlen(s) + 1, HMS_LSN_STR_MAX);
}
END_TEST

START_TEST(test_hex16)
{
    char s[17];
    hms_lsn_hex16(0, s);
    ck_assert_str_eq(s, "0000000000000000");
    hms_lsn_hex16(0x16B3748u, s);
    ck_assert_str_eq(s, "00000000016B3748");
    hms_lsn_hex16(UINT64_MAX, s);
    ck_assert_str_eq(s, "FFFFFFFFFFFFFFFF");
    hms_lsn_hex16(0xABCDEF0123456789u, s);
    ck_assert_str_eq(s, "ABCDEF0123456789");
}
END_TEST

START_TEST(test_parse_good)
{
    uint64_t v = 1;
    ck_assert(hms_lsn_parse("0/0", &v));
    ck_assert_uint_eq(v, 0);
    ck_assert(hms_lsn_parse("FFFFFFFF/FFFFFFFF", &v));
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert(hms_lsn_parse("0/16B3748", &v));
    ck_assert_uint_eq(v, 0x16B3748u);
    ck_assert(hms_lsn_parse("1a/b", &v)); /* PostgreSQL accepts lower case */
    ck_assert_uint_eq(v, 0x1A0000000Bu);
    ck_assert(hms_lsn_parse("00000001/00000002", &v));
    ck_assert_uint_eq(v, 0x100000002u);
}
END_TEST

START_TEST(test_parse_bad)
{
    static const char *bad[] = {
        "",     "1/",   "/1",   "G/1",  "1/2/3", "100000000/0", "0/100000000",
        " 0/0", "0/0 ", "0 /0", "-1/0", "+1/0",  "0x1/0",       "0/0x1",
        "/",    "1",    "1/G",  "1//2", "0/-0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v = 42;
        ck_assert_msg(!hms_lsn_parse(bad[i], &v), "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(v, 42); /* untouched on failure */
    }
    uint64_t v;
    ck_assert(!hms_lsn_parse(NULL, &v));
}
END_TEST

START_TEST(test_round_trip)
{
    uint64_t x = 0x243F6A8885A308D3u;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t lsn = (i % 3 == 0) ? (x & 0xFFFFFFFFu) : (i % 3 == 1) ? (x << 32) : x;
        char s[HMS_LSN_STR_MAX];
        uint64_t back;
        hms_lsn_format(lsn, s);
        ck_assert_msg(hms_lsn_parse(s, &back), "cannot parse %s", s);
        ck_assert_uint_eq(back, lsn);
    }
}
END_TEST

static Suite *lsn_suite(void)
{
    Suite *s = suite_create("lsn");
    TCase *tc = tcase_create("lsn");
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_hex16);
    tcase_add_test(tc, test_parse_good);
    tcase_add_test(tc, test_parse_bad);
    tcase_add_test(tc, test_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(lsn_suite)
