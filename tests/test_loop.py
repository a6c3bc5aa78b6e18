"""The loop over real sockets, with each poller it can run on: epoll (Linux) and `selectors`
(what kqueue and poll machines get)."""

import select
import socket

import pytest

from reactor.net.loop import EpollPoller, Loop, SelectorPoller

POLLERS = [pytest.param(SelectorPoller, id="selectors"),
           pytest.param(EpollPoller, id="epoll", marks=pytest.mark.skipif(
               not hasattr(select, "epoll"), reason="no epoll here"))]


@pytest.fixture(params=POLLERS)
def loop(request):
    loop = Loop(request.param())
    yield loop
    loop.close()


def run_once(loop):
    """One round of the loop: a look at what is ready (a call is waiting, so it does not
    wait), its callbacks, then stop."""
    loop.call_soon(loop.stop)
    loop.run()


def test_readers_and_writers_are_called_for_what_they_wait_for(loop):
    a, b = socket.socketpair()
    calls = []
    loop.watch(a.fileno(), None, lambda: calls.append("writable"))
    run_once(loop)
    assert calls == ["writable"]
    b.send(b"x")
    loop.watch(a.fileno(), lambda: calls.append("readable"), None)   # the writer dropped
    calls.clear()
    run_once(loop)
    assert calls == ["readable"]
    loop.watch(a.fileno(), lambda: calls.append("readable"), lambda: calls.append("writable"))
    calls.clear()
    run_once(loop)
    assert calls == ["readable", "writable"]
    a.close(), b.close()


def test_a_reader_that_closes_its_socket_stops_the_writer_of_the_same_round(loop):
    a, b = socket.socketpair()
    calls = []

    def reader():
        calls.append("readable")
        loop.closing(a.fileno())
        a.close()

    b.send(b"x")
    loop.watch(a.fileno(), reader, lambda: calls.append("writable"))
    run_once(loop)
    assert calls == ["readable"]
    # The descriptor number can be watched again once reused.
    c, d = socket.socketpair()
    d.send(b"y")
    loop.add_reader(c.fileno(), lambda: calls.append("again"))
    run_once(loop)
    assert calls[-1] == "again"
    for sock in (b, c, d):
        sock.close()


def test_forgotten_and_removed_readers_are_not_called(loop):
    a, b = socket.socketpair()
    calls = []
    b.send(b"x")
    loop.add_reader(a.fileno(), lambda: calls.append("a"))
    loop.remove_reader(a.fileno())
    c, d = socket.socketpair()
    d.send(b"x")
    loop.add_reader(c.fileno(), lambda: calls.append("c"))
    loop.forget(c.fileno())
    loop.forget(c.fileno())   # twice is harmless
    run_once(loop)
    assert calls == []
    for sock in (a, b, c, d):
        sock.close()


def test_calls_from_other_threads_wake_the_loop(loop):
    import threading

    seen = []
    loop.call_later(30, seen.append, "timer")   # what a loop nobody woke would wait for

    def other_thread():
        loop.call_soon_threadsafe(seen.append, "woken")
        loop.call_soon_threadsafe(loop.stop)

    threading.Thread(target=other_thread).start()
    loop.run()
    assert seen == ["woken"]
