/*
 * Fuzz target for examples/http_request.c, the request parser of examples/http_server (libFuzzer's
 * entry point; tests/run builds it with clang -fsanitize=fuzzer,address,undefined and runs it for a
 * few seconds, and tests/fuzz/replay.c runs its corpus in every build).
 *
 * The input is what a client might send, copied to an allocation of exactly its size so that a read
 * past it is caught by ASan. The parser must return a length within the input, 0 (more wanted) or one
 * of its three errors, and must frame requests the same way whatever arrived: the head it found parses
 * alone to the same length and fields, and no shorter prefix of it is a complete request. Requests are
 * taken one after another, as http_server does, bodies skipped. Any violation aborts.
 */
#include "http_request.h"

#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* http_parse_request on an exact copy of p[0..n). */
static long parse_copy(const char *p, size_t n, http_request *rq)
{
    char *copy = malloc(n ? n : 1);
    CHECK(copy != NULL);
    memcpy(copy, p, n);
    long r = http_parse_request(copy, n, rq);
    free(copy);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t at = 0;
    while (at < size) {
        http_request rq;
        long r = parse_copy(p + at, size - at, &rq);
        CHECK(r == 0 || r == HTTP_BAD_REQUEST || r == HTTP_TOO_LARGE || r == HTTP_NOT_IMPLEMENTED ||
              (r > 0 && (size_t)r <= size - at));
        if (r <= 0)
            break;
        http_request alone;
        CHECK(parse_copy(p + at, (size_t)r, &alone) == r && alone.head_only == rq.head_only &&
              alone.close == rq.close && alone.body == rq.body);
        /* A prefix of a head is never a complete request (a few lengths, not all: they cost a parse each). */
        for (size_t m = (size_t)r - 1, step = 1; m > 0; m = m > step ? m - step : 0, step *= 2) {
            http_request part;
            CHECK(parse_copy(p + at, m, &part) <= 0);
        }
        at += (size_t)r;
        if (rq.body >= size - at)
            break;
        at += (size_t)rq.body;
    }
    return 0;
}
