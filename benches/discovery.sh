#!/usr/bin/env bash
# discovery.sh - discovery (port-scan) benchmark for stinger against the C connect() floor and nmap.
#
# Workloads (names as in /work/shared/bench/README.md):
#   W1  64 hosts 127.0.10.0/26 x TCP 1-1000      loopback testbed in a namespace of our own
#   W3  16 hosts 127.0.10.0/28 x TCP 1-65535     same testbed (its first 16 hosts)
#   W4  16 hosts 10.244.0.16/28 x TCP 1-1000     w4-netns.sh: filtered ports (DROP), 20 ms RTT
#   UDP W1's 64 hosts x the 11 default [scan.udp] ports; the testbed serves TCP only, so every UDP port
#       is closed (ICMP port unreachable from lo)
# Scanners: floor = connect_rate.c (W1, W3), nmap -n -Pn -sT -T4, stinger scan --once (default settings
# but for nmap service detection and the native UDP stage, which are off: this compares TCP port
# discovery with nmap's -sT); on UDP, nmap -n -Pn -sU against stinger scan --once with its UDP stage
# on and TCP limited to port 22 (64 connects: next to nothing).
# Each is run REPS times; the table shows median wall time, peak RSS (max over runs) and correctness
# (testbed.py check on every run). Exit status is non-zero if any run was incorrect or failed.
#
# Usage (root):  benches/discovery.sh
# Environment:
#   STINGER      stinger binary (default <repo>/target/release/stinger; built with cargo if missing)
#   REPS         runs per scanner and workload (default 3)
#   WORKLOADS    subset of "W1 W3 W4 UDP" (default all four)
#   STINGER_BASE another stinger binary (e.g. a build of the previous commit): runs the TCP lines
#                (W1, W3, W4) too, as scanner "base"; the table adds stinger/base
#   RUN_TIMEOUT  seconds after which one scanner run is killed (default 600; counts as failed)
#   BENCH_DIR    directory with testbed.py, connect_rate.c, w4-netns.sh (default /work/shared/bench)
#   KEEP=1       keep the temp dir (outputs, logs, results.tsv) instead of deleting it
#   W4_FORCE=1   run W4 even if stw4-* namespaces already exist (w4-netns.sh up tears them down)
# Everything scanned exists only inside the network namespaces this script creates.
set -euo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SELF_DIR/.." && pwd)
BENCH_DIR=$(readlink -f "${BENCH_DIR:-/work/shared/bench}")
TESTBED=$BENCH_DIR/testbed.py
W4SH=$BENCH_DIR/w4-netns.sh
DEFAULT_STINGER=$REPO/target/release/stinger
STINGER=${STINGER:-$DEFAULT_STINGER}
REPS=${REPS:-3}
STINGER_BASE=${STINGER_BASE:-}
WORKLOADS=${WORKLOADS:-W1 W3 W4 UDP}
# the default [scan.udp] ports; nmap -sU is given the same list
UDP_PORTS=53,123,161,11211,1900,389,19,3702,111,137,5353
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
NPROC=$(nproc)
NS=stbench-$$

