/* The HTTP/2 server side of one connection over libnghttp2; see h2.h. */
#include "h2.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "httpparse.h"

/* Input is handed to the library in slices of this size, so that one slice cannot produce more
 * records than are free: every frame is at least 9 bytes and yields at most 3 records. */
#define SLICE 4096
#define SLICE_RECORDS (3 * (SLICE / 9 + 1))

/* h2_send stops pulling frames with less than this much output room: the largest piece one
 * mem_send call returns is a header block (the library's 64 KiB cap) or a DATA frame of at most
 * MAX_DATA_FRAME, plus frame headers. */
#define MAX_DATA_FRAME (64 * 1024)
#define SEND_ROOM (MAX_DATA_FRAME + 16 * 1024)
#define SEND_RECORDS 8   /* records one mem_send call can add: a run, a file piece, closes */

/* A block flag of our own, beside those of h2.h: one cookie field was seen. */
#define H2_SEEN_COOKIE 0x100

/* Fields of one response, its status and content-length included. */
#define MAX_RESPONSE_FIELDS 256

/* What a request block has shown of a plain request so far (h2_conn.block_plain). */
#define PLAIN_GET 1
#define PLAIN_HEAD 2
#define PLAIN_PATH 4
#define PLAIN_ACCEPT 8   /* one accept-encoding field seen */
#define PLAIN_NOT 16     /* something the fast lane must not answer */

struct h2_ready {
    long refs;
    size_t count;
    nghttp2_nv *nva;
    const uint8_t *body;
    int64_t body_len;      /* < 0: none */
};

/* A stream answered from an h2_ready: its stream user data, in the connection's list; its
 * body is framed as any body in memory is. */
struct h2_lane_stream {
    struct h2_body body;
    struct h2_ready *ready;
    struct h2_lane_stream *prev, *next;
};

static int record(struct h2_conn *c, int64_t kind, int64_t stream, int64_t a, int64_t b) {
    struct h2_batch *batch = c->batch;
    if (c->records >= batch->records_cap) {
        return -1;   /* cannot happen: the callers keep room (SLICE_RECORDS, SEND_RECORDS) */
    }
    int64_t *r = batch->records + 4 * c->records++;
    r[0] = kind;
    r[1] = stream;
    r[2] = a;
    r[3] = b;
    return 0;
}

/* -- budgets ------------------------------------------------------------------------------- */

/* A token bucket of `burst` tokens refilled at `rate` a second; 0 when a token was taken,
 * -1 when the bucket is empty. */
static int take_token(int64_t *tokens, int64_t *stamp, int64_t now_ms, uint32_t burst,
                      uint32_t rate) {
    if (now_ms > *stamp) {
        int64_t refill = (now_ms - *stamp) * rate / 1000;
        if (refill > 0) {
            *tokens += refill;
            if (*tokens > burst) {
                *tokens = burst;
            }
            *stamp += refill * 1000 / (rate ? rate : 1);
        }
    }
    if (*tokens <= 0) {
        return -1;
    }
    --*tokens;
    return 0;
}

