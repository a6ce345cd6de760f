/* loop.c -- the event loop of `hms-sync run`. */
#include "daemon/loop.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/signals.h"
#include "core/backoff.h"
#include "core/event.h"
#include "core/feedback.h"
#include "core/lsn.h"
#include "core/metrics.h"
#include "core/outq.h"
#include "core/pgoutput.h"
#include "core/tracker.h"
#include "daemon/changes.h"
#include "daemon/loop_int.h"
#include "daemon/gate.h"
#include "daemon/http.h"
#include "daemon/runview.h"
#include "daemon/notify.h"
#include "daemon/progress.h"
#include "daemon/snapshot.h"

/* rabbitmq-c services heartbeats only when called: never sleep longer. */
#define MAX_POLL_MS 1000

static void set_fatal_status(loop_t *L, hms_status_t st, const hms_err_t *err)
{
    if (!L->fatal) {
        L->fatal = true;
        L->fatal_st = st;
        L->fatal_err = *err;
    }
}

static void set_fatal(loop_t *L, const hms_err_t *err)
{
    set_fatal_status(L, HMS_ERR_FATAL, err);
}

/* ---- broker callbacks ---------------------------------------------------- */

static void on_ack(void *ctx, uint64_t tag, bool multiple)
{
    loop_t *L = ctx;
    size_t n = hms_outq_ack(L->q, tag, multiple, L->confirmed, L->confirmed_cap);
    for (size_t i = 0; i < n; i++)
        hms_tracker_confirm(L->trk, L->confirmed[i]);
    L->n_confirmed += n;
    L->m.confirms += n;
    if (n > 0)
        L->probing = false;
    if (n > 0 && !hms_outq_refused(L->q))
        L->republish_backoff = 0;
}

/* How many events may await the broker's verdict.  After a (re)connect and
 * before each republish round only one: while a quorum queue elects a new
 * leader RabbitMQ refuses what it cannot place and accepts what comes after
 * the election, so a full window would land its later events in the queue
 * ahead of the earlier ones that are republished.  One accepted event shows
 * the queues place events again. */
static size_t in_flight_limit(const loop_t *L)
{
    return L->probing ? 1 : (size_t)L->opts->window;
}

/* A refusal is logged loudly once per republish round, with the first
 * event's details; the rest of the round is counted and summarised when the
 * round is republished, so a queue at its limit cannot flood the log. */
static void on_nack(void *ctx, uint64_t tag, bool multiple)
{
    loop_t *L = ctx;
    char t[24];
    hms_outq_nack(L->q, tag, multiple);
    L->n_nacked++;
    L->m.nacks++;
    if (L->refusals_in_round++ == 0)
        hms_log(HMS_LOG_WARN,
                "RabbitMQ refused an event (basic.nack, e.g. a queue at its length limit); the "
                "slot will not move past it and it will be republished",
                "delivery_tag", hms_loop_u64s(tag, t, sizeof(t)), "multiple",
                multiple ? "true" : "false", NULL);
}

static void on_return(void *ctx, const char *message_id, int code, const char *text)
{
    loop_t *L = ctx;
    char c[16], queue[256];
    snprintf(c, sizeof(c), "%d", code);
    if (hms_outq_returned_to_queue(L->q, message_id, queue, sizeof(queue))) {
        hms_log(HMS_LOG_WARN, "a snapshot's queue no longer exists: the snapshot fails", "id",
                message_id, "queue", queue, "reply_text", text, NULL);
        if (L->snap != NULL)
            hms_snapshot_queue_gone(L->snap, queue);
        return;
    }
    hms_outq_returned(L->q, message_id);
    L->n_returned++;
    L->m.returns++;
    if (L->refusals_in_round++ == 0)
        hms_log(HMS_LOG_WARN,
                "RabbitMQ could not route an event (basic.return): no queue is bound for its "
                "routing key; the slot will not move past it and it will be republished until "
                "one is",
                "id", message_id, "reply_code", c, "reply_text", text, NULL);
}

