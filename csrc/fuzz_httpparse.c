/* libFuzzer harness: the head parser and the chunked decoder on arbitrary bytes, at small and
 * default limits, whole and split in two reads. Any crash or sanitizer report fails the run;
 * the checks below turn broken invariants into crashes too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"

static void check_head(const uint8_t *data, size_t size, const struct hp_limits *lim)
{
    struct hp_request req;
    struct hp_field fields[100];
    long r = hp_parse_request((const char *)data, size, lim, &req, fields, 100);
    if (r > 0) {
        size_t i;
        if ((size_t)r > size || (size_t)r > lim->max_head || req.num_fields > lim->max_headers)
            abort();
        for (i = 0; i < req.num_fields; i++)
            if (fields[i].name < (const char *)data
                || fields[i].value + fields[i].value_len > (const char *)data + r)
                abort();
        /* a complete head parses the same with any bytes after it */
        if (hp_parse_request((const char *)data, (size_t)r, lim, &req, fields, 100) != r)
            abort();
    } else if (r != HP_INCOMPLETE && r != -400 && r != -414 && r != -417 && r != -431
               && r != -501 && r != -505) {
        abort();
    }
}

static void check_batch(const uint8_t *data, size_t size)
{
    static struct hp_field fields[100];
    static int64_t meta[3 + 3 * 8];
    static char out[32768];
    struct hp_batch b = {{8192, 32768, 100}, fields, 100, meta, 3 + 3 * 8, out, sizeof out};
    long n = hp_parse_batch(&b, (const char *)data, size, 0), i;
    const char *name;
    int64_t methods = 0;
    if (n < 0 || n > 8 || meta[1] < 0 || (size_t)meta[1] > size || meta[2] < 0
        || (size_t)meta[2] > (size_t)meta[1])
        abort();
    for (name = hp_methods; *name; name++)
        methods += *name == ' ';
    for (i = 0; i < n; i++)   /* a flags slot: the flags, then a method number in hp_methods */
        if (meta[4 + 3 * i] < 0 || meta[4 + 3 * i] / HP_METHOD_UNIT > methods)
            abort();
}

/* The plain requests the fast lane answers are among those the full parse finds, in the same
 * places: the scan never takes a byte the parse would not. */
static void check_scan(const uint8_t *data, size_t size)
{
    static struct hp_field fields[100];
    static int64_t meta[3 + 8], batch_meta[3 + 3 * 8];
    static char out[32768], batch_out[32768];
    struct hp_batch scan = {{8192, 32768, 100}, fields, 100, meta, 3 + 8, out, sizeof out};
    struct hp_batch b = {{8192, 32768, 100}, fields, 100, batch_meta, 3 + 3 * 8, batch_out,
                         sizeof batch_out};
    int logged = size && (data[0] & 1);
    long n = hp_scan_plain(&scan, (const char *)data, size, 0, logged), parsed, i, nuls = 0;
    if (n < 0 || n > 8 || meta[1] < 0 || (size_t)meta[1] > size || (n == 0) != (meta[1] == 0))
        abort();
    /* a key, then with `logged` two values, each ending in the only NULs written */
    for (i = 0; i < meta[2]; i++)
        nuls += out[i] == '\0';
    if (nuls != n * (logged ? 3 : 1))
        abort();
    for (i = 0; i < n; i++)
        if (meta[3 + i] < 0 || meta[3 + i] >= meta[1] || (i && meta[3 + i] <= meta[2 + i]))
            abort();
    parsed = hp_parse_batch(&b, (const char *)data, (size_t)meta[1], 0);
    if (parsed != n || batch_meta[1] != meta[1])
        abort();
}

static void check_chunked(const uint8_t *data, size_t size)
{
    static char out[1 << 16];
    struct hp_chunked d;
    size_t o1 = 0, o2 = 0, cut = size ? data[0] % (size + 1) : 0;
    long r;
    if (size > sizeof out)
        return;
    memset(&d, 0, sizeof d);
    d.max_trailers = 64;
    r = hp_decode_chunked(&d, (const char *)data, cut, out, &o1);
    if (r >= 0 && !hp_chunked_done(&d) && (size_t)r != cut)
        abort();
    if (r >= 0)
        hp_decode_chunked(&d, (const char *)data + r, size - (size_t)r, out + o1, &o2);
    if (o1 + o2 > size)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct hp_limits small = {16, 64, 3}, defaults = {8192, 32768, 100};
    check_head(data, size, &small);
    check_head(data, size, &defaults);
    check_batch(data, size);
    check_scan(data, size);
    check_chunked(data, size);
    return 0;
}
