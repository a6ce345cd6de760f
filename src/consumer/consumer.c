/* consumer.c -- `hms-sync consume`: the per-message pipeline (validate,
 * skip echoes, record and apply, ack after commit) and its retry loop. */
#include "hms_consumer.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "consumer/apply.h"
#include "consumer/broker.h"
#include "consumer/validate.h"
#include "core/backoff.h"

#define POLL_MS 500              /* longest wait for a delivery before checking for a signal */
#define CONFIRM_TIMEOUT_MS 10000 /* a dead letter's confirm */

static volatile sig_atomic_t stop_signal = 0;

static void on_signal(int sig)
{
    stop_signal = sig;
}

typedef struct {
    const hms_consumer_opts_t *o;
    hms_cval_t *val;
    hms_cbroker_t *broker;
    hms_capply_t *pg;
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

/* Sleeps ms unless a stop signal comes first; false when stopping. */
static bool nap(int ms)
{
    int64_t end = hms_clock_ms() + ms;
    while (stop_signal == 0) {
        int64_t left = end - hms_clock_ms();
        if (left <= 0)
            return true;
        if (left > 100)
            left = 100;
        struct timespec ts = {0, (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
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

/* Makes sure a PostgreSQL session is open, backing off between attempts;
 * false when a stop signal came first. */
static bool ensure_pg(cons_t *C)
{
    while (!hms_capply_ok(C->pg)) {
        hms_capply_close(C->pg);
        C->pg = NULL;
        hms_err_t err;
        if (hms_capply_connect(C->o->pg_conninfo, C->o->queue, C->o->apply,
                               C->o->connect_timeout_ms, &C->pg, &err) == HMS_OK) {
            hms_log(HMS_LOG_INFO, "PostgreSQL reconnected", NULL);
            C->pg_backoff = 0;
            break;
        }
        C->pg_backoff = hms_backoff_next(C->pg_backoff, C->o->retry_min_ms, C->o->retry_max_ms);
        char ms[16];
        snprintf(ms, sizeof(ms), "%d", C->pg_backoff);
        hms_log(HMS_LOG_WARN, "PostgreSQL unreachable; retrying", "error", err.msg, "backoff_ms",
                ms, NULL);
        if (!nap(C->pg_backoff))
            return false;
    }
    return true;
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
        if (!nap(backoff))
            return DONE; /* unacked: redelivered to whoever runs next */
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
            return DONE;
        char outcome[64];
        hms_status_t st = hms_capply_event(C->pg, C->text, outcome, sizeof(outcome), &err);
        if (st == HMS_OK) {
            count_outcome(C, outcome, d);
            if (hms_cbroker_ack(C->broker, d->tag, &err) != HMS_OK) {
                hms_log(HMS_LOG_WARN, "ack failed after commit; the redelivery will be a duplicate",
                        "error", err.msg, NULL);
                return LOST_MQ;
            }
            return DONE;
        }
        C->n.retried++;
        if (st == HMS_ERR_RETRY) {
            backoff = hms_backoff_next(backoff, o->retry_min_ms, o->retry_max_ms);
            hms_log(HMS_LOG_WARN, "transient database failure; retrying", "id", d->message_id,
                    "error", err.msg, NULL);
            if (!nap(backoff))
                return DONE;
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
        if (!nap(backoff))
            return DONE;
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
    json_object *jorigin = NULL;
    bool echo = C->o->origin != NULL && json_object_object_get_ex(ev, "origin", &jorigin) &&
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
        if (!nap(C->amqp_backoff))
            return false;
    }
    return true;
}

static void drop_broker(cons_t *C, const hms_err_t *err)
{
    hms_log(HMS_LOG_WARN, "RabbitMQ connection lost; reconnecting", "error", err->msg, NULL);
    hms_cbroker_close(C->broker);
    C->broker = NULL;
}

hms_status_t hms_consumer_run(const hms_consumer_opts_t *opts, hms_consumer_counters_t *counters,
                              hms_err_t *err)
{
    cons_t C;
    memset(&C, 0, sizeof(C));
    C.o = opts;
    hms_status_t st;
    struct sigaction sa, old_term, old_int, old_pipe;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    stop_signal = 0;
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &old_pipe);

    if ((C.val = hms_cval_new(err)) == NULL) {
        st = HMS_ERR_CONFIG;
        goto done;
    }
    if ((st = hms_capply_connect(opts->pg_conninfo, opts->queue, opts->apply,
                                 opts->connect_timeout_ms, &C.pg, err)) != HMS_OK)
        goto done;
    if ((st = hms_cbroker_connect(opts, &C.broker, err)) != HMS_OK)
        goto done;
    hms_log(HMS_LOG_INFO, "consuming", "queue", opts->queue, "apply", opts->apply, "type",
            opts->classic ? "classic" : "quorum", NULL);
    C.last_stats_ms = hms_clock_ms();
    while (stop_signal == 0) {
        maybe_log_counters(&C);
        if (!ensure_broker(&C))
            break;
        hms_cdelivery_t d;
        hms_err_t e;
        st = hms_cbroker_next(C.broker, POLL_MS, &d, &e);
        if (st == HMS_ERR_RETRY)
            continue;
        if (st != HMS_OK) {
            drop_broker(&C, &e);
            continue;
        }
        if (handle(&C, &d) == LOST_MQ) {
            hms_err_set(&e, HMS_ERR_AMQP, "lost while handling message %s", d.message_id);
            drop_broker(&C, &e);
        }
    }
    st = HMS_OK;
    hms_log(HMS_LOG_INFO, "stopping", "signal",
            stop_signal == SIGTERM  ? "TERM"
            : stop_signal == SIGINT ? "INT"
                                    : "none",
            NULL);
    log_counters(&C, "stopped");
done:
    if (counters != NULL)
        *counters = C.n;
    hms_cbroker_close(C.broker);
    hms_capply_close(C.pg);
    hms_cval_free(C.val);
    free(C.text);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return st;
}
