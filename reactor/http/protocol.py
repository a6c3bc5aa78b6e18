"""The HTTP/1.1 server side of one connection, without I/O.

Bytes go in (`receive`), complete requests come out with their bodies read; a response goes
in (`respond`), the pieces to write come out with the keep-alive decision made. Owns framing
(RFC 9112 §6.3: Content-Length, chunked, nothing else), bodies and their limit, pipelining
order, keep-alive and the input state. Must not import sockets, the loop or any handler.
"""

import enum

from . import limits
from .errors import HTTPError, ParseError
from .response import (
    INLINE_BODY,
    NO_CONTENT,
    FileSlice,
    error_response,
    render_head,
    render_message,
)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class State(enum.Enum):
    IDLE = "idle"          # between requests, nothing buffered
    HEAD = "head"          # part of a request head is buffered
    BODY = "body"          # a head is complete, its body is still arriving
    CLOSED = "closed"      # no more input will be read: error, close requested or last request


# The members as module globals, read on every request: on Python 3.11 a member read through
# its Enum class goes by way of EnumType.__getattr__ (see reactor.net.socketside).
IDLE, HEAD, BODY, CLOSED = State.IDLE, State.HEAD, State.BODY, State.CLOSED


class EarlyAnswer:
    """A request answered from its head alone: its body was not read, so the connection ends
    after `response` (with a short drain of what the client still sends)."""

    __slots__ = ("request", "response")

    def __init__(self, request, response):
        self.request = request
        self.response = response


class Stream:
    """A response body of unknown length, written as it is produced.

    Items of `iterable` are bytes, or Futures or Deferreds whose result is bytes or None. `chunked` says
    whether to frame them (HTTP/1.1) or send them raw and close (HTTP/1.0)."""

    __slots__ = ("iterator", "source", "chunked")

    def __init__(self, iterable, chunked: bool):
        self.source = iterable
        self.iterator = iter(iterable)
        self.chunked = chunked

    def frame(self, data: bytes) -> bytes:
        if not self.chunked:
            return data
        return b"%x\r\n%s\r\n" % (len(data), data)

    def last(self) -> bytes:
        if not self.chunked:
            return b""
        # The source's `trailers`, rendered field lines, go in the last chunk (RFC 9112 §7.1.2).
        return b"0\r\n%s\r\n" % getattr(self.source, "trailers", b"")

    def close(self):
        close = getattr(self.source, "close", None)
        if close is not None:
            close()


