/*
 * Sends and the loop's waiting: zero-copy sends above weft_config.send_zc_min (io_uring's SEND_ZC,
 * returning only after the kernel's notification), their fallback to plain sends, cancellation and
 * resets during them, what a send costs in SQEs, and the batched wait (min_wait_ns, wait_batch).
 * Every test runs on both backends; epoll ignores both options, so there the same scenarios pin that
 * nothing changes and the counters stay 0.
 */
#include "common.h"

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

TestSuite(send, .timeout = 60);

/* Reads from fd until EOF into a buffer it grows; the bytes and their count come back to the joiner. */
struct drain {
    int fd;
    unsigned char *buf;
    size_t len, cap;
};

static intptr_t drain_task(void *arg)
{
    struct drain *d = arg;
    for (;;) {
        if (d->cap - d->len < 65536) {
            d->cap = d->cap ? d->cap * 2 : 1 << 20;
            d->buf = realloc(d->buf, d->cap);
            cr_assert(d->buf != NULL);
        }
        ssize_t n = weft_recv(d->fd, d->buf + d->len, d->cap - d->len, 0);
        if (n <= 0)
            return n;
        d->len += (size_t)n;
    }
}

/* The sender is done: EOF to the reader, which must have got exactly len bytes of pattern seed. Then
 * both ends are closed. */
static void finish_stream(int sender, int receiver, weft_task *reader, struct drain *d, size_t len, uint32_t seed)
{
    EQ(weft_shutdown(sender, SHUT_WR), 0);
    EQ(weft_join(reader), 0);
    EQ(d->len, len);
    expect_pattern(d->buf, len, seed);
    free(d->buf);
    EQ(weft_close(sender), 0);
    EQ(weft_close(receiver), 0);
}

/* ---- zero copy above the threshold, plain below: the same bytes ---------------------------------- */

/* Send sizes around a 64 KiB threshold, each a random pattern of its own, sent with weft_send_all. */
static const size_t mixed_sizes[] = {1, 1000, 65535, 65536, 65537, 1 << 20, 3 * (1 << 20) + 17, 200000, 7};
enum { THRESHOLD = 65536 };

static intptr_t mixed_main(void *arg)
{
    size_t threshold = (size_t)(uintptr_t)arg; /* the loop's send_zc_min; 0: off */
    int client, server;
    loopback_tcp_pair(&client, &server);
    struct drain d = {.fd = server};
    weft_task *reader = weft_spawn(drain_task, &d);
    weft_stats before = stats_now();
    size_t total = 0, zc_sized = 0;
    for (size_t i = 0; i < sizeof mixed_sizes / sizeof mixed_sizes[0]; i++) {
        unsigned char *buf = malloc(mixed_sizes[i]);
        fill_pattern(buf, mixed_sizes[i], (uint32_t)i + 1);
        EQ(weft_send_all(client, buf, mixed_sizes[i]), mixed_sizes[i]);
        free(buf);
        total += mixed_sizes[i];
        zc_sized += threshold && mixed_sizes[i] >= threshold;
    }
    weft_stats after = stats_now();
    EQ(weft_shutdown(client, SHUT_WR), 0);
    EQ(weft_join(reader), 0);
    EQ(d.len, total);
    size_t at = 0;
    for (size_t i = 0; i < sizeof mixed_sizes / sizeof mixed_sizes[0]; i++) {
        expect_pattern(d.buf + at, mixed_sizes[i], (uint32_t)i + 1);
        at += mixed_sizes[i];
    }
    uint64_t zc = after.send_zc - before.send_zc, notifs = after.send_zc_notifs - before.send_zc_notifs;
    if (on_uring() && threshold) {
        /* Each send of 64 KiB or more goes zero-copy; a short send leaves a rest that may be smaller. */
        cr_assert(zc >= zc_sized, "send_zc moved by %" PRIu64 ", want at least %zu", zc, zc_sized);
        EQ(notifs, zc); /* every one waited for its notification */
        cr_assert(after.send_zc_copied - before.send_zc_copied <= notifs);
        EQ(after.send_zc_fallbacks - before.send_zc_fallbacks, 0);
    } else {
        EQ(zc, 0);
        EQ(notifs, 0);
    }
    free(d.buf);
    EQ(weft_close(client), 0);
    EQ(weft_close(server), 0);
    return 0;
}

