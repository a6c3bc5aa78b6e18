"""One client connection: its transport, its states, and the execution of what the protocol asks.

Reads into the server's shared receive buffer (a connection holds no buffer of its own while
idle), has plain requests answered from the fast lane's ready messages (laneanswers.py),
feeds the protocol the rest, calls the handler for each request in order and queues the
answers for its writing half (output.py); then keep-alive, deadlines and closing (half-close
and linger, or at once). After a 101 the connection carries another protocol's bytes
(tunnel.py).
Knows HTTP framing through `protocol`, never files or routes: handlers own those. The bytes
move through a transport (transport.py), plain or TLS; which one is never asked here.
"""

import logging
import socket
from concurrent.futures import Future

from ..http import limits
from ..http.errors import HTTPError
from ..http.h2 import PREFACE
from ..http.protocol import BODY as INPUT_BODY
from ..http.protocol import HEAD as INPUT_HEAD
from ..http.protocol import EarlyAnswer, discard_body
from ..http.request import Request
from ..http.response import NO_CONTENT, Deferred, Upgrade, error_response
from .laneanswers import LaneAnswers
from .output import Output, ResponseEnd
from .socketside import (
    CLOSED,
    CLOSING,
    IDLE,
    READING_BODY,
    READING_HEAD,
    TUNNEL,
    WRITING,
    SocketSide,
)
from .tunnel import Switch, Tunnel

log = logging.getLogger("reactor")

# What a read must start with to be HTTP/2 with prior knowledge: the preface's request line
# (RFC 9113 §3.4), which no HTTP/1 request of ours could be (version 2.0 is a 505 there).
PRIOR_KNOWLEDGE = PREFACE[:16]

# Responses queued ahead of the one being written; beyond it, pipelined requests wait
# unparsed in the protocol's order, so memory and open files per connection stay bounded.
MAX_QUEUED = 32

# After `Connection: close`, how long to keep reading (and discarding) what the client is
# still sending, so that closing with unread data does not reset the response away.
LINGER_TIME = 2.0
LINGER_BYTES = 256 * 1024


# The 408 a connection gets when its deadline passes in these states.
_TOO_SLOW = {READING_HEAD: "request head too slow",
             READING_BODY: "request body too slow"}


def answer(call, request):
    """call(request): what a handler (or its early_response) answered; a 500 when it raised,
    logged with the request."""
    try:
        return call(request)
    except Exception:
        log.exception("handler failed for %s %s", request.method, request.target)
        return error_response(500)


def answer_of(future, request):
    """The Response a handler's Future holds; a 500 when the handler raised, logged."""
    return answer(lambda _request: future.result(), request)


