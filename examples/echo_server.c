/*
 * echo_server — a TCP echo server on weft: one task per connection, written as blocking code.
 *
 *   echo_server [--host 127.0.0.1] [--port 7000] [--backend io_uring|epoll]
 *
 * The same code runs on io_uring (each recv and send is one request to the kernel) or on epoll (each is
 * a non-blocking call, parked on readiness when the kernel says EAGAIN). It prints "ready on <backend>"
 * once it listens. SIGTERM or SIGINT stops it; it then prints the loop's counters as one JSON line on stderr.
 */
#include <weft.h>

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>

struct options {
    const char *host;
    uint16_t port;
    int sigfd;
    weft_loop *loop;
};

/* One connection: echo until the client closes. */
static intptr_t serve_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16 * 1024];
    ssize_t n;
    while ((n = weft_recv(fd, buf, sizeof buf, 0)) > 0)
        if (weft_send_all(fd, buf, (size_t)n) != n)
            break;
    weft_close(fd);
    return 0; /* a client that resets is not the server's failure */
}

/* Accepts connections and gives each its own task, until cancelled. */
static intptr_t accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -ECANCELED)
            return 0;
        if (fd < 0) {
            fprintf(stderr, "echo_server: accept: %s\n", weft_strerror(fd));
            weft_sleep(10 * 1000 * 1000); /* out of fds or memory: let connections close first */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* replies go out at once */
        weft_task *t = weft_spawn_named("client", serve_client, (void *)(intptr_t)fd);
        if (t)
            weft_detach(t);
        else
            weft_close(fd);
    }
}

static intptr_t server(void *arg)
{
    struct options *o = arg;
    int lfd = weft_tcp_listen(o->host, o->port, 0, 0);
    if (lfd < 0) {
        fprintf(stderr, "echo_server: listen on %s:%u: %s\n", o->host, o->port, weft_strerror(lfd));
        return lfd;
    }
    weft_task *acceptor = weft_spawn_named("accept", accept_loop, (void *)(intptr_t)lfd);
    if (!acceptor)
        return -errno;
    printf("ready on %s\n", weft_loop_backend(o->loop));
    fflush(stdout);

    /* Serve until a signal arrives: reading the signalfd parks this task like any other I/O. */
    struct signalfd_siginfo si;
    weft_read(o->sigfd, &si, sizeof si, -1);

    weft_stats st;
    weft_stats_get(&st);
    fprintf(stderr,
            "{\"backend\":\"%s\",\"syscalls\":%llu,\"submissions\":%llu,\"completions\":%llu,"
            "\"switches\":%llu,\"tasks_spawned\":%llu,\"tasks_peak\":%llu,\"cq_overflows\":%llu,"
            "\"sq_full\":%llu,\"offloaded_ops\":%llu}\n",
            weft_loop_backend(o->loop), (unsigned long long)st.syscalls,
            (unsigned long long)st.submissions, (unsigned long long)st.completions,
            (unsigned long long)st.switches, (unsigned long long)st.tasks_spawned,
            (unsigned long long)st.tasks_peak, (unsigned long long)st.cq_overflows,
            (unsigned long long)st.sq_full, (unsigned long long)st.offloaded_ops);

    weft_cancel(acceptor);
    weft_join(acceptor);
    weft_close(lfd);
    return 0; /* the client tasks still running are cancelled as the loop ends */
}

int main(int argc, char **argv)
{
    struct options o = {.host = "127.0.0.1", .port = 7000};
    weft_config cfg = WEFT_CONFIG_INIT;
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"backend", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:b:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': o.host = optarg; break;
        case 'p': o.port = (uint16_t)atoi(optarg); break;
        case 'b': cfg.backend = optarg; break;
        default:
            fprintf(stderr, "usage: echo_server [--host H] [--port P] [--backend io_uring|epoll]\n");
            return 2;
        }
    }

    /* SIGTERM and SIGINT become readable on a signalfd. Blocking them first, before weft starts any
     * thread, means every thread inherits the mask and no handler ever runs. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    o.sigfd = signalfd(-1, &mask, SFD_CLOEXEC);

    o.loop = weft_loop_new(&cfg);
    if (!o.loop) {
        perror("echo_server: weft_loop_new");
        return 1;
    }
    intptr_t result = 0;
    int r = weft_loop_run(o.loop, server, &o, &result);
    weft_loop_free(o.loop);
    if (r < 0 || result < 0) {
        fprintf(stderr, "echo_server: %s\n", weft_strerror(r < 0 ? r : (int)result));
        return 1;
    }
    return 0;
}
