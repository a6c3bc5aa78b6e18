"""The process side of serving, through the real command line: workers and their restart,
draining on SIGTERM, systemd socket activation, an inherited --fd and --unix listening."""

import os
import signal
import socket
import sys
import time

import pytest
from conftest import BIG_SIZE
from netutil import wait_until
from processes import REPO, Cli, get

from reactor.ops import supervisor

# Replaces itself (same pid) with reactor after putting the socket it was given at fd 3 and
# naming its own pid in LISTEN_PID, as systemd does.
ACTIVATE = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.executable, [sys.executable, "-m", "reactor", *sys.argv[2:]])
"""


def test_workers_serve_and_a_killed_worker_is_replaced(cli):
    server = cli("--workers", "2")
    assert "2 workers" in server.line
    assert wait_until(lambda: len(server.workers()) == 2)
    assert all(get(server.port).startswith(b"HTTP/1.1 200") for _ in range(20))
    victim = min(server.workers())
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: len(server.workers()) == 2 and victim not in server.workers())
    assert all(get(server.port).startswith(b"HTTP/1.1 200") for _ in range(20))
    assert server.stop() == 0
    assert "was killed by SIGKILL; restarting" in server.stderr()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_drains_a_response_under_way_and_exits_0(cli, workers):
    server = cli("--workers", workers)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        received = sock.recv(65536)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)   # the server is draining while the client still reads
        while chunk := sock.recv(1 << 20):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and len(body) == BIG_SIZE
    assert server.proc.wait(15) == 0
    with pytest.raises(OSError):
        get(server.port)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_systemd_socket_activation(cli, workers):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = cli("--workers", workers, argv=[sys.executable, "-c", ACTIVATE,
                                             str(listener.fileno())],
                 pass_fds=(listener.fileno(),))
    listener.close()   # only the server holds it now
    assert f"127.0.0.1:{port}/" in server.line
    assert all(get(port).startswith(b"HTTP/1.1 200") for _ in range(10))
    assert server.stop() == 0


def test_inherited_fd(cli):
    listener = socket.create_server(("127.0.0.1", 0))
    server = cli("--fd", str(listener.fileno()), pass_fds=(listener.fileno(),))
    port = listener.getsockname()[1]
    listener.close()
    assert get(port).startswith(b"HTTP/1.1 200")
    assert server.stop() == 0


def test_fd_that_is_not_a_listening_socket_is_one_line(cli):
    read, write = os.pipe()
    server = cli("--fd", str(read), pass_fds=(read,))
    os.close(read)
    os.close(write)
    assert server.proc.wait(10) == 1
    # The last line: without the C extension, the parser's fallback notice comes before it.
    error = server.stderr().splitlines()[-1]
    assert error.startswith(f"reactor: inherited fd {read} is not a socket: ")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unix_socket(cli, tmp_path, workers):
    path = str(tmp_path / "reactor.sock")
    server = cli("--unix", path, "--workers", workers)
    assert f"unix:{path}" in server.line
    assert all(get(unix=path).startswith(b"HTTP/1.1 200") for _ in range(10))
    assert server.stop() == 0


def test_worker_that_cannot_start_is_an_error_not_a_loop(cli, tmp_path):
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('broken at import')\n")
    env_path = f"{tmp_path}{os.pathsep}{REPO}"
    server = Cli("--port", "0", "--workers", "2", "--app", "broken_app:app",
                 argv=["env", f"PYTHONPATH={env_path}", sys.executable, "-m", "reactor"])
    assert server.proc.wait(20) == 1
    assert "during start-up" in server.stderr().splitlines()[-1]


def test_restart_delay_doubles_while_a_worker_keeps_dying(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(supervisor.time, "monotonic", lambda: clock[0])
    owner = type("Owner", (), {"stop_signal": None})()
    slot = supervisor.Slot(0)
    delays = []
    for _ in range(9):
        slot.started = clock[0]
        clock[0] += 0.5   # died half a second after its start
        supervisor.Supervisor._schedule_restart(owner, slot, 1 << 8)
        delays.append(slot.delay)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8] and delays[-1] == supervisor.RESTART_DELAY_MAX
    slot.started = clock[0]
    clock[0] += supervisor.STABLE_AFTER
    supervisor.Supervisor._schedule_restart(owner, slot, 1 << 8)
    assert slot.delay == 0.0 and slot.due == clock[0]
