/*
 * The executor: a pool of threads for CPU-bound and blocking work (asyncio's run_in_executor).
 *
 * A job is queued under the executor's mutex and runs on a worker thread. Its result travels back as
 * a future posted to the owning loop's remote list (future.c): the loop is woken through its eventfd
 * only if it announced it may sleep, so many jobs finishing together cost the loop one wakeup, and a
 * busy loop picks completions up on its next turn with no system call at all.
 *
 * The eventfd was measured against IORING_OP_MSG_RING from a per-worker ring: see docs/executor.md.
 *
 * The queue is bounded: a task offloading onto a full queue waits for room (a worker that takes a job
 * out hands the room to the first waiter), so neither memory nor latency grows without bound and no
 * job is dropped.
 */
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WEFT__DEFAULT_QUEUE_PER_THREAD 256

enum { JOB_QUEUED, JOB_RUNNING, JOB_FINISHED };

typedef struct weft__job {
    weft_future future;              /* completes with fn's result; an owned future for async jobs */
    weft_fn fn;
    void *arg;
    struct weft_executor *_Atomic ex; /* NULL once the executor shut down with the job queued */
    weft__link queue_link;           /* in ex->queue, under ex->lock */
    weft__link loop_link;            /* in the loop's async_jobs (loop thread), async jobs only */
    int state;                       /* under ex->lock */
    int cancel_reason;               /* set by the loop for a running job it cancelled */
    bool is_async;
    void (*landed)(void *arg, intptr_t result); /* callback job: runs on the loop instead of a future */
    weft__maker maker;                          /* async jobs: who asked */
    void *landed_arg;
    weft__job_trace trace;                      /* its times, when its loop traces (trace.c) */
} weft__job;

/* A task waiting for room in a full queue. */
typedef struct space_waiter {
    weft_future ready;               /* posted by the worker that made room */
    weft__link link;                 /* in ex->space_waiters, under ex->lock */
    bool listed;                     /* still in ex->space_waiters (under ex->lock) */
} space_waiter;

struct weft_executor {
    pthread_mutex_t lock;
    pthread_cond_t work;
    weft__list queue;                /* jobs not started, oldest first */
    size_t queued, limit;
    unsigned idle;                   /* workers waiting on work */
    unsigned signalled;              /* wakeups sent and not yet consumed */
    bool stopping;
    weft__list space_waiters;        /* tasks waiting for room, first come first served */
    unsigned nthreads;
    pthread_t *threads;
};

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static weft_executor *default_executor;
static unsigned default_refs;

static void queue_unlink(weft_executor *ex, weft__job *j)
{
    weft__list_remove(&ex->queue, &j->queue_link);
    ex->queued--;
}

/* With ex->lock held: the first task waiting for room, taken off the list, to be posted unlocked. */
static space_waiter *space_take(weft_executor *ex)
{
    if (!ex->space_waiters.head || ex->queued >= ex->limit)
        return NULL;
    space_waiter *w = WEFT__CONTAINER(weft__list_pop(&ex->space_waiters), space_waiter, link);
    w->listed = false;
    return w;
}

static void *worker_main(void *arg)
{
    weft_executor *ex = arg;
    pthread_mutex_lock(&ex->lock);
    for (;;) {
        while (!ex->queue.head && !ex->stopping) {
            ex->idle++;
            pthread_cond_wait(&ex->work, &ex->lock);
            ex->idle--;
            if (ex->signalled)
                ex->signalled--;
        }
        if (!ex->queue.head)
            break;
        weft__job *j = WEFT__CONTAINER(ex->queue.head, weft__job, queue_link);
        queue_unlink(ex, j);
        j->state = JOB_RUNNING;
        space_waiter *w = space_take(ex);
        pthread_mutex_unlock(&ex->lock);
        if (w)
            weft__future_post(&w->ready, 0);
        if (WEFT__UNLIKELY(j->trace.on))
            weft__trace_job_started(&j->trace);
        intptr_t result = j->fn(j->arg);
        if (WEFT__UNLIKELY(j->trace.on))
            weft__trace_job_ended(&j->trace, result);
        pthread_mutex_lock(&ex->lock);
        j->state = JOB_FINISHED;
        pthread_mutex_unlock(&ex->lock);
        /* After this the job may be gone: its task can return as soon as the loop drains it. */
        weft__future_post(&j->future, result);
        pthread_mutex_lock(&ex->lock);
    }
    pthread_mutex_unlock(&ex->lock);
    return NULL;
}

