/* latency_consumer.c -- consumes hms-sync's events from one queue and measures, for every event,
 * the time from its commit (the event's "time" attribute, PostgreSQL's commit timestamp) to its
 * arrival here (this process's wall clock; the benchmark runs both on one machine, so the two
 * clocks are the same clock).
 *
 *   hms_latency_consumer --url URL (--queue NAME | --exchange NAME --binding KEY) [--count N]
 *                        [--idle SECONDS] [--wait SECONDS] [--samples FILE]
 *
 * With --exchange and --binding it consumes from a queue of its own, bound to that exchange with
 * that key, which the broker removes when this process goes: a measurement of one kind of event
 * (incident.created.#, say) that no other traffic on the exchange queues in front of.
 *
 * It consumes without acknowledgements (the broker forgets a message once sent: the benchmark
 * measures the connector, not redelivery), says "ready" on stderr once the broker has accepted
 * the subscription, and stops after N events, or once no event has come for --idle seconds after
 * the first one, or when none has come within --wait seconds.  It prints one JSON line: counts,
 * p50/p90/p99/max/mean in milliseconds, the body bytes received, the time the first event came
 * (epoch seconds, "first_at"), and the medians of the first, third and last quarter (a lag
 * that keeps growing shows as a last quarter far above the third).  --samples writes one line per
 * event, "SECONDS_SINCE_FIRST LATENCY_MS", for the chart.  Exit codes: 0 done, 1 runtime
 * failure, 2 usage error. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#define CHANNEL 1
#define FRAME_MAX 131072

typedef struct {
    const char *url;
    const char *queue;
    const char *exchange;
    const char *binding;
    const char *samples;
    uint64_t count;
    double idle_s;
    double wait_s;
} opts_t;

static double now_real_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Finds "time":"YYYY-MM-DDTHH:MM:SS[.ffffff]Z" in an event body; seconds since the Unix epoch. */
static bool event_time(const char *body, size_t len, double *out)
{
    static const char key[] = "\"time\":\"";
    const char *p = memmem(body, len, key, sizeof key - 1);
    if (p == NULL)
        return false;
    p += sizeof key - 1;
    size_t rest = len - (size_t)(p - body);
    int y, mo, d, h, mi, s;
    if (rest < 20 || !digits(p, 4, &y) || !digits(p + 5, 2, &mo) || !digits(p + 8, 2, &d) ||
        !digits(p + 11, 2, &h) || !digits(p + 14, 2, &mi) || !digits(p + 17, 2, &s))
        return false;
    double frac = 0, scale = 0.1;
    for (size_t i = 20; p[19] == '.' && i < rest && p[i] >= '0' && p[i] <= '9'; i++) {
        frac += (p[i] - '0') * scale;
        scale /= 10;
    }
    *out = (double)(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) + frac;
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static double median_of(const double *v, size_t n)
{
    double *c = malloc((n ? n : 1) * sizeof *c);
    if (c == NULL)
        return 0;
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    double m = pct(c, n, 50);
    free(c);
    return m;
}

static bool rpc_ok(amqp_connection_state_t conn, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    fprintf(stderr, "hms_latency_consumer: %s failed (reply type %d, %s)\n", what, r.reply_type,
            r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error)
                                                            : "server error");
    return false;
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"queue", required_argument, NULL, 'q'},
        {"exchange", required_argument, NULL, 'e'},
        {"binding", required_argument, NULL, 'b'},
        {"count", required_argument, NULL, 'c'},
        {"idle", required_argument, NULL, 'i'},
        {"wait", required_argument, NULL, 'w'},
        {"samples", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    *o = (opts_t){.url = "amqp://guest:guest@127.0.0.1:5672/", .idle_s = 5, .wait_s = 60};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        errno = 0;
        switch (c) {
        case 'u': o->url = optarg; break;
        case 'q': o->queue = optarg; break;
        case 'e': o->exchange = optarg; break;
        case 'b': o->binding = optarg; break;
        case 's': o->samples = optarg; break;
        case 'c':
            o->count = strtoull(optarg, &end, 10);
            if (errno || *end || end == optarg)
                goto bad;
            break;
        case 'i':
        case 'w': {
            double v = strtod(optarg, &end);
            if (errno || *end || end == optarg || v <= 0)
                goto bad;
            *(c == 'i' ? &o->idle_s : &o->wait_s) = v;
            break;
        }
        default: goto bad;
        }
    }
    if ((o->queue == NULL) == (o->exchange == NULL) ||
        (o->exchange == NULL) != (o->binding == NULL) || optind != argc)
        goto bad;
    return 0;
bad:
    fprintf(stderr, "usage: hms_latency_consumer --url URL (--queue NAME | --exchange NAME "
                    "--binding KEY) [--count N] [--idle SECONDS] [--wait SECONDS] "
                    "[--samples FILE]\n");
    return 2;
}

