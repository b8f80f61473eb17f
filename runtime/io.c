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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

/* An _async request: the owned future (future.c) and the op, in one block. */
typedef struct async_op {
    weft_future future; /* first: the block is freed through it */
    weft__op op;
    weft__link link;    /* in the loop's async_ops, while the op is in flight */
    weft__maker maker;
    char copies[];      /* the arguments copied at the call (weft__io_async_copy) */
} async_op;

static void op_complete_wake(weft__op *op, int32_t res, uint32_t flags)
{
    (void)flags;
    if (WEFT__UNLIKELY(op->task->loop->trace != NULL))
        weft__trace_io_end(op->task->loop, op, res);
    op->res = res;
    op->completed = true;
    op->task->loop->inflight--;
    if (op->task->state == WEFT__PARKED)
        weft__wake(op->task, 0);
}

/* A member of a chain completed: the task wakes once the last one has. */
static void chain_complete_wake(weft__op *op, int32_t res, uint32_t flags)
{
    (void)flags;
    if (WEFT__UNLIKELY(op->head->task->loop->trace != NULL))
        weft__trace_io_end(op->head->task->loop, op, res);
    op->res = res;
    op->completed = true;
    weft__op *head = op->head;
    weft_task *t = head->task;
    t->loop->inflight--;
    if (--head->chain_left)
        return;
    head->chain_done = true;
    if (t->state == WEFT__PARKED)
        weft__wake(t, 0);
}

/* Every member of a chain not yet completed is asked to end: one cancelled before it started takes
 * those after it with it, and one already running may still finish (its real result then counts). */
void weft__op_interrupt(weft_task *t, int reason)
{
    for (weft__op *op = t->park_obj; op; op = op->next) {
        if (op->completed)
            continue;
        op->reason = reason;
        weft__backend_cancel(t->loop, op);
    }
}

intptr_t weft__op_result(const weft__op *op)
{
    if (WEFT__UNLIKELY(op->served)) /* bytes handed over from kept ones (rx.c) are never lost */
        return op->res > 0 ? (intptr_t)op->served + op->res : (intptr_t)op->served;
    if (op->res == -ECANCELED) {
        if (op->reason)
            return op->reason;
        /* Cancelled by weft_close of its fd, not by the task's own cancellation. */
        return -EBADF;
    }
    return op->res;
}

bool weft__op_full(const weft__op *op, int32_t res)
{
    return res >= 0 && (weft__opcodes[op->opcode].buf_way == BUF_NONE || (uint64_t)res >= op->len);
}

/* An injected fault for op: true if it completed op with an error (and a chain's later members with
 * -ECANCELED, as a failed link does); a length cap shortens op. */
static bool fault_inject(weft__op *op)
{
    int fault = WEFT__FAULT_OP(op->opcode);
    if (fault > 0 && op->len > (uint64_t)fault)
        op->len = (uint64_t)fault;
    if (fault >= 0)
        return false;
    for (weft__op *member = op->next; member; member = member->next)
        member->complete(member, -ECANCELED, 0);
    op->complete(op, fault, 0);
    return true;
}

/* Makes op ready to be handed to a backend, complete() to run once it is over. */
static inline void op_prepare(weft__op *op, weft_task *t, void (*complete)(weft__op *, int32_t, uint32_t))
{
    op->complete = complete;
    op->task = t;
    op->reason = 0;
    op->cancel_sent = false;
    op->completed = false;
    op->abandoned = false;
    op->job = NULL;
    op->served = 0;
    op->head = NULL;
    op->be.withdrawn = false;
    op->be.zc = 0;
    op->be.wait_kind = 0;
}

/* Prepares every member of the chain at head for task t; returns how many there are. */
static unsigned chain_prepare(weft__op *head, weft_task *t)
{
    unsigned members = 0;
    for (weft__op *op = head; op; op = op->next) {
        op_prepare(op, t, chain_complete_wake);
        op->head = head;
        members++;
    }
    head->chain_left = (uint8_t)members;
    head->chain_done = false;
    return members;
}

/* ---- files weft hands out ---------------------------------------------------------------------- */

