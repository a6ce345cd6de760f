/* broker.c -- the subscriber's AMQP connections: topology, consuming with
 * manual acks, and confirmed dead-letter publishes. */
#include "consumer/broker.h"

#include <assert.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <amqp.h>

#include "common/amqp_tls.h"
#include "common/clock.h"
#include "common/log.h"
#include "core/buf.h"

#define CHANNEL 1
#define FRAME_MAX 131072
#define SLICE_MS 200 /* longest wait on the dead-letter connection between reads of the other */
#define DEPTH_TIMEOUT_MS 2000 /* a passive queue.declare's answer */

struct hms_cbroker {
    const hms_consumer_opts_t *opts;
    amqp_connection_state_t conn; /* consuming */
    amqp_connection_state_t dl;   /* dead-letter publishing (confirm mode); NULL until needed */
    char target[300];             /* host:port of the consuming connection's node */
    int node;                     /* that node's index in the URL list */
    char dl_target[300];          /* host:port of the dead-letter connection's node */
    char source[300];             /* the queue consumed: opts->queue or one of its partitions */
    amqp_envelope_t *ahead;       /* deliveries read ahead: a ring, oldest at head */
    size_t head, count, cap;
    amqp_envelope_t *held; /* deliveries handed out, until released */
    size_t nheld, held_cap;
    int64_t last_rx_ms; /* when the consuming socket last had bytes to read */
    bool broken;        /* the consuming connection failed, as broken_err says */
    hms_err_t broken_err;
};

static void destroy_conn(amqp_connection_state_t c)
{
    if (c == NULL)
        return;
    /* A polite close needs a live peer; never wait long for it. */
    struct timeval tv = {1, 0};
    amqp_set_rpc_timeout(c, &tv);
    if (amqp_get_socket(c) != NULL && amqp_get_sockfd(c) >= 0)
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* Opens a connection to the first node that answers, from first_node on,
 * and channel 1; `name` shows in the broker's UI.  target (300 bytes) gets
 * the node's host:port, *node its index. */
static hms_status_t open_conn(hms_cbroker_t *b, int first_node, int heartbeat_s, const char *name,
                              amqp_connection_state_t *out, char *target, int *node, hms_err_t *err)
{
    const hms_consumer_opts_t *o = b->opts;
    char why[300];
    hms_status_t st;
    amqp_connection_state_t c = NULL;
    amqp_table_entry_t entries[2];
    entries[0].key = amqp_cstring_bytes("product");
    entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[0].value.value.bytes = amqp_cstring_bytes("hms-sync");
    entries[1].key = amqp_cstring_bytes("connection_name");
    entries[1].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[1].value.value.bytes = amqp_cstring_bytes(name);
    amqp_table_t props = {2, entries};
    hms_amqp_tls_opts_t co = {.url = o->amqp_url,
                              .first_node = first_node,
                              .tls = {.cacert = o->amqp_cacert,
                                      .cert = o->amqp_cert,
                                      .key = o->amqp_key,
                                      .external = o->amqp_external,
                                      .password_file = o->amqp_password_file},
                              .heartbeat_s = heartbeat_s,
                              .frame_max = FRAME_MAX,
                              .connect_timeout_ms = o->connect_timeout_ms,
                              .client_properties = &props};
    st = hms_amqp_tls_connect(&co, &c, target, sizeof(b->target), node, err);
    if (st != HMS_OK)
        return st;
    amqp_rpc_reply_t r;
    amqp_channel_open(c, CHANNEL);
    r = amqp_get_rpc_reply(c);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        hms_amqp_reply_text(r, why, sizeof(why));
        st = hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot open a channel on %s: %s", target, why);
        goto fail;
    }
    *out = c;
    return HMS_OK;
fail:
    destroy_conn(c);
    return st;
}

