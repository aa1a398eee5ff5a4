#!/usr/bin/env bash
# `jwtgate serve` over HTTP against HAProxy 2.6's JWT check and an axum +
# jsonwebtoken service, side by side in one run. For each algorithm, the servers
# run on CPU 0 (one shard / one thread each), each loaded in turn by wrk on CPU 1
# (64 connections; bench/http/rotate.lua sends the tokens of a file in turn, one
# per request, over and over). Workloads (token files):
#   repeat   1,000 distinct valid tokens: the realistic case of clients that
#            send the same token many times; each shard's verified-token cache
#            (4,096 entries by default) holds them all, so after the warm-up
#            every lookup hits. Expects 200.
#   distinct 10,000 distinct valid tokens (the original workload): more than a
#            shard's cache holds, and each token comes back only after 9,999
#            others, so every lookup misses and the cache can only cost. Expects 200.
#   forged   the 10,000 tokens of distinct with one character in the middle of
#            the signature changed (header and payload valid, all distinct): a
#            spray of forgeries, which are never cached. Expects 401.
# Servers (variants):
#   ceiling  jwtgate --danger-no-verify: 200 without reading the token (the HTTP ceiling)
#   uring    jwtgate --io uring, verifying (issuer, audience, exp, signature), with
#            the token cache on (the default, --token-cache-entries 4096)
#   nocache  as uring with --token-cache-entries 0 (the cache off)
#   epoll    jwtgate --io epoll, verifying
#   haproxy  /usr/sbin/haproxy, nbthread 1, bench/http/haproxy.cfg.in: alg, iss,
#            aud, exp and jwt_verify with the same public key
#   axum     bench/peer-axum: axum on a current-thread tokio runtime, checking the
#            token with the jsonwebtoken crate (aws-lc-rs): alg, signature, iss,
#            aud, exp with the same leeway, the PEM key parsed once at start.
#            Its own Cargo workspace, built here in release.
#   config   jwtgate --io uring --config: the same checks as a configuration file
#            whose matching rule comes after 29 others (the cost of routing)
#   nometrics jwtgate --io uring --no-metrics: as uring without per-request
#            counters and latency histograms (the cost of recording metrics)
#   baseline another jwtgate binary (BENCH_BASELINE_BIN, e.g. a release build of
#            the commit before a change) run as uring: a change's cost side by side
# By default distinct runs every server; repeat runs ceiling, uring, nocache,
# haproxy and axum; forged runs uring, nocache, haproxy and axum (baseline joins
# all three when BENCH_BASELINE_BIN is set). With BENCH_VARIANTS set, every chosen
# workload runs exactly those servers (forged never runs ceiling, which answers
# 200 to anything).
# Keys: tests/data/rsa2048-a (RS256) and p256 (ES256); tokens carry kid "bench",
# jwtgate reads the public key as a JWKS made by bench/http/spki2jwks.py, HAProxy
# and the axum peer as PEM.
# Rounds are interleaved (the order rotates each round) so that drift in machine
# speed hits all servers of a workload alike; each measured run follows a warm-up
# run (which also fills the cache). Prints per algorithm and workload the medians
# of requests/s, p50 and p99 latency and the server's CPU time per request
# (utime+stime from /proc/PID/stat over the measured run); for jwtgate servers, the
# token cache's hit ratio over the measured run and the bytes its entries hold
# (from the admin port's /stats: one shard, so per shard); and the ratios with
# their targets. Any response other than the workload's expected status (200, or
# 401 for forged) aborts the run.
#   scripts/bench-http.sh [SECONDS] [ROUNDS] [ALGS]     (defaults: 10 3 RS256,ES256)
#   environment: BENCH_WARMUP=SECONDS (warm-up before each measured run, default 2)
#                BENCH_WORKLOADS=repeat,distinct (a subset of the workloads, in
#                  that order; default repeat,distinct,forged)
#                BENCH_VARIANTS=uring,nometrics (a subset of the servers, default
#                  per workload as above; baseline is in it when
#                  BENCH_BASELINE_BIN is set)
#                BENCH_BASELINE_BIN=PATH (the baseline server's binary)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
rounds="${2:-3}"
algs="${3:-RS256,ES256}"
warmup="${BENCH_WARMUP:-2}"
conns=64
server_cpu=0
client_cpu=1
iss="https://bench.invalid/"
aud="bench-api"
leeway=60 # jwtgate's default; HAProxy is given the same
count=10000        # tokens of the distinct and forged workloads
repeat_count=1000  # tokens of the repeat workload

