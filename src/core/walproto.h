/* walproto.h -- the streaming replication sub-protocol carried in CopyData
 * during START_REPLICATION: XLogData ('w') and primary keepalive ('k') from
 * the server, standby status update ('r') from the client.
 *
 * Pure: parsing borrows from its input; building writes into a caller
 * buffer. */
#ifndef HMS_CORE_WALPROTO_H
#define HMS_CORE_WALPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    char kind;            /* 'w' (XLogData) or 'k' (keepalive) */
    uint64_t wal_start;   /* 'w' only */
    uint64_t wal_end;     /* both: the server's current end of WAL */
    int64_t send_time;    /* microseconds since 2000-01-01 */
    bool reply_requested; /* 'k' only */
    const uint8_t *data;  /* 'w' only: the pgoutput message, borrowed */
    size_t len;
} hms_walmsg_t;

/* Parses one CopyData payload.  Unknown kinds fail with HMS_ERR_MALFORMED. */
hms_status_t hms_walmsg_parse(const uint8_t *buf, size_t len, hms_walmsg_t *out, hms_err_t *err);

#define HMS_STANDBY_STATUS_LEN 34

/* Writes a standby status update ('r') into out and returns its length
 * (HMS_STANDBY_STATUS_LEN).  now_pg is microseconds since 2000-01-01. */
size_t hms_walmsg_standby_status(uint8_t out[HMS_STANDBY_STATUS_LEN], uint64_t write_lsn,
                                 uint64_t flush_lsn, uint64_t apply_lsn, int64_t now_pg,
                                 bool reply_requested);

#endif
