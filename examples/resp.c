/*
 * resp — RESP2 requests parsed and replies written as Redis 7.0 does (src/networking.c,
 * src/sds.c's sdssplitargs, src/util.c's string2ll). resp.h says how the parser is driven.
 */
#include "resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- numbers -------------------------------------------------------------------------------------- */

bool resp_string2ll(const char *s, size_t len, long long *value)
{
    /* Redis's LONG_STR_SIZE: 20 digits and a sign are the most a long long needs. */
    if (len == 0 || len >= 21)
        return false;
    if (len == 1 && s[0] == '0') {
        *value = 0;
        return true;
    }
    size_t i = 0;
    bool negative = false;
    if (s[0] == '-') {
        negative = true;
        if (++i == len)
            return false;
    }
    if (s[i] < '1' || s[i] > '9')
        return false;
    unsigned long long v = (unsigned long long)(s[i++] - '0');
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (~0ull - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    if (negative) {
        if (v > (unsigned long long)INT64_MAX + 1)
            return false;
        *value = v == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)INT64_MAX)
            return false;
        *value = (long long)v;
    }
    return true;
}

/* ---- the parser ----------------------------------------------------------------------------------- */

void resp_parser_init(resp_parser *p, const resp_limits *limits)
{
    memset(p, 0, sizeof *p);
    p->limits = limits;
    p->bulk_len = -1;
}

void resp_parser_free(resp_parser *p)
{
    free(p->argv);
    free(p->scratch);
    p->argv = NULL;
    p->scratch = NULL;
    p->argv_cap = p->scratch_cap = 0;
}

void resp_parser_next(resp_parser *p)
{
    /* A command of a million arguments or a 1 MiB inline line should not pin its tables for the life
     * of the connection; the few hundred bytes of ordinary ones are kept. */
    if (p->argv_cap > 1024) {
        free(p->argv);
        p->argv = NULL;
        p->argv_cap = 0;
    }
    if (p->scratch_cap > 16384) {
        free(p->scratch);
        p->scratch = NULL;
        p->scratch_cap = 0;
    }
    p->argc = 0;
    p->pos = 0;
    p->need = 0;
    p->error = NULL;
    p->started = false;
    p->is_inline = false;
    p->args_left = 0;
    p->bulk_len = -1;
}

/*
 * Where Redis's strchr(buffer + from, c) lands: the index of the first c in data[from..len), or -1 when
 * there is none or a NUL comes first (Redis's query buffer is a C string, and strchr stops at NUL).
 */
static long find_line_end(const char *data, size_t from, size_t len, char c)
{
    const char *start = data + from;
    const char *hit = memchr(start, c, len - from);
    size_t span = hit ? (size_t)(hit - start) : len - from;
    if (memchr(start, '\0', span))
        return -1;
    return hit ? (long)(hit - data) : -1;
}

static int fail(resp_parser *p, const char *message)
{
    p->error = message;
    return RESP_ERROR;
}

static int more(resp_parser *p, size_t need)
{
    p->need = need;
    return RESP_MORE;
}

/* Appends an argument at offset off (in data, or in scratch for inline) of len bytes. */
static bool push_arg(resp_parser *p, size_t off, size_t len)
{
    if (p->argc == p->argv_cap) {
        size_t cap = p->argv_cap ? p->argv_cap * 2 : 8;
        resp_arg *argv = realloc(p->argv, cap * sizeof *argv);
        if (!argv)
            return false;
        p->argv = argv;
        p->argv_cap = cap;
    }
    p->argv[p->argc].ptr = (const char *)(uintptr_t)off;
    p->argv[p->argc].len = len;
    p->argc++;
    return true;
}

/* The command is whole: its arguments' offsets become pointers into base. */
static int complete(resp_parser *p, const char *base)
{
    for (size_t i = 0; i < p->argc; i++)
        p->argv[i].ptr = base + (uintptr_t)p->argv[i].ptr;
    return RESP_COMMAND;
}

/* isspace in the C locale, which sdssplitargs runs in. */
static bool is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex_value(unsigned char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)((c | 0x20) - 'a' + 10);
}

/*
 * sdssplitargs over line[0..n) (which holds no NUL): arguments separated by blanks, "double quotes"
 * with \n \r \t \b \a \xHH and \<any> escapes, 'single quotes' with \' only; a closing quote must be
 * followed by a blank or the end. The unescaped arguments go to p->scratch. False: unbalanced quotes.
 */
