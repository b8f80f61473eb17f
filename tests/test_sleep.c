/*
 * Timers: concurrent sleeps overlap, wake in deadline order, can be cancelled, and stay correct with a
 * hundred thousand of them.
 */
#include "common.h"

TestSuite(sleep, .timeout = 60);

struct sleeper {
    uint64_t ns;
    int tag;
    int rc;
    uint64_t deadline;   /* when the sleep began plus ns */
    uint64_t woke_after; /* ns from the start of the sleep to its return */
};

static intptr_t sleeper(void *arg)
{
    struct sleeper *s = arg;
    uint64_t start = weft_now();
    s->deadline = start + s->ns;
    s->rc = weft_sleep(s->ns);
    s->woke_after = weft_now() - start;
    ev(s->tag);
    return s->rc;
}

static intptr_t five_sleeps_main(void *arg)
{
    (void)arg;
    struct sleeper s[5];
    weft_task *ts[5];
    uint64_t start = weft_now();
    for (int i = 0; i < 5; i++) {
        s[i] = (struct sleeper){.ns = MS(100), .tag = i};
        ts[i] = weft_spawn(sleeper, &s[i]);
    }
    for (int i = 0; i < 5; i++)
        EQ(weft_join(ts[i]), 0);
    uint64_t elapsed = weft_now() - start;
    for (int i = 0; i < 5; i++)
        cr_assert(s[i].woke_after >= MS(100), "sleep %d returned after %" PRIu64 " ns", i, s[i].woke_after);
    cr_assert(elapsed >= MS(100), "five 100 ms sleeps took %" PRIu64 " ns", elapsed);
    /* Concurrent, not one after another: every sleep began before the first one ended (serialised,
     * each would begin only once the one before had ended). Said by the order of events, not by a
     * bound on the time, which a loaded machine can stretch as it likes. */
    uint64_t last_begun = 0, first_ended = UINT64_MAX;
    for (int i = 0; i < 5; i++) {
        uint64_t begun = s[i].deadline - s[i].ns;
        if (begun > last_begun)
            last_begun = begun;
        if (begun + s[i].woke_after < first_ended)
            first_ended = begun + s[i].woke_after;
    }
    cr_assert(last_begun < first_ended, "a sleep began %" PRIu64 " ns after another had ended: serialised",
              last_begun - first_ended);
    return 0;
}

Test(sleep, five_concurrent_100ms_sleeps_take_about_100ms_not_500)
{
    EQ(run(five_sleeps_main, NULL), 0);
}

