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
 * The caller's file status flags are left as they are: a try is non-blocking by the call's own flag,
 * not by O_NONBLOCK on the open file description (which a pipe shares with other processes, stdin
 * with the shell). Sockets take MSG_DONTWAIT (read and write on a socket become recv and send), pipes
 * and the devices that allow it RWF_NOWAIT (preadv2, pwritev2). What has neither (a terminal) and
 * accept and connect, which have no such flag, get O_NONBLOCK for the one system call and their flags
 * back right after it (nonblock_begin).
 *
 * Regular files are always "ready" to epoll, so their calls (and the path-based calls: open, stat,
 * rename...) run as blocking calls on the executor: that is what a readiness loop must do, and the
 * difference the benchmarks show against io_uring. So do the files epoll refuses to watch (EPERM:
 * /dev/null and other devices without poll, always ready as well).
 *
 * Cancelling an op waiting for readiness is immediate and consumes nothing: no call has been made yet.
 *
 * A registration can go stale behind weft's back: close(2) of a registered fd makes the kernel drop
 * it from the epoll set without a word, and the number's next file is not registered, so an op
 * waiting on it would wait for ever. What weft does itself keeps the table right for free: weft_close
 * unregisters, and every fd weft hands out (socket, accept, open, its pipes) resets its number's
 * state. For the rest, an fd whose ops have been waiting a while is asked about (verify_waiting): once
 * a second, an fd that has had ops waiting since before the previous check (then after 2, 4 and 8
 * checks, and every 8th after that) is re-armed with EPOLL_CTL_MOD. A MOD that succeeds proves the
 * registration is this file's, and re-arms it (an edge it may have missed is reported again);
 * ENOENT says the number now names another file: its state is learnt afresh and its ops submitted
 * again; EBADF says it was closed: its ops end with -EBADF. A wait of less than a second, the common
 * one, costs nothing; a long one about one epoll_ctl a second at first and one per 8 s later, and a
 * loop with ops waiting sleeps at most a second at a time. So a stale registration delays an op by
 * 1 to 2 s (up to 9 s for one waiting for long) rather than hanging it. docs/epoll.md has the cases.
 */
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

enum { FD_UNKNOWN, FD_READINESS, FD_BLOCKING };
enum { WAIT_NONE, WAIT_QUEUED, WAIT_OFFLOADED };
enum { Q_READ, Q_WRITE, Q_POLL, Q_COUNT };
/* How a try at read, write, readv or writev on a readiness fd is made non-blocking. */
enum { WAY_SOCKET, WAY_NOWAIT, WAY_TOGGLE };

/* The events every fd is registered for. */
#define FD_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

typedef struct fd_state {
    uint8_t kind;
    uint8_t way;     /* WAY_*: a socket, something preadv2 takes RWF_NOWAIT for, or neither */
    bool fifo;       /* a pipe: the only readiness fd whose write (not send) can raise SIGPIPE */
    uint32_t since;  /* the pass (epoll_backend.looks) in which its ops began waiting */
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
    weft__looks looks; /* verify_waiting's passes (loop.h) */
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

/* (Re-)registers fd: ADD, or MOD where the kernel has this file registered already (EEXIST: weft
 * reset the state of a number whose file it had registered), which re-arms its edges. */
static int fd_register(weft_loop *l, epoll_backend *b, int fd)
{
    struct epoll_event ev = {.events = FD_EVENTS, .data.u64 = (uint64_t)fd};
    l->stats.syscalls++;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    if (errno != EEXIST)
        return -errno;
    l->stats.syscalls++;
    return epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev) == 0 ? 0 : -errno;
}

/* Learns what s's fd is and registers it if it has readiness. 0, or -errno (EBADF...). */
static int fd_learn(weft_loop *l, epoll_backend *b, int fd, fd_state *s)
{
    struct stat st;
    l->stats.syscalls++;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISDIR(st.st_mode)) {
        s->kind = FD_BLOCKING;
        return 0;
    }
    s->way = WAY_NOWAIT;
    if (S_ISFIFO(st.st_mode)) {
        s->stream = true;
        s->fifo = true;
    } else if (S_ISSOCK(st.st_mode)) {
        int type = 0;
        socklen_t tlen = sizeof type;
        l->stats.syscalls++;
        s->stream = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 && type == SOCK_STREAM;
        s->way = WAY_SOCKET;
    }
    int err = fd_register(l, b, fd);
    if (err == -EPERM) {
        /* A file without poll support (/dev/null, /dev/zero...): always ready, like a regular file. */
        s->kind = FD_BLOCKING;
        return 0;
    }
    if (err)
        return err;
    s->kind = FD_READINESS;
    return 0;
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
    *err = fd_learn(l, b, fd, s);
    if (*err) {
        memset(s, 0, sizeof *s);
        return NULL;
    }
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
 * O_NONBLOCK on fd's open file description for one system call, for what has no per-call flag:
 * *saved gets the flags to put back (nonblock_end), -1 if O_NONBLOCK was set already. 0 or -errno.
 */
