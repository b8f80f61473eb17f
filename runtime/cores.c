/*
 * Thread-per-core: a loop per CPU, sharing nothing, and messages between them.
 *
 * weft_run_cores makes every loop before it starts any thread, so a loop's main can post to any other
 * at once; each thread is pinned to its CPU and runs its loop's main as its first task. A message is a
 * block that rides the target loop's remote list (future.c), the path cross-thread resolutions take:
 * the sender pushes it with one compare-and-swap and writes the target's wake fd only if the target
 * announced it may sleep, so a burst of messages costs one wakeup and a busy target none. The list is
 * drained in arrival order, so the messages of one sender keep their order.
 *
 * A loop takes messages until its main returns; what was posted before then is delivered and run,
 * even by the teardown: a message's task starts even if the teardown cancelled it first (its first
 * suspending call then returns -ECANCELED), so a message weft_post accepted always runs, exactly once,
 * and whatever its argument owns is not lost; weft_submit_to likewise gets its answer. After that,
 * weft_post says -ESHUTDOWN. Only a loop that never ran (it could not start) drops what was posted
 * to it, and says so.
 *
 * weft_submit_to's message is shared by the caller and the target, and counted: the target lets go of
 * it before it answers (the answer is the last it touches), the caller once it has the answer, and a
 * cancel the caller sends holds its own reference until it has landed.
 */
#include "internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

/* The loops of a weft_run_cores. */
struct weft__cores {
    unsigned n;
    weft_loop **loops;
};

/*
 * The weft_run_cores running in the process, for threads that are none of its loops (an application's
 * thread, an executor worker). Such a thread holds the lock for reading from the moment it looks the
 * loops up until it is done with them (its message is on the loop's list, or refused), and
 * weft_run_cores takes it for writing to publish them and to withdraw them before it frees them: so a
 * thread that found a loop never touches it freed. Writers go first (glibc's default prefers readers,
 * and threads posting without pause would hold weft_run_cores off for seconds). A loop's own thread
 * needs no lock: the loops of a weft_run_cores outlive every one of its threads.
 */
static pthread_rwlock_t running_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static struct weft__cores *running_cores; /* under running_lock */

unsigned weft_loop_id(void)
{
    weft_loop *l = weft__tls_loop;
    return l ? l->index : 0;
}

unsigned weft_loop_count(void)
{
    weft_loop *l = weft__tls_loop;
    if (l)
        return l->cores ? l->cores->n : 1;
    pthread_rwlock_rdlock(&running_lock);
    unsigned n = running_cores ? running_cores->n : 0;
    pthread_rwlock_unlock(&running_lock);
    return n;
}

/* The loop numbered index, or NULL: as a loop's own thread sees it, or for any other thread (which
 * must hold running_lock) among the loops of the weft_run_cores running in the process. */
static weft_loop *loop_by_index(unsigned index)
{
    weft_loop *l = weft__tls_loop;
    struct weft__cores *c = l ? l->cores : running_cores;
    if (c)
        return index < c->n ? c->loops[index] : NULL;
    return l && index == 0 ? l : NULL; /* under weft_run: the loop itself */
}

/* ---- messages ------------------------------------------------------------------------------------ */

typedef struct weft__msg {
    weft_future carrier;     /* first: rides the target's remote list; a post's block is freed by it */
    weft_fn fn;
    void *arg;
    /* weft_submit_to only: */
    weft_future answer;      /* resolved from the target with the remote task's result */
    weft_future cancel;      /* carries the caller's cancel to the target */
    weft_task *task;         /* the remote task (target thread only) */
    bool task_ended;         /* (target thread only) */
    _Atomic int refs;
} weft__msg;

