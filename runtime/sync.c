/*
 * Coordination: events, mutexes, semaphores, condition variables and barriers (asyncio.Event, Lock,
 * Semaphore, Condition, Barrier), on one FIFO wait queue shared with the channels.
 *
 * Wakeups hand over what was waited for — the lock, a permit, an item — to the first waiter at the
 * moment it is released, rather than waking everybody to race for it: FIFO order is kept, no wakeup
 * is lost, and a task cancelled while waiting either got the thing (and its call returns success; the
 * next call sees the cancel) or it did not and is gone from the queue: nothing is leaked either way.
 */
#include "internal.h"

#include <stdlib.h>

void weft__wq_push(weft__wq *q, weft__wq_node *n)
{
    weft__list_push(q, &n->link);
    n->queue = q;
}

void weft__wq_remove(weft__wq_node *n)
{
    if (!n->queue)
        return;
    weft__list_remove(n->queue, &n->link);
    n->queue = NULL;
}

weft__wq_node *weft__wq_pop(weft__wq *q)
{
    weft__link *link = weft__list_pop(q);
    if (!link)
        return NULL;
    weft__wq_node *n = WEFT__CONTAINER(link, weft__wq_node, link);
    n->queue = NULL;
    return n;
}

void weft__wq_grant(weft__wq_node *n, intptr_t result)
{
    n->granted = true;
    n->result = result;
    if (n->future) {
        /* A future waiter (weft_chan_recv_async): it gets the item, or the error. */
        weft_future *f = n->future;
        f->wq_node = NULL;
        weft__future_complete(atomic_load_explicit(&f->loop, memory_order_relaxed), f,
                              result == 0 ? (intptr_t)n->item : result);
        free(n);
    } else if (n->task->state == WEFT__PARKED) {
        weft__wake(n->task, 0);
    }
}

void weft__wq_interrupt(weft_task *t, int reason)
{
    weft__wq_remove(t->park_obj);
    weft__wake(t, reason);
}

intptr_t weft__wq_wait(weft__wq *q, weft__wq_node *n, weft_task *t, const char *call)
{
    n->task = t;
    n->call = call;
    n->future = NULL;
    n->granted = false;
    weft__wq_push(q, n);
    intptr_t v = weft__park(t, weft__wq_interrupt, n, UINT64_MAX, 0);
    return n->granted ? n->result : v;
}

void weft__wq_fail_all(weft__wq *q, intptr_t result)
{
    weft__wq_node *n;
    while ((n = weft__wq_pop(q)))
        weft__wq_grant(n, result);
}

/* ---- events ------------------------------------------------------------------------------------ */

struct weft_event {
    bool set;
    weft__wq waiters;
};

weft_event *weft_event_new(void)
{
    weft_event *e = calloc(1, sizeof *e);
    if (!e)
        errno = ENOMEM;
    return e;
}

void weft_event_set(weft_event *e)
{
    if (!e || e->set)
        return;
    e->set = true;
    weft__wq_fail_all(&e->waiters, 0);
}

void weft_event_clear(weft_event *e)
{
    if (e)
        e->set = false;
}

bool weft_event_is_set(const weft_event *e)
{
    return e && e->set;
}

int weft_event_wait(weft_event *e)
{
    weft_task *t;
    int r = weft__wait_check(e != NULL, &t);
    if (r)
        return r;
    if (e->set)
        return 0;
    weft__wq_node n;
    return (int)weft__wq_wait(&e->waiters, &n, t, "weft_event_wait");
}

void weft_event_free(weft_event *e)
{
    if (!e)
        return;
    weft__wq_fail_all(&e->waiters, -EPIPE);
    free(e);
}

/* ---- mutexes ----------------------------------------------------------------------------------- */

struct weft_mutex {
    weft_task *owner;
    weft__wq waiters;
};

weft_mutex *weft_mutex_new(void)
{
    weft_mutex *m = calloc(1, sizeof *m);
    if (!m)
        errno = ENOMEM;
    return m;
}

int weft_mutex_lock(weft_mutex *m)
{
    weft_task *t;
    int r = weft__wait_check(m != NULL, &t);
    if (r)
        return r;
    if (m->owner == t)
        return -EDEADLK;
    if (!m->owner) {
        m->owner = t;
        return 0;
    }
    weft__wq_node n;
    /* On success unlock has already made this task the owner. */
    return (int)weft__wq_wait(&m->waiters, &n, t, "weft_mutex_lock");
}

int weft_mutex_trylock(weft_mutex *m)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    if (!m)
        return -EINVAL;
    if (m->owner)
        return m->owner == t ? -EDEADLK : -EBUSY;
    m->owner = t;
    return 0;
}

void weft_mutex_unlock(weft_mutex *m)
{
    if (!m)
        return;
    if (m->owner != weft__current()) {
        weft__log("weft_mutex_unlock: the calling task does not hold the mutex; ignored\n");
        return;
    }
    weft__wq_node *next = weft__wq_pop(&m->waiters);
    m->owner = next ? next->task : NULL;
    if (next)
        weft__wq_grant(next, 0);
}

void weft_mutex_free(weft_mutex *m)
{
    if (!m)
        return;
    weft__wq_fail_all(&m->waiters, -EPIPE);
    free(m);
}

