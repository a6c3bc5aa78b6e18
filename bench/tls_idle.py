"""Memory of idle HTTPS connections: N clients that each made one request and then wait.

    python bench/tls_idle.py [--connections 1000] [--target-mb 64] [--http2 [--streams N]]

Starts `python -m reactor` over TLS on 127.0.0.1 (a throwaway certificate made with openssl),
opens the connections (full handshake, one 1 KiB request each, then silence), and prints the
server's resident memory before and with them held, per connection, and against the target
for the whole process: 64 MB, that is 64,000,000 bytes or 61.04 MiB (the figures are MiB and
KiB, powers of 1024). With --http2 the clients speak h2 (ALPN; the `h2` package makes their
frames), so each connection holds an HTTP/2 session, and what libnghttp2 holds for them (the
server's `reactor_http2_engine_bytes` metric) is printed too; with --streams N, each then opens N
streams more whose answers cannot go out (it shuts their flow-control windows first), and the
memory per open stream is printed, against its target (4 KiB: the body they share is in the
server's memory cache already). Exits 1 when a target is missed. Only ever aims at 127.0.0.1.
"""

import argparse
import http.client
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from tls_grade import REPO, make_certificates

REQUEST = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"
MIB = 1024 * 1024


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--target-mb", type=float, default=64.0,
                        help="the whole process's resident memory, in MB (10^6 bytes)")
    parser.add_argument("--http2", action="store_true", help="h2 clients (ALPN) instead of HTTP/1.1")
    parser.add_argument("--streams", type=int, default=0,
                        help="with --http2: streams each connection then holds open")
    parser.add_argument("--stream-target-kib", type=float, default=4.0)
    parser.add_argument("--server-args", default="",
                        help="more arguments for the server (e.g. --no-fast-lane)")
    args = parser.parse_args()
    opener = open_h2 if args.http2 else open_one
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as folder:
        paths = make_certificates(folder, rsa=False)
        with open(os.path.join(folder, "index.html"), "wb") as page:
            page.write(b"x" * 1024)
        server = subprocess.Popen(
            [sys.executable, "-m", "reactor", "--bind", "127.0.0.1", "-p", "0", "--no-access-log",
             "--tls-cert", paths["cert"], "--tls-key", paths["key"], "-d", folder,
             "--keepalive-timeout", "600", "--send-timeout", "600", "--metrics", "/metrics",
             *args.server_args.split()],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
        held = []
        try:
            port = int(server.stdout.readline().split("https://127.0.0.1:")[1].split("/")[0])
            context = ssl.create_default_context(cafile=paths["ca"])
            held.append(opener(context, port))   # the first request warms the caches
            time.sleep(0.5)
            before = rss_kib(server.pid)
            for _ in range(args.connections):
                held.append(opener(context, port))
            time.sleep(1.0)
            after = rss_kib(server.pid)
            engine = engine_bytes(paths["ca"], port) if args.http2 else 0
            if args.streams:
                for connection in held[1:]:
                    open_streams(connection, args.streams)
                time.sleep(1.0)
                streams = rss_kib(server.pid)
        finally:
            for connection in held:
                (connection[0] if isinstance(connection, tuple) else connection).close()
            server.terminate()
            server.wait(10)
    per = (after - before) / args.connections
    target_mib = args.target_mb * 1e6 / MIB
    met = after / 1024 <= target_mib
    print(f"reactor over TLS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB with "
          f"{args.connections:,} idle {'h2' if args.http2 else 'TLS'} connections "
          f"({per:.1f} KiB each); target: the whole process within {args.target_mb:g} MB "
          f"({target_mib:.2f} MiB): {'met' if met else 'NOT met'}")
    if args.http2:
        print(f"libnghttp2 holds {engine / MIB:.2f} MiB of it "
              f"({engine / 1024 / (args.connections + 1):.2f} KiB a connection)")
    if args.streams:
        count = args.connections * args.streams
        per_stream = (streams - after) / count
        met_streams = per_stream <= args.stream_target_kib
        print(f"{streams / 1024:.1f} MiB with {count:,} open streams on them "
              f"({per_stream:.2f} KiB each); target: {args.stream_target_kib:g} KiB a stream: "
              f"{'met' if met_streams else 'NOT met'}")
        met = met and met_streams
    return 0 if met else 1


def engine_bytes(cafile, port) -> float:
    """The server's reactor_http2_engine_bytes metric (over an HTTP/1.1 connection of its own:
    the clients' context offers h2 alone)."""
    client = http.client.HTTPSConnection("127.0.0.1", port,
                                         context=ssl.create_default_context(cafile=cafile))
    client.request("GET", "/metrics", headers={"Host": "localhost"})
    text = client.getresponse().read().decode()
    client.close()
    return float(text.split("\nreactor_http2_engine_bytes ")[1].split()[0])


def open_one(context, port):
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                               server_hostname="localhost")
    sock.sendall(REQUEST)
    answer = b""
    while not answer.endswith(b"x" * 64):
        answer += sock.recv(65536)
    return sock


def open_h2(context, port):
    import h2.config
    import h2.connection
    import h2.events

    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                               server_hostname="localhost")
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                            (":authority", "localhost"), (":path", "/index.html")],
                        end_stream=True)
    sock.sendall(client.data_to_send())
    ended = False
    while not ended:
        for event in client.receive_data(sock.recv(65536)):
            ended = ended or isinstance(event, h2.events.StreamEnded)
        sock.sendall(client.data_to_send())   # the SETTINGS acknowledgement
    return sock, client


def open_streams(connection, count):
    """`count` requests whose answers stay open: the streams' windows are shut first (an
    initial window of 0), so only their HEADERS come back."""
    import h2.events
    import h2.settings

    sock, client = connection
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    for _ in range(count):
        stream = client.get_next_available_stream_id()
        client.send_headers(stream, [(":method", "GET"), (":scheme", "https"),
                                     (":authority", "localhost"), (":path", "/index.html")],
                            end_stream=True)
    sock.sendall(client.data_to_send())
    heads = 0
    while heads < count:
        for event in client.receive_data(sock.recv(65536)):
            heads += isinstance(event, h2.events.ResponseReceived)
        data = client.data_to_send()
        if data:
            sock.sendall(data)


if __name__ == "__main__":
    sys.exit(main())
