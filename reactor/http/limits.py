"""Every size and time limit of the server, with the reason for its value.

Imports nothing. Config takes its defaults from here; the parsers take theirs too.
"""

# A request line longer than this gets 414. nginx's large_client_header_buffers is 8 KiB and
# real browsers stay far below it; longer targets are almost always abuse.
MAX_REQUEST_LINE = 8 * 1024

# The whole head (request line + fields + blank line). Past it: 431. Large enough for the
# cookie-heavy requests of real sites (the corpus's biggest is 3.5 KiB), small enough that a
# connection cannot pin much memory before it has sent a single complete request.
MAX_HEAD = 32 * 1024

# Number of header fields. Past it: 431. Browsers send 10-20; h11 and nginx allow ~100.
MAX_HEADERS = 100

# Request bodies larger than this get 413. Static serving needs none; apps that need more
# raise it with --max-body.
MAX_BODY = 1024 * 1024

# Trailer section of a chunked body: same spirit as MAX_HEAD, but trailers are rare and tiny.
MAX_TRAILERS = 8 * 1024

# Requests read ahead of the response being written. Past it the connection stops reading
# (backpressure), so a pipelining client cannot make the server buffer unbounded responses.
MAX_PIPELINE = 64

# Plain requests (see RequestParser.scan_plain) answered from one read by the fast lane; the
# rest of a deeper pipeline takes the full path.
MAX_PLAIN_BATCH = 64

# Seconds. A client must finish its head within HEADER_TIMEOUT of starting it (slowloris),
# a body must keep arriving at least every BODY_TIMEOUT, an idle keep-alive connection is
# closed after KEEPALIVE_TIMEOUT, and a client that stops reading its response is dropped
# after SEND_TIMEOUT without progress.
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0

# A pause limit alone lets a client hold a connection for ever with a byte every 29 s. So a
# body also has an overall deadline, as Apache's mod_reqtimeout gives (body=20,MinRate=500):
# BODY_GRACE seconds, plus one second for every BODY_MIN_RATE bytes received. 500 B/s is
# slower than any real uplink (a 1 MiB upload at 500 B/s still gets 35 minutes), and a
# trickle of a few bytes every few seconds is cut off soon after the grace.
BODY_GRACE = 10.0
BODY_MIN_RATE = 500
KEEPALIVE_TIMEOUT = 15.0
SEND_TIMEOUT = 30.0

# Requests served on one connection before it is closed; bounds how long one client can
# hold a worker's attention and lets load balance out across workers.
MAX_KEEPALIVE_REQUESTS = 10_000

# Open connections per worker. At the limit a new client takes the place of the connection
# idle longest (keep-alive, or lingering after its last response), as nginx does; with none,
# heads still arriving must be complete within PRESSED_HEADER_TIMEOUT (slowloris makes room),
# and the new client gets a 503 with Retry-After at once rather than a wait in the backlog.
MAX_CONNECTIONS = 10_000
PRESSED_HEADER_TIMEOUT = 1.0
RETRY_AFTER = 1

# How long a graceful shutdown waits for in-flight responses before it closes them.
SHUTDOWN_GRACE = 10.0

# While draining, how long a keep-alive connection between requests may still send one
# more (answered with Connection: close). A client that sent it just as we closed would get
# a reset instead; the sweep makes the real wait up to a second longer.
DRAIN_IDLE = 1.0

# Bytes handed to one sendfile call: a fast client on a large file must not starve the
# others of the loop (nginx's sendfile_max_chunk has the same purpose).
SENDFILE_CHUNK = 1024 * 1024

# File bytes read per TLS write when the kernel does not encrypt (no kTLS): sixteen 16 KiB
# records. Measured on a 10 MiB file over 4 connections, 256 KiB gave about 1.7x the
# throughput of 64 KiB (fewer reads and wake-ups per file); the buffer exists only while a
# connection is sending a file.
TLS_FILE_CHUNK = 256 * 1024

# Seconds a client has to complete its TLS handshake; one that stalls in it is closed.
HANDSHAKE_TIMEOUT = 10.0

# Seconds a plain connection that has sent nothing waits in the kernel before it is accepted
# all the same (TCP_DEFER_ACCEPT, Linux; as Apache's default accept filter): a client's
# request is there when its connection is taken, so the fast lane can answer it as it is
# accepted, and a silent client costs no connection slot meanwhile. Its header timeout runs
# from when it is taken. 0 takes every connection as soon as it is open.
DEFER_ACCEPT = 1.0

# Bytes of a request body that may wait for a handler reading it as it arrives (an ASGI
# application's receive()); past it the connection stops reading until the handler takes
# them, so a slow consumer holds the client back instead of filling memory.
BODY_BUFFER = 64 * 1024

# Bytes an application may have handed over for sending (a streamed response, WebSocket
# messages) before its next send waits for the client to read them.
SEND_BUFFER = 64 * 1024

# A WebSocket message larger than this closes the connection with 1009 (uvicorn's default
# too: well above chat and JSON traffic, small enough that one client cannot pin much).
WS_MAX_SIZE = 16 * 1024 * 1024

# Seconds between the server's pings on an idle WebSocket; a pong must come back before
# the next one, else the connection is closed with 1011. Below the usual idle timeouts of
# balancers (60 s), so they do not cut a quiet connection.
WS_PING_INTERVAL = 20.0

# Size of the reusable receive buffer. A whole pipelined burst of browser requests fits.
RECV_SIZE = 64 * 1024

