/*
 * Property test: many random interleavings of spawn, join, wait_for, detach, cancel, short sleeps,
 * yields, deadlines, channel sends and receives (blocking, try_ and _async), channel closes, and
 * socket (socketpair) and file (temp file) I/O in flight, blocking and _async, with futures awaited,
 * cancelled, raced in wait_any or freed early, all checked against a model as they happen:
 *
 *   - every task ends exactly once (a callback on each task's future counts the ends; a task's body
 *     counts its returns), and one cancelled before it started never runs;
 *   - every join (weft_join, weft_wait_for, a parent joining its child) gets the result that task
 *     returned, or -ECANCELED when it was cancelled before producing one;
 *   - a cancelled task's suspending calls keep returning -ECANCELED (sticky);
 *   - no channel item is lost or duplicated: a send that returned 0 is received exactly once, a send
 *     that failed never is, and a recv_async future freed before it completed takes no item;
 *   - no byte is lost, duplicated or reordered on the "strict" socket streams (whose futures are only
 *     cancelled and awaited, never freed while pending), and file reads see what completed writes put
 *     there;
 *   - no buffer is written after its call returned: every read or recv gets its own heap buffer with
 *     canary bytes around it; when its call returns (a blocking call returned, an _async future was
 *     seen done, or was freed) the buffer is snapshotted and re-checked after later loop turns and at
 *     the end of the run; the canaries must never change;
 *   - no use after free (ASan builds) and no fd left open.
 *
 * Environment:
 *   WEFT_PROPERTY_SEED   the xorshift seed (default: from the clock and pid). Every failure message
 *                        starts with "seed S step N": rerun with that seed to replay the interleaving
 *                        (the same seed gives the same sequence of decisions; what the kernel does in
 *                        between may still differ).
 *   WEFT_PROPERTY_STEPS  driver steps (default 100000). tests/run uses the default for the release
 *                        and TSan builds and less under ASan (see there). Ten million by hand:
 *                          WEFT_PROPERTY_STEPS=10000000 build/release/tests/test_property --timeout 3600
 *                        (10^6 steps take about 12 s a backend in the release build on 2 cores, 10^7
 *                        about 100 s and 200 MB; WEFT_BACKEND picks the backend).
 *   WEFT_PROPERTY_NO_EARLY_FREE=1  never frees a future while it is pending (it is cancelled and awaited
 *                        instead): for looking past a failure of that path while it is being fixed.
 *                        Off by default, and never in tests/run.
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common.h"

/* Long runs pass --timeout (Criterion) or are bounded by the runner; see the header. */
TestSuite(property, .timeout = 900);

/* ---- decisions ---------------------------------------------------------------------------------- */

static uint64_t seed, rng_state;
static uint64_t step, steps;
static bool no_early_free; /* WEFT_PROPERTY_NO_EARLY_FREE=1 */

static uint64_t rnd(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static unsigned below(unsigned n)
{
    return n ? (unsigned)(rnd() % n) : 0;
}

static bool one_in(unsigned n)
{
    return below(n) == 0;
}

/* Every check names the seed and the step, so a failure can be replayed. */
#define CHECK(cond, ...)                                                                              \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            char check_msg_[512];                                                                     \
            snprintf(check_msg_, sizeof check_msg_, __VA_ARGS__);                                     \
            cr_assert(false, "seed %" PRIu64 " step %" PRIu64 " (WEFT_PROPERTY_SEED=%" PRIu64         \
                             "): %s [%s]", seed, step, seed, check_msg_, #cond);                     \
        }                                                                                             \
    } while (0)

static uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end;
    unsigned long long n = strtoull(v, &end, 0);
    cr_assert(*end == '\0', "%s=%s is not a number", name, v);
    return n;
}

/* ---- buffers with canaries, re-checked after their call returned ------------------------------ */

#define CANARY 16
#define CANARY_BYTE 0xA5

typedef struct iobuf {
    size_t len;
    bool returned;         /* its call returned: nothing may write it any more */
    const char *how;       /* which call, and how it returned (for the failure message) */
    unsigned char *snap;   /* its bytes when the call returned */
    unsigned char *mem;    /* CANARY + len + CANARY */
} iobuf;

static iobuf *iobuf_new(size_t len)
{
    iobuf *b = calloc(1, sizeof *b);
    cr_assert(b != NULL);
    b->len = len;
    b->mem = malloc(len + 2 * CANARY);
    cr_assert(b->mem != NULL);
    memset(b->mem, CANARY_BYTE, CANARY);
    memset(b->mem + CANARY, 0x5A, len);
    memset(b->mem + CANARY + len, CANARY_BYTE, CANARY);
    return b;
}

static unsigned char *iobuf_data(iobuf *b)
{
    return b->mem + CANARY;
}

static void iobuf_check(const iobuf *b, const char *when)
{
    for (size_t i = 0; i < CANARY; i++) {
        CHECK(b->mem[i] == CANARY_BYTE, "%s: canary before the %zu-byte buffer of %s overwritten at -%zu", when,
              b->len, b->how ? b->how : "a call in flight", CANARY - i);
        CHECK(b->mem[CANARY + b->len + i] == CANARY_BYTE,
              "%s: canary after the %zu-byte buffer of %s overwritten at +%zu", when, b->len,
              b->how ? b->how : "a call in flight", i);
    }
    if (b->returned && memcmp(b->snap, b->mem + CANARY, b->len) != 0) {
        size_t at = 0;
        while (b->snap[at] == b->mem[CANARY + at])
            at++;
        CHECK(false, "%s: the %zu-byte buffer of %s was written at byte %zu after its call returned", when, b->len,
              b->how, at);
    }
}

/* Recently returned buffers, re-checked as the run goes on; the oldest is checked once more and
 * freed when the ring is full. */
#define RECHECK_RING 256
static iobuf *recheck[RECHECK_RING];
static unsigned recheck_next;

static void iobuf_free(iobuf *b)
{
    free(b->snap);
    free(b->mem);
    free(b);
}