die() { echo "discovery: $*" >&2; exit 2; }
log() { echo "discovery: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer"
[[ $RUN_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "RUN_TIMEOUT must be a positive integer"
for w in $WORKLOADS; do
    case $w in W1|W3|W4|UDP) ;; *) die "unknown workload '$w' (WORKLOADS is a subset of \"W1 W3 W4 UDP\")" ;; esac
done
want() { [[ " $WORKLOADS " == *" $1 "* ]]; }
for t in ip nmap python3 cc timeout; do command -v "$t" >/dev/null || die "need $t"; done
[ -x /usr/bin/time ] || die "need GNU time at /usr/bin/time (apt-get install -y time)"
[ -f "$TESTBED" ] && [ -f "$BENCH_DIR/connect_rate.c" ] || die "testbed files not found in $BENCH_DIR"

# ------------------------------------------------------------------ stinger binary
if [ ! -x "$STINGER" ]; then
    [ "$STINGER" = "$DEFAULT_STINGER" ] || die "STINGER=$STINGER is not an executable file"
    log "$STINGER missing: cargo build --release in $REPO"
    (cd "$REPO" && cargo build --release) || die "cargo build --release failed"
    [ -x "$STINGER" ] || die "cargo build did not produce $STINGER"
fi

STINGER=$(readlink -f "$STINGER")   # absolute: stinger runs from a per-run working directory
if [ -n "$STINGER_BASE" ]; then
    [ -x "$STINGER_BASE" ] || die "STINGER_BASE=$STINGER_BASE is not an executable file"
    STINGER_BASE=$(readlink -f "$STINGER_BASE")
fi

# ------------------------------------------------------------------ open files
ulimit -Hn 65535 2>/dev/null || true
ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ------------------------------------------------------------------ temp dir, cleanup
TMP=$(mktemp -d /tmp/stbench.XXXXXX)
# The embedded defaults, but without the nmap -sV stage that `scan --once` runs after discovery when
# nmap is installed (it is here, for the nmap runs): --target replaces the group below.
# The native UDP stage (on by default since [scan.udp] exists) is off as well for the TCP lines, so
# their figures stay comparable with builds that have no UDP stage. A binary from before [scan.udp]
# rejects the unknown table: it gets the config without it (config_for).
CONFIG_PRE_UDP=$TMP/stinger-tcp-pre-udp.toml
CONFIG_TCP=$TMP/stinger-tcp.toml
CONFIG_UDP=$TMP/stinger-udp.toml
printf '[[targets]]\nname = "bench"\ncidrs = ["127.0.0.1"]\n\n[scan.nmap]\nenabled = false\n' >"$CONFIG_PRE_UDP"
{ cat "$CONFIG_PRE_UDP"; printf '\n[scan.udp]\nenabled = false\n'; } >"$CONFIG_TCP"
{ cat "$CONFIG_PRE_UDP"; printf '\n[scan.udp]\nenabled = true\nports = "%s"\n' "$UDP_PORTS"; } >"$CONFIG_UDP"
RESULTS=$TMP/results.tsv
: >"$RESULTS"
TB_PID=
CHILD=
W4_UP=0
export W4_STATE=$TMP/w4
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

cleanup() {
    local rc=$? pid i
    set +e
    trap - EXIT INT TERM
    if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null; fi
    if [ -n "$TB_PID" ]; then
        kill -TERM "$TB_PID" 2>/dev/null
        for i in $(seq 30); do kill -0 "$TB_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$TB_PID" 2>/dev/null
        wait "$TB_PID" 2>/dev/null
    fi
    if ns_exists "$NS"; then   # stragglers in the namespace we created (only our processes)
        for i in 1 2 3 4 5; do
            pid=$(ip netns pids "$NS" 2>/dev/null)
            [ -z "$pid" ] && break
            # shellcheck disable=SC2086
            kill -"$([ "$i" -ge 4 ] && echo KILL || echo TERM)" $pid 2>/dev/null
            sleep 0.3
        done
        ip netns del "$NS" || echo "discovery: could not delete namespace $NS" >&2
    fi
    [ "$W4_UP" = 1 ] && "$W4SH" down >/dev/null
    cd /
    if [ "${KEEP:-0}" = 1 ]; then echo "discovery: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# config_for BIN: the TCP-only config BIN accepts (`check-config` parses it; nothing is scanned)
config_for() {
    if "$1" --config.file "$CONFIG_TCP" check-config >/dev/null 2>&1; then echo "$CONFIG_TCP"
    elif "$1" --config.file "$CONFIG_PRE_UDP" check-config >/dev/null 2>&1; then echo "$CONFIG_PRE_UDP"
    else
        "$1" --config.file "$CONFIG_TCP" check-config >&2 || true
        die "$1 accepts neither $CONFIG_TCP nor $CONFIG_PRE_UDP (error above)"
    fi
}
STINGER_TCP_CONFIG=$(config_for "$STINGER")
BASE_TCP_CONFIG=
[ -n "$STINGER_BASE" ] && BASE_TCP_CONFIG=$(config_for "$STINGER_BASE")

# ------------------------------------------------------------------ helpers
# timed OUT ERR CMD...: run CMD in the namespace given by the array PRE (`ip netns exec NS` or
# `w4-netns.sh exec`), from the current directory, stdout > OUT, stderr > ERR, under /usr/bin/time
# (inside the namespace) and timeout; sets WALL (s), RSS_KB (peak), RC.
PRE=()
timed() {
    local out=$1 err=$2 tf=$TMP/time.out; shift 2
    rm -f "$tf"
    RC=0
    # in the background + wait, so that a TERM/INT to this script is handled at once (cleanup kills it)
    "${PRE[@]}" /usr/bin/time -f '%e %M' -o "$tf" timeout -k 5 "$RUN_TIMEOUT" "$@" >"$out" 2>"$err" &
    CHILD=$!
    wait "$CHILD" || RC=$?
    CHILD=
    # time writes "Command exited with non-zero status N" before the format line: take the last line
    if [ -s "$tf" ] && read -r WALL RSS_KB < <(tail -n 1 "$tf") && [[ $WALL =~ ^[0-9.]+$ ]]; then :; else
        WALL=nan RSS_KB=0
    fi
}

# `stinger scan --once` exits 1 when it found unexpected open ports (the testbed serves some on
# purpose): that is a successful scan, not a failure.
stinger_rc() { if [ "$RC" = 1 ]; then RC=0; fi; }

# run_stinger D NAME BIN CONFIG TARGET PORTS: one `scan --once` from a fresh working directory (anything
# stinger writes there stays per run); output D/NAME.json, stderr D/NAME.err
run_stinger() {
    mkdir -p "$1/cwd.$2"
    cd "$1/cwd.$2"
    timed "$1/$2.json" "$1/$2.err" "$3" --config.file "$4" scan --once --target "$5" --ports "$6" --output json
    stinger_rc
    cd "$TMP"
}

# record WL SCANNER REP CHECK_JSON [NOTE]
record() {
    if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then set -- "$1" "$2" "$3" "$4" "timed out (RUN_TIMEOUT=${RUN_TIMEOUT}s)"; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$WALL" "$RSS_KB" "$RC" "$4" "${5:-}" >>"$RESULTS"
    python3 - "$1" "$2" "$3" "$4" "${5:-}" "$WALL" "$RSS_KB" "$RC" <<'EOF'
import json, sys
wl, sc, rep, chk, note, wall, rss, rc = sys.argv[1:9]
c = json.loads(chk)
ok = "correct" if c.get("correct") else f"INCORRECT missed={c.get('missed')} false_pos={c.get('false_pos')}"
extra = (f" rc={rc}" if rc != "0" else "") + (f" {note}" if note else "")
print(f"  {wl} {sc:<8} run {rep}: {wall:>7} s  {int(rss) / 1024:6.1f} MB  {ok}{extra}")
EOF
}

# check_out FORMAT FILE HOSTS PORTS (W1/W3 testbed) -> prints check JSON
check_out() {
    python3 "$TESTBED" check --manifest "$TMP/manifest.json" --hosts "$3" --ports "$4" --format "$1" "$2" \
        2>>"$TMP/check.log" || true
}
check_w4() {
    "$W4SH" check --format "$1" "$2" 2>>"$TMP/check.log" || true
}
# check_udp_nmap XML HOSTS: every (host, UDP port) must be reported closed (ICMP port unreachable)
check_udp_nmap() {
    python3 - "$1" "$2" "$UDP_PORTS" <<'EOF' 2>>"$TMP/check.log" || true
import json, sys, xml.etree.ElementTree as ET
xml, nh, ports = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
closed, other = 0, 0
hosts = ET.parse(xml).getroot().findall("host")
for h in hosts:
    ps = h.find("ports")
    if ps is None:
        continue
    for e in ps.findall("extraports"):
        n = int(e.get("count"))
        if e.get("state") == "closed": closed += n
        else: other += n
    for p in ps.findall("port"):
        if p.get("protocol") == "udp" and p.find("state").get("state") == "closed": closed += 1
        else: other += 1
expected = nh * len(ports)
# false_pos: reported open or open|filtered; missed: closed ports not reported as closed
print(json.dumps({"expected_closed": expected, "closed": closed, "false_pos": other,
                  "missed": expected - closed, "correct": closed == expected and other == 0 and len(hosts) == nh}))
EOF
}
# check_udp_stinger JSON TCP_CHECK_JSON: TCP (port 22) as checked, and no UDP port reported (every one
# is closed; the report lists only open ones)
check_udp_stinger() {
    python3 - "$1" "$2" <<'EOF' 2>>"$TMP/check.log" || true
import json, sys
tcp = json.loads(sys.argv[2])
try:
    d = json.load(open(sys.argv[1]))
    udp = sum(1 for h in d.get("hosts") or [] for p in h.get("ports") or [] if p.get("protocol") == "udp")
except Exception:
    udp = "?"
tcp["false_pos"] = tcp.get("false_pos", 0) + udp if isinstance(udp, int) and isinstance(tcp.get("false_pos"), int) else "?"
tcp["correct"] = bool(tcp.get("correct")) and udp == 0
print(json.dumps(tcp))
EOF
}
# icmp_out: "OutDestUnreachs OutRateLimitGlobal OutRateLimitHost" of namespace NS (/proc/net/snmp)
icmp_out() {
    ip netns exec "$NS" cat /proc/net/snmp | awk '$1 == "Icmp:" { if (!n++) for (i = 2; i <= NF; i++) k[$i] = i;
        else print $(k["OutDestUnreachs"]), (k["OutRateLimitGlobal"] ? $(k["OutRateLimitGlobal"]) : "?"),
                   (k["OutRateLimitHost"] ? $(k["OutRateLimitHost"]) : "?") }'
}
# icmp_note BEFORE AFTER: what the kernel answered during one run
icmp_note() {
    local a b c x y z
    read -r a b c <<<"$1"; read -r x y z <<<"$2"
    if [[ $b$c$y$z =~ ^[0-9]+$ ]]; then
        echo "ICMP unreachable sent $((x - a)), rate-limited $((y - b + z - c))"
    else
        echo "ICMP unreachable sent $((x - a)), rate-limit counters n/a"
    fi
}

# guard against a failing check producing no JSON
chk_or_fail() { [ -n "$1" ] && printf '%s' "$1" || printf '{"correct": false, "missed": "?", "false_pos": "?"}'; }

# stinger JSON -> masscan -oL list; prints a note (scan outcome if not success, or a parse error)
to_masscan() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
src, dst = sys.argv[1:3]
lines, note = ["#masscan"], ""
try:
    d = json.load(open(src))
    for h in d.get("hosts") or []:
        ip = h.get("address") or h.get("id")
        for p in h.get("ports") or []:
            if p.get("protocol", "tcp") == "tcp":
                lines.append(f"open tcp {int(p['port'])} {ip} 0")
    outcome = (d.get("scan") or {}).get("outcome")
    if outcome != "success":
        note = f"outcome={outcome}"
except Exception as e:
    note = f"bad-json({type(e).__name__})"
lines.append("# end")
open(dst, "w").write("\n".join(lines) + "\n")
print(note)
EOF
}

