"""The seed scenario as a person sees it: a real browser opens the demo site.

Headless Chromium loads the demo page from reactor, over HTTP and over HTTPS (a trustme
certificate whose key Chromium is told to trust); a same-origin check page reports whether
the image really loaded (naturalWidth > 0) and whether the directory listing rendered. A
single-page app built like a front-end tool's output is opened at a client-side route.
Screenshots are saved under build/screenshots/. Skips only where Chromium cannot be found.
"""

import pathlib
import re
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHOTS = REPO / "build" / "screenshots"
BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
               None)

pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium here (.ci/run installs it)")

# Loads a page in an iframe and writes what it found into the DOM that --dump-dom prints.
CHECK_PAGE = """<!doctype html><title>check</title><pre id="out">pending</pre>
<iframe id="f" src="%s" width="800" height="600"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {
  var doc = this.contentDocument, imgs = Array.from(doc.images);
  var widths = imgs.map(function (i) { return i.complete ? i.naturalWidth : -1; });
  var links = Array.from(doc.links).map(function (a) { return a.getAttribute("href"); });
  document.getElementById("out").textContent = JSON.stringify(
    {title: doc.title, widths: widths, links: links});
});
</script>"""


def chromium(*args, timeout=60):
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--hide-scrollbars", "--no-first-run", "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def inspect(url, *flags):
    import json

    result = chromium(*flags, "--dump-dom", url)
    found = re.search(r'<pre id="out">(.*?)</pre>', result.stdout, re.S)
    assert found, f"browser printed no result: {result.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(url, name, *flags):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    chromium(*flags, f"--screenshot={path}", "--window-size=1024,768", url)
    assert path.is_file() and path.stat().st_size > 1000, "no screenshot was written"


@pytest.fixture
def site(tmp_path, server_factory):
    root = tmp_path / "site"
    shutil.copytree(REPO / "static", root)
    (root / "check-index.html").write_text(CHECK_PAGE % "/")
    listed = next(p.name for p in sorted(root.iterdir())
                  if p.is_dir() and not (p / "index.html").exists())
    (root / "check-listing.html").write_text(CHECK_PAGE % f"/{listed}/")
    return server_factory(root=str(root)), listed


def test_demo_page_shows_its_image(site):
    srv, _ = site
    result = inspect(f"{srv.url}/check-index.html")
    assert result["widths"], "the demo page has no image"
    assert all(width > 0 for width in result["widths"]), result
    screenshot(f"{srv.url}/", "demo-page.png")


def test_directory_listing_renders(site):
    srv, listed = site
    result = inspect(f"{srv.url}/check-listing.html")
    assert "../" in result["links"], result
    assert result["title"], result
    screenshot(f"{srv.url}/{listed}/", "listing.png")


# A site as a front-end build tool writes it: an index.html shell, content-hashed assets, and
# routes that exist only in the script (history API). The script renders the route, navigates
# once with pushState, reads a field of its own asset, measures what the transfer of its script
# cost, and fetches data from another origin with a field that needs a preflight.
SPA_INDEX = """<!doctype html><html><head><meta charset="utf-8"><title>shell</title>
<link rel="stylesheet" href="/assets/index-4f9a2c1e.css">
<script type="module" src="/assets/index-7b3d9e05.js"></script></head>
<body><div id="app">loading</div><pre id="out">pending</pre></body></html>"""

SPA_SCRIPT = """const views = {
  "/settings/profile": () => "<h1>Profile settings</h1>",
  "/users/7": () => "<h1>User 7</h1>",
};
const seen = [];
function render() {
  const view = views[location.pathname] || (() => "<h1>Not found in the app</h1>");
  document.getElementById("app").innerHTML = view();
  seen.push(document.querySelector("#app h1").textContent);
}
render();
history.pushState({}, "", "/users/7");
render();
const own = performance.getEntriesByType("resource").find(e => e.name.includes("index-7b3d9e05"));
const build = await fetch("/assets/index-7b3d9e05.js").then(r => r.headers.get("x-build"));
const color = getComputedStyle(document.querySelector("#app h1")).color;
let data;
try {
  data = await fetch(API + "/data.json", {headers: {"X-Client": "spa"}}).then(r => r.json());
} catch (error) { data = String(error); }
document.getElementById("out").textContent = JSON.stringify({
  seen, build, color, data, path: location.pathname,
  encoded: own.encodedBodySize, decoded: own.decodedBodySize});
"""
# Padding that a minifier would leave: enough bytes for compression to be worthwhile.
SPA_SCRIPT_PAD = "".join(f"export const route{i} = {{path: '/r/{i}', title: 'Route {i}'}};\n"
                         for i in range(200))