static void on_blocked(void *ctx, bool blocked, const char *reason)
{
    if (blocked)
        hms_log(HMS_LOG_WARN, "RabbitMQ blocked publishing (resource alarm); waiting", "reason",
                reason, NULL);
    else
        hms_log(HMS_LOG_INFO, "RabbitMQ unblocked publishing", NULL);
}

static const hms_pub_handlers_t handlers = {on_ack, on_nack, on_return, on_blocked};

/* ---- connections --------------------------------------------------------- */

/* The next try after a failure, *backoff growing as it does. */
static int64_t retry_at(const loop_t *L, int *backoff)
{
    *backoff = hms_backoff_next(*backoff, L->opts->retry_min_ms, L->opts->retry_max_ms);
    return hms_clock_ms() + *backoff;
}

static void amqp_lost(loop_t *L, const hms_err_t *err)
{
    char n[24];
    hms_log(HMS_LOG_ERROR, "lost the RabbitMQ connection; unconfirmed events will be republished",
            "error", err->msg, "unconfirmed",
            hms_loop_u64s(hms_outq_outstanding(L->q), n, sizeof(n)), NULL);
    /* Another node of the cluster may serve at once while this one is
     * down; it comes round again after the others. */
    L->amqp_next_node = hms_pub_node(L->pub) + 1;
    hms_pub_close(L->pub);
    L->pub = NULL;
    hms_notify_status("RabbitMQ connection lost; reconnecting");
    hms_outq_rewind(L->q);
    L->amqp_retry_at = retry_at(L, &L->amqp_backoff);
}

static void pg_lost(loop_t *L, const hms_err_t *err)
{
    char lsn[HMS_LSN_STR_MAX];
    uint64_t flush = hms_tracker_flush_lsn(L->trk);
    hms_lsn_format(flush, lsn);
    hms_log(HMS_LOG_ERROR,
            "lost the PostgreSQL replication connection; will resume from the confirmed position",
            "error", err->msg, "lsn", lsn, NULL);
    hms_repl_close(L->repl);
    L->repl = NULL;
    hms_notify_status("PostgreSQL replication connection lost; reconnecting");
    /* PostgreSQL resends everything after the confirmed position, so what
     * is queued here would only become duplicates. */
    hms_changes_restart(&L->ch, flush);
    L->pg_retry_at = retry_at(L, &L->pg_backoff);
}

static hms_status_t connect_amqp(loop_t *L, hms_err_t *err)
{
    hms_status_t st = hms_pub_connect(&L->opts->pub, L->amqp_next_node, &L->pub, err);
    if (st != HMS_OK) {
        /* A node that lets us in but fails later (a declare) must not be
         * the first one tried every time. */
        L->amqp_next_node++;
        return st;
    }
    hms_log(HMS_LOG_INFO, "connected to RabbitMQ", "target", hms_pub_target(L->pub), "exchange",
            L->opts->pub.exchange, NULL);
    L->amqp_backoff = 0;
    L->probing = true;
    return HMS_OK;
}

/* A session is streaming: on the first, the slot's system, database and
 * position become the stream's. */
