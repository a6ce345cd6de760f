/* rowtext.c -- PostgreSQL's composite text form to a tuple of text values. */
#include "core/rowtext.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/buf.h"

/* pgoutput counts columns in 16 bits; so does a tuple. */
#define ROWTEXT_MAX_COLS 65535u

static hms_status_t malformed(hms_err_t *err, size_t at, const char *what)
{
    return hms_err_set(err, HMS_ERR_MALFORMED, "row text: %s at byte %zu", what, at);
}

hms_status_t hms_rowtext_parse(hms_rowtext_t *rt, const char *s, size_t len, hms_pgo_tuple_t *out,
                               hms_err_t *err)
{
    *out = (hms_pgo_tuple_t){0};
    if (len < 2 || s[0] != '(')
        return malformed(err, 0, "expected '('");
    /* Unescaping only shrinks, so the text never outgrows len and the
     * values can point into it as they are made. */
    if (hms_array_grow((void **)&rt->text, &rt->captext, len, 1) != HMS_OK)
        return hms_err_set(err, HMS_ERR_NOMEM, "row text: out of memory for %zu bytes", len);
    size_t i = 1, used = 0, ncols = 0;
    for (;;) {
        if (ncols >= ROWTEXT_MAX_COLS)
            return malformed(err, i, "more than 65535 fields");
        if (hms_array_grow((void **)&rt->values, &rt->capvalues, ncols + 1, sizeof(*rt->values)) !=
            HMS_OK)
            return hms_err_set(err, HMS_ERR_NOMEM, "row text: out of memory for %zu fields",
                               ncols + 1);
        size_t start = used;
        bool quoted = false, any = false, inq = false;
        for (; i < len; i++) {
            char ch = s[i];
            if (inq) {
                if (ch == '"' && i + 1 < len && s[i + 1] == '"') {
                    rt->text[used++] = '"';
                    i++;
                } else if (ch == '"') {
                    inq = false;
                } else if (ch == '\\') {
                    if (++i >= len)
                        return malformed(err, i, "backslash at the end");
                    rt->text[used++] = s[i];
                } else {
                    rt->text[used++] = ch;
                }
                continue;
            }
            if (ch == ',' || ch == ')')
                break;
            if (ch == '"') {
                inq = quoted = true;
            } else if (ch == '\\') {
                if (++i >= len)
                    return malformed(err, i, "backslash at the end");
                rt->text[used++] = s[i];
                any = true;
            } else {
                rt->text[used++] = ch;
                any = true;
            }
        }
        if (inq)
            return malformed(err, len, "unterminated quote");
        if (i >= len)
            return malformed(err, len, "expected ')'");
        hms_pgo_value_t *v = &rt->values[ncols++];
        if (!quoted && !any) {
            *v = (hms_pgo_value_t){.kind = HMS_PGO_VAL_NULL};
        } else {
            *v = (hms_pgo_value_t){.kind = HMS_PGO_VAL_TEXT,
                                   .len = (uint32_t)(used - start),
                                   .data = rt->text + start};
        }
        if (s[i++] == ')')
            break;
    }
    if (i != len)
        return malformed(err, i, "text after ')'");
    out->ncols = (uint16_t)ncols;
    out->values = rt->values;
    return HMS_OK;
}

void hms_rowtext_free(hms_rowtext_t *rt)
{
    free(rt->values);
    free(rt->text);
    *rt = (hms_rowtext_t){0};
}
