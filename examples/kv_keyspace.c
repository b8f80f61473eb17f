/*
 * kv_keyspace — the commands on keys: strings (GET, SET and its options, GETDEL, INCR and DECR by one or
 * more, APPEND, STRLEN), expiry (EXPIRE, PEXPIRE and their NX/XX/GT/LT, TTL, PTTL, PERSIST), several keys
 * at once (MGET, MSET, DEL, EXISTS) and the whole keyspace (DBSIZE, FLUSHALL, FLUSHDB). Each runs on one
 * shard's store; kv.h says how a command over several shards is put together. Replies are Redis 7.0's
 * (src/t_string.c, db.c, expire.c), errors and their order included.
 */
#include "kv.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define ARG(c, i) (c)->argv[(i)].ptr, (c)->argv[(i)].len
#define KEY(c, i) ARG(c, i), (c)->hashes[(i)]

static void expire_error(kv_call *c)
{
    resp_out_errorf(c->out, "invalid expire time in '%s' command", c->cmd->name);
}

/* ---- strings -------------------------------------------------------------------------------------- */

/* getGenericCommand: replies with key's value, or nil; returns the entry (NULL when absent). */
static kv_entry *get_generic(kv_call *c, kv_store *s)
{
    kv_entry *e = kv_lookup_read(s, KEY(c, 1), c->now_ms);
    if (!e) {
        resp_out_nil(c->out);
        return NULL;
    }
    size_t len;
    const char *v = kv_entry_value(e, &len);
    resp_out_bulk(c->out, v, len);
    return e;
}

static void cmd_get(kv_call *c, kv_store *s)
{
    get_generic(c, s);
}

enum {
    SET_NX = 1 << 0, SET_XX = 1 << 1, SET_EX = 1 << 2, SET_PX = 1 << 3, SET_KEEPTTL = 1 << 4,
    SET_GET = 1 << 5, SET_EXAT = 1 << 6, SET_PXAT = 1 << 7,
};

static const struct {
    const char *word;
    int flag;
} timed_options[] = {{"ex", SET_EX}, {"px", SET_PX}, {"exat", SET_EXAT}, {"pxat", SET_PXAT}};

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]: parseExtendedStringArgumentsOrReply
 * and setGenericCommand, check for check. */
static void cmd_set(kv_call *c, kv_store *s)
{
    int flags = 0;
    size_t expire_arg = 0;
    const int timed = SET_EX | SET_PX | SET_EXAT | SET_PXAT;
    for (size_t j = 3; j < c->argc; j++) {
        const resp_arg *opt = &c->argv[j];
        bool has_next = j + 1 < c->argc;
        if (kv_option_is(opt, "nx") && !(flags & SET_XX)) {
            flags |= SET_NX;
        } else if (kv_option_is(opt, "xx") && !(flags & SET_NX)) {
            flags |= SET_XX;
        } else if (kv_option_is(opt, "get")) {
            flags |= SET_GET;
        } else if (kv_option_is(opt, "keepttl") && !(flags & timed)) {
            flags |= SET_KEEPTTL;
        } else {
            /* EX, PX, EXAT, PXAT: each with a value, none with KEEPTTL or another of them (a repeat of
             * the same one is taken, and its last value counts). */
            int flag = 0;
            for (size_t k = 0; k < sizeof timed_options / sizeof timed_options[0]; k++)
                if (kv_option_is(opt, timed_options[k].word))
                    flag = timed_options[k].flag;
            if (!flag || !has_next || (flags & (SET_KEEPTTL | (timed & ~flag)))) {
                resp_out_error(c->out, kv_err_syntax);
                return;
            }
            flags |= flag;
            expire_arg = ++j;
        }
    }

    int64_t expire = flags & SET_KEEPTTL ? KV_KEEP_EXPIRE : KV_NO_EXPIRE;
    if (expire_arg) {
        long long ms;
        if (!kv_integer_arg(c, expire_arg, &ms))
            return;
        bool seconds = flags & (SET_EX | SET_EXAT);
        if (ms <= 0 || (seconds && ms > LLONG_MAX / 1000)) {
            expire_error(c);
            return;
        }
        if (seconds)
            ms *= 1000;
        /* A relative time past the end of time is Redis's overflow, and its error. */
        if ((flags & (SET_EX | SET_PX)) && __builtin_add_overflow(ms, c->now_ms, &ms)) {
            expire_error(c);
            return;
        }
        expire = ms;
    }

    size_t reply_start = c->out->len;
    if (flags & SET_GET)
        get_generic(c, s);
    bool found = kv_lookup(s, KEY(c, 1), c->now_ms) != NULL;
    if (((flags & SET_NX) && found) || ((flags & SET_XX) && !found)) {
        if (!(flags & SET_GET))
            resp_out_nil(c->out);
        return;
    }
    if (kv_set(s, KEY(c, 1), ARG(c, 2), expire, c->now_ms) < 0) {
        c->out->len = reply_start; /* one reply per command: the error instead of GET's value */
        resp_out_error(c->out, kv_err_nomem);
        return;
    }
    if (!(flags & SET_GET))
        resp_out_raw(c->out, "+OK\r\n", 5);
}

