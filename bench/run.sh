#!/usr/bin/env bash
# bench/run.sh -- the whole benchmark in one run (see bench/README.md): the broker's and the
# decoder's ceilings next to hms-sync's backlog drain and decode+encode-only rates, live commit ->
# received latency, peak RSS and CPU per event, plus instructions per event under callgrind.
# Prints one table with the issue's targets; raw numbers go to bench/results/run-<UTC>.json and
# the latency chart to bench/results/latency-<UTC>.png.
#
#   bench/run.sh            the full run (N=200000 events per case, 3 repetitions)
#   bench/run.sh --smoke    small sizes, 1 repetition, short live runs: proves the benchmark works
#                           (under ~3 minutes); it judges no target
#
# Settings (environment; the smoke mode's defaults in brackets):
#   HMS_BENCH_N            events per backlog case (200000 [2000])
#   HMS_BENCH_REPS         alternating repetitions of each backlog measurement (3 [1])
#   HMS_BENCH_CASES        NAME:ROWS_PER_TRANSACTION cases ("tx1:1 tx100:100")
#   HMS_BENCH_MEM_FACTOR   the memory stage drains MEM_FACTOR x N events (5 [2])
#   HMS_BENCH_BIG_TX       rows of the one big transaction (1000000 [20000])
#   HMS_BENCH_RATES        live commit rates per second; "max" is the measured burst rate (no
#                          connector running), "full" is pgbench unthrottled while the connector,
#                          the broker and the consumer run ("500 2000 max full" [same])
#   HMS_BENCH_LIVE_S       seconds of load per live rate (20 [3])
#   HMS_BENCH_BURST_S      seconds of the unthrottled burst that finds "max" (5 [2])
#   HMS_BENCH_CALLGRIND_ITER  harness passes for callgrind (2000 [50]); 0 skips callgrind
#   HMS_BENCH_STAGES       which stages run ("drain memory live callgrind"; e2e.sh runs "drain")
#   HMS_BENCH_WINDOW       unconfirmed messages in flight, connector and ceiling (1000)
#   HMS_BENCH_POLL_MS      how often the slot position is sampled (10)
#   HMS_BENCH_TIMEOUT      longest a single measurement may take, seconds (900)
#   HMS_BENCH_BUILD        build directory (build-bench)
#   HMS_BENCH_BIN          an hms-sync binary to measure (default: build Release in the build dir)
#   HMS_BENCH_RESULTS      where the JSON and the chart go (bench/results)
#   HMS_BENCH_KEEP_LOGS    1 keeps the work directory (logs, samples) even on success
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SMOKE=0
case "${1:-}" in
--smoke) SMOKE=1 ;;
"") ;;
*)
    sed -n '2,33p' "$0" >&2
    exit 2
    ;;
esac
if [ "$SMOKE" = 1 ]; then
    d_n=2000 d_reps=1 d_mem=2 d_big=20000 d_live=3 d_burst=2 d_cg=50
else
    d_n=200000 d_reps=3 d_mem=5 d_big=1000000 d_live=20 d_burst=5 d_cg=2000
fi
N=${HMS_BENCH_N:-$d_n}
REPS=${HMS_BENCH_REPS:-$d_reps}
CASES=${HMS_BENCH_CASES:-"tx1:1 tx100:100"}
MEM_FACTOR=${HMS_BENCH_MEM_FACTOR:-$d_mem}
BIG_TX=${HMS_BENCH_BIG_TX:-$d_big}
RATES=${HMS_BENCH_RATES:-"500 2000 max full"}
LIVE_S=${HMS_BENCH_LIVE_S:-$d_live}
BURST_S=${HMS_BENCH_BURST_S:-$d_burst}
CG_ITER=${HMS_BENCH_CALLGRIND_ITER:-$d_cg}
STAGES=" ${HMS_BENCH_STAGES:-drain memory live callgrind} "
WINDOW=${HMS_BENCH_WINDOW:-1000}
POLL_MS=${HMS_BENCH_POLL_MS:-10}
TIMEOUT_S=${HMS_BENCH_TIMEOUT:-900}
BUILD=${HMS_BENCH_BUILD:-$ROOT/build-bench}
BIN=${HMS_BENCH_BIN:-}
RESULTS_DIR=${HMS_BENCH_RESULTS:-$ROOT/bench/results}
ROUTING_KEY=incident.created.north # as long as a real event's key
PUBLICATION=hms_sync_incidents

TAG=bench_run_$$
DB=$TAG
ROLE=$TAG
SLOT_BASE=${TAG}_base
SLOT_RUN=${TAG}_run
EXCHANGE=bench.run.$$
QUEUE=bench.run.$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hms-bench.XXXXXX")
RUNS=$WORK/runs.jsonl
CONN_PID=
WAIT_PID=
CONS_PID=
CREATED_DB=
CREATED_TOPOLOGY=
FAILED=1
TICKS=$(getconf CLK_TCK)

