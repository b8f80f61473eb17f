/*
 * The blocking-the-loop detector: a task or callback that runs longer than slow_task_ns without
 * suspending (or returning) is reported while it is still running, by name, and again when it finally
 * lets go, with how long it held the loop.
 *
 * The loop publishes every switch with two plain stores (the task switched to, then a sequence
 * number with release order): that is all it costs the loop. A watchdog thread per running loop looks
 * every slow_task_ns / 4; a sequence number that has not moved while a task was current means that
 * task has held the loop since. The name is read seqlock-style: it is only trusted if the sequence
 * number is unchanged after the copy.
 *
 * Time the loop's thread spent ready but kept off a CPU by the kernel (another process's turn, a
 * pinned thread sharing its CPU) is not the task's doing: the thread's run-queue wait, from its
 * schedstat, is taken off the time a task has held the loop. A task blocked in a system call, or
 * computing, is charged in full. The kernel adds a wait to the schedstat when the wait ends, so one
 * that is still going on when the limit passes is charged until the thread runs again; waits of a
 * thread sharing its CPU are a few milliseconds each and are seen as they end.
 *
 * A loop asleep in the kernel blocks nothing, so the watchdog does not look at it: after IDLE_LOOKS
 * looks in a row that found the loop itself (no task, no callback) with nothing published, it parks on
 * a futex until the loop wakes (weft__watchdog_woke) or a second passes, instead of waking 4 times per
 * slow_task_ns for as long as the loop idles.
 */
#include "internal.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { IDLE_LOOKS = 4 };

struct weft__watchdog {
    weft_loop *loop;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    atomic_bool stopping; /* stop, as the parked watchdog reads it (park) */
    int schedstat;        /* the loop thread's /proc schedstat, -1 if it could not be opened */
};

