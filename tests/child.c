/*
 * weft-test-child SCENARIO: runs one scenario whose stderr (or death) a test inspects from outside.
 *
 * Diagnostics are written to stderr and some scenarios kill the process, so the tests run them in a
 * fresh process of their own (posix_spawn, not fork: the Criterion worker has threads of its own).
 * The exit status is main's result (small values only), or 100 when weft_run failed (its error on
 * stderr), 101 for an unknown scenario, 103 when the parent was already gone, 104 when a scenario's
 * set-up failed. The scenarios print "MARK" on stderr where
 * the order of messages matters.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "weft.h"

#define MS(x) ((uint64_t)(x) * 1000000ull)

static void mark(const char *what)
{
    /* One write, so it cannot interleave with weft's own one-write messages. */
    char line[64];
    int len = snprintf(line, sizeof line, "MARK %s\n", what);
    if (write(STDERR_FILENO, line, (size_t)len) < 0)
        _exit(102);
}

static intptr_t return_arg(void *arg) { return (intptr_t)arg; }

static intptr_t sleep_long(void *arg)
{
    (void)arg;
    return weft_sleep(MS(10000));
}

/* ---- a detached task that fails is logged at once, with its name and the error ----------------- */

static intptr_t detach_fail_main(void *arg)
{
    intptr_t err = (intptr_t)arg;
    weft_detach(weft_spawn_named("doomed-detached", return_arg, (void *)err));
    weft_sleep(MS(20));
    mark("after-failure");
    return 0;
}

/* ---- detached tasks that succeed or are cancelled say nothing ----------------------------------- */

static intptr_t detach_quiet_main(void *arg)
{
    (void)arg;
    weft_detach(weft_spawn_named("quiet-ok", return_arg, (void *)7));
    weft_task *unstarted = weft_spawn_named("quiet-unstarted", return_arg, (void *)-EIO);
    weft_cancel(unstarted);
    weft_detach(unstarted);
    weft_task *sleeper = weft_spawn_named("quiet-cancelled", sleep_long, NULL);
    weft_detach(sleeper);
    weft_sleep(MS(5));
    weft_cancel(sleeper);
    weft_sleep(MS(5));
    /* Left sleeping when main returns: cancelled by the teardown, not a failure either. */
    weft_detach(weft_spawn_named("quiet-teardown", sleep_long, NULL));
    weft_sleep(MS(2));
    return 0;
}

/* ---- unbounded recursion on a task stack ----------------------------------------------------------- */

static volatile int recurse_stop = -1;

__attribute__((noinline)) static int recurse(int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    if (depth == recurse_stop)
        return 0;
    return recurse(depth + 1) + frame[0];
}

static intptr_t recurse_task(void *arg)
{
    (void)arg;
    return recurse(0);
}

static intptr_t overflow_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_named("deep-recurser", recurse_task, NULL);
    intptr_t r = weft_join(t);
    mark("survived-overflow");
    return r < 0 ? 1 : 0;
}

/* ---- tasks nobody joined are named when the loop ends --------------------------------------------- */

static intptr_t never_joined_main(void *arg)
{
    (void)arg;
    weft_spawn_named("forgotten-ended", return_arg, (void *)3);
    weft_spawn_named("forgotten-sleeping", sleep_long, NULL);
    weft_task *joined = weft_spawn_named("joined-ok", return_arg, (void *)4);
    weft_detach(weft_spawn_named("detached-ok", return_arg, (void *)5));
    weft_sleep(MS(5));
    if (weft_join(joined) != 4)
        return 1;
    mark("main-returns");
    return 0;
}

/* ---- a run that does ordinary things prints nothing ------------------------------------------------ */

static intptr_t add_one(void *arg)
{
    weft_future *f = arg;
    intptr_t v = weft_await(f);
    return v < 0 ? v : v + 1;
}

