/* config_value.c -- one value of one setting: parsing it by the setting's
 * type, checking its range, and storing a copy in hms_config_t; defaults
 * are values like any other. */
#include <stdio.h>
#include <stdlib.h>

#include "core/config_int.h"
#include "core/hostport.h"

static bool parse_int64(const char *s, int64_t *out)
{
    int64_t v = 0;
    bool neg = *s == '-';
    const char *c = s + neg;
    if (*c == '\0')
        return false;
    for (; *c >= '0' && *c <= '9'; c++) {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (*c - '0');
    }
    if (*c != '\0')
        return false;
    *out = neg ? -v : v;
    return true;
}

static bool parse_duration(const char *s, int64_t *ms)
{
    int64_t v = 0;
    const char *c = s;
    if (*c < '0' || *c > '9')
        return false;
    for (; *c >= '0' && *c <= '9'; c++) {
        if (v > 1000000000000LL) /* beyond any range: keep the multiply from overflowing */
            return false;
        v = v * 10 + (*c - '0');
    }
    int64_t unit;
    if (*c == '\0' || strcmp(c, "s") == 0)
        unit = HMS_CONFIG_SEC;
    else if (strcmp(c, "ms") == 0)
        unit = 1;
    else if (strcmp(c, "m") == 0)
        unit = HMS_CONFIG_MIN;
    else if (strcmp(c, "h") == 0)
        unit = HMS_CONFIG_HOUR;
    else
        return false;
    if (v > INT64_MAX / unit) /* 9999999999999h: the digit cap alone lets this overflow */
        return false;
    *ms = v * unit;
    return true;
}