static int split_inline(resp_parser *p, const char *line, size_t n)
{
    if (p->scratch_cap < n) {
        char *scratch = realloc(p->scratch, n);
        if (!scratch)
            return RESP_NOMEM;
        p->scratch = scratch;
        p->scratch_cap = n;
    }
    char *out = p->scratch;
    size_t used = 0, i = 0;
#define AT(k) ((k) < n ? (unsigned char)line[(k)] : 0)
    for (;;) {
        while (AT(i) && is_space(AT(i)))
            i++;
        if (!AT(i))
            return RESP_COMMAND;
        unsigned char quote = 0; /* '"' or '\'' inside quotes */
        bool done = false;
        size_t start = used;
        while (!done) {
            unsigned char c = AT(i);
            if (quote == '"' && c == '\\' && AT(i + 1) == 'x' && is_hex(AT(i + 2)) && is_hex(AT(i + 3))) {
                out[used++] = (char)(hex_value(AT(i + 2)) * 16 + hex_value(AT(i + 3)));
                i += 3;
            } else if (quote == '"' && c == '\\' && AT(i + 1)) {
                i++;
                switch (AT(i)) {
                case 'n': out[used++] = '\n'; break;
                case 'r': out[used++] = '\r'; break;
                case 't': out[used++] = '\t'; break;
                case 'b': out[used++] = '\b'; break;
                case 'a': out[used++] = '\a'; break;
                default: out[used++] = (char)AT(i); break;
                }
            } else if (quote == '\'' && c == '\\' && AT(i + 1) == '\'') {
                i++;
                out[used++] = '\'';
            } else if (quote && c == quote) {
                /* A closing quote must be followed by a blank or the end. */
                if (AT(i + 1) && !is_space(AT(i + 1)))
                    return RESP_ERROR;
                done = true;
            } else if (quote) {
                if (!c)
                    return RESP_ERROR; /* unterminated quotes */
                out[used++] = (char)c;
            } else {
                switch (c) {
                case ' ': case '\n': case '\r': case '\t': case '\0': done = true; break;
                case '"': case '\'': quote = c; break;
                default: out[used++] = (char)c; break;
                }
            }
            if (AT(i))
                i++;
        }
        if (!push_arg(p, start, used - start))
            return RESP_NOMEM;
    }
#undef AT
}

/* processInlineBuffer: one line, ended by LF or CRLF. */
static int parse_inline(resp_parser *p, const char *data, size_t len)
{
    long newline = find_line_end(data, 0, len, '\n');
    if (newline < 0) {
        if (len > RESP_INLINE_MAX)
            return fail(p, "Protocol error: too big inline request");
        return more(p, len + 1);
    }
    size_t line_len = (size_t)newline;
    if (line_len > 0 && data[line_len - 1] == '\r')
        line_len--;
    int r = split_inline(p, data, line_len);
    if (r == RESP_ERROR) {
        p->argc = 0;
        return fail(p, "Protocol error: unbalanced quotes in request");
    }
    if (r == RESP_NOMEM)
        return RESP_NOMEM;
    p->pos = (size_t)newline + 1;
    return complete(p, p->scratch);
}

/*
 * A header line ("*N" or "$N") starting at p->pos: the index of its CR, or -1 after setting the result
 * (RESP_MORE, or RESP_ERROR with too_big once more than RESP_INLINE_MAX bytes hold no CR) in *result.
 * As in Redis, the byte after the CR must have arrived but is not looked at.
 */
static long header_line(resp_parser *p, const char *data, size_t len, const char *too_big, int *result)
{
    long cr = find_line_end(data, p->pos, len, '\r');
    if (cr < 0) {
        *result = len - p->pos > RESP_INLINE_MAX ? fail(p, too_big) : more(p, len + 1);
        return -1;
    }
    if ((size_t)cr + 1 >= len) {
        *result = more(p, len + 1);
        return -1;
    }
    return cr;
}

/* processMultibulkBuffer: "*N\r\n" then N times "$L\r\n" and L bytes and two more. */
static int parse_multibulk(resp_parser *p, const char *data, size_t len)
{
    int result;
    long long ll;
    if (p->args_left == 0) {
        long cr = header_line(p, data, len, "Protocol error: too big mbulk count string", &result);
        if (cr < 0)
            return result;
        if (!resp_string2ll(data + 1, (size_t)cr - 1, &ll) || ll > p->limits->max_multibulk)
            return fail(p, "Protocol error: invalid multibulk length");
        p->pos = (size_t)cr + 2;
        if (ll <= 0)
            return complete(p, data); /* "*0", "*-1": nothing to run */
        p->args_left = ll;
        p->bulk_len = -1;
    }
    while (p->args_left) {
        if (p->bulk_len < 0) {
            long cr = header_line(p, data, len, "Protocol error: too big bulk count string", &result);
            if (cr < 0)
                return result;
            unsigned char got = (unsigned char)data[p->pos];
            if (got != '$') {
                /* addReplyErrorFormat turns a CR or LF quoted in an error into a space. */
                snprintf(p->error_buf, sizeof p->error_buf, "Protocol error: expected '$', got '%c'",
                         got == '\r' || got == '\n' ? ' ' : got);
                return fail(p, p->error_buf);
            }
            if (!resp_string2ll(data + p->pos + 1, (size_t)cr - p->pos - 1, &ll) || ll < 0 ||
                (uint64_t)ll > p->limits->max_bulk)
                return fail(p, "Protocol error: invalid bulk length");
            p->pos = (size_t)cr + 2;
            p->bulk_len = ll;
        }
        size_t whole = (size_t)p->bulk_len + 2;
        if (len - p->pos < whole)
            return more(p, p->pos + whole);
        if (!push_arg(p, p->pos, (size_t)p->bulk_len))
            return RESP_NOMEM;
        p->pos += whole;
        p->bulk_len = -1;
        p->args_left--;
    }
    return complete(p, data);
}

