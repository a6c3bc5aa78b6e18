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
/* Range, If-Range, If-Match, If-None-Match, If-Modified-Since or If-Unmodified-Since is present:
 * the answer may depend on more than the target (RFC 9110 §13, §14.2). */
#define HP_PRECONDITION 16

/* Whether a field of this name (any case) is one of HP_PRECONDITION's: the fast lane's rule,
 * which the HTTP/2 shim applies to its header blocks too. */
int hp_precondition_field(const char *name, size_t name_len);

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
    const char *accept_encoding; /* the first Accept-Encoding value (trimmed), if any */
    size_t accept_encoding_len;
    int accept_encodings;        /* how many Accept-Encoding fields */
    const char *referer;         /* the first Referer value (trimmed), NULL without one */
    size_t referer_len;
    const char *user_agent;      /* the first User-Agent value (trimmed), NULL without one */
    size_t user_agent_len;
};

/* Parses one request head at the start of buf[0:len]. fields_cap should be >= max_headers. */
long hp_parse_request(const char *buf, size_t len, const struct hp_limits *limits,
                      struct hp_request *req, struct hp_field *fields, size_t fields_cap);

/* The methods hp_parse_batch knows by number: the n-th name (from 1) of this list, each name
 * followed by one space. */
extern const char hp_methods[];
/* A request's second meta slot: its HP_* flags plus its method's number times this. */
#define HP_METHOD_UNIT 32

/* The binding's entry point: every head in buf[start:len] in one call, stopping after a head
 * with a body, at an incomplete head, at an error, or when meta or out is full.
 * meta[0]: 0 (stopped normally), -1 (buffers full: call again from meta[1]) or an error status;
 * meta[1]: offset just past the last head parsed; meta[2]: bytes written to out; then three
 * slots per request: number of fields, flags + HP_METHOD_UNIT * method number (0: a method not
 * in hp_methods), content length (-1: none). out receives, per request,
 * "method\0target\0name\0value\0..." with names lower-cased and the method empty when it has
 * a number. Returns the number of requests. out_cap must be at least max_head, meta_cap at
 * least 6. */
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

/* The fast lane's scan: the plain requests at the start of buf[start:len], where a plain
 * request is a complete, valid head of a GET or HEAD with no body, no HP_PRECONDITION field and
 * at most one Accept-Encoding field, so that its answer can depend only on its target, method,
 * version, keep-alive and Accept-Encoding. Stops at the first other head (or incomplete head,
 * or error: the full parse reports those), after a request that does not keep the connection
 * alive, or when meta or out is full. meta[1]: offset just past the last plain head; meta[2]:
 * bytes written to out; meta[3 + i]: offset where the i-th plain head starts. out receives, per
 * request, its key: the target; one byte, 1 + the HP_PLAIN_* bits; the Accept-Encoding value
 * when HP_PLAIN_ACCEPT_ENCODING is set; NUL. A target holds no byte below 0x21 and a value no
 * NUL, so the key is unambiguous. With `logged`, each key is followed by what an access log
 * writes of the request besides it: its Referer and User-Agent values, each NUL-terminated, or
 * HP_ABSENT (a control byte no value holds) for a field it does not have. Returns the count. */
#define HP_PLAIN_HEAD 1
#define HP_PLAIN_HTTP11 2
#define HP_PLAIN_KEEP_ALIVE 4
#define HP_PLAIN_ACCEPT_ENCODING 8
#define HP_ABSENT "\x01"
long hp_scan_plain(const struct hp_batch *batch, const char *buf, size_t len, size_t start,
                   int logged);

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
