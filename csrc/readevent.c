/* readevent: see readevent.h. */
#define _GNU_SOURCE
#include "readevent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

/* One accepted descriptor, non-blocking and close-on-exec, or -1 with errno set. */
static int accept_one(int fd, struct sockaddr_storage *peer, socklen_t *len)
{
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
    return accept4(fd, (struct sockaddr *)peer, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int c = accept(fd, (struct sockaddr *)peer, len);
    if (c >= 0 && (fcntl(c, F_SETFD, FD_CLOEXEC) < 0
                   || fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK) < 0)) {
        int saved = errno;
        close(c);
        errno = saved;
        return -1;
    }
    return c;
#endif
}

/* The peer's host as text at h (an empty string when it has no IP address); its port. */
static int describe(const struct sockaddr_storage *peer, char *h)
{
    h[0] = '\0';
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
        inet_ntop(AF_INET, &in->sin_addr, h, RE_HOST_MAX);
        return ntohs(in->sin_port);
    }
    if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)peer;
        inet_ntop(AF_INET6, &in6->sin6_addr, h, RE_HOST_MAX);
        return ntohs(in6->sin6_port);
    }
    return 0;
}

/* Accepts up to out->cap connections into out's entries, the host of entry i at
 * hosts + i * RE_HOST_MAX until pack() puts them one after the other; returns how many. */
static size_t take(int fd, struct re_accepted *out)
{
    size_t n = 0;

    out->error = 0;
    while (n < out->cap && (n + 1) * RE_HOST_MAX <= out->hosts_cap) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int c = accept_one(fd, &peer, &len);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                out->error = errno;
            break;
        }
        out->fds[n] = c;
        out->ports[n] = describe(&peer, out->hosts + n * RE_HOST_MAX);
        n++;
    }
    return n;
}

/* The first n entries less those closed (fd -1), moved to the front in order with their
 * hosts one after the other (each at or before where take() put it); read_at follows its
 * entry. Returns how many are left. */
static long pack(struct re_accepted *out, size_t n)
{
    char *h = out->hosts;
    size_t i, kept = 0;

    for (i = 0; i < n; i++) {
        const char *host = out->hosts + i * RE_HOST_MAX;
        size_t len = strlen(host) + 1;
        if (out->fds[i] < 0)
            continue;
        memmove(h, host, len);
        h += len;
        out->fds[kept] = out->fds[i];
        out->ports[kept] = out->ports[i];
        if (out->read_at == (long)i)
            out->read_at = (long)kept;
        kept++;
    }
    out->hosts_len = (size_t)(h - out->hosts);
    return (long)kept;
}

long re_accept(int fd, struct re_accepted *out)
{
    out->read_at = -1;
    return pack(out, take(fd, out));
}

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0   /* where there is none, SIGPIPE is ignored (Python does so) */
#endif

/* The HP_PLAIN_* bits of a key: the byte after its target, which holds none below 0x21. */
static int plain_bits(const char *key)
{
    while ((unsigned char)*key > 0x20)
        key++;
    return (unsigned char)*key - 1;
}

/* FNV-1a: keys are short, and the table is rebuilt every second, so no attacker can grow a
 * chain for long (and a full probe gives up: the caller answers that key itself). */
