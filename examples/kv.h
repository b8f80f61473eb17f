/*
 * kv — what weft-kv's commands (kv_commands.c) and its server (kv_server.c) share: the command table,
 * a command call, the connection's state commands see, and the server's settings and facts.
 *
 * A command runs on one shard (the loop that owns its key), or on several. Each command says how in
 * its route: LOCAL commands touch no key and run where the connection is; a KEY command runs on the
 * shard of argv[1]; a KEYS command (DEL, EXISTS, MGET, MSET) runs key_op for each of its keys on that
 * key's shard and then keys_reply with the results in key order; an ALL command (DBSIZE, FLUSHALL,
 * FLUSHDB, INFO) runs shard_op on every shard and then all_reply. The commands know nothing of loops:
 * kv_server.c decides where each piece runs, and locks the shards a multi-shard command touches so that
 * it is atomic, as it is in Redis.
 */
#ifndef WEFT_EXAMPLE_KV_H
#define WEFT_EXAMPLE_KV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "kv_store.h"
#include "resp.h"

/* The Redis whose replies weft-kv reproduces byte for byte (the tests hold them). HELLO and INFO say
 * it, as clients read it to decide what a server understands. */
#define KV_REDIS_VERSION "7.0.15"

/* The settings, from the command line (kv_server.c); CONFIG GET reports them. */
typedef struct kv_config {
    const char *host;
    unsigned port;
    unsigned threads;
    unsigned long maxclients;               /* connections past it get Redis's error and are closed */
    unsigned long long query_buffer_limit;  /* bytes one command may occupy (client-query-buffer-limit) */
    resp_limits limits;                     /* proto-max-bulk-len and the multibulk count */
} kv_config;

extern kv_config kv_conf;

/* Facts about the running server that INFO and HELLO report (kv_server.c fills them). */
typedef struct kv_server_info {
    _Atomic(const char *) backend; /* "io_uring" or "epoll" (each loop stores it as it starts) */
    const char *weft_version;
    unsigned loops;
    long long started_ms;          /* CLOCK_MONOTONIC */
    atomic_ulong clients;          /* connected now, over every loop */
    atomic_ullong next_client_id;
} kv_server_info;

extern kv_server_info kv_info;

/* A loop's counters; each loop writes only its own. */
typedef struct kv_loop_stats {
    uint64_t connections_received;
    uint64_t commands_processed;
    uint64_t rejected_connections; /* past maxclients */
} kv_loop_stats;

/* The calling loop's counters (kv_server.c). */
kv_loop_stats *kv_loop_stats_here(void);

/* A connection's state that commands read and change. */
typedef struct kv_client {
    unsigned long long id;
    char *name;                    /* CLIENT SETNAME; NULL for none */
    bool close_after;              /* QUIT: close once the replies so far are sent */
} kv_client;

/* What one key's part of a KEYS command found: a count, or a value (ptr NULL: none), or -ENOMEM in n. */
typedef struct kv_result {
    const char *ptr;
    size_t len;
    long long n;
} kv_result;

/* What INFO gathers from every shard and loop. */
typedef struct kv_info_totals {
    unsigned long long keys, expires, expired_keys, hits, misses;
    unsigned long long connections_received, commands_processed, rejected_connections;
    long double ttl_sum;           /* avg_ttl times expires, summed over shards */
} kv_info_totals;

/* What an ALL command gathers from the shards, one at a time. */
typedef union kv_totals {
    long long n;
    kv_info_totals info;
} kv_totals;

typedef struct kv_command kv_command;

/* One command being run. */
typedef struct kv_call {
    const kv_command *cmd;
    size_t argc;
    const resp_arg *argv;
    const uint64_t *hashes;        /* hashes[i]: kv_hash of argv[i], for every key argument i */
    kv_client *client;
    resp_out *out;                 /* where the reply goes */
    int64_t now_ms;                /* Unix time in ms, read on the shard just before the command runs */
} kv_call;

enum kv_route { KV_LOCAL, KV_KEY, KV_KEYS, KV_ALL };

/* A key specification as COMMAND INFO gives it (Redis 7: begin_search index, find_keys range). */
typedef struct kv_keyspec {
    const char *notes;             /* or NULL */
    const char *flags;             /* space-separated: "RO access" */
    int index, lastkey, keystep, limit;
} kv_keyspec;

struct kv_command {
    const char *name;              /* lower case; a subcommand's is "container|sub", its fullname */
    int arity;                     /* N: exactly N arguments with the name; -N: at least N */
    enum kv_route route;
    bool (*check)(kv_call *c);     /* before routing: argument checks that need no key (may reply) */
    void (*run)(kv_call *c, kv_store *s);                              /* LOCAL (s NULL), KEY */
    void (*key_op)(kv_call *c, kv_store *s, size_t arg, kv_result *r); /* KEYS: the key at argv[arg] */
    void (*keys_reply)(kv_call *c, const kv_result *results, size_t keys);
    void (*shard_op)(kv_call *c, kv_store *s, kv_totals *t);           /* ALL: one shard */
    void (*all_reply)(kv_call *c, const kv_totals *t);
    /* COMMAND INFO, in Redis 7.0's words. */
    const char *flags, *acl, *tips; /* space-separated */
    int first_key, last_key, key_step;
    const kv_keyspec *keyspec;
    const kv_command *subcommands;  /* a container's (CLIENT, CONFIG, COMMAND), ended by a NULL name */
    const char *const *help;        /* a container's HELP lines, ended by NULL */
};

/*
 * The command argv names, with its arity checked: or NULL after writing the error Redis gives (an
 * unknown command or subcommand, a wrong number of arguments) to out.
 */
const kv_command *kv_command_find(const resp_arg *argv, size_t argc, resp_out *out);

/* Whether argv[0] is "POST" or "Host:", what Redis takes for an HTTP request aimed at it: such a
 * connection is closed without a reply (Redis's securityWarningCommand). */
bool kv_is_cross_protocol(const resp_arg *name);

/* The arguments of a KEYS command that are keys: first, then every step-th up to last (inclusive). */
void kv_key_range(const kv_call *c, size_t *first, size_t *last, size_t *step);

/* The command tables: the keyspace's (kv_keyspace.c), the connection's and server's (kv_connection.c). */
extern const kv_command kv_keyspace_commands[];
extern const kv_command kv_connection_commands[];

/* What commands share (kv_commands.c). */
extern const char kv_err_not_integer[], kv_err_syntax[], kv_err_nomem[];
/* Whether an argument is the option word (lower case), read as Redis reads options: ignoring case, and
 * as a C string, up to its first NUL ("nx\0..." is NX). */
bool kv_option_is(const resp_arg *a, const char *word);
/* argv[i] as a long long (resp_string2ll), or false after replying Redis's error. */
bool kv_integer_arg(kv_call *c, size_t i, long long *v);
/* "wrong number of arguments for '<fullname>' command". */
void kv_arity_error(kv_call *c);
/* A container's HELP (CLIENT HELP, CONFIG HELP, COMMAND HELP), as Redis's addReplyHelp lays it out. */
void kv_cmd_help(kv_call *c, kv_store *s);

#endif /* WEFT_EXAMPLE_KV_H */
