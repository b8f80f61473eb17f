/*
 * The executor: thousands of offloaded jobs each land in their own future, blocking work offloaded
 * keeps the loop turning (the seeds' ticker) while the same work inline stops it, cancellation and
 * deadlines of queued and running jobs, bounded queues that make offloaders wait and lose nothing,
 * shutting an executor down with work still queued, freeing _async futures, and the errors of misuse.
 */
#include "common.h"

TestSuite(exec, .timeout = 60);

/* Runs main_fn(arg) on a loop made with cfg, asserts it started, returns main's result. */
static intptr_t run_with(const weft_config *cfg, weft_fn main_fn, void *arg)
{
    weft_loop *l = weft_loop_new(cfg);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    intptr_t result = INTPTR_MIN;
    int rc = weft_loop_run(l, main_fn, arg, &result);
    weft_loop_free(l);
    cr_assert(rc == 0, "weft_loop_run: got %d (%s), want 0", rc, res_name(rc));
    return result;
}

/* Inside a task: sleeps 1 ms at a time until *flag is set by another thread (bounded: 10 s). */
static void wait_flag(atomic_int *flag)
{
    for (int i = 0; !atomic_load(flag); i++) {
        cr_assert(i < 10000, "flag never set");
        EQ(weft_sleep(MS(1)), 0);
    }
}

/* What the jobs below share with the test, across threads. */
struct job_state {
    atomic_int started;  /* the job's fn began */
    atomic_int finished; /* the job's fn is about to return */
    atomic_int open;     /* gated_job returns once this is set */
    atomic_int never_ran; /* never_job ran (it must not) */
    atomic_int finished_seen_on_resume; /* what the offloading task saw when it resumed */
    useconds_t sleep_us;
};

/* Blocks its worker thread until the test opens the gate; returns 11. */
static intptr_t gated_job(void *arg)
{
    struct job_state *s = arg;
    atomic_store(&s->started, 1);
    while (!atomic_load(&s->open))
        usleep(200);
    atomic_store(&s->finished, 1);
    return 11;
}

/* Sleeps sleep_us on its worker thread; returns 33. */
static intptr_t sleeping_job(void *arg)
{
    struct job_state *s = arg;
    atomic_store(&s->started, 1);
    usleep(s->sleep_us);
    atomic_store(&s->finished, 1);
    return 33;
}

/* A job whose running is the failure the test guards against. */
static intptr_t never_job(void *arg)
{
    struct job_state *s = arg;
    atomic_fetch_add(&s->never_ran, 1);
    return 22;
}

struct offload_args {
    weft_executor *ex; /* NULL: the default executor */
    weft_fn fn;
    void *arg;
    struct job_state *state; /* if set: finished_seen_on_resume is recorded */
    uint64_t deadline_in;    /* if set: a deadline this far from the call */
};

/* A task body: offloads fn(arg) and returns what the offload returned. */
static intptr_t offload_task(void *arg)
{
    struct offload_args *o = arg;
    if (o->deadline_in)
        weft_deadline_push(weft_now() + o->deadline_in);
    intptr_t r = o->ex ? weft_offload_on(o->ex, o->fn, o->arg) : weft_offload(o->fn, o->arg);
    if (o->state)
        atomic_store(&o->state->finished_seen_on_resume, atomic_load(&o->state->finished));
    if (o->deadline_in)
        weft_deadline_pop();
    return r;
}

/* ---- many jobs --------------------------------------------------------------------------------------- */

#define MANY_JOBS 5000
static atomic_int many_ran[MANY_JOBS];

static intptr_t index_job(void *arg)
{
    intptr_t i = (intptr_t)arg;
    atomic_fetch_add(&many_ran[i], 1);
    return i * 3 + 1;
}

