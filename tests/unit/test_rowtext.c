/* test_rowtext.c -- PostgreSQL's composite text form (record_out) back to
 * text values: the quoting record_out uses, NULL against the empty string,
 * and a refusal with the offset for text that is not one row. */
#include <check.h>
#include <string.h>

#include "core/rowtext.h"
#include "hms_check.h"

static hms_rowtext_t rt;
static hms_pgo_tuple_t tup;
static hms_err_t err;

static void teardown(void)
{
    hms_rowtext_free(&rt);
}

static hms_status_t parse(const char *s)
{
    err.msg[0] = '\0';
    return hms_rowtext_parse(&rt, s, strlen(s), &tup, &err);
}

static void text_is(unsigned i, const char *want)
{
    ck_assert_uint_lt(i, tup.ncols);
    ck_assert_int_eq(tup.values[i].kind, HMS_PGO_VAL_TEXT);
    ck_assert_uint_eq(tup.values[i].len, strlen(want));
    ck_assert(memcmp(tup.values[i].data, want, strlen(want)) == 0);
}

static void null_at(unsigned i)
{
    ck_assert_uint_lt(i, tup.ncols);
    ck_assert_int_eq(tup.values[i].kind, HMS_PGO_VAL_NULL);
    ck_assert_ptr_null(tup.values[i].data);
}

/* Exactly what PostgreSQL 15 printed for
 * row('a,b', NULL, '', 'x"y', E'back\\slash', ' sp', '(p)', 'plain',
 *     E'new\nline', '{1,2}'::int[], 'é')::text */
START_TEST(record_out_quoting)
{
    const char *s = "(\"a,b\",,\"\",\"x\"\"y\",\"back\\\\slash\",\" sp\",\"(p)\",plain,\"new\n"
                    "line\",\"{1,2}\",\xc3\xa9)";
    ck_assert_int_eq(parse(s), HMS_OK);
    ck_assert_uint_eq(tup.ncols, 11);
    text_is(0, "a,b");
    null_at(1);
    text_is(2, "");
    text_is(3, "x\"y");
    text_is(4, "back\\slash");
    text_is(5, " sp");
    text_is(6, "(p)");
    text_is(7, "plain");
    text_is(8, "new\nline");
    text_is(9, "{1,2}");
    text_is(10, "\xc3\xa9");
}
END_TEST

/* An incidents row as the trigger logs it. */
START_TEST(incident_row)
{
    ck_assert_int_eq(
        parse("(6f1c1a7e-8d3e-4c55-9b0e-2a1d3c4b5a69,\"2026-12-05 02:04:07.123456+00\","
              "north,3,open,\"Fall, ward 4\",,7,\"2026-12-05 02:04:07.5+00\",hms-ehr)"),
        HMS_OK);
    ck_assert_uint_eq(tup.ncols, 10);
    text_is(0, "6f1c1a7e-8d3e-4c55-9b0e-2a1d3c4b5a69");
    text_is(1, "2026-12-05 02:04:07.123456+00");
    text_is(5, "Fall, ward 4");
    null_at(6);
    text_is(9, "hms-ehr");
}
END_TEST

/* A tuple stays valid until the next parse, which may reuse the storage. */
START_TEST(reuse)
{
    ck_assert_int_eq(parse("(a,b)"), HMS_OK);
    ck_assert_uint_eq(tup.ncols, 2);
    ck_assert_int_eq(parse("(\"\",,\"c\")"), HMS_OK);
    ck_assert_uint_eq(tup.ncols, 3);
    text_is(0, "");
    null_at(1);
    text_is(2, "c");
    ck_assert_int_eq(parse("()"), HMS_OK); /* one NULL column, as record_out writes it */
    ck_assert_uint_eq(tup.ncols, 1);
    null_at(0);
}
END_TEST

START_TEST(refusals)
{
    ck_assert_int_eq(parse(""), HMS_ERR_MALFORMED);
    ck_assert_str_eq(err.msg, "row text: expected '(' at byte 0");
    ck_assert_int_eq(parse("a,b"), HMS_ERR_MALFORMED);
    ck_assert_int_eq(parse("(a,b"), HMS_ERR_MALFORMED);
    ck_assert_str_eq(err.msg, "row text: expected ')' at byte 4");
    ck_assert_int_eq(parse("(\"a,b)"), HMS_ERR_MALFORMED);
    ck_assert_str_eq(err.msg, "row text: unterminated quote at byte 6");
    ck_assert_int_eq(parse("(a)x"), HMS_ERR_MALFORMED);
    ck_assert_str_eq(err.msg, "row text: text after ')' at byte 3");
    ck_assert_int_eq(parse("(a\\"), HMS_ERR_MALFORMED);
    ck_assert_int_eq(tup.ncols, 0);
}
END_TEST

static Suite *rowtext_suite(void)
{
    Suite *s = suite_create("rowtext");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, record_out_quoting);
    tcase_add_test(tc, incident_row);
    tcase_add_test(tc, reuse);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(rowtext_suite)
