/* publish_ceiling.c -- the broker's confirmed-publish ceiling: persistent, mandatory messages per
 * second through one confirm-mode channel with a window of unconfirmed messages in flight.
 *
 * hms-sync can never publish faster than the broker confirms, so its events/s only mean something
 * next to this number, measured against the same broker, exchange and queue in the same run.
 * The tool also sets up, purges and removes the benchmark's exchange and queue, so a benchmark
 * script needs no second AMQP client.
 *
 *   hms_publish_ceiling --url URL --exchange NAME [--routing-key KEY] [--count N] [--size BYTES]
 *                       [--window W] [--queue NAME [--declare] [--purge] [--delete]]
 *                       [--alternate-exchange NAME]
 *
 * Order of work: declare, purge, publish (--count > 0), report, delete.  Exit codes: 0 every
 * message confirmed, 1 a runtime failure (including any nack or return), 2 a usage error. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#define CHANNEL 1
#define FRAME_MAX 131072

typedef struct {
    const char *url;
    const char *exchange;
    const char *routing_key;
    const char *queue;
    const char *alternate_exchange;
    uint64_t count;
    size_t size;
    uint64_t window;
    int timeout_s;
    bool declare;
    bool purge;
    bool delete_after;
} opts_t;

/* Confirm bookkeeping for one run.  settled[tag] is set once the broker has acked or nacked
 * that tag; low is the highest tag below which every tag is settled, so a multiple-ack only
 * walks tags not yet seen. */
typedef struct {
    uint8_t *settled;
    uint64_t published;
    uint64_t low;
    uint64_t n_settled;
    uint64_t acked;
    uint64_t nacked;
    uint64_t returned;
} confirms_t;

static void fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail_msg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hms_publish_ceiling: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: hms_publish_ceiling --url URL --exchange NAME [options]\n"
            "  --url URL            amqp://user:pass@host:port/vhost (default "
            "amqp://guest:guest@127.0.0.1:5672/)\n"
            "  --exchange NAME      topic exchange to publish to (required)\n"
            "  --routing-key KEY    routing key (default incident.created.bench)\n"
            "  --count N            messages to publish; 0 only runs the queue actions (default "
            "20000)\n"
            "  --size BYTES         body size of each message (default 650)\n"
            "  --window W           most unconfirmed messages in flight (default 1000)\n"
            "  --timeout SECONDS    longest wait for a confirm (default 30)\n"
            "  --queue NAME         queue for --declare, --purge, --delete and the queued count\n"
            "  --declare            declare the exchange (topic, durable) and a durable queue "
            "bound with '#'\n"
            "  --alternate-exchange NAME\n"
            "                       with --declare: the exchange's alternate-exchange argument, as "
            "hms-sync\n"
            "                       run declares its events exchange\n"
            "  --purge              purge the queue before publishing\n"
            "  --delete             delete the queue and the exchange after publishing\n");
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Returns 0 on success, 2 (after a one-line message) on a usage error, -1 for --help. */
static int parse_args(int argc, char **argv, opts_t *o)
{
    enum {
        O_URL = 256,
        O_EX,
        O_RK,
        O_COUNT,
        O_SIZE,
        O_WINDOW,
        O_TIMEOUT,
        O_QUEUE,
        O_DECLARE,
        O_PURGE,
        O_DELETE,
        O_AE,
        O_HELP
    };
    static const struct option longopts[] = {
        {"url", required_argument, NULL, O_URL},
        {"exchange", required_argument, NULL, O_EX},
        {"routing-key", required_argument, NULL, O_RK},
        {"count", required_argument, NULL, O_COUNT},
        {"size", required_argument, NULL, O_SIZE},
        {"window", required_argument, NULL, O_WINDOW},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"queue", required_argument, NULL, O_QUEUE},
        {"declare", no_argument, NULL, O_DECLARE},
        {"purge", no_argument, NULL, O_PURGE},
        {"delete", no_argument, NULL, O_DELETE},
        {"alternate-exchange", required_argument, NULL, O_AE},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    *o = (opts_t){.url = "amqp://guest:guest@127.0.0.1:5672/",
                  .routing_key = "incident.created.bench",
                  .count = 20000,
                  .size = 650,
                  .window = 1000,
                  .timeout_s = 30};
    uint64_t v;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_URL: o->url = optarg; break;
        case O_EX: o->exchange = optarg; break;
        case O_RK: o->routing_key = optarg; break;
        case O_QUEUE: o->queue = optarg; break;
        case O_DECLARE: o->declare = true; break;
        case O_PURGE: o->purge = true; break;
        case O_DELETE: o->delete_after = true; break;
        case O_AE: o->alternate_exchange = optarg; break;
        case O_HELP: return -1;
        case O_COUNT:
            if (!parse_u64(optarg, 0, UINT64_C(100000000), &o->count)) {
                fail_msg("--count: '%s' is not a number from 0 to 100000000", optarg);
                return 2;
            }
            break;
        case O_SIZE:
            if (!parse_u64(optarg, 0, FRAME_MAX * 8, &v)) {
                fail_msg("--size: '%s' is not a number of bytes from 0 to %d", optarg,
                         FRAME_MAX * 8);
                return 2;
            }
            o->size = (size_t)v;
            break;
        case O_WINDOW:
            if (!parse_u64(optarg, 1, 1000000, &o->window)) {
                fail_msg("--window: '%s' is not a number from 1 to 1000000", optarg);
                return 2;
            }
            break;
        case O_TIMEOUT:
            if (!parse_u64(optarg, 1, 3600, &v)) {
                fail_msg("--timeout: '%s' is not a number of seconds from 1 to 3600", optarg);
                return 2;
            }
            o->timeout_s = (int)v;
            break;
        default:
            fail_msg("unknown or incomplete option '%s' (try --help)", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fail_msg("unexpected argument '%s' (try --help)", argv[optind]);
        return 2;
    }
    if (o->exchange == NULL || o->exchange[0] == '\0') {
        fail_msg("--exchange is required");
        return 2;
    }
    if ((o->declare || o->purge || o->delete_after) && o->queue == NULL) {
        fail_msg("--declare, --purge and --delete need --queue");
        return 2;
    }
    return 0;
}

