"""Certificates and the TLS settings of the server: one SSLContext per certificate, chosen by SNI.

Imports only errors. Builds contexts with safe defaults (TLS 1.2 and 1.3, forward-secret AEAD
ciphers, no compression, no renegotiation, ALPN h2 and http/1.1, or http/1.1 alone) and reloads the files on request,
keeping the old contexts when the new files are bad. Knows nothing of sockets or HTTP: the TLS
transport (transport.py) wraps connections with `Certificates.context`.

Session resumption: OpenSSL issues stateless tickets whose keys it draws when a context is
created, and Python's ssl cannot set them. Contexts built before the workers are forked are
copied into every worker, so a ticket one worker issued is accepted by all; the keys change
whenever the certificates are reloaded or the server restarts.
"""

import logging
import socket
import ssl

from ..http.errors import ConfigError

log = logging.getLogger("reactor")

# Mozilla's "intermediate" profile, TLS 1.2 part, without the DHE suites (no DH parameters are
# loaded, so OpenSSL would never pick them): forward-secret ECDHE with AEAD ciphers only. TLS 1.3
# suites are OpenSSL's defaults, which are all AEAD; Python's ssl cannot restrict them further.
TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))

# What ALPN offers: h2 first where the server speaks it (the client's list decides between
# equals; CPython's server callback keeps our order, so h2 wins when both offer it).
ALPN = ["http/1.1"]
ALPN_H2 = ["h2", "http/1.1"]

# Key exchange groups of Mozilla's profile. Python's ssl sets a list only from the version that
# has SSLContext.set_groups; before it OpenSSL's defaults stay, which add X448 and P-521 (both
# strong, but beyond the profile): its one-curve setting would cost clients that lead with
# another group a round trip.
GROUPS = "X25519:prime256v1:secp384r1"

# SSL_OP_ENABLE_KTLS of OpenSSL 3; Python names it only from 3.12 on.
OP_ENABLE_KTLS = getattr(ssl, "OP_ENABLE_KTLS", 1 << 3)

# Linux's TCP_ULP socket option: reads "tls" once the kernel encrypts for the socket.
TCP_ULP = 31


def kernel_tls_available() -> bool:
    """Whether kernel TLS can be used at all: OpenSSL 3 and the kernel's `tls` module."""
    if ssl.OPENSSL_VERSION_INFO < (3,):
        return False
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as ulp:
            return "tls" in ulp.read().split()
    except OSError:
        return False


def kernel_tls_active(sock) -> bool:
    """Whether the kernel now encrypts what is written to `sock` (kTLS TX is on)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, TCP_ULP, 16).rstrip(b"\0") == b"tls"
    except OSError:
        return False


def load_certificates(config) -> "Certificates":
    """The Certificates a Config names; ConfigError with one line when a file is bad."""
    keys = list(config.tls_key) + [None] * (len(config.tls_cert) - len(config.tls_key))
    return Certificates(list(zip(config.tls_cert, keys)), config.tls_password_file)


class Certificates:
    """The server's certificates (cert file, key file) pairs; the first is the default, the
    others are chosen by the name the client asks for (SNI). `context` is what new
    connections are wrapped with; `reload()` re-reads the files."""

    def __init__(self, pairs, password_file=None, ktls=None, alpn=ALPN):
        self.pairs = [(cert, key or cert) for cert, key in pairs]
        self.password_file = password_file
        self.ktls = kernel_tls_available() if ktls is None else ktls
        self.alpn = alpn
        self.context, self._by_name = self._load()

    def offer(self, protocols):
        """ALPN offers `protocols` from now on (the server that serves with these
        certificates knows whether it speaks h2)."""
        self.alpn = protocols
        for context in {self.context, *self._by_name.values()}:
            context.set_alpn_protocols(protocols)

    def reload(self) -> bool:
        """Re-read every file; on any error keep the contexts in use and log one line."""
        try:
            self.context, self._by_name = self._load()
        except ConfigError as error:
            log.error("certificates not reloaded, the previous ones stay in use: %s", error)
            return False
        log.info("certificates reloaded")
        return True

    def _load(self):
        password = _read_password(self.password_file) if self.password_file else None
        contexts = [self._context(cert, key, password) for cert, key in self.pairs]
        by_name = {}
        for (cert, _key), context in zip(self.pairs, contexts):
            for name in _names(cert):
                by_name.setdefault(name, context)
        default = contexts[0]
        if len(contexts) > 1:
            default.sni_callback = self._choose
        return default, by_name

    def _choose(self, sslobj, name, default_context):
        if name:
            name = name.lower()
            by_name = self._by_name
            context = by_name.get(name) or by_name.get("*." + name.partition(".")[2])
            if context is not None and context is not default_context:
                sslobj.context = context
        return None   # no name, or an unknown one: the default certificate answers

    def _context(self, cert, key, password) -> ssl.SSLContext:
        for path, what in ((cert, "certificate"), (key, "key")):
            try:
                with open(path, "rb") as file:
                    text = file.read()
            except OSError as error:
                raise ConfigError(f"cannot read TLS {what} {path}: {error.strerror}") from None
            marker = b"-----BEGIN CERTIFICATE-----" if what == "certificate" else b"PRIVATE KEY-----"
            if marker not in text:
                raise ConfigError(f"TLS {what} {path} holds no PEM {what}")
        encrypted = b"ENCRYPTED" in text
        if encrypted and password is None:
            raise ConfigError(f"TLS key {key} is encrypted: give its password with "
                              f"--tls-password-file")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = ssl.TLSVersion.TLSv1_3
        context.set_ciphers(TLS12_CIPHERS)
        context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
        # Every suite offered is strong, so the client's order (its hardware) decides, as
        # Mozilla's profile recommends.
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        if self.ktls:
            context.options |= OP_ENABLE_KTLS
        context.set_alpn_protocols(self.alpn)
        if hasattr(context, "set_groups"):
            context.set_groups(GROUPS)
        try:
            # A callable, so that OpenSSL never prompts on the terminal for a password.
            context.load_cert_chain(cert, key, password=lambda: password or b"")
        except ssl.SSLError as error:
            if error.reason == "KEY_VALUES_MISMATCH":
                raise ConfigError(f"TLS key {key} does not match certificate {cert}") from None
            if encrypted:
                raise ConfigError(f"wrong password for TLS key {key} "
                                  f"(from {self.password_file})") from None
            raise ConfigError(f"cannot load TLS certificate {cert} with key {key}: "
                              f"{error.reason or error.strerror or error}") from None
        return context


def _read_password(path) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.readline().rstrip(b"\r\n")
    except OSError as error:
        raise ConfigError(f"cannot read --tls-password-file {path}: {error.strerror}") from None


def _names(cert_path) -> list:
    """The DNS names a certificate file's leaf certificate is valid for, lower-cased."""
    try:
        decoded = ssl._ssl._test_decode_cert(cert_path)   # the only stdlib X.509 reader
    except (AttributeError, ssl.SSLError, OSError):
        return []
    names = [value.lower() for kind, value in decoded.get("subjectAltName", ()) if kind == "DNS"]
    if not names:
        for rdn in decoded.get("subject", ()):
            names.extend(value.lower() for key, value in rdn if key == "commonName")
    return names

