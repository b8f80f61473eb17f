/*
 * The io_uring backend's own declarations, shared by uring.c (the ring) and multishot.c (multishot
 * streams). Nothing outside the backend includes this.
 */
#ifndef WEFT_URING_H
#define WEFT_URING_H

#include "internal.h"

#include <liburing.h>
#include <pthread.h>

typedef struct weft__multishot weft__multishot;

/* The loop's provided-buffer ring (bufring.c). */
typedef struct weft__bufring {
    struct io_uring_buf_ring *ring; /* shared with the kernel; NULL until the first stream */
    size_t ring_bytes;
    char *base;               /* buffer bid is at base + bid * size */
    size_t size, reserved;    /* bytes per buffer; address space reserved at base */
    unsigned entries, mask;   /* places in the ring (a power of two, at least max) */
    unsigned count, max;      /* buffers made, and the most there may be */
    unsigned in_ring;         /* buffers the kernel may pick from now */
    uint16_t tail;            /* where the next buffer goes */
    bool inc;                 /* IOU_PBUF_RING_INC: buffers are consumed a bit at a time */
    bool registered;
    uint16_t *pos;            /* by buffer: the ring position it was last put at */
    uint16_t *slot_bid;       /* by ring place: the buffer put there last */
    uint32_t *filled;         /* by buffer, with inc: bytes the kernel has written since it was put back */
    uint16_t *lends;          /* by buffer: borrowed views pointing into it */
    uint8_t *state;           /* by buffer: in the ring, or out */
} weft__bufring;

/* A completion's bytes, buffer by buffer (weft__bufring_walk_*). */
typedef struct weft__bufwalk {
    uint16_t pos;
    size_t off, left;
    bool buf_more, done;
} weft__bufwalk;

typedef struct weft__bufseg {
    char *p;
    size_t len;
    unsigned bid;
    bool finished; /* the kernel is done with the buffer: it goes back once its bytes are taken */
} weft__bufseg;

typedef struct weft__uring {
    struct io_uring ring;
    unsigned setup_flags;
    unsigned enter_flags;   /* IORING_ENTER_REGISTERED_RING once the ring fd is registered */
    unsigned submit_batch;  /* cfg.submit_batch: hand queued SQEs over once this many wait; 0 = the
                               default policy (uring.c's submit_policy) */
    unsigned storage_inflight; /* storage requests queued or in the kernel whose CQE has not come */
    int enter_fd;
    bool started;
    pthread_t issuer;       /* with SINGLE_ISSUER, the only thread allowed to submit */
    bool missing[WEFT__OP_COUNT]; /* opcodes this kernel lacks (or WEFT_URING_NO_OPS masks): executor */
    weft__op wake_op;       /* the multishot poll (or read) kept armed on the loop's eventfd */
    uint64_t wake_buf;      /* the read's count */
    bool wake_by_read;      /* no multishot poll (before 5.13): a read instead */
    bool wake_rearm;        /* wake_op ended: arm it again once the CQ walk is over */
    weft__op msg_wake_op;   /* what another loop's MSG_RING names: its CQE only wakes the loop */
    bool has_msg_ring;      /* IORING_OP_MSG_RING (5.18) */
    /* multishot.c's */
    weft__multishot **streams; /* by listening fd: its multishot accept, if one was started */
    size_t nstreams;
    weft__list all_streams; /* every stream, those of closed fds too until the kernel lets go */
    weft__list stream_todo; /* streams to arm or stop once the CQ walk is over */
    bool no_multishot_accept; /* before 5.19 */
    /* Sends and waiting (cfg.send_zc_min, min_wait_ns) */
    size_t send_zc_min;      /* sends this long go out as SEND_ZC (cfg.send_zc_min); 0 = never */
    bool has_send_zc;        /* IORING_OP_SEND_ZC (6.0), unless WEFT_URING_NO_OPS masks it */
    unsigned send_zc_flags;  /* IORING_SEND_ZC_REPORT_USAGE, until a kernel refuses it (before 6.2) */
    unsigned char *zc_refused; /* by fd: 1 once the socket answered SEND_ZC with EOPNOTSUPP */
    size_t nzc_refused;
    weft__list zc_retry;     /* zero-copy sends refused during the CQ walk: sent plainly after it */
    unsigned features;       /* io_uring_params.features */
    unsigned min_wait_us;    /* cfg.min_wait_ns in the kernel's unit; 0 = off or not on this kernel */
    uint64_t min_wait_ns;
    unsigned wait_batch;
    /* Receive streams (recvstream.c, bufring.c) */
    bool walking;            /* the CQ walk is under way: no SQE may be taken (a full SQ would reap) */
    bool recv_streams;       /* multishot receive on a provided-buffer ring, on this kernel (6.0) */
    bool recv_bundle;        /* IORING_RECVSEND_BUNDLE (6.10) */
    bool recv_limit;         /* a multishot receive's byte limit (6.17), until a kernel refuses it */
    bool no_pbuf_inc;        /* WEFT_URING_NO_OPS masks incremental consumption */
    weft__bufring bufring;
    weft__list rx_todo;      /* streams to arm or stop once the CQ walk is over */
    weft__list rx_starved;   /* streams the kernel ended on an empty ring, to arm once buffers are back */
    weft__looks looks;       /* looks at streams whose reads wait long (recvstream.c) */
    /* splice.c's */
    struct weft__splice_pipe *pipes_idle; /* empty pipes kept for the next sendfile */
    unsigned npipes_idle;
    weft__list pipes;        /* every pipe open, idle or carrying a sendfile */
} weft__uring;

