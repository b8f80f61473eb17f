/*
 * The client side of the weft-kv tests (test_kv.c) and of the check that the recorded replies are
 * Redis's (test_kv_redis.c): a plain socket connection that reads whole RESP2 replies, and the two
 * checks every server must pass, kv_replies byte for byte and kv_cli through redis-cli. Every wait is
 * bounded (IO_TIMEOUT_MS).
 */
#ifndef WEFT_TEST_KV_CLIENT_H
#define WEFT_TEST_KV_CLIENT_H

#include <stdarg.h>

#include "kv_replies.h"
#include "server.h"

/* ---- tools ---------------------------------------------------------------------------------------- */

/* The path of a Redis program (Debian's redis-tools and redis-server put them in /usr/bin). */
static inline const char *redis_program(const char *name)
{
    static char path[4][64];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "/usr/bin/%s", name);
    cr_assert(access(p, X_OK) == 0, "%s is not installed (apt-get install redis-tools redis-server; tests/run does)",
              p);
    return p;
}

/* bytes shown with \r \n \\ \xHH escapes, cut after 400 characters; four buffers in turn. */
static inline const char *shown(const void *bytes, size_t len)
{
    static char buf[4][1700];
    static int next;
    char *out = buf[next++ % 4];
    size_t used = 0;
    const unsigned char *p = bytes;
    for (size_t i = 0; i < len && used < 400; i++) {
        if (p[i] == '\r')
            used += (size_t)snprintf(out + used, 8, "\\r");
        else if (p[i] == '\n')
            used += (size_t)snprintf(out + used, 8, "\\n");
        else if (p[i] == '\\')
            used += (size_t)snprintf(out + used, 8, "\\\\");
        else if (p[i] < 32 || p[i] > 126)
            used += (size_t)snprintf(out + used, 8, "\\x%02x", p[i]);
        else
            out[used++] = (char)p[i];
    }
    snprintf(out + used, 48, "%s (%zu bytes)", used >= 400 ? "..." : "", len);
    return out;
}

/* ---- a client -------------------------------------------------------------------------------------- */

struct conn {
    int fd;
    char *buf;          /* received, [start, len) not yet taken */
    size_t start, len, cap;
};

static inline struct conn *conn_open(uint16_t port)
{
    struct conn *c = calloc(1, sizeof *c);
    cr_assert(c != NULL);
    c->fd = client_connect(port);
    return c;
}

static inline void conn_close(struct conn *c)
{
    close(c->fd);
    free(c->buf);
    free(c);
}

static inline void conn_send(struct conn *c, const void *bytes, size_t len)
{
    send_all(c->fd, bytes, len);
}

static inline void conn_send_str(struct conn *c, const char *text)
{
    send_all(c->fd, text, strlen(text));
}

/* Receives more: the bytes received, 0 at end of stream or after a reset. Fails after IO_TIMEOUT_MS
 * without anything. */
