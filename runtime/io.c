/*
 * I/O calls: each builds a weft__op on the calling task's stack, hands it to the backend and parks
 * until the op's final completion.
 *
 * Cancellation never abandons an op the kernel still holds: the interrupt asks the backend to cancel
 * it and the task stays parked until the completion arrives. If the op finished anyway, its real
 * result is returned (nothing read or written is lost) and the sticky cancel is seen by the next call.
 */
#include "internal.h"

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

intptr_t weft__io_wait(weft_task *t, weft__op *op)
{
    int r = weft__check_suspend(t);
    if (r)
        return r;
    weft_loop *l = t->loop;
    op->complete = op_complete_wake;
    op->task = t;
    op->reason = 0;
    r = l->backend->submit(l, op);
    if (r < 0)
        return r;
    l->inflight++;
    weft__park(t, op_interrupt, op, UINT64_MAX, 0);
    if (op->reason && op->res == -ECANCELED)
        return op->reason;
    return op->res;
}

int weft_nop(void)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    weft__op op = {.opcode = WEFT__OP_NOP};
    return (int)weft__io_wait(t, &op);
}