int resp_parse(resp_parser *p, const char *data, size_t len)
{
    if (!p->started) {
        /* processInputBuffer reads the request type from the command's first byte. */
        if (len == 0)
            return more(p, 1);
        p->started = true;
        p->is_inline = data[0] != '*';
    }
    return p->is_inline ? parse_inline(p, data, len) : parse_multibulk(p, data, len);
}

/* ---- replies -------------------------------------------------------------------------------------- */

void resp_out_free(resp_out *o)
{
    free(o->buf);
    o->buf = NULL;
    o->len = o->cap = 0;
}

char *resp_out_reserve(resp_out *o, size_t n)
{
    if (o->failed)
        return NULL;
    if (o->cap - o->len < n) {
        size_t cap = o->cap ? o->cap * 2 : 4096;
        if (cap < o->len + n)
            cap = o->len + n;
        char *buf = realloc(o->buf, cap);
        if (!buf) {
            o->failed = true;
            return NULL;
        }
        o->buf = buf;
        o->cap = cap;
    }
    return o->buf + o->len;
}

void resp_out_raw(resp_out *o, const void *bytes, size_t n)
{
    char *at = resp_out_reserve(o, n);
    if (at) {
        memcpy(at, bytes, n);
        o->len += n;
    }
}

/* v in decimal at the end of buf[0..21); returns where it starts. */
static char *format_ll(char buf[static 21], long long v)
{
    char *at = buf + 21;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        *--at = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--at = '-';
    return at;
}

/* A type byte, a number and CRLF: ":42", "$5", "*3". */
static void prefixed_number(resp_out *o, char type, long long v)
{
    char digits[21];
    char *start = format_ll(digits, v);
    size_t n = (size_t)(digits + sizeof digits - start);
    char *at = resp_out_reserve(o, n + 3);
    if (!at)
        return;
    at[0] = type;
    memcpy(at + 1, start, n);
    at[n + 1] = '\r';
    at[n + 2] = '\n';
    o->len += n + 3;
}

void resp_out_status(resp_out *o, const char *text)
{
    size_t n = strlen(text);
    char *at = resp_out_reserve(o, n + 3);
    if (!at)
        return;
    at[0] = '+';
    memcpy(at + 1, text, n);
    memcpy(at + 1 + n, "\r\n", 2);
    o->len += n + 3;
}

void resp_out_int(resp_out *o, long long v)
{
    prefixed_number(o, ':', v);
}

void resp_out_array(resp_out *o, long long n)
{
    prefixed_number(o, '*', n);
}

void resp_out_nil(resp_out *o)
{
    resp_out_raw(o, "$-1\r\n", 5);
}

void resp_out_bulk(resp_out *o, const void *bytes, size_t n)
{
    /* Reserved whole first, so that a failed reserve leaves no half reply behind. */
    if (!resp_out_reserve(o, n + 26))
        return;
    prefixed_number(o, '$', (long long)n);
    memcpy(o->buf + o->len, bytes, n);
    memcpy(o->buf + o->len + n, "\r\n", 2);
    o->len += n + 2;
}

void resp_out_bulk_str(resp_out *o, const char *text)
{
    resp_out_bulk(o, text, strlen(text));
}

void resp_out_error(resp_out *o, const char *text)
{
    size_t n = strlen(text);
    if (!resp_out_reserve(o, n + 7))
        return;
    if (text[0] != '-')
        resp_out_raw(o, "-ERR ", 5);
    resp_out_raw(o, text, n);
    resp_out_raw(o, "\r\n", 2);
}

void resp_out_errorf(resp_out *o, const char *fmt, ...)
{
    char small[512], *text = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->failed = true;
        return;
    }
    if ((size_t)n >= sizeof small) {
        text = malloc((size_t)n + 1);
        if (!text) {
            o->failed = true;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    /* sdstrim(s, "\r\n") then sdsmapchars(s, "\r\n", "  "). */
    size_t start = 0, end = (size_t)n;
    while (start < end && (text[start] == '\r' || text[start] == '\n'))
        start++;
    while (end > start && (text[end - 1] == '\r' || text[end - 1] == '\n'))
        end--;
    for (size_t i = start; i < end; i++)
        if (text[i] == '\r' || text[i] == '\n')
            text[i] = ' ';
    if (resp_out_reserve(o, end - start + 7)) {
        if (end == start || text[start] != '-')
            resp_out_raw(o, "-ERR ", 5);
        resp_out_raw(o, text + start, end - start);
        resp_out_raw(o, "\r\n", 2);
    }
    if (text != small)
        free(text);
}