# ------------------------------------------------------------------ header
echo "== stinger discovery benchmark"
echo "date:    $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
echo "machine: $(hostname), nproc $NPROC, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo cpu?)"
echo "kernel:  $(uname -srm)"
echo "nmap:    $(nmap --version | head -n 1)"
echo "stinger: $STINGER (repo $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit'))"
[ -n "$STINGER_BASE" ] && echo "base:    $STINGER_BASE$([ "$BASE_TCP_CONFIG" = "$CONFIG_PRE_UDP" ] && echo ' (no [scan.udp]: config without it)')"
echo "reps:    $REPS   workloads: $WORKLOADS   ulimit -n $(ulimit -n)"

# ------------------------------------------------------------------ W1 / W3
if want W1 || want W3 || want UDP; then
    cc -O2 -o "$TMP/connect_rate" "$BENCH_DIR/connect_rate.c" || die "cannot compile connect_rate.c"

    ip netns add "$NS" || die "ip netns add $NS"
    ip -n "$NS" link set lo up
    # worst case: every run of every scanner hits RUN_TIMEOUT; the testbed is killed on exit anyway
    per_wl=3; [ -n "$STINGER_BASE" ] && per_wl=4
    runs=0
    for w in W1 W3; do want "$w" && runs=$((runs + per_wl)); done
    want UDP && runs=$((runs + 2))
    TB_DURATION=$((120 + REPS * runs * (RUN_TIMEOUT + 5)))
    ip netns exec "$NS" python3 "$TESTBED" serve --hosts 64 --manifest "$TMP/manifest.json" \
        --duration "$TB_DURATION" >"$TMP/testbed.log" 2>&1 </dev/null &
    TB_PID=$!
    for _ in $(seq 100); do   # <= 10 s
        grep -q listeners "$TMP/testbed.log" 2>/dev/null && [ -s "$TMP/manifest.json" ] && break
        kill -0 "$TB_PID" 2>/dev/null || break
        sleep 0.1
    done
    grep -q listeners "$TMP/testbed.log" 2>/dev/null && [ -s "$TMP/manifest.json" ] \
        || { cat "$TMP/testbed.log" >&2; die "testbed did not start"; }
    echo "$(head -n 1 "$TMP/testbed.log") in netns $NS"

    PRE=(ip netns exec "$NS")
    for wl in W1 W3; do
        want "$wl" || continue
        if [ "$wl" = W1 ]; then nh=64 cidr=127.0.10.0/26 ports=1-1000; else nh=16 cidr=127.0.10.0/28 ports=1-65535; fi
        echo "-- $wl: $nh hosts $cidr x TCP $ports"
        for rep in $(seq "$REPS"); do
            kill -0 "$TB_PID" 2>/dev/null || die "testbed exited early (see $TMP/testbed.log)"
            d=$TMP/$wl.$rep; mkdir -p "$d"

            timed "$d/floor.txt" "$d/floor.err" "$TMP/connect_rate" 127.0.10.0 "$nh" "$ports" "$NPROC"
            record "$wl" floor "$rep" "$(chk_or_fail "$(check_out masscan-list "$d/floor.txt" "$nh" "$ports")")"

            timed "$d/nmap.out" "$d/nmap.err" nmap -n -Pn -sT -T4 -p "$ports" -oX "$d/nmap.xml" "$cidr"
            record "$wl" nmap "$rep" "$(chk_or_fail "$(check_out nmap-xml "$d/nmap.xml" "$nh" "$ports")")"

            # stinger and base alternate which goes first, so neither always runs on a warmer machine
            order=(stinger); [ -n "$STINGER_BASE" ] && { ((rep % 2)) && order=(stinger base) || order=(base stinger); }
            for sc in "${order[@]}"; do
                if [ "$sc" = stinger ]; then bin=$STINGER cfg=$STINGER_TCP_CONFIG; else bin=$STINGER_BASE cfg=$BASE_TCP_CONFIG; fi
                run_stinger "$d" "$sc" "$bin" "$cfg" "$cidr" "$ports"
                note=$(to_masscan "$d/$sc.json" "$d/$sc.txt")
                record "$wl" "$sc" "$rep" "$(chk_or_fail "$(check_out masscan-list "$d/$sc.txt" "$nh" "$ports")")" "$note"
            done
        done
    done

    if want UDP; then
        # W1's hosts; TCP for stinger is port 22 only (open on every host: 64 connects). The testbed
        # serves no UDP: every (host, port) is closed, answered by an ICMP port unreachable. The note
        # shows how many the kernel sent and how many it rate-limited (the global limit
        # icmp_msgs_per_sec / per-host icmp_ratelimit) during each run.
        echo "-- UDP: 64 hosts 127.0.10.0/26 x UDP $UDP_PORTS (all closed); stinger's TCP: port 22 only"
        if "$STINGER" --config.file "$CONFIG_UDP" check-config >/dev/null 2>&1; then
            echo "   netns $NS: net.ipv4.icmp_msgs_per_sec=$(ip netns exec "$NS" sysctl -n net.ipv4.icmp_msgs_per_sec)" \
                 "icmp_msgs_burst=$(ip netns exec "$NS" sysctl -n net.ipv4.icmp_msgs_burst)" \
                 "icmp_ratelimit=$(ip netns exec "$NS" sysctl -n net.ipv4.icmp_ratelimit)" \
                 "icmp_ratemask=$(ip netns exec "$NS" sysctl -n net.ipv4.icmp_ratemask)"
            for rep in $(seq "$REPS"); do
                kill -0 "$TB_PID" 2>/dev/null || die "testbed exited early (see $TMP/testbed.log)"
                d=$TMP/UDP.$rep; mkdir -p "$d"

                before=$(icmp_out)
                timed "$d/nmap.out" "$d/nmap.err" nmap -n -Pn -sU -p "$UDP_PORTS" -oX "$d/nmap.xml" 127.0.10.0/26
                note=$(icmp_note "$before" "$(icmp_out)")
                record UDP nmap "$rep" "$(chk_or_fail "$(check_udp_nmap "$d/nmap.xml" 64)")" "$note"

                before=$(icmp_out)
                run_stinger "$d" stinger "$STINGER" "$CONFIG_UDP" 127.0.10.0/26 22
                note=$(icmp_note "$before" "$(icmp_out)")
                n2=$(to_masscan "$d/stinger.json" "$d/stinger.txt")
                [ -n "$n2" ] && note="$n2; $note"
                tcp=$(chk_or_fail "$(check_out masscan-list "$d/stinger.txt" 64 22)")
                record UDP stinger "$rep" "$(chk_or_fail "$(check_udp_stinger "$d/stinger.json" "$tcp")")" "$note"
            done
        else
            echo "UDP: SKIPPED - $STINGER has no [scan.udp] (check-config rejects $CONFIG_UDP)" | tee -a "$TMP/skipped" >&2
        fi
    fi

    # testbed no longer needed: stop it and delete the namespace now (cleanup() handles errors)
    kill -TERM "$TB_PID" 2>/dev/null || true
    wait "$TB_PID" 2>/dev/null || true
    TB_PID=
    ip netns del "$NS" 2>/dev/null || true
