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
#include "core/hostport.h"

/* Connects to the first address of the host that answers, as a client of
 * "localhost" should when the connector listens on only one family. */
static int dial(const char *listen, hms_err_t *err)
{
    hms_hostport_t hp;
    char why[128];
    if (!hms_hostport_parse(listen, &hp, why, sizeof(why))) {
        hms_err_set(err, HMS_ERR_CONFIG, "status: metrics: \"%s\" is not HOST:PORT: %s", listen,
                    why);
        return -1;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int gai = getaddrinfo(hp.host, hp.service, &hints, &ai);
    if (gai != 0) {
        hms_err_set(err, HMS_ERR_IO, "status: metrics: cannot resolve %s: %s", hp.host,
                    gai_strerror(gai));
        return -1;
    }
    int fd = -1, last_errno = 0;
    for (const struct addrinfo *p = ai; p != NULL && fd < 0; p = p->ai_next) {
        fd = socket(p->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        struct timeval tv = {3, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, p->ai_addr, p->ai_addrlen) != 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        hms_err_set(err, HMS_ERR_IO, "status: cannot reach the connector's metrics at %s: %s",
                    listen, strerror(last_errno));
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
