#!/usr/bin/env bash
# `jwtgate verify` throughput on a generated 100k-token RS256 file, with 1 and 2
# worker threads, side by side in one run. Prints tokens/s (median of 3 runs each)
# and the scaling ratio.
#   scripts/bench-verify.sh [TOKENS] [ALG]     (defaults: 100000 RS256)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-100000}"
alg="${2:-RS256}"
cargo build --locked --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/jwtgate"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$bin" keygen --alg "$alg" --kid bench --out "$work" >/dev/null
key="$work/bench.pk8.pem"; [ -f "$key" ] || key="$work/bench.jwks.json"
echo "minting $count $alg tokens..." >&2
"$bin" mint --key "$key" --alg "$alg" --kid bench --iss https://idp.example/ --aud api \
  --sub user --ttl 86400 --count "$count" > "$work/tokens"

rate() { # $1 = threads; prints tokens/s of one run
  "$bin" verify --jwks "$work/bench.jwks.json" --issuer https://idp.example/ --audience api \
    --threads "$1" --input "$work/tokens" --no-progress 2>&1 >/dev/null \
    | sed -n 's/.*(\([0-9]*\) tokens\/s.*/\1/p'
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# Alternate 1- and 2-thread runs so that drift in machine speed hits both alike.
ones=""; twos=""
for _ in 1 2 3 4 5; do
  ones="$ones $(rate 1)"
  twos="$twos $(rate 2)"
done
one=$(echo $ones | tr ' ' '\n' | median)
two=$(echo $twos | tr ' ' '\n' | median)
echo "1 thread runs (tokens/s):$ones"
echo "2 thread runs (tokens/s):$twos"
echo "verify $count $alg tokens: median 1 thread $one tokens/s, 2 threads $two tokens/s"
python3 -c "print(f'scaling 2 threads / 1 thread: {$two/$one:.2f}x')"
