"""Fault and load test of reactor on loopback, bounded in time and count.

    python bench/stress.py [--quick] [--only keepalive,idle,hostile,slowbody,h2floods,limit,ulimit,soak,workers]

Starts `python -m reactor` itself and measures it from outside: 1,000 keep-alive clients with
wrk; 10,000 idle keep-alive connections, the resident memory they cost and how fast a fresh
client is answered meanwhile; a well-behaved client's p99 latency alone and under a mix of
hostile clients (resets mid-response, never reading, trickled heads, garbage), and under a
slow-body attack (slowhttptest -B: bodies announced and sent a few bytes at a time), and
under each HTTP/2 flood (frames written by hand on h2c: PING, SETTINGS, WINDOW_UPDATE, empty
DATA, rapid reset, CONTINUATION, an HPACK bomb), where its p99 must stay within 2x; fresh
clients at the connection limit, with 10,000 idle connections and a slowloris held; a server whose
open-file limit is far below the connections offered, then whether it still serves normally; a
memory soak at full load; throughput with 1 and 2 workers. Prints each figure with its target
and exits 1 when one is missed. Only ever aims at 127.0.0.1.

Imports nothing of reactor (it judges the program, not the code); tests import its clients.
"""

import argparse
import heapq
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers_load as load  # noqa: E402  (wrk runs and their exact figures)

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
REQUEST = b"GET / HTTP/1.1\r\nHost: stress\r\n\r\n"
BIG = "/big.bin"
BIG_SIZE = 4 * 1024 * 1024   # larger than loopback socket buffers, so a non-reader blocks

# The server gets CPU 0, clients CPU 1: on two cores that keeps the client's own work out of
# the server's figures (only where taskset and two CPUs exist).
SERVER_CPU, CLIENT_CPU = "0", "1"


@dataclass
class Plan:
    keepalive_clients: int = 1000
    keepalive_seconds: float = 30
    idle_connections: int = 10_000
    probe_seconds: float = 8        # the good client's latency, alone and under attack
    slow_bodies: int = 1000         # slow-body connections, renewed at slow_body_rate a second
    slow_body_rate: float = 200
    limit_connections: int = 10_000  # the connection-limit scenario: the default limit, held
    limit_slowloris: int = 1000      # by idle keep-alive connections, plus trickled heads
    hostile: dict = field(default_factory=lambda: dict(reset=20, stall=50, trickle=50,
                                                       garbage=20))
    low_nofile: int = 128
    offered: int = 1000
    soak_seconds: float = 60
    soak_early: float = 10
    throughput_seconds: float = 10
    throughput_clients: int = 100


FULL = Plan()
QUICK = replace(FULL, keepalive_clients=200, keepalive_seconds=3, idle_connections=1000,
                probe_seconds=2, hostile=dict(reset=5, stall=10, trickle=10, garbage=5),
                slow_bodies=200, slow_body_rate=100, limit_connections=1000, limit_slowloris=100,
                offered=300, soak_seconds=12, soak_early=3, throughput_seconds=3,
                throughput_clients=50)


# -- the server under test ---------------------------------------------------------------------

def make_site(directory: str) -> str:
    """A small page for requests and a large file for the clients that must block the server."""
    Path(directory, "index.html").write_bytes(b"<!doctype html><title>stress</title>" + b"x" * 900)
    with open(Path(directory, BIG.lstrip("/")), "wb") as f:
        f.write(os.urandom(BIG_SIZE))
    return directory


# Whether the machine has the two CPUs to pin to, asked before main() pins this process to the
# client's CPU (after which its own affinity would say one, and the server would run beside
# the clients on it).
TWO_CPUS = len(os.sched_getaffinity(0)) > 1


def pinned(argv, cpus):
    if cpus and shutil.which("taskset") and TWO_CPUS:
        return ["taskset", "-c", cpus, *argv]
    return list(argv)


