#!/usr/bin/env bash
# Whether one shard's memory stays flat under millions of requests: a leak per
# request, or a buffer, cache or histogram that keeps growing, shows as RSS
# rising after the warm-up. One `jwtgate serve --demo --shards 1` (every
# thread pinned to CPU 0, defaults otherwise: --idle-timeout 60,
# --max-connections 10000, a 4,096-entry token cache) is loaded by wrk on CPU 1
# (1 thread, CONNECTIONS connections, bench/http/soak.lua) with a file of
# 1,061 requests rotating:
#   1,000 distinct valid RS256 demo tokens, which the token cache holds (after
#         the first round, hits): 200;
#   50    forged tokens (a valid token with one signature character changed,
#         all distinct; never cached, each a full RS256 check): 401;
#   10    expired tokens: 401;
#   1     request without a token: 401.
# wrk runs by duration, so the load runs in rounds (each a fresh wrk: its
# connections are closed and reopened between rounds, which exercises accept
# and close too): a 5 s calibration round, then rounds sized from the last
# round's rate (at most 60 s) until the admin port's jwtgate_requests_total
# reaches REQUESTS. scripts/sample-server.py (on CPU 1) samples the server's
# VmRSS and RssAnon (/proc/PID/status), the open connections gauge and the
# requests counter every second into a CSV, which is kept; sampling goes on
# for 3 s after the load, so the last sample is the server at rest.
# Prints per round the requests and statuses wrk saw, the server's rate, and
# how busy CPU 0 was with the server and with other work (this VM is shared:
# other work on CPU 0 slows the rounds, not the memory figures); then: the
# requests served (from /metrics) by outcome, the RSS at start, after the
# warm-up (the first sample once 10% of REQUESTS were served), its maximum and
# at the end, the growth from warm-up to end in KiB and percent, the RSS slope
# over the requests after the warm-up (least squares, KiB per million
# requests), and every answer other than 200 or 401, socket error, timeout or
# protocol error counted on either side. The share of 401s wrk saw is checked
# against the file's (61 of 1,061). Exit status 1 when anything other than
# 200/401 was seen, the 401 share is off by more than a point, or the hard cap
# ended the run before REQUESTS.
#   scripts/soak.sh [REQUESTS] [CONNECTIONS]        (defaults: 10000000 64)
#   environment: JWTGATE_BIN=path (a built jwtgate; default: cargo build --release)
#                SOAK_MAX_SECONDS=N (hard cap on the load, default 1800)
#                SOAK_CSV=FILE (the samples; default a new file under
#                  ${TMPDIR:-/tmp}, named in the output)
# Needs wrk (Debian: apt-get install wrk), taskset, curl, python3 and 2 CPUs.
# Traffic goes to 127.0.0.1 only; every wait is bounded, and only the
# processes it started are stopped (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "soak: $*" >&2; exit 1; }
target="${1:-10000000}"
conns="${2:-64}"
cap="${SOAK_MAX_SECONDS:-1800}"
for v in "$target" "$conns" "$cap"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "REQUESTS, CONNECTIONS and SOAK_MAX_SECONDS must be positive integers (got '$v')"
done
wrk=/usr/bin/wrk
[ -x "$wrk" ] || die "$wrk not found (Debian package wrk: apt-get install wrk)"
for tool in taskset curl python3 getconf; do command -v "$tool" >/dev/null || die "$tool not found"; done
taskset -c 1 true 2>/dev/null || die "CPU 1 is not available: this benchmark needs 2 CPUs"
server_cpu=0
client_cpu=1
calibration=5     # seconds of the first round
max_round=60      # seconds of a round at most
rest=3            # seconds sampled after the load
lua="$PWD/bench/http/soak.lua"
sampler_py="$PWD/scripts/sample-server.py"

if [ -z "${JWTGATE_BIN:-}" ]; then
  cargo build --locked --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/jwtgate"
else
  bin="$JWTGATE_BIN"
fi
[ -x "$bin" ] || die "no jwtgate at $bin"
csv="${SOAK_CSV:-$(mktemp "${TMPDIR:-/tmp}/jwtgate-soak-XXXXXX.csv")}"

