#!/usr/bin/env bash
# Overload: what latency a shard's answers have when ES384 checks arrive faster
# than it verifies them, with load shedding (`--max-queue-delay`, default
# 150 ms) and without it (0), side by side in one run.
#
# One shard on CPU 0 verifies ES384 (P-384, the slowest signature jwtgate
# checks often) with distinct tokens: 20,000 of them, sent in turn, more than a
# shard's token cache holds, so every check is a verification. First wrk
# (closed loop, 64 connections, CPU 1) measures the shard's capacity C in
# checks per second. Then bench/open-loop (CPU 1) sends checks at a fixed rate,
# whatever the answers, as traffic from many independent clients arrives (wrk
# would slow down with the server and hide its queue): 0.5 x C, 1.5 x C and
# 3 x C, each for SECONDS, through up to 4,096 keep-alive connections (a
# request that finds them all busy waits for one, and that wait counts).
# Latency runs from when a request was due. For each server and load it prints
# the answers by status, the 200s per second, and p50/p99/p99.9/max latency of
# every answer and of the 200s; a request unanswered 10 s after it was due is a
# timeout.
#   scripts/bench-overload.sh [SECONDS] [ROUNDS]      (defaults: 10 1)
# Each load runs against io_uring and epoll shards, each with shedding (shed)
# and without (noshed).
#   environment: JWTGATE_BIN=PATH (a built jwtgate; default: cargo build --release)
#                OVERLOAD_FACTORS="0.5 1.5 3" (the loads, as multiples of C)
#                OVERLOAD_IO="uring epoll" (the runtimes)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
rounds="${2:-1}"
factors="${OVERLOAD_FACTORS:-0.5 1.5 3}"
ios="${OVERLOAD_IO:-uring epoll}"
server_cpu=0
client_cpu=1
iss="https://bench.invalid/"
aud="bench-api"
count=20000

die() { echo "bench-overload: $*" >&2; exit 1; }
for v in "$secs" "$rounds"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "SECONDS and ROUNDS must be positive integers (got '$v')"
done
wrk=/usr/bin/wrk
[ -x "$wrk" ] || die "$wrk not found (Debian package wrk)"
for tool in taskset python3 curl; do command -v "$tool" >/dev/null || die "$tool not found"; done
taskset -c "$client_cpu" true 2>/dev/null || die "CPU $client_cpu is not available: this benchmark needs 2 CPUs"

if [ -n "${JWTGATE_BIN:-}" ]; then
  bin="$JWTGATE_BIN"
else
  cargo build --locked --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/jwtgate"
fi
[ -x "$bin" ] || die "$bin is not an executable"
cargo build --locked --release --quiet --manifest-path bench/open-loop/Cargo.toml
loader="bench/open-loop/target/release/jwtgate-open-loop"
work="$(mktemp -d)"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() { # $1 = --max-queue-delay seconds, $2 = --io; sets addr, admin, pid
  local out="$work/serve.$1.out" i line
  taskset -c "$server_cpu" "$bin" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --shards 1 --jwks tests/data/p384.spki.pem --algorithms ES384 --issuer "$iss" --audience "$aud" \
    --max-queue-delay "$1" --io "${2:-uring}" >"$out" 2>"$work/serve.$1.err" &
  pid=$!
  pids+=("$pid")
  for ((i = 0; i < 500; i++)); do
    line="$(grep -m1 'listening on' "$out" 2>/dev/null || true)"
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || die "jwtgate exited: $(cat "$work/serve.$1.err")"
    sleep 0.02 # polling the readiness line, 10 s at most
  done
  [ -n "$line" ] || die "no readiness line from jwtgate"
  addr="$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' <<<"$line")"
  admin="$(sed -n 's/.*admin on \([0-9.:]*\).*/\1/p' <<<"$line")"
  if [ -z "$addr" ] || [ -z "$admin" ]; then die "unreadable readiness line: $line"; fi
}

stop_server() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

echo "minting $count ES384 tokens..." >&2
"$bin" mint --key tests/data/p384.pk8.pem --alg ES384 --sub user --iss "$iss" --aud "$aud" \
  --ttl 86400 --count "$count" >"$work/tokens"
[ "$(sort -u "$work/tokens" | grep -c .)" = "$count" ] || die "mint did not write $count distinct tokens"
echo "jwtgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo '+changes'), $("$wrk" -v 2>&1 | head -1 | cut -d' ' -f1-2), Linux $(uname -r); server CPU $server_cpu, load CPU $client_cpu"

for ((round = 1; round <= rounds; round++)); do
  start_server 0.15
  out="$(BENCH_TOKENS="$work/tokens" BENCH_EXPECT=200 timeout $((secs + 30)) taskset -c "$client_cpu" \
    "$wrk" -t 1 -c 64 -d "${secs}s" --timeout 5s -s bench/http/rotate.lua "http://$addr/" 2>&1)" \
    || { echo "$out" >&2; die "wrk failed"; }
  stop_server
  line="$(grep '^BENCH ' <<<"$out")" || { echo "$out" >&2; die "no BENCH line from wrk"; }
  requests="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")"
  duration="$(sed -n 's/.* duration_us=\([0-9]*\).*/\1/p' <<<"$line")"
  capacity=$((requests * 1000000 / duration))
  echo "round $round: capacity C = $capacity ES384 checks/s (wrk, 64 connections, closed loop)"
  printf '  %-14s %5s %7s %8s %8s %8s %7s %9s %9s %9s %9s %9s %6s\n' server load rate 200/s 401 429 timeouts \
    p50_ms p99_ms p99.9_ms max_ms ok_p99_ms conns
  for factor in $factors; do
    rate="$(python3 -c "print(round($capacity * $factor))")"
    for variant in $(for io in $ios; do echo "$io-shed $io-noshed"; done); do
      delay=0.15
      [ "${variant#*-}" = noshed ] && delay=0
      start_server "$delay" "${variant%-*}"
      result="$(timeout $((secs + 60)) taskset -c "$client_cpu" "$loader" --addr "$addr" --tokens "$work/tokens" \
        --rate "$rate" --seconds "$secs" --connections 4096 --timeout 10)" || die "open-loop failed: $result"
      stop_server
      python3 - "$variant" "$factor" "$result" <<'EOF'
import json, sys
variant, factor, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
s = r["statuses"]
other = {k: v for k, v in s.items() if k not in ("200", "401", "429")}
print(f'  {variant:14} {factor + "x":>5} {r["rate"]:7.0f} {r["ok_per_second"]:8.0f} {s.get("401", 0):8} {s.get("429", 0):8}'
      f' {r["timeouts"]:7} {r["p50_ms"]:9.1f} {r["p99_ms"]:9.1f} {r["p999_ms"]:9.1f} {r["max_ms"]:9.1f}'
      f' {r["ok_p99_ms"]:9.1f} {r["connections"]:6}'
      + (f'  other statuses {other}' if other else '') + (f'  errors {r["errors"]}: {r.get("first_error")}' if r["errors"] else '')
      + (f'  (sender {r["sender_behind_s"]:.2f} s behind)' if r["sender_behind_s"] > 0.05 else ''))
EOF
    done
  done
done