static weft_executor *executor_create(unsigned threads, size_t limit)
{
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    weft_executor *ex = calloc(1, sizeof *ex);
    if (!ex)
        return NULL;
    ex->threads = calloc(threads, sizeof *ex->threads);
    if (!ex->threads) {
        free(ex);
        return NULL;
    }
    ex->limit = limit ? limit : (size_t)threads * WEFT__DEFAULT_QUEUE_PER_THREAD;
    pthread_mutex_init(&ex->lock, NULL);
    pthread_cond_init(&ex->work, NULL);
    /* Workers take no signals: they belong to the threads the application made. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = 0;
    for (unsigned i = 0; i < threads; i++) {
        err = pthread_create(&ex->threads[i], NULL, worker_main, ex);
        if (err)
            break;
        ex->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        weft_executor_free(ex);
        errno = err;
        return NULL;
    }
    return ex;
}

weft_executor *weft_executor_new(unsigned threads)
{
    return weft_executor_new_bounded(threads, 0);
}

weft_executor *weft_executor_new_bounded(unsigned threads, size_t queue_limit)
{
    weft_executor *ex = executor_create(threads, queue_limit);
    if (!ex && !errno)
        errno = ENOMEM;
    return ex;
}

void weft_executor_free(weft_executor *ex)
{
    if (!ex)
        return;
    pthread_mutex_lock(&ex->lock);
    ex->stopping = true;
    /* Jobs nobody started: their tasks get -ECANCELED; tasks waiting for room get it too. */
    weft__list queued = ex->queue, waiters = ex->space_waiters;
    ex->queue = ex->space_waiters = (weft__list){0};
    ex->queued = 0;
    for (weft__link *link = queued.head; link; link = link->next) {
        weft__job *j = WEFT__CONTAINER(link, weft__job, queue_link);
        j->state = JOB_FINISHED;
        atomic_store(&j->ex, NULL);
    }
    for (weft__link *link = waiters.head; link; link = link->next)
        WEFT__CONTAINER(link, space_waiter, link)->listed = false;
    pthread_cond_broadcast(&ex->work);
    pthread_mutex_unlock(&ex->lock);
    /* Posting may end a job's life on its loop: take each off the list before posting it. */
    weft__link *link;
    while ((link = weft__list_pop(&queued)))
        weft__future_post(&WEFT__CONTAINER(link, weft__job, queue_link)->future, -ECANCELED);
    while ((link = weft__list_pop(&waiters)))
        weft__future_post(&WEFT__CONTAINER(link, space_waiter, link)->ready, -ECANCELED);
    for (unsigned i = 0; i < ex->nthreads; i++)
        pthread_join(ex->threads[i], NULL);
    pthread_cond_destroy(&ex->work);
    pthread_mutex_destroy(&ex->lock);
    free(ex->threads);
    free(ex);
}

/* ---- waiting for room --------------------------------------------------------------------- */

/*
 * With ex->lock held on entry: waits until the queue has room. Returns 0 with the lock still held, or
 * with the lock released the reason the wait was interrupted, or -ECANCELED if the executor shut
 * down. A waiter the shutdown woke must not touch ex again: weft_executor_free may have freed it.
 */
