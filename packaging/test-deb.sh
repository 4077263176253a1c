#!/usr/bin/env bash
# test-deb.sh: builds the Debian package from the binary the test build already left in
# target/debug (no release build: RocksDB's C++ alone takes ~15 minutes on 2 cores), stripped and
# lightly compressed, and checks what a site would install: the file list and modes, the control
# fields, the conffiles, the maintainer scripts, lintian, the extracted tree (the installed binary
# validates the installed config; man page and completions are what they claim), and the systemd
# unit with and without each example drop-in (systemd-analyze verify); then installs it for real into
# a throwaway root (an overlay of / in a chroot) and purges it. .ci/run calls it after the tests.
# Needs root, cargo-deb, lintian, systemd (for systemd-analyze), dpkg-dev.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "test-deb: ok: $*"; }
bad() { failed=$((failed + 1)); echo "test-deb: FAIL: $*" >&2; }
check() { # check DESCRIPTION COMMAND...: one check, its output shown only when it fails
    local what=$1 log
    shift
    if log=$("$@" 2>&1); then ok "$what"; else bad "$what"; printf '%s\n' "$log" | tail -40 >&2; fi
}

tmp=$(mktemp -d)
# --one-file-system: never into a mount the install test below failed to undo.
trap 'rm -rf --one-file-system "$tmp"' EXIT

deb=$(packaging/build-deb.sh --no-build --profile dev --strip --fast | tail -1)
[ -f "$deb" ] || { echo "test-deb: build-deb.sh printed no .deb path ($deb)" >&2; exit 1; }
echo "test-deb: $deb ($(du -h "$deb" | cut -f1))"

