"""The sans-I/O WebSocket libraries reactor could use, on the work of an echo server: parse
masked client frames, hand over each message, build the unmasked reply frame.

    python bench/ws_frames.py [--messages 20000] [--size 1024]

Measures microseconds per message for the `websockets` package's Protocol and for wsproto,
with 16 messages per read as a busy connection delivers them, in one process, no sockets.
"""

import argparse
import os
import time

BATCH = 16


def client_frames(size: int, count: int) -> bytes:
    """`count` masked binary frames of `size` bytes, as a client sends them."""
    from websockets.frames import Frame, Opcode
    frame = Frame(Opcode.BINARY, os.urandom(size)).serialize(mask=True, extensions=[])
    return frame * count


def with_websockets(data: bytes, messages: int) -> float:
    from websockets.frames import Opcode
    from websockets.protocol import OPEN, SERVER, Protocol
    protocol = Protocol(SERVER, state=OPEN, max_size=None)
    step = len(data) // (messages // BATCH)
    started = time.perf_counter()
    echoed = 0
    for offset in range(0, len(data), step):
        protocol.receive_data(data[offset:offset + step])
        for frame in protocol.events_received():
            if frame.opcode is Opcode.BINARY:
                protocol.send_binary(frame.data)
                echoed += 1
        protocol.data_to_send()
    assert echoed == messages
    return (time.perf_counter() - started) / messages * 1e6


def with_wsproto(data: bytes, messages: int) -> float:
    from wsproto import ConnectionType
    from wsproto.connection import Connection
    from wsproto.events import BytesMessage
    connection = Connection(ConnectionType.SERVER)
    step = len(data) // (messages // BATCH)
    started = time.perf_counter()
    echoed = 0
    for offset in range(0, len(data), step):
        connection.receive_data(data[offset:offset + step])
        out = []
        for event in connection.events():
            if isinstance(event, BytesMessage):
                out.append(connection.send(BytesMessage(data=event.data)))
                echoed += 1
    assert echoed == messages
    return (time.perf_counter() - started) / messages * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    data = client_frames(args.size, args.messages)
    for name, run in (("websockets", with_websockets), ("wsproto", with_wsproto)):
        samples = sorted(run(data, args.messages) for _ in range(5))
        print(f"{name:12} {samples[2]:6.2f} us per {args.size}-byte message echoed "
              f"(median of 5; best {samples[0]:.2f})")


if __name__ == "__main__":
    main()
