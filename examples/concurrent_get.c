/*
 * concurrent_get — N HTTP GETs at once, then the same N one after another, with both times: the
 * seeds' asyncio + aiohttp against requests comparison ("ten requests take as long as the slowest,
 * not as long as all of them together"), in C.
 *
 *   concurrent_get [-n N] [--host H --port P] [--path /] [--backend io_uring|epoll]
 *
 * Without --port it starts the repository's http_server (the one built beside it, or --server PATH)
 * on a free loopback port, waits for its "ready" line and stops it with SIGTERM at the end. Each GET
 * is a task: connect, send the request with "Connection: close", read to the end of the stream, check
 * the status line. Prints one line for each way of running them:
 *
 *   concurrent: 10 GETs, 10 ok (status 200, 13 body bytes), 1.84 ms
 *   sequential: 10 GETs, 10 ok (status 200, 13 body bytes), 6.10 ms
 *
 * The gap grows with the server's latency: against a server across a network, sequential costs the
 * sum of the round trips and concurrent about the longest one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "example.h"

#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#define RESPONSE_MAX 65536

static struct options {
    unsigned n;
    const char *host;
    unsigned port;
    const char *path;
    const char *server;
} opt = {.n = 10, .host = "127.0.0.1", .path = "/"};

/* One GET: its status code (or a negative errno) and the size of its body. */
struct get {
    int status;
    size_t body;
};

/* Connects, asks for opt.path, reads the whole response, parses its status line and finds its body. */
static intptr_t get_task(void *arg)
{
    struct get *g = arg;
    g->status = 0;
    int fd = weft_tcp_connect(opt.host, (uint16_t)opt.port);
    if (fd < 0)
        return g->status = fd;
    char request[512];
    int len = snprintf(request, sizeof request,
                       "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: weft-concurrent_get\r\nConnection: close\r\n\r\n",
                       opt.path, opt.host);
    char *response = malloc(RESPONSE_MAX);
    ssize_t got = response ? weft_send_all(fd, request, (size_t)len) : -ENOMEM;
    size_t used = 0;
    while (got > 0 && used < RESPONSE_MAX) {
        got = weft_recv(fd, response + used, RESPONSE_MAX - used, 0);
        if (got > 0)
            used += (size_t)got;
    }
    weft_close(fd);
    if (got < 0) {
        free(response);
        return g->status = (int)got;
    }
    int status = 0;
    const char *head_end = memmem(response, used, "\r\n\r\n", 4);
    if (used > 12 && memcmp(response, "HTTP/1.", 7) == 0 && head_end) {
        status = atoi(response + 9);
        g->body = used - (size_t)(head_end + 4 - response);
    }
    free(response);
    return g->status = status > 0 ? status : -EPROTO;
}

/* Prints how the n GETs went: how many got 2xx, the status and body size they had (of the first). */
static void report(const char *how, const struct get *gets, unsigned n, uint64_t ns)
{
    unsigned ok = 0;
    const struct get *first_ok = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (gets[i].status >= 200 && gets[i].status < 300) {
            ok++;
            if (!first_ok)
                first_ok = &gets[i];
        } else {
            fprintf(stderr, "concurrent_get: %s GET %u: %s\n", how, i,
                    gets[i].status < 0 ? weft_strerror(gets[i].status) : "not a 2xx status");
        }
    }
    printf("%s: %u GETs, %u ok", how, n, ok);
    if (first_ok)
        printf(" (status %d, %zu body bytes)", first_ok->status, first_ok->body);
    printf(", %.2f ms\n", (double)ns / 1e6);
    fflush(stdout);
}