die() { echo "bench-http: $*" >&2; exit 1; }
for v in "$secs" "$rounds" "$warmup"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "SECONDS, ROUNDS and BENCH_WARMUP must be positive integers (got '$v')"
done
wrk=/usr/bin/wrk
haproxy=/usr/sbin/haproxy
for tool in "$wrk" "$haproxy"; do [ -x "$tool" ] || die "$tool not found (Debian packages wrk, haproxy)"; done
for tool in taskset python3 getconf; do command -v "$tool" >/dev/null || die "$tool not found"; done
taskset -c "$client_cpu" true 2>/dev/null || die "CPU $client_cpu is not available: this benchmark needs 2 CPUs"
hz="$(getconf CLK_TCK)"
lua="$PWD/bench/http/rotate.lua"
cfg_in="$PWD/bench/http/haproxy.cfg.in"

cargo build --locked --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/jwtgate"
versions="jwtgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo '+changes'),\
 $("$haproxy" -v | head -1 | cut -d' ' -f1,3), $("$wrk" -v 2>&1 | head -1 | cut -d' ' -f1-2), Linux $(uname -r)"
work="$(mktemp -d)"
pids=()
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
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do stop "$p" || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers

free_port() { # an ephemeral port on 127.0.0.1 that was free a moment ago
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cpu_ticks() { # $1 = pid, $2 = first field (14: utime+stime, 16: cutime+cstime of reaped children)
  local stat rest
  stat="$(cat "/proc/$1/stat")" || die "process $1 is gone"
  rest="${stat##*) }" # fields from 3 (state) on; comm may hold spaces and parentheses
  # shellcheck disable=SC2086 # word splitting wanted
  set -- $rest "$2"
  local first="${!#}"
  local a=$((first - 2)) b=$((first - 1))
  echo $((${!a} + ${!b}))
}

wait_port() { # $1 = host:port, $2 = pid of the server; returns once a connection succeeds
  local i
  for ((i = 0; i < 500; i++)); do
    kill -0 "$2" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then return 0; fi
    sleep 0.02 # between connection attempts, 10 s at most in all
  done
  return 1
}

http_code() { # $1 = host:port, $2 = token (empty: no Authorization header); prints the status code
  if command -v curl >/dev/null; then
    local auth=()
    [ -n "$2" ] && auth=(-H "Authorization: Bearer $2")
    curl -s -o /dev/null --max-time 5 -w '%{http_code}' "${auth[@]}" "http://$1/" || true
  else
    local fd proto code hdr=""
    [ -n "$2" ] && hdr="Authorization: Bearer $2"$'\r\n'
    exec {fd}<>"/dev/tcp/${1%:*}/${1##*:}" || { echo 000; return; }
    printf 'GET / HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n' "$1" "$hdr" >&"$fd"
    read -r -t 5 -u "$fd" proto code _ || code=000
    exec {fd}>&-
    : "$proto"
    echo "$code"
  fi
}

start_jwtgate() { # $1 = name, $2 = --io mode, then extra flags (--config FILE instead of the token flags); sets addr and pid
  local name="$1" io="$2" fifo="$work/$1.fifo" fd line="" i
  shift 2
  local token_flags=(--jwks "$jwks" --issuer "$iss" --audience "$aud")
  [ "${1:-}" = --config ] && token_flags=()
  mkfifo "$fifo"
  exec {fd}<>"$fifo" # read-write: the open does not wait for the server
  local binary="$bin"
  [[ "$name" == baseline-* ]] && binary="$baseline_bin"
  taskset -c "$server_cpu" "$binary" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --shards 1 --io "$io" "${token_flags[@]}" "$@" \
    >"$fifo" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
  # The readiness line, read as it is written (up to 15 s; give up as soon as the server exits).
  for ((i = 0; i < 75; i++)); do
    if IFS= read -r -t 0.2 -u "$fd" line; then break; fi
    kill -0 "$pid" 2>/dev/null || break
  done
  [[ "$line" == "jwtgate serve: listening on "* ]] || {
    cat "$work/$name.err" >&2
    die "jwtgate serve ($name) did not report readiness; stdout: '${line}'"
  }
  echo "  $name: $line" >&2
  addr="${line#*listening on }"
  addr="${addr%% *}"
  admin="${line##*, admin on }" # the last field of the readiness line
  [[ "$admin" == 127.0.0.1:* ]] || admin=""
  [[ "$addr" == 127.0.0.1:* ]] || die "$name listens on '$addr', not 127.0.0.1"
  [[ "$line" == *"io $io)"* ]] || die "$name was asked for --io $io but reports: $line"
  wait_port "$addr" "$pid" || { cat "$work/$name.err" >&2; die "$name ($addr) does not accept connections"; }
  check_pinned "$name" "$pid"
  # The fd stays open (and the FIFO readable) for the server's lifetime.
}

start_haproxy() { # sets addr and pid (admin: none)
  local port cfg="$work/haproxy-$alg.cfg"
  admin=""
  port="$(free_port)"
  sed -e "s|@PORT@|$port|" -e "s|@ALG@|$alg|" -e "s|@ISS@|$iss|" -e "s|@AUD@|$aud|" \
    -e "s|@LEEWAY@|$leeway|" -e "s|@PEM@|$PWD/$pub|" "$cfg_in" >"$cfg"
  "$haproxy" -q -c -f "$cfg" || die "haproxy rejects $cfg"
  taskset -c "$server_cpu" "$haproxy" -db -f "$cfg" >"$work/haproxy.out" 2>&1 &
  pid=$!
  pids+=("$pid")
  addr="127.0.0.1:$port"
  wait_port "$addr" "$pid" || { cat "$work/haproxy.out" >&2; die "haproxy ($addr) does not accept connections"; }
  check_pinned haproxy "$pid"
  echo "  haproxy: listening on $addr ($("$haproxy" -v | head -1 | cut -d' ' -f1-3))" >&2
}

start_axum() { # the axum + jsonwebtoken peer; sets addr and pid (admin: none)
  local port
  admin=""
  port="$(free_port)"
  taskset -c "$server_cpu" "$peer_bin" "127.0.0.1:$port" "$alg" "$PWD/$pub" "$iss" "$aud" "$leeway" \
    >"$work/axum.out" 2>&1 &
  pid=$!
  pids+=("$pid")
  addr="127.0.0.1:$port"
  wait_port "$addr" "$pid" || { cat "$work/axum.out" >&2; die "axum peer ($addr) does not accept connections"; }
  check_pinned axum "$pid"
  echo "  axum: listening on $addr ($peer_versions)" >&2
}

check_pinned() { # $1 = name, $2 = pid: every thread of the server may run on the server CPU only
  local f cpus
  for f in /proc/"$2"/task/*/status; do
    cpus="$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$f" 2>/dev/null)" || continue
    [ -z "$cpus" ] || [ "$cpus" = "$server_cpu" ] || die "$1: thread ${f%/status} may run on CPUs $cpus, not only CPU $server_cpu"
  done
}

expect() { # $1 = name, $2 = address, $3 = expected code, $4 = what, $5 = token
  local got
  got="$(http_code "$2" "$5")"
  [ "$got" = "$3" ] || die "$1: $4 answered $got, expected $3; not measuring"
}

tamper() { # flips one character in the middle of the signature
  local sig="${1##*.}" mid c
  mid=$((${#sig} / 2))
  c="${sig:mid:1}"
  if [ "$c" = A ]; then c=B; else c=A; fi
  echo "${1%.*}.${sig:0:mid}${c}${sig:mid+1}"
}

run_wrk() { # $1 = seconds, $2 = address, $3 = tokens, $4 = expected status; prints the BENCH line
  local out
  out="$(BENCH_TOKENS="$3" BENCH_EXPECT="$4" timeout $(($1 + 30)) taskset -c "$client_cpu" \
    "$wrk" -t 1 -c "$conns" -d "${1}s" --timeout 5s -s "$lua" "http://$2/" 2>&1)" \
    || { echo "$out" >&2; die "wrk failed against $2"; }
  local line
  line="$(grep '^BENCH ' <<<"$out")" || { echo "$out" >&2; die "no BENCH line from wrk"; }
  echo "$line"
}

cpu_busy() { # $1 = CPU: its busy ticks (user nice system irq softirq steal) from /proc/stat
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

field() { # $1 = BENCH line, $2 = key
  local v
  v="$(sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1")"
  echo "${v:-0}"
}

cache_stats() { # $1 = admin address (empty: none); prints "hits misses bytes entries capacity" from /stats, or dashes
  [ -n "$1" ] || { echo "- - - - -"; return; }
  python3 - "$1" <<'EOF' || die "could not read http://$1/stats"
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(f"http://{sys.argv[1]}/stats", timeout=5) as response:
    cache = json.load(response).get("token_cache")
keys = ("hits", "misses", "bytes", "entries", "capacity")
print(" ".join(str(cache[k]) for k in keys) if cache else "- - - - -")
EOF
}

measure() { # $1 = variant, $2 = address, $3 = pid, $4 = round, $5 = workload, $6 = tokens,
  # $7 = expected status, $8 = admin address (empty: none); appends a row to results.tsv
  local w line s0 s1 c0 c1 b0 b1 d0 d1 req dur bad errs h0 m0 h1 m1 bytes entries capacity hits misses
  w="$(run_wrk "$warmup" "$2" "$6" "$7")"
  [ "$(field "$w" unexpected)" = 0 ] || die "$alg $5 $1: warm-up saw responses other than $7: $w"
  # The cache's counters before and after the measured run (outside it: /stats costs the server).
  read -r h0 m0 _ _ _ <<<"$(cache_stats "$8")"
  c0="$(cpu_ticks $$ 16)"
  b0="$(cpu_busy "$server_cpu")" d0="$(cpu_busy "$client_cpu")"
  s0="$(cpu_ticks "$3" 14)"
  line="$(run_wrk "$secs" "$2" "$6" "$7")"
  s1="$(cpu_ticks "$3" 14)"
  b1="$(cpu_busy "$server_cpu")" d1="$(cpu_busy "$client_cpu")"
  c1="$(cpu_ticks $$ 16)"
  read -r h1 m1 bytes entries capacity <<<"$(cache_stats "$8")"
  hits=- misses=-
  if [ "$h0" != - ] && [ "$h1" != - ]; then hits=$((h1 - h0)) misses=$((m1 - m0)); fi
  req="$(field "$line" requests)"
  dur="$(field "$line" duration_us)"
  bad="$(field "$line" unexpected)"
  errs=$(($(field "$line" connect_errors) + $(field "$line" read_errors) + $(field "$line" write_errors) + $(field "$line" timeouts)))
  [ "$bad" = 0 ] || die "$alg $5 $1 round $4: $bad of $req responses were not $7; not the benchmark asked for"
  [ "$errs" = 0 ] || die "$alg $5 $1 round $4: $errs socket errors or timeouts: $line"
  [ "$req" -gt 0 ] || die "$alg $5 $1 round $4: no requests completed"
  # Columns: alg variant round requests duration_us p50_us p99_us server_ticks client_ticks
  # CLK_TCK, then the busy ticks of each CPU that the server (CPU 0) or wrk (CPU 1) did not use,
  # then workload, expected status, and the token cache's hits and misses during the measured
  # run, bytes, entries and capacity after it (- where the server has no cache to read).
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$alg" "$1" "$4" "$req" "$dur" \
    "$(field "$line" p50_us)" "$(field "$line" p99_us)" "$((s1 - s0))" "$((c1 - c0))" "$hz" \
    "$((b1 - b0 - (s1 - s0)))" "$((d1 - d0 - (c1 - c0)))" \
    "$5" "$7" "$hits" "$misses" "$bytes" "$entries" "$capacity" >>"$work/results.tsv"
  python3 -c "import sys; r, d, s, c, hz, o0, o1 = map(int, sys.argv[1:8]); pct = lambda t: max(t, 0) / hz / (d / 1e6) * 100; \
h, m = sys.argv[11:13]; cache = f'  cache hits {int(h) / (int(h) + int(m)) * 100:5.1f}%' if h != '-' and int(h) + int(m) > 0 else ''; \
print(f'    round {sys.argv[8]} {sys.argv[10]:8} {sys.argv[9]:8} {r / (d / 1e6):10.0f} req/s  server {s / hz * 1e6 / r:7.1f} us CPU/req' \
      f'  client CPU {pct(c):3.0f}%  other busy: CPU 0 {pct(o0):3.0f}%, CPU 1 {pct(o1):3.0f}%{cache}')" \
    "$req" "$dur" "$((s1 - s0))" "$((c1 - c0))" "$hz" "$((b1 - b0 - (s1 - s0)))" "$((d1 - d0 - (c1 - c0)))" "$4" "$1" \
    "$5" "$hits" "$misses" >&2
}

mint() { # signs with $key and $alg, kid "bench"; further flags in the arguments
  "$bin" mint --key "$key" --alg "$alg" --kid bench --sub user "$@"
}

# ---------------------------------------------------------------- the run

all_variants=(ceiling uring nocache epoll haproxy axum config nometrics baseline)
baseline_bin="${BENCH_BASELINE_BIN:-}"
default_variants=(ceiling uring nocache epoll haproxy axum config nometrics)
if [ -n "$baseline_bin" ]; then
  [ -x "$baseline_bin" ] || die "BENCH_BASELINE_BIN: $baseline_bin is not an executable"
  default_variants+=(baseline)
  versions="$versions, baseline $baseline_bin"
fi
IFS=, read -r -a variants <<<"${BENCH_VARIANTS:-$(IFS=,; echo "${default_variants[*]}")}"

for v in "${variants[@]}"; do
  [[ " ${all_variants[*]} " == *" $v "* ]] || die "BENCH_VARIANTS: no server '$v' (${all_variants[*]})"
done
has() { [[ " ${variants[*]} " == *" $1 "* ]]; }
if has baseline && [ -z "$baseline_bin" ]; then
  die "BENCH_VARIANTS names baseline: set BENCH_BASELINE_BIN to the baseline binary"
fi

all_workloads=(repeat distinct forged)
IFS=, read -r -a workloads <<<"${BENCH_WORKLOADS:-$(IFS=,; echo "${all_workloads[*]}")}"
[ ${#workloads[@]} -gt 0 ] || die "BENCH_WORKLOADS names no workload (${all_workloads[*]})"
for w in "${workloads[@]}"; do
  [[ " ${all_workloads[*]} " == *" $w "* ]] || die "BENCH_WORKLOADS: no workload '$w' (${all_workloads[*]})"
done
has_workload() { [[ " ${workloads[*]} " == *" $1 "* ]]; }

servers_of() { # $1 = workload: the servers it runs, one a line, in the order of the chosen servers
  local v
  for v in "${variants[@]}"; do
    # ceiling answers 200 to anything: it has no place among forgeries.
    [ "$1:$v" = forged:ceiling ] && continue
    if [ -z "${BENCH_VARIANTS:-}" ]; then
      # By default the cache workloads run the servers that their ratios need.
      case "$1:$v" in
        repeat:epoll | repeat:config | repeat:nometrics) continue ;;
        forged:epoll | forged:config | forged:nometrics) continue ;;
      esac
    fi
    echo "$v"
  done
}

expected_status() { # $1 = workload
  case "$1" in
    forged) echo 401 ;;
    *) echo 200 ;;
  esac
}

# Only the servers that some chosen workload runs are started.
used=()
for v in "${variants[@]}"; do
  for w in "${workloads[@]}"; do
    if servers_of "$w" | grep -qx "$v"; then
      used+=("$v")
      break
    fi
  done
done
[ ${#used[@]} -gt 0 ] || die "no server to run: BENCH_VARIANTS=${BENCH_VARIANTS:-} has none for BENCH_WORKLOADS=${workloads[*]}"
variants=("${used[@]}")
n_runs=0
for w in "${workloads[@]}"; do
  n_runs=$((n_runs + $(servers_of "$w" | grep -c .)))
done

lock_version() { # $1 = Cargo.lock, $2 = package: its version there
  awk -v name="name = \"$2\"" '$0 == name { getline; gsub(/version = |"/, ""); print; exit }' "$1"
}
peer_bin=""
peer_versions=""
if has axum; then
  # Its own workspace (not a member of the root one): built here, never by cargo build or test at the root.
  cargo build --locked --release --quiet --manifest-path bench/peer-axum/Cargo.toml \
    --target-dir "${CARGO_TARGET_DIR:-target}"
  peer_bin="${CARGO_TARGET_DIR:-target}/release/jwtgate-peer-axum"
  [ -x "$peer_bin" ] || die "the axum peer was not built at $peer_bin"
  peer_lock=bench/peer-axum/Cargo.lock
  peer_versions="axum $(lock_version "$peer_lock" axum) + jsonwebtoken $(lock_version "$peer_lock" jsonwebtoken)\
 (aws-lc-rs $(lock_version "$peer_lock" aws-lc-rs)), tokio $(lock_version "$peer_lock" tokio) current_thread"
  versions="$versions, $peer_versions"
fi

write_config() { # the same token checks as a configuration file behind 29 other rules; prints its path
  local file="$work/$alg.toml" i
  {
    echo 'default_action = "deny"'
    echo '[[token_config]]'
    echo 'name = "bench"'
    echo "jwks_file = \"$jwks\""
    echo "algorithms = [\"$alg\"]"
    echo "issuer = \"$iss\""
    echo "audiences = [\"$aud\"]"
    for ((i = 0; i < 29; i++)); do
      printf '[[rule]]\nname = "svc%d"\nhosts = ["svc%d.example.com", "*.svc%d.example.net"]\npaths = ["/svc%d/**"]\ntoken_configs = ["bench"]\nexclude = ["GET /svc%d/health"]\n' "$i" "$i" "$i" "$i" "$i"
    done
    printf '[[rule]]\nname = "bench"\nhosts = ["127.0.0.1"]\npaths = ["/**"]\ntoken_configs = ["bench"]\nexclude = ["GET /health"]\nforward_claims = { sub = "x-jwt-sub", aud = "x-jwt-aud" }\n'
  } >"$file"
  echo "$file"
}
n_algs="$(tr ',' '\n' <<<"$algs" | grep -c .)"
echo "bench-http: $n_algs algorithm(s) x $n_runs server runs (workloads ${workloads[*]}) x $rounds rounds x (${warmup} s warm-up + ${secs} s);" \
  "about $((n_algs * n_runs * rounds * (warmup + secs) / 60 + 1)) min" >&2
: >"$work/results.tsv"
now="$(date +%s)"
for alg in ${algs//,/ }; do
  case "$alg" in
    RS256) key=tests/data/rsa2048-a.pk8.pem pub=tests/data/rsa2048-a.spki.pem \
      other=ES256 other_key=tests/data/p256.pk8.pem ;;
    ES256) key=tests/data/p256.pk8.pem pub=tests/data/p256.spki.pem \
      other=RS256 other_key=tests/data/rsa2048-a.pk8.pem ;;
    *) die "no bench key for $alg (RS256 or ES256)" ;;
  esac
  tokens="$work/$alg.tokens"
  # jwtgate gets the key as a JWKS with kid "bench" (PEM keys carry no kid, and the
  # tokens name one), HAProxy and the axum peer the same key as PEM.
  jwks="$work/$alg.jwks"
  python3 bench/http/spki2jwks.py "$pub" bench "$alg" >"$jwks"
  echo "$alg: minting $count tokens..." >&2
  mint --iss "$iss" --aud "$aud" --ttl 86400 --count "$count" >"$tokens"
  [ "$(grep -c . "$tokens")" = "$count" ] || die "mint did not write $count tokens"
  valid="$(head -1 "$tokens")"
  last="$(tail -1 "$tokens")"
  expired="$(mint --iss "$iss" --aud "$aud" --now $((now - 7200)) --ttl 3600)"
  wrong_aud="$(mint --iss "$iss" --aud other-api --ttl 86400)"
  wrong_iss="$(mint --iss https://other.invalid/ --aud "$aud" --ttl 86400)"
  tampered="$(tamper "$valid")"
  other_alg="$(alg="$other" key="$other_key" mint --iss "$iss" --aud "$aud" --ttl 86400)"
  # The token file of each workload.
  declare -A files=([distinct]="$tokens")
  if has_workload repeat; then
    files[repeat]="$work/$alg.repeat.tokens"
    echo "$alg: minting $repeat_count tokens for the repeat workload..." >&2
    mint --iss "$iss" --aud "$aud" --ttl 86400 --count "$repeat_count" >"${files[repeat]}"
    [ "$(sort -u "${files[repeat]}" | grep -c .)" = "$repeat_count" ] || die "mint did not write $repeat_count distinct tokens"
  fi
  if has_workload forged; then
    # Each distinct token with one signature character changed, as tamper() does.
    files[forged]="$work/$alg.forged.tokens"
    python3 -c 'import sys
for line in sys.stdin:
    head, _, sig = line.strip().rpartition(".")
    mid = len(sig) // 2
    c = "B" if sig[mid] == "A" else "A"
    print(f"{head}.{sig[:mid]}{c}{sig[mid + 1:]}")' <"$tokens" >"${files[forged]}"
    [ "$(sort -u "${files[forged]}" | grep -c .)" = "$count" ] || die "did not write $count distinct forged tokens"
    [ "$(head -1 "${files[forged]}")" = "$tampered" ] || die "the forged tokens are not tampered as tamper() does"
  fi

  echo "$alg: starting servers on CPU $server_cpu" >&2
  declare -A addrs=() spids=() admins=()
  if has ceiling; then
    start_jwtgate "ceiling-$alg" uring --danger-no-verify
    addrs[ceiling]="$addr" spids[ceiling]="$pid"
    expect ceiling "${addrs[ceiling]}" 200 "a valid token" "$valid"
  fi
  if has uring; then
    start_jwtgate "uring-$alg" uring
    addrs[uring]="$addr" spids[uring]="$pid" admins[uring]="$admin"
  fi
  if has nocache; then
    start_jwtgate "nocache-$alg" uring --token-cache-entries 0
    addrs[nocache]="$addr" spids[nocache]="$pid" admins[nocache]="$admin"
  fi
  if has epoll; then
    start_jwtgate "epoll-$alg" epoll
    addrs[epoll]="$addr" spids[epoll]="$pid" admins[epoll]="$admin"
  fi
  if has haproxy; then
    start_haproxy
    addrs[haproxy]="$addr" spids[haproxy]="$pid"
  fi
  if has axum; then
    start_axum
    addrs[axum]="$addr" spids[axum]="$pid"
  fi
  if has config; then
    start_jwtgate "config-$alg" uring --config "$(write_config)"
    addrs[config]="$addr" spids[config]="$pid" admins[config]="$admin"
  fi
  if has nometrics; then
    start_jwtgate "nometrics-$alg" uring --no-metrics
    addrs[nometrics]="$addr" spids[nometrics]="$pid" admins[nometrics]="$admin"
  fi
  if has baseline; then
    start_jwtgate "baseline-$alg" uring
    addrs[baseline]="$addr" spids[baseline]="$pid" admins[baseline]="$admin"
  fi

  # Correctness first: every verifying server accepts the valid tokens and refuses the others.
  for v in "${variants[@]}"; do
    [ "$v" = ceiling ] && continue
    a="${addrs[$v]}"
    expect "$v" "$a" 200 "the first valid token" "$valid"
    expect "$v" "$a" 200 "the last valid token" "$last"
    expect "$v" "$a" 401 "a tampered signature" "$tampered"
    expect "$v" "$a" 401 "an expired token" "$expired"
    expect "$v" "$a" 401 "a wrong audience" "$wrong_aud"
    expect "$v" "$a" 401 "a wrong issuer" "$wrong_iss"
    expect "$v" "$a" 401 "a token of another algorithm" "$other_alg"
    expect "$v" "$a" 401 "no token" ""
  done
  # And each workload's servers answer the first and last tokens of its file as expected.
  for w in "${workloads[@]}"; do
    for v in $(servers_of "$w"); do
      expect "$v" "${addrs[$v]}" "$(expected_status "$w")" "the first $w token" "$(head -1 "${files[$w]}")"
      expect "$v" "${addrs[$v]}" "$(expected_status "$w")" "the last $w token" "$(tail -1 "${files[$w]}")"
    done
  done
  echo "$alg: checked: 200 for valid tokens; 401 for tampered, expired, wrong aud/iss/alg, missing (ceiling: 200)" >&2

  for w in "${workloads[@]}"; do
    mapfile -t servers < <(servers_of "$w")
    echo "$alg $w: $(grep -c . "${files[$w]}") tokens, expecting $(expected_status "$w"): ${servers[*]}" >&2
    for ((r = 1; r <= rounds; r++)); do
      for ((k = 0; k < ${#servers[@]}; k++)); do
        v="${servers[(k + r - 1) % ${#servers[@]}]}"
        measure "$v" "${addrs[$v]}" "${spids[$v]}" "$r" "$w" "${files[$w]}" "$(expected_status "$w")" \
          "$([ "$v" = ceiling ] || echo "${admins[$v]:-}")"
      done
    done
  done

  # Graceful stop (SIGTERM: jwtgate drains and exits 0; HAProxy and the axum peer just exit).
  for v in "${variants[@]}"; do kill -TERM "${spids[$v]}" 2>/dev/null || true; done
  for v in "${variants[@]}"; do
    case "$v" in haproxy | axum) continue ;; esac
    st=0
    stop "${spids[$v]}" || st=$?
    [ "$st" = 0 ] || echo "bench-http: warning: jwtgate ($v) exited with status $st on SIGTERM" >&2
  done
  if has haproxy; then stop "${spids[haproxy]}" || true; fi
  if has axum; then stop "${spids[axum]}" || true; fi
  pids=()
  unset addrs spids admins files
done

python3 - "$work/results.tsv" "$conns" "$secs" "$rounds" "$versions" "$count" "$repeat_count" <<'EOF'
import sys
from statistics import median
path, conns, secs, rounds, versions, count, repeat_count = sys.argv[1:8]
count, repeat_count = int(count), int(repeat_count)
print(versions)
rows = {}
for line in open(path):
    (alg, var, rnd, req, dur, p50, p99, sticks, cticks, hz, other0, other1,
     workload, expect, hits, misses, nbytes, entries, capacity) = line.rstrip("\n").split("\t")
    req, dur, sticks, cticks, hz = int(req), int(dur), int(sticks), int(cticks), int(hz)
    secs_run = dur / 1e6
    lookups = int(hits) + int(misses) if hits != "-" else 0
    rows.setdefault(alg, {}).setdefault(workload, {}).setdefault(var, []).append({
        "rps": req / secs_run, "p50": int(p50), "p99": int(p99),
        "cpu": sticks / hz * 1e6 / req, "client": cticks / hz / secs_run,
        "other": max(int(other0), int(other1)) / hz / secs_run, "round": int(rnd),
        # The cache: hit ratio over the measured run, bytes after it (None: no cache to read).
        "hit_ratio": int(hits) / lookups if lookups else None,
        "bytes": int(nbytes) if nbytes != "-" and int(capacity) > 0 else None,
        "capacity": int(capacity) if capacity != "-" else None})
labels = {"ceiling": "jwtgate no-verify (ceiling)", "uring": "jwtgate --io uring",
          "nocache": "jwtgate --io uring --token-cache-entries 0",
          "epoll": "jwtgate --io epoll", "haproxy": "haproxy 2.6 jwt_verify",
          "axum": "axum + jsonwebtoken (1 thread)",
          "config": "jwtgate --config, 30 rules", "nometrics": "jwtgate --io uring --no-metrics",
          "baseline": "baseline jwtgate --io uring"}
order = ("ceiling", "uring", "nocache", "epoll", "haproxy", "axum", "config", "nometrics", "baseline")
workloads = {
    "repeat": f"{repeat_count:,} distinct valid tokens rotating (within each shard's cache), expect 200",
    "distinct": f"{count:,} distinct valid tokens rotating (more than a shard's cache holds by default), expect 200",
    "forged": f"{count:,} distinct forged tokens (valid header and payload, a changed signature), expect 401",
}
targets = {"RS256": 1.5, "ES256": 1.45}
def us(v):
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} us"
def size(b):
    return f"{b / 2**20:.1f} MiB" if b >= 2**20 else f"{b / 1024:.0f} KiB" if b >= 1024 else f"{b} B"
def cached(rs, k):
    values = [r[k] for r in rs if r[k] is not None]
    return median(values) if values else None
numeric = ("rps", "p50", "p99", "cpu", "client", "other")
for alg, by_workload in rows.items():
    print(f"\n{alg}: {conns} connections, {secs} s per run, median of {rounds} interleaved rounds "
          f"(server on CPU 0, wrk on CPU 1)")
    for workload in ("repeat", "distinct", "forged"):
        by = by_workload.get(workload)
        if not by:
            continue
        m = {v: {k: median(r[k] for r in rs) for k in numeric} for v, rs in by.items()}
        for v, rs in by.items():
            m[v]["hit_ratio"] = cached(rs, "hit_ratio")
            m[v]["bytes"] = cached(rs, "bytes")
            m[v]["capacity"] = cached(rs, "capacity")
        print(f"\n{alg} {workload}: {workloads[workload]}")
        print(f"| server | requests/s | p50 | p99 | server CPU/req | runs (req/s) | cache hit ratio | cache bytes/shard |")
        print(f"|---|---|---|---|---|---|---|---|")
        for v in order:
            if v not in m:
                continue
            runs = " ".join(f"{r['rps']:.0f}" for r in by[v])
            # "-": nothing to read (no jwtgate, or --no-metrics, which counts nothing and
            # reports a capacity of 0 although its cache is on).
            hit = m[v]["hit_ratio"]
            off = v == "nocache" and m[v]["capacity"] == 0
            hit_s = f"{hit * 100:.1f}%" if hit is not None else "off" if off else "-"
            bytes_s = size(m[v]["bytes"]) if m[v]["bytes"] is not None else "off" if off else "-"
            print(f"| {labels[v]} | {m[v]['rps']:,.0f} | {us(m[v]['p50'])} | {us(m[v]['p99'])} "
                  f"| {m[v]['cpu']:.1f} us | {runs} | {hit_s} | {bytes_s} |")
        # The better of the two peers by requests/s, as "peer".
        peers = [v for v in ("haproxy", "axum") if v in m]
        if peers:
            best = max(peers, key=lambda v: m[v]["rps"])
            m["peer"] = m[best]
            labels["peer"] = f"best peer ({best})"
        t = targets.get(alg)
        if workload == "distinct":
            wanted = [
                ("jwtgate-uring / haproxy, requests/s", "uring", "haproxy", "rps", (">=", t) if t else None),
                ("jwtgate-uring / ceiling, requests/s", "uring", "ceiling", "rps", None),
                ("haproxy / jwtgate-uring, CPU per request", "haproxy", "uring", "cpu", None),
                ("jwtgate-uring / epoll, CPU per request", "uring", "epoll", "cpu", ("<=", 1.1)),
                ("config (30 rules) / flags-only, requests/s", "config", "uring", "rps", None),
                ("config (30 rules) / flags-only, CPU per request", "config", "uring", "cpu", None),
                ("metrics on / --no-metrics, requests/s", "uring", "nometrics", "rps", None),
                ("metrics on / --no-metrics, CPU per request", "uring", "nometrics", "cpu", ("<=", 1.03)),
                ("jwtgate-uring / baseline, requests/s", "uring", "baseline", "rps", None),
                ("jwtgate-uring / baseline, CPU per request", "uring", "baseline", "cpu", None),
                ("cache on / off (uring / nocache), requests/s", "uring", "nocache", "rps", (">=", 0.97)),
                ("cache on / off (uring / nocache), CPU per request", "uring", "nocache", "cpu", None),
                ("jwtgate-uring / axum, requests/s", "uring", "axum", "rps", None),
            ]
        elif workload == "repeat":
            wanted = [
                ("jwtgate-uring / ceiling, requests/s", "uring", "ceiling", "rps", (">=", 0.8)),
                (f"jwtgate-uring / {labels.get('peer', 'best peer')}, requests/s", "uring", "peer", "rps", (">=", 3)),
                ("jwtgate-uring / haproxy, requests/s", "uring", "haproxy", "rps", None),
                ("jwtgate-uring / axum, requests/s", "uring", "axum", "rps", None),
                ("cache on / off (uring / nocache), requests/s", "uring", "nocache", "rps", None),
                ("cache on / off (uring / nocache), CPU per request", "uring", "nocache", "cpu", None),
                ("jwtgate-uring / baseline, requests/s", "uring", "baseline", "rps", None),
            ]
        else:
            wanted = [
                ("cache on / off (uring / nocache), requests/s", "uring", "nocache", "rps", (">=", 1.0)),
                ("cache on / off (uring / nocache), CPU per request", "uring", "nocache", "cpu", None),
                ("jwtgate-uring / haproxy, requests/s", "uring", "haproxy", "rps", None),
                ("jwtgate-uring / axum, requests/s", "uring", "axum", "rps", None),
                ("jwtgate-uring / baseline, requests/s", "uring", "baseline", "rps", None),
            ]
        ratios = [(name, m[a][k] / m[b][k], target) for name, a, b, k, target in wanted
                  if a in m and b in m]
        for name, x, target in ratios:
            line = f"  {name:50} {x:5.2f}x"
            if target:
                op, v = target
                ok = x >= v if op == ">=" else x <= v
                line += f"   target {op} {v}x: {'ok' if ok else 'MISSED'}"
            print(line)
        busy = [labels[v] for v in by if m[v]["client"] > 0.9]
        if busy:
            print(f"  note: wrk used over 90% of CPU 1 against {', '.join(busy)}: "
                  "those rows may measure the client, not the server")
        noisy = [f"{labels[v]} round {r['round']} ({r['other'] * 100:.0f}%)"
                 for v in by for r in by[v] if r["other"] > 0.1]
        if noisy:
            print(f"  note: other work kept a benchmark CPU over 10% busy during: {', '.join(noisy)}")
        labels.pop("peer", None)
EOF
