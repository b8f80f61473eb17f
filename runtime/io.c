/*
 * I/O requests: each call builds a weft__op, hands it to the backend and parks the task until the op's
 * final completion; an _async call does the same with the op in a heap block that carries a future.
 *
 * Cancellation never abandons an op the kernel still holds: the interrupt asks the backend to cancel
 * it and the task stays parked until the completion arrives, so no buffer is written after the call
 * returns. If the op finished anyway, its real result is returned (nothing read or written is lost)
 * and the sticky cancel is seen by the next call.
 *
 * Deadlines use the loop's timers, not linked timeout SQEs: a timer costs a heap insertion and removal
 * and no SQE, and the cancel is only submitted in the rare case the deadline passes.
 */
#include "internal.h"

#include <stdlib.h>

typedef struct weft__async_op {
    weft_future future;
    weft__op op;
    weft_loop *loop;
    struct weft__async_op *next, *prev; /* the loop's in-flight list */
    bool kernel_done;                   /* its completion has arrived */
} weft__async_op;

/*
 * The block is freed once three things hold: the kernel is done with it (kernel_done), its owner has
 * freed the future (future.freed), and no callback on the future is still queued.
 */
static void async_maybe_free(weft__async_op *a)
{
    if (a->kernel_done && a->future.freed && a->future.pending_cbs == 0)
        free(a);
}

static void op_complete_wake(weft__op *op, int32_t res, uint32_t flags)
{
    (void)flags;
    op->res = res;
    op->task->loop->inflight--;
    if (op->task->state == WEFT__PARKED)
        weft__wake(op->task, 0);
}

static void op_interrupt(weft_task *t, int reason)
{
    weft__op *op = t->park_obj;
    op->reason = reason;
    t->loop->backend->cancel(t->loop, op);
}

/* The result an op's caller sees once the kernel is done with it. */
static intptr_t op_result(const weft__op *op)
{
    if (op->res == -ECANCELED) {
        if (op->reason)
            return op->reason;
        /* Cancelled by weft_close of its fd, not by the task's own cancellation. */
        return -EBADF;
    }
    return op->res;
}

static intptr_t io_wait(weft_task *t, weft__op *op, weft__interrupt_fn interrupt)
{
    weft_loop *l = t->loop;
    op->complete = op_complete_wake;
    op->task = t;
    op->reason = 0;
    op->cancel_sent = false;
    int r = l->backend->submit(l, op);
    if (r < 0)
        return r;
    l->inflight++;
    weft__park(t, interrupt, op, UINT64_MAX, 0);
    return op_result(op);
}

intptr_t weft__io_wait(weft_task *t, weft__op *op)
{
    int r = weft__check_suspend(t);
    if (r)
        return r;
    return io_wait(t, op, op_interrupt);
}

intptr_t weft__io_wait_uninterruptible(weft_task *t, weft__op *op)
{
    return io_wait(t, op, NULL);
}

static void async_unlink(weft__async_op *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        a->loop->async_head = a->next;
    if (a->next)
        a->next->prev = a->prev;
}

static void async_complete(weft__op *op, int32_t res, uint32_t flags)
{
    (void)flags;
    weft__async_op *a = WEFT__CONTAINER(op, weft__async_op, op);
    weft_loop *l = a->loop;
    l->inflight--;
    async_unlink(a);
    a->kernel_done = true;
    op->res = res;
    if (atomic_load_explicit(&a->future.state, memory_order_relaxed) != WEFT__DONE)
        weft__future_complete(l, &a->future, op_result(op));
    async_maybe_free(a);
}

weft_future *weft__io_async(weft__op *template)
{
    weft_loop *l = weft__tls_loop;
    if (!l) {
        errno = EPERM;
        return NULL;
    }
    weft__async_op *a = malloc(sizeof *a);
    if (!a) {
        errno = ENOMEM;
        return NULL;
    }
    weft__future_init(&a->future, WEFT__FUTURE_IO);
    atomic_store_explicit(&a->future.loop, l, memory_order_relaxed);
    a->op = *template;
    a->op.complete = async_complete;
    a->op.task = NULL;
    a->op.reason = 0;
    a->op.cancel_sent = false;
    a->loop = l;
    a->kernel_done = false;
    int r = l->backend->submit(l, &a->op);
    if (r < 0) {
        /* The error travels through the future, like every other result of the operation. */
        a->kernel_done = true;
        weft__future_complete(l, &a->future, r);
        return &a->future;
    }
    l->inflight++;
    a->prev = NULL;
    a->next = l->async_head;
    if (l->async_head)
        l->async_head->prev = a;
    l->async_head = a;
    return &a->future;
}

int weft__io_future_cancel(weft_future *f)
{
    weft__async_op *a = WEFT__CONTAINER(f, weft__async_op, future);
    if (a->kernel_done)
        return -EALREADY;
    a->op.reason = -ECANCELED;
    a->loop->backend->cancel(a->loop, &a->op);
    return 0;
}

void weft__io_future_free(weft_future *f)
{
    weft__async_op *a = WEFT__CONTAINER(f, weft__async_op, future);
    f->freed = true;
    if (!a->kernel_done) {
        /* The kernel may still write into the caller's buffer: cancel the op and wake whoever awaits
         * the future now; the completion frees the block when it comes. */
        a->op.reason = -ECANCELED;
        a->loop->backend->cancel(a->loop, &a->op);
        if (atomic_load_explicit(&f->state, memory_order_relaxed) != WEFT__DONE)
            weft__future_complete(a->loop, f, -ECANCELED);
    }
    async_maybe_free(a);
}

void weft__io_future_release(weft_future *f)
{
    async_maybe_free(WEFT__CONTAINER(f, weft__async_op, future));
}

void weft__io_cancel_all(weft_loop *l)
{
    for (weft__async_op *a = l->async_head; a; a = a->next)
        if (!a->op.cancel_sent) {
            a->op.reason = -ECANCELED;
            l->backend->cancel(l, &a->op);
        }
}

int weft_nop(void)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    weft__op op = {.opcode = WEFT__OP_NOP};
    return (int)weft__io_wait(t, &op);
}
