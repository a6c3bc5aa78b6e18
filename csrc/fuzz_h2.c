/* libFuzzer target of the h2 unit: any bytes after the client preface, with every request
 * answered (a body from memory, one from a file piece, one that starves and is supplied), and
 * the output drained after every read, so that both directions of the shim run. */
#include "h2.h"

#include <stdlib.h>
#include <string.h>

#define RECORDS 4096
#define ARENA (128 * 1024)
#define OUT (320 * 1024)
#define BODIES 128

static int64_t records[4 * RECORDS];
static char arena[ARENA];
static uint8_t out[OUT];

static const struct h2_limits LIMITS = {
    .max_concurrent_streams = 100, .max_header_list = 32768, .max_fields = 100,
    .hpack_bomb = 262144, .max_settings = 32, .max_outbound_ack = 1000,
    .max_continuations = 8, .reset_burst = 1000, .reset_rate = 33, .glitch_burst = 1000,
    .glitch_rate = 100, .initial_window = 65535, .connection_window = 1 << 20,
};

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
static const uint8_t TEXT[] = "0123456789abcdef0123456789abcdef";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Small shares per call, so that requests and resets go on in later calls. */
    struct h2_batch batch = {records, RECORDS, arena, ARENA, 0, out, OUT, 3, 2};
    struct h2_conn c;
    /* A kept answer for every other plain request (the fast lane). */
    struct h2_ready *ready = h2_ready_new(200, "Content-Type: text/plain\r\n", 26, "", 0,
                                          (int64_t)sizeof TEXT - 1, TEXT,
                                          (int64_t)sizeof TEXT - 1);
    int32_t answered = 0;
    int plain = 0;
    static struct h2_body bodies[BODIES];
    size_t used = 0;
    if (h2_open(&c, &LIMITS) != 0) {
        return 0;
    }
    uint8_t *input = malloc(sizeof PREFACE - 1 + size);
    memcpy(input, PREFACE, sizeof PREFACE - 1);
    memcpy(input + sizeof PREFACE - 1, data, size);
    size_t len = sizeof PREFACE - 1 + size, pos = 0;
    char carry[ARENA];
    size_t carried = 0;
    while (pos < len) {
        memcpy(arena, carry, carried);
        batch.arena_used = carried;
        carried = 0;
        /* Reads of up to 97 bytes: frames split across reads, as on a real socket. */
        size_t chunk = len - pos < 97 ? len - pos : 97;
        long n = h2_recv(&c, &batch, input + pos, chunk, (int64_t)pos);
        if (n < 0) {
            break;
        }
        size_t taken = chunk;
        for (long i = 0; i < n; i++) {
            int64_t *r = records + 4 * i;
            int kind = (int)(r[0] & 0xff);
            if (kind == H2_PLAIN && ready != NULL && plain++ % 2 == 0
                && h2_answer(&c, (int32_t)r[1], ready) == 0) {
                answered = (int32_t)r[1];
            } else if (kind == H2_REQUEST && (int32_t)r[1] == answered) {
                answered = 0;
            } else if (kind == H2_REQUEST && used < BODIES) {
                struct h2_body *body = &bodies[used];
                int style = (int)(used++ % 3);
                memset(body, 0, sizeof *body);
                body->fd = -1;
                body->data = TEXT;
                body->left = style == 2 ? 5 : (int64_t)sizeof TEXT - 1;
                body->last = style != 2;
                h2_respond(&c, (int32_t)r[1], style ? 200 : 404,
                           "Content-Type: text/plain\r\nConnection: close\r\n", 44, "", 0,
                           style == 2 ? -1 : (int64_t)sizeof TEXT - 1, body);
            } else if (kind == H2_DATA) {
                h2_consume(&c, (int32_t)r[1], (size_t)r[3]);
            } else if (kind == H2_PAUSED) {
                taken = (size_t)r[2];
            } else if (kind == H2_PARTIAL) {
                memcpy(carry, arena + r[2], (size_t)r[3]);
                carried = (size_t)r[3];
            }
        }
        pos += taken;
        for (int rounds = 0; rounds < 4; rounds++) {
            long m = h2_send(&c, &batch, 1 << 16);
            if (m <= 0) {
                break;
            }
            for (long i = 0; i < m; i++) {
                int64_t *r = records + 4 * i;
                if (r[0] == H2_STARVED) {
                    for (size_t b = 0; b < used; b++) {
                        if (bodies[b].starved) {
                            h2_supply(&c, (int32_t)r[1], &bodies[b], TEXT, -1, 0, 7, 1, 0);
                            break;
                        }
                    }
                }
            }
        }
    }
    h2_send(&c, &batch, 1 << 16);
    h2_close(&c);
    if (ready != NULL) {
        h2_ready_release(ready);
    }
    free(input);
    return 0;
}