/* Its call returned: snapshot it and keep re-checking it. */
static void iobuf_returned(iobuf *b, const char *how)
{
    b->how = how;
    iobuf_check(b, "on return");
    b->returned = true;
    b->snap = malloc(b->len ? b->len : 1);
    cr_assert(b->snap != NULL);
    memcpy(b->snap, b->mem + CANARY, b->len);
    iobuf *old = recheck[recheck_next];
    if (old) {
        iobuf_check(old, "when retired");
        iobuf_free(old);
    }
    recheck[recheck_next] = b;
    recheck_next = (recheck_next + 1) % RECHECK_RING;
}

static void recheck_some(void)
{
    for (int i = 0; i < 2; i++) {
        iobuf *b = recheck[below(RECHECK_RING)];
        if (b)
            iobuf_check(b, "after later loop turns");
    }
}

static void recheck_all_and_free(void)
{
    for (unsigned i = 0; i < RECHECK_RING; i++)
        if (recheck[i]) {
            iobuf_check(recheck[i], "at the end of the run");
            iobuf_free(recheck[i]);
            recheck[i] = NULL;
        }
}

/* ---- socket streams ----------------------------------------------------------------------------- */

/*
 * One direction of a socketpair. One send and one recv at most are in flight on a stream at a time, so
 * the bytes have one order. A strict stream never has a future freed while pending: every byte is
 * accounted for. A loose one may; once it has, its offsets are unknown ("lossy") and only buffers
 * are checked.
 */
#define STREAMS 6

typedef struct stream {
    int wfd, rfd;
    unsigned id;
    bool strict, lossy;
    bool sending, receiving;
    uint64_t sent;     /* bytes that completed sends reported */
    uint64_t inflight; /* bytes of the send in flight */
    uint64_t received; /* bytes that completed recvs reported */
} stream;

static stream streams[STREAMS];

static unsigned char stream_byte(const stream *s, uint64_t offset)
{
    return (unsigned char)(offset ^ ((offset >> 8) * 31) ^ ((offset >> 16) * 7) ^ (s->id * 17));
}

static void stream_sent(stream *s, ssize_t n, size_t asked)
{
    CHECK(n <= (ssize_t)asked, "send on stream %u returned %zd for %zu bytes", s->id, n, asked);
    if (n > 0)
        s->sent += (uint64_t)n;
}

static void stream_received(stream *s, const unsigned char *data, ssize_t n, size_t asked)
{
    CHECK(n <= (ssize_t)asked, "recv on stream %u returned %zd for %zu bytes", s->id, n, asked);
    CHECK(n != 0, "recv on stream %u: end of stream on a socket nobody shut down", s->id);
    if (n <= 0 || s->lossy)
        return;
    for (ssize_t i = 0; i < n; i++)
        CHECK(data[i] == stream_byte(s, s->received + (uint64_t)i),
              "stream %u byte %" PRIu64 ": got 0x%02x, want 0x%02x (lost, duplicated or reordered)", s->id,
              s->received + (uint64_t)i, data[i], stream_byte(s, s->received + (uint64_t)i));
    s->received += (uint64_t)n;
    CHECK(s->received <= s->sent + s->inflight, "stream %u received %" PRIu64 " bytes, more than the %" PRIu64
          " sent", s->id, s->received, s->sent + s->inflight);
}

static size_t io_len(void)
{
    switch (below(4)) {
    case 0:
        return 1 + below(16);
    case 1:
        return 1 + below(512);
    case 2:
        return 1 + below(8192);
    default:
        return 1 + below(65536);
    }
}

static iobuf *send_buffer(stream *s, size_t len)
{
    iobuf *b = iobuf_new(len);
    for (size_t i = 0; i < len; i++)
        iobuf_data(b)[i] = stream_byte(s, s->sent + i);
    return b;
}

/* ---- the file ----------------------------------------------------------------------------------- */

#define FILE_SLOTS 32
#define SLOT_SIZE 4096

static int file_fd = -1;
static unsigned char file_shadow[FILE_SLOTS * SLOT_SIZE];
static bool file_known[FILE_SLOTS * SLOT_SIZE];
static bool slot_busy[FILE_SLOTS];

static void file_wrote(unsigned slot, size_t off, const unsigned char *data, ssize_t n, size_t asked)
{
    CHECK(n <= (ssize_t)asked, "write of %zu bytes returned %zd", asked, n);
    for (ssize_t i = 0; i < n; i++) {
        file_shadow[slot * SLOT_SIZE + off + (size_t)i] = data[i];
        file_known[slot * SLOT_SIZE + off + (size_t)i] = true;
    }
}

static void file_forget(unsigned slot, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        file_known[slot * SLOT_SIZE + off + i] = false;
}

static void file_read_check(unsigned slot, size_t off, const unsigned char *data, ssize_t n, size_t asked)
{
    CHECK(n <= (ssize_t)asked, "read of %zu bytes returned %zd", asked, n);
    for (ssize_t i = 0; i < n; i++) {
        size_t at = slot * SLOT_SIZE + off + (size_t)i;
        if (file_known[at])
            CHECK(data[i] == file_shadow[at], "file byte %zu: got 0x%02x, want 0x%02x", at, data[i],
                  file_shadow[at]);
    }
}

/* ---- channels and their items ----------------------------------------------------------------- */

#define CHANS 4
static weft_chan *chans[CHANS];
static weft_chan **old_chans; /* closed and replaced: freed at the end, when no task can use them */
static size_t old_chan_count, old_chan_cap;

static void old_chan_add(weft_chan *c)
{
    if (old_chan_count == old_chan_cap) {
        old_chan_cap = old_chan_cap ? 2 * old_chan_cap : 64;
        old_chans = realloc(old_chans, old_chan_cap * sizeof *old_chans);
        cr_assert(old_chans != NULL);
    }
    old_chans[old_chan_count++] = c;
}

enum { TOK_NONE, TOK_OFFERED, TOK_SENT, TOK_FAILED };
static uint8_t *tok_state, *tok_received;
static size_t tok_count, tok_cap;

static void *token_new(void)
{
    if (tok_count + 1 >= tok_cap) {
        tok_cap = tok_cap ? tok_cap * 2 : 1024;
        tok_state = realloc(tok_state, tok_cap);
        tok_received = realloc(tok_received, tok_cap);
        cr_assert(tok_state && tok_received);
    }
    size_t t = ++tok_count; /* 0 is never a token */
    tok_state[t] = TOK_OFFERED;
    tok_received[t] = 0;
    return (void *)(uintptr_t)t;
}

