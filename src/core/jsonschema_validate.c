/* jsonschema_validate.c -- checking a json-c value against a loaded schema,
 * keyword by keyword (the supported keywords are listed in jsonschema.h). */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonschema_int.h"

#define PATH_MAX_LEN 256

typedef struct {
    const hms_schema_t *root;
    hms_err_t *err; /* NULL while probing a branch (anyOf, not, ...) */
    char path[PATH_MAX_LEN];
    size_t plen;
    int depth;
} vctx_t;

static bool is_number(json_object *v)
{
    json_type t = json_object_get_type(v);
    return t == json_type_int || t == json_type_double;
}

static bool is_integer(json_object *v)
{
    if (json_object_is_type(v, json_type_int))
        return true;
    if (!json_object_is_type(v, json_type_double))
        return false;
    double d = json_object_get_double(v);
    return isfinite(d) && floor(d) == d;
}

/* Compares two numbers: <0, 0, >0.  Exact for two integers. */
static int num_cmp(json_object *a, json_object *b)
{
    if (json_object_is_type(a, json_type_int) && json_object_is_type(b, json_type_int)) {
        int64_t x = json_object_get_int64(a), y = json_object_get_int64(b);
        return (x > y) - (x < y);
    }
    double x = json_object_get_double(a), y = json_object_get_double(b);
    return (x > y) - (x < y);
}

static bool json_equal(json_object *a, json_object *b, int depth)
{
    if (depth > HMS_SCHEMA_MAX_DEPTH)
        return false;
    if (is_number(a) && is_number(b))
        return num_cmp(a, b) == 0;
    json_type t = json_object_get_type(a);
    if (t != json_object_get_type(b))
        return false;
    switch (t) {
    case json_type_null: return true;
    case json_type_boolean: return json_object_get_boolean(a) == json_object_get_boolean(b);
    case json_type_string:
        return json_object_get_string_len(a) == json_object_get_string_len(b) &&
               memcmp(json_object_get_string(a), json_object_get_string(b),
                      (size_t)json_object_get_string_len(a)) == 0;
    case json_type_array: {
        size_t n = json_object_array_length(a);
        if (n != json_object_array_length(b))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!json_equal(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i),
                            depth + 1))
                return false;
        return true;
    }
    case json_type_object: {
        if (json_object_object_length(a) != json_object_object_length(b))
            return false;
        json_object_object_foreach(a, k, va)
        {
            json_object *vb;
            if (!json_object_object_get_ex(b, k, &vb) || !json_equal(va, vb, depth + 1))
                return false;
        }
        return true;
    }
    default: return false;
    }
}

static size_t utf8_count(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}

static const char *type_name(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "boolean";
    case json_type_int: return "integer";
    case json_type_double: return "number";
    case json_type_string: return "string";
    case json_type_array: return "array";
    case json_type_object: return "object";
    }
    return "?";
}

static bool type_matches(json_object *v, const char *name)
{
    if (strcmp(name, "integer") == 0)
        return is_integer(v);
    if (strcmp(name, "number") == 0)
        return is_number(v);
    return strcmp(name, type_name(v)) == 0;
}

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* RFC 3339 date-time: full-date "T" full-time, T and Z in either case. A
 * leap second is valid only where it falls on 23:59:60 UTC. */
static bool valid_date_time(const char *s, size_t n)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return false;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + num2(s + 2);
    int mo = num2(s + 5), d = num2(s + 8), h = num2(s + 11), mi = num2(s + 14), sec = num2(s + 17);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > (mo == 2 && leap ? 29 : dim[mo - 1]) || h > 23 ||
        mi > 59 || sec > 60)
        return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t j = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == j)
            return false;
    }
    int off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) &&
               s[i + 3] == ':' && digits(s + i + 4, 2)) {
        int oh = num2(s + i + 1), om = num2(s + i + 4);
        if (oh > 23 || om > 59)
            return false;
        off = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
        i += 6;
    } else {
        return false;
    }
    if (i != n)
        return false;
    if (sec == 60) {
        int utc = ((h * 60 + mi - off) % 1440 + 1440) % 1440;
        if (utc != 23 * 60 + 59)
            return false;
    }
    return true;
}

