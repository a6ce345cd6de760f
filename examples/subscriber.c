/* subscriber.c -- a subscriber written in C against include/hms_consumer.h
 * alone: the warehouse seed subscriber on a queue of its own, with its
 * figures printed every ten seconds.  docs/subscribers.md walks through it.
 *
 *   HMS_AMQP=amqp://... HMS_PG="host=... dbname=..." ./example_subscriber QUEUE
 *
 * Everything the library does per batch (validation, echo skipping, the
 * inbox, last-write-wins, the multiple ack after commit, dead letters) is
 * the same as `hms-sync consume`; a program of your own chooses its options
 * and may watch the figures. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "hms_consumer.h"

/* Called from the library's loop after every batch and at least once a
 * second: it must return promptly, so it only prints now and then. */
static void on_stats(const hms_consumer_stats_t *s, void *arg)
{
    time_t *last = arg, now = time(NULL);
    if (now - *last < 10)
        return;
    *last = now;
    fprintf(stderr,
            "%s: applied %llu, stale %llu, duplicate %llu, dead-lettered %llu, %lld ready\n",
            s->queue, (unsigned long long)s->n.applied, (unsigned long long)s->n.stale,
            (unsigned long long)s->n.duplicate, (unsigned long long)s->n.dead_lettered,
            (long long)s->queue_messages);
}

int main(int argc, char **argv)
{
    const char *amqp = getenv("HMS_AMQP"), *pg = getenv("HMS_PG");
    if (argc != 2 || amqp == NULL || pg == NULL) {
        fprintf(stderr, "usage: HMS_AMQP=URL HMS_PG=CONNINFO %s QUEUE\n", argv[0]);
        return 2;
    }
    static const char *const binds[] = {"incident.#"};
    time_t last = 0;
    hms_consumer_opts_t o = {
        .amqp_url = amqp,
        .pg_conninfo = pg,
        .exchange = "hms.incidents",
        .dead_letter_exchange = "hms.incidents.dlx",
        .queue = argv[1],
        .apply = "hms_sync.apply_warehouse",
        .binds = binds,
        .nbinds = 1,
        .prefetch = 200,
        .batch = 100,
        .delivery_limit = 5,
        .heartbeat_s = 30,
        .connect_timeout_ms = 10000,
        .retry_min_ms = 500,
        .retry_max_ms = 30000,
        .stats_interval_ms = 60000,
        .stats = on_stats,
        .stats_arg = &last,
    };
    hms_consumer_counters_t n;
    hms_consumer_err_t err;
    hms_consumer_status_t st = hms_consumer_run(&o, &n, &err);
    if (st != HMS_CONSUMER_OK) {
        fprintf(stderr, "%s: %s: %s\n", argv[1], hms_consumer_strerror(st), err.msg);
        return 1;
    }
    fprintf(stderr, "%s: stopped after %llu applied\n", argv[1], (unsigned long long)n.applied);
    return 0;
}
