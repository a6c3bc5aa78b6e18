/* Unit tests of readevent over real sockets (127.0.0.1 and a unix socket), run under ASan and
 * UBSan by `make test`. */
#include "readevent.h"

#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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
    struct re_accepted out = {fds, got_ports, 2, hosts, sizeof hosts, 0, 0, -1, 0, 0, 0};
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
    struct re_accepted out = {fds, ports, 1, hosts, sizeof hosts, 0, 0, -1, 0, 0, 0};
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

/* A lane with small buffers, for the tests below. */
static struct hp_field lane_fields[100];
static int64_t lane_meta[3 + 64];
static char lane_out[65536], lane_arena[256], lane_answers[64];
static struct re_slot lane_slots[8];

static struct re_lane *small_lane(void)
{
    static struct re_lane lane;
    memset(&lane, 0, sizeof lane);
    lane.scan = (struct hp_batch){{8192, 32768, 100}, lane_fields, 100, lane_meta, 3 + 64,
                                  lane_out, sizeof lane_out};
    lane.slots = lane_slots;
    lane.slots_cap = 8;
    lane.arena = lane_arena;
    lane.arena_cap = sizeof lane_arena;
    lane.answers = lane_answers;
    lane.answers_cap = sizeof lane_answers;
    re_clear(&lane);
    return &lane;
}

#define GET(target, fields) "GET " target " HTTP/1.1\r\nHost: x\r\n" fields "\r\n"

/* The table: answers from the start of a read, until a key it does not hold. */
static void test_answer_from_the_table(void)
{
    static const char in[] = GET("/a", "") GET("/b", "") GET("/c", "") GET("/a", "");
    struct re_lane *lane = small_lane();
    long ready;

    CHECK(re_answer(lane, in, sizeof in - 1) == 0 && lane->results[RE_END] == 0,
          "empty table");
    CHECK(re_put(lane, "/a\x07", 3, "A!", 2, "", 0) == 0 && re_put(lane, "/b\x07", 3, "BB", 2, "", 0) == 0,
          "put");
    CHECK(re_put(lane, "/a\x07", 3, "other", 5, "", 0) == 0 && lane->entries == 2, "a key put twice");
    ready = re_answer(lane, in, sizeof in - 1);
    CHECK(ready == 2 && lane->results[RE_GATHERED] == 4 && !memcmp(lane_answers, "A!BB", 4)
              && lane->results[RE_END] == 2 * (sizeof GET("/a", "") - 1)
              && lane->results[RE_ASKED] == 0 && lane->results[RE_READ] == sizeof in - 1,
          "answered %ld, end %lld", ready, (long long)lane->results[RE_END]);
    CHECK(re_put(lane, "/c\x07", 3, "C", 1, "", 0) == 0, "third put");
    CHECK(re_put(lane, "/d\x07", 3, "D", 1, "", 0) == 0, "half the slots");
    CHECK(re_put(lane, "/e\x07", 3, "E", 1, "", 0) == -1, "more than half the slots: refused");
    ready = re_answer(lane, in, sizeof in - 1);
    CHECK(ready == 4 && lane->results[RE_END] == sizeof in - 1
              && !memcmp(lane_answers, "A!BBCA!", 7),
          "all four: %ld", ready);
    re_clear(lane);
    CHECK(re_answer(lane, in, sizeof in - 1) == 0 && lane->entries == 0, "cleared");
}

static void test_answer_limits_and_close(void)
{
    static const char closing[] = GET("/a", "Connection: close\r\n") GET("/a", "");
    static char big[300];
    struct re_lane *lane = small_lane();
    memset(big, 'x', sizeof big);
    CHECK(re_put(lane, "/a\x03", 3, "bye", 3, "", 0) == 0, "put");
    CHECK(re_answer(lane, closing, sizeof closing - 1) == 1 && lane->results[RE_ASKED] == 1
              && lane->results[RE_END] == sizeof GET("/a", "Connection: close\r\n") - 1,
          "a request asking to close is the last");
    CHECK(re_put(lane, "/b\x07", 3, big, sizeof big, "", 0) == -1, "no room in the arena");
    CHECK(re_put(lane, "/b\x07", 3, big, 60, "", 0) == 0, "room for it");
    {
        static const char two[] = GET("/b", "") GET("/b", "");
        CHECK(re_answer(lane, two, sizeof two - 1) == 1 && lane->results[RE_GATHERED] == 60,
              "no room for the second answer");
    }
}

