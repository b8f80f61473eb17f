/*
 * Running a loop: weft_run and weft_loop_*, the backend name, running twice, nesting, teardown of
 * tasks left behind, statistics, weft_strerror, weft_now and weft_nop.
 */
#include <pthread.h>

#include "common.h"

TestSuite(loop, .timeout = 30);



/* ---- weft_run -------------------------------------------------------------------------------------- */

static intptr_t add_to_arg(void *arg)
{
    int *x = arg;
    weft_yield();
    return *x + 1;
}

Test(loop, run_returns_zero_and_stores_main_result)
{
    int x = 41;
    intptr_t result = 0;
    EQ(weft_run(add_to_arg, &x, &result), 0);
    EQ(result, 42);
    EQ(weft_run(return_arg, (void *)(intptr_t)-ENOENT, &result), 0);
    EQ(result, -ENOENT); /* main's failure is its result, not weft_run's */
    EQ(weft_run(return_arg, (void *)3, NULL), 0);
}

Test(loop, loop_new_run_free)
{
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    int x = 9;
    intptr_t result = 0;
    EQ(weft_loop_run(l, add_to_arg, &x, &result), 0);
    EQ(result, 10);
    weft_loop_free(l);
    weft_loop_free(NULL);
}

static intptr_t check_backend_inside(void *arg)
{
    (void)arg;
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    return 0;
}

Test(loop, backend_is_io_uring_by_default_or_the_one_weft_backend_names)
{
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    cr_assert(weft_loop_backend(l) != NULL);
    cr_assert_str_eq(weft_loop_backend(l), backend_env());
    EQ(weft_loop_run(l, check_backend_inside, NULL, NULL), 0);
    cr_assert_str_eq(weft_loop_backend(l), backend_env());
    weft_loop_free(l);

    weft_config cfg = {.backend = "io_uring"};
    l = weft_loop_new(&cfg);
    cr_assert(l != NULL, "weft_loop_new(io_uring): %s", strerror(errno));
    cr_assert_str_eq(weft_loop_backend(l), backend_env()); /* the environment overrides cfg */
    weft_loop_free(l);
}

Test(loop, unset_weft_backend_means_io_uring)
{
    unsetenv("WEFT_BACKEND");
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    cr_assert_str_eq(weft_loop_backend(l), "io_uring");
    weft_loop_free(l);
}

Test(loop, unknown_backend_fails_with_einval)
{
    unsetenv("WEFT_BACKEND"); /* the environment would override cfg.backend */
    weft_config cfg = {.backend = "nonsense"};
    NULL_WITH_ERRNO(weft_loop_new(&cfg), EINVAL);

    setenv("WEFT_BACKEND", "nonsense", 1);
    NULL_WITH_ERRNO(weft_loop_new(NULL), EINVAL);
    intptr_t result = 12345;
    EQ(weft_run(return_arg, (void *)1, &result), -EINVAL);
    EQ(result, 12345); /* main never ran */
}

static intptr_t spawn_three(void *arg)
{
    for (int i = 0; i < 3; i++)
        EQ(weft_join(weft_spawn(return_arg, arg)), (intptr_t)arg);
    return (intptr_t)arg;
}

Test(loop, a_loop_can_be_run_twice)
{
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL);
    intptr_t result = 0;
    EQ(weft_loop_run(l, spawn_three, (void *)5, &result), 0);
    EQ(result, 5);
    weft_stats first;
    EQ(weft_loop_stats(l, &first), 0);
    EQ(weft_loop_run(l, spawn_three, (void *)6, &result), 0);
    EQ(result, 6);
    weft_stats second;
    EQ(weft_loop_stats(l, &second), 0);
    cr_assert(first.tasks_spawned >= 3);
    EQ(second.tasks_spawned, 2 * first.tasks_spawned); /* counters accumulate since creation */
    EQ(second.tasks_live, 0);
    weft_loop_free(l);
}