static void cmd_getdel(kv_call *c, kv_store *s)
{
    kv_entry *e = get_generic(c, s);
    if (e)
        kv_delete_entry(s, e);
}

/* incrDecrCommand: the value as a long long (absent: 0) plus by, stored as its decimal, TTL kept. */
static void incr_by(kv_call *c, kv_store *s, long long by)
{
    kv_entry *e = kv_lookup(s, KEY(c, 1), c->now_ms);
    long long v = 0;
    if (e) {
        size_t len;
        const char *text = kv_entry_value(e, &len);
        if (!resp_string2ll(text, len, &v)) {
            resp_out_error(c->out, kv_err_not_integer);
            return;
        }
    }
    if ((by < 0 && v < 0 && by < LLONG_MIN - v) || (by > 0 && v > 0 && by > LLONG_MAX - v)) {
        resp_out_error(c->out, "increment or decrement would overflow");
        return;
    }
    v += by;
    char text[24];
    int n = snprintf(text, sizeof text, "%lld", v);
    if (kv_set(s, KEY(c, 1), text, (size_t)n, KV_KEEP_EXPIRE, c->now_ms) < 0) {
        resp_out_error(c->out, kv_err_nomem);
        return;
    }
    resp_out_int(c->out, v);
}

static void cmd_incr(kv_call *c, kv_store *s)
{
    incr_by(c, s, 1);
}

static void cmd_decr(kv_call *c, kv_store *s)
{
    incr_by(c, s, -1);
}

static void cmd_incrby(kv_call *c, kv_store *s)
{
    long long by;
    if (kv_integer_arg(c, 2, &by))
        incr_by(c, s, by);
}

static void cmd_decrby(kv_call *c, kv_store *s)
{
    long long by;
    if (!kv_integer_arg(c, 2, &by))
        return;
    if (by == LLONG_MIN) {
        resp_out_error(c->out, "decrement would overflow");
        return;
    }
    incr_by(c, s, -by);
}

static void cmd_append(kv_call *c, kv_store *s)
{
    kv_entry *e = kv_lookup(s, KEY(c, 1), c->now_ms);
    if (e) {
        size_t len;
        kv_entry_value(e, &len);
        if (len + c->argv[2].len > kv_conf.limits.max_bulk) {
            resp_out_error(c->out, "string exceeds maximum allowed size (proto-max-bulk-len)");
            return;
        }
    }
    long long len = kv_append(s, KEY(c, 1), ARG(c, 2), c->now_ms);
    if (len < 0)
        resp_out_error(c->out, kv_err_nomem);
    else
        resp_out_int(c->out, len);
}

static void cmd_strlen(kv_call *c, kv_store *s)
{
    kv_entry *e = kv_lookup_read(s, KEY(c, 1), c->now_ms);
    size_t len = 0;
    if (e)
        kv_entry_value(e, &len);
    resp_out_int(c->out, (long long)len);
}

/* ---- keys and expiry ------------------------------------------------------------------------------- */

enum { EXPIRE_NX = 1, EXPIRE_XX = 2, EXPIRE_GT = 4, EXPIRE_LT = 8 };

