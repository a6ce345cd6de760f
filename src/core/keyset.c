/* keyset.c -- open-addressing set of byte-string keys with values. */
#include "core/keyset.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* FNV-1a: keys are short (a uuid's 36 characters), and the table is kept
 * at most half full, so a simple hash is enough. */
static uint32_t hash_of(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h;
}

void hms_keyset_init(hms_keyset_t *s, size_t limit)
{
    *s = (hms_keyset_t){.limit = limit ? limit : 1};
}

void hms_keyset_free(hms_keyset_t *s)
{
    free(s->slots);
    free(s->arena);
    *s = (hms_keyset_t){.limit = s->limit};
}

void hms_keyset_clear(hms_keyset_t *s)
{
    if (s->slots != NULL)
        memset(s->slots, 0, s->nslots * sizeof(*s->slots));
    s->count = 0;
    s->arena_len = 0;
}

static size_t find(const hms_keyset_t *s, const char *key, size_t len, uint32_t h)
{
    size_t mask = s->nslots - 1, i = h & mask;
    while (s->slots[i].used) {
        const hms_keyset_slot_t *e = &s->slots[i];
        if (e->hash == h && e->len == len && memcmp(s->arena + e->off, key, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

static hms_status_t rehash(hms_keyset_t *s, size_t nslots)
{
    hms_keyset_slot_t *old = s->slots;
    size_t nold = s->nslots;
    s->slots = calloc(nslots, sizeof(*s->slots));
    if (s->slots == NULL) {
        s->slots = old;
        return HMS_ERR_NOMEM;
    }
    s->nslots = nslots;
    for (size_t i = 0; i < nold; i++) {
        if (!old[i].used)
            continue;
        size_t j = old[i].hash & (nslots - 1);
        while (s->slots[j].used)
            j = (j + 1) & (nslots - 1);
        s->slots[j] = old[i];
    }
    free(old);
    return HMS_OK;
}

hms_status_t hms_keyset_put(hms_keyset_t *s, const char *key, size_t len, int32_t value)
{
    if (len > UINT32_MAX)
        return HMS_ERR_FULL;
    uint32_t h = hash_of(key, len);
    if (s->nslots > 0) {
        size_t i = find(s, key, len, h);
        if (s->slots[i].used) {
            s->slots[i].value = value;
            return HMS_OK;
        }
    }
    if (s->count >= s->limit)
        return HMS_ERR_FULL;
    if ((s->count + 1) * 2 > s->nslots && rehash(s, s->nslots ? s->nslots * 2 : 64) != HMS_OK)
        return HMS_ERR_NOMEM;
    if (s->arena_len + len > UINT32_MAX)
        return HMS_ERR_FULL;
    size_t cap = s->arena_cap;
    if (hms_array_grow((void **)&s->arena, &cap, s->arena_len + len + 1, 1) != HMS_OK)
        return HMS_ERR_NOMEM;
    s->arena_cap = cap;
    memcpy(s->arena + s->arena_len, key, len);
    size_t i = find(s, key, len, h);
    s->slots[i] = (hms_keyset_slot_t){.off = (uint32_t)s->arena_len,
                                      .len = (uint32_t)len,
                                      .hash = h,
                                      .value = value,
                                      .used = true};
    s->arena_len += len;
    s->count++;
    return HMS_OK;
}

int32_t hms_keyset_get(const hms_keyset_t *s, const char *key, size_t len)
{
    if (s->nslots == 0)
        return -1;
    size_t i = find(s, key, len, hash_of(key, len));
    return s->slots[i].used ? s->slots[i].value : -1;
}
