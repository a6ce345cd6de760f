/* lww.c -- last-write-wins order and outcome, and the contract's timestamp form. */
#include "core/lww.h"

#include <assert.h>
#include <string.h>

int hms_lww_compare(const hms_lww_key_t *a, const hms_lww_key_t *b)
{
    assert(a->origin != NULL && b->origin != NULL);
    if (a->version != b->version)
        return a->version > b->version ? 1 : -1;
    if (a->updatedat != b->updatedat)
        return a->updatedat > b->updatedat ? 1 : -1;
    /* strcmp compares as unsigned char, which is PostgreSQL's "C" collation:
     * bytewise, a proper prefix first. */
    int c = strcmp(a->origin, b->origin);
    return (c > 0) - (c < 0);
}

hms_lww_outcome_t hms_lww_decide(const hms_lww_key_t *incoming, bool is_delete,
                                 hms_lww_state_t state, const hms_lww_key_t *current)
{
    if (state == HMS_LWW_NONE)
        return HMS_LWW_APPLIED;
    int c = hms_lww_compare(incoming, current);
    if (c != 0)
        return c > 0 ? HMS_LWW_APPLIED : HMS_LWW_STALE;
    bool held_delete = state == HMS_LWW_TOMBSTONE;
    if (is_delete && !held_delete)
        return HMS_LWW_APPLIED;
    return is_delete == held_delete ? HMS_LWW_DUPLICATE : HMS_LWW_STALE;
}

const char *hms_lww_outcome_name(hms_lww_outcome_t outcome)
{
    switch (outcome) {
    case HMS_LWW_APPLIED: return "applied";
    case HMS_LWW_STALE: return "stale";
    case HMS_LWW_DUPLICATE: return "duplicate";
    }
    return "unknown";
}

/* Reads exactly n decimal digits. */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar, by
 * counting 400-year eras from March 1 so leap days fall at a year's end. */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t yy = m <= 2 ? y - 1 : y;
    int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool hms_lww_parse_time(const char *s, int64_t *micros)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se, frac;

    /* strnlen bounds the reads below: every index is under 27. */
    if (strnlen(s, 28) != 27)
        return false;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) || s[13] != ':' ||
        !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se) || s[19] != '.' ||
        !digits(s + 20, 6, &frac) || s[26] != 'Z')
        return false;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap ? 1 : 0))
        return false;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    *micros = secs * 1000000 + frac;
    return true;
}
