#!/usr/bin/env bash
# bench/e2e.sh -- the backlog-drain stage of bench/run.sh alone: hms-sync's events/s next to the
# broker's confirmed-publish ceiling, the discard sink and pg_recvlogical, in the same run.
#
#   bench/e2e.sh                 N=20000 events per case, 3 repetitions, cases tx1 and tx100
#
# Takes bench/run.sh's settings (HMS_BENCH_N, HMS_BENCH_REPS, HMS_BENCH_CASES, ...; see
# bench/README.md); only the default N differs.
set -euo pipefail
HMS_BENCH_N=${HMS_BENCH_N:-20000} HMS_BENCH_STAGES=drain exec "$(dirname "$0")/run.sh" "$@"
