#!/usr/bin/env python3
"""Sample a running jwtgate's memory and admin gauges once a second, to CSV.

The sampler of scripts/soak.sh. Every --interval seconds it reads the server's
/proc/PID/status (VmRSS and RssAnon, in KiB) and its admin port's /metrics
(jwtgate_connections_open summed over shards, and jwtgate_requests_total
summed over every label set: all check requests answered), and appends one
row to CSV:

    seconds,vm_rss_kib,rss_anon_kib,connections_open,requests_total

`seconds` counts from the sampler's start. A scrape that fails (the admin
port busy past its timeout) leaves the two metric columns empty for that
row. Sampling stops when the process is gone, on SIGTERM or SIGINT, or after
--max-seconds; the file is flushed after every row, so it is complete
whenever the sampler stops.

    sample-server.py --pid PID --admin 127.0.0.1:PORT --csv FILE [--interval 1] [--max-seconds 3600]
"""

import argparse
import signal
import sys
import time
import urllib.request


def status_kib(pid):
    """VmRSS and RssAnon of pid in KiB, or None when the process is gone."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "RssAnon"):
                    values[name] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return None
    if "VmRSS" not in values:  # a zombie has no memory lines
        return None
    return values["VmRSS"], values.get("RssAnon", 0)


def scrape(opener, admin):
    """(connections open, requests total) from /metrics, or (None, None)."""
    try:
        with opener.open(f"http://{admin}/metrics", timeout=2) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError:
        return None, None
    connections = requests = 0
    for line in text.splitlines():
        if line.startswith("jwtgate_connections_open{") or line.startswith("jwtgate_connections_open "):
            connections += int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("jwtgate_requests_total{") or line.startswith("jwtgate_requests_total "):
            requests += int(float(line.rsplit(" ", 1)[1]))
    return connections, requests


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--admin", required=True, help="HOST:PORT of the admin port")
    parser.add_argument("--csv", required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args()

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # No proxy from the environment: the admin port is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    start = time.monotonic()
    tick = start
    with open(args.csv, "w") as out:
        out.write("seconds,vm_rss_kib,rss_anon_kib,connections_open,requests_total\n")
        out.flush()
        while not stopping and time.monotonic() - start < args.max_seconds:
            memory = status_kib(args.pid)
            if memory is None:
                break
            connections, requests = scrape(opener, args.admin)
            row = (f"{time.monotonic() - start:.1f}", memory[0], memory[1],
                   "" if connections is None else connections,
                   "" if requests is None else requests)
            out.write(",".join(str(v) for v in row) + "\n")
            out.flush()
            # Fixed-rate ticks: a slow scrape does not shift the ones after it.
            tick += args.interval
            delay = tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                tick = time.monotonic()
    return 0


if __name__ == "__main__":
    sys.exit(main())