Test(send, sends_above_and_below_the_zero_copy_threshold_deliver_the_same_bytes)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.send_zc_min = THRESHOLD;
    EQ(run_config(&cfg, mixed_main, (void *)(uintptr_t)THRESHOLD), 0);
}

Test(send, the_threshold_from_the_environment_applies_and_is_off_by_default)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    EQ(run_config(&cfg, mixed_main, (void *)(uintptr_t)0), 0);
    cr_assert(setenv("WEFT_SEND_ZC_MIN", "64k", 1) == 0);
    EQ(run_config(&cfg, mixed_main, (void *)(uintptr_t)THRESHOLD), 0);
    unsetenv("WEFT_SEND_ZC_MIN");
}

/* ---- the buffer is the caller's once weft_send returns ------------------------------------------- */

/*
 * 4 MiB is more than the receiver's window, so when a send's result comes in, much of what it took
 * is still queued in the sender's socket, on the caller's pages (on loopback a zero-copy skb's pages
 * are copied only when delivered): a send that returned before the kernel let go of them would
 * ship the bytes written over them.
 */
static intptr_t reuse_main(void *arg)
{
    (void)arg;
    int client, server;
    loopback_tcp_pair(&client, &server);
    enum { TOTAL = 4 << 20 };
    unsigned char *buf = malloc(TOTAL);
    fill_pattern(buf, TOTAL, 77);
    struct drain d = {.fd = server};
    weft_task *reader = weft_spawn(drain_task, &d);
    size_t done = 0;
    while (done < TOTAL) {
        ssize_t n = weft_send(client, buf + done, TOTAL - done, 0);
        cr_assert(n > 0, "weft_send: %zd (%s)", n, res_name(n));
        memset(buf + done, 0xEE, (size_t)n); /* the caller's again: reuse it at once */
        done += (size_t)n;
    }
    finish_stream(client, server, reader, &d, TOTAL, 77);
    free(buf);
    return 0;
}

Test(send, a_buffer_overwritten_right_after_weft_send_returns_reaches_the_peer_as_sent)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.send_zc_min = 1;
    EQ(run_config(&cfg, reuse_main, NULL), 0);
}

/* ---- fallback to plain sends ----------------------------------------------------------------------- */

/* A Unix stream socket has no zero copy: the first send finds out (EOPNOTSUPP) and goes plainly, and
 * weft remembers it for the fd, so the next send costs one SQE like any other. */
static intptr_t unix_fallback_main(void *arg)
{
    (void)arg;
    int sv[2];
    cr_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    struct drain d = {.fd = sv[1]};
    weft_task *reader = weft_spawn(drain_task, &d);
    enum { PIECE = 256 * 1024, PIECES = 4 };
    unsigned char *buf = malloc(PIECE * PIECES);
    fill_pattern(buf, PIECE * PIECES, 5);
    weft_stats before = stats_now();
    EQ(weft_send_all(sv[0], buf, PIECE), PIECE);
    weft_stats after_first = stats_now();
    for (int i = 1; i < PIECES; i++)
        EQ(weft_send_all(sv[0], buf + (size_t)i * PIECE, PIECE), PIECE);
    weft_stats after = stats_now();
    finish_stream(sv[0], sv[1], reader, &d, PIECE * PIECES, 5);
    EQ(after.send_zc - before.send_zc, 0);
    if (on_uring()) {
        cr_assert(after_first.send_zc_fallbacks - before.send_zc_fallbacks >= 1);
        /* The remembered refusal: no SEND_ZC is tried again, every piece is still a fallback. */
        cr_assert(after.send_zc_fallbacks - after_first.send_zc_fallbacks >= PIECES - 1);
        /* Only the refused attempt waited for a notification (the kernel posts one even then). */
        cr_assert(after.send_zc_notifs - before.send_zc_notifs <= 1);
    } else {
        EQ(after.send_zc_fallbacks - before.send_zc_fallbacks, 0);
    }
    free(buf);
    return 0;
}

Test(send, a_socket_without_zero_copy_falls_back_to_plain_sends_and_counts_them)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.send_zc_min = 4096;
    EQ(run_config(&cfg, unix_fallback_main, NULL), 0);
}

