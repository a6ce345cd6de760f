/* repl.h -- the PostgreSQL side: a replication=database connection that
 * checks the server, ensures the slot, runs START_REPLICATION with pgoutput
 * and then reads CopyData and writes standby status without blocking.
 *
 * The connection is opened with DateStyle=ISO, TimeZone=UTC,
 * extra_float_digits=3 and IntervalStyle=iso_8601 so that the text form of
 * every value pgoutput sends is unambiguous for the encoder. */
#ifndef HMS_DAEMON_REPL_H
#define HMS_DAEMON_REPL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct {
    const char *conninfo;
    const char *slot;
    const char *publication;
    int connect_timeout_s;
    int slot_wait_ms; /* how long to wait for a slot held by another process */
    bool create_slot; /* create the slot when it is missing (first start only) */
    /* When set and non-zero, waiting for a busy slot gives up at once (a
     * signal handler sets it on SIGTERM). */
    const volatile sig_atomic_t *cancel;
} hms_repl_opts_t;

typedef struct hms_repl hms_repl_t;


/* Connects, identifies the system, checks wal_level, the publication and the
 * slot (creating it when missing and opts->create_slot; refusing a lost or
 * mismatched one; waiting up to slot_wait_ms while another process holds
 * it) and starts streaming from start_lsn (0: the slot's confirmed
 * position).  Returns HMS_ERR_FATAL for problems a retry cannot fix (the
 * message says how to fix them) and HMS_ERR_PG for the others. */
hms_status_t hms_repl_open(const hms_repl_opts_t *opts, uint64_t start_lsn, hms_repl_t **out,
                           hms_err_t *err);
void hms_repl_close(hms_repl_t *r);

/* The decimal system identifier and the database name. */
const char *hms_repl_sysid(const hms_repl_t *r);
const char *hms_repl_dbname(const hms_repl_t *r);
/* "host:port/db" of the server, without secrets. */
const char *hms_repl_target(const hms_repl_t *r);
/* Where streaming began. */
uint64_t hms_repl_start_lsn(const hms_repl_t *r);
/* The position hms_sync.slot_progress records for the slot (written by
 * whichever hms-sync last streamed from it), or 0 when unknown. */
uint64_t hms_repl_progress_lsn(const hms_repl_t *r);
int hms_repl_fd(const hms_repl_t *r);
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
