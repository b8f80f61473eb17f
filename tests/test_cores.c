/*
 * Thread-per-core: weft_run_cores, weft_loop_id and weft_loop_count, weft_post, weft_submit_to and
 * weft_stats_get_loop. Messages arrive exactly once and in order per sender, answers come back,
 * cancellation waits for the remote task, a loop that ended refuses messages, and nothing leaks.
 */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stddef.h>

TestSuite(cores, .timeout = 60);

static unsigned cpus_in_mask(int *cpus)
{
    cpu_set_t mask;
    unsigned n = 0;
    cr_assert(sched_getaffinity(0, sizeof mask, &mask) == 0);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &mask))
            cpus[n++] = c;
    return n;
}

/* ---- loops, their numbers and their CPUs ------------------------------------------------------------ */

static atomic_int seen_id[8], seen_count[8], seen_cpu[8];

static intptr_t where_main(void *arg)
{
    (void)arg;
    unsigned id = weft_loop_id();
    cr_assert(id < 8);
    atomic_fetch_add(&seen_id[id], 1);
    atomic_store(&seen_count[id], (int)weft_loop_count());
    atomic_store(&seen_cpu[id], sched_getcpu());
    return 0;
}

Test(cores, run_cores_numbers_its_loops_and_pins_each_to_its_cpu)
{
    int cpus[CPU_SETSIZE];
    unsigned ncpus = cpus_in_mask(cpus);
    EQ(weft_loop_count(), 0);
    EQ(weft_run_cores(2, where_main, NULL, NULL), 0);
    for (unsigned i = 0; i < 2; i++) {
        EQ(atomic_load(&seen_id[i]), 1);
        EQ(atomic_load(&seen_count[i]), 2);
        EQ(atomic_load(&seen_cpu[i]), cpus[i % ncpus]);
    }
    EQ(weft_loop_count(), 0);
    /* 0: one loop per CPU of the mask. */
    for (unsigned i = 0; i < 8; i++)
        atomic_store(&seen_id[i], 0);
    EQ(weft_run_cores(0, where_main, NULL, NULL), 0);
    for (unsigned i = 0; i < 8; i++)
        EQ(atomic_load(&seen_id[i]), i < ncpus ? 1 : 0);
    EQ(weft_run_cores(1, NULL, NULL, NULL), -EINVAL);
    EQ(weft_run_cores(100000, where_main, NULL, NULL), -EINVAL);
}

static intptr_t fail_by_id(void *arg)
{
    (void)arg;
    if (weft_loop_id() == 1)
        return -EIO;
    EQ(weft_sleep(MS(20)), 0); /* loop 0 still runs when loop 1 has failed */
    return (intptr_t)arg ? -ENOENT : 0;
}

Test(cores, run_cores_returns_the_first_failure_by_loop_index)
{
    EQ(weft_run_cores(2, fail_by_id, NULL, NULL), -EIO);
    EQ(weft_run_cores(2, fail_by_id, (void *)1, NULL), -ENOENT);
}

/* ---- weft_post: exactly once, in order per sender -------------------------------------------------- */

enum { LOOPS = 2, THREADS = 2, SENDERS = LOOPS + THREADS, PER_SENDER = 2000 };

struct inbox {
    int last[SENDERS];   /* the last sequence number each sender's message carried, per loop */
    int received;
    bool out_of_order, wrong_loop;
};

static struct inbox inboxes[LOOPS];

struct note {
    unsigned to;
    int sender, seq;
};

static struct note notes[SENDERS][LOOPS][PER_SENDER];

static intptr_t note_arrived(void *arg)
{
    struct note *n = arg;
    struct inbox *in = &inboxes[weft_loop_id()];
    if (weft_loop_id() != n->to)
        in->wrong_loop = true;
    if (n->seq != in->last[n->sender] + 1)
        in->out_of_order = true;
    in->last[n->sender] = n->seq;
    in->received++;
    return 0;
}

static void send_all_notes(int sender)
{
    for (int seq = 0; seq < PER_SENDER; seq++)
        for (unsigned to = 0; to < LOOPS; to++) {
            struct note *n = &notes[sender][to][seq];
            *n = (struct note){to, sender, seq};
            int r;
            while ((r = weft_post(to, note_arrived, n)) == -ENOMEM)
                ;
            EQ(r, 0);
        }
}

