"""The ASGI 3.0 adapter: an ASGI application's `http`, `lifespan` and `websocket` scopes as a
handler of the server.

The application's coroutines run on the server's own loop (the handler names an asyncio loop
as `event_loop`, and the server then runs its connections on it: net/aioloop.py), so a request
costs a task, not a hand-over between threads. A request reaches the handler at its head
(`streams_bodies`); its body follows into request.stream, which receive() reads, and the
connection stops reading while BODY_BUFFER bytes wait there. The response goes back as a
Response once the application has said enough: whole when the first body message is the last,
else streamed from an iterator whose items are the bytes sent or Deferreds of them, while send()
waits once SEND_BUFFER bytes are queued. A WebSocket is websocket.py's.

Content-Length from the application is not passed on: the server frames the body itself, by
the declared length for a streamed body that declares one (ending short closes the connection).
Must not import sockets, the loop or the connection.
"""

import asyncio
import logging
import os
import time
from collections import deque
from urllib.parse import unquote

from ..config import Config
from ..http import limits
from ..http.errors import ConfigError
from ..http.protocol import BodyStream, discard_body
from ..http.response import Deferred, FileSlice, Response, error_response, render_app_fields
from .app import import_object, request_path

log = logging.getLogger("reactor.asgi")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}

# With files beside the application, a path the files do not have goes to the application
# without asking them again for this long: a file that appears is served within a second,
# and an application's route does not pay for a 404 built and thrown away (9 us) each time.
MISSING_TTL = 1.0
MAX_MISSING = 4096
# A scope's path, raw_path and query_string are kept by target, as the same few targets come
# again and again: targets up to MAX_KEPT_TARGET characters, MAX_TARGETS of them, cleared when
# full, so that varied or long targets cannot hold more than about a megabyte.
MAX_TARGETS = 1024
MAX_KEPT_TARGET = 256
HTTP_EXTENSIONS = {"http.response.pathsend": {}}
# Trailers go in a chunked body's last chunk: HTTP/1.1 only (HTTP/2 would need a HEADERS frame).
HTTP11_EXTENSIONS = {**HTTP_EXTENSIONS, "http.response.trailers": {}}
HTTP_VERSIONS = {10: "1.0", 11: "1.1", 20: "2"}   # Request.version -> the scope's http_version

def start_task(loop, coroutine):
    """The coroutine as a task, run from the loop's next round of callbacks. Not eagerly
    (3.12's eager_start), though that answers a request sooner: the server then runs each
    request's parsing, application and write one after another instead of every read of a
    round first and every application after, and that costs 6 us more per request
    (README.md, ASGI)."""
    return loop.create_task(coroutine)


class ClientDisconnected(OSError):
    """send() once the client is gone (ASGI 2.4: a server-specific OSError), so that an
    application streaming without end learns to stop."""


