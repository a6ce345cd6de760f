/* backoff.c -- capped exponential backoff. */
#include "core/backoff.h"

int hms_backoff_next(int cur_ms, int min_ms, int max_ms)
{
    if (min_ms < 1)
        min_ms = 1;
    if (max_ms < min_ms)
        max_ms = min_ms;
    if (cur_ms < min_ms)
        return min_ms;
    return cur_ms > max_ms / 2 ? max_ms : cur_ms * 2;
}
