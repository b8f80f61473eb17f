/*
 * Futures: resolve and await, many awaiters, cancel, callbacks (order, outside any task, on an already
 * done future), free while pending, task futures, and resolution from other threads.
 */
#include <pthread.h>

#include "common.h"

TestSuite(future, .timeout = 30);

static intptr_t return_arg(void *arg) { return (intptr_t)arg; }

static intptr_t await_arg(void *arg)
{
    weft_future *f = arg;
    ev(1);
    intptr_t r = weft_await(f);
    ev(2);
    return r;
}

/* ---- resolve and await ----------------------------------------------------------------------------- */

static intptr_t resolve_then_await_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    cr_assert(f != NULL);
    cr_assert(!weft_future_done(f));
    EQ(weft_future_resolve(f, 5), 0);
    cr_assert(weft_future_done(f));
    EQ(weft_await(f), 5);
    EQ(weft_await(f), 5); /* a done future can be awaited again */
    weft_future_free(f);
    return 0;
}

Test(future, resolve_then_await_returns_the_value)
{
    EQ(run(resolve_then_await_main, NULL), 0);
}

static intptr_t await_parks_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_task *t = weft_spawn(await_arg, f);
    settle();
    EV_EXPECT(1); /* parked in weft_await */
    EQ(weft_future_resolve(f, 77), 0);
    EQ(weft_join(t), 77);
    EV_EXPECT(1, 2);
    weft_future_free(f);
    return 0;
}

Test(future, await_parks_until_another_task_resolves)
{
    EQ(run(await_parks_main, NULL), 0);
}

static intptr_t resolve_twice_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    EQ(weft_future_resolve(f, 1), 0);
    EQ(weft_future_resolve(f, 2), -EALREADY);
    EQ(weft_future_cancel(f), -EALREADY);
    EQ(weft_await(f), 1);
    weft_future_free(f);
    return 0;
}

Test(future, resolve_twice_returns_ealready_and_keeps_the_first_value)
{
    EQ(run(resolve_twice_main, NULL), 0);
}

static intptr_t null_future_main(void *arg)
{
    (void)arg;
    EQ(weft_future_resolve(NULL, 1), -EINVAL);
    EQ(weft_future_cancel(NULL), -EINVAL);
    EQ(weft_await(NULL), -EINVAL);
    EQ(weft_future_resolve_from_thread(NULL, 1), -EINVAL);
    cr_assert(!weft_future_done(NULL));
    cr_assert(weft_task_future(NULL) == NULL);
    weft_future_free(NULL);
    return 0;
}

Test(future, null_future_gets_einval)
{
    EQ(run(null_future_main, NULL), 0);
}

#define MANY 100

static intptr_t many_awaiters_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_task *ts[MANY];
    for (int i = 0; i < MANY; i++)
        ts[i] = weft_spawn(await_arg, f);
    settle();
    EQ(ev_len, MANY);
    EQ(weft_future_resolve(f, 9), 0);
    for (int i = 0; i < MANY; i++)
        EQ(weft_join(ts[i]), 9);
    EQ(ev_len, 2 * MANY);
    weft_future_free(f);
    return 0;
}

Test(future, every_task_awaiting_one_future_gets_the_result)
{
    EQ(run(many_awaiters_main, NULL), 0);
}

/* ---- cancel ---------------------------------------------------------------------------------------- */

static intptr_t future_cancel_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_task *a = weft_spawn(await_arg, f), *b = weft_spawn(await_arg, f);
    settle();
    EQ(weft_future_cancel(f), 0);
    cr_assert(weft_future_done(f));
    EQ(weft_join(a), -ECANCELED);
    EQ(weft_join(b), -ECANCELED);
    EQ(weft_future_cancel(f), -EALREADY);
    EQ(weft_future_resolve(f, 3), -EALREADY);
    EQ(weft_await(f), -ECANCELED);
    weft_future_free(f);
    return 0;
}

Test(future, future_cancel_wakes_awaiters_with_ecanceled)
{
    EQ(run(future_cancel_main, NULL), 0);
}

static intptr_t cancel_awaiter_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_task *t = weft_spawn(await_arg, f);
    settle();
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    cr_assert(!weft_future_done(f), "cancelling an awaiting task must leave the future pending");
    EQ(weft_future_resolve(f, 4), 0);
    EQ(weft_await(f), 4);
    weft_future_free(f);
    return 0;
}

