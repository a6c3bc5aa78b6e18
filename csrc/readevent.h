/* readevent: what the loop does on a read event, in C, where Python would spend more on the
 * calls than on the work.
 *
 * This unit is the thin shell of system calls around the parser (httpparse has none): it
 * accepts connections, and (see below) reads a socket, answers its plain requests from a table
 * of ready messages and writes the answers. The caller owns every buffer and passes its
 * capacity; nothing here allocates or keeps a pointer past the call that received it.
 */
#ifndef READEVENT_H
#define READEVENT_H

#include <stddef.h>
#include <stdint.h>

#include "httpparse.h"

/* Room for one peer's host as text (INET6_ADDRSTRLEN), NUL included. */
#define RE_HOST_MAX 46

/* What re_accept fills in: per connection its descriptor and its peer's port, and the
 * peer's host as text, each NUL-terminated one after the other in `hosts` (an empty host for a
 * peer that has no address: a unix socket's). `error` is the errno that stopped the batch
 * (0: none was waiting any more, or `cap` were taken). The rest is re_accept_serve's. */
struct re_accepted {
    int *fds;
    int *ports;
    size_t cap;        /* connections to take at most */
    char *hosts;
    size_t hosts_cap;  /* at least cap * RE_HOST_MAX */
    size_t hosts_len;
    int error;
    long read_at;      /* the connection whose first read the lane holds, or -1 */
    size_t closed;     /* connections served whole and closed, not among those taken */
    size_t answered;   /* the requests those were answered */
    int first_lines;   /* whether their log lines were the first in the lane's log */
};

/* Accepts up to out->cap connections waiting on the listening socket `fd`, each non-blocking
 * and close-on-exec from the start (accept4 where there is one), and returns how many. A
 * connection the client gave up on before it was taken (ECONNABORTED, EPROTO) is skipped. */
long re_accept(int fd, struct re_accepted *out);

/* The fast lane's table of ready answers, by plain key (httpparse's hp_scan_plain keys): the
 * caller owns the slots (a power of two of them) and the arena the keys, messages and log
 * parts are copied into. */
struct re_slot {
    size_t key;          /* offsets into the arena; key_len 0 marks an empty slot */
    size_t key_len;
    size_t message;
    size_t message_len;
    size_t part;         /* the answer's part of an access log line (see re_lane's log) */
    size_t part_len;
};

/* re_answer's results, in `results`: */
enum {
    RE_READ,      /* bytes read (re_read), or the length answered over */
    RE_READY,     /* plain requests answered from the table, from the first on */
    RE_END,       /* the offset past the last of them */
    RE_ASKED,     /* whether the last of them asked to close the connection */
    RE_GATHERED,  /* bytes of their answers, one after the other, in `answers` */
    RE_SENT,      /* re_serve: the bytes of them it sent, or -errno */
    RE_LOGGED,    /* re_serve: whether it wrote their access log lines (see re_lane's log) */
    RE_DONE,      /* re_serve: whether the read needs nothing more of its caller (below) */
    RE_REFUSED,   /* whether the first plain request left unanswered is one the table marks
                   * as its caller's (an entry with an empty message): the caller's handler
                   * answers it, so nothing more need be looked up for this read */
    RE_RESULTS
};

/* RE_DONE: nothing is left for the caller to do about the read but count it. Every byte read
 * was a plain request answered from the table, all of it sent, logged (unless the log is
 * RE_LOG_NONE), and no request asked to close. RE_LOGGED and RE_DONE are RE_FIRST_LINES
 * instead of 1 when the lines written are the first in `log` since the caller last took
 * them: it has them taken soon. */
#define RE_FIRST_LINES 2

/* How re_serve logs what it sent in full: not at all (no access log), in one of the access
 * log's text formats, or never (RE_LOG_ELSEWHERE: the caller logs each answer itself). */
enum { RE_LOG_NONE, RE_LOG_COMMON, RE_LOG_COMBINED, RE_LOG_ELSEWHERE };

/* The access log's time of a line, "06/Dec/2026:04:10:44 +0000", NUL included. */
#define RE_LOG_WHEN_MAX 32

struct re_lane {
    struct hp_batch scan;    /* for hp_scan_plain: its out holds the keys of the last read */
    int logged;              /* scan with the access log's fields (hp_scan_plain's `logged`) */
    struct re_slot *slots;
    size_t slots_cap;        /* a power of two */
    size_t entries;
    char *arena;
    size_t arena_cap;
    size_t arena_used;
    char *answers;
    size_t answers_cap;
    /* The access log's lines, as its common or combined format writes them: `client - -
     * [time] ` then the slot's part (`"GET /a HTTP/1.1" 200 1024`, the body bytes its whole
     * answer holds), then for combined ` "referer" "user-agent"` (a quote, backslash,
     * control byte or byte above 0x7e written \xHH, an absent or empty value "-"), and a
     * newline. Appended until the caller takes them (log_len back to 0); a read whose lines
     * do not fit is left to the caller to log. */
    int log_format;          /* RE_LOG_* */
    char *log;
    size_t log_cap;
    size_t log_len;
    int64_t log_second;      /* the second that log_when writes */
    char log_when[RE_LOG_WHEN_MAX];
    int64_t results[RE_RESULTS];
};

