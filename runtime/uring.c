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
#include "uring.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* What liburing 2.3's headers lack. */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3) /* 6.2: the notification says whether the kernel copied */
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14) /* 6.10 */
#endif
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15) /* 6.12: io_uring_getevents_arg's pad is min_wait_usec */
#endif

/* How far a zero-copy send is (weft__op.be.zc). */
enum { ZC_SENT = 1, ZC_NOTIF_DUE, ZC_RETRY };

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
    weft__uring *b = calloc(1, sizeof *b);
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
            b->features = p.features;
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
    b->send_zc_min = cfg->send_zc_min;
    b->send_zc_flags = IORING_SEND_ZC_REPORT_USAGE;
    b->min_wait_ns = cfg->min_wait_ns;
    b->wait_batch = cfg->wait_batch;
    l->backend_data = b;
    return 0;
}

static void wake_complete(weft__op *op, int32_t res, uint32_t flags);
static void submit_now(weft_loop *l, weft__uring *b);
static void msg_wake_complete(weft__op *op, int32_t res, uint32_t flags);

/*
 * Keeps a multishot poll of the wake eventfd armed: each write another thread makes posts a CQE, and
 * that completion is how it wakes the loop. The eventfd is never read (its count only grows, and
 * would take 2^64 writes to fill), so a wake costs the kernel no read and the loop no new SQE; the
 * poll is armed again only when the kernel ends it (a CQE without IORING_CQE_F_MORE). Armed on a
 * count already above zero, it completes at once: one spare wake-up per arming. A kernel without
 * multishot poll (before 5.13) refuses it with -EINVAL; the loop then keeps a read of the eventfd
 * armed instead, one per wake.
 */
static void wake_arm(weft__uring *b, weft_loop *l)
{
    struct io_uring_sqe *sqe = weft__uring_sqe(l, b);
    if (!sqe) {
        b->wake_rearm = true;
        return;
    }
    b->wake_rearm = false;
    if (b->wake_by_read)
        io_uring_prep_read(sqe, l->wake_fd, &b->wake_buf, sizeof b->wake_buf, 0);
    else
        io_uring_prep_poll_multishot(sqe, l->wake_fd, POLLIN);
    io_uring_sqe_set_data(sqe, &b->wake_op);
}

/* The io_uring opcode each of weft's needs. */
static const uint8_t uring_opcode[WEFT__OP_COUNT] = {
#define WEFT__X(name, str, uring, ep, buf) [WEFT__OP_##name] = uring,
    WEFT__OPCODES(WEFT__X)
#undef WEFT__X
};


