/*
 * kv_connection — the commands about the connection and the server: PING, ECHO, SELECT, QUIT, HELLO,
 * CLIENT (SETNAME, GETNAME, ID), CONFIG GET and INFO. Replies are Redis 7.0's (src/server.c,
 * networking.c, config.c); INFO keeps Redis's layout with the fields weft-kv has.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strndup, open_memstream */
#endif
#include "kv.h"

#include <ctype.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define ARG(c, i) (c)->argv[(i)].ptr, (c)->argv[(i)].len

/* ---- the connection -------------------------------------------------------------------------------- */

static void cmd_ping(kv_call *c, kv_store *s)
{
    (void)s;
    if (c->argc > 2)
        kv_arity_error(c);
    else if (c->argc == 2)
        resp_out_bulk(c->out, ARG(c, 1));
    else
        resp_out_raw(c->out, "+PONG\r\n", 7);
}

static void cmd_echo(kv_call *c, kv_store *s)
{
    (void)s;
    resp_out_bulk(c->out, ARG(c, 1));
}

/* SELECT: weft-kv keeps one database, as Redis does with "databases 1" (getIntFromObjectOrReply). */
static void cmd_select(kv_call *c, kv_store *s)
{
    (void)s;
    long long id;
    if (!kv_integer_arg(c, 1, &id))
        return;
    if (id < INT_MIN || id > INT_MAX)
        resp_out_errorf(c->out, "value is out of range, value must between %d and %d", INT_MIN, INT_MAX);
    else if (id != 0)
        resp_out_error(c->out, "DB index is out of range");
    else
        resp_out_raw(c->out, "+OK\r\n", 5);
}

static void cmd_quit(kv_call *c, kv_store *s)
{
    (void)s;
    resp_out_raw(c->out, "+OK\r\n", 5);
    c->client->close_after = true;
}

/* clientSetName: an empty name removes it; any byte outside '!'..'~' is refused. False after replying. */
static bool set_name(kv_call *c, size_t i)
{
    const resp_arg *name = &c->argv[i];
    for (size_t j = 0; j < name->len; j++)
        if (name->ptr[j] < '!' || name->ptr[j] > '~') {
            resp_out_error(c->out, "Client names cannot contain spaces, newlines or special characters.");
            return false;
        }
    char *copy = NULL;
    if (name->len) {
        copy = strndup(name->ptr, name->len);
        if (!copy) {
            resp_out_error(c->out, kv_err_nomem);
            return false;
        }
    }
    free(c->client->name);
    c->client->name = copy;
    return true;
}

/* HELLO [protover [AUTH user pass] [SETNAME name]]: weft-kv speaks RESP2, and answers 3 as Redis answers
 * a version it does not know. With no password set, Redis's "default" user takes any password. */
static void cmd_hello(kv_call *c, kv_store *s)
{
    (void)s;
    size_t j = 1;
    if (c->argc >= 2) {
        long long version;
        if (!resp_string2ll(ARG(c, 1), &version)) {
            resp_out_error(c->out, "Protocol version is not an integer or out of range");
            return;
        }
        if (version != 2) {
            resp_out_error(c->out, "-NOPROTO unsupported protocol version");
            return;
        }
        j = 2;
    }
    for (; j < c->argc; j++) {
        size_t more = c->argc - 1 - j;
        const resp_arg *opt = &c->argv[j];
        if (kv_option_is(opt, "auth") && more >= 2) {
            if (c->argv[j + 1].len != 7 || memcmp(c->argv[j + 1].ptr, "default", 7) != 0) {
                resp_out_error(c->out, "-WRONGPASS invalid username-password pair or user is disabled.");
                return;
            }
            j += 2;
        } else if (kv_option_is(opt, "setname") && more) {
            if (!set_name(c, ++j))
                return;
        } else {
            resp_out_errorf(c->out, "Syntax error in HELLO option '%.*s'", (int)opt->len, opt->ptr);
            return;
        }
    }
    resp_out_array(c->out, 14);
    resp_out_bulk_str(c->out, "server");
    resp_out_bulk_str(c->out, "redis");
    resp_out_bulk_str(c->out, "version");
    resp_out_bulk_str(c->out, KV_REDIS_VERSION);
    resp_out_bulk_str(c->out, "proto");
    resp_out_int(c->out, 2);
    resp_out_bulk_str(c->out, "id");
    resp_out_int(c->out, (long long)c->client->id);
    resp_out_bulk_str(c->out, "mode");
    resp_out_bulk_str(c->out, "standalone");
    resp_out_bulk_str(c->out, "role");
    resp_out_bulk_str(c->out, "master");
    resp_out_bulk_str(c->out, "modules");
    resp_out_array(c->out, 0);
}

