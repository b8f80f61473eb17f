/*
 * The io_uring backend: the proactor.
 *
 * Ring set-up takes the best task-work mode the kernel accepts:
 *   SINGLE_ISSUER|DEFER_TASKRUN: completions are only posted when this thread enters the kernel to
 *     reap them, so no other CPU and no interrupt ever runs weft's task work, and a loop that is busy
 *     running tasks is never interrupted;
 *   COOP_TASKRUN: task work waits for the next system call instead of an IPI;
 *   neither: the kernel interrupts the thread to post completions (measurably more CPU per request).
 * TASKRUN_FLAG is asked for with either mode: the kernel then sets IORING_SQ_TASKRUN when completions
 * are waiting, so a loop with runnable tasks can skip io_uring_enter when there is nothing to submit
 * and nothing to reap.
 *
 * One io_uring_enter per loop turn both submits every SQE queued during the turn and reaps (and, when
 * nothing is runnable, waits for) completions, with the next timer as the wait's timeout through
 * IORING_ENTER_EXT_ARG: timers cost no SQE.
 *
 * The CQ has four times the SQ's entries and the kernel must offer IORING_FEAT_NODROP, so an overflow
 * keeps CQEs in the kernel until the next enter flushes them: none is lost. An SQ that fills up during
 * a turn is flushed on the spot; operations in flight are limited by memory, not by the SQ size.
 */
#include "internal.h"

#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct uring_backend {
    struct io_uring ring;
    unsigned setup_flags;
    unsigned enter_flags;   /* IORING_ENTER_REGISTERED_RING once the ring fd is registered */
    unsigned submit_batch;  /* cfg.submit_batch: hand queued SQEs over once this many wait; 0 = at the turn */
    int enter_fd;
    bool started;
    pthread_t issuer;       /* with SINGLE_ISSUER, the only thread allowed to submit */
    bool missing[WEFT__OP_COUNT]; /* opcodes this kernel lacks (or WEFT_URING_NO_OPS masks): executor */
    weft__op wake_op;       /* the read kept armed on the loop's eventfd */
    uint64_t wake_buf;
    bool wake_rearm;        /* wake_op completed: arm it again once the CQ walk is over */
    struct accept_stream **streams; /* by listening fd: its multishot accept, if one was started */
    size_t nstreams;
    weft__list all_streams; /* every stream, those of closed fds too until the kernel lets go */
    weft__list stream_todo; /* streams to arm or stop once the CQ walk is over (todo_link) */
    bool no_multishot_accept; /* before 5.19 */
} uring_backend;

/*
 * A listening socket's multishot accept: one SQE that the kernel answers with a CQE per connection,
 * so an accept loop does not pay a loop turn per connection (a burst of 10,000 connects would
 * otherwise outrun it and overflow the backlog). Started by the first weft_accept without an address
 * on the fd; connections that arrive with no task waiting are kept here in arrival order and handed
 * to the next weft_accept, never dropped. Past ACCEPT_KEEP of them the multishot is cancelled, so the
 * kernel's backlog bounds what a server that stopped accepting takes in; the next weft_accept starts
 * it again. weft_close of the fd closes what nobody took, as the kernel would have reset them.
 */
enum { ACCEPT_KEEP = 64, WAIT_STREAM = 0x5a };

typedef struct accept_stream {
    weft__op op;           /* the multishot request, while the kernel holds it */
    weft_loop *loop;
    int fd, flags;
    bool armed;            /* the kernel holds op */
    bool stopping;         /* a cancel of op was sent: its -ECANCELED is ours, not an error */
    bool orphan;           /* its fd was closed: free once the kernel lets go of op */
    int32_t error;         /* what ended the multishot with no task waiting: for the next accept */
    int *kept;             /* accepted fds nobody took yet, kept[head..tail) */
    size_t head, tail, cap;
    weft__list waiters;    /* accept ops parked on it (wait_link) */
    weft__link link;       /* in uring_backend.all_streams */
    weft__link todo_link;  /* in uring_backend.stream_todo while in_todo */
    bool in_todo;
} accept_stream;