/* Whether the comma-separated list masked (NULL: none) names name. */
static bool names(const char *masked, const char *name)
{
    if (!masked)
        return false;
    size_t n = strlen(name);
    for (const char *p = strstr(masked, name); p; p = strstr(p + 1, name))
        if ((p == masked || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

/*
 * Asks the kernel which opcodes it has. An op whose opcode is missing runs as a blocking call on the
 * executor instead, counted in weft_stats.offloaded_ops. WEFT_URING_NO_OPS (comma-separated names)
 * forces the same for opcodes a kernel has but gets wrong, and turns off features as if the kernel
 * lacked them: "send_zc" (zero-copy sends go out plainly), "min_timeout" (no minimum wait),
 * "recv_multishot" (no receive streams), "recv_bundle", "pbuf_inc" and "recv_limit" (streams without
 * bundles, without incremental buffer consumption, or without the kernel's byte limit), "poll_multishot"
 * (the wake eventfd read, not polled).
 */
static void probe_opcodes(weft__uring *b)
{
    struct io_uring_probe *probe = io_uring_get_probe_ring(&b->ring);
    const char *masked = getenv("WEFT_URING_NO_OPS");
    for (int i = 0; i < WEFT__OP_COUNT; i++)
        b->missing[i] = (probe && !io_uring_opcode_supported(probe, uring_opcode[i])) ||
                        names(masked, weft__opcodes[i].name);
    /* A kernel too old to probe (5.5) has none of the newer opcodes: treat it as missing them all
     * except the few every ring since 5.1 has. */
    if (!probe)
        for (int i = 0; i < WEFT__OP_COUNT; i++)
            b->missing[i] = i != WEFT__OP_NOP && i != WEFT__OP_READV && i != WEFT__OP_WRITEV && i != WEFT__OP_FSYNC &&
                            i != WEFT__OP_POLL;
    /* Without RWF_NOSIGNAL a write to a pipe whose reader is gone would raise SIGPIPE at this thread
     * (inline, or in the task work of a write that waited for room). The executor's threads block
     * every signal, so there the kernel's SIGPIPE stays pending at a thread that never takes it, and
     * the write returns -EPIPE: the user's disposition and mask are never touched. */
    if (!weft__rwf_nosignal())
        b->missing[WEFT__OP_WRITE] = b->missing[WEFT__OP_WRITEV] = b->missing[WEFT__OP_WRITE_FIXED] = true;
    b->has_msg_ring = probe && io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
    /* IORING_ACCEPT_MULTISHOT came in 5.19 with IORING_OP_SOCKET. */
    b->no_multishot_accept = !probe || !io_uring_opcode_supported(probe, IORING_OP_SOCKET) ||
                             b->missing[WEFT__OP_ACCEPT];
    /* A zero-copy send takes the plain send's path when the kernel (6.0) or the mask says no: every
     * such send is counted as a fallback, so send_zc_min stays as asked. */
    b->has_send_zc = probe && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) && !names(masked, "send_zc") &&
                     !b->missing[WEFT__OP_SEND];
    /* Receive streams need multishot receive into a buffer ring (6.0, when SEND_ZC came too);
     * bundles, incremental consumption and the byte limit are used where the kernel has them. */
    b->recv_streams = probe && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) && !b->missing[WEFT__OP_RECV] &&
                      !names(masked, "recv_multishot");
    b->recv_bundle = (b->features & IORING_FEAT_RECVSEND_BUNDLE) && !names(masked, "recv_bundle");
    b->no_pbuf_inc = names(masked, "pbuf_inc");
    b->wake_by_read = names(masked, "poll_multishot");
    b->recv_limit = !names(masked, "recv_limit");
    if (b->min_wait_ns) {
        if ((b->features & IORING_FEAT_MIN_TIMEOUT) && !names(masked, "min_timeout"))
            b->min_wait_us = (unsigned)(b->min_wait_ns / 1000);
        else
            weft__log("min_wait_ns is ignored: this kernel's io_uring has no minimum wait "
                      "(IORING_FEAT_MIN_TIMEOUT, Linux 6.12)\n");
    }
    if (probe)
        io_uring_free_probe(probe);
}

static int uring_start(weft_loop *l)
{
    weft__uring *b = weft__uring_of(l);
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
        b->msg_wake_op.complete = msg_wake_complete;
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
    weft__uring *b = weft__uring_of(l);
    /* What the run's last turn queued goes out now: a MSG_RING waking another loop must not wait for
     * an enter this loop will not make. */
    if (b->ring.sq.sqe_tail != b->ring.sq.sqe_head)
        submit_now(l, b);
    if (b->enter_flags & IORING_ENTER_REGISTERED_RING) {
        io_uring_unregister_ring_fd(&b->ring);
        b->enter_fd = b->ring.ring_fd;
        b->enter_flags = 0;
    }
}

static void uring_fini(weft_loop *l)
{
    weft__uring *b = weft__uring_of(l);
    if (!b)
        return;
    io_uring_queue_exit(&b->ring);
    weft__streams_fini(b);
    weft__bufring_fini(&b->bufring);
    weft__splices_fini(b);
    free(b->zc_refused);
    free(b);
    l->backend_data = NULL;
}

/* ---- zero-copy sends ------------------------------------------------------------------------------ */

static inline void prep_SEND(struct io_uring_sqe *sqe, const weft__op *op);

/*
 * A SEND_ZC posts two CQEs with the op's user_data: the send's result, flagged IORING_CQE_F_MORE
 * when a notification follows (the kernel posts one even for a send that failed after the request
 * was set up), then the notification, flagged IORING_CQE_F_NOTIF, once no skb refers to the caller's
 * pages any more. The op completes only then, with the send's result: the buffer is the caller's
 * again the moment the call returns. A final CQE without F_MORE (a withdrawn SQE's NOP) ends it
 * at once.
 *
 * A socket without zero copy (SOCK_SUPPORT_ZC: Unix sockets, for one) answers EOPNOTSUPP, and a
 * kernel that does not know a flag weft set answers EINVAL; in both cases nothing was sent, and the
 * send goes again as a plain one after the CQ walk (an SQE may not be taken during it: a full SQ
 * is flushed by entering the kernel, which would walk the CQ again).
 */
static void zc_cqe(weft_loop *l, weft__uring *b, weft__op *op, int32_t res, uint32_t flags)
{
    if (flags & IORING_CQE_F_NOTIF) {
        l->stats.send_zc_notifs++;
        if ((uint32_t)res & IORING_NOTIF_USAGE_ZC_COPIED)
            l->stats.send_zc_copied++;
        res = op->be.zc_res;
    } else if (flags & IORING_CQE_F_MORE) {
        op->be.zc = ZC_NOTIF_DUE;
        op->be.zc_res = res;
        return;
    }
    op->be.zc = 0;
    if ((res == -EOPNOTSUPP || res == -EINVAL) && !op->reason) {
        if (res == -EOPNOTSUPP && op->fd >= 0) {
            unsigned char *refused =
                weft__fd_table_fit(b->zc_refused, &b->nzc_refused, sizeof *refused, (size_t)op->fd);
            if (refused) {
                b->zc_refused = refused;
                refused[op->fd] = 1;
            }
        } else if (b->send_zc_flags) {
            b->send_zc_flags = 0; /* a kernel before 6.2: no usage reports, zero copy still */
        }
        l->stats.send_zc_fallbacks++;
        op->be.zc = ZC_RETRY;
        weft__list_push(&b->zc_retry, &op->be.link);
        return;
    }
    if (!op->be.withdrawn)
        l->stats.send_zc++;
    op->complete(op, res, 0);
}

/* The sends zc_cqe put back go out plainly. */
static void zc_retry(weft_loop *l, weft__uring *b)
{
    for (weft__link *link; (link = weft__list_pop(&b->zc_retry));) {
        weft__op *op = WEFT__CONTAINER(link, weft__op, be.link);
        op->be.zc = 0;
        struct io_uring_sqe *sqe = weft__uring_sqe(l, b);
        if (!sqe) {
            op->complete(op, -EAGAIN, 0);
            continue;
        }
        prep_SEND(sqe, op);
        io_uring_sqe_set_data(sqe, op);
        op->be.sqe_seq = b->ring.sq.sqe_tail - 1;
    }
}

/* Whether send op goes out as SEND_ZC: long enough, and neither kernel nor socket has refused. */
static inline bool zc_wanted(weft_loop *l, const weft__uring *b, const weft__op *op)
{
    if (!b->send_zc_min || op->len < b->send_zc_min)
        return false;
    if (b->has_send_zc && !((size_t)op->fd < b->nzc_refused && b->zc_refused[op->fd]))
        return true;
    l->stats.send_zc_fallbacks++;
    return false;
}

/* fd is closing: a socket that gets its number next may well take zero copy. */
static void zc_forget_fd(weft__uring *b, int fd)
{
    if (fd >= 0 && (size_t)fd < b->nzc_refused)
        b->zc_refused[fd] = 0;
}

static void reap(weft_loop *l, weft__uring *b)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    b->walking = true;
    io_uring_for_each_cqe(&b->ring, head, cqe)
    {
        seen++;
        weft__op *op = io_uring_cqe_get_data(cqe);
        if (!op)
            continue;
        int32_t res = op->be.withdrawn ? -ECANCELED : cqe->res;
        if (op->be.storage) {
            op->be.storage = false;
            b->storage_inflight--;
        }
        if (WEFT__UNLIKELY(op->be.zc))
            zc_cqe(l, b, op, res, cqe->flags);
        else
            op->complete(op, res, cqe->flags);
    }
    io_uring_cq_advance(&b->ring, seen);
    b->walking = false;
    l->stats.completions += seen;
    if (WEFT__UNLIKELY(b->rx_todo.head || b->rx_starved.head))
        weft__recvstream_after_walk(l, b);
    if (WEFT__UNLIKELY(b->stream_todo.head))
        weft__streams_after_walk(l, b);
    if (WEFT__UNLIKELY(b->zc_retry.head))
        zc_retry(l, b);
}

