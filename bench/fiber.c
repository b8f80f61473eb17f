/*
 * bench/fiber.c — fiber microbenchmarks for weft, with the baselines users would pick instead.
 *
 *   switch  one context switch: weft__ctx_switch vs glibc swapcontext vs boost.context fcontext,
 *           each a ping-pong between the thread's own context and one fiber (ns = total / 2n)
 *   yield   weft_yield between two tasks through the scheduler (ns = total / 2n), next to the bare
 *           weft__ctx_switch it is built on, so the scheduler's share shows and machine drift is caught
 *   spawn   weft_spawn of an empty task + weft_join, vs pthread_create + pthread_join of an empty thread,
 *           next to one bare weft__ctx_switch (metric ns_per_switch) to state it in switches
 *   tasks   1,000,000 live tasks (parked in weft_sleep, or in weft_await of a future nobody resolves):
 *           time to create them (spawn + first run up to the park), RSS and page tables per task, time
 *           to reap them (cancel + join)
 *
 * Contenders are interleaved in rounds (A B C, then B C A ...). Every measurement runs in a child process of
 * its own (bench/harness.h), so a contender that crashes or hangs is reported as failed without taking
 * the others with it, and the 1M-task rounds each start from a fresh heap. The process pins itself to
 * CPU 0 first; the children inherit that.
 *
 * Output: JSON lines on stdout for bench/report.py (see bench/harness.h); progress on stderr.
 *
 * Usage: fiber [--rounds N] [--task-rounds N] [--tasks N] [--target-ms MS] [--quick|--full] [WORKLOAD...]
 */
#include "harness.h"

#include <pthread.h>
#include <sys/utsname.h>
#include <ucontext.h>

#ifndef BENCH_NO_WEFT
#include "internal.h"
#include "weft.h"
#endif

/* ---- options --------------------------------------------------------------------------------- */

static struct {
    unsigned task_rounds; /* rounds of the 1M-task workload */
    unsigned long tasks;  /* live tasks in the tasks workload */
} opt = {3, 1000000};

static void *stack_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) {
        fail("mmap of a %zu-byte stack: %s", size, strerror(errno));
        return NULL;
    }
    return p;
}

#define FIBER_STACK (64 * 1024)

/* ---- switch: weft ----------------------------------------------------------------------------- */

#ifndef BENCH_NO_WEFT
static struct {
    weft__ctx main, fib;
} wsw;

static void wsw_entry(void *arg)
{
    (void)arg;
    weft__ctx_entered(&wsw.fib);
    for (;;)
        weft__ctx_switch(&wsw.fib, &wsw.main);
}

static uint64_t wsw_run(void *st, uint64_t n)
{
    (void)st;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        weft__ctx_switch(&wsw.main, &wsw.fib);
    return now_ns() - t0;
}

static void switch_weft(const char *metric)
{
    void *stack = stack_map(FIBER_STACK);
    if (!stack)
        return;
    weft__ctx_init_thread(&wsw.main);
    weft__ctx_make(&wsw.fib, stack, FIBER_STACK, wsw_entry, NULL);
    measure(metric, wsw_run, NULL, 2.0);
    weft__ctx_destroy(&wsw.fib);
}

static void m_switch_weft(void) { switch_weft("ns_per_switch"); }

/* The yield workload's in-run reference: the bare switch a yield is built on, without the scheduler. */
static void m_yield_ctx_switch(void) { switch_weft("ns_per_yield"); }

/* The spawn workload's: a spawn+join is two switches and the task's set-up, so its cost is stated in
 * bare switches measured in the same round (the metric is ns per switch). */
static void m_spawn_ctx_switch(void) { switch_weft("ns_per_switch"); }
#endif

/* ---- switch: glibc swapcontext ---------------------------------------------------------------- */

static ucontext_t uc_main, uc_fib;

static void uc_entry(void)
{
    for (;;)
        swapcontext(&uc_fib, &uc_main);
}

static uint64_t uc_run(void *st, uint64_t n)
{
    (void)st;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        if (swapcontext(&uc_main, &uc_fib) != 0) {
            fail("swapcontext: %s", strerror(errno));
            break;
        }
    return now_ns() - t0;
}