fi

# ------------------------------------------------------------------ W4
if want W4; then
    echo "-- W4: 16 hosts 10.244.0.16/28 x TCP 1-1000, filtered ports dropped, 20 ms RTT"
    if ip netns list | grep -qE '^stw4-(scan|hosts)\b' && [ "${W4_FORCE:-0}" != 1 ]; then
        echo "W4: SKIPPED - stw4-* namespaces already exist (someone else's W4 testbed?); run" \
             "'$W4SH down' or set W4_FORCE=1" | tee -a "$TMP/skipped" >&2
    else
        export W4_DURATION=$((120 + REPS * $([ -n "$STINGER_BASE" ] && echo 3 || echo 2) * (RUN_TIMEOUT + 5)))
        W4_UP=1   # from here on cleanup() runs `w4-netns.sh down`, even if `up` fails halfway
        if "$W4SH" up >"$TMP/w4-up.log" 2>&1; then
            tail -n 1 "$TMP/w4-up.log"
            PRE=("$W4SH" exec)
            for rep in $(seq "$REPS"); do
                d=$TMP/W4.$rep; mkdir -p "$d"
                timed "$d/nmap.out" "$d/nmap.err" nmap -n -Pn -sT -T4 -p 1-1000 -oX "$d/nmap.xml" 10.244.0.16/28
                record W4 nmap "$rep" "$(chk_or_fail "$(check_w4 nmap-xml "$d/nmap.xml")")"

                order=(stinger); [ -n "$STINGER_BASE" ] && { ((rep % 2)) && order=(stinger base) || order=(base stinger); }
                for sc in "${order[@]}"; do
                    if [ "$sc" = stinger ]; then bin=$STINGER cfg=$STINGER_TCP_CONFIG; else bin=$STINGER_BASE cfg=$BASE_TCP_CONFIG; fi
                    run_stinger "$d" "$sc" "$bin" "$cfg" 10.244.0.16/28 1-1000
                    note=$(to_masscan "$d/$sc.json" "$d/$sc.txt")
                    record W4 "$sc" "$rep" "$(chk_or_fail "$(check_w4 masscan-list "$d/$sc.txt")")" "$note"
                done
            done
        else
            sed 's/^/  /' "$TMP/w4-up.log" >&2
            echo "W4: SKIPPED - w4-netns.sh up failed (needs iptables, iproute2, python3; log above)" \
                | tee -a "$TMP/skipped" >&2
        fi
        "$W4SH" down >/dev/null 2>&1 || true
        W4_UP=0
    fi
