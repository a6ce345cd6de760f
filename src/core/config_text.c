/* config_text.c -- how a setting is spelled in text: its option and
 * environment names, where a value came from, what it allows, durations and
 * subcommand lists, for errors and renderers alike. */
#include <stdarg.h>
#include <stdio.h>

#include "core/config_int.h"

void hms_config_put(hms_buf_t *out, hms_status_t *st, const char *fmt, ...)
{
    if (*st != HMS_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        *st = HMS_ERR_NOMEM;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        *st = hms_buf_append(out, small, (size_t)n);
        return;
    }
    *st = hms_buf_reserve(out, (size_t)n);
    if (*st != HMS_OK)
        return;
    va_start(ap, fmt);
    vsnprintf(out->data + out->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    out->len += (size_t)n;
}

void hms_config_format_duration(int64_t ms, char *out, size_t n)
{
    if (ms != 0 && ms % HMS_CONFIG_HOUR == 0)
        snprintf(out, n, "%lldh", (long long)(ms / HMS_CONFIG_HOUR));
    else if (ms != 0 && ms % HMS_CONFIG_MIN == 0)
        snprintf(out, n, "%lldm", (long long)(ms / HMS_CONFIG_MIN));
    else if (ms % HMS_CONFIG_SEC == 0)
        snprintf(out, n, "%llds", (long long)(ms / HMS_CONFIG_SEC));
    else
        snprintf(out, n, "%lldms", (long long)ms);
}

void hms_config_option_name(const char *name, char *out, size_t n)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < n; i++)
        out[i] = name[i] == '_' ? '-' : name[i];
    out[i] = '\0';
}

void hms_config_env_name(const char *name, char *out, size_t n)
{
    int w = snprintf(out, n, "HMS_SYNC_");
    for (size_t i = 0; name[i] != '\0' && (size_t)w + 1 < n; i++, w++)
        out[w] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
    out[w] = '\0';
}

void hms_config_format_source(const hms_config_setting_t *s, hms_config_origin_t origin,
                              const char *file, int line, char *out, size_t n)
{
    char name[96];
    switch (origin) {
    case HMS_CONFIG_FROM_FILE:
        snprintf(out, n, "%s:%d", file != NULL ? file : "config file", line);
        return;
    case HMS_CONFIG_FROM_ENV:
        hms_config_env_name(s->name, name, sizeof(name));
        snprintf(out, n, "env %s", name);
        return;
    case HMS_CONFIG_FROM_FLAG:
        hms_config_option_name(s->name, name, sizeof(name));
        snprintf(out, n, "flag --%s", name);
        return;
    case HMS_CONFIG_FROM_DEFAULT: break;
    }
    snprintf(out, n, "default");
}

/* "0 (off) or " before the range of a setting that 0 turns off. */
static const char *zero_off(const hms_config_setting_t *s)
{
    return (s->flags & HMS_CONFIG_F_ZERO_OFF) ? "0 (off) or " : "";
}