int main(int argc, char **argv)
{
    opts_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc;

    char *url = strdup(o.url);
    struct amqp_connection_info ci;
    if (url == NULL || amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
        fprintf(stderr, "hms_latency_consumer: --url: cannot parse '%s'\n", o.url);
        free(url);
        return 2;
    }
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    size_t cap = 1u << 16, n = 0;
    double *lat = malloc(cap * sizeof *lat), *at = malloc(cap * sizeof *at);
    uint64_t unparsed = 0, bytes = 0;
    amqp_bytes_t queue = amqp_empty_bytes;
    bool own_queue = false;
    rc = 1;
    if (sock == NULL || lat == NULL || at == NULL ||
        amqp_socket_open(sock, ci.host, ci.port) != AMQP_STATUS_OK) {
        fprintf(stderr, "hms_latency_consumer: cannot connect to %s:%d\n", ci.host, ci.port);
        goto out;
    }
    /* amqp_parse_url gives "" for a URL ending in "/"; RabbitMQ's default vhost is "/". */
    amqp_rpc_reply_t lr = amqp_login(conn, ci.vhost[0] != '\0' ? ci.vhost : "/", 0, FRAME_MAX, 0,
                                     AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    if (lr.reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "hms_latency_consumer: login to %s:%d failed (%s)\n", ci.host, ci.port,
                lr.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                    ? amqp_error_string2(lr.library_error)
                    : "refused by the server");
        goto out;
    }
    amqp_channel_open(conn, CHANNEL);
    if (!rpc_ok(conn, "channel.open"))
        goto out;
    if (o.queue != NULL)
        queue = amqp_cstring_bytes(o.queue);
    if (o.exchange != NULL) {
        /* Server-named, exclusive, auto-delete: nothing to clean up, even after a crash. */
        amqp_queue_declare_ok_t *ok =
            amqp_queue_declare(conn, CHANNEL, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
        if (!rpc_ok(conn, "queue.declare") || ok == NULL)
            goto out;
        queue = amqp_bytes_malloc_dup(ok->queue);
        own_queue = true;
        amqp_queue_bind(conn, CHANNEL, queue, amqp_cstring_bytes(o.exchange),
                        amqp_cstring_bytes(o.binding), amqp_empty_table);
        if (!rpc_ok(conn, "queue.bind"))
            goto out;
    }
    amqp_basic_consume(conn, CHANNEL, queue, amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
    if (!rpc_ok(conn, "basic.consume"))
        goto out;
    fprintf(stderr, "ready\n");

    double start = now_real_s(), first = 0, last = 0;
    for (;;) {
        double now = now_real_s();
        double limit = n == 0 ? start + o.wait_s : last + o.idle_s;
        if (now >= limit)
            break;
        struct timeval tv = {
            .tv_sec = (time_t)(limit - now),
            .tv_usec = (suseconds_t)((limit - now - (double)(time_t)(limit - now)) * 1e6)};
        amqp_envelope_t env;
        amqp_maybe_release_buffers(conn);
        amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            fprintf(stderr, "hms_latency_consumer: consuming failed (reply type %d, %s)\n",
                    r.reply_type,
                    r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                        ? amqp_error_string2(r.library_error)
                        : "server error");
            goto out;
        }
        double recv = now_real_s(), t;
        if (event_time(env.message.body.bytes, env.message.body.len, &t)) {
            if (n == cap) {
                cap *= 2;
                double *l2 = realloc(lat, cap * sizeof *lat);
                if (l2 != NULL)
                    lat = l2;
                double *a2 = realloc(at, cap * sizeof *at);
                if (a2 != NULL)
                    at = a2;
                if (l2 == NULL || a2 == NULL) {
                    fprintf(stderr, "hms_latency_consumer: out of memory\n");
                    amqp_destroy_envelope(&env);
                    goto out;
                }
            }
            if (n == 0)
                first = recv;
            lat[n] = (recv - t) * 1000.0;
            at[n] = recv - first;
            n++;
        } else {
            unparsed++;
        }
        bytes += env.message.body.len;
        last = recv;
        amqp_destroy_envelope(&env);
        if (o.count > 0 && n + unparsed >= o.count)
            break;
    }

    if (o.samples != NULL) {
        FILE *f = fopen(o.samples, "w");
        if (f == NULL) {
            fprintf(stderr, "hms_latency_consumer: cannot write %s: %s\n", o.samples,
                    strerror(errno));
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%.6f %.3f\n", at[i], lat[i]);
        fclose(f);
    }
    size_t q = n / 4;
    double q_first = median_of(lat, q), q_last = median_of(lat + n - q, q);
    double q_third = median_of(lat + n - 2 * q, q);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += lat[i];
    qsort(lat, n, sizeof *lat, cmp_double);
    printf("{\"received\":%zu,\"unparsed\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"first_at\":%.6f,\"seconds\":%.3f,\"p50_ms\":%.3f,"
           "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"min_ms\":%.3f,\"mean_ms\":%.3f,"
           "\"first_quarter_p50_ms\":%.3f,\"third_quarter_p50_ms\":%.3f,\"last_quarter_p50_ms\":%."
           "3f}\n",
           n, unparsed, bytes, first, n ? last - first : 0.0, pct(lat, n, 50), pct(lat, n, 90),
           pct(lat, n, 99), n ? lat[n - 1] : 0.0, n ? lat[0] : 0.0, n ? sum / (double)n : 0.0,
           q_first, q_third, q_last);
    rc = 0;
out:
    if (own_queue)
        amqp_bytes_free(queue);
    amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    free(lat);
    free(at);
    free(url);
    return rc;
}
