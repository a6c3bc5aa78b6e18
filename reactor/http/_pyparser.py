"""The pure-Python request parser and chunked decoder: the twin of csrc/httpparse.c.

It owns nothing the C parser does not also own: the same grammar, limits, error statuses and
error order (see reactor/parser.py for the rules). Complete, valid heads go through a few
whole-head regex passes; anything else (an incomplete head, an error) goes through an exact
left-to-right scan that finds the first offending byte, so both backends report the same status.

Imports only reactor.http.errors, reactor.http.request and reactor.http.limits; never cffi or reactor.http._cparser.
"""

import re
from itertools import chain

from . import limits
from .errors import ParseError
from .request import ABSENT_FIELD, PRECONDITION_FIELDS, UNFILLED, Request, plain_key

_T = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"           # tchar (RFC 9110 §5.6.2)
_V = rb"\x21-\x7e\x80-\xff"                  # visible octets, obs-text included
_W = rb"\t\x20-\x7e\x80-\xff"                # field-value octets: _V plus SP and HTAB

_REQUEST_LINE = re.compile(rb"([%s]+) ([%s]+) HTTP/([0-9])\.([0-9])\r\n" % (_T, _V))
# One field line, OWS trimmed: the lookbehind makes the greedy value give back only trailing
# SP/HTAB, so common values cost no backtracking. `^` (MULTILINE) pins every match to a line
# start, so findall can be checked for gaps by counting LFs.
_FIELD = re.compile(rb"^([%s]+):[ \t]*([%s]*(?<![ \t]))[ \t]*\r\n" % (_T, _W), re.MULTILINE)
# The longest valid prefix of a request line / a field line: the exact scan's yardsticks.
_RL_PREFIX = re.compile(
    rb"(?:[%s]+(?: (?:[%s]+(?: (?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9](?:\r\n?)?)?)?)?)?)?)?)?)?)?)?)?)?"
    % (_T, _V))
_FIELD_PREFIX = re.compile(rb"(?:[%s]+(?::[%s]*(?:\r\n?)?)?)?" % (_T, _W))

_TOKEN = re.compile(rb"[%s]+" % _T)
_DIGITS = re.compile(rb"[0-9]{1,18}")         # 18 digits always fit in an int64
_HOST_BAD = re.compile(rb"[^A-Za-z0-9\-._~!$&'()*+,;=:\[\]%]")

_chain = chain.from_iterable
_bare = object.__new__   # see request.UNFILLED
_SPECIAL = {b"host": 0, b"content-length": 1, b"transfer-encoding": 2, b"connection": 3,
            b"expect": 4}
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
                                     "PATCH", "TRACE", "CONNECT")}


