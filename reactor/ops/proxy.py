"""The PROXY protocol (HAProxy's `doc/proxy-protocol.txt`, v1 and v2): a balancer in TCP mode
puts the client's address in a header before the first byte of the connection's own data.

`parse_header` is pure: bytes in, the header's length and the source address out. `HeaderReader`
reads the header of a new connection from the socket (before HTTP, before a TLS handshake),
consuming exactly the header so that what follows stays in the kernel for the connection, and
then admits the connection with the address found. Only peers in the trusted networks are
expected to send one; the header is never guessed at: from a trusted peer it must be there and
be valid, or the connection is closed. Untrusted peers are served as they are, under their own
address, so a client cannot forge one (a header from them is a 400 from the HTTP parser).

Imports nothing of the server or HTTP: it is handed the loop and an `admit` callable.
"""

import ipaddress
import logging
import socket
import struct

log = logging.getLogger("reactor")

V1_PREFIX = b"PROXY "
V1_MAX = 107                 # the longest v1 line the specification allows, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16                # signature, version/command, family, length

# A v2 header may carry TLVs (AWS sends its own); more than this is no header of a balancer
# we know and would only hold memory for a connection that sent nothing else.
MAX_HEADER = 4096

_V2_ADDRESSES = {0x11: (12, "!4s4sHH", socket.AF_INET),     # TCP over IPv4
                 0x21: (36, "!16s16sHH", socket.AF_INET6)}  # TCP over IPv6
_V2_UNSPEC, _V2_UNIX_STREAM = 0x00, 0x31

VERSIONS = ("v1", "v2", "auto")


class HeaderError(ValueError):
    """The bytes are not a valid PROXY header of the version expected."""


def parse_header(data: bytes, version: str = "auto"):
    """(length of the header, (host, port) of the source or None to keep the peer's), or None
    when `data` is a valid beginning but the header is not complete yet. Raises HeaderError."""
    if version == "auto":
        if not data:
            return None
        version = "v2" if data[0] == V2_SIGNATURE[0] else "v1"
    if version == "v1":
        return _parse_v1(data)
    return _parse_v2(data)


