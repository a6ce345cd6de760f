/* validate_cost.c -- what checking every event against its schemas costs the connector: encodes
 * the same insert over and over, once without and once with the check `run` does before it
 * queues an event (hms_cval_check_outgoing: parse, envelope and data schema), in alternating
 * rounds, and prints one JSON line with nanoseconds per event for each and their ratio.
 *
 *   hms_validate_cost [--events N] [--rounds R] [--mode encode|validate]
 *
 * N and R default to 200000 and 5.  --mode runs one side only, encode alone or encode and the
 * check, and prints {"mode":...,"events":N,"rounds":R,"event_bytes":B,"ns":...}: under
 * callgrind, where each side is counted in a run of its own (bench/validate.sh).
 *
 * The row is a typical incident (an 800-byte event, as the drain benchmark's); each side's
 * figure is the median of its rounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/validate.h"
#include "core/event.h"

#define T(s) ((hms_pgo_value_t){HMS_PGO_VAL_TEXT, (uint32_t)strlen(s), (s)})

static hms_pgo_column_t cols[] = {
    {(char *)"id", 2950, -1, 1},         {(char *)"occurred_at", 1184, -1, 0},
    {(char *)"region", 25, -1, 0},       {(char *)"severity", 21, -1, 0},
    {(char *)"status", 25, -1, 0},       {(char *)"summary", 25, -1, 0},
    {(char *)"reported_by", 25, -1, 0},  {(char *)"version", 20, -1, 0},
    {(char *)"updated_at", 1184, -1, 0}, {(char *)"origin", 25, -1, 0},
};
static hms_pgo_relation_t rel = {16384, (char *)"public", (char *)"incidents", 'f', 10, cols, 1};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One round of n events; ns per event, or -1 when one fails. */
static double round_ns(hms_encoder_t *enc, hms_cval_t *val, const hms_pgo_msg_t *m, long n)
{
    hms_event_t ev;
    hms_err_t err;
    memset(&ev, 0, sizeof ev);
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        hms_txctx_t tx = {0x16B3748 + (uint64_t)i * 64, 1290, INT64_C(849017881791510), 0};
        bool parsed;
        if (hms_encoder_encode(enc, &tx, m, &ev, &err) != HMS_OK ||
            (val != NULL &&
             hms_cval_check_outgoing(val, ev.body.data, ev.body.len, &parsed, &err) != HMS_OK)) {
            fprintf(stderr, "hms_validate_cost: %s\n", err.msg);
            hms_event_free(&ev);
            return -1;
        }
    }
    double ns = (now_ns() - t0) / (double)n;
    hms_event_free(&ev);
    return ns;
}

int main(int argc, char **argv)
{
    long n = 200000;
    int rounds = 5;
    const char *mode = NULL; /* both sides, alternating */
    bool bad = argc % 2 == 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--events") == 0)
            n = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--mode") == 0)
            mode = argv[i + 1];
        else
            bad = true;
    }
    if (mode != NULL && strcmp(mode, "encode") != 0 && strcmp(mode, "validate") != 0)
        bad = true;
    if (bad || n <= 0 || rounds <= 0 || rounds > 99) {
        fprintf(stderr,
                "usage: hms_validate_cost [--events N] [--rounds R] [--mode encode|validate]\n");
        return 2;
    }
    hms_err_t err;
    hms_cval_t *val = hms_cval_new(&err);
    hms_encoder_t *enc = hms_encoder_new("7312345678901234567", "ehr", &hms_capture_incidents, 1);
    if (val == NULL || enc == NULL) {
        fprintf(stderr, "hms_validate_cost: %s\n", val == NULL ? err.msg : "out of memory");
        return 1;
    }
    char summary[600];
    memset(summary, 's', sizeof summary - 1);
    summary[sizeof summary - 1] = '\0';
    hms_pgo_value_t v[10] = {T("0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c"),
                             T("2026-11-26 14:18:01.79151+00"),
                             T("north"),
                             T("4"),
                             T("open"),
                             T(summary),
                             T("nurse.adams"),
                             T("3"),
                             T("2026-11-26 14:18:02.251934+00"),
                             T("hms-ehr")};
    hms_pgo_msg_t m;
    memset(&m, 0, sizeof m);
    m.kind = HMS_PGO_INSERT;
    m.u.change.rel = &rel;
    m.u.change.newtup = (hms_pgo_tuple_t){10, v};
    double enc_ns[99], chk_ns[99];
    size_t size = 0;
    {
        hms_event_t ev;
        hms_txctx_t tx = {0x16B3748, 1290, INT64_C(849017881791510), 0};
        memset(&ev, 0, sizeof ev);
        hms_encoder_encode(enc, &tx, &m, &ev, &err);
        size = ev.body.len;
        hms_event_free(&ev);
    }
    if (mode != NULL) {
        bool check = strcmp(mode, "validate") == 0;
        double *ns = check ? chk_ns : enc_ns;
        for (int r = 0; r < rounds; r++)
            if ((ns[r] = round_ns(enc, check ? val : NULL, &m, n)) < 0)
                return 1;
        qsort(ns, (size_t)rounds, sizeof(double), cmp);
        printf("{\"mode\":\"%s\",\"events\":%ld,\"rounds\":%d,\"event_bytes\":%zu,\"ns\":%.0f}\n",
               mode, n, rounds, size, ns[rounds / 2]);
        hms_encoder_free(enc);
        hms_cval_free(val);
        return 0;
    }
    for (int r = 0; r < rounds; r++) {
        /* Alternate which side goes first, so drift in the machine's load
         * does not favour one. */
        int first = r % 2;
        for (int k = 0; k < 2; k++) {
            bool check = (k == 0) == (first == 1);
            double ns = round_ns(enc, check ? val : NULL, &m, n);
            if (ns < 0)
                return 1;
            (check ? chk_ns : enc_ns)[r] = ns;
        }
    }
    qsort(enc_ns, (size_t)rounds, sizeof(double), cmp);
    qsort(chk_ns, (size_t)rounds, sizeof(double), cmp);
    double e = enc_ns[rounds / 2], c = chk_ns[rounds / 2];
    printf("{\"events\":%ld,\"rounds\":%d,\"event_bytes\":%zu,\"encode_ns\":%.0f,"
           "\"encode_validate_ns\":%.0f,\"validate_ns\":%.0f,\"ratio\":%.2f}\n",
           n, rounds, size, e, c, c - e, c / e);
    hms_encoder_free(enc);
    hms_cval_free(val);
    return 0;
}
