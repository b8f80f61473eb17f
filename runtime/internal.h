/*
 * Private declarations shared by the files of runtime/. Nothing here is part of the API.
 *
 * One request through the proactor: weft_nop() (uring.c) fills an SQE whose user_data points at a
 * struct weft__op on the caller's stack and parks the task (sched.c); the loop submits every queued SQE
 * once per turn; the CQE's handler stores the result and makes the task ready (sched.c); the scheduler
 * switches to it (fiber.c) and weft_nop returns the result.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include "weft.h"

#include <errno.h>
#if defined(WEFT_SWITCH_UCONTEXT)
#include <setjmp.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEFT__CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define WEFT__TLS __thread __attribute__((tls_model("initial-exec")))

#if defined(__SANITIZE_ADDRESS__)
#define WEFT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT__TSAN 1
#endif
#endif

/* ---- intrusive doubly linked lists ------------------------------------------------------------ */

/* A link embedded in whatever is listed; WEFT__CONTAINER gets the object back. */
typedef struct weft__link {
    struct weft__link *next, *prev;
} weft__link;

typedef struct weft__list {
    weft__link *head, *tail;
} weft__list;

static inline void weft__list_push(weft__list *list, weft__link *n)
{
    n->next = NULL;
    n->prev = list->tail;
    if (list->tail)
        list->tail->next = n;
    else
        list->head = n;
    list->tail = n;
}

static inline void weft__list_remove(weft__list *list, weft__link *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        list->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        list->tail = n->prev;
    n->next = n->prev = NULL;
}

static inline weft__link *weft__list_pop(weft__list *list)
{
    weft__link *n = list->head;
    if (n)
        weft__list_remove(list, n);
    return n;
}

/* ---- tables indexed by fd ---------------------------------------------------------------------- */

/*
 * Makes table (of *n zero-initialised elements of elem bytes) hold index, doubling from 64 elements; the
 * new ones are zeroed. Returns the table, moved or not, with *n updated; NULL (table and *n untouched)
 * when out of memory.
 */
static inline void *weft__fd_table_fit(void *table, size_t *n, size_t elem, size_t index)
{
    if (index < *n)
        return table;
    size_t grown_n = *n ? *n : 64;
    while (grown_n <= index)
        grown_n *= 2;
    char *grown = realloc(table, grown_n * elem);
    if (!grown)
        return NULL;
    memset(grown + *n * elem, 0, (grown_n - *n) * elem);
    *n = grown_n;
    return grown;
}

/* ---- fiber.c: execution contexts ------------------------------------------------------------- */

/*
 * A saved execution context. With the assembly switch it is a stack pointer: the callee-saved
 * registers and the resume address are on the suspended stack itself. The sanitizer fields describe
 * the stack the context runs on so ASan and TSan can follow the switch.
 */
typedef struct weft__ctx {
#if defined(WEFT_SWITCH_UCONTEXT)
    jmp_buf jmp;  /* where _longjmp resumes it */
    void *fresh;  /* the ucontext_t to enter it with, until its first switch */
#else
    void *sp;
#endif
    const void *stack_lo; /* lowest usable byte, NULL for the thread's own stack */
    size_t stack_size;
#if WEFT__ASAN
    void *asan_fake_stack;
#endif
#if WEFT__TSAN
    void *tsan_fiber;
#endif
} weft__ctx;

/* Makes ctx start entry(arg) on [stack_lo, stack_lo + size) at its first switch. entry never returns. */
void weft__ctx_make(weft__ctx *ctx, void *stack_lo, size_t size, void (*entry)(void *), void *arg);
/* Records the calling thread's floating-point control state for the contexts made afterwards. */
void weft__ctx_capture_fpu(void);
/* Describes the calling thread's own context (the loop's), to be switched away from and back to. */
void weft__ctx_init_thread(weft__ctx *ctx);
/* Releases what ctx_make allocated for sanitizers (the TSan fiber). */
void weft__ctx_destroy(weft__ctx *ctx);
#if WEFT__ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if WEFT__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif
/* The raw switch: runtime/arch/<arch>/switch_<arch>.S, or _setjmp/_longjmp in fiber.c. */
void weft__switch_raw(weft__ctx *from, weft__ctx *to);

