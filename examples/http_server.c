/*
 * http_server — an HTTP/1.1 keep-alive server on weft answering every request with "Hello, World!", or
 * serving the files of a directory.
 *
 *   http_server [--host 127.0.0.1] [--port 8080] [--backend io_uring|epoll] [--threads N] [--handoff]
 *               [--min-wait-us U] [--trace FILE] [--root DIR]
 *
 * One task per connection. The request parser is real (http_request.h, fuzzed by tests/fuzz): a request
 * line (method, target, HTTP/1.0 or HTTP/1.1), up to 100 header lines in an 8 KiB head, Content-Length
 * bodies skipped, pipelined requests answered in order (in one send when they are all hellos), "Connection: close" (and HTTP/1.0 without
 * keep-alive) honoured. Malformed input gets 400 and the connection is closed (after a lingering read,
 * so the response is not lost to a reset); a head larger than the buffer gets 431; Transfer-Encoding
 * gets 501. It never reads past its buffer. Prints "ready on <backend>" once it listens; SIGTERM/SIGINT
 * stop it; --threads N runs N loops sharing the port (examples/serve.h).
 *
 * With --root DIR it serves the regular files under DIR instead (see "files" below): GET and HEAD, a
 * directory's index.html, Content-Length, Last-Modified and If-Modified-Since (304), single byte ranges
 * (Range: bytes=a-b, a- and -n: 206, or 416 past the end), the body sent with weft_sendfile (no copy
 * through the server's memory: splices on io_uring, sendfile(2) on epoll). A path that could leave DIR
 * is refused whatever its spelling: a ".." segment, raw or percent-encoded, gets 403; an encoded "/",
 * "\\" or NUL, bad percent-encoding, or a target that is not an absolute path gets 400; extra slashes are
 * merged, so "//etc/passwd" is DIR/etc/passwd. Files are opened beneath DIR's fd with weft_openat
 * (O_NONBLOCK, so a FIFO cannot stall it; anything but a regular file is 404). Symbolic links inside
 * DIR are followed, as nginx does by default.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
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
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define HTTP_HEAD_MAX 8192    /* request line and headers */
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

/* ---- files (--root) ----------------------------------------------------------------------------- */

static int root_fd = -1; /* the directory served, -1 for the hello server */

enum { PATH_MAX_BYTES = 4096 };

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/*
 * The file path a request target names, relative to the root, into out (NUL-terminated; "" for the
 * root itself). Returns 0, or the status that refuses it: 400 (not an absolute path; bad
 * percent-encoding; an encoded NUL, "/" or "\\", which would let a segment hide a separator), 403 (a
 * ".." segment, however spelled: decoding first, then splitting, catches "%2e%2e" and ".%2E"), 414 (too
 * long). Empty and "." segments are dropped, so no path here can begin with "/" or climb out.
 */
