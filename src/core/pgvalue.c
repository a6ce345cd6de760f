/* pgvalue.c -- PostgreSQL's text form of one column value as JSON: timestamp
 * parsing and RFC 3339 formatting, JSON number and validity scanning, and
 * array literals. */
#include "core/pgvalue.h"

#include <string.h>
#include <strings.h>

/* Type OIDs from PostgreSQL's pg_type.dat; they are fixed for built-in types. */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_TEXT = 25,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_VARCHAR = 1043,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_UUID = 2950,
    OID_JSONB = 3802,
};

/* Array types whose literal we turn into a JSON array, and their elements.
 * Every one of them uses ',' as the element delimiter. */
static const struct {
    uint32_t array, elem;
} array_types[] = {
    {1000, OID_BOOL},   {1005, OID_INT2},    {1007, OID_INT4},      {1016, OID_INT8},
    {1028, OID_OID},    {1009, OID_TEXT},    {1015, OID_VARCHAR},   {1021, OID_FLOAT4},
    {1022, OID_FLOAT8}, {1231, OID_NUMERIC}, {1115, OID_TIMESTAMP}, {1185, OID_TIMESTAMPTZ},
    {2951, OID_UUID},   {199, OID_JSON},     {3807, OID_JSONB},
};

/* PostgreSQL allows at most 6 array dimensions (MAXDIM). */
#define ARRAY_MAX_DEPTH 6
#define USEC_PER_SEC INT64_C(1000000)

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void put_digits(char *out, int64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* False when the year is outside what RFC 3339's four digits can hold. */
bool hms_pgvalue_format_rfc3339(int64_t unix_usec, char out[HMS_PGVALUE_RFC3339_LEN + 1])
{
    int64_t secs = floor_div(unix_usec, USEC_PER_SEC);
    /* The remainder, not unix_usec - secs * 1e6: that product overflows
     * near INT64_MIN. */
    int64_t usec = unix_usec % USEC_PER_SEC;
    if (usec < 0)
        usec += USEC_PER_SEC;
    int64_t days = floor_div(secs, 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return false;
    put_digits(out, y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, sod / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, sod / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, sod % 60, 2);
    out[19] = '.';
    put_digits(out + 20, usec, 6);
    out[26] = 'Z';
    out[27] = '\0';
    return true;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Reads exactly `width` digits (or, with width 0, 1 to 7 digits) at *i. */
static bool read_num(const char *s, size_t n, size_t *i, int width, int64_t *out)
{
    size_t start = *i, max = width > 0 ? (size_t)width : 7;
    int64_t v = 0;
    while (*i < n && *i - start < max && s[*i] >= '0' && s[*i] <= '9')
        v = v * 10 + (s[(*i)++] - '0');
    size_t got = *i - start;
    *out = v;
    return width > 0 ? got == (size_t)width : got >= 1;
}

/* Parses PostgreSQL's ISO output "YYYY-MM-DD HH:MM:SS[.ffffff][+-HH[:MM[:SS]]]"
 * into Unix microseconds (a missing offset means UTC, which is how we take
 * timestamp without time zone).  False for anything else: 'infinity',
 * '-infinity' and "... BC" values end up here and the caller keeps the text. */
static bool parse_pg_timestamp(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int64_t y, mo, d, h, mi, sec, frac = 0, off = 0;
    if (!read_num(s, n, &i, 0, &y) || i < 4 || i >= n || s[i++] != '-')
        return false;
    if (!read_num(s, n, &i, 2, &mo) || i >= n || s[i++] != '-' || !read_num(s, n, &i, 2, &d))
        return false;
    if (i >= n || (s[i] != ' ' && s[i] != 'T'))
        return false;
    i++;
    if (!read_num(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || !read_num(s, n, &i, 2, &mi) ||
        i >= n || s[i++] != ':' || !read_num(s, n, &i, 2, &sec))
        return false;
    if (i < n && s[i] == '.') {
        i++;
        int digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 6)
            frac = frac * 10 + (s[i++] - '0'), digits++;
        if (digits == 0 || (i < n && s[i] >= '0' && s[i] <= '9'))
            return false;
        while (digits++ < 6)
            frac *= 10;
    }
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1;
        int64_t oh, om = 0, os = 0;
        if (!read_num(s, n, &i, 2, &oh))
            return false;
        if (i < n && s[i] == ':') {
            i++;
            if (!read_num(s, n, &i, 2, &om))
                return false;
            if (i < n && s[i] == ':') {
                i++;
                if (!read_num(s, n, &i, 2, &os))
                    return false;
            }
        }
        if (om > 59 || os > 59)
            return false;
        off = sign * (oh * 3600 + om * 60 + os);
    }
    /* Years past 10000 cannot come back below it by an offset of under 100
     * hours, and PostgreSQL's (up to 294276) would overflow the
     * microseconds below. */
    if (i != n || y > 10000 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, (int)mo) ||
        h > 23 || mi > 59 || sec > 59)
        return false;
    int64_t days = days_from_civil(y, (int)mo, (int)d);
    *out = ((days * 86400 + h * 3600 + mi * 60 + sec) - off) * USEC_PER_SEC + frac;
    return true;
}

static bool two_digits(const char *s, int *v)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return true;
}

