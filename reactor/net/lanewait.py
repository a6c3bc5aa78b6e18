"""The loop's wait when the fast lane serves idle plain connections in C.

A keep-alive client's usual read (plain requests, every one answered from the lane's table,
sent and logged in full) needs nothing of Python but its bookkeeping. Here the loop's epoll wait
and those reads are one C call (NativeWait, readevent.h's re_poll) for every connection the
server keeps there: idle, plain, with a keep-alive plan that lets C send whatever a read holds.
What C ends is counted here in a loop of its own, without the loop's dispatch or a connection's
frames; every other event goes back to the loop, and the one kept read that needs more to its
connection first (its bytes are in the shared receive buffer).

A connection is kept again each time it is idle (Connection._idle and the C lane's own done
read); C lets go of any kept connection it hands back, and close, the drain and the keep-alive
limit let go of the rest. Knows connections, the lane and the loop's wait, not HTTP.
"""

import math
import time


class LaneWait:
    __slots__ = ("server", "loop", "lane", "native", "connections", "_missed", "_cap")

    def __init__(self, server, lane, descriptors: int):
        loop = server.loop
        self.server = server
        self.loop = loop
        self.lane = lane
        self.native = lane.native.waiting(loop.epoll_fd, descriptors)
        self._cap = descriptors
        self.connections = {}   # fd -> the connection kept there
        # Descriptors whose last read C handed back with nothing answered (a file's answer,
        # an application's route): not kept again until a read of theirs C could end.
        self._missed = set()

    def start(self):
        """Wait through this from the loop's next round on."""
        self.loop.wait_with(self)

    def stop(self):
        """Let go of every connection and wait as the loop does (the drain: an answer may
        have to say close)."""
        self.loop.wait_with(None)
        self.native.kept[:] = bytes(self._cap)
        self.connections.clear()
        self._missed.clear()

    def keep(self, connection, ended: bool = False):
        """Let C serve the idle `connection`'s reads while its plan allows it; `ended`: C has
        just ended a read of it (NativeLane.serve's RE_DONE)."""
        fd = connection.transport.fd
        if ended:
            self._missed.discard(fd)
        elif fd in self._missed:
            return
        if fd < self._cap and connection.protocol.answers_freely():
            self.native.keep(fd, connection.host)
            self.connections[fd] = connection

    def release(self, connection):
        """`connection` is closing: C must not serve its descriptor any more."""
        fd = connection.transport.fd
        self._missed.discard(fd)
        if self.connections.pop(fd, None) is not None:
            self.native.kept[fd] = 0

    def __call__(self, timeout: float) -> list:
        loop = self.loop
        lane = self.lane
        now = loop.now
        if lane.expires <= now:
            # The table's answers are out of date (their Date): the first request that needs
            # them has them renewed, as when this wait is not there.
            return loop.poll(timeout)
        timeout = min(timeout, lane.expires - now)   # back before they are
        native = self.native
        count = native.wait(max(math.ceil(timeout * 1000), 0))
        if count < 0:
            raise OSError(-count, "epoll_wait")
        done = native.done()
        read_fd, read, first_lines = native.read()
        if done:
            self._count(done, first_lines, time.monotonic())
        if read_fd >= 0:
            if read > 0 and not lane.native.results[1]:   # RE_READY: nothing answered
                self._missed.add(read_fd)
            self.connections.pop(read_fd).read_by_c(read)
        return native.rest()

    def _count(self, done, first_lines, now):
        """What _serve_natively does with a read C ended, for each of `done`."""
        lane = self.lane
        server = self.server
        reclaimable = server.reclaimable
        deadline = now + server.config.keepalive_timeout
        connections = self.connections
        kept = self.native.kept
        answered = 0
        for fd, ready in done:
            connection = connections[fd]
            answered += ready
            protocol = connection.protocol
            protocol.served += ready
            connection.deadline = deadline
            # The most recently busy go last: the connection limit closes from the front.
            reclaimable.pop(connection, None)
            reclaimable[connection] = None
            if not protocol.answers_freely():
                kept[fd] = 0
                del connections[fd]
        lane.hits[0] += answered
        if first_lines:
            lane.log_filled()
