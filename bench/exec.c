/*
 * bench/exec.c — the executor: what handing a job to another thread costs, with weft and by hand.
 *
 *   executor, metrics rtt_p50 / rtt_p99 (ns): the round trip of an empty job, call by call.
 *       weft-io_uring, weft-epoll: one task calls weft_offload(empty, NULL) in a loop, on a loop with
 *       weft_config.executor_threads = 1 (one worker, like for like with the ping-pong).
 *       pthread: the hand-written baseline, two threads ping-ponging through a pthread mutex and two
 *       condition variables (job posted -> worker runs it -> result posted back).
 *       Both are measured in two placements, pinned alike: the loop (or the pinging thread) on CPU 0
 *       and the worker (or the ponging thread) on CPU 1, so each round trip wakes a sleeping thread on
 *       the other CPU each way (metrics rtt_p50, rtt_p99); and both on CPU 0, where a round trip is
 *       two context switches (metrics rtt_p50_same_cpu, rtt_p99_same_cpu). Across CPUs the weft
 *       contenders also run the ping-pong in their own process, in blocks alternating with their own
 *       round trips (metric rtt_p50_pingpong): the pair the verdict is on.
 *   executor, metric jobs_per_s: throughput of tiny (empty) jobs.
 *       weft-io_uring, weft-epoll: one task keeps K (256) weft_offload_async jobs in flight, refilling
 *       each as it completes, on the default executor (executor_threads = 0: one worker per CPU).
 *       pthread: a hand-written pool with as many workers (mutex + condvar queue), K in flight the
 *       same way: completions are collected in batches, as weft's loop drains them, and each job is
 *       submitted again with a call of its own (lock, append, signal a sleeping worker, unlock), as
 *       weft_offload_async is.
 *       Placed as in the latency test: the loop (submitter) on CPU 0 and the workers on CPU 1
 *       (metric jobs_per_s), or all on CPU 0 (jobs_per_s_same_cpu). Left to the scheduler, the
 *       workers land on either CPU from one run to the next and the figure jumps between the two.
 *   The weft loop's system calls per job come from its counters (weft_loop_stats).
 *   submit, metrics rtt_p50 / rtt_p99 (ns): weft_submit_to between two loops of weft_run_cores(2) (loop 0
 *       on CPU 0 asks loop 1 on CPU 1 to run an empty task and waits for its result), against the
 *       executor's pthread mutex+condvar ping-pong between the same two CPUs.
 *       weft-io_uring, weft-epoll: the loops are otherwise idle, so each message wakes a sleeping loop
 *       (MSG_RING on io_uring, an eventfd on epoll) each way.
 *       weft-io_uring-busy, weft-epoll-busy: each loop also runs a task that yields in a loop, so
 *       neither ever sleeps and a message is picked up on the receiver's next turn.
 *
 * Every contender measures in a child process of its own (bench/harness.h), interleaved by round.
 * Output: JSON lines for bench/report.py; progress on stderr.
 *
 * Usage: exec [--rounds N] [--target-ms MS] [--inflight K] [--only latency|throughput] [--quick|--full]
 *             [executor|submit]...
 */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/utsname.h>

#ifndef BENCH_NO_WEFT
#include "weft.h"
#endif

#define LOOP_CPU 0

static struct {
    unsigned inflight; /* K jobs in flight in the throughput test */
    const char *only;  /* --only latency|throughput: one half (for profiling) */
} opt = {256, NULL};

/* Where the workers run: CPU 1 (across CPUs) or CPU 0 (beside the loop). Set by the
 * contender's function in the child. */
static int worker_cpu = 1;
static const char *lat_suffix = ""; /* metric name suffix of the placement: "" or "_same_cpu" */

static void place_across(void)
{
    worker_cpu = online_cpus() >= 2 ? 1 : 0;
    lat_suffix = "";
}

static void place_same(void)
{
    worker_cpu = LOOP_CPU;
    lat_suffix = "_same_cpu";
}