#if defined(__x86_64__) && !defined(WEFT_SWITCH_UCONTEXT)
/*
 * Enters weft__switch_asm with a jump, not a call: the switch leaves with an indirect jump, so a call
 * would push a return-stack-buffer entry that no ret pops, and every return after the switch would be
 * mispredicted. The resume address is pushed by hand, after stepping over the red zone of the
 * function this is inlined into.
 *
 * Every register but rbp and rsp is declared clobbered, as the other context may change any of them.
 * The compiler then saves only the values live across the switch, usually fewer than the six
 * callee-saved registers a switch routine would save blindly; rbp (which may be the frame pointer)
 * and the resume address are saved by weft__switch_asm itself.
 */
static inline void weft__switch_x86_64(void **from_sp, void *to_sp)
{
    __asm__ volatile("subq $128, %%rsp\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "jmp weft__switch_asm\n"
                     "1:\n\t"
                     "addq $128, %%rsp\n\t"
                     : "+D"(from_sp), "+S"(to_sp)
                     :
                     : "rax", "rbx", "rcx", "rdx", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory",
                       "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                       "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)", "st(3)",
                       "st(4)", "st(5)", "st(6)", "st(7)");
}
#endif

/*
 * Saves the running context in from and resumes to; returns when something switches back to from.
 * Inline: it is the hot path of every hand-over between tasks.
 */
static inline void weft__ctx_switch(weft__ctx *from, weft__ctx *to)
{
#if WEFT__ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake_stack, to->stack_lo, to->stack_size);
#endif
#if WEFT__TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
#if defined(WEFT_SWITCH_UCONTEXT)
    weft__switch_raw(from, to);
#elif defined(__x86_64__)
    weft__switch_x86_64(&from->sp, to->sp);
#else
    void weft__switch_asm(void **from_sp, void *to_sp);
    weft__switch_asm(&from->sp, to->sp);
#endif
#if WEFT__ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, NULL, NULL);
#endif
}
/* Like ctx_switch, for a context that will never be resumed (a finished task). */
__attribute__((noreturn)) void weft__ctx_exit(weft__ctx *from, weft__ctx *to);
/* Called first thing on a new stack, to complete the switch that entered it. */
void weft__ctx_entered(weft__ctx *self);

/* ---- stack.c: pooled, guarded task stacks ----------------------------------------------------- */

typedef struct weft__stack {
    struct weft__stack *next_free;
    char *lo;   /* lowest usable byte; the guard lies just below */
    size_t size;
    bool guarded;
} weft__stack;

typedef struct weft__stack_pool {
    size_t stack_size;  /* usable bytes, page multiple */
    size_t guard_size;  /* guard bytes below each stack */
    weft__stack *free_list; /* free stacks whose pages may still be resident, most recent first */
    size_t nfree;           /* on free_list */
    weft__stack *trimmed;   /* free stacks whose pages were given back */
    struct weft__stack_slab *slabs;
    size_t slab_fill;   /* stacks handed out of the newest slab */
    uint64_t mapped;    /* stacks ever mapped */
    uint64_t trims;     /* stacks whose pages were given back, over the pool's life */
    int guard_mode;     /* see stack.c */
} weft__stack_pool;

/* Free stacks kept resident for reuse; beyond twice as many, the loop trims the rest when it idles. */
#define WEFT__STACKS_KEPT 64

int weft__stack_pool_init(weft__stack_pool *p, size_t stack_size);
void weft__stack_pool_fini(weft__stack_pool *p);
weft__stack *weft__stack_get(weft__stack_pool *p);
void weft__stack_put(weft__stack_pool *p, weft__stack *s);
void weft__stack_trim_excess(weft__stack_pool *p, size_t max);
/* Gives back the pages of up to max free stacks beyond the WEFT__STACKS_KEPT most recently freed, once
 * more than twice that many are free; inline, as the loop asks before every sleep. */
