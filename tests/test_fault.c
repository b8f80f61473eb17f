/*
 * Faults the kernel or the allocator can produce, injected on purpose (built only with
 * -Dfault_injection=true): short reads and writes, EAGAIN, EINTR, ECONNRESET, EPIPE, ENOMEM, EMFILE on
 * accept, an -ECANCELED nobody asked for, a full SQ, an overflowing CQ, a failed io_uring_enter, and
 * failed task and stack allocations.
 *
 * Also the real thing where a test can make it: a peer's reset, a closed peer, a process out of fds,
 * and a reset after some bytes of a weft_recv_exact.
 *
 * For each: the error reaches the caller as documented, no byte is lost (what a short or failed call
 * did not move is still there for the next call), no task is stuck (every scenario runs under a
 * deadline and the loop ends with no task alive), and no fd is leaked (the process's fds are counted
 * before and after; ASan's leak checker covers memory at exit).
 *
 * weft__fault_op(opcode, error, skip, count): the next count ops of opcode after skip complete at once
 * with error < 0, or have their length capped at error > 0 bytes. The settings are per thread.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "common.h"
#include "internal.h"

TestSuite(fault, .timeout = 60);

static bool on_io_uring(void)
{
    return strcmp(backend_env(), "io_uring") == 0;
}

/* ---- running a scenario bounded, and checking what it left behind ------------------------------ */

/*
 * Runs main_fn(arg) on a new loop made with cfg (NULL: defaults), then asserts that no task is still
 * alive, that the process has exactly the fds it had before, and clears every fault. Returns main's
 * result; *stats (may be NULL) receives the loop's counters.
 */
static intptr_t run_checked(weft_fn main_fn, void *arg, const weft_config *cfg, weft_stats *stats)
{
    int fds_before = count_open_fds();
    weft_loop *l = weft_loop_new(cfg);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    intptr_t result = INTPTR_MIN;
    EQ(weft_loop_run(l, main_fn, arg, &result), 0);
    weft__fault_clear();
    weft_stats st;
    EQ(weft_loop_stats(l, &st), 0);
    EQ(st.tasks_live, 0);
    weft_loop_free(l);
    EQ(count_open_fds(), fds_before);
    if (stats)
        *stats = st;
    return result;
}

/* A spawned task under guarded_main's deadline (common.h), so a fault that leaves it stuck fails the
 * test with -ETIMEDOUT instead of hanging it. Its struct guarded is on the heap, freed as it starts. */
static intptr_t bounded_entry(void *arg)
{
    struct guarded g = *(struct guarded *)arg;
    free(arg);
    return guarded_main(&g);
}

static weft_task *spawn_bounded(weft_fn fn, void *arg)
{
    struct guarded *g = malloc(sizeof *g);
    cr_assert(g != NULL);
    *g = (struct guarded){fn, arg};
    weft_task *t = weft_spawn(bounded_entry, g);
    cr_assert(t != NULL, "weft_spawn: %s", strerror(errno));
    return t;
}

/* Runs fn as the scenario's main task under guarded_main's 10 s deadline. */
static intptr_t run_scenario(weft_fn fn, void *arg, const weft_config *cfg, weft_stats *stats)
{
    struct guarded g = {fn, arg};
    return run_checked(guarded_main, &g, cfg, stats);
}

/* ---- data -------------------------------------------------------------------------------------------- */

static void pair(int sv[2])
{
    cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s", strerror(errno));
}

static void close_pair(int sv[2])
{
    EQ(weft_close(sv[0]), 0);
    EQ(weft_close(sv[1]), 0);
}

/* Nothing more is waiting to be read on fd (without blocking). */
static void expect_drained(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    cr_assert(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK), "fd %d still had data (recv gave %zd)", fd, n);
}

/* ---- short reads and writes -------------------------------------------------------------------- */

static intptr_t short_recv_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    unsigned char out[1000], in[1000];
    fill_pattern(out, sizeof out, 1);
    EQ(weft_send(sv[1], out, sizeof out, 0), 1000);

    weft__fault_op(WEFT__OP_RECV, 100, 0, 1);
    memset(in, 0, sizeof in);
    EQ(weft_recv(sv[0], in, sizeof in, 0), 100); /* capped: returned as a short count */
    expect_pattern(in, 100, 1);
    for (size_t i = 100; i < sizeof in; i++)
        cr_assert(in[i] == 0, "byte %zu written past the short count", i);
    EQ(weft_recv(sv[0], in + 100, sizeof in - 100, 0), 900); /* the rest, nothing lost */
    expect_pattern(in, sizeof in, 1);
    expect_drained(sv[0]);
    close_pair(sv);
    return 0;
}

Test(fault, short_recv_is_returned_as_such_and_the_next_recv_gets_the_rest)
{
    EQ(run_scenario(short_recv_main, NULL, NULL, NULL), 0);
}

static intptr_t short_send_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    unsigned char out[1000], in[1000];
    fill_pattern(out, sizeof out, 2);

    weft__fault_op(WEFT__OP_SEND, 10, 0, 1);
    EQ(weft_send(sv[0], out, sizeof out, 0), 10);
    EQ(weft_recv(sv[1], in, sizeof in, 0), 10); /* exactly what the short send said went out */
    expect_pattern(in, 10, 2);
    expect_drained(sv[1]);
    EQ(weft_send(sv[0], out + 10, sizeof out - 10, 0), 990);
    EQ(weft_recv_exact(sv[1], in + 10, 990), 990);
    expect_pattern(in, sizeof in, 2);
    close_pair(sv);
    return 0;
}

Test(fault, short_send_is_returned_as_such_and_only_that_many_bytes_arrive)
{
    EQ(run_scenario(short_send_main, NULL, NULL, NULL), 0);
}

