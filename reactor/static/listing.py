"""The HTML page listing a directory that has no index file.

Pure: renders what the file layer found; imports no I/O module. Every name is HTML-escaped in
text and percent-encoded (then escaped) in links, so a file called `<script>` or `a"b` or `%2e`
is shown and linked as itself.
"""

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


def render(url_path: str, entries) -> bytes:
    """The page for the directory at `url_path` (decoded, ending in '/'), listing `entries`:
    (name, is_dir, size, mtime) tuples, shown directories first, then by name."""
    rows = []
    if url_path != "/":
        rows.append(_row("../", "../", "", "", ""))
    order = sorted(entries, key=lambda entry: (not entry[1], entry[0].casefold(), entry[0]))
    for name, is_dir, size, mtime in order:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))
        if is_dir:
            rows.append(_row(quote_segment(name) + "/", name + "/", "—", "", when))
        else:
            rows.append(_row(quote_segment(name), name, human_size(size), f"{size} bytes", when))
    title = escape(f"Index of {url_path}")
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{title}</h1>\n<table>\n<thead><tr><th>Name</th><th class=\"size\">Size</th>"
            f"<th>Modified (UTC)</th></tr></thead>\n<tbody>\n{''.join(rows)}</tbody>\n</table>\n"
            f"</body>\n</html>\n")
    return page.encode("utf-8")
