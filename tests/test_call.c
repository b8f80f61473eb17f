/*
 * Callbacks on the loop: weft_call_soon, weft_call_later (with weft_timer_cancel and weft_timer_free),
 * weft_call_soon_threadsafe and weft_loop_current; and weft_future_result. The order callbacks run in
 * among tasks, that they run outside any task, and their errors.
 */
#include "common.h"

#include <pthread.h>

TestSuite(call, .timeout = 30);

static bool cb_in_task;
static int cb_sleep_result;

static void record(void *arg)
{
    cb_in_task = weft_self() != NULL;
    cb_sleep_result = weft_sleep(1);
    ev((int)(intptr_t)arg);
}

static intptr_t record_task(void *arg)
{
    ev((int)(intptr_t)arg);
    return 0;
}

static intptr_t soon_order_main(void *arg)
{
    (void)arg;
    weft_task *a = weft_spawn(record_task, (void *)1);
    EQ(weft_call_soon(record, (void *)2), 0);
    weft_task *b = weft_spawn(record_task, (void *)3);
    EV_EXPECT();
    weft_yield();
    ev(4);
    EV_EXPECT(1, 2, 3, 4);
    cr_assert(!cb_in_task, "the callback ran inside a task");
    EQ(cb_sleep_result, -EPERM);
    EQ(weft_join(a), 0);
    EQ(weft_join(b), 0);
    EQ(weft_call_soon(NULL, NULL), -EINVAL);
    return 0;
}

Test(call, call_soon_runs_outside_any_task_in_fifo_order_with_ready_tasks)
{
    EQ(weft_call_soon(record, NULL), -EPERM); /* no loop on this thread */
    EQ(run(soon_order_main, NULL), 0);
}

/* ---- call_later ---------------------------------------------------------------------------------- */

static uint64_t later_start, later_at[3];

static void later_record(void *arg)
{
    int i = (int)(intptr_t)arg;
    later_at[i] = mono_ns() - later_start;
    ev(i);
}

static intptr_t later_order_main(void *arg)
{
    (void)arg;
    later_start = mono_ns();
    EQ(weft_call_later(MS(30), later_record, (void *)0, NULL), 0);
    EQ(weft_call_later(MS(10), later_record, (void *)1, NULL), 0);
    EQ(weft_call_later(MS(20), later_record, (void *)2, NULL), 0);
    EQ(weft_sleep(MS(5)), 0);
    EV_EXPECT();
    EQ(weft_sleep(MS(60)), 0);
    EV_EXPECT(1, 2, 0);
    cr_assert(later_at[1] >= MS(10) && later_at[2] >= MS(20) && later_at[0] >= MS(30),
              "a call ran before its delay: %" PRIu64 " %" PRIu64 " %" PRIu64 " ns", later_at[1], later_at[2],
              later_at[0]);
    EQ(weft_call_later(0, NULL, NULL, NULL), -EINVAL);
    return 0;
}

Test(call, call_later_runs_each_call_after_its_delay_in_the_order_due)
{
    EQ(weft_call_later(1, later_record, NULL, NULL), -EPERM);
    EQ(run(later_order_main, NULL), 0);
}

static weft_timer *victim;

static void cancel_victim(void *arg)
{
    (void)arg;
    ev(1);
    EQ(weft_timer_cancel(victim), 0); /* it has fired and waits in the run queue behind us */
}

static void must_not_run(void *arg)
{
    (void)arg;
    cr_assert_fail("a cancelled call ran");
}

static intptr_t cancel_main(void *arg)
{
    (void)arg;
    /* Cancelled while armed. */
    weft_timer *h;
    EQ(weft_call_later(MS(10), must_not_run, NULL, &h), 0);
    cr_assert(h != NULL);
    EQ(weft_timer_cancel(h), 0);
    EQ(weft_timer_cancel(h), -EALREADY);
    weft_timer_free(h);
    /* Freed while armed: cancelled too. */
    EQ(weft_call_later(MS(10), must_not_run, NULL, &h), 0);
    weft_timer_free(h);
    /* Cancelled after firing, before its turn in the run queue: both fire in the same poll. */
    weft_timer *first;
    EQ(weft_call_later(0, cancel_victim, NULL, &first), 0);
    EQ(weft_call_later(0, must_not_run, NULL, &victim), 0);
    EQ(weft_sleep(MS(20)), 0);
    EV_EXPECT(1);
    EQ(weft_timer_cancel(first), -EALREADY); /* it ran */
    EQ(weft_timer_cancel(victim), -EALREADY);
    weft_timer_free(first);
    weft_timer_free(victim);
    EQ(weft_timer_cancel(NULL), -EINVAL);
    weft_timer_free(NULL);
    return 0;
}

Test(call, timer_cancel_stops_a_call_armed_or_already_fired_and_not_yet_run)
{
    EQ(run(cancel_main, NULL), 0);
}

static weft_timer *left_pending;

static intptr_t leave_pending_main(void *arg)
{
    (void)arg;
    EQ(weft_call_later(SEC(10), must_not_run, NULL, NULL), 0);
    EQ(weft_call_later(SEC(10), must_not_run, NULL, &left_pending), 0);
    return 0;
}

