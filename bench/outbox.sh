#!/usr/bin/env bash
# bench/outbox.sh -- the transactional outbox: the events/s hms-sync publishes from committed
# hms_sync.emit calls next to the broker's confirmed-publish ceiling, in the same run.
#
#   bench/outbox.sh            N=200000 events per case, 3 repetitions, cases emit1 and emit100
#   bench/outbox.sh --smoke    small sizes, 1 repetition
#
# Prints its rows of bench/run.sh's table and writes bench/results/outbox-<UTC>.json; bench/run.sh
# sources this file for the same stage.  The settings all scripts share follow.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# NAME:EMITS_PER_TRANSACTION cases, and the type every call emits: the events' routing key.
OUTBOX_CASES="emit1:1 emit100:100"
OUTBOX_TYPE=org.example.bench.Assigned.v1

# One pair's connector side: the drain stage's e2e measurement; the events reach the bench queue
# through the events exchange (EVENTS_EXCHANGE); its record goes to OUTBOX_RUNS.
outbox_connector() {
    RUNS=$OUTBOX_RUNS measure_connector "$1" "$2" amqp emitted "$N"
}

# One pair's broker side: hms_publish_ceiling publishes N messages of SIZE bytes to the same
# exchange, with the same routing key, into the same queue; purge.
outbox_ceiling() {
    local case=$1 rep=$2 size=$3 out
    out=$(ceiling --exchange "$EVENTS_EXCHANGE" --routing-key "$OUTBOX_TYPE" --count "$N" \
        --size "$size" --window "$WINDOW") || die "hms_publish_ceiling failed ($case #$rep)"
    out=$(tail -1 <<<"$out")
    ceiling --count 0 --purge || die "cannot purge queue $QUEUE"
    jq -c --arg case "$case" --argjson rep "$rep" \
        '{case: $case, rep: $rep, kind: "ceiling", n: .count, size: .size, seconds: .seconds,
          rate: .msgs_per_sec, queued: .queued}' <<<"$out" >>"$OUTBOX_RUNS"
    log "  $case #$rep ceiling: $(jq -r '.msgs_per_sec | floor' <<<"$out") msg/s ($size B)"
}

outbox_stage() {
    local c name per_tx size rep
    OUTBOX_RUNS=$WORK/outbox.jsonl
    : >"$OUTBOX_RUNS"
    # The events exchange as the connector declares it (its alternate exchange is
    # EXCHANGE.events.unrouted, which the connector declares with its queue), and the bench queue
    # bound to it with '#', so that every emitted event is queued and counted.
    CREATED_EVENTS=1
    ceiling --exchange "$EVENTS_EXCHANGE" --alternate-exchange "$EVENTS_EXCHANGE.unrouted" \
        --count 0 --declare || die "cannot declare exchange $EVENTS_EXCHANGE"
    for c in $OUTBOX_CASES; do
        name=${c%%:*}
        per_tx=${c#*:}
        log "backlog $name: $N hms_sync.emit calls, $per_tx per transaction"
        make_backlog "$N" "$per_tx" bench_emit
        size=
        for rep in $(seq "$REPS"); do
            # As in the drain stage, every other repetition measures the ceiling first.
            if [ $((rep % 2)) = 0 ]; then
                outbox_ceiling "$name" "$rep" "$size"
                outbox_connector "$name" "$rep"
            else
                outbox_connector "$name" "$rep"
                # The ceiling publishes bodies as large as the events, averaged from the queue.
                [ -n "$size" ] || size=$(jq -r --arg c "$name" \
                    'select(.case == $c and .kind == "emitted") | (.queued_bytes / .queued) | round' \
                    "$OUTBOX_RUNS" | head -1)
                outbox_ceiling "$name" "$rep" "$size"
            fi
        done
        drop_slot "$SLOT_BASE" || die "cannot drop slot $SLOT_BASE"
    done
}

# {"outbox": {...}}: per case the medians of each side, their ratio and the median of each
# repetition's own ratio; every record.
outbox_results() {
    jq -sc --arg cases "$OUTBOX_CASES" --arg type "$OUTBOX_TYPE" '
    def median: sort | if length == 0 then null
                       elif length % 2 == 1 then .[length / 2 | floor]
                       else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def ratio($a; $b): if $a != null and $b != null and $b > 0 then $a / $b else null end;
    . as $runs
    | ($cases | split(" ") | map(select(. != "") | split(":") | {(.[0]): (.[1] | tonumber)}) | add) as $per_tx
    | {outbox: {type: $type, cases: [$runs | group_by(.case)[] | {
           case: .[0].case,
           n: .[0].n,
           per_tx: $per_tx[.[0].case],
           size: (map(select(.kind == "ceiling"))[0].size),
           ceiling: (map(select(.kind == "ceiling").rate) | median),
           emitted: (map(select(.kind == "emitted").rate) | median),
           emitted_with_startup: (map(select(.kind == "emitted").rate_with_startup) | median),
           peak_rss_kb: (map(select(.kind == "emitted").peak_rss_kb) | max),
           cpu_s_per_100k: (map(select(.kind == "emitted").cpu_s_per_100k) | median),
           runs_with_broker_alarm: (map(select(.broker_blocked == true)) | length),
           # each repetition runs its pair back to back: their ratio cancels slow drift
           paired_ratios: (group_by(.rep) | map(
               ratio(map(select(.kind == "emitted").rate)[0]; map(select(.kind == "ceiling").rate)[0])
               | select(. != null)))}
         | .ratio = ratio(.emitted; .ceiling)
         | .paired_ratio = (.paired_ratios | median)],
       runs: $runs}}' "$OUTBOX_RUNS"
}

outbox_table() {
    local c name s
    for c in $OUTBOX_CASES; do
        name=${c%%:*}
        s=$(jq -c --arg c "$name" '.outbox.cases[] | select(.case == $c)' "$RESULT")
        [ -n "$s" ] || continue
        row "[$name] broker ceiling, $(jq -r .size <<<"$s") B, msg/s" "$(jq -r '.ceiling | round' <<<"$s")" "" ""
        row "[$name] hms-sync emitted events, ev/s" "$(jq -r '.emitted | round' <<<"$s")" "" ""
        row "[$name] emitted / ceiling (paired median)" \
            "$(jq -r '"\(.ratio * 100 | round / 100) (\(.paired_ratio // 0 | . * 100 | round / 100))"' <<<"$s")" "" ""
        row "[$name] CPU s per 100k emitted events" "$(jq -r '.cpu_s_per_100k * 100 | round / 100' <<<"$s")" "" ""
    done
}

bench_alone outbox "$@"