static int space_wait(weft_executor *ex, weft_task *t)
{
    while (ex->queued >= ex->limit && !ex->stopping) {
        space_waiter w;
        memset(&w, 0, sizeof w);
        weft__future_init(&w.ready, &weft__user_future, t->loop);
        w.listed = true;
        weft__list_push(&ex->space_waiters, &w.link);
        pthread_mutex_unlock(&ex->lock);
        bool completed;
        intptr_t r = weft__await(t, &w.ready, &completed);
        if (completed) {
            if (r < 0)
                return (int)r; /* the executor shut down: it is gone */
            pthread_mutex_lock(&ex->lock);
            continue; /* a worker made room: look again */
        }
        pthread_mutex_lock(&ex->lock);
        if (w.listed) {
            /* Still queued for room: leave the line. */
            weft__list_remove(&ex->space_waiters, &w.link);
            pthread_mutex_unlock(&ex->lock);
            return (int)r;
        }
        /* Interrupted, but a worker (or the shutdown) already took us off the line and its post is
         * on the way to the loop: the future must not die before it lands. Wait for it. */
        pthread_mutex_unlock(&ex->lock);
        while (!weft_future_done(&w.ready)) {
            weft__waiter waiter = {.task = t};
            weft__waiter_link(&w.ready, &waiter);
            weft__park(t, NULL, NULL, UINT64_MAX, 0);
        }
        if (w.ready.result == 0) {
            /* It was room: pass it on to the next in line. */
            pthread_mutex_lock(&ex->lock);
            space_waiter *next = space_take(ex);
            pthread_mutex_unlock(&ex->lock);
            if (next)
                weft__future_post(&next->ready, 0);
        }
        return (int)r;
    }
    if (ex->stopping) {
        pthread_mutex_unlock(&ex->lock);
        return -ECANCELED;
    }
    return 0;
}

/* ---- submitting and awaiting ----------------------------------------------------------------- */

/*
 * Queues j. A task (waiter) waits for room in a full queue; a job with nobody to wait (an _async
 * offload, a request the backend runs here) is queued past the limit instead, as asyncio's
 * run_in_executor never refuses work: the limit holds back the tasks, which can wait, and those jobs
 * are bounded by whoever makes them.
 */
static int job_submit(weft_executor *ex, weft__job *j, weft_task *waiter)
{
    pthread_mutex_lock(&ex->lock);
    if (waiter) {
        int r = space_wait(ex, waiter);
        if (r < 0)
            return r; /* space_wait released the lock */
    } else if (ex->stopping) {
        pthread_mutex_unlock(&ex->lock);
        return -ECANCELED;
    }
    j->state = JOB_QUEUED;
    weft__list_push(&ex->queue, &j->queue_link);
    ex->queued++;
    /* Wake a worker only if one is idle and not already on its way: one wakeup per job at most. */
    bool wake = ex->idle > ex->signalled;
    if (wake)
        ex->signalled++;
    pthread_mutex_unlock(&ex->lock);
    if (wake)
        pthread_cond_signal(&ex->work);
    return 0;
}

static const weft__future_ops job_future, async_job_future;

static void job_init(weft__job *j, weft_executor *ex, weft_fn fn, void *arg, weft_loop *l, bool is_async)
{
    memset(j, 0, sizeof *j);
    weft__future_init(&j->future, is_async ? &async_job_future : &job_future, l);
    j->fn = fn;
    j->arg = arg;
    j->ex = ex;
    j->is_async = is_async;
    if (WEFT__UNLIKELY(l->trace != NULL))
        weft__trace_job_queued(l, &j->trace);
}

/* Removes a queued job; false if a worker already has it. On the loop thread. */
static bool job_dequeue(weft__job *j)
{
    weft_executor *ex = atomic_load(&j->ex);
    if (!ex)
        return false; /* shut down: its -ECANCELED is on the way */
    pthread_mutex_lock(&ex->lock);
    bool queued = j->state == JOB_QUEUED;
    space_waiter *w = NULL;
    if (queued) {
        queue_unlink(ex, j);
        j->state = JOB_FINISHED;
        w = space_take(ex);
    }
    pthread_mutex_unlock(&ex->lock);
    if (w)
        weft__future_post(&w->ready, 0);
    return queued;
}

