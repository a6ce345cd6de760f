#!/usr/bin/env bash
# bench/subscriber.sh -- a subscriber as fast as the connector: `hms-sync consume` applying a
# backlog into the warehouse seed subscriber, its applied events/s next to the connector's
# published events/s for the same backlog, for each of HMS_BENCH_SUB_BATCHES, and with the
# largest batch over each of HMS_BENCH_SUB_PARTITIONS ordered partitions (one worker each) next
# to one queue; then the commit -> applied latency at a light live rate, batched and one event
# per transaction.
#
#   bench/subscriber.sh          50000 events, batches of 100 and of 1, live load at 200/s
#   bench/subscriber.sh --smoke  2000 events, 3 s of live load; judges no target
#
# Prints its rows of bench/run.sh's table and writes bench/results/subscriber-<UTC>.json;
# bench/run.sh sources this file for the same stage.  The settings all scripts share follow.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

psql_sub() { psql -X -q -At -v ON_ERROR_STOP=1 "$SUB_ADMIN" "$@"; }

# The subscriber's own database (none of the publisher's migrations, as in a deployment), a role
# of its own that is a member of hms_sync_subscriber (the shared role's password, if any, is left
# alone), the helper function below, and the dead-letter exchange consume checks for.
sub_setup() {
    local password
    SUB_DB=${DB}_sub
    SUB_ADMIN="$ADMIN dbname=$SUB_DB"
    log "subscriber: database $SUB_DB, dead-letter exchange $EXCHANGE.dlx"
    psql_admin -c "CREATE DATABASE $SUB_DB" >/dev/null || die "cannot create database $SUB_DB"
    "$BIN" migrate --subscriber --pg "$SUB_ADMIN" --log-level warn >"$SUB_DIR/migrate.log" 2>&1 ||
        die "hms-sync migrate --subscriber failed: $(tail -1 "$SUB_DIR/migrate.log")"
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    SUB_ROLE=${ROLE}_sub
    psql_admin -c "CREATE ROLE $SUB_ROLE LOGIN PASSWORD '$password' IN ROLE hms_sync_subscriber" >/dev/null ||
        die "cannot create role $SUB_ROLE"
    SUB_PG="host=127.0.0.1 port=$PG_PORT user=$SUB_ROLE password=$password dbname=$SUB_DB"

    psql_sub <<'SQL' || die "cannot install the benchmark's helper function in $SUB_DB"
-- As on the source: autovacuum would wake up mid-measurement on the freshly filled tables, and
-- at a different point in each.
ALTER TABLE hms_sync.inbox SET (autovacuum_enabled = off);
ALTER TABLE public.incident_facts SET (autovacuum_enabled = off);

-- Samples every poll_s seconds until the inbox holds n rows of subscriber sub; returns the
-- wall-clock time (epoch seconds) of the first sample that saw them.  Counting a large inbox
-- takes milliseconds of the CPU the consumer needs, so a sample first looks up the incident of
-- the last event (an index probe on the warehouse table, written in the same transaction as its
-- inbox row) and counts only once that is there.  The queue delivers that event last unless
-- one was retried; then every later sample counts.
CREATE FUNCTION public.bench_sub_wait(sub text, n bigint, last_id uuid, poll_s float8,
                                      timeout_s float8)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
    t_sample float8;
    c bigint;
BEGIN
    LOOP
        t_sample := extract(epoch FROM clock_timestamp());
        IF EXISTS (SELECT 1 FROM public.incident_facts WHERE incident_id = last_id) THEN
            SELECT count(*) INTO c FROM hms_sync.inbox WHERE subscriber = sub;
            IF c >= n THEN
                RETURN t_sample;
            END IF;
        END IF;
        IF clock_timestamp() > deadline THEN
            SELECT count(*) INTO c FROM hms_sync.inbox WHERE subscriber = sub;
            RAISE EXCEPTION 'the inbox of % holds % of % events after % s', sub, c, n, timeout_s;
        END IF;
        PERFORM pg_sleep(poll_s);
    END LOOP;
END
$$;
SQL
    # consume only checks that the dead-letter exchange exists; this declares it (and a queue
    # for what lands there) the way the bench declares its own exchange.
    SUB_DLX=1
    ceiling --exchange "$EXCHANGE.dlx" --queue "$EXCHANGE.dlxq" --count 0 --declare ||
        die "cannot declare the dead-letter exchange $EXCHANGE.dlx"
}

