/*
 * bench/harness.h — what the benchmark programs (fiber.c, exec.c, sync.c) share: timing, one child
 * process per measurement, the JSON lines bench/report.py reads, and the interleaved rounds.
 *
 * Header-only (static functions): each program includes it once.
 *
 * Output: one JSON object per line on stdout:
 *   {"type":"meta", ...}                                  once, what this run was (each program's own)
 *   {"type":"sample","workload":W,"contender":C,"round":R,"metric":M,"unit":U,"value":V,"iterations":N}
 *   {"type":"failure","workload":W,"contender":C,"round":R,"reason":"..."}
 * Progress goes to stderr.
 *
 * A program lists its contenders (workload, name, function run in a child), fills in bench_opt, and
 * calls bench_run_workload() for each workload asked for: contenders run interleaved round by round
 * (A B C A B C ...), each measurement in a child process of its own, so a contender that crashes or
 * hangs is reported as failed without taking the others with it.
 */
#ifndef BENCH_HARNESS_H
#define BENCH_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

/* ---- options every program has ----------------------------------------------------------------- */

static struct {
    unsigned rounds;  /* rounds of a workload */
    double target_ms; /* wall time of one measurement */
    const char *mode; /* "default", "quick" or "full" */
} bench_opt = {7, 100.0, "default"};

/* ---- results handed from a measuring child to the parent --------------------------------------- */

#define MAX_METRICS 12

typedef struct result {
    int n;
    struct {
        char name[40];
        char unit[16];
        double value;
    } m[MAX_METRICS];
    uint64_t iterations;
    bool measured; /* the figures are in: a hang or crash after this is in the teardown */
    bool complete; /* the child got to the end */
    char error[240];
} result;

static result *g_res; /* the child's result being filled */

static inline void result_add(const char *name, const char *unit, double value)
{
    if (g_res->n >= MAX_METRICS)
        return;
    snprintf(g_res->m[g_res->n].name, sizeof g_res->m[0].name, "%s", name);
    snprintf(g_res->m[g_res->n].unit, sizeof g_res->m[0].unit, "%s", unit);
    g_res->m[g_res->n].value = value;
    g_res->n++;
}

__attribute__((format(printf, 1, 2))) static inline void fail(const char *fmt, ...)
{
    if (g_res->error[0])
        return; /* keep the first */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_res->error, sizeof g_res->error, fmt, ap);
    va_end(ap);
}

static inline bool failed(void) { return g_res->error[0] != 0; }

/* ---- timing: calibrate, warm up, measure ------------------------------------------------------ */

/* Runs n iterations and returns the elapsed nanoseconds. */
typedef uint64_t (*timed_fn)(void *state, uint64_t n);

/* Calibrates n so one run of f takes about bench_opt.target_ms; the calibration runs are the warm-up. */
static inline uint64_t calibrate(timed_fn f, void *st)
{
    const double target = bench_opt.target_ms * 1e6;
    uint64_t n = 1, e = 0;
    for (;;) {
        e = f(st, n);
        if (failed())
            return 0;
        if ((double)e >= target / 10 || n >= (UINT64_MAX >> 8))
            break;
        n *= (double)e < target / 100 ? 10 : 2;
    }
    double scaled = (double)n * target / (double)(e ? e : 1);
    return scaled < 1 ? 1 : (uint64_t)scaled;
}

/*
 * Calibrates n so one run takes about bench_opt.target_ms (the calibration runs and a quarter-length
 * run are the warm-up), then measures once and records total / (n * ops_per_iter) in ns.
 */
static inline void measure(const char *metric, timed_fn f, void *st, double ops_per_iter)
{
    uint64_t n = calibrate(f, st);
    if (failed())
        return;
    f(st, n / 4 ? n / 4 : 1);
    if (failed())
        return;
    uint64_t e = f(st, n);
    if (failed())
        return;
    g_res->iterations = n;
    result_add(metric, "ns", (double)e / ((double)n * ops_per_iter));
    g_res->measured = true;
}

