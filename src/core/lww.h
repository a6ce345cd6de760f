/* lww.h -- last-write-wins between two events of one subject, the same rules
 * as the SQL helpers of sql/subscriber/002_lww.sql.
 *
 * Order (docs/event-contract.md): higher version wins; on a tie the later updatedat; on a
 * tie the greater origin, compared bytewise (as strcmp, i.e. PostgreSQL's
 * "C" collation).  A delete carries the version of the row it removed, so it
 * wins a tie against the live row; the held state is then a tombstone that
 * a late update with a lower or equal tuple cannot resurrect.
 *
 * Ownership: keys borrow their origin string; nothing here allocates or keeps
 * a pointer past the call. */
#ifndef HMS_CORE_LWW_H
#define HMS_CORE_LWW_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t version;
    int64_t updatedat;  /* microseconds since 1970-01-01T00:00:00Z */
    const char *origin; /* NUL-terminated, borrowed; never NULL */
} hms_lww_key_t;

/* What a replica holds for a subject. */
typedef enum {
    HMS_LWW_NONE,      /* nothing yet */
    HMS_LWW_LIVE,      /* a row, last written by an insert or update */
    HMS_LWW_TOMBSTONE, /* the row was deleted; its key is the delete's */
} hms_lww_state_t;

typedef enum {
    HMS_LWW_APPLIED,   /* the event replaces what is held */
    HMS_LWW_STALE,     /* what is held is newer: the event is skipped */
    HMS_LWW_DUPLICATE, /* what is held is this very write: skipped */
} hms_lww_outcome_t;

/* -1, 0 or 1 as a sorts before, equal to, or after b. */
int hms_lww_compare(const hms_lww_key_t *a, const hms_lww_key_t *b);

/* The outcome of an incoming event (its key, and whether it is a delete)
 * over the held state.  current is ignored (and may be NULL) when state is
 * HMS_LWW_NONE.  The rules, which make the held state the maximum of the
 * events seen under the order (key, is_delete) with false < true:
 *   none held -> applied; greater key -> applied; smaller key -> stale;
 *   equal key: delete over live -> applied, delete over tombstone ->
 *   duplicate, update over live -> duplicate, update over tombstone -> stale. */
hms_lww_outcome_t hms_lww_decide(const hms_lww_key_t *incoming, bool is_delete,
                                 hms_lww_state_t state, const hms_lww_key_t *current);

/* "applied", "stale" or "duplicate" (static, never NULL): the words the SQL
 * helpers and hms_sync.consume() return. */
const char *hms_lww_outcome_name(hms_lww_outcome_t outcome);

/* Parses the contract's updatedat form, "YYYY-MM-DDTHH:MM:SS.ffffffZ" (UTC,
 * exactly six fraction digits), into microseconds since the epoch.  False on
 * anything else, including impossible dates; never reads past the NUL. */
bool hms_lww_parse_time(const char *s, int64_t *micros);

#endif
