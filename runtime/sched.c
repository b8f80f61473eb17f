/*
 * Tasks and the scheduler: spawning, parking and waking, cancellation, joining.
 *
 * Ready tasks wait in one FIFO queue. A task that parks switches straight to the next ready task
 * instead of going through the loop's context: one switch per hand-over, not two. The loop's context
 * is entered only when nothing is ready or the turn's budget is spent, and then it polls I/O, runs
 * timers and callbacks, and starts the next turn. The budget bounds how long a busy set of tasks can
 * keep I/O from being polled.
 *
 * A task's stack is taken from the pool when it first runs, not when it is spawned, so a task
 * cancelled before it starts never costs a stack. A task that ends cannot give its stack back while
 * running on it: it leaves itself in l->zombie, and whatever context runs next releases the stack.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define WEFT__TURN_BUDGET 256
/*
 * Released task structs are kept for reuse, oldest first, so that a stale handle keeps pointing at a
 * released task for as long as possible and is refused. Under ASan nothing is kept: every released
 * task is freed, and ASan reports the use of a stale handle itself.
 */
#if WEFT__ASAN
#define WEFT__FREE_TASKS_MAX 0
#else
#define WEFT__FREE_TASKS_MAX 4096
#endif

WEFT__TLS weft_loop *weft__tls_loop;

static const weft__future_ops task_future;

static inline void ready_push(weft_loop *l, weft_task *t)
{
    t->state = WEFT__READY;
    t->run.call = NULL;
    weft__run_push(l, &t->run);
}

static inline weft__runnable *run_pop(weft_loop *l)
{
    weft__runnable *r = l->run_head;
    if (r) {
        l->run_head = r->next;
        if (!l->run_head)
            l->run_tail = NULL;
    }
    return r;
}

static void task_timer_fire(weft__timer *timer)
{
    weft_task *t = WEFT__CONTAINER(timer, weft_task, timer);
    if (WEFT__UNLIKELY(t->loop->trace != NULL))
        weft__trace_timer(t->loop, t, t->timer_reason ? 1 : 0, NULL);
    weft__interrupt(t, t->timer_reason);
}

const char *weft__task_label(const weft_task *t, char *buf, size_t len)
{
    if (t->name[0])
        snprintf(buf, len, "'%s' (#%llu)", t->name, (unsigned long long)t->id);
    else
        snprintf(buf, len, "#%llu", (unsigned long long)t->id);
    return buf;
}

const char *weft__maker_label(const weft__maker *m, char *buf, size_t len)
{
    if (!m->id)
        snprintf(buf, len, "%s", "");
    else if (m->name[0])
        snprintf(buf, len, " by task '%.*s' (#%llu)", (int)sizeof m->name, m->name, (unsigned long long)m->id);
    else
        snprintf(buf, len, " by task #%llu", (unsigned long long)m->id);
    return buf;
}

/* A detached task's failure has nobody to receive it: say it now rather than lose it. */
static void report_detached_failure(weft_task *t)
{
    intptr_t r = t->future.result;
    if (r >= 0 || r == -ECANCELED)
        return;
    char label[64];
    weft__log("task %s failed: %s; nobody joined it\n", weft__task_label(t, label, sizeof label),
              weft_strerror((int)r));
}

