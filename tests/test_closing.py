"""How a connection ends, over real sockets. A client that asked to close (and sent nothing
after) is closed as soon as its answer is written; a close the server decides, with input
that may still be coming, half-closes and reads on, so that the client's unread bytes never
turn into a reset that wipes out the answer."""

import errno
import socket

import pytest
from netutil import connect, parse_responses, read_until_close

SMALL = b"<h1>home</h1>"
LARGE = bytes(range(256)) * 1024   # above the memory cache: sent with sendfile


@pytest.fixture
def root(tmp_path):
    (tmp_path / "index.html").write_bytes(SMALL)
    (tmp_path / "large.bin").write_bytes(LARGE)
    return str(tmp_path)


def get(target: bytes, *fields: bytes, version=b"HTTP/1.1") -> bytes:
    return (b"GET " + target + b" " + version + b"\r\nHost: t\r\n"
            + b"".join(f + b"\r\n" for f in fields) + b"\r\n")


def is_closed(sock) -> bool:
    """After the server's FIN: True when the server's socket is gone (bytes sent to it are
    answered with a reset), False when it still reads and discards them (it lingers)."""
    try:
        sock.sendall(b"more")
        sock.shutdown(socket.SHUT_WR)   # a lingering server then sees the end, closes quietly
        sock.recv(1)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except OSError as error:
        if error.errno == errno.ENOTCONN:   # the reset came before the shutdown
            return True
        raise
    return False


@pytest.mark.parametrize("fast_lane", [True, False], ids=["lane", "full"])
@pytest.mark.parametrize("target, body", [(b"/index.html", SMALL), (b"/large.bin", LARGE)],
                         ids=["cached", "sendfile"])
@pytest.mark.parametrize("request_", [get(b"%s", b"Connection: close"),
                                      get(b"%s", version=b"HTTP/1.0")], ids=["close", "1.0"])
def test_a_client_that_asked_to_close_gets_its_whole_answer_then_an_immediate_close(
        server_factory, root, fast_lane, target, body, request_):
    srv = server_factory(root=root, fast_lane=fast_lane)
    with connect(srv.port) as sock:
        sock.sendall(request_.replace(b"%s", target))
        (response,) = parse_responses(read_until_close(sock, reset_ok=False))
        assert response.status == 200 and response.body == body
        assert response.getheader("Connection") == "close" or response.version == 10
        assert is_closed(sock)


@pytest.mark.parametrize("fast_lane", [True, False], ids=["lane", "full"])
def test_a_client_that_sent_more_after_asking_to_close_is_lingered_on(server_factory, root,
                                                                     fast_lane):
    srv = server_factory(root=root, fast_lane=fast_lane)
    with connect(srv.port) as sock:
        sock.sendall(get(b"/index.html", b"Connection: close") + get(b"/index.html"))
        (response,) = parse_responses(read_until_close(sock, reset_ok=False))
        assert response.body == SMALL
        assert not is_closed(sock)


def test_a_close_the_server_decides_lingers(server_factory, root):
    srv = server_factory(root=root, max_keepalive_requests=1)
    with connect(srv.port) as sock:
        sock.sendall(get(b"/index.html"))
        (response,) = parse_responses(read_until_close(sock, reset_ok=False))
        assert response.getheader("Connection") == "close" and response.body == SMALL
        assert not is_closed(sock)


def test_a_refused_body_is_lingered_on_even_when_the_client_asked_to_close(server_factory,
                                                                           root):
    srv = server_factory(root=root)
    with connect(srv.port) as sock:
        sock.sendall(b"POST /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     b"Content-Length: 100000\r\n\r\nabcd")
        (response,) = parse_responses(read_until_close(sock, reset_ok=False))
        assert response.status == 405
        assert not is_closed(sock)


def test_a_half_closed_client_gets_its_answer(server_factory, root):
    srv = server_factory(root=root)
    with connect(srv.port) as sock:
        sock.sendall(get(b"/index.html"))
        sock.shutdown(socket.SHUT_WR)
        (response,) = parse_responses(read_until_close(sock))
        assert response.body == SMALL
