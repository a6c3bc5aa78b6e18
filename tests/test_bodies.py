"""Request bodies from hostile or careless clients, over real sockets: answers that do not
depend on a body are given from the head, 100 Continue only for a body that will be read, and
a body that trickles is cut off by its minimum rate."""

import socket
import time

import pytest
from netutil import connect, parse_responses, read_until_close

from reactor.apps.app import App
from reactor.net.connection import LINGER_TIME

HEAD_ONLY = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n%s\r\n"


def answer_from_head(port, target, extra=b"", body=b"abcd"):
    """Send a head announcing a 1 MB body and only `body` of it; (first bytes received,
    seconds until then, everything until the server closed, seconds until the close)."""
    with connect(port) as sock:
        started = time.monotonic()
        sock.sendall(HEAD_ONLY % (target, extra) + body)
        first = sock.recv(65536)
        answered = time.monotonic() - started
        rest = read_until_close(sock)
        closed = time.monotonic() - started
    return first, answered, first + rest, closed


@pytest.fixture
def site(tmp_path, server_factory):
    (tmp_path / "index.html").write_bytes(b"<h1>home</h1>")
    return server_factory(root=str(tmp_path))


@pytest.fixture
def app_server(server_factory):
    app = App()

    @app.post("/upload")
    def upload(request):
        return f"got {len(request.body)}"

    @app.get("/page")
    def page(request):
        return "page"

    return server_factory(handler=app, body_grace=0.5, body_min_rate=100)


def test_static_refuses_a_post_from_its_head_and_closes_after_a_short_drain(site):
    first, answered, data, closed = answer_from_head(site.port, b"/index.html")
    (response,) = parse_responses(data)
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD, OPTIONS"
    assert response.getheader("Connection") == "close"
    assert answered < 1.0            # not after 1 MB or a body timeout
    assert closed < LINGER_TIME + 2  # the client never finished its body nor closed


def test_requests_pipelined_before_a_refused_body_are_answered_in_order(site):
    get = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(site.port) as sock:
        sock.sendall(get + get + HEAD_ONLY % (b"/index.html", b"") + b"abcd" + get)
        responses = parse_responses(read_until_close(sock))
    assert [r.status for r in responses] == [200, 200, 405]
    assert [r.getheader("Connection") for r in responses] == [None, None, "close"]
    assert responses[0].body == responses[1].body == b"<h1>home</h1>"


def test_expect_continue_gets_the_refusal_instead_of_100(site):
    first, _, data, _ = answer_from_head(site.port, b"/index.html",
                                         b"Expect: 100-continue\r\n", body=b"")
    assert first.startswith(b"HTTP/1.1 405 ")
    assert b"100 Continue" not in data


def test_expect_continue_for_a_body_over_the_limit_gets_413(server_factory, tmp_path):
    srv = server_factory(root=str(tmp_path), max_body=1000)
    first, _, _, _ = answer_from_head(srv.port, b"/x", b"Expect: 100-continue\r\n", body=b"")
    assert first.startswith(b"HTTP/1.1 413 ")


def test_expect_continue_is_100_when_the_body_will_be_read(app_server):
    with connect(app_server.port) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 4\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        assert sock.recv(65536).endswith(b"got 4")


@pytest.mark.parametrize("target, status", [(b"/nowhere", 404), (b"/page", 405)])
def test_app_refuses_from_the_head_what_no_route_takes(app_server, target, status):
    first, answered, data, _ = answer_from_head(app_server.port, target,
                                                b"Expect: 100-continue\r\n")
    assert first.startswith(b"HTTP/1.1 %d " % status)
    assert answered < 1.0


def test_a_route_that_takes_the_body_reads_it_all(app_server):
    with connect(app_server.port) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        sock.sendall(b"x" * 100000)
        (response,) = parse_responses(sock.recv(65536))
    assert response.status == 200 and response.body == b"got 100000"


def test_a_trickling_body_is_cut_off_by_its_minimum_rate(app_server):
    # Each byte comes well within the 30 s pause limit; the rate is what runs out.
    with connect(app_server.port) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n")
        data = b""
        try:
            while not data and time.monotonic() - started < 6:
                sock.sendall(b"x")
                sock.settimeout(0.2)
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    pass
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert data.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 4
