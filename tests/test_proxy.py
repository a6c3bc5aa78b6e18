"""Behind a proxy: the PROXY protocol parser (pure), the header read off real sockets before
HTTP, forwarding fields believed only from trusted peers, and the client address so found in
the access log, App requests and WSGI environ; the health path."""

import io
import socket
import struct
import sys
import time

import pytest
from netutil import connect, exchange, fetch, read_until_close, wait_until

from reactor.config import Config
from reactor.http.errors import ConfigError
from reactor.http.request import Request
from reactor.http.response import Response
from reactor.ops.accesslog import AccessLog
from reactor.ops.forwarded import ForwardedRules
from reactor.ops.proxy import MAX_HEADER, V2_SIGNATURE, HeaderError, Networks, parse_header

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def v2(command=0x21, family=0x11, addresses=None, tlvs=b""):
    if addresses is None:
        addresses = (socket.inet_aton("203.0.113.7") + socket.inet_aton("10.0.0.1")
                     + struct.pack("!HH", 51000, 80))
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", len(body)) + body


# -- the parser ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line, source", [
    (b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n", ("203.0.113.7", 51000)),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n", ("2001:db8::7", 51000)),
    (b"PROXY UNKNOWN\r\n", None),
    (b"PROXY UNKNOWN anything at all here\r\n", None),
])
def test_v1_lines(line, source):
    assert parse_header(line + GET, "v1") == (len(line), source)
    assert parse_header(line + GET, "auto") == (len(line), source)


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\n",          # LF alone
    b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\r\n",
    b"PROXY TCP4 203.0.113.7  10.0.0.1 51000 80\r\n",        # two spaces
    b"PROXY TCP4 203.0.113.007 10.0.0.1 51000 80\r\n",       # leading zeros
    b"PROXY TCP4 203.0.113.7 10.0.0.1 051000 80\r\n",
    b"PROXY TCP4 203.0.113.7 10.0.0.1 65536 80\r\n",
    b"PROXY TCP4 2001:db8::7 10.0.0.1 1 80\r\n",             # family mismatch
    b"PROXY TCP4 203.0.113.7 10.0.0.1 1\r\n",
    b"PROXY UDP4 203.0.113.7 10.0.0.1 1 2\r\n",
    b"proxy TCP4 203.0.113.7 10.0.0.1 1 2\r\n",
    b"GET / HTTP/1.1\r\n",
    b"PROXY TCP4 " + b"1" * 100 + b"\r\n",                   # past 107 bytes
])
def test_v1_refusals(line):
    with pytest.raises(HeaderError):
        parse_header(line, "v1")


def test_v1_incomplete_is_none_until_the_crlf():
    line = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n"
    for end in range(len(line)):
        assert parse_header(line[:end], "v1") is None
    assert parse_header(line, "v1") == (len(line), ("203.0.113.7", 51000))


def test_v2_proxy_local_tlvs_and_ipv6():
    header = v2()
    assert parse_header(header + GET, "v2") == (len(header), ("203.0.113.7", 51000))
    assert parse_header(header, "auto") == (len(header), ("203.0.113.7", 51000))
    local = v2(command=0x20)
    assert parse_header(local, "v2") == (len(local), None)
    with_tlvs = v2(tlvs=b"\x04\x00\x03abc" + b"\xea\x00\x02xy")
    assert parse_header(with_tlvs, "v2") == (len(with_tlvs), ("203.0.113.7", 51000))
    six = v2(family=0x21, addresses=socket.inet_pton(socket.AF_INET6, "2001:db8::7")
             + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 7, 443))
    assert parse_header(six, "v2") == (len(six), ("2001:db8::7", 7))
    unspec = v2(family=0x00, addresses=b"")
    assert parse_header(unspec, "v2") == (16, None)


def test_v2_incomplete_is_none():
    header = v2()
    for end in range(len(header)):
        assert parse_header(header[:end], "v2") is None


@pytest.mark.parametrize("header", [
    v2(command=0x11),                          # version 1 in a v2 header
    v2(command=0x22),                          # command 2
    v2(family=0x12),                           # UDP
    v2(family=0x11, addresses=b"\x00" * 8),    # addresses cut short
    V2_SIGNATURE[:11] + b"X" + b"\x21\x11\x00\x0c",
    V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", MAX_HEADER),
])
def test_v2_refusals(header):
    with pytest.raises(HeaderError):
        parse_header(header, "v2")


