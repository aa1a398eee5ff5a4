#!/usr/bin/env bash
# What an open connection costs one shard in memory. The README promises
# --max-connections (10,000 by default) per shard: this measures what holding
# them costs, so that a limit can be set from memory instead of guessed. For
# each COUNT N and each of two kinds of connection it starts a fresh
# `jwtgate serve --demo --shards 1` (every thread pinned to CPU 0,
# --max-connections N+64, --idle-timeout 600 so that nothing is closed while
# measuring), sends it one warm-up request on a connection of its own (so the
# one-off costs of a first request, such as its first verification and the
# token cache entry, are not charged to the N connections), reads its memory,
# then opens N connections from scripts/hold-connections.py on CPU 1, spread
# over source addresses 127.0.0.2, 127.0.0.3, ... (one per 10,000: one source
# address has only the ~28k ports of ip_local_port_range towards one server
# port), waits until the admin port's jwtgate_connections_open gauge shows N,
# and reads the memory again. Kinds:
#   request  each connection sends one check request (the same valid RS256
#            demo token, a token cache hit after the warm-up) and reads its
#            whole answer (200): an ordinary idle keep-alive connection that
#            has served a request.
#   open     the connections are only opened; nothing is sent.
# Memory is read from /proc/PID/status (VmRSS: resident, including the
# binary's mapped pages) and /proc/PID/smaps_rollup (Anonymous: the heap and
# stacks, what connections can add to); per connection is (after - before) / N.
# The kernel's side of a connection (socket structures, buffers) is not in the
# process's RSS: the change in Slab (/proc/meminfo) and in the TCP socket
# memory (/proc/net/sockstat) is printed beside it, for the whole machine and
# both ends of every connection (the client's sockets too), as context only.
# Before measuring it prints the kernel limits the run may hit (somaxconn, the
# SYN backlog, orphans, TIME_WAIT buckets, the ephemeral port range,
# conntrack, RLIMIT_NOFILE). It changes no sysctl. RLIMIT_NOFILE's soft limit
# is raised to the hard limit; a COUNT the server could not hold within it
# (N connections plus its own descriptors) is reported as not measured, and
# the exit status is then 1.
#   scripts/bench-connections.sh [COUNTS...]          (default: 10000 50000)
#   environment: JWTGATE_BIN=path (a built jwtgate; default: cargo build --release)
#                BENCH_TIMEOUT=SECONDS (each wait: the connections opened and
#                  answered, the gauge reaching N; default 120)
# Needs taskset, curl, python3 and 2 CPUs. Traffic goes to 127.0.0.0/8 only;
# every wait is bounded, and only the processes it started are stopped (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "bench-connections: $*" >&2; exit 1; }
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10000 50000)
for n in "${counts[@]}"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "COUNTS must be positive integers (got '$n')"
done
timeout_s="${BENCH_TIMEOUT:-120}"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive integer (got '$timeout_s')"
for tool in taskset curl python3; do command -v "$tool" >/dev/null || die "$tool not found"; done
taskset -c 1 true 2>/dev/null || die "CPU 1 is not available: this benchmark needs 2 CPUs"
server_cpu=0
client_cpu=1
margin=64           # --max-connections above N (the warm-up connection, slack)
server_fds=128      # descriptors the server needs besides its N connections
per_source=10000    # connections per source address
holder="$PWD/scripts/hold-connections.py"

if [ -z "${JWTGATE_BIN:-}" ]; then
  cargo build --locked --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/jwtgate"
else
  bin="$JWTGATE_BIN"
fi
[ -x "$bin" ] || die "no jwtgate at $bin"

