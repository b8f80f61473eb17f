/* rx.c: what weft knows per fd number, and the bytes a connection received that no call has read yet.
 * Part of internal.h; included through it. */
#ifndef WEFT_RX_H
#define WEFT_RX_H

struct weft__op;

/*
 * Where the file an fd number names came from. A receive stream (io_uring's multishot receive, which
 * holds the file for as long as it is armed) is kept only for a socket weft handed out, whose end weft
 * sees (weft_close, or the number handed out anew): a number weft never handed out may be closed with
 * close(2) behind weft's back, and a stream would keep that file open and read it in the place of
 * whatever file gets the number next.
 */
enum weft__fd_kind {
    WEFT__FD_FOREIGN = 0, /* not handed out by weft (or not since its last weft_close) */
    WEFT__FD_OTHER,       /* weft's, and not a stream socket: a pipe, a datagram socket, a file */
    WEFT__FD_SOCKET,      /* weft's socket whose type is not known yet (accepted from a foreign listener) */
    WEFT__FD_STREAM,      /* weft's stream socket: TCP, a Unix stream socket */
};

/*
 * The receive side of one connection: bytes received and not yet read, the end of the stream after
 * them, a view lent by weft_recv_borrow, and the reads waiting for bytes. Every read of the fd through
 * weft (recv, read, readv, recvmsg, poll, borrow) is served from here first, so nothing is read out of
 * order. On io_uring the multishot receive (recvstream.c) fills it; on either backend a borrow with
 * nothing kept fills it with one plain read.
 */
typedef struct weft__rx {
    int fd;
    weft_loop *loop;
    /* Received and not yet read, in order: data[head..tail). */
    char *data;
    size_t head, tail, cap;
    /* What came in while data was lent (it must not move): appended to data when the view comes back. */
    char *more;
    size_t more_len, more_cap;
    /* After the kept bytes: the end of the stream (sticky), or an error handed to one read. */
    bool ended;
    int32_t error;
    /* The view weft_recv_borrow lent: lent_len bytes at lent, from data (lent_bid -1) or from ring
     * buffer lent_bid. */
    bool lending;
    const char *lent;
    size_t lent_len;
    int32_t lent_bid;
    bool filling;       /* a plain read into data is in flight (a borrow without a stream) */
    bool dropped;       /* dropped while filling: the borrow that fills it frees it */
    weft__list waiters; /* reads waiting for bytes (on a stream), first come first served */
    /* io_uring's multishot receive: the backend's own (recvstream.c); stream 0 means none. */
    weft__op ms;
    uint8_t stream;
    bool paused, starved, orphan;
    bool received;        /* the stream has delivered bytes (a refusal after that is an error) */
    uint32_t since;       /* the backend's look pass of its last progress, or of its first waiting read */
    weft__link starved_link; /* in the backend's list of streams waiting for ring buffers */
    weft__link todo_link; /* in the backend's list of streams to arm or stop after the CQ walk */
    bool in_todo;
    weft__link all_link;  /* in the loop's list of every rx, orphans included */
} weft__rx;

/* What the loop keeps per fd number. */
typedef struct weft__fd_slot {
    weft__rx *rx;       /* its receive side, NULL if nothing is kept */
    int32_t held_error; /* an error held back for the next call on the fd (io.c), 0 if none */
    uint8_t kind;       /* weft__fd_kind */
} weft__fd_slot;

/* fd's slot, NULL when the table does not reach fd (nothing is kept for it). */
static inline weft__fd_slot *weft__fd_slot_of(const weft_loop *l, int fd)
{
    return (size_t)fd < l->nfd_slots ? &l->fd_slots[fd] : NULL;
}

/* fd's slot, the table grown to reach it; NULL when out of memory (or fd < 0). */
weft__fd_slot *weft__fd_slot_fit(weft_loop *l, int fd);

/* The number fd names a new file, of kind: what was kept for the file it named before (its bytes, a
 * lent view, its stream, its held error) goes. Waiting reads of that file end with -EBADF. */
void weft__fd_made(weft_loop *l, int fd, uint8_t kind);
/* weft closes fd: the same, and the number is foreign until weft hands it out again. */
void weft__rx_drop(weft_loop *l, int fd);

/* The reads served from kept bytes: recv, read and readv at the file position, recvmsg, and poll. */
static inline bool weft__rx_reads(const struct weft__op *op);
/*
 * A read on fd's connection, before it goes to the backend: served from the kept bytes, the kept end,
 * or refused while a view is lent (-EBUSY). True if op completed here; false: the backend carries it.
 */
bool weft__rx_take_slow(weft_loop *l, weft__rx *rx, struct weft__op *op);
static inline bool weft__rx_take(weft_loop *l, struct weft__op *op);

/* ---- for a backend's receive stream (recvstream.c) ---- */

/* The rx of fd, made if need be (NULL: out of memory). */
weft__rx *weft__rx_get(weft_loop *l, int fd);
/* What a read parked on an rx waits in (weft__op.be.wait_kind). */
enum { WEFT__WAIT_RX = 0x72 };
/* Parks op (a read the kept bytes could not serve) until bytes or the end come. */
void weft__rx_park(weft__rx *rx, struct weft__op *op);
/* A parked read ends early with res (-ECANCELED when cancelled): with what it already had, if any. */
void weft__rx_unpark(struct weft__op *op, int32_t res);
/*
 * n bytes received at p, in ring buffer bid (-1: memory the caller keeps no claim on): handed to the
 * waiting reads in order, and what they do not take is kept (copied). True if a borrow took p itself
 * as its view: bid stays lent until the view comes back (the backend's rx_unlend).
 */
bool weft__rx_deliver(weft__rx *rx, const char *p, size_t n, int32_t bid);
/* After what was delivered, the stream ended (res 0: EOF, for good) or failed (a negative errno, which
 * one read gets): waiting reads get it once the bytes before it are read. */
void weft__rx_end(weft__rx *rx, int32_t res);
/* Bytes kept for fd's reader, for the backend's flow control. */
static inline size_t weft__rx_kept(const weft__rx *rx)
{
    return rx->tail - rx->head + rx->more_len;
}
/* Bytes kept for readers over all of l's connections (weft_stats.recv_kept_now). */
uint64_t weft__rx_kept_all(const weft_loop *l);
/* Frees an rx nothing refers to any more (an orphan the backend let go of). */
void weft__rx_free(weft__rx *rx);
/* Frees every rx of l (the loop is being freed). */
void weft__rx_fini(weft_loop *l);

static inline bool weft__rx_reads(const struct weft__op *op)
{
    switch (op->opcode) {
    case WEFT__OP_RECV:
    case WEFT__OP_RECVMSG:
    case WEFT__OP_POLL:
        return true;
    case WEFT__OP_READ:
    case WEFT__OP_READV:
        return op->off == -1;
    default:
        return false;
    }
}

static inline bool weft__rx_take(weft_loop *l, struct weft__op *op)
{
    if (!weft__rx_reads(op)) /* the opcode first: sends and NOPs look at no table */
        return false;
    weft__fd_slot *slot = weft__fd_slot_of(l, op->fd);
    if (WEFT__LIKELY(!slot || !slot->rx))
        return false;
    weft__rx *rx = slot->rx;
    if ((rx->tail == rx->head && !rx->ended && !rx->error && !rx->lending) || op->lend_min || op->into_kept)
        return false; /* a borrow looks at what is kept itself */
    return weft__rx_take_slow(l, rx, op);
}

#endif /* WEFT_RX_H */