class Reactor:
    """`python -m reactor` on 127.0.0.1 and an ephemeral port, read from its ready line."""

    def __init__(self, root, *flags, workers=1, cpus=None, nofile=None, start_timeout=20.0):
        argv = [sys.executable, "-m", "reactor", "--root", root, "--port", "0", "--bind", HOST,
                "--no-access-log", "--workers", str(workers), *flags]
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            pinned(argv, cpus), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self.stderr,
            preexec_fn=(lambda: _limit_open_files(nofile)) if nofile else None)
        self.line = _read_line(self.proc, start_timeout)
        found = re.search(r"127\.0\.0\.1:(\d+)/", self.line)
        if not found:
            self.stop()
            raise RuntimeError(f"reactor did not start: {self.line or self.errors()!r}")
        self.port = int(found.group(1))

    def processes(self) -> list:
        """The server's pid and those of its workers."""
        pids = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path("/proc", entry, "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    pids.append(int(entry))
        return pids

    def rss(self) -> int:
        """Resident bytes of the server and its workers."""
        total = 0
        for pid in self.processes():
            try:
                for line in Path("/proc", str(pid), "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def open_fds(self) -> int:
        return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in self.processes())

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout=30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _limit_open_files(n):
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def _read_line(proc, timeout) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return proc.stdout.readline().decode(errors="replace").strip()


def raise_own_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- well-behaved clients ----------------------------------------------------------------------

def read_response(sock) -> int:
    """Read one response with a Content-Length body; return its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    remaining = (int(length.group(1)) if length else 0) - len(body)
    while remaining > 0:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            raise ConnectionError("closed inside a body")
        remaining -= len(chunk)
    return int(head[9:12])


def fetch(port, timeout=5.0, request=REQUEST) -> tuple:
    """(status, seconds) for one request on a fresh connection."""
    started = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(request)
        status = read_response(sock)
    return status, time.perf_counter() - started


def probe(port, seconds, interval=0.002) -> tuple:
    """A well-behaved keep-alive client: one request every `interval` for `seconds`.
    Returns (latencies in seconds, errors)."""
    latencies, errors = [], 0
    sock = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if sock is None:
                sock = socket.create_connection((HOST, port), timeout=5)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            sock.sendall(REQUEST)
            if read_response(sock) != 200:
                errors += 1
            latencies.append(time.perf_counter() - started)
        except OSError:
            errors += 1
            if sock is not None:
                sock.close()
            sock = None
        time.sleep(interval)
    if sock is not None:
        sock.close()
    return latencies, errors


def fresh_probe(port, seconds, interval=0.01) -> tuple:
    """A client that opens a new connection for every request, one every `interval`.
    Returns (latencies in seconds of the answered ones, errors)."""
    latencies, errors = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            status, took = fetch(port, timeout=5)
            if status == 200:
                latencies.append(took)
            else:
                errors += 1
        except OSError:
            errors += 1
        time.sleep(interval)
    return latencies, errors


def percentile(values, p) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")


def hold_idle(port, count, batch=200) -> tuple:
    """Open `count` keep-alive connections, one request answered on each, and leave them idle.
    Returns (sockets, errors); the caller closes the sockets."""
    held, errors = [], 0
    while len(held) + errors < count:
        group = []
        for _ in range(min(batch, count - len(held) - errors)):
            try:
                sock = socket.create_connection((HOST, port), timeout=10)
                sock.sendall(REQUEST)
                group.append(sock)
            except OSError:
                errors += 1
        for sock in group:
            try:
                if read_response(sock) == 200:
                    held.append(sock)
                    continue
            except OSError:
                pass
            errors += 1
            sock.close()
    return held, errors


def offer(port, count, hold) -> tuple:
    """Open `count` connections at once, each sending one request, and keep them `hold`
    seconds. Returns (answered, connect errors)."""
    socks, failed = [], 0
    for _ in range(count):
        try:
            sock = socket.create_connection((HOST, port), timeout=2)
            sock.setblocking(False)
            sock.send(REQUEST)
            socks.append(sock)
        except OSError:
            failed += 1
    answered = 0
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        end = time.monotonic() + hold
        while time.monotonic() < end:
            for key, _ in selector.select(max(end - time.monotonic(), 0)):
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                answered += data.startswith(b"HTTP/1.1 200")
                selector.unregister(key.fileobj)
    for sock in socks:
        sock.close()
    return answered, failed


# -- hostile clients ---------------------------------------------------------------------------

GARBAGE = [
    lambda: os.urandom(2048),
    lambda: b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n",
    lambda: (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n"),
    lambda: b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n",
    lambda: b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"b" * 40_000 + b"\r\n\r\n",
    # A TLS hello on the plain port: closed without an answer, which a TLS client could not read.
    lambda: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(500),
    lambda: b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]

TRICKLE_HEAD = (b"GET / HTTP/1.1\r\nHost: stress\r\nUser-Agent: " + b"s" * 400 + b"\r\n\r\n")


class Hostile:
    """A fixed number of misbehaving connections of each kind, replaced as they end:
    reset: asks for a large file, reads a little, closes with RST (SO_LINGER 0);
    stall: asks for a large file several times over and never reads;
    slowbody: announces an 8 KiB POST body and sends it 10 bytes every 2 s (slowhttptest -B);
    a connection ends when the server answers or closes, and is renewed `pauses[kind]` later;
    trickle: sends a head one byte at a time, slower than any header timeout allows;
    garbage: sends bytes that are not HTTP (or break its limits) and reads the answer (a 4xx;
    a TLS hello gets none: the plain port closes it quietly)."""

    def __init__(self, port, counts, pause=0.05, trickle_interval=0.1, pauses=None):
        self.port = port
        self.counts = counts
        self.pause = pause
        self.pauses = pauses or {}
        self.trickle_interval = trickle_interval
        self.selector = selectors.DefaultSelector()
        self.timers = []
        self.sequence = 0
        self.stats = dict(resets=0, stalled=0, trickled=0, trickle_408=0, garbage=0,
                          garbage_refused=0, slow_bodies=0, slow_bodies_refused=0,
                          connect_errors=0)
        self.open = set()

    def run(self, seconds):
        for kind, count in self.counts.items():
            spread = self.pauses.get(kind, 0) / count   # a kind with a pause opens as it renews
            for i in range(count):
                self._later(i * spread, self._connect, kind)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            timeout = min(end - time.monotonic(), 0.05)
            if self.timers:
                timeout = max(min(timeout, self.timers[0][0] - time.monotonic()), 0)
            for key, _ in self.selector.select(timeout):
                key.data()
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, callback, args = heapq.heappop(self.timers)
                callback(*args)
        for sock in list(self.open):
            self._close(sock)
        self.selector.close()
        return self.stats

    def _later(self, delay, callback, *args):
        self.sequence += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.sequence, callback, args))

    def _connect(self, kind):
        try:
            sock = socket.create_connection((HOST, self.port), timeout=2)
        except OSError:
            self.stats["connect_errors"] += 1
            self._later(self.pause * 4, self._connect, kind)
            return
        sock.setblocking(False)
        self.open.add(sock)
        getattr(self, "_start_" + kind)(sock)

    def _close(self, sock):
        if sock in self.open:
            self.open.discard(sock)
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()

    def _again(self, sock, kind):
        self._close(sock)
        self._later(self.pauses.get(kind, self.pause), self._connect, kind)

    def _send(self, sock, data) -> bool:
        try:
            sock.send(data)
            return True
        except OSError:
            return False

    def _start_reset(self, sock):
        if not self._send(sock, b"GET %s HTTP/1.1\r\nHost: stress\r\n\r\n" % BIG.encode()):
            return self._again(sock, "reset")

        def readable():
            try:
                sock.recv(16384)
            except OSError:
                pass
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.stats["resets"] += 1
            self._again(sock, "reset")

        self.selector.register(sock, selectors.EVENT_READ, readable)

    def _start_stall(self, sock):
        self._send(sock, b"GET %s HTTP/1.1\r\nHost: stress\r\n\r\n" % BIG.encode() * 4)
        self.stats["stalled"] += 1

    def _start_trickle(self, sock):
        state = {"sent": 0}

        def drip():
            if sock not in self.open:
                return
            sent = state["sent"]
            if sent < len(TRICKLE_HEAD) and self._send(sock, TRICKLE_HEAD[sent:sent + 1]):
                state["sent"] = sent + 1
                self._later(self.trickle_interval, drip)

        def readable():
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            self.stats["trickled"] += 1
            self.stats["trickle_408"] += data.startswith(b"HTTP/1.1 408")
            self._again(sock, "trickle")

        self.selector.register(sock, selectors.EVENT_READ, readable)
        drip()

    def _start_slowbody(self, sock):
        head = b"POST / HTTP/1.1\r\nHost: stress\r\nContent-Length: 8192\r\n\r\n"
        if not self._send(sock, head):
            return self._again(sock, "slowbody")

        def drip():
            if sock in self.open and self._send(sock, b"x" * 10):
                self._later(2.0, drip)

        def readable():
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            self.stats["slow_bodies"] += 1
            self.stats["slow_bodies_refused"] += data[9:10] == b"4"
            self._again(sock, "slowbody")

        self.selector.register(sock, selectors.EVENT_READ, readable)
        self._later(2.0, drip)

    def _start_garbage(self, sock):
        payload = GARBAGE[self.sequence % len(GARBAGE)]()
        if not self._send(sock, payload):
            return self._again(sock, "garbage")
        first = []

        def readable():
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data and not first:
                first.append(data)
            if data:
                return
            self.stats["garbage"] += 1
            if payload[:1] == b"\x16":
                self.stats["garbage_refused"] += not first
            else:
                self.stats["garbage_refused"] += bool(first and first[0][9:10] == b"4")
            self._again(sock, "garbage")

        self.selector.register(sock, selectors.EVENT_READ, readable)


# -- HTTP/2 floods ---------------------------------------------------------------------------------

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big")
            + payload)


# Request header blocks by hand (RFC 7541 static table): GET or POST, http, /, :authority x.
_GET_BLOCK = b"\x82\x86\x84\x41\x01x"
_POST_BLOCK = b"\x83\x86\x84\x41\x01x"
END_STREAM, END_HEADERS = 0x1, 0x4


def h2_flood(kind: str) -> tuple:
    """(what opens the connection, what is then written again and again) of a flood."""
    opening = H2_PREFACE + h2_frame(0x4, 0, 0)
    if kind == "ping":
        return opening, h2_frame(0x6, 0, 0, b"\0" * 8) * 200
    if kind == "settings":
        return opening, h2_frame(0x4, 0, 0) * 200
    if kind == "window_update":
        return opening, h2_frame(0x8, 0, 0, (1).to_bytes(4, "big")) * 200
    if kind == "empty_data":
        return (opening + h2_frame(0x1, END_HEADERS, 1, _POST_BLOCK),
                h2_frame(0x0, 0, 1) * 200)
    if kind == "continuation":
        return (opening + h2_frame(0x1, END_STREAM, 1, _GET_BLOCK),
                h2_frame(0x9, 0, 1, b"\x40\x01a\x01b") * 200)
    if kind == "hpack_bomb":
        # A 4 KiB field indexed once, then named again and again from the dynamic table.
        # (4000 as a 7-bit prefixed integer: 127, then 3873 in 7-bit groups: 0xa1 0x1e.)
        block = b"\x40\x01x\x7f\xa1\x1e" + b"v" * 4000 + b"\xbe" * 8000
        return opening, h2_frame(0x1, END_STREAM | END_HEADERS, 1, block)
    if kind == "rapid_reset":
        # New streams each time, more than the reset budget (1,000) allows one connection:
        # written again, they would be frames on closed streams, which cost nothing.
        return opening, b"".join(
            h2_frame(0x1, END_STREAM | END_HEADERS, stream, _GET_BLOCK)
            + h2_frame(0x3, 0, stream, (8).to_bytes(4, "big")) for stream in range(1, 2400, 2))
    raise ValueError(kind)


H2_FLOODS = ("ping", "settings", "window_update", "empty_data", "continuation", "hpack_bomb",
             "rapid_reset")
H2_FLOOD_CYCLES = 4   # alone, then during the flood, so many times for each


def _run_h2flood(spec: str):
    """One flooding client (`stress.py --h2flood ...`), niced so that the ordinary client on
    the same CPU goes first: writes its flood as fast as the server takes it, reading what
    comes back, and opens a new connection each time the server ends one."""
    spec = json.loads(spec)
    os.nice(19)
    opening, again = h2_flood(spec["kind"])
    end = time.monotonic() + spec["seconds"]
    connections = sent = 0
    while time.monotonic() < end:
        try:
            sock = socket.create_connection((HOST, spec["port"]), timeout=1)
        except OSError:
            time.sleep(0.01)
            continue
        connections += 1
        try:
            sock.sendall(opening)
            sock.setblocking(False)
            while time.monotonic() < end:
                try:
                    sent += sock.send(again)
                except BlockingIOError:
                    pass
                try:
                    if not sock.recv(1 << 20):
                        break   # the server ended the connection (GOAWAY, then close)
                except BlockingIOError:
                    pass
        except OSError:
            pass
        finally:
            sock.close()
    print(json.dumps(dict(connections=connections, bytes=sent)))


class HostileMix:
    """The Hostile clients in a process of their own (`stress.py --hostile ...`) for `seconds`;
    `.stats()` waits for them and returns their counters."""

    def __init__(self, port, counts, seconds, cpu=None, pauses=None):
        spec = json.dumps(dict(port=port, counts=counts, seconds=seconds, pauses=pauses))
        argv = pinned([sys.executable, __file__, "--hostile", spec], cpu)
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE)

    def stats(self, timeout=60.0) -> dict:
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        return json.loads(out or b"{}")


def _run_hostile(spec: str):
    raise_own_limit()
    spec = json.loads(spec)
    hostile = Hostile(spec["port"], spec["counts"], pauses=spec.get("pauses"))
    print(json.dumps(hostile.run(spec["seconds"])))


# -- the phases --------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.misses = []

    def figure(self, name, text, ok=None, target=""):
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"  {name:<34} {text}{mark}" + (f"   (target: {target})" if target else ""),
              flush=True)
        if ok is False:
            self.misses.append(name)


def wrk(port, connections, seconds, scripts, cpu=CLIENT_CPU, path="/") -> dict:
    return load.run(port, path, load.Load(connections, "keepalive", seconds), scripts, cpu)


def phase_keepalive(plan, root, report, scripts):
    print(f"keep-alive: {plan.keepalive_clients} clients for {plan.keepalive_seconds:g}s (wrk)")
    with Reactor(root, cpus=SERVER_CPU) as server:
        result = wrk(server.port, plan.keepalive_clients, plan.keepalive_seconds, scripts)
        alive = server.alive()
    if "failed" in result:
        return report.figure("keep-alive load", result["failed"], False)
    report.figure("requests", f"{result['requests']} at {result['rps']:.0f}/s, "
                  f"p99 {result['p99_ms']:.1f} ms")
    report.figure("errors", f"{result['errors']} (connect {result['connect']}, read "
                  f"{result['read']}, write {result['write']}, timeout {result['timeout']}, "
                  f"non-2xx {result['status']})", result["errors"] == 0 and alive, "0")


def phase_idle(plan, root, report, scripts):
    count = plan.idle_connections
    print(f"idle: {count} keep-alive connections held")
    flags = ("--max-connections", str(count + 100), "--keepalive-timeout", "300",
             "--header-timeout", "300")
    with Reactor(root, *flags, cpus=SERVER_CPU) as server:
        for _ in range(20):
            fetch(server.port)
        before = server.rss()
        started = time.monotonic()
        held, errors = hold_idle(server.port, count)
        opened = time.monotonic() - started
        time.sleep(0.5)
        after = server.rss()
        fresh = max(fetch(server.port)[1] for _ in range(5))
        for sock in held:
            sock.close()
    per = (after - before) / max(len(held), 1)
    report.figure("connections held", f"{len(held)} in {opened:.1f}s, {errors} failed",
                  len(held) == count, str(count))
    report.figure("resident memory", f"{before / 2**20:.1f} MiB before, {after / 2**20:.1f} MiB "
                  f"with them", after < 64 * 2**20 or count < 10_000, "< 64 MiB at 10,000")
    report.figure("per idle connection", f"{per / 1024:.2f} KiB")
    report.figure("fresh client while held", f"{fresh * 1000:.1f} ms (worst of 5)", fresh < 1.0,
                  "< 1 s")


def phase_hostile(plan, root, report, scripts):
    print(f"hostile: a good client's latency alone, then beside {plan.hostile}")
    with Reactor(root, "--send-timeout", "3", "--header-timeout", "2", cpus=SERVER_CPU) as server:
        # Alone both before and after the attack, so that a neighbour's burst on this shared
        # machine weighs on both sides of the comparison.
        calm, calm_errors = probe(server.port, plan.probe_seconds / 2)
        mix = HostileMix(server.port, plan.hostile, plan.probe_seconds + 2, cpu=CLIENT_CPU)
        time.sleep(1.0)   # let every hostile connection open
        loaded, loaded_errors = probe(server.port, plan.probe_seconds)
        stats = mix.stats()
        time.sleep(1.0)
        after, after_errors = probe(server.port, plan.probe_seconds / 2)
        calm += after
        calm_errors += after_errors
        alive = server.alive() and fetch(server.port)[0] == 200
    p99_calm, p99_loaded = percentile(calm, 99) * 1000, percentile(loaded, 99) * 1000
    report.figure("good client alone", f"p50 {statistics.median(calm) * 1000:.2f} ms, "
                  f"p99 {p99_calm:.2f} ms, {len(calm)} requests, {calm_errors} errors")
    report.figure("good client under attack", f"p50 {statistics.median(loaded) * 1000:.2f} ms, "
                  f"p99 {p99_loaded:.2f} ms, {len(loaded)} requests, {loaded_errors} errors",
                  loaded_errors == 0 and p99_loaded <= 10 * p99_calm, "p99 within 10x, 0 errors")
    report.figure("p99 ratio", f"{p99_loaded / p99_calm:.1f}x")
    report.figure("hostile clients", ", ".join(f"{k} {v}" for k, v in stats.items()))
    report.figure("server after the attack", "serving" if alive else "NOT serving", alive)


def _ordinary_client(report, calm, calm_errors, loaded, loaded_errors, within=None):
    """Report an ordinary client's figures alone and during an attack; the targets are every
    request answered and a p99 within 10x of the calm one (and under `within` seconds)."""
    p99_calm, p99_loaded = percentile(calm, 99) * 1000, percentile(loaded, 99) * 1000
    success = len(loaded) / max(len(loaded) + loaded_errors, 1) * 100
    report.figure("ordinary client alone", f"p50 {statistics.median(calm) * 1000:.2f} ms, "
                  f"p99 {p99_calm:.2f} ms, {len(calm)} requests, {calm_errors} errors")
    ok = loaded_errors == 0 and p99_loaded <= 10 * p99_calm
    target = "100%, p99 within 10x"
    if within is not None:
        ok = ok and p99_loaded <= within * 1000
        target += f" and under {within * 1000:g} ms"
    report.figure("ordinary client during it", f"{success:.1f}% answered, p50 "
                  f"{statistics.median(loaded) * 1000:.2f} ms, p99 {p99_loaded:.2f} ms "
                  f"({p99_loaded / p99_calm:.1f}x), {len(loaded)} requests", ok, target)


def phase_slowbody(plan, root, report, scripts):
    count, rate = plan.slow_bodies, plan.slow_body_rate
    print(f"slow bodies: {count} connections announcing 8 KiB bodies sent 10 bytes every 2 s, "
          f"renewed at {rate:g}/s, beside a client that connects for every request")
    with Reactor(root, cpus=SERVER_CPU) as server:
        calm, calm_errors = fresh_probe(server.port, plan.probe_seconds / 2)
        mix = HostileMix(server.port, dict(slowbody=count), plan.probe_seconds + 3,
                         cpu=CLIENT_CPU, pauses=dict(slowbody=count / rate))
        time.sleep(1.5)
        loaded, loaded_errors = fresh_probe(server.port, plan.probe_seconds)
        stats = mix.stats()
        alive = server.alive() and fetch(server.port)[0] == 200
    _ordinary_client(report, calm, calm_errors, loaded, loaded_errors)
    report.figure("slow bodies", f"{stats.get('slow_bodies', 0)} answered, "
                  f"{stats.get('slow_bodies_refused', 0)} with a 4xx before their body",
                  stats.get("slow_bodies_refused", 0) == stats.get("slow_bodies", -1) > 0,
                  "all, at once")
    report.figure("server after the attack", "serving" if alive else "NOT serving", alive)


def phase_h2floods(plan, root, report, scripts):
    print("HTTP/2 floods on h2c: an ordinary keep-alive client's p99 alone and during each, "
          f"in {H2_FLOOD_CYCLES} cycles (the median of their ratios, as neighbours come and go)")
    seconds = plan.probe_seconds / H2_FLOOD_CYCLES
    with Reactor(root, cpus=SERVER_CPU) as server:
        for kind in H2_FLOODS:
            ratios, calm, loaded, errors, stats = [], [], [], 0, {}
            for _ in range(H2_FLOOD_CYCLES):
                alone, alone_errors = probe(server.port, seconds / 2)
                spec = json.dumps(dict(port=server.port, kind=kind, seconds=seconds + 0.5))
                flooder = subprocess.Popen(pinned([sys.executable, __file__, "--h2flood", spec],
                                                  CLIENT_CPU), stdout=subprocess.PIPE)
                time.sleep(0.3)
                during, during_errors = probe(server.port, seconds)
                out, _ = flooder.communicate(timeout=60)
                for name, value in json.loads(out or b"{}").items():
                    stats[name] = stats.get(name, 0) + value
                ratios.append(percentile(during, 99) / percentile(alone, 99))
                calm += alone
                loaded += during
                errors += alone_errors + during_errors
            p99_calm, p99_loaded = percentile(calm, 99) * 1000, percentile(loaded, 99) * 1000
            ratio = statistics.median(ratios)
            report.figure(f"{kind} flood", f"p99 {p99_calm:.2f} ms alone, {p99_loaded:.2f} ms "
                          f"during it, median ratio {ratio:.2f}x (cycles: "
                          f"{', '.join(f'{r:.2f}' for r in ratios)}), {errors} errors; "
                          f"{stats.get('connections', 0)} flooding connections ended, "
                          f"{stats.get('bytes', 0) / 2**20:.0f} MiB sent",
                          errors == 0 and ratio < 2, "p99 within 2x, 0 errors")
        alive = server.alive() and fetch(server.port)[0] == 200
    report.figure("server after the floods", "serving" if alive else "NOT serving", alive)


def phase_limit(plan, root, report, scripts):
    count, loris = plan.limit_connections, plan.limit_slowloris
    print(f"connection limit: {count} idle keep-alive connections at --max-connections {count}, "
          f"then {loris} trickled heads, beside a client that connects for every request")
    # Idle connections kept for the whole phase (not 15 s), so that the limit stays reached.
    flags = ("--max-connections", str(count), "--keepalive-timeout", "300")
    with Reactor(root, *flags, cpus=SERVER_CPU) as server:
        calm, calm_errors = fresh_probe(server.port, plan.probe_seconds / 2)
        held, errors = hold_idle(server.port, count)
        mix = HostileMix(server.port, dict(trickle=loris), plan.probe_seconds + 3,
                         cpu=CLIENT_CPU)
        time.sleep(1.5)
        loaded, loaded_errors = fresh_probe(server.port, plan.probe_seconds)
        stats = mix.stats()
        reclaimed = 0
        for sock in held:
            sock.setblocking(False)
            try:
                reclaimed += sock.recv(1) == b""
            except (BlockingIOError, OSError):
                pass
            sock.close()
        alive = server.alive() and fetch(server.port)[0] == 200
    report.figure("idle connections held", f"{len(held)} ({errors} failed); {reclaimed} "
                  f"closed by the server to make room", len(held) == count, str(count))
    _ordinary_client(report, calm, calm_errors, loaded, loaded_errors, within=0.1)
    report.figure("slowloris", f"{stats.get('trickled', 0)} ended, "
                  f"{stats.get('trickle_408', 0)} with 408, "
                  f"{stats.get('connect_errors', 0)} connect errors")
    report.figure("server afterwards", "serving" if alive else "NOT serving", alive)


def phase_ulimit(plan, root, report, scripts):
    print(f"low open-file limit: ulimit -n {plan.low_nofile}, {plan.offered} connections offered")
    with Reactor(root, nofile=plan.low_nofile, cpus=SERVER_CPU) as server:
        answered, failed = offer(server.port, plan.offered, hold=3.0)
        time.sleep(1.0)   # the connections left in the backlog are accepted and closed
        fresh = fetch(server.port)
        after = wrk(server.port, 20, 2, scripts)
        alive = server.alive()
        note = [line for line in server.errors().splitlines() if "max-connections" in line]
    report.figure("answered while over the limit", f"{answered} of {plan.offered} "
                  f"({failed} connect errors)")
    report.figure("limit noted at start-up", note[0][:90] if note else "no line", bool(note))
    ok = alive and fresh[0] == 200 and after.get("errors", 1) == 0
    report.figure("serving afterwards", f"fresh client {fresh[0]} in {fresh[1] * 1000:.1f} ms, "
                  f"then {after.get('requests', 0)} requests with {after.get('errors', '?')} "
                  f"errors", ok, "200, 0 errors")


def phase_soak(plan, root, report, scripts):
    seconds, early = plan.soak_seconds, plan.soak_early
    print(f"soak: {plan.keepalive_clients} clients and the hostile mix for {seconds:g}s")
    with Reactor(root, "--send-timeout", "5", "--header-timeout", "5", cpus=SERVER_CPU) as server:
        mix = HostileMix(server.port, plan.hostile, seconds, cpu=CLIENT_CPU)
        result = {}
        runner = threading.Thread(target=lambda: result.update(
            wrk(server.port, plan.keepalive_clients, seconds, scripts)))
        runner.start()
        started = time.monotonic()
        time.sleep(early)
        rss_early = server.rss()
        time.sleep(max(seconds - 1 - (time.monotonic() - started), 0))
        rss_late = server.rss()
        runner.join()
        mix.stats()
    growth = (rss_late - rss_early) / rss_early * 100
    report.figure("load", f"{result.get('requests', 0)} requests, {result.get('errors', '?')} "
                  f"errors")
    report.figure(f"resident at {early:g}s / {seconds:g}s",
                  f"{rss_early / 2**20:.1f} MiB / {rss_late / 2**20:.1f} MiB ({growth:+.1f}%)",
                  abs(growth) <= 10, "within 10%")


def phase_workers(plan, root, report, scripts):
    print(f"throughput: 1 worker and 2 workers, {plan.throughput_clients} clients, "
          f"{plan.throughput_seconds:g}s each, nothing pinned")
    rates = {}
    for workers in (1, 2):
        with Reactor(root, workers=workers) as server:
            wrk(server.port, plan.throughput_clients, 1, scripts, cpu="0,1")   # warm-up
            result = wrk(server.port, plan.throughput_clients, plan.throughput_seconds, scripts,
                         cpu="0,1")
            code = server.stop()
        rates[workers] = result.get("rps", 0.0)
        report.figure(f"{workers} worker{'s' * (workers > 1)}",
                      f"{rates[workers]:.0f} requests/s, p99 {result.get('p99_ms', 0):.1f} ms, "
                      f"{result.get('errors', '?')} errors, exit {code}",
                      result.get("errors") == 0 and code == 0)
    report.figure("2 workers / 1 worker", f"{rates[2] / max(rates[1], 1):.2f}x")


PHASES = dict(keepalive=phase_keepalive, idle=phase_idle, hostile=phase_hostile,
              slowbody=phase_slowbody, h2floods=phase_h2floods, limit=phase_limit, ulimit=phase_ulimit, soak=phase_soak, workers=phase_workers)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short forms of every phase")
    parser.add_argument("--only", default=",".join(PHASES),
                        help=f"comma-separated phases (default: all of {', '.join(PHASES)})")
    parser.add_argument("--hostile", metavar="JSON", help=argparse.SUPPRESS)   # HostileMix's
    parser.add_argument("--h2flood", metavar="JSON", help=argparse.SUPPRESS)   # phase_h2floods'
    args = parser.parse_args(argv)
    if args.hostile:
        return _run_hostile(args.hostile)
    if args.h2flood:
        return _run_h2flood(args.h2flood)
    phases = args.only.split(",")
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase {', '.join(sorted(unknown))}")
    if not shutil.which("wrk"):
        parser.error("wrk is needed (apt-get install -y wrk)")
    plan = QUICK if args.quick else FULL
    limit = raise_own_limit()
    if max(plan.idle_connections, plan.limit_connections) + 200 > limit:
        parser.error(f"the open-file limit {limit} is too low for {plan.limit_connections} "
                     f"connections")
    if TWO_CPUS:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reactor-stress-") as workdir:
        site = os.path.join(workdir, "site")
        os.mkdir(site)
        make_site(site)
        scripts = load.write_scripts(workdir)
        for name, phase in PHASES.items():
            if name in phases:
                phase(plan, site, report, scripts)
    print(f"{'all targets met' if not report.misses else 'MISSED: ' + ', '.join(report.misses)}"
          f" ({time.monotonic() - started:.0f}s)")
    return 1 if report.misses else 0


if __name__ == "__main__":
    sys.exit(main())
