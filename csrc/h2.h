/* The HTTP/2 server side of one connection, sans I/O: libnghttp2 driven with mem_recv/mem_send.
 *
 * Bytes in: h2_recv() runs every frame of one read through the library and writes what
 * Python must act on as records of four int64 (kind, stream, a, b) into the caller's batch;
 * request header blocks are packed `name\0value\0...` into the batch's arena. Bytes out:
 * h2_send() pulls frames until the batch's output is full or the byte budget is spent, as
 * records too: runs of the output buffer, file pieces to sendfile, and the streams that closed
 * or wait for more body, in the order they happen.
 *
 * The loop owns the socket: nothing here reads or writes one. The library allocates its session
 * (nghttp2_session_server_new3, through an allocator that counts its bytes in h2_conn.memory);
 * everything else of ours lives in caller-owned memory: the
 * h2_conn, one h2_body per response, and the h2_batch shared by every connection of a loop.
 * The guards the library lacks (a header list limit on what it receives, a budget of frames that
 * cost us work without asking for a response, a hard cap against HPACK bombs) are kept here, so
 * that Python sees one call per read.
 */
#ifndef REACTOR_H2_H
#define REACTOR_H2_H

#include <stddef.h>
#include <stdint.h>
#include <nghttp2/nghttp2.h>

/* Record kinds (records are int64 quadruples: kind | flags << 8, stream, a, b). */
#define H2_NONE 0      /* nothing (a request whose stream closed within the same call) */
#define H2_REQUEST 1   /* a request head: arena[a, a + b); flags H2_END_STREAM, ... */
#define H2_DATA 2      /* request body bytes: input[a, a + b) */
#define H2_END 3       /* the request body ended (END_STREAM on DATA or trailers) */
#define H2_CLOSE 4     /* the stream closed: a = error code (0 after a complete exchange);
                        * b = body bytes framed, for a kept answer's stream (lane_records) */
#define H2_STARVED 5   /* a response body needs its next piece (h2_supply) */
#define H2_BYTES 6     /* write out[a, a + b) */
#define H2_FILE 7      /* sendfile from the file: stream = fd, a = offset, b = count */
#define H2_PAUSED 8    /* h2_recv stopped at input offset a: call again with the rest (b = 0:
                        * at once, the arena was full; b = 1: later, the requests of
                        * this call reached the batch's requests_cap) */
#define H2_PARTIAL 9   /* a header block continues in the next read: arena[a, a + b) so far */
#define H2_PLAIN 10    /* the next record's request is plain: its key is arena[a, a + b) */

/* Flags of an H2_REQUEST record. */
#define H2_END_STREAM 1     /* no body follows */
#define H2_TOO_LARGE 2      /* the header list passed the limit: answer 431, fields dropped */
#define H2_COOKIES 4        /* more than one cookie field: join them (RFC 9113 §8.2.3) */
#define H2_HOST 8           /* a host field is among the fields (else :authority stands alone) */
#define H2_PSEUDO_SHIFT 4   /* flags >> H2_PSEUDO_SHIFT: the pseudo-fields leading the block */

/* The fast lane. A request is plain by the HTTP/1.1 lane's rules (httpparse.h's hp_scan_plain):
 * a GET or HEAD without a body, without an HP_PRECONDITION field and with at most one
 * accept-encoding field; here also without a host field (whether it agrees with :authority is
 * the full path's to judge) and with a :path of bytes above 0x20. Its key has the HTTP/1.1
 * key's form (the :path; one byte, 1 + the HP_PLAIN_* bits of an HTTP/1.1 keep-alive request;
 * the accept-encoding value), so that one table maker reads both.
 *
 * An h2_ready is one kept answer: the response's fields, as h2_respond would submit them, and
 * its body, copied; reference counted, as the streams answered from it hold it until they
 * close. h2_answer submits it for a stream; such a stream's close makes an H2_CLOSE record only
 * with lane_records set (the caller logs each answer). */
struct h2_ready;
struct h2_lane_stream;

/* Feature bits of the library this was built against, found by symbol at build time. */
#define H2_HAS_RESET_RATE_LIMIT 1   /* nghttp2_option_set_stream_reset_rate_limit */
#define H2_HAS_MAX_CONTINUATIONS 2  /* nghttp2_option_set_max_continuations */

