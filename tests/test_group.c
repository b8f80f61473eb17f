/*
 * Task groups (asyncio.TaskGroup): success, the first failure cancelling the siblings and being the
 * result only once every member has ended, no new member starting after a failure, nested groups,
 * cancellation and deadlines of the waiting task (members cancelled, and still waited for), the
 * errors of misuse, and members' results kept by weft_group_spawn_result.
 */
#include "common.h"

TestSuite(group, .timeout = 60);

/* A member: sleeps, then returns result. If its sleep is interrupted it records that (sleep_rc),
 * runs a cleanup of a few yields recording id + 100 each, then returns on_cancel. */
struct member {
    int id;
    uint64_t sleep_ns;
    intptr_t result;
    intptr_t on_cancel;
    int cleanup_yields;
    int sleep_rc;
    bool started;
};

static intptr_t member_task(void *arg)
{
    struct member *m = arg;
    m->started = true;
    m->sleep_rc = weft_sleep(m->sleep_ns);
    if (m->sleep_rc < 0) {
        for (int i = 0; i < m->cleanup_yields; i++) {
            weft_yield(); /* cleanup that lets the loop run: the group must wait for it */
            ev(m->id + 100);
        }
        return m->on_cancel;
    }
    ev(m->id);
    return m->result;
}

static struct member sleeper(int id, uint64_t ns, intptr_t result)
{
    return (struct member){.id = id, .sleep_ns = ns, .result = result, .on_cancel = -ECANCELED, .sleep_rc = INT32_MIN};
}

static struct member long_sleeper(int id, int cleanup_yields)
{
    struct member m = sleeper(id, SEC(30), 0);
    m.cleanup_yields = cleanup_yields;
    return m;
}

/* ---- success and failure ---------------------------------------------------------------------------- */

static intptr_t all_succeed_main(void *arg)
{
    (void)arg;
    weft_group *g = weft_group_new();
    cr_assert(g != NULL);
    struct member ms[5];
    for (int i = 0; i < 5; i++) {
        ms[i] = sleeper(i + 1, MS(5 - i), i + 10);
        cr_assert(weft_group_spawn(g, member_task, &ms[i]) != NULL);
    }
    EQ(weft_group_wait(g), 0);
    ev(99);
    /* Every member ended (each recorded its id once) before the wait returned. */
    EQ(ev_len, 6);
    int seen[6] = {0};
    for (size_t i = 0; i < 5; i++) {
        cr_assert(ev_log[i] >= 1 && ev_log[i] <= 5, "unexpected event %d", ev_log[i]);
        seen[ev_log[i]]++;
    }
    for (int id = 1; id <= 5; id++)
        EQ(seen[id], 1);
    EQ(ev_log[5], 99);
    return 0;
}

Test(group, group_wait_returns_0_after_every_member_succeeded)
{
    EQ(run(all_succeed_main, NULL), 0);
}

static intptr_t first_failure_main(void *arg)
{
    (void)arg;
    weft_group *g = weft_group_new();
    struct member failing = sleeper(1, MS(10), -EIO);
    struct member b = long_sleeper(2, 2), c = long_sleeper(3, 3);
    struct member d = long_sleeper(4, 1);
    d.on_cancel = -EBADF; /* fails too, but after the first failure: not the group's result */
    weft_group_spawn(g, member_task, &b);
    weft_group_spawn(g, member_task, &failing);
    weft_group_spawn(g, member_task, &c);
    weft_group_spawn(g, member_task, &d);
    uint64_t t0 = weft_now();
    EQ(weft_group_wait(g), -EIO);
    ev(99);
    cr_assert(weft_now() - t0 < SEC(20), "the siblings were not cancelled: the wait lasted their sleep");
    EQ(b.sleep_rc, -ECANCELED);
    EQ(c.sleep_rc, -ECANCELED);
    EQ(d.sleep_rc, -ECANCELED);
    /* Every sibling's cleanup ran to its end before the wait returned. */
    int cleanups = 0;
    for (size_t i = 0; i < ev_len; i++)
        if (ev_log[i] > 100)
            cleanups++;
    EQ(cleanups, 2 + 3 + 1);
    EQ(ev_log[ev_len - 1], 99);
    return 0;
}

