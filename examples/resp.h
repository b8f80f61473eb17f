/*
 * resp — the Redis protocol (RESP2) as Redis 7 speaks it: a parser of requests (multibulk, and the
 * inline commands telnet users type) and the writers of replies. No weft in it: the server feeds it
 * bytes, and the fuzz target in tests/fuzz feeds it anything.
 *
 * The parser works in place on the connection's bytes, from the start of the command being read:
 *
 *     resp_parser p;
 *     resp_parser_init(&p, &limits);
 *     for (;;) {
 *         int r = resp_parse(&p, data, len);     data: the received bytes from the command's start
 *         if (r == RESP_COMMAND) {               p.argv[0..p.argc) point into data (or, for an inline
 *             run(p.argc, p.argv);               command, into the parser's own copy)
 *             consume(p.pos);                    the command's bytes are done with
 *             resp_parser_next(&p);
 *         } else if (r == RESP_MORE) {
 *             receive more, keeping data[0..len) and making room for p.need bytes in all
 *         } else {
 *             RESP_ERROR: reply "-ERR " p.error and close, as Redis does; RESP_NOMEM: close
 *         }
 *     }
 *
 * Between calls the bytes may move (a buffer grows, or is compacted): the parser keeps offsets, never
 * pointers, so it resumes where it stopped without reading a byte twice. A command of argc 0 ("*0",
 * "*-1", an empty inline line) is returned too, for the caller to skip, as Redis skips it.
 *
 * Every quirk of Redis 7.0's networking.c is kept, because replies must be byte-identical to
 * Redis's: a header line is found with strchr (so a NUL byte before its CR hides it), the two bytes
 * after a bulk are skipped unread, "*0" and "*-5" are empty commands, a count is parsed by
 * string2ll (no sign "+", no leading zero), and inline arguments are split by sdssplitargs.
 */
#ifndef WEFT_EXAMPLE_RESP_H
#define WEFT_EXAMPLE_RESP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Redis's own limits, which are also its defaults. */
#define RESP_INLINE_MAX (64 * 1024)                 /* PROTO_INLINE_MAX_SIZE: an inline line, a header line */
#define RESP_DEFAULT_MAX_BULK (512ull * 1024 * 1024) /* proto-max-bulk-len */
#define RESP_DEFAULT_MAX_MULTIBULK 2147483647ll      /* INT_MAX: the largest count Redis 7 takes */

typedef struct resp_limits {
    uint64_t max_bulk;      /* the longest bulk argument: longer is "invalid bulk length" */
    int64_t max_multibulk;  /* the most arguments: more is "invalid multibulk length" */
} resp_limits;

/* An argument: len bytes at ptr, binary (NULs included). */
typedef struct resp_arg {
    const char *ptr;
    size_t len;
} resp_arg;

enum {
    RESP_MORE = 0,     /* the command is not complete: receive more (p->need says how much) */
    RESP_COMMAND = 1,  /* a command: p->argc arguments in p->argv, p->pos bytes long */
    RESP_ERROR = -1,   /* a protocol error: reply "-ERR " p->error and close the connection */
    RESP_NOMEM = -2,   /* the argument table could not grow: close the connection */
};

typedef struct resp_parser {
    const resp_limits *limits;
    /* The command: set by RESP_COMMAND. */
    size_t argc;
    resp_arg *argv;     /* argc entries; while parsing, ptr holds an offset */
    size_t pos;         /* bytes of the command parsed (all of it once RESP_COMMAND) */
    size_t need;        /* after RESP_MORE: bytes (from the command's start) to buffer before it can go on */
    const char *error;  /* after RESP_ERROR: Redis's message, without "-ERR " */
    /* Where parsing stands. */
    bool started;       /* the first byte was seen: the request type is known */
    bool is_inline;
    int64_t args_left;  /* multibulk: arguments still to read (0: the count line is not read yet) */
    int64_t bulk_len;   /* multibulk: the length of the argument being read, -1 before its header */
    size_t argv_cap;
    char *scratch;      /* an inline command's arguments, unescaped */
    size_t scratch_cap;
    char error_buf[64];
} resp_parser;

void resp_parser_init(resp_parser *p, const resp_limits *limits);
/* Frees what the parser holds. */
void resp_parser_free(resp_parser *p);
/* Parses on from where the last call stopped; data[0..len) are the bytes from the command's start. */
int resp_parse(resp_parser *p, const char *data, size_t len);
/* Makes the parser ready for the next command (after RESP_COMMAND). Lets go of large tables. */
void resp_parser_next(resp_parser *p);

/*
 * Redis's string2ll: s[0..len) as a long long, strictly: an optional '-', then no leading zero (but
 * "0" itself), only digits, no overflow, at most 20 characters. Returns false otherwise. The protocol's
 * counts and lengths and every integer argument and stored number are read by it.
 */
bool resp_string2ll(const char *s, size_t len, long long *value);

/* ---- replies -------------------------------------------------------------------------------------- */

/*
 * A connection's replies, appended until they are sent. An append that cannot get memory sets failed
 * and appends nothing more: the connection cannot be answered correctly and should be closed.
 */
typedef struct resp_out {
    char *buf;
    size_t len, cap;
    bool failed;
} resp_out;

void resp_out_free(resp_out *o);
/* Room for n more bytes at o->buf + o->len, or NULL (failed). */
char *resp_out_reserve(resp_out *o, size_t n);
void resp_out_raw(resp_out *o, const void *bytes, size_t n);
void resp_out_status(resp_out *o, const char *text);           /* +text */
void resp_out_int(resp_out *o, long long v);                   /* :v */
void resp_out_bulk(resp_out *o, const void *bytes, size_t n);  /* $n bytes */
void resp_out_bulk_str(resp_out *o, const char *text);
void resp_out_nil(resp_out *o);                                /* $-1 */
void resp_out_array(resp_out *o, long long n);                 /* *n */
/* Redis's addReplyError: "-ERR " text, unless text starts with '-' (its own code, "-NOPROTO ..."). */
void resp_out_error(resp_out *o, const char *text);
/* Redis's addReplyErrorFormat: the formatted text with CR and LF trimmed from its ends and replaced
 * by spaces inside, so that no argument quoted in it can break the protocol. */
void resp_out_errorf(resp_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* WEFT_EXAMPLE_RESP_H */
