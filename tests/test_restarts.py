"""Restarts that drop nothing, through the real command line and under a steady load: the
shared listening socket, SIGHUP rolling restarts (and their abort), SIGTTIN/SIGTTOU,
SIGUSR2 re-execution, and a worker killed with queued connections."""

import functools
import os
import signal
import socket
import time

import pytest
from netutil import wait_until
from processes import REPO, Load

# An App whose answer is the version written beside it when it was imported; "broken" makes
# the import fail, as a bad deploy would.
VERSIONED_APP = """
from pathlib import Path
from reactor.apps.app import App

VERSION = Path(__file__).with_name("version.txt").read_text().strip()
if VERSION == "broken":
    raise RuntimeError("this version does not start")
app = App()

@app.get("/")
def version(request):
    return VERSION
"""


@pytest.fixture
def versioned(tmp_path):
    """(path of version.txt, args serving the versioned app from tmp_path)."""
    (tmp_path / "versioned_app.py").write_text(VERSIONED_APP)
    version = tmp_path / "version.txt"
    version.write_text("one")
    return version, ("--app", "versioned_app:app")


@pytest.fixture
def app_cli(cli, tmp_path):
    """The cli fixture, with tmp_path importable by the servers it starts."""
    return functools.partial(cli, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})


def test_workers_share_one_listening_socket(cli):
    server = cli("--workers", "2")
    workers = server.workers()
    listeners = {pid: set(_listening_sockets(pid).values()) for pid in workers}
    assert len(set(map(frozenset, listeners.values()))) == 1   # the same socket in both
    assert listeners[min(workers)] == set(_listening_sockets(server.proc.pid).values())


def _listening_sockets(pid) -> dict:
    """{descriptor: inode} of the listening TCP sockets among the descriptors of `pid`."""
    listening = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":   # TCP_LISTEN
                listening.add(fields[9])
    sockets = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in listening:
            sockets[int(fd)] = target[8:-1]
    return sockets


def test_sighup_replaces_every_worker_and_loads_the_new_code_without_a_failure(
        app_cli, versioned):
    version, app = versioned
    server = app_cli("--workers", "2", *app)
    old = server.workers()
    with Load(server.port, clients=6) as load:
        assert wait_until(lambda: load.answered > 50)
        version.write_text("two")
        server.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: not (server.workers() & old) and len(server.workers()) == 2,
                          timeout=20)
        answered = load.answered
        assert wait_until(lambda: load.answered > answered + 50)
    assert load.failures == []
    assert set(load.statuses) == {200} and load.bodies == {b"one", b"two"}
    assert server.stop() == 0


def test_sighup_with_a_new_version_that_cannot_start_keeps_the_old_workers(
        app_cli, versioned):
    version, app = versioned
    server = app_cli("--workers", "2", *app)
    old = server.workers()
    version.write_text("broken")
    with Load(server.port, clients=4) as load:
        server.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)   # the new worker fails its import and the restart is abandoned
        answered = load.answered
        assert wait_until(lambda: load.answered > answered + 50)
    assert server.workers() == old
    assert load.failures == [] and load.bodies == {b"one"}
    assert server.stop() == 0
    assert "rolling restart abandoned, the old workers keep serving" in server.stderr()


def test_sigttin_and_sigttou_add_and_remove_workers(cli):
    server = cli("--workers", "2")
    with Load(server.port, clients=4) as load:
        server.proc.send_signal(signal.SIGTTIN)
        assert wait_until(lambda: len(server.workers()) == 3)
        for _ in range(3):   # the last one is refused: one worker is the fewest
            server.proc.send_signal(signal.SIGTTOU)
            time.sleep(0.2)
        assert wait_until(lambda: len(server.workers()) == 1, timeout=10)
        answered = load.answered
        assert wait_until(lambda: load.answered > answered + 50)
    assert load.failures == []
    assert server.stop() == 0
    assert "SIGTTOU ignored: one worker is the fewest" in server.stderr()


def test_sigusr2_re_executes_the_supervisor_with_the_same_socket(cli, tmp_path):
    pid_file = tmp_path / "reactor.pid"
    server = cli("--workers", "2", "--pid-file", str(pid_file))
    assert int(pid_file.read_text()) == server.proc.pid
    with Load(server.port, clients=6) as load:
        assert wait_until(lambda: load.answered > 50)
        server.proc.send_signal(signal.SIGUSR2)
        assert server.proc.wait(20) == 0            # the old supervisor drained and left
        successor = int(pid_file.read_text())
        assert successor != server.proc.pid
        assert f":{server.port}/" in server.next_line()   # the new one's ready line
        answered = load.answered
        assert wait_until(lambda: load.answered > answered + 50)
        # The new supervisor starts workers as its predecessor did: here a rolling restart.
        old = server.workers(successor)
        os.kill(successor, signal.SIGHUP)
        assert wait_until(lambda: not (server.workers(successor) & old)
                          and len(server.workers(successor)) == 2, timeout=20)
    try:
        assert load.failures == [] and set(load.statuses) == {200}
        assert len(server.workers(successor)) == 2
    finally:
        os.kill(successor, signal.SIGTERM)
    assert wait_until(lambda: not pid_file.exists(), timeout=15)


