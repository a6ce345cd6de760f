# bench/lib.sh -- what every benchmark script shares: settings, servers and binaries, the database
# and topology, helpers, the measurements more than one stage makes, clean-up and the report.
# Sourced, not run.  Each stage script (drain.sh, outbox.sh, memory.sh, live.sh, snapshot.sh,
# subscriber.sh, callgrind.sh, validate.sh) defines STAGE_stage (its measurements), STAGE_results
# (its part of the JSON) and STAGE_table (its rows of the table) and ends in bench_alone, so it
# runs alone; bench/run.sh sources them all and calls bench_main once, so that they share one
# set-up, one table and one JSON.
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
#   HMS_BENCH_SNAPSHOT_ROWS   existing rows the snapshot stage reads (1000000 [20000])
#   HMS_BENCH_SNAPSHOT_RATE   live commits per second while it does (1000)
#   HMS_BENCH_SNAPSHOT_CHUNK  the connector's --snapshot_chunk (its default)
#   HMS_BENCH_SUB_N        events of the subscriber stage's backlog (50000 [2000])
#   HMS_BENCH_SUB_BATCHES  consume --batch sizes it measures; the largest is judged, the first
#                          also runs the live latency next to batch 1 ("100 1" [same])
#   HMS_BENCH_SUB_RATE     live commits per second while it times commit -> applied (200)
#   HMS_BENCH_SUB_PARTITIONS  consume --partitions counts it measures with the largest batch, next
#                          to one queue ("4" [same]; empty: none)
#   HMS_BENCH_CALLGRIND_ITER  harness passes for callgrind (2000 [50]); 0 skips callgrind
#   HMS_BENCH_VALIDATE_N   the validate stage's events per native round, 5 rounds [3] (200000 [2000])
#   HMS_BENCH_VALIDATE_CG  its events per side under callgrind, over a run of one (1000 [100]); 0 skips
#                          the instruction counts
#   HMS_BENCH_STAGES       which stages bench/run.sh runs ("drain outbox memory live snapshot
#                          subscriber callgrind validate"); a stage script runs its own stage whatever
#                          this says
#   HMS_BENCH_WINDOW       unconfirmed messages in flight, connector and ceiling (1000)
#   HMS_BENCH_POLL_MS      how often the slot position is sampled (10)
#   HMS_BENCH_TIMEOUT      longest a single measurement may take, seconds (900)
#   HMS_BENCH_BUILD        build directory (build-bench)
#   HMS_BENCH_BIN          an hms-sync binary to measure (default: build Release in the build dir)
#   HMS_BENCH_RESULTS      where the JSON and the chart go (bench/results)
#   HMS_BENCH_KEEP_LOGS    1 keeps the work directory (logs, samples) even on success

# shellcheck shell=bash

# Each stage script sources this file, and run.sh sources them all: once is enough.
[ -z "${BENCH_LIB:-}" ] || return 0
BENCH_LIB=${BASH_SOURCE[0]}
ROOT=$(cd "$(dirname "$BENCH_LIB")/.." && pwd)
# The order the stages run in when one run holds several: the live stage's broker ceiling uses
# the event size the drain stage measured, when it ran first.
BENCH_ORDER="drain outbox memory live snapshot subscriber callgrind validate"
# Names the log lines and the results file: run.sh writes run-<UTC>.json, drain.sh drain-<UTC>.json.
BENCH_NAME=$(basename "$0" .sh)

log() { echo "$BENCH_NAME.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}
stage() { [[ $STAGES == *" $1 "* ]]; }

# The calling script's header comment, then the settings above: the usage of every script.
usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" >&2
    awk '/^# Settings/ { on = 1 } on && !/^#/ { exit } on' "$BENCH_LIB" >&2
}

# ---- settings ---------------------------------------------------------------------------------