static int calm_down(struct h2_conn *c, int reason) {
    if (c->reason == H2_REASON_NONE) {
        c->reason = reason;
        c->goaway_code = NGHTTP2_ENHANCE_YOUR_CALM;
        nghttp2_session_terminate_session(c->session, NGHTTP2_ENHANCE_YOUR_CALM);
    }
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* A frame that made us work without asking for anything (a flood's unit). */
static int glitch(struct h2_conn *c) {
    c->counts[H2_COUNT_GLITCHES]++;
    if (take_token(&c->glitch_tokens, &c->glitch_ms, c->now_ms, c->limits.glitch_burst,
                   c->limits.glitch_rate) < 0) {
        return calm_down(c, H2_REASON_GLITCHES);
    }
    return 0;
}

/* Work the peer asked for and got (a request answered, a DATA frame sent) earns a token back,
 * so that the WINDOW_UPDATEs of a long download are never a flood. */
static void credit(struct h2_conn *c) {
    if (c->glitch_tokens < c->limits.glitch_burst) {
        c->glitch_tokens++;
    }
}

/* -- receiving ----------------------------------------------------------------------------- */

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user) {
    struct h2_conn *c = user;
    (void)session;
    if (hd->type == NGHTTP2_CONTINUATION) {
#ifndef H2_HAVE_MAX_CONTINUATIONS
        if (++c->block_continuations > c->limits.max_continuations) {
            return calm_down(c, H2_REASON_CONTINUATIONS);
        }
#endif
        return 0;
    }
    if (c->block_stream != 0) {
        /* A block the library refused part way (it resets the stream): forget its fields. */
        c->batch->arena_used = c->block_start;
        c->block_stream = 0;
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    struct h2_conn *c = user;
    (void)session;
    c->block_bytes = 0;
    c->block_fields = 0;
    c->block_flags = 0;
    c->block_continuations = 0;
    c->block_plain = 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        c->block_stream = frame->hd.stream_id;
        c->block_start = c->batch->arena_used;
    }
    return 0;
}

static int is(const uint8_t *p, size_t len, const char *literal, size_t literal_len) {
    return len == literal_len && memcmp(p, literal, len) == 0;
}

#define LIT(s) s, sizeof(s) - 1

/* One field of a request block, kept at `value_at` from the block's start: what it says of
 * the request being plain (h2.h). Names arrive lower-case (the library checks). */
static void plain_field(struct h2_conn *c, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen, uint32_t value_at) {
    if (name[0] == ':') {
        if (is(name, namelen, LIT(":method"))) {
            c->block_plain |= is(value, valuelen, LIT("GET"))    ? PLAIN_GET
                              : is(value, valuelen, LIT("HEAD")) ? PLAIN_HEAD
                                                                 : PLAIN_NOT;
        } else if (is(name, namelen, LIT(":path"))) {
            for (size_t i = 0; i < valuelen; i++) {
                if (value[i] <= 0x20) {
                    c->block_plain |= PLAIN_NOT;
                    return;
                }
            }
            c->block_plain |= PLAIN_PATH;
            c->path_at = value_at;
            c->path_len = (uint32_t)valuelen;
        }
    } else if (is(name, namelen, LIT("accept-encoding"))) {
        if (c->block_plain & PLAIN_ACCEPT) {
            c->block_plain |= PLAIN_NOT;
        } else {
            c->block_plain |= PLAIN_ACCEPT;
            c->accept_at = value_at;
            c->accept_len = (uint32_t)valuelen;
        }
    } else if (is(name, namelen, LIT("host"))
               || hp_precondition_field((const char *)name, namelen)) {
        c->block_plain |= PLAIN_NOT;
    }
}

/* After a complete request block with END_STREAM: an H2_PLAIN record with the key after the
 * block in the arena, when the request is plain. The arena has room (see on_header). */
static int plain_key(struct h2_conn *c) {
    uint32_t plain = c->block_plain;
    if ((plain & PLAIN_NOT) || !(plain & (PLAIN_GET | PLAIN_HEAD)) || !(plain & PLAIN_PATH)
        || (c->block_flags & H2_TOO_LARGE)) {
        return 0;
    }
    struct h2_batch *b = c->batch;
    char *block = b->arena + c->block_start;
    char *key = b->arena + b->arena_used;
    char *at = key;
    memcpy(at, block + c->path_at, c->path_len);
    at += c->path_len;
    *at++ = (char)(1 + ((plain & PLAIN_HEAD) ? HP_PLAIN_HEAD : 0) + HP_PLAIN_HTTP11
                   + HP_PLAIN_KEEP_ALIVE + ((plain & PLAIN_ACCEPT) ? HP_PLAIN_ACCEPT_ENCODING : 0));
    if (plain & PLAIN_ACCEPT) {
        memcpy(at, block + c->accept_at, c->accept_len);
        at += c->accept_len;
    }
    b->arena_used += (size_t)(at - key);
    return record(c, H2_PLAIN, c->block_stream, key - b->arena, at - key);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user) {
    struct h2_conn *c = user;
    (void)session;
    (void)flags;
    /* RFC 7541 §4.1's size of a field: what SETTINGS_MAX_HEADER_LIST_SIZE counts. */
    c->block_bytes += namelen + valuelen + 32;
    c->block_fields++;
    if (c->block_bytes > c->limits.hpack_bomb) {
        return calm_down(c, H2_REASON_HPACK_BOMB);
    }
    if (c->block_stream != frame->hd.stream_id || (c->block_flags & H2_TOO_LARGE)) {
        return 0;   /* trailers, or a list already over the limit: not kept */
    }
    struct h2_batch *b = c->batch;
    if (c->block_bytes > c->limits.max_header_list || c->block_fields > c->limits.max_fields) {
        c->block_flags = H2_TOO_LARGE;
        c->counts[H2_COUNT_TOO_LARGE]++;
        b->arena_used = c->block_start;
        return 0;
    }
    if (name[0] == ':') {
        /* The library lets pseudo-fields come only first: they lead the block. */
        c->block_flags += 1 << H2_PSEUDO_SHIFT;
    } else if (namelen == 6 && memcmp(name, "cookie", 6) == 0) {
        c->block_flags |= (c->block_flags & H2_SEEN_COOKIE) ? H2_COOKIES : H2_SEEN_COOKIE;
    } else if (namelen == 4 && memcmp(name, "host", 4) == 0) {
        c->block_flags |= H2_HOST;
    }
    char *at = b->arena + b->arena_used;
    memcpy(at, name, namelen);
    at[namelen] = 0;
    memcpy(at + namelen + 1, value, valuelen);
    at[namelen + 1 + valuelen] = 0;
    b->arena_used += namelen + valuelen + 2;
    if (!(c->block_plain & PLAIN_NOT)) {
        plain_field(c, name, namelen, value, valuelen,
                    (uint32_t)(at + namelen + 1 - (b->arena + c->block_start)));
    }
    /* The arena always has room for one whole block (its size is at most the list limit): when
     * less is left, stop here, and the caller empties the arena before going on. */
    if (b->arena_cap - b->arena_used < c->limits.max_header_list) {
        c->paused = 1;
        return NGHTTP2_ERR_PAUSE;
    }
    /* A request past this call's share: it goes on in a later call, from here. */
    if ((b->requests_cap && c->requests >= b->requests_cap)
        || (b->resets_cap && c->resets >= b->resets_cap)) {
        c->paused = c->later = 1;
        return NGHTTP2_ERR_PAUSE;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user) {
    struct h2_conn *c = user;
    (void)session;
    (void)flags;
    return record(c, H2_DATA, stream_id, data - c->input, (int64_t)len);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    struct h2_conn *c = user;
    (void)session;
    int32_t stream_id = frame->hd.stream_id;
    int end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && c->block_stream == stream_id) {
            credit(c);
            int64_t flags = (c->block_flags & ~H2_SEEN_COOKIE) | (end_stream ? H2_END_STREAM : 0);
            int64_t length = (int64_t)(c->batch->arena_used - c->block_start);
            if (end_stream && plain_key(c) < 0) {
                return NGHTTP2_ERR_CALLBACK_FAILURE;
            }
            c->block_stream = 0;
            c->requests++;
            return record(c, H2_REQUEST | flags << 8, stream_id, (int64_t)c->block_start,
                          length);
        }
        return end_stream ? record(c, H2_END, stream_id, 0, 0) : 0;   /* trailers: dropped */
    case NGHTTP2_DATA:
        if (end_stream) {
            return record(c, H2_END, stream_id, 0, 0);
        }
        return frame->hd.length == 0 ? glitch(c) : 0;
    case NGHTTP2_RST_STREAM:
        c->counts[H2_COUNT_RESETS_RECEIVED]++;
        c->resets++;
        if (take_token(&c->reset_tokens, &c->reset_ms, c->now_ms, c->limits.reset_burst,
                       c->limits.reset_rate) < 0) {
            return calm_down(c, H2_REASON_RESETS);
        }
        return 0;
    case NGHTTP2_PING:
    case NGHTTP2_SETTINGS:
        return (frame->hd.flags & NGHTTP2_FLAG_ACK) ? 0 : glitch(c);
    case NGHTTP2_PRIORITY:
    case NGHTTP2_WINDOW_UPDATE:
    case NGHTTP2_PRIORITY_UPDATE:
        return glitch(c);
    default:
        return 0;
    }
}

