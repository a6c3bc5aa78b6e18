"""Dynamic handlers: an App that routes requests by method and path to plain functions.

Owns route patterns, mounting handlers (static files, WSGI, another App) under a prefix, the
conversion of what a route returns into a Response, and loading `module:attr` for the CLI.
Must not import sockets, the loop or the connection: an App is a function of the request.
"""

import importlib
import json
import logging
import os
import re
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import Config
from ..http.errors import HTTPError
from ..http.request import Request
from ..http.response import Response, error_response

log = logging.getLogger("reactor.app")

# How a `{name:kind}` parameter matches and what it becomes. `str` stops at a slash so that
# `/entries/{id}` never swallows `/entries/1/edit`; `path` is for trailing file paths.
CONVERTERS = {
    "str": (r"[^/]+", str),
    "int": (r"[0-9]{1,18}", int),     # fits in 64 bits; a longer number is no id of ours
    "path": (r".*", str),
}

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")

# Fields in one form. The body limit already bounds the bytes; this bounds the objects a
# body of `&&&&...` would make. Past it: 400.
MAX_FORM_FIELDS = 1000


def compile_pattern(pattern: str):
    """(regex, converters) for a route pattern like `/entries/{id:int}` or `/files/{p:path}`."""
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    regex, converters, end = [], {}, 0
    for match in _PARAM.finditer(pattern):
        name, kind = match.group(1), match.group(2) or "str"
        if kind not in CONVERTERS:
            raise ValueError(f"unknown parameter kind {kind!r} in {pattern!r}")
        if name in converters:
            raise ValueError(f"parameter {name!r} appears twice in {pattern!r}")
        regex.append(re.escape(pattern[end:match.start()]))
        regex.append(f"(?P<{name}>{CONVERTERS[kind][0]})")
        converters[name] = CONVERTERS[kind][1]
        end = match.end()
    regex.append(re.escape(pattern[end:]))
    return re.compile("".join(regex)), converters


def request_path(request: Request) -> str:
    """The percent-encoded path of the target, also for the absolute form `http://h/p`."""
    target = request.target
    if not target.startswith("/") and "://" in target:
        return urlsplit(target).path or "/"
    return request.path


def with_target(request: Request, target: str) -> Request:
    """A copy of `request` whose target is `target` (for handlers mounted under a prefix)."""
    copy = Request(request.method, target, request.version, request.fields,
                   request.content_length, request.chunked, request.keep_alive,
                   request.expect_continue)
    copy.body = request.body
    copy.client = request.client
    copy.scheme = request.scheme
    copy.stream = request.stream
    return copy


