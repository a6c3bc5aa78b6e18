"""From a request-target to a path relative to the served root, without touching the disk.

Owns the syntax rules of static paths: percent-decoding (exactly once), what is refused and with
which status, and the slash-form redirect. Pure: imports no I/O module and nothing of reactor
but errors. Symlinks are the file layer's concern, since only the disk knows where they point.

Policy:
- 400 for a path that is not well formed: a bad `%` escape, NUL (raw or `%00`), bytes that are
  not UTF-8 after decoding (this includes overlong forms such as `%c0%ae`), a target that is
  neither origin-form nor absolute-form.
- 404 for anything that tries to climb or hide: a `.` or `..` segment after decoding (so `%2e%2e`
  and `..%2f` too), a backslash anywhere, and dot-segments (dotfiles) unless hidden files are
  served. 404 rather than 403 so that a probe learns nothing about what exists.
- Empty segments are dropped, so `//evil.com` is the path `evil.com` under the root and a
  redirect built from it can never start with `//`.
"""

import re
from urllib.parse import quote, unquote_to_bytes

from ..http.errors import HTTPError

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

# Kept unescaped in Location and listing links: RFC 3986 pchar minus '%', so a name
# survives the round trip through the client's own decoding.
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


class Route:
    """A target's path after the syntax checks: `rel` joins the segments with '/', `slash`
    says whether the target's path ended with one (directories need it), `query` is raw."""

    __slots__ = ("segments", "rel", "slash", "query")

    def __init__(self, segments: tuple, slash: bool, query: str):
        self.segments = segments
        self.rel = "/".join(segments)
        self.slash = slash
        self.query = query

    @property
    def url_path(self) -> str:
        """The decoded path as a person reads it, with a trailing slash for directories."""
        return "/" + "".join(segment + "/" for segment in self.segments)

    def slash_location(self) -> str:
        """Where a directory requested without its trailing slash lives: always one '/' then a
        non-slash, so no client can read it as another host."""
        return self.location(self.segments, True)

    def location(self, segments: tuple, slash: bool) -> str:
        """A Location for `segments` (with a trailing slash when `slash`), this target's query
        kept; like slash_location's, it can never start with '//'."""
        path = "/" + "/".join(quote_segment(segment) for segment in segments)
        if slash and segments:
            path += "/"
        return path + "?" + self.query if self.query else path


def quote_segment(segment: str) -> str:
    return quote(segment, safe=_SEGMENT_SAFE)


def _origin_path(path: str) -> str:
    if path.startswith("/"):
        return path
    # Absolute-form (RFC 9112 §3.2.2) must be accepted; the authority is not ours to check.
    lowered = path[:8].lower()
    for scheme in ("http://", "https://"):
        if lowered.startswith(scheme):
            slash = path.find("/", len(scheme))
            return path[slash:] if slash >= 0 else "/"
    raise HTTPError(400, "request-target is not a path")


def resolve(target: str, hidden: bool = False) -> Route:
    """The Route for a request-target (latin-1 text, as Request gives it); raises HTTPError
    with the status the policy above assigns."""
    path, _, query = target.partition("?")
    path = _origin_path(path)
    if "\0" in path or _BAD_ESCAPE.search(path):
        raise HTTPError(400, "malformed percent-encoding in path")
    raw = unquote_to_bytes(path)
    if b"\0" in raw:
        raise HTTPError(400, "NUL in path")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "path is not UTF-8") from None
    if "\\" in decoded:
        raise HTTPError(404, "backslash in path")
    segments = tuple(segment for segment in decoded.split("/") if segment)
    for segment in segments:
        if segment == "." or segment == ".." or (segment[0] == "." and not hidden):
            raise HTTPError(404, "dot segment in path")
    return Route(segments, decoded.endswith("/"), query)