Test(future, cancelling_an_awaiting_task_leaves_the_future_pending)
{
    EQ(run(cancel_awaiter_main, NULL), 0);
}

/* ---- callbacks ------------------------------------------------------------------------------------- */

struct cb_record {
    weft_future *f;
    bool in_task;
    bool done;
};
static struct cb_record cb_seen[8];
static weft_future *cb_expected_future;

static void record_cb(weft_future *f, void *arg)
{
    int idx = (int)(intptr_t)arg;
    cb_seen[idx] = (struct cb_record){.f = f, .in_task = weft_self() != NULL, .done = weft_future_done(f)};
    ev(idx);
}

static intptr_t callback_order_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    cb_expected_future = f;
    for (intptr_t i = 0; i < 4; i++)
        EQ(weft_future_on_done(f, record_cb, (void *)i), 0);
    EQ(weft_future_resolve(f, 1), 0);
    EV_EXPECT(); /* never inside the task that resolved it */
    settle();
    EV_EXPECT(0, 1, 2, 3);
    for (int i = 0; i < 4; i++) {
        cr_assert(cb_seen[i].f == f, "callback %d got future %p, want %p", i, (void *)cb_seen[i].f, (void *)f);
        cr_assert(!cb_seen[i].in_task, "callback %d ran inside a task", i);
        cr_assert(cb_seen[i].done, "callback %d ran before the future was done", i);
    }
    weft_future_free(f);
    return 0;
}

Test(future, callbacks_run_in_the_order_added_outside_any_task)
{
    EQ(run(callback_order_main, NULL), 0);
}

static intptr_t callback_on_done_future_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    EQ(weft_future_resolve(f, 1), 0);
    settle();
    EQ(weft_future_on_done(f, record_cb, (void *)5), 0);
    EV_EXPECT(); /* a task is running: the callback cannot have run inside on_done */
    settle();
    EV_EXPECT(5);
    cr_assert(!cb_seen[5].in_task);
    weft_future_free(f);
    return 0;
}

Test(future, on_done_on_an_already_done_future_runs_at_the_next_turn)
{
    EQ(run(callback_on_done_future_main, NULL), 0);
}

/* A task that awaits the future and records 10 + its index when it wakes. */
static intptr_t await_and_record(void *arg)
{
    weft_future *f = cb_expected_future;
    EQ(weft_await(f), 1);
    ev((int)(intptr_t)arg);
    return 0;
}

static intptr_t asyncio_order_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    cb_expected_future = f;
    EQ(weft_future_on_done(f, record_cb, (void *)0), 0);
    weft_task *a = weft_spawn(await_and_record, (void *)10);
    weft_yield(); /* a starts and parks on f */
    EQ(weft_future_on_done(f, record_cb, (void *)1), 0);
    weft_task *b = weft_spawn(await_and_record, (void *)11);
    weft_yield(); /* b parks on f after the second callback */
    EV_EXPECT();
    /* As asyncio's set_result: the callbacks and the woken tasks become runnable in the order they
     * were registered, and a yield (asyncio.sleep(0)) lets all of them run before the caller goes on. */
    EQ(weft_future_resolve(f, 1), 0);
    EV_EXPECT();
    weft_yield();
    ev(99);
    EV_EXPECT(0, 10, 1, 11, 99);
    /* A callback on a done future runs at the caller's next yield, not later. */
    EQ(weft_future_on_done(f, record_cb, (void *)2), 0);
    weft_yield();
    ev(98);
    EV_EXPECT(0, 10, 1, 11, 99, 2, 98);
    EQ(weft_join(a), 0);
    EQ(weft_join(b), 0);
    weft_future_free(f);
    return 0;
}

Test(future, callbacks_and_woken_tasks_run_in_registration_order_at_the_next_yield)
{
    EQ(run(asyncio_order_main, NULL), 0);
}

static void never_called(weft_future *f, void *arg)
{
    (void)f;
    (void)arg;
    cr_assert_fail("callback registered with bad arguments ran");
}

static intptr_t on_done_einval_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    EQ(weft_future_on_done(NULL, never_called, NULL), -EINVAL);
    EQ(weft_future_on_done(f, NULL, NULL), -EINVAL);
    EQ(weft_future_resolve(f, 0), 0);
    settle();
    weft_future_free(f);
    return 0;
}

Test(future, on_done_with_null_future_or_callback_returns_einval)
{
    EQ(run(on_done_einval_main, NULL), 0);
}

