/* changes.c -- CopyData to queued events: decode, encode, track. */
#include "daemon/changes.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "core/emit.h"
#include "core/lsn.h"
#include "core/rowtext.h"
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

/* The encoder's result for one event through the gate: the event itself,
 * or the change's rejection when it cannot be a valid event (the stream
 * goes on); anything else stops the stream before the change. */
static hms_status_t encoded(hms_changes_t *c, hms_status_t st, const hms_txctx_t *tx,
                            const hms_pgo_relation_t *rel, const hms_pgo_tuple_t *row,
                            hms_event_t *ev, hms_err_t *err)
{
    if (c->gate != NULL)
        st = hms_gate_pass(c->gate, st, tx, rel, row, ev, err);
    return st == HMS_OK ? HMS_OK : encode_failed(err);
}

/* The row event part of change m is made from: the old row for a Deleted
 * (a DELETE, or the first event of a key change), else the new row. */
static const hms_pgo_tuple_t *part_row(const hms_pgo_msg_t *m, unsigned part, unsigned nparts)
{
    if (m->kind == HMS_PGO_DELETE || (m->kind == HMS_PGO_UPDATE && nparts == 2 && part == 0))
        return m->u.change.old_kind != 0 ? &m->u.change.oldtup : NULL;
    return &m->u.change.newtup;
}

static hms_status_t queue_event(hms_changes_t *c, uint64_t *seq, hms_err_t *err)
{
    if (hms_tracker_add_event(c->trk, seq) != HMS_OK)
        return hms_err_set(err, HMS_ERR_STATE, "internal: change outside a transaction");
    hms_outq_push(c->q, *seq);
    return HMS_OK;
}

/* The prefix of the logical message in which sql/007_old_rows.sql's trigger
 * logs the old row of a DELETE or key change while REPLICA IDENTITY is not
 * FULL. */
#define OLD_ROW_PREFIX "hms_sync.old_row"

/* The prefix of the logical message in which sql/009_truncate_version.sql's
 * trigger logs the version a TRUNCATE drew, just before it. */
#define TRUNCATE_VERSION_PREFIX "hms_sync.truncate"

/* The decimal version in a truncate message; 0 (every row) if it is not
 * one, which only a hand-written message with this prefix can cause. */
static uint64_t parse_version(const char *s, size_t len)
{
    uint64_t v = 0;
    if (len == 0 || len > 19)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return v;
}

/* An application's hms_sync.emit call becomes one event on the events
 * exchange.  It counts among the transaction's changes (the id rule); the
 * messages hms-sync's own triggers write do not. */
static hms_status_t on_emit(hms_changes_t *c, const hms_pgo_msg_t *m, hms_err_t *err)
{
    hms_txctx_t tx = c->tx;
    c->tx.ordinal++;
    hms_outq_slot_t *slot = hms_outq_reserve(c->q);
    if (slot == NULL) /* the loop reads only while there is room */
        return hms_err_set(err, HMS_ERR_STATE, "internal: outbound queue full");
    hms_emit_t e;
    hms_status_t st = hms_emit_parse(m->u.message.content, m->u.message.len, &e, err);
    if (st == HMS_OK) {
        char type[256];
        snprintf(type, sizeof(type), "%.*s", (int)e.type_len, e.type);
        const char *schema = c->gate != NULL ? hms_gate_dataschema(c->gate, type) : NULL;
        st = hms_emit_encode(c->source, &tx, &e, schema, &slot->ev, err);
    } else {
        st = HMS_ERR_ENCODE;
        slot->ev.type = NULL; /* no type was read: the slot's last one is not this */
    }
    if (c->gate != NULL)
        st = hms_gate_pass_emitted(c->gate, st, &tx, st == HMS_ERR_ENCODE ? NULL : &e, &slot->ev,
                                   err);
    if (st != HMS_OK)
        return encode_failed(err);
    uint64_t seq;
    return queue_event(c, &seq, err);
}

/* Keeps the trigger's old row until the change it belongs to arrives: the
 * trigger fires just before the row's own WAL record, so only the newest
 * one can match. */
static hms_status_t on_message(hms_changes_t *c, const hms_pgo_msg_t *m, hms_err_t *err)
{
    if (!c->in_tx || !(m->u.message.flags & 1))
        return HMS_OK;
    if (c->snap != NULL && strcmp(m->u.message.prefix, HMS_SNAPSHOT_PREFIX) == 0) {
        if (hms_snapshot_watermark(c->snap, m->u.message.content, m->u.message.len)) {
            c->snap_in_tx = true;
            return hms_changes_pump(c, err);
        }
        return HMS_OK;
    }
    if (strcmp(m->u.message.prefix, HMS_EMIT_PREFIX) == 0)
        return on_emit(c, m, err);
    if (strcmp(m->u.message.prefix, TRUNCATE_VERSION_PREFIX) == 0) {
        c->truncate_version = parse_version(m->u.message.content, m->u.message.len);
        return HMS_OK;
    }
    if (strcmp(m->u.message.prefix, OLD_ROW_PREFIX) != 0)
        return HMS_OK;
    hms_buf_reset(&c->old_row);
    c->have_old_row = false;
    if (hms_buf_append(&c->old_row, m->u.message.content, m->u.message.len) != HMS_OK)
        return hms_err_set(err, HMS_ERR_FATAL, "out of memory for an old row of %u bytes",
                           m->u.message.len);
    c->have_old_row = true;
    return HMS_OK;
}

