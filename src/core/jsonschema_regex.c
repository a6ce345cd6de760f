/* jsonschema_regex.c -- the validator's patterns: ECMA-262 shorthands
 * rewritten for POSIX extended regexes, compiled once at load. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/jsonschema_int.h"

/* Rewrites the ECMA-262 shorthand classes POSIX lacks (see the header).
 * A quantifier right after another is HMS_ERR_MALFORMED: ECMA-262 rejects
 * "a**", "a+?" is a lazy quantifier POSIX would silently read as "(a+)?",
 * and glibc's regcomp takes time exponential in a run of them ("a++++..."). */
static hms_status_t translate_regex(const char *src, hms_buf_t *out)
{
    bool in_class = false, after_quantifier = false;
    hms_status_t st = HMS_OK;
    for (size_t i = 0; src[i] != '\0' && st == HMS_OK; i++) {
        char c = src[i];
        if (!in_class && (c == '*' || c == '+' || c == '?' ||
                          (c == '{' && src[i + 1] >= '0' && src[i + 1] <= '9'))) {
            if (after_quantifier)
                return HMS_ERR_MALFORMED;
            after_quantifier = true;
            const char *close = c == '{' ? strchr(src + i, '}') : NULL;
            size_t len = close != NULL ? (size_t)(close - (src + i)) + 1 : 1;
            st = hms_buf_append(out, src + i, len);
            i += len - 1;
            continue;
        }
        after_quantifier = false;
        if (c == '\\' && src[i + 1] != '\0') {
            char e = src[++i];
            const char *rep = NULL;
            if (!in_class) {
                switch (e) {
                case 'd': rep = "[0-9]"; break;
                case 'D': rep = "[^0-9]"; break;
                case 'w': rep = "[A-Za-z0-9_]"; break;
                case 'W': rep = "[^A-Za-z0-9_]"; break;
                case 's': rep = "[[:space:]]"; break;
                case 'S': rep = "[^[:space:]]"; break;
                default: break;
                }
                if (rep != NULL)
                    st = hms_buf_append_str(out, rep);
                else if ((st = hms_buf_append_char(out, '\\')) == HMS_OK)
                    st = hms_buf_append_char(out, e);
            } else {
                switch (e) {
                case 'd': rep = "0-9"; break;
                case 'w': rep = "A-Za-z0-9_"; break;
                case 's': rep = "[:space:]"; break;
                default: break;
                }
                st = rep != NULL ? hms_buf_append_str(out, rep) : hms_buf_append_char(out, e);
            }
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            st = hms_buf_append_char(out, c);
            /* A leading '^' or ']' belongs to the class, not its end. */
            if (st == HMS_OK && src[i + 1] == '^')
                st = hms_buf_append_char(out, src[++i]);
            if (st == HMS_OK && src[i + 1] == ']')
                st = hms_buf_append_char(out, src[++i]);
            continue;
        }
        if (in_class && c == '[' && src[i + 1] == ':') {
            /* A POSIX class such as [:alpha:] inside brackets. */
            const char *end = strstr(src + i + 2, ":]");
            if (end != NULL) {
                size_t len = (size_t)(end - (src + i)) + 2;
                st = hms_buf_append(out, src + i, len);
                i += len - 1;
                continue;
            }
        }
        if (in_class && c == ']')
            in_class = false;
        st = hms_buf_append_char(out, c);
    }
    return st;
}

void hms_schema_one_line(hms_err_t *err)
{
    for (char *c = err->msg; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

static hms_status_t compile_regex(regex_t *re, const char *pattern, hms_err_t *err)
{
    hms_buf_t tmp = HMS_BUF_INIT;
    hms_status_t st = translate_regex(pattern, &tmp);
    /* An empty append still writes the NUL: "" translates to no bytes at all,
     * and reserving alone left regcomp reading uninitialized memory. */
    if (st == HMS_OK && hms_buf_append(&tmp, "", 0) != HMS_OK)
        st = HMS_ERR_NOMEM;
    if (st == HMS_ERR_MALFORMED) {
        hms_buf_free(&tmp);
        hms_err_set(err, st,
                    "schema: pattern \"%.200s\" has a quantifier after a quantifier (lazy and "
                    "possessive forms are not supported)",
                    pattern);
        if (err != NULL)
            hms_schema_one_line(err);
        return st;
    }
    if (st != HMS_OK) {
        hms_buf_free(&tmp);
        return hms_err_set(err, st, "schema: out of memory compiling pattern");
    }
    int rc = regcomp(re, tmp.data, REG_EXTENDED | REG_NOSUB);
    hms_buf_free(&tmp);
    if (rc != 0) {
        char why[128];
        regerror(rc, re, why, sizeof why);
        hms_err_set(err, HMS_ERR_MALFORMED,
                    "schema: pattern \"%.200s\" is not a POSIX extended regex: %s", pattern, why);
        if (err != NULL)
            hms_schema_one_line(err);
        return HMS_ERR_MALFORMED;
    }
    return HMS_OK;
}

static void regset_free(json_object *obj, void *userdata)
{
    hms_schema_regset_t *rs = userdata;
    for (size_t i = 0; i < rs->n; i++)
        regfree(&rs->re[i]);
    free(rs);
}

hms_status_t hms_schema_attach_regexes(json_object *owner, const char **pats, size_t n,
                                       hms_err_t *err)
{
    hms_schema_regset_t *rs = calloc(1, sizeof *rs + n * sizeof(regex_t));
    if (rs == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "schema: out of memory");
    for (size_t i = 0; i < n; i++) {
        hms_status_t st = compile_regex(&rs->re[i], pats[i], err);
        if (st != HMS_OK) {
            regset_free(NULL, rs);
            return st;
        }
        rs->n++;
    }
    json_object_set_userdata(owner, rs, regset_free);
    return HMS_OK;
}

const hms_schema_regset_t *hms_schema_regexes_of(json_object *owner, json_type type)
{
    return owner != NULL && json_object_is_type(owner, type) ? json_object_get_userdata(owner)
                                                             : NULL;
}
