/* executor.c: the internal side of the thread pool. Part of internal.h; included through it. */
#ifndef WEFT_EXEC_H
#define WEFT_EXEC_H

struct weft__job;

/*
 * Runs fn(arg) on the default executor; landed(landed_arg, result) runs on the loop afterwards
 * (result -ECANCELED if cancelled before it started). waiter, if not NULL, is the running task, which
 * waits for room in a full queue; without one the job is queued past the limit. Returns the job, or
 * NULL with errno set.
 */
struct weft__job *weft__exec_submit_cb(weft_loop *l, weft_task *waiter, weft_fn fn, void *arg,
                                       void (*landed)(void *, intptr_t), void *landed_arg);
/* Dequeues a callback job not yet started (landed runs with -ECANCELED); a running one runs on. */
void weft__exec_cancel_cb(struct weft__job *j);
/* Cancels the loop's queued weft_offload_async jobs (teardown); running ones are waited for. */
void weft__exec_cancel_all(weft_loop *l);
/* Drops the loop's reference to the default executor, shutting it down with the last one. */
void weft__exec_default_release(weft_loop *l);

#endif /* WEFT_EXEC_H */