static inline uring_backend *backend_of(weft_loop *l)
{
    return l->backend_data;
}

/* The set-ups to try, best first. A kernel that does not know a flag answers EINVAL. */
static const unsigned setup_attempts[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
        IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_SUBMIT_ALL,
    0,
};

static int uring_init(weft_loop *l, const weft_config *cfg)
{
    uring_backend *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    int r = -EINVAL;
    for (size_t i = 0; i < sizeof setup_attempts / sizeof setup_attempts[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = setup_attempts[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = cfg->ring_entries * 4;
        r = io_uring_queue_init_params(cfg->ring_entries, &b->ring, &p);
        if (r == 0) {
            b->setup_flags = p.flags;
            if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) {
                /* Before Linux 5.11: completions could be dropped and waits need timeout SQEs. */
                io_uring_queue_exit(&b->ring);
                r = -ENOSYS;
            }
            break;
        }
        if (r != -EINVAL)
            break;
    }
    if (r < 0) {
        free(b);
        return r;
    }
    b->enter_fd = b->ring.ring_fd;
    b->submit_batch = cfg->submit_batch;
    l->backend_data = b;
    return 0;
}

static void wake_complete(weft__op *op, int32_t res, uint32_t flags);
static struct io_uring_sqe *sqe_get(weft_loop *l, uring_backend *b);

/* Keeps a read of the wake eventfd in flight: its completion is how other threads wake the loop. */
static void wake_arm(uring_backend *b, weft_loop *l)
{
    struct io_uring_sqe *sqe = sqe_get(l, b);
    if (!sqe) {
        b->wake_rearm = true;
        return;
    }
    b->wake_rearm = false;
    io_uring_prep_read(sqe, l->wake_fd, &b->wake_buf, sizeof b->wake_buf, 0);
    io_uring_sqe_set_data(sqe, &b->wake_op);
}

/* weft's opcodes, the io_uring opcode each needs, and the name WEFT_URING_NO_OPS knows it by. */
static const struct {
    uint8_t uring_op;
    const char *name;
} opcode_map[WEFT__OP_COUNT] = {
    [WEFT__OP_NOP] = {IORING_OP_NOP, "nop"},
    [WEFT__OP_SOCKET] = {IORING_OP_SOCKET, "socket"},
    [WEFT__OP_ACCEPT] = {IORING_OP_ACCEPT, "accept"},
    [WEFT__OP_CONNECT] = {IORING_OP_CONNECT, "connect"},
    [WEFT__OP_RECV] = {IORING_OP_RECV, "recv"},
    [WEFT__OP_SEND] = {IORING_OP_SEND, "send"},
    [WEFT__OP_RECVMSG] = {IORING_OP_RECVMSG, "recvmsg"},
    [WEFT__OP_SENDMSG] = {IORING_OP_SENDMSG, "sendmsg"},
    [WEFT__OP_SHUTDOWN] = {IORING_OP_SHUTDOWN, "shutdown"},
    [WEFT__OP_CLOSE] = {IORING_OP_CLOSE, "close"},
    [WEFT__OP_OPENAT] = {IORING_OP_OPENAT, "openat"},
    [WEFT__OP_READ] = {IORING_OP_READ, "read"},
    [WEFT__OP_WRITE] = {IORING_OP_WRITE, "write"},
    [WEFT__OP_READV] = {IORING_OP_READV, "readv"},
    [WEFT__OP_WRITEV] = {IORING_OP_WRITEV, "writev"},
    [WEFT__OP_FSYNC] = {IORING_OP_FSYNC, "fsync"},
    [WEFT__OP_STATX] = {IORING_OP_STATX, "statx"},
    [WEFT__OP_UNLINKAT] = {IORING_OP_UNLINKAT, "unlinkat"},
    [WEFT__OP_RENAMEAT] = {IORING_OP_RENAMEAT, "renameat"},
    [WEFT__OP_MKDIRAT] = {IORING_OP_MKDIRAT, "mkdirat"},
    [WEFT__OP_POLL] = {IORING_OP_POLL_ADD, "poll"},
    [WEFT__OP_CANCEL_FD] = {IORING_OP_ASYNC_CANCEL, "cancel"},
};

/*
 * Asks the kernel which opcodes it has. An op whose opcode is missing runs as a blocking call on the
 * executor instead, counted in weft_stats.offloaded_ops. WEFT_URING_NO_OPS (comma-separated names)
 * forces the same for opcodes a kernel has but gets wrong.
 */
static void probe_opcodes(uring_backend *b)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(&b->ring);
    const char *masked = getenv("WEFT_URING_NO_OPS");
    for (int i = 0; i < WEFT__OP_COUNT; i++) {
        b->missing[i] = probe && !io_uring_opcode_supported(probe, opcode_map[i].uring_op);
        if (masked) {
            size_t n = strlen(opcode_map[i].name);
            for (const char *p = strstr(masked, opcode_map[i].name); p; p = strstr(p + 1, opcode_map[i].name))
                if ((p == masked || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
                    b->missing[i] = true;
        }
    }
    /* A kernel too old to probe (5.5) has none of the newer opcodes: treat it as missing them all
     * except the few every ring since 5.1 has. */
    if (!probe)
        for (int i = 0; i < WEFT__OP_COUNT; i++)
            b->missing[i] = i != WEFT__OP_NOP && i != WEFT__OP_READV && i != WEFT__OP_WRITEV && i != WEFT__OP_FSYNC &&
                            i != WEFT__OP_POLL;
    /* IORING_ACCEPT_MULTISHOT came in 5.19 with IORING_OP_SOCKET. */
    b->no_multishot_accept = !probe || !io_uring_opcode_supported(probe, IORING_OP_SOCKET) ||
                             b->missing[WEFT__OP_ACCEPT];
    if (probe)
        io_uring_free_probe(probe);
}

static int uring_start(weft_loop *l)
{
    uring_backend *b = backend_of(l);
    if (b->started) {
        if ((b->setup_flags & IORING_SETUP_SINGLE_ISSUER) && !pthread_equal(b->issuer, pthread_self()))
            return -EINVAL; /* a SINGLE_ISSUER ring belongs to the thread that first ran the loop */
    } else {
        if (b->setup_flags & IORING_SETUP_R_DISABLED) {
            /* liburing 2.3 declares io_uring_enable_rings but does not export it. */
            int r = io_uring_register(b->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
            if (r < 0)
                return r;
        }
        b->issuer = pthread_self();
        probe_opcodes(b);
        b->wake_op.complete = wake_complete;
        b->started = true;
        wake_arm(b, l);
        if (b->wake_rearm)
            return -EAGAIN;
    }
    /* A registered ring fd spares the kernel an fd lookup on every enter. It belongs to this thread. */
    if (io_uring_register_ring_fd(&b->ring) == 1) {
        b->enter_fd = b->ring.enter_ring_fd;
        b->enter_flags = IORING_ENTER_REGISTERED_RING;
    }
    return 0;
}

static void uring_stop(weft_loop *l)
{
    uring_backend *b = backend_of(l);
    if (b->enter_flags & IORING_ENTER_REGISTERED_RING) {
        io_uring_unregister_ring_fd(&b->ring);
        b->enter_fd = b->ring.ring_fd;
        b->enter_flags = 0;
    }
}

static void stream_free(uring_backend *b, accept_stream *st);

static void uring_fini(weft_loop *l)
{
    uring_backend *b = backend_of(l);
    if (!b)
        return;
    io_uring_queue_exit(&b->ring);
    while (b->all_streams.head)
        stream_free(b, WEFT__CONTAINER(b->all_streams.head, accept_stream, link));
    free(b->streams);
    free(b);
    l->backend_data = NULL;
}

static void streams_after_walk(weft_loop *l, uring_backend *b);

static void reap(weft_loop *l, uring_backend *b)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&b->ring, head, cqe)
    {
        seen++;
        weft__op *op = io_uring_cqe_get_data(cqe);
        if (op)
            op->complete(op, op->withdrawn ? -ECANCELED : cqe->res, cqe->flags);
    }
    io_uring_cq_advance(&b->ring, seen);
    l->stats.completions += seen;
    if (WEFT__UNLIKELY(b->stream_todo.head))
        streams_after_walk(l, b);
}

/*
 * Submits what is queued and reaps what has completed, waiting up to timeout_ns (0: not at all,
 * UINT64_MAX: without limit) for a first completion when there is none.
 */
/* Publishes the SQEs queued since the last flush to the kernel; returns how many it has not taken yet. */
static inline unsigned sq_flush(uring_backend *b)
{
    struct io_uring_sq *sq = &b->ring.sq;
    if (sq->sqe_head != sq->sqe_tail) {
        sq->sqe_head = sq->sqe_tail;
        io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    }
    return sq->sqe_tail - IO_URING_READ_ONCE(*sq->khead);
}

static int enter(weft_loop *l, uring_backend *b, uint64_t timeout_ns)
{
    struct io_uring_sq *sq = &b->ring.sq;
    unsigned to_submit = sq_flush(b);
    unsigned kflags = IO_URING_READ_ONCE(*sq->kflags);
    if (kflags & IORING_SQ_CQ_OVERFLOW)
        l->stats.cq_overflows++;
    bool pending_taskrun = kflags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW);
    bool knows_taskrun = b->setup_flags & IORING_SETUP_TASKRUN_FLAG;
    if (to_submit || timeout_ns || pending_taskrun || !knows_taskrun) {
        struct __kernel_timespec ts;
        struct io_uring_getevents_arg arg = {.ts = (uint64_t)(uintptr_t)&ts};
        unsigned wait_nr = 0;
        unsigned flags = IORING_ENTER_GETEVENTS | b->enter_flags;
        if (timeout_ns && !io_uring_cq_ready(&b->ring)) {
            wait_nr = 1;
            if (timeout_ns != UINT64_MAX) {
                /* EXT_ARG only when there is a timeout: it costs the kernel a copy from user memory. */
                ts.tv_sec = (long long)(timeout_ns / 1000000000u);
                ts.tv_nsec = (long long)(timeout_ns % 1000000000u);
                flags |= IORING_ENTER_EXT_ARG;
            }
        }
        int r = WEFT__FAULT(WEFT__FAULT_ENTER);
        if (!r)
            r = io_uring_enter2((unsigned)b->enter_fd, to_submit, wait_nr, flags,
                                (flags & IORING_ENTER_EXT_ARG) ? (sigset_t *)&arg : NULL,
                                (flags & IORING_ENTER_EXT_ARG) ? sizeof arg : _NSIG / 8);
        l->stats.syscalls++;
        if (r >= 0)
            l->stats.submissions += (unsigned)r;
        else if (r == -EBADR)
            return r; /* the kernel dropped CQEs: it ran out of memory for its overflow list */
        else if (r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN)
            return r;
        /* -EBUSY / -EAGAIN: the CQ is full of unreaped completions or the kernel is short of
         * memory; reaping below makes room and the caller's next enter submits what is left. */
    }
    reap(l, b);
    return 0;
}