# shellcheck disable=SC2034 # the stage scripts use what this sets
bench_settings() { # [--smoke]
    SMOKE=0
    case "${1:-}" in
    --smoke) SMOKE=1 ;;
    "") ;;
    *)
        usage
        exit 2
        ;;
    esac
    local d_n d_reps d_mem d_big d_live d_burst d_cg d_snap d_vn d_vr d_vcg d_sub v c r t
    if [ "$SMOKE" = 1 ]; then
        d_n=2000 d_reps=1 d_mem=2 d_big=20000 d_live=3 d_burst=2 d_cg=50 d_snap=20000
        d_vn=2000 d_vr=3 d_vcg=100 d_sub=2000
    else
        d_n=200000 d_reps=3 d_mem=5 d_big=1000000 d_live=20 d_burst=5 d_cg=2000 d_snap=1000000
        d_vn=200000 d_vr=5 d_vcg=1000 d_sub=50000
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
    VAL_N=${HMS_BENCH_VALIDATE_N:-$d_vn}
    VAL_ROUNDS=$d_vr
    VAL_CG=${HMS_BENCH_VALIDATE_CG:-$d_vcg}
    SNAP_ROWS=${HMS_BENCH_SNAPSHOT_ROWS:-$d_snap}
    SNAP_RATE=${HMS_BENCH_SNAPSHOT_RATE:-1000}
    SNAP_CHUNK=${HMS_BENCH_SNAPSHOT_CHUNK:-}
    SUB_N=${HMS_BENCH_SUB_N:-$d_sub}
    SUB_BATCHES=${HMS_BENCH_SUB_BATCHES:-"100 1"}
    SUB_RATE=${HMS_BENCH_SUB_RATE:-200}
    SUB_PARTITIONS=${HMS_BENCH_SUB_PARTITIONS-4}
    WINDOW=${HMS_BENCH_WINDOW:-1000}
    POLL_MS=${HMS_BENCH_POLL_MS:-10}
    TIMEOUT_S=${HMS_BENCH_TIMEOUT:-900}
    BUILD=${HMS_BENCH_BUILD:-$ROOT/build-bench}
    BIN=${HMS_BENCH_BIN:-}
    RESULTS_DIR=${HMS_BENCH_RESULTS:-$ROOT/bench/results}
    ROUTING_KEY=incident.created.north # as long as a real event's key
    PUBLICATION=hms_sync_incidents

    for v in N REPS MEM_FACTOR BIG_TX LIVE_S BURST_S SNAP_ROWS SNAP_RATE WINDOW POLL_MS TIMEOUT_S VAL_N \
        SUB_N SUB_RATE; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, not '${!v}'"
    done
    [[ $CG_ITER =~ ^[0-9]+$ ]] || die "HMS_BENCH_CALLGRIND_ITER must be a number, not '$CG_ITER'"
    [[ $VAL_CG =~ ^[0-9]+$ ]] || die "HMS_BENCH_VALIDATE_CG must be a number, not '$VAL_CG'"
    [[ $SNAP_CHUNK =~ ^([1-9][0-9]*)?$ ]] || die "HMS_BENCH_SNAPSHOT_CHUNK must be a number, not '$SNAP_CHUNK'"
    for c in $CASES; do
        [[ $c =~ ^[a-z0-9_]+:[1-9][0-9]*$ ]] || die "HMS_BENCH_CASES: '$c' is not NAME:ROWS_PER_TRANSACTION"
    done
    for r in $RATES; do
        [[ $r =~ ^([1-9][0-9]*|max|full)$ ]] || die "HMS_BENCH_RATES: '$r' is not a rate, max or full"
    done
    [[ $SUB_BATCHES =~ ^\ *[1-9][0-9]*(\ +[1-9][0-9]*)*\ *$ ]] ||
        die "HMS_BENCH_SUB_BATCHES must be batch sizes (positive integers), not '$SUB_BATCHES'"
    [[ $SUB_PARTITIONS =~ ^\ *([1-9][0-9]*(\ +[1-9][0-9]*)*)?\ *$ ]] ||
        die "HMS_BENCH_SUB_PARTITIONS must be partition counts (positive integers) or empty, not '$SUB_PARTITIONS'"
    for t in jq psql pgbench; do
        command -v $t >/dev/null || die "$t is needed (scripts/install-deps.sh installs it)"
    done

    # Everything the run creates carries the process id, so that runs side by side stay apart.
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
    BG_PIDS=
    CREATED_DB=
    CREATED_TOPOLOGY=
    # Every connector's --events-exchange, so that what run declares for emitted events carries
    # the run's name too, and whether a connector or the outbox stage declared it.
    EVENTS_EXCHANGE=$EXCHANGE.events
    CREATED_EVENTS=
    # The subscriber stage's: consume's pid, its database and role, its queues, the DLX.
    SUB_PID=
    SUB_DB=
    SUB_ROLE=
    SUB_QUEUES=
    SUB_HASHES=
    SUB_DLX=
    FAILED=1
    TICKS=$(getconf CLK_TCK)
}