/* The metric name m with the placement's suffix. */
static const char *lat_metric(const char *m)
{
    static char buf[sizeof g_res->m[0].name];
    snprintf(buf, sizeof buf, "%.20s%.19s", m, lat_suffix);
    return buf;
}

/* Round trips per latency measurement: enough that one takes about target_ms, at least 2,000 (500
 * with --quick), so the p99 rests on 20 or more samples (5 with --quick). */
static size_t latency_samples(double rtt_ns_guess)
{
    double n = bench_opt.target_ms * 1e6 / rtt_ns_guess;
    double least = strcmp(bench_opt.mode, "quick") ? 2000 : 500;
    if (n < least)
        n = least;
    if (n > 2000000)
        n = 2000000;
    return (size_t)n;
}

static void record_latency(uint64_t *lat, size_t n)
{
    double p50 = quantile(lat, n, 0.50); /* sorts lat */
    double p99 = quantile(lat, n, 0.99);
    result_add(lat_metric("rtt_p50"), "ns", p50);
    result_add(lat_metric("rtt_p99"), "ns", p99);
    g_res->iterations = n;
    g_res->measured = true;
}

/* ---- latency: weft_offload ---------------------------------------------------------------------- */

/* The job: nothing, so only the hand-off is measured. Not inlined, so the baselines call it too. */
__attribute__((noinline)) static intptr_t empty_job(void *arg)
{
    __asm__ volatile("" ::"r"(arg) : "memory");
    return 0;
}

/* The pthread ping-pong (below), for the weft contenders to measure beside their own round trips. */
static bool pp_start(pthread_t *th);
static void pp_stop(pthread_t th);
typedef intptr_t (*job_fn)(void *);
static intptr_t pp_call(job_fn fn, void *arg);

#ifndef BENCH_NO_WEFT

/*
 * Across CPUs, weft's round trips alternate with the ping-pong's in blocks of PAIR_BLOCK, on the same
 * CPUs, in this one process: both see the machine as it is at that moment. A round trip across CPUs
 * is two wake-ups of an idle virtual CPU, whose cost moves by 10% or more from one tenth of a second to
 * the next here, so figures taken in separate processes differ by that much round to round; the
 * interleaved pair's ratio does not. Blocks go weft first, then ping-pong first, so a drift within a
 * pair of blocks favours neither.
 */
enum { PAIR_BLOCK = 50 };

static bool offload_one(uint64_t *lat)
{
    uint64_t a = now_ns();
    intptr_t r = weft_offload(empty_job, NULL);
    *lat = now_ns() - a;
    if (r != 0)
        fail("weft_offload of an empty job returned %" PRIdPTR " (%s)", r, weft_strerror((int)r));
    return r == 0;
}

static void pingpong_one(uint64_t *lat)
{
    uint64_t a = now_ns();
    pp_call(empty_job, NULL);
    *lat = now_ns() - a;
}

