/* event.c -- encodes one pgoutput row change as a CloudEvents 1.0 JSON event
 * (contract v1), writing JSON text straight into reusable buffers. */
#include "core/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/lsn.h"

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
/* AMQP short strings, routing keys among them, hold at most 255 bytes. */
#define ROUTING_KEY_MAX 255
#define USEC_PER_SEC INT64_C(1000000)

const hms_capture_t hms_capture_incidents = {
    .schema = "public",
    .table = "incidents",
    .type_prefix = "gov.hms.ehr.Incident",
    .routing_prefix = "incident",
    .key_column = "id",
    .region_column = "region",
    .version_column = "version",
    .updated_column = "updated_at",
    .origin_column = "origin",
    .schema_base = "https://hms.gov/schemas/ehr/",
};

enum { KIND_CREATED, KIND_UPDATED, KIND_DELETED, NKINDS };
static const char *const kind_word[NKINDS] = {"Created", "Updated", "Deleted"};
static const char *const kind_route[NKINDS] = {"created", "updated", "deleted"};

/* Everything about a capture that does not change per event, built once. */
typedef struct {
    char *type[NKINDS];     /* "gov.hms.ehr.IncidentCreated.v1": what hms_event_t.type points to */
    hms_buf_t head[NKINDS]; /* `{"specversion":"1.0","type":...,"source":...,...,"id":"` */
} capnames_t;

/* Per-relation lookups, cached by relid and checked against the relation on
 * every use: the decoder may replace a relation in place (same pointer, new
 * columns) when a Relation message describes it again, so only the column
 * names themselves prove the cache is still right. */
typedef struct {
    uint32_t relid;
    const hms_pgo_relation_t *rel;
    const hms_pgo_column_t *cols;
    uint16_t ncols;
    size_t cap;                                /* index into the captures */
    int key, region, version, updated, origin; /* column index, -1 when absent */
    hms_buf_t names;                           /* raw column names, NUL-separated */
    hms_buf_t keys;                            /* `"name":` for every column */
    size_t *name_off, *key_off;                /* ncols + 1 offsets each */
} relinfo_t;

struct hms_encoder {
    char *sysid, *dbname;
    const hms_capture_t *captures;
    size_t ncaptures;
    capnames_t *names;
    relinfo_t *rels;
    size_t nrels;
    hms_buf_t scratch;   /* one unescaped array element */
    hms_buf_t jsonstack; /* open containers while checking embedded json */
};

/* ---- small formatting helpers ---- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static hms_status_t put_u64(hms_buf_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return hms_buf_append(b, tmp + i, sizeof tmp - i);
}

/* lsn.c has these too; a private copy keeps this pure module free of a link
 * dependency and hand-rolled hex avoids printf on the hot path. */
static size_t put_hex(char *out, uint32_t v, int min_digits)
{
    static const char hex[] = "0123456789ABCDEF";
    char tmp[8];
    int n = 0;
    do {
        tmp[n++] = hex[v & 15];
        v >>= 4;
    } while (v != 0);
    while (n < min_digits)
        tmp[n++] = '0';
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return (size_t)n;
}

static size_t lsn_text(uint64_t lsn, char *out)
{
    size_t n = put_hex(out, (uint32_t)(lsn >> 32), 1);
    out[n++] = '/';
    n += put_hex(out + n, (uint32_t)lsn, 1);
    out[n] = '\0';
    return n;
}

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

/* Writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" (27 chars + NUL); false when the year
 * is outside what RFC 3339's four digits can hold. */
static bool format_rfc3339(int64_t unix_usec, char out[28])
{
    int64_t secs = floor_div(unix_usec, USEC_PER_SEC);
    int64_t usec = unix_usec - secs * USEC_PER_SEC;
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
    if (i != n || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, (int)mo) || h > 23 ||
        mi > 59 || sec > 59)
        return false;
    int64_t days = days_from_civil(y, (int)mo, (int)d);
    *out = ((days * 86400 + h * 3600 + mi * 60 + sec) - off) * USEC_PER_SEC + frac;
    return true;
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