/* Starts http_server on a free port and waits until it says it is ready. */
static int server_start(weft_process *p, const char *backend)
{
    int probe = weft_tcp_listen("127.0.0.1", 0, 1, 0);
    if (probe < 0)
        return probe;
    opt.port = (unsigned)weft_socket_port(probe);
    weft_close(probe);
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%u", opt.port);
    char *argv[] = {(char *)opt.server, "--host", "127.0.0.1", "--port", port_s,
                    backend ? "--backend" : NULL, (char *)backend, NULL};
    int r = weft_process_spawn(p, opt.server, argv, NULL, WEFT_PROCESS_STDOUT);
    if (r < 0) {
        fprintf(stderr, "concurrent_get: cannot start %s: %s\n", opt.server, weft_strerror(r));
        return r;
    }
    char line[128];
    size_t used = 0;
    while (!memchr(line, '\n', used)) {
        ssize_t n = used < sizeof line ? weft_read(p->stdout_fd, line + used, sizeof line - used, -1) : 0;
        if (n <= 0) {
            fprintf(stderr, "concurrent_get: %s ended before saying it was ready\n", opt.server);
            weft_process_close(p);
            return n < 0 ? (int)n : -ECHILD;
        }
        used += (size_t)n;
    }
    return 0;
}

static const char *backend_opt;

static intptr_t main_task(void *arg)
{
    (void)arg;
    weft_process server;
    bool own_server = opt.port == 0;
    if (own_server) {
        int r = server_start(&server, backend_opt);
        if (r < 0)
            return r;
    }
    struct get *gets = calloc(opt.n, sizeof *gets);
    weft_task **tasks = calloc(opt.n, sizeof *tasks);
    if (!gets || !tasks)
        return -ENOMEM;

    /* All at once: n tasks, each parked in its own I/O while the others' requests are in flight. */
    uint64_t start = weft_now();
    for (unsigned i = 0; i < opt.n; i++)
        if (!(tasks[i] = weft_spawn_named("get", get_task, &gets[i])))
            return -errno;
    weft_join_all(tasks, opt.n, NULL);
    report("concurrent", gets, opt.n, weft_now() - start);

    /* One after another: each request waits for the one before it. */
    memset(gets, 0, opt.n * sizeof *gets);
    start = weft_now();
    for (unsigned i = 0; i < opt.n; i++)
        get_task(&gets[i]);
    report("sequential", gets, opt.n, weft_now() - start);

    bool all_ok = true;
    for (unsigned i = 0; i < opt.n; i++)
        all_ok &= gets[i].status >= 200 && gets[i].status < 300;
    free(gets);
    free(tasks);
    if (own_server) {
        weft_process_kill(&server, SIGTERM);
        int status = weft_process_wait(&server);
        weft_process_close(&server);
        if (!(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0))
            fprintf(stderr, "concurrent_get: %s did not exit cleanly (status %d)\n", opt.server, status);
    }
    return all_ok ? 0 : -EPROTO;
}

int main(int argc, char **argv)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'h'}, {"port", required_argument, NULL, 'p'},
        {"path", required_argument, NULL, 'P'}, {"server", required_argument, NULL, 's'},
        {"backend", required_argument, NULL, 'b'}, {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "n:h:p:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n': opt.n = (unsigned)example_number("concurrent_get", "-n", optarg, 1); break;
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = (unsigned)example_number("concurrent_get", "--port", optarg, 1); break;
        case 'P': opt.path = optarg; break;
        case 's': opt.server = optarg; break;
        case 'b': cfg.backend = backend_opt = optarg; break;
        default:
            fprintf(stderr, "usage: concurrent_get [-n N] [--host H --port P | --server PATH] [--path /] "
                            "[--backend io_uring|epoll]\n");
            return 2;
        }
    }
    if (opt.port > 65535 || opt.n > 100000) {
        fprintf(stderr, "concurrent_get: --port takes 1 to 65535, -n at most 100000\n");
        return 2;
    }
    static char beside[PATH_MAX];
    if (!opt.server) {
        /* The http_server built beside this program. */
        char self[PATH_MAX];
        snprintf(self, sizeof self, "%s", argv[0]);
        snprintf(beside, sizeof beside, "%s/http_server", dirname(self));
        opt.server = beside;
    }
    signal(SIGPIPE, SIG_IGN);
    return example_run("concurrent_get", &cfg, main_task, NULL);
}
