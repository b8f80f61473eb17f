/* future.c: futures and their waiters; sync.c: FIFO wait queues. Part of internal.h; included through it. */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

enum weft__future_state { WEFT__PENDING = 0, WEFT__CLAIMED = 1, WEFT__DONE = 2 };

/*
 * Something waiting for a future: a parked task (slot is what wait_any reports) or a callback.
 * Task waiters live on the waiting task's stack; callback waiters are allocated by on_done.
 */
typedef struct weft__waiter {
    weft__link link;     /* in the future's waiters */
    weft__runnable run;  /* a callback's place in the run queue once the future completed */
    weft_task *task;                            /* NULL for a callback */
    void (*cb)(weft_future *, void *);
    void *cb_arg;
    weft_future *future;
    intptr_t result;  /* the future's result, copied when it completes */
    bool fired;       /* the future completed while this waiter was linked */
} weft__waiter;

/*
 * What a kind of future does where kinds differ: a user's future, a task's, an _async request's, an
 * offloaded job's. future.c calls these and knows no kind.
 */
typedef struct weft__future_ops {
    /* weft_future_cancel. */
    int (*cancel)(weft_future *f);
    /* weft_future_free: the owner lets go of f. */
    void (*free)(weft_future *f);
    /* Nothing on the loop refers to f any more (its last queued callback ran): reclaim it. */
    void (*release)(weft_future *f);
    /* A result another thread posted has reached the loop; false if f must not be completed with it
     * (the hook used it up, and f may be gone). NULL: complete f. */
    bool (*landed)(weft_loop *l, weft_future *f);
    /* For the owned kinds (below): asks the operation to end early; abandon: its owner freed f, so
     * its result goes nowhere. */
    void (*stop)(weft_future *f, bool abandon);
    /* Says what f stood for, for the report of an error nobody awaited ("recv on fd 5"). */
    void (*describe)(const weft_future *f, char *buf, size_t len);
    /* f was posted to a loop that is being freed, after its last run drained the remote list: let
     * go of what f carries. NULL: f is its owner's (a user future resolved too late), left alone. */
    void (*discard)(weft_future *f);
} weft__future_ops;

struct weft_future {
    const weft__future_ops *ops;
    _Atomic int state;       /* weft__future_state; atomic only for resolve_from_thread */
    bool freed;              /* weft_future_free ran while something on the loop still referred to it */
    bool observed;           /* awaited, waited on or given a callback: its result reached someone */
    bool op_done;            /* owned kinds: the operation has let go of the block */
    unsigned pending_cbs;    /* callbacks queued on the loop but not yet run */
    intptr_t result;
    weft_loop *_Atomic loop; /* the loop that owns it, set when first used on one */
    weft__list waiters;
    struct weft_future *remote_next; /* link in the loop's list of cross-thread resolutions */
    struct weft__wq_node *wq_node;   /* its place in a wait queue (weft_chan_recv_async), or NULL */
};

/* A future a user made with weft_future_new (or weft uses the same way): resolvable by anyone. */
extern const weft__future_ops weft__user_future;

/* For the kinds no user can cancel or free (a task's, a message carried between loops, an offload's
 * on its caller's stack): weft_future_cancel answers -EINVAL, and free and release have nothing to
 * do, as the memory belongs to what the future is part of. */
int weft__future_cancel_refused(weft_future *f);
void weft__future_nothing_to_free(weft_future *f);

/* Initialises f as a future of that kind, belonging to loop l (NULL: the first loop that uses it). */
void weft__future_init(weft_future *f, const weft__future_ops *ops, weft_loop *l);
/* Resolves f on its loop thread: wakes the task waiters now, queues the callbacks. */
void weft__future_complete(weft_loop *l, weft_future *f, intptr_t result);
void weft__waiter_unlink(weft__waiter *w);
/*
 * weft_future_on_done that hands back its waiter, so the caller can take the callback back with
 * weft__future_unwatch before it runs. NULL with *err -EPERM (no loop here), -EINVAL (another loop's
 * future), -ENOMEM. The waiter is freed after cb has run.
 */
weft__waiter *weft__future_watch(weft_future *f, void (*cb)(weft_future *, void *), void *arg, int *err);
/* Takes back a callback that has not been queued yet (true: it will never run; w is freed); false
 * once it is queued: it will run, and the caller must stay able to receive it. */
bool weft__future_unwatch(weft__waiter *w);
void weft__waiter_link(weft_future *f, weft__waiter *w);
/*
 * Resolves f from any thread through its loop's remote list, waking the loop if it may be asleep.
 * Exactly one resolver wins: -EALREADY for the others, -EINVAL if f has no loop.
 */
int weft__future_post(weft_future *f, intptr_t result);

/*
 * Owned futures: handed to the caller of an _async request or weft_offload_async, for an operation
 * that may outlive the caller's interest in it. The future comes first in a malloc'ed block, which is
 * freed once three things hold: the operation has let go (weft__owned_done), the owner has freed the
 * future, and no callback on it is still queued. Cancelling or freeing a pending one asks the
 * operation to stop (ops->stop); whoever awaits it still wakes with the real result.
 */
void weft__owned_done(weft_future *f);
int weft__owned_cancel(weft_future *f);
void weft__owned_free(weft_future *f);
void weft__owned_release(weft_future *f);

/* ---- sync.c: FIFO wait queues for events, mutexes, semaphores and channels --------------------- */

typedef struct weft__wq_node {
    weft__link link;
    weft__list *queue;        /* NULL when not queued */
    weft_task *task;          /* the parked task, or NULL for a future waiter */
    weft_future *future;      /* a future waiter (heap node, freed when granted) */
    void *item;               /* what a channel sender offers, or a receiver is given */
    intptr_t result;
    bool granted;
    const char *call;         /* the call a parked task waits in ("weft_chan_recv"): what the dump and
                                 the trace say it waits for */
} weft__wq_node;

typedef weft__list weft__wq;

void weft__wq_push(weft__wq *q, weft__wq_node *n);
void weft__wq_remove(weft__wq_node *n);
weft__wq_node *weft__wq_pop(weft__wq *q);
/* Hands result to a node taken off its queue: wakes its task or completes its future. */
void weft__wq_grant(weft__wq_node *n, intptr_t result);
/* Grants result to every node of q (close, free). */
void weft__wq_fail_all(weft__wq *q, intptr_t result);
/* Parks t in q until granted (returns the granted result) or interrupted (returns the reason); call
 * names the waiting call for diagnostics. */
intptr_t weft__wq_wait(weft__wq *q, weft__wq_node *n, weft_task *t, const char *call);

#endif /* WEFT_FUTURE_H */