work="$(mktemp -d)"
server=""
sampler=""
stop() { # $1 = pid: SIGTERM, up to 15 s to exit, then SIGKILL; returns the exit status
  local i st=0
  kill -TERM "$1" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || st=$?
  return "$st"
}
cleanup() {
  [ -z "$sampler" ] || stop "$sampler" || true
  [ -z "$server" ] || stop "$server" || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tokens

mint() { # the demo's RS256 key, issuer and audience; further flags in the arguments
  "$bin" mint --key examples/keys/demo-rs256.pk8.pem --alg RS256 --kid demo-rs256 \
    --iss https://demo.jwtgate.invalid/ --aud demo-api --sub soak "$@"
}
now="$(date +%s)"
mint --ttl 86400 --count 1000 >"$work/valid"
mint --now $((now - 7200)) --ttl 3600 --count 10 >"$work/expired"
[ "$(sort -u "$work/valid" | grep -c .)" = 1000 ] || die "mint did not write 1000 distinct tokens"
# The request file: the valid tokens in order, a forged one (the valid token
# before it, one signature character changed) after every 20th, an expired one
# after every 100th, and one request without a token at the end.
python3 - "$work/valid" "$work/expired" >"$work/tokens" <<'EOF'
import sys
valid = open(sys.argv[1]).read().split()
expired = open(sys.argv[2]).read().split()
for i, token in enumerate(valid, 1):
    print(token)
    if i % 20 == 0:
        head, _, sig = token.rpartition(".")
        mid = len(sig) // 2
        print(f"{head}.{sig[:mid]}{'B' if sig[mid] == 'A' else 'A'}{sig[mid + 1:]}")
    if i % 100 == 0:
        print(expired[i // 100 - 1])
print("-")
EOF
lines="$(grep -c . "$work/tokens")"
denials=$((lines - 1000))

# ---------------------------------------------------------------- the server

mkfifo "$work/server.fifo"
exec {server_fd}<>"$work/server.fifo" # read-write: the open does not wait for the server
taskset -c "$server_cpu" "$bin" serve --demo --shards 1 --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  >"$work/server.fifo" 2>"$work/server.err" &
server=$!
line=""
for ((i = 0; i < 75; i++)); do # the readiness line, up to 15 s
  if IFS= read -r -t 0.2 -u "$server_fd" line; then break; fi
  kill -0 "$server" 2>/dev/null || break
done
[[ "$line" == "jwtgate serve: listening on "* ]] || { cat "$work/server.err" >&2; die "no readiness line: '$line'"; }
addr="${line#*listening on }"
addr="${addr%% *}"
admin="${line##*, admin on }"
[[ "$addr" == 127.0.0.1:* && "$admin" == 127.0.0.1:* ]] || die "unexpected addresses in: $line"
for f in /proc/"$server"/task/*/status; do
  cpus="$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$f" 2>/dev/null)" || continue
  [ -z "$cpus" ] || [ "$cpus" = "$server_cpu" ] || die "thread ${f%/status} may run on CPUs $cpus, not only CPU $server_cpu"
done

metrics() { curl -s --max-time 5 "http://$admin/metrics" || die "could not read http://$admin/metrics"; }
requests_total() { metrics | awk '$1 ~ /^jwtgate_requests_total[{ ]/ || $1 == "jwtgate_requests_total" { s += $2 } END { printf "%d\n", s }'; }
code() { # $1 = token or "-": the status of one request
  local auth=()
  [ "$1" = - ] || auth=(-H "Authorization: Bearer $1")
  curl -s -o /dev/null --max-time 5 -w '%{http_code}' "${auth[@]}" "http://$addr/" || true
}
# Correctness first: each kind of line is answered as expected (these 4 requests count too).
[ "$(code "$(head -1 "$work/tokens")")" = 200 ] || die "a valid token was not answered 200"
[ "$(code "$(sed -n 21p "$work/tokens")")" = 401 ] || die "a forged token was not answered 401"
[ "$(code "$(head -1 "$work/expired")")" = 401 ] || die "an expired token was not answered 401"
[ "$(code -)" = 401 ] || die "a request without a token was not answered 401"

taskset -c "$client_cpu" python3 "$sampler_py" --pid "$server" --admin "$admin" --csv "$csv" \
  --max-seconds $((cap + 120)) &
sampler=$!

# ---------------------------------------------------------------- the load

echo "soak: $bin ($("$bin" --version 2>/dev/null | head -1)), $("$wrk" -v 2>&1 | head -1 | cut -d' ' -f1-2), Linux $(uname -r)"
echo "soak: $target requests over $conns connections; server on CPU $server_cpu ($line)," \
  "wrk on CPU $client_cpu; $lines requests rotating ($denials to be denied); hard cap ${cap} s; samples in $csv"
hz="$(getconf CLK_TCK)"
cpu_busy() { # $1 = CPU: its busy ticks (user nice system irq softirq steal) from /proc/stat
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
server_ticks() { # utime + stime of the server, all threads
  local stat
  stat="$(cat "/proc/$server/stat")" || die "the server is gone"
  stat="${stat##*) }" # fields from 3 (state) on; comm may hold spaces
  awk '{ print $12 + $13 }' <<<"$stat"
}
field() { # $1 = SOAK line, $2 = key
  local v
  v="$(sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1")"
  echo "${v:-0}"
}
start=$SECONDS
round=0
duration=$calibration
t200=0 t401=0 tother=0 terrors=0 wrk_requests=0
served="$(requests_total)"
capped=0
while ((served < target)); do
  left=$((cap - (SECONDS - start)))
  if ((left <= 0)); then
    capped=1
    echo "soak: the hard cap of ${cap} s ended the load at $served of $target requests" >&2
    break
  fi
  ((duration <= left)) || duration=$left
  round=$((round + 1))
  before="$served"
  b0="$(cpu_busy "$server_cpu")" s0="$(server_ticks)"
  out="$(SOAK_TOKENS="$work/tokens" timeout $((duration + 30)) taskset -c "$client_cpu" \
    "$wrk" -t 1 -c "$conns" -d "${duration}s" --timeout 5s -s "$lua" "http://$addr/" 2>&1)" \
    || { echo "$out" >&2; die "wrk failed (round $round)"; }
  soak_line="$(grep '^SOAK ' <<<"$out")" || { echo "$out" >&2; die "no SOAK line from wrk"; }
  kill -0 "$server" 2>/dev/null || { cat "$work/server.err" >&2; die "the server exited during round $round"; }
  b1="$(cpu_busy "$server_cpu")" s1="$(server_ticks)"
  served="$(requests_total)"
  n="$(field "$soak_line" requests)" us="$(field "$soak_line" duration_us)"
  r200="$(field "$soak_line" s200)" r401="$(field "$soak_line" s401)" rother="$(field "$soak_line" other)"
  rerr=$(($(field "$soak_line" connect_errors) + $(field "$soak_line" read_errors) + $(field "$soak_line" write_errors) + $(field "$soak_line" timeouts)))
  t200=$((t200 + r200)) t401=$((t401 + r401)) tother=$((tother + rother)) terrors=$((terrors + rerr))
  wrk_requests=$((wrk_requests + n))
  rate=$(((served - before) * 1000000 / (us > 0 ? us : 1)))
  echo "round $round: ${duration} s, wrk $n requests ($r200 200, $r401 401, $rother other, $rerr socket errors/timeouts)," \
    "p50 $(field "$soak_line" p50_us) us, p99 $(field "$soak_line" p99_us) us; server $rate/s, total $served;" \
    "CPU 0: server $(((s1 - s0) * 100 / hz / duration))%, other work $(((b1 - b0 - (s1 - s0)) * 100 / hz / duration))%"
  ((rate > 0)) || die "no requests served in round $round"
  # The next round: what is left at this round's rate, rounded up, within 1 .. max_round s.
  duration=$(((target - served + rate - 1) / rate))
  ((duration >= 1)) || duration=1
  ((duration <= max_round)) || duration=$max_round
done
load_seconds=$((SECONDS - start))

# The server at rest: the sampler records a few more seconds, then the final metrics.
sleep "$rest" # samples after the load, at one a second
metrics >"$work/final.metrics"
stop "$sampler" || true
sampler=""
st=0
stop "$server" || st=$?
server=""
[ "$st" = 0 ] || echo "soak: warning: jwtgate exited with status $st on SIGTERM" >&2

python3 - "$csv" "$work/final.metrics" "$target" "$t200" "$t401" "$tother" "$terrors" "$wrk_requests" \
  "$lines" "$denials" "$round" "$load_seconds" "$capped" <<'EOF'
import csv, re, sys
(path, metrics_path, target, t200, t401, tother, terrors, wrk_requests,
 lines, denials, rounds, load_seconds, capped) = sys.argv[1:]
target, t200, t401, tother, terrors, wrk_requests, lines, denials, rounds, load_seconds, capped = map(
    int, (target, t200, t401, tother, terrors, wrk_requests, lines, denials, rounds, load_seconds, capped))
rows = list(csv.DictReader(open(path)))
samples = [(float(r["seconds"]), int(r["vm_rss_kib"]), int(r["rss_anon_kib"]),
            int(r["requests_total"]) if r["requests_total"] else None) for r in rows]
if not samples:
    sys.exit("soak: no samples")

# The final counters, by outcome and protocol error code.
outcomes, protocol, total = {}, {}, 0
for line in open(metrics_path):
    m = re.match(r'jwtgate_requests_total\{(.*)\} (\S+)$', line.strip())
    if m:
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        value = int(float(m.group(2)))
        total += value
        key = f"{labels.get('outcome')}/{labels.get('action')}"
        outcomes[key] = outcomes.get(key, 0) + value
    m = re.match(r'jwtgate_protocol_errors_total\{code="(\d+)"\} (\S+)$', line.strip())
    if m and int(float(m.group(2))):
        protocol[m.group(1)] = int(float(m.group(2)))

def kib(v):
    return f"{v:,} KiB ({v / 1024:.1f} MiB)"

start_rss = samples[0][1]
warm = next((s for s in samples if s[3] is not None and s[3] >= target * 0.1), None)
end = samples[-1]
peak = max(samples, key=lambda s: s[1])
print(f"\nsoak summary: {total:,} requests served (/metrics; {wrk_requests:,} completed by wrk) "
      f"in {rounds} rounds, {load_seconds} s of load, {total / max(load_seconds, 1):,.0f}/s overall")
print("  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())))
print(f"  wrk statuses: 200 {t200:,}, 401 {t401:,}, other {tother:,}; socket errors/timeouts {terrors:,}; "
      f"protocol errors (server): {protocol or 'none'}")
share = t401 / max(t200 + t401, 1)
expected_share = denials / lines
print(f"  401 share {share * 100:.2f}% (the file's: {expected_share * 100:.2f}%)")
print(f"  RSS at start (idle, demo mode): {kib(start_rss)}")
failed = []
if warm is None:
    print("  RSS after warm-up: no sample reached 10% of the requests")
    failed.append("no warm-up sample")
else:
    print(f"  RSS after warm-up ({warm[3]:,} requests, {warm[0]:.0f} s): {kib(warm[1])} (RssAnon {warm[2]:,} KiB)")
print(f"  RSS max: {kib(peak[1])} at {peak[0]:.0f} s" + (f", {peak[3]:,} requests" if peak[3] is not None else ""))
print(f"  RSS at end (after the load, {end[0]:.0f} s): {kib(end[1])} (RssAnon {end[2]:,} KiB)")
if warm is not None:
    growth = end[1] - warm[1]
    print(f"  growth warm-up -> end: {growth:+,} KiB ({growth / warm[1] * 100:+.2f}%); "
          f"RssAnon {end[2] - warm[2]:+,} KiB ({(end[2] - warm[2]) / max(warm[2], 1) * 100:+.2f}%)")
    # Least-squares slope of VmRSS over the requests served, after the warm-up.
    pts = [(s[3], s[1]) for s in samples if s[3] is not None and s[3] >= warm[3]]
    if len(pts) >= 3 and pts[-1][0] > pts[0][0]:
        mx = sum(x for x, _ in pts) / len(pts)
        my = sum(y for _, y in pts) / len(pts)
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        slope = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0
        print(f"  RSS slope after warm-up: {slope * 1e6:+.1f} KiB per million requests "
              f"({len(pts)} samples, least squares)")
print(f"  samples: {path} ({len(samples)} rows)")
if tother or terrors or protocol:
    failed.append("answers other than 200/401, socket errors or protocol errors")
if abs(share - expected_share) > 0.01:
    failed.append("the 401 share is off by more than a point")
if capped:
    failed.append("the hard cap ended the load early")
if total < target and not capped:
    failed.append("fewer requests than asked")
if failed:
    sys.exit("soak: " + "; ".join(failed))
EOF