static int on_invalid_frame(nghttp2_session *session, const nghttp2_frame *frame, int error,
                            void *user) {
    struct h2_conn *c = user;
    (void)session;
    (void)error;
    if (frame->hd.stream_id == c->block_stream) {
        c->batch->arena_used = c->block_start;
        c->block_stream = 0;
    }
    return glitch(c);
}

static void lane_forget(struct h2_conn *c, struct h2_lane_stream *ls) {
    if (ls->prev != NULL) {
        ls->prev->next = ls->next;
    } else {
        c->lane = ls->next;
    }
    if (ls->next != NULL) {
        ls->next->prev = ls->prev;
    }
    c->lane_open--;
    h2_ready_release(ls->ready);
    free(ls);
}

/* How far back on_stream_close looks for the request of a stream closed within the same
 * h2_recv (a rapid reset's pairs put it just before). */
#define CLOSED_LOOKBACK 8

/* The stream closed before Python saw its request (the client reset it within the same read):
 * the request's records become H2_NONE, and 1 is returned, when they are near the end. */
static int forget_request(struct h2_conn *c, int32_t stream_id) {
    int64_t *records = c->batch->records;
    size_t floor = c->records > CLOSED_LOOKBACK ? c->records - CLOSED_LOOKBACK : 0;
    for (size_t i = c->records; i-- > floor;) {
        int64_t *r = records + 4 * i;
        if (r[1] == stream_id && (r[0] & 0xff) == H2_REQUEST) {
            r[0] = H2_NONE;
            if (i > 0 && (r[-4] & 0xff) == H2_PLAIN && r[-3] == stream_id) {
                r[-4] = H2_NONE;
            }
            return 1;
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user) {
    struct h2_conn *c = user;
    if (stream_id == c->block_stream) {
        c->block_stream = 0;
    }
    if (c->receiving && forget_request(c, stream_id)) {
        return 0;   /* nothing to answer, nothing to release: Python never hears of it */
    }
    struct h2_lane_stream *ls = nghttp2_session_get_stream_user_data(session, stream_id);
    if (ls != NULL) {
        int64_t sent = ls->body.sent;
        lane_forget(c, ls);
        /* Python holds nothing of it, but may log it. */
        return c->lane_records ? record(c, H2_CLOSE, stream_id, error_code, sent) : 0;
    }
    return record(c, H2_CLOSE, stream_id, error_code, 0);
}

/* -- sending ------------------------------------------------------------------------------- */

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user) {
    struct h2_conn *c = user;
    (void)session;
    if (frame->hd.type == NGHTTP2_DATA) {
        credit(c);
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
        uint32_t code = frame->goaway.error_code;
        if (code != NGHTTP2_NO_ERROR && c->reason == H2_REASON_NONE) {
            /* The library ended the connection for a protocol error of the peer's. */
            c->reason = H2_REASON_PROTOCOL;
            c->goaway_code = code;
        }
    } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
        uint32_t code = frame->rst_stream.error_code;
        if (code != NGHTTP2_NO_ERROR && code != NGHTTP2_CANCEL) {
            /* The peer made us reset it (CVE-2025-8671): a glitch of its own making. */
            c->counts[H2_COUNT_RESETS_SENT]++;
            return glitch(c);
        }
    }
    return 0;
}

