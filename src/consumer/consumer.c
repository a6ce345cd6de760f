/* consumer.c -- `hms-sync consume`: the per-message pipeline (validate,
 * skip echoes, record and apply, ack after commit), its retry loop, and the
 * one wait everything goes through, so that RabbitMQ is served while
 * PostgreSQL is slow, stalled or gone. */
#include "hms_consumer.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/signals.h"
#include "consumer/apply.h"
#include "consumer/broker.h"
#include "common/validate.h"
#include "core/backoff.h"

#define POLL_MS 500              /* longest wait for a delivery before checking for a signal */
#define SLICE_MS 200             /* longest single wait: signals, deadlines and heartbeats */
#define CONFIRM_TIMEOUT_MS 10000 /* a dead letter's confirm */

typedef struct {
    const hms_consumer_opts_t *o;
    hms_cval_t *val;
    hms_cbroker_t *broker;
    bool mq_lost;             /* the consuming connection failed during a wait, as mq_err says */
    hms_err_t mq_err;         /* */
    hms_capply_t *pg;         /* always there; its session comes and goes */
    int64_t pg_not_before_ms; /* the next open waits until then (backoff) */
    hms_consumer_counters_t n;
    hms_consumer_counters_t logged; /* as of the last stats line */
    int64_t last_stats_ms;
    int amqp_backoff, pg_backoff;
    char *text; /* the message in hand, NUL-terminated */
    size_t text_cap;
} cons_t;

/* What became of one message. */
typedef enum {
    DONE,    /* acked, or left unacked because we are stopping */
    LOST_MQ, /* the consuming connection is gone: reconnect */
} handled_t;

/* Runs the reload hook for a SIGHUP that came since the last look. */
static void take_reload(cons_t *C)
{
    if (!hms_signals_take_reload())
        return;
    if (C->o->reload == NULL) {
        hms_log(HMS_LOG_INFO, "SIGHUP: nothing to reload", NULL);
        return;
    }
    hms_log(HMS_LOG_INFO, "SIGHUP: reloading", NULL);
    C->o->reload(C->o->reload_arg);
}

/* The one wait: up to timeout_ms (at most a slice) for fd (-1: none) to be
 * ready for events, reading the consuming connection meanwhile when there
 * is one.  Returns whether fd is ready.  A consuming connection that fails
 * here sets mq_lost; the message in hand then ends as LOST_MQ. */
static bool serve(cons_t *C, int fd, short events, int timeout_ms)
{
    take_reload(C);
    if (timeout_ms < 0 || timeout_ms > SLICE_MS)
        timeout_ms = SLICE_MS;
    if (C->broker != NULL && !C->mq_lost) {
        bool ready = false;
        if (hms_cbroker_wait(C->broker, fd, events, timeout_ms, &ready, &C->mq_err) != HMS_OK)
            C->mq_lost = true;
        return ready;
    }
    struct pollfd p = {fd, events, 0};
    return poll(&p, 1, timeout_ms) > 0 && p.revents != 0;
}

/* Waits ms while serving the consuming connection; false when a stop signal
 * or the loss of that connection cut it short. */
static bool pause_ms(cons_t *C, int ms)
{
    int64_t end = hms_clock_ms() + ms;
    for (;;) {
        if (hms_signals_stop() != 0 || C->mq_lost)
            return false;
        int64_t left = end - hms_clock_ms();
        if (left <= 0)
            return true;
        serve(C, -1, 0, (int)(left < SLICE_MS ? left : SLICE_MS));
    }
}

/* Why a wait was cut short, as the message in hand's fate. */
static handled_t cut_short(const cons_t *C)
{
    return C->mq_lost ? LOST_MQ : DONE;
}

/* One turn of the PostgreSQL session's operation: waits for its socket or
 * deadline while serving RabbitMQ, then steps it.  As hms_capply_step(). */
