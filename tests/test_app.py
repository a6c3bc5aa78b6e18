"""App routing, return conversions, mounts and failures, called with constructed Requests."""

import logging
import threading
from concurrent.futures import Future

import pytest
from netutil import assert_answered_promptly, exchange, fetch

from reactor.apps.app import App, compile_pattern, form, load_app, to_response
from reactor.http.errors import HTTPError
from reactor.http.request import Request
from reactor.http.response import Response


def make_request(method="GET", target="/", fields=(), body=b""):
    fields = [part for name, value in fields for part in (name, value)]
    request = Request(method, target, 11, fields, len(body) if body else None, False, True, False)
    request.body = body
    request.client = ("127.0.0.1", 40000)
    return request


def resolve(result):
    return result.result(timeout=5) if isinstance(result, Future) else result


@pytest.fixture
def app():
    app = App()

    @app.get("/time")
    def time(request):
        return "noon"

    @app.route("/entries/{id:int}", methods=("GET", "DELETE"))
    def entry(request, id):
        return {"id": id}

    @app.post("/entries")
    def create(request):
        return 201, [("Location", "/entries/1")], "made"

    @app.get("/files/{path:path}")
    def files(request, path):
        return path.encode()

    @app.get("/users/{name}")
    def user(request, name):
        return Response(200, [("X-Name", name)], b"")

    return app


def test_route_returns_str_as_utf8_text(app):
    response = app(make_request(target="/time"))
    assert response.status == 200
    assert response.body == b"noon"
    assert b"text/plain; charset=utf-8" in response.fields


def test_int_parameter_is_converted_and_dict_becomes_json(app):
    response = app(make_request(target="/entries/42"))
    assert response.body == b'{"id": 42}'
    assert b"application/json" in response.fields


def test_int_parameter_rejects_non_digits(app):
    assert app(make_request(target="/entries/x")).status == 404


def test_str_parameter_stops_at_slash(app):
    assert app(make_request(target="/users/ann/more")).status == 404


def test_path_parameter_takes_slashes_and_is_decoded(app):
    response = app(make_request(target="/files/a/b%20c.txt?x=1"))
    assert response.body == b"a/b c.txt"


def test_percent_encoded_utf8_parameter(app):
    response = app(make_request(target="/users/caf%C3%A9"))
    assert b"X-Name: caf\xe9\r\n" in response.fields


def test_tuple_gives_status_headers_and_body(app):
    response = app(make_request("POST", "/entries", body=b"x=1"))
    assert response.status == 201
    assert b"Location: /entries/1" in response.fields
    assert response.body == b"made"


def test_unknown_path_is_404(app):
    assert app(make_request(target="/nowhere")).status == 404


def test_wrong_method_is_405_with_allow(app):
    response = app(make_request("PUT", "/entries/3"))
    assert response.status == 405
    assert b"Allow: DELETE, GET, HEAD\r\n" in response.fields


def test_get_route_answers_head(app):
    assert app(make_request("HEAD", "/time")).status == 200


def test_absolute_form_target_is_routed_by_its_path(app):
    assert app(make_request(target="http://example.com/time")).body == b"noon"


def test_handler_exception_is_logged_500(caplog):
    app = App()

    @app.get("/boom")
    def boom(request):
        raise RuntimeError("kaput")

    with caplog.at_level(logging.ERROR, logger="reactor.app"):
        response = app(make_request(target="/boom"))
    assert response.status == 500
    assert "kaput" in caplog.text and "Traceback" in caplog.text


def test_http_error_becomes_its_status():
    app = App()

    @app.get("/teapot")
    def teapot(request):
        raise HTTPError(418, "short and stout")

    response = app(make_request(target="/teapot"))
    assert response.status == 418
    assert b"short and stout" in response.body


def test_unconvertible_return_is_500():
    app = App()
    app.get("/odd")(lambda request: 3.5)
    assert app(make_request(target="/odd")).status == 500


def test_future_result_is_converted():
    app = App()
    pending = Future()
    app.get("/later")(lambda request: pending)
    result = app(make_request(target="/later"))
    assert isinstance(result, Future)
    pending.set_result("done")
    assert result.result(timeout=1).body == b"done"


def test_failed_future_becomes_500():
    app = App()
    pending = Future()
    app.get("/later")(lambda request: pending)
    result = app(make_request(target="/later"))
    pending.set_exception(ValueError("no"))
    assert result.result(timeout=1).status == 500


def test_threaded_route_runs_off_the_calling_thread():
    app = App(threads=2)
    app.get("/where", threaded=True)(lambda request: threading.current_thread().name)
    result = app(make_request(target="/where"))
    assert isinstance(result, Future)
    assert result.result(timeout=5).body.startswith(b"reactor-app")
    app.close()


