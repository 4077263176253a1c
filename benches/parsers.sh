#!/usr/bin/env bash
# Parser benchmarks: Stinger's nmap XML parser and GMP report parser against references, on
# generated inputs, in one run on one machine.
#
#   benches/parsers.sh                          # REPS=3
#   REPS=5 KEEP=1 benches/parsers.sh            # KEEP=1: keep the generated inputs and logs
#
# Tools and inputs (generated with benches/gen_nmap_xml.py and benches/gen_gmp_report.py):
#   nmap-S  NMAP_HOSTS (default 10 000) hosts x 7 ports       nmap-L  10x as many hosts
#   gmp-S   GMP_RESULTS/10 results                             gmp-L   GMP_RESULTS (default 48 000, ~100 MB)
#   ours     target/release/examples/parse_nmap | parse_gmp_report (64 KiB BufReader, default limits)
#   xmllint  xmllint --stream --noout  (libxml2's streaming reader: well-formedness only, no data
#            model; the "how fast can a C XML tokenizer go" reference)
#   libnmap  python-libnmap NmapParser.parse_fromfile (the usual Python nmap XML library); skipped
#            on nmap-L when its time per run, extrapolated from nmap-S, exceeds LIBNMAP_MAX_SECONDS
#            (default 60; set it higher to force)
#
# Figures: `median s` is the median wall time of REPS runs (interleaved), process start-up
# included, taken with a nanosecond clock around `/usr/bin/time -f '%e %M'`; MB/s = 10^6 bytes of
# input / median s; `peak RSS` is the largest `%M` over the runs (MiB). Every run's exit status is
# checked, and our host/port counts are checked against libnmap's. For ours, the note column also
# gives the median in-process rate the example prints itself (open + read + parse, without process
# start-up and without freeing the result at exit).
#
# Needs: python3 (with venv), GNU time, cargo. Installs what is missing: libxml2-utils (apt-get,
# as root), python-libnmap (pip, into the venv $VENV, default /tmp/stinger-bench-venv). Builds the
# two examples with `cargo build --release --examples` unless they exist (PARSE_NMAP / PARSE_GMP
# override the binaries; REBUILD=1 forces the build).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPS=${REPS:-3}
NMAP_HOSTS=${NMAP_HOSTS:-10000}
GMP_RESULTS=${GMP_RESULTS:-48000}
LIBNMAP_MAX_SECONDS=${LIBNMAP_MAX_SECONDS:-60}
VENV=${VENV:-/tmp/stinger-bench-venv}
KEEP=${KEEP:-0}
PARSE_NMAP=${PARSE_NMAP:-$ROOT/target/release/examples/parse_nmap}
PARSE_GMP=${PARSE_GMP:-$ROOT/target/release/examples/parse_gmp_report}

die() { echo "parsers.sh: $*" >&2; exit 2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    as_root apt-get install -y -q "$@" >/dev/null 2>&1 ||
        { as_root apt-get update -q >/dev/null && as_root apt-get install -y -q "$@" >/dev/null; }
}

# --- prerequisites ------------------------------------------------------------------------
command -v python3 >/dev/null || die "python3 not found"
[[ -x /usr/bin/time ]] || { echo "== installing GNU time"; apt_install time || die "cannot install time"; }
command -v bc >/dev/null || { echo "== installing bc"; apt_install bc || die "cannot install bc"; }
command -v xmllint >/dev/null || { echo "== installing libxml2-utils"; apt_install libxml2-utils || die "cannot install libxml2-utils"; }
if ! "$VENV/bin/python" -c 'import libnmap' 2>/dev/null; then
    echo "== installing python-libnmap into $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q python-libnmap || die "pip install python-libnmap failed"
fi
if [[ ${REBUILD:-0} == 1 || ! -x $PARSE_NMAP || ! -x $PARSE_GMP ]]; then
    echo "== cargo build --release --examples"
    (cd "$ROOT" && cargo build --release --examples) || die "build failed"
fi
[[ -x $PARSE_NMAP && -x $PARSE_GMP ]] || die "example binaries missing: $PARSE_NMAP $PARSE_GMP"

TMP=$(mktemp -d /tmp/stinger-parsers.XXXXXX)
if [[ $KEEP == 1 ]]; then echo "== keeping inputs and logs in $TMP"; else trap 'rm -rf "$TMP"' EXIT; fi

LIBNMAP_PY='
import sys
from libnmap.parser import NmapParser
r = NmapParser.parse_fromfile(sys.argv[1])
print("hosts=%d ports=%d" % (len(r.hosts), sum(len(h.services) for h in r.hosts)))
'

