/* test_wherecheck.c -- a --where text is accepted only when it is one
 * condition that cannot reach past the parentheses it is pasted into. */
#include <check.h>
#include <string.h>

#include "core/wherecheck.h"
#include "hms_check.h"

static void ok(const char *sql)
{
    char why[200] = "";
    ck_assert_msg(hms_where_check(sql, why, sizeof why), "refused <%s>: %s", sql, why);
}

/* Refused, with a reason that contains want. */
static void refused(const char *sql, const char *want)
{
    char why[200] = "";
    ck_assert_msg(!hms_where_check(sql, why, sizeof why), "accepted <%s>", sql);
    ck_assert_msg(strstr(why, want) != NULL, "<%s>: reason \"%s\" lacks \"%s\"", sql, why, want);
}

START_TEST(conditions)
{
    ok("region = 'north'");
    ok("severity IN (1, 2) AND (status <> 'closed' OR summary IS NULL)");
    ok("occurred_at >= now() - interval '7 days'");
    ok("(ARRAY[1,2])[1] = severity");
    /* Parentheses, semicolons and comment marks inside constants and names
     * are data. */
    ok("summary = ')'");
    ok("summary = 'it''s (open'");
    ok("summary LIKE '%;--%'");
    ok("\"status\" = 'x' AND \"we(ird\"\"name\" IS NULL");
    ok("summary = E'a\\'b ) c'");
    ok("summary = $$ ) ; -- $$");
    ok("summary = $tag$ $$ ) $tag$");
    ok("summary = U&'d\\0061t\\+000061'");
    ok("a$b = 1");                   /* '$' continues a name */
    ok("severity = 1\n");            /* trailing white space */
    ok("summary LIKE 'C:\\dir\\%'"); /* a backslash that escapes no quote */
}
END_TEST

START_TEST(escapes)
{
    refused("true) OR (true", "closes a parenthesis the condition did not open at character 5");
    refused("true) --", "closes a parenthesis");
    refused("(true", "'(' that is never closed at character 1");
    refused("x[1", "'[' that is never closed");
    refused("x[1)", "does not match");
    refused("true; DROP TABLE incidents", "';'");
    refused("true -- ) comment", "a comment at character 6");
    refused("true /* ) */", "a comment");
    refused("summary = 'open", "string constant that never ends");
    refused("\"open = 1", "quoted name that never ends");
    refused("summary = $$ open", "dollar-quoted constant that never ends");
    refused("summary = $a$ open $b$", "dollar-quoted constant that never ends");
    refused("id::text > $1", "a parameter ($n)");
    refused("", "empty");
    refused("   \n ", "empty");
    /* Balanced only if a backslash in '...' is data: under
     * standard_conforming_strings = off the ')' is outside the constant. */
    refused("summary = '\\'' ) OR (true '", "closes a parenthesis");
    refused("summary = 'a\\' OR true", "never ends");
    /* The E'' form means the same under either setting. */
    ok("summary = E'\\' ) OR (true '");
}
END_TEST

START_TEST(depth_and_bounds)
{
    char deep[600];
    memset(deep, '(', 200);
    memset(deep + 200, ')', 200);
    deep[400] = '\0';
    refused(deep, "nested too deeply");
    memset(deep, '(', 100);
    deep[100] = '1';
    memset(deep + 101, ')', 100);
    deep[201] = '\0';
    ok(deep);
    /* A NULL or tiny reason buffer is fine. */
    ck_assert(!hms_where_check(")", NULL, 0));
    char tiny[4];
    ck_assert(!hms_where_check(")", tiny, sizeof tiny));
    ck_assert_uint_eq(strlen(tiny), 3);
    /* Quotes at the very end never read past the text. */
    refused("'\\", "never ends");
    refused("E'\\", "never ends");
    ok("x = $");
}
END_TEST

static Suite *wherecheck_suite(void)
{
    Suite *su = suite_create("wherecheck");
    TCase *tc = tcase_create("wherecheck");
    tcase_add_test(tc, conditions);
    tcase_add_test(tc, escapes);
    tcase_add_test(tc, depth_and_bounds);
    suite_add_tcase(su, tc);
    return su;
}

HMS_CHECK_MAIN(wherecheck_suite)
