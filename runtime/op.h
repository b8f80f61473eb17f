/* io.c: requests, whichever backend carries them out. Part of internal.h; included through it. */
#ifndef WEFT_OP_H
#define WEFT_OP_H

struct statx;

/*
 * Every request weft makes, one row each:
 *   X(NAME, "name", io_uring opcode, how epoll carries it out, which way its buffer goes)
 * The enum, the names (WEFT_URING_NO_OPS, diagnostics), io_uring's opcodes and probe, the epoll
 * backend's treatment and the _async bounce buffers all come from this table; io_uring's prep_NAME
 * and the blocking run_NAME are per row, and a row without them does not compile.
 *
 * How epoll carries a request out:
 *   EP_NOW     a system call that never blocks, made on the spot (nop, socket, shutdown);
 *   EP_READ    a non-blocking attempt, then the fd's input queue until readiness;
 *   EP_WRITE   the same with the output queue;
 *   EP_POLL    readiness alone;
 *   EP_PATH    a path call: the blocking call on the executor;
 *   EP_CLOSE, EP_CANCEL  the fd's own teardown.
 * A readiness request on a regular file (always "ready") runs on the executor too.
 *
 * SPLICE and SENDFILE move bytes from arg.source to fd without passing through user memory. SENDFILE
 * is sendfile(2): on epoll tried on fd's readiness; on io_uring, which has no such opcode, the second
 * half of a pair of linked SPLICEs through a pipe of the loop's (splice.c); on the executor, the
 * blocking sendfile(2). SPLICE, a splice(2), is the first half of that pair.
 *
 * The buffer's way, for a single-buffer byte transfer: BUF_IN (filled by the call), BUF_OUT (read by
 * it), BUF_NONE otherwise. It marks the requests whose short transfer on a byte stream says the next
 * one would block (epoll), and whose _async form on the executor goes through a copy (io.c).
 */
#define WEFT__OPCODES(X)                                                \
    X(NOP, "nop", IORING_OP_NOP, EP_NOW, BUF_NONE)                      \
    X(SOCKET, "socket", IORING_OP_SOCKET, EP_NOW, BUF_NONE)             \
    X(ACCEPT, "accept", IORING_OP_ACCEPT, EP_READ, BUF_NONE)            \
    X(CONNECT, "connect", IORING_OP_CONNECT, EP_WRITE, BUF_NONE)        \
    X(RECV, "recv", IORING_OP_RECV, EP_READ, BUF_IN)                    \
    X(SEND, "send", IORING_OP_SEND, EP_WRITE, BUF_OUT)                  \
    X(RECVMSG, "recvmsg", IORING_OP_RECVMSG, EP_READ, BUF_NONE)         \
    X(SENDMSG, "sendmsg", IORING_OP_SENDMSG, EP_WRITE, BUF_NONE)        \
    X(SHUTDOWN, "shutdown", IORING_OP_SHUTDOWN, EP_NOW, BUF_NONE)       \
    X(CLOSE, "close", IORING_OP_CLOSE, EP_CLOSE, BUF_NONE)              \
    X(OPENAT, "openat", IORING_OP_OPENAT, EP_PATH, BUF_NONE)            \
    X(READ, "read", IORING_OP_READ, EP_READ, BUF_IN)                    \
    X(WRITE, "write", IORING_OP_WRITE, EP_WRITE, BUF_OUT)               \
    X(READV, "readv", IORING_OP_READV, EP_READ, BUF_NONE)               \
    X(WRITEV, "writev", IORING_OP_WRITEV, EP_WRITE, BUF_NONE)           \
    X(READ_FIXED, "read_fixed", IORING_OP_READ_FIXED, EP_READ, BUF_IN)  \
    X(WRITE_FIXED, "write_fixed", IORING_OP_WRITE_FIXED, EP_WRITE, BUF_OUT) \
    X(FSYNC, "fsync", IORING_OP_FSYNC, EP_PATH, BUF_NONE)               \
    X(STATX, "statx", IORING_OP_STATX, EP_PATH, BUF_NONE)               \
    X(UNLINKAT, "unlinkat", IORING_OP_UNLINKAT, EP_PATH, BUF_NONE)      \
    X(RENAMEAT, "renameat", IORING_OP_RENAMEAT, EP_PATH, BUF_NONE)      \
    X(MKDIRAT, "mkdirat", IORING_OP_MKDIRAT, EP_PATH, BUF_NONE)         \
    X(POLL, "poll", IORING_OP_POLL_ADD, EP_POLL, BUF_NONE)              \
    X(WAITID, "waitid", WEFT__IORING_OP_WAITID, EP_READ, BUF_NONE)      \
    X(SPLICE, "splice", IORING_OP_SPLICE, EP_PATH, BUF_NONE)            \
    X(SENDFILE, "sendfile", IORING_OP_SPLICE, EP_WRITE, BUF_NONE)       \
    X(CANCEL_FD, "cancel", IORING_OP_ASYNC_CANCEL, EP_CANCEL, BUF_NONE) /* every op on fd: weft_close */

