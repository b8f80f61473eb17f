/*
 * The loop: creation, running main to completion, teardown.
 *
 * weft_loop_run runs turns (sched.c) until main has ended, then cancels every task still alive and
 * keeps turning until they have all ended, so no task, stack or buffer outlives the run. Tasks that
 * ended without being joined or detached are reported then, by name.
 */
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* What to tell the user when io_uring is refused with err. */
static const char *refusal_hint(int err)
{
    switch (err) {
    case -EPERM:
    case -EACCES:
        return "seccomp (container profile) or sysctl kernel.io_uring_disabled";
    case -ENOSYS:
        return "kernel without io_uring (or older than 5.11)";
    case -ENOMEM:
        return "not enough locked memory: raise RLIMIT_MEMLOCK (ulimit -l)";
    case -EINVAL:
        return "ring parameters the kernel rejects";
    default:
        return NULL;
    }
}

/*
 * The backend asked for, or io_uring falling back to epoll when the kernel refuses it for a reason a
 * deployment can have (and says so once, with what to change). Asking for io_uring by name makes a
 * refusal an error instead: whoever named it wants to know.
 */
static int backend_choose(weft_loop *l)
{
    const char *want = l->cfg.backend;
    if (want && strcmp(want, "epoll") == 0) {
        l->backend = &weft__epoll_ops;
        return l->backend->init(l, &l->cfg);
    }
    l->backend = &weft__uring_ops;
    l->is_uring = true;
    int r = l->backend->init(l, &l->cfg);
    if (r == 0 || want)
        return r;
    const char *hint = refusal_hint(r);
    if (!hint)
        return r;
    snprintf(l->fallback_reason, sizeof l->fallback_reason, "io_uring refused (%s): %s", strerrorname_np(-r),
             hint);
    weft__log("%s; using epoll (set WEFT_BACKEND=epoll to choose it and silence this)\n", l->fallback_reason);
    l->backend = &weft__epoll_ops;
    l->is_uring = false;
    l->stats.backend_fallbacks++;
    return l->backend->init(l, &l->cfg);
}

const char *weft_loop_fallback_reason(const weft_loop *l)
{
    return l && l->fallback_reason[0] ? l->fallback_reason : NULL;
}

weft_loop *weft_loop_new(const weft_config *cfg)
{
    weft_loop *l = calloc(1, sizeof *l);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    int r = weft__config_resolve(&l->cfg, cfg);
    if (r < 0)
        goto fail;
    /* Blocking on purpose: io_uring answers a read of an O_NONBLOCK fd with -EAGAIN instead of
     * waiting for it. Writers never block, as the counter never nears its limit. */
    l->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (l->wake_fd < 0) {
        r = -errno;
        goto fail;
    }
    weft__stack_pool_init(&l->stacks, l->cfg.stack_size);
    r = weft__trace_new(l);
    if (r < 0)
        goto fail_fd;
    r = backend_choose(l);
    if (r < 0)
        goto fail_trace;
    pthread_mutex_init(&l->inbox_lock, NULL);
    l->born_clock = weft__park_clock();
    l->born_ns = weft__now();
    return l;
fail_trace:
    weft__trace_free(l);
fail_fd:
    close(l->wake_fd);
fail:
    free(l);
    errno = -r;
    return NULL;
}

