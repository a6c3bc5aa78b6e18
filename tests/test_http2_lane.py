"""The HTTP/2 fast lane answers exactly what the full path answers: the same requests go to a
server with the lane and to one without, on both engines, and what comes back must be equal:
the status, every field in order (Date aside, which only says when), the body, and how each
stream ended. Plain requests for answers kept in memory take the lane; everything else
(preconditions, ranges, two Accept-Encoding fields, a Host field, files from disk, large
bodies) must fall to the full path and still agree.
"""

import math
import os
import time

import pytest
from h2client import H2Client, Response
from netutil import wait_until
from test_fast_lane import Lines, scrape

from reactor.http.request import plain_key
from reactor.http.response import INLINE_BODY
from reactor.net.tls import Certificates
from reactor.static.files import MAX_CACHED_FILE

# Sizes: empty, tiny, 1 KiB, just under and over INLINE_BODY (the largest body a kept answer
# copies), 100 KiB (in the memory cache, from the full path), over the memory cache (sendfile).
SIZES = {"empty.txt": 0, "tiny.txt": 13, "small.html": 1024, "under.bin": INLINE_BODY - 1,
         "over.bin": INLINE_BODY + 1, "hundred.bin": 100 * 1024,
         "large.bin": MAX_CACHED_FILE + 1}


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    for name, size in SIZES.items():
        (root / name).write_bytes(os.urandom(size))
    (root / "index.html").write_bytes(b"<h1>home</h1>")
    (root / "packed.css").write_bytes(b"body{}" * 50)
    (root / "packed.css.gz").write_bytes(b"\x1f\x8b fake gzip")
    (root / "docs").mkdir()
    (root / "docs" / "guide.txt").write_bytes(b"guide")
    return root


@pytest.fixture
def pair(site, server_factory, engine):
    def start(**config):
        lane = server_factory(root=str(site), http2_engine=engine, fast_lane=True, **config)
        full = server_factory(root=str(site), http2_engine=engine, fast_lane=False, **config)
        return lane, full
    return start


def kept(srv) -> dict:
    """The HTTP/2 answers the lane of a server's plain connections keeps, by key."""
    lane = srv.server.lanes.get(srv.server.plain_handler)
    return {} if lane is None else lane.h2


def outcome(response) -> tuple:
    return (response.status, [field for field in response.headers if field[0] != b"date"],
            response.body, response.reset)


def one_by_one(port, requests, context=None) -> list:
    """Each request sent once the answer before it is read, on one connection."""
    client = H2Client(port, context)
    try:
        return [outcome(client.get(path, method=method, headers=headers))
                for path, method, headers in requests]
    finally:
        client.close()


def together(port, requests, context=None) -> list:
    """Every request sent before any answer is read, on one connection."""
    client = H2Client(port, context)
    try:
        streams = [client.request(path, method=method, headers=headers)
                   for path, method, headers in requests]
        return [outcome(client.response(stream)) for stream in streams]
    finally:
        client.close()


