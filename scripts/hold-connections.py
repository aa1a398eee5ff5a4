#!/usr/bin/env python3
"""Open COUNT TCP connections to a jwtgate data port and hold them idle.

The load side of scripts/bench-connections.sh, which measures what an open
connection costs a shard in memory. Every connection is made from one of the
given source addresses (127.0.0.2, 127.0.0.3, ...: one source address gives
only the ~28k ports of net.ipv4.ip_local_port_range towards one server port),
bound before connect with IP_BIND_ADDRESS_NO_PORT so that the port is picked
per destination at connect time. In `request` mode each connection sends one
check request (GET / with the token given) and reads its whole answer, which
must be 200: it is then an ordinary idle keep-alive connection that has served
a request. In `open` mode the connections are only opened, nothing is sent.

A process may hold only RLIMIT_NOFILE descriptors, so the connections are
spread over as many forked worker processes as that takes (the soft limit is
first raised to the hard limit). Each worker keeps at most --concurrency
connects and requests in flight, so that the server's accept queue is not
overrun (an overrun costs a SYN retransmission, a second or more).

Prints one line to stdout once every connection is open (and answered):
    ready connections=N processes=K seconds=S
then holds the connections until SIGTERM or SIGINT, until --hold seconds have
passed, or until stdin is closed when --hold-until-eof is given, and exits 0.
Any failure (a refused or reset connection, an answer other than 200, not done
within --timeout seconds) is printed to stderr as `hold-connections: ...` and
the exit status is 1. Only 127.0.0.0/8 is accepted as a destination or source.

    hold-connections.py --connect 127.0.0.1:PORT --count 10000 \\
        --sources 127.0.0.2,127.0.0.3 [--mode request --token TOKEN] [--timeout 120]
"""

import argparse
import errno
import ipaddress
import os
import resource
import selectors
import signal
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# Descriptors a worker keeps for itself (stdio, the report pipe, the epoll
# instance, Python's own), besides its connections.
RESERVED_FDS = 64
# The largest answer read: jwtgate's answers to a check request are a few
# hundred bytes.
MAX_ANSWER = 64 * 1024


