/* test_amqpframe.c -- the frames of a basic.publish against the AMQP 0-9-1
 * wire format, byte for byte, then read back by rabbitmq-c's own frame
 * reader: the method, the content header, the body cut at frame_max. */
#include <amqp.h>
#include <amqp_framing.h>
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/amqpframe.h"
#include "core/bytes.h"
#include "hms_check.h"

/* Written out here from the specification, not taken from rabbitmq-c. */
#define FRAME_METHOD 1
#define FRAME_HEADER 2
#define FRAME_BODY 3
#define FRAME_END 0xCE
#define CLASS_BASIC 60
#define METHOD_PUBLISH 40

/* One frame as read off the bytes: the payload points into them. */
typedef struct {
    uint8_t type;
    uint16_t channel;
    uint32_t size;
    const uint8_t *payload;
} frame_t;

/* Cuts buf into frames, checking each frame-end octet and that the bytes end
 * with the last frame; returns how many were found (at most max). */
static size_t split_frames(const uint8_t *buf, size_t len, frame_t *f, size_t max)
{
    size_t n = 0, off = 0;
    while (off < len) {
        ck_assert_msg(n < max, "more than %zu frames", max);
        ck_assert_msg(len - off >= 8, "%zu bytes left after frame %zu", len - off, n);
        f[n].type = buf[off];
        f[n].channel = hms_load_be16(buf + off + 1);
        f[n].size = hms_load_be32(buf + off + 3);
        f[n].payload = buf + off + 7;
        ck_assert_msg(f[n].size <= len - off - 8, "frame %zu overruns the buffer", n);
        ck_assert_msg(buf[off + 7 + f[n].size] == FRAME_END, "frame %zu: no frame-end", n);
        off += 8 + (size_t)f[n].size;
        n++;
    }
    return n;
}

/* Publish arguments as the publisher sets them, with short strings that the
 * expected bytes below spell out. */
static amqp_basic_publish_t publish_args(const char *exchange, const char *routing_key)
{
    amqp_basic_publish_t m = {.ticket = 0,
                              .exchange = amqp_cstring_bytes(exchange),
                              .routing_key = amqp_cstring_bytes(routing_key),
                              .mandatory = 1,
                              .immediate = 0};
    return m;
}

static amqp_basic_properties_t event_props(void)
{
    return (amqp_basic_properties_t){
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                  AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                  AMQP_BASIC_APP_ID_FLAG,
        .content_type = {3, (void *)"a/b"},
        .delivery_mode = 2,
        .message_id = {3, (void *)"id1"},
        .timestamp = UINT64_C(0x0102030405060708),
        .type = {1, (void *)"t"},
        .app_id = {3, (void *)"hms"},
    };
}

/* A body whose every byte depends on its offset, so a misplaced or repeated
 * chunk shows; the caller frees it. */
static uint8_t *pattern(size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(i * 131 + i / 251 + 7);
    return b;
}