static hms_status_t rpc_fail(hms_cbroker_t *b, amqp_rpc_reply_t r, const char *what, hms_err_t *err)
{
    char why[300];
    hms_amqp_reply_text(r, why, sizeof(why));
    return hms_err_set(err, HMS_ERR_AMQP, "amqp: %s on %s: %s", what, b->target, why);
}

/* Checks the reply of the RPC just made; names `what` on failure. */
static hms_status_t rpc_ok(hms_cbroker_t *b, amqp_connection_state_t c, const char *what,
                           hms_err_t *err)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return HMS_OK;
    return rpc_fail(b, r, what, err);
}

static amqp_table_entry_t str_entry(const char *key, const char *value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

/* Checks that an exchange exists.  A passive declare needs no configure
 * permission, so the subscriber's user gets none on exchanges it shares with
 * other subscribers and cannot delete them. */
static hms_status_t check_exchange(hms_cbroker_t *b, const char *name, const char *owner,
                                   hms_err_t *err)
{
    amqp_exchange_declare(b->conn, CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes("topic"),
                          1, 0, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(b->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return HMS_OK;
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_NOT_FOUND)
        return hms_err_set(err, HMS_ERR_AMQP,
                           "amqp: exchange %s does not exist on %s; a subscriber does not create "
                           "it: %s",
                           name, b->target, owner);
    char what[400];
    snprintf(what, sizeof(what), "cannot check exchange %s", name);
    return rpc_fail(b, r, what, err);
}

static hms_status_t declare_queue(hms_cbroker_t *b, const char *name, const amqp_table_t *args,
                                  const char *exchange, const char *const *keys, size_t nkeys,
                                  hms_err_t *err);
static hms_status_t declare_partitions(hms_cbroker_t *b, const amqp_table_t *args, hms_err_t *err);
static hms_status_t start_consuming(hms_cbroker_t *b, hms_err_t *err);

/* Declares the dead-letter queue: a quorum queue like the queue itself
 * (classic with opts.classic), so that on a cluster a dead letter is not
 * lost with one node.  One declared classic by an earlier version is kept
 * as it is, with a warning: its messages are the operator's to move. */
static hms_status_t declare_dlq(hms_cbroker_t *b, const char *dlq, hms_err_t *err)
{
    amqp_connection_state_t c = b->conn;
    char what[600];
    amqp_table_entry_t type = str_entry("x-queue-type", "quorum");
    amqp_table_t args = b->opts->classic ? amqp_empty_table : (amqp_table_t){1, &type};
    amqp_queue_declare(c, CHANNEL, amqp_cstring_bytes(dlq), 0, 1, 0, 0, args);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return HMS_OK;
    bool inequivalent =
        !b->opts->classic && r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_PRECONDITION_FAILED;
    snprintf(what, sizeof(what), "cannot declare dead-letter queue %s (%s, durable)", dlq,
             b->opts->classic ? "classic" : "quorum");
    if (!inequivalent)
        return rpc_fail(b, r, what, err);
    /* The broker closed the channel; open it again and take the queue as
     * it is, if it exists. */
    amqp_channel_close_ok_t ok = {0};
    hms_status_t st;
    amqp_send_method(c, CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    amqp_channel_open(c, CHANNEL);
    if ((st = rpc_ok(b, c, "cannot reopen the channel", err)) != HMS_OK)
        return st;
    amqp_queue_declare(c, CHANNEL, amqp_cstring_bytes(dlq), 1, 0, 0, 0, amqp_empty_table);
    if ((st = rpc_ok(b, c, what, err)) != HMS_OK)
        return st;
    hms_log(HMS_LOG_WARN,
            "the dead-letter queue is a classic queue, which lives on one node of a cluster; "
            "recreate it as a quorum queue (docs/operations.md, Running on a cluster)",
            "queue", dlq, NULL);
    return HMS_OK;
}

/* The subscriber's topology: checks the shared exchanges, declares the
 * dead-letter queue and the queue (or the partitions) it consumes. */
static hms_status_t declare(hms_cbroker_t *b, hms_err_t *err)
{
    const hms_consumer_opts_t *o = b->opts;
    amqp_connection_state_t c = b->conn;
    char what[600], dlq[300];
    hms_status_t st;
    snprintf(dlq, sizeof(dlq), "%s.dlq", o->queue);

    if ((st = check_exchange(b, o->exchange,
                             "start hms-sync run once, or load deploy/rabbitmq/definitions.json",
                             err)) != HMS_OK)
        return st;
    if ((st = check_exchange(b, o->dead_letter_exchange,
                             "declare it (durable, direct) as the broker's administrator, or load "
                             "deploy/rabbitmq/definitions.json",
                             err)) != HMS_OK)
        return st;
    if ((st = declare_dlq(b, dlq, err)) != HMS_OK)
        return st;
    amqp_queue_bind(c, CHANNEL, amqp_cstring_bytes(dlq),
                    amqp_cstring_bytes(o->dead_letter_exchange), amqp_cstring_bytes(o->queue),
                    amqp_empty_table);
    snprintf(what, sizeof(what), "cannot bind %s to %s", dlq, o->dead_letter_exchange);
    if ((st = rpc_ok(b, c, what, err)) != HMS_OK)
        return st;

    /* The broker's own dead-lettering (a quorum queue's x-delivery-limit)
     * is a backstop: consume dead-letters a failing event itself one
     * delivery earlier, with the reason. */
    amqp_table_entry_t args[5];
    int n = 0;
    args[n++] = str_entry("x-queue-type", o->classic ? "classic" : "quorum");
    args[n++] = str_entry("x-dead-letter-exchange", o->dead_letter_exchange);
    args[n++] = str_entry("x-dead-letter-routing-key", o->queue);
    if (!o->classic) {
        args[n].key = amqp_cstring_bytes("x-delivery-limit");
        args[n].value.kind = AMQP_FIELD_KIND_I64;
        args[n].value.value.i64 = o->delivery_limit;
        n++;
    }
    if (o->partitions > 0) {
        /* One consumer at a time per partition: two would split an
         * incident's events between them and lose their order. */
        args[n].key = amqp_cstring_bytes("x-single-active-consumer");
        args[n].value.kind = AMQP_FIELD_KIND_BOOLEAN;
        args[n].value.value.boolean = 1;
        n++;
    }
    amqp_table_t table = {n, args};
    if (o->partitions == 0) {
        snprintf(b->source, sizeof(b->source), "%s", o->queue);
        return declare_queue(b, b->source, &table, o->exchange, o->binds, o->nbinds, err);
    }
    return declare_partitions(b, &table, err);
}

/* Declares queue name with args and binds it to exchange with each of the
 * nkeys keys. */
static hms_status_t declare_queue(hms_cbroker_t *b, const char *name, const amqp_table_t *args,
                                  const char *exchange, const char *const *keys, size_t nkeys,
                                  hms_err_t *err)
{
    const hms_consumer_opts_t *o = b->opts;
    amqp_connection_state_t c = b->conn;
    char what[900];
    hms_status_t st;
    amqp_queue_declare(c, CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, *args);
    snprintf(what, sizeof(what),
             "cannot declare queue %s (%s, durable%s; an existing queue declared with other "
             "arguments conflicts)",
             name, o->classic ? "classic" : "quorum",
             o->partitions > 0 ? ", single active consumer" : "");
    if ((st = rpc_ok(b, c, what, err)) != HMS_OK)
        return st;
    for (size_t i = 0; i < nkeys; i++) {
        amqp_queue_bind(c, CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes(exchange),
                        amqp_cstring_bytes(keys[i]), amqp_empty_table);
        snprintf(what, sizeof(what), "cannot bind %s to %s with key %s", name, exchange, keys[i]);
        if ((st = rpc_ok(b, c, what, err)) != HMS_OK)
            return st;
    }
    return HMS_OK;
}

/* The partitioned topology: the consistent-hash exchange <queue>.hash,
 * hashing header subject, bound to the events' exchange with each binding
 * key, and the queues <queue>.p1 .. <queue>.pN bound to it.  Every worker
 * declares all of them, so the first to start routes every partition. */
static hms_status_t declare_partitions(hms_cbroker_t *b, const amqp_table_t *args, hms_err_t *err)
{
    const hms_consumer_opts_t *o = b->opts;
    amqp_connection_state_t c = b->conn;
    char hash[300], what[900], name[300];
    hms_status_t st;
    snprintf(hash, sizeof(hash), "%s.hash", o->queue);
    amqp_table_entry_t h = str_entry("hash-header", "subject");
    amqp_exchange_declare(c, CHANNEL, amqp_cstring_bytes(hash),
                          amqp_cstring_bytes("x-consistent-hash"), 0, 1, 0, 0,
                          (amqp_table_t){1, &h});
    snprintf(what, sizeof(what),
             "cannot declare exchange %s (x-consistent-hash, durable; the broker needs the plugin: "
             "rabbitmq-plugins enable rabbitmq_consistent_hash_exchange)",
             hash);
    if ((st = rpc_ok(b, c, what, err)) != HMS_OK)
        return st;
    for (size_t i = 0; i < o->nbinds; i++) {
        amqp_exchange_bind(c, CHANNEL, amqp_cstring_bytes(hash), amqp_cstring_bytes(o->exchange),
                           amqp_cstring_bytes(o->binds[i]), amqp_empty_table);
        snprintf(what, sizeof(what), "cannot bind exchange %s to %s with key %s", hash, o->exchange,
                 o->binds[i]);
        if ((st = rpc_ok(b, c, what, err)) != HMS_OK)
            return st;
    }
    for (int p = 1; p <= o->partitions; p++) {
        snprintf(name, sizeof(name), "%s.p%d", o->queue, p);
        /* Weight "1" each: an equal share of the hash space. */
        static const char *const weight[] = {"1"};
        if ((st = declare_queue(b, name, args, hash, weight, 1, err)) != HMS_OK)
            return st;
    }
    snprintf(b->source, sizeof(b->source), "%s.p%d", o->queue, o->partition);
    return HMS_OK;
}

/* Sets the prefetch and starts consuming b->source with manual acks. */
static hms_status_t start_consuming(hms_cbroker_t *b, hms_err_t *err)
{
    const hms_consumer_opts_t *o = b->opts;
    amqp_connection_state_t c = b->conn;
    char what[400];
    hms_status_t st;
    amqp_basic_qos(c, CHANNEL, 0, (uint16_t)o->prefetch, 0);
    if ((st = rpc_ok(b, c, "cannot set the prefetch (basic.qos)", err)) != HMS_OK)
        return st;
    amqp_basic_consume(c, CHANNEL, amqp_cstring_bytes(b->source), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    snprintf(what, sizeof(what), "cannot consume from %s", b->source);
    return rpc_ok(b, c, what, err);
}

hms_status_t hms_cbroker_connect(const hms_consumer_opts_t *opts, int first_node,
                                 hms_cbroker_t **out, hms_err_t *err)
{
    hms_status_t st;
    hms_cbroker_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory");
    b->opts = opts;
    char name[300];
    if (opts->partitions > 0)
        snprintf(name, sizeof(name), "hms-sync consume %s.p%d", opts->queue, opts->partition);
    else
        snprintf(name, sizeof(name), "hms-sync consume %s", opts->queue);
    if ((st = open_conn(b, first_node, opts->heartbeat_s, name, &b->conn, b->target, &b->node,
                        err)) != HMS_OK)
        goto fail;
    if ((st = declare(b, err)) != HMS_OK || (st = start_consuming(b, err)) != HMS_OK)
        goto fail;
    b->last_rx_ms = hms_clock_ms();
    *out = b;
    return HMS_OK;
fail:
    hms_cbroker_close(b);
    return st;
}

void hms_cbroker_close(hms_cbroker_t *b)
{
    if (b == NULL)
        return;
    hms_cbroker_release(b);
    free(b->held);
    for (; b->count > 0; b->count--, b->head = (b->head + 1) % b->cap)
        amqp_destroy_envelope(&b->ahead[b->head]);
    free(b->ahead);
    destroy_conn(b->conn);
    destroy_conn(b->dl);
    free(b);
}

/* x-delivery-count as a number, -1 when absent or not an integer. */
static long delivery_count(const amqp_basic_properties_t *p)
{
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return -1;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len != 16 || memcmp(e->key.bytes, "x-delivery-count", 16) != 0)
            continue;
        switch (e->value.kind) {
        case AMQP_FIELD_KIND_I8: return e->value.value.i8;
        case AMQP_FIELD_KIND_U8: return e->value.value.u8;
        case AMQP_FIELD_KIND_I16: return e->value.value.i16;
        case AMQP_FIELD_KIND_U16: return e->value.value.u16;
        case AMQP_FIELD_KIND_I32: return e->value.value.i32;
        case AMQP_FIELD_KIND_U32: return (long)e->value.value.u32;
        case AMQP_FIELD_KIND_I64: return (long)e->value.value.i64;
        case AMQP_FIELD_KIND_U64: return (long)e->value.value.u64;
        default: return -1;
        }
    }
    return -1;
}

/* A frame other than a delivery arrived: anything that closes or cancels
 * ends the connection's usefulness. */
static hms_status_t other_frame(hms_cbroker_t *b, hms_err_t *err)
{
    amqp_frame_t f;
    struct timeval tv = {0, 0};
    int rc = amqp_simple_wait_frame_noblock(b->conn, &f, &tv);
    if (rc == AMQP_STATUS_TIMEOUT)
        return HMS_ERR_RETRY;
    if (rc != AMQP_STATUS_OK)
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: connection to %s lost: %s", b->target,
                           amqp_error_string2(rc));
    if (f.frame_type != AMQP_FRAME_METHOD)
        return HMS_ERR_RETRY;
    char text[200] = "";
    switch (f.payload.method.id) {
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *c = f.payload.method.decoded;
        hms_amqp_bytes_str(c->reply_text, text, sizeof(text));
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(b->conn, CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: broker %s closed the channel: %u %s",
                           b->target, c->reply_code, text);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *c = f.payload.method.decoded;
        hms_amqp_bytes_str(c->reply_text, text, sizeof(text));
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(b->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: broker %s closed the connection: %u %s",
                           b->target, c->reply_code, text);
    }
    case AMQP_BASIC_CANCEL_METHOD:
        return hms_err_set(err, HMS_ERR_AMQP,
                           "amqp: broker %s cancelled the consumer of %s (queue deleted?)",
                           b->target, b->source);
    default: return HMS_ERR_RETRY;
    }
}