/* The connector's sessions run with timezone=UTC, so nearly every value is
 * "YYYY-MM-DD HH:MM:SS[.f{1,6}]" with "+00" or no offset at all: the same
 * fields in RFC 3339 order, with no calendar arithmetic.  False for any
 * other shape (offsets, BC, infinity, years past 9999), which the general
 * parser then takes. */
static bool utc_timestamp_rfc3339(const char *s, size_t n, char out[HMS_PGVALUE_RFC3339_LEN + 1])
{
    int c, yy, mo, d, h, mi, sec;
    if (n < 19 || !two_digits(s, &c) || !two_digits(s + 2, &yy) || s[4] != '-' ||
        !two_digits(s + 5, &mo) || s[7] != '-' || !two_digits(s + 8, &d) ||
        (s[10] != ' ' && s[10] != 'T') || !two_digits(s + 11, &h) || s[13] != ':' ||
        !two_digits(s + 14, &mi) || s[16] != ':' || !two_digits(s + 17, &sec))
        return false;
    int64_t y = c * 100 + yy;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59)
        return false;
    size_t i = 19, digits = 0;
    memcpy(out + 20, "000000", 6);
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (digits == 6)
                return false;
            out[20 + digits++] = s[i];
        }
        if (digits == 0)
            return false;
    }
    if (!(i == n || (n - i == 3 && s[i] == '+' && s[i + 1] == '0' && s[i + 2] == '0')))
        return false;
    memcpy(out, s, 19);
    out[10] = 'T';
    out[19] = '.';
    out[26] = 'Z';
    out[27] = '\0';
    return true;
}

bool hms_pgvalue_timestamp_rfc3339(const char *text, size_t len,
                                   char out[HMS_PGVALUE_RFC3339_LEN + 1])
{
    if (utc_timestamp_rfc3339(text, len, out))
        return true;
    int64_t usec;
    return parse_pg_timestamp(text, len, &usec) && hms_pgvalue_format_rfc3339(usec, out);
}

/* Length of a JSON number (RFC 8259 grammar) at the start of s, 0 if none. */
static size_t json_number_len(const char *s, size_t n, bool *integral)
{
    size_t i = 0;
    *integral = true;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || s[i] < '0' || s[i] > '9')
        return 0;
    if (s[i] == '0')
        i++;
    else
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    if (i < n && s[i] == '.') {
        size_t j = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == j)
            return 0;
        *integral = false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t j = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == j)
            return 0;
        *integral = false;
    }
    return i;
}

bool hms_pgvalue_is_integer(const char *s, size_t n)
{
    bool integral;
    return n > 0 && json_number_len(s, n, &integral) == n && integral;
}