static intptr_t offload_latency_task(void *arg)
{
    (void)arg;
    /* Warm-up: makes the executor (its worker is born here), and lets everything settle. */
    uint64_t t0 = now_ns();
    size_t warm = 0;
    while (warm < 200 || now_ns() - t0 < (uint64_t)(bench_opt.target_ms * 1e6 / 5)) {
        intptr_t r = weft_offload(empty_job, NULL);
        if (r != 0) {
            fail("weft_offload of an empty job returned %" PRIdPTR " (%s)", r, weft_strerror((int)r));
            return 0;
        }
        warm++;
    }
    /* Now the worker (and the watchdog) exist: put them on the other CPU, this thread on ours. */
    if (pin_other_threads(worker_cpu) < 1)
        fail("could not pin the executor's worker to CPU %d", worker_cpu);
    pin_thread(0, LOOP_CPU);
    /* The sample count comes from round trips as placed: the warm-up's, with the worker wherever the
     * kernel put it (often beside the loop, ten times faster), would ask for far too many. */
    t0 = now_ns();
    for (int i = 0; i < 200; i++)
        weft_offload(empty_job, NULL);
    double guess = (double)(now_ns() - t0) / 200.0;

    size_t n = latency_samples(guess);
    uint64_t *lat = malloc(n * sizeof *lat);
    if (!lat) {
        fail("no memory for %zu samples", n);
        return 0;
    }
    bool paired = !lat_suffix[0];
    pthread_t pp_thread;
    uint64_t *pp_lat = paired ? malloc(n * sizeof *pp_lat) : NULL;
    if (paired && (!pp_lat || !pp_start(&pp_thread))) {
        fail("no ping-pong to pair with: %s", pp_lat ? "pthread_create failed" : "no memory");
        free(pp_lat);
        free(lat);
        return 0;
    }
    for (size_t i = 0; i < n && !failed();) {
        size_t end = i + PAIR_BLOCK < n ? i + PAIR_BLOCK : n;
        bool pp_first = paired && (i / PAIR_BLOCK) % 2;
        for (size_t j = i; pp_first && j < end; j++)
            pingpong_one(&pp_lat[j]);
        for (size_t j = i; j < end && offload_one(&lat[j]);)
            j++;
        for (size_t j = i; paired && !pp_first && j < end; j++)
            pingpong_one(&pp_lat[j]);
        i = end;
    }
    if (paired)
        pp_stop(pp_thread);
    if (!failed()) {
        record_latency(lat, n);
        if (paired)
            result_add("rtt_p50_pingpong", "ns", quantile(pp_lat, n, 0.50));
    }
    free(pp_lat);
    free(lat);
    return 0;
}

static void run_weft(const char *backend, unsigned threads, weft_fn fn, const char *syscalls_metric)
{
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.backend = backend;
    cfg.executor_threads = threads;
    weft_loop *l = weft_loop_new(&cfg);
    if (!l) {
        fail("weft_loop_new(%s): %s", backend, strerror(errno));
        return;
    }
    if (strcmp(weft_loop_backend(l), backend) != 0)
        fail("asked for %s, the loop runs on %s", backend, weft_loop_backend(l));
    intptr_t res = 0;
    int rc = failed() ? 0 : weft_loop_run(l, fn, NULL, &res);
    weft_stats st;
    if (syscalls_metric && weft_loop_stats(l, &st) == 0 && g_res->measured && st.executor_jobs) {
        /* The loop's own system calls per job: its wakeups (eventfd) and waits. */
        result_add(syscalls_metric, "calls", (double)st.syscalls / (double)st.executor_jobs);
    }
    weft_loop_free(l);
    if (rc < 0)
        fail("weft_loop_run: %s", strerror(-rc));
    else if (res < 0)
        fail("benchmark task returned %s", strerror((int)-res));
}

/* The loop's system calls per round trip: for the across-CPU placement only (the same on one CPU). */
static const char *rtt_syscalls(void) { return lat_suffix[0] ? NULL : "syscalls_per_rtt"; }
static void m_lat_uring(void) { run_weft("io_uring", 1, offload_latency_task, rtt_syscalls()); }
static void m_lat_epoll(void) { run_weft("epoll", 1, offload_latency_task, rtt_syscalls()); }
static void m_lat_uring_x(void) { place_across(); m_lat_uring(); }
static void m_lat_epoll_x(void) { place_across(); m_lat_epoll(); }
static void m_lat_uring_s(void) { place_same(); m_lat_uring(); }
static void m_lat_epoll_s(void) { place_same(); m_lat_epoll(); }
#endif

/* ---- latency: pthread mutex + condvar ping-pong ------------------------------------------------- */

/* One job slot between a caller and one worker: the best a careful engineer writes with a mutex and
 * two condition variables (each side signals only a sleeper, under the lock). */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t to_worker, to_caller;
    job_fn job;
    void *arg;
    bool posted, done, stop;
    bool worker_waiting, caller_waiting;
    intptr_t result;
} pp = {.lock = PTHREAD_MUTEX_INITIALIZER, .to_worker = PTHREAD_COND_INITIALIZER,
        .to_caller = PTHREAD_COND_INITIALIZER};

