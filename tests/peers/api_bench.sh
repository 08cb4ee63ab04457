#!/usr/bin/env bash
# The API benchmark of issue 6: latency (p50/p99) and requests/s of reading queries and alert
# lists, measured with `wrk`, while `aquatwin fleet` feeds the same `aquatwin serve` over HTTP.
#
#   tests/peers/api_bench.sh [SECONDS]        # default 20 s per run; needs wrk, curl
#
# Environment: AQUATWIN (binary; default target/release/aquatwin), CONNECTIONS (wrk, 32),
# THREADS (wrk, 1), SESSIONS (operators logged in, 32: requests rotate over their tokens, as
# many screens would), FLEET_RATE (readings/s the fleet sends meanwhile, 1000: every one of the
# 1,000 sensors once a second), FLEET_BATCH (readings per ingest request, 100).
# Prints the wrk report of each run, then one summary line per run.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${AQUATWIN:-$root/target/release/aquatwin}
seconds=${1:-20}
connections=${CONNECTIONS:-32}
threads=${THREADS:-1}
sessions=${SESSIONS:-32}
fleet_rate=${FLEET_RATE:-1000}
fleet_batch=${FLEET_BATCH:-100}
warmup=15
password=password-of-the-bench-operator

command -v wrk >/dev/null || { echo "api_bench: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
[ -x "$bin" ] || { echo "api_bench: no $bin (cargo build --release)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" fleet --provision "$work/tw" --network "$root/hydraulics/networks/Net3.inp" \
    --sensors 1000 --connections 4 >/dev/null
# Port 0 everywhere: serve picks free ports and prints them.
sed -i -E 's/^((udp_)?listen = "127\.0\.0\.1:)[0-9]+"/\10"/' "$work/tw/aquatwin.toml"
# One operator per session: an access token names its user and second, so each needs its own
# user to be a distinct caller of the rate limiter.
for i in $(seq "$sessions"); do
    AQUATWIN_PASSWORD=$password "$bin" user --data "$work/tw/data" create --name "operator-$i" \
        --role operator --municipality fleet >/dev/null
done

AQUATWIN_JWT_SECRET=jwt-secret-of-the-api-benchmark-0123456789 RUST_LOG=warn \
    "$bin" serve --config "$work/tw/aquatwin.toml" >"$work/serve.out" 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 100); do
    grep -q "listening" "$work/serve.out" 2>/dev/null && break
    sleep 0.1
done
http=$(grep -o 'http=[^ ]*' "$work/serve.out" | cut -d= -f2)
[ -n "$http" ] || { cat "$work/serve.log" >&2; exit 1; }

"$bin" fleet --config "$work/tw/fleet.toml" --target "$http" --transport http \
    --batch "$fleet_batch" --rate "$fleet_rate" --connections 4 \
    --duration $((warmup + 2 * (seconds + 3))) --json >"$work/fleet.json" 2>"$work/fleet.log" &
pids+=($!)

tokens=()
for i in $(seq "$sessions"); do
    tokens+=("$(curl -sf -H 'Content-Type: application/json' \
        -d "{\"username\":\"operator-$i\",\"password\":\"$password\"}" \
        "http://$http/api/v1/auth/login" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')")
done
distinct=$(printf '%s\n' "${tokens[@]}" | sort -u | wc -l)

sleep "$warmup"
# Reading queries: every sensor in turn, the last 10 s of readings (about 10 each).
now_ms=$(($(date +%s%3N)))
base=/api/v1/municipalities/fleet
mapfile -t sensors < <(sed -n -E 's/^id = "(.*)"/\1/p' "$work/tw/sensors.toml")

lua_list() { printf '"%s",' "$@"; }
write_script() { # FILE PATH...
    local file=$1
    shift
    cat >"$file" <<EOF
local tokens = {$(lua_list "${tokens[@]}")}
local paths = {$(lua_list "$@")}
local i = 0
request = function()
    i = i + 1
    return wrk.format("GET", paths[i % #paths + 1],
        {["Authorization"] = "Bearer " .. tokens[i % #tokens + 1]})
end
EOF
}
reading_paths=()
for sensor in "${sensors[@]}"; do
    reading_paths+=("$base/sensors/$sensor/readings?from=$((now_ms - 10000))&to=$now_ms")
done
write_script "$work/readings.lua" "${reading_paths[@]}"
write_script "$work/alerts.lua" "$base/alerts"

echo "serve http=$http; $distinct distinct tokens; fleet: $fleet_rate readings/s in batches of $fleet_batch"
echo "sample answers: readings $(curl -s -H "Authorization: Bearer ${tokens[0]}" \
    "http://$http${reading_paths[0]}" | wc -c) bytes, alerts $(curl -s \
    -H "Authorization: Bearer ${tokens[0]}" "http://$http$base/alerts" | wc -c) bytes"
summary=()
for run in readings alerts; do
    echo "== $run: wrk -t$threads -c$connections -d${seconds}s --latency"
    wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$work/$run.lua" \
        "http://$http" | tee "$work/$run.txt"
    summary+=("$run: $(awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2}
        /Non-2xx/ {bad=$NF} END {printf "%s req/s, p50 %s, p99 %s, non-2xx %d", rps, p50, p99, bad}' \
        "$work/$run.txt")")
done
echo "== fleet (meanwhile; its report when it ends)"
wait "${pids[1]}" || true
cat "$work/fleet.json" "$work/fleet.log"
echo "== summary"
printf '%s\n' "${summary[@]}"