/* Makes room for one more delivery read ahead. */
static hms_status_t grow(hms_cbroker_t *b, hms_err_t *err)
{
    if (b->count < b->cap)
        return HMS_OK;
    size_t cap = b->cap ? 2 * b->cap : 16;
    amqp_envelope_t *p = malloc(cap * sizeof(*p));
    if (p == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory for deliveries read ahead");
    for (size_t i = 0; i < b->count; i++)
        p[i] = b->ahead[(b->head + i) % b->cap];
    free(b->ahead);
    b->ahead = p;
    b->head = 0;
    b->cap = cap;
    return HMS_OK;
}

/* Reads every frame already there without waiting, queueing deliveries;
 * sends a heartbeat when one is due. */
static hms_status_t pump(hms_cbroker_t *b, hms_err_t *err)
{
    for (;;) {
        hms_status_t st = grow(b, err);
        if (st != HMS_OK)
            return st;
        amqp_maybe_release_buffers(b->conn);
        struct timeval tv = {0, 0};
        amqp_envelope_t *env = &b->ahead[(b->head + b->count) % b->cap];
        amqp_rpc_reply_t r = amqp_consume_message(b->conn, env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            b->count++;
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
            if (r.library_error == AMQP_STATUS_TIMEOUT)
                return HMS_OK;
            if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
                if ((st = other_frame(b, err)) != HMS_ERR_RETRY)
                    return st;
                continue;
            }
        }
        char why[300];
        hms_amqp_reply_text(r, why, sizeof(why));
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: connection to %s lost: %s", b->target, why);
    }
}