static void *pp_worker(void *arg)
{
    (void)arg;
    pin_thread(0, worker_cpu);
    pthread_mutex_lock(&pp.lock);
    for (;;) {
        while (!pp.posted && !pp.stop) {
            pp.worker_waiting = true;
            pthread_cond_wait(&pp.to_worker, &pp.lock);
            pp.worker_waiting = false;
        }
        if (!pp.posted)
            break;
        pp.posted = false;
        job_fn fn = pp.job;
        void *a = pp.arg;
        pthread_mutex_unlock(&pp.lock);
        intptr_t r = fn(a);
        pthread_mutex_lock(&pp.lock);
        pp.result = r;
        pp.done = true;
        if (pp.caller_waiting)
            pthread_cond_signal(&pp.to_caller);
    }
    pthread_mutex_unlock(&pp.lock);
    return NULL;
}

static intptr_t pp_call(job_fn fn, void *arg)
{
    pthread_mutex_lock(&pp.lock);
    pp.job = fn;
    pp.arg = arg;
    pp.posted = true;
    pp.done = false;
    if (pp.worker_waiting)
        pthread_cond_signal(&pp.to_worker);
    while (!pp.done) {
        pp.caller_waiting = true;
        pthread_cond_wait(&pp.to_caller, &pp.lock);
        pp.caller_waiting = false;
    }
    intptr_t r = pp.result;
    pthread_mutex_unlock(&pp.lock);
    return r;
}

static void m_lat_pthread(void);
static void m_lat_pthread_x(void) { place_across(); m_lat_pthread(); }
static void m_lat_pthread_s(void) { place_same(); m_lat_pthread(); }

/* The ping-pong's worker, started (pinned to worker_cpu), and stopped. */
static bool pp_start(pthread_t *th)
{
    int err = pthread_create(th, NULL, pp_worker, NULL);
    if (err)
        fail("pthread_create: %s", strerror(err));
    return err == 0;
}

static void pp_stop(pthread_t th)
{
    pthread_mutex_lock(&pp.lock);
    pp.stop = true;
    pthread_cond_signal(&pp.to_worker);
    pthread_mutex_unlock(&pp.lock);
    pthread_join(th, NULL);
}

static void m_lat_pthread(void)
{
    pin_thread(0, LOOP_CPU);
    pthread_t th;
    if (!pp_start(&th))
        return;
    uint64_t t0 = now_ns();
    size_t warm = 0;
    while (warm < 200 || now_ns() - t0 < (uint64_t)(bench_opt.target_ms * 1e6 / 5)) {
        pp_call(empty_job, NULL);
        warm++;
    }
    double guess = (double)(now_ns() - t0) / (double)warm;
    size_t n = latency_samples(guess);
    uint64_t *lat = malloc(n * sizeof *lat);
    if (!lat)
        fail("no memory for %zu samples", n);
    for (size_t i = 0; lat && i < n; i++) {
        uint64_t a = now_ns();
        pp_call(empty_job, NULL);
        lat[i] = now_ns() - a;
    }
    pp_stop(th);
    if (lat)
        record_latency(lat, n);
    free(lat);
}

/* ---- throughput: weft_offload_async, K in flight ------------------------------------------------ */