def form(request: Request) -> dict:
    """The fields of an `application/x-www-form-urlencoded` body (or of the query for a body-less
    request) as {name: [values]}; raises HTTPError 415 for another content type."""
    text = request.query
    if request.body:
        content_type = (request.header(b"content-type") or b"").split(b";")[0].strip().lower()
        if content_type != b"application/x-www-form-urlencoded":
            raise HTTPError(415, "expected an application/x-www-form-urlencoded body")
        text = request.body
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return parse_qs(text, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:           # bad UTF-8 or too many fields
        raise HTTPError(400, f"bad form: {exc}") from None


def html(text: str, status: int = 200, headers=()) -> Response:
    return Response(status, [("Content-Type", "text/html; charset=utf-8"), *headers],
                    text.encode("utf-8"))


def redirect(location: str, status: int = 303) -> Response:
    return Response(status, [("Location", location)], b"")


def to_response(result) -> Response:
    """What a route returned, as a Response.

    Response as is; str as UTF-8 text/plain; bytes as application/octet-stream; a dict or list
    as JSON; a (status, headers, body) tuple whose body is any of bytes, str or a Response body.
    """
    if isinstance(result, Response):
        return result
    if isinstance(result, str):
        return Response(200, [("Content-Type", "text/plain; charset=utf-8")], result.encode())
    if isinstance(result, (bytes, bytearray)):
        return Response(200, [("Content-Type", "application/octet-stream")], bytes(result))
    if isinstance(result, (dict, list)):
        body = json.dumps(result, ensure_ascii=False).encode()
        return Response(200, [("Content-Type", "application/json")], body)
    if isinstance(result, tuple) and len(result) == 3:
        status, headers, body = result
        return Response(status, headers, body.encode() if isinstance(body, str) else body)
    raise TypeError(f"a route returned {type(result).__name__}, not a response")


class Route:
    __slots__ = ("pattern", "regex", "converters", "methods", "handler", "threaded")

    def __init__(self, pattern, methods, handler, threaded):
        self.pattern = pattern
        self.regex, self.converters = compile_pattern(pattern)
        # A GET route answers HEAD too: the server drops the body.
        methods = {m.upper() for m in methods}
        self.methods = methods | {"HEAD"} if "GET" in methods else methods
        self.handler = handler
        self.threaded = threaded

    def match(self, path: str):
        """The converted parameters when `path` matches, else None."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {name: convert(found.group(name)) for name, convert in self.converters.items()}


class App:
    """Routes, then mounts; the first route whose pattern and method match handles a request.

        app = App()

        @app.get("/time")
        def now(request):
            return datetime.now().isoformat()

        @app.post("/entries/{id:int}")
        def update(request, id): ...

        app.static("/", root=None)  # the server's --root, beside the routes

    A route's handler is called as handler(request, **params) and returns a Response, str,
    bytes, dict/list (JSON), (status, headers, body) or a Future of one of these. A route
    declared `threaded=True` runs on the App's thread pool so that it cannot block the loop.
    """

    def __init__(self, threads: int = 4):
        self.routes = []
        self.mounts = []             # (prefix, handler), longest prefix first
        self._statics = []           # (prefix, root, options) waiting for configure()
        self._config = None
        self._threads = threads
        self._pool = None

    # -- declaring -------------------------------------------------------------------------

    def route(self, pattern: str, methods=("GET",), threaded: bool = False):
        def register(handler):
            self.routes.append(Route(pattern, methods, handler, threaded))
            return handler
        return register

    def get(self, pattern: str, threaded: bool = False):
        return self.route(pattern, ("GET",), threaded)

    def post(self, pattern: str, threaded: bool = False):
        return self.route(pattern, ("POST",), threaded)

    def mount(self, prefix: str, handler):
        """Serve every path under `prefix` with `handler(request)`, which sees the target with
        the prefix removed (`/static/a.css` reaches it as `/a.css`)."""
        prefix = prefix.rstrip("/")
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"mount prefix {prefix!r} must start with '/'")
        self.mounts.append((prefix, handler))
        self.mounts.sort(key=lambda mount: len(mount[0]), reverse=True)

    def static(self, prefix: str = "/", root: str | None = None, **options):
        """Mount static files at `prefix`: from `root`, or from the server's --root when None.
        Options not given (index, listing, hidden, cache_control, precompressed, compress, ...)
        come from the server's Config, so the command-line flags apply to a mounted tree as well."""
        self._statics.append((prefix, root, options))

    def configure(self, config: Config) -> "App":
        """Build the static mounts from the server's Config; the CLI calls it once at start."""
        for prefix, root, options in self._statics:
            from ..static import StaticFiles, options_from  # only Apps that serve files
            settings = options_from(config)
            settings.update(options)
            self.mount(prefix, StaticFiles(root if root is not None else config.root, **settings))
        self._statics = []
        self._config = config
        return self

    # -- serving ---------------------------------------------------------------------------

    def __call__(self, request: Request):
        target, argument = self._resolve(request)
        if target is None:
            return argument
        if target.__class__ is Route:
            return self._call(target, request, argument)
        return target(argument)

    def early_response(self, request: Request):
        """The answer when it does not depend on the body (no such path, a method the path
        does not allow, a mount that can tell), so the server need not read it; else None."""
        target, argument = self._resolve(request)
        if target is None:
            return argument
        if target.__class__ is Route:
            return None
        early = getattr(target, "early_response", None)
        return early(argument) if early is not None else None

    def _resolve(self, request: Request) -> tuple:
        """(route, params), (mounted handler, the request as it sees it), or (None, Response)."""
        if self._statics:
            self.configure(self._config or Config())
        path = request_path(request)
        decoded = unquote(path, errors="surrogateescape")
        allowed = set()
        for route in self.routes:
            params = route.match(decoded)
            if params is None:
                continue
            if request.method in route.methods:
                return route, params
            allowed |= route.methods
        if allowed:
            return None, error_response(405, headers=[("Allow", ", ".join(sorted(allowed)))])
        for prefix, handler in self.mounts:
            if path == prefix and prefix:
                # Relative links of an index page resolve against the slash-terminated URL.
                query = request.query
                return None, redirect(prefix + "/" + ("?" + query if query else ""), 308)
            if path.startswith(prefix + "/"):
                _, mark, query = request.target.partition("?")
                return handler, with_target(request, path[len(prefix):] + mark + query)
        return None, error_response(404)

    def _call(self, route: Route, request: Request, params: dict):
        if route.threaded:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="reactor-app")
            return self._pool.submit(_run_route_blocking, route, request, params)
        return _run_route(route, request, params)

    def close(self):
        """Stop the thread pool of threaded routes and what mounted handlers hold (the server
        calls it on shutdown)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        for _, handler in self.mounts:
            close = getattr(handler, "close", None)
            if close is not None:
                close()


def _run_route(route: Route, request: Request, params: dict):
    try:
        result = route.handler(request, **params)
        if isinstance(result, Future):
            return _chain(route, request, result)
        return to_response(result)
    except Exception as exc:
        return _failure(route, request, exc)


def _run_route_blocking(route: Route, request: Request, params: dict) -> Response:
    # On a pool thread a route's own Future may simply be waited for.
    result = _run_route(route, request, params)
    return result.result() if isinstance(result, Future) else result


def _chain(route: Route, request: Request, future: Future) -> Future:
    """A Future of the Response for a route's Future of any to_response() value."""
    converted = Future()

    def done(f):
        try:
            response = to_response(f.result())
        except Exception as exc:
            response = _failure(route, request, exc)
        converted.set_result(response)

    future.add_done_callback(done)
    return converted


def _failure(route: Route, request: Request, exc: Exception) -> Response:
    """HTTPError becomes its status; anything else a 500 and a logged traceback."""
    if isinstance(exc, HTTPError):
        return error_response(exc.status, exc.reason)
    log.error("route %s failed on %s %s", route.pattern, request.method, request.target,
              exc_info=exc)
    return error_response(500)


def import_object(spec: str):
    """The object named by `module:attr` (attr may be dotted; `module` alone means `:app`),
    importable from the current directory as `python -m` would allow."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ValueError(f"{spec!r} is not module:attr")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj = importlib.import_module(module_name)
    for name in (attr or "app").split("."):
        obj = getattr(obj, name)
    return obj


def load_app(spec: str, config: Config):
    """The handler for `--app module:attr`: an App (configured with `config`) or any callable
    handler(request) -> Response | Future[Response]."""
    obj = import_object(spec)
    if isinstance(obj, App):
        return obj.configure(config)
    if not callable(obj):
        raise TypeError(f"{spec} is a {type(obj).__name__}, not an App or a handler")
    return obj
