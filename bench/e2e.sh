#!/usr/bin/env bash
# bench/e2e.sh -- bench/drain.sh with a smaller default N, kept for those used to it: hms-sync's
# events/s next to the broker's confirmed-publish ceiling, the discard sink and pg_recvlogical.
#
#   bench/e2e.sh                 N=20000 events per case, 3 repetitions, cases tx1 and tx100
#
# Takes the settings all benchmark scripts take (HMS_BENCH_N, HMS_BENCH_REPS, HMS_BENCH_CASES,
# ...; see bench/lib.sh or bench/README.md); only the default N differs.  Writes
# bench/results/drain-<UTC>.json.
set -euo pipefail
HMS_BENCH_N=${HMS_BENCH_N:-20000} exec "$(dirname "$0")/drain.sh" "$@"