static void token_send_result(void *item, int r)
{
    size_t t = (uintptr_t)item;
    if (r == 0) {
        tok_state[t] = TOK_SENT;
    } else {
        CHECK(r == -ECANCELED || r == -ETIMEDOUT || r == -EPIPE || r == -EAGAIN, "channel send: %d (%s)", r,
              res_name(r));
        CHECK(tok_received[t] == 0, "item %zu was received but its send failed with %s", t, res_name(r));
        tok_state[t] = TOK_FAILED;
    }
}

static void token_received(intptr_t item)
{
    CHECK(item > 0 && (size_t)item <= tok_count, "received %jd, which is no item ever sent", (intmax_t)item);
    size_t t = (size_t)item;
    CHECK(tok_state[t] == TOK_OFFERED || tok_state[t] == TOK_SENT, "item %zu received, but its send %s", t,
          tok_state[t] == TOK_FAILED ? "failed" : "never happened");
    CHECK(++tok_received[t] == 1, "item %zu received twice", t);
}

static void chan_replace(unsigned i)
{
    if (chans[i]) {
        weft_chan_close(chans[i]);
        old_chan_add(chans[i]);
    }
    static const size_t caps[] = {0, 1, 2, 8};
    chans[i] = weft_chan_new(caps[below(4)]);
    cr_assert(chans[i] != NULL);
}

/* ---- tasks and what the model expects of them -------------------------------------------------- */

enum body_kind {
    B_RETURN,
    B_YIELDS,
    B_SLEEP,
    B_DEADLINE,
    B_CHAN_SEND,
    B_CHAN_RECV,
    B_STREAM_IO,
    B_FILE_IO,
    B_CHILD,
    B_LONG,
    B_KINDS
};

typedef struct mtask {
    weft_task *handle;
    unsigned id;
    enum body_kind kind;
    intptr_t planned;       /* what the body returns unless cancelled */
    unsigned param;
    weft_chan *chan;
    bool started, returned;
    bool released;          /* joined (or being joined) or detached: the driver no longer touches it */
    bool detached;
    bool cancelled_unstarted; /* cancelled while the model knew it had not started */
    intptr_t returned_value;
    unsigned ends;          /* future callbacks: must end at exactly 1 */
    unsigned body_returns;
    size_t active_index;    /* in active[] while ends == 0 and the driver may cancel it */
    size_t unreleased_index;
} mtask;

static mtask **all_tasks;
static size_t all_count, all_cap;

/* Tasks the driver may still cancel (not ended) and may still join or detach (not released). Spawning
 * waits while either set is full, so both stay bounded however long the run. */
#define MAX_LIVE 160
#define MAX_UNRELEASED 1024
static mtask *active[MAX_LIVE];
static size_t active_count;
static mtask *unreleased[MAX_UNRELEASED];
static size_t unreleased_count;
static unsigned joiners_live;

static void active_remove(mtask *m)
{
    size_t i = m->active_index;
    if (i == SIZE_MAX)
        return;
    active[i] = active[--active_count];
    active[i]->active_index = i;
    m->active_index = SIZE_MAX;
}

static void unreleased_remove(mtask *m)
{
    size_t i = m->unreleased_index;
    if (i == SIZE_MAX)
        return;
    unreleased[i] = unreleased[--unreleased_count];
    unreleased[i]->unreleased_index = i;
    m->unreleased_index = SIZE_MAX;
}

static void task_ended_cb(weft_future *f, void *arg)
{
    (void)f;
    mtask *m = arg;
    m->ends++;
    CHECK(m->ends == 1, "task %u ended %u times", m->id, m->ends);
    active_remove(m);
}

/* What a join of m must return, now that m has ended. */
static void expect_join(mtask *m, intptr_t got, const char *how)
{
    CHECK(m->body_returns <= 1, "task %u's body returned %u times", m->id, m->body_returns);
    if (!m->started) {
        CHECK(got == -ECANCELED, "%s of task %u, which never ran: got %jd (%s), want -ECANCELED", how, m->id,
              (intmax_t)got, res_name(got));
        return;
    }
    CHECK(m->returned, "%s of task %u returned %jd before its body returned", how, m->id, (intmax_t)got);
    CHECK(got == m->returned_value, "%s of task %u: got %jd (%s), want what it returned: %jd (%s)", how, m->id,
          (intmax_t)got, res_name(got), (intmax_t)m->returned_value, res_name(m->returned_value));
}

static intptr_t body(void *arg);

static mtask *mtask_new(enum body_kind kind)
{
    mtask *m = calloc(1, sizeof *m);
    cr_assert(m != NULL);
    if (all_count == all_cap) {
        all_cap = all_cap ? 2 * all_cap : 1024;
        all_tasks = realloc(all_tasks, all_cap * sizeof *all_tasks);
        cr_assert(all_tasks != NULL);
    }
    all_tasks[all_count++] = m;
    m->id = (unsigned)all_count;
    m->kind = kind;
    m->planned = one_in(16) ? -ENOENT : (intptr_t)below(1000000);
    m->param = (unsigned)rnd();
    m->chan = chans[below(CHANS)];
    m->active_index = m->unreleased_index = SIZE_MAX;
    return m;
}

/* Spawns m: the driver's tasks go into active[] and unreleased[]; a child belongs to its parent. */
static weft_task *mtask_spawn(mtask *m, bool tracked)
{
    m->handle = weft_spawn(body, m);
    CHECK(m->handle != NULL, "weft_spawn: %s", strerror(errno));
    EQ(weft_future_on_done(weft_task_future(m->handle), task_ended_cb, m), 0);
    if (tracked) {
        m->active_index = active_count;
        active[active_count++] = m;
        m->unreleased_index = unreleased_count;
        unreleased[unreleased_count++] = m;
    }
    return m->handle;
}

/* After a call returned -ECANCELED, cancellation must stick. */
static intptr_t cancelled(void)
{
    CHECK(weft_sleep(0) == -ECANCELED, "cancellation did not stick: weft_sleep(0) went through");
    CHECK(weft_nop() == -ECANCELED, "cancellation did not stick: weft_nop went through");
    return -ECANCELED;
}

