/*
 * kv_server — a Redis-protocol key-value server on weft (weft-kv): RESP2 and inline commands over TCP,
 * the string commands of Redis 7 with their replies byte for byte, pipelining of any depth, expiry
 * (lazy, and an active sweep that holds its loop at most about a millisecond at a time), Redis's limits.
 *
 *   kv_server [--host 127.0.0.1] [--port 6379] [--backend io_uring|epoll] [--threads N]
 *             [--maxclients N] [--proto-max-bulk-len BYTES] [--client-query-buffer-limit BYTES]
 *
 * One task per connection, written as blocking code: receive, answer every command the bytes hold (the
 * answers go out together, in one send), receive again. With --threads N it runs N loops (one per CPU,
 * each with its own listener, examples/serve.h) and the keyspace is split into N shards by key hash,
 * one per loop: a command on a key of another loop's shard runs there, by weft_submit_to, and writes
 * its reply straight into the asking connection's buffer; a command over keys of several shards (MGET,
 * MSET, DEL, EXISTS) or all of them (DBSIZE, FLUSHALL, INFO) locks those shards in ascending order, runs
 * its part on each, answers, then unlocks them, so it is atomic as in Redis. It prints "ready on
 * <backend>" once it listens; SIGTERM or SIGINT stops it, and each loop prints its counters as one JSON
 * line on stderr. The sizes take a k, m or g suffix (KiB, MiB, GiB).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "serve.h"

#include "kv.h"

#include <limits.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

kv_config kv_conf = {
    .port = 6379,
    .maxclients = 10000,
    .query_buffer_limit = 1ull << 30,
    .limits = {.max_bulk = RESP_DEFAULT_MAX_BULK, .max_multibulk = RESP_DEFAULT_MAX_MULTIBULK},
};

kv_server_info kv_info;

/* Bytes a connection receives into at first; it grows for a larger command and shrinks back after. */
#define IN_SIZE (16 * 1024)
/* Replies are sent when the received bytes hold no more commands, or once this much has gathered. */
#define OUT_FLUSH (64 * 1024)
/* A connection that keeps finding commands waiting lets the other tasks run after this much work. */
#define YIELD_NS (1000ull * 1000)
/* The active expiry sweep: every 100 ms (Redis's hz 10), at most this long at a time. */
#define SWEEP_PERIOD_NS (100ull * 1000 * 1000)
#define SWEEP_BUDGET_NS (1000ull * 1000)

/* ---- shards --------------------------------------------------------------------------------------- */

/*
 * Loop i's part of the keyspace. Only loop i's thread touches it: other loops reach it through
 * weft_submit_to, whose hand-over orders their accesses. Aligned apart so that two loops' counters
 * never share a cache line.
 */
typedef struct kv_shard {
    kv_store *store;
    bool locked;           /* by a command over several shards: every other command here waits */
    weft_event *unlocked;  /* set whenever locked is false */
    weft_task *sweeper;
    kv_loop_stats stats;
} __attribute__((aligned(64))) kv_shard;

static kv_shard *shards;
static unsigned nshards;

kv_loop_stats *kv_loop_stats_here(void)
{
    return &shards[weft_loop_id()].stats;
}

/* The shard of a key: the high half of its hash, scaled to the shard count (the low half picks its
 * bucket inside the shard, so the two choices do not depend on each other). */