/* The key columns of key-only tuple key, and the same columns of row, hold
 * the same text. */
static bool same_key(const hms_pgo_relation_t *rel, const hms_pgo_tuple_t *key,
                     const hms_pgo_tuple_t *row)
{
    bool any = false;
    for (uint16_t i = 0; i < rel->ncols; i++) {
        if (!(rel->cols[i].flags & 1))
            continue;
        const hms_pgo_value_t *a = &key->values[i], *b = &row->values[i];
        if (a->kind != HMS_PGO_VAL_TEXT || b->kind != HMS_PGO_VAL_TEXT || a->len != b->len ||
            memcmp(a->data, b->data, a->len) != 0)
            return false;
        any = true;
    }
    return any;
}

/* A DELETE, or an UPDATE that changed the key, written while the table's
 * REPLICA IDENTITY was not FULL carries only the old key.  The trigger then
 * logged the whole old row just before it: put that row in its place.
 * False when there is none for this key (the trigger did not fire). */
static bool restore_old_row(hms_changes_t *c, hms_pgo_msg_t *m)
{
    const hms_pgo_relation_t *rel = m->u.change.rel;
    hms_pgo_tuple_t row;
    hms_err_t ignored;
    bool ok =
        c->have_old_row && m->u.change.oldtup.ncols == rel->ncols &&
        hms_rowtext_parse(&c->rowtext, c->old_row.data, c->old_row.len, &row, &ignored) == HMS_OK &&
        row.ncols == rel->ncols && same_key(rel, &m->u.change.oldtup, &row);
    c->have_old_row = false;
    if (ok) {
        m->u.change.oldtup = row;
        m->u.change.old_kind = 'O';
    }
    return ok;
}

/* A key-only DELETE or key change with no old row to complete it: the
 * Deleted event needs the whole old row, and subscribers need its version
 * to order the delete (last-write-wins), so there is no valid event to
 * make, and passing it would leave the row alive on every subscriber.  So
 * the stream stops before it; the message names the key so that the
 * operator can repair the subscribers. */
static hms_status_t keyonly_change(const hms_changes_t *c, const hms_pgo_msg_t *m, hms_err_t *err)
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
                       "pg: %s of %s.%s key '%.*s' (transaction committed at %s) carries only "
                       "its key: REPLICA IDENTITY was %s, not FULL, and hms-sync's trigger "
                       "hms_sync_old_row did not log the old row, so no valid Deleted event can "
                       "be made and hms-sync stops before it; run ALTER TABLE %s.%s REPLICA "
                       "IDENTITY FULL; and see docs/operations.md \"A DELETE without its row\"",
                       m->kind == HMS_PGO_DELETE ? "a DELETE" : "a key change", rel->nspname,
                       rel->relname, keylen, key, lsn, hms_pgo_replident_name(rel->replident),
                       rel->nspname, rel->relname);
}

/* Tells the snapshot which key a change carried: its rows read before the
 * change must not be published after it. */
static void note_key(hms_changes_t *c, const hms_pgo_relation_t *rel, const hms_pgo_tuple_t *t)
{
    if (c->key_generation != rel->generation) {
        const hms_capture_t *cap = hms_encoder_capture(c->enc, rel);
        c->key_col = -1;
        for (uint16_t i = 0; cap != NULL && i < rel->ncols; i++)
            if (strcmp(rel->cols[i].name, cap->key_column) == 0)
                c->key_col = i;
        c->key_generation = rel->generation;
    }
    if (c->key_col >= 0 && c->key_col < t->ncols && t->values[c->key_col].kind == HMS_PGO_VAL_TEXT)
        hms_snapshot_note_key(c->snap, t->values[c->key_col].data, t->values[c->key_col].len);
}

/* A change becomes one event, or two for a key change (Deleted of the old
 * key, Created of the new) with consecutive ordinals: every later change of
 * the transaction then counts one further. */