Test(group, first_failure_cancels_siblings_and_is_returned_after_all_ended)
{
    EQ(run(first_failure_main, NULL), 0);
}

static intptr_t cancel_one_member_main(void *arg)
{
    (void)arg;
    weft_group *g = weft_group_new();
    struct member a = long_sleeper(1, 0), b = sleeper(2, MS(5), 7);
    weft_task *ta = weft_group_spawn(g, member_task, &a);
    weft_group_spawn(g, member_task, &b);
    weft_yield();
    EQ(weft_cancel(ta), 0);
    EQ(weft_group_wait(g), 0); /* a member ending with -ECANCELED is not a failure */
    EQ(a.sleep_rc, -ECANCELED);
    EQ(b.sleep_rc, 0);
    return 0;
}

Test(group, a_member_cancelled_by_hand_is_not_a_failure)
{
    EQ(run(cancel_one_member_main, NULL), 0);
}

static intptr_t fail_at_once(void *arg)
{
    (void)arg;
    return -EIO;
}

static intptr_t record_and_succeed(void *arg)
{
    ev((int)(intptr_t)arg);
    return 0;
}

/* A member that, once cancelled, tries to add another member. */
static intptr_t spawner_member(void *arg)
{
    weft_group *g = arg;
    EQ(weft_sleep(SEC(30)), -ECANCELED);
    cr_assert(weft_group_spawn(g, record_and_succeed, (void *)2) != NULL);
    return -ECANCELED;
}

static intptr_t spawn_after_failure_main(void *arg)
{
    (void)arg;
    weft_group *g = weft_group_new();
    weft_group_spawn(g, spawner_member, g);
    weft_group_spawn(g, fail_at_once, NULL);
    weft_yield(); /* the failure has happened */
    weft_task *late = weft_group_spawn(g, record_and_succeed, (void *)1);
    cr_assert(late != NULL, "weft_group_spawn after a failure: %s", strerror(errno));
    EQ(weft_group_wait(g), -EIO);
    EV_EXPECT(); /* neither the late member nor the one spawned during cleanup ran */
    return 0;
}

Test(group, member_spawned_after_a_failure_never_runs)
{
    EQ(run(spawn_after_failure_main, NULL), 0);
}

/* ---- nesting -------------------------------------------------------------------------------------- */

struct nested {
    struct member inner_fail, inner_sleeper;
    int inner_rc;
};

static intptr_t inner_group_owner(void *arg)
{
    struct nested *n = arg;
    weft_group *inner = weft_group_new();
    weft_group_spawn(inner, member_task, &n->inner_sleeper);
    weft_group_spawn(inner, member_task, &n->inner_fail);
    n->inner_rc = weft_group_wait(inner);
    return n->inner_rc; /* the inner group's failure is this member's result */
}

static intptr_t nested_main(void *arg)
{
    (void)arg;
    struct nested n = {.inner_fail = sleeper(1, MS(5), -EIO), .inner_sleeper = long_sleeper(2, 1)};
    struct member outer_sleeper = long_sleeper(3, 1);
    weft_group *outer = weft_group_new();
    weft_group_spawn(outer, member_task, &outer_sleeper);
    weft_group_spawn(outer, inner_group_owner, &n);
    EQ(weft_group_wait(outer), -EIO);
    EQ(n.inner_rc, -EIO);
    EQ(n.inner_sleeper.sleep_rc, -ECANCELED);
    EQ(outer_sleeper.sleep_rc, -ECANCELED);
    return 0;
}

Test(group, inner_group_failure_propagates_as_the_member_result_to_the_outer_group)
{
    EQ(run(nested_main, NULL), 0);
}

/* ---- cancelling and timing out the waiting task ------------------------------------------------------- */

struct waiting {
    struct member ms[3];
    uint64_t deadline_in;
    bool cancel_self_first;
    int rc;
};