#ifndef BENCH_NO_WEFT
static intptr_t offload_tput_task(void *arg)
{
    (void)arg;
    const unsigned k = opt.inflight;
    weft_future **slot = calloc(k, sizeof *slot);
    if (!slot) {
        fail("no memory");
        return 0;
    }
    /* The default executor is made by the first offload: its workers inherit this thread's affinity
     * (every CPU); only then is the loop pinned to its CPU. */
    intptr_t r = weft_offload(empty_job, NULL);
    if (r != 0) {
        fail("weft_offload: %s", weft_strerror((int)r));
        free(slot);
        return 0;
    }
    pin_thread(0, LOOP_CPU);
    if (pin_other_threads(worker_cpu) < 1)
        fail("could not pin the executor's workers to CPU %d", worker_cpu);
    for (unsigned i = 0; i < k; i++)
        if (!(slot[i] = weft_offload_async(empty_job, NULL))) {
            fail("weft_offload_async: %s", strerror(errno));
            break;
        }
    /* Await the slots in turn (jobs finish about in order), refilling each: k stay in flight. */
    const uint64_t warm_ns = (uint64_t)(bench_opt.target_ms * 1e6 / 4), run_ns = (uint64_t)(bench_opt.target_ms * 1e6);
    uint64_t start = now_ns(), t0 = 0, jobs = 0, counted = 0;
    bool measuring = false;
    for (unsigned i = 0; !failed(); i = i + 1 == k ? 0 : i + 1) {
        r = weft_await(slot[i]);
        weft_future_free(slot[i]);
        slot[i] = NULL;
        if (r != 0) {
            fail("an offloaded empty job completed with %" PRIdPTR " (%s)", r, weft_strerror((int)r));
            break;
        }
        jobs++;
        if ((jobs & 63) == 0) {
            uint64_t now = now_ns();
            if (!measuring && now - start >= warm_ns) {
                measuring = true;
                t0 = now;
                counted = jobs;
            } else if (measuring && now - t0 >= run_ns) {
                result_add(lat_metric("jobs_per_s"), "jobs/s", (double)(jobs - counted) * 1e9 / (double)(now - t0));
                g_res->iterations = jobs - counted;
                g_res->measured = true;
                break;
            }
        }
        if (!(slot[i] = weft_offload_async(empty_job, NULL))) {
            fail("weft_offload_async: %s", strerror(errno));
            break;
        }
    }
    for (unsigned i = 0; i < k; i++)
        if (slot[i]) {
            weft_await(slot[i]);
            weft_future_free(slot[i]);
        }
    free(slot);
    return 0;
}

static const char *job_syscalls(void) { return lat_suffix[0] ? NULL : "syscalls_per_job"; }
static void m_tput_uring_x(void) { place_across(); run_weft("io_uring", 0, offload_tput_task, job_syscalls()); }
static void m_tput_epoll_x(void) { place_across(); run_weft("epoll", 0, offload_tput_task, job_syscalls()); }
static void m_tput_uring_s(void) { place_same(); run_weft("io_uring", 0, offload_tput_task, job_syscalls()); }
static void m_tput_epoll_s(void) { place_same(); run_weft("epoll", 0, offload_tput_task, job_syscalls()); }
#endif

/* ---- throughput: a hand-written pthread pool ------------------------------------------------------ */

typedef struct pjob {
    struct pjob *next;
    job_fn fn;
    void *arg;
    intptr_t result;
} pjob;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work, done_cv;
    pjob *head, *tail;       /* queued */
    pjob *done;              /* finished, not yet collected */
    unsigned idle;           /* workers waiting for work */
    bool caller_waiting, stop;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER, .done_cv = PTHREAD_COND_INITIALIZER};

static void *pool_worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head && !pool.stop) {
            pool.idle++;
            pthread_cond_wait(&pool.work, &pool.lock);
            pool.idle--;
        }
        if (!pool.head)
            break;
        pjob *j = pool.head;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        pthread_mutex_unlock(&pool.lock);
        j->result = j->fn(j->arg);
        pthread_mutex_lock(&pool.lock);
        j->next = pool.done;
        pool.done = j;
        if (pool.caller_waiting)
            pthread_cond_signal(&pool.done_cv);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* submit(): queues one job, as weft_offload_async does: lock, append, wake a sleeping worker, unlock. */
static void pool_submit(pjob *j)
{
    j->next = NULL;
    pthread_mutex_lock(&pool.lock);
    if (pool.tail)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
    if (pool.idle)
        pthread_cond_signal(&pool.work);
    pthread_mutex_unlock(&pool.lock);
}

