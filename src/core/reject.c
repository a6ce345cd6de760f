/* reject.c -- builds the RejectedChange document of a change that cannot be
 * published as an event. */
#include "core/reject.h"

#include <stdio.h>
#include <string.h>

#include "core/lsn.h"
#include "core/pgvalue.h"

static const char *const reason_name[HMS_REJECT_NREASONS] = {"invalid", "unencodable", "oversize"};

const char *hms_reject_reason_name(hms_reject_reason_t r)
{
    return (unsigned)r < HMS_REJECT_NREASONS ? reason_name[r] : "unknown";
}

/* detail on one line: a header value and a log field must never break one. */
static hms_status_t put_line(hms_buf_t *b, const char *s)
{
    size_t start = b->len;
    hms_status_t st = hms_buf_append_str(b, s != NULL ? s : "");
    for (size_t i = start; st == HMS_OK && i < b->len; i++)
        if (b->data[i] == '\n' || b->data[i] == '\r')
            b->data[i] = ' ';
    return st;
}

static hms_status_t put_member(hms_buf_t *b, const char *name, const char *s, size_t n)
{
    hms_status_t st;
    if ((st = hms_buf_printf(b, ",\"%s\":", name)) != HMS_OK)
        return st;
    return hms_buf_append_json_str(b, s, n);
}

/* The row's columns as PostgreSQL sent them; the decoder hands over text,
 * and a value it could not (binary, unchanged TOAST) is left out rather
 * than guessed. */
static hms_status_t put_row(hms_buf_t *b, const hms_pgo_relation_t *rel, const hms_pgo_tuple_t *row)
{
    hms_status_t st = hms_buf_append_str(b, ",\"row\":{");
    bool first = true;
    for (uint16_t i = 0; st == HMS_OK && rel != NULL && row != NULL && row->values != NULL &&
                         i < row->ncols && i < rel->ncols;
         i++) {
        const hms_pgo_value_t *v = &row->values[i];
        const char *name = rel->cols[i].name != NULL ? rel->cols[i].name : "";
        if (v->kind != HMS_PGO_VAL_TEXT && v->kind != HMS_PGO_VAL_NULL)
            continue;
        if ((!first && (st = hms_buf_append_char(b, ',')) != HMS_OK) ||
            (st = hms_buf_append_json_str(b, name, strlen(name))) != HMS_OK ||
            (st = hms_buf_append_char(b, ':')) != HMS_OK)
            return st;
        first = false;
        if (v->kind == HMS_PGO_VAL_NULL || (v->data == NULL && v->len > 0))
            st = hms_buf_append_str(b, "null");
        else
            st = hms_buf_append_json_str(b, v->data != NULL ? v->data : "", v->len);
    }
    if (st == HMS_OK)
        st = hms_buf_append_char(b, '}');
    return st;
}

static hms_status_t put_body(const hms_reject_t *r, hms_event_t *ev, const char *lsn,
                             const char *ts)
{
    hms_buf_t *b = &ev->body;
    hms_status_t st;
    if ((st = hms_buf_append_str(b, "{\"schema\":\"" HMS_REJECT_SCHEMA_ID "\"")) != HMS_OK ||
        (st = put_member(b, "id", ev->id, strlen(ev->id))) != HMS_OK ||
        (st = put_member(b, "source", r->source, strlen(r->source))) != HMS_OK ||
        (st = put_member(b, "lsn", lsn, strlen(lsn))) != HMS_OK ||
        (st = hms_buf_printf(b, ",\"txid\":%u", r->tx->xid)) != HMS_OK ||
        (st = put_member(b, "time", ts, strlen(ts))) != HMS_OK ||
        (st = put_member(b, "table", r->table, strlen(r->table))) != HMS_OK)
        return st;
    if (r->subject != NULL && (st = put_member(b, "subject", r->subject, r->subject_len)) != HMS_OK)
        return st;
    if (r->intended_type != NULL &&
        (st = put_member(b, "intendedtype", r->intended_type, strlen(r->intended_type))) != HMS_OK)
        return st;
    const char *why = ev->reason.data + strlen(reason_name[r->reason]) + 2;
    if ((st = put_member(b, "reason", reason_name[r->reason], strlen(reason_name[r->reason]))) !=
            HMS_OK ||
        (st = put_member(b, "detail", why, strlen(why))) != HMS_OK)
        return st;
    switch (r->reason) {
    case HMS_REJECT_INVALID:
        if ((st = hms_buf_append_str(b, ",\"event\":")) != HMS_OK ||
            (st = hms_buf_append(b, r->event, r->event_len)) != HMS_OK)
            return st;
        break;
    case HMS_REJECT_UNENCODABLE:
        if ((st = put_row(b, r->rel, r->row)) != HMS_OK)
            return st;
        break;
    default:
        if ((st = hms_buf_printf(b, ",\"size\":%zu", r->size)) != HMS_OK)
            return st;
        break;
    }
    return hms_buf_append_char(b, '}');
}

hms_status_t hms_reject_build(const hms_reject_t *r, hms_event_t *ev, hms_err_t *err)
{
    char lsn[HMS_LSN_STR_MAX], hex[17], ts[HMS_PGVALUE_RFC3339_LEN + 1];
    hms_status_t st;
    hms_buf_reset(&ev->body);
    hms_buf_reset(&ev->routing_key);
    hms_buf_reset(&ev->queue);
    hms_buf_reset(&ev->reason);
    hms_buf_reset(&ev->subject);
    ev->emitted = false;
    ev->type = HMS_REJECT_TYPE;
    ev->time_unix = 0;
    if ((unsigned)r->reason >= HMS_REJECT_NREASONS ||
        (r->reason == HMS_REJECT_INVALID && (r->event == NULL || r->event_len == 0)))
        return hms_err_set(err, HMS_ERR_STATE, "reject: a %s rejection without what it needs",
                           hms_reject_reason_name(r->reason));
    /* The same id the event would have had, so the slot and any reader
     * can tell which change this was. */
    hms_lsn_hex16(r->tx->commit_lsn, hex);
    snprintf(ev->id, sizeof(ev->id), "%s-%u", hex, r->tx->ordinal);
    hms_lsn_format(r->tx->commit_lsn, lsn);
    int64_t unix_usec = r->tx->commit_time + HMS_PG_EPOCH_OFFSET_USEC;
    if (r->tx->commit_time > INT64_MAX - HMS_PG_EPOCH_OFFSET_USEC ||
        !hms_pgvalue_format_rfc3339(unix_usec, ts)) {
        /* A commit time PostgreSQL cannot produce; keep the document valid. */
        snprintf(ts, sizeof(ts), "1970-01-01T00:00:00.000000Z");
        unix_usec = 0;
    }
    ev->time_unix = unix_usec / 1000000 - (unix_usec % 1000000 < 0);
    if ((st = hms_buf_printf(&ev->reason, "%s: ", reason_name[r->reason])) != HMS_OK ||
        (st = put_line(&ev->reason, r->detail)) != HMS_OK ||
        (st = hms_buf_printf(&ev->routing_key, "rejected.%s", reason_name[r->reason])) != HMS_OK ||
        (st = put_body(r, ev, lsn, ts)) != HMS_OK) {
        hms_buf_reset(&ev->body);
        hms_buf_reset(&ev->reason);
        return hms_err_set(err, st, "reject: out of memory building the rejection of %s", ev->id);
    }
    return HMS_OK;
}
