/* config_connstr.c -- the two settings that are connection strings: the
 * syntax of a libpq conninfo (key=value pairs or a URI) and of a list of
 * AMQP URLs (one per RabbitMQ node), checked without echoing them, and
 * their passwords replaced by *** when printed. */
#include <stdio.h>

#include "core/amqpnodes.h"
#include "core/config_int.h"

/* One step of a libpq key=value scanner, following libpq's own rules:
 * whitespace around '=', values single-quoted or bare, backslash escapes.
 * Returns 1 with key/value spans, 0 at the end, -1 with *why on a malformed
 * string (naming a position, never the text, which may hold a password). */
static int kv_next(const char *base, const char **p, const char **key, size_t *klen,
                   const char **val, size_t *vlen, char *why, size_t whyn)
{
    const char *c = *p;
    while (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r')
        c++;
    if (*c == '\0')
        return 0;
    *key = c;
    while (*c != '\0' && *c != '=' && *c != ' ' && *c != '\t' && *c != '\n' && *c != '\r')
        c++;
    *klen = (size_t)(c - *key);
    for (size_t i = 0; i < *klen; i++)
        if (!(((*key)[i] >= 'a' && (*key)[i] <= 'z') || (*key)[i] == '_')) {
            snprintf(why, whyn, "a key must be lower-case letters and _ (at character %d)",
                     (int)(*key - base) + 1);
            return -1;
        }
    while (*c == ' ' || *c == '\t')
        c++;
    if (*klen == 0 || *c != '=') {
        snprintf(why, whyn, "expected key=value at character %d", (int)(*key - base) + 1);
        return -1;
    }
    c++;
    while (*c == ' ' || *c == '\t')
        c++;
    *val = c;
    if (*c == '\'') {
        for (c++; *c != '\''; c++) {
            if (*c == '\\' && c[1] != '\0')
                c++;
            else if (*c == '\0') {
                snprintf(why, whyn, "unterminated quoted value at character %d",
                         (int)(*val - base) + 1);
                return -1;
            }
        }
        c++;
    } else {
        for (; *c != '\0' && *c != ' ' && *c != '\t' && *c != '\n' && *c != '\r'; c++)
            if (*c == '\\' && c[1] != '\0')
                c++;
    }
    *vlen = (size_t)(c - *val);
    *p = c;
    return 1;
}

static bool is_pg_uri(const char *s)
{
    return hms_config_starts_with(s, "postgresql://") || hms_config_starts_with(s, "postgres://");
}

bool hms_config_check_conninfo(const char *s, char *why, size_t whyn)
{
    if (is_pg_uri(s))
        return true; /* libpq reports the details of a bad URI at connect time */
    const char *p = s, *key, *val;
    size_t klen, vlen;
    int r;
    while ((r = kv_next(s, &p, &key, &klen, &val, &vlen, why, whyn)) == 1) {
    }
    return r == 0;
}

/* Splits a URL's authority (between "://" and the first '/', '?' or '#'); callers
 * have checked that s has a scheme. */
static void split_authority(const char *s, const char **auth, size_t *alen, const char **at)
{
    *auth = strstr(s, "://") + 3;
    *alen = strcspn(*auth, "/?#");
    *at = NULL;
    for (size_t i = 0; i < *alen; i++)
        if ((*auth)[i] == '@')
            *at = *auth + i;
}

static bool check_amqp_one(const char *s, char *why, size_t whyn)
{
    if (!hms_config_starts_with(s, "amqp://") && !hms_config_starts_with(s, "amqps://")) {
        snprintf(why, whyn, "the scheme must be amqp:// or amqps://");
        return false;
    }
    const char *auth, *at;
    size_t alen;
    split_authority(s, &auth, &alen, &at);
    const char *host = at != NULL ? at + 1 : auth;
    const char *end = auth + alen, *port = NULL, *hend;
    if (*host == '[') {
        hend = memchr(host, ']', (size_t)(end - host));
        if (hend == NULL) {
            snprintf(why, whyn, "an IPv6 host needs a closing ]");
            return false;
        }
        hend++;
        if (hend < end && *hend != ':') {
            snprintf(why, whyn, "unexpected text after the host");
            return false;
        }
    } else {
        hend = memchr(host, ':', (size_t)(end - host));
        if (hend == NULL)
            hend = end;
    }
    if (hend == host) {
        snprintf(why, whyn, "no host");
        return false;
    }
    for (const char *c = host; c < hend; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(why, whyn, "the host contains a space or control character");
            return false;
        }
    if (hend < end)
        port = hend + 1;
    if (port != NULL) {
        long v = 0;
        const char *c = port;
        for (; c < end && *c >= '0' && *c <= '9' && v <= 65535; c++)
            v = v * 10 + (*c - '0');
        if (c == port || c != end || v < 1 || v > 65535) {
            snprintf(why, whyn, "the port is not a number 1..65535");
            return false;
        }
    }
    return true;
}

/* Longer than any URL a broker is reached by; a node this long is a mistake. */
#define NODE_URL_MAX 2048

bool hms_config_check_amqp_url(const char *s, char *why, size_t whyn)
{
    if (!hms_amqp_nodes_check(s, why, whyn))
        return false;
    size_t n = hms_amqp_nodes_count(s), len;
    const char *item;
    char url[NODE_URL_MAX], detail[160];
    for (size_t i = 0; hms_amqp_nodes_get(s, i, &item, &len); i++) {
        if (len >= sizeof(url))
            snprintf(detail, sizeof(detail), "longer than %d characters", NODE_URL_MAX - 1);
        else
            snprintf(url, sizeof(url), "%.*s", (int)len, item);
        if (len >= sizeof(url) || !check_amqp_one(url, detail, sizeof(detail))) {
            if (n == 1)
                snprintf(why, whyn, "%s", detail);
            else
                snprintf(why, whyn, "node %zu of %zu: %s", i + 1, n, detail);
            return false;
        }
    }
    return true;
}

static hms_status_t redact_kv(const char *s, hms_buf_t *out)
{
    const char *p = s, *key, *val, *copied = s;
    size_t klen, vlen;
    char why[128];
    int r;
    hms_status_t st = HMS_OK;
    while ((r = kv_next(s, &p, &key, &klen, &val, &vlen, why, sizeof(why))) == 1) {
        if (klen == 8 && memcmp(key, "password", 8) == 0) {
            st = hms_buf_append(out, copied, (size_t)(val - copied));
            if (st == HMS_OK)
                st = hms_buf_append_str(out, "***");
            copied = val + vlen;
        }
    }
    if (r < 0) /* cannot tell where the password is: hide everything */
        return hms_buf_append_str(out, "***");
    if (st == HMS_OK)
        st = hms_buf_append_str(out, copied);
    return st;
}

static hms_status_t redact_url(const char *s, hms_buf_t *out)
{
    const char *auth, *at;
    size_t alen;
    hms_status_t st = HMS_OK;
    split_authority(s, &auth, &alen, &at);
    const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon != NULL) {
        hms_config_put(out, &st, "%.*s***", (int)(colon + 1 - s), s);
        s = at;
    }
    /* libpq also takes ?password=... in a URI's query. */
    const char *q = strchr(s, '?');
    if (q == NULL)
        return st == HMS_OK ? hms_buf_append_str(out, s) : st;
    hms_config_put(out, &st, "%.*s", (int)(q + 1 - s), s);
    for (const char *p = q + 1; *p != '\0' && st == HMS_OK;) {
        size_t n = strcspn(p, "&#");
        if (n >= 9 && strncmp(p, "password=", 9) == 0)
            hms_config_put(out, &st, "password=***");
        else
            hms_config_put(out, &st, "%.*s", (int)n, p);
        p += n;
        if (*p == '&') {
            hms_config_put(out, &st, "&");
            p++;
        } else if (*p == '#') {
            hms_config_put(out, &st, "%s", p);
            break;
        }
    }
    return st;
}

