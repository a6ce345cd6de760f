#!/usr/bin/env bash
# tests/cluster.sh -- run a 3-node RabbitMQ cluster for hms-sync's failover
# tests on loopback ports, in a scratch directory (default: .scratch/cluster
# in the repository). Independent of tests/servers.sh's single node.
#
#   tests/cluster.sh start          start the cluster (reuses it if all three
#                                   nodes already run clustered; otherwise
#                                   recreates it from scratch, data wiped)
#   tests/cluster.sh stop           stop all nodes and the private epmd
#   tests/cluster.sh env            print the environment file's path
#   tests/cluster.sh status         which nodes run, which are clustered
#   tests/cluster.sh kill N         kill -9 node N, wait until it is gone
#   tests/cluster.sh stopnode N     stop node N gracefully (rabbitmqctl stop)
#   tests/cluster.sh restart N      start node N again, wait until it runs and
#                                   is back in the cluster
#   tests/cluster.sh partition N    cut node N off from the other two; it is
#                                   in a minority and pauses (pause_minority):
#                                   its AMQP listener closes
#   tests/cluster.sh heal N         undo partition, wait until N runs clustered
#   tests/cluster.sh leader QUEUE [VHOST]
#                                   print the number (1-3) of the node leading
#                                   quorum queue QUEUE (vhost default "/")
#   tests/cluster.sh node-of-port PORT
#                                   print the node number of an AMQP port (or
#                                   of an amqp:// URL)
#
# Node N (1-3) is hms_cN@localhost with AMQP on 127.0.0.1:BASE+10*(N-1) and
# Erlang distribution on that port +1; the three nodes share one private epmd
# on BASE+30 and one Erlang cookie (HOME). BASE is HMS_CLUSTER_PORT (55700):
# AMQP 55700, 55710, 55720; distribution 55701, 55711, 55721; epmd 55730.
# The scratch directory is HMS_SCRATCH (default .scratch) plus /cluster.
# Nodes use cluster_partition_handling = pause_minority.
#
# After start, `. "$(tests/cluster.sh env)"` exports:
#   HMS_TEST_CLUSTER_AMQP    comma-separated amqp:// URLs of nodes 1, 2, 3
#   HMS_TEST_CLUSTER_CTL     rabbitmqctl wrapper: `$HMS_TEST_CLUSTER_CTL 2
#                            list_queues` runs rabbitmqctl against node 2
#   HMS_TEST_CLUSTER_SCRIPT  this script's absolute path
#
# "partition" is done at the Erlang level (no iptables needed, works without
# CAP_NET_ADMIN): node N is given a wrong cookie for the other two nodes and
# disconnected from them, so no distribution connection in either direction
# passes the handshake; `heal` restores the cookie and reconnects.
# rabbitmqctl (and the wrapper) keep working against node N meanwhile.
# A quorum queue for trying `leader` can be declared with:
#   $HMS_TEST_CLUSTER_CTL 1 eval 'rabbit_amqqueue:declare(rabbit_misc:r(<<"/">>,
#     queue, <<"q1">>), true, false, [{<<"x-queue-type">>, longstr,
#     <<"quorum">>}], none, <<"guest">>).'
set -euo pipefail

SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${HMS_SCRATCH:-$ROOT/.scratch}
case "$SCRATCH" in /*) ;; *) SCRATCH=$PWD/$SCRATCH ;; esac
DIR=$SCRATCH/cluster
BASE=${HMS_CLUSTER_PORT:-55700}
RMQBIN=/usr/lib/rabbitmq/bin
ENVFILE=$DIR/env.sh
CTLWRAP=$DIR/rabbitmqctl-node
HOMEDIR=$DIR/home
NODES="1 2 3"
# Wrong cookie given to a partitioned node for its peers.
BAD_COOKIE=hms_partitioned

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

case "$BASE" in '' | *[!0-9]*) die "HMS_CLUSTER_PORT must be a port number" ;; esac
if [ "$BASE" -lt 1024 ] || [ "$BASE" -gt 65505 ]; then die "HMS_CLUSTER_PORT must be within 1024-65505"; fi
EPMD_PORT=$((BASE + 30))

name() { echo "hms_c$1@localhost"; }
amqp_port() { echo $((BASE + 10 * ($1 - 1))); }
dist_port() { echo $((BASE + 10 * ($1 - 1) + 1)); }
ndir() { echo "$DIR/n$1"; }

check_node_arg() {
    case "${1:-}" in 1 | 2 | 3) ;; *) die "node number must be 1, 2 or 3, not '${1:-}'" ;; esac
}

# since T0: seconds elapsed since $EPOCHREALTIME was T0, to 0.1 s.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# ctl N ARGS...: rabbitmqctl against node N, always with the cluster's
# environment (HOME for the cookie, the private epmd), never unbounded.
# Only call it while some node's VM is up: the CLI starts an epmd on
# ERL_EPMD_PORT when none runs, which would outlive `stop`.
ctl() {
    local n=$1
    shift
    timeout "${CTL_TIMEOUT:-90}" env HOME="$HOMEDIR" ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1 \
        "$RMQBIN/rabbitmqctl" -n "$(name "$n")" "$@"
}

# node_pid N: pid of node N's beam.smp, or nothing. RabbitMQ 3.10 does not
# put the node name on the command line (it starts distribution itself from
# RABBITMQ_NODENAME), so a process is node N only if its environment has
# node N's RABBITMQ_NODENAME and this cluster's mnesia directory for it:
# neither a recycled pid in the pid file nor another broker (tests/servers.sh's
# hms_test node, another checkout's cluster) is ever taken for it.
is_node_proc() {
    local pid=$1 n=$2 comm env
    { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || return 1
    [ "$comm" = beam.smp ] || return 1
    env=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null) || return 1
    grep -qxF "RABBITMQ_NODENAME=$(name "$n")" <<<"$env" || return 1
    grep -qxF "RABBITMQ_MNESIA_BASE=$(ndir "$n")/mnesia" <<<"$env"
}
node_pid() {
    local n=$1 pid pidfile
    pidfile=$(ndir "$n")/rabbitmq.pid
    if [ -s "$pidfile" ]; then
        pid=$(tr -dc 0-9 <"$pidfile")
        if [ -n "$pid" ] && is_node_proc "$pid" "$n"; then
            echo "$pid"
            return
        fi
    fi
    # Early in boot the pid file is not written yet: look for the node.
    for pid in /proc/[0-9]*; do
        pid=${pid#/proc/}
        if is_node_proc "$pid" "$n"; then
            echo "$pid"
            return
        fi
    done
}
any_vm_up() {
    local n
    for n in $NODES; do [ -z "$(node_pid "$n")" ] || return 0; done
    return 1
}

# app_running N: the rabbit application runs on node N (false while paused).
app_running() {
    [ -n "$(node_pid "$1")" ] || return 1
    [ "$(CTL_TIMEOUT=30 ctl "$1" -q eval 'rabbit:is_running().' 2>/dev/null)" = true ]
}

# running_view N: numbers of the nodes node N sees running in its cluster.
running_view() {
    [ -n "$(node_pid "$1")" ] || return 0
    CTL_TIMEOUT=30 ctl "$1" -q cluster_status --formatter json 2>/dev/null \
        | sed -n 's/.*"running_nodes":\[\([^]]*\)\].*/\1/p' \
        | grep -o 'hms_c[1-3]@localhost' | sed 's/hms_c\([1-3]\)@.*/\1/' | sort -u | tr '\n' ' ' \
        | sed 's/ $//' || true
}

