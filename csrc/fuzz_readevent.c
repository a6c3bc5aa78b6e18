/* libFuzzer target of readevent's core: whatever the bytes of a read, re_answer answers the
 * plain requests the scan finds, from the first on, while the table holds their keys and
 * the answers fit, gathering exactly the messages put for them. Of every four plain requests
 * the first's key is put (its message is the key's own bytes) and the third's put refused
 * (an empty message), so hits, misses, refusals and repeats all occur: the answers stop at a
 * refused key, and RE_REFUSED says whether that is where they stopped.
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
    static const char *put[16], *refused[16];
    static size_t put_len[16], refused_len[16];
    struct re_lane lane;
    long plain, ready, expected = 0, i, puts = 0, refusals = 0, stopped_by_refusal = 0, j;
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
        size_t len = strlen(key), before = lane.entries;
        /* a key put twice keeps its first: only a new entry says what the key is */
        if (i % 4 == 0 && re_put(&lane, key, len, key, len, "P", 1) == 0
            && lane.entries > before) {
            put[puts] = key;
            put_len[puts++] = len;
        } else if (i % 4 == 2 && re_put(&lane, key, len, "", 0, "", 0) == 0
                   && lane.entries > before) {
            refused[refusals] = key;
            refused_len[refusals++] = len;
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
        for (j = 0; j < refusals; j++)
            if (refused_len[j] == len && !memcmp(refused[j], key, len))
                break;
        if (j < refusals) {
            stopped_by_refusal = 1;
            break;
        }
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
        || (size_t)lane.results[RE_GATHERED] != gathered || memcmp(answers, want, gathered)
        || lane.results[RE_REFUSED] != stopped_by_refusal)
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
