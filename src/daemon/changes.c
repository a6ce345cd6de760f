/* changes.c -- CopyData to queued events: decode, encode, track. */
#include "daemon/changes.h"

#include <stdio.h>

#include "common/log.h"
#include "core/walproto.h"

static hms_status_t on_change(hms_changes_t *c, const hms_pgo_msg_t *m, hms_err_t *err)
{
    hms_txctx_t tx = c->tx;
    c->tx.ordinal++; /* every change the publication sends counts, captured or not */
    if (hms_encoder_capture(c->enc, m->u.change.rel) == NULL)
        return HMS_OK;
    hms_outq_slot_t *slot = hms_outq_reserve(c->q);
    if (slot == NULL) /* the loop reads only while there is room */
        return hms_err_set(err, HMS_ERR_STATE, "internal: outbound queue full");
    hms_status_t st = hms_encoder_encode(c->enc, &tx, m, &slot->ev, err);
    if (st != HMS_OK) {
        /* err->msg cannot be both the format's argument and its output. */
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return hms_err_set(err, HMS_ERR_FATAL,
                           "%s; the slot stays before this change, so nothing is lost: fix the "
                           "row or the table and restart",
                           why);
    }
    uint64_t seq;
    st = hms_tracker_add_event(c->trk, &seq);
    if (st != HMS_OK)
        return hms_err_set(err, st, "internal: change outside a transaction");
    hms_outq_push(c->q, seq);
    return HMS_OK;
}

static hms_status_t on_pgoutput(hms_changes_t *c, const uint8_t *buf, size_t len, hms_err_t *err)
{
    hms_pgo_msg_t m;
    hms_status_t st = hms_pgo_decode(c->dec, buf, len, &m, err);
    if (st != HMS_OK) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return hms_err_set(err, HMS_ERR_FATAL, "pg: cannot decode the replication stream: %s", why);
    }
    switch (m.kind) {
    case HMS_PGO_BEGIN:
        if (hms_tracker_begin(c->trk) != HMS_OK)
            return hms_err_set(err, HMS_ERR_FATAL, "pg: Begin inside a transaction");
        c->in_tx = true;
        c->tx.commit_lsn = m.u.begin.final_lsn;
        c->tx.xid = m.u.begin.xid;
        c->tx.commit_time = m.u.begin.commit_time;
        c->tx.ordinal = 0;
        return HMS_OK;
    case HMS_PGO_COMMIT:
        if (!c->in_tx)
            return hms_err_set(err, HMS_ERR_FATAL, "pg: Commit outside a transaction");
        c->in_tx = false;
        return hms_tracker_commit(c->trk, m.u.commit.end_lsn, m.u.commit.commit_time);
    case HMS_PGO_INSERT:
    case HMS_PGO_UPDATE:
    case HMS_PGO_DELETE: return on_change(c, &m, err);
    case HMS_PGO_RELATION:
        hms_log(HMS_LOG_DEBUG, "relation described", "schema", m.u.relation.rel->nspname, "table",
                m.u.relation.rel->relname, NULL);
        return HMS_OK;
    case HMS_PGO_TRUNCATE:
        hms_log(HMS_LOG_WARN, "TRUNCATE seen in the stream; it is not published as events", NULL);
        return HMS_OK;
    case HMS_PGO_ORIGIN:
    case HMS_PGO_TYPE:
    case HMS_PGO_MESSAGE: return HMS_OK;
    }
    return HMS_OK;
}

hms_status_t hms_changes_take(hms_changes_t *c, const uint8_t *buf, size_t len, bool *reply,
                              hms_err_t *err)
{
    hms_walmsg_t w;
    hms_status_t st = hms_walmsg_parse(buf, len, &w, err);
    if (st != HMS_OK) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return hms_err_set(err, HMS_ERR_FATAL, "pg: bad replication message: %s", why);
    }
    if (w.wal_end > c->received_lsn)
        c->received_lsn = w.wal_end;
    if (w.kind == 'k') {
        hms_tracker_keepalive(c->trk, w.wal_end);
        if (w.reply_requested)
            *reply = true;
        return HMS_OK;
    }
    return on_pgoutput(c, w.data, w.len, err);
}

void hms_changes_restart(hms_changes_t *c, uint64_t flush)
{
    hms_outq_clear(c->q);
    hms_tracker_reset(c->trk, flush);
    hms_pgo_decoder_reset(c->dec);
    c->in_tx = false;
}