/* Publishes the SQEs queued since the last flush to the kernel; returns how many it has not taken yet. */
static inline unsigned sq_flush(weft__uring *b)
{
    struct io_uring_sq *sq = &b->ring.sq;
    if (sq->sqe_head != sq->sqe_tail) {
        sq->sqe_head = sq->sqe_tail;
        io_uring_smp_store_release(sq->ktail, sq->sqe_tail);
    }
    return sq->sqe_tail - IO_URING_READ_ONCE(*sq->khead);
}

/*
 * Submits what is queued and reaps what has completed, waiting up to timeout_ns (0: not at all,
 * UINT64_MAX: without limit) for a first completion when there is none.
 */
static int enter(weft_loop *l, weft__uring *b, uint64_t timeout_ns)
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
            if (b->min_wait_us && timeout_ns > b->min_wait_ns) {
                /*
                 * The batched wait (6.12): the kernel sleeps until wait_batch completions are in or
                 * min_wait_usec has passed, then returns with what there is, or, with nothing yet,
                 * waits on for the first one up to the timeout. A timer due within the minimum wait
                 * takes the plain wait below instead, so it is never late.
                 */
                wait_nr = b->wait_batch;
                arg.pad = b->min_wait_us; /* min_wait_usec since 6.12; liburing 2.3 calls it pad */
                flags |= IORING_ENTER_EXT_ARG;
                if (timeout_ns == UINT64_MAX)
                    arg.ts = 0;
                l->stats.batched_waits++;
            }
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

