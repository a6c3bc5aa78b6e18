"""HTTPS through real clients: Python's ssl with a verifying context, curl, openssl s_client.

Certificates come from trustme (a throwaway CA). Tests that need curl or openssl skip, with
that reason, where the tool is absent (.ci/run installs both).
"""

import email.utils
import hashlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest
import trustme
from netutil import connect, parse_responses, read_until_close

from reactor.config import Config
from reactor.http.h2 import ENGINE
from reactor.http.response import FileSlice, Response
from reactor.net.server import Server, open_listener
from reactor.net.tls import Certificates, kernel_tls_available

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="no openssl command here")
needs_curl = pytest.mark.skipif(CURL is None, reason="no curl command here")

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.fixture
def certificates(pki):
    return Certificates([(str(pki / "cert.pem"), str(pki / "key.pem"))])


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_bytes(b"<h1>hello over TLS</h1>")
    (root / "big.bin").write_bytes(os.urandom(10 * 1024 * 1024))
    (root / "mid.bin").write_bytes(os.urandom(100 * 1024))
    return root


@pytest.fixture
def https(server_factory, certificates, site):
    return server_factory(tls=certificates, root=str(site))


def tls_connect(port, context, hostname="localhost", **kwargs):
    return context.wrap_socket(connect(port), server_hostname=hostname, **kwargs)


def get(port, context, path="/", headers=None):
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


# -- serving -----------------------------------------------------------------------------------

def test_verifying_client_gets_the_page_on_a_kept_alive_connection(https, client_context):
    conn = http.client.HTTPSConnection("localhost", https.port, context=client_context, timeout=5)
    for _ in range(3):
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b"<h1>hello over TLS</h1>"
    sock = conn.sock
    assert sock.version() == "TLSv1.3" and sock.selected_alpn_protocol() is None
    conn.close()


def test_alpn_prefers_h2_and_tls12_uses_an_aead_ecdhe_suite(https, client_context):
    client_context.maximum_version = ssl.TLSVersion.TLSv1_2
    client_context.set_alpn_protocols(["http/1.1", "h2"])
    with tls_connect(https.port, client_context) as sock:
        name, version, _bits = sock.cipher()
        assert version == "TLSv1.2" and name.startswith("ECDHE-") and ("GCM" in name or "CHACHA" in name)
        # The server's order decides: h2 where it speaks HTTP/2.
        assert sock.selected_alpn_protocol() == ("h2" if ENGINE else "http/1.1")
        assert sock.compression() is None


def test_alpn_is_http11_without_http2(server_factory, certificates, site, client_context):
    server = server_factory(tls=certificates, root=str(site), http2=False)
    client_context.set_alpn_protocols(["h2", "http/1.1"])
    with tls_connect(server.port, client_context) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"


