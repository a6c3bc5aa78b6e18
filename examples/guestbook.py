"""A guestbook on sqlite3: a form that signs it, a page that lists the entries.

    python -m reactor --app examples.guestbook:app
    python -m examples.guestbook
    GUESTBOOK_DB=/tmp/book.sqlite3 python -m reactor --app examples.guestbook:app

SQL injection is impossible because every value reaches SQL as a parameter, never as text of
the statement; HTML injection because every stored value is escaped when it is written out.
The routes run on the App's threads, so a slow disk never stalls the loop.
"""

import html
import os
import sqlite3
import sys
from contextlib import closing
from datetime import datetime, timezone

from reactor import App, form, redirect
from reactor import html as html_response

MAX_NAME = 100
MAX_MESSAGE = 2000
SHOWN = 100       # entries on the page, newest first

SCHEMA = """CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    message TEXT NOT NULL,
    created TEXT NOT NULL)"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Guestbook</title></head>
<body>
<h1>Guestbook</h1>
{error}<form method="post" action="/">
<p><label>Name <input name="name" maxlength="{max_name}" value="{name}" required></label></p>
<p><label>Message<br><textarea name="message" maxlength="{max_message}" rows="4" cols="50"
 required>{message}</textarea></label></p>
<p><button>Sign</button></p>
</form>
<ol reversed>
{entries}</ol>
</body></html>
"""

ENTRY = "<li><strong>{name}</strong> <small>{created}</small><p>{message}</p></li>\n"


def make_app(db_path: str) -> App:
    """A guestbook App storing its entries in the sqlite3 file `db_path`."""

    created_schema = False

    def connect():
        # One connection per request: sqlite3 connections must not cross threads, and
        # opening one costs microseconds. The file is made on first use, not on import.
        nonlocal created_schema
        db = sqlite3.connect(db_path, timeout=5)
        if not created_schema:
            with db:
                db.execute(SCHEMA)    # IF NOT EXISTS: two threads racing here is harmless
            created_schema = True
        return closing(db)

    def page(status=200, error="", name="", message=""):
        with connect() as db:
            rows = db.execute("SELECT name, message, created FROM entries "
                              "ORDER BY id DESC LIMIT ?", (SHOWN,)).fetchall()
        entries = "".join(ENTRY.format(name=html.escape(n), message=html.escape(m),
                                       created=html.escape(c)) for n, m, c in rows)
        error_html = f'<p role="alert">{html.escape(error)}</p>\n' if error else ""
        return html_response(PAGE.format(error=error_html, name=html.escape(name),
                                         message=html.escape(message), entries=entries,
                                         max_name=MAX_NAME, max_message=MAX_MESSAGE), status)

    app = App()

    @app.get("/", threaded=True)
    def index(request):
        return page()

    @app.post("/", threaded=True)
    def sign(request):
        fields = form(request)
        name = fields.get("name", [""])[0].strip()
        message = fields.get("message", [""])[0].strip()
        if not name or not message:
            return page(400, "Please give a name and a message.", name, message)
        if len(name) > MAX_NAME or len(message) > MAX_MESSAGE:
            return page(400, f"Names stop at {MAX_NAME} characters, messages at {MAX_MESSAGE}.",
                        name[:MAX_NAME], message[:MAX_MESSAGE])
        created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with connect() as db, db:
            db.execute("INSERT INTO entries (name, message, created) VALUES (?, ?, ?)",
                       (name, message, created))
        # Post/Redirect/Get: reloading the page does not sign twice.
        return redirect("/", 303)

    return app


app = make_app(os.environ.get("GUESTBOOK_DB", "guestbook.sqlite3"))


if __name__ == "__main__":
    from reactor.cli import main
    sys.exit(main(["--app", "examples.guestbook:app", *sys.argv[1:]]))
