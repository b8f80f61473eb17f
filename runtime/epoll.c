/*
 * The epoll backend: the reactor, for contrast with io_uring and for where io_uring is refused.
 *
 * A socket or pipe call is first tried as a non-blocking system call; only on EAGAIN does the op wait
 * in its fd's queue until epoll reports readiness, and then it is tried again. On a byte stream, a short
 * read or write already says the next try would fail: that call waits at once, saving the system call
 * that would only say EAGAIN (an echo server's third call per message). Each fd is registered
 * once, edge-triggered for input and output together, the first time weft sees it: no epoll_ctl per
 * call. Edge-triggering is safe here because an op only waits after the kernel said EAGAIN, and every
 * edge after that is reported; a queue is retried in order until the kernel says EAGAIN again.
 *
 * Regular files are always "ready" to epoll, so their calls (and the path-based calls: open, stat,
 * rename...) run as blocking calls on the executor: that is what a readiness loop must do, and the
 * difference the benchmarks show against io_uring.
 *
 * Cancelling an op waiting for readiness is immediate and consumes nothing: no call has been made yet.
 *
 * fds must be closed with weft_close, which unregisters them; a fd closed behind weft's back and
 * reused for a new file would keep its stale registration.
 */
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum { FD_UNKNOWN, FD_READINESS, FD_BLOCKING };
enum { WAIT_NONE, WAIT_QUEUED, WAIT_OFFLOADED };
enum { Q_READ, Q_WRITE, Q_POLL, Q_COUNT };

typedef struct fd_state {
    uint8_t kind;
    bool connecting; /* a connect returned EINPROGRESS and has not finished */
    /*
     * On a byte stream (TCP, Unix stream socket, pipe) a short read means the kernel had no more, and a
     * short write that its buffer is full: the next attempt would only say EAGAIN. Remembered until
     * epoll reports the next edge, so that call waits at once instead of costing a system call.
     */
    bool stream;
    bool drained, full;
    /*
     * The peer's FIN or an error was reported: its edge is spent, yet a read after the remaining
     * data still has 0 or the error to return, so short reads no longer mean "wait".
     */
    bool ended;
    weft__list queue[Q_COUNT]; /* ops waiting for readiness, in arrival order (weft__op.be.link) */
} fd_state;

typedef struct epoll_backend {
    int epfd;
    fd_state *fds;
    size_t nfds;
    size_t waiting; /* ops in readiness queues */
    bool no_pwait2; /* epoll_pwait2 is missing: epoll_wait with millisecond timeouts */
    struct epoll_event events[256];
} epoll_backend;

static inline epoll_backend *backend_of(weft_loop *l)
{
    return l->backend_data;
}

static int ep_init(weft_loop *l, const weft_config *cfg)
{
    /* epoll_wait returns at the first event: there is no minimum wait to give it. send_zc_min is
     * ignored quietly, as a plain send is what it falls back to everywhere. */
    if (cfg->min_wait_ns)
        weft__log("min_wait_ns is ignored on epoll: only io_uring can wait for a batch of completions\n");
    epoll_backend *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int err = -errno;
        free(b);
        return err;
    }
    /* The wake eventfd stays level-triggered: it is read (reset) whenever it fires. data.u64
     * UINT64_MAX tells it from the fds, whose events carry the fd number. */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
        int err = -errno;
        close(b->epfd);
        free(b);
        return err;
    }
    l->backend_data = b;
    return 0;
}

static int ep_start(weft_loop *l)
{
    (void)l;
    return 0;
}

static void ep_stop(weft_loop *l)
{
    (void)l;
}

static void ep_fini(weft_loop *l)
{
    epoll_backend *b = backend_of(l);
    if (!b)
        return;
    close(b->epfd);
    free(b->fds);
    free(b);
    l->backend_data = NULL;
}

