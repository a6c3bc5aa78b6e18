"""A real balancer in the loop: HAProxy in front of reactor instances on 127.0.0.2, .3, .4...

HAProxy (HTTP mode) sends PROXY protocol v2 from its own source address (127.0.0.9, so that the
client address reactor logs can be told apart from the balancer's), health-checks each
instance's `--health` path every 200 ms, and retries a request whose connection failed before
any response. Each instance is a supervisor with workers, started in its own session so that
it can be killed whole, with its pid in a pid file (a re-executed supervisor rewrites it) and its
output, access log included, in a log file.

Used by bench/restart.py (the long form) and tests/test_balancer.py (the short one). Imports
nothing of reactor: reactor runs as a command.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

BALANCER_SOURCE = "127.0.0.9"
HEALTH = "/healthz"
START_TIMEOUT = 20.0

HAPROXY_CONFIG = """\
global
    maxconn {maxconn}
    nbthread 1
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    option dontlog-normal      # only what went wrong: a status from HAProxy, a retry, a reset
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
    timeout check 2s           # a busy server answers its check late, not never
    # A request whose connection failed before any byte of a response came back goes to
    # another server: what a balancer in front of restarting backends is configured to do.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend front
    bind 127.0.0.1:{port}
    default_backend reactors

backend reactors
    balance roundrobin
    # Keep a client's requests on the server its connection is open to: with PROXY headers
    # server connections are private to a client, and balancing each request anew would open
    # a new one for most requests.
    option prefer-last-server
    option httpchk GET {health}
    http-check expect status 200
    default-server source {source} send-proxy-v2 check-send-proxy check inter 200ms fall 2 rise 1
{servers}
"""

_READY = re.compile(rb"reactor serving .* at http://([0-9.]+):(\d+)/")


def haproxy_path():
    return shutil.which("haproxy") or next(
        (path for path in ("/usr/sbin/haproxy", "/sbin/haproxy") if os.path.exists(path)), None)


def loopback_aliases_work() -> bool:
    """127.0.0.2 and up answer on Linux without configuration; not everywhere."""
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


def free_port(host="127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Instance:
    """One reactor supervisor on `address`: started, signalled, killed whole, restarted."""

    def __init__(self, name, address, root, workdir, workers=2, args=(), cpu=None):
        self.name = name
        self.address = address
        self.port = 0
        self.root = root
        self.workers = workers
        self.args = list(args)
        self.cpu = cpu
        self.pid_file = os.path.join(workdir, f"{name}.pid")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.proc = None

    def argv(self):
        argv = [sys.executable, "-m", "reactor", "--root", self.root, "--bind", self.address,
                "--port", str(self.port), "--workers", str(self.workers),
                "--pid-file", self.pid_file, "--health", HEALTH, *self.args]
        return (["taskset", "-c", str(self.cpu)] + argv) if self.cpu is not None else argv

    def start(self):
        offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        with open(self.log_path, "ab") as log:
            env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
            self.proc = subprocess.Popen(self.argv(), cwd=REPO, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.port = int(self.wait_for_line(_READY, offset).group(2))
        return self

    def wait_for_line(self, pattern, offset=0, timeout=START_TIMEOUT):
        """The first match of `pattern` in the log after `offset`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                found = pattern.search(log.read())
            if found:
                return found
            if self.proc.poll() is not None and not self.alive():
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {pattern.pattern!r} in its log: {self.log_tail()}")

    def log_tail(self, lines=5) -> str:
        with open(self.log_path, "rb") as log:
            return b" | ".join(log.read().splitlines()[-lines:]).decode(errors="replace")

    def log_size(self) -> int:
        return os.path.getsize(self.log_path)

    def supervisor(self) -> int:
        """The current supervisor's pid (a re-executed one writes its own)."""
        with open(self.pid_file) as file:
            return int(file.read())

    def alive(self, pid=None) -> bool:
        """Whether the supervisor (or `pid`) runs; our own child is reaped here, its
        successors by init."""
        if self.proc is not None:
            self.proc.poll()
        try:
            return _alive(pid or self.supervisor())
        except (OSError, ValueError):
            return False

    def worker_pids(self) -> set:
        pid = self.supervisor()
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                return set(map(int, children.read().split()))
        except OSError:
            return set()

    def signal(self, signum):
        os.kill(self.supervisor(), signum)

    def rolling_restart(self, timeout=30.0):
        """SIGHUP, and wait until no worker of before is left."""
        old = self.worker_pids()
        self.signal(signal.SIGHUP)
        _wait(lambda: not (self.worker_pids() & old) and len(self.worker_pids()) == len(old),
              timeout, f"{self.name}: rolling restart did not finish")

    def upgrade(self, timeout=30.0):
        """SIGUSR2, and wait until the new supervisor serves and the old one is gone."""
        old = self.supervisor()
        self.signal(signal.SIGUSR2)
        _wait(lambda: self.supervisor() != old and not self.alive(old), timeout,
              f"{self.name}: re-exec did not finish")
        _wait(lambda: len(self.worker_pids()) == self.workers, timeout,
              f"{self.name}: new supervisor has no workers")

    def kill(self):
        """SIGKILL to the whole instance, supervisor and workers."""
        try:
            os.killpg(os.getpgid(self.supervisor()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        _wait(lambda: not self.alive(), 10, f"{self.name} did not die")
        if self.proc is not None:
            self.proc.poll()

    def stop(self):
        if self.alive():
            pid = self.supervisor()
            os.kill(pid, signal.SIGTERM)
            try:
                _wait(lambda: not self.alive(pid), 15, "")
            except RuntimeError:
                pass
        try:
            os.killpg(os.getpgid(self.supervisor()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


class Balancer:
    """HAProxy on 127.0.0.1:port in front of `instances`."""

    def __init__(self, instances, workdir, maxconn=4096, cpu=None):
        self.instances = instances
        self.port = free_port()
        self.config_path = os.path.join(workdir, "haproxy.cfg")
        self.log_path = os.path.join(workdir, "haproxy.log")
        servers = "\n".join(f"    server {i.name} {i.address}:{i.port}" for i in instances)
        with open(self.config_path, "w") as config:
            config.write(HAPROXY_CONFIG.format(maxconn=maxconn, port=self.port, health=HEALTH,
                                               source=BALANCER_SOURCE, servers=servers))
        argv = [haproxy_path(), "-f", self.config_path, "-db"]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        _wait(self._listening, START_TIMEOUT, "haproxy did not start")

    def _listening(self) -> bool:
        if self.proc.poll() is not None:
            with open(self.log_path, "rb") as log:
                raise RuntimeError(f"haproxy exited: {log.read()[-500:]!r}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def build_sites(workdir, names) -> dict:
    """A root per instance whose index.html names it, so a client sees who answered."""
    roots = {}
    for name in names:
        root = os.path.join(workdir, f"site-{name}")
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "index.html"), "w") as page:
            page.write(name)
        roots[name] = root
    return roots


def _alive(pid) -> bool:
    """Running, not a zombie that no one has reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    if not predicate():
        raise RuntimeError(message)