static inline ssize_t conn_fill(struct conn *c, const char *what)
{
    if (c->start && c->start == c->len)
        c->start = c->len = 0;
    if (c->cap - c->len < 65536) {
        size_t cap = c->cap ? c->cap * 2 : 1 << 20;
        c->buf = realloc(c->buf, cap);
        cr_assert(c->buf != NULL);
        c->cap = cap;
    }
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    int r;
    while ((r = poll(&pf, 1, IO_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    cr_assert(r == 1, "%s: nothing from the server within %d ms; unread so far: %s", what, IO_TIMEOUT_MS,
              shown(c->buf + c->start, c->len - c->start));
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n < 0 && errno == ECONNRESET)
        return 0;
    cr_assert(n >= 0, "%s: recv: %s", what, strerror(errno));
    c->len += (size_t)n;
    return n;
}

/* The length of the first whole RESP2 reply in p[0..n), or 0 while it is incomplete. */
static inline size_t reply_len(const char *p, size_t n)
{
    const char *eol = n ? memmem(p, n, "\r\n", 2) : NULL;
    if (!eol)
        return 0;
    size_t head = (size_t)(eol - p) + 2;
    long long count = strtoll(p + 1, NULL, 10);
    switch (p[0]) {
    case '+': case '-': case ':':
        return head;
    case '$':
        return count < 0 ? head : n >= head + (size_t)count + 2 ? head + (size_t)count + 2 : 0;
    case '*': {
        size_t at = head;
        for (long long i = 0; i < count; i++) {
            size_t one = reply_len(p + at, n - at);
            if (!one)
                return 0;
            at += one;
        }
        return at;
    }
    default:
        cr_assert_fail("not a RESP2 reply: %s", shown(p, n));
    }
    return 0;
}

/* The next whole reply: *len bytes at the returned pointer, valid until the next read. */
static inline const char *read_reply(struct conn *c, size_t *len, const char *what)
{
    size_t n;
    while (!(n = reply_len(c->buf + c->start, c->len - c->start)))
        cr_assert(conn_fill(c, what) > 0, "%s: end of stream; unread: %s", what,
                  shown(c->buf + c->start, c->len - c->start));
    const char *reply = c->buf + c->start;
    c->start += n;
    *len = n;
    return reply;
}

static inline void expect_reply(struct conn *c, const void *want, size_t want_len, const char *what)
{
    size_t len;
    const char *got = read_reply(c, &len, what);
    cr_assert(len == want_len && memcmp(got, want, len) == 0, "%s: got %s, want %s", what, shown(got, len),
              shown(want, want_len));
}

#define EXPECT(c, literal, what) expect_reply((c), (literal), sizeof(literal) - 1, (what))

/* Reads exactly len bytes. */
static inline void read_exact(struct conn *c, size_t len, const char *what)
{
    while (c->len - c->start < len)
        cr_assert(conn_fill(c, what) > 0, "%s: end of stream after %s, want %zu bytes", what,
                  shown(c->buf + c->start, c->len - c->start), len);
}

/* The server ends the stream (FIN, or a reset) with nothing more sent. */
static inline void expect_end(struct conn *c, const char *what)
{
    while (conn_fill(c, what) > 0)
        ;
    cr_assert(c->len == c->start, "%s: more before the end: %s", what, shown(c->buf + c->start, c->len - c->start));
}

/* Nothing arrives within ms and the connection stays open. */
static inline void expect_silent(struct conn *c, int ms, const char *what)
{
    struct pollfd pf = {.fd = c->fd, .events = POLLIN};
    int r = poll(&pf, 1, ms);
    char got[64];
    ssize_t n = r > 0 ? recv(c->fd, got, sizeof got, MSG_DONTWAIT) : -1;
    cr_assert(r == 0, "%s: want no answer, got %s", what, n > 0 ? shown(got, (size_t)n) : "the end of the stream");
}

/* Sends a command of argc arguments (any bytes) as a RESP2 multibulk. */
static inline void send_command(struct conn *c, size_t argc, const struct bytes *argv)
{
    size_t len = 16;
    for (size_t i = 0; i < argc; i++)
        len += argv[i].len + 32;
    char *out = malloc(len);
    cr_assert(out != NULL);
    size_t used = (size_t)sprintf(out, "*%zu\r\n", argc);
    for (size_t i = 0; i < argc; i++) {
        used += (size_t)sprintf(out + used, "$%zu\r\n", argv[i].len);
        memcpy(out + used, argv[i].ptr, argv[i].len);
        used += argv[i].len;
        memcpy(out + used, "\r\n", 2);
        used += 2;
    }
    conn_send(c, out, used);
    free(out);
}

/* cmd(c, "SET", "k", "v", NULL): a command of text arguments. */
static inline void cmd(struct conn *c, ...)
{
    struct bytes argv[64];
    size_t argc = 0;
    va_list ap;
    va_start(ap, c);
    for (const char *a; (a = va_arg(ap, const char *));) {
        cr_assert(argc < 64);
        argv[argc++] = (struct bytes){a, strlen(a)};
    }
    va_end(ap);
    send_command(c, argc, argv);
}

/* The integer of the next reply, which must be one. */
static inline long long read_int(struct conn *c, const char *what)
{
    size_t len;
    const char *r = read_reply(c, &len, what);
    cr_assert(r[0] == ':', "%s: want an integer, got %s", what, shown(r, len));
    return strtoll(r + 1, NULL, 10);
}

/* ---- the recorded replies --------------------------------------------------------------------------- */

/* Every case of kv_replies against the server on port. */
static inline void check_replies(uint16_t port, const char *server)
{
    for (size_t i = 0; i < sizeof kv_replies / sizeof kv_replies[0]; i++) {
        const struct kv_case *k = &kv_replies[i];
        char what[160];
        snprintf(what, sizeof what, "%s: %s", server, k->name);
        struct conn *c = conn_open(port);
        conn_send_str(c, "FLUSHALL\r\n");
        EXPECT(c, "+OK\r\n", what);
        conn_send(c, k->send.ptr, k->send.len);
        switch (k->kind) {
        case REPLIES:
            conn_send_str(c, "PING\r\n");
            read_exact(c, k->reply.len + 7, what);
            cr_assert(memcmp(c->buf + c->start, k->reply.ptr, k->reply.len) == 0 &&
                          memcmp(c->buf + c->start + k->reply.len, "+PONG\r\n", 7) == 0,
                      "%s: got %s\nwant %s", what, shown(c->buf + c->start, c->len - c->start),
                      shown(k->reply.ptr, k->reply.len));
            c->start += k->reply.len + 7;
            expect_silent(c, 0, what);
            break;
        case CLOSES:
            read_exact(c, k->reply.len, what);
            cr_assert(memcmp(c->buf + c->start, k->reply.ptr, k->reply.len) == 0, "%s: got %s\nwant %s", what,
                      shown(c->buf + c->start, c->len - c->start), shown(k->reply.ptr, k->reply.len));
            c->start += k->reply.len;
            expect_end(c, what);
            break;
        case SILENT:
            expect_silent(c, 150, what);
            break;
        }
        conn_close(c);
    }
}

/* Every step of kv_cli: redis-cli against the server on port. */
static inline void check_cli(uint16_t port, const char *server)
{
    const char *cli = redis_program("redis-cli");
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%u", port);
    for (size_t i = 0; i < sizeof kv_cli / sizeof kv_cli[0]; i++) {
        const struct kv_cli_step *step = &kv_cli[i];
        char *argv[16] = {(char *)cli, (char *)"-p", port_s};
        size_t argc = 3;
        for (size_t j = 0; step->argv[j]; j++)
            argv[argc++] = (char *)step->argv[j];
        argv[argc] = NULL;
        char out[4096] = {0}, err[4096];
        int status = run_program_input(argv, step->in.ptr, step->in.len, out, sizeof out, err, sizeof err, 30000);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: redis-cli step %zu (%s ...) failed: %s", server,
                  i, step->argv[0], err);
        /* redis-cli's output for the binary value holds a NUL: compare lengths through the expected bytes. */
        size_t got = strlen(out);
        if (memchr(step->out.ptr, '\0', step->out.len))
            got = step->out.len;
        cr_assert(got == step->out.len && memcmp(out, step->out.ptr, step->out.len) == 0,
                  "%s: redis-cli %s %s %s: printed %s, want %s", server, step->argv[0],
                  step->argv[1] ? step->argv[1] : "", step->argv[1] && step->argv[2] ? step->argv[2] : "",
                  shown(out, got), shown(step->out.ptr, step->out.len));
    }
}

#endif /* WEFT_TEST_KV_CLIENT_H */