/* The library's limits we set, and our own guards (reactor/http/limits.py says which is which). */
struct h2_limits {
    uint32_t max_concurrent_streams;  /* SETTINGS_MAX_CONCURRENT_STREAMS, enforced by the library */
    uint32_t max_header_list;         /* SETTINGS_MAX_HEADER_LIST_SIZE, enforced here: 431 */
    uint32_t max_fields;              /* fields per request, enforced here: 431 */
    uint32_t hpack_bomb;              /* decoded bytes of one block that end the connection */
    uint32_t max_settings;            /* entries per SETTINGS frame (library) */
    uint32_t max_outbound_ack;        /* queued SETTINGS/PING ACKs (library) */
    uint32_t max_continuations;       /* CONTINUATION frames per block (library where it can) */
    uint32_t reset_burst, reset_rate; /* RST_STREAM received: token bucket (library if it has it) */
    uint32_t glitch_burst, glitch_rate; /* frames that cost work and ask for nothing (ours) */
    uint32_t initial_window;          /* SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t connection_window;       /* our receive window for the whole connection */
};

/* Counters of what the guards saw, for the metrics. */
enum h2_counter {
    H2_COUNT_GLITCHES,       /* frames charged to the glitch budget */
    H2_COUNT_RESETS_RECEIVED,
    H2_COUNT_RESETS_SENT,    /* RST_STREAM we sent with an error code (the peer's doing) */
    H2_COUNT_TOO_LARGE,      /* header lists over the limit */
    H2_COUNT_N
};

/* Why the connection was ended with a GOAWAY of ours (H2_GOAWAY_NONE: it was not). */
enum h2_reason {
    H2_REASON_NONE,
    H2_REASON_GLITCHES,      /* the glitch budget ran out: ENHANCE_YOUR_CALM */
    H2_REASON_RESETS,        /* the reset budget ran out: ENHANCE_YOUR_CALM */
    H2_REASON_HPACK_BOMB,    /* a header block decoded past hpack_bomb: ENHANCE_YOUR_CALM */
    H2_REASON_FLOODED,       /* queued ACKs over max_outbound_ack: ENHANCE_YOUR_CALM */
    H2_REASON_CONTINUATIONS, /* too many CONTINUATION frames: ENHANCE_YOUR_CALM */
    H2_REASON_PROTOCOL,      /* any other fatal error of the peer's: the library's code */
};

struct h2_batch {
    int64_t *records;        /* 4 per record */
    size_t records_cap;      /* records (not int64s) */
    char *arena;             /* request header blocks */
    size_t arena_cap;
    size_t arena_used;       /* set by the caller before h2_recv (a carried partial block) */
    uint8_t *out;            /* frames to write */
    size_t out_cap;
    size_t requests_cap;     /* h2_recv stops at the request after this many (0: never), so
                              * that a flood of them waits its turn as others' reads do */
    size_t resets_cap;       /* or after this many RST_STREAM (0: never): a rapid reset's
                              * requests cost the library's work and no answer */
};

/* One response body: memory (data != NULL) or a file (fd >= 0), in pieces. `left` bytes of the
 * current piece are still to be framed from `offset`; `last` says no piece follows it. */
struct h2_body {
    const uint8_t *data;
    int fd;
    int no_copy;             /* file pieces as H2_FILE records (sendfile) instead of pread */
    int last;
    int starved;             /* the library was told DEFERRED; h2_supply resumes it */
    int64_t offset;
    int64_t left;
    int64_t sent;            /* body bytes framed so far */
};

