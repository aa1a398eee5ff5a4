#!/usr/bin/env bash
# Engine throughput per algorithm, side by side in one run, pinned to one CPU:
# raw ring vs jwtgate's full verification vs the jsonwebtoken crate (aws-lc-rs).
# Prints criterion's median per contender, jwtgate's ops/s, and the two ratios
# (throughput of jwtgate relative to ring and to jsonwebtoken).
#   scripts/bench-engine.sh [CPU]        (default CPU 0)
set -euo pipefail
cd "$(dirname "$0")/.."
cpu="${1:-0}"
target="${CARGO_TARGET_DIR:-target}"

cargo bench --locked --bench engine --no-run >&2
taskset -c "$cpu" cargo bench --locked --bench engine -- --noplot >&2

python3 - "$target/criterion" <<'PY'
import json, os, sys
root = sys.argv[1]
def median(alg, who):
    path = os.path.join(root, alg, who, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]
rows = []
print(f"{'alg':<6} {'ring':>10} {'jwtgate':>10} {'jsonwebtoken':>13} {'jwtgate ops/s':>14} {'vs ring':>8} {'vs jsonwebtoken':>16}")
for alg in ["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"]:
    ring, ours, theirs = (median(alg, who) for who in ("ring", "jwtgate", "jsonwebtoken"))
    fmt = lambda ns: f"{ns/1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"
    print(f"{alg:<6} {fmt(ring):>10} {fmt(ours):>10} {fmt(theirs):>13} {1e9/ours:>14,.0f} {ring/ours:>7.3f}x {theirs/ours:>15.2f}x")
print("(medians of criterion samples; 'vs' columns are throughput ratios: above 1 means jwtgate is faster)")
PY
