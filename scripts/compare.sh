#!/usr/bin/env bash
# Runs the whole comparison: `echobench compare` with the arguments given, built in release.
# e.g. scripts/compare.sh --profile full --out results/my-run
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --quiet -- compare "$@"