/* IORING_OP_WAITID (Linux 6.7): liburing 2.3's enum ends before it. It waits for the child of the pidfd
 * op->fd (waitid(P_PIDFD, fd, buf, flags)); an io_uring without it completes it with -EOPNOTSUPP. */
#define WEFT__IORING_OP_WAITID 50

enum weft__opcode {
#define WEFT__X(name, str, uring, ep, buf) WEFT__OP_##name,
    WEFT__OPCODES(WEFT__X)
#undef WEFT__X
        WEFT__OP_COUNT
};

enum weft__epoll_way { EP_NOW, EP_READ, EP_WRITE, EP_POLL, EP_PATH, EP_CLOSE, EP_CANCEL };
enum weft__buf_way { BUF_NONE, BUF_IN, BUF_OUT };

/*
 * How the next request of a chain depends on the one before it (weft__op.link). A chain is requests
 * the kernel runs one after another without a trip through the loop between them (io_uring's linked
 * SQEs), submitted together and waited for as one call:
 *   WEFT__LINK_SOFT  next runs only if this one succeeded in full (a result >= 0, and for a transfer
 *                    its whole length); otherwise next and everything after it complete with
 *                    -ECANCELED without running (IOSQE_IO_LINK);
 *   WEFT__LINK_HARD  next runs whatever this one's result (IOSQE_IO_HARDLINK).
 */
enum weft__link_kind { WEFT__LINK_SOFT, WEFT__LINK_HARD };

typedef struct weft__opcode_info {
    const char *name;
    uint8_t epoll_way; /* weft__epoll_way */
    uint8_t buf_way;   /* weft__buf_way */
} weft__opcode_info;

extern const weft__opcode_info weft__opcodes[WEFT__OP_COUNT];

/*
 * One I/O request: the system call's arguments, whichever backend carries them out, and its state
 * while in flight. Lives on the calling task's stack, or in an _async block (io.c). io_uring's SQE
 * carries a pointer to it as user_data; complete() runs on the loop exactly once, with the result.
 */
typedef struct weft__op {
    /* What is asked, as the system call takes it. */
    uint8_t opcode;
    int fd;           /* the file worked on, or the directory a path is relative to; -1 for socket */
    uint32_t flags;   /* the call's flags argument (fsync: 1 for datasync, poll: the events) */
    void *buf;        /* buffer, iovec array, msghdr, sockaddr, path or siginfo */
    uint64_t len;     /* bytes, iovecs, or the sockaddr's length */
    int64_t off;      /* file offset; -1: the file position */
    uint32_t lend_min; /* a receive that lends its bytes (weft_recv_borrow): at least this many; else 0 */
    bool into_kept;   /* rx.c's own read into a connection's kept bytes: not served from them */
    struct weft__op *next; /* the request linked after this one, NULL for none (a chain, see above) */
    uint8_t link;     /* how next depends on this one: enum weft__link_kind */
    union {           /* the arguments only some calls have */
        struct {
            int domain, type, protocol;
        } socket;
        socklen_t *addrlen; /* accept */
        uint32_t mode;      /* openat, mkdirat */
        unsigned buf_index; /* read_fixed, write_fixed: the registered buffer buf lies in (fixedbuf.c) */
        struct {
            int fd;
            int64_t off;    /* -1: none (a pipe), or the file position */
        } source;           /* splice, sendfile: where the bytes come from (fd, off: where they go) */
        struct {
            unsigned mask;
            struct statx *out;
        } statx;
        struct {
            int newdfd;
            const char *newpath;
        } rename;
    } arg;

    /* Its life in flight, kept by io.c. */
    void (*complete)(struct weft__op *op, int32_t res, uint32_t flags);
    weft_task *task;    /* the task waiting for it, NULL for an _async op */
    int32_t res;
    size_t served;      /* bytes already in the caller's buffers (given from kept ones by rx.c, or
                           received by an earlier try of a MSG_WAITALL): a recv goes on after them. They
                           are added to the result, and stand in for it if the request fails or is
                           cancelled. */
    int reason;         /* why it was cancelled: -ECANCELED, -ETIMEDOUT; 0 if not */
    bool cancel_sent;   /* a cancel is on its way: it must not be sent twice */
    bool completed;     /* complete() has run (a backend may complete an op inside submit) */
    bool abandoned;     /* an _async op whose future was freed while pending: its result goes nowhere */
    struct weft__job *job; /* the executor job running it as a blocking call, NULL if none */
    void *caller_buf;   /* an _async op on the executor: the caller's buffer while buf is weft's copy */
    struct weft__op *head; /* a member of a chain: its first op, which counts the members; NULL if alone */
    uint8_t chain_left; /* a chain's head: members whose complete() has not run yet */
    bool chain_done;    /* a chain's head: every member's has (what its task waits for) */

    /* The backend's own, while the op is pending there; nothing else reads them. */
    struct {
        uint32_t sqe_seq;  /* io_uring: the SQ position its SQE was given */
        bool withdrawn;    /* io_uring: cancelled before its SQE reached the kernel, turned into a NOP */
        uint8_t zc;        /* io_uring: a send gone out as SEND_ZC, and how far it is (uring.c) */
        bool storage;      /* io_uring: counted among the storage requests in flight (uring.c) */
        int32_t zc_res;    /* io_uring: that send's result, held until its notification comes */
        uint8_t wait_kind; /* what the op waits in (a readiness queue, a multishot stream) */
        void *wait_obj;    /* that object */
        weft__link link;   /* in its wait queue */
    } be;
} weft__op;

