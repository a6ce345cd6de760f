#!/usr/bin/env bash
# scripts/demo.sh -- the quick start: on a fresh Debian 12 machine, install
# what hms-sync needs, build it, start a scratch PostgreSQL 15 and RabbitMQ
# on loopback ports, install the migrations, run the connector and a
# warehouse subscriber, commit a few demo incidents, and print the events
# RabbitMQ delivered, the warehouse next to the source, and the slot's lag.
#
#   scripts/demo.sh            (as root, or as a user with sudo)
#
# The scratch servers keep running afterwards (tests/servers.sh stop ends
# them); the last lines show how to run the connector yourself.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { printf '\n== %s\n' "$*"; }

say "installing packages (Debian 12)"
bash scripts/install-deps.sh

say "building hms-sync (Release) in build-demo/"
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release -DHMS_BUILD_TESTS=OFF >/dev/null
cmake --build build-demo -j"$(nproc)" --target hms-sync >/dev/null
HMS=$ROOT/build-demo/hms-sync

say "starting scratch PostgreSQL and RabbitMQ"
tests/servers.sh start
# shellcheck disable=SC1090
. "$(tests/servers.sh env)"
PG_PORT=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$HMS_TEST_PG")
AMQP_URL=${HMS_TEST_AMQP%/}

say "creating database hms_demo and installing the migrations"
psql "$HMS_TEST_PG" -qAt -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'hms_demo'" >/dev/null
psql "$HMS_TEST_PG" -q -c "DROP DATABASE IF EXISTS hms_demo" -c "CREATE DATABASE hms_demo"
ADMIN="host=127.0.0.1 port=$PG_PORT user=postgres dbname=hms_demo"
"$HMS" migrate --pg "$ADMIN"
# The connector logs in as its own least-privilege role; the migrations never
# hold a password, the operator sets one.
psql "$ADMIN" -q -c "ALTER ROLE hms_sync PASSWORD 'demo-secret'"

# Secrets through the environment, never on the command line.
export HMS_SYNC_PG="host=127.0.0.1 port=$PG_PORT user=hms_sync password=demo-secret dbname=hms_demo"
export HMS_SYNC_AMQP="$AMQP_URL"

say "starting the connector (slot hms_demo, exchange hms.incidents, fanout exchange incidents)"
LOG=$ROOT/.scratch/demo-connector.log
"$HMS" run --slot hms_demo --fanout-exchange incidents >"$LOG" 2>&1 &
CONNECTOR=$!
SUBSCRIBER=
trap 'kill $CONNECTOR $SUBSCRIBER 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "streaming from replication slot" "$LOG" && break; sleep 0.2; done
cat "$LOG"

say "a warehouse subscriber: hms-sync consume into database hms_demo_warehouse"
psql "$HMS_TEST_PG" -q -c "DROP DATABASE IF EXISTS hms_demo_warehouse" -c "CREATE DATABASE hms_demo_warehouse"
WAREHOUSE="host=127.0.0.1 port=$PG_PORT user=postgres dbname=hms_demo_warehouse"
"$HMS" migrate --subscriber --pg "$WAREHOUSE"
psql "$WAREHOUSE" -q -c "ALTER ROLE hms_sync_subscriber PASSWORD 'demo-secret'"
# consume only checks that the shared dead-letter exchange exists; in a real
# deployment deploy/rabbitmq/definitions.json creates it.  Debian's RabbitMQ
# has no rabbitmqadmin, so the demo asks the node itself.
"$HMS_TEST_RABBITMQCTL" -q eval 'rabbit_exchange:declare(rabbit_misc:r(<<"/">>, exchange,
    <<"hms.incidents.dlx">>), direct, true, false, false, [], <<"hms-sync demo">>).' >/dev/null
SUBLOG=$ROOT/.scratch/demo-warehouse.log
HMS_SYNC_PG="host=127.0.0.1 port=$PG_PORT user=hms_sync_subscriber password=demo-secret dbname=hms_demo_warehouse" \
    "$HMS" consume --queue warehouse.demo --apply hms_sync.apply_warehouse >"$SUBLOG" 2>&1 &
SUBSCRIBER=$!
for _ in $(seq 50); do grep -q "msg=consuming" "$SUBLOG" && break; sleep 0.2; done
cat "$SUBLOG"

say "a subscriber queue bound to hms.incidents with '#'"
EVENTS=$ROOT/.scratch/demo-events.jsonl
: >"$EVENTS"
amqp-consume -u "$AMQP_URL" -q hms.demo -e hms.incidents -r '#' -c 6 -- \
    sh -c 'cat; echo' >>"$EVENTS" &
CONSUMER=$!
sleep 1
kill -0 $CONSUMER || { echo "demo: amqp-consume failed" >&2; exit 1; }

say "committing demo changes: 3 incidents in one transaction, an update, a delete"
psql "$ADMIN" -q <<'SQL'
BEGIN;
INSERT INTO incidents (region, severity, summary, reported_by) VALUES
    ('north', 2, 'Patient fall in ward 3', 'nurse.adams'),
    ('south', 4, 'Medication given twice', 'dr.baker'),
    ('east.wing', 3, 'Wrong wristband', 'nurse.chen');
COMMIT;
UPDATE incidents SET status = 'investigating' WHERE region = 'north';
SET hms_sync.origin = 'casemgmt';
UPDATE incidents SET severity = 5 WHERE region = 'south';
DELETE FROM incidents WHERE region = 'east.wing';
SQL

for _ in $(seq 300); do kill -0 $CONSUMER 2>/dev/null || break; sleep 0.1; done
kill $CONSUMER 2>/dev/null || true
sleep 0.5 # let the connector confirm the slot past the last commit

say "events delivered by RabbitMQ (CloudEvents 1.0, one JSON document each)"
cat "$EVENTS"

say "the warehouse (hms_demo_warehouse.incident_facts) next to the source (hms_demo.incidents)"
for _ in $(seq 100); do
    [ "$(psql "$WAREHOUSE" -qAt -c "SELECT count(*) FROM hms_sync.inbox")" -ge 6 ] && break
    sleep 0.1
done
echo "source:"
psql "$ADMIN" -q -c "SELECT region, severity, status, version, origin FROM incidents ORDER BY region"
echo "warehouse (a deleted incident stays as a tombstone):"
psql "$WAREHOUSE" -q -c "SELECT region, severity, status, version, origin, deleted FROM incident_facts ORDER BY region"
kill -TERM $SUBSCRIBER
wait $SUBSCRIBER && echo "subscriber exited 0"
SUBSCRIBER=

say "slot status (hms-sync status)"
"$HMS" status --slot hms_demo

say "stopping the connector (SIGTERM: waits for confirms, confirms the slot, exits 0)"
kill -TERM $CONNECTOR
wait $CONNECTOR && echo "connector exited 0"
tail -n 2 "$LOG"

cat <<EOF2

Done.  The scratch servers are still running (tests/servers.sh stop ends them).
Run the connector yourself:

  export HMS_SYNC_PG='$HMS_SYNC_PG'
  export HMS_SYNC_AMQP='$HMS_SYNC_AMQP'
  $HMS run --slot hms_demo
  $HMS status --slot hms_demo
EOF2