static int target_path(http_span target, char *out, size_t cap)
{
    const char *t = target.p, *end = t + target.len;
    const char *q = memchr(t, '?', target.len);
    if (q)
        end = q; /* the query is not part of the path */
    if (t == end || *t != '/')
        return 400; /* absolute-form ("http://host/x"), authority-form, "*": no file */
    size_t used = 0;
    char segment[256];
    size_t seg = 0;
    for (const char *p = t;; p++) {
        if (p == end || *p == '/') {
            /* A segment ends: drop the empty ones and ".", refuse "..", append the rest. */
            if (seg == 2 && segment[0] == '.' && segment[1] == '.')
                return 403;
            if (seg && !(seg == 1 && segment[0] == '.')) {
                if (used + (used ? 1 : 0) + seg + 1 > cap)
                    return 414;
                if (used)
                    out[used++] = '/';
                memcpy(out + used, segment, seg);
                used += seg;
            }
            seg = 0;
            if (p == end)
                break;
            continue;
        }
        char c = *p;
        if (c == '%') {
            int hi = end - p > 2 ? hex_digit(p[1]) : -1, lo = hi >= 0 ? hex_digit(p[2]) : -1;
            if (lo < 0)
                return 400;
            c = (char)(hi * 16 + lo);
            if (c == '\0' || c == '/' || c == '\\')
                return 400;
            p += 2;
        }
        if (seg + 1 >= sizeof segment)
            return 414;
        segment[seg++] = c;
    }
    out[used] = '\0';
    return 0;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html"}, {"htm", "text/html"}, {"txt", "text/plain"}, {"css", "text/css"},
        {"js", "text/javascript"}, {"json", "application/json"}, {"png", "image/png"}, {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"}, {"gif", "image/gif"}, {"svg", "image/svg+xml"}, {"ico", "image/x-icon"},
        {"pdf", "application/pdf"}, {"wasm", "application/wasm"},
    };
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* An HTTP-date (IMF-fixdate, what every current client sends) as seconds since the epoch, -1 if v is
 * not one: RFC 9110 says to ignore an If-Modified-Since that does not parse. */
static time_t parse_http_date(http_span v)
{
    char text[64];
    if (v.len >= sizeof text)
        return -1;
    memcpy(text, v.p, v.len);
    text[v.len] = '\0';
    struct tm tm = {0};
    const char *end = strptime(text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return end && !*end ? timegm(&tm) : -1;
}

/* A decimal number of v[*at..) into *out; false if there is none (or it is too large). */
static bool parse_number(http_span v, size_t *at, unsigned long long *out)
{
    size_t start = *at;
    unsigned long long n = 0;
    while (*at < v.len && v.p[*at] >= '0' && v.p[*at] <= '9') {
        if (n > (1ull << 60))
            return false;
        n = n * 10 + (unsigned)(v.p[(*at)++] - '0');
    }
    *out = n;
    return *at > start;
}

/*
 * A Range header against a file of size bytes: RANGE_NONE to send it all (no header, or one this
 * server does not take: several ranges, another unit, bad syntax, which RFC 9110 lets a server
 * ignore), RANGE_OK with [*first, *last] inside it, or RANGE_UNSATISFIABLE (416).
 */
enum { RANGE_NONE, RANGE_OK, RANGE_UNSATISFIABLE };

static int parse_range(http_span v, unsigned long long size, unsigned long long *first, unsigned long long *last)
{
    if (!v.p || v.len < 7 || strncasecmp(v.p, "bytes=", 6) != 0 || memchr(v.p, ',', v.len))
        return RANGE_NONE;
    size_t at = 6;
    unsigned long long a, b;
    if (at < v.len && v.p[at] == '-') { /* bytes=-n: the last n bytes */
        at++;
        if (!parse_number(v, &at, &b) || at != v.len)
            return RANGE_NONE;
        if (b == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return RANGE_OK;
    }
    if (!parse_number(v, &at, &a) || at >= v.len || v.p[at++] != '-')
        return RANGE_NONE;
    if (at == v.len) {
        b = size ? size - 1 : 0; /* bytes=a-: to the end */
    } else if (!parse_number(v, &at, &b) || at != v.len || b < a) {
        return RANGE_NONE;
    }
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return RANGE_OK;
}

/* A response without a body; keep-alive unless rq asked to close. false if the send failed. */
static bool send_bodiless(int fd, const http_request *rq, const char *status, const char *extra)
{
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nServer: weft\r\nDate: %s\r\n%sConnection: %s\r\n\r\n",
                     status, http_date(), extra, rq->close ? "close" : "keep-alive");
    return weft_send_all(fd, head, (size_t)n) == n;
}

/* Opens path (relative to the root) for reading, a directory's index.html in its stead; the fd of a
 * regular file with *st filled, or -404, -403, -500. */
static int open_file(char *path, size_t cap, struct stat *st)
{
    for (int tries = 0; tries < 2; tries++) {
        int fd = weft_openat(root_fd, *path ? path : ".", O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
        if (fd < 0)
            return fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP || fd == -ENAMETOOLONG ? -404
                   : fd == -EACCES || fd == -EPERM                                      ? -403
                                                                                         : -500;
        /* fstat on the fd just opened reads the inode the open loaded: it never waits for a disk,
         * so it is made directly (io_uring's STATX would go through one of its worker threads). */
        if (fstat(fd, st) != 0) {
            weft_close(fd);
            return -500;
        }
        if (S_ISREG(st->st_mode))
            return fd;
        weft_close(fd);
        size_t len = strlen(path);
        if (!S_ISDIR(st->st_mode) || tries || len + sizeof "/index.html" > cap)
            return -404;
        memcpy(path + len, len ? "/index.html" : "index.html", len ? sizeof "/index.html" : sizeof "index.html");
    }
    return -404;
}

/*
 * Answers rq from the root directory: the head, then the file's bytes with weft_sendfile. Returns
 * false when the connection cannot go on (a send failed or fell short).
 */
static bool file_response(int fd, const http_request *rq)
{
    if (!rq->get && !rq->head_only)
        return send_bodiless(fd, rq, "405 Method Not Allowed", "Allow: GET, HEAD\r\nContent-Length: 0\r\n");
    char path[PATH_MAX_BYTES];
    int refused = target_path(rq->target, path, sizeof path - sizeof "/index.html");
    if (refused)
        return send_bodiless(fd, rq,
                             refused == 403 ? "403 Forbidden" : refused == 414 ? "414 URI Too Long" : "400 Bad Request",
                             "Content-Length: 0\r\n");
    struct stat st;
    int file = open_file(path, sizeof path, &st);
    if (file < 0)
        return send_bodiless(fd, rq,
                             file == -404 ? "404 Not Found" : file == -403 ? "403 Forbidden" : "500 Internal Server Error",
                             "Content-Length: 0\r\n");
    char modified[40];
    struct tm tm;
    gmtime_r(&st.st_mtime, &tm);
    strftime(modified, sizeof modified, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    time_t since = rq->if_modified_since.p ? parse_http_date(rq->if_modified_since) : -1;
    bool ok;
    if (since >= 0 && st.st_mtime <= since) {
        char extra[64];
        snprintf(extra, sizeof extra, "Last-Modified: %s\r\n", modified);
        ok = send_bodiless(fd, rq, "304 Not Modified", extra);
    } else {
        unsigned long long size = (unsigned long long)st.st_size, first = 0, last = size ? size - 1 : 0;
        int range = rq->get ? parse_range(rq->range, size, &first, &last) : RANGE_NONE;
        if (range == RANGE_UNSATISFIABLE) {
            char extra[96];
            snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\nContent-Length: 0\r\n", size);
            ok = send_bodiless(fd, rq, "416 Range Not Satisfiable", extra);
        } else {
            unsigned long long length = range == RANGE_OK ? last - first + 1 : size;
            char head[768];
            int n = snprintf(head, sizeof head,
                             "HTTP/1.1 %s\r\nServer: weft\r\nDate: %s\r\nContent-Type: %s\r\n"
                             "Content-Length: %llu\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n",
                             range == RANGE_OK ? "206 Partial Content" : "200 OK", http_date(), content_type(path),
                             length, modified);
            if (range == RANGE_OK)
                n += snprintf(head + n, sizeof head - (size_t)n, "Content-Range: bytes %llu-%llu/%llu\r\n", first,
                              last, size);
            n += snprintf(head + n, sizeof head - (size_t)n, "Connection: %s\r\n\r\n",
                          rq->close ? "close" : "keep-alive");
            bool body = !rq->head_only && length;
            /* MSG_MORE holds the head back until the body's first bytes join it in one segment. */
            ssize_t sent = weft_send(fd, head, (size_t)n, body ? MSG_MORE : 0);
            if (sent >= 0 && sent < n) {
                ssize_t rest = weft_send_all(fd, head + sent, (size_t)(n - sent));
                sent = rest < 0 ? rest : sent + rest;
            }
            ok = sent == n;
            if (ok && body)
                ok = weft_sendfile(fd, file, (int64_t)first, (size_t)length) == (ssize_t)length;
        }
    }
    weft_close(file);
    return ok;
}

static int take_option(int val, const char *arg)
{
    (void)val;
    root_fd = open(arg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        fprintf(stderr, "http_server: --root %s: %s\n", arg, strerror(errno));
        return -1;
    }
    return 0;
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
            if (root_fd >= 0) {
                /* A file goes out as it is read: what is gathered before it first. */
                if (outlen && weft_send_all(fd, out, outlen) != (ssize_t)outlen)
                    goto done;
                outlen = 0;
                if (!file_response(fd, &rq))
                    goto done;
                if (rq.close) {
                    close_after = true;
                    break;
                }
                continue;
            }
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
    static const struct option options[] = {{"root", required_argument, NULL, 256}, {NULL, 0, NULL, 0}};
    static struct serve s = {.name = "http_server", .client_name = "http", .client = serve_client,
                             .options = options, .option = take_option, .usage = "[--root DIR]",
                             .default_port = 8080};
    return serve_main(&s, argc, argv);
}