work="$(mktemp -d)"
server=""
client=""
stop() { # $1 = pid: SIGTERM, up to 15 s to exit, then SIGKILL
  local i
  kill -TERM "$1" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  [ -z "$client" ] || stop "$client"
  [ -z "$server" ] || stop "$server"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- limits

# The soft limit up to the hard one (inherited by the server and the client);
# raising the hard limit needs CAP_SYS_RESOURCE, which a container may lack.
hard_nofile="$(ulimit -Hn)"
if [ "$hard_nofile" = unlimited ]; then hard_nofile="$(cat /proc/sys/fs/nr_open)"; fi
ulimit -n "$hard_nofile"
nofile="$(ulimit -n)"
sysctl_value() { # $1 = path under /proc/sys; prints its value (tabs as spaces) or "absent"
  if [ -r "/proc/sys/$1" ]; then tr '\t' ' ' <"/proc/sys/$1"; else echo absent; fi
}
read -r port_lo port_hi <<<"$(sysctl_value net/ipv4/ip_local_port_range)"
ports=$((port_hi - port_lo + 1))
echo "kernel limits: net.core.somaxconn $(sysctl_value net/core/somaxconn)," \
  "net.ipv4.tcp_max_syn_backlog $(sysctl_value net/ipv4/tcp_max_syn_backlog)," \
  "net.ipv4.tcp_max_orphans $(sysctl_value net/ipv4/tcp_max_orphans)," \
  "net.ipv4.tcp_max_tw_buckets $(sysctl_value net/ipv4/tcp_max_tw_buckets)," \
  "net.ipv4.ip_local_port_range $port_lo-$port_hi ($ports ports per source address and server port)," \
  "net.netfilter.nf_conntrack_max $(sysctl_value net/netfilter/nf_conntrack_max)," \
  "fs.nr_open $(sysctl_value fs/nr_open), fs.file-max $(sysctl_value fs/file-max)," \
  "RLIMIT_NOFILE soft $nofile hard $hard_nofile (soft raised to hard; no sysctl changed)"
if grep -q '^CapEff:' /proc/self/status; then
  # CAP_SYS_RESOURCE is bit 24: without it the hard limit cannot be raised.
  capeff="$(awk '/^CapEff:/ { print $2 }' /proc/self/status)"
  (((16#$capeff >> 24) & 1)) || echo "note: no CAP_SYS_RESOURCE here: RLIMIT_NOFILE cannot be raised above $hard_nofile"
fi

# ---------------------------------------------------------------- helpers

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
anon_kib() { awk '/^Anonymous:/ { print $2 }' "/proc/$1/smaps_rollup"; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
slab_kib() { awk '/^Slab:/ { print $2 }' /proc/meminfo; }
tcp_mem_kib() { # TCP socket buffer memory of the whole machine (sockstat counts pages)
  awk -v page="$(getconf PAGESIZE)" '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) * page / 1024 }' /proc/net/sockstat
}

per_connection() { # $1 = KiB, $2 = connections: bytes per connection, rounded as the summary rounds
  python3 -c 'import sys; print(round(int(sys.argv[1]) * 1024 / int(sys.argv[2])))' "$1" "$2"
}

metric() { # $1 = admin address, $2 = metric name with labels as printed; prints its value, or "" when unreadable
  curl -s --max-time 5 "http://$1/metrics" | awk -v name="$2" '$1 == name { print $2 }' || true
}

wait_gauge() { # $1 = admin address, $2 = wanted open connections; returns 1 after $timeout_s seconds
  local end=$((SECONDS + timeout_s)) got=""
  while ((SECONDS < end)); do
    got="$(metric "$1" 'jwtgate_connections_open{shard="0"}')"
    [ "$got" = "$2" ] && return 0
    kill -0 "$server" 2>/dev/null || die "the server exited while waiting for $2 open connections"
    sleep 0.2 # between scrapes; the admin port answers about 20 a second at most
  done
  echo "bench-connections: jwtgate_connections_open is '$got' after ${timeout_s} s, expected $2" >&2
  return 1
}

read_line() { # $1 = fd, $2 = seconds, $3 = pid that must stay alive; prints the first line
  local line="" end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    if IFS= read -r -t 0.2 -u "$1" line; then
      echo "$line"
      return 0
    fi
    kill -0 "$3" 2>/dev/null || break
  done
  # One last try: the process may have written its line and exited since.
  IFS= read -r -t 0.2 -u "$1" line && { echo "$line"; return 0; }
  return 1
}

start_server() { # $1 = max connections; sets server, addr, admin
  local fifo="$work/server.fifo" line
  rm -f "$fifo"
  mkfifo "$fifo"
  exec {server_fd}<>"$fifo" # read-write: the open does not wait for the server
  taskset -c "$server_cpu" "$bin" serve --demo --shards 1 --max-connections "$1" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --idle-timeout 600 \
    >"$fifo" 2>"$work/server.err" &
  server=$!
  line="$(read_line "$server_fd" 15 "$server")" || true
  [[ "$line" == "jwtgate serve: listening on "* ]] || {
    cat "$work/server.err" >&2
    die "jwtgate serve did not report readiness; stdout: '$line'"
  }
  addr="${line#*listening on }"
  addr="${addr%% *}"
  admin="${line##*, admin on }"
  [[ "$addr" == 127.0.0.1:* && "$admin" == 127.0.0.1:* ]] || die "unexpected addresses in: $line"
  local f cpus
  for f in /proc/"$server"/task/*/status; do
    cpus="$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$f" 2>/dev/null)" || continue
    [ -z "$cpus" ] || [ "$cpus" = "$server_cpu" ] || die "thread ${f%/status} may run on CPUs $cpus, not only CPU $server_cpu"
  done
}

stop_server() {
  stop "$server"
  server=""
  exec {server_fd}>&-
}

# A valid token for the demo (its RS256 key, issuer and audience), for a day.
token="$("$bin" mint --key examples/keys/demo-rs256.pk8.pem --alg RS256 --kid demo-rs256 \
  --iss https://demo.jwtgate.invalid/ --aud demo-api --sub bench --ttl 86400)"

# ---------------------------------------------------------------- the run

echo "bench-connections: $bin ($("$bin" --version 2>/dev/null | head -1)), Linux $(uname -r);" \
  "server on CPU $server_cpu, client on CPU $client_cpu, counts ${counts[*]}"
: >"$work/results.tsv"
skipped=0
for n in "${counts[@]}"; do
  if ((n + server_fds > nofile)); then
    echo "connections $n: NOT MEASURED: the server would need about $((n + server_fds)) descriptors" \
      "(N connections plus $server_fds of its own); RLIMIT_NOFILE is $nofile and cannot be raised here"
    skipped=$((skipped + 1))
    continue
  fi
  k=$(((n + per_source - 1) / per_source))
  ((k <= 250)) || die "$n connections need $k source addresses: more than 127.0.0.2-127.0.0.251"
  ((n / k < ports)) || die "$((n / k)) connections per source address exceed the $ports ephemeral ports"
  sources=""
  for ((i = 0; i < k; i++)); do sources+="${sources:+,}127.0.0.$((i + 2))"; done
  for kind in request open; do
    start_server $((n + margin))
    # Warm-up: one request on a connection of its own, then closed.
    code="$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "Authorization: Bearer $token" "http://$addr/")" || true
    [ "$code" = 200 ] || die "the warm-up request was answered '$code', expected 200"
    wait_gauge "$admin" 0 || die "the warm-up connection did not close"
    rss0="$(rss_kib "$server")" anon0="$(anon_kib "$server")" fds0="$(fd_count "$server")"
    slab0="$(slab_kib)" tcp0="$(tcp_mem_kib)"

    fifo="$work/client.fifo"
    rm -f "$fifo"
    mkfifo "$fifo"
    exec {client_fd}<>"$fifo"
    taskset -c "$client_cpu" python3 "$holder" --connect "$addr" --count "$n" --sources "$sources" \
      --mode "$kind" --token "$token" --timeout "$timeout_s" --hold $((3 * timeout_s)) \
      >"$fifo" 2>"$work/client.err" &
    client=$!
    ready="$(read_line "$client_fd" $((timeout_s + 10)) "$client")" || true
    [[ "$ready" == "ready connections=$n "* ]] || {
      cat "$work/client.err" >&2
      die "$n $kind: the client did not open its connections: '$ready'"
    }
    wait_gauge "$admin" "$n" || die "$n $kind: the server does not show $n open connections"
    rss1="$(rss_kib "$server")" anon1="$(anon_kib "$server")" fds1="$(fd_count "$server")"
    slab1="$(slab_kib)" tcp1="$(tcp_mem_kib)"
    still="$(metric "$admin" 'jwtgate_connections_open{shard="0"}')"
    [ "$still" = "$n" ] || die "$n $kind: the gauge moved to '$still' while measuring"
    accepted="$(metric "$admin" 'jwtgate_connections_accepted_total{shard="0"}')"

    stop "$client"
    client=""
    exec {client_fd}>&-
    stop_server

    per_rss="$(per_connection $((rss1 - rss0)) "$n")"
    per_anon="$(per_connection $((anon1 - anon0)) "$n")"
    echo "connections $n $kind (${ready#ready connections="$n" }, accepted $accepted):" \
      "VmRSS before $rss0 KiB, after $rss1 KiB, $per_rss B/connection;" \
      "Anonymous before $anon0 KiB, after $anon1 KiB, $per_anon B/connection;" \
      "server fds $fds0 -> $fds1;" \
      "kernel, whole machine, both ends: Slab $((slab1 - slab0)) KiB ($(per_connection $((slab1 - slab0)) "$n") B/connection)," \
      "TCP socket memory $((tcp1 - tcp0)) KiB"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$kind" "$rss0" "$rss1" "$anon0" "$anon1" "$((slab1 - slab0))" \
      >>"$work/results.tsv"
  done
done

python3 - "$work/results.tsv" <<'EOF'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
print("\nsummary: memory of one shard per open connection, (after - before) / N")
print("| connections | kind | VmRSS before | VmRSS after | per connection (VmRSS) | per connection (Anonymous) | kernel Slab per connection (both ends) |")
print("|---|---|---|---|---|---|---|")
for n, kind, rss0, rss1, anon0, anon1, slab in rows:
    n, rss0, rss1, anon0, anon1, slab = map(int, (n, rss0, rss1, anon0, anon1, slab))
    print(f"| {n:,} | {kind} | {rss0:,} KiB | {rss1:,} KiB | {(rss1 - rss0) * 1024 / n:,.0f} B "
          f"| {(anon1 - anon0) * 1024 / n:,.0f} B | {slab * 1024 / n:,.0f} B |")
by = {}
for n, kind, rss0, rss1, *_ in rows:
    by.setdefault(kind, []).append((int(n), int(rss1) - int(rss0)))
for kind, points in by.items():
    if len(points) >= 2:
        (n0, d0), (n1, d1) = min(points), max(points)
        if n1 > n0:
            print(f"{kind}: between {n0:,} and {n1:,} connections, {(d1 - d0) * 1024 / (n1 - n0):,.0f} B per "
                  "added connection (VmRSS; the slope, free of fixed costs)")
EOF
((skipped == 0)) || die "$skipped of ${#counts[@]} counts not measured (RLIMIT_NOFILE $nofile)"