GETS = [(f"/{name}", "GET", []) for name in SIZES]
HEADS = [(f"/{name}", "HEAD", []) for name in SIZES]
OTHERS = [
    ("/", "GET", []), ("/docs", "GET", []), ("/docs/", "GET", []), ("/docs/guide.txt", "GET", []),
    ("/missing", "GET", []), ("/tiny.txt?query=1", "GET", []), ("/tiny.txt", "OPTIONS", []),
    ("/packed.css", "GET", [("accept-encoding", "gzip")]),
    ("/packed.css", "GET", [("accept-encoding", "br;q=0, gzip")]),
    ("/packed.css", "GET", [("accept-encoding", "identity")]), ("/packed.css", "GET", []),
    ("/packed.css", "GET", [("accept-encoding", "gzip"), ("accept-encoding", "br")]),
    ("/small.html", "GET", [("range", "bytes=2-5")]),
    ("/small.html", "GET", [("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]),
    ("/small.html", "GET", [("host", "localhost")]),
    ("/small.html", "GET", [("user-agent", "test"), ("referer", "http://x/")]),
]


@pytest.mark.parametrize("send", [one_by_one, together], ids=["one by one", "together"])
def test_answers_match_the_full_path(pair, engine, send):
    lane, full = pair()
    requests = GETS + HEADS + OTHERS
    for _ in range(2):   # the first round makes the answers ready, the second takes the lane
        got, want = send(lane.port, requests), send(full.port, requests)
        assert got == want
        # Kept from now on: the second round's answers are not dropped before they are looked
        # at below (they are made again each second).
        lane.server.lanes[lane.server.plain_handler].expires = math.inf
    assert [answer[0] for answer in got[:len(SIZES)]] == [200] * len(SIZES)
    assert got[len(SIZES) + 3][1] and got[len(SIZES) + 3][2] == b""   # a HEAD: fields, no body
    if engine == "nghttp2":
        keys = set(kept(lane))
        for name, size in SIZES.items():
            taken = size < INLINE_BODY
            assert (plain_key(f"/{name}".encode(), False, True, True, None) in keys) is taken
            assert (plain_key(f"/{name}".encode(), True, True, True, None) in keys) is taken
        assert plain_key(b"/packed.css", False, True, True, b"gzip") in keys
        # A Range, a precondition or a Host field kept nothing of its own.
        assert {key for key in keys if key.startswith(b"/small.html")} == {
            plain_key(b"/small.html", head, True, True, None) for head in (False, True)}
    else:
        assert kept(lane) == {}   # the pure-Python engine keeps none: the full path answers
    assert kept(full) == {}


def test_validators_of_a_lane_answer_get_304_from_the_full_path(pair):
    lane, full = pair()
    first = one_by_one(lane.port, [("/small.html", "GET", [])] * 2)[1]
    etag = dict(first[1])[b"etag"]
    requests = [("/small.html", "GET", [("if-none-match", etag)]),
                ("/small.html", "HEAD", [("if-none-match", etag)]),
                ("/small.html", "GET", [("if-match", b'"other"')]),
                ("/small.html", "GET", [("range", "bytes=0-0"), ("if-range", etag)])]
    got = one_by_one(lane.port, requests)
    assert got == one_by_one(full.port, requests)
    assert [answer[0] for answer in got] == [304, 304, 412, 206]


def test_over_tls_the_secure_lane_answers_alike(server_factory, site, engine, pki,
                                                client_context):
    certificates = Certificates([(str(pki / "cert.pem"), str(pki / "key.pem"))])
    servers = [server_factory(tls=certificates, root=str(site), http2_engine=engine,
                              fast_lane=on) for on in (True, False)]
    requests = GETS + HEADS
    secure = servers[0].server
    for _ in range(2):
        got, want = (together(srv.port, requests, client_context) for srv in servers)
        assert got == want
        secure.lanes[secure.secure_handler].expires = math.inf   # as in the test above
    if engine == "nghttp2":
        assert secure.lanes[secure.secure_handler].h2


def test_a_file_rewritten_in_place_is_answered_as_the_full_path_answers(pair, site):
    """Within the time a file's answer is trusted, both paths give the answer kept for it;
    once the tree is looked at again, both give the new version."""
    lane, full = pair()
    requests = [("/small.html", "GET", []), ("/small.html", "HEAD", [])] * 2
    before = one_by_one(lane.port, requests)
    assert before == one_by_one(full.port, requests)
    rewritten = b"R" * SIZES["small.html"]
    with open(site / "small.html", "r+b") as f:   # the same inode and size
        f.write(rewritten)
    os.utime(site / "small.html", ns=(0, 10**18))   # a time of its own, however fast the test
    assert one_by_one(lane.port, requests) == one_by_one(full.port, requests)
    lane.revalidate()
    full.revalidate()
    after = one_by_one(lane.port, requests)
    assert after == one_by_one(full.port, requests)
    assert after[2][2] == rewritten and after[2][1] != before[2][1]   # a new ETag


def test_the_keepalive_request_limit_counts_lane_answers(pair):
    """Requests past the limit that arrived in the same read are answered (the GOAWAY names
    the last stream the engine took); the next connection is needed for more."""
    lane, full = pair(max_keepalive_requests=4)
    warm = [("/tiny.txt", "GET", [])]
    for srv in (lane, full):
        one_by_one(srv.port, warm)
    results = []
    for srv in (lane, full):
        client = H2Client(srv.port)
        answers = [outcome(client.get("/tiny.txt")) for _ in range(4)]
        results.append((answers, client.until_goaway()))
        client.close()
    assert results[0] == results[1]
    assert results[0][1] == (0, 7)


def test_a_draining_server_answers_through_the_lane_until_the_last_goaway(pair):
    """Graceful drain: after the first GOAWAY the connection still takes requests, which the
    lane answers as the full path does; then the final GOAWAY, and the close."""
    lane, full = pair()
    results = []
    for srv in (lane, full):
        client = H2Client(srv.port)
        client.get("/tiny.txt")
        client.get("/tiny.txt")   # from the lane, where there is one
        srv.server.loop.call_soon_threadsafe(srv.server.shutdown, 5)
        assert client.until_goaway() == (0, 2**31 - 1)
        answers = [outcome(client.get(path)) for path in ("/tiny.txt", "/small.html")]
        client.until_closed()
        results.append((answers, client.goaways[-1]))
    assert results[0] == results[1]
    assert results[0][1] == (0, 7) and [answer[0] for answer in results[0][0]] == [200, 200]


def test_a_client_that_resets_lane_streams_leaves_nothing_behind(pair, engine):
    """Streams reset before their answers are written, and a connection closed with lane
    answers still unsent: the server goes on answering, and holds no stream for either."""
    if engine != "nghttp2":
        pytest.skip("the pure-Python engine keeps no answers")
    lane, _ = pair()
    one_by_one(lane.port, [("/under.bin", "GET", [])])   # ready now
    client = H2Client(lane.port, settings={4: 0})   # SETTINGS_INITIAL_WINDOW_SIZE 0: no DATA
    streams = [client.request("/under.bin") for _ in range(10)]
    for stream in streams[:5]:
        client.conn.reset_stream(stream)
    client.flush()
    deadline = time.monotonic() + 5
    while not all(client.responses[stream].status for stream in streams[5:]):
        assert time.monotonic() < deadline and client.read_once()
    client.close()
    assert one_by_one(lane.port, [("/under.bin", "GET", [])])[0][0] == 200


@pytest.mark.parametrize("log_format", ["common", "combined", "json"])
def test_access_log_and_metrics_match(pair, engine, log_format):
    """Each answer of the lane is logged and counted as the full path's: the common format
    from the lane's key (a line when the stream ends, with the body bytes sent); the formats
    that write Referer and User-Agent take the full path for every request."""
    lane, full = pair(access_log=True, metrics="/metrics", log_format=log_format)
    logs = []
    for srv in (lane, full):
        logs.append(Lines())
        srv.server.access_log.stream = logs[-1]
    requests = GETS + HEADS + OTHERS
    for srv in (lane, full):
        for send in (together, one_by_one):
            send(srv.port, requests)
    count = 2 * len(requests)
    assert wait_until(lambda: len(logs[0].lines) == len(logs[1].lines) == count)
    # Streams sent together end in the order the scheduler gives them, on either path.
    assert sorted(logs[0].lines) == sorted(logs[1].lines)
    if log_format != "json":
        assert any('"HEAD /small.html HTTP/2.0" 200 0' in line for line in logs[0].lines)
        assert any('"GET /small.html HTTP/2.0" 200 1024' in line for line in logs[0].lines)
    assert bool(kept(lane)) is (engine == "nghttp2" and log_format == "common")
    got, want = scrape(lane), scrape(full)
    for name in want:
        if name.startswith(("http_server_requests_total", "reactor_http_response_body_bytes")):
            assert got[name] == want[name], name


def test_lane_answers_lost_with_their_connection_are_logged(pair, engine):
    """A client that leaves with answers unsent: each is logged with the body bytes framed
    for it, as the full path logs its streams."""
    lane, full = pair(access_log=True)
    logs = []
    for srv in (lane, full):
        logs.append(Lines())
        srv.server.access_log.stream = logs[-1]
        one_by_one(srv.port, [("/under.bin", "GET", [])] * 2)   # ready, where there is a lane
        client = H2Client(srv.port, settings={4: 0})   # no DATA may be sent
        streams = [client.request("/under.bin") for _ in range(3)]
        while not all(client.responses[stream].status for stream in streams):
            assert client.read_once()
        client.close()
    assert wait_until(lambda: len(logs[0].lines) == len(logs[1].lines) == 5)
    assert sorted(logs[0].lines) == sorted(logs[1].lines)
    assert logs[0].lines[-1].endswith("HTTP/2.0\" 200 0")


def test_a_read_of_more_requests_than_a_turn_takes_is_answered_in_order(pair):
    """Hundreds of requests in one read (most cancelled at once, as in a rapid reset below its
    limit): the engine takes a turn's worth at a time, the rest of the read waits, and the
    requests at its end are answered as the full path answers them."""
    lane, full = pair()
    results = []
    for srv in (lane, full):
        one_by_one(srv.port, [("/tiny.txt", "GET", [])] * 2)
        client = H2Client(srv.port)
        fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"),
                  (b":path", b"/tiny.txt")]
        for _ in range(400):
            stream = client.conn.get_next_available_stream_id()
            client.conn.send_headers(stream, fields, end_stream=True)
            client.conn.reset_stream(stream, 0x8)
        last = []
        for _ in range(20):
            last.append(client.conn.get_next_available_stream_id())
            client.conn.send_headers(last[-1], fields, end_stream=True)
            client.responses[last[-1]] = Response()
        client.flush()
        results.append([outcome(client.response(stream)) for stream in last])
        client.close()
    assert results[0] == results[1]
    assert [answer[0] for answer in results[0]] == [200] * 20
