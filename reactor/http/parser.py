"""The request parser the server uses: picks the C backend or its pure-Python twin.

Exposes RequestParser, ChunkedDecoder and BACKEND ("c" or "python"). The C backend
(reactor.http._cparser, the only module that touches cffi) is used unless REACTOR_NO_EXTENSIONS=1
is set or the compiled extension is missing; then a one-line warning says so and
reactor.http._pyparser is used. Imports nothing else from reactor.

    p = RequestParser(max_request_line=..., max_head=..., max_headers=...)
    requests, end, error = p.parse(buf, start=0)
    data, consumed, done = ChunkedDecoder(max_trailers=...).decode(buf, start=0)

parse() returns every complete head from `start` on, stopping after a head with a body
(chunked, or Content-Length > 0), at an incomplete head, or at the first error; `end` is the
offset just past the last head returned and `error` a ParseError for the head after them.

The rules, identical in both backends (RFC 9112 §2-§7, RFC 9110 §5):

- Line endings: CRLF only. A bare LF or a bare CR anywhere in a head or in chunk framing is a
  400, never a line ending: two parsers that disagree on line ends are how requests get
  smuggled, and no client of ours needs bare LF. Empty lines (CRLF) before the request line
  are skipped and count toward the head size.
- Request line: method = 1*tchar, one SP, target = 1*(0x21-0x7E / 0x80-0xFF), one SP,
  `HTTP/` DIGIT `.` DIGIT. HTTP/1.0 is version 10, HTTP/1.1 and higher minors 11; another major
  version is a 505 once the line is complete; anything else is a 400.
- Field line: 1*tchar, then `:` at once, then a value of HTAB / SP / 0x21-0x7E / 0x80-0xFF,
  trimmed of SP/HTAB. A line that starts with SP or HTAB (obs-fold) is a 400.
- Limits, checked at every byte before its syntax: a byte other than CR at offset
  max_request_line of the request line is a 414; any byte at offset max_head of the head is
  a 431; a field line beyond max_headers is a 431 when it completes. So a head that is not yet
  complete still gets its error as soon as the bytes show it.
- Then the semantic checks on the complete head, in this order:
  1. Host: HTTP/1.1 without Host, two Host fields, or a Host value with bytes outside
     A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , ; = : [ ] % -> 400 (an empty Host is allowed).
  2. Transfer-Encoding (all TE fields as one list): in HTTP/1.0, together with Content-Length,
     an empty or non-token element, `chunked` twice or not last -> 400; any coding other than
     one single `chunked` -> 501.
  3. Content-Length: comma lists and repeated fields must all be 1-18 digits of equal value,
     else 400.
  4. Expect: `100-continue` (any case) sets expect_continue on HTTP/1.1 and is ignored on
     HTTP/1.0; any other value -> 417.
  keep_alive is (1.1 and no `close`) or (1.0 with `keep-alive` and no `close`).
- Chunked bodies: chunk-size = 1-16 HEXDIG no larger than 2^63-1, optional `;name[=value]`
  extensions (token or quoted-string values, the line at most MAX_CHUNK_LINE bytes), CRLF after
  the size line and after the data; the last chunk `0` is followed by trailer fields (same
  rules as header fields, at most max_trailers bytes, discarded) and CRLF. Anything else -> 400.
"""

import os
import sys

if os.environ.get("REACTOR_NO_EXTENSIONS") == "1":
    _why = "REACTOR_NO_EXTENSIONS=1 is set"
else:
    try:
        from ._cparser import MAX_CHUNK_LINE, ChunkedDecoder, RequestParser
        _why = None
    except ImportError as error:
        _why = f"the C extension is not available ({error})"

if _why is None:
    BACKEND = "c"
else:
    from ._pyparser import MAX_CHUNK_LINE, ChunkedDecoder, RequestParser
    BACKEND = "python"
    # One line on stderr, not warnings.warn: that prints the importing source line as well.
    print(f"reactor: using the pure-Python parser ({_why})", file=sys.stderr)

__all__ = ["BACKEND", "MAX_CHUNK_LINE", "ChunkedDecoder", "RequestParser"]