# --- inputs -------------------------------------------------------------------------------
echo "== generating inputs in $TMP"
python3 "$ROOT/benches/gen_nmap_xml.py" --hosts "$NMAP_HOSTS" --ports-per-host 7 --out "$TMP/nmap-S.xml"
python3 "$ROOT/benches/gen_nmap_xml.py" --hosts $((NMAP_HOSTS * 10)) --ports-per-host 7 --out "$TMP/nmap-L.xml"
python3 "$ROOT/benches/gen_gmp_report.py" --results $((GMP_RESULTS / 10)) --out "$TMP/gmp-S.xml"
python3 "$ROOT/benches/gen_gmp_report.py" --results "$GMP_RESULTS" --out "$TMP/gmp-L.xml"
declare -A SIZE
for f in nmap-S nmap-L gmp-S gmp-L; do
    SIZE[$f]=$(stat -c %s "$TMP/$f.xml")
    cat "$TMP/$f.xml" >/dev/null # page cache: every tool reads from memory
    printf '   %-7s %8.1f MB\n' "$f" "$(echo "${SIZE[$f]} / 1000000" | bc -l)"
done

# --- measurement --------------------------------------------------------------------------
declare -A TIMES RSS OUT INPROC
# run <key> <cmd...>: one timed run; appends the wall time and RSS to the key's lists.
run() {
    local key=$1; shift
    local t0 t1 rc=0
    t0=$(date +%s%N)
    /usr/bin/time -f '%e %M' -o "$TMP/time" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
    t1=$(date +%s%N)
    if [[ $rc -ne 0 ]]; then
        echo "!! $key: exit $rc: $*" >&2; tail -5 "$TMP/err" >&2; exit 1
    fi
    TIMES[$key]+="$(echo "($t1 - $t0) / 1000000000" | bc -l) "
    RSS[$key]+="$(awk '{print $2}' "$TMP/time") "
    OUT[$key]=$(tail -1 "$TMP/out")
    INPROC[$key]+="$(sed -n 's/.*mb_per_s=\([^ ]*\).*/\1/p' "$TMP/out") "
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
maxof() { tr ' ' '\n' | grep . | sort -g | tail -1; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
libnmap_big=1
for ((rep = 1; rep <= REPS; rep++)); do
    echo "== rep $rep/$REPS"
    for f in nmap-S nmap-L; do
        run "$f/ours" "$PARSE_NMAP" "$TMP/$f.xml"
        run "$f/xmllint" xmllint --stream --noout "$TMP/$f.xml"
        if [[ $f == nmap-S ]]; then
            run "$f/libnmap" "$VENV/bin/python" -c "$LIBNMAP_PY" "$TMP/$f.xml"
            if [[ $rep == 1 ]]; then
                est=$(echo "${TIMES[nmap-S/libnmap]} * ${SIZE[nmap-L]} / ${SIZE[nmap-S]}" | bc -l)
                if (($(echo "$est > $LIBNMAP_MAX_SECONDS" | bc -l))); then
                    libnmap_big=0
                    printf '   libnmap on nmap-L skipped: about %.0f s per run extrapolated from nmap-S (LIBNMAP_MAX_SECONDS=%s)\n' \
                        "$est" "$LIBNMAP_MAX_SECONDS"
                fi
            fi
        elif [[ $libnmap_big == 1 ]]; then
            run "$f/libnmap" "$VENV/bin/python" -c "$LIBNMAP_PY" "$TMP/$f.xml"
        fi
    done
    for f in gmp-S gmp-L; do
        run "$f/ours" "$PARSE_GMP" "$TMP/$f.xml"
        run "$f/xmllint" xmllint --stream --noout "$TMP/$f.xml"
    done
done

# --- correctness: our counts vs the generator's and libnmap's ------------------------------
field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1"; }
bad=0
for f in nmap-S nmap-L; do
    h=$(field "${OUT[$f/ours]}" hosts); p=$(field "${OUT[$f/ours]}" ports)
    want=$NMAP_HOSTS; [[ $f == nmap-L ]] && want=$((NMAP_HOSTS * 10))
    [[ $h == "$want" && $p == $((want * 7)) ]] || { echo "!! $f: ours found hosts=$h ports=$p, expected $want/$((want * 7))"; bad=1; }
    if [[ -n ${OUT[$f/libnmap]:-} && ${OUT[$f/libnmap]} != "hosts=$h ports=$p" ]]; then
        echo "!! $f: libnmap says ${OUT[$f/libnmap]}, ours hosts=$h ports=$p"; bad=1
    fi
done
for f in gmp-S gmp-L; do
    [[ $(field "${OUT[$f/ours]}" complete) == true && $(field "${OUT[$f/ours]}" result_errors) == 0 ]] ||
        { echo "!! $f: ${OUT[$f/ours]}"; bad=1; }
done

# --- table --------------------------------------------------------------------------------
declare -A MED MBS RMB
echo
printf '%-7s %8s  %-8s %9s %8s %13s  %s\n' input "size MB" tool "median s" "MB/s" "peak RSS MiB" "counts (ours)"
for key in nmap-S/ours nmap-S/xmllint nmap-S/libnmap nmap-L/ours nmap-L/xmllint nmap-L/libnmap \
    gmp-S/ours gmp-S/xmllint gmp-L/ours gmp-L/xmllint; do
    f=${key%/*}; tool=${key#*/}
    mb=$(echo "${SIZE[$f]} / 1000000" | bc -l)
    if [[ -z ${TIMES[$key]:-} ]]; then
        printf '%-7s %8.1f  %-8s %9s %8s %13s  %s\n' "$f" "$mb" "$tool" - - - "skipped (see above)"
        continue
    fi
    MED[$key]=$(median <<<"${TIMES[$key]}")
    MBS[$key]=$(echo "$mb / ${MED[$key]}" | bc -l)
    RMB[$key]=$(echo "$(maxof <<<"${RSS[$key]}") / 1024" | bc -l)
    note=""
    [[ $tool == ours ]] && note="in-process $(median <<<"${INPROC[$key]}") MB/s; $(sed 's/bytes=[0-9]* //; s/seconds=[^ ]* //; s/mb_per_s=[^ ]* //' <<<"${OUT[$key]}")"
    printf '%-7s %8.1f  %-8s %9.3f %8.1f %13.1f  %s\n' "$f" "$mb" "$tool" "${MED[$key]}" "${MBS[$key]}" "${RMB[$key]}" "$note"
done

ratio() { echo "$1 / $2" | bc -l; }
echo
echo "ratios (of median times; >1 means ours is faster):"
for f in nmap-S nmap-L gmp-S gmp-L; do
    printf '  %-7s xmllint/ours = %.2f  (ours runs at %.0f%% of xmllint --stream speed)\n' "$f" \
        "$(ratio "${MED[$f/xmllint]}" "${MED[$f/ours]}")" "$(echo "100 * ${MED[$f/xmllint]} / ${MED[$f/ours]}" | bc -l)"
done
for f in nmap-S nmap-L; do
    [[ -n ${MED[$f/libnmap]:-} ]] &&
        printf '  %-7s libnmap/ours = %.1f\n' "$f" "$(ratio "${MED[$f/libnmap]}" "${MED[$f/ours]}")"
done

verdict() { if (($(echo "$1" | bc -l))); then echo met; else echo MISSED; fi; }
echo
echo "targets:"
printf '  nmap  >= 150 MB/s on nmap-S:            %6.1f MB/s        %s\n' "${MBS[nmap-S/ours]}" "$(verdict "${MBS[nmap-S/ours]} >= 150")"
if [[ -n ${MED[nmap-S/libnmap]:-} ]]; then
    lr=$(ratio "${MED[nmap-S/libnmap]}" "${MED[nmap-S/ours]}")
    printf '  nmap  >= 20x python-libnmap (nmap-S):   %6.1fx            %s\n' "$lr" "$(verdict "$lr >= 20")"
fi
rr=$(ratio "${RMB[nmap-L/ours]}" "${RMB[nmap-S/ours]}")
printf '  nmap  RSS flat (L vs S, 10x the input): %6.1f -> %.1f MiB (x%.2f)  %s\n' "${RMB[nmap-S/ours]}" "${RMB[nmap-L/ours]}" "$rr" "$(verdict "$rr <= 1.5")"
printf '  gmp   >= 150 MB/s on gmp-L:             %6.1f MB/s        %s\n' "${MBS[gmp-L/ours]}" "$(verdict "${MBS[gmp-L/ours]} >= 150")"
rr=$(ratio "${RMB[gmp-L/ours]}" "${RMB[gmp-S/ours]}")
printf '  gmp   RSS flat (L vs S, 10x the input): %6.1f -> %.1f MiB (x%.2f)  %s\n' "${RMB[gmp-S/ours]}" "${RMB[gmp-L/ours]}" "$rr" "$(verdict "$rr <= 1.5")"
echo "  (RSS flat = peak RSS on the 10x input at most 1.5x that on the small one)"
echo "load average before/after the runs: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (figures are only comparable on an idle machine)"
echo "$(nproc) CPUs, $(uname -r), $(xmllint --version 2>&1 | head -1), python-libnmap $("$VENV/bin/pip" show python-libnmap 2>/dev/null | sed -n 's/^Version: //p')"
exit "$bad"
