#!/usr/bin/env bash
# bench/e2e.sh -- hms-sync's end-to-end events/s next to the broker's confirmed-publish ceiling,
# measured against the same broker, exchange and queue in the same run (see bench/README.md).
#
#   bench/e2e.sh                 N=20000 events per case, 3 repetitions, cases tx1 and tx100
#
# Settings (environment):
#   HMS_BENCH_N          events per case (default 20000)
#   HMS_BENCH_REPS       repetitions of each measurement (default 3); medians are reported
#   HMS_BENCH_CASES      space-separated NAME:ROWS_PER_TRANSACTION (default "tx1:1 tx100:100")
#   HMS_BENCH_WINDOW     unconfirmed messages in flight, connector and ceiling (default 1000)
#   HMS_BENCH_POLL_MS    how often the slot position is sampled (default 10)
#   HMS_BENCH_TIMEOUT    longest a single measurement may take, seconds (default 600)
#   HMS_BENCH_BIN        an hms-sync binary to measure (default: build Release in build-bench/)
#   HMS_BENCH_CEILING_BIN  an hms_publish_ceiling binary (default: build it next to hms-sync)
#   HMS_BENCH_RESULTS    where the JSON results go (default bench/results)
#   HMS_BENCH_KEEP_LOGS  1 keeps the connector logs' directory even on success
#
# Every measurement of a case replays the same backlog: the changes are committed once after a
# "base" slot is created, and each connector run streams from a fresh copy of that slot.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${HMS_BENCH_N:-20000}
REPS=${HMS_BENCH_REPS:-3}
CASES=${HMS_BENCH_CASES:-"tx1:1 tx100:100"}
WINDOW=${HMS_BENCH_WINDOW:-1000}
POLL_MS=${HMS_BENCH_POLL_MS:-10}
TIMEOUT_S=${HMS_BENCH_TIMEOUT:-600}
BUILD=$ROOT/build-bench
BIN=${HMS_BENCH_BIN:-}
CEIL=${HMS_BENCH_CEILING_BIN:-}
RESULTS_DIR=${HMS_BENCH_RESULTS:-$ROOT/bench/results}
ROUTING_KEY=incident.created.north # as long as a real event's key

TAG=bench_e2e_$$
DB=$TAG
ROLE=$TAG
SLOT_BASE=${TAG}_base
SLOT_RUN=${TAG}_run
EXCHANGE=bench.e2e.$$
QUEUE=bench.e2e.$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hms-bench.XXXXXX")
RUNS=$WORK/runs.jsonl
CONN_PID=
WAIT_PID=
CREATED_DB=
CREATED_TOPOLOGY=
FAILED=1