static void m_switch_swapcontext(void)
{
    void *stack = stack_map(FIBER_STACK);
    if (!stack)
        return;
    if (getcontext(&uc_fib) != 0) {
        fail("getcontext: %s", strerror(errno));
        return;
    }
    uc_fib.uc_stack.ss_sp = stack;
    uc_fib.uc_stack.ss_size = FIBER_STACK;
    uc_fib.uc_link = NULL;
    makecontext(&uc_fib, uc_entry, 0);
    measure("ns_per_switch", uc_run, NULL, 2.0);
}

/* ---- switch: boost.context fcontext ----------------------------------------------------------- */

#ifdef BENCH_HAVE_FCONTEXT
typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx;
    void *data;
} transfer_t;
transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

static fcontext_t fc_fib;

static void fc_entry(transfer_t t)
{
    for (;;)
        t = jump_fcontext(t.fctx, NULL);
}

static uint64_t fc_run(void *st, uint64_t n)
{
    (void)st;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++)
        fc_fib = jump_fcontext(fc_fib, NULL).fctx;
    return now_ns() - t0;
}

static void m_switch_fcontext(void)
{
    char *stack = stack_map(FIBER_STACK);
    if (!stack)
        return;
    fc_fib = make_fcontext(stack + FIBER_STACK, FIBER_STACK, fc_entry);
    measure("ns_per_switch", fc_run, NULL, 2.0);
}
#endif

/* ---- running a measurement inside a weft loop ------------------------------------------------- */

#ifndef BENCH_NO_WEFT
static void in_weft(weft_fn main_fn, void *arg)
{
    intptr_t res = 0;
    int rc = weft_run(main_fn, arg, &res);
    if (rc < 0)
        fail("weft_run: %s", strerror(-rc));
    else if (res < 0)
        fail("benchmark task returned %s", strerror((int)-res));
}

/* ---- yield ------------------------------------------------------------------------------------ */

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
    uint64_t t0 = now_ns();
    weft_task *a = weft_spawn(yielder, &n);
    weft_task *b = weft_spawn(yielder, &n);
    if (!a || !b) {
        fail("weft_spawn: %s", strerror(errno));
        if (a)
            weft_join(a);
        if (b)
            weft_join(b);
        return 1;
    }
    intptr_t ra = weft_join(a), rb = weft_join(b);
    uint64_t e = now_ns() - t0;
    if (ra < 0 || rb < 0)
        fail("weft_join of a yielding task: %s", strerror((int)-(ra < 0 ? ra : rb)));
    return e;
}

static intptr_t yield_main(void *arg)
{
    (void)arg;
    measure("ns_per_yield", yield_run, NULL, 2.0);
    return 0;
}

static void m_yield_weft(void) { in_weft(yield_main, NULL); }

/* ---- spawn+join: weft ------------------------------------------------------------------------- */

static intptr_t empty_task(void *arg)
{
    (void)arg;
    return 0;
}

static uint64_t spawn_run(void *st, uint64_t n)
{
    (void)st;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        weft_task *t = weft_spawn(empty_task, NULL);
        if (!t) {
            fail("weft_spawn: %s", strerror(errno));
            break;
        }
        intptr_t r = weft_join(t);
        if (r != 0) {
            fail("weft_join of an empty task returned %" PRIdPTR, r);
            break;
        }
    }
    return now_ns() - t0;
}

static intptr_t spawn_main(void *arg)
{
    (void)arg;
    measure("ns_per_spawn_join", spawn_run, NULL, 1.0);
    return 0;
}

static void m_spawn_weft(void) { in_weft(spawn_main, NULL); }
#endif

/* ---- spawn+join: pthread ---------------------------------------------------------------------- */

static void *empty_thread(void *arg) { return arg; }

static uint64_t pthread_run(void *st, uint64_t n)
{
    (void)st;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        pthread_t th;
        int rc = pthread_create(&th, NULL, empty_thread, NULL);
        if (rc != 0) {
            fail("pthread_create: %s", strerror(rc));
            break;
        }
        pthread_join(th, NULL);
    }
    return now_ns() - t0;
}