def _parse_v1(data: bytes):
    if not (data.startswith(V1_PREFIX) or V1_PREFIX.startswith(data[:len(V1_PREFIX)])):
        raise HeaderError("not a PROXY v1 header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise HeaderError("PROXY v1 line longer than 107 bytes")
        if b"\n" in data or b"\r" in data[:-1]:
            raise HeaderError("PROXY v1 line not ended by CRLF")
        return None
    parts = data[len(V1_PREFIX):end].split(b" ")
    if parts[0] == b"UNKNOWN":
        return end + 2, None   # the rest of the line is to be ignored
    if len(parts) != 5 or parts[0] not in (b"TCP4", b"TCP6"):
        raise HeaderError("PROXY v1 line is not TCP4/TCP6 src dst sport dport")
    family = 4 if parts[0] == b"TCP4" else 6
    source = _address(parts[1], family)
    _address(parts[2], family)
    port = _port(parts[3])
    _port(parts[4])
    return end + 2, (source, port)


def _address(text: bytes, family: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise HeaderError(f"PROXY v1 address {text[:64]!r} is not valid") from None
    if address.version != family:
        raise HeaderError(f"PROXY v1 address {text[:64]!r} is not IPv{family}")
    return str(address)


def _port(text: bytes) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == 0x30) or int(text) > 65535:
        raise HeaderError(f"PROXY v1 port {text[:16]!r} is not valid")
    return int(text)


def _parse_v2(data: bytes):
    if not V2_SIGNATURE.startswith(data[:len(V2_SIGNATURE)]):
        raise HeaderError("not a PROXY v2 header")
    if len(data) < V2_FIXED:
        return None
    version_command, family, length = data[12], data[13], struct.unpack_from("!H", data, 14)[0]
    if version_command >> 4 != 2:
        raise HeaderError(f"PROXY v2 version {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        raise HeaderError(f"PROXY v2 command {command}")
    total = V2_FIXED + length
    if total > MAX_HEADER:
        raise HeaderError(f"PROXY v2 header of {total} bytes")
    known = _V2_ADDRESSES.get(family)
    if known is None and family not in (_V2_UNSPEC, _V2_UNIX_STREAM):
        raise HeaderError(f"PROXY v2 family 0x{family:02x} is not a stream")
    if known is not None and length < known[0]:
        raise HeaderError("PROXY v2 addresses are cut short")
    if len(data) < total:
        return None
    if command == 0 or known is None:
        return total, None   # LOCAL (the balancer's own health check), or no IP to take
    size, layout, address_family = known
    source, _, source_port, _ = struct.unpack_from(layout, data, V2_FIXED)
    return total, (socket.inet_ntop(address_family, source), source_port)


class HeaderReader:
    """Called with each accepted socket: reads the PROXY header of a trusted peer, then calls
    `admit(sock, client)`; an untrusted peer is admitted at once under its own address."""

    def __init__(self, loop, version: str, trusted, timeout: float):
        self.loop = loop
        self.version = version
        self.trusted = trusted      # a Networks
        self.timeout = timeout

    def __call__(self, sock, peer, admit):
        if peer not in self.trusted:
            admit(sock, peer)
            return
        _Pending(self, sock, peer, admit)


class _Pending:
    """One connection whose header is still arriving."""

    __slots__ = ("reader", "sock", "peer", "admit", "seen", "done")

    def __init__(self, reader, sock, peer, admit):
        self.reader = reader
        self.sock = sock
        self.peer = peer
        self.admit = admit
        self.seen = b""
        self.done = False
        reader.loop.watch(sock.fileno(), self.on_readable, None)
        reader.loop.call_later(reader.timeout, self.expire)

    def on_readable(self):
        sock = self.sock
        try:
            # Peek, so that nothing after the header is taken from the kernel's buffer.
            data = sock.recv(MAX_HEADER - len(self.seen), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.fail(None)
            return
        if not data:
            self.fail(None)
            return
        try:
            found = parse_header(self.seen + data, self.reader.version)
        except HeaderError as error:
            self.fail(str(error))
            return
        if found is None:
            # Every byte of an incomplete header is header: take them, wait for more.
            self.seen += sock.recv(len(data))
            if len(self.seen) >= MAX_HEADER:
                self.fail("PROXY header too long")
            return
        length, source = found
        sock.recv(length - len(self.seen))
        self.done = True
        self.reader.loop.forget(sock.fileno())
        self.admit(sock, source or self.peer)

    def expire(self):
        if not self.done:
            self.fail("no complete PROXY header in time")

    def fail(self, reason):
        if self.done:
            return
        self.done = True
        if reason:
            log.info("closing a connection from %s: %s", self.peer[0], reason)
        self.reader.loop.forget(self.sock.fileno())
        self.sock.close()


class Networks:
    """Addresses and networks given as `10.0.0.0/8,127.0.0.1,::1` (or `*` for every address,
    `unix` for unix-socket peers); `(host, port) in networks` says whether host is one."""

    def __init__(self, specs):
        self.everything = False
        self.unix = False
        self.networks = []
        for spec in specs:
            for item in filter(None, (part.strip() for part in spec.split(","))):
                if item == "*":
                    self.everything = True
                elif item == "unix":
                    self.unix = True
                else:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
        self._known = {}

    def __bool__(self):
        return self.everything or self.unix or bool(self.networks)

    def __contains__(self, peer) -> bool:
        return self.trusts(peer[0])

    def trusts(self, host: str) -> bool:
        if self.everything:
            return True
        if host == "unix":
            return self.unix
        known = self._known.get(host)
        if known is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            if address.version == 6 and address.ipv4_mapped:
                address = address.ipv4_mapped
            known = any(address in network for network in self.networks)
            if len(self._known) < 4096:   # clients repeat; a scan of the internet need not
                self._known[host] = known
        return known
