/* clock.c -- monotonic milliseconds, and wall-clock microseconds since the
 * Unix and the PostgreSQL epochs. */
#include "common/clock.h"

#include <sys/time.h>
#include <time.h>

#include "core/pgoutput.h"

int64_t hms_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hms_clock_unix_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

int64_t hms_clock_pg_us(void)
{
    return hms_clock_unix_us() - HMS_PG_EPOCH_OFFSET_USEC;
}
