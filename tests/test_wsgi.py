"""The WSGI adapter called with constructed Requests: environ, start_response, bodies, closing."""

import logging
import os
import sys
import threading
import warnings
from concurrent.futures import Future
from wsgiref.validate import WSGIWarning, validator

import pytest
from netutil import assert_answered_promptly, fetch

from reactor.apps.app import App
from reactor.apps.wsgi import FileWrapper, WSGIHandler
from reactor.http.request import Request
from reactor.http.response import FileSlice


def make_request(method="GET", target="/", fields=(), body=b"", version=11, chunked=False):
    fields = [part for name, value in fields for part in (name, value)]
    length = None if chunked or not body else len(body)
    request = Request(method, target, version, fields, length, chunked, True, False)
    request.body = body
    request.client = ("127.0.0.1", 40001)
    return request


@pytest.fixture
def serve():
    handlers = []

    def serve(app, **kwargs):
        kwargs.setdefault("threads", 2)
        handler = WSGIHandler(app, server_name="testhost", server_port=8080, **kwargs)
        handlers.append(handler)

        def call(request):
            return handler(request).result(timeout=5)
        call.handler = handler
        return call

    yield serve
    for handler in handlers:
        handler.close()


def drain(body):
    """The bytes of a response body, resolving the Futures of a streamed one."""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, FileSlice):
        data = os.pread(body.fd, body.count, body.offset)
        body.close()
        return data
    out = []
    for item in body:
        if isinstance(item, Future):
            item = item.result(timeout=5)
        if item:
            out.append(item)
    body.close()
    return b"".join(out)


def capture_environ(store):
    def app(environ, start_response):
        store.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return app


def test_environ_is_complete(serve):
    env = {}
    call = serve(capture_environ(env), script_name="/mnt")
    request = make_request("POST", "/a%20b/%C3%A9%2Fx?q=1&r=%20", [
        (b"host", b"example.com:8080"), (b"content-type", b"text/plain"),
        (b"content-length", b"4"), (b"x-forwarded-for", b"1.2.3.4"),
        (b"accept", b"a"), (b"accept", b"b"), (b"cookie", b"a=1"), (b"cookie", b"b=2"),
    ], b"data")
    assert call(request).status == 200
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/mnt"
    assert env["PATH_INFO"] == "/a b/\xc3\xa9/x"       # decoded bytes as latin-1
    assert env["QUERY_STRING"] == "q=1&r=%20"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "4"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "testhost" and env["SERVER_PORT"] == "8080"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"] == "40001"
    assert env["HTTP_HOST"] == "example.com:8080"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert env["HTTP_ACCEPT"] == "a, b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input"].read() == b"data"
    assert env["wsgi.errors"] is sys.stderr
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.file_wrapper"] is FileWrapper


def test_http10_and_no_body(serve):
    env = {}
    serve(capture_environ(env))(make_request("GET", "/", version=10))
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env
    assert env["wsgi.input"].read() == b""


def test_chunked_body_gets_its_decoded_length(serve):
    env = {}
    serve(capture_environ(env))(make_request("POST", "/", body=b"12345", chunked=True))
    assert env["CONTENT_LENGTH"] == "5"


def test_underscore_field_names_are_dropped(serve):
    env = {}
    serve(capture_environ(env))(make_request(fields=[(b"x_user", b"forged"),
                                                     (b"x-user", b"real")]))
    assert env["HTTP_X_USER"] == "real"


def test_latin1_field_values_survive(serve):
    env = {}
    serve(capture_environ(env))(make_request(fields=[(b"x-name", b"caf\xe9")]))
    assert env["HTTP_X_NAME"] == "caf\xe9"


def test_validator_finds_nothing(serve):
    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        write = start_response("200 OK", [("Content-Type", "text/plain"),
                                          ("Content-Length", str(len(body) + 3))])
        write(b"<<<")
        return [body]

    def streaming(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"a"
        yield b"b"

    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)
        call = serve(validator(app))
        response = call(make_request("POST", "/echo?x=1", [(b"content-type", b"text/plain")],
                                     b"hello"))
        assert response.status == 200 and drain(response.body) == b"<<<hello"
        response = serve(validator(streaming))(make_request("GET", "/s"))
        assert drain(response.body) == b"ab"


