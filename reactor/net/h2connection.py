"""One HTTP/2 connection on the loop: its transport, its engine session and its streams.

The server hands a connection over here once it has seen the client preface (h2c with prior
knowledge) or ALPN chose h2. Each read goes to the engine in one call (reactor.http.h2), whose
events become Requests for the same handlers HTTP/1.1 calls; their Responses go back to the
engine as HEADERS and body pieces (bytes, file slices, items of an iterator), and the frames it
produces are written with send / sendfile through the transport, plain or TLS. The engine
decides which stream's DATA goes next (RFC 9218 urgency, round robin among equals); this module
decides how much per turn (limits.H2_SEND_BUDGET), so one large file never holds the loop.

The fast lane: the engine answers a plain request whose key the lane's table holds (kept
answers made from the handler's ready answers, see FastLane.fill_h2) inside `receive`, with no
Request, handler call or stream here; a plain request it cannot answer so comes with its key,
and the table is filled from it. A read's requests are taken a share per turn
(limits.H2_REQUESTS_PER_TURN); the rest of the read waits for the next turn, reading paused.

Knows HTTP/2 streams, never frames, files or routes. Looks like a Connection to the server:
`deadline`, `waiting`, `state`, `on_timeout`, `hurry`, `drain`, `close`.
"""

import logging
import socket
from concurrent.futures import Future

from ..http import limits
from ..http.errors import HTTPError
from ..http.h2 import (
    CANCEL,
    CLOSE,
    DATA,
    END,
    END_STREAM,
    NO_ERROR,
    REQUEST,
    Piece,
    Refusal,
    build_request,
    framing,
)
from ..http.protocol import discard_body
from ..http.response import Deferred, FileSlice, date_and_server, error_response
from .connection import answer, answer_of
from .socketside import CLOSED, IDLE, WRITING, SocketSide

log = logging.getLogger("reactor")

MSG_MORE = getattr(socket, "MSG_MORE", 0)
_END = object()


class H2Stream:
    """One request and its response. `source` is what the body still comes from (a file
    slice, an iterator over parts or items) and is closed when the stream is released."""

    __slots__ = ("id", "request", "parts", "size", "owed", "discard", "status", "started",
                 "source", "pieces", "waiting", "progress", "moved")

    def __init__(self, stream_id, request, started):
        self.id = stream_id
        self.request = request      # None for a request refused before any handler saw it
        self.parts = []             # request body pieces as they arrive
        self.size = 0               # request body bytes received and kept
        self.owed = 0               # bytes received but not yet given back to the window
        self.discard = False        # answered already: what the client still sends is dropped
        self.status = None          # of the response submitted
        self.started = started      # loop time the request arrived (or its body began)
        self.source = None          # the response body, released with the stream
        self.pieces = None          # an iterator over it, when it goes out piece by piece
        self.waiting = None         # a Future the response or its next piece waits on
        self.progress = -1          # body bytes framed at the last look (send timeout)
        self.moved = started        # when they last grew


