"""Static serving over real sockets: every rule of the static handler, as a client sees it."""

import email.parser
import email.policy
import email.utils
import gzip
import http.client
import io
import os
import re
import shutil
import subprocess
import time

import pytest
from netutil import exchange

from reactor.static.conditional import http_date
from reactor.static.files import MAX_CACHED_FILE, VALIDITY
from reactor.static.ranges import MAX_RANGES

BIG = os.urandom(MAX_CACHED_FILE * 3 + 123)
SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_bytes(b"<!doctype html><h1>home</h1>")
    (root / "a.txt").write_bytes(b"0123456789abcdef")
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    (root / "style.css").write_bytes(b"body{}")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / ".env").write_bytes(b"HIDDEN=1")
    (root / "docs").mkdir()
    (root / "docs" / "guide.txt").write_bytes(b"guide")
    (root / "docs" / "sub dir").mkdir()
    (root / "docs" / "<b>&\"odd\".txt").write_bytes(b"odd")
    (root / "docs" / ".draft").write_bytes(b"draft")
    (root / "evil.com").mkdir()
    (tmp_path / "secret.txt").write_bytes(SECRET)
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    os.symlink(tmp_path / "secret.txt", root / "docs" / "leak.txt")
    os.symlink(tmp_path, root / "up")
    os.symlink("a.txt", root / "alias.txt")
    return root


@pytest.fixture(params=[True, False], ids=["fast-lane", "full-path"])
def srv(site, server_factory, request):
    return server_factory(root=str(site), fast_lane=request.param)


