#!/usr/bin/env bash
# Soaks every concurrent model at once: `echobench soak` with the arguments given, built in
# release. e.g. scripts/soak.sh --minutes 30
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet -- soak "$@"