static void m_spawn_pthread(void) { measure("ns_per_spawn_join", pthread_run, NULL, 1.0); }

/* ---- tasks: 1,000,000 live tasks -------------------------------------------------------------- */

#ifndef BENCH_NO_WEFT
/* VmRSS and VmPTE of this process, in KiB; -1 when unreadable. */
static void proc_status(long *rss_kib, long *pte_kib)
{
    *rss_kib = *pte_kib = -1;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss_kib = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmPTE:", 6) == 0)
            *pte_kib = strtol(line + 6, NULL, 10);
    }
    fclose(f);
}

/* Lines of /proc/self/maps: the mappings this process holds, against vm.max_map_count. */
static long map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static long mem_available_kib(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "MemAvailable:", 13) == 0)
            v = strtol(line + 13, NULL, 10);
    fclose(f);
    return v;
}

typedef struct tasks_bench {
    bool await;             /* park in weft_await instead of weft_sleep */
    weft_future *never;     /* the future the awaiting tasks wait on */
    unsigned long started;  /* tasks that reached their park */
    long budget_kib;        /* RSS growth at which the test gives up rather than exhaust memory */
} tasks_bench;

static intptr_t sleeper(void *arg)
{
    tasks_bench *b = arg;
    b->started++;
    return weft_sleep(3600ull * 1000000000ull); /* an hour: still asleep when cancelled */
}

static intptr_t awaiter(void *arg)
{
    tasks_bench *b = arg;
    b->started++;
    return weft_await(b->never);
}

/* Spawned in batches, each started before the next, so a runaway RSS is caught before it OOMs the box. */
#define TASK_BATCH 16384

static intptr_t tasks_main(void *arg)
{
    tasks_bench *b = arg;
    const unsigned long n = opt.tasks;
    weft_fn fn = b->await ? awaiter : sleeper;
    if (b->await && !(b->never = weft_future_new())) {
        fail("weft_future_new: %s", strerror(errno));
        return 0;
    }
    weft_task **h = malloc(n * sizeof *h);
    if (!h) {
        fail("no memory for %lu task handles", n);
        return 0;
    }
    memset(h, 0, n * sizeof *h); /* touch it now, so it is not counted as the tasks' memory */

    long rss0, pte0, rss1, pte1;
    proc_status(&rss0, &pte0);

    unsigned long made = 0;
    uint64_t checking = 0; /* time spent reading /proc between batches, not counted */
    uint64_t t0 = now_ns();
    while (made < n && !failed()) {
        unsigned long end = made + TASK_BATCH < n ? made + TASK_BATCH : n;
        for (; made < end; made++) {
            h[made] = weft_spawn(fn, b);
            if (!h[made]) {
                fail("weft_spawn failed at task %lu of %lu: %s", made + 1, n, strerror(errno));
                break;
            }
        }
        unsigned spins = 0;
        while (b->started < made && spins++ < 1000)
            weft_yield();
        if (b->started < made) {
            fail("only %lu of %lu spawned tasks started after 1000 yields", b->started, made);
            break;
        }
        uint64_t c0 = now_ns();
        long rss, pte;
        proc_status(&rss, &pte);
        checking += now_ns() - c0;
        if (rss >= 0 && rss0 >= 0 && rss - rss0 > b->budget_kib)
            fail("gave up at %lu tasks: RSS grew by %ld MiB (%.1f KiB/task), over the %ld MiB budget", made,
                 (rss - rss0) / 1024, (double)(rss - rss0) / (double)made, b->budget_kib / 1024);
    }
    uint64_t t1 = now_ns() - checking;
    proc_status(&rss1, &pte1);
    long vmas = map_count();
    weft_stats stats;
    memset(&stats, 0, sizeof stats);
    weft_stats_get(&stats);

    uint64_t t2 = now_ns();
    for (unsigned long i = 0; i < made; i++)
        weft_cancel(h[i]);
    unsigned long wrong = 0;
    intptr_t first_wrong = 0;
    for (unsigned long i = 0; i < made; i++) {
        intptr_t r = weft_join(h[i]);
        if (r != -ECANCELED && wrong++ == 0)
            first_wrong = r;
    }
    uint64_t t3 = now_ns();
    free(h);
    if (b->never)
        weft_future_free(b->never);

    if (failed())
        return 0;
    if (wrong)
        fail("%lu cancelled tasks ended with something other than -ECANCELED (first: %" PRIdPTR ")", wrong,
             first_wrong);
    result_add("create_ms", "ms", (double)(t1 - t0) / 1e6);
    result_add("create_ns_per_task", "ns", (double)(t1 - t0) / (double)n);
    result_add("reap_ms", "ms", (double)(t3 - t2) / 1e6);
    result_add("reap_ns_per_task", "ns", (double)(t3 - t2) / (double)n);
    if (rss0 >= 0 && rss1 >= 0)
        result_add("rss_kib_per_task", "KiB", (double)(rss1 - rss0) / (double)n);
    if (pte0 >= 0 && pte1 >= 0)
        result_add("pte_bytes_per_task", "B", (double)(pte1 - pte0) * 1024.0 / (double)n);
    result_add("vmas", "", (double)vmas);
    result_add("stacks_mapped", "", (double)stats.stacks_mapped);
    result_add("tasks_peak", "", (double)stats.tasks_peak);
    g_res->iterations = n;
    g_res->measured = true;
    return 0;
}

