/*
 * Task groups (asyncio.TaskGroup): structured concurrency.
 *
 * Members belong to the group: nobody joins them one by one, and the group frees them as they end.
 * The first member to fail (end with an error other than -ECANCELED) cancels every other member, and
 * weft_group_wait returns only after all members have ended, with that first error. Cancelling the
 * task that waits cancels the members too; the wait still lasts until they have all ended, so no
 * member outlives the group.
 */
#include "internal.h"

#include <stdlib.h>

struct weft_group {
    weft_task *members;   /* live members, linked through group_next */
    size_t live;
    int first_error;
    weft_task *waiter;    /* the task in weft_group_wait */
    int wait_reason;      /* why the wait was interrupted: -ECANCELED, -ETIMEDOUT, or 0 */
};

weft_group *weft_group_new(void)
{
    weft_group *g = calloc(1, sizeof *g);
    if (!g)
        errno = ENOMEM;
    return g;
}

static void cancel_members(weft_group *g)
{
    for (weft_task *m = g->members; m; m = m->group_next)
        weft_cancel(m);
}

weft_task *weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
    if (!g) {
        errno = EINVAL;
        return NULL;
    }
    weft_task *t = weft_spawn(fn, arg);
    if (!t)
        return NULL;
    t->group = g;
    t->released = true; /* the group frees it when it ends */
    t->group_prev = NULL;
    t->group_next = g->members;
    if (g->members)
        g->members->group_prev = t;
    g->members = t;
    g->live++;
    if (g->first_error)
        t->cancelled = true; /* the group has failed: it never starts */
    return t;
}

void weft__group_member_ended(weft_task *t, intptr_t result)
{
    weft_group *g = t->group;
    t->group = NULL;
    if (t->group_prev)
        t->group_prev->group_next = t->group_next;
    else
        g->members = t->group_next;
    if (t->group_next)
        t->group_next->group_prev = t->group_prev;
    g->live--;
    if (result < 0 && result != -ECANCELED && !g->first_error) {
        g->first_error = (int)result;
        cancel_members(g);
    }
    if (g->live == 0 && g->waiter && g->waiter->state == WEFT__PARKED)
        weft__wake(g->waiter, 0);
}

static void group_interrupt(weft_task *t, int reason)
{
    weft_group *g = t->park_obj;
    g->wait_reason = reason;
    cancel_members(g);
    /* The waiter stays parked: the last member to end wakes it. */
}

int weft_group_wait(weft_group *g)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    if (!g)
        return -EINVAL;
    g->wait_reason = weft__check_suspend(t);
    if (g->wait_reason)
        cancel_members(g);
    g->waiter = t;
    while (g->live)
        weft__park(t, g->wait_reason ? NULL : group_interrupt, g, UINT64_MAX, 0);
    int r = g->first_error ? g->first_error : g->wait_reason;
    free(g);
    return r;
}