static int nonblock_begin(weft_loop *l, int fd, int *saved)
{
    *saved = -1;
    l->stats.syscalls++;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    if (flags & O_NONBLOCK)
        return 0;
    l->stats.syscalls++;
    if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    *saved = flags;
    return 0;
}

/* Puts back the flags nonblock_begin changed, keeping errno (the call's). */
static void nonblock_end(weft_loop *l, int fd, int saved)
{
    if (saved < 0)
        return;
    int err = errno;
    l->stats.syscalls++;
    fcntl(fd, F_SETFL, saved);
    errno = err;
}

/*
 * A kernel without RWF_NOSIGNAL raises SIGPIPE at the thread writing to a pipe with no reader. It is
 * blocked around that write and, if the write raised it, taken back (sigtimedwait takes the
 * thread's own pending signal, the one the kernel raised, before one sent to the process). One that
 * was pending before the write is the user's and stays: then the write's merges with it.
 *
 * The write may have raised it without failing: a pipe write or a sendfile(2) that moved some bytes
 * before the reader went away returns their count, and the kernel has raised SIGPIPE at the part that
 * failed. So the signal is looked for after anything short of the whole length, not only after EPIPE.
 */
typedef struct sigpipe_hold {
    sigset_t pipe_only, old;
    bool held, pending_before;
} sigpipe_hold;

static void sigpipe_block(weft_loop *l, sigpipe_hold *h)
{
    sigemptyset(&h->pipe_only);
    sigaddset(&h->pipe_only, SIGPIPE);
    l->stats.syscalls++;
    pthread_sigmask(SIG_BLOCK, &h->pipe_only, &h->old);
    h->held = true;
    h->pending_before = false;
    if (sigismember(&h->old, SIGPIPE) == 1) {
        sigset_t pending;
        l->stats.syscalls++;
        h->pending_before = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    }
}

static void sigpipe_unblock(weft_loop *l, sigpipe_hold *h, long r, size_t whole)
{
    if (!h->held)
        return;
    int err = errno;
    bool may_have_raised = r < 0 ? err == EPIPE : (size_t)r < whole;
    if (may_have_raised && !h->pending_before) {
        struct timespec zero = {0, 0};
        l->stats.syscalls++;
        sigtimedwait(&h->pipe_only, NULL, &zero);
    }
    l->stats.syscalls++;
    pthread_sigmask(SIG_SETMASK, &h->old, NULL);
    errno = err;
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    return total;
}

/* One non-blocking try at read, write, readv or writev on a readiness fd: the result, or -1 and errno. */
static long transfer(weft_loop *l, weft__op *op, fd_state *s)
{
    bool out = op->opcode == WEFT__OP_WRITEV || weft__opcodes[op->opcode].buf_way == BUF_OUT; /* _FIXED too */
    bool vec = op->opcode == WEFT__OP_READV || op->opcode == WEFT__OP_WRITEV;
    struct iovec one = {op->buf, op->len};
    struct iovec *iov = vec ? op->buf : &one;
    int iovcnt = vec ? (int)op->len : 1;
    if (s->way == WAY_SOCKET) {
        /* read(2) and write(2) on a socket are recv and send without flags: the same call with
         * MSG_DONTWAIT (and MSG_NOSIGNAL, as weft_send). Sockets have no file position. */
        if (op->off != -1) {
            errno = ESPIPE;
            return -1;
        }
        if (!vec)
            return out ? send(op->fd, op->buf, op->len, MSG_DONTWAIT | MSG_NOSIGNAL)
                   : op->len ? recv(op->fd, op->buf, op->len, MSG_DONTWAIT) : 0;
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        return out ? sendmsg(op->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) : recvmsg(op->fd, &msg, MSG_DONTWAIT);
    }
    int nosignal = out ? weft__rwf_nosignal() : 0;
    sigpipe_hold hold = {.held = false};
    if (out && !nosignal && s->fifo)
        sigpipe_block(l, &hold);
    long r = -1;
    if (s->way == WAY_NOWAIT) {
        r = out ? pwritev2(op->fd, iov, iovcnt, op->off, RWF_NOWAIT | nosignal)
                : preadv2(op->fd, iov, iovcnt, op->off, RWF_NOWAIT);
        if (r < 0 && errno == EOPNOTSUPP)
            s->way = WAY_TOGGLE; /* a terminal, or another device that has no per-call non-blocking I/O */
    }
    if (s->way == WAY_TOGGLE) {
        int saved, err = nonblock_begin(l, op->fd, &saved);
        if (err) {
            errno = -err;
            r = -1;
        } else {
            l->stats.syscalls++;
            r = out ? pwritev2(op->fd, iov, iovcnt, op->off, nosignal) : preadv2(op->fd, iov, iovcnt, op->off, 0);
            nonblock_end(l, op->fd, saved);
        }
    }
    sigpipe_unblock(l, &hold, r, vec ? iov_total(iov, iovcnt) : op->len);
    return r;
}

