"""The known HTTP/2 attacks, over sockets, on both engines: each is answered with the GOAWAY (or
RST_STREAM) code RFC 9113 names, counted in the metrics, and costs an ordinary client on
another connection nothing it would notice.

Frames are written by hand (hyperframe, hpack) where the client's state machine would refuse
to write them. Budgets: reactor.http.limits (H2_*).
"""

import threading
import time

import hpack
import pytest
from h2client import (
    ContinuationFrame,
    DataFrame,
    H2Client,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from netutil import fetch, wait_until

from reactor.http import limits
from reactor.http.h2 import CANCEL, ENHANCE_YOUR_CALM, PROTOCOL_ERROR

FLOOD = limits.H2_GLITCH_BURST + 100


@pytest.fixture
def server(server_factory, h2_site, engine):
    return server_factory(root=str(h2_site), http2_engine=engine, metrics="/metrics",
                          send_timeout=1)


def settled(server) -> H2Client:
    """A client whose SETTINGS exchange is done (the server's limits are in force)."""
    client = H2Client(server.port)
    assert client.get("/index.html").status == 200
    return client


def block(stream_id, method=b"GET", path=b"/index.html", extra=(), encoder=None):
    """An HPACK header block of a request."""
    encoder = encoder or hpack.Encoder()
    return encoder.encode([(b":method", method), (b":scheme", b"http"),
                           (b":authority", b"localhost"), (b":path", path), *extra])


def frames(*items) -> bytes:
    return b"".join(frame.serialize() for frame in items)


def metric(server, name) -> float:
    text = fetch(server.port, "/metrics")[1].decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def assert_calmed(server, client, reason):
    code, _last = client.until_goaway()
    assert code == ENHANCE_YOUR_CALM
    client.until_closed()
    assert wait_until(lambda: metric(server, f'reactor_http2_goaways_total{{reason="{reason}"}}')
                      == 1)


def test_rapid_reset_gets_enhance_your_calm(server):
    """CVE-2023-44487: requests cancelled as soon as they are sent."""
    client = settled(server)
    for _ in range(limits.H2_RESET_BURST + 100):
        stream_id = client.conn.get_next_available_stream_id()
        client.conn.send_headers(stream_id, [(b":method", b"GET"), (b":scheme", b"http"),
                                             (b":authority", b"x"), (b":path", b"/")])
        client.conn.reset_stream(stream_id, CANCEL)
    client.flush()
    assert_calmed(server, client, "resets")


def test_ping_flood_gets_enhance_your_calm(server):
    client = settled(server)
    client.raw(frames(*(PingFrame(0, opaque_data=b"%08d" % i) for i in range(FLOOD))))
    assert_calmed(server, client, "glitches")


def test_settings_flood_gets_enhance_your_calm(server):
    client = settled(server)
    client.raw(frames(*(SettingsFrame(0) for _ in range(FLOOD))))
    assert_calmed(server, client, "glitches")


def test_window_update_flood_gets_enhance_your_calm(server):
    client = settled(server)
    client.raw(frames(*(WindowUpdateFrame(0, window_increment=1) for _ in range(FLOOD))))
    assert_calmed(server, client, "glitches")


def test_empty_data_flood_gets_enhance_your_calm(server):
    client = settled(server)
    upload = client.request("/index.html", method="POST", end=False)
    client.raw(frames(*(DataFrame(upload) for _ in range(FLOOD))))
    assert_calmed(server, client, "glitches")


def test_provoked_resets_count_against_the_peer(server, engine):
    """CVE-2025-8671 (MadeYouReset): requests malformed in a way that is a stream error
    (a connection-specific field, RFC 9113 §8.2.2) make the server send RST_STREAM. libnghttp2
    keeps the connection, so each reset spends the glitch budget, until ENHANCE_YOUR_CALM; the
    h2 package makes the first one a connection error (PROTOCOL_ERROR): no run of resets."""
    client = settled(server)
    encoder = hpack.Encoder()
    stream_id = 3
    for _ in range(60):
        items = []
        for _ in range(50):
            items.append(HeadersFrame(stream_id, block(stream_id, extra=[(b"connection", b"x")],
                                                       encoder=encoder),
                                      flags=["END_HEADERS", "END_STREAM"]))
            stream_id += 2
        try:
            client.raw(frames(*items))
        except OSError:
            break
        client.sock.settimeout(0.2)
        try:
            while client.goaway is None and client.read_once():
                pass
        except TimeoutError:
            pass
        if client.goaway is not None or client.closed:
            break
    client.sock.settimeout(5)
    code = client.until_goaway()[0]
    if engine == "nghttp2":
        assert code == ENHANCE_YOUR_CALM
        client.until_closed()
        assert wait_until(lambda: metric(
            server, 'reactor_http2_guard_events_total{event="resets_sent"}') >= 100)
    else:
        assert code == PROTOCOL_ERROR and stream_id == 3 + 2 * 50
        assert wait_until(lambda: metric(
            server, 'reactor_http2_goaways_total{reason="protocol"}') == 1)


def test_continuation_flood_gets_enhance_your_calm(server):
    """CVE-2024-27316 and kin: a header block that never ends."""
    client = settled(server)
    items = [HeadersFrame(3, block(3, encoder=hpack.Encoder()), flags=["END_STREAM"])]
    items += [ContinuationFrame(3, b"") for _ in range(limits.H2_MAX_CONTINUATIONS + 20)]
    client.raw(frames(*items))
    assert_calmed(server, client, "continuations")


def test_hpack_bomb_gets_enhance_your_calm(server):
    """One indexed 4 KB field referenced a hundred times: a few hundred bytes on the wire,
    400 KB decoded."""
    client = settled(server)
    client.request("/index.html", headers=[("x-bomb", "b" * 4000)] * 100)
    assert_calmed(server, client, "hpack_bomb")


def test_header_list_over_the_limit_gets_431(server):
    client = settled(server)
    fields = [(f"x-field-{i}", "v" * 2000) for i in range(20)]   # 40 KB, distinct
    response = client.get("/index.html", headers=fields)
    assert response.status == 431
    assert client.get("/index.html").status == 200   # the connection goes on
    client.close()


def test_too_many_streams_is_a_protocol_error(server):
    """SETTINGS_MAX_CONCURRENT_STREAMS is 100: the 101st open stream, once our SETTINGS
    were acknowledged, ends the connection (RFC 9113 §5.1.2)."""
    client = settled(server)
    encoder = hpack.Encoder()
    items = [HeadersFrame(s, block(s, b"POST", encoder=encoder), flags=["END_HEADERS"])
             for s in range(3, 3 + 2 * (limits.H2_MAX_CONCURRENT_STREAMS + 1), 2)]
    client.raw(frames(*items))
    assert client.until_goaway()[0] == PROTOCOL_ERROR


def test_a_window_that_never_opens_resets_the_stream_after_send_timeout(server_factory, h2_site,
                                                                        engine):
    server = server_factory(root=str(h2_site), http2_engine=engine, send_timeout=1)
    client = H2Client(server.port, settings={0x4: 0})   # INITIAL_WINDOW_SIZE 0
    stalled = client.request("/mid.bin")
    started = time.monotonic()
    response = client.response(stalled)
    assert response.status == 200 and response.body == b""
    assert response.reset == CANCEL
    assert 0.9 < time.monotonic() - started < 4
    assert client.get("/mid.bin", method="HEAD").status == 200   # the connection goes on
    assert server.server.h2_goaways == {"send_timeout": 1}


def test_a_connection_window_that_never_opens_resets_its_streams(server_factory, h2_site,
                                                                   engine):
    """Stream windows wide open, the connection's never given back: after 64 KiB every stream
    stalls, and each is reset after send_timeout; the connection then idles out."""
    server = server_factory(root=str(h2_site), http2_engine=engine, send_timeout=0.5)
    client = H2Client(server.port, settings={0x4: 2 ** 31 - 1}, acknowledge=False)
    response = client.get("/big.bin")
    assert response.reset == CANCEL and len(response.body) == 65535


def test_a_client_that_stops_reading_is_closed_after_send_timeout(server_factory, h2_site,
                                                                 engine):
    server = server_factory(root=str(h2_site), http2_engine=engine, send_timeout=1)
    client = H2Client(server.port, settings={0x4: 2 ** 31 - 1}, receive_buffer=4096)
    client.conn.increment_flow_control_window(2 ** 31 - 1 - 65535)
    client.request("/big.bin")   # 3 MiB, never read: the socket fills
    assert wait_until(lambda: len(server.server.connections) == 1)
    assert wait_until(lambda: not server.server.connections, timeout=5)


def test_an_ordinary_client_is_served_during_a_flood(server):
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            attacker = settled(server)
            attacker.raw(frames(*(PingFrame(0) for _ in range(FLOOD))))
            attacker.until_closed()

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        client = settled(server)
        times = []
        for _ in range(30):
            started = time.monotonic()
            assert client.get("/index.html").status == 200
            times.append(time.monotonic() - started)
        assert max(times) < 0.5
    finally:
        stop.set()
        thread.join(5)
    assert metric(server, 'reactor_http2_goaways_total{reason="glitches"}') >= 1


def test_engine_memory_is_counted_while_connections_are_open(server, engine):
    """reactor_http2_engine_bytes: what libnghttp2 holds for the open HTTP/2 connections (the
    shim's allocator counts it, its frame buffer of 16 KiB among it), none once they closed;
    the `h2` package's engine cannot tell and says 0."""
    client = settled(server)
    held = metric(server, "reactor_http2_engine_bytes")
    client.close()
    assert wait_until(lambda: metric(server, "reactor_http2_engine_bytes") == 0)
    if engine == "nghttp2":
        assert held > 16 * 1024
    else:
        assert held == 0
