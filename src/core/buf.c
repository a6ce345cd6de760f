/* buf.c -- growable byte buffer, array growth and JSON string escaping. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hms_status_t hms_array_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n <= *cap)
        return HMS_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < n) {
        if (ncap > SIZE_MAX / 2)
            return HMS_ERR_NOMEM;
        ncap *= 2;
    }
    if (elem != 0 && ncap > SIZE_MAX / elem)
        return HMS_ERR_NOMEM;
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return HMS_ERR_NOMEM;
    *arr = p;
    *cap = ncap;
    return HMS_OK;
}

void hms_buf_reset(hms_buf_t *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void hms_buf_free(hms_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

hms_status_t hms_buf_reserve(hms_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return HMS_ERR_NOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return HMS_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return HMS_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return HMS_OK;
}

hms_status_t hms_buf_append(hms_buf_t *b, const void *p, size_t n)
{
    hms_status_t st = hms_buf_reserve(b, n);
    if (st != HMS_OK)
        return st;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return HMS_OK;
}

hms_status_t hms_buf_append_str(hms_buf_t *b, const char *s)
{
    return hms_buf_append(b, s, strlen(s));
}

hms_status_t hms_buf_append_char(hms_buf_t *b, char c)
{
    return hms_buf_append(b, &c, 1);
}

hms_status_t hms_buf_printf(hms_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return HMS_ERR_MALFORMED;
    hms_status_t st = hms_buf_reserve(b, (size_t)n);
    if (st != HMS_OK)
        return st;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return HMS_OK;
}

size_t hms_utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t min, cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0) {
        len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* 1 for the bytes a JSON string holds as they are: printable ASCII but '"'
 * and '\\'. */
#define ONES4 1, 1, 1, 1
#define ONES8 ONES4, ONES4
#define ONES32 ONES8, ONES8, ONES8, ONES8
static const unsigned char json_plain[256] = {
    [0x20] = 1,      1,                      /* ' ' '!' */
    [0x23] = ONES32, ONES8, ONES8, ONES8, 1, /* '#' .. '[' (57) */
    [0x5D] = ONES32, 1,     1,     1,        /* ']' .. DEL (35) */
};
#undef ONES32
#undef ONES8
#undef ONES4

hms_status_t hms_buf_append_json_str(hms_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes \u00XX (6) or U+FFFD (3). */
    if (n > (SIZE_MAX - 2) / 6)
        return HMS_ERR_NOMEM;
    hms_status_t st = hms_buf_reserve(b, n * 6 + 2);
    if (st != HMS_OK)
        return st;
    const unsigned char *u = (const unsigned char *)s;
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
        /* Runs of printable ASCII other than '"' and '\\' (nearly all of
         * a typical value) are copied whole. */
        size_t run = i;
        while (run < n && json_plain[u[run]])
            run++;
        if (run > i) {
            memcpy(o, u + i, run - i);
            o += run - i;
            i = run;
            if (i == n)
                break;
        }
        unsigned char c = u[i];
        if (c < 0x80) {
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            default: *o++ = 'u', *o++ = '0', *o++ = '0'; *o++ = hex[c >> 4], *o++ = hex[c & 15];
            }
            i++;
            continue;
        }
        size_t l = hms_utf8_seq_len(u + i, n - i);
        if (l == 0) {
            *o++ = (char)0xEF, *o++ = (char)0xBF, *o++ = (char)0xBD;
            i++;
        } else {
            memcpy(o, u + i, l);
            o += l;
            i += l;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return HMS_OK;
}
