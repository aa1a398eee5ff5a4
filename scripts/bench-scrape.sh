#!/usr/bin/env bash
# What an admin port scraped in a tight loop takes from the data port. One
# jwtgate (`serve --shards 1 --io uring`, every thread pinned to CPU 0) is
# loaded with wrk from CPU 1 (1 thread, 64 connections, bench/http/rotate.lua:
# 1,000 valid RS256 tokens over and over, all verified-token cache hits: the
# cheapest check, so the one a scrape's cost shows most on). Rounds alternate
# between no scraper and a scraper on CPU 1 that GETs /metrics on one
# keep-alive connection as fast as the server answers. Prints, per side, the
# medians of requests/s, of the shard thread's CPU per request and of the
# scrapes/s achieved, and the ratio of requests/s with and without scraping.
#   scripts/bench-scrape.sh [SECONDS] [ROUNDS]           (defaults: 10 3)
#   environment: JWTGATE_BIN=path (another build, for a before/after figure)
# Needs wrk (Debian: apt-get install wrk), taskset, python3 and 2 CPUs.
# Traffic goes to 127.0.0.1 only; every run is bounded by SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
rounds="${2:-3}"
die() { echo "bench-scrape: $*" >&2; exit 1; }
for v in "$secs" "$rounds"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "SECONDS and ROUNDS must be positive integers (got '$v')"
done
wrk=/usr/bin/wrk
[ -x "$wrk" ] || die "$wrk not found (Debian package wrk: apt-get install wrk)"
for tool in taskset python3 getconf; do command -v "$tool" >/dev/null || die "$tool not found"; done
taskset -c 1 true 2>/dev/null || die "CPU 1 is not available: this benchmark needs 2 CPUs"
hz="$(getconf CLK_TCK)"

if [ -z "${JWTGATE_BIN:-}" ]; then
  cargo build --locked --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/jwtgate"
else
  bin="$JWTGATE_BIN"
fi
[ -x "$bin" ] || die "no jwtgate at $bin"
work="$(mktemp -d)"
pid=""
scraper=""
cleanup() {
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

iss="https://bench.invalid/"
aud="bench-api"
python3 bench/http/spki2jwks.py tests/data/rsa2048-a.spki.pem bench RS256 >"$work/jwks.json"
"$bin" mint --key tests/data/rsa2048-a.pk8.pem --alg RS256 --kid bench --sub user \
  --iss "$iss" --aud "$aud" --ttl 86400 --count 1000 >"$work/tokens"

mkfifo "$work/out"
exec {fd}<>"$work/out"
taskset -c 0 "$bin" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --shards 1 --io uring \
  --jwks "$work/jwks.json" --issuer "$iss" --audience "$aud" >"$work/out" 2>"$work/err" &
pid=$!
line=""
IFS= read -r -t 15 -u "$fd" line || true
[[ "$line" == "jwtgate serve: listening on "* ]] || { cat "$work/err" >&2; die "no readiness line: '$line'"; }
addr="${line#*listening on }"; addr="${addr%% *}"
admin="${line##*, admin on }"
[[ "$addr" == 127.0.0.1:* && "$admin" == 127.0.0.1:* ]] || die "unexpected addresses in: $line"
shard_tid=""
for task in /proc/"$pid"/task/*; do
  [ "$(cat "$task/comm")" = "jwtgate-shard-0" ] && shard_tid="${task##*/}"
done
[ -n "$shard_tid" ] || die "no jwtgate-shard-0 thread"

shard_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/task/$shard_tid/stat"; }

start_scraper() { # GET /metrics on one keep-alive connection, as fast as answered; counts to $work/scrapes
  taskset -c 1 python3 - "$admin" "$work/scrapes" <<'EOF' &
import http.client, sys, signal
host, port = sys.argv[1].rsplit(":", 1)
count = 0
def done(*_):
    open(sys.argv[2], "w").write(str(count))
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
conn = http.client.HTTPConnection(host, int(port), timeout=5)
while True:
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    count += 1
EOF
  scraper=$!
}

run() { # $1 = with|without; prints "rps shard_us_per_request scrapes_per_s"
  local out line requests ticks0 ticks1 scrapes=0
  [ "$1" = with ] && start_scraper
  ticks0="$(shard_ticks)"
  out="$(BENCH_TOKENS="$work/tokens" BENCH_EXPECT=200 timeout $((secs + 30)) taskset -c 1 \
    "$wrk" -t 1 -c 64 -d "${secs}s" --timeout 5s -s bench/http/rotate.lua "http://$addr/" 2>&1)" \
    || { echo "$out" >&2; die "wrk failed"; }
  ticks1="$(shard_ticks)"
  if [ "$1" = with ]; then
    kill -TERM "$scraper"; wait "$scraper" || true; scraper=""
    scrapes="$(cat "$work/scrapes")"
  fi
  line="$(grep '^BENCH ' <<<"$out")" || { echo "$out" >&2; die "no BENCH line from wrk"; }
  requests="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")"
  [ "$(sed -n 's/.* unexpected=\([0-9]*\).*/\1/p' <<<"$line")" = 0 ] || die "answers other than 200: $line"
  python3 -c 'import sys
r, t0, t1, hz, secs, s = map(float, sys.argv[1:])
print("%.0f %.2f %.1f" % (r / secs, (t1 - t0) / hz * 1e6 / r, s / secs))' \
    "$requests" "$ticks0" "$ticks1" "$hz" "$secs" "$scrapes"
}

echo "bench-scrape: $(basename "$bin") $("$bin" --version 2>/dev/null | head -1), ${rounds} rounds of ${secs} s per side" >&2
# Warm-up: fills the verified-token cache.
run without >/dev/null
results=()
for ((r = 1; r <= rounds; r++)); do
  for side in without with; do
    if (( r % 2 == 0 )); then side=$([ "$side" = without ] && echo with || echo without); fi
    got="$(run "$side")"
    echo "  round $r $side scraping: $got (checks/s, shard us/check, scrapes/s)" >&2
    results+=("$side $got")
  done
done
printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics
rows = {"without": [], "with": []}
for line in sys.stdin:
    side, rps, cpu, scrapes = line.split()
    rows[side].append((float(rps), float(cpu), float(scrapes)))
med = {side: [statistics.median(col) for col in zip(*rows[side])] for side in rows}
print("| scraper | checks/s | shard CPU/check | scrapes/s |")
print("|---|---|---|---|")
for side in ("without", "with"):
    rps, cpu, scrapes = med[side]
    print("| %s | %s | %.2f us | %s |" % (side, format(round(rps), ","), cpu, "-" if side == "without" else "%.0f" % scrapes))
print("with / without scraping, checks/s: %.3fx (loss %.1f%%)" % (med["with"][0] / med["without"][0], 100 * (1 - med["with"][0] / med["without"][0])))
print("with / without scraping, shard CPU per check: %.3fx" % (med["with"][1] / med["without"][1]))
'
