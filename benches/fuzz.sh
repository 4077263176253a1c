#!/usr/bin/env bash
# Fuzz the nmap XML and GMP XML parsers and the JSON API's query parsers (fuzz/, cargo-fuzz +
# libFuzzer) for a bounded time.
#
#   benches/fuzz.sh                                  # 60 s per target, all four targets
#   FUZZ_SECONDS=600 TARGETS="gmp_report" benches/fuzz.sh
#
# Targets: nmap_xml (parse + parse_partial), gmp_report (ReportParser drained),
# gmp_framing (ResponseSplitter fed in input-derived chunk sizes, then the response parsers),
# api_query (src/expose/api/query.rs through query_harness.rs: the input as a raw query string to
# every endpoint, as every parameter's value, and after a NUL byte as a path id).
# Corpora live in fuzz/corpus/<target>/ (seeded from tests/fixtures on every run, kept between
# runs), crashes in fuzz/artifacts/<target>/; both are gitignored (fuzz/.gitignore).
#
# Toolchain: cargo-fuzz wants nightly for -Zsanitizer / sanitizer-coverage flags. A stable
# rustc accepts them with RUSTC_BOOTSTRAP=1, which this script sets; AddressSanitizer works that
# way on x86_64 Linux (stable 1.95 ships the ASan runtime). If the ASan build fails anyway, the
# script falls back to `--sanitizer none` (coverage-guided fuzzing still works; only memory
# errors in unsafe code would go unnoticed, and the parsers have no unsafe code).
#
# Settings (environment): FUZZ_SECONDS (default 60, per target), TARGETS, SANITIZER (address|none,
# default address), FUZZ_MAX_LEN (longest generated input; default 65536, 16384 for gmp_framing,
# whose responses are capped at 4 KiB and which costs more per byte, 4096 for api_query, which
# parses each input some 45 times: longer inputs find nothing new), FUZZ_TIMEOUT (seconds
# one input may take before it counts as a hang, default 10), FUZZ_RSS_MB (default 2048).
# Exit status: 0 no crash, 1 a target crashed/hung/ran out of memory, 2 setup error.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ=$ROOT/fuzz
FIX=$ROOT/tests/fixtures
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
TARGETS=${TARGETS:-"nmap_xml gmp_report gmp_framing api_query"}
SANITIZER=${SANITIZER:-address}
FUZZ_MAX_LEN=${FUZZ_MAX_LEN:-}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
export RUSTC_BOOTSTRAP=1

die() { echo "fuzz.sh: $*" >&2; exit 2; }
[[ -f $FUZZ/Cargo.toml ]] || die "no fuzz crate at $FUZZ"
command -v cargo >/dev/null || die "cargo not found"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || die "cargo install cargo-fuzz failed"
fi

TMP=$(mktemp -d /tmp/stinger-fuzz.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

cd "$FUZZ"

echo "== building targets (sanitizer: $SANITIZER, RUSTC_BOOTSTRAP=1, $(rustc --version))"
if ! cargo fuzz build -s "$SANITIZER" >"$TMP/build.log" 2>&1; then
    if [[ $SANITIZER != none ]]; then
        echo "   build with -s $SANITIZER failed (tail of log below); retrying with -s none"
        tail -5 "$TMP/build.log" | sed 's/^/   | /'
        SANITIZER=none
        cargo fuzz build -s none >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; die "build failed"; }
    else
        cat "$TMP/build.log"; die "build failed"
    fi
fi