static void *foreign_sender(void *arg)
{
    send_all_notes((int)(intptr_t)arg);
    return NULL;
}

static intptr_t posting_main(void *arg)
{
    (void)arg;
    unsigned me = weft_loop_id();
    for (int s = 0; s < SENDERS; s++)
        inboxes[me].last[s] = -1;
    pthread_t th[THREADS];
    if (me == 0)
        for (int t = 0; t < THREADS; t++)
            cr_assert(pthread_create(&th[t], NULL, foreign_sender, (void *)(intptr_t)(LOOPS + t)) == 0);
    send_all_notes((int)me);
    /* Stay until every sender's messages have come. */
    for (int i = 0; inboxes[me].received < SENDERS * PER_SENDER; i++) {
        cr_assert(i < 20000, "loop %u got %d of %d messages", me, inboxes[me].received, SENDERS * PER_SENDER);
        EQ(weft_sleep(MS(1)), 0);
    }
    if (me == 0)
        for (int t = 0; t < THREADS; t++)
            pthread_join(th[t], NULL);
    return 0;
}

Test(cores, posts_from_loops_and_threads_arrive_once_each_in_order_per_sender)
{
    EQ(weft_run_cores(LOOPS, posting_main, NULL, NULL), 0);
    for (unsigned l = 0; l < LOOPS; l++) {
        EQ(inboxes[l].received, SENDERS * PER_SENDER);
        cr_assert(!inboxes[l].out_of_order, "loop %u: a sender's messages came out of order", l);
        cr_assert(!inboxes[l].wrong_loop, "loop %u ran a message meant for another", l);
        for (int s = 0; s < SENDERS; s++)
            EQ(inboxes[l].last[s], PER_SENDER - 1);
    }
}

/* ---- weft_submit_to ------------------------------------------------------------------------------------ */

static intptr_t loop_times_ten(void *arg)
{
    return (intptr_t)weft_loop_id() * 10 + (intptr_t)arg;
}

static intptr_t quick_main(void *arg)
{
    (void)arg;
    return 0;
}

static atomic_int asked_all;

static intptr_t submit_main(void *arg)
{
    (void)arg;
    if (weft_loop_id() == 1) {
        /* Stays, asleep in the kernel between looks, until loop 0 has asked all it asks of a live loop. */
        for (int i = 0; !atomic_load(&asked_all) && i < 10000; i++)
            EQ(weft_sleep(MS(1)), 0);
        return 0;
    }
    /* Loop 1 sleeps in the kernel (its weft_sleep): on io_uring this loop wakes it with a MSG_RING,
     * not its eventfd. A few tries, in case loop 1 was not asleep yet. */
    bool uring = strcmp(weft_loop_backend(weft_loop_current()), "io_uring") == 0;
    weft_stats mine = {0};
    for (int i = 0; i < 20 && (i == 0 || (uring && mine.ring_wakes == 0)); i++) {
        EQ(weft_sleep(MS(2)), 0);
        EQ(weft_submit_to(1, loop_times_ten, (void *)3), 13);
        EQ(weft_stats_get(&mine), 0);
    }
    if (uring)
        cr_assert(mine.ring_wakes >= 1, "no MSG_RING wakeup counted");
    else
        EQ(mine.ring_wakes, 0);
    EQ(weft_submit_to(0, loop_times_ten, (void *)4), 4); /* its own loop */
    EQ(weft_submit_to(2, loop_times_ten, NULL), -EINVAL);
    EQ(weft_submit_to(1, NULL, NULL), -EINVAL);
    EQ(weft_post(2, quick_main, NULL), -EINVAL);
    weft_stats st;
    EQ(weft_stats_get_loop(1, &st), 0);
    cr_assert(st.tasks_spawned >= 2, "loop 1 counted %" PRIu64 " tasks", st.tasks_spawned);
    EQ(weft_stats_get_loop(1, NULL), -EINVAL);
    /* Sized like weft_stats_get: no more than the caller's size is written, and a caller built against
     * a newer header reads 0 in the counters this library lacks. */
    struct {
        weft_stats known;
        uint64_t later[4];
    } newer;
    memset(&newer, 0xa5, sizeof newer);
    EQ(weft_stats_get_loop_sized(1, &newer.known, sizeof newer), 0);
    cr_assert(newer.known.tasks_spawned >= 2);
    for (int i = 0; i < 4; i++)
        EQ(newer.later[i], 0);
    EQ(weft_stats_get_loop_sized(1, &newer.known, sizeof(uint64_t)), -EINVAL);
    int (*unsized)(unsigned, weft_stats *) = weft_stats_get_loop;
    EQ(unsized(1, &st), 0);
    cr_assert(st.tasks_spawned >= 2);
    /* Once loop 1's main has returned, it refuses messages (one sent just before is cancelled). */
    atomic_store(&asked_all, 1);
    int r;
    for (int i = 0; (r = (int)weft_submit_to(1, loop_times_ten, NULL)) != -ESHUTDOWN; i++) {
        cr_assert(i < 5000, "loop 1 still answers: %d", r);
        cr_assert(r == 10 || r == -ECANCELED, "got %d", r);
        EQ(weft_sleep(MS(1)), 0);
    }
    EQ(weft_post(1, quick_main, NULL), -ESHUTDOWN);
    return 0;
}

