/*
 * http_request — the request parser of examples/http_server: a request line (method, target, HTTP/1.0
 * or HTTP/1.1), up to HTTP_HEADERS_MAX header lines in a head of at most HTTP_HEAD_MAX bytes,
 * Content-Length (conflicting values refused: request smuggling), Connection, Host (required by 1.1,
 * once), If-Modified-Since and Range kept for the file server, Transfer-Encoding refused as not
 * implemented. No weft in it: the server feeds it bytes, and
 * the fuzz target in tests/fuzz feeds it anything. It never reads outside p[0..n).
 */
#ifndef WEFT_EXAMPLE_HTTP_REQUEST_H
#define WEFT_EXAMPLE_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_HEAD_MAX 8192    /* request line and headers */
#define HTTP_HEADERS_MAX 100

/* A piece of the request head, in the caller's bytes. */
typedef struct http_span {
    const char *p;
    size_t len;
} http_span;

typedef struct http_request {
    bool head_only;              /* HEAD: no body in the response */
    bool get;                    /* GET */
    bool close;                  /* close after the response */
    unsigned long long body;     /* Content-Length: bytes to skip after the head */
    http_span target;            /* the request target, as sent */
    http_span if_modified_since; /* the header's value, {NULL, 0} if absent */
    http_span range;             /* the Range header's value, {NULL, 0} if absent */
} http_request;

enum { HTTP_BAD_REQUEST = -400, HTTP_TOO_LARGE = -431, HTTP_NOT_IMPLEMENTED = -501 };

/*
 * Parses the request head at p[0..n). Returns its length once complete (fills *rq), 0 if more bytes
 * are needed, or HTTP_BAD_REQUEST, HTTP_TOO_LARGE, HTTP_NOT_IMPLEMENTED.
 */
long http_parse_request(const char *p, size_t n, http_request *rq);

#endif /* WEFT_EXAMPLE_HTTP_REQUEST_H */