void weft__loop_wake(weft_loop *l)
{
    /* From another loop of the same backend, the backend may have a way that costs the sender no
     * system call (io_uring's MSG_RING, handed over with the sender's next enter). */
    weft_loop *me = weft__tls_loop;
    if (me && me != l && me->backend == l->backend && me->backend->wake_from && me->backend->wake_from(me, l)) {
        me->stats.ring_wakes++;
        return;
    }
    atomic_fetch_add_explicit(&l->wake_writes, 1, memory_order_relaxed);
    uint64_t one = 1;
    ssize_t n = write(l->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN: the counter is already non-zero, so the loop wakes anyway */
}

void weft__loop_inbox(weft_loop *l, bool open)
{
    pthread_mutex_lock(&l->inbox_lock);
    l->inbox_closed = !open;
    pthread_mutex_unlock(&l->inbox_lock);
}

void weft__remote_discard(weft_loop *l)
{
    weft_future *f = atomic_exchange(&l->remote_head, NULL);
    while (f) {
        weft_future *next = f->remote_next;
        if (f->ops->discard)
            f->ops->discard(f);
        f = next;
    }
}

void weft_loop_free(weft_loop *l)
{
    if (!l)
        return;
    if (l->running) {
        weft__log("weft_loop_free: the loop is running; not freed\n");
        return;
    }
    /* A thread whose post the run already took may still be waking the loop (future.c): a moment. */
    while (atomic_load_explicit(&l->posters, memory_order_acquire))
        sched_yield();
    weft__remote_discard(l);
    weft__exec_default_release(l);
    l->backend->fini(l);
    weft__rx_fini(l);
    weft__buffers_free(l);
    close(l->wake_fd);
    weft__stack_pool_fini(&l->stacks);
    weft__timer_heap_fini(&l->timers);
    weft__trace_free(l);
    pthread_mutex_destroy(&l->inbox_lock);
    while (l->free_tasks) {
        weft_task *t = l->free_tasks;
        l->free_tasks = weft__task_of(t->run.next);
        free(t);
    }
    free(l);
}

const char *weft_loop_backend(const weft_loop *l)
{
    return l ? l->backend->name : NULL;
}

/* ---- the one place the loop waits ------------------------------------------------------------ */

/*
 * Whether the loop has something to run rather than wait for: a ready task or a due callback, or the
 * completion a task waiting in place waits for (weft__loop_wait_here), which no queue shows.
 */
static inline bool runnable_now(const weft_loop *l)
{
    return l->run_head || (l->wait_flag && *l->wait_flag);
}

/*
 * Looks for completions without sleeping for up to budget ns (cfg.idle_poll_ns): a sleep in the
 * kernel costs a wake-up (an idle CPU's exit from halt) when the completion comes, which for a disk
 * read or an offloaded job arriving a few microseconds later is most of its latency. On io_uring
 * with DEFER_TASKRUN the kernel flags pending completions in the SQ ring, so the poll costs no
 * system call until there is something to reap. 1 if something became ready or a completion was taken
 * in, 0 if not, or an error. A completion that wakes nobody (an _async request whose future was freed)
 * still ends the idle poll: the caller's wait may have been for it (the teardown waits for every
 * request to let go), and sleeping in the kernel after taking it would wait for one that never comes.
 */
static int idle_poll(weft_loop *l, uint64_t budget)
{
    uint64_t end = weft__now() + budget;
    uint64_t completions = l->stats.completions;
    do {
        if (weft__backend_has_work(l)) {
            int r = weft__backend_poll(l, 0);
            if (r < 0)
                return r;
        }
        if (runnable_now(l) || atomic_load_explicit(&l->remote_head, memory_order_relaxed) ||
            l->stats.completions != completions) {
            l->stats.idle_polls++;
            return 1;
        }
        weft__cpu_relax();
    } while (weft__now() < end);
    l->stats.idle_poll_misses++;
    return 0;
}

/*
 * One poll: results from other threads, due timers, then the backend, waiting (up to the next timer)
 * only when nothing is ready to run.
 */
static int poll_once(weft_loop *l)
{
    if (atomic_load_explicit(&l->remote_head, memory_order_relaxed))
        weft__remote_drain(l);
    uint64_t next_timer = weft__timer_next(&l->timers);
    uint64_t now = 0;
    if (next_timer != UINT64_MAX) {
        now = weft__now();
        if (next_timer <= now) {
            weft__timer_run(&l->timers, now);
            next_timer = weft__timer_next(&l->timers);
        }
    }
    uint64_t timeout;
    if (runnable_now(l))
        timeout = 0;
    else if (next_timer != UINT64_MAX)
        timeout = next_timer > now ? next_timer - now : 0;
    else
        timeout = UINT64_MAX;
    if (timeout && l->cfg.idle_poll_ns && (l->inflight || l->jobs_inflight)) {
        int r = idle_poll(l, l->cfg.idle_poll_ns < timeout ? l->cfg.idle_poll_ns : timeout);
        if (r)
            return r < 0 ? r : 0;
        if (timeout != UINT64_MAX) {
            now = weft__now();
            if (next_timer <= now)
                return 0; /* the next poll runs it */
            timeout = next_timer - now;
        }
    }
    if (timeout) {
        /* About to sleep: a good moment to give back the stacks of a burst of tasks, a few at a time. */
        weft__stack_trim(&l->stacks, WEFT__STACKS_KEPT);
        /* Announce the sleep before the last look at the remote list: a thread that pushes after
         * this store sees sleeping == 1 and writes the wake fd; one that pushed before is seen here.
         * Then the loop does not sleep, and withdraws the announcement: a loop that drains messages
         * as fast as they come would otherwise leave it standing and have every sender pay a wakeup. */
        atomic_store(&l->sleeping, 1);
        if (atomic_load(&l->remote_head)) {
            atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed);
            timeout = 0;
        }
    }
    int r = 0;
    if (timeout || weft__backend_has_work(l))
        r = weft__backend_poll(l, timeout);
    if (timeout) {
        atomic_store_explicit(&l->sleeping, 0, memory_order_relaxed); /* a stale 1 costs a spare wakeup */
        weft__watchdog_woke(l);
    }
    return r;
}