class ASGIHandler:
    """A handler(request) -> Response | Deferred[Response] running the ASGI application `app`.

    With `files` (a StaticFiles), GET and HEAD requests for files it has are answered by it,
    through the fast lane too; everything else goes to the application.
    """

    streams_bodies = True

    def __init__(self, app, config: Config, files=None):
        self.app = app
        self.event_loop = config.asgi_loop
        self.root_path = config.root_path
        self.files = files
        if files is not None:   # a fast lane only then (Server makes one for a `ready`)
            self.ready = self._ready
            self.ready_hits = files.ready_hits
        self.missing = {}     # path -> until when the files are known not to have it
        self.targets = {}     # target -> (path, raw_path, query_string) of its scopes
        self.ws_max_size = config.ws_max_size
        self.ws_ping_interval = config.ws_ping_interval
        self.state = {}
        self.lifespan = Lifespan(app, config.lifespan, self.state)
        self.loop = None      # the asyncio loop, once started
        self.server = None    # (host, port) of the listener, for scope["server"]
        self.websockets = None
        try:
            from . import websocket
            self.websockets = websocket
        except ImportError:   # without the websockets package an upgrade is plain HTTP
            log.warning("WebSocket support needs the websockets package (pip install "
                        "'reactor[asgi]'); upgrade requests go to the application as HTTP")

    # -- start and stop ------------------------------------------------------------------------

    def startup(self, loop, address):
        """Run the lifespan start-up on `loop` (an AsyncioLoop); ConfigError if it fails."""
        self.loop = loop.asyncio
        self.server = tuple(address[:2]) if isinstance(address, tuple) else (address, None)
        loop.run_until_complete(self.lifespan.startup())

    def shutdown(self, loop):
        """The lifespan shutdown, then the end of every task still running (background work,
        WebSockets whose clients never answered)."""
        if self.loop is None:
            return
        loop.run_until_complete(self.lifespan.shutdown())
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))

    def close(self):
        if self.files is not None:
            self.files.close()

    # -- serving -------------------------------------------------------------------------------

    def _ready(self, target: str, accept):
        """The files' ready answer (see StaticFiles.ready), for the fast lane; False for a
        path they were just found not to have, which is the application's: the lane then
        leaves that request to the full path without asking again within its second."""
        found = self.files.ready(target, accept)
        if found is None:
            until = self.missing.get(target.partition("?")[0])
            if until is not None and until >= time.monotonic():
                return False
        return found

    def __call__(self, request):
        files = self.files
        if files is not None and (request.method == "GET" or request.method == "HEAD"):
            path = request.target.partition("?")[0]
            missing = self.missing.get(path)
            if missing is None or missing < time.monotonic():
                response = files(request)
                if response.status != 404:
                    return response
                discard_body(response.body)
                if len(self.missing) >= MAX_MISSING:
                    self.missing.clear()
                self.missing[path] = time.monotonic() + MISSING_TTL
        if (b"upgrade" in request.fields and self.websockets is not None
                and (request.header(b"upgrade") or b"").lower() == b"websocket"):
            return self.websockets.open_session(self, request)
        cycle = HTTPCycle(self, request)
        extensions = HTTP11_EXTENSIONS if request.version == 11 else HTTP_EXTENSIONS
        cycle.task = start_task(self.loop, cycle.main(self.scope(request, "http", request.scheme,
                                                                  extensions)))
        return cycle.future

    def scope(self, request, kind: str, scheme: str, extensions) -> dict:
        parts = self.targets.get(request.target)
        if parts is None:
            parts = self._target_parts(request)
        client = request.client
        if client.__class__ is not tuple or client[0] == "unix":
            client = None
        pairs = iter(request.fields)   # Request.headers, without a property call
        state = self.state
        return {
            "type": kind,
            "asgi": ASGI_VERSION,
            "http_version": HTTP_VERSIONS.get(request.version, "1.1"),
            "method": request.method,
            "scheme": scheme,
            "path": parts[0],
            "raw_path": parts[1],
            "query_string": parts[2],
            "root_path": self.root_path,
            "headers": list(zip(pairs, pairs)),
            "client": client,
            "server": self.server,
            "state": state.copy() if state else {},
            "extensions": extensions,
        }

    def _target_parts(self, request) -> tuple:
        """(path, raw_path, query_string) of the scope of the request's target, kept."""
        target = request.target
        path, _, query = target.partition("?")
        if path[:1] != "/":
            path = request_path(request)   # the absolute form, http://host/path
        parts = (self.root_path + (unquote(path) if "%" in path else path),
                 path.encode("latin-1"), query.encode("latin-1"))
        if len(target) <= MAX_KEPT_TARGET:
            if len(self.targets) >= MAX_TARGETS:
                self.targets.clear()
            self.targets[target] = parts
        return parts


