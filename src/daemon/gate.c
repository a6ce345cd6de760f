/* gate.c -- schema and size check of every event before it is queued, and
 * the rejection of a change that cannot become a valid event. */
#include "daemon/gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/validate.h"
#include "core/buf.h"
#include "core/emit.h"
#include "core/lsn.h"

struct hms_gate {
    hms_cval_t *val;
    size_t max_bytes;
    const hms_encoder_t *enc;
    char *sysid, *dbname;
    hms_buf_t source, table, subject;
    /* Swapped with an event's body, so a rejection can embed the event
     * without copying it. */
    hms_buf_t spare;
    uint64_t rejected[HMS_REJECT_NREASONS];
};

hms_gate_t *hms_gate_new(size_t max_event_bytes, hms_err_t *err)
{
    hms_gate_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        hms_err_set(err, HMS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    g->max_bytes = max_event_bytes;
    if ((g->val = hms_cval_new(err)) == NULL) {
        free(g);
        return NULL;
    }
    return g;
}

void hms_gate_free(hms_gate_t *g)
{
    if (g == NULL)
        return;
    hms_cval_free(g->val);
    free(g->sysid);
    free(g->dbname);
    hms_buf_free(&g->source);
    hms_buf_free(&g->table);
    hms_buf_free(&g->subject);
    hms_buf_free(&g->spare);
    free(g);
}

hms_status_t hms_gate_attach(hms_gate_t *g, const hms_encoder_t *enc, const char *sysid,
                             const char *dbname)
{
    char *s = strdup(sysid), *d = strdup(dbname);
    if (s == NULL || d == NULL) {
        free(s);
        free(d);
        return HMS_ERR_NOMEM;
    }
    free(g->sysid);
    free(g->dbname);
    g->sysid = s;
    g->dbname = d;
    g->enc = enc;
    return HMS_OK;
}

uint64_t hms_gate_rejected(const hms_gate_t *g, hms_reject_reason_t reason)
{
    return g != NULL && (unsigned)reason < HMS_REJECT_NREASONS ? g->rejected[reason] : 0;
}

/* Fills r's table, source and subject for rel and row. */
static hms_status_t describe(hms_gate_t *g, const hms_pgo_relation_t *rel,
                             const hms_pgo_tuple_t *row, hms_reject_t *r)
{
    const hms_capture_t *cap =
        g->enc != NULL && rel != NULL ? hms_encoder_capture(g->enc, rel) : NULL;
    const char *nsp = cap != NULL ? cap->schema : rel != NULL ? rel->nspname : "?";
    const char *tab = cap != NULL ? cap->table : rel != NULL ? rel->relname : "?";
    hms_status_t st;
    hms_buf_reset(&g->table);
    hms_buf_reset(&g->source);
    hms_buf_reset(&g->subject);
    if ((st = hms_buf_printf(&g->table, "%s.%s", nsp, tab)) != HMS_OK ||
        (st = hms_buf_printf(&g->source, "/hms-ehr/%s/%s/%s", g->sysid ? g->sysid : "0",
                             g->dbname ? g->dbname : "?", g->table.data)) != HMS_OK)
        return st;
    r->table = g->table.data;
    r->source = g->source.data;
    r->subject = NULL;
    for (uint16_t i = 0;
         cap != NULL && row != NULL && row->values != NULL && i < rel->ncols && i < row->ncols;
         i++) {
        const hms_pgo_value_t *v = &row->values[i];
        if (rel->cols[i].name == NULL || strcmp(rel->cols[i].name, cap->key_column) != 0 ||
            v->kind != HMS_PGO_VAL_TEXT || (v->data == NULL && v->len > 0))
            continue;
        if ((st = hms_buf_append(&g->subject, v->data != NULL ? v->data : "", v->len)) != HMS_OK)
            return st;
        r->subject = g->subject.data != NULL ? g->subject.data : "";
        r->subject_len = g->subject.len;
    }
    return HMS_OK;
}

/* Writes the rejection r into ev, falling back to a reference when even the
 * rejection would be too large, and checks it against its own schema. */
static hms_status_t build(hms_gate_t *g, hms_reject_t *r, hms_event_t *ev, hms_err_t *err)
{
    char detail[HMS_ERR_MSG_MAX + 96];
    hms_status_t st = hms_reject_build(r, ev, err);
    if (st == HMS_OK && ev->body.len > g->max_bytes) {
        /* The row or the event embedded in it is the bulk: keep only the
         * reference, and say what it was. */
        snprintf(detail, sizeof(detail),
                 "%s; the rejection itself is %zu bytes, over max_event_bytes", ev->reason.data,
                 ev->body.len);
        r->size = r->reason == HMS_REJECT_INVALID ? r->event_len : ev->body.len;
        r->reason = HMS_REJECT_OVERSIZE;
        r->detail = detail;
        st = hms_reject_build(r, ev, err);
    }
    if (st != HMS_OK)
        return st;
    hms_err_t why;
    if (hms_cval_check_rejection(g->val, ev->body.data, ev->body.len, &why) != HMS_OK)
        return hms_err_set(err, HMS_ERR_FATAL,
                           "internal: the rejection of change %s fails its own schema (%s); "
                           "the slot stays before it",
                           ev->id, why.msg);
    return HMS_OK;
}

static void log_rejection(const hms_reject_t *r, const hms_event_t *ev)
{
    char lsn[HMS_LSN_STR_MAX];
    char key[136];
    hms_lsn_format(r->tx->commit_lsn, lsn);
    snprintf(key, sizeof(key), "%.*s",
             r->subject != NULL ? (int)(r->subject_len > 128 ? 128 : r->subject_len) : 1,
             r->subject != NULL ? r->subject : "?");
    hms_log(HMS_LOG_WARN, "change rejected: published to the rejected exchange instead of an event",
            "table", r->table, "key", key, "lsn", lsn, "event", ev->id, "reason",
            hms_reject_reason_name(r->reason), "detail", ev->reason.data, NULL);
}

hms_status_t hms_gate_load_types(hms_gate_t *g, const char *dir, hms_err_t *err)
{
    size_t n;
    hms_status_t st = hms_cval_load_types(g->val, dir, &n, err);
    if (st == HMS_OK) {
        char count[24];
        snprintf(count, sizeof(count), "%zu", n);
        hms_log(HMS_LOG_INFO, "data schemas of emitted types installed", "schemas_dir", dir,
                "types", count, NULL);
    }
    return st;
}

const char *hms_gate_dataschema(const hms_gate_t *g, const char *type)
{
    return hms_cval_type_schema_id(g->val, type);
}

/* Fills r's table, source and subject for an emitted event. */
static hms_status_t describe_emitted(hms_gate_t *g, const hms_emit_t *m, hms_reject_t *r)
{
    hms_status_t st;
    hms_buf_reset(&g->source);
    hms_buf_reset(&g->subject);
    if ((st = hms_buf_printf(&g->source, "/hms-ehr/%s/%s/%s", g->sysid ? g->sysid : "0",
                             g->dbname ? g->dbname : "?", HMS_EMIT_ORIGIN)) != HMS_OK)
        return st;
    r->table = HMS_EMIT_ORIGIN;
    r->source = g->source.data;
    r->subject = NULL;
    if (m != NULL && m->subject_len > 0) {
        if ((st = hms_buf_append(&g->subject, m->subject, m->subject_len)) != HMS_OK)
            return st;
        r->subject = g->subject.data;
        r->subject_len = g->subject.len;
    }
    return HMS_OK;
}

/* The check of ev, or its rejection.  rel and row describe a change; m
 * (when rel is NULL) an emitted event, or neither. */
static hms_status_t pass(hms_gate_t *g, hms_status_t st, const hms_txctx_t *tx,
                         const hms_pgo_relation_t *rel, const hms_pgo_tuple_t *row,
                         const hms_emit_t *m, hms_event_t *ev, hms_err_t *err)
{
    char detail[HMS_ERR_MSG_MAX + 64];
    hms_reject_t r = {.tx = tx, .intended_type = ev->type, .rel = rel, .row = row};
    if (st == HMS_ERR_ENCODE) {
        r.reason = HMS_REJECT_UNENCODABLE;
        snprintf(detail, sizeof(detail), "%s", err->msg);
    } else if (st != HMS_OK) {
        return st;
    } else if (ev->body.len > g->max_bytes) {
        r.reason = HMS_REJECT_OVERSIZE;
        r.size = ev->body.len;
        snprintf(detail, sizeof(detail), "the event is %zu bytes, over max_event_bytes %zu",
                 ev->body.len, g->max_bytes);
    } else {
        bool parsed;
        hms_err_t why;
        if (hms_cval_check_outgoing(g->val, ev->body.data, ev->body.len, &parsed, &why) == HMS_OK)
            return HMS_OK;
        if (why.msg[0] == '\0' || !parsed)
            r.reason = HMS_REJECT_UNENCODABLE;
        else
            r.reason = HMS_REJECT_INVALID;
        snprintf(detail, sizeof(detail), "%s", why.msg);
    }
    r.detail = detail;
    st = rel == NULL && m != NULL ? describe_emitted(g, m, &r) : describe(g, rel, row, &r);
    if (st != HMS_OK)
        return hms_err_set(err, st, "out of memory rejecting a change");
    if (r.reason == HMS_REJECT_INVALID) {
        /* The event becomes the rejection's content: keep its bytes aside. */
        hms_buf_t body = ev->body;
        ev->body = g->spare;
        g->spare = body;
        r.event = g->spare.data;
        r.event_len = g->spare.len;
    }
    st = build(g, &r, ev, err);
    hms_buf_reset(&g->spare);
    if (st != HMS_OK)
        return st;
    g->rejected[r.reason]++;
    log_rejection(&r, ev);
    return HMS_OK;
}

hms_status_t hms_gate_pass(hms_gate_t *g, hms_status_t st, const hms_txctx_t *tx,
                           const hms_pgo_relation_t *rel, const hms_pgo_tuple_t *row,
                           hms_event_t *ev, hms_err_t *err)
{
    return pass(g, st, tx, rel, row, NULL, ev, err);
}

hms_status_t hms_gate_pass_emitted(hms_gate_t *g, hms_status_t st, const hms_txctx_t *tx,
                                   const hms_emit_t *m, hms_event_t *ev, hms_err_t *err)
{
    static const hms_emit_t unread = {0};
    return pass(g, st, tx, NULL, NULL, m != NULL ? m : &unread, ev, err);
}
