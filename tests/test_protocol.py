"""The sans-I/O protocol: bytes in, requests and response pieces out, no sockets."""

import pytest

from reactor.http import limits
from reactor.http.errors import HTTPError
from reactor.http.parser import ChunkedDecoder, RequestParser
from reactor.http.protocol import CONTINUE, Protocol, State, Stream
from reactor.http.request import Request
from reactor.http.response import FileSlice, Response


def make(max_body=1000, max_requests=100):
    return Protocol(RequestParser(), ChunkedDecoder, max_body, max_requests)


def feed_all(protocol, data, step=None):
    if step is None:
        return protocol.receive(data)
    events = []
    for i in range(0, len(data), step):
        events += protocol.receive(data[i:i + step])
    return events


GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"


def test_one_request_then_idle():
    p = make()
    [request] = p.receive(GET)
    assert (request.method, request.target, request.version) == ("GET", "/a", 11)
    assert p.state is State.IDLE and p.buffered == 0


@pytest.mark.parametrize("step", [1, 2, 7])
def test_head_split_anywhere(step):
    p = make()
    events = feed_all(p, GET + GET.replace(b"/a", b"/b"), step)
    assert [e.target for e in events] == ["/a", "/b"]


def test_partial_head_is_kept():
    p = make()
    assert p.receive(GET[:10]) == []
    assert p.state is State.HEAD and p.buffered == 10
    [request] = p.receive(GET[10:])
    assert request.target == "/a"


def test_pipelined_requests_come_out_in_order():
    p = make()
    data = b"".join(GET.replace(b"/a", b"/%d" % i) for i in range(16))
    assert [e.target for e in p.receive(data)] == ["/%d" % i for i in range(16)]


@pytest.mark.parametrize("step", [None, 1, 5])
def test_content_length_body_is_read_not_parsed(step):
    smuggled = b"GET /evil HTTP/1.1\r\nHost: x\r\n\r\n"
    data = (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
            + smuggled + GET)
    events = feed_all(make(), data, step)
    assert [e.target for e in events] == ["/p", "/a"]
    assert events[0].body == smuggled


@pytest.mark.parametrize("step", [None, 1, 3])
def test_chunked_body_then_next_request(step):
    data = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" + GET)
    events = feed_all(make(), data, step)
    assert [e.target for e in events] == ["/c", "/a"]
    assert events[0].body == b"hello world"


