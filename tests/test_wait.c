/*
 * Waiting on many: weft_gather (result order, first error by index), weft_wait_any (lowest index,
 * timeout, more than 16 futures), weft_wait_for (timeout cancels and reaps), scoped deadlines,
 * weft_shield (the inner task outlives its cancelled waiter) and weft_as_completed (completion order).
 */
#include "common.h"

TestSuite(wait, .timeout = 30);


struct delayed {
    uint64_t delay_ns;
    intptr_t result;
    int tag;
    uint64_t until; /* if set: sleep until this weft_now() instead of for delay_ns */
};

/* Sleeps delay_ns (or until `until`), records its tag, returns result. */
static intptr_t delayed_result(void *arg)
{
    struct delayed *d = arg;
    uint64_t now = weft_now();
    int rc = weft_sleep(d->until ? (d->until > now ? d->until - now : 0) : d->delay_ns);
    if (rc < 0)
        return rc;
    ev(d->tag);
    return d->result;
}

/* ---- gather ---------------------------------------------------------------------------------------- */

struct gated {
    weft_future *gate;
    int index;
};

/* Waits for its gate, records its index, returns index * 10. */
static intptr_t gated_result(void *arg)
{
    struct gated *g = arg;
    intptr_t r = weft_await(g->gate);
    if (r < 0)
        return r;
    ev(g->index);
    return g->index * 10;
}

/* Opens the gates last to first, letting each woken task finish before opening the next. */
static intptr_t open_gates_in_reverse(void *arg)
{
    weft_future **gates = arg;
    for (int i = 4; i >= 0; i--) {
        EQ(weft_future_resolve(gates[i], 0), 0);
        weft_yield();
    }
    return 0;
}

static intptr_t gather_order_main(void *arg)
{
    (void)arg;
    struct gated g[5];
    weft_future *gates[5];
    weft_task *ts[5];
    weft_future *fs[5];
    for (int i = 0; i < 5; i++) {
        gates[i] = weft_future_new();
        g[i] = (struct gated){.gate = gates[i], .index = i};
        ts[i] = weft_spawn(gated_result, &g[i]);
        fs[i] = weft_task_future(ts[i]);
    }
    weft_task *opener = weft_spawn(open_gates_in_reverse, gates);
    intptr_t results[5] = {-1, -1, -1, -1, -1};
    EQ(weft_gather(fs, 5, results), 0);
    EV_EXPECT(4, 3, 2, 1, 0); /* they finished in reverse */
    for (int i = 0; i < 5; i++) {
        EQ(results[i], i * 10);
        EQ(weft_join(ts[i]), i * 10);
        weft_future_free(gates[i]);
    }
    EQ(weft_join(opener), 0);
    return 0;
}

Test(wait, gather_keeps_result_order_when_tasks_finish_in_reverse)
{
    EQ(run(gather_order_main, NULL), 0);
}

static intptr_t gather_error_main(void *arg)
{
    (void)arg;
    /* Index 2 fails first in time; index 1 fails later but comes first by index. */
    uint64_t start = weft_now();
    struct delayed d[4] = {
        {.until = start + MS(10), .result = 1, .tag = 0},
        {.until = start + MS(30), .result = -EIO, .tag = 1},
        {.delay_ns = 0, .result = -ENOENT, .tag = 2},
        {.until = start + MS(5), .result = 3, .tag = 3},
    };
    weft_task *ts[4];
    weft_future *fs[4];
    for (int i = 0; i < 4; i++) {
        ts[i] = weft_spawn(delayed_result, &d[i]);
        fs[i] = weft_task_future(ts[i]);
    }
    intptr_t results[4] = {0};
    EQ(weft_gather(fs, 4, results), -EIO);
    EQ(ev_len, 4); /* gather waited for all of them, failures included */
    EQ(results[0], 1);
    EQ(results[1], -EIO);
    EQ(results[2], -ENOENT);
    EQ(results[3], 3);
    for (int i = 0; i < 4; i++)
        EQ(weft_join(ts[i]), d[i].result);
    return 0;
}

Test(wait, gather_returns_the_first_error_by_index_after_all_are_done)
{
    EQ(run(gather_error_main, NULL), 0);
}