static void msg_unref(weft__msg *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

/*
 * Queues m on l's remote list unless l has stopped taking messages. The lock orders the check against
 * the loop closing its inbox: a message pushed under it is one the loop will drain.
 */
static int msg_send(weft_loop *l, weft_future *carrier)
{
    pthread_mutex_lock(&l->inbox_lock);
    int r = l->inbox_closed ? -ESHUTDOWN : weft__future_post(carrier, 0);
    pthread_mutex_unlock(&l->inbox_lock);
    return r;
}

/* A post: its task starts, detached, even if the teardown cancels it; the block goes. */
static bool post_landed(weft_loop *l, weft_future *f)
{
    weft__msg *m = WEFT__CONTAINER(f, weft__msg, carrier);
    weft_task *t = weft__spawn(l, NULL, m->fn, m->arg);
    if (t) {
        t->runs_cancelled = true;
        weft_detach(t);
    } else
        weft__log("weft_post to loop %u: %s; the message is dropped\n", l->index, weft_strerror(-errno));
    free(m);
    return false;
}

/* A post to a loop that never ran (it could not start): said, as the caller was told 0. */
static void post_discard(weft_future *f)
{
    weft__msg *m = WEFT__CONTAINER(f, weft__msg, carrier);
    weft_loop *l = atomic_load_explicit(&f->loop, memory_order_relaxed);
    weft__log("weft_post to loop %u: the loop never ran; the message is dropped\n", l->index);
    free(m);
}

static const weft__future_ops post_carrier = {
    .cancel = weft__future_cancel_refused,
    .free = weft__future_nothing_to_free,
    .release = weft__future_nothing_to_free,
    .landed = post_landed,
    .discard = post_discard,
};

int weft_post(unsigned loop, weft_fn fn, void *arg)
{
    if (!fn)
        return -EINVAL;
    weft__msg *m = malloc(sizeof *m);
    if (!m)
        return -ENOMEM;
    m->fn = fn;
    m->arg = arg;
    bool foreign = !weft__tls_loop;
    if (foreign)
        pthread_rwlock_rdlock(&running_lock);
    weft_loop *l = loop_by_index(loop);
    int r = -EINVAL;
    if (l) {
        weft__future_init(&m->carrier, &post_carrier, l);
        r = msg_send(l, &m->carrier);
    }
    if (foreign)
        pthread_rwlock_unlock(&running_lock);
    if (r < 0)
        free(m);
    return r;
}

/* The remote task of a weft_submit_to ended: the answer goes back (the target's last touch of m). */
static void submit_task_ended(weft_future *f, void *arg)
{
    weft__msg *m = arg;
    m->task_ended = true;
    intptr_t result = f->result;
    /* The caller's reference stays until it has the answer: m outlives this post. */
    atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
    weft__future_post(&m->answer, result);
}

static bool submit_landed(weft_loop *l, weft_future *f)
{
    weft__msg *m = WEFT__CONTAINER(f, weft__msg, carrier);
    weft_task *t = weft__spawn(l, NULL, m->fn, m->arg);
    if (!t || weft_future_on_done(&t->future, submit_task_ended, m) < 0) {
        int err = t ? -ENOMEM : -errno;
        if (t) {
            weft_cancel(t); /* cancelled before it starts: it never runs */
            weft_detach(t);
        }
        atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
        weft__future_post(&m->answer, err);
        return false;
    }
    /* Released from the start: nobody joins it, its result goes back through the callback. It runs
     * even if the teardown cancels it before it starts, as a post does. */
    t->released = true;
    t->runs_cancelled = true;
    m->task = t;
    return false;
}

static bool cancel_landed(weft_loop *l, weft_future *f)
{
    (void)l;
    weft__msg *m = WEFT__CONTAINER(f, weft__msg, cancel);
    if (m->task && !m->task_ended)
        weft_cancel(m->task);
    msg_unref(m);
    return false;
}

/* A weft_submit_to to a loop that will never run it: the caller hears -ESHUTDOWN. */
static void submit_discard(weft_future *f)
{
    weft__msg *m = WEFT__CONTAINER(f, weft__msg, carrier);
    atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
    weft__future_post(&m->answer, -ESHUTDOWN);
}

static const weft__future_ops submit_carrier = {
    .cancel = weft__future_cancel_refused,
    .free = weft__future_nothing_to_free,
    .release = weft__future_nothing_to_free,
    .landed = submit_landed,
    .discard = submit_discard,
};

/* A cancel that reached a loop after its last run: its task has long ended; only the reference goes. */
static void cancel_discard(weft_future *f)
{
    msg_unref(WEFT__CONTAINER(f, weft__msg, cancel));
}

static const weft__future_ops cancel_carrier = {
    .cancel = weft__future_cancel_refused,
    .free = weft__future_nothing_to_free,
    .release = weft__future_nothing_to_free,
    .landed = cancel_landed,
    .discard = cancel_discard,
};

intptr_t weft_submit_to(unsigned loop, weft_fn fn, void *arg)
{
    /* Only a loop's thread has a task: elsewhere the answer is -EPERM, and no loop is looked at. */
    weft_loop *l = weft__tls_loop ? loop_by_index(loop) : NULL;
    weft_task *self;
    int why = weft__wait_check(l && fn, &self);
    if (why)
        return why;
    weft__msg *m = malloc(sizeof *m);
    if (!m)
        return -ENOMEM;
    weft__future_init(&m->carrier, &submit_carrier, l);
    weft__future_init(&m->answer, &weft__user_future, self->loop);
    weft__future_init(&m->cancel, &cancel_carrier, l);
    m->fn = fn;
    m->arg = arg;
    m->task = NULL;
    m->task_ended = false;
    atomic_store_explicit(&m->refs, 2, memory_order_relaxed);
    int r = msg_send(l, &m->carrier);
    if (r < 0) {
        free(m);
        return r;
    }
    bool completed;
    intptr_t v = weft__await(self, &m->answer, &completed);
    if (!completed) {
        /* Interrupted: the remote task may be using the caller's memory, so cancel it and wait,
         * uninterruptibly, for its answer. The cancel holds a reference until it has landed. */
        why = (int)v;
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
        if (weft__future_post(&m->cancel, 0) < 0)
            msg_unref(m);
        while (!weft_future_done(&m->answer)) {
            weft__waiter w = {.task = self};
            weft__waiter_link(&m->answer, &w);
            weft__park(self, NULL, NULL, UINT64_MAX, 0);
        }
        v = m->answer.result;
    }
    msg_unref(m);
    if (why && v == -ECANCELED)
        v = why;
    return v;
}

/* The caller's structure and how much of it it knows (weft.h: growing without breaking programs). */
struct stats_request {
    weft_stats *out;
    size_t size;
};

static intptr_t stats_here(void *arg)
{
    struct stats_request *r = arg;
    return weft_stats_get_sized(r->out, r->size);
}

int weft_stats_get_loop_sized(unsigned loop, weft_stats *out, size_t size)
{
    if (!out || size < WEFT__STATS_SIZE_0_1)
        return -EINVAL;
    struct stats_request r = {out, size};
    return (int)weft_submit_to(loop, stats_here, &r);
}

/* weft.h makes the name a macro passing the caller's size; the function is for callers without it. */
int(weft_stats_get_loop)(unsigned loop, weft_stats *out)
{
    return weft_stats_get_loop_sized(loop, out, WEFT__STATS_SIZE_0_1);
}

/* ---- weft_run_cores -------------------------------------------------------------------------------- */

typedef struct core_slot {
    weft_loop *loop;
    weft_fn main;
    void *arg;
    int cpu;           /* -1: not pinned */
    int rc;            /* weft_loop_run's */
    intptr_t result;   /* main's */
} core_slot;

static void *core_main(void *p)
{
    core_slot *s = p;
    if (s->cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(s->cpu, &one);
        int err = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
        if (err)
            weft__log("loop %u: could not pin to CPU %d: %s; it runs unpinned\n", s->loop->index, s->cpu,
                      weft_strerror(-err));
    }
    s->rc = weft_loop_run(s->loop, s->main, s->arg, &s->result);
    return NULL;
}

int weft_run_cores(unsigned n, weft_fn main, void *arg, const weft_config *cfg)
{
    if (!main)
        return -EINVAL;
    if (weft__tls_loop)
        return -EBUSY;
    cpu_set_t mask;
    int cpus[CPU_SETSIZE], ncpus = 0;
    if (sched_getaffinity(0, sizeof mask, &mask) == 0)
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &mask))
                cpus[ncpus++] = c;
    if (n == 0)
        n = ncpus > 0 ? (unsigned)ncpus : 1;
    if (n > CPU_SETSIZE)
        return -EINVAL; /* more loops than Linux has CPU numbers: a mistake, not a configuration */
    struct weft__cores cores = {.n = n, .loops = calloc(n, sizeof(weft_loop *))};
    core_slot *slots = calloc(n, sizeof *slots);
    pthread_t *threads = calloc(n, sizeof *threads);
    int r = 0;
    unsigned made = 0, started = 0;
    if (!cores.loops || !slots || !threads) {
        r = -ENOMEM;
        goto out;
    }
    /* The first loop chooses the backend (and says once why, if it falls back); the others follow. */
    weft_config rest = cfg ? *cfg : (weft_config){0};
    for (; made < n; made++) {
        weft_loop *l = weft_loop_new(made ? &rest : cfg);
        if (!l) {
            r = -errno;
            goto out;
        }
        if (made == 0)
            rest.backend = weft_loop_backend(l);
        l->index = made;
        l->cores = n > 1 ? &cores : NULL; /* one loop is numbered as under weft_run */
        cores.loops[made] = l;
    }
    /* Other threads see these loops (the first weft_run_cores of the process, if several run). */
    pthread_rwlock_wrlock(&running_lock);
    bool published = !running_cores;
    if (published)
        running_cores = &cores;
    pthread_rwlock_unlock(&running_lock);
    for (; started < n; started++) {
        slots[started] = (core_slot){.loop = cores.loops[started], .main = main, .arg = arg,
                                     .cpu = ncpus > 0 ? cpus[started % (unsigned)ncpus] : -1};
        int err = pthread_create(&threads[started], NULL, core_main, &slots[started]);
        if (err) {
            /* The loops already running take no more messages once their mains end; theirs run on. */
            r = -err;
            for (unsigned i = started; i < n; i++) {
                /* Never to run: refuse what comes from now on, answer what came already. */
                weft__loop_inbox(cores.loops[i], false);
                weft__remote_discard(cores.loops[i]);
            }
            break;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (published) {
        /* Withdrawn before they are freed; a thread still posting finishes first. */
        pthread_rwlock_wrlock(&running_lock);
        running_cores = NULL;
        pthread_rwlock_unlock(&running_lock);
    }
    if (r == 0) {
        for (unsigned i = 0; i < n && r == 0; i++)
            if (slots[i].rc < 0)
                r = slots[i].rc;
        for (unsigned i = 0; i < n && r == 0; i++)
            if (slots[i].result < 0)
                r = (int)slots[i].result;
    }
out:
    for (unsigned i = 0; i < made; i++)
        weft_loop_free(cores.loops[i]);
    free(cores.loops);
    free(slots);
    free(threads);
    return r;
}