log() { echo "run.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}
stage() { [[ $STAGES == *" $1 "* ]]; }

for v in N REPS MEM_FACTOR BIG_TX LIVE_S BURST_S WINDOW POLL_MS TIMEOUT_S; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
done
[[ $CG_ITER =~ ^[0-9]+$ ]] || die "HMS_BENCH_CALLGRIND_ITER must be a number, not '$CG_ITER'"
for c in $CASES; do
    [[ $c =~ ^[a-z0-9_]+:[1-9][0-9]*$ ]] || die "HMS_BENCH_CASES: '$c' is not NAME:ROWS_PER_TRANSACTION"
done
for r in $RATES; do
    [[ $r =~ ^([1-9][0-9]*|max|full)$ ]] || die "HMS_BENCH_RATES: '$r' is not a rate, max or full"
done
for t in jq psql pgbench; do
    command -v $t >/dev/null || die "$t is needed (scripts/install-deps.sh installs it)"
done

# ---- servers and binaries -------------------------------------------------------------------

"$ROOT/tests/servers.sh" start >/dev/null 2>"$WORK/servers.log" ||
    die "tests/servers.sh start failed: $(tail -1 "$WORK/servers.log")"
# shellcheck disable=SC1090
. "$("$ROOT/tests/servers.sh" env)"
RMQCTL=$HMS_TEST_RABBITMQCTL
AMQP=$HMS_TEST_AMQP
ADMIN="$HMS_TEST_PG"
ADMIN_DB="$HMS_TEST_PG dbname=$DB"
PGBIN=${HMS_TEST_PGBIN:-/usr/lib/postgresql/15/bin}
PG_PORT=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$HMS_TEST_PG")

log "building in $BUILD"
if [ -z "$BIN" ]; then
    { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$BUILD" -j2 --target hms-sync hms_core; } >"$WORK/build.log" 2>&1 ||
        die "building hms-sync failed; see $WORK/build.log"
    BIN=$BUILD/hms-sync
else
    { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$BUILD" -j2 --target hms_core; } >"$WORK/build.log" 2>&1 ||
        die "building hms_core failed; see $WORK/build.log"
fi
[ -x "$BIN" ] || die "HMS_BENCH_BIN: $BIN is not an executable"
# The tools are compiled here, not through CMake, so the script works whatever bench/CMakeLists.txt
# holds; the harness links the Release build's core library, the code the connector runs.
mkdir -p "$BUILD/bench"
CFLAGS_BENCH="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter"
CEIL=$BUILD/bench/hms_publish_ceiling
CONSUMER=$BUILD/bench/hms_latency_consumer
HARNESS=$BUILD/bench/hms_decode_encode
# shellcheck disable=SC2086,SC2046
{
    gcc $CFLAGS_BENCH -o "$CEIL" "$ROOT/bench/publish_ceiling.c" $(pkg-config --cflags --libs librabbitmq) &&
        gcc $CFLAGS_BENCH -o "$CONSUMER" "$ROOT/bench/latency_consumer.c" $(pkg-config --cflags --libs librabbitmq) &&
        gcc $CFLAGS_BENCH -I"$ROOT/src" -o "$HARNESS" "$ROOT/bench/decode_encode.c" "$BUILD/libhms_core.a" \
            $(pkg-config --libs json-c inih) -lm
} >>"$WORK/build.log" 2>&1 || die "compiling the bench tools failed; see $WORK/build.log"

# ---- helpers ----------------------------------------------------------------------------------

psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN" "$@"; }
psql_db() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_DB" "$@"; }
ceiling() { "$CEIL" --url "$AMQP" --exchange "$EXCHANGE" --queue "$QUEUE" "$@"; }

stop_pid() { # PID NAME: SIGTERM (a clean stop), SIGKILL after 15 s
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "warning: $2 (pid $pid) ignored SIGTERM for 15 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
stop_connector() {
    [ -n "$CONN_PID" ] || return 0
    stop_pid "$CONN_PID" hms-sync
    CONN_PID=
}

# "PEAK_RSS_KB CPU_SECONDS" of a running process: VmHWM, and user+system time from /proc.
proc_usage() {
    local pid=$1 hwm stat
    hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
    stat=$(sed 's/.*) //' "/proc/$pid/stat") # fields from the third on; utime, stime are 14, 15
    awk -v h="$hwm" -v t="$TICKS" '{ printf "%s %.3f\n", h, ($12 + $13) / t }' <<<"$stat"
}

# Drops a slot once its walsender has let go of it (that takes a moment after the client exits).
drop_slot() {
    local slot=$1
    for _ in $(seq 100); do
        local st
        st=$(psql_admin -c "SELECT CASE WHEN active THEN 'active' ELSE 'idle' END
                              FROM pg_replication_slots WHERE slot_name = '$slot'") || return 1
        [ -z "$st" ] && return 0
        if [ "$st" = idle ]; then
            psql_admin -c "SELECT pg_drop_replication_slot('$slot')" >/dev/null && return 0
        fi
        sleep 0.1
    done
    log "warning: slot $slot is still active after 10 s; drop it by hand"
    return 1
}

cleanup() {
    local rc=$?
    set +e
    [ -n "$WAIT_PID" ] && kill "$WAIT_PID" 2>/dev/null && wait "$WAIT_PID" 2>/dev/null
    [ -n "$CONS_PID" ] && kill "$CONS_PID" 2>/dev/null && wait "$CONS_PID" 2>/dev/null
    stop_connector
    if [ -n "$CREATED_DB" ]; then
        drop_slot "$SLOT_RUN"
        drop_slot "$SLOT_BASE"
        psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
        psql_admin -c "DROP ROLE IF EXISTS $ROLE" >/dev/null
    fi
    [ -n "$CREATED_TOPOLOGY" ] && ceiling --count 0 --delete >/dev/null
    if [ "$FAILED" = 1 ] || [ "${HMS_BENCH_KEEP_LOGS:-0}" = 1 ]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- database, role, topology -----------------------------------------------------------------

log "database $DB, exchange and queue $EXCHANGE; N=$N, $REPS repetitions, stages:$STAGES"
CREATED_DB=1
psql_admin -c "CREATE DATABASE $DB" >/dev/null || die "cannot create database $DB"
"$BIN" migrate --pg "$ADMIN_DB" --log-level warn >"$WORK/migrate.log" 2>&1 ||
    die "hms-sync migrate failed: $(tail -1 "$WORK/migrate.log")"

# The connector logs in with hms_sync's privileges through a member role of its own, so the
# shared hms_sync role's password (which the integration tests set) is left alone.
PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
psql_admin -c "CREATE ROLE $ROLE LOGIN REPLICATION PASSWORD '$PASSWORD' IN ROLE hms_sync" >/dev/null ||
    die "cannot create role $ROLE"
CONNECTOR_PG="host=127.0.0.1 port=$PG_PORT user=$ROLE password=$PASSWORD dbname=$DB"

psql_db <<'SQL' || die "cannot install the benchmark's helper functions in $DB"
-- Autovacuum would otherwise wake up mid-measurement on the freshly filled table.
ALTER TABLE public.incidents SET (autovacuum_enabled = off);

-- Commits n inserted rows, per_tx rows per transaction.
CREATE PROCEDURE public.bench_fill(n bigint, per_tx bigint)
LANGUAGE plpgsql AS $$
DECLARE
    done bigint := 0;
    k bigint;
BEGIN
    WHILE done < n LOOP
        k := least(per_tx, n - done);
        INSERT INTO public.incidents (region, severity, status, summary, reported_by)
        SELECT (ARRAY['north', 'south', 'east', 'west', 'metro'])[1 + (done + g) % 5],
               1 + (done + g) % 5, 'open',
               'Benchmark incident ' || (done + g) ||
               ': patient fall near the ward entrance, no injury, follow-up requested',
               'nurse.' || ((done + g) % 97)
          FROM generate_series(1, k) AS g;
        COMMIT;
        done := done + k;
    END LOOP;
END
$$;

-- Samples the slot every poll_s seconds until its confirmed_flush_lsn reaches target; returns
-- the wall-clock times (epoch seconds) of the last sample that saw it inactive (so the streaming
-- time is never under-estimated) and of the first that saw it reach the target.  Polling inside
-- the server keeps the sampling cheap and its timing free of client start-up.
CREATE FUNCTION public.bench_wait(slot text, target pg_lsn, poll_s float8, timeout_s float8,
                                  OUT t_active float8, OUT t_done float8)
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
    s record;
    t_sample float8;
    t_inactive float8;
BEGIN
    LOOP
        t_sample := extract(epoch FROM clock_timestamp());
        SELECT active, confirmed_flush_lsn INTO s FROM pg_replication_slots WHERE slot_name = slot;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'slot % disappeared', slot;
        END IF;
        IF NOT s.active AND t_active IS NULL THEN
            IF t_inactive IS NULL THEN
                RAISE NOTICE 'bench_wait: sampling';
            END IF;
            t_inactive := t_sample;
        ELSIF t_active IS NULL THEN
            t_active := t_inactive;
        END IF;
        IF s.confirmed_flush_lsn >= target THEN
            t_done := extract(epoch FROM clock_timestamp());
            t_active := coalesce(t_active, t_inactive); -- it streamed between two samples
            RETURN;
        END IF;
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'slot % confirmed only up to %, not %, within % s',
                slot, s.confirmed_flush_lsn, target, timeout_s;
        END IF;
        PERFORM pg_sleep(poll_s);
    END LOOP;
END
$$;
SQL

CREATED_TOPOLOGY=1
ceiling --count 0 --declare --purge || die "cannot declare exchange and queue $EXCHANGE"

# Messages and body bytes in the queue, "MESSAGES BYTES".
queue_stats() {
    "$RMQCTL" -q list_queues --no-table-headers name messages message_bytes |
        awk -v q="$QUEUE" '$1 == q { print $2, $3; found = 1 } END { if (!found) exit 1 }'
}

# Starts a consumer that empties the queue as the connector fills it (so a long run does not pile
# up gigabytes in the broker) and waits until the broker has accepted its subscription.
start_consumer() { # COUNT OUT [SAMPLES]
    local count=$1 out=$2 samples=${3:-}
    "$CONSUMER" --url "$AMQP" --queue "$QUEUE" --count "$count" --idle 5 --wait "$TIMEOUT_S" \
        ${samples:+--samples "$samples"} >"$out" 2>"$out.err" &
    CONS_PID=$!
    for _ in $(seq 300); do
        grep -q '^ready' "$out.err" && return 0
        kill -0 "$CONS_PID" 2>/dev/null || break
        sleep 0.02
    done
    die "the latency consumer did not start: $(tail -1 "$out.err")"
}
wait_consumer() {
    wait "$CONS_PID" || die "the latency consumer failed: $(tail -1 "$1.err")"
    CONS_PID=
}

# ---- one measurement each -----------------------------------------------------------------------

# Streams the backlog from a fresh copy of the base slot with the given sink and appends one JSON
# record to $RUNS: rate (from the slot turning active, just before START_REPLICATION, to its
# confirmed_flush_lsn reaching $TARGET), rate with start-up, and the connector's peak RSS and CPU
# seconds read from /proc just before it is stopped.  With drain=1 a consumer empties the queue.
measure_connector() {
    local case=$1 rep=$2 sink=$3 kind=$4 n=$5 drain=${6:-0}
    local logf=$WORK/$case-$rep-$kind.log t0 times rc=0 which='' usage
    [ "$drain" = 1 ] && start_consumer "$n" "$WORK/$case-$rep-$kind.consumer"
    # The sampler must have seen the slot idle before the connector starts, or the start of
    # streaming is unknown; it says so with a notice.  A sampler that does not start within
    # 30 s (seen once in a smoke run, not understood) is retried once on a fresh copy.
    local attempt
    for attempt in 1 2; do
        psql_db -c "SELECT 1 FROM pg_copy_logical_replication_slot('$SLOT_BASE', '$SLOT_RUN')" >/dev/null ||
            die "cannot copy slot $SLOT_BASE"
        psql_db -F ' ' -c "SELECT t_active, t_done FROM public.bench_wait('$SLOT_RUN', '$TARGET',
                             $POLL_MS / 1000.0, $TIMEOUT_S)" >"$WORK/wait.out" 2>"$WORK/wait.err" &
        WAIT_PID=$!
        for _ in $(seq 3000); do
            grep -q 'bench_wait: sampling' "$WORK/wait.err" && break
            kill -0 "$WAIT_PID" 2>/dev/null || break
            sleep 0.01
        done
        grep -q 'bench_wait: sampling' "$WORK/wait.err" && break
        kill "$WAIT_PID" 2>/dev/null
        wait "$WAIT_PID" 2>/dev/null
        WAIT_PID=
        local why slots
        why=$(tail -1 "$WORK/wait.err")
        slots=$(psql_admin -c "SELECT string_agg(slot_name || CASE WHEN active THEN ' (active)' ELSE '' END, ', ') FROM pg_replication_slots")
        [ "$attempt" = 2 ] && die "the slot sampler did not start: ${why:-no output}; slots: $slots"
        log "warning: the slot sampler did not start (${why:-no output}; slots: $slots); retrying"
        drop_slot "$SLOT_RUN" || die "cannot drop slot $SLOT_RUN"
    done
    t0=$(date +%s.%N)
    HMS_SYNC_PG=$CONNECTOR_PG HMS_SYNC_AMQP=$AMQP "$BIN" run --slot "$SLOT_RUN" \
        --exchange "$EXCHANGE" --window "$WINDOW" --sink "$sink" --log-level warn >"$logf" 2>&1 &
    CONN_PID=$!
    wait -n -p which "$WAIT_PID" "$CONN_PID" || rc=$?
    if [ "$which" = "$CONN_PID" ]; then
        CONN_PID=
        die "hms-sync run ($kind, $case #$rep) exited early (status $rc): $(tail -1 "$logf")"
    fi
    WAIT_PID=
    [ "$rc" = 0 ] || die "waiting for slot $SLOT_RUN ($kind, $case #$rep): $(tail -1 "$WORK/wait.err")"
    times=$(cat "$WORK/wait.out")
    usage=$(proc_usage "$CONN_PID")
    local blocked
    blocked=$(grep -c 'blocked publishing' "$logf" || true)
    stop_connector
    drop_slot "$SLOT_RUN" || die "cannot drop slot $SLOT_RUN"
    local t_active=${times% *} t_done=${times#* } messages=null bytes=null received=null
    if [ "$drain" = 1 ]; then
        wait_consumer "$WORK/$case-$rep-$kind.consumer"
        received=$(jq .received "$WORK/$case-$rep-$kind.consumer")
        [ "$received" -ge "$n" ] || die "the consumer received $received events after $kind, expected $n"
    elif [ "$sink" = amqp ]; then
        read -r messages bytes < <(queue_stats) || die "cannot read queue $QUEUE's stats"
        [ "$messages" -ge "$n" ] || die "queue $QUEUE holds $messages events after $kind, expected $n"
        ceiling --count 0 --purge || die "cannot purge queue $QUEUE"
    fi
    local rec
    rec=$(jq -nc --arg case "$case" --argjson rep "$rep" --arg kind "$kind" --argjson n "$n" \
        --argjson t0 "$t0" --argjson ta "$t_active" --argjson td "$t_done" \
        --argjson messages "$messages" --argjson bytes "$bytes" --argjson received "$received" \
        --argjson rss "${usage% *}" --argjson cpu "${usage#* }" --argjson blocked "$blocked" \
        '{case: $case, rep: $rep, kind: $kind, n: $n,
          seconds: ($td - $ta), rate: ($n / ($td - $ta)),
          seconds_with_startup: ($td - $t0), rate_with_startup: ($n / ($td - $t0)),
          queued: $messages, queued_bytes: $bytes, consumed: $received,
          peak_rss_kb: $rss, cpu_seconds: $cpu, cpu_s_per_100k: ($cpu / $n * 100000),
          broker_blocked: ($blocked > 0)}')
    echo "$rec" >>"$RUNS"
    log "  $case #$rep $kind: $(jq -r '"\(.rate | round) events/s in \(.seconds * 1000 | round) ms" +
        " (\(.seconds_with_startup * 1000 | round) ms with start-up), peak RSS \(.peak_rss_kb / 1024 * 10 | round / 10) MB," +
        " \(.cpu_s_per_100k * 100 | round / 100) CPU s/100k"' <<<"$rec")"
}

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
    psql_db -c "SELECT 1 FROM pg_copy_logical_replication_slot('$SLOT_BASE', '$SLOT_RUN')" >/dev/null ||
        die "cannot copy slot $SLOT_BASE"
    t0=$(date +%s.%N)
    timeout "$TIMEOUT_S" "$PGBIN/pg_recvlogical" -d "$ADMIN_DB" --slot "$SLOT_RUN" --start \
        --endpos "$TARGET" --no-loop -F 0 -o proto_version=1 -o publication_names=$PUBLICATION \
        -f /dev/null 2>"$WORK/recvlogical.err" ||
        die "pg_recvlogical failed ($case #$rep): $(tail -1 "$WORK/recvlogical.err")"
    t1=$(date +%s.%N)
    drop_slot "$SLOT_RUN" || die "cannot drop slot $SLOT_RUN"
    jq -nc --arg case "$case" --argjson rep "$rep" --argjson n "$N" --argjson t0 "$t0" --argjson t1 "$t1" \
        '{case: $case, rep: $rep, kind: "recvlogical", n: $n, seconds_with_startup: ($t1 - $t0),
          rate_with_startup: ($n / ($t1 - $t0))}' >>"$RUNS"
    log "  $case #$rep pg_recvlogical: $(tail -1 "$RUNS" | jq -r '.rate_with_startup | floor') events/s"
}

# Commits a backlog of n rows, per_tx per transaction, behind a fresh base slot; sets TARGET.
make_backlog() {
    local n=$1 per_tx=$2
    psql_db -c "TRUNCATE public.incidents" || die "cannot empty public.incidents"
    psql_db -c "SELECT 1 FROM pg_create_logical_replication_slot('$SLOT_BASE', 'pgoutput')" >/dev/null ||
        die "cannot create slot $SLOT_BASE"
    psql_db -c "CALL public.bench_fill($n, $per_tx)" || die "committing the backlog failed"
    # The insert position, not pg_current_wal_lsn(): with synchronous_commit off the last
    # commits may not be written yet, and the target must not fall short of them.
    TARGET=$(psql_db -c "SELECT pg_current_wal_insert_lsn()")
    # Write the backlog's dirty pages out now, so that a checkpoint does not run during (and
    # slow) whichever measurement happens to come first.
    psql_admin -c "CHECKPOINT" || die "CHECKPOINT failed"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)
: >"$RUNS"

# ---- stage: backlog drain -----------------------------------------------------------------------

if stage drain; then
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
        drop_slot "$SLOT_BASE" || die "cannot drop slot $SLOT_BASE"
    done
fi

# ---- stage: memory at MEM_FACTOR x N and in one big transaction ----------------------------------

if stage memory; then
    big_n=$((N * MEM_FACTOR))
    log "memory: a backlog of $big_n events, 100 per transaction, drained by a consumer"
    make_backlog "$big_n" 100
    measure_connector "mem_${MEM_FACTOR}n" 1 amqp e2e "$big_n" 1
    drop_slot "$SLOT_BASE" || die "cannot drop slot $SLOT_BASE"
    log "memory: one transaction of $BIG_TX rows, drained by a consumer"
    make_backlog "$BIG_TX" "$BIG_TX"
    measure_connector big_tx 1 amqp e2e "$BIG_TX" 1
    drop_slot "$SLOT_BASE" || die "cannot drop slot $SLOT_BASE"
fi

# ---- stage: live latency ------------------------------------------------------------------------

LIVE=$WORK/live.jsonl
: >"$LIVE"
LIVE_CEILING=null
if stage live; then
    cat >"$WORK/insert.sql" <<'SQL'
INSERT INTO public.incidents (region, severity, status, summary, reported_by)
VALUES ('north', 3, 'open', 'Live benchmark incident: patient fall near the ward entrance, no injury, follow-up requested', 'nurse.live');
SQL
    # synchronous_commit on for the writers: the scratch server runs with it off, and then a
    # walsender only sees a commit once the WAL writer flushes it (every wal_writer_delay, 200 ms),
    # which would add up to 200 ms to every event whatever the connector does.  With fsync off a
    # synchronous commit still costs no disk flush.
    pgb() { PGOPTIONS="-c synchronous_commit=on" pgbench -n -f "$WORK/insert.sql" -c 4 -j 2 "$@" "$ADMIN_DB"; }
    psql_db -c "TRUNCATE public.incidents" || die "cannot empty public.incidents"
    # The highest commit rate PostgreSQL sustains here: an unthrottled burst, no slot, no connector.
    pgb -T "$BURST_S" >"$WORK/burst.out" 2>&1 || die "pgbench burst failed: $(tail -1 "$WORK/burst.out")"
    MAX_RATE=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/burst.out" | head -1)
    [ -n "$MAX_RATE" ] || die "cannot read pgbench's rate from $WORK/burst.out"
    MAX_RATE=${MAX_RATE%.*}
    log "live: unthrottled burst of $BURST_S s: $MAX_RATE commits/s"
    psql_db -c "SELECT 1 FROM pg_create_logical_replication_slot('$SLOT_RUN', 'pgoutput')" >/dev/null ||
        die "cannot create slot $SLOT_RUN"
    HMS_SYNC_PG=$CONNECTOR_PG HMS_SYNC_AMQP=$AMQP "$BIN" run --slot "$SLOT_RUN" \
        --exchange "$EXCHANGE" --window "$WINDOW" --log-level warn >"$WORK/live-connector.log" 2>&1 &
    CONN_PID=$!
    for _ in $(seq 300); do
        [ "$(psql_admin -c "SELECT active FROM pg_replication_slots WHERE slot_name = '$SLOT_RUN'")" = t ] && break
        kill -0 "$CONN_PID" 2>/dev/null || die "hms-sync exited: $(tail -1 "$WORK/live-connector.log")"
        sleep 0.1
    done
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
    blocked_before=0
    for r in $RATES; do
        rate=$r
        [ "$r" = max ] && rate=$MAX_RATE
        out=$WORK/live-$r.json
        start_consumer 0 "$out" "$WORK/live-$r.samples"
        throttle=(-R "$rate")
        # full: as fast as PostgreSQL commits while sharing the machine with the whole pipeline.
        [ "$r" = full ] && rate=0 && throttle=()
        pgb "${throttle[@]}" -T "$LIVE_S" >"$WORK/live-$r.pgbench" 2>&1 ||
            die "pgbench at ${rate}/s failed: $(tail -1 "$WORK/live-$r.pgbench")"
        wait_consumer "$out"
        committed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/live-$r.pgbench")
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/live-$r.pgbench" | head -1)
        # A broker resource alarm (another user of the shared broker) stalls everything: say so.
        blocked=$(($(grep -c 'blocked publishing' "$WORK/live-connector.log" || true) - blocked_before))
        blocked_before=$((blocked_before + blocked))
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
    done
    stop_connector
    drop_slot "$SLOT_RUN" || die "cannot drop slot $SLOT_RUN"
    if [[ " $RATES " == *" full "* ]]; then
        # The broker's own ceiling under the same load: pgbench unthrottled again (no slot, no
        # connector) while hms_publish_ceiling publishes event-sized messages to the queue and a
        # consumer empties it, as in the live runs.  Side by side with what hms-sync delivered
        # under that load, it tells the connector's cost from the machine's limit.
        ceil_n=$((LIVE_S * 4000))
        start_consumer "$ceil_n" "$WORK/live-ceiling.consumer"
        pgb -T $((2 * LIVE_S)) >"$WORK/live-ceiling.pgbench" 2>&1 &
        pgb_pid=$!
        sleep 1
        out=$(ceiling --routing-key "$ROUTING_KEY" --count "$ceil_n" --size "${size:-805}" \
            --window "$WINDOW") || die "hms_publish_ceiling under load failed"
        wait "$pgb_pid" || die "pgbench under the ceiling failed: $(tail -1 "$WORK/live-ceiling.pgbench")"
        wait_consumer "$WORK/live-ceiling.consumer"
        LIVE_CEILING=$(jq -c --argjson tps "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/live-ceiling.pgbench" | head -1)" \
            '{count, size, msgs_per_sec, pgbench_rate: $tps}' <<<"$(tail -1 <<<"$out")")
        log "  live ceiling: the broker confirms $(jq -r '.msgs_per_sec | round' <<<"$LIVE_CEILING") msg/s" \
            "with a consumer while pgbench commits $(jq -r '.pgbench_rate | round' <<<"$LIVE_CEILING")/s"
    fi
    if command -v gnuplot >/dev/null; then
        # Latency against percentile (sorted samples), one line per rate.
        plot=
        for r in $RATES; do
            sort -n -k2,2 "$WORK/live-$r.samples" |
                awk '{ v[NR] = $2 } END { for (i = 1; i <= NR; i++) print 100 * i / NR, v[i] }' \
                    >"$WORK/live-$r.cdf"
            [ -s "$WORK/live-$r.cdf" ] || continue
            rate=$(jq -r --arg l "$r" 'select(.label == $l) | .achieved_rate | round' "$LIVE")
            plot="$plot${plot:+, }'$WORK/live-$r.cdf' using 1:2 with lines lw 2 title '$r ($rate/s)'"
        done
    fi
fi

# ---- stage: callgrind --------------------------------------------------------------------------

CG=null
if stage callgrind && [ "$CG_ITER" -gt 0 ]; then
    if command -v valgrind >/dev/null; then
        log "callgrind: decode+encode of the captured inserts, $CG_ITER and $((2 * CG_ITER)) passes"
        # The difference of two runs cancels start-up, loading the files and valgrind's own cost.
        cg_run() {
            valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$1" "$HARNESS" \
                --iterations "$1" "$ROOT"/tests/data/pgoutput/insert_{single,multi}.hex \
                >"$WORK/cg.$1.out" 2>"$WORK/cg.$1.err" || die "callgrind failed; see $WORK/cg.$1.err"
            echo "$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$WORK/cg.$1.err") $(jq .events "$WORK/cg.$1.out")"
        }
        read -r ir1 ev1 < <(cg_run "$CG_ITER")
        read -r ir2 ev2 < <(cg_run $((2 * CG_ITER)))
        native=$("$HARNESS" --iterations 20000 "$ROOT"/tests/data/pgoutput/insert_{single,multi}.hex)
        CG=$(jq -nc --argjson ir1 "$ir1" --argjson ev1 "$ev1" --argjson ir2 "$ir2" --argjson ev2 "$ev2" \
            --argjson native "$native" \
            '{events: [$ev1, $ev2], instructions: [$ir1, $ir2],
              instructions_per_event: (($ir2 - $ir1) / ($ev2 - $ev1) | round),
              native_ns_per_event: $native.ns_per_event, avg_body_bytes: $native.avg_body_bytes}')
        log "  $(jq -r '"\(.instructions_per_event) instructions per event, \(.native_ns_per_event) ns per event natively"' <<<"$CG")"
    else
        log "callgrind: valgrind is not installed; skipped"
    fi
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(($(date +%s) - T_START))

# ---- report ---------------------------------------------------------------------------------------

mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT=$RESULTS_DIR/run-$STAMP.json
[ "$SMOKE" = 1 ] && RESULT=$WORK/run-smoke.json
jq -s --arg date "$STAMP" --argjson smoke "$SMOKE" --argjson n "$N" --argjson reps "$REPS" \
    --argjson window "$WINDOW" --argjson poll_ms "$POLL_MS" --arg cases "$CASES" \
    --argjson mem_factor "$MEM_FACTOR" --argjson big_tx "$BIG_TX" --arg rates "$RATES" \
    --argjson live_s "$LIVE_S" --argjson elapsed "$ELAPSED" --argjson callgrind "$CG" \
    --argjson live_ceiling "$LIVE_CEILING" \
    --slurpfile live "$LIVE" \
    --arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --arg version "$("$BIN" --version 2>/dev/null || echo unknown)" \
    --arg pg "$(psql_admin -c 'SHOW server_version')" \
    --arg host "$(uname -srm)" --argjson nproc "$(nproc)" \
    --arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
    --arg load_before "$LOAD_BEFORE" --arg load_after "$LOAD_AFTER" '
    def median: sort | if length == 0 then null
                       elif length % 2 == 1 then .[length / 2 | floor]
                       else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def ratio($a; $b): if $a != null and $b != null and $b > 0 then $a / $b else null end;
    . as $runs
    | {date: $date, smoke: ($smoke == 1), commit: $commit, hms_sync: $version, postgresql: $pg,
       host: $host, nproc: $nproc, cpu_model: $cpu,
       loadavg_before: $load_before, loadavg_after: $load_after, elapsed_seconds: $elapsed,
       settings: {n: $n, reps: $reps, window: $window, poll_ms: $poll_ms, cases: $cases,
                  mem_factor: $mem_factor, big_tx: $big_tx, rates: $rates, live_seconds: $live_s},
       backlog: [$runs | map(select(.case | test("^(mem_|big_tx)") | not)) | group_by(.case)[] | {
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
         | .paired_decode_ratio = (.paired_decode_ratios | median)],
       memory: [$runs[] | select(.case | test("^(mem_|big_tx)"))],
       live: $live,
       live_ceiling: $live_ceiling,
       callgrind: $callgrind,
       runs: $runs}' "$RUNS" >"$RESULT"

if stage live && command -v gnuplot >/dev/null && [ -n "${plot:-}" ]; then
    PNG=${RESULT%.json}.png
    PNG=${PNG/run-/latency-}
    gnuplot <<GP || log "warning: gnuplot failed; no chart"
set terminal pngcairo size 900,560 noenhanced
set output '$PNG'
set title 'hms-sync commit -> received latency ($STAMP, $(nproc) cpus, load $LOAD_BEFORE)'
set xlabel 'percentile of events'
set ylabel 'latency (ms)'
set logscale y
set grid
set key top left
set xrange [0:100]
plot $plot
GP
    [ -f "$PNG" ] && jq --arg png "$(basename "$PNG")" '.chart = $png' "$RESULT" >"$RESULT.tmp" &&
        mv "$RESULT.tmp" "$RESULT"
fi

# The table: every figure with its target.  The smoke run proves the benchmark works; its sizes
# are too small to judge anything, so it prints the figures without verdicts.
verdict() { # OK?
    if [ "$SMOKE" = 1 ]; then echo "(smoke)"; elif [ "$1" = true ]; then echo met; else echo "NOT met"; fi
}
row() { printf '%-44s %16s  %-26s %s\n' "$1" "$2" "$3" "$4"; }
{
    row measurement value target verdict
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
    base_rss=$(jq '[.backlog[].peak_rss_kb] | max // 0' "$RESULT")
    jq -c '.memory[]' "$RESULT" | while read -r m; do
        label=$(jq -r 'if .case == "big_tx" then "1 transaction of \(.n) rows" else "drain of \(.n)" end' <<<"$m")
        row "6 peak RSS MB, $label" "$(jq -r '.peak_rss_kb / 1024 * 10 | round / 10' <<<"$m")" \
            "<= 32, flat (+10% of N)" \
            "$(verdict "$(jq --argjson b "$base_rss" '.peak_rss_kb <= 32768 and .peak_rss_kb <= ($b * 1.1 + 1024)' <<<"$m")")"
        row "7 CPU s per 100k events, $label" "$(jq -r '.cpu_s_per_100k * 100 | round / 100' <<<"$m")" \
            "<= 1.0" "$(verdict "$(jq '.cpu_s_per_100k <= 1' <<<"$m")")"
    done
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
    if [ "$CG" != null ]; then
        row "decode+encode instructions per event" "$(jq -r .instructions_per_event <<<"$CG")" "(tracked)" ""
    fi
}
log "medians of $REPS runs in $ELAPSED s; load average $LOAD_BEFORE before, $LOAD_AFTER after"
if [ "$SMOKE" = 1 ]; then
    log "smoke run: the JSON stays in the work directory ($RESULT) and is removed"
else
    log "raw numbers in ${RESULT#"$ROOT"/}"
fi
FAILED=0
