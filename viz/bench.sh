#!/usr/bin/env bash
# Frame times of aquatwin-view at 1280x720 on whatever renderer this machine has (here: Mesa's
# lavapipe, software Vulkan): Net1 (the fixed cost of a frame), Net6, BWSN_Network_1 and a
# 100,556-link synthetic grid, headless, then Net6 in a window under Xvfb.
#   cargo build --release -p aquatwin -p viz && viz/bench.sh [FRAMES]
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${1:-30}
view=target/release/aquatwin-view
grid=$(mktemp -d)/grid100k.inp
target/release/aquatwin generate grid --junctions 50500 --out "$grid" >/dev/null
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for network in ../shared/networks/Net1.inp ../shared/networks/Net6.inp \
    ../shared/networks/BWSN_Network_1.inp "$grid"; do
    echo "== $(basename "$network") headless"
    RUST_LOG=error "$view" "$network" --headless --bench "$frames" 2>&1 | grep -E "bench|orbit"
done
if command -v xvfb-run >/dev/null; then
    echo "== Net6.inp window (xvfb-run)"
    RUST_LOG=error xvfb-run -a -s "-screen 0 1280x720x24" "$view" ../shared/networks/Net6.inp \
        --bench "$frames" 2>&1 | grep -E "bench|orbit"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$grid"
