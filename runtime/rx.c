/*
 * What the loop keeps per fd number: where the file came from, an error held back for the next call,
 * and the receive side of a connection (rx.h): bytes received that no call has read yet, the end of
 * the stream after them, a view lent without a copy, and the reads waiting for bytes.
 *
 * Bytes are kept when they arrive before anyone reads them (io_uring's multishot receive takes what
 * the kernel has, reader or not) or when a borrowed view is given back only in part. Every read of
 * the fd through weft is served from them first, so a reader sees the stream in order whichever call
 * it uses; a byte is copied out of the kernel's buffer once, into the reader's buffer when one waits,
 * else into the connection's own, which is freed as soon as it is empty: a connection with nothing
 * waiting to be read holds no memory for it.
 */
#include "internal.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* How much a borrow without a stream asks the kernel for at a time, at least. */
#define RX_READ_SIZE (16 * 1024)

/* ---- the table by fd ------------------------------------------------------------------------------- */

weft__fd_slot *weft__fd_slot_fit(weft_loop *l, int fd)
{
    if (fd < 0)
        return NULL;
    weft__fd_slot *slots = weft__fd_table_fit(l->fd_slots, &l->nfd_slots, sizeof *slots, (size_t)fd);
    if (!slots)
        return NULL;
    l->fd_slots = slots;
    return &slots[fd];
}

void weft__fd_error_hold(weft_loop *l, int fd, int err)
{
    if (err >= 0 || err == -ECANCELED || err == -ETIMEDOUT)
        return; /* the sticky cancel and a passed deadline repeat by themselves */
    weft__fd_slot *slot = weft__fd_slot_fit(l, fd);
    if (!slot)
        return; /* no memory: the error is lost, the bytes transferred were still reported */
    if (!slot->held_error)
        l->fd_errors_held++;
    slot->held_error = err;
}

int weft__fd_error_take(weft_loop *l, int fd)
{
    weft__fd_slot *slot = weft__fd_slot_of(l, fd);
    if (!slot || !slot->held_error)
        return 0;
    int err = slot->held_error;
    slot->held_error = 0;
    l->fd_errors_held--;
    return err;
}

/* ---- handing bytes to reads ------------------------------------------------------------------------ */

/* op's buffers as iovecs: one of its own for recv and read. */
static size_t dest_iov(const weft__op *op, struct iovec *one, const struct iovec **iov)
{
    switch (op->opcode) {
    case WEFT__OP_READV:
        *iov = op->buf;
        return (size_t)op->len;
    case WEFT__OP_RECVMSG: {
        const struct msghdr *msg = op->buf;
        *iov = msg->msg_iov;
        return msg->msg_iovlen;
    }
    default:
        one->iov_base = op->buf;
        one->iov_len = (size_t)op->len;
        *iov = one;
        return 1;
    }
}

/* The room op's buffers have left after the op->served bytes already in them. */
static size_t dest_room(const weft__op *op)
{
    struct iovec one;
    const struct iovec *iov;
    size_t n = dest_iov(op, &one, &iov), room = 0;
    for (size_t i = 0; i < n; i++)
        room += iov[i].iov_len;
    return room > op->served ? room - op->served : 0;
}

/* Copies up to n bytes at p into op's buffers after the op->served already there: the bytes copied. */
static size_t dest_fill(const weft__op *op, const char *p, size_t n)
{
    struct iovec one;
    const struct iovec *iov;
    size_t count = dest_iov(op, &one, &iov), skip = op->served, done = 0;
    for (size_t i = 0; i < count && done < n; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        size_t c = len - skip < n - done ? len - skip : n - done;
        memcpy((char *)iov[i].iov_base + skip, p + done, c);
        done += c;
        skip = 0;
    }
    return done;
}

static inline bool op_flag(const weft__op *op, int flag)
{
    return (op->opcode == WEFT__OP_RECV || op->opcode == WEFT__OP_RECVMSG) && (op->flags & (uint32_t)flag);
}

/* Ends op, parked on rx or not, with res (the bytes it has are op->served; see op_result). */
static void finish(weft__op *op, int32_t res)
{
    if (op->be.wait_kind == WEFT__WAIT_RX) {
        weft__rx *rx = op->be.wait_obj;
        weft__list_remove(&rx->waiters, &op->be.link);
        rx->loop->rx_waiting--;
        op->be.wait_kind = 0;
        op->be.wait_obj = NULL;
    }
    if (op->opcode == WEFT__OP_RECVMSG && res >= 0) {
        /* What a connected stream socket's recvmsg reports: no address, no control data. */
        struct msghdr *msg = op->buf;
        msg->msg_namelen = 0;
        msg->msg_controllen = 0;
        msg->msg_flags = 0;
    }
    op->complete(op, res, 0);
}

