/* clock.h -- the two clocks the programs read: a monotonic one for timers
 * and backoff (never jumps with NTP or an operator's `date`), and the wall
 * clock in PostgreSQL's epoch for the replication protocol. */
#ifndef HMS_COMMON_CLOCK_H
#define HMS_COMMON_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC: only differences mean anything. */
int64_t hms_clock_ms(void);

/* The wall clock: microseconds since 1970-01-01 00:00:00 UTC. */
int64_t hms_clock_unix_us(void);

/* The wall clock as PostgreSQL's timestamps count it: microseconds since
 * 2000-01-01 00:00:00 UTC (standby status messages carry it). */
int64_t hms_clock_pg_us(void);

#endif