static intptr_t body_stream_io(mtask *m)
{
    stream *s = &streams[m->param % STREAMS];
    bool send = (m->param >> 8) & 1;
    if (send ? s->sending : s->receiving)
        return 0; /* someone else has that direction: nothing to do */
    size_t len = io_len();
    weft_deadline_push(weft_now() + 1000 * (1 + (m->param >> 9) % 2000));
    iobuf *b;
    ssize_t n;
    if (send) {
        s->sending = true;
        b = send_buffer(s, len);
        s->inflight = len;
        n = weft_send(s->wfd, iobuf_data(b), len, 0);
        s->inflight = 0;
        stream_sent(s, n, len);
        s->sending = false;
    } else {
        s->receiving = true;
        b = iobuf_new(len);
        n = weft_recv(s->rfd, iobuf_data(b), len, 0);
        s->receiving = false;
        stream_received(s, iobuf_data(b), n, len);
    }
    iobuf_returned(b, send ? "a weft_send (returned)" : "a weft_recv (returned)");
    weft_deadline_pop();
    CHECK(n >= 0 || n == -ETIMEDOUT || n == -ECANCELED, "stream I/O: %zd (%s)", n, res_name(n));
    return n == -ECANCELED ? -ECANCELED : 0;
}

static intptr_t body_file_io(mtask *m)
{
    unsigned slot = m->param % FILE_SLOTS;
    if (slot_busy[slot])
        return 0;
    slot_busy[slot] = true;
    size_t off = below(SLOT_SIZE), len = 1 + below((unsigned)(SLOT_SIZE - off));
    iobuf *b = iobuf_new(len);
    ssize_t n;
    if ((m->param >> 8) & 1) {
        for (size_t i = 0; i < len; i++)
            iobuf_data(b)[i] = (unsigned char)rnd();
        n = weft_write(file_fd, iobuf_data(b), len, (int64_t)(slot * SLOT_SIZE + off));
        if (n >= 0)
            file_wrote(slot, off, iobuf_data(b), n, len);
    } else {
        n = weft_read(file_fd, iobuf_data(b), len, (int64_t)(slot * SLOT_SIZE + off));
        if (n >= 0)
            file_read_check(slot, off, iobuf_data(b), n, len);
    }
    iobuf_returned(b, (m->param >> 8) & 1 ? "a weft_write (returned)" : "a weft_read (returned)");
    slot_busy[slot] = false;
    CHECK(n >= 0 || n == -ECANCELED, "file I/O: %zd (%s)", n, res_name(n));
    return n == -ECANCELED ? -ECANCELED : 0;
}

static intptr_t body_child(mtask *m)
{
    mtask *c = mtask_new(one_in(2) ? B_SLEEP : B_YIELDS);
    weft_task *h = mtask_spawn(c, false);
    c->released = true;
    if (one_in(3))
        weft_yield();
    intptr_t r = weft_join(h);
    /* A cancelled parent still waits for its child: the child has ended either way. */
    expect_join(c, r, "a parent's join");
    (void)m;
    /* Only the parent's own cancellation cancels the child: -ECANCELED here means the parent was. */
    return r == -ECANCELED ? -ECANCELED : 0;
}

static intptr_t body(void *arg)
{
    mtask *m = arg;
    CHECK(!m->cancelled_unstarted, "task %u ran although it was cancelled before it started", m->id);
    CHECK(!m->started, "task %u started twice", m->id);
    m->started = true;
    intptr_t r = 0;
    switch (m->kind) {
    case B_RETURN:
        break;
    case B_YIELDS:
        for (unsigned i = 0; i < 1 + m->param % 4; i++)
            weft_yield();
        break;
    case B_SLEEP:
        r = weft_sleep(1000 * (m->param % 300));
        break;
    case B_LONG:
        r = weft_sleep(MS(5) + 1000 * (m->param % 5000));
        break;
    case B_DEADLINE: {
        uint64_t deadline = weft_now() + 1000 * (m->param % 300);
        weft_deadline_push(deadline);
        r = weft_sleep(1000 * ((m->param >> 10) % 600));
        if (r == -ETIMEDOUT) {
            CHECK(weft_now() >= deadline, "-ETIMEDOUT before the deadline");
            /* Still under the passed deadline: -ETIMEDOUT, unless a cancel came in the meantime. */
            int again = weft_nop();
            CHECK(again == -ETIMEDOUT || again == -ECANCELED, "a call under a passed deadline: %d (%s)", again,
                  res_name(again));
            r = again == -ECANCELED ? -ECANCELED : 0;
        }
        weft_deadline_pop();
        break;
    }
    case B_CHAN_SEND: {
        void *item = token_new();
        int s = weft_chan_send(m->chan, item);
        token_send_result(item, s);
        r = s == -ECANCELED ? -ECANCELED : 0;
        break;
    }
    case B_CHAN_RECV: {
        void *item = NULL;
        int s = weft_chan_recv(m->chan, &item);
        if (s == 0)
            token_received((intptr_t)item);
        else
            CHECK(s == -ECANCELED || s == -EPIPE, "channel recv: %d (%s)", s, res_name(s));
        r = s == -ECANCELED ? -ECANCELED : 0;
        break;
    }
    case B_STREAM_IO:
        r = body_stream_io(m);
        break;
    case B_FILE_IO:
        r = body_file_io(m);
        break;
    case B_CHILD:
        r = body_child(m);
        break;
    default:
        break;
    }
    if (r == -ECANCELED)
        r = cancelled();
    else
        CHECK(r == 0, "task %u (kind %d): unexpected %jd (%s)", m->id, m->kind, (intmax_t)r, res_name(r));
    m->returned_value = r == -ECANCELED ? -ECANCELED : m->planned;
    m->returned = true;
    m->body_returns++;
    return m->returned_value;
}

/* ---- futures in flight -------------------------------------------------------------------------- */

enum pend_kind { P_SEND, P_RECV, P_FREAD, P_FWRITE, P_CHAN };

typedef struct pending {
    weft_future *f;
    enum pend_kind kind;
    stream *s;
    iobuf *b;
    size_t len, off;
    unsigned slot;
} pending;