static intptr_t gather_null_results_main(void *arg)
{
    (void)arg;
    weft_future *ok[2] = {weft_future_new(), weft_future_new()};
    EQ(weft_future_resolve(ok[0], 1), 0);
    EQ(weft_future_resolve(ok[1], 2), 0);
    EQ(weft_gather(ok, 2, NULL), 0);

    weft_future *bad[3] = {weft_future_new(), weft_future_new(), weft_future_new()};
    weft_task *t = weft_spawn(delayed_result, &(struct delayed){.delay_ns = MS(1), .result = -EPIPE});
    weft_future *mixed[4] = {bad[0], bad[1], bad[2], weft_task_future(t)};
    EQ(weft_future_resolve(bad[0], 0), 0);
    EQ(weft_future_resolve(bad[1], -EBADF), 0);
    EQ(weft_future_resolve(bad[2], -EACCES), 0);
    EQ(weft_gather(mixed, 4, NULL), -EBADF);
    EQ(weft_join(t), -EPIPE);
    for (int i = 0; i < 2; i++)
        weft_future_free(ok[i]);
    for (int i = 0; i < 3; i++)
        weft_future_free(bad[i]);
    return 0;
}

Test(wait, gather_with_null_results_still_returns_the_first_error)
{
    EQ(run(gather_null_results_main, NULL), 0);
}

static intptr_t gather_einval_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_future *with_null[2] = {f, NULL};
    intptr_t results[2] = {-1, -1};
    EQ(weft_gather(NULL, 1, results), -EINVAL);
    EQ(weft_gather(with_null, 2, results), -EINVAL);
    EQ(results[0], -1);
    weft_future_free(f);
    return 0;
}

Test(wait, gather_of_null_array_or_element_returns_einval)
{
    EQ(run(gather_einval_main, NULL), 0);
}

static intptr_t gather_cancelled_task_main(void *arg)
{
    (void)arg;
    weft_task *fast = weft_spawn(return_arg, (void *)1);
    weft_task *slow = weft_spawn(delayed_result, &(struct delayed){.delay_ns = SEC(10), .result = 2});
    weft_task *later = weft_spawn(delayed_result, &(struct delayed){.delay_ns = MS(2), .result = -EIO});
    weft_future *fs[3] = {weft_task_future(fast), weft_task_future(slow), weft_task_future(later)};
    weft_yield();
    EQ(weft_cancel(slow), 0);
    intptr_t results[3] = {0};
    EQ(weft_gather(fs, 3, results), -ECANCELED);
    EQ(results[0], 1);
    EQ(results[1], -ECANCELED);
    EQ(results[2], -EIO);
    EQ(weft_join(fast), 1);
    EQ(weft_join(slow), -ECANCELED);
    EQ(weft_join(later), -EIO);
    return 0;
}

Test(wait, gather_of_a_cancelled_task_reports_its_ecanceled_by_index)
{
    EQ(run(gather_cancelled_task_main, NULL), 0);
}

static intptr_t gathering_task(void *arg)
{
    weft_future **fs = arg;
    intptr_t results[2] = {-77, -77};
    int rc = weft_gather(fs, 2, results);
    /* Cut short: the unfinished futures' slots are untouched. */
    EQ(results[1], -77);
    return rc;
}

static intptr_t gather_caller_cancelled_main(void *arg)
{
    (void)arg;
    weft_future *fs[2] = {weft_future_new(), weft_future_new()};
    weft_task *g = weft_spawn(gathering_task, fs);
    weft_yield();
    EQ(weft_cancel(g), 0);
    EQ(weft_join(g), -ECANCELED);
    cr_assert(!weft_future_done(fs[0]) && !weft_future_done(fs[1]), "gather must leave the futures running");
    EQ(weft_future_resolve(fs[0], 1), 0);
    EQ(weft_future_resolve(fs[1], 2), 0);
    weft_future_free(fs[0]);
    weft_future_free(fs[1]);
    return 0;
}

Test(wait, gather_in_a_cancelled_task_returns_ecanceled_and_leaves_futures_pending)
{
    EQ(run(gather_caller_cancelled_main, NULL), 0);
}

/* ---- wait_any -------------------------------------------------------------------------------------- */

