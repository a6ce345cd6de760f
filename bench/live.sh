#!/usr/bin/env bash
# bench/live.sh -- live commit -> received latency (measurement 5): pgbench commits at each of
# HMS_BENCH_RATES while one connector streams and a consumer times every event; then the broker's
# own ceiling under the same unthrottled load.
#
#   bench/live.sh             20 s per rate at 500/s, 2000/s, the burst rate and unthrottled
#   bench/live.sh --smoke     3 s per rate; judges no target
#
# Prints its rows of bench/run.sh's table and writes bench/results/live-<UTC>.json and the chart
# bench/results/latency-<UTC>.png; bench/run.sh sources this file for the same stage.  The
# settings all scripts share follow.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Median latency of the events committed in each quarter of the load, as a JSON array: how
# the lag moved during the load (ordered by commit time, not arrival).  "Keeps up" is judged
# more simply: every event arrived and 99% within a second of its commit.
commit_quarters() {
    awk '{ printf "%.6f %s\n", $1 - $2 / 1000, $2 }' "$1" | sort -n -k1,1 |
        awk '{ c[NR] = $1; l[NR] = $2 }
             END {
                 if (NR == 0) { print "[0,0,0,0]"; exit }
                 span = c[NR] - c[1]; if (span <= 0) span = 1
                 for (i = 1; i <= NR; i++) {
                     q = int(4 * (c[i] - c[1]) / span); if (q > 3) q = 3
                     print q, l[i]
                 }
             }' | sort -k1,1n -k2,2g |
        awk '{ v[$1, ++n[$1]] = $2 }
             END {
                 out = "["
                 for (q = 0; q < 4; q++) {
                     m = n[q] ? v[q, int((n[q] + 1) / 2)] : 0
                     out = out (q ? "," : "") m
                 }
                 print out "]"
             }'
}

# One rate's load with the connector running: appends the rate's record to $LIVE.
live_rate() { # LABEL RATE
    local r=$1 rate=$2 out=$WORK/live-$1.json throttle committed tps blocked delivered
    start_consumer 0 "$out" "$WORK/live-$r.samples"
    throttle=(-R "$rate")
    # full: as fast as PostgreSQL commits while sharing the machine with the whole pipeline.
    [ "$r" = full ] && rate=0 && throttle=()
    pgb "${throttle[@]}" -T "$LIVE_S" >"$WORK/live-$r.pgbench" 2>&1 ||
        die "pgbench at ${rate}/s failed: $(tail -1 "$WORK/live-$r.pgbench")"
    wait_consumer "$out"
    committed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/live-$r.pgbench")
    tps=$(pgbench_tps "$WORK/live-$r.pgbench")
    # A broker resource alarm (another user of the shared broker) stalls everything: say so.
    blocked=$(($(grep -c 'blocked publishing' "$WORK/live-connector.log" || true) - LIVE_BLOCKED))
    LIVE_BLOCKED=$((LIVE_BLOCKED + blocked))
    # Events received while the load ran (from the first commit to the last), per second:
    # what the pipeline delivered under that load, comparable with the broker's ceiling
    # under the same load below.  Sample lines are "RECEIVED_S LATENCY_MS", both relative.
    delivered=$(awk 'NR == FNR { c = $1 - $2 / 1000
                                 if (FNR == 1 || c < c0) c0 = c
                                 if (FNR == 1 || c > c1) c1 = c
                                 next }
                     $1 >= c0 && $1 <= c1 { n++ }
                     END { printf "%.1f\n", (c1 > c0 ? n / (c1 - c0) : 0) }' \
        "$WORK/live-$r.samples" "$WORK/live-$r.samples")
    jq -c --arg lbl "$r" --argjson rate "$rate" --argjson committed "${committed:-0}" \
        --argjson blocked "$blocked" --argjson quarters "$(commit_quarters "$WORK/live-$r.samples")" \
        --argjson tps "${tps:-0}" --argjson delivered "${delivered:-0}" \
        '{"label": $lbl, target_rate: $rate, committed: $committed, achieved_rate: $tps,
          delivered_rate_under_load: $delivered} + .
         | .all_received = (.received >= .committed)
         | .broker_blocked = ($blocked > 0)
         | .lag_by_commit_quarter_p50_ms = $quarters
         | .keeps_up = (.all_received and .p99_ms <= 1000)' "$out" >>"$LIVE"
    log "  live $r ($rate/s): $(tail -1 "$LIVE" | jq -r '"\(.achieved_rate | round)/s committed, " +
        "\(.received)/\(.committed) received, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms"')"
}

# The broker's own ceiling under the same load: pgbench unthrottled again (no slot, no
# connector) while hms_publish_ceiling publishes event-sized messages to the queue and a
# consumer empties it, as in the live runs.  Side by side with what hms-sync delivered
# under that load, it tells the connector's cost from the machine's limit.  Sets LIVE_CEILING.
live_ceiling() {
    local ceil_n=$((LIVE_S * 4000)) pgb_pid out
    start_consumer "$ceil_n" "$WORK/live-ceiling.consumer"
    pgb -T $((2 * LIVE_S)) >"$WORK/live-ceiling.pgbench" 2>&1 &
    pgb_pid=$!
    sleep 1
    # The drain stage's event size when it ran first in this run.
    out=$(ceiling --routing-key "$ROUTING_KEY" --count "$ceil_n" --size "${EVENT_SIZE:-805}" \
        --window "$WINDOW") || die "hms_publish_ceiling under load failed"
    wait "$pgb_pid" || die "pgbench under the ceiling failed: $(tail -1 "$WORK/live-ceiling.pgbench")"
    wait_consumer "$WORK/live-ceiling.consumer"
    LIVE_CEILING=$(jq -c --argjson tps "$(pgbench_tps "$WORK/live-ceiling.pgbench")" \
        '{count, size, msgs_per_sec, pgbench_rate: $tps}' <<<"$(tail -1 <<<"$out")")
    log "  live ceiling: the broker confirms $(jq -r '.msgs_per_sec | round' <<<"$LIVE_CEILING") msg/s" \
        "with a consumer while pgbench commits $(jq -r '.pgbench_rate | round' <<<"$LIVE_CEILING")/s"
}