static int pg_turn(cons_t *C, char *outcome, size_t outcome_len, hms_err_t *err)
{
    hms_capply_wait_t w;
    hms_capply_wait(C->pg, &w);
    int timeout = SLICE_MS;
    if (w.deadline_ms != 0) {
        int64_t left = w.deadline_ms - hms_clock_ms();
        timeout = left <= 0 ? 0 : left < SLICE_MS ? (int)left : SLICE_MS;
    }
    bool ready = serve(C, w.fd, w.events, timeout);
    int64_t now = hms_clock_ms();
    if (!ready && (w.deadline_ms == 0 || now < w.deadline_ms))
        return 0;
    return hms_capply_step(C->pg, now, outcome, outcome_len, err);
}

static const char *u64s(uint64_t v, char *buf, size_t n)
{
    snprintf(buf, n, "%llu", (unsigned long long)v);
    return buf;
}

static void log_counters(cons_t *C, const char *msg)
{
    char a[24], s[24], d[24], e[24], l[24], r[24];
    hms_log(HMS_LOG_INFO, msg, "queue", C->o->queue, "applied", u64s(C->n.applied, a, sizeof(a)),
            "stale", u64s(C->n.stale, s, sizeof(s)), "duplicate",
            u64s(C->n.duplicate, d, sizeof(d)), "echo", u64s(C->n.echo, e, sizeof(e)),
            "dead_lettered", u64s(C->n.dead_lettered, l, sizeof(l)), "retried",
            u64s(C->n.retried, r, sizeof(r)), NULL);
    C->logged = C->n;
    C->last_stats_ms = hms_clock_ms();
}

static void maybe_log_counters(cons_t *C)
{
    if (hms_clock_ms() - C->last_stats_ms < C->o->stats_interval_ms)
        return;
    if (memcmp(&C->n, &C->logged, sizeof(C->n)) != 0)
        log_counters(C, "counters");
    C->last_stats_ms = hms_clock_ms();
}

static void pg_failed(cons_t *C, const hms_err_t *err)
{
    C->pg_backoff = hms_backoff_next(C->pg_backoff, C->o->retry_min_ms, C->o->retry_max_ms);
    C->pg_not_before_ms = hms_clock_ms() + C->pg_backoff;
    char ms[16];
    snprintf(ms, sizeof(ms), "%d", C->pg_backoff);
    hms_log(HMS_LOG_WARN, "PostgreSQL unreachable; retrying", "error", err->msg, "backoff_ms", ms,
            NULL);
}

/* Makes sure the PostgreSQL session is open and idle, opening it as needed
 * with backoff between attempts, all the while serving RabbitMQ.  false
 * when a stop signal or the loss of the consuming connection came first (an
 * open under way is then kept, to be carried on next time). */
static bool ensure_pg(cons_t *C)
{
    while (!hms_capply_ready(C->pg)) {
        if (hms_signals_stop() != 0 || C->mq_lost)
            return false;
        hms_err_t err;
        int64_t now = hms_clock_ms();
        if (!hms_capply_busy(C->pg)) {
            if (now < C->pg_not_before_ms) {
                int64_t left = C->pg_not_before_ms - now;
                serve(C, -1, 0, left < SLICE_MS ? (int)left : SLICE_MS);
                continue;
            }
            if (hms_capply_open(C->pg, now, &err) != HMS_OK) {
                pg_failed(C, &err);
                continue;
            }
        }
        int r = pg_turn(C, NULL, 0, &err);
        if (r == 1) {
            hms_log(HMS_LOG_INFO, "PostgreSQL reconnected", NULL);
            C->pg_backoff = 0;
        } else if (r < 0) {
            pg_failed(C, &err);
        }
    }
    return true;
}

/* Runs the message in hand's statement to its end.  A stop signal does not
 * abandon it at once; after connect_timeout_ms more it does, unacked: the
 * broker redelivers it and, if it did commit, the inbox makes that a
 * duplicate.  false when abandoned; otherwise *st is the statement's status
 * (HMS_OK with outcome filled). */
