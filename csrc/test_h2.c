/* Unit tests of the h2 unit: an nghttp2 client session talks to the shim in memory. */
#include "h2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__,        \
                    __func__, #cond);                                                   \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

#define RECORDS 4096
#define ARENA (128 * 1024)
#define OUT (320 * 1024)

static int64_t records[4 * RECORDS];
static char arena[ARENA];
static uint8_t out[OUT];
static struct h2_batch batch = {records, RECORDS, arena, ARENA, 0, out, OUT, 0, 0};

static const struct h2_limits LIMITS = {
    .max_concurrent_streams = 100, .max_header_list = 32768, .max_fields = 100,
    .hpack_bomb = 262144, .max_settings = 32, .max_outbound_ack = 1000,
    .max_continuations = 8, .reset_burst = 50, .reset_rate = 10, .glitch_burst = 50,
    .glitch_rate = 10, .initial_window = 65535, .connection_window = 1 << 20,
};

/* -- the client side ----------------------------------------------------------------------- */

struct client {
    nghttp2_session *session;
    int status;
    uint32_t goaway_code;
    int goaway;
    int reset;
    uint32_t reset_code;
    char body[1 << 20];
    size_t body_len;
    int ended;
};

static int client_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                            size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                            void *user) {
    struct client *cl = user;
    (void)s;
    (void)f;
    (void)flags;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        cl->status = atoi((const char *)value);
    }
    (void)valuelen;
    return 0;
}

static int client_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                          size_t len, void *user) {
    struct client *cl = user;
    (void)s;
    (void)flags;
    (void)sid;
    if (cl->body_len + len <= sizeof cl->body) {
        memcpy(cl->body + cl->body_len, data, len);
        cl->body_len += len;
    }
    return 0;
}

static int client_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user) {
    struct client *cl = user;
    (void)s;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        cl->goaway = 1;
        cl->goaway_code = f->goaway.error_code;
    } else if (f->hd.type == NGHTTP2_RST_STREAM) {
        cl->reset = 1;
        cl->reset_code = f->rst_stream.error_code;
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA)
        && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        cl->ended = 1;
    }
    return 0;
}

static struct client *client_new(void) {
    struct client *cl = calloc(1, sizeof *cl);
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, client_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, client_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, client_on_frame);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_max_send_header_block_length(opt, 1 << 20);
    nghttp2_session_client_new2(&cl->session, cb, cl, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    nghttp2_submit_settings(cl->session, NGHTTP2_FLAG_NONE, iv, 1);
    nghttp2_session_set_local_window_size(cl->session, NGHTTP2_FLAG_NONE, 0, 1 << 24);
    return cl;
}

static void client_free(struct client *cl) {
    nghttp2_session_del(cl->session);
    free(cl);
}

/* What the client has queued, as one buffer. */
static size_t client_bytes(struct client *cl, uint8_t *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        const uint8_t *chunk;
        ssize_t n = nghttp2_session_mem_send(cl->session, &chunk);
        if (n <= 0) {
            break;
        }
        if (len + (size_t)n > cap) {
            abort();
        }
        memcpy(buf + len, chunk, (size_t)n);
        len += (size_t)n;
    }
    return len;
}

static int32_t client_get(struct client *cl, const char *path, const char *extra_name,
                          const char *extra_value, int copies) {
    nghttp2_nv nva[300];
    size_t n = 0;
#define NV(a, b) nva[n++] = (nghttp2_nv){(uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), 0}
    NV(":method", "GET");
    NV(":scheme", "http");
    NV(":authority", "localhost");
    NV(":path", path);
    for (int i = 0; i < copies; i++) {
        NV(extra_name, extra_value);
    }
#undef NV
    return nghttp2_submit_request(cl->session, NULL, nva, n, NULL, NULL);
}

/* Everything h2_send gives, as the bytes a socket would carry, with file pieces read in. */
static size_t server_bytes(struct h2_conn *c, uint8_t *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        long n = h2_send(c, &batch, 1 << 20);
        CHECK(n >= 0);
        for (long i = 0; i < n; i++) {
            int64_t *r = records + 4 * i;
            if (r[0] == H2_BYTES) {
                memcpy(buf + len, out + r[2], (size_t)r[3]);
                len += (size_t)r[3];
            } else if (r[0] == H2_FILE) {
                CHECK(pread((int)r[1], buf + len, (size_t)r[3], r[2]) == r[3]);
                len += (size_t)r[3];
            }
        }
        if (len > cap) {
            abort();
        }
        if (n == 0 || !h2_want_write(c)) {
            break;
        }
    }
    return len;
}