def test_weak_tls12_suites_are_refused(https, client_context):
    client_context.maximum_version = ssl.TLSVersion.TLSv1_2
    client_context.set_ciphers("AES128-SHA:AES256-SHA:ECDHE-RSA-AES128-SHA:AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError):
        tls_connect(https.port, client_context)


def test_large_and_mid_files_arrive_intact(https, client_context, site):
    for name in ("big.bin", "mid.bin"):
        response, body = get(https.port, client_context, "/" + name)
        assert response.status == 200
        assert hashlib.sha256(body).digest() == hashlib.sha256((site / name).read_bytes()).digest()


def test_pipelined_requests_are_all_answered(https, client_context):
    with tls_connect(https.port, client_context) as sock:
        sock.sendall(REQUEST * 40 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_close(sock)
    assert data.count(b"HTTP/1.1 200 OK") == 41


def test_requests_left_in_openssl_buffer_are_not_stranded(server_factory, certificates, site,
                                                          client_context):
    # A receive buffer smaller than one record leaves decrypted bytes inside OpenSSL, where
    # the socket's readiness cannot announce them.
    https = server_factory(tls=certificates, root=str(site))
    https.server.recv_buffer = bytearray(512)
    https.server.recv_view = memoryview(https.server.recv_buffer)
    with tls_connect(https.port, client_context) as sock:
        sock.settimeout(5)
        sock.sendall(REQUEST * 30)   # one write: a single record of ~1 KiB
        data = b""
        while data.count(b"HTTP/1.1 200 OK") < 30:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            data += chunk


def test_request_scheme_and_hsts(server_factory, certificates, client_context):
    def handler(request):
        return Response(200, [("Content-Type", "text/plain")], request.scheme.encode())

    https = server_factory(handler=handler, tls=certificates, hsts=31536000)
    response, body = get(https.port, client_context)
    assert body == b"https"
    assert response.getheader("Strict-Transport-Security") == "max-age=31536000"


def test_wsgi_sees_https(server_factory, certificates, client_context):
    from reactor.apps.wsgi import WSGIHandler

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.url_scheme"].encode(), b" ", environ.get("HTTPS", "off").encode()]

    handler = WSGIHandler(app, threads=2, server_name="localhost", server_port=0)
    https = server_factory(handler=handler, tls=certificates)
    assert get(https.port, client_context)[1] == b"https on"


def test_plain_port_redirects_to_https_and_sends_no_hsts(certificates, site):
    config = Config(root=str(site), host="127.0.0.1", port=0, access_log=False,
                    redirect_https=True, hsts=600)
    server = Server(config, tls=certificates)
    server.add_listener(open_listener(config), secure=True)
    server.add_listener(open_listener(config))
    import threading
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        secure_port = server.secure_address[1]
        plain_port = server.listeners[1].getsockname()[1]
        conn = http.client.HTTPConnection("127.0.0.1", plain_port, timeout=5)
        conn.request("GET", "/docs/?q=1", headers={"Host": "example.test:8080"})
        response = conn.getresponse()
        response.read()
        assert response.status == 301
        assert response.getheader("Location") == f"https://example.test:{secure_port}/docs/?q=1"
        assert response.getheader("Strict-Transport-Security") is None
        conn.request("GET", "/", headers={"Host": "bad host\x7f"})
        assert conn.getresponse().status == 400
        conn.close()
    finally:
        server.loop.call_soon_threadsafe(server.shutdown, 0)
        thread.join(10)


def test_sni_chooses_the_certificate(ca, pki, tmp_path, client_context):
    other = ca.issue_cert("example.test", "*.wild.test")
    other.cert_chain_pems[0].write_to_path(str(tmp_path / "other.pem"))
    other.private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    certificates = Certificates([(str(pki / "cert.pem"), str(pki / "key.pem")),
                                 (str(tmp_path / "other.pem"), str(tmp_path / "other-key.pem"))])
    config = Config(host="127.0.0.1", port=0, access_log=False)
    server = Server(config, handler=lambda request: Response(200, [], b"ok"), tls=certificates)
    server.add_listener(open_listener(config), secure=True)
    import threading
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.address[1]
        for name in ("localhost", "example.test", "a.wild.test"):
            with tls_connect(port, client_context, name) as sock:   # verifies the name
                assert sock.getpeercert()
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_connect(port, client_context, "unknown.test")   # the default certificate
    finally:
        server.loop.call_soon_threadsafe(server.shutdown, 0)
        thread.join(10)


# -- hostile or confused clients ---------------------------------------------------------------

def test_plain_http_on_the_tls_port_gets_a_plain_400_dated_when_sent(https):
    started = int(time.time())
    time.sleep(started + 1.01 - time.time())   # into the next second of the wall clock
    with connect(https.port) as sock:
        sock.sendall(REQUEST)
        data = read_until_close(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Content-Type: text/plain" in data and b"plain HTTP request" in data
    date = parse_responses(data)[0].getheader("Date")
    assert email.utils.parsedate_to_datetime(date).timestamp() > started


def test_tls_hello_on_a_plain_port_is_closed_without_an_answer(server_factory, site):
    plain = server_factory(root=str(site))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hello = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="x")
    with pytest.raises(ssl.SSLWantReadError):
        hello.do_handshake()
    with connect(plain.port) as sock:
        sock.sendall(outgoing.read())
        assert read_until_close(sock) == b""
    # The port still serves HTTP.
    with connect(plain.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_until_close(sock).startswith(b"HTTP/1.1 200 OK")


def test_garbage_handshake_is_closed_and_logged_at_debug_only(https, caplog):
    with caplog.at_level("DEBUG", logger="reactor"):
        with connect(https.port) as sock:
            sock.sendall(b"\x16\x03\x01\x00\x05hello" + os.urandom(200))
            answer = read_until_close(sock)
        assert answer == b"" or answer.startswith(b"\x15\x03")   # at most a TLS alert
        time.sleep(0.1)
    failures = [r for r in caplog.records if "handshake" in r.getMessage()]
    assert failures and all(r.levelname == "DEBUG" and not r.exc_info for r in failures)


def test_stalled_handshake_is_closed_and_blocks_no_one(server_factory, certificates, site,
                                                      client_context):
    https = server_factory(tls=certificates, root=str(site), handshake_timeout=0.5)
    stalled = connect(https.port)
    stalled.sendall(b"\x16\x03\x01\x02\x00\x01")   # the first bytes of a ClientHello, no more
    started = time.monotonic()
    assert get(https.port, client_context)[0].status == 200
    assert time.monotonic() - started < 1.0
    stalled.settimeout(5)
    assert read_until_close(stalled) == b""
    assert time.monotonic() - started < 4.0
    stalled.close()


def test_close_sends_close_notify(https, client_context):
    with tls_connect(https.port, client_context, suppress_ragged_eofs=False) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)   # SSLEOFError here would mean no close_notify
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")


def test_file_that_shrinks_while_sent_over_tls_closes(server_factory, certificates, tmp_path,
                                                      client_context):
    path = tmp_path / "shrinking"
    size = 8 * 1024 * 1024
    path.write_bytes(b"a" * size)

    def handler(request):
        return Response(200, [], FileSlice(os.open(path, os.O_RDONLY), 0, size))

    https = server_factory(handler=handler, tls=certificates)
    raw = connect(https.port)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    with client_context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(REQUEST)
        first = sock.recv(1000)
        assert first.startswith(b"HTTP/1.1 200 OK")
        os.truncate(path, 256 * 1024)
        rest = b""
        try:
            while chunk := sock.recv(65536):
                rest += chunk
        except (ssl.SSLError, ConnectionResetError):
            pass
    head, body = (first + rest).split(b"\r\n\r\n", 1)
    assert b"Content-Length: %d" % size in head
    assert len(body) < size


def test_session_resumption_within_a_worker(https, client_context):
    with tls_connect(https.port, client_context) as sock:
        sock.sendall(REQUEST)
        sock.recv(65536)   # TLS 1.3 tickets arrive after the handshake
        session = sock.session
    with tls_connect(https.port, client_context, session=session) as sock:
        assert sock.session_reused


# -- openssl s_client and curl -----------------------------------------------------------------

def s_client(port, *args, stdin=b""):
    return subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}",
                           "-servername", "localhost", *args],
                          input=stdin, capture_output=True, timeout=20)


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls10_and_tls11_are_refused(https, version):
    result = s_client(https.port, version, "-cipher", "DEFAULT:@SECLEVEL=0")
    assert result.returncode != 0
    assert b"Cipher is (NONE)" in result.stdout or b"alert" in result.stderr


