/*
 * Waiting on many: gather, wait_any, as_completed, wait_for, shield and scoped deadlines.
 */
#include "internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Entry checks of gather and wait_any: a task, n futures that exist (at least one if need_one), and
 * leave to suspend. */
static int many_check(weft_future *const *fs, size_t n, bool need_one, weft_task **t)
{
    bool ok = (fs || !n) && (n || !need_one);
    for (size_t i = 0; ok && i < n; i++)
        ok = fs[i] != NULL;
    return weft__wait_check(ok, t);
}

int weft_gather(weft_future *const *fs, size_t n, intptr_t *results)
{
    weft_task *t;
    int r = many_check(fs, n, false, &t);
    if (r)
        return r;
    /* Awaiting one future after another takes as long as awaiting them all at once — they all run
     * meanwhile — and needs one waiter instead of n. */
    int first_error = 0;
    for (size_t i = 0; i < n; i++) {
        bool completed;
        intptr_t v = weft__await(t, fs[i], &completed);
        if (!completed)
            return (int)v; /* interrupted: -ECANCELED or -ETIMEDOUT */
        if (results)
            results[i] = v;
        if (v < 0 && !first_error)
            first_error = (int)v;
    }
    return first_error;
}

int weft_join_all(weft_task *const *ts, size_t n, intptr_t *results)
{
    weft_task *self = weft__current();
    if (!self)
        return -EPERM;
    if (!ts && n)
        return -EINVAL;
    /* Every handle must be joinable, and named once, before any is joined: then all are released. */
    size_t ok = 0;
    for (; ok < n; ok++) {
        weft_task *t = ts[ok];
        if (!weft__task_joinable(self, t) || t->in_join_all)
            break;
        t->in_join_all = true;
    }
    if (ok < n) {
        while (ok--)
            ts[ok]->in_join_all = false;
        return -EINVAL;
    }
    /* Joined in order: once the caller is interrupted, each later join cancels its task and waits
     * for it to end, so none outlives the call. */
    int first_error = 0;
    for (size_t i = 0; i < n; i++) {
        intptr_t v = weft__join(ts[i], UINT64_MAX);
        if (results)
            results[i] = v;
        if (v < 0 && !first_error)
            first_error = (int)v;
    }
    return first_error;
}

typedef struct any_set {
    weft__waiter *waiters;
    size_t n;
} any_set;

void weft__any_interrupt(weft_task *t, int reason)
{
    any_set *set = t->park_obj;
    for (size_t i = 0; i < set->n; i++)
        weft__waiter_unlink(&set->waiters[i]);
    weft__wake(t, reason);
}

ssize_t weft_wait_any(weft_future *const *fs, size_t n, uint64_t timeout_ns)
{
    weft_task *t;
    int r = many_check(fs, n, true, &t);
    if (r)
        return r;
    for (size_t i = 0; i < n; i++)
        fs[i]->observed = true;
    for (size_t i = 0; i < n; i++)
        if (weft_future_done(fs[i]))
            return (ssize_t)i;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    for (size_t i = 0; i < n; i++) {
        weft_loop *owner = atomic_load_explicit(&fs[i]->loop, memory_order_relaxed);
        if (owner && owner != t->loop)
            return -EINVAL;
    }
    weft__waiter inline_waiters[16];
    weft__waiter *waiters = inline_waiters;
    if (n > 16) {
        waiters = malloc(n * sizeof *waiters);
        if (!waiters)
            return -ENOMEM;
    }
    memset(waiters, 0, n * sizeof *waiters);
    for (size_t i = 0; i < n; i++) {
        atomic_store_explicit(&fs[i]->loop, t->loop, memory_order_relaxed);
        waiters[i].task = t;
        weft__waiter_link(fs[i], &waiters[i]);
    }
    uint64_t now = weft__now();
    uint64_t expiry = timeout_ns >= UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
    any_set set = {waiters, n};
    ssize_t v = weft__park(t, weft__any_interrupt, &set, expiry, -ETIMEDOUT);
    ssize_t first = -1;
    for (size_t i = 0; i < n; i++) {
        if (waiters[i].fired) {
            if (first < 0)
                first = (ssize_t)i;
        } else {
            weft__waiter_unlink(&waiters[i]);
        }
    }
    if (waiters != inline_waiters)
        free(waiters);
    return first >= 0 ? first : v;
}

intptr_t weft_wait_for(weft_task *t, uint64_t timeout_ns)
{
    uint64_t now = weft__now();
    return weft__join(t, timeout_ns >= UINT64_MAX - now ? UINT64_MAX : now + timeout_ns);
}

intptr_t weft_shield(weft_task *t)
{
    weft_task *self = weft__current();
    if (!self)
        return -EPERM;
    if (!weft__task_joinable(self, t))
        return -EINVAL;
    if (t->state != WEFT__ENDED) {
        /* Awaiting a task's future, unlike joining it, leaves the task alone when the awaiting task
         * is interrupted: that is the shield. */
        bool completed;
        intptr_t v = weft__await(self, &t->future, &completed);
        if (!completed) {
            /* The caller goes; t runs on, on its own, and a failure of it is reported when it ends. */
            weft_detach(t);
            return v;
        }
    }
    return weft__join(t, UINT64_MAX); /* ended: no suspension, just the result and the release */
}

