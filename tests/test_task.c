/*
 * Tasks: lazy FIFO start, names, join, detach, cancellation, weft_self, weft_yield, and the errors of
 * misuse (suspending outside a task, spawning without a loop, joining NULL or oneself).
 */
#include <pthread.h>

#include "common.h"

TestSuite(task, .timeout = 30);


static intptr_t record_arg(void *arg)
{
    ev((int)(intptr_t)arg);
    return (intptr_t)arg;
}

/* ---- spawning ------------------------------------------------------------------------------------- */

static intptr_t lazy_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(record_arg, (void *)2);
    cr_assert(t != NULL);
    ev(1); /* the new task has not run: its creator has not suspended */
    weft_yield();
    ev(3);
    EQ(weft_join(t), 2);
    return 0;
}

Test(task, spawn_is_lazy_until_creator_suspends)
{
    EQ(run(lazy_main, NULL), 0);
    EV_EXPECT(1, 2, 3);
}

static intptr_t fifo_main(void *arg)
{
    (void)arg;
    weft_task *ts[6];
    for (intptr_t i = 0; i < 6; i++)
        ts[i] = weft_spawn(record_arg, (void *)(i + 10));
    /* Join in reverse: start order must not depend on who is joined first. */
    for (int i = 5; i >= 0; i--)
        EQ(weft_join(ts[i]), i + 10);
    return 0;
}

Test(task, spawned_tasks_start_in_fifo_order)
{
    run(fifo_main, NULL);
    EV_EXPECT(10, 11, 12, 13, 14, 15);
}

static char name_seen_inside[64];

static intptr_t copy_own_name(void *arg)
{
    (void)arg;
    snprintf(name_seen_inside, sizeof name_seen_inside, "%s", weft_task_name(weft_self()));
    return 0;
}

static intptr_t names_main(void *arg)
{
    (void)arg;
    char name[] = "worker-7";
    weft_task *named = weft_spawn_named(name, copy_own_name, NULL);
    cr_assert(named != NULL);
    name[0] = 'X'; /* the name was copied */
    cr_assert_str_eq(weft_task_name(named), "worker-7");

    weft_task *plain = weft_spawn(return_arg, NULL);
    cr_assert_str_eq(weft_task_name(plain), "");

    const char *long_name = "a-name-much-longer-than-thirty-one-bytes-in-all";
    weft_task *longer = weft_spawn_named(long_name, return_arg, NULL);
    EQ(strlen(weft_task_name(longer)), 31);
    cr_assert(strncmp(weft_task_name(longer), long_name, 31) == 0, "got '%s'", weft_task_name(longer));

    EQ(weft_join(named), 0);
    EQ(weft_join(plain), 0);
    EQ(weft_join(longer), 0);
    cr_assert_str_eq(name_seen_inside, "worker-7");
    return 0;
}

Test(task, spawn_named_copies_name_and_unnamed_task_has_empty_name)
{
    EQ(run(names_main, NULL), 0);
}

/* ---- join ----------------------------------------------------------------------------------------- */

static int some_object;

static intptr_t return_pointer(void *arg)
{
    (void)arg;
    weft_yield();
    return (intptr_t)&some_object;
}

static intptr_t join_values_main(void *arg)
{
    (void)arg;
    weft_task *value = weft_spawn(return_arg, (void *)42);
    weft_task *error = weft_spawn(return_arg, (void *)(intptr_t)-EIO);
    weft_task *pointer = weft_spawn(return_pointer, NULL);
    EQ(weft_join(value), 42);
    EQ(weft_join(error), -EIO);
    EQ(weft_join(pointer), (intptr_t)&some_object);
    return 0;
}

Test(task, join_returns_the_task_result_value_error_or_pointer)
{
    EQ(run(join_values_main, NULL), 0);
}

static intptr_t join_ended_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(record_arg, (void *)5);
    weft_yield();
    EV_EXPECT(5);
    cr_assert(weft_future_done(weft_task_future(t)), "the task should have ended");
    ev(6);
    EQ(weft_join(t), 5);
    ev(7);
    return 0;
}

Test(task, join_of_already_ended_task_returns_its_result)
{
    EQ(run(join_ended_main, NULL), 0);
    EV_EXPECT(5, 6, 7);
}

