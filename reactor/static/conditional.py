"""Validators and preconditions (RFC 9110 §8.8, §13): ETag and Last-Modified values, the
evaluation order of §13.2.2, and If-Range.

Pure: takes header values (bytes) and validators, returns decisions. Imports no I/O and nothing
of reactor.
"""

import calendar
import hashlib
import re
from email.utils import formatdate, parsedate_tz

PROCEED = 200
NOT_MODIFIED = 304
PRECONDITION_FAILED = 412

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc allows commas, so a list cannot be split
# on ',' first. Anything between tags that is not a tag is ignored.
_ENTITY_TAG = re.compile(rb'(W/)?("[^"]*")')


def make_etag(mtime_ns: int, size: int, coding: str = "") -> bytes:
    """A strong ETag from the file's modification time and size, like nginx's and Caddy's:
    stable across hosts that preserve mtimes (unlike one with the inode), and different for
    each content-coding of the same file, as RFC 9110 §8.8.3.3 requires."""
    tag = b"%x-%x" % (mtime_ns, size)
    return b'"%s%s"' % (tag, b"-" + coding.encode() if coding else b"")


def content_etag(body: bytes) -> bytes:
    """A strong ETag from the bytes themselves, for what is generated rather than stored (a
    directory listing): it changes exactly when the page does."""
    return b'"%s"' % hashlib.blake2b(body, digest_size=8).hexdigest().encode()


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


def parse_http_date(value: bytes):
    """Seconds since the epoch for an HTTP-date in any of its three forms, or None when the
    value is not a date (such a header is then ignored, as §13.1.3 and §13.1.4 say)."""
    try:
        parts = parsedate_tz(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if parts is None:
        return None
    return calendar.timegm(parts[:6]) - (parts[9] or 0)


def _matches(value: bytes, etag: bytes, strong: bool) -> bool:
    if value.strip() == b"*":
        return True
    return any(tag == etag and not (strong and weak) for weak, tag in _ENTITY_TAG.findall(value))


def evaluate(method: str, etag: bytes, last_modified: int, *, if_match=None,
             if_unmodified_since=None, if_none_match=None, if_modified_since=None) -> int:
    """PROCEED, NOT_MODIFIED or PRECONDITION_FAILED for a representation that exists and
    whose `etag` is strong, as make_etag's always are.

    `last_modified` is whole seconds, as sent in Last-Modified. Header arguments are the field
    values (several lines joined with ', ') or None when absent; If-Modified-Since must be
    None when the field was sent more than once.
    """
    if if_match is not None:
        if not _matches(if_match, etag, strong=True):
            return PRECONDITION_FAILED
    elif if_unmodified_since is not None:
        date = parse_http_date(if_unmodified_since)
        if date is not None and last_modified > date:
            return PRECONDITION_FAILED
    safe = method == "GET" or method == "HEAD"
    if if_none_match is not None:
        if _matches(if_none_match, etag, strong=False):
            return NOT_MODIFIED if safe else PRECONDITION_FAILED
    elif if_modified_since is not None and safe:
        date = parse_http_date(if_modified_since)
        if date is not None and last_modified <= date:
            return NOT_MODIFIED
    return PROCEED


def if_range_holds(value: bytes, etag: bytes, last_modified: int) -> bool:
    """Whether the Range may be honoured: the If-Range validator is our strong ETag, or a date
    equal to Last-Modified (§13.1.5). A weak tag never holds."""
    value = value.strip()
    if value.startswith(b'"') or value.startswith(b"W/"):
        return value == etag
    return parse_http_date(value) == last_modified