struct resolve_later {
    weft_future *f;
    uint64_t delay_ns;
    intptr_t value;
};

/* ---- join_all ---------------------------------------------------------------------------------------- */

static intptr_t join_all_main(void *arg)
{
    (void)arg;
    struct delayed d[5] = {
        {MS(15), 0, 0, 0}, {MS(5), 10, 1, 0}, {MS(10), -EIO, 2, 0}, {MS(1), 30, 3, 0}, {MS(2), -ENOENT, 4, 0},
    };
    weft_task *ts[5];
    for (int i = 0; i < 5; i++)
        ts[i] = weft_spawn(delayed_result, &d[i]);
    intptr_t results[5];
    EQ(weft_join_all(ts, 5, results), -EIO); /* the first error by index, once all are done */
    EQ(results[0], 0);
    EQ(results[1], 10);
    EQ(results[2], -EIO);
    EQ(results[3], 30);
    EQ(results[4], -ENOENT);
    EQ(weft_join_all(NULL, 0, NULL), 0);
    return 0;
}

Test(wait, join_all_gives_every_result_by_index_and_the_first_error)
{
    EQ(run(join_all_main, NULL), 0);
}

static intptr_t join_all_einval_main(void *arg)
{
    (void)arg;
    weft_task *a = weft_spawn(return_arg, (void *)1), *b = weft_spawn(return_arg, (void *)2);
    weft_task *twice[3] = {a, b, a};
    EQ(weft_join_all(twice, 3, NULL), -EINVAL);
    weft_task *with_null[2] = {a, NULL};
    EQ(weft_join_all(with_null, 2, NULL), -EINVAL);
    weft_task *with_self[2] = {b, weft_self()};
    EQ(weft_join_all(with_self, 2, NULL), -EINVAL);
    EQ(weft_join_all(NULL, 1, NULL), -EINVAL);
    /* None of them was joined: both can still be, once each. */
    weft_task *both[2] = {a, b};
    intptr_t results[2];
    EQ(weft_join_all(both, 2, results), 0);
    EQ(results[0], 1);
    EQ(results[1], 2);
    return 0;
}

Test(wait, join_all_refuses_a_bad_or_repeated_handle_and_joins_none)
{
    weft_task *none[1] = {NULL};
    EQ(weft_join_all(none, 1, NULL), -EPERM);
    EQ(run(join_all_einval_main, NULL), 0);
}

struct joiner {
    weft_task *ts[3];
    intptr_t results[3];
    struct delayed d[3];
};

static intptr_t joining_all(void *arg)
{
    struct joiner *j = arg;
    return weft_join_all(j->ts, 3, j->results);
}

static intptr_t join_all_cancelled_main(void *arg)
{
    (void)arg;
    struct joiner j = {.d = {{SEC(10), 1, 0, 0}, {MS(1), 2, 1, 0}, {SEC(10), 3, 2, 0}}};
    for (int i = 0; i < 3; i++)
        j.ts[i] = weft_spawn(delayed_result, &j.d[i]);
    weft_task *outer = weft_spawn(joining_all, &j);
    EQ(weft_sleep(MS(20)), 0);
    EV_EXPECT(1);
    EQ(weft_cancel(outer), 0);
    EQ(weft_wait_for(outer, SEC(5)), -ECANCELED);
    /* The sleepers were cancelled and waited for; the one that had ended kept its result. */
    EQ(j.results[0], -ECANCELED);
    EQ(j.results[1], 2);
    EQ(j.results[2], -ECANCELED);
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    EQ(st.tasks_live, 1); /* main alone: every joined task has ended */
    return 0;
}

Test(wait, join_all_in_a_cancelled_task_cancels_and_reaps_every_task_it_names)
{
    EQ(run(join_all_cancelled_main, NULL), 0);
}

static intptr_t resolve_later(void *arg)
{
    struct resolve_later *r = arg;
    EQ(weft_sleep(r->delay_ns), 0);
    EQ(weft_future_resolve(r->f, r->value), 0);
    return 0;
}

