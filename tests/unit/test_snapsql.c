/* test_snapsql.c -- the text of a snapshot's statements: every parameter
 * each one is sent with is referenced (PostgreSQL refuses a statement that
 * leaves one untyped), the request's condition goes in as a whole even with
 * a trailing comment, and the version bound is used only where the capture
 * has a version column.  That PostgreSQL runs them is test_snapshot's part. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/snapsql.h"
#include "hms_check.h"

static hms_capture_t unversioned(void)
{
    hms_capture_t c = hms_capture_incidents;
    c.version_column = NULL;
    return c;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void has(const char *sql, const char *part, int times)
{
    ck_assert_msg(count(sql, part) == times, "'%s' %d times, not %d, in: %s", part,
                  count(sql, part), times, sql);
}

START_TEST(start_counts_and_bounds_once)
{
    char *sql = hms_snapsql_start(&hms_capture_incidents, NULL);
    ck_assert_ptr_nonnull(sql);
    has(sql, "coalesce(rows_total, (SELECT count(*) FROM public.incidents WHERE true))", 1);
    has(sql, "coalesce(version_bound, (SELECT max(version) FROM public.incidents WHERE true))", 1);
    has(sql, "$1", 1);
    has(sql, "RETURNING rows_total, rows_done, last_key, version_bound", 1);
    free(sql);

    hms_capture_t c = unversioned();
    sql = hms_snapsql_start(&c, NULL);
    has(sql, "version_bound = NULL WHERE", 1);
    has(sql, "max(", 0);
    free(sql);
}
END_TEST

START_TEST(condition_whole_even_with_a_comment)
{
    const char *where = "region = 'north' -- the ward's own";
    char *sql = hms_snapsql_start(&hms_capture_incidents, where);
    /* A comment runs to the end of the line: the newline keeps the
     * parenthesis and the rest of the statement out of it. */
    has(sql, "(region = 'north' -- the ward's own\n)", 2);
    free(sql);
    sql = hms_snapsql_chunk(&hms_capture_incidents, where, true, 32);
    has(sql, "(region = 'north' -- the ward's own\n) ORDER BY id LIMIT 32", 1);
    free(sql);
    sql = hms_snapsql_chunk(&hms_capture_incidents, "", false, 8);
    has(sql, "AND true ORDER BY id LIMIT 8", 1);
    free(sql);
}
END_TEST

START_TEST(chunk_references_every_parameter)
{
    hms_capture_t c = unversioned();
    const hms_capture_t *caps[] = {&hms_capture_incidents, &c};
    for (int i = 0; i < 2; i++)
        for (int after = 0; after < 2; after++) {
            char *sql = hms_snapsql_chunk(caps[i], NULL, after, 1024);
            ck_assert_ptr_nonnull(sql);
            for (const char *p = "$1\0$2\0$3\0"; *p != '\0'; p += 3)
                ck_assert_msg(strstr(sql, p) != NULL, "%s unused in: %s", p, sql);
            has(sql, "$4", 0);
            has(sql, "WHERE id = $1 AND state = 'running'", 1);
            has(sql, "ORDER BY id LIMIT 1024", 1);
            has(sql, "id > $3", after);
            has(sql, "$3::text IS NULL", !after);
            has(sql, "version <= $2::bigint", i == 0);
            free(sql);
        }
}
END_TEST

START_TEST(initial_request)
{
    char *sql = hms_snapsql_initial("'hms_sync'");
    has(sql, "VALUES ('hms_sync', true)", 1);
    has(sql, "ON CONFLICT (slot) WHERE initial AND state IN ('pending', 'running') DO NOTHING", 1);
    free(sql);
    /* The cancel covers exactly the rows that index keeps unique, so the
     * insert after it always adds a request. */
    sql = hms_snapsql_cancel_initial("'hms_sync'");
    has(sql, "SET state = 'cancelled'", 1);
    has(sql, "WHERE slot = 'hms_sync' AND initial AND state IN ('pending', 'running')", 1);
    free(sql);
}
END_TEST

static Suite *snapsql_suite(void)
{
    Suite *s = suite_create("snapsql");
    TCase *tc = tcase_create("statements");
    tcase_add_test(tc, start_counts_and_bounds_once);
    tcase_add_test(tc, condition_whole_even_with_a_comment);
    tcase_add_test(tc, chunk_references_every_parameter);
    tcase_add_test(tc, initial_request);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(snapsql_suite)