static void pg_streaming(loop_t *L)
{
    const hms_repl_opts_t *ro = &L->opts->repl;
    char lsn[HMS_LSN_STR_MAX], status[200];
    int64_t now = hms_clock_ms();
    hms_lsn_format(hms_repl_start_lsn(L->repl), lsn);
    if (L->pg_first_pending) {
        snprintf(L->sysid, sizeof(L->sysid), "%s", hms_repl_sysid(L->repl));
        snprintf(L->dbname, sizeof(L->dbname), "%s", hms_repl_dbname(L->repl));
        hms_tracker_reset(L->trk, hms_repl_start_lsn(L->repl));
        L->enc = L->ch.enc = hms_encoder_new(L->sysid, L->dbname, &hms_capture_incidents, 1);
        snprintf(L->ch.source, sizeof(L->ch.source), "/hms-ehr/%s/%s", L->sysid, L->dbname);
        if (L->enc == NULL || hms_gate_attach(L->gate, L->enc, L->sysid, L->dbname) != HMS_OK) {
            hms_err_t err;
            hms_err_set(&err, HMS_ERR_FATAL, "out of memory");
            set_fatal(L, &err);
            return;
        }
    } else if (hms_repl_verdict(L->repl) == HMS_RESUME_TAKEOVER) {
        /* Another hms-sync (a standby that took over while we were cut
         * off) streamed and confirmed past us: what we held is published. */
        hms_log(HMS_LOG_WARN,
                "another hms-sync advanced the slot while we were away (standby takeover); "
                "continuing from the slot's position",
                "slot", ro->slot, "lsn", lsn, NULL);
        hms_outq_clear(L->q);
        hms_tracker_reset(L->trk, hms_repl_start_lsn(L->repl));
    } else if (hms_repl_verdict(L->repl) == HMS_RESUME_RECREATE) {
        /* A new slot past everything we held (repl.c's fence): the events
         * still in flight are published as they stand, but their confirms
         * no longer decide what the new slot may forget. */
        hms_tracker_reset(L->trk, hms_repl_start_lsn(L->repl));
    }
    if (hms_repl_verdict(L->repl) == HMS_RESUME_RECREATE)
        L->m.slot_recreations++;
    hms_changes_note_identity(&L->ch, hms_repl_identity_table(L->repl), hms_repl_identity(L->repl));
    hms_log(HMS_LOG_INFO, "streaming from replication slot", "target", hms_repl_target(L->repl),
            "slot", ro->slot, "publication", ro->publication, "lsn", lsn, NULL);
    L->pg_backoff = 0;
    hms_feedback_start(&L->fb, L->opts->feedback_interval_ms, hms_repl_sender_timeout_ms(L->repl),
                       now);
    if (!L->pg_first_pending) {
        L->m.reconnects_pg++;
        hms_notify_status("streaming");
    } else if (L->opts->standby && L->pg_waiting) {
        hms_log(HMS_LOG_INFO, "standby took over the replication slot", "slot", ro->slot, NULL);
        hms_notify_status("streaming");
    } else {
        snprintf(status, sizeof(status), "streaming from slot %s to exchange %s", ro->slot,
                 L->opts->pub.exchange);
        hms_loop_update_metrics(L, now);
        hms_notify_ready(status);
    }
    L->pg_first_pending = L->pg_waiting = false;
}

/* An attempt failed.  Failing to start is an error, except that a slot held
 * by another process (often a walsender of ours still dying after a kill
 * -9) is waited for up to slot_wait, and a standby waits for it as long as
 * it takes, polling once a second; later losses are retried with backoff.
 * Nothing here sleeps: the loop keeps serving the broker meanwhile. */
static void pg_failed(loop_t *L, hms_status_t st, hms_err_t *err)
{
    const hms_run_opts_t *o = L->opts;
    int64_t now = hms_clock_ms();
    if (st == HMS_ERR_FATAL || st == HMS_ERR_CONFIG) {
        set_fatal_status(L, st, err);
    } else if (!L->pg_first_pending) {
        L->pg_retry_at = retry_at(L, &L->pg_backoff);
        hms_log(HMS_LOG_WARN, "cannot resume streaming from PostgreSQL yet; retrying", "error",
                err->msg, NULL);
    } else if (o->standby || (st == HMS_ERR_RETRY && now < L->slot_wait_until)) {
        if (!L->pg_waiting && o->standby) {
            hms_log(HMS_LOG_INFO, "standby: waiting to take over the replication slot", "slot",
                    o->repl.slot, "reason", err->msg, NULL);
            hms_notify_ready("standby: waiting for the replication slot");
        } else if (!L->pg_waiting) {
            char wait[16];
            snprintf(wait, sizeof(wait), "%d", o->repl.slot_wait_ms);
            hms_log(HMS_LOG_WARN, "replication slot is in use by another process; waiting", "slot",
                    o->repl.slot, "reason", err->msg, "max_wait_ms", wait, NULL);
        }
        L->pg_waiting = true;
        L->pg_retry_at = now + 1000;
    } else {
        if (st == HMS_ERR_RETRY) {
            char why[sizeof(err->msg)];
            snprintf(why, sizeof(why), "%s", err->msg);
            hms_err_set(err, HMS_ERR_PG,
                        "%s and stayed busy for %d ms; stop the other consumer or raise slot_wait",
                        why, o->repl.slot_wait_ms);
        }
        set_fatal(L, err);
    }
}

