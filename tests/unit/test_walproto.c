/* test_walproto.c -- XLogData and keepalive parsing, standby status building,
 * and malformed CopyData payloads. */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/walproto.h"
#include "hms_check.h"

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

START_TEST(test_xlogdata)
{
    uint8_t b[25 + 4];
    b[0] = 'w';
    put64(b + 1, 0x0000000116B37480u);
    put64(b + 9, 0xFFFFFFFF00000001u);
    put64(b + 17, (uint64_t)INT64_C(-2)); /* negative times pass through */
    memcpy(b + 25, "BODY", 4);
    hms_walmsg_t m;
    hms_err_t err;
    ck_assert_int_eq(hms_walmsg_parse(b, sizeof(b), &m, &err), HMS_OK);
    ck_assert_int_eq(m.kind, 'w');
    ck_assert_uint_eq(m.wal_start, 0x0000000116B37480u);
    ck_assert_uint_eq(m.wal_end, 0xFFFFFFFF00000001u);
    ck_assert_int_eq(m.send_time, -2);
    ck_assert_ptr_eq(m.data, b + 25);
    ck_assert_uint_eq(m.len, 4);
    ck_assert(!m.reply_requested);

    /* An empty payload is a valid (if useless) XLogData. */
    ck_assert_int_eq(hms_walmsg_parse(b, 25, &m, &err), HMS_OK);
    ck_assert_uint_eq(m.len, 0);
    for (size_t n = 1; n < 25; n++) {
        ck_assert_int_eq(hms_walmsg_parse(b, n, &m, &err), HMS_ERR_TRUNCATED);
        ck_assert_ptr_nonnull(strstr(err.msg, "XLogData"));
    }
}
END_TEST

/* Parses the first len bytes of b from a heap copy of exactly that size,
 * so that ASan sees any read past the message, into an out whose every
 * byte is garbage, so that a field the parser leaves alone is noticed. */
static hms_status_t parse_exact(const uint8_t *b, size_t len, hms_walmsg_t *m, hms_err_t *err)
{
    uint8_t *copy = malloc(len);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, b, len);
    memset(m, 0xA5, sizeof(*m));
    err->msg[0] = '\0';
    hms_status_t st = hms_walmsg_parse(copy, len, m, err);
    free(copy);
    return st;
}

START_TEST(test_keepalive)
{
    /* 'k', walEnd, sendTime (signed: the last two are negative), reply */
    static const struct {
        uint64_t wal_end;
        int64_t send_time;
        bool reply;
    } cases[] = {
        {0x1234567890ABCDEFu, 800000000000000, true},
        {0xFFFFFFFFFFFFFFFFu, INT64_C(-2), false},
        {0, INT64_MIN, true},
    };
    uint8_t b[19];
    hms_walmsg_t m;
    hms_err_t err;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        b[0] = 'k';
        put64(b + 1, cases[i].wal_end);
        put64(b + 9, (uint64_t)cases[i].send_time);
        b[17] = cases[i].reply ? 1 : 0;
        ck_assert_int_eq(parse_exact(b, 18, &m, &err), HMS_OK);
        ck_assert_int_eq(m.kind, 'k');
        ck_assert_uint_eq(m.wal_end, cases[i].wal_end);
        ck_assert_int_eq(m.send_time, cases[i].send_time);
        ck_assert_int_eq(m.reply_requested, cases[i].reply);
        /* Fields a keepalive does not carry are cleared, not left as found. */
        ck_assert_ptr_null(m.data);
        ck_assert_uint_eq(m.len, 0);
        ck_assert_uint_eq(m.wal_start, 0);
    }

    /* The reply flag is a boolean byte: anything but 0 or 1 is refused. */
    for (unsigned v = 2; v < 256; v++) {
        b[17] = (uint8_t)v;
        ck_assert_int_eq(parse_exact(b, 18, &m, &err), HMS_ERR_MALFORMED);
        ck_assert_ptr_nonnull(strstr(err.msg, "reply flag"));
    }
    b[17] = 0;

    /* Every shorter prefix is truncated, and read no further than its end. */
    for (size_t n = 1; n < 18; n++) {
        ck_assert_int_eq(parse_exact(b, n, &m, &err), HMS_ERR_TRUNCATED);
        ck_assert_msg(strstr(err.msg, "keepalive") != NULL, "%zu bytes: %s", n, err.msg);
    }
    b[18] = 0;
    ck_assert_int_eq(parse_exact(b, 19, &m, &err), HMS_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err.msg, "trailing"));
}
END_TEST