static size_t hash(const char *key, size_t len)
{
    uint64_t h = 14695981039346656037ULL;
    size_t i;
    for (i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

/* The slot of `key`, or the empty slot where it would go; NULL when every slot probed is
 * taken by another key. */
static struct re_slot *find(const struct re_lane *lane, const char *key, size_t len)
{
    size_t mask = lane->slots_cap - 1, i = hash(key, len) & mask, probes;
    for (probes = 0; probes < lane->slots_cap; probes++, i = (i + 1) & mask) {
        struct re_slot *slot = &lane->slots[i];
        if (!slot->key_len
            || (slot->key_len == len && !memcmp(lane->arena + slot->key, key, len)))
            return slot;
    }
    return NULL;
}

long re_put(struct re_lane *lane, const char *key, size_t key_len, const char *message,
            size_t message_len, const char *part, size_t part_len)
{
    struct re_slot *slot;
    /* At most half full, so that a probe for a missing key ends soon. */
    if (!key_len || 2 * (lane->entries + 1) > lane->slots_cap
        || lane->arena_cap - lane->arena_used < key_len + message_len + part_len)
        return -1;
    slot = find(lane, key, key_len);
    if (!slot)
        return -1;
    if (slot->key_len)
        return 0;
    slot->key = lane->arena_used;
    memcpy(lane->arena + lane->arena_used, key, key_len);
    slot->message = lane->arena_used + key_len;
    memcpy(lane->arena + slot->message, message, message_len);
    slot->message_len = message_len;
    slot->part = slot->message + message_len;
    if (part_len)
        memcpy(lane->arena + slot->part, part, part_len);
    slot->part_len = part_len;
    slot->key_len = key_len;
    lane->arena_used += key_len + message_len + part_len;
    lane->entries++;
    return 0;
}

void re_clear(struct re_lane *lane)
{
    memset(lane->slots, 0, lane->slots_cap * sizeof *lane->slots);
    lane->entries = 0;
    lane->arena_used = 0;
}

long re_answer(struct re_lane *lane, const char *buf, size_t len)
{
    int64_t *results = lane->results;
    const int64_t *meta = lane->scan.meta;
    long plain = hp_scan_plain(&lane->scan, buf, len, 0, lane->logged), ready = 0;
    const char *key = lane->scan.out;
    size_t gathered = 0;
    int asked = 0, refused = 0;

    for (; ready < plain; ready++) {
        size_t key_len = strlen(key);
        const struct re_slot *slot = find(lane, key, key_len);
        if (!slot || !slot->key_len)
            break;
        if (!slot->message_len) {
            refused = 1;
            break;
        }
        if (lane->answers_cap - gathered < slot->message_len)
            break;
        memcpy(lane->answers + gathered, lane->arena + slot->message, slot->message_len);
        gathered += slot->message_len;
        /* the bits byte after the target; a request that does not keep the connection
         * alive is the last of a scan */
        asked = !(plain_bits(key) & HP_PLAIN_KEEP_ALIVE);
        key += key_len + 1;
        if (lane->logged) {
            key += strlen(key) + 1;
            key += strlen(key) + 1;
        }
    }
    results[RE_READ] = (int64_t)len;
    results[RE_READY] = ready;
    results[RE_END] = ready == 0 ? 0 : ready < plain ? meta[3 + ready] : meta[1];
    results[RE_ASKED] = asked;
    results[RE_GATHERED] = (int64_t)gathered;
    results[RE_SENT] = results[RE_LOGGED] = results[RE_DONE] = 0;   /* re_serve's */
    results[RE_REFUSED] = refused;
    return ready;
}

long re_read(struct re_lane *lane, int fd, char *buf, size_t cap)
{
    ssize_t n;
    do
        n = recv(fd, buf, cap, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n > 0)
        re_answer(lane, buf, (size_t)n);
    return n;
}

static const char MONTHS[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                   "Sep", "Oct", "Nov", "Dec"};

/* log_when as of now: made again only when the second has changed. Returns its length. */
static size_t log_when(struct re_lane *lane)
{
    time_t now = time(NULL);
    if ((int64_t)now != lane->log_second) {
        struct tm t;
        gmtime_r(&now, &t);
        snprintf(lane->log_when, RE_LOG_WHEN_MAX, "%02d/%s/%04d:%02d:%02d:%02d +0000",
                 t.tm_mday, MONTHS[t.tm_mon], t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec);
        lane->log_second = (int64_t)now;
    }
    return strlen(lane->log_when);
}

static char *put(char *o, const char *from, size_t n)
{
    memcpy(o, from, n);
    return o + n;
}

/* A request's field value as the combined format writes it (hp_scan_plain's HP_ABSENT for a
 * field it does not have), quoted; room for 4 bytes per byte and 3 more. */
static char *put_quoted(char *o, const char *value, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    *o++ = '"';
    if (!n || (n == 1 && value[0] == HP_ABSENT[0]))
        n = 0, *o++ = '-';
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
            o = put(o, "\\x", 2);
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    return o;
}

long re_log(struct re_lane *lane, const char *host, size_t host_len)
{
    char *o = lane->log + lane->log_len, *end = lane->log + lane->log_cap;
    const char *key = lane->scan.out;
    size_t when_len = log_when(lane);
    long i, ready = (long)lane->results[RE_READY];

    for (i = 0; i < ready; i++) {
        size_t key_len = strlen(key), referer_len = 0, agent_len = 0;
        const struct re_slot *slot = find(lane, key, key_len);
        const char *referer = key + key_len + 1, *agent = referer;
        if (!slot || !slot->key_len)
            return 0;   /* the table changed since: not the last re_answer's */
        if (lane->logged) {
            referer_len = strlen(referer);
            agent = referer + referer_len + 1;
            agent_len = strlen(agent);
            key = agent + agent_len + 1;
        } else {
            key = referer;
        }
        /* the fixed bytes of a line are fewer than 24 */
        if ((size_t)(end - o) < host_len + when_len + slot->part_len
                                + 4 * (referer_len + agent_len) + 24)
            return 0;
        o = put(o, host, host_len);
        o = put(o, " - - [", 6);
        o = put(o, lane->log_when, when_len);
        o = put(o, "] ", 2);
        o = put(o, lane->arena + slot->part, slot->part_len);
        if (lane->log_format == RE_LOG_COMBINED) {
            *o++ = ' ';
            o = put_quoted(o, referer, referer_len);
            *o++ = ' ';
            o = put_quoted(o, agent, agent_len);
        }
        *o++ = '\n';
    }
    lane->log_len = (size_t)(o - lane->log);
    return 1;
}

/* Whether the last read, of n bytes, was plain requests all answered from the table, sent in
 * full, and logged (or not to be logged): what re_serve and re_accept_serve each need to know,
 * before the one asks that no request asked to close and the other that the last did. */
static int ended_whole(const struct re_lane *lane, long n)
{
    const int64_t *results = lane->results;
    return results[RE_READY] && results[RE_SENT] == results[RE_GATHERED]
           && results[RE_END] == n && (lane->log_format == RE_LOG_NONE || results[RE_LOGGED]);
}

long re_serve(struct re_lane *lane, char *buf, size_t cap, int fd, int may_send,
              const char *host)
{
    long n = re_read(lane, fd, buf, cap);
    int64_t *results = lane->results;
    if (n <= 0)
        results[RE_SENT] = results[RE_LOGGED] = results[RE_DONE] = results[RE_REFUSED] = 0;
    if (n > 0 && may_send && results[RE_READY]) {
        results[RE_SENT] = re_send(lane, fd, 0, (size_t)results[RE_GATHERED]);
        if (results[RE_SENT] == results[RE_GATHERED]) {
            int first = lane->log_len == 0;
            if ((lane->log_format == RE_LOG_COMMON || lane->log_format == RE_LOG_COMBINED)
                && re_log(lane, host, strlen(host)))
                results[RE_LOGGED] = first ? RE_FIRST_LINES : 1;
            if (!results[RE_ASKED] && ended_whole(lane, n))
                results[RE_DONE] = results[RE_LOGGED] ? results[RE_LOGGED] : 1;
        }
    }
    return n;
}

long re_send(const struct re_lane *lane, int fd, size_t from, size_t len)
{
    ssize_t sent;
    if (from > len || len > (size_t)lane->results[RE_GATHERED])
        return -EINVAL;
    do
        sent = send(fd, lane->answers + from, len - from, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    return sent < 0 ? -errno : sent;
}

long re_accept_serve(struct re_lane *lane, char *buf, size_t cap, int fd,
                     struct re_accepted *out)
{
    const int64_t *results = lane->results;
    size_t n = take(fd, out), i;

    out->read_at = -1;
    out->closed = out->answered = 0;
    out->first_lines = 0;
    for (i = 0; i < n; i++) {
        long got = re_serve(lane, buf, cap, out->fds[i], 1, out->hosts + i * RE_HOST_MAX);
        if (got == -EAGAIN || got == -EWOULDBLOCK)
            continue;
        if (got > 0) {
            if (!results[RE_ASKED] || !ended_whole(lane, got)) {
                out->read_at = (long)i;
                break;
            }
            out->answered += (size_t)results[RE_READY];
            out->first_lines |= results[RE_LOGGED] == RE_FIRST_LINES;
        }
        close(out->fds[i]);
        out->fds[i] = -1;
        out->closed++;
    }
    return pack(out, n);
}

long re_poll(struct re_lane *lane, char *buf, size_t cap, struct re_polled *p, int timeout_ms)
{
#ifdef __linux__
    struct epoll_event *events = p->events;
    const int64_t *results = lane->results;
    int n, i;

    p->done_len = p->rest_len = 0;
    p->read_fd = -1;
    p->first_lines = 0;
    do
        n = epoll_wait(p->epfd, events, (int)p->events_cap, timeout_ms);
    while (n < 0 && errno == EINTR && (timeout_ms = 0, 1));
    if (n < 0)
        return -errno;
    for (i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        int kept = fd >= 0 && (size_t)fd < p->cap && p->kept[fd];
        if (kept && p->read_fd < 0 && events[i].events == EPOLLIN) {
            long got = re_serve(lane, buf, cap, fd, 1, p->hosts + (size_t)fd * RE_HOST_MAX);
            if (got > 0 && results[RE_DONE]) {
                p->done[p->done_len] = fd;
                p->done_ready[p->done_len++] = (int)results[RE_READY];
                p->first_lines |= results[RE_DONE] == RE_FIRST_LINES;
                continue;
            }
            if (got == -EAGAIN || got == -EWOULDBLOCK)
                continue;   /* nothing to read after all: it stays kept */
            p->kept[fd] = 0;
            p->read_fd = fd;
            p->read_len = got;
            continue;
        }
        if (kept)
            p->kept[fd] = 0;
        p->rest[p->rest_len] = fd;
        p->rest_events[p->rest_len++] = events[i].events;
    }
    return n;
#else
    (void)lane, (void)buf, (void)cap, (void)p, (void)timeout_ms;
    return -ENOSYS;
#endif
}
