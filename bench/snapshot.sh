#!/usr/bin/env bash
# bench/snapshot.sh -- a snapshot of SNAPSHOT_ROWS existing rows, alongside the change stream: its
# rows/s next to the broker's confirmed-publish ceiling for messages of the snapshot events' size,
# the live commit -> received latency at SNAPSHOT_RATE commits/s without and then with a snapshot
# running, and the connector's peak RSS while it reads.
#
#   bench/snapshot.sh          1000000 rows, 1000 live commits/s
#   bench/snapshot.sh --smoke  20000 rows, 3 s of live load without the snapshot; judges no target
#
# Prints its rows of bench/run.sh's table and writes bench/results/snapshot-<UTC>.json;
# bench/run.sh sources this file for the same stage.  The settings all scripts share follow.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The live latency consumer listens to the change events only: snapshot events carry the commit
# time of the watermark that released them, not of a change, and in a queue shared with them a
# change would be timed waiting behind snapshot events at the consumer, not at the connector.
SNAP_LIVE_KEY='incident.created.#'

# Waits for snapshot ID to be done; dies if it failed, was cancelled or its connector exited.
# Appends "EPOCH ROWS_DONE VMRSS_KB" lines to $SNAP_DIR/ID.progress, so the JSON shows how the
# rows and the connector's memory moved during the read.
snap_wait() { # ID
    local id=$1 deadline=$((SECONDS + TIMEOUT_S)) st rows err rss
    while :; do
        IFS='|' read -r st rows err < <(psql_db -c "SELECT state, rows_done, coalesce(error, '')
                                                      FROM hms_sync.snapshots WHERE id = '$id'") ||
            die "cannot read snapshot $id"
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$CONN_PID/status" 2>/dev/null) ||
            die "hms-sync exited during snapshot $id: $(tail -1 "$SNAP_LOG")"
        echo "$(date +%s.%N) $rows $rss" >>"$SNAP_DIR/$id.progress"
        case $st in
        done) return 0 ;;
        failed | cancelled) die "snapshot $id $st${err:+: $err}" ;;
        esac
        [ "$SECONDS" -lt "$deadline" ] || die "snapshot $id not done within $TIMEOUT_S s ($rows rows)"
        sleep 0.2
    done
}

# The id of the initial snapshot the connector asks for when it creates its slot.
snap_initial_id() {
    local id
    for _ in $(seq 300); do
        id=$(psql_db -c "SELECT id FROM hms_sync.snapshots WHERE slot = '$SLOT_RUN' AND initial")
        [ -n "$id" ] && echo "$id" && return 0
        kill -0 "$CONN_PID" 2>/dev/null || die "hms-sync exited: $(tail -1 "$SNAP_LOG")"
        sleep 0.1
    done
    die "hms-sync asked for no initial snapshot of slot $SLOT_RUN within 30 s"
}

# CPU seconds a process has used, or 0 when it is gone (or the pid is empty).
cpu_of() {
    local u
    if [ -n "$1" ] && u=$(proc_usage "$1" 2>/dev/null); then echo "${u#* }"; else echo 0; fi
}

