/*
 * echo_uring — the plain liburing echo server weft's io_uring backend is measured against: what a
 * careful engineer writes with liburing and no runtime. One thread, one ring:
 *
 *   - SINGLE_ISSUER|DEFER_TASKRUN (completions are posted only when this thread enters the kernel),
 *     else COOP_TASKRUN|TASKRUN_FLAG, else neither (--taskrun defer|coop|none forces one);
 *   - a registered ring fd, so io_uring_enter skips the fd lookup;
 *   - one multishot accept, re-armed only when the kernel ends it;
 *   - one multishot recv per connection drawing from a provided-buffer ring: no buffer is tied to an
 *     idle connection, and a connection costs no SQE per message received;
 *   - a send per received buffer, one in flight per connection (queued behind it otherwise, so bytes
 *     go back in order); a short send is resubmitted for the rest, and the buffer goes back to the
 *     ring only when its send has completed;
 *   - batched submission: everything the loop queued goes to the kernel in the one
 *     io_uring_submit_and_wait that also waits for the next completions.
 *
 *   echo_uring --port P [--host H] [--taskrun defer|coop|none] [--buf-size B] [--buf-count N]
 *
 * Prints "ready" on stdout once listening; stops on SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BGID 1
#define NO_BUF 0xffffu

enum { T_ACCEPT = 1, T_RECV, T_SEND, T_CLOSE };

/* user_data: type 8 bits | generation 20 bits | buffer id 16 bits | fd 20 bits */
static inline uint64_t ud_make(unsigned type, uint32_t gen, unsigned bid, int fd)
{
    return (uint64_t)type << 56 | (uint64_t)(gen & 0xfffffu) << 36 | (uint64_t)(bid & 0xffffu) << 20 |
           (uint64_t)((unsigned)fd & 0xfffffu);
}
#define UD_TYPE(u) ((unsigned)((u) >> 56))
#define UD_GEN(u) ((uint32_t)(((u) >> 36) & 0xfffffu))
#define UD_BID(u) ((unsigned)(((u) >> 20) & 0xffffu))
#define UD_FD(u) ((int)((u) & 0xfffffu))

typedef struct conn {
    uint32_t gen;      /* tells this connection from earlier ones on the same fd number */
    uint16_t head, tail; /* buffers waiting to be sent back, in order (NO_BUF: none) */
    bool open;
    bool sending;      /* the head buffer's send is in flight */
    bool recv_done;    /* the multishot recv has ended: end of stream or error */
    bool recv_armed;
    bool rearm_nobufs; /* the recv ended for lack of buffers: arm it again once some come back */
} conn;

typedef struct bufstate {
    uint32_t len, off; /* bytes received into the buffer, bytes of them sent back */
    uint16_t next;     /* next buffer in its connection's send queue */
} bufstate;

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static bufstate *bst;
static unsigned buf_size = 4096, buf_count = 16384, buf_mask;
static int returned; /* buffers added back to the ring this turn, published at the end of it */
static conn *conns;
static size_t nconns;
static int lfd;
static int *rearm_list;
static size_t rearm_n, rearm_cap;

static void die(const char *what, int err)
{
    fprintf(stderr, "echo_uring: %s: %s\n", what, strerror(err));
    exit(1);
}

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring))) {
        int r = io_uring_submit(&ring);
        if (r < 0 && r != -EBUSY && r != -EAGAIN && r != -EINTR)
            die("io_uring_submit", -r);
    }
    return sqe;
}

static void buf_return(unsigned bid)
{
    io_uring_buf_ring_add(br, bufs + (size_t)bid * buf_size, buf_size, (unsigned short)bid, (int)buf_mask,
                          returned++);
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_make(T_ACCEPT, 0, 0, lfd));
}

static void arm_recv(int fd, conn *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, ud_make(T_RECV, c->gen, 0, fd));
    c->recv_armed = true;
}

static void submit_send(int fd, conn *c)
{
    unsigned bid = c->head;
    bufstate *b = &bst[bid];
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, fd, bufs + (size_t)bid * buf_size + b->off, b->len - b->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, ud_make(T_SEND, c->gen, bid, fd));
    c->sending = true;
}

static void conn_close(int fd, conn *c)
{
    c->open = false;
    c->gen++; /* completions still to come for this connection are recognised as stale */
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, ud_make(T_CLOSE, 0, 0, fd));
}

