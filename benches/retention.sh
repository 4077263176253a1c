#!/usr/bin/env bash
# retention.sh - does retention keep up over a long run? (issue 17, "Resource bounds")
#
# Runs examples/retention_bench.rs (release build): PASSES passes of a fleet of HOSTS hosts through
# the store API on a fake clock (PASS_SECONDS per pass), CHANGE_PERCENT of the hosts opening or
# closing a port each pass (events, host states, findings and the run committed as the agent does),
# each pass followed by prune and prune_findings with a retention of RETENTION_PASSES passes. Every
# REPORT_EVERY passes it prints the store directory's bytes on disk (allocated blocks: all files,
# and the SST and WAL shares) and the events kept; at the end one RETENTION line comparing the
# largest size of the last quarter of the run with the largest of the second quarter. The script
# exits 1 when that grew by more than FLAT_TOLERANCE (default 0.25 = 25%).
#
# Usage:  benches/retention.sh                       # 10 000 passes x 1 000 hosts, a few minutes
#         PASSES=2000 HOSTS=200 benches/retention.sh  # quicker
# Environment (defaults in parentheses): PASSES (10000), HOSTS (1000), CHANGE_PERCENT (3),
#   PASS_SECONDS (300), RETENTION_PASSES (50), REPORT_EVERY (500), FLAT_TOLERANCE (0.25),
#   STORE_DIR (a temporary directory, deleted afterwards; set it to keep the store),
#   BENCH (the driver binary; default target/release/examples/retention_bench, built here unless
#   it exists; REBUILD=1 forces the build).
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH=${BENCH:-target/release/examples/retention_bench}
if [[ ! -x $BENCH || ${REBUILD:-0} == 1 ]]; then
    cargo build --release --example retention_bench
fi
export PASSES=${PASSES:-10000} HOSTS=${HOSTS:-1000} CHANGE_PERCENT=${CHANGE_PERCENT:-3}
export PASS_SECONDS=${PASS_SECONDS:-300} RETENTION_PASSES=${RETENTION_PASSES:-50}
export REPORT_EVERY=${REPORT_EVERY:-500} FLAT_TOLERANCE=${FLAT_TOLERANCE:-0.25}
[[ -n ${STORE_DIR:-} ]] && export STORE_DIR

start=$(date +%s.%N)
status=0
"$BENCH" || status=$?
end=$(date +%s.%N)
printf 'wall time %.1f s, exit %d\n' "$(echo "$end - $start" | bc)" "$status"
exit "$status"
