/*
 * io_uring's way of carrying out a SENDFILE request (weft_sendfile, sendfile.c): io_uring has no
 * sendfile, and splice(2) needs a pipe at one end, so the bytes go file -> pipe -> fd as a pair of
 * IORING_OP_SPLICE requests, linked so that the kernel starts the second the moment the first is
 * done. Neither copies through user memory: the first puts references to the file's page-cache pages
 * in the pipe, the second hands them to the socket (MSG_SPLICE_PAGES).
 *
 * The link is a hard one (IOSQE_IO_HARDLINK): the second half runs whatever the first returned, and
 * takes SPLICE_F_NONBLOCK for the pipe's side, so it sends what the pipe holds and no more. That
 * makes every case one trip through the ring: a chunk read in full is sent in full; a short read (the
 * end of the file) sends what was read; at the end of the file, or after a failed read, the empty pipe
 * ends the second half at once with EAGAIN. The request completes once both halves have, with the
 * bytes sent, else the first half's error (or 0 at the end of the file), else the second's.
 *
 * Pipes are the loop's: a sendfile takes one, and gives it back empty, to a pool of up to PIPES_KEPT
 * per loop (see below). A pipe that still holds bytes (the second half sent less than the first read: an
 * interruption, a peer gone, a non-blocking socket full) is closed instead, and its bytes with it:
 * the request reports only what was sent, and the caller goes on from there (re-reading the rest
 * from the file), so nothing is lost and no pipe is ever left holding stale bytes. weft_close of the
 * fd cancels the second half (the kernel finds it by its file); the first half, which only fills the
 * pipe, finishes by itself.
 */
#include "uring.h"

#include <fcntl.h>
#include <unistd.h>

/*
 * Pipes kept idle per loop: a server sends many files at once, and a pipe made and closed for each
 * costs five system calls (pipe2, fcntl, two closes and, for a large file, the resize). At most 64 are
 * kept (128 fds); beyond that many sendfiles at once, pipes come and go. A pipe starts at the kernel's
 * default size and grows, once, to PIPE_BYTES (at most /proc/sys/fs/pipe-max-size for an unprivileged
 * process) the first time it carries a file larger than that; what the kernel grants is read back and
 * used as the chunk.
 */
#define PIPES_KEPT 64
#define PIPE_BYTES (1u << 20)

typedef struct weft__splice_pipe {
    int out, in;              /* the pipe's read and write ends */
    int dest;                 /* while it carries a sendfile: weft's own duplicate of the request's fd */
    size_t capacity;          /* the most one pair moves */
    bool grown;               /* asked for PIPE_BYTES already */
    weft__uring *b;           /* the ring it belongs to */
    weft__link link;          /* in weft__uring.pipes */
    struct weft__splice_pipe *next_idle;
    /* While it carries a sendfile. */
    weft__op fill;            /* the first half: source -> pipe */
    weft__op *send;           /* the SENDFILE request: pipe -> fd */
    void (*send_complete)(weft__op *, int32_t, uint32_t); /* its owner's completion */
    int32_t filled, sent;     /* each half's result */
    bool fill_done, send_done;
} weft__splice_pipe;

static void pipe_close(weft__splice_pipe *p)
{
    weft__list_remove(&p->b->pipes, &p->link);
    close(p->out);
    close(p->in);
    if (p->dest >= 0)
        close(p->dest);
    free(p);
}

/* A pipe from the pool, or a new one (errno set and NULL if none can be made). */
static weft__splice_pipe *pipe_take(weft_loop *l, weft__uring *b)
{
    weft__splice_pipe *p = b->pipes_idle;
    if (p) {
        b->pipes_idle = p->next_idle;
        b->npipes_idle--;
        return p;
    }
    p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        free(p);
        return NULL;
    }
    weft__fd_new(l, fds[0], WEFT__FD_OTHER);
    weft__fd_new(l, fds[1], WEFT__FD_OTHER);
    p->out = fds[0];
    p->in = fds[1];
    p->dest = -1;
    p->b = b;
    int size = fcntl(p->in, F_GETPIPE_SZ);
    p->capacity = size > 0 ? (size_t)size : 4096;
    weft__list_push(&b->pipes, &p->link);
    return p;
}

/* A bigger pipe moves more a trip. Refused (the limits of unprivileged users), the size it has does. */
static void pipe_grow(weft__splice_pipe *p)
{
    p->grown = true;
    int size = fcntl(p->in, F_SETPIPE_SZ, PIPE_BYTES);
    if (size > 0)
        p->capacity = (size_t)size;
}

/* An empty pipe goes back to the pool (or is closed when the pool is full); one that holds bytes is
 * closed, so that no later sendfile sends them. */
static void pipe_give_back(weft__splice_pipe *p, bool empty)
{
    weft__uring *b = p->b;
    if (!empty || b->npipes_idle >= PIPES_KEPT) {
        pipe_close(p);
        return;
    }
    p->next_idle = b->pipes_idle;
    b->pipes_idle = p;
    b->npipes_idle++;
}

