"""The reactor: one thread waiting on epoll (or, where there is none, `selectors`: kqueue,
poll) and a timer heap.

Owns readiness callbacks, timers and the thread-safe wake-up. Knows sockets and time, never
HTTP: it must not import anything else from reactor.

On Linux the loop asks epoll itself and keeps its own table of callbacks by descriptor:
`selectors` would make a key object per descriptor, a list of them per wait, and raise an
exception to say a descriptor is new, which together cost more than the rest of a read event
on the fast lane (bench/README.md has the profile).
"""

import heapq
import select
import selectors
import signal
import socket
import time
from collections import deque

# Upper bound on one wait, so a clock jump or a lost wake-up never parks the loop for long.
MAX_WAIT = 1.0


class EpollPoller:
    """epoll, as the loop asks it: register, modify, unregister, poll, close."""

    READ = getattr(select, "EPOLLIN", 0)
    WRITE = getattr(select, "EPOLLOUT", 0)
    # The kernel drops a descriptor from the interest list when it is closed (a socket's
    # descriptor is never duplicated here), so a close needs no EPOLL_CTL_DEL before it.
    CLOSE_FORGETS = True

    def __init__(self):
        epoll = select.epoll()
        self.fileno = epoll.fileno
        self.register = epoll.register
        self.modify = epoll.modify
        self.unregister = epoll.unregister
        self.poll = epoll.poll
        self.close = epoll.close


class SelectorPoller:
    """`selectors` (kqueue, poll, select) behind the same calls, where there is no epoll."""

    READ = selectors.EVENT_READ
    WRITE = selectors.EVENT_WRITE
    CLOSE_FORGETS = False   # the selector's own table must be told before a close

    def __init__(self):
        selector = selectors.DefaultSelector()
        self.register = selector.register
        self.modify = selector.modify
        self.unregister = selector.unregister
        self.close = selector.close
        self._select = selector.select

    def poll(self, timeout):
        return [(key.fd, events) for key, events in self._select(timeout)]


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

    def __init__(self, poller=None):
        """`poller`: an EpollPoller or SelectorPoller (the first where there is epoll)."""
        if poller is None:
            poller = EpollPoller() if hasattr(select, "epoll") else SelectorPoller()
        self._poller = poller
        self._wait = poller.poll
        self._read_event, self._write_event = poller.READ, poller.WRITE
        self._handlers = {}   # fd -> (reader, writer, the events asked for)
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
        handler = self._handlers.get(fd)
        self.watch(fd, callback, handler and handler[1])

    def remove_reader(self, fd):
        handler = self._handlers.get(fd)
        self.watch(fd, None, handler and handler[1])

    def watch(self, fd, reader, writer):
        """Set both callbacks of fd at once (one system call where a pair of add/remove
        calls would make two, and none when the events asked for stay the same)."""
        mask = (self._read_event if reader else 0) | (self._write_event if writer else 0)
        handler = self._handlers.get(fd)
        if mask:
            if handler is None:
                self._poller.register(fd, mask)
            elif handler[2] != mask:
                self._poller.modify(fd, mask)
            self._handlers[fd] = (reader, writer, mask)
        elif handler is not None:
            del self._handlers[fd]
            self._poller.unregister(fd)

    def forget(self, fd):
        """Drop every callback of fd; call it before closing the descriptor."""
        if self._handlers.pop(fd, None) is not None:
            try:
                self._poller.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass

    def closing(self, fd):
        """As forget(fd), for a descriptor closed right after: where closing it is enough to
        take it out of the poller, without the system call that forget makes."""
        if self._poller.CLOSE_FORGETS:
            self._handlers.pop(fd, None)
        else:
            self.forget(fd)

    @property
    def epoll_fd(self):
        """The descriptor of the loop's epoll set, for a wait of its own (wait_with); None
        where the loop waits through `selectors`."""
        fileno = getattr(self._poller, "fileno", None)
        return None if fileno is None else fileno()

    def wait_with(self, wait):
        """From the next round on, the loop waits through `wait(timeout)` instead of polling:
        it returns the (fd, events) pairs to dispatch, as epoll's poll does (None: the
        poller's own poll again)."""
        self._wait = self._poller.poll if wait is None else wait

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
        handlers = self._handlers
        # HUP and ERR come whether asked for or not: they wake the reader and the writer.
        not_write = ~self._write_event
        not_read = ~self._read_event
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
            events = self._wait(timeout)
            self.now = now = time.monotonic()
            for fd, mask in events:
                handler = handlers.get(fd)
                if handler is None:
                    continue   # forgotten by an earlier callback of this round
                if mask & not_write and handler[0] is not None:
                    handler[0]()
                    if mask & not_read:
                        # The read callback may have dropped the writer or closed the socket.
                        handler = handlers.get(fd)
                        if handler is None:
                            continue
                if mask & not_read and handler[1] is not None:
                    handler[1]()
            while timers and timers[0].when <= now:
                timer = heapq.heappop(timers)
                timer.callback(*timer.args)
            while threadsafe:
                callback, args = threadsafe.popleft()
                callback(*args)
            for _ in range(len(ready)):
                callback, args = ready.popleft()
                callback(*args)

    def close(self):
        self.forget(self._wake_r.fileno())
        self._wake_r.close()
        self._wake_w.close()
        self._poller.close()