/* Closes c once its recv has ended and nothing is being sent; otherwise when that happens. */
static void conn_maybe_close(int fd, conn *c)
{
    if (c->recv_done && !c->recv_armed && !c->sending && c->head == NO_BUF)
        conn_close(fd, c);
}

/* Drops what c still had to send (the peer is gone) and makes its recv end. */
static void conn_abort(int fd, conn *c)
{
    while (c->head != NO_BUF) {
        unsigned bid = c->head;
        c->head = bst[bid].next;
        buf_return(bid);
    }
    c->tail = NO_BUF;
    c->recv_done = true;
    if (c->recv_armed)
        shutdown(fd, SHUT_RDWR); /* the multishot recv completes with 0 and ends */
    else
        conn_maybe_close(fd, c);
}

static void on_accept(struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        arm_accept();
    int fd = cqe->res;
    if (fd < 0) {
        if (fd != -EINTR && fd != -ECONNABORTED && fd != -EAGAIN)
            fprintf(stderr, "echo_uring: accept: %s\n", strerror(-fd));
        return;
    }
    if ((size_t)fd >= nconns) {
        size_t n = nconns ? nconns : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        conn *grown = realloc(conns, n * sizeof *grown);
        if (!grown || n > 0xfffffu) {
            close(fd);
            return;
        }
        memset(grown + nconns, 0, (n - nconns) * sizeof *grown);
        conns = grown;
        nconns = n;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = &conns[fd];
    uint32_t gen = c->gen + 1;
    memset(c, 0, sizeof *c);
    c->gen = gen;
    c->open = true;
    c->head = c->tail = NO_BUF;
    arm_recv(fd, c);
}

static void on_recv(struct io_uring_cqe *cqe, uint64_t ud)
{
    int fd = UD_FD(ud);
    bool has_buf = cqe->flags & IORING_CQE_F_BUFFER;
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    conn *c = (size_t)fd < nconns ? &conns[fd] : NULL;
    if (!c || !c->open || (c->gen & 0xfffffu) != UD_GEN(ud)) {
        if (has_buf)
            buf_return(bid);
        return;
    }
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more)
        c->recv_armed = false;
    if (cqe->res > 0 && has_buf) {
        if (c->recv_done) { /* aborting: nobody to send to */
            buf_return(bid);
        } else {
            bst[bid].len = (uint32_t)cqe->res;
            bst[bid].off = 0;
            bst[bid].next = NO_BUF;
            if (c->tail == NO_BUF)
                c->head = (uint16_t)bid;
            else
                bst[c->tail].next = (uint16_t)bid;
            c->tail = (uint16_t)bid;
            if (!c->sending)
                submit_send(fd, c);
        }
        if (!more && !c->recv_done)
            arm_recv(fd, c); /* the kernel ended the multishot (e.g. CQ overflow): go on */
        return;
    }
    if (has_buf)
        buf_return(bid);
    if (cqe->res == -ENOBUFS && !c->recv_done) {
        /* Every buffer is waiting for its send to complete: arm again once some come back. */
        if (!more && !c->rearm_nobufs) {
            c->rearm_nobufs = true;
            if (rearm_n == rearm_cap) {
                rearm_cap = rearm_cap ? 2 * rearm_cap : 256;
                rearm_list = realloc(rearm_list, rearm_cap * sizeof *rearm_list);
                if (!rearm_list)
                    die("realloc", ENOMEM);
            }
            rearm_list[rearm_n++] = fd;
        }
        return;
    }
    if (more)
        return;
    /* End of stream (0) or an error (reset): close once the sends in flight are done. */
    c->recv_done = true;
    conn_maybe_close(fd, c);
}

static void on_send(struct io_uring_cqe *cqe, uint64_t ud)
{
    int fd = UD_FD(ud);
    unsigned bid = UD_BID(ud);
    conn *c = &conns[fd];
    if (!c->open || (c->gen & 0xfffffu) != UD_GEN(ud)) {
        buf_return(bid);
        return;
    }
    c->sending = false;
    if (cqe->res < 0) {
        /* The head buffer is still queued: conn_abort returns it with the rest. */
        conn_abort(fd, c);
        return;
    }
    bufstate *b = &bst[bid];
    b->off += (uint32_t)cqe->res;
    if (b->off < b->len) {
        submit_send(fd, c); /* a short send: the rest of the same buffer */
        return;
    }
    c->head = b->next;
    if (c->head == NO_BUF)
        c->tail = NO_BUF;
    buf_return(bid);
    if (c->head != NO_BUF)
        submit_send(fd, c);
    else
        conn_maybe_close(fd, c);
}