/* The loop thread's time spent waiting for a CPU so far, in ns; 0 without its schedstat. */
static uint64_t run_queue_wait(const struct weft__watchdog *w)
{
    char text[96];
    if (w->schedstat < 0)
        return 0;
    ssize_t n = pread(w->schedstat, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    unsigned long long on_cpu, waited;
    return sscanf(text, "%llu %llu", &on_cpu, &waited) == 2 ? waited : 0;
}

/* How long the loop has been held since `since`: the time passed, less what its thread waited for a CPU. */
static uint64_t held(const struct weft__watchdog *w, uint64_t now, uint64_t since, uint64_t waited_since)
{
    uint64_t waited = run_queue_wait(w) - waited_since;
    return now - since > waited ? now - since - waited : 0;
}

static void futex_wake(_Atomic uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Sleeps while the loop has published nothing since seq, for at most a second. */
static void park(struct weft__watchdog *w, weft_loop *l, uint64_t seq)
{
    atomic_store_explicit(&l->watch_parked, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&l->watch_seq, memory_order_seq_cst) == seq &&
        !atomic_load_explicit(&w->stopping, memory_order_seq_cst)) {
        struct timespec second = {1, 0};
        syscall(SYS_futex, &l->watch_parked, FUTEX_WAIT_PRIVATE, 1, &second, NULL, 0);
    }
    atomic_store_explicit(&l->watch_parked, 0, memory_order_relaxed);
}

void weft__watchdog_kick(weft_loop *l)
{
    if (atomic_exchange_explicit(&l->watch_parked, 0, memory_order_seq_cst))
        futex_wake(&l->watch_parked);
}

/* Whether the loop runs its own code (polling, or asleep in the kernel): no task, no callback. */
static bool loop_itself(weft_loop *l)
{
    return !atomic_load_explicit(&l->watch_task, memory_order_relaxed) &&
           !atomic_load_explicit(&l->watch_callback, memory_order_relaxed);
}

static bool sleep_or_stop(struct weft__watchdog *w, uint64_t ns)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t t = (uint64_t)until.tv_nsec + ns;
    until.tv_sec += (time_t)(t / 1000000000u);
    until.tv_nsec = (long)(t % 1000000000u);
    pthread_mutex_lock(&w->lock);
    while (!w->stop && pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0)
        ;
    bool stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

/*
 * Names what the loop runs, for the report: a task by its label, a callback by its function's symbol
 * where the dynamic symbol table has it, else its address; and gives the task's id (0 for a callback)
 * and the callback's function, which the trace records. false if the loop moved on while we looked
 * (the copy may be torn).
 */
/* A seqlock reader: the plain copies may be torn while the loop reuses the task, and are used only if
 * the sequence number did not move meanwhile; ThreadSanitizer is told so. */
__attribute__((no_sanitize("thread"))) static bool name_running(weft_loop *l, uint64_t seq, char *label,
                                                                size_t len, uint64_t *task_id, const void **callback)
{
    weft_task *t = atomic_load_explicit(&l->watch_task, memory_order_relaxed);
    const void *fn = atomic_load_explicit(&l->watch_callback, memory_order_relaxed);
    if (!t && !fn)
        return false; /* the loop itself: polling or asleep in the kernel, which is not blocking it */
    char name[sizeof t->name] = "";
    unsigned long long id = 0;
    if (t) {
        memcpy(name, t->name, sizeof name);
        id = t->id;
    }
    if (atomic_load_explicit(&l->watch_seq, memory_order_acquire) != seq)
        return false;
    name[sizeof name - 1] = '\0';
    *task_id = t ? id : 0;
    *callback = t ? NULL : fn;
    int at;
    if (t && name[0])
        at = snprintf(label, len, "task '%s' (#%llu)", name, id);
    else if (t)
        at = snprintf(label, len, "task #%llu", id);
    else {
        Dl_info info;
        if (dladdr(fn, &info) && info.dli_sname)
            at = snprintf(label, len, "callback %s()", info.dli_sname);
        else
            at = snprintf(label, len, "callback at %p", fn);
    }
    if (l->cores && at > 0 && (size_t)at < len)
        snprintf(label + at, len - (size_t)at, " on loop %u", l->index);
    return true;
}

static void *watchdog_main(void *arg)
{
    struct weft__watchdog *w = arg;
    weft_loop *l = w->loop;
    uint64_t limit = l->cfg.slow_task_ns;
    uint64_t interval = limit / 4 > 1000000 ? limit / 4 : 1000000;
    uint64_t last_seq = UINT64_MAX, since = weft__now(), waited_since = 0;
    bool reported = false;
    unsigned idle = 0;
    char label[128] = "";
    for (;;) {
        bool stop = sleep_or_stop(w, interval);
        uint64_t seq = atomic_load_explicit(&l->watch_seq, memory_order_acquire);
        uint64_t now = weft__now();
        if (stop || seq != last_seq) {
            /* Let go (or the loop is done, and a stall it reported has ended with it). */
            if (reported && seq != last_seq)
                weft__log("%s held the loop for about %llu ms before letting go\n", label,
                          (unsigned long long)(held(w, now, since, waited_since) / 1000000));
            if (stop)
                break;
            last_seq = seq;
            since = now;
            waited_since = run_queue_wait(w);
            reported = false;
            idle = 0;
            continue;
        }
        if (!reported && loop_itself(l)) {
            if (++idle >= IDLE_LOOKS) {
                park(w, l, seq);
                idle = 0;
            }
            continue;
        }
        uint64_t task_id;
        const void *callback;
        if (reported || now - since < limit)
            continue;
        uint64_t held_ns = held(w, now, since, waited_since);
        if (held_ns < limit || !name_running(l, seq, label, sizeof label, &task_id, &callback))
            continue;
        if (l->trace)
            weft__trace_stall(l, task_id, callback, since, limit);
        weft__log("%s has run for %llu ms without suspending: it is blocking the loop (limit %llu ms; "
                  "offload blocking work with weft_offload)\n",
                  label, (unsigned long long)(held_ns / 1000000), (unsigned long long)(limit / 1000000));
        atomic_fetch_add_explicit(&l->slow_reports, 1, memory_order_relaxed);
        reported = true;
    }
    return NULL;
}

/* Undoes what weft__watchdog_start set up before its thread (which is not running, or joined). */
static void watchdog_free(struct weft__watchdog *w)
{
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    if (w->schedstat >= 0)
        close(w->schedstat);
    free(w);
}

int weft__watchdog_start(weft_loop *l)
{
    if (l->cfg.slow_task_ns == UINT64_MAX)
        return 0;
    struct weft__watchdog *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->loop = l;
    /* Called on the loop's thread: thread-self is it. Without /proc (or a descriptor to spare) the
     * watchdog counts wall time. */
    w->schedstat = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    /*
     * The watchdog takes no signals, as the executor's workers take none: a signal sent to the process
     * goes to some thread that does not block it, so the loop's thread, which blocks a signal to read
     * it from a signalfd, only gets it if no thread of weft's takes it first.
     */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = -WEFT__FAULT(WEFT__FAULT_WATCHDOG_START);
    if (!err)
        err = pthread_create(&w->thread, NULL, watchdog_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!err)
        pthread_setname_np(w->thread, "weft-watchdog");
    if (err) {
        watchdog_free(w);
        return -err;
    }
    l->watchdog = w;
    return 0;
}

void weft__watchdog_stop(weft_loop *l)
{
    struct weft__watchdog *w = l->watchdog;
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    atomic_store_explicit(&w->stopping, true, memory_order_seq_cst);
    weft__watchdog_kick(l);
    pthread_join(w->thread, NULL);
    watchdog_free(w);
    l->watchdog = NULL;
}
