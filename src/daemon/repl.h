/* repl.h -- the PostgreSQL side: a replication=database connection that
 * checks the server, ensures the slot, runs START_REPLICATION with pgoutput
 * and then reads CopyData and writes standby status without blocking.
 *
 * The connection is opened with DateStyle=ISO, TimeZone=UTC,
 * extra_float_digits=3 and IntervalStyle=iso_8601 so that the text form of
 * every value pgoutput sends is unambiguous for the encoder. */
#ifndef HMS_DAEMON_REPL_H
#define HMS_DAEMON_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "core/resume.h"
#include "core/status.h"

typedef struct {
    const char *conninfo;
    const char *slot;
    const char *publication;
    int connect_timeout_s;
    int slot_wait_ms; /* how long the first start waits for a slot another process holds */
    bool create_slot; /* the first start may create the slot when it is missing */
    /* A slot the first start creates gets an initial snapshot request in
     * hms_sync.snapshots, written just before the slot. */
    bool initial_snapshot;
    /* on_slot_loss = resnapshot: a slot lost to a failover is created again,
     * after a fence and a snapshot request (core/resume.h). */
    bool resnapshot;
    /* The captured tables, whose replica identity the setup checks (NULL,
     * 0: none).  Borrowed like the strings. */
    const hms_capture_t *captures;
    size_t ncaptures;
} hms_repl_opts_t;

/* Where the connector stands when it opens a session: what the resume
 * decision (core/resume.h) weighs the slot against. */
typedef struct {
    bool first;         /* no session yet: the slot's position becomes ours */
    uint64_t confirmed; /* our confirmed position; unused when first */
    uint64_t decoded;   /* the end of the newest transaction we took from the stream (0: none) */
    const char *sysid;  /* the first session's system and database; unused when first */
    const char *dbname;
} hms_repl_want_t;

typedef struct hms_repl hms_repl_t;

/* Opening a session never blocks the caller's loop while the server is
 * unreachable: hms_repl_begin starts a connection attempt (common/pgconn.h's
 * policy), the loop polls hms_repl_attempt_fd with its other sockets and
 * calls hms_repl_attempt_poll when that is ready or its deadline has passed.
 * Once the server has answered the login, that call runs the setup to its
 * end: it identifies the system, checks wal_level, the publication, the
 * captured tables' replica identity (a first start refuses one that is not
 * FULL with HMS_ERR_CONFIG: a DELETE would carry only its key; later
 * sessions stream on and report it, see hms_repl_identity) and the
 * slot (creating it on a first start when it never existed; refusing a lost
 * or mismatched one), decides where to resume (core/resume.h) and runs
 * START_REPLICATION.  Those few queries do block, briefly: they go to a
 * server that has just answered.
 *
 * hms_repl_begin copies want; opts and its strings are borrowed until
 * hms_repl_close.  On HMS_OK *out is the caller's (hms_repl_close): an
 * attempt under way. */
hms_status_t hms_repl_begin(const hms_repl_opts_t *opts, const hms_repl_want_t *want,
                            int64_t now_ms, hms_repl_t **out, hms_err_t *err);
/* While the attempt connects: returns the socket to poll and sets *events
 * (POLLIN or POLLOUT) and *deadline_ms (the hms_clock_ms() at which
 * hms_repl_attempt_poll must be called even if the socket stays quiet: the
 * attempt then fails; 0: none).  -1, *events 0 and *deadline_ms 0 when r is
 * NULL or no longer connects. */
int hms_repl_attempt_fd(const hms_repl_t *r, short *events, int64_t *deadline_ms);
/* Advances the attempt, given what poll() reported for its socket (0:
 * nothing, or not polled).  Returns 0 while it connects, 1 once streaming (see
 * hms_repl_verdict), or a negative status when it failed, after which r is
 * only fit for hms_repl_close: HMS_ERR_FATAL for what a retry cannot fix
 * (the message says how to fix it), HMS_ERR_CONFIG for a table that lacks
 * REPLICA IDENTITY FULL on a first start (likewise), HMS_ERR_RETRY when another process holds
 * the slot, HMS_ERR_PG (or another) for the rest. */
int hms_repl_attempt_poll(hms_repl_t *r, short revents, int64_t now_ms, hms_err_t *err);
/* Closes a session or abandons an attempt; r may be NULL. */
void hms_repl_close(hms_repl_t *r);

/* The decimal system identifier and the database name. */
const char *hms_repl_sysid(const hms_repl_t *r);
const char *hms_repl_dbname(const hms_repl_t *r);
/* "host:port/db" of the server, without secrets. */
const char *hms_repl_target(const hms_repl_t *r);
/* Where streaming began, and how the session resumed (STREAM or TAKEOVER). */
uint64_t hms_repl_start_lsn(const hms_repl_t *r);
hms_resume_verdict_t hms_repl_verdict(const hms_repl_t *r);
int hms_repl_fd(const hms_repl_t *r);
/* The captured table the setup looked at ("schema.table": the first whose
 * replica identity is not FULL, else the first found; "" when none exists)
 * and its pg_class.relreplident ('f' is FULL; 0 when none exists). */
const char *hms_repl_identity_table(const hms_repl_t *r);
char hms_repl_identity(const hms_repl_t *r);
/* The walsender's wal_sender_timeout in milliseconds (0: disabled or unknown). */
int hms_repl_sender_timeout_ms(const hms_repl_t *r);

/* Reads one CopyData message without blocking.  Returns 1 and sets *buf and *len
 * (valid until the next call), 0 when nothing is available (wait for the
 * socket), or a negative status when the stream ended or failed. */
int hms_repl_read(hms_repl_t *r, const uint8_t **buf, size_t *len, hms_err_t *err);
/* Reads what the socket has into libpq's buffer; call when it is readable. */
hms_status_t hms_repl_consume(hms_repl_t *r, hms_err_t *err);

/* Queues a standby status update and tries to send it.  HMS_ERR_FULL when
 * libpq cannot take it now (retry later). */
hms_status_t hms_repl_send_status(hms_repl_t *r, uint64_t write_lsn, uint64_t flush_lsn,
                                  bool reply_requested, hms_err_t *err);
/* Flushes queued output: 0 done, 1 more to send (wait for POLLOUT), <0 on
 * error. */
int hms_repl_flush(hms_repl_t *r);
/* Ends the stream politely (CopyDone) with a bounded wait; for shutdown. */
void hms_repl_finish(hms_repl_t *r);

#endif
