/*
 * Receive streams of the io_uring backend: one multishot receive per connection, into the loop's
 * provided-buffer ring (bufring.c), armed by the connection's first weft_recv and left armed, so a
 * server's read costs no SQE and no trip through the kernel's poll machinery per message: the kernel
 * posts a completion whenever bytes arrive. Each completion's bytes go to the reads waiting on the
 * connection (rx.c copies them into the caller's buffer, or lends the ring buffer itself to a borrow),
 * and what nobody waited for is kept, in order, for the next read; the ring buffer is given back at
 * once, so buffers are only ever held by bytes in flight and by borrowed views.
 *
 * A stream is made only for a stream socket weft handed out (rx.h says why), and stops:
 *   - for flow control, once its connection keeps recv_keep_max bytes nobody has read (the kernel
 *     stops it there itself, where it can): the rest waits in the kernel's socket buffer, and TCP's
 *     window pushes back on the sender; armed again once the reader has taken half;
 *   - when the ring is empty (the kernel ends it with -ENOBUFS): armed again after the CQ walk that
 *     gave buffers back, or once the ring has grown; never in a loop with nothing to give;
 *   - at EOF, for good, and after an error, until a read asks again (the error goes to one read, as a
 *     recv would return it once);
 *   - when its fd is closed through weft or handed out anew: its reads end with -EBADF, and it is freed
 *     once the kernel has let go of it.
 * Arming and stopping take an SQE, which must not happen inside the CQ walk (a full SQ is flushed by an
 * enter that reaps): what a completion asks for waits for the walk's end.
 *
 * Where the kernel refuses multishot receive on a socket (EINVAL, EOPNOTSUPP before any byte came),
 * its reads take the one-shot path, as they do on a kernel without it (before 6.0) and for reads a
 * stream cannot serve (MSG_OOB, MSG_ERRQUEUE, MSG_TRUNC).
 */
#include "uring.h"

#include <poll.h>
#include <sys/socket.h>

#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4) /* 6.10: one completion may fill several ring buffers */
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

/* weft__rx.stream */
enum {
    RS_NONE = 0,  /* no stream: reads take the one-shot path */
    RS_IDLE,      /* made, not armed */
    RS_ARMED,     /* the kernel holds its multishot receive */
    RS_STOPPING,  /* a cancel of it is on its way */
    RS_PLAIN,     /* the kernel refused it on this socket: reads take the one-shot path */
};

static void stream_cqe(weft__op *op, int32_t res, uint32_t flags);

/* The flags a stream serves; a read with others takes the one-shot path. */
#define STREAM_FLAGS (MSG_DONTWAIT | MSG_PEEK | MSG_WAITALL | MSG_NOSIGNAL | MSG_CMSG_CLOEXEC)

static bool stream_serves(const weft__op *op)
{
    switch (op->opcode) {
    case WEFT__OP_RECV:
    case WEFT__OP_RECVMSG:
        return !(op->flags & ~(uint32_t)STREAM_FLAGS);
    case WEFT__OP_POLL:
        return op->flags & (POLLIN | POLLRDNORM);
    default:
        return true; /* read and readv at the file position */
    }
}

/* Whether fd may have a stream: a stream socket weft handed out. A socket of a kind not yet known is
 * asked once. */
static bool stream_socket(weft_loop *l, int fd)
{
    weft__fd_slot *slot = weft__fd_slot_of(l, fd);
    if (!slot)
        return false;
    if (slot->kind == WEFT__FD_SOCKET) {
        int type = 0;
        socklen_t len = sizeof type;
        bool stream = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
        slot->kind = stream ? WEFT__FD_STREAM : WEFT__FD_OTHER;
    }
    return slot->kind == WEFT__FD_STREAM;
}