static intptr_t many_jobs_main(void *arg)
{
    (void)arg;
    weft_future **fs = calloc(MANY_JOBS, sizeof *fs);
    intptr_t *results = calloc(MANY_JOBS, sizeof *results);
    cr_assert(fs && results);
    for (intptr_t i = 0; i < MANY_JOBS; i++) {
        fs[i] = weft_offload_async(index_job, (void *)i);
        cr_assert(fs[i] != NULL, "weft_offload_async #%jd: %s", (intmax_t)i, strerror(errno));
        results[i] = -1;
    }
    EQ(weft_gather(fs, MANY_JOBS, results), 0);
    for (intptr_t i = 0; i < MANY_JOBS; i++) {
        cr_assert(results[i] == i * 3 + 1, "job %jd: got %jd, want %jd", (intmax_t)i, (intmax_t)results[i],
                  (intmax_t)(i * 3 + 1));
        cr_assert(atomic_load(&many_ran[i]) == 1, "job %jd ran %d times", (intmax_t)i, atomic_load(&many_ran[i]));
        weft_future_free(fs[i]);
    }
    free(fs);
    free(results);
    return 0;
}

Test(exec, five_thousand_async_jobs_gathered_each_result_in_its_own_future)
{
    /* A queue deep enough that no job is refused: this test is about results, not about room. */
    weft_config cfg = {.executor_threads = 4, .executor_queue = 2 * MANY_JOBS};
    EQ(run_with(&cfg, many_jobs_main, NULL), 0);
}

static intptr_t many_offloaders_task(void *arg)
{
    intptr_t i = (intptr_t)arg;
    return weft_offload(index_job, (void *)i);
}

static intptr_t many_offloaders_main(void *arg)
{
    (void)arg;
    enum { N = 1000 };
    weft_task **ts = calloc(N, sizeof *ts);
    cr_assert(ts);
    for (intptr_t i = 0; i < N; i++)
        ts[i] = weft_spawn(many_offloaders_task, (void *)i);
    for (intptr_t i = 0; i < N; i++) {
        EQ(weft_join(ts[i]), i * 3 + 1);
        EQ(atomic_load(&many_ran[i]), 1);
    }
    free(ts);
    return 0;
}

Test(exec, a_thousand_tasks_offloading_at_once_each_get_their_own_result)
{
    /* The default queue of the default executor: tasks beyond its room wait for it. */
    EQ(run(many_offloaders_main, NULL), 0);
}

/* ---- the seeds' ticker: blocking work offloaded lets the loop turn, inline it does not ------------ */

static intptr_t ticker(void *arg)
{
    int *ticks = arg;
    for (;;) {
        if (weft_sleep(MS(1)) < 0)
            return 0;
        (*ticks)++;
    }
}

/* Sleeps until the ticker has ticked at least `at_least` times in all (bounded: 10 s). */
static void wait_ticks(const int *ticks, int at_least)
{
    for (int i = 0; *ticks < at_least; i++) {
        cr_assert(i < 10000, "the ticker ticked only %d times, want %d", *ticks, at_least);
        EQ(weft_sleep(MS(1)), 0);
    }
}

static intptr_t block_150ms(void *arg)
{
    (void)arg;
    usleep(150 * 1000);
    return 150;
}

static intptr_t ticker_offload_main(void *arg)
{
    (void)arg;
    int ticks = 0;
    weft_task *t = weft_spawn_named("ticker", ticker, &ticks);
    wait_ticks(&ticks, 2);
    int before = ticks;
    uint64_t t0 = weft_now();
    EQ(weft_offload(block_150ms, NULL), 150);
    uint64_t took = weft_now() - t0;
    int during = ticks - before;
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), 0);
    cr_assert(took >= MS(150), "the offloaded call took %" PRIu64 " ns, less than its 150 ms sleep", took);
    /* A loop blocked by the call would tick once at most; a free one about 150 times, or a third of
     * that on a loaded machine (37 was seen under tests/run): 10 tells the two apart with room. */
    cr_assert(during >= 10, "the 1 ms ticker ticked %d times during a 150 ms offloaded call, want >= 10", during);
    return 0;
}

Test(exec, ticker_keeps_ticking_while_a_blocking_call_runs_offloaded)
{
    EQ(run(ticker_offload_main, NULL), 0);
}

static intptr_t ticker_inline_main(void *arg)
{
    (void)arg;
    int ticks = 0;
    weft_task *t = weft_spawn_named("ticker", ticker, &ticks);
    wait_ticks(&ticks, 2);
    int before = ticks;
    EQ(block_150ms(NULL), 150); /* the mistake the executor exists for: blocking on the loop */
    int during = ticks - before;
    EQ(during, 0);
    wait_ticks(&ticks, before + 2); /* and it ticks again once the loop turns */
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), 0);
    return 0;
}

