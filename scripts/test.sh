#!/usr/bin/env bash
# scripts/test.sh -- the one command that builds hms-sync and runs all its
# tests: unit and integration (against scratch PostgreSQL and RabbitMQ) in a
# Debug build; then unit and integration again under ASan+UBSan (the
# integration tests spawn that build's hms-sync, so the connector itself runs
# sanitized), the unit tests under valgrind (scripts/valgrind-unit.sh) and
# every fuzz harness for 20 s (scripts/fuzz.sh, clang).
#
#   scripts/test.sh [--quick] [--stop]
#     --quick   skip the sanitizer, valgrind and fuzz passes
#     --stop    stop the scratch servers afterwards
#
# Build directories: $HMS_BUILD_DIR (default build/), build-asan/, build-fuzz/.
# Exits non-zero when anything fails; the last line is a summary.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${HMS_BUILD_DIR:-$ROOT/build}
ASAN_BUILD=${HMS_ASAN_BUILD_DIR:-$ROOT/build-asan}
JOBS=${HMS_JOBS:-$(nproc)}
QUICK=0
STOP=0
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    --stop) STOP=1 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { echo "test.sh: $*" >&2; }
if [ "$STOP" = 1 ]; then trap '"$ROOT/tests/servers.sh" stop' EXIT; fi

# ctest prints "NN% tests passed, F tests failed out of T"; keep "passed/total".
counts() {
    sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\1 \2/p' "$1" | tail -n1 |
        awk '{ printf "%d/%d passed", $2 - $1, $2 }'
}

bash "$ROOT/scripts/install-deps.sh" || { say "installing dependencies failed"; exit 1; }

say "building (Debug) in $BUILD"
if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
    cmake --build "$BUILD" -j"$JOBS"; }; then
    say "FAILED: Debug build"
    exit 1
fi

# RabbitMQ's await_startup can give up while the Erlang VM is still booting
# (the node is not yet registered); a second `start` then finds it running.
started=0
for attempt in 1 2 3; do
    if "$ROOT/tests/servers.sh" start; then
        started=1
        break
    fi
    say "scratch servers not up yet (attempt $attempt); retrying"
    sleep 10
done
[ "$started" = 1 ] || { say "FAILED: scratch servers did not start"; exit 1; }
# shellcheck disable=SC1090
. "$("$ROOT/tests/servers.sh" env)"
export HMS_TEST_REQUIRE_SERVERS=1

say "running unit and integration tests"
(cd "$BUILD" && ctest --output-on-failure -LE cluster) 2>&1 | tee "$BUILD/ctest.log"
main_rc=${PIPESTATUS[0]}
main_counts=$(counts "$BUILD/ctest.log")
summary="debug unit+integration: ${main_counts:-no tests ran}"

# The cluster scenarios get a three-node RabbitMQ cluster of their own,
# started only now so that its nodes do not load the machine before.
say "starting a three-node RabbitMQ cluster (tests/cluster.sh) for the cluster tests"
cluster_rc=1
if "$ROOT/tests/cluster.sh" start; then
    # shellcheck disable=SC1090
    (. "$("$ROOT/tests/cluster.sh" env)" && cd "$BUILD" && ctest --output-on-failure -L cluster) \
        2>&1 | tee "$BUILD/ctest-cluster.log"
    cluster_rc=${PIPESTATUS[0]}
    summary="$summary; cluster: $(counts "$BUILD/ctest-cluster.log")"
else
    summary="$summary; cluster: FAILED to start"
fi
"$ROOT/tests/cluster.sh" stop || true
[ "$cluster_rc" = 0 ] || main_rc=1

asan_rc=0
if [ "$QUICK" = 0 ]; then
    say "building with sanitizers in $ASAN_BUILD"
    if cmake -S "$ROOT" -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=Debug -DHMS_SANITIZE=ON >/dev/null &&
        cmake --build "$ASAN_BUILD" -j"$JOBS"; then
        (cd "$ASAN_BUILD" && ctest --output-on-failure -L 'unit|integration') 2>&1 |
            tee "$ASAN_BUILD/ctest.log"
        asan_rc=${PIPESTATUS[0]}
        summary="$summary; asan+ubsan unit+integration: $(counts "$ASAN_BUILD/ctest.log")"
    else
        asan_rc=1
        summary="$summary; asan+ubsan: BUILD FAILED"
    fi
else
    summary="$summary; asan+ubsan: skipped (--quick)"
fi

# valgrind on the plain Debug build's unit tests, then bounded fuzzing.
valgrind_rc=0
fuzz_rc=0
if [ "$QUICK" = 0 ]; then
    say "running the unit tests under valgrind"
    bash "$ROOT/scripts/valgrind-unit.sh" "$BUILD"
    valgrind_rc=$?
    summary="$summary; valgrind unit: $([ "$valgrind_rc" = 0 ] && echo clean || echo FAILED)"
    say "fuzzing each harness for 20 s"
    bash "$ROOT/scripts/fuzz.sh" 20
    fuzz_rc=$?
    summary="$summary; fuzz: $([ "$fuzz_rc" = 0 ] && echo no crashes || echo FAILED)"
else
    summary="$summary; valgrind, fuzz: skipped (--quick)"
fi

# ---- bench smoke (bench/run.sh --smoke; owner: bench) ---------------------------------------
# Only proves the benchmark still runs end to end (about 2 minutes); it judges no timing.
bench_rc=0
if [ "${HMS_BENCH_SMOKE:-0}" = 1 ]; then
    say "running the benchmark's smoke mode"
    HMS_BENCH_BUILD="$BUILD-bench" bash "$ROOT/bench/run.sh" --smoke
    bench_rc=$?
    summary="$summary; bench smoke: $([ "$bench_rc" = 0 ] && echo ran || echo FAILED)"
fi
# ---- end bench smoke ------------------------------------------------------------------------

if [ "$main_rc" = 0 ] && [ "$asan_rc" = 0 ] && [ "$valgrind_rc" = 0 ] && [ "$fuzz_rc" = 0 ] &&
    [ "$bench_rc" = 0 ]; then
    say "OK -- $summary"
    exit 0
fi
say "FAILED -- $summary"
echo "test.sh: FAILED -- $summary" >"$BUILD/test-summary.txt"
exit 1
