/*
 * Fuzz target for examples/resp.c, the RESP2 parser of weft-kv (libFuzzer's entry point; tests/run
 * builds it with clang -fsanitize=fuzzer,address,undefined and runs it for a few seconds, and
 * tests/fuzz/replay.c runs its corpus in every build).
 *
 * The input is a byte stream a client might send. It is parsed twice: all at once, and in pieces whose
 * sizes come from the input itself, with the unparsed bytes moved to a fresh allocation at every piece
 * (as a connection's buffer grows or is compacted), so a parser that kept a pointer across calls reads
 * freed memory and ASan says so. Both must see the same commands, with the same arguments, and end the
 * same way (more bytes wanted, or the same protocol error). Every argument must lie inside the bytes
 * given, every command must be no longer than them, and a command written back with resp.c's writers
 * must parse to the same arguments. Any difference aborts, which libFuzzer reports as a crash.
 */
#include "resp.h"

#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small limits, so that short inputs reach the length and count checks. */
static const resp_limits limits = {.max_bulk = 1000, .max_multibulk = 100};

/* What one parse of a stream saw: each command's arguments, encoded as length-prefixed bytes, and how
 * it ended. */
struct seen {
    unsigned char *log;
    size_t len, cap;
    int end;               /* RESP_MORE, RESP_ERROR or RESP_NOMEM */
    char error[64];        /* RESP_ERROR's message */
};

static void ended(struct seen *s, const resp_parser *p, int r)
{
    s->end = r;
    if (r == RESP_ERROR)
        snprintf(s->error, sizeof s->error, "%s", p->error);
}

static void note(struct seen *s, const void *bytes, size_t n)
{
    if (s->cap - s->len < n) {
        s->cap = (s->cap + n) * 2;
        s->log = realloc(s->log, s->cap);
        CHECK(s->log != NULL);
    }
    memcpy(s->log + s->len, bytes, n);
    s->len += n;
}

/* A command the parser returned: checked, then logged. data[0..len) are the bytes it was given. */
static void command(struct seen *s, const resp_parser *p, const char *data, size_t len)
{
    CHECK(p->pos > 0 && p->pos <= len);
    size_t total = 0;
    for (size_t i = 0; i < p->argc; i++) {
        const resp_arg *a = &p->argv[i];
        if (!p->is_inline)
            CHECK(a->ptr >= data && a->ptr + a->len <= data + p->pos);
        total += a->len;
    }
    CHECK(total <= p->pos);
    note(s, &p->argc, sizeof p->argc);
    for (size_t i = 0; i < p->argc; i++) {
        note(s, &p->argv[i].len, sizeof p->argv[i].len);
        note(s, p->argv[i].ptr, p->argv[i].len);
    }
}

/* Writes the command back as a multibulk with the reply writers and parses it: the same arguments. An
 * inline command is bounded by its line's length only (as Redis's), so one with more arguments, or
 * longer ones, than a multibulk may have does not come back: that is the limits working. */
static void round_trip(const resp_parser *p)
{
    if (p->argc == 0 || p->argc > (size_t)limits.max_multibulk)
        return;
    for (size_t i = 0; i < p->argc; i++)
        if (p->argv[i].len > (size_t)limits.max_bulk)
            return;
    resp_out out = {0};
    resp_out_array(&out, (long long)p->argc);
    for (size_t i = 0; i < p->argc; i++)
        resp_out_bulk(&out, p->argv[i].ptr, p->argv[i].len);
    CHECK(!out.failed);
    resp_parser again;
    resp_parser_init(&again, &limits);
    CHECK(resp_parse(&again, out.buf, out.len) == RESP_COMMAND);
    CHECK(again.pos == out.len && again.argc == p->argc);
    for (size_t i = 0; i < p->argc; i++)
        CHECK(again.argv[i].len == p->argv[i].len && memcmp(again.argv[i].ptr, p->argv[i].ptr, p->argv[i].len) == 0);
    resp_parser_free(&again);
    resp_out_free(&out);
}

/* The whole stream in one buffer. */
static void parse_at_once(const uint8_t *data, size_t size, struct seen *s)
{
    resp_parser p;
    resp_parser_init(&p, &limits);
    size_t at = 0;
    for (;;) {
        int r = resp_parse(&p, (const char *)data + at, size - at);
        if (r != RESP_COMMAND) {
            ended(s, &p, r);
            if (r == RESP_MORE)
                CHECK(p.need > size - at);
            break;
        }
        command(s, &p, (const char *)data + at, size - at);
        round_trip(&p);
        at += p.pos;
        resp_parser_next(&p);
    }
    resp_parser_free(&p);
}

/* The same stream arriving in pieces, the unparsed bytes moved to a new allocation each time. */
static void parse_in_pieces(const uint8_t *data, size_t size, struct seen *s)
{
    resp_parser p;
    resp_parser_init(&p, &limits);
    char *buf = NULL;
    size_t held = 0, fed = 0, piece = 0;
    for (;;) {
        int r = resp_parse(&p, buf, held);
        if (r == RESP_COMMAND) {
            command(s, &p, buf, held);
            memmove(buf, buf + p.pos, held - p.pos);
            held -= p.pos;
            resp_parser_next(&p);
            continue;
        }
        if (r != RESP_MORE || fed == size) {
            ended(s, &p, r);
            break;
        }
        /* The next piece: 1 to 64 bytes, its size taken from the input. */
        size_t n = 1 + data[piece++ % size] % 64;
        if (n > size - fed)
            n = size - fed;
        char *grown = malloc(held + n + 1);
        CHECK(grown != NULL);
        if (held)
            memcpy(grown, buf, held);
        memcpy(grown + held, data + fed, n);
        free(buf);
        buf = grown;
        held += n;
        fed += n;
    }
    free(buf);
    resp_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct seen whole = {0}, pieces = {0};
    parse_at_once(data, size, &whole);
    parse_in_pieces(data, size, &pieces);
    CHECK(whole.len == pieces.len && (whole.len == 0 || memcmp(whole.log, pieces.log, whole.len) == 0));
    CHECK(whole.end == pieces.end && strcmp(whole.error, pieces.error) == 0);
    free(whole.log);
    free(pieces.log);
    return 0;
}