/* The bytes of the output buffer not yet described by a record become one H2_BYTES run. */
static void end_run(struct h2_conn *c) {
    if (c->out_used > c->run_start) {
        record(c, H2_BYTES, 0, (int64_t)c->run_start, (int64_t)(c->out_used - c->run_start));
        c->run_start = c->out_used;
    }
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *flags, nghttp2_data_source *source,
                         void *user) {
    struct h2_conn *c = user;
    struct h2_body *body = source->ptr;
    (void)session;
    if (body->left == 0) {
        if (body->last) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        body->starved = 1;
        record(c, H2_STARVED, stream_id, 0, 0);
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = body->left < (int64_t)length ? (size_t)body->left : length;
    (void)buf;   /* the payload never passes through the library's frame buffer: send_body */
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    body->left -= n;
    body->sent += n;
    c->budget -= n;
    if (body->left == 0 && body->last) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

/* Every DATA frame's payload goes from its source to the output here, past the library's frame
 * buffer (which then holds only control frames and header blocks: one page of it is written,
 * see counted_malloc): copied from memory, read from the file (TLS), or recorded as a file
 * piece to sendfile. One frame per nghttp2_session_mem_send call (PAUSE), so that h2_send's
 * room checks hold for each. */
static int send_body(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                     size_t length, nghttp2_data_source *source, void *user) {
    struct h2_conn *c = user;
    struct h2_body *body = source->ptr;
    uint8_t *out = c->batch->out + c->out_used;
    (void)session;
    (void)frame;   /* no padding is ever chosen, so the frame is its header and the payload */
    if (body->fd < 0) {
        memcpy(out + 9, body->data + body->offset, length);
    } else if (!body->no_copy) {
        for (size_t got = 0; got < length;) {
            ssize_t n = pread(body->fd, out + 9 + got, length - got, body->offset + (int64_t)got);
            if (n <= 0) {
                /* The file shrank: the length promised can no longer be kept. */
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
            }
            got += (size_t)n;
        }
    }
    memcpy(out, framehd, 9);
    c->out_used += 9;
    if (body->fd >= 0 && body->no_copy) {
        end_run(c);
        record(c, H2_FILE, body->fd, body->offset, (int64_t)length);
    } else {
        c->out_used += length;
    }
    body->offset += (int64_t)length;
    c->send_paused = 1;
    return NGHTTP2_ERR_PAUSE;
}

static ssize_t data_length(nghttp2_session *session, uint8_t frame_type, int32_t stream_id,
                           int32_t session_window, int32_t stream_window,
                           uint32_t remote_max_frame_size, void *user) {
    (void)session;
    (void)frame_type;
    (void)stream_id;
    (void)user;
    /* Frames as large as the peer allows (fewer frames and calls for large bodies). */
    ssize_t n = remote_max_frame_size < MAX_DATA_FRAME ? remote_max_frame_size : MAX_DATA_FRAME;
    if (session_window < n) {
        n = session_window;
    }
    if (stream_window < n) {
        n = stream_window;
    }
    return n > 0 ? n : 1;
}

/* -- the library's allocator: counted per session ----------------------------------------- */

/* Every block the library allocates for a session carries its size in front, so that
 * h2_conn.memory is the bytes it holds now: one addition per malloc and free.
 *
 * Blocks of MAPPED_MIN bytes and more are pages of their own (mmap), so that only the pages
 * written are resident: the session's outbound frame buffer (16 KiB + 10 bytes, made with the
 * session, later as large as the largest DATA frame), of which the frames it serializes
 * (control frames, HEADERS; DATA payloads bypass it, see send_body) use the first page. From
 * malloc's heap, its other pages are resident as soon as the heap memory had been used
 * before. Smaller blocks (a large header field's buffer among them) stay malloc's. */
#define MAPPED_MIN (16 * 1024)

union counted_head {
    size_t size;
    max_align_t align;
};

static union counted_head *block_new(size_t total) {
    if (total < MAPPED_MIN) {
        return malloc(total);
    }
    void *pages = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return pages == MAP_FAILED ? NULL : pages;
}

static void block_free(union counted_head *head) {
    size_t total = sizeof *head + head->size;
    if (total < MAPPED_MIN) {
        free(head);
    } else {
        munmap(head, total);
    }
}

static void *counted_malloc(size_t size, void *user) {
    if (size > SIZE_MAX - sizeof(union counted_head)) {
        return NULL;
    }
    union counted_head *head = block_new(sizeof *head + size);
    if (head == NULL) {
        return NULL;
    }
    head->size = size;
    ((struct h2_conn *)user)->memory += size;
    return head + 1;
}

static void counted_free(void *ptr, void *user) {
    if (ptr != NULL) {
        union counted_head *head = (union counted_head *)ptr - 1;
        ((struct h2_conn *)user)->memory -= head->size;
        block_free(head);
    }
}

static void *counted_calloc(size_t count, size_t size, void *user) {
    if (size != 0 && count > (SIZE_MAX - sizeof(union counted_head)) / size) {
        return NULL;
    }
    void *ptr = counted_malloc(count * size, user);
    if (ptr != NULL && sizeof(union counted_head) + count * size < MAPPED_MIN) {
        memset(ptr, 0, count * size);   /* fresh pages are zero already, and stay unwritten */
    }
    return ptr;
}

static void *counted_realloc(void *ptr, size_t size, void *user) {
    if (ptr == NULL) {
        return counted_malloc(size, user);
    }
    if (size > SIZE_MAX - sizeof(union counted_head)) {
        return NULL;
    }
    union counted_head *head = (union counted_head *)ptr - 1;
    size_t old = head->size;
    if (sizeof *head + old < MAPPED_MIN && sizeof *head + size < MAPPED_MIN) {
        head = realloc(head, sizeof *head + size);
        if (head == NULL) {
            return NULL;
        }
        head->size = size;
        ((struct h2_conn *)user)->memory += size - old;   /* modulo 2^n: a shrink subtracts */
        return head + 1;
    }
    void *moved = counted_malloc(size, user);   /* into or out of pages of its own */
    if (moved != NULL) {
        memcpy(moved, ptr, old < size ? old : size);
        counted_free(ptr, user);
    }
    return moved;
}

/* -- the API ------------------------------------------------------------------------------- */

int h2_features(void) {
    int features = 0;
#ifdef H2_HAVE_RESET_RATE_LIMIT
    features |= H2_HAS_RESET_RATE_LIMIT;
#endif
#ifdef H2_HAVE_MAX_CONTINUATIONS
    features |= H2_HAS_MAX_CONTINUATIONS;
#endif
    return features;
}

const char *h2_library_version(void) {
    return nghttp2_version(0)->version_str;
}

int h2_open(struct h2_conn *c, const struct h2_limits *limits) {
    memset(c, 0, sizeof *c);
    c->limits = *limits;
    c->glitch_tokens = limits->glitch_burst;
    c->reset_tokens = limits->reset_burst;

    nghttp2_session_callbacks *callbacks;
    int rv = nghttp2_session_callbacks_new(&callbacks);
    if (rv != 0) {
        return rv;
    }
    nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, on_invalid_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
    nghttp2_session_callbacks_set_send_data_callback(callbacks, send_body);
    nghttp2_session_callbacks_set_data_source_read_length_callback(callbacks, data_length);

    nghttp2_option *option;
    rv = nghttp2_option_new(&option);
    if (rv != 0) {
        nghttp2_session_callbacks_del(callbacks);
        return rv;
    }
    /* Request bodies are consumed as Python takes them (h2_consume): the backpressure. */
    nghttp2_option_set_no_auto_window_update(option, 1);
    nghttp2_option_set_max_settings(option, limits->max_settings);
    nghttp2_option_set_max_outbound_ack(option, limits->max_outbound_ack);
    /* Streams we could open (push) are none; set so the library never assumes 100. */
    nghttp2_option_set_peer_max_concurrent_streams(option, limits->max_concurrent_streams);
    /* RFC 7540 priorities only for a client that does not speak RFC 9218's (older Chrome). */
    nghttp2_option_set_server_fallback_rfc7540_priorities(option, 1);
#ifdef H2_HAVE_RESET_RATE_LIMIT
    /* Ours (ENHANCE_YOUR_CALM, the same on every build) runs out first; the library's bucket
     * (INTERNAL_ERROR) stays behind it at twice the size. */
    nghttp2_option_set_stream_reset_rate_limit(option, 2 * (uint64_t)limits->reset_burst,
                                               2 * (uint64_t)limits->reset_rate);
#endif
#ifdef H2_HAVE_MAX_CONTINUATIONS
    nghttp2_option_set_max_continuations(option, limits->max_continuations);
#endif
    nghttp2_mem mem = {c, counted_malloc, counted_free, counted_calloc, counted_realloc};
    rv = nghttp2_session_server_new3(&c->session, callbacks, c, option, &mem);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (rv != 0) {
        c->session = NULL;
        return rv;
    }
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits->max_concurrent_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits->max_header_list},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits->initial_window},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    rv = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings,
                                 sizeof settings / sizeof settings[0]);
    if (rv == 0 && limits->connection_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
        rv = nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)limits->connection_window);
    }
    if (rv != 0) {
        h2_close(c);
    }
    return rv;
}

