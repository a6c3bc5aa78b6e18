"""Compression on the fly over real sockets: once per version and coding, then served like a
file (validators, Range, HEAD, sendfile for large results), identity until it is ready."""

import gzip
import os
import random
import threading
import time

import pytest
from netutil import exchange, fetch, head, parse_responses, wait_until
from test_static_handler import request

from reactor.static import StaticFiles
from reactor.static.codecs import CODECS
from reactor.static.compressed import MAX_IN_MEMORY, Compressor

WORDS = ("function", "return", "const", "let", "value", "=>", "{", "}", "(", ")", "await",
         "this.state", "props", "render", "export", "default", "import", "from", ";", "\n")


def script(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    out = []
    total = 0
    while total < size:
        word = rng.choice(WORDS) + rng.choice(("", "_%d" % rng.randrange(1000))) + " "
        out.append(word)
        total += len(word)
    return "".join(out).encode()[:size]


APP_JS = script(50 * 1024)
LARGE_JS = script(900 * 1024, seed=2)   # its gzip is larger than MAX_IN_MEMORY
VENDOR_JS = script(70_000, seed=3)      # above the file cache; its gzip is kept in memory


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "app.js").write_bytes(APP_JS)
    (root / "large.js").write_bytes(LARGE_JS)
    (root / "tiny.css").write_bytes(b"body{margin:0}")
    (root / "photo.png").write_bytes(os.urandom(4096))
    (root / "bundle.js.gz").write_bytes(gzip.compress(APP_JS))
    return root


def encoded(srv, path, coding="gzip", **headers):
    """The first answer to `path` that comes in `coding` (the compressor works meanwhile)."""
    found = []

    def arrived():
        response, body = fetch(srv.port, path, headers={"Accept-Encoding": coding, **headers})
        found[:] = [response, body]
        return response.getheader("Content-Encoding") == coding
    assert wait_until(arrived), f"{path} never came in {coding}"
    return found


def test_identity_first_then_gzip_with_its_own_etag(site, server_factory):
    srv = server_factory(root=str(site))
    first, body = fetch(srv.port, "/app.js", headers={"Accept-Encoding": "gzip"})
    assert first.status == 200 and body == APP_JS
    assert first.getheader("Content-Encoding") is None
    assert first.getheader("Vary") == "Accept-Encoding"
    response, body = encoded(srv, "/app.js")
    assert gzip.decompress(body) == APP_JS and len(body) < len(APP_JS) // 2
    assert int(response.getheader("Content-Length")) == len(body)
    assert response.getheader("Vary") == "Accept-Encoding"
    assert response.getheader("Content-Type") == "text/javascript; charset=utf-8"
    assert response.getheader("Last-Modified") == first.getheader("Last-Modified")
    tag = response.getheader("ETag")
    assert tag.endswith('-gzip"') and tag != first.getheader("ETag")
    again, same = fetch(srv.port, "/app.js", headers={"Accept-Encoding": "gzip"})
    assert same == body and again.getheader("ETag") == tag   # the kept result, byte for byte
    plain, raw = fetch(srv.port, "/app.js")
    assert raw == APP_JS and plain.getheader("ETag") == first.getheader("ETag")
    assert plain.getheader("Vary") == "Accept-Encoding"


def test_validators_range_and_head_of_the_encoded_body(site, server_factory):
    srv = server_factory(root=str(site))
    response, body = encoded(srv, "/app.js")
    tag = response.getheader("ETag")
    gz = {"Accept-Encoding": "gzip"}
    not_modified, empty = fetch(srv.port, "/app.js", headers={**gz, "If-None-Match": tag})
    assert not_modified.status == 304 and empty == b""
    assert not_modified.getheader("ETag") == tag
    assert not_modified.getheader("Vary") == "Accept-Encoding"
    identity_tag = fetch(srv.port, "/app.js")[0].getheader("ETag")
    stale, full = fetch(srv.port, "/app.js", headers={**gz, "If-None-Match": identity_tag})
    assert stale.status == 200 and full == body
    failed, _ = fetch(srv.port, "/app.js", headers={**gz, "If-Match": identity_tag})
    assert failed.status == 412
    part, piece = fetch(srv.port, "/app.js", headers={**gz, "Range": "bytes=10-109"})
    assert part.status == 206 and piece == body[10:110]
    assert part.getheader("Content-Encoding") == "gzip"
    assert part.getheader("Content-Range") == f"bytes 10-109/{len(body)}"
    resumed, rest = fetch(srv.port, "/app.js",
                          headers={**gz, "Range": "bytes=100-", "If-Range": tag})
    assert resumed.status == 206 and rest == body[100:]
    head, nothing = fetch(srv.port, "/app.js", "HEAD", headers=gz)
    assert nothing == b"" and head.status == 200
    assert sorted((k, v) for k, v in head.getheaders() if k != "Date") == sorted(
        (k, v) for k, v in response.getheaders() if k != "Date")