def test_single_page_app_route_renders_compressed_with_cors_and_headers(tmp_path,
                                                                        server_factory):
    from netutil import fetch, wait_until

    root, api_root = tmp_path / "dist", tmp_path / "api"
    (root / "assets").mkdir(parents=True)
    api_root.mkdir()
    (root / "index.html").write_text(SPA_INDEX)
    (root / "assets" / "index-4f9a2c1e.css").write_text("#app h1 { color: rgb(0, 128, 0); }")
    (api_root / "data.json").write_text('{"items": [1, 2, 3]}')
    site = server_factory(root=str(root), spa="index.html",
                          headers=("/assets/ X-Build: 7b3d9e05",
                                   "/assets/ Cache-Control: max-age=31536000, immutable",
                                   "X-Content-Type-Options: nosniff"))
    api = server_factory(root=str(api_root), cors=site.url)
    script = f"const API = {api.url!r};\n" + SPA_SCRIPT + SPA_SCRIPT_PAD
    (root / "assets" / "index-7b3d9e05.js").write_text(script)
    # The compressed script is made on the first request and kept; the browser gets it then.
    assert wait_until(lambda: fetch(site.port, "/assets/index-7b3d9e05.js", headers={
        "Accept-Encoding": "gzip, deflate, br, zstd"})[0].getheader("Content-Encoding"))

    result = inspect(f"{site.url}/settings/profile")
    assert result["seen"] == ["Profile settings", "User 7"], result
    assert result["path"] == "/users/7"
    assert result["color"] == "rgb(0, 128, 0)", result       # the hashed stylesheet loaded
    assert result["build"] == "7b3d9e05", result              # the scoped --header
    assert result["data"] == {"items": [1, 2, 3]}, result     # CORS with a preflight
    assert result["decoded"] == len(script.encode()), result
    assert 0 < result["encoded"] < result["decoded"] // 2, result   # sent compressed
    screenshot(f"{site.url}/settings/profile", "spa-route.png")
    # What a browser does not ask for as a page stays a 404.
    assert fetch(site.port, "/assets/index-00000000.js")[0].status == 404


# Reports the protocol the page and its subresources came over (Resource Timing).
PROTOCOL_PAGE = """<!doctype html><title>protocol</title><pre id="out">pending</pre>
<img src="/reactor.png"><link rel="stylesheet" href="/style.css">
<script>
window.addEventListener("load", function () {
  var nav = performance.getEntriesByType("navigation")[0];
  var resources = performance.getEntriesByType("resource").map(function (e) {
    return e.nextHopProtocol; });
  document.getElementById("out").textContent = JSON.stringify(
    {page: nav.nextHopProtocol, resources: resources});
});
</script>"""


@pytest.fixture
def https_site(tmp_path, server_factory):
    """The demo site over HTTPS with a trustme certificate, and the base64 SHA-256 of the
    certificate's public key, which Chromium is told to trust."""
    import base64
    import hashlib

    import trustme
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from reactor.net.tls import Certificates

    root = tmp_path / "site"
    shutil.copytree(REPO / "static", root)
    (root / "check-index.html").write_text(CHECK_PAGE % "/")
    (root / "protocol.html").write_text(PROTOCOL_PAGE)
    leaf = trustme.CA().issue_cert("localhost", "127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    certificate = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    spki = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    tls = Certificates([(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))])
    srv = server_factory(root=str(root), tls=tls)
    return srv, base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_demo_page_over_https_comes_over_h2(https_site):
    from reactor.http.h2 import ENGINE

    if ENGINE is None:
        pytest.skip("no HTTP/2 engine here: the page comes over HTTP/1.1")
    srv, spki = https_site
    result = inspect(f"https://localhost:{srv.port}/protocol.html",
                     f"--ignore-certificate-errors-spki-list={spki}")
    assert result["page"] == "h2", result
    assert result["resources"] == ["h2", "h2"], result


def test_demo_page_over_https(https_site):
    srv, spki = https_site
    url = f"https://localhost:{srv.port}"
    trust = f"--ignore-certificate-errors-spki-list={spki}"
    page = inspect(f"{url}/check-index.html", trust)
    assert page["widths"] and all(width > 0 for width in page["widths"]), page
    screenshot(f"{url}/", "demo-page-https.png", trust)