/* expireGenericCommand: EXPIRE and PEXPIRE key time [NX|XX|GT|LT]. */
static void expire_generic(kv_call *c, kv_store *s, bool seconds)
{
    int flags = 0;
    for (size_t j = 3; j < c->argc; j++) {
        const resp_arg *opt = &c->argv[j];
        if (kv_option_is(opt, "nx")) {
            flags |= EXPIRE_NX;
        } else if (kv_option_is(opt, "xx")) {
            flags |= EXPIRE_XX;
        } else if (kv_option_is(opt, "gt")) {
            flags |= EXPIRE_GT;
        } else if (kv_option_is(opt, "lt")) {
            flags |= EXPIRE_LT;
        } else {
            resp_out_errorf(c->out, "Unsupported option %.*s", (int)opt->len, opt->ptr);
            return;
        }
    }
    if ((flags & EXPIRE_NX) && (flags & (EXPIRE_XX | EXPIRE_GT | EXPIRE_LT))) {
        resp_out_error(c->out, "NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if ((flags & EXPIRE_GT) && (flags & EXPIRE_LT)) {
        resp_out_error(c->out, "GT and LT options at the same time are not compatible");
        return;
    }
    long long when;
    if (!kv_integer_arg(c, 2, &when))
        return;
    if (seconds) {
        if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000) {
            expire_error(c);
            return;
        }
        when *= 1000;
    }
    if (when > LLONG_MAX - c->now_ms) {
        expire_error(c);
        return;
    }
    when += c->now_ms;

    kv_entry *e = kv_lookup(s, KEY(c, 1), c->now_ms);
    if (!e) {
        resp_out_int(c->out, 0);
        return;
    }
    int64_t current = kv_entry_expire(s, e);
    bool none = current == KV_NO_EXPIRE;
    if (((flags & EXPIRE_NX) && !none) || ((flags & EXPIRE_XX) && none) ||
        ((flags & EXPIRE_GT) && (none || when <= current)) || ((flags & EXPIRE_LT) && !none && when >= current)) {
        resp_out_int(c->out, 0);
        return;
    }
    if (when <= c->now_ms) {
        /* checkAlreadyExpired: a time already passed deletes the key. */
        kv_delete_entry(s, e);
    } else if (kv_set_expire(s, e, when) < 0) {
        resp_out_error(c->out, kv_err_nomem);
        return;
    }
    resp_out_int(c->out, 1);
}

static void cmd_expire(kv_call *c, kv_store *s)
{
    expire_generic(c, s, true);
}

static void cmd_pexpire(kv_call *c, kv_store *s)
{
    expire_generic(c, s, false);
}

/* ttlGenericCommand: -2 without the key, -1 without a time, else what is left (seconds rounded). */
static void ttl_generic(kv_call *c, kv_store *s, bool ms)
{
    kv_entry *e = kv_lookup_read(s, KEY(c, 1), c->now_ms);
    if (!e) {
        resp_out_int(c->out, -2);
        return;
    }
    int64_t at = kv_entry_expire(s, e);
    if (at == KV_NO_EXPIRE) {
        resp_out_int(c->out, -1);
        return;
    }
    long long ttl = at - c->now_ms;
    if (ttl < 0)
        ttl = 0;
    resp_out_int(c->out, ms ? ttl : (ttl + 500) / 1000);
}

static void cmd_ttl(kv_call *c, kv_store *s)
{
    ttl_generic(c, s, false);
}

static void cmd_pttl(kv_call *c, kv_store *s)
{
    ttl_generic(c, s, true);
}

static void cmd_persist(kv_call *c, kv_store *s)
{
    kv_entry *e = kv_lookup(s, KEY(c, 1), c->now_ms);
    bool had = e && kv_entry_expire(s, e) != KV_NO_EXPIRE;
    if (had)
        kv_set_expire(s, e, KV_NO_EXPIRE);
    resp_out_int(c->out, had);
}

/* ---- several keys ---------------------------------------------------------------------------------- */

static void key_del(kv_call *c, kv_store *s, size_t arg, kv_result *r)
{
    r->n = kv_delete(s, KEY(c, arg), c->now_ms);
}

static void key_exists(kv_call *c, kv_store *s, size_t arg, kv_result *r)
{
    r->n = kv_lookup_read(s, KEY(c, arg), c->now_ms) != NULL;
}