def get(srv, target, method="GET", **headers):
    """(response, body) over a fresh connection; header names use _ for -."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request(method, target, headers={k.replace("_", "-"): v for k, v in headers.items()})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


class _Replay:
    def __init__(self, data: bytes):
        self.data = data

    def makefile(self, *args, **kwargs):
        return io.BytesIO(self.data)


def raw_get(srv, target: bytes, method=b"GET", extra=b""):
    """The response to a request whose target goes on the wire exactly as given."""
    data = exchange(srv.port, method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n" + extra
                    + b"Connection: close\r\n\r\n")
    response = http.client.HTTPResponse(_Replay(data), method=method.decode())
    response.begin()
    response.body = response.read()
    return response


# -- paths ---------------------------------------------------------------------------------

TRAVERSALS = {
    b"/../secret.txt": 404, b"/%2e%2e/secret.txt": 404, b"/%2E%2E/secret.txt": 404,
    b"/..%2fsecret.txt": 404, b"/docs/..%2f..%2fsecret.txt": 404, b"/.%2e/secret.txt": 404,
    b"/..\\secret.txt": 404, b"/%5c..%5csecret.txt": 404, b"/leak.txt": 404,
    b"/docs/leak.txt": 404, b"/up/secret.txt": 404, b"//up/secret.txt": 404,
    b"/%2fup/secret.txt": 404,
    b"/%00": 400, b"/a.txt%00.png": 400, b"/%c0%ae%c0%ae/secret.txt": 400,
    b"/%c0%af": 400, b"/%zz": 400, b"/%": 400, b"/.env": 404, b"/%2eenv": 404,
    b"/%252e%252e/secret.txt": 404,
}


def test_traversal_corpus(srv):
    for target, status in TRAVERSALS.items():
        response = raw_get(srv, target)
        assert response.status == status, target
        assert SECRET not in response.body and b"HIDDEN" not in response.body


def test_symlinks_inside_the_root_are_followed(srv):
    response, body = get(srv, "/alias.txt")
    assert response.status == 200 and body == b"0123456789abcdef"


def test_hidden_files_served_only_when_enabled(site, server_factory):
    assert get(server_factory(root=str(site)), "/.env")[0].status == 404
    response, body = get(server_factory(root=str(site), hidden=True), "/.env")
    assert response.status == 200 and body == b"HIDDEN=1"
    assert raw_get(server_factory(root=str(site), hidden=True), b"/%2e%2e/secret.txt").status == 404


def test_absolute_form_target(srv):
    response = raw_get(srv, b"http://example.com/a.txt")
    assert response.status == 200 and response.body == b"0123456789abcdef"


# -- directories ---------------------------------------------------------------------------

def test_directory_redirect_keeps_the_query(srv):
    response = raw_get(srv, b"/docs?x=1&y=%20")
    assert response.status == 301 and response.getheader("Location") == "/docs/?x=1&y=%20"
    assert response.getheader("Cache-Control") == "max-age=3600"


def test_no_open_redirect(srv):
    for target in (b"//evil.com", b"/%2fevil.com", b"///evil.com", b"/\\evil.com"):
        response = raw_get(srv, target)
        location = response.getheader("Location")
        assert location is None or (location.startswith("/") and not location.startswith("//"))
        assert location in (None, "/evil.com/"), (target, location)
    assert raw_get(srv, b"//evil.com").getheader("Location") == "/evil.com/"


def test_index_file_for_a_directory(srv):
    response, body = get(srv, "/")
    assert response.status == 200 and body == b"<!doctype html><h1>home</h1>"
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"


def test_listing(srv):
    response, body = get(srv, "/docs/")
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    page = body.decode()
    assert page.index('href="sub%20dir/"') < page.index('href="guide.txt"')   # directories first
    assert 'href="../"' in page
    assert "&lt;b&gt;&amp;&quot;odd&quot;.txt" in page and "<b>&" not in page
    assert 'href="%3Cb%3E&amp;%22odd%22.txt"' in page
    assert "5 B" in page and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", page)
    assert "leak.txt" not in page and ".draft" not in page
    linked, odd = get(srv, "/docs/%3Cb%3E&%22odd%22.txt")
    assert linked.status == 200 and odd == b"odd"


def test_listing_has_an_etag_and_answers_preconditions_like_a_file(srv, site):
    response, _ = get(srv, "/docs/")
    etag = response.getheader("ETag")
    assert response.status == 200 and re.fullmatch(r'"[0-9a-f]{16}"', etag)
    assert get(srv, "/docs/", if_none_match="*")[0].status == 304
    not_modified, body = get(srv, "/docs/", if_none_match=etag)
    assert not_modified.status == 304 and body == b""
    assert not_modified.getheader("ETag") == etag
    assert get(srv, "/docs/", if_match='"x"')[0].status == 412
    assert get(srv, "/docs/", if_match=etag)[0].status == 200
    assert get(srv, "/docs/", if_none_match='"x"')[0].status == 200
    # What it lists changes, so does its tag.
    (site / "docs" / "new.txt").write_bytes(b"new")
    time.sleep(VALIDITY + 0.1)
    changed, _ = get(srv, "/docs/", if_none_match=etag)
    assert changed.status == 200 and changed.getheader("ETag") != etag


def test_no_symlinks_refuses_every_path_through_a_link(site, server_factory):
    os.symlink(site / "docs", site / "docs-link")
    os.symlink(site / "a.txt", site / "docs" / "inside.txt")
    assert get(server_factory(root=str(site)), "/alias.txt")[0].status == 200   # the default
    strict = server_factory(root=str(site), symlinks=False)
    for target in ("/alias.txt", "/docs-link/guide.txt", "/docs-link/", "/leak.txt"):
        assert get(strict, target)[0].status == 404, target
    assert get(strict, "/docs/guide.txt")[1] == b"guide"
    listing = get(strict, "/docs/")[1]
    assert b"inside.txt" not in listing and b"guide.txt" in listing


def test_listing_off_is_404(site, server_factory):
    off = server_factory(root=str(site), listing=False)
    assert get(off, "/docs/")[0].status == 404
    assert get(off, "/")[0].status == 200


def test_file_with_trailing_slash_is_404(srv):
    assert get(srv, "/a.txt/")[0].status == 404


# -- files and methods ---------------------------------------------------------------------

@pytest.mark.parametrize("target,ctype", [
    ("/a.txt", "text/plain; charset=utf-8"), ("/style.css", "text/css; charset=utf-8"),
    ("/logo.png", "image/png"), ("/big.bin", "application/octet-stream"),
])
def test_content_types(srv, target, ctype):
    assert get(srv, target)[0].getheader("Content-Type") == ctype


def test_validators_and_length(srv, site):
    response, body = get(srv, "/a.txt")
    assert response.getheader("Content-Length") == "16" and body == b"0123456789abcdef"
    assert response.getheader("Accept-Ranges") == "bytes"
    assert response.getheader("ETag").startswith('"')
    mtime = os.stat(site / "a.txt").st_mtime
    assert response.getheader("Last-Modified") == http_date(int(mtime))
    assert response.getheader("Cache-Control") is None


def test_cache_control_option(site, server_factory):
    srv = server_factory(root=str(site), cache_control="public, max-age=600")
    for target in ("/a.txt", "/big.bin"):
        assert get(srv, target)[0].getheader("Cache-Control") == "public, max-age=600"


def test_large_file_goes_out_whole(srv):
    response, body = get(srv, "/big.bin")
    assert response.status == 200 and body == BIG
    assert response.getheader("Content-Length") == str(len(BIG))


def test_head_has_get_headers_and_no_body(srv):
    for target in (b"/a.txt", b"/big.bin", b"/docs/"):
        got = raw_get(srv, target)
        head = raw_get(srv, target, b"HEAD")
        assert head.status == 200 and head.body == b""
        for name in ("Content-Length", "Content-Type", "ETag", "Last-Modified"):
            assert head.getheader(name) == got.getheader(name)


def test_options_and_other_methods(srv):
    options = raw_get(srv, b"/a.txt", b"OPTIONS")
    assert options.status == 204 and options.getheader("Allow") == "GET, HEAD, OPTIONS"
    for method in (b"POST", b"DELETE", b"PUT"):
        refused = raw_get(srv, b"/a.txt", method)
        assert refused.status == 405 and refused.getheader("Allow") == "GET, HEAD, OPTIONS"


def test_changes_are_seen(srv, site):
    assert get(srv, "/big.bin")[1] == BIG
    (site / "big.bin").write_bytes(b"L" * (MAX_CACHED_FILE + 5))
    response, body = get(srv, "/big.bin")          # large files: at once, from their fstat
    assert body == b"L" * (MAX_CACHED_FILE + 5)
    assert response.getheader("Content-Length") == str(MAX_CACHED_FILE + 5)
    first, _ = get(srv, "/a.txt")
    (site / "a.txt").write_bytes(b"rewritten")
    time.sleep(VALIDITY + 0.05)                     # small cached files: within VALIDITY
    response, body = get(srv, "/a.txt")
    assert body == b"rewritten" and response.getheader("ETag") != first.getheader("ETag")


# -- conditional requests ------------------------------------------------------------------

# Header values use E (the current ETag), O (another tag), and dates relative to
# Last-Modified: B before it, L equal to it, A after it.
CONDITIONAL_MATRIX = [
    ({}, 200),
    ({"If-Match": "E"}, 200), ({"If-Match": "*"}, 200), ({"If-Match": "O, E"}, 200),
    ({"If-Match": "O"}, 412), ({"If-Match": "W/E"}, 412),
    ({"If-Unmodified-Since": "L"}, 200), ({"If-Unmodified-Since": "B"}, 412),
    ({"If-Unmodified-Since": "not a date"}, 200),
    ({"If-Match": "E", "If-Unmodified-Since": "B"}, 200),
    ({"If-None-Match": "E"}, 304), ({"If-None-Match": "W/E"}, 304), ({"If-None-Match": "*"}, 304),
    ({"If-None-Match": "O, E"}, 304), ({"If-None-Match": "O"}, 200),
    ({"If-Modified-Since": "L"}, 304), ({"If-Modified-Since": "A"}, 304),
    ({"If-Modified-Since": "B"}, 200), ({"If-Modified-Since": "garbage"}, 200),
    ({"If-None-Match": "O", "If-Modified-Since": "A"}, 200),
    ({"If-None-Match": "E", "If-Modified-Since": "B"}, 304),
    ({"If-Match": "O", "If-None-Match": "E"}, 412),
]


@pytest.mark.parametrize("target", ["/a.txt", "/big.bin"])
def test_conditional_matrix(srv, target):
    plain, _ = get(srv, target)
    etag, last = plain.getheader("ETag"), plain.getheader("Last-Modified")
    stamp = email.utils.parsedate_to_datetime(last).timestamp()
    values = {"E": etag, "O": '"other"', "W/E": "W/" + etag, "O, E": f'"other", {etag}',
              "L": last, "B": http_date(stamp - 60), "A": http_date(stamp + 60)}
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        for headers, status in CONDITIONAL_MATRIX:
            sent = {name: values.get(value, value) for name, value in headers.items()}
            conn.request("GET", target, headers=sent)
            response = conn.getresponse()
            body = response.read()
            assert response.status == status, headers
            if status == 304:
                assert body == b"" and response.getheader("ETag") == etag
                assert response.getheader("Content-Length") is None
            if status == 200:
                assert len(body) == int(plain.getheader("Content-Length"))
    finally:
        conn.close()


# -- ranges --------------------------------------------------------------------------------

@pytest.mark.parametrize("target,data", [("/a.txt", b"0123456789abcdef"), ("/big.bin", BIG)])
def test_single_ranges_at_the_edges(srv, target, data):
    size = len(data)
    for spec, start, stop in [("0-0", 0, 1), (f"{size - 1}-{size - 1}", size - 1, size),
                              ("-1", size - 1, size), ("5-", 5, size), (f"0-{size * 2}", 0, size),
                              ("3-7", 3, 8)]:
        response, body = get(srv, target, Range=f"bytes={spec}")
        assert response.status == 206, spec
        assert body == data[start:stop], spec
        assert response.getheader("Content-Range") == f"bytes {start}-{stop - 1}/{size}"


@pytest.mark.parametrize("target,size", [("/a.txt", 16), ("/empty.txt", 0), ("/big.bin", len(BIG))])
def test_unsatisfiable_ranges_are_416(srv, target, size):
    for spec in (f"{size}-", f"{size + 10}-{size + 20}", "-0"):
        response, _ = get(srv, target, Range=f"bytes={spec}")
        assert response.status == 416, spec
        assert response.getheader("Content-Range") == f"bytes */{size}"


def test_empty_file(srv):
    response, body = get(srv, "/empty.txt")
    assert response.status == 200 and body == b"" and response.getheader("Content-Length") == "0"
    assert get(srv, "/empty.txt", Range="bytes=-5")[0].status == 416


def test_range_is_ignored_when_invalid(srv):
    assert get(srv, "/a.txt", Range="bytes=9-2")[0].status == 200
    assert get(srv, "/a.txt", Range="pages=1-2")[0].status == 200


def test_seventeen_ranges_are_merged_then_served_or_refused(srv):
    adjacent = ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1))
    response, body = get(srv, "/big.bin", Range="bytes=" + adjacent)
    assert response.status == 206 and body == BIG[:MAX_RANGES + 1]
    assert response.getheader("Content-Range") == f"bytes 0-{MAX_RANGES}/{len(BIG)}"
    scattered = ",".join(f"{i * 1000}-{i * 1000}" for i in range(MAX_RANGES + 1))
    response, body = get(srv, "/big.bin", Range="bytes=" + scattered)
    assert response.status == 416 and len(body) < 100   # 17 bytes do not cost the file
    assert response.getheader("Content-Range") == f"bytes */{len(BIG)}"


def multipart_parts(response, body):
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + response.getheader("Content-Type").encode() + b"\r\n\r\n" + body)
    return [(part["Content-Range"], part.get_payload(decode=True)) for part in message.iter_parts()]


@pytest.mark.parametrize("target,data", [("/a.txt", b"0123456789abcdef" * 20), ("/big.bin", BIG)])
def test_multipart_byteranges_parse_back_byte_for_byte(srv, site, target, data):
    if target == "/a.txt":
        (site / "a.txt").write_bytes(data)
        time.sleep(VALIDITY + 0.05)
    size = len(data)
    response, body = get(srv, target, Range="bytes=200-209,0-4,-3")
    assert response.status == 206
    assert response.getheader("Content-Type").startswith("multipart/byteranges; boundary=")
    assert int(response.getheader("Content-Length")) == len(body)
    assert multipart_parts(response, body) == [
        (f"bytes 0-4/{size}", data[0:5]), (f"bytes 200-209/{size}", data[200:210]),
        (f"bytes {size - 3}-{size - 1}/{size}", data[-3:])]


def test_overlapping_ranges_are_coalesced(srv):
    response, body = get(srv, "/big.bin", Range="bytes=0-99,50-149,10-20")
    assert response.status == 206 and body == BIG[:150]
    assert response.getheader("Content-Range") == f"bytes 0-149/{len(BIG)}"


def test_if_range(srv):
    plain, _ = get(srv, "/big.bin")
    etag, last = plain.getheader("ETag"), plain.getheader("Last-Modified")
    assert get(srv, "/big.bin", Range="bytes=0-3", If_Range=etag)[0].status == 206
    assert get(srv, "/big.bin", Range="bytes=0-3", If_Range=last)[0].status == 206
    stale, body = get(srv, "/big.bin", Range="bytes=0-3", If_Range='"stale"')
    assert stale.status == 200 and body == BIG
    assert get(srv, "/big.bin", Range="bytes=0-3", If_Range="W/" + etag)[0].status == 200


def test_head_ignores_range(srv):
    head = raw_get(srv, b"/a.txt", b"HEAD")
    ranged = raw_get(srv, b"/a.txt", b"HEAD", b"Range: bytes=0-1\r\n")
    assert ranged.status == 200
    assert ranged.getheader("Content-Length") == head.getheader("Content-Length")


# -- precompressed files -------------------------------------------------------------------

@pytest.fixture
def packed(site, server_factory):
    (site / "app.js").write_bytes(b"console.log('plain');\n" * 20)
    (site / "app.js.gz").write_bytes(b"GZ" * 100)
    (site / "app.js.br").write_bytes(b"BR" * 100)
    (site / "old.css").write_bytes(b"a{}")
    (site / "old.css.gz").write_bytes(b"stale")
    past = os.stat(site / "old.css").st_mtime_ns - 10**9
    os.utime(site / "old.css.gz", ns=(past, past))
    return server_factory(root=str(site))


def test_precompressed_negotiation(packed):
    cases = [("gzip, deflate, br", "br", b"BR" * 100), ("gzip", "gzip", b"GZ" * 100),
             ("br;q=0.5, gzip;q=0.9", "gzip", b"GZ" * 100), ("br;q=0, gzip;q=0", None, None),
             ("identity", None, None), (None, None, None)]
    etags = set()
    for accept, coding, expected in cases:
        headers = {"Accept-Encoding": accept} if accept else {"Accept-Encoding": "identity"}
        response, body = get(packed, "/app.js", **headers)
        assert response.getheader("Content-Encoding") == coding, accept
        assert response.getheader("Vary") == "Accept-Encoding"
        assert response.getheader("Content-Type") == "text/javascript; charset=utf-8"
        assert body == (expected or b"console.log('plain');\n" * 20)
        etags.add((coding, response.getheader("ETag")))
    assert len({etag for _, etag in etags}) == 3


def test_sidecar_older_than_its_file_is_ignored(packed):
    response, body = get(packed, "/old.css", Accept_Encoding="gzip")
    assert body == b"a{}" and response.getheader("Content-Encoding") is None


def test_ranges_and_validators_apply_to_the_encoded_bytes(packed):
    response, body = get(packed, "/app.js", Accept_Encoding="br", Range="bytes=0-3")
    assert response.status == 206 and body == b"BRBR"
    assert response.getheader("Content-Range") == "bytes 0-3/200"
    assert response.getheader("Content-Encoding") == "br"
    several, body = get(packed, "/app.js", Accept_Encoding="br", Range="bytes=0-0,-1")
    assert several.status == 200 and body == b"BR" * 100
    etag = get(packed, "/app.js", Accept_Encoding="br")[0].getheader("ETag")
    assert get(packed, "/app.js", Accept_Encoding="br", If_None_Match=etag)[0].status == 304
    assert get(packed, "/app.js", Accept_Encoding="gzip", If_None_Match=etag)[0].status == 200


def test_precompressed_off(site, server_factory):
    (site / "app.js").write_bytes(b"plain")
    (site / "app.js.gz").write_bytes(b"GZ")
    response, body = get(server_factory(root=str(site), precompressed=False), "/app.js",
                         Accept_Encoding="gzip")
    assert body == b"plain" and response.getheader("Vary") is None


# -- a real download client ----------------------------------------------------------------

CURL = shutil.which("curl")


def curl(*args):
    done = subprocess.run([CURL, "-s", "--max-time", "10", *args], capture_output=True,
                          timeout=20)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(CURL is None, reason="curl is not installed (.ci/run installs it)")
def test_curl_downloads_resumes_revalidates_and_decompresses(srv, site, tmp_path):
    out = tmp_path / "big.part"
    assert curl("-o", str(out), srv.url + "/big.bin") == b"" and out.read_bytes() == BIG
    out.write_bytes(BIG[:12345])
    curl("-C", "-", "-o", str(out), srv.url + "/big.bin")          # resume: a Range request
    assert out.read_bytes() == BIG
    assert curl("-r", "10-19", srv.url + "/big.bin") == BIG[10:20]
    stamp = tmp_path / "stamp"
    stamp.write_bytes(b"")
    future = time.time() + 3600
    os.utime(stamp, (future, future))
    assert curl("-z", str(stamp), "-o", os.devnull, "-w", "%{http_code}",
                srv.url + "/a.txt") == b"304"
    assert b"guide.txt" in curl("-L", srv.url + "/docs")
    plain = b"function hello() { return 'world'; }\n" * 50
    (site / "app.js").write_bytes(plain)
    (site / "app.js.gz").write_bytes(gzip.compress(plain))
    assert curl("--compressed", srv.url + "/app.js") == plain
    headers = curl("--compressed", "-D", "-", "-o", os.devnull, srv.url + "/app.js")
    assert b"content-encoding: gzip" in headers.lower()
