"""The seed scenario as a person sees it: a real browser opens the demo site.

Headless Chromium loads the demo page from reactor; a same-origin check page reports whether
the image really loaded (naturalWidth > 0) and whether the directory listing rendered.
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


def inspect(url):
    import json

    result = chromium("--dump-dom", url)
    found = re.search(r'<pre id="out">(.*?)</pre>', result.stdout, re.S)
    assert found, f"browser printed no result: {result.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(url, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    chromium(f"--screenshot={path}", "--window-size=1024,768", url)
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