static intptr_t join_misuse_main(void *arg)
{
    (void)arg;
    EQ(weft_join(NULL), -EINVAL);
    EQ(weft_join(weft_self()), -EINVAL);
    return 0;
}

Test(task, join_of_null_or_self_returns_einval)
{
    EQ(run(join_misuse_main, NULL), 0);
}

/* ---- detach --------------------------------------------------------------------------------------- */

static intptr_t detached_worker(void *arg)
{
    weft_future *done = arg;
    ev(1);
    EQ(weft_sleep(MS(3)), 0);
    ev(2);
    EQ(weft_future_resolve(done, 99), 0);
    return 0;
}

static intptr_t detach_main(void *arg)
{
    (void)arg;
    weft_future *done = weft_future_new();
    weft_task *t = weft_spawn(detached_worker, done);
    weft_detach(t);
    weft_detach(NULL); /* ignored */
    EQ(weft_await(done), 99);
    ev(3);
    weft_future_free(done);
    return 0;
}

Test(task, detached_task_runs_to_completion)
{
    EQ(run(detach_main, NULL), 0);
    EV_EXPECT(1, 2, 3);
}

Test(task, detached_task_failure_is_logged_at_once_with_its_name)
{
    char err[8192], status_s[64];
    int status = run_child("detach_fail_eio", err, sizeof err);
    describe_status(status, status_s, sizeof status_s);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %s; stderr:\n%s", status_s, err);
    const char *name = strstr(err, "doomed-detached");
    const char *mark = strstr(err, "MARK after-failure");
    cr_assert(name != NULL, "stderr does not name the failed detached task:\n%s", err);
    cr_assert(strstr(err, strerror(EIO)) != NULL, "stderr does not give the error text:\n%s", err);
    cr_assert(mark != NULL, "stderr:\n%s", err);
    cr_assert(name < mark, "the failure was logged only after the loop went on, not at once:\n%s", err);
}

Test(task, detached_tasks_that_succeed_or_are_cancelled_log_nothing)
{
    char err[8192], status_s[64];
    int status = run_child("detach_quiet", err, sizeof err);
    describe_status(status, status_s, sizeof status_s);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %s; stderr:\n%s", status_s, err);
    cr_assert(strstr(err, "quiet-") == NULL, "a detached task that did not fail was reported:\n%s", err);
}

/* ---- cancellation ---------------------------------------------------------------------------------- */

static intptr_t cancelled_sleeper(void *arg)
{
    (void)arg;
    ev(1);
    int rc = weft_sleep(SEC(10));
    ev(2);
    return rc;
}

static intptr_t cancel_sleep_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(cancelled_sleeper, NULL);
    weft_yield();
    EV_EXPECT(1);
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    EV_EXPECT(1, 2);
    return 0;
}

Test(task, cancel_makes_the_current_sleep_return_ecanceled)
{
    EQ(run(cancel_sleep_main, NULL), 0);
}

static intptr_t sticky_results[6];

static intptr_t sticky_task(void *arg)
{
    weft_future *never = arg;
    sticky_results[0] = weft_sleep(SEC(10));
    sticky_results[1] = weft_sleep(SEC(10));
    sticky_results[2] = weft_sleep(0);
    sticky_results[3] = weft_nop();
    sticky_results[4] = weft_await(never);
    sticky_results[5] = weft_sleep(MS(1));
    return 0;
}

static intptr_t sticky_main(void *arg)
{
    (void)arg;
    weft_future *never = weft_future_new();
    weft_task *t = weft_spawn(sticky_task, never);
    weft_yield();
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), 0); /* it returned a value of its own: join hands it over */
    for (int i = 0; i < 6; i++)
        cr_assert(sticky_results[i] == -ECANCELED, "suspending call %d after the cancel returned %jd (%s)", i,
                  (intmax_t)sticky_results[i], res_name(sticky_results[i]));
    cr_assert(!weft_future_done(never), "cancelling the awaiting task must leave the future alone");
    weft_future_free(never);
    return 0;
}

Test(task, cancel_is_sticky_every_later_suspending_call_returns_ecanceled)
{
    EQ(run(sticky_main, NULL), 0);
}

static intptr_t cancel_before_start_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(record_arg, (void *)1);
    EQ(weft_cancel(t), 0);
    weft_yield();
    EV_EXPECT();
    EQ(weft_join(t), -ECANCELED);
    EV_EXPECT();
    return 0;
}