START_TEST(test_exact_bytes)
{
    static const uint8_t want[] = {
        /* method frame: type, channel 1, size 14 */
        FRAME_METHOD, 0, 1, 0, 0, 0, 14,
        /* basic.publish: class 60, method 40, ticket 0 */
        0, CLASS_BASIC, 0, METHOD_PUBLISH, 0, 0,
        /* exchange "ex", routing key "a.b", bits: mandatory, not immediate */
        2, 'e', 'x', 3, 'a', '.', 'b', 0x01, FRAME_END,
        /* content header frame: type, channel 1, size 37 */
        FRAME_HEADER, 0, 1, 0, 0, 0, 37,
        /* class 60, weight 0, body size 5 */
        0, CLASS_BASIC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
        /* property flags: content-type, delivery-mode, message-id,
         * timestamp, type, app-id, then the values in flag order */
        0x90, 0xE8, 3, 'a', '/', 'b', 2, 3, 'i', 'd', '1', 1, 2, 3, 4, 5, 6, 7, 8, 1, 't', 3, 'h',
        'm', 's', FRAME_END,
        /* one body frame: type, channel 1, size 5 */
        FRAME_BODY, 0, 1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', FRAME_END};
    amqp_basic_publish_t m = publish_args("ex", "a.b");
    amqp_basic_properties_t props = event_props();
    hms_buf_t out = HMS_BUF_INIT;
    hms_err_t err;
    ck_assert_int_eq(
        hms_amqpframe_publish(&out, 1, 131072, &m, &props, amqp_cstring_bytes("hello"), &err),
        HMS_OK);
    ck_assert_uint_eq(out.len, sizeof(want));
    for (size_t i = 0; i < sizeof(want); i++)
        ck_assert_msg((uint8_t)out.data[i] == want[i], "byte %zu: 0x%02x, want 0x%02x", i,
                      (uint8_t)out.data[i], want[i]);
    hms_buf_free(&out);
}
END_TEST

/* The parts of the wire format the exact bytes above hold fixed: the
 * channel, no properties, and the bits of mandatory and immediate. */
START_TEST(test_channel_flags_bits)
{
    amqp_basic_publish_t m = publish_args("", "k");
    m.mandatory = 0;
    m.immediate = 1;
    amqp_basic_properties_t none;
    memset(&none, 0, sizeof(none));
    hms_buf_t out = HMS_BUF_INIT;
    hms_err_t err;
    ck_assert_int_eq(hms_amqpframe_publish(&out, 0xBEEF, 4096, &m, &none, amqp_empty_bytes, &err),
                     HMS_OK);
    frame_t f[4];
    ck_assert_uint_eq(split_frames((const uint8_t *)out.data, out.len, f, 4), 2);
    for (int i = 0; i < 2; i++)
        ck_assert_uint_eq(f[i].channel, 0xBEEF);
    /* ids, ticket, "" , "k", bits: immediate is bit 1 */
    ck_assert_uint_eq(f[0].size, 4 + 2 + 1 + 2 + 1);
    ck_assert_uint_eq(f[0].payload[9], 0x02);
    /* class, weight, body size 0, flags 0 and nothing after them */
    static const uint8_t header[] = {0, CLASS_BASIC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_uint_eq(f[1].size, sizeof(header));
    ck_assert_int_eq(memcmp(f[1].payload, header, sizeof(header)), 0);
    hms_buf_free(&out);
}
END_TEST

/* Frames one publish of body_len bytes at frame_max and checks how the
 * body is cut: full frames of frame_max - 8 bytes, then the rest, never an
 * empty frame; returns the number of body frames. */
static size_t check_split(size_t frame_max, size_t body_len)
{
    size_t chunk = frame_max - 8;
    uint8_t *body = pattern(body_len);
    amqp_basic_publish_t m = publish_args("ex", "a.b");
    amqp_basic_properties_t props = event_props();
    hms_buf_t out = HMS_BUF_INIT;
    hms_err_t err;
    ck_assert_int_eq(
        hms_amqpframe_publish(&out, 1, frame_max, &m, &props, (amqp_bytes_t){body_len, body}, &err),
        HMS_OK);
    size_t want_frames = (body_len + chunk - 1) / chunk;
    frame_t *f = calloc(want_frames + 3, sizeof(*f));
    ck_assert_ptr_nonnull(f);
    size_t n = split_frames((const uint8_t *)out.data, out.len, f, want_frames + 3);
    ck_assert_uint_eq(n, 2 + want_frames);
    ck_assert_uint_eq(f[0].type, FRAME_METHOD);
    ck_assert_uint_eq(f[1].type, FRAME_HEADER);
    ck_assert_uint_eq(hms_load_be64(f[1].payload + 4), body_len);
    size_t off = 0;
    for (size_t i = 2; i < n; i++) {
        size_t want = i + 1 < n ? chunk : body_len - off;
        ck_assert_uint_eq(f[i].type, FRAME_BODY);
        ck_assert_msg(f[i].size == want && want > 0, "%zu/%zu: body frame %zu holds %u, want %zu",
                      body_len, frame_max, i - 2, f[i].size, want);
        ck_assert_int_eq(memcmp(f[i].payload, body + off, want), 0);
        off += want;
    }
    ck_assert_uint_eq(off, body_len);
    free(f);
    free(body);
    hms_buf_free(&out);
    return want_frames;
}

START_TEST(test_body_split)
{
    static const size_t frame_maxes[] = {4096, 4097, 131072};
    for (size_t k = 0; k < sizeof(frame_maxes) / sizeof(frame_maxes[0]); k++) {
        size_t c = frame_maxes[k] - 8;
        ck_assert_uint_eq(check_split(frame_maxes[k], 0), 0);
        ck_assert_uint_eq(check_split(frame_maxes[k], 1), 1);
        ck_assert_uint_eq(check_split(frame_maxes[k], c - 1), 1);
        ck_assert_uint_eq(check_split(frame_maxes[k], c), 1); /* exactly full */
        ck_assert_uint_eq(check_split(frame_maxes[k], c + 1), 2);
        ck_assert_uint_eq(check_split(frame_maxes[k], 2 * c), 2); /* exact multiple */
        ck_assert_uint_eq(check_split(frame_maxes[k], 2 * c + 1), 3);
        ck_assert_uint_eq(check_split(frame_maxes[k], 7 * c), 7);
    }
}
END_TEST

/* What rabbitmq-c's frame reader, tuned to the same frame_max, makes of
 * one publish's bytes.  Pointers stay valid until conn is destroyed. */
typedef struct {
    amqp_connection_state_t conn;
    size_t frames;
    amqp_channel_t channel;
    amqp_basic_publish_t *method;
    amqp_basic_properties_t *props;
    uint16_t class_id;
    uint64_t body_size;
    hms_buf_t body;
} decoded_t;

static void rmq_decode(const uint8_t *p, size_t len, size_t frame_max, decoded_t *d)
{
    memset(d, 0, sizeof(*d));
    d->conn = amqp_new_connection();
    ck_assert_ptr_nonnull(d->conn);
    while (len > 0) {
        amqp_frame_t f;
        int n = amqp_handle_input(d->conn, (amqp_bytes_t){len, (void *)p}, &f);
        ck_assert_msg(n > 0, "rabbitmq-c refused frame %zu: %s", d->frames, amqp_error_string2(n));
        ck_assert_msg(f.frame_type != 0, "frame %zu incomplete", d->frames);
        p += n;
        len -= (size_t)n;
        if (d->frames++ == 0) {
            d->channel = f.channel;
            ck_assert_uint_eq(f.frame_type, AMQP_FRAME_METHOD);
            ck_assert_uint_eq(f.payload.method.id, AMQP_BASIC_PUBLISH_METHOD);
            d->method = f.payload.method.decoded;
            /* From here the reader refuses any frame over frame_max. */
            ck_assert_int_eq(amqp_tune_connection(d->conn, 0, (int)frame_max, 0), AMQP_STATUS_OK);
            continue;
        }
        ck_assert_uint_eq(f.channel, d->channel);
        if (d->frames == 2) {
            ck_assert_uint_eq(f.frame_type, AMQP_FRAME_HEADER);
            d->class_id = f.payload.properties.class_id;
            d->body_size = f.payload.properties.body_size;
            d->props = f.payload.properties.decoded;
            continue;
        }
        ck_assert_uint_eq(f.frame_type, AMQP_FRAME_BODY);
        ck_assert_int_eq(
            hms_buf_append(&d->body, f.payload.body_fragment.bytes, f.payload.body_fragment.len),
            HMS_OK);
    }
}

static void rmq_decoded_free(decoded_t *d)
{
    amqp_destroy_connection(d->conn);
    hms_buf_free(&d->body);
}

static bool bytes_eq(amqp_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

START_TEST(test_rabbitmq_c_reads_back)
{
    static const struct {
        size_t frame_max, body_len;
    } cases[] = {{4096, 0}, {4096, 4088 * 3}, {4096, 10000}, {131072, 300000}, {131072, 5}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t len = cases[k].body_len;
        uint8_t *body = pattern(len);
        amqp_basic_publish_t m = publish_args("hms.events", "ehr.incident.created.north");
        amqp_basic_properties_t props = event_props();
        hms_buf_t out = HMS_BUF_INIT;
        hms_err_t err;
        ck_assert_int_eq(hms_amqpframe_publish(&out, 7, cases[k].frame_max, &m, &props,
                                               (amqp_bytes_t){len, body}, &err),
                         HMS_OK);
        decoded_t d;
        rmq_decode((const uint8_t *)out.data, out.len, cases[k].frame_max, &d);
        ck_assert_uint_eq(d.channel, 7);
        ck_assert(bytes_eq(d.method->exchange, "hms.events"));
        ck_assert(bytes_eq(d.method->routing_key, "ehr.incident.created.north"));
        ck_assert(d.method->mandatory && !d.method->immediate);
        ck_assert_uint_eq(d.class_id, CLASS_BASIC);
        ck_assert_uint_eq(d.body_size, len);
        ck_assert_uint_eq(d.props->_flags, props._flags);
        ck_assert(bytes_eq(d.props->content_type, "a/b"));
        ck_assert_uint_eq(d.props->delivery_mode, 2);
        ck_assert(bytes_eq(d.props->message_id, "id1"));
        ck_assert(bytes_eq(d.props->type, "t"));
        ck_assert_uint_eq(d.props->timestamp, props.timestamp);
        ck_assert(bytes_eq(d.props->app_id, "hms"));
        ck_assert_uint_eq(d.body.len, len);
        ck_assert(len == 0 || memcmp(d.body.data, body, len) == 0);
        rmq_decoded_free(&d);
        hms_buf_free(&out);
        free(body);
    }
}
END_TEST

/* A batch: each publish lands after what out already holds. */
START_TEST(test_appends)
{
    amqp_basic_publish_t m = publish_args("ex", "a.b");
    amqp_basic_properties_t props = event_props();
    hms_buf_t out = HMS_BUF_INIT;
    hms_err_t err;
    ck_assert_int_eq(hms_buf_append_str(&out, "xyz"), HMS_OK);
    ck_assert_int_eq(
        hms_amqpframe_publish(&out, 1, 4096, &m, &props, amqp_cstring_bytes("one"), &err), HMS_OK);
    size_t first = out.len;
    ck_assert_int_eq(
        hms_amqpframe_publish(&out, 1, 4096, &m, &props, amqp_cstring_bytes("two"), &err), HMS_OK);
    ck_assert_int_eq(memcmp(out.data, "xyz", 3), 0);
    /* The same frames but for the body's three bytes before its frame-end. */
    ck_assert_uint_eq(out.len - first, first - 3);
    ck_assert_int_eq(memcmp(out.data + 3, out.data + first, first - 3 - 4), 0);
    ck_assert_int_eq(out.data[out.len], '\0');
    frame_t f[6];
    ck_assert_uint_eq(split_frames((const uint8_t *)out.data + 3, out.len - 3, f, 6), 6);
    ck_assert_int_eq(memcmp(f[2].payload, "one", 3), 0);
    ck_assert_int_eq(memcmp(f[5].payload, "two", 3), 0);
    hms_buf_free(&out);
}
END_TEST

/* What cannot be framed fails with a message and leaves out as it was. */
START_TEST(test_refusals)
{
    char long_name[300];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    amqp_basic_properties_t props = event_props();
    hms_buf_t out = HMS_BUF_INIT;
    hms_err_t err;
    ck_assert_int_eq(hms_buf_append_str(&out, "kept"), HMS_OK);

    amqp_basic_publish_t m = publish_args(long_name, "a.b"); /* over 255 bytes */
    ck_assert_int_eq(hms_amqpframe_publish(&out, 1, 4096, &m, &props, amqp_empty_bytes, &err),
                     HMS_ERR_AMQP);
    ck_assert_ptr_nonnull(strstr(err.msg, "basic.publish"));
    ck_assert_uint_eq(out.len, 4);
    ck_assert_str_eq(out.data, "kept");

    m = publish_args("ex", "a.b");
    props.message_id = amqp_cstring_bytes(long_name);
    ck_assert_int_eq(hms_amqpframe_publish(&out, 1, 4096, &m, &props, amqp_empty_bytes, &err),
                     HMS_ERR_AMQP);
    ck_assert_ptr_nonnull(strstr(err.msg, "properties"));
    ck_assert_uint_eq(out.len, 4);
    ck_assert_str_eq(out.data, "kept");

    props = event_props();
    ck_assert_int_eq(hms_amqpframe_publish(&out, 1, 4095, &m, &props, amqp_empty_bytes, &err),
                     HMS_ERR_AMQP);
    ck_assert_ptr_nonnull(strstr(err.msg, "4095"));
    ck_assert_uint_eq(out.len, 4);
    ck_assert_str_eq(out.data, "kept");
    ck_assert_int_eq(hms_amqpframe_publish(&out, 1, 4096, &m, &props, amqp_empty_bytes, NULL),
                     HMS_OK);
    hms_buf_free(&out);
}
END_TEST

static Suite *amqpframe_suite(void)
{
    const TTest *tests[] = {test_exact_bytes, test_channel_flags_bits,
                            test_body_split,  test_rabbitmq_c_reads_back,
                            test_appends,     test_refusals};
    Suite *s = suite_create("amqpframe");
    TCase *tc = tcase_create("publish");
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(amqpframe_suite)
