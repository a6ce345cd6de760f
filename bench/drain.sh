#!/usr/bin/env bash
# bench/drain.sh -- the backlog drain (measurements 1-4, 6 and 7 at N): hms-sync's events/s next to
# the broker's confirmed-publish ceiling, the discard sink and pg_recvlogical, in the same run.
#
#   bench/drain.sh            N=200000 events per case, 3 repetitions, cases tx1 and tx100
#   bench/drain.sh --smoke    small sizes, 1 repetition; judges no target
#
# Prints its rows of bench/run.sh's table and writes bench/results/drain-<UTC>.json; bench/run.sh
# sources this file for the same stage.  The settings all scripts share follow.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# One pair's broker side: hms_publish_ceiling publishes N messages of SIZE bytes; purge.
measure_ceiling() {
    local case=$1 rep=$2 size=$3 out
    out=$(ceiling --routing-key "$ROUTING_KEY" --count "$N" --size "$size" --window "$WINDOW") ||
        die "hms_publish_ceiling failed ($case #$rep)"
    out=$(tail -1 <<<"$out")
    ceiling --count 0 --purge || die "cannot purge queue $QUEUE"
    jq -c --arg case "$case" --argjson rep "$rep" \
        '{case: $case, rep: $rep, kind: "ceiling", n: .count, size: .size, seconds: .seconds,
          rate: .msgs_per_sec, queued: .queued}' <<<"$out" >>"$RUNS"
    log "  $case #$rep ceiling: $(jq -r '.msgs_per_sec | floor' <<<"$out") msg/s ($size B)"
}

# The server's decoding rate: pg_recvlogical with pgoutput reads a copy of the same backlog to
# /dev/null until it has passed the target.  Timed as a whole process, start-up included, and
# compared with the discard sink's rate with start-up, so both sides pay for connecting.
measure_recvlogical() {
    local case=$1 rep=$2 t0 t1
    copy_slot
    t0=$(date +%s.%N)
    timeout "$TIMEOUT_S" "$PGBIN/pg_recvlogical" -d "$ADMIN_DB" --slot "$SLOT_RUN" --start \
        --endpos "$TARGET" --no-loop -F 0 -o proto_version=1 -o publication_names="$PUBLICATION" \
        -f /dev/null 2>"$WORK/recvlogical.err" ||
        die "pg_recvlogical failed ($case #$rep): $(tail -1 "$WORK/recvlogical.err")"
    t1=$(date +%s.%N)
    drop_slot "$SLOT_RUN" || die "cannot drop slot $SLOT_RUN"
    jq -nc --arg case "$case" --argjson rep "$rep" --argjson n "$N" --argjson t0 "$t0" --argjson t1 "$t1" \
        '{case: $case, rep: $rep, kind: "recvlogical", n: $n, seconds_with_startup: ($t1 - $t0),
          rate_with_startup: ($n / ($t1 - $t0))}' >>"$RUNS"
    log "  $case #$rep pg_recvlogical: $(tail -1 "$RUNS" | jq -r '.rate_with_startup | floor') events/s"
}

