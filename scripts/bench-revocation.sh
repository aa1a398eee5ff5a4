#!/usr/bin/env bash
# What revocations cost, measured side by side in one run:
#
# 1. Throughput with no revocation and with ENTRIES revoked jtis in force (the
#    requests' token not among them), alternating rounds: `jwtgate serve
#    --shards 1` pinned to CPU 0 on a revocation file (empty, or ENTRIES
#    lines), wrk on CPU 1 sending one valid RS256 token (a token-cache hit
#    after the first request: the case where the lookup is the largest share
#    of a check) and, in a second workload, 1,000 distinct tokens (each looked
#    up by jti and subject after a verification). Medians per variant and
#    their ratio.
# 2. Memory: RSS (/proc/PID/status VmRSS) of the server with ENTRIES
#    revocations loaded, minus the empty one's, per million entries; and the
#    peak while the whole file is read again (one line appended; VmHWM,
#    reset through /proc/PID/clear_refs just before).
# 3. Delay: two instances following one redis-server; COUNT times, `jwtgate
#    revoke --jti` through the store, then instance B polled (1 ms apart)
#    until it refuses that token: median and max of the time from starting
#    `jwtgate revoke` to B's first 401, and, beside it, how long the revoke
#    command itself took.
#
#   scripts/bench-revocation.sh [SECONDS] [ROUNDS] [ENTRIES] [COUNT]   (defaults: 8 3 1000000 100)
#   environment: JWTGATE_BIN=path (a built jwtgate; default: cargo build --release)
# Needs wrk, taskset, python3, redis-server and 2 CPUs. Traffic goes to
# 127.0.0.1 only; every wait is bounded; only the processes it started are
# stopped (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "bench-revocation: $*" >&2; exit 1; }
seconds="${1:-8}"
rounds="${2:-3}"
entries="${3:-1000000}"
count="${4:-100}"
for value in "$seconds" "$rounds" "$entries" "$count"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || die "arguments must be positive integers (got '$value')"
done
for tool in wrk taskset python3 redis-server; do
  command -v "$tool" >/dev/null || die "$tool not found"
done
taskset -c 1 true 2>/dev/null || die "CPU 1 is not available: this benchmark needs 2 CPUs"

if [ -z "${JWTGATE_BIN:-}" ]; then
  cargo build --locked --release --quiet
  JWTGATE_BIN=target/release/jwtgate
fi
binary="$(realpath "$JWTGATE_BIN")"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  local port="$1" deadline=$((SECONDS + 60))
  until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "nothing listens on $port"
    sleep 0.05
  done
}

iss="https://demo.jwtgate.invalid/"
keys="$PWD/examples/keys"
config() { # config FILE STORE-LINE
  cat >"$1" <<EOF
default_action = "deny"

[revocation]
$2
on_unavailable = "deny"

[[token_config]]
name = "users"
jwks_file = "$keys/demo.jwks.json"
algorithms = ["RS256"]
issuer = "$iss"
audiences = ["demo-api"]
max_lifetime = "1h"
require = ["exp", "iat"]

[[rule]]
name = "api"
paths = ["/**"]
token_configs = ["users"]
EOF
}

echo "$("$binary" --version | head -1), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(redis-server --version | cut -d' ' -f1-3)"
echo "server CPU 0, load CPU 1; $entries revoked jtis; $rounds rounds of ${seconds}s"

# The revocation files: empty, and ENTRIES lines (none the tokens' jti).
: >"$work/none.jsonl"
python3 - "$work/many.jsonl" "$entries" "$iss" <<'EOF'
import sys, time
path, n, iss = sys.argv[1], int(sys.argv[2]), sys.argv[3]
expires = int(time.time()) + 86400
with open(path, "w") as out:
    for i in range(n):
        out.write('{"jti":"revoked-%08d","iss":"%s","expires":%d}\n' % (i, iss, expires))
EOF
config "$work/none.toml" "file = \"$work/none.jsonl\""
config "$work/many.toml" "file = \"$work/many.jsonl\""

# Tokens: one repeated, and 1,000 distinct for the second workload.
"$binary" mint --key "$keys/demo-rs256.pk8.pem" --alg RS256 --kid demo-rs256 --iss "$iss" \
  --aud demo-api --sub alice --ttl 3600 --count 1000 --threads 1 >"$work/tokens"
