/* resume.h -- where `run` resumes streaming on a (re)connect, and when it
 * must refuse to.
 *
 * The slot only ever confirms what hms-sync told it, so after a reconnect
 * its confirmed position is at or behind ours (behind after a PostgreSQL
 * crash rewound it to its last checkpoint: PostgreSQL resends, subscribers
 * see duplicates, never a gap).  A slot found *ahead* of us was moved by
 * someone else: that is safe only when hms_sync.slot_progress proves that
 * another hms-sync (a standby that took over while we were cut off)
 * confirmed past us, so what we still held is already published.  Anything
 * else (the slot recreated or advanced by hand, the slot gone, another
 * system or database behind the same address) would skip changes or mix
 * event sources, and is refused.
 *
 * A missing slot is the one refusal an operator may turn into a recovery
 * (on_slot_loss = resnapshot): after a failover to a standby, PostgreSQL
 * before 17 has no copy of the slot, and run creates it anew and re-sends
 * every row as a snapshot.  It still refuses when the server is another
 * system or database: its rows are not the stream's.
 *
 * Pure: no I/O.  The caller gathers the facts from the server. */
#ifndef HMS_CORE_RESUME_H
#define HMS_CORE_RESUME_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    HMS_RESUME_STREAM,   /* stream from *start */
    HMS_RESUME_CREATE,   /* first start and the slot never existed: create it, then decide again */
    HMS_RESUME_TAKEOVER, /* another hms-sync confirmed past us: drop what we hold */
    HMS_RESUME_RECREATE, /* the slot is lost and on_slot_loss = resnapshot: make it, snapshot */
    /* Refusals (hms_resume_refused): */
    HMS_RESUME_VANISHED,     /* the slot we streamed from is gone */
    HMS_RESUME_DROPPED,      /* missing at start although slot_progress remembers it */
    HMS_RESUME_OTHER_SOURCE, /* the server is another system or database */
    HMS_RESUME_SLOT_AHEAD,   /* the slot is past our position and nothing of ours moved it */
} hms_resume_verdict_t;

/* What the connector knows when its new session has looked at the slot. */
typedef struct {
    bool first;            /* no session yet: the slot's position becomes ours */
    bool may_create;       /* a missing slot may be created (first start only) */
    bool resnapshot;       /* on_slot_loss = resnapshot: a lost slot is recreated */
    uint64_t ours;         /* our confirmed position; unused when first */
    bool same_source;      /* same system and database as the first session; unused when first */
    bool slot_exists;      /* the slot is there */
    uint64_t slot_lsn;     /* its confirmed_flush_lsn (or where it was just created) */
    bool remembered;       /* hms_sync.slot_progress has a row for the slot */
    uint64_t progress_lsn; /* that row's confirmed_lsn; 0 without a row */
} hms_resume_facts_t;

/* Decides from f.  For STREAM and TAKEOVER, *request is the LSN to give
 * START_REPLICATION (0: the slot's own position) and *start is where the
 * stream will really begin (PostgreSQL starts a logical slot at the later of
 * the request and the slot's confirmed position): the tracker's new origin.
 * For the other verdicts both are set to 0 (RECREATE: the new slot's position
 * is known only once it exists).  Precedence follows the order of the checks:
 * a missing slot first, then the source, then the position. */
hms_resume_verdict_t hms_resume_decide(const hms_resume_facts_t *f, uint64_t *request,
                                       uint64_t *start);

/* True for the verdicts that must stop the connector. */
bool hms_resume_refused(hms_resume_verdict_t v);

#endif