Test(exec, ticker_stops_while_the_same_blocking_call_runs_inline_on_the_loop)
{
    /* No watchdog: blocking the loop is what this test does on purpose. */
    weft_config cfg = {.slow_task_ns = UINT64_MAX};
    EQ(run_with(&cfg, ticker_inline_main, NULL), 0);
}

/* ---- cancellation and deadlines -------------------------------------------------------------------- */

static intptr_t cancel_queued_main(void *arg)
{
    (void)arg;
    struct job_state s = {0};
    weft_executor *ex = weft_executor_new(1);
    cr_assert(ex != NULL);
    struct offload_args busy = {.ex = ex, .fn = gated_job, .arg = &s};
    struct offload_args queued = {.ex = ex, .fn = never_job, .arg = &s};
    weft_task *a = weft_spawn(offload_task, &busy);
    wait_flag(&s.started); /* the only worker is busy: what comes next stays queued */
    weft_task *b = weft_spawn(offload_task, &queued);
    settle();
    cr_assert(!weft_future_done(weft_task_future(b)), "the queued offload returned before being cancelled");
    EQ(weft_cancel(b), 0);
    EQ(weft_join(b), -ECANCELED);
    /* At once: the worker is still busy with the first job, which has not been let go. */
    EQ(atomic_load(&s.finished), 0);
    atomic_store(&s.open, 1);
    EQ(weft_join(a), 11);
    settle();
    weft_executor_free(ex);
    EQ(atomic_load(&s.never_ran), 0);
    return 0;
}

Test(exec, cancelling_a_queued_offload_returns_ecanceled_at_once_and_fn_never_runs)
{
    EQ(run(cancel_queued_main, NULL), 0);
}

static intptr_t cancel_running_main(void *arg)
{
    (void)arg;
    struct job_state s = {.sleep_us = 100 * 1000};
    struct offload_args o = {.fn = sleeping_job, .arg = &s, .state = &s};
    weft_task *t = weft_spawn(offload_task, &o);
    wait_flag(&s.started);
    EQ(weft_cancel(t), 0);
    settle();
    cr_assert(!weft_future_done(weft_task_future(t)) || atomic_load(&s.finished),
              "the offloading task resumed while fn was still running");
    EQ(weft_join(t), -ECANCELED);
    EQ(atomic_load(&s.finished_seen_on_resume), 1);
    return 0;
}

Test(exec, cancelling_a_running_offload_waits_for_fn_to_return_then_gives_ecanceled)
{
    EQ(run(cancel_running_main, NULL), 0);
}

static intptr_t deadline_running_main(void *arg)
{
    (void)arg;
    struct job_state s = {0};
    /* Generous, so the job has surely started before it passes. */
    struct offload_args o = {.fn = gated_job, .arg = &s, .state = &s, .deadline_in = MS(200)};
    uint64_t t0 = weft_now();
    weft_task *t = weft_spawn(offload_task, &o);
    wait_flag(&s.started);
    uint64_t past = t0 + MS(250), now = weft_now();
    if (now < past)
        EQ(weft_sleep(past - now), 0);
    /* The deadline has passed but fn is still running: the task stays parked. */
    cr_assert(!weft_future_done(weft_task_future(t)), "the offloading task resumed while fn was still running");
    atomic_store(&s.open, 1);
    EQ(weft_join(t), -ETIMEDOUT);
    EQ(atomic_load(&s.finished_seen_on_resume), 1);
    return 0;
}

Test(exec, deadline_passing_on_a_running_offload_gives_etimedout_after_fn_returned)
{
    EQ(run(deadline_running_main, NULL), 0);
}

static intptr_t deadline_queued_main(void *arg)
{
    (void)arg;
    struct job_state s = {0};
    weft_executor *ex = weft_executor_new(1);
    cr_assert(ex != NULL);
    struct offload_args busy = {.ex = ex, .fn = gated_job, .arg = &s};
    struct offload_args queued = {.ex = ex, .fn = never_job, .arg = &s, .deadline_in = MS(20)};
    weft_task *a = weft_spawn(offload_task, &busy);
    wait_flag(&s.started);
    uint64_t t0 = weft_now();
    weft_task *b = weft_spawn(offload_task, &queued);
    EQ(weft_join(b), -ETIMEDOUT);
    cr_assert(weft_now() - t0 >= MS(20), "timed out before its deadline");
    EQ(atomic_load(&s.finished), 0); /* while the worker was still busy */
    atomic_store(&s.open, 1);
    EQ(weft_join(a), 11);
    weft_executor_free(ex);
    EQ(atomic_load(&s.never_ran), 0);
    return 0;
}