# Every measurement starts from an empty inbox and warehouse table, with nothing of the previous
# one left to write out.
sub_reset() {
    psql_sub -c "TRUNCATE hms_sync.inbox, public.incident_facts" || die "cannot empty $SUB_DB's tables"
    psql_admin -c "CHECKPOINT" || die "CHECKPOINT failed"
}

# Starts hms-sync consume on QUEUE in the background as $SUB_PID, its JSON log in LOG.  The
# prefetch is twice the batch (and at least consume's default, 200), so a batch can fill while
# the previous one commits.  The connection string goes through the environment, as the
# connector's does, so the password is not on a command line.
# With PARTITIONS > 0 it is the supervisor of one worker per partition.
sub_start() { # QUEUE BATCH LOG [PARTITIONS]
    local prefetch=$(($2 * 2 > 200 ? $2 * 2 : 200)) parts=${4:-0}
    HMS_SYNC_PG=$SUB_PG HMS_SYNC_PARTITIONS=$parts "$BIN" consume --amqp "$AMQP" \
        --exchange "$EXCHANGE" --dead-letter-exchange "$EXCHANGE.dlx" --queue "$1" \
        --apply hms_sync.apply_warehouse --bind '#' --batch "$2" --prefetch "$prefetch" \
        --log-level info --log-format json >"$3" 2>&1 &
    SUB_PID=$!
}
# "PEAK_RSS_KB CPU_SECONDS" of consume: its one process, or the largest and the sum of its
# workers.
sub_usage() {
    local kids=() k u rss=0 cpu=0
    read -ra kids 2>/dev/null <"/proc/$SUB_PID/task/$SUB_PID/children" || true
    [ ${#kids[@]} -gt 0 ] || {
        proc_usage "$SUB_PID"
        return
    }
    for k in "${kids[@]}"; do
        u=$(proc_usage "$k" 2>/dev/null) || continue
        rss=$((${u% *} > rss ? ${u% *} : rss))
        cpu=$(awk -v a="$cpu" -v b="${u#* }" 'BEGIN { printf "%.3f\n", a + b }')
    done
    echo "$rss $cpu"
}
# Waits until consume has declared its queue and consumes; dies if it exits first or takes 30 s.
sub_ready() { # LOG
    for _ in $(seq 300); do
        grep -qs '"msg":"consuming"' "$1" && return 0
        kill -0 "$SUB_PID" 2>/dev/null || die "hms-sync consume exited: $(tail -1 "$1")"
        sleep 0.1
    done
    die "hms-sync consume did not start consuming within 30 s: $(tail -1 "$1")"
}
sub_stop() {
    [ -n "$SUB_PID" ] || return 0
    stop_pid "$SUB_PID" "hms-sync consume"
    SUB_PID=
}
# CPU seconds so far of consume's PostgreSQL session(s): where an apply's time goes besides
# consume itself.
sub_backend_cpu() {
    local p total=0 u
    for p in $(psql_admin -c "SELECT pid FROM pg_stat_activity WHERE datname = '$SUB_DB' AND usename = '$SUB_ROLE'"); do
        u=$(proc_usage "$p" 2>/dev/null) || continue
        total=$(awk -v a="$total" -v b="${u#* }" 'BEGIN { printf "%.3f\n", a + b }')
    done
    echo "$total"
}

# The counters of consume's last "stopped" line, as a JSON object of numbers.
sub_counters() { # LOG
    jq -Rc 'fromjson? | select(.msg == "stopped")
            | {applied, stale, duplicate, echo, dead_lettered, retried} | map_values(tonumber)' "$1" |
        tail -1 | grep . || die "hms-sync consume logged no counters when it stopped: $(tail -1 "$1")"
}

# consume declares its queue QUEUE (quorum, bound to the exchange with #) and QUEUE.dlq; a fresh
# name per measurement starts it empty.  Each is deleted as soon as it is done with, since every
# queue bound to the exchange takes a copy of what the connector publishes later.
# Partitioned (PARTITIONS > 0), it is the exchange QUEUE.hash and QUEUE.p1 .. QUEUE.pN instead.
sub_names() { # QUEUE [PARTITIONS]
    local i
    if [ "${2:-0}" -gt 0 ]; then
        for i in $(seq "$2"); do echo "$1.p$i"; done
    else
        echo "$1"
    fi
}
sub_declare() { # QUEUE BATCH [PARTITIONS]
    SUB_QUEUES="$SUB_QUEUES $(sub_names "$1" "${3:-0}" | tr '\n' ' ') $1.dlq"
    [ "${3:-0}" -gt 0 ] && SUB_HASHES="$SUB_HASHES $1"
    sub_start "$1" "$2" "$SUB_DIR/$1.declare.log" "${3:-0}"
    sub_ready "$SUB_DIR/$1.declare.log"
    sub_stop
}
sub_delete() { # QUEUE [PARTITIONS]
    local q keep='' gone
    gone=" $(sub_names "$1" "${2:-0}" | tr '\n' ' ') $1.dlq "
    for q in $gone; do
        # The hash exchange goes with its first partition (the tool deletes a queue and an
        # exchange together).
        [ "${2:-0}" -gt 0 ] && [ "$q" = "$1.p1" ] && continue
        "$RMQCTL" -q delete_queue "$q" >/dev/null || die "cannot delete queue $q"
    done
    if [ "${2:-0}" -gt 0 ]; then
        ceiling --exchange "$1.hash" --queue "$1.p1" --count 0 --delete >/dev/null ||
            die "cannot delete exchange $1.hash and queue $1.p1"
        SUB_HASHES=${SUB_HASHES/ $1/}
    fi
    for q in $SUB_QUEUES; do
        [[ $gone == *" $q "* ]] || keep="$keep $q"
    done
    SUB_QUEUES=$keep
}

# Messages in QUEUE once the broker counts them all: a quorum queue's count may trail the
# publisher's confirms by a moment.
sub_depth() { # QUEUE N [PARTITIONS]
    local messages m _bytes q
    for _ in $(seq 20); do
        messages=0
        for q in $(sub_names "$1" "${3:-0}"); do
            read -r m _bytes < <(QUEUE=$q queue_stats) || die "cannot read queue $q's stats"
            messages=$((messages + m))
        done
        [ "$messages" -ge "$2" ] && break
        sleep 0.5
    done
    echo "$messages"
}

# What a user of the warehouse sees must be what the source holds: the same incidents at the
# same versions.  SOURCE_WHERE picks the source's rows of this measurement; the warehouse table
# was emptied before it.
sub_check() { # LABEL SOURCE_WHERE
    local src dst
    src=$(psql_db -c "SELECT count(*) || ' ' || coalesce(md5(string_agg(id || ':' || version, ',' ORDER BY id)), '')
                        FROM public.incidents WHERE $2") || die "cannot read public.incidents"
    dst=$(psql_sub -c "SELECT count(*) || ' ' || coalesce(md5(string_agg(incident_id || ':' || version, ','
                                                                          ORDER BY incident_id)), '')
                         FROM public.incident_facts WHERE NOT deleted") || die "cannot read public.incident_facts"
    [ "$src" = "$dst" ] ||
        die "$1: public.incident_facts (${dst% *} rows, md5 ${dst#* }) differs from the source (${src% *} rows, md5 ${src#* })"
}

