"""The fast lane answers exactly what the full path answers: the same raw requests go to a
server with the lane and one without, and the bytes that come back must be equal (Date aside,
which only says when they were made), in every state a server can be in: serving, draining,
at its connection limit and at the keep-alive request limit."""

import math
import os
import re
import socket
import time

import pytest
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

from reactor.http.response import INLINE_BODY
from reactor.static.files import MAX_CACHED_FILE

MEDIUM = bytes(range(256)) * (INLINE_BODY // 256 + 4)      # cached, but above INLINE_BODY
LARGE = b"L" * (MAX_CACHED_FILE + 1)                        # sent with sendfile


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_bytes(b"<h1>home</h1>")
    (root / "a.txt").write_bytes(b"0123456789abcdef")
    (root / "medium.bin").write_bytes(MEDIUM)
    (root / "large.bin").write_bytes(LARGE)
    (root / "packed.css").write_bytes(b"body{}" * 50)
    (root / "packed.css.gz").write_bytes(b"\x1f\x8b fake gzip")
    (root / "page.html").write_bytes(b"<p>compress me</p>\n" * 100)
    (root / ".env").write_bytes(b"SECRET=1")
    (root / "docs").mkdir()
    (root / "docs" / "guide.txt").write_bytes(b"guide")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    return root


@pytest.fixture
def pair(site, server_factory):
    def start(**config):
        lane = server_factory(root=str(site), fast_lane=True, **config)
        full = server_factory(root=str(site), fast_lane=False, **config)
        return lane, full
    return start


def lane_of(srv):
    """The fast lane of a server's plain-HTTP connections, or None."""
    return srv.server.lanes.get(srv.server.plain_handler)


SEQUENCES = {
    "get": head(b"/a.txt") * 3,
    "head": head(b"/a.txt", method=b"HEAD") + head(b"/a.txt") + head(b"/a.txt", method=b"HEAD"),
    "index": head(b"/") + head(b"/docs") + head(b"/docs/") + head(b"/docs/guide.txt"),
    "http/1.0": head(b"/a.txt", version=b"HTTP/1.0"),
    "http/1.0 keep-alive": head(b"/a.txt", b"Connection: keep-alive", version=b"HTTP/1.0") * 2
                           + head(b"/a.txt", method=b"HEAD", version=b"HTTP/1.0"),
    "close": head(b"/a.txt") + head(b"/a.txt", b"Connection: close") + head(b"/a.txt"),
    "preconditions and ranges": head(b"/a.txt") + head(b"/a.txt", b"Range: bytes=2-5")
                                + head(b"/a.txt", b"If-None-Match: *") + head(b"/a.txt")
                                + head(b"/a.txt", b"If-Modified-Since: Sun, 06 Nov 1994 "
                                                  b"08:49:37 GMT"),
    "other methods": head(b"/a.txt") + head(b"/a.txt", method=b"OPTIONS")
                     + head(b"/a.txt", method=b"DELETE") + head(b"/a.txt"),
    "a body refused from its head": head(b"/a.txt", b"Content-Length: 3", method=b"POST")
                                    + b"abc" + head(b"/a.txt"),
    "empty bodies": head(b"/a.txt", b"Content-Length: 0")
                    + head(b"/a.txt", b"Expect: 100-continue"),
    "misses and refusals": head(b"/missing") + head(b"/.env") + head(b"/../secret.txt")
                           + head(b"/%2e%2e/secret.txt") + head(b"/a.txt/") + head(b"/a.txt"),
    "targets": head(b"/a.txt?x=1") + head(b"/a%2etxt") + head(b"http://t/a.txt") + head(b"/a.txt"),
    "sizes": head(b"/medium.bin") + head(b"/large.bin") + head(b"/medium.bin", method=b"HEAD")
             + head(b"/a.txt"),
    "files from disk": head(b"/large.bin") * 2 + head(b"/large.bin", method=b"HEAD")
                       + head(b"/a.txt") + head(b"/large.bin", version=b"HTTP/1.0")
                       + head(b"/large.bin", b"Connection: close") + head(b"/a.txt"),
    "encodings": head(b"/packed.css", b"Accept-Encoding: gzip") + head(b"/packed.css")
                 + head(b"/a.txt", b"Accept-Encoding: gzip, br"),
    "malformed after plain": head(b"/a.txt") * 2 + b"GET /a.txt HTTP/1.1\r\nHost: t\n\r\n",
    "bad framing after plain": head(b"/a.txt") + head(b"/a.txt", b"Transfer-Encoding: gzip"),
    "incomplete at the end": head(b"/a.txt") * 2 + b"GET /a.t",
    "deep pipeline": head(b"/a.txt") * 70 + head(b"/index.html") * 3,
}


def replay(srv, data: bytes) -> bytes:
    return normalised(exchange(srv.port, data))


def replay_on(sock, data: bytes) -> bytes:
    return normalised(exchange_on(sock, data))


def replay_draining(srv, data: bytes) -> bytes:
    """`data` on a keep-alive connection that had an answer before its server began to drain;
    the server stops once that connection is closed."""
    with connect(srv.port) as sock:
        sock.sendall(head(b"/a.txt"))
        assert read_response(sock).endswith(b"0123456789abcdef")
        srv.server.loop.call_soon_threadsafe(srv.server.shutdown, 10)
        assert wait_until(lambda: srv.server.draining)
        answers = replay_on(sock, data)
    srv.thread.join(2)
    assert not srv.thread.is_alive()
    return answers


def replay_making_room(srv, data: bytes) -> bytes:
    """`data` from a client that, at a limit of one connection, takes the place of one left
    idle after an answer: that one is closed without a word."""
    with connect(srv.port) as idle:
        idle.sendall(head(b"/a.txt"))
        assert read_response(idle).endswith(b"0123456789abcdef")
        answers = replay(srv, data)
        assert read_until_close(idle, reset_ok=False) == b""
    return answers


# state -> (the server's Config, how the sequence is sent)
STATES = {
    "serving": ({}, lambda srv, data: replay(srv, data)),
    "draining": ({}, replay_draining),
    "at the connection limit": ({"max_connections": 1}, replay_making_room),
    "at the keep-alive request limit": ({"max_keepalive_requests": 2},
                                        lambda srv, data: replay(srv, data)),
}


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("name", list(SEQUENCES))
def test_pipelined_sequences_match(pair, name, state):
    config, play = STATES[state]
    lane, full = pair(**config)
    data = SEQUENCES[name]
    got, want = replay(lane, data), replay(full, data)   # this makes the answers ready
    assert got == want
    assert want.startswith(b"HTTP/1.1 ")
    got, want = play(lane, data), play(full, data)      # and this uses them
    assert got == want


def test_a_draining_connection_gets_every_answer_it_sent_for_the_last_saying_close(pair):
    for srv in pair():
        replay(srv, head(b"/a.txt"))
        answers = parse_responses(replay_draining(srv, head(b"/a.txt") * 3))
        assert [(r.status, r.getheader("Connection")) for r in answers] == [
            (200, None), (200, None), (200, "close")]


def test_the_lane_answers_ready_targets(pair):
    lane, full = pair()
    replay(full, head(b"/a.txt"))
    replay(lane, head(b"/a.txt"))   # the full path makes the file's answer ready
    assert lane_of(lane) is not None and lane_of(full) is None
    replay(lane, head(b"/a.txt") + head(b"/a.txt", version=b"HTTP/1.0"))
    assert set(lane_of(lane).messages) == {b"/a.txt\x07", b"/a.txt\x01"}


def one_by_one(srv, requests) -> list:
    """Each request written only after the previous answer is read, on one connection."""
    with connect(srv.port) as sock:
        answers = []
        for method, data in requests:
            sock.sendall(data)
            answers.append(normalised(read_response(sock, method)))
        return answers


def test_requests_one_at_a_time_match(pair):
    lane, full = pair()
    requests = [(b"GET", head(b"/a.txt")), (b"HEAD", head(b"/a.txt", method=b"HEAD")),
                (b"GET", head(b"/a.txt")), (b"GET", head(b"/index.html")),
                (b"GET", head(b"/index.html")), (b"GET", head(b"/a.txt", b"Range: bytes=0-0")),
                (b"GET", head(b"/medium.bin")), (b"GET", head(b"/a.txt"))]
    assert one_by_one(lane, requests) == one_by_one(full, requests)
    assert lane_of(lane).messages   # and the lane did answer some of them


def test_answers_that_depend_on_accept_encoding(pair):
    lane, full = pair()
    gzip = head(b"/page.html", b"Accept-Encoding: gzip")
    for srv in (lane, full):   # until the compressed copy is ready in memory on both
        for _ in range(100):
            if b"Content-Encoding: gzip" in replay(srv, gzip):
                break
            time.sleep(0.05)
    data = (gzip + head(b"/page.html") + head(b"/page.html", b"Accept-Encoding: br;q=0, gzip")
            + head(b"/page.html", b"Accept-Encoding: identity")
            + head(b"/page.html", b"Accept-Encoding:")
            + head(b"/page.html", b"Accept-Encoding: gzip", b"Accept-Encoding: br") + gzip)
    for _ in range(2):
        got, want = replay(lane, data), replay(full, data)
        assert got == want and got.count(b"Content-Encoding: gzip") >= 2
    assert any(key.startswith(b"/page.html") and key.endswith(b"gzip")
               for key in lane_of(lane).messages)


def test_keepalive_request_limit_is_kept(pair):
    lane, full = pair(max_keepalive_requests=3)
    warm = head(b"/a.txt")
    replay(lane, warm), replay(full, warm)
    got, want = replay(lane, warm * 5), replay(full, warm * 5)
    assert got == want and got.count(b"HTTP/1.1 200") == 3
    assert got.count(b"Connection: close") == 1
    requests = [(b"GET", warm)] * 3
    assert one_by_one(lane, requests) == one_by_one(full, requests)


def test_changed_file_is_seen_through_the_lane(pair, site):
    lane, _ = pair()
    assert replay(lane, head(b"/a.txt") * 2).endswith(b"0123456789abcdef")
    (site / "a.txt").write_bytes(b"changed")
    lane.revalidate()
    assert replay(lane, head(b"/a.txt") * 2).endswith(b"changed")


def test_files_from_disk_take_the_lane_from_the_descriptor_kept_for_them(pair):
    lane, full = pair()
    requests = [(b"GET", head(b"/large.bin")), (b"HEAD", head(b"/large.bin", method=b"HEAD")),
                (b"GET", head(b"/large.bin"))]
    assert one_by_one(lane, requests) == one_by_one(full, requests)
    kept = [key for key, message in lane_of(lane).messages.items()
            if key.startswith(b"/large.bin") and message.__class__ is tuple]
    assert len(kept) == 2   # the GET and the HEAD
    snapshot = lane.server.handler.files.lookup("large.bin")
    assert snapshot.fd is not None and snapshot.users == 0   # kept, and every slice let go


def test_a_file_rewritten_in_place_is_never_sent_with_its_old_head(pair, site):
    """The lane's head for a file on disk is checked against the file (one fstat) before
    every answer: a file rewritten in place, within the second its answers are trusted, gets
    the full path's answer for its new version, as on a server without the lane."""
    lane, full = pair()
    requests = [(b"GET", head(b"/large.bin"))] * 2
    before = one_by_one(lane, requests)
    assert before == one_by_one(full, requests)
    rewritten = b"R" * len(LARGE)
    with open(site / "large.bin", "r+b") as f:   # the same inode and size
        f.write(rewritten)
    os.utime(site / "large.bin", ns=(0, 10**18))   # a time of its own, however fast the test
    got, want = replay(lane, head(b"/large.bin") * 2), replay(full, head(b"/large.bin") * 2)
    assert got == want and got.endswith(rewritten) and b"L" * 100 not in got
    etag = re.compile(rb"\r\nETag: ([^\r]*)\r\n")
    assert etag.search(got).group(1) != etag.search(before[0]).group(1)


def test_half_close_after_plain_requests(pair):
    lane, full = pair()
    for srv in (lane, full):
        replay(srv, head(b"/a.txt"))
    with connect(lane.port) as a, connect(full.port) as b:
        for sock in (a, b):
            sock.sendall(head(b"/a.txt") * 2)
            sock.shutdown(socket.SHUT_WR)
        assert normalised(read_until_close(a, reset_ok=False)) == normalised(
            read_until_close(b, reset_ok=False))


class Lines:
    """Stands in for stderr: collects what the access log writes, with what says when (the
    time, the duration) masked."""

    def __init__(self):
        self.lines = []

    def write(self, text):
        text = re.sub(r"\[[^\]]+\]", "[-]", text)
        text = re.sub(r'"time": "[^"]*"|"duration_ms": [0-9.e-]+', "-", text)
        self.lines += text.splitlines()

    def flush(self):
        pass


def scrape(srv) -> dict:
    data = exchange(srv.port, head(b"/metrics", b"Connection: close")).decode()
    return {name: value for name, value in re.findall(r"^(\w+\{[^}]*\}|\w+) (\S+)$", data, re.M)}


# What the combined and JSON formats write besides the request line: present, empty, absent,
# repeated, and with bytes that must be escaped.
CLIENT_FIELDS = [(), (b"User-Agent: ua/1.0 (x)", b"Referer: http://a.test/p?q=1"),
                 (b"Referer:", b'User-Agent: say "hi" \\ \xe9'),
                 (b"referer: first", b"Referer: second", b"user-agent: b")]


@pytest.mark.parametrize("metrics", [None, "/metrics"])
@pytest.mark.parametrize("log_format", ["common", "combined", "json"])
def test_access_log_and_metrics_match(pair, log_format, metrics):
    """Without metrics, the C lane writes the text formats' lines itself; with them, or in
    JSON, every line is written from Python. Either way they are the full path's."""
    lane, full = pair(access_log=True, metrics=metrics, log_format=log_format)
    native = lane_of(lane).native
    if native is not None:
        assert native.logs == (metrics is None and log_format != "json")
    logs = []
    for srv in (lane, full):
        logs.append(Lines())
        srv.server.access_log.stream = logs[-1]
    data = (b"".join(head(b"/a.txt", *fields) for fields in CLIENT_FIELDS)
            + head(b"/a.txt", method=b"HEAD") + head(b"/missing", *CLIENT_FIELDS[1])
            + head(b"/index.html") * 2 + head(b"/large.bin", *CLIENT_FIELDS[1])
            + head(b"/large.bin", method=b"HEAD") + head(b"/a.txt", b"Connection: close"))
    requests = [(b"GET", head(b"/a.txt", *fields)) for fields in CLIENT_FIELDS[1:]]
    requests.append((b"HEAD", head(b"/a.txt", method=b"HEAD")))
    # Answers from C and from Python, one after the other on one connection: their lines
    # keep the order of the requests.
    requests += [(b"GET", head(b"/a.txt", b"Range: bytes=0-1")), (b"GET", head(b"/a.txt")),
                 (b"GET", head(b"/missing")), (b"GET", head(b"/a.txt", *CLIENT_FIELDS[2]))]
    for srv in (lane, full):
        for _ in range(2):
            replay(srv, data)
        one_by_one(srv, requests)
    assert lane_of(lane).messages
    assert wait_until(lambda: len(logs[0].lines) == len(logs[1].lines) == 2 * 11 + 8)
    assert logs[0].lines == logs[1].lines
    if metrics is None:
        return
    got, want = scrape(lane), scrape(full)
    for name in want:
        if name.startswith(("http_server_requests_total", "reactor_http_response_body_bytes",
                            "reactor_cache_hits_total")):
            assert got[name] == want[name], name


def test_each_answer_is_logged_once_whichever_read_answers_it(pair):
    """A connection's first read is answered apart from the later ones (it may be HTTP/2's
    preface): what the C lane wrote for another connection's read just before must not
    count for it."""
    lane, full = pair(access_log=True, log_format="common")
    logs = []
    for srv in (lane, full):
        logs.append(Lines())
        srv.server.access_log.stream = logs[-1]
        with connect(srv.port) as first:
            for _ in range(3):
                first.sendall(head(b"/a.txt"))
                assert read_response(first).endswith(b"0123456789abcdef")
                with connect(srv.port) as later:
                    later.sendall(head(b"/a.txt"))
                    assert read_response(later).endswith(b"0123456789abcdef")
    assert lane_of(lane).messages
    assert wait_until(lambda: len(logs[1].lines) == 6)
    assert wait_until(lambda: len(logs[0].lines) == 6) and logs[0].lines == logs[1].lines


def test_lane_answers_written_in_pieces_are_logged_with_what_was_sent(pair, site):
    """Answers the socket does not take at once are logged when their last byte is written,
    and those of a client that leaves before with the body bytes it was sent."""
    piece = b"p" * (INLINE_BODY - 1024)   # on the lane
    (site / "piece.bin").write_bytes(piece)
    # Taken as soon as it is open: its socket is made small before it sends anything.
    lane, _ = pair(access_log=True, log_format="combined", defer_accept=0)
    lines = lane.server.access_log.stream = Lines()
    replay(lane, head(b"/piece.bin"))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", lane.port))
    assert wait_until(lambda: [c for c in lane.server.connections
                               if c.client == sock.getsockname()])
    served, = [c for c in lane.server.connections if c.client == sock.getsockname()]
    # So that the answers to one read cannot all be taken at once.
    served.transport.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.sendall(head(b"/piece.bin", b"User-Agent: slow") * 20)
    assert read_response(sock).startswith(b"HTTP/1.1 200 ")
    # A reset, not a FIN: what the server has not written yet is lost.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    sock.close()

    def sizes():
        return [int(line.split('" 200 ')[1].split()[0]) for line in lines.lines[1:]]

    assert wait_until(lambda: sizes() and sizes()[-1] < len(piece))
    assert lane_of(lane).messages
    assert sizes()[0] == len(piece) and sizes() == sorted(sizes(), reverse=True)
    assert all(line.endswith(' "-" "slow"') for line in lines.lines[1:])


def test_a_connection_answered_once_by_the_lane_and_closed_builds_no_protocol(pair):
    # Taken as soon as it is open, before its request is there (see the test below).
    lane, _ = pair(defer_accept=0)
    replay(lane, head(b"/a.txt"))   # the full path makes the answer ready
    server = lane.server
    assert wait_until(lambda: not server.connections)   # that connection is gone
    closed = []
    connection_closed = server.connection_closed

    def note(connection):
        closed.append(connection.protocol)
        connection_closed(connection)

    server.connection_closed = note   # this server's own, not the class's
    for fields in ((b"Connection: close",), ()):
        with connect(lane.port) as sock:
            sock.sendall(head(b"/a.txt", *fields))
            assert read_response(sock).endswith(b"0123456789abcdef")
    assert wait_until(lambda: len(closed) == 2)
    # The one that asked to close never needed one; the kept-alive one did (it counts).
    assert closed[0] is None and closed[1].served == 1


def test_a_request_there_as_its_connection_is_accepted_is_answered_before_it_is_admitted(
        pair):
    """The kernel holds a new connection until its client has sent something
    (--defer-accept): the C lane reads it as it is accepted, and one answered whole that
    asked to close is closed there, without a connection of the server's. The rest are
    admitted with their first read, answered as far as the lane could."""
    lane, full = pair(access_log=True, log_format="combined")
    requests = [head(b"/a.txt", b"Connection: close", b"User-Agent: c"),
                head(b"/a.txt", version=b"HTTP/1.0"),
                head(b"/a.txt") + head(b"/a.txt", b"Connection: close", method=b"DELETE"),
                head(b"/a.txt")]
    logs = []
    for srv in (full, lane):
        for data in requests * 2:
            replay(srv, data)   # the full path makes the answers ready, then the lane's
        logs.append(Lines())
        srv.server.access_log.stream = logs[-1]
    server = lane.server
    admitted = []
    admit = server.admit

    def note(sock, client):
        admitted.append(client)
        return admit(sock, client)

    server.admit = note   # this server's own, not the class's
    lane_of(lane).expires = math.inf   # its answers are not dropped to be made again meanwhile
    handled = server.handled
    for data in requests:
        assert replay(lane, data) == replay(full, data)
    # The two whose reads the C lane could not end; the pure-Python build admits all.
    assert len(admitted) == (2 if lane_of(lane).native is not None else len(requests))
    assert wait_until(lambda: server.handled == handled + len(requests))
    # The warm-up's lines and these, 5 a round.
    assert wait_until(lambda: len(logs[0].lines) == len(logs[1].lines) == 15)
    assert logs[1].lines == logs[0].lines
    assert logs[1].lines[-5].endswith('"GET /a.txt HTTP/1.1" 200 16 "-" "c"')


def kept_by_the_wait(srv) -> dict:
    """The connections whose reads the loop's wait serves in C (empty without the C lane)."""
    wait = srv.server.lane_wait
    return {} if wait is None else wait.connections


def test_the_loops_wait_serves_idle_connections_up_to_the_keep_alive_limit(pair):
    """The reads of an idle keep-alive connection are served by the loop's wait in C while
    its plan lets every answer go out; near the request limit the connection goes back to
    the full path, whose last answer says close, byte for byte as without the lane."""
    lane, full = pair(max_keepalive_requests=70)
    requests = [(b"GET", head(b"/a.txt"))] * 70
    answers = one_by_one(full, requests)
    assert one_by_one(lane, requests) == answers   # the second: answers ready, then kept
    assert parse_responses(answers[-1])[0].getheader("Connection") == "close"
    with connect(lane.port) as sock:
        sock.sendall(head(b"/a.txt"))
        assert read_response(sock).endswith(b"0123456789abcdef")
        if lane_of(lane).native is not None:
            assert wait_until(lambda: [c.client for c in kept_by_the_wait(lane).values()]
                              == [sock.getsockname()])
    assert wait_until(lambda: not kept_by_the_wait(lane))   # let go when closed


def test_a_connection_served_by_the_loops_wait_keeps_its_keep_alive_deadline_moving(pair):
    lane, _ = pair(keepalive_timeout=1.0)
    replay(lane, head(b"/a.txt"))   # the full path makes the answer ready
    with connect(lane.port) as sock:
        for _ in range(5):   # 2.4 s in all: past the timeout unless each answer renews it
            sock.sendall(head(b"/a.txt"))
            assert read_response(sock).endswith(b"0123456789abcdef")
            # Its answer kept from now on, so that the full path, which renews the deadline
            # itself, answers none of the others.
            lane_of(lane).expires = math.inf
            time.sleep(0.6)
        started = time.monotonic()
        assert read_until_close(sock) == b""   # then closed once idle for the timeout
        assert time.monotonic() - started < 3


def test_a_connection_whose_read_c_could_not_answer_is_kept_again_once_c_ends_one(pair):
    """A read the loop's wait hands back with nothing answered (a file sent from disk) is not
    a reason to look at the connection's next read in C again; one that C then ends is."""
    lane, full = pair()
    if lane_of(lane).native is None:
        pytest.skip("the pure-Python build has no C lane")
    small, large = head(b"/a.txt"), head(b"/large.bin")
    for srv in (lane, full):
        one_by_one(srv, [(b"GET", small), (b"GET", large)] * 2)   # the answers made ready
    lane_of(lane).expires = math.inf   # and not dropped to be made again meanwhile
    with connect(lane.port) as sock:
        mine = sock.getsockname()

        def kept(wanted):
            return ([c.client for c in kept_by_the_wait(lane).values()] == [mine]) is wanted

        answers = []
        for data, then_kept in ((small, True), (large, False), (small, True)):
            sock.sendall(data)
            answers.append(normalised(read_response(sock)))
            assert wait_until(lambda wanted=then_kept: kept(wanted))
    assert answers == one_by_one(full, [(b"GET", small), (b"GET", large), (b"GET", small)])
