"""The access log over real sockets: one line per response when it ends, with the body bytes
that actually went out."""

import re
import socket

import pytest
from netutil import exchange, fetch, read_until_close, wait_until

# Larger than what the kernel buffers on both sides of a loopback connection hold, so a client
# that does not read holds the response up.
BIG = 16 * 1024 * 1024
LINE = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "(\S+) (\S+) HTTP/1\.(\d)" (\d{3}) (\d+)$')


class Lines:
    """Stands in for stderr: collects what the access log writes."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def parsed(self):
        return [LINE.match(line).groups() for line in self.text.splitlines()]


@pytest.fixture
def logged(tmp_path, server_factory):
    (tmp_path / "big.bin").write_bytes(b"x" * BIG)
    (tmp_path / "small.txt").write_bytes(b"hello")
    srv = server_factory(root=str(tmp_path), access_log=True)
    lines = Lines()
    srv.server.access_log.stream = lines
    return srv, lines


def test_complete_responses_log_their_body_bytes(logged):
    srv, lines = logged
    response, body = fetch(srv.port, "/big.bin")
    assert len(body) == BIG
    fetch(srv.port, "/small.txt", method="HEAD")
    fetch(srv.port, "/missing")
    assert wait_until(lambda: len(lines.parsed()) == 3)
    assert lines.parsed() == [("GET", "/big.bin", "1", "200", str(BIG)),
                              ("HEAD", "/small.txt", "1", "200", "0"),
                              ("GET", "/missing", "1", "404", str(len(b"404 Not Found\n")))]


def test_pipelined_responses_are_each_logged_with_their_own_size(logged):
    srv, lines = logged
    request = b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    exchange(srv.port, request * 5 + b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wait_until(lambda: len(lines.parsed()) == 6)
    sizes = [entry[3:] for entry in lines.parsed()]
    assert sizes == [("200", "5")] * 5 + [("404", str(len(b"404 Not Found\n")))]


def small_window(port, size):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def test_a_client_that_leaves_early_is_logged_with_what_was_sent(logged):
    srv, lines = logged
    sock = small_window(srv.port, 4096)
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    received = 0
    while received < 1000:
        received += len(sock.recv(1000 - received))
    assert lines.text == ""   # not logged while the response is under way
    # A reset, not a FIN: the client discards what it has not read.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    sock.close()
    assert wait_until(lambda: lines.text)
    (method, target, _, status, sent), = lines.parsed()
    assert (method, target, status) == ("GET", "/big.bin", "200")
    assert 1000 <= int(sent) < BIG


def test_the_log_line_waits_for_the_response_to_end(logged):
    srv, lines = logged
    with small_window(srv.port, 65536) as sock:
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert not wait_until(lambda: lines.text, timeout=0.3)
        data = read_until_close(sock)
    assert len(data) > BIG
    assert wait_until(lambda: lines.text)
    assert lines.parsed()[0][3:] == ("200", str(BIG))
