/* changes.h -- the walsender's CopyData turned into queued events, in
 * stream order: walproto tells XLogData from keepalives, the pgoutput
 * decoder reads the change, the encoder writes its event into the outbound
 * queue, and the LSN tracker numbers it and closes its transaction at the
 * commit.  No I/O besides the log.
 *
 * Ownership: the struct borrows the decoder, encoder, tracker and queue
 * from its caller, who creates and frees them. */
#ifndef HMS_DAEMON_CHANGES_H
#define HMS_DAEMON_CHANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/outq.h"
#include "core/pgoutput.h"
#include "core/status.h"
#include "core/tracker.h"

typedef struct {
    hms_pgo_decoder_t *dec;
    hms_encoder_t *enc; /* set before the first CopyData */
    hms_tracker_t *trk;
    hms_outq_t *q;         /* the caller hands over CopyData only while it has room */
    bool in_tx;            /* between a Begin and its Commit */
    hms_txctx_t tx;        /* that transaction */
    uint64_t received_lsn; /* the newest WAL end the walsender reported */
} hms_changes_t;

/* Takes one CopyData message (buf is only read during the call).  *reply is
 * set when it was a keepalive asking for a reply, and left alone otherwise.
 * HMS_ERR_FATAL when the stream cannot be decoded or a row cannot be
 * encoded (the message names it and says that the slot stays before it);
 * HMS_ERR_STATE when the queue was full. */
hms_status_t hms_changes_take(hms_changes_t *c, const uint8_t *buf, size_t len, bool *reply,
                              hms_err_t *err);

/* After the stream was lost: forgets the queue, the open transaction and
 * the decoder's relations, and puts the tracker back at flush, from where
 * PostgreSQL will send everything again. */
void hms_changes_restart(hms_changes_t *c, uint64_t flush);

#endif