/* The state of fd, learning its kind (and registering it) the first time. NULL: no memory, or fd < 0. */
static fd_state *fd_get(weft_loop *l, epoll_backend *b, int fd, int *err)
{
    if (fd < 0) {
        *err = -EBADF;
        return NULL;
    }
    fd_state *fds = weft__fd_table_fit(b->fds, &b->nfds, sizeof *fds, (size_t)fd);
    if (!fds) {
        *err = -ENOMEM;
        return NULL;
    }
    b->fds = fds;
    fd_state *s = &b->fds[fd];
    if (s->kind != FD_UNKNOWN)
        return s;
    struct stat st;
    l->stats.syscalls++;
    if (fstat(fd, &st) < 0) {
        *err = -errno;
        return NULL;
    }
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode)) {
        s->kind = FD_BLOCKING;
        return s;
    }
    if (S_ISFIFO(st.st_mode)) {
        s->stream = true;
    } else if (S_ISSOCK(st.st_mode)) {
        int type = 0;
        socklen_t tlen = sizeof type;
        l->stats.syscalls++;
        s->stream = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_STREAM;
    }
    int flags = fcntl(fd, F_GETFL);
    l->stats.syscalls += 2;
    if (flags < 0 || (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)) {
        *err = -errno;
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = (uint64_t)fd};
    l->stats.syscalls++;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno != EEXIST) {
        *err = -errno;
        return NULL;
    }
    s->kind = FD_READINESS;
    return s;
}

/* Completes op, counted as the epoll backend's "completion". */
static void finish(weft_loop *l, weft__op *op, int32_t res)
{
    l->stats.completions++;
    op->complete(op, res, 0);
}

static inline weft__op *op_of(weft__link *link)
{
    return link ? WEFT__CONTAINER(link, weft__op, be.link) : NULL;
}

/* The readiness queue a request waits in (EP_READ, EP_WRITE or EP_POLL in WEFT__OPCODES). */
static int queue_of(const weft__op *op)
{
    switch (weft__opcodes[op->opcode].epoll_way) {
    case EP_READ:
        return Q_READ;
    case EP_POLL:
        return Q_POLL;
    default:
        return Q_WRITE;
    }
}

static short revents_of(uint32_t events)
{
    short r = 0;
    if (events & EPOLLIN)
        r |= POLLIN;
    if (events & EPOLLOUT)
        r |= POLLOUT;
    if (events & EPOLLERR)
        r |= POLLERR;
    if (events & EPOLLHUP)
        r |= POLLHUP;
    if (events & EPOLLRDHUP)
        r |= POLLRDHUP;
    if (events & EPOLLPRI)
        r |= POLLPRI;
    return r;
}

/*
 * One non-blocking attempt at a readiness op. Returns its result, or -EAGAIN to keep waiting.
 * MSG_DONTWAIT makes socket calls non-blocking even on a socket someone made blocking.
 */
static int32_t attempt(weft_loop *l, weft__op *op, fd_state *s)
{
    long r;
    l->stats.syscalls++;
    switch (op->opcode) {
    case WEFT__OP_ACCEPT:
        r = accept4(op->fd, op->buf, op->arg.addrlen, (int)op->flags);
        break;
    case WEFT__OP_CONNECT:
        if (s->connecting) {
            /* An event after EINPROGRESS. A failure is in SO_ERROR; otherwise asking connect again
             * tells finished (EISCONN) from still going (EALREADY): a fresh socket reports itself
             * writable once when registered, before the handshake is over. */
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (!err) {
                l->stats.syscalls++;
                if (connect(op->fd, op->buf, (socklen_t)op->len) == 0 || errno == EISCONN)
                    err = 0;
                else if (errno == EALREADY || errno == EINPROGRESS)
                    return -EAGAIN;
                else
                    err = errno;
            }
            s->connecting = false;
            return -err;
        }
        r = connect(op->fd, op->buf, (socklen_t)op->len);
        if (r < 0 && (errno == EINPROGRESS || errno == EALREADY)) {
            s->connecting = true;
            return -EAGAIN;
        }
        break;
    case WEFT__OP_RECV:
        r = recv(op->fd, op->buf, op->len, (int)op->flags | MSG_DONTWAIT);
        break;
    case WEFT__OP_SEND:
        r = send(op->fd, op->buf, op->len, (int)op->flags | MSG_DONTWAIT);
        break;
    case WEFT__OP_RECVMSG:
        r = recvmsg(op->fd, op->buf, (int)op->flags | MSG_DONTWAIT);
        break;
    case WEFT__OP_SENDMSG:
        r = sendmsg(op->fd, op->buf, (int)op->flags | MSG_DONTWAIT);
        break;
    case WEFT__OP_POLL: {
        struct pollfd pfd = {.fd = op->fd, .events = (short)op->flags};
        r = poll(&pfd, 1, 0);
        if (r == 0)
            return -EAGAIN;
        if (r > 0)
            r = pfd.revents;
        break;
    }
    default: /* read, write, readv, writev on a pipe, socket or terminal (O_NONBLOCK set at fd_get) */
        r = weft__op_run_blocking(op);
        if (r < 0)
            return (int32_t)r;
        goto done;
    }
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
done:
    if (s->stream && !s->ended && r > 0 && (size_t)r < op->len) {
        uint8_t way = weft__opcodes[op->opcode].buf_way;
        if (way == BUF_IN && !(op->opcode == WEFT__OP_RECV && (op->flags & MSG_PEEK)))
            s->drained = true;
        else if (way == BUF_OUT)
            s->full = true;
    }
    return (int32_t)r;
}

