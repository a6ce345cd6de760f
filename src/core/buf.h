/* buf.h -- a growable byte buffer, reused across messages to avoid
 * allocations on the hot path, and the growth rule of growable arrays.
 *
 * Ownership: an hms_buf_t owns its storage.  hms_buf_reset() keeps the
 * capacity; hms_buf_free() releases it.  data is always NUL-terminated after
 * any successful append (the NUL is not counted in len), so it can be used as
 * a C string when the content has no embedded NULs. */
#ifndef HMS_CORE_BUF_H
#define HMS_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} hms_buf_t;

#define HMS_BUF_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void hms_buf_reset(hms_buf_t *b);
void hms_buf_free(hms_buf_t *b);
/* Makes room for at least `extra` more bytes plus the NUL. */
hms_status_t hms_buf_reserve(hms_buf_t *b, size_t extra);
hms_status_t hms_buf_append(hms_buf_t *b, const void *p, size_t n);
hms_status_t hms_buf_append_str(hms_buf_t *b, const char *s);
hms_status_t hms_buf_append_char(hms_buf_t *b, char c);
hms_status_t hms_buf_printf(hms_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Grows the array *arr (capacity *cap elements of elem bytes) to hold at
 * least n elements, doubling from 16; keeps the contents.  HMS_ERR_NOMEM
 * when out of memory or when the size would overflow. */
hms_status_t hms_array_grow(void **arr, size_t *cap, size_t n, size_t elem);

/* Appends s[0..n) as a JSON string literal, quotes included, escaping what
 * RFC 8259 requires.  Invalid UTF-8 is replaced by U+FFFD so the output is
 * always valid JSON. */
hms_status_t hms_buf_append_json_str(hms_buf_t *b, const char *s, size_t n);

/* Length of the valid, shortest-form UTF-8 sequence at s (n > 0 bytes
 * available), or 0 when the bytes there are not one (overlong forms,
 * surrogates and code points above U+10FFFF are invalid). */
size_t hms_utf8_seq_len(const unsigned char *s, size_t n);

#endif
