#!/usr/bin/env bash
# bench/validate.sh -- what checking every event against its schemas costs: hms_validate_cost
# encodes the same insert with and without the check `run` does before it queues an event, side
# by side in one process (ns per event), and, under callgrind, in runs of their own (instructions
# per event, free of start-up and of the machine's load).
#
#   bench/validate.sh          200000 events per native round, 1 and 1001 under callgrind
#   bench/validate.sh --smoke  2000 events per native round, 1 and 101 under callgrind
#
# Prints its rows of bench/run.sh's table and writes bench/results/validate-<UTC>.json;
# bench/run.sh sources this file for the same stage.  Needs valgrind for the instruction counts
# (skipped without it).  The settings all scripts share follow.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# "INSTRUCTIONS" of EVENTS events of MODE (encode or validate) under callgrind.
validate_pass() { # MODE EVENTS
    local out=$WORK/vcg.$1.$2
    valgrind --tool=callgrind --callgrind-out-file="$out.callgrind" "$VALIDATE" --mode "$1" \
        --events "$2" --rounds 1 >"$out.out" 2>"$out.err" || die "callgrind failed; see $out.err"
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out.err"
}

# Sets VAL, the figures as JSON: the native run's line and the callgrind counts (null when
# skipped).
validate_stage() {
    local native cg=null k1 e0 e1 v0 v1
    log "validate: encode alone and encode+check, $VAL_N events per round, $VAL_ROUNDS rounds each, alternating"
    native=$("$VALIDATE" --events "$VAL_N" --rounds "$VAL_ROUNDS") || die "hms_validate_cost failed"
    if [ "$VAL_CG" -eq 0 ]; then
        :
    elif ! command -v valgrind >/dev/null; then
        log "validate: valgrind is not installed; instruction counts skipped"
    else
        k1=$((VAL_CG + 1))
        log "validate: encode alone and encode+check under callgrind, 1 and $k1 events each"
        # The difference of two runs cancels start-up, loading the schemas, the first event and
        # valgrind's own cost.  The small run is of one event: json-c seeds its string hash at
        # random in each process, which moves the check's cost per event by about 1% from one
        # process to the next, and a difference of two long runs would add up two such errors.
        e0=$(validate_pass encode 1)
        e1=$(validate_pass encode "$k1")
        v0=$(validate_pass validate 1)
        v1=$(validate_pass validate "$k1")
        cg=$(jq -nc --argjson k "$VAL_CG" --argjson e0 "$e0" --argjson e1 "$e1" \
            --argjson v0 "$v0" --argjson v1 "$v1" '
            (($e1 - $e0) / $k) as $e | (($v1 - $v0) / $k) as $v
            | {events: [1, $k + 1], encode_instructions: [$e0, $e1],
               encode_validate_instructions: [$v0, $v1],
               encode_instructions_per_event: ($e | round),
               encode_validate_instructions_per_event: ($v | round),
               validate_instructions_per_event: ($v - $e | round),
               ratio: ($v / $e * 100 | round / 100)}')
    fi
    VAL=$(jq -nc --argjson native "$native" --argjson cg "$cg" '{native: $native, callgrind: $cg}')
    log "  $(jq -r '"native: \(.native.encode_ns) ns encode, \(.native.encode_validate_ns) ns with the check (x\(.native.ratio))" +
        if .callgrind then "; callgrind: \(.callgrind.encode_instructions_per_event) instructions encode," +
            " \(.callgrind.encode_validate_instructions_per_event) with the check (x\(.callgrind.ratio))"
        else "" end' <<<"$VAL")"
}

validate_results() { jq -nc --argjson v "$VAL" '{validate: $v}'; }

validate_table() {
    local cg
    cg=$(jq -c .callgrind <<<"$VAL")
    if [ "$cg" != null ]; then
        row "[validate] instructions/event: encode, check" \
            "$(jq -r '"\(.encode_instructions_per_event), \(.validate_instructions_per_event)"' <<<"$cg")" "(tracked)" ""
        row "[validate] encode+check / encode, instructions" "$(jq -r .ratio <<<"$cg")" "(tracked)" ""
    fi
    row "[validate] ns/event native: encode, +check" \
        "$(jq -r '.native | "\(.encode_ns), \(.encode_validate_ns)"' <<<"$VAL")" "" ""
    row "[validate] encode+check / encode, native ns" "$(jq -r .native.ratio <<<"$VAL")" "" ""
}

bench_alone validate "$@"
