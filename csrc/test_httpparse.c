/* C unit tests of httpparse.c. Every input is copied to the very end of a page followed by a
 * PROT_NONE guard page, so reading one byte past the input crashes; every proper prefix must
 * be incomplete or the same error. Built with -fsanitize=address,undefined by `make test`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "httpparse.h"

static char *page_end;
static size_t page_size;

static const char *guarded(const char *s, size_t n)
{
    char *p = page_end - n;
    memcpy(p, s, n);
    return p;
}

static long parse(const char *s, size_t n, const struct hp_limits *lim, struct hp_request *req,
                  struct hp_field *fields)
{
    return hp_parse_request(guarded(s, n), n, lim, req, fields, 100);
}

static const struct hp_limits DEFAULTS = {8192, 32768, 100};

/* expect: > 0 the whole input is one head; < -1 the error; every prefix is incomplete or
 * the same error. */
static void expect_lim(const char *s, long expect, const struct hp_limits *lim)
{
    struct hp_request req;
    struct hp_field fields[100];
    size_t n = strlen(s), k;
    long r = parse(s, n, lim, &req, fields);
    CHECK(r == (expect > 0 ? (long)n : expect), "%.40s: got %ld, want %ld", s, r, expect);
    for (k = 0; k < n; k++) {
        long rp = parse(s, k, lim, &req, fields);
        CHECK(rp == HP_INCOMPLETE || (expect < -1 && rp == expect),
              "%.40s prefix %zu: got %ld", s, k, rp);
    }
}

static void expect(const char *s, long want)
{
    expect_lim(s, want, &DEFAULTS);
}

static void test_values(void)
{
    struct hp_request req;
    struct hp_field f[100];
    const char *s = "\r\nPOST /a?b HTTP/1.0\r\nHost: x\r\nContent-Length: 7, 7\r\n"
                    "CONNECTION: Keep-Alive\r\nX-Empty:\r\nX-Sp: \t a b \t\r\n\r\nbody";
    long r = parse(s, strlen(s), &DEFAULTS, &req, f);
    CHECK(r == (long)strlen(s) - 4, "head length %ld", r);
    CHECK(req.method_len == 4 && !memcmp(req.method, "POST", 4), "method");
    CHECK(req.target_len == 4 && !memcmp(req.target, "/a?b", 4), "target");
    CHECK(req.num_fields == 5, "fields %zu", req.num_fields);
    CHECK(req.content_length == 7, "cl %lld", (long long)req.content_length);
    CHECK(req.flags == HP_KEEP_ALIVE, "flags %d", req.flags);
    CHECK(f[3].value_len == 0, "empty value");
    CHECK(f[4].value_len == 3 && !memcmp(f[4].value, "a b", 3), "trimmed value");
    CHECK(f[2].name_len == 10 && !memcmp(f[2].name, "CONNECTION", 10), "name case kept");

    s = "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n";
    r = parse(s, strlen(s), &DEFAULTS, &req, f);
    CHECK(r == (long)strlen(s), "te head");
    CHECK(req.flags == (HP_HTTP11 | HP_CHUNKED | HP_KEEP_ALIVE | HP_EXPECT_CONTINUE),
          "te flags %d", req.flags);
    CHECK(req.content_length == -1, "no cl");
}

/* Every byte at every offset of a long value and a long target (the scans test sixteen bytes
 * at a time where they can): accepted exactly where its class allows it. */
static void test_long_value_and_target_bytes(void)
{
    char head[128];
    struct hp_request req;
    struct hp_field f[100];
    int b, at;
    for (b = 0; b < 256; b++) {
        int in_value = b == '\t' || b == ' ' || (b > 0x20 && b != 0x7F);
        int in_target = b > 0x20 && b != 0x7F;
        for (at = 0; at < 40; at++) {
            char run[41];
            size_t n;
            long r;
            memset(run, 'a', 40);
            run[40] = '\0';
            n = (size_t)snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: x\r\nX: %s\r\n\r\n",
                                 run);
            head[n - 44 + at] = (char)b;
            r = parse(head, n, &DEFAULTS, &req, f);
            CHECK(in_value ? r == (long)n : r == -400, "value byte %d at %d: %ld", b, at, r);
            n = (size_t)snprintf(head, sizeof head, "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", run);
            head[5 + at] = (char)b;
            r = parse(head, n, &DEFAULTS, &req, f);
            CHECK(in_target ? r == (long)n : r == -400, "target byte %d at %d: %ld", b, at, r);
        }
    }
}

