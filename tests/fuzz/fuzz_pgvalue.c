/* fuzz_pgvalue.c -- libFuzzer harness for the PostgreSQL value mapping
 * (src/core/pgvalue.h): the input is one column's text, converted once for
 * every type OID the map knows (scalars and their arrays) and a few it does
 * not.
 *
 * Built by tests/fuzz/CMakeLists.txt (-DHMS_FUZZ=ON, CC=clang); run by
 * scripts/fuzz.sh.  Oracles: a conversion that succeeds must have written
 * exactly one valid JSON value (checked with json-c's strict parser), a
 * failure names the type oid on one line, and the timestamp helper writes
 * exactly 27 characters when it succeeds.  Seeds (tests/fuzz/corpus/pgvalue/)
 * are the text forms the unit tests use. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/pgvalue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every OID pgvalue.c maps, its array types, and three it does not. */
static const uint32_t oids[] = {
    16,   20,   21,   23,   25,   26,   114,  700,  701,  1043, 1114,
    1184, 1700, 2950, 3802, 1000, 1005, 1007, 1016, 1028, 1009, 1015,
    1021, 1022, 1231, 1115, 1185, 2951, 199,  3807, 0,    19,   1082,
};

/* Deeper than any input (-max_len=8192), since pgvalue embeds json of any
 * depth; made once because json-c allocates the whole stack up front. */
#define JSON_DEPTH 10000
static struct json_tokener *tok;

static void check_json(const char *s, size_t n)
{
    /* A trailing space ends a bare number or literal, which json-c would
     * otherwise wait for more input to finish. */
    char *copy = malloc(n + 1);
    if (tok == NULL && (tok = json_tokener_new_ex(JSON_DEPTH)) != NULL)
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    if (copy == NULL || tok == NULL) {
        free(copy);
        return;
    }
    memcpy(copy, s, n);
    copy[n] = ' ';
    json_tokener_reset(tok);
    json_object *o = json_tokener_parse_ex(tok, copy, (int)(n + 1));
    enum json_tokener_error e = json_tokener_get_error(tok);
    json_object_put(o);
    size_t end = json_tokener_get_parse_end(tok);
    if (e != json_tokener_success || end < n || n == 0) {
        fprintf(stderr, "pgvalue wrote invalid JSON (%s at %zu): %.*s\n",
                json_tokener_error_desc(e), end, (int)n, s);
        __builtin_trap();
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    hms_pgvalue_scratch_t scratch = HMS_PGVALUE_SCRATCH_INIT;
    hms_buf_t out = HMS_BUF_INIT;
    for (size_t i = 0; i < sizeof oids / sizeof oids[0]; i++) {
        hms_err_t err = {{0}};
        hms_buf_reset(&out);
        hms_status_t st = hms_pgvalue_put_json(&out, oids[i], text, size, &scratch, &err);
        if (st == HMS_OK)
            check_json(out.data != NULL ? out.data : "", out.len);
        else if (st == HMS_ERR_NOMEM)
            break;
        else if (err.msg[0] == '\0' || strchr(err.msg, '\n') != NULL)
            __builtin_trap();
    }
    hms_buf_free(&out);
    hms_pgvalue_scratch_free(&scratch);

    char ts[HMS_PGVALUE_RFC3339_LEN + 1];
    if (hms_pgvalue_timestamp_rfc3339(text, size, ts) && strlen(ts) != HMS_PGVALUE_RFC3339_LEN)
        __builtin_trap();
    (void)hms_pgvalue_is_integer(text, size);
    if (size >= 8) {
        int64_t usec;
        memcpy(&usec, data, sizeof usec);
        if (hms_pgvalue_format_rfc3339(usec, ts) && strlen(ts) != HMS_PGVALUE_RFC3339_LEN)
            __builtin_trap();
    }
    return 0;
}
