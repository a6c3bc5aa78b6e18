"""Shared fixtures: a real reactor server on 127.0.0.1 in a background thread.

`server_factory(handler=None, tls=None, **config_kwargs)` starts a Server for
`Config(**config_kwargs)` (host 127.0.0.1, port 0 and no access log unless given) with
`handler` or the one the Config asks for (static files from `root`, `app="module:attr"`,
`wsgi="module:attr"`); with `tls` (a reactor.net.tls.Certificates) its port speaks HTTPS. The
handle has `.port`, `.url` (http:// or https://127.0.0.1:PORT), `.server` and `.stop()`; every
server is stopped at the end of the test.

`backend` runs a test once per parser backend module (reactor.http._pyparser, reactor.http._cparser);
`engine` once per HTTP/2 engine name ("nghttp2", "h2").

`cli(*args)` starts `python -m reactor` on 127.0.0.1, port 0, serving a site of `index.html`
("hello") and `big.bin` (BIG_SIZE bytes) without access log; every process it started is
killed at the end of the test.
"""

import importlib
import signal
import threading

import pytest

from processes import Cli
from reactor.http import _pyparser
from reactor.http import h2 as engines
from reactor.ops import wiring as ops
from reactor.config import Config
from reactor.net.server import Server, open_listener


BIG_SIZE = 8 * 1024 * 1024


class RunningServer:
    def __init__(self, server: Server, thread: threading.Thread):
        self.server = server
        self.thread = thread
        self.port = server.address[1]
        scheme = "https" if server.secure_listeners else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def stop(self, grace: float = 0):
        if self.thread.is_alive():
            self.server.loop.call_soon_threadsafe(self.server.shutdown, grace)
            self.thread.join(10)
            assert not self.thread.is_alive(), "server did not stop"


@pytest.fixture
def server_factory():
    running = []

    def start(handler=None, tls=None, **config_kwargs):
        config_kwargs.setdefault("host", "127.0.0.1")
        config_kwargs.setdefault("port", 0)
        config_kwargs.setdefault("access_log", False)
        config = Config(**config_kwargs)
        server = Server(config, handler=handler, tls=tls)
        ops.install(server, config)   # as a worker does; nothing unless the Config asks
        server.add_listener(open_listener(config), secure=tls is not None)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        handle = RunningServer(server, thread)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.stop()


def _available(candidates) -> list:
    """pytest params of (id, load) pairs: load() gives the value, or raises ImportError where
    it is missing, and then the param is skipped with that reason."""
    params = []
    for name, load in candidates:
        try:
            value = load()
        except ImportError as error:
            params.append(pytest.param(None, id=name, marks=pytest.mark.skip(
                reason=f"{name} not available: {error}")))
        else:
            params.append(pytest.param(value, id=name))
    return params


@pytest.fixture(params=_available([
        ("python", lambda: _pyparser),
        ("c", lambda: importlib.import_module("reactor.http._cparser"))]))
def backend(request):
    return request.param


def _h2_engine(name):
    engines.engine(name)
    return name


@pytest.fixture(params=_available([(name, lambda name=name: _h2_engine(name))
                                   for name in engines.ENGINES]))
def engine(request):
    """The name of an HTTP/2 engine (Config.http2_engine): each test runs on both."""
    return request.param


@pytest.fixture
def cli(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_bytes(b"hello")
    (root / "big.bin").write_bytes(b"b" * BIG_SIZE)
    started = []

    def start(*args, **kwargs):
        if "--unix" not in args and "--fd" not in args and not kwargs.get("argv"):
            args = ("--port", "0", "--bind", "127.0.0.1", *args)
        handle = Cli("--root", str(root), "--no-access-log", *args, **kwargs)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop(signal.SIGKILL)
