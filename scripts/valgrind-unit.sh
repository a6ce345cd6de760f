#!/usr/bin/env bash
# scripts/valgrind-unit.sh -- runs every unit test program of a normal Debug
# build (not the sanitizer one: valgrind and ASan do not mix) under valgrind
# memcheck, in-process (CK_FORK=no) so leaks in the tests themselves count.
#
#   scripts/valgrind-unit.sh [BUILD_DIR]
#
# BUILD_DIR defaults to $HMS_BUILD_DIR or build/; it is configured and built
# (Debug) first.  Exits non-zero on any memory error or definite/indirect
# leak; each program's report is kept in BUILD_DIR/valgrind/<test>.log.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-${HMS_BUILD_DIR:-$ROOT/build}}
JOBS=${HMS_JOBS:-$(nproc)}
say() { echo "valgrind-unit.sh: $*" >&2; }

command -v valgrind >/dev/null || { say "valgrind is not installed"; exit 1; }
if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
    cmake --build "$BUILD" -j"$JOBS" >/dev/null; }; then
    say "FAILED: Debug build in $BUILD"
    exit 1
fi
if grep -q '^HMS_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    say "$BUILD is a sanitizer build; valgrind needs a plain one"
    exit 1
fi

mkdir -p "$BUILD/valgrind"
failed=()
n=0
for src in "$ROOT"/tests/unit/test_*.c; do
    name=$(basename "$src" .c)
    bin=$BUILD/tests/$name
    [ -x "$bin" ] || { say "$name: not built"; failed+=("$name"); continue; }
    n=$((n + 1))
    log=$BUILD/valgrind/$name.log
    start=$(date +%s)
    # --error-exitcode covers both memory errors and the leak kinds named.
    if CK_FORK=no valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect --error-exitcode=1 --log-file="$log" \
        "$bin" >"$log.out" 2>&1; then
        say "$name: clean ($(($(date +%s) - start)) s)"
    else
        failed+=("$name")
        say "$name: FAILED ($(($(date +%s) - start)) s); $log:"
        head -n 40 "$log" >&2
        tail -n 5 "$log.out" >&2
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "OK: $n unit test programs, no memory errors, no leaks"
