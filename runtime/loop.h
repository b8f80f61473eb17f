/* loop.c: the loop, the one place it waits, and the backend interface. Part of internal.h. */
#ifndef WEFT_LOOP_H
#define WEFT_LOOP_H

struct weft__op;
struct weft__trace;
struct weft__rx;

/*
 * What every backend provides (uring.c, epoll.c). The core never asks which backend it runs on: it
 * calls these, the cold ones through the table and the hot ones through the weft__backend_* calls
 * below.
 */
typedef struct weft__backend_ops {
    const char *name;
    int (*init)(weft_loop *l, const weft_config *cfg);
    /* Called on the thread that runs the loop, before its first turn. */
    int (*start)(weft_loop *l);
    /* Called on the same thread when weft_loop_run returns. */
    void (*stop)(weft_loop *l);
    void (*fini)(weft_loop *l);
    /*
     * Submits what is queued and reaps completions, waiting at most timeout_ns for at least one when
     * timeout_ns > 0 (UINT64_MAX: no limit). Returns 0 or a negative errno the loop cannot recover from.
     */
    int (*poll)(weft_loop *l, uint64_t timeout_ns);
    /* Whether poll(l, 0) would find or submit anything: lets a busy loop skip the system call. */
    bool (*has_work)(weft_loop *l);
    /* Starts op; its complete() runs on the loop exactly once, possibly before submit returns.
     * 0, or a negative errno if the op could not be started (then complete() never runs). */
    int (*submit)(weft_loop *l, struct weft__op *op);
    /* Asks for op to end early; complete() still runs, with -ECANCELED or the real result. */
    void (*cancel)(weft_loop *l, struct weft__op *op);
    /* fd is about to be closed with nobody to wait: asks every request on fd to end (complete()
     * runs later, with -ECANCELED) and forgets what the backend kept for it, before returning. */
    void (*forget_fd)(weft_loop *l, int fd);
    /* fd was just handed out anew (weft__fd_new): what the backend kept for the number is stale.
     * NULL if the backend keeps nothing by fd number. Makes no system call. */
    void (*fd_new)(weft_loop *l, int fd);
    /* Wakes loop to, which may be asleep in the kernel, from loop from's thread (both on this
     * backend) without a system call of the sender's own: true if to will wake. NULL, or false: the
     * caller writes to's wake eventfd. */
    bool (*wake_from)(weft_loop *from, weft_loop *to);
    /* Receive streams (rx.h), NULL on a backend without them. Whether fd's reads are served by a
     * stream, made now if need be (weft_recv_borrow asks). */
    bool (*rx_stream)(weft_loop *l, int fd);
    /* A reader took kept bytes from a stream paused for flow control: it may take in more. */
    void (*rx_resume)(weft_loop *l, struct weft__rx *rx);
    /* rx is dropped (its fd closed or handed out anew): true if the backend still holds it, and
     * frees it (weft__rx_free) once the kernel lets go. */
    bool (*rx_stop)(weft_loop *l, struct weft__rx *rx);
    /* A view of ring buffer bid that weft_recv_borrow lent came back. */
    void (*rx_unlend)(weft_loop *l, int32_t bid);
    /* Registers the buffers of weft_buffers_register with the kernel, or lets go of them: 0 or -errno.
     * NULL if the backend has nothing to register with (fixedbuf.c then only checks the calls). */
    int (*buffers_register)(weft_loop *l, const struct iovec *iov, unsigned count);
    int (*buffers_unregister)(weft_loop *l);
} weft__backend_ops;

extern const weft__backend_ops weft__uring_ops;
extern const weft__backend_ops weft__epoll_ops;

/* The hot entries of both tables, for the direct calls below. */
int weft__uring_submit(weft_loop *l, struct weft__op *op);
int weft__uring_poll(weft_loop *l, uint64_t timeout_ns);
bool weft__uring_has_work(weft_loop *l);
void weft__uring_cancel(weft_loop *l, struct weft__op *op);
int weft__epoll_submit(weft_loop *l, struct weft__op *op);
int weft__epoll_poll(weft_loop *l, uint64_t timeout_ns);
bool weft__epoll_has_work(weft_loop *l);
void weft__epoll_cancel(weft_loop *l, struct weft__op *op);