Test(call, calls_pending_when_the_run_ends_are_dropped_and_their_handles_stay_valid)
{
    uint64_t t0 = mono_ns();
    EQ(run(leave_pending_main, NULL), 0);
    cr_assert(mono_ns() - t0 < SEC(5), "the run waited for a pending call");
    EQ(weft_timer_cancel(left_pending), -EALREADY);
    weft_timer_free(left_pending);
}

/* ---- call_soon_threadsafe ------------------------------------------------------------------------ */

enum { POSTERS = 4, POSTS = 1000 };

struct post_state {
    weft_loop *loop;
    pthread_t loop_thread;
    int last[POSTERS];      /* the last sequence number seen per poster */
    int seen;
    bool out_of_order, off_loop;
    weft_future *all_done;
};

struct post_arg {
    struct post_state *st;
    int poster, seq;
};

static struct post_arg post_args[POSTERS][POSTS];

static void posted(void *arg)
{
    struct post_arg *a = arg;
    struct post_state *st = a->st;
    if (!pthread_equal(pthread_self(), st->loop_thread) || weft_loop_current() != st->loop || weft_self())
        st->off_loop = true;
    if (a->seq != st->last[a->poster] + 1)
        st->out_of_order = true;
    st->last[a->poster] = a->seq;
    if (++st->seen == POSTERS * POSTS)
        weft_future_resolve(st->all_done, 0);
}

static void *poster_main(void *arg)
{
    struct post_arg *first = arg;
    for (int i = 0; i < POSTS; i++) {
        int r = weft_call_soon_threadsafe(first->st->loop, posted, first + i);
        if (r)
            return (void *)(intptr_t)r;
    }
    return NULL;
}

static intptr_t threadsafe_main(void *arg)
{
    struct post_state *st = arg;
    st->loop = weft_loop_current();
    cr_assert(st->loop != NULL);
    st->loop_thread = pthread_self();
    st->all_done = weft_future_new();
    pthread_t th[POSTERS];
    for (int p = 0; p < POSTERS; p++) {
        st->last[p] = -1;
        for (int i = 0; i < POSTS; i++)
            post_args[p][i] = (struct post_arg){st, p, i};
        cr_assert(pthread_create(&th[p], NULL, poster_main, post_args[p]) == 0);
    }
    /* The loop sleeps in the kernel while it waits: the posts must wake it. */
    EQ(weft_await(st->all_done), 0);
    for (int p = 0; p < POSTERS; p++) {
        void *r;
        pthread_join(th[p], &r);
        EQ((intptr_t)r, 0);
    }
    weft_future_free(st->all_done);
    return 0;
}

Test(call, call_soon_threadsafe_from_four_threads_runs_each_call_once_on_the_loop_in_order_per_thread)
{
    struct post_state st = {0};
    EQ(run(threadsafe_main, &st), 0);
    EQ(st.seen, POSTERS * POSTS);
    cr_assert(!st.out_of_order, "one thread's calls ran out of order");
    cr_assert(!st.off_loop, "a call ran off the loop's thread or inside a task");
    EQ(weft_call_soon_threadsafe(NULL, posted, NULL), -EINVAL);
}

static int early_ran;

static void early(void *arg)
{
    (void)arg;
    early_ran++;
}

static intptr_t yield_main(void *arg)
{
    (void)arg;
    settle();
    return 0;
}

Test(call, call_soon_threadsafe_before_a_run_runs_in_it_and_one_after_the_last_is_discarded)
{
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL);
    cr_assert(weft_loop_current() == NULL);
    EQ(weft_call_soon_threadsafe(l, early, NULL), 0);
    EQ(early_ran, 0);
    intptr_t result;
    EQ(weft_loop_run(l, yield_main, NULL, &result), 0);
    EQ(early_ran, 1);
    EQ(weft_call_soon_threadsafe(l, early, NULL), 0);
    weft_loop_free(l); /* discards it; ASan's leak check sees it freed */
    EQ(early_ran, 1);
}

/* ---- weft_future_result ------------------------------------------------------------------------------ */

static intptr_t result_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    intptr_t v = 12345;
    EQ(weft_future_result(f, &v), -EAGAIN);
    EQ(v, 12345);
    EQ(weft_future_resolve(f, -EIO), 0);
    EQ(weft_future_result(f, &v), 0);
    EQ(v, -EIO);
    EQ(weft_future_result(NULL, &v), -EINVAL);
    EQ(weft_future_result(f, NULL), -EINVAL);
    weft_future_free(f);
    /* A task's future too. */
    weft_task *t = weft_spawn(record_task, (void *)7);
    weft_yield();
    EQ(weft_future_result(weft_task_future(t), &v), 0);
    EQ(v, 0);
    EQ(weft_join(t), 0);
    return 0;
}

Test(call, future_result_reads_a_done_future_and_says_eagain_while_pending)
{
    EQ(run(result_main, NULL), 0);
}
