/*
 * echo_epoll — the plain epoll echo server weft's epoll backend is measured against: what a careful
 * engineer writes without a runtime. One thread, non-blocking sockets, one edge-triggered registration
 * per connection (EPOLLIN|EPOLLOUT|EPOLLRDHUP, never modified), accept4 until EAGAIN.
 *
 * On input it reads and writes back at once. A read shorter than the buffer has emptied the socket, and
 * with edge triggering any data arriving after it raises a new edge, so it stops there instead of
 * paying one more read for EAGAIN (--read-until-eagain restores the textbook loop, for comparison).
 * A write the socket cannot take whole leaves the rest in a per-connection buffer; the connection then
 * stops reading (backpressure) until EPOLLOUT lets the buffer drain, and resumes the input it left.
 *
 *   echo_epoll --port P [--host H] [--read-until-eagain]
 *
 * Prints "ready" on stdout once listening; stops on SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define MAX_EVENTS 512

typedef struct conn {
    char *pend;        /* bytes read but not yet written back */
    uint32_t len, cap;
    bool input_left;   /* stopped reading with input possibly left in the socket */
} conn;

static conn *conns; /* indexed by fd */
static size_t nconns;
static int epfd;
static bool until_eagain;
static char buf[BUF_SIZE];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void conn_close(int fd)
{
    conn *c = &conns[fd];
    free(c->pend);
    memset(c, 0, sizeof *c);
    close(fd); /* also removes it from the epoll set */
}

/* Writes back what is pending. true: everything went; false: the socket is full (or was closed). */
static bool flush_pending(int fd, conn *c)
{
    while (c->len) {
        ssize_t w = write(fd, c->pend, c->len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                conn_close(fd);
            return false;
        }
        memmove(c->pend, c->pend + w, c->len - (size_t)w);
        c->len -= (uint32_t)w;
    }
    return true;
}

static bool keep_pending(conn *c, const char *p, size_t n)
{
    if (c->len + n > c->cap) {
        uint32_t cap = c->cap ? c->cap : BUF_SIZE;
        while (cap < c->len + n)
            cap *= 2;
        char *grown = realloc(c->pend, cap);
        if (!grown)
            return false;
        c->pend = grown;
        c->cap = cap;
    }
    memcpy(c->pend + c->len, p, n);
    c->len += (uint32_t)n;
    return true;
}

/* Reads and echoes until the socket is empty or full. */
static void echo(int fd, conn *c)
{
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && errno == EAGAIN)
                return;
            conn_close(fd); /* end of stream or error */
            return;
        }
        ssize_t w = write(fd, buf, (size_t)r);
        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(fd);
                return;
            }
            w = 0;
        }
        if (w < r) {
            if (!keep_pending(c, buf + w, (size_t)(r - w))) {
                conn_close(fd);
                return;
            }
            c->input_left = true; /* resume reading once the output has drained */
            return;
        }
        if (!until_eagain && r < (ssize_t)sizeof buf)
            return; /* the socket is empty: new data brings a new edge */
    }
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                perror("accept4");
            return;
        }
        if ((size_t)fd >= nconns) {
            size_t n = nconns ? nconns : 1024;
            while (n <= (size_t)fd)
                n *= 2;
            conn *grown = realloc(conns, n * sizeof *grown);
            if (!grown) {
                close(fd);
                continue;
            }
            memset(grown + nconns, 0, (n - nconns) * sizeof *grown);
            conns = grown;
            nconns = n;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.fd = fd};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("epoll_ctl");
            close(fd);
        }
    }
}

static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res;
    int r = getaddrinfo(host, port, &hints, &res);
    if (r != 0) {
        fprintf(stderr, "echo_epoll: %s:%s: %s\n", host ? host : "*", port, gai_strerror(r));
        exit(1);
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0)
        die("bind");
    if (listen(fd, 65535) < 0)
        die("listen");
    freeaddrinfo(res);
    return fd;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = NULL;
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"read-until-eagain", no_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H': host = optarg; break;
        case 'p': port = optarg; break;
        case 'e': until_eagain = true; break;
        default:
            fprintf(stderr, "usage: echo_epoll --port P [--host H] [--read-until-eagain]\n");
            return 2;
        }
    }
    if (!port) {
        fprintf(stderr, "usage: echo_epoll --port P [--host H] [--read-until-eagain]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int lfd = listen_on(host, port);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN | EPOLLET, .data.fd = lfd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev) < 0)
        die("epoll_ctl");
    puts("ready");
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            uint32_t ev = events[i].events;
            if (fd == lfd) {
                accept_all(lfd);
                continue;
            }
            conn *c = &conns[fd];
            if (ev & EPOLLOUT && c->len) {
                if (!flush_pending(fd, c))
                    continue;
                if (c->input_left) {
                    c->input_left = false;
                    echo(fd, c);
                    continue;
                }
            }
            if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                if (c->len)
                    c->input_left = true; /* output still blocked: read once it drains */
                else
                    echo(fd, c);
            }
        }
    }
}