Test(task, cancel_before_start_never_runs_and_join_gives_ecanceled)
{
    EQ(run(cancel_before_start_main, NULL), 0);
}

static intptr_t cancel_ended_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(return_arg, (void *)8);
    weft_yield();
    EQ(weft_cancel(t), -ESRCH);
    EQ(weft_join(t), 8);
    EQ(weft_cancel(NULL), -EINVAL);
    return 0;
}

Test(task, cancel_of_ended_task_returns_esrch_and_keeps_its_result)
{
    EQ(run(cancel_ended_main, NULL), 0);
}

static intptr_t self_cancel_task(void *arg)
{
    (void)arg;
    EQ(weft_cancel(weft_self()), 0);
    ev(1); /* cancelling oneself does not stop the task by itself */
    EQ(weft_sleep(MS(1)), -ECANCELED);
    EQ(weft_nop(), -ECANCELED);
    ev(2);
    return 7;
}

static intptr_t self_cancel_main(void *arg)
{
    (void)arg;
    EQ(weft_join(weft_spawn(self_cancel_task, NULL)), 7);
    return 0;
}

Test(task, self_cancel_makes_the_next_suspending_call_return_ecanceled)
{
    EQ(run(self_cancel_main, NULL), 0);
    EV_EXPECT(1, 2);
}

/* ---- join when the joiner is cancelled ------------------------------------------------------------- */

static intptr_t inner_sleeper(void *arg)
{
    intptr_t ignore_cancel = (intptr_t)arg;
    int rc = weft_sleep(SEC(10));
    ev(rc == -ECANCELED ? 10 : 11);
    ev(12); /* cleanup */
    return ignore_cancel ? 99 : rc;
}

static intptr_t joiner(void *arg)
{
    weft_task *inner = weft_spawn(inner_sleeper, arg);
    intptr_t r = weft_join(inner);
    ev(20);
    return r;
}

static intptr_t join_cancel_main(void *arg)
{
    weft_task *j = weft_spawn(joiner, arg);
    settle();
    EV_EXPECT();
    EQ(weft_cancel(j), 0);
    intptr_t r = weft_join(j);
    /* The inner task saw the cancel and finished its cleanup before the joiner's join returned. */
    EV_EXPECT(10, 12, 20);
    return r;
}

Test(task, cancelling_a_joiner_cancels_the_joined_task_and_waits_for_it)
{
    EQ(run(join_cancel_main, (void *)0), -ECANCELED);
}

Test(task, cancelled_joiner_gets_the_joined_task_result_when_it_produced_one)
{
    EQ(run(join_cancel_main, (void *)1), 99);
}

/* ---- weft_self ------------------------------------------------------------------------------------- */

static weft_task *self_seen;

static intptr_t record_self(void *arg)
{
    (void)arg;
    self_seen = weft_self();
    return 0;
}

static intptr_t self_main(void *arg)
{
    (void)arg;
    weft_task *me = weft_self();
    cr_assert(me != NULL, "weft_self() is NULL inside the main task");
    weft_task *t = weft_spawn(record_self, NULL);
    EQ(weft_join(t), 0);
    cr_assert(self_seen == t, "inside the task weft_self() = %p, its handle is %p", (void *)self_seen, (void *)t);
    cr_assert(weft_self() == me);
    return 0;
}

Test(task, self_is_the_running_task_and_null_outside_any_task)
{
    cr_assert(weft_self() == NULL);
    EQ(run(self_main, NULL), 0);
    cr_assert(weft_self() == NULL);
}

/* ---- weft_yield -------------------------------------------------------------------------------------- */

static intptr_t yielder(void *arg)
{
    int base = (int)(intptr_t)arg;
    for (int i = 0; i < 3; i++) {
        ev(base + i);
        weft_yield();
    }
    return 0;
}

static intptr_t yield_main(void *arg)
{
    (void)arg;
    weft_task *a = weft_spawn(yielder, (void *)100);
    weft_task *b = weft_spawn(yielder, (void *)200);
    EQ(weft_join(a), 0);
    EQ(weft_join(b), 0);
    return 0;
}

Test(task, two_yielding_tasks_interleave)
{
    EQ(run(yield_main, NULL), 0);
    EV_EXPECT(100, 200, 101, 201, 102, 202);
}