static intptr_t nested_main(void *arg)
{
    weft_loop *other = arg;
    intptr_t result = 777;
    EQ(weft_run(return_arg, (void *)1, &result), -EBUSY);
    EQ(weft_loop_run(other, return_arg, (void *)1, &result), -EBUSY);
    EQ(result, 777);
    return 0;
}

Test(loop, nested_run_inside_a_task_returns_ebusy)
{
    weft_loop *other = weft_loop_new(NULL);
    cr_assert(other != NULL);
    EQ(run(nested_main, other), 0);
    /* The refused loop is still usable. */
    intptr_t result = 0;
    EQ(weft_loop_run(other, return_arg, (void *)4, &result), 0);
    EQ(result, 4);
    weft_loop_free(other);
}

struct shared_loop {
    weft_loop *l;
    atomic_int running;
    int rc_from_other_thread;
};

static intptr_t hold_loop(void *arg)
{
    struct shared_loop *s = arg;
    atomic_store(&s->running, 1);
    EQ(weft_sleep(MS(100)), 0);
    return 1;
}

static void *run_same_loop(void *arg)
{
    struct shared_loop *s = arg;
    while (!atomic_load(&s->running))
        usleep(100);
    s->rc_from_other_thread = weft_loop_run(s->l, return_arg, NULL, NULL);
    return NULL;
}

Test(loop, running_a_loop_already_running_on_another_thread_returns_ebusy)
{
    struct shared_loop s = {.l = weft_loop_new(NULL)};
    cr_assert(s.l != NULL);
    pthread_t th;
    EQ(pthread_create(&th, NULL, run_same_loop, &s), 0);
    intptr_t result = 0;
    EQ(weft_loop_run(s.l, hold_loop, &s, &result), 0);
    EQ(result, 1);
    EQ(pthread_join(th, NULL), 0);
    EQ(s.rc_from_other_thread, -EBUSY);
    weft_loop_free(s.l);
}

Test(loop, loop_run_with_null_loop_or_main_returns_einval)
{
    EQ(weft_loop_run(NULL, return_arg, NULL, NULL), -EINVAL);
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL);
    EQ(weft_loop_run(l, NULL, NULL, NULL), -EINVAL);
    EQ(weft_run(NULL, NULL, NULL), -EINVAL);
    weft_loop_free(l);
}

struct thread_run {
    int base;
    int rc;
    intptr_t result;
};

static intptr_t sum_of_sleepers(void *arg)
{
    struct thread_run *tr = arg;
    weft_task *ts[10];
    for (intptr_t i = 0; i < 10; i++)
        ts[i] = weft_spawn(return_arg, (void *)(tr->base + i));
    intptr_t sum = 0;
    for (int i = 0; i < 10; i++) {
        EQ(weft_sleep(MS(1)), 0);
        sum += weft_join(ts[i]);
    }
    return sum;
}

static void *run_in_thread(void *arg)
{
    struct thread_run *tr = arg;
    tr->rc = weft_run(sum_of_sleepers, tr, &tr->result);
    return NULL;
}