static bool run_statement(cons_t *C, char *outcome, size_t outcome_len, hms_status_t *st,
                          hms_err_t *err)
{
    if ((*st = hms_capply_send(C->pg, C->text, err)) != HMS_OK)
        return true;
    int64_t give_up = 0, slow = hms_clock_ms() + C->o->connect_timeout_ms;
    for (;;) {
        int r = pg_turn(C, outcome, outcome_len, err);
        if (r != 0) {
            *st = r == 1 ? HMS_OK : (hms_status_t)r;
            return true;
        }
        if (slow != 0 && hms_clock_ms() >= slow) {
            /* A stalled server and a slow apply look the same from here:
             * say so once, and keep waiting. */
            hms_log(HMS_LOG_WARN, "PostgreSQL has not answered a statement yet; still waiting",
                    NULL);
            slow = 0;
        }
        if (hms_signals_stop() != 0 && give_up == 0)
            give_up = hms_clock_ms() + C->o->connect_timeout_ms;
        if (give_up != 0 && hms_clock_ms() >= give_up) {
            hms_log(HMS_LOG_WARN, "stopping: abandoned a statement in flight; it is redelivered",
                    NULL);
            hms_capply_close(C->pg);
            return false;
        }
    }
}

/* Dead-letters the delivery with reason, then acks it.  The dead letter is
 * confirmed before the ack, so a crash in between leaves the message on the
 * queue (and possibly a second copy in the dead-letter queue), never lost. */
static handled_t dead_letter(cons_t *C, const hms_cdelivery_t *d, const char *reason)
{
    hms_err_t err;
    int backoff = 0;
    while (hms_cbroker_dead_letter(C->broker, d, reason, CONFIRM_TIMEOUT_MS, &err) != HMS_OK) {
        backoff = hms_backoff_next(backoff, C->o->retry_min_ms, C->o->retry_max_ms);
        hms_log(HMS_LOG_WARN, "dead letter not confirmed; retrying", "error", err.msg, NULL);
        if (!pause_ms(C, backoff))
            return cut_short(C); /* unacked: redelivered to whoever runs next */
    }
    C->n.dead_lettered++;
    hms_log(HMS_LOG_WARN, "dead-lettered", "id", d->message_id, "routing_key", d->routing_key,
            "reason", reason, NULL);
    if (hms_cbroker_ack(C->broker, d->tag, &err) != HMS_OK) {
        hms_log(HMS_LOG_WARN, "ack failed", "error", err.msg, NULL);
        return LOST_MQ;
    }
    return DONE;
}

static void count_outcome(cons_t *C, const char *outcome, const hms_cdelivery_t *d)
{
    if (strcmp(outcome, "applied") == 0) {
        C->n.applied++;
    } else if (strcmp(outcome, "stale") == 0) {
        C->n.stale++;
    } else if (strcmp(outcome, "duplicate") == 0) {
        C->n.duplicate++;
    } else {
        /* A custom apply function may say something else; it did commit. */
        C->n.applied++;
        hms_log(HMS_LOG_DEBUG, "apply returned an unknown outcome", "id", d->message_id, "outcome",
                outcome, NULL);
    }
}

/* Records and applies a valid event, retrying transient failures in place
 * and failed applies up to the delivery limit. */
static handled_t apply_event(cons_t *C, const hms_cdelivery_t *d)
{
    const hms_consumer_opts_t *o = C->o;
    int attempts = 0, backoff = 0;
    hms_err_t err;
    for (;;) {
        if (!ensure_pg(C))
            return cut_short(C);
        char outcome[64];
        hms_status_t st;
        if (!run_statement(C, outcome, sizeof(outcome), &st, &err))
            return DONE;
        if (st == HMS_OK) {
            count_outcome(C, outcome, d);
            if (C->mq_lost || hms_cbroker_ack(C->broker, d->tag, &err) != HMS_OK) {
                hms_log(HMS_LOG_WARN, "ack failed after commit; the redelivery will be a duplicate",
                        "error", C->mq_lost ? C->mq_err.msg : err.msg, NULL);
                return LOST_MQ;
            }
            return DONE;
        }
        C->n.retried++;
        if (st == HMS_ERR_RETRY) {
            backoff = hms_backoff_next(backoff, o->retry_min_ms, o->retry_max_ms);
            hms_log(HMS_LOG_WARN, "transient database failure; retrying", "id", d->message_id,
                    "error", err.msg, NULL);
            if (!pause_ms(C, backoff))
                return cut_short(C);
            continue;
        }
        /* The event itself makes apply fail. */
        attempts++;
        long tried = o->classic ? attempts : (d->delivery_count < 0 ? 0 : d->delivery_count) + 1;
        if (tried >= o->delivery_limit) {
            C->n.retried--; /* the last attempt is not retried */
            return dead_letter(C, d, err.msg);
        }
        hms_log(HMS_LOG_WARN, "apply failed; will retry", "id", d->message_id, "error", err.msg,
                NULL);
        if (!o->classic) {
            /* The quorum queue counts deliveries across restarts. */
            if (hms_cbroker_requeue(C->broker, d->tag, &err) != HMS_OK)
                return LOST_MQ;
            return DONE;
        }
        backoff = hms_backoff_next(backoff, o->retry_min_ms, o->retry_max_ms);
        if (!pause_ms(C, backoff))
            return cut_short(C);
    }
}