/* For failure messages: [kind][0] the future was done, [kind][1] it was freed while pending. */
static const char *const pend_names[][2] = {
    [P_SEND] = {"a weft_send_async (done)", "a weft_send_async (freed while pending)"},
    [P_RECV] = {"a weft_recv_async (done)", "a weft_recv_async (freed while pending)"},
    [P_FREAD] = {"a weft_read_async (done)", "a weft_read_async (freed while pending)"},
    [P_FWRITE] = {"a weft_write_async (done)", "a weft_write_async (freed while pending)"},
    [P_CHAN] = {"a weft_chan_recv_async (done)", "a weft_chan_recv_async (freed while pending)"},
};

#define MAX_PENDING 32
static pending pend[MAX_PENDING];
static size_t pend_count;

static void pend_add(weft_future *f, enum pend_kind kind, stream *s, iobuf *b, size_t len, unsigned slot, size_t off)
{
    CHECK(f != NULL, "an _async call failed: %s", strerror(errno));
    pend[pend_count++] = (pending){f, kind, s, b, len, off, slot};
}

static void pend_remove(size_t i)
{
    pend[i] = pend[--pend_count];
}

/* p's future is done with result: account for it, retire its buffer, free the future. */
static void pend_settle(size_t i, intptr_t result)
{
    pending *p = &pend[i];
    CHECK(weft_future_done(p->f), "settling a future that is not done");
    switch (p->kind) {
    case P_SEND:
        CHECK(result >= 0 || result == -ECANCELED, "send_async: %jd (%s)", (intmax_t)result, res_name(result));
        p->s->inflight = 0;
        stream_sent(p->s, result, p->len);
        p->s->sending = false;
        break;
    case P_RECV:
        CHECK(result >= 0 || result == -ECANCELED, "recv_async: %jd (%s)", (intmax_t)result, res_name(result));
        stream_received(p->s, iobuf_data(p->b), result, p->len);
        p->s->receiving = false;
        break;
    case P_FWRITE:
        CHECK(result >= 0 || result == -ECANCELED, "write_async: %jd (%s)", (intmax_t)result, res_name(result));
        if (result >= 0)
            file_wrote(p->slot, p->off, iobuf_data(p->b), result, p->len);
        slot_busy[p->slot] = false;
        break;
    case P_FREAD:
        CHECK(result >= 0 || result == -ECANCELED, "read_async: %jd (%s)", (intmax_t)result, res_name(result));
        if (result >= 0)
            file_read_check(p->slot, p->off, iobuf_data(p->b), result, p->len);
        slot_busy[p->slot] = false;
        break;
    case P_CHAN:
        if (result > 0)
            token_received(result);
        else
            CHECK(result == -EPIPE || result == -ECANCELED, "chan_recv_async: %jd (%s)", (intmax_t)result,
                  res_name(result));
        break;
    }
    if (p->b)
        iobuf_returned(p->b, pend_names[p->kind][0]);
    weft_future_free(p->f);
    pend_remove(i);
}

/* The driver runs no deadline here: weft_await of a done future returns its result at once. */
static intptr_t await_done(weft_future *f)
{
    intptr_t r = weft_await(f);
    CHECK(r != -ETIMEDOUT, "weft_await with no deadline in force returned -ETIMEDOUT");
    return r;
}

/* Cancels p and waits until the kernel has let go: the real result, or -ECANCELED. */
static void pend_cancel(size_t i)
{
    int c = weft_future_cancel(pend[i].f);
    CHECK(c == 0 || c == -EALREADY, "weft_future_cancel: %d (%s)", c, res_name(c));
    if (c == -EALREADY)
        CHECK(weft_future_done(pend[i].f), "weft_future_cancel said -EALREADY of a pending future");
    pend_settle(i, await_done(pend[i].f));
}

/* Frees p's future whether or not it is done. What a pending one's buffer holds now is final. */
static void pend_free_early(size_t i)
{
    pending *p = &pend[i];
    if (weft_future_done(p->f)) {
        pend_settle(i, await_done(p->f));
        return;
    }
    if ((p->s && p->s->strict) || no_early_free) {
        pend_cancel(i); /* strict streams account for every byte: never freed while pending */
        return;
    }
    weft_future_free(p->f);
    switch (p->kind) {
    case P_SEND:
        p->s->lossy = true;
        p->s->inflight = 0;
        p->s->sending = false;
        break;
    case P_RECV:
        p->s->lossy = true;
        p->s->receiving = false;
        break;
    case P_FWRITE:
        file_forget(p->slot, p->off, p->len);
        slot_busy[p->slot] = false;
        break;
    case P_FREAD:
        slot_busy[p->slot] = false;
        break;
    case P_CHAN:
        break; /* gives up its turn: it must take no item (checked at the end) */
    }
    if (p->b)
        iobuf_returned(p->b, pend_names[p->kind][1]);
    pend_remove(i);
}

/* ---- the driver's steps ------------------------------------------------------------------------- */

static intptr_t joiner(void *arg)
{
    mtask *m = arg;
    intptr_t r = weft_join(m->handle);
    expect_join(m, r, "weft_join");
    joiners_live--;
    return 0;
}

static void step_spawn(void)
{
    if (active_count >= MAX_LIVE || unreleased_count >= MAX_UNRELEASED)
        return;
    unsigned k = below(B_KINDS * 4);
    enum body_kind kind = k < B_KINDS * 3 ? (enum body_kind)(k % B_KINDS) : (enum body_kind)(k % 3);
    if (kind == B_LONG && !one_in(2))
        kind = B_YIELDS;
    mtask_spawn(mtask_new(kind), true);
}

static mtask *pick_unreleased(void)
{
    return unreleased_count ? unreleased[below((unsigned)unreleased_count)] : NULL;
}

static void release(mtask *m)
{
    unreleased_remove(m);
    m->released = true;
}

static void step_join_via_joiner(void)
{
    mtask *m = pick_unreleased();
    if (!m)
        return;
    release(m);
    weft_task *j = weft_spawn(joiner, m);
    CHECK(j != NULL, "weft_spawn: %s", strerror(errno));
    joiners_live++;
    weft_detach(j);
}

