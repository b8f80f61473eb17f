/*
 * The example servers as users run them: examples/echo_server and examples/http_server started as
 * their own processes with --host 127.0.0.1 --port P --backend B, spoken to over loopback, stopped with
 * SIGTERM or SIGINT (which they read through a signalfd, parked like any other I/O).
 *
 * The backend is the one under test (WEFT_BACKEND, passed as --backend: tests/server.h); the echo
 * server's stats line says which backend ran.
 *
 * The test process is an ordinary client: plain sockets, no weft. Every wait is bounded (poll with a
 * timeout, SO_RCVTIMEO/SO_SNDTIMEO), so a hung server fails a test instead of hanging the run.
 *
 * http_server --root DIR serves a fresh directory per test: files byte exact through weft_sendfile
 * (several of its chunks, ranges straddling them), HEAD, index.html, If-Modified-Since and 304, byte
 * ranges and 416, 404 and 405, and every spelling of a path out of the directory refused (a file
 * beside it must never come out).
 *
 * The seeds' programs (concurrent_get, file_copy, offload, pipeline) and group_commit run to their end
 * with --backend B (run_program in common.h), and what they print is checked for values: every GET
 * answered, the copy identical, the inline hash reported as blocking the loop with late ticks where the
 * offloaded one lets the ticker run, the same checksum whatever the pipeline's concurrency, every record
 * of the log durable and intact in fewer syncs than records. No timing is asserted.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strptime, timegm, sigabbrev_np */
#endif
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "server.h"

TestSuite(echo, .timeout = 60);
TestSuite(http, .timeout = 60);

/* ---- echo_server --------------------------------------------------------------------------------- */

struct echo_client {
    int fd;
    unsigned char *data;
    size_t len, sent, got;
    bool done;
};

/*
 * Echoes one message a connection through n concurrent connections, sizes[i] bytes on the i-th: each
 * sends its message while reading the echo (a message larger than the socket buffers deadlocks
 * otherwise), half-closes once sent, and must read back exactly its bytes, then end of stream.
 */