static uint8_t wire[4 << 20];

/* Client output into the shim; returns h2_recv's result (records of the last call). */
static long feed(struct h2_conn *c, struct client *cl) {
    size_t len = client_bytes(cl, wire, sizeof wire);
    batch.arena_used = 0;
    return h2_recv(c, &batch, wire, len, 1000);
}

/* Shim output into the client. */
static void reply(struct h2_conn *c, struct client *cl) {
    size_t len = server_bytes(c, wire, sizeof wire);
    CHECK(nghttp2_session_mem_recv(cl->session, wire, len) == (ssize_t)len);
}

/* The bytes of the n records of one h2_send into the client. */
static void deliver(struct client *cl, long n) {
    size_t len = 0;
    for (long i = 0; i < n; i++) {
        if (records[4 * i] == H2_BYTES) {
            memcpy(wire + len, out + records[4 * i + 2], (size_t)records[4 * i + 3]);
            len += (size_t)records[4 * i + 3];
        }
    }
    CHECK(nghttp2_session_mem_recv(cl->session, wire, len) == (ssize_t)len);
}

static int64_t *find(long n, int kind) {
    for (long i = 0; i < n; i++) {
        if ((records[4 * i] & 0xff) == kind) {
            return records + 4 * i;
        }
    }
    return NULL;
}

/* -- tests --------------------------------------------------------------------------------- */

static void test_get_and_memory_body(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    CHECK(c.memory > 16 * 1024);   /* the library's frame buffer is counted */
    struct client *cl = client_new();
    int32_t sid = client_get(cl, "/index.html", "user-agent", "test", 1);
    long n = feed(&c, cl);
    int64_t *r = find(n, H2_REQUEST);
    CHECK(r != NULL);
    if (r != NULL) {
        CHECK(r[1] == sid);
        CHECK((r[0] >> 8) & H2_END_STREAM);
        CHECK(((r[0] >> 8) >> H2_PSEUDO_SHIFT) == 4);
        CHECK(!((r[0] >> 8) & H2_HOST));
        static const char fields[] = ":method\0GET\0:scheme\0http\0:authority\0localhost\0"
                                     ":path\0/index.html\0user-agent\0test\0";
        CHECK(r[3] == (int64_t)sizeof fields - 1);
        CHECK(memcmp(arena + r[2], fields, sizeof fields - 1) == 0);
    }
    static const char text[] = "hello, world";
    struct h2_body body = {(const uint8_t *)text, -1, 0, 1, 0, 0, 12, 0};
    static const char head[] = "Content-Type: text/plain\r\nConnection: close\r\n"
                               "Transfer-Encoding: chunked\r\n";
    CHECK(h2_respond(&c, sid, 200, head, sizeof head - 1, "Server: t\r\n", 11, 12, &body) == 0);
    reply(&c, cl);
    CHECK(cl->status == 200);
    CHECK(cl->body_len == 12 && memcmp(cl->body, text, 12) == 0);
    CHECK(cl->ended);
    CHECK(body.sent == 12);
    client_free(cl);
    h2_close(&c);
    CHECK(c.memory == 0);   /* every block the library took was given back, and counted so */
}

static void test_request_body_and_close(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    static const char payload[] = "name=value&other=thing";
    nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0},
        {(uint8_t *)":path", (uint8_t *)"/form", 5, 5, 0},
    };
    int32_t sid = nghttp2_submit_headers(cl->session, 0, -1, NULL, nva, 4, NULL);
    long n = feed(&c, cl);
    int64_t *r = find(n, H2_REQUEST);
    CHECK(r != NULL && !((r[0] >> 8) & H2_END_STREAM));
    /* The body: DATA frames by hand, then END_STREAM on the last. */
    uint8_t frame[64];
    size_t len = sizeof payload - 1;
    frame[0] = 0;
    frame[1] = 0;
    frame[2] = (uint8_t)len;
    frame[3] = NGHTTP2_DATA;
    frame[4] = NGHTTP2_FLAG_END_STREAM;
    frame[5] = frame[6] = frame[7] = 0;
    frame[8] = (uint8_t)sid;
    memcpy(frame + 9, payload, len);
    batch.arena_used = 0;
    n = h2_recv(&c, &batch, frame, 9 + len, 1000);
    r = find(n, H2_DATA);
    CHECK(r != NULL && r[1] == sid && r[2] == 9 && r[3] == (int64_t)len);
    CHECK(find(n, H2_END) != NULL);
    CHECK(h2_consume(&c, sid, len) == 0);
    CHECK(h2_respond(&c, sid, 204, "", 0, "", 0, -1, NULL) == 0);
    /* Both sides have ended: the stream closes as its HEADERS go out, in the same records. */
    n = h2_send(&c, &batch, 1 << 20);
    r = find(n, H2_CLOSE);
    CHECK(r != NULL && r[1] == sid && r[2] == NGHTTP2_NO_ERROR);
    client_free(cl);
    h2_close(&c);
}