fi

# ------------------------------------------------------------------ table
echo
status=0
python3 - "$RESULTS" "$REPS" <<'EOF' || status=$?
import collections, json, math, statistics, sys
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    wl, sc, rep, wall, rss, rc, chk, note = line.rstrip("\n").split("\t")
    rows.setdefault((wl, sc), []).append((float(wall), int(rss), int(rc), json.loads(chk), note))
if not rows:
    print("no results"); sys.exit(1)
agg, bad = {}, False
print(f"{'workload':<9}{'scanner':<9}{'median s':>9}{'peak RSS MB':>13}  correct (all {sys.argv[2]} runs)")
for (wl, sc), runs in rows.items():
    walls = [r[0] for r in runs]
    med = statistics.median(walls) if not any(math.isnan(w) for w in walls) else float("nan")
    rss = max(r[1] for r in runs) / 1024
    ok = all(r[3].get("correct") is True and r[2] == 0 for r in runs)
    bad |= not ok
    if ok:
        cor = "yes"
    else:
        def mx(k):
            v = [r[3].get(k) for r in runs]
            return max(v) if all(isinstance(x, int) for x in v) else "?"
        cor = f"no (missed={mx('missed')} false_pos={mx('false_pos')}"
        rcs = sorted({r[2] for r in runs if r[2]})
        cor += (f" rc={','.join(map(str, rcs))}" if rcs else "") + ")"
    notes = sorted({r[4] for r in runs if r[4]})
    if notes:
        cor += " [" + "; ".join(notes) + "]"
    agg[wl, sc] = (med, rss, ok)
    print(f"{wl:<9}{sc:<9}{med:>9.2f}{rss:>13.1f}  {cor}")