static void cmd_client_setname(kv_call *c, kv_store *s)
{
    (void)s;
    if (set_name(c, 2))
        resp_out_raw(c->out, "+OK\r\n", 5);
}

static void cmd_client_getname(kv_call *c, kv_store *s)
{
    (void)s;
    if (c->client->name)
        resp_out_bulk_str(c->out, c->client->name);
    else
        resp_out_nil(c->out);
}

static void cmd_client_id(kv_call *c, kv_store *s)
{
    (void)s;
    resp_out_int(c->out, (long long)c->client->id);
}

/* ---- configuration --------------------------------------------------------------------------------- */

/* Redis's stringmatchlen with nocase: *, ?, [set], [^set], [a-z] and \ escapes. */
static bool glob_match(const char *pat, size_t plen, const char *str, size_t slen)
{
    while (plen && slen) {
        switch (*pat) {
        case '*':
            while (plen > 1 && pat[1] == '*')
                pat++, plen--;
            if (plen == 1)
                return true;
            for (; slen; str++, slen--)
                if (glob_match(pat + 1, plen - 1, str, slen))
                    return true;
            return false;
        case '?':
            break;
        case '[': {
            pat++, plen--;
            bool negate = plen && *pat == '^', match = false;
            if (negate)
                pat++, plen--;
            for (;;) {
                if (plen >= 2 && *pat == '\\') {
                    pat++, plen--;
                    match |= *pat == *str;
                } else if (plen == 0) {
                    pat--, plen++;
                    break;
                } else if (*pat == ']') {
                    break;
                } else if (plen >= 3 && pat[1] == '-') {
                    int lo = tolower((unsigned char)pat[0]), hi = tolower((unsigned char)pat[2]);
                    int ch = tolower((unsigned char)*str);
                    if (lo > hi) {
                        int t = lo;
                        lo = hi;
                        hi = t;
                    }
                    match |= ch >= lo && ch <= hi;
                    pat += 2, plen -= 2;
                } else {
                    match |= tolower((unsigned char)*pat) == tolower((unsigned char)*str);
                }
                pat++, plen--;
            }
            if (match == negate)
                return false;
            break;
        }
        case '\\':
            if (plen >= 2)
                pat++, plen--;
            /* fall through */
        default:
            if (tolower((unsigned char)*pat) != tolower((unsigned char)*str))
                return false;
            break;
        }
        pat++, plen--;
        str++, slen--;
    }
    while (plen && *pat == '*')
        pat++, plen--;
    return plen == 0 && slen == 0;
}

/* CONFIG GET pattern [pattern ...]: the settings weft-kv has, each once, with their values. As in Redis,
 * a pattern without *, ? or [ names one setting (ignoring case) and the reply repeats it as given. */
static void cmd_config_get(kv_call *c, kv_store *s)
{
    (void)s;
    static const char *const names[] = {"save", "appendonly", "maxclients", "proto-max-bulk-len",
                                        "client-query-buffer-limit", "databases", "port", "hz"};
    enum { NAMES = sizeof names / sizeof names[0] };
    char numbers[4][24];
    snprintf(numbers[0], sizeof numbers[0], "%lu", kv_conf.maxclients);
    snprintf(numbers[1], sizeof numbers[1], "%llu", (unsigned long long)kv_conf.limits.max_bulk);
    snprintf(numbers[2], sizeof numbers[2], "%llu", kv_conf.query_buffer_limit);
    snprintf(numbers[3], sizeof numbers[3], "%u", kv_conf.port);
    const char *values[NAMES] = {"", "no", numbers[0], numbers[1], numbers[2], "1", numbers[3], "10"};
    const resp_arg *named_by[NAMES] = {NULL}; /* the plain name that asked for it; NULL: a pattern matched */
    bool matched[NAMES] = {false};
    long long count = 0;
    for (size_t j = 2; j < c->argc; j++) {
        const resp_arg *p = &c->argv[j];
        size_t len = strnlen(p->ptr, p->len); /* Redis reads it as a C string */
        bool pattern = false;
        for (size_t k = 0; k < len && !pattern; k++)
            pattern = p->ptr[k] == '*' || p->ptr[k] == '?' || p->ptr[k] == '[';
        for (size_t i = 0; i < NAMES; i++) {
            if (matched[i])
                continue;
            bool hit = pattern ? glob_match(p->ptr, len, names[i], strlen(names[i]))
                               : len == strlen(names[i]) && strncasecmp(p->ptr, names[i], len) == 0;
            if (hit) {
                matched[i] = true;
                named_by[i] = pattern ? NULL : p;
                count++;
            }
        }
    }
    resp_out_array(c->out, count * 2);
    for (size_t i = 0; i < NAMES; i++) {
        if (!matched[i])
            continue;
        if (named_by[i])
            resp_out_bulk(c->out, named_by[i]->ptr, strnlen(named_by[i]->ptr, named_by[i]->len));
        else
            resp_out_bulk_str(c->out, names[i]);
        resp_out_bulk_str(c->out, values[i]);
    }
}