static hms_status_t broken(hms_cbroker_t *b, hms_err_t *err)
{
    return hms_err_set(err, HMS_ERR_AMQP, "%s", b->broken_err.msg);
}

/* The one wait of the consuming connection: polls it and fd together, then
 * reads what came.  Returns whether fd is ready.  rabbitmq-c notices a
 * silent broker only inside its own timed waits, never in the non-blocking
 * reads made here, so the heartbeat's absence is checked here. */
static bool serve(hms_cbroker_t *b, int fd, short events, int timeout_ms)
{
    int mq = b->broken ? -1 : amqp_get_sockfd(b->conn);
    if (mq >= 0 && (amqp_frames_enqueued(b->conn) || amqp_data_in_buffer(b->conn)))
        timeout_ms = 0;
    struct pollfd p[2] = {{mq, POLLIN, 0}, {fd, events, 0}};
    if (poll(p, 2, timeout_ms) < 0) /* EINTR: a signal; the caller looks */
        p[0].revents = p[1].revents = 0;
    if (b->broken)
        return p[1].revents != 0;
    int64_t now = hms_clock_ms();
    if (p[0].revents != 0)
        b->last_rx_ms = now;
    hms_err_t e;
    hms_status_t st = pump(b, &e);
    int heartbeat = amqp_get_heartbeat(b->conn);
    if (st == HMS_OK && heartbeat > 0 && now - b->last_rx_ms > 2000 * (int64_t)heartbeat)
        st = hms_err_set(&e, HMS_ERR_AMQP, "amqp: connection to %s lost: no heartbeat for %d s",
                         b->target, 2 * heartbeat);
    if (st != HMS_OK) {
        b->broken = true;
        b->broken_err = e;
    }
    return p[1].revents != 0;
}