@needs_openssl
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_resumes_the_session(https, pki, tmp_path, version):
    session = tmp_path / "session.pem"
    ca = ["-CAfile", str(pki / "ca.pem")]
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    first = s_client(https.port, version, *ca, "-ign_eof", "-sess_out", str(session),
                     stdin=request)
    assert b"Verify return code: 0 (ok)" in first.stdout and b"200 OK" in first.stdout
    second = s_client(https.port, version, *ca, "-ign_eof", "-sess_in", str(session),
                      stdin=request)
    assert b"Reused, " in second.stdout, second.stdout.decode(errors="replace")[-2000:]


@needs_curl
def test_curl_with_the_ca(https, pki, site):
    result = subprocess.run([CURL, "-sS", "--cacert", str(pki / "ca.pem"),
                             f"https://localhost:{https.port}/big.bin", "-o", "-"],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (site / "big.bin").read_bytes()


# -- the command line --------------------------------------------------------------------------

def reactor_cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "reactor", "--bind", "127.0.0.1",
                             "--no-access-log", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def ready(process) -> str:
    line = process.stdout.readline()
    assert line.startswith("reactor serving"), process.stderr.read()
    return line


@pytest.fixture
def bad_files(ca, pki, tmp_path):
    from cryptography.hazmat.primitives import serialization

    other = trustme.CA().issue_cert("localhost")
    other.private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    key = serialization.load_pem_private_key((pki / "key.pem").read_bytes(), None)
    (tmp_path / "encrypted.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right")))
    (tmp_path / "password").write_text("right\n")
    (tmp_path / "wrong").write_text("wrong\n")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    return tmp_path