static void key_mget(kv_call *c, kv_store *s, size_t arg, kv_result *r)
{
    kv_entry *e = kv_lookup_read(s, KEY(c, arg), c->now_ms);
    r->ptr = e ? kv_entry_value(e, &r->len) : NULL;
}

static void key_mset(kv_call *c, kv_store *s, size_t arg, kv_result *r)
{
    r->n = kv_set(s, KEY(c, arg), ARG(c, arg + 1), KV_NO_EXPIRE, c->now_ms);
}

/* DEL and EXISTS: how many (EXISTS counts a key named twice twice). */
static void reply_sum(kv_call *c, const kv_result *results, size_t keys)
{
    long long sum = 0;
    for (size_t i = 0; i < keys; i++)
        sum += results[i].n;
    resp_out_int(c->out, sum);
}

static void reply_mget(kv_call *c, const kv_result *results, size_t keys)
{
    resp_out_array(c->out, (long long)keys);
    for (size_t i = 0; i < keys; i++) {
        if (results[i].ptr)
            resp_out_bulk(c->out, results[i].ptr, results[i].len);
        else
            resp_out_nil(c->out);
    }
}

static void reply_mset(kv_call *c, const kv_result *results, size_t keys)
{
    for (size_t i = 0; i < keys; i++)
        if (results[i].n < 0) {
            resp_out_error(c->out, kv_err_nomem);
            return;
        }
    resp_out_raw(c->out, "+OK\r\n", 5);
}

static bool check_mset(kv_call *c)
{
    if (c->argc % 2 == 0) {
        kv_arity_error(c);
        return false;
    }
    return true;
}

/* ---- the whole keyspace ----------------------------------------------------------------------------------- */

static void shard_dbsize(kv_call *c, kv_store *s, kv_totals *t)
{
    (void)c;
    t->n += (long long)kv_store_count(s);
}

static void reply_count(kv_call *c, const kv_totals *t)
{
    resp_out_int(c->out, t->n);
}

/* FLUSHALL and FLUSHDB [ASYNC|SYNC]: both empty the one database. */
static bool check_flush(kv_call *c)
{
    if (c->argc == 1 || (c->argc == 2 && (kv_option_is(&c->argv[1], "sync") || kv_option_is(&c->argv[1], "async"))))
        return true;
    resp_out_error(c->out, kv_err_syntax);
    return false;
}

static void shard_flush(kv_call *c, kv_store *s, kv_totals *t)
{
    (void)c;
    (void)t;
    kv_store_clear(s);
}

static void reply_ok(kv_call *c, const kv_totals *t)
{
    (void)t;
    resp_out_raw(c->out, "+OK\r\n", 5);
}

/* ---- the table ------------------------------------------------------------------------------------- */

#define SPEC(name, ...) static const kv_keyspec name = {__VA_ARGS__}
SPEC(ks_ro_access, NULL, "RO access", 1, 0, 1, 0);
SPEC(ks_ro, NULL, "RO", 1, 0, 1, 0);
SPEC(ks_set, "RW and ACCESS due to the optional `GET` argument", "RW access update variable_flags", 1, 0, 1, 0);
SPEC(ks_rw_access_delete, NULL, "RW access delete", 1, 0, 1, 0);
SPEC(ks_rw_access_update, NULL, "RW access update", 1, 0, 1, 0);
SPEC(ks_rw_insert, NULL, "RW insert", 1, 0, 1, 0);
SPEC(ks_rw_update, NULL, "RW update", 1, 0, 1, 0);
SPEC(ks_del, NULL, "RM delete", 1, -1, 1, 0);
SPEC(ks_exists, NULL, "RO", 1, -1, 1, 0);
SPEC(ks_mget, NULL, "RO access", 1, -1, 1, 0);
SPEC(ks_mset, NULL, "OW update", 1, -1, 2, 0);

#define KEY_COMMAND(name_, arity_, fn, flags_, acl_, tips_, spec)                                             \
    {.name = name_, .arity = arity_, .route = KV_KEY, .run = fn, .flags = flags_, .acl = acl_, .tips = tips_,     \
     .first_key = 1, .last_key = 1, .key_step = 1, .keyspec = &spec}

