#!/usr/bin/env bash
# bench/memory.sh -- peak RSS and CPU per event (measurements 6 and 7) at MEM_FACTOR x N events and
# in one transaction of BIG_TX rows, each drained once while a consumer empties the queue.
#
#   bench/memory.sh           a backlog of 5 x 200000 events, then one transaction of 1000000 rows
#   bench/memory.sh --smoke   small sizes; judges no target
#
# Prints its rows of bench/run.sh's table and writes bench/results/memory-<UTC>.json; bench/run.sh
# sources this file for the same stage.  The settings all scripts share follow.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

memory_stage() {
    local big_n=$((N * MEM_FACTOR))
    log "memory: a backlog of $big_n events, 100 per transaction, drained by a consumer"
    make_backlog "$big_n" 100
    measure_connector "mem_${MEM_FACTOR}n" 1 amqp e2e "$big_n" 1
    drop_slot "$SLOT_BASE" || die "cannot drop slot $SLOT_BASE"
    log "memory: one transaction of $BIG_TX rows, drained by a consumer"
    make_backlog "$BIG_TX" "$BIG_TX"
    measure_connector big_tx 1 amqp e2e "$BIG_TX" 1
    drop_slot "$SLOT_BASE" || die "cannot drop slot $SLOT_BASE"
}

# {"memory": [...]}: this stage's raw records, told apart from the drain stage's by their case.
memory_results() {
    jq -sc '{memory: [.[] | select(.case | test("^(mem_|big_tx)"))]}' "$RUNS"
}

# "Flat" compares with the drain of N, so it is judged only when the drain stage ran in the same
# run; alone, this stage is judged on the 32 MB bound.
memory_table() {
    local base_rss m label
    base_rss=$(jq '[.backlog[].peak_rss_kb] | max // 0' "$RESULT")
    jq -c '.memory[]' "$RESULT" | while read -r m; do
        label=$(jq -r 'if .case == "big_tx" then "1 transaction of \(.n) rows" else "drain of \(.n)" end' <<<"$m")
        row "6 peak RSS MB, $label" "$(jq -r '.peak_rss_kb / 1024 * 10 | round / 10' <<<"$m")" \
            "<= 32, flat (+10% of N)" \
            "$(verdict "$(jq --argjson b "$base_rss" '.peak_rss_kb <= 32768 and ($b == 0 or .peak_rss_kb <= ($b * 1.1 + 1024))' <<<"$m")")"
        row "7 CPU s per 100k events, $label" "$(jq -r '.cpu_s_per_100k * 100 | round / 100' <<<"$m")" \
            "<= 1.0" "$(verdict "$(jq '.cpu_s_per_100k <= 1' <<<"$m")")"
    done
}

bench_alone memory "$@"
