/*
 * http_request — parsing an HTTP/1.x request head (http_request.h says what is accepted).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "http_request.h"

#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Whether the comma-separated list v[0..n) holds token (case-insensitive). */
static bool list_has(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0)
            return true;
    }
    return false;
}

long http_parse_request(const char *p, size_t n, http_request *rq)
{
    size_t skip = 0; /* empty lines before a request are ignored (RFC 9112 2.2) */
    while (skip + 2 <= n && p[skip] == '\r' && p[skip + 1] == '\n')
        skip += 2;
    const char *end = memmem(p + skip, n - skip, "\r\n\r\n", 4);
    if (!end)
        return n >= HTTP_HEAD_MAX ? HTTP_TOO_LARGE : 0; /* n < HTTP_HEAD_MAX: the buffer has room for more */
    const char *s = p + skip, *head_end = end + 2; /* head_end: after the last header line's CRLF */
    if (head_end + 2 - s > HTTP_HEAD_MAX)
        return HTTP_TOO_LARGE;

    /* Request line: method SP target SP HTTP/1.x CRLF */
    const char *m = s;
    while (s < head_end && is_tchar((unsigned char)*s))
        s++;
    size_t mlen = (size_t)(s - m);
    if (mlen == 0 || *s++ != ' ')
        return HTTP_BAD_REQUEST;
    const char *target = s;
    while (s < head_end && (unsigned char)*s > ' ' && (unsigned char)*s < 0x7f)
        s++;
    size_t target_len = (size_t)(s - target);
    if (s == target || *s++ != ' ')
        return HTTP_BAD_REQUEST;
    if (head_end - s < 10 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != '\r' ||
        s[9] != '\n')
        return HTTP_BAD_REQUEST;
    bool http11 = s[7] == '1';
    s += 10;

    rq->head_only = mlen == 4 && memcmp(m, "HEAD", 4) == 0;
    rq->get = mlen == 3 && memcmp(m, "GET", 3) == 0;
    rq->target = (http_span){target, target_len};
    rq->if_modified_since = rq->range = (http_span){NULL, 0};
    rq->body = 0;
    bool keep_alive = http11, have_length = false, have_host = false;
    int headers = 0;
    while (s < head_end) {
        /* field-name ":" OWS field-value OWS CRLF */
        if (++headers > HTTP_HEADERS_MAX)
            return HTTP_TOO_LARGE;
        const char *name = s;
        while (s < head_end && is_tchar((unsigned char)*s))
            s++;
        size_t nlen = (size_t)(s - name);
        if (nlen == 0 || *s++ != ':')
            return HTTP_BAD_REQUEST; /* also rejects obsolete line folding and whitespace before ':' */
        while (*s == ' ' || *s == '\t')
            s++;
        const char *v = s;
        while ((unsigned char)*s >= ' ' ? *s != 0x7f : *s == '\t')
            s++;
        if (s[0] != '\r' || s[1] != '\n')
            return HTTP_BAD_REQUEST; /* a control character, or a bare CR or LF, in the value */
        size_t vlen = (size_t)(s - v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        s += 2;

        if (nlen == 14 && strncasecmp(name, "Content-Length", 14) == 0) {
            unsigned long long len = 0;
            if (vlen == 0)
                return HTTP_BAD_REQUEST;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9' || len > (1ull << 60))
                    return HTTP_BAD_REQUEST;
                len = len * 10 + (unsigned)(v[i] - '0');
            }
            if (have_length && len != rq->body)
                return HTTP_BAD_REQUEST; /* conflicting lengths: request smuggling */
            have_length = true;
            rq->body = len;
        } else if (nlen == 17 && strncasecmp(name, "Transfer-Encoding", 17) == 0) {
            return HTTP_NOT_IMPLEMENTED;
        } else if (nlen == 10 && strncasecmp(name, "Connection", 10) == 0) {
            if (list_has(v, vlen, "close"))
                keep_alive = false;
            else if (list_has(v, vlen, "keep-alive"))
                keep_alive = true;
        } else if (nlen == 4 && strncasecmp(name, "Host", 4) == 0) {
            if (have_host)
                return HTTP_BAD_REQUEST;
            have_host = true;
        } else if (nlen == 17 && strncasecmp(name, "If-Modified-Since", 17) == 0) {
            rq->if_modified_since = (http_span){v, vlen};
        } else if (nlen == 5 && strncasecmp(name, "Range", 5) == 0) {
            rq->range = (http_span){v, vlen};
        }
    }
    if (http11 && !have_host)
        return HTTP_BAD_REQUEST; /* RFC 9112 3.2 */
    rq->close = !keep_alive;
    return head_end + 2 - p;
}