static intptr_t group_waiter(void *arg)
{
    struct waiting *w = arg;
    weft_group *g = weft_group_new();
    for (int i = 0; i < 3; i++)
        weft_group_spawn(g, member_task, &w->ms[i]);
    if (w->cancel_self_first)
        weft_cancel(weft_self());
    if (w->deadline_in)
        weft_deadline_push(weft_now() + w->deadline_in);
    w->rc = weft_group_wait(g);
    if (w->deadline_in)
        weft_deadline_pop();
    ev(99);
    return w->rc;
}

static int count_cleanups(void)
{
    int n = 0;
    for (size_t i = 0; i < ev_len; i++)
        if (ev_log[i] > 100)
            n++;
    return n;
}

static intptr_t cancel_waiter_main(void *arg)
{
    (void)arg;
    struct waiting w = {.ms = {long_sleeper(1, 2), long_sleeper(2, 3), long_sleeper(3, 1)}};
    weft_task *t = weft_spawn(group_waiter, &w);
    settle();
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    for (int i = 0; i < 3; i++)
        EQ(w.ms[i].sleep_rc, -ECANCELED);
    EQ(count_cleanups(), 2 + 3 + 1);
    EQ(ev_log[ev_len - 1], 99); /* the wait returned only after every cleanup */
    return 0;
}

Test(group, cancelling_the_waiting_task_cancels_members_and_still_waits_for_all)
{
    EQ(run(cancel_waiter_main, NULL), 0);
}

static intptr_t cancel_waiter_with_failure_main(void *arg)
{
    (void)arg;
    struct waiting w = {.ms = {long_sleeper(1, 1), long_sleeper(2, 2), long_sleeper(3, 1)}};
    w.ms[1].on_cancel = -EIO; /* fails on its way out */
    weft_task *t = weft_spawn(group_waiter, &w);
    settle();
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -EIO); /* a failure beats the cancellation */
    EQ(w.rc, -EIO);
    EQ(count_cleanups(), 1 + 2 + 1);
    return 0;
}

Test(group, cancelled_waiter_gets_a_member_failure_rather_than_ecanceled)
{
    EQ(run(cancel_waiter_with_failure_main, NULL), 0);
}

static intptr_t deadline_waiter_main(void *arg)
{
    (void)arg;
    /* Member 3's 1 ms is far inside the deadline even on a loaded machine under TSan (20 ms was not). */
    struct waiting w = {.ms = {long_sleeper(1, 2), long_sleeper(2, 1), sleeper(3, MS(1), 5)}, .deadline_in = MS(300)};
    uint64_t t0 = weft_now();
    weft_task *t = weft_spawn(group_waiter, &w);
    EQ(weft_join(t), -ETIMEDOUT);
    cr_assert(weft_now() - t0 >= MS(300), "timed out before the deadline");
    EQ(w.rc, -ETIMEDOUT);
    EQ(w.ms[0].sleep_rc, -ECANCELED);
    EQ(w.ms[1].sleep_rc, -ECANCELED);
    EQ(w.ms[2].sleep_rc, 0); /* it had finished before the deadline */
    EQ(count_cleanups(), 2 + 1);
    EQ(ev_log[ev_len - 1], 99);
    return 0;
}

Test(group, deadline_on_the_waiting_task_cancels_members_waits_for_all_and_gives_etimedout)
{
    EQ(run(deadline_waiter_main, NULL), 0);
}

static intptr_t already_cancelled_main(void *arg)
{
    (void)arg;
    struct waiting w = {.ms = {long_sleeper(1, 0), long_sleeper(2, 0), long_sleeper(3, 0)}, .cancel_self_first = true};
    weft_task *t = weft_spawn(group_waiter, &w);
    EQ(weft_join(t), -ECANCELED);
    /* Members not started when the wait began were cancelled before they ran. */
    for (int i = 0; i < 3; i++)
        cr_assert(!w.ms[i].started, "member %d ran", i + 1);
    return 0;
}

Test(group, group_wait_by_an_already_cancelled_task_cancels_members_and_waits)
{
    EQ(run(already_cancelled_main, NULL), 0);
}

/* ---- misuse ---------------------------------------------------------------------------------------- */