static void m_tasks(bool await)
{
    /* Let the OOM killer pick this child first if the runtime's memory use runs away. */
    FILE *f = fopen("/proc/self/oom_score_adj", "we");
    if (f) {
        fputs("1000", f);
        fclose(f);
    }
    tasks_bench b = {.await = await};
    long avail = mem_available_kib();
    b.budget_kib = avail > 0 ? avail - 3L * 1024 * 1024 : 12L * 1024 * 1024;
    if (b.budget_kib > 20L * 1024 * 1024)
        b.budget_kib = 20L * 1024 * 1024;
    if (b.budget_kib < 512L * 1024)
        b.budget_kib = 512L * 1024;
    /*
     * Defaults (stack size included), but no slow-task watchdog: the benchmark's main task holds the
     * loop on purpose while it cancels a million tasks, and the report would only clutter the output.
     */
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.slow_task_ns = UINT64_MAX;
    weft_loop *l = weft_loop_new(&cfg);
    if (!l) {
        fail("weft_loop_new: %s", strerror(errno));
        return;
    }
    intptr_t res = 0;
    int rc = weft_loop_run(l, tasks_main, &b, &res);
    weft_loop_free(l);
    if (rc < 0)
        fail("weft_loop_run: %s", strerror(-rc));
    else if (res < 0)
        fail("benchmark task returned %s", strerror((int)-res));
}

static void m_tasks_sleep(void) { m_tasks(false); }
static void m_tasks_await(void) { m_tasks(true); }
#endif

/* ---- the contenders --------------------------------------------------------------------------- */

#ifdef BENCH_NO_WEFT
#define WEFT_FN(f) NULL, "not built: the weft library failed to build"
#else
#define WEFT_FN(f) f, NULL
#endif

static const contender contenders[] = {
    {"switch", "weft", WEFT_FN(m_switch_weft), NULL},
#ifdef BENCH_HAVE_FCONTEXT
    {"switch", "fcontext", m_switch_fcontext, NULL, NULL},
#else
    {"switch", "fcontext", NULL, "not built: libboost_context was not found at configure time", NULL},
#endif
    {"switch", "swapcontext", m_switch_swapcontext, NULL, NULL},
    {"yield", "weft", WEFT_FN(m_yield_weft), NULL},
    {"yield", "ctx-switch", WEFT_FN(m_yield_ctx_switch), NULL},
    {"spawn", "weft", WEFT_FN(m_spawn_weft), NULL},
    {"spawn", "pthread", m_spawn_pthread, NULL, NULL},
    {"spawn", "ctx-switch", WEFT_FN(m_spawn_ctx_switch), NULL},
    {"tasks", "weft-sleep", WEFT_FN(m_tasks_sleep), NULL},
    {"tasks", "weft-await", WEFT_FN(m_tasks_await), NULL},
};
#define NCONTENDERS (sizeof contenders / sizeof contenders[0])