static void step_wait_for(void)
{
    mtask *m = pick_unreleased();
    if (!m)
        return;
    release(m);
    intptr_t r = weft_wait_for(m->handle, 1000 * below(300));
    if (r == -ETIMEDOUT) {
        /* Timed out: it was cancelled and reaped, and ended with -ECANCELED or never ran. */
        CHECK(!m->started || m->returned_value == -ECANCELED,
              "weft_wait_for gave -ETIMEDOUT for task %u, which returned %jd", m->id, (intmax_t)m->returned_value);
        CHECK(m->started ? m->returned : true, "weft_wait_for returned before task %u ended", m->id);
    } else {
        expect_join(m, r, "weft_wait_for");
    }
}

static void step_detach(void)
{
    mtask *m = pick_unreleased();
    if (!m || m->planned < 0) /* a detached failure is logged: keep the log quiet */
        return;
    release(m);
    m->detached = true;
    weft_detach(m->handle);
}

static void step_cancel(void)
{
    if (!active_count)
        return;
    mtask *m = active[below((unsigned)active_count)];
    bool started = m->started, returned = m->returned;
    int r = weft_cancel(m->handle);
    CHECK(r == 0 || r == -ESRCH, "weft_cancel: %d (%s)", r, res_name(r));
    if (returned)
        CHECK(r == -ESRCH, "weft_cancel of task %u, whose body had returned: %d, want -ESRCH", m->id, r);
    if (r == -ESRCH)
        CHECK(weft_future_done(weft_task_future(m->handle)), "weft_cancel said -ESRCH of a task not ended");
    if (r == 0 && !started)
        m->cancelled_unstarted = true;
}

static void step_chan_try(void)
{
    weft_chan *c = chans[below(CHANS)];
    if (one_in(2)) {
        void *item = token_new();
        token_send_result(item, weft_chan_try_send(c, item));
    } else {
        void *item = NULL;
        int r = weft_chan_try_recv(c, &item);
        if (r == 0)
            token_received((intptr_t)item);
        else
            CHECK(r == -EAGAIN || r == -EPIPE, "weft_chan_try_recv: %d (%s)", r, res_name(r));
    }
}

/* Blocking channel calls under a deadline, from the driver. */
static void step_chan_deadline(void)
{
    weft_chan *c = chans[below(CHANS)];
    weft_deadline_push(weft_now() + 1000 * below(200));
    if (one_in(2)) {
        void *item = token_new();
        int r = weft_chan_send(c, item);
        CHECK(r != -ECANCELED, "the driver is never cancelled");
        token_send_result(item, r);
    } else {
        void *item = NULL;
        int r = weft_chan_recv(c, &item);
        if (r == 0)
            token_received((intptr_t)item);
        else
            CHECK(r == -ETIMEDOUT || r == -EPIPE, "weft_chan_recv: %d (%s)", r, res_name(r));
    }
    weft_deadline_pop();
}

static void step_chan_recv_async(void)
{
    if (pend_count < MAX_PENDING)
        pend_add(weft_chan_recv_async(chans[below(CHANS)]), P_CHAN, NULL, NULL, 0, 0, 0);
}

static void step_stream_async(void)
{
    if (pend_count >= MAX_PENDING)
        return;
    stream *s = &streams[below(STREAMS)];
    size_t len = io_len();
    if (one_in(2)) {
        if (s->sending)
            return;
        iobuf *b = send_buffer(s, len);
        s->sending = true;
        s->inflight = len;
        pend_add(weft_send_async(s->wfd, iobuf_data(b), len, 0), P_SEND, s, b, len, 0, 0);
    } else {
        if (s->receiving)
            return;
        iobuf *b = iobuf_new(len);
        s->receiving = true;
        pend_add(weft_recv_async(s->rfd, iobuf_data(b), len, 0), P_RECV, s, b, len, 0, 0);
    }
}

static void step_file_async(void)
{
    unsigned slot = below(FILE_SLOTS);
    if (pend_count >= MAX_PENDING || slot_busy[slot])
        return;
    slot_busy[slot] = true;
    size_t off = below(SLOT_SIZE), len = 1 + below((unsigned)(SLOT_SIZE - off));
    iobuf *b = iobuf_new(len);
    int64_t at = (int64_t)(slot * SLOT_SIZE + off);
    if (one_in(2)) {
        for (size_t i = 0; i < len; i++)
            iobuf_data(b)[i] = (unsigned char)rnd();
        pend_add(weft_write_async(file_fd, iobuf_data(b), len, at), P_FWRITE, NULL, b, len, slot, off);
    } else {
        pend_add(weft_read_async(file_fd, iobuf_data(b), len, at), P_FREAD, NULL, b, len, slot, off);
    }
}

static void step_pending(void)
{
    if (!pend_count)
        return;
    size_t i = below((unsigned)pend_count);
    switch (below(4)) {
    case 0: { /* await for a little while */
        weft_deadline_push(weft_now() + 1000 * below(300));
        intptr_t r = weft_await(pend[i].f);
        weft_deadline_pop();
        if (r == -ETIMEDOUT && !weft_future_done(pend[i].f))
            return; /* still in flight, and untouched */
        pend_settle(i, await_done(pend[i].f));
        return;
    }
    case 1:
        pend_cancel(i);
        return;
    case 2:
        pend_free_early(i);
        return;
    default:
        if (weft_future_done(pend[i].f))
            pend_settle(i, await_done(pend[i].f));
        return;
    }
}

static void step_wait_any(void)
{
    if (!pend_count)
        return;
    weft_future *fs[8];
    size_t idx[8], n = 0;
    for (size_t i = below((unsigned)pend_count); n < 8 && n < pend_count; i = (i + 1) % pend_count) {
        idx[n] = i;
        fs[n++] = pend[i].f;
    }
    uint64_t timeout = 1000 * below(300), t0 = weft_now();
    ssize_t r = weft_wait_any(fs, n, timeout);
    if (r == -ETIMEDOUT) {
        /* A future may have completed in the turn the timer fired: it stays done for later. */
        CHECK(weft_now() - t0 >= timeout, "weft_wait_any timed out early");
        return;
    }
    CHECK(r >= 0 && (size_t)r < n, "weft_wait_any: %zd (%s)", r, res_name(r));
    CHECK(weft_future_done(fs[r]), "weft_wait_any chose a future that is not done");
    for (ssize_t k = 0; k < r; k++)
        CHECK(!weft_future_done(fs[k]), "weft_wait_any returned %zd while future %zd was done too", r, k);
    pend_settle(idx[r], await_done(fs[r]));
}

