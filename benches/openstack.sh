#!/usr/bin/env bash
# openstack.sh - OpenStack inventory benchmark: a fake cloud of N servers (default 10 000, generated
# in the shape of Nova's servers-details sample, 1000 a page; ports, floating IPs, networks and
# security groups from Neutron) behind a real Keystone (../shared/keystone/start-keystone.sh), and the
# release agent inventorying it.
#
# Prints: full inventory time (Keystone auth + Nova + Neutron + names + join), taken from the agent's
# own "OpenStack inventory finished" log line, with and without per-VM diagnostics, and the agent's
# peak RSS (VmHWM) over two inventories (a first one, then one with all N VMs in its state). Targets (issue 4): inventory < 5 s, RSS < 100 MB.
#
# Usage:  benches/openstack.sh
# Environment:
#   SERVERS    servers in the fake cloud (default 10000)
#   STINGER    agent binary (default target/release/stinger; built if missing)
#   KEEP=1     keep the work directory (logs) instead of deleting it
# Everything runs on 127.0.0.1 and 127.200.0.0/14; the VMs' floating addresses are probed on one
# port (nothing listens there).
set -euo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SELF_DIR/.." && pwd)
SHARED=$(readlink -f "$REPO/../shared")
FAKE=$REPO/target/release/examples/fake_cloud
. "$SELF_DIR/keystone.sh"

# start_fake_cloud SERVERS REGION CLOUD DIR: the fake Nova + Neutron of examples/fake_cloud.rs with
# SERVERS servers (1000 a page) on 127.0.0.1, its endpoints in Keystone's catalog under region
# REGION, and an entry CLOUD (that region, Keystone's admin) added to DIR/clouds.yaml. Needs
# KEYSTONE_URL and ADMIN_TOKEN (start_keystone) and the array PIDS (gets the fake cloud's PID).
# capacity.sh sources this file for it.
start_fake_cloud() {
    local servers=$1 region=$2 cloud=$3 dir=$4 compute network cs ns i
    local J='Content-Type: application/json'
    "$FAKE" --listen 127.0.0.1:0 --servers "$servers" --page-size 1000 --keystone "$KEYSTONE_URL" \
        >"$dir/fake-$region.out" 2>"$dir/fake-$region.err" &
    PIDS+=("$!")
    for _ in $(seq 600); do grep -q FAKE_CLOUD "$dir/fake-$region.out" && break; sleep 0.1; done
    compute=$(sed -n 's/.*compute=\([^ ]*\).*/\1/p' "$dir/fake-$region.out")
    network=$(sed -n 's/.*network=\([^ ]*\).*/\1/p' "$dir/fake-$region.out")
    [ -n "$compute" ] || { cat "$dir/fake-$region.err" >&2; exit 2; }

    ks() { curl -sf -m 20 -H "X-Auth-Token: $ADMIN_TOKEN" -H "$J" "$@"; }
    ks -d "{\"region\":{\"id\":\"$region\"}}" "$KEYSTONE_URL/regions" >/dev/null
    cs=$(ks "$KEYSTONE_URL/services?type=compute" | python3 -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["id"])')
    # the network service: created by the first call
    ns=$(ks "$KEYSTONE_URL/services?type=network" | python3 -c 'import json,sys; s=json.load(sys.stdin)["services"]; print(s[0]["id"] if s else "")')
    [ -n "$ns" ] || ns=$(ks -d '{"service":{"type":"network","name":"neutron"}}' "$KEYSTONE_URL/services" | python3 -c 'import json,sys; print(json.load(sys.stdin)["service"]["id"])')
    for i in public internal admin; do
        ks -d "{\"endpoint\":{\"service_id\":\"$cs\",\"interface\":\"$i\",\"url\":\"$compute\",\"region_id\":\"$region\"}}" "$KEYSTONE_URL/endpoints" >/dev/null
        ks -d "{\"endpoint\":{\"service_id\":\"$ns\",\"interface\":\"$i\",\"url\":\"$network\",\"region_id\":\"$region\"}}" "$KEYSTONE_URL/endpoints" >/dev/null
    done
    [ -s "$dir/clouds.yaml" ] || echo "clouds:" >"$dir/clouds.yaml"
    cat >>"$dir/clouds.yaml" <<EOF
  $cloud:
    region_name: $region
    auth:
      auth_url: $KEYSTONE_URL
      username: admin
      password: secret
      user_domain_name: Default
      project_name: admin
      project_domain_name: Default
EOF
}

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0   # sourced: the functions only