static inline void weft__stack_trim(weft__stack_pool *p, size_t max)
{
    if (WEFT__UNLIKELY(p->nfree > 2 * WEFT__STACKS_KEPT))
        weft__stack_trim_excess(p, max);
}
/* Which task's stack contains the guard page at addr, for the overflow report; NULL if none. */
bool weft__stack_guard_hit(const weft__stack *s, size_t guard_size, const void *addr);
/* Writes and checks the canary used when no guard page could be installed. */
void weft__stack_canary_set(weft__stack *s);
bool weft__stack_canary_ok(const weft__stack *s);
/* Installs the SIGSEGV handler that names the task whose stack overflowed (once per process), and an
 * alternate signal stack for the calling thread. */
int weft__overflow_handler_install(void);
void weft__overflow_handler_remove(void);

/* ---- timer.c: a 4-ary min-heap of deadlines ---------------------------------------------------- */

typedef struct weft__timer {
    uint64_t when;
    size_t heap_index; /* SIZE_MAX when not armed */
    void (*fire)(struct weft__timer *);
} weft__timer;

typedef struct weft__timer_heap {
    weft__timer **nodes;
    size_t len, cap;
} weft__timer_heap;

void weft__timer_heap_fini(weft__timer_heap *h);
/* Makes room for n armed timers, so that arming one later cannot fail. */
int weft__timer_reserve(weft__timer_heap *h, size_t n);
/* Arms t (re-arming it if armed). Cannot fail within the reserved room. */
void weft__timer_arm(weft__timer_heap *h, weft__timer *t, uint64_t when);
void weft__timer_disarm(weft__timer_heap *h, weft__timer *t);
static inline bool weft__timer_armed(const weft__timer *t) { return t->heap_index != SIZE_MAX; }
/* Earliest deadline, or UINT64_MAX when empty. */
static inline uint64_t weft__timer_next(const weft__timer_heap *h) { return h->len ? h->nodes[0]->when : UINT64_MAX; }
/* Fires every timer due at or before now; returns how many fired. */
size_t weft__timer_run(weft__timer_heap *h, uint64_t now);

/* ---- future.c -------------------------------------------------------------------------------- */

enum weft__future_state { WEFT__PENDING = 0, WEFT__CLAIMED = 1, WEFT__DONE = 2 };
enum weft__future_kind { WEFT__FUTURE_USER, WEFT__FUTURE_TASK, WEFT__FUTURE_IO, WEFT__FUTURE_EXEC };

/*
 * Something waiting for a future: a parked task (slot is what wait_any reports) or a callback.
 * Task waiters live on the waiting task's stack; callback waiters are allocated by on_done.
 */
typedef struct weft__waiter {
    weft__link link;     /* in the future's waiters, then in the loop's callback queue */
    weft_task *task;                            /* NULL for a callback */
    void (*cb)(weft_future *, void *);
    void *cb_arg;
    weft_future *future;
    intptr_t result;  /* the future's result, copied when it completes */
    bool fired;       /* the future completed while this waiter was linked */
} weft__waiter;

struct weft_future {
    _Atomic int state;       /* weft__future_state; atomic only for resolve_from_thread */
    uint8_t kind;
    bool freed;              /* weft_future_free ran while callbacks were still queued */
    bool observed;           /* awaited, waited on or given a callback: its result reached someone */
    unsigned pending_cbs;    /* callbacks queued on the loop but not yet run */
    intptr_t result;
    weft_loop *_Atomic loop; /* the loop that owns it, set when first used on one */
    weft__list waiters;
    struct weft_future *remote_next; /* link in the loop's list of cross-thread resolutions */
    struct weft__wq_node *wq_node;   /* its place in a wait queue (weft_chan_recv_async), or NULL */
};

void weft__future_init(weft_future *f, enum weft__future_kind kind);
/* Resolves f on its loop thread: wakes the task waiters now, queues the callbacks. */
void weft__future_complete(weft_loop *l, weft_future *f, intptr_t result);
void weft__waiter_unlink(weft__waiter *w);
void weft__waiter_link(weft_future *f, weft__waiter *w);
/*
 * Resolves f from any thread through its loop's remote list, waking the loop if it may be asleep.
 * Exactly one resolver wins: -EALREADY for the others, -EINVAL if f has no loop.
 */
