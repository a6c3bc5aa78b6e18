"""What the loop does on a read event where C can do it for less: picks the C unit
(reactor.net._creadevent) or its pure-Python twin (reactor.net._pyreadevent), as
reactor.http.parser picks a parser: C unless REACTOR_NO_EXTENSIONS=1 is set or the extension
is missing (the parser has said which then). Imports nothing else of reactor.

    acceptor = Acceptor(listening_socket, batch)
    taken, error = acceptor.accept()     # [(fd, host, port), ...], OSError or None
    NativeLane(parser, receive_buffer, logged, entries)   # or None: see _creadevent
"""

import os

if os.environ.get("REACTOR_NO_EXTENSIONS") == "1":
    from ._pyreadevent import Acceptor, NativeLane
else:
    try:
        from ._creadevent import Acceptor, NativeLane
    except ImportError:
        from ._pyreadevent import Acceptor, NativeLane

__all__ = ["Acceptor", "NativeLane"]
