/* wherecheck.h -- whether a snapshot's --where text is one SQL condition and
 * nothing more.
 *
 * The connector pastes the condition into its chunk query, between
 * parentheses and next to its own key condition:
 *     ... WHERE (<where>) AND key > $1 ORDER BY key LIMIT n
 * The server's parser accepts a text like "true) OR (true" there, and the
 * result reads every row in every chunk, forever; "true) --" would comment
 * out the key condition.  PostgreSQL cannot say where a pasted expression
 * ended, so this scanner does: it follows PostgreSQL's lexical rules for
 * what may hide parentheses (string constants in their standard, E'' and
 * dollar-quoted forms, quoted identifiers, comments) and refuses a text
 * whose parentheses or brackets do not balance inside it, a semicolon, or a
 * comment.  The server then checks the rest (names, types, functions).
 *
 * Pure: no I/O, no allocation. */
#ifndef HMS_CORE_WHERECHECK_H
#define HMS_CORE_WHERECHECK_H

#include <stdbool.h>
#include <stddef.h>

/* True when sql (NUL-terminated) is a condition the connector may paste.
 * Otherwise false, with why (cut to whylen) saying what is wrong and at
 * which character (1-based), e.g. "a ')' at character 5 closes a
 * parenthesis the condition did not open". */
bool hms_where_check(const char *sql, char *why, size_t whylen);

#endif