static intptr_t deadline_order_main(void *arg)
{
    (void)arg;
    static const int ms[] = {30, 10, 20, 50, 40};
    struct sleeper s[5];
    weft_task *ts[5];
    for (int i = 0; i < 5; i++) {
        s[i] = (struct sleeper){.ns = MS(ms[i]), .tag = ms[i]};
        ts[i] = weft_spawn(sleeper, &s[i]);
    }
    for (int i = 0; i < 5; i++)
        EQ(weft_join(ts[i]), 0);
    for (int i = 0; i < 5; i++)
        cr_assert(s[i].woke_after >= s[i].ns, "a %d ms sleep returned after %" PRIu64 " ns", ms[i],
                  s[i].woke_after);
    /* They wake in the order of their deadlines. The tasks start microseconds apart, so that is the
     * order of their durations, 10 20 30 40 50; it is computed from the real deadlines so that a
     * machine stalled between two starts is not mistaken for a timer bug. */
    int want[5], order[5] = {0, 1, 2, 3, 4};
    for (int i = 1; i < 5; i++)
        for (int j = i; j > 0 && s[order[j]].deadline < s[order[j - 1]].deadline; j--) {
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    for (int i = 0; i < 5; i++)
        want[i] = ms[order[i]];
    ev_expect_(want, 5);
    return 0;
}

Test(sleep, sleeps_wake_in_deadline_order)
{
    EQ(run(deadline_order_main, NULL), 0);
}

static intptr_t cancel_sleep_main(void *arg)
{
    (void)arg;
    struct sleeper s = {.ns = SEC(20), .tag = 1};
    weft_task *t = weft_spawn(sleeper, &s);
    weft_yield();
    uint64_t start = weft_now();
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    EQ(s.rc, -ECANCELED);
    /* Promptly: at the next loop turn, not when the 20 s timer would have fired. */
    cr_assert(weft_now() - start < SEC(5), "the cancelled sleep took %" PRIu64 " ns to return",
              weft_now() - start);
    return 0;
}

Test(sleep, cancel_during_sleep_returns_ecanceled_promptly)
{
    EQ(run(cancel_sleep_main, NULL), 0);
}

static intptr_t cancel_one_of_many_main(void *arg)
{
    (void)arg;
    /* Cancelling one armed timer must leave the others armed and ordered. */
    static const int ms[] = {100, 20, 300, 200, 150};
    struct sleeper s[5];
    weft_task *ts[5];
    for (int i = 0; i < 5; i++) {
        s[i] = (struct sleeper){.ns = MS(ms[i]), .tag = ms[i]};
        ts[i] = weft_spawn(sleeper, &s[i]);
    }
    weft_yield();
    EQ(weft_cancel(ts[3]), 0); /* the 200 ms one */
    EQ(weft_cancel(ts[2]), 0); /* the 300 ms one, last in the heap */
    for (int i = 0; i < 5; i++)
        EQ(weft_join(ts[i]), (i == 2 || i == 3) ? -ECANCELED : 0);
    return 0;
}

Test(sleep, cancelling_some_sleeps_leaves_the_others_in_order)
{
    EQ(run(cancel_one_of_many_main, NULL), 0);
    /* The cancelled ones record at once (they wake first); the rest wake in deadline order. */
    EQ(ev_len, 5);
    int order[3], n = 0;
    for (size_t i = 0; i < ev_len; i++)
        if (ev_log[i] != 200 && ev_log[i] != 300)
            order[n++] = ev_log[i];
    EQ(n, 3);
    EQ(order[0], 20);
    EQ(order[1], 100);
    EQ(order[2], 150);
}

static intptr_t sleep_zero_main(void *arg)
{
    (void)arg;
    EQ(weft_sleep(0), 0);
    uint64_t start = weft_now();
    EQ(weft_sleep(MS(5)), 0);
    cr_assert(weft_now() - start >= MS(5));
    return 0;
}

Test(sleep, sleep_zero_returns_zero_and_sleep_lasts_at_least_its_duration)
{
    EQ(run(sleep_zero_main, NULL), 0);
}

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/*
 * How many sleep at once. TSan gives every fiber a context that counts against its limit of 8128 threads
 * alive at once ("ThreadSanitizer: Thread limit (8128 threads) exceeded. Dying."), and memcheck looks up
 * the stack it is on in a list of every registered stack at each switch (time grows with the square of
 * the count: 100,000 took over 550 s), so both run fewer; the release and ASan builds run them all.
 */
static uint32_t sleepers(void)
{
#if defined(__SANITIZE_THREAD__)
    return 5000;
#else
    return RUNNING_ON_VALGRIND ? 5000 : 100000;
#endif
}

static uint32_t woke_count;

static intptr_t counting_sleeper(void *arg)
{
    uint64_t ns = (uint64_t)(uintptr_t)arg;
    int rc = weft_sleep(ns);
    if (rc == 0)
        woke_count++;
    return rc;
}

static intptr_t many_sleepers_main(void *arg)
{
    (void)arg;
    const uint32_t n = sleepers();
    weft_task **ts = malloc(sizeof *ts * n);
    cr_assert(ts != NULL);
    for (uint32_t i = 0; i < n; i++) {
        /* Deadlines spread over 1..50 ms in a scrambled order, so the heap really sorts. */
        uint64_t ns = MS(1) + (uint64_t)((i * 2654435761u) % 50u) * MS(1);
        ts[i] = weft_spawn(counting_sleeper, (void *)(uintptr_t)ns);
        cr_assert(ts[i] != NULL, "spawn %u: %s", i, strerror(errno));
    }
    for (uint32_t i = 0; i < n; i++) {
        intptr_t r = weft_join(ts[i]);
        if (r != 0)
            cr_assert_fail("task %u: join returned %jd (%s)", i, (intmax_t)r, res_name(r));
    }
    free(ts);
    EQ(woke_count, n);
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    cr_assert(st.tasks_peak >= n, "tasks_peak %" PRIu64 ": the sleepers were not alive together",
              st.tasks_peak);
    return 0;
}

Test(sleep, hundred_thousand_sleeping_tasks_all_wake_and_are_joined)
{
    EQ(run(many_sleepers_main, NULL), 0);
}
