/* http.c -- metrics and health over HTTP with libmicrohttpd. */
#include "daemon/http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hms_http {
    struct MHD_Daemon *daemon;
    pthread_mutex_t lock;
    hms_metrics_t snapshot;
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

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    hms_http_t *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n", 9);
    hms_metrics_t m;
    pthread_mutex_lock(&h->lock);
    m = h->snapshot;
    pthread_mutex_unlock(&h->lock);
    if (strcmp(url, "/metrics") == 0) {
        hms_buf_t b = HMS_BUF_INIT;
        hms_metrics_render(&m, HMS_VERSION, &b);
        enum MHD_Result ret = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                    b.data ? b.data : "", b.len);
        hms_buf_free(&b);
        return ret;
    }
    if (strcmp(url, "/healthz") == 0)
        return reply(c, MHD_HTTP_OK, "text/plain", "ok\n", 3);
    if (strcmp(url, "/readyz") == 0) {
        const char *why;
        char body[128];
        if (hms_metrics_ready(&m, &why))
            return reply(c, MHD_HTTP_OK, "text/plain", "ready\n", 6);
        int n = snprintf(body, sizeof(body), "not ready: %s\n", why);
        return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", body, (size_t)n);
    }
    return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", "not found: try /metrics\n", 24);
}

hms_status_t hms_http_start(const char *listen, hms_http_t **out, hms_err_t *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host))
        return hms_err_set(err, HMS_ERR_CONFIG, "metrics: \"%s\" is not HOST:PORT", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai != 0)
        return hms_err_set(err, HMS_ERR_CONFIG, "metrics: cannot resolve %s: %s", host,
                           gai_strerror(gai));
    hms_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        freeaddrinfo(ai);
        return hms_err_set(err, HMS_ERR_NOMEM, "metrics: out of memory");
    }
    pthread_mutex_init(&h->lock, NULL);
    struct sockaddr_in sa;
    memcpy(&sa, ai->ai_addr, sizeof(sa));
    freeaddrinfo(ai);
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, ntohs(sa.sin_port), NULL, NULL, handle,
        h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_END);
    if (h->daemon == NULL) {
        pthread_mutex_destroy(&h->lock);
        free(h);
        return hms_err_set(err, HMS_ERR_IO,
                           "metrics: cannot listen on %s (address in use or not local?)", listen);
    }
    *out = h;
    return HMS_OK;
}

void hms_http_stop(hms_http_t *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void hms_http_publish(hms_http_t *h, const hms_metrics_t *m)
{
    pthread_mutex_lock(&h->lock);
    h->snapshot = *m;
    pthread_mutex_unlock(&h->lock);
}
