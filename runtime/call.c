/*
 * Callbacks on the loop: call_soon, call_later and call_soon_threadsafe, asyncio's three.
 *
 * All three end in the loop's run queue (sched.c), the FIFO that ready tasks share, so a callback runs
 * in the order it became due among them, outside any task. call_later arms a timer on the loop's heap
 * that queues the callback when it fires; call_soon_threadsafe travels through the loop's remote list,
 * the path cross-thread resolutions take (future.c), so a burst of them costs the loop one wakeup.
 */
#include "internal.h"

#include <stdlib.h>

/* ---- call_soon ----------------------------------------------------------------------------------- */

typedef struct soon_call {
    weft__runnable run;
    void (*fn)(void *arg);
    void *arg;
} soon_call;

static void soon_run(weft__runnable *r)
{
    soon_call *c = WEFT__CONTAINER(r, soon_call, run);
    void (*fn)(void *) = c->fn;
    void *arg = c->arg;
    free(c);
    fn(arg);
}

static soon_call *soon_new(void (*fn)(void *), void *arg)
{
    soon_call *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->run.call = soon_run;
    c->run.user_fn = (const void *)fn;
    c->fn = fn;
    c->arg = arg;
    return c;
}

int weft_call_soon(void (*fn)(void *arg), void *arg)
{
    if (!fn)
        return -EINVAL;
    weft_loop *l = weft__tls_loop;
    if (!l)
        return -EPERM;
    soon_call *c = soon_new(fn, arg);
    if (!c)
        return -ENOMEM;
    weft__run_push(l, &c->run);
    return 0;
}

/* ---- call_later ---------------------------------------------------------------------------------- */

struct weft_timer {
    weft__timer timer;       /* on the loop's heap while armed */
    weft__runnable run;      /* in the run queue once it fired, until it runs */
    weft__link link;         /* in the loop's call_timers, until it has run or is cancelled */
    weft_loop *loop;         /* NULL once the loop it was made on has ended */
    void (*fn)(void *arg);
    void *arg;
    bool held;               /* the caller holds a handle: weft_timer_free releases it */
    bool queued;             /* fired: its run is in the run queue */
    bool cancelled;          /* cancelled after it fired: its run does nothing */
    bool done;               /* ran or was cancelled: a handle is all that is left */
};

static void timer_maybe_free(weft_timer *h)
{
    if (h->done && !h->queued && !h->held)
        free(h);
}

/* Leaves the loop's books: no longer armed, queued or counted. */
static void timer_retire(weft_timer *h)
{
    weft_loop *l = h->loop;
    h->done = true;
    if (l) {
        weft__list_remove(&l->call_timers, &h->link);
        l->ncall_timers--;
    }
}

static void timer_run(weft__runnable *r)
{
    weft_timer *h = WEFT__CONTAINER(r, weft_timer, run);
    h->queued = false;
    bool call = !h->cancelled;
    if (call)
        timer_retire(h);
    void (*fn)(void *) = h->fn;
    void *arg = h->arg;
    timer_maybe_free(h); /* before fn: fn may free the handle it was given */
    if (call)
        fn(arg);
}

static void timer_fire(weft__timer *t)
{
    weft_timer *h = WEFT__CONTAINER(t, weft_timer, timer);
    if (WEFT__UNLIKELY(h->loop->trace != NULL))
        weft__trace_timer(h->loop, NULL, 2, (const void *)h->fn);
    h->queued = true;
    weft__run_push(h->loop, &h->run);
}

int weft_call_later(uint64_t delay_ns, void (*fn)(void *arg), void *arg, weft_timer **handle)
{
    if (handle)
        *handle = NULL;
    if (!fn)
        return -EINVAL;
    weft_loop *l = weft__tls_loop;
    if (!l)
        return -EPERM;
    /* Room for every task's timer and every armed call, so arming never fails later. */
    if (weft__timer_reserve(&l->timers, l->stats.tasks_live + l->ncall_timers + 1) < 0)
        return -ENOMEM;
    weft_timer *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->timer.heap_index = SIZE_MAX;
    h->timer.fire = timer_fire;
    h->run.call = timer_run;
    h->run.user_fn = (const void *)fn;
    h->loop = l;
    h->fn = fn;
    h->arg = arg;
    h->held = handle != NULL;
    weft__list_push(&l->call_timers, &h->link);
    l->ncall_timers++;
    uint64_t now = weft__now();
    weft__timer_arm(&l->timers, &h->timer, delay_ns >= UINT64_MAX - now ? UINT64_MAX : now + delay_ns);
    if (handle)
        *handle = h;
    return 0;
}

int weft_timer_cancel(weft_timer *h)
{
    if (!h)
        return -EINVAL;
    if (h->done)
        return -EALREADY;
    if (h->loop && h->loop != weft__tls_loop)
        return -EINVAL;
    if (weft__timer_armed(&h->timer))
        weft__timer_disarm(&h->loop->timers, &h->timer);
    if (h->queued)
        h->cancelled = true; /* its run stays in the queue and does nothing */
    timer_retire(h);
    return 0;
}

void weft_timer_free(weft_timer *h)
{
    if (!h)
        return;
    if (!h->done)
        weft_timer_cancel(h);
    h->held = false;
    timer_maybe_free(h);
}

void weft__calls_end(weft_loop *l)
{
    weft__link *link;
    while ((link = weft__list_pop(&l->call_timers))) {
        weft_timer *h = WEFT__CONTAINER(link, weft_timer, link);
        if (weft__timer_armed(&h->timer))
            weft__timer_disarm(&l->timers, &h->timer);
        h->loop = NULL;
        h->done = true;
        h->queued = false;
        timer_maybe_free(h);
    }
    l->ncall_timers = 0;
}

/* ---- call_soon_threadsafe ------------------------------------------------------------------------ */

/* A call posted from another thread: a future whose landing on the loop queues the call. */
typedef struct remote_call {
    weft_future future; /* first: carries it through the remote list */
    soon_call *call;
} remote_call;

static bool remote_call_landed(weft_loop *l, weft_future *f)
{
    remote_call *rc = WEFT__CONTAINER(f, remote_call, future);
    weft__run_push(l, &rc->call->run);
    free(rc);
    return false;
}

static void remote_call_free(weft_future *f)
{
    remote_call *rc = WEFT__CONTAINER(f, remote_call, future);
    free(rc->call);
    free(rc);
}

static const weft__future_ops remote_call_future = {
    .cancel = weft__future_cancel_refused,
    .free = remote_call_free,
    .release = remote_call_free,
    .landed = remote_call_landed,
    .discard = remote_call_free, /* a call that came after the loop's last run */
};

int weft_call_soon_threadsafe(weft_loop *l, void (*fn)(void *arg), void *arg)
{
    if (!l || !fn)
        return -EINVAL;
    remote_call *rc = malloc(sizeof *rc);
    soon_call *c = soon_new(fn, arg);
    if (!rc || !c) {
        free(rc);
        free(c);
        return -ENOMEM;
    }
    rc->call = c;
    weft__future_init(&rc->future, &remote_call_future, l);
    return weft__future_post(&rc->future, 0);
}

weft_loop *weft_loop_current(void)
{
    return weft__tls_loop;
}