static unsigned shard_of(uint64_t hash)
{
    return (unsigned)(((hash >> 32) * nshards) >> 32);
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int shard_wait_unlocked(kv_shard *sh)
{
    while (sh->locked) {
        int r = weft_event_wait(sh->unlocked);
        if (r < 0)
            return r;
    }
    return 0;
}

static int shard_lock(kv_shard *sh)
{
    int r = shard_wait_unlocked(sh);
    if (r < 0)
        return r;
    sh->locked = true;
    weft_event_clear(sh->unlocked);
    return 0;
}

static intptr_t shard_unlock(void *arg)
{
    kv_shard *sh = arg;
    sh->locked = false;
    weft_event_set(sh->unlocked);
    return 0;
}

/* ---- running a command where its keys are ---------------------------------------------------------- */

enum job_kind {
    JOB_KEY,       /* a KEY command, reply included */
    JOB_KEYS,      /* a KEYS command whose keys are all on this shard, reply included */
    JOB_KEYS_PART, /* this shard's keys of a KEYS command over several shards: results only */
    JOB_ALL,       /* an ALL command on the only shard, reply included */
    JOB_ALL_PART,  /* this shard's part of an ALL command: into the totals */
};

typedef struct job {
    enum job_kind kind;
    unsigned shard;
    bool lock;              /* take the shard's lock and keep it (the parts of a multi-shard command) */
    kv_call *call;
    const unsigned *key_shard; /* KEYS: each key's shard, in key order */
    kv_result *results;        /* KEYS: each key's result, in key order */
    kv_totals *totals;         /* ALL */
} job;

/* Runs the job on its shard's loop, as a task there (weft_submit_to) or inline on the shard's own loop. */
static intptr_t job_run(void *arg)
{
    job *j = arg;
    kv_shard *sh = &shards[j->shard];
    int r = j->lock ? shard_lock(sh) : shard_wait_unlocked(sh);
    if (r < 0)
        return r;
    kv_call *c = j->call;
    const kv_command *cmd = c->cmd;
    c->now_ms = unix_ms();
    switch (j->kind) {
    case JOB_KEY:
        cmd->run(c, sh->store);
        break;
    case JOB_KEYS:
    case JOB_KEYS_PART: {
        size_t first, last, step, k = 0;
        kv_key_range(c, &first, &last, &step);
        for (size_t arg = first; arg <= last; arg += step, k++)
            if (j->kind == JOB_KEYS || j->key_shard[k] == j->shard)
                cmd->key_op(c, sh->store, arg, &j->results[k]);
        if (j->kind == JOB_KEYS)
            cmd->keys_reply(c, j->results, k);
        break;
    }
    case JOB_ALL:
    case JOB_ALL_PART:
        cmd->shard_op(c, sh->store, j->totals);
        if (j->kind == JOB_ALL)
            cmd->all_reply(c, j->totals);
        break;
    }
    return 0;
}

/* The job run on its shard; 0 or -errno (the server is stopping: the connection should close). */
static int run_job(job *j)
{
    if (j->shard == weft_loop_id())
        return (int)job_run(j);
    return (int)weft_submit_to(j->shard, job_run, j);
}

static void unlock_shard(unsigned shard)
{
    if (shard == weft_loop_id()) {
        shard_unlock(&shards[shard]);
        return;
    }
    /* Posted, not awaited: messages from one loop to another start in order, so nothing this loop
     * asks of that shard later can overtake it. It fails only once that loop has stopped. */
    int r = weft_post(shard, shard_unlock, &shards[shard]);
    if (r < 0 && r != -ESHUTDOWN)
        fprintf(stderr, "kv_server: unlocking shard %u: %s\n", shard, weft_strerror(r));
}

/*
 * A command over several shards (those set in touched, or all): lock each in ascending order (two such
 * commands can then never wait for each other) while running its part there, answer, unlock.
 */
static int run_on_shards(job *j, const bool *touched, void (*answer)(job *))
{
    int r = 0;
    unsigned locked = 0;
    for (unsigned s = 0; s < nshards && r == 0; s++) {
        if (touched && !touched[s])
            continue;
        j->shard = s;
        j->lock = true;
        r = run_job(j);
        if (r == 0)
            locked = s + 1;
    }
    if (r == 0)
        answer(j);
    for (unsigned s = 0; s < locked; s++)
        if (!touched || touched[s])
            unlock_shard(s);
    return r;
}

static void answer_keys(job *j)
{
    size_t first, last, step;
    kv_key_range(j->call, &first, &last, &step);
    j->call->cmd->keys_reply(j->call, j->results, (last - first) / step + 1);
}

static void answer_all(job *j)
{
    j->call->cmd->all_reply(j->call, j->totals);
}

static int route_key(kv_call *c)
{
    uint64_t hashes[2];
    hashes[1] = kv_hash(c->argv[1].ptr, c->argv[1].len);
    c->hashes = hashes;
    job j = {.kind = JOB_KEY, .shard = shard_of(hashes[1]), .call = c};
    return run_job(&j);
}

static int route_keys(kv_call *c)
{
    size_t first, last, step;
    kv_key_range(c, &first, &last, &step);
    size_t keys = (last - first) / step + 1;
    /* Small commands keep their tables on the stack; a large MGET or MSET allocates them. */
    uint64_t hashes_small[16];
    kv_result results_small[8];
    unsigned shards_small[8];
    bool touched_small[8];
    uint64_t *hashes = c->argc <= 16 ? hashes_small : malloc(c->argc * sizeof *hashes);
    kv_result *results = keys <= 8 ? results_small : malloc(keys * sizeof *results);
    unsigned *key_shard = keys <= 8 ? shards_small : malloc(keys * sizeof *key_shard);
    bool *touched = nshards <= 8 ? touched_small : malloc(nshards * sizeof *touched);
    int r = 0;
    if (!hashes || !results || !key_shard || !touched) {
        resp_out_error(c->out, kv_err_nomem);
        goto out;
    }
    memset(results, 0, keys * sizeof *results);
    memset(touched, 0, nshards * sizeof *touched);
    unsigned spread = 0;
    for (size_t arg = first, k = 0; arg <= last; arg += step, k++) {
        hashes[arg] = kv_hash(c->argv[arg].ptr, c->argv[arg].len);
        key_shard[k] = shard_of(hashes[arg]);
        spread += !touched[key_shard[k]];
        touched[key_shard[k]] = true;
    }
    c->hashes = hashes;
    job j = {.call = c, .key_shard = key_shard, .results = results};
    if (spread == 1) {
        j.kind = JOB_KEYS;
        j.shard = key_shard[0];
        r = run_job(&j);
    } else {
        j.kind = JOB_KEYS_PART;
        r = run_on_shards(&j, touched, answer_keys);
    }
out:
    if (hashes != hashes_small)
        free(hashes);
    if (results != results_small)
        free(results);
    if (key_shard != shards_small)
        free(key_shard);
    if (touched != touched_small)
        free(touched);
    return r;
}

static int route_all(kv_call *c)
{
    kv_totals totals;
    memset(&totals, 0, sizeof totals);
    job j = {.call = c, .totals = &totals};
    if (nshards == 1) {
        j.kind = JOB_ALL;
        return run_job(&j);
    }
    j.kind = JOB_ALL_PART;
    return run_on_shards(&j, NULL, answer_all);
}

/* ---- connections ----------------------------------------------------------------------------------- */

typedef struct conn {
    int fd;
    kv_shard *home;       /* the shard of the loop the connection is on */
    const char *view;     /* the received bytes weft_recv_borrow lent, or NULL when they are in `in` */
    char *in;             /* the connection's own buffer, for a command longer than a view may be */
    size_t start, end, cap; /* [base + start, base + end) are not parsed yet (base: view, else in) */
    resp_parser parser;
    resp_out out;
    kv_client client;
} conn;

/* Where the received bytes are: the borrowed view, or the connection's own buffer. */
static inline const char *in_base(const conn *c)
{
    return c->view ? c->view : c->in;
}

/* A view lent by weft_recv_borrow holds at most weft_config.recv_keep_max bytes (256 KiB by default): a
 * command longer than that is gathered in the connection's own buffer. */
#define VIEW_MAX (256 * 1024)

/*
 * Makes more received bytes available after those not yet parsed, keeping them contiguous from the
 * start of the command being parsed (the parser works on them in place). This is the one function that
 * knows where input comes from. need: the bytes the command under way needs in all, when the parser
 * knows it (a bulk's length). Returns the bytes received, 0 at end of stream, or -errno (-ENOBUFS past
 * client-query-buffer-limit: Redis closes such a client without a reply).
 *
 * Commands that fit a view are read where weft received them (weft_recv_borrow): the parsed ones are
 * given back, and the next view starts at the first byte not parsed, with at least one byte more. On
 * io_uring that is the ring buffer the kernel filled, with no copy at all, for a pipeline that arrives
 * in one piece. A longer command goes to the connection's own buffer, which grows by doubling towards
 * need (a client that announces 512 MiB and sends 10 bytes costs little) and shrinks back once a large
 * command is done.
 */
/* Room in the connection's own buffer for have bytes kept and a good read more (towards need). 0,
 * -ENOMEM, or -ENOBUFS past client-query-buffer-limit. */
static int in_room(conn *c, size_t have, size_t need)
{
    if (have >= kv_conf.query_buffer_limit)
        return -ENOBUFS;
    size_t size = c->cap;
    if (need > c->cap || c->cap - have < IN_SIZE / 2) {
        /* Room for a good read at least; for a command known to be larger than the buffer (a long bulk:
         * need is its whole length), double towards it but not past it. */
        size = need < c->cap * 2 ? need : c->cap * 2;
        if (size < have + IN_SIZE)
            size = have + IN_SIZE;
    } else if (c->cap > 4 * IN_SIZE && have < IN_SIZE / 2 && need <= IN_SIZE) {
        size = IN_SIZE; /* a large command is done: give the memory back */
    }
    if (size < IN_SIZE)
        size = IN_SIZE;
    if (size > kv_conf.query_buffer_limit)
        size = kv_conf.query_buffer_limit;
    if (size != c->cap) {
        char *in = realloc(c->in, size);
        if (!in)
            return -ENOMEM;
        c->in = in;
        c->cap = size;
    }
    return 0;
}

static ssize_t in_fill(conn *c, size_t need)
{
    size_t have = c->end - c->start;
    bool fits = have < VIEW_MAX && need <= VIEW_MAX;
    if (c->view) {
        /* The parsed commands go back; the one under way stays in the view (the next one starts with
         * it), or moves to the connection's own buffer when it outgrows a view. */
        size_t consumed = c->start;
        if (!fits) {
            int r = in_room(c, have, need);
            if (r < 0)
                return r;
            memcpy(c->in, c->view + c->start, have);
            consumed = c->end;
        }
        if (weft_recv_release(c->fd, c->view, consumed) < 0)
            return -ENOMEM;
        c->view = NULL;
        c->start = 0;
        c->end = fits ? 0 : have;
    }
    if (fits && !c->end) {
        size_t want = need > have + 1 ? need : have + 1;
        const void *view;
        ssize_t n = weft_recv_borrow(c->fd, &view, want);
        if (n <= 0)
            return n;
        if ((size_t)n <= have)
            return 0; /* the end of the stream, with a command cut short */
        c->view = view;
        c->end = (size_t)n;
        return n - (ssize_t)have;
    }
    if (c->start) {
        memmove(c->in, c->in + c->start, have);
        c->start = 0;
        c->end = have;
    }
    int r = in_room(c, have, need);
    if (r < 0)
        return r;
    ssize_t n = weft_recv(c->fd, c->in + c->end, c->cap - c->end, 0);
    if (n > 0)
        c->end += (size_t)n;
    return n;
}

/* The parser is done with n bytes. */
static void in_consume(conn *c, size_t n)
{
    c->start += n;
    if (c->start == c->end && !c->view)
        c->start = c->end = 0;
}

/* Sends the replies gathered so far. 0, or -1 when the connection is to close. */
static int flush(conn *c)
{
    if (c->out.failed)
        return -1;
    ssize_t n = weft_send_all(c->fd, c->out.buf, c->out.len);
    if (n != (ssize_t)c->out.len)
        return -1;
    c->out.len = 0;
    if (c->out.cap > OUT_FLUSH * 4) /* after a large reply, give the memory back */
        resp_out_free(&c->out);
    return 0;
}

/* Runs the command the parser holds. Returns false when the connection is to close at once. */
static bool run_command(conn *c)
{
    const resp_arg *argv = c->parser.argv;
    size_t argc = c->parser.argc;
    if (kv_is_cross_protocol(&argv[0])) {
        fprintf(stderr, "kv_server: a connection sent an HTTP request (\"%.*s\"): closed, as Redis does\n",
                (int)(argv[0].len < 16 ? argv[0].len : 16), argv[0].ptr);
        return false;
    }
    const kv_command *cmd = kv_command_find(argv, argc, &c->out);
    if (!cmd)
        return true;
    c->home->stats.commands_processed++;
    kv_call call = {.cmd = cmd, .argc = argc, .argv = argv, .client = &c->client, .out = &c->out};
    if (cmd->check && !cmd->check(&call))
        return true;
    int r = 0;
    switch (cmd->route) {
    case KV_LOCAL:
        call.now_ms = unix_ms();
        cmd->run(&call, NULL);
        break;
    case KV_KEY:
        r = route_key(&call);
        break;
    case KV_KEYS:
        r = route_keys(&call);
        break;
    case KV_ALL:
        r = route_all(&call);
        break;
    }
    return r == 0;
}

static void serve_connection(conn *c)
{
    static const char too_many[] = "-ERR max number of clients reached\r\n";
    if (atomic_fetch_add(&kv_info.clients, 1) >= kv_conf.maxclients) {
        c->home->stats.rejected_connections++;
        weft_send_all(c->fd, too_many, sizeof too_many - 1);
        return;
    }
    c->home->stats.connections_received++; /* as Redis counts them: the refused ones apart */
    c->client.id = atomic_fetch_add(&kv_info.next_client_id, 1);
    uint64_t ran_since = weft_now();
    unsigned ran = 0;
    for (;;) {
        int r = resp_parse(&c->parser, in_base(c) + c->start, c->end - c->start);
        if (r == RESP_COMMAND) {
            bool go_on = c->parser.argc == 0 || run_command(c);
            in_consume(c, c->parser.pos);
            resp_parser_next(&c->parser);
            if (!go_on || c->out.failed)
                return;
            if (c->client.close_after)
                break;
            if (c->out.len >= OUT_FLUSH && flush(c) < 0)
                return;
            /* A view of 256 KiB holds thousands of small commands: look at the time now and then. */
            if (++ran % 64 == 0 && weft_now() - ran_since > YIELD_NS) {
                weft_yield();
                ran_since = weft_now();
            }
            continue;
        }
        if (r == RESP_ERROR) {
            resp_out_error(&c->out, c->parser.error);
            break; /* Redis closes after replying to a protocol error */
        }
        if (r == RESP_NOMEM)
            return;
        /* Every command received is answered: send the answers, then wait for more. */
        if (c->out.len && flush(c) < 0)
            return;
        /* On epoll a receive that finds bytes waiting does not suspend, so a client that never stops
         * sending would keep the loop from everyone else: after a millisecond of work, let the others run
         * (and the loop poll), as Redis reads one buffer per client per turn of its loop. */
        uint64_t now = weft_now();
        if (now - ran_since > YIELD_NS) {
            weft_yield();
            ran_since = weft_now();
        }
        if (in_fill(c, c->parser.need) <= 0)
            return;
    }
    if (c->out.len)
        flush(c);
}

static intptr_t kv_client_task(void *arg)
{
    conn c = {.fd = (int)(intptr_t)arg, .home = &shards[weft_loop_id()]};
    resp_parser_init(&c.parser, &kv_conf.limits);
    serve_connection(&c);
    atomic_fetch_sub(&kv_info.clients, 1);
    resp_parser_free(&c.parser);
    resp_out_free(&c.out);
    free(c.in);
    free(c.client.name);
    weft_close(c.fd);
    return 0; /* a client that goes away is not the server's failure */
}

/* ---- expiry and rehashing in the background ------------------------------------------------------- */

/*
 * Each loop's sweeper: every 100 ms, delete keys past their time (20 at a time, going on while more
 * than a fifth of those looked at had expired, as Redis's active expire cycle does), then move buckets
 * of a resizing table; each for at most SWEEP_BUDGET_NS before it yields, so that no connection waits
 * on it longer. A shard locked by a multi-shard command is left alone until the next tick.
 */
static intptr_t sweeper(void *arg)
{
    kv_shard *sh = arg;
    while (weft_sleep(SWEEP_PERIOD_NS) == 0) {
        if (sh->locked)
            continue;
        uint64_t until = weft_now() + SWEEP_BUDGET_NS;
        size_t checked, expired;
        do {
            expired = kv_store_expire_cycle(sh->store, unix_ms(), 20, &checked);
        } while (checked == 20 && expired * 5 > checked && weft_now() < until);
        weft_yield();
        if (sh->locked)
            continue;
        until = weft_now() + SWEEP_BUDGET_NS;
        while (kv_store_rehash_step(sh->store, 100) && weft_now() < until)
            ;
    }
    return 0;
}

static int kv_started(void)
{
    kv_shard *sh = &shards[weft_loop_id()];
    atomic_store(&kv_info.backend, weft_loop_backend(weft_loop_current()));
    sh->sweeper = weft_spawn_named("sweeper", sweeper, sh);
    return sh->sweeper ? 0 : -errno;
}

static void kv_stopped(void)
{
    kv_shard *sh = &shards[weft_loop_id()];
    weft_cancel(sh->sweeper);
    weft_join(sh->sweeper);
    char extra[160];
    snprintf(extra, sizeof extra, ",\"connections\":%llu,\"commands\":%llu,\"keys\":%zu",
             (unsigned long long)sh->stats.connections_received, (unsigned long long)sh->stats.commands_processed,
             kv_store_count(sh->store));
    serve_print_stats(extra);
}

/* ---- options and main ------------------------------------------------------------------------------ */

enum { OPT_MAXCLIENTS = 256, OPT_MAX_BULK, OPT_QUERY_BUFFER };

/* A number from min to max; a size may end in k, m or g (KiB, MiB, GiB). */
static int parse_number(const char *opt, const char *text, bool size, unsigned long long min, unsigned long long max,
                        unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    unsigned shift = 0;
    if (size && (*end == 'k' || *end == 'K'))
        shift = 10, end++;
    else if (size && (*end == 'm' || *end == 'M'))
        shift = 20, end++;
    else if (size && (*end == 'g' || *end == 'G'))
        shift = 30, end++;
    if (errno || end == text || *end || text[0] == '-' || v > (max >> shift) || (v << shift) < min) {
        fprintf(stderr, "kv_server: %s takes a number from %llu to %llu%s, not \"%s\"\n", opt, min, max,
                size ? " (or with k, m or g: KiB, MiB, GiB)" : "", text);
        return -1;
    }
    *out = v << shift;
    return 0;
}

static int kv_option(int val, const char *value)
{
    unsigned long long v;
    switch (val) {
    case OPT_MAXCLIENTS:
        if (parse_number("--maxclients", value, false, 1, 1000000, &v) < 0)
            return -1;
        kv_conf.maxclients = (unsigned long)v;
        return 0;
    case OPT_MAX_BULK:
        /* A value's length is kept in 32 bits (kv_store.c): at most 4 GiB - 1, where Redis allows more. */
        if (parse_number("--proto-max-bulk-len", value, true, 1024 * 1024, UINT32_MAX, &v) < 0)
            return -1;
        kv_conf.limits.max_bulk = v;
        return 0;
    case OPT_QUERY_BUFFER:
        if (parse_number("--client-query-buffer-limit", value, true, 1024 * 1024, 1ull << 40, &v) < 0)
            return -1;
        kv_conf.query_buffer_limit = v;
        return 0;
    }
    return -1;
}

static int kv_prepare(void);

static struct serve kv_serve = {
    .name = "kv_server",
    .client_name = "kv",
    .client = kv_client_task,
    .stopped = kv_stopped,
    .default_port = 6379,
    .options = (const struct option[]){
        {"maxclients", required_argument, NULL, OPT_MAXCLIENTS},
        {"proto-max-bulk-len", required_argument, NULL, OPT_MAX_BULK},
        {"client-query-buffer-limit", required_argument, NULL, OPT_QUERY_BUFFER},
        {NULL, 0, NULL, 0},
    },
    .option = kv_option,
    .usage = "[--maxclients N] [--proto-max-bulk-len BYTES] [--client-query-buffer-limit BYTES]",
    .prepare = kv_prepare,
    .started = kv_started,
};

/* Every shard made before any loop starts, so that a loop can forward to another from its first command. */
static int kv_prepare(void)
{
    kv_conf.host = kv_serve.host;
    kv_conf.port = kv_serve.port;
    kv_conf.threads = kv_serve.threads;
    nshards = kv_serve.threads;
    kv_hash_init();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    kv_info.started_ms = ts.tv_sec * 1000ll + ts.tv_nsec / 1000000;
    kv_info.weft_version = weft_version();
    kv_info.loops = nshards;
    atomic_init(&kv_info.next_client_id, 1);
    /* As Redis does: room for maxclients connections and a few more fds, raising the soft limit as far
     * as the hard one allows, and fewer clients (said once) where it does not. */
    struct rlimit files;
    rlim_t want = (rlim_t)kv_conf.maxclients + 32;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < want) {
        files.rlim_cur = files.rlim_max < want ? files.rlim_max : want;
        if (setrlimit(RLIMIT_NOFILE, &files) != 0 || getrlimit(RLIMIT_NOFILE, &files) != 0) {
            perror("kv_server: setrlimit");
            return -errno;
        }
        if (files.rlim_cur < want) {
            unsigned long fit = files.rlim_cur > 64 ? (unsigned long)files.rlim_cur - 32 : 32;
            fprintf(stderr, "kv_server: %lu clients need %llu open files and the limit is %llu: maxclients is %lu\n",
                    kv_conf.maxclients, (unsigned long long)want, (unsigned long long)files.rlim_cur, fit);
            kv_conf.maxclients = fit;
        }
    }
    shards = aligned_alloc(64, nshards * sizeof *shards);
    if (!shards)
        goto nomem;
    memset(shards, 0, nshards * sizeof *shards);
    for (unsigned i = 0; i < nshards; i++) {
        shards[i].store = kv_store_new();
        shards[i].unlocked = weft_event_new();
        if (!shards[i].store || !shards[i].unlocked)
            goto nomem;
        weft_event_set(shards[i].unlocked);
    }
    return 0;
nomem:
    fprintf(stderr, "kv_server: out of memory for %u shards\n", nshards);
    return -ENOMEM;
}

int main(int argc, char **argv)
{
    int status = serve_main(&kv_serve, argc, argv);
    for (unsigned i = 0; shards && i < nshards; i++) {
        kv_store_free(shards[i].store);
        weft_event_free(shards[i].unlocked);
    }
    free(shards);
    return status;
}