log() { echo "e2e.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

for v in N REPS WINDOW POLL_MS TIMEOUT_S; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "HMS_BENCH_${v%_S} must be a positive integer, not '${!v}'"
done
for c in $CASES; do
    [[ $c =~ ^[a-z0-9_]+:[1-9][0-9]*$ ]] || die "HMS_BENCH_CASES: '$c' is not NAME:ROWS_PER_TRANSACTION"
done
command -v jq >/dev/null || die "jq is needed (apt-get install -y jq)"
command -v psql >/dev/null || die "psql is needed (apt-get install -y postgresql-client)"

# ---- servers and binaries -------------------------------------------------------------------

"$ROOT/tests/servers.sh" start >/dev/null 2>"$WORK/servers.log" ||
    die "tests/servers.sh start failed: $(tail -1 "$WORK/servers.log")"
# shellcheck disable=SC1090
. "$("$ROOT/tests/servers.sh" env)"
RMQCTL=$HMS_TEST_RABBITMQCTL
AMQP=$HMS_TEST_AMQP
ADMIN="$HMS_TEST_PG"
ADMIN_DB="$HMS_TEST_PG dbname=$DB"
PG_PORT=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$HMS_TEST_PG")

if [ -z "$BIN" ]; then
    log "building hms-sync (Release) in $BUILD"
    if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$BUILD" -j2 --target hms-sync; } >"$WORK/build.log" 2>&1; then
        die "building hms-sync failed; see $WORK/build.log"
    fi
    BIN=$BUILD/hms-sync
fi
[ -x "$BIN" ] || die "HMS_BENCH_BIN: $BIN is not an executable"
if [ -z "$CEIL" ]; then
    # The top-level CMakeLists.txt may not include bench/ yet; then compile the one file.
    if [ -f "$BUILD/CMakeCache.txt" ] && cmake --build "$BUILD" --target help 2>/dev/null | grep -q hms_publish_ceiling; then
        cmake --build "$BUILD" --target hms_publish_ceiling >>"$WORK/build.log" 2>&1 ||
            die "building hms_publish_ceiling failed; see $WORK/build.log"
        CEIL=$BUILD/bench/hms_publish_ceiling
    else
        mkdir -p "$BUILD/bench"
        # shellcheck disable=SC2046
        gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -o "$BUILD/bench/hms_publish_ceiling" \
            "$ROOT/bench/publish_ceiling.c" $(pkg-config --cflags --libs librabbitmq) \
            >>"$WORK/build.log" 2>&1 || die "compiling bench/publish_ceiling.c failed; see $WORK/build.log"
        CEIL=$BUILD/bench/hms_publish_ceiling
    fi
fi

# ---- helpers ----------------------------------------------------------------------------------

psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN" "$@"; }
psql_db() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_DB" "$@"; }
ceiling() { "$CEIL" --url "$AMQP" --exchange "$EXCHANGE" --queue "$QUEUE" "$@"; }

# Stops the connector with SIGTERM (a clean stop), then SIGKILL if it hangs.
stop_connector() {
    [ -n "$CONN_PID" ] || return 0
    kill -TERM "$CONN_PID" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$CONN_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$CONN_PID" 2>/dev/null; then
        log "warning: hms-sync (pid $CONN_PID) ignored SIGTERM for 15 s; killing it"
        kill -KILL "$CONN_PID" 2>/dev/null || true
    fi
    wait "$CONN_PID" 2>/dev/null || true
    CONN_PID=
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

log "database $DB, exchange and queue $EXCHANGE, $N events per case, $REPS repetitions"
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
CREATE PROCEDURE public.bench_fill(n bigint, per_tx int)
LANGUAGE plpgsql AS $$
DECLARE
    done bigint := 0;
    k int;
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

# ---- one measurement each -----------------------------------------------------------------------

# Streams the case's backlog from a fresh copy of the base slot with the given sink and appends
# one JSON record to $RUNS.  Timing ends when the slot's confirmed_flush_lsn reaches $TARGET
# (everything committed has been published and confirmed) and starts at the last sample that saw
# the slot idle, just before the connector's START_REPLICATION (it connects to RabbitMQ first),
# like the ceiling's, which excludes connecting; the time from the process's start is kept as
# *_with_startup.
measure_connector() {
    local case=$1 rep=$2 sink=$3 kind=$4
    psql_db -c "SELECT 1 FROM pg_copy_logical_replication_slot('$SLOT_BASE', '$SLOT_RUN')" >/dev/null ||
        die "cannot copy slot $SLOT_BASE"
    local logf=$WORK/$case-$rep-$kind.log t0 times rc=0 which=
    # The sampler must have seen the slot idle before the connector starts, or the start of
    # streaming is unknown; it says so with a notice.
    psql_db -F ' ' -c "SELECT t_active, t_done FROM public.bench_wait('$SLOT_RUN', '$TARGET',
                         $POLL_MS / 1000.0, $TIMEOUT_S)" >"$WORK/wait.out" 2>"$WORK/wait.err" &
    WAIT_PID=$!
    for _ in $(seq 500); do
        grep -q 'bench_wait: sampling' "$WORK/wait.err" && break
        kill -0 "$WAIT_PID" 2>/dev/null || break
        sleep 0.01
    done
    grep -q 'bench_wait: sampling' "$WORK/wait.err" ||
        die "the slot sampler did not start: $(tail -1 "$WORK/wait.err")"
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
    stop_connector
    drop_slot "$SLOT_RUN" || die "cannot drop slot $SLOT_RUN"
    local t_active=${times% *} t_done=${times#* } messages=null bytes=null
    if [ "$sink" = amqp ]; then
        read -r messages bytes < <(queue_stats) || die "cannot read queue $QUEUE's stats"
        [ "$messages" -ge "$N" ] || die "queue $QUEUE holds $messages events after $kind, expected $N"
        ceiling --count 0 --purge || die "cannot purge queue $QUEUE"
    fi
    local rec
    rec=$(jq -nc --arg case "$case" --argjson rep "$rep" --arg kind "$kind" --argjson n "$N" \
        --argjson t0 "$t0" --argjson ta "$t_active" --argjson td "$t_done" \
        --argjson messages "$messages" --argjson bytes "$bytes" \
        '{case: $case, rep: $rep, kind: $kind, n: $n,
          seconds: ($td - $ta), rate: ($n / ($td - $ta)),
          seconds_with_startup: ($td - $t0), rate_with_startup: ($n / ($td - $t0)),
          queued: $messages, queued_bytes: $bytes}')
    echo "$rec" >>"$RUNS"
    log "  $case #$rep $kind: $(jq -r '"\(.rate | round) events/s in \(.seconds * 1000 | round) ms" +
        " (\(.seconds_with_startup * 1000 | round) ms with start-up)"' <<<"$rec")"
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

# ---- the cases --------------------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A SIZE
for c in $CASES; do
    name=${c%%:*}
    per_tx=${c#*:}
    log "case $name: $N inserts, $per_tx per transaction"
    psql_db -c "TRUNCATE public.incidents" || die "cannot empty public.incidents"
    psql_db -c "SELECT 1 FROM pg_create_logical_replication_slot('$SLOT_BASE', 'pgoutput')" >/dev/null ||
        die "cannot create slot $SLOT_BASE"
    psql_db -c "CALL public.bench_fill($N, $per_tx)" || die "committing the backlog failed"
    # The insert position, not pg_current_wal_lsn(): with synchronous_commit off the last
    # commits may not be written yet, and the target must not fall short of them.
    TARGET=$(psql_db -c "SELECT pg_current_wal_insert_lsn()")
    for rep in $(seq "$REPS"); do
        measure_connector "$name" "$rep" amqp e2e
        if [ -z "${SIZE[$name]:-}" ]; then
            # The ceiling publishes bodies as large as the connector's, averaged from the queue.
            SIZE[$name]=$(jq -r 'select(.case == "'"$name"'" and .kind == "e2e") | (.queued_bytes / .queued) | round' "$RUNS" | head -1)
        fi
        measure_ceiling "$name" "$rep" "${SIZE[$name]}"
        measure_connector "$name" "$rep" discard discard
    done
    drop_slot "$SLOT_BASE" || die "cannot drop slot $SLOT_BASE"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ---------------------------------------------------------------------------------------

mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT=$RESULTS_DIR/e2e-$STAMP.json
jq -s --arg date "$STAMP" --argjson n "$N" --argjson reps "$REPS" --argjson window "$WINDOW" \
    --argjson poll_ms "$POLL_MS" --arg cases "$CASES" \
    --arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --arg version "$("$BIN" --version 2>/dev/null || echo unknown)" \
    --arg pg "$(psql_admin -c 'SHOW server_version')" \
    --arg host "$(uname -srm), $(nproc) cpus" --arg load_before "$LOAD_BEFORE" \
    --arg load_after "$LOAD_AFTER" '
    def median: sort | if length == 0 then null
                       elif length % 2 == 1 then .[length / 2 | floor]
                       else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    . as $runs
    | {date: $date, commit: $commit, hms_sync: $version, postgresql: $pg, host: $host,
       loadavg_before: $load_before, loadavg_after: $load_after,
       settings: {n: $n, reps: $reps, window: $window, poll_ms: $poll_ms, cases: $cases},
       summary: [$runs | group_by(.case)[] | {
           case: .[0].case,
           n: .[0].n,
           size: (map(select(.kind == "ceiling"))[0].size),
           e2e: (map(select(.kind == "e2e").rate) | median),
           e2e_with_startup: (map(select(.kind == "e2e").rate_with_startup) | median),
           ceiling: (map(select(.kind == "ceiling").rate) | median),
           discard: (map(select(.kind == "discard").rate) | median),
           # each repetition runs e2e and ceiling back to back: their ratios cancel slow drift
           paired_ratios: (group_by(.rep) | map(
               (map(select(.kind == "e2e").rate)[0]) as $e
               | (map(select(.kind == "ceiling").rate)[0]) as $c
               | if $e != null and $c != null and $c > 0 then $e / $c else empty end))}
         | .ratio = (if .ceiling > 0 then .e2e / .ceiling else null end)
         | .paired_ratio = (.paired_ratios | median)],
       runs: $runs}' "$RUNS" >"$RESULT"
# group_by sorts by case name; show the cases in the order they ran.
{
    printf '%-8s %8s %14s %20s %6s %18s %22s\n' case N "hms-sync ev/s" "broker ceiling msg/s" ratio \
        "discard sink ev/s" "hms-sync incl. start-up"
    for c in $CASES; do
        jq -r --arg c "${c%%:*}" '.summary[] | select(.case == $c)
            | [.case, .n, (.e2e | round), (.ceiling | round), (.ratio * 100 | round / 100),
               (.discard | round), (.e2e_with_startup | round)]
            | @tsv' "$RESULT"
    done | while IFS=$'\t' read -r c n e ce r d es; do
        printf '%-8s %8s %14s %20s %6s %18s %22s\n' "$c" "$n" "$e" "$ce" "$r" "$d" "$es"
    done
}
log "medians of $REPS runs; raw numbers in ${RESULT#"$ROOT"/}"
FAILED=0