static void step_stream_sync(void)
{
    mtask fake = {.param = (unsigned)rnd()};
    body_stream_io(&fake);
}

static void driver_step(void)
{
    unsigned w = below(100);
    if (w < 16)
        step_spawn();
    else if (w < 24)
        step_join_via_joiner();
    else if (w < 27)
        step_wait_for();
    else if (w < 31)
        step_detach();
    else if (w < 39)
        step_cancel();
    else if (w < 43)
        EQ(weft_sleep(1000 * below(100)), 0);
    else if (w < 48)
        weft_yield();
    else if (w < 53)
        step_chan_try();
    else if (w < 56)
        step_chan_deadline();
    else if (w < 57)
        chan_replace(below(CHANS));
    else if (w < 61)
        step_chan_recv_async();
    else if (w < 70)
        step_stream_async();
    else if (w < 81)
        step_pending();
    else if (w < 85)
        step_stream_sync();
    else if (w < 91)
        step_file_async();
    else if (w < 94)
        step_wait_any();
    else
        weft_yield();
    if ((step & 7) == 0)
        recheck_some();
}

/* ---- the run ------------------------------------------------------------------------------------- */

static void setup(void)
{
    for (unsigned k = 0; k < STREAMS / 2; k++) {
        int sv[2];
        cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        streams[2 * k] = (stream){.wfd = sv[0], .rfd = sv[1], .id = 2 * k, .strict = true};
        streams[2 * k + 1] = (stream){.wfd = sv[1], .rfd = sv[0], .id = 2 * k + 1, .strict = false};
    }
    char path[] = "/tmp/weft-property-XXXXXX";
    file_fd = mkstemp(path);
    cr_assert(file_fd >= 0, "mkstemp: %s", strerror(errno));
    unlink(path);
    cr_assert(ftruncate(file_fd, FILE_SLOTS * SLOT_SIZE) == 0);
    memset(file_shadow, 0, sizeof file_shadow);
    memset(file_known, 1, sizeof file_known); /* a fresh file reads as zeros */
    for (unsigned i = 0; i < CHANS; i++)
        chan_replace(i);
}

static void teardown(void)
{
    /* Every future in flight: cancelled, and waited for until the kernel let go. */
    while (pend_count)
        pend_cancel(pend_count - 1);
    /* Channels closed: blocked senders and receivers get -EPIPE. */
    for (unsigned i = 0; i < CHANS; i++) {
        weft_chan_close(chans[i]);
        old_chan_add(chans[i]);
        chans[i] = NULL;
    }
    /* Every task still running cancelled, every one not released joined. */
    mtask *copy[MAX_LIVE];
    size_t n = active_count;
    memcpy(copy, active, n * sizeof *copy);
    for (size_t i = 0; i < n; i++) {
        int r = weft_cancel(copy[i]->handle);
        CHECK(r == 0 || r == -ESRCH, "weft_cancel: %d", r);
        if (r == 0 && !copy[i]->started)
            copy[i]->cancelled_unstarted = true;
    }
    while (unreleased_count) {
        mtask *m = unreleased[unreleased_count - 1];
        release(m);
        expect_join(m, weft_join(m->handle), "weft_join at the end");
    }
    /* The joiners and the detached tasks end on their own; every task's end is counted. */
    uint64_t give_up = weft_now() + SEC(20);
    for (;;) {
        size_t missing = joiners_live;
        for (size_t i = 0; i < all_count; i++)
            missing += all_tasks[i]->ends == 0;
        if (!missing)
            break;
        CHECK(weft_now() < give_up, "%zu tasks or joiners never ended", missing);
        EQ(weft_sleep(MS(1)), 0);
    }
    /* What the channels still buffer, then every item accounted for. */
    for (size_t i = 0; i < old_chan_count; i++) {
        void *item;
        int r;
        while ((r = weft_chan_try_recv(old_chans[i], &item)) == 0)
            token_received((intptr_t)item);
        CHECK(r == -EPIPE, "a closed, drained channel: %d (%s)", r, res_name(r));
    }
    for (size_t t = 1; t <= tok_count; t++) {
        CHECK(tok_state[t] != TOK_OFFERED, "the send of item %zu never returned", t);
        if (tok_state[t] == TOK_SENT)
            CHECK(tok_received[t] == 1, "item %zu was sent but never received: lost", t);
    }
    /* The strict streams: every byte sent arrives, in order, once. */
    for (unsigned i = 0; i < STREAMS; i++) {
        stream *s = &streams[i];
        EQ(weft_shutdown(s->wfd, SHUT_WR), 0);
        iobuf *b = iobuf_new(65536);
        for (;;) {
            ssize_t r = weft_recv(s->rfd, iobuf_data(b), b->len, 0);
            CHECK(r >= 0, "draining stream %u: %zd (%s)", i, r, res_name(r));
            if (r == 0)
                break;
            stream_received(s, iobuf_data(b), r, b->len);
        }
        iobuf_free(b);
        if (s->strict)
            CHECK(s->received == s->sent, "stream %u: %" PRIu64 " bytes sent, %" PRIu64 " received", i, s->sent,
                  s->received);
    }
    /* The file holds what the completed writes put there. */
    iobuf *whole = iobuf_new(FILE_SLOTS * SLOT_SIZE);
    EQ(weft_read(file_fd, iobuf_data(whole), whole->len, 0), whole->len);
    for (unsigned slot = 0; slot < FILE_SLOTS; slot++)
        file_read_check(slot, 0, iobuf_data(whole) + slot * SLOT_SIZE, SLOT_SIZE, SLOT_SIZE);
    iobuf_free(whole);
    recheck_all_and_free();
    for (unsigned k = 0; k < STREAMS / 2; k++) {
        EQ(weft_close(streams[2 * k].wfd), 0);
        EQ(weft_close(streams[2 * k].rfd), 0);
    }
    EQ(weft_close(file_fd), 0);
    for (size_t i = 0; i < old_chan_count; i++)
        weft_chan_free(old_chans[i]);
    free(old_chans);
    old_chans = NULL;
    old_chan_count = old_chan_cap = 0;
}

static intptr_t driver(void *arg)
{
    (void)arg;
    setup();
    for (step = 0; step < steps; step++)
        driver_step();
    teardown();
    return 0;
}