def test_list_body_has_known_length(serve):
    def app(environ, start_response):
        start_response("201 Created", [("X-A", "1")])
        return [b"ab", b"cd"]
    response = serve(app)(make_request())
    assert response.status == 201 and response.body == b"abcd" and response.length == 4
    assert b"X-A: 1\r\n" in response.fields


def test_server_owned_headers_are_dropped(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Connection", "close"), ("Transfer-Encoding", "chunked"),
                                  ("Date", "yesterday"), ("Content-Length", "2"),
                                  ("X-Kept", "yes")])
        return [b"ok"]
    response = serve(app)(make_request())
    assert response.fields == b"X-Kept: yes\r\n"


def test_generator_with_declared_length_is_not_streamed(serve):
    closed = []

    class Body:
        def __iter__(self):
            yield b"whole"
            raise AssertionError("read past the declared length")

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        return Body()
    response = serve(app)(make_request())
    assert response.body == b"whole" and response.length == 5
    assert closed == [True]


def test_longer_body_is_cut_to_content_length(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "3")])
        return [b"abcdef"]
    assert serve(app)(make_request()).body == b"abc"


def test_shorter_body_than_content_length_is_500(serve, caplog):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "10")])
        return [b"abc"]
    with caplog.at_level(logging.ERROR, logger="reactor.wsgi"):
        assert serve(app)(make_request()).status == 500
    assert "Content-Length says 10" in caplog.text


def test_head_keeps_declared_length_without_body(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "10")])
        return []
    response = serve(app)(make_request("HEAD"))
    assert response.status == 200 and response.length == 10


def test_streamed_body_runs_on_pool_threads_and_closes(serve):
    threads, closed = set(), threading.Event()

    class Body:
        def __iter__(self):
            for part in (b"one", b"", b"two", b"three"):
                threads.add(threading.current_thread().name)
                yield part

        def close(self):
            threads.add(threading.current_thread().name)
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()
    response = serve(app)(make_request())
    assert response.length is None
    assert drain(response.body) == b"onetwothree"
    assert closed.wait(5)    # close() is handed to the pool too
    assert all(name.startswith("reactor-wsgi") for name in threads)


def test_streamed_body_is_capped_at_declared_length(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "5")])
        yield b"abc"
        yield b"defg"
        yield b"never"
    assert drain(serve(app)(make_request()).body) == b"abcde"


def test_streamed_body_ending_short_fails_the_stream(serve):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "50")])
        yield b"abc"
        yield b"def"
    body = serve(app)(make_request()).body
    with pytest.raises(ValueError, match="short"):
        drain(body)


def test_lazy_start_response_in_generator(serve):
    def app(environ, start_response):
        yield b""
        start_response("202 Accepted", [])
        yield b"late"
    response = serve(app)(make_request())
    assert response.status == 202 and drain(response.body) == b"late"


def test_exception_before_head_is_500_and_closes(serve, caplog):
    closed = []

    class Body:
        def __iter__(self):
            raise RuntimeError("broken body")
            yield

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()
    with caplog.at_level(logging.ERROR, logger="reactor.wsgi"):
        assert serve(app)(make_request()).status == 500
    assert "broken body" in caplog.text and closed == [True]


def test_exc_info_replaces_head_before_it_is_sent(serve):
    def app(environ, start_response):
        start_response("200 OK", [("X-First", "1")])
        try:
            raise KeyError("x")
        except KeyError:
            start_response("503 Service Unavailable", [("X-Second", "1")], sys.exc_info())
        return [b"sorry"]
    response = serve(app)(make_request())
    assert response.status == 503 and response.fields == b"X-Second: 1\r\n"


