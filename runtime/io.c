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

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <unistd.h>

typedef struct weft__async_op {
    weft_future future;
    weft__op op;
    weft_loop *loop;
    weft__link link;                    /* in the loop's async_ops */
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
    op->completed = true;
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

/* An injected fault for op: true if it completed op with an error; a length cap shortens op. */
static bool fault_inject(weft__op *op)
{
    int fault = WEFT__FAULT_OP(op->opcode);
    if (fault > 0 && op->len > (uint64_t)fault)
        op->len = (uint64_t)fault;
    if (fault >= 0)
        return false;
    op->complete(op, fault, 0);
    return true;
}

static intptr_t io_wait(weft_task *t, weft__op *op, weft__interrupt_fn interrupt)
{
    weft_loop *l = t->loop;
    op->complete = op_complete_wake;
    op->task = t;
    op->reason = 0;
    op->cancel_sent = false;
    op->completed = false;
    op->abandoned = false;
    op->withdrawn = false;
    op->wait_kind = 0;
    op->backend_priv = NULL;
    l->inflight++;
    int r = fault_inject(op) ? 0 : weft__backend_submit(l, op);
    if (r < 0) {
        l->inflight--;
        return r;
    }
    /* Without a deadline, the task waits for its op right here while nothing else can run; otherwise
     * (or once something else can) it parks, with op as what an interrupt cancels. */
    if (!op->completed && !(WEFT__LIKELY(!t->deadline_depth) && weft__wait_here(l, t, &op->completed)))
        weft__park(t, interrupt, op, UINT64_MAX, 0);
    return op_result(op);
}

intptr_t weft__io_wait(weft_task *t, weft__op *op)
{
    int r = weft__check_suspend(t);
    if (r)
        return r;
    if (WEFT__UNLIKELY(t->latched_err) && t->latched_fd == op->fd) {
        r = t->latched_err;
        t->latched_err = 0;
        return r;
    }
    return io_wait(t, op, op_interrupt);
}

void weft__io_latch(int fd, int err)
{
    weft_task *t = weft__current();
    if (t && err < 0 && err != -ECANCELED && err != -ETIMEDOUT) {
        t->latched_fd = fd;
        t->latched_err = err;
    }
}

intptr_t weft__io_wait_uninterruptible(weft_task *t, weft__op *op)
{
    return io_wait(t, op, NULL);
}

static void async_complete(weft__op *op, int32_t res, uint32_t flags)
{
    (void)flags;
    weft__async_op *a = WEFT__CONTAINER(op, weft__async_op, op);
    weft_loop *l = a->loop;
    l->inflight--;
    weft__list_remove(&l->async_ops, &a->link);
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
    a->op.completed = false;
    a->op.abandoned = false;
    a->op.withdrawn = false;
    a->op.wait_kind = 0;
    a->op.backend_priv = NULL;
    a->loop = l;
    a->kernel_done = false;
    weft__list_push(&l->async_ops, &a->link);
    l->inflight++;
    int r = fault_inject(&a->op) ? 0 : weft__backend_submit(l, &a->op);
    if (r < 0) {
        /* The error travels through the future, like every other result of the operation. */
        async_complete(&a->op, r, 0);
    }
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
    if (!a->kernel_done) {
        /* Cancel it and let its completion free the block; until then the future stays pending, so
         * whoever awaits it wakes with the real result. The cancel may complete the op on the spot
         * (epoll, an executor job not started): the block is only marked freed after the call, so
         * that completion cannot free it under our feet. */
        a->op.abandoned = true;
        a->op.reason = -ECANCELED;
        a->loop->backend->cancel(a->loop, &a->op);
    }
    f->freed = true;
    async_maybe_free(a);
}

void weft__io_future_release(weft_future *f)
{
    async_maybe_free(WEFT__CONTAINER(f, weft__async_op, future));
}

void weft__io_cancel_all(weft_loop *l)
{
    /* A cancel may complete the op at once and take it off the list: step past it first. */
    weft__link *next;
    for (weft__link *link = l->async_ops.head; link; link = next) {
        next = link->next;
        weft__async_op *a = WEFT__CONTAINER(link, weft__async_op, link);
        if (!a->op.cancel_sent) {
            a->op.reason = -ECANCELED;
            l->backend->cancel(l, &a->op);
        }
    }
}

/* ---- blocking execution, for backends that cannot do an op asynchronously ---------------------- */

int32_t weft__op_run_blocking(weft__op *op)
{
    long r;
    switch (op->opcode) {
    case WEFT__OP_NOP:
        r = 0;
        break;
    case WEFT__OP_SOCKET:
        r = socket(op->fd, op->fd2, (int)op->flags);
        break;
    case WEFT__OP_ACCEPT:
        r = accept4(op->fd, op->addr, op->addr2, (int)op->flags);
        break;
    case WEFT__OP_CONNECT:
        r = connect(op->fd, op->addr, (socklen_t)op->len);
        break;
    case WEFT__OP_RECV:
        r = recv(op->fd, op->addr, op->len, (int)op->flags);
        break;
    case WEFT__OP_SEND:
        r = send(op->fd, op->addr, op->len, (int)op->flags);
        break;
    case WEFT__OP_RECVMSG:
        r = recvmsg(op->fd, op->addr, (int)op->flags);
        break;
    case WEFT__OP_SENDMSG:
        r = sendmsg(op->fd, op->addr, (int)op->flags);
        break;
    case WEFT__OP_SHUTDOWN:
        r = shutdown(op->fd, (int)op->flags);
        break;
    case WEFT__OP_CLOSE:
        r = close(op->fd);
        break;
    case WEFT__OP_OPENAT:
        r = openat(op->fd, op->addr, (int)op->flags, (mode_t)op->mode);
        break;
    case WEFT__OP_READ:
        r = op->off == -1 ? read(op->fd, op->addr, op->len) : pread(op->fd, op->addr, op->len, op->off);
        break;
    case WEFT__OP_WRITE:
        r = op->off == -1 ? write(op->fd, op->addr, op->len) : pwrite(op->fd, op->addr, op->len, op->off);
        break;
    case WEFT__OP_READV:
        r = op->off == -1 ? readv(op->fd, op->addr, (int)op->len) : preadv(op->fd, op->addr, (int)op->len, op->off);
        break;
    case WEFT__OP_WRITEV:
        r = op->off == -1 ? writev(op->fd, op->addr, (int)op->len)
                          : pwritev(op->fd, op->addr, (int)op->len, op->off);
        break;
    case WEFT__OP_FSYNC:
        r = op->flags ? fdatasync(op->fd) : fsync(op->fd);
        break;
    case WEFT__OP_STATX:
        r = statx(op->fd, op->addr, (int)op->flags, op->mode, op->addr2);
        break;
    case WEFT__OP_UNLINKAT:
        r = unlinkat(op->fd, op->addr, (int)op->flags);
        break;
    case WEFT__OP_RENAMEAT:
        r = renameat2(op->fd, op->addr, op->fd2, op->addr2, op->flags);
        break;
    case WEFT__OP_MKDIRAT:
        r = mkdirat(op->fd, op->addr, (mode_t)op->mode);
        break;
    case WEFT__OP_POLL: {
        struct pollfd pfd = {.fd = op->fd, .events = (short)op->flags};
        r = poll(&pfd, 1, -1);
        if (r >= 0)
            r = pfd.revents;
        break;
    }
    default:
        errno = EOPNOTSUPP;
        r = -1;
    }
    return r < 0 ? -errno : (int32_t)r;
}

static intptr_t offload_run(void *arg)
{
    return weft__op_run_blocking(arg);
}

/*
 * An _async read or write run on the executor goes through a buffer of weft's own: its owner may free
 * the future (and then its buffer) while a worker is in the middle of the call, and no thread may touch
 * the caller's buffer after that. The data is copied in before a write and out after a read, on the
 * loop, unless the owner has given the result up. The copy is page-aligned, as O_DIRECT requires of
 * the caller's. The caller's buffer waits in op->addr2, which these opcodes do not use. A task's own
 * ops need none of this: the task waits.
 */
static bool needs_bounce(const weft__op *op)
{
    if (op->task)
        return false;
    switch (op->opcode) {
    case WEFT__OP_READ:
    case WEFT__OP_WRITE:
    case WEFT__OP_RECV:
    case WEFT__OP_SEND:
        return true;
    default:
        return false;
    }
}

static void offload_landed(void *arg, intptr_t result)
{
    weft__op *op = arg;
    op->backend_priv = NULL;
    if (needs_bounce(op)) {
        bool is_read = op->opcode == WEFT__OP_READ || op->opcode == WEFT__OP_RECV;
        if (is_read && result > 0 && !op->abandoned)
            memcpy(op->addr2, op->addr, (size_t)result);
        free(op->addr);
        op->addr = op->addr2;
        op->addr2 = NULL;
    }
    weft__tls_loop->stats.completions++;
    op->complete(op, (int32_t)result, 0);
}

int weft__op_offload(weft_loop *l, weft__op *op)
{
    if (needs_bounce(op)) {
        void *copy;
        if (posix_memalign(&copy, 4096, op->len ? op->len : 1) != 0)
            return -ENOMEM;
        if (op->opcode == WEFT__OP_WRITE || op->opcode == WEFT__OP_SEND)
            memcpy(copy, op->addr, op->len);
        op->addr2 = op->addr;
        op->addr = copy;
    }
    /* A task's own op waits for room in a full queue; an _async op reports -EAGAIN instead. */
    void *job = weft__exec_submit_cb(l, op->task, offload_run, op, offload_landed, op);
    if (!job) {
        int err = -errno;
        if (needs_bounce(op)) {
            free(op->addr);
            op->addr = op->addr2;
            op->addr2 = NULL;
        }
        return err;
    }
    op->backend_priv = job;
    l->stats.offloaded_ops++;
    return 0;
}

void weft__op_offload_cancel(weft__op *op)
{
    if (op->backend_priv)
        weft__exec_cancel_cb(op->backend_priv);
}

int weft_nop(void)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    weft__op op = {.opcode = WEFT__OP_NOP};
    return (int)weft__io_wait(t, &op);
}
