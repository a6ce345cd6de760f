#!/usr/bin/env bash
# scripts/fuzz.sh -- builds the libFuzzer harnesses (tests/fuzz/) with clang
# in build-fuzz/ and runs each one for SECONDS (default 30) on a scratch copy
# of its seed corpus, so the tree is never modified.
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
#
# Prints per harness: executions, exec/s, coverage (edges reached) and the
# number of new corpus entries found, and crashes.  Exits non-zero when any
# harness crashes, leaks, hits a sanitizer report or times out; the input
# that did it is saved under build-fuzz/crashes/<harness>/.
# Environment: HMS_FUZZ_BUILD_DIR (default build-fuzz/), HMS_JOBS.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${HMS_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
JOBS=${HMS_JOBS:-$(nproc)}
SECONDS_EACH=${1:-30}
shift || true
case "$SECONDS_EACH" in
'' | 0 | *[!0-9]*) echo "fuzz.sh: SECONDS must be a positive number (try --help)" >&2; sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(pgoutput walproto config jsonschema pgvalue rowtext)

say() { echo "fuzz.sh: $*" >&2; }

say "building the harnesses (clang) in $BUILD"
if ! { CC=clang cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DHMS_FUZZ=ON \
    -DHMS_BUILD_TESTS=OFF >/dev/null && cmake --build "$BUILD" --target fuzzers -j"$JOBS" >/dev/null; }; then
    say "FAILED: building the harnesses"
    exit 1
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/hms-fuzz.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
printf '%-12s %12s %9s %7s %9s %8s\n' harness executions exec/s cov new-corp crashes >&2
for h in "${HARNESSES[@]}"; do
    bin=$BUILD/tests/fuzz/fuzz_$h
    seeds=$ROOT/tests/fuzz/corpus/$h
    if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
        say "no harness or corpus for $h"
        failed=1
        continue
    fi
    work=$SCRATCH/$h
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "$seeds"/* "$work/corpus/"
    nseeds=$(find "$work/corpus" -type f | wc -l)
    # One process, no forking: -max_total_time bounds the run; a unit that
    # takes over 10 s counts as a hang (a crash here).
    (cd "$work" && "$bin" -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
        "$work/corpus" >"$work/log" 2>&1)
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -n1 | cut -d' ' -f2)
    ncorp=$(find "$work/corpus" -type f | wc -l)
    ncrash=$(find "$work/artifacts" -type f | wc -l)
    if [ "$rc" != 0 ] || [ "$ncrash" != 0 ] ||
        grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$work/log"; then
        failed=1
        [ "$ncrash" != 0 ] || ncrash=1
        mkdir -p "$BUILD/crashes/$h"
        cp "$work"/artifacts/* "$BUILD/crashes/$h/" 2>/dev/null
        cp "$work/log" "$BUILD/crashes/$h/fuzz.log"
    fi
    printf '%-12s %12s %9s %7s %9s %8s\n' "$h" "${execs:-?}" "${speed:-?}" "${cov:-?}" \
        "$((ncorp - nseeds))" "$ncrash" >&2
    if [ "$rc" != 0 ]; then
        say "$h FAILED (exit $rc); log and inputs in $BUILD/crashes/$h/:"
        grep -E 'ERROR:|SUMMARY:|runtime error:|^    #[0-9] ' "$work/log" | head -n 15 >&2
    fi
done

if [ "$failed" != 0 ]; then
    say "FAILED: see $BUILD/crashes/"
    exit 1
fi
say "OK: ${#HARNESSES[@]} harnesses, ${SECONDS_EACH}s each, no crashes"