# Sets EVENT_SIZE, the average body of the last case's events, which the live stage's broker
# ceiling publishes when it runs after this one.
drain_stage() {
    local c name per_tx size rep
    for c in $CASES; do
        name=${c%%:*}
        per_tx=${c#*:}
        log "backlog $name: $N inserts, $per_tx per transaction"
        make_backlog "$N" "$per_tx"
        size=
        for rep in $(seq "$REPS"); do
            # Each pair is measured back to back, and every other repetition swaps which of the
            # two goes first, so that neither always meets the machine freshly after the backlog
            # was written (checkpoints, the WAL writer) or after the other's clean-up.
            if [ $((rep % 2)) = 0 ]; then
                measure_ceiling "$name" "$rep" "$size"
                measure_connector "$name" "$rep" amqp e2e "$N"
                measure_recvlogical "$name" "$rep"
                measure_connector "$name" "$rep" discard discard "$N"
            else
                measure_connector "$name" "$rep" amqp e2e "$N"
                if [ -z "$size" ]; then
                    # The ceiling publishes bodies as large as the connector's, averaged from the
                    # queue.
                    size=$(jq -r 'select(.case == "'"$name"'" and .kind == "e2e") | (.queued_bytes / .queued) | round' "$RUNS" | head -1)
                fi
                measure_ceiling "$name" "$rep" "$size"
                measure_connector "$name" "$rep" discard discard "$N"
                measure_recvlogical "$name" "$rep"
            fi
        done
        # shellcheck disable=SC2034 # live.sh's
        EVENT_SIZE=$size
        drop_slot "$SLOT_BASE" || die "cannot drop slot $SLOT_BASE"
    done
}

# {"backlog": [...]}: per case, the medians of each kind of run and their ratios.
drain_results() {
    jq -sc '
    def median: sort | if length == 0 then null
                       elif length % 2 == 1 then .[length / 2 | floor]
                       else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def ratio($a; $b): if $a != null and $b != null and $b > 0 then $a / $b else null end;
    . as $runs
    | {backlog: [$runs | map(select(.case | test("^(mem_|big_tx)") | not)) | group_by(.case)[] | {
           case: .[0].case,
           n: .[0].n,
           size: (map(select(.kind == "ceiling"))[0].size),
           e2e: (map(select(.kind == "e2e").rate) | median),
           e2e_with_startup: (map(select(.kind == "e2e").rate_with_startup) | median),
           ceiling: (map(select(.kind == "ceiling").rate) | median),
           discard: (map(select(.kind == "discard").rate) | median),
           discard_with_startup: (map(select(.kind == "discard").rate_with_startup) | median),
           decode_ceiling: (map(select(.kind == "recvlogical").rate_with_startup) | median),
           peak_rss_kb: (map(select(.kind == "e2e").peak_rss_kb) | max),
           cpu_s_per_100k: (map(select(.kind == "e2e").cpu_s_per_100k) | median),
           discard_cpu_s_per_100k: (map(select(.kind == "discard").cpu_s_per_100k) | median),
           runs_with_broker_alarm: (map(select(.broker_blocked == true)) | length),
           # each repetition runs its measurements back to back: their ratios cancel slow drift
           paired_ratios: (group_by(.rep) | map(
               ratio(map(select(.kind == "e2e").rate)[0]; map(select(.kind == "ceiling").rate)[0])
               | select(. != null))),
           paired_decode_ratios: (group_by(.rep) | map(
               ratio(map(select(.kind == "discard").rate_with_startup)[0];
                     map(select(.kind == "recvlogical").rate_with_startup)[0])
               | select(. != null)))}
         | .ratio = ratio(.e2e; .ceiling)
         | .decode_ratio = ratio(.discard_with_startup; .decode_ceiling)
         | .paired_ratio = (.paired_ratios | median)
         | .paired_decode_ratio = (.paired_decode_ratios | median)]}' "$RUNS"
}

drain_table() {
    local c name s
    for c in $CASES; do
        name=${c%%:*}
        s=$(jq -c --arg c "$name" '.backlog[] | select(.case == $c)' "$RESULT")
        [ -n "$s" ] || continue
        row "[$name] 1 broker ceiling, msg/s" "$(jq -r '.ceiling | round' <<<"$s")" "" ""
        row "[$name] 2 decode ceiling (pg_recvlogical), ev/s" "$(jq -r '.decode_ceiling | round' <<<"$s")" "" ""
        row "[$name] 3 hms-sync backlog drain, ev/s" "$(jq -r '.e2e | round' <<<"$s")" "" ""
        row "[$name] 4 hms-sync discard sink, ev/s" "$(jq -r '.discard | round' <<<"$s")" "" ""
        row "[$name] 3 / 1 (paired median)" "$(jq -r '"\(.ratio * 100 | round / 100) (\(.paired_ratio // 0 | . * 100 | round / 100))"' <<<"$s")" \
            ">= 0.90" "$(verdict "$(jq '.ratio >= 0.9' <<<"$s")")"
        row "[$name] 4 / 2, both with start-up (paired)" "$(jq -r '"\(.decode_ratio * 100 | round / 100) (\(.paired_decode_ratio // 0 | . * 100 | round / 100))"' <<<"$s")" \
            ">= 0.80" "$(verdict "$(jq '.decode_ratio >= 0.8' <<<"$s")")"
        row "[$name] 7 CPU s per 100k events (drain)" "$(jq -r '.cpu_s_per_100k * 100 | round / 100' <<<"$s")" \
            "<= 1.0" "$(verdict "$(jq '.cpu_s_per_100k <= 1' <<<"$s")")"
        row "[$name] 6 peak RSS MB, drain of N" "$(jq -r '.peak_rss_kb / 1024 * 10 | round / 10' <<<"$s")" \
            "<= 32" "$(verdict "$(jq '.peak_rss_kb <= 32768' <<<"$s")")"
    done
}

bench_alone drain "$@"
