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

#endif
