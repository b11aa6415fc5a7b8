#!/usr/bin/env bash
# A lab of hosts on one machine, for `echobench compare --agents`: a server namespace and N
# agent namespaces, each with one veth to a bridge that lives in a namespace of its own, on a
# private /24 that exists only inside them (nothing is added to this machine's own network).
#
#   scripts/netns-lab.sh up N     # make it (again, if it differs); idempotent
#   scripts/netns-lab.sh down     # remove it; idempotent
#   scripts/netns-lab.sh status   # what is up, with the MTU
#
# Then, for example:
#   echobench compare --agents LAB-agent1,LAB-agent2 --launcher 'ip netns exec {host}' \
#       --server-host LAB-server --server-addr 10.77.0.1:0
#
# LAB (default eblab) names the lab, LAB_NET (default 10.77.0) its /24, LAB_MTU (default 1500)
# the MTU of every link; the server is .1, agent i is .(10+i). What `up` made is recorded in
# /run/echobench-lab/LAB (N, the addresses and the MTU) and printed. Needs root and iproute2.
set -euo pipefail

LAB=${LAB:-eblab}
NET=${LAB_NET:-10.77.0}
MTU=${LAB_MTU:-1500}
STATE_DIR=${LAB_STATE_DIR:-/run/echobench-lab}
STATE="$STATE_DIR/$LAB"

die() { echo "netns-lab: $*" >&2; exit 1; }

command -v ip >/dev/null || die "no \`ip\` (install iproute2)"

namespaces() { ip netns list | awk '{print $1}' | grep -E "^${LAB}-(br|server|agent[0-9]+)\$" || true; }

down() {
    for ns in $(namespaces); do
        ip netns del "$ns"
    done
    rm -f "$STATE"
}

# Joins namespace $1 to the bridge as $NET.$2, through a veth whose bridge end is named $3.
join() {
    local ns=$1 host=$2 port=$3
    local tmp="lab${port}_$((RANDOM % 1000))"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "${tmp}a" mtu "$MTU" type veth peer name "${tmp}b" mtu "$MTU"
    ip link set "${tmp}a" netns "$ns"
    ip link set "${tmp}b" netns "$LAB-br"
    ip -n "$ns" link set "${tmp}a" name eth0
    ip -n "$LAB-br" link set "${tmp}b" name "$port"
    ip -n "$LAB-br" link set "$port" master br0 up
    ip -n "$ns" addr add "$NET.$host/24" dev eth0
    ip -n "$ns" link set eth0 up
}

record() {
    local n=$1
    mkdir -p "$STATE_DIR"
    {
        echo "lab=$LAB"
        echo "agents=$n"
        echo "net=$NET.0/24"
        echo "mtu=$MTU"
        echo "server=$LAB-server $NET.1"
        for i in $(seq 1 "$n"); do echo "agent$i=$LAB-agent$i $NET.$((10 + i))"; done
    } >"$STATE"
}

up() {
    local n=$1
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 200)) || die "up N: N must be from 1 to 200, not '$n'"
    if [[ -f $STATE ]] && grep -qx "agents=$n" "$STATE" && grep -qx "mtu=$MTU" "$STATE" &&
        [[ $(namespaces | wc -l) -eq $((n + 2)) ]]; then
        cat "$STATE"
        return
    fi
    down
    trap 'down; die "could not make the lab (root needed?)"' ERR
    ip netns add "$LAB-br"
    ip -n "$LAB-br" link set lo up
    ip -n "$LAB-br" link add br0 mtu "$MTU" type bridge
    ip -n "$LAB-br" link set br0 up
    join "$LAB-server" 1 s0
    for i in $(seq 1 "$n"); do
        join "$LAB-agent$i" $((10 + i)) "a$i"
    done
    trap - ERR
    record "$n"
    cat "$STATE"
}

case ${1:-} in
    up) up "${2:?up N: how many agent namespaces}" ;;
    down) down ;;
    status) if [[ -f $STATE ]]; then cat "$STATE"; else echo "netns-lab: $LAB is down"; fi ;;
    *) die "usage: netns-lab.sh up N | down | status" ;;
esac