def test_a_version_is_never_taken_for_the_other():
    with pytest.raises(HeaderError):
        parse_header(v2(), "v1")
    with pytest.raises(HeaderError):
        parse_header(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n", "v2")
    with pytest.raises(HeaderError):
        parse_header(GET, "auto")


def test_networks():
    networks = Networks(["10.0.0.0/8, 127.0.0.1", "::1"])
    assert ("10.1.2.3", 1) in networks and ("127.0.0.1", 1) in networks
    assert ("::1", 1) in networks and ("::ffff:10.0.0.1", 1) in networks
    assert ("127.0.0.2", 1) not in networks and ("unix", 0) not in networks
    assert ("not an address", 0) not in networks
    assert ("unix", 0) in Networks(["unix"]) and ("8.8.8.8", 1) in Networks(["*"])


# -- forwarding fields ----------------------------------------------------------------------------

def forwarded_request(peer, *fields):
    flat = [part for name, value in fields for part in (name, value)]
    request = Request("GET", "/", 11, flat, None, False, True, False)
    request.client = peer
    return request


RULES = ForwardedRules(Networks(["127.0.0.1", "10.0.0.0/8"]))


@pytest.mark.parametrize("fields, client, scheme", [
    # right to left, trusted hops skipped, the first untrusted one wins
    ([(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.0.0.2")], ("203.0.113.7", 0), "http"),
    # repeated fields are one list
    ([(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.7")],
     ("203.0.113.7", 0), "http"),
    # every hop trusted: the leftmost
    ([(b"x-forwarded-for", b"10.0.0.3, 10.0.0.2")], ("10.0.0.3", 0), "http"),
    # garbage ends the walk at the last trusted hop
    ([(b"x-forwarded-for", b"203.0.113.7, nonsense, 10.0.0.2")], ("10.0.0.2", 0), "http"),
    ([(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")],
     ("203.0.113.7", 0), "https"),
    ([(b"x-forwarded-proto", b"gopher")], ("127.0.0.1", 5), "http"),
    ([(b"forwarded", b'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https')],
     ("2001:db8::7", 4711), "https"),
    ([(b"forwarded", b"for=203.0.113.7:80;proto=https;by=10.0.0.1")], ("203.0.113.7", 80),
     "https"),
])
def test_forwarded_from_a_trusted_peer(fields, client, scheme):
    request = forwarded_request(("127.0.0.1", 5), *fields)
    RULES.apply(request)
    assert (request.client, request.scheme) == (client, scheme)


def test_forwarded_from_an_untrusted_peer_is_ignored():
    request = forwarded_request(("203.0.113.9", 5), (b"x-forwarded-for", b"1.2.3.4"),
                                (b"x-forwarded-proto", b"https"))
    RULES.apply(request)
    assert (request.client, request.scheme) == (("203.0.113.9", 5), "http")


@pytest.mark.parametrize("kwargs, message", [
    (dict(proxy_protocol="v2"), "--proxy-protocol needs --trusted-proxy"),
    (dict(trusted_proxies=("10.0.0.0/33",)), "--trusted-proxy '10.0.0.0/33' is not"),
    (dict(forwarded_allow_ips=("localhost",)), "--forwarded-allow-ips 'localhost' is not"),
    (dict(health="healthz"), "must be a path"),
])
def test_config_errors_are_one_line(kwargs, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        Config(root=str(tmp_path), **kwargs).checked()


# -- over real sockets -----------------------------------------------------------------------------

@pytest.fixture
def proxied(server_factory):
    """A server with the given options whose handler answers with the client's address;
    `.seen` holds (client, scheme) of each request, `.log` the access log."""
    def start(**options):
        seen = []

        def handler(request):
            seen.append((request.client, request.scheme))
            return Response(200, [], request.client[0].encode())

        running = server_factory(handler, **options)
        running.seen, running.log = seen, io.StringIO()
        running.server.access_log = AccessLog(running.log, running.server.loop.call_later)
        return running
    return start


def test_proxy_v2_header_names_the_client_for_handler_and_log(proxied):
    running = proxied(proxy_protocol="v2", trusted_proxies=("127.0.0.1",))
    reply = exchange(running.port, v2() + GET + GET)
    assert reply.count(b"HTTP/1.1 200") == 2 and reply.endswith(b"203.0.113.7")
    assert running.seen == [(("203.0.113.7", 51000), "http")] * 2
    assert wait_until(lambda: running.log.getvalue().startswith("203.0.113.7 - - ["))


def test_proxy_header_in_pieces_and_local(proxied):
    running = proxied(proxy_protocol="auto", trusted_proxies=("127.0.0.0/8",))
    line = b"PROXY TCP4 198.51.100.4 10.0.0.1 4000 80\r\n"
    with connect(running.port) as sock:
        for piece in (line[:3], line[3:20], line[20:], GET[:5]):
            sock.sendall(piece)
            time.sleep(0.05)
        sock.sendall(GET[5:])
        assert sock.recv(65536).endswith(b"198.51.100.4")
    assert exchange(running.port, v2(command=0x20) + GET).endswith(b"127.0.0.1")


@pytest.mark.parametrize("garbage", [GET, b"PROXY TCP4 1.2.3.4\r\n" + GET, v2(family=0x12)])
def test_bad_proxy_header_closes_the_connection_unanswered(proxied, garbage):
    running = proxied(proxy_protocol="auto", trusted_proxies=("127.0.0.1",))
    assert exchange(running.port, garbage, half_close=False) == b""
    assert running.seen == []


def test_proxy_header_that_never_completes_is_closed_at_the_header_timeout(proxied):
    running = proxied(proxy_protocol="v1", trusted_proxies=("127.0.0.1",), header_timeout=0.2)
    with connect(running.port) as sock:
        sock.sendall(b"PROXY TCP4 1.2.3.4 ")
        assert read_until_close(sock) == b""


def test_untrusted_peers_are_served_as_themselves(proxied):
    running = proxied(proxy_protocol="v2", trusted_proxies=("10.0.0.0/8",))
    assert exchange(running.port, GET).endswith(b"127.0.0.1")
    assert exchange(running.port, v2() + GET).startswith(b"HTTP/1.1 400")


def test_forwarded_fields_from_trusted_peer_over_http(proxied):
    running = proxied(forwarded_allow_ips=("127.0.0.1",))
    response, body = fetch(running.port, "/", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7",
                                                      "X-Forwarded-Proto": "https"})
    assert body == b"203.0.113.7" and running.seen == [(("203.0.113.7", 0), "https")]
    assert wait_until(lambda: running.log.getvalue().startswith("203.0.113.7 - - ["))
    untrusting = proxied(forwarded_allow_ips=("10.0.0.1",))
    assert fetch(untrusting.port, "/", headers={"X-Forwarded-For": "6.6.6.6"})[1] == b"127.0.0.1"


def test_health_is_200_while_serving_and_503_while_draining(proxied):
    running = proxied(health="/healthz")
    response, body = fetch(running.port, "/healthz")
    assert (response.status, body) == (200, b"ok\n")
    assert response.getheader("Cache-Control") == "no-store"
    assert fetch(running.port, "/other")[1] == b"127.0.0.1"
    with connect(running.port) as sock:
        sock.sendall(GET)
        sock.recv(65536)
        running.server.loop.call_soon_threadsafe(running.server.shutdown, 5)
        assert wait_until(lambda: running.server.draining)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        reply = read_until_close(sock)
    assert reply.startswith(b"HTTP/1.1 503") and b"Connection: close" in reply


@pytest.mark.parametrize("options, preamble, field", [
    (dict(forwarded_allow_ips=("127.0.0.1",)), b"", b"X-Forwarded-For: 10.9.9.9\r\n"),
    (dict(proxy_protocol="v1", trusted_proxies=("127.0.0.1",), forwarded_allow_ips=("10.9.9.9",)),
     b"PROXY TCP4 10.9.9.9 10.0.0.1 4000 80\r\n", b""),
])
def test_wsgi_sees_the_client_and_scheme(server_factory, monkeypatch, options, preamble, field):
    environs = []

    def app(environ, start_response):
        environs.append((environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hi"]

    module = type(sys)("forwarded_wsgi_app")
    module.app = app
    monkeypatch.setitem(sys.modules, "forwarded_wsgi_app", module)
    running = server_factory(wsgi="forwarded_wsgi_app:app", **options)
    exchange(running.port, preamble + b"GET / HTTP/1.1\r\nHost: t\r\n" + field
             + b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
    assert environs == [("10.9.9.9", "https")]
