/*
 * bench/fixed.c — what registered (direct) descriptors save per operation on this kernel, and what
 * registering one costs per connection: the figures behind docs/direct-descriptors.md.
 *
 * Raw liburing, no weft: the question is the kernel's, before any runtime is built around the answer.
 *   fixed, metric ns_per_op: one 64 B send on one end of a loopback TCP connection and the recv of it on
 *       the other, submitted together (send first) in one io_uring_submit_and_wait, both CQEs reaped;
 *       ns per pair.
 *       plain:    ordinary fds, looked up (fget/fput) by the kernel for each operation
 *       fixed:    the same two sockets in the ring's registered-file table, IOSQE_FIXED_FILE
 *   fixed, metric ns_per_lookup: the file lookup alone, as near as a socket op gets to it: eight recvs with
 *       MSG_DONTWAIT on a socket with nothing to read (each fails at once with -EAGAIN) per submit; ns per
 *       recv. plain-eagain and fixed-eagain as above.
 *   fixed, metric ns_per_register (contender register): what adopting direct descriptors transparently
 *       adds per connection: io_uring_register_files_update of the accepted fd into a slot and back
 *       to -1 when it closes, one system call each (ns per pair of updates).
 * The break-even (connections that carry fewer operations than register / (plain - fixed) lose) is
 * computed by docs/direct-descriptors.md from a kept report.
 *
 * Usage: fixed [--rounds N] [--target-ms MS] [--quick|--full]
 */
#include "harness.h"

#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/utsname.h>

struct pair {
    struct io_uring ring;
    int fd[2]; /* fd[0] sends, fd[1] receives */
    bool fixed;
};

/* A connected loopback TCP pair with Nagle off, or -1 with the failure recorded. */
static int tcp_pair(int fd[2])
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &alen)) {
        fail("listen on loopback: %s", strerror(errno));
        return -1;
    }
    fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd[0] < 0 || connect(fd[0], (struct sockaddr *)&a, sizeof a)) {
        fail("connect: %s", strerror(errno));
        return -1;
    }
    fd[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    close(l);
    if (fd[1] < 0) {
        fail("accept: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return 0;
}

static bool pair_open(struct pair *p, bool fixed)
{
    p->fixed = fixed;
    int rc = io_uring_queue_init(16, &p->ring, 0);
    if (rc < 0) {
        fail("io_uring_queue_init: %s", strerror(-rc));
        return false;
    }
    if (tcp_pair(p->fd) < 0)
        return false;
    if (fixed && (rc = io_uring_register_files(&p->ring, p->fd, 2)) < 0) {
        fail("io_uring_register_files: %s", strerror(-rc));
        return false;
    }
    return true;
}

static void pair_close(struct pair *p)
{
    io_uring_queue_exit(&p->ring);
    close(p->fd[0]);
    close(p->fd[1]);
}

/* Submits the n SQEs queued, waits for them all, and checks that each completed with want. */
static bool submit_reap(struct io_uring *ring, unsigned n, int want)
{
    int rc = io_uring_submit_and_wait(ring, n);
    if (rc < 0) {
        fail("io_uring_submit_and_wait: %s", strerror(-rc));
        return false;
    }
    for (unsigned k = 0; k < n; k++) {
        struct io_uring_cqe *c;
        if ((rc = io_uring_wait_cqe(ring, &c)) < 0) {
            fail("io_uring_wait_cqe: %s", strerror(-rc));
            return false;
        }
        rc = c->res;
        io_uring_cqe_seen(ring, c);
        if (rc != want) {
            fail("an operation completed with %d (%s), not %d", rc, rc < 0 ? strerror(-rc) : "short", want);
            return false;
        }
    }
    return true;
}

static uint64_t send_recv(void *st, uint64_t n)
{
    struct pair *p = st;
    char out[64] = {1}, in[64];
    int sfd = p->fixed ? 0 : p->fd[0], rfd = p->fixed ? 1 : p->fd[1];
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        struct io_uring_sqe *s = io_uring_get_sqe(&p->ring), *r = io_uring_get_sqe(&p->ring);
        io_uring_prep_send(s, sfd, out, sizeof out, 0);
        io_uring_prep_recv(r, rfd, in, sizeof in, 0);
        if (p->fixed) {
            s->flags |= IOSQE_FIXED_FILE;
            r->flags |= IOSQE_FIXED_FILE;
        }
        if (!submit_reap(&p->ring, 2, (int)sizeof out))
            return 0;
    }
    return now_ns() - t0;
}

static uint64_t recv_eagain(void *st, uint64_t n)
{
    struct pair *p = st;
    char in[64];
    int rfd = p->fixed ? 1 : p->fd[1];
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        for (int k = 0; k < 8; k++) {
            struct io_uring_sqe *r = io_uring_get_sqe(&p->ring);
            io_uring_prep_recv(r, rfd, in, sizeof in, MSG_DONTWAIT);
            if (p->fixed)
                r->flags |= IOSQE_FIXED_FILE;
        }
        if (!submit_reap(&p->ring, 8, -EAGAIN))
            return 0;
    }
    return now_ns() - t0;
}

