/* consumer.c -- `hms-sync consume`: the pipeline (validate each message,
 * set echoes aside, record and apply a batch in one transaction, ack after
 * commit), its retry loop, and the one wait everything goes through, so that
 * RabbitMQ is served while PostgreSQL is slow, stalled or gone. */
#include "hms_consumer.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/signals.h"
#include "consumer/apply.h"
#include "consumer/batch.h"
#include "consumer/broker.h"
#include "consumer/metrics.h"
#include "common/validate.h"
#include "core/backoff.h"
#include "core/lww.h"

#define POLL_MS 500              /* longest wait for a delivery before checking for a signal */
#define SLICE_MS 200             /* longest single wait: signals, deadlines and heartbeats */
#define CONFIRM_TIMEOUT_MS 10000 /* a dead letter's confirm */
#define STATS_MS 1000            /* longest time between two calls of opts.stats */
#define DEPTH_MS 5000            /* how often the queue's depth is asked for */

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
    int amqp_next_node;         /* the node of the amqp list the next connect tries first */
    hms_cbatch_t batch;         /* the messages in hand */
    hms_consumer_stats_t stats; /* stats.queue is the queue consumed */
    int64_t stats_ms, depth_ms; /* when last handed out, and asked for */
} cons_t;

/* What became of the messages in hand. */
typedef enum {
    DONE,    /* settled, or left unacked because we are stopping */
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

/* Hands the figures to opts.stats, asking the broker for the queue's depth
 * when that is due.  Called between waits, never inside a broker call. */
static void publish_stats(cons_t *C)
{
    int64_t now = hms_clock_ms();
    C->stats_ms = now;
    if (C->o->stats == NULL)
        return;
    hms_consumer_stats_t *s = &C->stats;
    s->amqp_up = C->broker != NULL && !C->mq_lost;
    snprintf(s->amqp_node, sizeof(s->amqp_node), "%s",
             s->amqp_up ? hms_cbroker_target(C->broker) : "");
    s->pg_up = hms_capply_up(C->pg);
    s->n = C->n;
    if (s->amqp_up && now - C->depth_ms >= DEPTH_MS) {
        hms_err_t err;
        C->depth_ms = now;
        if (hms_cbroker_queue_depth(C->broker, &s->queue_messages, &err) != HMS_OK) {
            s->queue_messages = -1;
            hms_log(HMS_LOG_DEBUG, "queue depth unknown", "error", err.msg, NULL);
        }
    }
    C->o->stats(s, C->o->stats_arg);
}

/* The one wait: up to timeout_ms (at most a slice) for fd (-1: none) to be
 * ready for events, reading the consuming connection meanwhile when there
 * is one.  Returns whether fd is ready.  A consuming connection that fails
 * here sets mq_lost; the message in hand then ends as LOST_MQ. */
static void publish_stats(cons_t *C);

static bool serve(cons_t *C, int fd, short events, int timeout_ms)
{
    take_reload(C);
    if (hms_clock_ms() - C->stats_ms >= STATS_MS)
        publish_stats(C);
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
static int pg_turn(cons_t *C, hms_err_t *err)
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
    return hms_capply_step(C->pg, now, err);
}

static const char *u64s(uint64_t v, char *buf, size_t n)
{
    snprintf(buf, n, "%llu", (unsigned long long)v);
    return buf;
}

static void log_counters(cons_t *C, const char *msg)
{
    char a[24], s[24], d[24], e[24], l[24], r[24];
    hms_log(HMS_LOG_INFO, msg, "queue", C->stats.queue, "applied", u64s(C->n.applied, a, sizeof(a)),
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
        int r = pg_turn(C, &err);
        if (r == 1) {
            hms_log(HMS_LOG_INFO, "PostgreSQL reconnected", NULL);
            C->pg_backoff = 0;
        } else if (r < 0) {
            pg_failed(C, &err);
        }
    }
    return true;
}

/* Runs the statement for json (n events) to its end.  A stop signal does
 * not abandon it at once; after connect_timeout_ms more it does, unacked:
 * the broker redelivers the batch and, if it did commit, the inbox makes
 * each event a duplicate.  false when abandoned; otherwise *st is the
 * statement's status (HMS_OK: hms_capply_result() has the rows). */
static bool run_statement(cons_t *C, const char *json, size_t n, hms_status_t *st, hms_err_t *err)
{
    if ((*st = hms_capply_send(C->pg, json, n, err)) != HMS_OK)
        return true;
    int64_t give_up = 0, slow = hms_clock_ms() + C->o->connect_timeout_ms;
    for (;;) {
        int r = pg_turn(C, err);
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

/* Runs json (n events) until it commits or the statement fails for a
 * reason other than a transient one, backing off between retries.  DONE
 * with *st HMS_OK (committed) or HMS_ERR_PG (err says why); otherwise the
 * messages in hand are left unsettled: a stop, or the consuming connection
 * lost (LOST_MQ). */
static handled_t run_until_done(cons_t *C, const char *json, size_t n, hms_status_t *st,
                                hms_err_t *err)
{
    int backoff = 0;
    *st = HMS_ERR_RETRY;
    for (;;) {
        if (!ensure_pg(C))
            return cut_short(C);
        if (!run_statement(C, json, n, st, err))
            return cut_short(C);
        if (*st != HMS_ERR_RETRY)
            return DONE;
        C->n.retried++;
        backoff = hms_backoff_next(backoff, C->o->retry_min_ms, C->o->retry_max_ms);
        hms_log(HMS_LOG_WARN, "transient database failure; retrying the batch", "error", err->msg,
                NULL);
        if (!pause_ms(C, backoff)) {
            *st = HMS_ERR_RETRY;
            return cut_short(C);
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
    if (hms_cbroker_ack(C->broker, d->tag, false, &err) != HMS_OK) {
        hms_log(HMS_LOG_WARN, "ack failed", "error", err.msg, NULL);
        return LOST_MQ;
    }
    return DONE;
}

/* Counts item it of the batch, committed now with outcome: by the outcome,
 * and in the latency figures. */
static void committed(cons_t *C, const char *outcome, const hms_cbatch_item_t *it)
{
    if (it->time_us != 0) {
        double t = (double)it->time_us / 1e6;
        hms_cmetrics_observe(&C->stats, (double)hms_clock_unix_us() / 1e6 - t);
        if (t > C->stats.last_event_time)
            C->stats.last_event_time = t;
    }
    if (strcmp(outcome, "applied") == 0) {
        C->n.applied++;
    } else if (strcmp(outcome, "stale") == 0) {
        C->n.stale++;
        /* Rare and worth a line each: a redelivered copy is the broker
         * handing back a failed consumer's messages after newer ones went
         * out (a quorum queue does after losing a node); a first delivery
         * means the stream itself arrived out of order. */
        hms_log(HMS_LOG_INFO, "skipped a stale event: older than the applied version", "id",
                it->message_id, "routing_key", it->routing_key, "redelivered",
                it->redelivered ? "true" : "false", NULL);
    } else if (strcmp(outcome, "duplicate") == 0) {
        C->n.duplicate++;
    } else {
        /* A custom apply function may say something else; it did commit. */
        C->n.applied++;
        hms_log(HMS_LOG_DEBUG, "apply returned an unknown outcome", "id", it->message_id, "outcome",
                outcome, NULL);
    }
}

/* Acknowledges one delivery after a commit; LOST_MQ when that fails (the
 * redelivery will be a duplicate). */
static handled_t ack_one(cons_t *C, uint64_t tag, bool multiple)
{
    hms_err_t err;
    if (!C->mq_lost && hms_cbroker_ack(C->broker, tag, multiple, &err) == HMS_OK)
        return DONE;
    hms_log(HMS_LOG_WARN, "ack failed after commit; the redelivery will be a duplicate", "error",
            C->mq_lost ? C->mq_err.msg : err.msg, NULL);
    return LOST_MQ;
}

/* Applies item i of the batch alone, after it failed in the batch: its
 * error counts as one try, and once it has been tried delivery_limit times
 * it is dead-lettered; before that it is requeued (quorum queues count the
 * deliveries, also across restarts) or, on a classic queue, tried again
 * here after a backoff. */
static handled_t apply_alone(cons_t *C, size_t i)
{
    const hms_consumer_opts_t *o = C->o;
    hms_cdelivery_t d;
    hms_cbatch_delivery(&C->batch, i, &d);
    int attempts = 0, backoff = 0;
    for (;;) {
        hms_err_t err;
        hms_status_t st;
        const char *json = hms_cbatch_json(&C->batch, i);
        if (json == NULL)
            return dead_letter(C, &d, "the subscriber ran out of memory for the message");
        handled_t h = run_until_done(C, json, 1, &st, &err);
        if (h != DONE || st == HMS_ERR_RETRY)
            return h;
        hms_capply_outcome_t r;
        if (st == HMS_OK && hms_capply_result(C->pg, 0, &r) && r.outcome != NULL) {
            committed(C, r.outcome, &C->batch.items[i]);
            C->stats.batches++;
            return ack_one(C, d.tag, false);
        }
        if (st == HMS_OK)
            hms_err_set(&err, HMS_ERR_PG, "apply failed: SQLSTATE %s: %s", r.sqlstate,
                        r.message ? r.message : "");
        attempts++;
        long tried = o->classic ? attempts : (d.delivery_count < 0 ? 0 : d.delivery_count) + 1;
        if (tried >= o->delivery_limit)
            return dead_letter(C, &d, err.msg);
        C->n.retried++;
        hms_log(HMS_LOG_WARN, "apply failed; will retry", "id", d.message_id, "error", err.msg,
                NULL);
        if (!o->classic) {
            if (hms_cbroker_requeue(C->broker, d.tag, &err) != HMS_OK)
                return LOST_MQ;
            return DONE;
        }
        backoff = hms_backoff_next(backoff, o->retry_min_ms, o->retry_max_ms);
        if (!pause_ms(C, backoff))
            return cut_short(C);
    }
}

/* Settles every item after the batch committed, or item by item when the
 * batch as a whole could not run (whole_failed): what committed is acked
 * (one multiple ack when nothing failed), echoes with it, and each event
 * that failed is then applied alone. */
static handled_t settle(cons_t *C, bool whole_failed)
{
    hms_cbatch_t *b = &C->batch;
    size_t row = 0, nfailed = 0;
    for (size_t i = 0; i < b->n; i++) {
        hms_cbatch_item_t *it = &b->items[i];
        hms_capply_outcome_t r;
        if (it->echo) {
            C->n.echo++;
            continue;
        }
        it->failed = whole_failed || !hms_capply_result(C->pg, row++, &r) || r.outcome == NULL;
        if (it->failed) {
            nfailed++;
        } else {
            committed(C, r.outcome, it);
        }
    }
    if (b->napply > nfailed)
        C->stats.batches++;
    if (nfailed == 0)
        return ack_one(C, hms_cbatch_last_tag(b), true);
    handled_t h = DONE;
    for (size_t i = 0; i < b->n && h == DONE; i++)
        if (!b->items[i].failed)
            h = ack_one(C, b->items[i].tag, false);
    for (size_t i = 0; i < b->n && h == DONE && hms_signals_stop() == 0; i++)
        if (b->items[i].failed)
            h = apply_alone(C, i);
    return h;
}

/* Records and applies the batch in one transaction, retrying transient
 * failures in place. */
static handled_t apply_batch(cons_t *C)
{
    hms_cbatch_t *b = &C->batch;
    if (b->napply == 0)
        return settle(C, false);
    const char *json = hms_cbatch_json(b, b->n);
    hms_status_t st;
    hms_err_t err;
    if (json == NULL)
        return settle(C, true);
    handled_t h = run_until_done(C, json, b->napply, &st, &err);
    if (h != DONE || st == HMS_ERR_RETRY)
        return h;
    if (st != HMS_OK)
        hms_log(HMS_LOG_WARN, "the batch failed as a whole; applying its events one by one",
                "error", err.msg, NULL);
    return settle(C, st != HMS_OK);
}

/* Takes one delivery into the batch: a message that is not a valid event
 * is dead-lettered at once; an echo rides along unapplied. */
static handled_t take(cons_t *C, const hms_cdelivery_t *d)
{
    json_object *ev = NULL;
    hms_err_t why;
    if (hms_cval_check(C->val, d->body, d->len, &ev, &why) != HMS_OK)
        return dead_letter(C, d, why.msg);
    /* A snapshot event (the only kind with a snapshot attribute) is never an
     * echo: it re-sends rows a replica may have lost, its own writes
     * included, and applying one cannot start a loop. */
    json_object *jorigin = NULL, *jtime = NULL;
    bool echo = C->o->origin != NULL && !json_object_object_get_ex(ev, "snapshot", NULL) &&
                json_object_object_get_ex(ev, "origin", &jorigin) &&
                strcmp(json_object_get_string(jorigin), C->o->origin) == 0;
    int64_t time_us = 0;
    if (!json_object_object_get_ex(ev, "time", &jtime) ||
        !hms_lww_parse_time(json_object_get_string(jtime), &time_us))
        time_us = 0; /* valid events always have one; the figures only lose it */
    json_object_put(ev);
    if (hms_cbatch_add(&C->batch, d, echo, time_us) != HMS_OK)
        return dead_letter(C, d, "the subscriber ran out of memory for the message");
    return DONE;
}

/* Fills the batch: the first delivery within POLL_MS, then whatever else
 * has arrived, up to batch, waiting up to batch_linger_ms for more.  DONE
 * with an empty batch when nothing came. */
static handled_t gather(cons_t *C, hms_err_t *err)
{
    int max = C->o->batch < 1 ? 1 : C->o->batch;
    int64_t linger_end = 0;
    hms_cbatch_reset(&C->batch);
    hms_cbroker_release(C->broker);
    while (C->batch.n < (size_t)max && hms_signals_stop() == 0) {
        int timeout = 0;
        if (C->batch.n == 0) {
            timeout = POLL_MS;
        } else if (C->o->batch_linger_ms > 0) {
            if (linger_end == 0)
                linger_end = hms_clock_ms() + C->o->batch_linger_ms;
            int64_t left = linger_end - hms_clock_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        hms_cdelivery_t d;
        hms_status_t st = hms_cbroker_next(C->broker, timeout, &d, err);
        if (st == HMS_ERR_RETRY && (timeout == 0 || C->batch.n == 0))
            break;
        if (st == HMS_ERR_RETRY)
            continue; /* a signal cut the linger short */
        if (st != HMS_OK)
            return LOST_MQ;
        if (take(C, &d) != DONE) {
            hms_err_set(err, HMS_ERR_AMQP, "lost while dead-lettering message %s", d.message_id);
            return LOST_MQ;
        }
    }
    return DONE;
}

/* Opens the consuming connection (with its topology), backing off between
 * attempts; false when a stop signal came first. */
static bool ensure_broker(cons_t *C)
{
    while (C->broker == NULL) {
        hms_err_t err;
        if (hms_cbroker_connect(C->o, C->amqp_next_node, &C->broker, &err) == HMS_OK) {
            hms_log(HMS_LOG_INFO, "RabbitMQ reconnected", "queue", C->stats.queue, "target",
                    hms_cbroker_target(C->broker), NULL);
            C->amqp_backoff = 0;
            break;
        }
        C->amqp_next_node++; /* a node that lets us in but then fails is not tried first again */
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
    /* Another node of the cluster may serve at once; this one comes round
     * again after the others. */
    C->amqp_next_node = hms_cbroker_node(C->broker) + 1;
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
        int r = pg_turn(C, err);
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
    hms_log(HMS_LOG_INFO, "consuming", "queue", C->stats.queue, "apply", C->o->apply, "type",
            C->o->classic ? "classic" : "quorum", NULL);
    C->last_stats_ms = hms_clock_ms();
    publish_stats(C);
    while (hms_signals_stop() == 0) {
        take_reload(C);
        maybe_log_counters(C);
        if (hms_clock_ms() - C->stats_ms >= STATS_MS)
            publish_stats(C);
        if (!ensure_broker(C))
            break;
        hms_err_t e;
        handled_t h = gather(C, &e);
        if (h == DONE && C->batch.n > 0 && (h = apply_batch(C)) == LOST_MQ)
            hms_err_set(&e, HMS_ERR_AMQP, "lost while settling a batch of %zu messages",
                        C->batch.n);
        if (C->batch.n > 0)
            publish_stats(C);
        if (C->mq_lost)
            drop_broker(C, &C->mq_err);
        else if (h == LOST_MQ)
            drop_broker(C, &e);
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
    if (opts->partitions > 0)
        snprintf(C.stats.queue, sizeof(C.stats.queue), "%s.p%d", opts->queue, opts->partition);
    else
        snprintf(C.stats.queue, sizeof(C.stats.queue), "%s", opts->queue);
    C.stats.queue_messages = -1;
    hms_cbatch_init(&C.batch);
    hms_err_t e;
    hms_status_t st;
    hms_signals_saved_t saved;
    hms_signals_install(&saved);

    if (opts->partitions < 0 || opts->partitions > 1000 ||
        (opts->partitions > 0 && (opts->partition < 1 || opts->partition > opts->partitions))) {
        st = hms_err_set(&e, HMS_ERR_CONFIG,
                         "consume: partition %d of %d: a partition is 1..partitions, and "
                         "partitions 0..1000",
                         opts->partition, opts->partitions);
        goto done;
    }
    if ((C.val = hms_cval_new(&e)) == NULL) {
        st = HMS_ERR_CONFIG;
        goto done;
    }
    size_t ntypes;
    if (opts->schemas != NULL &&
        (st = hms_cval_load_types(C.val, opts->schemas, &ntypes, &e)) != HMS_OK)
        goto done;
    if ((st = hms_capply_new(opts->pg_conninfo, opts->queue, opts->apply, opts->connect_timeout_ms,
                             &C.pg, &e)) != HMS_OK)
        goto done;
    if ((st = open_pg(&C, &e)) != HMS_OK)
        goto done;
    if (hms_signals_stop() == 0 && (st = hms_cbroker_connect(opts, 0, &C.broker, &e)) != HMS_OK)
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
    hms_cbatch_free(&C.batch);
    hms_signals_restore(&saved);
    return public_status(st);
}