static hms_status_t on_change(hms_changes_t *c, hms_pgo_msg_t *m, hms_err_t *err)
{
    hms_txctx_t tx = c->tx;
    c->tx.ordinal++; /* every change the publication sends counts, captured or not */
    if (hms_encoder_capture(c->enc, m->u.change.rel) == NULL)
        return HMS_OK;
    bool keyonly =
        m->u.change.old_kind == 'K' || (m->kind == HMS_PGO_DELETE && m->u.change.old_kind != 'O');
    if (keyonly && !restore_old_row(c, m))
        return keyonly_change(c, m, err);
    c->have_old_row = false;
    if (c->snap != NULL) {
        if (m->kind != HMS_PGO_INSERT && m->u.change.old_kind != 0)
            note_key(c, m->u.change.rel, &m->u.change.oldtup);
        if (m->kind != HMS_PGO_DELETE)
            note_key(c, m->u.change.rel, &m->u.change.newtup);
    }
    unsigned nparts = 1;
    for (unsigned part = 0; part < nparts; part++) {
        hms_outq_slot_t *slot = hms_outq_reserve(c->q);
        if (slot == NULL) /* the loop reads only while there is room for them all */
            return hms_err_set(err, HMS_ERR_STATE, "internal: outbound queue full");
        tx.ordinal = c->tx.ordinal - 1 + part;
        hms_status_t est = hms_encoder_encode_part(c->enc, &tx, m, part, &slot->ev, &nparts, err);
        if (encoded(c, est, &tx, m->u.change.rel, part_row(m, part, nparts), &slot->ev, err) !=
            HMS_OK)
            return HMS_ERR_FATAL;
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
    uint64_t version = c->truncate_version;
    c->truncate_version = 0;
    c->tx.ordinal++;
    for (uint32_t i = 0; i < m->u.truncate.nrels; i++) {
        const hms_pgo_relation_t *rel = hms_pgo_relation(c->dec, m->u.truncate.relids[i]);
        if (rel == NULL)
            return hms_err_set(err, HMS_ERR_FATAL,
                               "pg: TRUNCATE of relation %u, which the stream never described",
                               m->u.truncate.relids[i]);
        if (hms_encoder_capture(c->enc, rel) == NULL)
            continue;
        if (c->snap != NULL)
            hms_snapshot_note_truncate(c->snap);
        hms_outq_slot_t *slot = hms_outq_reserve(c->q);
        if (slot == NULL)
            return hms_err_set(err, HMS_ERR_FATAL,
                               "TRUNCATE of more captured tables at once than the outbound "
                               "queue holds; raise window");
        if (encoded(c, hms_encoder_encode_truncate(c->enc, &tx, rel, version, &slot->ev, err), &tx,
                    rel, NULL, &slot->ev, err) != HMS_OK)
            return HMS_ERR_FATAL;
        hms_log(HMS_LOG_WARN,
                "TRUNCATE published: subscribers tombstone every row written before it", "table",
                rel->relname, "event", slot->ev.id, NULL);
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
        c->have_old_row = false;
        c->truncate_version = 0;
        return HMS_OK;
    case HMS_PGO_COMMIT:
        if (!c->in_tx)
            return hms_err_set(err, HMS_ERR_FATAL, "pg: Commit outside a transaction");
        c->in_tx = false;
        if (c->snap_in_tx)
            hms_snapshot_committed(c->snap, m.u.commit.end_lsn);
        c->snap_in_tx = false;
        return hms_tracker_commit(c->trk, m.u.commit.end_lsn, m.u.commit.commit_time);
    case HMS_PGO_INSERT:
    case HMS_PGO_UPDATE:
    case HMS_PGO_DELETE: return on_change(c, &m, err);
    case HMS_PGO_RELATION: on_relation(c, m.u.relation.rel); return HMS_OK;
    case HMS_PGO_TRUNCATE: return on_truncate(c, &m, err);
    case HMS_PGO_MESSAGE: return on_message(c, &m, err);
    case HMS_PGO_ORIGIN:
    case HMS_PGO_TYPE: return HMS_OK;
    }
    return HMS_OK;
}

bool hms_changes_can_take(const hms_changes_t *c)
{
    return hms_outq_room(c->q) >= HMS_ENCODER_MAX_PARTS &&
           (c->snap == NULL || !hms_snapshot_due(c->snap));
}

hms_status_t hms_changes_pump(hms_changes_t *c, hms_err_t *err)
{
    while (c->snap != NULL && hms_snapshot_due(c->snap) && hms_outq_room(c->q) > 0) {
        hms_pgo_tuple_t row;
        const hms_pgo_relation_t *rel;
        const char *id, *queue;
        if (!hms_snapshot_next_row(c->snap, &row, &rel, &id, &queue))
            break;
        /* The watermark's transaction holds nothing else: its ordinals
         * number the chunk's rows. */
        hms_txctx_t tx = c->tx;
        c->tx.ordinal++;
        hms_outq_slot_t *slot = hms_outq_reserve(c->q);
        hms_status_t est =
            hms_encoder_encode_snapshot(c->enc, &tx, rel, &row, id, queue, &slot->ev, err);
        if (encoded(c, est, &tx, rel, &row, &slot->ev, err) != HMS_OK)
            return HMS_ERR_FATAL;
        uint64_t seq;
        hms_status_t st = queue_event(c, &seq, err);
        if (st != HMS_OK)
            return st;
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
                "a captured table's REPLICA IDENTITY is no longer FULL: its deletes and key "
                "changes are published only while the trigger hms_sync_old_row logs their old "
                "rows; not ready until it is FULL again",
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
    c->have_old_row = false;
    c->snap_in_tx = false;
    if (c->snap != NULL)
        hms_snapshot_stream_restart(c->snap, flush);
}

void hms_changes_free(hms_changes_t *c)
{
    hms_buf_free(&c->old_row);
    hms_rowtext_free(&c->rowtext);
}