def fail(message):
    print(f"hold-connections: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def loopback(text, what):
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        fail(f"{what} {text!r} is not an IPv4 address")
    if not address.is_loopback:
        fail(f"{what} {text} is not in 127.0.0.0/8: this tool only talks to loopback")
    return text


class Conn:
    """One connection: its socket, and where it is in connect, send, read."""

    __slots__ = ("sock", "phase", "out", "inbuf")

    def __init__(self, sock, request):
        self.sock = sock
        self.phase = "connect"
        self.out = request
        self.inbuf = b""


def answer_complete(buf):
    """None while the answer is partial, else its status code (after the whole body)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        return -1
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if len(buf) < end + 4 + length:
        return None
    return int(parts[1])


def worker(args, first, count, deadline, report):
    """Opens connections first .. first+count-1 (global numbering: the source
    address is sources[i % len(sources)]), writes `ok N` or `error MESSAGE` to
    the report pipe, then holds them until its parent is gone or the hold ends."""
    host, port = args.connect
    request = b""
    if args.mode == "request":
        request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {args.token}\r\n\r\n"
        ).encode("ascii")
    sel = selectors.EpollSelector()
    held = []  # every socket, so none is closed by the garbage collector
    in_flight = 0
    done = 0
    index = first
    end = first + count
    parent = os.getppid()

    def error(message):
        os.write(report, f"error {message}\n".encode())
        os._exit(1)

    while done < count:
        while index < end and in_flight < args.concurrency:
            source = args.sources[index % len(args.sources)]
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.setblocking(False)
            try:
                sock.bind((source, 0))
            except OSError as e:
                error(f"connection {index}: bind to {source}: {e}")
            rc = sock.connect_ex((host, port))
            if rc not in (0, errno.EINPROGRESS):
                error(f"connection {index} from {source}: connect: {os.strerror(rc)}")
            held.append(sock)
            sel.register(sock, selectors.EVENT_WRITE, Conn(sock, request))
            in_flight += 1
            index += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            error(f"timed out with {done} of {count} connections done ({in_flight} in flight)")
        for key, _ in sel.select(timeout=min(remaining, 1.0)):
            conn = key.data
            sock = conn.sock
            if conn.phase == "connect":
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    error(f"connect from {sock.getsockname()[0]}: {os.strerror(err)}")
                if not conn.out:  # open mode: connected is done
                    sel.unregister(sock)
                    in_flight -= 1
                    done += 1
                    continue
                conn.phase = "send"
            if conn.phase == "send":
                try:
                    sent = sock.send(conn.out)
                except BlockingIOError:
                    continue
                except OSError as e:
                    error(f"send: {e}")
                conn.out = conn.out[sent:]
                if not conn.out:
                    conn.phase = "read"
                    sel.modify(sock, selectors.EVENT_READ, conn)
                continue
            # phase "read"
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                error(f"recv: {e}")
            if not chunk:
                error("the server closed a connection before answering it")
            conn.inbuf += chunk
            if len(conn.inbuf) > MAX_ANSWER:
                error("an answer longer than 64 KiB")
            status = answer_complete(conn.inbuf)
            if status is None:
                continue
            if status != 200:
                error(f"answered {status}, expected 200: {conn.inbuf[:200]!r}")
            conn.inbuf = b""
            sel.unregister(sock)
            in_flight -= 1
            done += 1
    sel.close()
    os.write(report, f"ok {done}\n".encode())
    # Hold, idle, until the parent is gone (it is told to stop by a signal)
    # or the hold ends; the sockets close as the process exits.
    hold_end = time.monotonic() + args.hold
    while os.getppid() == parent and time.monotonic() < hold_end:
        time.sleep(0.5)
    os._exit(0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", required=True, help="HOST:PORT of the data port")
    parser.add_argument("--count", type=int, required=True, help="connections to open")
    parser.add_argument("--sources", required=True, help="source addresses, comma-separated")
    parser.add_argument("--mode", choices=("request", "open"), default="request")
    parser.add_argument("--token", default="", help="token for `request` mode")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to open (and answer) every connection")
    parser.add_argument("--hold", type=float, default=600.0,
                        help="seconds to hold the connections at most, then exit")
    parser.add_argument("--hold-until-eof", action="store_true",
                        help="also stop holding when stdin is closed")
    parser.add_argument("--concurrency", type=int, default=256,
                        help="connects and requests in flight per worker")
    args = parser.parse_args()

    host, _, port = args.connect.rpartition(":")
    args.connect = (loopback(host, "--connect"), int(port))
    args.sources = [loopback(s.strip(), "--sources") for s in args.sources.split(",") if s.strip()]
    if not args.sources:
        fail("--sources names no address")
    if args.count < 1:
        fail("--count must be at least 1")
    if args.mode == "request" and not args.token:
        fail("--mode request needs --token")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    per_process = soft - RESERVED_FDS
    if per_process < 1:
        fail(f"RLIMIT_NOFILE is {soft}: no room for connections")
    processes = -(-args.count // per_process)

    started = time.monotonic()
    deadline = started + args.timeout
    workers = {}  # pid -> read end of its report pipe
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def reap():
        for pid in workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in workers:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

    first = 0
    for k in range(processes):
        share = args.count // processes + (1 if k < args.count % processes else 0)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            try:
                worker(args, first, share, deadline, w)
            except BaseException as e:  # noqa: BLE001 - reported, never silent
                os.write(w, f"error {type(e).__name__}: {e}\n".encode())
                os._exit(1)
        os.close(w)
        workers[pid] = r
        first += share

    # Every worker's report, within the deadline.
    opened = 0
    waiting = dict(workers)
    sel = selectors.DefaultSelector()
    for pid, r in waiting.items():
        sel.register(r, selectors.EVENT_READ, pid)
    buffers = {pid: b"" for pid in waiting}
    try:
        while waiting:
            if stopping:
                fail("stopped before every connection was open")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                fail(f"timed out after {args.timeout:.0f} s with {opened} of {args.count} connections reported")
            for key, _ in sel.select(timeout=min(remaining, 0.5)):
                pid = key.data
                chunk = os.read(key.fd, 4096)
                buffers[pid] += chunk
                if not chunk and b"\n" not in buffers[pid]:
                    fail(f"worker {pid} exited without a report")
                if b"\n" not in buffers[pid]:
                    continue
                line = buffers[pid].split(b"\n", 1)[0].decode()
                sel.unregister(key.fd)
                del waiting[pid]
                if line.startswith("error "):
                    fail(line[len("error "):])
                opened += int(line.split()[1])
        print(f"ready connections={opened} processes={processes} "
              f"seconds={time.monotonic() - started:.1f}", flush=True)

        hold_end = time.monotonic() + args.hold
        if args.hold_until_eof:
            sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
        while not stopping and time.monotonic() < hold_end:
            for key, _ in sel.select(timeout=0.5):
                if key.data is None and not os.read(key.fd, 4096):
                    stopping = True
            for pid in list(workers):
                done_pid, status = os.waitpid(pid, os.WNOHANG)
                if done_pid:
                    del workers[pid]
                    fail(f"worker {pid} exited while holding (status {status})")
    finally:
        reap()


if __name__ == "__main__":
    main()
