#!/usr/bin/env bash
# capacity.sh - a capacity model of stinger, measured on this machine (issue 16, part 2).
#
# Measures:
#   * probes per second per agent (`stinger scan --once`, nmap stage off; probes = addresses x ports,
#     rate = probes / wall time incl. start-up):
#       - W1, W3, W4 and UDP: discovery.sh's workloads, by running discovery.sh and reading its table
#       - W5: 4 096 addresses 10.245.0.0/20 x nmap's top-100 TCP ports behind a 20 ms RTT link, in two
#         network namespaces this script creates; W5_LIVE hosts (default 16) serve a few ports, every
#         other packet to 10.245.0.0/16 is silently DROPPED (a security group). Checked against the
#         layout. Also: the /24 (256 addresses, top 100) and the /16 (65 536 addresses, port 22):
#         RSS per 1 000 targets is the slope over these scans; and UDP on
#         10.245.0.0/23 (512 silent addresses x the 11 default [scan.udp] ports), its rate from the
#         difference to the same scan with UDP off.
#   * in a third namespace, a real Keystone and examples/fake_cloud.rs at each size of SIZES (default
#     1 000 and 10 000 VMs), and one agent per size doing PASSES full passes (inventory, top-100 TCP
#     and default UDP probes of the floating addresses, which are in the namespace's own 127/8) every
#     PASS_INTERVAL, with retention (scan_retention, event_retention) cut to RETENTION:
#     inventory seconds (the agent's "OpenStack inventory finished seconds=" lines: the first, and the
#     median over the passes), peak RSS (VmHWM), /metrics bytes and render time (curl time_total,
#     median of METRICS_REPS after the last pass), store bytes (du of the RocksDB directory) after
#     each pass and after shutdown.
#     One more agent at the largest size with [shard] count = SHARDS separates what every agent pays
#     for reading the whole inventory from what it pays per VM it keeps.
#   * then the table "VMs x ports x interval -> agents needed", with its assumptions.
#
# Usage (root):  benches/capacity.sh                       # ~20 minutes on 2 cores
#                PARTS=w5 W5_SCANS="W5-256 W5U" benches/capacity.sh   # a part of it
# Environment:
#   STINGER        agent binary (default target/release/stinger; not built here)
#   FAKE_CLOUD     fake cloud binary (default target/release/examples/fake_cloud; not built here)
#   PARTS          subset of "discovery w5 cloud" (default all; the table uses what was measured)
#   REPS           discovery.sh repetitions (default 3); WORKLOADS its workloads (default W1 W3 W4 UDP)
#   W5_REPS        repetitions of each W5 scan (default 1); W5_LIVE serving hosts (default 16)
#   W5_SCANS       subset of "W5-256 W5 W5-65536 W5U" (default all): the /24, the /20, the /16 and
#                  the UDP pair
#   SIZES          fake cloud sizes (default "1000 10000"); SHARDS (default 10; 1 = no shard run)
#   PASSES         full passes per agent (default 8); PASS_INTERVAL (default 15s); RETENTION (60s)
#   REPORT=FILE    measure nothing: print the report and table of a kept run's results.kv (KEEP=1),
#                  e.g. with other model assumptions
#   METRICS_REPS   /metrics scrapes per agent (default 7)
#   Model: ADDRS_PER_VM (1), MEM_BUDGET_MB (1024), DISK_BUDGET_GB (20), SCRAPE_BUDGET_S (5),
#          PASS_FILL (0.5: a pass may take at most this share of the interval), MAX_RATE (the
#          scan.tcp.max_rate to model; default: the embedded default config's)
#   RUN_TIMEOUT    seconds before one scan is killed (default 900)
#   KS_DIR         Keystone state and venv (default target/tmp/stinger-keystone-capacity)
#   KEEP=1         keep the work directory (logs, outputs, results.kv)
# Exit status: 1 if a scan was incorrect or discovery.sh failed (the report is printed anyway), 2 on
# setup errors. There are no targets: the figures are informational.
# Packets go only to 127.0.0.0/8 and to addresses inside the namespaces this script creates
# (stcap-{s,h,c}-<pid>), which are deleted on exit, errors and Ctrl-C included.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
SELF_DIR=$(dirname "$SELF")
REPO=$(cd "$SELF_DIR/.." && pwd)
BENCH_DIR=$(readlink -f "${BENCH_DIR:-/work/shared/bench}")
STINGER=$(readlink -f "${STINGER:-$REPO/target/release/stinger}")
FAKE_CLOUD=$(readlink -f "${FAKE_CLOUD:-$REPO/target/release/examples/fake_cloud}")
PARTS=${PARTS:-discovery w5 cloud}
REPS=${REPS:-3}
WORKLOADS=${WORKLOADS:-W1 W3 W4 UDP}
W5_REPS=${W5_REPS:-1}
W5_LIVE=${W5_LIVE:-16}
W5_SCANS=${W5_SCANS:-W5-256 W5 W5-65536 W5U}
SIZES=${SIZES:-1000 10000}
SHARDS=${SHARDS:-10}
PASSES=${PASSES:-8}
PASS_INTERVAL=${PASS_INTERVAL:-15s}
RETENTION=${RETENTION:-60s}
METRICS_REPS=${METRICS_REPS:-7}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
KS_DIR=${KS_DIR:-$REPO/target/tmp/stinger-keystone-capacity}
export ADDRS_PER_VM=${ADDRS_PER_VM:-1} MEM_BUDGET_MB=${MEM_BUDGET_MB:-1024} DISK_BUDGET_GB=${DISK_BUDGET_GB:-20}
export SCRAPE_BUDGET_S=${SCRAPE_BUDGET_S:-5} PASS_FILL=${PASS_FILL:-0.5} MAX_RATE=${MAX_RATE:-}
UDP_PORTS=53,123,161,11211,1900,389,19,3702,111,137,5353
NS_S=stcap-s-$$ NS_H=stcap-h-$$ NS_C=stcap-c-$$
[ "${1:-}" = __cloud ] && NS_C=$3   # the child runs inside the parent's
VETH_S=cps$$ VETH_H=cph$$

