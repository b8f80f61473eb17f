/*
 * Coordination between tasks: events (set wakes every waiter, a set event does not suspend, clear),
 * mutexes (exclusion, FIFO hand-over, -EDEADLK, trylock, unlock by a non-owner reported and ignored)
 * and semaphores (at most n holders, FIFO, try_acquire). For each of the three: a waiter cancelled
 * or timed out leaves the queue without taking what it waited for, one cancelled after being handed
 * it keeps it, and freeing the object wakes its waiters with -EPIPE. Condition variables (the mutex
 * held again on every return, cancellation included; no notification lost) and barriers (places,
 * reusable rounds, a cancelled waiter leaving its round) too.
 */
#include <limits.h>

#include "common.h"

TestSuite(sync, .timeout = 60);

/* ---- one interface over the three primitives ---------------------------------------------------- */

enum prim { EVENT, MUTEX, SEM };

struct prim_obj {
    enum prim kind;
    weft_event *event;
    weft_mutex *mutex;
    weft_sem *sem;
};

/* A new object that the calling task (main) holds: a clear event, a locked mutex, a semaphore with
 * no permit free. */
static void obj_new_held(struct prim_obj *o, enum prim kind)
{
    *o = (struct prim_obj){.kind = kind};
    switch (kind) {
    case EVENT:
        o->event = weft_event_new();
        cr_assert(o->event != NULL);
        break;
    case MUTEX:
        o->mutex = weft_mutex_new();
        cr_assert(o->mutex != NULL);
        EQ(weft_mutex_lock(o->mutex), 0);
        break;
    case SEM:
        o->sem = weft_sem_new(0);
        cr_assert(o->sem != NULL);
        break;
    }
}

/* Waits for the object: event wait, mutex lock, semaphore acquire. */
static int obj_wait(struct prim_obj *o)
{
    switch (o->kind) {
    case EVENT:
        return weft_event_wait(o->event);
    case MUTEX:
        return weft_mutex_lock(o->mutex);
    case SEM:
        return weft_sem_acquire(o->sem);
    }
    return -EINVAL;
}

/* Gives it up: sets the event, unlocks the mutex, releases a permit. */
static void obj_give(struct prim_obj *o)
{
    switch (o->kind) {
    case EVENT:
        weft_event_set(o->event);
        break;
    case MUTEX:
        weft_mutex_unlock(o->mutex);
        break;
    case SEM:
        weft_sem_release(o->sem);
        break;
    }
}

/* Whether nobody holds it now: the event is set, the mutex free, a permit free. Leaves it so. */
static bool obj_free_now(struct prim_obj *o)
{
    switch (o->kind) {
    case EVENT:
        return weft_event_is_set(o->event);
    case MUTEX:
        if (weft_mutex_trylock(o->mutex) != 0)
            return false;
        weft_mutex_unlock(o->mutex);
        return true;
    case SEM:
        return weft_sem_value(o->sem) > 0;
    }
    return false;
}

static void obj_free(struct prim_obj *o)
{
    switch (o->kind) {
    case EVENT:
        weft_event_free(o->event);
        break;
    case MUTEX:
        weft_mutex_free(o->mutex);
        break;
    case SEM:
        weft_sem_free(o->sem);
        break;
    }
}