def ratio(wl, a, b):
    if (wl, a) in agg and (wl, b) in agg and agg[wl, b][0] > 0:
        return agg[wl, a][0] / agg[wl, b][0]
print()
print("ratios (median wall time; stinger/floor: lower is better, target <= 1.2;"
      " nmap/stinger: higher is better, W4 target >= 10; stinger/base: target <= 1.05):")
for wl in ("W1", "W3", "W4", "UDP"):
    parts = []
    for a, b in (("stinger", "floor"), ("nmap", "stinger"), ("nmap", "floor"), ("stinger", "base")):
        r = ratio(wl, a, b)
        if r is not None:
            parts.append(f"{a}/{b} = {r:.2f}")
    if parts:
        print(f"  {wl}: " + "   ".join(parts))

print("\ntargets (informational; exit status reflects correctness and scanner exit codes only):")
def target(name, ok, valid=True):  # a figure from an incorrect run meets no target
    print(f"  [{'met' if ok and valid else 'MISSED'}] {name}" + ("" if valid else " - results incorrect"))
def valid(*keys):
    return all(agg[k][2] for k in keys if k in agg)
for wl in ("W1", "W3"):
    r = ratio(wl, "stinger", "floor")
    if r is not None:
        target(f"{wl}: stinger within 1.2x of the C connect floor ({r:.2f}x)", r <= 1.2,
               valid((wl, "stinger"), (wl, "floor")))