static void test_too_large_and_cookies(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    int32_t large = client_get(cl, "/a", "x-big", big, 20);   /* 20 x 2 KiB > 32 KiB */
    int32_t cookies = client_get(cl, "/b", "cookie", "a=1", 2);
    long n = feed(&c, cl);
    int seen = 0;
    for (long i = 0; i < n; i++) {
        int64_t *r = records + 4 * i;
        if ((r[0] & 0xff) != H2_REQUEST) {
            continue;
        }
        seen++;
        if (r[1] == large) {
            CHECK((r[0] >> 8) & H2_TOO_LARGE);
            CHECK(r[3] == 0);
        } else {
            CHECK(r[1] == cookies);
            CHECK((r[0] >> 8) & H2_COOKIES);
            CHECK(((r[0] >> 8) >> H2_PSEUDO_SHIFT) == 4);
        }
    }
    CHECK(seen == 2);
    CHECK(c.counts[H2_COUNT_TOO_LARGE] == 1);
    client_free(cl);
    h2_close(&c);
}

static void test_arena_pause_and_partial_block(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    char value[1000];
    memset(value, 'v', sizeof value - 1);
    value[sizeof value - 1] = 0;
    /* Each request decodes to about 30 KiB (indexed fields cost little on the wire): the
     * 128 KiB arena takes a few before it must be emptied. */
    for (int i = 0; i < 10; i++) {
        client_get(cl, "/p", "x-v", value, 29);
    }
    size_t len = client_bytes(cl, wire, sizeof wire);
    size_t pos = 0;
    int requests = 0, pauses = 0;
    while (pos < len) {
        batch.arena_used = 0;
        long n = h2_recv(&c, &batch, wire + pos, len - pos, 1000);
        CHECK(n >= 0);
        int64_t *paused = find(n, H2_PAUSED);
        for (long i = 0; i < n; i++) {
            requests += (records[4 * i] & 0xff) == H2_REQUEST;
        }
        CHECK(find(n, H2_PARTIAL) == NULL || paused != NULL);
        if (paused == NULL) {
            break;
        }
        pauses++;
        int64_t *partial = find(n, H2_PARTIAL);
        if (partial != NULL) {
            memmove(arena, arena + partial[2], (size_t)partial[3]);
        }
        pos += (size_t)paused[2];
        batch.arena_used = partial != NULL ? (size_t)partial[3] : 0;
        n = h2_recv(&c, &batch, wire + pos, len - pos, 1000);
        for (long i = 0; i < n; i++) {
            requests += (records[4 * i] & 0xff) == H2_REQUEST;
        }
        paused = find(n, H2_PAUSED);
        if (paused == NULL) {
            break;
        }
        pos += (size_t)paused[2];
    }
    CHECK(pauses > 0);
    CHECK(requests == 10);
    client_free(cl);
    h2_close(&c);
}

static void test_file_bodies(void) {
    char path[] = "/tmp/test_h2_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    static char content[100000];
    for (size_t i = 0; i < sizeof content; i++) {
        content[i] = (char)('a' + i % 26);
    }
    CHECK(write(fd, content, sizeof content) == (ssize_t)sizeof content);
    for (int no_copy = 0; no_copy <= 1; no_copy++) {
        struct h2_conn c;
        CHECK(h2_open(&c, &LIMITS) == 0);
        struct client *cl = client_new();
        int32_t sid = client_get(cl, "/file", "accept", "*/*", 1);
        feed(&c, cl);
        struct h2_body body = {NULL, fd, no_copy, 1, 0, 10, 50000, 0};
        CHECK(h2_respond(&c, sid, 206, "", 0, "", 0, 50000, &body) == 0);
        size_t len = server_bytes(&c, wire, sizeof wire);
        CHECK(nghttp2_session_mem_recv(cl->session, wire, len) == (ssize_t)len);
        CHECK(cl->status == 206);
        CHECK(cl->body_len == 50000 && memcmp(cl->body, content + 10, 50000) == 0);
        CHECK(cl->ended);
        client_free(cl);
        h2_close(&c);
    }
    close(fd);
}