SERVERS=${SERVERS:-10000}
STINGER=${STINGER:-$REPO/target/release/stinger}
W=$(mktemp -d /tmp/stinger-osbench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ "${KEEP:-}" = 1 ] && echo "openstack: kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT
log() { echo "openstack: $*" >&2; }

(cd "$REPO" && cargo build --release --locked --bin stinger --example fake_cloud >&2)

log "starting Keystone"
start_keystone "${KS_DIR:-$REPO/target/tmp/stinger-keystone-bench}" 1800
PIDS+=("$SERVER_PID")

log "starting the fake cloud with $SERVERS servers"
start_fake_cloud "$SERVERS" Bench bench "$W"

run_agent() { # $1 = diagnostics true|false; prints "inventory_seconds rss_kib vms"
    local diag=$1 dir=$W/agent-$1
    mkdir -p "$dir"
    cat >"$dir/stinger.toml" <<EOF
[schedule]
discovery = "5s"
jitter = "0s"
[scan.nmap]
enabled = false
[scan.udp]
enabled = false
# The fake cloud's VMs are on loopback, which [scope] refuses from an API unless allowed.
[scope]
allow = ["127.0.0.0/8"]
[[openstack]]
name = "bench"
cloud = "bench"
addresses = "floating"
ports = "9"
diagnostics = $diag
diagnostics_concurrency = 16
[storage]
path = "$dir/data"
[web]
listen_address = "127.0.0.1:0"
EOF
    OS_CLIENT_CONFIG_FILE=$W/clouds.yaml "$STINGER" --config.file "$dir/stinger.toml" 2>"$dir/log" &
    local pid=$!
    PIDS+=("$pid")
    if [ "${RSS_TRACE:-}" = 1 ]; then # "unix-ms rss-kB" every 20 ms, beside the log (KEEP=1 keeps it)
        while kill -0 "$pid" 2>/dev/null; do
            echo "$(date +%s%3N) $(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null)"
            sleep 0.02
        done >"$dir/rss.trace" &
    fi
    # Two runs: the first inventories a cloud the agent has never seen, the second one it has
    # (10 000 VMs in state, each compared with and replaced by its new record).
    runs() { grep -c 'discovery run finished' "$dir/log" || true; }
    for _ in $(seq 3000); do [ "$(runs)" -ge 2 ] && break; sleep 0.1; done
    [ "$(runs)" -ge 2 ] || { tail -20 "$dir/log" >&2; exit 2; }
    local secs rss vms
    secs=$(grep 'OpenStack inventory finished' "$dir/log" | head -1 | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p')
    vms=$(grep 'OpenStack inventory finished' "$dir/log" | head -1 | sed -n 's/.*servers=\([0-9]*\).*/\1/p')
    rss=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
    # Where the memory is (anonymous = heap and stacks, file = the binary's pages): kept with KEEP=1.
    cp "/proc/$pid/smaps_rollup" "$dir/smaps_rollup" 2>/dev/null || true
    cp "/proc/$pid/status" "$dir/status" 2>/dev/null || true
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$secs $rss $vms"
}

read -r S1 R1 V1 <<<"$(run_agent false)"
read -r S2 R2 V2 <<<"$(run_agent true)"
printf '\n%-38s %10s %12s %8s\n' "run ($SERVERS servers, 1000 a page)" "inventory" "peak RSS" "servers"
printf '%-38s %9.2fs %9.1f MB %8s\n' "inventory, no diagnostics" "$S1" "$(echo "$R1/1024" | bc -l)" "$V1"
printf '%-38s %9.2fs %9.1f MB %8s\n' "inventory + diagnostics (16 at once)" "$S2" "$(echo "$R2/1024" | bc -l)" "$V2"
printf 'targets: inventory < 5 s (%s), RSS < 100 MB (%s)\n' \
    "$(awk -v s="$S1" 'BEGIN{print (s<5)?"met":"MISSED"}')" \
    "$(awk -v r="$R2" 'BEGIN{print (r/1024<100)?"met":"MISSED"}')"