static void test_heads(void)
{
    struct hp_limits small = {19, 64, 2};
    expect("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1);
    expect("GET / HTTP/1.0\r\n\r\n", 1);
    expect("\r\n\r\nGET / HTTP/1.9\r\nHost: a\r\n\r\n", 1);
    expect("GET /\xff HTTP/1.1\r\nHost: a\r\nX: \x80\r\n\r\n", 1);
    expect("GET / HTTP/2.0\r\n", -505);
    expect("GET / HTTP/1.32\r\n", -400);
    expect("GET / HTTP/1.1x\r\n", -400);
    expect("GET / http/1.1\r\n", -400);
    expect("GET  / HTTP/1.1\r\n", -400);
    expect("GET /\x01", -400);
    expect("GET / HTTP/1.1\nHost: a\n\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\n\r\n", -400);
    expect("GET / HTTP/1.1\r\n Host: a\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\n: a\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
           -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", -501);
    expect("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -501);
    expect("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400);
    expect("GET / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n", -417);
    expect_lim("GET /aaaaa HTTP/1.1\r\nHost: a\r\n\r\n", 1, &small);
    expect_lim("GET /aaaaaa HTTP/1.1\r\nHost: a\r\n\r\n", -414, &small);
    expect_lim("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", -414, &small);
    expect_lim("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", -431, &small);
    expect_lim("GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
               -431, &small);
}

static void test_chunked(void)
{
    static const struct { const char *in; const char *out; int ok; } cases[] = {
        {"5\r\nhello\r\n0\r\n\r\n", "hello", 1},
        {"3;a=\"x\\\"\"\r\nabc\r\n0\r\nT: v\r\n\r\n", "abc", 1},
        {"7fffffffffffffff\r\n", "", 0},
        {"0x5\r\n", NULL, 0},
        {"-5\r\n", NULL, 0},
        {"5 \r\n", NULL, 0},
        {"3 ; a = \"x\" ;\tb\r\nabc\r\n0\r\n\r\n", "abc", 1}, /* BWS, RFC 9112 7.1.1 */
        {"5;a \r\n", NULL, 0},
        {"5 a\r\n", NULL, 0},
        {"8000000000000000\r\n", NULL, 0},
        {"00000000000000001\r\n", NULL, 0},
        {"5\nhello", NULL, 0},
        {"5\r\nhelloX", NULL, 0},
        {"0\r\n X: y\r\n\r\n", NULL, 0},
    };
    char out[256];
    size_t i, k;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].in);
        for (k = 0; k <= n; k++) { /* two reads, split at k */
            struct hp_chunked d;
            size_t o1 = 0, o2 = 0;
            long r1, r2 = 0;
            memset(&d, 0, sizeof d);
            d.max_trailers = 64;
            r1 = hp_decode_chunked(&d, guarded(cases[i].in, k), k, out, &o1);
            if (r1 >= 0)
                r2 = hp_decode_chunked(&d, guarded(cases[i].in + k, n - k), n - k, out + o1, &o2);
            if (cases[i].out == NULL) {
                CHECK(r1 < 0 || r2 < 0, "chunked %zu split %zu accepted", i, k);
            } else {
                CHECK(r1 >= 0 && r2 >= 0 && o1 + o2 == strlen(cases[i].out)
                          && !memcmp(out, cases[i].out, o1 + o2)
                          && hp_chunked_done(&d) == cases[i].ok,
                      "chunked %zu split %zu", i, k);
            }
        }
    }
}

/* The fast lane's scan: keys of the leading plain requests only, every prefix a safe prefix. */
static void test_scan_plain(void)
{
    static const char in[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                             "\r\nHEAD /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                             "GET /c HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"e\"\r\n\r\n";
    static const char closing[] = "GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                  "GET /e HTTP/1.1\r\nHost: x\r\n\r\n";
    static struct hp_field fields[100];
    static int64_t meta[3 + 4];
    static char out[256];
    struct hp_batch b = {{8192, 32768, 100}, fields, 100, meta, 3 + 4, out, sizeof out};
    size_t n = sizeof in - 1, k;
    long count = hp_scan_plain(&b, guarded(in, n), n, 0, 0);
    CHECK(count == 2 && meta[1] == 74 && meta[3] == 0 && meta[4] == 28
              && meta[2] == 8 && !memcmp(out, "/a\x07\0/b\x06\0", 8),
          "scan: %ld requests, end %lld", count, (long long)meta[1]);
    for (k = 0; k < n; k++) {
        count = hp_scan_plain(&b, guarded(in, k), k, 0, 0);
        CHECK(count == (k < 28 ? 0 : k < 74 ? 1 : 2), "scan prefix %zu: %ld", k, count);
    }
    n = sizeof closing - 1;
    count = hp_scan_plain(&b, guarded(closing, n), n, 0, 0);
    CHECK(count == 1 && meta[1] == 47 && !memcmp(out, "/d\x03", 4), "scan after close: %ld", count);
    count = hp_scan_plain(&b, guarded("POST / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 27, 0, 0);
    CHECK(count == 0 && meta[1] == 0, "scan of a POST: %ld", count);
}

/* The batch: a numbered method in the flags slot with its text left out, another method's
 * text kept with number 0; names lower-cased. */
static void test_batch_methods(void)
{
    static const char in[] = "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"
                             "PROPFIND /b HTTP/1.0\r\nX-Y: z\r\n\r\n";
    static const char want[] = "\0/a\0host\0x\0PROPFIND\0/b\0x-y\0z\0";
    static struct hp_field fields[100];
    static int64_t meta[3 + 3 * 2];
    static char out[256];
    struct hp_batch b = {{8192, 32768, 100}, fields, 100, meta, 3 + 3 * 2, out, sizeof out};
    size_t n = sizeof in - 1;
    long count = hp_parse_batch(&b, guarded(in, n), n, 0);
    CHECK(count == 2 && meta[0] == 0 && (size_t)meta[1] == n
              && meta[4] == (HP_HTTP11 | HP_KEEP_ALIVE) + 2 * HP_METHOD_UNIT && meta[7] == 0
              && (size_t)meta[2] == sizeof want - 1 && !memcmp(out, want, sizeof want - 1),
          "batch: %ld requests, flags %lld and %lld", count, (long long)meta[4],
          (long long)meta[7]);
    CHECK(!strncmp(hp_methods, "GET HEAD ", 9), "hp_methods: %s", hp_methods);
}

/* With `logged`, each key is followed by the Referer and User-Agent values, or HP_ABSENT. */
static void test_scan_plain_logged(void)
{
    static const char in[] = "GET /a HTTP/1.1\r\nHost: x\r\nUser-Agent:  ua/1 \r\n"
                             "referer: r\r\nReferer: s\r\n\r\n"
                             "GET /b HTTP/1.1\r\nHost: x\r\nReferer:\r\n\r\n";
    static const char want[] = "/a\x07\0r\0ua/1\0/b\x07\0\0" HP_ABSENT "\0";
    static struct hp_field fields[100];
    static int64_t meta[3 + 4];
    static char out[256];
    struct hp_batch b = {{8192, 32768, 100}, fields, 100, meta, 3 + 4, out, sizeof out};
    size_t n = sizeof in - 1;
    long count = hp_scan_plain(&b, guarded(in, n), n, 0, 1);
    CHECK(count == 2 && (size_t)meta[2] == sizeof want - 1 && !memcmp(out, want, sizeof want - 1),
          "logged scan: %ld requests, %lld bytes", count, (long long)meta[2]);
}

int main(void)
{
    char *map;
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    map = mmap(NULL, page_size * 3, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED || mprotect(map + page_size * 2, page_size, PROT_NONE)) {
        perror("guard page");
        return 2;
    }
    page_end = map + page_size * 2;
    test_values();
    test_long_value_and_target_bytes();
    test_heads();
    test_chunked();
    test_scan_plain();
    test_scan_plain_logged();
    test_batch_methods();
    printf("%d checks, %d failures\n", checks, failures);
    return failures != 0;
}