/* ---- INFO ------------------------------------------------------------------------------------------ */

static void shard_info(kv_call *c, kv_store *s, kv_totals *t)
{
    kv_info_totals *info = &t->info;
    kv_store_stats *st = kv_store_stats_of(s);
    kv_loop_stats *loop = kv_loop_stats_here();
    size_t expires = kv_store_expires_count(s);
    info->keys += kv_store_count(s);
    info->expires += expires;
    info->ttl_sum += (long double)kv_store_avg_ttl(s, c->now_ms) * (long double)expires;
    info->expired_keys += st->expired_keys;
    info->hits += st->keyspace_hits;
    info->misses += st->keyspace_misses;
    info->connections_received += loop->connections_received;
    info->commands_processed += loop->commands_processed;
    info->rejected_connections += loop->rejected_connections;
}

static unsigned long long rss_bytes(void)
{
    unsigned long long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (unsigned long long)sysconf(_SC_PAGESIZE);
}

/* Starts an INFO section if it is wanted: "# Title", after an empty line unless it is the first. */
static bool section(FILE *f, bool wanted, bool *first, const char *title)
{
    if (!wanted)
        return false;
    fprintf(f, "%s# %s\r\n", *first ? "" : "\r\n", title);
    *first = false;
    return true;
}

/* INFO [section ...]: server, clients, memory, stats and keyspace, in Redis's layout ("# Title" and
 * field:value lines, an empty line between sections); "all", "default" and "everything" name them all,
 * and a name weft-kv does not keep adds nothing, as in Redis. */
static void reply_info(kv_call *c, const kv_totals *t)
{
    static const char *const names[] = {"server", "clients", "memory", "stats", "keyspace"};
    enum { SECTIONS = sizeof names / sizeof names[0] };
    bool want[SECTIONS] = {false};
    for (size_t i = 0; i < SECTIONS; i++)
        want[i] = c->argc == 1;
    for (size_t j = 1; j < c->argc; j++) {
        const resp_arg *a = &c->argv[j];
        bool all = kv_option_is(a, "all") || kv_option_is(a, "default") || kv_option_is(a, "everything");
        for (size_t i = 0; i < SECTIONS; i++)
            want[i] |= all || kv_option_is(a, names[i]);
    }
    const kv_info_totals *info = &t->info;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        resp_out_error(c->out, kv_err_nomem);
        return;
    }
    bool first = true;
    if (section(f, want[0], &first, "Server")) {
        struct utsname u;
        uname(&u);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long up = (now.tv_sec * 1000ll + now.tv_nsec / 1000000 - kv_info.started_ms) / 1000;
        fprintf(f,
                "redis_version:%s\r\nredis_mode:standalone\r\nos:%s %s %s\r\narch_bits:%d\r\n"
                "multiplexing_api:%s\r\nprocess_id:%d\r\ntcp_port:%u\r\nuptime_in_seconds:%lld\r\n"
                "uptime_in_days:%lld\r\nhz:10\r\nweft_version:%s\r\nweft_loops:%u\r\n",
                KV_REDIS_VERSION, u.sysname, u.release, u.machine, (int)(sizeof(void *) * 8), atomic_load(&kv_info.backend),
                (int)getpid(), kv_conf.port, up, up / 86400, kv_info.weft_version, kv_info.loops);
    }
    if (section(f, want[1], &first, "Clients"))
        fprintf(f, "connected_clients:%lu\r\nmaxclients:%lu\r\n", atomic_load(&kv_info.clients), kv_conf.maxclients);
    if (section(f, want[2], &first, "Memory")) {
        struct mallinfo2 m = mallinfo2();
        fprintf(f, "used_memory:%zu\r\nused_memory_rss:%llu\r\n", m.uordblks + m.hblkhd, rss_bytes());
    }
    if (section(f, want[3], &first, "Stats"))
        fprintf(f,
                "total_connections_received:%llu\r\ntotal_commands_processed:%llu\r\nrejected_connections:%llu\r\n"
                "expired_keys:%llu\r\nkeyspace_hits:%llu\r\nkeyspace_misses:%llu\r\n",
                info->connections_received, info->commands_processed, info->rejected_connections,
                info->expired_keys, info->hits, info->misses);
    if (section(f, want[4], &first, "Keyspace") && info->keys)
        fprintf(f, "db0:keys=%llu,expires=%llu,avg_ttl=%lld\r\n", info->keys, info->expires,
                info->expires ? (long long)(info->ttl_sum / (long double)info->expires) : 0ll);
    bool ok = fclose(f) == 0;
    if (ok)
        resp_out_bulk(c->out, text, len);
    else
        resp_out_error(c->out, kv_err_nomem);
    free(text);
}