/* A small deterministic generator, so random runs are repeatable. */
static uint32_t next_rand_sync(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

struct waiter {
    struct prim_obj *obj;
    int id;
    uint64_t deadline_in; /* if set: waits under a deadline this far away */
    int rc;               /* what the wait returned */
    int next_rc;          /* what the next suspending call returned, after a successful wait */
};

/* Waits, records its id, and if it got the object: one more suspending call, then gives it back. */
static intptr_t waiter_task(void *arg)
{
    struct waiter *w = arg;
    if (w->deadline_in)
        weft_deadline_push(weft_now() + w->deadline_in);
    w->rc = obj_wait(w->obj);
    if (w->deadline_in)
        weft_deadline_pop();
    ev(w->id);
    if (w->rc == 0) {
        w->next_rc = weft_sleep(0);
        if (w->obj->kind != EVENT)
            obj_give(w->obj);
    }
    return w->rc;
}

/* ---- events -------------------------------------------------------------------------------------- */

static intptr_t event_wakes_all_main(void *arg)
{
    (void)arg;
    struct prim_obj o;
    obj_new_held(&o, EVENT);
    cr_assert(!weft_event_is_set(o.event), "a new event is set");
    struct waiter ws[4];
    weft_task *ts[4];
    for (int i = 0; i < 4; i++) {
        ws[i] = (struct waiter){.obj = &o, .id = i + 1, .rc = INT_MIN};
        ts[i] = weft_spawn(waiter_task, &ws[i]);
    }
    weft_yield();
    EV_EXPECT(); /* all parked */
    weft_event_set(o.event);
    cr_assert(weft_event_is_set(o.event));
    for (int i = 0; i < 4; i++)
        EQ(weft_join(ts[i]), 0);
    EV_EXPECT(1, 2, 3, 4); /* woken first come, first served */
    obj_free(&o);
    return 0;
}

Test(sync, event_set_wakes_every_waiter)
{
    EQ(run(event_wakes_all_main, NULL), 0);
}

static intptr_t record_arg(void *arg)
{
    ev((int)(intptr_t)arg);
    return 0;
}

static intptr_t event_set_no_suspend_main(void *arg)
{
    (void)arg;
    weft_event *e = weft_event_new();
    weft_event_set(e);
    weft_event_set(e); /* setting a set event changes nothing */
    weft_task *other = weft_spawn(record_arg, (void *)2);
    ev(1);
    EQ(weft_event_wait(e), 0);
    ev(3); /* the other task has not run: the wait did not suspend */
    EQ(weft_join(other), 0);
    EV_EXPECT(1, 3, 2);
    weft_event_free(e);
    return 0;
}

Test(sync, wait_on_a_set_event_returns_at_once_without_suspending)
{
    EQ(run(event_set_no_suspend_main, NULL), 0);
}

static intptr_t event_clear_main(void *arg)
{
    (void)arg;
    struct prim_obj o;
    obj_new_held(&o, EVENT);
    weft_event_set(o.event);
    weft_event_clear(o.event);
    cr_assert(!weft_event_is_set(o.event), "cleared event still set");
    struct waiter w = {.obj = &o, .id = 1, .rc = INT_MIN};
    weft_task *t = weft_spawn(waiter_task, &w);
    weft_yield();
    cr_assert(!weft_future_done(weft_task_future(t)), "a wait on a cleared event returned");
    weft_event_set(o.event);
    EQ(weft_join(t), 0);
    weft_event_clear(o.event);
    weft_event_clear(o.event);
    cr_assert(!weft_event_is_set(o.event));
    obj_free(&o);
    return 0;
}

Test(sync, cleared_event_makes_waiters_wait_again)
{
    EQ(run(event_clear_main, NULL), 0);
}

static intptr_t event_set_then_clear_main(void *arg)
{
    (void)arg;
    struct prim_obj o;
    obj_new_held(&o, EVENT);
    struct waiter w = {.obj = &o, .id = 1, .rc = INT_MIN};
    weft_task *t = weft_spawn(waiter_task, &w);
    weft_yield();
    weft_event_set(o.event);
    weft_event_clear(o.event); /* before the woken waiter runs: it was woken all the same */
    EQ(weft_wait_for(t, SEC(5)), 0);
    cr_assert(!weft_event_is_set(o.event));
    obj_free(&o);
    return 0;
}

Test(sync, waiter_woken_by_set_returns_0_even_if_the_event_is_cleared_before_it_runs)
{
    EQ(run(event_set_then_clear_main, NULL), 0);
}

/* ---- mutexes ------------------------------------------------------------------------------------- */

struct counter {
    weft_mutex *m;
    int value;
    int inside, max_inside;
};

static intptr_t increment_with_yield(void *arg)
{
    struct counter *c = arg;
    for (int i = 0; i < 50; i++) {
        EQ(weft_mutex_lock(c->m), 0);
        if (++c->inside > c->max_inside)
            c->max_inside = c->inside;
        int seen = c->value;
        weft_yield(); /* every other task runs here: only the lock keeps them out */
        c->value = seen + 1;
        c->inside--;
        weft_mutex_unlock(c->m);
        weft_yield();
    }
    return 0;
}

static intptr_t mutex_exclusion_main(void *arg)
{
    (void)arg;
    struct counter c = {.m = weft_mutex_new()};
    weft_task *ts[6];
    for (int i = 0; i < 6; i++)
        ts[i] = weft_spawn(increment_with_yield, &c);
    for (int i = 0; i < 6; i++)
        EQ(weft_join(ts[i]), 0);
    EQ(c.value, 6 * 50);
    EQ(c.max_inside, 1);
    weft_mutex_free(c.m);
    return 0;
}

Test(sync, mutex_excludes_so_no_increment_is_lost_across_yields)
{
    EQ(run(mutex_exclusion_main, NULL), 0);
}

static intptr_t mutex_fifo_main(void *arg)
{
    (void)arg;
    struct prim_obj o;
    obj_new_held(&o, MUTEX);
    struct waiter ws[5];
    weft_task *ts[5];
    for (int i = 0; i < 5; i++) {
        ws[i] = (struct waiter){.obj = &o, .id = i + 1, .rc = INT_MIN};
        ts[i] = weft_spawn(waiter_task, &ws[i]);
        weft_yield(); /* each is queued before the next asks */
    }
    EV_EXPECT();
    weft_mutex_unlock(o.mutex);
    /* Handed to the first waiter, not left free for whoever asks first. */
    EQ(weft_mutex_trylock(o.mutex), -EBUSY);
    for (int i = 0; i < 5; i++)
        EQ(weft_join(ts[i]), 0);
    EV_EXPECT(1, 2, 3, 4, 5);
    cr_assert(obj_free_now(&o), "the mutex is still held after every waiter unlocked it");
    obj_free(&o);
    return 0;
}

Test(sync, mutex_is_handed_to_waiters_in_fifo_order_and_cannot_be_barged)
{
    EQ(run(mutex_fifo_main, NULL), 0);
}

static intptr_t trylock_task(void *arg)
{
    return weft_mutex_trylock(arg);
}

static intptr_t mutex_errors_main(void *arg)
{
    (void)arg;
    weft_mutex *m = weft_mutex_new();
    EQ(weft_mutex_trylock(m), 0);
    EQ(weft_mutex_lock(m), -EDEADLK);
    EQ(weft_mutex_trylock(m), -EDEADLK);
    EQ(weft_join(weft_spawn(trylock_task, m)), -EBUSY);
    weft_mutex_unlock(m);
    weft_task *t = weft_spawn(trylock_task, m);
    EQ(weft_join(t), 0); /* it ended holding the mutex */
    EQ(weft_mutex_trylock(m), -EBUSY);
    EQ(weft_mutex_lock(NULL), -EINVAL);
    EQ(weft_mutex_trylock(NULL), -EINVAL);
    weft_mutex_free(m);
    return 0;
}

Test(sync, relock_gives_edeadlk_and_trylock_of_a_held_mutex_gives_ebusy)
{
    EQ(run(mutex_errors_main, NULL), 0);
    weft_mutex *m = weft_mutex_new();
    EQ(weft_mutex_lock(m), -EPERM);
    EQ(weft_mutex_trylock(m), -EPERM);
    weft_mutex_free(m);
}

Test(sync, unlock_by_a_task_not_holding_the_mutex_is_reported_and_ignored)
{
    char err[8192], status_s[96];
    int status = run_child("mutex_foreign_unlock", err, sizeof err);
    describe_status(status, status_s, sizeof status_s);
    /* The child exits 0 only if the owner still held the mutex after the foreign unlock. */
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %s; stderr:\n%s", status_s, err);
    const char *mark = strstr(err, "MARK after-foreign-unlock");
    cr_assert(mark != NULL, "stderr:\n%s", err);
    const char *report = strstr(err, "weft: ");
    cr_assert(report != NULL && report < mark, "the foreign unlock was not reported:\n%s", err);
    cr_assert(strstr(report, "mutex") != NULL && strstr(report, "mutex") < mark,
              "the report does not say it is about a mutex:\n%s", err);
    /* Only the misuse is reported. */
    cr_assert(strstr(mark, "weft: ") == NULL, "more reports after the misuse:\n%s", err);
}

/* ---- semaphores ---------------------------------------------------------------------------------- */

struct holders {
    weft_sem *s;
    int inside, max_inside, done;
};

static intptr_t hold_a_permit(void *arg)
{
    struct holders *h = arg;
    for (int i = 0; i < 5; i++) {
        EQ(weft_sem_acquire(h->s), 0);
        if (++h->inside > h->max_inside)
            h->max_inside = h->inside;
        weft_yield(); /* holds the permit while every other task runs */
        h->inside--;
        weft_sem_release(h->s);
    }
    h->done++;
    return 0;
}

static intptr_t sem_bound_main(void *arg)
{
    (void)arg;
    struct holders h = {.s = weft_sem_new(3)};
    EQ(weft_sem_value(h.s), 3);
    weft_task *ts[10];
    for (int i = 0; i < 10; i++)
        ts[i] = weft_spawn(hold_a_permit, &h);
    for (int i = 0; i < 10; i++)
        EQ(weft_join(ts[i]), 0);
    EQ(h.done, 10);
    EQ(h.max_inside, 3);
    EQ(weft_sem_value(h.s), 3);
    weft_sem_free(h.s);
    return 0;
}

Test(sync, semaphore_admits_at_most_n_holders_at_once)
{
    EQ(run(sem_bound_main, NULL), 0);
}

static intptr_t sem_fifo_main(void *arg)
{
    (void)arg;
    struct prim_obj o;
    obj_new_held(&o, SEM);
    struct waiter ws[5];
    weft_task *ts[5];
    for (int i = 0; i < 5; i++) {
        ws[i] = (struct waiter){.obj = &o, .id = i + 1, .rc = INT_MIN};
        ts[i] = weft_spawn(waiter_task, &ws[i]);
        weft_yield();
    }
    EV_EXPECT();
    weft_sem_release(o.sem);
    /* The permit went straight to the first waiter. */
    EQ(weft_sem_value(o.sem), 0);
    EQ(weft_sem_try_acquire(o.sem), -EAGAIN);
    for (int i = 0; i < 5; i++)
        EQ(weft_join(ts[i]), 0);
    EV_EXPECT(1, 2, 3, 4, 5);
    EQ(weft_sem_value(o.sem), 1);
    obj_free(&o);
    return 0;
}

Test(sync, semaphore_hands_permits_to_waiters_in_fifo_order)
{
    EQ(run(sem_fifo_main, NULL), 0);
}

static intptr_t sem_try_main(void *arg)
{
    (void)arg;
    weft_sem *s = weft_sem_new(2);
    EQ(weft_sem_try_acquire(s), 0);
    EQ(weft_sem_try_acquire(s), 0);
    EQ(weft_sem_try_acquire(s), -EAGAIN);
    EQ(weft_sem_value(s), 0);
    weft_sem_release(s);
    EQ(weft_sem_value(s), 1);
    EQ(weft_sem_acquire(s), 0);
    EQ(weft_sem_value(s), 0);
    weft_sem_release(s);
    weft_sem_release(s);
    weft_sem_release(s); /* more releases than acquires: permits grow */
    EQ(weft_sem_value(s), 3);
    EQ(weft_sem_acquire(NULL), -EINVAL);
    weft_sem_free(s);
    return 0;
}

Test(sync, sem_try_acquire_gives_eagain_when_no_permit_is_free)
{
    EQ(run(sem_try_main, NULL), 0);
    weft_sem *s = weft_sem_new(1);
    EQ(weft_sem_acquire(s), -EPERM);
    EQ(weft_sem_value(s), 1);
    weft_sem_free(s);
    weft_event *e = weft_event_new();
    EQ(weft_event_wait(e), -EPERM);
    weft_event_free(e);
}

static intptr_t null_wait_main(void *arg)
{
    (void)arg;
    EQ(weft_event_wait(NULL), -EINVAL);
    EQ(weft_mutex_lock(NULL), -EINVAL);
    EQ(weft_sem_acquire(NULL), -EINVAL);
    cr_assert(!weft_event_is_set(NULL));
    EQ(weft_sem_value(NULL), 0);
    /* Ignored, not crashes. */
    weft_event_set(NULL);
    weft_event_clear(NULL);
    weft_event_free(NULL);
    weft_mutex_free(NULL);
    weft_sem_release(NULL);
    weft_sem_free(NULL);
    return 0;
}

Test(sync, waits_on_null_objects_return_einval)
{
    EQ(run(null_wait_main, NULL), 0);
}

/* ---- cancellation, deadlines and freeing, for each primitive --------------------------------------- */

/* Two waiters; the first is cancelled: it gets -ECANCELED, and what is given next goes to the second. */
static intptr_t cancel_waiter_main(void *arg)
{
    struct prim_obj o;
    obj_new_held(&o, (enum prim)(intptr_t)arg);
    struct waiter w1 = {.obj = &o, .id = 1, .rc = INT_MIN}, w2 = {.obj = &o, .id = 2, .rc = INT_MIN};
    weft_task *t1 = weft_spawn(waiter_task, &w1);
    weft_task *t2 = weft_spawn(waiter_task, &w2);
    weft_yield();
    EQ(weft_cancel(t1), 0);
    EQ(weft_join(t1), -ECANCELED);
    EV_EXPECT(1);
    obj_give(&o);
    /* Had the cancelled waiter stayed queued, it would have been handed this and the second would
     * wait forever: a bounded wait makes that a failure rather than a hang. */
    EQ(weft_wait_for(t2, SEC(5)), 0);
    EV_EXPECT(1, 2);
    EQ(w2.next_rc, 0);
    cr_assert(obj_free_now(&o), "what was given went missing");
    obj_free(&o);
    return 0;
}

Test(sync, cancelled_event_waiter_gets_ecanceled_and_the_next_waiter_still_wakes)
{
    EQ(run(cancel_waiter_main, (void *)EVENT), 0);
}

Test(sync, cancelled_mutex_waiter_leaves_the_queue_and_the_lock_goes_to_the_next)
{
    EQ(run(cancel_waiter_main, (void *)MUTEX), 0);
}

Test(sync, cancelled_sem_waiter_leaves_the_queue_and_the_permit_goes_to_the_next)
{
    EQ(run(cancel_waiter_main, (void *)SEM), 0);
}

/* The waiter is handed the object, then cancelled before it runs: its wait succeeds and it holds
 * what it was given; only its next suspending call sees the cancel. */
static intptr_t handed_then_cancelled_main(void *arg)
{
    struct prim_obj o;
    obj_new_held(&o, (enum prim)(intptr_t)arg);
    struct waiter w = {.obj = &o, .id = 1, .rc = INT_MIN, .next_rc = INT_MIN};
    weft_task *t = weft_spawn(waiter_task, &w);
    weft_yield();
    obj_give(&o);
    EQ(weft_cancel(t), 0);
    if (o.kind == MUTEX)
        EQ(weft_mutex_trylock(o.mutex), -EBUSY); /* the waiter holds it */
    if (o.kind == SEM) {
        EQ(weft_sem_value(o.sem), 0);
        EQ(weft_sem_try_acquire(o.sem), -EAGAIN);
    }
    EQ(weft_join(t), 0);
    EQ(w.rc, 0);
    EQ(w.next_rc, -ECANCELED);
    cr_assert(obj_free_now(&o), "the cancelled waiter's hold was lost instead of given back");
    obj_free(&o);
    return 0;
}

Test(sync, event_waiter_cancelled_after_the_set_still_returns_0)
{
    EQ(run(handed_then_cancelled_main, (void *)EVENT), 0);
}

Test(sync, mutex_waiter_cancelled_after_being_handed_the_lock_returns_0_and_holds_it)
{
    EQ(run(handed_then_cancelled_main, (void *)MUTEX), 0);
}

Test(sync, sem_waiter_cancelled_after_being_handed_a_permit_returns_0_and_holds_it)
{
    EQ(run(handed_then_cancelled_main, (void *)SEM), 0);
}

/* A waiter under a deadline times out with -ETIMEDOUT and is not handed what is given later. */
static intptr_t deadline_waiter_main(void *arg)
{
    struct prim_obj o;
    obj_new_held(&o, (enum prim)(intptr_t)arg);
    struct waiter w = {.obj = &o, .id = 1, .rc = INT_MIN, .deadline_in = MS(20)};
    uint64_t t0 = weft_now();
    weft_task *t = weft_spawn(waiter_task, &w);
    EQ(weft_join(t), -ETIMEDOUT);
    uint64_t took = weft_now() - t0;
    cr_assert(took >= MS(20), "timed out after %" PRIu64 " ns, before its 20 ms deadline", took);
    obj_give(&o);
    cr_assert(obj_free_now(&o), "given to a waiter that had timed out");
    obj_free(&o);
    return 0;
}

Test(sync, event_wait_past_its_deadline_gives_etimedout)
{
    EQ(run(deadline_waiter_main, (void *)EVENT), 0);
}

Test(sync, mutex_lock_past_its_deadline_gives_etimedout_and_leaves_the_queue)
{
    EQ(run(deadline_waiter_main, (void *)MUTEX), 0);
}

Test(sync, sem_acquire_past_its_deadline_gives_etimedout_and_leaves_the_queue)
{
    EQ(run(deadline_waiter_main, (void *)SEM), 0);
}

/* Freeing the object wakes every waiter with -EPIPE. */
static intptr_t free_wakes_main(void *arg)
{
    struct prim_obj o;
    obj_new_held(&o, (enum prim)(intptr_t)arg);
    struct waiter w1 = {.obj = &o, .id = 1, .rc = INT_MIN}, w2 = {.obj = &o, .id = 2, .rc = INT_MIN};
    weft_task *t1 = weft_spawn(waiter_task, &w1);
    weft_task *t2 = weft_spawn(waiter_task, &w2);
    weft_yield();
    obj_free(&o);
    EQ(weft_wait_for(t1, SEC(5)), -EPIPE);
    EQ(weft_wait_for(t2, SEC(5)), -EPIPE);
    EV_EXPECT(1, 2);
    return 0;
}

Test(sync, freeing_an_event_wakes_its_waiters_with_epipe)
{
    EQ(run(free_wakes_main, (void *)EVENT), 0);
}

Test(sync, freeing_a_mutex_wakes_its_waiters_with_epipe)
{
    EQ(run(free_wakes_main, (void *)MUTEX), 0);
}

Test(sync, freeing_a_semaphore_wakes_its_waiters_with_epipe)
{
    EQ(run(free_wakes_main, (void *)SEM), 0);
}

/* ---- a task already cancelled takes nothing -------------------------------------------------------- */

struct all_three {
    weft_event *e;
    weft_mutex *m;
    weft_sem *s;
};

static intptr_t cancelled_waits(void *arg)
{
    struct all_three *a = arg;
    EQ(weft_cancel(weft_self()), 0);
    /* Each would succeed at once, but every suspending call checks the cancel first. */
    EQ(weft_event_wait(a->e), -ECANCELED);
    EQ(weft_mutex_lock(a->m), -ECANCELED);
    EQ(weft_sem_acquire(a->s), -ECANCELED);
    return 0;
}

static intptr_t cancelled_waits_main(void *arg)
{
    (void)arg;
    struct all_three a = {weft_event_new(), weft_mutex_new(), weft_sem_new(1)};
    weft_event_set(a.e);
    EQ(weft_join(weft_spawn(cancelled_waits, &a)), 0);
    EQ(weft_mutex_trylock(a.m), 0); /* the cancelled task did not take it */
    weft_mutex_unlock(a.m);
    EQ(weft_sem_value(a.s), 1);
    weft_event_free(a.e);
    weft_mutex_free(a.m);
    weft_sem_free(a.s);
    return 0;
}

Test(sync, cancelled_task_gets_ecanceled_from_every_wait_and_takes_nothing)
{
    EQ(run(cancelled_waits_main, NULL), 0);
}

/* ---- property: random cancellations leak no lock and no permit ------------------------------------- */

struct prop_sync {
    struct prim_obj obj;
    unsigned permits; /* the semaphore's n; 1 for the mutex */
    uint32_t rng;
    int inside, max_inside, acquired;
};

static intptr_t prop_holder(void *arg)
{
    struct prop_sync *p = arg;
    for (int i = 0; i < 20; i++) {
        int rc = obj_wait(&p->obj);
        if (rc < 0)
            return rc;
        p->acquired++;
        if (++p->inside > p->max_inside)
            p->max_inside = p->inside;
        int turns = (int)(next_rand_sync(&p->rng) % 3);
        for (int y = 0; y < turns; y++)
            weft_yield();
        p->inside--;
        obj_give(&p->obj); /* never suspends: a cancelled holder still gives back */
        if (weft_sleep(0) < 0)
            return -ECANCELED;
    }
    return 0;
}

static intptr_t prop_sync_main(void *arg)
{
    uint32_t seed = (uint32_t)(intptr_t)arg;
    struct prop_sync p = {.rng = seed * 2246822519u + 3};
    enum prim kind = seed % 2 ? MUTEX : SEM;
    p.permits = kind == MUTEX ? 1 : 1 + seed % 3;
    p.obj = (struct prim_obj){.kind = kind};
    if (kind == MUTEX)
        p.obj.mutex = weft_mutex_new();
    else
        p.obj.sem = weft_sem_new(p.permits);
    enum { N = 8 };
    weft_task *ts[N];
    for (int i = 0; i < N; i++)
        ts[i] = weft_spawn(prop_holder, &p);
    for (int round = 0; round < 6; round++) {
        int turns = (int)(next_rand_sync(&p.rng) % 8);
        for (int y = 0; y < turns; y++)
            weft_yield();
        weft_cancel(ts[next_rand_sync(&p.rng) % N]);
    }
    for (int i = 0; i < N; i++) {
        intptr_t r = weft_join(ts[i]);
        cr_assert(r == 0 || r == -ECANCELED, "seed %u: holder %d got %jd", seed, i, (intmax_t)r);
    }
    cr_assert(p.max_inside <= (int)p.permits, "seed %u: %d holders at once, limit %u", seed, p.max_inside, p.permits);
    EQ(p.inside, 0);
    if (kind == MUTEX)
        cr_assert(obj_free_now(&p.obj), "seed %u: the mutex was left held", seed);
    else
        cr_assert(weft_sem_value(p.obj.sem) == p.permits, "seed %u: %u permits free at the end, want %u", seed,
                  weft_sem_value(p.obj.sem), p.permits);
    obj_free(&p.obj);
    return 0;
}

Test(sync, random_cancellations_of_mutex_and_sem_waiters_leak_no_lock_or_permit)
{
    for (intptr_t seed = 1; seed <= 40; seed++)
        EQ(run(prop_sync_main, (void *)seed), 0);
}

/* ---- condition variables ------------------------------------------------------------------------ */

struct cond_case {
    weft_cond *cond;
    weft_mutex *mutex;
    int id;
    int rc;          /* what weft_cond_wait returned */
    int held_after;  /* weft_mutex_trylock right after it: -EDEADLK when the waiter holds the mutex */
    bool returned;
};

/* Takes the mutex, records its id, waits on the condition, records whether it holds the mutex
 * again, records its id negated, and unlocks. */
static intptr_t cond_waiter(void *arg)
{
    struct cond_case *c = arg;
    EQ(weft_mutex_lock(c->mutex), 0);
    ev(c->id);
    c->rc = weft_cond_wait(c->cond, c->mutex);
    c->held_after = weft_mutex_trylock(c->mutex);
    c->returned = true;
    ev(-c->id);
    weft_mutex_unlock(c->mutex);
    return 0;
}

static void cond_cases(struct cond_case *cs, size_t n, weft_cond *cond, weft_mutex *m)
{
    for (size_t i = 0; i < n; i++)
        cs[i] = (struct cond_case){.cond = cond, .mutex = m, .id = (int)i + 1, .rc = INT_MIN,
                                   .held_after = INT_MIN};
}

static intptr_t cond_notify_main(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new();
    weft_mutex *m = weft_mutex_new();
    cr_assert(cond && m);
    struct cond_case cs[3];
    cond_cases(cs, 3, cond, m);
    weft_task *ts[3];
    for (int i = 0; i < 3; i++)
        ts[i] = weft_spawn(cond_waiter, &cs[i]);
    weft_yield();
    EV_EXPECT(1, 2, 3);
    /* All three wait, and each gave the mutex back as it began to. */
    EQ(weft_mutex_trylock(m), 0);
    weft_cond_notify(cond); /* the first waiter only, once main lets go of the mutex */
    weft_yield();
    EV_EXPECT(1, 2, 3);
    weft_mutex_unlock(m);
    weft_yield();
    EV_EXPECT(1, 2, 3, -1);
    weft_cond_notify_all(cond);
    EQ(weft_join_all(ts, 3, NULL), 0);
    EV_EXPECT(1, 2, 3, -1, -2, -3);
    for (int i = 0; i < 3; i++) {
        EQ(cs[i].rc, 0);
        EQ(cs[i].held_after, -EDEADLK);
    }
    weft_cond_notify(cond); /* nobody waits: nothing is stored for later */
    cond_cases(cs, 1, cond, m);
    ts[0] = weft_spawn(cond_waiter, &cs[0]);
    settle();
    cr_assert(!cs[0].returned, "a notify with nobody waiting was kept for a later waiter");
    weft_cond_notify(cond);
    EQ(weft_join(ts[0]), 0);
    EQ(cs[0].rc, 0);
    weft_cond_free(cond);
    weft_mutex_free(m);
    return 0;
}

Test(sync, cond_wait_releases_the_mutex_notify_wakes_one_in_fifo_order_notify_all_the_rest)
{
    EQ(run(cond_notify_main, NULL), 0);
}

/* A waiter cancelled while another task holds the mutex returns only once it has the mutex again. */
static intptr_t cond_cancel_main(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new();
    weft_mutex *m = weft_mutex_new();
    cr_assert(cond && m);
    struct cond_case cs[2];
    cond_cases(cs, 2, cond, m);
    weft_task *t1 = weft_spawn(cond_waiter, &cs[0]);
    weft_task *t2 = weft_spawn(cond_waiter, &cs[1]);
    weft_yield();
    EQ(weft_mutex_lock(m), 0);
    EQ(weft_cancel(t1), 0);
    settle();
    cr_assert(!cs[0].returned, "the cancelled waiter returned without the mutex");
    weft_cond_notify(cond); /* goes to the second: the cancelled one left the queue */
    weft_mutex_unlock(m);
    EQ(weft_join(t1), 0);
    EQ(weft_join(t2), 0);
    EQ(cs[0].rc, -ECANCELED);
    EQ(cs[0].held_after, -EDEADLK);
    EQ(cs[1].rc, 0);
    EQ(cs[1].held_after, -EDEADLK);
    EV_EXPECT(1, 2, -1, -2);
    weft_cond_free(cond);
    weft_mutex_free(m);
    return 0;
}

Test(sync, cond_waiter_cancelled_takes_the_mutex_again_before_returning_ecanceled_and_loses_no_notify)
{
    EQ(run(cond_cancel_main, NULL), 0);
}

static intptr_t cond_notified_then_cancelled_main(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new();
    weft_mutex *m = weft_mutex_new();
    struct cond_case cs[1];
    cond_cases(cs, 1, cond, m);
    weft_task *t = weft_spawn(cond_waiter, &cs[0]);
    weft_yield();
    weft_cond_notify(cond);
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), 0);
    EQ(cs[0].rc, 0); /* it was notified first: the notification is its */
    EQ(cs[0].held_after, -EDEADLK);
    weft_cond_free(cond);
    weft_mutex_free(m);
    return 0;
}

