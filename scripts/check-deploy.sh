#!/usr/bin/env bash
# scripts/check-deploy.sh -- checks the packaging and docs that CI can check
# without Docker, Prometheus or a broker:
#   - every JSON file parses (deploy/, schemas/);
#   - the YAML files parse (python3-yaml; skipped, saying so, without it) and
#     have the shape their tools expect;
#   - the RabbitMQ definitions match what `hms-sync consume` declares,
#     compose.yml's subscribers have queues there, and no subscriber's user
#     may configure (delete) the shared exchanges or publish to hms.incidents,
#     and the connector may declare and publish to both of its exchanges;
#   - promtool accepts the alert rules (skipped, saying so, without it);
#   - the man page renders without a single groff warning;
#   - the Dockerfile builds with scripts/build-release.sh, the script CI
#     runs, and copies everything that build needs;
#   - the shell scripts parse.
# Exits 1 when anything fails; the last line is a summary.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
fails=0
skips=0
ok() { echo "check-deploy: ok   $*"; }
bad() {
    echo "check-deploy: FAIL $*" >&2
    fails=$((fails + 1))
}
skip() {
    echo "check-deploy: skip $*" >&2
    skips=$((skips + 1))
}

# ---- JSON ----
for f in deploy/rabbitmq/definitions.json deploy/grafana/*.json schemas/*.json; do
    if python3 -m json.tool "$f" >/dev/null 2>/tmp/check-deploy.$$; then
        ok "$f parses"
    else
        bad "$f: $(head -n1 /tmp/check-deploy.$$)"
    fi
done
rm -f /tmp/check-deploy.$$

# ---- YAML, and what the files must contain ----
if python3 -c 'import yaml' 2>/dev/null; then
    if out=$(python3 - <<'PY' 2>&1
import json, re, sys, yaml

problems = []
compose = yaml.safe_load(open("deploy/compose.yml"))
alerts = yaml.safe_load(open("deploy/prometheus/alerts.yml"))
defs = json.load(open("deploy/rabbitmq/definitions.json"))

# compose: the services the issue asks for, and a /readyz healthcheck.
services = compose.get("services", {})
for name in ("postgres", "rabbitmq1", "rabbitmq2", "rabbitmq3", "migrate", "hms-sync", "scheduling", "casemgmt", "warehouse"):
    if name not in services:
        problems.append("compose.yml: no service %s" % name)
pg_cmd = " ".join(services.get("postgres", {}).get("command", []))
if "wal_level=logical" not in pg_cmd:
    problems.append("compose.yml: postgres does not set wal_level=logical")
hc = " ".join(services.get("hms-sync", {}).get("healthcheck", {}).get("test", []))
if "/readyz" not in hc:
    problems.append("compose.yml: the connector's healthcheck does not use /readyz")

# alerts: Prometheus rule-file shape, and the metrics the issue names.
names = set()
exprs = ""
for g in alerts.get("groups", []):
    for r in g.get("rules", []):
        if "alert" not in r or "expr" not in r:
            problems.append("alerts.yml: a rule in %s lacks alert or expr" % g.get("name"))
            continue
        names.add(r["alert"])
        exprs += r["expr"] + "\n"
for metric in ("hms_sync_replication_lag_bytes", "hms_sync_replication_lag_seconds", "hms_sync_up",
               "hms_sync_last_feedback_timestamp_seconds", "hms_sync_nacks_total",
               "hms_sync_returns_total", "hms_sync_replica_identity_full",
               "hms_sync_changes_rejected_total",
               "pg_replication_slot_wal_status",
               "pg_replication_slot_slot_is_active",
               "hms_sync_consumer_queue_messages", "hms_sync_consumer_up",
               "hms_sync_consumer_events_total"):
    if metric not in exprs:
        problems.append("alerts.yml: no rule uses %s" % metric)
if len(names) != sum(len(g.get("rules", [])) for g in alerts.get("groups", [])):
    problems.append("alerts.yml: duplicate alert names")

# definitions: exchanges, and queues exactly as `hms-sync consume` declares
# them with its defaults (a mismatch makes its queue.declare fail).
ex = {(e["name"], e["type"]) for e in defs.get("exchanges", []) if e.get("durable")}
for want in (("hms.incidents", "topic"), ("hms.incidents.dlx", "direct"),
             ("hms.incidents.rejected", "fanout"), ("incidents", "fanout")):
    if want not in ex:
        problems.append("definitions.json: no durable %s exchange %s" % (want[1], want[0]))
queues = {q["name"]: q for q in defs.get("queues", [])}
bindings = {(b["source"], b["destination"], b["routing_key"]) for b in defs.get("bindings", [])}
perms = {p["user"]: p for p in defs.get("permissions", [])}
if "hms-sync" not in perms:
    problems.append("definitions.json: no permissions for user hms-sync")
else:
    # run declares its exchanges and publishes to two; binding the fanout
    # exchange takes write on it and read on hms.incidents.
    for name in ("hms.incidents", "hms.incidents.rejected", "incidents"):
        for what in ("configure", "write"):
            if not re.search(perms["hms-sync"][what], name):
                problems.append("definitions.json: hms-sync may not %s %s" % (what, name))
    if not re.search(perms["hms-sync"]["read"], "hms.incidents"):
        problems.append("definitions.json: hms-sync may not read hms.incidents (to bind incidents)")
run_env = services.get("hms-sync", {}).get("environment", {}) or {}
if run_env.get("HMS_SYNC_FANOUT_EXCHANGE") != "incidents":
    problems.append("compose.yml: the connector does not set HMS_SYNC_FANOUT_EXCHANGE: incidents")
if not any(b[0] == "hms.incidents.rejected" for b in bindings):
    problems.append("definitions.json: no queue keeps hms.incidents.rejected (rejections are dropped)")
for name, svc in services.items():
    env = svc.get("environment", {}) or {}
    q = env.get("HMS_SYNC_QUEUE") if isinstance(env, dict) else None
    if not q:
        continue
    args = queues.get(q, {}).get("arguments")
    want = {"x-queue-type": "quorum", "x-dead-letter-exchange": "hms.incidents.dlx",
            "x-dead-letter-routing-key": q, "x-delivery-limit": 5}
    if args != want:
        problems.append("definitions.json: queue %s arguments %r, consume declares %r" % (q, args, want))
    if queues.get(q + ".dlq", {}).get("arguments", None) != {"x-queue-type": "quorum"}:
        problems.append("definitions.json: no durable quorum queue %s.dlq" % q)
    if ("hms.incidents.dlx", q + ".dlq", q) not in bindings:
        problems.append("definitions.json: %s.dlq is not bound to hms.incidents.dlx with key %s" % (q, q))
    if not any(b[0] == "hms.incidents" and b[1] == q for b in bindings):
        problems.append("definitions.json: queue %s is not bound to hms.incidents" % q)
    if q not in perms:
        problems.append("definitions.json: no permissions for user %s" % q)
        continue
    # RabbitMQ matches a permission pattern anywhere in a name (re:run).
    p = perms[q]
    for shared in ("hms.incidents", "hms.incidents.dlx", "hms.incidents.rejected"):
        if re.search(p["configure"], shared):
            problems.append("definitions.json: subscriber %s may configure (delete) %s" % (q, shared))
    if re.search(p["write"], "hms.incidents"):
        problems.append("definitions.json: subscriber %s may publish to hms.incidents" % q)
    for own in (q, q + ".dlq"):
        if not re.search(p["configure"], own):
            problems.append("definitions.json: subscriber %s may not declare its queue %s" % (q, own))
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
    ); then
        ok "compose.yml, alerts.yml and definitions.json parse and agree"
    else
        while IFS= read -r line; do bad "$line"; done <<<"$out"
    fi
else
    skip "YAML checks: python3 has no yaml module (apt-get install python3-yaml)"
fi

# ---- the alert rules, as Prometheus reads them ----
if command -v promtool >/dev/null; then
    if out=$(promtool check rules deploy/prometheus/alerts.yml 2>&1); then
        ok "promtool check rules deploy/prometheus/alerts.yml"
    else
        bad "deploy/prometheus/alerts.yml: $(grep -m1 -iE 'error|fail' <<<"$out")"
    fi
else
    skip "alert rules: promtool not installed (apt-get install prometheus)"
fi

# ---- the man page ----
if command -v groff >/dev/null; then
    warnings=$(groff -man -Tutf8 -ww -z docs/hms-sync.1 2>&1)
    if [ -z "$warnings" ]; then
        ok "docs/hms-sync.1 renders without warnings"
    else
        bad "docs/hms-sync.1: $(echo "$warnings" | head -n1)"
    fi
    if command -v man >/dev/null; then
        if man -l docs/hms-sync.1 >/dev/null 2>/tmp/check-deploy-man.$$ && [ ! -s /tmp/check-deploy-man.$$ ]; then
            ok "man -l docs/hms-sync.1"
        else
            bad "man -l docs/hms-sync.1: $(head -n1 /tmp/check-deploy-man.$$)"
        fi
        rm -f /tmp/check-deploy-man.$$
    fi
else
    skip "man page: groff not installed (apt-get install groff-base man-db)"
fi

# ---- the Dockerfile builds with the CI script ----
if grep -Eq '^RUN scripts/build-release\.sh( |$)' Dockerfile; then
    ok "Dockerfile builds with scripts/build-release.sh"
else
    bad "Dockerfile: no 'RUN scripts/build-release.sh ...' step (the image must build as CI does)"
fi
for need in CMakeLists.txt cmake src include sql schemas docs/hms-sync.1 scripts/build-release.sh; do
    if grep -Eq "^COPY +$need( |/)" Dockerfile; then
        [ -e "$need" ] || bad "Dockerfile copies $need, which does not exist"
    else
        bad "Dockerfile: the build needs $need but does not COPY it"
    fi
done
# Every pkg-config module CMake requires needs its -dev package in the build stage.
for mod in $(sed -n 's/.*pkg_check_modules([A-Z_]* REQUIRED IMPORTED_TARGET \([a-z0-9_.-]*\)).*/\1/p' CMakeLists.txt); do
    case "$mod" in
    libpq) pkg=libpq-dev ;; librabbitmq) pkg=librabbitmq-dev ;; json-c) pkg=libjson-c-dev ;;
    inih) pkg=libinih-dev ;; libmicrohttpd) pkg=libmicrohttpd-dev ;; libsystemd) pkg=libsystemd-dev ;;
    openssl | libssl) pkg=libssl-dev ;; *) pkg= ;;
    esac
    if [ -z "$pkg" ]; then
        bad "CMakeLists.txt requires $mod: teach check-deploy.sh its Debian -dev package"
    elif ! grep -q "$pkg" Dockerfile; then
        bad "Dockerfile: the build stage lacks $pkg (CMake requires $mod)"
    fi
done
ok "Dockerfile copies what scripts/build-release.sh needs"

# ---- shell scripts ----
for f in scripts/*.sh tests/servers.sh; do
    bash -n "$f" 2>/dev/null || bad "$f does not parse (bash -n)"
done
sh -n deploy/postgres/init-roles.sh || bad "deploy/postgres/init-roles.sh does not parse (sh -n)"
ok "shell scripts parse"

if [ "$fails" -gt 0 ]; then
    echo "check-deploy: FAILED: $fails problem(s), $skips skipped" >&2
    exit 1
fi
echo "check-deploy: OK ($skips skipped)"
