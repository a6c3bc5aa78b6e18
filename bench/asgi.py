"""ASGI: reactor's adapter against uvicorn (uvloop + httptools) and granian, one worker each.

    python bench/asgi.py [--seconds 5] [--rounds 3] [--connections 32] [--loops]
        [--only 'hello world,1 KiB JSON']

Besides the servers, the bare ASGI loop (bare_asgi.py: a task per request and nothing a real
server needs) runs hello world and JSON: the ceiling of a Python server on uvloop, and so how
far past uvicorn any of them can go.

Scenarios: plain-text hello world, a 1 KiB JSON route, a static file beside the application
(reactor serves it from --root; uvicorn through Starlette's StaticFiles, mounted in the app;
granian from its --static-path-route), and a WebSocket echo of 1 KiB messages. Each server is
pinned to CPU 0 and the load to CPU 1 with taskset, on 127.0.0.1 only. HTTP load is wrk;
the WebSocket load is the client below, which keeps a batch of messages in flight on every
connection so that it is not the bottleneck. Besides requests (messages) per second, the
server's CPU time per request is read from /proc. Rounds alternate the servers; the ratios
are medians of the per-round ratios, so a burst of someone else's work on a shared machine
hurts one sample, not one server.

--loops compares the ways reactor and asyncio can meet, on hello world and a static file:
the reactor's loop on uvloop or on asyncio's own loop (what --asgi does), and the reactor's
selectors loop handing each request to an asyncio loop in another thread.

This file is also the application under test (`asgi:app`, `asgi:starlette_files`,
`asgi:threaded` with bench/ on the path).
"""

import argparse
import asyncio
import functools
import json
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from wsgi import free_port, running  # noqa: E402  (bench/ is on the path)

HELLO = b"Hello, World!"
PAYLOAD = {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(16)]}
PLAIN_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
JSON_HEADERS = [(b"content-type", b"application/json")]
STATIC_FILE = "static/style.css"
MESSAGE = b"m" * 1024


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        if scope["path"] == "/json":
            body = json.dumps(PAYLOAD).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": JSON_HEADERS + [(b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": PLAIN_HEADERS})
            await send({"type": "http.response.body", "body": HELLO})
    elif kind == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "bytes": message.get("bytes"),
                        "text": message.get("text")})
    elif kind == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return