static intptr_t wait_any_lowest_main(void *arg)
{
    (void)arg;
    weft_future *fs[4];
    for (int i = 0; i < 4; i++)
        fs[i] = weft_future_new();
    EQ(weft_future_resolve(fs[2], 20), 0);
    EQ(weft_future_resolve(fs[1], 10), 0);
    EQ(weft_wait_any(fs, 4, SEC(1)), 1);
    EQ(weft_wait_any(fs, 4, 0), 1); /* a done future is reported even with no time to wait */

    weft_future *pending[3] = {fs[0], fs[3], weft_future_new()};
    weft_task *t = weft_spawn(resolve_later, &(struct resolve_later){.f = pending[1], .delay_ns = MS(3), .value = 5});
    EQ(weft_wait_any(pending, 3, SEC(5)), 1);
    EQ(weft_await(pending[1]), 5);
    EQ(weft_join(t), 0);
    cr_assert(!weft_future_done(pending[0]) && !weft_future_done(pending[2]));
    for (int i = 0; i < 4; i++)
        weft_future_free(fs[i]);
    weft_future_free(pending[2]);
    return 0;
}

Test(wait, wait_any_returns_the_lowest_done_index)
{
    EQ(run(wait_any_lowest_main, NULL), 0);
}

static intptr_t wait_any_timeout_main(void *arg)
{
    (void)arg;
    weft_future *fs[2] = {weft_future_new(), weft_future_new()};
    uint64_t start = weft_now();
    EQ(weft_wait_any(fs, 2, MS(20)), -ETIMEDOUT);
    uint64_t elapsed = weft_now() - start;
    cr_assert(elapsed >= MS(20), "timed out after %" PRIu64 " ns, before the 20 ms timeout", elapsed);
    cr_assert(!weft_future_done(fs[0]) && !weft_future_done(fs[1]));
    /* The futures are still usable afterwards: the timed-out waiters were unhooked. */
    EQ(weft_future_resolve(fs[0], 1), 0);
    EQ(weft_wait_any(fs, 2, 0), 0);
    weft_future_free(fs[0]);
    weft_future_free(fs[1]);
    return 0;
}

Test(wait, wait_any_returns_etimedout_after_the_timeout)
{
    EQ(run(wait_any_timeout_main, NULL), 0);
}

static intptr_t wait_any_einval_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    weft_future *fs[2] = {f, NULL};
    EQ(weft_wait_any(fs, 0, MS(1)), -EINVAL);
    EQ(weft_wait_any(NULL, 1, MS(1)), -EINVAL);
    EQ(weft_wait_any(fs, 2, MS(1)), -EINVAL);
    weft_future_free(f);
    return 0;
}

Test(wait, wait_any_of_zero_or_null_futures_returns_einval)
{
    EQ(run(wait_any_einval_main, NULL), 0);
}

#define WIDE 40

static intptr_t wait_any_wide_main(void *arg)
{
    (void)arg;
    weft_future *fs[WIDE];
    for (int i = 0; i < WIDE; i++)
        fs[i] = weft_future_new();
    weft_task *t = weft_spawn(resolve_later, &(struct resolve_later){.f = fs[33], .delay_ns = MS(3), .value = 1});
    EQ(weft_wait_any(fs, WIDE, SEC(5)), 33);
    EQ(weft_join(t), 0);
    EQ(weft_future_resolve(fs[37], 1), 0);
    EQ(weft_future_resolve(fs[20], 1), 0);
    EQ(weft_wait_any(fs, WIDE, SEC(5)), 20);
    EQ(weft_wait_any(fs + 21, WIDE - 21, SEC(5)), 33 - 21);
    for (int i = 0; i < WIDE; i++)
        weft_future_free(fs[i]);
    return 0;
}

Test(wait, wait_any_handles_more_than_16_futures)
{
    EQ(run(wait_any_wide_main, NULL), 0);
}

static intptr_t wait_any_cancelled_task(void *arg)
{
    return weft_wait_any(arg, 2, SEC(10));
}

static intptr_t wait_any_cancel_main(void *arg)
{
    (void)arg;
    weft_future *fs[2] = {weft_future_new(), weft_future_new()};
    weft_task *t = weft_spawn(wait_any_cancelled_task, fs);
    weft_yield();
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    cr_assert(!weft_future_done(fs[0]) && !weft_future_done(fs[1]));
    weft_future_free(fs[0]);
    weft_future_free(fs[1]);
    return 0;
}

