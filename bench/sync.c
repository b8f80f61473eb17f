/*
 * bench/sync.c — coordination between tasks of one loop, and what the slow-task watchdog costs.
 *
 *   chan      weft_chan_send + weft_chan_recv between two tasks, one sending N items and one receiving
 *             them: ns per item (total / N), for capacity 0 (a rendezvous: every item is a hand-over
 *             between the two tasks) and capacity 64 (the sender fills the buffer, then the receiver
 *             drains it).
 *   mutex     weft_mutex_lock + weft_mutex_unlock. uncontended: one task locks and unlocks in a loop (ns
 *             per pair). contended: 4 tasks each lock, weft_yield while holding it, unlock, N times: every
 *             lock is a hand-off from the previous holder to a parked waiter (ns per lock = total / 4N;
 *             it includes the holder's yield). yield-only: the same 4 tasks with the mutex left out (a
 *             yield each iteration), the reference the contended figure is read against.
 *   watchdog  the yield loop of bench/fiber.c (two tasks weft_yield-ing to each other, ns per yield) on a
 *             loop with the slow-task watchdog on (the default, slow_task_ns = 0: 100 ms) and off
 *             (slow_task_ns = UINT64_MAX: no watchdog thread), side by side.
 *   trace-yield  the same yield loop with the timeline trace off (the default) and on (trace_path set, a
 *             ring of 65536 events, the file in /tmp written when the loop ends, outside the timing):
 *             what recording costs per yield, a switch recorded as the end of one run and the start
 *             of the next. What the trace costs when off is the yield workload itself, against a build
 *             without it (bench/run --baseline).
 *
 * chan and mutex run with the watchdog off: a measuring task holds the loop for a whole measurement
 * (the uncontended mutex loop never suspends), which the watchdog would rightly report. What the
 * watchdog costs is the third workload.
 *
 * Every measurement runs in a child process of its own, interleaved by round (bench/harness.h); the
 * process is pinned to CPU 0. Output: JSON lines for bench/report.py; progress on stderr.
 *
 * Usage: sync [--rounds N] [--target-ms MS] [--quick|--full] [chan|mutex|watchdog|trace-yield ...]
 */
#include "harness.h"

#include <sys/utsname.h>

#include "weft.h"

#define CONTENDED_TASKS 4

/* ---- running a measurement inside a weft loop ------------------------------------------------- */

/* trace_path NULL: no trace. */
static void in_loop_traced(uint64_t slow_task_ns, const char *trace_path, weft_fn main_fn, void *arg)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.backend = "io_uring";
    cfg.slow_task_ns = slow_task_ns;
    cfg.trace_path = trace_path;
    weft_loop *l = weft_loop_new(&cfg);
    if (!l) {
        /* The workloads here do no I/O: where io_uring is refused, measure on epoll rather than not. */
        cfg.backend = NULL;
        l = weft_loop_new(&cfg);
    }
    if (!l) {
        fail("weft_loop_new: %s", strerror(errno));
        return;
    }
    intptr_t res = 0;
    int rc = weft_loop_run(l, main_fn, arg, &res);
    weft_stats st;
    if (weft_loop_stats(l, &st) == 0 && st.slow_task_reports)
        fail("the watchdog reported %llu slow task(s): the figures include a stall",
             (unsigned long long)st.slow_task_reports);
    weft_loop_free(l);
    if (rc < 0)
        fail("weft_loop_run: %s", strerror(-rc));
    else if (res < 0)
        fail("benchmark task returned %s", strerror((int)-res));
}

static void in_loop(uint64_t slow_task_ns, weft_fn main_fn, void *arg)
{
    in_loop_traced(slow_task_ns, NULL, main_fn, arg);
}

/* Spawns fn(arg) count times and joins them all; a failing task fails the measurement. */
static void spawn_join(weft_fn fn, void *const *args, int count)
{
    weft_task *t[CONTENDED_TASKS + 2];
    int made = 0;
    for (; made < count; made++)
        if (!(t[made] = weft_spawn(fn, args[made]))) {
            fail("weft_spawn: %s", strerror(errno));
            break;
        }
    for (int i = 0; i < made; i++) {
        intptr_t r = weft_join(t[i]);
        if (r < 0)
            fail("a benchmark task ended with %s", weft_strerror((int)r));
    }
}

