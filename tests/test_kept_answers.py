"""Answers made from what a server keeps are what a fresh server would send.

A warm server keeps a lot between requests: ready messages in the fast lane, rendered answers
and 304s on snapshots, descriptors of large files, compressed results, sidecars, listings,
error pages. Each case below warms a server up with a few requests (changing files on the way
where it says so), then sends one last request; its bytes must equal those of a server that
never saw anything before it (Date aside). Where the server has not yet looked at a change
(within VALIDITY), the answer may be the old files' or the new ones', never a mix of both.
"""

import gzip
import os
from functools import partial

import pytest
from netutil import exchange, head, normalised, wait_until
from test_static_compress import script

from reactor.static.files import MAX_CACHED_FILE

COMPRESSIBLE = script(70_000, seed=4)       # above the file cache; its gzip is kept in memory
LARGE_SIDECAR_SOURCE = script(400_000, seed=5)
BINARY = bytes(range(256)) * (MAX_CACHED_FILE // 256 + 40)   # large, sent from a descriptor
GZIP = b"Accept-Encoding: gzip"


def write(root, name: str, data: bytes, mtime: int = None):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def until_gzip(target: bytes):
    """A warm-up step: ask for `target` in gzip until the compressor's result is sent."""
    return ("until", target)


# name: (files before, warm-up requests, change, whether the change is seen at once, final
# request). Files are {name: bytes}; a change maps names to new bytes, or None to delete.
CASES = {
    "identity after gzip is kept": (
        {"app.js": COMPRESSIBLE}, [head(b"/app.js"), until_gzip(b"/app.js")],
        None, True, head(b"/app.js")),
    "identity HEAD after gzip is kept": (
        {"app.js": COMPRESSIBLE}, [until_gzip(b"/app.js")],
        None, True, head(b"/app.js", method=b"HEAD")),
    "identity after a small sidecar": (
        {"app.js": COMPRESSIBLE, "app.js.gz": gzip.compress(COMPRESSIBLE, mtime=0)},
        [head(b"/app.js"), head(b"/app.js", GZIP)], None, True,
        head(b"/app.js", b"Accept-Encoding: identity")),
    "a 304 after gzip is kept": (
        {"app.js": COMPRESSIBLE}, [until_gzip(b"/app.js"), head(b"/app.js")],
        None, True, "if-none-match identity"),
    "range of a kept descriptor's file": (
        {"data.bin": BINARY}, [head(b"/data.bin")] * 2, None, True,
        head(b"/data.bin", b"Range: bytes=100-199")),
    "a file rewritten in place, seen": (
        {"data.bin": BINARY}, [head(b"/data.bin")] * 2,
        {"data.bin": BINARY[::-1]}, True, head(b"/data.bin")),
    "a file rewritten in place, not seen yet": (
        {"data.bin": BINARY}, [head(b"/data.bin")] * 2,
        {"data.bin": BINARY[::-1]}, False, head(b"/data.bin")),
    "a large compressible file made small, not seen yet": (
        {"app.js": COMPRESSIBLE}, [head(b"/app.js")] * 2,
        {"app.js": b"let small = 1;\n"}, False, head(b"/app.js")),
    "a small file made large and compressible, not seen yet": (
        {"app.js": b"let small = 1;\n"}, [head(b"/app.js")] * 2,
        {"app.js": COMPRESSIBLE}, False, head(b"/app.js", GZIP)),
    "a large sidecar deleted, not seen yet": (
        {"big.js": LARGE_SIDECAR_SOURCE,
         "big.js.gz": gzip.compress(LARGE_SIDECAR_SOURCE, mtime=0)},
        [head(b"/big.js")], {"big.js.gz": None}, False, head(b"/big.js", GZIP)),
    "a large sidecar sent, then deleted and seen": (
        {"big.js": LARGE_SIDECAR_SOURCE,
         "big.js.gz": gzip.compress(LARGE_SIDECAR_SOURCE, mtime=0)},
        [head(b"/big.js", GZIP)] * 2, {"big.js.gz": None}, True, head(b"/big.js", GZIP)),
    "a compressed file changed and seen": (
        {"app.js": COMPRESSIBLE}, [until_gzip(b"/app.js")],
        {"app.js": script(30_000, seed=6)}, True, head(b"/app.js", GZIP)),
    "the index changed": (
        {"index.html": b"<h1>one</h1>"}, [head(b"/")] * 2,
        {"index.html": b"<h1>two, longer</h1>"}, True, head(b"/")),
    "the index deleted: a listing": (
        {"index.html": b"<h1>one</h1>", "a.txt": b"a"}, [head(b"/")] * 2,
        {"index.html": None}, True, head(b"/")),
    "a listing after a file is added": (
        {"docs/a.txt": b"a"}, [head(b"/docs/"), head(b"/docs/?sort=size")],
        {"docs/b.txt": b"bb"}, True, head(b"/docs/?sort=size")),
    "a JSON listing after a file is deleted": (
        {"docs/a.txt": b"a", "docs/b.txt": b"bb"},
        [head(b"/docs/", b"Accept: application/json")] * 2,
        {"docs/b.txt": None}, True, head(b"/docs/", b"Accept: application/json")),
    "the error page changed": (
        {"404.html": b"<p>not here</p>"}, [head(b"/missing")] * 2,
        {"404.html": b"<p>gone, really</p>"}, True, head(b"/missing")),
    "a compressed result's cache file deleted": (
        {"big.js": LARGE_SIDECAR_SOURCE}, [until_gzip(b"/big.js")],
        "cache files", True, head(b"/big.js", GZIP)),
}

MTIME = 1_700_000_000   # every version of a file gets a time of its own: no two share an ETag


def replay(srv, request: bytes) -> bytes:
    return normalised(exchange(srv.port, request))


def serves_gzip(server, request) -> bool:
    return b"Content-Encoding: gzip" in replay(server, request)


@pytest.mark.parametrize("fast_lane", [True, False], ids=["fast lane", "full path"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_warm_server_answers_as_a_fresh_one(tmp_path, server_factory, name, fast_lane):
    files, warm_up, change, seen_at_once, final = CASES[name]
    root = tmp_path / "site"
    cache = tmp_path / "cache"
    cache.mkdir()
    for each, data in files.items():
        write(root, each, data, MTIME)

    def start():
        return server_factory(root=str(root), fast_lane=fast_lane, compress_cache=str(cache))

    warm = start()
    for step in warm_up:
        if step[0] == "until":
            assert wait_until(partial(serves_gzip, warm, head(step[1], GZIP)))
        else:
            replay(warm, step)
    if final == "if-none-match identity":
        etag = next(line for line in replay(warm, head(b"/app.js")).split(b"\r\n")
                    if line.startswith(b"ETag: "))
        final = head(b"/app.js", b"If-None-Match: " + etag[6:])
    answers = {replay(start(), final)}   # what a server that saw nothing before sends
    if change == "cache files":
        for each in os.listdir(cache):
            os.unlink(cache / each)
    if isinstance(change, dict):
        for each, data in change.items():
            if data is None:
                os.unlink(root / each)
            else:
                write(root, each, data, MTIME + 10)
        if seen_at_once:
            answers = {replay(start(), final)}
        else:
            answers.add(replay(start(), final))
        if seen_at_once:
            warm.revalidate()
    assert replay(warm, final) in answers
