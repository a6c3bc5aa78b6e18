"""HTTP/2 over real sockets, on both engines (libnghttp2 through the shim, the `h2` package):
h2c with prior knowledge and h2 by ALPN, every handler unchanged over a stream, the access
log, flow control both ways, graceful drain, and the engines answering alike.

The client is the `h2` package (tests/h2client.py); the attacks are in test_http2_guards.py,
the real clients (curl, nghttp, h2load, Chromium) in test_http2_clients.py.
"""

import hashlib
import io
import os
import time

import pytest
from h2client import H2Client
from netutil import connect, read_until_close, wait_until
from test_proxy import v2

from reactor.apps.app import App
from reactor.apps.wsgi import WSGIHandler
from reactor.http import h2 as engines
from reactor.http.response import Response
from reactor.net.tls import Certificates
from reactor.ops.accesslog import AccessLog


@pytest.fixture
def h2c(server_factory, h2_site, engine):
    return server_factory(root=str(h2_site), http2_engine=engine)


@pytest.fixture
def h2tls(server_factory, h2_site, engine, pki):
    certificates = Certificates([(str(pki / "cert.pem"), str(pki / "key.pem"))])
    return server_factory(tls=certificates, root=str(h2_site), http2_engine=engine)


# -- static files --------------------------------------------------------------------------------

def test_prior_knowledge_serves_files_with_their_fields(h2c, h2_site):
    client = H2Client(h2c.port)
    response = client.get("/index.html")
    assert response.status == 200
    assert response.body == b"<h1>hello over h2</h1>"
    assert response.header(b"content-length") == b"22"
    assert response.header(b"content-type") == b"text/html; charset=utf-8"
    assert response.header(b"etag") and response.header(b"date")
    big = client.get("/big.bin")
    assert hashlib.sha256(big.body).digest() == hashlib.sha256(
        (h2_site / "big.bin").read_bytes()).digest()
    client.close()


def test_alpn_h2_over_tls_serves_files(h2tls, h2_site, client_context):
    client = H2Client(h2tls.port, client_context)
    response = client.get("/mid.bin")
    assert response.status == 200 and response.body == (h2_site / "mid.bin").read_bytes()
    big = client.get("/big.bin")
    assert big.body == (h2_site / "big.bin").read_bytes()
    client.close()