live_stage() {
    local max_rate r rate
    LIVE=$WORK/live.jsonl
    : >"$LIVE"
    LIVE_CEILING=null
    LIVE_PLOT=
    LIVE_BLOCKED=0
    psql_db -c "TRUNCATE public.incidents" || die "cannot empty public.incidents"
    # The highest commit rate PostgreSQL sustains here: an unthrottled burst, no slot, no connector.
    pgb -T "$BURST_S" >"$WORK/burst.out" 2>&1 || die "pgbench burst failed: $(tail -1 "$WORK/burst.out")"
    max_rate=$(pgbench_tps "$WORK/burst.out")
    [ -n "$max_rate" ] || die "cannot read pgbench's rate from $WORK/burst.out"
    max_rate=${max_rate%.*}
    log "live: unthrottled burst of $BURST_S s: $max_rate commits/s"
    create_slot "$SLOT_RUN"
    start_connector "$WORK/live-connector.log"
    wait_slot_active "$WORK/live-connector.log"
    for r in $RATES; do
        rate=$r
        [ "$r" = max ] && rate=$max_rate
        live_rate "$r" "$rate"
    done
    stop_connector
    drop_slot "$SLOT_RUN" || die "cannot drop slot $SLOT_RUN"
    if [[ " $RATES " == *" full "* ]]; then
        live_ceiling
    fi
    if command -v gnuplot >/dev/null; then
        # Latency against percentile (sorted samples), one line per rate.
        for r in $RATES; do
            sort -n -k2,2 "$WORK/live-$r.samples" |
                awk '{ v[NR] = $2 } END { for (i = 1; i <= NR; i++) print 100 * i / NR, v[i] }' \
                    >"$WORK/live-$r.cdf"
            [ -s "$WORK/live-$r.cdf" ] || continue
            rate=$(jq -r --arg l "$r" 'select(.label == $l) | .achieved_rate | round' "$LIVE")
            LIVE_PLOT="$LIVE_PLOT${LIVE_PLOT:+, }'$WORK/live-$r.cdf' using 1:2 with lines lw 2 title '$r ($rate/s)'"
        done
    fi
}

# {"live": [...], "live_ceiling": ..., "chart": FILE}: the chart is drawn beside $RESULT and named
# only when gnuplot made it.
live_results() {
    if command -v gnuplot >/dev/null && [ -n "$LIVE_PLOT" ]; then
        gnuplot >&2 <<GP || log "warning: gnuplot failed; no chart"
set terminal pngcairo size 900,560 noenhanced
set output '$CHART'
set title 'hms-sync commit -> received latency ($STAMP, $(nproc) cpus, load $LOAD_BEFORE)'
set xlabel 'percentile of events'
set ylabel 'latency (ms)'
set logscale y
set grid
set key top left
set xrange [0:100]
plot $LIVE_PLOT
GP
    fi
    jq -sc --argjson ceiling "$LIVE_CEILING" --arg chart "$([ -f "$CHART" ] && basename "$CHART")" \
        '{live: ., live_ceiling: $ceiling} + (if $chart == "" then {} else {chart: $chart} end)' "$LIVE"
}

live_table() {
    local l lab val full
    jq -c '.live[]' "$RESULT" | while read -r l; do
        lab=$(jq -r '"5 live \(.label) (\(.achieved_rate | round)/s)\(if .broker_blocked then " ALARM" else "" end): p50/p99/max ms"' <<<"$l")
        val=$(jq -r '"\(.p50_ms | round)/\(.p99_ms | round)/\(.max_ms | round)"' <<<"$l")
        case $(jq -r .label <<<"$l") in
        2000) row "$lab" "$val" "p99 <= 25" "$(verdict "$(jq '.p99_ms <= 25 and .all_received' <<<"$l")")" ;;
        max | full) row "$lab" "$val" "keeps up: p99 <= 1000" "$(verdict "$(jq '.keeps_up' <<<"$l")")" ;;
        *) row "$lab" "$val" "" "" ;;
        esac
    done
    full=$(jq -c '.live[] | select(.label == "full")' "$RESULT")
    if [ -n "$full" ] && [ "$LIVE_CEILING" != null ]; then
        row "5 live full: delivered under load, ev/s" "$(jq -r '.delivered_rate_under_load | round' <<<"$full")" "" ""
        row "5 broker ceiling under the same load, msg/s" "$(jq -r '.msgs_per_sec | round' <<<"$LIVE_CEILING")" "" ""
        row "5 live full: delivered / ceiling under load" \
            "$(jq -rn --argjson f "$full" --argjson c "$LIVE_CEILING" '$f.delivered_rate_under_load / $c.msgs_per_sec * 100 | round / 100')" \
            "" ""
    fi
}

bench_alone live "$@"