/* Whether an attempt at op now would only say EAGAIN (see fd_state.drained). */
static inline bool known_to_block(const fd_state *s, const weft__op *op)
{
    switch (weft__opcodes[op->opcode].buf_way) {
    case BUF_IN:
        return s->drained;
    case BUF_OUT:
        return s->full;
    default:
        return false;
    }
}

static void fail_all(weft_loop *l, epoll_backend *b, fd_state *s, int32_t res)
{
    for (int q = 0; q < Q_COUNT; q++) {
        weft__op *op;
        while ((op = op_of(s->queue[q].head))) {
            weft__list_remove(&s->queue[q], &op->be.link);
            op->be.wait_kind = WAIT_NONE;
            b->waiting--;
            finish(l, op, res);
        }
    }
}

/* fd is being closed: what waits on it ends with -ECANCELED, and its registration goes. */
static void ep_forget_fd(weft_loop *l, int fd)
{
    epoll_backend *b = backend_of(l);
    if (fd < 0 || (size_t)fd >= b->nfds)
        return;
    fd_state *s = &b->fds[fd];
    fail_all(l, b, s, -ECANCELED);
    if (s->kind == FD_READINESS) {
        l->stats.syscalls++;
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);
    }
    memset(s, 0, sizeof *s);
}

int weft__epoll_submit(weft_loop *l, weft__op *op)
{
    epoll_backend *b = backend_of(l);
    l->stats.submissions++;
    int32_t res;
    int err = 0;
    fd_state *s;
    switch (weft__opcodes[op->opcode].epoll_way) {
    case EP_NOW:
        /* Its own sockets are non-blocking from the start, sparing fd_get's fcntl calls. */
        if (op->opcode == WEFT__OP_SOCKET)
            op->arg.socket.type |= SOCK_NONBLOCK;
        l->stats.syscalls += op->opcode != WEFT__OP_NOP;
        finish(l, op, weft__op_run_blocking(op));
        return 0;
    case EP_CANCEL:
        res = 0;
        if (op->fd >= 0 && (size_t)op->fd < b->nfds) {
            s = &b->fds[op->fd];
            for (int q = 0; q < Q_COUNT; q++)
                for (weft__link *w = s->queue[q].head; w; w = w->next)
                    res++;
            fail_all(l, b, s, -ECANCELED);
        }
        finish(l, op, res);
        return 0;
    case EP_CLOSE:
        ep_forget_fd(l, op->fd);
        l->stats.syscalls++;
        finish(l, op, weft__op_run_blocking(op));
        return 0;
    case EP_PATH:
        op->be.wait_kind = WAIT_OFFLOADED;
        return weft__op_offload(l, op);
    default:
        break;
    }
    s = fd_get(l, b, op->fd, &err);
    if (!s) {
        finish(l, op, err);
        return 0;
    }
    if (s->kind == FD_BLOCKING) {
        if (op->opcode == WEFT__OP_POLL) {
            /* A regular file is always ready for what it was asked. */
            finish(l, op, (short)op->flags & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM));
            return 0;
        }
        op->be.wait_kind = WAIT_OFFLOADED;
        return weft__op_offload(l, op);
    }
    int q = queue_of(op);
    /* Try at once only if nobody is queued before this op: order is kept per fd and direction. */
    if (!s->queue[q].head && !known_to_block(s, op)) {
        res = attempt(l, op, s);
        if (res != -EAGAIN) {
            finish(l, op, res);
            return 0;
        }
    }
    op->be.wait_kind = WAIT_QUEUED;
    weft__list_push(&s->queue[q], &op->be.link);
    b->waiting++;
    return 0;
}