static void test_starved_body(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    int32_t sid = client_get(cl, "/stream", "accept", "*/*", 1);
    feed(&c, cl);
    struct h2_body body = {(const uint8_t *)"first ", -1, 0, 0, 0, 0, 6, 0};
    CHECK(h2_respond(&c, sid, 200, "", 0, "", 0, -1, &body) == 0);
    long n = h2_send(&c, &batch, 1 << 20);
    CHECK(find(n, H2_STARVED) != NULL);
    deliver(cl, n);
    CHECK(!cl->ended);
    CHECK(h2_supply(&c, sid, &body, (const uint8_t *)"second", -1, 0, 6, 1, 0) == 0);
    reply(&c, cl);
    CHECK(cl->body_len == 12 && memcmp(cl->body, "first second", 12) == 0);
    CHECK(cl->ended);
    client_free(cl);
    h2_close(&c);
}

/* A flood of `frame` (a complete frame of `len` bytes) ends the connection with GOAWAY
 * ENHANCE_YOUR_CALM. */
static void flood(const uint8_t *frame, size_t len, int reason) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    feed(&c, cl);
    reply(&c, cl);
    size_t total = 0;
    for (int i = 0; i < 200; i++) {
        memcpy(wire + total, frame, len);
        total += len;
    }
    batch.arena_used = 0;
    long n = h2_recv(&c, &batch, wire, total, 1000);
    CHECK(n < 0);
    CHECK(c.reason == reason);
    CHECK(c.goaway_code == NGHTTP2_ENHANCE_YOUR_CALM);
    size_t sent = server_bytes(&c, wire, sizeof wire);
    nghttp2_session_mem_recv(cl->session, wire, sent);
    CHECK(cl->goaway && cl->goaway_code == NGHTTP2_ENHANCE_YOUR_CALM);
    client_free(cl);
    h2_close(&c);
}