Test(sync, cond_waiter_notified_before_its_cancel_returns_0)
{
    EQ(run(cond_notified_then_cancelled_main, NULL), 0);
}

static intptr_t cond_deadline_main(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new();
    weft_mutex *m = weft_mutex_new();
    EQ(weft_mutex_lock(m), 0);
    weft_deadline_push(weft_now() + MS(5));
    EQ(weft_cond_wait(cond, m), -ETIMEDOUT);
    EQ(weft_mutex_trylock(m), -EDEADLK); /* held again */
    /* Past the deadline already: it does not wait, and does not let go of the mutex. */
    EQ(weft_cond_wait(cond, m), -ETIMEDOUT);
    EQ(weft_mutex_trylock(m), -EDEADLK);
    weft_deadline_pop();
    weft_mutex_unlock(m);
    weft_cond_free(cond);
    weft_mutex_free(m);
    return 0;
}

Test(sync, cond_wait_past_its_deadline_gives_etimedout_holding_the_mutex)
{
    EQ(run(cond_deadline_main, NULL), 0);
}

static intptr_t cond_misuse_main(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new();
    weft_mutex *m = weft_mutex_new();
    EQ(weft_cond_wait(cond, m), -EPERM); /* not holding it */
    EQ(weft_cond_wait(NULL, m), -EINVAL);
    EQ(weft_cond_wait(cond, NULL), -EINVAL);
    struct cond_case cs[2];
    cond_cases(cs, 2, cond, m);
    weft_task *t1 = weft_spawn(cond_waiter, &cs[0]);
    weft_task *t2 = weft_spawn(cond_waiter, &cs[1]);
    weft_yield();
    weft_cond_free(cond);
    EQ(weft_join(t1), 0);
    EQ(weft_join(t2), 0);
    EQ(cs[0].rc, -EPIPE);
    EQ(cs[1].rc, -EPIPE);
    EQ(cs[0].held_after, -EDEADLK);
    weft_cond_notify(NULL);
    weft_cond_notify_all(NULL);
    weft_mutex_free(m);
    return 0;
}

