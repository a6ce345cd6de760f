/* lsn.c -- PostgreSQL log sequence numbers in their two text forms. */
#include "core/lsn.h"

#include <inttypes.h>
#include <stdio.h>

void hms_lsn_format(uint64_t lsn, char out[HMS_LSN_STR_MAX])
{
    snprintf(out, HMS_LSN_STR_MAX, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

void hms_lsn_hex16(uint64_t lsn, char out[17])
{
    snprintf(out, 17, "%016" PRIX64, lsn);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* One half of "X/X": 1 to 8 hex digits, as PostgreSQL's pg_lsn input
 * accepts.  Hand-written rather than strtoul, which would also take signs,
 * spaces and "0x" and saturate instead of failing on overflow. */
static const char *parse_half(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    int n = 0;
    for (int d; (d = hex_value(*s)) >= 0; s++) {
        if (++n > 8)
            return NULL;
        v = v << 4 | (uint32_t)d;
    }
    if (n == 0)
        return NULL;
    *out = v;
    return s;
}

bool hms_lsn_parse(const char *s, uint64_t *out)
{
    uint32_t hi, lo;
    if (s == NULL)
        return false;
    s = parse_half(s, &hi);
    if (s == NULL || *s != '/')
        return false;
    s = parse_half(s + 1, &lo);
    if (s == NULL || *s != '\0')
        return false;
    *out = (uint64_t)hi << 32 | lo;
    return true;
}
