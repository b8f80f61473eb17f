/*
 * echo_server — a TCP echo server on weft: one task per connection, written as blocking code.
 *
 *   echo_server [--host 127.0.0.1] [--port 7000] [--backend io_uring|epoll] [--threads N] [--handoff]
 *               [--min-wait-us U]
 *
 * The same code runs on io_uring (each recv and send is one request to the kernel) or on epoll (each is
 * a non-blocking call, parked on readiness when the kernel says EAGAIN). It prints "ready on <backend>"
 * once it listens. SIGTERM or SIGINT stops it; it then prints each loop's counters as one JSON line on
 * stderr. --threads N runs N loops, one per CPU, sharing the port; with --handoff loop 0 alone accepts
 * and hands each connection to the loop serving the fewest (examples/serve.h).
 */
#include "serve.h"

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

/* As each loop stops: its counters, one JSON line on stderr ("loop" only with --threads above 1). */
static void print_stats(void)
{
    weft_stats st;
    weft_stats_get(&st);
    char loop[32] = "";
    if (weft_loop_count() > 1)
        snprintf(loop, sizeof loop, ",\"loop\":%u", weft_loop_id());
    fprintf(stderr,
            "{\"backend\":\"%s\",\"syscalls\":%llu,\"submissions\":%llu,\"completions\":%llu,"
            "\"switches\":%llu,\"tasks_spawned\":%llu,\"tasks_peak\":%llu,\"cq_overflows\":%llu,"
            "\"sq_full\":%llu,\"offloaded_ops\":%llu,\"batched_waits\":%llu%s}\n",
            weft_loop_backend(weft_loop_current()), (unsigned long long)st.syscalls,
            (unsigned long long)st.submissions, (unsigned long long)st.completions,
            (unsigned long long)st.switches, (unsigned long long)st.tasks_spawned,
            (unsigned long long)st.tasks_peak, (unsigned long long)st.cq_overflows,
            (unsigned long long)st.sq_full, (unsigned long long)st.offloaded_ops,
            (unsigned long long)st.batched_waits, loop);
}

int main(int argc, char **argv)
{
    static struct serve s = {.name = "echo_server", .client_name = "client", .client = serve_client,
                             .stopped = print_stats, .default_port = 7000};
    return serve_main(&s, argc, argv);
}