/* Names a failed RPC reply in one line into msg; returns true when the reply is normal. */
static bool reply_ok(amqp_rpc_reply_t r, const char *what, char *msg, size_t cap)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return true;
    case AMQP_RESPONSE_NONE: snprintf(msg, cap, "%s: no reply from the broker", what); break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(msg, cap, "%s: %s", what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = r.reply.decoded;
            snprintf(msg, cap, "%s: channel closed by the broker: %u %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = r.reply.decoded;
            snprintf(msg, cap, "%s: connection closed by the broker: %u %.*s", what, m->reply_code,
                     (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        } else {
            snprintf(msg, cap, "%s: unexpected broker method 0x%08x", what, r.reply.id);
        }
        break;
    }
    return false;
}

/* The outcome of the last synchronous method call on conn (see reply_ok). */
static bool rpc_ok(amqp_connection_state_t conn, const char *what, char *msg, size_t cap)
{
    return reply_ok(amqp_get_rpc_reply(conn), what, msg, cap);
}

/* Opens a connection and channel CHANNEL in confirm mode.  On success *out owns the connection
 * (close it with amqp_connection_close + amqp_destroy_connection); on failure msg says why. */
static int open_conn(const opts_t *o, amqp_connection_state_t *out, char *msg, size_t cap)
{
    struct amqp_connection_info ci;
    char *url = strdup(o->url);
    amqp_connection_state_t conn = NULL;
    int rc;
    if (url == NULL) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    amqp_default_connection_info(&ci);
    if ((rc = amqp_parse_url(url, &ci)) != AMQP_STATUS_OK) {
        snprintf(msg, cap, "--url: cannot parse '%s': %s", o->url, amqp_error_string2(rc));
        goto fail;
    }
    if (ci.ssl) {
        snprintf(msg, cap, "--url: amqps:// is not supported by this tool");
        goto fail;
    }
    conn = amqp_new_connection();
    amqp_socket_t *sock = conn != NULL ? amqp_tcp_socket_new(conn) : NULL;
    if (sock == NULL) {
        snprintf(msg, cap, "out of memory creating the AMQP connection");
        goto fail;
    }
    struct timeval tv = {.tv_sec = o->timeout_s};
    if ((rc = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv)) != AMQP_STATUS_OK) {
        snprintf(msg, cap, "connect to %s:%d: %s", ci.host, ci.port, amqp_error_string2(rc));
        goto fail;
    }
    /* amqp_parse_url gives "" for a URL ending in "/"; RabbitMQ's default vhost is "/". */
    const char *vhost = ci.vhost[0] != '\0' ? ci.vhost : "/";
    amqp_rpc_reply_t r =
        amqp_login(conn, vhost, 0, FRAME_MAX, 0, AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    if (!reply_ok(r, "login", msg, cap))
        goto fail;
    amqp_channel_open(conn, CHANNEL);
    if (!rpc_ok(conn, "channel.open", msg, cap))
        goto fail;
    amqp_confirm_select(conn, CHANNEL);
    if (!rpc_ok(conn, "confirm.select", msg, cap))
        goto fail;
    free(url);
    *out = conn;
    return 0;
fail:
    if (conn != NULL)
        amqp_destroy_connection(conn);
    free(url);
    return -1;
}

/* The same topology the connector publishes into: a durable topic exchange (declared with the
 * connector's arguments, so either may declare it first: none, or for its events exchange
 * --alternate-exchange) and a durable classic queue taking every routing key, so mandatory
 * messages are routed and persisted. */
static int declare_topology(amqp_connection_state_t conn, const opts_t *o, char *msg, size_t cap)
{
    const char *alt = o->alternate_exchange != NULL ? o->alternate_exchange : "";
    amqp_table_entry_t ae = {
        .key = amqp_cstring_bytes("alternate-exchange"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(alt)}};
    amqp_table_t args = {alt[0] != '\0' ? 1 : 0, &ae};
    amqp_exchange_declare(conn, CHANNEL, amqp_cstring_bytes(o->exchange),
                          amqp_cstring_bytes("topic"), 0, 1, 0, 0, args);
    if (!rpc_ok(conn, "exchange.declare", msg, cap))
        return -1;
    amqp_queue_declare(conn, CHANNEL, amqp_cstring_bytes(o->queue), 0, 1, 0, 0, amqp_empty_table);
    if (!rpc_ok(conn, "queue.declare", msg, cap))
        return -1;
    amqp_queue_bind(conn, CHANNEL, amqp_cstring_bytes(o->queue), amqp_cstring_bytes(o->exchange),
                    amqp_cstring_bytes("#"), amqp_empty_table);
    return rpc_ok(conn, "queue.bind", msg, cap) ? 0 : -1;
}

/* Messages in the queue now, by a passive declare; -1 (with msg) on failure. */
static int64_t queue_depth(amqp_connection_state_t conn, const char *queue, char *msg, size_t cap)
{
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(conn, CHANNEL, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    if (!rpc_ok(conn, "queue.declare (passive)", msg, cap) || ok == NULL)
        return -1;
    return ok->message_count;
}

/* Marks tag (and with multiple every lower tag) settled; returns how many were newly settled. */
static uint64_t settle(confirms_t *c, uint64_t tag, bool multiple)
{
    uint64_t n = 0;
    if (tag == 0 || tag > c->published)
        return 0; /* not ours: ignore rather than trust it */
    if (multiple) {
        for (uint64_t t = c->low + 1; t <= tag; t++) {
            if (!c->settled[t]) {
                c->settled[t] = 1;
                n++;
            }
        }
    } else if (!c->settled[tag]) {
        c->settled[tag] = 1;
        n = 1;
    }
    while (c->low < c->published && c->settled[c->low + 1])
        c->low++;
    c->n_settled += n;
    return n;
}

/* A basic.return carries the returned message's header and body frames; they must be read off
 * the connection before the next method frame. */
static int skip_returned_content(amqp_connection_state_t conn, char *msg, size_t cap)
{
    amqp_frame_t f;
    int rc = amqp_simple_wait_frame(conn, &f);
    if (rc != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_HEADER) {
        snprintf(msg, cap, "reading a returned message's header: %s",
                 rc != AMQP_STATUS_OK ? amqp_error_string2(rc) : "unexpected frame");
        return -1;
    }
    uint64_t left = f.payload.properties.body_size;
    while (left > 0) {
        rc = amqp_simple_wait_frame(conn, &f);
        if (rc != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_BODY) {
            snprintf(msg, cap, "reading a returned message's body: %s",
                     rc != AMQP_STATUS_OK ? amqp_error_string2(rc) : "unexpected frame");
            return -1;
        }
        left -= f.payload.body_fragment.len < left ? f.payload.body_fragment.len : left;
    }
    return 0;
}

/* Reads one frame, waiting at most tv (zero: only what is already readable), and accounts for
 * it.  Returns 1 when a frame was handled, 0 on timeout, -1 (with msg) on failure. */
static int read_one(amqp_connection_state_t conn, confirms_t *c, struct timeval *tv, char *msg,
                    size_t cap)
{
    amqp_frame_t f;
    int rc = amqp_simple_wait_frame_noblock(conn, &f, tv);
    if (rc == AMQP_STATUS_TIMEOUT)
        return 0;
    if (rc != AMQP_STATUS_OK) {
        snprintf(msg, cap, "reading confirms: %s", amqp_error_string2(rc));
        return -1;
    }
    if (f.frame_type != AMQP_FRAME_METHOD)
        return 1;
    switch (f.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *m = f.payload.method.decoded;
        c->acked += settle(c, m->delivery_tag, m->multiple);
        return 1;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *m = f.payload.method.decoded;
        c->nacked += settle(c, m->delivery_tag, m->multiple);
        return 1;
    }
    case AMQP_BASIC_RETURN_METHOD:
        c->returned++;
        return skip_returned_content(conn, msg, cap) == 0 ? 1 : -1;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *m = f.payload.method.decoded;
        snprintf(msg, cap, "channel closed by the broker: %u %.*s", m->reply_code,
                 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *m = f.payload.method.decoded;
        snprintf(msg, cap, "connection closed by the broker: %u %.*s", m->reply_code,
                 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
        return -1;
    }
    default: return 1; /* e.g. connection.blocked: keep waiting, the timeout reports a stall */
    }
}

/* Publishes o->count messages, pipelined up to o->window unconfirmed, and waits for every
 * confirm.  *seconds is the time from the first publish to the last confirm. */
static int publish_all(amqp_connection_state_t conn, const opts_t *o, confirms_t *c,
                       double *seconds, char *msg, size_t cap)
{
    char *body = malloc(o->size > 0 ? o->size : 1);
    int ret = -1;
    c->settled = calloc(o->count + 1, 1);
    if (body == NULL || c->settled == NULL) {
        snprintf(msg, cap, "out of memory for %" PRIu64 " messages of %zu bytes", o->count,
                 o->size);
        goto fail;
    }
    /* The broker does not look inside the body; a fixed pattern keeps the run reproducible. */
    for (size_t i = 0; i < o->size; i++)
        body[i] = (char)('a' + i % 26);
    amqp_bytes_t bbody = {.len = o->size, .bytes = body};
    amqp_bytes_t ex = amqp_cstring_bytes(o->exchange);
    amqp_bytes_t rk = amqp_cstring_bytes(o->routing_key);

    /* The same properties the connector sets, so frame sizes match. */
    char id[40];
    amqp_basic_properties_t props = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                  AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG,
        .content_type = amqp_cstring_bytes("application/cloudevents+json"),
        .delivery_mode = 2,
        .type = amqp_cstring_bytes("gov.hms.ehr.IncidentCreated.v1"),
        .timestamp = (uint64_t)time(NULL),
    };
    struct timeval zero = {0, 0};
    struct timeval wait = {.tv_sec = o->timeout_s};
    double t0 = now_s();
    while (c->n_settled < o->count) {
        if (c->published < o->count && c->published - c->n_settled < o->window) {
            snprintf(id, sizeof(id), "ceiling-%016" PRIX64 "-0", c->published);
            props.message_id = amqp_cstring_bytes(id);
            int rc = amqp_basic_publish(conn, CHANNEL, ex, rk, 1, 0, &props, bbody);
            if (rc != AMQP_STATUS_OK) {
                snprintf(msg, cap, "basic.publish #%" PRIu64 ": %s", c->published + 1,
                         amqp_error_string2(rc));
                goto fail;
            }
            c->published++;
            /* Take whatever confirms are already readable, without waiting. */
            int r;
            while ((r = read_one(conn, c, &zero, msg, cap)) == 1)
                ;
            if (r < 0)
                goto fail;
            continue;
        }
        int r = read_one(conn, c, &wait, msg, cap);
        if (r < 0)
            goto fail;
        if (r == 0) {
            snprintf(msg, cap,
                     "no confirm for %d s with %" PRIu64 " unconfirmed (broker blocked by an "
                     "alarm?)",
                     o->timeout_s, c->published - c->n_settled);
            goto fail;
        }
    }
    *seconds = now_s() - t0;
    ret = 0;
fail:
    free(body);
    return ret;
}

static void print_json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void report(const opts_t *o, const confirms_t *c, double seconds, int64_t queued)
{
    double rate = seconds > 0 ? (double)c->acked / seconds : 0;
    printf("published %" PRIu64 " x %zu B (window %" PRIu64 "): %" PRIu64
           " confirmed in %.3f s = %.0f msg/s\n",
           o->count, o->size, o->window, c->acked, seconds, rate);
    printf("{\"tool\":\"hms_publish_ceiling\",\"exchange\":");
    print_json_str(o->exchange);
    printf(",\"routing_key\":");
    print_json_str(o->routing_key);
    printf(",\"count\":%" PRIu64 ",\"size\":%zu,\"window\":%" PRIu64 ",\"acked\":%" PRIu64
           ",\"nacked\":%" PRIu64 ",\"returned\":%" PRIu64
           ",\"seconds\":%.6f,\"msgs_per_sec\":%.1f",
           o->count, o->size, o->window, c->acked, c->nacked, c->returned, seconds, rate);
    if (queued >= 0)
        printf(",\"queued\":%" PRId64, queued);
    printf("}\n");
}

int main(int argc, char **argv)
{
    opts_t o;
    confirms_t c = {0};
    amqp_connection_state_t conn = NULL;
    char msg[512] = "";
    int ret = 1;
    int rc = parse_args(argc, argv, &o);
    if (rc < 0) {
        usage(stdout);
        return 0;
    }
    if (rc > 0)
        return rc;
    if (open_conn(&o, &conn, msg, sizeof(msg)) != 0)
        goto fail;
    if (o.declare && declare_topology(conn, &o, msg, sizeof(msg)) != 0)
        goto fail;
    if (o.purge) {
        amqp_queue_purge(conn, CHANNEL, amqp_cstring_bytes(o.queue));
        if (!rpc_ok(conn, "queue.purge", msg, sizeof(msg)))
            goto fail;
    }
    if (o.count > 0) {
        double seconds = 0;
        if (publish_all(conn, &o, &c, &seconds, msg, sizeof(msg)) != 0)
            goto fail;
        int64_t queued = -1;
        if (o.queue != NULL && (queued = queue_depth(conn, o.queue, msg, sizeof(msg))) < 0)
            goto fail;
        report(&o, &c, seconds, queued);
        fflush(stdout);
        if (c.nacked > 0 || c.returned > 0) {
            snprintf(msg, sizeof(msg),
                     "%" PRIu64 " nacked and %" PRIu64 " returned of %" PRIu64
                     " (returned: is a queue bound to the exchange?)",
                     c.nacked, c.returned, o.count);
            goto fail;
        }
    }
    if (o.delete_after) {
        amqp_queue_delete(conn, CHANNEL, amqp_cstring_bytes(o.queue), 0, 0);
        if (!rpc_ok(conn, "queue.delete", msg, sizeof(msg)))
            goto fail;
        amqp_exchange_delete(conn, CHANNEL, amqp_cstring_bytes(o.exchange), 0);
        if (!rpc_ok(conn, "exchange.delete", msg, sizeof(msg)))
            goto fail;
    }
    ret = 0;
fail:
    if (ret != 0)
        fail_msg("%s", msg);
    if (conn != NULL) {
        if (ret == 0) {
            amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS);
            amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(conn);
    }
    free(c.settled);
    return ret;
}