static void chain_cb(weft_future *f, void *arg)
{
    (void)f;
    /* Resolving another future from a callback is allowed: callbacks run on the loop thread. */
    EQ(weft_future_resolve(arg, 21), 0);
}

static intptr_t callback_chain_main(void *arg)
{
    (void)arg;
    weft_future *first = weft_future_new(), *second = weft_future_new();
    EQ(weft_future_on_done(first, chain_cb, second), 0);
    weft_task *t = weft_spawn(await_arg, second);
    settle();
    EQ(weft_future_resolve(first, 0), 0);
    EQ(weft_join(t), 21);
    weft_future_free(first);
    weft_future_free(second);
    return 0;
}

Test(future, a_callback_may_resolve_another_future_and_wake_its_awaiter)
{
    EQ(run(callback_chain_main, NULL), 0);
}

/* ---- free ------------------------------------------------------------------------------------------ */

static intptr_t free_pending_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_task *ts[3];
    for (int i = 0; i < 3; i++)
        ts[i] = weft_spawn(await_arg, f);
    EQ(weft_future_on_done(f, record_cb, (void *)6), 0);
    settle();
    EV_EXPECT(1, 1, 1);
    weft_future_free(f);
    for (int i = 0; i < 3; i++)
        EQ(weft_join(ts[i]), -ECANCELED);
    settle();
    /* Each awaiter woke once, and the callback ran, seeing the future done, before its memory went away.
     * Whether the callback runs before or after the woken tasks is not promised. */
    EQ(ev_len, 7);
    int woke = 0, callbacks = 0;
    for (size_t i = 3; i < ev_len; i++) {
        woke += ev_log[i] == 2;
        callbacks += ev_log[i] == 6;
    }
    EQ(woke, 3);
    EQ(callbacks, 1);
    cr_assert(cb_seen[6].done && !cb_seen[6].in_task);
    return 0;
}

Test(future, freeing_a_pending_future_wakes_awaiters_with_ecanceled_and_runs_callbacks)
{
    EQ(run(free_pending_main, NULL), 0);
}

/* ---- task futures ---------------------------------------------------------------------------------- */

static intptr_t sleep_then_return(void *arg)
{
    weft_sleep(MS(2));
    return (intptr_t)arg;
}

static intptr_t task_future_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(sleep_then_return, (void *)11);
    weft_future *tf = weft_task_future(t);
    cr_assert(tf != NULL);
    cr_assert(weft_task_future(t) == tf);
    cr_assert(!weft_future_done(tf));
    EQ(weft_await(tf), 11);
    cr_assert(weft_future_done(tf));
    EQ(weft_join(t), 11);

    weft_task *failing = weft_spawn(return_arg, (void *)(intptr_t)-ENOENT);
    EQ(weft_await(weft_task_future(failing)), -ENOENT);
    EQ(weft_join(failing), -ENOENT);
    return 0;
}

Test(future, task_future_completes_with_the_task_result)
{
    EQ(run(task_future_main, NULL), 0);
}

static intptr_t task_future_callback_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(sleep_then_return, (void *)3);
    weft_future *tf = weft_task_future(t);
    EQ(weft_future_on_done(tf, record_cb, (void *)7), 0);
    EQ(weft_join(t), 3);
    settle();
    EV_EXPECT(7);
    cr_assert(cb_seen[7].f == tf && cb_seen[7].done && !cb_seen[7].in_task);
    return 0;
}

Test(future, task_future_callback_runs_when_the_task_ends)
{
    EQ(run(task_future_callback_main, NULL), 0);
}

static intptr_t task_future_misuse_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(sleep_then_return, (void *)12);
    weft_future *tf = weft_task_future(t);
    EQ(weft_future_resolve(tf, 1), -EINVAL);
    EQ(weft_future_cancel(tf), -EINVAL);
    EQ(weft_future_resolve_from_thread(tf, 1), -EINVAL);
    cr_assert(!weft_future_done(tf));
    EQ(weft_join(t), 12);
    return 0;
}

Test(future, resolve_or_cancel_of_a_task_future_returns_einval)
{
    EQ(run(task_future_misuse_main, NULL), 0);
}

/* ---- resolution from other threads ------------------------------------------------------------------- */

struct remote {
    weft_future *f;
    atomic_int go;       /* set once the loop is parked awaiting f */
    int rc[2];
    intptr_t value;
    int resolves;        /* how many times to call resolve_from_thread */
};

