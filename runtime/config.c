/*
 * The loop's configuration: the caller's weft_config, overridden by the WEFT_* environment
 * variables, with defaults in place of zeros, and every value checked. A value weft cannot honour
 * (not a number, out of range, an unknown backend, a stack the address space cannot hold) makes
 * weft_loop_new fail with a line on stderr that names the field or the variable, so a typo in a
 * deployment's environment is reported rather than ignored.
 */
#include "internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WEFT__DEFAULT_RING_ENTRIES 256
/*
 * io_uring takes at most 32768 submission and 65536 completion entries (IORING_MAX_ENTRIES and
 * IORING_MAX_CQ_ENTRIES); weft asks for a completion queue four times the submission queue, so the
 * submission side's limit is 16384.
 */
#define WEFT__MAX_RING_ENTRIES 16384
/*
 * 256 KiB of address space per task, of which a task touches only what it uses (MAP_NORESERVE): deep
 * enough for getaddrinfo, printf-heavy code and TLS libraries, and the x86-64 address space holds a
 * million of them many times over. Memory per sleeping task stays a page or two.
 */
#define WEFT__DEFAULT_STACK_SIZE (256 * 1024)
#define WEFT__MIN_STACK_SIZE (16 * 1024)
/* The pool maps stacks 64 at a time (stack.c), so even this is 64 GiB of address space per slab, and
 * rounding to pages and adding the guard cannot overflow. */
#define WEFT__MAX_STACK_SIZE (1ull << 30)
/* libuv caps its pool at 1024 threads too; more would be a thread per blocking call, not a pool. */
#define WEFT__MAX_EXECUTOR_THREADS 1024
#define WEFT__MAX_EXECUTOR_QUEUE (1ull << 24)
/* asyncio's slow_callback_duration is 100 ms too. */
#define WEFT__DEFAULT_SLOW_NS (100 * 1000000ull)
/*
 * A minimum wait delays every completion by up to its length: past a few hundred microseconds it
 * only adds latency (a batch of completions costs the loop microseconds to take), and what waits
 * milliseconds on purpose is a timer. 10 ms bounds typos (a value meant in microseconds given in
 * nanoseconds' place, say) without refusing any wait someone measured.
 */
#define WEFT__MAX_MIN_WAIT_NS (10 * 1000000ull)
#define WEFT__DEFAULT_WAIT_BATCH 32
/* 16 Mi events of 56 bytes: 896 MiB, beyond which a trace is better taken in pieces (weft_trace_flush). */
#define WEFT__MAX_TRACE_EVENTS (1ull << 24)
/*
 * Receive streams. 16 KiB buffers take a whole TCP segment train per completion where the kernel
 * fills one buffer per arrival, and hold hundreds of small messages where it consumes them
 * incrementally. The ring starts at 64 (1 MiB, touched only as filled) and doubles on demand: a
 * buffer is back in the ring as soon as its bytes are copied out, so the ring needs about what
 * arrives between two loop turns, not a buffer per connection. io_uring's buffer rings hold at most
 * 32768 entries.
 */
#define WEFT__DEFAULT_RECV_BUFFER_SIZE (16 * 1024)
#define WEFT__MIN_RECV_BUFFER_SIZE 256
#define WEFT__MAX_RECV_BUFFER_SIZE (1024 * 1024)
#define WEFT__DEFAULT_RECV_BUFFERS 64
#define WEFT__DEFAULT_RECV_BUFFERS_MAX 4096
#define WEFT__MAX_RECV_BUFFERS 32768
#define WEFT__DEFAULT_RECV_KEEP_MAX (256 * 1024)
#define WEFT__MAX_RECV_KEEP_MAX (1ull << 30)

/* A numeric field of weft_config and the environment variable that overrides it. */
typedef struct setting {
    const char *field;   /* for messages: weft_config.<field> */
    const char *env;
    size_t offset, width; /* where the field is, and its size (4 or 8 bytes) */
    uint64_t env_unit;   /* the variable's unit in the field's: 1000 for microseconds into ns */
    bool size_suffix;    /* the variable may end in k, m or g (KiB, MiB, GiB) */
    uint64_t max;        /* the largest value that means something */
    const char *why_max; /* said when a value is above it */
} setting;