static intptr_t clean_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_task *a = weft_spawn_named("clean-a", add_one, f);
    weft_task *b = weft_spawn(add_one, f);
    weft_task *c = weft_spawn(sleep_long, NULL);
    weft_sleep(MS(1));
    weft_future_resolve(f, 41);
    intptr_t ra = weft_join(a), rb = weft_join(b);
    weft_cancel(c);
    intptr_t rc = weft_join(c);
    weft_future_free(f);
    return (ra == 42 && rb == 42 && rc == -ECANCELED) ? 0 : 1;
}

/* ---- weft_future_free on a task's future is refused and reported ------------------------------------ */

static intptr_t free_task_future_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_named("owner", return_arg, (void *)5);
    weft_future_free(weft_task_future(t));
    mark("after-free");
    return weft_join(t);
}

/* ---- weft_mutex_unlock by a task that does not hold the mutex is reported and ignored --------------- */

static intptr_t foreign_unlock(void *arg)
{
    weft_mutex *m = arg;
    weft_mutex_unlock(m);
    mark("after-foreign-unlock");
    return weft_mutex_trylock(m); /* -EBUSY if the unlock was ignored */
}

static intptr_t mutex_foreign_unlock_main(void *arg)
{
    (void)arg;
    weft_mutex *m = weft_mutex_new();
    if (!m || weft_mutex_lock(m) != 0)
        return 1;
    if (weft_join(weft_spawn_named("intruder", foreign_unlock, m)) != -EBUSY)
        return 2;
    weft_mutex_unlock(m); /* the owner's unlock still works */
    if (weft_mutex_trylock(m) != 0)
        return 3;
    weft_mutex_unlock(m);
    weft_mutex_free(m);
    return 0;
}

/* ---- a task blocking the loop for 300 ms is reported while it runs, then with the total ------------- */

static intptr_t block_300ms(void *arg)
{
    (void)arg;
    usleep(300 * 1000);
    mark("blocker-done");
    return 0;
}

static intptr_t slow_task_main(void *arg)
{
    (void)arg;
    intptr_t r = weft_join(weft_spawn_named("sleepy-blocker", block_300ms, NULL));
    /* Let the watchdog see the loop turn again and print the total. */
    weft_sleep(MS(200));
    mark("main-returns");
    return r == 0 ? 0 : 1;
}

/* ---- after a second of idling the watchdog has parked, and still reports the next blocker ------------ */

/* The voluntary context switches of this process's weft-watchdog thread (each a wakeup), or -1. */
static long watchdog_wakeups(void)
{
    char path[96], line[128];
    for (int tid = getpid(), end = tid + 4096; tid < end; tid++) { /* its threads: after the main one */
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool it = fgets(line, sizeof line, f) && strcmp(line, "weft-watchdog\n") == 0;
        fclose(f);
        if (!it)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
        if (!(f = fopen(path, "r")))
            return -1;
        long n = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
                break;
        fclose(f);
        return n;
    }
    return -1;
}

static intptr_t slow_after_idle_main(void *arg)
{
    (void)arg;
    weft_sleep(MS(50));
    long before = watchdog_wakeups();
    weft_sleep(MS(1000));
    long after = watchdog_wakeups();
    char line[64];
    snprintf(line, sizeof line, "idle-wakeups %ld", before < 0 || after < 0 ? -1 : after - before);
    mark(line);
    return slow_task_main(NULL);
}

/* ---- a callback blocking the loop for 250 ms is reported like a task --------------------------------- */

/* Not static: the report names it from the dynamic symbol table (the child is linked -rdynamic). */
__attribute__((visibility("default"))) void weft_test_sleepy_callback(weft_future *f, void *arg)
{
    (void)f;
    (void)arg;
    usleep(250 * 1000);
    mark("callback-done");
}

static intptr_t slow_callback_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    if (!f || weft_future_resolve(f, 1) != 0 || weft_future_on_done(f, weft_test_sleepy_callback, NULL) != 0)
        return 1;
    weft_yield(); /* the callback runs now, in the order it became due */
    weft_sleep(MS(200));
    weft_future_free(f);
    mark("main-returns");
    return 0;
}

