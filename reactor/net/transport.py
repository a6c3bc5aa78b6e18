"""What lies below a connection: the bytes in and out of one socket, and when they can move.

A connection reads with `recv_into`, writes with `send` and `sendfile(in_fd, offset, count)`,
half-closes with `shutdown`, says which readiness it waits for with `watch(reader, writer)` and
ends with `close`. Errors are the socket's: BlockingIOError when nothing can move now, another
OSError when the peer is gone. A TLS transport (tls.py) offers the same names, so nothing above
this layer knows which one it has.

The plain transport's methods are the socket's own, bound once per connection, so the plain
path costs no Python call of its own. A transport may replace a method during its life (after a
handshake, say): callers look them up on the transport each time and never keep them.
"""

import functools
import logging
import os
import socket
import ssl

from ..http import limits
from .tls import kernel_tls_active

log = logging.getLogger("reactor")


def _send_file_fallback(out_fd, in_fd, offset, count):
    data = os.pread(in_fd, count, offset)
    return os.write(out_fd, data) if data else 0


send_file = getattr(os, "sendfile", _send_file_fallback)

# The first byte of a TLS handshake record (a ClientHello); no HTTP request starts with it.
TLS_HANDSHAKE_RECORD = 0x16


class PlainTransport:
    """`raw`: the bytes go to and from the socket's descriptor as they are, so the fast lane
    may read and write `fd` itself (NativeLane) once `checked` says that the first read, the
    one that turns away a TLS client, is done."""

    __slots__ = ("sock", "loop", "fd", "checked", "recv_into", "send", "sendfile", "shutdown",
                 "watch")

    raw = True

    alpn = None              # no TLS, no protocol negotiated: the first bytes decide
    kernel_sendfile = True   # sendfile moves file bytes without a copy through Python

    def __init__(self, loop, sock):
        self.sock = sock
        self.loop = loop
        self.fd = fd = sock.fileno()
        self.checked = False
        self.recv_into = self._first_recv_into
        self.send = sock.send
        self.sendfile = functools.partial(send_file, fd)
        self.shutdown = sock.shutdown
        self.watch = functools.partial(loop.watch, fd)

    def _first_recv_into(self, buffer):
        return self.first_read(buffer, self.sock.recv_into(buffer))

    def first_read(self, buffer, n: int) -> int:
        """The first read, of n bytes at the start of `buffer`, made here or by the fast lane
        as the connection was accepted: it turns away a TLS client on this plain port quietly
        (no HTTP error it could not read anyway); later reads are the socket's own."""
        self.recv_into = self.sock.recv_into
        self.checked = True
        if n and buffer[0] == TLS_HANDSHAKE_RECORD:
            log.debug("TLS handshake on the plain port; closing")
            raise ConnectionAbortedError("TLS on a plain port")
        return n

    def close(self):
        self.loop.closing(self.fd)
        try:
            self.sock.close()
        except OSError:
            pass