/*
 * One try at sendfile(2), which has no per-call flag either: the fd gets O_NONBLOCK for the call
 * (nonblock_begin), and SIGPIPE, which it raises when the peer has gone, is held back around it as
 * for a pipe written without RWF_NOSIGNAL. The file is read as sendfile(2) reads it: from the page
 * cache, or from the disk on the loop's thread.
 */
static long sendfile_try(weft_loop *l, weft__op *op)
{
    sigpipe_hold hold = {.held = false};
    sigpipe_block(l, &hold);
    int saved, err = nonblock_begin(l, op->fd, &saved);
    long r = -1;
    if (err) {
        errno = -err;
    } else {
        off_t in = op->arg.source.off;
        r = sendfile(op->fd, op->arg.source.fd, in < 0 ? NULL : &in, op->len);
        nonblock_end(l, op->fd, saved);
    }
    sigpipe_unblock(l, &hold, r, op->len);
    return r;
}

/* accept or connect (which have no per-call flag) under nonblock_begin. */
static long accept_or_connect(weft_loop *l, weft__op *op)
{
    int saved, err = nonblock_begin(l, op->fd, &saved);
    if (err) {
        errno = -err;
        return -1;
    }
    long r = op->opcode == WEFT__OP_ACCEPT ? accept4(op->fd, op->buf, op->arg.addrlen, (int)op->flags)
                                           : connect(op->fd, op->buf, (socklen_t)op->len);
    nonblock_end(l, op->fd, saved);
    return r;
}

/* One non-blocking attempt at a readiness op. Returns its result, or -EAGAIN to keep waiting. */
static int32_t attempt(weft_loop *l, weft__op *op, fd_state *s)
{
    long r;
    l->stats.syscalls++;
    switch (op->opcode) {
    case WEFT__OP_ACCEPT:
        r = accept_or_connect(l, op);
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
                if (accept_or_connect(l, op) == 0 || errno == EISCONN)
                    err = 0;
                else if (errno == EALREADY || errno == EINPROGRESS)
                    return -EAGAIN;
                else
                    err = errno;
            }
            s->connecting = false;
            return -err;
        }
        r = accept_or_connect(l, op);
        if (r < 0 && (errno == EINPROGRESS || errno == EALREADY)) {
            s->connecting = true;
            return -EAGAIN;
        }
        break;
    case WEFT__OP_RECV:
        /* After what a MSG_WAITALL has already (from an earlier try, or kept bytes: op->served). */
        r = recv(op->fd, (char *)op->buf + op->served, op->len - op->served, (int)op->flags | MSG_DONTWAIT);
        if (r > 0 && (op->flags & MSG_WAITALL) && !(op->flags & MSG_PEEK)) {
            /* MSG_DONTWAIT outweighs MSG_WAITALL in the kernel: the waiting for the rest is weft's. */
            op->served += (size_t)r;
            if (op->served < op->len)
                return -EAGAIN;
            r = 0;
        }
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
    case WEFT__OP_WAITID: {
        /* A pidfd is readable once its child has ended; until then the wait says so at once (WNOHANG). */
        siginfo_t *info = op->buf;
        info->si_pid = 0;
        r = waitid(P_PIDFD, (id_t)op->fd, info, (int)op->flags | WNOHANG);
        if (r == 0 && info->si_pid == 0)
            return -EAGAIN;
        break;
    }
    case WEFT__OP_SENDFILE:
        r = sendfile_try(l, op);
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
    default: /* read, write, readv, writev on a pipe, socket or terminal */
        r = transfer(l, op, s);
        break;
    }
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
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

static inline bool has_waiters(const fd_state *s)
{
    return s->queue[Q_READ].head || s->queue[Q_WRITE].head || s->queue[Q_POLL].head;
}

