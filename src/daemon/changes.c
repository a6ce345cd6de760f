/* changes.c -- CopyData to queued events: decode, encode, track. */
#include "daemon/changes.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "core/lsn.h"
#include "core/walproto.h"

/* The encoder's failure, with what it means for the slot. */
static hms_status_t encode_failed(hms_err_t *err)
{
    /* err->msg cannot be both the format's argument and its output. */
    char why[sizeof(err->msg)];
    snprintf(why, sizeof(why), "%s", err->msg);
    return hms_err_set(err, HMS_ERR_FATAL,
                       "%s; the slot stays before this change, so nothing is lost: fix the "
                       "row or the table and restart",
                       why);
}

static hms_status_t queue_event(hms_changes_t *c, uint64_t *seq, hms_err_t *err)
{
    if (hms_tracker_add_event(c->trk, seq) != HMS_OK)
        return hms_err_set(err, HMS_ERR_STATE, "internal: change outside a transaction");
    hms_outq_push(c->q, *seq);
    return HMS_OK;
}

/* A DELETE written while the table's REPLICA IDENTITY was not FULL carries
 * only the key.  The Deleted event needs the whole old row, and subscribers
 * need its version to order the delete (last-write-wins): there is no valid
 * event to make, and passing it would leave the row alive on every
 * subscriber.  So the stream stops before it; the message names the key so
 * that the operator can repair the subscribers. */
static hms_status_t keyonly_delete(const hms_changes_t *c, const hms_pgo_msg_t *m, hms_err_t *err)
{
    const hms_pgo_relation_t *rel = m->u.change.rel;
    const hms_pgo_tuple_t *old = &m->u.change.oldtup;
    const char *key = "?";
    int keylen = 1;
    char lsn[HMS_LSN_STR_MAX];
    for (uint16_t i = 0; i < rel->ncols && i < old->ncols && old->values != NULL; i++) {
        if ((rel->cols[i].flags & 1) && old->values[i].kind == HMS_PGO_VAL_TEXT) {
            key = old->values[i].data;
            keylen = old->values[i].len > 64 ? 64 : (int)old->values[i].len;
            break;
        }
    }
    hms_lsn_format(c->tx.commit_lsn, lsn);
    return hms_err_set(err, HMS_ERR_FATAL,
                       "pg: a DELETE of %s.%s key '%.*s' (transaction committed at %s) carries "
                       "only its key: REPLICA IDENTITY was %s, not FULL, when it ran, so no "
                       "valid Deleted event can be made and hms-sync stops before it; run "
                       "ALTER TABLE %s.%s REPLICA IDENTITY FULL; then see docs/operations.md "
                       "\"A DELETE without its row\"",
                       rel->nspname, rel->relname, keylen, key, lsn,
                       hms_pgo_replident_name(rel->replident), rel->nspname, rel->relname);
}

/* A change becomes one event, or two for a key change (Deleted of the old
 * key, Created of the new) with consecutive ordinals: every later change of
 * the transaction then counts one further. */
static hms_status_t on_change(hms_changes_t *c, const hms_pgo_msg_t *m, hms_err_t *err)
{
    hms_txctx_t tx = c->tx;
    c->tx.ordinal++; /* every change the publication sends counts, captured or not */
    if (hms_encoder_capture(c->enc, m->u.change.rel) == NULL)
        return HMS_OK;
    if (m->kind == HMS_PGO_DELETE && m->u.change.old_kind != 'O')
        return keyonly_delete(c, m, err);
    unsigned nparts = 1;
    for (unsigned part = 0; part < nparts; part++) {
        hms_outq_slot_t *slot = hms_outq_reserve(c->q);
        if (slot == NULL) /* the loop reads only while there is room for them all */
            return hms_err_set(err, HMS_ERR_STATE, "internal: outbound queue full");
        tx.ordinal = c->tx.ordinal - 1 + part;
        if (hms_encoder_encode_part(c->enc, &tx, m, part, &slot->ev, &nparts, err) != HMS_OK)
            return encode_failed(err);
        uint64_t seq;
        hms_status_t st = queue_event(c, &seq, err);
        if (st != HMS_OK)
            return st;
    }
    c->tx.ordinal += nparts - 1;
    return HMS_OK;
}