/* A request to storage: a read or write at an offset (a pipe or socket has none), or an fsync. */
static inline bool storage_op(const weft__op *op)
{
    switch (op->opcode) {
    case WEFT__OP_READ:
    case WEFT__OP_WRITE:
    case WEFT__OP_READV:
    case WEFT__OP_WRITEV:
    case WEFT__OP_READ_FIXED:
    case WEFT__OP_WRITE_FIXED:
        return op->off >= 0;
    case WEFT__OP_FSYNC:
        return true;
    default:
        return false;
    }
}

/*
 * Hands the queued SQEs to the kernel without reaping (cfg.submit_batch): completions still arrive
 * at the loop's turn, never inside the call that made the request. A failure (-EBUSY with the CQ
 * full, -EAGAIN) leaves them queued for the turn's enter, which meets the error again.
 */
static void submit_now(weft_loop *l, weft__uring *b)
{
    unsigned to_submit = sq_flush(b);
    int r = io_uring_enter2((unsigned)b->enter_fd, to_submit, 0, b->enter_flags, NULL, _NSIG / 8);
    l->stats.syscalls++;
    if (r > 0)
        l->stats.submissions += (unsigned)r;
}

int weft__uring_poll(weft_loop *l, uint64_t timeout_ns)
{
    weft__uring *b = weft__uring_of(l);
    if (WEFT__UNLIKELY(l->rx_waiting) && weft__looks_tick(&b->looks, &timeout_ns))
        weft__recvstream_look(l, b);
    int r = enter(l, b, timeout_ns);
    if (b->wake_rearm)
        wake_arm(b, l);
    /* Flush what overflowed into the kernel's list while the CQ was full. */
    while (r == 0 && (IO_URING_READ_ONCE(*b->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW))
        r = enter(l, b, 0);
    return r;
}

bool weft__uring_has_work(weft_loop *l)
{
    weft__uring *b = weft__uring_of(l);
    if (!(b->setup_flags & IORING_SETUP_TASKRUN_FLAG))
        return true;
    return b->ring.sq.sqe_tail != IO_URING_READ_ONCE(*b->ring.sq.khead) || io_uring_cq_ready(&b->ring) ||
           (IO_URING_READ_ONCE(*b->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW));
}

static void wake_complete(weft__op *op, int32_t res, uint32_t flags)
{
    /* The remote futures themselves are drained by the loop's turn. A poll the kernel ended (or a
     * read that completed) is armed again, after the CQ walk that called this (arming takes an SQE,
     * which a walk may not). */
    if (flags & IORING_CQE_F_MORE)
        return;
    weft__uring *b = WEFT__CONTAINER(op, weft__uring, wake_op);
    if (res == -EINVAL)
        b->wake_by_read = true;
    b->wake_rearm = true;
}

struct io_uring_sqe *weft__uring_sqe(weft_loop *l, weft__uring *b)
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

/* ---- preparing an SQE: one function a row of WEFT__OPCODES ---- */

static inline void prep_NOP(struct io_uring_sqe *sqe, const weft__op *op)
{
    (void)op;
    io_uring_prep_nop(sqe);
}

static inline void prep_SOCKET(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_socket(sqe, op->arg.socket.domain, op->arg.socket.type, op->arg.socket.protocol, 0);
}

static inline void prep_ACCEPT(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_accept(sqe, op->fd, op->buf, op->arg.addrlen, (int)op->flags);
}

static inline void prep_CONNECT(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_connect(sqe, op->fd, op->buf, (socklen_t)op->len);
}

static inline void prep_RECV(struct io_uring_sqe *sqe, const weft__op *op)
{
    /* After the bytes a MSG_WAITALL already has from kept ones (rx.c). */
    io_uring_prep_recv(sqe, op->fd, (char *)op->buf + op->served, rw_len(op->len - op->served), (int)op->flags);
}

static inline void prep_SEND(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_send(sqe, op->fd, op->buf, rw_len(op->len), (int)op->flags);
}

static inline void prep_RECVMSG(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_recvmsg(sqe, op->fd, op->buf, op->flags);
}

static inline void prep_SENDMSG(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_sendmsg(sqe, op->fd, op->buf, op->flags);
}

static inline void prep_SHUTDOWN(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_shutdown(sqe, op->fd, (int)op->flags);
}

static inline void prep_CLOSE(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_close(sqe, op->fd);
}

static inline void prep_OPENAT(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_openat(sqe, op->fd, op->buf, (int)op->flags, op->arg.mode);
}

static inline void prep_READ(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_read(sqe, op->fd, op->buf, rw_len(op->len), (uint64_t)op->off);
}

/* Writes carry RWF_NOSIGNAL: a pipe or socket with no reader gives -EPIPE, and no SIGPIPE is raised
 * at the loop's thread (where the kernel would raise it, issuing the write inline or in task work).
 * A kernel without the flag has the writes run on the executor instead (probe_opcodes). */
static inline void prep_WRITE(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_write(sqe, op->fd, op->buf, rw_len(op->len), (uint64_t)op->off);
    sqe->rw_flags = RWF_NOSIGNAL;
}

static inline void prep_READ_FIXED(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_read_fixed(sqe, op->fd, op->buf, rw_len(op->len), (uint64_t)op->off, (int)op->arg.buf_index);
}

static inline void prep_WRITE_FIXED(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_write_fixed(sqe, op->fd, op->buf, rw_len(op->len), (uint64_t)op->off, (int)op->arg.buf_index);
    sqe->rw_flags = RWF_NOSIGNAL;
}

static inline void prep_READV(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_readv(sqe, op->fd, op->buf, (unsigned)op->len, (uint64_t)op->off);
}

static inline void prep_WRITEV(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_writev(sqe, op->fd, op->buf, (unsigned)op->len, (uint64_t)op->off);
    sqe->rw_flags = RWF_NOSIGNAL;
}

static inline void prep_FSYNC(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_fsync(sqe, op->fd, op->flags ? IORING_FSYNC_DATASYNC : 0);
}

static inline void prep_STATX(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_statx(sqe, op->fd, op->buf, (int)op->flags, op->arg.statx.mask, op->arg.statx.out);
}

static inline void prep_UNLINKAT(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_unlinkat(sqe, op->fd, op->buf, (int)op->flags);
}

static inline void prep_RENAMEAT(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_renameat(sqe, op->fd, op->buf, op->arg.rename.newdfd, op->arg.rename.newpath, op->flags);
}

static inline void prep_MKDIRAT(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_mkdirat(sqe, op->fd, op->buf, op->arg.mode);
}

static inline void prep_POLL(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_poll_add(sqe, op->fd, op->flags);
}

/* liburing 2.3 has no io_uring_prep_waitid: the kernel's layout, by hand. fd is the id, len the idtype,
 * file_index the options and addr2 the siginfo, which the kernel fills before it posts the CQE. */
static inline void prep_WAITID(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_rw(WEFT__IORING_OP_WAITID, sqe, op->fd, NULL, P_PIDFD, 0);
    sqe->file_index = op->flags;
    sqe->addr2 = (uint64_t)(uintptr_t)op->buf;
}

static inline void prep_SPLICE(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_splice(sqe, op->arg.source.fd, op->arg.source.off, op->fd, op->off, rw_len(op->len), op->flags);
}

/* The second half of splice.c's pair: from the pipe the first half filled to fd (through splice.c's
 * duplicate of it). SPLICE_F_NONBLOCK is for the pipe's side: when it runs dry (the first half read
 * less, or nothing) the splice returns what it moved rather than wait for bytes that will not come.
 * The socket's side blocks as the socket does. */
static inline void prep_SENDFILE(struct io_uring_sqe *sqe, const weft__op *op)
{
    int from, to;
    weft__splice_send_fds(op, &from, &to);
    io_uring_prep_splice(sqe, from, -1, to, -1, rw_len(op->len), SPLICE_F_NONBLOCK);
}

static inline void prep_CANCEL_FD(struct io_uring_sqe *sqe, const weft__op *op)
{
    io_uring_prep_cancel_fd(sqe, op->fd, IORING_ASYNC_CANCEL_ALL);
}

/* Fills sqe for op, by its row of WEFT__OPCODES. false (and sqe a NOP) for an opcode weft lacks. */
static inline bool prep(struct io_uring_sqe *sqe, const weft__op *op)
{
    switch ((enum weft__opcode)op->opcode) {
#define WEFT__X(name, str, uring, ep, buf)                                                              \
    case WEFT__OP_##name:                                                                               \
        prep_##name(sqe, op);                                                                           \
        return true;
        WEFT__OPCODES(WEFT__X)
#undef WEFT__X
    default:
        io_uring_prep_nop(sqe);
        return false;
    }
}

/*
 * When requests reach the kernel by default (submit_batch 0). A disk starts on a request as it
 * arrives, so while it has little to do each new storage request goes at once, a system call each:
 * the device works while the task is still making the next ones instead of idling until the turn
 * ends, and a lone request is not held back at all (before storage requests went at once, QD 32 read
 * 0.87x of fio libaio's IOPS). Once STORAGE_EAGER_MAX are in flight the device has a queue to work
 * through and a new request gains nothing from going at once: it goes with whatever else the turn
 * queues, at the loop's wait, or as soon as STORAGE_BATCH are queued, so a long burst does not hold
 * its first requests back. Against handing every storage request over at once, measured side by side
 * (docs/files.md): 0.16 system calls a read instead of 1.07 at QD 128 (0.25 instead of 1.09 at QD 32)
 * and 7-15% less CPU a read, for IOPS no different within noise. Everything else (sockets, pipes) goes
 * at the turn's one enter.
 */
#define STORAGE_EAGER_MAX 4
#define STORAGE_BATCH 8

/* Counts op among the storage requests in flight (until its CQE) if it is one. */
static inline bool storage_count(weft__uring *b, weft__op *op)
{
    op->be.storage = storage_op(op);
    b->storage_inflight += op->be.storage;
    return op->be.storage;
}

/* After requests were queued: hands the queue to the kernel now if the policy says so (see above). */
static inline void submit_policy(weft_loop *l, weft__uring *b, bool storage)
{
    unsigned queued = b->ring.sq.sqe_tail - b->ring.sq.sqe_head;
    if (WEFT__UNLIKELY(b->submit_batch) ? queued >= b->submit_batch
                                        : storage && (b->storage_inflight <= STORAGE_EAGER_MAX || queued >= STORAGE_BATCH))
        submit_now(l, b);
}

/*
 * A chain goes to the kernel as consecutive SQEs, each but the last flagged IOSQE_IO_LINK (or
 * IOSQE_IO_HARDLINK). The SQ must have room for all of them before the first is prepared: a flush in
 * between would hand the kernel a link without its successor, which it takes for the chain's end. A
 * chain longer than the SQ, or with a member this kernel lacks, runs on the executor instead.
 */
int weft__uring_submit_chain(weft_loop *l, weft__uring *b, weft__op *head)
{
    unsigned members = 0;
    bool missing = false;
    for (weft__op *op = head; op; op = op->next, members++)
        missing |= b->missing[op->opcode];
    if (missing || members > *b->ring.sq.kring_entries)
        return weft__op_offload(l, head);
    if (io_uring_sq_space_left(&b->ring) < members) {
        l->stats.sq_full++;
        if (enter(l, b, 0) < 0 || io_uring_sq_space_left(&b->ring) < members)
            return -EAGAIN;
    }
    bool storage = false;
    for (weft__op *op = head; op; op = op->next) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
        prep(sqe, op);
        if (op->next)
            sqe->flags |= op->link == WEFT__LINK_HARD ? IOSQE_IO_HARDLINK : IOSQE_IO_LINK;
        io_uring_sqe_set_data(sqe, op);
        op->be.sqe_seq = b->ring.sq.sqe_tail - 1;
        storage |= storage_count(b, op);
    }
    submit_policy(l, b, storage);
    return 0;
}

