/* Unit tests of readevent over real sockets (127.0.0.1 and a unix socket), run under ASan and
 * UBSan by `make test`. */
#include "readevent.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond, ...)                                                                \
    do {                                                                                \
        checks++;                                                                       \
        if (!(cond)) {                                                                  \
            failures++;                                                                 \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                 \
            printf(__VA_ARGS__);                                                        \
            printf("\n");                                                               \
        }                                                                               \
    } while (0)

static int tcp_listener(struct sockaddr_in *where)
{
    socklen_t len = sizeof *where;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(where, 0, sizeof *where);
    where->sin_family = AF_INET;
    where->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)where, sizeof *where) || listen(fd, 16)
        || getsockname(fd, (struct sockaddr *)where, &len)) {
        perror("listener");
        exit(2);
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

static int tcp_client(const struct sockaddr_in *to, int *port)
{
    struct sockaddr_in mine;
    socklen_t len = sizeof mine;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)to, sizeof *to)
        || getsockname(fd, (struct sockaddr *)&mine, &len)) {
        perror("client");
        exit(2);
    }
    *port = ntohs(mine.sin_port);
    return fd;
}

static void test_accept_tcp(void)
{
    struct sockaddr_in where;
    int listener = tcp_listener(&where), clients[3], ports[3], fds[2], got_ports[2], i;
    char hosts[2 * RE_HOST_MAX];
    struct re_accepted out = {fds, got_ports, 2, hosts, sizeof hosts, 0, 0};
    long n;

    for (i = 0; i < 3; i++)
        clients[i] = tcp_client(&where, &ports[i]);
    n = re_accept(listener, &out);
    CHECK(n == 2 && out.error == 0, "first batch: %ld, error %d", n, out.error);
    CHECK(out.hosts_len == 2 * sizeof "127.0.0.1" && !strcmp(hosts, "127.0.0.1")
              && !strcmp(hosts + sizeof "127.0.0.1", "127.0.0.1"),
          "hosts: %zu bytes, %s", out.hosts_len, hosts);
    CHECK(got_ports[0] == ports[0] && got_ports[1] == ports[1], "ports %d %d", got_ports[0],
          got_ports[1]);
    for (i = 0; i < 2; i++) {
        CHECK(fcntl(fds[i], F_GETFL) & O_NONBLOCK, "accepted socket %d blocks", i);
        CHECK(fcntl(fds[i], F_GETFD) & FD_CLOEXEC, "accepted socket %d is inherited", i);
        close(fds[i]);
    }
    n = re_accept(listener, &out);
    CHECK(n == 1 && got_ports[0] == ports[2], "second batch: %ld", n);
    close(fds[0]);
    n = re_accept(listener, &out);
    CHECK(n == 0 && out.error == 0 && out.hosts_len == 0, "nothing waiting: %ld, %d", n,
          out.error);
    for (i = 0; i < 3; i++)
        close(clients[i]);
    close(listener);
}

static void test_accept_unix_and_errors(void)
{
    struct sockaddr_un where = {.sun_family = AF_UNIX};
    int listener = socket(AF_UNIX, SOCK_STREAM, 0), client = socket(AF_UNIX, SOCK_STREAM, 0);
    int fds[1], ports[1] = {-1};
    char hosts[RE_HOST_MAX];
    struct re_accepted out = {fds, ports, 1, hosts, sizeof hosts, 0, 0};
    long n;

    snprintf(where.sun_path, sizeof where.sun_path, "/tmp/test_readevent.%d", (int)getpid());
    unlink(where.sun_path);
    if (bind(listener, (struct sockaddr *)&where, sizeof where) || listen(listener, 4)
        || connect(client, (struct sockaddr *)&where, sizeof where)) {
        perror("unix socket");
        exit(2);
    }
    n = re_accept(listener, &out);
    CHECK(n == 1 && hosts[0] == '\0' && out.hosts_len == 1 && ports[0] == 0,
          "unix peer: %ld, host '%s', port %d", n, hosts, ports[0]);
    close(fds[0]);
    close(client);
    close(listener);
    unlink(where.sun_path);

    n = re_accept(listener, &out);   /* closed: the error is reported, nothing taken */
    CHECK(n == 0 && out.error != 0, "closed listener: %ld, error %d", n, out.error);
    out.hosts_cap = RE_HOST_MAX - 1;   /* no room for a host: nothing is taken */
    CHECK(re_accept(listener, &out) == 0 && out.error == 0, "no room");
}

int main(void)
{
    test_accept_tcp();
    test_accept_unix_and_errors();
    printf("%d checks, %d failures\n", checks, failures);
    return failures != 0;
}
