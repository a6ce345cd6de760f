/* test_pgvalue.c -- PostgreSQL text values as JSON: every type mapping,
 * timestamps and their edge cases, embedded json, array literals, and that
 * no byte string breaks the output. */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pgvalue.h"
#include "hms_check.h"

/* Type OIDs as PostgreSQL's pg_type.dat fixes them. */
enum {
    BOOL = 16,
    INT8 = 20,
    INT2 = 21,
    INT4 = 23,
    TEXT = 25,
    OID = 26,
    JSON = 114,
    POINT = 600,
    FLOAT4 = 700,
    FLOAT8 = 701,
    INET = 869,
    VARCHAR = 1043,
    TIME = 1083,
    TIMESTAMP = 1114,
    TIMESTAMPTZ = 1184,
    NUMERIC = 1700,
    UUID = 2950,
    JSONB = 3802,
    JSON_ARR = 199,
    BOOL_ARR = 1000,
    INT2_ARR = 1005,
    INT4_ARR = 1007,
    TEXT_ARR = 1009,
    VARCHAR_ARR = 1015,
    INT8_ARR = 1016,
    POINT_ARR = 1017,
    FLOAT4_ARR = 1021,
    FLOAT8_ARR = 1022,
    OID_ARR = 1028,
    TIMESTAMP_ARR = 1115,
    TIMESTAMPTZ_ARR = 1185,
    NUMERIC_ARR = 1231,
    UUID_ARR = 2951,
    JSONB_ARR = 3807,
};

static hms_pgvalue_scratch_t scratch;
static hms_buf_t out;
static hms_err_t err;

static void setup(void)
{
    memset(&scratch, 0, sizeof scratch);
    memset(&out, 0, sizeof out);
    err.msg[0] = '\0';
}

static void teardown(void)
{
    hms_pgvalue_scratch_free(&scratch);
    hms_buf_free(&out);
}

/* True when s[0..n) is exactly one JSON value, by json-c's reading. */
static bool is_one_json_value(const char *s, size_t n)
{
    char *wrapped = malloc(n + 3);
    ck_assert_ptr_nonnull(wrapped);
    wrapped[0] = '[';
    memcpy(wrapped + 1, s, n);
    wrapped[n + 1] = ']';
    wrapped[n + 2] = '\0';
    json_tokener *tok = json_tokener_new_ex(256);
    json_object *doc = json_tokener_parse_ex(tok, wrapped, (int)n + 2);
    bool ok = doc != NULL && json_tokener_get_error(tok) == json_tokener_success &&
              tok->char_offset == (int)n + 2 && json_object_array_length(doc) == 1;
    json_object_put(doc);
    json_tokener_free(tok);
    free(wrapped);
    return ok;
}

/* The JSON for text of type oid (or the error message when want is not
 * HMS_OK); the result lives until the next call. */
static const char *json_of(uint32_t oid, const char *text, hms_status_t want)
{
    hms_buf_reset(&out);
    hms_status_t st = hms_pgvalue_put_json(&out, oid, text, strlen(text), &scratch, &err);
    ck_assert_msg(st == want, "oid %u \"%s\": status %d (%s)", oid, text, st, err.msg);
    if (st != HMS_OK)
        return err.msg;
    ck_assert_msg(is_one_json_value(out.data, out.len), "oid %u \"%s\": not JSON: %s", oid, text,
                  out.data);
    return out.data;
}

#define VAL(oid, text) json_of(oid, text, HMS_OK)
#define BAD(oid, text) json_of(oid, text, HMS_ERR_ENCODE)

/* The type map: PostgreSQL's text of a value of each type and its JSON, or
 * NULL when the text must be refused. */