void weft__fd_new(weft_loop *l, int fd, uint8_t kind)
{
    if (!l || fd < 0)
        return;
    weft__fd_made(l, fd, kind);
    if (l->backend->fd_new)
        l->backend->fd_new(l, fd);
}

/*
 * A call that returns a new fd drops whatever an earlier file of that number left, and says what the
 * new file is: a socket of the type asked for, a connection of its listener's kind (a listener weft
 * made knows its type; another may be of any), or a file.
 */
static void fd_new_of(weft_loop *l, const weft__op *op, intptr_t res)
{
    if (res < 0)
        return;
    uint8_t kind;
    switch (op->opcode) {
    case WEFT__OP_SOCKET:
        kind = (op->arg.socket.type & 0xf) == SOCK_STREAM ? WEFT__FD_STREAM : WEFT__FD_OTHER;
        break;
    case WEFT__OP_ACCEPT: {
        const weft__fd_slot *listener = weft__fd_slot_of(l, op->fd);
        kind = listener && listener->kind == WEFT__FD_STREAM ? WEFT__FD_STREAM : WEFT__FD_SOCKET;
        break;
    }
    case WEFT__OP_OPENAT:
        kind = WEFT__FD_OTHER;
        break;
    default:
        return;
    }
    weft__fd_new(l, (int)res, kind);
}

int weft__rwf_nosignal(void)
{
    /* -1 until asked. A failure to make the pipe is not remembered: the next write asks again. */
    static _Atomic int known = -1;
    int flag = atomic_load_explicit(&known, memory_order_relaxed);
    if (flag >= 0)
        return flag;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return 0;
    /* Nothing is written, so nothing can be raised: a kernel without the flag refuses it with
     * EOPNOTSUPP before looking at the pipe. */
    char byte = 0;
    struct iovec none = {&byte, 0};
    flag = pwritev2(fds[1], &none, 1, -1, RWF_NOSIGNAL) == 0 ? RWF_NOSIGNAL : 0;
    close(fds[0]);
    close(fds[1]);
    atomic_store_explicit(&known, flag, memory_order_relaxed);
    return flag;
}

/* ---- starting a request ----------------------------------------------------------------------------- */

/*
 * Starts op, prepared (and the rest of its chain, members in all): a read of a connection with bytes
 * kept is served from them on the spot (rx.c), anything else goes to the backend. Counted in flight
 * until complete() runs; a negative errno (and complete() never runs) if the backend could not start it.
 */
static int op_start(weft_loop *l, weft__op *op, unsigned members)
{
    l->inflight += members;
    if (WEFT__UNLIKELY(l->trace != NULL))
        for (weft__op *member = op; member; member = member->next)
            weft__trace_io_begin(l, member);
    if (fault_inject(op) || (members == 1 && weft__rx_take(l, op)))
        return 0;
    int r = weft__backend_submit(l, op);
    if (WEFT__UNLIKELY(r < 0 && l->trace != NULL)) /* refused: complete() will never run */
        for (weft__op *member = op; member; member = member->next)
            weft__trace_io_end(l, member, r);
    return r;
}

/* ---- a task's own request ------------------------------------------------------------------------ */

static intptr_t io_wait(weft_task *t, weft__op *op, weft__interrupt_fn interrupt)
{
    weft_loop *l = t->loop;
    if (WEFT__UNLIKELY(l->fd_errors_held)) {
        /* Every call naming the fd takes its held error; close just drops it. */
        int held = weft__fd_error_take(l, op->fd);
        if (held && op->opcode != WEFT__OP_CLOSE && op->opcode != WEFT__OP_CANCEL_FD)
            return held;
    }
    unsigned members = 1;
    const bool *done = &op->completed;
    if (WEFT__LIKELY(!op->next)) {
        op_prepare(op, t, op_complete_wake);
    } else {
        members = chain_prepare(op, t);
        done = &op->chain_done;
    }
    int r = op_start(l, op, members);
    if (r < 0) {
        l->inflight -= members;
        return r;
    }
    /* Without a deadline the task waits for its op right where it is, as long as nothing else can
     * run; otherwise (or once something else can) it parks, with op as what an interrupt cancels. */
    if (!*done && !(WEFT__LIKELY(!t->deadline_depth) && weft__loop_wait_here(l, t, done) == 0))
        weft__park(t, interrupt, op, UINT64_MAX, 0);
    intptr_t res = weft__op_result(op);
    fd_new_of(l, op, res);
    return res;
}

