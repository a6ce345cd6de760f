/* publisher.c -- RabbitMQ publishing with confirms over rabbitmq-c 0.11. */
#include "daemon/publisher.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/amqpframe.h"
#include "core/amqpnodes.h"
#include "core/buf.h"
#include "common/amqp_tls.h"
#include "common/log.h"

#define HMS_PUB_FRAME_MAX 131072
/* How long one write may wait for the kernel to take it without a single
 * byte moving before the connection is taken for dead (heartbeats off). */
#define SEND_STALL_MS 30000

/* Reading a basic.return takes three frames: the method, the content header
 * (which carries message_id) and the body frames, which we skip. */
typedef enum { RET_NONE, RET_HEADER, RET_BODY } ret_state_t;

/* Why publishes are framed here on plain TCP: rabbitmq-c's
 * amqp_basic_publish writes every message with three send() calls (method,
 * header, body), and on a virtual machine each system call costs more than
 * encoding the event did.  Over TCP the frames of a whole batch are encoded
 * into `out` by core/amqpframe.h (the arguments and properties with
 * rabbitmq-c's own encoders) and written with one send() by
 * hms_pub_flush().  TLS connections keep amqp_basic_publish: rabbitmq-c
 * offers no way to write raw bytes through its TLS socket.
 *
 * rabbitmq-c writes on its own socket too (heartbeats, channel.close-ok), so
 * `out` is always empty before control passes to it: hms_pub_poll() and
 * hms_pub_close() flush first. */
struct hms_pub {
    amqp_connection_state_t conn;
    char *exchange;
    char *rejected; /* exchange + HMS_PUB_REJECTED_SUFFIX */
    char *events;   /* where emitted events go */
    /* Why the events exchange could not be declared on this connection
     * ("" when it was): emitted events then cannot be published. */
    char events_refused[HMS_ERR_MSG_MAX];
    char target[300];
    int node;         /* index of the node in the URL list */
    uint16_t channel; /* the confirm channel; a new number on each reopen */
    int fd;
    int sndbuf;
    unsigned publishes_since_sndbuf;
    bool framed;     /* plain TCP: publishes are batched in out */
    hms_buf_t out;   /* encoded frames not yet written */
    size_t room;     /* payload bytes the send queue still takes; valid if room_known */
    bool room_known; /* room was read from the kernel since the last write */
    bool sock_empty; /* the send queue was empty when room was read */
    size_t frame_max;
    int stall_ms;
    uint64_t next_tag;
    bool blocked;
    ret_state_t ret;
    uint64_t ret_body_left;
    int ret_code;
    char ret_text[160];
    char ret_msgid[64];
};

hms_status_t hms_pub_check_url(const char *url, hms_err_t *err)
{
    struct amqp_connection_info info;
    char why[160];
    if (url == NULL || url[0] == '\0')
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "amqp: no RabbitMQ URL given (set --amqp or HMS_SYNC_AMQP)");
    if (!hms_amqp_nodes_check(url, why, sizeof(why)))
        return hms_err_set(err, HMS_ERR_CONFIG, "amqp: the URL list %s", why);
    size_t n = hms_amqp_nodes_count(url), len;
    const char *node;
    for (size_t i = 0; hms_amqp_nodes_get(url, i, &node, &len); i++) {
        if (strncmp(node, "amqp://", 7) != 0 && strncmp(node, "amqps://", 8) != 0)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "amqp: URL %zu of %zu must start with amqp:// or amqps://", i + 1,
                               n);
        char *copy = strndup(node, len);
        if (copy == NULL)
            return hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory");
        int rc = amqp_parse_url(copy, &info);
        explicit_bzero(copy, len);
        free(copy);
        if (rc != AMQP_STATUS_OK)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "amqp: URL %zu of %zu is malformed (expected "
                               "amqp[s]://user:password@host:port/vhost)",
                               i + 1, n);
    }
    return HMS_OK;
}