/* ---- latency samples -------------------------------------------------------------------------- */

static inline int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of v[0..n), which it sorts; nearest rank. */
static inline double quantile(uint64_t *v, size_t n, double q)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(q * (double)n);
    return (double)v[i < n ? i : n - 1];
}

/* ---- CPUs ------------------------------------------------------------------------------------- */

/* Pins thread tid (0: the caller) to one CPU. */
static inline bool pin_thread(pid_t tid, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(tid, sizeof set, &set) == 0;
}

/* Lets thread tid (0: the caller) run on every CPU. */
static inline bool unpin_thread(pid_t tid)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long i = 0; i < n && i < CPU_SETSIZE; i++)
        CPU_SET((int)i, &set);
    return sched_setaffinity(tid, sizeof set, &set) == 0;
}

/*
 * Pins every thread of this process but the caller to cpu (cpu < 0: lets them run anywhere). For threads
 * a library made (an executor's workers, a watchdog), which a benchmark cannot pin from inside. Returns
 * how many threads it moved, or -1.
 */
static inline int pin_other_threads(int cpu)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    pid_t self = (pid_t)syscall(SYS_gettid);
    int moved = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid <= 0 || tid == self)
            continue;
        if (cpu >= 0 ? pin_thread(tid, cpu) : unpin_thread(tid))
            moved++;
    }
    closedir(d);
    return moved;
}

static inline long online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* ---- JSON output ------------------------------------------------------------------------------ */

static inline void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* ---- contenders and rounds -------------------------------------------------------------------- */

static inline bool parse_uint(const char *s, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}


typedef struct contender {
    const char *workload;
    const char *name;
    void (*fn)(void);
    const char *unavailable; /* why it was not built, or NULL */
    const char *part;        /* optional: which measurement of the contender this is ("latency"), for
                                progress and failure reasons when one contender has several */
} contender;

static inline void emit_failure(const contender *c, unsigned round, const char *reason)
{
    printf("{\"type\":\"failure\",\"workload\":");
    json_str(c->workload);
    printf(",\"contender\":");
    json_str(c->name);
    printf(",\"round\":%u,\"reason\":", round);
    if (c->part) {
        char buf[512];
        snprintf(buf, sizeof buf, "%.60s: %.440s", c->part, reason);
        json_str(buf);
    } else {
        json_str(reason);
    }
    printf("}\n");
    fflush(stdout);
}

static inline void emit_sample(const contender *c, unsigned round, const result *r, int i)
{
    printf("{\"type\":\"sample\",\"workload\":");
    json_str(c->workload);
    printf(",\"contender\":");
    json_str(c->name);
    printf(",\"round\":%u,\"metric\":", round);
    json_str(r->m[i].name);
    printf(",\"unit\":");
    json_str(r->m[i].unit);
    printf(",\"value\":%.6g,\"iterations\":%" PRIu64 "}\n", r->m[i].value, r->iterations);
    fflush(stdout);
}

/*
 * Runs c once in a child process; fills *r, or returns false with the reason in r->error. The child fills
 * a shared page, so a child that hangs or crashes after measuring is told apart from one that never did.
 */
static inline bool run_child(const contender *c, unsigned timeout_s, result *r)
{
    static result *shared;
    memset(r, 0, sizeof *r);
    if (!shared) {
        shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (shared == MAP_FAILED) {
            shared = NULL;
            snprintf(r->error, sizeof r->error, "mmap: %s", strerror(errno));
            return false;
        }
    }
    memset(shared, 0, sizeof *shared);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->error, sizeof r->error, "fork: %s", strerror(errno));
        return false;
    }
    if (pid == 0) {
        alarm(timeout_s);
        g_res = shared;
        c->fn();
        shared->complete = true;
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *r = *shared;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && r->complete)
        return !r->error[0];
    char after[128] = "";
    if (r->measured && r->n > 0)
        snprintf(after, sizeof after, " in teardown, after measuring %s = %.3g %s", r->m[0].name, r->m[0].value,
                 r->m[0].unit);
    else if (r->measured)
        snprintf(after, sizeof after, " in teardown, after measuring");
    char msg[sizeof r->error];
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        snprintf(msg, sizeof msg, "timed out after %u s%s", timeout_s, after);
    else if (WIFSIGNALED(status))
        snprintf(msg, sizeof msg, "crashed%s: killed by signal %d (%s)", after, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(msg, sizeof msg, "exited with status %d%s", WEXITSTATUS(status), after);
    if (r->error[0]) {
        strncat(msg, "; ", sizeof msg - strlen(msg) - 1);
        strncat(msg, r->error, sizeof msg - strlen(msg) - 1);
    }
    memcpy(r->error, msg, sizeof msg);
    return false;
}