int weft__uring_submit(weft_loop *l, weft__op *op)
{
    weft__uring *b = weft__uring_of(l);
    if (WEFT__UNLIKELY(op->next))
        return weft__uring_submit_chain(l, b, op);
    if (WEFT__UNLIKELY(b->missing[op->opcode])) {
        if (op->opcode == WEFT__OP_CANCEL_FD) {
            op->complete(op, -ENOENT, 0); /* nothing to cancel the old way: close proceeds */
            return 0;
        }
        if (op->opcode == WEFT__OP_WAITID) {
            /* On the executor a wait for a child could not be cancelled: the caller waits for the
             * pidfd's readiness instead (process.c). */
            op->complete(op, -EOPNOTSUPP, 0);
            return 0;
        }
        return weft__op_offload(l, op);
    }
    if (WEFT__UNLIKELY(op->opcode == WEFT__OP_SENDFILE))
        return weft__splice_sendfile(l, b, op);
    if (op->opcode == WEFT__OP_ACCEPT) {
        int taken = weft__stream_accept(l, b, op);
        if (taken)
            return taken < 0 ? taken : 0;
    } else if (WEFT__UNLIKELY(op->opcode == WEFT__OP_CANCEL_FD || op->opcode == WEFT__OP_CLOSE)) {
        weft__stream_close(l, b, op->fd);
        zc_forget_fd(b, op->fd);
    } else if (b->recv_streams && weft__rx_reads(op) && weft__recvstream_submit(l, b, op)) {
        return 0; /* a connection's read, served by its receive stream */
    }
    struct io_uring_sqe *sqe = weft__uring_sqe(l, b);
    if (!sqe)
        return -EAGAIN;
    if (WEFT__UNLIKELY(op->opcode == WEFT__OP_SEND && b->send_zc_min) && zc_wanted(l, b, op)) {
        io_uring_prep_send_zc(sqe, op->fd, op->buf, rw_len(op->len), (int)op->flags, b->send_zc_flags);
        op->be.zc = ZC_SENT;
    } else if (WEFT__UNLIKELY(!prep(sqe, op))) {
        /* Unreachable for a weft opcode; the SQE slot goes back as a no-op rather than leak. */
        io_uring_sqe_set_data(sqe, NULL);
        return -EOPNOTSUPP;
    }
    io_uring_sqe_set_data(sqe, op);
    op->be.sqe_seq = b->ring.sq.sqe_tail - 1;
    submit_policy(l, b, storage_count(b, op));
    return 0;
}