Test(loop, loops_on_separate_threads_run_independently)
{
    struct thread_run runs[3] = {{.base = 0}, {.base = 100}, {.base = 1000}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        EQ(pthread_create(&th[i], NULL, run_in_thread, &runs[i]), 0);
    for (int i = 0; i < 3; i++) {
        EQ(pthread_join(th[i], NULL), 0);
        EQ(runs[i].rc, 0);
        EQ(runs[i].result, 10 * runs[i].base + 45);
    }
}

/* ---- teardown of what main leaves behind --------------------------------------------------------- */

static intptr_t late_spawn(void *arg)
{
    (void)arg;
    ev(90); /* must never run: spawned during teardown */
    return 0;
}

static intptr_t left_behind(void *arg)
{
    int tag = (int)(intptr_t)arg;
    ev(tag);
    int rc = weft_sleep(SEC(10));
    ev(rc == -ECANCELED ? tag + 1 : tag + 2);
    /* Cleanup that spawns: during teardown the new task is cancelled before it starts. */
    weft_task *t = weft_spawn(late_spawn, NULL);
    if (t)
        weft_detach(t);
    ev(tag + 3);
    return rc;
}

static intptr_t never_started(void *arg)
{
    (void)arg;
    ev(80);
    return 0;
}

static intptr_t leave_tasks_main(void *arg)
{
    (void)arg;
    weft_detach(weft_spawn(left_behind, (void *)10));
    weft_detach(weft_spawn(left_behind, (void *)20));
    weft_detach(weft_spawn(left_behind, (void *)30));
    weft_yield();
    EV_EXPECT(10, 20, 30);
    /* Spawned but not started when main returns: cancelled before it starts. */
    weft_detach(weft_spawn(never_started, NULL));
    return 5;
}

Test(loop, when_main_returns_run_cancels_and_reaps_the_tasks_left)
{
    EQ(run(leave_tasks_main, NULL), 5);
    /* Every sleeper saw -ECANCELED and finished its cleanup before weft_run returned. */
    char got[256];
    ev_format(got, sizeof got, ev_log, ev_len);
    cr_assert(ev_len == 9, "events [%s]: want 10 20 30, then 11 13 21 23 31 33 in any order", got);
    int seen[3] = {0};
    for (size_t i = 3; i < ev_len; i++) {
        int e = ev_log[i];
        cr_assert(e != 80, "a task that had not started when main returned ran");
        cr_assert(e != 90, "a task spawned during teardown ran");
        cr_assert(e % 10 == 1 || e % 10 == 3, "unexpected event %d (a sleep did not return -ECANCELED)", e);
        seen[e / 10 - 1] |= e % 10 == 1 ? 1 : 2;
    }
    for (int i = 0; i < 3; i++)
        EQ(seen[i], 3);
}

Test(loop, loop_run_reaps_tasks_left_and_live_count_returns_to_zero)
{
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL);
    intptr_t result = 0;
    EQ(weft_loop_run(l, leave_tasks_main, NULL, &result), 0);
    EQ(result, 5);
    weft_stats st;
    EQ(weft_loop_stats(l, &st), 0);
    EQ(st.tasks_live, 0);
    weft_loop_free(l);
}

/* ---- statistics -------------------------------------------------------------------------------- */

static intptr_t stats_main(void *arg)
{
    (void)arg;
    weft_stats s0, s1, s2, s3;
    EQ(weft_stats_get(&s0), 0);
    cr_assert(s0.tasks_live >= 1, "the running main task is live");
    weft_task *ts[10];
    for (intptr_t i = 0; i < 10; i++)
        ts[i] = weft_spawn(return_arg, (void *)i);
    EQ(weft_stats_get(&s1), 0);
    EQ(s1.tasks_spawned - s0.tasks_spawned, 10);
    EQ(s1.tasks_live - s0.tasks_live, 10);
    cr_assert(s1.tasks_peak >= s1.tasks_live);
    for (int i = 0; i < 10; i++)
        EQ(weft_join(ts[i]), i);
    EQ(weft_stats_get(&s2), 0);
    EQ(s2.tasks_live, s0.tasks_live);
    cr_assert(s2.switches > s1.switches, "switches did not grow: %" PRIu64 " -> %" PRIu64, s1.switches,
              s2.switches);
    /* A pipe read costs a system call on either backend: io_uring_enter, or read on epoll. */
    int p[2];
    EQ(pipe(p), 0);
    char c = 'x';
    for (int i = 0; i < 5; i++) {
        EQ(write(p[1], &c, 1), 1);
        EQ(weft_read(p[0], &c, 1, -1), 1);
    }
    close(p[0]);
    close(p[1]);
    EQ(weft_stats_get(&s3), 0);
    cr_assert(s3.submissions >= s2.submissions + 5, "submissions %" PRIu64 " -> %" PRIu64, s2.submissions,
              s3.submissions);
    cr_assert(s3.completions >= s2.completions + 5, "completions %" PRIu64 " -> %" PRIu64, s2.completions,
              s3.completions);
    cr_assert(s3.syscalls > s2.syscalls, "syscalls %" PRIu64 " -> %" PRIu64, s2.syscalls, s3.syscalls);
    cr_assert(s3.stacks_mapped >= 1);
    return 0;
}