/* recv, answer and send on a socket pair. */
static void test_read_and_send(void)
{
    static const char in[] = GET("/a", "");
    struct re_lane *lane = small_lane();
    char buf[512], back[16];
    int pair[2];
    long n;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair)) {
        perror("socketpair");
        exit(2);
    }
    fcntl(pair[0], F_SETFL, O_NONBLOCK);
    re_put(lane, "/a\x07", 3, "hello", 5, "", 0);
    CHECK(re_read(lane, pair[0], buf, sizeof buf) == -EAGAIN, "nothing to read");
    CHECK(write(pair[1], in, sizeof in - 1) == (ssize_t)sizeof in - 1, "write");
    n = re_read(lane, pair[0], buf, sizeof buf);
    CHECK(n == (long)sizeof in - 1 && lane->results[RE_READY] == 1, "read %ld", n);
    CHECK(re_send(lane, pair[0], 2, 5) == 3 && read(pair[1], back, sizeof back) == 3
              && !memcmp(back, "llo", 3),
          "sent from byte 2");
    CHECK(re_send(lane, pair[0], 0, 6) == -EINVAL, "more than was gathered");
    CHECK(write(pair[1], in, sizeof in - 1) == (ssize_t)sizeof in - 1, "write");
    CHECK(re_serve(lane, buf, sizeof buf, pair[0], 0, "") > 0 && lane->results[RE_SENT] == 0,
          "served without sending");
    CHECK(write(pair[1], in, sizeof in - 1) == (ssize_t)sizeof in - 1, "write");
    CHECK(re_serve(lane, buf, sizeof buf, pair[0], 1, "") > 0 && lane->results[RE_SENT] == 5
              && read(pair[1], back, sizeof back) == 5 && !memcmp(back, "hello", 5),
          "served and sent");
    close(pair[1]);
    CHECK(re_read(lane, pair[0], buf, sizeof buf) == 0, "end of input");
    close(pair[0]);
}

/* The access log's lines of what was answered, in both text formats; a read whose lines do
 * not fit is logged by nobody here. */
static void test_log_lines(void)
{
    static const char in[] = GET("/a", "Referer: http://r.test/\r\nUser-Agent: say \"hi\" \\ \xe9\r\n")
                             GET("/a", "Referer:\r\n");
    static const char part[] = "\"GET /a HTTP/1.1\" 200 5";
    static char log[512], want[512];
    struct re_lane *lane = small_lane();
    int length;

    lane->log = log;
    lane->log_cap = sizeof log;
    lane->log_format = RE_LOG_COMMON;
    CHECK(re_put(lane, "/a\x07", 3, "hello", 5, part, sizeof part - 1) == 0, "put");
    CHECK(re_answer(lane, in, sizeof in - 1) == 2 && re_log(lane, "10.0.0.1", 8) == 1, "common");
    length = snprintf(want, sizeof want, "10.0.0.1 - - [%s] %s\n10.0.0.1 - - [%s] %s\n",
                      lane->log_when, part, lane->log_when, part);
    CHECK(lane->log_len == (size_t)length && !memcmp(log, want, lane->log_len)
              && strlen(lane->log_when) == 26,
          "common lines: %.*s", (int)lane->log_len, log);

    lane->log_len = 0;
    lane->logged = 1;
    lane->log_format = RE_LOG_COMBINED;
    CHECK(re_answer(lane, in, sizeof in - 1) == 2 && re_log(lane, "::1", 3) == 1, "combined");
    length = snprintf(want, sizeof want,
                      "::1 - - [%s] %s \"http://r.test/\" \"say \\x22hi\\x22 \\x5C \\xE9\"\n"
                      "::1 - - [%s] %s \"-\" \"-\"\n",
                      lane->log_when, part, lane->log_when, part);
    CHECK(lane->log_len == (size_t)length && !memcmp(log, want, lane->log_len),
          "combined lines: %.*s", (int)lane->log_len, log);

    lane->log_cap = lane->log_len + 40;   /* room for part of one more line only */
    CHECK(re_answer(lane, in, sizeof in - 1) == 2 && re_log(lane, "::1", 3) == 0
              && lane->log_len == (size_t)length,
          "lines that do not fit are not written");
}