weft_task *weft__spawn(weft_loop *l, const char *name, weft_fn fn, void *arg)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    /* Each task may have one timer armed: reserve its heap slot now so parking never fails. */
    if (weft__timer_reserve(&l->timers, l->stats.tasks_live + l->ncall_timers + 1) < 0) {
        errno = ENOMEM;
        return NULL;
    }
    if (WEFT__FAULT(WEFT__FAULT_TASK_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    weft_task *t = l->free_tasks;
    if (t) {
        l->free_tasks = weft__task_of(t->run.next);
        if (!l->free_tasks)
            l->free_tasks_tail = NULL;
        l->free_task_count--;
    } else {
        t = malloc(sizeof *t);
        if (!t) {
            errno = ENOMEM;
            return NULL;
        }
    }
    t->magic = WEFT__TASK_LIVE;
    t->loop = l;
    t->fn = fn;
    t->arg = arg;
    t->stack = NULL;
    t->state = WEFT__CREATED;
    t->cancelled = l->closing; /* spawned during teardown: it never runs */
    t->released = false;
    t->detached = false;
    t->in_join_all = false;
    t->runs_cancelled = false;
    t->id = ++l->next_task_id;
    t->interrupt = NULL;
    t->park_obj = NULL;
    t->timer.heap_index = SIZE_MAX;
    t->timer.fire = task_timer_fire;
    t->deadlines = t->deadline_inline;
    t->deadline_depth = 0;
    t->deadline_cap = WEFT__DEADLINES_INLINE;
    t->deadline_lost = 0;
    t->group = NULL;
    t->group_result = NULL;
    weft__future_init(&t->future, &task_future, l);
    if (name) {
        size_t n = strnlen(name, sizeof t->name - 1);
        memcpy(t->name, name, n);
        t->name[n] = '\0';
    } else {
        t->name[0] = '\0';
    }
    weft__list_push(&l->tasks, &t->all_link);
    ready_push(l, t);
    if (WEFT__UNLIKELY(l->trace != NULL))
        weft__trace_spawn(l, t);
    l->stats.tasks_spawned++;
    if (++l->stats.tasks_live > l->stats.tasks_peak)
        l->stats.tasks_peak = l->stats.tasks_live;
    return t;
}

weft_task *weft_spawn_named(const char *name, weft_fn fn, void *arg)
{
    weft_loop *l = weft__tls_loop;
    if (!l) {
        errno = fn ? EPERM : EINVAL;
        return NULL;
    }
    return weft__spawn(l, name, fn, arg);
}

weft_task *weft_spawn(weft_fn fn, void *arg)
{
    return weft_spawn_named(NULL, fn, arg);
}

void weft__task_free(weft_loop *l, weft_task *t)
{
    if (t->future.pending_cbs) {
        /* Callbacks on its future are queued: the last one to run frees the task. */
        t->future.freed = true;
        return;
    }
    weft__list_remove(&l->tasks, &t->all_link);
    if (t->deadlines != t->deadline_inline)
        free(t->deadlines);
    t->magic = WEFT__TASK_RELEASED;
    if (l->free_task_count + 1 <= WEFT__FREE_TASKS_MAX) {
        t->run.next = NULL;
        if (l->free_tasks_tail)
            l->free_tasks_tail->run.next = &t->run;
        else
            l->free_tasks = t;
        l->free_tasks_tail = t;
        l->free_task_count++;
    } else {
        free(t);
    }
}

/* Marks t ended with result: wakes its joiners and frees it if nobody will join it. */
static void task_ended(weft_loop *l, weft_task *t, intptr_t result)
{
    t->state = WEFT__ENDED;
    t->interrupt = NULL;
    l->stats.tasks_live--;
    if (WEFT__UNLIKELY(l->trace != NULL))
        weft__trace_end(l, t, result);
    weft__future_complete(l, &t->future, result);
    if (t->group)
        weft__group_member_ended(t, result);
    else if (t->detached)
        report_detached_failure(t);
}

void weft__after_switch(weft_loop *l)
{
    weft_task *z = l->zombie;
    if (WEFT__UNLIKELY(z != NULL)) {
        l->zombie = NULL;
        weft__ctx_destroy(&z->ctx);
        weft__stack_put(&l->stacks, z->stack);
        z->stack = NULL;
        if (z->released)
            weft__task_free(l, z);
    }
}

static inline weft_task *next_runnable(weft_loop *l);

static void task_entry(void *arg)
{
    weft_task *t = arg;
    weft_loop *l = t->loop;
    weft__ctx_entered(&t->ctx);
    weft__after_switch(l);
    intptr_t result = t->fn(t->arg);
    task_ended(l, t, result);
    l->zombie = t;
    /* When main ends, what is still queued must be cancelled before it runs: back to the loop. */
    weft_task *next = t == l->main_task ? NULL : next_runnable(l);
    weft__note_switch(l, next);
    weft__ctx_exit(&t->ctx, next ? &next->ctx : &l->ctx);
}

void weft__stack_overflowed(weft_task *t)
{
    char label[64];
    weft__log("task %s overflowed its stack of %zu KiB (canary destroyed); raise weft_config.stack_size or "
              "WEFT_STACK_SIZE\n",
              weft__task_label(t, label, sizeof label), t->stack->size / 1024);
    abort();
}

/* A task's first run: it gets its stack now, or ends at once if cancelled (unless it is a message's,
 * which runs regardless) or out of memory. */
static bool task_first_run(weft_loop *l, weft_task *t)
{
    int result = -ECANCELED;
    if (!t->cancelled || t->runs_cancelled) {
        t->stack = WEFT__FAULT(WEFT__FAULT_STACK_ALLOC) ? NULL : weft__stack_get(&l->stacks);
        if (t->stack) {
            weft__ctx_make(&t->ctx, t->stack->lo, t->stack->size, task_entry, t);
            return true;
        }
        result = -ENOMEM;
    }
    task_ended(l, t, result);
    if (t->released)
        weft__task_free(l, t);
    return false;
}

/*
 * Runs a callback from the run queue. It runs outside any task (weft_self() is NULL in it, and a
 * suspending call there gets -EPERM), on whatever stack the scheduler is on: a task's that is parking
 * or yielding, or the loop's. It is published for the watchdog like a task, so one that blocks the loop
 * is reported too.
 */
static void callback_run(weft_loop *l, weft__runnable *r)
{
    weft_task *cur = l->current;
    l->current = NULL;
    atomic_store_explicit(&l->watch_task, NULL, memory_order_relaxed);
    atomic_store_explicit(&l->watch_callback, r->user_fn, memory_order_relaxed);
    atomic_store_explicit(&l->watch_seq, ++l->watch_events, memory_order_release);
    if (WEFT__UNLIKELY(l->trace != NULL))
        weft__trace_callback(l, r);
    else
        r->call(r);
    atomic_store_explicit(&l->watch_callback, NULL, memory_order_relaxed);
    atomic_store_explicit(&l->watch_seq, ++l->watch_events, memory_order_release);
    l->current = cur;
}

/* The next task to switch to, running the callbacks queued before it on the way; NULL when the run
 * queue is empty or the turn's budget is spent. */
static inline weft_task *next_runnable(weft_loop *l)
{
    while (WEFT__LIKELY(l->budget)) {
        weft__runnable *r = run_pop(l);
        if (!r)
            return NULL;
        l->budget--;
        if (WEFT__UNLIKELY(r->call != NULL)) {
            callback_run(l, r);
            continue;
        }
        weft_task *t = weft__task_of(r);
        if (WEFT__UNLIKELY(!t->stack) && !task_first_run(l, t))
            continue;
        t->state = WEFT__RUNNING;
        return t;
    }
    return NULL;
}

/*
 * Leaves the running task cur (already queued or parked) for the next ready task or the loop.
 *
 * When cur has parked and nothing else is runnable, it does not switch to the loop's context only to
 * poll and switch straight back: it waits for something to become runnable right here, on its own
 * stack. That is the whole hand-over for a task waiting on its own request (one task driving a
 * connection or a file): no switch at all when its own completion is what arrives. On a backend
 * error the loop's context takes over.
 */
static void switch_out(weft_loop *l, weft_task *cur)
{
    weft_task *next = next_runnable(l);
    if (!next && cur->state == WEFT__PARKED && l->budget) {
        if (weft__loop_wait_here(l, cur, NULL) > 0) {
            l->budget = WEFT__TURN_BUDGET;
            next = next_runnable(l);
        }
    } else {
        weft__stack_check(cur);
    }
    if (next == cur) {
        /* Its own turn came again (the only ready task, or its own wait ended): no switch. */
        weft__note_switch(l, cur);
        return;
    }
    weft__note_switch(l, next);
    weft__ctx_switch(&cur->ctx, next ? &next->ctx : &l->ctx);
    weft__after_switch(l);
}

void weft__wake(weft_task *t, intptr_t value)
{
    weft_loop *l = t->loop;
    if (WEFT__UNLIKELY(l->trace != NULL))
        weft__trace_wake(l, t);
    t->wake_value = value;
    t->interrupt = NULL;
    if (weft__timer_armed(&t->timer))
        weft__timer_disarm(&l->timers, &t->timer);
    ready_push(l, t);
}

void weft__interrupt(weft_task *t, int reason)
{
    weft__interrupt_fn fn = t->interrupt;
    if (!fn)
        return;
    t->interrupt = NULL;
    if (weft__timer_armed(&t->timer))
        weft__timer_disarm(&t->loop->timers, &t->timer);
    fn(t, reason);
}

intptr_t weft__park(weft_task *t, weft__interrupt_fn interrupt, void *park_obj, uint64_t expiry, int expiry_reason)
{
    weft_loop *l = t->loop;
    if (interrupt) {
        uint64_t deadline = weft__deadline(t);
        if (deadline < expiry) {
            expiry = deadline;
            expiry_reason = -ETIMEDOUT;
        }
        if (expiry != UINT64_MAX) {
            t->timer_reason = expiry_reason;
            weft__timer_arm(&l->timers, &t->timer, expiry);
        }
        t->interrupt = interrupt;
        t->park_obj = park_obj;
    }
    t->state = WEFT__PARKED;
    t->parked_at = weft__park_clock();
    switch_out(l, t);
    return t->wake_value;
}

int weft__check_suspend(weft_task *t)
{
    if (t->cancelled)
        return -ECANCELED;
    if (WEFT__UNLIKELY(t->deadline_depth) && weft__now() >= weft__deadline(t))
        return -ETIMEDOUT;
    return 0;
}

int weft__wait_check(bool args_ok, weft_task **t)
{
    *t = weft__current();
    if (!*t)
        return -EPERM;
    if (!args_ok)
        return -EINVAL;
    return weft__check_suspend(*t);
}

weft_task *weft_self(void)
{
    return weft__current();
}

const char *weft_task_name(const weft_task *t)
{
    return t && t->magic == WEFT__TASK_LIVE ? t->name : "";
}

void weft_yield(void)
{
    weft_task *t = weft__current();
    if (!t)
        return;
    ready_push(t->loop, t);
    switch_out(t->loop, t);
}

void weft__sleep_interrupt(weft_task *t, int reason)
{
    weft__wake(t, reason);
}

int weft_sleep(uint64_t ns)
{
    weft_task *t;
    int r = weft__wait_check(true, &t);
    if (r)
        return r;
    uint64_t now = weft__now();
    uint64_t when = ns >= UINT64_MAX - now ? UINT64_MAX : now + ns;
    return (int)weft__park(t, weft__sleep_interrupt, NULL, when, 0);
}

uint64_t weft_now(void)
{
    return weft__now();
}

int weft_cancel(weft_task *t)
{
    if (!t)
        return -EINVAL;
    if (t->magic != WEFT__TASK_LIVE || t->state == WEFT__ENDED)
        return -ESRCH; /* a released handle is of a task that has ended */
    t->cancelled = true;
    if (t->state == WEFT__PARKED)
        weft__interrupt(t, -ECANCELED);
    return 0;
}

void weft_detach(weft_task *t)
{
    if (!t)
        return;
    if (t->magic != WEFT__TASK_LIVE || t->released) {
        weft__log("weft_detach: the task was already joined or detached; ignored\n");
        return;
    }
    t->released = true;
    t->detached = true;
    if (t->state == WEFT__ENDED) {
        report_detached_failure(t);
        weft__task_free(t->loop, t);
    }
}

bool weft__task_joinable(const weft_task *self, const weft_task *t)
{
    return t && t != self && t->magic == WEFT__TASK_LIVE && !t->released && t->loop == self->loop;
}

void weft__join_interrupt(weft_task *t, int reason)
{
    weft__waiter_unlink(t->park_obj);
    weft__wake(t, reason);
}

intptr_t weft__join(weft_task *t, uint64_t expiry)
{
    weft_task *self = weft__current();
    if (!self)
        return -EPERM;
    if (!weft__task_joinable(self, t))
        return -EINVAL;
    int why = 0;
    if (t->state != WEFT__ENDED) {
        why = weft__check_suspend(self);
        weft__waiter w = {.task = self};
        if (!why) {
            weft__waiter_link(&t->future, &w);
            intptr_t v = weft__park(self, weft__join_interrupt, &w, expiry, -ETIMEDOUT);
            if (!w.fired)
                why = (int)v;
        }
        if (t->state != WEFT__ENDED) {
            /* Interrupted: the joined task must not outlive the join. Cancel it and wait,
             * uninterruptibly, until it has ended. */
            weft_cancel(t);
            while (t->state != WEFT__ENDED) {
                w.fired = false;
                weft__waiter_link(&t->future, &w);
                weft__park(self, NULL, NULL, UINT64_MAX, 0);
            }
        }
    }
    intptr_t result = t->future.result;
    t->released = true;
    weft__task_free(self->loop, t);
    if (why && result == -ECANCELED)
        result = why;
    return result;
}

intptr_t weft_join(weft_task *t)
{
    return weft__join(t, UINT64_MAX);
}

weft_future *weft_task_future(weft_task *t)
{
    return t && t->magic == WEFT__TASK_LIVE ? &t->future : NULL;
}

void weft__run_ready(weft_loop *l)
{
    l->budget = WEFT__TURN_BUDGET;
    weft_task *t = next_runnable(l);
    if (t) {
        weft__note_switch(l, t);
        weft__ctx_switch(&l->ctx, &t->ctx);
        weft__after_switch(l);
    }
}

/* ---- a task's future ----------------------------------------------------------------------------- */

static void task_future_free(weft_future *f)
{
    (void)f;
    weft__log("weft_future_free: a task's future is released with its task (join or detach); ignored\n");
}

/* The last callback queued on the future of a released task has run: the task can go now. */
static void task_future_release(weft_future *f)
{
    weft_task *t = WEFT__CONTAINER(f, weft_task, future);
    f->freed = false;
    weft__task_free(t->loop, t);
}

/* Only the task itself resolves it, by ending: a user's cancel and resolve are refused. */
static const weft__future_ops task_future = {
    .cancel = weft__future_cancel_refused,
    .free = task_future_free,
    .release = task_future_release,
};

const weft_task *weft__future_task(const weft_future *f)
{
    return f->ops == &task_future ? WEFT__CONTAINER(f, weft_task, future) : NULL;
}