/* The kernel "lacks" SEND_ZC (WEFT_URING_NO_OPS=send_zc): every large send is a counted fallback. */
static intptr_t masked_main(void *arg)
{
    (void)arg;
    int client, server;
    loopback_tcp_pair(&client, &server);
    struct drain d = {.fd = server};
    weft_task *reader = weft_spawn(drain_task, &d);
    enum { LEN = 1 << 20 };
    unsigned char *buf = malloc(LEN);
    fill_pattern(buf, LEN, 9);
    weft_stats before = stats_now();
    ssize_t n = weft_send(client, buf, LEN, 0);
    cr_assert(n > 0);
    EQ(weft_send_all(client, buf + n, LEN - (size_t)n), LEN - (size_t)n);
    weft_stats after = stats_now();
    finish_stream(client, server, reader, &d, LEN, 9);
    EQ(after.send_zc - before.send_zc, 0);
    if (on_uring())
        cr_assert(after.send_zc_fallbacks - before.send_zc_fallbacks >= 1);
    else
        EQ(after.send_zc_fallbacks - before.send_zc_fallbacks, 0);
    free(buf);
    return 0;
}

Test(send, a_kernel_without_send_zc_gets_plain_sends_counted_as_fallbacks)
{
    cr_assert(setenv("WEFT_URING_NO_OPS", "send_zc", 1) == 0);
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.send_zc_min = 1;
    EQ(run_config(&cfg, masked_main, NULL), 0);
    unsetenv("WEFT_URING_NO_OPS");
}

/* ---- cancellation, deadlines and resets during a zero-copy send ------------------------------------ */

/* Sets small socket buffers, so that a few hundred KiB cannot all be taken at once. */
static void small_buffers(int sender, int receiver)
{
    int small = 16384;
    cr_assert(setsockopt(sender, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    cr_assert(setsockopt(receiver, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
}

/* A loopback pair whose server side advertised a small window from the handshake on (SO_RCVBUF on
 * the listener, which the accepted socket inherits): the client can queue far more than it can
 * deliver until the server reads. */
static void small_window_pair(int *client, int *server)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(lfd >= 0);
    int small = 4096;
    cr_assert(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(lfd, 1) == 0);
    *client = weft_tcp_connect("127.0.0.1", port_of(lfd));
    cr_assert(*client >= 0, "weft_tcp_connect: %s", res_name(*client));
    *server = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(*server >= 0, "weft_accept: %s", res_name(*server));
    EQ(weft_close(lfd), 0);
}

/* Fills fd's way to its peer with plain non-blocking sends until the kernel takes no more: what
 * comes next must wait for the peer to read. Returns the bytes sent (pattern seed 0's start). */
static size_t fill_socket(int fd, const unsigned char *pattern, size_t cap)
{
    size_t sent = 0;
    for (;;) {
        ssize_t n = send(fd, pattern + sent, cap - sent > 4096 ? 4096 : cap - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "send: %s", strerror(errno));
            return sent;
        }
        sent += (size_t)n;
        cr_assert(sent < cap, "the socket took %zu bytes without filling up", cap);
    }
}

enum { PATTERN_LEN = 8 << 20 };

struct zc_sender {
    int fd;
    unsigned char *buf; /* its own copy of the pattern from offset off */
    size_t off, len;
    uint64_t deadline; /* 0: none */
    bool all;          /* weft_send_all, and a send after it; else one weft_send, then a sleep */
    ssize_t res;       /* the interrupted send's result */
    ssize_t next;      /* the call after it: the sticky cancel, a passed deadline, a held error */
};

static intptr_t zc_sender_task(void *arg)
{
    struct zc_sender *s = arg;
    if (s->deadline)
        weft_deadline_push(s->deadline);
    s->res = s->all ? weft_send_all(s->fd, s->buf, s->len) : weft_send(s->fd, s->buf, s->len, 0);
    /* Returned: the kernel has let go of the buffer, whatever the result. */
    memset(s->buf, 0xEE, s->len);
    s->next = s->all ? weft_send(s->fd, s->buf, 1, 0) : weft_sleep(SEC(5));
    if (s->deadline)
        weft_deadline_pop();
    return 0;
}

struct interrupt_case {
    bool room;       /* room when the send starts, behind a small window: it takes bytes it cannot
                        deliver, then waits for their notification (on io_uring); without room
                        (socket full) it waits before any byte is taken */
    bool by_deadline;
};

static intptr_t interrupt_main(void *arg)
{
    const struct interrupt_case *c = arg;
    int client, server;
    unsigned char *pattern = malloc(PATTERN_LEN);
    fill_pattern(pattern, PATTERN_LEN, 31);
    size_t pre = 0;
    if (c->room) {
        small_window_pair(&client, &server);
    } else {
        loopback_tcp_pair(&client, &server);
        small_buffers(client, server);
        pre = fill_socket(client, pattern, PATTERN_LEN / 2);
    }

    struct zc_sender s = {.fd = client, .off = pre, .len = 1 << 20, .res = INT32_MIN};
    s.buf = malloc(s.len);
    memcpy(s.buf, pattern + pre, s.len);
    if (c->by_deadline)
        s.deadline = weft_now() + MS(20);
    weft_stats before = stats_now();
    weft_task *t = weft_spawn(zc_sender_task, &s);
    settle(); /* it is in its send (or, on epoll, past a short one and asleep): nobody reads */
    if (on_uring() && c->room)
        EQ(s.res, INT32_MIN); /* took bytes it cannot hand back: waits for their notification */
    if (!c->by_deadline)
        EQ(weft_cancel(t), 0);
    else
        while (weft_now() < s.deadline + MS(2))
            settle();
    settle();
    /* Now read: the send (cancelled, or timed out) ends once the kernel lets go of its pages. */
    struct drain d = {.fd = server};
    weft_task *reader = weft_spawn(drain_task, &d);
    EQ(weft_join(t), 0);
    int reason = c->by_deadline ? -ETIMEDOUT : -ECANCELED;
    if (on_uring() && c->room)
        cr_assert(s.res > 0, "the send waited out its notification, then gave %zd (%s)", s.res, res_name(s.res));
    cr_assert(s.res == reason || s.res > 0, "the interrupted send gave %zd (%s)", s.res, res_name(s.res));
    EQ(s.next, reason); /* sticky, or the deadline is still past */
    EQ(weft_shutdown(client, SHUT_WR), 0);
    EQ(weft_join(reader), 0);
    size_t want = pre + (s.res > 0 ? (size_t)s.res : 0);
    EQ(d.len, want);
    expect_pattern(d.buf, want, 31); /* not one 0xEE: the pages were not reused early */
    weft_stats after = stats_now();
    EQ(after.send_zc_notifs - before.send_zc_notifs, after.send_zc - before.send_zc);
    free(d.buf);
    free(s.buf);
    free(pattern);
    EQ(weft_close(client), 0);
    EQ(weft_close(server), 0);
    return 0;
}

Test(send, cancel_during_a_zero_copy_send_returns_after_the_kernel_lets_go_and_loses_no_byte)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.send_zc_min = 1;
    struct interrupt_case c = {.room = true};
    EQ(run_config(&cfg, interrupt_main, &c), 0);
}

Test(send, cancel_of_a_zero_copy_send_waiting_for_room_returns_ecanceled_and_sends_nothing_more)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.send_zc_min = 1;
    struct interrupt_case c = {.room = false};
    EQ(run_config(&cfg, interrupt_main, &c), 0);
}