struct weft_loop {
    weft_task *current;                   /* running task, NULL in the loop's own context */
    struct weft__trace *trace;            /* the timeline trace (trace.c), NULL when not tracing */
    weft__runnable *run_head, *run_tail;  /* ready tasks and due callbacks, in order */
    unsigned budget;                      /* task runs left before the loop polls I/O again */
    weft_task *zombie;                    /* ended task whose stack is released after the switch */
    weft__ctx ctx;                        /* the loop's own context on the thread's stack */
    weft__timer_heap timers;
    weft__stack_pool stacks;
    weft__list tasks;                     /* every task not yet freed */
    weft_task *free_tasks, *free_tasks_tail; /* recycled task structs, reused oldest first (run.next) */
    size_t free_task_count;
    uint64_t next_task_id;
    weft_task *main_task;
    bool running, closing;
    _Atomic(unsigned long) owner;         /* pthread_self() of the thread running it, 0 when idle */
    int wake_fd;                          /* eventfd other threads write to wake the loop */
    _Atomic int sleeping;                 /* 1 while the loop may block in the kernel */
    weft_future *_Atomic remote_head;     /* futures resolved by other threads, newest first */
    _Atomic unsigned posters;             /* threads inside weft__future_post for this loop */
    weft__list async_ops;                 /* _async operations in flight, for teardown */
    weft__list async_jobs;                /* weft_offload_async jobs not yet completed, for teardown */
    weft__list call_timers;               /* weft_call_later calls not yet run or cancelled (call.c) */
    size_t ncall_timers;
    size_t jobs_inflight;                 /* offloaded jobs of this loop not yet completed */
    bool uses_default_executor;
    bool is_uring;                        /* backend == &weft__uring_ops, for the direct calls */
    const weft__backend_ops *backend;
    void *backend_data;
    size_t inflight;                      /* operations submitted and not yet completed */
    struct weft__buffers *buffers;        /* the registered buffers (fixedbuf.c), NULL for none */
    const bool *wait_flag;                /* what a task waiting in place waits for (weft__loop_wait_here) */
    struct weft__fd_slot *fd_slots;       /* by fd: what the loop keeps per number (rx.c) */
    size_t nfd_slots, fd_errors_held;     /* ... and how many of them hold an error back */
    weft__list rx_all;                    /* every receive side (rx.c), orphans included */
    size_t rx_waiting;                    /* reads parked on a receive side, waiting for bytes */
    unsigned index;                       /* its number among the loops of a weft_run_cores, else 0 */
    struct weft__cores *cores;            /* those loops (cores.c), NULL under weft_run */
    pthread_mutex_t inbox_lock;           /* orders weft_post against the inbox closing */
    bool inbox_closed;                    /* main has returned: no more messages (under inbox_lock) */
    weft_config cfg;
    weft_stats stats;
    char fallback_reason[160];            /* why io_uring was not used, "" if it is */
    uint64_t born_clock, born_ns;         /* weft__park_clock() and weft__now() at creation (dump.c) */
    /* Published at every switch for the watchdog thread (watchdog.c). */
    weft_task *_Atomic watch_task;
    _Atomic uint64_t watch_seq;
    const void *_Atomic watch_callback;  /* the user function of the callback running, NULL if none */
    uint64_t watch_events;               /* switches and callbacks published, for watch_seq */
    _Atomic uint32_t watch_parked;       /* 1: the watchdog sleeps until the loop wakes (watchdog.c) */
    _Atomic uint64_t slow_reports;
    _Atomic uint64_t wake_writes;        /* weft_stats.wake_writes: written by the waking threads */
    struct weft__watchdog *watchdog;
};

/* The loop running on this thread, NULL if none. */
extern WEFT__TLS weft_loop *weft__tls_loop;

/* Queues r at the end of the run queue. */
static inline void weft__run_push(weft_loop *l, weft__runnable *r)
{
    r->next = NULL;
    if (l->run_tail)
        l->run_tail->next = r;
    else
        l->run_head = r;
    l->run_tail = r;
}

/*
 * The hot entries of the backend interface. Both backends' are reached by direct calls rather than
 * through the table: a direct call is predicted even with the branch predictors cold after a system
 * call, where an indirect one through the table costs measurably on a NOP's round trip.
 */
static inline int weft__backend_submit(weft_loop *l, struct weft__op *op)
{
    return WEFT__LIKELY(l->is_uring) ? weft__uring_submit(l, op) : weft__epoll_submit(l, op);
}

static inline int weft__backend_poll_now(weft_loop *l, uint64_t timeout_ns)
{
    return WEFT__LIKELY(l->is_uring) ? weft__uring_poll(l, timeout_ns) : weft__epoll_poll(l, timeout_ns);
}

/* The trace's hooks on the hot paths (trace.c): each costs an untraced loop one test of l->trace. */
void weft__trace_io_begin(weft_loop *l, const struct weft__op *op);
void weft__trace_io_end(weft_loop *l, const struct weft__op *op, int32_t res);
int weft__trace_poll(weft_loop *l, uint64_t timeout_ns);
void weft__trace_switch(weft_loop *l, weft_task *next);

/* Polls, as weft__backend_poll_now does, recorded when the loop traces. */
static inline int weft__backend_poll(weft_loop *l, uint64_t timeout_ns)
{
    if (WEFT__UNLIKELY(l->trace != NULL))
        return weft__trace_poll(l, timeout_ns);
    return weft__backend_poll_now(l, timeout_ns);
}

static inline bool weft__backend_has_work(weft_loop *l)
{
    return WEFT__LIKELY(l->is_uring) ? weft__uring_has_work(l) : weft__epoll_has_work(l);
}

static inline void weft__backend_cancel(weft_loop *l, struct weft__op *op)
{
    if (WEFT__LIKELY(l->is_uring))
        weft__uring_cancel(l, op);
    else
        weft__epoll_cancel(l, op);
}

