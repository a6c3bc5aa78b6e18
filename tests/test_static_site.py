"""What a site adds over plain files, over real sockets: --header, --cors, --spa, error pages
and clean URLs."""

import subprocess
import sys

import pytest
from netutil import fetch

from reactor.http.errors import ConfigError
from reactor.static.site import Cors, HeaderRule

NAV = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>app</title><div id=app></div>")
    (root / "about.html").write_text("<h1>about</h1>")
    (root / "assets" / "app.1a2b3c.js").write_text("console.log('app')")
    (root / "assets" / "app.1a2b3c.css").write_text("body{}")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    return root


def test_header_rules_apply_by_scope(site, server_factory):
    srv = server_factory(root=str(site), headers=(
        "X-Frame-Options: DENY",
        "/assets/ Cache-Control: public, max-age=31536000, immutable",
        "*.css X-Kind: style"))
    page, _ = fetch(srv.port, "/")
    assert page.getheader("X-Frame-Options") == "DENY"
    assert page.getheader("Cache-Control") is None
    script, _ = fetch(srv.port, "/assets/app.1a2b3c.js")
    assert script.getheader("Cache-Control") == "public, max-age=31536000, immutable"
    assert script.getheader("X-Kind") is None
    style, _ = fetch(srv.port, "/assets/app.1a2b3c.css")
    assert style.getheader("X-Kind") == "style" and style.getheader("X-Frame-Options") == "DENY"
    etag = script.getheader("ETag")
    revalidated, body = fetch(srv.port, "/assets/app.1a2b3c.js", headers={"If-None-Match": etag})
    assert revalidated.status == 304 and body == b""
    assert revalidated.getheader("Cache-Control") == "public, max-age=31536000, immutable"
    missing, _ = fetch(srv.port, "/nothing")
    assert missing.status == 404 and missing.getheader("X-Frame-Options") == "DENY"


