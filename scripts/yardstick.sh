#!/usr/bin/env bash
# Measures echo-server's models and loadgen against the C yardsticks in benches/yardstick/:
# a minimal C epoll echo server and a minimal C epoll client. Each server is pinned to one
# CPU and each client to another; closed loop, 64-byte messages. Rounds interleave every
# server/client pair so that each round compares them side by side; it prints the median
# throughput of each pair and the median of its per-round ratios to c-epoll/c-client.
#
# Usage: scripts/yardstick.sh [CONNS] [SECONDS] [ROUNDS] [MODELS...]
#   defaults: 64 5 5 mio tokio ("none": only the C server)
#   env: SERVER_CPU=0 CLIENT_CPU=1 CLIENTS="c-client" (add "loadgen" to measure loadgen)
set -euo pipefail
cd "$(dirname "$0")/.."

conns=${1:-64}
seconds=${2:-5}
rounds=${3:-5}
shift $(($# < 3 ? $# : 3))
models=(mio tokio)
[ $# -eq 0 ] || models=("$@")
[ "${models[*]}" != none ] || models=()
read -ra clients <<<"${CLIENTS:-c-client}"
server_cpu=${SERVER_CPU:-0}
client_cpu=${CLIENT_CPU:-1}

out=target/yardstick
mkdir -p "$out"
cargo build --release --quiet -p echo-server -p loadgen
cc -O2 -o "$out/epoll_server" benches/yardstick/epoll_server.c
cc -O2 -o "$out/epoll_client" benches/yardstick/epoll_client.c

# The server's CPU time so far (user + system, all threads), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Prints "msgs_per_s p50_us" for one run of client $1 against port $2.
drive() {
    case $1 in
        c-client) taskset -c "$client_cpu" "$out/epoll_client" "$2" "$conns" "$seconds" |
            sed 's/[a-z_0-9]*=//g' ;;
        loadgen) taskset -c "$client_cpu" target/release/loadgen --addr "127.0.0.1:$2" \
            --connections "$conns" --duration "${seconds}s" --warmup 0s --quiet --json "$out/loadgen.json"
            tr -d ' \n' <"$out/loadgen.json" |
                sed -E 's/.*"throughput_msgs_per_s":([0-9.]+).*"latency_us":\{[^}]*"p50":([0-9.]+).*/\1 \2\n/' ;;
    esac
}

# Starts server "$@" pinned, runs client $client against it, stops it; prints
# "msgs_per_s p50_us server_busy", server_busy being the share of its CPU the server used.
measure() {
    coproc server { exec taskset -c "$server_cpu" "$@"; }
    local pid=$server_PID line
    read -r line <&"${server[0]}"
    local port=${line##*:} before after result
    before=$(cpu_ticks "$pid")
    result=$(drive "$client" "$port")
    after=$(cpu_ticks "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$seconds" \
        'BEGIN {printf "%.3f\n", t / hz / s}' | sed "s/^/$result /"
}

declare -A results
pairs=()
for round in $(seq "$rounds"); do
    for name in c-epoll "${models[@]}"; do
        for client in "${clients[@]}"; do
            if [ "$name" = c-epoll ]; then
                line=$(measure "$out/epoll_server" 0)
            else
                line=$(measure target/release/echo-server "$name" --addr 127.0.0.1:0)
            fi
            pair="$name/$client"
            [ "$round" -gt 1 ] || pairs+=("$pair")
            echo "round $round $pair: msgs/s p50_us server_busy = $line"
            results[$pair]+="$line "
        done
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# Field k (0: msgs/s, 1: p50, 2: server busy) of every round of a pair.
field() { read -ra runs <<<"${results[$1]}"; for ((i = $2; i < ${#runs[@]}; i += 3)); do echo -n "${runs[i]} "; done; }
echo "connections=$conns size=64 seconds=$seconds rounds=$rounds server_cpu=$server_cpu client_cpu=$client_cpu"
read -ra base <<<"$(field "c-epoll/${clients[0]}" 0)"
for pair in "${pairs[@]}"; do
    read -ra msgs <<<"$(field "$pair" 0)"
    read -ra busy <<<"$(field "$pair" 2)"
    ratio=$(for i in "${!msgs[@]}"; do awk -v a="${msgs[i]}" -v b="${base[i]}" 'BEGIN {printf "%.4f ", a / b}'; done | median)
    per_msg=$(for i in "${!msgs[@]}"; do awk -v b="${busy[i]}" -v m="${msgs[i]}" 'BEGIN {printf "%.4f ", b / m * 1e6}'; done | median)
    printf '%-24s median %8.0f msgs/s  ratio %.3f  p50 %7.1f us  server busy %.2f  server CPU %.2f us/msg\n' \
        "$pair" "$(field "$pair" 0 | median)" "$ratio" "$(field "$pair" 1 | median)" \
        "$(field "$pair" 2 | median)" "$per_msg"
done
echo "(ratio: median over rounds of throughput / c-epoll/${clients[0]}'s in the same round;"
echo " server busy: share of the server's CPU used; below ~0.95 the client was the limit)"
