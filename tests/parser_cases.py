"""The shared table of raw request bytes and what both parser backends must make of them.

Each Case is raw bytes, the requests expected (as keyword dicts for Request), and the error
status expected after them (or None). Cases may set small limits so that limit edges stay
cheap to test at every split point. Imports only reactor.http.limits; the tests import this.
"""

from dataclasses import dataclass, field

from reactor.http import limits


def req(method="GET", target="/", version=11, fields=(b"host", b"a"), content_length=None,
        chunked=False, keep_alive=None, expect_continue=False):
    return dict(method=method, target=target, version=version, fields=list(fields),
                content_length=content_length, chunked=chunked,
                keep_alive=(version == 11) if keep_alive is None else keep_alive,
                expect_continue=expect_continue)


@dataclass
class Case:
    name: str
    raw: bytes
    requests: list = field(default_factory=list)
    error: int | None = None
    max_request_line: int = limits.MAX_REQUEST_LINE
    max_head: int = limits.MAX_HEAD
    max_headers: int = limits.MAX_HEADERS


def get(*lines, line=b"GET / HTTP/1.1"):
    return line + b"\r\n" + b"".join(x + b"\r\n" for x in lines) + b"\r\n"


H = b"Host: a"
CASES = [
    # --- accepted heads
    Case("minimal", get(H), [req()]),
    Case("http10 without host", get(line=b"GET / HTTP/1.0"), [req(version=10, fields=())]),
    Case("higher minor is 1.1", get(H, line=b"GET / HTTP/1.9"), [req()]),
    Case("extension method", get(H, line=b"PROPFIND /x HTTP/1.1"), [req("PROPFIND", "/x")]),
    Case("lower-case method kept", get(H, line=b"get / HTTP/1.1"), [req("get")]),
    Case("absolute-form target", get(H, line=b"GET http://a/b?c HTTP/1.1"),
         [req(target="http://a/b?c")]),
    Case("obs-text target as latin-1", get(H, line=b"GET /\xe9\xff HTTP/1.1"),
         [req(target="/\xe9\xff")]),
    Case("names lower-cased, values kept", get(b"HOST: A", b"X-Thing: MiXed"),
         [req(fields=(b"host", b"A", b"x-thing", b"MiXed"))]),
    Case("OWS trimmed", get(b"Host:a", b"X: \t v  w \t "),
         [req(fields=(b"host", b"a", b"x", b"v  w"))]),
    Case("empty value", get(H, b"X:", b"Y:   "), [req(fields=(b"host", b"a", b"x", b"", b"y", b""))]),
    Case("obs-text value", get(H, b"X: caf\xc3\xa9\x80"),
         [req(fields=(b"host", b"a", b"x", b"caf\xc3\xa9\x80"))]),
    Case("leading empty lines skipped", b"\r\n\r\n" + get(H), [req()]),
    Case("empty host allowed", get(b"Host:"), [req(fields=(b"host", b""))]),
    Case("ip-literal host", get(b"Host: [::1]:8080"), [req(fields=(b"host", b"[::1]:8080"))]),
    Case("content-length", get(H, b"Content-Length: 5", line=b"POST / HTTP/1.1") + b"hello",
         [req("POST", fields=(b"host", b"a", b"content-length", b"5"), content_length=5)]),
    Case("content-length zero continues", get(H, b"Content-Length: 0") + get(H),
         [req(fields=(b"host", b"a", b"content-length", b"0"), content_length=0), req()]),
    Case("content-length list of equal values", get(H, b"Content-Length: 5, 5,005"),
         [req(fields=(b"host", b"a", b"content-length", b"5, 5,005"), content_length=5)]),
    Case("content-length repeated equal", get(H, b"Content-Length: 7", b"content-length: 7"),
         [req(fields=(b"host", b"a", b"content-length", b"7", b"content-length", b"7"),
              content_length=7)]),
    Case("content-length 18 digits", get(H, b"Content-Length: 999999999999999999"),
         [req(fields=(b"host", b"a", b"content-length", b"999999999999999999"),
              content_length=999999999999999999)]),
    Case("chunked", get(H, b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.1"),
         [req("POST", fields=(b"host", b"a", b"transfer-encoding", b"chunked"), chunked=True)]),
    Case("chunked any case, spaces", get(H, b"Transfer-Encoding:  CHUNKED "),
         [req(fields=(b"host", b"a", b"transfer-encoding", b"CHUNKED"), chunked=True)]),
    Case("connection close", get(H, b"Connection: close"),
         [req(fields=(b"host", b"a", b"connection", b"close"), keep_alive=False)]),
    Case("connection list with Close", get(H, b"Connection: upgrade, Close"),
         [req(fields=(b"host", b"a", b"connection", b"upgrade, Close"), keep_alive=False)]),
    Case("1.0 keep-alive", get(b"Connection: Keep-Alive", line=b"GET / HTTP/1.0"),
         [req(version=10, fields=(b"connection", b"Keep-Alive"), keep_alive=True)]),
    Case("1.0 keep-alive and close", get(b"Connection: keep-alive, close", line=b"GET / HTTP/1.0"),
         [req(version=10, fields=(b"connection", b"keep-alive, close"), keep_alive=False)]),
    Case("1.0 keep-alive over two fields",
         get(b"Connection: foo", b"Connection: ,keep-alive", line=b"GET / HTTP/1.0"),
         [req(version=10, fields=(b"connection", b"foo", b"connection", b",keep-alive"),
              keep_alive=True)]),
    Case("expect 100-continue", get(H, b"Expect: 100-Continue"),
         [req(fields=(b"host", b"a", b"expect", b"100-Continue"), expect_continue=True)]),
    Case("expect ignored on 1.0", get(b"Expect: 100-continue", line=b"GET / HTTP/1.0"),
         [req(version=10, fields=(b"expect", b"100-continue"))]),
    Case("pipelined", get(H) + get(H, line=b"HEAD /2 HTTP/1.1"), [req(), req("HEAD", "/2")]),
    Case("pipelined, incomplete second", get(H) + b"GET /2 HTTP/1.1\r\nHo", [req()]),
    Case("stops after a head with a body",
         get(H, b"Content-Length: 3", line=b"POST / HTTP/1.1") + b"abc" + get(H),
         [req("POST", fields=(b"host", b"a", b"content-length", b"3"), content_length=3)]),
    Case("good request, then a bad one", get(H) + b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
         [req()], 400),
    Case("good request, then a semantic error", get(H) + get(), [req()], 400),
    Case("incomplete request line", b"GET /index.ht"),
    Case("incomplete version", b"GET / HTTP/1."),
    Case("incomplete after CR", b"GET / HTTP/1.1\r\nHost: a\r"),
    Case("incomplete before final LF", b"GET / HTTP/1.1\r\nHost: a\r\n\r"),
    Case("only empty lines", b"\r\n\r\n\r"),
    Case("empty", b""),

    # --- request line
    Case("two spaces after method", get(H, line=b"GET  / HTTP/1.1"), error=400),
    Case("trailing space after version", get(H, line=b"GET / HTTP/1.1 "), error=400),
    Case("tab in target", get(H, line=b"GET /a\tb HTTP/1.1"), error=400),
    Case("DEL in target", get(H, line=b"GET /a\x7f HTTP/1.1"), error=400),
    Case("NUL in target", b"GET /\x00", error=400),
    Case("non-token method", get(H, line=b"G(T / HTTP/1.1"), error=400),
    Case("empty method", get(H, line=b" / HTTP/1.1"), error=400),
    Case("missing version", get(H, line=b"GET /"), error=400),
    Case("missing target", get(H, line=b"GET  HTTP/1.1"), error=400),
    Case("lower-case http", get(H, line=b"GET / http/1.1"), error=400),
    Case("HTTP/1.32", get(H, line=b"GET / HTTP/1.32"), error=400),
    Case("HTTP/1.1x", get(H, line=b"GET / HTTP/1.1x"), error=400),
    Case("HTTP/11", get(H, line=b"GET / HTTP/11"), error=400),
    Case("HTTP/1", get(H, line=b"GET / HTTP/1"), error=400),
    Case("HTTP/2.0", get(H, line=b"GET / HTTP/2.0"), error=505),
    Case("HTTP/0.9", get(H, line=b"GET / HTTP/0.9"), error=505),
    Case("505 before the head is complete", b"GET / HTTP/3.0\r\nHo", error=505),
    Case("HTTP/2.0x is syntax", b"GET / HTTP/2.0x", error=400),
    Case("syntax error before the head completes", b"GET /\x01", error=400),
    Case("bare LF after request line", b"GET / HTTP/1.1\nHost: a\n\n", error=400),
    Case("bare CR after request line", b"GET / HTTP/1.1\rHost: a\r\n\r\n", error=400),
    Case("leading bare LF", b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", error=400),
    Case("leading bare CR", b"\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", error=400),
    Case("leading space", b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", error=400),

    # --- field lines
    Case("space before colon (Content-Length : 5)", get(H, b"Content-Length : 5"), error=400),
    Case("tab before colon", get(H, b"Host\t: a"), error=400),
    Case("leading whitespace before the first header", get(b" Host: a"), error=400),
    Case("obs-fold", get(H, b"X: a", b"  continued"), error=400),
    Case("obs-fold with tab", get(H, b"X: a", b"\tcontinued"), error=400),
    Case("empty field name", get(H, b": x"), error=400),
    Case("no colon", get(H, b"Xyz"), error=400),
    Case("non-token name", get(H, b"X[y]: z"), error=400),
    Case("LF inside a value", get(H, b"X: a\nb"), error=400),
    Case("bare LF ending a field", b"GET / HTTP/1.1\r\nHost: a\n\r\n", error=400),
    Case("bare CR inside a value", get(H, b"X: a\rb"), error=400),
    Case("NUL in value", get(H, b"X: a\x00b"), error=400),
    Case("other CTL in value", get(H, b"X: a\x0bb"), error=400),
    Case("DEL in value", get(H, b"X: a\x7f"), error=400),
    Case("bad byte in an incomplete value", b"GET / HTTP/1.1\r\nX: a\x01", error=400),
    Case("CR then junk at head end", b"GET / HTTP/1.1\r\nHost: a\r\n\rX", error=400),
    Case("LF alone ending the head", b"GET / HTTP/1.1\r\nHost: a\r\n\n", error=400),

    # --- Host
    Case("1.1 without Host", get(), error=400),
    Case("two Host fields", get(H, b"Host: b"), error=400),
    Case("Host with space", get(b"Host: a b"), error=400),
    Case("Host with slash", get(b"Host: a/b"), error=400),
    Case("Host with at", get(b"Host: u@a"), error=400),
    Case("two Host fields on 1.0", get(H, H, line=b"GET / HTTP/1.0"), error=400),

    # --- Content-Length
    Case("CL 0x prefix", get(H, b"Content-Length: 0x5"), error=400),
    Case("CL hex", get(H, b"Content-Length: 5a"), error=400),
    Case("CL negative", get(H, b"Content-Length: -5"), error=400),
    Case("CL plus sign", get(H, b"Content-Length: +5"), error=400),
    Case("CL underscore", get(H, b"Content-Length: 1_0"), error=400),
    Case("CL space inside", get(H, b"Content-Length: 1 0"), error=400),
    Case("CL empty", get(H, b"Content-Length:"), error=400),
    Case("CL empty element", get(H, b"Content-Length: 5,,5"), error=400),
    Case("CL trailing comma", get(H, b"Content-Length: 5,"), error=400),
    Case("CL differing list", get(H, b"Content-Length: 5, 6"), error=400),
    Case("CL differing fields", get(H, b"Content-Length: 5", b"Content-Length: 6"), error=400),
    Case("CL 19 digits", get(H, b"Content-Length: 1000000000000000000"), error=400),
    Case("CL overflow", get(H, b"Content-Length: 99999999999999999999999"), error=400),
    Case("CL float", get(H, b"Content-Length: 5.0"), error=400),

    # --- Transfer-Encoding
    Case("TE and CL", get(H, b"Transfer-Encoding: chunked", b"Content-Length: 5"), error=400),
    Case("CL and TE", get(H, b"Content-Length: 5", b"Transfer-Encoding: chunked"), error=400),
    Case("TE xchunked", get(H, b"Transfer-Encoding: xchunked"), error=501),
    Case("TE gzip", get(H, b"Transfer-Encoding: gzip"), error=501),
    Case("TE identity", get(H, b"Transfer-Encoding: identity"), error=501),
    Case("TE gzip, chunked", get(H, b"Transfer-Encoding: gzip, chunked"), error=501),
    Case("TE chunked, identity", get(H, b"Transfer-Encoding: chunked, identity"), error=400),
    Case("TE chunked twice", get(H, b"Transfer-Encoding: chunked, chunked"), error=400),
    Case("TE chunked in two fields",
         get(H, b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"), error=400),
    Case("TE split over fields, chunked last",
         get(H, b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"), error=501),
    Case("TE empty", get(H, b"Transfer-Encoding:"), error=400),
    Case("TE empty element", get(H, b"Transfer-Encoding: , chunked"), error=400),
    Case("TE with parameter", get(H, b"Transfer-Encoding: chunked;q=1"), error=400),
    Case("TE with inner space", get(H, b"Transfer-Encoding: chun ked"), error=400),
    Case("TE folded ( chunked)", get(H, b" Transfer-Encoding: chunked"), error=400),
    Case("TE with vertical tab", get(H, b"Transfer-Encoding:\x0bchunked"), error=400),
    Case("TE on HTTP/1.0", get(b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.0"),
         error=400),
    Case("TE space before colon", get(H, b"Transfer-Encoding : chunked"), error=400),

    # --- Expect
    Case("expect other", get(H, b"Expect: 200-ok"), error=417),
    Case("expect list", get(H, b"Expect: 100-continue, x"), error=417),
    Case("expect empty", get(H, b"Expect:"), error=417),

    # --- semantic order: Host, TE, CL, Expect
    Case("no Host beats TE", get(b"Transfer-Encoding: gzip"), error=400),
    Case("TE beats Expect", get(H, b"Expect: x", b"Transfer-Encoding: gzip"), error=501),
    Case("CL beats Expect", get(H, b"Expect: x", b"Content-Length: x"), error=400),

    # --- limits (small, so every split point stays cheap)
    Case("request line at the limit", get(H, line=b"GET /" + b"a" * 5 + b" HTTP/1.1"),
         [req(target="/aaaaa")], max_request_line=19),
    Case("request line over the limit", get(H, line=b"GET /" + b"a" * 6 + b" HTTP/1.1"),
         error=414, max_request_line=19),
    Case("incomplete request line over the limit", b"GET /" + b"a" * 40, error=414,
         max_request_line=19),
    Case("syntax error before the line limit", b"GET /\x01" + b"a" * 40, error=400,
         max_request_line=19),
    Case("line limit before later syntax error", b"GET /" + b"a" * 20 + b"\x01", error=414,
         max_request_line=19),
    Case("empty lines do not count for the line limit", b"\r\n" * 5 + get(H), [req()],
         max_request_line=14),
    Case("empty lines count for the head limit", b"\r\n" + get(H), error=431, max_head=27),
    Case("head at the limit", get(H), [req()], max_head=27),
    Case("head over the limit", get(H, b"X: y"), error=431, max_head=30),
    Case("incomplete head over the limit", b"GET / HTTP/1.1\r\nX: " + b"y" * 40, error=431,
         max_head=30),
    Case("head limit at the final LF", get(H), error=431, max_head=26),
    Case("head limit in the second request", get(H) + get(H, b"X: yy"), [req()], 431,
         max_head=30),
    Case("fields at the limit", get(H, b"A: 1", b"B: 2"),
         [req(fields=(b"host", b"a", b"a", b"1", b"b", b"2"))], max_headers=3),
    Case("fields over the limit", get(H, b"A: 1", b"B: 2", b"C: 3"), error=431, max_headers=3),
    Case("fields over the limit, incomplete", b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n",
         error=431, max_headers=2),
    Case("syntax error in the field over the limit", get(H, b"A: 1", b"B:\x01"), error=400,
         max_headers=2),
    Case("request line limit on a short head limit", b"GET /aaaaaaaaaaaaaaaaaaaaaaaaa",
         error=414, max_request_line=10, max_head=10),
    Case("head limit before the line limit", b"GET /" + b"a" * 30, error=431,
         max_request_line=20, max_head=10),
    Case("CR allowed exactly at the line limit", b"GET / HTTP/1.1\r\n\r\n", error=400,
         max_request_line=14),
]