static handled_t handle(cons_t *C, const hms_cdelivery_t *d)
{
    if (d->len + 1 > C->text_cap) {
        size_t cap = d->len + 1 < 4096 ? 4096 : d->len + 1;
        char *p = realloc(C->text, cap);
        if (p == NULL)
            return dead_letter(C, d, "the subscriber ran out of memory for the message");
        C->text = p;
        C->text_cap = cap;
    }
    memcpy(C->text, d->body, d->len);
    C->text[d->len] = '\0';

    json_object *ev = NULL;
    hms_err_t why;
    if (hms_cval_check(C->val, d->body, d->len, &ev, &why) != HMS_OK)
        return dead_letter(C, d, why.msg);
    /* A snapshot event (the only kind with a snapshot attribute) is never an
     * echo: it re-sends rows a replica may have lost, its own writes
     * included, and applying one cannot start a loop. */
    json_object *jorigin = NULL;
    bool echo = C->o->origin != NULL && !json_object_object_get_ex(ev, "snapshot", NULL) &&
                json_object_object_get_ex(ev, "origin", &jorigin) &&
                strcmp(json_object_get_string(jorigin), C->o->origin) == 0;
    json_object_put(ev);
    if (echo) {
        hms_err_t err;
        C->n.echo++;
        if (hms_cbroker_ack(C->broker, d->tag, &err) != HMS_OK)
            return LOST_MQ;
        return DONE;
    }
    return apply_event(C, d);
}

/* Opens the consuming connection (with its topology), backing off between
 * attempts; false when a stop signal came first. */
static bool ensure_broker(cons_t *C)
{
    while (C->broker == NULL) {
        hms_err_t err;
        if (hms_cbroker_connect(C->o, &C->broker, &err) == HMS_OK) {
            hms_log(HMS_LOG_INFO, "RabbitMQ reconnected", "queue", C->o->queue, NULL);
            C->amqp_backoff = 0;
            break;
        }
        C->amqp_backoff = hms_backoff_next(C->amqp_backoff, C->o->retry_min_ms, C->o->retry_max_ms);
        char ms[16];
        snprintf(ms, sizeof(ms), "%d", C->amqp_backoff);
        hms_log(HMS_LOG_WARN, "RabbitMQ unreachable; retrying", "error", err.msg, "backoff_ms", ms,
                NULL);
        if (!pause_ms(C, C->amqp_backoff))
            return false;
    }
    return true;
}

static void drop_broker(cons_t *C, const hms_err_t *err)
{
    hms_log(HMS_LOG_WARN, "RabbitMQ connection lost; reconnecting", "error", err->msg, NULL);
    hms_cbroker_close(C->broker);
    C->broker = NULL;
    C->mq_lost = false;
}

/* Opens the PostgreSQL session at start, where failing is an error.  HMS_OK
 * also when a stop signal came first (the session is then not ready). */