# ---- servers and binaries -------------------------------------------------------------------

# shellcheck disable=SC2034 # the stage scripts use what this sets
bench_binaries() {
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
            cmake --build "$BUILD" -j2 --target hms-sync hms_core hms_common; } >"$WORK/build.log" 2>&1 ||
            die "building hms-sync failed; see $WORK/build.log"
        BIN=$BUILD/hms-sync
    else
        { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
            cmake --build "$BUILD" -j2 --target hms_core hms_common; } >"$WORK/build.log" 2>&1 ||
            die "building hms_core and hms_common failed; see $WORK/build.log"
    fi
    [ -x "$BIN" ] || die "HMS_BENCH_BIN: $BIN is not an executable"
    # The tools are compiled here, not through CMake, so the scripts work whatever
    # bench/CMakeLists.txt holds; the harnesses link the Release build's libraries, the code the
    # connector runs.
    mkdir -p "$BUILD/bench"
    local cflags="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter"
    CEIL=$BUILD/bench/hms_publish_ceiling
    CONSUMER=$BUILD/bench/hms_latency_consumer
    HARNESS=$BUILD/bench/hms_decode_encode
    VALIDATE=$BUILD/bench/hms_validate_cost
    # shellcheck disable=SC2086,SC2046
    {
        gcc $cflags -o "$CEIL" "$ROOT/bench/publish_ceiling.c" $(pkg-config --cflags --libs librabbitmq) &&
            gcc $cflags -o "$CONSUMER" "$ROOT/bench/latency_consumer.c" $(pkg-config --cflags --libs librabbitmq) &&
            gcc $cflags -I"$ROOT/src" -o "$HARNESS" "$ROOT/bench/decode_encode.c" "$BUILD/libhms_core.a" \
                $(pkg-config --libs json-c inih) -lm &&
            gcc $cflags -I"$ROOT/src" -o "$VALIDATE" "$ROOT/bench/validate_cost.c" "$BUILD/libhms_common.a" \
                "$BUILD/libhms_core.a" $(pkg-config --libs json-c inih libpq librabbitmq openssl) -lm
    } >>"$WORK/build.log" 2>&1 || die "compiling the bench tools failed; see $WORK/build.log"
}

# ---- helpers ----------------------------------------------------------------------------------

psql_admin() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN" "$@"; }
psql_db() { psql -X -q -At -v ON_ERROR_STOP=1 "$ADMIN_DB" "$@"; }
ceiling() { "$CEIL" --url "$AMQP" --exchange "$EXCHANGE" --queue "$QUEUE" "$@"; }

# The live load: pgbench committing one single-row INSERT per transaction from 4 clients.
# synchronous_commit on for the writers: the scratch server runs with it off, and then a
# walsender only sees a commit once the WAL writer flushes it (every wal_writer_delay, 200 ms),
# which would add up to 200 ms to every event whatever the connector does.  With fsync off a
# synchronous commit still costs no disk flush.
pgb() {
    [ -s "$WORK/insert.sql" ] || cat >"$WORK/insert.sql" <<'SQL'
INSERT INTO public.incidents (region, severity, status, summary, reported_by)
VALUES ('north', 3, 'open', 'Live benchmark incident: patient fall near the ward entrance, no injury, follow-up requested', 'nurse.live');
SQL
    PGOPTIONS="-c synchronous_commit=on" pgbench -n -f "$WORK/insert.sql" -c 4 -j 2 "$@" "$ADMIN_DB"
}
pgbench_tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$1" | head -1; }

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

