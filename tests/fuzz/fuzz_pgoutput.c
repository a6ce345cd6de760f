/* fuzz_pgoutput.c -- libFuzzer harness for the pgoutput decoder.
 *
 * Built by tests/fuzz/CMakeLists.txt (-DHMS_FUZZ=ON, CC=clang) and run by
 * scripts/fuzz.sh [SECONDS], which copies the seeds to a scratch corpus.
 *
 * Input: a sequence of frames, each a 2-byte big-endian length and that many
 * bytes of one pgoutput message; a last frame shorter than its length is
 * decoded as what is left.  Sequences let the fuzzer reach cache replacement
 * and changes against relations it described itself.  Before the input, the
 * decoder learns the incidents table (as captured in tests/data/pgoutput/),
 * so a lone change message for that relation id reaches tuple decoding.
 * Seeds (tests/fuzz/corpus/pgoutput/) are the captured messages, framed,
 * one file per message and one per scenario; tests/data/capture-pgoutput.sh
 * --corpus regenerates them. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/pgoutput.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define COL(name, oid) "\x01" name "\0" oid "\xff\xff\xff\xff"

/* clang-format off */
static const char incidents_rel[] =
    "R" "\x00\x00\x40\x8f" "public\0" "incidents\0" "f" "\x00\x0a"
    COL("id", "\x00\x00\x0b\x86") COL("occurred_at", "\x00\x00\x04\xa0")
    COL("region", "\x00\x00\x00\x19") COL("severity", "\x00\x00\x00\x15")
    COL("status", "\x00\x00\x00\x19") COL("summary", "\x00\x00\x00\x19")
    COL("reported_by", "\x00\x00\x00\x19") COL("version", "\x00\x00\x00\x14")
    COL("updated_at", "\x00\x00\x04\xa0") COL("origin", "\x00\x00\x00\x19");
/* clang-format on */

/* Touches every byte a successful decode points at, so ASan checks that
 * borrowed pointers stay inside the input. */
static void consume(const hms_pgo_msg_t *m)
{
    volatile uint8_t sink = 0;
    const hms_pgo_tuple_t *tups[2] = {&m->u.change.oldtup, &m->u.change.newtup};
    switch (m->kind) {
    case HMS_PGO_INSERT:
    case HMS_PGO_UPDATE:
    case HMS_PGO_DELETE:
        for (int t = 0; t < 2; t++)
            for (uint16_t i = 0; i < tups[t]->ncols; i++)
                for (uint32_t k = 0; k < tups[t]->values[i].len; k++)
                    sink ^= (uint8_t)tups[t]->values[i].data[k];
        break;
    case HMS_PGO_MESSAGE:
        sink ^= (uint8_t)strlen(m->u.message.prefix);
        for (uint32_t k = 0; k < m->u.message.len; k++)
            sink ^= (uint8_t)m->u.message.content[k];
        break;
    case HMS_PGO_RELATION:
        for (uint16_t i = 0; i < m->u.relation.rel->ncols; i++)
            sink ^= (uint8_t)strlen(m->u.relation.rel->cols[i].name);
        break;
    case HMS_PGO_TRUNCATE:
        for (uint32_t i = 0; i < m->u.truncate.nrels; i++)
            sink ^= (uint8_t)m->u.truncate.relids[i];
        break;
    default: break;
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hms_pgo_decoder_t *d = hms_pgo_decoder_new();
    hms_pgo_msg_t m;
    hms_err_t err = {{0}};
    if (d == NULL)
        return 0;
    if (hms_pgo_decode(d, (const uint8_t *)incidents_rel, sizeof(incidents_rel) - 1, &m, &err) !=
        HMS_OK)
        __builtin_trap(); /* the fixed relation must always decode */

    size_t pos = 0;
    while (pos < size) {
        size_t n = size - pos >= 2 ? (size_t)data[pos] << 8 | data[pos + 1] : 0;
        pos += size - pos >= 2 ? 2 : size - pos;
        if (n > size - pos)
            n = size - pos;
        if (hms_pgo_decode(d, data + pos, n, &m, &err) == HMS_OK)
            consume(&m);
        else if (err.msg[0] == '\0' || strchr(err.msg, '\n') != NULL)
            __builtin_trap(); /* errors are one non-empty line */
        err.msg[0] = '\0';
        pos += n;
    }
    hms_pgo_decoder_free(d);
    return 0;
}