die() { echo "capacity: $*" >&2; exit 2; }
log() { echo "capacity: $*" >&2; }
part() { [[ " $PARTS " == *" $1 "* ]]; }
w5_want() { [[ " $W5_SCANS " == *" $1 "* ]]; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer"; }

# ================================================================== the cloud part (child mode)
# `capacity.sh __cloud DIR` runs inside namespace stcap-c-<pid> (started by the parent below).
cloud_child() {
    local W=$1
    PIDS=()
    trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    . "$SELF_DIR/openstack.sh"   # start_keystone (keystone.sh) and start_fake_cloud
    FAKE=$FAKE_CLOUD
    SHARED=$(readlink -f "$REPO/../shared")
    local kv=$W/cloud.kv s max=0 t0
    : >"$kv"
    log "cloud: starting Keystone in namespace $NS_C"
    start_keystone "$KS_DIR" "$((RUN_TIMEOUT * 4))"
    PIDS+=("$SERVER_PID")
    # Keystone's own endpoints are in RegionOne only: each cloud's region gets them too, so that the
    # agent lists project and user names as in a real cloud
    local J='Content-Type: application/json' ids i
    ids=$(curl -sf -m 20 -H "X-Auth-Token: $ADMIN_TOKEN" "$KEYSTONE_URL/services?type=identity" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["services"][0]["id"])')
    for s in $SIZES; do
        log "cloud: starting a fake cloud of $s VMs"
        start_fake_cloud "$s" "Cap$s" "cap$s" "$W"
        for i in public internal admin; do
            curl -sf -m 20 -o /dev/null -H "X-Auth-Token: $ADMIN_TOKEN" -H "$J" -d "{\"endpoint\":{\"service_id\":\"$ids\",\"interface\":\"$i\",\"url\":\"$KEYSTONE_URL/\",\"region_id\":\"Cap$s\"}}" \
                "$KEYSTONE_URL/endpoints" || die "identity endpoint for Cap$s"
        done
        [ "$s" -gt "$max" ] && max=$s
    done
    for s in $SIZES; do agent_run "$W" "$kv" "vms$s" "$s" 1; done
    if [ "$SHARDS" -gt 1 ]; then agent_run "$W" "$kv" "vms$max-shard" "$max" "$SHARDS"; fi
}

# store_sizes DIR: "allocated apparent sst wal infolog other" bytes of a RocksDB directory
store_sizes() {
    python3 - "$1" <<'EOF'
import os, re, sys
alloc = app = 0
part = {"sst": 0, "wal": 0, "infolog": 0, "other": 0}
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        try:
            st = os.stat(os.path.join(root, f))
        except FileNotFoundError:
            continue
        alloc += st.st_blocks * 512
        app += st.st_size
        k = ("sst" if f.endswith(".sst") else "wal" if re.fullmatch(r"\d+\.log", f)
             else "infolog" if f.startswith("LOG") else "other")
        part[k] += st.st_size
print(alloc, app, part["sst"], part["wal"], part["infolog"], part["other"])
EOF
}

# agent_run W KV LABEL SERVERS SHARDS: one agent against cloud cap<SERVERS>, PASSES full passes
agent_run() {
    local W=$1 kv=$2 label=$3 servers=$4 shards=$5 dir=$1/agent-$3 pid i n deadline shard=""
    mkdir -p "$dir"
    [ "$shards" -gt 1 ] && shard=$(printf '[shard]\ncount = %s\nindex = 0\n' "$shards")
    cat >"$dir/stinger.toml" <<EOF
[schedule]
discovery = "$PASS_INTERVAL"
jitter = "0s"
[scan.nmap]
enabled = false
# The fake cloud's VMs are on loopback, which [scope] refuses from an API unless allowed.
[scope]
allow = ["127.0.0.0/8"]
$shard
[[openstack]]
name = "cap"
cloud = "cap$servers"
ports = "$TOP100"
[storage]
path = "$dir/data"
scan_retention = "$RETENTION"
event_retention = "$RETENTION"
[web]
listen_address = "127.0.0.1:7864"
EOF
    log "cloud: agent $label ($servers VMs$([ "$shards" -gt 1 ] && echo ", shard 0 of $shards"), $PASSES passes every $PASS_INTERVAL)"
    OS_CLIENT_CONFIG_FILE=$W/clouds.yaml "$STINGER" --config.file "$dir/stinger.toml" 2>"$dir/log" &
    pid=$!
    PIDS+=("$pid")
    passes() { grep 'discovery run finished' "$dir/log" | grep -c 'targeted=false' || true; }
    for i in $(seq "$PASSES"); do
        deadline=$((SECONDS + RUN_TIMEOUT))
        while [ "$(passes)" -lt "$i" ]; do
            kill -0 "$pid" 2>/dev/null || { tail -20 "$dir/log" >&2; die "agent $label exited"; }
            [ "$SECONDS" -lt "$deadline" ] || { tail -20 "$dir/log" >&2; die "agent $label: pass $i not done within ${RUN_TIMEOUT}s"; }
            sleep 0.2
        done
        sleep 1   # retention runs right after the pass's log line
        echo "$label.store.pass$i=$(store_sizes "$dir/data" | tr ' ' ,)" >>"$kv"
        echo "$label.rss.pass$i=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")" >>"$kv"
        if [ "$i" = "$PASSES" ]; then
            echo "$label.hwm_noscrape_kb=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")" >>"$kv"
            for n in $(seq "$METRICS_REPS"); do
                curl -s -m 60 -o "$dir/metrics.txt" -w '%{size_download} %{time_total}\n' \
                    http://127.0.0.1:7864/metrics >>"$dir/metrics.times" || echo "0 nan" >>"$dir/metrics.times"
            done
        fi
    done
    echo "$label.hwm_kb=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")" >>"$kv"
    echo "$label.rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")" >>"$kv"
    cp "/proc/$pid/status" "$dir/status" 2>/dev/null || true
    kill -TERM "$pid"
    for n in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    {
        echo "$label.servers=$servers"
        echo "$label.shards=$shards"
        echo "$label.store.final=$(store_sizes "$dir/data" | tr ' ' ,)"
        echo "$label.metrics=$(awk '{printf "%s%s:%s", (NR>1?",":""), $1, $2}' "$dir/metrics.times")"
        grep 'OpenStack inventory finished' "$dir/log" | head -1 | sed -n 's/.*seconds=\([0-9.]*\).*/'"$label"'.inv_s=\1/p'
        grep 'OpenStack inventory finished' "$dir/log" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' | paste -sd, | sed "s/^/$label.inv_all=/"
        grep 'OpenStack inventory finished' "$dir/log" | head -1 | sed -n 's/.*servers=\([0-9]*\).*/'"$label"'.inv_servers=\1/p'
        grep 'OpenStack inventory finished' "$dir/log" | head -1 | sed -n 's/.* targets=\([0-9]*\).*/'"$label"'.inv_targets=\1/p'
        # what this agent kept (its shard), from its /metrics
        awk '/^stinger_inventory_vms[{ ]/{s+=$NF} END{print "'"$label"'.kept_vms=" s+0}' "$dir/metrics.txt"
        awk '/^stinger_state_hosts[{ ]/{s+=$NF} END{print "'"$label"'.state_hosts=" s+0}' "$dir/metrics.txt"
        awk '/^stinger_vm_info[{ ]/{n++} END{print "'"$label"'.vm_series=" n+0}' "$dir/metrics.txt"
        echo "$label.metric_lines=$(grep -vc '^#' "$dir/metrics.txt")"
        # seconds of each full pass
        grep 'discovery run finished' "$dir/log" | grep 'targeted=false' | sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' \
            | paste -sd, | sed "s/^/$label.pass_s=/"
    } >>"$kv"
}

if [ "${1:-}" = __cloud ]; then
    TOP100=$(python3 "$BENCH_DIR/testbed.py" ports top100)
    cloud_child "$2"
    exit 0
fi

# ================================================================== parent: checks
if [ -n "${REPORT:-}" ]; then   # the report and table again, from a kept run's results.kv
    [ -f "$REPORT" ] || die "REPORT=$REPORT: no such file"
    KV=$REPORT PARTS= TMP=
    export PASSES PASS_INTERVAL RETENTION METRICS_REPS