Test(cores, submit_to_returns_the_remote_result_and_refuses_a_bad_or_ended_loop)
{
    EQ(weft_submit_to(0, loop_times_ten, NULL), -EPERM);
    EQ(weft_run_cores(2, submit_main, NULL, NULL), 0);
}

struct remote_work {
    atomic_int started, ended;
    int scratch; /* the caller's memory the remote task writes after it is cancelled */
};

static intptr_t slow_remote(void *arg)
{
    struct remote_work *w = arg;
    atomic_store(&w->started, 1);
    int r = weft_sleep(SEC(10));
    usleep(20 * 1000); /* still using the caller's memory after its cancellation */
    w->scratch = 42;
    atomic_store(&w->ended, 1);
    return r;
}

static intptr_t submitting(void *arg)
{
    return weft_submit_to(1, slow_remote, arg);
}

static atomic_int cancel_done; /* loop 0 is through: loop 1 may end (not before, however slow loop 0 is) */

static intptr_t cancel_main(void *arg)
{
    (void)arg;
    if (weft_loop_id() == 1) {
        for (int i = 0; !atomic_load(&cancel_done); i++) {
            cr_assert(i < 20000, "loop 0 never finished");
            EQ(weft_sleep(MS(1)), 0);
        }
        return 0;
    }
    struct remote_work w = {0};
    weft_task *t = weft_spawn(submitting, &w);
    for (int i = 0; !atomic_load(&w.started); i++) {
        cr_assert(i < 5000, "the remote task never started");
        EQ(weft_sleep(MS(1)), 0);
    }
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    /* The caller came back only after the remote task had ended. */
    EQ(atomic_load(&w.ended), 1);
    EQ(w.scratch, 42);
    /* A deadline works the same way. */
    struct remote_work w2 = {0};
    weft_deadline_push(weft_now() + MS(20));
    EQ(weft_submit_to(1, slow_remote, &w2), -ETIMEDOUT);
    weft_deadline_pop();
    EQ(atomic_load(&w2.ended), 1);
    atomic_store(&cancel_done, 1);
    return 0;
}

Test(cores, a_cancelled_submit_to_cancels_the_remote_task_and_waits_for_it)
{
    EQ(weft_run_cores(2, cancel_main, NULL, NULL), 0);
}

/* ---- messages in flight when a loop ends ------------------------------------------------------------------ */

static atomic_int flood_answers, posts_accepted, posts_ran, posts_cancelled;

static intptr_t count_it(void *arg)
{
    (void)arg;
    return 7;
}

/*
 * A post that owns its argument, as a connection handed to another loop owns its fd: it frees it, so a
 * message that never ran shows as a leak under ASan, and counts itself. Its one suspending call says
 * whether the teardown had cancelled it: 0 before, -ECANCELED once loop 0's main had returned.
 */
static intptr_t owned_post(void *arg)
{
    free(arg);
    int r = weft_sleep(0);
    cr_assert(r == 0 || r == -ECANCELED, "a posted task's sleep: %d", r);
    if (r == -ECANCELED)
        atomic_fetch_add(&posts_cancelled, 1);
    atomic_fetch_add(&posts_ran, 1);
    return 0;
}

