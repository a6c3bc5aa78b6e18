"""The fast lane's side of a connection: what it does with the plain requests at the start of
a read that have ready answers (see fastlane.py), from the C read event's one call
(NativeLane.serve, with the usual keep-alive read counted where it returns) or from the Python
lane's scan: the keep-alive plan asked once for all of them, the answers sent in one send or
queued (files), the log and the metrics told. What is not answered here goes on through the
full path of the connection. A part of Connection (the LaneAnswers mixin); knows ready
messages and the transport, not files or handlers.
"""

import errno

from ..http.request import ABSENT_FIELD, Request
from .output import ResponseEnd
from .socketside import WRITING


def _opened(kept):
    """A kept file's answer with its file checked (one fstat): (head, FileSlice) for a GET,
    the head alone for a HEAD; None when the file is no longer the version of the head."""
    head, open_body, is_head = kept
    body = open_body()
    if body is None:
        return None
    if is_head:
        body.close()
        return head
    return head, body


def _release(answers):
    """Let go of the files of answers that will not be sent."""
    for given in answers:
        if given.__class__ is tuple:
            given[1].close()


class LaneAnswers:
    """Works on its class's `lane`, `native`, `host`, `protocol`, `server`, `loop`,
    `transport`, `client`, `output`, `state`, `written`, `ending` and `client_done`, and calls
    its `_received`, `_protocol`, `_idle`, `_closing`, `_block`, `_written`, `advance`,
    `on_eof` and `close`."""

    __slots__ = ()

    def _serve_natively(self, native):
        """A read event of an idle plain connection in one C call (NativeLane.serve): recv,
        the answers its table holds for the plain requests read and, when the keep-alive
        plan allows it beforehand, their send and their log lines. When that was all the
        read needed, it is counted here; otherwise the rest goes on as any read does."""
        lane = self.lane
        now = self.loop.now
        if lane.expires <= now:
            lane.renew()   # before C answers from the table
        protocol = self.protocol
        sending = (protocol or self.server.fresh_protocol).answers_freely()
        n = native.serve(self.transport.fd, sending, self.host)
        if n > 0:
            results = native.results
            done = results[7]   # RE_DONE: the usual read event of a keep-alive client
            if done:
                if done == native.FIRST_LINES:
                    lane.log_filled()
                ready = results[1]
                lane.hits[0] += ready
                (protocol or self._protocol()).served += ready
                # Idle still, with its keep-alive deadline renewed: what _idle does, written
                # out because calling it costs 3% of this, the most common read event.
                self.deadline = now + self.server.config.keepalive_timeout
                self.server.reclaimable[self] = None
                if self.server.lane_wait is not None:
                    self.server.lane_wait.keep(self, True)
                return
        self._read_by_c(n, sending)

    def read_by_c(self, n):
        """A read that the loop's wait made and C answered and sent as far as its table held
        (LaneWait), but could not end: `n` as NativeLane.serve returns it."""
        self.server.reclaimable.pop(self, None)
        self._read_by_c(n, True)

    def _read_by_c(self, n, sent_by_c: bool):
        """What is left of a read NativeLane.serve made and did not end (`sent_by_c`: it was
        let send what it answered)."""
        if n > 0:
            self._received(n, sent_by_c)
        elif n == 0:
            self.on_eof()
        elif -n != errno.EAGAIN:
            self.close()

    def _answer_native(self, lane, native, n, sent_already):
        """The answers that C gathered for this read (NativeLane: the plain requests at its
        start whose messages its table holds), sent by it already when `sent_already`, else
        sent in one call here when plan_answers gives them all as they are; otherwise the
        Python lane answers the read (the server closing after an answer the client did not
        ask to end with sends another message). Returns what _answer_plain does."""
        _, ready, end, asked, total, sent, logged, _, _ = native.results
        protocol = self.protocol
        server = self.server
        if logged == native.FIRST_LINES:
            lane.log_filled()
        if sent_already:
            closes = asked   # as the plan asked before the read says
        else:
            count, closes = (protocol or server.fresh_protocol).plan_answers(ready, asked,
                                                                             end < n)
            if count < ready or closes != asked:
                keys, end, fields = lane.scan(n)
                return self._answer_plain(lane, keys, end, n, fields)
        # It asked to close, and every request was answered: nothing more is coming unless
        # the buffer holds it.
        self._plain_answered(lane, ready, closes, end == n)
        keys = answers = fields = None
        if (server.access_log is not None or server.metrics is not None) and not logged:
            keys, fields = native.scanned()
            keys = keys[:ready]
            answers = [lane.messages[key] for key in keys]
            if server.access_log is None:
                server.metrics.count_ready(lane.logged, keys, answers, self.loop.now)
        if sent_already:
            if sent < 0:
                sent = 0 if -sent == errno.EAGAIN else -1
        else:
            try:
                sent = native.send(self.transport.fd)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = -1
        return self._plain_sent(lane, keys, answers, fields, None, total, sent, closes, end, n)

    def _answer_plain(self, lane, keys, end, n, fields):
        """Answer the plain requests `keys` (ending at `end` of the n bytes received; `fields`
        what the access log needs of them, see FastLane.scan) from the fast lane's ready
        messages, in order, until one has none, as far as plan_answers allows. Returns None
        when that was all of the input and it is written (or the connection closes after it),
        else the offset where the full path takes over (with what was answered queued before
        it)."""
        messages = lane.messages
        answers = []
        files = False
        for key in keys:
            message = messages.get(key) or lane.fill(key)
            if message is None:
                break
            if message.__class__ is tuple:
                message = _opened(message)
                if message is None:
                    break   # the file changed: the full path answers from this request on
                files = True
            answers.append(message)
        ready = len(answers)
        if not ready:
            return 0
        if ready < len(keys):
            end = lane.plain_start(ready)
        protocol = self.protocol
        asked = keys[ready - 1] in lane.closing   # only the last request of a scan may ask
        server = self.server
        # A connection without a Protocol yet has answered nothing: the server's fresh one
        # says what that state allows.
        count, closes = (protocol or server.fresh_protocol).plan_answers(ready, asked, end < n)
        if count < ready or (closes and not asked):
            # The server closes after the last answer it gives: the answer to that request
            # asking to close.
            _release(answers[count:])
            last = lane.closing_answer(keys[count - 1])
            if last is None:
                _release(answers[:count])
                return 0   # not ready: the full path answers the whole read
            message = last[1]
            if message.__class__ is tuple:   # the same file, its body opened already
                message = message[0] if message[2] else (message[0], answers[count - 1][1])
            keys = [*keys[:count - 1], last[0]]
            answers[count - 1:] = [message]
        # Without lingering only when the client asked to close and sent nothing after.
        self._plain_answered(lane, count, closes, asked and count == ready and end == n)
        if files:
            return self._queue_plain(lane, keys, answers, fields, closes, end)
        logged = server.access_log is not None
        if not logged and server.metrics is not None:
            # The metrics alone need no request per answer: counted as queued (a ready
            # message is small and rarely not written in full).
            server.metrics.count_ready(lane.logged, keys, answers, self.loop.now)
        data = answers[0] if count == 1 else b"".join(answers)
        try:
            sent = self.transport.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            sent = -1
        return self._plain_sent(lane, keys, answers, fields, data, len(data), sent, closes,
                                end, n)

    def _plain_sent(self, lane, keys, answers, fields, data, total, sent, closes, end, n):
        """After the send of the fast lane's answers, `total` bytes in all (`data`, or what
        the C lane gathered when it is None), of which the socket took `sent` (-1: the
        connection is gone): what is left is queued, the log and the metrics told, the
        connection idle, closing or handed to the full path. Returns what _answer_plain
        does. `keys` and `answers` are None when neither the log nor the metrics count them
        (or the C lane logged them already)."""
        server = self.server
        logged = keys is not None and server.access_log is not None
        if sent < 0:
            if logged:
                self._plain_ends(lane, keys, answers, fields)   # logged as lost, in close()
            self.close()
            return None
        # Nothing was queued before, so `ended_at` is `written`: a complete send can leave
        # both as they are.
        if sent < total:
            self.output.append(memoryview(data)[sent:] if data is not None
                               else self.native.gathered(sent))
            if logged:
                self._plain_ends(lane, keys, answers, fields)
                self._written(sent)   # the ends in `ending` that this send completes
            else:
                self.written += sent
                self.output.append(ResponseEnd(None, 200, 0))
            self.state = WRITING
            self._block()
            return end if end < n else None
        if logged:
            server.ready_ended(self, lane.logged, keys, answers, fields)
        if closes:
            self.advance()
            return None
        if end == n:
            self._idle()
            return None
        return end

    def _plain_answered(self, lane, count: int, closes: bool, client_done: bool):
        """`count` requests answered by the fast lane: counted, and when the connection
        closes after them, closing (`client_done`: without lingering)."""
        lane.hits[0] += count
        protocol = self.protocol
        if closes:
            self.client_done = client_done
            if protocol is not None:
                protocol.served += count
                protocol.finish()
            self._closing()
        else:
            (protocol or self._protocol()).served += count

    def _queue_plain(self, lane, keys, answers, fields, closes, end):
        """Answers that include files sent from disk go out as the full path's do, through
        the output queue (a head, then sendfile), each with its end for the log and metrics.
        Returns what _answer_plain does."""
        output = self.output
        server = self.server
        counted = server.access_log is not None or server.metrics is not None
        now = self.loop.now
        for i, answer in enumerate(answers):
            if answer.__class__ is tuple:
                output += answer
            else:
                output.append(answer)
            template, status, head = lane.logged[keys[i]]
            output.append(ResponseEnd(self._plain_request(template, fields, i) if counted
                                      else None, status, head, now))
        self.state = WRITING
        if closes:
            self.advance()
            return None
        return end

    def _plain_ends(self, lane, keys, answers, fields):
        """Where each answer will end, in `ending`, for the access log and the metrics: the
        answers of a send that was not written in full."""
        offset = self.written
        now = self.loop.now
        for i, (key, message) in enumerate(zip(keys, answers)):
            template, status, head = lane.logged[key]
            offset += len(message)
            end = ResponseEnd(self._plain_request(template, fields, i), status, head, now)
            end.end = offset
            self.ending.append(end)

    def _plain_request(self, template, fields, i):
        """A request of its own for the access log and metrics, like the full path's, with
        the fields the log writes (see FastLane.scan)."""
        logged_fields = []
        if fields is not None:
            for name, value in ((b"referer", fields[3 * i + 1]),
                                (b"user-agent", fields[3 * i + 2])):
                if value != ABSENT_FIELD:
                    logged_fields += (name, value)
        request = Request(template.method, template.target, template.version, logged_fields,
                          None, False, template.keep_alive, False)
        request.client = self.client
        return request