class TLSTransport:
    """TLS over a non-blocking socket, driven by the loop's readiness events from the first
    byte: the handshake runs inside `recv_into` until it completes.

    OpenSSL's wants are mapped onto the loop. A read that needs the socket writable (or a
    write that needs it readable) registers for that event and retries the same operation
    then, with nothing else registered meanwhile, so a level-triggered loop never spins.
    Decrypted bytes left in OpenSSL's buffer (`pending`) are delivered at once, as the socket
    will not become readable for them. Records are read and written through the SSL object's
    own methods, two Python frames shorter than SSLSocket's.
    """

    __slots__ = ("sock", "loop", "fd", "client", "recv_into", "send", "sendfile", "shutdown",
                 "reader", "writer", "read_wants_write", "write_wants_read", "chunk",
                 "refusal", "kernel_tls", "open", "alpn", "kernel_sendfile", "_read", "_write",
                 "_pending")

    raw = False   # records, not the bytes of requests, are what the descriptor carries

    def __init__(self, loop, sock, context, refusal, client, kernel_tls: bool):
        """`refusal()` renders what a client speaking plain HTTP to this port is sent before
        the close; `kernel_tls` asks to check, after the handshake, whether the kernel took over
        encryption (then files go out with sendfile)."""
        self.sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self.loop = loop
        self.fd = self.sock.fileno()
        self.client = client
        self.refusal = refusal
        self.kernel_tls = kernel_tls
        self.reader = self.writer = None
        self.read_wants_write = self.write_wants_read = False
        self.chunk = None      # file bytes read but not yet taken by OpenSSL
        self.open = False      # handshake done, close_notify not sent yet
        self.alpn = None       # the protocol ALPN chose, once the handshake is done
        self.kernel_sendfile = False   # until the kernel is found to encrypt (kTLS)
        self.recv_into = self._handshake
        self.send = self._send
        self.sendfile = self._send_file
        self.shutdown = self._shutdown

    # -- readiness -----------------------------------------------------------------------------

    def watch(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self._register()
        if reader is not None and self.open and self._pending():
            self.loop.call_soon(self._deliver_pending)

    def _register(self):
        if self.read_wants_write:
            reader, writer = None, self._retry
        elif self.write_wants_read:
            reader, writer = self._retry, None
        else:
            reader, writer = self.reader, self.writer
        self.loop.watch(self.fd, reader, writer)

    def _retry(self):
        """The socket is ready for what OpenSSL asked: redo the operation that asked."""
        callback = (self.reader if self.read_wants_write else self.writer) or self.reader \
            or self.writer
        self.read_wants_write = self.write_wants_read = False
        self._register()
        if callback is not None:
            callback()

    def _read_blocked_on_write(self) -> BlockingIOError:
        """A read needs the socket writable first: wait for that instead of readability."""
        self.read_wants_write = True
        self._register()
        return BlockingIOError()

    def _deliver_pending(self):
        if self.reader is not None and self.open and self._pending():
            self.reader()

    # -- handshake -----------------------------------------------------------------------------

    def _handshake(self, buffer):
        sock = self.sock
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            raise BlockingIOError from None
        except ssl.SSLWantWriteError:
            raise self._read_blocked_on_write() from None
        except ssl.SSLError as error:
            self._handshake_failed(error)
        sslobj = sock._sslobj
        self._read = sslobj.read
        self._write = sslobj.write
        self._pending = sslobj.pending
        self.open = True
        self.alpn = sock.selected_alpn_protocol()
        self.recv_into = self._recv
        if self.kernel_tls and kernel_tls_active(sock):
            self.sendfile = functools.partial(send_file, self.fd)
            self.kernel_sendfile = True
        return self._recv(buffer)

    def _handshake_failed(self, error):
        if error.reason in ("HTTP_REQUEST", "HTTPS_PROXY_REQUEST"):
            self._refuse_plain_http()
        else:
            log.debug("TLS handshake with %s failed: %s", self.client[0],
                      error.reason or error.strerror or error)
        raise ConnectionAbortedError("TLS handshake failed") from None

    def _refuse_plain_http(self):
        """Answer a plain-HTTP request in plain text, as nginx does, and drain what the
        client sent so that the close does not reset the answer away."""
        raw = socket.socket
        try:
            raw.send(self.sock, self.refusal())
            raw.shutdown(self.sock, socket.SHUT_WR)
            while raw.recv(self.sock, 65536):
                pass
        except OSError:
            pass

    # -- data ----------------------------------------------------------------------------------

    def _recv(self, buffer):
        try:
            n = self._read(len(buffer), buffer)
        except ssl.SSLWantReadError:
            raise BlockingIOError from None
        except ssl.SSLWantWriteError:
            raise self._read_blocked_on_write() from None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return 0   # close_notify, or the peer closed without one
        if n and self._pending():
            self.loop.call_soon(self._deliver_pending)
        return n

    def _send(self, data, flags=0):
        """Write all of `data` that the socket takes now. OpenSSL writes one record per call
        (partial-write mode); after a want, the same bytes are retried, as it requires."""
        write = self._write
        sent = 0
        try:
            sent = write(data)
            if sent == len(data):
                return sent
            view = memoryview(data)
            while sent < len(view):
                sent += write(view[sent:])
            return sent
        except ssl.SSLWantWriteError:
            pass
        except ssl.SSLWantReadError:
            self.write_wants_read = True
            self._register()
        except ssl.SSLError as error:
            raise ConnectionResetError(error.reason or str(error)) from None
        if sent:
            return sent
        raise BlockingIOError

    def _send_file(self, in_fd, offset, count):
        """Read the file in record-sized pieces into a bounded buffer and encrypt them; 0
        when the file has nothing at `offset` any more (it shrank)."""
        chunk = self.chunk
        if chunk is None:
            chunk = os.pread(in_fd, min(count, limits.TLS_FILE_CHUNK), offset)
            if not chunk:
                return 0
            self.chunk = chunk
        sent = self._send(chunk)
        self.chunk = memoryview(chunk)[sent:] if sent < len(chunk) else None
        return sent

    # -- closing -------------------------------------------------------------------------------

    def _close_notify(self):
        """Send close_notify once, without waiting for the peer's."""
        if self.open:
            self.open = False
            try:
                self.sock._sslobj.shutdown()
            except (ssl.SSLError, OSError, ValueError):
                pass

    def _shutdown(self, how):
        self._close_notify()
        socket.socket.shutdown(self.sock, how)
        # What arrives after close_notify is read only to be discarded (the linger).
        self.recv_into = functools.partial(socket.socket.recv_into, self.sock)

    def close(self):
        self.reader = self.writer = None
        self.chunk = None
        self._close_notify()
        self.loop.closing(self.fd)
        try:
            self.sock.close()
        except OSError:
            pass