static void m_tput_pthread(void);
static void m_tput_pthread_x(void) { place_across(); m_tput_pthread(); }
static void m_tput_pthread_s(void) { place_same(); m_tput_pthread(); }

static void m_tput_pthread(void)
{
    const unsigned k = opt.inflight;
    unsigned nthreads = (unsigned)online_cpus();
    pthread_t *th = calloc(nthreads, sizeof *th);
    pjob *jobs = calloc(k, sizeof *jobs);
    if (!th || !jobs) {
        fail("no memory");
        free(th);
        free(jobs);
        return;
    }
    unsigned made = 0;
    for (; made < nthreads; made++) {
        int err = pthread_create(&th[made], NULL, pool_worker, NULL);
        if (err) {
            fail("pthread_create: %s", strerror(err));
            break;
        }
    }
    pin_thread(0, LOOP_CPU);
    pin_other_threads(worker_cpu);
    for (unsigned i = 0; i < k && !failed(); i++) {
        jobs[i].fn = empty_job;
        pool_submit(&jobs[i]);
    }
    const uint64_t warm_ns = (uint64_t)(bench_opt.target_ms * 1e6 / 4), run_ns = (uint64_t)(bench_opt.target_ms * 1e6);
    uint64_t start = now_ns(), t0 = 0, done = 0, counted = 0;
    bool measuring = false;
    while (!failed()) {
        /* Take every finished job at once (weft's loop drains its completions the same way)... */
        pthread_mutex_lock(&pool.lock);
        while (!pool.done) {
            pool.caller_waiting = true;
            pthread_cond_wait(&pool.done_cv, &pool.lock);
            pool.caller_waiting = false;
        }
        pjob *batch = pool.done;
        pool.done = NULL;
        pthread_mutex_unlock(&pool.lock);
        unsigned count = 0;
        for (pjob *j = batch; j; j = j->next) {
            if (j->result != 0)
                fail("a job returned %" PRIdPTR, j->result);
            count++;
        }
        done += count;
        uint64_t now = now_ns();
        if (!measuring && now - start >= warm_ns) {
            measuring = true;
            t0 = now;
            counted = done;
        } else if (measuring && now - t0 >= run_ns) {
            result_add(lat_metric("jobs_per_s"), "jobs/s", (double)(done - counted) * 1e9 / (double)(now - t0));
            g_res->iterations = done - counted;
            g_res->measured = true;
            break;
        }
        /* ...and submit each again, one call per job as weft_offload_async is. */
        for (pjob *j = batch, *next; j; j = next) {
            next = j->next;
            pool_submit(j);
        }
    }
    pthread_mutex_lock(&pool.lock);
    pool.stop = true;
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.lock);
    for (unsigned i = 0; i < made; i++)
        pthread_join(th[i], NULL);
    free(th);
    free(jobs);
}

/* ---- latency: weft_submit_to between two loops -------------------------------------------------- */

#ifndef BENCH_NO_WEFT
static struct {
    bool busy;          /* each loop also runs a task that yields in a loop */
    atomic_bool stop;   /* the measurement is over: the spinners and loop 1's main end */
    weft_event *ended;  /* loop 1's main waits on it (idle) */
    atomic_bool ready;  /* loop 1's main is running */
} sub;

static intptr_t spinner(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&sub.stop, memory_order_relaxed))
        weft_yield();
    return 0;
}

static intptr_t end_loop1(void *arg)
{
    (void)arg;
    weft_event_set(sub.ended);
    return 0;
}