class RequestParser:
    """Parses every complete request head in a buffer; stateless between calls."""

    __slots__ = ("max_request_line", "max_head", "max_headers", "_starts")

    def __init__(self, max_request_line=limits.MAX_REQUEST_LINE, max_head=limits.MAX_HEAD,
                 max_headers=limits.MAX_HEADERS):
        self.max_request_line = max_request_line
        self.max_head = max_head
        self.max_headers = max_headers

    def parse(self, buf, start=0):
        if type(buf) is memoryview:
            buf = buf.tobytes()
        n = len(buf)
        max_head = self.max_head
        requests = []
        pos = start
        while pos < n:
            ls = pos
            while buf.startswith(b"\r\n", ls):
                ls += 2
            he = buf.find(b"\r\n\r\n", ls)
            m = _REQUEST_LINE.match(buf, ls) if 0 <= he <= pos + max_head - 4 else None
            if (m is None or m.end() - 2 - ls > self.max_request_line
                    or m.group(3) != b"1"):
                return requests, pos, self._error(buf, pos)
            rl_end = m.end()
            fe = he + 2
            if rl_end < fe:
                pairs = _FIELD.findall(buf, rl_end, fe)
                if len(pairs) != buf.count(b"\n", rl_end, fe) or len(pairs) > self.max_headers:
                    return requests, pos, self._error(buf, pos)
                fields = list(_chain(pairs))
                fields[0::2] = b"\0".join(fields[0::2]).lower().split(b"\0")
            else:
                fields = []
            version = 10 if m.group(4) == b"0" else 11
            try:
                content_length, chunked, keep_alive, expect = _framing(version, fields)
            except ParseError as error:
                return requests, pos, error
            method = m.group(1)
            request = _bare(Request)
            request.method = _METHODS.get(method) or method.decode("ascii")
            request.target = m.group(2).decode("latin-1")
            request.version = version
            request.fields = fields
            (request.content_length, request.chunked, request.keep_alive,
             request.expect_continue) = content_length, chunked, keep_alive, expect
            request.body, request.client, request.scheme, request.stream = UNFILLED
            requests.append(request)
            pos = he + 4
            if chunked or content_length:
                break
        return requests, pos, None

    def scan_plain(self, buf, length, logged=False):
        """As the C backend's: (keys, end, fields) of the plain requests at the start of
        buf[:length]; plain_start(i) gives where the head of key i begins."""
        buf = bytes(buf[:length])
        requests, _, _ = self.parse(buf)
        keys = []
        fields = [] if logged else None
        starts = self._starts = []
        pos = 0
        for request in requests[:limits.MAX_PLAIN_BATCH]:
            head = request.method == "HEAD"
            accept = request.header_values(b"accept-encoding")
            if (not (head or request.method == "GET") or request.chunked
                    or request.content_length or len(accept) > 1
                    or not PRECONDITION_FIELDS.isdisjoint(request.fields[0::2])):
                break
            keys.append(plain_key(request.target.encode("latin-1"), head,
                                  request.version == 11, request.keep_alive,
                                  accept[0] if accept else None))
            if logged:
                fields += (keys[-1], request.header(b"referer", ABSENT_FIELD),
                           request.header(b"user-agent", ABSENT_FIELD))
            starts.append(pos)
            ls = pos
            while buf.startswith(b"\r\n", ls):
                ls += 2
            pos = buf.find(b"\r\n\r\n", ls) + 4   # where parse() found this head's end
            if not request.keep_alive:
                break
        return (keys, pos, fields) if keys else ((), 0, None)

    def plain_start(self, index: int) -> int:
        return self._starts[index]

    def _error(self, buf, pos):
        status = _exact_error(buf, pos, self.max_request_line, self.max_head, self.max_headers)
        return ParseError(status, _REASONS[status]) if status else None


def _exact_error(buf, pos, max_request_line, max_head, max_headers):
    """Status of the first error scanning buf[pos:] byte by byte, or 0 if it is only incomplete.

    At each byte the checks run in this order: the request-line limit (414: a byte other than
    CR at offset max_request_line of the line), the head limit (431: any byte at offset max_head
    of the head), then syntax (400). 505 comes when the request line is complete, the field
    count (431) when a field line is complete.
    """
    n = len(buf)
    head_limit = pos + max_head
    i = pos
    while True:
        if i >= n:
            return 0
        if i >= head_limit:
            return 431
        if buf[i] != 13:
            break
        status = _after_cr(buf, i, n, head_limit)
        if status is not None:
            return status
        i += 2
    line_limit = i + max_request_line
    e = _RL_PREFIX.match(buf, i).end()
    complete = e > i and buf[e - 1] == 10
    content_end = e - 2 if complete else e
    last = e - 1 if complete else e
    if (line_limit < n and line_limit <= content_end and line_limit <= head_limit
            and buf[line_limit] != 13):
        return 414
    if head_limit < n and head_limit <= last:
        return 431
    if not complete:
        return 400 if e < n else 0
    if buf[e - 5] != 49:   # the major digit of "HTTP/x.y\r\n"
        return 505
    count = 0
    i = e
    while True:
        if i >= n:
            return 0
        if i >= head_limit:
            return 431
        if buf[i] == 13:
            status = _after_cr(buf, i, n, head_limit)
            if status is not None:
                return status
            raise AssertionError("the exact scan accepted a head the fast path refused")
        e = _FIELD_PREFIX.match(buf, i).end()
        complete = e > i and buf[e - 1] == 10
        last = e - 1 if complete else e
        if head_limit < n and head_limit <= last:
            return 431
        if not complete:
            return 400 if e < n else 0
        count += 1
        if count > max_headers:
            return 431
        i = e


def _after_cr(buf, i, n, head_limit):
    """For the CR at buf[i]: None when a LF follows within the head limit, else the status
    (0 while the next byte has not arrived, 431 past the limit, 400 for a bare CR)."""
    if i + 1 >= n:
        return 0
    if i + 1 >= head_limit:
        return 431
    if buf[i + 1] != 10:
        return 400
    return None


