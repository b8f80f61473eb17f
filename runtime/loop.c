/*
 * The loop: creation, running main to completion, teardown.
 *
 * weft_loop_run runs turns (sched.c) until main has ended, then cancels every task still alive and
 * keeps turning until they have all ended, so no task, stack or buffer outlives the run. Tasks that
 * ended without being joined or detached are reported then, by name.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* What to tell the user when io_uring is refused with err. */
static const char *refusal_hint(int err)
{
    switch (err) {
    case -EPERM:
    case -EACCES:
        return "seccomp (container profile) or sysctl kernel.io_uring_disabled";
    case -ENOSYS:
        return "kernel without io_uring (or older than 5.11)";
    case -ENOMEM:
        return "not enough locked memory: raise RLIMIT_MEMLOCK (ulimit -l)";
    case -EINVAL:
        return "ring parameters the kernel rejects";
    default:
        return NULL;
    }
}

/*
 * The backend asked for, or io_uring falling back to epoll when the kernel refuses it for a reason a
 * deployment can have (and says so once, with what to change). Asking for io_uring by name makes a
 * refusal an error instead: whoever named it wants to know.
 */
static int backend_choose(weft_loop *l)
{
    const char *want = l->cfg.backend;
    if (want && strcmp(want, "epoll") == 0) {
        l->backend = &weft__epoll_ops;
        return l->backend->init(l, &l->cfg);
    }
    l->backend = &weft__uring_ops;
    int r = l->backend->init(l, &l->cfg);
    if (r == 0 || want)
        return r;
    const char *hint = refusal_hint(r);
    if (!hint)
        return r;
    snprintf(l->fallback_reason, sizeof l->fallback_reason, "io_uring refused (%s): %s", strerrorname_np(-r),
             hint);
    weft__log("%s; using epoll (set WEFT_BACKEND=epoll to choose it and silence this)\n", l->fallback_reason);
    l->backend = &weft__epoll_ops;
    l->stats.backend_fallbacks++;
    return l->backend->init(l, &l->cfg);
}

const char *weft_loop_fallback_reason(const weft_loop *l)
{
    return l && l->fallback_reason[0] ? l->fallback_reason : NULL;
}

weft_loop *weft_loop_new(const weft_config *cfg)
{
    weft_loop *l = calloc(1, sizeof *l);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    int r = weft__config_resolve(&l->cfg, cfg);
    if (r < 0)
        goto fail;
    /* Blocking on purpose: io_uring answers a read of an O_NONBLOCK fd with -EAGAIN instead of
     * waiting for it. Writers never block, as the counter never nears its limit. */
    l->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (l->wake_fd < 0) {
        r = -errno;
        goto fail;
    }
    weft__stack_pool_init(&l->stacks, l->cfg.stack_size);
    r = backend_choose(l);
    if (r < 0)
        goto fail_fd;
    return l;
fail_fd:
    close(l->wake_fd);
fail:
    free(l);
    errno = -r;
    return NULL;
}

void weft_loop_free(weft_loop *l)
{
    if (!l)
        return;
    if (l->running) {
        weft__log("weft_loop_free: the loop is running; not freed\n");
        return;
    }
    weft__exec_default_release(l);
    l->backend->fini(l);
    close(l->wake_fd);
    weft__stack_pool_fini(&l->stacks);
    weft__timer_heap_fini(&l->timers);
    while (l->free_tasks) {
        weft_task *t = l->free_tasks;
        l->free_tasks = t->ready_next;
        free(t);
    }
    free(l);
}

const char *weft_loop_backend(const weft_loop *l)
{
    return l ? l->backend->name : NULL;
}

/* One turn; a backend failure here is a weft bug or a broken kernel, with tasks parked in it. */
static void turn(weft_loop *l, bool (*done)(weft_loop *))
{
    int r = weft__loop_turn(l, done);
    if (r < 0) {
        weft__log("the %s backend failed: %s\n", l->backend->name, weft_strerror(r));
        abort();
    }
}

static bool main_ended(weft_loop *l)
{
    return l->main_task->state == WEFT__ENDED;
}

static bool all_quiet(weft_loop *l)
{
    return l->stats.tasks_live == 0 && !l->callbacks.head && l->inflight == 0 && l->jobs_inflight == 0 &&
           !atomic_load_explicit(&l->remote_head, memory_order_relaxed);
}

static void teardown(weft_loop *l)
{
    l->closing = true;
    for (weft__link *link = l->tasks.head; link; link = link->next) {
        weft_task *t = WEFT__CONTAINER(link, weft_task, all_link);
        if (t->state != WEFT__ENDED)
            weft_cancel(t);
    }
    /* _async operations nobody will wait for any more: cancel them (again on every turn, for those
     * the cancelled tasks start on their way out) and wait for the kernel to let go of them. */
    while (!all_quiet(l)) {
        weft__io_cancel_all(l);
        weft__exec_cancel_all(l);
        turn(l, all_quiet);
    }
    /* What is left ended without anyone joining it. */
    while (l->tasks.head) {
        weft_task *t = WEFT__CONTAINER(l->tasks.head, weft_task, all_link);
        if (!t->released) {
            char label[64];
            intptr_t r = t->future.result;
            if (r < 0 && r != -ECANCELED)
                weft__log("task %s was never joined; it failed: %s\n", weft__task_label(t, label, sizeof label),
                          weft_strerror((int)r));
            else
                weft__log("task %s was never joined\n", weft__task_label(t, label, sizeof label));
        }
        t->released = true;
        weft__task_free(l, t);
    }
}

int weft_loop_run(weft_loop *l, weft_fn main, void *arg, intptr_t *result)
{
    if (!l || !main)
        return -EINVAL;
    if (weft__tls_loop)
        return -EBUSY;
    unsigned long self = (unsigned long)pthread_self(), idle = 0;
    if (!atomic_compare_exchange_strong(&l->owner, &idle, self))
        return -EBUSY;
    int r = l->backend->start(l);
    if (r < 0) {
        atomic_store(&l->owner, 0);
        return r;
    }
    r = weft__overflow_handler_install();
    if (r < 0) {
        atomic_store(&l->owner, 0);
        return r;
    }
    r = weft__watchdog_start(l);
    if (r < 0) {
        atomic_store(&l->owner, 0);
        return r;
    }
    weft__ctx_init_thread(&l->ctx);
    weft__ctx_capture_fpu();
    weft__tls_loop = l;
    l->running = true;
    l->closing = false;
    l->main_task = weft__spawn(l, "main", main, arg);
    if (!l->main_task) {
        r = -errno;
        goto out;
    }
    while (!main_ended(l))
        turn(l, main_ended);
    if (result)
        *result = l->main_task->future.result;
    l->main_task->released = true;
    weft__task_free(l, l->main_task);
    l->main_task = NULL;
    teardown(l);
out:
    l->running = false;
    weft__watchdog_stop(l);
    l->backend->stop(l);
    weft__tls_loop = NULL;
    weft__overflow_handler_remove();
    atomic_store(&l->owner, 0);
    return r;
}

int weft_run(weft_fn main, void *arg, intptr_t *result)
{
    if (!main)
        return -EINVAL;
    if (weft__tls_loop)
        return -EBUSY;
    weft_loop *l = weft_loop_new(NULL);
    if (!l)
        return -errno;
    int r = weft_loop_run(l, main, arg, result);
    weft_loop_free(l);
    return r;
}