/* ---- semaphores -------------------------------------------------------------------------------- */

struct weft_sem {
    unsigned permits;
    weft__wq waiters;
};

weft_sem *weft_sem_new(unsigned n)
{
    weft_sem *s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->permits = n;
    return s;
}

int weft_sem_acquire(weft_sem *s)
{
    weft_task *t;
    int r = weft__wait_check(s != NULL, &t);
    if (r)
        return r;
    if (s->permits) {
        s->permits--;
        return 0;
    }
    weft__wq_node n;
    return (int)weft__wq_wait(&s->waiters, &n, t, "weft_sem_acquire");
}

int weft_sem_try_acquire(weft_sem *s)
{
    if (!s)
        return -EINVAL;
    if (!s->permits)
        return -EAGAIN;
    s->permits--;
    return 0;
}

void weft_sem_release(weft_sem *s)
{
    if (!s)
        return;
    weft__wq_node *next = weft__wq_pop(&s->waiters);
    if (next)
        weft__wq_grant(next, 0); /* the permit goes straight to the first waiter */
    else
        s->permits++;
}

unsigned weft_sem_value(const weft_sem *s)
{
    return s ? s->permits : 0;
}

void weft_sem_free(weft_sem *s)
{
    if (!s)
        return;
    weft__wq_fail_all(&s->waiters, -EPIPE);
    free(s);
}

/* ---- condition variables ----------------------------------------------------------------------- */

struct weft_cond {
    weft__wq waiters;
};

weft_cond *weft_cond_new(void)
{
    weft_cond *c = calloc(1, sizeof *c);
    if (!c)
        errno = ENOMEM;
    return c;
}

/*
 * Takes m for t whatever happens meanwhile: cancellation and deadlines do not end this wait, as the
 * caller of weft_cond_wait must hold the mutex again on every return (asyncio's Condition.wait
 * re-acquires its lock even when cancelled). Returns 0, or -EPIPE if m was freed meanwhile.
 */
static int mutex_lock_uninterruptible(weft_mutex *m, weft_task *t)
{
    if (!m->owner) {
        m->owner = t;
        return 0;
    }
    weft__wq_node n = {.task = t};
    weft__wq_push(&m->waiters, &n);
    while (!n.granted)
        weft__park(t, NULL, NULL, UINT64_MAX, 0);
    return (int)n.result;
}

int weft_cond_wait(weft_cond *c, weft_mutex *m)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    if (!c || !m)
        return -EINVAL;
    if (m->owner != t)
        return -EPERM;
    int r = weft__check_suspend(t);
    if (r)
        return r;
    /* Unlocking does not suspend, so no notify can come between it and joining the queue. */
    weft_mutex_unlock(m);
    weft__wq_node n;
    intptr_t v = weft__wq_wait(&c->waiters, &n, t, "weft_cond_wait");
    int relocked = mutex_lock_uninterruptible(m, t);
    return relocked ? relocked : (int)v;
}

void weft_cond_notify(weft_cond *c)
{
    if (!c)
        return;
    weft__wq_node *n = weft__wq_pop(&c->waiters);
    if (n)
        weft__wq_grant(n, 0);
}

void weft_cond_notify_all(weft_cond *c)
{
    if (c)
        weft__wq_fail_all(&c->waiters, 0);
}

void weft_cond_free(weft_cond *c)
{
    if (!c)
        return;
    weft__wq_fail_all(&c->waiters, -EPIPE);
    free(c);
}

/* ---- barriers ---------------------------------------------------------------------------------- */

struct weft_barrier {
    unsigned parties;
    unsigned arrived; /* tasks waiting in this round */
    weft__wq waiters;
};

weft_barrier *weft_barrier_new(unsigned parties)
{
    if (parties == 0) {
        errno = EINVAL;
        return NULL;
    }
    weft_barrier *b = calloc(1, sizeof *b);
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    b->parties = parties;
    return b;
}

int weft_barrier_wait(weft_barrier *b)
{
    weft_task *t;
    int r = weft__wait_check(b != NULL, &t);
    if (r)
        return r;
    if (b->arrived + 1 == b->parties) {
        /* The last to arrive lets the round go: the waiters get 0.. in their order of arrival, this
         * task parties - 1, and the next round starts empty. Indices are handed out here rather than
         * on arrival so that one left by a cancelled waiter is never given twice. */
        unsigned index = 0;
        weft__wq_node *n;
        while ((n = weft__wq_pop(&b->waiters)))
            weft__wq_grant(n, index++);
        b->arrived = 0;
        return (int)(b->parties - 1);
    }
    b->arrived++;
    weft__wq_node n;
    intptr_t v = weft__wq_wait(&b->waiters, &n, t, "weft_barrier_wait");
    if (!n.granted)
        b->arrived--; /* it left before the round went: the round waits for another */
    return (int)v;
}

unsigned weft_barrier_waiting(const weft_barrier *b)
{
    return b ? b->arrived : 0;
}

void weft_barrier_free(weft_barrier *b)
{
    if (!b)
        return;
    weft__wq_fail_all(&b->waiters, -EPIPE);
    free(b);
}
