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
 * (0: none was waiting any more, or `cap` were taken). */
struct re_accepted {
    int *fds;
    int *ports;
    size_t cap;        /* connections to take at most */
    char *hosts;
    size_t hosts_cap;  /* at least cap * RE_HOST_MAX */
    size_t hosts_len;
    int error;
};

/* Accepts up to out->cap connections waiting on the listening socket `fd`, each non-blocking
 * and close-on-exec from the start (accept4 where there is one), and returns how many. A
 * connection the client gave up on before it was taken (ECONNABORTED, EPROTO) is skipped. */
long re_accept(int fd, struct re_accepted *out);

/* The fast lane's table of ready answers, by plain key (httpparse's hp_scan_plain keys): the
 * caller owns the slots (a power of two of them) and the arena the keys and messages are
 * copied into. */
struct re_slot {
    size_t key;          /* offsets into the arena; key_len 0 marks an empty slot */
    size_t key_len;
    size_t message;
    size_t message_len;
};

/* re_answer's results, in `results`: */
enum {
    RE_READ,      /* bytes read (re_read), or the length answered over */
    RE_READY,     /* plain requests answered from the table, from the first on */
    RE_END,       /* the offset past the last of them */
    RE_ASKED,     /* whether the last of them asked to close the connection */
    RE_GATHERED,  /* bytes of their answers, one after the other, in `answers` */
    RE_SENT,      /* re_serve: the bytes of them it sent, or -errno */
    RE_RESULTS
};

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
    int64_t results[RE_RESULTS];
};

/* Keeps `message` as the answer to `key` (copied). Returns 0, or -1 when the table or the
 * arena is full (the caller answers that key itself). A key put twice keeps its first. */
long re_put(struct re_lane *lane, const char *key, size_t key_len, const char *message,
            size_t message_len);

/* Forgets every answer. */
void re_clear(struct re_lane *lane);

/* The core of a read event, without I/O: scans the plain requests at the start of
 * buf[0:len] and gathers, into `answers`, the answers of those at its start whose keys are
 * in the table, stopping at the first that is not (or when `answers` is full). Fills
 * `results` and returns RE_READY's count. */
long re_answer(struct re_lane *lane, const char *buf, size_t len);

/* A read event of the socket `fd`: recv into buf (cap bytes), then re_answer. Returns the
 * bytes read, 0 at the end of input, or -errno (-EAGAIN: nothing to read). */
long re_read(struct re_lane *lane, int fd, char *buf, size_t cap);

/* re_read, then, when `may_send` is set and requests were answered, the send of every byte
 * gathered (RE_SENT). The caller sets `may_send` only when a connection would stay open
 * after any number of answers a read can hold, unless a client asks to close. Returns what
 * re_read does. */
long re_serve(struct re_lane *lane, char *buf, size_t cap, int fd, int may_send);

/* Sends the first `len` bytes gathered by the last re_answer on the socket `fd`, from byte
 * `from`. Returns the bytes sent, or -errno. */
long re_send(const struct re_lane *lane, int fd, size_t from, size_t len);

#endif