Test(wait, wait_any_in_a_cancelled_task_returns_ecanceled)
{
    EQ(run(wait_any_cancel_main, NULL), 0);
}

/* ---- wait_for -------------------------------------------------------------------------------------- */

static intptr_t slow_with_cleanup(void *arg)
{
    intptr_t ignore_cancel = (intptr_t)arg;
    int rc = weft_sleep(SEC(10));
    ev(rc == -ECANCELED ? 1 : 2);
    ev(3); /* cleanup */
    return ignore_cancel ? 77 : rc;
}

static intptr_t wait_for_slow_main(void *arg)
{
    weft_stats before;
    EQ(weft_stats_get(&before), 0);
    weft_task *t = weft_spawn(slow_with_cleanup, arg);
    uint64_t start = weft_now();
    intptr_t r = weft_wait_for(t, MS(20));
    uint64_t elapsed = weft_now() - start;
    ev(4);
    cr_assert(elapsed >= MS(20), "wait_for gave up after %" PRIu64 " ns, before its 20 ms", elapsed);
    /* The task saw -ECANCELED in its sleep and ran its cleanup before wait_for returned. */
    EV_EXPECT(1, 3, 4);
    weft_stats after;
    EQ(weft_stats_get(&after), 0);
    EQ(after.tasks_live, before.tasks_live); /* reaped and released */
    return r;
}

Test(wait, wait_for_a_slow_task_times_out_after_reaping_it)
{
    EQ(run(wait_for_slow_main, (void *)0), -ETIMEDOUT);
}

Test(wait, wait_for_a_task_that_ignores_the_cancel_returns_its_result)
{
    EQ(run(wait_for_slow_main, (void *)1), 77);
}

static intptr_t wait_for_fast_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(delayed_result, &(struct delayed){.delay_ns = MS(2), .result = 5, .tag = 9});
    uint64_t start = weft_now();
    EQ(weft_wait_for(t, SEC(10)), 5);
    /* It returned when the task ended, not when the 10 s ran out. */
    cr_assert(weft_now() - start < SEC(5));
    EV_EXPECT(9);
    return 0;
}

Test(wait, wait_for_a_fast_task_returns_its_value)
{
    EQ(run(wait_for_fast_main, NULL), 0);
}

static intptr_t wait_for_einval_main(void *arg)
{
    (void)arg;
    EQ(weft_wait_for(NULL, MS(1)), -EINVAL);
    EQ(weft_wait_for(weft_self(), MS(1)), -EINVAL);
    return 0;
}

Test(wait, wait_for_null_or_self_returns_einval)
{
    EQ(run(wait_for_einval_main, NULL), 0);
}

/* ---- deadlines ------------------------------------------------------------------------------------- */

static intptr_t deadline_sleep_main(void *arg)
{
    (void)arg;
    uint64_t start = weft_now();
    weft_deadline_push(start + MS(30));
    EQ(weft_sleep(SEC(10)), -ETIMEDOUT);
    uint64_t elapsed = weft_now() - start;
    cr_assert(elapsed >= MS(30), "the deadline fired after %" PRIu64 " ns, before its 30 ms", elapsed);
    cr_assert(elapsed < SEC(5), "the sleep ran past its deadline");
    EQ(weft_nop(), -ETIMEDOUT); /* still past the deadline */
    weft_deadline_pop();
    EQ(weft_sleep(MS(1)), 0);
    EQ(weft_nop(), 0);
    return 0;
}

Test(wait, sleep_under_a_deadline_returns_etimedout_at_the_deadline)
{
    EQ(run(deadline_sleep_main, NULL), 0);
}

