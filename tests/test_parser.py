"""The shared table (tests/parser_cases.py) against both parser backends, whole and at every
split point, plus the API details the server relies on (buffer types, start, end)."""

import pytest

from reactor.http.errors import ParseError
from reactor.http.request import Request
from tests.parser_cases import CASES, H, get, req


def _parser(backend, case):
    return backend.RequestParser(max_request_line=case.max_request_line,
                                 max_head=case.max_head, max_headers=case.max_headers)


def _expected(case):
    return [Request(**r) for r in case.requests]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_table(backend, case):
    requests, end, error = _parser(backend, case).parse(case.raw)
    assert requests == _expected(case)
    assert (error.status if error else None) == case.error
    if error is not None:
        assert isinstance(error, ParseError)
    if requests and error is None and not requests[-1].has_body:
        assert end == len(case.raw) or case.raw[end:] != b""
    if not requests:
        assert end == 0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_table_every_split(backend, case):
    """Every prefix is either incomplete (some of the requests, no error) or already the final
    error after all the requests; never another status, never a different request."""
    parser = _parser(backend, case)
    want = _expected(case)
    full_requests, full_end, _ = parser.parse(case.raw)
    for k in range(len(case.raw)):
        requests, end, error = parser.parse(case.raw[:k])
        assert requests == want[:len(requests)], k
        if error is not None:
            assert (error.status, requests) == (case.error, want), k
        elif requests:
            assert end <= full_end


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray",
                                                                       "memoryview"])
def test_buffer_types_and_start(backend, wrap):
    raw = b"junk" + get(H) + get(H, line=b"GET /2 HTTP/1.0")
    requests, end, error = backend.RequestParser().parse(wrap(raw), 4)
    assert requests == [Request(**req()), Request(**req(target="/2", version=10))]
    assert (end, error) == (len(raw), None)
    for r in requests:
        assert type(r.method) is str and type(r.target) is str
        assert all(type(x) is bytes for x in r.fields)


def test_start_at_end_and_past_leading_crlf(backend):
    raw = get(H)
    assert backend.RequestParser().parse(raw, len(raw)) == ([], len(raw), None)
    assert backend.RequestParser().parse(raw + b"\r\n", len(raw)) == ([], len(raw), None)


def test_end_points_at_body(backend):
    head = get(H, b"Content-Length: 4", line=b"PUT /f HTTP/1.1")
    requests, end, error = backend.RequestParser().parse(get(H) + head + b"body" + get(H))
    assert [r.method for r in requests] == ["GET", "PUT"]
    assert end == len(get(H)) + len(head) and error is None


def test_error_end_is_after_good_requests(backend):
    raw = get(H) + get(H) + b"GET / HTTP/1.1\r\nX : y\r\n\r\n"
    requests, end, error = backend.RequestParser().parse(raw)
    assert len(requests) == 2 and end == 2 * len(get(H)) and error.status == 400


def test_many_pipelined(backend):
    raw = get(H) * 300
    requests, end, error = backend.RequestParser().parse(raw)
    assert len(requests) == 300 and end == len(raw) and error is None


def test_large_head_within_default_limits(backend):
    cookie = b"Cookie: " + b"k=v; " * 1500
    requests, end, error = backend.RequestParser().parse(get(H, cookie))
    assert error is None and requests[0].fields[3] == cookie[8:].rstrip()


def test_default_limits(backend):
    p = backend.RequestParser()
    too_long = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n"
    assert p.parse(too_long)[2].status == 414
    many = get(H, *[b"X: y"] * 100)
    assert p.parse(many)[2].status == 431
    assert p.parse(get(H, *[b"X: y"] * 99))[2] is None
    big = get(H, b"X: " + b"y" * 33000)
    assert p.parse(big)[2].status == 431


def test_methods_are_interned_strings(backend):
    requests, _, _ = backend.RequestParser().parse(get(H) * 2)
    assert requests[0].method is requests[1].method


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH",
                                    "TRACE", "CONNECT", "PROPFIND", "G", "GETS", "get"])
def test_every_method_and_slot(backend, method):
    """The parsers make their Requests without __init__: each is still exactly a Request (the
    connection dispatches on the class) with every slot as __init__ sets it, whether C knows
    the method by number or hands over its text."""
    raw = get(H, b"Content-Length: 3", line=method.encode() + b" /x HTTP/1.1") + b"abc"
    requests, end, error = backend.RequestParser().parse(raw)
    assert [type(r) for r in requests] == [Request] and (end, error) == (len(raw) - 3, None)
    want = Request(**req(method=method, target="/x", content_length=3,
                         fields=[b"host", b"a", b"content-length", b"3"]))
    assert {name: getattr(requests[0], name) for name in Request.__slots__} == {
        name: getattr(want, name) for name in Request.__slots__}


def test_facade_picks_a_backend():
    from reactor.http import parser
    assert parser.BACKEND in ("c", "python")
    assert parser.RequestParser.__module__ == ("reactor.http._cparser" if parser.BACKEND == "c"
                                              else "reactor.http._pyparser")