hms_status_t hms_cbroker_wait(hms_cbroker_t *b, int fd, short events, int timeout_ms, bool *ready,
                              hms_err_t *err)
{
    *ready = serve(b, fd, events, timeout_ms);
    return b->broken ? broken(b, err) : HMS_OK;
}

void hms_cbroker_release(hms_cbroker_t *b)
{
    for (size_t i = 0; i < b->nheld; i++)
        amqp_destroy_envelope(&b->held[i]);
    b->nheld = 0;
}

hms_status_t hms_cbroker_next(hms_cbroker_t *b, int timeout_ms, hms_cdelivery_t *d, hms_err_t *err)
{
    if (b->count == 0 && !b->broken)
        serve(b, -1, 0, timeout_ms);
    if (b->broken)
        return broken(b, err);
    if (b->count == 0)
        return HMS_ERR_RETRY;
    void *held = b->held;
    if (hms_array_grow(&held, &b->held_cap, b->nheld + 1, sizeof(*b->held)) != HMS_OK)
        return hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory for deliveries in hand");
    b->held = held;
    amqp_envelope_t *cur = &b->held[b->nheld++];
    *cur = b->ahead[b->head];
    b->head = (b->head + 1) % b->cap;
    b->count--;
    memset(d, 0, sizeof(*d));
    d->body = cur->message.body.bytes;
    d->len = cur->message.body.len;
    d->tag = cur->delivery_tag;
    d->redelivered = cur->redelivered != 0;
    d->delivery_count = delivery_count(&cur->message.properties);
    hms_amqp_bytes_str(cur->routing_key, d->routing_key, sizeof(d->routing_key));
    if (cur->message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        hms_amqp_bytes_str(cur->message.properties.message_id, d->message_id,
                           sizeof(d->message_id));
    return HMS_OK;
}

/* After an ack or reject: a failed send breaks the connection for good. */
static hms_status_t sent(hms_cbroker_t *b, int rc, const char *what, hms_err_t *err)
{
    if (rc == AMQP_STATUS_OK)
        return HMS_OK;
    b->broken = true;
    hms_err_set(&b->broken_err, HMS_ERR_AMQP, "amqp: %s to %s failed: %s", what, b->target,
                amqp_error_string2(rc));
    return broken(b, err);
}

hms_status_t hms_cbroker_ack(hms_cbroker_t *b, uint64_t tag, bool multiple, hms_err_t *err)
{
    if (b->broken)
        return broken(b, err);
    return sent(b, amqp_basic_ack(b->conn, CHANNEL, tag, multiple), "ack", err);
}

hms_status_t hms_cbroker_requeue(hms_cbroker_t *b, uint64_t tag, hms_err_t *err)
{
    if (b->broken)
        return broken(b, err);
    return sent(b, amqp_basic_reject(b->conn, CHANNEL, tag, 1), "reject", err);
}

static hms_status_t open_dl(hms_cbroker_t *b, hms_err_t *err)
{
    char name[300];
    snprintf(name, sizeof(name), "hms-sync consume %s dead letters", b->opts->queue);
    /* No heartbeat: the connection sits idle between dead letters and
     * nobody reads it then; a dead one fails the next publish, which is
     * retried on a fresh connection. */
    int node;
    hms_status_t st = open_conn(b, b->node, 0, name, &b->dl, b->dl_target, &node, err);
    if (st != HMS_OK)
        return st;
    amqp_confirm_select(b->dl, CHANNEL);
    if ((st = rpc_ok(b, b->dl, "cannot enable publisher confirms", err)) != HMS_OK) {
        destroy_conn(b->dl);
        b->dl = NULL;
    }
    return st;
}

hms_status_t hms_cbroker_queue_depth(hms_cbroker_t *b, int64_t *messages, hms_err_t *err)
{
    hms_status_t st;
    if (b->dl == NULL && (st = open_dl(b, err)) != HMS_OK)
        return st;
    /* A broker that stops answering must not hold the loop (and with it the
     * consuming connection's heartbeats) for long. */
    struct timeval tv = {DEPTH_TIMEOUT_MS / 1000, (DEPTH_TIMEOUT_MS % 1000) * 1000};
    amqp_set_rpc_timeout(b->dl, &tv);
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(b->dl, CHANNEL, amqp_cstring_bytes(b->source),
                                                     1, 0, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(b->dl);
    amqp_set_rpc_timeout(b->dl, NULL);
    if (r.reply_type != AMQP_RESPONSE_NORMAL || ok == NULL) {
        st = rpc_fail(b, r, "cannot read the queue's depth", err);
        destroy_conn(b->dl);
        b->dl = NULL;
        return st;
    }
    *messages = ok->message_count;
    amqp_maybe_release_buffers(b->dl);
    return HMS_OK;
}

/* Reads frames until the confirm of the one publish in flight, serving the
 * consuming connection between reads so that a slow confirm costs it no
 * heartbeat. */
static hms_status_t await_confirm(hms_cbroker_t *b, int timeout_ms, hms_err_t *err)
{
    bool returned = false;
    char text[200] = "";
    int64_t deadline = hms_clock_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - hms_clock_ms();
        if (left <= 0)
            return hms_err_set(err, HMS_ERR_AMQP,
                               "amqp: no confirm from %s for a dead letter within %d ms",
                               b->dl_target, timeout_ms);
        if (!amqp_frames_enqueued(b->dl) && !amqp_data_in_buffer(b->dl))
            serve(b, amqp_get_sockfd(b->dl), POLLIN, left < SLICE_MS ? (int)left : SLICE_MS);
        struct timeval tv = {0, 0};
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(b->dl, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            continue;
        if (rc != AMQP_STATUS_OK)
            return hms_err_set(err, HMS_ERR_AMQP, "amqp: dead-letter connection to %s lost: %s",
                               b->dl_target, amqp_error_string2(rc));
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue; /* the header and body of a returned message */
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD:
            if (returned)
                return hms_err_set(err, HMS_ERR_AMQP,
                                   "amqp: dead letter returned by %s as unroutable: %s (is %s.dlq "
                                   "bound to %s?)",
                                   b->dl_target, text, b->opts->queue,
                                   b->opts->dead_letter_exchange);
            return HMS_OK;
        case AMQP_BASIC_NACK_METHOD:
            return hms_err_set(err, HMS_ERR_AMQP, "amqp: broker %s refused (nacked) a dead letter",
                               b->dl_target);
        case AMQP_BASIC_RETURN_METHOD: {
            amqp_basic_return_t *ret = f.payload.method.decoded;
            hms_amqp_bytes_str(ret->reply_text, text, sizeof(text));
            returned = true;
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            return hms_err_set(err, HMS_ERR_AMQP,
                               "amqp: broker %s closed the dead-letter channel (does exchange %s "
                               "exist?)",
                               b->dl_target, b->opts->dead_letter_exchange);
        default: break;
        }
    }
}

hms_status_t hms_cbroker_dead_letter(hms_cbroker_t *b, const hms_cdelivery_t *d, const char *reason,
                                     int timeout_ms, hms_err_t *err)
{
    hms_status_t st;
    const amqp_envelope_t *env = NULL;
    for (size_t i = 0; i < b->nheld && env == NULL; i++)
        if (b->held[i].delivery_tag == d->tag)
            env = &b->held[i];
    assert(env != NULL);
    if (b->dl == NULL && (st = open_dl(b, err)) != HMS_OK)
        return st;
    const amqp_basic_properties_t *orig = &env->message.properties;
    amqp_basic_properties_t props = *orig;
    /* The original headers, minus ours from an earlier dead-lettering, plus
     * the three that say why, who and from where. */
    int norig = (orig->_flags & AMQP_BASIC_HEADERS_FLAG) ? orig->headers.num_entries : 0;
    amqp_table_entry_t *h = calloc((size_t)norig + 3, sizeof(*h));
    if (h == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory");
    int n = 0;
    for (int i = 0; i < norig; i++) {
        const amqp_table_entry_t *e = &orig->headers.entries[i];
        if (e->key.len >= 6 && memcmp(e->key.bytes, "x-hms-", 6) == 0)
            continue;
        h[n++] = *e;
    }
    h[n++] = str_entry("x-hms-reason", reason);
    h[n++] = str_entry("x-hms-subscriber", b->opts->queue);
    h[n++] = str_entry("x-hms-original-routing-key", d->routing_key);
    props.headers.num_entries = n;
    props.headers.entries = h;
    props._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2;
    amqp_bytes_t body = {d->len, (void *)d->body};
    int rc = amqp_basic_publish(b->dl, CHANNEL, amqp_cstring_bytes(b->opts->dead_letter_exchange),
                                amqp_cstring_bytes(b->opts->queue), 1, 0, &props, body);
    free(h);
    if (rc != AMQP_STATUS_OK)
        st = hms_err_set(err, HMS_ERR_AMQP, "amqp: dead-letter publish to %s failed: %s",
                         b->dl_target, amqp_error_string2(rc));
    else
        st = await_confirm(b, timeout_ms, err);
    if (st != HMS_OK) {
        destroy_conn(b->dl);
        b->dl = NULL;
    }
    if (b->dl != NULL)
        amqp_maybe_release_buffers(b->dl);
    return st;
}

const char *hms_cbroker_target(const hms_cbroker_t *b)
{
    return b->target;
}

int hms_cbroker_node(const hms_cbroker_t *b)
{
    return b->node;
}