static intptr_t short_file_main(void *arg)
{
    (void)arg;
    int fd = temp_file(0);
    unsigned char out[4096], in[4096];
    fill_pattern(out, sizeof out, 3);

    weft__fault_op(WEFT__OP_WRITE, 1000, 0, 1);
    EQ(weft_write(fd, out, sizeof out, 0), 1000);
    EQ(weft_write(fd, out + 1000, sizeof out - 1000, 1000), 3096);
    struct stat st;
    cr_assert(fstat(fd, &st) == 0);
    EQ(st.st_size, 4096);

    weft__fault_op(WEFT__OP_READ, 7, 0, 1);
    memset(in, 0, sizeof in);
    EQ(weft_read(fd, in, sizeof in, 0), 7);
    for (size_t i = 7; i < sizeof in; i++)
        cr_assert(in[i] == 0, "byte %zu written past the short read", i);
    EQ(weft_read(fd, in + 7, sizeof in - 7, 7), 4089);
    expect_pattern(in, sizeof in, 3);

    /* The async forms report the short count through the future. */
    weft__fault_op(WEFT__OP_READ, 5, 0, 1);
    weft_future *f = weft_read_async(fd, in, sizeof in, 0);
    cr_assert(f != NULL);
    EQ(weft_await(f), 5);
    weft_future_free(f);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fault, short_file_read_and_write_are_returned_as_such)
{
    EQ(run_scenario(short_file_main, NULL, NULL, NULL), 0);
}

/* A chain (weft_write_durable's write and sync): a failed write ends the call with its error and the
 * sync never runs; a capped write is returned as it is. Nothing is left in flight either way. */
static intptr_t chain_fault_main(void *arg)
{
    (void)arg;
    int fd = temp_file(0);
    unsigned char out[1000];
    fill_pattern(out, sizeof out, 8);
    weft__fault_op(WEFT__OP_WRITE, -EIO, 0, 1);
    EQ(weft_write_durable(fd, out, sizeof out, 0), -EIO);
    weft__fault_op(WEFT__OP_FSYNC, -EIO, 0, 1); /* the sync is a member, not the head: not faulted */
    EQ(weft_write_durable(fd, out, 10, 0), 10);
    weft__fault_clear();
    weft__fault_op(WEFT__OP_WRITE, 100, 0, 1);
    EQ(weft_write_durable(fd, out, sizeof out, 0), 100);
    EQ(weft_write_durable(fd, out + 100, sizeof out - 100, 100), 900);
    unsigned char in[1000];
    EQ(pread(fd, in, sizeof in, 0), 1000);
    expect_pattern(in, sizeof in, 8);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fault, a_failed_or_capped_write_of_a_durable_pair_is_returned_as_such)
{
    EQ(run_scenario(chain_fault_main, NULL, NULL, NULL), 0);
}

/* Many durable writes at once through a 2-entry SQ, each pair filling it: a pair goes in only whole,
 * after the queue before it has been flushed. A 1-entry SQ cannot hold a pair at all: the pairs run on
 * the executor, still in order. */
enum { CHAIN_WRITERS = 40 };
static int chain_fd;

static intptr_t chain_writer(void *arg)
{
    uint32_t i = (uint32_t)(uintptr_t)arg;
    for (int k = 0; k < 5; k++) {
        uint32_t v = i * 100 + (uint32_t)k;
        ssize_t r = weft_write_durable(chain_fd, &v, sizeof v, (int64_t)(i * 5 + (uint32_t)k) * 4);
        if (r != sizeof v)
            return r < 0 ? r : -EIO;
        if (k % 2 == 0)
            weft_nop();
    }
    return 0;
}

static intptr_t chain_tiny_ring_main(void *arg)
{
    (void)arg;
    chain_fd = temp_file(0);
    weft_task *ts[CHAIN_WRITERS];
    for (uint32_t i = 0; i < CHAIN_WRITERS; i++)
        ts[i] = spawn_bounded(chain_writer, (void *)(uintptr_t)i);
    for (uint32_t i = 0; i < CHAIN_WRITERS; i++)
        EQ(weft_join(ts[i]), 0);
    for (uint32_t i = 0; i < CHAIN_WRITERS * 5; i++) {
        uint32_t v = 0;
        EQ(pread(chain_fd, &v, sizeof v, (off_t)i * 4), sizeof v);
        EQ(v, (i / 5) * 100 + i % 5);
    }
    EQ(weft_close(chain_fd), 0);
    return 0;
}

Test(fault, durable_pairs_go_into_a_tiny_sq_only_whole_or_run_on_the_executor_when_it_cannot_hold_one)
{
    weft_config two = {.ring_entries = 2}, one = {.ring_entries = 1};
    weft_stats st;
    EQ(run_scenario(chain_tiny_ring_main, NULL, &two, &st), 0);
    if (on_io_uring()) {
        cr_assert(st.sq_full > 0, "a 2-entry SQ never filled");
        EQ(st.offloaded_ops, 0);
    }
    EQ(run_scenario(chain_tiny_ring_main, NULL, &one, &st), 0);
    /* One executor job a pair, on either backend. */
    cr_assert(st.offloaded_ops >= CHAIN_WRITERS * 5, "offloaded_ops = %" PRIu64, st.offloaded_ops);
}

#define LOOP_BYTES (256 * 1024)

struct stream {
    int fd;
    unsigned char *buf;
    ssize_t result;
};

static intptr_t send_all_task(void *arg)
{
    struct stream *s = arg;
    s->result = weft_send_all(s->fd, s->buf, LOOP_BYTES);
    return 0;
}

