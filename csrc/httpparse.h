/* httpparse: a strict HTTP/1.1 request-head parser and chunked-body decoder.
 *
 * No I/O and no malloc: the caller owns the input, the field array and every output buffer.
 * The rules (grammar, limits, error order, the bare-LF policy) are those documented in
 * reactor/parser.py; reactor/_pyparser.py is the pure-Python twin and must agree byte for byte.
 */
#ifndef HTTPPARSE_H
#define HTTPPARSE_H

#include <stddef.h>
#include <stdint.h>

/* hp_parse_request returns the head length (> 0), HP_INCOMPLETE, or an error as the negated
 * HTTP status it becomes: -400, -414, -417, -431, -501 or -505. */
#define HP_INCOMPLETE (-1)

/* hp_request.flags */
#define HP_CHUNKED 1
#define HP_KEEP_ALIVE 2
#define HP_EXPECT_CONTINUE 4
#define HP_HTTP11 8

/* A chunk-size line (size and extensions, without CRLF) longer than this is an error. */
#define HP_MAX_CHUNK_LINE 4096

struct hp_limits {
    size_t max_request_line; /* longer request line: 414 */
    size_t max_head;         /* longer head, leading empty lines included: 431 */
    size_t max_headers;      /* more field lines: 431 */
};

/* Pointers into the caller's buffer; values are trimmed of SP/HTAB, names keep their case. */
struct hp_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct hp_request {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int flags;              /* HP_* bits */
    int64_t content_length; /* -1 when there is none */
    size_t num_fields;
};

/* Parses one request head at the start of buf[0:len]. fields_cap should be >= max_headers. */
long hp_parse_request(const char *buf, size_t len, const struct hp_limits *limits,
                      struct hp_request *req, struct hp_field *fields, size_t fields_cap);

/* The binding's entry point: every head in buf[start:len] in one call, stopping after a head
 * with a body, at an incomplete head, at an error, or when meta or out is full.
 * meta[0]: 0 (stopped normally), -1 (buffers full: call again from meta[1]) or an error status;
 * meta[1]: offset just past the last head parsed; meta[2]: bytes written to out; then three
 * slots per request: number of fields, flags, content length (-1: none). out receives, per
 * request, "method\0target\0name\0value\0..." with names lower-cased. Returns the number of
 * requests. out_cap must be at least max_head, meta_cap at least 6. */
struct hp_batch {
    struct hp_limits limits;
    struct hp_field *fields;
    size_t fields_cap;
    int64_t *meta;
    size_t meta_cap;
    char *out;
    size_t out_cap;
};

long hp_parse_batch(const struct hp_batch *batch, const char *buf, size_t len, size_t start);

/* Incremental chunked-body decoder. Zero the struct and set max_trailers to start a body. */
struct hp_chunked {
    int state;
    int digits;
    uint64_t size;      /* chunk-size being read, then the data left in the chunk */
    size_t line;        /* bytes of the current chunk-size line */
    size_t trailer;     /* bytes of the trailer section */
    size_t max_trailers;
};

/* Consumes buf[0:len] (all of it, unless the body ends first), copying payload to out, which
 * needs room for len bytes. Returns the bytes consumed or -400; *out_len gets the payload size.
 * The body is complete once hp_chunked_done() is true. */
long hp_decode_chunked(struct hp_chunked *d, const char *buf, size_t len, char *out,
                       size_t *out_len);
int hp_chunked_done(const struct hp_chunked *d);

#endif
