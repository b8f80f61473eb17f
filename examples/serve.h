/*
 * What the example servers share: their options, the accept loop, running on one loop per thread,
 * stopping on SIGTERM or SIGINT, and the line of counters they print as they stop. An example gives its
 * connection task and its name (and optionally options of its own and hooks) and calls serve_main from
 * main.
 *
 *   NAME [--host 127.0.0.1] [--port P] [--backend io_uring|epoll] [--threads N] [--handoff]
 *        [--min-wait-us U] [--trace FILE] [its own]
 *
 * With --threads N (default 1) the server runs N loops (weft_run_cores), each listening on the port
 * with SO_REUSEPORT so the kernel spreads the connections among them. With --handoff instead, loop 0
 * alone listens and hands each connection it accepts to the loop serving the fewest (weft_post: an fd
 * is the process's, so the receiving loop just uses it); docs/cores.md says when to choose which. It
 * prints "ready on <backend>" once every loop is ready. Signals are read by loop 0: SIGTERM or SIGINT
 * stops it and the others (with weft_post); SIGUSR1 makes every loop print its live tasks on stderr
 * (weft_tasks_dump), and SIGUSR2 write its trace now (weft_trace_flush) when it runs with --trace FILE
 * (weft_config.trace_path, as WEFT_TRACE: a timeline of the loop, written when it stops; docs/trace.md).
 * --min-wait-us U sets weft_config.min_wait_ns (io_uring's batched wait; docs/batched-wait.md). An
 * example adds options of its own through struct serve's options and option (http_server's --root,
 * kv_server's).
 */
#ifndef WEFT_EXAMPLE_SERVE_H
#define WEFT_EXAMPLE_SERVE_H

#include <weft.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
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
    /* Optional. options: long options of the example's own (ended by a zero entry, each with a value and
     * a val of 256 or more), handed to option(val, value), which returns 0 or says what is wrong on
     * stderr and returns -1; usage: their line for the usage message. prepare: after the options, before
     * any loop starts (0, or -errno to exit 1). started: on each loop once it listens, before it accepts
     * (0 or -errno); stopped is called only on a loop whose started succeeded. */
    const struct option *options;
    int (*option)(int val, const char *value);
    const char *usage;
    int (*prepare)(void);
    int (*started)(void);
    /* Filled by serve_main. */
    const char *host;
    uint16_t port;
    unsigned threads;
    bool handoff;
    int sigfd;
    atomic_uint listening;
    weft_event *stop[SERVE_MAX_LOOPS];
    atomic_uint serving[SERVE_MAX_LOOPS]; /* --handoff: connections each loop serves now */
    unsigned next;                        /* --handoff: where loop 0 starts looking, so ties rotate */
};

static struct serve *serve_the;

/* A connection handed to this loop: served here, and counted while it is. */
static intptr_t serve_handed(void *arg)
{
    intptr_t r = serve_the->client(arg);
    atomic_fetch_sub(&serve_the->serving[weft_loop_id()], 1);
    return r;
}

/*
 * --handoff: gives the connection fd to the loop serving the fewest now. Whatever happens after 0, the
 * posted task runs and closes fd (even if that loop is ending: weft_post's promise); on an error fd is
 * still the caller's.
 */
static int serve_hand_off(int fd)
{
    struct serve *s = serve_the;
    unsigned best = s->next % s->threads, least = UINT_MAX;
    for (unsigned k = 0; k < s->threads; k++) {
        unsigned i = (s->next + k) % s->threads;
        unsigned n = atomic_load(&s->serving[i]);
        if (n < least) {
            least = n;
            best = i;
        }
    }
    s->next = best + 1;
    atomic_fetch_add(&s->serving[best], 1);
    int r = weft_post(best, serve_handed, (void *)(intptr_t)fd);
    if (r < 0)
        atomic_fetch_sub(&s->serving[best], 1);
    return r;
}

/* Accepts connections and gives each its own task (on this loop, or with --handoff on the loop
 * serving the fewest), until cancelled. */
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
        if (serve_the->handoff) {
            if (serve_hand_off(fd) < 0)
                weft_close(fd);
            continue;
        }
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