START_TEST(test_unknown_and_empty)
{
    hms_walmsg_t m;
    hms_err_t err;
    const uint8_t r[34] = {'r'}; /* a client message never comes from the server */
    ck_assert_int_eq(hms_walmsg_parse(r, sizeof(r), &m, &err), HMS_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err.msg, "'r'"));
    const uint8_t z[1] = {0x80};
    ck_assert_int_eq(hms_walmsg_parse(z, 1, &m, &err), HMS_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err.msg, "0x80"));
    ck_assert_int_eq(hms_walmsg_parse(z, 0, &m, &err), HMS_ERR_TRUNCATED);
    ck_assert_int_eq(hms_walmsg_parse(NULL, 0, &m, NULL), HMS_ERR_TRUNCATED);
}
END_TEST

START_TEST(test_standby_status)
{
    uint8_t out[HMS_STANDBY_STATUS_LEN];
    memset(out, 0xAA, sizeof(out));
    size_t n = hms_walmsg_standby_status(out, 0x0000000100000002u, 0x0000000016B3748u,
                                         0xFFFFFFFFFFFFFFFFu, INT64_C(-1), true);
    ck_assert_uint_eq(n, 34);
    ck_assert_int_eq(out[0], 'r');
    ck_assert_uint_eq(get64(out + 1), 0x0000000100000002u);
    ck_assert_uint_eq(get64(out + 9), 0x0000000016B3748u);
    ck_assert_uint_eq(get64(out + 17), 0xFFFFFFFFFFFFFFFFu);
    ck_assert_uint_eq(get64(out + 25), 0xFFFFFFFFFFFFFFFFu); /* -1 */
    ck_assert_int_eq(out[33], 1);
    /* Network byte order, checked byte by byte for one field. */
    const uint8_t flush[8] = {0, 0, 0, 0, 0x01, 0x6B, 0x37, 0x48};
    ck_assert_int_eq(memcmp(out + 9, flush, 8), 0);

    hms_walmsg_standby_status(out, 0, 0, 0, 829000000000000, false);
    ck_assert_uint_eq(get64(out + 25), 829000000000000u);
    ck_assert_int_eq(out[33], 0);
}
END_TEST

/* Every byte string up to a few bytes long, and random longer ones, parse
 * or fail without touching memory outside the buffer (run under ASan). */
START_TEST(test_never_crashes)
{
    uint64_t s = 88172645463325252u;
    for (int k = 0; k < 20000; k++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        size_t len = (size_t)(s % 40);
        uint8_t *b = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)(s >> (i % 56));
        if (len > 0 && (s & 0x100))
            b[0] = (s & 0x200) ? 'w' : 'k';
        hms_walmsg_t m;
        hms_err_t err;
        hms_status_t st = hms_walmsg_parse(b, len, &m, &err);
        ck_assert(st == HMS_OK || st == HMS_ERR_TRUNCATED || st == HMS_ERR_MALFORMED);
        if (st == HMS_OK && m.kind == 'w')
            ck_assert_uint_eq(m.len, len - 25);
        free(b);
    }
}
END_TEST

static Suite *walproto_suite(void)
{
    Suite *s = suite_create("walproto");
    TCase *tc = tcase_create("walproto");
    tcase_add_test(tc, test_xlogdata);
    tcase_add_test(tc, test_keepalive);
    tcase_add_test(tc, test_unknown_and_empty);
    tcase_add_test(tc, test_standby_status);
    tcase_add_test(tc, test_never_crashes);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(walproto_suite)