/* Keeps `message` as the answer to `key` (copied), with `part`, its part of a log line (empty
 * when the lane does not log); an empty `message` marks the key as one the caller answers
 * (RE_REFUSED). Returns 0, or -1 when the table or the arena is full (the
 * caller answers that key itself). A key put twice keeps its first. */
long re_put(struct re_lane *lane, const char *key, size_t key_len, const char *message,
            size_t message_len, const char *part, size_t part_len);

/* Forgets every answer. */
void re_clear(struct re_lane *lane);

/* The core of a read event, without I/O: scans the plain requests at the start of
 * buf[0:len] and gathers, into `answers`, the answers of those at its start whose keys are
 * in the table, stopping at the first that is not (or when `answers` is full). Fills
 * `results` and returns RE_READY's count. */
long re_answer(struct re_lane *lane, const char *buf, size_t len);

/* Appends the log lines of the answers of the last re_answer to `log` (in the lane's
 * log_format, COMMON or COMBINED), from the client `host`, as sent in full. Returns 1, or 0
 * when they do not all fit (nothing is appended then). */
long re_log(struct re_lane *lane, const char *host, size_t host_len);

/* A read event of the socket `fd`: recv into buf (cap bytes), then re_answer. Returns the
 * bytes read, 0 at the end of input, or -errno (-EAGAIN: nothing to read). */
long re_read(struct re_lane *lane, int fd, char *buf, size_t cap);

/* re_read, then, when `may_send` is set and requests were answered, the send of every byte
 * gathered (RE_SENT) and, once all of it is sent, their log lines, from the client `host`
 * (NUL-terminated; RE_LOGGED). The caller sets `may_send` only when a connection would stay open after any
 * number of answers a read can hold, unless a client asks to close. Returns what re_read
 * does. */
long re_serve(struct re_lane *lane, char *buf, size_t cap, int fd, int may_send,
              const char *host);

/* Sends the first `len` bytes gathered by the last re_answer on the socket `fd`, from byte
 * `from`. Returns the bytes sent, or -errno. */
long re_send(const struct re_lane *lane, int fd, size_t from, size_t len);

/* re_accept, then a first read of each connection taken, as re_serve with `may_send` does
 * (the caller sets it only when its keep-alive plan for a connection that has answered
 * nothing allows that), with the peer's host as the client: where a client's request was
 * there already (the listener woke up as its connection completed, and the request often
 * follows at once), it is answered before the connection costs its caller anything.
 * A connection whose read was plain requests all answered from the table, sent and logged in
 * full, the last asking to close and nothing after it, is closed here, as is one that ended
 * or failed before sending anything: neither is among those taken; `closed` counts them and
 * `answered` the requests they were answered. A connection with nothing to read yet is
 * taken as re_accept takes it. The first read that needs more of the caller (anything else)
 * ends the reads: its connection is taken at `read_at`, and buf and the lane's results hold
 * its read as re_serve leaves them (RE_READ its length); the connections accepted after it
 * are taken unread. Returns how many are taken. */
long re_accept_serve(struct re_lane *lane, char *buf, size_t cap, int fd,
                     struct re_accepted *out);

/* What re_poll works with and fills in. `kept` and `hosts` are by descriptor, below `cap`:
 * kept[fd] is 1 for an idle plain connection whose reads the lane may answer and send as
 * re_serve does when let send, its client's host (as the log writes it) at
 * hosts + fd * RE_HOST_MAX. `events` is room for `events_cap` epoll events (an array of
 * struct epoll_event, given as bytes so that the declaration needs no system header). */
struct re_polled {
    int epfd;
    unsigned char *kept;
    char *hosts;
    size_t cap;
    void *events;
    size_t events_cap;
    int *done;           /* the kept connections whose reads re_serve ended (RE_DONE) */
    int *done_ready;     /* and the requests each answered */
    size_t done_len;
    int *rest;           /* the events left to the caller, in the order they came */
    uint32_t *rest_events;
    size_t rest_len;
    int read_fd;         /* -1, or a kept connection whose read needs the caller (below) */
    long read_len;       /* what re_serve returned for it */
    int first_lines;     /* whether the done reads' lines were the first in the lane's log */
};

/* One wait of the loop's epoll set `epfd` (epoll_wait, up to `timeout_ms`), where the events of
 * kept connections are served here: a kept connection readable (and nothing else) has its read
 * served as re_serve(may_send 1) does, and one that ends as RE_DONE is noted in `done`. Every
 * other event goes to `rest`, for the caller to dispatch; a kept connection whose read needs
 * more of the caller (anything but RE_DONE, or nothing to read) ends the serving: it is
 * `read_fd`, not in `rest`, with its read in buf and the lane's results as re_serve left them,
 * for the caller to finish before it dispatches `rest`; the events after it go to `rest` as
 * they are. A kept connection that goes to the caller for any reason is no longer kept
 * (kept[fd] 0): the caller keeps it again once it is idle. Returns the events the wait gave,
 * or -errno (-ENOSYS where there is no epoll). */
long re_poll(struct re_lane *lane, char *buf, size_t cap, struct re_polled *p, int timeout_ms);

#endif