/* re_serve says when a read needs nothing more of its caller, and when its lines are the first
 * since the log was taken. */
static void test_serve_done(void)
{
    static const char in[] = GET("/a", ""), closing[] = GET("/a", "Connection: close\r\n"),
                      partly[] = GET("/a", "") "GET /a";
    static const struct {
        const char *name, *input;
        int log_format, may_send, done, logged;
    } steps[] = {
        {"no log: done", in, RE_LOG_NONE, 1, 1, 0},
        {"the first lines", in, RE_LOG_COMMON, 1, RE_FIRST_LINES, RE_FIRST_LINES},
        {"more lines", in, RE_LOG_COMMON, 1, 1, 1},
        {"asked to close: logged, not done", closing, RE_LOG_COMMON, 1, 0, 1},
        {"more to read than was answered: not done", partly, RE_LOG_COMMON, 1, 0, 1},
        {"not let send: neither", in, RE_LOG_COMMON, 0, 0, 0},
        {"logged elsewhere: not done", in, RE_LOG_ELSEWHERE, 1, 0, 0},
        {"done", in, RE_LOG_COMMON, 1, 1, 1},
    };
    static const size_t line = sizeof "h - - [] p\n" - 1 + 26;
    static char log[256];
    struct re_lane *lane = small_lane();
    char buf[512], back[64];
    size_t i, lines = 0;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair)) {
        perror("socketpair");
        exit(2);
    }
    fcntl(pair[0], F_SETFL, O_NONBLOCK);
    re_put(lane, "/a\x07", 3, "hello", 5, "p", 1);
    re_put(lane, "/a\x03", 3, "bye", 3, "q", 1);
    lane->log = log;
    lane->log_cap = sizeof log;
    for (i = 0; i < sizeof steps / sizeof *steps; i++) {
        size_t length = strlen(steps[i].input);
        lane->log_format = steps[i].log_format;
        CHECK(write(pair[1], steps[i].input, length) == (ssize_t)length, "write");
        CHECK(re_serve(lane, buf, sizeof buf, pair[0], steps[i].may_send, "h") > 0
                  && lane->results[RE_DONE] == steps[i].done
                  && lane->results[RE_LOGGED] == steps[i].logged,
              "%s: done %lld, logged %lld", steps[i].name, (long long)lane->results[RE_DONE],
              (long long)lane->results[RE_LOGGED]);
        lines += steps[i].logged != 0;
        while (recv(pair[1], back, sizeof back, MSG_DONTWAIT) > 0)
            ;
    }
    CHECK(!memcmp(log, "h - - [", 7) && lane->log_len == lines * line,
          "%zu lines: %.*s", lines, (int)lane->log_len, log);
    CHECK(re_answer(lane, in, sizeof in - 1) == 1 && lane->results[RE_DONE] == 0
              && lane->results[RE_LOGGED] == 0 && lane->results[RE_SENT] == 0,
          "an answer alone sends and logs nothing, whatever a serve before it did");
    close(pair[0]);
    close(pair[1]);
}

/* Connections answered as they are accepted: closed here when served whole, taken otherwise,
 * the first read that needs its caller at read_at and the reads stopped after it. */