Test(exec, deadline_passing_on_a_queued_offload_gives_etimedout_and_fn_never_runs)
{
    EQ(run(deadline_queued_main, NULL), 0);
}

static intptr_t cancelled_before_main(void *arg)
{
    struct job_state *s = arg;
    EQ(weft_cancel(weft_self()), 0);
    EQ(weft_offload(never_job, s), -ECANCELED);
    return 0;
}

Test(exec, offload_by_an_already_cancelled_task_returns_ecanceled_without_running_fn)
{
    struct job_state s = {0};
    EQ(run(cancelled_before_main, &s), 0);
    EQ(atomic_load(&s.never_ran), 0);
}

/* ---- bounded queues -------------------------------------------------------------------------------- */

#define OFFLOADERS 40
static atomic_int counted_runs[OFFLOADERS];
static struct job_state counted_gate;

/* Job i: the first one waits at the gate; each counts its runs and returns i * 7 + 1. */
static intptr_t counted_job(void *arg)
{
    intptr_t i = (intptr_t)arg;
    if (i == 0)
        gated_job(&counted_gate);
    else
        usleep(200);
    atomic_fetch_add(&counted_runs[i], 1);
    return i * 7 + 1;
}

struct counted_args {
    weft_executor *ex;
    intptr_t index;
};

static intptr_t counted_offloader(void *arg)
{
    struct counted_args *c = arg;
    return weft_offload_on(c->ex, counted_job, (void *)c->index);
}

static intptr_t full_queue_main(void *arg)
{
    (void)arg;
    weft_executor *ex = weft_executor_new_bounded(1, 2);
    cr_assert(ex != NULL);
    struct counted_args args[OFFLOADERS];
    weft_task *ts[OFFLOADERS];
    args[0] = (struct counted_args){ex, 0};
    ts[0] = weft_spawn(counted_offloader, &args[0]);
    wait_flag(&counted_gate.started);
    for (int i = 1; i < OFFLOADERS; i++) {
        args[i] = (struct counted_args){ex, i};
        ts[i] = weft_spawn(counted_offloader, &args[i]);
    }
    for (int k = 0; k < 5; k++)
        settle();
    /* One job runs, two are queued, 37 tasks wait for room: none was turned away. */
    for (int i = 0; i < OFFLOADERS; i++)
        cr_assert(!weft_future_done(weft_task_future(ts[i])), "offloader %d returned while the queue was full", i);
    for (int i = 1; i < OFFLOADERS; i++)
        EQ(atomic_load(&counted_runs[i]), 0);
    atomic_store(&counted_gate.open, 1);
    for (int i = 0; i < OFFLOADERS; i++) {
        cr_assert(weft_join(ts[i]) == i * 7 + 1, "offloader %d got the wrong result", i);
        cr_assert(atomic_load(&counted_runs[i]) == 1, "job %d ran %d times", i, atomic_load(&counted_runs[i]));
    }
    weft_executor_free(ex);
    return 0;
}

Test(exec, full_bounded_queue_makes_offloaders_wait_and_loses_no_job)
{
    EQ(run(full_queue_main, NULL), 0);
}

static intptr_t cancel_room_waiter_main(void *arg)
{
    (void)arg;
    weft_executor *ex = weft_executor_new_bounded(1, 1);
    cr_assert(ex != NULL);
    /* 0 runs (gated), 1 is queued, 2, 3 and 4 wait for room; 2 and 3 are cancelled while waiting. */
    struct counted_args args[5];
    weft_task *ts[5];
    args[0] = (struct counted_args){ex, 0};
    ts[0] = weft_spawn(counted_offloader, &args[0]);
    wait_flag(&counted_gate.started);
    for (int i = 1; i < 5; i++) {
        args[i] = (struct counted_args){ex, i};
        ts[i] = weft_spawn(counted_offloader, &args[i]);
    }
    weft_yield();
    EQ(weft_cancel(ts[2]), 0);
    EQ(weft_cancel(ts[3]), 0);
    EQ(weft_join(ts[2]), -ECANCELED);
    EQ(weft_join(ts[3]), -ECANCELED);
    atomic_store(&counted_gate.open, 1);
    /* The room the cancelled ones would have had goes to the next in line. */
    EQ(weft_join(ts[0]), 1);
    EQ(weft_join(ts[1]), 8);
    EQ(weft_join(ts[4]), 29);
    weft_executor_free(ex);
    EQ(atomic_load(&counted_runs[2]), 0);
    EQ(atomic_load(&counted_runs[3]), 0);
    EQ(atomic_load(&counted_runs[4]), 1);
    return 0;
}

