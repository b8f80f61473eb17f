/*
 * Waiting on many: gather, wait_any, wait_for and scoped deadlines.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Entry checks of gather and wait_any: a task, n futures that exist (at least one if need_one), and
 * leave to suspend. */
static int many_check(weft_future *const *fs, size_t n, bool need_one, weft_task **t)
{
    *t = weft__current();
    if (!*t)
        return -EPERM;
    if ((!fs && n) || (need_one && n == 0))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    return weft__check_suspend(*t);
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
        if (!t || t == self || t->magic != WEFT__TASK_LIVE || t->released || t->loop != self->loop ||
            t->in_join_all)
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