def test_q_values_decide_and_the_server_breaks_ties(site, server_factory):
    srv = server_factory(root=str(site))
    encoded(srv, "/app.js", "gzip")
    for accept in ("gzip;q=0.5, identity", "identity", "gzip;q=0", "br;q=0, gzip;q=0, *;q=0.1",
                   "deflate"):
        if "br" not in CODECS and accept.startswith("br"):
            continue
        response, body = fetch(srv.port, "/app.js", headers={"Accept-Encoding": accept})
        if response.getheader("Content-Encoding") is None:
            assert body == APP_JS, accept
        assert response.getheader("Vary") == "Accept-Encoding", accept
        assert response.getheader("Content-Encoding") in (None, "br", "zstd"), accept
    response, _ = fetch(srv.port, "/app.js", headers={"Accept-Encoding": "gzip, deflate"})
    assert response.getheader("Content-Encoding") == "gzip"


@pytest.mark.skipif("br" not in CODECS, reason="the brotli package is not installed")
def test_brotli_wins_a_tie_and_loses_to_a_higher_q(site, server_factory):
    import brotli

    srv = server_factory(root=str(site))
    response, body = encoded(srv, "/app.js", "br")
    assert brotli.decompress(body) == APP_JS and response.getheader("ETag").endswith('-br"')
    encoded(srv, "/app.js", "gzip")
    tie, _ = fetch(srv.port, "/app.js", headers={"Accept-Encoding": "gzip, br"})
    assert tie.getheader("Content-Encoding") == "br"
    higher, _ = fetch(srv.port, "/app.js", headers={"Accept-Encoding": "br;q=0.5, gzip"})
    assert higher.getheader("Content-Encoding") == "gzip"


@pytest.mark.skipif("zstd" not in CODECS, reason="no zstd codec (zstandard, compression.zstd)")
def test_zstd(site, server_factory):
    try:
        import zstandard
        decompress = zstandard.ZstdDecompressor().decompress
    except ImportError:
        from compression.zstd import decompress
    srv = server_factory(root=str(site))
    response, body = encoded(srv, "/app.js", "zstd")
    assert decompress(body) == APP_JS and response.getheader("ETag").endswith('-zstd"')


def test_what_is_never_compressed(site, server_factory):
    srv = server_factory(root=str(site))
    for path in ("/tiny.css", "/photo.png", "/bundle.js.gz"):
        for _ in range(3):
            response, body = fetch(srv.port, path, headers={"Accept-Encoding": "gzip, br, zstd"})
            assert response.getheader("Content-Encoding") is None, path
            assert response.getheader("Vary") is None, path
            assert body == (site / path[1:]).read_bytes()
    off = server_factory(root=str(site), compress=False)
    for _ in range(3):
        response, body = fetch(off.port, "/app.js", headers={"Accept-Encoding": "gzip"})
        assert response.getheader("Content-Encoding") is None and body == APP_JS
        assert response.getheader("Vary") is None
        time.sleep(0.05)


def test_large_results_go_to_the_cache_directory(site, tmp_path, server_factory):
    cache = tmp_path / "cache"
    cache.mkdir()
    srv = server_factory(root=str(site), compress_cache=str(cache))
    response, body = encoded(srv, "/large.js")
    assert len(body) > MAX_IN_MEMORY and gzip.decompress(body) == LARGE_JS
    stored = [name for name in os.listdir(cache) if not name.startswith(".")]
    assert len(stored) == 1 and stored[0].endswith(".gz")
    assert (cache / stored[0]).read_bytes() == body
    part, piece = fetch(srv.port, "/large.js",
                        headers={"Accept-Encoding": "gzip", "Range": "bytes=-1000"})
    assert part.status == 206 and piece == body[-1000:]
    # Another server on the same directory takes the result instead of compressing again.
    again = server_factory(root=str(site), compress_cache=str(cache))
    first, same = fetch(again.port, "/large.js", headers={"Accept-Encoding": "gzip"})
    assert wait_until(lambda: fetch(again.port, "/large.js", headers={
        "Accept-Encoding": "gzip"})[1] == body)
    # A cache file that disappears is made again; meanwhile identity is served.
    os.unlink(cache / stored[0])
    response, plain = fetch(srv.port, "/large.js", headers={"Accept-Encoding": "gzip"})
    assert plain == LARGE_JS or gzip.decompress(plain) == LARGE_JS
    encoded(srv, "/large.js")