Test(sync, cond_wait_without_the_mutex_gives_eperm_null_einval_and_free_wakes_with_epipe)
{
    EQ(run(cond_misuse_main, NULL), 0);
}

static void cond_outside_cb(void *arg)
{
    (void)arg;
    weft_cond *cond = weft_cond_new();
    weft_mutex *m = weft_mutex_new();
    EQ(weft_cond_wait(cond, m), -EPERM);
    weft_barrier *b = weft_barrier_new(2);
    EQ(weft_barrier_wait(b), -EPERM);
    EQ(weft_barrier_waiting(b), 0);
    weft_barrier_free(b);
    weft_cond_free(cond);
    weft_mutex_free(m);
}

Test(sync, cond_and_barrier_waits_outside_a_task_give_eperm)
{
    run_in_callback(cond_outside_cb, NULL);
}

/* ---- barriers ---------------------------------------------------------------------------------- */

struct barrier_case {
    weft_barrier *b;
    int id;
    int rounds;
    int places[4];
};

static intptr_t barrier_party(void *arg)
{
    struct barrier_case *c = arg;
    for (int r = 0; r < c->rounds; r++) {
        ev(c->id * 10 + r);
        c->places[r] = weft_barrier_wait(c->b);
        if (c->places[r] < 0)
            return c->places[r];
    }
    return 0;
}