/* ---- chan --------------------------------------------------------------------------------------- */

typedef struct chan_job {
    weft_chan *c;
    uint64_t n;
} chan_job;

static intptr_t chan_sender(void *arg)
{
    chan_job *j = arg;
    for (uint64_t i = 0; i < j->n; i++) {
        int r = weft_chan_send(j->c, (void *)(uintptr_t)(i + 1));
        if (r < 0)
            return r;
    }
    return 0;
}

static intptr_t chan_receiver(void *arg)
{
    chan_job *j = arg;
    for (uint64_t i = 0; i < j->n; i++) {
        void *item = NULL;
        int r = weft_chan_recv(j->c, &item);
        if (r < 0)
            return r;
        if ((uintptr_t)item != i + 1)
            return -EILSEQ; /* out of order or lost: a broken channel must not win */
    }
    return 0;
}

static uint64_t chan_run(void *st, uint64_t n)
{
    size_t capacity = *(const size_t *)st;
    chan_job j = {.c = weft_chan_new(capacity), .n = n};
    if (!j.c) {
        fail("weft_chan_new: %s", strerror(errno));
        return 1;
    }
    void *args[2] = {&j, &j};
    uint64_t t0 = now_ns();
    weft_task *r = weft_spawn(chan_receiver, args[0]);
    weft_task *s = weft_spawn(chan_sender, args[1]);
    intptr_t rr = r ? weft_join(r) : -ENOMEM, rs = s ? weft_join(s) : -ENOMEM;
    uint64_t e = now_ns() - t0;
    if (rr == -EILSEQ)
        fail("capacity %zu: items came out of the channel out of order", capacity);
    else if (rr < 0 || rs < 0)
        fail("capacity %zu: %s", capacity, weft_strerror((int)(rr < 0 ? rr : rs)));
    weft_chan_free(j.c);
    return e;
}

static intptr_t chan_main(void *arg)
{
    measure("ns_per_item", chan_run, arg, 1.0);
    return 0;
}

static void m_chan(size_t capacity) { in_loop(UINT64_MAX, chan_main, &capacity); }
static void m_chan0(void) { m_chan(0); }
static void m_chan64(void) { m_chan(64); }

/* ---- mutex -------------------------------------------------------------------------------------- */

typedef struct mutex_job {
    weft_mutex *m;
    uint64_t n;
    bool hold_across_yield; /* false with m NULL: the yield-only reference */
} mutex_job;

static intptr_t mutex_worker(void *arg)
{
    mutex_job *j = arg;
    for (uint64_t i = 0; i < j->n; i++) {
        if (j->m) {
            int r = weft_mutex_lock(j->m);
            if (r < 0)
                return r;
        }
        if (j->hold_across_yield)
            weft_yield();
        if (j->m)
            weft_mutex_unlock(j->m);
    }
    return 0;
}

/* state: how many tasks (1: uncontended, no yield), and whether a mutex is used at all */
typedef struct mutex_cfg {
    int tasks;
    bool use_mutex;
} mutex_cfg;

static uint64_t mutex_run(void *st, uint64_t n)
{
    const mutex_cfg *cfg = st;
    mutex_job j = {.m = NULL, .n = n, .hold_across_yield = cfg->tasks > 1};
    if (cfg->use_mutex && !(j.m = weft_mutex_new())) {
        fail("weft_mutex_new: %s", strerror(errno));
        return 1;
    }
    void *args[CONTENDED_TASKS];
    for (int i = 0; i < cfg->tasks; i++)
        args[i] = &j;
    uint64_t t0 = now_ns();
    spawn_join(mutex_worker, args, cfg->tasks);
    uint64_t e = now_ns() - t0;
    weft_mutex_free(j.m);
    return e;
}

static intptr_t mutex_main(void *arg)
{
    const mutex_cfg *cfg = arg;
    measure("ns_per_lock", mutex_run, (void *)cfg, (double)cfg->tasks);
    return 0;
}

static void m_mutex_uncontended(void)
{
    mutex_cfg cfg = {1, true};
    in_loop(UINT64_MAX, mutex_main, &cfg);
}

static void m_mutex_contended(void)
{
    mutex_cfg cfg = {CONTENDED_TASKS, true};
    in_loop(UINT64_MAX, mutex_main, &cfg);
}

