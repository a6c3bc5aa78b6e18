"""reactor.static.listing and reactor.static.mime: pure rendering and lookup."""

import html.parser
import json

from reactor.static.listing import human_size, order, render, render_json
from reactor.static.mime import DEFAULT, content_type


class Links(html.parser.HTMLParser):
    """The entries' links and texts; the column headings' sort links go to `sorts`."""

    def __init__(self, page: bytes):
        super().__init__()
        self.links, self.texts, self.title, self.sorts = [], [], None, []
        self._in_a = self._in_title = False
        self.feed(page.decode())

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            href = dict(attrs)["href"]
            if href.startswith("?"):
                self.sorts.append(href)
                return
            self.links.append(href)
            self._in_a = True
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_a = self._in_title = False

    def handle_data(self, data):
        if self._in_a:
            self.texts.append(data)
        if self._in_title:
            self.title = data


ENTRIES = [
    ("zeta.txt", False, 10, 0),
    ("Alpha", True, 0, 0),
    ('<script>alert("x")</script>', False, 2048, 0),
    ("a b&c%2e.html", False, 5, 0),
    ("beta", True, 0, 0),
    ("é.txt", False, 3 * 1024 * 1024, 0),
]


def test_directories_first_then_names():
    page = Links(render("/docs/", ENTRIES))
    assert page.texts[:3] == ["../", "Alpha/", "beta/"]
    assert page.texts[3:] == ['<script>alert("x")</script>', "a b&c%2e.html", "zeta.txt", "é.txt"]


def test_names_are_escaped_and_links_percent_encoded():
    raw = render("/docs/", ENTRIES)
    assert b"<script>" not in raw
    page = Links(raw)
    assert "%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E" in page.links
    assert "a%20b&c%252e.html" in page.links
    assert "%C3%A9.txt" in page.links
    assert "Alpha/" in page.links


def test_parent_link_only_below_the_root():
    assert "../" not in Links(render("/", ENTRIES)).links
    assert Links(render("/a/", [])).links == ["../"]


def test_title_and_sizes():
    raw = render("/x<y>/", ENTRIES)
    assert Links(raw).title == "Index of /x<y>/"
    assert b"2.0 KiB" in raw and b"3.0 MiB" in raw and b"10 B" in raw
    assert human_size(0) == "0 B" and human_size(1023) == "1023 B"
    assert human_size(5 * 1024**4) == "5.0 TiB"


def test_sorted_by_size_and_time_either_way():
    entries = [("b.txt", False, 30, 200), ("a.txt", False, 10, 300), ("c.txt", False, 20, 100),
               ("dir", True, 0, 50)]
    assert [e[0] for e in order(entries, "size")] == ["dir", "a.txt", "c.txt", "b.txt"]
    assert [e[0] for e in order(entries, "size", True)] == ["dir", "b.txt", "c.txt", "a.txt"]
    assert [e[0] for e in order(entries, "time")] == ["dir", "c.txt", "b.txt", "a.txt"]
    assert [e[0] for e in order(entries, "name", True)] == ["dir", "c.txt", "b.txt", "a.txt"]
    page = Links(render("/d/", entries, "size", True))
    assert page.texts == ["../", "dir/", "b.txt", "c.txt", "a.txt"]
    # The heading of the sorted column reverses it; the others sort ascending.
    assert page.sorts == ["?sort=name&order=asc",
                          "?sort=size&order=asc", "?sort=time&order=asc"]
    assert Links(render("/d/", entries)).sorts[0] == "?sort=name&order=desc"


def test_json_listing_escapes_as_json():
    listing = json.loads(render_json("/docs/", ENTRIES))
    assert listing["path"] == "/docs/"
    names = [entry["name"] for entry in listing["entries"]]
    assert names[:2] == ["Alpha", "beta"] and '<script>alert("x")</script>' in names
    script = next(e for e in listing["entries"] if e["name"].startswith("<script>"))
    assert script == {"name": '<script>alert("x")</script>', "type": "file", "size": 2048,
                      "modified": "1970-01-01T00:00:00Z",
                      "href": "%3Cscript%3Ealert(%22x%22)%3C%2Fscript%3E"}
    assert listing["entries"][0] == {"name": "Alpha", "type": "directory", "size": None,
                                     "modified": "1970-01-01T00:00:00Z", "href": "Alpha/"}


def test_mime_types():
    assert content_type("index.html") == "text/html; charset=utf-8"
    assert content_type("/a/b/STYLE.CSS") == "text/css; charset=utf-8"
    assert content_type("app.js") == "text/javascript; charset=utf-8"
    assert content_type("logo.png") == "image/png"
    assert content_type("pic.svg") == "image/svg+xml; charset=utf-8"
    assert content_type("mod.wasm") == "application/wasm"
    assert content_type("README") == DEFAULT
    assert content_type("dir.d/file") == DEFAULT
    assert content_type("archive.tar.gz") == "application/gzip"