def test_private_cache_directory_is_removed_at_close(site):
    handler = StaticFiles(str(site))
    handler(request("/large.js", accept_encoding="gzip"))
    assert wait_until(lambda: handler(request("/large.js", accept_encoding="gzip")).fields
                      .find(b"Content-Encoding: gzip") >= 0)
    directory = handler.compressor._temporary
    assert directory and os.listdir(directory)
    handler.close()
    assert not os.path.exists(directory)


def test_a_changed_file_is_compressed_again(site, server_factory):
    srv = server_factory(root=str(site))
    response, _ = encoded(srv, "/app.js")
    changed = script(40 * 1024, seed=9)
    (site / "app.js").write_bytes(changed)
    later = time.time() + 5
    os.utime(site / "app.js", (later, later))

    def new_version():
        response, body = fetch(srv.port, "/app.js", headers={"Accept-Encoding": "gzip"})
        return (response.getheader("Content-Encoding") == "gzip"
                and gzip.decompress(body) == changed)
    assert wait_until(new_version)
    assert fetch(srv.port, "/app.js", headers={"Accept-Encoding": "gzip"})[0].getheader(
        "ETag") != response.getheader("ETag")


def test_compression_never_holds_up_the_loop(site, server_factory):
    release = threading.Event()

    def slow_gzip(data):
        release.wait(10)            # a codec that takes its time, without the GIL
        return gzip.compress(data, mtime=0)

    handler = StaticFiles(str(site), compress=Compressor(codecs={"gzip": slow_gzip}))
    srv = server_factory(handler=handler)
    try:
        for _ in range(3):
            started = time.monotonic()
            response, body = fetch(srv.port, "/app.js", headers={"Accept-Encoding": "gzip"})
            assert body == APP_JS and response.getheader("Content-Encoding") is None
            assert time.monotonic() - started < 1.0
    finally:
        release.set()
    encoded(srv, "/app.js")
    handler.close()


def test_work_for_versions_that_changed_does_not_use_up_the_queue(site, monkeypatch):
    from reactor.static import compressed

    monkeypatch.setattr(compressed, "MAX_PENDING", 2)
    handler = StaticFiles(str(site))
    try:
        for version in range(4):
            # Each version is asked for once and replaced before its result is picked up.
            (site / "app.js").write_bytes(script(20 * 1024, seed=version))
            later = time.time() + 10 + version
            os.utime(site / "app.js", (later, later))
            for node in handler.files._nodes.values():
                node.deadline = 0.0
            handler(request("/app.js", accept_encoding="gzip"))
            assert wait_until(handler.files._nodes["app.js"].encoded["gzip"].done)
        assert wait_until(lambda: b"Content-Encoding: gzip" in handler(
            request("/app.js", accept_encoding="gzip")).fields)
    finally:
        handler.close()


@pytest.mark.parametrize("sidecar", [False, True], ids=["compressed here", "sidecar"])
@pytest.mark.parametrize("fast_lane", [True, False], ids=["fast lane", "full path"])
def test_plain_answers_of_a_large_file_stay_whole_once_its_gzip_is_in_memory(
        site, server_factory, fast_lane, sidecar):
    (site / "vendor.js").write_bytes(VENDOR_JS)
    if sidecar:
        (site / "vendor.js.gz").write_bytes(gzip.compress(VENDOR_JS, mtime=0))
    srv = server_factory(root=str(site), fast_lane=fast_lane)
    first = parse_responses(exchange(srv.port, head(b"/vendor.js", b"Connection: close")))[0]
    assert first.body == VENDOR_JS
    encoded(srv, "/vendor.js")
    plain = [(b"GET", b""), (b"GET", b"Accept-Encoding: identity"), (b"HEAD", b"")]
    data = b"".join(head(b"/vendor.js", *filter(None, [field]), method=method)
                    for method, field in plain) + head(b"/vendor.js", b"Connection: close")
    answers = parse_responses(exchange(srv.port, data), [m.decode() for m, _ in plain] + ["GET"])
    for answer in answers:
        assert answer.status == 200 and answer.getheader("Content-Encoding") is None
        assert answer.getheader("Content-Length") == str(len(VENDOR_JS))
        assert answer.getheader("ETag") == first.getheader("ETag")
    assert [answer.body for answer in answers] == [VENDOR_JS, VENDOR_JS, b"", VENDOR_JS]


def test_the_first_request_after_a_compressed_file_changes_gets_the_new_version(
        site, server_factory):
    srv = server_factory(root=str(site))
    encoded(srv, "/app.js")
    changed = script(40 * 1024, seed=9)
    (site / "app.js").write_bytes(changed)
    srv.revalidate()
    response, body = fetch(srv.port, "/app.js", headers={"Accept-Encoding": "gzip"})
    assert response.status == 200 and body == changed   # identity until the new gzip is made
