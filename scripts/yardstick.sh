#!/usr/bin/env bash
# Measures echo-server's event-loop models against the C yardsticks in benches/yardstick/:
# each server pinned to one CPU, the minimal C epoll client on another, closed loop, 64 B.
# Rounds interleave the servers so that each round compares them side by side; it prints the
# median throughput of each and the median of the per-round ratios to the C server.
#
# Usage: scripts/yardstick.sh [CONNS] [SECONDS] [ROUNDS] [MODELS...]
#   defaults: 64 5 5 mio tokio       env: SERVER_CPU=0 CLIENT_CPU=1
set -euo pipefail
cd "$(dirname "$0")/.."

conns=${1:-64}
seconds=${2:-5}
rounds=${3:-5}
shift $(($# < 3 ? $# : 3))
models=("${@:-mio}")
[ $# -gt 0 ] || models=(mio tokio)
server_cpu=${SERVER_CPU:-0}
client_cpu=${CLIENT_CPU:-1}

out=target/yardstick
mkdir -p "$out"
cargo build --release --quiet -p echo-server
cc -O2 -o "$out/epoll_server" benches/yardstick/epoll_server.c
cc -O2 -o "$out/epoll_client" benches/yardstick/epoll_client.c

# The server's CPU time so far (user + system, all threads), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Runs the client against the server command "$@"; prints "msgs_per_s p50_us server_busy",
# server_busy being the share of its one CPU the server used during the run.
measure() {
    coproc server { exec taskset -c "$server_cpu" "$@"; }
    local pid=$server_PID line
    read -r line <&"${server[0]}"
    local port=${line##*:} before after result
    before=$(cpu_ticks "$pid")
    result=$(taskset -c "$client_cpu" "$out/epoll_client" "$port" "$conns" "$seconds")
    after=$(cpu_ticks "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    awk -v r="$result" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$seconds" \
        'BEGIN {gsub(/[a-z_0-9]+=/, "", r); printf "%s %.3f\n", r, t / hz / s}'
}

declare -A results
names=(c-epoll "${models[@]}")
for round in $(seq "$rounds"); do
    for name in "${names[@]}"; do
        if [ "$name" = c-epoll ]; then
            line=$(measure "$out/epoll_server" 0)
        else
            line=$(measure target/release/echo-server "$name" --addr 127.0.0.1:0)
        fi
        echo "round $round $name: msgs/s p50_us server_busy = $line"
        results[$name]+="$line "
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "connections=$conns size=64 seconds=$seconds rounds=$rounds server_cpu=$server_cpu client_cpu=$client_cpu"
# Field k (0: msgs/s, 1: p50, 2: server busy) of every round of the named server.
field() { read -ra runs <<<"${results[$1]}"; for ((i = $2; i < ${#runs[@]}; i += 3)); do echo -n "${runs[i]} "; done; }
read -ra c_msgs <<<"$(field c-epoll 0)"
for name in "${names[@]}"; do
    read -ra msgs <<<"$(field "$name" 0)"
    ratio=$(for i in "${!msgs[@]}"; do
        awk -v a="${msgs[i]}" -v b="${c_msgs[i]}" 'BEGIN {printf "%.4f ", a / b}'
    done | median)
    cpu_per_msg=$(for i in "${!msgs[@]}"; do
        read -ra busy <<<"$(field "$name" 2)"
        awk -v b="${busy[i]}" -v m="${msgs[i]}" 'BEGIN {printf "%.4f ", b / m * 1e6}'
    done | median)
    printf '%-10s median %8.0f msgs/s  ratio to c-epoll %.3f  p50 %7.1f us  server busy %.2f  server CPU %.2f us/msg\n' \
        "$name" "$(field "$name" 0 | median)" "$ratio" "$(field "$name" 1 | median)" \
        "$(field "$name" 2 | median)" "$cpu_per_msg"
done
echo "(ratio: median over rounds of throughput / c-epoll's in the same round; server busy:"
echo " share of the server's CPU used; below ~0.95 the client, not the server, was the limit)"
