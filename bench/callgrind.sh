#!/usr/bin/env bash
# bench/callgrind.sh -- decode+encode instructions per event: hms_decode_encode on the captured
# inserts in tests/data/pgoutput/ under callgrind, free of start-up and of the machine's load.
#
#   bench/callgrind.sh          2000 and 4000 harness passes
#   bench/callgrind.sh --smoke  50 and 100 passes
#
# Prints its row of bench/run.sh's table and writes bench/results/callgrind-<UTC>.json;
# bench/run.sh sources this file for the same stage.  Needs valgrind (skipped without it).  The
# settings all scripts share follow.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# "INSTRUCTIONS EVENTS" of PASSES harness passes under callgrind.
callgrind_pass() { # PASSES
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$1" "$HARNESS" \
        --iterations "$1" "$ROOT"/tests/data/pgoutput/insert_{single,multi}.hex \
        >"$WORK/cg.$1.out" 2>"$WORK/cg.$1.err" || die "callgrind failed; see $WORK/cg.$1.err"
    echo "$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$WORK/cg.$1.err") $(jq .events "$WORK/cg.$1.out")"
}

# Sets CG, the figures as JSON, or null when skipped.
callgrind_stage() {
    CG=null
    [ "$CG_ITER" -gt 0 ] || return 0
    if ! command -v valgrind >/dev/null; then
        log "callgrind: valgrind is not installed; skipped"
        return 0
    fi
    local ir1 ev1 ir2 ev2 native
    log "callgrind: decode+encode of the captured inserts, $CG_ITER and $((2 * CG_ITER)) passes"
    # The difference of two runs cancels start-up, loading the files and valgrind's own cost.
    read -r ir1 ev1 < <(callgrind_pass "$CG_ITER")
    read -r ir2 ev2 < <(callgrind_pass $((2 * CG_ITER)))
    native=$("$HARNESS" --iterations 20000 "$ROOT"/tests/data/pgoutput/insert_{single,multi}.hex)
    CG=$(jq -nc --argjson ir1 "$ir1" --argjson ev1 "$ev1" --argjson ir2 "$ir2" --argjson ev2 "$ev2" \
        --argjson native "$native" \
        '{events: [$ev1, $ev2], instructions: [$ir1, $ir2],
          instructions_per_event: (($ir2 - $ir1) / ($ev2 - $ev1) | round),
          native_ns_per_event: $native.ns_per_event, avg_body_bytes: $native.avg_body_bytes}')
    log "  $(jq -r '"\(.instructions_per_event) instructions per event, \(.native_ns_per_event) ns per event natively"' <<<"$CG")"
}

callgrind_results() { jq -nc --argjson cg "$CG" '{callgrind: $cg}'; }

callgrind_table() {
    if [ "$CG" != null ]; then
        row "decode+encode instructions per event" "$(jq -r .instructions_per_event <<<"$CG")" "(tracked)" ""
    fi
}

bench_alone callgrind "$@"
