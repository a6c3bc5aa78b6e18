"""Hypothesis: the C and Python backends agree (same requests, end and error status, same
chunked payloads and errors) on generated requests and on random mutations of them."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactor.http import _pyparser
from reactor.http.errors import ParseError
from reactor.http.request import ABSENT_FIELD, split_plain_key

cparser = pytest.importorskip("reactor.http._cparser", reason="C extension not built")

SETTINGS = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

METHODS = [b"GET", b"POST", b"HEAD", b"PROPFIND", b"G@T", b"", b"get"]
TARGETS = [b"/", b"/a?b=c", b"*", b"http://h/x", b"/\xff\x80", b"/a b", b"", b"/\x7f"]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.9", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.32",
            b"http/1.1", b"HTTP/1.1x", b"HTTP/1"]
NAMES = [b"Host", b"host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect",
         b"X-A", b"Cookie", b"Content-Length ", b" Host", b"", b"X\x00"]
VALUES = [b"a", b"", b"  5 ", b"5", b"5, 5", b"5,6", b"0x5", b"-1", b"+1", b"chunked",
          b"CHUNKED", b"gzip, chunked", b"chunked, identity", b"close", b"keep-alive",
          b"Keep-Alive, close", b"100-continue", b"100-Continue", b"foo", b"[::1]:80",
          b"a b", b"\tx\t", b"\xc3\xa9", b"a\x00b", b"99999999999999999999", b"1" * 18,
          b"x" * 40, b"chunked,", b"a\rb", b"a\nb"]
EOLS = [b"\r\n"] * 12 + [b"\n", b"\r", b"\r\r\n"]


@st.composite
def head(draw):
    eol = lambda: draw(st.sampled_from(EOLS))  # noqa: E731
    line = (draw(st.sampled_from(METHODS)) + b" " + draw(st.sampled_from(TARGETS)) + b" "
            + draw(st.sampled_from(VERSIONS)))
    fields = b"".join(draw(st.sampled_from(NAMES)) + b":" + draw(st.sampled_from([b"", b" "]))
                      + draw(st.sampled_from(VALUES)) + eol()
                      for _ in range(draw(st.integers(0, 6))))
    return draw(st.sampled_from([b"", b"\r\n"])) + line + eol() + fields + eol()


@st.composite
def mutated(draw, base):
    raw = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        kind = draw(st.integers(0, 2))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 44, 58, 59, 127, 128, 255, 65, 48]))
        if kind == 0:
            raw[i] = byte
        elif kind == 1:
            del raw[i]
        else:
            raw.insert(i, byte)
    return bytes(raw)


LIMITS = st.sampled_from([{}, dict(max_request_line=12, max_head=40, max_headers=2),
                          dict(max_request_line=30, max_head=60, max_headers=4)])


def outcome(module, raw, limits):
    requests, end, error = module.RequestParser(**limits).parse(raw)
    return requests, end, error and error.status


@SETTINGS
@given(st.lists(mutated(head()), min_size=1, max_size=3), LIMITS)
def test_heads_agree(heads, limits):
    raw = b"".join(heads)
    want = outcome(_pyparser, raw, limits)
    assert outcome(cparser, raw, limits) == want
    cut = len(raw) // 2
    assert outcome(cparser, raw[:cut], limits) == outcome(_pyparser, raw[:cut], limits)


@st.composite
def chunked_body(draw):
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.binary(max_size=20))
        ext = draw(st.sampled_from([b"", b";a", b";a=b", b';a="x\\"y"', b";", b"; a"]))
        size = draw(st.sampled_from([b"%x" % len(data), b"%X" % len(data), b"0%x" % len(data)]))
        parts.append(size + ext + b"\r\n" + data + b"\r\n")
    trailer = draw(st.sampled_from([b"", b"X: y\r\n", b"A:\r\nB: c d\r\n", b" X: y\r\n"]))
    return b"".join(parts) + b"0\r\n" + trailer + b"\r\n" + draw(st.sampled_from([b"", b"GET"]))


def decode(module, raw, cut):
    d = module.ChunkedDecoder(max_trailers=16)
    try:
        out1, used1, done1 = d.decode(raw[:cut])
        rest = raw[used1:]
        out2, used2, done2 = d.decode(rest) if not done1 else (b"", 0, True)
    except ParseError as error:
        return "error", error.status
    return out1 + out2, used1 + used2, done2


@SETTINGS
@given(mutated(chunked_body()), st.integers(0, 200))
def test_chunked_agree(raw, cut):
    cut = min(cut, len(raw))
    assert decode(cparser, raw, cut) == decode(_pyparser, raw, cut)


PLAIN_METHODS = [b"GET", b"HEAD", b"POST", b"get"]
PLAIN_FIELDS = [b"Host: a", b"Connection: close", b"Connection: keep-alive", b"Range: bytes=0-1",
                b"if-none-match: x", b"If-Modified-Since: y", b"IF-RANGE: z", b"If-Match: *",
                b"If-Unmodified-Since: w", b"Accept-Encoding: gzip", b"accept-encoding:  br, gzip ",
                b"Accept-Encoding:", b"Content-Length: 0",
                b"Content-Length: 2", b"Transfer-Encoding: chunked", b"X-Range: 1",
                b"Referer: http://a/", b"referer:", b"User-Agent:  ua/1 (x) ", b"USER-AGENT: b"]


@st.composite
def plain_head(draw):
    line = (draw(st.sampled_from(PLAIN_METHODS)) + b" " + draw(st.sampled_from(TARGETS[:5]))
            + b" " + draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"])) + b"\r\n")
    fields = draw(st.lists(st.sampled_from(PLAIN_FIELDS), max_size=3))
    return (draw(st.sampled_from([b"", b"\r\n"])) + line
            + b"".join(f + b"\r\n" for f in fields) + b"\r\n")


def plain_outcome(module, raw, limits, logged):
    parser = module.RequestParser(**limits)
    buf = bytearray(raw)   # the server scans its receive buffer
    keys, end, fields = parser.scan_plain(buf, len(raw), logged)
    return (list(keys), end, [parser.plain_start(i) for i in range(len(keys))],
            None if fields is None else list(fields))


@SETTINGS
@given(st.lists(st.one_of(plain_head(), mutated(plain_head())), min_size=1, max_size=5),
       st.sampled_from([{}, dict(max_request_line=20, max_head=60, max_headers=2)]),
       st.booleans())
def test_plain_scans_agree(heads, limits, logged):
    raw = b"".join(heads)
    want = plain_outcome(_pyparser, raw, limits, logged)
    assert plain_outcome(cparser, raw, limits, logged) == want
    assert plain_outcome(cparser, raw + b"GET", limits, logged) == want   # incomplete after


def test_plain_scan_describes_what_parse_finds():
    raw = (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
           b"\r\nHEAD /b?c HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
           b"GET /c HTTP/1.1\r\nHost: x\r\nRange: bytes=1-\r\n\r\n")
    for module in (_pyparser, cparser):
        parser = module.RequestParser()
        keys, end, fields = parser.scan_plain(raw, len(raw))
        assert keys == [b"/a\x07", b"/b?c\x06"] and fields is None
        assert [parser.plain_start(i) for i in range(2)] == [0, 28]
        requests, _, _ = parser.parse(raw, end)
        assert requests[0].target == "/c"
        closing = b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
        keys, end, _ = parser.scan_plain(closing, len(closing))
        assert keys == [b"/a\x03"] and end == closing.index(b"GET /b")
        assert parser.scan_plain(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 27) == ((), 0, None)
        coded = (b"GET /a HTTP/1.1\r\nAccept-Encoding:  gzip, br \r\nHost: x\r\n\r\n"
                 b"GET /a HTTP/1.1\r\nAccept-Encoding:\r\nHost: x\r\n\r\n"
                 b"GET /a HTTP/1.1\r\nAccept-Encoding: br\r\nAccept-Encoding: gzip\r\n"
                 b"Host: x\r\n\r\n")
        keys, end, _ = parser.scan_plain(coded, len(coded))
        assert keys == [b"/a\x0fgzip, br", b"/a\x0f"]
        assert [split_plain_key(key) for key in keys] == [
            (b"/a", False, 11, True, b"gzip, br"), (b"/a", False, 11, True, b"")]
        logged = (b"GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent: ua/1\r\nReferer: r\r\n\r\n"
                  b"GET /b HTTP/1.1\r\nHost: x\r\nReferer:\r\n\r\n")
        keys, _, fields = parser.scan_plain(logged, len(logged), True)
        assert keys == fields[0::3] == [b"/a\x07", b"/b\x07"]
        assert fields[1::3] == [b"r", b""] and fields[2::3] == [b"ua/1", ABSENT_FIELD]