void weft__uring_cancel(weft_loop *l, weft__op *op)
{
    if (op->be.wait_kind == WEFT__WAIT_STREAM) { /* parked on a multishot accept */
        weft__stream_cancel(op);
        return;
    }
    if (op->be.wait_kind == WEFT__WAIT_RX) { /* waiting for a receive stream's bytes */
        weft__rx_unpark(op, -ECANCELED);
        return;
    }
    if (op->job) { /* on the executor */
        weft__op_offload_cancel(op);
        return;
    }
    if (op->be.wait_kind == WEFT__WAIT_SPLICE) { /* a sendfile's pair of splices */
        weft__splice_cancel(l, weft__uring_of(l), op);
        return;
    }
    /* A zero-copy send whose result is in waits for its notification, which no cancel can hasten:
     * the kernel lets go of the pages when the network does. */
    if (op->be.zc == ZC_NOTIF_DUE)
        return;
    weft__uring_cancel_sqe(l, weft__uring_of(l), op);
}

void weft__uring_cancel_sqe(weft_loop *l, weft__uring *b, weft__op *op)
{
    if (op->cancel_sent || op->be.withdrawn)
        return;
    struct io_uring_sq *sq = &b->ring.sq;
    if ((int32_t)(op->be.sqe_seq - sq->sqe_head) >= 0) {
        /* Its SQE has not been handed to the kernel yet: withdraw it. It still goes in, as a NOP, so
         * its completion arrives in order, reported as cancelled; nothing was read or consumed. */
        struct io_uring_sqe *sqe = &sq->sqes[op->be.sqe_seq & sq->ring_mask];
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, op);
        op->be.withdrawn = true;
        return;
    }
    struct io_uring_sqe *sqe = weft__uring_sqe(l, b);
    if (!sqe)
        return;
    op->cancel_sent = true;
    /* The cancel's own CQE carries no op: whatever it says, op's own CQE follows. */
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data(sqe, NULL);
}

