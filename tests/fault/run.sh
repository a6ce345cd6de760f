#!/usr/bin/env bash
# tests/fault/run.sh -- the fault suite's one entry point: builds the
# connector and the suite (Debug, in $HMS_BUILD_DIR or build-faultsuite/),
# starts the scratch servers if needed, runs every scenario and writes
# tests/fault/RESULTS.md.
#
#   tests/fault/run.sh [--long] [fault_suite options...]
#     --long                  hundreds of kill -9 trials, 1,000,000-row transaction,
#                             every other fault repeated several times
#     --seed N                replay a run's random timing
#     --only kill9,broker,... run some scenarios (kill9 broker postgres net-pg
#                             net-amqp refusals bigtx poison)
#     --break-checker drop|reorder
#                             a deliberately broken checker: the run must FAIL
#     --cluster               the cluster scenarios instead (cluster-kill,
#                             cluster-leader, cluster-partition, cluster-rolling)
#                             on a three-node cluster (tests/cluster.sh, started
#                             here); results in tests/fault/RESULTS-cluster.md
# The bounded forms (no --long) are what ctest runs (labels "fault" and
# "cluster").
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${HMS_BUILD_DIR:-$ROOT/build-faultsuite}

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fault_suite >/dev/null
"$ROOT/tests/servers.sh" start
# shellcheck disable=SC1090
. "$("$ROOT/tests/servers.sh" env)"
export HMS_TEST_REQUIRE_SERVERS=1

results=(--results "$ROOT/tests/fault/RESULTS.md")
for arg in "$@"; do
    if [ "$arg" = --cluster ]; then
        "$ROOT/tests/cluster.sh" start
        # shellcheck disable=SC1090
        . "$("$ROOT/tests/cluster.sh" env)"
        results=(--results "$ROOT/tests/fault/RESULTS-cluster.md")
    fi
done
for arg in "$@"; do
    # --only and --break-checker runs are partial: keep RESULTS.md as it is.
    case "$arg" in --only | --break-checker) results=() ;; esac
done
exec "$BUILD/tests/fault/fault_suite" "${results[@]}" "$@"
