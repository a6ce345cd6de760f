/* pgoutput.h -- a decoder for PostgreSQL's pgoutput logical replication
 * messages (protocol version 1, as PostgreSQL 15 sends them).
 *
 * Pure: no I/O, no globals.  One call decodes one message (the payload of one
 * XLogData).  The decoder never crashes on any byte string: every read is
 * bounds-checked and a bad message yields HMS_ERR_TRUNCATED or
 * HMS_ERR_MALFORMED with a message naming the field.
 *
 * Ownership: hms_pgo_decode() borrows from its input.  Every pointer in the
 * resulting hms_pgo_msg_t (strings, tuple values) points either into the
 * input buffer or into storage owned by the decoder (the relation cache and
 * per-decoder scratch arrays).  They stay valid until the next call to
 * hms_pgo_decode(), hms_pgo_decoder_reset() or hms_pgo_decoder_free(), and
 * only while the input buffer lives.  Relation pointers stay valid until the
 * same relation id is described again, the cache is reset or freed. */
#ifndef HMS_CORE_PGOUTPUT_H
#define HMS_CORE_PGOUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum {
    HMS_PGO_BEGIN = 'B',
    HMS_PGO_COMMIT = 'C',
    HMS_PGO_ORIGIN = 'O',
    HMS_PGO_RELATION = 'R',
    HMS_PGO_TYPE = 'Y',
    HMS_PGO_INSERT = 'I',
    HMS_PGO_UPDATE = 'U',
    HMS_PGO_DELETE = 'D',
    HMS_PGO_TRUNCATE = 'T',
    HMS_PGO_MESSAGE = 'M',
} hms_pgo_kind_t;

/* Column value kinds in TupleData. */
#define HMS_PGO_VAL_NULL 'n'
#define HMS_PGO_VAL_UNCHANGED 'u' /* unchanged TOASTed value: not sent */
#define HMS_PGO_VAL_TEXT 't'
#define HMS_PGO_VAL_BINARY 'b'

typedef struct {
    char kind;        /* one of HMS_PGO_VAL_* */
    uint32_t len;     /* bytes at data (text and binary only) */
    const char *data; /* borrowed, NOT NUL-terminated; NULL for n and u */
} hms_pgo_value_t;

typedef struct {
    uint16_t ncols;
    const hms_pgo_value_t *values; /* ncols entries, decoder scratch */
} hms_pgo_tuple_t;

typedef struct {
    char *name; /* owned by the cache */
    uint32_t type_oid;
    int32_t typmod;
    uint8_t flags; /* bit 0: part of the replica identity key */
} hms_pgo_column_t;

typedef struct {
    uint32_t relid;
    char *nspname; /* owned by the cache; "" means pg_catalog */
    char *relname;
    char replident; /* 'd', 'n', 'f' or 'i' */
    uint16_t ncols;
    hms_pgo_column_t *cols;
    /* Unique in the process for each Relation message decoded: a cache of
     * anything derived from a relation is current while this matches (the
     * pointer alone is not proof, as memory is reused). */
    uint64_t generation;
} hms_pgo_relation_t;

typedef struct {
    hms_pgo_kind_t kind;
    union {
        struct {
            uint64_t final_lsn;  /* LSN of the commit record */
            int64_t commit_time; /* microseconds since 2000-01-01 UTC */
            uint32_t xid;
        } begin;
        struct {
            uint8_t flags;
            uint64_t commit_lsn;
            uint64_t end_lsn;
            int64_t commit_time;
        } commit;
        struct {
            uint64_t lsn;
            const char *name;
        } origin;
        struct {
            const hms_pgo_relation_t *rel; /* the cache's entry, now updated */
        } relation;
        struct {
            uint32_t oid;
            const char *nspname;
            const char *typname;
        } type;
        struct {
            const hms_pgo_relation_t *rel;
            /* old_kind: 0 (no old tuple), 'K' (key columns only) or 'O'
             * (the whole old row, REPLICA IDENTITY FULL).  Insert: always 0.
             * Delete: no new tuple (newtup.ncols == 0). */
            char old_kind;
            hms_pgo_tuple_t oldtup;
            hms_pgo_tuple_t newtup;
        } change; /* HMS_PGO_INSERT, HMS_PGO_UPDATE, HMS_PGO_DELETE */
        struct {
            uint8_t options; /* bit 0 CASCADE, bit 1 RESTART IDENTITY */
            uint32_t nrels;
            const uint32_t *relids; /* decoder scratch */
        } truncate;
        struct {
            uint8_t flags; /* bit 0: transactional */
            uint64_t lsn;
            const char *prefix;
            uint32_t len;
            const char *content; /* borrowed, not NUL-terminated */
        } message;
    } u;
} hms_pgo_msg_t;

typedef struct hms_pgo_decoder hms_pgo_decoder_t;

/* Allocates a decoder with an empty relation cache; NULL on out of memory.
 * The caller owns it and releases it with hms_pgo_decoder_free(). */
hms_pgo_decoder_t *hms_pgo_decoder_new(void);
void hms_pgo_decoder_free(hms_pgo_decoder_t *d);
/* Forgets every relation.  Call on every (re)connect: relation ids are only
 * meaningful within one replication session. */
void hms_pgo_decoder_reset(hms_pgo_decoder_t *d);
/* Looks up a cached relation; NULL if unknown. */
const hms_pgo_relation_t *hms_pgo_relation(const hms_pgo_decoder_t *d, uint32_t relid);

/* The SQL words for a replica identity as pg_class.relreplident and the
 * Relation message spell it ('d' -> "DEFAULT", 'i' -> "USING INDEX", ...),
 * for messages that tell an operator what to change; "unknown" for any
 * other byte.  A static string. */
const char *hms_pgo_replident_name(char replident);

/* Decodes one pgoutput message of len bytes at buf into *out.  Relation
 * messages update the cache; Insert/Update/Delete naming an unknown relation
 * fail with HMS_ERR_UNKNOWN_REL.  On failure *out is unspecified and err says
 * which field was bad. */
hms_status_t hms_pgo_decode(hms_pgo_decoder_t *d, const uint8_t *buf, size_t len,
                            hms_pgo_msg_t *out, hms_err_t *err);

/* PostgreSQL epoch (2000-01-01) minus Unix epoch, in microseconds. */
#define HMS_PG_EPOCH_OFFSET_USEC INT64_C(946684800000000)

#endif
