"""A Flask application served through reactor's WSGI adapter.

    python -m reactor --wsgi examples.flask_app:app --threads 8
    python -m examples.flask_app

Routes: `/` a form that POSTs to `/notes`; `/api/notes` a JSON API (GET lists, POST adds);
`/count?to=N` a streamed plain-text response produced line by line; `/download` a file sent
with sendfile through wsgi.file_wrapper.
"""

import os
import sys
import threading
import time

from flask import Flask, Response, abort, jsonify, redirect, request, send_file, url_for
from markupsafe import escape

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "files", "sample.csv")

app = Flask(__name__)

# Notes live in memory: the adapter runs requests on several threads at once.
notes = []
notes_lock = threading.Lock()


def add_note(text: str) -> dict:
    with notes_lock:
        note = {"id": len(notes) + 1, "text": text}
        notes.append(note)
    return note


@app.get("/")
def index():
    with notes_lock:
        items = "".join(f"<li>{escape(note['text'])}</li>" for note in notes)
    return (f"<!doctype html><title>Notes</title><h1>Notes</h1><ul>{items}</ul>"
            f'<form method="post" action="{url_for("create_from_form")}">'
            '<input name="text" required><button>Add</button></form>')


@app.post("/notes")
def create_from_form():
    text = request.form.get("text", "").strip()
    if not text:
        abort(400, "the note is empty")
    add_note(text)
    return redirect(url_for("index"), 303)


@app.get("/api/notes")
def list_notes():
    with notes_lock:
        return jsonify(list(notes))


@app.post("/api/notes")
def create_from_json():
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return jsonify(error='expected {"text": "..."}'), 400
    return jsonify(add_note(data["text"])), 201


@app.get("/count")
def count():
    to = min(request.args.get("to", 5, type=int), 1000)
    delay = min(request.args.get("delay", 0.0, type=float), 1.0)

    def lines():
        for n in range(1, to + 1):
            yield f"{n}\n"
            time.sleep(delay)  # a slow producer: it runs on a pool thread, not the loop

    return Response(lines(), mimetype="text/plain")


@app.get("/download")
def download():
    return send_file(SAMPLE, mimetype="text/csv", as_attachment=True,
                     download_name="cities.csv")


if __name__ == "__main__":
    from reactor.cli import main
    sys.exit(main(["--wsgi", "examples.flask_app:app", *sys.argv[1:]]))
