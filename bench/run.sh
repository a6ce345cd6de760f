#!/usr/bin/env bash
# bench/run.sh -- the whole benchmark in one run (see bench/README.md): the broker's and the
# decoder's ceilings next to hms-sync's backlog drain and decode+encode-only rates, the events/s
# of the transactional outbox (hms_sync.emit) next to the broker's ceiling, live commit ->
# received latency, peak RSS and CPU per event, a snapshot of existing rows next to the broker's
# ceiling and live latency during it, a subscriber's applied events/s next to the connector's
# published ones and its commit -> applied latency, plus instructions per event under callgrind
# and what the schema check of every event costs.
# Prints one table with the issue's targets; raw numbers go to bench/results/run-<UTC>.json and
# the latency chart to bench/results/latency-<UTC>.png.
#
#   bench/run.sh            the full run (N=200000 events per case, 3 repetitions)
#   bench/run.sh --smoke    small sizes, 1 repetition, short live runs: proves the benchmark works
#                           (under ~3 minutes); it judges no target
#
# The stages are the scripts drain.sh, outbox.sh, memory.sh, live.sh, snapshot.sh, subscriber.sh,
# callgrind.sh and validate.sh, each of which also runs alone; here they share one set-up (servers,
# build, database), one table and one JSON.  HMS_BENCH_STAGES picks some of them; they always run
# in that order.  The settings all scripts share follow.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
for s in $BENCH_ORDER; do
    # shellcheck source=/dev/null # each stage script is checked on its own
    . "$(dirname "$0")/$s.sh"
done
bench_main "${HMS_BENCH_STAGES:-$BENCH_ORDER}" "$@"
