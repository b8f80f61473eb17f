/*
 * Futures: a result set once, awaited by any number of tasks, with callbacks run on the loop.
 *
 * Waiters form a doubly linked list so a task that is cancelled or times out unlinks itself in O(1).
 * A task waiter lives on the waiting task's stack (the task stays parked while it is linked); the
 * result is copied into it on completion, so the task never reads the future again after waking and
 * the future may be freed in between.
 *
 * Completion wakes task waiters at once but only queues callbacks: they run from the loop's own
 * context, never on the stack of the task that resolved the future, so a callback cannot suspend
 * somebody else's task.
 *
 * Other threads resolve a future by claiming it (PENDING -> CLAIMED with one compare-and-swap, so
 * exactly one resolver wins), pushing it on the loop's lock-free list and waking the loop only if it
 * announced it may sleep. The loop drains the whole list in one go: many resolutions, one wakeup.
 */
#include "internal.h"

#include <stdlib.h>
#include <unistd.h>

void weft__future_init(weft_future *f, const weft__future_ops *ops, weft_loop *l)
{
    f->ops = ops;
    atomic_store_explicit(&f->state, WEFT__PENDING, memory_order_relaxed);
    f->freed = false;
    f->observed = false;
    f->op_done = false;
    f->pending_cbs = 0;
    f->result = 0;
    atomic_store_explicit(&f->loop, l, memory_order_relaxed);
    f->waiters = (weft__list){0};
    f->remote_next = NULL;
    f->wq_node = NULL;
}

void weft__waiter_link(weft_future *f, weft__waiter *w)
{
    f->observed = true;
    w->future = f;
    weft__list_push(&f->waiters, &w->link);
}

void weft__waiter_unlink(weft__waiter *w)
{
    if (!w->future)
        return;
    weft__list_remove(&w->future->waiters, &w->link);
    w->future = NULL;
}

/* A callback waiter's turn in the run queue came. */
static void callback_call(weft__runnable *r)
{
    weft__waiter *w = WEFT__CONTAINER(r, weft__waiter, run);
    weft_future *f = w->future;
    w->cb(f, w->cb_arg);
    free(w);
    if (--f->pending_cbs == 0 && f->freed)
        f->ops->release(f);
}

/* Queues callback waiter w of f, whose result is in, to run in the loop's run queue. */
static void callback_queue(weft_loop *l, weft_future *f, weft__waiter *w)
{
    w->future = f;
    f->pending_cbs++;
    w->run.call = callback_call;
    w->run.user_fn = (const void *)w->cb;
    weft__run_push(l, &w->run);
}

void weft__future_complete(weft_loop *l, weft_future *f, intptr_t result)
{
    f->result = result;
    atomic_store_explicit(&f->state, WEFT__DONE, memory_order_release);
    weft__link *link;
    while ((link = weft__list_pop(&f->waiters))) {
        weft__waiter *w = WEFT__CONTAINER(link, weft__waiter, link);
        w->result = result;
        w->fired = true;
        if (w->task) {
            w->future = NULL;
            if (w->task->state == WEFT__PARKED)
                weft__wake(w->task, 0);
        } else {
            callback_queue(l, f, w);
        }
    }
}


/* A future waiting for a channel item that is resolved or freed first gives up its turn, so the item
 * goes to the next receiver. */
static void leave_wait_queue(weft_future *f)
{
    if (!f->wq_node)
        return;
    weft__wq_remove(f->wq_node);
    free(f->wq_node);
    f->wq_node = NULL;
}

/* Binds f to the calling thread's loop; false if it belongs to another loop or none runs here. */
static bool future_bind(weft_future *f, weft_loop *l)
{
    weft_loop *owner = atomic_load_explicit(&f->loop, memory_order_relaxed);
    if (owner)
        return owner == l;
    if (!l)
        return false;
    atomic_store_explicit(&f->loop, l, memory_order_release);
    return true;
}

weft_future *weft_future_new(void)
{
    weft_future *f = malloc(sizeof *f);
    if (!f) {
        errno = ENOMEM;
        return NULL;
    }
    weft__future_init(f, &weft__user_future, weft__tls_loop);
    return f;
}