void weft__epoll_cancel(weft_loop *l, weft__op *op)
{
    epoll_backend *b = backend_of(l);
    if (op->be.wait_kind == WAIT_QUEUED) {
        fd_state *s = &b->fds[op->fd];
        weft__list_remove(&s->queue[queue_of(op)], &op->be.link);
        op->be.wait_kind = WAIT_NONE;
        b->waiting--;
        if (op->opcode == WEFT__OP_CONNECT)
            s->connecting = false;
        finish(l, op, -ECANCELED);
    } else if (op->be.wait_kind == WAIT_OFFLOADED) {
        weft__op_offload_cancel(op);
    }
}

/* Retries the ops of one queue in order until one would block again. */
static void queue_retry(weft_loop *l, epoll_backend *b, fd_state *s, int q, uint32_t events)
{
    weft__op *op;
    while ((op = op_of(s->queue[q].head))) {
        int32_t res;
        if (q == Q_POLL) {
            short revents = revents_of(events) & ((short)op->flags | POLLERR | POLLHUP | POLLNVAL);
            if (!revents)
                return;
            res = revents;
        } else {
            if (known_to_block(s, op))
                return;
            res = attempt(l, op, s);
            if (res == -EAGAIN)
                return;
        }
        weft__list_remove(&s->queue[q], &op->be.link);
        op->be.wait_kind = WAIT_NONE;
        b->waiting--;
        finish(l, op, res);
    }
}

int weft__epoll_poll(weft_loop *l, uint64_t timeout_ns)
{
    epoll_backend *b = backend_of(l);
    struct timespec ts, *tsp = NULL;
    if (timeout_ns != UINT64_MAX) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
        ts.tv_nsec = (long)(timeout_ns % 1000000000u);
        tsp = &ts;
    }
    int max = (int)(sizeof b->events / sizeof b->events[0]);
    int n = -1;
    if (!b->no_pwait2) {
        n = epoll_pwait2(b->epfd, b->events, max, tsp, NULL);
        if (n < 0 && errno == ENOSYS)
            b->no_pwait2 = true; /* before Linux 5.11, or under tools that do not know it */
    }
    if (b->no_pwait2) {
        /* Milliseconds, rounded up so a timer is never polled for before it is due. */
        int ms = timeout_ns == UINT64_MAX ? -1
                 : timeout_ns >= (uint64_t)INT32_MAX * 1000000u ? INT32_MAX
                                                                 : (int)((timeout_ns + 999999u) / 1000000u);
        n = epoll_wait(b->epfd, b->events, max, ms);
    }
    l->stats.syscalls++;
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint64_t key = b->events[i].data.u64;
        uint32_t events = b->events[i].events;
        if (key == UINT64_MAX) {
            uint64_t count;
            ssize_t r = read(l->wake_fd, &count, sizeof count);
            (void)r; /* the remote list itself is drained by the loop's turn */
            l->stats.syscalls++;
            continue;
        }
        if (key >= b->nfds)
            continue;
        fd_state *s = &b->fds[key];
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            s->ended = true;
        if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
            s->drained = false;
            queue_retry(l, b, s, Q_READ, events);
        }
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            s->full = false;
            queue_retry(l, b, s, Q_WRITE, events);
        }
        queue_retry(l, b, s, Q_POLL, events);
    }
    return 0;
}

bool weft__epoll_has_work(weft_loop *l)
{
    /* Readiness cannot be seen without asking the kernel: ask while ops wait for it. */
    return backend_of(l)->waiting > 0;
}

const weft__backend_ops weft__epoll_ops = {
    .name = "epoll",
    .init = ep_init,
    .start = ep_start,
    .stop = ep_stop,
    .fini = ep_fini,
    .poll = weft__epoll_poll,
    .has_work = weft__epoll_has_work,
    .submit = weft__epoll_submit,
    .cancel = weft__epoll_cancel,
    .forget_fd = ep_forget_fd,
};
