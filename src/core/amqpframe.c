/* amqpframe.c -- the AMQP 0-9-1 frames of a basic.publish, encoded into a
 * buffer (see amqpframe.h). */
#include "core/amqpframe.h"

#include <amqp_framing.h>
#include <string.h>

#include "core/bytes.h"

/* Frame type, channel and payload size, before the payload. */
#define FRAME_HEADER_LEN 7
/* Class and method ids, before basic.publish's arguments. */
#define METHOD_IDS_LEN 4
/* Class, weight and body size, before the properties. */
#define CONTENT_HEADER_LEN 12
/* The payload room of the method frame and of the content header frame:
 * each gets half of HMS_AMQPFRAME_PUBLISH_MAX.  Two short strings of at
 * most 255 bytes fit in the first, the properties the publisher sets
 * (far shorter) in the second. */
#define SMALL_PAYLOAD_MAX (HMS_AMQPFRAME_PUBLISH_MAX / 2 - HMS_AMQPFRAME_OVERHEAD)

/* Completes the frame at o whose size payload bytes are already written
 * after its header's place; returns where the next frame starts. */
static uint8_t *close_frame(uint8_t *o, uint8_t type, uint16_t channel, size_t size)
{
    o[0] = type;
    hms_store_be16(o + 1, channel);
    hms_store_be32(o + 3, (uint32_t)size);
    o[FRAME_HEADER_LEN + size] = AMQP_FRAME_END;
    return o + FRAME_HEADER_LEN + size + 1;
}

/* Writes basic.publish's payload at pl; returns its length or a negative
 * rabbitmq-c status. */
static int method_payload(uint8_t *pl, const amqp_basic_publish_t *m)
{
    amqp_bytes_t args = {SMALL_PAYLOAD_MAX - METHOD_IDS_LEN, pl + METHOD_IDS_LEN};
    int n = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, (void *)m, args);
    hms_store_be32(pl, AMQP_BASIC_PUBLISH_METHOD); /* class 60, method 40 */
    return n < 0 ? n : METHOD_IDS_LEN + n;
}

/* Writes the content header's payload at pl; returns its length or a
 * negative rabbitmq-c status. */
static int content_header_payload(uint8_t *pl, const amqp_basic_properties_t *props,
                                  uint64_t body_size)
{
    amqp_bytes_t enc = {SMALL_PAYLOAD_MAX - CONTENT_HEADER_LEN, pl + CONTENT_HEADER_LEN};
    int n = amqp_encode_properties(AMQP_BASIC_CLASS, (void *)props, enc);
    hms_store_be16(pl, AMQP_BASIC_CLASS);
    hms_store_be16(pl + 2, 0); /* weight: unused, always 0 */
    hms_store_be64(pl + 4, body_size);
    return n < 0 ? n : CONTENT_HEADER_LEN + n;
}

hms_status_t hms_amqpframe_publish(hms_buf_t *out, uint16_t channel, size_t frame_max,
                                   const amqp_basic_publish_t *m,
                                   const amqp_basic_properties_t *props, amqp_bytes_t body,
                                   hms_err_t *err)
{
    if (frame_max < HMS_AMQPFRAME_MIN)
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: frame_max %zu is below AMQP's minimum of %d",
                           frame_max, HMS_AMQPFRAME_MIN);
    size_t chunk = frame_max - HMS_AMQPFRAME_OVERHEAD;
    size_t nbody = body.len / chunk + (body.len % chunk != 0);
    if (hms_buf_reserve(out, HMS_AMQPFRAME_PUBLISH_MAX + body.len +
                                 nbody * HMS_AMQPFRAME_OVERHEAD) != HMS_OK)
        return hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory");

    hms_status_t st = HMS_OK;
    uint8_t *start = (uint8_t *)out->data + out->len;
    int n = method_payload(start + FRAME_HEADER_LEN, m);
    if (n < 0) {
        st = hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot encode basic.publish: %s",
                         amqp_error_string2(n));
        goto done;
    }
    uint8_t *o = close_frame(start, AMQP_FRAME_METHOD, channel, (size_t)n);
    n = content_header_payload(o + FRAME_HEADER_LEN, props, body.len);
    if (n < 0) {
        st = hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot encode message properties: %s",
                         amqp_error_string2(n));
        goto done;
    }
    o = close_frame(o, AMQP_FRAME_HEADER, channel, (size_t)n);
    for (size_t off = 0; off < body.len; off += chunk) {
        size_t len = body.len - off < chunk ? body.len - off : chunk;
        memcpy(o + FRAME_HEADER_LEN, (const uint8_t *)body.bytes + off, len);
        o = close_frame(o, AMQP_FRAME_BODY, channel, len);
    }
    out->len += (size_t)(o - start);
done:
    /* Success or not, out ends as a buffer should: NUL after its length. */
    out->data[out->len] = '\0';
    return st;
}
