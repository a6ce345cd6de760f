/* test_buf.c -- unit tests of the growable buffer and its JSON string
 * escaping (output must always be valid JSON and valid UTF-8). */
#include "core/buf.h"

#include <check.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hms_check.h"

#define FFFD "\xEF\xBF\xBD"

START_TEST(test_append)
{
    hms_buf_t b = HMS_BUF_INIT;
    ck_assert_int_eq(hms_buf_append(&b, "", 0), HMS_OK);
    ck_assert_ptr_nonnull(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    ck_assert_int_eq(hms_buf_append(&b, "abc", 3), HMS_OK);
    ck_assert_int_eq(hms_buf_append_str(&b, "de"), HMS_OK);
    ck_assert_int_eq(hms_buf_append_char(&b, 'f'), HMS_OK);
    ck_assert_uint_eq(b.len, 6);
    ck_assert_str_eq(b.data, "abcdef");
    /* Embedded NULs are data; the terminator still follows. */
    ck_assert_int_eq(hms_buf_append(&b, "x\0y", 3), HMS_OK);
    ck_assert_uint_eq(b.len, 9);
    ck_assert_mem_eq(b.data, "abcdefx\0y", 10);
    hms_buf_free(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    hms_buf_free(&b);
}
END_TEST

START_TEST(test_reset)
{
    hms_buf_t b = HMS_BUF_INIT;
    hms_buf_reset(&b); /* on a never-used buffer */
    ck_assert_int_eq(hms_buf_append_str(&b, "hello"), HMS_OK);
    size_t cap = b.cap;
    char *data = b.data;
    hms_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, cap);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_str_eq(b.data, "");
    ck_assert_int_eq(hms_buf_append_str(&b, "x"), HMS_OK);
    ck_assert_str_eq(b.data, "x");
    hms_buf_free(&b);
}
END_TEST

START_TEST(test_reserve_growth)
{
    hms_buf_t b = HMS_BUF_INIT;
    enum { N = 10000 };
    for (size_t i = 0; i < N; i++) {
        if (hms_buf_append_char(&b, (char)('a' + i % 26)) != HMS_OK)
            ck_abort_msg("append %zu failed", i);
        if (b.cap < b.len + 1 || b.data[b.len] != '\0')
            ck_abort_msg("bad state after %zu: len %zu cap %zu", i, b.len, b.cap);
    }
    ck_assert_uint_eq(b.len, N);
    for (size_t i = 0; i < N; i++) {
        if (b.data[i] != (char)('a' + i % 26))
            ck_abort_msg("byte %zu corrupted", i);
    }
    ck_assert_int_eq(hms_buf_reserve(&b, 100000), HMS_OK);
    ck_assert_uint_ge(b.cap, b.len + 100000 + 1);
    ck_assert_uint_eq(b.len, N);
    /* Reserving what is already there does not move the data. */
    char *data = b.data;
    size_t cap = b.cap;
    ck_assert_int_eq(hms_buf_reserve(&b, 10), HMS_OK);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.cap, cap);
    /* Impossible sizes fail cleanly and leave the buffer intact. */
    ck_assert_int_eq(hms_buf_reserve(&b, SIZE_MAX), HMS_ERR_NOMEM);
    ck_assert_int_eq(hms_buf_reserve(&b, SIZE_MAX / 2), HMS_ERR_NOMEM);
    ck_assert_int_eq(hms_buf_append(&b, "x", SIZE_MAX - 1), HMS_ERR_NOMEM);
    ck_assert_uint_eq(b.len, N);
    ck_assert_ptr_eq(b.data, data);
    ck_assert_uint_eq(b.data[N], '\0');
    hms_buf_free(&b);
}
END_TEST

