"""Helpers for tests that run reactor as users do, through `python -m reactor`: the process
with its ready line, a steady keep-alive load that counts failures, and one-shot requests."""

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Cli:
    """`python -m reactor ARGS` with its ready line read; stopped at the end of the test."""

    def __init__(self, *args, argv=None, pass_fds=(), env=None):
        argv = argv or [sys.executable, "-m", "reactor"]
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore", **(env or {})}
        self.proc = subprocess.Popen([*argv, *args], cwd=REPO, env=env, pass_fds=pass_fds,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.line = self.next_line()
        port = re.search(r"127\.0\.0\.\d+:(\d+)/", self.line)
        self.port = int(port.group(1)) if port else None

    def next_line(self) -> str:
        """The next line on stdout (a re-executed supervisor prints its own ready line)."""
        return self.proc.stdout.readline().decode()

    def workers(self, pid=None) -> set:
        pid = pid or self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        try:
            return set(map(int, children.read_text().split()))
        except FileNotFoundError:
            return set()

    def stop(self, signum=signal.SIGTERM, timeout=15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def stderr(self) -> str:
        return self.proc.stderr.read().decode()


def get(port=None, path="/", unix=None, host="127.0.0.1") -> bytes:
    """One request on a fresh connection; the response head (and what came with it)."""
    family = socket.AF_UNIX if unix else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(unix or (host, port))
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


class Load:
    """`clients` threads sending GET `path` over keep-alive connections until stopped.

    Counts the answers by status and every failure (a reset, a connection closed before the
    response, a timeout), as a load generator would report them. `cut` holds the failures of
    requests that a server had taken: sent on a connection that had answered before, or
    failing once their answer had begun. The other failures are of a new connection that got
    no answer at all (refused, or reset in the queue of a listener closing): requests that
    may never have reached a server."""

    def __init__(self, port, path="/", clients=8, host="127.0.0.1"):
        self.address = (host, port)
        self.path = path
        self.statuses = {}
        self.bodies = set()
        self.failures = []
        self.cut = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(clients)]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    @property
    def answered(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    def _client(self):
        conn = http.client.HTTPConnection(*self.address, timeout=5)
        while not self._stop.is_set():
            reused = conn.sock is not None
            response = None
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                with self._lock:
                    self.failures.append(repr(error))
                    if reused or response is not None:
                        self.cut.append(repr(error))
                conn.close()
                continue
            with self._lock:
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                self.bodies.add(body)
        conn.close()