void hms_config_format_allowed(const hms_config_setting_t *s, char *out, size_t n)
{
    char lo[32], hi[32];
    size_t w = 0;
    switch (s->type) {
    case HMS_CONFIG_T_CONNINFO:
        snprintf(out, n, "libpq key=value pairs or a postgresql:// URI");
        return;
    case HMS_CONFIG_T_URL:
        snprintf(out, n,
                 "amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST], or amqps://, one per node, "
                 "comma-separated");
        return;
    case HMS_CONFIG_T_IDENT:
        snprintf(out, n, "%lld..%lld characters of a-z, 0-9, _", (long long)s->min,
                 (long long)s->max);
        return;
    case HMS_CONFIG_T_EXCHANGE:
        snprintf(out, n, "%lld..%lld characters of A-Z, a-z, 0-9, '.', '_', ':', '-'",
                 (long long)s->min, (long long)s->max);
        return;
    case HMS_CONFIG_T_PATH: snprintf(out, n, "a file path"); return;
    case HMS_CONFIG_T_DIR: snprintf(out, n, "a directory path"); return;
    case HMS_CONFIG_T_LISTEN:
        snprintf(out, n,
                 "HOST:PORT or [IPV6]:PORT, e.g. 127.0.0.1:9187, [::1]:9187 or "
                 "localhost:9187");
        return;
    case HMS_CONFIG_T_KEYS:
        snprintf(out, n, "comma-separated binding keys of A-Z, a-z, 0-9, '.', '_', '-', '*', '#'");
        return;
    case HMS_CONFIG_T_FUNC:
        snprintf(out, n,
                 "a function name, [schema.]name of a-z, A-Z, 0-9, _, optionally with "
                 "(jsonb)");
        return;
    case HMS_CONFIG_T_INT:
        snprintf(out, n, "%s%lld..%lld", zero_off(s), (long long)s->min, (long long)s->max);
        return;
    case HMS_CONFIG_T_DURATION:
        hms_config_format_duration(s->min, lo, sizeof(lo));
        hms_config_format_duration(s->max, hi, sizeof(hi));
        snprintf(out, n, "%s%s..%s%s, as %s10s, 2m, 1h; a bare number is seconds", zero_off(s), lo,
                 hi, (s->flags & HMS_CONFIG_F_SECONDS) ? " in whole seconds" : "",
                 (s->flags & HMS_CONFIG_F_SECONDS) ? "" : "500ms, ");
        return;
    case HMS_CONFIG_T_BOOL: snprintf(out, n, "true|false"); return;
    case HMS_CONFIG_T_ENUM:
        out[0] = '\0';
        for (int i = 0; s->choices[i] != NULL && w < n; i++)
            w += (size_t)snprintf(out + w, n - w, "%s%s", i ? "|" : "", s->choices[i]);
        return;
    }
}

const char *hms_config_type_metavar(const hms_config_setting_t *s)
{
    switch (s->type) {
    case HMS_CONFIG_T_CONNINFO: return "CONNINFO";
    case HMS_CONFIG_T_URL: return "URL";
    case HMS_CONFIG_T_IDENT:
    case HMS_CONFIG_T_EXCHANGE: return "NAME";
    case HMS_CONFIG_T_PATH: return "FILE";
    case HMS_CONFIG_T_DIR: return "DIR";
    case HMS_CONFIG_T_LISTEN: return "HOST:PORT";
    case HMS_CONFIG_T_KEYS: return "KEY";
    case HMS_CONFIG_T_FUNC: return "SQLFUNC";
    case HMS_CONFIG_T_INT: return "N";
    case HMS_CONFIG_T_DURATION: return "DURATION";
    case HMS_CONFIG_T_BOOL: return "";
    case HMS_CONFIG_T_ENUM: return NULL; /* the choices */
    }
    return "";
}

const char *hms_config_type_name(const hms_config_setting_t *s)
{
    switch (s->type) {
    case HMS_CONFIG_T_CONNINFO: return "connection string";
    case HMS_CONFIG_T_URL: return "AMQP URL";
    case HMS_CONFIG_T_IDENT: return "identifier";
    case HMS_CONFIG_T_EXCHANGE: return "exchange name";
    case HMS_CONFIG_T_PATH:
    case HMS_CONFIG_T_DIR: return "path";
    case HMS_CONFIG_T_LISTEN: return "listen address";
    case HMS_CONFIG_T_KEYS: return "binding keys";
    case HMS_CONFIG_T_FUNC: return "SQL function";
    case HMS_CONFIG_T_INT: return "integer";
    case HMS_CONFIG_T_DURATION: return "duration";
    case HMS_CONFIG_T_BOOL: return "boolean";
    case HMS_CONFIG_T_ENUM: return "choice";
    }
    return "";
}

void hms_config_format_cmds(unsigned cmds, char *out, size_t n)
{
    size_t w = 0;
    out[0] = '\0';
    for (unsigned bit = 1; bit <= HMS_CMD_ALL && w < n; bit <<= 1)
        if (cmds & bit)
            w += (size_t)snprintf(out + w, n - w, "%s%s", w ? ", " : "", hms_config_cmd_name(bit));
}