static intptr_t recv_exact_task(void *arg)
{
    struct stream *s = arg;
    s->result = weft_recv_exact(s->fd, s->buf, LOOP_BYTES);
    return 0;
}

static intptr_t loop_past_short_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    unsigned char *out = malloc(LOOP_BYTES), *in = calloc(1, LOOP_BYTES);
    cr_assert(out && in);
    fill_pattern(out, LOOP_BYTES, 4);
    /* Every send moves at most 1000 bytes and every recv at most 777: both loops must go round
     * hundreds of times, and an odd cap makes the pieces straddle each other. */
    weft__fault_op(WEFT__OP_SEND, 1000, 0, 100000);
    weft__fault_op(WEFT__OP_RECV, 777, 0, 100000);
    struct stream tx = {sv[0], out, 0}, rx = {sv[1], in, 0};
    weft_task *sender = spawn_bounded(send_all_task, &tx);
    weft_task *receiver = spawn_bounded(recv_exact_task, &rx);
    EQ(weft_join(sender), 0);
    EQ(weft_join(receiver), 0);
    EQ(tx.result, LOOP_BYTES);
    EQ(rx.result, LOOP_BYTES);
    expect_pattern(in, LOOP_BYTES, 4);
    expect_drained(sv[1]);
    free(out);
    free(in);
    close_pair(sv);
    return 0;
}

Test(fault, send_all_and_recv_exact_loop_past_short_counts)
{
    EQ(run_scenario(loop_past_short_main, NULL, NULL, NULL), 0);
}

static intptr_t async_short_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    unsigned char out[600], in[600];
    fill_pattern(out, sizeof out, 5);
    weft__fault_op(WEFT__OP_SEND, 200, 0, 1);
    weft_future *f = weft_send_async(sv[0], out, sizeof out, 0);
    cr_assert(f != NULL);
    EQ(weft_await(f), 200);
    weft_future_free(f);
    EQ(weft_send_all(sv[0], out + 200, 400), 400);

    weft__fault_op(WEFT__OP_RECV, 50, 0, 1);
    f = weft_recv_async(sv[1], in, sizeof in, 0);
    cr_assert(f != NULL);
    EQ(weft_await(f), 50);
    weft_future_free(f);
    EQ(weft_recv_exact(sv[1], in + 50, 550), 550);
    expect_pattern(in, sizeof in, 5);
    close_pair(sv);
    return 0;
}

Test(fault, async_send_and_recv_report_short_counts_through_their_futures)
{
    EQ(run_scenario(async_short_main, NULL, NULL, NULL), 0);
}

/* ---- an error completes the op: it reaches the caller, and what it did not move stays put -------- */

