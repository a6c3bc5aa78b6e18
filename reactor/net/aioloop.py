"""The Loop's interface carried out by an asyncio event loop (uvloop's when it is installed).

A handler whose work is coroutines (an ASGI application) runs them on this loop, and the
server's connections are driven by the same loop: one thread and one epoll for both, and no
hand-over between threads per request. Readiness callbacks become asyncio's add_reader and
add_writer, timers its call_later, and signals its add_signal_handler, which wakes the loop
at once.

Knows sockets, time and asyncio, never HTTP: it must not import anything else from reactor.
"""

import asyncio
import operator
import threading
import time


def new_event_loop(kind: str = "auto"):
    """An asyncio loop of `kind`: "uvloop", "asyncio", or "auto" (uvloop when installed)."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class AsyncioLoop:
    """The reactor's Loop (see loop.py) on an asyncio loop, which is `.asyncio`.

    `now` is read from the clock on each use rather than once per iteration: asyncio runs
    the iteration, so there is no place to read it once.
    """

    # The clock through a C-level getter (methodcaller), not a Python property: a connection
    # reads it three times a request, and those Python frames were 1.3 % of an ASGI hello
    # world's profile.
    now = property(operator.methodcaller("_clock"))

    def __init__(self, kind: str = "auto"):
        self._clock = time.monotonic
        self.asyncio = new_event_loop(kind)
        self.kind = type(self.asyncio).__module__.partition(".")[0]   # "uvloop" or "asyncio"
        self._callbacks = {}   # fd -> (reader, writer) as registered with asyncio
        self._thread = None

    # -- readiness ---------------------------------------------------------------------------

    def watch(self, fd, reader, writer):
        loop = self.asyncio
        old_reader, old_writer = self._callbacks.get(fd, (None, None))
        if reader != old_reader:
            if reader is None:
                loop.remove_reader(fd)
            else:
                loop.add_reader(fd, reader)
        if writer != old_writer:
            if writer is None:
                loop.remove_writer(fd)
            else:
                loop.add_writer(fd, writer)
        if reader is None and writer is None:
            self._callbacks.pop(fd, None)
        else:
            self._callbacks[fd] = (reader, writer)

    def add_reader(self, fd, callback):
        self.watch(fd, callback, self._callbacks.get(fd, (None, None))[1])

    def remove_reader(self, fd):
        self.watch(fd, None, self._callbacks.get(fd, (None, None))[1])

    def forget(self, fd):
        if fd in self._callbacks:
            self.watch(fd, None, None)

    # A descriptor about to be closed is forgotten all the same: asyncio's selector keeps a
    # table of its own, which a close does not reach.
    closing = forget

    # -- time and calls ------------------------------------------------------------------------

    def call_later(self, delay, callback, *args):
        return self.asyncio.call_later(delay, callback, *args)

    def call_soon(self, callback, *args):
        self.asyncio.call_soon(callback, *args)

    def call_soon_threadsafe(self, callback, *args):
        """From the loop's own thread (a coroutine completing a Future the server waits on)
        a plain call_soon is enough and spares a write to the wake-up pipe per request.
        Signals do not come this way: on_signal hands them to asyncio."""
        if threading.get_ident() == self._thread:
            self.asyncio.call_soon(callback, *args)
        else:
            self.asyncio.call_soon_threadsafe(callback, *args)

    def on_signal(self, signum, callback):
        """Call `callback()` on the loop when `signum` arrives (main thread only)."""
        self.asyncio.add_signal_handler(signum, callback)

    def run_until_complete(self, coroutine):
        """Run the loop until `coroutine` is done (start-up and shutdown work); its result."""
        self._thread = threading.get_ident()
        return self.asyncio.run_until_complete(coroutine)

    # -- running -------------------------------------------------------------------------------

    def stop(self):
        self.asyncio.stop()

    def run(self):
        self._thread = threading.get_ident()
        asyncio.set_event_loop(self.asyncio)
        self.asyncio.run_forever()

    def close(self):
        for fd in list(self._callbacks):
            self.forget(fd)
        self.asyncio.close()   # its signal handlers go with it