Test(send, a_deadline_passing_during_a_zero_copy_send_gives_etimedout_or_the_bytes_sent)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.send_zc_min = 1;
    struct interrupt_case c = {.room = true, .by_deadline = true};
    EQ(run_config(&cfg, interrupt_main, &c), 0);
}

/* The peer reads a little, then resets: the sender gets an error, and the loop serves on. */
static intptr_t reset_main(void *arg)
{
    (void)arg;
    int client, server;
    loopback_tcp_pair(&client, &server);
    small_buffers(client, server);
    enum { LEN = 8 << 20 };
    unsigned char *buf = malloc(LEN);
    fill_pattern(buf, LEN, 3);
    struct zc_sender s = {.fd = client, .buf = buf, .len = LEN, .all = true};
    weft_stats before = stats_now();
    weft_task *t = weft_spawn(zc_sender_task, &s);
    unsigned char head[65536];
    EQ(weft_recv_exact(server, head, sizeof head), sizeof head);
    expect_pattern(head, sizeof head, 3);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert(setsockopt(server, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    EQ(weft_close(server), 0); /* RST */
    EQ(weft_join(t), 0);
    /* weft_send_all ends short (what went out before the reset) or fails; the call after it gets
     * the error. Neither kills the process with SIGPIPE. */
    cr_assert(s.res > 0 || s.res == -ECONNRESET || s.res == -EPIPE, "send during reset: %zd (%s)", s.res,
              res_name(s.res));
    cr_assert(s.next == -ECONNRESET || s.next == -EPIPE, "send after reset: %zd (%s)", s.next, res_name(s.next));
    weft_stats after = stats_now();
    EQ(after.send_zc_notifs - before.send_zc_notifs, after.send_zc - before.send_zc);
    EQ(weft_close(client), 0);
    free(buf);
    /* The loop goes on: a fresh connection carries bytes. */
    int c2, s2;
    loopback_tcp_pair(&c2, &s2);
    EQ(weft_send_all(c2, "still here", 10), 10);
    char got[10];
    EQ(weft_recv_exact(s2, got, sizeof got), 10);
    cr_assert(memcmp(got, "still here", 10) == 0);
    EQ(weft_close(c2), 0);
    EQ(weft_close(s2), 0);
    return 0;
}

Test(send, a_peer_reset_during_a_zero_copy_send_returns_an_error_and_the_loop_serves_on)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.send_zc_min = 1;
    EQ(run_config(&cfg, reset_main, NULL), 0);
}

/* ---- what consecutive sends cost -------------------------------------------------------------------- */

/* A reader outside weft (a thread with plain recv), so that the loop makes no request but the sends. */
struct thread_reader {
    int fd;
    size_t want, got;
    uint32_t seed;
    bool same;
};

static void *thread_reader_fn(void *arg)
{
    struct thread_reader *r = arg;
    unsigned char *buf = malloc(r->want);
    while (r->got < r->want) {
        ssize_t n = recv(r->fd, buf + r->got, r->want - r->got, 0);
        if (n <= 0)
            break;
        r->got += (size_t)n;
    }
    unsigned char *want = malloc(r->want);
    fill_pattern(want, r->want, r->seed);
    r->same = r->got == r->want && memcmp(buf, want, r->want) == 0;
    free(want);
    free(buf);
    return NULL;
}

/*
 * Sends issued in one loop turn on one connection: each is one SQE (plain or zero copy alike; a
 * zero-copy send then has two CQEs, its result and its notification), all handed over by the one
 * io_uring_enter of the turn. On epoll each is one send(2) attempt.
 */
static intptr_t sqe_count_main(void *arg)
{
    size_t piece = (size_t)(uintptr_t)arg;
    enum { SENDS = 8 };
    int client, server;
    loopback_tcp_pair(&client, &server);
    unsigned char *buf = malloc(piece * SENDS);
    fill_pattern(buf, piece * SENDS, 12);
    struct thread_reader r = {.fd = server, .want = piece * SENDS, .seed = 12};
    pthread_t th;
    cr_assert(pthread_create(&th, NULL, thread_reader_fn, &r) == 0);
    weft_future *fs[SENDS];
    settle(); /* the listener's multishot accept has ended: only the sends count below */
    weft_stats before = stats_now();
    for (int i = 0; i < SENDS; i++)
        fs[i] = weft_send_async(client, buf + (size_t)i * piece, piece, 0);
    intptr_t results[SENDS];
    EQ(weft_gather(fs, SENDS, results), 0);
    weft_stats after = stats_now();
    for (int i = 0; i < SENDS; i++) {
        EQ(results[i], piece); /* small enough for the socket to take whole */
        weft_future_free(fs[i]);
    }
    EQ(after.submissions - before.submissions, SENDS);
    if (on_uring()) {
        uint64_t zc = after.send_zc - before.send_zc;
        EQ(zc, piece >= 4096 ? SENDS : 0);
        EQ(after.completions - before.completions, SENDS + zc);
        cr_assert(after.syscalls - before.syscalls <= 2 + zc, "io_uring_enter %" PRIu64 " times for %d sends",
                  after.syscalls - before.syscalls, SENDS);
    }
    EQ(weft_shutdown(client, SHUT_WR), 0);
    pthread_join(th, NULL);
    cr_assert(r.same, "the reader got %zu of %zu bytes, or other bytes", r.got, r.want);
    free(buf);
    EQ(weft_close(client), 0);
    EQ(weft_close(server), 0);
    return 0;
}

Test(send, consecutive_sends_on_one_connection_in_one_turn_cost_one_sqe_each)
{
    unsetenv("WEFT_SUBMIT_BATCH"); /* the sends must wait for the turn's one enter */
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.send_zc_min = 4096;
    EQ(run_config(&cfg, sqe_count_main, (void *)(uintptr_t)512), 0);
    EQ(run_config(&cfg, sqe_count_main, (void *)(uintptr_t)8192), 0);
}

/* ---- the batched wait ---------------------------------------------------------------------------------- */

/* weft_loop_new(cfg) fails with EINVAL and a line on stderr that has text. */
static void refused(const weft_config *cfg, const char *text)
{
    stderr_capture_begin();
    errno = 0;
    weft_loop *l = weft_loop_new(cfg);
    int err = errno;
    const char *said = stderr_capture_end();
    cr_assert(l == NULL, "weft_loop_new accepted what it should refuse (%s)", text);
    EQ(err, EINVAL);
    CAPTURED_HAS(said, text);
}

Test(send, absurd_minimum_waits_and_batches_are_refused_with_einval_and_a_message)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.min_wait_ns = MS(10) + 1;
    refused(&cfg, "weft_config.min_wait_ns is 10000001");
    cfg.min_wait_ns = UINT64_MAX;
    refused(&cfg, "at most 10 ms");
    cfg.min_wait_ns = 0;
    cfg.wait_batch = 8;
    refused(&cfg, "wait_batch is 8 without min_wait_ns");
    cfg.min_wait_ns = 50000;
    cfg.ring_entries = 64;
    cfg.wait_batch = 257;
    refused(&cfg, "more than the completion queue's 256 entries");
    cfg = (weft_config)WEFT_CONFIG_INIT;
    cr_assert(setenv("WEFT_MIN_WAIT_US", "20000", 1) == 0);
    refused(&cfg, "WEFT_MIN_WAIT_US is \"20000\"");
    cr_assert(setenv("WEFT_MIN_WAIT_US", "50us", 1) == 0);
    refused(&cfg, "not a number");
    cr_assert(setenv("WEFT_MIN_WAIT_US", "50", 1) == 0);
    cr_assert(setenv("WEFT_WAIT_BATCH", "-3", 1) == 0);
    refused(&cfg, "WEFT_WAIT_BATCH");
    unsetenv("WEFT_WAIT_BATCH");
    unsetenv("WEFT_MIN_WAIT_US");
    /* The edges are fine: 10 ms, and a batch as large as the completion queue. */
    cfg.min_wait_ns = MS(10);
    cfg.ring_entries = 64;
    cfg.wait_batch = 256;
    stderr_capture_begin();
    weft_loop *l = weft_loop_new(&cfg);
    stderr_capture_end();
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    weft_loop_free(l);
}