struct h2_conn {
    nghttp2_session *session;
    struct h2_batch *batch;  /* during a call */
    const uint8_t *input;    /* during h2_recv: the bytes DATA offsets refer to */
    size_t records;          /* during a call: records written */
    size_t out_used, run_start;
    int64_t budget;          /* during h2_send: body bytes still allowed */
    int send_paused;         /* during h2_send: send_body wrote a DATA frame (h2.c) */
    int64_t now_ms;
    struct h2_limits limits;
    int32_t block_stream;    /* the request header block being received (0: none) */
    size_t block_start;
    uint64_t block_bytes;
    uint32_t block_fields;
    uint32_t block_flags;
    uint32_t block_continuations;
    uint32_t block_plain;     /* what the block shows of a plain request (h2.c) */
    uint32_t path_at, path_len;        /* of :path's value, from block_start */
    uint32_t accept_at, accept_len;    /* of the first accept-encoding value, from block_start */
    struct h2_lane_stream *lane;       /* streams answered by h2_answer, still open */
    uint32_t lane_open;
    int lane_records;                  /* set by the caller: their closes are recorded too */
    int paused;              /* during h2_recv: the arena is nearly full, or (later) */
    int later;               /* the requests of the call reached requests_cap */
    size_t requests;         /* during h2_recv: request blocks recorded */
    size_t resets;           /* during h2_recv: RST_STREAM frames received */
    int receiving;           /* during h2_recv */
    int64_t glitch_tokens, glitch_ms;
    int64_t reset_tokens, reset_ms;
    int reason;              /* enum h2_reason */
    uint32_t goaway_code;
    uint32_t counts[H2_COUNT_N];
    size_t memory;           /* bytes the library holds for the session now (h2.c's allocator) */
};

int h2_features(void);
const char *h2_library_version(void);

/* 0, or a negative nghttp2 error. On success the connection's SETTINGS are queued. */
int h2_open(struct h2_conn *c, const struct h2_limits *limits);
void h2_close(struct h2_conn *c);

/* Records written (>= 0), or a negative nghttp2 error after which the connection is to be ended:
 * a GOAWAY is queued where one can be (write what h2_send gives, then close). */
long h2_recv(struct h2_conn *c, struct h2_batch *b, const uint8_t *data, size_t len,
             int64_t now_ms);

/* Records written (>= 0) or a negative nghttp2 error. Frames are pulled until the output buffer
 * has less than one frame of room, the records are nearly full, or `budget` body bytes are
 * framed; h2_want_write() then says whether more is waiting. */
long h2_send(struct h2_conn *c, struct h2_batch *b, int64_t budget);

/* Submit a response (a body's counters start again: bodies may be reused). `fields` holds HTTP/1-style `Name: value\r\n` lines (hop-by-hop fields
 * are dropped, names lower-cased by the library), `extra` more of them (Date, Server);
 * content_length < 0 sends none. With `body` NULL the HEADERS frame ends the stream. */
int h2_respond(struct h2_conn *c, int32_t stream_id, int status, const char *fields,
               size_t fields_len, const char *extra, size_t extra_len, int64_t content_length,
               struct h2_body *body);

/* The next piece of a body that reported H2_STARVED (or the first, before h2_respond): `data`,
 * or `count` bytes of file `fd` from `offset`, as H2_FILE records with `no_copy`. */
int h2_supply(struct h2_conn *c, int32_t stream_id, struct h2_body *body, const uint8_t *data,
              int fd, int64_t offset, int64_t count, int last, int no_copy);

/* A kept answer: the arguments of h2_respond, and `body_len` bytes of `body` (body_len < 0: the
 * HEADERS frame ends the stream). NULL when the fields do not fit or memory is short. */
struct h2_ready *h2_ready_new(int status, const char *fields, size_t fields_len,
                              const char *extra, size_t extra_len, int64_t content_length,
                              const uint8_t *body, int64_t body_len);
void h2_ready_release(struct h2_ready *r);
/* The kept answer for a stream whose request was plain; 0 or a negative nghttp2 error. */
int h2_answer(struct h2_conn *c, int32_t stream_id, struct h2_ready *r);
/* Body bytes framed so far of a stream answered by h2_answer (0 for any other stream). */
int64_t h2_answer_sent(struct h2_conn *c, int32_t stream_id);

int h2_consume(struct h2_conn *c, int32_t stream_id, size_t count);
int h2_reset(struct h2_conn *c, int32_t stream_id, uint32_t code);
/* Graceful shutdown: first call, a GOAWAY announcing it; second, the GOAWAY with the last id. */
int h2_shutdown(struct h2_conn *c, int final);
int h2_terminate(struct h2_conn *c, uint32_t code);
int h2_want_read(struct h2_conn *c);
int h2_want_write(struct h2_conn *c);

#endif