fi
[ -z "${REPORT:-}" ] && { [ "$(id -u)" = 0 ] || die "run as root (network namespaces)"; }
for v in REPS W5_REPS W5_LIVE PASSES METRICS_REPS RUN_TIMEOUT SHARDS; do posint "$v" "${!v}"; done
for p in $PARTS; do case $p in discovery|w5|cloud) ;; *) die "unknown part '$p' (PARTS is a subset of \"discovery w5 cloud\")" ;; esac; done
[ "$W5_LIVE" -le 256 ] || die "W5_LIVE must be at most 256"
for t in ip python3 curl timeout iptables; do command -v "$t" >/dev/null || die "need $t"; done
[ -x /usr/bin/time ] || die "need GNU time at /usr/bin/time"
[ -x "$STINGER" ] || die "STINGER=$STINGER is not an executable (cargo build --release --locked --bin stinger --example fake_cloud)"
part cloud && { [ -x "$FAKE_CLOUD" ] || die "FAKE_CLOUD=$FAKE_CLOUD is not an executable"; }
[ -f "$BENCH_DIR/testbed.py" ] && [ -f "$BENCH_DIR/w4-netns.sh" ] || die "testbed files not found in $BENCH_DIR"
TOP100=$(python3 "$BENCH_DIR/testbed.py" ports top100)

ulimit -Hn 65535 2>/dev/null || true
ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [ -z "${REPORT:-}" ]; then
TMP=$(mktemp -d /tmp/stcap.XXXXXX)
KV=$TMP/results.kv
: >"$KV"
CHILD=
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
ns_kill_del() {   # only namespaces this run created; their processes are ours
    local ns=$1 i pids
    ns_exists "$ns" || return 0
    for i in 1 2 3 4 5 6 7 8; do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086
        kill -"$([ "$i" -ge 6 ] && echo KILL || echo TERM)" $pids 2>/dev/null
        sleep 0.3
    done
    ip netns del "$ns" || echo "capacity: could not delete namespace $ns" >&2
}
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null; fi
    for ns in "$NS_C" "$NS_S" "$NS_H"; do ns_kill_del "$ns"; done
    cd /
    if [ "${KEEP:-0}" = 1 ]; then echo "capacity: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# bg_wait CMD...: run in the background and wait, so that INT/TERM reach cleanup at once; sets RC
bg_wait() { RC=0; "$@" & CHILD=$!; wait "$CHILD" || RC=$?; CHILD=; }

# the binaries are copied: a rebuild during the run (others share the tree) cannot swap them mid-way
mkdir -p "$TMP/bin"
echo "stinger: $STINGER ($(stat -c '%y' "$STINGER" | cut -d. -f1), sha256 $(sha256sum "$STINGER" | cut -c1-12))" >"$TMP/bin/origin"
cp "$STINGER" "$TMP/bin/stinger" && STINGER=$TMP/bin/stinger
if part cloud; then cp "$FAKE_CLOUD" "$TMP/bin/fake_cloud" && FAKE_CLOUD=$TMP/bin/fake_cloud; fi

fi   # [ -z "$REPORT" ]
export PASSES PASS_INTERVAL RETENTION METRICS_REPS   # for the report
START=$SECONDS
STATUS=0   # 1: a scan was incorrect or discovery.sh failed (figures are printed anyway)
[ -n "${REPORT:-}" ] && echo "== stinger capacity model: report of $REPORT"
if [ -z "${REPORT:-}" ]; then
echo "== stinger capacity model"
echo "date:    $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
echo "machine: $(hostname), nproc $(nproc), $(awk '/MemTotal/{printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "kernel:  $(uname -srm)"
echo "$(cat "$TMP/bin/origin") (repo HEAD $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "parts:   $PARTS"
# the effective defaults the model uses (check-config prints the effective configuration)
"$STINGER" check-config >"$TMP/default-config.toml" 2>/dev/null || true
python3 - "$TMP/default-config.toml" >>"$KV" <<'EOF'
import re, sys, tomllib
try:
    c = tomllib.load(open(sys.argv[1], "rb"))
except Exception:
    c = {}
t = c.get("scan", {}).get("tcp", {})
u = c.get("scan", {}).get("udp", {})
for k in ("concurrency", "max_rate", "retries", "initial_timeout"):
    print(f"cfg.tcp.{k}={t.get(k, '?')}")
print(f"cfg.udp.enabled={u.get('enabled', '?')}")
print(f"cfg.udp.nports={len(str(u.get('ports', '')).split(',')) if u.get('ports') else '?'}")
st = c.get("storage", {})
print(f"cfg.scan_retention={st.get('scan_retention', '?')}")
print(f"cfg.event_retention={st.get('event_retention', '?')}")
EOF
fi

# ================================================================== part 1: discovery.sh
if part discovery; then
    echo
    echo "-- discovery.sh (REPS=$REPS WORKLOADS=\"$WORKLOADS\"): W1, W3, W4, UDP"
    bg_wait env REPS="$REPS" WORKLOADS="$WORKLOADS" STINGER="$STINGER" RUN_TIMEOUT="$RUN_TIMEOUT" \
        bash "$SELF_DIR/discovery.sh" >"$TMP/discovery.out" 2>"$TMP/discovery.err"
    sed 's/^/   | /' "$TMP/discovery.out"
    [ "$RC" = 0 ] || { STATUS=1; log "discovery.sh exited $RC (see above; stderr in $TMP/discovery.err)"; }
    python3 - "$TMP/discovery.out" >>"$KV" <<'EOF'
import re, sys
for line in open(sys.argv[1]):
    m = re.match(r"^(W1|W3|W4|UDP)\s+(stinger|floor|nmap)\s+([0-9.]+|nan)\s+([0-9.]+)\s+(.*)$", line)
    if m:
        wl, sc, s, rss, ok = m.groups()
        print(f"disc.{wl}.{sc}.s={s}")
        print(f"disc.{wl}.{sc}.rss_mb={rss}")
        print(f"disc.{wl}.{sc}.ok={'yes' if ok.startswith('yes') else 'no'}")
EOF
fi

