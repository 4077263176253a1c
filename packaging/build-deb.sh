#!/usr/bin/env bash
# build-deb.sh: the Debian package of stinger, in target/debian/. Builds the release binary (unless
# --no-build), generates what the package ships besides it into target/packaging/ — the config
# (src/data/default.toml with the service's store and listen address), the man page and the bash,
# zsh and fish completions, all from the binary itself (`stinger generate`) — then runs cargo deb.
# Needs cargo-deb: cargo install cargo-deb --locked --version 3.8.0
#   packaging/build-deb.sh                                  release build, then package
#   packaging/build-deb.sh --no-build --profile dev --strip --fast   package target/debug/stinger
# Other arguments go to cargo deb. Prints the .deb's path as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
deb_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0; shift ;;
        --profile) profile=${2:?--profile needs a name}; shift 2 ;;
        --profile=*) profile=${1#--profile=}; shift ;;
        *) deb_args+=("$1"); shift ;;
    esac
done
dir=$profile
[ "$profile" = dev ] && dir=debug
target=${CARGO_TARGET_DIR:-target}

if ! cargo deb --version >/dev/null 2>&1; then
    echo "build-deb.sh: cargo-deb is missing; install it with: cargo install cargo-deb --locked --version 3.8.0" >&2
    exit 1
fi
if [ "$build" = 1 ]; then
    cargo build --locked --profile "$profile" --bin stinger >&2
fi
bin=$target/$dir/stinger
if [ ! -x "$bin" ]; then
    echo "build-deb.sh: $bin is missing; build it first (cargo build --profile $profile) or drop --no-build" >&2
    exit 1
fi

out=target/packaging
rm -rf "$out"
mkdir -p "$out"

# The packaged config: the embedded default with its header replaced, the store in the service's
# state directory and the listener on loopback (a fresh install starts the service; what it serves
# maps the attack surface, so the admin opens it to a management address on purpose).
default=src/data/default.toml
{
    echo "# /etc/stinger/stinger.toml: the configuration of stinger.service (a conffile: your edits"
    echo "# survive upgrades). Generated from the embedded default (\`stinger check-config\` without"
    echo "# --config.file prints it), with the store under /var/lib/stinger and the listener on"
    echo "# loopback: set web.listen_address to a management address for a remote Prometheus."
    echo "# After editing: stinger check-config --config.file /etc/stinger/stinger.toml"
    echo "# then: systemctl reload stinger (storage and web settings need a restart)."
    awk 'f || /^$/ {f=1; print}' "$default"
} | sed -e 's|^path = "\./stinger-data"$|path = "/var/lib/stinger"|' \
        -e 's|^listen_address = "0\.0\.0\.0:7864"$|listen_address = "127.0.0.1:7864"   # the agent on loopback; e.g. "192.0.2.7:7864" for a remote Prometheus|' \
        >"$out/stinger.toml"
for want in '^path = "/var/lib/stinger"$' '^listen_address = "127\.0\.0\.1:7864"'; do
    if ! grep -q "$want" "$out/stinger.toml"; then
        echo "build-deb.sh: $default changed: no line matching $want after the rewrite; update this script" >&2
        exit 1
    fi
done

"$bin" generate man --out "$out" >/dev/null
for shell in bash zsh fish; do
    "$bin" generate completions "$shell" --out "$out" >/dev/null
done

# The binary is built (above, or by the caller); cargo deb only packages it.
cargo deb --no-build --profile "$profile" --output target/debian/ "${deb_args[@]}"