# --- seed corpora -------------------------------------------------------------------------
seed() { # seed <target> <files...>
    local dir=corpus/$1; shift
    mkdir -p "$dir"
    local f
    for f in "$@"; do cp -f "$f" "$dir/seed-$(basename "$f")"; done
}
shopt -s nullglob globstar
seed nmap_xml "$FIX"/nmap/*.xml
seed gmp_report "$FIX"/gvm/reports/*.xml "$FIX"/gvm/responses/**/get_reports_response*.xml
seed gmp_framing "$FIX"/gvm/**/*.xml
# gmp_framing reads its first byte as the chunk-size seed: add back-to-back responses with a few
# small chunk sizes (byte 0x00: chunks of 1 byte, 0x07: 1..=8 bytes).
for b in 00 07 3f; do
    { printf "\\x$b"; cat "$FIX"/gvm/responses/*.xml; } >corpus/gmp_framing/seed-concat-$b.xml
done

# api_query: a query of each endpoint, and a query with a path id after a NUL byte.
mkdir -p corpus/api_query
printf '%s' 'limit=10&cursor=0000000000000000000000000000000000000001&since=2026-11-24T10:00:00Z' \
    >corpus/api_query/seed-changes
printf '%s' 'since=1764000000&until=1800000000&kind=port_closed&vm=vm-a' >corpus/api_query/seed-kind
printf '%s' 'cve=CVE-2023-38408&min_cvss=7.5&source=greenbone&limit=10000' >corpus/api_query/seed-vulns
printf '%s' 'state=open,confirmed&severity=high,critical&cursor=high:0f00&cidr=10.0.0.0/24' \
    >corpus/api_query/seed-findings
printf '%s' 'cidr=2001:db8::/32&port=22&world=true&service=ssh&unexpected=0' >corpus/api_query/seed-vms
printf 'since=0&project=acme\0vm-a/port-a/10.0.0.5' >corpus/api_query/seed-path

# Dictionary: element and attribute names from the fixtures, plus XML syntax.
dict=$TMP/xml.dict
{
    printf '%s\n' '"<?xml version=\"1.0\"?>"' '"<!DOCTYPE"' '"<!--"' '"-->"' '"<![CDATA["' '"]]>"' \
        '"/>"' '"</"' '"&amp;"' '"&lt;"' '"&#x"' '"&#"' '"=\""' '"<!ENTITY"'
    cat "$FIX"/nmap/*.xml "$FIX"/gvm/**/*.xml |
        grep -oE '</?[A-Za-z_][A-Za-z0-9_.-]*|[A-Za-z_][A-Za-z0-9_.-]*="' | sort -u |
        sed 's/"/\\"/g; s/.*/"&"/'
} >"$dict"
# api_query's: every lower-case word the parsers and the model's names quote (parameters, kinds,
# states, severities, sources), plus query syntax and awkward values.
qdict=$TMP/query.dict
{
    printf '%s\n' '"="' '"&"' '","' '":"' '"%"' '"%25"' '"%00"' '"%ff"' '"%C3%A9"' '"%E2%82%AC"' \
        '"\xe2\x82\xac"' '"CVE-"' '"NaN"' '"inf"' '"1e309"' '"-0"' '"0x"' '"T10:00:00Z"' \
        '"+01:00"' '"::"' '"/"' '"\x00"'
    cat "$ROOT"/src/expose/api/query.rs "$ROOT"/src/model/*.rs |
        grep -oE '"[a-z][a-z_]*"' | sort -u
} >"$qdict"

# --- run ----------------------------------------------------------------------------------
crashed=0
declare -A RES
for t in $TARGETS; do
    mkdir -p "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    max_len=${FUZZ_MAX_LEN:-65536}
    [[ -z $FUZZ_MAX_LEN && $t == gmp_framing ]] && max_len=16384
    [[ -z $FUZZ_MAX_LEN && $t == api_query ]] && max_len=4096
    tdict=$dict
    [[ $t == api_query ]] && tdict=$qdict
    echo "== $t: ${FUZZ_SECONDS}s, max_len $max_len (corpus $(find "corpus/$t" -type f | wc -l) files)"
    set +e
    cargo fuzz run -s "$SANITIZER" "$t" "corpus/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -max_len="$max_len" -timeout="$FUZZ_TIMEOUT" \
        -rss_limit_mb="$FUZZ_RSS_MB" -dict="$tdict" -print_final_stats=1 \
        >"$TMP/$t.log" 2>&1
    rc=$?
    set -e
    after=$(find "artifacts/$t" -type f | wc -l)
    fstat() { sed -n "s/^stat::$1: *//p" "$TMP/$t.log" | tail -1; }
    # (greps below may match nothing: a run that dies early prints no coverage line)
    execs=$(fstat number_of_executed_units); eps=$(fstat average_exec_per_sec)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$TMP/$t.log" | tail -1 || true)
    if [[ $rc -ne 0 || $after -gt $before ]]; then
        crashed=1
        verdict="CRASH (exit $rc)"
        echo "   !! $t failed; libFuzzer says:"
        grep -E '==[0-9]+==|ERROR|panicked|deadly signal|timeout|out-of-memory|Test unit written' \
            "$TMP/$t.log" | head -20 | sed 's/^/   | /' || true
        for a in $(find "artifacts/$t" -type f -newer "$TMP/build.log"); do
            echo "   artifact: fuzz/$a"
            echo "   reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s $SANITIZER $t $a)"
            echo "   minimise:  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s $SANITIZER $t $a)"
        done
        cp "$TMP/$t.log" "artifacts/$t/last-run.log"
    else
        verdict="no crash"
    fi
    RES[$t]=$(printf '%-12s %12s %10s %-22s %s' "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" "$verdict")
done

echo
echo "sanitizer: $SANITIZER   seconds/target: $FUZZ_SECONDS"
printf '%-12s %12s %10s %-22s %s\n' target executions execs/s coverage result
for t in $TARGETS; do echo "${RES[$t]}"; done
exit "$crashed"