Test(exec, task_cancelled_while_waiting_for_room_gets_ecanceled_and_the_room_passes_on)
{
    EQ(run(cancel_room_waiter_main, NULL), 0);
}

static intptr_t handed_room_then_cancelled_main(void *arg)
{
    (void)arg;
    weft_executor *ex = weft_executor_new_bounded(1, 1);
    cr_assert(ex != NULL);
    struct job_state first = {0}, second = {0}, never = {0};
    struct offload_args a = {.ex = ex, .fn = gated_job, .arg = &first};
    struct offload_args b = {.ex = ex, .fn = gated_job, .arg = &second};
    struct offload_args c = {.ex = ex, .fn = never_job, .arg = &never};
    struct offload_args d = {.ex = ex, .fn = index_job, .arg = (void *)(intptr_t)7};
    weft_task *ta = weft_spawn(offload_task, &a);
    wait_flag(&first.started);
    weft_task *tb = weft_spawn(offload_task, &b); /* queued */
    weft_task *tc = weft_spawn(offload_task, &c); /* waits for room, first in line */
    weft_task *td = weft_spawn(offload_task, &d); /* waits for room, second */
    weft_yield();
    /* Without letting the loop turn: the worker finishes the first job and takes the second, which
     * hands the room to c; c is cancelled before it hears of it. */
    atomic_store(&first.open, 1);
    for (int i = 0; !atomic_load(&second.started); i++) {
        cr_assert(i < 100000, "the second job never started");
        usleep(100);
    }
    EQ(weft_cancel(tc), 0);
    atomic_store(&second.open, 1);
    EQ(weft_join(ta), 11);
    EQ(weft_join(tb), 11);
    EQ(weft_join(tc), -ECANCELED);
    /* The room c was handed went on to d rather than being lost with c. */
    EQ(weft_wait_for(td, SEC(5)), 22);
    weft_executor_free(ex);
    EQ(atomic_load(&never.never_ran), 0);
    return 0;
}

Test(exec, task_cancelled_after_being_handed_room_passes_the_room_on)
{
    EQ(run(handed_room_then_cancelled_main, NULL), 0);
}

static intptr_t async_full_queue_main(void *arg)
{
    struct job_state *s = arg;
    weft_future *running = weft_offload_async(gated_job, s);
    cr_assert(running != NULL);
    wait_flag(&s->started);
    /* The queue holds 2: the other 198 go past its bound, in order, and none is refused. */
    enum { N = 200 };
    weft_future *queued[N];
    for (int i = 0; i < N; i++) {
        queued[i] = weft_offload_async(index_job, (void *)(intptr_t)i);
        cr_assert(queued[i] != NULL, "weft_offload_async past the queue's bound: %s", strerror(errno));
        cr_assert(!weft_future_done(queued[i]));
    }
    atomic_store(&s->open, 1);
    EQ(weft_await(running), 11);
    intptr_t results[N];
    EQ(weft_gather(queued, N, results), 0);
    for (int i = 0; i < N; i++) {
        EQ(results[i], (intptr_t)i * 3 + 1);
        weft_future_free(queued[i]);
    }
    weft_future_free(running);
    EQ(atomic_load(&s->never_ran), 0);
    return 0;
}

Test(exec, offload_async_past_a_full_queue_is_queued_and_never_refused)
{
    struct job_state s = {0};
    weft_config cfg = {.executor_threads = 1, .executor_queue = 2};
    EQ(run_with(&cfg, async_full_queue_main, &s), 0);
}

/* ---- shutting an executor down with work in it ------------------------------------------------------ */