/* Skips a JSON string starting at s[*i] == '"'; false when it is not one. */
static bool json_skip_string(const char *s, size_t n, size_t *i)
{
    size_t k = *i + 1;
    while (k < n) {
        unsigned char c = (unsigned char)s[k];
        if (c == '"') {
            *i = k + 1;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (k + 1 >= n)
                return false;
            char e = s[k + 1];
            if (e == 'u') {
                if (k + 6 > n)
                    return false;
                for (size_t j = k + 2; j < k + 6; j++)
                    if (!strchr("0123456789abcdefABCDEF", s[j]) || s[j] == '\0')
                        return false;
                k += 6;
            } else if (e != '\0' && strchr("\"\\/bfnrt", e)) {
                k += 2;
            } else {
                return false;
            }
            continue;
        }
        size_t l = hms_utf8_seq_len((const unsigned char *)s + k, n - k);
        if (l == 0)
            return false;
        k += l;
    }
    return false;
}

static void json_skip_ws(const char *s, size_t n, size_t *i)
{
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
        (*i)++;
}

/* Skips an object member's name and the ':' after it, blanks included. */
static bool json_skip_member_name(const char *s, size_t n, size_t *i)
{
    json_skip_ws(s, n, i);
    if (*i >= n || s[*i] != '"' || !json_skip_string(s, n, i))
        return false;
    json_skip_ws(s, n, i);
    if (*i >= n || s[*i] != ':')
        return false;
    (*i)++;
    return true;
}

/* True when s[0..n) is exactly one JSON value.  PostgreSQL has checked json
 * and jsonb already, but the bytes came over the wire and one bad byte
 * embedded raw would break the whole event, so we check again.  Iterative,
 * with the open containers on a heap stack: no recursion limit to hit. */
static bool json_valid(hms_buf_t *stack, const char *s, size_t n)
{
    size_t i = 0;
    bool integral;
    hms_buf_reset(stack);
    for (;;) {
        /* A value is expected at i. */
        json_skip_ws(s, n, &i);
        if (i >= n)
            return false;
        char c = s[i];
        if (c == '{' || c == '[') {
            if (hms_buf_append_char(stack, c) != HMS_OK)
                return false;
            i++;
            json_skip_ws(s, n, &i);
            if (i < n && s[i] == (c == '{' ? '}' : ']')) {
                stack->len--;
                i++;
            } else if (c == '{') {
                if (!json_skip_member_name(s, n, &i))
                    return false;
                continue;
            } else {
                continue;
            }
        } else if (c == '"') {
            if (!json_skip_string(s, n, &i))
                return false;
        } else if (n - i >= 4 && memcmp(s + i, "true", 4) == 0) {
            i += 4;
        } else if (n - i >= 5 && memcmp(s + i, "false", 5) == 0) {
            i += 5;
        } else if (n - i >= 4 && memcmp(s + i, "null", 4) == 0) {
            i += 4;
        } else {
            size_t l = json_number_len(s + i, n - i, &integral);
            if (l == 0)
                return false;
            i += l;
        }
        /* After a value: close containers or move to the next member. */
        for (;;) {
            json_skip_ws(s, n, &i);
            if (stack->len == 0)
                return i == n;
            char top = stack->data[stack->len - 1];
            if (i >= n)
                return false;
            if (s[i] == (top == '{' ? '}' : ']')) {
                stack->len--;
                i++;
                continue;
            }
            if (s[i] != ',')
                return false;
            i++;
            if (top == '{' && !json_skip_member_name(s, n, &i))
                return false;
            break;
        }
    }
}

/* ---- column values ---- */

static uint32_t array_elem_type(uint32_t oid)
{
    for (size_t i = 0; i < sizeof array_types / sizeof array_types[0]; i++)
        if (array_types[i].array == oid)
            return array_types[i].elem;
    return 0;
}

static hms_status_t put_value(hms_pgvalue_scratch_t *scratch, hms_buf_t *out, uint32_t oid,
                              const char *s, size_t n, const char **why);

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Unescapes the array element at s[*pos] into el and moves *pos past it.
 * Only an unquoted NULL with no backslash in it is SQL NULL (*is_null);
 * "NULL" quoted is the text.  HMS_ERR_MALFORMED when it is not an element. */