#define SETTING(name, var, unit, suffix, limit, why)                                                   \
    {#name, var, offsetof(weft_config, name), sizeof(((weft_config *)0)->name), unit, suffix, limit, why}

static const setting settings[] = {
    SETTING(ring_entries, "WEFT_RING_ENTRIES", 1, false, WEFT__MAX_RING_ENTRIES,
            "io_uring takes at most 16384 with weft's completion queue four times as large"),
    SETTING(stack_size, "WEFT_STACK_SIZE", 1, true, WEFT__MAX_STACK_SIZE, "a task stack may be at most 1 GiB"),
    SETTING(executor_threads, "WEFT_EXECUTOR_THREADS", 1, false, WEFT__MAX_EXECUTOR_THREADS,
            "an executor has at most 1024 threads"),
    SETTING(executor_queue, "WEFT_EXECUTOR_QUEUE", 1, false, WEFT__MAX_EXECUTOR_QUEUE,
            "a queue of more than 16777216 jobs bounds nothing"),
    SETTING(submit_batch, "WEFT_SUBMIT_BATCH", 1, false, WEFT__MAX_RING_ENTRIES,
            "a batch is at most the ring's entries, and io_uring takes at most 16384"),
    SETTING(idle_poll_ns, "WEFT_IDLE_POLL_US", 1000, false, UINT64_MAX, NULL),
    SETTING(slow_task_ns, "WEFT_SLOW_MS", 1000000, false, UINT64_MAX, NULL),
    SETTING(send_zc_min, "WEFT_SEND_ZC_MIN", 1, true, UINT64_MAX, NULL),
    SETTING(min_wait_ns, "WEFT_MIN_WAIT_US", 1000, false, WEFT__MAX_MIN_WAIT_NS,
            "a minimum wait is at most 10 ms (10000 us): it delays every completion by up to that much"),
    SETTING(wait_batch, "WEFT_WAIT_BATCH", 1, false, 4 * WEFT__MAX_RING_ENTRIES,
            "a batch is at most the completion queue, and io_uring's has at most 65536 entries"),
    SETTING(trace_events, "WEFT_TRACE_EVENTS", 1, false, WEFT__MAX_TRACE_EVENTS,
            "a trace keeps at most 16777216 events (896 MiB)"),
    SETTING(recv_buffer_size, "WEFT_RECV_BUFFER_SIZE", 1, true, WEFT__MAX_RECV_BUFFER_SIZE,
            "a ring buffer is at most 1 MiB"),
    SETTING(recv_buffers, "WEFT_RECV_BUFFERS", 1, false, WEFT__MAX_RECV_BUFFERS,
            "io_uring's buffer rings hold at most 32768 buffers"),
    SETTING(recv_buffers_max, "WEFT_RECV_BUFFERS_MAX", 1, false, WEFT__MAX_RECV_BUFFERS,
            "io_uring's buffer rings hold at most 32768 buffers"),
    SETTING(recv_keep_max, "WEFT_RECV_KEEP_MAX", 1, true, WEFT__MAX_RECV_KEEP_MAX,
            "a connection keeping more than 1 GiB for its reader bounds nothing"),
};

static uint64_t field_get(const weft_config *c, const setting *s)
{
    if (s->width == sizeof(uint32_t)) {
        uint32_t v;
        memcpy(&v, (const char *)c + s->offset, sizeof v);
        return v;
    }
    uint64_t v;
    memcpy(&v, (const char *)c + s->offset, sizeof v);
    return v;
}

/* Stores v, which the caller has checked fits the field. */
static void field_set(weft_config *c, const setting *s, uint64_t v)
{
    if (s->width == sizeof(uint32_t)) {
        uint32_t v32 = (uint32_t)v;
        memcpy((char *)c + s->offset, &v32, sizeof v32);
    } else {
        memcpy((char *)c + s->offset, &v, sizeof v);
    }
}

/*
 * The value of s's variable into *out: 0 if it is unset or empty (the field stands), 1 if set, or
 * -EINVAL for anything but digits (with k, m or g after them for a size): no sign, no spaces, no
 * other suffix, nothing too large for 64 bits in the field's unit.
 */
static int env_value(const setting *s, uint64_t *out)
{
    const char *v = getenv(s->env);
    if (!v || !*v)
        return 0;
    const char *want = s->size_suffix ? "a size in bytes: digits, optionally followed by k, m or g"
                                      : "a number: digits only";
    if (*v < '0' || *v > '9') {
        weft__log("%s is \"%.64s\": not %s\n", s->env, v, want);
        return -EINVAL;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    uint64_t unit = s->env_unit;
    if (s->size_suffix && *end) {
        const char *suffixes = "kmg";
        const char *at = strchr(suffixes, *end | 0x20); /* | 0x20: K, M and G too */
        if (at) {
            unit <<= 10 * (unsigned)(at - suffixes + 1);
            end++;
        }
    }
    if (*end) {
        weft__log("%s is \"%.64s\": not %s\n", s->env, v, want);
        return -EINVAL;
    }
    if (errno == ERANGE || n > UINT64_MAX / unit) {
        weft__log("%s is \"%.64s\": too large\n", s->env, v);
        return -EINVAL;
    }
    *out = (uint64_t)n * unit;
    return 1;
}

/* Takes s's variable over the field, then checks the value against s->max, naming its source. */
static int setting_resolve(weft_config *c, const setting *s)
{
    uint64_t v;
    int r = env_value(s, &v);
    if (r < 0)
        return r;
    if (!r)
        v = field_get(c, s);
    if (v > s->max) {
        /* A variable is quoted as given (it may have its own unit or a suffix), a field as a number. */
        if (r)
            weft__log("%s is \"%.64s\": %s\n", s->env, getenv(s->env), s->why_max);
        else
            weft__log("weft_config.%s is %llu: %s\n", s->field, (unsigned long long)v, s->why_max);
        return -EINVAL;
    }
    field_set(c, s, v);
    return 0;
}

/* The backend named by WEFT_BACKEND, else the field: NULL (choose), "io_uring" or "epoll". Names
 * are matched exactly, as weft_loop_backend returns them. */
static int backend_resolve(weft_config *c)
{
    const char *source = "weft_config.backend";
    const char *env = getenv("WEFT_BACKEND");
    if (env && *env) {
        c->backend = env;
        source = "WEFT_BACKEND";
    }
    const char *b = c->backend;
    if (!b || strcmp(b, "io_uring") == 0 || strcmp(b, "epoll") == 0)
        return 0;
    bool case_only = strcasecmp(b, "io_uring") == 0 || strcasecmp(b, "epoll") == 0;
    weft__log("%s is \"%.64s\": the backends are \"io_uring\" and \"epoll\"%s\n", source, b,
              case_only ? ", in lower case" : "");
    return -EINVAL;
}

/*
 * Maps one stack of the resolved size through a pool of its own, as the loop's first task will, so
 * that a size within bounds that this process still cannot map (an address-space limit, strict
 * overcommit) fails here with a message instead of as a bare -ENOMEM from the first spawn.
 */
static int stack_check(size_t stack_size)
{
    weft__stack_pool pool;
    weft__stack_pool_init(&pool, stack_size);
    weft__stack *s = weft__stack_get(&pool);
    int err = errno;
    weft__stack_pool_fini(&pool);
    if (s)
        return 0;
    weft__log("task stacks of %zu KiB cannot be mapped: %s (stacks are mapped 64 at a time; see ulimit -v "
              "and vm.overcommit_memory, or lower stack_size / WEFT_STACK_SIZE)\n",
              stack_size / 1024, weft_strerror(err ? err : ENOMEM));
    return -ENOMEM;
}

/*
 * The batched wait's pair: a batch means nothing without a minimum wait (the kernel would wait for
 * the whole batch, however long it takes), and cannot be larger than the completion queue that holds
 * it. The minimum wait is rounded up to the kernel's microseconds.
 */
static int wait_resolve(weft_config *c)
{
    if (c->wait_batch && !c->min_wait_ns) {
        weft__log("wait_batch is %u without min_wait_ns: a batch is waited for only during a minimum wait "
                  "(set min_wait_ns / WEFT_MIN_WAIT_US too, or leave wait_batch 0)\n", c->wait_batch);
        return -EINVAL;
    }
    if (!c->min_wait_ns)
        return 0;
    if (c->wait_batch > 4 * c->ring_entries) {
        weft__log("wait_batch is %u, more than the completion queue's %u entries: it could never fill\n",
                  c->wait_batch, 4 * c->ring_entries);
        return -EINVAL;
    }
    if (!c->wait_batch)
        c->wait_batch = WEFT__DEFAULT_WAIT_BATCH;
    c->min_wait_ns = (c->min_wait_ns + 999) / 1000 * 1000;
    return 0;
}

/* The receive streams' buffers: defaults for zeros, a buffer large enough to be worth a completion,
 * and a ring that can hold what it starts with. */
static int recv_resolve(weft_config *c)
{
    if (!c->recv_buffer_size)
        c->recv_buffer_size = WEFT__DEFAULT_RECV_BUFFER_SIZE;
    if (c->recv_buffer_size < WEFT__MIN_RECV_BUFFER_SIZE) {
        weft__log("recv_buffer_size is %zu: a ring buffer holds at least %d bytes\n", c->recv_buffer_size,
                  WEFT__MIN_RECV_BUFFER_SIZE);
        return -EINVAL;
    }
    if (!c->recv_buffers)
        c->recv_buffers = WEFT__DEFAULT_RECV_BUFFERS;
    if (!c->recv_buffers_max)
        c->recv_buffers_max = c->recv_buffers > WEFT__DEFAULT_RECV_BUFFERS_MAX ? c->recv_buffers
                                                                               : WEFT__DEFAULT_RECV_BUFFERS_MAX;
    if (c->recv_buffers_max < c->recv_buffers) {
        weft__log("recv_buffers_max is %u, fewer than recv_buffers (%u): the ring could not hold its first "
                  "buffers\n", c->recv_buffers_max, c->recv_buffers);
        return -EINVAL;
    }
    if (!c->recv_keep_max)
        c->recv_keep_max = WEFT__DEFAULT_RECV_KEEP_MAX;
    return 0;
}

/* weft 0.1's weft_config, backend to submit_batch: what a size of 0 stands for (see weft.h). */
#define CONFIG_SIZE_0_1 (offsetof(weft_config, submit_batch) + sizeof(unsigned))

/*
 * Copies as much of the caller's configuration as its size says it has, zeros (defaults) beyond. A
 * caller built against a newer header may pass a larger structure: fields this library lacks are
 * fine left zero, and refused when set, as the library cannot do what they ask (the rule Linux
 * applies to openat2's and clone3's growing structures).
 */
static int config_copy(weft_config *out, const weft_config *in)
{
    memset(out, 0, sizeof *out);
    if (!in)
        return 0;
    size_t size = in->size ? in->size : CONFIG_SIZE_0_1;
    if (size < CONFIG_SIZE_0_1) {
        weft__log("weft_config.size is %zu: set it to 0 or sizeof(weft_config) (WEFT_CONFIG_INIT)\n", size);
        return -EINVAL;
    }
    if (size > sizeof *out) {
        const unsigned char *beyond = (const unsigned char *)in + sizeof *out;
        for (size_t i = 0; i < size - sizeof *out; i++) {
            if (beyond[i]) {
                weft__log("weft_config of %zu bytes sets a field at byte %zu that weft %s lacks (it knows %zu "
                          "bytes): the program was built against a newer weft.h than the library it runs with\n",
                          size, sizeof *out + i, weft_version(), sizeof *out);
                return -E2BIG;
            }
        }
        size = sizeof *out;
    }
    memcpy(out, in, size);
    return 0;
}

/* The trace's file: WEFT_TRACE, else the field; NULL (no trace) when neither names one. */
static void trace_resolve(weft_config *c)
{
    const char *env = getenv("WEFT_TRACE");
    if (env && *env)
        c->trace_path = env;
    else if (c->trace_path && !*c->trace_path)
        c->trace_path = NULL;
}

int weft__config_resolve(weft_config *out, const weft_config *in)
{
    int r = config_copy(out, in);
    if (r < 0)
        return r;
    out->size = sizeof *out;
    trace_resolve(out);
    r = backend_resolve(out);
    for (size_t i = 0; r == 0 && i < sizeof settings / sizeof settings[0]; i++)
        r = setting_resolve(out, &settings[i]);
    if (r < 0)
        return r;
    if (!out->ring_entries)
        out->ring_entries = WEFT__DEFAULT_RING_ENTRIES;
    if (out->submit_batch > out->ring_entries) {
        /* The submission queue would always be flushed for room before such a batch filled. */
        weft__log("submit_batch is %u, more than the ring's %u entries: it could never fill\n", out->submit_batch,
                  out->ring_entries);
        return -EINVAL;
    }
    r = wait_resolve(out);
    if (r == 0)
        r = recv_resolve(out);
    if (r < 0)
        return r;
    if (!out->stack_size)
        out->stack_size = WEFT__DEFAULT_STACK_SIZE;
    if (out->stack_size < WEFT__MIN_STACK_SIZE)
        out->stack_size = WEFT__MIN_STACK_SIZE;
    if (!out->slow_task_ns)
        out->slow_task_ns = WEFT__DEFAULT_SLOW_NS;
    return stack_check(out->stack_size);
}
