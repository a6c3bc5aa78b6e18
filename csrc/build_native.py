"""cffi API-mode builder of reactor._native: the C units that need nothing but libc.

setup.py names it in cffi_modules; it is not part of the installed package. The extension is
optional: if REACTOR_NO_EXTENSIONS=1 is set or the compiler fails, setuptools warns and the
install goes on, and reactor.http.parser falls back to the pure-Python parser. csrc/README.md
says how a unit joins it (and why a unit that links a library gets an extension of its own).
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

# Each unit is csrc/<unit>.c with the declarations in csrc/<unit>.h.
UNITS = ["httpparse", "readevent"]

ffibuilder = FFI()
ffibuilder.cdef("""
#define HP_INCOMPLETE ...
#define HP_CHUNKED ...
#define HP_KEEP_ALIVE ...
#define HP_EXPECT_CONTINUE ...
#define HP_HTTP11 ...
#define HP_PRECONDITION ...
#define HP_PLAIN_HEAD ...
#define HP_PLAIN_HTTP11 ...
#define HP_PLAIN_KEEP_ALIVE ...
#define HP_PLAIN_ACCEPT_ENCODING ...
#define HP_MAX_CHUNK_LINE ...
#define HP_METHOD_UNIT ...

struct hp_limits { size_t max_request_line; size_t max_head; size_t max_headers; };
struct hp_field { const char *name; size_t name_len; const char *value; size_t value_len; };
struct hp_batch {
    struct hp_limits limits;
    struct hp_field *fields;
    size_t fields_cap;
    int64_t *meta;
    size_t meta_cap;
    char *out;
    size_t out_cap;
};
struct hp_chunked { size_t max_trailers; ...; };

extern const char hp_methods[];
long hp_parse_batch(const struct hp_batch *batch, const char *buf, size_t len, size_t start);
long hp_scan_plain(const struct hp_batch *batch, const char *buf, size_t len, size_t start,
                   int logged);
long hp_decode_chunked(struct hp_chunked *d, const char *buf, size_t len, char *out,
                       size_t *out_len);
int hp_chunked_done(const struct hp_chunked *d);

#define RE_HOST_MAX ...
struct re_accepted {
    int *fds;
    int *ports;
    size_t cap;
    char *hosts;
    size_t hosts_cap;
    size_t hosts_len;
    int error;
    long read_at;
    size_t closed;
    size_t answered;
    int first_lines;
};
long re_accept(int fd, struct re_accepted *out);

#define RE_READ ...
#define RE_READY ...
#define RE_END ...
#define RE_ASKED ...
#define RE_GATHERED ...
#define RE_SENT ...
#define RE_LOGGED ...
#define RE_DONE ...
#define RE_REFUSED ...
#define RE_RESULTS ...
#define RE_FIRST_LINES ...
#define RE_LOG_NONE ...
#define RE_LOG_COMMON ...
#define RE_LOG_COMBINED ...
#define RE_LOG_ELSEWHERE ...
struct re_slot { ...; };
struct re_lane {
    struct hp_batch scan;
    int logged;
    struct re_slot *slots;
    size_t slots_cap;
    size_t entries;
    char *arena;
    size_t arena_cap;
    size_t arena_used;
    char *answers;
    size_t answers_cap;
    int log_format;
    char *log;
    size_t log_cap;
    size_t log_len;
    int64_t results[...];
    ...;
};
long re_put(struct re_lane *lane, const char *key, size_t key_len, const char *message,
            size_t message_len, const char *part, size_t part_len);
void re_clear(struct re_lane *lane);
long re_answer(struct re_lane *lane, const char *buf, size_t len);
long re_log(struct re_lane *lane, const char *host, size_t host_len);
long re_read(struct re_lane *lane, int fd, char *buf, size_t cap);
long re_serve(struct re_lane *lane, char *buf, size_t cap, int fd, int may_send,
              const char *host);
long re_send(const struct re_lane *lane, int fd, size_t from, size_t len);
long re_accept_serve(struct re_lane *lane, char *buf, size_t cap, int fd,
                     struct re_accepted *out);
struct re_polled {
    int epfd;
    unsigned char *kept;
    char *hosts;
    size_t cap;
    void *events;
    size_t events_cap;
    int *done;
    int *done_ready;
    size_t done_len;
    int *rest;
    uint32_t *rest_events;
    size_t rest_len;
    int read_fd;
    long read_len;
    int first_lines;
};
long re_poll(struct re_lane *lane, char *buf, size_t cap, struct re_polled *p, int timeout_ms);
""")

if os.environ.get("REACTOR_NO_EXTENSIONS") == "1":
    # Asked not to build: make the (optional) extension fail at once with a clear message.
    _source = '#error "REACTOR_NO_EXTENSIONS=1: the C extension is not built"'
else:
    _source = "".join(f'#include "{unit}.h"\n' for unit in UNITS)

ffibuilder.set_source(
    "reactor._native",
    _source,
    sources=[os.path.relpath(os.path.join(HERE, f"{unit}.c")) for unit in UNITS],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2"],
    optional=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