/* fd's stream, made if fd may have one; NULL if not (or no memory, or no buffer ring here). */
static weft__rx *stream_make(weft_loop *l, weft__uring *b, int fd)
{
    if (!b->recv_streams || !stream_socket(l, fd))
        return NULL;
    if (!b->bufring.registered) {
        int r = weft__bufring_init(l, b);
        if (r < 0) {
            b->recv_streams = false;
            weft__log("receive streams are off: the buffer ring could not be set up (%s); reads go to the "
                      "kernel one by one\n", weft_strerror(r));
            return NULL;
        }
    }
    weft__rx *rx = weft__rx_get(l, fd);
    if (!rx)
        return NULL;
    if (rx->stream == RS_NONE) {
        rx->stream = RS_IDLE;
        rx->ms.complete = stream_cqe;
        rx->ms.fd = fd;
    }
    return rx;
}

/* Whether rx's stream should be armed now, flow control aside. After an error it waits for a read to
 * ask again. */
static bool stream_wanted(const weft__rx *rx)
{
    return !rx->orphan && !rx->ended && !rx->starved && (!rx->error || rx->waiters.head) && rx->stream != RS_PLAIN;
}

static void stream_arm(weft_loop *l, weft__uring *b, weft__rx *rx)
{
    struct io_uring_sqe *sqe = weft__uring_sqe(l, b);
    if (!sqe) {
        /* The ring cannot take an SQE (its flush failed): the waiting reads learn it. */
        while (rx->waiters.head)
            weft__rx_unpark(WEFT__CONTAINER(rx->waiters.head, weft__op, be.link), -EAGAIN);
        return;
    }
    if (WEFT__UNLIKELY(WEFT__FAULT(WEFT__FAULT_RECV_ASLEEP))) {
        io_uring_prep_poll_add(sqe, rx->fd, POLLPRI);
    } else {
        io_uring_prep_recv_multishot(sqe, rx->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = 0;
        if (b->recv_bundle)
            sqe->ioprio |= IORING_RECVSEND_BUNDLE;
    }
    /* The kernel stops the stream by itself once it has taken what the connection may still keep
     * (6.17; optlen, in the place of file_index, which liburing 2.3 names). */
    if (b->recv_limit)
        sqe->file_index = (uint32_t)(l->cfg.recv_keep_max - weft__rx_kept(rx));
    io_uring_sqe_set_data(sqe, &rx->ms);
    rx->stream = RS_ARMED;
    rx->paused = false;
    l->stats.recv_arms++;
}

static void stream_stop_now(weft_loop *l, weft__uring *b, weft__rx *rx)
{
    struct io_uring_sqe *sqe = weft__uring_sqe(l, b);
    if (!sqe)
        return; /* it stays armed; what it receives is still kept */
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&rx->ms, 0);
    io_uring_sqe_set_data(sqe, NULL);
    rx->stream = RS_STOPPING;
}

/*
 * Brings rx's stream where it should be: armed, stopped, or (refused by the kernel) out of the way,
 * its waiting reads sent down the one-shot path. During the CQ walk this waits for the walk's end.
 */
static void stream_settle(weft_loop *l, weft__uring *b, weft__rx *rx)
{
    if (b->walking) {
        if (!rx->in_todo) {
            rx->in_todo = true;
            weft__list_push(&b->rx_todo, &rx->todo_link);
        }
        return;
    }
    if (rx->stream == RS_PLAIN) {
        while (rx->waiters.head) {
            weft__op *op = WEFT__CONTAINER(rx->waiters.head, weft__op, be.link);
            weft__list_remove(&rx->waiters, &op->be.link);
            op->be.wait_kind = 0;
            op->be.wait_obj = NULL;
            int r = weft__uring_submit(l, op);
            if (r < 0)
                op->complete(op, r, 0);
        }
        return;
    }
    /*
     * Flow control: a stream is armed while its connection keeps at most half of recv_keep_max, for at
     * most what it may still keep; where the kernel cannot stop it there (before 6.17), it is stopped
     * once its connection keeps recv_keep_max, which may overshoot by what one loop turn takes in.
     */
    size_t kept = weft__rx_kept(rx), keep_max = l->cfg.recv_keep_max;
    bool wanted = stream_wanted(rx);
    if (rx->stream == RS_IDLE && wanted) {
        if (kept <= keep_max / 2)
            stream_arm(l, b, rx);
        else if (!rx->paused) {
            rx->paused = true;
            l->stats.recv_pauses++;
        }
    } else if (rx->stream == RS_ARMED && (!wanted || kept >= keep_max)) {
        if (wanted && !rx->paused) {
            rx->paused = true;
            l->stats.recv_pauses++;
        }
        stream_stop_now(l, b, rx);
    }
}