static intptr_t nested_deadline_main(void *arg)
{
    (void)arg;
    uint64_t start = weft_now();
    weft_deadline_push(start + MS(300));
    weft_deadline_push(start + MS(20));
    EQ(weft_sleep(SEC(10)), -ETIMEDOUT);
    uint64_t inner = weft_now() - start;
    cr_assert(inner >= MS(20) && inner < MS(300), "inner deadline fired after %" PRIu64 " ns", inner);

    weft_deadline_pop(); /* the outer deadline is in force again */
    EQ(weft_sleep(SEC(10)), -ETIMEDOUT);
    uint64_t outer = weft_now() - start;
    cr_assert(outer >= MS(300) && outer < SEC(5), "outer deadline fired after %" PRIu64 " ns", outer);

    /* A later deadline pushed inside an earlier one does not extend it. */
    uint64_t now = weft_now();
    weft_deadline_pop();
    weft_deadline_push(now + MS(20));
    weft_deadline_push(now + SEC(10));
    EQ(weft_sleep(SEC(10)), -ETIMEDOUT);
    uint64_t wider = weft_now() - now;
    cr_assert(wider >= MS(20) && wider < SEC(5), "the earlier deadline fired after %" PRIu64 " ns", wider);
    weft_deadline_pop();
    weft_deadline_pop();
    EQ(weft_sleep(MS(1)), 0);
    return 0;
}

Test(wait, nested_deadlines_earliest_wins_and_pop_restores_the_outer)
{
    EQ(run(nested_deadline_main, NULL), 0);
}

static intptr_t passed_deadline_main(void *arg)
{
    (void)arg;
    weft_task *bystander = weft_spawn(delayed_result, &(struct delayed){.delay_ns = 0, .result = 6, .tag = 50});
    weft_future *never = weft_future_new();
    uint64_t start = weft_now();
    weft_deadline_push(start - 1);
    EQ(weft_sleep(SEC(10)), -ETIMEDOUT);
    EQ(weft_nop(), -ETIMEDOUT);
    EQ(weft_await(never), -ETIMEDOUT);
    weft_future *fs[1] = {never};
    EQ(weft_wait_any(fs, 1, SEC(10)), -ETIMEDOUT);
    EQ(weft_gather(fs, 1, NULL), -ETIMEDOUT);
    /* None of those calls parked, so the bystander spawned before them has not started yet. */
    EV_EXPECT();
    cr_assert(weft_now() - start < SEC(5));
    weft_deadline_pop();
    EQ(weft_join(bystander), 6);
    EV_EXPECT(50);
    weft_future_free(never);
    return 0;
}

Test(wait, deadline_already_passed_returns_etimedout_without_parking)
{
    EQ(run(passed_deadline_main, NULL), 0);
}

static intptr_t join_deadline_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(slow_with_cleanup, (void *)0);
    weft_deadline_push(weft_now() + MS(20));
    intptr_t r = weft_join(t);
    ev(4);
    weft_deadline_pop();
    /* The joined task was cancelled by the joiner's deadline and ended before join returned. */
    EV_EXPECT(1, 3, 4);
    return r;
}

Test(wait, join_under_a_deadline_cancels_the_joined_task_and_returns_etimedout)
{
    EQ(run(join_deadline_main, NULL), -ETIMEDOUT);
}

/* ---- shield ---------------------------------------------------------------------------------------- */

struct shield_case {
    weft_task *inner;
    intptr_t rc;
};

static intptr_t shielding_task(void *arg)
{
    struct shield_case *c = arg;
    c->rc = weft_shield(c->inner);
    return c->rc;
}

static intptr_t shield_cancel_main(void *arg)
{
    (void)arg;
    struct delayed d = {.delay_ns = MS(20), .result = 7, .tag = 1};
    struct shield_case c = {.inner = weft_spawn(delayed_result, &d), .rc = INTPTR_MIN};
    weft_task *outer = weft_spawn(shielding_task, &c);
    weft_yield();
    EQ(weft_cancel(outer), 0);
    EQ(weft_join(outer), -ECANCELED);
    EQ(c.rc, -ECANCELED);
    EV_EXPECT(); /* the inner task has not ended yet ... */
    EQ(weft_sleep(MS(60)), 0);
    EV_EXPECT(1); /* ... and it was not cancelled: it finished its sleep */
    return 0;
}

Test(wait, cancelling_the_shielding_task_leaves_the_inner_task_running_to_its_end)
{
    EQ(run(shield_cancel_main, NULL), 0);
}