intptr_t weft__io_wait(weft_task *t, weft__op *op)
{
    int r = weft__check_suspend(t);
    if (r)
        return r;
    return io_wait(t, op, weft__op_interrupt);
}

intptr_t weft__io_wait_uninterruptible(weft_task *t, weft__op *op)
{
    return io_wait(t, op, NULL);
}

int weft__io_close_now(weft_loop *l, int fd)
{
    if (l) {
        weft__rx_drop(l, fd);
        l->backend->forget_fd(l, fd);
    }
    return close(fd) < 0 ? -errno : 0;
}

/* ---- _async requests ------------------------------------------------------------------------------- */

static void async_complete(weft__op *op, int32_t res, uint32_t flags)
{
    (void)flags;
    async_op *a = WEFT__CONTAINER(op, async_op, op);
    weft_loop *l = atomic_load_explicit(&a->future.loop, memory_order_relaxed);
    if (WEFT__UNLIKELY(l->trace != NULL))
        weft__trace_io_end(l, op, res);
    l->inflight--;
    weft__list_remove(&l->async_ops, &a->link);
    op->res = res;
    fd_new_of(l, op, weft__op_result(op));
    if (atomic_load_explicit(&a->future.state, memory_order_relaxed) != WEFT__DONE)
        weft__future_complete(l, &a->future, weft__op_result(op));
    weft__owned_done(&a->future);
}

static void async_stop(weft_future *f, bool abandon)
{
    async_op *a = WEFT__CONTAINER(f, async_op, future);
    if (abandon)
        a->op.abandoned = true;
    a->op.reason = -ECANCELED;
    weft__backend_cancel(atomic_load_explicit(&f->loop, memory_order_relaxed), &a->op);
}

static void async_describe(const weft_future *f, char *buf, size_t len)
{
    const async_op *a = WEFT__CONTAINER(f, async_op, future);
    char by[64];
    snprintf(buf, len, "%s_async on fd %d%s", weft__opcodes[a->op.opcode].name, a->op.fd,
             weft__maker_label(&a->maker, by, sizeof by));
}

static const weft__future_ops async_future = {
    .cancel = weft__owned_cancel,
    .free = weft__owned_free,
    .release = weft__owned_release,
    .stop = async_stop,
    .describe = async_describe,
};

weft_future *weft__io_async(weft__op *template)
{
    return weft__io_async_copy(template, 0, 0);
}

weft_future *weft__io_async_copy(weft__op *template, size_t buf_bytes, size_t newpath_bytes)
{
    weft_loop *l = weft__tls_loop;
    if (!l) {
        errno = EPERM;
        return NULL;
    }
    async_op *a = malloc(sizeof *a + buf_bytes + newpath_bytes);
    if (!a) {
        errno = ENOMEM;
        return NULL;
    }
    weft__future_init(&a->future, &async_future, l);
    weft__maker_set(&a->maker, l->current);
    a->op = *template;
    if (buf_bytes) {
        memcpy(a->copies, template->buf, buf_bytes);
        a->op.buf = a->copies;
    }
    if (newpath_bytes) {
        memcpy(a->copies + buf_bytes, template->arg.rename.newpath, newpath_bytes);
        a->op.arg.rename.newpath = a->copies + buf_bytes;
    }
    op_prepare(&a->op, NULL, async_complete);
    weft__list_push(&l->async_ops, &a->link);
    int r = op_start(l, &a->op, 1);
    if (r < 0) {
        /* The error travels through the future, like every other result of the operation. */
        async_complete(&a->op, r, 0);
    }
    return &a->future;
}

void weft__io_cancel_all(weft_loop *l)
{
    /* A cancel may complete the op at once and take it off the list: step past it first. */
    weft__link *next;
    for (weft__link *link = l->async_ops.head; link; link = next) {
        next = link->next;
        async_op *a = WEFT__CONTAINER(link, async_op, link);
        if (!a->op.cancel_sent) {
            a->op.reason = -ECANCELED;
            weft__backend_cancel(l, &a->op);
        }
    }
}