one="$(head -1 "$work/tokens")"
cat >"$work/rotate.lua" <<EOF
local tokens = {}
for line in io.lines("$work/tokens") do tokens[#tokens + 1] = line end
local n = 0
request = function()
  n = n % #tokens + 1
  return wrk.format("GET", "/", { ["Authorization"] = "Bearer " .. tokens[n] })
end
EOF

start_server() { # start_server CONFIG: sets pid, port and admin
  port="$(free_port)"
  admin="$(free_port)"
  taskset -c 0 "$binary" serve --config "$1" --shards 1 --listen "127.0.0.1:$port" \
    --admin-listen "127.0.0.1:$admin" >"$work/serve.out" 2>>"$work/serve.err" &
  pid=$!
  pids+=("$pid")
  wait_port "$port"
}
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

declare -A results
for round in $(seq 1 "$rounds"); do
  for variant in none many; do
    start_server "$work/$variant.toml"
    rss="$(rss_kib "$pid")"
    results["$variant/rss"]+="$rss "
    for workload in repeat rotate; do
      if [ "$workload" = repeat ]; then
        out="$(taskset -c 1 wrk -t1 -c32 -d"${seconds}s" -H "Authorization: Bearer $one" "http://127.0.0.1:$port/")"
      else
        out="$(taskset -c 1 wrk -t1 -c32 -d"${seconds}s" -s "$work/rotate.lua" "http://127.0.0.1:$port/")"
      fi
      grep -q "Non-2xx" <<<"$out" && die "$variant/$workload: refused requests: $out"
      rate="$(awk '/Requests\/sec/ { print $2 }' <<<"$out")"
      results["$variant/$workload"]+="$rate "
      printf 'round %d  %-5s %-7s %12s req/s   rss %d KiB\n' "$round" "$variant" "$workload" "$rate" "$rss"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
for workload in repeat rotate; do
  none="$(median <<<"${results[none/$workload]}")"
  many="$(median <<<"${results[many/$workload]}")"
  printf '%-7s median: none %.0f req/s, %d revoked %.0f req/s, ratio %.3f\n' \
    "$workload" "$none" "$entries" "$many" "$(python3 -c "print($many / $none)")"
done
none_rss="$(median <<<"${results[none/rss]}")"
many_rss="$(median <<<"${results[many/rss]}")"
printf 'memory: RSS %d KiB empty, %d KiB with %d entries: %.1f MiB per million (%.0f bytes per entry)\n' \
  "$none_rss" "$many_rss" "$entries" \
  "$(python3 -c "print(($many_rss - $none_rss) / 1024 * 1e6 / $entries)")" \
  "$(python3 -c "print(($many_rss - $none_rss) * 1024 / $entries)")"

# The peak while the whole store is read again: a copy of the file, one line
# appended once the server is up, and the high-water mark until it is read.
cp "$work/many.jsonl" "$work/reread.jsonl"
config "$work/reread.toml" "file = \"$work/reread.jsonl\""
start_server "$work/reread.toml"
steady="$(rss_kib "$pid")"
echo 5 >"/proc/$pid/clear_refs" || die "cannot reset the peak RSS of $pid"
printf '{"jti":"one-more","iss":"%s","expires":%d}\n' "$iss" "$(($(date +%s) + 3600))" >>"$work/reread.jsonl"
deadline=$((SECONDS + 60))
until python3 - "$admin" "$((entries + 1))" <<'EOF'
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
conn.request("GET", "/metrics")
wanted = 'jwtgate_revocations{kind="jti"} %s\n' % sys.argv[2]
sys.exit(0 if wanted in conn.getresponse().read().decode() else 1)
EOF
do
  [ "$SECONDS" -lt "$deadline" ] || die "the appended revocation was not read within 60 s"
  sleep 0.1
done
peak="$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")"
printf 'memory while the file is read again: RSS %d KiB before, peak %d KiB (+%.0f%%)\n' \
  "$steady" "$peak" "$(python3 -c "print(($peak - $steady) * 100 / $steady)")"
kill "$pid"; wait "$pid" 2>/dev/null || true

# The delay through Redis to a second instance.
redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  >"$work/redis.log" 2>&1 &
pids+=("$!")
wait_port "$redis_port"
config "$work/redis.toml" "redis_url = \"redis://127.0.0.1:$redis_port/0\""
start_server "$work/redis.toml"
start_server "$work/redis.toml"
b_port="$port"
"$binary" mint --key "$keys/demo-rs256.pk8.pem" --alg RS256 --kid demo-rs256 --iss "$iss" \
  --aud demo-api --sub bob --ttl 3600 --count "$count" --threads 1 >"$work/delay-tokens"
python3 - "$binary" "$work/redis.toml" "$b_port" "$work/delay-tokens" "$iss" <<'EOF'
import base64, http.client, json, statistics, subprocess, sys, time
binary, config, port, tokens_path, iss = sys.argv[1:6]
tokens = [line.strip() for line in open(tokens_path) if line.strip()]
conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
def status(token):
    conn.request("GET", "/", headers={"Authorization": "Bearer " + token})
    response = conn.getresponse()
    response.read()
    return response.status
delays, commands = [], []
for token in tokens:
    payload = token.split(".")[1]
    jti = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
    assert status(token) == 200, "not valid before its revocation"
    start = time.monotonic()
    subprocess.run([binary, "revoke", "--config", config, "--jti=" + jti, "--issuer", iss],
                   check=True, stdout=subprocess.DEVNULL)
    commands.append(time.monotonic() - start)
    while status(token) != 401:
        if time.monotonic() - start > 10:
            sys.exit("not refused within 10 s")
        time.sleep(0.001)
    delays.append(time.monotonic() - start)
ms = lambda values: (statistics.median(values) * 1000, max(values) * 1000)
print("delay over %d revocations, from starting `jwtgate revoke` to the second instance's first 401:"
      " median %.1f ms, max %.1f ms (the revoke command itself: median %.1f ms, max %.1f ms)"
      % ((len(delays),) + ms(delays) + ms(commands)))
EOF
