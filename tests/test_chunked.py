"""The chunked-body decoder of both backends: a table of bodies, decoded whole, at every
split point (the caller keeping the unconsumed rest, as the protocol does) and byte by byte."""

import pytest

from reactor.http.errors import ParseError

OK = [
    # (raw, decoded payload, bytes left over after the body)
    (b"0\r\n\r\n", b"", b""),
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello", b""),
    (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n", b"hello world",
     b"GET / HTTP/1.1\r\n"),
    (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", b""),
    (b"a\r\n0123456789\r\n00\r\n\r\n", b"0123456789", b""),
    (b"000000000000003\r\nabc\r\n0\r\n\r\n", b"abc", b""),
    (b"3;ext\r\nabc\r\n0\r\n\r\n", b"abc", b""),
    (b"3;a=b;c=\"q \\\" d\"\r\nabc\r\n0;last\r\n\r\n", b"abc", b""),
    (b"3;a=\"\"\r\nabc\r\n0\r\n\r\n", b"abc", b""),
    # BWS around ';' and '=' (RFC 9112 §7.1.1), spaces and tabs alike
    (b"3 ;a\r\nabc\r\n0\r\n\r\n", b"abc", b""),
    (b"3; a = b ;\tc\t=\t\"q\" ; d\r\nabc\r\n0 \t; last\r\n\r\n", b"abc", b""),
    (b"3;a =\"x\"  ;b\r\nabc\r\n0\r\n\r\n", b"abc", b""),
    (b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n", b""),
    (b"0\r\nX-Trailer: v\r\nOther:\r\n\r\nnext", b"", b"next"),
    (b"0\r\nChecksum: \x80\xff\t v\r\n\r\n", b"", b""),
    (b"7fffffffffffffff\r\n", None, None),  # valid size; the body is simply not complete
]

BAD = [
    b"\r\n",                      # missing size
    b"0x5\r\nhello\r\n0\r\n\r\n",
    b"-5\r\n",
    b"+5\r\n",
    b"5_0\r\n",
    b" 5\r\n",
    b"5 \r\n",
    b"5\t\r\n",
    b"g\r\n",
    b"5\nhello\r\n0\r\n\r\n",     # bare LF after size
    b"5\rhello",                  # bare CR after size
    b"5\r\nhelloX\r\n",           # data longer than its size
    b"5\r\nhello\n0\r\n\r\n",     # bare LF after data
    b"5\r\nhello\r0\r\n\r\n",
    b"8000000000000000\r\n",      # past 2^63-1
    b"ffffffffffffffff\r\n",
    b"00000000000000001\r\n",     # 17 hex digits
    b"5;\r\n",                    # empty extension name
    b"5;=x\r\n",
    b"5;a=\r\n",
    b"5;a b\r\n",
    b"5 ;\r\n",                  # BWS, then no name
    b"5; \r\n",
    b"5;a \r\n",                 # whitespace before the CRLF is not BWS
    b"5;a= \r\n",
    b"5;a=b \r\n",
    b"5;a=\"x\" \r\n",
    b"5 a\r\n",                  # whitespace not followed by ';'
    b"5;a b=c\r\n",
    b"5;a=b c\r\n",
    b"5 \x0b;a\r\n",             # only SP and HTAB are whitespace
    b"5;a=\"x\r\n",               # CR inside a quoted string
    b"5;a=\"x\"y\r\n",
    b"5;a=\"\x01\"\r\n",
    b"0\r\n X: y\r\n\r\n",        # folded trailer
    b"0\r\nX : y\r\n\r\n",
    b"0\r\n: y\r\n\r\n",
    b"0\r\nX: a\x00\r\n\r\n",
    b"0\r\nX: a\nb\r\n\r\n",
    b"0\r\nX: y\n\r\n",
    b"0\r\nX: y\r\n\n",
    b"0\r\n\rX",
    b"0\r\nX\r\n\r\n",
    b"5;" + b"a" * 5000 + b"\r\n",
]


def feed(decoder, pieces):
    """Feed pieces as a connection would: keep what was not consumed and add the next piece.
    Returns (payload, rest, done)."""
    data, buf = [], b""
    for i, piece in enumerate(pieces):
        buf += piece
        out, used, done = decoder.decode(bytearray(b"xx" + buf), 2)
        data.append(out)
        buf = buf[used:]
        if done:
            return b"".join(data), buf + b"".join(pieces[i + 1:]), True
    return b"".join(data), buf, False


def _id(value):
    return repr(value)[:40] if isinstance(value, bytes) else None


def _splits(raw):
    """Every split point of short inputs; about a hundred of long ones."""
    return range(1, len(raw), max(1, len(raw) // 100))


@pytest.mark.parametrize("raw,payload,rest", OK, ids=_id)
def test_ok(backend, raw, payload, rest):
    decoded, left, done = feed(backend.ChunkedDecoder(), [raw])
    if payload is None:
        assert not done and left == b""
        return
    assert (decoded, left, done) == (payload, rest, True)
    for k in _splits(raw):
        assert feed(backend.ChunkedDecoder(), [raw[:k], raw[k:]]) == (payload, rest, True), k
    assert feed(backend.ChunkedDecoder(), [raw[i:i + 1] for i in range(len(raw))]) == (
        payload, rest, True)


@pytest.mark.parametrize("raw", BAD, ids=_id)
def test_bad(backend, raw):
    with pytest.raises(ParseError) as info:
        feed(backend.ChunkedDecoder(), [raw])
    assert info.value.status == 400
    for k in _splits(raw):
        with pytest.raises(ParseError):
            feed(backend.ChunkedDecoder(), [raw[:k], raw[k:]])


def test_trailer_limit(backend):
    trailer = b"0\r\n" + b"X: " + b"y" * 20 + b"\r\n\r\n"  # 27 bytes of trailer section
    assert feed(backend.ChunkedDecoder(max_trailers=27), [trailer])[2]
    with pytest.raises(ParseError):
        feed(backend.ChunkedDecoder(max_trailers=26), [trailer])


def test_chunk_line_limit(backend):
    ext = b";" + b"a" * (backend.MAX_CHUNK_LINE - 2)  # size digit + ext = the limit exactly
    assert feed(backend.ChunkedDecoder(), [b"1" + ext + b"\r\nx\r\n0\r\n\r\n"]) == (
        b"x", b"", True)
    with pytest.raises(ParseError):
        feed(backend.ChunkedDecoder(), [b"1" + ext + b"a\r\nx\r\n0\r\n\r\n"])


def test_large_body_memoryview(backend):
    body = bytes(range(256)) * 4096
    raw = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    out, used, done = backend.ChunkedDecoder().decode(memoryview(raw))
    assert (out, used, done) == (body, len(raw), True)


def test_done_consumes_nothing_more(backend):
    d = backend.ChunkedDecoder()
    assert d.decode(b"0\r\n\r\nrest") == (b"", 5, True)
    assert d.decode(b"rest") == (b"", 0, True)
