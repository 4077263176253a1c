#!/usr/bin/env bash
# detect.sh - detection-latency benchmark (issue 15): a fake cloud of SERVERS VMs (default 10 000)
# behind a real Keystone (../shared/keystone/start-keystone.sh), real loopback listeners behind
# LISTENERS of them (default 100), and the release agent; over DURATION seconds (default 600) the
# driver (examples/detect_bench.rs) makes CHANGES exposing changes (default 20) at random times —
# a floating IP associated with a VM that listens, a VM booted with one — stamped by the cloud's
# clock, and reads the agent's confirmed findings.
#
# Prints, for the agent with change polls (POLL_INTERVAL, default 60 s) and for the same agent with
# full passes only (every FULL_INTERVAL, default 900 s: the peers' model): time from change to
# confirmed finding (p50, p95, max, missed within the grace period), the requests per minute the fake
# Nova and Neutron served during the window, and the agent's peak RSS.
# Targets: p95 < 90 s with the default poll interval, < 5 extra requests per minute per cloud, RSS
# < 100 MB for 10 000 VMs.
#
# Usage:  benches/detect.sh                 (about 10 + 27 minutes with the defaults)
#         DURATION=300 FULL_INTERVAL=300 CHANGES=12 benches/detect.sh   (shorter)
# Environment: SERVERS, LISTENERS, CHANGES, DURATION, POLL_INTERVAL, FULL_INTERVAL, MODES
# ("incremental full"), STINGER (default target/release/stinger, built), KEEP=1 keeps the work dir.
set -euo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SELF_DIR/.." && pwd)
SHARED=$(readlink -f "$REPO/../shared")
STINGER=${STINGER:-$REPO/target/release/stinger}
DRIVER=$REPO/target/release/examples/detect_bench
W=$(mktemp -d /tmp/stinger-detect.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ "${KEEP:-}" = 1 ] && echo "detect: kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT
log() { echo "detect: $*" >&2; }

(cd "$REPO" && cargo build --release --locked --bin stinger --example detect_bench >&2)
. "$SELF_DIR/keystone.sh"

log "starting Keystone"
start_keystone "${KS_DIR:-$REPO/target/tmp/stinger-keystone-detect}" 7200
PIDS+=("$SERVER_PID")

results=()
for mode in ${MODES:-incremental full}; do
    log "$mode: ${DURATION:-600} s window, ${CHANGES:-20} changes"
    line=$("$DRIVER" --keystone "$KEYSTONE_URL" --admin-token "$ADMIN_TOKEN" --stinger "$STINGER" \
        --mode "$mode" --servers "${SERVERS:-10000}" --listeners "${LISTENERS:-100}" \
        --changes "${CHANGES:-20}" --duration "${DURATION:-600}" \
        --poll-interval "${POLL_INTERVAL:-60}" --full-interval "${FULL_INTERVAL:-900}" \
        --dir "$W/$mode" | grep '^DETECT')
    echo "$line" >&2
    results+=("$line")
done

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
printf '\n%-12s %8s %8s %8s %8s %8s %12s %9s\n' mode found missed p50_s p95_s max_s requests/min rss_MB
for r in "${results[@]}"; do
    printf '%-12s %8s %8s %8s %8s %8s %12s %9s\n' "$(field "$r" mode)" "$(field "$r" found)" \
        "$(field "$r" missed)" "$(field "$r" p50)" "$(field "$r" p95)" "$(field "$r" max)" \
        "$(field "$r" requests_per_minute)" "$(field "$r" rss_mb)"
done
inc=$(printf '%s\n' "${results[@]}" | grep 'mode=incremental' || true)
full=$(printf '%s\n' "${results[@]}" | grep 'mode=full' || true)
if [ -n "$inc" ]; then
    p95=$(field "$inc" p95)
    rss=$(field "$inc" rss_mb)
    echo "target p95 < 90 s: $(awk -v p="$p95" 'BEGIN{print (p<90)?"met":"MISSED"}') ($p95 s); RSS < 100 MB: $(awk -v r="$rss" 'BEGIN{print (r<100)?"met":"MISSED"}') ($rss MB)"
    if [ -n "$full" ]; then
        extra=$(awk -v a="$(field "$inc" requests_per_minute)" -v b="$(field "$full" requests_per_minute)" 'BEGIN{printf "%.1f", a-b}')
        echo "extra requests per minute for change polls: $extra (target < 5: $(awk -v e="$extra" 'BEGIN{print (e<5)?"met":"MISSED"}'))"
    fi
fi