# Starts bench_sub_wait for QUEUE's inbox to hold N rows in the background as $WAIT_PID, its
# answer in $SUB_DIR/wait.out.
sub_wait_start() { # QUEUE N LAST_ID
    psql_sub -c "SELECT public.bench_sub_wait('$1', $2, '$3', $SUB_POLL_MS / 1000.0, $TIMEOUT_S)" \
        >"$SUB_DIR/wait.out" 2>"$SUB_DIR/wait.err" &
    WAIT_PID=$!
}
# Waits for the waiter; dies if consume (or the connector, when one runs) exits first or the
# waiter fails.
sub_wait_done() { # LABEL LOG
    local which='' rc=0
    wait -n -p which "$WAIT_PID" "$SUB_PID" ${CONN_PID:+"$CONN_PID"} || rc=$?
    if [ "$which" = "$SUB_PID" ]; then
        SUB_PID=
        die "hms-sync consume ($1) exited early (status $rc): $(tail -1 "$2")"
    elif [ -n "$CONN_PID" ] && [ "$which" = "$CONN_PID" ]; then
        CONN_PID=
        die "hms-sync run exited during $1 (status $rc): $(tail -1 "$SUB_DIR/live-connector.log")"
    fi
    WAIT_PID=
    [ "$rc" = 0 ] || die "waiting for the inbox ($1): $(tail -1 "$SUB_DIR/wait.err")"
}