int weft_future_resolve(weft_future *f, intptr_t result)
{
    if (!f || f->ops != &weft__user_future)
        return -EINVAL;
    weft_loop *l = weft__tls_loop;
    if (!atomic_load_explicit(&f->loop, memory_order_relaxed) && !l) {
        /* Nobody can be waiting on a future no loop has seen: just record the result. */
        int expected = WEFT__PENDING;
        if (!atomic_compare_exchange_strong(&f->state, &expected, WEFT__DONE))
            return -EALREADY;
        f->result = result;
        return 0;
    }
    if (!future_bind(f, l))
        return -EINVAL;
    int expected = WEFT__PENDING;
    if (!atomic_compare_exchange_strong(&f->state, &expected, WEFT__CLAIMED))
        return -EALREADY;
    leave_wait_queue(f);
    weft__future_complete(l, f, result);
    return 0;
}

int weft_future_cancel(weft_future *f)
{
    return f ? f->ops->cancel(f) : -EINVAL;
}

static int user_cancel(weft_future *f)
{
    return weft_future_resolve(f, -ECANCELED);
}

int weft_future_resolve_from_thread(weft_future *f, intptr_t result)
{
    if (!f || f->ops != &weft__user_future)
        return -EINVAL;
    return weft__future_post(f, result);
}

int weft__future_post(weft_future *f, intptr_t result)
{
    weft_loop *l = atomic_load_explicit(&f->loop, memory_order_acquire);
    if (!l)
        return -EINVAL;
    int expected = WEFT__PENDING;
    if (!atomic_compare_exchange_strong(&f->state, &expected, WEFT__CLAIMED))
        return -EALREADY;
    f->result = result;
    /* From the push on, the loop may take f, end its run and be freed while this thread still reads
     * it (sleeping, the wake fd): an executor's worker posting the last result of a loop that ends, say.
     * Counted in before the push, this thread is waited for by weft_loop_free. */
    atomic_fetch_add_explicit(&l->posters, 1, memory_order_relaxed);
    weft_future *head = atomic_load_explicit(&l->remote_head, memory_order_relaxed);
    do {
        f->remote_next = head;
    } while (!atomic_compare_exchange_weak(&l->remote_head, &head, f));
    if (atomic_exchange(&l->sleeping, 0) == 1)
        weft__loop_wake(l);
    atomic_fetch_sub_explicit(&l->posters, 1, memory_order_release);
    return 0;
}

void weft__remote_drain(weft_loop *l)
{
    weft_future *f = atomic_exchange_explicit(&l->remote_head, NULL, memory_order_acquire);
    /* The list is newest first; resolve in arrival order. */
    weft_future *fifo = NULL;
    while (f) {
        weft_future *next = f->remote_next;
        f->remote_next = fifo;
        fifo = f;
        f = next;
    }
    while (fifo) {
        weft_future *next = fifo->remote_next;
        fifo->remote_next = NULL;
        l->stats.remote_wakeups++;
        if (fifo->ops->landed && !fifo->ops->landed(l, fifo)) {
            fifo = next;
            continue;
        }
        weft__future_complete(l, fifo, fifo->result);
        if (fifo->freed && fifo->pending_cbs == 0)
            fifo->ops->release(fifo);
        fifo = next;
    }
}

intptr_t weft_await(weft_future *f)
{
    weft_task *t;
    int r = weft__wait_check(f != NULL, &t);
    if (r)
        return r;
    bool completed;
    return weft__await(t, f, &completed);
}

void weft__await_interrupt(weft_task *t, int reason)
{
    weft__waiter_unlink(t->park_obj);
    weft__wake(t, reason);
}

intptr_t weft__await(weft_task *t, weft_future *f, bool *completed)
{
    *completed = false;
    int r = weft__check_suspend(t);
    if (r)
        return r;
    f->observed = true;
    if (atomic_load_explicit(&f->state, memory_order_acquire) == WEFT__DONE) {
        *completed = true;
        return f->result;
    }
    if (!future_bind(f, t->loop))
        return -EINVAL;
    weft__waiter w = {.task = t};
    weft__waiter_link(f, &w);
    intptr_t v = weft__park(t, weft__await_interrupt, &w, UINT64_MAX, 0);
    *completed = w.fired;
    return w.fired ? w.result : v;
}

int weft_future_result(weft_future *f, intptr_t *result)
{
    if (!f || !result)
        return -EINVAL;
    if (atomic_load_explicit(&f->state, memory_order_acquire) != WEFT__DONE)
        return -EAGAIN;
    f->observed = true;
    *result = f->result;
    return 0;
}