static intptr_t submit_loop0(void)
{
    weft_task *spin = sub.busy ? weft_spawn(spinner, NULL) : NULL;
    if (sub.busy && !spin) {
        fail("weft_spawn: %s", strerror(errno));
        return 0;
    }
    while (!atomic_load(&sub.ready))
        weft_sleep(100 * 1000);
    uint64_t t0 = now_ns();
    size_t warm = 0;
    while (!failed() && (warm < 200 || now_ns() - t0 < (uint64_t)(bench_opt.target_ms * 1e6 / 5))) {
        intptr_t r = weft_submit_to(1, empty_job, NULL);
        if (r != 0)
            fail("weft_submit_to(1, empty task) returned %" PRIdPTR " (%s)", r, weft_strerror((int)r));
        warm++;
    }
    size_t n = latency_samples((double)(now_ns() - t0) / (double)warm);
    uint64_t *lat = failed() ? NULL : malloc(n * sizeof *lat);
    for (size_t i = 0; lat && i < n && !failed(); i++) {
        uint64_t a = now_ns();
        intptr_t r = weft_submit_to(1, empty_job, NULL);
        lat[i] = now_ns() - a;
        if (r != 0)
            fail("weft_submit_to(1, empty task) returned %" PRIdPTR " (%s)", r, weft_strerror((int)r));
    }
    if (lat && !failed())
        record_latency(lat, n);
    free(lat);
    atomic_store(&sub.stop, true);
    if (!sub.busy)
        weft_submit_to(1, end_loop1, NULL);
    if (spin)
        weft_join(spin);
    return 0;
}

static intptr_t submit_main(void *arg)
{
    (void)arg;
    if (weft_loop_id() == 0)
        return submit_loop0();
    if (sub.busy) {
        atomic_store(&sub.ready, true);
        return spinner(NULL);
    }
    sub.ended = weft_event_new();
    if (!sub.ended)
        return -ENOMEM;
    atomic_store(&sub.ready, true);
    weft_event_wait(sub.ended);
    weft_event_free(sub.ended);
    return 0;
}

static void run_submit(const char *backend, bool busy)
{
    if (online_cpus() < 2) {
        fail("one CPU: there is no second CPU for loop 1");
        return;
    }
    sub.busy = busy;
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.backend = backend;
    int rc = weft_run_cores(2, submit_main, NULL, &cfg);
    if (rc < 0 && !failed())
        fail("weft_run_cores(2) on %s: %s", backend, weft_strerror(rc));
}

static void m_sub_uring(void) { run_submit("io_uring", false); }
static void m_sub_epoll(void) { run_submit("epoll", false); }
static void m_sub_uring_busy(void) { run_submit("io_uring", true); }
static void m_sub_epoll_busy(void) { run_submit("epoll", true); }
#endif

/* ---- the contenders --------------------------------------------------------------------------- */

#ifdef BENCH_NO_WEFT
#define WEFT_FN(f) NULL, "not built: the weft library failed to build"
#else
#define WEFT_FN(f) f, NULL
#endif

/* Latency and throughput are one workload ("executor"), told apart by metric; each contender is
 * measured twice a round, latency first. */
static const contender lat_contenders[] = {
    {"executor", "weft-io_uring", WEFT_FN(m_lat_uring_x), "latency across CPUs"},
    {"executor", "weft-epoll", WEFT_FN(m_lat_epoll_x), "latency across CPUs"},
    {"executor", "pthread", m_lat_pthread_x, NULL, "latency across CPUs"},
    {"executor", "weft-io_uring", WEFT_FN(m_lat_uring_s), "latency on one CPU"},
    {"executor", "weft-epoll", WEFT_FN(m_lat_epoll_s), "latency on one CPU"},
    {"executor", "pthread", m_lat_pthread_s, NULL, "latency on one CPU"},
};
static const contender tput_contenders[] = {
    {"executor", "weft-io_uring", WEFT_FN(m_tput_uring_x), "throughput across CPUs"},
    {"executor", "weft-epoll", WEFT_FN(m_tput_epoll_x), "throughput across CPUs"},
    {"executor", "pthread", m_tput_pthread_x, NULL, "throughput across CPUs"},
    {"executor", "weft-io_uring", WEFT_FN(m_tput_uring_s), "throughput on one CPU"},
    {"executor", "weft-epoll", WEFT_FN(m_tput_epoll_s), "throughput on one CPU"},
    {"executor", "pthread", m_tput_pthread_s, NULL, "throughput on one CPU"},
};
static const contender submit_contenders[] = {
    {"submit", "weft-io_uring", WEFT_FN(m_sub_uring), NULL},
    {"submit", "weft-epoll", WEFT_FN(m_sub_epoll), NULL},
    {"submit", "weft-io_uring-busy", WEFT_FN(m_sub_uring_busy), NULL},
    {"submit", "weft-epoll-busy", WEFT_FN(m_sub_epoll_busy), NULL},
    {"submit", "pthread", m_lat_pthread_x, NULL, NULL},
};
#define NLAT (sizeof lat_contenders / sizeof lat_contenders[0])
#define NTPUT (sizeof tput_contenders / sizeof tput_contenders[0])

