"""A raw HTTP/2 client for tests, on the `h2` package: requests, responses, and frames written by
hand for the attacks (hyperframe), over plain TCP (prior knowledge) or TLS (ALPN h2).

GOAWAY frames are taken out of what the package reads and recorded here: its state machine
would stop at the first one, and a server that drains answers the open streams after it."""

import socket
import ssl

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from netutil import connect

__all__ = ["H2Client", "Response", "ContinuationFrame", "DataFrame", "HeadersFrame", "PingFrame",
           "SettingsFrame", "WindowUpdateFrame"]


class Response:
    def __init__(self):
        self.status = None
        self.headers = []
        self.body = b""
        self.ended = False
        self.reset = None     # the RST_STREAM error code, when the server reset the stream

    def header(self, name: bytes):
        return next((value for key, value in self.headers if key == name), None)


class H2Client:
    """One connection. `settings` are sent with the preface (h2.settings.SettingCodes keys);
    with `acknowledge` False, received DATA never opens the windows again; `receive_buffer`
    shrinks the socket's (set before connecting, so the TCP window stays small too); `prefix`
    is written before the preface (a PROXY protocol header); with `validate` False, the
    fields of requests are sent as given (a Host that disagrees with :authority)."""

    def __init__(self, port, context: ssl.SSLContext = None, settings=None, timeout=5.0,
                 acknowledge=True, receive_buffer=None, prefix=b"", validate=True):
        if receive_buffer is None:
            sock = connect(port, timeout)
        else:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
        if prefix:
            sock.sendall(prefix)
        if context is not None:
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                           validate_outbound_headers=validate)
        self.conn = h2.connection.H2Connection(config)
        self.conn.local_settings = h2.settings.Settings(client=True,
                                                        initial_values=settings or {})
        self.conn.initiate_connection()
        self.responses = {}
        self.goaway = None          # (error code, last stream id) of the server's last GOAWAY
        self.goaways = []
        self.closed = False
        self.acknowledge = acknowledge
        self._pending = b""         # received bytes not yet a whole frame
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", headers=(), body=None, end=True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"http"),
                  (b":authority", b"localhost"), (b":path", path.encode()),
                  *((name.encode() if isinstance(name, str) else name,
                     value.encode() if isinstance(value, str) else value)
                    for name, value in headers)]
        self.conn.send_headers(stream_id, fields, end_stream=end and body is None)
        self.responses[stream_id] = Response()
        if body is not None:
            self.send_body(stream_id, body, end)
        self.flush()
        return stream_id

    def send_body(self, stream_id, body: bytes, end=True):
        """The body as fast as the windows allow, reading the server meanwhile."""
        sent = 0
        while sent < len(body):
            window = min(self.conn.local_flow_control_window(stream_id),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.flush()
                self.read_once()
                continue
            chunk = body[sent:sent + window]
            self.conn.send_data(stream_id, chunk)
            sent += len(chunk)
        if end:
            self.conn.end_stream(stream_id)
        self.flush()

    def raw(self, data: bytes):
        """Bytes written as they are (frames of an attack), past the state machine."""
        self.sock.sendall(data)

    def read_once(self) -> bool:
        """One read handled; False once the server closed."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(self._without_goaways(data))
        except h2.exceptions.ProtocolError:
            # Frames written by hand (raw) put the package out of step: from here on only
            # GOAWAY and the close are followed.
            return True
        for event in events:
            self._event(event)
        self.flush()
        return True

    def _without_goaways(self, data: bytes) -> bytes:
        data = self._pending + data
        kept = []
        at = 0
        while len(data) - at >= 9:
            length = int.from_bytes(data[at:at + 3], "big")
            end = at + 9 + length
            if end > len(data):
                break
            if data[at + 3] == 0x7:
                payload = data[at + 9:end]
                self.goaway = (int.from_bytes(payload[4:8], "big"),
                               int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF)
                self.goaways.append(self.goaway)
            else:
                kept.append(data[at:end])
            at = end
        self._pending = data[at:]
        return b"".join(kept)

    def _event(self, event):
        kind = event.__class__
        if kind is h2.events.ResponseReceived:
            response = self.responses.setdefault(event.stream_id, Response())
            response.headers = list(event.headers)
            response.status = int(dict(event.headers)[b":status"])
            if event.stream_ended is not None:
                response.ended = True
        elif kind is h2.events.DataReceived:
            response = self.responses[event.stream_id]
            response.body += event.data
            if self.acknowledge:
                self.conn.acknowledge_received_data(event.flow_controlled_length,
                                                    event.stream_id)
            if event.stream_ended is not None:
                response.ended = True
        elif kind is h2.events.StreamEnded:
            self.responses[event.stream_id].ended = True
        elif kind is h2.events.StreamReset:
            self.responses.setdefault(event.stream_id, Response()).reset = event.error_code

    def response(self, stream_id) -> Response:
        """The stream's response, read until it ends or is reset (AssertionError if the
        connection closes first)."""
        response = self.responses[stream_id]
        while not (response.ended or response.reset is not None):
            assert self.read_once(), f"connection closed before stream {stream_id} ended"
        return response

    def get(self, path, **kwargs) -> Response:
        return self.response(self.request(path, **kwargs))

    def until_goaway(self):
        """Read until the server sends GOAWAY (or closes): its (error code, last stream id)."""
        while self.goaway is None and self.read_once():
            pass
        return self.goaway

    def until_closed(self):
        while self.read_once():
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