void h2_close(struct h2_conn *c) {
    if (c->session != NULL) {
        nghttp2_session_del(c->session);   /* closes no stream through the callback */
        c->session = NULL;
    }
    while (c->lane != NULL) {
        lane_forget(c, c->lane);
    }
}

/* A fatal error of mem_recv: end the connection with the code RFC 9113 names for it. */
static long fail(struct h2_conn *c, long error) {
    if (c->reason == H2_REASON_NONE) {
        uint32_t code;
        switch (error) {
        case NGHTTP2_ERR_FLOODED:
            c->reason = H2_REASON_FLOODED;
            code = NGHTTP2_ENHANCE_YOUR_CALM;
            break;
        case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
            c->reason = H2_REASON_CONTINUATIONS;
            code = NGHTTP2_ENHANCE_YOUR_CALM;
            break;
        case NGHTTP2_ERR_HEADER_COMP:
            c->reason = H2_REASON_PROTOCOL;
            code = NGHTTP2_COMPRESSION_ERROR;
            break;
        case NGHTTP2_ERR_NOMEM:
        case NGHTTP2_ERR_CALLBACK_FAILURE:
            c->reason = H2_REASON_PROTOCOL;
            code = NGHTTP2_INTERNAL_ERROR;
            break;
        default:   /* a bad preface, or another protocol error of the peer's */
            c->reason = H2_REASON_PROTOCOL;
            code = NGHTTP2_PROTOCOL_ERROR;
            break;
        }
        c->goaway_code = code;
        nghttp2_session_terminate_session(c->session, code);
    }
    c->batch = NULL;
    c->receiving = 0;
    return error;
}

