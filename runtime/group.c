/*
 * Task groups (asyncio.TaskGroup): structured concurrency.
 *
 * Members belong to the group: nobody joins them one by one, and the group frees them as they end.
 * The first member to fail (end with an error other than -ECANCELED) cancels every other member, and
 * weft_group_wait returns only after all members have ended, with that first error. Cancelling the
 * task that waits cancels the members too; the wait still lasts until they have all ended, so no
 * member outlives the group. A member spawned with a result slot has its result stored there as it
 * ends (asyncio's task.result() after the TaskGroup block): the slot only has to live until
 * weft_group_wait returns, which is after every member has ended.
 */
#include "internal.h"

#include <stdlib.h>

struct weft_group {
    weft__list members;   /* live members (weft_task.group_link) */
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
    for (weft__link *link = g->members.head; link; link = link->next)
        weft_cancel(WEFT__CONTAINER(link, weft_task, group_link));
}

weft_task *weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
    return weft_group_spawn_result(g, fn, arg, NULL);
}

weft_task *weft_group_spawn_result(weft_group *g, weft_fn fn, void *arg, intptr_t *result)
{
    if (!g) {
        errno = EINVAL;
        return NULL;
    }
    weft_task *t = weft_spawn(fn, arg);
    if (!t)
        return NULL;
    t->group = g;
    t->group_result = result;
    if (result)
        *result = -EINPROGRESS;
    t->released = true; /* the group frees it when it ends */
    weft__list_push(&g->members, &t->group_link);
    g->live++;
    if (g->first_error)
        t->cancelled = true; /* the group has failed: it never starts */
    return t;
}

void weft__group_member_ended(weft_task *t, intptr_t result)
{
    weft_group *g = t->group;
    t->group = NULL;
    if (t->group_result)
        *t->group_result = result;
    weft__list_remove(&g->members, &t->group_link);
    g->live--;
    if (result < 0 && result != -ECANCELED && !g->first_error) {
        g->first_error = (int)result;
        cancel_members(g);
    }
    if (g->live == 0 && g->waiter && g->waiter->state == WEFT__PARKED)
        weft__wake(g->waiter, 0);
}

void weft__group_interrupt(weft_task *t, int reason)
{
    weft_group *g = t->park_obj;
    g->wait_reason = reason;
    cancel_members(g);
    /* The waiter stays parked: the last member to end wakes it. */
}

int weft_group_wait(weft_group *g)
{
    weft_task *t;
    int r = weft__wait_check(g != NULL, &t);
    if (r == -EPERM || r == -EINVAL)
        return r;
    /* Cancelled or past its deadline already: the members are cancelled, and still waited for. */
    g->wait_reason = r;
    if (g->wait_reason)
        cancel_members(g);
    g->waiter = t;
    while (g->live)
        weft__park(t, g->wait_reason ? NULL : weft__group_interrupt, g, UINT64_MAX, 0);
    r = g->first_error ? g->first_error : g->wait_reason;
    free(g);
    return r;
}
