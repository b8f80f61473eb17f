/*
 * Signals as something a task waits for: weft_signal_wait reads a signalfd with weft_read, so on
 * io_uring the wait is one read request in the ring, and on epoll the signalfd waits for readiness as
 * a pipe does.
 *
 * A signal reaches a signalfd only while it is blocked; otherwise the kernel hands it to its
 * disposition (a handler, or the default action, which for SIGTERM ends the process). So a wait
 * blocks its signals in the loop's thread for as long as some task waits for them, and once nobody
 * does it unblocks exactly the ones it blocked: the caller's mask is left as it was found, and a
 * signal that arrives while no task waits for it meets its disposition as if weft were not there.
 *
 * One signalfd per thread serves every waiting task. Its mask is the union of their sets; one of the
 * tasks at a time (the reader) reads it and hands each signal to the task that has waited longest for
 * that signal. Tasks waiting for different signals thus all get theirs, and tasks waiting for the
 * same one get successive deliveries in the order they began to wait. The state exists only while a
 * task waits: the last one to leave closes the signalfd and frees it, so the loop's teardown (which
 * cancels the waiting tasks) needs to know nothing about it.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* What a waiter's future is resolved with: a signal was handed to it, or it is the reader now. */
enum { WAKE_GRANTED = 1, WAKE_READ = 2 };

typedef struct sig_waiter {
    weft__link link;              /* in the thread's waiters, in the order they began to wait */
    sigset_t set;
    weft_future *wake;            /* resolved at most once, WAKE_GRANTED or WAKE_READ */
    struct signalfd_siginfo info; /* the signal handed to it, once granted */
    bool granted;
} sig_waiter;

typedef struct sig_state {
    int fd;             /* the signalfd, reading the union of the waiters' sets */
    weft__list waiters;
    sig_waiter *reader; /* the waiter reading the signalfd; it reads until it leaves */
    sigset_t blocked;   /* the signals weft blocked in this thread, to unblock when nobody waits */
} sig_state;

/* Per thread, as the signal mask is: a loop's tasks all wait on the thread that runs it. */
static WEFT__TLS sig_state *tls_sig;

/* -EINVAL unless set names at least one signal and none that cannot be waited for. */
static int set_check(const sigset_t *set)
{
    if (!set || sigismember(set, SIGKILL) == 1 || sigismember(set, SIGSTOP) == 1)
        return -EINVAL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(set, sig) == 1)
            return 0;
    return -EINVAL;
}

/* The union of the sets of the tasks still waiting. */
static void watched_of(const sig_state *s, sigset_t *out)
{
    sigemptyset(out);
    for (weft__link *link = s->waiters.head; link; link = link->next)
        sigorset(out, out, &WEFT__CONTAINER(link, sig_waiter, link)->set);
}

/*
 * Adds w to the thread's waiters: blocks its signals first (a signal arriving between the two steps
 * then waits, pending, for the signalfd), then makes the signalfd read them.
 */
static int enter(sig_waiter *w)
{
    sig_state *s = tls_sig;
    bool fresh = !s;
    if (fresh) {
        s = calloc(1, sizeof *s);
        if (!s)
            return -ENOMEM;
        s->fd = -1;
        sigemptyset(&s->blocked);
    }
    sigset_t before, added;
    pthread_sigmask(SIG_BLOCK, &w->set, &before);
    sigemptyset(&added);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&w->set, sig) == 1 && sigismember(&before, sig) == 0)
            sigaddset(&added, sig);
    sigset_t watched;
    watched_of(s, &watched);
    sigorset(&watched, &watched, &w->set);
    int fd = signalfd(s->fd, &watched, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        int err = -errno;
        pthread_sigmask(SIG_UNBLOCK, &added, NULL);
        if (fresh)
            free(s);
        return err;
    }
    if (fd != s->fd)
        weft__fd_new(weft__tls_loop, fd, WEFT__FD_OTHER);
    s->fd = fd;
    sigorset(&s->blocked, &s->blocked, &added);
    weft__list_push(&s->waiters, &w->link);
    tls_sig = s;
    return 0;
}

/*
 * A signal read for a task that stopped waiting after the kernel had completed the read but before the
 * reader could hand it over. It is raised again at this thread, so it meets what it would have met
 * arriving a moment later: the next wait if it is still blocked, else its disposition.
 */