static hms_status_t open_pg(cons_t *C, hms_err_t *err)
{
    hms_status_t st = hms_capply_open(C->pg, hms_clock_ms(), err);
    while (st == HMS_OK && hms_signals_stop() == 0) {
        int r = pg_turn(C, NULL, 0, err);
        if (r != 0)
            return r == 1 ? HMS_OK : (hms_status_t)r;
    }
    return st;
}

static hms_consumer_status_t public_status(hms_status_t st)
{
    switch (st) {
    case HMS_OK: return HMS_CONSUMER_OK;
    case HMS_ERR_CONFIG: return HMS_CONSUMER_ERR_CONFIG;
    case HMS_ERR_PG: return HMS_CONSUMER_ERR_PG;
    case HMS_ERR_AMQP: return HMS_CONSUMER_ERR_AMQP;
    case HMS_ERR_NOMEM: return HMS_CONSUMER_ERR_NOMEM;
    default: return HMS_CONSUMER_ERR_SYSTEM;
    }
}

const char *hms_consumer_strerror(hms_consumer_status_t st)
{
    switch (st) {
    case HMS_CONSUMER_OK: return "ok";
    case HMS_CONSUMER_ERR_CONFIG: return "invalid configuration";
    case HMS_CONSUMER_ERR_PG: return "postgresql error";
    case HMS_CONSUMER_ERR_AMQP: return "rabbitmq error";
    case HMS_CONSUMER_ERR_NOMEM: return "out of memory";
    case HMS_CONSUMER_ERR_SYSTEM: return "system error";
    }
    return "unknown status";
}

/* The consuming loop, once both servers were reached. */
static void consume(cons_t *C)
{
    hms_log(HMS_LOG_INFO, "consuming", "queue", C->o->queue, "apply", C->o->apply, "type",
            C->o->classic ? "classic" : "quorum", NULL);
    C->last_stats_ms = hms_clock_ms();
    while (hms_signals_stop() == 0) {
        take_reload(C);
        maybe_log_counters(C);
        if (!ensure_broker(C))
            break;
        hms_cdelivery_t d;
        hms_err_t e;
        hms_status_t st = hms_cbroker_next(C->broker, POLL_MS, &d, &e);
        if (st == HMS_ERR_RETRY)
            continue;
        if (st != HMS_OK) {
            drop_broker(C, &e);
            continue;
        }
        handled_t h = handle(C, &d);
        if (C->mq_lost) {
            drop_broker(C, &C->mq_err);
        } else if (h == LOST_MQ) {
            hms_err_set(&e, HMS_ERR_AMQP, "lost while handling message %s", d.message_id);
            drop_broker(C, &e);
        }
    }
    hms_log(HMS_LOG_INFO, "stopping", "signal",
            hms_signals_stop() != 0 ? hms_signals_stop_name() : "none", NULL);
    log_counters(C, "stopped");
}

hms_consumer_status_t hms_consumer_run(const hms_consumer_opts_t *opts,
                                       hms_consumer_counters_t *counters, hms_consumer_err_t *err)
{
    cons_t C;
    memset(&C, 0, sizeof(C));
    C.o = opts;
    hms_err_t e;
    hms_status_t st;
    hms_signals_saved_t saved;
    hms_signals_install(&saved);

    if ((C.val = hms_cval_new(&e)) == NULL) {
        st = HMS_ERR_CONFIG;
        goto done;
    }
    if ((st = hms_capply_new(opts->pg_conninfo, opts->queue, opts->apply, opts->connect_timeout_ms,
                             &C.pg, &e)) != HMS_OK)
        goto done;
    if ((st = open_pg(&C, &e)) != HMS_OK)
        goto done;
    if (hms_signals_stop() == 0 && (st = hms_cbroker_connect(opts, &C.broker, &e)) != HMS_OK)
        goto done;
    consume(&C);
    st = HMS_OK;
done:
    if (counters != NULL)
        *counters = C.n;
    if (err != NULL)
        snprintf(err->msg, sizeof(err->msg), "%s", st == HMS_OK ? "" : e.msg);
    hms_cbroker_close(C.broker);
    hms_capply_free(C.pg);
    hms_cval_free(C.val);
    free(C.text);
    hms_signals_restore(&saved);
    return public_status(st);
}
