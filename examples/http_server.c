/*
 * http_server — an HTTP/1.1 keep-alive server on weft answering every request with "Hello, World!".
 *
 *   http_server [--host 127.0.0.1] [--port 8080] [--backend io_uring|epoll] [--threads N] [--handoff]
 *               [--min-wait-us U] [--trace FILE]
 *
 * One task per connection. The request parser is real (http_request.h, fuzzed by tests/fuzz): a request
 * line (method, target, HTTP/1.0 or HTTP/1.1), up to 100 header lines in an 8 KiB head, Content-Length
 * bodies skipped, pipelined requests answered in one send, "Connection: close" (and HTTP/1.0 without
 * keep-alive) honoured. Malformed input gets 400 and the connection is closed (after a lingering read,
 * so the response is not lost to a reset); a head larger than the buffer gets 431; Transfer-Encoding
 * gets 501. It never reads past its buffer. Prints "ready on <backend>" once it listens; SIGTERM/SIGINT
 * stop it; --threads N runs N loops sharing the port (examples/serve.h).
 */
#include "serve.h"

#include "http_request.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <time.h>

#define OUT_MAX 16384    /* responses to pipelined requests, sent together */

/* ---- responses -------------------------------------------------------------------------------- */

static const char BODY[] = "Hello, World!";

/*
 * The Date header's value, formatted again only when the second changes, and the four answers (GET or
 * HEAD, keep-alive or close), which differ only in it: formatted once per second and copied per request,
 * since formatting each with snprintf would cost more than parsing the request does. Each thread keeps
 * its own (with --threads N every loop formats and reads them, so a shared copy would be a data race).
 */
static _Thread_local char date[40];
static _Thread_local struct {
    char text[256];
    size_t len;
} answers[4];

static const char *http_date(void)
{
    static _Thread_local time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
        for (int i = 0; i < 4; i++) {
            int n = snprintf(answers[i].text, sizeof answers[i].text,
                             "HTTP/1.1 200 OK\r\nServer: weft\r\nDate: %s\r\nContent-Type: text/plain\r\n"
                             "Content-Length: %zu\r\nConnection: %s\r\n\r\n%s",
                             date, sizeof BODY - 1, i & 1 ? "close" : "keep-alive", i & 2 ? "" : BODY);
            answers[i].len = n > 0 && (size_t)n < sizeof answers[i].text ? (size_t)n : 0;
        }
    }
    return date;
}

static size_t response(char *out, size_t cap, const http_request *rq)
{
    http_date();
    int which = (rq->close ? 1 : 0) | (rq->head_only ? 2 : 0);
    size_t n = answers[which].len;
    if (n >= cap)
        return 0;
    memcpy(out, answers[which].text, n);
    return n;
}

static void send_error(int fd, long status)
{
    const char *reason = status == HTTP_NOT_IMPLEMENTED ? "501 Not Implemented"
                         : status == HTTP_TOO_LARGE     ? "431 Request Header Fields Too Large"
                                                   : "400 Bad Request";
    char out[256];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 %s\r\nServer: weft\r\nDate: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     reason, http_date());
    weft_send_all(fd, out, (size_t)n);
}

/* ---- connections ------------------------------------------------------------------------------ */

/*
 * Closing with unread request bytes makes the kernel send a reset, which can destroy the error response
 * before the client reads it. As nginx's lingering close does: end our side, then read and discard what
 * the client still sends, for at most 2 s and 1 MiB, before closing.
 */
static void linger_close(int fd, char *scratch, size_t size)
{
    weft_shutdown(fd, SHUT_WR);
    weft_deadline_push(weft_now() + 2ull * 1000 * 1000 * 1000);
    for (size_t discarded = 0; discarded < (1u << 20);) {
        ssize_t n = weft_recv(fd, scratch, size, 0);
        if (n <= 0)
            break;
        discarded += (size_t)n;
    }
    weft_deadline_pop();
    weft_close(fd);
}

static intptr_t serve_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char in[HTTP_HEAD_MAX], out[OUT_MAX];
    size_t len = 0, outlen = 0;
    unsigned long long skip = 0; /* body bytes of the last request still to discard */
    for (;;) {
        ssize_t n = weft_recv(fd, in + len, sizeof in - len, 0);
        if (n <= 0)
            break; /* end of stream, reset, or cancelled as the server stops */
        len += (size_t)n;

        /* Answer every complete request in the buffer; the answers go out in one send. */
        size_t off = 0;
        bool close_after = false;
        long r = 0;
        for (;;) {
            size_t drop = skip < len - off ? (size_t)skip : len - off;
            off += drop;
            skip -= drop;
            if (skip)
                break;
            http_request rq;
            r = http_parse_request(in + off, len - off, &rq);
            if (r <= 0)
                break;
            off += (size_t)r;
            skip = rq.body;
            if (outlen + 512 > sizeof out) {
                if (weft_send_all(fd, out, outlen) != (ssize_t)outlen)
                    goto done;
                outlen = 0;
            }
            outlen += response(out + outlen, sizeof out - outlen, &rq);
            if (rq.close) {
                close_after = true;
                break;
            }
        }
        if (outlen && weft_send_all(fd, out, outlen) != (ssize_t)outlen)
            break;
        outlen = 0;
        if (r < 0) {
            send_error(fd, r);
            linger_close(fd, in, sizeof in);
            return 0;
        }
        if (close_after)
            break;
        memmove(in, in + off, len - off); /* keep the start of the next request */
        len -= off;
    }
done:
    weft_shutdown(fd, SHUT_WR);
    weft_close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    static struct serve s = {.name = "http_server", .client_name = "http", .client = serve_client,
                             .default_port = 8080};
    return serve_main(&s, argc, argv);
}
