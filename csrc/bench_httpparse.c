/* Tiny C bench of the core: parses one request file N times. Run it under
 * `valgrind --tool=callgrind` (make callgrind) and divide the instruction count of
 * hp_parse_request (inclusive) by N; the wall-clock figure printed is only a rough guide. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "httpparse.h"

int main(int argc, char **argv)
{
    static char buf[1 << 16];
    struct hp_limits lim = {8192, 32768, 100};
    struct hp_request req;
    struct hp_field fields[100];
    long n = argc > 2 ? atol(argv[2]) : 1000000, i, r = 0;
    size_t len;
    struct timespec t0, t1;
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : NULL;
    if (!f) {
        fprintf(stderr, "usage: %s REQUEST_FILE [N]\n", argv[0]);
        return 2;
    }
    len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n; i++) {
        r = hp_parse_request(buf, len, &lim, &req, fields, 100);
        if (r <= 0) {
            fprintf(stderr, "parse failed: %ld\n", r);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%s: %ld bytes, %zu fields, %.1f ns per parse (%ld runs)\n", argv[1], r,
           req.num_fields,
           ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / (double)n, n);
    return 0;
}