/* One post to loop 0 of a block the message owns: 0, or -ESHUTDOWN once loop 0 refuses. */
static int post_owned(void)
{
    int *owned = malloc(sizeof *owned);
    cr_assert(owned != NULL);
    int p = weft_post(0, owned_post, owned);
    cr_assert(p == 0 || p == -ESHUTDOWN, "weft_post during the target's end: %d", p);
    if (p == 0)
        atomic_fetch_add(&posts_accepted, 1);
    else
        free(owned);
    return p;
}

/* Posts to loop 0 without waiting for answers, until it refuses: a stream of messages still arriving,
 * and queued behind loop 0's main, as that main returns. At most 64 are unfinished at a time: loop 0
 * runs each as a task, slower than loop 1 can post, and an unbounded stream would only grow. */
static intptr_t post_flooding(void *arg)
{
    (void)arg;
    do {
        while (atomic_load(&posts_accepted) - atomic_load(&posts_ran) >= 64)
            weft_yield();
    } while (post_owned() == 0);
    return 0;
}

/* Posts and submits to loop 0 until it refuses. */
static intptr_t flooding(void *arg)
{
    (void)arg;
    for (;;) {
        post_owned();
        intptr_t r = weft_submit_to(0, count_it, NULL);
        if (r == -ESHUTDOWN)
            return 0;
        /* Accepted, it ran, even if the teardown had cancelled it before it started. */
        EQ(r, 7);
        atomic_fetch_add(&flood_answers, 1);
    }
}

static intptr_t flood_main(void *arg)
{
    (void)arg;
    if (weft_loop_id() == 0) {
        for (int i = 0; atomic_load(&flood_answers) == 0 && i < 10000; i++)
            EQ(weft_sleep(MS(1)), 0);
        EQ(weft_sleep(MS(5)), 0);
        /* And a few of its own, certain to be still unstarted as it ends. */
        for (int i = 0; i < 16; i++)
            EQ(post_owned(), 0);
        return 0; /* ends while loop 1 floods it */
    }
    enum { N = 64 };
    weft_task *ts[N];
    for (int i = 0; i < N; i++)
        ts[i] = weft_spawn(i % 2 ? flooding : post_flooding, NULL);
    EQ(weft_join_all(ts, N, NULL), 0); /* every submit came back: none was lost in the end */
    return 0;
}

Test(cores, messages_in_flight_when_a_loop_ends_run_exactly_once_or_are_refused_and_none_is_lost)
{
    EQ(weft_run_cores(2, flood_main, NULL, NULL), 0);
    cr_assert(atomic_load(&flood_answers) > 0, "no submit was answered before loop 0 ended");
    /* Every post weft_post accepted ran, once (ASan: and freed what it owned), the 16 loop 0 posted to
     * itself as it ended among them: cancelled by the teardown before they started, they ran all the
     * same, and their one suspending call said -ECANCELED. */
    EQ(atomic_load(&posts_ran), atomic_load(&posts_accepted));
    cr_assert(atomic_load(&posts_cancelled) >= 16, "%d posts saw the teardown's cancel",
              atomic_load(&posts_cancelled));
}

/* ---- threads posting while weft_run_cores ends ------------------------------------------------------------ */

static atomic_int ends_accepted, ends_ran, ends_stop;
enum { ENDS_BACKLOG = 256 };

static intptr_t ends_post_ran(void *arg)
{
    free(arg);
    atomic_fetch_add(&ends_ran, 1);
    return 0;
}

/* A thread of the application's, none of the loops: it asks how many loops there are and posts to one,
 * over and over, while weft_run_cores starts and ends under it. */
static void *posting_through_ends(void *arg)
{
    unsigned loop = (unsigned)(uintptr_t)arg;
    while (!atomic_load(&ends_stop)) {
        /* A bounded backlog: every accepted post runs, and under a sanitizer on a loaded host a loop
         * runs them far slower than two threads can post, so a backlog without bound would make each
         * weft_run_cores's teardown run tens of thousands of tasks. */
        if (atomic_load(&ends_accepted) - atomic_load(&ends_ran) >= ENDS_BACKLOG) {
            sched_yield();
            continue;
        }
        unsigned n = weft_loop_count();
        cr_assert(n == 0 || n == 2, "weft_loop_count from a thread: %u", n);
        int *owned = malloc(sizeof *owned);
        cr_assert(owned != NULL);
        int r = weft_post(loop, ends_post_ran, owned);
        /* -EINVAL between runs (no loops), -ESHUTDOWN as a loop ends. */
        cr_assert(r == 0 || r == -EINVAL || r == -ESHUTDOWN, "weft_post from a thread: %d", r);
        if (r == 0)
            atomic_fetch_add(&ends_accepted, 1);
        else
            free(owned);
        /* A pause, so two such threads do not take both CPUs from the loops they post to. */
        sched_yield();
    }
    return NULL;
}