static inline weft__uring *weft__uring_of(weft_loop *l)
{
    return l->backend_data;
}

/* A free SQE, flushing the SQ to the kernel first if it is full; NULL if that flush failed. */
struct io_uring_sqe *weft__uring_sqe(weft_loop *l, weft__uring *b);
/* Submits the chain at head as linked SQEs (see uring.c). 0 or a negative errno. */
int weft__uring_submit_chain(weft_loop *l, weft__uring *b, weft__op *head);
/* Asks the kernel to end op's SQE: withdrawn while not handed over yet, else an ASYNC_CANCEL. */
void weft__uring_cancel_sqe(weft_loop *l, weft__uring *b, weft__op *op);

/* ---- multishot.c ---- */

/* What an op parked on a stream waits in (weft__op.be.wait_kind). */
enum { WEFT__WAIT_STREAM = 0x5a };

/* A weft_accept through fd's multishot accept: 1 if the stream took op (complete() runs when a
 * connection comes, maybe at once), 0 if op takes the one-shot path, or a negative errno. */
int weft__stream_accept(weft_loop *l, weft__uring *b, weft__op *op);
/* An op parked on a stream is cancelled: it ends at once, nothing was taken from the kernel. */
void weft__stream_cancel(weft__op *op);
/* fd is being closed: its stream's waiters end, what it kept is closed, the multishot is cancelled. */
void weft__stream_close(weft_loop *l, weft__uring *b, int fd);
/* Arms or stops the streams that asked to during the CQ walk just ended. */
void weft__streams_after_walk(weft_loop *l, weft__uring *b);
/* Frees every stream (the ring is gone). */
void weft__streams_fini(weft__uring *b);

/* ---- bufring.c ---- */

/* Registers the loop's buffer ring and makes its first buffers. 0, or a negative errno. */
int weft__bufring_init(weft_loop *l, weft__uring *b);
/* Unmaps the ring and its buffers (the io_uring is gone, or registering failed). */
void weft__bufring_fini(weft__bufring *br);
/* Doubles the buffers, up to the most allowed; false if there are that many already. */
bool weft__bufring_grow(weft_loop *l, weft__bufring *br);
/* The bytes of a completion that names buffer bid (buf_more: IORING_CQE_F_BUF_MORE), buffer by
 * buffer: each next gives one piece, until false. */
void weft__bufring_walk_start(weft__bufring *br, weft__bufwalk *w, unsigned bid, size_t bytes, bool buf_more);
bool weft__bufring_walk_next(weft_loop *l, weft__bufring *br, weft__bufwalk *w, weft__bufseg *seg);
/* bid's bytes are taken: back in the ring if the kernel is done with it and no view points into it. */
void weft__bufring_put(weft_loop *l, weft__bufring *br, unsigned bid);
/* A borrowed view points into bid, and comes back. */
void weft__bufring_lend(weft__bufring *br, unsigned bid);
void weft__bufring_unlend(weft_loop *l, weft__bufring *br, unsigned bid);

/* ---- recvstream.c ---- */

/* A read of a connection that nothing kept could serve: 1 if its stream took op (complete() runs when
 * bytes come, maybe at once), 0 if op takes the one-shot path. */
int weft__recvstream_submit(weft_loop *l, weft__uring *b, weft__op *op);
/* Arms or stops the streams that asked to during the CQ walk just ended, and those waiting for buffers
 * if the ring has some again. */
void weft__recvstream_after_walk(weft_loop *l, weft__uring *b);
/* Restarts the streams whose reads have waited since before the previous look while their socket has
 * something to read: the kernel did not wake them. */
void weft__recvstream_look(weft_loop *l, weft__uring *b);
/* The backend interface's receive-stream entries (loop.h). */
bool weft__recvstream_for(weft_loop *l, int fd);
void weft__recvstream_resume(weft_loop *l, weft__rx *rx);
bool weft__recvstream_stop(weft_loop *l, weft__rx *rx);
void weft__recvstream_unlend(weft_loop *l, int32_t bid);

/* ---- splice.c ---- */

/* What a SENDFILE carried out as a pair of splices waits in (weft__op.be.wait_kind). */
enum { WEFT__WAIT_SPLICE = 0x5b };

/* Starts SENDFILE op as a pair of linked splices through a pipe of the loop's: 0, or a negative errno
 * (no pipe could be made, the SQ could not be flushed) with nothing started. */
int weft__splice_sendfile(weft_loop *l, weft__uring *b, weft__op *op);
/* The fds a SENDFILE op in flight splices between (its prep): the pipe's read end, and weft's
 * duplicate of the op's fd. */
void weft__splice_send_fds(const weft__op *op, int *from, int *to);
/* Asks both splices of op's pair to end; op completes once both have. */
void weft__splice_cancel(weft_loop *l, weft__uring *b, weft__op *op);
/* Closes every pipe (the ring is gone). */
void weft__splices_fini(weft__uring *b);

#endif /* WEFT_URING_H */