/* GET and SET first: the lookup goes down the table. */
const kv_command kv_keyspace_commands[] = {
    KEY_COMMAND("get", 2, cmd_get, "readonly fast", "@read @string @fast", NULL, ks_ro_access),
    KEY_COMMAND("set", -3, cmd_set, "write denyoom", "@write @string @slow", NULL, ks_set),
    KEY_COMMAND("getdel", 2, cmd_getdel, "write fast", "@write @string @fast", NULL, ks_rw_access_delete),
    KEY_COMMAND("incr", 2, cmd_incr, "write denyoom fast", "@write @string @fast", NULL, ks_rw_access_update),
    KEY_COMMAND("incrby", 3, cmd_incrby, "write denyoom fast", "@write @string @fast", NULL, ks_rw_access_update),
    KEY_COMMAND("decr", 2, cmd_decr, "write denyoom fast", "@write @string @fast", NULL, ks_rw_access_update),
    KEY_COMMAND("decrby", 3, cmd_decrby, "write denyoom fast", "@write @string @fast", NULL, ks_rw_access_update),
    KEY_COMMAND("append", 3, cmd_append, "write denyoom fast", "@write @string @fast", NULL, ks_rw_insert),
    KEY_COMMAND("strlen", 2, cmd_strlen, "readonly fast", "@read @string @fast", NULL, ks_ro),
    KEY_COMMAND("expire", -3, cmd_expire, "write fast", "@keyspace @write @fast", NULL, ks_rw_update),
    KEY_COMMAND("pexpire", -3, cmd_pexpire, "write fast", "@keyspace @write @fast", NULL, ks_rw_update),
    KEY_COMMAND("ttl", 2, cmd_ttl, "readonly fast", "@keyspace @read @fast", "nondeterministic_output", ks_ro_access),
    KEY_COMMAND("pttl", 2, cmd_pttl, "readonly fast", "@keyspace @read @fast", "nondeterministic_output", ks_ro_access),
    KEY_COMMAND("persist", 2, cmd_persist, "write fast", "@keyspace @write @fast", NULL, ks_rw_update),
    {.name = "mget", .arity = -2, .route = KV_KEYS, .key_op = key_mget, .keys_reply = reply_mget,
     .flags = "readonly fast", .acl = "@read @string @fast", .tips = "request_policy:multi_shard", .first_key = 1,
     .last_key = -1, .key_step = 1, .keyspec = &ks_mget},
    {.name = "mset", .arity = -3, .route = KV_KEYS, .check = check_mset, .key_op = key_mset, .keys_reply = reply_mset,
     .flags = "write denyoom", .acl = "@write @string @slow",
     .tips = "request_policy:multi_shard response_policy:all_succeeded", .first_key = 1, .last_key = -1,
     .key_step = 2, .keyspec = &ks_mset},
    {.name = "del", .arity = -2, .route = KV_KEYS, .key_op = key_del, .keys_reply = reply_sum, .flags = "write",
     .acl = "@keyspace @write @slow", .tips = "request_policy:multi_shard response_policy:agg_sum", .first_key = 1,
     .last_key = -1, .key_step = 1, .keyspec = &ks_del},
    {.name = "exists", .arity = -2, .route = KV_KEYS, .key_op = key_exists, .keys_reply = reply_sum,
     .flags = "readonly fast", .acl = "@keyspace @read @fast",
     .tips = "request_policy:multi_shard response_policy:agg_sum", .first_key = 1, .last_key = -1, .key_step = 1,
     .keyspec = &ks_exists},
    {.name = "dbsize", .arity = 1, .route = KV_ALL, .shard_op = shard_dbsize, .all_reply = reply_count,
     .flags = "readonly fast", .acl = "@keyspace @read @fast",
     .tips = "request_policy:all_shards response_policy:agg_sum"},
    {.name = "flushall", .arity = -1, .route = KV_ALL, .check = check_flush, .shard_op = shard_flush,
     .all_reply = reply_ok, .flags = "write", .acl = "@keyspace @write @slow @dangerous",
     .tips = "request_policy:all_shards response_policy:all_succeeded"},
    {.name = "flushdb", .arity = -1, .route = KV_ALL, .check = check_flush, .shard_op = shard_flush,
     .all_reply = reply_ok, .flags = "write", .acl = "@keyspace @write @slow @dangerous",
     .tips = "request_policy:all_shards response_policy:all_succeeded"},
    {.name = NULL},
};