/*
 * Hands the queued SQEs to the kernel without reaping (cfg.submit_batch): completions still arrive
 * at the loop's turn, never inside the call that made the request. A failure (-EBUSY with the CQ
 * full, -EAGAIN) leaves them queued for the turn's enter, which meets the error again.
 */
static void submit_now(weft_loop *l, uring_backend *b)
{
    unsigned to_submit = sq_flush(b);
    int r = io_uring_enter2((unsigned)b->enter_fd, to_submit, 0, b->enter_flags, NULL, _NSIG / 8);
    l->stats.syscalls++;
    if (r > 0)
        l->stats.submissions += (unsigned)r;
}

int weft__uring_poll(weft_loop *l, uint64_t timeout_ns)
{
    uring_backend *b = backend_of(l);
    int r = enter(l, b, timeout_ns);
    if (b->wake_rearm)
        wake_arm(b, l);
    /* Flush what overflowed into the kernel's list while the CQ was full. */
    while (r == 0 && (IO_URING_READ_ONCE(*b->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW))
        r = enter(l, b, 0);
    return r;
}

static bool uring_has_work(weft_loop *l)
{
    uring_backend *b = backend_of(l);
    if (!(b->setup_flags & IORING_SETUP_TASKRUN_FLAG))
        return true;
    return b->ring.sq.sqe_tail != IO_URING_READ_ONCE(*b->ring.sq.khead) || io_uring_cq_ready(&b->ring) ||
           (IO_URING_READ_ONCE(*b->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW));
}

static void wake_complete(weft__op *op, int32_t res, uint32_t flags)
{
    (void)res;
    (void)flags;
    /* Re-arming submits, which must wait until the CQ walk that called this is over. The remote
     * futures themselves are drained by the loop's turn. */
    WEFT__CONTAINER(op, uring_backend, wake_op)->wake_rearm = true;
}

/* A free SQE, flushing the SQ to the kernel first if it is full. */
static struct io_uring_sqe *sqe_get(weft_loop *l, uring_backend *b)
{
    struct io_uring_sqe *sqe = WEFT__FAULT(WEFT__FAULT_SQ_FULL) ? NULL : io_uring_get_sqe(&b->ring);
    while (WEFT__UNLIKELY(!sqe)) {
        l->stats.sq_full++;
        int r = enter(l, b, 0);
        if (r < 0)
            return NULL;
        sqe = io_uring_get_sqe(&b->ring);
    }
    return sqe;
}

/* The largest transfer one read or write SQE asks for, as read(2) itself caps it. */
#define WEFT__RW_MAX 0x7ffff000u

static inline unsigned rw_len(uint64_t len)
{
    return len > WEFT__RW_MAX ? WEFT__RW_MAX : (unsigned)len;
}

/* ---- multishot accept (see accept_stream) ---- */

static void stream_complete(weft__op *op, int32_t res, uint32_t flags);
static void stream_later(uring_backend *b, accept_stream *st);

/* Sends the multishot accept for st. 0, or the error of an SQ that could not be flushed. */
static int stream_arm(weft_loop *l, uring_backend *b, accept_stream *st)
{
    struct io_uring_sqe *sqe = sqe_get(l, b);
    if (!sqe)
        return -EAGAIN;
    io_uring_prep_multishot_accept(sqe, st->fd, NULL, NULL, st->flags);
    io_uring_sqe_set_data(sqe, &st->op);
    st->armed = true;
    return 0;
}

/* Asks the kernel to end st's multishot; its last CQE (-ECANCELED) follows. */
static void stream_stop(weft_loop *l, uring_backend *b, accept_stream *st)
{
    if (!st->armed || st->stopping)
        return;
    struct io_uring_sqe *sqe = sqe_get(l, b);
    if (!sqe)
        return; /* it stays armed: what it accepts is still kept */
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&st->op, 0);
    io_uring_sqe_set_data(sqe, NULL);
    st->stopping = true;
}

