/* readevent: see readevent.h. */
#define _GNU_SOURCE
#include "readevent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

long re_accept(int fd, struct re_accepted *out)
{
    size_t n = 0;
    char *h = out->hosts, *hosts_end = out->hosts + out->hosts_cap;

    out->error = 0;
    while (n < out->cap && (size_t)(hosts_end - h) >= RE_HOST_MAX) {
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
        out->ports[n] = describe(&peer, h);
        h += strlen(h) + 1;
        n++;
    }
    out->hosts_len = (size_t)(h - out->hosts);
    return (long)n;
}