/* ---- blocking execution, for what a backend cannot do asynchronously ------------------------------ */

const weft__opcode_info weft__opcodes[WEFT__OP_COUNT] = {
#define WEFT__X(name, str, uring, ep, buf) [WEFT__OP_##name] = {str, ep, buf},
    WEFT__OPCODES(WEFT__X)
#undef WEFT__X
};

/* Each row's blocking system call: its result, or -1 with errno set. */
static long run_NOP(weft__op *op) { (void)op; return 0; }
static long run_SOCKET(weft__op *op) { return socket(op->arg.socket.domain, op->arg.socket.type, op->arg.socket.protocol); }
static long run_ACCEPT(weft__op *op) { return accept4(op->fd, op->buf, op->arg.addrlen, (int)op->flags); }
static long run_CONNECT(weft__op *op) { return connect(op->fd, op->buf, (socklen_t)op->len); }
static long run_RECV(weft__op *op) { return recv(op->fd, op->buf, op->len, (int)op->flags); }
static long run_SEND(weft__op *op) { return send(op->fd, op->buf, op->len, (int)op->flags); }
static long run_RECVMSG(weft__op *op) { return recvmsg(op->fd, op->buf, (int)op->flags); }
static long run_SENDMSG(weft__op *op) { return sendmsg(op->fd, op->buf, (int)op->flags); }
static long run_SHUTDOWN(weft__op *op) { return shutdown(op->fd, (int)op->flags); }
static long run_CLOSE(weft__op *op) { return close(op->fd); }
static long run_OPENAT(weft__op *op) { return openat(op->fd, op->buf, (int)op->flags, (mode_t)op->arg.mode); }
static long run_FSYNC(weft__op *op) { return op->flags ? fdatasync(op->fd) : fsync(op->fd); }
static long run_UNLINKAT(weft__op *op) { return unlinkat(op->fd, op->buf, (int)op->flags); }
static long run_MKDIRAT(weft__op *op) { return mkdirat(op->fd, op->buf, (mode_t)op->arg.mode); }
static long run_CANCEL_FD(weft__op *op) { (void)op; errno = ENOENT; return -1; } /* nothing queued the old way */

static long run_READ(weft__op *op)
{
    return op->off == -1 ? read(op->fd, op->buf, op->len) : pread(op->fd, op->buf, op->len, op->off);
}

static long run_WRITE(weft__op *op)
{
    return op->off == -1 ? write(op->fd, op->buf, op->len) : pwrite(op->fd, op->buf, op->len, op->off);
}

/* A registered buffer is only a kernel's shortcut: the blocking call is the plain one. */
static long run_READ_FIXED(weft__op *op) { return run_READ(op); }
static long run_WRITE_FIXED(weft__op *op) { return run_WRITE(op); }

static long run_READV(weft__op *op)
{
    return op->off == -1 ? readv(op->fd, op->buf, (int)op->len) : preadv(op->fd, op->buf, (int)op->len, op->off);
}

static long run_WRITEV(weft__op *op)
{
    return op->off == -1 ? writev(op->fd, op->buf, (int)op->len) : pwritev(op->fd, op->buf, (int)op->len, op->off);
}

static long run_STATX(weft__op *op)
{
    return statx(op->fd, op->buf, (int)op->flags, op->arg.statx.mask, op->arg.statx.out);
}

static long run_RENAMEAT(weft__op *op)
{
    return renameat2(op->fd, op->buf, op->arg.rename.newdfd, op->arg.rename.newpath, op->flags);
}

static long run_WAITID(weft__op *op)
{
    return waitid(P_PIDFD, (id_t)op->fd, op->buf, (int)op->flags);
}

static long run_SPLICE(weft__op *op)
{
    loff_t in = op->arg.source.off, out = op->off;
    return splice(op->arg.source.fd, in < 0 ? NULL : &in, op->fd, out < 0 ? NULL : &out, op->len, op->flags);
}