# Starts hms-sync on $SLOT_RUN in the background as $CONN_PID, its output in LOG; ARGS go before
# --log-level (the drain stage picks the sink there).  It declares EVENTS_EXCHANGE and
# EVENTS_EXCHANGE.unrouted (exchange and queue), which clean-up removes.
start_connector() { # LOG [ARGS...]
    local logf=$1
    shift
    CREATED_EVENTS=1
    HMS_SYNC_PG=$CONNECTOR_PG HMS_SYNC_AMQP=$AMQP HMS_SYNC_SNAPSHOT=never "$BIN" run --slot "$SLOT_RUN" \
        --exchange "$EXCHANGE" --events-exchange "$EVENTS_EXCHANGE" \
        --window "$WINDOW" "$@" --log-level warn >"$logf" 2>&1 &
    CONN_PID=$!
}
# Waits until the connector holds its slot; dies if it exits first or takes 30 s.
wait_slot_active() { # LOG
    for _ in $(seq 300); do
        [ "$(psql_admin -c "SELECT active FROM pg_replication_slots WHERE slot_name = '$SLOT_RUN'")" = t ] && return 0
        kill -0 "$CONN_PID" 2>/dev/null || die "hms-sync exited: $(tail -1 "$1")"
        sleep 0.1
    done
    die "hms-sync did not start streaming from slot $SLOT_RUN within 30 s: $(tail -1 "$1")"
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

create_slot() { # SLOT: a pgoutput slot in the benchmark's database
    psql_db -c "SELECT 1 FROM pg_create_logical_replication_slot('$1', 'pgoutput')" >/dev/null ||
        die "cannot create slot $1"
}
# A fresh copy of the base slot, so that every measurement replays the same backlog.
copy_slot() {
    psql_db -c "SELECT 1 FROM pg_copy_logical_replication_slot('$SLOT_BASE', '$SLOT_RUN')" >/dev/null ||
        die "cannot copy slot $SLOT_BASE"
}

# Stops a background job: a function run with & is a subshell, so its children (pgbench, say)
# are told first, or they would outlive it.
stop_bg() { # PID
    local c kids=()
    read -ra kids 2>/dev/null <"/proc/$1/task/$1/children" || true
    for c in "${kids[@]}"; do
        kill -TERM "$c" 2>/dev/null || true
    done
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
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
    local rc=$? p
    set +e
    [ -n "$WAIT_PID" ] && kill "$WAIT_PID" 2>/dev/null && wait "$WAIT_PID" 2>/dev/null
    [ -n "$CONS_PID" ] && kill "$CONS_PID" 2>/dev/null && wait "$CONS_PID" 2>/dev/null
    [ -n "$SUB_PID" ] && stop_pid "$SUB_PID" "hms-sync consume"
    for p in $BG_PIDS; do
        stop_bg "$p"
    done
    stop_connector
    if [ -n "$CREATED_DB" ]; then
        drop_slot "$SLOT_RUN"
        drop_slot "$SLOT_BASE"
        psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
        psql_admin -c "DROP ROLE IF EXISTS $ROLE" >/dev/null
    fi
    [ -n "$SUB_DB" ] && psql_admin -c "DROP DATABASE IF EXISTS $SUB_DB WITH (FORCE)" >/dev/null
    [ -n "$SUB_ROLE" ] && psql_admin -c "DROP ROLE IF EXISTS $SUB_ROLE" >/dev/null
    for p in $SUB_HASHES; do
        ceiling --exchange "$p.hash" --queue "$p.p1" --count 0 --delete >/dev/null 2>&1
    done
    for p in $SUB_QUEUES; do
        "$RMQCTL" -q delete_queue "$p" >/dev/null 2>&1
    done
    [ -n "$SUB_DLX" ] && ceiling --exchange "$EXCHANGE.dlx" --queue "$EXCHANGE.dlxq" --count 0 --delete >/dev/null
    # The events exchange every connector declares, and the fanout exchange and quorum queue
    # EXCHANGE.events.unrouted beside it.
    if [ -n "$CREATED_EVENTS" ]; then
        ceiling --exchange "$EVENTS_EXCHANGE.unrouted" --queue "$EVENTS_EXCHANGE.unrouted" --count 0 --delete >/dev/null
        ceiling --exchange "$EVENTS_EXCHANGE" --count 0 --delete >/dev/null
    fi
    # The connector declares the fanout exchange EXCHANGE.rejected beside the topic one.
    [ -n "$CREATED_TOPOLOGY" ] && ceiling --exchange "$EXCHANGE.rejected" --count 0 --delete >/dev/null
    [ -n "$CREATED_TOPOLOGY" ] && ceiling --count 0 --delete >/dev/null
    if [ "$FAILED" = 1 ] || [ "${HMS_BENCH_KEEP_LOGS:-0}" = 1 ]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

# ---- database, role, topology -----------------------------------------------------------------

bench_database() {
    log "database $DB, exchange and queue $EXCHANGE; N=$N, $REPS repetitions, stages:$STAGES"
    CREATED_DB=1
    psql_admin -c "CREATE DATABASE $DB" >/dev/null || die "cannot create database $DB"
    "$BIN" migrate --pg "$ADMIN_DB" --log-level warn >"$WORK/migrate.log" 2>&1 ||
        die "hms-sync migrate failed: $(tail -1 "$WORK/migrate.log")"

    # The connector logs in with hms_sync's privileges through a member role of its own, so the
    # shared hms_sync role's password (which the integration tests set) is left alone.
    local password
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    psql_admin -c "CREATE ROLE $ROLE LOGIN REPLICATION PASSWORD '$password' IN ROLE hms_sync" >/dev/null ||
        die "cannot create role $ROLE"
    CONNECTOR_PG="host=127.0.0.1 port=$PG_PORT user=$ROLE password=$password dbname=$DB"

    psql_db <<'SQL' || die "cannot install the benchmark's helper functions in $DB"
-- Autovacuum would otherwise wake up mid-measurement on the freshly filled table.
ALTER TABLE public.incidents SET (autovacuum_enabled = off);

-- Commits n items, per_tx per transaction: batch is one statement that makes the items
-- $1 + 1 .. $1 + $2 (FROM generate_series(1, $2) AS g, item $1 + g).
CREATE PROCEDURE public.bench_commit(n bigint, per_tx bigint, batch text)
LANGUAGE plpgsql AS $$
DECLARE
    done bigint := 0;
    k bigint;
BEGIN
    WHILE done < n LOOP
        k := least(per_tx, n - done);
        EXECUTE batch USING done, k;
        COMMIT;
        done := done + k;
    END LOOP;
END
$$;

-- Commits n inserted rows, per_tx rows per transaction.
CREATE PROCEDURE public.bench_fill(n bigint, per_tx bigint)
LANGUAGE plpgsql AS $$
BEGIN
    CALL public.bench_commit(n, per_tx, $b$
        INSERT INTO public.incidents (region, severity, status, summary, reported_by)
        SELECT (ARRAY['north', 'south', 'east', 'west', 'metro'])[1 + ($1 + g) % 5],
               1 + ($1 + g) % 5, 'open',
               'Benchmark incident ' || ($1 + g) ||
               ': patient fall near the ward entrance, no injury, follow-up requested',
               'nurse.' || (($1 + g) % 97)
          FROM generate_series(1, $2) AS g$b$);
END
$$;

-- Commits n calls of hms_sync.emit, per_tx per transaction (the outbox stage's backlog): an
-- application's own event, its data about 210 bytes of JSON.
CREATE PROCEDURE public.bench_emit(n bigint, per_tx bigint)
LANGUAGE plpgsql AS $$
BEGIN
    CALL public.bench_commit(n, per_tx, $b$
        SELECT hms_sync.emit('org.example.bench.Assigned.v1', 'incidents/' || ($1 + g),
                    jsonb_build_object(
                        'incident_id', $1 + g,
                        'investigator', 'investigator.' || (($1 + g) % 97),
                        'team', (ARRAY['north', 'south', 'east', 'west', 'metro'])[1 + ($1 + g) % 5]
                                || ' ward safety review',
                        'priority', 1 + ($1 + g) % 5,
                        'due_by', '2026-12-31T17:00:00Z',
                        'note', 'Assigned after triage: patient fall near the ward entrance, no injury'))
          FROM generate_series(1, $2) AS g$b$);
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
}

# ---- consumer ---------------------------------------------------------------------------------

# Messages and body bytes in the queue, "MESSAGES BYTES".
queue_stats() {
    "$RMQCTL" -q list_queues --no-table-headers name messages message_bytes |
        awk -v q="$QUEUE" '$1 == q { print $2, $3; found = 1 } END { if (!found) exit 1 }'
}

# Starts a consumer that empties the queue as the connector fills it (so a long run does not pile
# up gigabytes in the broker) and waits until the broker has accepted its subscription.  SOURCE,
# when given, replaces "--queue $QUEUE" (--exchange X --binding KEY: a queue of its own).
start_consumer() { # COUNT OUT [SAMPLES [SOURCE...]]
    local count=$1 out=$2 samples=${3:-}
    shift $(($# < 3 ? $# : 3))
    [ $# -gt 0 ] || set -- --queue "$QUEUE"
    "$CONSUMER" --url "$AMQP" "$@" --count "$count" --idle 5 --wait "$TIMEOUT_S" \
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

# ---- the measurements more than one stage makes -----------------------------------------------

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
        copy_slot
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
    start_connector "$logf" --sink "$sink"
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

# Commits a backlog of n rows, per_tx per transaction, behind a fresh base slot; sets TARGET.
# FILL is the procedure that commits it: bench_fill (inserts), or bench_emit (hms_sync.emit calls).
make_backlog() { # N PER_TX [FILL]
    local n=$1 per_tx=$2 fill=${3:-bench_fill}
    psql_db -c "TRUNCATE public.incidents" || die "cannot empty public.incidents"
    create_slot "$SLOT_BASE"
    psql_db -c "CALL public.$fill($n, $per_tx)" || die "committing the backlog failed"
    # The insert position, not pg_current_wal_lsn(): with synchronous_commit off the last
    # commits may not be written yet, and the target must not fall short of them.
    TARGET=$(psql_db -c "SELECT pg_current_wal_insert_lsn()")
    # Write the backlog's dirty pages out now, so that a checkpoint does not run during (and
    # slow) whichever measurement happens to come first.
    psql_admin -c "CHECKPOINT" || die "CHECKPOINT failed"
}

# ---- report ---------------------------------------------------------------------------------------

# The table's columns, and a target's verdict.  The smoke run proves the benchmark works; its
# sizes are too small to judge anything, so it prints the figures without verdicts.
row() { printf '%-44s %16s  %-26s %s\n' "$1" "$2" "$3" "$4"; }
verdict() { # OK?
    if [ "$SMOKE" = 1 ]; then echo "(smoke)"; elif [ "$1" = true ]; then echo met; else echo "NOT met"; fi
}

# Writes $RESULT: the run's context and settings, every stage's part (STAGE_results prints it as
# one JSON object; a stage that did not run leaves its keys empty) and every raw record.  Then
# prints the table, each stage's rows (STAGE_table) under one header.
# shellcheck disable=SC2034 # CHART is live.sh's
bench_report() { # STAGE...
    local s parts=$WORK/parts.jsonl
    mkdir -p "$RESULTS_DIR"
    STAMP=$(date -u +%Y%m%dT%H%M%SZ)
    RESULT=$RESULTS_DIR/$BENCH_NAME-$STAMP.json
    CHART=$RESULTS_DIR/latency-$STAMP.png
    if [ "$SMOKE" = 1 ]; then
        RESULT=$WORK/$BENCH_NAME-smoke.json
        CHART=$WORK/latency-smoke.png
    fi
    : >"$parts"
    for s in "$@"; do
        "${s}_results" >>"$parts"
    done
    jq -s --arg date "$STAMP" --argjson smoke "$SMOKE" --argjson n "$N" --argjson reps "$REPS" \
        --argjson window "$WINDOW" --argjson poll_ms "$POLL_MS" --arg cases "$CASES" \
        --argjson mem_factor "$MEM_FACTOR" --argjson big_tx "$BIG_TX" --arg rates "$RATES" \
        --argjson live_s "$LIVE_S" --argjson elapsed "$ELAPSED" --slurpfile parts "$parts" \
        --argjson snap_rows "$SNAP_ROWS" --argjson snap_rate "$SNAP_RATE" --arg snap_chunk "$SNAP_CHUNK" \
        --argjson sub_n "$SUB_N" --arg sub_batches "$SUB_BATCHES" --argjson sub_rate "$SUB_RATE" \
        --arg sub_partitions "$SUB_PARTITIONS" \
        --arg commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        --arg version "$("$BIN" --version 2>/dev/null || echo unknown)" \
        --arg pg "$(psql_admin -c 'SHOW server_version')" \
        --arg host "$(uname -srm)" --argjson nproc "$(nproc)" \
        --arg cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" \
        --arg load_before "$LOAD_BEFORE" --arg load_after "$LOAD_AFTER" '
        . as $runs
        | {date: $date, smoke: ($smoke == 1), commit: $commit, hms_sync: $version, postgresql: $pg,
           host: $host, nproc: $nproc, cpu_model: $cpu,
           loadavg_before: $load_before, loadavg_after: $load_after, elapsed_seconds: $elapsed,
           settings: {n: $n, reps: $reps, window: $window, poll_ms: $poll_ms, cases: $cases,
                      mem_factor: $mem_factor, big_tx: $big_tx, rates: $rates, live_seconds: $live_s,
                      snapshot_rows: $snap_rows, snapshot_live_rate: $snap_rate,
                      snapshot_chunk: (if $snap_chunk == "" then null else ($snap_chunk | tonumber) end),
                      subscriber_n: $sub_n, subscriber_batches: $sub_batches, subscriber_live_rate: $sub_rate,
                      subscriber_partitions: $sub_partitions},
           backlog: [], outbox: null, memory: [], live: [], live_ceiling: null, snapshot: null, subscriber: null,
           callgrind: null, validate: null,
           runs: $runs}
        | reduce $parts[] as $part (.; . + $part)' "$RUNS" >"$RESULT"

    row measurement value target verdict
    for s in "$@"; do
        "${s}_table"
    done
    log "medians of $REPS runs in $ELAPSED s; load average $LOAD_BEFORE before, $LOAD_AFTER after"
    if [ "$SMOKE" = 1 ]; then
        log "smoke run: the JSON stays in the work directory ($RESULT) and is removed"
    else
        log "raw numbers in ${RESULT#"$ROOT"/}"
    fi
}

# ---- the run ----------------------------------------------------------------------------------

# The last line of each stage script: its stage as a run of its own when that script was run, and
# nothing when bench/run.sh sourced it for its functions.
bench_alone() { # STAGE [--smoke]
    [ "${BASH_SOURCE[1]}" = "$0" ] || return 0
    bench_main "$@"
}

# One run: the settings, the servers, binaries, database and topology, then each stage of
# BENCH_ORDER that SELECTION names, then the report.  run.sh passes HMS_BENCH_STAGES; a stage
# script passes its own stage.
bench_main() { # "SELECTION" [--smoke]
    STAGES=" $1 "
    shift
    bench_settings "$@"
    bench_binaries
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    bench_database

    local s ran=()
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    T_START=$(date +%s)
    : >"$RUNS"
    for s in $BENCH_ORDER; do
        stage "$s" || continue
        "${s}_stage"
        ran+=("$s")
    done
    LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
    ELAPSED=$(($(date +%s) - T_START))

    bench_report "${ran[@]}"
    FAILED=0
}