/* A figure for the progress line: three significant digits, no exponent. */
static inline const char *fmt_val(double v, char *buf, size_t len)
{
    if (v >= 1e6 || v <= -1e6)
        snprintf(buf, len, "%.2fM", v / 1e6);
    else if (v >= 100 || v <= -100)
        snprintf(buf, len, "%.0f", v);
    else if (v >= 10 || v <= -10)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.2f", v);
    return buf;
}

/* The number of the first round this invocation runs: BENCH_ROUND, else 1. */
static inline unsigned bench_first_round(void)
{
    const char *s = getenv("BENCH_ROUND");
    unsigned long v;
    return s && parse_uint(s, &v) && v > 0 && v < 1000000 ? (unsigned)v : 1;
}

/*
 * The order of w's contenders in round: idx[0..count) gets indices into cs, each run of consecutive
 * contenders with the same part turned by round - 1. Returns count.
 */
static inline size_t bench_round_order(const char *w, const contender *cs, size_t n, unsigned round, size_t *idx,
                                       size_t cap)
{
    size_t count = 0;
    for (size_t i = 0; i < n && count < cap;) {
        if (strcmp(cs[i].workload, w)) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && !strcmp(cs[j].workload, w) &&
               (cs[j].part == cs[i].part || (cs[j].part && cs[i].part && !strcmp(cs[j].part, cs[i].part))))
            j++;
        size_t len = j - i;
        for (size_t k = 0; k < len && count < cap; k++)
            idx[count++] = i + (k + round - 1) % len;
        i = j;
    }
    return count;
}

/*
 * Runs every contender of workload w (those of cs[0..n) whose workload is w) for rounds rounds,
 * interleaved, each in a child with timeout_s. A contender without a function is reported as failed
 * once; one that timed out is skipped in later rounds (a hang would cost the whole timeout each round).
 * The order turns by one contender each round (within each run of contenders sharing a part), so none
 * always runs first. Rounds are numbered from bench_first_round() (bench/run runs one round per
 * invocation and says which in BENCH_ROUND).
 * verbose: progress shows the metrics named *_ms or *per_task on a line per contender (long
 * measurements); otherwise the first metric of each.
 */