# ================================================================== part 2: W5
# W5 helper: serve (listeners of the live hosts), layout (the served pairs), check (a scan's JSON)
cat >"$TMP/w5.py" <<'EOF'
import asyncio, ipaddress, json, os, signal, sys
NET = ipaddress.IPv4Network("10.245.0.0/16")
EXTRA = [8080, 3306, 5432, 3389]          # in nmap's top 100
def layout(live):
    """live hosts 10.245.<i>.10 (i < live): 22, 80, 443; every 4th also one of EXTRA"""
    for i in range(live):
        h = str(ipaddress.IPv4Address(f"10.245.{i}.10"))
        assert ipaddress.IPv4Address(h) in NET
        for p in [22, 80, 443] + ([EXTRA[(i // 4) % len(EXTRA)]] if i % 4 == 3 else []):
            yield h, p
def ports(spec):
    out = set()
    for part in filter(None, spec.split(",")):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out
async def handle(r, w):
    try:
        w.write(b"SSH-2.0-OpenSSH_9.2p1 capacity-w5\r\n")
        await asyncio.wait_for(r.read(1024), 5)
    except Exception:
        pass
    w.close()
async def serve(live, duration):
    servers = [await asyncio.start_server(handle, host=h, port=p, backlog=1024, reuse_address=True)
               for h, p in layout(live)]
    print(f"w5: {len(servers)} listeners on {live} hosts, pid {os.getpid()}", flush=True)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(s, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except asyncio.TimeoutError:
        pass
cmd = sys.argv[1]
if cmd == "serve":
    asyncio.run(serve(int(sys.argv[2]), float(sys.argv[3])))
elif cmd == "layout":
    for h, p in layout(int(sys.argv[2])):
        print(h, p)
elif cmd == "check":   # check LIVE CIDR PORTSPEC JSON -> json
    live, cidr, spec, path = int(sys.argv[2]), ipaddress.IPv4Network(sys.argv[3]), ports(sys.argv[4]), sys.argv[5]
    exp = {(h, p) for h, p in layout(live) if ipaddress.IPv4Address(h) in cidr and p in spec}
    found, udp, outcome = set(), 0, "?"
    try:
        d = json.load(open(path))
        outcome = (d.get("scan") or {}).get("outcome")
        for h in d.get("hosts") or []:
            for p in h.get("ports") or []:
                if p.get("protocol", "tcp") == "tcp":
                    found.add((h.get("address") or h.get("id"), int(p["port"])))
                else:
                    udp += 1
    except Exception as e:
        outcome = f"bad-json({type(e).__name__})"
    print(json.dumps({"expected": len(exp), "found": len(found), "missed": len(exp - found),
                      "false_pos": len(found - exp) + udp, "outcome": outcome,
                      "correct": found == exp and udp == 0}))
EOF

w5_up() {
    local mode=none i
    ip netns add "$NS_S" || die "ip netns add $NS_S"
    ip netns add "$NS_H" || die "ip netns add $NS_H"
    for ns in "$NS_S" "$NS_H"; do
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    ip -n "$NS_S" link add "$VETH_S" type veth peer name "$VETH_H" netns "$NS_H" || die "veth"
    ip -n "$NS_S" addr add 10.246.0.1/30 dev "$VETH_S"
    ip -n "$NS_H" addr add 10.246.0.2/30 dev "$VETH_H"
    ip -n "$NS_S" link set "$VETH_S" up
    ip -n "$NS_H" link set "$VETH_H" up
    ip -n "$NS_S" route add 10.245.0.0/16 via 10.246.0.2
    # every address of 10.245.0.0/16 is local in the hosts namespace (AnyIP): the live ones listen,
    # the security group below drops the rest
    ip -n "$NS_H" route add local 10.245.0.0/16 dev lo
    ip netns exec "$NS_S" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
    ip netns exec "$NS_H" sysctl -qw net.core.somaxconn=4096
    ip netns exec "$NS_H" timeout -k 5 "$((RUN_TIMEOUT * 8))" python3 "$TMP/w5.py" serve "$W5_LIVE" "$((RUN_TIMEOUT * 8))" \
        >"$TMP/w5-serve.log" 2>&1 </dev/null &
    for i in $(seq 100); do grep -q listeners "$TMP/w5-serve.log" 2>/dev/null && break; sleep 0.1; done
    grep -q listeners "$TMP/w5-serve.log" || { cat "$TMP/w5-serve.log" >&2; die "W5 listeners did not start"; }
    # security group: served (address, port) pairs pass, every other inbound packet is dropped
    {
        printf '*raw\n:CAPSG - [0:0]\n-A PREROUTING -i %s -j CAPSG\n' "$VETH_H"
        python3 "$TMP/w5.py" layout "$W5_LIVE" | while read -r h p; do
            printf -- '-A CAPSG -d %s/32 -p tcp --dport %s -j RETURN\n' "$h" "$p"
        done
        printf -- '-A CAPSG -d 10.245.0.0/16 -j DROP\nCOMMIT\n'
    } >"$TMP/w5-sg.rules"
    ip netns exec "$NS_H" iptables-restore <"$TMP/w5-sg.rules" || die "iptables-restore (W5 security group)"
    # 10 ms each way: netem where the kernel has it, else w4-netns.sh's NFQUEUE delay line
    if ip netns exec "$NS_S" tc qdisc add dev "$VETH_S" root netem delay 10ms limit 100000 2>/dev/null; then
        ip netns exec "$NS_H" tc qdisc add dev "$VETH_H" root netem delay 10ms limit 100000 || die "netem"
        mode=netem
    else
        sed -n '/^    cat >"\$STATE\/nfq_delay.py" <<.EOF.$/,/^EOF$/p' "$BENCH_DIR/w4-netns.sh" | sed '1d;$d' >"$TMP/nfq_delay.py"
        grep -q 'NFQUEUE delay line' "$TMP/nfq_delay.py" || die "could not take nfq_delay.py from $BENCH_DIR/w4-netns.sh"
        ip netns exec "$NS_H" timeout -k 5 "$((RUN_TIMEOUT * 8))" python3 "$TMP/nfq_delay.py" --queue 5 --delay-ms 10 \
            --duration "$((RUN_TIMEOUT * 8))" >"$TMP/nfq_delay.log" 2>&1 </dev/null &
        for i in $(seq 50); do grep -q bound "$TMP/nfq_delay.log" 2>/dev/null && break; sleep 0.1; done
        grep -q bound "$TMP/nfq_delay.log" || { cat "$TMP/nfq_delay.log" >&2; die "nfq_delay did not start"; }
        printf '*mangle\n-A PREROUTING -i %s -j NFQUEUE --queue-num 5\n-A POSTROUTING -o %s -j NFQUEUE --queue-num 5\nCOMMIT\n' \
            "$VETH_H" "$VETH_H" | ip netns exec "$NS_H" iptables-restore --noflush || die "iptables NFQUEUE"
        mode="NFQUEUE delay line (no sch_netem)"
    fi
    # self-test: a served port answers after ~20 ms, a silent address not at all
    ip netns exec "$NS_S" python3 - <<'EOF' || die "W5 self-test failed"
import socket, sys, time
for addr, want in (("10.245.0.10", "open"), ("10.245.0.11", "filtered")):
    s = socket.socket(); s.settimeout(1.0); t = time.monotonic()
    try:
        s.connect((addr, 22)); got = "open"
    except socket.timeout:
        got = "filtered"
    except OSError as e:
        got = "error " + type(e).__name__
    s.close()
    print(f"   self-test {addr}:22 {got} ({(time.monotonic() - t) * 1000:.1f} ms)")
    if got != want:
        sys.exit(1)
EOF
    echo "   W5 testbed up: 10.245.0.0/16 in $NS_H, $W5_LIVE live hosts ($(python3 "$TMP/w5.py" layout "$W5_LIVE" | wc -l) served ports), delay: $mode"
}

# w5_scan LABEL CIDR PORTS NADDR NPORTS CONFIG REP: one scan --once in the scan namespace
w5_scan() {
    local label=$1 cidr=$2 ports=$3 naddr=$4 nports=$5 cfg=$6 rep=$7 d=$TMP/w5/$1.$7 tf wall rss chk
    mkdir -p "$d/cwd"
    tf=$d/time
    cd "$d/cwd"
    bg_wait ip netns exec "$NS_S" /usr/bin/time -f '%e %M' -o "$tf" timeout -k 5 "$RUN_TIMEOUT" \
        "$STINGER" --config.file "$cfg" --log.level debug scan --once --target "$cidr" --ports "$ports" --output json \
        >"$d/out.json" 2>"$d/err"
    cd "$TMP"
    [ "$RC" = 1 ] && RC=0   # unexpected open ports found: a successful scan
    read -r wall rss < <(tail -n 1 "$tf" 2>/dev/null) || true
    [[ ${wall:-} =~ ^[0-9.]+$ ]] || { wall=nan; rss=0; }
    chk=$(python3 "$TMP/w5.py" check "$W5_LIVE" "$cidr" "$ports" "$d/out.json")
    python3 - "$label" "$rep" "$naddr" "$nports" "$wall" "$rss" "$RC" "$chk" "$d/err" "${UDP_PORTS//[^,]/}," <<'EOF' | tee -a "$TMP/w5.lines"
import json, re, sys
label, rep, naddr, nports, wall, rss, rc, chk, err = sys.argv[1:10]
c = json.loads(chk)
probes = int(naddr) * int(nports)
rate = probes / float(wall) if wall != "nan" and float(wall) > 0 else float("nan")
udp = ""
for line in open(err, errors="replace"):
    if "UDP probes done" in line:
        udp = " [" + " ".join(re.findall(r"\b(?:open|closed|unknown|errors|filtered)=\d+", line)) + "]"
ok = "correct" if c["correct"] and rc == "0" else f"INCORRECT missed={c['missed']} false_pos={c['false_pos']} rc={rc} outcome={c['outcome']}"
what = f"{naddr:>6} addr x {nports:>3} ports = {probes:>7} probes"
if label == "W5U-on":   # the TCP part as W5U-off; its rate comes from the difference
    what = f"{naddr:>6} addr x {nports:>3} TCP + {int(naddr) * len(sys.argv[10])} UDP probes"
    rate = float("nan")
print(f"   {label:<9} run {rep}: {what}  {wall:>7} s  "
      + (f"{rate:>8.0f} probes/s" if rate == rate else f"{'':>17}")
      + f"  {int(rss)/1024:6.1f} MB  {ok}{udp}", flush=True)
EOF
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$rep" "$naddr" "$nports" "$wall" "$rss" \
        "$([ "$RC" = 0 ] && echo "$chk" | grep -q '"correct": true' && echo yes || echo no)" >>"$TMP/w5.tsv"
}

if part w5; then
    echo
    echo "-- W5: silent addresses (security group drops), $W5_LIVE of them serving, 20 ms RTT"
    ns_exists "$NS_S" && die "namespace $NS_S exists"
    w5_up
    printf '[[targets]]\nname = "bench"\ncidrs = ["127.0.0.1"]\n\n[scan.nmap]\nenabled = false\n\n[scan.udp]\nenabled = false\n' >"$TMP/tcp.toml"
    printf '[[targets]]\nname = "bench"\ncidrs = ["127.0.0.1"]\n\n[scan.nmap]\nenabled = false\n\n[scan.udp]\nenabled = true\nports = "%s"\n' "$UDP_PORTS" >"$TMP/udp.toml"
    NTOP=$(python3 -c 'import sys; n=0
for p in sys.argv[1].split(","):
    a,_,b=p.partition("-"); n+=int(b or a)-int(a)+1
print(n)' "$TOP100")
    : >"$TMP/w5.tsv"
    for rep in $(seq "$W5_REPS"); do
        w5_want W5-256 && w5_scan W5-256 10.245.0.0/24 "$TOP100" 256 "$NTOP" "$TMP/tcp.toml" "$rep"
        w5_want W5 && w5_scan W5 10.245.0.0/20 "$TOP100" 4096 "$NTOP" "$TMP/tcp.toml" "$rep"
        w5_want W5-65536 && w5_scan W5-65536 10.245.0.0/16 22 65536 1 "$TMP/tcp.toml" "$rep"
        if w5_want W5U; then
            w5_scan W5U-off 10.245.0.0/23 22 512 1 "$TMP/tcp.toml" "$rep"
            w5_scan W5U-on 10.245.0.0/23 22 512 1 "$TMP/udp.toml" "$rep"
        fi
    done
    python3 - "$TMP/w5.tsv" "$UDP_PORTS" >>"$KV" <<'EOF'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, rep, naddr, nports, wall, rss, ok = line.rstrip("\n").split("\t")
    rows[label].append((float(wall), int(rss), ok == "yes", int(naddr), int(nports)))
for label, r in rows.items():
    print(f"w5.{label}.s={statistics.median(x[0] for x in r)}")
    print(f"w5.{label}.rss_kb={max(x[1] for x in r)}")
    print(f"w5.{label}.ok={'yes' if all(x[2] for x in r) else 'no'}")
    print(f"w5.{label}.addrs={r[0][3]}")
    print(f"w5.{label}.ports={r[0][4]}")
print(f"w5.udp_ports={len(sys.argv[2].split(','))}")
EOF
    ns_kill_del "$NS_S"; ns_kill_del "$NS_H"
    if cut -f7 "$TMP/w5.tsv" | grep -qx no; then STATUS=1; fi
fi

# ================================================================== part 3: cloud
if part cloud; then
    echo
    echo "-- fake cloud (Keystone + examples/fake_cloud.rs) and agents, in namespace $NS_C"
    if [ ! -x "$KS_DIR/venv/bin/gunicorn" ]; then
        # start-keystone.sh installs Keystone into $KS_DIR/venv from PyPI, which the namespace
        # cannot reach: once here (it starts a Keystone on 127.0.0.1, stopped at once)
        log "installing Keystone into $KS_DIR/venv (once)"
        (
            SHARED=$(readlink -f "$REPO/../shared")
            . "$SELF_DIR/keystone.sh"
            start_keystone "$KS_DIR" 120 >/dev/null
            kill "$SERVER_PID" 2>/dev/null || true
        ) || die "Keystone install failed"
    fi
    ip netns add "$NS_C" || die "ip netns add $NS_C"
    ip -n "$NS_C" link set lo up
    mkdir -p "$TMP/cloud"
    bg_wait ip netns exec "$NS_C" timeout -k 10 "$((RUN_TIMEOUT * 4))" env KS_DIR="$KS_DIR" STINGER="$STINGER" \
        FAKE_CLOUD="$FAKE_CLOUD" SIZES="$SIZES" SHARDS="$SHARDS" PASSES="$PASSES" PASS_INTERVAL="$PASS_INTERVAL" \
        RETENTION="$RETENTION" METRICS_REPS="$METRICS_REPS" RUN_TIMEOUT="$RUN_TIMEOUT" \
        BENCH_DIR="$BENCH_DIR" bash "$SELF" __cloud "$TMP/cloud" "$NS_C"
    [ "$RC" = 0 ] || die "cloud part failed (exit $RC); KEEP=1 keeps $TMP/cloud"
    cat "$TMP/cloud/cloud.kv" >>"$KV"
    ns_kill_del "$NS_C"
fi

# ================================================================== report and model
echo
python3 - "$KV" "$TOP100" <<'EOF'
import math, statistics, sys

kv = {}
for line in open(sys.argv[1]):
    if "=" in line:
        k, v = line.rstrip("\n").split("=", 1)
        kv[k] = v
env = __import__("os").environ

def num(k, default=None):
    try:
        v = float(kv[k])
        return v if v == v else default
    except (KeyError, ValueError):
        return default

def fmt(x, nd=0):
    if x is None:
        return "n/a"
    if x == math.inf:
        return "inf"
    return f"{x:,.{nd}f}"

NEG = []
def fit(points, name=None):
    """least squares y = a + b x over (x, y); None if fewer than two distinct x. A negative slope
    (noise) is reported and taken as 0."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    b = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    if b < 0:
        NEG.append(f"{name}: measured slope {b:.3g} < 0 (noise), taken as 0")
        return my, 0.0
    if my - b * mx < 0:
        NEG.append(f"{name}: intercept {my - b * mx:.3g} < 0, taken as 0 (growth faster than linear?)")
        return 0.0, b
    return my - b * mx, b

# ------------------------------------------------------------------ 1. probe rates
print("== 1. Probes per second per agent (stinger scan --once, nmap stage off; probes = addresses x ports;")
print("      rate = probes / median wall time, process start-up included)")
print(f"{'workload':<10}{'what':<44}{'probes':>10}{'wall s':>9}{'probes/s':>11}{'peak RSS MB':>13}  correct")
rows = []
disc = {"W1": (64, 1000, "64 addr x TCP 1-1000, loopback (RST)"),
        "W3": (16, 65535, "16 addr x TCP 1-65535, loopback (RST)"),
        "W4": (16, 1000, "16 addr x TCP 1-1000, DROP, 20 ms RTT"),
        "UDP": (64, 11, "64 addr x 11 UDP, loopback, all closed")}
for wl, (a, p, what) in disc.items():
    s = num(f"disc.{wl}.stinger.s")
    if s is None:
        continue
    probes = a * p
    rate = probes / s if s > 0 else None
    extra = " (+64 TCP; ICMP at once)" if wl == "UDP" else ""
    print(f"{wl:<10}{what:<44}{probes:>10,}{s:>9.2f}{fmt(rate):>11}{num(f'disc.{wl}.stinger.rss_mb', 0):>13.1f}  "
          f"{kv.get(f'disc.{wl}.stinger.ok', '?')}{extra}")
w5names = {"W5-256": "256 addr (/24) x top 100, silent, 20 ms",
           "W5": "4 096 addr (/20) x top 100, silent, 20 ms",
           "W5-65536": "65 536 addr (/16) x port 22, silent, 20 ms"}
for lab, what in w5names.items():
    s = num(f"w5.{lab}.s")
    if s is None:
        continue
    probes = int(num(f"w5.{lab}.addrs") * num(f"w5.{lab}.ports"))
    print(f"{lab:<10}{what:<44}{probes:>10,}{s:>9.2f}{fmt(probes / s):>11}{num(f'w5.{lab}.rss_kb') / 1024:>13.1f}  "
          f"{kv.get(f'w5.{lab}.ok', '?')}")
udp_rate = None
on, off = num("w5.W5U-on.s"), num("w5.W5U-off.s")
if on is not None and off is not None:
    nudp = int(num("w5.W5U-on.addrs") * num("w5.udp_ports"))
    if on > off:
        udp_rate = nudp / (on - off)
    print(f"{'W5U':<10}{'512 addr (/23) x 11 UDP, silent, 20 ms':<44}{nudp:>10,}{on - off:>9.2f}{fmt(udp_rate):>11}"
          f"{num('w5.W5U-on.rss_kb') / 1024:>13.1f}  {'yes' if kv.get('w5.W5U-on.ok') == 'yes' and kv.get('w5.W5U-off.ok') == 'yes' else 'no'}"
          f" (wall {on:.2f} s with UDP - {off:.2f} s without)")
conc, retries = num("cfg.tcp.concurrency"), num("cfg.tcp.retries")
init = kv.get("cfg.tcp.initial_timeout", "?")
init_s = float(init[:-2]) / 1000 if init.endswith("ms") else float(init[:-1]) if init.endswith("s") and init[:-1].replace(".", "").isdigit() else None
if conc and init_s and retries is not None:
    print(f"   bound on silent addresses: a probe nothing answers holds a slot for initial_timeout x (1 + retries) ="
          f" {init_s * (1 + retries):g} s (no RTT is ever measured),")
    print(f"   so TCP <= concurrency / {init_s * (1 + retries):g} s = {conc / (init_s * (1 + retries)):,.0f} probes/s and UDP <="
          f" min(concurrency, 1024) / {init_s * (1 + retries):g} s = {min(conc, 1024) / (init_s * (1 + retries)):,.0f}/s;"
          " the CPU is nearly idle.")

# ------------------------------------------------------------------ 2. RSS per 1000 targets
print()
print("== 2. RSS per 1 000 targets (peak RSS of the W5 scans against their address count; all keep")
print("      concurrency-many probes in flight, so the slope is the per-address state)")
pts = [(num(f"w5.{l}.addrs"), num(f"w5.{l}.rss_kb")) for l in ("W5-256", "W5", "W5-65536") if num(f"w5.{l}.s") is not None]
f_t = fit(pts, "RSS per target")
rss_per_target_kb = None
if f_t:
    rss_per_target_kb = f_t[1]
    print("   points: " + ", ".join(f"{int(a):,} addr {r / 1024:.1f} MB" for a, r in pts))
    print(f"   slope: {f_t[1] * 1000 / 1024:.2f} MB per 1 000 targets ({f_t[1] * 1024:.0f} bytes each); intercept {f_t[0] / 1024:.1f} MB")
else:
    print("   not measured (needs two W5 sizes)")

# ------------------------------------------------------------------ 3. cloud agents
labels = sorted({k.split(".")[0] for k in kv if k.startswith("vms")},
                key=lambda l: (num(f"{l}.servers", 0), num(f"{l}.shards", 1)))
inv = mem = met = None
disk_per_vm = disk_overhead = None
if labels:
    print()
    print(f"== 3. Agents inventorying the fake cloud (Keystone + fake Nova/Neutron, 1 000 a page), {env.get('PASSES')} passes"
          f" every {env.get('PASS_INTERVAL')},")
    print(f"      retention {env.get('RETENTION')}; each pass: inventory with diagnostics, top-100 TCP + 11 UDP ports"
          " on the floating addresses")
    print(f"{'agent':<16}{'VMs':>7}{'kept':>7}{'targets':>8}{'inventory s':>12}{'pass s':>16}{'peak RSS MB':>12}"
          f"{'/metrics KB':>12}{'lines':>8}{'render ms':>10}")
    for l in labels:
        m = [tuple(map(float, x.split(":"))) for x in kv.get(f"{l}.metrics", "").split(",") if ":" in x]
        m = [x for x in m if x[1] == x[1] and x[0] > 0]
        kv[f"{l}.mbytes"] = str(statistics.median(x[0] for x in m)) if m else "nan"
        kv[f"{l}.msec"] = str(statistics.median(x[1] for x in m)) if m else "nan"
        ps = [float(x) for x in kv.get(f"{l}.pass_s", "").split(",") if x]
        pass_s = f"{ps[0]:.1f}/{statistics.median(ps[1:]):.1f}" if len(ps) > 1 else "?"
        print(f"{l:<16}{int(num(l + '.servers', 0)):>7,}{int(num(l + '.kept_vms', 0)):>7,}"
              f"{int(num(l + '.inv_targets', 0)):>8,}{fmt(num(l + '.inv_s'), 2):>12}{pass_s:>16}{num(l + '.hwm_kb', 0) / 1024:>12.1f}"
              f"{fmt(num(l + '.mbytes', 0) / 1024):>12}{int(num(l + '.metric_lines', 0)):>8,}{fmt((num(l + '.msec') or math.nan) * 1000, 1):>10}")
    print("   (pass s: the first pass / the median of the others; kept: the VMs of this agent's shard)")
    print("   RSS MB after each pass (VmRSS), and the peak before the /metrics scrapes (VmHWM):")
    for l in labels:
        r = [num(f"{l}.rss.pass{i}") for i in range(1, 1000) if num(f"{l}.rss.pass{i}") is not None]
        print(f"   {l:<16}" + " ".join(f"{x / 1024:6.1f}" for x in r)
              + f"  | peak before scrapes {fmt((num(l + '.hwm_noscrape_kb') or 0) / 1024, 1)}, after {num(l + '.hwm_kb', 0) / 1024:.1f}")

    # store
    for l in labels:
        r = [num(f"{l}.rss.pass{i}") for i in range(1, 1000) if num(f"{l}.rss.pass{i}") is not None]
        if len(r) >= 4 and r[-1] > 1.1 * r[len(r) // 2 - 1]:
            NEG.append(f"{l}: RSS still grew by {(r[-1] - r[len(r) // 2 - 1]) / 1024:.1f} MB between pass {len(r) // 2} and"
                       f" pass {len(r)}: the peak RSS figures are those after {len(r)} passes, not a steady state")
    print()
    print("   store (du of the RocksDB directory, allocated KB, after each pass; then after shutdown, flushed):")
    for l in labels:
        sz = []
        for i in range(1, 1000):
            v = kv.get(f"{l}.store.pass{i}")
            if not v:
                break
            sz.append(list(map(int, v.split(","))))
        fin = list(map(int, kv.get(f"{l}.store.final", "0,0,0,0,0,0").split(",")))
        kept = num(f"{l}.kept_vms", 0) or 1
        growth = [b[0] - a[0] for a, b in zip(sz, sz[1:])]
        g = statistics.median(growth) if growth else None
        kv[f"{l}.growth_per_vm"] = str(g / kept) if g is not None else "nan"
        kv[f"{l}.max_alloc"] = str(max(x[0] for x in sz)) if sz else "nan"
        kv[f"{l}.final_sst"] = str(fin[2])
        kv[f"{l}.max_nonsst"] = str(max((x[3] + x[4] + x[5]) for x in sz)) if sz else "nan"
        plateau = len(sz) >= 3 and sz[-1][0] <= max(x[0] for x in sz[:-1])
        print(f"   {l:<16}" + " ".join(f"{x[0] // 1024:>6}" for x in sz) + f"  | shutdown {fin[0] // 1024} KB"
              f" (sst {fin[2] // 1024}, log {fin[4] // 1024}, other {fin[5] // 1024})")
        print(f"   {'':<16}growth per pass: median {fmt(g / 1024 if g is not None else None)} KB = "
              f"{fmt(g / kept if g is not None else None)} bytes per kept VM per pass (WAL);"
              f" {'stopped growing (memtables flushed, WAL recycled)' if plateau else 'still growing at the last pass'};"
              f" after shutdown {fin[2] / kept:.0f} bytes of SST per VM")

    plain = [l for l in labels if num(f"{l}.shards", 1) == 1]
    # inventory seconds: unsharded sizes (every agent reads the whole cloud, sharded or not)
    def inv_med(l):
        v = [float(x) for x in kv.get(f"{l}.inv_all", "").split(",") if x]
        return statistics.median(v) if v else None
    p_inv = [(num(f"{l}.servers"), inv_med(l)) for l in plain if inv_med(l) is not None]
    inv = fit(p_inv, "inventory seconds")
    # RSS = a + b * VMs read + c * VMs kept
    pts3 = [(num(f"{l}.servers"), num(f"{l}.kept_vms"), num(f"{l}.hwm_kb")) for l in labels]
    sh = [p for p, l in zip(pts3, labels) if num(f"{l}.shards", 1) > 1]
    pl = [p for p, l in zip(pts3, labels) if num(f"{l}.shards", 1) == 1]
    if len(pl) >= 2 and sh:
        big = max(pl, key=lambda p: p[0])
        small = min(pl, key=lambda p: p[0])
        s3 = sh[0]
        c = (big[2] - s3[2]) / (big[1] - s3[1]) if big[1] != s3[1] else 0.0
        b = ((s3[2] - small[2]) - c * (s3[1] - small[1])) / (s3[0] - small[0]) if s3[0] != small[0] else 0.0
        a = small[2] - b * small[0] - c * small[1]
        if b < 0 or c < 0:
            NEG.append(f"RSS split: per VM read {b:.3g} KB, per VM kept {c:.3g} KB (noise), negative part taken as 0")
            b, c = max(b, 0.0), max(c, 0.0)
        mem = (a, b, c, True)
    elif len(pl) >= 2:
        f = fit([(p[0], p[2]) for p in pl], "RSS per VM")
        mem = (f[0], 0.0, f[1], False)
    # /metrics: bytes and render time against VMs kept (every VM the agent keeps is exported)
    mb = fit([(num(f"{l}.kept_vms"), num(f"{l}.mbytes")) for l in labels if num(f"{l}.mbytes")], "/metrics bytes")
    ms = fit([(num(f"{l}.kept_vms"), num(f"{l}.msec")) for l in labels if num(f"{l}.msec")], "/metrics time")
    met = (mb, ms) if mb and ms else None
    # disk: SST per VM after shutdown at the largest plain size + the most WAL/LOG/other seen
    if pl:
        lb = max((l for l in labels if num(f"{l}.shards", 1) == 1), key=lambda l: num(f"{l}.servers"))
        disk_per_vm = num(f"{lb}.final_sst") / num(f"{lb}.kept_vms")
        disk_overhead = max(num(f"{l}.max_nonsst", 0) for l in labels)
        growth_big = num(f"{lb}.growth_per_vm")

    print()
    print("   per 1 000 VMs (least squares over the sizes):")
    if inv:
        print(f"   inventory: {inv[1] * 1000:.3f} s per 1 000 VMs (+ {inv[0]:.2f} s), median over each agent's passes (the")
        print("     first, with Keystone's token and catalog, is the 'inventory s' column); every agent reads the whole cloud,"
              " sharded or not")
    if mem:
        a, b, c, split = mem
        if split:
            print(f"   peak RSS: {(b + c) * 1000 / 1024:.1f} MB per 1 000 VMs = {b * 1000 / 1024:.1f} MB per 1 000 VMs read"
                  f" (every agent reads the whole inventory) + {c * 1000 / 1024:.1f} MB per 1 000 VMs kept (its shard);"
                  f" base {a / 1024:.1f} MB")
        else:
            print(f"   peak RSS: {c * 1000 / 1024:.1f} MB per 1 000 VMs, base {a / 1024:.1f} MB (no shard run: the part every"
                  " agent pays for reading the whole inventory is not separated)")
    if met:
        print(f"   /metrics: {mb[1] * 1000 / 1024:.0f} KB and {ms[1] * 1000 * 1000:.1f} ms per 1 000 VMs kept"
              f" (base {mb[0] / 1024:.0f} KB, {ms[0] * 1000:.1f} ms); curl time_total, median of {env.get('METRICS_REPS')}")
    if disk_per_vm is not None:
        print(f"   store: {growth_big:.0f} bytes per VM per pass written (WAL; nothing changes in the fake cloud, so"
              " that is the records rewritten each pass); on disk after retention and flush:"
              f" {disk_per_vm:.0f} bytes per VM of SST, plus at most {disk_overhead / 1048576:.1f} MB of WAL, LOG and"
              " MANIFEST seen")

# ------------------------------------------------------------------ 4. the table
for n in NEG:
    print("   NOTE " + n)
print()
print("== 4. VMs x ports x interval -> agents needed")
r_tcp = None
if num("w5.W5.s"):
    r_tcp = num("w5.W5.addrs") * num("w5.W5.ports") / num("w5.W5.s")
elif num("w5.W5-256.s"):
    r_tcp = num("w5.W5-256.addrs") * num("w5.W5-256.ports") / num("w5.W5-256.s")
max_rate = float(env.get("MAX_RATE") or num("cfg.tcp.max_rate", 0) or 0)
missing = [n for n, v in (("W5 TCP rate (part w5)", r_tcp), ("inventory time (part cloud)", inv),
                          ("RSS per VM (part cloud)", mem), ("/metrics (part cloud)", met)) if v is None]
if missing:
    print("   not computed: missing " + ", ".join(missing))
    sys.exit(0)
if max_rate > 0:
    r_tcp = min(r_tcp, max_rate)
udp_on = kv.get("cfg.udp.enabled") == "True"
n_udp = int(num("cfg.udp.nports", 11)) if udp_on else 0
r_udp = udp_rate if udp_rate else None
if max_rate > 0 and r_udp:
    r_udp = min(r_udp, max_rate)
A = float(env["ADDRS_PER_VM"])
MEM = float(env["MEM_BUDGET_MB"]) * 1024          # KB
DISK = float(env["DISK_BUDGET_GB"]) * 1024 ** 3   # bytes
SCRAPE = float(env["SCRAPE_BUDGET_S"])
FILL = float(env["PASS_FILL"])
a, b, c, split = mem
# addresses the measured agents probed per VM (the fake cloud's floating addresses)
lb = max((l for l in labels if num(f"{l}.shards", 1) == 1), key=lambda l: num(f"{l}.servers"))
meas_addr = (num(f"{lb}.inv_targets") or 0) / num(f"{lb}.servers")
c_eff = c + (rss_per_target_kb or 0) * max(0.0, A - meas_addr)
print("   assumptions (all figures measured above on this machine unless said otherwise):")
print(f"   - addresses probed per VM: {A:g} (ADDRS_PER_VM); the measured agents probed {meas_addr:.2f} per VM (the fake")
print(f"     cloud's floating addresses), the other {max(0.0, A - meas_addr):.2f} are charged"
      f" {fmt(rss_per_target_kb * 1024 if rss_per_target_kb else 0)} bytes of RSS each (section 2)")
print(f"   - nearly every address is silent (a security group drops everything, as in W5: {4096 - 16} of 4 096): each")
print(f"     agent probes TCP at the W5 rate, {r_tcp:,.0f} probes/s" + (f" (capped by max_rate {max_rate:,.0f})" if max_rate > 0 else
      " (scan.tcp.max_rate = 0: no cap)") + (f", and {n_udp} UDP ports at the W5U rate, {r_udp:,.0f}/s" if n_udp and r_udp else
      ", UDP off" if not n_udp else ", UDP rate not measured: UDP not counted"))
print(f"     (addresses that answer are faster: W1/W3 run at 10-100x that)")
print(f"   - a pass must finish within {FILL:g} of the interval (PASS_FILL), after the inventory, which every agent does")
print(f"     for the whole cloud: {inv[0]:.2f} s + {inv[1] * 1000:.3f} s per 1 000 VMs")
print(f"   - memory budget per agent {MEM / 1024:,.0f} MB (MEM_BUDGET_MB) for the peak RSS: {a / 1024:.1f} MB + "
      f"{b * 1000 / 1024:.2f} MB per 1 000 VMs in the cloud + {c_eff * 1000 / 1024:.2f} MB per 1 000 VMs kept")
print(f"   - disk budget per agent {DISK / 1024 ** 3:g} GB (DISK_BUDGET_GB): {disk_per_vm:.0f} bytes per VM kept +"
      f" {disk_overhead / 1048576:.1f} MB")
print(f"   - a scrape of /metrics must render within {SCRAPE:g} s (SCRAPE_BUDGET_S; Prometheus' default scrape_timeout"
      f" is 10 s): {ms[0] * 1000:.1f} ms + {ms[1] * 1e6:.1f} ms per 1 000 VMs kept,"
      f" {mb[1] * 1000 / 1048576:.2f} MB per 1 000 VMs kept")
print(f"   - per-VM diagnostics on (the default): {(mb[1] * 1000 / 1024):.0f} KB of /metrics per 1 000 VMs is mostly their 16 series per VM")
print()
over_mem = False
hdr = (f"{'VMs':>10} {'ports':>6} {'interval':>8} {'agents':>7}  {'limited by':<11}"
       f"{'VMs/agent':>10} {'pass s':>9} {'RSS MB':>7} {'/metrics MB':>12} {'render s':>9}")
print(hdr)
print("-" * len(hdr))
for V in (1_000, 10_000, 100_000, 1_000_000):
    for P, pname in ((100, "100"), (1000, "1000"), (65535, "65535")):
        for I, iname in ((3600, "1 h"), (86400, "24 h")):
            T = V * A
            t_inv = inv[0] + inv[1] * V
            avail = FILL * I - t_inv
            per_addr = P / r_tcp + (n_udp / r_udp if n_udp and r_udp else 0)
            need = {}
            need["probe rate"] = math.ceil(T * per_addr / avail) if avail > 0 else math.inf
            room = MEM - a - b * V
            need["memory"] = math.ceil(c_eff * V / room) if room > 0 else math.inf
            droom = DISK - disk_overhead
            need["disk"] = math.ceil(disk_per_vm * V / droom) if droom > 0 else math.inf
            sroom = SCRAPE - ms[0]
            need["/metrics"] = math.ceil(ms[1] * V / sroom) if sroom > 0 else math.inf
            if need["probe rate"] == math.inf:
                print(f"{V:>10,} {pname:>6} {iname:>8} {'none':>7}  {'inventory':<11} (the whole-cloud inventory"
                      f" takes {t_inv:.0f} s, more than {FILL:g} of the interval)")
                continue
            finite = {k: v for k, v in need.items() if v != math.inf}
            n = max(1, max(finite.values()))
            lim = max(finite, key=lambda k: finite[k]) if n > 1 else "-"
            if need["memory"] == math.inf:
                lim += "*"
                over_mem = True
            k = V / n
            pass_s = t_inv + k * A * per_addr
            rss = (a + b * V + c_eff * k) / 1024
            print(f"{V:>10,} {pname:>6} {iname:>8} {n:>7,}  {lim:<11}{k:>10,.0f} {pass_s:>9,.0f} {rss:>7,.0f}"
                  f" {(mb[0] + mb[1] * k) / 1048576:>12.1f} {ms[0] + ms[1] * k:>9.2f}")
print("   (agents: the most any one resource needs; limited by: that resource, '-' when one agent suffices;")
print("    the per-agent columns are with that many agents)")
if over_mem:
    print(f"   *: no number of agents keeps the peak RSS within {MEM / 1024:,.0f} MB, because every agent reads the whole")
    print(f"   inventory ({b * 1000 / 1024:.1f} MB per 1 000 VMs in the cloud, extrapolated linearly); the agents column is what the")
    print("   other resources need, and RSS MB what each agent then peaks at")
EOF
echo
[ -n "${REPORT:-}" ] || echo "run time: $((SECONDS - START)) s"
[ "$STATUS" = 0 ] || echo "FAIL: at least one scan was incorrect or discovery.sh failed (see above)"
exit "$STATUS"