static intptr_t return_zero(void *arg)
{
    (void)arg;
    return 0;
}

static intptr_t wait_given_group_main(void *arg)
{
    weft_group *g = arg;
    EQ(weft_group_wait(NULL), -EINVAL);
    NULL_WITH_ERRNO(weft_group_spawn(NULL, return_zero, NULL), EINVAL);
    NULL_WITH_ERRNO(weft_group_spawn(g, NULL, NULL), EINVAL);
    /* The group outlived the refused calls; an empty group's wait returns 0 at once and frees it. */
    EQ(weft_group_wait(g), 0);
    return 0;
}

Test(group, group_wait_outside_a_task_gives_eperm_and_null_gives_einval)
{
    weft_group *g = weft_group_new();
    cr_assert(g != NULL);
    EQ(weft_group_wait(g), -EPERM); /* and g is left as it was */
    NULL_WITH_ERRNO(weft_group_spawn(g, return_zero, NULL), EPERM);
    EQ(run(wait_given_group_main, g), 0);
}

/* ---- members spawning members ------------------------------------------------------------------------ */

struct parent_member {
    weft_group *g;
    struct member child;
};

static intptr_t spawning_member(void *arg)
{
    struct parent_member *p = arg;
    cr_assert(weft_group_spawn(p->g, member_task, &p->child) != NULL);
    ev(1);
    return 0;
}

static intptr_t member_spawns_member_main(void *arg)
{
    (void)arg;
    weft_group *g = weft_group_new();
    struct parent_member p = {.g = g, .child = sleeper(2, MS(20), 0)};
    weft_group_spawn(g, spawning_member, &p);
    EQ(weft_group_wait(g), 0);
    ev(99);
    EV_EXPECT(1, 2, 99); /* the member added by a member was waited for too */
    return 0;
}

Test(group, group_wait_also_waits_for_members_spawned_by_members)
{
    EQ(run(member_spawns_member_main, NULL), 0);
}

/* ---- members' results ------------------------------------------------------------------------------- */

static intptr_t results_main(void *arg)
{
    (void)arg;
    weft_group *g = weft_group_new();
    struct member ms[3] = {sleeper(1, MS(3), 10), sleeper(2, MS(1), 20), sleeper(3, MS(2), 30)};
    intptr_t results[3] = {INTPTR_MIN, INTPTR_MIN, INTPTR_MIN};
    for (int i = 0; i < 3; i++)
        cr_assert(weft_group_spawn_result(g, member_task, &ms[i], &results[i]) != NULL);
    EQ(results[0], -EINPROGRESS); /* not ended yet */
    EQ(weft_group_wait(g), 0);
    EQ(results[0], 10);
    EQ(results[1], 20);
    EQ(results[2], 30);

    /* A failure: its error in its slot, the cancelled siblings' -ECANCELED in theirs, and a member
     * spawned after the failure, which never starts, -ECANCELED too. */
    g = weft_group_new();
    struct member fail = sleeper(4, MS(1), -EIO), slow = long_sleeper(5, 0), late = sleeper(6, 0, 60);
    intptr_t r_fail = 0, r_slow = 0, r_late = 0;
    weft_group_spawn_result(g, member_task, &fail, &r_fail);
    weft_group_spawn_result(g, member_task, &slow, &r_slow);
    EQ(weft_sleep(MS(10)), 0);
    weft_group_spawn_result(g, member_task, &late, &r_late);
    weft_group_spawn(g, member_task, &(struct member){0}); /* no slot: weft_group_spawn */
    EQ(weft_group_wait(g), -EIO);
    EQ(r_fail, -EIO);
    EQ(r_slow, -ECANCELED);
    EQ(r_late, -ECANCELED);
    cr_assert(!late.started);
    intptr_t untouched = 77;
    errno = 0;
    cr_assert(weft_group_spawn_result(NULL, member_task, &late, &untouched) == NULL && errno == EINVAL);
    EQ(untouched, 77);
    return 0;
}

Test(group, spawn_result_stores_each_member_result_as_it_ends_including_cancelled_ones)
{
    EQ(run(results_main, NULL), 0);
}