# One pair for batch size BATCH, repetition REP: (a) the connector drains a copy of the backlog
# into a fresh subscriber queue (and the bench queue, purged after); (b) consume applies the
# queue, timed from its start, start-up included, to the inbox holding N rows.  With PARTITIONS
# the queue is that many ordered partitions, one worker each.  Appends the pair's record to
# $SUB_RUNS.
sub_measure() { # BATCH REP [PARTITIONS]
    local b=$1 rep=$2 p=${3:-0} q logf t0 t_done depth usage backend drain counters first tx
    local label="batch $b"
    q=$EXCHANGE.sub.b$1.r$2
    if [ "$p" -gt 0 ]; then
        q=$EXCHANGE.sub.b$1.p$p.r$2
        label="$label over $p partitions"
    fi
    logf=$SUB_DIR/$q.log
    sub_reset
    sub_declare "$q" "$b" "$p"
    # The published side is the drain stage's e2e measurement, kept out of its records.
    RUNS=$SUB_DRAINS measure_connector "sub_b$b" "$rep" amqp e2e "$SUB_N"
    drain=$(tail -1 "$SUB_DRAINS")
    depth=$(sub_depth "$q" "$SUB_N" "$p")
    [ "$depth" = "$SUB_N" ] || die "queue $q holds $depth events after the drain, expected $SUB_N"

    sub_wait_start "$q" "$SUB_N" "$SUB_LAST"
    t0=$(date +%s.%N)
    sub_start "$q" "$b" "$logf" "$p"
    sub_wait_done "$label #$rep" "$logf"
    t_done=$(cat "$SUB_DIR/wait.out")
    usage=$(sub_usage)
    backend=$(sub_backend_cpu)
    sub_stop
    counters=$(sub_counters "$logf")
    # received_at is now() of the applying transaction, the same for every event of a batch: the
    # distinct values count the transactions.
    read -r first tx < <(psql_sub -F ' ' -c "SELECT extract(epoch FROM min(received_at)), count(DISTINCT received_at)
                                               FROM hms_sync.inbox WHERE subscriber = '$q'") ||
        die "cannot read the inbox of $q"
    [ "$(psql_sub -c "SELECT count(*) FILTER (WHERE outcome = 'applied') FROM hms_sync.inbox
                       WHERE subscriber = '$q'")" = "$SUB_N" ] ||
        die "batch $b #$rep: not every event of the inbox was applied: $counters"
    sub_check "batch $b #$rep" true
    sub_delete "$q" "$p"
    jq -nc --argjson b "$b" --argjson p "$p" --argjson rep "$rep" --arg q "$q" --argjson n "$SUB_N" --argjson drain "$drain" \
        --argjson t0 "$t0" --argjson td "$t_done" --argjson first "$first" --argjson counters "$counters" \
        --argjson rss "${usage% *}" --argjson cpu "${usage#* }" --argjson backend "$backend" --argjson tx "$tx" \
        '{batch: $b, partitions: $p, rep: $rep, queue: $q, n: $n, transactions: $tx, events_per_transaction: ($n / $tx),
          published: $drain.rate, published_seconds: $drain.seconds,
          applied: ($n / ($td - $t0)), applied_seconds: ($td - $t0), startup_seconds: ($first - $t0),
          ratio: ($n / ($td - $t0) / $drain.rate),
          consume_peak_rss_kb: $rss, consume_cpu_seconds: $cpu, consume_cpu_s_per_100k: ($cpu / $n * 100000),
          backend_cpu_seconds: $backend, backend_cpu_s_per_100k: ($backend / $n * 100000),
          counters: $counters, drain: $drain}' >>"$SUB_RUNS"
    log "  $label #$rep: $(tail -1 "$SUB_RUNS" | jq -r '"published \(.published | round) events/s," +
        " applied \(.applied | round) events/s in \(.applied_seconds * 1000 | round) ms" +
        " (first applied after \(.startup_seconds * 1000 | round) ms), ratio \(.ratio * 100 | round / 100)," +
        " \(.events_per_transaction * 10 | round / 10) events/transaction," +
        " consume peak RSS \(.consume_peak_rss_kb / 1024 * 10 | round / 10) MB, CPU s: consume" +
        " \(.consume_cpu_seconds), its PostgreSQL session \(.backend_cpu_seconds)"')"
}

