/* libFuzzer target of readevent's core: whatever the bytes of a read, re_answer answers the
 * plain requests the scan finds, from the first on, while the table holds their keys and
 * the answers fit, gathering exactly the messages put for them. Every other plain request's
 * key is put (its message is the key's own bytes), so hits, misses and repeats all occur.
 * Then re_log writes one line per answer, in printable ASCII whatever the request held, or
 * nothing when they do not fit. */
#include "readevent.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hp_field fields[100];
    static int64_t meta[3 + 16];
    static char out[32768], keys[32768], arena[1 << 16], answers[256], want[256], log[2048];
    static struct re_slot slots[64];
    static const char *put[16];
    static size_t put_len[16];
    struct re_lane lane;
    long plain, ready, expected = 0, i, puts = 0, j;
    const char *key = keys;
    size_t gathered = 0, keys_len;

    memset(&lane, 0, sizeof lane);
    lane.scan = (struct hp_batch){{8192, 32768, 100}, fields, 100, meta, 3 + 16, out, sizeof out};
    lane.logged = size && (data[0] & 1);
    lane.slots = slots;
    lane.slots_cap = 64;
    lane.arena = arena;
    lane.arena_cap = sizeof arena;
    lane.answers = answers;
    lane.answers_cap = sizeof answers;
    lane.log = log;
    lane.log_cap = size > 1 ? 64 + data[1] * 8 : sizeof log;
    lane.log_format = size && (data[0] & 2) ? RE_LOG_COMBINED : RE_LOG_COMMON;
    re_clear(&lane);

    plain = hp_scan_plain(&lane.scan, (const char *)data, size, 0, lane.logged);
    keys_len = (size_t)meta[2];
    memcpy(keys, out, keys_len);
    for (i = 0; i < plain; i++) {
        size_t len = strlen(key);
        if (i % 2 == 0 && re_put(&lane, key, len, key, len, "P", 1) == 0) {
            put[puts] = key;
            put_len[puts++] = len;
        }
        key += len + 1;
        if (lane.logged) {
            key += strlen(key) + 1;
            key += strlen(key) + 1;
        }
    }
    /* what should be answered: the leading keys that were put, while they fit */
    for (key = keys, i = 0; i < plain; i++) {
        size_t len = strlen(key);
        for (j = 0; j < puts; j++)
            if (put_len[j] == len && !memcmp(put[j], key, len))
                break;
        if (j == puts || sizeof want - gathered < len)
            break;
        memcpy(want + gathered, key, len);
        gathered += len;
        expected++;
        key += len + 1;
        if (lane.logged) {
            key += strlen(key) + 1;
            key += strlen(key) + 1;
        }
    }
    ready = re_answer(&lane, (const char *)data, size);
    if (ready != expected || lane.results[RE_READY] != ready
        || (size_t)lane.results[RE_GATHERED] != gathered || memcmp(answers, want, gathered))
        abort();
    if (ready && (lane.results[RE_END] <= 0 || (size_t)lane.results[RE_END] > size))
        abort();
    if (!ready && lane.results[RE_END] != 0)
        abort();
    if (re_log(&lane, "h", 1)) {
        long lines = 0;
        size_t k;
        for (k = 0; k < lane.log_len; k++) {
            if (log[k] == '\n')
                lines++;
            else if (log[k] < 0x20 || log[k] > 0x7e)
                abort();
        }
        if (lines != ready || (ready && memcmp(log, "h - - [", 7)))
            abort();
    } else if (lane.log_len != 0) {
        abort();
    }
    return 0;
}