def test_body_over_limit_is_refused_before_reading():
    p = make(max_body=10)
    events = p.receive(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
    assert isinstance(events[-1], HTTPError) and events[-1].status == 413
    assert p.state is State.CLOSED
    assert p.receive(GET) == []


def test_chunked_body_over_limit():
    p = make(max_body=4)
    events = p.receive(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\n0\r\n\r\n")
    assert [type(e) for e in events] == [HTTPError] and events[0].status == 413
    assert p.state is State.CLOSED


def test_malformed_chunk_closes():
    p = make()
    events = p.receive(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"0x5\r\nhello\r\n0\r\n\r\n")
    assert events[-1].status == 400 and p.state is State.CLOSED


def test_expect_continue_before_body():
    p = make()
    events = p.receive(b"PUT /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                       b"Content-Length: 3\r\n\r\n")
    assert events == [CONTINUE] and p.state is State.BODY
    [request] = p.receive(b"abc")
    assert request.body == b"abc"


def test_expect_continue_not_sent_when_body_already_here():
    p = make()
    events = p.receive(b"PUT /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                       b"Content-Length: 3\r\n\r\nabc")
    assert [type(e) for e in events] == [Request]


def test_error_after_good_requests_keeps_them():
    p = make()
    events = p.receive(GET + b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n" + GET)
    assert events[0].target == "/a"
    assert isinstance(events[1], HTTPError) and events[1].status == 400
    assert len(events) == 2 and p.state is State.CLOSED


def _respond(p, raw, response):
    [request] = p.receive(raw)
    return p.respond(request, response)


def test_http11_keeps_alive_without_connection_header():
    pieces, keep = _respond(make(), GET, Response(200, [], b"hi"))
    assert keep and pieces[0].endswith(b"\r\n\r\nhi")
    assert b"Connection" not in pieces[0] and b"Content-Length: 2\r\n" in pieces[0]


def test_http10_closes_unless_asked():
    p = make()
    pieces, keep = _respond(p, b"GET / HTTP/1.0\r\n\r\n", Response(200, [], b"hi"))
    assert not keep and b"Connection: close\r\n" in pieces[0] and p.state is State.CLOSED
    pieces, keep = _respond(make(), b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                            Response(200, [], b"hi"))
    assert keep and b"Connection: keep-alive\r\n" in pieces[0]


def test_connection_close_is_honoured():
    pieces, keep = _respond(make(), b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            Response(200, [], b"hi"))
    assert not keep and b"Connection: close\r\n" in pieces[0]


def test_head_gets_the_length_but_no_body(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    import os
    fd = os.open(path, os.O_RDONLY)
    closed = []
    body = FileSlice(fd, 0, 100, release=lambda f: (closed.append(f), os.close(f)))
    pieces, keep = _respond(make(), b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", Response(200, [], body))
    assert len(pieces) == 1 and pieces[0].endswith(b"Content-Length: 100\r\n\r\n")
    assert closed == [fd]


def test_not_modified_has_no_length_and_no_body():
    pieces, _ = _respond(make(), GET, Response(304, [("ETag", '"1"')], b"ignored"))
    assert pieces == [pieces[0]] and b"Content-Length" not in pieces[0]
    assert pieces[0].endswith(b'ETag: "1"\r\n\r\n')


def test_stream_is_chunked_on_11_and_closes_on_10():
    pieces, keep = _respond(make(), GET, Response(200, [], iter([b"a", b"b"])))
    assert keep and b"Transfer-Encoding: chunked" in pieces[0]
    assert isinstance(pieces[1], Stream) and pieces[1].frame(b"ab") == b"2\r\nab\r\n"
    pieces, keep = _respond(make(), b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                            Response(200, [], iter([b"a"])))
    assert not keep and b"Transfer-Encoding" not in pieces[0]
    assert pieces[1].frame(b"ab") == b"ab" and pieces[1].last() == b""


def test_keepalive_request_limit():
    p = make(max_requests=2)
    _, keep = _respond(p, GET, Response(200, [], b""))
    assert keep
    pieces, keep = _respond(p, GET, Response(200, [], b""))
    assert not keep and b"Connection: close" in pieces[0]


def test_a_draining_connection_answers_what_it_received_and_closes_after_the_last():
    p = make()
    p.drain()
    [first, second] = p.receive(GET + GET)
    pieces, keep = p.respond(first, Response(200, [], b""), queued=True)
    assert keep and b"Connection" not in pieces[0]
    pieces, keep = p.respond(second, Response(200, [], b""))
    assert not keep and b"Connection: close" in pieces[0]


def test_a_draining_connection_holding_part_of_a_request_waits_for_it():
    p = make()
    p.drain()
    [request] = p.receive(GET + GET[:10])
    _, keep = p.respond(request, Response(200, [], b""))
    assert keep
    [request] = p.receive(GET[10:])
    _, keep = p.respond(request, Response(200, [], b""))
    assert not keep


@pytest.mark.parametrize("served, state, asks, more, plan", [
    (0, None, False, False, (5, False)),
    (0, None, True, False, (5, True)),
    (0, Protocol.drain, False, False, (5, True)),
    (0, Protocol.drain, False, True, (5, False)),
    (7, None, False, False, (3, True)),
    (0, Protocol.stop_after_next, False, False, (1, True)),
], ids=["serving", "the last asks to close", "draining", "draining, more held",
        "three answers to the request limit", "after a refused body"])
def test_one_plan_for_a_read_of_five_requests(served, state, asks, more, plan):
    p = make(max_requests=10)
    p.served = served
    if state is not None:
        state(p)
    assert p.plan_answers(5, asks, more) == plan


@pytest.mark.parametrize("state", [None, Protocol.drain, Protocol.stop_after_next, Protocol.finish])
def test_answers_freely_is_the_plan_for_the_most_a_read_holds(state):
    """answers_freely() is plan_answers' answer for a full read with nothing after it, written
    out: the two agree at every count of requests served, up to the limit and past it."""
    batch = limits.MAX_PLAIN_BATCH
    for max_requests in (1, batch, batch + 1, batch + 2, 3 * batch):
        for served in range(max_requests + 2):
            p = make(max_requests=max_requests)
            p.served = served
            if state is not None:
                state(p)
            assert p.answers_freely() == (p.plan_answers(batch, False, False) == (batch, False))


def test_error_response_closes():
    p = make()
    [piece] = p.error(HTTPError(431, "too many fields"))
    assert piece.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Connection: close\r\n" in piece and piece.endswith(b"too many fields\n")
    assert p.state is State.CLOSED
