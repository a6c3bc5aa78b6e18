"""StaticFiles: the handler that answers requests from a directory tree.

Ties the pure modules (paths, conditional, ranges, encoding, listing, mime) to the file layer
(files) and returns Responses. Knows HTTP semantics and files, never sockets: imports nothing
of the loop, connection or protocol.

Policies, besides those of paths, ranges and encoding:
- Methods: GET and HEAD are served (HEAD gets GET's Response; the connection drops the body);
  OPTIONS gets 204 with Allow; anything else 405 with Allow.
- A directory without its trailing slash: 301 to the slash form, query kept, cached for an
  hour only so that a directory later replaced by a file is reachable again. With a slash: the
  first index file that exists, else the listing, else (listing off) 404, like a missing file.
- A file requested with a trailing slash is 404.
- Range is honoured on GET only (RFC 9110 §14.2). Several ranges of a precompressed variant get
  the whole variant with 200: a multipart body cannot carry the parts' Content-Encoding.
- What exists nowhere: with clean URLs, `/about` is `about.html` (and `/about.html`, like
  `/index.html`, is a 301 to the clean form); with an SPA file, a navigation (GET or HEAD
  whose Accept names text/html, to a path whose last segment has no dot) gets that file;
  anything else is 404, with the error page (`404.html` in the root unless told otherwise)
  as its body when there is one.
- A file whose version on disk is not the one its lookup found (it changed within VALIDITY,
  and is sent from its file, not from memory) is looked up again and answered from that
  lookup, so its fields (Vary, the sidecars it may be sent from) are the new version's too.
- Site fields (`--header` rules for the path, CORS) are on every answer; those that depend on
  the request's Origin are added per request, the rest are rendered into the cached answers.
- Content-coding: the client's q-values choose among the file's sidecars and, for a
  compressible file, the compressor's codings (sidecars first on a tie). A coding not made
  yet is asked of the compressor and the best one ready (or identity) is sent meanwhile, so
  no request waits on a compression. Every answer for such a file says Vary: Accept-Encoding.

The hot path: the 200 Response of a snapshot whose bytes are in memory (a small file, or a
sidecar or compressed result of any file) is rendered once per snapshot and kept on it, and a
file for which such an answer was sent is kept in `_hot` by raw target (for targets that name
the file, or a directory whose first index file it is). A request whose target is there, whose
snapshot was checked less than VALIDITY ago, and which carries no precondition or Range field
gets the kept Response for the coding it negotiates, with no system call and no parsing. A
snapshot sent from its file keeps only its rendered fields, never a Response, so a request for
it (a large file's identity bytes, say) always takes the full path here; the fast lane (ready)
is given its fields and a KeptFile, and checks the file with one fstat per answer, as the
full path does.
"""

import functools
import os
import time
from urllib.parse import parse_qs

from ..http.errors import HTTPError
from ..http.request import PRECONDITION_FIELDS
from ..http.response import FileSlice, KeptFile, Response, error_response, render_fields
from . import conditional, encoding, listing, mime, paths, ranges
from .compressed import MAX_SOURCE, Compressor
from .files import Directory, Files, Snapshot
from .site import Cors, HeaderRule

ALLOW = "GET, HEAD, OPTIONS"

# Raw targets whose syntax checks are remembered, and raw targets on the hot path. Both are
# keyed by what a client sends, so both are bounded; the oldest entry goes first.
MAX_ROUTES = 4096
MAX_HOT = 1024

REDIRECT_CACHE_CONTROL = "max-age=3600"

# Paths whose site fields are remembered (they are keyed by what clients send).
MAX_SITE_PATHS = 1024

_HTML_TYPES = (b"text/html", b"application/xhtml+xml")

# Files smaller than this are sent as they are: below it a compressed body saves less than
# the Content-Encoding and Vary fields cost (Caddy's threshold too).
MIN_COMPRESS = 512


def _etag_and_date(snapshot, coding) -> tuple:
    """The strong ETag and the Last-Modified second of what is sent for `snapshot`."""
    etag = conditional.make_etag(snapshot.mtime_ns, snapshot.size, coding or "")
    return etag, snapshot.mtime_ns // 1_000_000_000


# [hits, misses] of the answers kept in memory, over every StaticFiles of the process: a
# GET or HEAD answered from `_hot`, or one that took the full path. The metrics read them.
CACHE_COUNTS = [0, 0]