/* A poll's answer on a connection with something to read: the input events it asked for, with the
 * others it asked for as the kernel has them now. */
static int32_t revents(const weft__rx *rx, const weft__op *op)
{
    short asked = (short)op->flags, in = asked & (POLLIN | POLLRDNORM);
    short others = asked & ~(POLLIN | POLLRDNORM);
    short got = in;
    if (rx->error)
        got |= POLLERR;
    if (rx->ended)
        got |= asked & POLLRDHUP;
    if (others) {
        struct pollfd pfd = {.fd = rx->fd, .events = others};
        if (poll(&pfd, 1, 0) == 1)
            got |= pfd.revents & (others | POLLERR | POLLHUP);
    }
    return got;
}

/*
 * Hands op what it takes of the n bytes at p: returns the bytes taken (none for a peek or a poll).
 * Completes op unless it waits for more (MSG_WAITALL short of its room): *completed says which.
 */
static size_t hand(const weft__rx *rx, weft__op *op, const char *p, size_t n, bool *completed)
{
    *completed = true;
    if (op->opcode == WEFT__OP_POLL) {
        finish(op, revents(rx, op));
        return 0;
    }
    size_t c = dest_fill(op, p, n);
    if (op_flag(op, MSG_PEEK)) {
        finish(op, (int32_t)c);
        return 0;
    }
    op->served += c;
    if (op_flag(op, MSG_WAITALL) && dest_room(op)) {
        *completed = false;
        return c;
    }
    finish(op, 0);
    return c;
}

/* Ends op with what follows the kept bytes: the error (handed to this read alone), or the end. */
static void hand_end(weft__rx *rx, weft__op *op)
{
    if (op->opcode == WEFT__OP_POLL) {
        finish(op, revents(rx, op));
    } else if (rx->error && !op->served && !op_flag(op, MSG_PEEK)) {
        int32_t err = rx->error;
        rx->error = 0;
        finish(op, err);
    } else {
        finish(op, 0); /* the end, or the bytes op has, before the error */
    }
}

/* ---- kept bytes ------------------------------------------------------------------------------------ */

/* Room for n more bytes after data's tail, moving or growing data. False when out of memory. */
static bool reserve(weft__rx *rx, size_t n)
{
    size_t kept = rx->tail - rx->head;
    if (rx->cap - rx->tail >= n)
        return true;
    if (rx->head && rx->cap - kept >= n) {
        memmove(rx->data, rx->data + rx->head, kept);
        rx->head = 0;
        rx->tail = kept;
        return true;
    }
    size_t cap = rx->cap ? rx->cap : 4096;
    while (cap - kept < n)
        cap *= 2;
    char *grown = malloc(cap);
    if (!grown)
        return false;
    if (kept)
        memcpy(grown, rx->data + rx->head, kept);
    free(rx->data);
    rx->data = grown;
    rx->cap = cap;
    rx->head = 0;
    rx->tail = kept;
    return true;
}

static bool append_more(weft__rx *rx, const char *p, size_t n)
{
    if (rx->more_cap - rx->more_len < n) {
        size_t cap = rx->more_cap ? rx->more_cap : 4096;
        while (cap - rx->more_len < n)
            cap *= 2;
        char *grown = realloc(rx->more, cap);
        if (!grown)
            return false;
        rx->more = grown;
        rx->more_cap = cap;
    }
    memcpy(rx->more + rx->more_len, p, n);
    rx->more_len += n;
    return true;
}

/*
 * Keeps n bytes for the reader, after what is kept. While data is lent it must not move, so they wait
 * in more. Out of memory, the bytes cannot be kept: the connection fails with -ENOMEM rather than
 * going on with a hole in its stream.
 */
static void keep(weft__rx *rx, const char *p, size_t n)
{
    bool kept;
    if (rx->lending && rx->lent_bid < 0) {
        kept = append_more(rx, p, n);
    } else {
        kept = reserve(rx, n);
        if (kept) {
            memcpy(rx->data + rx->tail, p, n);
            rx->tail += n;
        }
    }
    if (kept)
        rx->loop->stats.recv_kept_bytes += n;
    else if (!rx->error) {
        weft__log("fd %d: no memory to keep %zu bytes received; the connection fails with ENOMEM\n", rx->fd, n);
        rx->error = -ENOMEM;
        rx->ended = true;
    }
}