class Connection(LaneAnswers, Output, SocketSide, Tunnel):
    __slots__ = ("server", "loop", "transport", "client", "protocol", "handler", "lane", "native",
                 "pending", "output", "waiting", "state", "deadline", "closing", "reading",
                 "blocked", "lingered", "written", "ended_at", "ending", "body_started",
                 "client_done", "inflight", "asked_at", "tunnel", "host")

    def __init__(self, server, transport, client, handler):
        self.server = server
        self.loop = server.loop
        self.transport = transport
        self.client = client
        # Made when first needed (_protocol): a connection that the fast lane answers once
        # and closes never needs one.
        self.protocol = None
        self.handler = handler
        lane = self.lane = server.lanes.get(handler)   # the fast lane of this handler, if any
        # Its C side, when this connection's socket carries the requests' bytes as they are.
        self.native = lane.native if lane is not None and transport.raw else None
        # The client's address as the C side logs it.
        self.host = client[0].encode() if self.native is not None else None
        self.inflight = None     # the request last handed to the handler
        self.asked_at = 0.0      # the loop time it arrived, while its answer is awaited
        self.tunnel = None       # after a 101: the protocol the connection carries now
        # Lists, not deques: they stay short, and an empty list is a tenth of an empty deque's
        # size, which counts with thousands of idle connections.
        self.pending = []   # events received, not yet answered
        self.output = []    # pieces to write: bytes, FileSlice, Stream
        self.waiting = None      # a Future the next step waits on
        self.closing = False     # close once the output is written
        self.reading = True      # registered for readability
        self.blocked = False     # registered for writability: the client is not reading
        self.lingered = 0
        # The client will send nothing more (it asked to close, or half-closed, and nothing
        # past that request arrived): once written, close at once instead of lingering.
        self.client_done = False
        self.written = 0         # bytes written to the socket, all responses together
        self.ended_at = 0        # `written` where the last ended response ended
        self.ending = []         # ResponseEnds whose bytes were joined into one send
        self.body_started = 0.0
        self.state = IDLE
        self.deadline = self.loop.now + server.config.header_timeout
        transport.watch(self._first_readable if server.h2_engine is not None
                        else self.on_readable, None)

    # -- input ---------------------------------------------------------------------------------

    def on_readable(self):
        server = self.server
        if self.state is IDLE:
            server.reclaimable.pop(self, None)
            native = self.native
            if native is not None and self.transport.checked:
                self._serve_natively(native)
                return
        n = self._read()
        if n:
            self._received(n)
        elif n == 0:
            self.on_eof()

    def _first_readable(self):
        """The first read where HTTP/2 is on: a client preface (h2c with prior knowledge), or
        a TLS handshake that chose h2 by ALPN, hands the connection to HTTP/2; anything else
        is HTTP/1.1, read by on_readable from now on."""
        n = self._read()
        if not n:
            if n == 0:
                self.close()
            return
        self._first_received(n)

    def first_read_answered(self, n: int):
        """The connection's first read, made as it was accepted (Acceptor.accept_answering):
        n bytes in the receive buffer, its plain requests answered and sent by C as far as
        its table held them."""
        try:
            self.transport.first_read(self.server.recv_buffer, n)
        except ConnectionAbortedError:
            self.close()
            return
        self._first_received(n, True)

    def _first_received(self, n: int, sent_by_c=None):
        """Where HTTP/2 is on, a client preface (h2c with prior knowledge) or a TLS handshake
        that chose h2 by ALPN hands the connection to HTTP/2; anything else is HTTP/1.1."""
        server = self.server
        if server.h2_engine is not None:
            if self.transport.alpn == "h2" or server.recv_buffer.startswith(
                    PRIOR_KNOWLEDGE, 0, n):
                server.switch_to_h2(self, n)
                return
            self.transport.watch(self.on_readable, None)
        self._received(n, sent_by_c)

    def _received(self, n, sent_by_c=None):
        """The n bytes at the start of the server's receive buffer: answer what they hold.
        `sent_by_c`: None, or the C lane has looked at them already (NativeLane.serve), and
        whether it was let send what it answered."""
        server = self.server
        start = 0
        lane = self.lane
        if lane is not None and self.state is IDLE:
            native = self.native
            if sent_by_c is None:
                if lane.expires <= self.loop.now:
                    lane.renew()
                if native is not None:
                    native.answer(n)
            if native is not None and native.results[1]:
                start = self._answer_native(lane, native, n, bool(sent_by_c))
            elif native is None or not native.results[native.REFUSED]:
                keys, end, fields = lane.scan(n)
                # A first key the handler refused (an application's route beside files) has
                # nothing ready: no answer can come before it.
                if keys and keys[0] not in lane.refused:
                    start = self._answer_plain(lane, keys, end, n, fields)
            if start is None:
                return
        events = self._protocol().receive(server.recv_view[start:n]) if start < n else None
        if self.protocol is not None and self.protocol.stream_bodies:
            if self.waiting is not None and self.state is READING_BODY:
                self._fed()
            self._hold_body()
        if events:
            pending = self.pending
            pending.extend(events)
            if len(pending) >= server.config.max_pipeline:
                self._watch(False, self.blocked)   # read more once these are answered
            if (len(pending) == 1 and pending[0].__class__ is Request and not self.output
                    and self.waiting is None and not self.closing):
                self._serve_alone()
            else:
                self.advance()
        elif start:
            self.advance()   # what the fast lane queued
        elif self.closing:
            self.client_done = False   # input after the last request: linger on it
        elif not (self.pending or self.output or self.waiting is not None):
            self._note_input()

    def _fed(self):
        """More of the body of a request its handler holds arrived: its deadline moves on,
        until the body is complete."""
        if self.protocol.streaming is None:
            self.state = WRITING
        else:
            self.deadline = self._body_deadline(self.loop.now)

    def _hold_body(self):
        """Stop reading while the body being streamed has BODY_BUFFER bytes its handler has
        not taken: the client waits, instead of the server buffering without bound. Also
        while an upgrade request waits for its answer: what follows may not be HTTP."""
        protocol = self.protocol
        stream = protocol.streaming
        if stream is not None and stream.full and stream.resume is None and self.reading:
            stream.resume = self._resume_body
            self._watch(False, self.blocked)
            if self.state is READING_BODY:
                self.deadline = float("inf")   # the handler is behind, not the client
        elif protocol.held and self.reading:
            self._watch(False, self.blocked)   # advance() reads again after the answer

    def _resume_body(self):
        if (self.state is not CLOSED and not self.reading and not self.closing
                and len(self.pending) < self.server.config.max_pipeline):
            self._watch(True, self.blocked)
            if self.state is READING_BODY:
                self.deadline = self.loop.now + self.server.config.body_timeout

    def _lose_inflight(self):
        """Tell the request under way that its client sent all it will (EOF) or is gone."""
        request = self.inflight
        if request is not None and request.stream is not None:
            request.stream.lose()

    def _protocol(self):
        """The connection's Protocol, made the first time one is needed."""
        protocol = self.protocol
        if protocol is None:
            protocol = self.protocol = self.server.new_protocol()
            if getattr(self.handler, "early_response", None) is not None:
                protocol.judge = self._early_response
            # A handler that reads bodies as they arrive gets each request at its head.
            protocol.stream_bodies = getattr(self.handler, "streams_bodies", False)
        return protocol

    def on_eof(self):
        self._lose_inflight()
        if self.pending or self.output or self.waiting is not None:
            # Half-closed: answer what was received, then close.
            self.closing = self.client_done = True
            if self.protocol is not None:
                self.protocol.finish()
            self._watch(False, self.blocked)
        else:
            self.close()

    def _note_input(self):
        """Set the state and deadline that the input so far calls for."""
        input_state = self._protocol().state
        if input_state is INPUT_HEAD:
            if self.state is not READING_HEAD:
                # The deadline runs from the head's first byte: trickling does not extend it.
                self.state = READING_HEAD
                self.deadline = self.loop.now + self.server.config.header_timeout
        elif input_state is INPUT_BODY:
            now = self.loop.now
            if self.state is not READING_BODY:
                self.state = READING_BODY
                self.body_started = now
            self.deadline = self._body_deadline(now)
        else:
            self._idle()

    def _body_deadline(self, now):
        """A pause may last body_timeout, and past the grace the body as a whole must keep up
        body_min_rate (Apache's mod_reqtimeout MinRate): trickling earns no time."""
        config = self.server.config
        return min(now + config.body_timeout,
                   self.body_started + config.body_grace
                   + self.protocol.body_received / config.body_min_rate)

    def _idle(self):
        """Between requests, kept open: the keep-alive deadline runs, and once it has answered
        a request the connection is one that the connection limit may close to make room."""
        self.state = IDLE
        server = self.server
        self.deadline = self.loop.now + server.config.keepalive_timeout
        if self.protocol.served:
            server.reclaimable[self] = None
        if server.lane_wait is not None and self.native is not None and self.transport.checked:
            server.lane_wait.keep(self)

    # -- answering -----------------------------------------------------------------------------

    def advance(self):
        """Answer pending requests in order and write, until blocked, waiting or done."""
        while True:
            self._answer_pending()
            if not self._flush():
                return
            if not self.pending or self.waiting is not None or self.closing:
                break
        if self.waiting is not None or self.state is CLOSED:
            return
        if self.closing:
            if self.client_done:
                self.close()
            else:
                self._close_gracefully()
            return
        if self.blocked or not self.reading:
            stream = self._protocol().streaming
            self._watch(stream is None or stream.resume is None, False)
        self._note_input()

    def _answer_pending(self):
        pending = self.pending
        output = self.output
        while pending and self.waiting is None and not self.closing and len(output) < MAX_QUEUED:
            self.state = WRITING
            event = pending.pop(0)
            if event.__class__ is Request:
                self._serve(event)
            elif event.__class__ is EarlyAnswer:
                self.protocol.stop_after_next()   # its body was not read: framing ends here
                self._respond(event.request, event.response, self.loop.now)
                self.client_done = False   # the body it refused may still be on its way
            elif isinstance(event, HTTPError):
                self.server.note_rejection(event.status)
                output.extend(self.protocol.error(event))
                output.append(ResponseEnd(None, event.status, 0))
                self._closing()
            else:
                output.append(event)   # interim response (100 Continue)
                output.append(ResponseEnd(None, 100, 0))
            if len(output) > 1 and output[-2].__class__ is not bytes:
                break   # a file or stream is enough to keep the socket busy

    def _serve_alone(self):
        """What advance() does with one request and nothing else to answer or write (the
        usual read of a keep-alive client), without its loop: served, then written at once
        or when its answer comes."""
        self.state = WRITING
        self._serve(self.pending.pop())
        if self.waiting is None:
            self.advance()

    def _serve(self, request):
        request.client = self.client
        self.inflight = request
        started = self.loop.now
        response = answer(self.handler, request)
        if response.__class__ is Deferred:
            self.waiting = response
            self.asked_at = started
            response.add_done_callback(self._deferred_answer)
            if request.stream is not None and not request.stream.complete:
                # The handler holds the request while its body arrives: the body's deadlines
                # run as when the server reads it whole (_fed, Server._sweep).
                self.state = READING_BODY
                self.body_started = started
                self.deadline = started + self.server.config.body_timeout
            return
        if isinstance(response, Future):
            self.waiting = response
            response.add_done_callback(
                lambda future: self.loop.call_soon_threadsafe(self._resume, request, future,
                                                              started))
            return
        self._respond(request, response, started)

    def _early_response(self, request):
        """The handler's answer from the head alone, or None to read the body."""
        request.client = self.client
        return answer(self.handler.early_response, request)

    def _resume(self, request, future, started):
        self._answered(request, future, answer_of(future, request), started)

    def _deferred_answer(self, deferred):
        """The handler's Deferred answer to the request in flight, settled on the loop's
        thread (most often inside the application's send())."""
        request = self.inflight
        response = deferred.value if deferred.error is None else answer_of(deferred, request)
        self._answered(request, deferred, response, self.asked_at)

    def _answered(self, request, waited, response, started):
        """The answer that `waited` (a Future or a Deferred) held: queued and written."""
        if self.waiting is not waited:
            discard_body(response.body)   # closed meanwhile: release its file or stream
            return
        self.waiting = None
        self._respond(request, response, started)
        output = self.output
        if (len(output) == 2 and output[0].__class__ is bytes and not self.pending
                and not self.closing and self.reading and not self.blocked):
            self._write_alone(output[0])
        else:
            self.advance()

    def _write_alone(self, message):
        """What advance() does when `message` and its ResponseEnd are all there is to do (a
        handler's later answer, kept alive, nothing else received): one send, the end
        reported, idle again; the usual way an application's answer goes out."""
        try:
            sent = self.transport.send(message)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        output = self.output
        if sent < len(message):   # the rest waits for writability, as _flush leaves it
            self._written(sent)
            output[0] = memoryview(message)[sent:]
            self._block()
            return
        end = output[1]
        output.clear()
        self._written(sent)
        end.end = self.written
        self._ended(end)
        self._note_input()

    def _respond(self, request, response, started):
        """Queue the response; `started` is the loop time its request arrived."""
        pieces, keep_alive = self.protocol.respond(request, response, bool(self.pending))
        head = len(pieces[0])
        if len(pieces) == 1 and request.method != "HEAD" and response.status not in NO_CONTENT:
            head -= response.length   # head and body joined in one buffer
        output = self.output
        output.extend(pieces)
        output.append(ResponseEnd(request, response.status, head, started))
        if response.__class__ is Upgrade:
            output.append(Switch(response.tunnel))
        elif self.protocol.held:
            self.pending.extend(self.protocol.release())
        if not keep_alive:
            # A close the client asked for, with nothing sent after it, needs no lingering.
            self.client_done = self.client_done or not (request.keep_alive or self.pending
                                                        or self.protocol.holds_input)
            self._closing()

    def _closing(self):
        self.closing = True
        self.pending.clear()

    def _write_more(self):
        self.advance()

    # -- closing -------------------------------------------------------------------------------

    def on_timeout(self):
        if not self.output and self.state in _TOO_SLOW:
            self.server.note_rejection(408)
            error = HTTPError(408, _TOO_SLOW[self.state])
            try:
                self.transport.send(self.protocol.error(error)[0])
            except OSError:
                pass
        self.close()

    def _close_gracefully(self):
        """Half-close, then read and discard for a moment before closing, so a client still
        sending does not receive a reset that wipes out the response it has not read yet."""
        try:
            self.transport.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.state = CLOSING
        self.deadline = self.loop.now + LINGER_TIME
        self.server.reclaimable[self] = None
        self.reading = self.blocked = False
        self.transport.watch(self._linger, None)

    def _linger(self):
        try:
            n = self.transport.recv_into(self.server.recv_buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        self.lingered += n
        if n == 0 or self.lingered > LINGER_BYTES:
            self.close()

    def hurry(self, deadline: float):
        """At the connection limit: a head still to come must be complete by `deadline`."""
        if self.state is READING_HEAD or (
                self.state is IDLE and (self.protocol is None or not self.protocol.served)):
            if deadline < self.deadline:
                self.deadline = deadline

    def drain(self):
        """Graceful shutdown: every request already received is answered, and the answer that
        would leave the connection idle says Connection: close (Protocol.plan_answers), on the
        fast lane as on the full path. A connection between requests may still send one read
        of requests (a keep-alive client may have sent them already, and closing on them would
        reset them unanswered); one that sends nothing within DRAIN_IDLE is closed."""
        if self.state is TUNNEL:
            self.tunnel.drain()
            return
        self._protocol().drain()
        if self.state is IDLE:
            self.deadline = min(self.deadline, self.loop.now + limits.DRAIN_IDLE)

    def close(self):
        """Close now: the client is gone, too slow, or the framing is lost."""
        if self.state is CLOSED:
            return
        self.state = CLOSED
        self.waiting = None
        if self.server.lane_wait is not None:
            self.server.lane_wait.release(self)
        self.transport.close()
        self._lose_inflight()
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            tunnel.lost()
        for piece in self.output:
            if piece.__class__ is ResponseEnd:
                self.ending.append(piece)
            else:
                discard_body(piece)
        self.output.clear()
        for end in self.ending:
            end.end = self.written if end.end is None else min(end.end, self.written)
            self._ended(end)
        self.ending.clear()
        self._closing()
        self.server.connection_closed(self)