static void echo_exchange(uint16_t port, const size_t *sizes, size_t n)
{
    struct echo_client *clients = calloc(n, sizeof *clients);
    struct pollfd *pfds = calloc(n, sizeof *pfds);
    unsigned char *buf = malloc(64 * 1024);
    cr_assert(clients && pfds && buf);
    for (size_t i = 0; i < n; i++) {
        struct echo_client *c = &clients[i];
        c->fd = client_connect(port);
        set_nonblocking(c->fd);
        c->len = sizes[i];
        c->data = malloc(c->len + 1);
        cr_assert(c->data != NULL);
        fill_pattern(c->data, c->len, (uint32_t)i + 1);
        if (c->len == 0)
            cr_assert(shutdown(c->fd, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
    }
    size_t left = n;
    while (left) {
        for (size_t i = 0; i < n; i++) {
            pfds[i].fd = clients[i].done ? -1 : clients[i].fd;
            pfds[i].events = (short)(POLLIN | (clients[i].sent < clients[i].len ? POLLOUT : 0));
            pfds[i].revents = 0;
        }
        int ready = poll(pfds, n, IO_TIMEOUT_MS);
        if (ready < 0 && errno == EINTR)
            continue;
        cr_assert(ready > 0, "echo: no progress within %d ms (%zu of %zu connections unfinished)", IO_TIMEOUT_MS,
                  left, n);
        for (size_t i = 0; i < n; i++) {
            struct echo_client *c = &clients[i];
            if ((pfds[i].revents & POLLOUT) && c->sent < c->len) {
                size_t chunk = c->len - c->sent < 65536 ? c->len - c->sent : 65536;
                ssize_t k = send(c->fd, c->data + c->sent, chunk, MSG_NOSIGNAL);
                cr_assert(k > 0 || errno == EAGAIN, "client %zu: send after %zu of %zu bytes: %s", i, c->sent,
                          c->len, strerror(errno));
                if (k > 0 && (c->sent += (size_t)k) == c->len)
                    cr_assert(shutdown(c->fd, SHUT_WR) == 0, "shutdown: %s", strerror(errno));
            }
            if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t k = recv(c->fd, buf, 64 * 1024, 0);
            if (k < 0) {
                cr_assert(errno == EAGAIN, "client %zu: recv after %zu of %zu bytes: %s", i, c->got, c->len,
                          strerror(errno));
                continue;
            }
            if (k == 0) {
                cr_assert(c->got == c->len, "client %zu: end of stream after %zu of %zu bytes echoed", i, c->got,
                          c->len);
                c->done = true;
                left--;
                close(c->fd);
                continue;
            }
            cr_assert(c->got + (size_t)k <= c->len, "client %zu: %zu bytes echoed, only %zu sent", i,
                      c->got + (size_t)k, c->len);
            if (memcmp(buf, c->data + c->got, (size_t)k) != 0) {
                size_t at = 0;
                while (buf[at] == c->data[c->got + at])
                    at++;
                cr_assert_fail("client %zu: echoed byte %zu of %zu is 0x%02x, sent 0x%02x", i, c->got + at, c->len,
                               buf[at], c->data[c->got + at]);
            }
            c->got += (size_t)k;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(clients[i].data);
    free(clients);
    free(pfds);
    free(buf);
}

/*
 * Asserts the server's stderr is exactly the stats line echo_server prints as it stops, that it names
 * the backend under test, and that it counts at least clients + 1 tasks spawned (the acceptor and one a
 * client).
 */
static void expect_stats_line(const struct server *s, unsigned long long clients)
{
    const char *nl = memchr(s->err, '\n', s->err_len);
    cr_assert(nl && nl == s->err + s->err_len - 1, "stderr should be exactly one line, the stats; it is:\n%s",
              s->err);
    char backend[16];
    unsigned long long syscalls, submissions, completions, switches, spawned, peak, overflows, sq_full, offloaded,
        batched, arms, lends;
    int end = -1;
    int fields = sscanf(s->err,
                        "{\"backend\":\"%15[^\"]\",\"syscalls\":%llu,\"submissions\":%llu,\"completions\":%llu,"
                        "\"switches\":%llu,\"tasks_spawned\":%llu,\"tasks_peak\":%llu,\"cq_overflows\":%llu,"
                        "\"sq_full\":%llu,\"offloaded_ops\":%llu,\"batched_waits\":%llu,\"recv_arms\":%llu,"
                        "\"recv_lends\":%llu}%n",
                        backend, &syscalls, &submissions, &completions, &switches, &spawned, &peak, &overflows,
                        &sq_full, &offloaded, &batched, &arms, &lends, &end);
    cr_assert(fields == 13 && s->err + end == nl, "not the stats line (%d fields matched): %s", fields, s->err);
    EQ(batched, 0); /* no --min-wait-us: the plain wait */
    /* Each connection read on io_uring arms its receive stream (the clients are weft's accepted sockets). */
    if (strcmp(backend, "io_uring") == 0)
        cr_assert(arms >= clients, "%llu receive streams armed for %llu clients: %s", arms, clients, s->err);
    else
        EQ(arms + lends, 0);
    const char *want = backend_under_test();
    if (want)
        cr_assert(strcmp(backend, want) == 0, "stats name backend \"%s\", want \"%s\" (--backend %s)", backend,
                  want, want);
    else
        cr_assert(strcmp(backend, "io_uring") == 0 || strcmp(backend, "epoll") == 0, "backend \"%s\"", backend);
    cr_assert(spawned >= clients + 1, "stats count %llu tasks spawned, want at least %llu: %s", spawned,
              clients + 1, s->err);
    cr_assert(switches > 0 && peak > 0, "no switches or tasks counted: %s", s->err);
}

Test(echo, says_ready_echoes_8_concurrent_clients_byte_exact_and_exits_0_with_stats_on_sigterm)
{
    struct server s;
    server_start(&s, WEFT_ECHO_SERVER);
    /* 1 MiB and more: larger than any one socket buffer; the odd sizes end off any chunk boundary. */
    const size_t sizes[] = {1, 100, 16384, 16385, 200000, 1 << 20, (1 << 20) + 7, 3 << 20};
    echo_exchange(s.port, sizes, sizeof sizes / sizeof sizes[0]);
    server_stop(&s, SIGTERM);
    expect_stats_line(&s, 8);
}

Test(echo, sigterm_right_after_ready_exits_0_with_stats)
{
    struct server s;
    server_start(&s, WEFT_ECHO_SERVER);
    server_stop(&s, SIGTERM);
    expect_stats_line(&s, 0);
}

Test(echo, sigint_with_a_client_connected_exits_0_with_stats_and_ends_the_client_stream)
{
    struct server s;
    server_start(&s, WEFT_ECHO_SERVER);
    int fd = client_connect(s.port);
    send_all(fd, "hello", 5);
    char got[8] = {0};
    ssize_t n = recv(fd, got, 5, MSG_WAITALL);
    cr_assert(n == 5 && memcmp(got, "hello", 5) == 0, "echo of \"hello\": got %zd bytes \"%.*s\"", n,
              n > 0 ? (int)n : 0, got);
    server_stop(&s, SIGINT);
    expect_stats_line(&s, 1);
    n = recv(fd, got, sizeof got, 0);
    cr_assert(n == 0, "the client's connection after the server stopped: got %zd (%s), want end of stream", n,
              n < 0 ? strerror(errno) : "bytes");
    close(fd);
}

Test(echo, clients_that_reset_their_connection_do_not_stop_it_serving_the_next)
{
    struct server s;
    server_start(&s, WEFT_ECHO_SERVER);

    /* Reset at once, many times over: some before the server has even accepted. */
    for (int i = 0; i < 50; i++)
        reset_close(client_connect(s.port));

    /* Reset with the echo unread. */
    unsigned char msg[4096];
    fill_pattern(msg, sizeof msg, 99);
    int fd = client_connect(s.port);
    send_all(fd, msg, sizeof msg);
    reset_close(fd);

    /* Reset while the server is blocked sending: this client never reads, so the echo fills its receive
     * buffer, the server's send parks, the server stops reading, and our send stalls. */
    fd = client_connect(s.port);
    set_nonblocking(fd);
    size_t pushed = 0;
    unsigned char *chunk = calloc(1, 65536);
    cr_assert(chunk != NULL);
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        if (poll(&pf, 1, 200) == 0)
            break; /* stalled: the server is parked in its send */
        ssize_t k = send(fd, chunk, 65536, MSG_NOSIGNAL);
        cr_assert(k > 0 || errno == EAGAIN, "send: %s", strerror(errno));
        if (k > 0 && (pushed += (size_t)k) > (64u << 20))
            cr_assert_fail("sent 64 MiB to a client that reads nothing and the server never stalled");
    }
    free(chunk);
    reset_close(fd);

    /* Reset after reading part of the echo. */
    fd = client_connect(s.port);
    send_all(fd, msg, sizeof msg);
    ssize_t n = recv(fd, msg, 10, MSG_WAITALL);
    cr_assert(n == 10, "recv: got %zd (%s)", n, n < 0 ? strerror(errno) : "short");
    reset_close(fd);

    const size_t sizes[] = {1 << 20, 1000, 1};
    echo_exchange(s.port, sizes, sizeof sizes / sizeof sizes[0]);
    /* A reset client is not the server's failure: nothing but the stats line on stderr. */
    server_stop(&s, SIGTERM);
    expect_stats_line(&s, 3);
}

/* ---- http_server --------------------------------------------------------------------------------- */

#define HELLO "Hello, World!"
#define GET "GET / HTTP/1.1\r\nHost: test\r\n\r\n"
#define GET_CLOSE "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
#define HEAD "HEAD / HTTP/1.1\r\nHost: test\r\n\r\n"

/* A client connection reading responses through a buffer. */
struct http_conn {
    int fd;
    size_t len;
    char buf[32768];
};

struct response {
    char head[1024]; /* status line and header lines, each ending in CRLF, then CRLF */
    char body[64];
    size_t body_len;
};

static struct http_conn *http_connect(const struct server *s)
{
    struct http_conn *c = calloc(1, sizeof *c);
    cr_assert(c != NULL);
    c->fd = client_connect(s->port);
    return c;
}

static void http_send(struct http_conn *c, const char *text)
{
    send_all(c->fd, text, strlen(text));
}

static void http_close(struct http_conn *c)
{
    close(c->fd);
    free(c);
}

/* Reads more into c->buf: the byte count, 0 at end of stream, or -errno (a reset). Fails after
 * IO_TIMEOUT_MS without anything. */
static ssize_t http_fill(struct http_conn *c, const char *what)
{
    cr_assert(c->len + 1 < sizeof c->buf, "%s: the server sent more than the test's buffer", what);
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    int r;
    while ((r = poll(&pf, 1, IO_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    cr_assert(r == 1, "%s: nothing from the server within %d ms (have %zu bytes: \"%s\")", what, IO_TIMEOUT_MS,
              c->len, c->buf);
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
    if (n < 0)
        return -errno;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return n;
}

/* The value of header name in r's head (case-insensitive name), copied to out; NULL if absent. */
static const char *header(const struct response *r, const char *name, char *out, size_t cap)
{
    size_t name_len = strlen(name);
    const char *line = strstr(r->head, "\r\n") + 2;
    for (const char *eol; (eol = strstr(line, "\r\n")) && eol != line; line = eol + 2) {
        if ((size_t)(eol - line) > name_len && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(eol - v), v);
            return out;
        }
    }
    return NULL;
}

static void expect_header(const struct response *r, const char *name, const char *want, const char *what)
{
    char value[64];
    const char *got = header(r, name, value, sizeof value);
    cr_assert(got && strcmp(got, want) == 0, "%s: %s is \"%s\", want \"%s\", in:\n%s", what, name,
              got ? got : "(absent)", want, r->head);
}

/* Reads a response's head into r->head, NUL-terminated, and takes it out of c's buffer (where the
 * body's first bytes may be). */
static void read_head(struct http_conn *c, struct response *r, const char *what)
{
    char *end;
    while (!(end = strstr(c->buf, "\r\n\r\n"))) {
        ssize_t n = http_fill(c, what);
        cr_assert(n > 0, "%s: %s after %zu bytes of a response: \"%s\"", what,
                  n == 0 ? "end of stream" : strerror((int)-n), c->len, c->buf);
    }
    size_t head_len = (size_t)(end + 4 - c->buf);
    cr_assert(head_len < sizeof r->head, "%s: response head of %zu bytes", what, head_len);
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    cr_assert(strlen(r->head) == head_len, "%s: NUL byte in the response head", what);
    memmove(c->buf, c->buf + head_len, c->len - head_len + 1);
    c->len -= head_len;
}

/* Reads one response: its head, then Content-Length bytes of body (none for a HEAD request). */
static void read_response(struct http_conn *c, bool head_only, struct response *r, const char *what)
{
    read_head(c, r, what);
    char value[64];
    cr_assert(header(r, "Content-Length", value, sizeof value), "%s: no Content-Length in:\n%s", what, r->head);
    char *digits_end;
    unsigned long length = strtoul(value, &digits_end, 10);
    cr_assert(*value && !*digits_end && length < sizeof r->body, "%s: Content-Length \"%s\"", what, value);
    r->body_len = head_only ? 0 : length;
    while (c->len < r->body_len) {
        ssize_t n = http_fill(c, what);
        cr_assert(n > 0, "%s: %s in a body of %zu bytes", what, n == 0 ? "end of stream" : strerror((int)-n),
                  r->body_len);
    }
    memcpy(r->body, c->buf, r->body_len);
    r->body[r->body_len] = '\0';
    memmove(c->buf, c->buf + r->body_len, c->len - r->body_len + 1);
    c->len -= r->body_len;
}

/*
 * Reads one response and asserts it exactly: the status line; header lines well formed, a Date in
 * RFC 9110's IMF-fixdate of about now, Content-Length, Connection; then for 200 Content-Type:
 * text/plain and the body "Hello, World!" (only its length for a HEAD); for an error an empty body.
 */
static void expect_response(struct http_conn *c, const char *what, bool head_only, const char *status,
                            const char *connection)
{
    struct response r;
    read_response(c, head_only, &r, what);
    bool ok = strcmp(status, "HTTP/1.1 200 OK") == 0;
    size_t status_len = strlen(status);
    cr_assert(strncmp(r.head, status, status_len) == 0 && strncmp(r.head + status_len, "\r\n", 2) == 0,
              "%s: status line, want \"%s\", in:\n%s", what, status, r.head);
    const char *eol;
    for (const char *line = strstr(r.head, "\r\n") + 2; (eol = strstr(line, "\r\n")) != line; line = eol + 2) {
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        cr_assert(colon && colon > line && colon[1] == ' ', "%s: malformed header line \"%.*s\"", what,
                  (int)(eol - line), line);
    }
    char value[64];
    cr_assert(header(&r, "Date", value, sizeof value), "%s: no Date in:\n%s", what, r.head);
    struct tm tm = {0};
    const char *date_end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    long skew = date_end ? (long)(timegm(&tm) - time(NULL)) : 0;
    cr_assert(date_end && !*date_end && labs(skew) < 60, "%s: Date \"%s\" is not IMF-fixdate now", what, value);

    expect_header(&r, "Content-Length", ok ? "13" : "0", what);
    expect_header(&r, "Connection", connection, what);
    if (ok)
        expect_header(&r, "Content-Type", "text/plain", what);
    const char *body = ok && !head_only ? HELLO : "";
    cr_assert(strcmp(r.body, body) == 0, "%s: body \"%s\", want \"%s\"", what, r.body, body);
}

#define EXPECT_200(c, what, connection) expect_response((c), (what), false, "HTTP/1.1 200 OK", (connection))

/*
 * Asserts the server closed the connection with nothing more sent. A server closing with our request
 * bytes unread makes its kernel send RST rather than FIN, so a reset also counts as closed here.
 */
static void expect_closed(struct http_conn *c, const char *what)
{
    cr_assert(c->len == 0, "%s: bytes after the last response: \"%s\"", what, c->buf);
    ssize_t n = http_fill(c, what);
    cr_assert(n == 0 || n == -ECONNRESET, "%s: want the connection closed, got %s: \"%s\"", what,
              n > 0 ? "more bytes" : strerror((int)-n), c->buf);
}

/* Asserts the connection stays open and quiet for a moment: no stray bytes, no close. */
static void expect_open_and_quiet(struct http_conn *c, const char *what)
{
    cr_assert(c->len == 0, "%s: bytes after the last response: \"%s\"", what, c->buf);
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    int r = poll(&pf, 1, 100);
    cr_assert(r == 0, "%s: want the connection open and quiet, but it is readable (revents 0x%x)", what,
              (unsigned)pf.revents);
}

/* Stops the server: status 0 and nothing on stderr. */
static void http_server_stop(struct server *s)
{
    server_stop(s, SIGTERM);
    cr_assert(s->err_len == 0, "http_server wrote on stderr:\n%s", s->err);
}

/* tasks_spawned from the stats line loop printed as the server stopped (asserting it has one). */
static unsigned long long loop_tasks_spawned(const struct server *s, unsigned loop)
{
    char key[16];
    snprintf(key, sizeof key, "\"loop\":%u}", loop);
    const char *at = strstr(s->err, key);
    cr_assert(at != NULL, "no stats line for loop %u:\n%s", loop, s->err);
    const char *line = at;
    while (line > s->err && line[-1] != '\n')
        line--;
    const char *sp = strstr(line, "\"tasks_spawned\":");
    cr_assert(sp && sp < at, "loop %u's line has no tasks_spawned: %s", loop, line);
    return strtoull(sp + strlen("\"tasks_spawned\":"), NULL, 10);
}

Test(echo, with_threads_2_both_loops_serve_and_each_prints_its_stats_line_on_sigterm)
{
    server_threads = 2;
    struct server s;
    server_start(&s, WEFT_ECHO_SERVER);
    const size_t sizes[] = {1, 100, 16385, 200000, 1 << 20, 7, 64, 4096, 3, 65536, 12345, 99, 1000, 5, 77, 8};
    echo_exchange(s.port, sizes, sizeof sizes / sizeof sizes[0]);
    server_stop(&s, SIGTERM);
    /* One line per loop, each naming its loop; the kernel spread 16 connections over both. */
    unsigned long long spawned[2] = {loop_tasks_spawned(&s, 0), loop_tasks_spawned(&s, 1)};
    /* Each loop spawns its main, its acceptor and one task a connection (loop 1 also the stop). */
    cr_assert(spawned[0] + spawned[1] >= 16 + 4, "the loops spawned %llu + %llu tasks for 16 connections", spawned[0],
              spawned[1]);
}

/*
 * --handoff: loop 0 alone listens and hands each connection to the loop serving the fewest, with
 * weft_post. Loop 1 has no listener, so every connection it serves was handed to it; the 16 are open
 * at once, so the balance gives each loop about half.
 */
Test(echo, with_handoff_one_loop_accepts_and_both_serve_each_printing_its_stats_line)
{
    server_threads = 2;
    server_handoff = true;
    struct server s;
    server_start(&s, WEFT_ECHO_SERVER);
    /* One listener, without SO_REUSEPORT (with it, a socket of ours could join the port): loop 1 has
     * none of its own, so what it serves was handed to it. */
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    cr_assert(probe >= 0 && setsockopt(probe, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(s.port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(probe, (struct sockaddr *)&sin, sizeof sin) < 0 && errno == EADDRINUSE,
              "a SO_REUSEPORT socket could bind the server's port: it listens with SO_REUSEPORT");
    close(probe);
    const size_t sizes[] = {1, 100, 16385, 200000, 1 << 20, 7, 64, 4096, 3, 65536, 12345, 99, 1000, 5, 77, 8};
    echo_exchange(s.port, sizes, sizeof sizes / sizeof sizes[0]);
    server_stop(&s, SIGTERM);
    unsigned long long spawned[2] = {loop_tasks_spawned(&s, 0), loop_tasks_spawned(&s, 1)};
    /* Loop 0: its main, its acceptor and the connections it kept; loop 1: its main, the stop and the
     * connections handed to it. At least a quarter of the 16 each. */
    cr_assert(spawned[1] >= 2 + 4, "loop 1 spawned %llu tasks: few or no connections were handed to it", spawned[1]);
    cr_assert(spawned[0] >= 2 + 4, "loop 0 spawned %llu tasks: it handed nearly every connection away", spawned[0]);
    cr_assert(spawned[0] + spawned[1] >= 16 + 4, "the loops spawned %llu + %llu tasks for 16 connections", spawned[0],
              spawned[1]);
}

Test(http, with_threads_2_answers_get_on_fresh_connections)
{
    server_threads = 2;
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    for (int i = 0; i < 8; i++) {
        struct http_conn *c = http_connect(&s);
        http_send(c, GET);
        EXPECT_200(c, "GET", "keep-alive");
        http_close(c);
    }
    http_server_stop(&s);
}

Test(http, get_with_keep_alive_answers_200_hello_world_and_keeps_the_connection)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    struct http_conn *c = http_connect(&s);
    http_send(c, GET);
    EXPECT_200(c, "first GET", "keep-alive");
    expect_open_and_quiet(c, "after the first GET");
    http_send(c, GET);
    EXPECT_200(c, "second GET on the same connection", "keep-alive");
    expect_open_and_quiet(c, "after the second GET");
    http_close(c);
    http_server_stop(&s);
}

Test(http, a_request_arriving_one_byte_at_a_time_after_an_empty_line_is_answered)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    struct http_conn *c = http_connect(&s);
    /* The pause lets most bytes arrive in a read of their own, CR and LF of one line included. */
    static const char request[] = "\r\n" GET_CLOSE;
    for (size_t i = 0; i < sizeof request - 1; i++) {
        send_all(c->fd, request + i, 1);
        usleep(1000);
    }
    EXPECT_200(c, "GET sent byte by byte", "close");
    expect_closed(c, "after GET sent byte by byte");
    http_close(c);
    http_server_stop(&s);
}

Test(http, two_pipelined_requests_in_one_write_get_two_responses_in_order)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    struct http_conn *c = http_connect(&s);
    /* Told apart by their responses: the first has a body, the second none and "Connection: close". */
    http_send(c, GET "HEAD / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    EXPECT_200(c, "pipelined GET", "keep-alive");
    expect_response(c, "pipelined HEAD", true, "HTTP/1.1 200 OK", "close");
    expect_closed(c, "after the pipelined HEAD with Connection: close");
    http_close(c);
    http_server_stop(&s);
}

Test(http, four_hundred_pipelined_requests_spanning_several_reads_are_answered_in_order)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    struct http_conn *c = http_connect(&s);
    /* About 11 KB of requests, more than the server's 8 KiB read buffer, so requests straddle reads;
     * the 60 KB of answers overflow its 16 KiB output buffer several times. GET and HEAD alternate. */
    enum { N = 400 };
    size_t cap = N * sizeof GET_CLOSE, len = 0;
    char *requests = malloc(cap);
    cr_assert(requests != NULL);
    for (int i = 0; i < N - 1; i++)
        len += (size_t)snprintf(requests + len, cap - len, "%s", i % 2 ? HEAD : GET);
    len += (size_t)snprintf(requests + len, cap - len, "%s", GET_CLOSE);
    cr_assert(len > 8192);
    send_all(c->fd, requests, len);
    free(requests);
    for (int i = 0; i < N - 1; i++) {
        char what[64];
        snprintf(what, sizeof what, "response %d of %d (%s)", i + 1, N, i % 2 ? "HEAD" : "GET");
        expect_response(c, what, i % 2, "HTTP/1.1 200 OK", "keep-alive");
    }
    EXPECT_200(c, "the last response", "close");
    expect_closed(c, "after the last response");
    http_close(c);
    http_server_stop(&s);
}

Test(http, head_answers_the_headers_of_get_and_no_body)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    struct http_conn *c = http_connect(&s);
    http_send(c, HEAD);
    expect_response(c, "HEAD", true, "HTTP/1.1 200 OK", "keep-alive");
    /* Content-Length says 13, but not a byte follows. */
    expect_open_and_quiet(c, "after the HEAD response");
    http_send(c, GET_CLOSE);
    EXPECT_200(c, "GET after HEAD", "close");
    expect_closed(c, "after GET with Connection: close");
    http_close(c);
    http_server_stop(&s);
}

Test(http, connection_close_is_answered_then_the_connection_closes)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    static const char *const requests[] = {
        GET_CLOSE,
        "GET / HTTP/1.1\r\nHost: test\r\nconnection: CLOSE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: test\r\nConnection: keep-alive, close\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "Connection: close, request %zu", i + 1);
        struct http_conn *c = http_connect(&s);
        http_send(c, requests[i]);
        EXPECT_200(c, what, "close");
        expect_closed(c, what);
        http_close(c);
    }
    http_server_stop(&s);
}

Test(http, http_1_0_closes_after_the_response_unless_it_asks_for_keep_alive)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    struct http_conn *c = http_connect(&s);
    http_send(c, "GET / HTTP/1.0\r\n\r\n");
    EXPECT_200(c, "HTTP/1.0 GET", "close");
    expect_closed(c, "after HTTP/1.0 without keep-alive");
    http_close(c);

    c = http_connect(&s);
    http_send(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    EXPECT_200(c, "HTTP/1.0 GET with keep-alive", "keep-alive");
    expect_open_and_quiet(c, "after HTTP/1.0 with keep-alive");
    http_send(c, "GET / HTTP/1.0\r\n\r\n");
    EXPECT_200(c, "second HTTP/1.0 GET", "close");
    expect_closed(c, "after the second HTTP/1.0 GET");
    http_close(c);
    http_server_stop(&s);
}

Test(http, malformed_requests_get_400_and_the_connection_closes)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    static const struct {
        const char *what, *request;
    } cases[] = {
        {"garbage request line", "garbage\r\n\r\n"},
        {"binary garbage", "\x16\x03\x01\x02\xfc\x03\x03\r\n\r\n"},
        {"missing version", "GET /\r\nHost: test\r\n\r\n"},
        {"missing target", "GET HTTP/1.1\r\nHost: test\r\n\r\n"},
        {"empty method", " / HTTP/1.1\r\nHost: test\r\n\r\n"},
        {"two spaces before the target", "GET  / HTTP/1.1\r\nHost: test\r\n\r\n"},
        {"space in the target", "GET /a b HTTP/1.1\r\nHost: test\r\n\r\n"},
        {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: test\r\n\r\n"},
        {"lowercase version", "GET / http/1.1\r\nHost: test\r\n\r\n"},
        {"text after the version", "GET / HTTP/1.1 x\r\nHost: test\r\n\r\n"},
        {"header line without a colon", "GET / HTTP/1.1\r\nHost: test\r\nNoColonHere\r\n\r\n"},
        {"space before the colon", "GET / HTTP/1.1\r\nHost : test\r\n\r\n"},
        {"empty header name", "GET / HTTP/1.1\r\nHost: test\r\n: value\r\n\r\n"},
        {"obsolete line folding", "GET / HTTP/1.1\r\nHost: test\r\nX-A: a\r\n b\r\n\r\n"},
        {"control character in a value", "GET / HTTP/1.1\r\nHost: te\x01st\r\n\r\n"},
        {"bare LF inside a value", "GET / HTTP/1.1\r\nHost: test\r\nX-A: a\nb\r\n\r\n"},
        {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"},
        {"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
        {"Content-Length not a number", "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1x\r\n\r\n"},
        {"empty Content-Length", "POST / HTTP/1.1\r\nHost: test\r\nContent-Length:\r\n\r\n"},
        {"negative Content-Length", "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n"},
        {"conflicting Content-Lengths",
         "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"},
        {"Content-Length beyond 2^64",
         "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 99999999999999999999999\r\n\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_conn *c = http_connect(&s);
        http_send(c, cases[i].request);
        expect_response(c, cases[i].what, false, "HTTP/1.1 400 Bad Request", "close");
        expect_closed(c, cases[i].what);
        http_close(c);
    }

    /* A good request, then a bad one, in one write: the good one is answered first. */
    struct http_conn *c = http_connect(&s);
    http_send(c, GET "garbage\r\n\r\n");
    EXPECT_200(c, "good request before a bad one", "keep-alive");
    expect_response(c, "bad request after a good one", false, "HTTP/1.1 400 Bad Request", "close");
    expect_closed(c, "after the bad request");
    http_close(c);
    http_server_stop(&s);
}

/* A request head of exactly len bytes (request line, Host, Connection: close, padding header, CRLF). */
static char *head_of_length(size_t len)
{
    static const char start[] = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Pad: ";
    size_t fixed = strlen(start) + strlen("\r\n\r\n");
    cr_assert(len > fixed);
    char *head = malloc(len + 1);
    cr_assert(head != NULL);
    strcpy(head, start);
    memset(head + strlen(start), 'a', len - fixed);
    strcpy(head + len - 4, "\r\n\r\n");
    return head;
}

/* A request with n header lines: Host, Connection: close, then X-N: v lines. */
static char *head_with_headers(int n)
{
    char *head = malloc(64 + (size_t)n * 16);
    cr_assert(head != NULL);
    int len = sprintf(head, "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (int i = 2; i < n; i++)
        len += sprintf(head + len, "X-%d: v\r\n", i);
    strcpy(head + len, "\r\n");
    return head;
}

Test(http, head_beyond_8_kib_or_100_header_lines_gets_431_and_the_connection_closes)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    static const struct {
        const char *what;
        size_t length;
        int headers;
        const char *status;
    } cases[] = {
        {"a head of exactly 8192 bytes", 8192, 0, "HTTP/1.1 200 OK"},
        {"a head of 8193 bytes", 8193, 0, "HTTP/1.1 431 Request Header Fields Too Large"},
        {"a head of 20000 bytes", 20000, 0, "HTTP/1.1 431 Request Header Fields Too Large"},
        {"100 header lines", 0, 100, "HTTP/1.1 200 OK"},
        {"101 header lines", 0, 101, "HTTP/1.1 431 Request Header Fields Too Large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *head = cases[i].length ? head_of_length(cases[i].length) : head_with_headers(cases[i].headers);
        struct http_conn *c = http_connect(&s);
        http_send(c, head);
        free(head);
        expect_response(c, cases[i].what, false, cases[i].status, "close");
        expect_closed(c, cases[i].what);
        http_close(c);
    }
    http_server_stop(&s);
}

Test(http, transfer_encoding_gets_501_and_the_connection_closes)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    static const char *const requests[] = {
        "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: test\r\ntransfer-encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\nhello",
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "Transfer-Encoding, request %zu", i + 1);
        struct http_conn *c = http_connect(&s);
        http_send(c, requests[i]);
        expect_response(c, what, false, "HTTP/1.1 501 Not Implemented", "close");
        expect_closed(c, what);
        http_close(c);
    }
    http_server_stop(&s);
}

Test(http, a_content_length_body_is_skipped_and_the_next_pipelined_request_answered)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);

    /* Body and next request in one write. */
    struct http_conn *c = http_connect(&s);
    http_send(c, "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nhello world" GET_CLOSE);
    EXPECT_200(c, "POST with an 11-byte body", "keep-alive");
    EXPECT_200(c, "GET after the body", "close");
    expect_closed(c, "after the GET");
    http_close(c);

    /* A 200,000-byte body made of requests, sent in uneven pieces: were any of it parsed, it would be
     * answered too. The head and the first body bytes share a write, as do the last and the next GET. */
    enum { BODY = 200000 };
    char *body = malloc(BODY);
    cr_assert(body != NULL);
    for (size_t i = 0; i < BODY; i++)
        body[i] = GET[i % (sizeof GET - 1)];
    c = http_connect(&s);
    char head[128];
    int head_len = snprintf(head, sizeof head, "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n",
                            BODY);
    char *first = malloc((size_t)head_len + 100);
    cr_assert(first != NULL);
    memcpy(first, head, (size_t)head_len);
    memcpy(first + head_len, body, 100);
    send_all(c->fd, first, (size_t)head_len + 100);
    free(first);
    send_all(c->fd, body + 100, 7);
    send_all(c->fd, body + 107, 70000);
    char *last = malloc(BODY - 70107 + sizeof GET_CLOSE);
    cr_assert(last != NULL);
    memcpy(last, body + 70107, BODY - 70107);
    memcpy(last + BODY - 70107, GET_CLOSE, sizeof GET_CLOSE - 1);
    send_all(c->fd, last, BODY - 70107 + sizeof GET_CLOSE - 1);
    free(last);
    free(body);
    EXPECT_200(c, "POST with a 200000-byte body", "keep-alive");
    EXPECT_200(c, "GET after the long body", "close");
    expect_closed(c, "after the GET");
    http_close(c);

    /* Content-Length: 0 has nothing to skip. */
    c = http_connect(&s);
    http_send(c, "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n" GET_CLOSE);
    EXPECT_200(c, "POST with Content-Length: 0", "keep-alive");
    EXPECT_200(c, "GET after an empty body", "close");
    expect_closed(c, "after the GET");
    http_close(c);
    http_server_stop(&s);
}

/* Waits up to IO_TIMEOUT_MS for the server's stderr to hold want `count` times. */
static void await_stderr(struct server *s, const char *want, int count)
{
    uint64_t deadline = mono_ns() + MS(IO_TIMEOUT_MS);
    for (;;) {
        drain_stderr(s);
        int seen = 0;
        for (const char *at = s->err; (at = strstr(at, want)); at += strlen(want))
            seen++;
        if (seen >= count)
            return;
        int left = ms_until(deadline);
        cr_assert(left > 0, "\"%s\" %d times on stderr within %d ms; got:\n%s", want, count, IO_TIMEOUT_MS, s->err);
        struct pollfd pf = {.fd = s->err_fd, .events = POLLIN};
        poll(&pf, 1, left < 10 ? left : 10);
    }
}

Test(echo, sigusr1_prints_each_loops_tasks_and_the_server_keeps_serving)
{
    server_threads = 2;
    struct server s;
    server_start(&s, WEFT_ECHO_SERVER);
    int c = client_connect(s.port); /* a connection task parked in recv on one of the loops */
    const size_t sizes[] = {1, 100};
    echo_exchange(s.port, sizes, 2);
    cr_assert(kill(s.pid, SIGUSR1) == 0);
    await_stderr(&s, "weft: loop ", 2);
    await_stderr(&s, "'accept'", 2);
    await_stderr(&s, "in recv on fd ", 1);
    cr_assert(strstr(s.err, "weft: loop 0 (") && strstr(s.err, "weft: loop 1 ("), "%s", s.err);
    echo_exchange(s.port, sizes, 2);
    close(c);
    server_stop(&s, SIGTERM);
}

/* Waits until the trace at path has been written whole (it ends with "]}"). */
static void await_trace(const char *path)
{
    int deadline = IO_TIMEOUT_MS;
    for (;;) {
        char tail[4] = "";
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
        if (size >= 3 && pread(fd, tail, 3, size - 3) == 3 && !strcmp(tail, "]}\n")) {
            close(fd);
            return;
        }
        if (fd >= 0)
            close(fd);
        cr_assert(deadline > 0, "%s was not written within %d ms", path, IO_TIMEOUT_MS);
        usleep(10000);
        deadline -= 10;
    }
}

Test(echo, sigusr2_writes_the_trace_now_and_says_when_there_is_none)
{
    struct server s;
    server_start(&s, WEFT_ECHO_SERVER);
    cr_assert(kill(s.pid, SIGUSR2) == 0);
    await_stderr(&s, "trace: not tracing (start with --trace FILE)", 1);
    server_stop(&s, SIGTERM);

    char path[] = "/tmp/weft-echo-trace-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    setenv("WEFT_TRACE", path, 1); /* the server takes it as --trace */
    server_start(&s, WEFT_ECHO_SERVER);
    unsetenv("WEFT_TRACE");
    const size_t sizes[] = {100};
    echo_exchange(s.port, sizes, 1);
    cr_assert(kill(s.pid, SIGUSR2) == 0);
    await_trace(path);
    char out[1 << 16], err[2048];
    char *argv[] = {(char *)WEFT_PYTHON, (char *)WEFT_TRACE_CHECK, path, NULL};
    int status = run_program(argv, out, sizeof out, err, sizeof err, 30000);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the trace is not valid: %s", err);
    cr_assert(strstr(out, "task 'accept' (#") && strstr(out, "\taccept\t"), "%.4000s", out);
    cr_assert(strstr(out, "\tsend\t{\"res\": 100}"), "no 100-byte send completed in:\n%.4000s", out);
    server_stop(&s, SIGTERM);
    unlink(path);
}

/* ---- the seeds' programs: concurrent_get, file_copy, offload, pipeline ----------------------------- */

TestSuite(seeds, .timeout = 120);

#define PROGRAM_TIMEOUT_MS 60000

struct program_run {
    int status;
    char out[16384];
    char err[ERR_CAP];
};

/* Runs an example with args (NULL-terminated) and --backend for the backend under test; asserts it
 * exited with want_exit and said which backend it ran. */
static void program_expect(struct program_run *r, int want_exit, const char *path, const char *const *args)
{
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)path;
    for (; *args; args++)
        argv[n++] = (char *)*args;
    const char *b = backend_under_test();
    if (b) {
        argv[n++] = (char *)"--backend";
        argv[n++] = (char *)b;
    }
    argv[n] = NULL;
    r->status = run_program(argv, r->out, sizeof r->out, r->err, sizeof r->err, PROGRAM_TIMEOUT_MS);
    char status_s[96];
    describe_status(r->status, status_s, sizeof status_s);
    cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == want_exit,
              "%s %s, want exit %d; stdout:\n%s\nstderr:\n%s", path, status_s, want_exit, r->out, r->err);
    if (want_exit == 0 && b) {
        char want[64];
        snprintf(want, sizeof want, "backend: %s\n", b);
        cr_assert(strncmp(r->out, want, strlen(want)) == 0, "%s: stdout starts \"%.40s\", want \"%s\"", path, r->out,
                  want);
    }
}