static intptr_t shield_result_main(void *arg)
{
    (void)arg;
    struct delayed d = {.delay_ns = MS(1), .result = 42, .tag = 1};
    EQ(weft_shield(weft_spawn(delayed_result, &d)), 42);
    /* A task already ended: its result at once, even for a cancelled caller. */
    struct delayed e = {.delay_ns = 0, .result = -EIO, .tag = 2};
    weft_task *t = weft_spawn(delayed_result, &e);
    size_t seen = ev_len;
    while (ev_len == seen) /* its tag, then its end with no suspension between: it has ended */
        settle();
    EQ(weft_cancel(weft_self()), 0);
    EQ(weft_shield(t), -EIO);
    EQ(weft_shield(NULL), -EINVAL);
    EQ(weft_shield(weft_self()), -EINVAL);
    return 0;
}

Test(wait, shield_returns_the_inner_result_and_releases_it_and_refuses_null_or_self)
{
    EQ(run(shield_result_main, NULL), 0);
}

static intptr_t shield_deadline_main(void *arg)
{
    (void)arg;
    struct delayed d = {.delay_ns = MS(30), .result = -EIO, .tag = 1};
    weft_task *inner = weft_spawn(delayed_result, &d);
    weft_deadline_push(weft_now() + MS(5));
    EQ(weft_shield(inner), -ETIMEDOUT);
    weft_deadline_pop();
    stderr_capture_begin();
    EQ(weft_sleep(MS(60)), 0);
    const char *err = stderr_capture_end();
    EV_EXPECT(1);
    /* Detached when the shield let go of it: its failure is reported, not lost. */
    CAPTURED_HAS(err, "Input/output error");
    return 0;
}

Test(wait, shield_past_a_deadline_gives_etimedout_and_the_inner_task_failure_is_still_reported)
{
    EQ(run(shield_deadline_main, NULL), 0);
}

static void shield_outside_cb(void *arg)
{
    (void)arg;
    EQ(weft_shield(NULL), -EPERM);
    weft_future *f = weft_future_new();
    weft_as_completed *ac = weft_as_completed_new(&f, 1);
    cr_assert(ac != NULL);
    EQ(weft_as_completed_next(ac, NULL), -EPERM);
    weft_as_completed_free(ac);
    weft_future_free(f);
}

Test(wait, shield_and_as_completed_next_outside_a_task_give_eperm)
{
    run_in_callback(shield_outside_cb, NULL);
    NULL_WITH_ERRNO(weft_as_completed_new(NULL, 0), EPERM); /* no loop at all */
}

/* ---- as_completed ---------------------------------------------------------------------------------- */

/* Resolves futures[order[i]] with 100 + order[i], one a loop turn, in the order given. */
struct resolver {
    weft_future **fs;
    const int *order;
    size_t n;
};

static intptr_t resolve_in_order(void *arg)
{
    struct resolver *r = arg;
    for (size_t i = 0; i < r->n; i++) {
        EQ(weft_sleep(MS(1)), 0);
        EQ(weft_future_resolve(r->fs[r->order[i]], 100 + r->order[i]), 0);
    }
    return 0;
}

static intptr_t as_completed_order_main(void *arg)
{
    (void)arg;
    enum { N = 5 };
    weft_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = weft_future_new();
    EQ(weft_future_resolve(fs[3], 103), 0); /* done before: comes first */
    weft_as_completed *ac = weft_as_completed_new(fs, N);
    cr_assert(ac != NULL);
    static const int order[] = {4, 0, 2, 1};
    struct resolver r = {fs, order, 4};
    weft_task *t = weft_spawn(resolve_in_order, &r);
    int got[N];
    for (int i = 0; i < N; i++) {
        intptr_t result = 0;
        ssize_t idx = weft_as_completed_next(ac, &result);
        cr_assert(idx >= 0 && idx < N, "next: %zd", idx);
        EQ(result, 100 + idx);
        got[i] = (int)idx;
        weft_future_free(fs[idx]); /* handed out: may go at once */
    }
    EQ(got[0], 3);
    for (int i = 0; i < 4; i++)
        EQ(got[i + 1], order[i]);
    EQ(weft_as_completed_next(ac, NULL), -EPIPE);
    EQ(weft_as_completed_next(ac, NULL), -EPIPE);
    weft_as_completed_free(ac);
    EQ(weft_join(t), 0);
    return 0;
}

Test(wait, as_completed_hands_out_futures_in_completion_order_then_epipe)
{
    EQ(run(as_completed_order_main, NULL), 0);
}