write_files() {
    local n d
    mkdir -p "$HOMEDIR"
    chmod 700 "$HOMEDIR"
    # One cookie for all nodes, written before any node starts (three nodes
    # starting at once would otherwise each create a different one).
    if [ ! -s "$HOMEDIR/.erlang.cookie" ]; then
        (umask 077 && od -An -N18 -tx1 /dev/urandom | tr -dc 0-9a-f | tr a-f A-F >"$HOMEDIR/.erlang.cookie")
        chmod 400 "$HOMEDIR/.erlang.cookie"
    fi
    for n in $NODES; do
        d=$(ndir "$n")
        mkdir -p "$d/mnesia" "$d/log"
        cat >"$d/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$(amqp_port "$n")
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = warning
cluster_partition_handling = pause_minority
CONF
        # net_ticktime stays at its default (60 s): `partition` disconnects
        # the nodes and `kill` closes their sockets, so peers notice at once
        # (the paused node's listener closes about 0.1-0.2 s after the cut);
        # a short tick would only risk spurious partitions on a busy machine.
        # consume --partitions declares a consistent-hash exchange.
        echo '[rabbitmq_consistent_hash_exchange].' >"$d/enabled_plugins"
    done
    cat >"$CTLWRAP" <<WRAP
#!/bin/sh
# rabbitmqctl-node N ARGS... -- rabbitmqctl against node N (1-3) of the test
# cluster written by $SELF.
# HMS_CLUSTER_CLI=rabbitmq-queues (or rabbitmq-diagnostics) runs that tool.
case "\${1:-}" in 1|2|3) ;; *) echo "usage: \$0 1|2|3 ARGS..." >&2; exit 2 ;; esac
n=\$1; shift
case "\${HMS_CLUSTER_CLI:-rabbitmqctl}" in
rabbitmqctl|rabbitmq-queues|rabbitmq-diagnostics) ;;
*) echo "\$0: unknown HMS_CLUSTER_CLI" >&2; exit 2 ;;
esac
export HOME='$HOMEDIR' ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1
exec $RMQBIN/\${HMS_CLUSTER_CLI:-rabbitmqctl} -n "hms_c\$n@localhost" "\$@"
WRAP
    chmod +x "$CTLWRAP"
}

write_env() {
    cat >"$ENVFILE" <<ENV
export HMS_TEST_CLUSTER_AMQP='amqp://guest:guest@127.0.0.1:$(amqp_port 1)/,amqp://guest:guest@127.0.0.1:$(amqp_port 2)/,amqp://guest:guest@127.0.0.1:$(amqp_port 3)/'
export HMS_TEST_CLUSTER_CTL='$CTLWRAP'
export HMS_TEST_CLUSTER_SCRIPT='$SELF'
ENV
}

ensure_epmd() {
    # The nodes would start one themselves, but three at once race for it.
    if ! port_busy "$EPMD_PORT"; then
        ERL_EPMD_PORT=$EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1 setsid epmd -daemon </dev/null >/dev/null 2>&1 \
            || die "could not start epmd on 127.0.0.1:$EPMD_PORT"
    fi
}

# launch N: start node N's VM detached, streams to its log directory.
launch() {
    local n=$1 d
    d=$(ndir "$n")
    rm -f "$d/rabbitmq.pid"
    (
        export HOME=$HOMEDIR
        export RABBITMQ_NODENAME
        RABBITMQ_NODENAME=$(name "$n")
        export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        export RABBITMQ_NODE_PORT
        RABBITMQ_NODE_PORT=$(amqp_port "$n")
        export RABBITMQ_DIST_PORT
        RABBITMQ_DIST_PORT=$(dist_port "$n")
        export ERL_EPMD_PORT=$EPMD_PORT
        export ERL_EPMD_ADDRESS=127.0.0.1
        # Distribution on loopback only (it listens on all interfaces otherwise).
        export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
        export RABBITMQ_MNESIA_BASE=$d/mnesia
        export RABBITMQ_LOG_BASE=$d/log
        export RABBITMQ_CONFIG_FILE=$d/rabbitmq
        export RABBITMQ_ADVANCED_CONFIG_FILE=$d/advanced.config
        export RABBITMQ_ENABLED_PLUGINS_FILE=$d/enabled_plugins
        export RABBITMQ_PID_FILE=$d/rabbitmq.pid
        echo "=== $(date '+%F %T') starting $(name "$n")" >>"$d/log/stdout.log"
        setsid "$RMQBIN/rabbitmq-server" </dev/null >>"$d/log/stdout.log" 2>&1 &
    )
}