def test_exc_info_after_head_is_sent_reraises(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"part"
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"
    body = serve(app)(make_request()).body
    with pytest.raises(KeyError):
        drain(body)


def test_second_start_response_without_exc_info_is_500(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]
    assert serve(app)(make_request()).status == 500


def test_no_start_response_is_500(serve):
    assert serve(lambda environ, start_response: [b"x"])(make_request()).status == 500


def test_header_with_newline_is_500(serve):
    def app(environ, start_response):
        start_response("200 OK", [("X-Bad", "a\r\nInjected: 1")])
        return [b""]
    assert serve(app)(make_request()).status == 500


def test_file_wrapper_becomes_file_slice(serve, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        handle = open(path, "rb")
        handle.seek(2)
        return environ["wsgi.file_wrapper"](handle, 4096)
    response = serve(app)(make_request())
    assert isinstance(response.body, FileSlice)
    assert response.length == 8
    assert drain(response.body) == b"23456789"


def test_file_wrapper_over_non_file_is_iterated(serve):
    import io

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"x" * 10), 4)
    assert drain(serve(app)(make_request()).body) == b"x" * 10


def test_slow_app_does_not_hold_the_caller(serve):
    release = threading.Event()

    def app(environ, start_response):
        release.wait(5)
        start_response("200 OK", [])
        return [b"late"]
    handler = serve(app).handler
    future = handler(make_request())
    assert not future.done()
    release.set()
    assert future.result(timeout=5).body == b"late"


# -- over real sockets ---------------------------------------------------------------------


def test_mounted_wsgi_app_sees_script_name(server_factory):
    env = {}
    app = App()
    app.mount("/wsgi", WSGIHandler(capture_environ(env), threads=1, server_name="127.0.0.1",
                                   server_port=0, script_name="/wsgi"))
    srv = server_factory(handler=app)
    response, body = fetch(srv.port, "/wsgi/a%2Fb?x=1")
    assert response.status == 200 and body == b"ok"
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == ("/wsgi", "/a/b", "x=1")
    assert env["REMOTE_ADDR"] == "127.0.0.1" and int(env["REMOTE_PORT"]) > 0


def test_slow_wsgi_app_and_slow_stream_do_not_delay_static_file(server_factory, tmp_path):
    (tmp_path / "a.txt").write_bytes(b"static")
    entered, release = threading.Event(), threading.Event()
    streaming, resume = threading.Event(), threading.Event()

    def slow(environ, start_response):
        if environ["PATH_INFO"] == "/stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return slow_stream()
        entered.set()
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow"]

    def slow_stream():
        yield b"first;"
        streaming.set()
        resume.wait(10)
        yield b"second"

    app = App()
    app.mount("/wsgi", WSGIHandler(slow, threads=4, server_name="127.0.0.1", server_port=0))
    app.static("/", root=str(tmp_path))
    srv = server_factory(handler=app)
    results = {}
    workers = [threading.Thread(target=lambda p=p: results.__setitem__(p, fetch(srv.port, p)))
               for p in ("/wsgi/slow", "/wsgi/stream")]
    for worker in workers:
        worker.start()
    try:
        assert entered.wait(5) and streaming.wait(5)
        assert_answered_promptly(srv.port, "/a.txt", b"static")
        assert not results
    finally:
        release.set()
        resume.set()
        for worker in workers:
            worker.join(5)
    assert results["/wsgi/slow"][1] == b"slow"
    stream_response, stream_body = results["/wsgi/stream"]
    assert stream_response.getheader("Transfer-Encoding") == "chunked"
    assert stream_body == b"first;second"


def test_validated_app_over_sockets(server_factory):
    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)
        srv = server_factory(handler=WSGIHandler(validator(app), threads=2,
                                                 server_name="127.0.0.1", server_port=0))
        response, body = fetch(srv.port, "/", "POST", b"payload")
        assert response.status == 200 and body == b"payload"
        response, body = fetch(srv.port, "/", "HEAD")
        assert response.status == 200 and body == b""
