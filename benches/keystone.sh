# keystone.sh - sourced by the benchmarks that need a real Keystone (openstack.sh, detect.sh):
# start_keystone DIR TTL starts ../shared/keystone/start-keystone.sh on a free loopback port with
# its state in DIR, and sets KEYSTONE_URL, ADMIN_TOKEN and SERVER_PID (the caller kills it).
# Needs REPO and SHARED set.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_keystone() {
    local dir=$1 ttl=$2 port pipopts="" out
    port=$(free_port)
    rm -rf "$dir/ks.db" "$dir/fk" "$dir/ck" "$dir/etc"
    [ -f "$SHARED/keystone/constraints.txt" ] && pipopts="-c $SHARED/keystone/constraints.txt"
    out=$(D=$dir PORT=$port TTL=$ttl PIPOPTS=$pipopts bash "$SHARED/keystone/start-keystone.sh")
    eval "$(echo "$out" | tr ' ' '\n' | grep -E '^(KEYSTONE_URL|ADMIN_TOKEN|SERVER_PID)=')"
}