/* Starts opening a session when one is due. */
static void pg_begin(loop_t *L, int64_t now)
{
    hms_err_t err;
    if (L->repl != NULL || L->pg_attempt != NULL || L->stopping || now < L->pg_retry_at)
        return;
    hms_repl_want_t want = {.first = L->pg_first_pending,
                            .confirmed = hms_tracker_flush_lsn(L->trk),
                            .decoded = hms_tracker_newest_end(L->trk),
                            .sysid = L->sysid,
                            .dbname = L->dbname};
    hms_status_t st = hms_repl_begin(&L->opts->repl, &want, now, &L->pg_attempt, &err);
    if (st != HMS_OK)
        pg_failed(L, st, &err);
}

/* Advances the session being opened; revents: what poll() said of it. */
static void pg_advance(loop_t *L, short revents, int64_t now)
{
    hms_err_t err;
    if (L->pg_attempt == NULL)
        return;
    int rc = L->stopping ? HMS_ERR_STATE : hms_repl_attempt_poll(L->pg_attempt, revents, now, &err);
    if (rc > 0) {
        L->repl = L->pg_attempt;
        L->pg_attempt = NULL;
        pg_streaming(L);
    } else if (rc < 0) {
        hms_repl_close(L->pg_attempt);
        L->pg_attempt = NULL;
        if (!L->stopping) /* abandoned when stopping */
            pg_failed(L, (hms_status_t)rc, &err);
    }
}

/* Reads what PostgreSQL has sent while the queue has room.
 *
 * Why libpq's buffer is drained before the socket is read: PQconsumeInput
 * pulls everything the kernel holds into libpq's buffer, which doubles
 * whenever it is called with unread messages still in it (and is memmoved
 * on every read).  When the broker is slower than PostgreSQL that buffer
 * would end up holding the backlog.  Reading the socket only when no
 * complete message is buffered and the queue has room keeps the backlog in
 * the kernel and in PostgreSQL, where TCP flow control makes the walsender
 * wait: memory stays flat in the size of the backlog.  hangup is poll()'s
 * POLLERR/POLLHUP, reported even when POLLIN was not asked for. */
static void read_pg(loop_t *L, bool readable, bool hangup)
{
    hms_err_t err;
    bool consumed = false;
    /* Snapshot rows due at a watermark go before anything after it. */
    if (L->repl != NULL && !L->stopping && hms_changes_pump(&L->ch, &err) != HMS_OK) {
        set_fatal(L, &err);
        return;
    }
    while (L->repl != NULL && !L->stopping && hms_changes_can_take(&L->ch)) {
        const uint8_t *buf;
        size_t len;
        int rc = hms_repl_read(L->repl, &buf, &len, &err);
        if (rc == 0) {
            if (!readable || consumed)
                return;
            if (hms_repl_consume(L->repl, &err) != HMS_OK) {
                pg_lost(L, &err);
                return;
            }
            consumed = true;
            continue;
        }
        if (rc < 0) {
            pg_lost(L, &err);
            return;
        }
        hms_feedback_heard(&L->fb, hms_clock_ms());
        bool reply = false;
        hms_status_t st = hms_changes_take(&L->ch, buf, len, &reply, &err);
        if (reply)
            hms_feedback_reply_asked(&L->fb);
        if (st == HMS_ERR_FATAL) {
            set_fatal(L, &err);
            return;
        }
        if (st != HMS_OK) {
            pg_lost(L, &err);
            return;
        }
    }
    /* A closed or failed socket must be noticed even while the queue is
     * full and nothing is being read; a merely readable one waits, or
     * libpq's buffer would take in the backlog. */
    if (hangup && !consumed && L->repl != NULL && hms_repl_consume(L->repl, &err) != HMS_OK)
        pg_lost(L, &err);
}

/* ---- publishing and feedback --------------------------------------------- */