class BodyStream:
    """A request body delivered as it arrives, for a handler that reads it itself.

    The protocol feeds it; the reader takes what has arrived with read() and learns of
    anything new through `listener()`. `complete` says the whole body arrived; `lost` that
    the client is gone or sent all it will (EOF), or that the body broke. Past
    BODY_BUFFER unread bytes `full` is true: the connection stops reading, and sets `resume`
    for read() to call once the reader has caught up. Once the request is answered the rest
    of the body is only read past (discard()).
    """

    __slots__ = ("chunks", "size", "complete", "lost", "listener", "resume", "discarding")

    def __init__(self, complete: bool = False):
        self.chunks = []
        self.size = 0
        self.complete = complete
        self.lost = False
        self.listener = None
        self.resume = None
        self.discarding = False

    @property
    def full(self) -> bool:
        return self.size >= limits.BODY_BUFFER

    def feed(self, data: bytes):
        if self.discarding:
            return
        self.chunks.append(data)
        self.size += len(data)
        self._tell()

    def end(self):
        self.complete = True
        self._tell()

    def lose(self):
        """The client is gone (or sent all it will), or the body broke."""
        self.lost = True
        self.resume = None
        self._tell()

    def read(self) -> bytes:
        """Every byte that arrived and was not read yet."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.size = 0
        self._resume()
        return data

    def discard(self):
        """The request is answered: drop what is buffered and whatever else arrives."""
        self.discarding = True
        self.chunks = []
        self.size = 0
        self.listener = None
        self._resume()

    def _resume(self):
        resume, self.resume = self.resume, None
        if resume is not None:
            resume()

    def _tell(self):
        if self.listener is not None:
            self.listener()


def plain_message(response, version: int, keep_alive: bool, head: bool):
    """What respond() writes for a GET (or HEAD) of `response`, when that is a single buffer
    of a bytes body below INLINE_BODY; else None."""
    body = response.body
    if body.__class__ is not bytes or len(body) >= INLINE_BODY:
        return None
    if head or response.status in NO_CONTENT:
        return render_head(response, version, keep_alive)
    return render_message(response, version, keep_alive)


def discard_body(body):
    """Release what a body holds when it will not be sent (HEAD, abandoned responses)."""
    if isinstance(body, (FileSlice, Stream)):
        body.close()
    elif isinstance(body, (list, tuple)):
        for part in body:
            discard_body(part)
    elif not isinstance(body, (bytes, bytearray, memoryview)):
        close = getattr(body, "close", None)
        if close is not None:
            close()


class Protocol:
    """One connection's HTTP state. Create with a RequestParser and the limits it enforces."""

    __slots__ = ("parser", "decoder_factory", "max_body", "max_requests", "judge", "state",
                 "served", "persist", "draining", "stream_bodies", "held", "_buffer",
                 "_body_request", "_body_parts", "_body_size", "_body_left", "_decoder")

    def __init__(self, parser, decoder_factory, max_body: int, max_requests: int, judge=None):
        self.parser = parser
        self.decoder_factory = decoder_factory
        self.max_body = max_body
        self.max_requests = max_requests
        # judge(request) -> a response to send without reading the body, or None to read it.
        self.judge = judge
        self.state = IDLE
        self.served = 0
        self.persist = True   # whether the connection may outlive the next response
        self.draining = False   # answer what was received, then close (see plan_answers)
        # Hand each request over at its head, its body following into request.stream
        # (a BodyStream), instead of once the body is read whole.
        self.stream_bodies = False
        # After a request asking to upgrade (in stream_bodies mode), what follows may be the
        # new protocol's bytes: they are kept unparsed until release() or take_buffered().
        self.held = False
        self._buffer = b""
        self._body_request = None

    @property
    def body_received(self) -> int:
        """Bytes of the body being read that have arrived (0 between bodies)."""
        if self._body_request is None:
            return 0
        if self._decoder is None:
            return self._body_request.content_length - self._body_left
        return self._body_size

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete head or body."""
        return len(self._buffer)

    @property
    def streaming(self):
        """The BodyStream being fed now, or None."""
        request = self._body_request
        return None if request is None else request.stream

    def release(self) -> list:
        """The upgrade was refused: what was held is HTTP after all; the events it makes."""
        self.held = False
        rest, self._buffer = self._buffer, b""
        return self.receive(rest) if rest else []

    def take_buffered(self) -> bytes:
        """What arrived past the last request and was not parsed: after a 101 it belongs to
        the protocol switched to. No more HTTP is read afterwards."""
        rest, self._buffer = self._buffer, b""
        self.state = CLOSED
        return rest

    @property
    def holds_input(self) -> bool:
        """Whether bytes past the last complete request arrived: part of a head or a body."""
        return bool(self._buffer) or self._body_request is not None

    def receive(self, data) -> list:
        """Feed bytes; returns the events they complete, in order: Request (body read),
        CONTINUE (bytes to send before the body), EarlyAnswer or HTTPError (after either the
        state is CLOSED)."""
        if self.held:
            self._buffer += bytes(data)
            return []
        if self.state is CLOSED:
            return []
        if self._buffer:
            data = self._buffer + data
        events = []
        pos = 0
        parse = self.parser.parse
        while True:
            if self._body_request is not None:
                pos = self._read_body(data, pos, events)
                if self._body_request is not None or self.state is CLOSED:
                    break
                continue
            requests, pos, error = parse(data, pos)
            if requests:
                if self.stream_bodies:
                    for request in requests:
                        request.stream = BodyStream(complete=True)
                last = requests[-1]
                if last.chunked or last.content_length:
                    requests.pop()
                    events.extend(requests)
                    self._start_body(last, data, pos, events)
                    if self.state is CLOSED:
                        break
                    continue
                events.extend(requests)
                if self.stream_bodies and b"upgrade" in last.fields:
                    self.held = True
                    error = None   # not HTTP, perhaps: the answer to `last` will tell
            if error is not None:
                events.append(error)
                self.state = CLOSED
            break
        self._keep_rest(data, pos)
        return events

    def _keep_rest(self, data, pos):
        if self.held:
            self._buffer = bytes(data[pos:])
            return
        if self.state is CLOSED:
            self._buffer = b""
            return
        # bytes() copies out of the caller's receive buffer, which is reused for the next read.
        self._buffer = bytes(data[pos:]) if pos < len(data) else b""
        if self._body_request is not None:
            self.state = BODY
        else:
            self.state = HEAD if self._buffer else IDLE

    def _start_body(self, request, data, pos, events):
        length = request.content_length
        if length is not None and length > self.max_body:
            # Refuse before reading: the body would never be read, so framing is lost.
            events.append(HTTPError(413, f"request body over {self.max_body} bytes"))
            self.state = CLOSED
            return
        if self.judge is not None:
            # Asked before any 100 Continue: a refusal goes out instead of inviting the body.
            response = self.judge(request)
            if response is not None:
                # No more input; the requests queued before it still keep the connection,
                # and the answer itself says close (the connection sees to that).
                events.append(EarlyAnswer(request, response))
                self.state = CLOSED
                return
        self._body_request = request
        self._body_parts = []
        self._body_size = 0
        if request.chunked:
            self._decoder = self.decoder_factory()
        else:
            self._decoder = None
            self._body_left = length
        if request.expect_continue and pos >= len(data):
            events.append(CONTINUE)
        if self.stream_bodies:
            request.stream.complete = False
            events.append(request)   # its body follows into the stream

    def _read_body(self, data, pos, events) -> int:
        if self._decoder is None:
            take = min(self._body_left, len(data) - pos)
            if take:
                stream = self._body_request.stream
                if stream is None:
                    self._body_parts.append(bytes(data[pos:pos + take]))
                else:
                    stream.feed(bytes(data[pos:pos + take]))
                self._body_left -= take
                pos += take
            done = self._body_left == 0
        else:
            try:
                chunk, used, done = self._decoder.decode(data, pos)
            except ParseError as error:
                # Kept in the event list: without its traceback, so it holds no frames.
                error.__traceback__ = None
                return self._fail_body(error, events)
            pos += used
            if chunk:
                self._body_size += len(chunk)
                if self._body_size > self.max_body:
                    return self._fail_body(
                        HTTPError(413, f"request body over {self.max_body} bytes"), events)
                if self._body_request.stream is None:
                    self._body_parts.append(chunk)
                else:
                    self._body_request.stream.feed(chunk)
        if done:
            request = self._body_request
            parts = self._body_parts
            self._body_request = None
            self._body_parts = None
            if request.stream is None:
                request.body = b"".join(parts)
                events.append(request)
            else:
                request.stream.end()   # the request itself went out with its head
        return pos

    def _fail_body(self, error, events) -> int:
        """The body broke: an error response follows (after the handler's answer, when the
        handler already has the request and its stream) and the connection closes."""
        if self._body_request.stream is not None:
            self._body_request.stream.lose()
        events.append(error)
        self._body_request = None
        self.state = CLOSED
        return 0

    def plan_answers(self, count: int, last_asks_close: bool, more: bool) -> tuple:
        """Whether the connection stays open after its answers: the one place that decides it,
        asked by the full path for each response and by the fast lane for each read.

        For `count` requests received in a row and answered now, in order (only the last of
        them may have asked to close; `more`: input past them was received):
        (how many of them are answered, whether the connection closes after the last of those).
        It closes when the client asked to, at the keep-alive request limit, after a refused
        body (stop_after_next) and, while draining, after the answer that would leave it idle:
        every request already received is answered and the last answer says close, so no
        client is cut off with a request on its way."""
        left = self.max_requests - self.served if self.persist else 1
        if count >= left:
            return left, True
        return count, last_asks_close or (self.draining and not more)

    def answers_freely(self) -> bool:
        """Whether the plan for the most a read can hold (limits.MAX_PLAIN_BATCH requests),
        with nothing more to come, keeps the connection open: then the plan for any read is
        to answer all of it, closing only where the client asks, and the C lane may send its
        answers itself. That is plan_answers(MAX_PLAIN_BATCH, False, False) == (
        MAX_PLAIN_BATCH, False), written out, as every read asks (tests/test_protocol.py
        holds the two to each other)."""
        return (self.persist and not self.draining
                and self.max_requests - self.served > limits.MAX_PLAIN_BATCH)

    def respond(self, request, response, queued: bool = False) -> tuple:
        """(pieces to write in order, keep_alive); `queued`: requests received after this one
        wait for their answers. Pieces are bytes, FileSlice or Stream."""
        _, closes = self.plan_answers(1, not request.keep_alive, queued or self.holds_input)
        self.served += 1
        keep_alive = not closes
        body = response.body
        streamed = response.length is None and response.status not in NO_CONTENT
        if streamed and request.version < 11:
            keep_alive = False   # the end of an HTTP/1.0 stream is the end of the connection
        if not keep_alive:
            self.finish()
        version = request.version
        if response.status == 101:
            self.finish()   # no HTTP after it: the connection goes on in another protocol
            return [render_head(response, version, True)], True
        if request.method == "HEAD" or response.status in NO_CONTENT:
            discard_body(body)
            return [render_head(response, version, keep_alive)], keep_alive
        if isinstance(body, (bytes, bytearray, memoryview)) and len(body) < INLINE_BODY:
            return [render_message(response, version, keep_alive)], keep_alive
        head = render_head(response, version, keep_alive)
        if isinstance(body, (bytes, bytearray, memoryview, FileSlice)):
            return [head, body], keep_alive
        if isinstance(body, (list, tuple)):
            return [head, *body], keep_alive
        # An iterable with a declared length (response.length set) is framed by it.
        return [head, Stream(body, chunked=streamed and version >= 11)], keep_alive

    def drain(self):
        """Graceful shutdown: the requests already received are answered, the last of them
        with Connection: close."""
        self.draining = True

    def stop_after_next(self):
        """The next response is the last: it says Connection: close."""
        self.persist = False

    def finish(self):
        """Read no further request; the next response says Connection: close."""
        self.persist = False
        self.state = CLOSED

    def error(self, error: HTTPError, version: int = 11) -> list:
        """The pieces of an error response; the connection closes after them."""
        self.finish()
        response = error_response(error.status, error.reason)
        return [render_head(response, version, False) + response.body]