/* An op on an fd: tried at once, queued for readiness, or run on the executor. */
static int submit_on_fd(weft_loop *l, epoll_backend *b, weft__op *op)
{
    int err = 0;
    fd_state *s = fd_get(l, b, op->fd, &err);
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
    /* Try at once only if nobody is queued before this op: order is kept per fd and direction. A
     * call that asked not to wait (MSG_DONTWAIT) is tried even where the last one found nothing, and
     * never waits: -EAGAIN, as the system call gives. */
    bool dontwait = (op->opcode == WEFT__OP_RECV || op->opcode == WEFT__OP_RECVMSG || op->opcode == WEFT__OP_SEND ||
                     op->opcode == WEFT__OP_SENDMSG) && (op->flags & MSG_DONTWAIT);
    if (!s->queue[q].head && (dontwait || !known_to_block(s, op))) {
        int32_t res = attempt(l, op, s);
        if (res != -EAGAIN || dontwait) {
            finish(l, op, res);
            return 0;
        }
    } else if (dontwait) {
        finish(l, op, -EAGAIN);
        return 0;
    }
    if (!has_waiters(s))
        s->since = b->looks.passes;
    op->be.wait_kind = WAIT_QUEUED;
    weft__list_push(&s->queue[q], &op->be.link);
    b->waiting++;
    return 0;
}

/* The number names another file now than the one whose state is kept: its ops are submitted again, in
 * order, to the new file, which is learnt (and registered) afresh. */
static void fd_relearn(weft_loop *l, epoll_backend *b, int fd)
{
    fd_state *s = &b->fds[fd];
    weft__list queued[Q_COUNT];
    memcpy(queued, s->queue, sizeof queued);
    memset(s, 0, sizeof *s);
    for (int q = 0; q < Q_COUNT; q++) {
        weft__op *op;
        while ((op = op_of(queued[q].head))) {
            weft__list_remove(&queued[q], &op->be.link);
            op->be.wait_kind = WAIT_NONE;
            b->waiting--;
            int err = submit_on_fd(l, b, op);
            if (err < 0)
                finish(l, op, err);
        }
    }
}

/* A new file has fd's number (weft__fd_new): what waits on the number waited on the old file, which
 * is closed, and the kernel dropped its registration with it. */
static void ep_fd_new(weft_loop *l, int fd)
{
    epoll_backend *b = backend_of(l);
    if ((size_t)fd >= b->nfds)
        return;
    fd_state *s = &b->fds[fd];
    fail_all(l, b, s, -EBADF);
    memset(s, 0, sizeof *s);
}

/*
 * Checks the registrations of fds whose ops have been waiting since before the previous pass (then
 * after 2, 4 and 8 passes, and every 8th after that), once a second (see the top of the file).
 */
static void verify_waiting(weft_loop *l, epoll_backend *b)
{
    for (size_t fd = 0; fd < b->nfds; fd++) {
        fd_state *s = &b->fds[fd];
        if (s->kind != FD_READINESS || !has_waiters(s) || !weft__look_due(b->looks.passes, s->since))
            continue;
        struct epoll_event ev = {.events = FD_EVENTS, .data.u64 = (uint64_t)fd};
        l->stats.syscalls++;
        if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, (int)fd, &ev) == 0)
            continue;
        if (errno == ENOENT) {
            fd_relearn(l, b, (int)fd);
        } else {
            fail_all(l, b, s, -errno); /* EBADF: closed behind weft's back */
            memset(&b->fds[fd], 0, sizeof b->fds[fd]);
        }
    }
}

int weft__epoll_submit(weft_loop *l, weft__op *op)
{
    epoll_backend *b = backend_of(l);
    l->stats.submissions++;
    int32_t res;
    fd_state *s;
    if (WEFT__UNLIKELY(op->next)) {
        /* A chain (a write and its sync) has no readiness to wait for: its members run as blocking
         * calls in one executor job, each after the one before, as io_uring runs linked requests. */
        op->be.wait_kind = WAIT_OFFLOADED;
        return weft__op_offload(l, op);
    }
    switch (weft__opcodes[op->opcode].epoll_way) {
    case EP_NOW:
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
    return submit_on_fd(l, b, op);
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
    if (b->waiting && weft__looks_tick(&b->looks, &timeout_ns)) {
        /* While ops wait, the loop sleeps at most until the next check of their registrations. */
        uint64_t completed = l->stats.completions;
        verify_waiting(l, b);
        if (l->stats.completions != completed)
            timeout_ns = 0; /* ops ended: their tasks are to run, not to wait */
    }
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
    .fd_new = ep_fd_new,
};
