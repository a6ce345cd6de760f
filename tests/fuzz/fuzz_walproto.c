/* fuzz_walproto.c -- libFuzzer harness for the walsender CopyData parser
 * (src/core/walproto.h), chained into the pgoutput decoder as the daemon
 * chains them.
 *
 * Built by tests/fuzz/CMakeLists.txt (-DHMS_FUZZ=ON, CC=clang); run by
 * scripts/fuzz.sh.  Input: one CopyData payload.  Checks that a parsed
 * XLogData borrows exactly the bytes after its 25-byte header, that errors
 * are one non-empty line, and that a standby status update built from the
 * parsed positions is always 34 bytes starting with 'r'.  Seeds
 * (tests/fuzz/corpus/walproto/) are XLogData frames around the captured
 * pgoutput messages plus keepalives. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/pgoutput.h"
#include "core/walproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const hms_err_t *err)
{
    if (err->msg[0] == '\0' || strchr(err->msg, '\n') != NULL)
        __builtin_trap(); /* errors are one non-empty line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hms_walmsg_t m;
    hms_err_t err = {{0}};
    if (hms_walmsg_parse(data, size, &m, &err) != HMS_OK) {
        check_err(&err);
        return 0;
    }
    uint8_t reply[HMS_STANDBY_STATUS_LEN];
    if (m.kind == 'w') {
        if (size < 25 || m.data != data + 25 || m.len != size - 25)
            __builtin_trap();
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < m.len; i++)
            sink ^= m.data[i];
        (void)sink;
        hms_pgo_decoder_t *d = hms_pgo_decoder_new();
        if (d != NULL) {
            hms_pgo_msg_t pm;
            err.msg[0] = '\0';
            if (hms_pgo_decode(d, m.data, m.len, &pm, &err) != HMS_OK)
                check_err(&err);
            hms_pgo_decoder_free(d);
        }
    } else if (m.kind != 'k') {
        __builtin_trap(); /* only 'w' and 'k' parse */
    }
    size_t n = hms_walmsg_standby_status(reply, m.wal_start, m.wal_end, m.wal_end, m.send_time,
                                         m.reply_requested);
    if (n != HMS_STANDBY_STATUS_LEN || reply[0] != 'r')
        __builtin_trap();
    return 0;
}