/* Every node of an amqp list on its own: a password may sit in each. A node
 * without a scheme means a comma the split cannot place (one in a password that
 * is not percent-encoded, say): the whole value is hidden then, since any part of
 * it may be a secret. */
static hms_status_t redact_amqp(const char *s, hms_buf_t *out)
{
    const char *item;
    size_t len;
    for (size_t i = 0; hms_amqp_nodes_get(s, i, &item, &len); i++)
        if (memmem(item, len, "://", 3) == NULL)
            return hms_buf_append_str(out, "***");
    hms_status_t st = HMS_OK;
    hms_buf_t one = HMS_BUF_INIT;
    for (size_t i = 0; st == HMS_OK && hms_amqp_nodes_get(s, i, &item, &len); i++) {
        hms_buf_reset(&one);
        if ((st = hms_buf_append(&one, item, len)) != HMS_OK) /* NUL-terminates */
            break;
        if (i > 0)
            hms_config_put(out, &st, ",");
        if (st == HMS_OK)
            st = redact_url(one.data, out);
    }
    hms_buf_free(&one);
    return st;
}

hms_status_t hms_config_redact(const char *s, hms_buf_t *out)
{
    if (hms_config_starts_with(s, "amqp://") || hms_config_starts_with(s, "amqps://"))
        return redact_amqp(s, out);
    if (is_pg_uri(s))
        return redact_url(s, out);
    return redact_kv(s, out);
}

bool hms_config_has_password(const char *s)
{
    hms_buf_t b = HMS_BUF_INIT;
    bool differs = hms_config_redact(s, &b) != HMS_OK || strcmp(b.data, s) != 0;
    hms_buf_free(&b);
    return differs;
}