bool weft_future_done(const weft_future *f)
{
    return f && atomic_load_explicit(&f->state, memory_order_acquire) == WEFT__DONE;
}

weft__waiter *weft__future_watch(weft_future *f, void (*cb)(weft_future *, void *), void *arg, int *err)
{
    weft_loop *l = weft__tls_loop;
    if (!l) {
        *err = -EPERM;
        return NULL;
    }
    if (!future_bind(f, l)) {
        *err = -EINVAL;
        return NULL;
    }
    weft__waiter *w = calloc(1, sizeof *w);
    if (!w) {
        *err = -ENOMEM;
        return NULL;
    }
    w->cb = cb;
    w->cb_arg = arg;
    f->observed = true;
    if (atomic_load_explicit(&f->state, memory_order_acquire) == WEFT__DONE) {
        w->fired = true;
        callback_queue(l, f, w);
    } else {
        weft__waiter_link(f, w);
    }
    return w;
}

bool weft__future_unwatch(weft__waiter *w)
{
    if (w->fired)
        return false; /* queued: it runs, and frees itself */
    weft__waiter_unlink(w);
    free(w);
    return true;
}

int weft_future_on_done(weft_future *f, void (*cb)(weft_future *, void *), void *arg)
{
    if (!f || !cb)
        return -EINVAL;
    int err;
    return weft__future_watch(f, cb, arg, &err) ? 0 : err;
}

/* An error nobody looked at is a bug hiding: say so when the future goes (asyncio's "exception was
 * never retrieved"), with what the future stood for. */
static void report_unobserved(const weft_future *f)
{
    intptr_t r = f->result;
    if (f->observed || atomic_load_explicit(&f->state, memory_order_acquire) != WEFT__DONE || r >= 0 ||
        r == -ECANCELED)
        return;
    char what[128] = "a future";
    if (f->ops->describe)
        f->ops->describe(f, what, sizeof what);
    weft__log("%s failed with \"%s\" and nobody awaited it\n", what, weft_strerror((int)r));
}

void weft_future_free(weft_future *f)
{
    if (f)
        f->ops->free(f);
}

static void user_free(weft_future *f)
{
    report_unobserved(f);
    leave_wait_queue(f);
    int state = atomic_load_explicit(&f->state, memory_order_acquire);
    weft_loop *l = atomic_load_explicit(&f->loop, memory_order_relaxed);
    if (state == WEFT__PENDING && l) {
        int expected = WEFT__PENDING;
        if (atomic_compare_exchange_strong(&f->state, &expected, WEFT__CLAIMED)) {
            weft__future_complete(l, f, -ECANCELED);
            state = WEFT__DONE;
        } else {
            state = expected; /* another thread claimed it just now */
        }
    }
    if (state == WEFT__CLAIMED || f->pending_cbs) {
        /* Still referenced by the loop's remote list or queued callbacks: the last of them frees it. */
        f->freed = true;
        return;
    }
    free(f);
}

static void user_release(weft_future *f)
{
    free(f);
}

const weft__future_ops weft__user_future = {
    .cancel = user_cancel,
    .free = user_free,
    .release = user_release,
};

int weft__future_cancel_refused(weft_future *f)
{
    (void)f;
    return -EINVAL;
}

void weft__future_nothing_to_free(weft_future *f)
{
    (void)f;
}

/* ---- owned futures ------------------------------------------------------------------------------ */

static void owned_maybe_free(weft_future *f)
{
    if (f->op_done && f->freed && f->pending_cbs == 0)
        free(f);
}

void weft__owned_done(weft_future *f)
{
    f->op_done = true;
    owned_maybe_free(f);
}

int weft__owned_cancel(weft_future *f)
{
    if (f->op_done)
        return -EALREADY;
    f->ops->stop(f, false);
    return 0;
}

void weft__owned_free(weft_future *f)
{
    report_unobserved(f);
    /* The stop may end the operation on the spot (epoll, a job not started): the future is only
     * marked freed afterwards, so that ending cannot free the block under our feet. */
    if (!f->op_done)
        f->ops->stop(f, true);
    f->freed = true;
    owned_maybe_free(f);
}

void weft__owned_release(weft_future *f)
{
    owned_maybe_free(f);
}
