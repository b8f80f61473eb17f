/*
 * What the example servers share: their options, the accept loop, running on one loop per thread, and
 * stopping on SIGTERM or SIGINT. An example gives its connection task and its name and calls
 * serve_main from main.
 *
 *   NAME [--host 127.0.0.1] [--port P] [--backend io_uring|epoll] [--threads N] [--min-wait-us U] [own options]
 *
 * With --threads N (default 1) the server runs N loops (weft_run_cores), each listening on the port
 * with SO_REUSEPORT so the kernel spreads the connections among them. It prints "ready on <backend>"
 * once every loop listens. Signals are read by loop 0: SIGTERM or SIGINT stops it and the others (with
 * weft_post); SIGUSR1 makes every loop print its live tasks on stderr (weft_tasks_dump).
 * --min-wait-us U sets weft_config.min_wait_ns (io_uring's batched wait; docs/batched-wait.md). An
 * example adds options of its own through struct serve's options and option (http_server's --root).
 */
#ifndef WEFT_EXAMPLE_SERVE_H
#define WEFT_EXAMPLE_SERVE_H

#include <weft.h>

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>

#define SERVE_MAX_LOOPS 256

struct serve {
    const char *name;        /* the program's name, for messages */
    const char *client_name; /* the connection tasks' name */
    weft_fn client;          /* serves one connection; its argument is the fd, which it closes */
    void (*stopped)(void);   /* on each loop as it stops, or NULL (echo_server prints its counters) */
    uint16_t default_port;
    /* The example's own long options (their val 256 and up, the array ending in a zeroed entry), NULL
     * for none; option(val, optarg) takes one and returns false for a bad value. */
    const struct option *options;
    bool (*option)(int val, const char *arg);
    const char *options_usage; /* their part of the usage line */
    /* Filled by serve_main. */
    const char *host;
    uint16_t port;
    unsigned threads;
    int sigfd;
    atomic_uint listening;
    weft_event *stop[SERVE_MAX_LOOPS];
};

static struct serve *serve_the;

/* Accepts connections and gives each its own task, until cancelled. */
static intptr_t serve_accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd == -ECANCELED)
            return 0;
        if (fd < 0) {
            fprintf(stderr, "%s: accept: %s\n", serve_the->name, weft_strerror(fd));
            weft_sleep(10 * 1000 * 1000); /* out of fds or memory: let connections close first */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* replies go out at once */
        weft_task *t = weft_spawn_named(serve_the->client_name, serve_the->client, (void *)(intptr_t)fd);
        if (t)
            weft_detach(t);
        else
            weft_close(fd);
    }
}

/* Posted by loop 0 to every other loop once a signal came. */
static intptr_t serve_stop_here(void *arg)
{
    (void)arg;
    weft_event_set(serve_the->stop[weft_loop_id()]);
    return 0;
}

/* Posted to every loop on SIGUSR1. */
static intptr_t serve_dump_here(void *arg)
{
    (void)arg;
    weft_tasks_dump(stderr);
    return 0;
}

/* Every loop's main. */
static intptr_t serve_loop(void *arg)
{
    struct serve *s = arg;
    unsigned id = weft_loop_id();
    s->stop[id] = weft_event_new();
    if (!s->stop[id])
        return -ENOMEM;
    int lfd = weft_tcp_listen(s->host, s->port, 0, s->threads > 1 ? WEFT_REUSEPORT : 0);
    if (lfd < 0) {
        fprintf(stderr, "%s: listen on %s:%u: %s\n", s->name, s->host, s->port, weft_strerror(lfd));
        return lfd;
    }
    weft_task *acceptor = weft_spawn_named("accept", serve_accept_loop, (void *)(intptr_t)lfd);
    if (!acceptor)
        return -errno;
    atomic_fetch_add(&s->listening, 1);
    if (id == 0) {
        while (atomic_load(&s->listening) < s->threads)
            weft_sleep(1000 * 1000);
        printf("ready on %s\n", weft_loop_backend(weft_loop_current()));
        fflush(stdout);
        /* Serve until SIGTERM or SIGINT: reading the signalfd parks this task like any other I/O. */
        struct signalfd_siginfo si;
        while (weft_read(s->sigfd, &si, sizeof si, -1) == (ssize_t)sizeof si && si.ssi_signo == SIGUSR1)
            for (unsigned i = 0; i < s->threads; i++)
                weft_post(i, serve_dump_here, NULL);
        for (unsigned i = 1; i < s->threads; i++)
            weft_post(i, serve_stop_here, NULL);
    } else {
        weft_event_wait(s->stop[id]);
    }
    if (s->stopped)
        s->stopped();
    weft_cancel(acceptor);
    weft_join(acceptor);
    weft_close(lfd);
    weft_event_free(s->stop[id]);
    return 0; /* the connection tasks still running are cancelled as the loop ends */
}

static int serve_main(struct serve *s, int argc, char **argv)
{
    serve_the = s;
    s->host = "127.0.0.1";
    s->port = s->default_port;
    s->threads = 1;
    weft_config cfg = WEFT_CONFIG_INIT;
    enum { COMMON = 5, EXTRA_MAX = 8 };
    struct option longopts[COMMON + EXTRA_MAX + 1] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"backend", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"min-wait-us", required_argument, NULL, 'w'},
    };
    for (int i = 0; s->options && s->options[i].name && i < EXTRA_MAX; i++)
        longopts[COMMON + i] = s->options[i];
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:b:t:w:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': s->host = optarg; break;
        case 'p': s->port = (uint16_t)atoi(optarg); break;
        case 'b': cfg.backend = optarg; break;
        case 't': s->threads = (unsigned)atoi(optarg); break;
        case 'w': cfg.min_wait_ns = strtoull(optarg, NULL, 10) * 1000; break;
        default:
            if (ch >= 256 && s->option && s->option(ch, optarg))
                break;
            fprintf(stderr, "usage: %s [--host H] [--port P] [--backend io_uring|epoll] [--threads N] [--min-wait-us U]%s%s\n",
                    s->name, s->options_usage ? " " : "", s->options_usage ? s->options_usage : "");
            return 2;
        }
    }
    if (s->threads < 1 || s->threads > SERVE_MAX_LOOPS) {
        fprintf(stderr, "%s: --threads takes 1 to %d\n", s->name, SERVE_MAX_LOOPS);
        return 2;
    }
    /* SIGTERM, SIGINT and SIGUSR1 become readable on a signalfd. Blocking them first, before weft starts any
     * thread, means every thread inherits the mask and no handler ever runs. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    s->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (s->sigfd < 0) {
        perror("signalfd");
        return 1;
    }
    int r = weft_run_cores(s->threads, serve_loop, s, &cfg);
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", s->name, weft_strerror(r));
        return 1;
    }
    return 0;
}

#endif /* WEFT_EXAMPLE_SERVE_H */