static intptr_t free_with_queued_main(void *arg)
{
    (void)arg;
    struct job_state s = {.sleep_us = 200 * 1000};
    weft_executor *ex = weft_executor_new(1);
    cr_assert(ex != NULL);
    struct offload_args running = {.ex = ex, .fn = sleeping_job, .arg = &s};
    struct offload_args queued = {.ex = ex, .fn = never_job, .arg = &s};
    weft_task *a = weft_spawn(offload_task, &running);
    wait_flag(&s.started);
    weft_task *b = weft_spawn(offload_task, &queued);
    weft_task *c = weft_spawn(offload_task, &queued);
    weft_yield();
    weft_executor_free(ex); /* the running job finishes; the queued ones never start */
    EQ(atomic_load(&s.finished), 1);
    EQ(weft_join(a), 33);
    EQ(weft_join(b), -ECANCELED);
    EQ(weft_join(c), -ECANCELED);
    EQ(atomic_load(&s.never_ran), 0);
    return 0;
}

Test(exec, executor_free_lets_the_running_job_finish_and_cancels_queued_ones)
{
    EQ(run(free_with_queued_main, NULL), 0);
}

static intptr_t free_with_room_waiters_main(void *arg)
{
    (void)arg;
    struct job_state s = {.sleep_us = 200 * 1000};
    weft_executor *ex = weft_executor_new_bounded(1, 1);
    cr_assert(ex != NULL);
    struct offload_args running = {.ex = ex, .fn = sleeping_job, .arg = &s};
    struct offload_args queued = {.ex = ex, .fn = never_job, .arg = &s};
    weft_task *a = weft_spawn(offload_task, &running);
    wait_flag(&s.started);
    weft_task *b = weft_spawn(offload_task, &queued); /* fills the queue */
    weft_task *c = weft_spawn(offload_task, &queued); /* waits for room */
    weft_task *d = weft_spawn(offload_task, &queued); /* waits for room */
    weft_yield();
    weft_executor_free(ex);
    EQ(weft_join(a), 33);
    EQ(weft_join(b), -ECANCELED);
    EQ(weft_join(c), -ECANCELED);
    EQ(weft_join(d), -ECANCELED);
    EQ(atomic_load(&s.never_ran), 0);
    return 0;
}

Test(exec, executor_free_gives_tasks_waiting_for_room_ecanceled)
{
    EQ(run(free_with_room_waiters_main, NULL), 0);
}

/* ---- _async futures freed or cancelled ------------------------------------------------------------- */

static intptr_t async_free_queued_main(void *arg)
{
    struct job_state *s = arg;
    weft_future *running = weft_offload_async(gated_job, s);
    cr_assert(running != NULL);
    wait_flag(&s->started);
    weft_future *queued = weft_offload_async(never_job, s);
    cr_assert(queued != NULL);
    weft_future_free(queued);
    atomic_store(&s->open, 1);
    EQ(weft_await(running), 11);
    weft_future_free(running);
    settle();
    EQ(atomic_load(&s->never_ran), 0);
    return 0;
}

Test(exec, freeing_a_queued_offload_async_future_removes_the_job)
{
    struct job_state s = {0};
    weft_config cfg = {.executor_threads = 1};
    EQ(run_with(&cfg, async_free_queued_main, &s), 0);
    EQ(atomic_load(&s.never_ran), 0);
}

static intptr_t async_free_running_main(void *arg)
{
    struct job_state *s = arg;
    weft_future *f = weft_offload_async(gated_job, s);
    cr_assert(f != NULL);
    wait_flag(&s->started);
    weft_future_free(f); /* fn is running: it runs to its end, and weft reclaims the job then */
    atomic_store(&s->open, 1);
    wait_flag(&s->finished);
    settle();
    settle();
    return 0;
}

Test(exec, freeing_a_running_offload_async_future_lets_fn_finish_and_reclaims_it)
{
    struct job_state s = {0};
    EQ(run(async_free_running_main, &s), 0);
    EQ(atomic_load(&s.finished), 1);
}