int weft__future_post(weft_future *f, intptr_t result);
/* Runs one queued callback on the loop (called by sched.c with no task current). */
void weft__callback_run(weft__waiter *w);

/* ---- sync.c: FIFO wait queues for events, mutexes, semaphores and channels --------------------- */

typedef struct weft__wq_node {
    weft__link link;
    weft__list *queue;        /* NULL when not queued */
    weft_task *task;          /* the parked task, or NULL for a future waiter */
    weft_future *future;      /* a future waiter (heap node, freed when granted) */
    void *item;               /* what a channel sender offers, or a receiver is given */
    intptr_t result;
    bool granted;
} weft__wq_node;

typedef weft__list weft__wq;

void weft__wq_push(weft__wq *q, weft__wq_node *n);
void weft__wq_remove(weft__wq_node *n);
weft__wq_node *weft__wq_pop(weft__wq *q);
/* Hands result to a node taken off its queue: wakes its task or completes its future. */
void weft__wq_grant(weft__wq_node *n, intptr_t result);
/* Grants result to every node of q (close, free). */
void weft__wq_fail_all(weft__wq *q, intptr_t result);
/* Parks t in q until granted (returns the granted result) or interrupted (returns the reason). */
intptr_t weft__wq_wait(weft__wq *q, weft__wq_node *n, weft_task *t);

/* ---- sched.c: tasks, parking, the run loop ---------------------------------------------------- */

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
    struct weft_task *ready_next;          /* ready queue link */
    weft__link all_link;                   /* in the loop's list of tasks not yet freed */
    weft_fn fn;
    void *arg;
    weft__stack *stack;
    uint8_t state;
    bool cancelled;     /* sticky cancel request */
    bool released;      /* joined or detached: freed when it ends */
    bool detached;
    uint64_t id;
    intptr_t wake_value;          /* what the waker handed over */
    weft__interrupt_fn interrupt; /* non-NULL while parked interruptibly */
    void *park_obj;               /* for interrupt(): the waiter, the op, ... */
    int timer_reason;             /* what the park timer means: 0 (sleep ended) or -ETIMEDOUT */
    int latched_fd, latched_err;  /* an error weft_recv_exact/send_all held back after partial progress:
                                     the task's next call on latched_fd returns it */
    weft__timer timer;
    uint64_t *deadlines;          /* effective deadline per nesting level; [depth-1] is in force */
    unsigned deadline_depth, deadline_cap;
    unsigned deadline_lost;       /* levels pushed when no memory was left to record them */
    uint64_t deadline_inline[WEFT__DEADLINES_INLINE];
    weft_future future;           /* done when the task ends, with its result */
    struct weft_group *group;     /* the group it belongs to, or NULL */
    weft__link group_link;        /* in its group's members */
    char name[32];
};

struct weft__op;

/* The operations every backend provides. The core never asks which backend it runs on. */
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
} weft__backend_ops;

extern const weft__backend_ops weft__uring_ops;
extern const weft__backend_ops weft__epoll_ops;

/* io_uring's submit and poll, which the two calls below reach without the table. */
int weft__uring_submit(weft_loop *l, struct weft__op *op);
int weft__uring_poll(weft_loop *l, uint64_t timeout_ns);


