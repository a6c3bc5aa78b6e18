"""Listening sockets, accepting, the connection table, deadlines and graceful shutdown.

Wires a Config to a handler, a parser and the loop. The only place that accepts sockets;
knows nothing of files or routes (the handler does) and nothing of framing (connection and
protocol do). Knows nothing of processes either: the supervisor above it decides how many
servers run and what their signals do.
"""

import _socket
import errno
import functools
import logging
import math
import os
import resource
import socket
import stat

from ..http import limits
from ..http.errors import ConfigError, HTTPError
from ..http.https import HTTPSHandler, redirect_to_https
from ..http.parser import ChunkedDecoder, RequestParser
from ..http.protocol import Protocol
from ..http.response import error_response, render_head
from .aioloop import AsyncioLoop
from .connection import Connection
from .fastlane import FastLane
from .h2connection import H2Connection
from .lanewait import LaneWait
from .loop import Loop
from .readevent import Acceptor
from .socketside import READING_BODY
from .transport import PlainTransport, TLSTransport

log = logging.getLogger("reactor")

# Connections accepted per readiness event: enough to clear a burst, few enough that the
# connections already open are not starved while a flood arrives.
ACCEPT_BATCH = 64

# How long to stop accepting when the process is out of file descriptors.
ACCEPT_BACKOFF = 0.5

# Deadlines are checked this often: a timeout fires up to this much late, which is cheaper
# than a timer per connection re-armed on every request.
SWEEP_INTERVAL = 1.0

# Connections the kernel may complete before we accept them: bursts of new clients wait
# there instead of being refused.
LISTEN_BACKLOG = 1024

_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# Accepted descriptors are non-blocking already: a socket object told so by its type makes no
# system call to set it. Where the flag does not exist, plain sockets raise BlockingIOError
# all the same, and TLS ones (whose reads would wait for the socket) are told per socket.
_NON_BLOCKING_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
_TYPED_NON_BLOCKING = hasattr(socket, "SOCK_NONBLOCK")


def http2_engine(config):
    """The HTTP/2 engine module a Config asks for: the one named, else the best installed;
    None with --no-http2 or when there is none."""
    if not config.http2:
        return None
    from ..http import h2
    return h2.engine(config.http2_engine) if config.http2_engine else h2.DEFAULT


def build_handler(config):
    """The handler a Config asks for: an App, a WSGI or ASGI application, or static files."""
    if config.asgi:
        from ..apps.asgi import load_asgi
        return load_asgi(config)
    if config.app:
        from ..apps.app import load_app
        return load_app(config.app, config)
    if config.wsgi:
        from ..apps.wsgi import load_wsgi
        return load_wsgi(config.wsgi, config)
    from ..static import StaticFiles, options_from
    return StaticFiles(config.root, **options_from(config))


def open_listener(config, port=None) -> socket.socket:
    """A listening socket for the Config (TCP or unix), or for `port` on its host (TCP);
    raises ConfigError with one line."""
    if port is None and config.unix:
        remove_stale_socket(config.unix)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        return _listen(sock, config.unix, f"unix socket {config.unix}")
    host = config.host or "0.0.0.0"
    sock = tcp_socket(host)
    if port is None:
        port = config.port
        if config.reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return _listen(sock, (host, port), f"{host}:{port}")


def tcp_socket(host: str) -> socket.socket:
    """A TCP socket of `host`'s family that may bind a port still in TIME_WAIT."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _listen(sock, address, shown) -> socket.socket:
    try:
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {shown}: {error.strerror}") from None
    sock.setblocking(False)
    return sock


def remove_stale_socket(path: str):
    """A unix socket left by an earlier run would make bind fail; other files are kept (also
    used to remove our own socket file at exit)."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


