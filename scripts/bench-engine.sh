#!/usr/bin/env bash
# Engine throughput per algorithm, side by side in one run, pinned to one CPU:
# raw ring vs jwtgate's full verification vs the jsonwebtoken crate (aws-lc-rs)
# vs jwtgate through its verified-token cache (a hit). Prints each contender's
# median, jwtgate's ops/s, the throughput ratios, and the HS256 rate against
# its 1 M tokens/s target, measured interleaved (alternating ~5 ms blocks) so
# machine drift cancels out.
#   scripts/bench-engine.sh [CPU]        (default CPU 0)
#   environment: BENCH_ALGS=HS256,RS256 (a subset of the algorithms)
#   scripts/bench-engine.sh --callgrind ALG: instructions per verification of
#     ALG, by function (valgrind's callgrind, collecting inside
#     Verifier::verify only), to see what the fixed per-token cost is made of
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"

if [ "${1:-}" = "--callgrind" ]; then
  alg="${2:?usage: scripts/bench-engine.sh --callgrind ALG}"
  command -v valgrind >/dev/null || { echo "bench-engine: valgrind not found (Debian package valgrind)" >&2; exit 1; }
  bin="$(cargo bench --locked --bench engine --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "engine" and m.get("executable"):
        print(m["executable"])')"
  out="$(mktemp)"
  trap 'rm -f "$out"' EXIT
  BENCH_ALGS="$alg" valgrind --tool=callgrind --callgrind-out-file="$out" --compress-strings=no \
    --toggle-collect='*Verifier*verify*' "$bin" --bench --profile-time 1 "$alg/jwtgate\$" >/dev/null 2>&1
  total="$(callgrind_annotate --inclusive=yes "$out" | awk '/jwtgate_engine::verify::Verifier::verify \[/ && !seen {gsub(",", "", $1); print $1; seen = 1}')"
  verifications="$(grep -A1 -E '^cfn=.*Verifier::verify$' "$out" | awk -F'[= ]' '/^calls=/ {n += $2} END {print n}')"
  echo "$alg: $verifications verifications, $((total / verifications)) instructions each (inside Verifier::verify); by function, exclusive, per verification:"
  callgrind_annotate --inclusive=no --auto=no "$out" | python3 -c '
import collections, re, sys
n = int(sys.argv[1])
by_function = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)", line)
    if m and "PROGRAM TOTALS" not in line:
        # "file:function": inlined lines are credited to the function they were inlined into.
        where = re.match(r"(.*?\.(?:rs|S|c|h)):(.*)", m.group(2))
        function = where.group(2) if where else m.group(2)
        by_function[function] += int(m.group(1).replace(",", ""))
for function, ir in by_function.most_common(14):
    print("%8.0f  %s" % (ir / n, function[:110]))
' "$verifications"
  exit 0
fi
cpu="${1:-0}"

cargo bench --locked --bench engine --no-run >&2
# Criterion's per-contender reports go to stderr; the interleaved table (the
# figures to quote: medians and ratios measured side by side) to stdout.
taskset -c "$cpu" cargo bench --locked --bench engine -- --noplot 2>&1 | sed -n '/^interleaved/,$p'
