#!/usr/bin/env bash
# jwtgate's gRPC face (Envoy's envoy.service.auth.v3.Authorization/Check, unary,
# HTTP/2 cleartext) against its HTTP face, side by side in one run: the same
# binary, the same process, the same shard. The server runs on CPU 0
# (`jwtgate serve --shards 1 --io uring --grpc-listen ...`, every thread pinned
# there), and each face is loaded in turn from CPU 1:
#   HTTP  wrk, 1 thread, 64 connections, bench/http/rotate.lua: GET / with the
#         next token of the workload's file as `Authorization: Bearer`, expecting
#         200 (as scripts/bench-http.sh does).
#   gRPC  bench/grpc-load (its own Cargo workspace, built here in release): 8
#         HTTP/2 connections x 8 streams (64 calls in flight, as wrk's 64
#         connections), one thread; every token of the file pre-encoded as a
#         gRPC-framed CheckRequest stating `GET /` with the token in its headers
#         map (as Envoy sends it); each call expects HTTP 200, grpc-status 0 and
#         a CheckResponse with status OK and an ok_response.
# Workloads (RS256, key tests/data/rsa2048-a, tokens with kid "bench", the key
# given to jwtgate as a JWKS made by bench/http/spki2jwks.py):
#   repeat   1,000 distinct valid tokens sent over and over: the shard's
#            verified-token cache (4,096 entries by default) holds them all, so
#            after the warm-up every lookup hits.
#   distinct 10,000 distinct valid tokens: more than the cache holds, and each
#            token comes back only after 9,999 others. Most checks verify an RSA
#            signature; not all, since a full cache set admits a token only when
#            it comes back, so a stable part of the rotation stays cached (the
#            README's 38%; the hit ratio is printed beside the figures).
#   ceiling  a second server with --danger-no-verify, which answers 200 (gRPC:
#            OK with an ok_response) without reading the token, on both faces
#            (the 10,000 tokens of distinct as the requests): each face's cost
#            with no verification at all.
# Rounds are interleaved (the faces' order alternates each round) so that drift
# in machine speed hits both faces alike; each measured run follows a warm-up run
# of the same face (which also fills the cache). Prints, per workload and face,
# the medians of requests/s, p50 and p99 latency (as the client measures it, send
# to whole answer) and the server's CPU time per check (utime+stime of the server
# process from /proc/PID/stat over the measured run, divided by the checks the
# client had answered), the token cache's hit ratio over the measured run (from
# the admin port's /stats), and the ratios gRPC / HTTP of CPU per check (target
# <= 1.5 where the server verifies) and of requests/s, and the difference of
# their CPU per check (what the gRPC face costs a check beyond the HTTP face's).
# The /stats counters by face also prove that each run's checks came in by the
# face it loaded, and by that face only. Any answer other than the expected one
# (a non-200, a gRPC error, a CheckResponse that is not OK with an ok_response, a
# socket error or timeout) aborts the run.
#   scripts/bench-grpc.sh [SECONDS] [ROUNDS]     (defaults: 10 3)
#   environment: BENCH_WARMUP=SECONDS (warm-up before each measured run, default 2)
#                BENCH_WORKLOADS=repeat,distinct (a subset of the workloads, in
#                  that order; default repeat,distinct,ceiling)
#                BENCH_GRPC_CONNECTIONS=8, BENCH_GRPC_STREAMS=8 (the gRPC load;
#                  wrk gets their product as its connections, so that both faces
#                  have as many checks in flight)
# Needs wrk (Debian: apt-get install wrk), taskset, python3, curl, and 2 CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
rounds="${2:-3}"
warmup="${BENCH_WARMUP:-2}"
grpc_connections="${BENCH_GRPC_CONNECTIONS:-8}"
grpc_streams="${BENCH_GRPC_STREAMS:-8}"
server_cpu=0
client_cpu=1
alg=RS256
key=tests/data/rsa2048-a.pk8.pem
pub=tests/data/rsa2048-a.spki.pem
other_key=tests/data/p256.pk8.pem # a token of another algorithm, refused
iss="https://bench.invalid/"
aud="bench-api"
count=10000        # tokens of the distinct workload (and of the ceiling's requests)
repeat_count=1000  # tokens of the repeat workload