# await N SECONDS: wait until node N's broker has booted.
await() {
    local n=$1 t0=$SECONDS deadline=$((SECONDS + $2))
    # await_startup fails at once while the node has not registered with epmd.
    until CTL_TIMEOUT=$(($2 + 10)) ctl "$n" -q --timeout "$2" await_startup >/dev/null 2>&1; do
        # The VM appears within a second or two of launch; if it is gone
        # after that, the node failed to boot.
        if [ $SECONDS -gt $((t0 + 15)) ] && [ -z "$(node_pid "$n")" ]; then
            die "node $n ($(name "$n")) exited during startup; see $(ndir "$n")/log/"
        fi
        [ $SECONDS -lt $deadline ] || die "node $n did not start within $2 s; see $(ndir "$n")/log/"
        sleep 0.5
    done
}

# clustered_view N: "V: NODES" from the first other node V (1 first) whose
# cluster_status counts itself running and lists N running; else nothing.
clustered_view() {
    local n=$1 v view
    for v in $NODES; do
        [ "$v" != "$n" ] || continue
        view=$(running_view "$v")
        case " $view " in *" $v "*) ;; *) continue ;; esac
        case " $view " in *" $n "*) echo "$v: $view"; return 0 ;; esac
    done
    return 0
}

# others_up N: some other node's VM is up.
others_up() {
    local m
    for m in $NODES; do
        [ "$m" = "$1" ] || [ -z "$(node_pid "$m")" ] || return 0
    done
    return 1
}

# await_clustered N SECONDS: wait until another running node's (node 1's if
# it runs) cluster_status lists node N running, and N's broker runs. With no
# other node up, N's broker running is all there is to wait for.
await_clustered() {
    local n=$1 deadline=$((SECONDS + $2))
    until { ! others_up "$n" || [ -n "$(clustered_view "$n")" ]; } && app_running "$n"; do
        [ $SECONDS -lt $deadline ] || die "node $n is not running in the cluster after $2 s (node 1 sees running: $(running_view 1)); see $(ndir "$n")/log/"
        sleep 0.5
    done
}

cluster_up() {
    [ "$(running_view 1)" = "1 2 3" ] || return 1
    local n
    for n in $NODES; do [ ! -e "$(ndir "$n")/partitioned" ] || return 1; done
}

cmd_start() {
    local n p step t0=$SECONDS
    [ -x "$RMQBIN/rabbitmq-server" ] || die "$RMQBIN/rabbitmq-server missing; run scripts/install-deps.sh"
    if [ -z "$(node_pid 1)" ] || ! cluster_up; then
        if any_vm_up; then
            log "cluster only partly up; stopping it to recreate it"
            cmd_stop
        fi
        for n in $NODES; do
            for p in "$(amqp_port "$n")" "$(dist_port "$n")"; do
                port_busy "$p" && die "port $p is in use; set HMS_CLUSTER_PORT to a free base port (uses base..base+30)"
            done
        done
        # An epmd left there (e.g. started by a rabbitmqctl call) is reused.
        if port_busy "$EPMD_PORT" && ! ERL_EPMD_PORT=$EPMD_PORT epmd -names >/dev/null 2>&1; then
            die "port $EPMD_PORT (epmd) is in use; set HMS_CLUSTER_PORT to a free base port"
        fi
        for n in $NODES; do rm -rf "$(ndir "$n")"; done
        mkdir -p "$DIR"
        write_files
        ensure_epmd
        for n in $NODES; do launch "$n"; done
        for n in $NODES; do await "$n" 120; done
        log "nodes booted after $((SECONDS - t0)) s; joining 2 and 3 to $(name 1)"
        # The CLI prints the joining node's feature-flag warnings on stderr:
        # keep them in a log, shown only if a step fails.
        : >"$DIR/join.log"
        for n in 2 3; do
            for step in stop_app reset "join_cluster $(name 1)" start_app; do
                # shellcheck disable=SC2086 # $step is a command and its argument
                if ! ctl "$n" -q $step >>"$DIR/join.log" 2>&1; then
                    cat "$DIR/join.log" >&2
                    die "rabbitmqctl $step on node $n failed"
                fi
            done
        done
        local deadline=$((SECONDS + 60))
        until cluster_up; do
            [ $SECONDS -lt $deadline ] || die "cluster_status on node 1 shows running nodes '$(running_view 1)', not '1 2 3'"
            sleep 0.5
        done
        log "cluster of 3 nodes up in $((SECONDS - t0)) s; AMQP on 127.0.0.1:$(amqp_port 1),$(amqp_port 2),$(amqp_port 3)"
    else
        write_files
        log "cluster already running (AMQP on 127.0.0.1:$(amqp_port 1),$(amqp_port 2),$(amqp_port 3))"
    fi
    write_env
    log "environment: . $ENVFILE"
}