static void test_floods(void) {
    static const uint8_t ping[] = {0, 0, 8, NGHTTP2_PING, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t settings[] = {0, 0, 0, NGHTTP2_SETTINGS, 0, 0, 0, 0, 0};
    static const uint8_t window[] = {0, 0, 4, NGHTTP2_WINDOW_UPDATE, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    flood(ping, sizeof ping, H2_REASON_GLITCHES);
    flood(settings, sizeof settings, H2_REASON_GLITCHES);
    flood(window, sizeof window, H2_REASON_GLITCHES);
}

static void test_rapid_reset(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    long n = 0;
    for (int i = 0; i < 200 && n >= 0; i++) {
        int32_t sid = client_get(cl, "/", "accept", "*/*", 1);
        n = feed(&c, cl);
        nghttp2_submit_rst_stream(cl->session, NGHTTP2_FLAG_NONE, sid, NGHTTP2_CANCEL);
        n = n < 0 ? n : feed(&c, cl);
    }
    CHECK(n < 0);
    CHECK(c.reason == H2_REASON_RESETS);
    client_free(cl);
    h2_close(&c);
}

static void test_hpack_bomb(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    /* Small enough for the client's encoder to index, so each copy is one byte on the wire. */
    char value[2000];
    memset(value, 'b', sizeof value - 1);
    value[sizeof value - 1] = 0;
    client_get(cl, "/", "x-bomb", value, 200);   /* 400 KB decoded, a few KB on the wire */
    size_t len = client_bytes(cl, wire, sizeof wire);
    CHECK(len < 20000);
    batch.arena_used = 0;
    long n = h2_recv(&c, &batch, wire, len, 1000);
    CHECK(n < 0);
    CHECK(c.reason == H2_REASON_HPACK_BOMB);
    client_free(cl);
    h2_close(&c);
}

static void test_continuation_flood(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    feed(&c, cl);
    /* HEADERS without END_HEADERS, then CONTINUATION frames that never end the block. */
    size_t len = 0;
    static const uint8_t headers[] = {0, 0, 1, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM,
                                      0, 0, 0, 1, 0x82};
    memcpy(wire, headers, sizeof headers);
    len += sizeof headers;
    for (int i = 0; i < 50; i++) {
        static const uint8_t cont[] = {0, 0, 1, NGHTTP2_CONTINUATION, 0, 0, 0, 0, 1, 0x84};
        memcpy(wire + len, cont, sizeof cont);
        len += sizeof cont;
    }
    batch.arena_used = 0;
    long n = h2_recv(&c, &batch, wire, len, 1000);
    CHECK(n < 0);
    CHECK(c.reason == H2_REASON_CONTINUATIONS);
    CHECK(c.goaway_code == NGHTTP2_ENHANCE_YOUR_CALM);
    client_free(cl);
    h2_close(&c);
}

static void test_bad_preface(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    static const char http1[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    batch.arena_used = 0;
    long n = h2_recv(&c, &batch, (const uint8_t *)http1, sizeof http1 - 1, 1000);
    CHECK(n < 0);
    CHECK(c.goaway_code == NGHTTP2_PROTOCOL_ERROR);
    h2_close(&c);
}

static void test_graceful_shutdown(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    int32_t sid = client_get(cl, "/", "accept", "*/*", 1);
    feed(&c, cl);
    CHECK(h2_shutdown(&c, 0) == 0);
    reply(&c, cl);
    CHECK(cl->goaway && cl->goaway_code == NGHTTP2_NO_ERROR);
    CHECK(h2_shutdown(&c, 1) == 0);
    CHECK(h2_respond(&c, sid, 200, "", 0, "", 0, 0, NULL) == 0);
    reply(&c, cl);
    CHECK(cl->status == 200 && cl->ended);
    CHECK(nghttp2_session_get_last_proc_stream_id(c.session) == sid);
    client_free(cl);
    h2_close(&c);
}

/* Plain requests get an H2_PLAIN record with their key just before their H2_REQUEST; a request
 * the fast lane must not answer gets none. */
static void test_plain_keys(void) {
    static const struct {
        const char *method, *name, *value;
        int copies;
        const char *key;   /* NULL: not plain */
        size_t key_len;
    } cases[] = {
        {"GET", "user-agent", "t", 1, "/p\x07", 3},
        {"HEAD", "user-agent", "t", 1, "/p\x08", 3},
        {"GET", "accept-encoding", "gzip, br", 1, "/p\x0fgzip, br", 11},
        {"GET", "accept-encoding", "gzip", 2, NULL, 0},
        {"GET", "if-none-match", "\"x\"", 1, NULL, 0},
        {"GET", "range", "bytes=0-1", 1, NULL, 0},
        {"GET", "If-Modified-Since", "x", 0, "/p\x07", 3},   /* no copies: no field at all */
        {"GET", "host", "localhost", 1, NULL, 0},
        {"DELETE", "user-agent", "t", 1, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct h2_conn c;
        CHECK(h2_open(&c, &LIMITS) == 0);
        struct client *cl = client_new();
        nghttp2_nv nva[8];
        size_t n = 0;
#define NV(a, b) nva[n++] = (nghttp2_nv){(uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), 0}
        NV(":method", cases[i].method);
        NV(":scheme", "http");
        NV(":authority", "localhost");
        NV(":path", "/p");
        for (int j = 0; j < cases[i].copies; j++) {
            NV(cases[i].name, cases[i].value);
        }
#undef NV
        int32_t sid = nghttp2_submit_request(cl->session, NULL, nva, n, NULL, NULL);
        long records_n = feed(&c, cl);
        int64_t *plain = find(records_n, H2_PLAIN);
        int64_t *request = find(records_n, H2_REQUEST);
        CHECK(request != NULL);
        if (cases[i].key == NULL) {
            CHECK(plain == NULL);
        } else {
            CHECK(plain != NULL && plain + 4 == request);
            if (plain != NULL) {
                CHECK(plain[1] == sid);
                CHECK(plain[3] == (int64_t)cases[i].key_len);
                CHECK(memcmp(arena + plain[2], cases[i].key, cases[i].key_len) == 0);
            }
        }
        client_free(cl);
        h2_close(&c);
    }
}

/* Kept answers: the same response as h2_respond's, to several streams; each stream holds the
 * answer until it closes (no H2_CLOSE record for it), and h2_close lets go of those still open. */
static void test_kept_answers(void) {
    static const char head[] = "Content-Type: text/plain\r\nConnection: close\r\n";
    static const char text[] = "kept body";
    struct h2_ready *ready = h2_ready_new(200, head, sizeof head - 1, "Server: t\r\n", 11, 9,
                                          (const uint8_t *)text, 9);
    struct h2_ready *bare = h2_ready_new(204, head, sizeof head - 1, "", 0, -1, NULL, -1);
    CHECK(ready != NULL && bare != NULL);
    CHECK(h2_ready_new(99, "", 0, "", 0, -1, NULL, -1) == NULL);
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    int32_t first = client_get(cl, "/a", "user-agent", "t", 1);
    int32_t second = client_get(cl, "/a", "user-agent", "t", 1);
    int32_t third = client_get(cl, "/a", "user-agent", "t", 1);
    feed(&c, cl);
    CHECK(h2_answer(&c, first, ready) == 0);
    CHECK(h2_answer(&c, second, bare) == 0);
    CHECK(h2_answer(&c, 99, ready) != 0);   /* no such stream */
    CHECK(c.lane_open == 1);   /* a bare answer holds nothing */
    h2_ready_release(ready);   /* the table lets go: the stream still holds it */
    long n = h2_send(&c, &batch, 1 << 20);
    int closes = 0;
    for (long i = 0; i < n; i++) {
        closes += records[4 * i] == H2_CLOSE && records[4 * i + 1] != second;
    }
    CHECK(closes == 0);   /* the kept answer's stream closed without a record */
    CHECK(c.lane_open == 0);
    deliver(cl, n);
    CHECK(cl->body_len == 9 && memcmp(cl->body, text, 9) == 0);
    /* A stream still open when the connection ends: freed by h2_close (ASan sees a leak). */
    ready = h2_ready_new(200, head, sizeof head - 1, "", 0, 9, (const uint8_t *)text, 9);
    CHECK(h2_answer(&c, third, ready) == 0);
    h2_ready_release(ready);
    CHECK(c.lane_open == 1);
    c.lane_records = 1;   /* its close recorded, with the body bytes framed */
    CHECK(h2_reset(&c, third, NGHTTP2_CANCEL) == 0);
    n = h2_send(&c, &batch, 1 << 20);
    int64_t *close = find(n, H2_CLOSE);
    CHECK(close != NULL && close[1] == third && close[2] == NGHTTP2_CANCEL && close[3] == 0);
    CHECK(c.lane_open == 0);
    ready = h2_ready_new(200, head, sizeof head - 1, "", 0, 9, (const uint8_t *)text, 9);
    int32_t fourth = client_get(cl, "/a", "user-agent", "t", 1);
    feed(&c, cl);
    CHECK(h2_answer(&c, fourth, ready) == 0);
    h2_ready_release(ready);
    CHECK(h2_answer_sent(&c, fourth) == 0 && h2_answer_sent(&c, 99) == 0);
    reply(&c, cl);   /* the client's window is 65535: all of it goes */
    CHECK(h2_answer_sent(&c, fourth) == 0);   /* and its stream is gone */
    int32_t fifth = client_get(cl, "/a", "user-agent", "t", 1);
    feed(&c, cl);
    ready = h2_ready_new(200, head, sizeof head - 1, "", 0, 9, (const uint8_t *)text, 9);
    CHECK(h2_answer(&c, fifth, ready) == 0);
    h2_ready_release(ready);
    CHECK(c.lane_open == 1);
    h2_ready_release(bare);
    client_free(cl);
    h2_close(&c);
    CHECK(c.lane_open == 0);
}

/* With requests_cap, h2_recv stops at the first field of the request after that many, saying
 * where (H2_PAUSED, b = 1); the rest, given in later calls, holds the others, the block cut by
 * the pause carried over as usual (H2_PARTIAL). */
static void test_requests_per_call(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    static char values[60][600];
    for (int i = 0; i < 60; i++) {   /* values never the same: literals, ~600 bytes a block */
        memset(values[i], 'a' + i % 26, sizeof values[i] - 1);
        values[i][0] = (char)('A' + i / 26);
        client_get(cl, "/a", "user-agent", values[i], 1);
    }
    size_t len = client_bytes(cl, wire, sizeof wire);
    batch.requests_cap = 10;
    batch.arena_used = 0;
    size_t pos = 0;
    int requests = 0, calls = 0, pauses = 0;
    while (pos < len && calls < 100) {
        calls++;
        long n = h2_recv(&c, &batch, wire + pos, len - pos, 1000);
        CHECK(n > 0);
        int64_t *paused = find(n, H2_PAUSED);
        int here = 0;
        for (long i = 0; i < n; i++) {
            here += (records[4 * i] & 0xff) == H2_REQUEST;
        }
        CHECK(here <= 10);
        CHECK(here == 10 || paused == NULL);
        requests += here;
        int64_t *partial = find(n, H2_PARTIAL);
        batch.arena_used = 0;
        if (partial != NULL) {
            memmove(arena, arena + partial[2], (size_t)partial[3]);
            batch.arena_used = (size_t)partial[3];
        }
        if (paused != NULL) {
            CHECK(paused[3] == 1);
            pauses++;
            pos += (size_t)paused[2];
        } else {
            pos = len;
        }
    }
    CHECK(requests == 60);
    CHECK(pauses == 5);
    batch.requests_cap = 0;
    client_free(cl);
    h2_close(&c);
}

/* A RST_STREAM frame written by hand (the client session would drop a request it resets
 * before sending it). */
static size_t rst_frame(uint8_t *at, int32_t stream_id) {
    static const uint8_t head[] = {0, 0, 4, NGHTTP2_RST_STREAM, 0};
    memcpy(at, head, 5);
    for (int i = 0; i < 4; i++) {
        at[5 + i] = (uint8_t)(stream_id >> (24 - 8 * i));
        at[9 + i] = i == 3 ? NGHTTP2_CANCEL : 0;
    }
    return 13;
}

/* Requests whose streams the client resets within the same read (rapid reset): their records
 * are dropped (H2_NONE) and their closes not recorded, while the one not reset is given; with
 * resets_cap, a call stops at the first request after that many resets. */
static void test_reset_within_the_read(void) {
    struct h2_conn c;
    CHECK(h2_open(&c, &LIMITS) == 0);
    struct client *cl = client_new();
    size_t len = 0;
    int32_t ids[6];
    for (int i = 0; i < 6; i++) {
        ids[i] = client_get(cl, "/a", "user-agent", "t", 1);
        len += client_bytes(cl, wire + len, sizeof wire - len);
        if (i != 1) {
            len += rst_frame(wire + len, ids[i]);
        }
    }
    batch.arena_used = 0;
    long n = h2_recv(&c, &batch, wire, len, 1000);
    int requests = 0, closes = 0, plain = 0;
    for (long i = 0; i < n; i++) {
        int kind = (int)(records[4 * i] & 0xff);
        requests += kind == H2_REQUEST;
        plain += kind == H2_PLAIN;
        closes += kind == H2_CLOSE;
        CHECK(kind == H2_NONE || records[4 * i + 1] == ids[1]);
    }
    CHECK(requests == 1 && plain == 1 && closes == 0);
    client_free(cl);
    h2_close(&c);

    CHECK(h2_open(&c, &LIMITS) == 0);
    cl = client_new();
    batch.resets_cap = 2;
    batch.arena_used = 0;
    n = h2_recv(&c, &batch, wire, len, 1000);
    int64_t *paused = find(n, H2_PAUSED);
    CHECK(paused != NULL && paused[3] == 1);
    requests = 0;
    for (long i = 0; i < n; i++) {
        requests += (records[4 * i] & 0xff) == H2_REQUEST;
    }
    CHECK(requests == 1);   /* the second request; the first and third were reset */
    batch.resets_cap = 0;
    client_free(cl);
    h2_close(&c);
}

int main(void) {
    test_get_and_memory_body();
    test_reset_within_the_read();
    test_requests_per_call();
    test_plain_keys();
    test_kept_answers();
    test_request_body_and_close();
    test_too_large_and_cookies();
    test_arena_pause_and_partial_block();
    test_file_bodies();
    test_starved_body();
    test_floods();
    test_rapid_reset();
    test_hpack_bomb();
    test_continuation_flood();
    test_bad_preface();
    test_graceful_shutdown();
    if (failures) {
        fprintf(stderr, "test_h2: %d failures\n", failures);
        return 1;
    }
    printf("test_h2: all passed (library %s, features %d)\n", h2_library_version(),
           h2_features());
    return 0;
}
