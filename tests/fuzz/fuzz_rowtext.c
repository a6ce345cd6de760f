/* fuzz_rowtext.c -- libFuzzer harness for the composite-row text reader
 * (src/core/rowtext.h), which reads the old rows hms-sync's trigger logs.
 *
 * Built by tests/fuzz/CMakeLists.txt (-DHMS_FUZZ=ON, CC=clang); run by
 * scripts/fuzz.sh.  Oracles: a refusal says so on one line; a row that
 * parses, written again the way record_out writes it (every value quoted,
 * NULL as nothing), parses to the same values.  Seeds
 * (tests/fuzz/corpus/rowtext/) are rows PostgreSQL printed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/rowtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void requote(const hms_pgo_tuple_t *t, hms_buf_t *out)
{
    hms_buf_reset(out);
    hms_buf_append_char(out, '(');
    for (uint16_t i = 0; i < t->ncols; i++) {
        if (i > 0)
            hms_buf_append_char(out, ',');
        if (t->values[i].kind == HMS_PGO_VAL_NULL)
            continue;
        hms_buf_append_char(out, '"');
        for (uint32_t k = 0; k < t->values[i].len; k++) {
            char ch = t->values[i].data[k];
            if (ch == '"' || ch == '\\')
                hms_buf_append_char(out, ch);
            hms_buf_append_char(out, ch);
        }
        hms_buf_append_char(out, '"');
    }
    hms_buf_append_char(out, ')');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hms_rowtext_t a, b;
    static hms_buf_t again;
    hms_pgo_tuple_t t1, t2;
    hms_err_t err;
    if (hms_rowtext_parse(&a, (const char *)data, size, &t1, &err) != HMS_OK) {
        if (strchr(err.msg, '\n') != NULL)
            abort();
        return 0;
    }
    requote(&t1, &again);
    if (hms_rowtext_parse(&b, again.data, again.len, &t2, &err) != HMS_OK || t2.ncols != t1.ncols)
        abort();
    for (uint16_t i = 0; i < t1.ncols; i++) {
        const hms_pgo_value_t *x = &t1.values[i], *y = &t2.values[i];
        if (x->kind != y->kind || x->len != y->len ||
            (x->len > 0 && memcmp(x->data, y->data, x->len) != 0))
            abort();
    }
    return 0;
}