/* Hands the bytes of a completion for buffer bid to rx, and gives the buffers back. */
static void stream_bytes(weft_loop *l, weft__uring *b, weft__rx *rx, unsigned bid, size_t bytes, bool buf_more)
{
    weft__bufring *br = &b->bufring;
    weft__bufwalk w;
    weft__bufseg seg;
    weft__bufring_walk_start(br, &w, bid, bytes, buf_more);
    while (weft__bufring_walk_next(l, br, &w, &seg)) {
        if (seg.len && !rx->orphan && weft__rx_deliver(rx, seg.p, seg.len, (int32_t)seg.bid)) {
            weft__bufring_lend(br, seg.bid);
            l->stats.recv_lends++;
        }
        if (seg.finished)
            weft__bufring_put(l, br, seg.bid);
    }
}

static void stream_cqe(weft__op *op, int32_t res, uint32_t flags)
{
    weft__rx *rx = WEFT__CONTAINER(op, weft__rx, ms);
    weft_loop *l = rx->loop;
    weft__uring *b = weft__uring_of(l);
    bool more = flags & IORING_CQE_F_MORE;
    if (!more)
        rx->stream = RS_IDLE;
    rx->since = b->looks.passes;
    if (flags & IORING_CQE_F_BUFFER)
        stream_bytes(l, b, rx, flags >> IORING_CQE_BUFFER_SHIFT, res > 0 ? (size_t)res : 0,
                     flags & IORING_CQE_F_BUF_MORE);
    if (rx->orphan) {
        if (!more && !rx->in_todo)
            weft__rx_free(rx); /* one in the todo list is freed there */
        return;
    }
    if (res > 0) {
        rx->received = true;
    } else if (!more) {
        if (res == 0) {
            weft__rx_end(rx, 0);
        } else if (res == -ENOBUFS) {
            if (!rx->starved) {
                rx->starved = true;
                weft__list_push(&b->rx_starved, &rx->starved_link);
            }
            l->stats.recv_enobufs++;
        } else if (res == -ECANCELED) {
            /* Stopped: by weft (a pause), or by a cancel of every request on the fd. */
        } else if (res == -EINVAL && b->recv_limit && !rx->received) {
            b->recv_limit = false; /* a kernel without the multishot limit (before 6.17) */
        } else if ((res == -EINVAL || res == -EOPNOTSUPP) && !rx->received) {
            rx->stream = RS_PLAIN;
        } else {
            weft__rx_end(rx, res);
        }
    }
    stream_settle(l, b, rx);
}

int weft__recvstream_submit(weft_loop *l, weft__uring *b, weft__op *op)
{
    if (op->into_kept)
        return 0; /* rx.c's own read, for a connection without a stream */
    weft__fd_slot *slot = weft__fd_slot_of(l, op->fd);
    weft__rx *rx = slot ? slot->rx : NULL;
    if (!rx || rx->stream == RS_NONE) {
        /* Only a recv makes a stream: the other reads are served by one once there is one. */
        if (op->opcode != WEFT__OP_RECV || !stream_serves(op))
            return 0;
        rx = stream_make(l, b, op->fd);
        if (!rx)
            return 0;
    }
    if (rx->stream == RS_PLAIN || !stream_serves(op))
        return 0;
    if (op->opcode != WEFT__OP_POLL && (op->opcode == WEFT__OP_RECV || op->opcode == WEFT__OP_RECVMSG) &&
        (op->flags & MSG_DONTWAIT)) {
        op->complete(op, -EAGAIN, 0); /* nothing is kept (or rx.c would have served it) */
        stream_settle(l, b, rx);      /* but a reader is there: bytes may as well come in */
        return 1;
    }
    if (!rx->waiters.head)
        rx->since = b->looks.passes;
    weft__rx_park(rx, op);
    stream_settle(l, b, rx);
    return 1;
}