static intptr_t barrier_rounds_main(void *arg)
{
    (void)arg;
    weft_barrier *b = weft_barrier_new(3);
    cr_assert(b);
    struct barrier_case cs[3];
    weft_task *ts[3];
    for (int i = 0; i < 3; i++) {
        cs[i] = (struct barrier_case){.b = b, .id = i + 1, .rounds = 2};
        ts[i] = weft_spawn(barrier_party, &cs[i]);
    }
    weft_yield();
    /* Nobody gets to round 1 before all three reached round 0; the last to arrive does not suspend,
     * so it is the first in round 1. */
    EV_EXPECT(10, 20, 30, 31);
    EQ(weft_join_all(ts, 3, NULL), 0);
    EV_EXPECT(10, 20, 30, 31, 11, 21);
    /* Places in order of arrival, the last to arrive parties - 1. */
    for (int i = 0; i < 3; i++)
        EQ(cs[i].places[0], i);
    EQ(cs[2].places[1], 0);
    EQ(cs[0].places[1], 1);
    EQ(cs[1].places[1], 2);
    EQ(weft_barrier_waiting(b), 0);
    weft_barrier_free(b);
    return 0;
}

Test(sync, barrier_lets_a_round_go_when_all_parties_wait_gives_places_in_arrival_order_and_is_reusable)
{
    EQ(run(barrier_rounds_main, NULL), 0);
}