def options_from(config) -> dict:
    """StaticFiles' keyword arguments from a server Config (its static-serving knobs)."""
    return dict(index=config.index, listing=config.listing, hidden=config.hidden,
                symlinks=config.symlinks,
                cache_control=config.cache_control, precompressed=config.precompressed,
                headers=config.headers, cors=config.cors, spa=config.spa,
                error_pages=dict(config.error_pages) or None, clean_urls=config.clean_urls,
                compress=config.compress, compress_cache=config.compress_cache)


_VARY_ACCEPT = b"Vary: Accept\r\n"


def _with_fields(response, fields: bytes) -> Response:
    """A copy of `response` with rendered `fields` after its own."""
    copy = response.with_body(response.body)
    copy.fields = response.fields + fields
    return copy


def _kept_answer(snapshot, accept):
    """The answer kept for `snapshot` in the coding the Accept-Encoding value `accept` (None:
    no such field) asks for, when there is one; else None (the full path decides). Only a
    snapshot whose bytes are in memory keeps an answer, so whatever is found here is
    complete."""
    codings = snapshot.codings
    coding = encoding.negotiate(accept, codings) if codings and accept is not None else None
    if coding is None:
        return snapshot.response
    variant = snapshot.variants.get(coding)
    if variant is None and snapshot.encoded is not None:
        variant = snapshot.encoded.get(coding)
    return variant.response if variant.__class__ is Snapshot else None


def _prefers_json(accept) -> bool:
    """Whether an Accept value ranks application/json above text/html."""
    if accept is None or b"json" not in accept:
        return False
    weights = encoding.parse_accept(accept)
    return weights.get("application/json", 0.0) > weights.get("text/html", 0.0)


def _navigation(request) -> bool:
    """Whether a browser is loading a page: it asks for HTML (a script or image never does)."""
    accept = request.header(b"accept")
    return accept is not None and any(kind in accept.lower() for kind in _HTML_TYPES)


def _joined(request, name: bytes):
    values = request.header_values(name)
    return b", ".join(values) if values else None


