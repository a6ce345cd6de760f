/* http.c -- metrics and health over HTTP with libmicrohttpd. */
#include "daemon/http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/log.h"
#include "core/hostport.h"

/* A host name may resolve to an address of each family, and a few more. */
#define LISTEN_MAX 8

struct hms_http {
    struct MHD_Daemon *daemons[LISTEN_MAX]; /* one a listening address */
    int ndaemons;
    pthread_mutex_t lock;
    const hms_http_view_t *view;
    void *snapshot; /* view->size bytes */
    hms_trend_t trend;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* The status page or /status.json, rendered from copies of the snapshot
 * and the trend, so that the loop's publish never waits for a render. */
static enum MHD_Result status_reply(hms_http_t *h, struct MHD_Connection *c, bool page)
{
    void *m = malloc(h->view->size);
    hms_trend_t *t = malloc(sizeof(*t));
    enum MHD_Result ret;
    if (m == NULL || t == NULL) {
        ret = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "out of memory\n", 14);
        goto done;
    }
    pthread_mutex_lock(&h->lock);
    memcpy(m, h->snapshot, h->view->size);
    *t = h->trend;
    pthread_mutex_unlock(&h->lock);
    hms_buf_t b = HMS_BUF_INIT;
    hms_status_t st = page ? h->view->page(m, t, &b) : h->view->json(m, t, &b);
    if (st != HMS_OK)
        ret = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "out of memory\n", 14);
    else
        ret = reply(c, MHD_HTTP_OK, page ? "text/html; charset=utf-8" : "application/json",
                    b.data ? b.data : "", b.len);
    hms_buf_free(&b);
done:
    free(m);
    free(t);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    hms_http_t *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n", 9);
    if (strcmp(url, "/healthz") == 0)
        return reply(c, MHD_HTTP_OK, "text/plain", "ok\n", 3);
    bool metrics = strcmp(url, "/metrics") == 0;
    bool page = h->view->page != NULL && strcmp(url, "/") == 0;
    bool json = h->view->json != NULL && strcmp(url, "/status.json") == 0;
    if (page || json)
        return status_reply(h, c, page);
    if (!metrics && strcmp(url, "/readyz") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found: try /metrics\n", 24);
    void *m = malloc(h->view->size);
    if (m == NULL)
        return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "out of memory\n", 14);
    pthread_mutex_lock(&h->lock);
    memcpy(m, h->snapshot, h->view->size);
    pthread_mutex_unlock(&h->lock);
    enum MHD_Result ret;
    if (metrics) {
        hms_buf_t b = HMS_BUF_INIT;
        h->view->render(m, &b);
        ret = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                    b.data ? b.data : "", b.len);
        hms_buf_free(&b);
    } else {
        char why[400], body[420];
        if (h->view->ready(m, why, sizeof(why))) {
            ret = reply(c, MHD_HTTP_OK, "text/plain", "ready\n", 6);
        } else {
            snprintf(body, sizeof(body), "not ready: %s\n", why);
            ret = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", body, strlen(body));
        }
    }
    free(m);
    return ret;
}

/* Starts a libmicrohttpd daemon listening on ai's address alone. */
static struct MHD_Daemon *listen_on(hms_http_t *h, const struct addrinfo *ai, int port)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR,
                            ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_END);
}

/* True when an earlier entry of the list has the same address: a name
 * listed twice in /etc/hosts must not make the second bind fail. */
static bool seen_before(const struct addrinfo *list, const struct addrinfo *ai)
{
    for (const struct addrinfo *p = list; p != ai; p = p->ai_next)
        if (p->ai_addrlen == ai->ai_addrlen && memcmp(p->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0)
            return true;
    return false;
}

hms_status_t hms_http_start(const char *listen, const hms_http_view_t *view, hms_http_t **out,
                            hms_err_t *err)
{
    hms_hostport_t hp;
    char why[128], addr[NI_MAXHOST];
    struct addrinfo hints, *ai = NULL;
    hms_status_t st;
    if (!hms_hostport_parse(listen, &hp, why, sizeof(why)))
        return hms_err_set(err, HMS_ERR_CONFIG, "metrics: \"%s\" is not HOST:PORT: %s", listen,
                           why);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(hp.host, hp.service, &hints, &ai);
    if (gai != 0)
        return hms_err_set(err, HMS_ERR_CONFIG, "metrics: cannot resolve %s: %s", hp.host,
                           gai_strerror(gai));
    hms_http_t *h = calloc(1, sizeof(*h));
    if (h != NULL && (h->snapshot = calloc(1, view->size)) == NULL) {
        free(h);
        h = NULL;
    }
    if (h == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "metrics: out of memory");
        goto fail;
    }
    pthread_mutex_init(&h->lock, NULL);
    h->view = view;
    hms_trend_init(&h->trend, HMS_HTTP_TREND_EVERY_MS);
    /* Every address the host resolves to, as a name means the host: a
     * scraper of "localhost" may come over either family. */
    for (const struct addrinfo *p = ai; p != NULL && h->ndaemons < LISTEN_MAX; p = p->ai_next) {
        if ((p->ai_family != AF_INET && p->ai_family != AF_INET6) || seen_before(ai, p))
            continue;
        struct MHD_Daemon *d = listen_on(h, p, hp.port);
        if (d != NULL) {
            h->daemons[h->ndaemons++] = d;
            continue;
        }
        if (getnameinfo(p->ai_addr, p->ai_addrlen, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST))
            snprintf(addr, sizeof(addr), "?");
        hms_log(HMS_LOG_WARN, "metrics: cannot listen on one of the host's addresses", "listen",
                listen, "address", addr, NULL);
    }
    if (h->ndaemons == 0) {
        st = hms_err_set(err, HMS_ERR_IO,
                         "metrics: cannot listen on %s (address in use or not local?)", listen);
        goto fail;
    }
    freeaddrinfo(ai);
    *out = h;
    return HMS_OK;
fail:
    hms_http_stop(h);
    freeaddrinfo(ai);
    return st;
}

void hms_http_stop(hms_http_t *h)
{
    if (h == NULL)
        return;
    for (int i = 0; i < h->ndaemons; i++)
        MHD_stop_daemon(h->daemons[i]);
    pthread_mutex_destroy(&h->lock);
    free(h->snapshot);
    free(h);
}

void hms_http_publish(hms_http_t *h, const void *snap)
{
    double v[HMS_TREND_SERIES] = {0};
    if (h->view->sample != NULL)
        h->view->sample(snap, v);
    int64_t now = hms_clock_ms();
    pthread_mutex_lock(&h->lock);
    memcpy(h->snapshot, snap, h->view->size);
    if (h->view->sample != NULL)
        hms_trend_add(&h->trend, now, v);
    pthread_mutex_unlock(&h->lock);
}