/*
 * The kernel can fail to wake an armed multishot receive: seen on Linux 6.18 with a small socket buffer,
 * where the last bytes of a transfer and its FIN sat in the socket while the stream slept on (a plain
 * liburing loop shows the same, about once in 300,000 arrivals). A stream whose reads have waited since
 * before the previous look, with no completion since, is asked with poll(2) whether its socket has
 * something to read or has ended; if so it is restarted, and the fresh multishot receives at once.
 */
void weft__recvstream_look(weft_loop *l, weft__uring *b)
{
    for (weft__link *k = l->rx_all.head; k; k = k->next) {
        weft__rx *rx = WEFT__CONTAINER(k, weft__rx, all_link);
        if (!rx->waiters.head || rx->stream != RS_ARMED || !weft__look_due(b->looks.passes, rx->since))
            continue;
        struct pollfd pfd = {.fd = rx->fd, .events = POLLIN | POLLRDHUP};
        if (poll(&pfd, 1, 0) != 1)
            continue;
        l->stats.recv_restarts++;
        rx->since = b->looks.passes;
        stream_stop_now(l, b, rx); /* its final completion arms it again: reads wait */
    }
}

void weft__recvstream_after_walk(weft_loop *l, weft__uring *b)
{
    weft__bufring *br = &b->bufring;
    if (b->rx_starved.head) {
        /* Streams the kernel ended on an empty ring go again once it has buffers: those this walk
         * gave back, and more if the ring may grow (it was too small for one turn's arrivals). With
         * none (all lent as views), they wait for a view to come back. */
        weft__bufring_grow(l, br);
        if (br->in_ring) {
            weft__link *k;
            while ((k = weft__list_pop(&b->rx_starved))) {
                weft__rx *rx = WEFT__CONTAINER(k, weft__rx, starved_link);
                rx->starved = false;
                stream_settle(l, b, rx);
            }
        }
    }
    weft__link *k;
    while ((k = weft__list_pop(&b->rx_todo))) {
        weft__rx *rx = WEFT__CONTAINER(k, weft__rx, todo_link);
        rx->in_todo = false;
        if (rx->orphan && rx->stream == RS_IDLE) {
            weft__rx_free(rx);
            continue;
        }
        stream_settle(l, b, rx);
    }
}

/* ---- the backend interface's entries ------------------------------------------------------------- */

bool weft__recvstream_for(weft_loop *l, int fd)
{
    weft__uring *b = weft__uring_of(l);
    weft__rx *rx = stream_make(l, b, fd);
    return rx && rx->stream != RS_PLAIN;
}

void weft__recvstream_resume(weft_loop *l, weft__rx *rx)
{
    if (rx->stream == RS_IDLE && weft__rx_kept(rx) <= l->cfg.recv_keep_max / 2)
        stream_settle(l, weft__uring_of(l), rx);
}

bool weft__recvstream_stop(weft_loop *l, weft__rx *rx)
{
    weft__uring *b = weft__uring_of(l);
    if (rx->starved) {
        rx->starved = false;
        weft__list_remove(&b->rx_starved, &rx->starved_link);
    }
    rx->orphan = true;
    if (rx->stream == RS_ARMED || rx->stream == RS_STOPPING) {
        stream_settle(l, b, rx); /* stops it; the final completion frees rx */
        return true;
    }
    if (rx->in_todo) {
        rx->in_todo = false;
        weft__list_remove(&b->rx_todo, &rx->todo_link);
    }
    return false;
}

void weft__recvstream_unlend(weft_loop *l, int32_t bid)
{
    weft__uring *b = weft__uring_of(l);
    weft__bufring_unlend(l, &b->bufring, (unsigned)bid);
    /* A view held the last buffers: streams waiting for one can go again. */
    if (b->rx_starved.head && !b->walking)
        weft__recvstream_after_walk(l, b);
}