static weft_executor *default_get(weft_loop *l)
{
    if (l->uses_default_executor)
        return default_executor;
    pthread_mutex_lock(&default_lock);
    if (!default_executor)
        default_executor = executor_create(l->cfg.executor_threads, l->cfg.executor_queue);
    weft_executor *ex = default_executor;
    if (ex) {
        default_refs++;
        l->uses_default_executor = true;
    }
    pthread_mutex_unlock(&default_lock);
    return ex;
}

/* A job for the default executor, in a block of its own; NULL with errno set. */
static weft__job *job_new(weft_loop *l, weft_fn fn, void *arg, bool is_async)
{
    weft_executor *ex = default_get(l);
    weft__job *j = ex ? malloc(sizeof *j) : NULL;
    if (!j) {
        errno = ENOMEM;
        return NULL;
    }
    job_init(j, ex, fn, arg, l, is_async);
    return j;
}

void weft__exec_default_release(weft_loop *l)
{
    if (!l->uses_default_executor)
        return;
    l->uses_default_executor = false;
    weft_executor *gone = NULL;
    pthread_mutex_lock(&default_lock);
    if (--default_refs == 0) {
        gone = default_executor;
        default_executor = NULL;
    }
    pthread_mutex_unlock(&default_lock);
    weft_executor_free(gone);
}

/* The loop has the job's result (drained from the remote list, or cancelled while queued). */
static void job_landed(weft_loop *l, weft__job *j)
{
    l->jobs_inflight--;
    if (j->is_async)
        weft__list_remove(&l->async_jobs, &j->loop_link);
}

/* A worker's result reached the loop (the remote list): the job has let go of its future. */
static bool job_result_landed(weft_loop *l, weft_future *f)
{
    weft__job *j = WEFT__CONTAINER(f, weft__job, future);
    if (WEFT__UNLIKELY(j->trace.on))
        weft__trace_job_landed(l, &j->trace, j->landed ? WEFT__JOB_IO : j->is_async ? WEFT__JOB_ASYNC : WEFT__JOB_OFFLOAD,
                               j->landed ? j->landed_arg : NULL);
    job_landed(l, j);
    if (!j->landed)
        return true;
    j->landed(j->landed_arg, f->result);
    free(j);
    return false;
}

static bool async_job_result_landed(weft_loop *l, weft_future *f)
{
    job_result_landed(l, f);
    /* Completed first, then let go, so the block outlives the completion of its future. */
    weft__future_complete(l, f, f->result);
    weft__owned_done(f);
    return false;
}

/* weft_offload's job, on the waiting task's stack: no user can reach its future. */
static const weft__future_ops job_future = {
    .cancel = weft__future_cancel_refused,
    .free = weft__future_nothing_to_free,
    .release = weft__future_nothing_to_free,
    .landed = job_result_landed,
};

struct weft__job *weft__exec_submit_cb(weft_loop *l, weft_task *waiter, weft_fn fn, void *arg, void (*landed)(void *, intptr_t),
                           void *landed_arg)
{
    weft__job *j = job_new(l, fn, arg, false);
    if (!j)
        return NULL;
    j->landed = landed;
    j->landed_arg = landed_arg;
    int r = job_submit(j->ex, j, waiter);
    if (r < 0) {
        free(j);
        errno = -r;
        return NULL;
    }
    l->jobs_inflight++;
    l->stats.executor_jobs++;
    return j;
}

void weft__exec_cancel_cb(struct weft__job *j)
{
    weft_loop *l = atomic_load_explicit(&j->future.loop, memory_order_relaxed);
    if (job_dequeue(j)) {
        job_landed(l, j);
        j->landed(j->landed_arg, -ECANCELED);
        free(j);
    }
}

