#!/usr/bin/env bash
# Renders a comparison's report.html in headless Chromium to a PNG, to look at the report as a
# browser draws it: scripts/screenshot.sh results/<run> [OUT.png] [WIDTHxHEIGHT] [VIEW]
# VIEW is added to the report's address: '?plot=throughput-vs-connections&hide=blocking,event%20loops'
# shows that plot alone, with those models and families hidden.
# Needs Debian's chromium (apt-get install chromium); it reaches no network.
set -euo pipefail
dir=${1:?usage: scripts/screenshot.sh RESULTS_DIR [OUT.png] [WIDTHxHEIGHT] [VIEW]}
out=${2:-$dir/report.png}
size=${3:-1400x3000}
view=${4:-}
[ -f "$dir/report.html" ] || { echo "screenshot: no report.html in $dir" >&2; exit 2; }
command -v chromium >/dev/null || { echo "screenshot: chromium not found (apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars --window-size="${size/x/,}" \
    --screenshot="$(realpath -m "$out")" "file://$(realpath "$dir")/report.html$view" 2>/dev/null
echo "screenshot: $out"