/* A MSG_RING from another loop landed: it woke the loop, whose poll drains the remote list anyway. */
static void msg_wake_complete(weft__op *op, int32_t res, uint32_t flags)
{
    (void)op;
    (void)res;
    (void)flags;
}

/*
 * Wakes loop to with a MSG_RING from from's ring: the kernel posts a CQE straight into to's ring,
 * which ends its wait in io_uring_enter; to reads no eventfd and re-arms nothing. The SQE goes out with
 * from's next enter, so a burst of messages to a sleeping loop costs the sender no system call of
 * its own (the sleeping flag lets only the first of them wake it).
 */
static bool uring_wake_from(weft_loop *from, weft_loop *to)
{
    weft__uring *b = weft__uring_of(from), *target = weft__uring_of(to);
    if (!b->has_msg_ring || !target->started)
        return false;
    struct io_uring_sqe *sqe = weft__uring_sqe(from, b);
    if (!sqe)
        return false;
    io_uring_prep_msg_ring(sqe, target->ring.ring_fd, 0, (uint64_t)(uintptr_t)&target->msg_wake_op, 0);
    io_uring_sqe_set_data(sqe, NULL);
    return true;
}

static int uring_buffers_register(weft_loop *l, const struct iovec *iov, unsigned count)
{
    return io_uring_register_buffers(&weft__uring_of(l)->ring, iov, count);
}