long h2_recv(struct h2_conn *c, struct h2_batch *b, const uint8_t *data, size_t len,
             int64_t now_ms) {
    c->batch = b;
    c->input = data;
    c->records = 0;
    c->now_ms = now_ms;
    c->paused = c->later = 0;
    c->requests = c->resets = 0;
    c->receiving = 1;
    if (c->block_stream != 0) {
        c->block_start = 0;   /* the caller put the block's fields so far at the start */
    }
    size_t pos = 0;
    while (pos < len) {
        if (b->records_cap - c->records < SLICE_RECORDS + 2) {
            break;
        }
        size_t slice = len - pos < SLICE ? len - pos : SLICE;
        ssize_t n = nghttp2_session_mem_recv(c->session, data + pos, slice);
        if (n < 0) {
            return fail(c, n);
        }
        pos += (size_t)n;
        if (c->paused) {
            break;
        }
    }
    if (pos < len) {
        record(c, H2_PAUSED, 0, (int64_t)pos, c->later);
    }
    if (c->block_stream != 0) {
        record(c, H2_PARTIAL, c->block_stream, (int64_t)c->block_start,
               (int64_t)(b->arena_used - c->block_start));
    }
    c->batch = NULL;
    c->receiving = 0;
    return (long)c->records;
}

long h2_send(struct h2_conn *c, struct h2_batch *b, int64_t budget) {
    c->batch = b;
    c->records = 0;
    c->out_used = 0;
    c->run_start = 0;
    c->budget = budget;
    c->send_paused = 0;
    while (b->out_cap - c->out_used >= SEND_ROOM && b->records_cap - c->records >= SEND_RECORDS
           && c->budget > 0) {
        const uint8_t *chunk;
        ssize_t n = nghttp2_session_mem_send(c->session, &chunk);
        if (n < 0) {
            c->batch = NULL;
            return n;
        }
        if (n == 0) {
            if (!c->send_paused) {
                break;
            }
            c->send_paused = 0;   /* send_body framed a DATA frame: on to the next */
            continue;
        }
        memcpy(b->out + c->out_used, chunk, (size_t)n);
        c->out_used += (size_t)n;
    }
    end_run(c);
    c->batch = NULL;
    return (long)c->records;
}