/* Puts n bytes back in front of what is kept (the part of a ring buffer's view not consumed). */
static bool prepend(weft__rx *rx, const char *p, size_t n)
{
    size_t kept = rx->tail - rx->head;
    if (!n)
        return true; /* the whole view was consumed (and data may be no buffer at all) */
    if (rx->head >= n) {
        rx->head -= n;
        memcpy(rx->data + rx->head, p, n);
        return true;
    }
    if (!reserve(rx, n))
        return false;
    memmove(rx->data + rx->head + n, rx->data + rx->head, kept);
    memcpy(rx->data + rx->head, p, n);
    rx->tail += n;
    return true;
}

/* The n bytes at p, from ring buffer bid (or from data when bid is -1), are lent until released. */
static void lent_set(weft__rx *rx, const char *p, size_t n, int32_t bid)
{
    rx->lending = true;
    rx->lent = p;
    rx->lent_len = n;
    rx->lent_bid = bid;
}

/* Lends op (a borrow) the n bytes at p. */
static void lend(weft__rx *rx, weft__op *op, const char *p, size_t n, int32_t bid)
{
    lent_set(rx, p, n, bid);
    op->buf = (void *)p;
    finish(op, (int32_t)n);
}

/* After a read took kept bytes: an empty buffer is freed, and the stream may take in more. */
static void taken(weft__rx *rx)
{
    if (rx->head == rx->tail && rx->data && !rx->lending && !rx->filling) {
        free(rx->data);
        rx->data = NULL;
        rx->head = rx->tail = rx->cap = 0;
    }
    weft_loop *l = rx->loop;
    if (rx->paused && l->backend->rx_resume)
        l->backend->rx_resume(l, rx); /* flow control: it may take more in now */
}

/* Hands the kept bytes, and then what follows them, to the waiting reads in order. */
static void serve_kept(weft__rx *rx)
{
    while (rx->waiters.head && !rx->lending) {
        weft__op *op = WEFT__CONTAINER(rx->waiters.head, weft__op, be.link);
        size_t kept = rx->tail - rx->head;
        if (!kept) {
            if (!rx->ended && !rx->error)
                break;
            hand_end(rx, op);
            continue;
        }
        if (op->lend_min) {
            if (kept < op->lend_min && !rx->ended && !rx->error)
                break;
            lend(rx, op, rx->data + rx->head, kept, -1);
            break;
        }
        bool completed;
        rx->head += hand(rx, op, rx->data + rx->head, kept, &completed);
        if (!completed)
            break;
    }
    taken(rx);
}

/* ---- what a receive stream calls ------------------------------------------------------------------ */

weft__rx *weft__rx_get(weft_loop *l, int fd)
{
    weft__fd_slot *slot = weft__fd_slot_fit(l, fd);
    if (!slot)
        return NULL;
    if (slot->rx)
        return slot->rx;
    weft__rx *rx = calloc(1, sizeof *rx);
    if (!rx)
        return NULL;
    rx->fd = fd;
    rx->loop = l;
    rx->lent_bid = -1;
    weft__list_push(&l->rx_all, &rx->all_link);
    slot->rx = rx;
    return rx;
}

void weft__rx_park(weft__rx *rx, weft__op *op)
{
    op->be.wait_kind = WEFT__WAIT_RX;
    op->be.wait_obj = rx;
    weft__list_push(&rx->waiters, &op->be.link);
    rx->loop->rx_waiting++;
}

void weft__rx_unpark(weft__op *op, int32_t res)
{
    finish(op, res); /* op_result gives the bytes op already had, if any */
}

bool weft__rx_deliver(weft__rx *rx, const char *p, size_t n, int32_t bid)
{
    if (rx->lending) {
        keep(rx, p, n);
        return false;
    }
    /* Straight into the waiting reads while nothing kept comes before these bytes. */
    size_t used = 0;
    bool lent = false;
    while (rx->head == rx->tail && used < n && rx->waiters.head) {
        weft__op *op = WEFT__CONTAINER(rx->waiters.head, weft__op, be.link);
        if (op->lend_min) {
            if (bid >= 0 && n - used >= op->lend_min) {
                lend(rx, op, p + used, n - used, bid);
                used = n;
                lent = true;
            }
            break;
        }
        bool completed;
        used += hand(rx, op, p + used, n - used, &completed);
        if (!completed)
            break;
    }
    if (used < n)
        keep(rx, p + used, n - used);
    serve_kept(rx);
    return lent;
}