START_TEST(test_printf)
{
    hms_buf_t b = HMS_BUF_INIT;
    ck_assert_int_eq(hms_buf_printf(&b, "%s", ""), HMS_OK);
    ck_assert_ptr_nonnull(b.data);
    ck_assert_str_eq(b.data, "");
    ck_assert_int_eq(hms_buf_printf(&b, "%d-%s", 42, "x"), HMS_OK);
    ck_assert_int_eq(hms_buf_printf(&b, "/%05.1f", 2.25), HMS_OK);
    ck_assert_str_eq(b.data, "42-x/002.2");
    ck_assert_uint_eq(b.len, strlen("42-x/002.2"));
    /* Output longer than the initial capacity, appended after content. */
    char big[1001];
    memset(big, 'z', 1000);
    big[1000] = '\0';
    ck_assert_int_eq(hms_buf_printf(&b, "[%s]", big), HMS_OK);
    ck_assert_uint_eq(b.len, 10 + 1002);
    ck_assert_int_eq(strncmp(b.data, "42-x/002.2[zzz", 14), 0);
    ck_assert_int_eq(b.data[b.len - 1], ']');
    ck_assert_int_eq(b.data[b.len], '\0');
    hms_buf_free(&b);
}
END_TEST

/* Escapes n bytes of s into a fresh buffer and compares with want (which
 * includes the quotes). */
static void check_json(const char *s, size_t n, const char *want)
{
    hms_buf_t b = HMS_BUF_INIT;
    ck_assert_int_eq(hms_buf_append_json_str(&b, s, n), HMS_OK);
    ck_assert_uint_eq(b.len, strlen(want));
    ck_assert_str_eq(b.data, want);
    hms_buf_free(&b);
}

#define CHECK_JSON(lit, want) check_json(lit, sizeof(lit) - 1, want)

START_TEST(test_json_ascii)
{
    CHECK_JSON("", "\"\"");
    CHECK_JSON("plain text 123", "\"plain text 123\"");
    CHECK_JSON("a\"b", "\"a\\\"b\"");
    CHECK_JSON("a\\b", "\"a\\\\b\"");
    CHECK_JSON("\\\"", "\"\\\\\\\"\"");
    CHECK_JSON("/", "\"/\"");
    CHECK_JSON("\x7f", "\"\x7f\"");
}
END_TEST

