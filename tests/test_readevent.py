"""The read-event unit, C and its pure-Python twin alike, over real sockets: accepting."""

import errno
import importlib
import os
import socket

import pytest
from netutil import connect, exchange, head, wait_until

from reactor.net import _pyreadevent


def _backends():
    params = [pytest.param(_pyreadevent, id="python")]
    try:
        native = importlib.import_module("reactor.net._creadevent")
    except ImportError as error:
        params.append(pytest.param(None, id="c", marks=pytest.mark.skip(
            reason=f"C extension not built: {error}")))
    else:
        params.append(pytest.param(native, id="c"))
    return params


@pytest.fixture(params=_backends())
def unit(request):
    return request.param


def listening(family=socket.AF_INET, where=("127.0.0.1", 0)):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(where)
    sock.listen(16)
    sock.setblocking(False)
    return sock


def test_accepts_in_batches_non_blocking_and_not_inherited(unit):
    with listening() as listener:
        acceptor = unit.Acceptor(listener, 2)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        taken, error = acceptor.accept()
        more, _ = acceptor.accept()
        none, last_error = acceptor.accept()
        assert error is None and last_error is None and list(none) == []
        assert [(host, port) for _, host, port in taken + more] == [
            client.getsockname() for client in clients]
        for fd, _, _ in taken + more:
            assert not os.get_blocking(fd) and not os.get_inheritable(fd)
            os.close(fd)
        for client in clients:
            client.close()


def test_unix_peers_have_no_address(unit, tmp_path):
    path = str(tmp_path / "s")
    with listening(socket.AF_UNIX, path) as listener:
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        (fd, host, port), = unit.Acceptor(listener, 4).accept()[0]
        assert (host, port) == ("", 0)
        os.close(fd)
        client.close()


def test_an_error_that_stops_accepting_is_returned(unit):
    listener = listening()
    acceptor = unit.Acceptor(listener, 4)
    listener.close()
    taken, error = acceptor.accept()
    assert list(taken) == [] and isinstance(error, OSError) and error.errno


def test_accepted_connections_do_not_wait_for_small_writes(server_factory, tmp_path):
    """TCP_NODELAY, set once on the listener, holds for every connection it accepts."""
    (tmp_path / "a.txt").write_bytes(b"a")
    srv = server_factory(root=str(tmp_path))
    with connect(srv.port) as sock:
        sock.sendall(head(b"/a.txt"))
        sock.recv(65536)
        assert wait_until(lambda: srv.server.connections)
        for connection in list(srv.server.connections):
            assert connection.transport.sock.getsockopt(socket.IPPROTO_TCP,
                                                        socket.TCP_NODELAY)
    assert exchange(srv.port, head(b"/a.txt")).endswith(b"\r\n\r\na")


def native_lane(unit, logged: bool, answers: dict):
    """A C lane of 16 entries holding `answers` (key -> message), and a socket pair whose
    first end, non-blocking, it reads."""
    if unit.NativeLane is None:
        pytest.skip("the pure-Python build answers every plain request from the Python lane")
    from reactor.http.parser import RequestParser

    native = unit.NativeLane(RequestParser(), bytearray(65536), logged, 16)
    for key, message in answers.items():
        assert native.put(key, message)
    a, b = socket.socketpair()
    a.setblocking(False)
    return native, a, b


def test_the_c_lane_answers_a_read_from_its_table(unit):
    native, a, b = native_lane(unit, True, {b"/a\x07": b"answer a", b"/b\x07": b"answer b"})
    with a, b:
        assert native.serve(a.fileno(), False, b"h") == -errno.EAGAIN
        b.sendall(head(b"/a", b"User-Agent: u") + head(b"/b") + head(b"/c") + head(b"/a"))
        n = native.serve(a.fileno(), False, b"h")
        read, ready, end, asked, gathered, *_ = native.results
        assert (read, ready, asked, gathered) == (n, 2, 0, 16)
        assert end == len(head(b"/a", b"User-Agent: u") + head(b"/b"))
        keys, fields = native.scanned()
        assert keys == [b"/a\x07", b"/b\x07", b"/c\x07", b"/a\x07"]
        assert fields[2] == b"u"
        assert native.send(a.fileno(), 3) == 13 and b.recv(100) == b"wer aanswer b"
        assert native.gathered(9) == b"nswer b"
        b.sendall(head(b"/b"))
        assert native.serve(a.fileno(), True, b"h") == len(head(b"/b"))
        assert native.results[5] == 8 and b.recv(100) == b"answer b"   # read, answered, sent
        b.sendall(head(b"/a"))
        assert native.serve(a.fileno(), False, b"h") and native.results[5] == 0   # not sent
        native.clear()
        assert native.answer(n) == 0


def test_a_key_put_refused_stops_the_c_lane_and_says_so(unit):
    native, a, b = native_lane(unit, False, {b"/a\x07": b"answer a", b"/app\x07": b""})
    with a, b:
        b.sendall(head(b"/c") + head(b"/a"))
        native.serve(a.fileno(), False, b"h")
        assert native.results[1] == 0 and not native.results[native.REFUSED]   # unknown
        b.sendall(head(b"/a") + head(b"/app") + head(b"/a"))
        native.serve(a.fileno(), False, b"h")
        assert native.results[1] == 1 and native.results[native.REFUSED]
        assert native.results[2] == len(head(b"/a"))   # answered up to the refused one
        b.sendall(head(b"/app"))
        native.serve(a.fileno(), False, b"h")
        assert native.results[1] == 0 and native.results[native.REFUSED]
        native.clear()
        b.sendall(head(b"/app"))
        native.serve(a.fileno(), False, b"h")
        assert not native.results[native.REFUSED]