/* Hop-by-hop fields of HTTP/1.1 that are malformed in HTTP/2 (RFC 9113 §8.2.2). */
static int hop_by_hop(const char *name, size_t len) {
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Adds the `Name: value\r\n` lines of text to nva from *count on; -1 when they do not fit. */
static int add_fields(nghttp2_nv *nva, size_t *count, const char *text, size_t len) {
    const char *end = text + len;
    while (text < end) {
        const char *eol = memchr(text, '\n', (size_t)(end - text));
        const char *line_end = eol ? eol : end;
        const char *colon = memchr(text, ':', (size_t)(line_end - text));
        if (colon != NULL && colon > text) {
            const char *value = colon + 1;
            const char *value_end = line_end;
            while (value < value_end && (*value == ' ' || *value == '\t')) {
                value++;
            }
            while (value_end > value && (value_end[-1] == '\r' || value_end[-1] == ' '
                                         || value_end[-1] == '\t')) {
                value_end--;
            }
            size_t namelen = (size_t)(colon - text);
            if (!hop_by_hop(text, namelen)) {
                if (*count >= MAX_RESPONSE_FIELDS) {
                    return -1;
                }
                nva[*count] = (nghttp2_nv){(uint8_t *)text, (uint8_t *)value, namelen,
                                           (size_t)(value_end - value), NGHTTP2_NV_FLAG_NONE};
                ++*count;
            }
        }
        text = line_end + 1;
    }
    return 0;
}

/* The nv array of a response, pointing into the texts and its own digits. */
struct response {
    nghttp2_nv nva[MAX_RESPONSE_FIELDS];
    char status_text[4];
    char length_text[24];
};

/* :status, the fields of both texts, content-length (when >= 0): the count, or -1. */
static long response_nva(struct response *r, int status, const char *fields, size_t fields_len,
                         const char *extra, size_t extra_len, int64_t content_length) {
    nghttp2_nv *nva = r->nva;
    char *status_text = r->status_text;
    char *length_text = r->length_text;
    if (status < 100 || status > 999) {
        return -1;
    }
    status_text[0] = (char)('0' + status / 100);
    status_text[1] = (char)('0' + status / 10 % 10);
    status_text[2] = (char)('0' + status % 10);
    nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status_text, 7, 3,
                          NGHTTP2_NV_FLAG_NONE};
    size_t count = 1;
    if (add_fields(nva, &count, fields, fields_len) < 0
        || add_fields(nva, &count, extra, extra_len) < 0) {
        return -1;
    }
    if (content_length >= 0) {
        if (count >= MAX_RESPONSE_FIELDS) {
            return -1;
        }
        /* Digits by hand: snprintf would pull in locale work for a number. */
        char *p = length_text + 24;
        uint64_t n = (uint64_t)content_length;
        do {
            *--p = (char)('0' + n % 10);
            n /= 10;
        } while (n);
        nva[count++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)p, 14,
                                    (size_t)(length_text + 24 - p), NGHTTP2_NV_FLAG_NONE};
    }
    return (long)count;
}

int h2_respond(struct h2_conn *c, int32_t stream_id, int status, const char *fields,
               size_t fields_len, const char *extra, size_t extra_len, int64_t content_length,
               struct h2_body *body) {
    struct response r;
    long count = response_nva(&r, status, fields, fields_len, extra, extra_len, content_length);
    if (count < 0) {
        return NGHTTP2_ERR_INVALID_ARGUMENT;
    }
    if (body == NULL) {
        return nghttp2_submit_response(c->session, stream_id, r.nva, (size_t)count, NULL);
    }
    body->sent = 0;
    body->starved = 0;
    nghttp2_data_provider provider;
    provider.source.ptr = body;
    provider.read_callback = read_body;
    return nghttp2_submit_response(c->session, stream_id, r.nva, (size_t)count, &provider);
}

/* -- the fast lane ------------------------------------------------------------------------- */

