"""Shared fixtures: a real reactor server on 127.0.0.1 in a background thread.

`server_factory(handler=None, tls=None, backend=None, **config_kwargs)` starts a Server for
`Config(**config_kwargs)` (host 127.0.0.1, port 0 and no access log unless given) with
`handler` or the one the Config asks for (static files from `root`, `app="module:attr"`,
`wsgi="module:attr"`); with `tls` (a reactor.net.tls.Certificates) its port speaks HTTPS; with
`backend` (a parser backend module, as the fixture below gives) it parses with that one. The
handle has `.port`, `.url` (http:// or https://127.0.0.1:PORT), `.server`, `.revalidate()`
(static files: changes on disk are seen by the next request) and `.stop()`; every server is
stopped at the end of the test.

`backend` runs a test once per parser backend module (reactor.http._pyparser, reactor.http._cparser);
`engine` once per HTTP/2 engine name ("nghttp2", "h2").

`ca`, `pki` (its files: ca.pem, cert.pem and key.pem for localhost and 127.0.0.1) and
`client_context` (an SSLContext trusting the CA) are for HTTPS; `h2_site` a small site for the
HTTP/2 tests.

Tests marked `slow` are long forms of others, skipped unless pytest is given `--slow`.

`cli(*args)` starts `python -m reactor` on 127.0.0.1, port 0, serving a site of `index.html`
("hello") and `big.bin` (BIG_SIZE bytes) without access log; every process it started is
killed at the end of the test.
"""

import importlib
import os
import signal
import ssl
import threading

import pytest
import trustme
from processes import Cli

from reactor.config import Config
from reactor.http import _pyparser
from reactor.http import h2 as engines
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
        # Handed over once start() is done (its loop runs this first thing): tests look at
        # what it builds, the fast lanes among them.
        started = threading.Event()
        server.loop.call_soon_threadsafe(started.set)
        while not started.wait(0.05) and thread.is_alive():
            pass
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


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(ca, tmp_path_factory):
    """Files of a CA and a certificate for localhost / 127.0.0.1."""
    folder = tmp_path_factory.mktemp("pki")
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(folder / "key.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    return folder


@pytest.fixture
def client_context(pki):
    return ssl.create_default_context(cafile=str(pki / "ca.pem"))


@pytest.fixture
def h2_site(tmp_path):
    """A small site for the HTTP/2 tests: a page, a stylesheet, files of 200 KiB and 3 MiB,
    a directory."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_bytes(b"<h1>hello over h2</h1>")
    (root / "style.css").write_bytes(b"body { color: #333; }\n" * 200)
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "mid.bin").write_bytes(os.urandom(200 * 1024))
    (root / "docs").mkdir()
    (root / "docs" / "a.txt").write_bytes(b"a")
    return root


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