/* The type label an event counts under.  The metrics keep the label
 * pointer, so it must be a string that outlives the event, and the label
 * set must stay bounded: an application's emitted types are neither (the
 * type lives in the event's slot, and there may be any number of them), so
 * they all count as "emitted". */
static const char *metric_type(const hms_event_t *ev)
{
    return ev->emitted ? "emitted" : ev->type;
}

static void publish(loop_t *L)
{
    hms_outq_slot_t *s;
    hms_err_t err;
    if (L->stopping)
        return;
    if (L->opts->discard) {
        while ((s = hms_outq_next(L->q)) != NULL) {
            hms_metrics_count_published(&L->m, metric_type(&s->ev));
            hms_outq_sent(L->q, ++L->discard_tag);
            on_ack(L, L->discard_tag, false);
            L->n_published++;
        }
        return;
    }
    if (L->pub == NULL)
        return;
    while ((s = hms_outq_next(L->q)) != NULL && hms_outq_outstanding(L->q) < in_flight_limit(L) &&
           hms_pub_writable(L->pub, s->ev.body.len + s->ev.routing_key.len)) {
        uint64_t tag;
        if (hms_pub_publish(L->pub, &s->ev, &tag, &err) != HMS_OK) {
            amqp_lost(L, &err);
            return;
        }
        hms_outq_sent(L->q, tag);
        L->n_published++;
        hms_metrics_count_published(&L->m, metric_type(&s->ev));
    }
    if (hms_pub_flush(L->pub, &err) != HMS_OK)
        amqp_lost(L, &err);
}

static void maybe_republish(loop_t *L, int64_t now)
{
    if (!hms_outq_rewind_ready(L->q))
        return;
    if (L->republish_at == 0) {
        L->republish_backoff =
            hms_backoff_next(L->republish_backoff, L->opts->retry_min_ms, L->opts->retry_max_ms);
        L->republish_at = now + L->republish_backoff;
        char ms[16], n[24];
        snprintf(ms, sizeof(ms), "%d", L->republish_backoff);
        hms_log(HMS_LOG_WARN, "events were refused by RabbitMQ; republishing after a backoff",
                "refused", hms_loop_u64s(L->refusals_in_round, n, sizeof(n)), "backoff_ms", ms,
                NULL);
        L->refusals_in_round = 0;
        return;
    }
    if (now >= L->republish_at) {
        L->republish_at = 0;
        /* Every round goes out on a fresh channel: after a quorum queue's
         * leader election, RabbitMQ 3.10 can nack everything a channel
         * publishes for as long as it lives (publisher.h). */
        hms_err_t err;
        if (L->pub != NULL && hms_pub_reopen_channel(L->pub, &err) != HMS_OK) {
            amqp_lost(L, &err);
            return;
        }
        if (L->pub != NULL)
            L->m.channel_reopens++;
        L->probing = true;
        hms_outq_rewind(L->q);
    }
}