# --- contents: every file a site needs, with the owner and mode it needs ---
dpkg-deb --contents "$deb" | awk '{print $1, $2, $6}' | sed 's| \./| /|' >"$tmp/contents"
has() { # has MODE PATH: the package holds PATH owned by root (cargo-deb writes 0/0) with that mode
    grep -qxF -e "$1 0/0 $2" -e "$1 root/root $2" "$tmp/contents"
}
expected=(
    "-rwxr-xr-x /usr/bin/stinger"
    "-rw-r--r-- /etc/stinger/stinger.toml"
    "-rw-r--r-- /etc/default/stinger"
    "-rw-r--r-- /usr/lib/systemd/system/stinger.service"
    "-rw-r--r-- /usr/share/man/man1/stinger.1.gz"
    "-rw-r--r-- /usr/share/bash-completion/completions/stinger"
    "-rw-r--r-- /usr/share/zsh/vendor-completions/_stinger"
    "-rw-r--r-- /usr/share/fish/vendor_completions.d/stinger.fish"
    "-rw-r--r-- /usr/share/doc/stinger/copyright"
    "-rw-r--r-- /usr/share/doc/stinger/changelog.Debian.gz"
    "-rw-r--r-- /usr/share/doc/stinger/README.md"
    "-rw-r--r-- /usr/share/doc/stinger/examples/systemd/nmap-raw.conf"
    "-rw-r--r-- /usr/share/doc/stinger/examples/systemd/namespaces.conf"
    "-rw-r--r-- /usr/share/lintian/overrides/stinger"
)
for f in alerts/* dashboards/*; do expected+=("-rw-r--r-- /usr/share/stinger/$f"); done
missing=()
for e in "${expected[@]}"; do has "${e%% *}" "${e#* }" || missing+=("$e"); done
if [ ${#missing[@]} = 0 ]; then
    ok "contents: ${#expected[@]} files, owned by root, with their modes"
else
    bad "contents: missing or wrong mode: ${missing[*]}"
    cat "$tmp/contents" >&2
fi
# Nothing but directories and the expected files (no stray build output).
extra=$(grep -v '^d' "$tmp/contents" | awk '{print $3}' | sort | comm -23 - <(printf '%s\n' "${expected[@]}" | awk '{print $2}' | sort))
check "contents: no unexpected files" test -z "$extra"
[ -z "$extra" ] || echo "$extra" >&2

# --- control fields ---
ctl() { dpkg-deb --field "$deb" "$1"; }
check "control: Package stinger, Architecture $(dpkg --print-architecture)" \
    test "$(ctl Package) $(ctl Architecture)" = "stinger $(dpkg --print-architecture)"
check "control: Depends on libc6 and adduser" bash -c '[[ "$1" == *libc6* && "$1" == *adduser* ]]' _ "$(ctl Depends)"
check "control: Recommends nmap" bash -c '[[ "$1" == *nmap* ]]' _ "$(ctl Recommends)"

# --- conffiles and maintainer scripts ---
dpkg-deb --control "$deb" "$tmp/control"
check "conffiles: exactly /etc/default/stinger and /etc/stinger/stinger.toml" \
    test "$(sort "$tmp/control/conffiles" | tr '\n' ' ')" = "/etc/default/stinger /etc/stinger/stinger.toml "
for s in postinst postrm prerm; do
    check "$s: present, executable, valid sh, #DEBHELPER# expanded" \
        bash -c '[ -x "$1" ] && sh -n "$1" && ! grep -q "#DEBHELPER#" "$1"' _ "$tmp/control/$s"
done
check "postinst: creates the stinger system user and /var/lib/stinger owned by it" bash -c '
    grep -q "adduser --quiet --system --group --home /var/lib/stinger --no-create-home stinger" "$1" &&
    grep -q "install -d -o stinger -g stinger -m 0750 /var/lib/stinger" "$1"' _ "$tmp/control/postinst"
check "postinst: enables and starts stinger.service" bash -c '
    grep -q "deb-systemd-helper enable stinger.service" "$1" && grep -q "_dh_action=start" "$1" &&
    grep -q "deb-systemd-invoke \$_dh_action stinger.service" "$1"' \
    _ "$tmp/control/postinst"
check "postrm: purge deletes /var/lib/stinger and the unit's state" bash -c '
    sed -n "/^ *purge)/,/;;/p" "$1" | grep -q "rm -rf /var/lib/stinger" &&
    grep -q "deb-systemd-helper purge stinger.service" "$1"' _ "$tmp/control/postrm"

# --- lintian: clean, or each override explained in packaging/lintian-overrides ---
check "lintian: no error or warning (overrides: packaging/lintian-overrides)" \
    lintian --fail-on error,warning --tag-display-limit 0 "$deb"

# --- the installed tree ---
root=$tmp/root
dpkg-deb --extract "$deb" "$root"
check "stinger --version runs from the package" "$root/usr/bin/stinger" --version
"$root/usr/bin/stinger" check-config --config.file "$root/etc/stinger/stinger.toml" \
    >"$tmp/effective.toml" 2>"$tmp/check.err" && rc=0 || rc=$?
check "check-config accepts the installed /etc/stinger/stinger.toml (exit $rc)" test "$rc" = 0
[ "$rc" = 0 ] || cat "$tmp/check.err" >&2
check "installed config: store in /var/lib/stinger, listener on 127.0.0.1:7864" bash -c '
    grep -qx "path = \"/var/lib/stinger\"" "$1" && grep -qx "listen_address = \"127.0.0.1:7864\"" "$1"' \
    _ "$tmp/effective.toml"
check "installed config: everything else as the embedded default" bash -c '
    diff <("$1" check-config 2>/dev/null | grep -v -e "^path = " -e "^listen_address = ") \
         <(grep -v -e "^path = " -e "^listen_address = " "$2")' _ "$root/usr/bin/stinger" "$tmp/effective.toml"
check "man page: stinger(1) documents the flags, not the hidden generate subcommand" bash -c '
    zcat "$1" >"$2" && grep -q "^\.TH stinger 1" "$2" && grep -q "web\\\\\?\.listen\\\\-address" "$2" &&
    grep -q "check\\\\-config" "$2" && ! grep -q "generate" "$2"' _ "$root/usr/share/man/man1/stinger.1.gz" "$tmp/stinger.1"
completions=(bash-completion/completions/stinger zsh/vendor-completions/_stinger fish/vendor_completions.d/stinger.fish)
for c in "${completions[@]}"; do
    check "completion $c: the flags and subcommands, not the hidden generate" bash -c '
        for w in config.file web.listen-address scan.tcp.concurrency check-config scan target; do
            grep -qw -- "$w" "$1" || { echo "missing: $w"; exit 1; }
        done
        ! grep -n generate "$1"' _ "$root/usr/share/$c"
done
check "bash completion: valid bash" bash -n "$root/usr/share/${completions[0]}"
check "zsh completion: #compdef stinger" grep -q "^#compdef stinger" "$root/usr/share/${completions[1]}"


# --- the systemd unit, alone and with each example drop-in ---
unit=$root/usr/lib/systemd/system/stinger.service
check "unit: the hardening and scanning settings" bash -c '
    for l in User=stinger "ExecStart=/usr/bin/stinger --config.file /etc/stinger/stinger.toml \$ARGS" \
        ProtectSystem=strict ProtectHome=true NoNewPrivileges=true PrivateTmp=true \
        ReadWritePaths=/var/lib/stinger KillMode=control-group Restart=on-failure \
        "ExecReload=/bin/kill -HUP \$MAINPID" LimitNOFILE=524288 AmbientCapabilities= CapabilityBoundingSet=; do
        grep -qxF "$l" "$1" || { echo "missing: $l"; exit 1; }
    done' _ "$unit"
# systemd-analyze verify --root needs no running systemd, but it loads the unit's dependencies
# (sysinit.target, ...) and checks that the Exec* binaries exist under the root: the root is the
# extracted package plus this machine's units and /bin/kill, as on a machine that installed it.
mkdir -p "$root/bin"
cp -n /usr/lib/systemd/system/*.target /usr/lib/systemd/system/*.slice "$root/usr/lib/systemd/system/"
cp /bin/kill "$root/bin/kill"
verify() { # verify [DROPIN]: systemd-analyze verify stinger.service in that root
    rm -rf "$root/etc/systemd/system/stinger.service.d"
    if [ $# = 1 ]; then
        mkdir -p "$root/etc/systemd/system/stinger.service.d"
        cp "$1" "$root/etc/systemd/system/stinger.service.d/"
    fi
    # Any message is a finding: verify exits 0 on some warnings.
    local out
    out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no --root="$root" stinger.service 2>&1) &&
        [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}
check "systemd-analyze verify stinger.service" verify
for d in "$root"/usr/share/doc/stinger/examples/systemd/*.conf; do
    check "systemd-analyze verify stinger.service + $(basename "$d")" verify "$d"
done

# --- a real install, into a throwaway root: an overlay of this machine's / on a tmpfs ---
# dpkg -i there runs the maintainer scripts as on a site's machine (the user, /var/lib/stinger,
# the unit enabled; policy-rc.d keeps the service from starting), then the installed agent checks
# the installed config as the stinger user, and a purge removes what it must. Nothing of it
# reaches this machine: the overlay and the tmpfs are unmounted at the end.
install_test() (
    # A subshell: its EXIT trap unmounts what it mounted, whatever fails.
    t=$tmp/overlay
    r=$t/root
    trap 'umount -R "$r" 2>/dev/null || umount -R -l "$r"; umount "$t" 2>/dev/null || umount -l "$t"' EXIT
    # (set -e does not hold here: check runs this inside a condition.)
    mkdir -p "$t" && mount -t tmpfs tmpfs "$t" && mkdir "$t/up" "$t/work" "$r" &&
        mount -t overlay overlay -o "lowerdir=/,upperdir=$t/up,workdir=$t/work" "$r" &&
        mount -t proc proc "$r/proc" && mount -t tmpfs tmpfs "$r/run" && mount -t tmpfs tmpfs "$r/tmp" &&
        cp "$deb" "$r/tmp/stinger.deb" &&
        printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d" && chmod +x "$r/usr/sbin/policy-rc.d" ||
        exit 1
    chroot "$r" sh -euc '
        dpkg -i /tmp/stinger.deb
        id stinger
        test "$(stat -c "%U:%G %a" /var/lib/stinger)" = "stinger:stinger 750"
        test -L /etc/systemd/system/multi-user.target.wants/stinger.service
        runuser -u stinger -- stinger check-config --config.file /etc/stinger/stinger.toml >/dev/null
        dpkg --purge stinger
        test ! -e /var/lib/stinger && test ! -e /etc/stinger/stinger.toml && ! command -v stinger
    '
)
if [ "$(id -u)" = 0 ]; then
    check "install: dpkg -i in a throwaway root (user, store, unit), check-config as stinger, purge" install_test
    check "install: this machine has no stinger user or package afterwards" bash -c '
        ! id stinger 2>/dev/null && ! dpkg -s stinger >/dev/null 2>&1'
else
    bad "install: needs root (mount, chroot) to install into a throwaway root"
fi

echo "test-deb: $passed passed, $failed failed"
[ "$failed" = 0 ]
