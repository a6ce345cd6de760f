/* backoff.h -- capped exponential backoff between retries and reconnects,
 * shared by the connector's loop and the subscriber. */
#ifndef HMS_CORE_BACKOFF_H
#define HMS_CORE_BACKOFF_H

/* The wait after one that lasted cur_ms (0 or less: the first failure):
 * min_ms first, then doubling, never above max_ms.  Never returns less than
 * 1 ms, so a zero or negative minimum cannot make a caller spin, and never
 * overflows however often it is called. */
int hms_backoff_next(int cur_ms, int min_ms, int max_ms);

#endif
