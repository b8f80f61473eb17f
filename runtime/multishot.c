/*
 * Multishot streams of the io_uring backend: one SQE the kernel answers with a CQE per result. Accept
 * today: a listening socket's connections.
 */
#include "uring.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * A listening socket's multishot accept: one SQE that the kernel answers with a CQE per connection,
 * so an accept loop does not pay a loop turn per connection (a burst of 10,000 connects would
 * otherwise outrun it and overflow the backlog). Started by the first weft_accept without an address
 * on the fd; connections that arrive with no task waiting are kept here in arrival order and handed
 * to the next weft_accept, never dropped. Past ACCEPT_KEEP of them the multishot is cancelled, so the
 * kernel's backlog bounds what a server that stopped accepting takes in; the next weft_accept starts
 * it again. weft_close of the fd closes what nobody took, as the kernel would have reset them.
 */
enum { ACCEPT_KEEP = 64 };

struct weft__multishot {
    weft__op op;           /* the multishot request, while the kernel holds it */
    weft_loop *loop;
    int fd, flags;
    bool armed;            /* the kernel holds op */
    bool stopping;         /* a cancel of op was sent: its -ECANCELED is ours, not an error */
    bool orphan;           /* its fd was closed: free once the kernel lets go of op */
    int32_t error;         /* what ended the multishot with no task waiting: for the next accept */
    int *kept;             /* accepted fds nobody took yet, kept[head..tail) */
    size_t head, tail, cap;
    weft__list waiters;    /* accept ops parked on it (be.link) */
    weft__link link;       /* in the backend's all_streams */
    weft__link todo_link;  /* in the backend's stream_todo while in_todo */
    bool in_todo;
};

typedef weft__multishot accept_stream;

static void stream_complete(weft__op *op, int32_t res, uint32_t flags);
static void stream_later(weft__uring *b, accept_stream *st);

/* Sends the multishot accept for st. 0, or the error of an SQ that could not be flushed. */
static int stream_arm(weft_loop *l, weft__uring *b, accept_stream *st)
{
    struct io_uring_sqe *sqe = weft__uring_sqe(l, b);
    if (!sqe)
        return -EAGAIN;
    io_uring_prep_multishot_accept(sqe, st->fd, NULL, NULL, st->flags);
    io_uring_sqe_set_data(sqe, &st->op);
    st->armed = true;
    return 0;
}

/* Asks the kernel to end st's multishot; its last CQE (-ECANCELED) follows. */
static void stream_stop(weft_loop *l, weft__uring *b, accept_stream *st)
{
    if (!st->armed || st->stopping)
        return;
    struct io_uring_sqe *sqe = weft__uring_sqe(l, b);
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
    weft__op *op = WEFT__CONTAINER(w, weft__op, be.link);
    op->be.wait_kind = 0;
    op->be.wait_obj = NULL;
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

static void stream_free(weft__uring *b, accept_stream *st)
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
    weft__uring *b = weft__uring_of(l);
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
static void stream_later(weft__uring *b, accept_stream *st)
{
    if (!st->in_todo) {
        st->in_todo = true;
        weft__list_push(&b->stream_todo, &st->todo_link);
    }
}

void weft__streams_after_walk(weft_loop *l, weft__uring *b)
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
static accept_stream *stream_for(weft_loop *l, weft__uring *b, int fd, int flags)
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
static int stream_take(weft_loop *l, weft__uring *b, accept_stream *st, weft__op *op)
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
    op->be.wait_kind = WEFT__WAIT_STREAM;
    op->be.wait_obj = st;
    weft__list_push(&st->waiters, &op->be.link);
    return 0;
}

/* The fd is being closed: waiters end, kept connections are closed, the multishot is cancelled. */
void weft__stream_close(weft_loop *l, weft__uring *b, int fd)
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

int weft__stream_accept(weft_loop *l, weft__uring *b, weft__op *op)
{
    accept_stream *st = op->buf ? NULL : stream_for(l, b, op->fd, (int)op->flags);
    if (!st)
        return 0; /* an address asked for, or no multishot here: the one-shot path */
    int r = stream_take(l, b, st, op);
    return r < 0 ? r : 1;
}

void weft__stream_cancel(weft__op *op)
{
    accept_stream *st = op->be.wait_obj;
    weft__list_remove(&st->waiters, &op->be.link);
    op->be.wait_kind = 0;
    op->be.wait_obj = NULL;
    op->complete(op, -ECANCELED, 0);
}

void weft__streams_fini(weft__uring *b)
{
    while (b->all_streams.head)
        stream_free(b, WEFT__CONTAINER(b->all_streams.head, accept_stream, link));
    free(b->streams);
    b->streams = NULL;
}