/* A Truncate message counts as one change: each captured relation in it
 * becomes one truncation event with that ordinal (their sources differ, so
 * their ids stay unique with the source). */
static hms_status_t on_truncate(hms_changes_t *c, const hms_pgo_msg_t *m, hms_err_t *err)
{
    hms_txctx_t tx = c->tx;
    c->tx.ordinal++;
    for (uint32_t i = 0; i < m->u.truncate.nrels; i++) {
        const hms_pgo_relation_t *rel = hms_pgo_relation(c->dec, m->u.truncate.relids[i]);
        if (rel == NULL)
            return hms_err_set(err, HMS_ERR_FATAL,
                               "pg: TRUNCATE of relation %u, which the stream never described",
                               m->u.truncate.relids[i]);
        if (hms_encoder_capture(c->enc, rel) == NULL)
            continue;
        hms_outq_slot_t *slot = hms_outq_reserve(c->q);
        if (slot == NULL)
            return hms_err_set(err, HMS_ERR_FATAL,
                               "TRUNCATE of more captured tables at once than the outbound "
                               "queue holds; raise window");
        if (hms_encoder_encode_truncate(c->enc, &tx, rel, &slot->ev, err) != HMS_OK)
            return encode_failed(err);
        hms_log(HMS_LOG_WARN, "TRUNCATE published: subscribers tombstone every row they hold",
                "table", rel->relname, "event", slot->ev.id, NULL);
        uint64_t seq;
        hms_status_t st = queue_event(c, &seq, err);
        if (st != HMS_OK)
            return st;
    }
    return HMS_OK;
}

/* pgoutput describes a table again before its first change after any DDL,
 * ALTER TABLE ... REPLICA IDENTITY included: that is where a change of the
 * captured table's identity shows. */
static void on_relation(hms_changes_t *c, const hms_pgo_relation_t *rel)
{
    char table[sizeof(c->identity_table)];
    hms_log(HMS_LOG_DEBUG, "relation described", "schema", rel->nspname, "table", rel->relname,
            NULL);
    if (c->enc == NULL || hms_encoder_capture(c->enc, rel) == NULL)
        return;
    snprintf(table, sizeof(table), "%s.%s", rel->nspname, rel->relname);
    hms_changes_note_identity(c, table, rel->replident);
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
    case HMS_PGO_RELATION: on_relation(c, m.u.relation.rel); return HMS_OK;
    case HMS_PGO_TRUNCATE: return on_truncate(c, &m, err);
    case HMS_PGO_ORIGIN:
    case HMS_PGO_TYPE:
    case HMS_PGO_MESSAGE: return HMS_OK;
    }
    return HMS_OK;
}

bool hms_changes_can_take(const hms_changes_t *c)
{
    return hms_outq_room(c->q) >= HMS_ENCODER_MAX_PARTS;
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

void hms_changes_note_identity(hms_changes_t *c, const char *table, char ident)
{
    bool same = strcmp(c->identity_table, table) == 0;
    bool was_full = c->identity == 0 || c->identity == 'f';
    if (table[0] == '\0' || (!same && !was_full && ident == 'f'))
        return;
    snprintf(c->identity_table, sizeof(c->identity_table), "%s", table);
    c->identity = ident;
    if (ident != 'f' && (was_full || !same)) {
        char fix[200];
        snprintf(fix, sizeof(fix), "ALTER TABLE %s REPLICA IDENTITY FULL;", table);
        hms_log(HMS_LOG_WARN,
                "a captured table's REPLICA IDENTITY is no longer FULL: a DELETE on it cannot be "
                "published and will stop the stream; not ready until it is FULL again",
                "table", table, "replica_identity", hms_pgo_replident_name(ident), "fix", fix,
                NULL);
    } else if (ident == 'f' && !was_full) {
        hms_log(HMS_LOG_INFO, "REPLICA IDENTITY FULL is back on the captured table", "table", table,
                NULL);
    }
}

void hms_changes_restart(hms_changes_t *c, uint64_t flush)
{
    hms_outq_clear(c->q);
    hms_tracker_reset(c->trk, flush);
    hms_pgo_decoder_reset(c->dec);
    c->in_tx = false;
}