static void put_back(const struct signalfd_siginfo *info)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = (int)info->ssi_signo;
    si.si_code = info->ssi_code;
    si.si_pid = (pid_t)info->ssi_pid;
    si.si_uid = info->ssi_uid;
    si.si_value.sival_ptr = (void *)(uintptr_t)info->ssi_ptr;
    pid_t pid = getpid(), tid = gettid();
    /* Keeps the sender's details; the kernel refuses that for codes of kill() unless the loop runs on
     * the main thread, and then the signal goes back bare. */
    if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, si.si_signo, &si) < 0)
        tgkill(pid, tid, si.si_signo);
}

/* Hands a signal read from the signalfd to the longest-waiting task that wants it. */
static void dispatch(sig_state *s, const struct signalfd_siginfo *info)
{
    for (weft__link *link = s->waiters.head; link; link = link->next) {
        sig_waiter *w = WEFT__CONTAINER(link, sig_waiter, link);
        if (!w->granted && sigismember(&w->set, (int)info->ssi_signo) == 1) {
            w->info = *info;
            w->granted = true;
            if (w != s->reader)
                weft_future_resolve(w->wake, WAKE_GRANTED);
            return;
        }
    }
    put_back(info);
}

/* Waits until a signal is handed to w, reading the signalfd while w is the reader. */
static int wait_granted(sig_state *s, sig_waiter *w)
{
    if (!s->reader)
        s->reader = w;
    while (!w->granted) {
        if (s->reader != w) {
            intptr_t r = weft_await(w->wake);
            if (r < 0)
                return (int)r;
            continue;
        }
        struct signalfd_siginfo info;
        ssize_t n = weft_read(s->fd, &info, sizeof info, -1);
        if (n < 0)
            return (int)n;
        if (n != sizeof info)
            return -EIO; /* a signalfd reads whole records: this would be a kernel's bug */
        dispatch(s, &info);
    }
    return 0;
}

/*
 * Takes w off the waiters. A reader leaving hands reading to the first waiter still waiting. The
 * signals nobody waits for any more are unblocked before anything can suspend, so that a wait that
 * begins meanwhile finds the mask as the others left it.
 */
static void leave(sig_state *s, sig_waiter *w)
{
    weft__list_remove(&s->waiters, &w->link);
    if (s->reader == w) {
        s->reader = NULL;
        for (weft__link *link = s->waiters.head; link; link = link->next) {
            sig_waiter *next = WEFT__CONTAINER(link, sig_waiter, link);
            if (!next->granted) {
                s->reader = next;
                weft_future_resolve(next->wake, WAKE_READ);
                break;
            }
        }
    }
    sigset_t watched, release;
    watched_of(s, &watched);
    sigemptyset(&release);
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&s->blocked, sig) == 1 && sigismember(&watched, sig) == 0) {
            sigaddset(&release, sig);
            sigdelset(&s->blocked, sig);
        }
    int fd = -1;
    if (!s->waiters.head) {
        fd = s->fd;
        tls_sig = NULL;
        free(s);
    } else {
        /* Should this fail, the signalfd also reads signals nobody waits for: put_back returns them. */
        signalfd(s->fd, &watched, 0);
    }
    pthread_sigmask(SIG_UNBLOCK, &release, NULL);
    if (fd >= 0)
        weft_close(fd);
}

int weft_signal_wait(const sigset_t *set, struct signalfd_siginfo *info)
{
    int r = set_check(set);
    if (r)
        return r;
    weft_task *t;
    r = weft__wait_check(true, &t);
    if (r)
        return r;
    sig_waiter w = {.set = *set};
    w.wake = weft_future_new();
    if (!w.wake)
        return -ENOMEM;
    r = enter(&w);
    if (r) {
        weft_future_free(w.wake);
        return r;
    }
    sig_state *s = tls_sig;
    r = wait_granted(s, &w);
    leave(s, &w);
    weft_future_free(w.wake);
    if (!w.granted)
        return r;
    if (info)
        *info = w.info;
    return (int)w.info.ssi_signo;
}

void weft__signal_mask_own(sigset_t *mask)
{
    pthread_sigmask(SIG_SETMASK, NULL, mask);
    const sig_state *s = tls_sig;
    if (!s)
        return;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&s->blocked, sig) == 1)
            sigdelset(mask, sig);
}