Test(loop, stats_count_tasks_switches_and_ring_traffic)
{
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL);
    intptr_t result = -1;
    EQ(weft_loop_run(l, stats_main, NULL, &result), 0);
    EQ(result, 0);
    weft_stats st;
    EQ(weft_loop_stats(l, &st), 0);
    EQ(st.tasks_live, 0);
    cr_assert(st.tasks_spawned >= 10);
    cr_assert(st.tasks_peak >= 11, "tasks_peak %" PRIu64 ": main and its 10 tasks were alive together",
              st.tasks_peak);
    weft_loop_free(l);
}

static intptr_t stats_null_main(void *arg)
{
    (void)arg;
    EQ(weft_stats_get(NULL), -EINVAL);
    return 0;
}

Test(loop, stats_get_of_null_is_einval_and_outside_a_loop_is_eperm)
{
    weft_stats st;
    EQ(weft_stats_get(&st), -EPERM);
    EQ(run(stats_null_main, NULL), 0);
    EQ(weft_loop_stats(NULL, &st), -EINVAL);
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL);
    EQ(weft_loop_stats(l, NULL), -EINVAL);
    EQ(weft_loop_stats(l, &st), 0);
    EQ(st.tasks_live, 0);
    weft_loop_free(l);
}

/*
 * How much of weft_stats is written: weft_stats_get and weft_loop_stats pass this header's size; the
 * _sized forms take any size from weft 0.1's structure (tasks_spawned to stacks_trimmed) up. A larger
 * one stands for a program built against a newer header: the counters this library lacks read 0.
 */
#define STATS_SIZE_0_1 (offsetof(weft_stats, stacks_trimmed) + sizeof(uint64_t))

struct newer_stats {
    weft_stats known;
    uint64_t later[8];
};

#define FILL_BYTE 0xa5

static bool all_bytes(const void *p, size_t n, unsigned char want)
{
    for (size_t i = 0; i < n; i++)
        if (((const unsigned char *)p)[i] != want)
            return false;
    return true;
}

/* Checks each size rule with get(out, size), a call into the running loop's or a given loop's counters. */
static void stats_sizes_check(int (*get)(weft_stats *, size_t), uint64_t spawned)
{
    struct newer_stats st;
    memset(&st, FILL_BYTE, sizeof st);
    EQ(get(&st.known, STATS_SIZE_0_1), 0);
    EQ(st.known.tasks_spawned, spawned);
    cr_assert(all_bytes((char *)&st + STATS_SIZE_0_1, sizeof st - STATS_SIZE_0_1, FILL_BYTE),
              "bytes past the caller's size were written");

    memset(&st, FILL_BYTE, sizeof st);
    EQ(get(&st.known, sizeof st), 0);
    EQ(st.known.tasks_spawned, spawned);
    cr_assert(all_bytes(st.later, sizeof st.later, 0), "counters this library lacks must read 0");

    memset(&st, FILL_BYTE, sizeof st);
    EQ(get(&st.known, STATS_SIZE_0_1 - sizeof(uint64_t)), -EINVAL);
    EQ(get(&st.known, 0), -EINVAL);
    cr_assert(all_bytes(&st, sizeof st, FILL_BYTE), "a refused call wrote into the caller's structure");
}

static int stats_get_sized_call(weft_stats *out, size_t size) { return weft_stats_get_sized(out, size); }