class ResponseBody:
    """A streamed response body as the connection pulls it: the bytes the application sent,
    or a Deferred of the next ones. close() comes at its end or when the client is gone."""

    __slots__ = ("cycle", "chunks", "size", "ended", "error", "pull", "drained", "left",
                 "trailers")

    def __init__(self, cycle, declared):
        self.cycle = cycle
        self.chunks = deque()
        self.size = 0
        self.ended = False
        self.error = None
        self.pull = None       # the connection's Deferred while it waits for bytes
        self.drained = None    # the application's future while it waits for room
        self.left = declared   # bytes still owed to a declared Content-Length
        self.trailers = b""    # trailer fields, rendered, for the last chunk

    def __iter__(self):
        return self

    def __next__(self):
        if self.chunks:
            data = self.chunks.popleft()
            self.size -= len(data)
            if self.drained is not None and self.size < limits.SEND_BUFFER:
                self._release()
            return data
        if self.error is not None:
            raise self.error
        if self.ended:
            raise StopIteration
        self.pull = Deferred()
        return self.pull

    async def push(self, data: bytes, more: bool):
        if self.left is not None:
            if len(data) > self.left:
                log.error("ASGI response body longer than its Content-Length; cut")
                data = data[:self.left]
            self.left -= len(data)
            if not more and self.left:
                self.fail(ValueError(f"the ASGI response body ended {self.left} bytes short "
                                     "of its Content-Length"))
                return
        self.ended = not more
        pull = self.pull
        if pull is not None:
            self.pull = None
            pull.resolve(data)
        elif data:
            self.chunks.append(data)
            self.size += len(data)
            if self.size >= limits.SEND_BUFFER:
                self.drained = self.cycle.handler.loop.create_future()
                await self.drained

    def fail(self, error):
        """The application broke off: the connection closes instead of ending the body."""
        self.error = error
        pull = self.pull
        if pull is not None:
            self.pull = None
            pull.fail(error)

    def _release(self):
        drained, self.drained = self.drained, None
        if not drained.done():
            drained.set_result(None)

    def close(self):
        if self.drained is not None:
            self._release()
        if not self.ended:
            self.cycle.gone = True
        self.cycle.complete()


class HTTPCycle:
    """One request of the `http` scope: the application's receive and send."""

    __slots__ = ("handler", "request", "stream", "future", "response", "status", "headers",
                 "declared", "body", "body_left", "done", "gone", "waiter", "task", "trailing")

    def __init__(self, handler, request):
        self.handler = handler
        self.request = request
        stream = request.stream
        if stream is None:   # HTTP/2 hands requests over with their bodies read whole
            stream = BodyStream(complete=True)
            stream.feed(request.body)
        stream.listener = self._wake
        self.stream = stream
        self.future = Deferred()   # what the server waits on
        self.response = None
        self.status = None
        self.headers = None
        self.declared = None
        self.body = None       # the ResponseBody of a streamed response
        self.body_left = True  # the end of the request body is still to be received
        self.done = False      # the response is complete, or the client gone
        self.gone = False      # the client went before the response was complete
        self.waiter = None     # the future every receive() waiting now waits on
        self.trailing = False  # the body ends with the trailers message, not its last part

    async def main(self, scope):
        """The application, and what its end means for the response (here rather than in a
        done callback, which would cost the loop another callback per request)."""
        try:
            await self.handler.app(scope, self.receive, self.send)
        except Exception as error:
            self._finished(error)
        else:
            if self.response is None or self.body is not None:
                self._finished(None)

    async def receive(self) -> dict:
        stream = self.stream
        while True:
            if self.body_left:
                if stream.size:
                    data = stream.read()
                    self.body_left = not stream.complete
                    return {"type": "http.request", "body": data, "more_body": self.body_left}
                if stream.complete:
                    self.body_left = False
                    return {"type": "http.request", "body": b"", "more_body": False}
            if stream.lost or self.done:
                return {"type": "http.disconnect"}
            if self.waiter is None:
                self.waiter = self.handler.loop.create_future()
            await self.waiter

    def _wake(self):
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def send(self, message: dict):
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            self.headers, self.declared = render_app_fields(message.get("headers", ()))
            self.status = message["status"]
            if message.get("trailers", False) and self.request.version == 11:
                self.trailing = True
                self.declared = None   # chunked, for the trailers' sake
        elif kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.done:
                if self.gone or self.stream.lost:
                    raise ClientDisconnected("the client is gone")
                return   # the body has ended: nothing more goes out
            body = bytes(message.get("body", b""))
            more = message.get("more_body", False) or self.trailing
            if self.body is not None:
                await self.body.push(body, more)
            elif not more:
                response = Response(self.status, self.headers, body)
                if self.request.method == "HEAD" and self.declared is not None:
                    response.length = self.declared   # what a GET would have sent
                self._respond(response)
                self.complete()
            else:
                self.body = ResponseBody(self, self.declared)
                response = Response(self.status, self.headers, self.body)
                response.length = self.declared
                self._respond(response)
                await self.body.push(body, more)
        elif kind == "http.response.trailers":
            # Ignored unless announced in the start where they were offered.
            if not self.trailing or self.body is None:
                return
            if self.done:
                if self.gone or self.stream.lost:
                    raise ClientDisconnected("the client is gone")
                return   # a HEAD's: no body, no trailers
            self.body.trailers += render_app_fields(message.get("headers", ()))[0]
            if not message.get("more_trailers", False):
                self.trailing = False
                await self.body.push(b"", False)
        elif kind == "http.response.pathsend":
            if self.status is None or self.body is not None or self.response is not None:
                raise RuntimeError("http.response.pathsend must follow http.response.start "
                                   "and be the whole body")
            self._respond(Response(self.status, self.headers, open_file(message["path"])))
            self.complete()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in the http scope")

    def _respond(self, response):
        self.response = response
        self.future.resolve(response)

    def complete(self):
        """The response is all handed over, or its client gone: receive() says disconnect."""
        self.done = True
        self._wake()

    def _finished(self, error):
        """The application ended, raising `error` or not, without completing its response
        (or after it, raising)."""
        request = self.request
        if self.response is None:
            if error is not None:
                log.error("ASGI application failed on %s %s", request.method, request.target,
                          exc_info=error)
            else:
                log.error("ASGI application returned without a response to %s %s",
                          request.method, request.target)
            self._respond(error_response(500))
            self.complete()
        elif self.body is not None and not self.body.ended:
            if error is None:
                error = RuntimeError("the ASGI application returned before its body ended")
            if not isinstance(error, ClientDisconnected):
                log.error("ASGI response to %s %s broke off", request.method, request.target,
                          exc_info=error)
            self.body.fail(error)
        elif error is not None and not isinstance(error, ClientDisconnected):
            log.error("ASGI application failed after its response to %s %s", request.method,
                      request.target, exc_info=error)