static void test_accept_serve(void)
{
    static const char closing[] = GET("/a", "Connection: close\r\n"), keep[] = GET("/a", "");
    struct sockaddr_in where;
    int listener = tcp_listener(&where), clients[5], ports[5], fds[8], got_ports[8], i;
    char hosts[8 * RE_HOST_MAX], buf[512], back[64];
    struct re_accepted out = {fds, got_ports, 8, hosts, sizeof hosts, 0, 0, 0, 0, 0, 0};
    struct re_lane *lane = small_lane();
    long n;

    re_put(lane, "/a\x07", 3, "hello", 5, "", 0);
    re_put(lane, "/a\x03", 3, "bye", 3, "", 0);
    for (i = 0; i < 5; i++)
        clients[i] = tcp_client(&where, &ports[i]);
    CHECK(write(clients[0], closing, sizeof closing - 1) == (ssize_t)sizeof closing - 1, "0");
    shutdown(clients[2], SHUT_WR);   /* gone before a word */
    CHECK(write(clients[3], keep, sizeof keep - 1) == (ssize_t)sizeof keep - 1, "3");
    CHECK(write(clients[4], keep, sizeof keep - 1) == (ssize_t)sizeof keep - 1, "4");
    n = re_accept_serve(lane, buf, sizeof buf, listener, &out);
    CHECK(n == 3 && out.closed == 2 && out.answered == 1 && out.read_at == 1 && !out.error,
          "taken %ld, closed %zu, answered %zu, read at %ld", n, out.closed, out.answered,
          out.read_at);
    CHECK(got_ports[0] == ports[1] && got_ports[1] == ports[3] && got_ports[2] == ports[4]
              && out.hosts_len == 3 * sizeof "127.0.0.1"
              && !strcmp(hosts + 2 * sizeof "127.0.0.1", "127.0.0.1"),
          "the silent one, the one read, the one after it unread");
    CHECK(lane->results[RE_READ] == (int64_t)sizeof keep - 1 && lane->results[RE_SENT] == 5,
          "the read kept for the caller, its answer sent");
    CHECK(read(clients[0], back, sizeof back) == 3 && !memcmp(back, "bye", 3)
              && read(clients[0], back, sizeof back) == 0,
          "answered and closed");
    CHECK(read(clients[3], back, sizeof back) == 5 && !memcmp(back, "hello", 5), "answered");
    CHECK(recv(fds[2], back, sizeof back, 0) == (ssize_t)sizeof keep - 1, "left unread");
    for (i = 0; i < 3; i++)
        close(fds[i]);
    for (i = 0; i < 5; i++)
        close(clients[i]);
    CHECK(re_accept_serve(lane, buf, sizeof buf, listener, &out) == 0 && out.closed == 0
              && out.read_at == -1,
          "nothing waiting");
    close(listener);
}

#ifdef __linux__
#include <sys/epoll.h>