void weft__offload_interrupt(weft_task *t, int reason)
{
    weft__job *j = t->park_obj;
    if (job_dequeue(j)) {
        job_landed(t->loop, j);
        weft__future_complete(t->loop, &j->future, reason);
    } else {
        /* Running: fn may be using the caller's memory, so the caller waits for it to return. */
        j->cancel_reason = reason;
    }
}

static intptr_t offload_wait(weft_executor *ex, weft_task *t, weft_fn fn, void *arg)
{
    weft__job j;
    job_init(&j, ex, fn, arg, t->loop, false);
    int r = job_submit(ex, &j, t);
    if (r < 0)
        return r;
    t->loop->jobs_inflight++;
    t->loop->stats.executor_jobs++;
    weft__waiter w = {.task = t};
    weft__waiter_link(&j.future, &w);
    weft__park(t, weft__offload_interrupt, &j, UINT64_MAX, 0);
    /* Woken only by the future: fn's result, or the reason it was dequeued before starting. */
    return j.cancel_reason ? j.cancel_reason : w.result;
}

intptr_t weft_offload_on(weft_executor *ex, weft_fn fn, void *arg)
{
    weft_task *t;
    int r = weft__wait_check(ex && fn, &t);
    if (r)
        return r;
    return offload_wait(ex, t, fn, arg);
}

intptr_t weft_offload(weft_fn fn, void *arg)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    if (!fn)
        return -EINVAL;
    weft_executor *ex = default_get(t->loop);
    if (!ex)
        return -ENOMEM;
    return weft_offload_on(ex, fn, arg);
}

weft_future *weft_offload_async(weft_fn fn, void *arg)
{
    weft_loop *l = weft__tls_loop;
    if (!l) {
        errno = EPERM;
        return NULL;
    }
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    weft__job *j = job_new(l, fn, arg, true);
    if (!j)
        return NULL;
    weft__maker_set(&j->maker, l->current);
    int r = job_submit(j->ex, j, NULL);
    if (r < 0) {
        /* The executor is shutting down: the error is the future's result. */
        weft__future_complete(l, &j->future, r);
        weft__owned_done(&j->future);
        return &j->future;
    }
    l->jobs_inflight++;
    l->stats.executor_jobs++;
    weft__list_push(&l->async_jobs, &j->loop_link);
    return &j->future;
}

/* ---- _async futures ---------------------------------------------------------------------------- */

/* Ends a job of weft_offload_async that no worker has started, with -ECANCELED; a started one runs to
 * its end and its future gets fn's result, so nothing is lost. */
static void async_job_stop(weft_future *f, bool abandon)
{
    (void)abandon;
    weft__job *j = WEFT__CONTAINER(f, weft__job, future);
    weft_loop *l = atomic_load_explicit(&f->loop, memory_order_relaxed);
    if (job_dequeue(j)) {
        job_landed(l, j);
        weft__future_complete(l, f, -ECANCELED);
        weft__owned_done(f);
    }
}

static void async_job_describe(const weft_future *f, char *buf, size_t len)
{
    const weft__job *j = WEFT__CONTAINER(f, weft__job, future);
    char by[64];
    snprintf(buf, len, "weft_offload_async job%s", weft__maker_label(&j->maker, by, sizeof by));
}

static const weft__future_ops async_job_future = {
    .cancel = weft__owned_cancel,
    .free = weft__owned_free,
    .release = weft__owned_release,
    .landed = async_job_result_landed,
    .stop = async_job_stop,
    .describe = async_job_describe,
};

void weft__exec_cancel_all(weft_loop *l)
{
    weft__link *next;
    for (weft__link *link = l->async_jobs.head; link; link = next) {
        next = link->next;
        async_job_stop(&WEFT__CONTAINER(link, weft__job, loop_link)->future, false);
    }
}