# Live load at SUB_RATE commits/s for LIVE_S seconds, the connector streaming on its slot and
# consume applying with batch size BATCH, until the inbox holds every committed row; then each
# event's latency.  Appends the run's record to $SUB_LIVE.
sub_live() { # LABEL BATCH
    local label=$1 b=$2 q=$EXCHANGE.sub.live.b$2 logf t_warm t0 where committed total last usage tps counters
    local warm
    logf=$SUB_DIR/$q.log
    sub_reset
    SUB_QUEUES="$SUB_QUEUES $q $q.dlq"
    sub_start "$q" "$b" "$logf"
    sub_ready "$logf"
    # A few events first, applied before the timed load: consume's first batch in its fresh
    # session (plans, caches) takes far longer than the next ones, and would otherwise be
    # timed with the events that queued behind it.  The JSON shows what the first one took.
    t_warm=$(date +%s.%N)
    pgb -t 5 >"$SUB_DIR/$q.warmup" 2>&1 || die "pgbench's warm-up failed: $(tail -1 "$SUB_DIR/$q.warmup")"
    # This run's rows, warm-up included: updated_at is the inserting transaction's start.
    where="reported_by = 'nurse.live' AND updated_at >= to_timestamp($t_warm)"
    warm=$(psql_db -c "SELECT count(*) FROM public.incidents WHERE $where")
    last=$(psql_db -c "SELECT id FROM public.incidents WHERE $where ORDER BY updated_at DESC LIMIT 1")
    sub_wait_start "$q" "$warm" "$last"
    sub_wait_done "live $label, warm-up" "$logf"
    t0=$(date +%s.%N)
    pgb -R "$SUB_RATE" -T "$LIVE_S" >"$SUB_DIR/$q.pgbench" 2>&1 ||
        die "pgbench at $SUB_RATE/s failed: $(tail -1 "$SUB_DIR/$q.pgbench")"
    tps=$(pgbench_tps "$SUB_DIR/$q.pgbench")
    committed=$(psql_db -c "SELECT count(*) FROM public.incidents WHERE $where AND updated_at >= to_timestamp($t0)")
    [ "$committed" -gt 0 ] || die "pgbench at $SUB_RATE/s committed nothing"
    total=$(psql_db -c "SELECT count(*) FROM public.incidents WHERE $where")
    last=$(psql_db -c "SELECT id FROM public.incidents WHERE $where ORDER BY updated_at DESC LIMIT 1")
    sub_wait_start "$q" "$total" "$last"
    sub_wait_done "live $label" "$logf"
    usage=$(proc_usage "$SUB_PID")
    sub_stop
    counters=$(sub_counters "$logf")
    sub_check "live $label" "$where"
    sub_delete "$q"
    # Latency = the inbox row's received_at (now() in the applying transaction: its start, so the
    # commit itself, about a millisecond, is not in the figure) - the source row's updated_at
    # (now() in the inserting transaction), matched by incident id (the event's subject).  One
    # PostgreSQL server, one clock.  Microseconds as integers, exact in awk's doubles.
    psql_db -F ' ' -c "SELECT id, (extract(epoch FROM updated_at) * 1000000)::bigint
                         FROM public.incidents WHERE $where" >"$SUB_DIR/$label.source" ||
        die "cannot read the live rows"
    psql_sub -F ' ' -c "SELECT subject, (extract(epoch FROM received_at) * 1000000)::bigint
                          FROM hms_sync.inbox WHERE subscriber = '$q'" >"$SUB_DIR/$label.inbox" ||
        die "cannot read the inbox of $q"
    # "COMMITTED_US LATENCY_MS" per event, in commit order; the timed load's in LABEL.latency
    # (sorted), the warm-up's in LABEL.warmup.
    awk 'NR == FNR { u[$1] = $2; next } $1 in u { printf "%s %.3f\n", u[$1], ($2 - u[$1]) / 1000 }' \
        "$SUB_DIR/$label.source" "$SUB_DIR/$label.inbox" | sort -n -k1,1 >"$SUB_DIR/$label.events"
    awk -v t0="$t0" '$1 >= t0 * 1000000 { print $2 }' "$SUB_DIR/$label.events" | sort -g >"$SUB_DIR/$label.latency"
    awk -v t0="$t0" '$1 < t0 * 1000000 { print $2 }' "$SUB_DIR/$label.events" >"$SUB_DIR/$label.warmup"
    # Percentiles by nearest rank, as the latency consumer computes them.
    jq -sc --arg lbl "$label" --argjson b "$b" --argjson rate "$SUB_RATE" --argjson committed "$committed" \
        --argjson tps "${tps:-0}" --argjson rss "${usage% *}" --argjson cpu "${usage#* }" \
        --argjson counters "$counters" --slurpfile warm "$SUB_DIR/$label.warmup" '
        . as $lat | length as $n
        | def pct($p): if $n == 0 then null
                       else ([([($p / 100 * $n + 0.999999 | floor), 1] | max), $n] | min) as $k | $lat[$k - 1] end;
        {"label": $lbl, batch: $b, target_rate: $rate, achieved_rate: $tps, committed: $committed,
         samples: $n, p50_ms: pct(50), p99_ms: pct(99), max_ms: ($lat | max),
         warmup: {events: ($warm | length), first_ms: $warm[0], max_ms: ($warm | max)},
         consume_peak_rss_kb: $rss, consume_cpu_seconds: $cpu, counters: $counters}' \
        "$SUB_DIR/$label.latency" >>"$SUB_LIVE"
    [ "$(tail -1 "$SUB_LIVE" | jq '.samples + .warmup.events')" = "$total" ] ||
        die "live $label: $(tail -1 "$SUB_LIVE" | jq '.samples + .warmup.events') of the $total events matched a source row by subject"
    log "  live $label (batch $b): $(tail -1 "$SUB_LIVE" | jq -r '"\(.achieved_rate | round)/s committed," +
        " \(.samples) applied, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms;" +
        " warm-up: first event \(.warmup.first_ms) ms, max \(.warmup.max_ms) ms"')"
}