/* ---- the table ------------------------------------------------------------------------------------- */

static const char *const client_help[] = {
    "GETNAME", "    Return the name of the current connection.",
    "ID", "    Return the ID of the current connection.",
    "SETNAME <name>", "    Assign the name <name> to the current connection.",
    NULL,
};
static const char *const config_help[] = {
    "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
    NULL,
};
#define CONN "noscript loading stale"
static const kv_command client_subcommands[] = {
    {.name = "client|getname", .arity = 2, .route = KV_LOCAL, .run = cmd_client_getname, .flags = CONN,
     .acl = "@slow @connection"},
    {.name = "client|help", .arity = 2, .route = KV_LOCAL, .run = kv_cmd_help, .flags = "loading stale",
     .acl = "@slow @connection"},
    {.name = "client|id", .arity = 2, .route = KV_LOCAL, .run = cmd_client_id, .flags = CONN,
     .acl = "@slow @connection"},
    {.name = "client|setname", .arity = 3, .route = KV_LOCAL, .run = cmd_client_setname, .flags = CONN,
     .acl = "@slow @connection"},
    {.name = NULL},
};
static const kv_command config_subcommands[] = {
    {.name = "config|get", .arity = -3, .route = KV_LOCAL, .run = cmd_config_get,
     .flags = "admin noscript loading stale", .acl = "@admin @slow @dangerous"},
    {.name = "config|help", .arity = 2, .route = KV_LOCAL, .run = kv_cmd_help, .flags = "loading stale", .acl = "@slow"},
    {.name = NULL},
};
const kv_command kv_connection_commands[] = {
    {.name = "ping", .arity = -1, .route = KV_LOCAL, .run = cmd_ping, .flags = "fast", .acl = "@fast @connection",
     .tips = "request_policy:all_shards response_policy:all_succeeded"},
    {.name = "echo", .arity = 2, .route = KV_LOCAL, .run = cmd_echo, .flags = "loading stale fast",
     .acl = "@fast @connection"},
    {.name = "select", .arity = 2, .route = KV_LOCAL, .run = cmd_select, .flags = "loading stale fast",
     .acl = "@fast @connection"},
    {.name = "info", .arity = -1, .route = KV_ALL, .shard_op = shard_info, .all_reply = reply_info,
     .flags = "loading stale", .acl = "@slow @dangerous",
     .tips = "nondeterministic_output request_policy:all_shards response_policy:special"},
    {.name = "client", .arity = -2, .route = KV_LOCAL, .acl = "@slow", .subcommands = client_subcommands,
     .help = client_help},
    {.name = "config", .arity = -2, .route = KV_LOCAL, .acl = "@slow", .subcommands = config_subcommands,
     .help = config_help},
    {.name = "quit", .arity = -1, .route = KV_LOCAL, .run = cmd_quit,
     .flags = "noscript loading stale fast no_auth allow_busy", .acl = "@fast @connection"},
    {.name = "hello", .arity = -1, .route = KV_LOCAL, .run = cmd_hello,
     .flags = "noscript loading stale fast no_auth allow_busy", .acl = "@fast @connection"},
    {.name = NULL},
};
