/* sched.c: tasks, the ready queue, parking and waking. Part of internal.h; included through it. */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

enum weft__task_state { WEFT__CREATED, WEFT__READY, WEFT__RUNNING, WEFT__PARKED, WEFT__ENDED };

/*
 * What a parked task is waiting in, so cancellation and deadlines can interrupt it. interrupt() must
 * eventually make the task ready (at once, or after the kernel has let go of the task's buffers).
 */
typedef void (*weft__interrupt_fn)(weft_task *t, int reason);

#define WEFT__DEADLINES_INLINE 4

/* weft_task.magic: a released task keeps WEFT__TASK_RELEASED until its memory is reused, so a stale
 * handle passed back to weft is caught rather than used. */
#define WEFT__TASK_LIVE 0x7466776cu
#define WEFT__TASK_RELEASED 0x64656164u

struct weft_task {
    weft__ctx ctx;
    uint32_t magic;
    weft_loop *loop;
    weft__runnable run;                    /* in the run queue while READY; in the free list once freed */
    weft__link all_link;                   /* in the loop's list of tasks not yet freed */
    weft_fn fn;
    void *arg;
    weft__stack *stack;
    uint8_t state;
    bool cancelled;     /* sticky cancel request */
    bool released;      /* joined or detached: freed when it ends */
    bool detached;
    bool in_join_all;   /* named by a weft_join_all under way (a name twice is refused) */
    bool runs_cancelled; /* a message's task (cores.c): it starts even if cancelled first, so that every
                            message a loop accepted runs; its first suspending call sees the cancel */
    uint64_t id;
    intptr_t wake_value;          /* what the waker handed over */
    weft__interrupt_fn interrupt; /* non-NULL while parked interruptibly */
    void *park_obj;               /* for interrupt(): the waiter, the op, ... */
    uint64_t parked_at;           /* weft__park_clock() when it parked, for weft_tasks_dump */
    int timer_reason;             /* what the park timer means: 0 (sleep ended) or -ETIMEDOUT */
    weft__timer timer;
    uint64_t *deadlines;          /* effective deadline per nesting level; [depth-1] is in force */
    unsigned deadline_depth, deadline_cap;
    unsigned deadline_lost;       /* levels pushed when no memory was left to record them */
    uint64_t deadline_inline[WEFT__DEADLINES_INLINE];
    weft_future future;           /* done when the task ends, with its result */
    struct weft_group *group;     /* the group it belongs to, or NULL */
    weft__link group_link;        /* in its group's members */
    intptr_t *group_result;       /* where its group stores its result when it ends, or NULL */
    char name[32];
};

/* The loop running on this thread, NULL if none. */
extern WEFT__TLS weft_loop *weft__tls_loop;

static inline weft_task *weft__current(void)
{
    weft_loop *l = weft__tls_loop;
    return l ? l->current : NULL;
}

/* Makes a parked task ready to run with value as what its park returns. */
void weft__wake(weft_task *t, intptr_t value);
/* Interrupts a parked task (cancellation, deadline): calls its interrupt function once. */
void weft__interrupt(weft_task *t, int reason);
/* Whether self may join t: t is live, not released, not self, and of self's loop. */
bool weft__task_joinable(const weft_task *self, const weft_task *t);
/* Ends a join or wait_for: shared by both (sched.c). */
intptr_t weft__join(weft_task *t, uint64_t expiry);
/* Awaits f from the running task t (future.c). *completed tells a result from an interruption. */
intptr_t weft__await(weft_task *t, weft_future *f, bool *completed);
/* Completes a switch into a context: releases the stack of a task that just ended. */
void weft__after_switch(weft_loop *l);
/* From the loop's own context: runs tasks and callbacks until none is left or the turn's budget is
 * spent. */
void weft__run_ready(weft_loop *l);
/* The running task t is about to leave its stack's control (a switch, a wait in place): a task
 * whose stack has no guard page is checked for overflow here (its canary). */
void weft__stack_overflowed(weft_task *t) __attribute__((noreturn));
static inline void weft__stack_check(weft_task *t)
{
    if (WEFT__UNLIKELY(!t->stack->guarded) && !weft__stack_canary_ok(t->stack))
        weft__stack_overflowed(t);
}
/*
 * Parks the running task until weft__wake. While parked, cancellation and a deadline (or expiry, if
 * earlier) call interrupt(t, reason); interrupt may be NULL for an uninterruptible wait, and then
 * expiry and deadlines are ignored. Returns the value handed to weft__wake.
 */
intptr_t weft__park(weft_task *t, weft__interrupt_fn interrupt, void *park_obj, uint64_t expiry, int expiry_reason);
/* -ECANCELED or -ETIMEDOUT if the task may not suspend now, else 0. */
int weft__check_suspend(weft_task *t);
/* The entry checks of a suspending call, in the order every one of them reports: sets *t to the
 * running task; -EPERM outside a task, -EINVAL unless args_ok, then weft__check_suspend's answer. */
int weft__wait_check(bool args_ok, weft_task **t);
/* The task's deadline in force, UINT64_MAX for none. */
static inline uint64_t weft__deadline(const weft_task *t)
{
    return t->deadline_depth ? t->deadlines[t->deadline_depth - 1] : UINT64_MAX;
}
/* Frees an ended, released task (or defers it while callbacks on its future are queued). */
void weft__task_free(weft_loop *l, weft_task *t);