static intptr_t barrier_cancel_main(void *arg)
{
    (void)arg;
    weft_barrier *b = weft_barrier_new(2);
    struct barrier_case cs[3];
    for (int i = 0; i < 3; i++)
        cs[i] = (struct barrier_case){.b = b, .id = i + 1, .rounds = 1, .places = {INT_MIN}};
    weft_task *t1 = weft_spawn(barrier_party, &cs[0]);
    weft_yield();
    EQ(weft_barrier_waiting(b), 1);
    EQ(weft_cancel(t1), 0);
    EQ(weft_join(t1), -ECANCELED);
    EQ(weft_barrier_waiting(b), 0); /* it left the round */
    weft_task *t2 = weft_spawn(barrier_party, &cs[1]);
    weft_yield();
    EQ(weft_barrier_waiting(b), 1); /* the round still needs two */
    weft_task *t3 = weft_spawn(barrier_party, &cs[2]);
    EQ(weft_join(t2), 0);
    EQ(weft_join(t3), 0);
    EQ(cs[1].places[0], 0);
    EQ(cs[2].places[0], 1);
    /* One whose round went before its cancel keeps its place. */
    t1 = weft_spawn(barrier_party, &cs[0]);
    weft_yield();
    EQ(weft_barrier_wait(b), 1);
    EQ(weft_cancel(t1), 0);
    EQ(weft_join(t1), 0);
    EQ(cs[0].places[0], 0);
    /* A deadline. */
    weft_deadline_push(weft_now() + MS(5));
    EQ(weft_barrier_wait(b), -ETIMEDOUT);
    weft_deadline_pop();
    EQ(weft_barrier_waiting(b), 0);
    /* Freeing wakes the waiters. */
    t1 = weft_spawn(barrier_party, &cs[0]);
    weft_yield();
    weft_barrier_free(b);
    EQ(weft_join(t1), -EPIPE);
    NULL_WITH_ERRNO(weft_barrier_new(0), EINVAL);
    EQ(weft_barrier_wait(NULL), -EINVAL);
    weft_barrier *one = weft_barrier_new(1);
    EQ(weft_barrier_wait(one), 0); /* a party of one never waits */
    weft_barrier_free(one);
    return 0;
}

Test(sync, barrier_waiter_cancelled_or_timed_out_leaves_the_round_and_free_wakes_with_epipe)
{
    EQ(run(barrier_cancel_main, NULL), 0);
}