# Draining under a load that outlasts the drain grace: the clients never pause, so a worker
# that waits for its connections to fall idle waits until the grace ends, and then cuts them.
DRAIN_GRACE = 1.0
CLIENTS = 8   # keep-alive connections, four for each of the two workers


@pytest.mark.parametrize("lane", ["fast lane", "full path"])
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGUSR2, signal.SIGTERM],
                         ids=lambda signum: signum.name)
def test_a_draining_worker_closes_busy_keepalive_connections_at_their_next_answer(
        cli, tmp_path, signum, lane):
    pid_file = tmp_path / "reactor.pid"
    server = cli("--workers", "2", "--shutdown-grace", str(DRAIN_GRACE), "--pid-file",
                 str(pid_file), *(() if lane == "fast lane" else ("--no-fast-lane",)))
    [listener] = _listening_sockets(server.proc.pid)   # the workers inherit its descriptor
    old = server.workers()
    successor = None
    try:
        with Load(server.port, clients=CLIENTS) as load:
            began = time.monotonic()
            assert wait_until(lambda: load.answered > 200)
            signalled = time.monotonic()
            round_trip = (signalled - began) * CLIENTS / load.answered
            server.proc.send_signal(signum)
            drains = _drain_times(server, old, listener, timeout=DRAIN_GRACE + 10)
            if signum == signal.SIGTERM:
                assert server.proc.wait(10) == 0
            else:
                if signum == signal.SIGUSR2:
                    assert server.proc.wait(10) == 0
                    successor = int(pid_file.read_text())
                # The new workers serve on, past the end of the old ones' grace.
                time.sleep(max(signalled + DRAIN_GRACE + 0.2 - time.monotonic(), 0))
                answered = load.answered
                assert wait_until(lambda: load.answered > answered + 100)
    finally:
        if successor is not None:
            os.kill(successor, signal.SIGTERM)
    assert load.cut == [] and load.bodies == {b"hello"}
    if signum != signal.SIGTERM:
        assert load.failures == []   # and the shared socket refused no one
    # An old worker's connections are each one round trip from its answer saying close, and
    # then it exits (a few milliseconds here); one that waits for them to fall idle lasts the
    # whole grace.
    assert set(drains) == old and max(drains.values()) < DRAIN_GRACE / 2, (drains, round_trip)


def _drain_times(server, pids, listener, timeout) -> dict:
    """Seconds each worker of `pids` took from closing its descriptor `listener` (stopping
    accepting is where draining starts) until its supervisor no longer had it, sampled every
    few milliseconds."""
    closed, gone = {}, {}
    supervisor = server.proc.pid
    deadline = time.monotonic() + timeout
    while len(gone) < len(pids) and time.monotonic() < deadline:
        now = time.monotonic()
        running = server.workers(supervisor)
        for pid in pids - gone.keys():
            if pid not in running:
                gone[pid] = now - closed.get(pid, now)
            elif pid not in closed:
                try:
                    os.readlink(f"/proc/{pid}/fd/{listener}")
                except FileNotFoundError:
                    closed[pid] = now
        time.sleep(0.002)
    return gone


def test_a_killed_worker_loses_no_queued_connection(cli):
    """Connections wait in the accept queue while every worker is stopped; one worker is
    killed, and the other answers all of them: the queue is the shared socket's, not the dead
    worker's."""
    assert _answered_after_a_kill(cli("--workers", "2")) == 40


def test_with_reuse_port_a_killed_worker_resets_its_queue(cli):
    """The trade-off of --reuse-port: each worker's socket has its own queue, lost with it."""
    assert _answered_after_a_kill(cli("--workers", "2", "--reuse-port")) < 40


def _answered_after_a_kill(server, count=40) -> int:
    workers = sorted(server.workers())
    assert len(workers) == 2
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    clients = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            clients.append(sock)
        os.kill(workers[0], signal.SIGKILL)
    finally:
        os.kill(workers[1], signal.SIGCONT)
    answered = 0
    for sock in clients:
        try:
            answered += sock.recv(65536).startswith(b"HTTP/1.1 200")
        except OSError:
            pass
        sock.close()
    return answered
