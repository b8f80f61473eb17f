/*
 * weft_sendfile: a file's bytes to a socket, a pipe or another file, byte exact, from an offset or the
 * file position, short files and offsets past the end, errors, a non-blocking socket, a peer that
 * closes mid-file (no SIGPIPE: the default disposition would end the test's process), and a cancel or
 * deadline mid-file (the bytes sent are reported, exactly those arrive, and no pipe is left open).
 * On io_uring each chunk goes through a pipe as a pair of linked splices; on epoll it is sendfile(2)
 * on readiness.
 */
#include <netinet/tcp.h>
#include <pthread.h>
#include <poll.h>
#include <sys/stat.h>

#include "common.h"

TestSuite(sendfile, .timeout = 60);

static bool on_io_uring(void)
{
    return strcmp(weft_loop_backend(weft_loop_current()), "io_uring") == 0;
}

enum { SEED = 42 };

/* A file of n pattern bytes (fill_pattern(SEED)), unlinked. */
static int pattern_file(size_t n)
{
    int fd = temp_file(0);
    unsigned char *data = malloc(n ? n : 1);
    cr_assert(data);
    fill_pattern(data, n, SEED);
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(fd, data + done, n - done, (off_t)done);
        cr_assert(w > 0, "pwrite: %s", strerror(errno));
        done += (size_t)w;
    }
    free(data);
    return fd;
}

/* Asserts got[0..n) are the pattern file's bytes from offset. */
static void expect_file_bytes(const unsigned char *got, size_t n, size_t offset)
{
    unsigned char *want = malloc(offset + n + 1);
    cr_assert(want);
    fill_pattern(want, offset + n, SEED);
    same_bytes(got, want + offset, n, "bytes that came out of weft_sendfile");
    free(want);
}

/* A task reading a stream to its end (or to cap bytes) into its buffer. */
struct reader {
    int fd;
    unsigned char *buf;
    size_t cap, got;
    uint64_t delay_ns; /* a sleep before the first read, so the sender fills the socket first */
};

static intptr_t reader_task(void *arg)
{
    struct reader *r = arg;
    if (r->delay_ns)
        weft_sleep(r->delay_ns);
    while (r->got < r->cap) {
        ssize_t n = weft_recv(r->fd, r->buf + r->got, r->cap - r->got, 0);
        if (n <= 0)
            return n;
        r->got += (size_t)n;
    }
    return 0;
}

static struct reader *reader_new(int fd, size_t cap)
{
    struct reader *r = calloc(1, sizeof *r);
    cr_assert(r);
    r->fd = fd;
    r->cap = cap;
    r->buf = malloc(cap ? cap : 1);
    cr_assert(r->buf);
    return r;
}

static void reader_free(struct reader *r)
{
    free(r->buf);
    free(r);
}

/* ---- whole files and parts of them ------------------------------------------------------------------ */

enum { BIG = 3 * 1024 * 1024 + 123 }; /* several pipes' worth, and not a multiple of a page */

static intptr_t whole_main(void *arg)
{
    (void)arg;
    int in = pattern_file(BIG), a, b;
    loopback_tcp_pair(&a, &b);
    struct reader *r = reader_new(b, BIG + 10);
    weft_task *t = weft_spawn(reader_task, r);
    weft_stats st0, st1;
    EQ(weft_stats_get(&st0), 0);
    EQ(weft_sendfile(a, in, 0, BIG), BIG);
    EQ(weft_stats_get(&st1), 0);
    EQ(weft_shutdown(a, SHUT_WR), 0);
    EQ(weft_join(t), 0);
    EQ(r->got, BIG);
    expect_file_bytes(r->buf, BIG, 0);
    if (on_io_uring())
        EQ(st1.offloaded_ops - st0.offloaded_ops, 0); /* splices in the ring, no executor */
    EQ(lseek(in, 0, SEEK_CUR), 0); /* an offset neither uses nor moves the file position */
    reader_free(r);
    weft_close(a);
    weft_close(b);
    weft_close(in);
    return 0;
}

Test(sendfile, a_whole_file_arrives_byte_exact_over_tcp)
{
    EQ(run_guarded(whole_main, NULL), 0);
}

