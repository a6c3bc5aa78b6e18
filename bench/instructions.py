"""User-space instructions per request, counted by valgrind's callgrind: a measure of reactor's
own code that does not move with other work on a shared machine, for before/after comparisons.

    python bench/instructions.py [--checkout NAME=DIR ...] [--path /hello] [--requests 2000]
        [--asgi asgi:app] [--root DIR]

Each checkout (the installed reactor as "reactor", and every --checkout NAME=DIR, whose
extension is built in place) serves under callgrind twice: the second run serves --requests
more than the first, and the difference in instructions over that count is one request's cost,
start-up and shutdown cancelled out. The requests come one at a time on 8 keep-alive
connections, as wrk sends them. Only 127.0.0.1 is used.

The count leaves out the kernel and says nothing of how fast each instruction runs: compare a
checkout with another, not reactor with a peer built another way (uvloop's C transports and
httptools' callbacks take fewer instructions than reactor for the same request and more CPU
time in the kernel).
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from stress import read_response  # (bench/ is on the path)
from wsgi import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BASELINE = 200   # requests of the first run


def load(port: int, path: str, count: int) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
    try:
        for i in range(count):
            sock = socks[i % len(socks)]
            sock.sendall(request)
            read_response(sock)
    finally:
        for sock in socks:
            sock.close()


def counted(checkout, args, requests: int) -> int:
    """Instructions of one run serving `requests` requests."""
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "callgrind.out")
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                sys.executable, "-m", "reactor", "-b", "127.0.0.1", "-p", str(port),
                "--no-access-log", "--root", args.root]
        if args.asgi:
            argv += ["--asgi", args.asgi, "--ws-ping-interval", "0"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (checkout, HERE))))
        server = subprocess.Popen(argv, cwd=HERE, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the server did not start under valgrind") from None
                    time.sleep(0.5)
            load(port, args.path, requests)
        finally:
            server.terminate()
            server.wait(120)
        with open(out) as file:
            return int(re.search(r"^(?:summary|totals): (\d+)", file.read(), re.M).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--asgi", default="asgi:app", help="'' for files alone")
    parser.add_argument("--root", default=os.path.join(ROOT, "static"))
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind is needed (apt-get install valgrind)", file=sys.stderr)
        return 1
    checkouts = [("reactor", None)] + [tuple(item.split("=", 1)) for item in args.checkout]
    for name, checkout in checkouts:
        first = counted(checkout, args, BASELINE)
        second = counted(checkout, args, BASELINE + args.requests)
        print(f"{name:16} {(second - first) / args.requests:10.0f} instructions a request "
              f"({args.path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