/* N messages echoed over a few connections, every byte checked. */
enum { ECHO_CONNS = 4, ECHO_MSGS = 500 };

static intptr_t echo_peer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    for (;;) {
        ssize_t n = weft_recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            return n;
        if (weft_send_all(fd, buf, (size_t)n) != n)
            return -EIO;
    }
}

static intptr_t echo_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    uint32_t rng = (uint32_t)fd * 7919u + 1;
    unsigned char out[1500], in[1500];
    for (int i = 0; i < ECHO_MSGS; i++) {
        size_t len = 1 + xorshift(&rng) % sizeof out;
        fill_pattern(out, len, (uint32_t)(fd * 100000 + i));
        if (weft_send_all(fd, out, len) != (ssize_t)len)
            return -EIO;
        if (weft_recv_exact(fd, in, len) != (ssize_t)len)
            return -EIO;
        same_bytes(in, out, len, "an echoed message");
    }
    return ECHO_MSGS;
}

static intptr_t batched_echo_main(void *arg)
{
    (void)arg;
    int client[ECHO_CONNS], server[ECHO_CONNS];
    weft_task *peers[ECHO_CONNS], *clients[ECHO_CONNS];
    for (int i = 0; i < ECHO_CONNS; i++) {
        loopback_tcp_pair(&client[i], &server[i]);
        peers[i] = weft_spawn(echo_peer, (void *)(intptr_t)server[i]);
        clients[i] = weft_spawn(echo_client, (void *)(intptr_t)client[i]);
    }
    for (int i = 0; i < ECHO_CONNS; i++) {
        EQ(weft_join(clients[i]), ECHO_MSGS);
        EQ(weft_shutdown(client[i], SHUT_WR), 0);
        EQ(weft_join(peers[i]), 0);
        EQ(weft_close(client[i]), 0);
        EQ(weft_close(server[i]), 0);
    }
    return 0;
}

