"""cffi API-mode builder of reactor._nghttp2: the h2 unit (csrc/h2.c) linked with libnghttp2.

setup.py names it in cffi_modules beside build_native.py; it is an extension of its own because
it links a system library (csrc/README.md): a machine without libnghttp2's headers still builds
reactor._native and the parser, and reactor.http.h2 falls back to the pure-Python `h2` package
or to HTTP/1.1 alone. Optional like every extension: without the headers, or with
REACTOR_NO_EXTENSIONS=1, the build of this one fails with a one-line reason and the install
goes on.

The library's optional guards are found by symbol, with a test link per function: Debian's
1.52 exports two that upstream added in 1.57 and 1.61 without changing its version number.
"""

import os
import shutil
import subprocess
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

# (macro h2.c tests, a statement that compiles and links only where the function exists)
OPTIONAL_GUARDS = [
    ("H2_HAVE_RESET_RATE_LIMIT", "nghttp2_option_set_stream_reset_rate_limit(o, 1, 1)"),
    ("H2_HAVE_MAX_CONTINUATIONS", "nghttp2_option_set_max_continuations(o, 1)"),
]


def _compiler():
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or "cc"


def _links(statement: str) -> bool:
    program = ("#include <nghttp2/nghttp2.h>\n"
               "int main(void) { nghttp2_option *o = 0; %s; return 0; }\n" % statement)
    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "probe.c")
        with open(source, "w") as file:
            file.write(program)
        try:
            done = subprocess.run([_compiler(), source, "-o", os.path.join(folder, "probe"),
                                   "-lnghttp2"], capture_output=True)
        except OSError:
            return False
    return done.returncode == 0


def _why_not():
    """Why the extension cannot be built here, or None."""
    if os.environ.get("REACTOR_NO_EXTENSIONS") == "1":
        return "REACTOR_NO_EXTENSIONS=1: the C extension is not built"
    if not _links("(void)o"):
        return "libnghttp2 headers or library not found (Debian: libnghttp2-dev)"
    return None


ffibuilder = FFI()
ffibuilder.cdef("""
#define H2_REQUEST ...
#define H2_DATA ...
#define H2_END ...
#define H2_CLOSE ...
#define H2_STARVED ...
#define H2_BYTES ...
#define H2_FILE ...
#define H2_PAUSED ...
#define H2_PARTIAL ...
#define H2_PLAIN ...
#define H2_END_STREAM ...
#define H2_TOO_LARGE ...
#define H2_COOKIES ...
#define H2_HOST ...
#define H2_PSEUDO_SHIFT ...
#define H2_HAS_RESET_RATE_LIMIT ...
#define H2_HAS_MAX_CONTINUATIONS ...
#define H2_COUNT_N ...

struct h2_limits {
    uint32_t max_concurrent_streams;
    uint32_t max_header_list;
    uint32_t max_fields;
    uint32_t hpack_bomb;
    uint32_t max_settings;
    uint32_t max_outbound_ack;
    uint32_t max_continuations;
    uint32_t reset_burst, reset_rate;
    uint32_t glitch_burst, glitch_rate;
    uint32_t initial_window;
    uint32_t connection_window;
};
struct h2_batch {
    int64_t *records;
    size_t records_cap;
    char *arena;
    size_t arena_cap;
    size_t arena_used;
    uint8_t *out;
    size_t out_cap;
    size_t requests_cap;
    size_t resets_cap;
};
struct h2_body {
    const uint8_t *data;
    int fd;
    int no_copy;
    int last;
    int starved;
    int64_t offset;
    int64_t left;
    int64_t sent;
};
struct h2_conn {
    int reason;
    uint32_t goaway_code;
    uint32_t counts[...];
    uint32_t lane_open;
    int lane_records;
    size_t memory;
    ...;
};
struct h2_ready;

int h2_features(void);
const char *h2_library_version(void);
int h2_open(struct h2_conn *c, const struct h2_limits *limits);
void h2_close(struct h2_conn *c);
long h2_recv(struct h2_conn *c, struct h2_batch *b, const uint8_t *data, size_t len,
             int64_t now_ms);
long h2_send(struct h2_conn *c, struct h2_batch *b, int64_t budget);
int h2_respond(struct h2_conn *c, int32_t stream_id, int status, const char *fields,
               size_t fields_len, const char *extra, size_t extra_len, int64_t content_length,
               struct h2_body *body);
int h2_supply(struct h2_conn *c, int32_t stream_id, struct h2_body *body, const uint8_t *data,
              int fd, int64_t offset, int64_t count, int last, int no_copy);
struct h2_ready *h2_ready_new(int status, const char *fields, size_t fields_len,
                              const char *extra, size_t extra_len, int64_t content_length,
                              const uint8_t *body, int64_t body_len);
void h2_ready_release(struct h2_ready *r);
int h2_answer(struct h2_conn *c, int32_t stream_id, struct h2_ready *r);
int64_t h2_answer_sent(struct h2_conn *c, int32_t stream_id);
int h2_consume(struct h2_conn *c, int32_t stream_id, size_t count);
int h2_reset(struct h2_conn *c, int32_t stream_id, uint32_t code);
int h2_shutdown(struct h2_conn *c, int final);
int h2_terminate(struct h2_conn *c, uint32_t code);
int h2_want_read(struct h2_conn *c);
int h2_want_write(struct h2_conn *c);
""")

_why = _why_not()
if _why is not None:
    # Make the (optional) extension fail at once with a clear message.
    _source, _macros = f'#error "{_why}"', []
else:
    _source = '#include "h2.h"\n'
    _macros = [(macro, "1") for macro, statement in OPTIONAL_GUARDS if _links(statement)]

ffibuilder.set_source(
    "reactor._nghttp2",
    _source,
    # httpparse.c for the fast lane's rule of what makes a request plain (h2.h).
    sources=[os.path.relpath(os.path.join(HERE, name)) for name in ("h2.c", "httpparse.c")],
    include_dirs=[os.path.relpath(HERE)],
    libraries=["nghttp2"],
    define_macros=_macros,
    extra_compile_args=["-O2"],
    optional=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