static int listen_on(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res;
    int r = getaddrinfo(host, port, &hints, &res);
    if (r != 0) {
        fprintf(stderr, "echo_uring: %s:%s: %s\n", host ? host : "*", port, gai_strerror(r));
        exit(1);
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket", errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0)
        die("bind", errno);
    if (listen(fd, 65535) < 0)
        die("listen", errno);
    freeaddrinfo(res);
    return fd;
}

static void setup_ring(const char *taskrun)
{
    static const struct {
        const char *name;
        unsigned flags;
    } modes[] = {
        {"defer", IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL},
        {"coop", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL},
        {"none", IORING_SETUP_SUBMIT_ALL},
    };
    int r = -EINVAL;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (taskrun && strcmp(taskrun, modes[i].name) != 0)
            continue;
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = modes[i].flags | IORING_SETUP_CQSIZE;
        p.cq_entries = 32768;
        r = io_uring_queue_init_params(4096, &ring, &p);
        if (r == 0)
            break;
        if (taskrun)
            die("io_uring_queue_init", -r);
    }
    if (r < 0)
        die("io_uring_queue_init", -r);
    io_uring_register_ring_fd(&ring);

    /* The provided-buffer ring: buf_count buffers of buf_size bytes. */
    size_t ring_bytes = (size_t)buf_count * sizeof(struct io_uring_buf);
    if (posix_memalign((void **)&br, 4096, ring_bytes) || posix_memalign((void **)&bufs, 4096,
                                                                          (size_t)buf_count * buf_size))
        die("posix_memalign", ENOMEM);
    bst = calloc(buf_count, sizeof *bst);
    if (!bst)
        die("calloc", ENOMEM);
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = buf_count, .bgid = BGID};
    r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r < 0)
        die("io_uring_register_buf_ring", -r);
    buf_mask = (unsigned)io_uring_buf_ring_mask(buf_count);
    for (unsigned i = 0; i < buf_count; i++)
        buf_return(i);
    io_uring_buf_ring_advance(br, returned);
    returned = 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: echo_uring --port P [--host H] [--taskrun defer|coop|none] [--buf-size B] "
                    "[--buf-count N (power of 2, <= 32768)]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = NULL, *taskrun = NULL;
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"taskrun", required_argument, NULL, 't'},
        {"buf-size", required_argument, NULL, 's'},
        {"buf-count", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H': host = optarg; break;
        case 'p': port = optarg; break;
        case 't': taskrun = optarg; break;
        case 's': buf_size = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'n': buf_count = (unsigned)strtoul(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (!port || !buf_size || !buf_count || buf_count > 32768 || (buf_count & (buf_count - 1)))
        usage();
    if (taskrun && strcmp(taskrun, "defer") && strcmp(taskrun, "coop") && strcmp(taskrun, "none"))
        usage();
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    lfd = listen_on(host, port);
    setup_ring(taskrun);
    arm_accept();
    puts("ready");
    fflush(stdout);

    for (;;) {
        int r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -EBUSY && r != -EAGAIN && r != -ETIME)
            die("io_uring_submit_and_wait", -r);
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            seen++;
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            switch (UD_TYPE(ud)) {
            case T_ACCEPT: on_accept(cqe); break;
            case T_RECV: on_recv(cqe, ud); break;
            case T_SEND: on_send(cqe, ud); break;
            default: break; /* T_CLOSE */
            }
        }
        io_uring_cq_advance(&ring, seen);
        if (returned) {
            io_uring_buf_ring_advance(br, returned);
            returned = 0;
            /* Buffers are back: connections whose recv ran dry may go on. */
            for (size_t i = 0; i < rearm_n; i++) {
                int fd = rearm_list[i];
                conn *c = &conns[fd];
                c->rearm_nobufs = false;
                if (c->open && !c->recv_done && !c->recv_armed)
                    arm_recv(fd, c);
            }
            rearm_n = 0;
        }
    }
}