@pytest.mark.parametrize("case, expected", [
    ("missing", "cannot read TLS certificate"),
    ("junk", "holds no PEM certificate"),
    ("mismatch", "does not match certificate"),
    ("no-password", "is encrypted: give its password with --tls-password-file"),
    ("wrong-password", "wrong password for TLS key"),
])
def test_bad_certificate_files_are_one_line_and_exit_1(pki, bad_files, case, expected):
    cert, key = str(pki / "cert.pem"), str(pki / "key.pem")
    args = {
        "missing": ["--tls-cert", str(bad_files / "absent.pem"), "--tls-key", key],
        "junk": ["--tls-cert", str(bad_files / "junk.pem"), "--tls-key", key],
        "mismatch": ["--tls-cert", cert, "--tls-key", str(bad_files / "other-key.pem")],
        "no-password": ["--tls-cert", cert, "--tls-key", str(bad_files / "encrypted.pem")],
        "wrong-password": ["--tls-cert", cert, "--tls-key", str(bad_files / "encrypted.pem"),
                           "--tls-password-file", str(bad_files / "wrong")],
    }[case]
    process = reactor_cli("-p", "0", *args, stdin=subprocess.DEVNULL)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith("reactor: ") and expected in lines[-1], err
    assert "Traceback" not in err


def test_encrypted_key_with_its_password_serves(pki, bad_files, client_context):
    process = reactor_cli("-p", "0", "--tls-cert", str(pki / "cert.pem"), "--tls-key",
                          str(bad_files / "encrypted.pem"), "--tls-password-file",
                          str(bad_files / "password"))
    try:
        line = ready(process)
        port = int(line.split("https://127.0.0.1:")[1].split("/")[0])
        assert "kTLS " in line
        assert get(port, client_context)[0].status in (200, 404)
    finally:
        process.terminate()
        process.wait(10)


def test_sighup_rereads_certificates_and_keeps_them_when_the_new_ones_are_bad(ca, tmp_path,
                                                                              client_context):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"

    def issue(name):
        leaf = ca.issue_cert(name, "localhost")
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))

    def served_names(port):
        with tls_connect(port, client_context) as sock:
            return [value for kind, value in sock.getpeercert()["subjectAltName"]]

    issue("first.test")
    process = reactor_cli("-p", "0", "--tls-cert", str(cert), "--tls-key", str(key),
                          cwd=tmp_path)
    try:
        port = int(ready(process).split("https://127.0.0.1:")[1].split("/")[0])
        assert "first.test" in served_names(port)
        issue("second.test")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "second.test" not in served_names(port):
            assert time.monotonic() < deadline, "certificate not reloaded"
            time.sleep(0.05)
        key.write_text("broken\n")
        process.send_signal(signal.SIGHUP)
        # Before it: "certificates reloaded" (the first SIGHUP's), and a notice of the parser
        # backend where the C one is not built.
        lines = []
        while len(lines) < 4 and "not reloaded" not in "".join(lines):
            lines.append(process.stderr.readline())
        assert "not reloaded" in lines[-1] and "holds no PEM key" in lines[-1], lines
        assert "second.test" in served_names(port)
    finally:
        process.terminate()
        process.wait(10)


def test_rolling_restart_of_workers_rereads_certificates(ca, tmp_path, client_context):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"

    def issue(name):
        leaf = ca.issue_cert(name, "localhost")
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))

    issue("first.test")
    process = reactor_cli("-p", "0", "--workers", "2", "--tls-cert", str(cert), "--tls-key",
                          str(key))
    try:
        port = int(ready(process).split("https://127.0.0.1:")[1].split("/")[0])
        issue("second.test")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        names = set()
        while names != {"second.test"}:
            assert time.monotonic() < deadline, f"still served: {names}"
            time.sleep(0.2)
            names = set()
            for _ in range(6):   # both workers
                with tls_connect(port, client_context) as sock:
                    names.update(value for kind, value in sock.getpeercert()["subjectAltName"]
                                 if value.endswith(".test"))
    finally:
        process.terminate()
        process.wait(10)


