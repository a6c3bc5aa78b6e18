"""Hello-world WSGI: reactor's adapter against gunicorn (one sync worker) and waitress.

    python bench/wsgi.py [--seconds 5] [--rounds 3] [--connections 32] [--threads 8]

Each server is pinned to CPU 0 and wrk to CPU 1 with taskset, on 127.0.0.1 only, so each
server gets one core and the load generator never competes with it. Needs wrk (apt-get install
wrk), gunicorn and waitress (pip install gunicorn waitress); a server whose tool is missing is
skipped. This file is also the application under test (`wsgi:app` with bench/ on the path).
"""

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BODY = b"Hello, World!"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def commands(port: int, threads: int) -> dict:
    """argv of each server, pinned to CPU 0; None for a server that is not installed."""
    pin = ["taskset", "-c", "0"]
    gunicorn = shutil.which("gunicorn")
    waitress = shutil.which("waitress-serve")
    return {
        "reactor": pin + [sys.executable, "-m", "reactor", "--wsgi", "wsgi:app",
                          "--threads", str(threads), "-b", "127.0.0.1", "-p", str(port),
                          "--no-access-log"],
        "gunicorn (1 sync worker)": gunicorn and pin + [
            gunicorn, "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{port}", "--log-level",
            "warning", "wsgi:app"],
        "waitress": waitress and pin + [
            waitress, f"--listen=127.0.0.1:{port}", f"--threads={threads}", "wsgi:app"],
    }


def wait_listening(port: int, process, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start listening")


def wrk(port: int, seconds: int, connections: int) -> float:
    """Requests per second that wrk (on CPU 1) measured; errors make the run fail."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


@contextlib.contextmanager
def running(argv, port: int, env=None):
    """The server process of `argv`, listening on `port`; its log is shown if the body fails,
    and it is stopped after."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, HERE]), **(env or {}))
    # A file, not a pipe: a server that logs under load (waitress warns of its queue depth)
    # must never block on a pipe nobody reads.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, cwd=HERE, env=env, stdout=log, stderr=log)
        try:
            wait_listening(port, process)
            yield process
        except Exception:
            log.seek(0)
            sys.stderr.write(log.read()[-4000:].decode(errors="replace"))
            raise
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def measure(argv, port: int, seconds: int, connections: int) -> float:
    with running(argv, port):
        wrk(port, 1, connections)          # warm-up: imports, caches, first connections
        return wrk(port, seconds, connections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8, help="reactor's and waitress's threads")
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("taskset"):
        print("wrk and taskset are needed (apt-get install wrk util-linux)", file=sys.stderr)
        return 1
    # Rounds alternate the servers, and the median is kept: on a shared machine a burst of
    # someone else's work then hurts one sample, not one server.
    samples = {}
    for _ in range(args.rounds):
        for name in commands(0, args.threads):
            port = free_port()
            argv = commands(port, args.threads)[name]
            if argv is not None:
                samples.setdefault(name, []).append(
                    measure(argv, port, args.seconds, args.connections))
    results = {}
    for name in commands(0, args.threads):
        if name not in samples:
            print(f"{name:26} skipped (not installed)")
            continue
        results[name] = statistics.median(samples[name])
        spread = ", ".join(f"{rate:.0f}" for rate in samples[name])
        print(f"{name:26} {results[name]:10.0f} requests/s   (rounds: {spread})")
    ours = results.get("reactor")
    for name, rate in results.items():
        if name != "reactor" and ours:
            print(f"reactor / {name}: {ours / rate:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