def test_head_conditional_range_compression_listing_errors(h2c, h2_site):
    client = H2Client(h2c.port)
    head = client.get("/mid.bin", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header(b"content-length") == str(200 * 1024).encode()
    etag = head.header(b"etag")
    assert client.get("/mid.bin", headers=[("if-none-match", etag)]).status == 304
    assert client.get("/mid.bin", headers=[("if-match", '"other"')]).status == 412
    part = client.get("/mid.bin", headers=[("range", "bytes=100-199")])
    assert part.status == 206 and part.body == (h2_site / "mid.bin").read_bytes()[100:200]
    assert part.header(b"content-range") == b"bytes 100-199/204800"
    parts = client.get("/mid.bin", headers=[("range", "bytes=0-9,100000-100009")])
    assert parts.status == 206 and parts.header(b"content-type").startswith(
        b"multipart/byteranges")
    assert parts.body.count(b"Content-Range: bytes") == 2
    assert len(parts.body) == int(parts.header(b"content-length"))
    gzip = client.get("/style.css", headers=[("accept-encoding", "gzip")])
    assert gzip.header(b"vary") == b"Accept-Encoding"
    listing = client.get("/docs/")
    assert listing.status == 200 and b"a.txt" in listing.body
    assert client.get("/docs").status == 301
    missing = client.get("/nothing-here")
    assert missing.status == 404 and missing.body.startswith(b"404")
    refused = client.get("/index.html", method="POST", body=b"x" * 100000)
    assert refused.status == 405 and refused.header(b"allow")
    # The connection goes on after the refused upload, its body dropped as it came.
    assert client.get("/index.html").status == 200
    client.close()


def test_streams_are_served_concurrently_and_fairly(h2c, h2_site):
    """Two large files on one connection: DATA of both arrive interleaved, not one after the
    other (the engine schedules streams round robin within an urgency)."""
    client = H2Client(h2c.port)
    first = client.request("/big.bin")
    second = client.request("/big.bin")
    order = []
    while not all(client.responses[s].ended for s in (first, second)):
        before = {s: len(client.responses[s].body) for s in (first, second)}
        assert client.read_once()
        order.extend(s for s in (first, second) if len(client.responses[s].body) > before[s])
    expected = (h2_site / "big.bin").read_bytes()
    assert client.responses[first].body == expected and client.responses[second].body == expected
    # Before the first stream is done, the second has made progress.
    done_first = max(i for i, s in enumerate(order) if s == first)
    assert second in order[:done_first]
    many = [client.request(f"/index.html?{i}") for i in range(50)]
    assert all(client.response(s).status == 200 for s in many)
    client.close()


def test_access_log_says_http2(server_factory, h2_site, engine, tmp_path):
    log = tmp_path / "access.log"
    server = server_factory(root=str(h2_site), http2_engine=engine, access_log=True,
                            access_log_file=str(log))
    client = H2Client(server.port)
    client.get("/index.html")
    client.get("/mid.bin", method="HEAD")
    client.close()
    assert wait_until(lambda: log.exists() and log.read_text().count("\n") >= 2)
    lines = log.read_text().splitlines()
    assert '"GET /index.html HTTP/2.0" 200 22' in lines[0]
    assert '"HEAD /mid.bin HTTP/2.0" 200 0' in lines[1]


def test_a_host_field_that_differs_from_authority_is_malformed(h2c, engine):
    """RFC 9113 §8.3.1: such a request is malformed. With libnghttp2 (which leaves the check
    to us) it is answered 400 on its stream, as nginx 1.22 answers any request with both
    fields, agreeing or not, and the connection goes on; the `h2` package takes it for a
    connection error (GOAWAY PROTOCOL_ERROR). A Host that agrees is served."""
    client = H2Client(h2c.port, validate=False)
    agrees = client.get("/index.html", headers=[("host", "localhost")])
    assert agrees.status == 200 and agrees.body == b"<h1>hello over h2</h1>"
    stream = client.request("/index.html", headers=[("host", "other.example")])
    if engine == "nghttp2":
        differs = client.response(stream)
        assert differs.status == 400 and differs.reset is None
        assert client.get("/index.html").status == 200
    else:
        assert client.until_goaway()[0] == 0x1
        client.until_closed()
    client.close()


class _Who:
    """The static site, with /who answering the client's address; the fast lane answers the
    site's files from the ready answers of StaticFiles."""

    def __init__(self, root):
        from reactor.static.handler import StaticFiles
        self.files = StaticFiles(root)

    def __call__(self, request):
        if request.path == "/who":
            return Response(200, [], request.client[0].encode())
        return self.files(request)

    def ready(self, target, accept):
        return None if target == "/who" else self.files.ready(target, accept)


def _client_seen(server_factory, h2_site, engine, **options):
    """A server of _Who with its access log in `.log`."""
    server = server_factory(_Who(str(h2_site)), http2_engine=engine, **options)
    server.log = io.StringIO()
    server.server.access_log = AccessLog(server.log, server.server.loop.call_later)
    return server


def test_proxy_protocol_names_the_client_over_h2(server_factory, h2_site, engine):
    server = _client_seen(server_factory, h2_site, engine, proxy_protocol="v2",
                          trusted_proxies=("127.0.0.1",))
    client = H2Client(server.port, prefix=v2())
    assert client.get("/who").body == b"203.0.113.7"
    for _ in range(3):   # the second and third from the fast lane, with libnghttp2
        assert client.get("/index.html").status == 200
    client.close()
    assert wait_until(lambda: server.log.getvalue().count("\n") == 4)
    assert all(line.startswith("203.0.113.7 - - [") for line in server.log.getvalue().splitlines())
    lane = server.server.lanes[server.server.plain_handler]
    assert bool(lane.h2) is (engine == "nghttp2")


def test_forwarded_fields_name_the_client_over_h2(server_factory, h2_site, engine):
    server = _client_seen(server_factory, h2_site, engine, forwarded_allow_ips=("127.0.0.1",))
    client = H2Client(server.port)
    forwarded = [("x-forwarded-for", "6.6.6.6, 203.0.113.9")]
    assert client.get("/who", headers=forwarded).body == b"203.0.113.9"
    assert client.get("/index.html", headers=forwarded).status == 200
    assert client.get("/who").body == b"127.0.0.1"
    client.close()
    assert wait_until(lambda: server.log.getvalue().count("\n") == 3)
    assert [line.split()[0] for line in server.log.getvalue().splitlines()] == [
        "203.0.113.9", "203.0.113.9", "127.0.0.1"]


# -- apps and WSGI -------------------------------------------------------------------------------

def _app(root):
    app = App()

    @app.post("/echo")
    def echo(request):
        return Response(200, [("Content-Type", "application/octet-stream"),
                              ("Connection", "close"), ("Keep-Alive", "timeout=5")],
                        hashlib.sha256(request.body).hexdigest().encode())

    @app.get("/stream")
    def stream(request):
        return 200, [("Content-Type", "text/plain")], (b"part %d\n" % i for i in range(5))

    @app.get("/slow", threaded=True)
    def slow(request):
        time.sleep(0.5)
        return "slow done"

    @app.get("/cookies")
    def cookies(request):
        return request.header(b"cookie") or b"none"

    @app.get("/fail")
    def fail(request):
        raise RuntimeError("boom")

    app.static("/", root=str(root))
    return app


def test_app_routes_bodies_streams_and_failures(server_factory, h2_site, engine):
    server = server_factory(root=str(h2_site), handler=_app(h2_site), http2_engine=engine)
    client = H2Client(server.port)
    body = os.urandom(300 * 1024)   # beyond the initial windows: flow control both ways
    echoed = client.get("/echo", method="POST", body=body)
    assert echoed.status == 200 and echoed.body == hashlib.sha256(body).hexdigest().encode()
    # Hop-by-hop fields of HTTP/1 are not HTTP/2 fields: dropped (RFC 9113 §8.2.2).
    assert echoed.header(b"connection") is None and echoed.header(b"keep-alive") is None
    streamed = client.get("/stream")
    assert streamed.status == 200 and streamed.body == b"".join(b"part %d\n" % i
                                                               for i in range(5))
    assert streamed.header(b"content-length") is None
    # A slow route on the pool holds up no other stream of the connection.
    slow = client.request("/slow")
    started = time.monotonic()
    assert client.get("/index.html").status == 200
    assert time.monotonic() - started < 0.4
    assert client.response(slow).body == b"slow done"
    # Cookies split into several fields reach the app as one (RFC 9113 §8.2.3).
    joined = client.get("/cookies", headers=[("cookie", "a=1"), ("cookie", "b=2")])
    assert joined.body == b"a=1; b=2"
    assert client.get("/fail").status == 500
    assert client.get("/style.css").status == 200   # the static files mounted beside
    client.close()


def _wsgi_echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("201 Created", [("Content-Type", "text/plain"),
                                   ("Transfer-Encoding", "chunked")])
    return [environ["SERVER_PROTOCOL"].encode(), b" ", environ["REQUEST_METHOD"].encode(),
            b" %d " % len(body), environ.get("HTTP_HOST", "").encode()]


def test_wsgi_gets_request_bodies_and_its_answer_goes_out(server_factory, engine):
    handler = WSGIHandler(_wsgi_echo, threads=2, server_name="localhost", server_port=0)
    server = server_factory(handler=handler, http2_engine=engine)
    client = H2Client(server.port)
    response = client.get("/form", method="PUT", body=b"z" * 70000)
    assert response.status == 201
    assert response.body == b"HTTP/2.0 PUT 70000 localhost"
    assert response.header(b"transfer-encoding") is None
    assert client.get("/", method="DELETE").body == b"HTTP/2.0 DELETE 0 localhost"
    client.close()
    handler.close()


def test_request_bodies_over_max_body_get_413(server_factory, h2_site, engine):
    server = server_factory(handler=_app(h2_site), http2_engine=engine, max_body=1000)
    client = H2Client(server.port)
    declared = client.get("/echo", method="POST", body=b"x" * 2000,
                          headers=[("content-length", "2000")])
    assert declared.status == 413
    undeclared = client.get("/echo", method="POST", body=b"x" * 5000)
    assert undeclared.status == 413
    assert client.get("/echo", method="POST", body=b"ok").status == 200
    client.close()


# -- connections ---------------------------------------------------------------------------------

def test_graceful_drain_finishes_open_streams_after_goaway(server_factory, h2_site, engine):
    """GOAWAY announces the drain, the open stream is answered in full, then the connection
    closes: read as raw frames, since a client state machine stops at the first GOAWAY."""
    from hyperframe.frame import Frame
    server = server_factory(root=str(h2_site), handler=_app(h2_site), http2_engine=engine)
    client = H2Client(server.port)
    slow = client.request("/slow")
    time.sleep(0.1)   # the request is on its way to the pool
    server.server.loop.call_soon_threadsafe(server.server.shutdown, 5)
    data = read_until_close(client.sock)
    frames = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        frames.append(frame)
        data = data[9 + length:]
    kinds = [(frame.type, frame.stream_id) for frame in frames]
    goaways = [frame for frame in frames if frame.type == 0x7]
    assert goaways and goaways[0].error_code == 0
    assert goaways[-1].last_stream_id == slow and goaways[-1].error_code == 0
    body = b"".join(frame.data for frame in frames if frame.type == 0x0 and frame.stream_id == slow)
    assert body == b"slow done"
    # The answer came after the first GOAWAY.
    assert kinds.index((0x7, 0)) < kinds.index((0x1, slow))
    server.thread.join(5)
    assert not server.thread.is_alive()


def test_idle_connection_gets_goaway_and_closes(server_factory, h2_site, engine):
    server = server_factory(root=str(h2_site), http2_engine=engine, keepalive_timeout=1)
    client = H2Client(server.port)
    assert client.get("/index.html").status == 200
    started = time.monotonic()
    assert client.until_goaway() == (0, 1)
    client.until_closed()
    assert 0.5 < time.monotonic() - started < 4


def test_max_keepalive_requests_ends_with_goaway(server_factory, h2_site, engine):
    server = server_factory(root=str(h2_site), http2_engine=engine, max_keepalive_requests=3)
    client = H2Client(server.port)
    for _ in range(3):
        assert client.get("/index.html").status == 200
    code, last = client.until_goaway()
    assert code == 0 and last == 5


def test_connection_limit_reclaims_idle_h2_connections(server_factory, h2_site, engine):
    server = server_factory(root=str(h2_site), http2_engine=engine, max_connections=1)
    first = H2Client(server.port)
    assert first.get("/index.html").status == 200
    second = H2Client(server.port)   # takes the idle one's place
    assert second.get("/index.html").status == 200
    first.until_closed()
    assert first.closed


def test_http2_off_answers_the_preface_as_http1(server_factory, h2_site):
    server = server_factory(root=str(h2_site), http2=False)
    with connect(server.port) as sock:
        sock.sendall(engines.PREFACE)
        answer = read_until_close(sock)
    assert answer.startswith(b"HTTP/1.1 505 ")


def test_http1_still_served_beside_h2c(h2c):
    with connect(h2c.port) as sock:
        sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_until_close(sock)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"<h1>hello over h2</h1>")