/*
 * Polls at least once, then until something can run, *flag holds or done(l) holds: the loop's turn
 * polls even with tasks still ready (its budget spent), so busy tasks cannot keep I/O from being
 * polled. Inlined into both callers, so each tests only its own condition. A remote result drained
 * at the top of a poll can complete the op behind *flag, so the flag is what the poll's own "anything
 * to run?" looks at (l->wait_flag), or the loop would sleep past it.
 */
static inline __attribute__((always_inline)) int poll_until(weft_loop *l, const bool *flag,
                                                             bool (*done)(weft_loop *))
{
    l->wait_flag = flag;
    int r;
    do {
        r = poll_once(l);
    } while (r >= 0 && !runnable_now(l) && !(done && done(l)));
    l->wait_flag = NULL;
    return r;
}

int weft__loop_wait(weft_loop *l, bool (*done)(weft_loop *))
{
    return poll_until(l, NULL, done);
}

int weft__loop_wait_here(weft_loop *l, weft_task *t, const bool *flag)
{
    if (l->run_head)
        return 1;
    weft__stack_check(t); /* as a switch away would: a task that never switches is checked here */
    weft__note_switch(l, NULL); /* in the loop, for the watchdog, while it waits */
    int r = poll_until(l, flag, NULL);
    weft__note_switch(l, t);
    if (r < 0)
        return r;
    return flag && *flag ? 0 : 1;
}

int weft__loop_turn(weft_loop *l, bool (*done)(weft_loop *))
{
    weft__run_ready(l);
    if (done(l)) {
        if (atomic_load_explicit(&l->remote_head, memory_order_relaxed))
            weft__remote_drain(l);
        return 0;
    }
    return weft__loop_wait(l, done);
}

/* One turn; a backend failure here is a weft bug or a broken kernel, with tasks parked in it. */
static void turn(weft_loop *l, bool (*done)(weft_loop *))
{
    int r = weft__loop_turn(l, done);
    if (r < 0) {
        weft__log("the %s backend failed: %s\n", l->backend->name, weft_strerror(r));
        abort();
    }
}

static bool main_ended(weft_loop *l)
{
    return l->main_task->state == WEFT__ENDED;
}

static bool all_quiet(weft_loop *l)
{
    return l->stats.tasks_live == 0 && !l->run_head && l->inflight == 0 && l->jobs_inflight == 0 &&
           !atomic_load_explicit(&l->remote_head, memory_order_relaxed);
}