static intptr_t brief_main(void *arg)
{
    (void)arg;
    weft_yield();
    return 0;
}

/* How many weft_run_cores to post through: under TSan each takes about a second (its threads, and the
 * fibers it registers as threads, are slow to make), and a few suffice for it to see a race. */
static int ends_runs(void)
{
#if defined(__SANITIZE_THREAD__)
    return 8;
#else
    return 40;
#endif
}

/* weft_run_cores frees its loops as it returns: a thread in the middle of weft_post or weft_loop_count
 * must never read them then (ASan and TSan watch), and what it posted either ran or was refused. */
Test(cores, threads_posting_while_run_cores_ends_touch_no_freed_loop_and_every_accepted_post_runs)
{
    pthread_t th[2];
    for (uintptr_t i = 0; i < 2; i++)
        cr_assert(pthread_create(&th[i], NULL, posting_through_ends, (void *)i) == 0);
    for (int run = 0; run < ends_runs(); run++)
        EQ(weft_run_cores(2, brief_main, NULL, NULL), 0);
    atomic_store(&ends_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    EQ(atomic_load(&ends_ran), atomic_load(&ends_accepted));
    cr_assert(atomic_load(&ends_accepted) > 0, "no post from a thread was ever accepted");
}

/* ---- a burst of messages costs one wakeup, a busy loop none ------------------------------------------------ */

enum { BURST = 64, BURST_ROUNDS = 20 };

struct burst {
    atomic_int round_ready;  /* the round loop 1 has recorded its counters for and is about to sleep in */
    atomic_int arrived;      /* messages of the round run so far on loop 1 */
    atomic_int go;           /* busy rounds: loop 1 spins until the burst is sent */
    weft_event *all_in;      /* loop 1: set by the round's last message */
    bool busy;               /* loop 1 runs (yields) through the burst instead of sleeping */
    bool from_thread;        /* the burst comes from a thread of the application's, not loop 0 */
    uint64_t target_writes[BURST_ROUNDS]; /* loop 1's wake_writes during each round */
    uint64_t sender_wakes[BURST_ROUNDS];  /* loop 0's ring_wakes during each round */
};

static struct burst burst;

/*
 * A message of the burst. The first to run holds loop 1, without suspending, until the whole burst is
 * sent: loop 1 then cannot drain a few, fall asleep again and be woken again by the next (a sender
 * slower than the target's wake-up, as a thread paying a write(2) per wakeup can be, pays one wakeup
 * per sleep, which is right); the test counts what a burst costs a loop that stays awake once woken.
 */
static intptr_t burst_arrived(void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&burst.arrived, 1) + 1;
    if (n == 1)
        while (atomic_load(&burst.go) != atomic_load(&burst.round_ready) + 1)
            sched_yield();
    if (n == BURST)
        weft_event_set(burst.all_in);
    return 0;
}

/* Sends round's burst once loop 1 is ready for it: 64 posts in a row. A loop waits by sleeping, not
 * spinning: the MSG_RING that woke loop 1 for the last round goes out with its next io_uring_enter. */
static void burst_send(int round)
{
    bool on_loop = weft_loop_current() != NULL;
    while (atomic_load(&burst.round_ready) != round)
        if (on_loop)
            EQ(weft_sleep(MS(1)), 0);
        else
            sched_yield();
    if (!burst.busy && on_loop)
        EQ(weft_sleep(MS(5)), 0); /* time for loop 1 to fall asleep in the kernel */
    else if (!burst.busy)
        usleep(5000);
    for (int i = 0; i < BURST; i++)
        EQ(weft_post(1, burst_arrived, NULL), 0);
    atomic_store(&burst.go, round + 1);
}