_REASONS = {
    400: "malformed request head",
    414: "request line too long",
    431: "request head too large or too many header fields",
    505: "HTTP version not supported",
}


def _framing(version, fields):
    """(content_length, chunked, keep_alive, expect_continue) of a complete, well-formed head.

    The semantic checks, in this fixed order: Host, Transfer-Encoding, Content-Length, Expect.
    """
    found = None
    for i in range(0, len(fields), 2):
        k = _SPECIAL.get(fields[i])
        if k is not None:
            if found is None:
                found = ([], [], [], [], [])
            found[k].append(fields[i + 1])
    if found is None:
        if version == 11:
            raise ParseError(400, "missing Host")
        return None, False, version == 11, False
    hosts, lengths, codings, connection, expect = found

    if version == 11 and not hosts:
        raise ParseError(400, "missing Host")
    if len(hosts) > 1:
        raise ParseError(400, "several Host fields")
    if hosts and _HOST_BAD.search(hosts[0]):
        raise ParseError(400, "invalid Host")

    content_length = None
    chunked = False
    if codings:
        if version == 10:
            raise ParseError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if lengths:
            raise ParseError(400, "both Transfer-Encoding and Content-Length")
        items = [c.strip(b" \t") for value in codings for c in value.split(b",")]
        lowered = [c.lower() for c in items]
        n_chunked = lowered.count(b"chunked")
        if (not all(_TOKEN.fullmatch(c) for c in items) or n_chunked > 1
                or (n_chunked and lowered[-1] != b"chunked")):
            raise ParseError(400, "invalid Transfer-Encoding")
        if n_chunked == 0 or len(lowered) > 1:
            raise ParseError(501, "unsupported transfer coding")
        chunked = True
    elif lengths:
        for value in lengths:
            for item in value.split(b","):
                item = item.strip(b" \t")
                if not _DIGITS.fullmatch(item):
                    raise ParseError(400, "invalid Content-Length")
                if content_length is None:
                    content_length = int(item)
                elif int(item) != content_length:
                    raise ParseError(400, "conflicting Content-Length values")

    expect_continue = False
    for value in expect:
        if value.lower() != b"100-continue":
            raise ParseError(417, "unsupported expectation")
        expect_continue = version == 11

    close = keep = False
    for value in connection:
        for token in value.lower().split(b","):
            token = token.strip(b" \t")
            if token == b"close":
                close = True
            elif token == b"keep-alive":
                keep = True
    return content_length, chunked, not close and (version == 11 or keep), expect_continue


# A chunk-size line (size plus extensions) longer than this is refused: extensions carry
# nothing reactor uses, so a long one is only a way to make the server scan.
MAX_CHUNK_LINE = 4096

# Decoder states; the C decoder has the same machine. _EXT_WS is whitespace (BWS, RFC 9112
# §7.1.1) after the size or a value, where only more of it or ';' may follow; _EXT_NAME_WS is
# whitespace after a name, where '=' may follow too. BWS after ';' and '=' stays in
# _EXT_NAME0 / _EXT_VALUE0. Whitespace before the line's CRLF is still refused.
(_SIZE0, _SIZE, _EXT_NAME0, _EXT_NAME, _EXT_VALUE0, _EXT_TOKEN, _EXT_QUOTED, _EXT_PAIR,
 _EXT_QEND, _EXT_WS, _EXT_NAME_WS, _SIZE_LF, _DATA, _DATA_CR, _DATA_LF, _TR_LINE0, _TR_NAME,
 _TR_VALUE, _TR_LF, _TR_END_LF, _DONE) = range(21)

_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_TCHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_VALUE_CHARS = frozenset(b"\t" + bytes(range(0x20, 0x7f)) + bytes(range(0x80, 0x100)))
_QDTEXT = _VALUE_CHARS - {0x22, 0x5c}
_INT64_MAX = 2**63 - 1


