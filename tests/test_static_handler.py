"""StaticFiles called directly with Request objects: the decisions, without sockets."""

import os

import pytest

from reactor.http.request import Request
from reactor.http.response import FileSlice, Response
from reactor.static import StaticFiles
from reactor.static.files import MAX_CACHED_FILE

BIG = bytes(range(256)) * ((MAX_CACHED_FILE // 256) + 8)


def request(target, method="GET", **headers):
    fields = []
    for name, value in headers.items():
        fields += [name.replace("_", "-").encode(), value.encode()]
    return Request(method, target, 11, fields, None, False, True, False)


def fields_of(response: Response) -> dict:
    lines = response.fields.decode("latin-1").split("\r\n")
    return dict(line.split(": ", 1) for line in lines if line)


def body_of(response: Response) -> bytes:
    """The bytes the connection would send, reading FileSlices and closing them."""
    parts = response.body if isinstance(response.body, list) else [response.body]
    out = []
    for part in parts:
        if isinstance(part, FileSlice):
            out.append(os.pread(part.fd, part.count, part.offset))
            part.close()
        else:
            out.append(part)
    return b"".join(out)


@pytest.fixture
def root(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_bytes(b"<h1>home</h1>")
    (site / "a.txt").write_bytes(b"hello world")
    (site / "big.bin").write_bytes(BIG)
    (site / "empty.txt").write_bytes(b"")
    (site / "docs").mkdir()
    (site / "docs" / "page.md").write_bytes(b"# page")
    (site / "evil.com").mkdir()
    (site / ".env").write_bytes(b"SECRET=1")
    return site


@pytest.fixture
def handler(root):
    return StaticFiles(str(root))


def test_methods(handler):
    options = handler(request("/a.txt", "OPTIONS"))
    assert options.status == 204 and fields_of(options)["Allow"] == "GET, HEAD, OPTIONS"
    for method in ("POST", "PUT", "DELETE", "PATCH", "get"):
        refused = handler(request("/a.txt", method))
        assert refused.status == 405 and fields_of(refused)["Allow"] == "GET, HEAD, OPTIONS"


def test_head_gets_the_same_response_as_get(handler):
    assert handler(request("/a.txt", "HEAD")) is handler(request("/a.txt"))


def test_file_headers(handler, root):
    response = handler(request("/a.txt"))
    fields = fields_of(response)
    assert response.status == 200 and response.body == b"hello world"
    assert fields["Content-Type"] == "text/plain; charset=utf-8"
    assert fields["Accept-Ranges"] == "bytes"
    assert fields["ETag"].startswith('"') and "Last-Modified" in fields
    for forbidden in ("Content-Length", "Transfer-Encoding", "Connection", "Date", "Server",
                      "Vary", "Cache-Control"):
        assert forbidden not in fields


def test_cache_control_when_configured(root):
    handler = StaticFiles(str(root), cache_control="public, max-age=60")
    assert fields_of(handler(request("/a.txt")))["Cache-Control"] == "public, max-age=60"
    big = handler(request("/big.bin"))
    big.body.close()
    assert fields_of(big)["Cache-Control"] == "public, max-age=60"


def test_large_file_is_a_file_slice(handler):
    response = handler(request("/big.bin"))
    assert isinstance(response.body, FileSlice) and response.length == len(BIG)
    assert body_of(response) == BIG


def test_large_file_changed_since_lookup_gets_headers_from_what_is_opened(handler, root):
    first = handler(request("/big.bin"))
    body_of(first)
    (root / "big.bin").write_bytes(BIG + b"more")
    second = handler(request("/big.bin"))
    assert second.length == len(BIG) + 4 and body_of(second) == BIG + b"more"
    assert fields_of(second)["ETag"] != fields_of(first)["ETag"]


def changing_at_each_open(handler, path, *changes):
    """Make `handler` change `path` on disk right before each of its next opens, as another
    process could between a lookup and the open that follows it: each change is new bytes,
    or None to delete it."""
    open_file = handler.files.open_file
    pending = list(changes)

    def open_after_a_change(snapshot):
        change = pending.pop(0)
        if change is None:
            path.unlink()
        else:
            path.write_bytes(change)
        return open_file(snapshot)
    handler.files.open_file = open_after_a_change
    return pending


@pytest.mark.parametrize("changes", [(BIG + b"more", BIG[::-1]), (BIG + b"more", None), (None,)],
                         ids=["changed again", "deleted after the new lookup", "deleted"])
def test_a_file_changing_between_lookup_and_open_is_looked_up_again_once(handler, root,
                                                                          changes):
    body_of(handler(request("/big.bin")))
    pending = changing_at_each_open(handler, root / "big.bin", *changes)
    # A precondition, so that no kept descriptor is used: every send opens the file.
    response = handler(request("/big.bin", if_none_match='"other"'))
    assert pending == []   # each change was followed by exactly one open
    if changes[-1] is None:
        assert response.status == 404
    else:
        assert response.length == len(changes[-1]) and body_of(response) == changes[-1]


def test_errors(handler):
    assert handler(request("/nope")).status == 404
    assert handler(request("/%zz")).status == 400
    assert handler(request("/a%00")).status == 400
    assert handler(request("/%2e%2e/%2e%2e/etc/passwd")).status == 404
    assert handler(request("/.env")).status == 404
    assert handler(request("/a.txt/")).status == 404


def test_hidden_files_when_allowed(root):
    assert StaticFiles(str(root), hidden=True)(request("/.env")).body == b"SECRET=1"


def test_directory_redirect_keeps_query_and_stays_local(handler):
    response = handler(request("/docs?x=1&y"))
    assert response.status == 301 and fields_of(response)["Location"] == "/docs/?x=1&y"
    evil = handler(request("//evil.com"))
    assert evil.status == 301 and fields_of(evil)["Location"] == "/evil.com/"


def test_index_listing_and_listing_off(root):
    handler = StaticFiles(str(root))
    assert handler(request("/")).body == b"<h1>home</h1>"
    listing = handler(request("/docs/"))
    assert listing.status == 200 and b'href="page.md"' in listing.body
    assert fields_of(listing)["Content-Type"] == "text/html; charset=utf-8"
    assert StaticFiles(str(root), listing=False)(request("/docs/")).status == 404
    assert StaticFiles(str(root), index=("page.md",))(request("/docs/")).body == b"# page"


class _Refusing:
    """A module as the static code sees it, with some calls refused. Only the static modules
    get it: the test runner itself keeps the real `os`."""

    def __init__(self, real, refused):
        self._real = real
        self._refused = refused

    def __getattr__(self, name):
        if name in self._refused:
            def refuse(*args, **kwargs):
                raise AssertionError(f"{name} on the hot path")
            return refuse
        return getattr(self._real, name)


def _refuse_file_system(monkeypatch):
    from reactor.static import files
    from reactor.static import handler as handler_module

    refusing = _Refusing(os, {"stat", "lstat", "open", "fstat"})
    refusing.path = _Refusing(os.path, {"realpath"})
    for module in (files, handler_module):
        monkeypatch.setattr(module, "os", refusing)


def test_hot_path_makes_no_system_call(handler, monkeypatch):
    first = handler(request("/a.txt"))
    _refuse_file_system(monkeypatch)
    assert handler(request("/a.txt")) is first
    assert handler(request("/a.txt", "HEAD")) is first


def test_hot_path_check_sees_the_calls_of_a_cold_request(handler, monkeypatch):
    _refuse_file_system(monkeypatch)
    with pytest.raises(AssertionError, match="on the hot path"):
        handler(request("/a.txt"))   # not cached yet: it has to stat and open the file


def test_changed_small_file_is_served_after_revalidation(handler, root):
    first = handler(request("/a.txt"))
    (root / "a.txt").write_bytes(b"new content")
    for node in handler.files._nodes.values():
        node.deadline = 0.0          # as if VALIDITY had passed
    second = handler(request("/a.txt"))
    assert second.body == b"new content"
    assert fields_of(second)["ETag"] != fields_of(first)["ETag"]


def test_index_appearing_replaces_the_listing(handler, root):
    assert b"page.md" in handler(request("/docs/")).body
    (root / "docs" / "index.html").write_bytes(b"docs home")
    for node in handler.files._nodes.values():
        node.deadline = 0.0
    assert handler(request("/docs/")).body == b"docs home"


def test_conditional_requests(handler):
    plain = handler(request("/a.txt"))
    etag = fields_of(plain)["ETag"]
    modified = fields_of(plain)["Last-Modified"]
    not_modified = handler(request("/a.txt", if_none_match=etag))
    assert not_modified.status == 304 and not_modified.body == b""
    assert fields_of(not_modified)["ETag"] == etag and "Content-Type" not in fields_of(not_modified)
    assert handler(request("/a.txt", if_modified_since=modified)).status == 304
    assert handler(request("/a.txt", if_match='"nope"')).status == 412
    assert handler(request("/a.txt", if_none_match='"nope"')) is plain
    big = handler(request("/big.bin"))
    body_of(big)
    assert handler(request("/big.bin", if_none_match=fields_of(big)["ETag"])).status == 304


def test_single_ranges(handler):
    small = handler(request("/a.txt", range="bytes=6-"))
    assert small.status == 206 and small.body == b"world"
    assert fields_of(small)["Content-Range"] == "bytes 6-10/11"
    last = handler(request("/big.bin", range="bytes=-1"))
    assert isinstance(last.body, FileSlice) and last.body.offset == len(BIG) - 1
    assert body_of(last) == BIG[-1:]
    assert fields_of(last)["Content-Range"] == f"bytes {len(BIG) - 1}-{len(BIG) - 1}/{len(BIG)}"


def test_unsatisfiable_ranges(handler):
    past = handler(request("/a.txt", range="bytes=11-"))
    assert past.status == 416 and fields_of(past)["Content-Range"] == "bytes */11"
    empty = handler(request("/empty.txt", range="bytes=0-0"))
    assert empty.status == 416 and fields_of(empty)["Content-Range"] == "bytes */0"


def test_range_ignored_for_head_and_bad_syntax(handler):
    assert handler(request("/a.txt", "HEAD", range="bytes=0-1")).status == 200
    assert handler(request("/a.txt", range="bytes=5-1")).status == 200
    assert handler(request("/a.txt", range="lines=1-2")).status == 200


def test_if_range(handler):
    etag = fields_of(handler(request("/a.txt")))["ETag"]
    assert handler(request("/a.txt", range="bytes=0-0", if_range=etag)).status == 206
    assert handler(request("/a.txt", range="bytes=0-0", if_range='"old"')).status == 200
    assert handler(request("/a.txt", range="bytes=0-0", if_range="W/" + etag)).status == 200


def test_multipart_over_a_large_file(handler):
    response = handler(request("/big.bin", range="bytes=0-9,-10"))
    assert response.status == 206
    assert fields_of(response)["Content-Type"].startswith("multipart/byteranges; boundary=")
    slices = [part for part in response.body if isinstance(part, FileSlice)]
    assert len({part.fd for part in slices}) == 2      # each slice owns its descriptor
    body = body_of(response)
    assert BIG[:10] in body and BIG[-10:] in body and len(body) == response.length


BROTLI = b"BROTLI-BYTES" + b"." * 200


@pytest.fixture
def compressed(root):
    (root / "app.js").write_bytes(b"console.log('identity')" * 10)
    (root / "app.js.gz").write_bytes(b"GZIP-BYTES")
    (root / "app.js.br").write_bytes(BROTLI)
    return StaticFiles(str(root))


def test_precompressed_variants(compressed):
    identity = compressed(request("/app.js"))
    br = compressed(request("/app.js", accept_encoding="gzip, deflate, br"))
    gz = compressed(request("/app.js", accept_encoding="gzip, br;q=0"))
    assert br.body == BROTLI and fields_of(br)["Content-Encoding"] == "br"
    assert gz.body == b"GZIP-BYTES" and fields_of(gz)["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in fields_of(identity)
    for response in (identity, br, gz):
        assert fields_of(response)["Vary"] == "Accept-Encoding"
        assert fields_of(response)["Content-Type"] == "text/javascript; charset=utf-8"
    assert len({fields_of(r)["ETag"] for r in (identity, br, gz)}) == 3
    assert compressed(request("/app.js", accept_encoding="br;q=0, gzip;q=0")).body == identity.body


def test_precompressed_ranges_and_validators(compressed):
    br = compressed(request("/app.js", accept_encoding="br"))
    part = compressed(request("/app.js", accept_encoding="br", range="bytes=0-5"))
    assert part.status == 206 and part.body == b"BROTLI"
    assert fields_of(part)["Content-Range"] == f"bytes 0-5/{len(BROTLI)}"
    several = compressed(request("/app.js", accept_encoding="br", range="bytes=0-0,-1"))
    assert several.status == 200 and several.body == BROTLI
    etag = fields_of(br)["ETag"]
    assert compressed(request("/app.js", accept_encoding="br", if_none_match=etag)).status == 304
    assert compressed(request("/app.js", if_none_match=etag)).status == 200


def test_precompressed_off(root):
    (root / "app.js").write_bytes(b"js")
    (root / "app.js.gz").write_bytes(b"gz")
    handler = StaticFiles(str(root), precompressed=False)
    response = handler(request("/app.js", accept_encoding="gzip"))
    assert response.body == b"js" and "Vary" not in fields_of(response)


def test_content_type_follows_the_requested_name_not_a_symlink_target(handler, root):
    os.symlink("big.bin", root / "latest.txt")
    response = handler(request("/latest.txt"))
    response.body.close()
    assert fields_of(response)["Content-Type"] == "text/plain; charset=utf-8"


def test_hot_path_serves_a_ready_encoding_without_system_calls(root, monkeypatch):
    import gzip
    import time

    text = b"function f() { return 42; }\n" * 100
    (root / "app.js").write_bytes(text)
    handler = StaticFiles(str(root))
    assert handler(request("/app.js", accept_encoding="gzip")).body == text   # starts it
    deadline = time.monotonic() + 5
    while b"Content-Encoding: gzip" not in handler(request("/app.js", accept_encoding="gzip")
                                                    ).fields:
        assert time.monotonic() < deadline, "never compressed"
        time.sleep(0.01)
    coded = handler(request("/app.js", accept_encoding="gzip"))
    plain = handler(request("/app.js"))
    _refuse_file_system(monkeypatch)
    assert handler(request("/app.js", accept_encoding="gzip, deflate")) is coded
    assert gzip.decompress(coded.body) == text
    assert handler(request("/app.js")) is plain
    assert handler(request("/app.js", accept_encoding="identity")) is plain
    handler.close()