/* Submits op for the running task t and waits until its final completion (io.c); for a chain, until
 * every member's. Returns op's result (a chain's caller reads the others' with weft__op_result). */
intptr_t weft__io_wait(weft_task *t, weft__op *op);
/* weft__io_wait for the calling task: what every suspending I/O call does, -EPERM outside a task. */
static inline intptr_t weft__io_run(weft__op *op)
{
    weft_task *t = weft__current();
    return t ? weft__io_wait(t, op) : -EPERM;
}
/* The result a completed op's caller sees: its own, or why it was cancelled (io.c). */
intptr_t weft__op_result(const weft__op *op);
/* Whether res is op succeeding in full: >= 0, and for a single-buffer transfer its whole length
 * (what a soft link asks of it). */
bool weft__op_full(const weft__op *op, int32_t res);
/* The same, ignoring cancellation and deadlines: for operations that must happen (close). */
intptr_t weft__io_wait_uninterruptible(weft_task *t, weft__op *op);
/* Holds back err for fd after weft_send_all or weft_recv_exact made partial progress: the next call on
 * fd returns it. Cleared by weft_close(fd), and when weft hands out fd anew (rx.c). */
void weft__fd_error_hold(weft_loop *l, int fd, int err);
/* Takes the error held for fd, 0 if none (rx.c). */
int weft__fd_error_take(weft_loop *l, int fd);
/* fd was just handed out by the kernel to weft (a socket, an accepted connection, an opened file, a
 * pipe, a signalfd or pidfd of weft's), a file of kind (weft__fd_kind): what was held for an earlier file
 * of that number (an error, kept bytes, the backend's registration) went with that file. l may be NULL
 * (no loop on the thread). */
void weft__fd_new(weft_loop *l, int fd, uint8_t kind);
/*
 * RWF_NOSIGNAL if the kernel takes it, else 0 (asked once per process, with an empty write to a pipe):
 * the per-call flag of pwritev2 and io_uring's WRITE that makes a write to a pipe or socket with no
 * reader fail with EPIPE without raising SIGPIPE. Newer than the kernel headers weft builds against.
 */
#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100
#endif
int weft__rwf_nosignal(void);
/* weft_close from outside a task on l's thread: the backend forgets fd, then it is closed. */
int weft__io_close_now(weft_loop *l, int fd);
/* Carries op out with the blocking system call, on the calling thread; returns its result. */
int32_t weft__op_run_blocking(weft__op *op);
/* Runs op with the blocking system call on the default executor; complete() runs on the loop. A chain
 * runs as one job, member after member as the kernel would run its links, each member's complete()
 * running on the loop in order once it has ended. */
int weft__op_offload(weft_loop *l, weft__op *op);
/* Cancels an op running on the executor: dequeued if not started, else it runs to its end. */
void weft__op_offload_cancel(weft__op *op);
/* Submits op as an _async operation and returns the future its completion resolves (io.c). A single
 * op: chains are waited for by their task (weft__io_wait). */
weft_future *weft__io_async(weft__op *op);
/*
 * The same for a request whose arguments the kernel reads only when the request is submitted (at the
 * loop's next enter, after the call has returned): the first buf_bytes at op->buf (a path, an
 * address) and newpath_bytes at op->arg.rename.newpath are copied into the request's own block.
 */
weft_future *weft__io_async_copy(weft__op *op, size_t buf_bytes, size_t newpath_bytes);
/* Cancels every _async operation still in flight (loop teardown). */
void weft__io_cancel_all(weft_loop *l);

#endif /* WEFT_OP_H */
