"""Access log formats, files, rotation on SIGUSR1 and a writer that never holds up the loop."""

import json
import os
import re
import signal
import threading
import time

import pytest
from netutil import fetch, wait_until
from processes import Cli, get

from reactor.ops import accesslog
from reactor.ops.accesslog import AccessLog

COMBINED = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "(\S+) (\S+) HTTP/1\.1" (\d{3}) (\d+) '
                      r'"([^"]*)" "([^"]*)"$')


@pytest.fixture
def root(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_bytes(b"<p>page</p>")
    return site


def lines_of(path) -> list:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def two_lines(root, tmp_path, server_factory, log_format, first, second) -> list:
    """The lines a server logging to a file in `log_format` writes for two requests, each
    (target, method, headers)."""
    log = tmp_path / "access.log"
    srv = server_factory(root=str(root), access_log=True, access_log_file=str(log),
                         log_format=log_format)
    for target, method, headers in (first, second):
        fetch(srv.port, target, method=method, headers=headers)
    assert wait_until(lambda: len(lines_of(log)) == 2)
    return lines_of(log)


def test_combined_format_to_a_file_escapes_what_clients_send(root, tmp_path, server_factory):
    lines = two_lines(root, tmp_path, server_factory, "combined",
                      ("/page.html", "GET", {"Referer": "http://a.test/x",
                                             "User-Agent": 'evil" "agent\\'}),
                      ("/missing", "GET", {}))
    first, second = (COMBINED.match(line).groups() for line in lines)
    assert first == ("GET", "/page.html", "200", "11", "http://a.test/x",
                     "evil\\x22 \\x22agent\\x5C")
    assert second[:3] == ("GET", "/missing", "404") and second[4:] == ("-", "-")


def test_json_format(root, tmp_path, server_factory):
    lines = two_lines(root, tmp_path, server_factory, "json",
                      ("/page.html?q=%22x", "GET", {"User-Agent": "tester/1.0",
                                                    "Referer": "http://a.test/"}),
                      ("/page.html", "HEAD", {}))
    first, second = map(json.loads, lines)
    assert list(first) == ["time", "client", "method", "path", "protocol", "status", "bytes",
                           "duration_ms", "referer", "user_agent"]
    assert lines[1] == json.dumps(second)   # the separators and escapes of json.dumps
    assert first["client"] == "127.0.0.1" and first["method"] == "GET"
    assert first["path"] == "/page.html?q=%22x" and first["status"] == 200
    assert first["bytes"] == 11 and first["protocol"] == "HTTP/1.1"
    assert first["user_agent"] == "tester/1.0" and first["referer"] == "http://a.test/"
    assert 0 <= first["duration_ms"] < 5000
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert second["method"] == "HEAD" and second["bytes"] == 0 and second["referer"] is None


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigusr1_reopens_the_file_after_rotation(root, tmp_path, workers):
    log = tmp_path / "access.log"
    server = Cli("--root", str(root), "--port", "0", "--bind", "127.0.0.1", "--workers", workers,
                 "--access-log", str(log))
    try:
        assert server.port, server.line
        get(server.port, "/page.html")
        assert wait_until(lambda: len(lines_of(log)) == 1)
        rotated = tmp_path / "access.log.1"
        os.rename(log, rotated)
        get(server.port, "/page.html")          # still written to the renamed file
        assert wait_until(lambda: len(lines_of(rotated)) == 2)
        os.kill(server.proc.pid, signal.SIGUSR1)
        assert wait_until(log.exists)
        for _ in range(4):
            get(server.port, "/missing")
        assert wait_until(lambda: len(lines_of(log)) == 4)
        assert all('"GET /missing HTTP/1.1" 404' in line for line in lines_of(log))
        assert len(lines_of(rotated)) == 2
        assert server.stop() == 0
    finally:
        server.stop(signal.SIGKILL)


def test_log_file_in_a_missing_directory_is_one_line(root, tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "reactor", "--root", str(root), "--port", "0",
                             "--access-log", str(tmp_path / "nowhere" / "a.log")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("reactor: --access-log")


class StalledDisk:
    """A stream whose writes block until released, like a log on a disk that stopped."""

    def __init__(self):
        self.released = threading.Event()
        self.stuck = threading.Event()   # a write is under way
        self.text = ""

    def write(self, text):
        self.stuck.set()
        self.released.wait(10)
        self.text += text

    def flush(self):
        pass


def test_a_stalled_log_never_holds_up_the_loop(root, server_factory, monkeypatch):
    monkeypatch.setattr(accesslog, "MAX_BACKLOG", 2000)
    srv = server_factory(root=str(root), access_log=True)
    stalled = StalledDisk()
    srv.server.access_log.stream = stalled
    try:
        fetch(srv.port, "/page.html")
        assert stalled.stuck.wait(5)   # the writer is stuck on that line's batch
        started = time.monotonic()
        for _ in range(60):   # far more than the backlog holds
            response, body = fetch(srv.port, "/page.html")
            assert response.status == 200 and body == b"<p>page</p>"
        assert time.monotonic() - started < 5
    finally:
        stalled.released.set()
    fetch(srv.port, "/page.html")
    assert wait_until(lambda: "access log lines dropped" in stalled.text)
    kept = [line for line in stalled.text.splitlines() if "GET /page.html" in line]
    assert 0 < len(kept) < 62


def test_unknown_format_is_refused():
    with pytest.raises(ValueError):
        AccessLog(None, None, "apache")