static weft_loop *sized_loop; /* the loop stats_loop_sized_call reads */
static int stats_loop_sized_call(weft_stats *out, size_t size) { return weft_loop_stats_sized(sized_loop, out, size); }

static intptr_t stats_sizes_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        EQ(weft_join(weft_spawn(return_arg, (void *)(intptr_t)i)), i);
    weft_stats now;
    EQ(weft_stats_get(&now), 0);
    EQ(now.tasks_spawned, 4); /* main and three */
    stats_sizes_check(stats_get_sized_call, now.tasks_spawned);
    /* The function behind the macro, as a caller without the header reaches it: the 0.1 counters. */
    int (*unsized)(weft_stats *) = weft_stats_get;
    struct newer_stats st;
    memset(&st, FILL_BYTE, sizeof st);
    EQ(unsized(&st.known), 0);
    EQ(st.known.tasks_spawned, now.tasks_spawned);
    cr_assert(all_bytes((char *)&st + STATS_SIZE_0_1, sizeof st - STATS_SIZE_0_1, FILL_BYTE));
    return 0;
}

Test(loop, stats_write_no_more_than_the_callers_size_and_zero_what_this_library_lacks)
{
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL);
    EQ(weft_loop_run(l, stats_sizes_main, NULL, NULL), 0);
    sized_loop = l;
    stats_sizes_check(stats_loop_sized_call, 4);
    int (*unsized)(const weft_loop *, weft_stats *) = weft_loop_stats;
    weft_stats st;
    EQ(unsized(l, &st), 0);
    EQ(st.tasks_spawned, 4);
    EQ(weft_loop_stats_sized(NULL, &st, sizeof st), -EINVAL);
    EQ(weft_loop_stats_sized(l, NULL, sizeof st), -EINVAL);
    weft_loop_free(l);
    EQ(weft_stats_get_sized(&st, sizeof st), -EPERM);
}

/* ---- weft_strerror, weft_now, weft_nop ---------------------------------------------------------- */

Test(loop, strerror_names_every_code_and_never_returns_null)
{
    cr_assert_str_eq(weft_strerror(-ENOENT), strerror(ENOENT));
    cr_assert_str_eq(weft_strerror(ENOENT), strerror(ENOENT));
    cr_assert_str_eq(weft_strerror(-ECANCELED), strerror(ECANCELED));
    cr_assert_str_eq(weft_strerror(-ETIMEDOUT), strerror(ETIMEDOUT));
    cr_assert_str_eq(weft_strerror(0), "Success");
    static const int odd[] = {-123456, 123456, -4095, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *s = weft_strerror(odd[i]);
        cr_assert(s != NULL && s[0] != '\0', "weft_strerror(%d) gave %s", odd[i], s ? "\"\"" : "NULL");
    }
}

static intptr_t now_main(void *arg)
{
    (void)arg;
    uint64_t before = weft_now();
    EQ(weft_sleep(MS(10)), 0);
    uint64_t after = weft_now();
    cr_assert(after - before >= MS(10), "weft_now advanced %" PRIu64 " ns over a 10 ms sleep", after - before);
    return 0;
}

Test(loop, now_is_monotonic_nanoseconds)
{
    uint64_t prev = weft_now();
    for (int i = 0; i < 10000; i++) {
        uint64_t lo = mono_ns();
        uint64_t now = weft_now();
        uint64_t hi = mono_ns();
        cr_assert(now >= prev, "weft_now went backwards");
        cr_assert(lo <= now && now <= hi, "weft_now is not CLOCK_MONOTONIC in ns: %" PRIu64 " not in [%" PRIu64
                  ", %" PRIu64 "]", now, lo, hi);
        prev = now;
    }
    EQ(run(now_main, NULL), 0);
}

static intptr_t nop_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        EQ(weft_nop(), 0);
    return 0;
}

Test(loop, nop_returns_zero)
{
    EQ(run(nop_main, NULL), 0);
}