static hms_status_t array_elem_read(hms_buf_t *el, const char *s, size_t n, size_t *pos,
                                    bool *is_null)
{
    size_t i = *pos;
    bool quoted = s[i] == '"', escaped = false;
    size_t keep = 0; /* length up to the last escaped or non-blank byte */
    hms_status_t st;
    hms_buf_reset(el);
    if (quoted)
        i++;
    for (;;) {
        if (i >= n)
            return HMS_ERR_MALFORMED;
        char c = s[i];
        if (quoted && c == '"') {
            i++;
            break;
        }
        if (!quoted && (c == ',' || c == '}'))
            break;
        if (!quoted && (c == '{' || c == '"'))
            return HMS_ERR_MALFORMED;
        bool esc_c = c == '\\';
        if (esc_c) {
            if (++i >= n)
                return HMS_ERR_MALFORMED;
            c = s[i];
            escaped = true;
        }
        if ((st = hms_buf_append_char(el, c)) != HMS_OK)
            return st;
        if (quoted || esc_c || !is_ws(c))
            keep = el->len;
        i++;
    }
    el->len = keep;
    if (!quoted && el->len == 0)
        return HMS_ERR_MALFORMED;
    *is_null = !quoted && !escaped && el->len == 4 && strncasecmp(el->data, "NULL", 4) == 0;
    *pos = i;
    return HMS_OK;
}

/* One level of a PostgreSQL array literal at s[*pos] == '{'.  Returns
 * HMS_ERR_MALFORMED for anything we do not convert; the caller then falls
 * back to the literal as a string. */
static hms_status_t put_array_level(hms_pgvalue_scratch_t *scratch, hms_buf_t *out, uint32_t elem,
                                    const char *s, size_t n, size_t *pos, int depth)
{
    size_t i = *pos + 1;
    hms_status_t st;
    const char *why;
    if (depth > ARRAY_MAX_DEPTH)
        return HMS_ERR_MALFORMED;
    if ((st = hms_buf_append_char(out, '[')) != HMS_OK)
        return st;
    while (i < n && is_ws(s[i]))
        i++;
    if (i < n && s[i] == '}') {
        *pos = i + 1;
        return hms_buf_append_char(out, ']');
    }
    for (;;) {
        while (i < n && is_ws(s[i]))
            i++;
        if (i >= n)
            return HMS_ERR_MALFORMED;
        if (s[i] == '{') {
            if ((st = put_array_level(scratch, out, elem, s, n, &i, depth + 1)) != HMS_OK)
                return st;
        } else {
            hms_buf_t *el = &scratch->elem_text;
            bool is_null;
            if ((st = array_elem_read(el, s, n, &i, &is_null)) != HMS_OK)
                return st;
            if (is_null)
                st = hms_buf_append(out, "null", 4);
            else
                st = put_value(scratch, out, elem, el->data, el->len, &why);
            if (st == HMS_ERR_ENCODE)
                return HMS_ERR_MALFORMED;
            if (st != HMS_OK)
                return st;
        }
        while (i < n && is_ws(s[i]))
            i++;
        if (i >= n)
            return HMS_ERR_MALFORMED;
        if (s[i] == '}') {
            *pos = i + 1;
            return hms_buf_append_char(out, ']');
        }
        if (s[i] != ',')
            return HMS_ERR_MALFORMED;
        if ((st = hms_buf_append_char(out, ',')) != HMS_OK)
            return st;
        i++;
    }
}

/* An array literal as a JSON array.  Literals with explicit bounds
 * ("[0:1]={1,2}") and anything malformed stay a JSON string of the text. */
static hms_status_t put_array(hms_pgvalue_scratch_t *scratch, hms_buf_t *out, uint32_t elem,
                              const char *s, size_t n)
{
    size_t mark = out->len, i = 0;
    hms_status_t st = HMS_ERR_MALFORMED;
    while (i < n && is_ws(s[i]))
        i++;
    if (i < n && s[i] == '{') {
        st = put_array_level(scratch, out, elem, s, n, &i, 1);
        while (i < n && is_ws(s[i]))
            i++;
        if (st == HMS_OK && i != n)
            st = HMS_ERR_MALFORMED;
    }
    if (st != HMS_ERR_MALFORMED)
        return st;
    out->len = mark;
    return hms_buf_append_json_str(out, s, n);
}