static bool parse_name(const char *s, const hms_config_setting_t *st, bool upper_and_punct)
{
    size_t n = strlen(s);
    if ((int64_t)n < st->min || (int64_t)n > st->max)
        return false;
    for (const char *c = s; *c != '\0'; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
        if (upper_and_punct)
            ok = ok || (*c >= 'A' && *c <= 'Z') || *c == '.' || *c == ':' || *c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* A comma-separated list of AMQP binding keys, each non-empty. */
static bool parse_keys(const char *s, const hms_config_setting_t *st)
{
    size_t n = strlen(s);
    if ((int64_t)n < st->min || (int64_t)n > st->max)
        return false;
    size_t word = 0;
    for (const char *c = s;; c++) {
        if (*c == ',' || *c == '\0') {
            if (word == 0 || word > 255)
                return false;
            if (*c == '\0')
                return true;
            word = 0;
            continue;
        }
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-' || *c == '*' ||
                  *c == '#';
        if (!ok)
            return false;
        word++;
    }
}

/* [schema.]name, optionally followed by "(jsonb)": what consume casts to
 * regprocedure, so no quoting or other argument list is needed. */
static bool parse_func(const char *s, const hms_config_setting_t *st)
{
    size_t n = strlen(s);
    if ((int64_t)n < st->min || (int64_t)n > st->max)
        return false;
    const char *paren = strchr(s, '(');
    size_t name_len = paren != NULL ? (size_t)(paren - s) : n;
    if (paren != NULL && strcmp(paren, "(jsonb)") != 0)
        return false;
    int dots = 0;
    for (size_t i = 0; i < name_len; i++) {
        char c = s[i];
        if (c == '.') {
            if (++dots > 1 || i == 0 || i + 1 == name_len)
                return false;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return name_len > 0;
}

/* Every number has a range; 0 may stand outside it for "off". */
static bool in_range(const hms_config_setting_t *s, int64_t v)
{
    return (v >= s->min && v <= s->max) || (v == 0 && (s->flags & HMS_CONFIG_F_ZERO_OFF));
}

/* An integer or a duration, within its range: into *slot as an int or an
 * int64_t of milliseconds. */
static bool parse_number(const hms_config_setting_t *s, const char *value, void *slot, char *why,
                         size_t whyn)
{
    bool duration = s->type == HMS_CONFIG_T_DURATION;
    int64_t v = 0;
    if (!(duration ? parse_duration(value, &v) : parse_int64(value, &v))) {
        snprintf(why, whyn, duration ? "is not a duration" : "is not an integer");
        return false;
    }
    if (!in_range(s, v)) {
        snprintf(why, whyn, "is out of range");
        return false;
    }
    if ((s->flags & HMS_CONFIG_F_SECONDS) && v % HMS_CONFIG_SEC != 0) {
        snprintf(why, whyn, "is not a whole number of seconds");
        return false;
    }
    if (duration)
        *(int64_t *)slot = v;
    else
        *(int *)slot = (int)v;
    return true;
}

/* Parses value for s into *slot (a scratch of the field's type).  On failure
 * writes a phrase like "is not an integer" into why. */
static bool parse_value(const hms_config_setting_t *s, const char *value, void *slot, char *why,
                        size_t whyn)
{
    if (value[0] == '\0') {
        snprintf(why, whyn, "is empty");
        return false;
    }
    switch (s->type) {
    case HMS_CONFIG_T_CONNINFO: {
        char detail[160];
        if (!hms_config_check_conninfo(value, detail, sizeof(detail))) {
            snprintf(why, whyn, "is not a connection string: %s", detail);
            return false;
        }
        break;
    }
    case HMS_CONFIG_T_URL: {
        char detail[160];
        if (!hms_config_check_amqp_url(value, detail, sizeof(detail))) {
            snprintf(why, whyn, "is not an AMQP URL: %s", detail);
            return false;
        }
        break;
    }
    case HMS_CONFIG_T_IDENT:
        if (!parse_name(value, s, false)) {
            snprintf(why, whyn, "is not a valid name");
            return false;
        }
        break;
    case HMS_CONFIG_T_EXCHANGE:
        if (!parse_name(value, s, true)) {
            snprintf(why, whyn, "is not a valid exchange name");
            return false;
        }
        break;
    case HMS_CONFIG_T_PATH:
    case HMS_CONFIG_T_DIR: break;
    case HMS_CONFIG_T_LISTEN: {
        hms_hostport_t hp;
        char detail[120];
        if (!hms_hostport_parse(value, &hp, detail, sizeof(detail))) {
            snprintf(why, whyn, "is not HOST:PORT or [IPV6]:PORT: %s", detail);
            return false;
        }
        break;
    }
    case HMS_CONFIG_T_KEYS:
        if (!parse_keys(value, s)) {
            snprintf(why, whyn, "is not a list of binding keys");
            return false;
        }
        break;
    case HMS_CONFIG_T_FUNC:
        if (!parse_func(value, s)) {
            snprintf(why, whyn, "is not a function name");
            return false;
        }
        break;
    case HMS_CONFIG_T_INT:
    case HMS_CONFIG_T_DURATION: return parse_number(s, value, slot, why, whyn);
    case HMS_CONFIG_T_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "on") == 0 ||
            strcmp(value, "1") == 0)
            *(bool *)slot = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
                 strcmp(value, "off") == 0 || strcmp(value, "0") == 0)
            *(bool *)slot = false;
        else {
            snprintf(why, whyn, "is not a boolean");
            return false;
        }
        return true;
    case HMS_CONFIG_T_ENUM:
        for (int i = 0; s->choices[i] != NULL; i++)
            if (strcmp(value, s->choices[i]) == 0) {
                *(int *)slot = i;
                return true;
            }
        snprintf(why, whyn, "is not one of the choices");
        return false;
    }
    /* A string type: the caller copies the value itself. */
    return true;
}

hms_status_t hms_config_set(hms_config_t *cfg, const char *name, const char *value,
                            hms_config_origin_t origin, const char *file, int line, hms_err_t *err)
{
    int i = hms_config_setting_index(name);
    if (i < 0)
        return hms_err_set(err, HMS_ERR_CONFIG, "config: unknown setting \"%.64s\"", name);
    const hms_config_setting_t *s = &hms_config_settings[i];
    union {
        int i;
        int64_t ms;
        bool b;
    } scratch = {0}; /* zeroed: gcc -O3 cannot see parse_value() always fills it */
    char why[200], src[300], allowed[160];
    if (!parse_value(s, value, &scratch, why, sizeof(why))) {
        hms_config_format_source(s, origin, file, line, src, sizeof(src));
        hms_config_format_allowed(s, allowed, sizeof(allowed));
        if (s->flags & HMS_CONFIG_F_SECRET)
            return hms_err_set(err, HMS_ERR_CONFIG, "config: %s: value from %s %s (allowed: %s)",
                               s->name, src, why, allowed);
        return hms_err_set(err, HMS_ERR_CONFIG, "config: %s: \"%.100s%s\" from %s %s (allowed: %s)",
                           s->name, value, strlen(value) > 100 ? "..." : "", src, why, allowed);
    }
    char *field = (char *)cfg + s->offset;
    if (s->type == HMS_CONFIG_T_KEYS && origin == HMS_CONFIG_FROM_FLAG &&
        cfg->source[i].origin == HMS_CONFIG_FROM_FLAG && *(char **)field != NULL) {
        /* A repeated --bind adds a key instead of replacing the list. */
        const char *old = *(char **)field;
        size_t total = strlen(old) + 1 + strlen(value);
        if ((int64_t)total > s->max)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: %s: the keys from flag --%s are longer than %lld "
                               "characters together",
                               s->name, s->name, (long long)s->max);
        char *joined = malloc(total + 1);
        if (joined == NULL)
            return hms_err_set(err, HMS_ERR_NOMEM, "config: %s: out of memory", s->name);
        snprintf(joined, total + 1, "%s,%s", old, value);
        free(*(char **)field);
        *(char **)field = joined;
    } else if (hms_config_is_string(s->type)) {
        char *copy = strdup(value);
        if (copy == NULL)
            return hms_err_set(err, HMS_ERR_NOMEM, "config: %s: out of memory", s->name);
        free(*(char **)field);
        *(char **)field = copy;
    } else if (s->type == HMS_CONFIG_T_INT || s->type == HMS_CONFIG_T_ENUM) {
        *(int *)field = scratch.i;
    } else if (s->type == HMS_CONFIG_T_DURATION) {
        *(int64_t *)field = scratch.ms;
    } else {
        *(bool *)field = scratch.b;
    }
    cfg->source[i].origin = origin;
    cfg->source[i].line = line;
    return HMS_OK;
}

hms_status_t hms_config_init(hms_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (int i = 0; i < hms_config_nsettings; i++) {
        if (hms_config_settings[i].def == NULL)
            continue;
        hms_status_t st =
            hms_config_set(cfg, hms_config_settings[i].name, hms_config_settings[i].def,
                           HMS_CONFIG_FROM_DEFAULT, NULL, 0, NULL);
        if (st != HMS_OK)
            return st; /* only NOMEM: the table test proves every default valid */
    }
    return HMS_OK;
}

void hms_config_free(hms_config_t *cfg)
{
    for (int i = 0; i < hms_config_nsettings; i++)
        if (hms_config_is_string(hms_config_settings[i].type))
            free(*(char **)((char *)cfg + hms_config_settings[i].offset));
    memset(cfg, 0, sizeof(*cfg));
}