/* ---- misuse ------------------------------------------------------------------------------------------ */

static intptr_t spawn_null_main(void *arg)
{
    (void)arg;
    NULL_WITH_ERRNO(weft_spawn(NULL, NULL), EINVAL);
    NULL_WITH_ERRNO(weft_spawn_named("x", NULL, NULL), EINVAL);
    return 0;
}

Test(task, spawn_of_null_function_returns_null_with_einval)
{
    EQ(run(spawn_null_main, NULL), 0);
}

Test(task, spawn_outside_a_loop_returns_null_with_eperm)
{
    NULL_WITH_ERRNO(weft_spawn(return_arg, NULL), EPERM);
    NULL_WITH_ERRNO(weft_spawn_named("x", return_arg, NULL), EPERM);
}

static void *spawn_from_thread(void *arg)
{
    (void)arg;
    errno = 0;
    weft_task *t = weft_spawn(return_arg, NULL);
    return (void *)(intptr_t)(t == NULL ? errno : -1);
}

static intptr_t spawn_other_thread_main(void *arg)
{
    (void)arg;
    pthread_t th;
    EQ(pthread_create(&th, NULL, spawn_from_thread, NULL), 0);
    void *err;
    EQ(pthread_join(th, &err), 0);
    EQ((intptr_t)err, EPERM);
    return 0;
}

Test(task, spawn_from_a_thread_without_its_own_loop_returns_eperm)
{
    EQ(run(spawn_other_thread_main, NULL), 0);
}

Test(task, suspending_calls_on_a_thread_without_loop_return_eperm)
{
    weft_future *f = weft_future_new();
    cr_assert(f != NULL);
    weft_yield(); /* does nothing outside a task */
    weft_deadline_push(0); /* does nothing outside a task: the calls below say -EPERM, not -ETIMEDOUT */
    EQ(weft_sleep(MS(1)), -EPERM);
    EQ(weft_sleep(0), -EPERM);
    EQ(weft_await(f), -EPERM);
    EQ(weft_nop(), -EPERM);
    weft_future *fs[] = {f};
    EQ(weft_gather(fs, 1, NULL), -EPERM);
    EQ(weft_wait_any(fs, 1, MS(1)), -EPERM);
    weft_deadline_pop();
    cr_assert(!weft_future_done(f));
    weft_future_free(f);
}

/* Results of suspending calls made from a future callback, which runs outside any task. */
static intptr_t cb_results[8];
static weft_task *cb_self = (weft_task *)1;
static weft_task *cb_spawned;

static void misuse_in_callback(weft_future *f, void *arg)
{
    weft_future *other = arg;
    (void)f;
    cb_self = weft_self();
    cb_results[0] = weft_sleep(MS(1));
    cb_results[1] = weft_await(other);
    cb_results[2] = weft_nop();
    weft_future *fs[] = {other};
    cb_results[3] = weft_gather(fs, 1, NULL);
    cb_results[4] = weft_wait_any(fs, 1, MS(1));
    /* Spawning is allowed from a callback; joining is not. */
    cb_spawned = weft_spawn(return_arg, (void *)31);
    cb_results[5] = cb_spawned ? weft_join(cb_spawned) : -999;
    cb_results[6] = cb_spawned ? weft_wait_for(cb_spawned, MS(1)) : -999;
    weft_yield(); /* does nothing outside a task */
    cb_results[7] = weft_future_resolve(other, 5);
}

static intptr_t callback_misuse_main(void *arg)
{
    (void)arg;
    weft_future *trigger = weft_future_new();
    weft_future *other = weft_future_new();
    EQ(weft_future_on_done(trigger, misuse_in_callback, other), 0);
    EQ(weft_future_resolve(trigger, 1), 0);
    EQ(weft_await(other), 5); /* the callback resolved it */
    cr_assert(cb_self == NULL, "weft_self() inside a callback = %p, want NULL", (void *)cb_self);
    static const char *what[] = {"weft_sleep", "weft_await", "weft_nop", "weft_gather", "weft_wait_any",
                                 "weft_join", "weft_wait_for"};
    for (int i = 0; i < 7; i++)
        cr_assert(cb_results[i] == -EPERM, "%s in a callback returned %jd (%s), want -EPERM", what[i],
                  (intmax_t)cb_results[i], res_name(cb_results[i]));
    EQ(cb_results[7], 0);
    cr_assert(cb_spawned != NULL, "weft_spawn from a callback failed");
    EQ(weft_join(cb_spawned), 31); /* -EPERM left the task as it was */
    weft_future_free(trigger);
    weft_future_free(other);
    return 0;
}