static void *burst_thread(void *arg)
{
    (void)arg;
    for (int round = 0; round < BURST_ROUNDS; round++)
        burst_send(round);
    return NULL;
}

static uint64_t own_counter(size_t offset)
{
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    return *(uint64_t *)((char *)&st + offset);
}

static intptr_t burst_main(void *arg)
{
    (void)arg;
    if (weft_loop_id() == 0) {
        if (burst.from_thread)
            return 0;
        for (int round = 0; round < BURST_ROUNDS; round++) {
            uint64_t before = own_counter(offsetof(weft_stats, ring_wakes));
            burst_send(round);
            burst.sender_wakes[round] = own_counter(offsetof(weft_stats, ring_wakes)) - before;
        }
        return 0;
    }
    burst.all_in = weft_event_new();
    cr_assert(burst.all_in != NULL);
    for (int round = 0; round < BURST_ROUNDS; round++) {
        atomic_store(&burst.arrived, 0);
        weft_event_clear(burst.all_in);
        uint64_t before = own_counter(offsetof(weft_stats, wake_writes));
        atomic_store(&burst.round_ready, round);
        if (burst.busy) /* running all along: a loop that never sleeps is never woken */
            while (atomic_load(&burst.go) != round + 1)
                weft_yield();
        EQ(weft_event_wait(burst.all_in), 0);
        burst.target_writes[round] = own_counter(offsetof(weft_stats, wake_writes)) - before;
    }
    weft_event_free(burst.all_in);
    return 0;
}

/* Runs the rounds; returns in how many a wakeup was paid (by the sender's MSG_RING or the target's
 * eventfd), after asserting none paid more than one. */
static int burst_rounds(bool busy, bool from_thread)
{
    memset(&burst, 0, sizeof burst);
    atomic_store(&burst.round_ready, -1);
    burst.busy = busy;
    burst.from_thread = from_thread;
    pthread_t th;
    if (from_thread)
        cr_assert(pthread_create(&th, NULL, burst_thread, NULL) == 0);
    EQ(weft_run_cores(2, burst_main, NULL, NULL), 0);
    if (from_thread)
        pthread_join(th, NULL);
    bool uring = strcmp(backend_env(), "io_uring") == 0;
    int woken = 0;
    for (int r = 0; r < BURST_ROUNDS; r++) {
        uint64_t wakes = burst.sender_wakes[r] + burst.target_writes[r];
        cr_assert(wakes <= 1, "round %d: a burst of %d posts cost %" PRIu64 " MSG_RINGs and %" PRIu64
                  " eventfd writes", r, BURST, burst.sender_wakes[r], burst.target_writes[r]);
        /* Between two loops, io_uring wakes with MSG_RING; a thread, and epoll, with the eventfd. */
        if (uring && !from_thread)
            EQ(burst.target_writes[r], 0);
        else
            EQ(burst.sender_wakes[r], 0);
        woken += (int)wakes;
    }
    return woken;
}

Test(cores, a_burst_of_posts_to_a_sleeping_loop_costs_it_one_wakeup)
{
    /* Loop 1 is asleep in the kernel when a burst starts, unless the machine was too busy for it to
     * get there in 5 ms: then the burst costs nothing. Most rounds must have found it asleep. */
    int woken = burst_rounds(false, false);
    cr_assert(woken >= BURST_ROUNDS / 2, "only %d of %d bursts woke loop 1", woken, BURST_ROUNDS);
    woken = burst_rounds(false, true);
    cr_assert(woken >= BURST_ROUNDS / 2, "only %d of %d bursts from a thread woke loop 1", woken, BURST_ROUNDS);
}

Test(cores, a_burst_of_posts_to_a_busy_loop_costs_no_wakeup)
{
    EQ(burst_rounds(true, false), 0);
    EQ(burst_rounds(true, true), 0);
}

/* ---- the shared executor --------------------------------------------------------------------------------- */

enum { JOBS = 32 };

struct job_note {
    pthread_t worker;
    int value;
};

static struct job_note job_notes[2][JOBS + 1];
static pthread_t loop_thread[2];
static atomic_int callbacks_on_own_loop[2];

static intptr_t note_worker(void *arg)
{
    struct job_note *n = arg;
    n->worker = pthread_self();
    return n->value * 2;
}