class Server:
    """One single-threaded server: a loop, its listeners and its connections."""

    def __init__(self, config, handler=None, loop=None, tls=None, parser_class=RequestParser):
        """`tls`: the Certificates for listeners added as secure (loaded from the Config when
        it names certificates and none are given). `parser_class`: the RequestParser of a
        backend other than the one reactor.parser picked (both parse alike)."""
        self.config = config
        self.handler = handler if handler is not None else build_handler(config)
        # The handler as built, before the layers above put theirs in front: its start-up
        # and shutdown hooks are called on the loop.
        self.application = self.handler
        if loop is None:
            # A handler whose work is coroutines names the asyncio loop it runs on, and the
            # connections run on that loop too (aioloop.py).
            kind = getattr(self.handler, "event_loop", None)
            loop = Loop() if kind is None else AsyncioLoop(kind)
        self.loop = loop
        self.h2_engine = http2_engine(config)
        # Buffers the HTTP/2 engine fills, shared by this loop's HTTP/2 connections.
        self.h2_shared = self.h2_engine.new_shared() if self.h2_engine is not None else None
        if tls is None and config.tls:
            from .tls import load_certificates
            tls = load_certificates(config)
        if tls is not None:
            from .tls import ALPN, ALPN_H2
            tls.offer(ALPN_H2 if self.h2_engine is not None else ALPN)
        self.tls = tls
        self.secure_listeners = set()
        self.plain_handler = self.secure_handler = None   # set by start(), see _scheme_handlers
        self.parser = parser_class(max_request_line=config.max_request_line,
                                   max_head=config.max_head, max_headers=config.max_headers)
        self.recv_buffer = bytearray(limits.RECV_SIZE)
        self.recv_view = memoryview(self.recv_buffer)
        self.connections = set()
        # Connections that may be closed to make room at the limit, oldest first: idle
        # keep-alive ones and those lingering after their last response.
        self.reclaimable = {}
        self._hurried_until = 0.0
        self.listeners = []
        self._acceptors = {}   # listener -> (its Acceptor, its family, whether it speaks TLS)
        self.accepting = False
        self.draining = False
        self._drain_deadline = 0.0
        # Set by the layers above when they need it: a callable(sock, client, admit) that
        # sees each accepted socket first (the PROXY protocol header is read there) and
        # calls admit(sock, client) when it is to be served.
        self.accept_filter = None
        self.metrics = None             # an object with count(method, status, length, started)
        self.access_log = None          # an object with log(client, request, status, sent,
                                        # started), log_ready(...) and wants_fields for the
                                        # fast lane (see ops.accesslog), reopen() and close()
        self.accepted = 0               # connections accepted, and those admitted to be served
        self.handled = 0
        self.rejected = {}              # status -> requests refused with it (limits, framing)
        self.h2_goaways = {}            # reason -> HTTP/2 connections or streams a guard ended
        self.h2_guards = {}             # what the HTTP/2 guards counted, over closed connections
        self.lanes = {}   # handler -> its FastLane, made by start() (see _scheme_handlers)
        self.lane_wait = None   # the loop's wait through the C lane, where start() makes one
        # The state of a connection that has answered nothing: what the fast lane asks on
        # behalf of a connection that has no Protocol of its own yet. Never changed.
        self.fresh_protocol = self.new_protocol()

    def new_protocol(self) -> Protocol:
        config = self.config
        return Protocol(self.parser, ChunkedDecoder, config.max_body,
                        config.max_keepalive_requests)

    def refusal(self) -> bytes:
        """What a client speaking plain HTTP to an HTTPS port is sent, dated now."""
        return self.new_protocol().error(
            HTTPError(400, "a plain HTTP request was sent to the HTTPS port"))[0]

    def reload_certificates(self) -> bool:
        """Re-read the certificate files for new connections; False (old ones kept, one line
        logged) when they are bad or there are none."""
        return self.tls is not None and self.tls.reload()

    # -- listening -----------------------------------------------------------------------------

    def add_listener(self, sock: socket.socket, secure: bool = False):
        """Serve `sock`; with `secure`, over TLS with the server's certificates."""
        if secure and self.tls is None:
            raise ConfigError("a TLS listener needs certificates (--tls-cert)")
        sock.setblocking(False)
        family = sock.family
        if family in (socket.AF_INET, socket.AF_INET6):
            # Accepted sockets inherit it (Linux, the BSDs, macOS): once here, not per
            # connection.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deferred = self._defer_accept(sock, family, secure)
        self.listeners.append(sock)
        if secure:
            self.secure_listeners.add(sock)
        self._acceptors[sock] = (Acceptor(sock, ACCEPT_BATCH), int(family), secure, deferred)

    def _defer_accept(self, sock, family, secure: bool) -> bool:
        """Whether the kernel holds the plain TCP listener's new connections until their
        clients send something (limits.DEFER_ACCEPT): set as the Config says, also on an
        inherited listener."""
        if secure or family not in (socket.AF_INET, socket.AF_INET6) \
                or not hasattr(socket, "TCP_DEFER_ACCEPT"):
            return False
        seconds = math.ceil(self.config.defer_accept)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, seconds)
        return seconds > 0

    @property
    def address(self):
        return self.listeners[0].getsockname()

    @property
    def secure_address(self):
        return next(sock for sock in self.listeners if sock in self.secure_listeners).getsockname()

    def start(self):
        """Listen, and run the application's start-up hook (`startup(loop, address)`, which
        raises ConfigError to refuse to start; the server is closed then)."""
        if not self.listeners:
            config = self.config
            self.add_listener(open_listener(config), secure=config.tls and config.tls_port is None)
            if config.tls_port is not None:
                self.add_listener(open_listener(config, config.tls_port), secure=True)
        startup = getattr(self.application, "startup", None)
        if startup is not None:
            try:
                startup(self.loop, self.address)
            except BaseException:
                self.close()
                raise
        self._scheme_handlers()
        self.lane_wait = self._lane_wait()
        self._accept_on()
        self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _scheme_handlers(self):
        """The handler each kind of listener calls, wrapped around `handler` as it is now
        (layers above may have put theirs in front after __init__)."""
        config = self.config
        self.secure_handler = HTTPSHandler(self.handler, config.hsts)
        if config.redirect_https and self.secure_listeners:
            self.plain_handler = redirect_to_https(self.secure_address[1])
        else:
            self.plain_handler = self.handler
        wants_fields = self.access_log is not None and self.access_log.wants_fields
        # Only plain connections read their sockets in C: the secure lane keeps no C table.
        h2_ready = getattr(self.h2_engine, "ready", None)
        self.lanes = {handler: FastLane(self.loop, self.parser, handler, self.recv_buffer,
                                        wants_fields, native=handler is self.plain_handler,
                                        log=self.access_log, counted=self.metrics is not None,
                                        h2_ready=h2_ready)
                      for handler in (self.plain_handler, self.secure_handler)
                      if config.fast_lane and hasattr(handler, "ready")}

    def run(self):
        """Serve until stopped (shutdown() and its drain), then close."""
        try:
            self.loop.run()
        finally:
            self.close()

    def serve_forever(self):
        self.start()
        self.run()

    def _accept_on(self):
        if not self.accepting and not self.draining:
            self.accepting = True
            for sock in self.listeners:
                self.loop.add_reader(sock.fileno(),
                                     functools.partial(self._accept, *self._acceptors[sock]))

    def _accept_off(self):
        if self.accepting:
            self.accepting = False
            for sock in self.listeners:
                self.loop.remove_reader(sock.fileno())

    def _accept(self, acceptor, family: int, secure: bool, deferred: bool):
        connections = self.connections
        limit = self.config.max_connections
        # Without deferral a new connection's request is seldom there yet (1 in 16 under
        # wrk), and looking for it costs a read.
        lane = self._answering_lane() if deferred else None
        if lane is not None and len(connections) + ACCEPT_BATCH <= limit:
            taken, error, read_at, closed, answered, first_lines = acceptor.accept_answering(
                lane.native)
            if closed:
                self.accepted += closed
                self.handled += closed
                lane.hits[0] += answered
                if first_lines:
                    lane.log_filled()
        else:
            taken, error = acceptor.accept()
            read_at = None
        # TLS wraps a socket.socket; a plain connection needs no more than the C type below
        # it, which costs a third as much to make.
        make = socket.socket if secure else _socket.socket
        for i, (fd, host, port) in enumerate(taken):
            self.accepted += 1
            sock = make(family, _NON_BLOCKING_STREAM, 0, fd)
            if secure and not _TYPED_NON_BLOCKING:
                sock.setblocking(False)
            client = (host, port) if family != socket.AF_UNIX else ("unix", 0)
            if len(connections) >= limit and not self._make_room():
                self._refuse(sock, secure)
                continue
            admit = self.admit_secure if secure else self.admit
            if i == read_at:
                admit(sock, client).first_read_answered(lane.native.results[0])
            elif self.accept_filter is None:
                admit(sock, client)
            else:
                self.accept_filter(sock, client, admit)
        if error is not None:
            if error.errno not in _OUT_OF_RESOURCES:
                raise error
            log.warning("out of file descriptors (%s); pausing accept for %.1fs",
                        error.strerror, ACCEPT_BACKOFF)
            self._accept_off()
            self.loop.call_later(ACCEPT_BACKOFF, self._accept_on)

    def _make_room(self) -> bool:
        """At the limit: close the connection that has waited longest for nothing (it costs
        its client a reconnect). With none to close, hurry the heads still arriving, so that
        room comes soon, and say no."""
        if self.reclaimable:
            next(iter(self.reclaimable)).close()
            return True
        now = self.loop.now
        if now >= self._hurried_until:
            self._hurried_until = now + SWEEP_INTERVAL
            deadline = now + limits.PRESSED_HEADER_TIMEOUT
            for connection in self.connections:
                connection.hurry(deadline)
        return False

    def _refuse(self, sock, secure: bool):
        """Full, and nothing to reclaim: a 503 at once beats a wait in the kernel's backlog.
        (A TLS client could not read it: it is only closed.)"""
        self.note_rejection(503)
        try:
            # What the client sent already is read first: closing on unread bytes would reset
            # the connection, and a reset can discard the 503 before the client reads it.
            sock.recv_into(self.recv_buffer)
        except OSError:
            pass
        if not secure:
            busy = error_response(503, "connection limit reached",
                                  [("Retry-After", str(limits.RETRY_AFTER))])
            try:
                sock.send(render_head(busy, 11, False) + busy.body)
            except OSError:
                pass
        sock.close()

    def _lane_wait(self):
        """A LaneWait, started, where the loop waits on epoll and the plain lane's C side can
        end a read (readevent.h, RE_DONE: not where each answer is logged or counted in
        Python); else None."""
        lane = self.lanes.get(self.plain_handler)
        if lane is None or lane.native is None or not lane.native.ends_reads \
                or getattr(self.loop, "epoll_fd", None) is None:
            return None
        wait = LaneWait(self, lane, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        wait.start()
        return wait

    def _answering_lane(self):
        """The fast lane that may read and answer new plain connections as they are accepted
        (Acceptor.accept_answering), renewed if due, or None: it needs the C lane, no filter
        before a connection is served (the PROXY protocol), and a keep-alive plan that lets a
        connection that has answered nothing answer all a read can hold, closing only where
        the client asks, as NativeLane.serve is let send."""
        lane = self.lanes.get(self.plain_handler)
        if lane is None or lane.native is None or self.accept_filter is not None:
            return None
        if not self.fresh_protocol.answers_freely():
            return None
        if lane.expires <= self.loop.now:
            lane.renew()
        return lane

    def admit(self, sock, client) -> Connection:
        """Start serving an accepted socket; `client` is the address requests are from."""
        self.handled += 1
        connection = Connection(self, PlainTransport(self.loop, sock), client,
                                self.plain_handler)
        self.connections.add(connection)
        return connection

    def admit_secure(self, sock, client):
        """Start serving an accepted socket over TLS, from the handshake on."""
        tls = self.tls
        try:
            transport = TLSTransport(self.loop, sock, tls.context, self.refusal, client, tls.ktls)
        except OSError:   # the peer is gone already
            sock.close()
            return
        self.handled += 1
        connection = Connection(self, transport, client, self.secure_handler)
        connection.deadline = self.loop.now + self.config.handshake_timeout
        self.connections.add(connection)

    def response_ended(self, connection, request, status: int, sent: int, started: float):
        """A response was written in full, or lost part way with its connection: `sent` is
        the body bytes that went out (nginx's $body_bytes_sent), `started` the loop time its
        request arrived. The one place where a request is complete: counted and logged here.
        A request of the HTTP/2 fast lane (shared by its answers) has no client: the
        connection's is the one (no forwarding fields are read where the lane answers)."""
        if self.metrics is not None:
            self.metrics.count(request.method, status, sent, started)
        if self.access_log is not None:
            self.access_log.log(request.client or connection.client, request, status, sent,
                                started)

    def ready_ended(self, connection, logged, keys, answers, fields):
        """The fast lane's answers to one read were written in full by one send: counted and
        logged as response_ended would, without a request or a response end for each
        (see AccessLog.log_ready for the arguments)."""
        started = self.loop.now
        if self.metrics is not None:
            self.metrics.count_ready(logged, keys, answers, started)
        self.access_log.log_ready(connection.client, logged, keys, answers, fields, started)

    def note_rejection(self, status: int):
        self.rejected[status] = self.rejected.get(status, 0) + 1

    def note_h2_goaway(self, reason: str):
        """An HTTP/2 guard ended a connection (or a stream, for `send_timeout`)."""
        self.h2_goaways[reason] = self.h2_goaways.get(reason, 0) + 1

    def note_h2_counts(self, counts: dict):
        """What an HTTP/2 connection's guards counted, added when it closes."""
        guards = self.h2_guards
        for name, count in counts.items():
            guards[name] = guards.get(name, 0) + count

    def h2_engine_bytes(self) -> int:
        """What the HTTP/2 engine's library holds for this server's open HTTP/2 connections."""
        return sum(connection.session.memory() for connection in self.connections
                   if connection.__class__ is H2Connection)

    def switch_to_h2(self, connection, n: int):
        """`connection` turned out to speak HTTP/2 (its first n bytes are in the receive
        buffer): an H2Connection takes over its socket."""
        self.connections.discard(connection)
        self.reclaimable.pop(connection, None)
        h2 = H2Connection(self, connection.transport, connection.client, connection.handler)
        self.connections.add(h2)
        h2.feed(self.recv_view[:n])

    def reopen_logs(self):
        """Reopen the access log file (SIGUSR1, after log rotation)."""
        if self.access_log is not None:
            self.access_log.reopen()

    def connection_closed(self, connection):
        self.connections.discard(connection)
        self.reclaimable.pop(connection, None)
        if self.accepting:
            return
        if self.draining:
            if not self.connections:
                self.loop.stop()   # drained: at once, not at the next sweep
        elif len(self.connections) < self.config.max_connections:
            self._accept_on()

    # -- deadlines and shutdown ----------------------------------------------------------------

    def _sweep(self):
        now = self.loop.now
        for connection in [c for c in self.connections if c.deadline < now]:
            # A connection waiting on its handler has no deadline of its own, unless the
            # handler waits on the request's body (see Connection._serve).
            if connection.waiting is None or connection.state is READING_BODY:
                connection.on_timeout()
        if self.draining:
            for connection in list(self.connections):
                connection.drain()
            if not self.connections or now >= self._drain_deadline:
                self.loop.stop()
                return
        self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    def shutdown(self, grace=None):
        """Stop accepting, let responses under way finish (at most `grace` seconds), stop."""
        if self.draining:
            return
        self.draining = True
        if self.lane_wait is not None:
            self.lane_wait.stop()   # the answer that leaves a connection idle now says close
            self.lane_wait = None
        self._accept_off()
        for sock in self.listeners:
            sock.close()
        self.listeners.clear()
        self._acceptors.clear()
        grace = self.config.shutdown_grace if grace is None else grace
        self._drain_deadline = self.loop.now + grace
        for connection in list(self.connections):
            connection.drain()
        if not self.connections or grace <= 0:
            self.loop.stop()

    def close(self):
        for connection in list(self.connections):
            connection.close()
        for sock in self.listeners:
            self.loop.forget(sock.fileno())
            sock.close()
        self.listeners.clear()
        self._acceptors.clear()
        shutdown = getattr(self.application, "shutdown", None)
        if shutdown is not None:
            shutdown(self.loop)   # the application's own shutdown, on its loop, after the drain
        if self.access_log is not None:
            self.access_log.close()
        close_handler = getattr(self.handler, "close", None)
        if close_handler is not None:
            close_handler()   # thread pools of apps: a stuck one must not hold up exit
        self.loop.close()


def ready_line(config, listener, tls=None, tls_listeners=()) -> str:
    """What the server serves, where (plain and HTTPS URLs), and how: parser, workers, kTLS."""
    from ..http.parser import BACKEND

    secure = config.tls and config.tls_port is None
    if config.unix:
        where = f"{'https+' if secure else ''}unix:{config.unix}"
    else:
        where = _url(listener, "https" if secure else "http")
    for sock in tls_listeners:
        where += " and " + _url(sock, "https")
    what = config.asgi or config.app or config.wsgi or os.path.abspath(config.root)
    engine = http2_engine(config)
    notes = [f"parser: {BACKEND}", f"http2: {engine.NAME}" if engine is not None else "HTTP/1.1 only",
             "1 worker" if config.workers == 1 else f"{config.workers} workers"]
    if tls is not None:
        notes.append("kTLS on" if tls.ktls else "kTLS off")
    return f"reactor serving {what} at {where} ({', '.join(notes)})"


def _url(listener, scheme) -> str:
    host, port = listener.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/"