/* The kernel's own "interrupted, restart the call" codes (ERESTARTSYS and its kin, 512 to 514), which
 * never reach a process from a system call but which a splice interrupted in an io-wq thread passes
 * on as its result, and EINTR. */
static bool interrupted(int32_t res)
{
    return res == -EINTR || (res <= -512 && res >= -514);
}

/* Both halves are in: the request completes, and the pipe goes back or is closed. */
static void pair_done(weft__splice_pipe *p)
{
    weft__op *op = p->send;
    int32_t res;
    if (p->sent > 0)
        res = p->sent;
    else if (p->filled <= 0)
        res = p->filled; /* the read's error, or 0 at the end of the file */
    else
        res = p->sent;
    /* A half blocked in the kernel (a send waiting for room), interrupted: io-wq's threads block every
     * signal, so only a cancel interrupts them, the request's own or weft_close's of its fd. */
    if (interrupted(res))
        res = -ECANCELED;
    close(p->dest);
    p->dest = -1;
    bool empty = p->filled <= 0 || p->sent == p->filled;
    op->complete = p->send_complete;
    op->be.wait_kind = 0;
    op->be.wait_obj = NULL;
    p->send = NULL;
    pipe_give_back(p, empty);
    op->complete(op, res, 0);
}

static void fill_complete(weft__op *fill, int32_t res, uint32_t flags)
{
    (void)flags;
    weft__splice_pipe *p = WEFT__CONTAINER(fill, weft__splice_pipe, fill);
    p->filled = res;
    p->fill_done = true;
    if (p->send_done)
        pair_done(p);
}

static void send_complete(weft__op *op, int32_t res, uint32_t flags)
{
    (void)flags;
    weft__splice_pipe *p = op->be.wait_obj;
    p->sent = res;
    p->send_done = true;
    if (p->fill_done)
        pair_done(p);
}

int weft__splice_sendfile(weft_loop *l, weft__uring *b, weft__op *op)
{
    /* An SQ that cannot hold the pair: the blocking sendfile(2) on the executor. */
    if (*b->ring.sq.kring_entries < 2)
        return weft__op_offload(l, op);
    weft__splice_pipe *p = pipe_take(l, b);
    if (!p)
        return -errno;
    /*
     * The second half finds its fd only when it starts, after the first: were the fd closed (another
     * task's weft_close) and its number given to a new file meanwhile, it would send into that file. So
     * it sends through a duplicate of weft's own, which keeps the first file alone under its number
     * until the pair is over. weft_close's cancel still finds the send (the kernel matches the file).
     */
    p->dest = fcntl(op->fd, F_DUPFD_CLOEXEC, 0);
    if (p->dest < 0) {
        int err = -errno;
        pipe_give_back(p, true);
        return err;
    }
    weft__fd_new(l, p->dest, WEFT__FD_OTHER);
    /* One pair moves at most what the pipe holds: like sendfile(2), the request may send less than
     * asked, and the caller goes on with the rest. */
    if (op->len > p->capacity && !p->grown)
        pipe_grow(p);
    if (op->len > p->capacity)
        op->len = p->capacity;
    p->fill = (weft__op){.opcode = WEFT__OP_SPLICE, .fd = p->in, .off = -1, .len = op->len,
                         .arg.source = op->arg.source, .next = op, .link = WEFT__LINK_HARD,
                         .complete = fill_complete};
    p->send = op;
    p->send_complete = op->complete;
    p->filled = p->sent = 0;
    p->fill_done = p->send_done = false;
    op->complete = send_complete;
    op->be.wait_kind = WEFT__WAIT_SPLICE;
    op->be.wait_obj = p;
    int r = weft__uring_submit_chain(l, b, &p->fill);
    if (r < 0) {
        op->complete = p->send_complete;
        op->be.wait_kind = 0;
        op->be.wait_obj = NULL;
        p->send = NULL;
        close(p->dest);
        p->dest = -1;
        pipe_give_back(p, true);
    }
    return r;
}

void weft__splice_send_fds(const weft__op *op, int *from, int *to)
{
    const weft__splice_pipe *p = op->be.wait_obj;
    *from = p->out;
    *to = p->dest;
}

void weft__splice_cancel(weft_loop *l, weft__uring *b, weft__op *op)
{
    weft__splice_pipe *p = op->be.wait_obj;
    /* The first half first: cancelled before it ran, it leaves the pipe empty, and the second half
     * (hard-linked, so it still runs) ends at once. A send already blocked on the socket is
     * interrupted by its own cancel. */
    if (!p->fill_done)
        weft__uring_cancel_sqe(l, b, &p->fill);
    if (!p->send_done)
        weft__uring_cancel_sqe(l, b, op);
}

void weft__splices_fini(weft__uring *b)
{
    for (weft__link *link; (link = b->pipes.head);)
        pipe_close(WEFT__CONTAINER(link, weft__splice_pipe, link));
    b->pipes_idle = NULL;
    b->npipes_idle = 0;
}