START_TEST(test_json_controls)
{
    CHECK_JSON("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
    CHECK_JSON("\x01\x1f", "\"\\u0001\\u001f\"");
    CHECK_JSON("a\0b", "\"a\\u0000b\"");
    CHECK_JSON("\x0b\x1b", "\"\\u000b\\u001b\"");
    /* Every control character, checked one by one. */
    for (int c = 0; c < 0x20; c++) {
        char in = (char)c;
        hms_buf_t b = HMS_BUF_INIT;
        ck_assert_int_eq(hms_buf_append_json_str(&b, &in, 1), HMS_OK);
        ck_assert_int_eq(b.data[1], '\\');
        ck_assert(b.len == 4 || b.len == 8);
        hms_buf_free(&b);
    }
}
END_TEST

START_TEST(test_json_utf8_valid)
{
    CHECK_JSON("\xC3\xA9", "\"\xC3\xA9\"");                 /* U+00E9 */
    CHECK_JSON("\xC2\x80", "\"\xC2\x80\"");                 /* U+0080 */
    CHECK_JSON("\xDF\xBF", "\"\xDF\xBF\"");                 /* U+07FF */
    CHECK_JSON("\xE0\xA0\x80", "\"\xE0\xA0\x80\"");         /* U+0800 */
    CHECK_JSON("\xE2\x82\xAC", "\"\xE2\x82\xAC\"");         /* U+20AC */
    CHECK_JSON("\xED\x9F\xBF", "\"\xED\x9F\xBF\"");         /* U+D7FF */
    CHECK_JSON("\xEE\x80\x80", "\"\xEE\x80\x80\"");         /* U+E000 */
    CHECK_JSON("\xEF\xBF\xBF", "\"\xEF\xBF\xBF\"");         /* U+FFFF */
    CHECK_JSON("\xF0\x90\x80\x80", "\"\xF0\x90\x80\x80\""); /* U+10000 */
    CHECK_JSON("\xF0\x9F\x98\x80", "\"\xF0\x9F\x98\x80\""); /* U+1F600 */
    CHECK_JSON("\xF4\x8F\xBF\xBF", "\"\xF4\x8F\xBF\xBF\""); /* U+10FFFF */
    CHECK_JSON("Ångström \"€\"", "\"Ångström \\\"€\\\"\"");
}
END_TEST

START_TEST(test_json_utf8_invalid)
{
    CHECK_JSON("\x80", "\"" FFFD "\""); /* lone continuation */
    CHECK_JSON("\xBF", "\"" FFFD "\"");
    CHECK_JSON("a\xFE"
               "b\xFF",
               "\"a" FFFD "b" FFFD "\"");                          /* never valid */
    CHECK_JSON("\xC0\xAF", "\"" FFFD FFFD "\"");                   /* overlong '/' */
    CHECK_JSON("\xC1\xBF", "\"" FFFD FFFD "\"");                   /* overlong */
    CHECK_JSON("\xE0\x80\xAF", "\"" FFFD FFFD FFFD "\"");          /* overlong */
    CHECK_JSON("\xE0\x9F\xBF", "\"" FFFD FFFD FFFD "\"");          /* overlong U+07FF */
    CHECK_JSON("\xF0\x80\x80\xAF", "\"" FFFD FFFD FFFD FFFD "\""); /* overlong */
    CHECK_JSON("\xF0\x8F\xBF\xBF", "\"" FFFD FFFD FFFD FFFD "\""); /* overlong U+FFFF */
    CHECK_JSON("\xED\xA0\x80", "\"" FFFD FFFD FFFD "\"");          /* U+D800 */
    CHECK_JSON("\xED\xBF\xBF", "\"" FFFD FFFD FFFD "\"");          /* U+DFFF */
    CHECK_JSON("\xED\xA0\xBD\xED\xB8\x80", "\"" FFFD FFFD FFFD FFFD FFFD FFFD "\""); /* CESU-8 */
    CHECK_JSON("\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""); /* > U+10FFFF */
    CHECK_JSON("\xF5\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"");
    CHECK_JSON("\xF8\x88\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD FFFD "\""); /* 5-byte form */
    /* A bad byte does not swallow the valid character after it. */
    CHECK_JSON("\xC3"
               "A",
               "\"" FFFD "A\"");
    CHECK_JSON("\xE2\x82"
               "\xC3\xA9",
               "\"" FFFD FFFD "\xC3\xA9\"");
    CHECK_JSON("\xF0\x9F\x98"
               "\"",
               "\"" FFFD FFFD FFFD "\\\"\"");
}
END_TEST

START_TEST(test_json_truncated_at_end)
{
    /* The sequence runs past n: must not read beyond it. */
    const char s[] = "ok\xE2\x82\xAC";
    check_json(s, 4, "\"ok" FFFD FFFD "\""); /* one per byte */
    check_json(s, 3, "\"ok" FFFD "\"");
    char *heap = malloc(2);
    ck_assert_ptr_nonnull(heap);
    memcpy(heap, "\xF0\x9F", 2);
    check_json(heap, 2, "\"" FFFD FFFD "\"");
    free(heap);
}
END_TEST

START_TEST(test_json_appends)
{
    hms_buf_t b = HMS_BUF_INIT;
    ck_assert_int_eq(hms_buf_append_str(&b, "{\"k\":"), HMS_OK);
    ck_assert_int_eq(hms_buf_append_json_str(&b, "v\n", 2), HMS_OK);
    ck_assert_int_eq(hms_buf_append_char(&b, '}'), HMS_OK);
    ck_assert_str_eq(b.data, "{\"k\":\"v\\n\"}");
    hms_buf_reset(&b);
    /* Worst-case growth: every byte doubles or worse. */
    enum { N = 100000 };
    char *in = malloc(N);
    ck_assert_ptr_nonnull(in);
    memset(in, '"', N);
    ck_assert_int_eq(hms_buf_append_json_str(&b, in, N), HMS_OK);
    ck_assert_uint_eq(b.len, 2 * N + 2);
    memset(in, 0x01, N);
    hms_buf_reset(&b);
    ck_assert_int_eq(hms_buf_append_json_str(&b, in, N), HMS_OK);
    ck_assert_uint_eq(b.len, 6 * N + 2);
    ck_assert_int_eq(b.data[b.len], '\0');
    free(in);
    hms_buf_free(&b);
}
END_TEST

/* Independent strict UTF-8 check, written from the RFC 3629 table. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return false;
        }
        i += len;
    }
    return true;
}

/* Random byte strings, biased towards the bytes that matter: the output
 * must parse as strict JSON with UTF-8 validation, and valid input must come
 * back unchanged. */
START_TEST(test_json_random_roundtrip)
{
    static const unsigned char pool[] = {0x00, 0x01, 0x08, 0x09, 0x0A, 0x1F, 0x20, '"',  '\\',
                                         '/',  'a',  0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                         0xC0, 0xC1, 0xC2, 0xC3, 0xDF, 0xE0, 0xE2, 0xED, 0xEF,
                                         0xF0, 0xF4, 0xF5, 0xF8, 0xFF, 0x82, 0xAC, 0xA9};
    uint64_t x = 0x243F6A8885A308D3u;
    unsigned char in[48];
    size_t n_valid = 0;
    json_tokener *tok = json_tokener_new();
    ck_assert_ptr_nonnull(tok);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    hms_buf_t b = HMS_BUF_INIT;
    for (int run = 0; run < 20000; run++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = (size_t)(x % sizeof(in));
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            in[i] = (x >> 32) % 4 == 0 ? (unsigned char)(x >> 8) : pool[(x >> 16) % sizeof(pool)];
        }
        hms_buf_reset(&b);
        if (hms_buf_append_json_str(&b, (const char *)in, n) != HMS_OK)
            ck_abort_msg("run %d: append failed", run);
        if (!utf8_valid((const unsigned char *)b.data, b.len))
            ck_abort_msg("run %d: output is not valid UTF-8", run);
        json_tokener_reset(tok);
        json_object *o = json_tokener_parse_ex(tok, b.data, (int)b.len);
        if (o == NULL || !json_object_is_type(o, json_type_string))
            ck_abort_msg("run %d: not a JSON string: %s", run, b.data);
        bool valid = utf8_valid(in, n);
        if (valid) {
            n_valid++;
            if ((size_t)json_object_get_string_len(o) != n ||
                memcmp(json_object_get_string(o), in, n) != 0)
                ck_abort_msg("run %d: valid input changed by escaping", run);
        }
        json_object_put(o);
    }
    ck_assert_uint_gt(n_valid, 100); /* the valid branch was exercised */
    json_tokener_free(tok);
    hms_buf_free(&b);
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, test_append);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_reserve_growth);
    tcase_add_test(tc, test_printf);
    suite_add_tcase(s, tc);
    TCase *tj = tcase_create("json");
    tcase_add_test(tj, test_json_ascii);
    tcase_add_test(tj, test_json_controls);
    tcase_add_test(tj, test_json_utf8_valid);
    tcase_add_test(tj, test_json_utf8_invalid);
    tcase_add_test(tj, test_json_truncated_at_end);
    tcase_add_test(tj, test_json_appends);
    tcase_add_test(tj, test_json_random_roundtrip);
    suite_add_tcase(s, tj);
    return s;
}

HMS_CHECK_MAIN(buf_suite)