static void *remote_resolver(void *arg)
{
    struct remote *r = arg;
    while (!atomic_load(&r->go))
        usleep(100);
    /* Give the loop time to block in the kernel: nothing else is pending. */
    usleep(30000);
    for (int i = 0; i < r->resolves; i++)
        r->rc[i] = weft_future_resolve_from_thread(r->f, r->value + i);
    return NULL;
}

static intptr_t release_go(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    return 0;
}

static intptr_t from_thread_main(void *arg)
{
    struct remote *r = arg;
    r->f = weft_future_new();
    pthread_t th;
    EQ(pthread_create(&th, NULL, remote_resolver, r), 0);
    /* go is set by a task that starts only once main has parked in weft_await. */
    weft_detach(weft_spawn(release_go, &r->go));
    weft_stats before;
    EQ(weft_stats_get(&before), 0);
    intptr_t v = weft_await(r->f);
    weft_stats after;
    EQ(weft_stats_get(&after), 0);
    EQ(pthread_join(th, NULL), 0);
    cr_assert(after.remote_wakeups > before.remote_wakeups, "remote_wakeups did not count the resolution");
    EQ(weft_future_resolve(r->f, 1), -EALREADY);
    weft_future_free(r->f);
    return v;
}

Test(future, resolve_from_thread_wakes_the_loop_parked_in_the_kernel)
{
    struct remote r = {.value = 123, .resolves = 1};
    EQ(run(from_thread_main, &r), 123);
    EQ(r.rc[0], 0);
}

Test(future, resolve_from_thread_twice_returns_ealready_and_keeps_the_first_value)
{
    struct remote r = {.value = 500, .resolves = 2};
    EQ(run(from_thread_main, &r), 500);
    EQ(r.rc[0], 0);
    EQ(r.rc[1], -EALREADY);
}

Test(future, resolve_from_thread_of_a_future_never_used_on_a_loop_returns_einval)
{
    weft_future *f = weft_future_new();
    cr_assert(f != NULL);
    EQ(weft_future_resolve_from_thread(f, 1), -EINVAL);
    cr_assert(!weft_future_done(f));
    weft_future_free(f);
}

#define RESOLVER_THREADS 4
#define PER_THREAD 1000

static weft_future *remote_fs[RESOLVER_THREADS * PER_THREAD];
static int remote_rcs[RESOLVER_THREADS * PER_THREAD];
static atomic_int remote_go;

static void *bulk_resolver(void *arg)
{
    int base = (int)(intptr_t)arg * PER_THREAD;
    while (!atomic_load(&remote_go))
        usleep(100);
    for (int i = base; i < base + PER_THREAD; i++) {
        remote_rcs[i] = weft_future_resolve_from_thread(remote_fs[i], (intptr_t)i * 7 + 1);
        if (i % 97 == 0)
            usleep(50); /* spread the resolutions over several loop wakeups */
    }
    return NULL;
}

static intptr_t bulk_main(void *arg)
{
    (void)arg;
    const size_t n = RESOLVER_THREADS * PER_THREAD;
    for (size_t i = 0; i < n; i++) {
        remote_fs[i] = weft_future_new();
        cr_assert(remote_fs[i] != NULL);
    }
    pthread_t th[RESOLVER_THREADS];
    for (intptr_t i = 0; i < RESOLVER_THREADS; i++)
        EQ(pthread_create(&th[i], NULL, bulk_resolver, (void *)i), 0);
    static intptr_t results[RESOLVER_THREADS * PER_THREAD];
    weft_detach(weft_spawn(release_go, &remote_go));
    EQ(weft_gather(remote_fs, n, results), 0);
    for (int i = 0; i < RESOLVER_THREADS; i++)
        EQ(pthread_join(th[i], NULL), 0);
    for (size_t i = 0; i < n; i++) {
        cr_assert(remote_rcs[i] == 0, "future %zu: resolve_from_thread returned %d", i, remote_rcs[i]);
        cr_assert(results[i] == (intptr_t)i * 7 + 1, "future %zu: got %jd, want %zu", i, (intmax_t)results[i],
                  i * 7 + 1);
        weft_future_free(remote_fs[i]);
    }
    return 0;
}

Test(future, many_threads_resolving_many_futures_deliver_every_value)
{
    EQ(run(bulk_main, NULL), 0);
}