struct weft_loop {
    weft_task *current;                   /* running task, NULL in the loop's own context */
    weft_task *ready_head, *ready_tail;
    unsigned budget;                      /* task runs left before the loop polls I/O again */
    weft_task *zombie;                    /* ended task whose stack is released after the switch */
    weft__ctx ctx;                        /* the loop's own context on the thread's stack */
    weft__list callbacks;                 /* waiters whose callbacks run outside any task */
    weft__timer_heap timers;
    weft__stack_pool stacks;
    weft__list tasks;                     /* every task not yet freed */
    weft_task *free_tasks, *free_tasks_tail; /* recycled task structs, reused oldest first (ready_next) */
    size_t free_task_count;
    uint64_t next_task_id;
    weft_task *main_task;
    bool running, closing;
    _Atomic(unsigned long) owner;         /* pthread_self() of the thread running it, 0 when idle */
    int wake_fd;                          /* eventfd other threads write to wake the loop */
    _Atomic int sleeping;                 /* 1 while the loop may block in the kernel */
    weft_future *_Atomic remote_head;     /* futures resolved by other threads, newest first */
    weft__list async_ops;                 /* _async operations in flight, for teardown */
    weft__list async_jobs;                /* weft_offload_async jobs not yet completed, for teardown */
    size_t jobs_inflight;                 /* offloaded jobs of this loop not yet completed */
    bool uses_default_executor;
    const weft__backend_ops *backend;
    void *backend_data;
    size_t inflight;                      /* operations submitted and not yet completed */
    const bool *waited_here;              /* the completion flag of the op weft__wait_here waits for */
    weft_config cfg;
    weft_stats stats;
    char fallback_reason[160];            /* why io_uring was not used, "" if it is */
    /* Published at every switch for the watchdog thread (watchdog.c). */
    weft_task *_Atomic watch_task;
    _Atomic uint64_t watch_seq;
    _Atomic uint64_t slow_reports;
    struct weft__watchdog *watchdog;
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
/* Ends a join or wait_for: shared by both (sched.c). */
intptr_t weft__join(weft_task *t, uint64_t expiry);
/* Awaits f from the running task t (future.c). *completed tells a result from an interruption. */
intptr_t weft__await(weft_task *t, weft_future *f, bool *completed);
/* One turn of the loop: run ready tasks and callbacks, then, unless done(l) holds, poll the backend. */
int weft__loop_turn(weft_loop *l, bool (*done)(weft_loop *));
/* Completes a switch into a context: releases the stack of a task that just ended. */
void weft__after_switch(weft_loop *l);
/*
 * Parks the running task until weft__wake. While parked, cancellation and a deadline (or expiry, if
 * earlier) call interrupt(t, reason); interrupt may be NULL for an uninterruptible wait, and then
 * expiry and deadlines are ignored. Returns the value handed to weft__wake.
 */
intptr_t weft__park(weft_task *t, weft__interrupt_fn interrupt, void *park_obj, uint64_t expiry, int expiry_reason);
/* -ECANCELED or -ETIMEDOUT if the task may not suspend now, else 0. */
int weft__check_suspend(weft_task *t);
/* The task's deadline in force, UINT64_MAX for none. */
static inline uint64_t weft__deadline(const weft_task *t)
{
    return t->deadline_depth ? t->deadlines[t->deadline_depth - 1] : UINT64_MAX;
}
/* Queues a callback waiter to run on the loop outside any task. */
void weft__callback_queue(weft_loop *l, weft__waiter *w);
/* Resolves the futures other threads handed over. */
void weft__remote_drain(weft_loop *l);
/* Frees an ended, released task (or defers it while callbacks on its future are queued). */
void weft__task_free(weft_loop *l, weft_task *t);
/* The blocking-the-loop detector of a running loop (watchdog.c). */
int weft__watchdog_start(weft_loop *l);
void weft__watchdog_stop(weft_loop *l);

/* Records a switch to next (NULL: the loop's own context) for the stats and the watchdog. */
/*
 * The backend's submit and poll as the hot paths call them: io_uring's directly (a call the CPU
 * predicts even with cold predictors after a system call, where an indirect one through the table
 * costs measurably on a NOP's round trip), any other backend through its table.
 */
static inline int weft__backend_submit(weft_loop *l, struct weft__op *op)
{
    return WEFT__LIKELY(l->backend == &weft__uring_ops) ? weft__uring_submit(l, op) : l->backend->submit(l, op);
}

static inline int weft__backend_poll(weft_loop *l, uint64_t timeout_ns)
{
    return WEFT__LIKELY(l->backend == &weft__uring_ops) ? weft__uring_poll(l, timeout_ns) : l->backend->poll(l, timeout_ns);
}

static inline void weft__note_switch(weft_loop *l, weft_task *next)
{
    l->current = next;
    uint64_t seq = ++l->stats.switches;
    atomic_store_explicit(&l->watch_task, next, memory_order_relaxed);
    atomic_store_explicit(&l->watch_seq, seq, memory_order_release);
}

/* The running task t waits for its own op in place while nothing else can run (sched.c). */
bool weft__wait_here(weft_loop *l, weft_task *t, const bool *completed);
/* A member of a group ended (group.c). */
void weft__group_member_ended(weft_task *t, intptr_t result);
/* Spawns on l (the public spawn calls this with the thread's loop). */
weft_task *weft__spawn(weft_loop *l, const char *name, weft_fn fn, void *arg);
/* Prints "weft: " + formatted text on stderr in one write. */
void weft__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For diagnostics: "'name'" or "#id". */
const char *weft__task_label(const weft_task *t, char *buf, size_t len);

static inline uint64_t weft__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A spinning CPU's hint to its sibling hyperthread and the hypervisor. */
static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* ---- backends -------------------------------------------------------------------------------- */

/*
 * A request in flight in the kernel. user_data of its SQE points at it; complete() runs on the loop
 * with the CQE's result and flags.
 */
enum weft__opcode {
    WEFT__OP_NOP,
    WEFT__OP_SOCKET,
    WEFT__OP_ACCEPT,
    WEFT__OP_CONNECT,
    WEFT__OP_RECV,
    WEFT__OP_SEND,
    WEFT__OP_RECVMSG,
    WEFT__OP_SENDMSG,
    WEFT__OP_SHUTDOWN,
    WEFT__OP_CLOSE,
    WEFT__OP_OPENAT,
    WEFT__OP_READ,
    WEFT__OP_WRITE,
    WEFT__OP_READV,
    WEFT__OP_WRITEV,
    WEFT__OP_FSYNC,
    WEFT__OP_STATX,
    WEFT__OP_UNLINKAT,
    WEFT__OP_RENAMEAT,
    WEFT__OP_MKDIRAT,
    WEFT__OP_POLL,
    WEFT__OP_CANCEL_FD, /* cancel every op on fd (weft_close uses it before closing) */
    WEFT__OP_COUNT
};

/*
 * One I/O request: the system call's arguments, whichever backend carries them out. The meaning of
 * each field per opcode follows the system call (fd/addr/len/off/flags), with fd2/addr2 for the second
 * path of renameat and the length pointer of accept, and mode for openat/mkdirat/statx's mask.
 */
typedef struct weft__op {
    void (*complete)(struct weft__op *op, int32_t res, uint32_t flags);
    weft_task *task;    /* the task parked on it, NULL for an _async op */
    int32_t res;
    int reason;         /* why it was cancelled: -ECANCELED, -ETIMEDOUT; 0 if not */
    uint8_t opcode;
    bool cancel_sent;
    bool completed;     /* complete() has run (a backend may complete an op inside submit) */
    bool abandoned;     /* an _async op whose future was freed while pending: its result goes nowhere */
    bool withdrawn;     /* io_uring: cancelled before its SQE reached the kernel, turned into a NOP */
    uint32_t sqe_seq;   /* io_uring: the SQ position its SQE was given */
    uint8_t wait_kind;  /* the backend's: what the pending op waits in */
    void *backend_priv; /* the backend's own state for the op while it is pending */
    weft__link wait_link;  /* in one of the backend's wait queues */
    int fd, fd2;
    void *addr, *addr2;
    uint64_t len;
    int64_t off;
    uint32_t flags;
    uint32_t mode;
} weft__op;

/* Submits op for the running task t and parks until its final completion (io.c). */
intptr_t weft__io_wait(weft_task *t, weft__op *op);
/* Holds back err for fd: the running task's next call on fd returns it (weft_recv_exact, send_all). */
void weft__io_latch(int fd, int err);
/* The same, ignoring cancellation and deadlines: for operations that must happen (close). */
intptr_t weft__io_wait_uninterruptible(weft_task *t, weft__op *op);
/* Carries op out with the blocking system call, on the calling thread; returns its result. */
int32_t weft__op_run_blocking(weft__op *op);
/* Runs op with the blocking system call on the default executor; complete() runs on the loop. */
int weft__op_offload(weft_loop *l, weft__op *op);
/* Cancels an op started with weft__op_offload: dequeued if not started, else it runs to its end. */
void weft__op_offload_cancel(weft__op *op);
/* Submits op as an _async operation and returns the future its completion resolves (io.c). */
weft_future *weft__io_async(weft__op *op);
/* Cancels every _async operation still in flight (loop teardown). */
void weft__io_cancel_all(weft_loop *l);
/* weft_future_cancel / weft_future_free of an _async future, and its release once callbacks ran. */
int weft__io_future_cancel(weft_future *f);
void weft__io_future_free(weft_future *f);
void weft__io_future_release(weft_future *f);

/* ---- executor.c ------------------------------------------------------------------------------- */

/* The same for futures of weft_offload_async. */
int weft__exec_future_cancel(weft_future *f);
void weft__exec_future_free(weft_future *f);
void weft__exec_future_release(weft_future *f);
/* A job's result came through the remote list (weft__remote_drain). true if it was a callback job,
 * whose callback ran and whose memory is gone: the future must not be completed. */
bool weft__exec_drained(weft_loop *l, weft_future *f);
/* Runs fn(arg) on the default executor; landed(landed_arg, result) runs on the loop afterwards
 * (result -ECANCELED if cancelled before it started). waiter, if not NULL, is the running task, which
 * waits for room in a full queue; without one a full queue fails with EAGAIN. Returns a handle, or
 * NULL with errno set. */
void *weft__exec_submit_cb(weft_loop *l, weft_task *waiter, weft_fn fn, void *arg, void (*landed)(void *, intptr_t),
                           void *landed_arg);
/* Dequeues a callback job not yet started (landed runs with -ECANCELED); a running one runs on. */
void weft__exec_cancel_cb(void *handle);
/* Cancels the loop's queued weft_offload_async jobs (teardown); running ones are waited for. */
void weft__exec_cancel_all(weft_loop *l);
/* Drops the loop's reference to the default executor, shutting it down with the last one. */
void weft__exec_default_release(weft_loop *l);

/* The calling thread's signal mask without the signals weft blocked for weft_signal_wait (signal.c):
 * the mask a child process starts with. */
void weft__signal_mask_own(sigset_t *mask);

/* ---- fault.c: fault injection (-Dfault_injection=true) ------------------------------------------ */

enum weft__fault_site {
    WEFT__FAULT_ENTER,       /* io_uring_enter returns error (-EBUSY, -EINTR) without entering */
    WEFT__FAULT_SQ_FULL,     /* the SQ looks full: the submission path must flush and retry */
    WEFT__FAULT_TASK_ALLOC,  /* allocating a task fails */
    WEFT__FAULT_STACK_ALLOC, /* allocating a task's stack fails */
    WEFT__FAULT_SITES
};

#if defined(WEFT_FAULT_INJECTION)
/* The next count ops of opcode, after skip, complete with error at once (error < 0) or have their
 * length capped at error bytes (error > 0: a short read or write). */
void weft__fault_op(int opcode, int error, unsigned skip, unsigned count);
void weft__fault_site(enum weft__fault_site site, int error, unsigned skip, unsigned count);
void weft__fault_clear(void);
int weft__fault_take_op(int opcode);
int weft__fault_take(enum weft__fault_site site);
#define WEFT__FAULT_OP(opcode) weft__fault_take_op(opcode)
#define WEFT__FAULT(site) weft__fault_take(site)
#else
#define WEFT__FAULT_OP(opcode) 0
#define WEFT__FAULT(site) 0
#endif

/* Size of the loop's env-overridable config after defaults are applied. */
int weft__config_resolve(weft_config *out, const weft_config *in);

#endif /* WEFT_INTERNAL_H */