void weft__rx_end(weft__rx *rx, int32_t res)
{
    if (res == 0)
        rx->ended = true;
    else if (!rx->error)
        rx->error = res;
    serve_kept(rx);
}

/* ---- a read, before it goes to the backend ---------------------------------------------------------- */

bool weft__rx_take_slow(weft_loop *l, weft__rx *rx, weft__op *op)
{
    (void)l;
    if (op->opcode == WEFT__OP_POLL) {
        if (!(op->flags & (POLLIN | POLLRDNORM)))
            return false;
        finish(op, revents(rx, op));
        return true;
    }
    if (rx->lending) {
        finish(op, -EBUSY); /* the bytes after the lent view must wait for it to come back */
        return true;
    }
    if (!dest_room(op)) {
        finish(op, 0);
        return true;
    }
    if (rx->tail == rx->head) {
        hand_end(rx, op);
        return true;
    }
    bool completed;
    rx->head += hand(rx, op, rx->data + rx->head, rx->tail - rx->head, &completed);
    taken(rx);
    if (completed)
        return true;
    /* MSG_WAITALL with more to come: a recv goes on in the backend after what it has (op->served); a
     * scatter read (recvmsg, readv) gets what was kept, short. */
    if (op->opcode == WEFT__OP_RECV)
        return false;
    finish(op, 0);
    return true;
}

/* ---- a connection's end ----------------------------------------------------------------------------- */

void weft__rx_free(weft__rx *rx)
{
    weft__list_remove(&rx->loop->rx_all, &rx->all_link);
    free(rx->data);
    free(rx->more);
    free(rx);
}

/* What slot kept for its file goes: reads waiting on it end (-EBADF: their file is gone). */
static void slot_clear(weft_loop *l, weft__fd_slot *slot)
{
    if (slot->held_error) {
        slot->held_error = 0;
        l->fd_errors_held--;
    }
    weft__rx *rx = slot->rx;
    if (!rx)
        return;
    slot->rx = NULL;
    while (rx->waiters.head)
        finish(WEFT__CONTAINER(rx->waiters.head, weft__op, be.link), -ECANCELED);
    if (rx->lending && rx->lent_bid >= 0)
        l->backend->rx_unlend(l, rx->lent_bid);
    rx->lending = false;
    if (rx->filling) {
        rx->dropped = true; /* a read into data is in flight: the borrow waiting for it frees rx */
        return;
    }
    if (l->backend->rx_stop && l->backend->rx_stop(l, rx)) {
        rx->orphan = true; /* the kernel still holds its stream: freed when it lets go */
        free(rx->data);
        free(rx->more);
        rx->data = rx->more = NULL;
        rx->head = rx->tail = rx->cap = rx->more_len = rx->more_cap = 0;
        return;
    }
    weft__rx_free(rx);
}

void weft__fd_made(weft_loop *l, int fd, uint8_t kind)
{
    weft__fd_slot *slot = weft__fd_slot_fit(l, fd);
    if (!slot)
        return; /* no memory for the table: nothing was kept for fd either */
    slot_clear(l, slot);
    slot->kind = kind;
}

void weft__rx_drop(weft_loop *l, int fd)
{
    weft__fd_slot *slot = weft__fd_slot_of(l, fd);
    if (!slot)
        return;
    slot_clear(l, slot);
    slot->kind = WEFT__FD_FOREIGN;
}

uint64_t weft__rx_kept_all(const weft_loop *l)
{
    uint64_t kept = 0;
    for (const weft__link *k = l->rx_all.head; k; k = k->next)
        kept += weft__rx_kept(WEFT__CONTAINER(k, weft__rx, all_link));
    return kept;
}

void weft__rx_fini(weft_loop *l)
{
    while (l->rx_all.head)
        weft__rx_free(WEFT__CONTAINER(l->rx_all.head, weft__rx, all_link));
    free(l->fd_slots);
    l->fd_slots = NULL;
    l->nfd_slots = 0;
}

/* ---- zero-copy reads --------------------------------------------------------------------------------- */

