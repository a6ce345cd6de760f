/* walproto.c -- the CopyData sub-protocol of START_REPLICATION: parses the
 * server's XLogData and keepalive messages, builds standby status updates. */
#include "core/walproto.h"

#include <string.h>

#include "core/bytes.h"

/* Sizes on the wire, kind byte included. */
#define XLOGDATA_HEADER_LEN 25 /* 'w', wal_start, wal_end, send_time */
#define KEEPALIVE_LEN 18       /* 'k', wal_end, send_time, reply */

/* The wire carries int64 bit patterns; memcpy keeps the conversion defined. */
static int64_t load_be_i64(const uint8_t *p)
{
    uint64_t u = hms_load_be64(p);
    int64_t v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

hms_status_t hms_walmsg_parse(const uint8_t *buf, size_t len, hms_walmsg_t *out, hms_err_t *err)
{
    if (buf == NULL || len == 0)
        return hms_err_set(err, HMS_ERR_TRUNCATED, "replication message: empty CopyData");
    memset(out, 0, sizeof(*out));
    out->kind = (char)buf[0];
    switch (buf[0]) {
    case 'w':
        if (len < XLOGDATA_HEADER_LEN)
            return hms_err_set(err, HMS_ERR_TRUNCATED,
                               "replication XLogData: header needs %d bytes, got %zu",
                               XLOGDATA_HEADER_LEN, len);
        out->wal_start = hms_load_be64(buf + 1);
        out->wal_end = hms_load_be64(buf + 9);
        out->send_time = load_be_i64(buf + 17);
        out->data = buf + XLOGDATA_HEADER_LEN;
        out->len = len - XLOGDATA_HEADER_LEN;
        return HMS_OK;
    case 'k':
        if (len < KEEPALIVE_LEN)
            return hms_err_set(err, HMS_ERR_TRUNCATED,
                               "replication keepalive: needs %d bytes, got %zu", KEEPALIVE_LEN,
                               len);
        if (len > KEEPALIVE_LEN)
            return hms_err_set(err, HMS_ERR_MALFORMED,
                               "replication keepalive: %zu trailing bytes after %d",
                               len - KEEPALIVE_LEN, KEEPALIVE_LEN);
        if (buf[17] > 1)
            return hms_err_set(err, HMS_ERR_MALFORMED,
                               "replication keepalive: reply flag is %u, not 0 or 1", buf[17]);
        out->wal_end = hms_load_be64(buf + 1);
        out->send_time = load_be_i64(buf + 9);
        out->reply_requested = buf[17] == 1;
        return HMS_OK;
    }
    if (buf[0] >= 0x20 && buf[0] < 0x7f)
        return hms_err_set(err, HMS_ERR_MALFORMED,
                           "replication message: unknown kind '%c' (0x%02x)", buf[0], buf[0]);
    return hms_err_set(err, HMS_ERR_MALFORMED, "replication message: unknown kind 0x%02x", buf[0]);
}

size_t hms_walmsg_standby_status(uint8_t out[HMS_STANDBY_STATUS_LEN], uint64_t write_lsn,
                                 uint64_t flush_lsn, uint64_t apply_lsn, int64_t now_pg,
                                 bool reply_requested)
{
    uint64_t now_bits;
    memcpy(&now_bits, &now_pg, sizeof(now_bits));
    out[0] = 'r';
    hms_store_be64(out + 1, write_lsn);
    hms_store_be64(out + 9, flush_lsn);
    hms_store_be64(out + 17, apply_lsn);
    hms_store_be64(out + 25, now_bits);
    out[33] = reply_requested ? 1 : 0;
    return HMS_STANDBY_STATUS_LEN;
}