Test(send, an_echo_of_many_messages_is_exact_with_the_batched_wait_and_takes_batched_waits)
{
    unsetenv("WEFT_IDLE_POLL_US"); /* the loop must sleep to take a batched wait: a poll may find all */
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.min_wait_ns = 200000;
    cfg.wait_batch = 8;
    stderr_capture_begin();
    weft_loop *l = weft_loop_new(&cfg);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    struct limited_run b = {batched_echo_main, NULL, SEC(20)};
    intptr_t result = INTPTR_MIN;
    int rc = weft_loop_run(l, limited_main, &b, &result);
    const char *said = stderr_capture_end();
    EQ(rc, 0);
    EQ(result, 0);
    weft_stats st;
    EQ(weft_loop_stats(l, &st), 0);
    weft_loop_free(l);
    if (on_uring()) {
        cr_assert(st.batched_waits > 0, "no batched wait in %" PRIu64 " system calls", st.syscalls);
        cr_assert(strstr(said, "min_wait_ns is ignored") == NULL, "it said: %s", said);
    } else {
        EQ(st.batched_waits, 0);
        CAPTURED_HAS(said, "min_wait_ns is ignored on epoll");
    }
}

/* A kernel without IORING_FEAT_MIN_TIMEOUT (masked): the option is ignored with a note, and works. */
Test(send, without_the_kernel_feature_the_minimum_wait_is_ignored_with_a_note)
{
    cr_assert(setenv("WEFT_URING_NO_OPS", "min_timeout", 1) == 0);
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.min_wait_ns = 200000;
    stderr_capture_begin();
    weft_loop *l = weft_loop_new(&cfg);
    cr_assert(l != NULL);
    struct limited_run b = {batched_echo_main, NULL, SEC(20)};
    intptr_t result = INTPTR_MIN;
    int rc = weft_loop_run(l, limited_main, &b, &result);
    const char *said = stderr_capture_end();
    unsetenv("WEFT_URING_NO_OPS");
    EQ(rc, 0);
    EQ(result, 0);
    weft_stats st;
    EQ(weft_loop_stats(l, &st), 0);
    weft_loop_free(l);
    EQ(st.batched_waits, 0);
    CAPTURED_HAS(said, "min_wait_ns is ignored");
}