/* The timing rules are core/feedback.h's. */
static void send_feedback(loop_t *L, int64_t now)
{
    if (L->repl == NULL)
        return;
    uint64_t flush = hms_tracker_flush_lsn(L->trk);
    if (!hms_feedback_due(&L->fb, flush, now))
        return;
    hms_err_t err;
    uint64_t write = hms_feedback_write_lsn(L->ch.received_lsn, flush);
    bool ask = hms_feedback_ask(&L->fb, now);
    hms_status_t st = hms_repl_send_status(L->repl, write, flush, ask, &err);
    if (st == HMS_ERR_FULL)
        return;
    if (st != HMS_OK) {
        pg_lost(L, &err);
        return;
    }
    if (flush > L->fb.sent_flush && hms_log_enabled(HMS_LOG_DEBUG)) {
        char lsn[HMS_LSN_STR_MAX];
        hms_lsn_format(flush, lsn);
        hms_log(HMS_LOG_DEBUG, "confirmed to the slot", "lsn", lsn, NULL);
    }
    hms_feedback_sent(&L->fb, flush, now);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    L->m.last_feedback_unix = (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* ---- the loop ------------------------------------------------------------ */

/* wake: another deadline (a connection attempt's; 0: none). */
static int poll_timeout(loop_t *L, int64_t now, int64_t wake)
{
    int64_t t = now + MAX_POLL_MS;
    if (wake != 0 && wake < t)
        t = wake;
    if (L->repl != NULL) {
        int64_t due = hms_feedback_next_ms(&L->fb, hms_tracker_flush_lsn(L->trk));
        if (due < t)
            t = due;
    } else if (L->pg_attempt == NULL && L->pg_retry_at < t) {
        t = L->pg_retry_at;
    }
    if (L->pub == NULL && !L->opts->discard && L->amqp_retry_at < t)
        t = L->amqp_retry_at;
    if (L->republish_at != 0 && L->republish_at < t)
        t = L->republish_at;
    if (L->stopping && L->stop_deadline < t)
        t = L->stop_deadline;
    int64_t wd = hms_notify_watchdog_due(now);
    if (wd >= 0 && now + wd < t)
        t = now + wd;
    if (L->pub != NULL && hms_pub_pending_input(L->pub))
        t = now;
    return t <= now ? 0 : (int)(t - now);
}

static void reconnect(loop_t *L, int64_t now)
{
    hms_err_t err;
    if (L->pub == NULL && !L->opts->discard && now >= L->amqp_retry_at && !L->stopping) {
        if (connect_amqp(L, &err) == HMS_OK) {
            L->m.reconnects_amqp++;
            hms_notify_status("streaming");
        } else {
            L->amqp_retry_at = retry_at(L, &L->amqp_backoff);
            hms_log(HMS_LOG_WARN, "RabbitMQ still unreachable; retrying", "error", err.msg, NULL);
        }
    }
    pg_begin(L, now);
}

/* A network stall (a dropped route, a hung proxy) leaves the socket open
 * and silent; TCP keepalives cannot see it behind a proxy.  Only the
 * walsender's own messages prove the link is alive. */
static void check_pg_silence(loop_t *L, int64_t now)
{
    if (L->repl == NULL || L->opts->replication_timeout_ms <= 0)
        return;
    if (L->stopping || !hms_changes_can_take(&L->ch)) {
        hms_feedback_heard(&L->fb, now); /* not listening: silence proves nothing */
        return;
    }
    if (now - L->fb.last_recv_ms < L->opts->replication_timeout_ms)
        return;
    hms_err_t err;
    hms_err_set(&err, HMS_ERR_PG,
                "pg: nothing received from %s for %d ms (replication_timeout); taking the "
                "connection for dead",
                hms_repl_target(L->repl), L->opts->replication_timeout_ms);
    pg_lost(L, &err);
}

/* Adds fd to the poll set; returns its index (-1 for no fd). */
static int watch(struct pollfd *fds, int *nfds, int fd, short events)
{
    if (fd < 0)
        return -1;
    fds[*nfds] = (struct pollfd){fd, events, 0};
    return (*nfds)++;
}

static short revents_of(const struct pollfd *fds, int i, int rc)
{
    return i >= 0 && rc > 0 ? fds[i].revents : 0;
}

/* One turn: a poll over the replication socket, the AMQP socket and, while
 * they connect or write, the replication attempt's and the progress
 * connection's, bounded by every timer. */
static void loop_once(loop_t *L)
{
    struct pollfd fds[5];
    int nfds = 0, pg_i = -1, att_i, prog_i, snap_i;
    int64_t now = hms_clock_ms(), wake = 0, prog_wake, snap_wake;
    short att_ev, prog_ev, snap_ev;

    if (L->repl != NULL) {
        short ev = 0;
        if (!L->stopping && hms_changes_can_take(&L->ch))
            ev |= POLLIN;
        if (hms_repl_flush(L->repl) == 1)
            ev |= POLLOUT;
        pg_i = watch(fds, &nfds, hms_repl_fd(L->repl), ev);
    }
    int att_fd = hms_repl_attempt_fd(L->pg_attempt, &att_ev, &wake);
    att_i = watch(fds, &nfds, att_fd, att_ev);
    int prog_fd = hms_progress_fd(L->progress, &prog_ev, &prog_wake);
    prog_i = watch(fds, &nfds, prog_fd, prog_ev);
    if (prog_i >= 0 && prog_wake != 0 && (wake == 0 || prog_wake < wake))
        wake = prog_wake;
    int snap_fd = hms_snapshot_fd(L->snap, &snap_ev, &snap_wake);
    snap_i = watch(fds, &nfds, snap_fd, snap_ev);
    if (snap_wake != 0 && (wake == 0 || snap_wake < wake))
        wake = snap_wake;
    if (L->pub != NULL) {
        short ev = POLLIN;
        hms_outq_slot_t *s = hms_outq_next(L->q);
        if (s != NULL && hms_outq_outstanding(L->q) < in_flight_limit(L) &&
            !hms_pub_blocked(L->pub) && !hms_pub_writable(L->pub, s->ev.body.len))
            ev |= POLLOUT;
        watch(fds, &nfds, hms_pub_fd(L->pub), ev);
    }
    int rc = poll(fds, (nfds_t)nfds, poll_timeout(L, now, wake));
    if (rc < 0 && errno != EINTR) {
        hms_err_t err;
        hms_err_set(&err, HMS_ERR_IO, "poll failed: %s", strerror(errno));
        set_fatal(L, &err);
        return;
    }
    now = hms_clock_ms();
    hms_err_t err;
    /* Broker first: acks free room in the queue and may move the slot. */
    if (L->pub != NULL) {
        hms_status_t pst = hms_pub_poll(L->pub, &handlers, L, &err);
        if (pst == HMS_ERR_FATAL) {
            set_fatal(L, &err);
            return;
        }
        if (pst != HMS_OK)
            amqp_lost(L, &err);
    }
    if (L->repl != NULL) {
        /* Buffered messages are read even when the socket is quiet. */
        short rev = revents_of(fds, pg_i, rc);
        read_pg(L, (rev & (POLLIN | POLLERR | POLLHUP)) != 0, (rev & (POLLERR | POLLHUP)) != 0);
    }
    pg_advance(L, revents_of(fds, att_i, rc), now);
    if (L->fatal)
        return;
    maybe_republish(L, now);
    publish(L);
    hms_outq_pop_confirmed(L->q);
    send_feedback(L, now);
    check_pg_silence(L, now);
    reconnect(L, now);
    hms_loop_update_metrics(L, now);
    hms_progress_tick(L->progress, revents_of(fds, prog_i, rc), hms_tracker_flush_lsn(L->trk),
                      hms_tracker_flushed_commit_time(L->trk), now);
    /* Snapshots only while streaming: a chunk's watermark must be seen. */
    if (L->repl != NULL && !L->stopping)
        hms_snapshot_tick(L->snap, revents_of(fds, snap_i, rc), hms_tracker_flush_lsn(L->trk), now);
    hms_loop_log_stats(L, now);
}

/* SIGHUP: the reload (files, the log) runs here, between two turns of the
 * loop, where nothing else is half done. */
static void reload_if_asked(loop_t *L)
{
    if (hms_signals_take_reload() && L->opts->reload != NULL)
        L->opts->reload(L->opts->reload_arg);
}

/* SIGTERM: stop reading, wait (bounded) for the broker to settle what is
 * outstanding, confirm the slot as far as it may go, and leave. */
static void shutdown_stream(loop_t *L)
{
    char lsn[HMS_LSN_STR_MAX], n[24];
    hms_outq_pop_confirmed(L->q);
    uint64_t flush = hms_tracker_flush_lsn(L->trk);
    if (L->repl != NULL) {
        hms_err_t err;
        uint64_t write = hms_feedback_write_lsn(L->ch.received_lsn, flush);
        if (hms_repl_send_status(L->repl, write, flush, false, &err) == HMS_OK)
            hms_repl_finish(L->repl);
    }
    hms_progress_final(L->progress, flush, hms_tracker_flushed_commit_time(L->trk), hms_clock_ms());
    hms_lsn_format(flush, lsn);
    hms_log(HMS_LOG_INFO, "stopped", "lsn", lsn, "unconfirmed",
            hms_loop_u64s(hms_outq_outstanding(L->q), n, sizeof(n)), NULL);
}

static void loop_free(loop_t *L)
{
    /* The listener first: its thread renders snapshots that borrow strings
     * (event type names) from the encoder freed below. */
    hms_http_stop(L->http);
    L->http = NULL;
    hms_repl_close(L->repl);
    hms_repl_close(L->pg_attempt);
    hms_pub_close(L->pub);
    hms_changes_free(&L->ch);
    hms_gate_free(L->gate);
    hms_snapshot_free(L->snap);
    hms_pgo_decoder_free(L->dec);
    hms_encoder_free(L->enc);
    hms_tracker_free(L->trk);
    hms_outq_free(L->q);
    hms_progress_free(L->progress);
    free(L->confirmed);
}

hms_status_t hms_run(const hms_run_opts_t *opts, hms_err_t *err)
{
    loop_t L;
    memset(&L, 0, sizeof(L));
    L.opts = opts;
    hms_status_t st = HMS_OK;
    /* The queue holds a window in flight plus as much again being decoded
     * ahead, so publishing never waits for the decoder. */
    L.confirmed_cap = (size_t)opts->window * 2;
    L.q = hms_outq_new(L.confirmed_cap);
    L.confirmed = calloc(L.confirmed_cap, sizeof(*L.confirmed));
    L.dec = hms_pgo_decoder_new();
    L.trk = hms_tracker_new(0);
    L.progress =
        hms_progress_new(opts->repl.conninfo, opts->repl.slot, opts->repl.connect_timeout_s);
    hms_snapshot_opts_t so = {.conninfo = opts->repl.conninfo,
                              .slot = opts->repl.slot,
                              .cap = opts->repl.captures,
                              .chunk_rows = opts->snapshot_chunk,
                              .connect_timeout_s = opts->repl.connect_timeout_s,
                              .retry_min_ms = opts->retry_min_ms,
                              .retry_max_ms = opts->retry_max_ms};
    L.snap = hms_snapshot_new(&so);
    L.ch = (hms_changes_t){.dec = L.dec, .trk = L.trk, .q = L.q, .snap = L.snap};
    if (L.q == NULL || L.confirmed == NULL || L.dec == NULL || L.trk == NULL ||
        L.progress == NULL || L.snap == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((L.gate = L.ch.gate = hms_gate_new(opts->max_event_bytes, err)) == NULL) {
        st = HMS_ERR_FATAL;
        goto done;
    }
    if (opts->schemas != NULL && (st = hms_gate_load_types(L.gate, opts->schemas, err)) != HMS_OK)
        goto done;
    hms_signals_install(NULL);
    hms_notify_init();
    if (opts->metrics != NULL &&
        (st = hms_http_start(opts->metrics, &hms_run_view, &L.http, err)) != HMS_OK)
        goto done;
    if (!opts->discard && (st = connect_amqp(&L, err)) != HMS_OK)
        goto done;
    /* The loop opens the replication session (pg_begin): readiness and the
     * standby's wait are decided there. */
    L.pg_first_pending = true;
    L.slot_wait_until = hms_clock_ms() + opts->repl.slot_wait_ms;
    L.last_stats_ms = hms_clock_ms();
    for (;;) {
        if (hms_signals_stop() != 0 && !L.stopping) {
            L.stopping = true;
            L.stop_deadline = hms_clock_ms() + opts->shutdown_timeout_ms;
            hms_notify_stopping();
            hms_log(HMS_LOG_INFO, "stopping: waiting for outstanding confirms", "signal",
                    hms_signals_stop_name(), NULL);
        }
        if (L.stopping &&
            (hms_outq_outstanding(L.q) == 0 || L.pub == NULL || hms_clock_ms() >= L.stop_deadline))
            break;
        reload_if_asked(&L);
        loop_once(&L);
        if (L.fatal) {
            *err = L.fatal_err;
            st = L.fatal_st;
            goto done;
        }
    }
    shutdown_stream(&L);
done:
    loop_free(&L);
    return st;
}