static intptr_t nop_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) {
        int rc = weft_nop();
        if (rc != 0)
            return rc;
    }
    return 0;
}

static intptr_t nop_concurrent_main(void *arg)
{
    (void)arg;
    /* More tasks than the default 256-entry ring: submissions must wait for room, not fail. */
    enum { N = 600 };
    weft_task **ts = malloc(sizeof *ts * N);
    for (int i = 0; i < N; i++)
        ts[i] = weft_spawn(nop_many, NULL);
    for (int i = 0; i < N; i++)
        EQ(weft_join(ts[i]), 0);
    free(ts);
    return 0;
}

Test(loop, nops_from_more_tasks_than_ring_entries_all_complete)
{
    EQ(run(nop_concurrent_main, NULL), 0);
}

/* ---- idle polling (weft_config.idle_poll_ns, WEFT_IDLE_POLL_US) ------------------------------------ */

typedef struct late_write {
    int fd;
    uint64_t after_ns;
} late_write;

static void *write_later(void *arg)
{
    late_write *w = arg;
    struct timespec ts = {(time_t)(w->after_ns / 1000000000u), (long)(w->after_ns % 1000000000u)};
    nanosleep(&ts, NULL);
    cr_assert(write(w->fd, "hello", 5) == 5);
    return NULL;
}

typedef struct idle_case {
    uint64_t write_after_ns;
    weft_stats st; /* the loop's counters after the read */
} idle_case;

/* Reads a pipe another thread writes to after c->write_after_ns: the loop has nothing else to do. */
static intptr_t idle_read_main(void *arg)
{
    idle_case *c = arg;
    int p[2];
    EQ(pipe(p), 0);
    late_write w = {p[1], c->write_after_ns};
    pthread_t th;
    EQ(pthread_create(&th, NULL, write_later, &w), 0);
    char buf[8] = {0};
    EQ(weft_read(p[0], buf, sizeof buf, -1), 5);
    cr_assert(memcmp(buf, "hello", 5) == 0);
    EQ(weft_stats_get(&c->st), 0);
    pthread_join(th, NULL);
    EQ(weft_close(p[0]), 0);
    close(p[1]);
    return 0;
}

static void idle_run(const weft_config *cfg, idle_case *c)
{
    weft_loop *l = weft_loop_new(cfg);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    intptr_t result = -1;
    EQ(weft_loop_run(l, idle_read_main, c, &result), 0);
    EQ(result, 0);
    weft_loop_free(l);
}

Test(loop, idle_poll_is_off_by_default)
{
    unsetenv("WEFT_IDLE_POLL_US");
    idle_case c = {.write_after_ns = MS(20)};
    idle_run(NULL, &c);
    EQ(c.st.idle_polls, 0);
    EQ(c.st.idle_poll_misses, 0);
}

Test(loop, idle_poll_sees_a_completion_that_comes_within_its_budget)
{
    unsetenv("WEFT_IDLE_POLL_US");
    /* A budget far longer than the wait: the read's completion is found by polling, never a sleep. */
    weft_config cfg = {.idle_poll_ns = SEC(20)};
    idle_case c = {.write_after_ns = MS(20)};
    idle_run(&cfg, &c);
    cr_assert(c.st.idle_polls >= 1, "idle_polls %" PRIu64, c.st.idle_polls);
    EQ(c.st.idle_poll_misses, 0);
}

Test(loop, idle_poll_gives_up_after_its_budget_and_sleeps)
{
    unsetenv("WEFT_IDLE_POLL_US");
    weft_config cfg = {.idle_poll_ns = MS(1)};
    idle_case c = {.write_after_ns = MS(200)};
    idle_run(&cfg, &c);
    cr_assert(c.st.idle_poll_misses >= 1, "idle_poll_misses %" PRIu64, c.st.idle_poll_misses);
}