static intptr_t error_main(void *arg)
{
    int err = (int)(intptr_t)arg;
    int sv[2];
    pair(sv);
    unsigned char out[500], in[500];
    fill_pattern(out, sizeof out, 6);

    /* recv: the error, then every byte on the next call. */
    EQ(weft_send(sv[1], out, sizeof out, 0), 500);
    weft__fault_op(WEFT__OP_RECV, err, 0, 1);
    EQ(weft_recv(sv[0], in, sizeof in, 0), err);
    EQ(weft_recv_exact(sv[0], in, sizeof in), 500);
    expect_pattern(in, sizeof in, 6);

    /* send: the error, nothing went out; the next call sends. */
    weft__fault_op(WEFT__OP_SEND, err, 0, 1);
    EQ(weft_send(sv[0], out, 300, 0), err);
    expect_drained(sv[1]);
    EQ(weft_send(sv[0], out, 300, 0), 300);
    EQ(weft_recv_exact(sv[1], in, 300), 300);
    expect_pattern(in, 300, 6);

    /* The async forms deliver the error through the future. */
    EQ(weft_send(sv[1], out, 100, 0), 100);
    weft__fault_op(WEFT__OP_RECV, err, 0, 1);
    weft_future *f = weft_recv_async(sv[0], in, sizeof in, 0);
    cr_assert(f != NULL);
    EQ(weft_await(f), err);
    weft_future_free(f);
    weft__fault_op(WEFT__OP_SEND, err, 0, 1);
    f = weft_send_async(sv[0], out, 100, 0);
    cr_assert(f != NULL);
    EQ(weft_await(f), err);
    weft_future_free(f);
    expect_drained(sv[1]);
    EQ(weft_recv_exact(sv[0], in, 100), 100);
    expect_pattern(in, 100, 6);

    /* The loops: with nothing moved they return the error itself... */
    weft__fault_op(WEFT__OP_SEND, err, 0, 1);
    EQ(weft_send_all(sv[0], out, sizeof out), err);
    expect_drained(sv[1]);
    weft__fault_op(WEFT__OP_RECV, err, 0, 1);
    EQ(weft_recv_exact(sv[0], in, 10), err);

    /* ...and after some bytes, the count of what moved (the bytes are in the buffer); the task's
     * next call on the fd returns the error held back, and the one after carries on. */
    EQ(weft_send(sv[1], out, 100, 0), 100);
    weft__fault_op(WEFT__OP_RECV, err, 1, 1);
    memset(in, 0, sizeof in);
    EQ(weft_recv_exact(sv[0], in, 200), 100);
    expect_pattern(in, 100, 6);
    EQ(weft_send(sv[1], out + 100, 100, 0), 100);
    EQ(weft_recv(sv[0], in + 100, 100, 0), err);
    EQ(weft_recv_exact(sv[0], in + 100, 100), 100);
    expect_pattern(in, 200, 6);

    /* A send too big for the socket buffer goes out in part; the error on the next part makes
     * weft_send_all return exactly what went out, and that is what the peer receives. */
    int small = 4096;
    cr_assert(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    size_t big_len = 1 << 20;
    unsigned char *big = malloc(big_len), *got = calloc(1, big_len);
    cr_assert(big && got);
    fill_pattern(big, big_len, 7);
    weft__fault_op(WEFT__OP_SEND, err, 1, 1);
    ssize_t sent = weft_send_all(sv[0], big, big_len);
    cr_assert(sent > 0 && (size_t)sent < big_len, "weft_send_all: got %zd (%s), want a count in (0, %zu)", sent,
              res_name(sent), big_len);
    EQ(weft_recv_exact(sv[1], got, (size_t)sent), sent);
    expect_pattern(got, (size_t)sent, 7);
    expect_drained(sv[1]);
    EQ(weft_send(sv[0], out, 1, 0), err); /* the error weft_send_all held back */
    free(big);
    free(got);

    /* Still no task cancelled by any of it. */
    EQ(weft_nop(), 0);
    close_pair(sv);
    return 0;
}

Test(fault, eagain_reaches_the_caller_and_loses_nothing)
{
    EQ(run_scenario(error_main, (void *)(intptr_t)-EAGAIN, NULL, NULL), 0);
}

Test(fault, eintr_reaches_the_caller_and_loses_nothing)
{
    EQ(run_scenario(error_main, (void *)(intptr_t)-EINTR, NULL, NULL), 0);
}

Test(fault, econnreset_reaches_the_caller_and_loses_nothing)
{
    EQ(run_scenario(error_main, (void *)(intptr_t)-ECONNRESET, NULL, NULL), 0);
}

Test(fault, epipe_reaches_the_caller_and_loses_nothing)
{
    EQ(run_scenario(error_main, (void *)(intptr_t)-EPIPE, NULL, NULL), 0);
}

Test(fault, enomem_reaches_the_caller_and_loses_nothing)
{
    EQ(run_scenario(error_main, (void *)(intptr_t)-ENOMEM, NULL, NULL), 0);
}

/* The real thing: a TCP peer that resets (SO_LINGER 0 + close), and a unix peer that closed. */

static int tcp_pair(int *client, int *server)
{
    int lfd = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    cr_assert(lfd >= 0, "weft_tcp_listen: %s", res_name(lfd));
    *client = weft_tcp_connect("127.0.0.1", port_of(lfd));
    cr_assert(*client >= 0, "weft_tcp_connect: %s", res_name(*client));
    *server = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(*server >= 0, "weft_accept: %s", res_name(*server));
    return lfd;
}

static intptr_t real_reset_main(void *arg)
{
    (void)arg;
    int client, server;
    int lfd = tcp_pair(&client, &server);
    char buf[64] = "before the reset";
    EQ(weft_send(client, buf, 16, 0), 16);
    EQ(weft_recv_exact(server, buf, 16), 16);

    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert(setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    EQ(weft_close(client), 0); /* an RST, not a FIN */
    EQ(weft_recv(server, buf, sizeof buf, 0), -ECONNRESET);
    /* The connection is gone: a send fails without killing the process with SIGPIPE. */
    ssize_t s = weft_send(server, buf, sizeof buf, 0);
    cr_assert(s == -EPIPE || s == -ECONNRESET, "weft_send after reset: got %zd (%s)", s, res_name(s));
    EQ(weft_close(server), 0);
    EQ(weft_close(lfd), 0);

    int sv[2];
    pair(sv);
    EQ(weft_close(sv[1]), 0);
    EQ(weft_send(sv[0], buf, sizeof buf, 0), -EPIPE);
    EQ(weft_send_all(sv[0], buf, sizeof buf), -EPIPE);
    EQ(weft_recv(sv[0], buf, sizeof buf, 0), 0); /* end of stream */
    EQ(weft_close(sv[0]), 0);
    return 0;
}

Test(fault, a_real_peer_reset_gives_econnreset_and_a_closed_peer_epipe_without_sigpipe)
{
    EQ(run_scenario(real_reset_main, NULL, NULL, NULL), 0);
}

/* ---- EMFILE on accept: back off, keep the loop responsive, return a real connection ------------ */

struct ticker {
    volatile bool stop;
    unsigned ticks;
};

static intptr_t ticker_task(void *arg)
{
    struct ticker *tk = arg;
    while (!tk->stop) {
        int r = weft_sleep(MS(1));
        if (r < 0)
            return r;
        tk->ticks++;
    }
    return 0;
}

struct connector {
    uint16_t port;
    int fd;
};

static intptr_t connect_task(void *arg)
{
    struct connector *c = arg;
    c->fd = weft_tcp_connect("127.0.0.1", c->port);
    return c->fd < 0 ? c->fd : 0;
}

/* The accepted connection is real: bytes go both ways. */
static void exchange(int a, int b)
{
    char buf[8];
    EQ(weft_send(a, "ping", 4, 0), 4);
    EQ(weft_recv_exact(b, buf, 4), 4);
    cr_assert(memcmp(buf, "ping", 4) == 0);
    EQ(weft_send(b, "pong", 4, 0), 4);
    EQ(weft_recv_exact(a, buf, 4), 4);
    cr_assert(memcmp(buf, "pong", 4) == 0);
}

#define EMFILE_FAULTS 5

static intptr_t emfile_injected_main(void *arg)
{
    (void)arg;
    int lfd = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    cr_assert(lfd >= 0);
    struct connector c = {port_of(lfd), -1};
    weft_task *conn = spawn_bounded(connect_task, &c);
    struct ticker tk = {0};
    weft_task *tick = spawn_bounded(ticker_task, &tk);

    weft_stats before, after;
    EQ(weft_stats_get(&before), 0);
    weft__fault_op(WEFT__OP_ACCEPT, -EMFILE, 0, EMFILE_FAULTS);
    uint64_t t0 = weft_now();
    struct sockaddr_in peer;
    socklen_t peer_len = sizeof peer;
    int fd = weft_accept(lfd, (struct sockaddr *)&peer, &peer_len, SOCK_CLOEXEC);
    uint64_t took = weft_now() - t0;
    EQ(weft_stats_get(&after), 0);
    cr_assert(fd >= 0, "weft_accept: got %d (%s), want a connection", fd, res_name(fd));
    EQ(peer_len, sizeof peer);
    EQ(peer.sin_family, AF_INET);
    /* One wait per failure, doubling from 1 ms: 1+2+4+8+16 ms at least, not a spin. */
    EQ(after.accept_backoffs - before.accept_backoffs, EMFILE_FAULTS);
    cr_assert(took >= MS(31), "weft_accept returned after %" PRIu64 " ns: it did not back off", took);
    /* The loop stayed responsive meanwhile: the ticker kept ticking. */
    cr_assert(tk.ticks >= 10, "the ticker ticked %u times while accept backed off for %" PRIu64 " ms", tk.ticks,
              took / 1000000);
    tk.stop = true;
    EQ(weft_join(tick), 0);
    EQ(weft_join(conn), 0);
    exchange(c.fd, fd);
    EQ(weft_close(fd), 0);
    EQ(weft_close(c.fd), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(fault, emfile_on_accept_backs_off_keeps_the_loop_responsive_then_returns_a_real_connection)
{
    EQ(run_scenario(emfile_injected_main, NULL, NULL, NULL), 0);
}

/* The same without injection: the process really is out of fds until another task frees some. */
struct fd_hog {
    int *fds;
    int n;
    struct ticker *tk;
};

static intptr_t release_fds_later(void *arg)
{
    struct fd_hog *h = arg;
    int r = weft_sleep(MS(60));
    if (r < 0)
        return r;
    for (int i = 0; i < h->n; i++)
        close(h->fds[i]);
    h->n = 0;
    return 0;
}

static intptr_t emfile_real_main(void *arg)
{
    (void)arg;
    int lfd = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    cr_assert(lfd >= 0);
    struct connector c = {port_of(lfd), -1};
    weft_task *conn = spawn_bounded(connect_task, &c);
    EQ(weft_join(conn), 0); /* queued in the listener's backlog */
    struct ticker tk = {0};
    weft_task *tick = spawn_bounded(ticker_task, &tk);

    /* Lower the fd limit to a few above what is open and use those up: accept4 itself gets EMFILE. */
    struct rlimit old;
    cr_assert(getrlimit(RLIMIT_NOFILE, &old) == 0);
    struct rlimit low = {.rlim_cur = (rlim_t)count_open_fds() + 40, .rlim_max = old.rlim_max};
    cr_assert(setrlimit(RLIMIT_NOFILE, &low) == 0, "setrlimit: %s", strerror(errno));
    static int hog_fds[64];
    struct fd_hog hog = {hog_fds, 0, &tk};
    for (;;) {
        int fd = dup(lfd);
        if (fd < 0) {
            cr_assert(errno == EMFILE, "dup: %s", strerror(errno));
            break;
        }
        cr_assert(hog.n < 64, "the lowered limit did not bite");
        hog_fds[hog.n++] = fd;
    }
    weft_task *releaser = spawn_bounded(release_fds_later, &hog);

    weft_stats before, after;
    EQ(weft_stats_get(&before), 0);
    uint64_t t0 = weft_now();
    int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    uint64_t took = weft_now() - t0;
    EQ(weft_stats_get(&after), 0);
    cr_assert(setrlimit(RLIMIT_NOFILE, &old) == 0);
    cr_assert(fd >= 0, "weft_accept: got %d (%s), want a connection once fds were freed", fd, res_name(fd));
    cr_assert(after.accept_backoffs > before.accept_backoffs, "accept never backed off");
    /* 1+2+4+8+16+32 ms: at most a handful of attempts over the 60 ms the fds were held. */
    cr_assert(after.accept_backoffs - before.accept_backoffs <= 8, "%" PRIu64 " backoffs in %" PRIu64 " ms: a spin",
              after.accept_backoffs - before.accept_backoffs, took / 1000000);
    cr_assert(took >= MS(55), "accepted after %" PRIu64 " ms, before the fds were freed", took / 1000000);
    cr_assert(tk.ticks >= 10, "the ticker ticked only %u times in %" PRIu64 " ms", tk.ticks, took / 1000000);
    EQ(weft_join(releaser), 0);
    tk.stop = true;
    EQ(weft_join(tick), 0);
    exchange(c.fd, fd);
    EQ(weft_close(fd), 0);
    EQ(weft_close(c.fd), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(fault, real_emfile_on_accept_waits_until_an_fd_is_freed)
{
    EQ(run_scenario(emfile_real_main, NULL, NULL, NULL), 0);
}

/* Interrupting an accept that is backing off works like any other suspending call. */
static intptr_t accept_forever(void *arg)
{
    return weft_accept((int)(intptr_t)arg, NULL, NULL, SOCK_CLOEXEC);
}

static intptr_t emfile_cancel_main(void *arg)
{
    (void)arg;
    int lfd = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    cr_assert(lfd >= 0);
    struct connector c = {port_of(lfd), -1};
    EQ(weft_join(spawn_bounded(connect_task, &c)), 0);
    weft__fault_op(WEFT__OP_ACCEPT, -EMFILE, 0, 1000000);
    weft_task *acceptor = weft_spawn(accept_forever, (void *)(intptr_t)lfd);
    EQ(weft_sleep(MS(20)), 0);
    EQ(weft_cancel(acceptor), 0);
    EQ(weft_join(acceptor), -ECANCELED);
    weft__fault_clear();
    /* The queued connection was not consumed by the failed attempts. */
    int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(fd >= 0, "weft_accept: %s", res_name(fd));
    exchange(c.fd, fd);
    EQ(weft_close(fd), 0);
    EQ(weft_close(c.fd), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(fault, an_accept_backing_off_from_emfile_can_be_cancelled)
{
    EQ(run_scenario(emfile_cancel_main, NULL, NULL, NULL), 0);
}

/* ---- -ECANCELED the task did not ask for: its fd was closed under it ----------------------------- */

static intptr_t stray_ecanceled_main(void *arg)
{
    (void)arg;
    int sv[2];
    pair(sv);
    char buf[16];
    EQ(weft_send(sv[1], "abc", 3, 0), 3);
    weft__fault_op(WEFT__OP_RECV, -ECANCELED, 0, 1);
    EQ(weft_recv(sv[0], buf, sizeof buf, 0), -EBADF);
    weft__fault_op(WEFT__OP_SEND, -ECANCELED, 0, 1);
    EQ(weft_send(sv[0], buf, 3, 0), -EBADF);
    weft__fault_op(WEFT__OP_RECV, -ECANCELED, 0, 1);
    weft_future *f = weft_recv_async(sv[0], buf, sizeof buf, 0);
    cr_assert(f != NULL);
    EQ(weft_await(f), -EBADF);
    weft_future_free(f);
    weft__fault_op(WEFT__OP_NOP, -ECANCELED, 0, 1);
    EQ(weft_nop(), -EBADF);
    /* The task itself was not cancelled: its next calls work, and the data is intact. */
    EQ(weft_nop(), 0);
    EQ(weft_sleep(0), 0);
    EQ(weft_recv(sv[0], buf, sizeof buf, 0), 3);
    cr_assert(memcmp(buf, "abc", 3) == 0);
    close_pair(sv);
    return 0;
}

Test(fault, ecanceled_the_task_did_not_ask_for_is_reported_as_ebadf)
{
    EQ(run_scenario(stray_ecanceled_main, NULL, NULL, NULL), 0);
}

/* ---- the ring: a full SQ, an overflowing CQ, a failing io_uring_enter -------------------------- */

static intptr_t nop_task(void *arg)
{
    (void)arg;
    int r = weft_nop();
    if (r < 0)
        return r;
    return weft_nop() < 0 ? -EIO : 1;
}

struct poller {
    int fd;
};

static intptr_t poll_task(void *arg)
{
    struct poller *p = arg;
    int r = weft_poll(p->fd, POLLIN);
    return r < 0 ? r : (r & POLLIN) ? 1 : -EIO;
}

/* Runs n nop tasks (two nops each) at once and checks every one of them completed. */
static void many_nops(unsigned n)
{
    weft_task **ts = calloc(n, sizeof *ts);
    cr_assert(ts != NULL);
    for (unsigned i = 0; i < n; i++)
        ts[i] = spawn_bounded(nop_task, NULL);
    for (unsigned i = 0; i < n; i++)
        EQ(weft_join(ts[i]), 1);
    free(ts);
}

static intptr_t sq_full_main(void *arg)
{
    (void)arg;
    weft__fault_site(WEFT__FAULT_SQ_FULL, -1, 3, 40);
    many_nops(100);
    EQ(weft_nop(), 0);
    return 0;
}

Test(fault, a_full_sq_is_flushed_and_every_request_still_submitted)
{
    weft_stats st;
    EQ(run_scenario(sq_full_main, NULL, NULL, &st), 0);
    if (on_io_uring())
        cr_assert(st.sq_full >= 40, "sq_full = %" PRIu64 ", want >= 40", st.sq_full);
    else
        EQ(st.sq_full, 0); /* epoll has no SQ */
}

#define OVERFLOW_NOPS 400
#define OVERFLOW_POLLERS 300

static intptr_t cq_overflow_main(void *arg)
{
    (void)arg;
    /* Hundreds of nops through a 2-entry SQ: the SQ fills over and over. */
    many_nops(OVERFLOW_NOPS);

    /* Hundreds of requests completing at once into an 8-entry CQ: pollers of one pipe, all woken
     * by one byte. */
    int p[2];
    cr_assert(pipe2(p, O_CLOEXEC) == 0);
    struct poller pl = {p[0]};
    weft_task **ts = calloc(OVERFLOW_POLLERS, sizeof *ts);
    cr_assert(ts != NULL);
    for (unsigned i = 0; i < OVERFLOW_POLLERS; i++)
        ts[i] = spawn_bounded(poll_task, &pl);
    settle();
    EQ(write(p[1], "x", 1), 1);
    for (unsigned i = 0; i < OVERFLOW_POLLERS; i++)
        EQ(weft_join(ts[i]), 1);
    free(ts);
    EQ(weft_close(p[0]), 0);
    EQ(weft_close(p[1]), 0);
    return 0;
}

Test(fault, a_tiny_ring_overflows_its_cq_and_loses_no_completion)
{
    weft_config cfg = {.ring_entries = 2};
    weft_stats st;
    EQ(run_scenario(cq_overflow_main, NULL, &cfg, &st), 0);
    if (on_io_uring()) {
        cr_assert(st.cq_overflows > 0, "cq_overflows = 0: the CQ never overflowed, the test tests nothing");
        cr_assert(st.sq_full > 0, "sq_full = 0 with a 2-entry SQ");
    }
    /* Every request has exactly one completion: none was lost in the overflow. */
    cr_assert(st.completions >= 2 * OVERFLOW_NOPS + OVERFLOW_POLLERS, "completions = %" PRIu64, st.completions);
}

static intptr_t echo_task(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char buf[4096];
    for (;;) {
        ssize_t n = weft_recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return n;
        ssize_t s = weft_send_all(fd, buf, (size_t)n);
        if (s != n)
            return s < 0 ? s : -EIO;
    }
}

static intptr_t enter_fails_main(void *arg)
{
    int err = (int)(intptr_t)arg;
    int sv[2];
    pair(sv);
    weft_task *echo = spawn_bounded(echo_task, (void *)(intptr_t)sv[1]);
    /* Every other enter fails, for a long stretch: submissions, waits and reaping all see it. */
    weft__fault_site(WEFT__FAULT_ENTER, err, 0, 200);
    many_nops(50);
    unsigned char out[20000], in[20000];
    fill_pattern(out, sizeof out, 8);
    for (int round = 0; round < 10; round++) {
        EQ(weft_send_all(sv[0], out, sizeof out), sizeof out);
        memset(in, 0, sizeof in);
        EQ(weft_recv_exact(sv[0], in, sizeof in), sizeof in);
        expect_pattern(in, sizeof in, 8);
        EQ(weft_sleep(MS(1)), 0);
    }
    EQ(weft_shutdown(sv[0], SHUT_WR), 0);
    EQ(weft_join(echo), 0);
    close_pair(sv);
    return 0;
}

Test(fault, io_uring_enter_failing_with_ebusy_is_retried_and_loses_nothing)
{
    EQ(run_scenario(enter_fails_main, (void *)(intptr_t)-EBUSY, NULL, NULL), 0);
}

Test(fault, io_uring_enter_failing_with_eintr_is_retried_and_loses_nothing)
{
    EQ(run_scenario(enter_fails_main, (void *)(intptr_t)-EINTR, NULL, NULL), 0);
}

/* ---- failed allocations ------------------------------------------------------------------------- */

static bool ran;

static intptr_t mark_ran(void *arg)
{
    ran = true;
    return (intptr_t)arg;
}

static intptr_t task_alloc_main(void *arg)
{
    (void)arg;
    weft_stats before, after;
    EQ(weft_stats_get(&before), 0);
    weft__fault_site(WEFT__FAULT_TASK_ALLOC, -ENOMEM, 0, 1);
    NULL_WITH_ERRNO(weft_spawn(mark_ran, (void *)1), ENOMEM);
    EQ(weft_stats_get(&after), 0);
    EQ(after.tasks_spawned, before.tasks_spawned);
    EQ(after.tasks_live, before.tasks_live);
    weft_yield();
    cr_assert(!ran, "the task whose allocation failed ran anyway");
    /* The next spawn works. */
    weft_task *t = weft_spawn(mark_ran, (void *)2);
    cr_assert(t != NULL);
    EQ(weft_join(t), 2);
    cr_assert(ran);

    /* Named spawns and group spawns fail the same way. */
    weft__fault_site(WEFT__FAULT_TASK_ALLOC, -ENOMEM, 0, 1);
    NULL_WITH_ERRNO(weft_spawn_named("never", mark_ran, NULL), ENOMEM);
    weft_group *g = weft_group_new();
    cr_assert(g != NULL);
    weft__fault_site(WEFT__FAULT_TASK_ALLOC, -ENOMEM, 0, 1);
    NULL_WITH_ERRNO(weft_group_spawn(g, mark_ran, NULL), ENOMEM);
    cr_assert(weft_group_spawn(g, mark_ran, (void *)3) != NULL);
    EQ(weft_group_wait(g), 0);
    return 0;
}

Test(fault, a_failed_task_allocation_makes_spawn_return_null_with_enomem)
{
    EQ(run_scenario(task_alloc_main, NULL, NULL, NULL), 0);
}

static intptr_t stack_alloc_main(void *arg)
{
    (void)arg;
    ran = false;
    weft__fault_site(WEFT__FAULT_STACK_ALLOC, -ENOMEM, 0, 1);
    weft_task *t = weft_spawn(mark_ran, (void *)5);
    cr_assert(t != NULL, "spawn is lazy: the stack is taken when the task first runs");
    EQ(weft_join(t), -ENOMEM);
    cr_assert(!ran, "the task without a stack ran");

    /* A second task after the failure gets its stack. */
    t = weft_spawn(mark_ran, (void *)6);
    EQ(weft_join(t), 6);
    cr_assert(ran);

    /* Several tasks, one of which gets no stack: the others are unaffected and in order. */
    weft__fault_site(WEFT__FAULT_STACK_ALLOC, -ENOMEM, 2, 1);
    weft_task *ts[5];
    for (intptr_t i = 0; i < 5; i++)
        ts[i] = weft_spawn(mark_ran, (void *)(i + 10));
    for (intptr_t i = 0; i < 5; i++)
        EQ(weft_join(ts[i]), i == 2 ? -ENOMEM : i + 10);

    /* Awaiting the task's future gives the same. */
    weft__fault_site(WEFT__FAULT_STACK_ALLOC, -ENOMEM, 0, 1);
    t = weft_spawn(mark_ran, (void *)7);
    EQ(weft_await(weft_task_future(t)), -ENOMEM);
    EQ(weft_join(t), -ENOMEM);

    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    EQ(st.tasks_live, 1); /* only this one */
    return 0;
}

Test(fault, a_failed_stack_allocation_ends_the_task_with_enomem_without_running_it)
{
    EQ(run_scenario(stack_alloc_main, NULL, NULL, NULL), 0);
}

/* ---- an error after some bytes: the count now, the error on the next call ------------------------- */

/*
 * weft_recv_exact's contract: fewer bytes "when an error ... comes after some bytes arrived (they are
 * in buf; the next call sees the error)". A real reset is reported by the kernel once, to the call
 * that consumes it; after that the socket reads as a plain end of stream. So the next call must still
 * say -ECONNRESET, or a reset mid-message looks like a clean close.
 */
static intptr_t reset_after_some_bytes_main(void *arg)
{
    (void)arg;
    int client, server;
    int lfd = tcp_pair(&client, &server);
    unsigned char out[10], in[20];
    fill_pattern(out, sizeof out, 9);
    EQ(weft_send(client, out, sizeof out, 0), 10);
    EQ(weft_sleep(MS(5)), 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert(setsockopt(client, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    EQ(weft_close(client), 0);
    EQ(weft_sleep(MS(5)), 0);
    EQ(weft_recv_exact(server, in, sizeof in), 10); /* what arrived before the reset */
    expect_pattern(in, 10, 9);
    EQ(weft_recv(server, in, sizeof in, 0), -ECONNRESET); /* "the next call sees the error" */
    EQ(weft_close(server), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(fault, a_reset_after_some_bytes_cuts_recv_exact_short_and_the_next_call_sees_econnreset)
{
    EQ(run_scenario(reset_after_some_bytes_main, NULL, NULL, NULL), 0);
}

/* ---- a receive stream the kernel does not wake ---------------------------------------------------- */

/*
 * The kernel can leave an armed multishot receive asleep with bytes in its socket (recvstream.c). Here
 * the stream is armed as a request that never completes by itself: the read waiting on it must still
 * get its bytes, within the look's 1 to 2 s, with the stream restarted once. On epoll nothing is armed.
 */
static intptr_t asleep_main(void *arg)
{
    (void)arg;
    int ours, theirs;
    loopback_tcp_pair(&theirs, &ours);
    weft__fault_site(WEFT__FAULT_RECV_ASLEEP, 1, 0, 1);
    char buf[8];
    EQ(weft_recv(ours, buf, sizeof buf, MSG_DONTWAIT), -EAGAIN); /* arms it (asleep) */
    EQ(send(theirs, "wake", 4, 0), 4);
    uint64_t t0 = weft_now();
    EQ(weft_recv(ours, buf, sizeof buf, 0), 4);
    cr_assert(memcmp(buf, "wake", 4) == 0);
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    if (on_io_uring()) {
        EQ(st.recv_restarts, 1);
        cr_assert(weft_now() - t0 < SEC(3), "the stream was restarted after %" PRIu64 " ms",
                  (weft_now() - t0) / 1000000);
    } else {
        EQ(st.recv_restarts, 0);
    }
    EQ(weft_close(ours), 0);
    EQ(weft_close(theirs), 0);
    return 0;
}

Test(fault, a_receive_stream_the_kernel_leaves_asleep_is_restarted)
{
    EQ(run_checked(guarded_main, &(struct guarded){asleep_main, NULL}, NULL, NULL), 0);
}


/* ---- weft_loop_run's ladder: a run that cannot start leaves nothing behind ------------------------------------ */

/* The threads of this process, counted in /proc/self/task. */
static int count_threads(void)
{
    DIR *dir = opendir("/proc/self/task");
    cr_assert(dir != NULL, "opendir /proc/self/task: %s", strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

/* Whether this thread has an alternate signal stack (weft's overflow handler installs one). */
static bool altstack_on(void)
{
    stack_t ss;
    cr_assert(sigaltstack(NULL, &ss) == 0);
    return !(ss.ss_flags & SS_DISABLE);
}

/*
 * Each rung of weft_loop_run's ladder, failed in turn: the backend's start, the watchdog's thread (the
 * backend and the overflow handler are up by then), and main's task (everything is up). The run returns
 * the error with main never run and *result untouched, and leaves no thread, no signal stack, no fd, no
 * loop on the thread and no ownership: the same loop then runs from the same thread.
 */
Test(fault, a_loop_run_failing_at_any_step_leaves_nothing_running_and_the_loop_runs_after)
{
    unsetenv("WEFT_SLOW_MS"); /* the watchdog on, as by default */
    const struct {
        enum weft__fault_site site;
        int error;
    } rungs[] = {
        {WEFT__FAULT_BACKEND_START, -ENOMEM},
        {WEFT__FAULT_WATCHDOG_START, -EAGAIN},
        {WEFT__FAULT_TASK_ALLOC, -ENOMEM},
    };
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    intptr_t result = 0;
    EQ(weft_loop_run(l, mark_ran, (void *)7, &result), 0); /* a first run, so the later ones restart it */
    for (size_t i = 0; i < sizeof rungs / sizeof rungs[0]; i++) {
        int fds = count_open_fds(), threads = count_threads();
        bool alt = altstack_on();
        weft__fault_site(rungs[i].site, rungs[i].error, 0, 1);
        ran = false;
        result = 12345;
        EQ(weft_loop_run(l, mark_ran, (void *)7, &result), rungs[i].error);
        weft__fault_clear();
        cr_assert(!ran, "rung %zu: main ran", i);
        EQ(result, 12345);
        EQ(count_threads(), threads); /* no watchdog left running */
        EQ(altstack_on(), alt);       /* the overflow handler's stack taken down */
        EQ(count_open_fds(), fds);
        cr_assert(weft_loop_current() == NULL, "rung %zu: the thread still runs a loop", i);
        EQ(weft_loop_count(), 0);
        /* Nothing half-done stands in the way of the next run, on this thread. */
        EQ(weft_loop_run(l, mark_ran, (void *)7, &result), 0);
        cr_assert(ran);
        EQ(result, 7);
        EQ(count_threads(), threads);
    }
    weft_loop_free(l);
}