/* The task whose run queue entry r is, NULL for none. */
static inline weft_task *weft__task_of(weft__runnable *r)
{
    return r ? WEFT__CONTAINER(r, weft_task, run) : NULL;
}

/* Records a switch to next (NULL: the loop's own context) for the stats and the watchdog. */
static inline void weft__note_switch(weft_loop *l, weft_task *next)
{
    if (WEFT__UNLIKELY(l->trace != NULL))
        weft__trace_switch(l, next);
    l->current = next;
    l->stats.switches++;
    atomic_store_explicit(&l->watch_task, next, memory_order_relaxed);
    atomic_store_explicit(&l->watch_seq, ++l->watch_events, memory_order_release);
}

/* A member of a group ended (group.c). */
void weft__group_member_ended(weft_task *t, intptr_t result);
/* Spawns on l (the public spawn calls this with the thread's loop). */
weft_task *weft__spawn(weft_loop *l, const char *name, weft_fn fn, void *arg);
/* Prints "weft: " + formatted text on stderr in one write. */
void weft__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For diagnostics: "'name' (#id)" or "#id". */
const char *weft__task_label(const weft_task *t, char *buf, size_t len);

/* Who made something that may outlive its maker (an _async request, an offloaded job), for reports. */
typedef struct weft__maker {
    uint64_t id;   /* 0: made outside any task */
    char name[32];
} weft__maker;

static inline void weft__maker_set(weft__maker *m, const weft_task *t)
{
    m->id = t ? t->id : 0;
    if (t)
        memcpy(m->name, t->name, sizeof m->name);
    else
        m->name[0] = '\0';
}

/* " by task 'name' (#id)", " by task #id", or "" when made outside a task. */
const char *weft__maker_label(const weft__maker *m, char *buf, size_t len);

/* What weft__park stamps a task with: the TSC on x86 (a few ns, no system call), converted to time
 * only when weft_tasks_dump reads it; the monotonic clock elsewhere. */
static inline uint64_t weft__park_clock(void)
{
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return weft__now();
#endif
}

/* Nanoseconds per tick of weft__park_clock(), from two readings of it and of weft__now() taken
 * together: the TSC's rate on x86, 1 elsewhere (the clock is weft__now() itself). */
static inline double weft__park_clock_rate(uint64_t c0, uint64_t ns0, uint64_t c1, uint64_t ns1)
{
#if defined(__x86_64__)
    return c1 > c0 && ns1 > ns0 ? (double)(ns1 - ns0) / (double)(c1 - c0) : 1.0;
#else
    (void)c0, (void)ns0, (void)c1, (void)ns1;
    return 1.0;
#endif
}

/*
 * The interrupt functions parked tasks wait with, by what they wait in: weft_tasks_dump (dump.c)
 * tells the waits apart by them and reads park_obj accordingly.
 */
void weft__op_interrupt(weft_task *t, int reason);      /* io.c: an I/O request (park_obj: the op) */
void weft__await_interrupt(weft_task *t, int reason);   /* future.c: weft_await (a weft__waiter) */
void weft__sleep_interrupt(weft_task *t, int reason);   /* sched.c: weft_sleep */
void weft__join_interrupt(weft_task *t, int reason);    /* sched.c: a join (a weft__waiter) */
void weft__wq_interrupt(weft_task *t, int reason);      /* sync.c: a lock, event, semaphore, channel */
void weft__any_interrupt(weft_task *t, int reason);     /* wait.c: weft_wait_any, weft_gather */
void weft__offload_interrupt(weft_task *t, int reason); /* executor.c: weft_offload */
void weft__group_interrupt(weft_task *t, int reason);   /* group.c: a group's members */

/*
 * What a parked task waits in, read back from what its park keeps (dump.c): weft_tasks_dump and the
 * trace say it the same way.
 */
enum weft__park_kind {
    WEFT__PARK_IO, WEFT__PARK_AWAIT, WEFT__PARK_JOIN, WEFT__PARK_SLEEP, WEFT__PARK_QUEUE, WEFT__PARK_ANY,
    WEFT__PARK_OFFLOAD, WEFT__PARK_GROUP, WEFT__PARK_OTHER
};

typedef struct weft__park_info {
    uint8_t kind;          /* weft__park_kind */
    uint8_t opcode;        /* IO: the request's opcode */
    int fd;                /* IO: its fd; -1 for none */
    uint64_t len;          /* IO: its bytes, for a one-buffer transfer; else 0 */
    const weft_task *task; /* JOIN: the task joined; AWAIT: the task whose future it is; else NULL */
    const void *obj;       /* AWAIT: the future */
    const char *call;      /* QUEUE: the call waiting ("weft_chan_recv"), a static string */
} weft__park_info;

/* What the parked task t waits in. */
void weft__park_info_of(const weft_task *t, weft__park_info *p);
/* The same for a task waiting for its own request op (parked, or waiting in place). */
void weft__park_info_io(const struct weft__op *op, weft__park_info *p);
/* Says p in words ("recv on fd 5 (64 B)", "join of task 'x' (#3)"); task_label names p->task, NULL if
 * none. */
void weft__park_describe(const weft__park_info *p, const char *task_label, char *buf, size_t len);
/* The task whose future f is, NULL if f is not a task's (sched.c). */
const weft_task *weft__future_task(const weft_future *f);

/* A spinning CPU's hint to its sibling hyperthread and the hypervisor. */
static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

#endif /* WEFT_TASK_H */