# wait_gone PID SECONDS
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while [ -e "/proc/$pid" ]; do
        # A zombie (state Z) is gone for our purpose.
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 0
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

cmd_stop() {
    local n p pid pids=""
    for n in $NODES; do
        pid=$(node_pid "$n")
        [ -n "$pid" ] || continue
        pids="$pids $n:$pid"
        CTL_TIMEOUT=60 ctl "$n" -q stop >/dev/null 2>&1 &
    done
    wait || true
    for p in $pids; do
        n=${p%%:*} pid=${p#*:}
        if ! wait_gone "$pid" 30; then
            log "node $n (pid $pid) did not stop; killing it"
            kill -9 "$pid" 2>/dev/null || true
            wait_gone "$pid" 10 || die "node $n (pid $pid) does not die"
        fi
    done
    for n in $NODES; do rm -f "$(ndir "$n")/partitioned"; done
    # The private epmd outlives the nodes; it is ours (own port), so end it.
    if port_busy "$EPMD_PORT"; then
        ERL_EPMD_PORT=$EPMD_PORT epmd -kill >/dev/null 2>&1 || true
        local deadline=$((SECONDS + 10))
        while port_busy "$EPMD_PORT"; do
            [ $SECONDS -lt $deadline ] || die "epmd on port $EPMD_PORT does not stop"
            sleep 0.2
        done
    fi
    [ -z "$pids" ] || log "cluster stopped"
}

cmd_kill() {
    local n=$1 pid
    pid=$(node_pid "$n")
    [ -n "$pid" ] || die "node $n ($(name "$n")) is not running"
    kill -9 "$pid"
    wait_gone "$pid" 30 || die "node $n (pid $pid) still there 30 s after kill -9"
    rm -f "$(ndir "$n")/partitioned"
    log "node $n ($(name "$n"), pid $pid) killed"
}

cmd_stopnode() {
    local n=$1 pid
    pid=$(node_pid "$n")
    [ -n "$pid" ] || { log "node $n is not running"; return 0; }
    ctl "$n" -q stop >/dev/null || die "rabbitmqctl stop on node $n failed"
    wait_gone "$pid" 60 || die "node $n (pid $pid) still running 60 s after rabbitmqctl stop"
    rm -f "$(ndir "$n")/partitioned"
    log "node $n ($(name "$n")) stopped"
}

cmd_restart() {
    local n=$1 t0=$SECONDS
    [ -d "$(ndir "$n")/mnesia" ] || die "no cluster in $DIR; run '$0 start' first"
    if [ -z "$(node_pid "$n")" ]; then
        # Alone, a node boots only if it was the last of the cluster to stop
        # (else it waits for the others' tables up to 5 minutes).
        others_up "$n" || log "warning: no other node runs; '$0 start' makes a new cluster"
        # A new VM starts with the right cookie: no partition to heal.
        rm -f "$(ndir "$n")/partitioned"
        port_busy "$(amqp_port "$n")" && die "port $(amqp_port "$n") is in use by something else"
        ensure_epmd
        launch "$n"
        await "$n" 120
    elif [ -e "$(ndir "$n")/partitioned" ]; then
        die "node $n is partitioned; use '$0 heal $n'"
    elif ! app_running "$n"; then
        log "node $n's VM runs but its broker does not; start_app"
        ctl "$n" -q start_app >/dev/null || die "start_app on node $n failed"
    fi
    await_clustered "$n" 120
    log "node $n ($(name "$n")) running in the cluster after $((SECONDS - t0)) s"
}

# others N: the two other nodes as an Erlang list.
others() {
    local n=$1 m out=""
    for m in $NODES; do
        [ "$m" = "$n" ] || out="$out${out:+,}'$(name "$m")'"
    done
    echo "[$out]"
}

cmd_partition() {
    local n=$1 m view deadline out t_cut t_closed
    [ ! -e "$(ndir "$n")/partitioned" ] || die "node $n is already partitioned"
    # The other two must run (else they would be a minority too) and see N.
    m=1
    [ "$n" != 1 ] || m=2
    view=$(running_view "$m")
    [ "$view" = "1 2 3" ] || die "partition needs all three nodes running clustered; node $m sees running: '$view'"
    # A wrong cookie for the two peers makes every distribution handshake
    # between N and them fail, whichever side dials; then drop the
    # connections. Node N sees itself alone (1 of 3) and pauses. The eval
    # returns {time of the cut in ms, peers still connected}.
    out=$(ctl "$n" -q eval "
        Others = $(others "$n"),
        [erlang:set_cookie(O, $BAD_COOKIE) || O <- Others],
        [erlang:disconnect_node(O) || O <- Others],
        {os:system_time(millisecond), [O || O <- Others, lists:member(O, nodes())]}.") \
        || die "eval on node $n failed"
    touch "$(ndir "$n")/partitioned"
    case "$out" in
    "{"*",[]}") t_cut=${out#\{} t_cut=${t_cut%%,*} ;;
    *) die "node $n still connected to its peers after the cut: $out" ;;
    esac
    # Pausing stops the broker: its AMQP listener closes (and with it every
    # client connection), then rabbit:is_running() turns false.
    deadline=$((SECONDS + 60))
    while port_busy "$(amqp_port "$n")"; do
        [ $SECONDS -lt $deadline ] || die "node $n did not pause (AMQP port still open) 60 s after the cut; see $(ndir "$n")/log/"
        sleep 0.05
    done
    t_closed=$EPOCHREALTIME
    while app_running "$n"; do
        [ $SECONDS -lt $deadline ] || die "node $n did not pause within 60 s of the cut; see $(ndir "$n")/log/"
        sleep 0.2
    done
    log "node $n ($(name "$n")) cut off and paused; its AMQP port $(amqp_port "$n") closed $(awk -v a="$t_cut" -v b="$t_closed" 'BEGIN { printf "%.2f", b - a / 1000 }') s after the cut"
}

cmd_heal() {
    local n=$1 t0=$EPOCHREALTIME out t_heal t_open v deadline
    [ -n "$(node_pid "$n")" ] || die "node $n is not running (use restart)"
    out=$(ctl "$n" -q eval "
        Others = $(others "$n"),
        [erlang:set_cookie(O, erlang:get_cookie()) || O <- Others],
        {os:system_time(millisecond), [net_adm:ping(O) || O <- Others]}.") \
        || die "eval on node $n failed"
    rm -f "$(ndir "$n")/partitioned"
    t_heal=${out#\{} t_heal=${t_heal%%,*}
    case "$t_heal" in '' | *[!0-9]*) t_heal=${t0/./} t_heal=${t_heal:0:13} ;; esac
    # The paused node pings its peers every second and restarts its broker
    # once it sees a majority.
    deadline=$((SECONDS + 120))
    until port_busy "$(amqp_port "$n")"; do
        [ $SECONDS -lt $deadline ] || die "node $n's AMQP port did not reopen within 120 s of healing; see $(ndir "$n")/log/"
        sleep 0.05
    done
    t_open=$EPOCHREALTIME
    await_clustered "$n" 120
    # pause_minority leaves no partition recorded; make sure of it.
    v=$(clustered_view "$n")
    v=${v%%:*}
    deadline=$((SECONDS + 30))
    until grep -qF '"partitions":{}' <<<"$(CTL_TIMEOUT=30 ctl "$v" -q cluster_status --formatter json 2>/dev/null)"; do
        [ $SECONDS -lt $deadline ] || die "node $v still reports a network partition after healing node $n"
        sleep 0.5
    done
    log "node $n ($(name "$n")) healed: AMQP port open $(awk -v a="$t_heal" -v b="$t_open" 'BEGIN { printf "%.2f", b - a / 1000 }') s after the heal, running in the cluster after $(since "$t0") s"
}

cmd_leader() {
    local q=$1 vhost=${2:-/} n out leader
    for n in $NODES; do
        app_running "$n" || continue
        out=$(ctl "$n" -q list_queues -p "$vhost" name type leader --no-table-headers 2>/dev/null) || continue
        leader=$(printf '%s\n' "$out" | awk -F'\t' -v q="$q" '$1 == q { print $2 "\t" $3; exit }')
        # list_queues leaves out a quorum queue none of whose members answer.
        [ -n "$leader" ] || die "no queue '$q' in vhost '$vhost' (or none of its members is up)"
        case "$leader" in
        quorum*) ;;
        *) die "queue '$q' is not a quorum queue (type ${leader%%	*})" ;;
        esac
        leader=${leader#*	}
        case "$leader" in
        hms_c[1-3]@localhost) echo "${leader:5:1}"; return 0 ;;
        *) die "queue '$q' has no known leader ('$leader')" ;;
        esac
    done
    die "no running node answered list_queues"
}