static const struct {
    uint32_t oid;
    const char *text, *json;
} value_cases[] = {
    /* bool, integers, floats, numeric, uuid, text and the rest. */
    {BOOL, "t", "true"},
    {BOOL, "f", "false"},
    {BOOL, "yes", NULL},
    {BOOL, "", NULL},
    {INT2, "-32768", "-32768"},
    {INT4, "0", "0"},
    {INT8, "9223372036854775807", "9223372036854775807"},
    {INT8, "12x", NULL},
    {INT8, "", NULL},
    {INT8, "007", NULL},
    {INT4, "1.0", NULL},
    {OID, "4294967295", "4294967295"},
    {FLOAT4, "1.5", "1.5"},
    {FLOAT8, "1.2345678901234567e+20", "1.2345678901234567e+20"},
    {FLOAT8, "-0", "-0"},
    {FLOAT8, "1e-05", "1e-05"},
    /* JSON has no NaN or infinities: PostgreSQL's spelling as a string. */
    {FLOAT8, "NaN", "\"NaN\""},
    {FLOAT8, "Infinity", "\"Infinity\""},
    {FLOAT4, "-Infinity", "\"-Infinity\""},
    {FLOAT8, "1.", NULL},
    {FLOAT8, "inf", NULL},
    {FLOAT8, "nan", NULL},
    {FLOAT8, "", NULL},
    /* numeric keeps every digit, so it travels as a string. */
    {NUMERIC, "12345678901234567890.123456789", "\"12345678901234567890.123456789\""},
    {NUMERIC, "NaN", "\"NaN\""},
    {NUMERIC, "-Infinity", "\"-Infinity\""},
    {UUID, "0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c", "\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c\""},
    {TEXT, "tab\there \"q\" back\\slash\n", "\"tab\\there \\\"q\\\" back\\\\slash\\n\""},
    {VARCHAR, "caf\xc3\xa9", "\"caf\xc3\xa9\""},
    {TEXT, "", "\"\""},
    /* Invalid UTF-8 still yields valid JSON (U+FFFD). */
    {TEXT,
     "a\xff"
     "b\xc3",
     "\"a\xef\xbf\xbd"
     "b\xef\xbf\xbd\""},
    /* Types outside the map: the text as a string. */
    {INET, "192.168.0.1/32", "\"192.168.0.1/32\""},
    {POINT, "(1,2)", "\"(1,2)\""},
    /* time is not a timestamp, and only time prints 24:00:00. */
    {TIME, "24:00:00", "\"24:00:00\""},
    /* Timestamps as RFC 3339 UTC (more edge cases in ts_cases). */
    {TIMESTAMPTZ, "2026-11-26 14:18:01.79151+00", "\"2026-11-26T14:18:01.791510Z\""},
    {TIMESTAMPTZ, "2026-11-26 14:18:01+00", "\"2026-11-26T14:18:01.000000Z\""},
    {TIMESTAMPTZ, "2026-11-26 14:18:01.5+02", "\"2026-11-26T12:18:01.500000Z\""},
    {TIMESTAMPTZ, "2026-01-01 01:00:00-05:30", "\"2026-01-01T06:30:00.000000Z\""},
    {TIMESTAMPTZ, "2026-01-01 00:10:00+00:15:30", "\"2025-12-31T23:54:30.000000Z\""},
    {TIMESTAMPTZ, "2024-02-29 23:59:59.999999+00", "\"2024-02-29T23:59:59.999999Z\""},
    {TIMESTAMP, "2026-11-26 14:18:01.79151", "\"2026-11-26T14:18:01.791510Z\""},
    {TIMESTAMP, "1969-12-31 23:59:59.000001", "\"1969-12-31T23:59:59.000001Z\""},
    {TIMESTAMP, "0001-01-01 00:00:00", "\"0001-01-01T00:00:00.000000Z\""},
    /* Not expressible in RFC 3339: PostgreSQL's text as a string. */
    {TIMESTAMPTZ, "infinity", "\"infinity\""},
    {TIMESTAMPTZ, "-infinity", "\"-infinity\""},
    {TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC", "\"0044-03-15 12:00:00+00 BC\""},
    {TIMESTAMP, "10000-01-01 00:00:00", "\"10000-01-01 00:00:00\""},
    {TIMESTAMP, "2023-02-29 00:00:00", "\"2023-02-29 00:00:00\""},
    /* json and jsonb: checked, then embedded as they are. */
    {JSON, "{\"a\": [1, 2.5e3, \"x\\u00e9\"], \"b\": {}}",
     "{\"a\": [1, 2.5e3, \"x\\u00e9\"], \"b\": {}}"},
    {JSONB, "[]", "[]"},
    {JSONB, "\"s\"", "\"s\""},
    {JSONB, " null ", " null "},
    {JSONB, "-1.5E-3", "-1.5E-3"},
    {JSONB, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"},
    {JSONB, "{\"a\": }", NULL},
    {JSONB, "[1,]", NULL},
    {JSONB, "[1] [2]", NULL},
    {JSON, "{\"a\":1", NULL},
    {JSON, "\"bad \xff\"", NULL},
    {JSON, "", NULL},
    {JSON, "nul", NULL},
    {JSON, "{1:2}", NULL},
    {JSON, "\"\\x\"", NULL},
    {JSON, "\"\\u12g4\"", NULL},
    {JSON, "NaN", NULL},
    /* Array literals. */
    {INT4_ARR, "{1,2,NULL,-3}", "[1,2,null,-3]"},
    {INT4_ARR, "{}", "[]"},
    {INT4_ARR, " { 1 , 2 } ", "[1,2]"},
    {INT4_ARR, "{{1,2},{3,4}}", "[[1,2],[3,4]]"},
    {INT4_ARR, "{{{1}},{{2}}}", "[[[1]],[[2]]]"},
    {TEXT_ARR, "{\"a,b\",\"c\\\"d\",\"e\\\\f\",NULL,\"NULL\",plain,null}",
     "[\"a,b\",\"c\\\"d\",\"e\\\\f\",null,\"NULL\",\"plain\",null]"},
    {TEXT_ARR, "{\"\",\" sp \",\"{}\"}", "[\"\",\" sp \",\"{}\"]"},
    {TEXT_ARR, "{{a,b},{c,NULL}}", "[[\"a\",\"b\"],[\"c\",null]]"},
    /* A backslash makes NULL text. */
    {TEXT_ARR, "{N\\ULL}", "[\"NULL\"]"},
    {NUMERIC_ARR, "{1.50,NaN,-Infinity}", "[\"1.50\",\"NaN\",\"-Infinity\"]"},
    /* PostgreSQL's limit is 6 dimensions. */
    {INT4_ARR, "{{{{{{1}}}}}}", "[[[[[[1]]]]]]"},
    /* Explicit bounds, malformed literals, bad elements: the text. */
    {INT4_ARR, "[0:1]={1,2}", "\"[0:1]={1,2}\""},
    {INT4_ARR, "{1,2", "\"{1,2\""},
    {INT4_ARR, "{1,x}", "\"{1,x}\""},
    {INT4_ARR, "{1,,2}", "\"{1,,2}\""},
    {INT4_ARR, "{1}x", "\"{1}x\""},
    {INT4_ARR, "{{{{{{{1}}}}}}}", "\"{{{{{{{1}}}}}}}\""},
    {TEXT_ARR, "{a\"b\"}", "\"{a\\\"b\\\"}\""},
    {TEXT_ARR, "{\"open}", "\"{\\\"open}\""},
    {TEXT_ARR, "{a\\", "\"{a\\\\\""},
    /* An array type we do not map stays a string. */
    {POINT_ARR, "{\"(1,2)\",\"(3,4)\"}", "\"{\\\"(1,2)\\\",\\\"(3,4)\\\"}\""},
    /* Every mapped element type. */
    {BOOL_ARR, "{t,f,NULL}", "[true,false,null]"},
    {INT2_ARR, "{-1,2}", "[-1,2]"},
    {INT8_ARR, "{9223372036854775807}", "[9223372036854775807]"},
    {OID_ARR, "{1,4294967295}", "[1,4294967295]"},
    {VARCHAR_ARR, "{\"x y\",z}", "[\"x y\",\"z\"]"},
    {FLOAT4_ARR, "{1.5,NaN}", "[1.5,\"NaN\"]"},
    {FLOAT8_ARR, "{Infinity,-0,1e-05}", "[\"Infinity\",-0,1e-05]"},
    {TIMESTAMP_ARR, "{\"2026-11-26 14:18:01.79151\",infinity}",
     "[\"2026-11-26T14:18:01.791510Z\",\"infinity\"]"},
    {TIMESTAMPTZ_ARR, "{\"2026-11-26 14:18:01.79151+00\",NULL}",
     "[\"2026-11-26T14:18:01.791510Z\",null]"},
    {UUID_ARR, "{0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c}",
     "[\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c\"]"},
    {JSON_ARR, "{\"{\\\"a\\\": 1}\",\"[1, 2]\",NULL}", "[{\"a\": 1},[1, 2],null]"},
    {JSONB_ARR, "{\"{\\\"k\\\": \\\"v\\\\\\\\w\\\"}\"}", "[{\"k\": \"v\\\\w\"}]"},
    /* An element its type refuses turns the whole literal into the text. */
    {BOOL_ARR, "{t,yes}", "\"{t,yes}\""},
    {JSONB_ARR, "{\"[1,]\"}", "\"{\\\"[1,]\\\"}\""},
};

START_TEST(type_map)
{
    for (size_t k = 0; k < sizeof value_cases / sizeof value_cases[0]; k++) {
        const char *want = value_cases[k].json;
        const char *got = json_of(value_cases[k].oid, value_cases[k].text,
                                  want != NULL ? HMS_OK : HMS_ERR_ENCODE);
        if (want != NULL)
            ck_assert_msg(strcmp(got, want) == 0, "oid %u \"%s\": %s, want %s", value_cases[k].oid,
                          value_cases[k].text, got, want);
    }
}
END_TEST

/* hms_pgvalue_timestamp_rfc3339 cases: PostgreSQL's text and its RFC 3339
 * form, or "-" when it has none. */
static const struct {
    const char *text, *want;
} ts_cases[] = {
    /* 0 to 6 fraction digits, always printed as 6. */
    {"2026-03-01 10:00:00", "2026-03-01T10:00:00.000000Z"},
    {"2026-03-01 10:00:00.1", "2026-03-01T10:00:00.100000Z"},
    {"2026-03-01 10:00:00.12", "2026-03-01T10:00:00.120000Z"},
    {"2026-03-01 10:00:00.123", "2026-03-01T10:00:00.123000Z"},
    {"2026-03-01 10:00:00.1234", "2026-03-01T10:00:00.123400Z"},
    {"2026-03-01 10:00:00.12345", "2026-03-01T10:00:00.123450Z"},
    {"2026-03-01 10:00:00.123456", "2026-03-01T10:00:00.123456Z"},
    {"2026-03-01 10:00:00.000001", "2026-03-01T10:00:00.000001Z"},
    {"2026-03-01 10:00:00.1234567", "-"},
    {"2026-03-01 10:00:00.", "-"},
    /* Offsets: hours, minutes and the seconds of old local mean times. */
    {"2026-03-01 10:00:00+14", "2026-02-28T20:00:00.000000Z"},
    {"2026-03-01 10:00:00-12", "2026-03-01T22:00:00.000000Z"},
    {"2026-03-01 10:00:00.5+05:45", "2026-03-01T04:15:00.500000Z"},
    {"1883-11-18 12:03:57-04:56:02", "1883-11-18T16:59:59.000000Z"},
    {"2026-03-01 10:00:00+00:60", "-"},
    {"2026-03-01 10:00:00+5", "-"},
    {"2026-03-01 10:00:00Z", "-"},
    /* Leap days: every 4 years, not every 100, but every 400. */
    {"2024-02-29 00:00:00", "2024-02-29T00:00:00.000000Z"},
    {"2000-02-29 00:00:00", "2000-02-29T00:00:00.000000Z"},
    {"1900-02-29 00:00:00", "-"},
    {"2023-02-29 00:00:00", "-"},
    {"2024-12-31 23:59:59+00", "2024-12-31T23:59:59.000000Z"},
    {"2024-02-29 23:30:00-01", "2024-03-01T00:30:00.000000Z"},
    /* PostgreSQL prints 24:00:00 only for time, never for a timestamp (it
     * reads one as the next midnight), nor a leap second, so neither is a
     * timestamp here. */
    {"2026-03-01 24:00:00", "-"},
    {"2026-03-01 23:59:60", "-"},
    {"2026-03-01 23:60:00", "-"},
    {"2026-13-01 00:00:00", "-"},
    {"2026-04-31 00:00:00", "-"},
    {"2026-00-10 00:00:00", "-"},
    /* BC and infinities have no RFC 3339 form; neither has a year past
     * 9999, even when only the offset moves it there. */
    {"0044-03-15 12:00:00+00 BC", "-"},
    {"0001-01-01 00:00:00 BC", "-"},
    {"infinity", "-"},
    {"-infinity", "-"},
    {"9999-12-31 23:59:59.999999+00", "9999-12-31T23:59:59.999999Z"},
    {"9999-12-31 23:30:00-01", "-"},
    {"10000-01-01 00:00:00", "-"},
    /* A session time zone east of UTC prints 9999's last hour as 10000. */
    {"10000-01-01 00:30:00+01", "9999-12-31T23:30:00.000000Z"},
    /* PostgreSQL's last timestamp: its Unix microseconds overflow int64. */
    {"294276-12-31 23:59:59.999999+00", "-"},
    {"9999999-12-31 23:59:59.999999+00", "-"},
    /* Year 0000 is RFC 3339's (proleptic 1 BC), reached only by an offset. */
    {"0001-01-01 00:30:00+01", "0000-12-31T23:30:00.000000Z"},
    /* ISO 'T' separator; anything else around the value is not ours. */
    {"2026-03-01T10:00:00+00", "2026-03-01T10:00:00.000000Z"},
    {"999-01-01 00:00:00", "-"},
    {"2026-3-01 00:00:00", "-"},
    {" 2026-03-01 00:00:00", "-"},
    {"2026-03-01 00:00:00 ", "-"},
    {"2026-03-01", "-"},
    {"", "-"},
};

START_TEST(timestamp_edges)
{
    char buf[HMS_PGVALUE_RFC3339_LEN + 1];
    for (size_t k = 0; k < sizeof ts_cases / sizeof ts_cases[0]; k++) {
        const char *text = ts_cases[k].text;
        bool ok = hms_pgvalue_timestamp_rfc3339(text, strlen(text), buf);
        ck_assert_msg(ok == (strcmp(ts_cases[k].want, "-") != 0), "\"%s\": %s", text,
                      ok ? buf : "no RFC 3339 form");
        if (ok)
            ck_assert_msg(strcmp(buf, ts_cases[k].want) == 0, "\"%s\": %s", text, buf);
    }
    /* The length bounds the text; no NUL is needed. */
    const char *s = "2026-03-01 10:00:00+00XYZ";
    ck_assert(hms_pgvalue_timestamp_rfc3339(s, strlen(s) - 3, buf));
    ck_assert_str_eq(buf, "2026-03-01T10:00:00.000000Z");
    ck_assert(!hms_pgvalue_timestamp_rfc3339(s, strlen(s), buf));
}
END_TEST

START_TEST(format_rfc3339)
{
    char buf[HMS_PGVALUE_RFC3339_LEN + 1];
    ck_assert(hms_pgvalue_format_rfc3339(0, buf));
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000000Z");
    ck_assert(hms_pgvalue_format_rfc3339(-1, buf)); /* floor, not truncation */
    ck_assert_str_eq(buf, "1969-12-31T23:59:59.999999Z");
    ck_assert(hms_pgvalue_format_rfc3339(INT64_C(951782400000000), buf));
    ck_assert_str_eq(buf, "2000-02-29T00:00:00.000000Z");
    /* The first and last microsecond of four-digit years. */
    ck_assert(hms_pgvalue_format_rfc3339(INT64_C(-62167219200000000), buf));
    ck_assert_str_eq(buf, "0000-01-01T00:00:00.000000Z");
    ck_assert(!hms_pgvalue_format_rfc3339(INT64_C(-62167219200000000) - 1, buf));
    ck_assert(hms_pgvalue_format_rfc3339(INT64_C(253402300800000000) - 1, buf));
    ck_assert_str_eq(buf, "9999-12-31T23:59:59.999999Z");
    ck_assert(!hms_pgvalue_format_rfc3339(INT64_C(253402300800000000), buf));
    ck_assert(!hms_pgvalue_format_rfc3339(INT64_MAX, buf));
    ck_assert(!hms_pgvalue_format_rfc3339(INT64_MIN, buf));
}
END_TEST

/* Random instants from year 1 to 9999, written as PostgreSQL prints them in
 * UTC (fraction without trailing zeros; "+00" for timestamptz, nothing for
 * timestamp) and with an equivalent non-zero offset: the digit-copying path
 * and the calendar arithmetic must agree with format_rfc3339 on all. */
START_TEST(timestamp_paths_agree)
{
    const int64_t first = INT64_C(-62135596800000000); /* 0001-01-01 */
    const int64_t span = INT64_C(253402300800000000) - first;
    uint64_t x = UINT64_C(0x9E3779B97F4A7C15);
    for (int k = 0; k < 200000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t usec = first + (int64_t)(x % (uint64_t)span);
        if (k % 3 == 0)
            usec -= usec % 1000000; /* whole seconds: no fraction at all */
        char want[HMS_PGVALUE_RFC3339_LEN + 1], got[HMS_PGVALUE_RFC3339_LEN + 1], text[64];
        ck_assert(hms_pgvalue_format_rfc3339(usec, want));
        /* "YYYY-MM-DDTHH:MM:SS.ffffffZ" -> "YYYY-MM-DD HH:MM:SS[.f+]" */
        memcpy(text, want, 19);
        text[10] = ' ';
        size_t n = 19, digits = 6;
        while (digits > 0 && want[19 + digits] == '0')
            digits--;
        if (digits > 0) {
            text[n++] = '.';
            memcpy(text + n, want + 20, digits);
            n += digits;
        }
        const char *suffix = k % 2 ? "+00" : "";
        snprintf(text + n, sizeof text - n, "%s", suffix);
        ck_assert_msg(hms_pgvalue_timestamp_rfc3339(text, strlen(text), got), "%s", text);
        ck_assert_msg(strcmp(got, want) == 0, "%s: %s, want %s", text, got, want);
        /* The same instant one hour east, unless that leaves year 9999. */
        if (usec < INT64_C(253402297200000000)) {
            char east[HMS_PGVALUE_RFC3339_LEN + 1];
            ck_assert(hms_pgvalue_format_rfc3339(usec + INT64_C(3600000000), east));
            memcpy(text, east, 19);
            text[10] = ' ';
            snprintf(text + n, sizeof text - n, "+01");
            if (digits > 0) {
                text[19] = '.';
                memcpy(text + 20, want + 20, digits);
            }
            ck_assert_msg(hms_pgvalue_timestamp_rfc3339(text, strlen(text), got), "%s", text);
            ck_assert_msg(strcmp(got, want) == 0, "%s: %s, want %s", text, got, want);
        }
    }
}
END_TEST

START_TEST(integers)
{
    ck_assert(hms_pgvalue_is_integer("0", 1));
    ck_assert(hms_pgvalue_is_integer("-0", 2));
    ck_assert(hms_pgvalue_is_integer("-42", 3));
    /* Digits are digits: the range is the column type's business. */
    ck_assert(hms_pgvalue_is_integer("99999999999999999999", 20));
    ck_assert(hms_pgvalue_is_integer("12x", 2));
    ck_assert(!hms_pgvalue_is_integer("12x", 3));
    ck_assert(!hms_pgvalue_is_integer("", 0));
    ck_assert(!hms_pgvalue_is_integer("-", 1));
    ck_assert(!hms_pgvalue_is_integer("007", 3));
    ck_assert(!hms_pgvalue_is_integer("+1", 2));
    ck_assert(!hms_pgvalue_is_integer(" 1", 2));
    ck_assert(!hms_pgvalue_is_integer("1.0", 3));
    ck_assert(!hms_pgvalue_is_integer("1e3", 3));
}
END_TEST

START_TEST(errors_and_appending)
{
    ck_assert_str_eq(BAD(BOOL, "yes"), "value of type oid 16 is not a boolean");
    ck_assert_str_eq(BAD(INT2, "1x"), "value of type oid 21 is not an integer");
    ck_assert_str_eq(BAD(FLOAT4, "x"), "value of type oid 700 is not a number");
    ck_assert_str_eq(BAD(JSONB, "{"), "value of type oid 3802 is not valid JSON");
    /* err may be NULL. */
    ck_assert_int_eq(hms_pgvalue_put_json(&out, BOOL, "x", 1, &scratch, NULL), HMS_ERR_ENCODE);
    /* The value is appended to what out already holds. */
    hms_buf_reset(&out);
    ck_assert_int_eq(hms_buf_append_str(&out, "{\"k\":"), HMS_OK);
    ck_assert_int_eq(
        hms_pgvalue_put_json(&out, TIMESTAMPTZ, "2026-11-26 14:18:01+00", 22, &scratch, &err),
        HMS_OK);
    ck_assert_int_eq(hms_pgvalue_put_json(&out, INT4_ARR, "{1}", 3, &scratch, &err), HMS_OK);
    ck_assert_str_eq(out.data, "{\"k\":\"2026-11-26T14:18:01.000000Z\"[1]");
    /* Only len bytes are read. */
    hms_buf_reset(&out);
    ck_assert_int_eq(hms_pgvalue_put_json(&out, INT4, "12x", 2, &scratch, &err), HMS_OK);
    ck_assert_str_eq(out.data, "12");
}
END_TEST

START_TEST(scratch_reused)
{
    /* After the first value the scratch buffers have grown; later values
     * of the same size allocate nothing. */
    const char *lit = "{\"{\\\"a\\\": [1, {\\\"b\\\": []}]}\",\"[[1]]\",NULL}";
    VAL(JSON_ARR, lit);
    const char *elem = scratch.elem_text.data, *stack = scratch.jsonstack.data;
    ck_assert_ptr_nonnull(elem);
    ck_assert_ptr_nonnull(stack);
    for (int i = 0; i < 1000; i++) {
        VAL(JSON_ARR, lit);
        BAD(JSONB, "[[[[}");
    }
    ck_assert_ptr_eq(scratch.elem_text.data, elem);
    ck_assert_ptr_eq(scratch.jsonstack.data, stack);
    hms_pgvalue_scratch_t init = HMS_PGVALUE_SCRATCH_INIT;
    hms_pgvalue_scratch_free(&init); /* freeing an unused scratch is fine */
}
END_TEST

/* Any byte string of any type gives one JSON value or HMS_ERR_ENCODE, never
 * a crash (the sanitizer build watches) or broken JSON. */
START_TEST(any_bytes)
{
    static const uint32_t oids[] = {
        BOOL,        INT8,          INT2,
        INT4,        TEXT,          OID,
        JSON,        FLOAT4,        FLOAT8,
        VARCHAR,     TIMESTAMP,     TIMESTAMPTZ,
        NUMERIC,     UUID,          JSONB,
        JSON_ARR,    BOOL_ARR,      INT2_ARR,
        INT4_ARR,    TEXT_ARR,      VARCHAR_ARR,
        INT8_ARR,    FLOAT4_ARR,    FLOAT8_ARR,
        OID_ARR,     TIMESTAMP_ARR, TIMESTAMPTZ_ARR,
        NUMERIC_ARR, UUID_ARR,      JSONB_ARR,
        POINT,
    };
    static const char alphabet[] = "{}[]\",\\:. -+0123456789eEtfNULlnaINFTZ\t\n";
    uint32_t seed = 12345;
    char s[64];
    for (int k = 0; k < 1000; k++) {
        size_t n = (size_t)(k % (int)sizeof s);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            uint32_t r = seed >> 16;
            s[i] = r % 8 == 0 ? (char)(r >> 3) : alphabet[(r >> 3) % (sizeof alphabet - 1)];
        }
        for (size_t o = 0; o < sizeof oids / sizeof oids[0]; o++) {
            hms_buf_reset(&out);
            hms_status_t st = hms_pgvalue_put_json(&out, oids[o], s, n, &scratch, &err);
            ck_assert_msg(st == HMS_OK || st == HMS_ERR_ENCODE, "oid %u: status %d", oids[o], st);
            if (st == HMS_OK)
                ck_assert_msg(is_one_json_value(out.data, out.len), "oid %u: not JSON: %s", oids[o],
                              out.data);
        }
    }
}
END_TEST

static Suite *pgvalue_suite(void)
{
    Suite *s = suite_create("pgvalue");
    TCase *tc = tcase_create("values");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, type_map);
    tcase_add_test(tc, timestamp_edges);
    tcase_add_test(tc, format_rfc3339);
    tcase_add_test(tc, timestamp_paths_agree);
    tcase_add_test(tc, integers);
    tcase_add_test(tc, errors_and_appending);
    tcase_add_test(tc, scratch_reused);
    tcase_add_test(tc, any_bytes);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(pgvalue_suite)