static inline void bench_run_workload(const char *w, const contender *cs, size_t n, unsigned rounds, unsigned timeout_s,
                               bool verbose)
{
    enum { MAXC = 32 };
    char skip[MAXC][sizeof(result){0}.error];
    memset(skip, 0, sizeof skip);
    unsigned runnable = 0;
    for (size_t i = 0; i < n && i < MAXC; i++) {
        if (strcmp(cs[i].workload, w))
            continue;
        if (cs[i].fn)
            runnable++;
        else
            emit_failure(&cs[i], 0, cs[i].unavailable);
    }
    unsigned first = bench_first_round();
    for (unsigned round = first; runnable && round < first + rounds; round++) {
        fprintf(stderr, "  %-8s round %u/%u:", w, round, first + rounds - 1);
        const char *last_part = NULL;
        size_t order[MAXC];
        size_t count = bench_round_order(w, cs, n < MAXC ? n : MAXC, round, order, MAXC);
        for (size_t k = 0; k < count; k++) {
            size_t i = order[k];
            const contender *c = &cs[i];
            if (!c->fn)
                continue;
            if (c->part && (!last_part || strcmp(c->part, last_part)))
                fprintf(stderr, "  %s:", c->part);
            last_part = c->part;
            fprintf(stderr, verbose ? "\n    %s ..." : "  %s", c->name);
            fflush(stderr);
            static result r;
            char vb[32];
            if (skip[i][0]) {
                emit_failure(c, round, skip[i]);
                fprintf(stderr, " skipped");
                continue;
            }
            if (!run_child(c, timeout_s, &r)) {
                emit_failure(c, round, r.error);
                fprintf(stderr, " FAILED (%s)", r.error);
                if (strstr(r.error, "timed out"))
                    snprintf(skip[i], sizeof skip[i], "skipped: timed out in round %u", round);
                continue;
            }
            for (int m = 0; m < r.n; m++)
                emit_sample(c, round, &r, m);
            if (verbose) {
                for (int m = 0; m < r.n; m++)
                    if (strstr(r.m[m].name, "_ms") || strstr(r.m[m].name, "per_task"))
                        fprintf(stderr, " %s %s %s", r.m[m].name, fmt_val(r.m[m].value, vb, sizeof vb),
                                r.m[m].unit);
            } else if (r.n > 0) {
                fprintf(stderr, " %s %s", fmt_val(r.m[0].value, vb, sizeof vb), r.m[0].unit);
            }
        }
        fprintf(stderr, "\n");
    }
}

/* ---- arguments -------------------------------------------------------------------------------- */


/*
 * The options every program takes, at argv[*i]: --quick, --full, --rounds N, --target-ms MS (which it
 * records in bench_opt and *set_rounds / *set_target). Returns 1 if it took the option (and its value,
 * advancing *i), 0 if argv[*i] is not one of them, -1 on a bad value (said on stderr, as prog).
 */
static inline int bench_common_option(const char *prog, int argc, char **argv, int *i, bool *set_rounds,
                                      bool *set_target)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--quick") || !strcmp(a, "--full")) {
        bench_opt.mode = a + 2;
        return 1;
    }
    if ((strcmp(a, "--rounds") && strcmp(a, "--target-ms")) || *i + 1 >= argc)
        return 0;
    unsigned long v;
    if (!parse_uint(argv[++*i], &v) || v == 0) {
        fprintf(stderr, "%s: %s wants a positive integer\n", prog, a);
        return -1;
    }
    if (!strcmp(a, "--rounds"))
        bench_opt.rounds = (unsigned)v, *set_rounds = true;
    else
        bench_opt.target_ms = (double)v, *set_target = true;
    return 1;
}

/*
 * The mode's lengths, where --rounds and --target-ms did not set them: 5 rounds in --quick, 15 in --full
 * (the default mode keeps bench_opt's); each run calibrated to quick_ms, default_ms or full_ms.
 */
static inline void bench_mode_lengths(bool rounds_set, bool target_set, double quick_ms, double default_ms,
                                      double full_ms)
{
    bool quick = !strcmp(bench_opt.mode, "quick"), full = !strcmp(bench_opt.mode, "full");
    if (!rounds_set && (quick || full))
        bench_opt.rounds = quick ? 5 : 15;
    if (!target_set)
        bench_opt.target_ms = quick ? quick_ms : full ? full_ms : default_ms;
}

/* Clears the WEFT_* variables that would override a field a benchmark sets on purpose (weft_config's
 * fields give way to the environment). */
static inline void bench_clear_env(void)
{
    static const char *const vars[] = {"WEFT_BACKEND", "WEFT_EXECUTOR_THREADS", "WEFT_EXECUTOR_QUEUE",
                                       "WEFT_SLOW_MS", "WEFT_STACK_SIZE", "WEFT_RING_ENTRIES",
                                       "WEFT_TRACE", "WEFT_TRACE_EVENTS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) {
            fprintf(stderr, "bench: ignoring %s=%s (the benchmark sets it)\n", vars[i], getenv(vars[i]));
            unsetenv(vars[i]);
        }
}

#endif /* BENCH_HARNESS_H */
