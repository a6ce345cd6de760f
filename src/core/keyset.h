/* keyset.h -- a set of byte-string keys, each with a small integer value:
 * the keys of one snapshot chunk, and the keys that changed while it was
 * being read.
 *
 * Open addressing with linear probing over a power-of-two table that is
 * never more than half full; keys are copied into one arena, so clearing
 * costs one memset and the memory is reused for the next chunk.  A set
 * refuses to grow past its limit (hms_keyset_add returns HMS_ERR_FULL), so
 * that what the caller keeps stays bounded whatever the traffic.
 *
 * Pure: no I/O.  Ownership: the set owns copies of its keys. */
#ifndef HMS_CORE_KEYSET_H
#define HMS_CORE_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    uint32_t off, len; /* the key in the arena */
    uint32_t hash;
    int32_t value;
    bool used;
} hms_keyset_slot_t;

typedef struct {
    hms_keyset_slot_t *slots;
    size_t nslots; /* a power of two, or 0 */
    size_t count;
    size_t limit; /* most keys it takes */
    char *arena;
    size_t arena_len, arena_cap;
} hms_keyset_t;

/* An empty set that holds at most limit keys (at least 1). */
void hms_keyset_init(hms_keyset_t *s, size_t limit);
void hms_keyset_free(hms_keyset_t *s);
/* Forgets every key, keeping the memory. */
void hms_keyset_clear(hms_keyset_t *s);

/* Adds key with value, or changes the value of a key already there.
 * HMS_ERR_FULL when the key is new and the set holds limit keys already,
 * HMS_ERR_NOMEM when out of memory; the set is unchanged then. */
hms_status_t hms_keyset_put(hms_keyset_t *s, const char *key, size_t len, int32_t value);
/* The value of key, or -1 when it is not in the set. */
int32_t hms_keyset_get(const hms_keyset_t *s, const char *key, size_t len);

#endif