static intptr_t parts_main(void *arg)
{
    (void)arg;
    enum { SIZE = 200000 };
    int in = pattern_file(SIZE), p[2];
    cr_assert(pipe2(p, O_CLOEXEC) == 0);
    static unsigned char back[SIZE];
    /* From an offset; a length running past the end stops there (a short file); past the end, and
     * a length of 0, send nothing. Into a pipe, read back after each. */
    EQ(weft_sendfile(p[1], in, 1000, 5000), 5000);
    EQ(weft_read(p[0], back, 5000, -1), 5000);
    expect_file_bytes(back, 5000, 1000);
    EQ(weft_sendfile(p[1], in, SIZE - 300, 10000), 300);
    EQ(weft_read(p[0], back, 300, -1), 300);
    expect_file_bytes(back, 300, SIZE - 300);
    EQ(weft_sendfile(p[1], in, SIZE, 10), 0);
    EQ(weft_sendfile(p[1], in, SIZE + 4096, 10), 0);
    EQ(weft_sendfile(p[1], in, 0, 0), 0);
    /* At the file position, which it advances. */
    EQ(lseek(in, 7, SEEK_SET), 7);
    EQ(weft_sendfile(p[1], in, -1, 100), 100);
    EQ(lseek(in, 0, SEEK_CUR), 107);
    EQ(weft_sendfile(p[1], in, -1, 50), 50);
    EQ(lseek(in, 0, SEEK_CUR), 157);
    EQ(weft_read(p[0], back, 150, -1), 150);
    expect_file_bytes(back, 150, 7);
    /* Into a regular file: a copy. */
    int out = temp_file(0);
    EQ(weft_sendfile(out, in, 0, SIZE), SIZE);
    EQ(pread(out, back, SIZE, 0), SIZE);
    expect_file_bytes(back, SIZE, 0);
    weft_close(out);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(in);
    return 0;
}

Test(sendfile, parts_of_a_file_from_an_offset_or_the_position_stop_at_its_end)
{
    EQ(run_guarded(parts_main, NULL), 0);
}

/* ---- errors --------------------------------------------------------------------------------------------- */

static intptr_t errors_main(void *arg)
{
    (void)arg;
    int in = pattern_file(1000), p[2];
    cr_assert(pipe2(p, O_CLOEXEC) == 0);
    EQ(weft_sendfile(p[1], -1, 0, 10), -EBADF);
    EQ(weft_sendfile(-1, in, 0, 10), -EBADF);
    EQ(weft_sendfile(p[1], in, -2, 10), -EINVAL);
    int ro = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    cr_assert(ro >= 0);
    EQ(weft_sendfile(ro, in, 0, 10), -EBADF); /* out_fd not open for writing */
    int dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert(dir >= 0);
    EQ(weft_sendfile(p[1], dir, 0, 10), -EINVAL); /* not a file sendfile reads */
    close(dir);
    close(ro);
    /* Nothing of the refused calls reached the pipe. */
    char c;
    EQ(read(p[0], &c, 0), 0);
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    EQ(poll(&pfd, 1, 0), 0);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(in);
    return 0;
}

Test(sendfile, bad_fds_and_offsets_are_refused_with_errors_and_send_nothing)
{
    EQ(weft_sendfile(1, 0, 0, 1), -EPERM);
    EQ(run_guarded(errors_main, NULL), 0);
}

/* A non-blocking socket whose reader is slow: the sender waits for room rather than failing. */
static intptr_t nonblocking_main(void *arg)
{
    (void)arg;
    int in = pattern_file(BIG), a, b;
    loopback_tcp_pair(&a, &b);
    cr_assert(fcntl(a, F_SETFL, O_NONBLOCK) == 0);
    struct reader *r = reader_new(b, BIG);
    r->delay_ns = MS(30);
    weft_task *t = weft_spawn(reader_task, r);
    EQ(weft_sendfile(a, in, 0, BIG), BIG);
    EQ(weft_join(t), 0);
    EQ(r->got, BIG);
    expect_file_bytes(r->buf, BIG, 0);
    cr_assert(fcntl(a, F_GETFL) & O_NONBLOCK, "the socket's flags were changed");
    reader_free(r);
    weft_close(a);
    weft_close(b);
    weft_close(in);
    return 0;
}

Test(sendfile, a_non_blocking_socket_that_fills_up_is_waited_for_and_keeps_its_flags)
{
    EQ(run_guarded(nonblocking_main, NULL), 0);
}

/* ---- a peer that goes, a cancel, a deadline ---------------------------------------------------------- */

enum { HUGE = 16 * 1024 * 1024 }; /* more than loopback TCP's buffers hold (tcp_wmem + tcp_rmem) */

/* A peer that reads read_first bytes of what fd gets, then closes it. */
struct closer {
    int fd;
    size_t read_first;
};

