"""HTTP/2 with the clients people use, on both engines: curl (ALPN h2 on TLS, prior knowledge on
the plain port, an upload), nghttp (many streams, the client's own checks) and h2load (load
with multiplexing, every request answered). Chromium is in test_browser.py. Each tool skips,
with that reason, where it is absent (.ci/run installs curl and nghttp2-client).
"""

import hashlib
import re
import shutil
import subprocess

import pytest

from reactor.apps.wsgi import WSGIHandler
from reactor.net.tls import Certificates

CURL = shutil.which("curl")
NGHTTP = shutil.which("nghttp")
H2LOAD = shutil.which("h2load")


def needs(tool, name):
    return pytest.mark.skipif(tool is None, reason=f"no {name} command here")


def _curl_speaks_http2():
    if CURL is None:
        return False
    return "HTTP2" in subprocess.run([CURL, "--version"], capture_output=True,
                                     text=True).stdout


needs_curl = pytest.mark.skipif(not _curl_speaks_http2(), reason="no curl with HTTP/2 here")


@pytest.fixture
def servers(server_factory, h2_site, engine, pki):
    """(h2c server, h2 over TLS server) of the small site, on the engine."""
    certificates = Certificates([(str(pki / "cert.pem"), str(pki / "key.pem"))])
    return (server_factory(root=str(h2_site), http2_engine=engine),
            server_factory(root=str(h2_site), http2_engine=engine, tls=certificates))


def curl(*args):
    done = subprocess.run([CURL, "--silent", "--show-error", *args], capture_output=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@needs_curl
def test_curl_http2_over_tls_and_prior_knowledge(servers, h2_site, pki):
    plain, secure = servers
    out = curl("--http2", "--cacert", str(pki / "ca.pem"), "--resolve",
               f"localhost:{secure.port}:127.0.0.1", "-w", "\n%{http_version}",
               f"https://localhost:{secure.port}/index.html")
    assert out == b"<h1>hello over h2</h1>\n2"
    out = curl("--http2-prior-knowledge", "-w", "%{http_version} %{size_download}", "-o",
               "/dev/null", f"http://127.0.0.1:{plain.port}/big.bin")
    assert out == b"2 %d" % (h2_site / "big.bin").stat().st_size
    # Several files over one connection (over TLS: curl 7.88 cannot reuse a prior-knowledge
    # connection, against nginx either), one of them a range.
    out = curl("--cacert", str(pki / "ca.pem"), "--resolve", f"localhost:{secure.port}:127.0.0.1",
               "-r", "0-3", f"https://localhost:{secure.port}/mid.bin",
               f"https://localhost:{secure.port}/mid.bin", "-w", "[%{num_connects}]")
    mid = (h2_site / "mid.bin").read_bytes()
    assert out == mid[:4] + b"[1]" + mid[:4] + b"[0]"
    # Without --http2 curl still asks for h2 by ALPN over TLS (and gets it).
    head = curl("-sI", "--cacert", str(pki / "ca.pem"), "--resolve",
                f"localhost:{secure.port}:127.0.0.1", f"https://localhost:{secure.port}/")
    assert head.startswith(b"HTTP/2 200")


def _sha_app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [hashlib.sha256(body).hexdigest().encode()]


@needs_curl
def test_curl_uploads_to_wsgi_over_h2c(server_factory, engine, tmp_path):
    handler = WSGIHandler(_sha_app, threads=2, server_name="localhost", server_port=0)
    server = server_factory(handler=handler, http2_engine=engine)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"u" * 500_000)
    out = curl("--http2-prior-knowledge", "--data-binary", f"@{upload}",
               f"http://127.0.0.1:{server.port}/upload")
    assert out == hashlib.sha256(b"u" * 500_000).hexdigest().encode()
    handler.close()


@needs(NGHTTP, "nghttp")
def test_nghttp_fetches_many_streams(servers, h2_site):
    plain, secure = servers
    urls = [f"http://127.0.0.1:{plain.port}/index.html?{i}" for i in range(20)]
    done = subprocess.run([NGHTTP, "-n", "-s", *urls, f"http://127.0.0.1:{plain.port}/mid.bin"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert len(re.findall(r"^\s+\d+\s", done.stdout, re.M)) == 21   # one line per stream
    done = subprocess.run([NGHTTP, "-v", "-n", f"https://127.0.0.1:{secure.port}/big.bin"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert ":status: 200" in done.stdout
    assert "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):100]" in done.stdout
    assert "END_STREAM" in done.stdout


@needs(H2LOAD, "h2load")
def test_h2load_gets_every_request_answered(servers):
    for server in servers:
        done = subprocess.run([H2LOAD, "-n", "3000", "-c", "4", "-m", "50",
                               f"{server.url}/index.html"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "3000 succeeded, 0 failed, 0 errored, 0 timeout" in done.stdout, done.stdout
        assert "status codes: 3000 2xx" in done.stdout
