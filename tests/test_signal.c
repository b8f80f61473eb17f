/*
 * weft_signal_wait: signals sent to the process, to the loop's thread and from other threads; the
 * sender's details; tasks waiting for different signals and for the same one (FIFO); a signal pending
 * before the wait; cancellation and deadlines; the thread's signal mask and dispositions as they were
 * after every return, and after a loop that ends with a task still waiting; bad sets.
 *
 * The Criterion worker has a second thread, which blocks every signal, so a signal sent to the
 * process can only reach the loop's thread, as in a program whose other threads block it.
 */
#include <pthread.h>
#include <sys/signalfd.h>

#include "common.h"

TestSuite(signal, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------------------- */

static sigset_t set_of(int a, int b)
{
    sigset_t set;
    sigemptyset(&set);
    if (a)
        sigaddset(&set, a);
    if (b)
        sigaddset(&set, b);
    return set;
}

static sigset_t mask_now(void)
{
    sigset_t m;
    pthread_sigmask(SIG_SETMASK, NULL, &m);
    return m;
}

static bool blocked_now(int sig)
{
    sigset_t m = mask_now();
    return sigismember(&m, sig) == 1;
}

/* Asserts the thread's mask is want, naming the first signal that differs. */
static void mask_expect(const sigset_t *want, const char *when)
{
    sigset_t now = mask_now();
    for (int sig = 1; sig < NSIG; sig++) {
        int a = sigismember(&now, sig), b = sigismember(want, sig);
        cr_assert(a == b, "%s: signal %d (%s) is %s, was %s", when, sig, strsignal(sig), a ? "blocked" : "unblocked",
                  b ? "blocked" : "unblocked");
    }
}

/* Asserts sig's disposition is still want (a handler, or SIG_DFL). */
static void disposition_expect(int sig, void (*want)(int))
{
    struct sigaction now;
    EQ(sigaction(sig, NULL, &now), 0);
    cr_assert(now.sa_handler == want, "the disposition of %s changed", strsignal(sig));
}

static volatile sig_atomic_t handled[NSIG];

static void count_signal(int sig)
{
    handled[sig]++;
}

static void handler_install(int sig)
{
    struct sigaction sa = {.sa_handler = count_signal};
    sigemptyset(&sa.sa_mask);
    cr_assert(sigaction(sig, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
}

struct waiter {
    sigset_t set;
    int id;
    struct signalfd_siginfo info;
    int result;
};

static intptr_t waiter_main(void *arg)
{
    struct waiter *w = arg;
    w->result = weft_signal_wait(&w->set, &w->info);
    ev(w->id);
    return w->result;
}

/* ---- delivery ------------------------------------------------------------------------------------ */

static intptr_t sigterm_main(void *arg)
{
    (void)arg;
    sigset_t before = mask_now();
    struct waiter w = {.set = set_of(SIGTERM, 0), .id = 1};
    weft_task *t = weft_spawn(waiter_main, &w);
    settle();
    /* SIGTERM is blocked while the task waits, and was not before. */
    cr_assert(sigismember(&before, SIGTERM) == 0);
    cr_assert(blocked_now(SIGTERM), "SIGTERM is not blocked during the wait");
    EQ(kill(getpid(), SIGTERM), 0);
    EQ(weft_join(t), SIGTERM);
    EQ(w.info.ssi_signo, SIGTERM);
    EQ(w.info.ssi_code, SI_USER);
    EQ(w.info.ssi_pid, getpid());
    EQ(w.info.ssi_uid, getuid());
    mask_expect(&before, "after the wait");
    disposition_expect(SIGTERM, SIG_DFL);
    return 0;
}

Test(signal, kill_of_the_process_wakes_a_task_waiting_for_sigterm_without_a_handler)
{
    /* The default configuration, so the watchdog thread runs: it must not take the signal. */
    EQ(run_limited(sigterm_main, NULL, SEC(10)), 0);
}

static intptr_t details_main(void *arg)
{
    (void)arg;
    struct waiter a = {.set = set_of(SIGUSR1, 0), .id = 1};
    weft_task *t = weft_spawn(waiter_main, &a);
    settle();
    EQ(raise(SIGUSR1), 0);
    EQ(weft_join(t), SIGUSR1);
    EQ(a.info.ssi_code, SI_TKILL);
    EQ(a.info.ssi_pid, getpid());

    struct waiter b = {.set = set_of(SIGUSR2, 0), .id = 2};
    t = weft_spawn(waiter_main, &b);
    settle();
    EQ(sigqueue(getpid(), SIGUSR2, (union sigval){.sival_int = 4242}), 0);
    EQ(weft_join(t), SIGUSR2);
    EQ(b.info.ssi_code, SI_QUEUE);
    EQ(b.info.ssi_int, 4242);

    return 0;
}

Test(signal, raise_and_sigqueue_give_the_senders_details_and_the_queued_value)
{
    EQ(run_limited(details_main, NULL, SEC(10)), 0);
}

static intptr_t null_info_task(void *arg)
{
    (void)arg;
    sigset_t set = set_of(SIGUSR1, 0);
    return weft_signal_wait(&set, NULL);
}

static void *kill_loop_thread(void *arg)
{
    pthread_t *loop_thread = arg;
    intptr_t r = pthread_kill(*loop_thread, SIGUSR1);
    return (void *)r;
}

static intptr_t pthread_kill_main(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(null_info_task, NULL);
    settle();
    /* The new thread inherits a mask without SIGUSR1: a signal to the process could go to it, one to
     * the loop's thread cannot. */
    pthread_t self = pthread_self(), killer;
    EQ(pthread_create(&killer, NULL, kill_loop_thread, &self), 0);
    EQ(weft_join(t), SIGUSR1);
    void *r;
    EQ(pthread_join(killer, &r), 0);
    EQ((intptr_t)r, 0);
    return 0;
}

Test(signal, pthread_kill_from_another_thread_reaches_the_task_waiting_on_the_loops_thread)
{
    EQ(run_limited(pthread_kill_main, NULL, SEC(10)), 0);
}

/* ---- several waiters ----------------------------------------------------------------------------- */

static intptr_t different_main(void *arg)
{
    (void)arg;
    sigset_t before = mask_now();
    struct waiter a = {.set = set_of(SIGUSR1, 0), .id = 1};
    struct waiter b = {.set = set_of(SIGUSR2, 0), .id = 2};
    weft_task *ta = weft_spawn(waiter_main, &a);
    weft_task *tb = weft_spawn(waiter_main, &b);
    settle();
    /* a began first and reads the signalfd; the signal it reads is b's. */
    EQ(raise(SIGUSR2), 0);
    settle();
    EV_EXPECT(2);
    EQ(weft_join(tb), SIGUSR2);
    /* SIGUSR2 is unblocked again; SIGUSR1 is still blocked for a. */
    cr_assert(!blocked_now(SIGUSR2), "SIGUSR2 still blocked after its wait");
    cr_assert(blocked_now(SIGUSR1), "SIGUSR1 unblocked while a task waits");
    EQ(raise(SIGUSR1), 0);
    EQ(weft_join(ta), SIGUSR1);
    EV_EXPECT(2, 1);
    mask_expect(&before, "after both waits");
    return 0;
}

Test(signal, two_tasks_waiting_for_different_signals_each_get_their_own)
{
    EQ(run_limited(different_main, NULL, SEC(10)), 0);
}

enum { SAME = 4 };

static intptr_t same_rt_main(void *arg)
{
    (void)arg;
    struct waiter w[SAME];
    weft_task *t[SAME];
    for (int i = 0; i < SAME; i++) {
        w[i] = (struct waiter){.set = set_of(SIGRTMIN, 0), .id = i};
        t[i] = weft_spawn(waiter_main, &w[i]);
        settle(); /* they begin to wait in this order */
    }
    /* Real-time signals queue: four sent at once are four deliveries, in the order sent. */
    for (int i = 0; i < SAME; i++)
        EQ(sigqueue(getpid(), SIGRTMIN, (union sigval){.sival_int = 100 + i}), 0);
    for (int i = 0; i < SAME; i++) {
        EQ(weft_join(t[i]), SIGRTMIN);
        EQ(w[i].info.ssi_int, 100 + i);
    }
    EV_EXPECT(0, 1, 2, 3);
    return 0;
}

Test(signal, tasks_waiting_for_one_realtime_signal_get_the_queued_deliveries_in_fifo_order)
{
    EQ(run_limited(same_rt_main, NULL, SEC(10)), 0);
}

static intptr_t same_std_main(void *arg)
{
    (void)arg;
    struct waiter w[SAME];
    weft_task *t[SAME];
    for (int i = 0; i < SAME; i++) {
        /* Each waits for SIGUSR1 and something else, so their sets differ but overlap. */
        w[i] = (struct waiter){.set = set_of(SIGUSR1, i % 2 ? SIGHUP : SIGWINCH), .id = i};
        t[i] = weft_spawn(waiter_main, &w[i]);
        settle();
    }
    for (int i = 0; i < SAME; i++) {
        EQ(kill(getpid(), SIGUSR1), 0);
        settle();
        EQ(ev_len, (size_t)i + 1); /* one delivery wakes one task */
    }
    for (int i = 0; i < SAME; i++)
        EQ(weft_join(t[i]), SIGUSR1);
    EV_EXPECT(0, 1, 2, 3);
    return 0;
}

Test(signal, tasks_waiting_for_one_signal_get_successive_deliveries_in_the_order_they_began)
{
    EQ(run_limited(same_std_main, NULL, SEC(10)), 0);
}

/* ---- before, between and after waits ------------------------------------------------------------- */

static intptr_t pending_main(void *arg)
{
    (void)arg;
    sigset_t usr1 = set_of(SIGUSR1, 0);
    EQ(pthread_sigmask(SIG_BLOCK, &usr1, NULL), 0);
    sigset_t before = mask_now();
    EQ(raise(SIGUSR1), 0); /* pending: the caller blocks it */
    struct signalfd_siginfo info;
    EQ(weft_signal_wait(&usr1, &info), SIGUSR1);
    EQ(info.ssi_code, SI_TKILL);
    /* weft did not block it, so it does not unblock it: the caller's mask is as it was. */
    mask_expect(&before, "after a wait for a signal the caller blocks");
    sigset_t pending;
    EQ(sigpending(&pending), 0);
    cr_assert(sigismember(&pending, SIGUSR1) == 0, "the signal returned is still pending");
    /* Blocked by the caller, a signal arriving between two waits is kept for the next one. */
    EQ(kill(getpid(), SIGUSR1), 0);
    settle();
    EQ(weft_signal_wait(&usr1, NULL), SIGUSR1);
    EQ(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL), 0);
    return 0;
}

Test(signal, a_signal_pending_before_the_wait_is_returned_at_once_and_the_callers_block_stays)
{
    EQ(run_limited(pending_main, NULL, SEC(10)), 0);
}

static intptr_t between_main(void *arg)
{
    (void)arg;
    handler_install(SIGUSR1);
    sigset_t usr1 = set_of(SIGUSR1, 0);
    /* Nobody waits: the handler takes it. */
    EQ(raise(SIGUSR1), 0);
    EQ(handled[SIGUSR1], 1);
    /* A later wait does not see that one again. */
    weft_deadline_push(weft_now() + MS(30));
    EQ(weft_signal_wait(&usr1, NULL), -ETIMEDOUT);
    weft_deadline_pop();
    /* A wait takes it from the handler... */
    struct waiter w = {.set = usr1, .id = 1};
    weft_task *t = weft_spawn(waiter_main, &w);
    settle();
    EQ(raise(SIGUSR1), 0);
    EQ(weft_join(t), SIGUSR1);
    EQ(handled[SIGUSR1], 1);
    /* ...and once it has returned, the handler has it back. */
    EQ(raise(SIGUSR1), 0);
    EQ(handled[SIGUSR1], 2);
    disposition_expect(SIGUSR1, count_signal);
    return 0;
}

Test(signal, a_signal_arriving_while_no_task_waits_meets_its_handler_and_no_later_wait)
{
    EQ(run_limited(between_main, NULL, SEC(10)), 0);
}

/* ---- interruption ------------------------------------------------------------------------------ */

static intptr_t cancel_main(void *arg)
{
    (void)arg;
    handler_install(SIGUSR1);
    sigset_t before = mask_now();
    int fds = count_open_fds();
    struct waiter w = {.set = set_of(SIGUSR1, SIGUSR2), .id = 1};
    weft_task *t = weft_spawn(waiter_main, &w);
    settle();
    EQ(count_open_fds(), fds + 1); /* the signalfd */
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    mask_expect(&before, "after a cancelled wait");
    EQ(count_open_fds(), fds);
    /* Unblocked again: the handler gets the next one. */
    EQ(raise(SIGUSR1), 0);
    EQ(handled[SIGUSR1], 1);
    return 0;
}

Test(signal, cancelling_a_wait_returns_ecanceled_restores_the_mask_and_closes_the_signalfd)
{
    EQ(run_limited(cancel_main, NULL, SEC(10)), 0);
}

static intptr_t deadline_main(void *arg)
{
    (void)arg;
    sigset_t before = mask_now();
    sigset_t set = set_of(SIGUSR1, 0);
    uint64_t start = weft_now();
    weft_deadline_push(start + MS(40));
    EQ(weft_signal_wait(&set, NULL), -ETIMEDOUT);
    /* Sticky until popped, like every deadline, and checked before anything is blocked. */
    EQ(weft_signal_wait(&set, NULL), -ETIMEDOUT);
    weft_deadline_pop();
    cr_assert(weft_now() - start >= MS(40), "returned before the deadline");
    mask_expect(&before, "after a wait past its deadline");
    return 0;
}

Test(signal, a_deadline_ends_the_wait_with_etimedout_and_restores_the_mask)
{
    EQ(run_limited(deadline_main, NULL, SEC(10)), 0);
}

static intptr_t handover_main(void *arg)
{
    (void)arg;
    struct waiter a = {.set = set_of(SIGUSR1, 0), .id = 1};
    struct waiter b = {.set = set_of(SIGUSR2, 0), .id = 2};
    weft_task *ta = weft_spawn(waiter_main, &a);
    weft_task *tb = weft_spawn(waiter_main, &b);
    settle();
    /* a reads the signalfd; once it leaves, b must read it. */
    EQ(weft_cancel(ta), 0);
    EQ(weft_join(ta), -ECANCELED);
    cr_assert(!blocked_now(SIGUSR1), "SIGUSR1 still blocked after its wait");
    EQ(kill(getpid(), SIGUSR2), 0);
    EQ(weft_join(tb), SIGUSR2);
    EV_EXPECT(1, 2);
    return 0;
}

Test(signal, when_the_task_reading_the_signalfd_leaves_the_next_waiter_reads_it)
{
    EQ(run_limited(handover_main, NULL, SEC(10)), 0);
}

static intptr_t raced_main(void *arg)
{
    (void)arg;
    handler_install(SIGUSR2);
    sigset_t before = mask_now();
    struct waiter a = {.set = set_of(SIGUSR1, 0), .id = 1};
    struct waiter b = {.set = set_of(SIGUSR2, 0), .id = 2};
    weft_task *ta = weft_spawn(waiter_main, &a);
    weft_task *tb = weft_spawn(waiter_main, &b);
    settle();
    /* b's signal arrives, and b is cancelled before the reader has handed it over. Whether the kernel
     * has already completed the reader's read or not, the signal must reach its handler once. */
    EQ(raise(SIGUSR2), 0);
    EQ(weft_cancel(tb), 0);
    EQ(weft_join(tb), -ECANCELED);
    settle();
    EQ(handled[SIGUSR2], 1);
    EQ(weft_cancel(ta), 0);
    EQ(weft_join(ta), -ECANCELED);
    EQ(handled[SIGUSR2], 1);
    mask_expect(&before, "after both waits");
    return 0;
}

Test(signal, a_signal_whose_waiter_is_cancelled_before_the_handover_reaches_its_handler_once)
{
    EQ(run_limited(raced_main, NULL, SEC(10)), 0);
}

static intptr_t teardown_main(void *arg)
{
    (void)arg;
    static struct waiter w;
    w = (struct waiter){.set = set_of(SIGTERM, SIGINT), .id = 1};
    weft_detach(weft_spawn(waiter_main, &w));
    settle();
    return 0; /* the loop's teardown cancels the waiting task */
}

Test(signal, a_loop_ending_with_a_task_still_waiting_leaves_the_mask_and_fds_as_they_were)
{
    sigset_t before = mask_now();
    int fds = count_open_fds();
    EQ(run(teardown_main, NULL), 0);
    mask_expect(&before, "after the loop ended");
    EQ(count_open_fds(), fds);
}

/* ---- misuse ---------------------------------------------------------------------------------------- */

static intptr_t misuse_main(void *arg)
{
    (void)arg;
    sigset_t before = mask_now();
    int fds = count_open_fds();
    sigset_t empty, kill_set = set_of(SIGKILL, 0), stop_set = set_of(SIGSTOP, 0),
                    mixed = set_of(SIGUSR1, SIGKILL), full;
    sigemptyset(&empty);
    sigfillset(&full);
    EQ(weft_signal_wait(NULL, NULL), -EINVAL);
    EQ(weft_signal_wait(&empty, NULL), -EINVAL);
    EQ(weft_signal_wait(&kill_set, NULL), -EINVAL);
    EQ(weft_signal_wait(&stop_set, NULL), -EINVAL);
    EQ(weft_signal_wait(&mixed, NULL), -EINVAL);
    EQ(weft_signal_wait(&full, NULL), -EINVAL);
    /* A cancelled task is refused before anything is blocked or opened. */
    sigset_t usr1 = set_of(SIGUSR1, 0);
    EQ(weft_cancel(weft_self()), 0);
    EQ(weft_signal_wait(&usr1, NULL), -ECANCELED);
    mask_expect(&before, "after refused waits");
    EQ(count_open_fds(), fds);
    return 0;
}

Test(signal, bad_sets_give_einval_a_cancelled_task_ecanceled_and_nothing_changes)
{
    EQ(run(misuse_main, NULL), 0);
}

static void wait_in_callback(void *arg)
{
    sigset_t set = set_of(SIGUSR1, 0);
    *(int *)arg = weft_signal_wait(&set, NULL);
}

Test(signal, outside_a_task_the_wait_gives_eperm)
{
    sigset_t set = set_of(SIGUSR1, 0);
    EQ(weft_signal_wait(&set, NULL), -EPERM); /* no loop */
    EQ(weft_signal_wait(NULL, NULL), -EINVAL);
    int from_callback = 0;
    run_in_callback(wait_in_callback, &from_callback);
    EQ(from_callback, -EPERM);
}