Test(property, random_interleavings_keep_every_invariant)
{
    seed = env_u64("WEFT_PROPERTY_SEED", 0);
    if (!seed)
        seed = (mono_ns() ^ ((uint64_t)getpid() << 32)) | 1;
    steps = env_u64("WEFT_PROPERTY_STEPS", 100000);
    no_early_free = env_u64("WEFT_PROPERTY_NO_EARLY_FREE", 0) != 0;
    rng_state = seed;
    printf("property: seed %" PRIu64 ", %" PRIu64 " steps, backend %s\n", seed, steps,
           getenv("WEFT_BACKEND") ? getenv("WEFT_BACKEND") : "default");
    fflush(stdout);

    int fds_before = count_open_fds();
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    intptr_t result = -1;
    EQ(weft_loop_run(l, driver, NULL, &result), 0);
    EQ(result, 0);
    weft_stats st;
    EQ(weft_loop_stats(l, &st), 0);
    weft_loop_free(l);
    step = steps;
    CHECK(st.tasks_live == 0, "%" PRIu64 " tasks alive after the run", st.tasks_live);
    for (size_t i = 0; i < all_count; i++) {
        CHECK(all_tasks[i]->ends == 1, "task %u ended %u times", all_tasks[i]->id, all_tasks[i]->ends);
        CHECK(all_tasks[i]->body_returns <= 1, "task %u's body returned %u times", all_tasks[i]->id,
              all_tasks[i]->body_returns);
        free(all_tasks[i]);
    }
    free(all_tasks);
    free(tok_state);
    free(tok_received);
    CHECK(count_open_fds() == fds_before, "fds open: %d after the run, %d before", count_open_fds(), fds_before);
    printf("property: %zu tasks, %zu channel items, streams sent %" PRIu64 "/%" PRIu64 "/%" PRIu64
           " bytes, %" PRIu64 " switches\n",
           all_count, tok_count, streams[0].sent, streams[2].sent, streams[4].sent, st.switches);
}

/* ---- what the property run found, pinned as examples -------------------------------------------- */

/*
 * weft_future_free on a pending _async read makes the future done (-ECANCELED) at once, and the
 * header asks the buffer to stay valid only until the future is done: once free returns, the caller
 * may reuse or free the buffer, so nothing may write it any more.
 */
#define EARLY_LEN (4 << 20)
#define EARLY_BATCH 8

static void spin_us(unsigned us)
{
    uint64_t until = mono_ns() + 1000ull * us;
    while (mono_ns() < until)
        ;
}

static intptr_t free_pending_read_main(void *arg)
{
    (void)arg;
    char path[] = "/tmp/weft-property-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    unlink(path);
    unsigned char *content = malloc(EARLY_LEN);
    cr_assert(content != NULL);
    memset(content, 0x11, EARLY_LEN);
    EQ(weft_write(fd, content, EARLY_LEN, 0), EARLY_LEN);
    free(content);

    for (int round = 0; round < 10; round++) {
        iobuf *b[EARLY_BATCH];
        weft_future *f[EARLY_BATCH];
        for (int i = 0; i < EARLY_BATCH; i++) {
            b[i] = iobuf_new(EARLY_LEN);
            f[i] = weft_read_async(fd, iobuf_data(b[i]), EARLY_LEN, 0);
            cr_assert(f[i] != NULL);
        }
        spin_us(100); /* without letting the loop turn: executor threads (epoll) start some reads */
        unsigned char *snap[EARLY_BATCH];
        bool done[EARLY_BATCH];
        for (int i = 0; i < EARLY_BATCH; i++) {
            done[i] = weft_future_done(f[i]);
            weft_future_free(f[i]);
            snap[i] = malloc(EARLY_LEN);
            cr_assert(snap[i] != NULL);
            memcpy(snap[i], iobuf_data(b[i]), EARLY_LEN);
        }
        EQ(weft_sleep(MS(5)), 0);
        for (int i = 0; i < EARLY_BATCH; i++) {
            bool written = memcmp(snap[i], iobuf_data(b[i]), EARLY_LEN) != 0;
            cr_assert(done[i] || !written,
                      "round %d, read %d: weft_future_free of the pending weft_read_async returned, then its "
                      "%d-byte buffer was written (a caller that freed it would have been written into)",
                      round, i, EARLY_LEN);
            free(snap[i]);
            iobuf_free(b[i]);
        }
    }
    EQ(weft_close(fd), 0);
    return 0;
}

Test(property, a_read_future_freed_while_pending_leaves_its_buffer_alone)
{
    unsetenv("WEFT_SUBMIT_BATCH"); /* the requests must still be queued, not yet the kernel's */
    EQ(run(free_pending_read_main, NULL), 0);
}

static intptr_t free_pending_recv_main(void *arg)
{
    (void)arg;
    int sv[2];
    cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    for (int round = 0; round < 10; round++) {
        EQ(weft_send(sv[1], "0123456789", 10, 0), 10);
        unsigned char buf[10], snap[10];
        memset(buf, 0x5A, sizeof buf);
        weft_future *f = weft_recv_async(sv[0], buf, sizeof buf, 0);
        cr_assert(f != NULL);
        bool done = weft_future_done(f);
        weft_future_free(f);
        memcpy(snap, buf, sizeof buf);
        EQ(weft_sleep(MS(1)), 0);
        char rest[16];
        ssize_t left = recv(sv[0], rest, sizeof rest, MSG_DONTWAIT);
        if (left < 0)
            left = 0;
        if (done)
            continue; /* it completed before the free: its result was simply not read */
        cr_assert(memcmp(snap, buf, sizeof buf) == 0,
                  "round %d: weft_future_free of the pending weft_recv_async returned, then its buffer was "
                  "written, and %zd of the 10 bytes sent vanished from the socket",
                  round, 10 - left);
        EQ(left, 10); /* a freed recv takes nothing */
    }
    EQ(weft_close(sv[0]), 0);
    EQ(weft_close(sv[1]), 0);
    return 0;
}

Test(property, a_recv_future_freed_while_pending_leaves_its_buffer_alone)
{
    unsetenv("WEFT_SUBMIT_BATCH"); /* the requests must still be queued, not yet the kernel's */
    EQ(run(free_pending_recv_main, NULL), 0);
}
