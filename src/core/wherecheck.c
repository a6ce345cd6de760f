/* wherecheck.c -- a lexical check that a --where text is one condition (see
 * wherecheck.h for why). */
#include "core/wherecheck.h"

#include <stdio.h>
#include <string.h>

/* Parentheses and brackets nested deeper than this are refused rather than
 * tracked: no sensible condition needs it. */
#define MAX_DEPTH 128

typedef struct {
    const char *sql;
    size_t i;
    /* How a plain '...' constant treats a backslash: as an escape when the
     * server runs with standard_conforming_strings = off. */
    bool backslash_plain;
    char *why;
    size_t whylen;
} scan_t;

static bool fail(scan_t *s, size_t at, const char *what)
{
    snprintf(s->why, s->whylen, "%s at character %zu", what, at + 1);
    return false;
}

static bool ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool ident_cont(unsigned char c)
{
    return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* Skips a quoted run that starts at s->i (the opening quote q): a doubled q
 * stands for itself, and with backslash a backslash escapes the next
 * character. */
static bool skip_quoted(scan_t *s, char q, bool backslash, const char *what)
{
    size_t open = s->i++;
    for (;;) {
        char c = s->sql[s->i];
        if (c == '\0')
            return fail(s, open, what);
        if (backslash && c == '\\' && s->sql[s->i + 1] != '\0') {
            s->i += 2;
        } else if (c == q && s->sql[s->i + 1] == q) {
            s->i += 2;
        } else if (c == q) {
            s->i++;
            return true;
        } else {
            s->i++;
        }
    }
}

/* At a '$' that does not continue an identifier: a parameter ($1), which
 * would bind to the connector's own, or a dollar-quoted constant ($$...$$,
 * $tag$...$tag$), skipped whole. */
static bool skip_dollar(scan_t *s)
{
    const char *p = s->sql + s->i;
    if (p[1] >= '0' && p[1] <= '9')
        return fail(s, s->i, "a parameter ($n)");
    size_t n = 1;
    if (ident_start((unsigned char)p[1]))
        for (n = 2; ident_cont((unsigned char)p[n]) && p[n] != '$'; n++)
            ;
    if (p[n] != '$') { /* a lone '$': not a quote; the server judges it */
        s->i++;
        return true;
    }
    size_t taglen = n + 1; /* "$tag$" */
    const char *end = p + taglen;
    for (;;) {
        end = strchr(end, '$');
        if (end == NULL)
            return fail(s, s->i, "a dollar-quoted constant that never ends");
        if (strncmp(end, p, taglen) == 0)
            break;
        end++;
    }
    s->i = (size_t)(end - s->sql) + taglen;
    return true;
}

/* One pass over the text under one reading of plain constants. */
static bool scan(scan_t *s)
{
    char stack[MAX_DEPTH];
    size_t open_at[MAX_DEPTH];
    int depth = 0;
    bool any = false;
    s->i = 0;
    while (s->sql[s->i] != '\0') {
        size_t at = s->i;
        unsigned char c = (unsigned char)s->sql[at];
        unsigned char next = (unsigned char)s->sql[at + 1];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            s->i++;
            continue;
        }
        any = true;
        if ((c == '-' && next == '-') || (c == '/' && next == '*'))
            return fail(s, at, "a comment");
        if (c == ';')
            return fail(s, at, "a ';' (one condition, not statements)");
        if (c == '\'') {
            if (!skip_quoted(s, '\'', s->backslash_plain, "a string constant that never ends"))
                return false;
        } else if (c == '"') {
            if (!skip_quoted(s, '"', false, "a quoted name that never ends"))
                return false;
        } else if (c == '$') {
            if (!skip_dollar(s))
                return false;
        } else if ((c == 'e' || c == 'E') && next == '\'') {
            s->i++;
            if (!skip_quoted(s, '\'', true, "a string constant that never ends"))
                return false;
        } else if ((c == 'u' || c == 'U') && next == '&' &&
                   (s->sql[at + 2] == '\'' || s->sql[at + 2] == '"')) {
            s->i += 2; /* U&'...' and U&"...": backslashes are escapes only later */
            char q = s->sql[s->i];
            if (!skip_quoted(s, q, q == '\'' && s->backslash_plain,
                             "a string constant that never ends"))
                return false;
        } else if (ident_start(c)) {
            /* An identifier or key word, '$' included: "a$b" is one name.
             * B'..', X'..' and N'..' constants end here and their quote is
             * taken as a plain one next. */
            while (ident_cont((unsigned char)s->sql[s->i]))
                s->i++;
        } else if (c == '(' || c == '[') {
            if (depth == MAX_DEPTH)
                return fail(s, at, "parentheses nested too deeply");
            stack[depth] = (char)c;
            open_at[depth++] = at;
            s->i++;
        } else if (c == ')' || c == ']') {
            if (depth == 0)
                return fail(s, at,
                            c == ')' ? "a ')' that closes a parenthesis the condition "
                                       "did not open"
                                     : "a ']' that closes a bracket the condition did "
                                       "not open");
            char want = c == ')' ? '(' : '[';
            if (stack[depth - 1] != want)
                return fail(s, at, "a bracket that does not match the one it closes");
            depth--;
            s->i++;
        } else {
            s->i++;
        }
    }
    if (!any) {
        snprintf(s->why, s->whylen, "the condition is empty");
        return false;
    }
    if (depth > 0)
        return fail(s, open_at[depth - 1],
                    stack[depth - 1] == '(' ? "a '(' that is never closed"
                                            : "a '[' that is never closed");
    return true;
}

bool hms_where_check(const char *sql, char *why, size_t whylen)
{
    char ignored[8];
    if (why == NULL || whylen == 0) {
        why = ignored;
        whylen = sizeof(ignored);
    }
    /* The connector's session and ours may differ in
     * standard_conforming_strings (a per-role setting), and under the two
     * settings a backslash in '...' ends a constant in different places: the
     * text must be one condition under either. */
    scan_t s = {.sql = sql, .backslash_plain = false, .why = why, .whylen = whylen};
    if (!scan(&s))
        return false;
    s.backslash_plain = true;
    return scan(&s);
}