die() { echo "bench-grpc: $*" >&2; exit 1; }
for v in "$secs" "$rounds" "$warmup" "$grpc_connections" "$grpc_streams"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "SECONDS, ROUNDS, BENCH_WARMUP and BENCH_GRPC_* must be positive integers (got '$v')"
done
in_flight=$((grpc_connections * grpc_streams))
wrk=/usr/bin/wrk
[ -x "$wrk" ] || die "$wrk not found (Debian package wrk: apt-get install wrk)"
for tool in taskset python3 getconf curl; do command -v "$tool" >/dev/null || die "$tool not found"; done
taskset -c "$client_cpu" true 2>/dev/null || die "CPU $client_cpu is not available: this benchmark needs 2 CPUs"
hz="$(getconf CLK_TCK)"
lua="$PWD/bench/http/rotate.lua"

all_workloads=(repeat distinct ceiling)
IFS=, read -r -a workloads <<<"${BENCH_WORKLOADS:-$(IFS=,; echo "${all_workloads[*]}")}"
[ ${#workloads[@]} -gt 0 ] || die "BENCH_WORKLOADS names no workload (${all_workloads[*]})"
for w in "${workloads[@]}"; do
  [[ " ${all_workloads[*]} " == *" $w "* ]] || die "BENCH_WORKLOADS: no workload '$w' (${all_workloads[*]})"
done
has_workload() { [[ " ${workloads[*]} " == *" $1 "* ]]; }

cargo build --locked --release --quiet
# Its own workspace (not a member of the root one): built here, never by cargo build or test at the root.
cargo build --locked --release --quiet --manifest-path bench/grpc-load/Cargo.toml \
  --target-dir "${CARGO_TARGET_DIR:-target}"
bin="${CARGO_TARGET_DIR:-target}/release/jwtgate"
load_bin="${CARGO_TARGET_DIR:-target}/release/jwtgate-grpc-load"
[ -x "$load_bin" ] || die "the gRPC load generator was not built at $load_bin"
lock_version() { # $1 = Cargo.lock, $2 = package: its version there
  awk -v name="name = \"$2\"" '$0 == name { getline; gsub(/version = |"/, ""); print; exit }' "$1"
}
load_lock=bench/grpc-load/Cargo.lock
versions="jwtgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock bench/grpc-load 2>/dev/null || echo '+changes'),\
 $("$wrk" -v 2>&1 | head -1 | cut -d' ' -f1-2), jwtgate-grpc-load (h2 $(lock_version "$load_lock" h2), prost $(lock_version "$load_lock" prost),\
 tokio $(lock_version "$load_lock" tokio) current_thread), Linux $(uname -r)"
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
# cpu_ticks, wait_port, check_pinned and cpu_busy as in scripts/bench-http.sh.

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

check_pinned() { # $1 = name, $2 = pid: every thread of the server may run on the server CPU only
  local f cpus
  for f in /proc/"$2"/task/*/status; do
    cpus="$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$f" 2>/dev/null)" || continue
    [ -z "$cpus" ] || [ "$cpus" = "$server_cpu" ] || die "$1: thread ${f%/status} may run on CPUs $cpus, not only CPU $server_cpu"
  done
}

cpu_busy() { # $1 = CPU: its busy ticks (user nice system irq softirq steal) from /proc/stat
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

start_jwtgate() { # $1 = name, then extra flags; sets addr, grpc, admin and pid
  local name="$1" fifo="$work/$1.fifo" fd line="" i
  shift
  mkfifo "$fifo"
  exec {fd}<>"$fifo" # read-write: the open does not wait for the server
  taskset -c "$server_cpu" "$bin" serve --listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 --shards 1 --io uring \
    --jwks "$jwks" --issuer "$iss" --audience "$aud" "$@" \
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
  # jwtgate serve: listening on A (shards N, io X), grpc on G, admin on B
  addr="${line#*listening on }"
  addr="${addr%% *}"
  grpc="${line#*, grpc on }"
  grpc="${grpc%%,*}"
  admin="${line##*, admin on }"
  [[ "$addr" == 127.0.0.1:* ]] || die "$name listens on '$addr', not 127.0.0.1"
  [[ "$grpc" == 127.0.0.1:* ]] || die "$name serves gRPC on '$grpc', not 127.0.0.1: $line"
  [[ "$admin" == 127.0.0.1:* ]] || die "$name has its admin port on '$admin', not 127.0.0.1"
  [[ "$line" == *"(shards 1, io uring)"* ]] || die "$name was asked for one shard on io_uring but reports: $line"
  wait_port "$addr" "$pid" || { cat "$work/$name.err" >&2; die "$name ($addr) does not accept connections"; }
  wait_port "$grpc" "$pid" || { cat "$work/$name.err" >&2; die "$name ($grpc) does not accept gRPC connections"; }
  check_pinned "$name" "$pid"
  # The fd stays open (and the FIFO readable) for the server's lifetime.
}

http_code() { # $1 = host:port, $2 = token (empty: no Authorization header); prints the status code
  local auth=()
  [ -n "$2" ] && auth=(-H "Authorization: Bearer $2")
  curl -s -o /dev/null --max-time 5 -w '%{http_code}' "${auth[@]}" "http://$1/" || true
}

expect_http() { # $1 = name, $2 = address, $3 = expected code, $4 = what, $5 = token
  local got
  got="$(http_code "$2" "$5")"
  [ "$got" = "$3" ] || die "$1 (HTTP): $4 answered $got, expected $3; not measuring"
}

expect_grpc() { # $1 = name, $2 = address, $3 = expected CheckResponse code, $4 = what, $5 = token
  local file="$work/one.token" out
  echo "$5" >"$file"
  out="$(timeout 30 "$load_bin" --addr "$2" --tokens "$file" --connections 1 --streams 1 \
    --calls 1 --expect-code "$3" 2>&1)" \
    || die "$1 (gRPC): $4 was not answered with code $3; not measuring: $out"
}

tamper() { # flips one character in the middle of the signature
  local sig="${1##*.}" mid c
  mid=$((${#sig} / 2))
  c="${sig:mid:1}"
  if [ "$c" = A ]; then c=B; else c=A; fi
  echo "${1%.*}.${sig:0:mid}${c}${sig:mid+1}"
}

field() { # $1 = BENCH line, $2 = key
  local v
  v="$(sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1")"
  echo "${v:-0}"
}

run_http() { # $1 = seconds, $2 = address, $3 = tokens; prints wrk's BENCH line
  local out line
  out="$(BENCH_TOKENS="$3" BENCH_EXPECT=200 timeout $(($1 + 30)) taskset -c "$client_cpu" \
    "$wrk" -t 1 -c "$in_flight" -d "${1}s" --timeout 5s -s "$lua" "http://$2/" 2>&1)" \
    || { echo "$out" >&2; die "wrk failed against $2"; }
  line="$(grep '^BENCH ' <<<"$out")" || { echo "$out" >&2; die "no BENCH line from wrk"; }
  local errs=$(($(field "$line" connect_errors) + $(field "$line" read_errors) + $(field "$line" write_errors) + $(field "$line" timeouts)))
  [ "$(field "$line" unexpected)" = 0 ] || die "wrk against $2: answers other than 200: $line"
  [ "$errs" = 0 ] || die "wrk against $2: socket errors or timeouts: $line"
  echo "$line"
}

run_grpc() { # $1 = seconds, $2 = address, $3 = tokens; prints a BENCH line as wrk's
  local out st=0
  out="$(timeout $(($1 + 30)) taskset -c "$client_cpu" "$load_bin" --addr "$2" --tokens "$3" \
    --connections "$grpc_connections" --streams "$grpc_streams" --seconds "$1" --timeout 5)" || st=$?
  [ "$st" = 0 ] || die "grpc-load against $2 failed (exit $st): $out"
  python3 -c 'import json, sys
d = json.loads(sys.argv[1])
print("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d"
      % (d["requests"], round(d["seconds"] * 1e6), d["p50_us"], d["p99_us"], d["errors"]))' "$out" \
    || die "grpc-load's summary is not JSON: $out"
}

server_counts() { # $1 = admin address; prints "hits misses http_checks grpc_checks" from /stats
  python3 - "$1" <<'EOF' || die "could not read http://$1/stats"
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(f"http://{sys.argv[1]}/stats", timeout=5) as response:
    stats = json.load(response)
cache = stats.get("token_cache") or {}
faces = {"http": 0, "grpc": 0}
for row in stats["counters"]:
    faces[row["face"]] = faces.get(row["face"], 0) + row["count"]
print(cache.get("hits", 0), cache.get("misses", 0), faces["http"], faces["grpc"])
EOF
}

measure() { # $1 = workload, $2 = face, $3 = round, $4 = tokens; appends a row to results.tsv
  local w="$1" face="$2" target line s0 s1 c0 c1 b0 b1 d0 d1 req dur
  local h0 m0 x0 g0 h1 m1 x1 g1 own other
  if [ "$face" = http ]; then target="${http_addr[$w]}"; else target="${grpc_addr[$w]}"; fi
  "run_$face" "$warmup" "$target" "$4" >/dev/null
  # The server's counters before and after the measured run (outside it: /stats costs the server).
  read -r h0 m0 x0 g0 <<<"$(server_counts "${admin_addr[$w]}")"
  c0="$(cpu_ticks $$ 16)"
  b0="$(cpu_busy "$server_cpu")" d0="$(cpu_busy "$client_cpu")"
  s0="$(cpu_ticks "${server_pid[$w]}" 14)"
  line="$("run_$face" "$secs" "$target" "$4")"
  s1="$(cpu_ticks "${server_pid[$w]}" 14)"
  b1="$(cpu_busy "$server_cpu")" d1="$(cpu_busy "$client_cpu")"
  c1="$(cpu_ticks $$ 16)"
  read -r h1 m1 x1 g1 <<<"$(server_counts "${admin_addr[$w]}")"
  req="$(field "$line" requests)"
  dur="$(field "$line" duration_us)"
  [ "$req" -gt 0 ] || die "$w $face round $3: no checks answered"
  # Every answered check was counted by the loaded face (wrk leaves its last
  # requests unread, so the server may count a few more), and none by the other.
  if [ "$face" = http ]; then own=$((x1 - x0)) other=$((g1 - g0)); else own=$((g1 - g0)) other=$((x1 - x0)); fi
  [ "$own" -ge "$req" ] || die "$w $face round $3: the client counts $req answers, the server's $face face $own checks"
  [ "$other" = 0 ] || die "$w $face round $3: the other face counted $other checks during the run"
  # Columns: workload face round requests duration_us p50_us p99_us server_ticks client_ticks
  # CLK_TCK, the busy ticks of each CPU that the server (CPU 0) or the client (CPU 1) did not
  # use, then the token cache's hits and misses during the measured run.
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$face" "$3" "$req" "$dur" \
    "$(field "$line" p50_us)" "$(field "$line" p99_us)" "$((s1 - s0))" "$((c1 - c0))" "$hz" \
    "$((b1 - b0 - (s1 - s0)))" "$((d1 - d0 - (c1 - c0)))" "$((h1 - h0))" "$((m1 - m0))" >>"$work/results.tsv"
  python3 -c "import sys; r, d, s, c, hz, o0, o1, h, m = map(int, sys.argv[1:10]); pct = lambda t: max(t, 0) / hz / (d / 1e6) * 100; \
cache = f'  cache hits {h / (h + m) * 100:5.1f}%' if h + m > 0 else ''; \
print(f'    round {sys.argv[10]} {sys.argv[11]:8} {sys.argv[12]:4} {r / (d / 1e6):10.0f} checks/s  server {s / hz * 1e6 / r:6.2f} us CPU/check' \
      f'  client CPU {pct(c):3.0f}%  other busy: CPU 0 {pct(o0):3.0f}%, CPU 1 {pct(o1):3.0f}%{cache}')" \
    "$req" "$dur" "$((s1 - s0))" "$((c1 - c0))" "$hz" "$((b1 - b0 - (s1 - s0)))" "$((d1 - d0 - (c1 - c0)))" \
    "$((h1 - h0))" "$((m1 - m0))" "$3" "$w" "$face" >&2
}

mint() { # signs with $key and $alg, kid "bench"; further flags in the arguments
  "$bin" mint --key "$key" --alg "$alg" --kid bench --sub user "$@"
}

# ---------------------------------------------------------------- the run

echo "bench-grpc: ${#workloads[@]} workload(s) (${workloads[*]}) x 2 faces x $rounds rounds x (${warmup} s warm-up + ${secs} s);" \
  "about $((${#workloads[@]} * 2 * rounds * (warmup + secs) / 60 + 1)) min" >&2
: >"$work/results.tsv"
now="$(date +%s)"
jwks="$work/$alg.jwks"
python3 bench/http/spki2jwks.py "$pub" bench "$alg" >"$jwks"
tokens="$work/$alg.tokens"
echo "$alg: minting $count tokens..." >&2
mint --iss "$iss" --aud "$aud" --ttl 86400 --count "$count" >"$tokens"
[ "$(sort -u "$tokens" | grep -c .)" = "$count" ] || die "mint did not write $count distinct tokens"
declare -A files=([distinct]="$tokens" [ceiling]="$tokens")
if has_workload repeat; then
  files[repeat]="$work/$alg.repeat.tokens"
  echo "$alg: minting $repeat_count tokens for the repeat workload..." >&2
  mint --iss "$iss" --aud "$aud" --ttl 86400 --count "$repeat_count" >"${files[repeat]}"
  [ "$(sort -u "${files[repeat]}" | grep -c .)" = "$repeat_count" ] || die "mint did not write $repeat_count distinct tokens"
fi
valid="$(head -1 "$tokens")"
expired="$(mint --iss "$iss" --aud "$aud" --now $((now - 7200)) --ttl 3600)"
wrong_aud="$(mint --iss "$iss" --aud other-api --ttl 86400)"
wrong_iss="$(mint --iss https://other.invalid/ --aud "$aud" --ttl 86400)"
tampered="$(tamper "$valid")"
other_alg="$(alg=ES256 key="$other_key" mint --iss "$iss" --aud "$aud" --ttl 86400)"

echo "$alg: starting servers on CPU $server_cpu" >&2
declare -A http_addr=() grpc_addr=() admin_addr=() server_pid=()
if has_workload repeat || has_workload distinct; then
  start_jwtgate "verify-$alg"
  for w in repeat distinct; do
    http_addr[$w]="$addr" grpc_addr[$w]="$grpc" admin_addr[$w]="$admin" server_pid[$w]="$pid"
  done
  # Correctness first: both faces accept the valid tokens and refuse the others
  # (gRPC: UNAUTHENTICATED, code 16, with a denied_response).
  for face in http grpc; do
    if [ "$face" = http ]; then a="$addr" ok=200 no=401; else a="$grpc" ok=0 no=16; fi
    "expect_$face" verify "$a" "$ok" "the first valid token" "$valid"
    "expect_$face" verify "$a" "$ok" "the last valid token" "$(tail -1 "$tokens")"
    if has_workload repeat; then
      "expect_$face" verify "$a" "$ok" "the first repeat token" "$(head -1 "${files[repeat]}")"
      "expect_$face" verify "$a" "$ok" "the last repeat token" "$(tail -1 "${files[repeat]}")"
    fi
    "expect_$face" verify "$a" "$no" "a tampered signature" "$tampered"
    "expect_$face" verify "$a" "$no" "an expired token" "$expired"
    "expect_$face" verify "$a" "$no" "a wrong audience" "$wrong_aud"
    "expect_$face" verify "$a" "$no" "a wrong issuer" "$wrong_iss"
    "expect_$face" verify "$a" "$no" "a token of another algorithm" "$other_alg"
  done
  expect_http verify "$addr" 401 "no token" ""
  echo "$alg: checked on both faces: valid tokens allowed; tampered, expired, wrong aud/iss/alg refused" >&2
fi
if has_workload ceiling; then
  start_jwtgate "ceiling-$alg" --danger-no-verify
  http_addr[ceiling]="$addr" grpc_addr[ceiling]="$grpc" admin_addr[ceiling]="$admin" server_pid[ceiling]="$pid"
  # What makes it the ceiling: a forgery is allowed on both faces.
  expect_http ceiling "$addr" 200 "a tampered signature" "$tampered"
  expect_grpc ceiling "$grpc" 0 "a tampered signature" "$tampered"
  echo "$alg: checked: the ceiling allows a forgery on both faces (it does not verify)" >&2
fi

for w in "${workloads[@]}"; do
  echo "$alg $w: $(grep -c . "${files[$w]}") tokens" >&2
  for ((r = 1; r <= rounds; r++)); do
    if ((r % 2)); then faces=(http grpc); else faces=(grpc http); fi
    for face in "${faces[@]}"; do
      measure "$w" "$face" "$r" "${files[$w]}"
    done
  done
done

# Graceful stop (SIGTERM: jwtgate drains and exits 0).
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do
  st=0
  stop "$p" || st=$?
  [ "$st" = 0 ] || echo "bench-grpc: warning: jwtgate (pid $p) exited with status $st on SIGTERM" >&2
done
pids=()

python3 - "$work/results.tsv" "$in_flight" "$grpc_connections" "$grpc_streams" "$secs" "$rounds" \
  "$versions" "$count" "$repeat_count" <<'EOF'
import sys
from statistics import median
path, in_flight, connections, streams, secs, rounds, versions, count, repeat_count = sys.argv[1:10]
count, repeat_count = int(count), int(repeat_count)
print(versions)
rows = {}
for line in open(path):
    (workload, face, rnd, req, dur, p50, p99, sticks, cticks, hz, other0, other1,
     hits, misses) = line.rstrip("\n").split("\t")
    req, dur, sticks, cticks, hz = int(req), int(dur), int(sticks), int(cticks), int(hz)
    secs_run = dur / 1e6
    lookups = int(hits) + int(misses)
    rows.setdefault(workload, {}).setdefault(face, []).append({
        "rps": req / secs_run, "p50": int(p50), "p99": int(p99),
        "cpu": sticks / hz * 1e6 / req, "client": cticks / hz / secs_run,
        "other": max(int(other0), int(other1)) / hz / secs_run, "round": int(rnd),
        "hit_ratio": int(hits) / lookups if lookups else None})
labels = {"http": f"HTTP/1.1 (wrk, {in_flight} connections)",
          "grpc": f"gRPC (grpc-load, {connections} connections x {streams} streams)"}
workloads = {
    "repeat": f"{repeat_count:,} distinct valid tokens rotating (within the shard's cache), "
              "expect 200 / OK",
    "distinct": f"{count:,} distinct valid tokens rotating (more than the shard's cache holds), "
                "expect 200 / OK",
    "ceiling": f"jwtgate --danger-no-verify (the token is not read), {count:,} tokens rotating, "
               "expect 200 / OK",
}
target = 1.5  # gRPC / HTTP, CPU per check, where the server verifies
def us(v):
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} us"
print(f"\nRS256: server on CPU 0 (1 shard, io_uring), client on CPU 1, {in_flight} checks in flight, "
      f"{secs} s per run, median of {rounds} interleaved rounds")
numeric = ("rps", "p50", "p99", "cpu", "client", "other")
for workload in ("repeat", "distinct", "ceiling"):
    by = rows.get(workload)
    if not by:
        continue
    m = {f: {k: median(r[k] for r in rs) for k in numeric} for f, rs in by.items()}
    print(f"\nRS256 {workload}: {workloads[workload]}")
    print("| face | checks/s | p50 | p99 | server CPU/check | runs (checks/s) | cache hit ratio |")
    print("|---|---|---|---|---|---|---|")
    for f in ("http", "grpc"):
        if f not in m:
            continue
        runs = " ".join(f"{r['rps']:.0f}" for r in by[f])
        hits = [r["hit_ratio"] for r in by[f] if r["hit_ratio"] is not None]
        hit_s = f"{median(hits) * 100:.1f}%" if hits else "-"
        print(f"| {labels[f]} | {m[f]['rps']:,.0f} | {us(m[f]['p50'])} | {us(m[f]['p99'])} "
              f"| {m[f]['cpu']:.2f} us | {runs} | {hit_s} |")
    if "http" in m and "grpc" in m:
        cpu = m["grpc"]["cpu"] / m["http"]["cpu"]
        line = f"  {'gRPC / HTTP, CPU per check':36} {cpu:5.2f}x"
        if workload != "ceiling":
            line += f"   target <= {target}x: {'ok' if cpu <= target else 'MISSED'}"
        print(line)
        print(f"  {'gRPC / HTTP, checks/s':36} {m['grpc']['rps'] / m['http']['rps']:5.2f}x")
        print(f"  {'gRPC - HTTP, CPU per check':36} {m['grpc']['cpu'] - m['http']['cpu']:+5.2f} us")
    busy = [labels[f] for f in m if m[f]["client"] > 0.9]
    if busy:
        print(f"  note: the client used over 90% of CPU 1 against {', '.join(busy)}: "
              "those rows may measure the client, not the server")
    noisy = [f"{labels[f]} round {r['round']} ({r['other'] * 100:.0f}%)"
             for f in by for r in by[f] if r["other"] > 0.1]
    if noisy:
        print(f"  note: other work kept a benchmark CPU over 10% busy during: {', '.join(noisy)}")
EOF
