"""The examples over real sockets: time server, guestbook, and the Flask app via --wsgi."""

import json
import re
import sqlite3
from datetime import datetime
from urllib.parse import urlencode

import pytest
from netutil import fetch

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples"


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# -- time server ---------------------------------------------------------------------------


@pytest.fixture
def timeserver(server_factory, tmp_path):
    (tmp_path / "hello.txt").write_bytes(b"hello static\n")
    return server_factory(app="examples.timeserver:app", root=str(tmp_path))


def test_time_route_returns_now(timeserver):
    response, body = fetch(timeserver.port, "/time")
    assert response.status == 200
    assert response.getheader("Cache-Control") == "no-store"
    stamp = datetime.fromisoformat(body.decode().strip())
    assert abs((datetime.now().astimezone() - stamp).total_seconds()) < 5


def test_time_json(timeserver):
    response, body = fetch(timeserver.port, "/time.json")
    data = json.loads(body)
    assert response.getheader("Content-Type") == "application/json"
    assert datetime.fromisoformat(data["iso"]).timestamp() == pytest.approx(data["unix"], abs=1)


def test_static_files_beside_the_time(timeserver):
    response, body = fetch(timeserver.port, "/hello.txt")
    assert response.status == 200 and body == b"hello static\n"
    assert fetch(timeserver.port, "/missing.txt")[0].status == 404


def test_head_and_wrong_method_on_time(timeserver):
    response, body = fetch(timeserver.port, "/time", "HEAD")
    assert response.status == 200 and body == b""
    response, _ = fetch(timeserver.port, "/time", "POST", b"")
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"


# -- guestbook -----------------------------------------------------------------------------


@pytest.fixture
def guestbook(server_factory, tmp_path):
    from examples.guestbook import make_app
    db = tmp_path / "book.sqlite3"
    srv = server_factory(handler=make_app(str(db)))
    srv.db = db
    return srv


def sign(port, **fields):
    return fetch(port, "/", "POST", urlencode(fields).encode(), FORM)


def test_guestbook_stores_and_lists_entries(guestbook):
    response, _ = sign(guestbook.port, name="Ann", message="Lovely site")
    assert response.status == 303 and response.getheader("Location") == "/"
    sign(guestbook.port, name="Bob", message="Second!")
    response, body = fetch(guestbook.port, "/")
    page = body.decode()
    assert response.status == 200 and "text/html" in response.getheader("Content-Type")
    assert page.index("Bob") < page.index("Ann")    # newest first
    assert "Lovely site" in page


def test_guestbook_escapes_html(guestbook):
    sign(guestbook.port, name="<script>alert(1)</script>", message='<img src=x onerror="x">')
    page = fetch(guestbook.port, "/")[1].decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;x&quot;&gt;" in page


def test_guestbook_is_safe_against_sql_injection(guestbook):
    evil = "x'); DROP TABLE entries; --"
    assert sign(guestbook.port, name=evil, message="a' OR '1'='1")[0].status == 303
    assert sign(guestbook.port, name="After", message="still here")[0].status == 303
    with sqlite3.connect(guestbook.db) as db:
        rows = db.execute("SELECT name, message FROM entries ORDER BY id").fetchall()
    assert rows == [(evil, "a' OR '1'='1"), ("After", "still here")]


def test_guestbook_keeps_unicode(guestbook):
    sign(guestbook.port, name="Zoë", message="Grüße ☃")
    assert "Grüße ☃" in fetch(guestbook.port, "/")[1].decode()


def test_guestbook_rejects_empty_and_oversized_entries(guestbook):
    response, body = sign(guestbook.port, name="  ", message="hi")
    assert response.status == 400 and b"Please give a name" in body
    response, _ = sign(guestbook.port, name="Ann", message="x" * 5000)
    assert response.status == 400
    response, _ = fetch(guestbook.port, "/", "POST", b"name=a&message=b",
                        {"Content-Type": "text/plain"})
    assert response.status == 415
    with sqlite3.connect(guestbook.db) as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (0,)


# -- Flask through the WSGI adapter --------------------------------------------------------


@pytest.fixture(scope="module")
def flask_module():
    import examples.flask_app  # flask is a test dependency: a broken install fails here
    return examples.flask_app


@pytest.fixture
def flask_server(server_factory, flask_module):
    return server_factory(wsgi="examples.flask_app:app", threads=4)


def test_flask_form_post(flask_server):
    response, _ = fetch(flask_server.port, "/notes", "POST",
                        urlencode({"text": "from a <form>"}).encode(), FORM)
    assert response.status == 303
    assert response.getheader("Location").endswith("/")
    page = fetch(flask_server.port, "/")[1].decode()
    assert "from a &lt;form&gt;" in page
    assert fetch(flask_server.port, "/notes", "POST", b"text=", FORM)[0].status == 400


def test_flask_json_api(flask_server):
    response, body = fetch(flask_server.port, "/api/notes", "POST",
                           json.dumps({"text": "from JSON"}).encode(),
                           {"Content-Type": "application/json"})
    assert response.status == 201
    note = json.loads(body)
    assert note["text"] == "from JSON"
    response, body = fetch(flask_server.port, "/api/notes")
    assert response.getheader("Content-Type") == "application/json"
    assert note in json.loads(body)
    response, body = fetch(flask_server.port, "/api/notes", "POST", b"[]",
                           {"Content-Type": "application/json"})
    assert response.status == 400 and "error" in json.loads(body)


def test_flask_streamed_response(flask_server):
    response, body = fetch(flask_server.port, "/count?to=50&delay=0.001")
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Length") is None
    assert body.decode().split() == [str(n) for n in range(1, 51)]


def test_flask_file_download(flask_server):
    expected = (EXAMPLES / "files" / "sample.csv").read_bytes()
    response, body = fetch(flask_server.port, "/download")
    assert response.status == 200 and body == expected
    assert response.getheader("Content-Length") == str(len(expected))
    assert re.match(r"attachment; filename=\"?cities.csv", response.getheader("Content-Disposition"))
    response, body = fetch(flask_server.port, "/download", "HEAD")
    assert body == b"" and response.getheader("Content-Length") == str(len(expected))


def test_flask_range_download(flask_server):
    response, body = fetch(flask_server.port, "/download", headers={"Range": "bytes=0-3"})
    assert response.status == 206 and body == b"city"


def test_flask_conditional_download(flask_server):
    etag = fetch(flask_server.port, "/download")[0].getheader("ETag")
    response, body = fetch(flask_server.port, "/download", headers={"If-None-Match": etag})
    assert response.status == 304 and body == b""


def test_flask_not_found(flask_server):
    assert fetch(flask_server.port, "/nope")[0].status == 404
