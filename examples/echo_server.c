/*
 * echo_server — a TCP echo server on weft: one task per connection, written as blocking code.
 *
 *   echo_server [--host 127.0.0.1] [--port 7000] [--backend io_uring|epoll] [--threads N] [--handoff]
 *               [--min-wait-us U] [--trace FILE]
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

/* As each loop stops: its counters, one JSON line on stderr. */
static void print_stats(void)
{
    serve_print_stats("");
}

int main(int argc, char **argv)
{
    static struct serve s = {.name = "echo_server", .client_name = "client", .client = serve_client,
                             .stopped = print_stats, .default_port = 7000};
    return serve_main(&s, argc, argv);
}