subscriber_stage() {
    local rep b batches
    SUB_DIR=$WORK/subscriber
    SUB_RUNS=$SUB_DIR/runs.jsonl
    SUB_DRAINS=$SUB_DIR/drains.jsonl
    SUB_LIVE=$SUB_DIR/live.jsonl
    # The inbox is counted at most this often, and only once the last event is in (see
    # bench_sub_wait); an applied rate errs low by at most one interval.
    SUB_POLL_MS=$((POLL_MS > 50 ? POLL_MS : 50))
    mkdir -p "$SUB_DIR"
    : >"$SUB_RUNS"
    : >"$SUB_DRAINS"
    : >"$SUB_LIVE"
    sub_setup

    log "subscriber: a backlog of $SUB_N events, one per transaction; batch sizes $SUB_BATCHES;" \
        "partitions ${SUB_PARTITIONS:-none}"
    make_backlog "$SUB_N" 1
    # The incident of the last event published: one row per transaction, so the latest start.
    SUB_LAST=$(psql_db -c "SELECT id FROM public.incidents ORDER BY updated_at DESC LIMIT 1")
    for rep in $(seq "$REPS"); do
        # Every other repetition takes the batch sizes in reverse, so that none always runs
        # first after the backlog was written.
        batches=$SUB_BATCHES
        [ $((rep % 2)) = 0 ] && batches=$(tr ' ' '\n' <<<"$SUB_BATCHES" | tac | tr '\n' ' ')
        for b in $batches; do
            sub_measure "$b" "$rep"
        done
        for p in $SUB_PARTITIONS; do
            sub_measure "$(tr ' ' '\n' <<<"$SUB_BATCHES" | sort -n | tail -1)" "$rep" "$p"
        done
    done
    drop_slot "$SLOT_BASE" || die "cannot drop slot $SLOT_BASE"

    log "subscriber: live load at $SUB_RATE/s for $LIVE_S s, batch ${SUB_BATCHES%% *} and batch 1"
    create_slot "$SLOT_RUN"
    start_connector "$SUB_DIR/live-connector.log"
    wait_slot_active "$SUB_DIR/live-connector.log"
    sub_live batched "${SUB_BATCHES%% *}"
    sub_live one 1
    stop_connector
    drop_slot "$SLOT_RUN" || die "cannot drop slot $SLOT_RUN"
    ceiling --count 0 --purge || die "cannot purge queue $QUEUE"
}