# -- HTTP/2 ----------------------------------------------------------------------------------
# Who enforces each: "library" is libnghttp2 (told the value by csrc/h2.c), "ours" is the shim
# (csrc/h2.c) or, with the pure-Python `h2` engine, reactor/http/_h2python.py, which keeps the
# same budgets so that both engines answer a flood the same way. What one peer can cost is
# bounded by these, by the HTTP/1 limits above (bodies, timeouts, connections), and by the
# read buffer: a read is at most RECV_SIZE bytes, whatever frames it holds.

# Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS; library). h2o's
# default; nginx allows 128. A HEADERS frame past it is refused (REFUSED_STREAM) until the
# client has acknowledged our SETTINGS, and is a PROTOCOL_ERROR after.
H2_MAX_CONCURRENT_STREAMS = 100

# The header list of one request, counted as RFC 7541 §4.1 does (name + value + 32 per field),
# and its number of fields (ours: the library only advertises SETTINGS_MAX_HEADER_LIST_SIZE).
# Past either the request is answered 431, as an HTTP/1 head past MAX_HEAD or MAX_HEADERS is.
H2_MAX_HEADER_LIST = MAX_HEAD
H2_MAX_FIELDS = MAX_HEADERS

# A header block that decodes to more than this ends the connection with ENHANCE_YOUR_CALM
# (ours): an HPACK bomb references one large table entry thousands of times, so a few bytes on
# the wire would decode to megabytes; past 8x the list limit nothing honest is going on.
H2_HPACK_BOMB = 8 * H2_MAX_HEADER_LIST

# Entries in one SETTINGS frame (library, CVE-2020-11080): past it, ENHANCE_YOUR_CALM; the
# library's default, set explicitly.
H2_MAX_SETTINGS = 32

# CONTINUATION frames after one HEADERS (CVE-2024-27316 and kin): past it, ENHANCE_YOUR_CALM.
# The library's option where the build has it (Debian's 1.52 does, backported), else ours.
H2_MAX_CONTINUATIONS = 8

# RST_STREAM frames received (rapid reset, CVE-2023-44487): a token bucket of this burst,
# refilled at this rate a second; empty, ENHANCE_YOUR_CALM (ours). The library's bucket, where
# the build has one, stays behind it at twice the size (it would answer INTERNAL_ERROR).
# The library's defaults: a browser cancelling a page's requests is far below them.
H2_RESET_BURST = 1000
H2_RESET_RATE = 33

# Request header blocks one read of an HTTP/2 connection is taken for before the rest of the
# read waits for the next turn of the loop (ours; the libnghttp2 engine): a read can hold over
# two thousand requests, which would keep every other connection waiting for that long. A
# client within its concurrency limit never meets it. RST_STREAM frames have a smaller share:
# a rapid reset's pairs cost the library's work each and ask for no answer (a browser that
# cancels a page's requests sends a few dozen at most, and goes on in the next turn).
H2_REQUESTS_PER_TURN = 100
H2_RESETS_PER_TURN = 16

# "Glitches" (ours; libnghttp2 1.67's glitch limiter, which 1.52 lacks): frames that cost work
# and ask for nothing: PING, SETTINGS, PRIORITY, PRIORITY_UPDATE and WINDOW_UPDATE frames, empty
# DATA without END_STREAM, invalid frames, and every RST_STREAM the peer makes us send with an
# error code (MadeYouReset, CVE-2025-8671). A bucket of this burst and rate; each request
# received and each DATA frame sent earns one back, so a long download's WINDOW_UPDATEs never
# add up. Empty, ENHANCE_YOUR_CALM.
H2_GLITCH_BURST = 1000
H2_GLITCH_RATE = 100

# SETTINGS/PING acknowledgements queued for a peer that does not read them (library,
# CVE-2019-9512/9515): past it, ENHANCE_YOUR_CALM. Behind the glitch budget, which counts the
# same frames and answers first, at twice its burst (the library's default is 1000).
H2_MAX_OUTBOUND_ACK = 2 * H2_GLITCH_BURST

# Our receive windows (SETTINGS_INITIAL_WINDOW_SIZE per stream, and the connection's): request
# body bytes a client may send ahead of the handler. Bodies are consumed as they are buffered,
# up to H2_BODY_BUDGET per connection; past that the windows close until a handler has taken
# its body, the HTTP/2 form of the backpressure HTTP/1 gets from reading one body at a time.
H2_INITIAL_WINDOW = 65535
H2_CONNECTION_WINDOW = 1024 * 1024
H2_BODY_BUDGET = 4 * MAX_BODY

# Response body bytes framed for one connection per turn of the loop before the others get
# theirs, and bytes of output buffered for it (the shim's buffer is shared; what a socket does
# not take is copied out, and a connection above this stops reading, as h2o's 512 KiB does).
H2_SEND_BUDGET = 256 * 1024
H2_OUTPUT_LIMIT = 512 * 1024

# Files at least this large go out with sendfile on h2c (NGHTTP2_DATA_FLAG_NO_COPY: a 9-byte
# frame header, then the payload straight from the page cache); smaller ones, and every file
# on TLS without kTLS, are read into the frame by the shim, so a response is one send.
H2_SENDFILE_MIN = 64 * 1024

# Graceful shutdown: GOAWAY announcing it first, then, this long later (about a round trip
# and then some, as h2o waits 1 s), the GOAWAY with the last stream id that will be answered.
H2_GOAWAY_DELAY = 1.0
