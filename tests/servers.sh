#!/usr/bin/env bash
# tests/servers.sh -- start or stop a scratch PostgreSQL 15 and RabbitMQ for
# hms-sync's tests, demo and benchmarks, on loopback ports, in a scratch
# directory (default: .scratch/ in the repository).
#
#   tests/servers.sh start    start both (reuses them if already running)
#   tests/servers.sh stop     stop both
#   tests/servers.sh env      print the environment file's path
#
# After start, `. "$(tests/servers.sh env)"` exports:
#   HMS_TEST_PG        superuser conninfo of the scratch cluster
#   HMS_TEST_AMQP      amqp:// URL of the scratch broker (guest, loopback)
#   HMS_TEST_PGBIN     PostgreSQL's server binaries
#   HMS_TEST_RABBITMQCTL  a rabbitmqctl wrapper bound to the scratch node
# Ports come from HMS_PG_PORT (55432) and HMS_AMQP_PORT (55672); the Erlang
# distribution and epmd use HMS_AMQP_PORT+1 and +2.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=${HMS_SCRATCH:-$ROOT/.scratch}
PG_PORT=${HMS_PG_PORT:-55432}
AMQP_PORT=${HMS_AMQP_PORT:-55672}
PGBIN=${HMS_PGBIN:-/usr/lib/postgresql/15/bin}
PGDATA=$SCRATCH/pg/data
RMQ=$SCRATCH/rabbitmq
ENVFILE=$SCRATCH/env.sh

log() { echo "servers.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_start() {
    mkdir -p "$SCRATCH/pg"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$SCRATCH/pg"; fi
    if [ -f "$PGDATA/postmaster.pid" ] && run_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
        log "PostgreSQL already running on port $PG_PORT"
        return
    fi
    port_busy "$PG_PORT" && die "port $PG_PORT is in use; set HMS_PG_PORT to a free port"
    if [ ! -f "$PGDATA/PG_VERSION" ]; then
        run_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$SCRATCH/pg/initdb.log" 2>&1 \
            || die "initdb failed; see $SCRATCH/pg/initdb.log"
        cat >>"$PGDATA/postgresql.conf" <<CONF
# hms-sync test cluster
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SCRATCH/pg'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
wal_sender_timeout = 60s
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %u@%d '
CONF
        cat >"$PGDATA/pg_hba.conf" <<HBA
# TYPE  DATABASE     USER      ADDRESS        METHOD
local   all          postgres                 trust
host    all          postgres  127.0.0.1/32   trust
# hms-sync's own roles log in with passwords (scram), as in production;
# replication=database connections match these database lines.
local   all          all                      scram-sha-256
host    all          all       127.0.0.1/32   scram-sha-256
HBA
    fi
    run_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$SCRATCH/pg/server.log" -w -t 60 start >/dev/null \
        || die "PostgreSQL did not start; see $SCRATCH/pg/server.log"
    log "PostgreSQL listening on 127.0.0.1:$PG_PORT"
}

pg_stop() {
    if [ -f "$PGDATA/postmaster.pid" ]; then
        run_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

rmq_env() {
    export HOME=$RMQ/home
    export RABBITMQ_NODENAME=hms_test@localhost
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT=$AMQP_PORT
    export RABBITMQ_DIST_PORT=$((AMQP_PORT + 1))
    export ERL_EPMD_PORT=$((AMQP_PORT + 2))
    export ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_MNESIA_BASE=$RMQ/mnesia
    export RABBITMQ_LOG_BASE=$RMQ/log
    export RABBITMQ_CONFIG_FILE=$RMQ/rabbitmq
    export RABBITMQ_ENABLED_PLUGINS_FILE=$RMQ/enabled_plugins
    export RABBITMQ_PID_FILE=$RMQ/rabbitmq.pid
}

rmq_start() {
    mkdir -p "$RMQ/home" "$RMQ/mnesia" "$RMQ/log"
    rmq_env
    cat >"$RMQ/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$AMQP_PORT
loopback_users.guest = true
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = warning
CONF
    # consume --partitions declares a consistent-hash exchange.
    echo '[rabbitmq_consistent_hash_exchange].' >"$RMQ/enabled_plugins"
    cat >"$RMQ/rabbitmqctl" <<WRAP
#!/bin/sh
export HOME='$RMQ/home' ERL_EPMD_PORT=$((AMQP_PORT + 2)) RABBITMQ_NODENAME=hms_test@localhost
exec /usr/lib/rabbitmq/bin/rabbitmqctl -n hms_test@localhost "\$@"
WRAP
    chmod +x "$RMQ/rabbitmqctl"
    if "$RMQ/rabbitmqctl" -q status >/dev/null 2>&1; then
        log "RabbitMQ already running on port $AMQP_PORT"
        return
    fi
    port_busy "$AMQP_PORT" && die "port $AMQP_PORT is in use; set HMS_AMQP_PORT to a free port"
    setsid /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >"$RMQ/log/stdout.log" 2>&1 &
    # await_startup fails at once while the Erlang node has not registered
    # with epmd yet, so poll it until it succeeds or two minutes pass.
    local deadline=$((SECONDS + 120))
    until "$RMQ/rabbitmqctl" -q --timeout 60 await_startup >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "RabbitMQ did not start within 120 s; see $RMQ/log/"
        sleep 1
    done
    log "RabbitMQ listening on 127.0.0.1:$AMQP_PORT"
}

rmq_stop() {
    if [ -x "$RMQ/rabbitmqctl" ]; then
        "$RMQ/rabbitmqctl" -q stop >/dev/null 2>&1 || true
    fi
    # The node's epmd outlives it; it is ours (own port), so end it too.
    ERL_EPMD_PORT=$((AMQP_PORT + 2)) epmd -kill >/dev/null 2>&1 || true
}

write_env() {
    cat >"$ENVFILE" <<ENV
export HMS_TEST_PG='host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres'
export HMS_TEST_AMQP='amqp://guest:guest@127.0.0.1:$AMQP_PORT/'
export HMS_TEST_PGBIN='$PGBIN'
export HMS_TEST_PGDATA='$PGDATA'
export HMS_TEST_RABBITMQCTL='$RMQ/rabbitmqctl'
ENV
}

case "${1:-}" in
start) mkdir -p "$SCRATCH"; pg_start; rmq_start; write_env; log "environment: . $ENVFILE" ;;
stop) rmq_stop; pg_stop ;;
env) echo "$ENVFILE" ;;
*) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