def test_engines_answer_alike(server_factory, h2_site):
    """The same requests to both engines: the same statuses, fields (but the date) and bodies."""
    for name in engines.ENGINES:
        try:
            engines.engine(name)
        except ImportError as error:
            pytest.skip(f"both engines are needed: {error}")
    requests = [("/index.html", "GET", []), ("/mid.bin", "HEAD", []),
                ("/mid.bin", "GET", [("range", "bytes=5-9")]), ("/missing", "GET", []),
                ("/style.css", "GET", [("accept-encoding", "gzip")]), ("/docs", "GET", []),
                ("/index.html", "POST", [])]
    answers = {}
    for name in engines.ENGINES:
        server = server_factory(root=str(h2_site), http2_engine=name)
        client = H2Client(server.port)
        answers[name] = [
            (r.status, sorted(h for h in r.headers if h[0] != b"date"), r.body)
            for r in (client.get(path, method=method, headers=headers)
                      for path, method, headers in requests)]
        client.close()
    assert answers["nghttp2"] == answers["h2"]



# -- engines -------------------------------------------------------------------------------------

def test_version_names_the_engine_and_no_extensions_falls_back_to_h2(cli):
    import subprocess
    import sys

    from processes import REPO
    version = subprocess.run([sys.executable, "-m", "reactor", "--version"], cwd=REPO,
                             capture_output=True, text=True).stdout
    assert f"http2: {engines.ENGINE or 'none'}" in version
    fallback = subprocess.run([sys.executable, "-m", "reactor", "--version"], cwd=REPO,
                              capture_output=True, text=True,
                              env={**os.environ, "REACTOR_NO_EXTENSIONS": "1"}).stdout
    try:
        engines.engine("h2")
    except ImportError:
        assert "http2: none" in fallback
    else:
        assert "http2: h2 " in fallback and "(pure Python)" in fallback


def test_without_any_engine_http11_only_said_in_one_line(cli):
    """No extension and no h2_site-packages (so no h2 package): one line says so, and the
    server speaks HTTP/1.1 (a client preface gets the HTTP/1 answer to version 2.0)."""
    import sys

    from processes import get
    server = cli("--port", "0", "--bind", "127.0.0.1", argv=[sys.executable, "-S", "-m",
                                                            "reactor"],
                 env={"REACTOR_NO_EXTENSIONS": "1"})
    assert "HTTP/1.1 only" in server.line
    assert get(server.port).startswith(b"HTTP/1.1 200")
    with connect(server.port) as sock:
        sock.sendall(engines.PREFACE)
        assert read_until_close(sock).startswith(b"HTTP/1.1 505 ")
    server.stop()
    lines = [line for line in server.stderr().splitlines() if "HTTP/2" in line]
    assert len(lines) == 1 and "no HTTP/2 engine" in lines[0]
