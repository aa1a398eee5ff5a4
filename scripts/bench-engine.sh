#!/usr/bin/env bash
# Engine throughput per algorithm, side by side in one run, pinned to one CPU:
# raw ring vs jwtgate's full verification vs the jsonwebtoken crate (aws-lc-rs).
# Prints each contender's median, jwtgate's ops/s, and the two throughput ratios,
# measured interleaved (alternating ~5 ms blocks) so machine drift cancels out.
#   scripts/bench-engine.sh [CPU]        (default CPU 0)
set -euo pipefail
cd "$(dirname "$0")/.."
cpu="${1:-0}"
target="${CARGO_TARGET_DIR:-target}"

cargo bench --locked --bench engine --no-run >&2
# Criterion's per-contender reports go to stderr; the interleaved table (the
# figures to quote: medians and ratios measured side by side) to stdout.
taskset -c "$cpu" cargo bench --locked --bench engine -- --noplot 2>&1 | sed -n '/^interleaved/,$p'
