/* bytes.h -- big-endian (network order) loads and stores, as PostgreSQL's
 * replication protocol and AMQP both put integers on the wire.  Byte by
 * byte, so alignment and the host's byte order never matter.  Pure. */
#ifndef HMS_CORE_BYTES_H
#define HMS_CORE_BYTES_H

#include <stdint.h>

static inline uint16_t hms_load_be16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t hms_load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t hms_load_be64(const uint8_t *p)
{
    return (uint64_t)hms_load_be32(p) << 32 | hms_load_be32(p + 4);
}

static inline void hms_store_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void hms_store_be32(uint8_t *p, uint32_t v)
{
    hms_store_be16(p, (uint16_t)(v >> 16));
    hms_store_be16(p + 2, (uint16_t)v);
}

static inline void hms_store_be64(uint8_t *p, uint64_t v)
{
    hms_store_be32(p, (uint32_t)(v >> 32));
    hms_store_be32(p + 4, (uint32_t)v);
}

#endif