class StaticFiles:
    """A handler serving the tree under `root`: handler(request) -> Response."""

    def __init__(self, root, *, index=("index.html",), listing=True, hidden=False,
                 symlinks=True, cache_control=None, precompressed=True, headers=(), cors=None,
                 spa=None, error_pages=None, clean_urls=False, compress=True,
                 compress_cache=None):
        self.files = Files(root, hidden=hidden, precompressed=precompressed, symlinks=symlinks)
        if compress is True:
            compress = Compressor(directory=compress_cache)
        self.compressor = compress or None   # False, or a Compressor of one's own
        self.index = tuple(index)
        self.listing = listing
        self.hidden = hidden
        self.cache_control = cache_control
        self.rules = tuple(rule if isinstance(rule, HeaderRule) else HeaderRule.parse(rule)
                           for rule in headers)
        self.cors = cors if cors is None or isinstance(cors, Cors) else Cors(cors)
        self.spa = spa.strip("/") if spa else None
        self.error_pages = dict(error_pages) if error_pages is not None else {404: "404.html"}
        self.clean_urls = clean_urls
        self._routes = {}
        self._hot = {}
        self._site = {}
        self._pages = {}
        self._spa_answers = {}   # id(answer) -> (answer, the same with Vary: Accept)
        # Fields that can change the answer for a file beyond its path (Accept-Encoding aside:
        # the hot path negotiates it among the encoded variants that are ready in memory).
        echoes = self.cors is not None and self.cors.echoes
        self._preconditions = PRECONDITION_FIELDS | ({b"origin"} if echoes else set())
        self._options = Response(204, [("Allow", ALLOW), *self._site_fields("/")])
        self._not_allowed = error_response(405, headers=[("Allow", ALLOW),
                                                         *self._site_fields("/")])
        self._not_found = error_response(404)
        self._failed = error_response(412)

    def __call__(self, request) -> Response:
        method = request.method
        if method == "GET" or method == "HEAD":
            snapshot = self._hot.get(request.target)
            if (snapshot is not None and snapshot.deadline > time.monotonic()
                    and self._preconditions.isdisjoint(request.fields)):
                response = _kept_answer(snapshot, request.header(b"accept-encoding"))
                if response is not None:
                    CACHE_COUNTS[0] += 1
                    return response
            CACHE_COUNTS[1] += 1
            response = self._serve(request)
        elif method == "OPTIONS":
            if self.cors is not None and request.header(b"access-control-request-method"):
                return self._preflight(request)
            response = self._options
        else:
            response = self._not_allowed
        if self.cors is not None and self.cors.echoes:
            return self._echo_origin(request, response)
        return response

    def early_response(self, request) -> Response:
        """No answer here depends on a request body: each is given from the head, so the
        server never reads a body sent to static files."""
        return self(request)

    def close(self):
        """Stop compressing and remove the temporary compression cache."""
        if self.compressor is not None:
            self.compressor.close()

    def _preflight(self, request) -> Response:
        fields = self.cors.preflight_fields(request.header(b"origin"), ALLOW,
                                            request.header(b"access-control-request-headers"))
        return Response(204, [("Allow", ALLOW), *fields])

    def _echo_origin(self, request, response) -> Response:
        extra = self.cors.echo_fields(request.header(b"origin"))
        return _with_fields(response, extra) if extra else response

    def _site_fields(self, path: str) -> list:
        """The `--header` fields for `path` and the CORS fields every answer carries."""
        fields = self._site.get(path)
        if fields is None:
            fields = [(rule.name, rule.value) for rule in self.rules if rule.applies(path)]
            if self.cors is not None:
                fields += self.cors.static_fields()
            site = self._site
            if len(site) >= MAX_SITE_PATHS:
                del site[next(iter(site))]
            site[path] = fields
        return fields

    # What the fast lane answers from `ready` counts as a hit of the memory cache too.
    ready_hits = CACHE_COUNTS

    def ready(self, target: str, accept):
        """(Response, until) when every GET or HEAD of `target` with no precondition or Range
        field and with the Accept-Encoding value `accept` (None: no such field) gets that
        Response, whatever else it says, until the monotonic time `until`; else None. For a
        file sent from disk the body is a KeptFile, whose open() checks with one fstat that
        the file is still the version the fields describe."""
        if self.cors is not None and self.cors.echoes:
            return None   # the answer depends on Origin too
        snapshot = self._hot.get(target)
        if snapshot is None or snapshot.deadline <= time.monotonic():
            return None
        response = _kept_answer(snapshot, accept) or self._kept_file(snapshot, accept)
        return None if response is None else (response, snapshot.deadline)

    def _kept_file(self, node, accept):
        """The answer for `node` from its file on disk (its own bytes, or a sidecar's) when
        that is what the full path sends for the Accept-Encoding value `accept` and its
        fields are rendered already; else None. As the full path, it shares the descriptor
        kept with that version (Files.shared_file)."""
        codings = node.codings
        coding = encoding.negotiate(accept, codings) if codings and accept is not None else None
        snapshot = node if coding is None else node.variants.get(coding)
        if snapshot is None or snapshot.data is not None or snapshot.fields is None:
            return None
        return Response(200, snapshot.fields,
                        KeptFile(snapshot.size, functools.partial(self.files.shared_file,
                                                                  snapshot)))

    # -- resolution ------------------------------------------------------------------------

    def _serve(self, request) -> Response:
        target = request.target
        route = self._routes.get(target)
        if route is None:
            route = self._route(target)
        if route.__class__ is Response:
            return self._missing(request, None) if route is self._not_found else route
        node = self.files.lookup(route.rel)
        if node.__class__ is Snapshot:
            if route.slash:
                return self._missing(request, None)
            if self.clean_urls and node.name.endswith(".html"):
                return self._clean_redirect(route)
            return self._file(request, node, target)
        if node.__class__ is Directory:
            if not route.slash:
                return self._redirect(route, route.slash_location())
            for i, name in enumerate(self.index):
                found = self.files.lookup(f"{route.rel}/{name}" if route.rel else name)
                if found.__class__ is Snapshot:
                    # Only the first index name may go on the hot path: a later one stops
                    # being the answer when an earlier one appears, and revalidating its own
                    # snapshot would never notice that.
                    return self._file(request, found, target if i == 0 else None)
            if self.listing:
                return self._listing(request, route, node)
        return self._missing(request, route)

    def _missing(self, request, route) -> Response:
        """The answer for a path with nothing at it (`route` None: refused by syntax)."""
        if route is not None and route.segments and not route.slash:
            last = route.segments[-1]
            if self.clean_urls and "." not in last:
                found = self.files.lookup(route.rel + ".html")
                if found.__class__ is Snapshot:
                    return self._file(request, found, None)
            if self.spa is not None and "." not in last and _navigation(request):
                found = self.files.lookup(self.spa)
                if found.__class__ is Snapshot:
                    return self._varies_by_accept(self._file(request, found, None))
        return self._error_page(404, route)

    def _varies_by_accept(self, response) -> Response:
        """`response` saying `Vary: Accept`, as an SPA's answer for a path depends on it (the
        shell for a page load, 404 for anything else). Kept per cached answer."""
        if response.body.__class__ is not bytes:
            return _with_fields(response, _VARY_ACCEPT)
        kept = self._spa_answers.get(id(response))
        if kept is None or kept[0] is not response:
            if len(self._spa_answers) >= MAX_SITE_PATHS:
                self._spa_answers.clear()
            kept = self._spa_answers[id(response)] = (response,
                                                      _with_fields(response, _VARY_ACCEPT))
        return kept[1]

    def _error_page(self, status: int, route) -> Response:
        """`status` with the site's page for it as the body, or the plain text one."""
        path = route.url_path if route is not None else "/"
        rel = self.error_pages.get(status)
        page = self.files.lookup(rel) if rel else None
        site = self._site_fields(path)
        if self.spa is not None:
            site = [*site, ("Vary", "Accept")]   # a page load of the same path gets the shell
        if page.__class__ is not Snapshot:
            return error_response(status, headers=site)
        cached = self._pages.get((status, path))
        if cached is not None and cached[0] is page:
            return cached[1]
        fields = [("Content-Type", mime.content_type(page.name)), *site]
        if page.data is not None:
            response = Response(status, fields, page.data)
            if len(self._pages) >= MAX_SITE_PATHS:
                self._pages.clear()
            self._pages[(status, path)] = (page, response)
            return response
        opened = self.files.open_file(page)
        if opened is None:
            return error_response(status, headers=site)
        fd, current = opened
        return Response(status, fields, FileSlice(fd, 0, current.size))

    def _redirect(self, route, location: str) -> Response:
        return error_response(301, headers=[("Location", location),
                                            ("Cache-Control", REDIRECT_CACHE_CONTROL),
                                            *self._site_fields(route.url_path)])

    def _clean_redirect(self, route) -> Response:
        """/about.html to /about, /docs/index.html to /docs/."""
        *parents, last = route.segments
        if last == "index.html":
            return self._redirect(route, route.location(tuple(parents), True))
        return self._redirect(route, route.location((*parents, last[:-5]), False))

    def _route(self, target: str):
        try:
            route = paths.resolve(target, self.hidden)
        except HTTPError as error:
            # A 404 says nothing of why, so a probe cannot tell a refusal from a miss.
            route = (self._not_found if error.status == 404
                     else error_response(error.status, error.reason))
        routes = self._routes
        if len(routes) >= MAX_ROUTES:
            del routes[next(iter(routes))]
        routes[target] = route
        return route

    def _listing(self, request, route, directory) -> Response:
        """The listing in the form and order asked for (`?sort=name|size|time&order=desc`,
        JSON when Accept prefers it to HTML); each form is rendered once per snapshot of the
        directory. Anything else in the query is ignored."""
        query = parse_qs(route.query) if route.query else {}
        sort = query.get("sort", ("name",))[0]
        sort = sort if sort in listing.SORTS else "name"
        descending = query.get("order", ("asc",))[0] == "desc"
        wants_json = _prefers_json(request.header(b"accept"))
        key = (sort, descending, wants_json)
        cached = directory.listing
        if cached is None:
            cached = directory.listing = {}
        entry = cached.get(key)
        if entry is None:
            render, kind = ((listing.render_json, "application/json") if wants_json
                            else (listing.render, "text/html; charset=utf-8"))
            body = render(route.url_path, self.files.listdir(directory), sort, descending)
            etag = conditional.content_etag(body)
            validators = [("ETag", etag), ("Vary", "Accept"), *self._site_fields(route.url_path)]
            entry = cached[key] = (Response(200, [("Content-Type", kind), *validators], body),
                                   etag, Response(304, validators))
        response, etag, not_modified = entry
        if not self._preconditions.isdisjoint(request.fields):
            # A listing has no modification date, so only the entity-tag fields apply.
            outcome = conditional.evaluate(request.method, etag, 0,
                                           if_match=_joined(request, b"if-match"),
                                           if_none_match=_joined(request, b"if-none-match"))
            if outcome == conditional.PRECONDITION_FAILED:
                return self._failed
            if outcome == conditional.NOT_MODIFIED:
                return not_modified
        return response

    # -- files -----------------------------------------------------------------------------

    def _file(self, request, node, hot_target, looked_again=False) -> Response:
        codings = node.codings
        if codings is None:
            codings = node.codings = self._codings_of(node)
        snapshot, coding = node, None
        if codings:
            accept = request.header(b"accept-encoding")
            if accept is not None:
                snapshot, coding = self._choose(node, accept, codings)
        fd = None
        if snapshot.data is None:
            if (self._preconditions.isdisjoint(request.fields)
                    and (snapshot is node or snapshot is node.variants.get(coding))):
                body = self.files.shared_file(snapshot)   # revalidated with the lookup
                if body is not None:
                    if hot_target is not None:
                        self._make_hot(hot_target, node)   # for the fast lane (ready)
                    return self._whole(node, snapshot, coding, body)
            opened = self.files.open_file(snapshot)
            if opened is not None and opened[1] is snapshot:
                fd = opened[0]
            elif snapshot is not node and snapshot is not node.variants.get(coding):
                # A compression cache file that went away or changed: drop it and answer as if
                # it had never been made.
                if opened is not None:
                    os.close(opened[0])
                self.compressor.forget(node, coding)
                return self._file(request, node, hot_target, looked_again)
            elif not looked_again:
                # The file or the sidecar chosen changed or went away since the lookup: answer
                # from a new one, as a server that never saw the old version would (whether
                # the answer varies, which sidecars there are, what is there now).
                if opened is not None:
                    os.close(opened[0])
                self.files.expire(node)
                fresh = self.files.lookup(node.rel)
                if fresh.__class__ is not Snapshot:
                    return self._serve(request)
                return self._file(request, fresh, hot_target, looked_again=True)
            elif opened is None:
                self.files.expire(node)
                return self._error_page(404, None)
            else:
                # Changed again since that second lookup: the descriptor's own version.
                self.files.expire(node)
                fd, snapshot = opened
        if not self._preconditions.isdisjoint(request.fields):
            return self._conditional(request, node, snapshot, coding, fd)
        if fd is not None:
            return self._whole(node, snapshot, coding, FileSlice(fd, 0, snapshot.size))
        if hot_target is not None:
            self._make_hot(hot_target, node)
        return self._whole(node, snapshot, coding, None)

    def _codings_of(self, node) -> tuple:
        """Every coding `node` may be sent in, in the server's order: its sidecars' first (made
        offline, usually smaller, and free to send), then the compressor's when the file is
        of a compressible type and size."""
        codings = tuple(node.variants)
        compressor = self.compressor
        if (compressor is not None and MIN_COMPRESS <= node.size <= MAX_SOURCE
                and mime.compressible(node.name)):
            codings += tuple(coding for coding in compressor.codings if coding not in codings)
        return codings

    def _choose(self, node, accept: bytes, codings: tuple) -> tuple:
        """(the Snapshot to send, its coding or None): the best acceptable coding that is
        ready. Asking for one that is not starts its compression; meanwhile the next best
        one, or identity, is sent."""
        while True:
            coding = encoding.negotiate(accept, codings)
            if coding is None:
                return node, None
            variant = node.variants.get(coding)
            if variant is None:
                variant = self.compressor.variant(node, coding)
            if variant is not None:
                return variant, coding
            codings = tuple(other for other in codings if other != coding)

    def _make_hot(self, target: str, snapshot: Snapshot):
        hot = self._hot
        if target not in hot and len(hot) >= MAX_HOT:
            del hot[next(iter(hot))]
        hot[target] = snapshot

    def _validators(self, node, snapshot, coding) -> list:
        """The fields every answer about this file carries, 304 included (RFC 9110 §15.4.5)."""
        etag, last_modified = _etag_and_date(snapshot, coding)
        fields = [("Last-Modified", conditional.http_date(last_modified)), ("ETag", etag)]
        if node.codings:
            fields.append(("Vary", "Accept-Encoding"))
        if self.cache_control:
            fields.append(("Cache-Control", self.cache_control))
        return fields + self._site_fields("/" + node.rel)

    def _content_fields(self, node, snapshot, coding, content_type: str) -> list:
        fields = [("Content-Type", content_type), ("Accept-Ranges", "bytes")]
        if coding:
            fields.append(("Content-Encoding", coding))
        return fields + self._validators(node, snapshot, coding)

    def _whole(self, node, snapshot, coding, body) -> Response:
        """The 200 for `snapshot`, its fields rendered once per snapshot. With `body` None its
        bytes are in memory, and the whole answer is kept as `response`, which the hot path
        and the fast lane give to any request of it; otherwise `body` is a FileSlice of its
        file, so only the fields are kept (`fields`, which are not an answer by themselves)."""
        fields = snapshot.fields
        if fields is None:
            fields = snapshot.fields = render_fields(self._content_fields(
                node, snapshot, coding, mime.content_type(node.name)))
        if body is not None:
            return Response(200, fields, body)
        response = snapshot.response
        if response is None:
            response = snapshot.response = Response(200, fields, snapshot.data)
        return response

    def _conditional(self, request, node, snapshot, coding, fd) -> Response:
        etag, last_modified = _etag_and_date(snapshot, coding)
        since = request.header_values(b"if-modified-since")
        outcome = conditional.evaluate(
            request.method, etag, last_modified,
            if_match=_joined(request, b"if-match"),
            if_unmodified_since=request.header(b"if-unmodified-since"),
            if_none_match=_joined(request, b"if-none-match"),
            if_modified_since=since[0] if len(since) == 1 else None)
        if outcome != conditional.PROCEED:
            if fd is not None:
                os.close(fd)
            if outcome == conditional.PRECONDITION_FAILED:
                return self._failed
            if snapshot.not_modified is None:
                snapshot.not_modified = Response(304, self._validators(node, snapshot, coding))
            return snapshot.not_modified
        value = request.header(b"range") if request.method == "GET" else None
        if value is not None:
            validator = request.header(b"if-range")
            if validator is None or conditional.if_range_holds(validator, etag, last_modified):
                chosen = ranges.parse(value, snapshot.size)
                if chosen is ranges.UNSATISFIABLE:
                    if fd is not None:
                        os.close(fd)
                    return error_response(416, headers=[
                        ("Content-Range", ranges.unsatisfied_range(snapshot.size)),
                        ("Accept-Ranges", "bytes")])
                if chosen is not ranges.IGNORE and (len(chosen) == 1 or coding is None):
                    return self._partial(node, snapshot, coding, fd, chosen)
        return self._whole(node, snapshot, coding,
                           None if fd is None else FileSlice(fd, 0, snapshot.size))

    def _partial(self, node, snapshot, coding, fd, chosen) -> Response:
        content_type = mime.content_type(node.name)
        size = snapshot.size
        if len(chosen) == 1:
            start, stop = chosen[0]
            fields = self._content_fields(node, snapshot, coding, content_type)
            fields.append(("Content-Range", ranges.content_range(start, stop, size)))
            body = snapshot.data[start:stop] if fd is None else FileSlice(fd, start, stop - start)
            return Response(206, fields, body)
        if fd is None:
            parts = [snapshot.data[start:stop] for start, stop in chosen]
        else:
            # Each FileSlice owns a descriptor, as the connection closes each one it sends.
            fds = [fd]
            try:
                for _ in chosen[1:]:
                    fds.append(os.dup(fd))
            except OSError:
                for each in fds:
                    os.close(each)
                return error_response(503, "out of file descriptors")
            parts = [FileSlice(each, start, stop - start)
                     for each, (start, stop) in zip(fds, chosen)]
        heads, closing = ranges.multipart_heads(chosen, size, content_type)
        body = [piece for pair in zip(heads, parts) for piece in pair]
        body.append(closing)
        fields = self._content_fields(node, snapshot, coding, ranges.MULTIPART_TYPE)
        return Response(206, fields, body)