def test_workers_share_session_tickets(pki, client_context):
    process = reactor_cli("-p", "0", "--workers", "2", "--tls-cert", str(pki / "cert.pem"),
                          "--tls-key", str(pki / "key.pem"))
    try:
        port = int(ready(process).split("https://127.0.0.1:")[1].split("/")[0])
        with tls_connect(port, client_context) as sock:
            sock.sendall(REQUEST)
            sock.recv(65536)
            session = sock.session
        # SO_REUSEPORT spreads connections over both workers by their source port.
        for _ in range(12):
            with tls_connect(port, client_context, session=session) as sock:
                assert sock.session_reused
    finally:
        process.terminate()
        process.wait(10)


def test_plain_and_https_ports_together(pki, client_context):
    process = reactor_cli("-p", "0", "--tls-port", "0", "--tls-cert", str(pki / "cert.pem"),
                          "--tls-key", str(pki / "key.pem"), "--redirect-https")
    try:
        line = ready(process)
        plain = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        secure = int(line.split("https://127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", plain, timeout=5)
        conn.request("GET", "/x", headers={"Host": "localhost"})
        response = conn.getresponse()
        assert response.status == 301
        assert response.getheader("Location") == f"https://localhost:{secure}/x"
        assert get(secure, client_context)[0].status in (200, 404)
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.skipif(not kernel_tls_available(),
                    reason="the kernel has no tls module (kTLS): not in tcp_available_ulp")
def test_kernel_tls_is_reported_and_serves_files(https, client_context, site):
    assert https.server.tls.ktls
    response, body = get(https.port, client_context, "/big.bin")
    assert body == (site / "big.bin").read_bytes()


@pytest.mark.parametrize("hsts", [0, 600])
def test_fast_lane_over_tls_answers_as_the_full_path(server_factory, certificates, site,
                                                     client_context, hsts):
    answers = []
    for fast_lane in (True, False):
        https = server_factory(tls=certificates, root=str(site), hsts=hsts, fast_lane=fast_lane)
        with tls_connect(https.port, client_context) as sock:
            for _ in range(3):   # the first fills the static cache, the others may take the lane
                sock.sendall(REQUEST)
                data = b""
                while not data.endswith(b"<h1>hello over TLS</h1>"):
                    data += sock.recv(65536)
        lane = https.server.lanes.get(https.server.secure_handler)
        answers.append((data.split(b"\r\n", 2)[2], lane is not None and bool(lane.messages)))
    (fast, used), (full, _) = answers
    assert used, "the fast lane answered nothing over TLS"
    strip = [line for line in fast.split(b"\r\n") if not line.startswith(b"Date:")]
    assert strip == [line for line in full.split(b"\r\n") if not line.startswith(b"Date:")]
    assert (b"Strict-Transport-Security: max-age=600" in fast) == bool(hsts)


def test_sigusr2_hands_the_https_port_to_the_new_supervisor(pki, tmp_path, client_context):
    pid_file = tmp_path / "reactor.pid"
    process = reactor_cli("-p", "0", "--tls-port", "0", "--workers", "2", "--pid-file",
                          str(pid_file), "--tls-cert", str(pki / "cert.pem"), "--tls-key",
                          str(pki / "key.pem"), cwd=tmp_path)
    successor = None
    try:
        port = int(ready(process).split("https://127.0.0.1:")[1].split("/")[0])
        assert get(port, client_context)[0].status in (200, 404)
        process.send_signal(signal.SIGUSR2)
        assert process.wait(20) == 0   # the old supervisor handed over, drained and left
        successor = int(pid_file.read_text())
        assert successor != process.pid
        assert f"https://127.0.0.1:{port}/" in process.stdout.readline()   # its ready line
        assert get(port, client_context)[0].status in (200, 404)
    finally:
        if successor is not None:
            os.kill(successor, signal.SIGTERM)
        process.kill()
        process.wait(10)