class ChunkedDecoder:
    """Decodes one chunked body incrementally; every byte it is given is consumed until done."""

    __slots__ = ("max_trailers", "_state", "_size", "_digits", "_line", "_trailer")

    def __init__(self, max_trailers=limits.MAX_TRAILERS):
        self.max_trailers = max_trailers
        self._state = _SIZE0
        self._size = 0        # the chunk-size being read, then the data left in the chunk
        self._digits = 0
        self._line = 0        # bytes of the current chunk-size line
        self._trailer = 0     # bytes of the trailer section

    def decode(self, buf, start=0):
        if type(buf) is memoryview:
            buf = buf.tobytes()
        n = len(buf)
        i = start
        out = []
        state = self._state
        while i < n and state != _DONE:
            if state == _DATA:
                take = min(self._size, n - i)
                out.append(buf[i:i + take])
                i += take
                self._size -= take
                if not self._size:
                    state = _DATA_CR
                continue
            if state == _SIZE0:
                m = _CHUNK_LINE.match(buf, i)
                if m is not None:
                    size = int(m.group(1), 16)
                    if size > _INT64_MAX:
                        raise ParseError(400, "chunk size too large")
                    i = m.end()
                    self._size = size
                    state = _DATA if size else _TR_LINE0
                    self._trailer = 0
                    continue
            state = self._step(state, buf[i])
            i += 1
        self._state = state
        return b"".join(out), i - start, state == _DONE

    def _step(self, state, c):
        """The state after byte c: the slow path for chunk-size lines with extensions or split
        across reads, CRLFs after data, and trailers."""
        if state <= _EXT_NAME_WS:
            if state == _SIZE0:
                self._size = self._digits = self._line = 0
            self._line += 1
            if self._line > MAX_CHUNK_LINE and c != 13:
                raise ParseError(400, "chunk-size line too long")
            if state in (_SIZE0, _SIZE) and c in _HEX:
                if self._digits == 16 or self._size > _INT64_MAX >> 4:
                    raise ParseError(400, "chunk size too large")
                self._digits += 1
                self._size = self._size * 16 + int(chr(c), 16)
                return _SIZE
            if state == _SIZE0:
                raise ParseError(400, "invalid chunk size")
            if c == 13 and state in (_SIZE, _EXT_NAME, _EXT_TOKEN, _EXT_QEND):
                return _SIZE_LF
            if c == 59 and state in (_SIZE, _EXT_NAME, _EXT_TOKEN, _EXT_QEND, _EXT_WS,
                                     _EXT_NAME_WS):                                # ';'
                return _EXT_NAME0
            if c == 32 or c == 9:                                                 # BWS
                if state in (_SIZE, _EXT_TOKEN, _EXT_QEND, _EXT_WS):
                    return _EXT_WS
                if state in (_EXT_NAME, _EXT_NAME_WS):
                    return _EXT_NAME_WS
                if state in (_EXT_NAME0, _EXT_VALUE0):
                    return state
            if state in (_EXT_NAME0, _EXT_NAME) and c in _TCHARS:
                return _EXT_NAME
            if state in (_EXT_NAME, _EXT_NAME_WS) and c == 61:                    # '='
                return _EXT_VALUE0
            if state in (_EXT_VALUE0, _EXT_TOKEN) and c in _TCHARS:
                return _EXT_TOKEN
            if state == _EXT_VALUE0 and c == 34:
                return _EXT_QUOTED
            if state == _EXT_QUOTED:
                if c == 34:
                    return _EXT_QEND
                if c == 92:
                    return _EXT_PAIR
                if c in _QDTEXT:
                    return _EXT_QUOTED
            if state == _EXT_PAIR and c in _VALUE_CHARS:
                return _EXT_QUOTED
            raise ParseError(400, "invalid chunk extension")
        if state == _SIZE_LF:
            if c != 10:
                raise ParseError(400, "bare CR in chunk framing")
            self._trailer = 0
            return _DATA if self._size else _TR_LINE0
        if state == _DATA_CR:
            if c != 13:
                raise ParseError(400, "chunk data longer than its size")
            return _DATA_LF
        if state == _DATA_LF:
            if c != 10:
                raise ParseError(400, "bare CR in chunk framing")
            return _SIZE0
        self._trailer += 1
        if self._trailer > self.max_trailers:
            raise ParseError(400, "trailer section too large")
        if state == _TR_LINE0:
            if c == 13:
                return _TR_END_LF
            if c in _TCHARS:
                return _TR_NAME
        elif state == _TR_NAME:
            if c in _TCHARS:
                return _TR_NAME
            if c == 58:
                return _TR_VALUE
        elif state == _TR_VALUE:
            if c == 13:
                return _TR_LF
            if c in _VALUE_CHARS:
                return _TR_VALUE
        elif c == 10:
            return _TR_LINE0 if state == _TR_LF else _DONE
        raise ParseError(400, "invalid trailer section")
