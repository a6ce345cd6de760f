/* amqpframe.h -- the AMQP 0-9-1 frames of one basic.publish, encoded into
 * memory: the method frame, the content header frame and the body frames,
 * exactly as they go on the wire.
 *
 * Every frame is: type (1 byte), channel (2), payload size (4), the payload,
 * and the frame-end octet 0xCE; a frame is never larger than the frame_max
 * the connection negotiated.  The method's arguments and the message
 * properties are encoded by rabbitmq-c's own encoders, so they match what
 * amqp_basic_publish would send byte for byte.
 *
 * Pure: no I/O.  The publisher appends the frames of a whole batch to one
 * buffer and writes it with one send() (see daemon/publisher.c for why). */
#ifndef HMS_CORE_AMQPFRAME_H
#define HMS_CORE_AMQPFRAME_H

#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "core/buf.h"
#include "core/status.h"

/* Bytes around each frame's payload: 7 of header before, the frame-end after. */
#define HMS_AMQPFRAME_OVERHEAD 8
/* The bytes one publish's method and content header frames take at most
 * together; its body frames take body length + HMS_AMQPFRAME_OVERHEAD per
 * frame on top. */
#define HMS_AMQPFRAME_PUBLISH_MAX 2048
/* The smallest frame_max AMQP allows (frame-min-size): every peer accepts
 * frames this large. */
#define HMS_AMQPFRAME_MIN 4096

/* Appends to out the frames of one basic.publish on channel: the method
 * frame (basic.publish, class 60 method 40, with m's arguments), the content
 * header frame (class 60, weight 0, the body size, props), then the body cut
 * into body frames of at most frame_max bytes each (frame_max - 8 of body),
 * none at all for an empty body.
 *
 * frame_max is the connection's negotiated maximum frame size, at least
 * HMS_AMQPFRAME_MIN.  m, props and body are only read; the caller keeps
 * them, and out, whose storage grows as hms_buf_reserve does.  Returns
 * HMS_OK; HMS_ERR_AMQP when frame_max is too small or rabbitmq-c cannot
 * encode m or props (a string over 255 bytes, properties over the room);
 * HMS_ERR_NOMEM.  On an error out holds what it held before. */
hms_status_t hms_amqpframe_publish(hms_buf_t *out, uint16_t channel, size_t frame_max,
                                   const amqp_basic_publish_t *m,
                                   const amqp_basic_properties_t *props, amqp_bytes_t body,
                                   hms_err_t *err);

#endif