/* ---- an _async request that failed unawaited is reported with its call, fd and maker ------------------ */

static intptr_t io_unawaited_main(void *arg)
{
    (void)arg;
    char buf[8];
    weft_future *f = weft_read_async(999, buf, sizeof buf, -1); /* fd 999 is not open */
    if (!f)
        return 1;
    while (!weft_future_done(f))
        weft_yield();
    weft_future_free(f);
    mark("after-free");
    return 0;
}

static intptr_t io_unawaited_named_main(void *arg)
{
    return weft_join(weft_spawn_named("reader", io_unawaited_main, arg));
}

/* ---- a future failed with an error and freed unawaited is reported; awaited or ok ones are not ---- */

static intptr_t unawaited_error_main(void *arg)
{
    (void)arg;
    weft_future *awaited = weft_future_new(), *ok = weft_future_new(), *lost = weft_future_new();
    if (!awaited || !ok || !lost)
        return 1;
    weft_future_resolve(awaited, -EIO);
    if (weft_await(awaited) != -EIO)
        return 2;
    weft_future_free(awaited);
    weft_future_resolve(ok, 5);
    weft_future_free(ok);
    weft_sleep(MS(2));
    mark("quiet-part-done");
    weft_future_resolve(lost, -EIO);
    weft_future_free(lost);
    weft_sleep(MS(2));
    mark("after-free");
    return 0;
}

/* ---- task stacks the address space cannot hold: weft_run fails with -ENOMEM and says why ---------- */

/* Leaves the process 256 MiB of address space beyond what it has mapped now (under ASan or TSan
 * that is a lot: their shadow memory counts), so a slab of large stacks cannot be mapped. */
static void limit_address_space(void)
{
    unsigned long vm_kib = 0;
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lu kB", &vm_kib) == 1)
            break;
    if (f)
        fclose(f);
    struct rlimit lim;
    if (!vm_kib || getrlimit(RLIMIT_AS, &lim) < 0)
        _exit(104);
    lim.rlim_cur = (rlim_t)vm_kib * 1024 + (256ul << 20);
    if (setrlimit(RLIMIT_AS, &lim) < 0)
        _exit(104);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        weft_fn main;
        void *arg;
        void (*before)(void); /* run before weft_run, if not NULL */
    } scenarios[] = {
        {"detach_fail_eio", detach_fail_main, (void *)(intptr_t)-EIO, NULL},
        {"detach_fail_econnreset", detach_fail_main, (void *)(intptr_t)-ECONNRESET, NULL},
        {"detach_quiet", detach_quiet_main, NULL, NULL},
        {"overflow", overflow_main, NULL, NULL},
        {"never_joined", never_joined_main, NULL, NULL},
        {"clean", clean_main, NULL, NULL},
        {"free_task_future", free_task_future_main, NULL, NULL},
        {"mutex_foreign_unlock", mutex_foreign_unlock_main, NULL, NULL},
        {"slow_task", slow_task_main, NULL, NULL},
        {"slow_after_idle", slow_after_idle_main, NULL, NULL},
        {"unawaited_error_future", unawaited_error_main, NULL, NULL},
        {"slow_callback", slow_callback_main, NULL, NULL},
        {"unawaited_io", io_unawaited_named_main, NULL, NULL},
        {"stack_unmappable", return_arg, NULL, limit_address_space},
    };
    if (argc != 2)
        return 101;
    /* Never outlive the test that started us (it may be killed by its timeout), nor hang for long. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 103;
    alarm(30);
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        if (strcmp(argv[1], scenarios[i].name) != 0)
            continue;
        if (scenarios[i].before)
            scenarios[i].before();
        intptr_t result = -1;
        int rc = weft_run(scenarios[i].main, scenarios[i].arg, &result);
        if (rc != 0) {
            fprintf(stderr, "weft_run: %s\n", weft_strerror(rc));
            return 100;
        }
        return (result >= 0 && result < 100) ? (int)result : 99;
    }
    return 101;
}