static intptr_t as_completed_next_task(void *arg)
{
    intptr_t result;
    ssize_t idx = weft_as_completed_next(arg, &result);
    return idx < 0 ? idx : idx * 1000 + result;
}

static intptr_t as_completed_interrupt_main(void *arg)
{
    (void)arg;
    weft_future *fs[2] = {weft_future_new(), weft_future_new()};
    weft_as_completed *ac = weft_as_completed_new(fs, 2);
    /* A timeout (the deadline) and a cancel hand nothing out ... */
    weft_deadline_push(weft_now() + MS(5));
    EQ(weft_as_completed_next(ac, NULL), -ETIMEDOUT);
    weft_deadline_pop();
    weft_task *t = weft_spawn(as_completed_next_task, ac);
    weft_yield();
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    /* ... so the future completing next still comes with the next call. */
    EQ(weft_future_resolve(fs[1], 5), 0);
    t = weft_spawn(as_completed_next_task, ac);
    EQ(weft_join(t), 1005);
    /* Freed with a callback queued but not run, and with one still pending: neither is a leak or a
     * use after free (ASan says so). */
    EQ(weft_future_resolve(fs[0], 6), 0);
    weft_as_completed_free(ac);
    settle();
    weft_future *g[2] = {weft_future_new(), weft_future_new()};
    ac = weft_as_completed_new(g, 2);
    weft_as_completed_free(ac);
    EQ(weft_future_resolve(g[0], 1), 0);
    settle();
    for (int i = 0; i < 2; i++) {
        weft_future_free(fs[i]);
        weft_future_free(g[i]);
    }
    /* Nothing to hand out: -EPIPE at once. */
    ac = weft_as_completed_new(NULL, 0);
    cr_assert(ac != NULL);
    EQ(weft_as_completed_next(ac, NULL), -EPIPE);
    weft_as_completed_free(ac);
    weft_future *bad[2] = {weft_future_new(), NULL};
    NULL_WITH_ERRNO(weft_as_completed_new(bad, 2), EINVAL);
    weft_future_free(bad[0]);
    EQ(weft_as_completed_next(NULL, NULL), -EINVAL);
    return 0;
}

Test(wait, as_completed_next_cancelled_or_timed_out_skips_nothing_and_free_is_safe_at_any_point)
{
    EQ(run(as_completed_interrupt_main, NULL), 0);
}

/* The tasks end in the order their gates open (1, 2, then 0), one at a time: no clock decides it. */
static intptr_t as_completed_tasks_main(void *arg)
{
    (void)arg;
    weft_future *gates[3];
    struct gated g[3];
    weft_task *ts[3];
    weft_future *fs[3];
    for (int i = 0; i < 3; i++) {
        gates[i] = weft_future_new();
        cr_assert(gates[i] != NULL);
        g[i] = (struct gated){.gate = gates[i], .index = i};
        ts[i] = weft_spawn(gated_result, &g[i]);
        fs[i] = weft_task_future(ts[i]);
    }
    weft_as_completed *ac = weft_as_completed_new(fs, 3);
    cr_assert(ac != NULL);
    intptr_t r;
    EQ(weft_future_resolve(gates[1], -EIO), 0); /* task 1 fails */
    EQ(weft_as_completed_next(ac, &r), 1);
    EQ(r, -EIO);
    EQ(weft_future_resolve(gates[2], 0), 0);
    EQ(weft_as_completed_next(ac, &r), 2);
    EQ(r, 20);
    EQ(weft_future_resolve(gates[0], 0), 0);
    EQ(weft_as_completed_next(ac, &r), 0);
    EQ(r, 0);
    EQ(weft_as_completed_next(ac, &r), -EPIPE); /* all handed out */
    EV_EXPECT(2, 0); /* the two that succeeded, in the order they ended */
    weft_as_completed_free(ac);
    EQ(weft_join_all(ts, 3, NULL), -EIO);
    for (int i = 0; i < 3; i++)
        weft_future_free(gates[i]);
    return 0;
}

Test(wait, as_completed_over_tasks_follows_the_order_they_end)
{
    EQ(run(as_completed_tasks_main, NULL), 0);
}
