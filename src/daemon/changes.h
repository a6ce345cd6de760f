/* changes.h -- the walsender's CopyData turned into queued events, in
 * stream order: walproto tells XLogData from keepalives, the pgoutput
 * decoder reads the change (or an application's hms_sync.emit message),
 * the encoder writes its event into the outbound queue, and the LSN tracker numbers it and closes
 * its transaction at the commit.  No I/O besides the log.
 *
 * Ownership: the struct borrows the decoder, encoder, tracker and queue
 * from its caller, who creates and frees them. */
#ifndef HMS_DAEMON_CHANGES_H
#define HMS_DAEMON_CHANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/buf.h"
#include "core/outq.h"
#include "core/pgoutput.h"
#include "core/rowtext.h"
#include "core/status.h"
#include "core/tracker.h"
#include "daemon/gate.h"
#include "daemon/snapshot.h"

typedef struct {
    hms_pgo_decoder_t *dec;
    hms_encoder_t *enc; /* set before the first CopyData */
    hms_tracker_t *trk;
    /* Checks every encoded event and turns a change that cannot be a valid
     * event into its rejection; NULL: no checks.  Borrowed. */
    hms_gate_t *gate;
    hms_outq_t *q;         /* the caller hands over CopyData only while it has room */
    bool in_tx;            /* between a Begin and its Commit */
    hms_txctx_t tx;        /* that transaction */
    uint64_t received_lsn; /* the newest WAL end the walsender reported */
    /* The captured table's replica identity (see hms_changes_note_identity):
     * "schema.table" and pg_class.relreplident, "" and 0 while unknown. */
    char identity_table[128];
    char identity;
    /* The newest old row the trigger of sql/007_old_rows.sql logged in this
     * transaction, waiting for its key-only change; owned. */
    hms_buf_t old_row;
    bool have_old_row;
    /* The version the TRUNCATE in this transaction drew (the trigger of
     * sql/009_truncate_version.sql logs it just before), 0 if none. */
    uint64_t truncate_version;
    hms_rowtext_t rowtext;
    /* Snapshots read alongside the stream (NULL: none): the stream tells it
     * which keys changed and where its watermarks are, and publishes its
     * rows there.  Borrowed. */
    hms_snapshot_t *snap;
    bool snap_in_tx; /* this transaction carried snapshot rows */
    /* "/hms-ehr/<system identifier>/<database>": where emitted events come
     * from (set with the encoder). */
    char source[200];
    uint64_t key_generation; /* the relation whose key column is key_col */
    int key_col;
} hms_changes_t;

/* True when the queue has room for every event one CopyData message can
 * become (a key change is two) and no snapshot rows wait to be queued: the
 * caller hands over CopyData only then. */
bool hms_changes_can_take(const hms_changes_t *c);

/* Queues the snapshot rows that are due (a watermark was reached) while
 * the queue has room; call before handing over CopyData.  Errors as
 * hms_changes_take. */
hms_status_t hms_changes_pump(hms_changes_t *c, hms_err_t *err);

/* Takes one CopyData message (buf is only read during the call).  *reply is
 * set when it was a keepalive asking for a reply, and left alone otherwise.
 * A row that cannot become a valid event is queued as its rejection (see
 * daemon/gate.h) and the stream goes on.  HMS_ERR_FATAL when the stream
 * cannot be decoded or encoding fails for another cause than the row, such
 * as memory (the message names it and says that the slot stays before it),
 * a DELETE or key change of a captured table among them that arrived with
 * only its key (REPLICA IDENTITY was not FULL when it ran) and without the
 * old row that hms-sync's trigger logs for it (no valid event exists);
 * HMS_ERR_STATE when the queue was full. */
hms_status_t hms_changes_take(hms_changes_t *c, const uint8_t *buf, size_t len, bool *reply,
                              hms_err_t *err);

/* Notes that captured table `table` ("schema.table") has replica identity
 * ident (pg_class.relreplident; 'f' is FULL), as a session's start or a
 * Relation message reports it; a table "" is ignored.  Logs one warning with
 * the fix when it stops being FULL, and a notice when it is FULL again.
 * While another table is known not to be FULL, a FULL one does not replace
 * it.  Captured Relation messages come through here by themselves. */
void hms_changes_note_identity(hms_changes_t *c, const char *table, char ident);

/* After the stream was lost: forgets the queue, the open transaction and
 * the decoder's relations, and puts the tracker back at flush, from where
 * PostgreSQL will send everything again. */
void hms_changes_restart(hms_changes_t *c, uint64_t flush);

/* Releases what the struct owns (not what it borrows). */
void hms_changes_free(hms_changes_t *c);

#endif