/* The loop's wait with kept connections served: done, handed back, left to the caller. */
static void test_poll(void)
{
    static const char keep[] = GET("/a", ""), miss[] = GET("/b", "");
    struct re_lane *lane = small_lane();
    struct epoll_event events[8];
    unsigned char kept[64] = {0};
    static char hosts[64 * RE_HOST_MAX];
    int done[8], ready[8], rest[8], pairs[4][2], i, epfd = epoll_create1(0);
    uint32_t masks[8];
    struct re_polled p = {epfd, kept, hosts, 64, events, 8, done, ready, 0, rest, masks, 0,
                          0, 0, 0};
    char buf[512], back[64];
    long n;

    re_put(lane, "/a\x07", 3, "hello", 5, "", 0);
    for (i = 0; i < 4; i++) {
        struct epoll_event ev = {.events = EPOLLIN};
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]) || pairs[i][0] >= 64) {
            perror("socketpair");
            exit(2);
        }
        fcntl(pairs[i][0], F_SETFL, O_NONBLOCK);
        ev.data.fd = pairs[i][0];
        epoll_ctl(epfd, EPOLL_CTL_ADD, pairs[i][0], &ev);
    }
    kept[pairs[0][0]] = kept[pairs[1][0]] = kept[pairs[3][0]] = 1;
    CHECK(re_poll(lane, buf, sizeof buf, &p, 0) == 0 && p.read_fd == -1 && !p.done_len,
          "nothing yet");
    CHECK(write(pairs[0][1], keep, sizeof keep - 1) == (ssize_t)sizeof keep - 1, "0");
    CHECK(write(pairs[2][1], keep, sizeof keep - 1) == (ssize_t)sizeof keep - 1, "2");
    n = re_poll(lane, buf, sizeof buf, &p, 0);
    CHECK(n == 2 && p.done_len == 1 && done[0] == pairs[0][0] && ready[0] == 1
              && p.rest_len == 1 && rest[0] == pairs[2][0] && masks[0] == EPOLLIN
              && p.read_fd == -1 && kept[pairs[0][0]],
          "kept and done; not kept: the caller's (%ld, %zu done, %zu rest)", n, p.done_len,
          p.rest_len);
    CHECK(read(pairs[0][1], back, sizeof back) == 5 && !memcmp(back, "hello", 5), "sent");
    CHECK(recv(pairs[2][0], back, sizeof back, 0) == (ssize_t)sizeof keep - 1, "left unread");
    CHECK(write(pairs[1][1], miss, sizeof miss - 1) == (ssize_t)sizeof miss - 1, "1");
    CHECK(write(pairs[3][1], keep, sizeof keep - 1) == (ssize_t)sizeof keep - 1, "3");
    n = re_poll(lane, buf, sizeof buf, &p, 0);
    CHECK(n == 2 && !p.done_len && p.read_fd == pairs[1][0]
              && p.read_len == (long)sizeof miss - 1 && lane->results[RE_READY] == 0
              && p.rest_len == 1 && rest[0] == pairs[3][0]
              && !kept[pairs[1][0]] && !kept[pairs[3][0]],
          "a miss handed back, the next left unread: both let go (%ld, read %d)", n,
          p.read_fd);
    for (i = 0; i < 4; i++) {
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
    close(epfd);
}
#endif

/* A key put with an empty message is its caller's: the answers stop there, and say so. */
static void test_refused_keys(void)
{
    static const char in[] = GET("/a", "") GET("/app", "") GET("/a", "");
    struct re_lane *lane = small_lane();

    CHECK(re_answer(lane, in, sizeof in - 1) == 0 && lane->results[RE_REFUSED] == 0,
          "an unknown key is not a refused one");
    CHECK(re_put(lane, "/app\x07", 5, "", 0, "", 0) == 0, "put refused");
    CHECK(re_answer(lane, in + sizeof GET("/a", "") - 1, sizeof in - sizeof GET("/a", ""))
              == 0 && lane->results[RE_REFUSED] == 1 && lane->results[RE_GATHERED] == 0,
          "a refused first key");
    CHECK(re_put(lane, "/a\x07", 3, "A!", 2, "", 0) == 0, "put");
    CHECK(re_answer(lane, in, sizeof in - 1) == 1 && lane->results[RE_REFUSED] == 1
              && lane->results[RE_END] == sizeof GET("/a", "") - 1
              && !memcmp(lane_answers, "A!", 2),
          "answered up to the refused key");
    re_clear(lane);
    CHECK(re_answer(lane, in, sizeof in - 1) == 0 && lane->results[RE_REFUSED] == 0,
          "cleared with the rest");
}

int main(void)
{
    test_accept_tcp();
    test_accept_unix_and_errors();
    test_answer_from_the_table();
    test_refused_keys();
    test_answer_limits_and_close();
    test_read_and_send();
    test_log_lines();
    test_serve_done();
    test_accept_serve();
#ifdef __linux__
    test_poll();
#endif
    printf("%d checks, %d failures\n", checks, failures);
    return failures != 0;
}