static int uring_buffers_unregister(weft_loop *l)
{
    return io_uring_unregister_buffers(&weft__uring_of(l)->ring);
}

static void uring_forget_fd(weft_loop *l, int fd)
{
    weft__uring *b = weft__uring_of(l);
    weft__stream_close(l, b, fd);
    zc_forget_fd(b, fd);
    struct io_uring_sqe *sqe = weft__uring_sqe(l, b);
    if (!sqe)
        return;
    io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(sqe, NULL);
    /* The kernel finds the requests by the file fd names: it must look before the fd is closed. */
    submit_now(l, b);
}

const weft__backend_ops weft__uring_ops = {
    .name = "io_uring",
    .init = uring_init,
    .start = uring_start,
    .stop = uring_stop,
    .fini = uring_fini,
    .poll = weft__uring_poll,
    .has_work = weft__uring_has_work,
    .submit = weft__uring_submit,
    .cancel = weft__uring_cancel,
    .forget_fd = uring_forget_fd,
    .wake_from = uring_wake_from,
    .rx_stream = weft__recvstream_for,
    .rx_resume = weft__recvstream_resume,
    .rx_stop = weft__recvstream_stop,
    .rx_unlend = weft__recvstream_unlend,
    .buffers_register = uring_buffers_register,
    .buffers_unregister = uring_buffers_unregister,
};