# CPU seconds so far of the connector and of the two PostgreSQL backends that serve it (the
# walsender and the snapshot's SQL connection): where a chunk's time goes besides the broker.
snap_cpu() {
    local wal sql
    wal=$(psql_admin -c "SELECT active_pid FROM pg_replication_slots WHERE slot_name = '$SLOT_RUN'")
    sql=$(psql_admin -c "SELECT pid FROM pg_stat_activity
                          WHERE datname = '$DB' AND application_name = 'hms-sync snapshot' LIMIT 1")
    jq -nc --argjson c "$(cpu_of "$CONN_PID")" --argjson w "$(cpu_of "$wal")" --argjson s "$(cpu_of "$sql")" \
        '{connector: $c, walsender: $w, snapshot_backend: $s}'
}

# Marks the start of what snap_record measures: now, and the CPU used so far.
snap_mark() {
    SNAP_T0=$(date +%s.%N)
    SNAP_CPU0=$(snap_cpu)
}

# One JSON record of snapshot ID, from its row and from /proc just after it was done: rates,
# time per chunk, the connector's peak RSS (VmHWM, and VmRSS at each quarter of the read) and the
# CPU used since snap_mark as a share of one core.  Appends it to $SNAP.
snap_record() { # LABEL ID
    local label=$1 id=$2 row usage
    usage=$(proc_usage "$CONN_PID")
    row=$(psql_db -c "SELECT json_build_object('id', id, 'rows_total', rows_total,
                             'rows_done', rows_done, 'chunks_done', chunks_done,
                             'requested_at', extract(epoch FROM requested_at),
                             'started_at', extract(epoch FROM started_at),
                             'finished_at', extract(epoch FROM finished_at))
                        FROM hms_sync.snapshots WHERE id = '$id'") || die "cannot read snapshot $id"
    # The rate counts rows_done, the rows read and confirmed: under live inserts a snapshot also
    # reads rows added after it counted rows_total, in key ranges it had not reached.
    jq -c --arg lbl "$label" --argjson rss "${usage% *}" --argjson t0 "$SNAP_T0" \
        --argjson cpu0 "$SNAP_CPU0" --argjson cpu "$(snap_cpu)" \
        --argjson blocked "$(grep -c 'blocked publishing' "$SNAP_LOG" || true)" \
        --slurpfile progress <(awk '{ printf "[%s,%s,%s]\n", $1, $2, $3 }' "$SNAP_DIR/$id.progress") '
        (.finished_at - .requested_at) as $s
        | (.finished_at - $t0) as $span
        | {"label": $lbl} + . + {
            seconds: $s, rows_per_sec: (.rows_done / $s),
            rows_per_sec_from_start: (.rows_done / (.finished_at - .started_at)),
            ms_per_chunk: (if .chunks_done > 0 then (.finished_at - .started_at) * 1000 / .chunks_done
                           else null end),
            peak_rss_kb: $rss,
            rss_kb_by_quarter: ($progress | if length == 0 then [] else
                [range(1; 5) as $q | .[(length - 1) * $q / 4 | floor][2]] end),
            cpu_share: ($cpu | with_entries(.value = ((.value - $cpu0[.key]) / $span * 100 | round / 100))),
            broker_blocked: ($blocked > 0)}' <<<"$row" >>"$SNAP"
    log "  snapshot $label: $(tail -1 "$SNAP" | jq -r '"\(.rows_done) rows in \(.seconds * 10 | round / 10) s," +
        " \(.rows_per_sec | round) rows/s, \(.chunks_done) chunks (\(.ms_per_chunk // 0 | round) ms each)," +
        " peak RSS \(.peak_rss_kb / 1024 * 10 | round / 10) MB, CPU share \(.cpu_share)"')"
}

# A connector on $SLOT_RUN with the stage's chunk size; ARGS before it.
snap_connector() { # LOG [ARGS...]
    SNAP_LOG=$1
    shift
    start_connector "$SNAP_LOG" "$@" ${SNAP_CHUNK:+--snapshot_chunk "$SNAP_CHUNK"}
}

# The snapshot alone: a connector creates a new slot, which starts with a snapshot of every row
# while a consumer empties the queue.  Sets SNAP_SIZE, the events' average body size, and
# SNAP_RECEIVED, the rate the consumer saw.
snap_alone() {
    local id out=$SNAP_DIR/alone.consumer
    log "snapshot: $SNAP_ROWS rows, the initial snapshot of a new slot, nothing else running"
    # Stages before this one in the same run dropped a slot of the same name, which the connector
    # rightly takes for a lost slot: forget its progress, as an operator who re-syncs would.
    psql_db -c "DELETE FROM hms_sync.slot_progress WHERE slot_name = '$SLOT_RUN'" ||
        die "cannot clear slot $SLOT_RUN's progress"
    start_consumer "$SNAP_ROWS" "$out"
    SNAP_T0=$(date +%s.%N)
    SNAP_CPU0='{"connector": 0, "walsender": 0, "snapshot_backend": 0}'
    snap_connector "$SNAP_DIR/alone.log" --snapshot initial
    id=$(snap_initial_id)
    snap_wait "$id"
    snap_record alone "$id"
    stop_connector
    wait_consumer "$out"
    jq -e --argjson n "$SNAP_ROWS" '.received + .unparsed >= $n' "$out" >/dev/null ||
        die "the consumer received $(jq '.received + .unparsed' "$out") events of the snapshot, expected $SNAP_ROWS"
    SNAP_SIZE=$(jq '.bytes / (.received + .unparsed) | round' "$out")
    # The same rate from the arrivals, free of the time to ask, start and record.
    SNAP_RECEIVED=$(jq -c '(.received + .unparsed) as $n
                           | {received: $n, seconds, rate: ($n / .seconds), size: (.bytes / $n)}' "$out")
}

# The broker's ceiling for as many messages of the same size, the same window and routing, with a
# consumer emptying the queue as during the snapshot.  Sets SNAP_CEILING.
snap_ceiling() {
    local out
    start_consumer "$SNAP_ROWS" "$SNAP_DIR/ceiling.consumer"
    out=$(ceiling --routing-key incident.snapshot.north --count "$SNAP_ROWS" --size "$SNAP_SIZE" \
        --window "$WINDOW") || die "hms_publish_ceiling failed"
    wait_consumer "$SNAP_DIR/ceiling.consumer"
    SNAP_CEILING=$(tail -1 <<<"$out" | jq -c '{count, size, seconds, msgs_per_sec}')
    log "  ceiling: the broker confirms $(jq -r '.msgs_per_sec | round' <<<"$SNAP_CEILING") msg/s of $SNAP_SIZE B"
}

# Live load at SNAP_RATE/s with the latency consumer on the change events only, and a second
# consumer emptying the bench queue (which takes every event), as in the other runs.  "without"
# runs LIVE_S seconds; "during" runs until a snapshot asked for one second into the load is
# done, and counts only the changes committed while that snapshot ran.  Appends the run's
# record to $SNAP_LIVE.
snap_live() { # without|during
    local label=$1 out=$SNAP_DIR/$1.live all_pid pgb_pid id='' before after lo=0 hi=1e12
    before=$(psql_db -c "SELECT count(*) FROM public.incidents WHERE reported_by = 'nurse.live'")
    start_consumer 0 "$SNAP_DIR/$label.all"
    all_pid=$CONS_PID
    BG_PIDS="$BG_PIDS $all_pid"
    CONS_PID=
    start_consumer 0 "$out" "$SNAP_DIR/$label.samples" --exchange "$EXCHANGE" --binding "$SNAP_LIVE_KEY"
    if [ "$label" = without ]; then
        pgb -R "$SNAP_RATE" -T "$LIVE_S" >"$SNAP_DIR/$label.pgbench" 2>&1 ||
            die "pgbench at $SNAP_RATE/s failed: $(tail -1 "$SNAP_DIR/$label.pgbench")"
    else
        pgb -R "$SNAP_RATE" -T "$TIMEOUT_S" >"$SNAP_DIR/$label.pgbench" 2>&1 &
        pgb_pid=$!
        BG_PIDS="$BG_PIDS $pgb_pid"
        sleep 1
        kill -0 "$pgb_pid" 2>/dev/null || die "pgbench at $SNAP_RATE/s failed: $(tail -1 "$SNAP_DIR/$label.pgbench")"
        snap_mark
        id=$(psql_db -c "INSERT INTO hms_sync.snapshots (slot) VALUES ('$SLOT_RUN') RETURNING id") ||
            die "cannot ask for a snapshot"
        snap_wait "$id"
        snap_record "$label" "$id"
        stop_bg "$pgb_pid"
        BG_PIDS=${BG_PIDS/ $pgb_pid/}
        lo=$(tail -1 "$SNAP" | jq .started_at)
        hi=$(tail -1 "$SNAP" | jq .finished_at)
    fi
    wait_consumer "$out"
    CONS_PID=$all_pid
    BG_PIDS=${BG_PIDS/ $all_pid/}
    wait_consumer "$SNAP_DIR/$label.all"
    after=$(psql_db -c "SELECT count(*) FROM public.incidents WHERE reported_by = 'nurse.live'")
    # Sample lines are "SECONDS_SINCE_FIRST LATENCY_MS"; first_at makes the commit times
    # wall-clock times, comparable with the snapshot's start and end in the database.
    awk -v f="$(jq .first_at "$out")" -v lo="$lo" -v hi="$hi" \
        '{ c = f + $1 - $2 / 1000 } c >= lo + 0 && c <= hi + 0 { print $2 }' "$SNAP_DIR/$label.samples" |
        sort -g >"$SNAP_DIR/$label.window"
    # Percentiles by nearest rank, as the consumer computes them.
    jq -c --arg lbl "$label" --arg id "$id" --argjson committed $((after - before)) \
        --argjson rate "$SNAP_RATE" --argjson lo "$lo" --argjson hi "$hi" \
        --slurpfile lat "$SNAP_DIR/$label.window" '
        ($lat | length) as $n
        | def pct($p): if $n == 0 then null
                       else ([([($p / 100 * $n + 0.999999 | floor), 1] | max), $n] | min) as $k | $lat[$k - 1] end;
        {"label": $lbl, snapshot: (if $id == "" then null else $id end), target_rate: $rate,
         committed: $committed, received, all_received: (.received >= $committed),
         samples: $n, p50_ms: pct(50), p99_ms: pct(99), max_ms: ($lat | max),
         p99_ms_whole_run: .p99_ms,
         achieved_rate: (if $id == "" then .received / .seconds else $n / ($hi - $lo) end)}' "$out" >>"$SNAP_LIVE"
    log "  live $label: $(tail -1 "$SNAP_LIVE" | jq -r '"\(.achieved_rate | round)/s, \(.received)/\(.committed) received," +
        " \(.samples) counted, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms"')"
}

snapshot_stage() {
    SNAP_DIR=$WORK/snapshot
    SNAP=$SNAP_DIR/snapshots.jsonl
    SNAP_LIVE=$SNAP_DIR/live.jsonl
    mkdir -p "$SNAP_DIR"
    : >"$SNAP"
    : >"$SNAP_LIVE"
    log "snapshot: filling public.incidents with $SNAP_ROWS rows"
    psql_db -c "TRUNCATE public.incidents" || die "cannot empty public.incidents"
    psql_db -c "CALL public.bench_fill($SNAP_ROWS, 10000)" || die "filling public.incidents failed"
    # Set the fresh rows' hint bits and write them out now, or the first chunks (and whatever
    # runs during the checkpoint) pay for it.
    psql_db -c "VACUUM (ANALYZE) public.incidents" || die "VACUUM failed"
    psql_admin -c "CHECKPOINT" || die "CHECKPOINT failed"

    snap_alone
    snap_ceiling

    log "snapshot: live changes at $SNAP_RATE/s, without and then with a snapshot running"
    snap_connector "$SNAP_DIR/live.log"
    wait_slot_active "$SNAP_LOG"
    snap_live without
    snap_live during
    stop_connector
    drop_slot "$SLOT_RUN" || die "cannot drop slot $SLOT_RUN"
}

# {"snapshot": {...}}: the two snapshots, the ceiling, the two live runs and the ratios judged.
snapshot_results() {
    jq -nc --slurpfile snaps "$SNAP" --slurpfile live "$SNAP_LIVE" --argjson ceiling "$SNAP_CEILING" \
        --argjson received "$SNAP_RECEIVED" --argjson rows "$SNAP_ROWS" --argjson rate "$SNAP_RATE" '
        ($snaps | map({(.label): .}) | add) as $s
        | ($live | map({(.label): .}) | add) as $l
        | {snapshot: {rows: $rows, live_rate: $rate, ceiling: $ceiling,
                      alone: $s.alone, alone_as_received: $received, during_live: $s.during,
                      live_without: $l.without, live_during: $l.during,
                      ratio: ($s.alone.rows_per_sec / $ceiling.msgs_per_sec),
                      p99_ratio: (if ($l.without.p99_ms // 0) > 0 then $l.during.p99_ms / $l.without.p99_ms
                                  else null end),
                      peak_rss_kb: ([$snaps[].peak_rss_kb] | max)}}'
}

snapshot_table() {
    local s l lab val
    s=$(jq -c .snapshot "$RESULT")
    row "[snapshot] broker ceiling, $(jq -r .ceiling.size <<<"$s") B, msg/s" "$(jq -r '.ceiling.msgs_per_sec | round' <<<"$s")" "" ""
    row "[snapshot] $(jq -r .alone.rows_done <<<"$s") rows alone, rows/s" "$(jq -r '.alone.rows_per_sec | round' <<<"$s")" "" ""
    row "[snapshot] rows/s / ceiling" "$(jq -r '.ratio * 100 | round / 100' <<<"$s")" \
        ">= 0.80" "$(verdict "$(jq '.ratio >= 0.8' <<<"$s")")"
    # LOST: a committed change never arrived; ALARM: the connector met a broker resource alarm.
    for l in without during; do
        lab=$(jq -r --arg l "$l" '"[snapshot] live \(.live_rate)/s \($l)" +
            (if .["live_" + $l].all_received then "" else " LOST" end) +
            (if $l == "during" and .during_live.broker_blocked then " ALARM" else "" end) + ": p50/p99/max ms"' <<<"$s")
        val=$(jq -r --arg l "$l" '.["live_" + $l] | "\(.p50_ms // 0 | round)/\(.p99_ms // 0 | round)/\(.max_ms // 0 | round)"' <<<"$s")
        if [ "$l" = without ]; then
            row "$lab" "$val" "" ""
        else
            row "$lab" "$val" "p99 <= 2 x without, <= 50" \
                "$(verdict "$(jq '.live_during.p99_ms != null and .live_during.p99_ms <= 2 * .live_without.p99_ms and
                                  .live_during.p99_ms <= 50 and .live_during.all_received and .live_without.all_received' <<<"$s")")"
        fi
    done
    row "[snapshot] $(jq -r .during_live.rows_done <<<"$s") rows during live load, rows/s" "$(jq -r '.during_live.rows_per_sec | round' <<<"$s")" "" ""
    row "[snapshot] ms per chunk, alone/during live load" \
        "$(jq -r '"\(.alone.ms_per_chunk // 0 | round)/\(.during_live.ms_per_chunk // 0 | round)"' <<<"$s")" "" ""
    row "[snapshot] peak RSS MB during a snapshot" "$(jq -r '.peak_rss_kb / 1024 * 10 | round / 10' <<<"$s")" \
        "<= 32" "$(verdict "$(jq '.peak_rss_kb <= 32768' <<<"$s")")"
}

bench_alone snapshot "$@"
