/* decode_encode.c -- the connector's CPU path without any I/O: decodes captured pgoutput messages
 * (the .hex files under tests/data/pgoutput) and encodes every captured row change into its
 * CloudEvents body, in a loop, so that valgrind --tool=callgrind can count instructions per event,
 * a figure that does not move with the machine's load.
 *
 *   hms_decode_encode [--iterations N] FILE.hex...
 *
 * The files are first decoded once each, Relation messages included, as a session's start would;
 * every pass then replays their other messages, as the steady state of a session does (the
 * walsender describes a relation once per session, not once per transaction).  Prints one JSON
 * line:
 * iterations, messages decoded, events encoded, encode failures (some captures are failures by
 * design, e.g. an unchanged TOASTed value with no old row) and nanoseconds per event. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/event.h"
#include "core/pgoutput.h"
#include "core/status.h"

typedef struct {
    uint8_t *data;
    size_t len;
} msg_t;

typedef struct {
    msg_t *msgs;
    size_t n;
} stream_t;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads one message per non-comment line of hex; 0 on success. */
static int load(const char *path, stream_t *s)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "hms_decode_encode: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    while ((got = getline(&line, &cap, f)) > 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        if (got == 0 || line[0] == '#')
            continue;
        msg_t m = {.data = malloc((size_t)got / 2 + 1), .len = (size_t)got / 2};
        msg_t *grown = realloc(s->msgs, (s->n + 1) * sizeof *s->msgs);
        if (m.data == NULL || grown == NULL || got % 2 != 0) {
            fprintf(stderr, "hms_decode_encode: %s: bad line or out of memory\n", path);
            free(m.data);
            if (grown != NULL)
                s->msgs = grown;
            rc = -1;
            break;
        }
        s->msgs = grown;
        for (size_t i = 0; i < m.len; i++) {
            int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "hms_decode_encode: %s: not hex\n", path);
                free(m.data);
                rc = -1;
                goto done;
            }
            m.data[i] = (uint8_t)(hi << 4 | lo);
        }
        s->msgs[s->n++] = m;
    }
done:
    free(line);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    long iterations = 1000;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--iterations") == 0) {
        char *end;
        iterations = strtol(argv[2], &end, 10);
        if (*end || iterations < 1) {
            fprintf(stderr, "hms_decode_encode: --iterations wants a positive number\n");
            return 2;
        }
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: hms_decode_encode [--iterations N] FILE.hex...\n");
        return 2;
    }
    int nstreams = argc - first, rc = 1;
    stream_t *streams = calloc((size_t)nstreams, sizeof *streams);
    hms_pgo_decoder_t *dec = hms_pgo_decoder_new();
    hms_encoder_t *enc = hms_encoder_new("7000000000000000001", "bench", &hms_capture_incidents, 1);
    hms_event_t ev = {.body = HMS_BUF_INIT, .routing_key = HMS_BUF_INIT};
    if (streams == NULL || dec == NULL || enc == NULL) {
        fprintf(stderr, "hms_decode_encode: out of memory\n");
        goto out;
    }
    for (int i = 0; i < nstreams; i++)
        if (load(argv[first + i], &streams[i]) != 0)
            goto out;

    uint64_t messages = 0, events = 0, failures = 0, bytes = 0;
    struct timespec t0, t1;
    for (int s = 0; s < nstreams; s++) {
        for (size_t k = 0; k < streams[s].n; k++) {
            hms_pgo_msg_t m;
            hms_err_t err;
            (void)hms_pgo_decode(dec, streams[s].msgs[k].data, streams[s].msgs[k].len, &m, &err);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long it = 0; it < iterations; it++) {
        for (int s = 0; s < nstreams; s++) {
            hms_txctx_t tx = {0};
            for (size_t k = 0; k < streams[s].n; k++) {
                hms_pgo_msg_t m;
                hms_err_t err;
                if (streams[s].msgs[k].len > 0 && streams[s].msgs[k].data[0] == 'R')
                    continue; /* described once, above */
                messages++;
                if (hms_pgo_decode(dec, streams[s].msgs[k].data, streams[s].msgs[k].len, &m,
                                   &err) != HMS_OK)
                    continue; /* some captures decode to errors on purpose */
                switch (m.kind) {
                case HMS_PGO_BEGIN:
                    tx = (hms_txctx_t){.commit_lsn = m.u.begin.final_lsn,
                                       .xid = m.u.begin.xid,
                                       .commit_time = m.u.begin.commit_time};
                    break;
                case HMS_PGO_INSERT:
                case HMS_PGO_UPDATE:
                case HMS_PGO_DELETE:
                    if (hms_encoder_capture(enc, m.u.change.rel) != NULL) {
                        if (hms_encoder_encode(enc, &tx, &m, &ev, &err) == HMS_OK) {
                            events++;
                            bytes += ev.body.len;
                        } else {
                            failures++;
                        }
                    }
                    tx.ordinal++;
                    break;
                default: break;
                }
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("{\"iterations\":%ld,\"messages\":%llu,\"events\":%llu,\"encode_failures\":%llu,"
           "\"avg_body_bytes\":%.1f,\"ns_per_event\":%.1f}\n",
           iterations, (unsigned long long)messages, (unsigned long long)events,
           (unsigned long long)failures, events ? (double)bytes / (double)events : 0.0,
           events ? ns / (double)events : 0.0);
    rc = events > 0 ? 0 : 1;
out:
    for (int i = 0; streams != NULL && i < nstreams; i++) {
        for (size_t k = 0; k < streams[i].n; k++)
            free(streams[i].msgs[k].data);
        free(streams[i].msgs);
    }
    free(streams);
    hms_event_free(&ev);
    hms_encoder_free(enc);
    hms_pgo_decoder_free(dec);
    return rc;
}