/* Asserts the output has a line holding text. */
#define OUT_HAS(r, text) \
    cr_assert(strstr((r)->out, (text)) != NULL, "stdout lacks \"%s\"; it has:\n%s", (text), (r)->out)

/* The number printed right after the first occurrence of prefix in text. */
static unsigned long long number_after(const char *text, const char *prefix)
{
    const char *at = strstr(text, prefix);
    cr_assert(at != NULL, "no \"%s\" in:\n%s", prefix, text);
    return strtoull(at + strlen(prefix), NULL, 0);
}

Test(seeds, concurrent_get_gets_every_response_from_http_server_both_at_once_and_one_after_another)
{
    struct server s;
    server_start(&s, WEFT_HTTP_SERVER);
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%u", s.port);
    static struct program_run r;
    program_expect(&r, 0, WEFT_CONCURRENT_GET,
                   (const char *[]){"-n", "16", "--host", "127.0.0.1", "--port", port_s, NULL});
    OUT_HAS(&r, "\nconcurrent: 16 GETs, 16 ok (status 200, 13 body bytes), ");
    OUT_HAS(&r, "\nsequential: 16 GETs, 16 ok (status 200, 13 body bytes), ");
    server_stop(&s, SIGTERM);
}

Test(seeds, concurrent_get_without_a_port_starts_http_server_itself_and_stops_it)
{
    static struct program_run r;
    program_expect(&r, 0, WEFT_CONCURRENT_GET, (const char *[]){"-n", "4", "--server", WEFT_HTTP_SERVER, NULL});
    OUT_HAS(&r, "\nconcurrent: 4 GETs, 4 ok (status 200, 13 body bytes), ");
    OUT_HAS(&r, "\nsequential: 4 GETs, 4 ok (status 200, 13 body bytes), ");
    cr_assert(!strstr(r.err, "did not exit cleanly"), "stderr:\n%s", r.err);
}