ssize_t weft_recv_borrow(int fd, const void **data, size_t min)
{
    weft_task *t;
    int r = weft__wait_check(data != NULL, &t);
    if (r)
        return r;
    weft_loop *l = t->loop;
    if (fd < 0)
        return -EBADF;
    if (min > l->cfg.recv_keep_max)
        return -EMSGSIZE;
    if (!min)
        min = 1;
    if (WEFT__UNLIKELY(l->fd_errors_held)) {
        int held = weft__fd_error_take(l, fd);
        if (held)
            return held;
    }
    for (;;) {
        /* The table may have moved while this task was suspended: look fd up again each time. */
        weft__fd_slot *slot = weft__fd_slot_fit(l, fd);
        if (!slot)
            return -ENOMEM;
        weft__rx *rx = slot->rx;
        if (rx) {
            if (rx->lending || rx->filling)
                return -EBUSY; /* one view (or one read for one) at a time */
            size_t kept = rx->tail - rx->head;
            if (kept && (kept >= min || rx->ended || rx->error)) {
                lent_set(rx, rx->data + rx->head, kept, -1);
                *data = rx->lent;
                return (ssize_t)kept;
            }
            if (!kept && rx->error) {
                int32_t err = rx->error;
                rx->error = 0;
                taken(rx);
                return err;
            }
            if (!kept && rx->ended)
                return 0;
        }
        if (l->backend->rx_stream && l->backend->rx_stream(l, fd)) {
            /* The stream lends the kernel's buffer itself when one delivery holds min bytes. */
            weft__op op = {.opcode = WEFT__OP_RECV, .fd = fd, .lend_min = (uint32_t)min};
            intptr_t n = weft__io_wait(t, &op);
            if (n > 0)
                *data = op.buf;
            return n;
        }
        /* No stream: one plain read into the connection's own buffer, lent from there. */
        rx = weft__rx_get(l, fd);
        if (!rx)
            return -ENOMEM;
        size_t kept = rx->tail - rx->head;
        if (!reserve(rx, min > kept + RX_READ_SIZE ? min - kept : RX_READ_SIZE))
            return -ENOMEM;
        weft__op op = {.opcode = WEFT__OP_RECV, .fd = fd, .buf = rx->data + rx->tail, .len = rx->cap - rx->tail,
                       .into_kept = true};
        rx->filling = true;
        intptr_t n = weft__io_wait(t, &op);
        rx->filling = false;
        if (rx->dropped) {
            weft__rx_free(rx); /* weft_close of fd (or its number handed out anew) while it read */
            return -EBADF;
        }
        if (n > 0)
            rx->tail += (size_t)n;
        else if (n == 0)
            rx->ended = true;
        else if (n == -ECANCELED || n == -ETIMEDOUT || !rx->tail)
            return n; /* the kept bytes stay for the next read */
        else
            rx->error = (int32_t)n;
    }
}

int weft_recv_release(int fd, const void *data, size_t consumed)
{
    weft_loop *l = weft__tls_loop;
    if (!l)
        return -EPERM;
    weft__fd_slot *slot = fd >= 0 ? weft__fd_slot_of(l, fd) : NULL;
    weft__rx *rx = slot ? slot->rx : NULL;
    if (!rx || !rx->lending || data != rx->lent || consumed > rx->lent_len)
        return -EINVAL;
    if (rx->lent_bid < 0) {
        /* From data: what came meanwhile waited in more, and now follows the rest. */
        rx->head += consumed;
        if (rx->more_len) {
            rx->lending = false;
            if (!reserve(rx, rx->more_len)) {
                rx->head -= consumed;
                rx->lending = true;
                return -ENOMEM;
            }
            memcpy(rx->data + rx->tail, rx->more, rx->more_len);
            rx->tail += rx->more_len;
            rx->more_len = 0;
            free(rx->more);
            rx->more = NULL;
            rx->more_cap = 0;
        }
    } else {
        /* From a ring buffer: what was not consumed goes in front of what came meanwhile. */
        rx->lending = false;
        if (!prepend(rx, rx->lent + consumed, rx->lent_len - consumed)) {
            rx->lending = true;
            return -ENOMEM;
        }
        l->backend->rx_unlend(l, rx->lent_bid);
    }
    rx->lending = false;
    rx->lent = NULL;
    rx->lent_len = 0;
    rx->lent_bid = -1;
    serve_kept(rx);
    return 0;
}
