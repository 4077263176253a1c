#!/usr/bin/env bash
# discovery.sh - discovery (port-scan) benchmark for stinger against the C connect() floor and nmap.
#
# Workloads (names as in /work/shared/bench/README.md):
#   W1  64 hosts 127.0.10.0/26 x TCP 1-1000      loopback testbed in a namespace of our own
#   W3  16 hosts 127.0.10.0/28 x TCP 1-65535     same testbed (its first 16 hosts)
#   W4  16 hosts 10.244.0.16/28 x TCP 1-1000     w4-netns.sh: filtered ports (DROP), 20 ms RTT
# Scanners: floor = connect_rate.c (W1, W3), nmap -n -Pn -sT -T4, stinger scan --once (default settings
# but for nmap service detection, which is off: this compares port discovery with nmap's -sT).
# Each is run REPS times; the table shows median wall time, peak RSS (max over runs) and correctness
# (testbed.py check on every run). Exit status is non-zero if any run was incorrect or failed.
#
# Usage (root):  benches/discovery.sh
# Environment:
#   STINGER      stinger binary (default <repo>/target/release/stinger; built with cargo if missing)
#   REPS         runs per scanner and workload (default 3)
#   WORKLOADS    subset of "W1 W3 W4" (default all three)
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
WORKLOADS=${WORKLOADS:-W1 W3 W4}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
NPROC=$(nproc)
NS=stbench-$$

die() { echo "discovery: $*" >&2; exit 2; }
log() { echo "discovery: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (network namespaces)"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "REPS must be a positive integer"
[[ $RUN_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "RUN_TIMEOUT must be a positive integer"
for w in $WORKLOADS; do
    case $w in W1|W3|W4) ;; *) die "unknown workload '$w' (WORKLOADS is a subset of \"W1 W3 W4\")" ;; esac
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

# ------------------------------------------------------------------ open files
ulimit -Hn 65535 2>/dev/null || true
ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ------------------------------------------------------------------ temp dir, cleanup
TMP=$(mktemp -d /tmp/stbench.XXXXXX)
# The embedded defaults, but without the nmap -sV stage that `scan --once` runs after discovery when
# nmap is installed (it is here, for the nmap runs): --target replaces the group below.
STINGER_CONFIG=$TMP/stinger.toml
printf '[[targets]]\nname = "bench"\ncidrs = ["127.0.0.1"]\n\n[scan.nmap]\nenabled = false\n' >"$STINGER_CONFIG"
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
echo "reps:    $REPS   workloads: $WORKLOADS   ulimit -n $(ulimit -n)"

# ------------------------------------------------------------------ W1 / W3
if want W1 || want W3; then
    cc -O2 -o "$TMP/connect_rate" "$BENCH_DIR/connect_rate.c" || die "cannot compile connect_rate.c"

    ip netns add "$NS" || die "ip netns add $NS"
    ip -n "$NS" link set lo up
    # worst case: every run of every scanner hits RUN_TIMEOUT; the testbed is killed on exit anyway
    TB_DURATION=$((120 + REPS * 6 * (RUN_TIMEOUT + 5)))
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
            d=$TMP/$wl.$rep; mkdir -p "$d/cwd"

            timed "$d/floor.txt" "$d/floor.err" "$TMP/connect_rate" 127.0.10.0 "$nh" "$ports" "$NPROC"
            record "$wl" floor "$rep" "$(chk_or_fail "$(check_out masscan-list "$d/floor.txt" "$nh" "$ports")")"

            timed "$d/nmap.out" "$d/nmap.err" nmap -n -Pn -sT -T4 -p "$ports" -oX "$d/nmap.xml" "$cidr"
            record "$wl" nmap "$rep" "$(chk_or_fail "$(check_out nmap-xml "$d/nmap.xml" "$nh" "$ports")")"

            cd "$d/cwd"   # fresh working directory: anything stinger writes there stays per run
            timed "$d/stinger.json" "$d/stinger.err" "$STINGER" --config.file "$STINGER_CONFIG" scan --once --target "$cidr" --ports "$ports" --output json
            stinger_rc
            cd "$TMP"
            note=$(to_masscan "$d/stinger.json" "$d/stinger.txt")
            record "$wl" stinger "$rep" "$(chk_or_fail "$(check_out masscan-list "$d/stinger.txt" "$nh" "$ports")")" "$note"
        done
    done

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
        export W4_DURATION=$((120 + REPS * 2 * (RUN_TIMEOUT + 5)))
        W4_UP=1   # from here on cleanup() runs `w4-netns.sh down`, even if `up` fails halfway
        if "$W4SH" up >"$TMP/w4-up.log" 2>&1; then
            tail -n 1 "$TMP/w4-up.log"
            PRE=("$W4SH" exec)
            for rep in $(seq "$REPS"); do
                d=$TMP/W4.$rep; mkdir -p "$d/cwd"
                timed "$d/nmap.out" "$d/nmap.err" nmap -n -Pn -sT -T4 -p 1-1000 -oX "$d/nmap.xml" 10.244.0.16/28
                record W4 nmap "$rep" "$(chk_or_fail "$(check_w4 nmap-xml "$d/nmap.xml")")"

                cd "$d/cwd"
                timed "$d/stinger.json" "$d/stinger.err" "$STINGER" --config.file "$STINGER_CONFIG" scan --once --target 10.244.0.16/28 --ports 1-1000 --output json
                stinger_rc
                cd "$TMP"
                note=$(to_masscan "$d/stinger.json" "$d/stinger.txt")
                record W4 stinger "$rep" "$(chk_or_fail "$(check_w4 masscan-list "$d/stinger.txt")")" "$note"
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
      " nmap/stinger: higher is better, W4 target >= 10):")
for wl in ("W1", "W3", "W4"):
    parts = []
    for a, b in (("stinger", "floor"), ("nmap", "stinger"), ("nmap", "floor")):
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
