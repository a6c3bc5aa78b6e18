"""ASGI over real sockets: a Starlette and a FastAPI application end to end, the events of
each scope as asgiref's spec describes them, the bad cases, and what holds for every HTTP/1
handler (limits, pipelining, forwarding fields, HTTPS, drain, files beside the app)."""

import signal
import socket
import ssl
import threading
import time

import asgi_apps
import httpx
import pytest
import trustme
from netutil import (
    connect,
    exchange,
    exchange_on,
    head,
    normalised,
    parse_responses,
    read_response,
    read_until_close,
    wait_until,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from reactor.http import limits
from reactor.http.response import INLINE_BODY
from reactor.net.tls import Certificates


@pytest.fixture(autouse=True)
def fresh_observations():
    asgi_apps.seen.clear()


@pytest.fixture
def starlette(server_factory):
    return server_factory(asgi="asgi_apps:starlette_app")


@pytest.fixture
def raw(server_factory):
    return server_factory(asgi="asgi_apps:raw_app", ws_ping_interval=0)


def ws_url(server, path):
    return f"ws://127.0.0.1:{server.port}{path}"


# -- Starlette and FastAPI -----------------------------------------------------------------

def test_starlette_routes_json_and_lifespan_state(starlette):
    response = httpx.get(f"{starlette.url}/?a=1&b=two")
    assert response.status_code == 200
    assert response.json() == {"greeting": "hello from lifespan", "path": "/",
                               "query": {"a": "1", "b": "two"}}
    assert response.headers["content-length"] == str(len(response.content))
    assert asgi_apps.seen["lifespan"] == ["startup"]
    starlette.stop()
    assert asgi_apps.seen["lifespan"] == ["startup", "shutdown"]


def test_starlette_reads_a_body_sent_in_pieces(starlette):
    def pieces():
        for _ in range(4):
            yield b"a" * 50_000
            time.sleep(0.02)
    response = httpx.post(f"{starlette.url}/count", content=pieces())   # chunked
    assert response.json()["total"] == 200_000
    assert response.json()["pieces"] > 1


def test_starlette_streaming_response_and_background_task(starlette):
    with httpx.stream("GET", f"{starlette.url}/numbers") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert "".join(response.iter_text()) == "0\n1\n2\n3\n4\n"
    response = httpx.get(f"{starlette.url}/later")
    assert response.text == "queued"
    assert wait_until(lambda: asgi_apps.seen.get("background") == ["ran"])


def test_starlette_websocket_echo_and_broadcast(starlette):
    with ws_connect(ws_url(starlette, "/chat")) as first, \
            ws_connect(ws_url(starlette, "/chat")) as second:
        first.send("hi")
        assert first.recv(timeout=5) == "echo hi"
        second.send("all")
        assert first.recv(timeout=5) == "broadcast to 2"
        assert second.recv(timeout=5) == "broadcast to 2"
    assert wait_until(lambda: asgi_apps.seen.get("ws_closed") == [1000, 1000])


def test_fastapi_routes_models_threads_and_websocket(server_factory):
    server = server_factory(asgi="asgi_apps:fastapi_app")
    with httpx.Client(base_url=server.url) as client:   # one keep-alive connection
        assert client.get("/items/7?q=x").json() == {"item_id": 7, "q": "x"}
        assert client.get("/items/seven").status_code == 422
        created = client.post("/items", json={"name": "tea", "price": 2.5})
        assert created.json() == {"name": "tea", "price_with_tax": 3.0}
        assert client.get("/blocking").json() == {"thread": "pool"}
        assert client.get("/missing").status_code == 404
    with ws_connect(ws_url(server, "/echo"), subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
        ws.send(b"\x00\x01" * 1000)
        assert ws.recv(timeout=5) == b"\x00\x01" * 1000


# -- the http scope, event by event ----------------------------------------------------------

def test_http_scope_fields(raw):
    with connect(raw.port) as sock:
        sock.sendall(b"POST /sc%6Fpe?x=%20y HTTP/1.1\r\nHost: h\r\nX-Two: 1\r\nX-Two: 2\r\n"
                     b"Content-Length: 3\r\nConnection: close\r\n\r\nabc")
        assert read_until_close(sock).startswith(b"HTTP/1.1 200 OK")
        client_port = sock.getsockname()[1]
    scope = asgi_apps.seen["scope"]
    assert scope["type"] == "http" and scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1" and scope["method"] == "POST"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope" and scope["raw_path"] == b"/sc%6Fpe"
    assert scope["query_string"] == b"x=%20y" and scope["root_path"] == ""
    assert scope["headers"][:3] == [(b"host", b"h"), (b"x-two", b"1"), (b"x-two", b"2")]
    assert scope["client"] == ("127.0.0.1", client_port)
    assert scope["server"] == ("127.0.0.1", raw.port)
    assert asgi_apps.seen["state"] == {"counter": 41}
    assert asgi_apps.seen["body"] == b"abc"
    assert asgi_apps.seen["raw_lifespan"] == ["lifespan.startup"]


def test_scope_paths_are_kept_by_target_within_a_bound():
    """The scope's path, raw_path and query_string come from a table by target: the same
    values as made afresh, for the origin and the absolute form, and the table never holds
    more than MAX_TARGETS, nor a target longer than MAX_KEPT_TARGET."""
    from reactor.apps.asgi import MAX_KEPT_TARGET, MAX_TARGETS, ASGIHandler
    from reactor.config import Config
    from reactor.http.request import Request

    handler = ASGIHandler(asgi_apps.raw_app, Config(root_path="/api", lifespan="off"))

    def scope_of(target):
        request = Request("GET", target, 11, [b"host", b"h"], None, False, True, False)
        request.client, request.scheme = ("127.0.0.1", 1), "http"
        found = handler.scope(request, "http", "http", {})
        return found["path"], found["raw_path"], found["query_string"]

    expected = {"/a%20b?q=%20": ("/api/a b", b"/a%20b", b"q=%20"),
                "http://h/x%2Fy?z": ("/api/x/y", b"/x%2Fy", b"z"),
                "/plain": ("/api/plain", b"/plain", b"")}
    for _ in range(2):
        for target, parts in expected.items():
            assert scope_of(target) == parts
    for i in range(MAX_TARGETS * 2 + 5):
        assert scope_of(f"/n{i}?i={i}") == (f"/api/n{i}", f"/n{i}".encode(), f"i={i}".encode())
        assert len(handler.targets) <= MAX_TARGETS
    for target, parts in expected.items():
        assert scope_of(target) == parts
    long_target = "/" + "x" * MAX_KEPT_TARGET
    assert scope_of(long_target) == ("/api" + long_target, long_target.encode(), b"")
    assert long_target not in handler.targets


def test_root_path_prefixes_path(server_factory):
    server = server_factory(asgi="asgi_apps:raw_app", root_path="/api")
    exchange(server.port, b"GET /scope HTTP/1.1\r\nHost: h\r\n\r\n")
    assert asgi_apps.seen["scope"]["path"] == "/api/scope"
    assert asgi_apps.seen["scope"]["root_path"] == "/api"


def test_body_arrives_in_pieces_with_more_body(raw):
    with connect(raw.port) as sock:
        sock.sendall(b"POST /scope HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n")
        time.sleep(0.1)
        sock.sendall(b"2\r\nde\r\n0\r\n\r\n")
        assert parse_responses(sock.recv(65536))[0].status == 200
    assert asgi_apps.seen["body"] == b"abcde"
    assert asgi_apps.seen["flags"] == [True, False]   # the rest and the end came together


def test_a_slow_reader_holds_the_client_back(server_factory):
    """While the application does not read, the server stops reading: what waits for the
    application is bounded by the body buffer (plus one read), not the body's size."""
    size = 8 * 1024 * 1024
    server = server_factory(asgi="asgi_apps:raw_app", max_body=size)
    with connect(server.port, timeout=10) as sock:
        sock.sendall(b"POST /slow-reader HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)
        sock.sendall(b"z" * size)
        response = parse_responses(sock.recv(65536))[0]
    assert response.body == str(size).encode()
    assert asgi_apps.seen["first_piece"] <= limits.BODY_BUFFER + limits.RECV_SIZE


def test_disconnect_reaches_the_application(raw):
    with connect(raw.port) as sock:
        sock.sendall(b"GET /wait-disconnect HTTP/1.1\r\nHost: h\r\n\r\n")
        assert b"partial" in sock.recv(65536)
    assert wait_until(lambda: asgi_apps.seen.get("disconnect") == "http.disconnect")


def test_send_after_the_client_left_raises_so_an_endless_stream_stops(raw):
    with connect(raw.port) as sock:
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: h\r\n\r\n")
        assert b"tick" in sock.recv(65536)
    assert wait_until(lambda: asgi_apps.seen.get("endless") == "ClientDisconnected")


def test_streamed_response_is_chunked_and_pathsend_sends_the_file(raw):
    with httpx.Client(base_url=raw.url) as client:
        streamed = client.get("/stream")
        assert streamed.headers["transfer-encoding"] == "chunked"
        assert streamed.content == b"part0;part1;part2;"
        sent = client.get("/file")
        with open(asgi_apps.__file__, "rb") as source:
            assert sent.content == source.read()
        assert "transfer-encoding" not in sent.headers


def test_send_waits_for_a_slow_client(raw):
    with connect(raw.port, timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /big-stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)   # the application must be waiting by now, with little queued
        connection = next(iter(raw.server.connections))
        body = next(piece.source for piece in connection.output if hasattr(piece, "source"))
        assert body.size <= limits.SEND_BUFFER + 65536
        data = read_until_close(sock)
    assert parse_responses(data)[0].body == b"x" * (8 * 1024 * 1024)


@pytest.mark.parametrize("path,status", [("/no-start", 500), ("/start-twice", 500),
                                         ("/raise-after-start", 500)])
def test_bad_applications_get_500_and_the_server_goes_on(raw, path, status, caplog):
    response, _ = httpx.get(raw.url + path), None
    assert response.status_code == status
    assert any("ASGI application" in record.message for record in caplog.records)
    assert httpx.get(raw.url + "/fine").text == "GET /fine 0"


def test_failure_mid_body_breaks_the_connection(raw):
    data = exchange(raw.port, b"GET /raise-mid-body HTTP/1.1\r\nHost: h\r\n\r\n")
    assert b"first" in data and not data.endswith(b"0\r\n\r\n")
    assert httpx.get(raw.url + "/fine").status_code == 200


def test_max_body_refused_before_the_application_reads(server_factory):
    server = server_factory(asgi="asgi_apps:raw_app", max_body=100)
    data = exchange(server.port, b"POST /scope HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n"
                                 b"Expect: 100-continue\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413") and b"100 Continue" not in data
    assert "scope" not in asgi_apps.seen


def test_keep_alive_and_pipelining_order(raw):
    requests = (b"GET /sleep HTTP/1.1\r\nHost: h\r\n\r\n"
                b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"
                b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    responses = parse_responses(exchange(raw.port, requests, half_close=False))
    assert [r.body for r in responses] == [b"slept", b"POST /b 2", b"GET /c 0"]


class ListLog:
    """An access log that keeps what each line would say."""

    wants_fields = False

    def __init__(self):
        self.lines = []

    def log(self, client, request, status, sent, started):
        self.lines.append((request.method, request.target, request.version, status, sent))

    def close(self):
        pass


# Requests whose answers the connection writes at once when each comes alone (the usual
# keep-alive client), and through its queue when they come pipelined behind each other.
ONE_BY_ONE = [
    (b"GET", head(b"/fine")),
    (b"HEAD", head(b"/fine", method=b"HEAD")),
    (b"GET", head(b"/header?x-answer=42")),
    (b"POST", b"POST /posted HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"),
    (b"GET", head(b"/no-start")),
    (b"GET", head(b"/sized?%d" % (INLINE_BODY - 1))),   # the largest sent with its head
    (b"GET", head(b"/sized?%d" % INLINE_BODY)),   # the smallest sent after its head
    (b"GET", head(b"/a%20b?q=1", b"Connection: keep-alive", version=b"HTTP/1.0")),
    (b"HEAD", head(b"/sized?5", b"Accept: */*", method=b"HEAD")),
]


def test_answers_written_alone_are_the_queued_ones_byte_for_byte(server_factory):
    logs = []
    transcripts = []
    last = head(b"/last", b"Connection: close")
    for pipelined in (False, True):
        server = server_factory(asgi="asgi_apps:raw_app")
        server.server.access_log = log = ListLog()
        with connect(server.port) as sock:
            if pipelined:
                data = exchange_on(sock, b"".join(r for _, r in ONE_BY_ONE) + last,
                                   half_close=False)
            else:
                data = b""
                for method, request in ONE_BY_ONE:
                    sock.sendall(request)
                    data += read_response(sock, method)
                data += exchange_on(sock, last, half_close=False)
        assert wait_until(lambda log=log: len(log.lines) == len(ONE_BY_ONE) + 1)
        logs.append(log.lines)
        transcripts.append(normalised(data))
    assert transcripts[0] == transcripts[1]
    assert logs[0] == logs[1]
    statuses = [r.status for r in parse_responses(transcripts[0],
                                                  [m.decode() for m, _ in ONE_BY_ONE] + ["GET"])]
    assert statuses == [200, 200, 200, 200, 500, 200, 200, 200, 200, 200]


def test_answers_written_alone_to_a_client_that_does_not_read(server_factory):
    """Each answer is written when its request arrives alone, until the socket takes no more;
    the rest waits for the client, in order, as the queued answers would."""
    server = server_factory(asgi="asgi_apps:raw_app")
    request = head(b"/sized?15000")
    closing = head(b"/sized?15000", b"Connection: close")
    pair = normalised(exchange(server.port, request + closing, half_close=False))
    one = pair[:pair.index(b"\r\n\r\n") + 4 + 15000]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        count = 0
        while not any(connection.blocked for connection in list(server.server.connections)):
            assert count < 2000, "the server's socket never filled"
            count += 1
            before = asgi_apps.seen.get("sized", 0)
            sock.sendall(request)
            assert wait_until(lambda before=before: asgi_apps.seen.get("sized", 0) > before,
                              interval=0.001)
        sock.sendall(closing)
        sock.settimeout(5)
        data = normalised(read_until_close(sock))
    assert count > 1 and data == one * count + pair[len(one):]


def test_forwarded_fields_set_client_and_scheme(server_factory):
    server = server_factory(asgi="asgi_apps:raw_app", forwarded_allow_ips=("127.0.0.1",))
    exchange(server.port, b"GET /scope HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.9\r\n"
                          b"X-Forwarded-Proto: https\r\n\r\n")
    assert asgi_apps.seen["scope"]["client"][0] == "203.0.113.9"
    assert asgi_apps.seen["scope"]["scheme"] == "https"


@pytest.mark.parametrize("query, sent", [
    (b"x-a=1", True), (b"x-a=a:b", True),
    (b"x-a=1%0D%0AInjected:%20yes", False), (b"x-a=1%0AInjected:%20yes", False),
    (b"x-a=1%0D", False), (b"x%0D%0Ab=1", False), (b"x:a=1", False)])
def test_a_field_that_would_split_the_head_is_a_500(raw, query, sent):
    response = parse_responses(exchange(raw.port, b"GET /header?" + query
                                        + b" HTTP/1.1\r\nHost: h\r\n\r\n"))[0]
    assert response.status == (200 if sent else 500)
    assert response.getheader("injected") is None


def test_trailers_end_a_chunked_body_on_http11_only(raw):
    reply = exchange(raw.port, b"GET /trailers HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n"
                               b"GET /trailers HTTP/1.0\r\n\r\n")
    first, _, rest = reply.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in first and b"Content-Length" not in first
    # The server's own field (Content-Length) is dropped from the trailers as from a head.
    assert rest.startswith(b"2\r\nhe\r\n3\r\nllo\r\n0\r\n"
                           b"x-digest: sha-256=abc\r\nx-count: 5\r\n\r\nHTTP/1.1 200 ")
    second = parse_responses(rest[rest.index(b"HTTP/1.1 200 "):])[0]
    assert second.body == b"hello" and second.getheader("content-length") == "5"
    assert asgi_apps.seen["trailers_offered"] == [True, False]


def test_proxy_protocol_and_forwarded_fields_reach_the_scope(server_factory):
    server = server_factory(asgi="asgi_apps:raw_app", proxy_protocol="v1",
                            trusted_proxies=("127.0.0.1",))
    exchange(server.port, b"PROXY TCP4 198.51.100.4 10.0.0.1 51000 80\r\n"
                          b"GET /scope HTTP/1.1\r\nHost: h\r\n\r\n")
    assert asgi_apps.seen["scope"]["client"] == ("198.51.100.4", 51000)
    assert asgi_apps.seen["scope"]["scheme"] == "http"
    # Behind the balancer's PROXY header, the forwarding fields of the proxy it names.
    server = server_factory(asgi="asgi_apps:raw_app", proxy_protocol="v1",
                            trusted_proxies=("127.0.0.1",),
                            forwarded_allow_ips=("198.51.100.4",))
    exchange(server.port, b"PROXY TCP4 198.51.100.4 10.0.0.1 51000 80\r\n"
                          b"GET /scope HTTP/1.1\r\nHost: h\r\n"
                          b"Forwarded: for=203.0.113.9;proto=https\r\n\r\n")
    assert asgi_apps.seen["scope"]["client"][0] == "203.0.113.9"
    assert asgi_apps.seen["scope"]["scheme"] == "https"


def test_a_body_that_stops_midway_times_out_while_the_app_reads_it(server_factory):
    server = server_factory(asgi="asgi_apps:raw_app", body_timeout=0.3)
    with connect(server.port) as sock:
        sock.sendall(b"POST /until-disconnect HTTP/1.1\r\nHost: h\r\n"
                     b"Content-Length: 100\r\n\r\n" + b"x" * 10)
        reply = read_until_close(sock)
    assert reply.startswith(b"HTTP/1.1 408 ")
    wait_until(lambda: "until_disconnect" in asgi_apps.seen)
    assert asgi_apps.seen["until_disconnect"] == ["http.request", "http.disconnect"]


def test_a_body_the_app_is_slow_to_read_does_not_time_out(server_factory):
    """The connection stops reading while the application is behind: that pause is not the
    client's, and does not count against --body-timeout (the application sleeps past a
    sweep of the deadlines before it reads)."""
    server = server_factory(asgi="asgi_apps:raw_app", body_timeout=0.2)
    body = b"b" * (4 * limits.BODY_BUFFER)
    with connect(server.port) as sock:
        sock.sendall(b"POST /slower-reader HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        response = parse_responses(read_until_close(sock))[0]
    assert response.status == 200 and response.body == str(len(body)).encode()


def test_https(server_factory, tmp_path):
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    server = server_factory(asgi="asgi_apps:raw_app", ws_ping_interval=0,
                            tls=Certificates([(str(tmp_path / "cert.pem"),
                                               str(tmp_path / "key.pem"))]))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    assert httpx.get(server.url + "/scope", verify=context).status_code == 200
    assert asgi_apps.seen["scope"]["scheme"] == "https"
    with ws_connect(f"wss://127.0.0.1:{server.port}/echo", ssl=context) as ws:
        ws.send("over tls")
        assert ws.recv(timeout=5) == "over tls"
    assert asgi_apps.seen["ws_scope"]["scheme"] == "wss"


def test_http2_with_prior_knowledge(raw):
    with httpx.Client(base_url=raw.url, http1=False, http2=True) as client:
        response = client.post("/scope", content=b"over h2")
        assert response.http_version == "HTTP/2" and response.text == "ok"
        assert client.get("/stream").content == b"part0;part1;part2;"
    assert asgi_apps.seen["body"] == b"over h2"
    assert asgi_apps.seen["scope"]["http_version"] == "2"


def test_access_log_and_metrics(server_factory):
    lines = []

    class Log:
        wants_fields = False

        def log(self, client, request, status, sent, started):
            lines.append((request.method, request.target, status, sent))

        def close(self):
            pass

    server = server_factory(asgi="asgi_apps:raw_app", metrics="/metrics", ws_ping_interval=0)
    server.server.access_log = Log()
    httpx.get(server.url + "/stream")
    with ws_connect(ws_url(server, "/echo")):
        pass
    metrics = httpx.get(server.url + "/metrics").text
    assert ("GET", "/stream", 200, 3 * len(b"6\r\npart0;\r\n") + len(b"0\r\n\r\n")) in lines
    assert ("GET", "/echo", 101, 0) in lines
    assert 'method="GET",http_response_status_class="2xx"} 1' in metrics
    assert 'method="GET",http_response_status_class="1xx"} 1' in metrics


# -- files beside the application -----------------------------------------------------------

def test_files_first_then_the_application(server_factory, tmp_path):
    (tmp_path / "style.css").write_text("body{}")
    server = server_factory(asgi="asgi_apps:raw_app", asgi_files=True, root=str(tmp_path),
                            listing=False)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(3):   # the first answer warms the cache, the next come by the fast lane
            assert client.get("/style.css").text == "body{}"
        assert client.get("/anything").text == "GET /anything 0"
        assert client.post("/style.css", content=b"x").text == "POST /style.css 1"
    lane = next(iter(server.server.lanes.values()))
    assert lane.hits[0] >= 1


def test_an_application_route_between_files_in_one_read_is_answered_in_order(server_factory,
                                                                            tmp_path):
    """Once the files have refused a path, the lane hands reads that start with it back
    without looking again (the C side marks the key): each request of a pipelined read,
    files and the application's alike, is still answered in order, byte for byte as one at
    a time."""
    (tmp_path / "a.txt").write_text("file a")
    server = server_factory(asgi="asgi_apps:raw_app", asgi_files=True, root=str(tmp_path),
                            listing=False)
    targets = [b"/a.txt", b"/route", b"/a.txt", b"/route", b"/route", b"/a.txt"]
    with connect(server.port) as sock:
        one_at_a_time = []
        for target in targets:
            sock.sendall(head(target))
            one_at_a_time.append(read_response(sock))
        for turn in range(len(targets)):   # each request first in a read once
            order = targets[turn:] + targets[:turn]
            expected = b"".join(one_at_a_time[turn:] + one_at_a_time[:turn])
            sock.sendall(b"".join(head(target) for target in order))
            pipelined = b""
            while len(pipelined) < len(expected):
                pipelined += sock.recv(65536)
            assert normalised(pipelined) == normalised(expected)
    assert normalised(one_at_a_time[1]).endswith(b"GET /route 0")
    assert any(key.startswith(b"/route") for key in next(iter(server.server.lanes.values()))
               .refused)


# -- the websocket scope ---------------------------------------------------------------------

def test_websocket_scope_and_permessage_deflate(raw):
    with ws_connect(ws_url(raw, "/echo?room=1"), subprotocols=["a", "b"]) as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        ws.send("x" * 10_000)
        assert ws.recv(timeout=5) == "x" * 10_000
    scope = asgi_apps.seen["ws_scope"]
    assert scope["type"] == "websocket" and scope["scheme"] == "ws"
    assert scope["path"] == "/echo" and scope["query_string"] == b"room=1"
    assert scope["subprotocols"] == ["a", "b"]
    assert "websocket.http.response" in scope["extensions"]


def test_websocket_fragments_ping_and_close_codes(raw):
    with ws_connect(ws_url(raw, "/echo")) as ws:
        ws.send(iter(["frag", "mented"]))   # one message in three frames
        assert ws.recv(timeout=5) == "fragmented"
        ws.ping(b"are you there").wait(5)
        ws.send("close please")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 4001 and closed.value.rcvd.reason == "asked"
    with ws_connect(ws_url(raw, "/echo")) as ws:
        ws.close(4321, "bye")
    assert wait_until(lambda: asgi_apps.seen.get("raw_ws_closed") == [4001, 4321])


def test_websocket_denial_response_and_close_before_accept(raw):
    with pytest.raises(InvalidStatus) as denied:
        ws_connect(ws_url(raw, "/deny"))
    assert denied.value.response.status_code == 403
    assert denied.value.response.body == b"not you"
    with pytest.raises(InvalidStatus) as closed:
        ws_connect(ws_url(raw, "/close-first"))
    assert closed.value.response.status_code == 403


def test_bad_handshake_is_refused_without_the_application(raw):
    data = exchange(raw.port, b"GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400")
    assert "ws_scope" not in asgi_apps.seen


def test_websocket_max_size_closes_with_1009(server_factory):
    server = server_factory(asgi="asgi_apps:raw_app", ws_max_size=1000, ws_ping_interval=0)
    with ws_connect(ws_url(server, "/echo"), compression=None) as ws:
        ws.send(b"y" * 1001)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1009


UPGRADE = (b"GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def test_text_that_is_not_utf8_closes_with_1007(raw):
    with connect(raw.port) as sock:
        sock.sendall(UPGRADE)
        payload = b"\xff\xfe"
        sock.sendall(b"\x81\x82\x00\x00\x00\x00" + payload)   # masked with zeros
        data = read_until_close(sock)
    assert data.startswith(b"HTTP/1.1 101")
    assert b"\x88" in data and b"\x03\xef" in data   # close frame, code 1007


def test_ping_interval_closes_a_silent_client(server_factory):
    server = server_factory(asgi="asgi_apps:raw_app", ws_ping_interval=0.2)
    with connect(server.port) as sock:
        sock.sendall(UPGRADE)
        data = read_until_close(sock)   # pings never answered: a close 1011, then EOF
    assert data.startswith(b"HTTP/1.1 101")
    assert b"\x89\x00" in data                 # a ping
    assert b"\x88" in data and b"\x03\xf3" in data   # close frame, code 1011


# -- drain and lifespan through the command line ---------------------------------------------

def test_drain_finishes_requests_and_closes_websockets_with_1001(raw):
    with ws_connect(ws_url(raw, "/echo")) as ws, connect(raw.port) as sock:
        sock.sendall(b"GET /sleep HTTP/1.1\r\nHost: h\r\n\r\n")
        time.sleep(0.1)   # the application is sleeping on it now
        stopping = threading.Thread(target=raw.stop, kwargs={"grace": 5})
        stopping.start()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        response = parse_responses(read_until_close(sock))[0]
        stopping.join(10)
    assert closed.value.rcvd.code == 1001
    assert response.body == b"slept" and response.getheader("connection") == "close"
    assert asgi_apps.seen["raw_lifespan"] == ["lifespan.startup", "lifespan.shutdown"]
    assert asgi_apps.seen["raw_ws_closed"] == [1001]


def test_startup_failure_stops_with_the_message(cli):
    handle = cli("--asgi", "tests.asgi_apps:failing_startup")
    assert handle.proc.wait(10) != 0
    errors = handle.stderr().strip().splitlines()
    assert errors[-1] == "reactor: application start-up failed: database unreachable"
    assert "Traceback" not in "".join(errors)


def test_app_and_asgi_together_are_refused_in_one_line(cli):
    handle = cli("--app", "tests.asgi_apps:raw_app", "--asgi", "tests.asgi_apps:raw_app")
    assert handle.proc.wait(10) == 1
    assert handle.stderr().strip().splitlines() == [
        "reactor: --app, --wsgi and --asgi cannot be combined: choose one "
        "(--root serves files beside --asgi)"]


def test_factory_and_workers_each_run_lifespan(cli, tmp_path):
    events = tmp_path / "lifespan.log"
    handle = cli("--asgi", "tests.asgi_apps:make_app", "--factory", "--workers", "2",
                 env={"LIFESPAN_LOG": str(events)})
    assert httpx.get(f"http://127.0.0.1:{handle.port}/x").text == "GET /x 0"
    assert handle.stop(signal.SIGTERM) == 0
    lines = [line.split() for line in events.read_text().splitlines()]
    workers = {pid for pid, _ in lines}
    assert len(workers) == 2
    for pid in workers:
        assert [kind for who, kind in lines if who == pid] == ["lifespan.startup",
                                                                "lifespan.shutdown"]


def test_files_and_the_application_over_http2_beside_the_lane(server_factory, tmp_path):
    """Over h2c the files beside the application are kept answers of the HTTP/2 fast lane;
    a path of the application is refused by the files once, and the application answers it
    each time."""
    (tmp_path / "style.css").write_text("body{}")
    server = server_factory(asgi="asgi_apps:raw_app", asgi_files=True, root=str(tmp_path),
                            listing=False)
    with httpx.Client(base_url=server.url, http1=False, http2=True) as client:
        for _ in range(3):
            assert client.get("/style.css").text == "body{}"
            assert client.get("/anything").text == "GET /anything 0"
    lane = next(iter(server.server.lanes.values()))
    if lane.h2_ready is not None:   # libnghttp2's engine (the `h2` package's keeps none)
        assert any(key.startswith(b"/style.css") for key in lane.h2)
        assert any(key.startswith(b"/anything") for key in lane.refused)
    else:
        assert not lane.h2
