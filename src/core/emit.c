/* emit.c -- an hms_sync.emit message into its CloudEvent. */
#include "core/emit.h"

#include <string.h>

#include "core/event_int.h"
#include "core/lsn.h"
#include "core/pgvalue.h"

/* An AMQP routing key holds at most 255 bytes. */
#define TYPE_MAX 255

#define EMIT_TYPE_MAX 200

static bool is_lower_or_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_or_digit(c) || (c >= 'A' && c <= 'Z');
}

bool hms_emit_type_ok(const char *type, size_t len)
{
    static const char reserved[] = "gov.hms.ehr.";
    if (len == 0 || len > EMIT_TYPE_MAX ||
        (len >= sizeof(reserved) - 1 && memcmp(type, reserved, sizeof(reserved) - 1) == 0))
        return false;
    size_t names = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && type[i] != '.')
            continue;
        const char *w = type + start;
        size_t n = i - start;
        if (n == 0)
            return false;
        for (size_t k = 0; k < n; k++) {
            char c = w[k];
            bool ok = names == 0
                          ? (k == 0 ? c >= 'a' && c <= 'z' : is_lower_or_digit(c) || c == '-')
                          : (k == 0 ? is_alnum(c) : is_alnum(c) || c == '_' || c == '-');
            if (!ok)
                return false;
        }
        if (i == len) { /* the last name is the version: v1, v2, ... */
            bool version = names >= 3 && n >= 2 && w[0] == 'v' && w[1] >= '1' && w[1] <= '9';
            for (size_t k = 2; version && k < n; k++)
                version = w[k] >= '0' && w[k] <= '9';
            return version;
        }
        names++;
        start = i + 1;
    }
    return false;
}

hms_status_t hms_emit_parse(const char *content, size_t len, hms_emit_t *out, hms_err_t *err)
{
    const char *end = content + len;
    const char *nl1 = memchr(content, '\n', len);
    const char *nl2 = nl1 != NULL ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    if (nl2 == NULL)
        return hms_err_set(err, HMS_ERR_MALFORMED,
                           "an %s message must be type, subject and data on three lines; this "
                           "one has %s",
                           HMS_EMIT_PREFIX, nl1 == NULL ? "one" : "two");
    *out = (hms_emit_t){.type = content,
                        .type_len = (size_t)(nl1 - content),
                        .subject = nl1 + 1,
                        .subject_len = (size_t)(nl2 - nl1 - 1),
                        .data = nl2 + 1,
                        .data_len = (size_t)(end - nl2 - 1)};
    const char *empty = out->type_len == 0      ? "type"
                        : out->subject_len == 0 ? "subject"
                        : out->data_len == 0    ? "data"
                                                : NULL;
    if (empty != NULL)
        return hms_err_set(err, HMS_ERR_MALFORMED, "an %s message has an empty %s", HMS_EMIT_PREFIX,
                           empty);
    if (out->type_len > TYPE_MAX)
        return hms_err_set(err, HMS_ERR_MALFORMED,
                           "an %s message's type is %zu bytes, more than a routing key holds (%d)",
                           HMS_EMIT_PREFIX, out->type_len, TYPE_MAX);
    return HMS_OK;
}

hms_status_t hms_emit_encode(const char *source, const hms_txctx_t *tx, const hms_emit_t *m,
                             const char *dataschema, hms_event_t *ev, hms_err_t *err)
{
    char ts[HMS_PGVALUE_RFC3339_LEN + 1], lsn[HMS_LSN_STR_MAX];
    hms_status_t st = hms_ev_start(ev, tx, ts, err);
    if (st != HMS_OK)
        return hms_ev_fail(ev, st, err);
    ev->emitted = true;
    size_t lsn_len = hms_ev_lsn_text(tx->commit_lsn, lsn);
    hms_buf_t *b = &ev->body;
    hms_buf_reset(&ev->own_type);
    if ((st = hms_buf_append(&ev->own_type, m->type, m->type_len)) != HMS_OK ||
        (st = hms_buf_append(&ev->routing_key, m->type, m->type_len)) != HMS_OK ||
        (st = hms_buf_append(&ev->subject, m->subject, m->subject_len)) != HMS_OK ||
        (st = hms_buf_append_str(b, "{\"specversion\":\"1.0\",\"type\":")) != HMS_OK ||
        (st = hms_buf_append_json_str(b, m->type, m->type_len)) != HMS_OK ||
        (st = hms_buf_append_str(b, ",\"source\":")) != HMS_OK ||
        (st = hms_buf_printf(b, "\"%s/%s\"", source, HMS_EMIT_ORIGIN)) != HMS_OK ||
        (st = hms_buf_append_str(b, ",\"id\":\"")) != HMS_OK ||
        (st = hms_buf_append_str(b, ev->id)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"subject\":")) != HMS_OK ||
        (st = hms_buf_append_json_str(b, m->subject, m->subject_len)) != HMS_OK ||
        (st = hms_buf_append_str(b, ",\"time\":\"")) != HMS_OK ||
        (st = hms_buf_append(b, ts, HMS_PGVALUE_RFC3339_LEN)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"lsn\":\"")) != HMS_OK ||
        (st = hms_buf_append(b, lsn, lsn_len)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"txid\":")) != HMS_OK ||
        (st = hms_ev_put_u64(b, tx->xid)) != HMS_OK ||
        (st = hms_buf_append_str(b, ",\"datacontenttype\":\"application/json\"")) != HMS_OK)
        return hms_ev_fail(ev, st, err);
    if (dataschema != NULL &&
        ((st = hms_buf_append_str(b, ",\"dataschema\":")) != HMS_OK ||
         (st = hms_buf_append_json_str(b, dataschema, strlen(dataschema))) != HMS_OK))
        return hms_ev_fail(ev, st, err);
    /* jsonb's text, as it is: the gate parses the whole event before it is
     * published, so anything but one JSON value becomes a rejection. */
    if ((st = hms_buf_append_str(b, ",\"data\":")) != HMS_OK ||
        (st = hms_buf_append(b, m->data, m->data_len)) != HMS_OK ||
        (st = hms_buf_append_char(b, '}')) != HMS_OK)
        return hms_ev_fail(ev, st, err);
    ev->type = ev->own_type.data;
    return HMS_OK;
}