/*
 * A connection st accepted, given the flags (SOCK_CLOEXEC, SOCK_NONBLOCK) the weft_accept taking it
 * asked for: st accepts with the flags of the call that started it, and a later call may differ.
 */
static int32_t stream_give(const accept_stream *st, int fd, int want)
{
    int diff = (st->flags ^ want) & (SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (WEFT__UNLIKELY(diff)) {
        if ((diff & SOCK_CLOEXEC) && fcntl(fd, F_SETFD, (want & SOCK_CLOEXEC) ? FD_CLOEXEC : 0) < 0)
            goto fail;
        if (diff & SOCK_NONBLOCK) {
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, (want & SOCK_NONBLOCK) ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
                goto fail;
        }
    }
    return fd;
fail:;
    int32_t err = -errno;
    close(fd);
    return err;
}

/* Hands res to the first task waiting on st. False if none waits. */
static bool stream_hand(accept_stream *st, int32_t res)
{
    weft__link *w = weft__list_pop(&st->waiters);
    if (!w)
        return false;
    weft__op *op = WEFT__CONTAINER(w, weft__op, wait_link);
    op->wait_kind = 0;
    op->backend_priv = NULL;
    op->complete(op, res >= 0 ? stream_give(st, res, (int)op->flags) : res, 0);
    return true;
}

static bool stream_keep(accept_stream *st, int fd)
{
    if (st->tail == st->cap) {
        if (st->head) {
            memmove(st->kept, st->kept + st->head, (st->tail - st->head) * sizeof *st->kept);
            st->tail -= st->head;
            st->head = 0;
        } else {
            size_t cap = st->cap ? st->cap * 2 : ACCEPT_KEEP;
            int *grown = realloc(st->kept, cap * sizeof *grown);
            if (!grown)
                return false;
            st->kept = grown;
            st->cap = cap;
        }
    }
    st->kept[st->tail++] = fd;
    return true;
}

static void stream_free(uring_backend *b, accept_stream *st)
{
    if (st->in_todo)
        weft__list_remove(&b->stream_todo, &st->todo_link);
    while (st->head != st->tail)
        close(st->kept[st->head++]);
    weft__list_remove(&b->all_streams, &st->link);
    free(st->kept);
    free(st);
}

static void stream_complete(weft__op *op, int32_t res, uint32_t flags)
{
    accept_stream *st = WEFT__CONTAINER(op, accept_stream, op);
    weft_loop *l = st->loop;
    uring_backend *b = backend_of(l);
    bool stopped_by_us = st->stopping;
    if (!(flags & IORING_CQE_F_MORE))
        st->armed = st->stopping = false;
    if (st->orphan) {
        if (res >= 0)
            close(res); /* accepted as its listener was closed: the kernel would have reset it */
        if (!st->armed)
            stream_free(b, st);
        return;
    }
    if (res >= 0) {
        if (!stream_hand(st, res)) {
            if (!stream_keep(st, res)) {
                close(res); /* out of memory for the list: the client sees a reset, weft keeps going */
                weft__log("accept on fd %d: no memory to keep a connection; it was reset\n", st->fd);
            }
            if (st->tail - st->head >= ACCEPT_KEEP)
                stream_later(b, st);
        }
    } else if (!(res == -ECANCELED && stopped_by_us)) {
        if (!stream_hand(st, res))
            st->error = res;
    }
    if (!st->armed && st->waiters.head)
        stream_later(b, st);
}

/*
 * Arming or cancelling submits, and a full SQ is flushed by an enter that reaps: never inside the CQ
 * walk that called stream_complete (it would walk the same CQEs again). They wait for the walk's end.
 */
static void stream_later(uring_backend *b, accept_stream *st)
{
    if (!st->in_todo) {
        st->in_todo = true;
        weft__list_push(&b->stream_todo, &st->todo_link);
    }
}

static void streams_after_walk(weft_loop *l, uring_backend *b)
{
    weft__link *k;
    while ((k = weft__list_pop(&b->stream_todo))) {
        accept_stream *st = WEFT__CONTAINER(k, accept_stream, todo_link);
        st->in_todo = false;
        if (st->orphan)
            continue;
        if (st->tail - st->head >= ACCEPT_KEEP)
            stream_stop(l, b, st);
        else if (!st->armed && st->waiters.head && stream_arm(l, b, st) < 0)
            while (stream_hand(st, -EAGAIN)) {
            }
    }
}

/* st for a weft_accept of fd, started now (with the call's flags) if need be; NULL: take the one-shot path. */
static accept_stream *stream_for(weft_loop *l, uring_backend *b, int fd, int flags)
{
    if (fd < 0 || b->no_multishot_accept)
        return NULL;
    if ((size_t)fd < b->nstreams && b->streams[fd])
        return b->streams[fd];
    accept_stream **streams = weft__fd_table_fit(b->streams, &b->nstreams, sizeof *streams, (size_t)fd);
    if (!streams)
        return NULL;
    b->streams = streams;
    accept_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->op.complete = stream_complete;
    st->loop = l;
    st->fd = fd;
    st->flags = flags;
    weft__list_push(&b->all_streams, &st->link);
    b->streams[fd] = st;
    return st;
}

/* weft_accept through st: a kept connection or error at once, else park until the kernel has one. */
static int stream_accept(weft_loop *l, uring_backend *b, accept_stream *st, weft__op *op)
{
    if (st->head != st->tail) {
        op->complete(op, stream_give(st, st->kept[st->head++], (int)op->flags), 0);
        return 0;
    }
    if (st->error) {
        int32_t err = st->error;
        st->error = 0;
        op->complete(op, err, 0);
        return 0;
    }
    if (!st->armed) {
        int r = stream_arm(l, b, st);
        if (r < 0)
            return r;
    }
    op->wait_kind = WAIT_STREAM;
    op->backend_priv = st;
    weft__list_push(&st->waiters, &op->wait_link);
    return 0;
}

/* The fd is being closed: waiters end, kept connections are closed, the multishot is cancelled. */
static void stream_close(weft_loop *l, uring_backend *b, int fd)
{
    if (fd < 0 || (size_t)fd >= b->nstreams || !b->streams[fd])
        return;
    accept_stream *st = b->streams[fd];
    b->streams[fd] = NULL;
    while (stream_hand(st, -ECANCELED)) {
    }
    while (st->head != st->tail)
        close(st->kept[st->head++]);
    if (!st->armed) {
        stream_free(b, st);
        return;
    }
    st->orphan = true;
    st->stopping = false;
    stream_stop(l, b, st);
}

int weft__uring_submit(weft_loop *l, weft__op *op)
{
    uring_backend *b = backend_of(l);
    if (WEFT__UNLIKELY(b->missing[op->opcode])) {
        if (op->opcode == WEFT__OP_CANCEL_FD) {
            op->complete(op, -ENOENT, 0); /* nothing to cancel the old way: close proceeds */
            return 0;
        }
        return weft__op_offload(l, op);
    }
    if (op->opcode == WEFT__OP_ACCEPT && !op->addr) {
        accept_stream *st = stream_for(l, b, op->fd, (int)op->flags);
        if (st)
            return stream_accept(l, b, st, op);
    } else if (WEFT__UNLIKELY(op->opcode == WEFT__OP_CANCEL_FD || op->opcode == WEFT__OP_CLOSE)) {
        stream_close(l, b, op->fd);
    }
    struct io_uring_sqe *sqe = sqe_get(l, b);
    if (!sqe)
        return -EAGAIN;
    switch (op->opcode) {
    case WEFT__OP_NOP:
        io_uring_prep_nop(sqe);
        break;
    case WEFT__OP_SOCKET:
        io_uring_prep_socket(sqe, op->fd, op->fd2, (int)op->flags, 0);
        break;
    case WEFT__OP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, op->addr, op->addr2, (int)op->flags);
        break;
    case WEFT__OP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->addr, (socklen_t)op->len);
        break;
    case WEFT__OP_RECV:
        io_uring_prep_recv(sqe, op->fd, op->addr, rw_len(op->len), (int)op->flags);
        break;
    case WEFT__OP_SEND:
        io_uring_prep_send(sqe, op->fd, op->addr, rw_len(op->len), (int)op->flags);
        break;
    case WEFT__OP_RECVMSG:
        io_uring_prep_recvmsg(sqe, op->fd, op->addr, op->flags);
        break;
    case WEFT__OP_SENDMSG:
        io_uring_prep_sendmsg(sqe, op->fd, op->addr, op->flags);
        break;
    case WEFT__OP_SHUTDOWN:
        io_uring_prep_shutdown(sqe, op->fd, (int)op->flags);
        break;
    case WEFT__OP_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case WEFT__OP_OPENAT:
        io_uring_prep_openat(sqe, op->fd, op->addr, (int)op->flags, op->mode);
        break;
    case WEFT__OP_READ:
        io_uring_prep_read(sqe, op->fd, op->addr, rw_len(op->len), (uint64_t)op->off);
        break;
    case WEFT__OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->addr, rw_len(op->len), (uint64_t)op->off);
        break;
    case WEFT__OP_READV:
        io_uring_prep_readv(sqe, op->fd, op->addr, (unsigned)op->len, (uint64_t)op->off);
        break;
    case WEFT__OP_WRITEV:
        io_uring_prep_writev(sqe, op->fd, op->addr, (unsigned)op->len, (uint64_t)op->off);
        break;
    case WEFT__OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, op->flags ? IORING_FSYNC_DATASYNC : 0); /* flags: datasync */
        break;
    case WEFT__OP_STATX:
        io_uring_prep_statx(sqe, op->fd, op->addr, (int)op->flags, op->mode, op->addr2);
        break;
    case WEFT__OP_UNLINKAT:
        io_uring_prep_unlinkat(sqe, op->fd, op->addr, (int)op->flags);
        break;
    case WEFT__OP_RENAMEAT:
        io_uring_prep_renameat(sqe, op->fd, op->addr, op->fd2, op->addr2, op->flags);
        break;
    case WEFT__OP_MKDIRAT:
        io_uring_prep_mkdirat(sqe, op->fd, op->addr, op->mode);
        break;
    case WEFT__OP_POLL:
        io_uring_prep_poll_add(sqe, op->fd, op->flags);
        break;
    case WEFT__OP_CANCEL_FD:
        io_uring_prep_cancel_fd(sqe, op->fd, IORING_ASYNC_CANCEL_ALL);
        break;
    default:
        /* Unreachable for a weft opcode; give the SQE slot back as a no-op rather than leak it. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, NULL);
        return -EOPNOTSUPP;
    }
    io_uring_sqe_set_data(sqe, op);
    op->sqe_seq = b->ring.sq.sqe_tail - 1;
    /* Hand the batch over now rather than at the turn's end, when asked to: a device that starts on
     * arrival (a disk queue) then works while the task is still making requests. */
    if (WEFT__UNLIKELY(b->submit_batch) && b->ring.sq.sqe_tail - b->ring.sq.sqe_head >= b->submit_batch)
        submit_now(l, b);
    return 0;
}

