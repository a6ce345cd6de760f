#!/usr/bin/env bash
# scripts/build-release.sh -- the one Release build: configure with -Werror,
# build, and install into a staging directory.  The Dockerfile's build stage
# runs exactly this, and so can CI, so CI proves the image's build steps
# without Docker.
#
#   scripts/build-release.sh [--no-tests] BUILD_DIR [DESTDIR]
#     --no-tests  do not build the test programs (no Check needed: the image)
#     BUILD_DIR   CMake build directory (created if missing)
#     DESTDIR     staging root to install into: DESTDIR/usr/bin/hms-sync,
#                 DESTDIR/usr/share/hms-sync/schemas/, DESTDIR/usr/share/man/man1/
#                 (omit to build only)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESTS=ON
if [ "${1:-}" = "--no-tests" ]; then
    TESTS=OFF
    shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
BUILD=$1
DEST=${2:-}
JOBS=${HMS_JOBS:-$(nproc)}

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-Werror \
    -DHMS_BUILD_TESTS="$TESTS" -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
cmake --build "$BUILD" -j"$JOBS"

if [ -n "$DEST" ]; then
    DESTDIR="$DEST" cmake --install "$BUILD" --component Unspecified >/dev/null
    install -d "$DEST/usr/share/hms-sync/schemas" "$DEST/usr/share/man/man1"
    install -m 644 "$ROOT"/schemas/*.json "$DEST/usr/share/hms-sync/schemas/"
    install -m 644 "$ROOT/docs/hms-sync.1" "$DEST/usr/share/man/man1/hms-sync.1"
    echo "build-release: installed into $DEST" >&2
fi