/* Opens a pair (fds plain or registered) and measures fn on it as metric, per_iter operations a call. */
static void on_pair(bool fixed, const char *metric, timed_fn fn, double per_iter)
{
    struct pair p;
    if (pair_open(&p, fixed))
        measure(metric, fn, &p, per_iter);
    pair_close(&p);
}

static void m_plain(void) { on_pair(false, "ns_per_op", send_recv, 1.0); }
static void m_fixed(void) { on_pair(true, "ns_per_op", send_recv, 1.0); }
static void m_plain_eagain(void) { on_pair(false, "ns_per_lookup", recv_eagain, 8.0); }
static void m_fixed_eagain(void) { on_pair(true, "ns_per_lookup", recv_eagain, 8.0); }

/* One connection's lifetime in a sparse table: its fd registered into a slot, then the slot cleared. */
static uint64_t register_cycle(void *st, uint64_t n)
{
    struct pair *p = st;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        unsigned slot = (unsigned)(i & 1023);
        int fd = p->fd[i & 1], none = -1;
        int rc = io_uring_register_files_update(&p->ring, slot, &fd, 1);
        if (rc == 1)
            rc = io_uring_register_files_update(&p->ring, slot, &none, 1);
        if (rc != 1) {
            fail("io_uring_register_files_update: %s", rc < 0 ? strerror(-rc) : "nothing updated");
            return 0;
        }
    }
    return now_ns() - t0;
}

static void m_register(void)
{
    struct pair p;
    if (!pair_open(&p, false))
        goto out;
    int rc = io_uring_register_files_sparse(&p.ring, 1024);
    if (rc < 0) {
        fail("io_uring_register_files_sparse: %s", strerror(-rc));
        goto out;
    }
    measure("ns_per_register", register_cycle, &p, 1.0);
out:
    pair_close(&p);
}

static const contender contenders[] = {
    {"fixed", "plain", m_plain, NULL, NULL},
    {"fixed", "fixed", m_fixed, NULL, NULL},
    {"fixed", "plain-eagain", m_plain_eagain, NULL, NULL},
    {"fixed", "fixed-eagain", m_fixed_eagain, NULL, NULL},
    {"fixed", "register", m_register, NULL, NULL},
};

int main(int argc, char **argv)
{
    bool rounds_set = false, target_set = false;
    for (int i = 1; i < argc; i++) {
        int took = bench_common_option("fixed", argc, argv, &i, &rounds_set, &target_set);
        if (took < 0)
            return 2;
        if (!took && strcmp(argv[i], "fixed")) {
            fprintf(stderr, "usage: fixed [--rounds N] [--target-ms MS] [--quick|--full]\n");
            return 2;
        }
    }
    bench_mode_lengths(rounds_set, target_set, 20, 60, 200);
    pin_thread(0, 0);
    struct utsname u;
    uname(&u);
    printf("{\"type\":\"meta\",\"program\":\"fixed\",\"mode\":");
    json_str(bench_opt.mode);
    printf(",\"rounds\":%u,\"target_ms\":%g,\"kernel\":", bench_opt.rounds, bench_opt.target_ms);
    json_str(u.release);
    printf("}\n");
    fflush(stdout);
    bench_run_workload("fixed", contenders, sizeof contenders / sizeof contenders[0], bench_opt.rounds, 60, false);
    return 0;
}