static void m_mutex_yield_only(void)
{
    mutex_cfg cfg = {CONTENDED_TASKS, false};
    in_loop(UINT64_MAX, mutex_main, &cfg);
}

/* ---- watchdog ----------------------------------------------------------------------------------- */

static intptr_t yielder(void *arg)
{
    uint64_t n = *(const uint64_t *)arg;
    for (uint64_t i = 0; i < n; i++)
        weft_yield();
    return 0;
}

static uint64_t yield_run(void *st, uint64_t n)
{
    (void)st;
    void *args[2] = {&n, &n};
    uint64_t t0 = now_ns();
    spawn_join(yielder, args, 2);
    return now_ns() - t0;
}

static intptr_t yield_main(void *arg)
{
    (void)arg;
    measure("ns_per_yield", yield_run, NULL, 2.0);
    return 0;
}

static void m_watchdog_on(void) { in_loop(0, yield_main, NULL); }
static void m_watchdog_off(void) { in_loop(UINT64_MAX, yield_main, NULL); }

/* ---- trace ------------------------------------------------------------------------------------- */

/* Both with the default watchdog, as a program runs; only the trace differs. */
static void m_trace_off(void) { in_loop(0, yield_main, NULL); }

static void m_trace_on(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-bench-trace-%d.json", (int)getpid());
    in_loop_traced(0, path, yield_main, NULL);
    unlink(path);
}

/* ---- the contenders --------------------------------------------------------------------------- */

static const contender contenders[] = {
    {"chan", "cap0", m_chan0, NULL, NULL},
    {"chan", "cap64", m_chan64, NULL, NULL},
    {"mutex", "uncontended", m_mutex_uncontended, NULL, NULL},
    {"mutex", "contended", m_mutex_contended, NULL, NULL},
    {"mutex", "yield-only", m_mutex_yield_only, NULL, NULL},
    {"watchdog", "watchdog-on", m_watchdog_on, NULL, NULL},
    {"watchdog", "watchdog-off", m_watchdog_off, NULL, NULL},
    {"trace-yield", "trace-off", m_trace_off, NULL, NULL},
    {"trace-yield", "trace-on", m_trace_on, NULL, NULL},
};
#define NCONTENDERS (sizeof contenders / sizeof contenders[0])

static const char *const workloads[] = {"chan", "mutex", "watchdog", "trace-yield"};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

static void usage(FILE *to)
{
    fprintf(to, "usage: sync [--rounds N] [--target-ms MS] [--quick|--full] [chan|mutex|watchdog|trace-yield ...]\n");
}

int main(int argc, char **argv)
{
    bool want[NWORKLOADS] = {false};
    bool any = false, rounds_set = false, target_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int took = bench_common_option("sync", argc, argv, &i, &rounds_set, &target_set);
        if (took < 0)
            return 2;
        if (took)
            continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            size_t k = 0;
            while (k < NWORKLOADS && strcmp(a, workloads[k]))
                k++;
            if (k == NWORKLOADS) {
                fprintf(stderr, "sync: unknown workload or option '%s'\n", a);
                usage(stderr);
                return 2;
            }
            want[k] = any = true;
        }
    }
    if (!any)
        for (size_t k = 0; k < NWORKLOADS; k++)
            want[k] = true;
    bench_mode_lengths(rounds_set, target_set, 40, 80, 200);
    bench_clear_env();
    bool pinned = pin_thread(0, 0);
    if (!pinned)
        fprintf(stderr, "sync: could not pin to CPU 0: %s (measuring unpinned)\n", strerror(errno));

    struct utsname u;
    uname(&u);
    printf("{\"type\":\"meta\",\"program\":\"sync\",\"mode\":");
    json_str(bench_opt.mode);
    printf(",\"rounds\":%u,\"target_ms\":%g,\"pinned_cpu\":%d,\"contended_tasks\":%d,\"kernel\":",
           bench_opt.rounds, bench_opt.target_ms, pinned ? 0 : -1, CONTENDED_TASKS);
    json_str(u.release);
    printf("}\n");
    fflush(stdout);

    for (size_t k = 0; k < NWORKLOADS; k++)
        if (want[k])
            bench_run_workload(workloads[k], contenders, NCONTENDERS, bench_opt.rounds, 30, false);
    return 0;
}