static bool valid_uuid(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool hyphen = i == 8 || i == 13 || i == 18 || i == 23;
        if (hyphen ? c != '-'
                   : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* ---- validation ---- */

/* Records the first failure (only when not probing). Always returns
 * HMS_ERR_MALFORMED. */
static hms_status_t reject(const vctx_t *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static hms_status_t reject(const vctx_t *v, const char *fmt, ...)
{
    if (v->err != NULL) {
        char msg[HMS_ERR_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        hms_err_set(v->err, HMS_ERR_MALFORMED, "%s: %s", v->plen > 0 ? v->path : "(root)", msg);
        hms_schema_one_line(v->err);
    }
    return HMS_ERR_MALFORMED;
}

/* A short rendering of an instance value for messages. */
static const char *show(json_object *inst, char *buf, size_t size)
{
    const char *s = json_object_to_json_string_ext(inst, JSON_C_TO_STRING_PLAIN);
    if (strlen(s) < size) {
        memcpy(buf, s, strlen(s) + 1);
    } else {
        memcpy(buf, s, size - 4);
        memcpy(buf + size - 4, "...", 4);
    }
    return buf;
}

static const char *show_num(json_object *num, char *buf, size_t size)
{
    if (json_object_is_type(num, json_type_int))
        snprintf(buf, size, "%" PRId64, json_object_get_int64(num));
    else
        snprintf(buf, size, "%.17g", json_object_get_double(num));
    return buf;
}

/* Appends one JSON pointer token; returns the length to restore. */
static size_t path_push(vctx_t *v, const char *key)
{
    size_t saved = v->plen;
    if (v->err == NULL)
        return saved;
    char *p = v->path;
    /* cap leaves room for "..." and the NUL.  A path cut short ends past
     * cap, and tokens below it add nothing more. */
    size_t n = v->plen, cap = sizeof v->path - 4;
    if (n > cap)
        return saved;
    bool cut = n + 1 > cap;
    if (!cut)
        p[n++] = '/';
    for (const char *k = key; !cut && *k != '\0'; k++) {
        bool escape = *k == '~' || *k == '/';
        if (n + (escape ? 2 : 1) > cap) {
            cut = true;
        } else if (escape) {
            p[n++] = '~';
            p[n++] = *k == '~' ? '0' : '1';
        } else {
            p[n++] = *k;
        }
    }
    if (cut) {
        memcpy(p + n, "...", 3);
        n += 3;
    }
    p[n] = '\0';
    v->plen = n;
    return saved;
}

static size_t path_push_index(vctx_t *v, size_t i)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%zu", i);
    return path_push(v, tmp);
}

static void path_pop(vctx_t *v, size_t saved)
{
    if (v->err == NULL)
        return;
    v->plen = saved;
    v->path[saved] = '\0';
}

/* Sorted (strcmp order) for the binary search in kw_find. */
static const struct {
    const char *name;
    size_t offset;
} kw_names[] = {
    {"$ref", offsetof(hms_schema_kw_t, k_ref)},
    {"additionalProperties", offsetof(hms_schema_kw_t, k_additionalProperties)},
    {"allOf", offsetof(hms_schema_kw_t, k_allOf)},
    {"anyOf", offsetof(hms_schema_kw_t, k_anyOf)},
    {"const", offsetof(hms_schema_kw_t, k_const)},
    {"contains", offsetof(hms_schema_kw_t, k_contains)},
    {"dependentRequired", offsetof(hms_schema_kw_t, k_dependentRequired)},
    {"dependentSchemas", offsetof(hms_schema_kw_t, k_dependentSchemas)},
    {"else", offsetof(hms_schema_kw_t, k_else)},
    {"enum", offsetof(hms_schema_kw_t, k_enum)},
    {"exclusiveMaximum", offsetof(hms_schema_kw_t, k_exclusiveMaximum)},
    {"exclusiveMinimum", offsetof(hms_schema_kw_t, k_exclusiveMinimum)},
    {"format", offsetof(hms_schema_kw_t, k_format)},
    {"if", offsetof(hms_schema_kw_t, k_if)},
    {"items", offsetof(hms_schema_kw_t, k_items)},
    {"maxContains", offsetof(hms_schema_kw_t, k_maxContains)},
    {"maxItems", offsetof(hms_schema_kw_t, k_maxItems)},
    {"maxLength", offsetof(hms_schema_kw_t, k_maxLength)},
    {"maxProperties", offsetof(hms_schema_kw_t, k_maxProperties)},
    {"maximum", offsetof(hms_schema_kw_t, k_maximum)},
    {"minContains", offsetof(hms_schema_kw_t, k_minContains)},
    {"minItems", offsetof(hms_schema_kw_t, k_minItems)},
    {"minLength", offsetof(hms_schema_kw_t, k_minLength)},
    {"minProperties", offsetof(hms_schema_kw_t, k_minProperties)},
    {"minimum", offsetof(hms_schema_kw_t, k_minimum)},
    {"multipleOf", offsetof(hms_schema_kw_t, k_multipleOf)},
    {"not", offsetof(hms_schema_kw_t, k_not)},
    {"oneOf", offsetof(hms_schema_kw_t, k_oneOf)},
    {"pattern", offsetof(hms_schema_kw_t, k_pattern)},
    {"patternProperties", offsetof(hms_schema_kw_t, k_patternProperties)},
    {"prefixItems", offsetof(hms_schema_kw_t, k_prefixItems)},
    {"properties", offsetof(hms_schema_kw_t, k_properties)},
    {"propertyNames", offsetof(hms_schema_kw_t, k_propertyNames)},
    {"required", offsetof(hms_schema_kw_t, k_required)},
    {"then", offsetof(hms_schema_kw_t, k_then)},
    {"type", offsetof(hms_schema_kw_t, k_type)},
    {"uniqueItems", offsetof(hms_schema_kw_t, k_uniqueItems)},
};

enum { KW_COUNT = sizeof kw_names / sizeof kw_names[0] };

static int kw_find(const char *name)
{
    int lo = 0, hi = KW_COUNT - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(name, kw_names[mid].name);
        if (c == 0)
            return mid;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

void hms_schema_kw_read(json_object *schema, hms_schema_kw_t *kw)
{
    memset(kw, 0, sizeof *kw);
    json_object_object_foreach(schema, name, val)
    {
        int i = kw_find(name);
        if (i < 0)
            continue;
        *(json_object **)((char *)kw + kw_names[i].offset) = val;
        kw->has |= UINT64_C(1) << i;
    }
}

/* Whether keyword name (one of kw_names) is a member, null-valued included. */
static bool kw_has(const hms_schema_kw_t *kw, const char *name)
{
    int i = kw_find(name);
    return i >= 0 && (kw->has & (UINT64_C(1) << i)) != 0;
}

static hms_status_t validate(vctx_t *v, json_object *schema, json_object *inst);

/* Validates without recording errors: the branches of anyOf, oneOf, not,
 * if and contains, whose failures are expected. */
static bool probe(const vctx_t *v, json_object *schema, json_object *inst)
{
    vctx_t q = {.root = v->root, .err = NULL, .depth = v->depth};
    q.path[0] = '\0';
    return validate(&q, schema, inst) == HMS_OK;
}

/* Resolves "#", "#/a/b" or "<$id>#/a/b" within the root document. */
static json_object *resolve_ref(const vctx_t *v, const char *ref)
{
    const char *id = v->root->id;
    if (id != NULL) {
        size_t idlen = strlen(id);
        if (idlen > 0 && id[idlen - 1] == '#')
            idlen--;
        if (strncmp(ref, id, idlen) == 0 && (ref[idlen] == '#' || ref[idlen] == '\0'))
            ref += idlen;
    }
    if (ref[0] == '\0')
        return v->root->doc;
    if (ref[0] != '#')
        return NULL;
    json_object *cur = v->root->doc;
    const char *p = ref + 1;
    if (*p == '\0')
        return cur;
    if (*p != '/')
        return NULL;
    char token[256];
    while (*p == '/') {
        size_t n = 0;
        p++;
        while (*p != '\0' && *p != '/' && n < sizeof token - 1) {
            char c = *p++;
            if (c == '~' && (*p == '0' || *p == '1')) {
                c = *p++ == '0' ? '~' : '/';
            } else if (c == '%' && p[0] != '\0' && p[1] != '\0') {
                char hex[3] = {p[0], p[1], '\0'};
                char *end;
                long x = strtol(hex, &end, 16);
                if (*end == '\0') {
                    c = (char)x;
                    p += 2;
                }
            }
            token[n++] = c;
        }
        token[n] = '\0';
        if (*p != '\0' && *p != '/')
            return NULL;
        if (json_object_is_type(cur, json_type_object)) {
            if (!json_object_object_get_ex(cur, token, &cur))
                return NULL;
        } else if (json_object_is_type(cur, json_type_array)) {
            char *end;
            unsigned long idx = strtoul(token, &end, 10);
            if (n == 0 || *end != '\0' || idx >= json_object_array_length(cur))
                return NULL;
            cur = json_object_array_get_idx(cur, idx);
        } else {
            return NULL;
        }
    }
    return cur;
}

static hms_status_t check_type(vctx_t *v, json_object *t, json_object *inst)
{
    if (json_object_is_type(t, json_type_string)) {
        if (type_matches(inst, json_object_get_string(t)))
            return HMS_OK;
        return reject(v, "%s is not of type %s", type_name(inst), json_object_get_string(t));
    }
    if (json_object_is_type(t, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(t); i++) {
            json_object *name = json_object_array_get_idx(t, i);
            if (json_object_is_type(name, json_type_string) &&
                type_matches(inst, json_object_get_string(name)))
                return HMS_OK;
        }
        return reject(v, "%s is not of any allowed type", type_name(inst));
    }
    return HMS_OK;
}

static hms_status_t check_number(vctx_t *v, const hms_schema_kw_t *kw, json_object *inst)
{
    json_object *k;
    char a[64], b[64];
    if (((k = kw->k_multipleOf) != NULL) && is_number(k)) {
        double m = json_object_get_double(k), x = json_object_get_double(inst);
        bool ok;
        if (json_object_is_type(k, json_type_int) && json_object_is_type(inst, json_type_int) &&
            json_object_get_int64(k) > 0)
            ok = json_object_get_int64(inst) % json_object_get_int64(k) == 0;
        else if (m <= 0)
            ok = true;
        else {
            double q = x / m;
            ok = isfinite(q) ? fabs(q - nearbyint(q)) < 1e-9 : false;
        }
        if (!ok)
            return reject(v, "%s is not a multiple of %s", show_num(inst, a, sizeof a),
                          show_num(k, b, sizeof b));
    }
    if (((k = kw->k_minimum) != NULL) && is_number(k) && num_cmp(inst, k) < 0)
        return reject(v, "%s is less than minimum %s", show_num(inst, a, sizeof a),
                      show_num(k, b, sizeof b));
    if (((k = kw->k_maximum) != NULL) && is_number(k) && num_cmp(inst, k) > 0)
        return reject(v, "%s is greater than maximum %s", show_num(inst, a, sizeof a),
                      show_num(k, b, sizeof b));
    if (((k = kw->k_exclusiveMinimum) != NULL) && is_number(k) && num_cmp(inst, k) <= 0)
        return reject(v, "%s is not greater than exclusiveMinimum %s", show_num(inst, a, sizeof a),
                      show_num(k, b, sizeof b));
    if (((k = kw->k_exclusiveMaximum) != NULL) && is_number(k) && num_cmp(inst, k) >= 0)
        return reject(v, "%s is not less than exclusiveMaximum %s", show_num(inst, a, sizeof a),
                      show_num(k, b, sizeof b));
    return HMS_OK;
}

static hms_status_t check_string(vctx_t *v, const hms_schema_kw_t *kw, json_object *inst)
{
    json_object *k;
    char a[64];
    const char *s = json_object_get_string(inst);
    size_t n = (size_t)json_object_get_string_len(inst);
    if (((k = kw->k_minLength) != NULL) && is_number(k) &&
        (double)utf8_count(s, n) < json_object_get_double(k))
        return reject(v, "string of %zu characters is shorter than minLength %s", utf8_count(s, n),
                      show_num(k, a, sizeof a));
    if (((k = kw->k_maxLength) != NULL) && is_number(k) &&
        (double)utf8_count(s, n) > json_object_get_double(k))
        return reject(v, "string of %zu characters is longer than maxLength %s", utf8_count(s, n),
                      show_num(k, a, sizeof a));
    if (((k = kw->k_pattern) != NULL)) {
        const hms_schema_regset_t *rs = hms_schema_regexes_of(k, json_type_string);
        if (rs != NULL && rs->n == 1 && regexec(&rs->re[0], s, 0, NULL, 0) != 0)
            return reject(v, "\"%.100s\" does not match pattern %.100s", s,
                          json_object_get_string(k));
    }
    if (((k = kw->k_format) != NULL) && json_object_is_type(k, json_type_string)) {
        const char *f = json_object_get_string(k);
        if (strcmp(f, "date-time") == 0 && !valid_date_time(s, n))
            return reject(v, "\"%.100s\" is not a valid date-time (format)", s);
        if (strcmp(f, "uuid") == 0 && !valid_uuid(s, n))
            return reject(v, "\"%.100s\" is not a valid uuid (format)", s);
    }
    return HMS_OK;
}

static hms_status_t check_array(vctx_t *v, const hms_schema_kw_t *kw, json_object *inst)
{
    json_object *k;
    char a[64];
    hms_status_t st;
    size_t n = json_object_array_length(inst), prefix = 0;
    if (((k = kw->k_minItems) != NULL) && is_number(k) && (double)n < json_object_get_double(k))
        return reject(v, "array of %zu items is shorter than minItems %s", n,
                      show_num(k, a, sizeof a));
    if (((k = kw->k_maxItems) != NULL) && is_number(k) && (double)n > json_object_get_double(k))
        return reject(v, "array of %zu items is longer than maxItems %s", n,
                      show_num(k, a, sizeof a));
    if (((k = kw->k_uniqueItems) != NULL) && json_object_get_boolean(k)) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (json_equal(json_object_array_get_idx(inst, i),
                               json_object_array_get_idx(inst, j), 0))
                    return reject(v, "items %zu and %zu are equal (uniqueItems)", i, j);
    }
    if (((k = kw->k_prefixItems) != NULL) && json_object_is_type(k, json_type_array)) {
        prefix = json_object_array_length(k);
        for (size_t i = 0; i < prefix && i < n; i++) {
            size_t saved = path_push_index(v, i);
            st = validate(v, json_object_array_get_idx(k, i), json_object_array_get_idx(inst, i));
            path_pop(v, saved);
            if (st != HMS_OK)
                return st;
        }
    }
    if (((k = kw->k_items) != NULL) && !json_object_is_type(k, json_type_array)) {
        for (size_t i = prefix; i < n; i++) {
            size_t saved = path_push_index(v, i);
            st = validate(v, k, json_object_array_get_idx(inst, i));
            path_pop(v, saved);
            if (st != HMS_OK)
                return st;
        }
    }
    if (((k = kw->k_contains) != NULL)) {
        size_t found = 0;
        json_object *mn, *mx;
        double min = 1, max = INFINITY;
        if (((mn = kw->k_minContains) != NULL) && is_number(mn))
            min = json_object_get_double(mn);
        if (((mx = kw->k_maxContains) != NULL) && is_number(mx))
            max = json_object_get_double(mx);
        for (size_t i = 0; i < n; i++)
            if (probe(v, k, json_object_array_get_idx(inst, i)))
                found++;
        if ((double)found < min)
            return reject(v, "%zu items match contains, fewer than %g", found, min);
        if ((double)found > max)
            return reject(v, "%zu items match contains, more than maxContains %g", found, max);
    }
    return HMS_OK;
}

static hms_status_t check_object(vctx_t *v, const hms_schema_kw_t *kw, json_object *inst)
{
    json_object *k, *props = NULL, *pprops = NULL, *addl = NULL;
    char a[64];
    hms_status_t st;
    int n = json_object_object_length(inst);
    if (((k = kw->k_minProperties) != NULL) && is_number(k) && n < json_object_get_double(k))
        return reject(v, "object of %d properties has fewer than minProperties %s", n,
                      show_num(k, a, sizeof a));
    if (((k = kw->k_maxProperties) != NULL) && is_number(k) && n > json_object_get_double(k))
        return reject(v, "object of %d properties has more than maxProperties %s", n,
                      show_num(k, a, sizeof a));
    if (((k = kw->k_required) != NULL) && json_object_is_type(k, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(k); i++) {
            const char *name = json_object_get_string(json_object_array_get_idx(k, i));
            if (name != NULL && !json_object_object_get_ex(inst, name, NULL))
                return reject(v, "required property \"%s\" is missing", name);
        }
    }
    if (((k = kw->k_dependentRequired) != NULL) && json_object_is_type(k, json_type_object)) {
        json_object_object_foreach(k, name, deps)
        {
            if (!json_object_object_get_ex(inst, name, NULL) ||
                !json_object_is_type(deps, json_type_array))
                continue;
            for (size_t i = 0; i < json_object_array_length(deps); i++) {
                const char *dep = json_object_get_string(json_object_array_get_idx(deps, i));
                if (dep != NULL && !json_object_object_get_ex(inst, dep, NULL))
                    return reject(v, "property \"%s\" requires \"%s\" (dependentRequired)", name,
                                  dep);
            }
        }
    }
    if (((k = kw->k_dependentSchemas) != NULL) && json_object_is_type(k, json_type_object)) {
        json_object_object_foreach(k, name, sub)
        {
            if (json_object_object_get_ex(inst, name, NULL) &&
                (st = validate(v, sub, inst)) != HMS_OK)
                return st;
        }
    }
    props = kw->k_properties;
    if (!json_object_is_type(props, json_type_object))
        props = NULL;
    pprops = kw->k_patternProperties;
    if (!json_object_is_type(pprops, json_type_object))
        pprops = NULL;
    if (!((addl = kw->k_additionalProperties) != NULL))
        addl = NULL;
    json_object *pnames = NULL;
    pnames = kw->k_propertyNames;
    if (props == NULL && pprops == NULL && addl == NULL && pnames == NULL)
        return HMS_OK;
    const hms_schema_regset_t *rs = hms_schema_regexes_of(pprops, json_type_object);
    json_object_object_foreach(inst, name, val)
    {
        bool matched = false;
        json_object *sub;
        size_t saved = path_push(v, name);
        if (pnames != NULL) {
            json_object *str = json_object_new_string(name);
            if (str == NULL) {
                path_pop(v, saved);
                return reject(v, "out of memory");
            }
            bool ok = probe(v, pnames, str);
            json_object_put(str);
            if (!ok) {
                st = reject(v, "property name does not match propertyNames");
                path_pop(v, saved);
                return st;
            }
        }
        if (props != NULL && json_object_object_get_ex(props, name, &sub)) {
            matched = true;
            if ((st = validate(v, sub, val)) != HMS_OK) {
                path_pop(v, saved);
                return st;
            }
        }
        if (rs != NULL) {
            size_t i = 0;
            json_object_object_foreach(pprops, pat, psub)
            {
                (void)pat;
                if (i < rs->n && regexec(&rs->re[i], name, 0, NULL, 0) == 0) {
                    matched = true;
                    if ((st = validate(v, psub, val)) != HMS_OK) {
                        path_pop(v, saved);
                        return st;
                    }
                }
                i++;
            }
        }
        if (!matched && addl != NULL) {
            if (json_object_is_type(addl, json_type_boolean) && !json_object_get_boolean(addl))
                st = reject(v, "property is not allowed (additionalProperties)");
            else
                st = validate(v, addl, val);
            if (st != HMS_OK) {
                path_pop(v, saved);
                return st;
            }
        }
        path_pop(v, saved);
    }
    return HMS_OK;
}

static hms_status_t check_combinators(vctx_t *v, const hms_schema_kw_t *kw, json_object *inst)
{
    json_object *k;
    hms_status_t st;
    if (((k = kw->k_allOf) != NULL) && json_object_is_type(k, json_type_array))
        for (size_t i = 0; i < json_object_array_length(k); i++)
            if ((st = validate(v, json_object_array_get_idx(k, i), inst)) != HMS_OK)
                return st;
    if (((k = kw->k_anyOf) != NULL) && json_object_is_type(k, json_type_array)) {
        bool any = false;
        for (size_t i = 0; i < json_object_array_length(k) && !any; i++)
            any = probe(v, json_object_array_get_idx(k, i), inst);
        if (!any)
            return reject(v, "value matches no schema in anyOf");
    }
    if (((k = kw->k_oneOf) != NULL) && json_object_is_type(k, json_type_array)) {
        size_t count = 0;
        for (size_t i = 0; i < json_object_array_length(k); i++)
            count += probe(v, json_object_array_get_idx(k, i), inst);
        if (count != 1)
            return reject(v, "value matches %zu schemas in oneOf, not exactly one", count);
    }
    if (((k = kw->k_not) != NULL) && probe(v, k, inst))
        return reject(v, "value matches the schema in not");
    if (((k = kw->k_if) != NULL)) {
        json_object *branch = NULL;
        const char *word = probe(v, k, inst) ? "then" : "else";
        if ((branch = word[0] == 't' ? kw->k_then : kw->k_else) != NULL &&
            (st = validate(v, branch, inst)) != HMS_OK)
            return st;
    }
    return HMS_OK;
}

static hms_status_t validate(vctx_t *v, json_object *schema, json_object *inst)
{
    json_object *k;
    hms_status_t st = HMS_OK;
    char a[128];
    if (json_object_is_type(schema, json_type_boolean))
        return json_object_get_boolean(schema) ? HMS_OK : reject(v, "no value is allowed here");
    if (!json_object_is_type(schema, json_type_object))
        return reject(v, "schema is neither an object nor a boolean");
    if (v->depth >= HMS_SCHEMA_MAX_DEPTH)
        return reject(v, "schema nesting or $ref chain deeper than %d", HMS_SCHEMA_MAX_DEPTH);
    v->depth++;
    hms_schema_kw_t kwv;
    const hms_schema_kw_t *kw = hms_schema_kw_of(v->root, schema);
    if (kw == NULL) { /* an object only a $ref into a non-schema place reaches */
        hms_schema_kw_read(schema, &kwv);
        kw = &kwv;
    }
    if (((k = kw->k_ref) != NULL) && json_object_is_type(k, json_type_string)) {
        json_object *target = resolve_ref(v, json_object_get_string(k));
        if (target == NULL)
            st = reject(v, "cannot resolve $ref \"%.200s\"", json_object_get_string(k));
        else
            st = validate(v, target, inst);
        if (st != HMS_OK)
            goto done;
    }
    if (((k = kw->k_type) != NULL) && (st = check_type(v, k, inst)) != HMS_OK)
        goto done;
    if (((k = kw->k_const) != NULL || kw_has(kw, "const")) && !json_equal(k, inst, 0)) {
        st = reject(v, "%s is not the const value", show(inst, a, sizeof a));
        goto done;
    }
    if (((k = kw->k_enum) != NULL) && json_object_is_type(k, json_type_array)) {
        bool found = false;
        for (size_t i = 0; i < json_object_array_length(k) && !found; i++)
            found = json_equal(json_object_array_get_idx(k, i), inst, 0);
        if (!found) {
            st = reject(v, "%s is not one of the enum values", show(inst, a, sizeof a));
            goto done;
        }
    }
    if (is_number(inst))
        st = check_number(v, kw, inst);
    else if (json_object_is_type(inst, json_type_string))
        st = check_string(v, kw, inst);
    else if (json_object_is_type(inst, json_type_array))
        st = check_array(v, kw, inst);
    else if (json_object_is_type(inst, json_type_object))
        st = check_object(v, kw, inst);
    if (st == HMS_OK)
        st = check_combinators(v, kw, inst);
done:
    v->depth--;
    return st;
}

hms_status_t hms_schema_validate(const hms_schema_t *s, json_object *instance, hms_err_t *err)
{
    vctx_t v = {.root = s, .err = err, .depth = 0};
    v.path[0] = '\0';
    return validate(&v, s->doc, instance);
}