def test_mount_strips_prefix_and_keeps_query():
    seen = []

    def inner(request):
        seen.append((request.target, request.path, request.body, request.client))
        return Response(200, (), b"inner")

    app = App()
    app.mount("/static/", inner)
    response = app(make_request("POST", "/static/css/a.css?v=2", body=b"b"))
    assert response.body == b"inner"
    assert seen == [("/css/a.css?v=2", "/css/a.css", b"b", ("127.0.0.1", 40000))]


def test_mount_does_not_match_a_longer_segment():
    app = App()
    app.mount("/static", lambda request: Response(200, (), b"inner"))
    assert app(make_request(target="/staticky")).status == 404


def test_mount_prefix_without_slash_redirects():
    app = App()
    app.mount("/docs", lambda request: Response(200, (), b""))
    response = app(make_request(target="/docs?q=1"))
    assert response.status == 308
    assert b"Location: /docs/?q=1" in response.fields


def test_root_mount_is_behind_routes_and_longest_prefix_wins(app):
    app.mount("/", lambda request: Response(200, (), b"root " + request.target.encode()))
    app.mount("/a", lambda request: Response(200, (), b"a " + request.target.encode()))
    assert app(make_request(target="/time")).body == b"noon"
    assert app(make_request(target="/index.html")).body == b"root /index.html"
    assert app(make_request(target="/a/b")).body == b"a /b"


def test_pattern_errors():
    with pytest.raises(ValueError):
        compile_pattern("no-slash")
    with pytest.raises(ValueError):
        compile_pattern("/{x:float}")
    with pytest.raises(ValueError):
        compile_pattern("/{x}/{x}")


def test_literal_parts_are_not_regex():
    regex, _ = compile_pattern("/a.b")
    assert regex.match("/a.b") and not regex.match("/axb")


def test_to_response_bytes_and_passthrough():
    response = Response(204)
    assert to_response(response) is response
    assert b"application/octet-stream" in to_response(b"\x00").fields
    with pytest.raises(TypeError):
        to_response(None)


def test_form_parses_urlencoded_body():
    request = make_request("POST", "/", [(b"content-type", b"application/x-www-form-urlencoded")],
                           "name=Ann+B&msg=caf%C3%A9&msg=2".encode())
    assert form(request) == {"name": ["Ann B"], "msg": ["café", "2"]}


def test_form_rejects_other_content_types():
    request = make_request("POST", "/", [(b"content-type", b"text/plain")], b"a=1")
    with pytest.raises(HTTPError) as caught:
        form(request)
    assert caught.value.status == 415


def test_form_with_bad_utf8_or_too_many_fields_is_400():
    for body in (b"a=%FF\xff", b"&".join(b"f=1" for _ in range(2000))):
        request = make_request("POST", "/", [(b"content-type", b"application/x-www-form-urlencoded")],
                               body)
        with pytest.raises(HTTPError) as caught:
            form(request)
        assert caught.value.status == 400


def test_form_of_get_reads_the_query():
    assert form(make_request(target="/?q=x")) == {"q": ["x"]}


def test_load_app_configures_static_mount(tmp_path, monkeypatch):
    module = tmp_path / "someapp_for_test.py"
    module.write_text("from reactor.apps.app import App\napp = App()\n"
                      "app.get('/hi')(lambda request: 'hi')\n"
                      "def plain(request):\n    return 'plain'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from reactor.config import Config
    handler = load_app("someapp_for_test:app", Config(root=str(tmp_path)))
    assert handler(make_request(target="/hi")).body == b"hi"
    assert load_app("someapp_for_test:plain", Config())(make_request()) == "plain"


# -- over real sockets ---------------------------------------------------------------------


def test_failing_route_is_500_and_the_server_goes_on(server_factory):
    app = App()

    @app.get("/boom")
    def boom(request):
        raise RuntimeError("kaput")

    app.get("/ok")(lambda request: "fine")
    srv = server_factory(handler=app)
    assert fetch(srv.port, "/boom")[0].status == 500
    response, body = fetch(srv.port, "/ok")
    assert response.status == 200 and body == b"fine"


def test_chunked_request_body_reaches_route(server_factory):
    app = App()
    app.post("/echo")(lambda request: request.body)
    srv = server_factory(handler=app)
    raw = exchange(srv.port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                             b"\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"\r\n\r\nabcd")


def test_slow_threaded_route_does_not_delay_static_file(server_factory, tmp_path):
    (tmp_path / "a.txt").write_bytes(b"static")
    entered, release = threading.Event(), threading.Event()
    app = App()

    @app.get("/slow", threaded=True)
    def slow(request):
        entered.set()
        release.wait(10)
        return "slow"

    app.static("/", root=str(tmp_path))
    srv = server_factory(handler=app)
    slow_result = []
    worker = threading.Thread(target=lambda: slow_result.append(fetch(srv.port, "/slow")))
    worker.start()
    try:
        assert entered.wait(5)
        assert_answered_promptly(srv.port, "/a.txt", b"static")
        assert not slow_result
    finally:
        release.set()
        worker.join(5)
    assert slow_result[0][1] == b"slow"