@pytest.mark.parametrize("text,problem", [
    ("no colon here", "is not 'Name: value'"),
    ("Bad Name: x", "is not 'Name: value'"),
    ("Content-Length: 5", "writes it itself"),
    ("/x Connection: close", "writes it itself"),
])
def test_bad_header_rules_are_one_line_errors(text, problem, tmp_path):
    with pytest.raises(ConfigError, match=problem):
        HeaderRule.parse(text)
    result = subprocess.run([sys.executable, "-m", "reactor", "-d", str(tmp_path), "--header",
                             text, "0"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and problem in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cors_wildcard_and_preflight(site, server_factory):
    srv = server_factory(root=str(site), cors="*")
    simple, _ = fetch(srv.port, "/assets/app.1a2b3c.js", headers={"Origin": "https://a.test"})
    assert simple.getheader("Access-Control-Allow-Origin") == "*"
    assert simple.getheader("Access-Control-Allow-Credentials") is None
    preflight, body = fetch(srv.port, "/assets/app.1a2b3c.js", "OPTIONS", headers={
        "Origin": "https://a.test", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-token, content-type"})
    assert preflight.status == 204 and body == b""
    assert preflight.getheader("Access-Control-Allow-Origin") == "*"
    assert preflight.getheader("Access-Control-Allow-Methods") == "GET, HEAD, OPTIONS"
    assert preflight.getheader("Access-Control-Allow-Headers") == "x-token, content-type"
    assert preflight.getheader("Access-Control-Max-Age") == "7200"
    assert preflight.getheader("Access-Control-Allow-Credentials") is None
    plain, _ = fetch(srv.port, "/", "OPTIONS")
    assert plain.status == 204 and plain.getheader("Allow") == "GET, HEAD, OPTIONS"
    assert plain.getheader("Access-Control-Allow-Methods") is None


def test_cors_origin_list_echoes_with_vary(site, server_factory):
    srv = server_factory(root=str(site), cors="https://app.test, http://localhost:3000")
    allowed, body = fetch(srv.port, "/about.html", headers={"Origin": "https://app.test"})
    assert body == b"<h1>about</h1>"
    assert allowed.getheader("Access-Control-Allow-Origin") == "https://app.test"
    assert allowed.getheader("Access-Control-Allow-Credentials") == "true"
    assert "Origin" in allowed.getheader("Vary")
    for headers in ({"Origin": "https://evil.test"}, {}):
        refused, body = fetch(srv.port, "/about.html", headers=headers)
        assert body == b"<h1>about</h1>"
        assert refused.getheader("Access-Control-Allow-Origin") is None
        assert "Origin" in refused.getheader("Vary")
    # The echo is per request: the next allowed origin is not answered with the first's.
    other, _ = fetch(srv.port, "/about.html", headers={"Origin": "http://localhost:3000"})
    assert other.getheader("Access-Control-Allow-Origin") == "http://localhost:3000"
    preflight, _ = fetch(srv.port, "/about.html", "OPTIONS", headers={
        "Origin": "https://evil.test", "Access-Control-Request-Method": "GET"})
    assert preflight.status == 204 and preflight.getheader("Access-Control-Allow-Origin") is None
    assert "Origin" in preflight.getheader("Vary")


def test_cors_policy_text():
    with pytest.raises(ConfigError):
        Cors("*, https://a.test")
    with pytest.raises(ConfigError):
        Cors("a.test")
    assert Cors("https://A.test/").echo_fields(b"https://a.test").startswith(
        b"Access-Control-Allow-Origin: https://a.test\r\n")


def varies(response) -> set:
    return {name.strip() for name in (response.getheader("Vary") or "").split(",")}


def test_spa_answers_navigations_only(site, server_factory):
    srv = server_factory(root=str(site), spa="index.html")
    index = (site / "index.html").read_bytes()
    for path in ("/settings", "/users/42/profile", "/docs/deep/route"):
        response, body = fetch(srv.port, path, headers=NAV)
        assert response.status == 200 and body == index, path
        assert response.getheader("Content-Type") == "text/html; charset=utf-8"
        assert "Accept" in varies(response), path
    tag = response.getheader("ETag")
    again, body = fetch(srv.port, "/settings", headers={**NAV, "If-None-Match": tag})
    assert again.status == 304 and body == b"" and "Accept" in varies(again)
    direct, _ = fetch(srv.port, "/index.html", headers=NAV)
    assert "Accept" not in varies(direct)
    assert "Accept" in varies(fetch(srv.port, "/settings", headers={"Accept": "*/*"})[0])
    head, body = fetch(srv.port, "/settings", "HEAD", headers=NAV)
    assert head.status == 200 and body == b""
    assert int(head.getheader("Content-Length")) == len(index)
    for path, headers in (("/assets/app.deadbeef.js", NAV), ("/logo.png", NAV),
                          ("/missing.css", {"Accept": "text/css,*/*;q=0.1"}),
                          ("/settings", {"Accept": "*/*"}), ("/settings", {}),
                          ("/api/items", {"Accept": "application/json"})):
        response, _ = fetch(srv.port, path, headers=headers)
        assert response.status == 404, (path, headers)
    posted, _ = fetch(srv.port, "/settings", "POST", body=b"", headers=NAV)
    assert posted.status == 405
    real, body = fetch(srv.port, "/docs/", headers=NAV)
    assert body == b"<h1>docs</h1>"


def test_spa_other_file(site, server_factory):
    (site / "shell.html").write_text("<p>shell</p>")
    srv = server_factory(root=str(site), spa="shell.html")
    _, body = fetch(srv.port, "/deep/link", headers=NAV)
    assert body == b"<p>shell</p>"


def test_error_page_from_the_root_and_configured(site, server_factory):
    plain = server_factory(root=str(site))
    response, body = fetch(plain.port, "/nothing")
    assert response.status == 404 and body == b"404 Not Found\n"
    (site / "404.html").write_text("<h1>lost</h1>")
    (site / "gone.html").write_text("<h1>gone</h1>")
    default = server_factory(root=str(site))
    for path in ("/nothing", "/.env", "/assets/app.missing.js"):
        response, body = fetch(default.port, path)
        assert response.status == 404 and body == b"<h1>lost</h1>", path
        assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    head, body = fetch(default.port, "/nothing", "HEAD")
    assert head.status == 404 and body == b""
    assert int(head.getheader("Content-Length")) == len(b"<h1>lost</h1>")
    configured = server_factory(root=str(site), error_pages=((404, "gone.html"),))
    response, body = fetch(configured.port, "/nothing")
    assert response.status == 404 and body == b"<h1>gone</h1>"


def test_clean_urls(site, server_factory):
    srv = server_factory(root=str(site), clean_urls=True)
    response, body = fetch(srv.port, "/about")
    assert response.status == 200 and body == b"<h1>about</h1>"
    for target, location in (("/about.html", "/about"), ("/about.html?x=1", "/about?x=1"),
                             ("/index.html", "/"), ("/docs/index.html", "/docs/")):
        response, _ = fetch(srv.port, target)
        assert response.status == 301 and response.getheader("Location") == location, target
    assert fetch(srv.port, "/about/")[0].status == 404
    assert fetch(srv.port, "/nothing.html")[0].status == 404
    off = server_factory(root=str(site))
    assert fetch(off.port, "/about")[0].status == 404
    assert fetch(off.port, "/about.html")[0].status == 200


def test_listing_sorted_and_as_json(tmp_path, server_factory):
    import json
    import os

    root = tmp_path / "files"
    (root / "sub").mkdir(parents=True)
    for name, size, when in (("b.txt", 300, 2000), ("a.txt", 100, 3000), ("<c>&\".txt", 200, 1000)):
        (root / name).write_bytes(b"x" * size)
        os.utime(root / name, (when, when))
    srv = server_factory(root=str(root))

    def names(target, **headers):
        response, body = fetch(srv.port, target, headers=headers)
        assert response.status == 200 and response.getheader("Vary") == "Accept"
        return response, body

    _, page = names("/?sort=size&order=desc")
    text = page.decode()
    assert text.index("b.txt") < text.index("&lt;c&gt;&amp;&quot;.txt") < text.index("a.txt")
    assert text.index("sub/") < text.index("b.txt")
    assert "<c>" not in text
    _, page = names("/?sort=time")
    text = page.decode()
    assert text.index("&lt;c&gt;") < text.index("b.txt") < text.index("a.txt")
    _, page = names("/?sort=bogus&x=<script>")
    assert page.decode().index("a.txt") < page.decode().index("b.txt")   # by name
    response, body = names("/?sort=size", Accept="application/json")
    assert response.getheader("Content-Type") == "application/json"
    listing = json.loads(body)
    assert [e["name"] for e in listing["entries"]] == ["sub", "a.txt", '<c>&".txt', "b.txt"]
    assert listing["entries"][2]["href"] == "%3Cc%3E&%22.txt"
    assert listing["entries"][1]["size"] == 100
    browser, page = names("/", Accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert browser.getheader("Content-Type") == "text/html; charset=utf-8"
    preferred, _ = names("/", Accept="text/html;q=0.5, application/json")
    assert preferred.getheader("Content-Type") == "application/json"