def starlette_files():
    """`app` with Starlette's StaticFiles under /static: how uvicorn serves files beside it."""
    from starlette.staticfiles import StaticFiles
    files = StaticFiles(directory=os.path.join(os.environ["BENCH_TREE"], "static"))

    async def both(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/static/"):
            scope = dict(scope, root_path="/static", path=scope["path"])
            await files(scope, receive, send)
        else:
            await app(scope, receive, send)
    return both


def __getattr__(name):
    """`asgi:threaded` is made when a server asks for it, not on every import."""
    if name == "threaded":
        return thread_hop()
    raise AttributeError(name)


def thread_hop():
    """--loops: `app` on an asyncio loop in a thread of its own; the reactor's selectors loop
    hands every request over to it and takes the answer back (two wake-ups per request)."""
    from reactor.apps.asgi import ASGIHandler
    from reactor.config import Config

    class ThreadHop(ASGIHandler):
        event_loop = None   # the server keeps its selectors loop

        def __call__(self, request):
            answer = Future()

            def run():
                result = super(ThreadHop, self).__call__(request)
                if hasattr(result, "add_done_callback"):
                    result.add_done_callback(lambda done: answer.set_result(done.result()))
                else:
                    answer.set_result(result)
            self.loop.call_soon_threadsafe(run)
            return answer

    handler = ThreadHop(app, Config(lifespan="off"))
    handler.loop = asyncio.new_event_loop()
    handler.server = ("127.0.0.1", 0)
    threading.Thread(target=handler.loop.run_forever, daemon=True).start()
    return handler


def build_tree(tree: str):
    os.makedirs(os.path.join(tree, "static"), exist_ok=True)
    with open(os.path.join(tree, STATIC_FILE), "w") as file:
        file.write("body { margin: 0 }\n" * 200)   # about 4 KiB


def commands(port: int, tree: str, loops: bool) -> dict:
    """argv of each server, pinned to CPU 0; None where a tool is missing."""
    pin = ["taskset", "-c", "0"]
    reactor = pin + [sys.executable, "-m", "reactor", "-b", "127.0.0.1", "-p", str(port),
                     "--no-access-log", "--ws-ping-interval", "0", "--root", tree]
    if loops:
        return {
            "reactor on uvloop": reactor + ["--asgi", "asgi:app", "--loop", "uvloop"],
            "reactor on asyncio": reactor + ["--asgi", "asgi:app", "--loop", "asyncio"],
            "selectors + thread hop": reactor + ["--app", "asgi:threaded"],
            "reactor files, no ASGI": reactor,
        }
    granian = shutil.which("granian") or os.path.join(os.path.dirname(sys.executable), "granian")
    return {
        "reactor": reactor + ["--asgi", "asgi:app"],
        "uvicorn": pin + [sys.executable, "-m", "uvicorn", "asgi:starlette_files", "--factory",
                          "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
                          "--http", "httptools", "--ws", "websockets", "--no-access-log",
                          "--log-level", "warning", "--ws-ping-interval", "0"],
        # The ceiling of any Python server on uvloop (bare_asgi.py): hello world and JSON.
        "bare asgi loop": pin + [sys.executable, os.path.join(HERE, "bare_asgi.py"), "--port",
                                 str(port)],
        "granian": pin + [granian, "--interface", "asgi", "--workers", "1", "--host",
                          "127.0.0.1", "--port", str(port), "--static-path-route", "/static",
                          "--static-path-mount", os.path.join(tree, "static"),
                          "--log-level", "warning", "asgi:app"]
        if os.path.exists(granian) else None,
    }


def cpu_seconds(pid: int) -> float:
    """User and system time of `pid` and its descendants (granian forks its worker)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                for child in file.read().split():
                    total += cpu_seconds(int(child))
    except FileNotFoundError:
        pass
    return total


def wrk(port: int, path: str, seconds: int, connections: int) -> tuple:
    """(requests/s, requests) that wrk (on CPU 1) measured; errors make the run fail."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        raise RuntimeError(f"failed responses:\n{out}")
    return (float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            int(re.search(r"(\d+) requests in", out).group(1)))


# -- the WebSocket load ----------------------------------------------------------------------

HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")
MASK = b"\x01\x02\x03\x04"
FRAME = (b"\x82\xfe" + len(MESSAGE).to_bytes(2, "big") + MASK
         + bytes(byte ^ MASK[i % 4] for i, byte in enumerate(MESSAGE)))
REPLY = 4 + len(MESSAGE)   # an unmasked binary frame with a 16-bit length
BATCH = 16


def ws_load(port: int, seconds: float, connections: int) -> tuple:
    """(messages/s, messages): `connections` WebSockets, each with BATCH echoes in flight."""
    selector = selectors.DefaultSelector()
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(HANDSHAKE)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"no WebSocket: {head[:100]!r}")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, [len(head.partition(b"\r\n\r\n")[2])])
        sock.sendall(FRAME * BATCH)
    batch_bytes = REPLY * BATCH
    done = 0
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        for key, _ in selector.select(0.5):
            waiting = key.data
            waiting[0] += len(key.fileobj.recv(1 << 20))
            while waiting[0] >= batch_bytes:
                waiting[0] -= batch_bytes
                done += BATCH
                key.fileobj.sendall(FRAME * BATCH)
    elapsed = time.monotonic() - started
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    return done / elapsed, done