static void client_properties(amqp_table_t *props, amqp_table_entry_t *entries,
                              amqp_table_entry_t *caps)
{
    caps[0].key = amqp_cstring_bytes("connection.blocked");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    caps[1].key = amqp_cstring_bytes("authentication_failure_close");
    caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[1].value.value.boolean = 1;
    caps[2].key = amqp_cstring_bytes("publisher_confirms");
    caps[2].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[2].value.value.boolean = 1;
    entries[0].key = amqp_cstring_bytes("capabilities");
    entries[0].value.kind = AMQP_FIELD_KIND_TABLE;
    entries[0].value.value.table.num_entries = 3;
    entries[0].value.value.table.entries = caps;
    entries[1].key = amqp_cstring_bytes("product");
    entries[1].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[1].value.value.bytes = amqp_cstring_bytes("hms-sync");
    entries[2].key = amqp_cstring_bytes("version");
    entries[2].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[2].value.value.bytes = amqp_cstring_bytes(HMS_VERSION);
    entries[3].key = amqp_cstring_bytes("connection_name");
    entries[3].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[3].value.value.bytes = amqp_cstring_bytes("hms-sync publisher");
    props->num_entries = 4;
    props->entries = entries;
}

/* Whether r is the broker refusing one request by closing the channel;
 * the connection lives on. */
static bool channel_closed(amqp_rpc_reply_t r)
{
    return r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
           r.reply.id == AMQP_CHANNEL_CLOSE_METHOD;
}

/* Declares a durable exchange of type with args on the channel; the
 * message says what conflicts when the broker refuses.  *closed (may be
 * NULL) tells whether the refusal closed only the channel. */
