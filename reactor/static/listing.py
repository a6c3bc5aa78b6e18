"""The HTML page listing a directory that has no index file.

Pure: renders what the file layer found; imports no I/O module. Every name is HTML-escaped in
text and percent-encoded (then escaped) in links, so a file called `<script>` or `a"b` or `%2e`
is shown and linked as itself; the JSON form escapes as JSON does and percent-encodes `href`.
Entries sort by name, size or time, either way, directories always first.
"""

import json
import time
from html import escape

from .paths import quote_segment

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:56rem;
padding:0 1rem;color:#1f2328;background:#fff}
h1{font-size:1.25rem;font-weight:600;word-break:break-all}
table{border-collapse:collapse;width:100%}
th,td{padding:.35rem .6rem;text-align:left;border-bottom:1px solid #d8dee4}
th{font-weight:600;color:#59636e}
td.size,th.size{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.time{white-space:nowrap;color:#59636e;font-variant-numeric:tabular-nums}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
tr:hover td{background:#f6f8fa}
"""

_UNITS = ("KiB", "MiB", "GiB")


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in _UNITS:
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _row(href: str, label: str, size: str, title: str, when: str) -> str:
    return (f'<tr><td><a href="{escape(href)}">{escape(label)}</a></td>'
            f'<td class="size" title="{title}">{size}</td><td class="time">{when}</td></tr>\n')


def order(entries, sort: str = "name", descending: bool = False) -> list:
    """`entries` (name, is_dir, size, mtime) sorted by SORTS key, directories first either
    way; ties go by name, so the order is the same on every request."""
    key = _KEYS.get(sort, _KEYS["name"])
    files = sorted((entry for entry in entries if not entry[1]), key=key, reverse=descending)
    folders = sorted((entry for entry in entries if entry[1]), key=key, reverse=descending)
    return folders + files


def _by_name(entry):
    return (entry[0].casefold(), entry[0])


_KEYS = {"name": _by_name,
         "size": lambda entry: (entry[2], _by_name(entry)),
         "time": lambda entry: (entry[3], _by_name(entry))}
SORTS = tuple(_KEYS)


def _heading(label: str, css: str, key: str, sort: str, descending: bool) -> str:
    """A column heading that sorts by its column; again on the sorted one reverses it."""
    reverse = key == sort and not descending
    mark = (" ↓" if descending else " ↑") if key == sort else ""
    href = f"?sort={key}&order={'desc' if reverse else 'asc'}"
    return f'<th{css}><a href="{escape(href)}">{label}</a>{mark}</th>'


def render(url_path: str, entries, sort: str = "name", descending: bool = False) -> bytes:
    """The page for the directory at `url_path` (decoded, ending in '/'), listing `entries`:
    (name, is_dir, size, mtime) tuples, in `order`."""
    rows = []
    if url_path != "/":
        rows.append(_row("../", "../", "", "", ""))
    for name, is_dir, size, mtime in order(entries, sort, descending):
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))
        if is_dir:
            rows.append(_row(quote_segment(name) + "/", name + "/", "—", "", when))
        else:
            rows.append(_row(quote_segment(name), name, human_size(size), f"{size} bytes", when))
    title = escape(f"Index of {url_path}")
    headings = "".join((_heading("Name", "", "name", sort, descending),
                        _heading("Size", ' class="size"', "size", sort, descending),
                        _heading("Modified (UTC)", "", "time", sort, descending)))
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{title}</h1>\n<table>\n<thead><tr>{headings}</tr></thead>\n<tbody>\n"
            f"{''.join(rows)}</tbody>\n</table>\n</body>\n</html>\n")
    return page.encode("utf-8")


def render_json(url_path: str, entries, sort: str = "name", descending: bool = False) -> bytes:
    """The same listing as JSON: {"path", "entries": [{"name", "type", "size", "modified",
    "href"}]}, with sizes in bytes (null for directories) and times in ISO 8601 UTC."""
    items = []
    for name, is_dir, size, mtime in order(entries, sort, descending):
        items.append({
            "name": name, "type": "directory" if is_dir else "file",
            "size": None if is_dir else size,
            "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime)),
            "href": quote_segment(name) + ("/" if is_dir else ""),
        })
    return (json.dumps({"path": url_path, "entries": items}, ensure_ascii=False) + "\n"
            ).encode("utf-8")