struct h2_ready *h2_ready_new(int status, const char *fields, size_t fields_len,
                              const char *extra, size_t extra_len, int64_t content_length,
                              const uint8_t *body, int64_t body_len) {
    struct response made;
    long count = response_nva(&made, status, fields, fields_len, extra, extra_len,
                              content_length);
    if (count < 0) {
        return NULL;
    }
    const nghttp2_nv *nva = made.nva;
    size_t text = 0;
    for (long i = 0; i < count; i++) {
        text += nva[i].namelen + nva[i].valuelen;
    }
    size_t size = sizeof(struct h2_ready) + (size_t)count * sizeof(nghttp2_nv) + text
                  + (body_len > 0 ? (size_t)body_len : 0);
    struct h2_ready *r = malloc(size);
    if (r == NULL) {
        return NULL;
    }
    r->refs = 1;
    r->count = (size_t)count;
    r->nva = (nghttp2_nv *)(r + 1);
    uint8_t *at = (uint8_t *)(r->nva + count);
    for (long i = 0; i < count; i++) {
        r->nva[i] = nva[i];
        memcpy(at, nva[i].name, nva[i].namelen);
        r->nva[i].name = at;
        at += nva[i].namelen;
        memcpy(at, nva[i].value, nva[i].valuelen);
        r->nva[i].value = at;
        at += nva[i].valuelen;
    }
    r->body_len = body_len;
    r->body = at;
    if (body_len > 0) {
        memcpy(at, body, (size_t)body_len);
    }
    return r;
}

void h2_ready_release(struct h2_ready *r) {
    if (--r->refs == 0) {
        free(r);
    }
}

int h2_answer(struct h2_conn *c, int32_t stream_id, struct h2_ready *r) {
    if (r->body_len <= 0) {
        return nghttp2_submit_response(c->session, stream_id, r->nva, r->count, NULL);
    }
    struct h2_lane_stream *ls = malloc(sizeof *ls);
    if (ls == NULL) {
        return NGHTTP2_ERR_NOMEM;
    }
    memset(&ls->body, 0, sizeof ls->body);
    ls->body.data = r->body;
    ls->body.fd = -1;
    ls->body.last = 1;
    ls->body.left = r->body_len;
    /* Fails for a stream the library no longer has (the submit would not). */
    int rv = nghttp2_session_set_stream_user_data(c->session, stream_id, ls);
    if (rv == 0) {
        nghttp2_data_provider provider;
        provider.source.ptr = &ls->body;
        provider.read_callback = read_body;
        rv = nghttp2_submit_response(c->session, stream_id, r->nva, r->count, &provider);
        if (rv != 0) {
            nghttp2_session_set_stream_user_data(c->session, stream_id, NULL);
        }
    }
    if (rv != 0) {
        free(ls);
        return rv;
    }
    r->refs++;
    ls->ready = r;
    ls->prev = NULL;
    ls->next = c->lane;
    if (c->lane != NULL) {
        c->lane->prev = ls;
    }
    c->lane = ls;
    c->lane_open++;
    return 0;
}

int64_t h2_answer_sent(struct h2_conn *c, int32_t stream_id) {
    struct h2_lane_stream *ls = nghttp2_session_get_stream_user_data(c->session, stream_id);
    return ls != NULL ? ls->body.sent : 0;
}

int h2_supply(struct h2_conn *c, int32_t stream_id, struct h2_body *body, const uint8_t *data,
              int fd, int64_t offset, int64_t count, int last, int no_copy) {
    body->data = data;
    body->fd = fd;
    body->no_copy = no_copy;
    body->offset = offset;
    body->left = count;
    body->last = last;
    if (body->starved) {
        body->starved = 0;
        return nghttp2_session_resume_data(c->session, stream_id);
    }
    return 0;
}

int h2_consume(struct h2_conn *c, int32_t stream_id, size_t count) {
    return nghttp2_session_consume(c->session, stream_id, count);
}

int h2_reset(struct h2_conn *c, int32_t stream_id, uint32_t code) {
    return nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, stream_id, code);
}

int h2_shutdown(struct h2_conn *c, int final) {
    if (!final) {
        return nghttp2_submit_shutdown_notice(c->session);
    }
    return nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                                 nghttp2_session_get_last_proc_stream_id(c->session),
                                 NGHTTP2_NO_ERROR, NULL, 0);
}

int h2_terminate(struct h2_conn *c, uint32_t code) {
    if (c->goaway_code == 0) {
        c->goaway_code = code;
    }
    return nghttp2_session_terminate_session(c->session, code);
}

int h2_want_read(struct h2_conn *c) {
    return nghttp2_session_want_read(c->session);
}

int h2_want_write(struct h2_conn *c) {
    return nghttp2_session_want_write(c->session);
}