# {"subscriber": {...}}: per batch size the medians of its pairs (the ratio is the median of
# each pair's own ratio), the batch size judged, the two live runs and every pair's record.
subscriber_results() {
    jq -sc --argjson n "$SUB_N" --arg batches "$SUB_BATCHES" --argjson rate "$SUB_RATE" \
        --argjson parts "[$(tr -s ' ' ',' <<<"${SUB_PARTITIONS# }" | sed 's/^,//; s/,$//')]" \
        --argjson live_s "$LIVE_S" --slurpfile live "$SUB_LIVE" '
    def median: sort | if length == 0 then null
                       elif length % 2 == 1 then .[length / 2 | floor]
                       else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    . as $runs
    | ($batches | split(" ") | map(select(. != "") | tonumber)) as $b
    | {subscriber: {n: $n, batches: $b, judged_batch: ($b | max), live_rate: $rate, live_seconds: $live_s,
                    throughput: [$b[] as $k | $runs | map(select(.batch == $k and .partitions == 0)) | {
                        batch: $k,
                        published: (map(.published) | median),
                        applied: (map(.applied) | median),
                        ratio: (map(.ratio) | median),
                        paired_ratios: map(.ratio),
                        startup_seconds: (map(.startup_seconds) | median),
                        events_per_transaction: (map(.events_per_transaction) | median),
                        consume_peak_rss_kb: (map(.consume_peak_rss_kb) | max),
                        consume_cpu_s_per_100k: (map(.consume_cpu_s_per_100k) | median),
                        backend_cpu_s_per_100k: (map(.backend_cpu_s_per_100k) | median)}],
                    partitioned: [$parts[] as $p | ($b | max) as $k
                        | ($runs | map(select(.batch == $k and .partitions == 0))) as $one
                        | $runs | map(select(.batch == $k and .partitions == $p)) | {
                        partitions: $p, batch: $k,
                        applied: (map(.applied) | median),
                        ratio: (map(.ratio) | median),
                        # each repetition against the one queue of the same repetition
                        speedup: ([.[] as $r | $one[] | select(.rep == $r.rep) | $r.applied / .applied] | median),
                        consume_cpu_s_per_100k: (map(.consume_cpu_s_per_100k) | median),
                        backend_cpu_s_per_100k: (map(.backend_cpu_s_per_100k) | median)}],
                    live: ($live | map({(.label): .}) | add),
                    runs: $runs}}' "$SUB_RUNS"
}

# One row of a figure for every batch size side by side: "LABEL, batch 100, 1" and "A, B".
sub_row() { # SUMMARY LABEL JQ_EXPRESSION_OF_A_THROUGHPUT_ENTRY
    row "[subscriber] $2, batch $(jq -r '[.throughput[].batch] | join(", ")' <<<"$1")" \
        "$(jq -r "[.throughput[] | $3] | join(\", \")" <<<"$1")" "" ""
}

subscriber_table() {
    local s b t
    s=$(jq -c .subscriber "$RESULT")
    for b in $(jq -r '.throughput[].batch' <<<"$s"); do
        t=$(jq -c --argjson b "$b" '.throughput[] | select(.batch == $b)' <<<"$s")
        row "[subscriber] batch $b: published ev/s" "$(jq -r '.published | round' <<<"$t")" "" ""
        row "[subscriber] batch $b: applied ev/s" "$(jq -r '.applied | round' <<<"$t")" "" ""
        # The largest batch size is judged; the others are there to compare with.
        if [ "$b" = "$(jq .judged_batch <<<"$s")" ]; then
            row "[subscriber] batch $b: applied / published" "$(jq -r '.ratio * 100 | round / 100' <<<"$t")" \
                ">= 0.80" "$(verdict "$(jq '.ratio >= 0.8' <<<"$t")")"
        else
            row "[subscriber] batch $b: applied / published" "$(jq -r '.ratio * 100 | round / 100' <<<"$t")" "" ""
        fi
    done
    for t in $(jq -c '.partitioned[]' <<<"$s"); do
        row "[subscriber] $(jq -r '"\(.partitions) partitions: applied ev/s"' <<<"$t")" \
            "$(jq -r '.applied | round' <<<"$t")" "" ""
        row "[subscriber] $(jq -r '"\(.partitions) partitions / 1 queue"' <<<"$t")" \
            "$(jq -r '.speedup * 100 | round / 100' <<<"$t")" "" ""
    done
    sub_row "$s" "events per tx" '.events_per_transaction * 10 | round / 10'
    sub_row "$s" "consume RSS MB" '.consume_peak_rss_kb / 1024 * 10 | round / 10'
    sub_row "$s" "CPU s/100k consume" '.consume_cpu_s_per_100k * 100 | round / 100'
    sub_row "$s" "CPU s/100k PG" '.backend_cpu_s_per_100k * 100 | round / 100'
    # Batched and one event per transaction next to each other, without a target.
    for t in p50 p99; do
        row "[subscriber] live $(jq -r .live_rate <<<"$s")/s $t ms, batch $(jq -r '"\(.live.batched.batch), \(.live.one.batch)"' <<<"$s")" \
            "$(jq -r --arg p "${t}_ms" '[.live.batched[$p], .live.one[$p]] | map(. // 0 | . * 10 | round / 10) | join(", ")' <<<"$s")" "" ""
    done
}

bench_alone subscriber "$@"