static long run_SENDFILE(weft__op *op)
{
    off_t in = op->arg.source.off;
    return sendfile(op->fd, op->arg.source.fd, in < 0 ? NULL : &in, op->len);
}

static long run_POLL(weft__op *op)
{
    struct pollfd pfd = {.fd = op->fd, .events = (short)op->flags};
    long r = poll(&pfd, 1, -1);
    return r < 0 ? r : pfd.revents;
}

int32_t weft__op_run_blocking(weft__op *op)
{
    long r;
    switch ((enum weft__opcode)op->opcode) {
#define WEFT__X(name, str, uring, ep, buf)                                                              \
    case WEFT__OP_##name:                                                                               \
        r = run_##name(op);                                                                             \
        break;
        WEFT__OPCODES(WEFT__X)
#undef WEFT__X
    default:
        errno = EOPNOTSUPP;
        r = -1;
    }
    return r < 0 ? -errno : (int32_t)r;
}

/*
 * Runs a chain with blocking calls as the kernel runs linked requests: each member once the one before
 * it has ended, none after a soft link whose op fell short. Each member's result goes to its res,
 * where the loop reads it once the job has landed; those never run keep the -ECANCELED they start with.
 */
static intptr_t offload_run(void *arg)
{
    weft__op *head = arg;
    if (!head->next)
        return weft__op_run_blocking(head);
    for (weft__op *op = head; op; op = op->next) {
        op->res = weft__op_run_blocking(op);
        if (op->link == WEFT__LINK_SOFT && !weft__op_full(op, op->res))
            break;
    }
    return head->res;
}

/*
 * An _async transfer run on the executor goes through a buffer of weft's own: its owner may free the
 * future (and then its buffer) while a worker is in the middle of the call, and no thread may touch
 * the caller's buffer after that. The data is copied in before a write and out after a read, on the
 * loop, unless the owner has given the result up. The copy is page-aligned, as O_DIRECT requires of
 * the caller's. A task's own ops need none of this: the task waits.
 */
static bool needs_bounce(const weft__op *op)
{
    return !op->task && weft__opcodes[op->opcode].buf_way != BUF_NONE;
}

static void bounce_end(weft__op *op)
{
    free(op->buf);
    op->buf = op->caller_buf;
    op->caller_buf = NULL;
}

static void offload_landed(void *arg, intptr_t result)
{
    weft__op *op = arg;
    op->job = NULL;
    if (needs_bounce(op)) {
        if (weft__opcodes[op->opcode].buf_way == BUF_IN && result > 0 && !op->abandoned)
            memcpy(op->caller_buf, op->buf, (size_t)result);
        bounce_end(op);
    }
    /* A chain's members complete in order after its head, each with the res the job wrote (or the
     * -ECANCELED of one that never ran). next is read before complete(): the last may end the wait. */
    for (weft__op *member = op, *next; member; member = next) {
        next = member->next;
        weft__tls_loop->stats.completions++;
        member->complete(member, member == op ? (int32_t)result : member->res, 0);
    }
}

int weft__op_offload(weft_loop *l, weft__op *op)
{
    for (weft__op *member = op->next; member; member = member->next)
        member->res = -ECANCELED;
    if (needs_bounce(op)) {
        void *copy;
        if (posix_memalign(&copy, 4096, op->len ? op->len : 1) != 0)
            return -ENOMEM;
        if (weft__opcodes[op->opcode].buf_way == BUF_OUT)
            memcpy(copy, op->buf, op->len);
        op->caller_buf = op->buf;
        op->buf = copy;
    }
    /* A task's own op waits for room in a full queue; an _async op is queued past it. */
    struct weft__job *job = weft__exec_submit_cb(l, op->task, offload_run, op, offload_landed, op);
    if (!job) {
        int err = -errno;
        if (needs_bounce(op))
            bounce_end(op);
        return err;
    }
    op->job = job;
    l->stats.offloaded_ops++;
    return 0;
}

void weft__op_offload_cancel(weft__op *op)
{
    if (op->job)
        weft__exec_cancel_cb(op->job);
}

int weft_nop(void)
{
    weft__op op = {.opcode = WEFT__OP_NOP, .fd = -1};
    return (int)weft__io_run(&op);
}