static void teardown(weft_loop *l)
{
    l->closing = true;
    for (weft__link *link = l->tasks.head; link; link = link->next) {
        weft_task *t = WEFT__CONTAINER(link, weft_task, all_link);
        if (t->state != WEFT__ENDED)
            weft_cancel(t);
    }
    /* _async operations nobody will wait for any more: cancel them (again on every turn, for those
     * the cancelled tasks start on their way out) and wait for the kernel to let go of them. */
    while (!all_quiet(l)) {
        weft__io_cancel_all(l);
        weft__exec_cancel_all(l);
        turn(l, all_quiet);
    }
    /* Calls waiting for their time go with the run, as asyncio's pending TimerHandles go with a
     * closed loop. */
    weft__calls_end(l);
    /* What is left ended without anyone joining it. */
    while (l->tasks.head) {
        weft_task *t = WEFT__CONTAINER(l->tasks.head, weft_task, all_link);
        if (!t->released) {
            char label[64];
            intptr_t r = t->future.result;
            if (r < 0 && r != -ECANCELED)
                weft__log("task %s was never joined; it failed: %s\n", weft__task_label(t, label, sizeof label),
                          weft_strerror((int)r));
            else
                weft__log("task %s was never joined\n", weft__task_label(t, label, sizeof label));
        }
        t->released = true;
        weft__task_free(l, t);
    }
}

int weft_loop_run(weft_loop *l, weft_fn main, void *arg, intptr_t *result)
{
    if (!l || !main)
        return -EINVAL;
    if (weft__tls_loop)
        return -EBUSY;
    unsigned long self = (unsigned long)pthread_self(), idle = 0;
    if (!atomic_compare_exchange_strong(&l->owner, &idle, self))
        return -EBUSY;
    /* Each step is undone, in reverse order, by the rung of the ladder below it. */
    int r = WEFT__FAULT(WEFT__FAULT_BACKEND_START);
    if (!r)
        r = l->backend->start(l);
    if (r < 0)
        goto unown;
    r = weft__overflow_handler_install();
    if (r < 0)
        goto stop_backend;
    r = weft__watchdog_start(l);
    if (r < 0)
        goto remove_handler;
    weft__ctx_init_thread(&l->ctx);
    weft__ctx_capture_fpu();
    if (l->trace)
        weft__trace_started(l);
    weft__tls_loop = l;
    l->running = true;
    l->closing = false;
    weft__loop_inbox(l, true);
    l->main_task = weft__spawn(l, "main", main, arg);
    if (!l->main_task) {
        r = -errno;
        goto unbind;
    }
    while (!main_ended(l))
        turn(l, main_ended);
    /* Messages from other loops stop here; those already sent are drained by the teardown. */
    weft__loop_inbox(l, false);
    if (result)
        *result = l->main_task->future.result;
    l->main_task->released = true;
    weft__task_free(l, l->main_task);
    l->main_task = NULL;
    teardown(l);
unbind:
    l->running = false;
    weft__tls_loop = NULL;
    weft__watchdog_stop(l);
    if (l->trace)
        weft__trace_write(l); /* after the watchdog, whose last report it takes; a failure is said */
remove_handler:
    weft__overflow_handler_remove();
stop_backend:
    l->backend->stop(l);
unown:
    /* A run that never started main takes no messages either: later ones are refused, and what came
     * already waits for a run that starts, or is dropped (and said) when the loop is freed. */
    if (r < 0)
        weft__loop_inbox(l, false);
    atomic_store(&l->owner, 0);
    return r;
}

int weft_run(weft_fn main, void *arg, intptr_t *result)
{
    if (!main)
        return -EINVAL;
    if (weft__tls_loop)
        return -EBUSY;
    weft_loop *l = weft_loop_new(NULL);
    if (!l)
        return -errno;
    int r = weft_loop_run(l, main, arg, result);
    weft_loop_free(l);
    return r;
}