static void job_done_here(weft_future *f, void *arg)
{
    (void)f;
    unsigned asker = (unsigned)(uintptr_t)arg;
    if (weft_loop_id() == asker && pthread_equal(pthread_self(), loop_thread[asker]))
        atomic_fetch_add(&callbacks_on_own_loop[asker], 1);
}

static intptr_t executor_main(void *arg)
{
    (void)arg;
    unsigned me = weft_loop_id();
    loop_thread[me] = pthread_self();
    weft_future *fs[JOBS];
    for (int i = 0; i < JOBS; i++) {
        job_notes[me][i].value = (int)me * 1000 + i;
        fs[i] = weft_offload_async(note_worker, &job_notes[me][i]);
        cr_assert(fs[i] != NULL);
        EQ(weft_future_on_done(fs[i], job_done_here, (void *)(uintptr_t)me), 0);
    }
    intptr_t results[JOBS];
    EQ(weft_gather(fs, JOBS, results), 0);
    for (int i = 0; i < JOBS; i++) {
        EQ(results[i], ((int)me * 1000 + i) * 2);
        weft_future_free(fs[i]);
    }
    job_notes[me][JOBS].value = 7;
    EQ(weft_offload(note_worker, &job_notes[me][JOBS]), 14);
    /* The task resumed on its own loop's thread, and every callback ran there too. */
    EQ(weft_loop_id(), me);
    cr_assert(pthread_equal(pthread_self(), loop_thread[me]));
    weft_yield(); /* the last callbacks run */
    EQ(atomic_load(&callbacks_on_own_loop[me]), JOBS);
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    EQ(st.executor_jobs, JOBS + 1); /* each loop counts its own jobs */
    return 0;
}

Test(cores, loops_share_one_executor_and_each_gets_its_own_results_back)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.executor_threads = 1; /* one worker for both loops: the pool is shared, not one per loop */
    EQ(weft_run_cores(2, executor_main, NULL, &cfg), 0);
    pthread_t worker = job_notes[0][0].worker;
    for (unsigned l = 0; l < 2; l++)
        for (int i = 0; i <= JOBS; i++) {
            cr_assert(pthread_equal(job_notes[l][i].worker, worker), "loop %u's job %d ran on another thread", l, i);
            cr_assert(!pthread_equal(worker, loop_thread[l]), "a job ran on loop %u's own thread", l);
        }
}

/* ---- the watchdog names the loop ---------------------------------------------------------------------------- */

static intptr_t block_loop_1(void *arg)
{
    (void)arg;
    if (weft_loop_id() == 1)
        usleep(300 * 1000); /* holds loop 1 without suspending */
    return 0;
}

Test(cores, a_task_blocking_one_loop_is_reported_naming_that_loop)
{
    unsetenv("WEFT_SLOW_MS");
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.slow_task_ns = MS(50);
    stderr_capture_begin();
    int r = weft_run_cores(2, block_loop_1, NULL, &cfg);
    const char *err = stderr_capture_end();
    EQ(r, 0);
    CAPTURED_HAS(err, "task 'main' (#1) on loop 1 has run for");
    CAPTURED_HAS(err, "task 'main' (#1) on loop 1 held the loop for about");
    cr_assert(strstr(err, "on loop 0") == NULL, "loop 0 blocked nothing, yet:\n%s", err);
}

/* ---- a single loop (weft_run) -------------------------------------------------------------------------- */

static int self_posts;

static intptr_t self_post(void *arg)
{
    (void)arg;
    self_posts++;
    return 0;
}

static intptr_t single_main(void *arg)
{
    (void)arg;
    EQ(weft_loop_id(), 0);
    EQ(weft_loop_count(), 1);
    EQ(weft_post(0, self_post, NULL), 0);
    EQ(weft_post(1, self_post, NULL), -EINVAL);
    EQ(weft_submit_to(0, loop_times_ten, (void *)5), 5);
    settle();
    EQ(self_posts, 1);
    EQ(weft_run_cores(2, quick_main, NULL, NULL), -EBUSY);
    return 0;
}

Test(cores, under_weft_run_there_is_one_loop_number_0_that_takes_messages)
{
    EQ(run(single_main, NULL), 0);
    EQ(weft_post(0, self_post, NULL), -EINVAL); /* outside any loop */
}