Test(seeds, concurrent_get_against_nobody_listening_exits_1_and_says_why)
{
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%u", free_port());
    static struct program_run r;
    program_expect(&r, 1, WEFT_CONCURRENT_GET, (const char *[]){"-n", "2", "--port", port_s, NULL});
    OUT_HAS(&r, "concurrent: 2 GETs, 0 ok");
    cr_assert(strstr(r.err, "Connection refused") != NULL, "stderr:\n%s", r.err);
}

/* A file of len pattern bytes in a new directory; the paths of it and of a copy beside it. */
static void copy_files(char *dir, char *src, char *dst, size_t cap, size_t len)
{
    snprintf(dir, cap, "/tmp/weft-file-copy-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    cr_assert(snprintf(src, cap, "%s/src", dir) < (int)cap);
    cr_assert(snprintf(dst, cap, "%s/dst", dir) < (int)cap);
    unsigned char *data = malloc(len);
    cr_assert(data != NULL);
    fill_pattern(data, len, 19);
    int fd = open(src, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    cr_assert(fd >= 0 && write(fd, data, len) == (ssize_t)len, "writing %s: %s", src, strerror(errno));
    close(fd);
    free(data);
}

static void copy_check_and_remove(const char *dir, const char *src, const char *dst, size_t len)
{
    unsigned char *got = malloc(len + 1);
    int fd = open(dst, O_RDONLY | O_CLOEXEC);
    cr_assert(fd >= 0, "open %s: %s", dst, strerror(errno));
    ssize_t n = read(fd, got, len + 1);
    close(fd);
    EQ(n, (ssize_t)len);
    expect_pattern(got, len, 19);
    free(got);
    unlink(src);
    unlink(dst);
    rmdir(dir);
}

static void file_copy_case(bool direct)
{
    /* Not a multiple of the block or of 4 KiB: the tail block is short, and with O_DIRECT it is
     * written whole and then cut. */
    const size_t len = 5 * 1024 * 1024 + 12345;
    char dir[64], src[96], dst[96];
    copy_files(dir, src, dst, sizeof dir, len);
    static struct program_run r;
    program_expect(&r, 0, WEFT_FILE_COPY,
                   direct ? (const char *[]){"--depth", "8", "--block-kib", "64", "--direct", src, dst, NULL}
                          : (const char *[]){"--depth", "8", "--block-kib", "64", src, dst, NULL});
    char want[128];
    snprintf(want, sizeof want, "\ncopied %zu bytes in ", len);
    OUT_HAS(&r, want);
    OUT_HAS(&r, direct ? ", depth 8, block 64 KiB, O_DIRECT\n" : ", depth 8, block 64 KiB, buffered\n");
    OUT_HAS(&r, "\nverify: identical\n");
    copy_check_and_remove(dir, src, dst, len);
}

Test(seeds, file_copy_makes_an_identical_copy_with_many_requests_in_flight)
{
    file_copy_case(false);
}

Test(seeds, file_copy_direct_makes_an_identical_copy_through_aligned_buffers)
{
    file_copy_case(true);
}

Test(seeds, file_copy_of_a_missing_file_exits_1_and_names_it)
{
    static struct program_run r;
    program_expect(&r, 1, WEFT_FILE_COPY, (const char *[]){"/nonexistent/weft-src", "/tmp/weft-never-written", NULL});
    cr_assert(strstr(r.err, "/nonexistent/weft-src: No such file or directory") != NULL, "stderr:\n%s", r.err);
    cr_assert(access("/tmp/weft-never-written", F_OK) != 0, "the destination was created");
}

/* ---- group_commit: durable writes shared by many tasks ------------------------------------------------ */

/* Runs group_commit into a log in a fresh directory, checks the log's size and removes both. */
static void group_commit_case(struct program_run *r, bool no_batch, const char *writers, const char *records)
{
    const char *base = getenv("TMPDIR");
    char dir[256], log[300];
    snprintf(dir, sizeof dir, "%s/weft-commit-XXXXXX", base && *base ? base : "/tmp");
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(log, sizeof log, "%s/log", dir);
    program_expect(r, 0, WEFT_GROUP_COMMIT,
                   no_batch ? (const char *[]){"--writers", writers, "--records", records, "--size", "100", "--no-batch",
                                               log, NULL}
                            : (const char *[]){"--writers", writers, "--records", records, "--size", "100", log, NULL});
    struct stat st;
    cr_assert(stat(log, &st) == 0, "no log: %s", strerror(errno));
    EQ(st.st_size, (off_t)atoi(writers) * atoi(records) * 100);
    unlink(log);
    rmdir(dir);
}

Test(seeds, group_commit_makes_every_record_durable_in_fewer_syncs_than_records)
{
    static struct program_run r;
    group_commit_case(&r, false, "32", "20");
    OUT_HAS(&r, "group commit: 640 records of 100 B from 32 writers in ");
    OUT_HAS(&r, "\nverify: every record once, intact, in order\n");
    /* While one sync runs, the other writers' records gather: far fewer syncs than records. */
    unsigned long long syncs = number_after(r.out, " records/s, ");
    cr_assert(syncs >= 20 && syncs < 640 / 2, "%llu syncs for 640 records:\n%s", syncs, r.out);
}

Test(seeds, group_commit_no_batch_syncs_every_record_and_loses_none)
{
    static struct program_run r;
    group_commit_case(&r, true, "8", "10");
    OUT_HAS(&r, "sync per record: 80 records of 100 B from 8 writers in ");
    EQ(number_after(r.out, " records/s, "), 80);
    OUT_HAS(&r, "\nverify: every record once, intact, in order\n");
}

Test(seeds, group_commit_into_a_missing_directory_exits_1_and_names_it)
{
    static struct program_run r;
    program_expect(&r, 1, WEFT_GROUP_COMMIT, (const char *[]){"/nonexistent/weft-log", NULL});
    cr_assert(strstr(r.err, "/nonexistent/weft-log: No such file or directory") != NULL, "stderr:\n%s", r.err);
}

Test(seeds, offload_inline_is_reported_as_blocking_the_loop_with_late_ticks_and_offloaded_is_not_blocked)
{
    static struct program_run on_loop, offloaded;
    program_expect(&on_loop, 0, WEFT_OFFLOAD, (const char *[]){"--inline", "--mib", "64", "--slow-ms", "20", NULL});
    OUT_HAS(&on_loop, "on the loop (--inline)");
    /* The watchdog named the task while it held the loop. */
    CAPTURED_HAS(on_loop.err, "task 'hash'");
    CAPTURED_HAS(on_loop.err, "it is blocking the loop");
    cr_assert(number_after(on_loop.out, "watchdog reports: ") >= 1, "%s", on_loop.out);
    /* The ticker could not run while the hash did, and its next tick came late. */
    EQ(number_after(on_loop.out, " ticks, "), 0);
    cr_assert(number_after(on_loop.out, " while hashing, ") >= 1, "no late tick:\n%s", on_loop.out);

    program_expect(&offloaded, 0, WEFT_OFFLOAD, (const char *[]){"--mib", "64", "--slow-ms", "20", NULL});
    OUT_HAS(&offloaded, "on the executor");
    /* The ticker ran while the hash did, and the job's result is the same. */
    cr_assert(number_after(offloaded.out, " ticks, ") >= 1, "the ticker stood still:\n%s", offloaded.out);
    EQ(number_after(offloaded.out, "fnv1a64 "), number_after(on_loop.out, "fnv1a64 "));
    cr_assert(!strstr(offloaded.err, "task 'hash'"), "the offloaded hash was reported:\n%s", offloaded.err);
}

Test(seeds, pipeline_passes_every_item_through_every_stage_and_its_checksum_does_not_depend_on_concurrency)
{
    static struct program_run wide, narrow;
    program_expect(&wide, 0, WEFT_PIPELINE, (const char *[]){"--items", "120", "--io-ms", "1", "--cpu-kib", "16", NULL});
    program_expect(&narrow, 0, WEFT_PIPELINE,
                   (const char *[]){"--items", "120", "--io-ms", "0", "--cpu-kib", "16", "--io-workers", "1",
                                    "--cpu-workers", "1", "--queue", "1", NULL});
    OUT_HAS(&wide, "\nstage source: 120 items, 1 worker, ");
    OUT_HAS(&wide, "\nstage fetch: 120 items, 8 workers, ");
    OUT_HAS(&wide, "\nstage hash: 120 items, 2 workers, ");
    OUT_HAS(&wide, "\nstage sink: 120 items, 1 worker, ");
    OUT_HAS(&narrow, "\nstage fetch: 120 items, 1 worker, ");
    OUT_HAS(&narrow, "\nstage hash: 120 items, 1 worker, ");
    EQ(number_after(wide.out, "checksum: "), number_after(narrow.out, "checksum: "));
    cr_assert(number_after(wide.out, "checksum: ") != 0, "%s", wide.out);
}