/*
 * The one place the loop waits. Both calls poll — results other threads posted, due timers, then the
 * backend, sleeping in the kernel (up to the next timer) only when nothing can run — until the loop
 * has something to run (a ready task or a queued callback) or the caller's own condition holds.
 */
/* From the loop's own context: until something can run or done(l). 0, or the backend's error. */
int weft__loop_wait(weft_loop *l, bool (*done)(weft_loop *));
/*
 * From the running task t's own stack, without parking it (it stays RUNNING, so whatever completes
 * wakes no one): until *flag turns true (the completion of t's own op; NULL for none) or something
 * else can run. 0 once *flag holds, 1 when something else can run first, or the backend's error.
 * Nothing can interrupt t meanwhile: only another task, a callback or t's own timer could, and none
 * runs here, so a caller with a deadline parks instead.
 */
int weft__loop_wait_here(weft_loop *l, weft_task *t, const bool *flag);
/* One turn from the loop's context: what is runnable, then weft__loop_wait(l, done). */
int weft__loop_turn(weft_loop *l, bool (*done)(weft_loop *));
/* Resolves the futures other threads handed over. */
void weft__remote_drain(weft_loop *l);
/* The blocking-the-loop detector of a running loop (watchdog.c). */
int weft__watchdog_start(weft_loop *l);
void weft__watchdog_stop(weft_loop *l);
void weft__watchdog_kick(weft_loop *l);

/*
 * The loop is back from a sleep in the kernel. The watchdog stops looking while the loop sleeps (a
 * sleeping loop blocks nothing): the wake is published, then the watchdog is woken if it parked. Both
 * sides store, then load, sequentially consistent: either the watchdog sees this wake before it parks,
 * or this sees it parked. One exchange per sleep, beside the system call the sleep was.
 */
static inline void weft__watchdog_woke(weft_loop *l)
{
    atomic_store_explicit(&l->watch_seq, ++l->watch_events, memory_order_seq_cst);
    if (WEFT__UNLIKELY(atomic_load_explicit(&l->watch_parked, memory_order_seq_cst)))
        weft__watchdog_kick(l);
}
/*
 * Looks at long waits. Each backend checks what a wait may have missed without telling it: epoll a
 * registration that a close behind weft's back dropped, io_uring a receive stream the kernel did not
 * wake. Once a second while something waits (the loop sleeps no longer than that then), waits that began
 * before the previous pass are looked at: after 1 to 2 s, then after 2, 4 and 8 passes, then every 8th.
 * An idle loop with thousands of waits makes a few hundred checks a second at most, and a wait shorter
 * than a second none.
 */
typedef struct weft__looks {
    uint32_t passes;  /* passes so far: a wait records the pass it began in */
    uint64_t next_ns; /* weft__now() of the next pass */
} weft__looks;

#define WEFT__LOOK_NS 1000000000u

/* Whether a wait that began in pass since is due for a look in pass now. */
static inline bool weft__look_due(uint32_t now, uint32_t since)
{
    uint32_t age = now - since;
    if (age < 2)
        return false;
    return age <= 9 ? ((age - 1) & (age - 2)) == 0 : (age - 1) % 8 == 0;
}

/* With something waiting: whether a pass is due now (it is then counted), and *timeout_ns capped at the
 * next pass. */
static inline bool weft__looks_tick(weft__looks *k, uint64_t *timeout_ns)
{
    uint64_t now = weft__now();
    bool due = now >= k->next_ns;
    if (due) {
        k->passes++;
        k->next_ns = now + WEFT__LOOK_NS;
    }
    if (*timeout_ns > k->next_ns - now)
        *timeout_ns = k->next_ns - now;
    return due;
}

/* Wakes l, which announced it may sleep, from whatever thread calls (future.c's remote list). */
void weft__loop_wake(weft_loop *l);
/* Opens l to messages from other loops (weft_post, weft_submit_to), or closes it: under its lock, so a
 * sender sees either, and one that got in before the close is drained. */
void weft__loop_inbox(weft_loop *l, bool open);
/* What other threads posted to l that no run will drain (l is being freed, or will never run): each
 * entry's discard lets go of it (future.c's ops). */
void weft__remote_discard(weft_loop *l);
/* The loop is being freed: its registered buffers are forgotten (fixedbuf.c; the ring goes with it). */
void weft__buffers_free(weft_loop *l);
/* The loop's run is over: calls still waiting for their time are dropped (call.c). */
void weft__calls_end(weft_loop *l);
/* Fills out with in (NULL: defaults), the environment's overrides and the defaults, every value
 * checked (config.c): a negative errno, said on stderr, for what weft cannot honour. */
int weft__config_resolve(weft_config *out, const weft_config *in);
/* weft 0.1's weft_stats, the least a caller can know: what the unsized stats calls fill (weft.h). */
#define WEFT__STATS_SIZE_0_1 (offsetof(weft_stats, stacks_trimmed) + sizeof(uint64_t))

#endif /* WEFT_LOOP_H */