def open_file(path) -> FileSlice:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        size = os.fstat(fd).st_size
    except OSError:
        os.close(fd)
        raise
    return FileSlice(fd, 0, size)


class Lifespan:
    """The `lifespan` scope: start-up before serving, shutdown after the drain.

    mode "auto" uses it when the application speaks it (one that raises at once, or returns,
    without a word does not); "on" requires it; "off" never calls it.
    """

    def __init__(self, app, mode: str, state: dict):
        self.app = app
        self.mode = mode
        self.state = state
        self.events = asyncio.Queue()
        self.replies = None       # the future of the application's answer to an event
        self.running = False      # start-up completed: shutdown is owed
        self.task = None

    async def startup(self):
        if self.mode == "off":
            return
        self.replies = asyncio.get_running_loop().create_future()
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        self.task = asyncio.get_running_loop().create_task(self._run(scope))
        await self.events.put({"type": "lifespan.startup"})
        kind, message = await self.replies
        if kind == "lifespan.startup.complete":
            self.running = True
        elif kind == "lifespan.startup.failed":
            raise ConfigError(f"application start-up failed: {message or 'no reason given'}")
        elif self.mode == "on":
            raise ConfigError(f"application start-up failed: {message}")
        else:
            log.info("the application does not use the lifespan protocol (%s)", message)

    async def shutdown(self):
        if not self.running:
            return
        self.running = False
        self.replies = asyncio.get_running_loop().create_future()
        await self.events.put({"type": "lifespan.shutdown"})
        kind, message = await self.replies
        if kind != "lifespan.shutdown.complete":
            log.error("application shutdown failed: %s", message or "no reason given")

    async def _run(self, scope):
        try:
            await self.app(scope, self.events.get, self._send)
        except BaseException as error:
            self._answer("raised", f"{type(error).__name__}: {error}")
            if self.running or self.mode == "on":
                log.error("the application's lifespan failed", exc_info=error)
        else:
            self._answer("returned", "it returned without answering")

    async def _send(self, message):
        self._answer(message["type"], message.get("message", ""))

    def _answer(self, kind, message):
        replies = self.replies
        if replies is not None and not replies.done():
            replies.set_result((kind, message))


def load_asgi(config: Config) -> ASGIHandler:
    """The handler for `--asgi module:attr` (called first with `--factory`)."""
    app = import_object(config.asgi)
    if config.asgi_factory:
        app = app()
    if not callable(app):
        raise ConfigError(f"{config.asgi} is a {type(app).__name__}, not an ASGI application")
    files = None
    if config.asgi_files:
        from ..static import StaticFiles, options_from
        files = StaticFiles(config.root, **options_from(config))
    return ASGIHandler(app, config, files)