if ("W4", "stinger") in agg:
    r, s = ratio("W4", "nmap", "stinger"), agg["W4", "stinger"][0]
    if r is not None:
        target(f"W4: stinger >= 10x faster than nmap -sT -T4 ({r:.1f}x)", r >= 10,
               valid(("W4", "stinger"), ("W4", "nmap")))
    target(f"W4: stinger faster than RustScan's 1.6 s ({s:.2f} s)", s < 1.6, valid(("W4", "stinger")))
for wl in ("W1", "W3", "W4"):
    r = ratio(wl, "stinger", "base")
    if r is not None:
        target(f"{wl}: stinger within 5% of the base binary ({r:.3f}x)", r <= 1.05,
               valid((wl, "stinger"), (wl, "base")))
rs = [(v[1], v[2]) for (wl, sc), v in agg.items() if sc == "stinger"]
if rs:
    target(f"stinger peak RSS < 30 MB (max {max(r for r, _ in rs):.1f} MB)",
           max(r for r, _ in rs) < 30, all(ok for _, ok in rs))
if bad:
    print("\nFAIL: at least one run was incorrect or exited non-zero")
sys.exit(1 if bad else 0)
EOF
[ -e "$TMP/skipped" ] && { echo; cat "$TMP/skipped"; }
exit "$status"
