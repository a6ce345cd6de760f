/* batch.c -- the deliveries of one apply transaction, copied and ready to
 * send as one JSON array. */
#include "consumer/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hms_cbatch_init(hms_cbatch_t *b)
{
    memset(b, 0, sizeof(*b));
}

void hms_cbatch_reset(hms_cbatch_t *b)
{
    b->n = 0;
    b->napply = 0;
    hms_buf_reset(&b->bodies);
    hms_buf_reset(&b->json);
}

void hms_cbatch_free(hms_cbatch_t *b)
{
    free(b->items);
    hms_buf_free(&b->bodies);
    hms_buf_free(&b->json);
    hms_cbatch_init(b);
}

hms_status_t hms_cbatch_add(hms_cbatch_t *b, const hms_cdelivery_t *d, bool echo, int64_t time_us)
{
    void *items = b->items;
    if (hms_array_grow(&items, &b->cap, b->n + 1, sizeof(*b->items)) != HMS_OK)
        return HMS_ERR_NOMEM;
    b->items = items;
    size_t off = b->bodies.len;
    if (hms_buf_append(&b->bodies, d->body, d->len) != HMS_OK)
        return HMS_ERR_NOMEM;
    hms_cbatch_item_t *it = &b->items[b->n++];
    it->tag = d->tag;
    it->delivery_count = d->delivery_count;
    it->redelivered = d->redelivered;
    it->echo = echo;
    it->failed = false;
    it->time_us = time_us;
    it->off = off;
    it->len = d->len;
    snprintf(it->routing_key, sizeof(it->routing_key), "%s", d->routing_key);
    snprintf(it->message_id, sizeof(it->message_id), "%s", d->message_id);
    if (!echo)
        b->napply++;
    return HMS_OK;
}

const char *hms_cbatch_json(hms_cbatch_t *b, size_t only)
{
    hms_buf_reset(&b->json);
    if (hms_buf_append_char(&b->json, '[') != HMS_OK)
        return NULL;
    bool first = true;
    for (size_t i = 0; i < b->n; i++) {
        const hms_cbatch_item_t *it = &b->items[i];
        if (only < b->n ? i != only : it->echo)
            continue;
        if ((!first && hms_buf_append_char(&b->json, ',') != HMS_OK) ||
            hms_buf_append(&b->json, b->bodies.data + it->off, it->len) != HMS_OK)
            return NULL;
        first = false;
    }
    if (hms_buf_append_char(&b->json, ']') != HMS_OK)
        return NULL;
    return b->json.data;
}

void hms_cbatch_delivery(const hms_cbatch_t *b, size_t i, hms_cdelivery_t *d)
{
    const hms_cbatch_item_t *it = &b->items[i];
    memset(d, 0, sizeof(*d));
    d->body = b->bodies.data + it->off;
    d->len = it->len;
    d->tag = it->tag;
    d->redelivered = it->redelivered;
    d->delivery_count = it->delivery_count;
    snprintf(d->routing_key, sizeof(d->routing_key), "%s", it->routing_key);
    snprintf(d->message_id, sizeof(d->message_id), "%s", it->message_id);
}

uint64_t hms_cbatch_last_tag(const hms_cbatch_t *b)
{
    uint64_t last = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i].tag > last)
            last = b->items[i].tag;
    return last;
}
