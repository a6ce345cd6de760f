/* scrape.c -- a minimal HTTP/1.0 GET of a connector's /metrics. */
#include "daemon/scrape.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/buf.h"

static int dial(const char *listen, hms_err_t *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host)) {
        hms_err_set(err, HMS_ERR_CONFIG, "status: metrics: \"%s\" is not HOST:PORT", listen);
        return -1;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai != 0) {
        hms_err_set(err, HMS_ERR_IO, "status: metrics: cannot resolve %s: %s", host,
                    gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {3, 0};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        hms_err_set(err, HMS_ERR_IO, "status: cannot reach the connector's metrics at %s: %s",
                    listen, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

/* Adds "name{labels} value" lines of hms_sync_* samples to obj. */
static void parse_samples(const char *body, json_object *obj)
{
    for (const char *line = body; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n > 9 && strncmp(line, "hms_sync_", 9) == 0) {
            char buf[512];
            if (n >= sizeof(buf))
                n = sizeof(buf) - 1;
            memcpy(buf, line, n);
            buf[n] = '\0';
            char *sp = strrchr(buf, ' ');
            if (sp != NULL) {
                *sp = '\0';
                char *rest;
                double v = strtod(sp + 1, &rest);
                if (rest != sp + 1)
                    json_object_object_add(obj, buf, json_object_new_double(v));
            }
        }
        line = end ? end + 1 : NULL;
    }
}

json_object *hms_scrape_metrics(const char *listen, hms_err_t *err)
{
    int fd = dial(listen, err);
    if (fd < 0)
        return NULL;
    const char req[] = "GET /metrics HTTP/1.0\r\nHost: hms-sync\r\n\r\n";
    hms_buf_t b = HMS_BUF_INIT;
    json_object *obj = NULL;
    if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
        hms_err_set(err, HMS_ERR_IO, "status: metrics request to %s failed: %s", listen,
                    strerror(errno));
        goto done;
    }
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0 && b.len < (1u << 20))
        hms_buf_append(&b, chunk, (size_t)n);
    if (b.data == NULL || strncmp(b.data, "HTTP/1.", 7) != 0 || strstr(b.data, " 200 ") == NULL) {
        hms_err_set(err, HMS_ERR_IO, "status: %s did not answer /metrics with 200", listen);
        goto done;
    }
    const char *body = strstr(b.data, "\r\n\r\n");
    obj = json_object_new_object();
    parse_samples(body ? body + 4 : "", obj);
done:
    close(fd);
    hms_buf_free(&b);
    return obj;
}
