/*
 * Misuse: handles used after they were released, and releases done twice. Each returns -EINVAL, is
 * refused and reported, or (in ASan builds, where released tasks are freed at once) is ASan's to report
 * — never undefined behaviour that passes silently. The other misuse cases live beside their concept:
 * suspending calls outside a task or from an executor thread (test_task, test_exec), a loop run from a
 * second thread (test_loop), a future freed while a task awaits it (test_future).
 */
#include "common.h"

TestSuite(misuse, .timeout = 30);

static int runs;

static intptr_t sleeper(void *arg)
{
    (void)arg;
    runs++;
    return weft_sleep(MS(20)) == 0 ? 7 : -1;
}

static intptr_t join_detached_main(void *arg)
{
    (void)arg;
    runs = 0;
    weft_task *t = weft_spawn(sleeper, NULL);
    cr_assert(t != NULL);
    weft_detach(t);
    EQ(weft_join(t), -EINVAL);        /* detached: nobody may join it, and it keeps running */
    EQ(weft_wait_for(t, MS(1)), -EINVAL);
    EQ(weft_sleep(MS(50)), 0);
    EQ(runs, 1);
    return 0;
}

Test(misuse, joining_a_detached_task_returns_einval_and_leaves_it_running)
{
    EQ(run(join_detached_main, NULL), 0);
}

static intptr_t detach_twice_main(void *arg)
{
    (void)arg;
    runs = 0;
    weft_task *t = weft_spawn(sleeper, NULL);
    cr_assert(t != NULL);
    weft_detach(t);
    weft_detach(t); /* refused and reported; the task is not released twice */
    EQ(weft_sleep(MS(50)), 0);
    EQ(runs, 1);
    return 0;
}

Test(misuse, detaching_twice_is_refused_and_the_task_runs_once)
{
    EQ(run(detach_twice_main, NULL), 0);
}

#if !defined(__SANITIZE_ADDRESS__)
/* Without ASan a released task's memory is kept for reuse, oldest first: a stale handle is recognised. */
static intptr_t join_twice_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(sleeper, NULL);
    cr_assert(t != NULL);
    EQ(weft_join(t), 7);
    EQ(weft_join(t), -EINVAL);
    EQ(weft_wait_for(t, MS(1)), -EINVAL);
    EQ(weft_cancel(t), -ESRCH); /* what a released handle was is a task that has ended */
    cr_assert(weft_task_future(t) == NULL);
    cr_assert_str_eq(weft_task_name(t), "");
    return 0;
}

Test(misuse, a_second_join_returns_einval)
{
    EQ(run(join_twice_main, NULL), 0);
}
#endif
