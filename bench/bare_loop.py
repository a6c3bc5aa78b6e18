"""The ceiling: a bare `selectors` loop that answers every request with one fixed response.

It parses nothing: it only counts request ends (CRLF CRLF) so that pipelined requests each get
their answer, and it keeps every connection alive. Whatever reactor does beyond this (parsing,
path resolution, files, headers) is the price of being a real server; the bench compares reactor
to this loop to show how much of that price is left. Standard library only; imports nothing of
reactor.

    python bench/bare_loop.py --port 8080 [--bind 127.0.0.1] [--body FILE]
"""

import argparse
import selectors
import socket

END = b"\r\n\r\n"


def build_response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Server: bare-loop\r\n"
        "Content-Type: text/html\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


class Conn:
    __slots__ = ("sock", "tail", "out")

    def __init__(self, sock):
        self.sock = sock
        # The last 3 bytes seen, so a CRLF CRLF split across two reads is still counted.
        self.tail = b""
        self.out = bytearray()


def serve(bind: str, port: int, response: bytes) -> None:
    sel = selectors.DefaultSelector()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((bind, port))
    listener.listen(4096)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    print(f"bare-loop serving on http://{bind}:{port}/", flush=True)

    def close(conn):
        sel.unregister(conn.sock)
        conn.sock.close()

    def flush(conn):
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            close(conn)
            return
        del conn.out[:sent]
        # Ask for writability only while something is left over, as the real server does.
        sel.modify(conn.sock, selectors.EVENT_WRITE if conn.out else selectors.EVENT_READ, conn)

    def readable(conn):
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            close(conn)
            return
        if not data:
            close(conn)
            return
        window = conn.tail + data
        n = window.count(END)
        conn.tail = window[-3:]
        if not n:
            return
        if conn.out:
            conn.out += response * n
            return
        out = response * n
        try:
            sent = conn.sock.send(out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            close(conn)
            return
        if sent < len(out):
            conn.out += out[sent:]
            sel.modify(conn.sock, selectors.EVENT_WRITE, conn)

    while True:
        for key, mask in sel.select():
            conn = key.data
            if conn is None:
                while True:
                    try:
                        sock, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        # Out of descriptors: keep serving the open connections.
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.register(sock, selectors.EVENT_READ, Conn(sock))
            elif mask & selectors.EVENT_WRITE:
                flush(conn)
            else:
                readable(conn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--body", help="file whose bytes are the body (default: 1 KiB of 'x')")
    args = ap.parse_args()
    if args.body:
        with open(args.body, "rb") as f:
            body = f.read()
    else:
        body = b"x" * 1024
    try:
        serve(args.bind, args.port, build_response(body))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