/* hms_pgvalue_put_json without the message: *why says what the text is
 * not, so that array elements can fail cheaply into the string fallback. */
static hms_status_t put_value(hms_pgvalue_scratch_t *scratch, hms_buf_t *out, uint32_t oid,
                              const char *s, size_t n, const char **why)
{
    char ts[HMS_PGVALUE_RFC3339_LEN + 1];
    bool integral;
    switch (oid) {
    case OID_BOOL:
        if (n == 1 && s[0] == 't')
            return hms_buf_append(out, "true", 4);
        if (n == 1 && s[0] == 'f')
            return hms_buf_append(out, "false", 5);
        *why = "not a boolean";
        return HMS_ERR_ENCODE;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        if (!hms_pgvalue_is_integer(s, n)) {
            *why = "not an integer";
            return HMS_ERR_ENCODE;
        }
        return hms_buf_append(out, s, n);
    case OID_FLOAT4:
    case OID_FLOAT8:
        /* JSON has no NaN or infinities: they travel as strings. */
        if ((n == 3 && memcmp(s, "NaN", 3) == 0) || (n == 8 && memcmp(s, "Infinity", 8) == 0) ||
            (n == 9 && memcmp(s, "-Infinity", 9) == 0))
            return hms_buf_append_json_str(out, s, n);
        if (n == 0 || json_number_len(s, n, &integral) != n) {
            *why = "not a number";
            return HMS_ERR_ENCODE;
        }
        return hms_buf_append(out, s, n);
    case OID_TIMESTAMP:
    case OID_TIMESTAMPTZ:
        /* Values RFC 3339 cannot express (infinity, -infinity, BC dates,
         * years past 9999) keep PostgreSQL's text as the string. */
        if (hms_pgvalue_timestamp_rfc3339(s, n, ts)) {
            hms_status_t st = hms_buf_reserve(out, HMS_PGVALUE_RFC3339_LEN + 2);
            if (st != HMS_OK)
                return st;
            out->data[out->len++] = '"';
            memcpy(out->data + out->len, ts, HMS_PGVALUE_RFC3339_LEN);
            out->len += HMS_PGVALUE_RFC3339_LEN;
            out->data[out->len++] = '"';
            out->data[out->len] = '\0';
            return HMS_OK;
        }
        return hms_buf_append_json_str(out, s, n);
    case OID_JSON:
    case OID_JSONB:
        if (!json_valid(&scratch->jsonstack, s, n)) {
            *why = "not valid JSON";
            return HMS_ERR_ENCODE;
        }
        return hms_buf_append(out, s, n);
    default: break;
    }
    uint32_t elem = array_elem_type(oid);
    if (elem != 0)
        return put_array(scratch, out, elem, s, n);
    /* numeric (no precision loss), uuid, text and every other type. */
    return hms_buf_append_json_str(out, s, n);
}

hms_status_t hms_pgvalue_put_json(hms_buf_t *out, uint32_t type_oid, const char *text, size_t len,
                                  hms_pgvalue_scratch_t *scratch, hms_err_t *err)
{
    const char *why = "cannot be encoded";
    hms_status_t st = put_value(scratch, out, type_oid, text, len, &why);
    if (st == HMS_ERR_ENCODE)
        return hms_err_set(err, st, "value of type oid %u is %s", type_oid, why);
    if (st != HMS_OK)
        return hms_err_set(err, st, "value of type oid %u: %s", type_oid, hms_strerror(st));
    return HMS_OK;
}

void hms_pgvalue_scratch_free(hms_pgvalue_scratch_t *scratch)
{
    hms_buf_free(&scratch->elem_text);
    hms_buf_free(&scratch->jsonstack);
}