/* Timers under a long minimum wait still fire, and in their order (one due well within the minimum
 * wait, others after it), and a resolution from another thread still wakes the loop. */
struct timed {
    uint64_t ns;
    int id;
};

static intptr_t sleeper(void *arg)
{
    const struct timed *t = arg;
    EQ(weft_sleep(t->ns), 0);
    ev(t->id);
    return 0;
}

static void *resolve_later(void *arg)
{
    struct timespec ts = {0, 15 * 1000000};
    nanosleep(&ts, NULL);
    weft_future_resolve_from_thread(arg, 42);
    return NULL;
}

/* The sleeps are spawned in the order they end, each begun after the one before with a longer duration,
 * so their deadlines are in that order however late a task first runs (under TSan on a busy machine,
 * 15 ms between two tasks' first runs was seen). That timers fire by deadline rather than by the order
 * they were armed in is test_sleep.c's; this checks the minimum wait neither delays nor reorders them. */
static intptr_t timers_main(void *arg)
{
    (void)arg;
    static const struct timed order[] = {{100000, 1}, {MS(3), 2}, {MS(25), 3}, {MS(40), 4}};
    weft_task *ts[4];
    for (int i = 0; i < 4; i++)
        ts[i] = weft_spawn(sleeper, (void *)&order[i]);
    weft_future *f = weft_future_new();
    pthread_t th;
    cr_assert(pthread_create(&th, NULL, resolve_later, f) == 0);
    EQ(weft_await(f), 42);
    for (int i = 0; i < 4; i++)
        EQ(weft_join(ts[i]), 0);
    pthread_join(th, NULL);
    weft_future_free(f);
    EV_EXPECT(1, 2, 3, 4);
    return 0;
}

Test(send, timers_and_remote_wakes_keep_their_order_under_a_minimum_wait)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    cfg.min_wait_ns = 1000000; /* 1 ms, longer than the first sleep */
    cfg.wait_batch = 64;
    stderr_capture_begin(); /* epoll's note */
    EQ(run_config(&cfg, timers_main, NULL), 0);
    stderr_capture_end();
}