static const char *const workloads[] = {"switch", "yield", "spawn", "tasks"};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* ---- main ------------------------------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: fiber [--rounds N] [--task-rounds N] [--tasks N] [--target-ms MS] [--quick|--full] "
            "[WORKLOAD...]\n"
            "workloads: switch yield spawn tasks (default: all)\n");
}

int main(int argc, char **argv)
{
    bool want[NWORKLOADS] = {false};
    bool any = false, rounds_set = false, task_rounds_set = false, target_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quick") || !strcmp(a, "--full")) {
            bench_opt.mode = a + 2;
        } else if ((!strcmp(a, "--rounds") || !strcmp(a, "--task-rounds") || !strcmp(a, "--tasks") ||
                    !strcmp(a, "--target-ms")) &&
                   i + 1 < argc) {
            if (!parse_uint(argv[++i], &v) || v == 0) {
                fprintf(stderr, "fiber: %s wants a positive integer\n", a);
                return 2;
            }
            if (!strcmp(a, "--rounds"))
                bench_opt.rounds = (unsigned)v, rounds_set = true;
            else if (!strcmp(a, "--task-rounds"))
                opt.task_rounds = (unsigned)v, task_rounds_set = true;
            else if (!strcmp(a, "--tasks"))
                opt.tasks = v;
            else
                bench_opt.target_ms = (double)v, target_set = true;
        } else {
            const char *w = a;
            if (!strcmp(w, "spawn+join"))
                w = "spawn";
            else if (!strcmp(w, "1m"))
                w = "tasks";
            size_t k = 0;
            while (k < NWORKLOADS && strcmp(w, workloads[k]))
                k++;
            if (k == NWORKLOADS) {
                fprintf(stderr, "fiber: unknown workload or option '%s'\n", a);
                usage(stderr);
                return 2;
            }
            want[k] = any = true;
        }
    }
    if (!any)
        for (size_t k = 0; k < NWORKLOADS; k++)
            want[k] = true;
    bench_mode_lengths(rounds_set, target_set, 50, bench_opt.target_ms, 200);
    if (!task_rounds_set && !strcmp(bench_opt.mode, "quick"))
        opt.task_rounds = 1;
    else if (!task_rounds_set && !strcmp(bench_opt.mode, "full"))
        opt.task_rounds = 5;

    bool pinned = pin_thread(0, 0);
    if (!pinned)
        fprintf(stderr, "fiber: could not pin to CPU 0: %s (measuring unpinned)\n", strerror(errno));

    struct utsname u;
    uname(&u);
    size_t stack_size = 0;
#ifndef BENCH_NO_WEFT
    weft_config cfg, zero;
    memset(&zero, 0, sizeof zero);
    if (weft__config_resolve(&cfg, &zero) == 0)
        stack_size = cfg.stack_size;
#endif
    printf("{\"type\":\"meta\",\"program\":\"fiber\",\"mode\":");
    json_str(bench_opt.mode);
    printf(",\"rounds\":%u,\"task_rounds\":%u,\"tasks\":%lu,\"target_ms\":%g,\"pinned_cpu\":%d,"
           "\"weft_built\":%s,\"fcontext_built\":%s,\"weft_stack_size\":%zu,\"kernel\":",
           bench_opt.rounds, opt.task_rounds, opt.tasks, bench_opt.target_ms, pinned ? 0 : -1,
#ifdef BENCH_NO_WEFT
           "false",
#else
           "true",
#endif
#ifdef BENCH_HAVE_FCONTEXT
           "true",
#else
           "false",
#endif
           stack_size);
    json_str(u.release);
    printf("}\n");
    fflush(stdout);

    for (size_t k = 0; k < NWORKLOADS; k++) {
        if (!want[k])
            continue;
        bool heavy = !strcmp(workloads[k], "tasks");
        bench_run_workload(workloads[k], contenders, NCONTENDERS, heavy ? opt.task_rounds : bench_opt.rounds,
                           heavy ? 600 : 30, heavy);
    }
    return 0;
}