static void usage(FILE *to)
{
    fprintf(to, "usage: exec [--rounds N] [--target-ms MS] [--inflight K] [--only latency|throughput] "
                "[--quick|--full] [executor|submit]...\n");
}

int main(int argc, char **argv)
{
    bool rounds_set = false, target_set = false, want_executor = false, want_submit = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned long v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quick") || !strcmp(a, "--full")) {
            bench_opt.mode = a + 2;
        } else if ((!strcmp(a, "--rounds") || !strcmp(a, "--target-ms") || !strcmp(a, "--inflight")) &&
                   i + 1 < argc) {
            if (!parse_uint(argv[++i], &v) || v == 0) {
                fprintf(stderr, "exec: %s wants a positive integer\n", a);
                return 2;
            }
            if (!strcmp(a, "--rounds"))
                bench_opt.rounds = (unsigned)v, rounds_set = true;
            else if (!strcmp(a, "--target-ms"))
                bench_opt.target_ms = (double)v, target_set = true;
            else
                opt.inflight = (unsigned)v;
        } else if (!strcmp(a, "--only") && i + 1 < argc) {
            opt.only = argv[++i];
        } else if (!strcmp(a, "executor")) {
            want_executor = true;
        } else if (!strcmp(a, "submit")) {
            want_submit = true;
        } else {
            fprintf(stderr, "exec: unknown workload or option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    bench_mode_lengths(rounds_set, target_set, 25, 60, 400);
    bench_clear_env();
    bool two_cpus = online_cpus() >= 2;
    if (!two_cpus)
        fprintf(stderr, "exec: one CPU only: the worker shares CPU 0 with the loop\n");

    struct utsname u;
    uname(&u);
    printf("{\"type\":\"meta\",\"program\":\"exec\",\"mode\":");
    json_str(bench_opt.mode);
    printf(",\"rounds\":%u,\"target_ms\":%g,\"inflight\":%u,\"latency_executor_threads\":1,"
           "\"throughput_executor_threads\":%ld,\"loop_cpu\":%d,\"worker_cpu_across\":%d,\"kernel\":",
           bench_opt.rounds, bench_opt.target_ms, opt.inflight, online_cpus(), LOOP_CPU, two_cpus ? 1 : 0);
    json_str(u.release);
    printf("}\n");
    fflush(stdout);

    /* One round: A B C latency across CPUs, A B C on one CPU, A B C throughput. */
    contender all[NLAT + NTPUT];
    size_t n = 0;
    for (size_t i = 0; i < NLAT; i++)
        if (!opt.only || !strcmp(opt.only, "latency"))
            all[n++] = lat_contenders[i];
    for (size_t i = 0; i < NTPUT; i++)
        if (!opt.only || !strcmp(opt.only, "throughput"))
            all[n++] = tput_contenders[i];
    if (want_executor || !want_submit)
        bench_run_workload("executor", all, n, bench_opt.rounds, 60, false);
    if (want_submit)
        bench_run_workload("submit", submit_contenders, sizeof submit_contenders / sizeof submit_contenders[0],
                           bench_opt.rounds, 60, false);
    return 0;
}