static void uring_cancel(weft_loop *l, weft__op *op)
{
    if (op->wait_kind == WAIT_STREAM) { /* parked on a multishot accept: nothing taken from the kernel */
        accept_stream *st = op->backend_priv;
        weft__list_remove(&st->waiters, &op->wait_link);
        op->wait_kind = 0;
        op->backend_priv = NULL;
        op->complete(op, -ECANCELED, 0);
        return;
    }
    if (op->backend_priv) { /* on the executor */
        weft__op_offload_cancel(op);
        return;
    }
    if (op->cancel_sent || op->withdrawn)
        return;
    uring_backend *b = backend_of(l);
    struct io_uring_sq *sq = &b->ring.sq;
    if ((int32_t)(op->sqe_seq - sq->sqe_head) >= 0) {
        /* Its SQE has not been handed to the kernel yet: withdraw it. It still goes in, as a NOP, so
         * its completion arrives in order, reported as cancelled; nothing was read or consumed. */
        struct io_uring_sqe *sqe = &sq->sqes[op->sqe_seq & sq->ring_mask];
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, op);
        op->withdrawn = true;
        return;
    }
    struct io_uring_sqe *sqe = sqe_get(l, b);
    if (!sqe)
        return;
    op->cancel_sent = true;
    /* The cancel's own CQE carries no op: whatever it says, op's own CQE follows. */
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data(sqe, NULL);
}

const weft__backend_ops weft__uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .start = uring_start,
    .stop = uring_stop,
    .fini = uring_fini,
    .poll = weft__uring_poll,
    .has_work = uring_has_work,
    .submit = weft__uring_submit,
    .cancel = uring_cancel,
};