static intptr_t read_some_then_close(void *arg)
{
    struct closer *c = arg;
    static unsigned char sink[65536];
    for (size_t got = 0; got < c->read_first;) {
        ssize_t n = weft_recv(c->fd, sink, sizeof sink, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    /* Unread data in the socket: the close sends a reset. */
    weft_close(c->fd);
    return 0;
}

static intptr_t peer_close_main(void *arg)
{
    (void)arg;
    int in = pattern_file(HUGE), a, b;
    loopback_tcp_pair(&a, &b);
    struct closer c = {b, 1 << 20};
    weft_task *t = weft_spawn(read_some_then_close, &c);
    ssize_t sent = weft_sendfile(a, in, 0, HUGE);
    EQ(weft_join(t), 0);
    cr_assert(sent == -EPIPE || sent == -ECONNRESET || (sent >= (ssize_t)(1 << 20) && sent < HUGE),
              "sendfile to a peer that closed: %zd (%s)", sent, res_name(sent));
    if (sent > 0) {
        /* The error that cut it short is held for the socket's next call. */
        ssize_t next = weft_send(a, "x", 1, 0);
        cr_assert(next == -EPIPE || next == -ECONNRESET, "the call after: %zd (%s)", next, res_name(next));
    }
    weft_close(a);
    weft_close(in);
    return 0;
}

Test(sendfile, a_peer_that_closes_mid_file_ends_it_with_the_count_or_epipe_and_no_sigpipe)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would end this process */
    EQ(run_guarded(peer_close_main, NULL), 0);
}

/* The same from a peer on another thread, which closes while sendfile(2) is inside a transfer: the
 * kernel raises SIGPIPE at the chunk that fails even when the call then returns the bytes sent before
 * it, so the signal must be taken back after a short count too, not only after -EPIPE. */
static void *racing_peer_main(void *arg)
{
    struct closer *p = arg;
    static unsigned char sink[65536];
    for (size_t got = 0; got < p->read_first;) {
        ssize_t n = recv(p->fd, sink, sizeof sink, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(p->fd); /* unread data in the socket: a reset, while the sender is streaming */
    return NULL;
}

enum { RACES = 64, RACE_FILE = 4 << 20 };

static intptr_t peer_thread_close_main(void *arg)
{
    (void)arg;
    int in = pattern_file(RACE_FILE);
    uint32_t seed = 7;
    for (int i = 0; i < RACES; i++) {
        int a, b;
        loopback_tcp_pair(&a, &b);
        /* The peer thread owns b: weft lets go of it first. */
        int peer_fd = dup(b);
        cr_assert(peer_fd >= 0);
        EQ(weft_close(b), 0);
        struct closer p = {peer_fd, 64 * 1024 + xorshift(&seed) % (RACE_FILE / 2)};
        pthread_t t;
        cr_assert(pthread_create(&t, NULL, racing_peer_main, &p) == 0);
        ssize_t sent = weft_sendfile(a, in, 0, RACE_FILE);
        pthread_join(t, NULL);
        cr_assert(sent == -EPIPE || sent == -ECONNRESET || (sent > 0 && sent <= RACE_FILE),
                  "sendfile %d to a peer that closed: %zd (%s)", i, sent, res_name(sent));
        weft_close(a);
    }
    weft_close(in);
    return 0;
}

Test(sendfile, a_peer_thread_closing_during_a_transfer_raises_no_sigpipe)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would end this process */
    EQ(run_guarded(peer_thread_close_main, NULL), 0);
}

/* Cancelled (or past a deadline) while the peer does not read: the call returns the bytes that went
 * out, and the peer, reading everything afterwards, gets exactly those, the file's first bytes. */
struct stuck {
    int out, in;
    ssize_t result;
    uint64_t deadline_ns; /* 0: no deadline (the test cancels) */
};

static intptr_t stuck_sender(void *arg)
{
    struct stuck *s = arg;
    if (s->deadline_ns)
        weft_deadline_push(weft_now() + s->deadline_ns);
    s->result = weft_sendfile(s->out, s->in, 0, HUGE);
    intptr_t next = weft_nop(); /* the interruption stays in force */
    if (s->deadline_ns)
        weft_deadline_pop();
    return next;
}

/* One interrupted sendfile: 1 if it was cut short mid-file and the peer then got exactly what it
 * reported, 0 if its deadline came before a first byte went out (a loaded host can take that long to
 * run it; the try proves nothing, and nothing must have arrived). */
static int interrupted_try(int in, uint64_t deadline_ns)
{
    int a, b;
    loopback_tcp_pair(&a, &b);
    struct stuck s = {a, in, 0, deadline_ns};
    weft_task *t = weft_spawn(stuck_sender, &s);
    if (!deadline_ns) {
        /* Bytes have arrived: the sendfile is mid-file, and soon stuck on the full socket. */
        cr_assert(weft_poll(b, POLLIN) & POLLIN);
        weft_sleep(MS(20));
        EQ(weft_cancel(t), 0);
    }
    EQ(weft_join(t), deadline_ns ? -ETIMEDOUT : -ECANCELED);
    int proved = 1;
    if (deadline_ns && s.result == -ETIMEDOUT)
        proved = 0;
    else
        cr_assert(s.result > 0 && s.result < HUGE, "an interrupted sendfile returned %zd (%s)", s.result,
                  res_name(s.result));
    /* Everything that went out, and nothing more, is waiting for the peer. */
    EQ(weft_shutdown(a, SHUT_WR), 0);
    size_t sent = proved ? (size_t)s.result : 0;
    struct reader *r = reader_new(b, sent + 4096);
    EQ(reader_task(r), 0);
    EQ(r->got, sent);
    expect_file_bytes(r->buf, r->got, 0);
    reader_free(r);
    weft_close(a);
    weft_close(b);
    return proved;
}

static intptr_t interrupted_main(void *arg)
{
    bool deadline = arg != NULL;
    int in = pattern_file(HUGE);
    /* A deadline of 300 ms, then longer ones if it came before the first byte. */
    int proved = 0;
    for (uint64_t ns = MS(300); !proved && ns <= MS(2400); ns *= 2)
        proved = interrupted_try(in, deadline ? ns : 0);
    cr_assert(proved, "every deadline, up to 2.4 s, came before the first byte went out");
    weft_close(in);
    return 0;
}

Test(sendfile, cancelled_mid_file_it_reports_the_bytes_sent_and_exactly_those_arrive)
{
    EQ(run_guarded(interrupted_main, NULL), 0);
}

Test(sendfile, past_its_deadline_mid_file_it_reports_the_bytes_sent_and_exactly_those_arrive)
{
    EQ(run_guarded(interrupted_main, (void *)1), 0);
}

/* Many sendfiles cancelled mid-file leave no pipe open: the fds after the loop are those before it,
 * and while it runs there is at most the one pipe a sendfile at a time needs (a pipe cut short is
 * closed, not kept). */
static int fds_at_start, fds_most;

static intptr_t many_cancelled_main(void *arg)
{
    (void)arg;
    int in = pattern_file(HUGE);
    for (int i = 0; i < 12; i++) {
        int a, b;
        loopback_tcp_pair(&a, &b);
        struct stuck s = {a, in, 0, false};
        weft_task *t = weft_spawn(stuck_sender, &s);
        weft_sleep(MS(10));
        EQ(weft_cancel(t), 0);
        EQ(weft_join(t), -ECANCELED);
        cr_assert(s.result > 0 || s.result == -ECANCELED, "cancelled sendfile %d: %zd", i, s.result);
        weft_close(a);
        weft_close(b);
        int now = count_open_fds();
        if (now > fds_most)
            fds_most = now;
    }
    weft_close(in);
    return 0;
}

Test(sendfile, cancelled_sendfiles_leak_no_pipe)
{
    fds_at_start = count_open_fds();
    EQ(run_guarded(many_cancelled_main, NULL), 0);
    EQ(count_open_fds(), fds_at_start);
    /* The loop's own (ring, wake eventfd), the file, and one pipe's two ends. */
    cr_assert(fds_most <= fds_at_start + 6, "%d fds open at most, %d at the start", fds_most, fds_at_start);
}

/* weft_close of the socket while a sendfile waits on it ends the sendfile with EBADF or the count. */
static intptr_t close_under_main(void *arg)
{
    (void)arg;
    int in = pattern_file(HUGE), a, b;
    loopback_tcp_pair(&a, &b);
    struct stuck s = {a, in, 0, false};
    weft_task *t = weft_spawn(stuck_sender, &s);
    weft_sleep(MS(40));
    EQ(weft_close(a), 0);
    EQ(weft_join(t), 0);
    cr_assert(s.result == -EBADF || (s.result > 0 && s.result < HUGE), "sendfile whose fd was closed: %zd (%s)",
              s.result, res_name(s.result));
    weft_close(b);
    weft_close(in);
    return 0;
}

Test(sendfile, closing_the_socket_under_a_waiting_sendfile_ends_it)
{
    EQ(run_guarded(close_under_main, NULL), 0);
}