static intptr_t async_cancel_main(void *arg)
{
    struct job_state *s = arg;
    weft_future *running = weft_offload_async(gated_job, s);
    cr_assert(running != NULL);
    wait_flag(&s->started);
    weft_future *queued = weft_offload_async(never_job, s);
    cr_assert(queued != NULL);
    EQ(weft_future_cancel(queued), 0);
    EQ(weft_await(queued), -ECANCELED);
    /* Cancelling one already running does not cut it short: the future gets fn's result. */
    weft_future_cancel(running);
    cr_assert(!weft_future_done(running), "a running job's future completed before fn returned");
    atomic_store(&s->open, 1);
    EQ(weft_await(running), 11);
    weft_future_free(running);
    weft_future_free(queued);
    EQ(atomic_load(&s->never_ran), 0);
    return 0;
}

Test(exec, cancelling_offload_async_removes_a_queued_job_and_lets_a_running_one_deliver)
{
    struct job_state s = {0};
    weft_config cfg = {.executor_threads = 1};
    EQ(run_with(&cfg, async_cancel_main, &s), 0);
}

/* ---- misuse ------------------------------------------------------------------------------------------ */

struct from_worker {
    intptr_t sleep_rc, offload_rc, await_rc, spawn_errno;
    bool self_null, spawn_null;
};

/* Runs on an executor thread and tries weft's suspending calls there. */
static intptr_t suspending_calls_job(void *arg)
{
    struct from_worker *w = arg;
    w->sleep_rc = weft_sleep(MS(1));
    w->offload_rc = weft_offload(never_job, NULL);
    weft_future *f = weft_future_new();
    w->await_rc = f ? weft_await(f) : -ENOMEM;
    weft_future_free(f);
    w->self_null = weft_self() == NULL;
    errno = 0;
    w->spawn_null = weft_spawn(never_job, NULL) == NULL;
    w->spawn_errno = errno;
    return 5;
}

static intptr_t suspend_in_worker_main(void *arg)
{
    struct from_worker *w = arg;
    EQ(weft_offload(suspending_calls_job, w), 5);
    return 0;
}

Test(exec, suspending_calls_from_an_executor_thread_return_eperm)
{
    struct from_worker w = {0};
    EQ(run(suspend_in_worker_main, &w), 0);
    EQ(w.sleep_rc, -EPERM);
    EQ(w.offload_rc, -EPERM);
    EQ(w.await_rc, -EPERM);
    cr_assert(w.self_null, "weft_self() on an executor thread is not NULL");
    cr_assert(w.spawn_null, "weft_spawn on an executor thread made a task");
    EQ(w.spawn_errno, EPERM);
}


static intptr_t null_args_main(void *arg)
{
    (void)arg;
    weft_executor *ex = weft_executor_new(1);
    cr_assert(ex != NULL);
    EQ(weft_offload(NULL, NULL), -EINVAL);
    EQ(weft_offload_on(NULL, return_arg, NULL), -EINVAL);
    EQ(weft_offload_on(ex, NULL, NULL), -EINVAL);
    NULL_WITH_ERRNO(weft_offload_async(NULL, NULL), EINVAL);
    EQ(weft_offload_on(ex, return_arg, (void *)9), 9); /* the executor is still fine */
    weft_executor_free(ex);
    return 0;
}

Test(exec, null_fn_or_executor_returns_einval)
{
    EQ(run(null_args_main, NULL), 0);
}

static intptr_t offload_rc_in_callback = INTPTR_MIN;

static void offload_from_callback(weft_future *f, void *arg)
{
    (void)f;
    (void)arg;
    offload_rc_in_callback = weft_offload(return_arg, (void *)1);
}

static intptr_t callback_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    EQ(weft_future_on_done(f, offload_from_callback, NULL), 0);
    EQ(weft_future_resolve(f, 0), 0);
    settle();
    weft_future_free(f);
    return 0;
}

Test(exec, offload_outside_a_task_returns_eperm)
{
    weft_executor *ex = weft_executor_new(1);
    cr_assert(ex != NULL);
    EQ(weft_offload(return_arg, NULL), -EPERM);
    EQ(weft_offload_on(ex, return_arg, NULL), -EPERM);
    NULL_WITH_ERRNO(weft_offload_async(return_arg, NULL), EPERM);
    weft_executor_free(ex);
    weft_executor_free(NULL); /* ignored */
    /* On the loop's thread but in a callback, not a task. */
    EQ(run(callback_main, NULL), 0);
    EQ(offload_rc_in_callback, -EPERM);
}
