"""Shared fixtures: a real reactor server on 127.0.0.1 in a background thread.

`server_factory(handler=None, tls=None, backend=None, **config_kwargs)` starts a Server for
`Config(**config_kwargs)` (host 127.0.0.1, port 0 and no access log unless given) with
`handler` or the one the Config asks for (static files from `root`, `app="module:attr"`,
`wsgi="module:attr"`); with `tls` (a reactor.net.tls.Certificates) its port speaks HTTPS; with
`backend` (a parser backend module, as the fixture below gives) it parses with that one. The
handle has `.port`, `.url` (http:// or https://127.0.0.1:PORT), `.server`, `.revalidate()`
(static files: changes on disk are seen by the next request) and `.stop()`; every server is
stopped at the end of the test.

`backend` runs a test once per parser backend module (reactor.http._pyparser, reactor.http._cparser).

Tests marked `slow` are long forms of others, skipped unless pytest is given `--slow`.

`cli(*args)` starts `python -m reactor` on 127.0.0.1, port 0, serving a site of `index.html`
("hello") and `big.bin` (BIG_SIZE bytes) without access log; every process it started is
killed at the end of the test.
"""

import importlib
import signal
import threading

import pytest
from processes import Cli

from reactor.config import Config
from reactor.http import _pyparser
from reactor.net.server import Server, open_listener
from reactor.ops import wiring as ops

BIG_SIZE = 8 * 1024 * 1024


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true",
                     help="also run the long forms of tests (marked slow)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a long form of a test, run with --slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="a long form: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


class RunningServer:
    def __init__(self, server: Server, thread: threading.Thread):
        self.server = server
        self.thread = thread
        self.port = server.address[1]
        scheme = "https" if server.secure_listeners else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def revalidate(self):
        """Make the next request see the served tree as it is now, as it would VALIDITY
        seconds later: every lookup is checked again and the fast lanes' ready messages are
        dropped. Runs on the server's loop, which owns both."""
        done = threading.Event()

        def expire():
            files = self.server.handler.files
            for node in list(files._nodes.values()):
                files.expire(node)
            for lane in self.server.lanes.values():
                lane.expires = 0.0
            done.set()
        self.server.loop.call_soon_threadsafe(expire)
        assert done.wait(5), "the server's loop did not run"

    def stop(self, grace: float = 0):
        if self.thread.is_alive():
            self.server.loop.call_soon_threadsafe(self.server.shutdown, grace)
            self.thread.join(10)
            assert not self.thread.is_alive(), "server did not stop"


@pytest.fixture
def server_factory():
    running = []

    def start(handler=None, tls=None, backend=None, **config_kwargs):
        config_kwargs.setdefault("host", "127.0.0.1")
        config_kwargs.setdefault("port", 0)
        config_kwargs.setdefault("access_log", False)
        config = Config(**config_kwargs)
        parser = {} if backend is None else {"parser_class": backend.RequestParser}
        server = Server(config, handler=handler, tls=tls, **parser)
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


def _parser_backends():
    params = [pytest.param(_pyparser, id="python")]
    try:
        cparser = importlib.import_module("reactor.http._cparser")
    except ImportError as error:
        params.append(pytest.param(None, id="c", marks=pytest.mark.skip(
            reason=f"C extension not built: {error}")))
    else:
        params.append(pytest.param(cparser, id="c"))
    return params


@pytest.fixture(params=_parser_backends())
def backend(request):
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