cmd_node_of_port() {
    local p=${1##*:}
    p=${p%%/*}
    case "$p" in '' | *[!0-9]*) die "not a port: $1" ;; esac
    local n
    for n in $NODES; do
        [ "$p" != "$(amqp_port "$n")" ] || { echo "$n"; return 0; }
    done
    die "port $p is not an AMQP port of the cluster ($(amqp_port 1), $(amqp_port 2), $(amqp_port 3))"
}

cmd_status() {
    local n pid state v="" view
    for n in $NODES; do
        pid=$(node_pid "$n")
        if [ -z "$pid" ]; then
            state=stopped
        elif app_running "$n"; then
            state=running
            [ -n "$v" ] || v=$n
        elif [ -e "$(ndir "$n")/partitioned" ]; then
            state="paused (partitioned)"
        else
            state="VM up, broker not running"
        fi
        echo "node $n $(name "$n") amqp 127.0.0.1:$(amqp_port "$n") pid ${pid:--}: $state"
    done
    if [ -n "$v" ]; then
        view=$(running_view "$v")
        echo "clustered (running, as seen by node $v): ${view:-none}"
    else
        echo "clustered: none (no broker running)"
    fi
}

cmd=${1:-}
[ $# -eq 0 ] || shift
case "$cmd" in
start) cmd_start ;;
stop) cmd_stop ;;
env) echo "$ENVFILE" ;;
status) cmd_status ;;
kill) check_node_arg "${1:-}"; cmd_kill "$1" ;;
stopnode) check_node_arg "${1:-}"; cmd_stopnode "$1" ;;
restart) check_node_arg "${1:-}"; cmd_restart "$1" ;;
partition) check_node_arg "${1:-}"; cmd_partition "$1" ;;
heal) check_node_arg "${1:-}"; cmd_heal "$1" ;;
leader) [ -n "${1:-}" ] || die "usage: $0 leader QUEUE [VHOST]"; cmd_leader "$@" ;;
node-of-port) [ -n "${1:-}" ] || die "usage: $0 node-of-port PORT"; cmd_node_of_port "$1" ;;
*)
    echo "usage: $0 start|stop|env|status|kill N|stopnode N|restart N|partition N|heal N|leader QUEUE [VHOST]|node-of-port PORT" >&2
    exit 2
    ;;
esac