/* Posted to every loop on SIGUSR2: a loop without a trace says so. */
static intptr_t serve_flush_here(void *arg)
{
    (void)arg;
    int r = weft_trace_flush();
    if (r < 0)
        fprintf(stderr, "%s: loop %u: trace: %s\n", serve_the->name, weft_loop_id(),
                r == -ENOENT ? "not tracing (start with --trace FILE)" : weft_strerror(r));
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
    /* Every loop listens, or with --handoff loop 0 alone, for all of them. The example's per-loop start
     * runs once its loop is ready to serve, so a loop that cannot listen has started nothing. */
    int lfd = -1;
    if (!s->handoff || id == 0) {
        lfd = weft_tcp_listen(s->host, s->port, 0, s->threads > 1 && !s->handoff ? WEFT_REUSEPORT : 0);
        if (lfd < 0) {
            fprintf(stderr, "%s: listen on %s:%u: %s\n", s->name, s->host, s->port, weft_strerror(lfd));
            return lfd;
        }
    }
    int r = s->started ? s->started() : 0;
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", s->name, weft_strerror(r));
        if (lfd >= 0)
            weft_close(lfd);
        return r;
    }
    weft_task *acceptor = NULL;
    if (lfd >= 0) {
        acceptor = weft_spawn_named("accept", serve_accept_loop, (void *)(intptr_t)lfd);
        if (!acceptor)
            return -errno;
    }
    atomic_fetch_add(&s->listening, 1);
    if (id == 0) {
        while (atomic_load(&s->listening) < s->threads)
            weft_sleep(1000 * 1000);
        printf("ready on %s\n", weft_loop_backend(weft_loop_current()));
        fflush(stdout);
        /* Serve until SIGTERM or SIGINT: reading the signalfd parks this task like any other I/O. */
        struct signalfd_siginfo si;
        while (weft_read(s->sigfd, &si, sizeof si, -1) == (ssize_t)sizeof si &&
               (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2))
            for (unsigned i = 0; i < s->threads; i++)
                weft_post(i, si.ssi_signo == SIGUSR1 ? serve_dump_here : serve_flush_here, NULL);
        for (unsigned i = 1; i < s->threads; i++)
            weft_post(i, serve_stop_here, NULL);
    } else {
        weft_event_wait(s->stop[id]);
    }
    if (s->stopped)
        s->stopped();
    if (acceptor) {
        weft_cancel(acceptor);
        weft_join(acceptor);
        weft_close(lfd);
    }
    weft_event_free(s->stop[id]);
    return 0; /* the connection tasks still running are cancelled as the loop ends */
}

/*
 * As each loop stops: its counters, one JSON line on stderr ("loop" only with --threads above 1), with
 * extra (the example's own fields, each starting with a comma, or "") before the closing brace.
 */
static inline void serve_print_stats(const char *extra)
{
    weft_stats st;
    weft_stats_get(&st);
    char loop[32] = "";
    if (weft_loop_count() > 1)
        snprintf(loop, sizeof loop, ",\"loop\":%u", weft_loop_id());
    fprintf(stderr,
            "{\"backend\":\"%s\",\"syscalls\":%llu,\"submissions\":%llu,\"completions\":%llu,"
            "\"switches\":%llu,\"tasks_spawned\":%llu,\"tasks_peak\":%llu,\"cq_overflows\":%llu,"
            "\"sq_full\":%llu,\"offloaded_ops\":%llu,\"batched_waits\":%llu,\"recv_arms\":%llu,"
            "\"recv_lends\":%llu%s%s}\n",
            weft_loop_backend(weft_loop_current()), (unsigned long long)st.syscalls,
            (unsigned long long)st.submissions, (unsigned long long)st.completions,
            (unsigned long long)st.switches, (unsigned long long)st.tasks_spawned,
            (unsigned long long)st.tasks_peak, (unsigned long long)st.cq_overflows,
            (unsigned long long)st.sq_full, (unsigned long long)st.offloaded_ops,
            (unsigned long long)st.batched_waits, (unsigned long long)st.recv_arms,
            (unsigned long long)st.recv_lends, extra, loop);
}

static int serve_main(struct serve *s, int argc, char **argv)
{
    serve_the = s;
    s->host = "127.0.0.1";
    s->port = s->default_port;
    s->threads = 1;
    weft_config cfg = WEFT_CONFIG_INIT;
    struct option longopts[32] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"backend", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"min-wait-us", required_argument, NULL, 'w'},
        {"trace", required_argument, NULL, 'T'},
        {"handoff", no_argument, NULL, 'o'},
    };
    size_t n = 7;
    for (const struct option *o = s->options; o && o->name && n + 1 < sizeof longopts / sizeof longopts[0]; o++)
        longopts[n++] = *o;
    int ch;
    while ((ch = getopt_long(argc, argv, "h:p:b:t:w:T:o", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h': s->host = optarg; break;
        case 'p': s->port = (uint16_t)atoi(optarg); break;
        case 'b': cfg.backend = optarg; break;
        case 't': s->threads = (unsigned)atoi(optarg); break;
        case 'w': cfg.min_wait_ns = strtoull(optarg, NULL, 10) * 1000; break;
        case 'T': cfg.trace_path = optarg; break;
        case 'o': s->handoff = true; break;
        default:
            if (ch >= 256 && s->option) {
                if (s->option(ch, optarg) < 0)
                    return 2;
                break;
            }
            fprintf(stderr, "usage: %s [--host H] [--port P] [--backend io_uring|epoll] [--threads N] [--handoff] "
                            "[--min-wait-us U] [--trace FILE]%s%s\n",
                    s->name, s->usage ? " " : "", s->usage ? s->usage : "");
            return 2;
        }
    }
    if (s->threads < 1 || s->threads > SERVE_MAX_LOOPS) {
        fprintf(stderr, "%s: --threads takes 1 to %d\n", s->name, SERVE_MAX_LOOPS);
        return 2;
    }
    /* SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 become readable on a signalfd. Blocking them first, before weft starts any
     * thread, means every thread inherits the mask and no handler ever runs. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    s->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (s->sigfd < 0) {
        perror("signalfd");
        return 1;
    }
    if (s->prepare && s->prepare() < 0)
        return 1;
    int r = weft_run_cores(s->threads, serve_loop, s, &cfg);
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", s->name, weft_strerror(r));
        return 1;
    }
    return 0;
}

#endif /* WEFT_EXAMPLE_SERVE_H */