static hms_status_t declare_with(hms_pub_t *p, const char *name, const char *type,
                                 amqp_table_t args, bool *closed, hms_err_t *err)
{
    char why[256];
    amqp_exchange_declare(p->conn, p->channel, amqp_cstring_bytes(name), amqp_cstring_bytes(type),
                          0, 1, 0, 0, args);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(p->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return HMS_OK;
    if (closed != NULL)
        *closed = channel_closed(r);
    hms_amqp_reply_text(r, why, sizeof(why));
    return hms_err_set(err, HMS_ERR_AMQP,
                       "amqp: cannot declare exchange %s (%s, durable%s) on %s: %s (an existing "
                       "exchange of another type, durability or arguments conflicts; the user "
                       "needs configure permission on it)",
                       name, type, args.num_entries > 0 ? ", with an alternate exchange" : "",
                       p->target, why);
}

static hms_status_t declare(hms_pub_t *p, const char *name, const char *type, hms_err_t *err)
{
    return declare_with(p, name, type, amqp_empty_table, NULL, err);
}

/* The events exchange, and where it puts an event of a type no queue is
 * bound for: its alternate exchange <name>.unrouted (fanout) and a durable
 * quorum queue of that name.  An application may emit a type before its
 * first subscriber exists; the event waits there instead of being returned
 * and holding every later change back. */
static hms_status_t declare_events(hms_pub_t *p, const char *name, bool *closed, hms_err_t *err)
{
    char unrouted[256 + sizeof(HMS_PUB_UNROUTED_SUFFIX)], why[256];
    snprintf(unrouted, sizeof(unrouted), "%s%s", name, HMS_PUB_UNROUTED_SUFFIX);
    hms_status_t st = declare_with(p, unrouted, "fanout", amqp_empty_table, closed, err);
    if (st != HMS_OK)
        return st;
    amqp_table_entry_t qtype = {
        .key = amqp_cstring_bytes("x-queue-type"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum")}};
    amqp_queue_declare(p->conn, p->channel, amqp_cstring_bytes(unrouted), 0, 1, 0, 0,
                       (amqp_table_t){1, &qtype});
    amqp_rpc_reply_t r = amqp_get_rpc_reply(p->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_queue_bind(p->conn, p->channel, amqp_cstring_bytes(unrouted),
                        amqp_cstring_bytes(unrouted), amqp_empty_bytes, amqp_empty_table);
        r = amqp_get_rpc_reply(p->conn);
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        *closed = channel_closed(r);
        hms_amqp_reply_text(r, why, sizeof(why));
        return hms_err_set(err, HMS_ERR_AMQP,
                           "amqp: cannot declare queue %s (quorum, durable) and bind it to "
                           "exchange %s on %s: %s (the user needs configure and write "
                           "permission on it)",
                           unrouted, unrouted, p->target, why);
    }
    amqp_table_entry_t ae = {
        .key = amqp_cstring_bytes("alternate-exchange"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(unrouted)}};
    return declare_with(p, name, "topic", (amqp_table_t){1, &ae}, closed, err);
}

/* Opens channel number ch and puts it in confirm mode. */
static hms_status_t open_channel(hms_pub_t *p, uint16_t ch, hms_err_t *err)
{
    char why[300];
    amqp_channel_open(p->conn, ch);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(p->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_confirm_select(p->conn, ch);
        r = amqp_get_rpc_reply(p->conn);
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        hms_amqp_reply_text(r, why, sizeof(why));
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot open a confirm channel on %s: %s",
                           p->target, why);
    }
    p->channel = ch;
    p->next_tag = 1;
    p->ret = RET_NONE;
    return HMS_OK;
}

/* Declares the events exchange, or notes why it cannot be.  A deployment
 * that does not use hms_sync.emit need not grant its user anything on
 * that exchange: the changes stream on without it, and only an emitted
 * event stops the stream before it (hms_pub_publish), saying why; every
 * reconnect tries again.  Anything but a refusal of the channel fails. */
static hms_status_t declare_events_or_note(hms_pub_t *p, hms_err_t *err)
{
    bool closed = false;
    p->events_refused[0] = '\0';
    hms_status_t st = declare_events(p, p->events, &closed, err);
    if (st == HMS_OK || !closed)
        return st;
    snprintf(p->events_refused, sizeof(p->events_refused), "%s", err->msg);
    hms_log(HMS_LOG_WARN,
            "the events exchange cannot be declared: changes stream on, but the first emitted "
            "event (hms_sync.emit) will stop the stream before it until it can",
            "events_exchange", p->events, "reason", p->events_refused, NULL);
    amqp_channel_close_ok_t ok = {0};
    amqp_send_method(p->conn, p->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    return open_channel(p, (uint16_t)(p->channel + 1), err);
}

hms_status_t hms_pub_connect(const hms_pub_opts_t *opts, int first_node, hms_pub_t **out,
                             hms_err_t *err)
{
    char why[300];
    hms_status_t st = hms_pub_check_url(opts->url, err);
    if (st != HMS_OK)
        return st;
    hms_pub_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory");
        goto fail;
    }
    p->exchange = strdup(opts->exchange);
    p->events = strdup(opts->events_exchange != NULL ? opts->events_exchange : "hms.events");
    size_t rlen = strlen(opts->exchange) + sizeof(HMS_PUB_REJECTED_SUFFIX);
    if (p->exchange != NULL && (p->rejected = malloc(rlen)) != NULL)
        snprintf(p->rejected, rlen, "%s%s", opts->exchange, HMS_PUB_REJECTED_SUFFIX);
    if (p->exchange == NULL || p->rejected == NULL || p->events == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory");
        goto fail;
    }
    amqp_table_t props;
    amqp_table_entry_t entries[4], caps[3];
    client_properties(&props, entries, caps);
    hms_amqp_tls_opts_t co = {.url = opts->url,
                              .first_node = first_node,
                              .tls = opts->tls,
                              .heartbeat_s = opts->heartbeat_s,
                              .frame_max = HMS_PUB_FRAME_MAX,
                              .connect_timeout_ms = opts->connect_timeout_ms,
                              .client_properties = &props};
    st = hms_amqp_tls_connect(&co, &p->conn, p->target, sizeof(p->target), &p->node, err);
    if (st != HMS_OK || (st = open_channel(p, 1, err)) != HMS_OK)
        goto fail;
    if ((st = declare(p, opts->exchange, "topic", err)) != HMS_OK ||
        (st = declare(p, p->rejected, "fanout", err)) != HMS_OK ||
        (st = declare_events_or_note(p, err)) != HMS_OK)
        goto fail;
    if (opts->fanout_exchange != NULL) {
        /* Every event the topic exchange routes also reaches the fanout
         * exchange, unchanged, for clients that bind to it with ''. */
        if ((st = declare(p, opts->fanout_exchange, "fanout", err)) != HMS_OK)
            goto fail;
        amqp_exchange_bind(p->conn, p->channel, amqp_cstring_bytes(opts->fanout_exchange),
                           amqp_cstring_bytes(opts->exchange), amqp_cstring_bytes("#"),
                           amqp_empty_table);
        amqp_rpc_reply_t r = amqp_get_rpc_reply(p->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            hms_amqp_reply_text(r, why, sizeof(why));
            st = hms_err_set(err, HMS_ERR_AMQP,
                             "amqp: cannot bind exchange %s to %s on %s: %s (the user needs "
                             "write permission on %s and read permission on %s)",
                             opts->fanout_exchange, opts->exchange, p->target, why,
                             opts->fanout_exchange, opts->exchange);
            goto fail;
        }
    }
    p->fd = amqp_get_sockfd(p->conn);
    socklen_t sl = sizeof(p->sndbuf);
    if (getsockopt(p->fd, SOL_SOCKET, SO_SNDBUF, &p->sndbuf, &sl) != 0)
        p->sndbuf = 65536;
    p->framed = strncmp(opts->url, "amqps://", 8) != 0;
    /* Every peer takes frames of AMQP's minimum size: 0 (no limit) and
     * anything smaller become that. */
    int fmax = amqp_get_frame_max(p->conn);
    p->frame_max = fmax > HMS_AMQPFRAME_MIN ? (size_t)fmax : HMS_AMQPFRAME_MIN;
    p->stall_ms = opts->heartbeat_s > 0 ? opts->heartbeat_s * 1000 : SEND_STALL_MS;
    *out = p;
    return HMS_OK;
fail:
    hms_pub_close(p);
    return st;
}

void hms_pub_close(hms_pub_t *p)
{
    if (p == NULL)
        return;
    if (p->conn != NULL) {
        /* A polite close needs a live peer; never wait long for it. */
        struct timeval tv = {1, 0};
        amqp_set_rpc_timeout(p->conn, &tv);
        /* A close frame after half-written frames would be garbage. */
        if (p->fd > 0 && p->out.len == 0)
            amqp_connection_close(p->conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(p->conn);
    }
    hms_buf_free(&p->out);
    free(p->exchange);
    free(p->rejected);
    free(p->events);
    free(p);
}

int hms_pub_fd(const hms_pub_t *p)
{
    return p->fd;
}

bool hms_pub_pending_input(const hms_pub_t *p)
{
    return amqp_data_in_buffer(p->conn) || amqp_frames_enqueued(p->conn);
}

bool hms_pub_blocked(const hms_pub_t *p)
{
    return p->blocked;
}

/* Reads the send queue's fill once per batch: one ioctl per write rather
 * than per message. */
static void read_room(hms_pub_t *p)
{
    int queued = 0;
    p->room_known = true;
    if (ioctl(p->fd, SIOCOUTQ, &queued) != 0 || queued < 0) {
        /* Cannot tell: one message at a time, written blocking. */
        p->room = 0;
        p->sock_empty = true;
        return;
    }
    /* SO_SNDBUF counts kernel overhead too; half of it is a safe budget for
     * payload bytes. */
    size_t budget = (size_t)p->sndbuf / 2;
    p->room = (size_t)queued < budget ? budget - (size_t)queued : 0;
    p->sock_empty = queued == 0;
}

bool hms_pub_writable(hms_pub_t *p, size_t len)
{
    if (p->blocked)
        return false;
    if (!p->room_known)
        read_room(p);
    if (len + HMS_AMQPFRAME_PUBLISH_MAX <= p->room)
        return true;
    /* An event larger than the budget goes alone onto an empty socket. */
    return p->sock_empty && p->out.len == 0;
}

static void consume_room(hms_pub_t *p, size_t n)
{
    p->room = n < p->room ? p->room - n : 0;
    p->sock_empty = false;
}

const char *hms_pub_target(const hms_pub_t *p)
{
    return p->target;
}

/* Appends basic.publish, its content header and body frames to p->out. */
static hms_status_t frame_publish(hms_pub_t *p, const amqp_basic_publish_t *m,
                                  const amqp_basic_properties_t *props, amqp_bytes_t body,
                                  hms_err_t *err)
{
    size_t before = p->out.len;
    hms_status_t st = hms_amqpframe_publish(&p->out, p->channel, p->frame_max, m, props, body, err);
    if (st == HMS_OK)
        consume_room(p, p->out.len - before);
    return st;
}

hms_status_t hms_pub_flush(hms_pub_t *p, hms_err_t *err)
{
    size_t off = 0;
    while (off < p->out.len) {
        ssize_t n = send(p->fd, p->out.data + off, p->out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return hms_err_set(err, HMS_ERR_AMQP, "amqp: write to %s failed: %s", p->target,
                               strerror(errno));
        /* The kernel took less than hms_pub_writable() promised: wait, as
         * rabbitmq-c's own write would, but not forever. */
        struct pollfd pfd = {p->fd, POLLOUT, 0};
        int rc = poll(&pfd, 1, p->stall_ms);
        if (rc == 0)
            return hms_err_set(err, HMS_ERR_AMQP,
                               "amqp: write to %s stalled for %d ms with %zu bytes unsent",
                               p->target, p->stall_ms, p->out.len - off);
        if (rc < 0 && errno != EINTR)
            return hms_err_set(err, HMS_ERR_AMQP, "amqp: poll on %s failed: %s", p->target,
                               strerror(errno));
    }
    hms_buf_reset(&p->out);
    p->room_known = false;
    return HMS_OK;
}

hms_status_t hms_pub_publish(hms_pub_t *p, const hms_event_t *ev, uint64_t *tag, hms_err_t *err)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                   AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                   AMQP_BASIC_APP_ID_FLAG;
    props.content_type = amqp_cstring_bytes("application/cloudevents+json");
    props.delivery_mode = 2;
    props.message_id = amqp_cstring_bytes(ev->id);
    props.type = amqp_cstring_bytes(ev->type);
    props.timestamp = (uint64_t)ev->time_unix;
    props.app_id = amqp_cstring_bytes("hms-sync");
    amqp_bytes_t rk = {ev->routing_key.len, ev->routing_key.data};
    amqp_bytes_t body = {ev->body.len, ev->body.data};
    if (ev->emitted && p->events_refused[0] != '\0')
        return hms_err_set(err, HMS_ERR_AMQP,
                           "amqp: cannot publish emitted event %s: %s; the slot stays before it, "
                           "so nothing is lost: give the user configure, write and read "
                           "permission on %s and %s%s",
                           ev->id, p->events_refused, p->events, p->events,
                           HMS_PUB_UNROUTED_SUFFIX);
    /* An event for one queue goes through the default exchange, which
     * routes by queue name (mandatory: a missing queue is returned). */
    const char *exchange = ev->emitted ? p->events : p->exchange;
    if (ev->queue.len > 0) {
        exchange = "";
        rk = (amqp_bytes_t){ev->queue.len, ev->queue.data};
    }
    /* A rejected change goes to the fanout exchange beside the topic one,
     * not mandatory: it must never hold the stream back for want of a
     * queue (the log and the counter have it in any case). */
    amqp_table_entry_t hdr;
    int mandatory = 1;
    if (ev->reason.len > 0) {
        exchange = p->rejected;
        mandatory = 0;
        props._flags |= AMQP_BASIC_HEADERS_FLAG;
        props.content_type = amqp_cstring_bytes("application/json");
        hdr.key = amqp_cstring_bytes("x-reason");
        hdr.value.kind = AMQP_FIELD_KIND_UTF8;
        hdr.value.value.bytes = (amqp_bytes_t){ev->reason.len, ev->reason.data};
        props.headers = (amqp_table_t){1, &hdr};
    } else if (ev->subject.len > 0) {
        /* What a consistent-hash exchange hashes (hash-header = subject), so
         * that each incident's events stay on one partition, in order. */
        props._flags |= AMQP_BASIC_HEADERS_FLAG;
        hdr.key = amqp_cstring_bytes("subject");
        hdr.value.kind = AMQP_FIELD_KIND_UTF8;
        hdr.value.value.bytes = (amqp_bytes_t){ev->subject.len, ev->subject.data};
        props.headers = (amqp_table_t){1, &hdr};
    }
    if (p->framed) {
        amqp_basic_publish_t m = {.ticket = 0,
                                  .exchange = amqp_cstring_bytes(exchange),
                                  .routing_key = rk,
                                  .mandatory = mandatory,
                                  .immediate = 0};
        hms_status_t st = frame_publish(p, &m, &props, body, err);
        if (st != HMS_OK)
            return st;
    } else {
        int rc = amqp_basic_publish(p->conn, p->channel, amqp_cstring_bytes(exchange), rk,
                                    mandatory, 0, &props, body);
        if (rc != AMQP_STATUS_OK)
            return hms_err_set(err, HMS_ERR_AMQP, "amqp: publish to %s failed: %s", p->target,
                               amqp_error_string2(rc));
        p->room_known = false;
    }
    *tag = p->next_tag++;
    if (++p->publishes_since_sndbuf >= 256) {
        /* The kernel autotunes the send buffer; re-read it now and then. */
        socklen_t sl = sizeof(p->sndbuf);
        getsockopt(p->fd, SOL_SOCKET, SO_SNDBUF, &p->sndbuf, &sl);
        p->publishes_since_sndbuf = 0;
    }
    return HMS_OK;
}

static hms_status_t handle_method(hms_pub_t *p, amqp_frame_t *f, const hms_pub_handlers_t *h,
                                  void *ctx, hms_err_t *err)
{
    char text[200];
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = f->payload.method.decoded;
        h->on_ack(ctx, a->delivery_tag, a->multiple);
        return HMS_OK;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *n = f->payload.method.decoded;
        h->on_nack(ctx, n->delivery_tag, n->multiple);
        return HMS_OK;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *r = f->payload.method.decoded;
        p->ret = RET_HEADER;
        p->ret_code = r->reply_code;
        hms_amqp_bytes_str(r->reply_text, p->ret_text, sizeof(p->ret_text));
        return HMS_OK;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        amqp_connection_blocked_t *b = f->payload.method.decoded;
        hms_amqp_bytes_str(b->reason, text, sizeof(text));
        p->blocked = true;
        h->on_blocked(ctx, true, text);
        return HMS_OK;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        p->blocked = false;
        h->on_blocked(ctx, false, "");
        return HMS_OK;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *c = f->payload.method.decoded;
        hms_amqp_bytes_str(c->reply_text, text, sizeof(text));
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(p->conn, p->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        /* An event over the broker's max_message_size is refused the same
         * way on every retry: republishing it forever would hide the cause
         * and hold back every later event.  Stop and say what to change. */
        if (c->reply_code == AMQP_PRECONDITION_FAILED && strstr(text, "max size") != NULL)
            return hms_err_set(err, HMS_ERR_FATAL,
                               "amqp: broker %s refused an event as too large (%s); the slot "
                               "stays before it, so nothing is lost: set max_event_bytes to the "
                               "broker's max_message_size (rabbitmq.conf) and restart hms-sync",
                               p->target, text);
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: broker %s closed the channel: %u %s",
                           p->target, c->reply_code, text);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *c = f->payload.method.decoded;
        hms_amqp_bytes_str(c->reply_text, text, sizeof(text));
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(p->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: broker %s closed the connection: %u %s",
                           p->target, c->reply_code, text);
    }
    default:
        hms_log(HMS_LOG_DEBUG, "ignoring AMQP method", "method",
                amqp_method_name(f->payload.method.id), NULL);
        return HMS_OK;
    }
}

static void finish_return(hms_pub_t *p, const hms_pub_handlers_t *h, void *ctx)
{
    p->ret = RET_NONE;
    h->on_return(ctx, p->ret_msgid, p->ret_code, p->ret_text);
}

hms_status_t hms_pub_poll(hms_pub_t *p, const hms_pub_handlers_t *h, void *ctx, hms_err_t *err)
{
    /* rabbitmq-c may write a heartbeat in there: never after a partial batch. */
    if (p->out.len > 0 && hms_pub_flush(p, err) != HMS_OK)
        return HMS_ERR_AMQP;
    p->room_known = false; /* the kernel may have sent since it was read */
    for (;;) {
        amqp_frame_t f;
        struct timeval zero = {0, 0};
        int rc = amqp_simple_wait_frame_noblock(p->conn, &f, &zero);
        if (rc == AMQP_STATUS_TIMEOUT)
            return HMS_OK;
        if (rc != AMQP_STATUS_OK)
            return hms_err_set(err, HMS_ERR_AMQP, "amqp: connection to %s lost: %s", p->target,
                               amqp_error_string2(rc));
        hms_status_t st = HMS_OK;
        /* Frames of a channel closed by hms_pub_reopen_channel() that were
         * read while its close was awaited: their tags are not ours. */
        if (f.channel != 0 && f.channel != p->channel) {
            amqp_maybe_release_buffers_on_channel(p->conn, f.channel);
            continue;
        }
        switch (f.frame_type) {
        case AMQP_FRAME_METHOD: st = handle_method(p, &f, h, ctx, err); break;
        case AMQP_FRAME_HEADER:
            if (p->ret == RET_HEADER) {
                amqp_basic_properties_t *props = f.payload.properties.decoded;
                p->ret_msgid[0] = '\0';
                if (props != NULL && (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG))
                    hms_amqp_bytes_str(props->message_id, p->ret_msgid, sizeof(p->ret_msgid));
                p->ret_body_left = f.payload.properties.body_size;
                p->ret = RET_BODY;
                if (p->ret_body_left == 0)
                    finish_return(p, h, ctx);
            }
            break;
        case AMQP_FRAME_BODY:
            if (p->ret == RET_BODY) {
                size_t n = f.payload.body_fragment.len;
                p->ret_body_left = n >= p->ret_body_left ? 0 : p->ret_body_left - n;
                if (p->ret_body_left == 0)
                    finish_return(p, h, ctx);
            }
            break;
        default: break; /* heartbeats: rabbitmq-c already noted them */
        }
        /* Per channel: the connection-wide release waits for an idle
         * reader, which a busy stream never is, and the pools grow. */
        amqp_maybe_release_buffers_on_channel(p->conn, f.channel);
        if (st != HMS_OK)
            return st;
    }
}

hms_status_t hms_pub_reopen_channel(hms_pub_t *p, hms_err_t *err)
{
    char why[300];
    if (p->out.len > 0 && hms_pub_flush(p, err) != HMS_OK)
        return HMS_ERR_AMQP;
    amqp_rpc_reply_t r = amqp_channel_close(p->conn, p->channel, AMQP_REPLY_SUCCESS);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        hms_amqp_reply_text(r, why, sizeof(why));
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot close channel %u on %s: %s",
                           (unsigned)p->channel, p->target, why);
    }
    /* A new number, not the old one again: frames of the old channel that
     * rabbitmq-c queued while it waited for close-ok must never pass for
     * the new channel's. */
    int max = amqp_get_channel_max(p->conn);
    if (max <= 0 || max > 65535)
        max = 65535;
    uint16_t next = p->channel >= max ? 1 : (uint16_t)(p->channel + 1);
    return open_channel(p, next, err);
}

int hms_pub_node(const hms_pub_t *p)
{
    return p->node;
}