def ws_run(port: int, seconds: int, connections: int) -> tuple:
    """The load on CPU 1, in a process of its own."""
    code = (f"import sys; sys.path.insert(0, {HERE!r}); import asgi; "
            f"print(*asgi.ws_load({port}, {seconds}, {connections}))")
    out = subprocess.run(["taskset", "-c", "1", sys.executable, "-c", code],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


# -- running ---------------------------------------------------------------------------------

SCENARIOS = {"hello world": "/hello", "1 KiB JSON": "/json", "static file": "/" + STATIC_FILE,
             "websocket echo": None}
LOOP_SCENARIOS = ("hello world", "static file")


def measure(argv, port, tree, scenarios, seconds, connections) -> dict:
    """{scenario: (rate, CPU microseconds per request)} for one server process."""
    results = {}
    with running(argv, port, {"BENCH_TREE": tree}) as process:
        for scenario in scenarios:
            path = SCENARIOS[scenario]
            load = (functools.partial(ws_run, port, connections=8) if path is None
                    else functools.partial(wrk, port, path, connections=connections))
            load(1)   # warm-up: imports, caches, first connections
            before = cpu_seconds(process.pid)
            rate, count = load(seconds)
            results[scenario] = (rate, (cpu_seconds(process.pid) - before) * 1e6 / count)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loops", action="store_true",
                        help="compare the loop integrations instead of the servers")
    parser.add_argument("--only", help="comma-separated scenarios, e.g. 'hello world,json'")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("taskset"):
        print("wrk and taskset are needed (apt-get install wrk util-linux)", file=sys.stderr)
        return 1
    scenarios = LOOP_SCENARIOS if args.loops else tuple(SCENARIOS)
    if args.only:
        scenarios = tuple(scenario for scenario in scenarios if scenario in args.only.split(","))
    rounds = []   # [{server: {scenario: (rate, cpu_us)}}]
    with tempfile.TemporaryDirectory() as tree:
        build_tree(tree)
        for _ in range(args.rounds):
            results = {}
            for name, argv in commands(0, tree, args.loops).items():
                if argv is None:
                    continue
                port = free_port()
                argv = commands(port, tree, args.loops)[name]
                wanted = {"reactor files, no ASGI": ("static file",),
                          "selectors + thread hop": ("hello world",),
                          "bare asgi loop": ("hello world", "1 KiB JSON")}.get(name, scenarios)
                wanted = tuple(scenario for scenario in wanted if scenario in scenarios)
                results[name] = measure(argv, port, tree, wanted, args.seconds,
                                        args.connections)
            rounds.append(results)
    report(rounds, scenarios)
    return 0


def report(rounds, scenarios):
    """Per scenario and server: medians of rate and CPU time per request, and the first
    server's ratios to each other one as medians of per-round ratios (rate: first / this;
    CPU: this / first, so that above 1 the first server is ahead on both)."""
    names = list(rounds[0])
    first = names[0]
    for scenario in scenarios:
        print(f"\n{scenario}")
        for name in names:
            samples = [r[name][scenario] for r in rounds if scenario in r.get(name, {})]
            if not samples:
                continue
            rate = statistics.median(s[0] for s in samples)
            cpu = statistics.median(s[1] for s in samples)
            spread = ", ".join(f"{s[0]:.0f}" for s in samples)
            line = f"  {name:24} {rate:9.0f}/s  {cpu:7.1f} us CPU each   (rounds: {spread})"
            paired = [(r[first][scenario], r[name][scenario]) for r in rounds
                      if scenario in r.get(name, {}) and scenario in r[first]]
            if name != first and paired:
                rates = statistics.median(ours[0] / theirs[0] for ours, theirs in paired)
                cpus = statistics.median(theirs[1] / ours[1] for ours, theirs in paired)
                line += (f"   {first}: {rates:.2f}x this one's req/s, "
                         f"its CPU per request {cpus:.2f}x smaller")
            print(line)


if __name__ == "__main__":
    sys.exit(main())
