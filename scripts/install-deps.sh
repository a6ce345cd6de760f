#!/usr/bin/env bash
# scripts/install-deps.sh -- install what hms-sync's build, tests and scratch
# servers need on Debian 12.  Idempotent: when every package is already
# installed it only runs dpkg-query and returns.
#
# Services are kept from starting during installation: Debian's
# rabbitmq-server and postgresql-15 packages would otherwise start a default
# node (5672/25672/epmd 4369) and a default cluster (5432).  The tests use
# their own scratch servers (tests/servers.sh), never these.
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config
    libpq-dev librabbitmq-dev libjson-c-dev check libinih-dev libssl-dev
    libmicrohttpd-dev libsystemd-dev
    postgresql-15 postgresql-client-15 rabbitmq-server
    iproute2 amqp-tools json-schema-test-suite groff-base man-db python3-yaml
    clang libclang-rt-14-dev llvm valgrind
    gnuplot-nox jq # bench/run.sh: the latency chart, its JSON
    nodejs         # tests/node: a subscriber written with Node's amqplib
    prometheus     # promtool: scripts/check-deploy.sh checks the alert rules
    chromium       # tests/integration/test_status_page.c: the status page in a real browser
)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# Debian's nodejs comes without npm (a package of its own); NodeSource's
# includes it and conflicts with Debian's npm.  So npm is asked for only
# after nodejs is in, and only when nodejs did not bring it.
need_npm() { ! command -v npm >/dev/null; }
if [ ${#missing[@]} -eq 0 ] && ! need_npm; then
    echo "install-deps: all ${#PKGS[@]} packages present" >&2
    exit 0
fi

SUDO=
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
    SUDO=sudo
fi

# policy-rc.d exit code 101 tells invoke-rc.d (and deb-systemd-invoke) not to
# start services; only install ours if none exists, and remove only ours.
POLICY=/usr/sbin/policy-rc.d
ours_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    ours_policy=1
fi
cleanup() { if [ "$ours_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
install() {
    echo "install-deps: installing $*" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null
}
[ ${#missing[@]} -eq 0 ] || install "${missing[@]}"
if need_npm; then install npm; fi

# Should a default RabbitMQ node or epmd have started anyway, stop it: it is
# not ours and a stray epmd would confuse rabbitmqctl.
if command -v ss >/dev/null && ss -Hltn 'sport = :5672' 2>/dev/null | grep -q .; then
    echo "install-deps: stopping the package's default RabbitMQ node" >&2
    $SUDO rabbitmqctl -q stop >/dev/null 2>&1 || true
fi
echo "install-deps: done" >&2