/* Requests nobody waits for any more: _async recvs whose futures are freed, on sockets closed with
 * close(2). The loop's end waits for the kernel to let go of them. */
static intptr_t abandoned_main(void *arg)
{
    (void)arg;
    int sv[2];
    EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    char buf[4];
    weft_future *fs[4];
    for (int i = 0; i < 4; i++)
        cr_assert((fs[i] = weft_recv_async(sv[0], &buf[i], 1, 0)) != NULL);
    EQ(weft_sleep(MS(1)), 0); /* the recvs reach the kernel */
    for (int i = 0; i < 4; i++)
        weft_future_free(fs[i]);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

Test(loop, an_idle_poll_that_takes_in_the_last_completions_lets_the_loop_end_instead_of_sleeping)
{
    unsetenv("WEFT_IDLE_POLL_US");
    /* The cancels' completions come during the idle poll and wake nobody: once they are in, the loop
     * has nothing left to wait for, and a sleep in the kernel would never end (the suite's timeout
     * would fail the test). */
    weft_config cfg = {.idle_poll_ns = MS(50)};
    weft_loop *l = weft_loop_new(&cfg);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    intptr_t result = -1;
    uint64_t start = mono_ns();
    EQ(weft_loop_run(l, abandoned_main, NULL, &result), 0);
    EQ(result, 0);
    cr_assert(mono_ns() - start < SEC(5), "the loop took %" PRIu64 " ms to end", (mono_ns() - start) / 1000000);
    weft_loop_free(l);
}

Test(loop, weft_idle_poll_us_sets_the_budget_and_zero_turns_it_off)
{
    setenv("WEFT_IDLE_POLL_US", "20000000", 1);
    idle_case c = {.write_after_ns = MS(20)};
    idle_run(NULL, &c);
    cr_assert(c.st.idle_polls >= 1, "idle_polls %" PRIu64 " with WEFT_IDLE_POLL_US=20000000", c.st.idle_polls);
    EQ(c.st.idle_poll_misses, 0);

    setenv("WEFT_IDLE_POLL_US", "0", 1); /* overrides the configuration's budget */
    weft_config cfg = {.idle_poll_ns = SEC(20)};
    idle_case off = {.write_after_ns = MS(20)};
    idle_run(&cfg, &off);
    EQ(off.st.idle_polls, 0);
    EQ(off.st.idle_poll_misses, 0);
    unsetenv("WEFT_IDLE_POLL_US");
}

static intptr_t read_forever(void *arg)
{
    char c;
    return weft_read(*(int *)arg, &c, 1, -1);
}

static intptr_t offload_sleep(void *arg)
{
    struct timespec ts = {0, (long)MS(20)};
    nanosleep(&ts, NULL);
    return (intptr_t)arg + 1;
}

static intptr_t idle_timer_main(void *arg)
{
    (void)arg;
    int p[2];
    EQ(pipe(p), 0);
    weft_task *reader = weft_spawn(read_forever, &p[0]); /* I/O in flight the whole time */
    cr_assert(reader != NULL);
    weft_yield();
    /* The next timer bounds the poll: the sleep ends on time, not when a 20 s budget runs out. */
    uint64_t t0 = weft_now();
    EQ(weft_sleep(MS(20)), 0);
    uint64_t took = weft_now() - t0;
    cr_assert(took >= MS(20) && took < SEC(10), "a 20 ms sleep took %" PRIu64 " ns", took);
    /* An offloaded job's result comes back through the remote list, which the poll watches too. */
    EQ(weft_offload(offload_sleep, (void *)41), 42);
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    cr_assert(st.idle_polls >= 1, "idle_polls %" PRIu64, st.idle_polls);
    EQ(weft_cancel(reader), 0);
    EQ(weft_join(reader), -ECANCELED);
    EQ(weft_close(p[0]), 0);
    close(p[1]);
    return 0;
}

Test(loop, idle_poll_ends_at_the_next_timer_and_sees_offloaded_results)
{
    unsetenv("WEFT_IDLE_POLL_US");
    weft_config cfg = {.idle_poll_ns = SEC(20)};
    weft_loop *l = weft_loop_new(&cfg);
    cr_assert(l != NULL);
    intptr_t result = -1;
    EQ(weft_loop_run(l, idle_timer_main, NULL, &result), 0);
    EQ(result, 0);
    weft_loop_free(l);
}

/* ---- giving back the stacks of a burst of tasks ------------------------------------------------------ */

enum { BURST = 1000, BURST_TOUCH = 128 * 1024 };

/* Resident memory of the process, from /proc/self/statm. */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    cr_assert(f);
    unsigned long size = 0, resident = 0;
    cr_assert(fscanf(f, "%lu %lu", &size, &resident) == 2);
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Writes BURST_TOUCH bytes of its stack with a pattern of its own and checks them after a wait. */
static intptr_t deep_task(void *arg)
{
    weft_event *go = arg;
    volatile unsigned char buf[BURST_TOUCH];
    unsigned char seed = (unsigned char)(uintptr_t)weft_self();
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = (unsigned char)(seed + i / 512);
    EQ(weft_event_wait(go), 0);
    for (size_t i = 0; i < sizeof buf; i += 512)
        if (buf[i] != (unsigned char)(seed + i / 512))
            return -EIO;
    return 0;
}

static void burst(void)
{
    weft_event *go = weft_event_new();
    cr_assert(go);
    weft_task **ts = calloc(BURST, sizeof *ts);
    cr_assert(ts);
    for (int i = 0; i < BURST; i++)
        cr_assert((ts[i] = weft_spawn(deep_task, go)) != NULL);
    weft_yield(); /* all of them run up to the wait */
    weft_event_set(go);
    for (int i = 0; i < BURST; i++)
        EQ(weft_join(ts[i]), 0);
    free(ts);
    weft_event_free(go);
}

static intptr_t trim_main(void *arg)
{
    (void)arg;
    burst();
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    EQ(st.stacks_trimmed, 0); /* not while the loop had work */
    uint64_t before = rss_bytes();
    /* Each sleep is a moment the loop idles, and trims up to 64 stacks then. */
    for (int i = 0; i < 40; i++)
        EQ(weft_sleep(MS(1)), 0);
    EQ(weft_stats_get(&st), 0);
    /* Trimming starts above 128 free stacks and takes 64 at a time, keeping the 64 most recent: it
     * ends with 65 to 128 left resident (main's own stack is in use, not free). */
    cr_assert(st.stacks_trimmed >= BURST - 128 && st.stacks_trimmed <= BURST - 64, "stacks_trimmed %" PRIu64,
              st.stacks_trimmed);
    uint64_t after = rss_bytes();
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* (Under the sanitizers big frames may live on the sanitizer's own stacks.) */
    uint64_t given_back = before > after ? before - after : 0;
    cr_assert(given_back >= st.stacks_trimmed * BURST_TOUCH * 8 / 10,
              "RSS went from %" PRIu64 " to %" PRIu64 " KiB after trimming %" PRIu64 " stacks", before / 1024,
              after / 1024, st.stacks_trimmed);
#else
    (void)before;
    (void)after;
#endif
    /* Trimmed stacks serve again: a second burst runs on them, each task's data intact. */
    burst();
    EQ(weft_stats_get(&st), 0);
    cr_assert(st.stacks_mapped <= BURST + 2, "stacks_mapped %" PRIu64 ": trimmed stacks were not reused",
              st.stacks_mapped);
    return 0;
}

Test(loop, stacks_of_a_burst_of_tasks_are_given_back_when_the_loop_idles_and_reused)
{
    unsetenv("WEFT_IDLE_POLL_US");
    unsetenv("WEFT_STACK_SIZE");
    EQ(run(trim_main, NULL), 0);
}