Test(task, suspending_calls_in_a_future_callback_return_eperm)
{
    EQ(run(callback_misuse_main, NULL), 0);
}

/* ---- property: random spawn / cancel / yield / sleep interleavings ------------------------------------ */

#define PROP_TASKS 200

struct prop_task {
    weft_task *handle;
    int plan_steps;     /* how many yields or short sleeps it takes */
    bool cancelled;     /* main called weft_cancel on it while it had not ended */
    bool started, ended;
    int saw_cancel;     /* a suspending call returned -ECANCELED */
};

static struct prop_task prop[PROP_TASKS];
static uint64_t prop_rng = 0x9e3779b97f4a7c15ull;

static uint64_t prop_next(void)
{
    prop_rng ^= prop_rng << 13;
    prop_rng ^= prop_rng >> 7;
    prop_rng ^= prop_rng << 17;
    return prop_rng;
}

static intptr_t prop_body(void *arg)
{
    struct prop_task *p = arg;
    p->started = true;
    for (int i = 0; i < p->plan_steps; i++) {
        int rc = (i % 3 == 2) ? weft_sleep((uint64_t)(i % 4) * 100000u) : weft_nop();
        if (rc == -ECANCELED) {
            p->saw_cancel++;
            continue; /* keep going: every later call must also return -ECANCELED */
        }
        cr_assert(rc == 0, "step %d returned %d", i, rc);
        cr_assert(!p->saw_cancel, "a call succeeded after a cancel was seen");
    }
    p->ended = true;
    return p->saw_cancel ? -ECANCELED : (intptr_t)(p - prop);
}

static intptr_t prop_main(void *arg)
{
    (void)arg;
    weft_stats before;
    EQ(weft_stats_get(&before), 0);
    size_t spawned = 0, joined = 0;
    while (joined < PROP_TASKS) {
        uint64_t dice = prop_next() % 10;
        if (dice < 4 && spawned < PROP_TASKS) {
            struct prop_task *p = &prop[spawned];
            p->plan_steps = (int)(prop_next() % 8);
            p->handle = weft_spawn(prop_body, p);
            cr_assert(p->handle != NULL);
            spawned++;
        } else if (dice < 6 && spawned > joined) {
            struct prop_task *p = &prop[joined + prop_next() % (spawned - joined)];
            int rc = weft_cancel(p->handle);
            if (rc == 0) {
                cr_assert(!p->ended, "cancel of an ended task returned 0, want -ESRCH");
                p->cancelled = true;
            } else {
                /* -ESRCH: it returned, or it was cancelled before it started and so ended unstarted. */
                cr_assert(rc == -ESRCH && (p->ended || (p->cancelled && !p->started)),
                          "cancel returned %d; task started %d, ended %d, cancelled before %d", rc, p->started,
                          p->ended, p->cancelled);
            }
        } else if (dice < 8 && spawned > joined) {
            struct prop_task *p = &prop[joined];
            intptr_t r = weft_join(p->handle);
            size_t i = joined++;
            if (!p->started) {
                cr_assert(p->cancelled, "task %zu never started yet was not cancelled", i);
                EQ(r, -ECANCELED);
            } else if (p->saw_cancel) {
                cr_assert(p->cancelled);
                EQ(r, -ECANCELED);
            } else {
                EQ(r, (intptr_t)i);
            }
        } else if (dice == 8) {
            weft_yield();
        } else {
            EQ(weft_nop(), 0);
        }
    }
    weft_stats after;
    EQ(weft_stats_get(&after), 0);
    EQ(after.tasks_spawned - before.tasks_spawned, PROP_TASKS);
    EQ(after.tasks_live, before.tasks_live);
    return 0;
}

Test(task, random_spawn_cancel_join_interleavings_keep_every_promise)
{
    for (int round = 0; round < 5; round++) {
        memset(prop, 0, sizeof prop);
        EQ(run(prop_main, NULL), 0);
    }
}