static bool is_json_integer(const char *s, size_t n)
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
                if (i >= n || s[i] != '"' || !json_skip_string(s, n, &i))
                    return false;
                json_skip_ws(s, n, &i);
                if (i >= n || s[i++] != ':')
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
            if (top == '{') {
                json_skip_ws(s, n, &i);
                if (i >= n || s[i] != '"' || !json_skip_string(s, n, &i))
                    return false;
                json_skip_ws(s, n, &i);
                if (i >= n || s[i++] != ':')
                    return false;
            }
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

static hms_status_t put_scalar(hms_encoder_t *e, hms_buf_t *out, uint32_t oid, const char *s,
                               size_t n, const char **why);

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* One level of a PostgreSQL array literal at s[*pos] == '{'.  Returns
 * HMS_ERR_MALFORMED for anything we do not convert; the caller then falls
 * back to the literal as a string. */
static hms_status_t put_array_level(hms_encoder_t *e, hms_buf_t *out, uint32_t elem, const char *s,
                                    size_t n, size_t *pos, int depth)
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
            if ((st = put_array_level(e, out, elem, s, n, &i, depth + 1)) != HMS_OK)
                return st;
        } else {
            /* Unescape one element into scratch.  Only an unquoted NULL with
             * no backslash in it is SQL NULL; "NULL" quoted is the text. */
            hms_buf_t *el = &e->scratch;
            bool quoted = s[i] == '"', escaped = false, esc_c;
            size_t keep = 0; /* length up to the last escaped or non-blank byte */
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
                esc_c = c == '\\';
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
            if (!quoted && !escaped && el->len == 4 && strncasecmp(el->data, "NULL", 4) == 0)
                st = hms_buf_append(out, "null", 4);
            else
                st = put_scalar(e, out, elem, el->data, el->len, &why);
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
static hms_status_t put_array(hms_encoder_t *e, hms_buf_t *out, uint32_t elem, const char *s,
                              size_t n)
{
    size_t mark = out->len, i = 0;
    hms_status_t st = HMS_ERR_MALFORMED;
    while (i < n && is_ws(s[i]))
        i++;
    if (i < n && s[i] == '{') {
        st = put_array_level(e, out, elem, s, n, &i, 1);
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

/* Appends one column value in PostgreSQL text form as JSON per the type map
 * of the contract.  HMS_ERR_ENCODE (with *why) when the text is not what its
 * type allows, so a corrupt value never turns into a plausible wrong one. */
static hms_status_t put_scalar(hms_encoder_t *e, hms_buf_t *out, uint32_t oid, const char *s,
                               size_t n, const char **why)
{
    char ts[28];
    int64_t usec;
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
        if (!is_json_integer(s, n)) {
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
        if (parse_pg_timestamp(s, n, &usec) && format_rfc3339(usec, ts)) {
            hms_status_t st = hms_buf_reserve(out, 29);
            if (st != HMS_OK)
                return st;
            out->data[out->len++] = '"';
            memcpy(out->data + out->len, ts, 27);
            out->len += 27;
            out->data[out->len++] = '"';
            out->data[out->len] = '\0';
            return HMS_OK;
        }
        return hms_buf_append_json_str(out, s, n);
    case OID_JSON:
    case OID_JSONB:
        if (!json_valid(&e->jsonstack, s, n)) {
            *why = "not valid JSON";
            return HMS_ERR_ENCODE;
        }
        return hms_buf_append(out, s, n);
    default: break;
    }
    uint32_t elem = array_elem_type(oid);
    if (elem != 0)
        return put_array(e, out, elem, s, n);
    /* numeric (no precision loss), uuid, text and every other type. */
    return hms_buf_append_json_str(out, s, n);
}

/* ---- encoder and relation cache ---- */

static void relinfo_clear(relinfo_t *ri)
{
    hms_buf_free(&ri->names);
    hms_buf_free(&ri->keys);
    free(ri->name_off);
    free(ri->key_off);
    memset(ri, 0, sizeof *ri);
}

static const char *rel_nspname(const hms_pgo_relation_t *rel)
{
    /* pgoutput sends an empty namespace for pg_catalog. */
    return rel->nspname == NULL || rel->nspname[0] == '\0' ? "pg_catalog" : rel->nspname;
}

static const char *col_name(const hms_pgo_relation_t *rel, size_t i)
{
    return rel->cols[i].name != NULL ? rel->cols[i].name : "";
}

static bool capture_matches(const hms_capture_t *c, const hms_pgo_relation_t *rel)
{
    return rel->relname != NULL && strcmp(c->table, rel->relname) == 0 &&
           strcmp(c->schema, rel_nspname(rel)) == 0;
}

const hms_capture_t *hms_encoder_capture(const hms_encoder_t *e, const hms_pgo_relation_t *rel)
{
    for (size_t i = 0; rel != NULL && i < e->ncaptures; i++)
        if (capture_matches(&e->captures[i], rel))
            return &e->captures[i];
    return NULL;
}

static int find_col(const hms_pgo_relation_t *rel, const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < rel->ncols; i++)
        if (strcmp(col_name(rel, (size_t)i), name) == 0)
            return i;
    return -1;
}

static bool relinfo_current(const hms_encoder_t *e, const relinfo_t *ri,
                            const hms_pgo_relation_t *rel)
{
    if (ri->rel != rel || ri->cols != rel->cols || ri->ncols != rel->ncols ||
        !capture_matches(&e->captures[ri->cap], rel))
        return false;
    for (size_t i = 0; i < rel->ncols; i++)
        if (strcmp(col_name(rel, i), ri->names.data + ri->name_off[i]) != 0)
            return false;
    return true;
}

static hms_status_t relinfo_build(relinfo_t *ri, const hms_pgo_relation_t *rel, size_t cap,
                                  const hms_capture_t *c)
{
    hms_status_t st = HMS_ERR_NOMEM;
    relinfo_clear(ri);
    ri->relid = rel->relid;
    ri->rel = rel;
    ri->cols = rel->cols;
    ri->ncols = rel->ncols;
    ri->cap = cap;
    ri->key = find_col(rel, c->key_column);
    ri->region = find_col(rel, c->region_column);
    ri->version = find_col(rel, c->version_column);
    ri->updated = find_col(rel, c->updated_column);
    ri->origin = find_col(rel, c->origin_column);
    ri->name_off = malloc(((size_t)rel->ncols + 1) * sizeof(size_t));
    ri->key_off = malloc(((size_t)rel->ncols + 1) * sizeof(size_t));
    if (ri->name_off == NULL || ri->key_off == NULL)
        goto fail;
    for (size_t i = 0; i < rel->ncols; i++) {
        const char *name = col_name(rel, i);
        ri->name_off[i] = ri->names.len;
        ri->key_off[i] = ri->keys.len;
        if ((st = hms_buf_append(&ri->names, name, strlen(name) + 1)) != HMS_OK ||
            (st = hms_buf_append_json_str(&ri->keys, name, strlen(name))) != HMS_OK ||
            (st = hms_buf_append_char(&ri->keys, ':')) != HMS_OK)
            goto fail;
    }
    ri->name_off[rel->ncols] = ri->names.len;
    ri->key_off[rel->ncols] = ri->keys.len;
    /* An empty relation still needs a readable names buffer. */
    if ((st = hms_buf_reserve(&ri->names, 0)) != HMS_OK)
        goto fail;
    return HMS_OK;
fail:
    relinfo_clear(ri);
    return st;
}

/* The cached lookups for rel, rebuilt when rel changed; *out NULL when the
 * relation is not captured. */
static hms_status_t relinfo_get(hms_encoder_t *e, const hms_pgo_relation_t *rel, relinfo_t **out)
{
    relinfo_t *ri = NULL;
    *out = NULL;
    for (size_t i = 0; i < e->nrels; i++) {
        if (e->rels[i].relid == rel->relid) {
            ri = &e->rels[i];
            break;
        }
    }
    if (ri != NULL && relinfo_current(e, ri, rel)) {
        *out = ri;
        return HMS_OK;
    }
    const hms_capture_t *c = hms_encoder_capture(e, rel);
    if (c == NULL)
        return HMS_OK;
    if (ri == NULL) {
        relinfo_t *grown = realloc(e->rels, (e->nrels + 1) * sizeof *grown);
        if (grown == NULL)
            return HMS_ERR_NOMEM;
        e->rels = grown;
        ri = &e->rels[e->nrels++];
        memset(ri, 0, sizeof *ri);
    }
    hms_status_t st = relinfo_build(ri, rel, (size_t)(c - e->captures), c);
    if (st != HMS_OK) {
        /* Keep the array dense: move the last entry into the hole. */
        *ri = e->rels[--e->nrels];
        return st;
    }
    *out = ri;
    return HMS_OK;
}

static hms_status_t capnames_build(capnames_t *cn, const hms_capture_t *c, const char *sysid,
                                   const char *dbname)
{
    hms_status_t st = HMS_OK;
    hms_buf_t tmp = HMS_BUF_INIT;
    for (int k = 0; k < NKINDS; k++) {
        hms_buf_t *h = &cn->head[k];
        hms_buf_reset(&tmp);
        if ((st = hms_buf_printf(&tmp, "%s%s.v1", c->type_prefix, kind_word[k])) != HMS_OK)
            goto fail;
        if ((cn->type[k] = dup_str(tmp.data)) == NULL) {
            st = HMS_ERR_NOMEM;
            goto fail;
        }
        if ((st = hms_buf_append_str(h, "{\"specversion\":\"1.0\",\"type\":")) != HMS_OK ||
            (st = hms_buf_append_json_str(h, tmp.data, tmp.len)) != HMS_OK)
            goto fail;
        hms_buf_reset(&tmp);
        if ((st = hms_buf_printf(&tmp, "/hms-ehr/%s/%s/%s.%s", sysid, dbname, c->schema,
                                 c->table)) != HMS_OK ||
            (st = hms_buf_append_str(h, ",\"source\":")) != HMS_OK ||
            (st = hms_buf_append_json_str(h, tmp.data, tmp.len)) != HMS_OK)
            goto fail;
        hms_buf_reset(&tmp);
        /* "gov.hms.ehr.Incident" names the file "IncidentCreated.v1.json". */
        const char *dot = strrchr(c->type_prefix, '.');
        const char *stem = dot != NULL ? dot + 1 : c->type_prefix;
        if ((st = hms_buf_printf(&tmp, "%s%s%s.v1.json", c->schema_base, stem, kind_word[k])) !=
                HMS_OK ||
            (st = hms_buf_append_str(h, ",\"datacontenttype\":\"application/json\","
                                        "\"dataschema\":")) != HMS_OK ||
            (st = hms_buf_append_json_str(h, tmp.data, tmp.len)) != HMS_OK ||
            (st = hms_buf_append_str(h, ",\"id\":\"")) != HMS_OK)
            goto fail;
    }
fail:
    hms_buf_free(&tmp);
    return st;
}

hms_encoder_t *hms_encoder_new(const char *sysid, const char *dbname, const hms_capture_t *captures,
                               size_t ncaptures)
{
    hms_encoder_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->captures = captures;
    e->ncaptures = ncaptures;
    e->sysid = dup_str(sysid);
    e->dbname = dup_str(dbname);
    e->names = calloc(ncaptures > 0 ? ncaptures : 1, sizeof *e->names);
    if (e->sysid == NULL || e->dbname == NULL || e->names == NULL)
        goto fail;
    for (size_t i = 0; i < ncaptures; i++)
        if (capnames_build(&e->names[i], &captures[i], sysid, dbname) != HMS_OK)
            goto fail;
    return e;
fail:
    hms_encoder_free(e);
    return NULL;
}

void hms_encoder_free(hms_encoder_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; e->names != NULL && i < e->ncaptures; i++) {
        for (int k = 0; k < NKINDS; k++) {
            free(e->names[i].type[k]);
            hms_buf_free(&e->names[i].head[k]);
        }
    }
    for (size_t i = 0; i < e->nrels; i++)
        relinfo_clear(&e->rels[i]);
    free(e->rels);
    free(e->names);
    free(e->sysid);
    free(e->dbname);
    hms_buf_free(&e->scratch);
    hms_buf_free(&e->jsonstack);
    free(e);
}

void hms_event_free(hms_event_t *ev)
{
    hms_buf_free(&ev->body);
    hms_buf_free(&ev->routing_key);
}

/* ---- encoding one change ---- */

/* What one encode call works on. */
typedef struct {
    hms_encoder_t *e;
    const relinfo_t *ri;
    const hms_pgo_relation_t *rel;
    const hms_pgo_tuple_t *row; /* the row that becomes data */
    const hms_pgo_tuple_t *old; /* the full old row, when sent (REPLICA IDENTITY FULL) */
    bool keyonly;               /* row carries the replica identity columns only */
    const char *id;
    hms_err_t *err;
} encctx_t;

static hms_status_t col_fail(const encctx_t *c, int col, const char *what)
{
    return hms_err_set(c->err, HMS_ERR_ENCODE, "%s.%s column %s: %s (event %s)",
                       rel_nspname(c->rel), c->rel->relname, col_name(c->rel, (size_t)col), what,
                       c->id);
}

/* Column col of the row being encoded; *v NULL when the row does not carry
 * it (a key-only old row).  An unchanged TOASTed value comes from the full
 * old row, or the change fails: a guessed value would be a wrong one. */
static hms_status_t column_value(const encctx_t *c, int col, const hms_pgo_value_t **v)
{
    *v = NULL;
    if (col < 0 || (c->keyonly && !(c->rel->cols[col].flags & 1)))
        return HMS_OK;
    const hms_pgo_value_t *val = &c->row->values[col];
    if (val->kind == HMS_PGO_VAL_UNCHANGED) {
        if (c->old == NULL || c->old->values[col].kind != HMS_PGO_VAL_TEXT)
            return col_fail(c, col,
                            "an unchanged TOASTed value and the table's REPLICA IDENTITY is not "
                            "FULL");
        val = &c->old->values[col];
    }
    if (val->kind == HMS_PGO_VAL_BINARY)
        return col_fail(c, col, "binary-format value (only text format is supported)");
    if (val->kind == HMS_PGO_VAL_TEXT && val->data == NULL && val->len > 0)
        return col_fail(c, col, "text value without data");
    if (val->kind != HMS_PGO_VAL_TEXT && val->kind != HMS_PGO_VAL_NULL)
        return col_fail(c, col, "unknown value kind");
    *v = val;
    return HMS_OK;
}

static bool has_text(const hms_pgo_value_t *v)
{
    return v != NULL && v->kind == HMS_PGO_VAL_TEXT;
}

static hms_status_t put_routing_key(hms_buf_t *rk, const hms_capture_t *cap, int kind,
                                    const hms_pgo_value_t *region)
{
    hms_status_t st;
    if ((st = hms_buf_append_str(rk, cap->routing_prefix)) != HMS_OK ||
        (st = hms_buf_append_char(rk, '.')) != HMS_OK ||
        (st = hms_buf_append_str(rk, kind_route[kind])) != HMS_OK ||
        (st = hms_buf_append_char(rk, '.')) != HMS_OK)
        return st;
    size_t n = has_text(region) ? region->len : 0;
    if (n == 0)
        return hms_buf_append_char(rk, '_');
    /* Routing keys are AMQP short strings: cut the region at a character
     * boundary so the key fits in 255 bytes.  '.', '*' and '#' would split
     * or match topic words, so they become '_'. */
    size_t room = rk->len < ROUTING_KEY_MAX ? ROUTING_KEY_MAX - rk->len : 0;
    if (n > room) {
        n = room;
        while (n > 0 && ((unsigned char)region->data[n] & 0xC0) == 0x80)
            n--;
    }
    size_t start = rk->len;
    if ((st = hms_buf_append(rk, region->data, n)) != HMS_OK)
        return st;
    for (size_t i = start; i < rk->len; i++)
        if (rk->data[i] == '.' || rk->data[i] == '*' || rk->data[i] == '#')
            rk->data[i] = '_';
    return HMS_OK;
}

static hms_status_t put_value(const encctx_t *c, hms_buf_t *out, int col, const hms_pgo_value_t *v)
{
    const char *why = "cannot be encoded";
    if (v == NULL || v->kind == HMS_PGO_VAL_NULL)
        return hms_buf_append(out, "null", 4);
    hms_status_t st = put_scalar(c->e, out, c->rel->cols[col].type_oid,
                                 v->data != NULL ? v->data : "", v->len, &why);
    if (st == HMS_ERR_ENCODE) {
        char what[96];
        snprintf(what, sizeof what, "value of type oid %u is %s", c->rel->cols[col].type_oid, why);
        return col_fail(c, col, what);
    }
    return st;
}

/* The LWW extension attributes; each is omitted when its column is absent
 * from the relation (or SQL NULL), so other captured tables need not have
 * them.  The incidents schema requires all three. */
static hms_status_t put_extensions(const encctx_t *c, hms_buf_t *b)
{
    const relinfo_t *ri = c->ri;
    const hms_pgo_value_t *v;
    hms_status_t st;
    char ts[28];
    int64_t usec;
    if ((st = column_value(c, ri->version, &v)) != HMS_OK)
        return st;
    if (has_text(v)) {
        if (!is_json_integer(v->data, v->len))
            return col_fail(c, ri->version, "version is not an integer");
        if ((st = hms_buf_append_str(b, ",\"version\":")) != HMS_OK ||
            (st = hms_buf_append(b, v->data, v->len)) != HMS_OK)
            return st;
    }
    if ((st = column_value(c, ri->updated, &v)) != HMS_OK)
        return st;
    if (has_text(v)) {
        /* updatedat orders events (last-write-wins): a value we cannot put
         * in RFC 3339 must stop the line rather than travel as junk. */
        if (!parse_pg_timestamp(v->data, v->len, &usec) || !format_rfc3339(usec, ts))
            return col_fail(c, ri->updated, "updated_at cannot be expressed in RFC 3339");
        if ((st = hms_buf_append_str(b, ",\"updatedat\":\"")) != HMS_OK ||
            (st = hms_buf_append(b, ts, 27)) != HMS_OK ||
            (st = hms_buf_append_char(b, '"')) != HMS_OK)
            return st;
    }
    if ((st = column_value(c, ri->origin, &v)) != HMS_OK)
        return st;
    if (has_text(v)) {
        if ((st = hms_buf_append_str(b, ",\"origin\":")) != HMS_OK ||
            (st = hms_buf_append_json_str(b, v->data, v->len)) != HMS_OK)
            return st;
    }
    return HMS_OK;
}

static hms_status_t put_data(const encctx_t *c, hms_buf_t *b)
{
    const relinfo_t *ri = c->ri;
    hms_status_t st = hms_buf_append_str(b, ",\"data\":{");
    bool first = true;
    for (int i = 0; st == HMS_OK && i < ri->ncols; i++) {
        const hms_pgo_value_t *v;
        if ((st = column_value(c, i, &v)) != HMS_OK)
            return st;
        if (v == NULL)
            continue;
        if (!first && (st = hms_buf_append_char(b, ',')) != HMS_OK)
            return st;
        first = false;
        if ((st = hms_buf_append(b, ri->keys.data + ri->key_off[i],
                                 ri->key_off[i + 1] - ri->key_off[i])) != HMS_OK)
            return st;
        st = put_value(c, b, i, v);
    }
    if (st == HMS_OK)
        st = hms_buf_append(b, "}}", 2);
    return st;
}

hms_status_t hms_encoder_encode(hms_encoder_t *e, const hms_txctx_t *tx, const hms_pgo_msg_t *msg,
                                hms_event_t *ev, hms_err_t *err)
{
    encctx_t c = {.e = e, .err = err, .id = ev->id};
    const hms_pgo_relation_t *rel = msg->u.change.rel;
    relinfo_t *ri;
    hms_status_t st;
    int kind;
    char lsn[HMS_LSN_STR_MAX], ts[28];

    hms_buf_reset(&ev->body);
    hms_buf_reset(&ev->routing_key);
    ev->id[0] = '\0';
    ev->type = NULL;
    ev->time_unix = 0;
    switch (msg->kind) {
    case HMS_PGO_INSERT: kind = KIND_CREATED; break;
    case HMS_PGO_UPDATE: kind = KIND_UPDATED; break;
    case HMS_PGO_DELETE: kind = KIND_DELETED; break;
    default:
        return hms_err_set(err, HMS_ERR_STATE, "encoder: message kind '%c' is not a row change",
                           (char)msg->kind);
    }
    if (rel == NULL)
        return hms_err_set(err, HMS_ERR_ENCODE, "encoder: change without a relation");
    if ((st = relinfo_get(e, rel, &ri)) != HMS_OK)
        return hms_err_set(err, st, "encoder: out of memory caching relation %u", rel->relid);
    if (ri == NULL)
        return hms_err_set(err, HMS_ERR_STATE, "encoder: relation %s.%s is not captured",
                           rel_nspname(rel), rel->relname != NULL ? rel->relname : "?");
    c.ri = ri;
    c.rel = rel;

    /* The id first, so that every later error can name the event. */
    size_t n = put_hex(ev->id, (uint32_t)(tx->commit_lsn >> 32), 8);
    n += put_hex(ev->id + n, (uint32_t)tx->commit_lsn, 8);
    ev->id[n++] = '-';
    char ord[12];
    size_t k = sizeof ord;
    uint32_t o = tx->ordinal;
    do {
        ord[--k] = (char)('0' + o % 10);
        o /= 10;
    } while (o != 0);
    memcpy(ev->id + n, ord + k, sizeof ord - k);
    ev->id[n + sizeof ord - k] = '\0';
    ev->type = e->names[ri->cap].type[kind];

    if (kind == KIND_DELETED) {
        c.row = &msg->u.change.oldtup;
        c.keyonly = msg->u.change.old_kind != 'O';
    } else {
        c.row = &msg->u.change.newtup;
        if (kind == KIND_UPDATED && msg->u.change.old_kind == 'O')
            c.old = &msg->u.change.oldtup;
    }
    if (c.row->ncols != rel->ncols || (c.row->ncols > 0 && c.row->values == NULL))
        return hms_err_set(err, HMS_ERR_ENCODE,
                           "%s.%s: change carries %u columns, the relation has %u (event %s)",
                           rel_nspname(rel), rel->relname, c.row->ncols, rel->ncols, ev->id);
    if (c.old != NULL && (c.old->ncols != rel->ncols || c.old->values == NULL))
        c.old = NULL;

    if (tx->commit_time > INT64_MAX - HMS_PG_EPOCH_OFFSET_USEC ||
        tx->commit_time < INT64_MIN + HMS_PG_EPOCH_OFFSET_USEC)
        return hms_err_set(err, HMS_ERR_ENCODE, "commit time %lld out of range (event %s)",
                           (long long)tx->commit_time, ev->id);
    int64_t unix_usec = tx->commit_time + HMS_PG_EPOCH_OFFSET_USEC;
    if (!format_rfc3339(unix_usec, ts))
        return hms_err_set(err, HMS_ERR_ENCODE, "commit time %lld out of range (event %s)",
                           (long long)tx->commit_time, ev->id);
    ev->time_unix = floor_div(unix_usec, USEC_PER_SEC);

    const hms_pgo_value_t *key, *region;
    if ((st = column_value(&c, ri->key, &key)) != HMS_OK ||
        (st = column_value(&c, ri->region, &region)) != HMS_OK)
        return st;
    if (ri->key < 0)
        return hms_err_set(err, HMS_ERR_ENCODE, "%s.%s has no key column %s (event %s)",
                           rel_nspname(rel), rel->relname, e->captures[ri->cap].key_column, ev->id);
    if (!has_text(key))
        return col_fail(&c, ri->key, "the key is NULL");

    hms_buf_t *b = &ev->body;
    const hms_buf_t *head = &e->names[ri->cap].head[kind];
    size_t lsn_len = lsn_text(tx->commit_lsn, lsn);
    if ((st = hms_buf_append(b, head->data, head->len)) != HMS_OK ||
        (st = hms_buf_append_str(b, ev->id)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"subject\":")) != HMS_OK ||
        (st = hms_buf_append_json_str(b, key->data, key->len)) != HMS_OK ||
        (st = hms_buf_append_str(b, ",\"time\":\"")) != HMS_OK ||
        (st = hms_buf_append(b, ts, 27)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"lsn\":\"")) != HMS_OK ||
        (st = hms_buf_append(b, lsn, lsn_len)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"txid\":")) != HMS_OK ||
        (st = put_u64(b, tx->xid)) != HMS_OK || (st = put_extensions(&c, b)) != HMS_OK ||
        (st = put_data(&c, b)) != HMS_OK ||
        (st = put_routing_key(&ev->routing_key, &e->captures[ri->cap], kind, region)) != HMS_OK)
        goto fail;
    return HMS_OK;
fail:
    /* Never leave half an event where a caller might publish it. */
    hms_buf_reset(&ev->body);
    hms_buf_reset(&ev->routing_key);
    if (st == HMS_ERR_NOMEM)
        hms_err_set(err, st, "encoder: out of memory encoding event %s", ev->id);
    return st;
}
