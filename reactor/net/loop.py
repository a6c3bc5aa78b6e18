"""The reactor: one thread waiting on `selectors` (epoll/kqueue) and a timer heap.

Owns readiness callbacks, timers and the thread-safe wake-up. Knows sockets and time, never
HTTP: it must not import anything else from reactor.
"""

import heapq
import selectors
import signal
import socket
import time
from collections import deque

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE

# Upper bound on one wait, so a clock jump or a lost wake-up never parks the loop for long.
MAX_WAIT = 1.0


class Timer:
    """A scheduled call, ordered by when it is due."""

    __slots__ = ("when", "callback", "args")

    def __init__(self, when, callback, args):
        self.when = when
        self.callback = callback
        self.args = args

    def __lt__(self, other):
        return self.when < other.when


class Loop:
    """Readiness callbacks per file descriptor, timers, and calls from other threads.

    `now` is the monotonic time read once per iteration: callers use it for deadlines instead
    of asking the clock again on every event.
    """

    def __init__(self):
        self.selector = selectors.DefaultSelector()
        self.now = time.monotonic()
        self._timers = []
        self._ready = deque()
        self._threadsafe = deque()
        self._running = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.add_reader(self._wake_r.fileno(), self._drain_wakeups)

    # -- readiness ---------------------------------------------------------------------------

    def add_reader(self, fd, callback):
        self._set(fd, EVENT_READ, callback)

    def remove_reader(self, fd):
        self._set(fd, EVENT_READ, None)

    def watch(self, fd, reader, writer):
        """Set both callbacks of fd at once (one system call where a pair of add/remove
        calls would make two)."""
        mask = (EVENT_READ if reader else 0) | (EVENT_WRITE if writer else 0)
        selector = self.selector
        try:
            selector.get_key(fd)
        except KeyError:
            if mask:
                selector.register(fd, mask, (reader, writer))
            return
        if mask:
            selector.modify(fd, mask, (reader, writer))
        else:
            selector.unregister(fd)

    def _set(self, fd, event, callback):
        try:
            reader, writer = self.selector.get_key(fd).data
        except KeyError:
            reader = writer = None
        if event == EVENT_READ:
            reader = callback
        else:
            writer = callback
        self.watch(fd, reader, writer)

    def forget(self, fd):
        """Drop every callback of fd; call it before closing the descriptor."""
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    # -- time ----------------------------------------------------------------------------------

    def call_later(self, delay, callback, *args) -> Timer:
        timer = Timer(self.now + delay, callback, args)
        heapq.heappush(self._timers, timer)
        return timer

    def call_soon(self, callback, *args):
        self._ready.append((callback, args))

    def call_soon_threadsafe(self, callback, *args):
        """Schedule from any thread; the loop wakes up to run it."""
        self._threadsafe.append((callback, args))
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full, so the loop is already due to wake

    def on_signal(self, signum, callback):
        """Call `callback()` on the loop when `signum` arrives (main thread only)."""
        signal.signal(signum, lambda signum, frame: self.call_soon_threadsafe(callback))

    def _drain_wakeups(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    # -- running -------------------------------------------------------------------------------

    def stop(self):
        self._running = False

    def run(self):
        self._running = True
        select = self.selector.select
        timers = self._timers
        ready = self._ready
        threadsafe = self._threadsafe
        while self._running:
            if ready or threadsafe:
                timeout = 0
            elif timers:
                timeout = min(max(timers[0].when - self.now, 0), MAX_WAIT)
            else:
                timeout = MAX_WAIT
            events = select(timeout)
            self.now = now = time.monotonic()
            for key, mask in events:
                reader, writer = key.data
                if mask & EVENT_READ and reader is not None:
                    reader()
                if mask & EVENT_WRITE and writer is not None:
                    # The read callback may have dropped the writer or closed the socket.
                    current = self._current_writer(key.fd)
                    if current is not None:
                        current()
            while timers and timers[0].when <= now:
                timer = heapq.heappop(timers)
                timer.callback(*timer.args)
            while threadsafe:
                callback, args = threadsafe.popleft()
                callback(*args)
            for _ in range(len(ready)):
                callback, args = ready.popleft()
                callback(*args)

    def _current_writer(self, fd):
        try:
            return self.selector.get_key(fd).data[1]
        except KeyError:
            return None

    def close(self):
        self.forget(self._wake_r.fileno())
        self._wake_r.close()
        self._wake_w.close()
        self.selector.close()
