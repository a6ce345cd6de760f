/* event_base.c -- what every encoder of events shares: the event's id,
 * its time, its reset and failure, and hand-rolled number formatting (the
 * hot path avoids printf). */
#include "core/event_int.h"

#include <string.h>

#include "core/pgvalue.h"

#define USEC_PER_SEC INT64_C(1000000)

hms_status_t hms_ev_put_u64(hms_buf_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return hms_buf_append(b, tmp + i, sizeof tmp - i);
}

size_t hms_ev_put_hex(char *out, uint32_t v, int min_digits)
{
    static const char hex[] = "0123456789ABCDEF";
    char tmp[8];
    int n = 0;
    do {
        tmp[n++] = hex[v & 15];
        v >>= 4;
    } while (v != 0);
    while (n < min_digits)
        tmp[n++] = '0';
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return (size_t)n;
}

size_t hms_ev_lsn_text(uint64_t lsn, char *out)
{
    size_t n = hms_ev_put_hex(out, (uint32_t)(lsn >> 32), 1);
    out[n++] = '/';
    n += hms_ev_put_hex(out + n, (uint32_t)lsn, 1);
    out[n] = '\0';
    return n;
}

void hms_event_free(hms_event_t *ev)
{
    hms_buf_free(&ev->body);
    hms_buf_free(&ev->routing_key);
    hms_buf_free(&ev->queue);
    hms_buf_free(&ev->reason);
    hms_buf_free(&ev->subject);
    hms_buf_free(&ev->own_type);
}

/* "<commit LSN, 16 hex>-<ordinal>" into ev->id. */
static void put_event_id(hms_event_t *ev, const hms_txctx_t *tx)
{
    size_t n = hms_ev_put_hex(ev->id, (uint32_t)(tx->commit_lsn >> 32), 8);
    n += hms_ev_put_hex(ev->id + n, (uint32_t)tx->commit_lsn, 8);
    ev->id[n++] = '-';
    char ord[12];
    size_t k = sizeof ord;
    uint32_t o = tx->ordinal;
    do {
        ord[--k] = (char)('0' + o % 10);
        o /= 10;
    } while (o != 0);
    memcpy(ev->id + n, ord + k, sizeof ord - k);
    ev->id[n + sizeof ord - k] = '\0';
}

void hms_ev_clear(hms_event_t *ev)
{
    ev->id[0] = '\0';
    hms_buf_reset(&ev->body);
    hms_buf_reset(&ev->routing_key);
    hms_buf_reset(&ev->queue);
    hms_buf_reset(&ev->subject);
    ev->emitted = false;
}

hms_status_t hms_ev_start(hms_event_t *ev, const hms_txctx_t *tx, char *ts, hms_err_t *err)
{
    hms_ev_clear(ev);
    ev->type = NULL;
    ev->time_unix = 0;
    /* The id first, so that every later error can name the event. */
    put_event_id(ev, tx);
    if (tx->commit_time > INT64_MAX - HMS_PG_EPOCH_OFFSET_USEC ||
        tx->commit_time < INT64_MIN + HMS_PG_EPOCH_OFFSET_USEC)
        return hms_err_set(err, HMS_ERR_ENCODE, "commit time %lld out of range (event %s)",
                           (long long)tx->commit_time, ev->id);
    int64_t unix_usec = tx->commit_time + HMS_PG_EPOCH_OFFSET_USEC;
    if (!hms_pgvalue_format_rfc3339(unix_usec, ts))
        return hms_err_set(err, HMS_ERR_ENCODE, "commit time %lld out of range (event %s)",
                           (long long)tx->commit_time, ev->id);
    /* Whole seconds rounded down: C's division truncates toward zero. */
    ev->time_unix = unix_usec / USEC_PER_SEC - (unix_usec % USEC_PER_SEC < 0);
    return HMS_OK;
}

/* Never leave half an event where a caller might publish it. */
hms_status_t hms_ev_fail(hms_event_t *ev, hms_status_t st, hms_err_t *err)
{
    hms_buf_reset(&ev->body);
    hms_buf_reset(&ev->routing_key);
    hms_buf_reset(&ev->subject);
    if (st == HMS_ERR_NOMEM)
        hms_err_set(err, st, "encoder: out of memory encoding event %s", ev->id);
    return st;
}