/* ---- as_completed ------------------------------------------------------------------------------ */

/*
 * A callback on each future puts its index in a channel as it completes, so next() takes them in
 * completion order and a waiting next() is woken by the first. The channel holds all n, so a callback
 * never has to wait; it is closed after the last, and a drained closed channel is what next()'s end
 * is. The result is copied in the callback, so the futures may be freed once they are delivered.
 */
struct weft_as_completed {
    size_t n;
    size_t completed;          /* callbacks that have run */
    size_t queued;             /* callbacks queued to run when free came (set by free) */
    bool freed;
    weft_chan *order;          /* indices in completion order */
    weft__waiter **watches;    /* [i]: the callback on future i until it has run, then NULL */
    intptr_t *results;
    struct as_completed_slot {
        weft_as_completed *ac;
        size_t index;
    } *slots;
};

static void as_completed_destroy(weft_as_completed *ac)
{
    weft_chan_free(ac->order);
    free(ac->watches);
    free(ac->results);
    free(ac->slots);
    free(ac);
}

static void as_completed_fired(weft_future *f, void *arg)
{
    struct as_completed_slot *slot = arg;
    weft_as_completed *ac = slot->ac;
    ac->watches[slot->index] = NULL;
    if (ac->freed) {
        if (--ac->queued == 0)
            as_completed_destroy(ac);
        return;
    }
    ac->results[slot->index] = f->result;
    int r = weft_chan_try_send(ac->order, (void *)(uintptr_t)slot->index);
    assert(r == 0); /* room for all n */
    (void)r;
    if (++ac->completed == ac->n)
        weft_chan_close(ac->order);
}

weft_as_completed *weft_as_completed_new(weft_future *const *fs, size_t n)
{
    if (!weft__tls_loop) {
        errno = EPERM;
        return NULL;
    }
    if (!fs && n) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!fs[i]) {
            errno = EINVAL;
            return NULL;
        }
    }
    weft_as_completed *ac = calloc(1, sizeof *ac);
    if (!ac) {
        errno = ENOMEM;
        return NULL;
    }
    ac->n = n;
    ac->order = weft_chan_new(n);
    ac->watches = calloc(n ? n : 1, sizeof *ac->watches);
    ac->results = calloc(n ? n : 1, sizeof *ac->results);
    ac->slots = calloc(n ? n : 1, sizeof *ac->slots);
    if (!ac->order || !ac->watches || !ac->results || !ac->slots) {
        as_completed_destroy(ac);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        ac->slots[i] = (struct as_completed_slot){ac, i};
        int err;
        ac->watches[i] = weft__future_watch(fs[i], as_completed_fired, &ac->slots[i], &err);
        if (!ac->watches[i]) {
            weft_as_completed_free(ac);
            errno = -err;
            return NULL;
        }
    }
    if (n == 0)
        weft_chan_close(ac->order);
    return ac;
}

ssize_t weft_as_completed_next(weft_as_completed *ac, intptr_t *result)
{
    if (!weft__current())
        return -EPERM;
    if (!ac)
        return -EINVAL;
    void *item;
    int r = weft_chan_recv(ac->order, &item);
    if (r < 0)
        return r; /* -EPIPE: every index has been delivered */
    size_t i = (size_t)(uintptr_t)item;
    if (result)
        *result = ac->results[i];
    return (ssize_t)i;
}

void weft_as_completed_free(weft_as_completed *ac)
{
    if (!ac)
        return;
    ac->freed = true;
    for (size_t i = 0; i < ac->n; i++)
        if (ac->watches[i] && !weft__future_unwatch(ac->watches[i]))
            ac->queued++;
    if (ac->queued == 0)
        as_completed_destroy(ac);
}

void weft_deadline_push(uint64_t deadline_ns)
{
    weft_task *t = weft__current();
    if (!t)
        return;
    uint64_t effective = weft__deadline(t);
    if (deadline_ns < effective)
        effective = deadline_ns;
    if (t->deadline_depth == t->deadline_cap) {
        unsigned cap = t->deadline_cap * 2;
        uint64_t *grown = t->deadlines == t->deadline_inline ? malloc(cap * sizeof *grown)
                                                             : realloc(t->deadlines, cap * sizeof *grown);
        if (!grown) {
            /* No room to remember this level: keep it in force by tightening the current top, which
             * errs on the early side for the levels below it until they are popped, never late. */
            t->deadlines[t->deadline_depth - 1] = effective;
            t->deadline_lost++;
            return;
        }
        if (t->deadlines == t->deadline_inline)
            memcpy(grown, t->deadline_inline, sizeof t->deadline_inline);
        t->deadlines = grown;
        t->deadline_cap = cap;
    }
    t->deadlines[t->deadline_depth++] = effective;
}

void weft_deadline_pop(void)
{
    weft_task *t = weft__current();
    if (!t)
        return;
    if (t->deadline_lost)
        t->deadline_lost--;
    else if (t->deadline_depth)
        t->deadline_depth--;
}