class H2Connection(SocketSide):
    __slots__ = ("server", "loop", "transport", "client", "handler", "session", "streams",
                 "output", "blocked", "reading", "deadline", "waiting", "state", "served",
                 "buffered", "sendfile", "drain_stage", "drain_at", "closing", "lane", "ready",
                 "wrote", "answers", "later")

    def __init__(self, server, transport, client, handler):
        """Then `feed` the bytes already read from the client (its preface, at least)."""
        self.server = server
        self.loop = server.loop
        self.transport = transport
        self.client = client
        self.handler = handler
        self.session = server.h2_engine.Session(server.h2_shared)
        # The fast lane's kept answers, which the engine answers plain requests from, when it
        # keeps any and the access log wants no more of a request than its key tells.
        lane = server.lanes.get(handler)
        log = server.access_log
        if lane is None or lane.h2_ready is None or (log is not None and log.wants_fields):
            lane = None
        self.lane = lane
        self.ready = lane.h2 if lane is not None else None
        # stream id -> (request, status, loop time) of the lane's answers, for the log and
        # metrics, when either is on.
        self.answers = None
        if lane is not None and (log is not None or server.metrics is not None):
            self.answers = {}
            self.session.record_answers()
        self.streams = {}
        self.output = []        # what the socket did not take: bytes, file pieces, streams
        self.blocked = False    # registered for writability
        self.reading = True
        self.waiting = None     # the connection never waits as a whole; its streams may
        self.state = IDLE
        self.served = 0
        self.buffered = 0       # request body bytes held by this connection's streams
        self.sendfile = getattr(transport, "kernel_sendfile", False)
        self.drain_stage = 0
        self.drain_at = 0.0
        self.closing = False    # a GOAWAY ends it: close once it is written
        self.wrote = self.loop.now   # when frames last went out
        self.later = False      # part of a read waits for the next turn: no reading meanwhile
        self.deadline = self.loop.now + server.config.header_timeout
        transport.watch(self.on_readable, None)

    # -- input ---------------------------------------------------------------------------------

    def on_readable(self):
        n = self._read()
        if n:
            self.feed(self.server.recv_view[:n])
        elif n == 0:
            self.close()   # streams still open are abandoned: the client left

    def feed(self, data):
        """Run bytes received through the engine, answer what they complete, write."""
        session = self.session
        now = self.loop.now
        lane = self.lane
        if lane is not None and lane.expires <= now:
            lane.renew()   # before the engine answers from its table
        for event in session.receive(data, now, self.ready):
            kind = event[0]
            if kind == REQUEST:
                self._request(event[1], event[2], event[3], event[4], now)
            elif kind == DATA:
                self._data(event[1], event[2])
            elif kind == END:
                self._end(event[1])
            elif kind == CLOSE:
                self._stream_closed(event[1], event[2], event[3])
        if lane is not None and session.answered:
            self._lane_answered(session.answered)
            session.answered = 0
            if self.answers is not None:
                logged = lane.h2_logged
                for stream_id, key in session.kept:
                    self.answers[stream_id] = (*logged[key], now)
                session.kept.clear()
        failure = session.failure
        if failure is not None:
            self.server.note_h2_goaway(failure[0])
            self.closing = True
        elif session.rest:
            self.later = True
            self.loop.call_soon(self._feed_later)
        self._flush()
        if self.later and self.reading:
            self._watch(False, self.blocked)

    def _feed_later(self):
        """The rest of a read that held more requests than one turn takes."""
        if self.state is CLOSED:
            return
        self.later = False
        rest = self.session.rest
        self.session.rest = b""
        self.feed(rest)

    def _taken(self, count):
        """`count` requests more were taken (answered, or on their way to an answer)."""
        self.served += count
        if self.served >= self.server.config.max_keepalive_requests and not self.drain_stage:
            # The last request this connection takes: later streams are refused, and the
            # client opens a new connection for them.
            self.session.shutdown(True)
            self.drain_stage = 2

    def _lane_answered(self, count):
        """`count` plain requests were answered from the fast lane's kept answers."""
        self.state = WRITING
        self.lane.hits[0] += count
        self._taken(count)

    def _request(self, stream_id, flags, parts, key, now):
        if key is not None and self.lane is not None:
            kept = self.ready.get(key) or self.lane.fill_h2(key)
            if kept is not None and self.session.answer(stream_id, kept):
                self._lane_answered(1)
                if self.answers is not None:
                    self.answers[stream_id] = (*self.lane.h2_logged[key], now)
                return
        request = build_request(parts, flags)
        self._taken(1)
        if request.__class__ is HTTPError:
            self.server.note_rejection(request.status)
            stream = H2Stream(stream_id, None, now)
            self.streams[stream_id] = stream
            stream.discard = not flags & END_STREAM
            self._respond(stream, error_response(request.status, request.reason))
            return
        request.client = self.client
        stream = H2Stream(stream_id, request, now)
        self.streams[stream_id] = stream
        self.state = WRITING
        if flags & END_STREAM:
            self._serve(stream)
            return
        length = request.content_length
        if length is not None and length > self.server.config.max_body:
            self._refuse_body(stream, length)
            return
        early = getattr(self.handler, "early_response", None)
        if early is not None:
            response = answer(early, request)
            if response is not None:
                stream.discard = True   # its body is dropped as it comes
                self._respond(stream, response)

    def _refuse_body(self, stream, size):
        self.server.note_rejection(413)
        self._release_body(stream)
        stream.discard = True
        self._respond(stream, error_response(413, f"request body over "
                                                  f"{self.server.config.max_body} bytes"))

    def _data(self, stream_id, data):
        stream = self.streams.get(stream_id)
        size = len(data)
        if stream is None or stream.discard:
            self.session.consume(stream_id, size)
            return
        stream.size += size
        if stream.size > self.server.config.max_body:
            self.session.consume(stream_id, size)
            self._refuse_body(stream, stream.size)
            return
        stream.parts.append(data)
        self.buffered += size
        stream.moved = self.loop.now
        if self.buffered <= limits.H2_BODY_BUDGET:
            self.session.consume(stream_id, size)
        else:
            stream.owed += size   # given back when other bodies are released

    def _end(self, stream_id):
        stream = self.streams.get(stream_id)
        if stream is None or stream.discard or stream.request is None:
            return
        request = stream.request
        request.body = b"".join(stream.parts)
        stream.parts = []
        if request.content_length is None:
            request.content_length = len(request.body)
        self._serve(stream)

    def _release_body(self, stream):
        """The stream's request body is no longer held: its bytes leave the budget, and
        streams waiting for window get theirs."""
        if stream.size:
            self.buffered -= stream.size - stream.owed
            stream.parts = []
            if stream.owed:
                self.session.consume(stream.id, stream.owed)
                stream.owed = 0
            stream.size = 0
            for other in self.streams.values():
                if other.owed and self.buffered <= limits.H2_BODY_BUDGET:
                    self.buffered += other.owed
                    self.session.consume(other.id, other.owed)
                    other.owed = 0

    # -- answering -----------------------------------------------------------------------------

    def _serve(self, stream):
        request = stream.request
        stream.started = self.loop.now
        response = answer(self.handler, request)
        # A Deferred (an ASGI answer, given on this thread) is waited on as a Future is.
        if isinstance(response, (Future, Deferred)):
            stream.waiting = response
            response.add_done_callback(
                lambda future: self.loop.call_soon_threadsafe(self._resume, stream, future))
            return
        self._respond(stream, response)

    def _resume(self, stream, future):
        response = answer_of(future, stream.request)
        if stream.waiting is not future or self.state is CLOSED:
            discard_body(response.body)   # reset or closed meanwhile
            return
        stream.waiting = None
        self._respond(stream, response)
        self._flush()

    def _respond(self, stream, response):
        """Submit the response's HEADERS and its first body piece."""
        status = response.status
        body = response.body
        stream.status = status
        request = stream.request
        length, bare = framing(response, request is not None and request.method == "HEAD")
        extra = date_and_server()[1]
        try:
            if bare:
                discard_body(body)
                self.session.respond(stream.id, status, response.fields, extra, length, None,
                                     True, False)
                return
            if isinstance(body, (bytes, bytearray, memoryview)):
                piece, last = Piece(body), True
            elif body.__class__ is FileSlice:
                stream.source = body
                piece, last = Piece(fd=body.fd, offset=body.offset, count=body.count), True
            else:
                # Parts of known length (multipart ranges) or an iterable of unknown length:
                # piece by piece, each asked for when the engine has sent the one before.
                stream.source = body
                stream.pieces = iter(body)
                piece, last = Piece(), False
            self.session.respond(stream.id, status, response.fields, extra, length, piece,
                                 last, self.sendfile)
        except Refusal:
            self._release(stream)

    def _next_piece(self, stream):
        """The engine has sent all it had of a body given in pieces: give it the next one."""
        if stream.waiting is not None or stream.pieces is None:
            return
        try:
            while True:
                item = next(stream.pieces, _END)
                if item.__class__ is FileSlice:   # a part of a multipart answer
                    piece = Piece(fd=item.fd, offset=item.offset, count=item.count)
                elif isinstance(item, (Future, Deferred)):
                    stream.waiting = item
                    item.add_done_callback(lambda future: self.loop.call_soon_threadsafe(
                        self._piece_ready, stream, future))
                    return
                elif item is _END:
                    stream.pieces = None
                    self.session.supply(stream.id, Piece(), True)
                    return
                elif item:
                    piece = Piece(bytes(item))
                else:
                    continue
                self.session.supply(stream.id, piece, False)
                return
        except Exception:
            log.exception("response body failed after its head was sent to %s", self.client[0])
            stream.pieces = None
            self.session.reset(stream.id, CANCEL)

    def _piece_ready(self, stream, future):
        if stream.waiting is not future or self.state is CLOSED:
            return
        stream.waiting = None
        try:
            item = future.result()
        except Exception:
            log.exception("response body failed after its head was sent to %s", self.client[0])
            stream.pieces = None
            self.session.reset(stream.id, CANCEL)
        else:
            if item:
                self.session.supply(stream.id, Piece(bytes(item)), False)
            else:
                self._next_piece(stream)
        self._flush()

    # -- output --------------------------------------------------------------------------------

    def _flush(self):
        """Write what the engine has, turn after turn, until it has nothing, the socket is
        full (writer registered) or the connection is closed."""
        session = self.session
        while self.state is not CLOSED:
            if self.output and not self._write_pending():
                return
            if not session.want_write():
                break
            segments, closed, starved = session.send(limits.H2_SEND_BUDGET)
            if segments:
                self.wrote = self.loop.now
                self._write(segments)
            for stream_id, code, sent in closed:
                self._stream_closed(stream_id, code, sent)
            for stream_id in starved:
                stream = self.streams.get(stream_id)
                if stream is not None:
                    self._next_piece(stream)
            if self.blocked or not (segments or closed or starved):
                break
        if self.state is CLOSED or self.blocked:
            return
        if not self.output and (self.closing or not (session.want_read()
                                                     or session.want_write())):
            self.close()
            return
        if not self.reading and not self.later:
            self._watch(True, False)
        self._note_idle()

    def _write(self, segments):
        """Write the engine's segments in order; what the socket does not take is kept (the
        runs copied out of the engine's buffer, which the next turn reuses)."""
        transport = self.transport
        last = len(segments) - 1
        for index, segment in enumerate(segments):
            if segment.__class__ is tuple:
                rest = self._send_file(*segment)
                if rest is None:
                    continue
                if rest:
                    self.output.append(rest)
                    self._keep(segments, index + 1)
                return
            try:
                sent = transport.send(segment, MSG_MORE if index < last else 0)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            if sent < len(segment):
                self.output.append(bytes(segment[sent:]))
                self._keep(segments, index + 1)
                return

    def _send_file(self, fd, offset, count):
        """Send a file piece: None when it is all sent, the (fd, offset, count) left when the
        socket is full, () when the connection was closed."""
        while count:
            try:
                sent = self.transport.sendfile(fd, offset, count)
            except (BlockingIOError, InterruptedError):
                return fd, offset, count
            except OSError:
                self.close()
                return ()
            if sent == 0:
                # The file shrank: the DATA frame's length can no longer be kept.
                log.warning("file changed while being sent to %s; closing", self.client[0])
                self.close()
                return ()
            offset += sent
            count -= sent
        return None

    def _keep(self, segments, start):
        """The segments from `start` on wait for the socket, copied where they are views."""
        output = self.output
        for segment in segments[start:]:
            output.append(segment if segment.__class__ is tuple else bytes(segment))
        self._block()

    def _write_pending(self) -> bool:
        """Write what waited for the socket; False while it still waits (or on a close)."""
        output = self.output
        transport = self.transport
        while output:
            item = output[0]
            if item.__class__ is H2Stream:
                output.pop(0)
                self._release(item)
                continue
            if item.__class__ is tuple:
                rest = self._send_file(*item)
                if rest is not None:
                    if rest:
                        output[0] = rest
                        self._block()
                    return False
                output.pop(0)
                continue
            try:
                sent = transport.send(item, MSG_MORE if len(output) > 1 else 0)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return False
            if sent < len(item):
                output[0] = memoryview(item)[sent:]
                self._block()
                return False
            output.pop(0)
        if self.blocked:
            self._watch(not self.later, False)
        return True

    def _write_more(self):
        self._flush()

    # -- streams ending ------------------------------------------------------------------------

    def _stream_closed(self, stream_id, code, sent):
        """The engine closed the stream (its exchange ended, or a reset): release it once the
        output queued before this point is written. `sent`: the body bytes of a lane answer."""
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            if self.answers is not None:
                answer = self.answers.pop(stream_id, None)
                if answer is not None:
                    request, status, started = answer
                    self.server.response_ended(self, request, status, sent, started)
            return
        if stream.waiting is not None:
            stream.waiting = None   # its handler or next piece is dropped when it comes
        if self.output:
            self.output.append(stream)
        else:
            self._release(stream)
        if not self.streams:
            self.state = IDLE

    def _release(self, stream):
        """Close what the stream's body held, count and log its response, give back the
        window its request body held."""
        sent = self.session.forget(stream.id)
        if stream.size:
            self._release_body(stream)
        if stream.source is not None:
            discard_body(stream.source)
            stream.source = stream.pieces = None
        if stream.status is not None and stream.request is not None:
            self.server.response_ended(self, stream.request, stream.status, sent,
                                       stream.started)

    def _note_idle(self):
        """Set the deadline the connection's state calls for."""
        now = self.loop.now
        config = self.server.config
        if self.streams or (self.lane is not None and self.session.answering()):
            # Streams are looked at once a sweep: bodies too slow, windows that never open.
            self.deadline = now + 1.0
            self.server.reclaimable.pop(self, None)
        else:
            self.state = IDLE
            self.deadline = now + (config.keepalive_timeout if self.served
                                   else config.header_timeout)
            if self.served:
                self.server.reclaimable[self] = None

    def on_timeout(self):
        if self.blocked:
            self.close()   # the client stopped reading for send_timeout
            return
        now = self.loop.now
        config = self.server.config
        session = self.session
        if not self.streams:
            if (self.lane is not None and session.answering()
                    and now - self.wrote <= config.send_timeout):
                # Answers from the fast lane are on their way: they have no stream of
                # their own here, and the connection's output stands for them.
                self.deadline = now + 1.0
                return
            self._goaway()   # idle for the keep-alive timeout, or the lane's answers stuck
            return
        for stream in list(self.streams.values()):
            if stream.request is not None and stream.status is None and stream.waiting is None:
                # The request body is still arriving: it must keep coming.
                if now - stream.moved > config.body_timeout:
                    self.server.note_rejection(408)
                    stream.discard = True
                    self._release_body(stream)
                    self._respond(stream, error_response(408, "request body too slow"))
            elif stream.status is not None and stream.waiting is None:
                sent = session.sent(stream.id)
                if sent != stream.progress:
                    stream.progress = sent
                    stream.moved = now
                elif now - stream.moved > config.send_timeout:
                    # The client keeps the stream's window shut: nothing of it moves.
                    self.server.note_h2_goaway("send_timeout")
                    session.reset(stream.id, CANCEL)
        self._flush()

    def hurry(self, deadline: float):
        """At the connection limit: a client that has asked nothing yet must ask by `deadline`."""
        if not self.served and deadline < self.deadline:
            self.deadline = deadline

    def drain(self):
        """Graceful shutdown (called at once and then once a sweep): GOAWAY announcing it,
        then, a moment later, the GOAWAY with the last stream that will be answered; the open
        streams finish, and the connection closes when none is left."""
        if self.state is CLOSED:
            return
        if self.drain_stage == 0:
            self.session.shutdown(False)
            self.drain_stage = 1
            self.drain_at = self.loop.now + limits.H2_GOAWAY_DELAY
        elif self.drain_stage == 1 and self.loop.now >= self.drain_at:
            self.session.shutdown(True)
            self.drain_stage = 2
        self._flush()

    def _goaway(self):
        """End an idle connection politely: GOAWAY(NO_ERROR), written, then close."""
        self.closing = True
        self.session.terminate(NO_ERROR)
        self._flush()

    def close(self):
        """Close now: the client is gone or too slow, or the GOAWAY is written."""
        if self.state is CLOSED:
            return
        self.state = CLOSED
        self.transport.close()
        for stream in self.streams.values():
            stream.waiting = None
            self.output.append(stream)
        self.streams.clear()
        for item in self.output:
            if item.__class__ is H2Stream:
                self._release(item)
        self.output.clear()
        if self.answers:
            # The lane's answers lost with the connection, logged with what went of them.
            for stream_id, (request, status, started) in self.answers.items():
                self.server.response_ended(self, request, status, self.session.sent(stream_id),
                                           started)
            self.answers.clear()
        counts = self.session.counts()
        if counts:
            self.server.note_h2_counts(counts)
        self.session.close()
        self.server.connection_closed(self)
