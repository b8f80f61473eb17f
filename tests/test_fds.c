/*
 * The caller's descriptors as weft leaves them: a number closed with close(2) behind weft's back and
 * reused (or closed by another thread under a waiting task) never hangs a task; the file status
 * flags (O_NONBLOCK) of pipes, sockets and terminals are the same after weft's calls as before; and
 * a write to a pipe or socket whose reader is gone returns -EPIPE, raises no SIGPIPE, and leaves the
 * disposition, the thread's mask and a SIGPIPE the user raised as they were.
 *
 * Every scenario runs under a weft deadline (run_guarded, 10 s), so a call that would hang returns
 * -ETIMEDOUT and fails its assertion rather than the test hanging.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common.h"

TestSuite(fds, .timeout = 60);

/* ---- helpers ------------------------------------------------------------------------------------- */

static void make_socketpair(int sv[2])
{
    cr_assert(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", strerror(errno));
}

static void make_pipe(int p[2])
{
    cr_assert(pipe(p) == 0, "pipe: %s", strerror(errno));
}

/* Moves fd to the number want (closed now), so a test gets the reused number it needs whatever the
 * kernel handed out. */
static int renumber(int fd, int want)
{
    if (fd == want)
        return fd;
    cr_assert(dup2(fd, want) == want, "dup2(%d, %d): %s", fd, want, strerror(errno));
    close(fd);
    return want;
}

static int flags_of(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    cr_assert(fl >= 0, "F_GETFL of %d: %s", fd, strerror(errno));
    return fl;
}

/* Writes the bytes to fd with a plain write(2) after letting the loop turn a few times: by then the
 * task that reads them is waiting in the backend. */
struct late_write {
    int fd;
    const char *bytes;
};

static intptr_t late_write_main(void *arg)
{
    struct late_write *w = arg;
    settle();
    settle();
    size_t n = strlen(w->bytes);
    return write(w->fd, w->bytes, n) == (ssize_t)n ? 0 : -errno;
}

/* ---- 1. a number closed behind weft's back and reused -------------------------------------------- */

/* weft has registered a socketpair's (or a pipe's) numbers; a plain close and a new pair on the same
 * numbers: a weft_recv (weft_read) that waits on the new one gets the byte sent after it began waiting. */
static ssize_t read_byte(int fd, char *c, bool pipe)
{
    return pipe ? weft_read(fd, c, 1, -1) : weft_recv(fd, c, 1, 0);
}

static intptr_t reused_main(void *arg)
{
    bool pipe = arg != NULL;
    void (*make)(int[2]) = pipe ? make_pipe : make_socketpair;
    int fds[2];
    make(fds);
    EQ(write(fds[1], "a", 1), 1);
    char c = 0;
    EQ(read_byte(fds[0], &c, pipe), 1);
    int old0 = fds[0], old1 = fds[1];
    close(fds[0]);
    close(fds[1]);
    make(fds);
    fds[0] = renumber(fds[0], old0);
    fds[1] = renumber(fds[1], old1);
    struct late_write w = {fds[1], "b"};
    weft_task *writer = weft_spawn(late_write_main, &w);
    cr_assert(writer != NULL);
    EQ(read_byte(fds[0], &c, pipe), 1);
    EQ(c, 'b');
    EQ(weft_join(writer), 0);
    EQ(weft_close(fds[0]), 0);
    EQ(weft_close(fds[1]), 0);
    return 0;
}

Test(fds, socket_closed_behind_weft_and_reused_still_wakes)
{
    EQ(run_guarded(reused_main, NULL), 0);
}

Test(fds, pipe_closed_behind_weft_and_reused_still_wakes)
{
    EQ(run_guarded(reused_main, (void *)1), 0);
}

/* A number weft hands out anew (here to weft_socket) drops the state of its earlier file, closed
 * with close(2): a datagram socket on the number of a stream socket weft had registered. */
static intptr_t reused_by_weft_main(void *arg)
{
    (void)arg;
    int sv[2];
    make_socketpair(sv);
    EQ(write(sv[1], "a", 1), 1);
    char c = 0;
    EQ(weft_recv(sv[0], &c, 1, 0), 1);
    int old0 = sv[0];
    close(sv[0]);
    close(sv[1]);
    int fd = weft_socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert(fd >= 0, "weft_socket: %d (%s)", fd, res_name(fd));
    fd = renumber(fd, old0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0, "bind: %s", strerror(errno));
    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert(tx >= 0);
    sin.sin_port = htons(port_of(fd));
    cr_assert(connect(tx, (struct sockaddr *)&sin, sizeof sin) == 0, "connect: %s", strerror(errno));
    struct late_write w = {tx, "b"};
    weft_task *writer = weft_spawn(late_write_main, &w);
    cr_assert(writer != NULL);
    EQ(weft_recv(fd, &c, 1, 0), 1);
    EQ(c, 'b');
    EQ(weft_join(writer), 0);
    EQ(weft_close(fd), 0);
    close(tx);
    return 0;
}

Test(fds, number_reused_by_weft_socket_still_wakes)
{
    EQ(run_guarded(reused_by_weft_main, NULL), 0);
}

/* Another thread closes the fd a task waits on, then its peer. On io_uring the request holds the file
 * and sees the peer's end (0); on epoll the file has left the epoll set and the wait ends with -EBADF.
 * Either way it ends: a hang would be -ETIMEDOUT at the deadline. The closing thread starts only once
 * the waiting task has parked: a second task, which runs only then, raises `parked`. That ordering is
 * the scenario, and it tells ThreadSanitizer the recv came before the close. */
struct close_later {
    int sv[2];
    atomic_int parked;
};

static void *close_later(void *arg)
{
    struct close_later *c = arg;
    struct timespec pause = {0, 10 * 1000 * 1000};
    while (!atomic_load_explicit(&c->parked, memory_order_acquire))
        nanosleep(&pause, NULL);
    nanosleep(&pause, NULL);
    close(c->sv[0]);
    nanosleep(&pause, NULL);
    close(c->sv[1]);
    return NULL;
}

static intptr_t raise_parked(void *arg)
{
    struct close_later *c = arg;
    atomic_store_explicit(&c->parked, 1, memory_order_release);
    return 0;
}

static intptr_t closed_by_thread_main(void *arg)
{
    (void)arg;
    struct close_later c = {.parked = 0};
    make_socketpair(c.sv);
    pthread_t th;
    cr_assert(pthread_create(&th, NULL, close_later, &c) == 0);
    weft_task *raiser = weft_spawn(raise_parked, &c);
    cr_assert(raiser != NULL);
    char ch;
    ssize_t r = weft_recv(c.sv[0], &ch, 1, 0);
    pthread_join(th, NULL);
    EQ(weft_join(raiser), 0);
    cr_assert(r == 0 || r == -EBADF, "weft_recv on an fd closed by another thread: %zd (%s), want 0 or -EBADF", r,
              res_name(r));
    return 0;
}

Test(fds, fd_closed_by_another_thread_ends_the_wait)
{
    EQ(run_guarded(closed_by_thread_main, NULL), 0);
}

/* An fd weft never saw, closed before the call: a clear -EBADF, on both backends. */
static intptr_t closed_before_main(void *arg)
{
    (void)arg;
    int p[2];
    make_pipe(p);
    close(p[0]);
    close(p[1]);
    char c;
    EQ(weft_read(p[0], &c, 1, -1), -EBADF);
    EQ(weft_recv(p[0], &c, 1, 0), -EBADF);
    return 0;
}

Test(fds, closed_fd_gives_ebadf)
{
    EQ(run_guarded(closed_before_main, NULL), 0);
}

/* A file epoll cannot watch (/dev/null: EPERM from epoll_ctl) is always ready, as a regular file. */
static intptr_t devnull_main(void *arg)
{
    (void)arg;
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert(fd >= 0);
    char c[4];
    EQ(weft_write(fd, "abc", 3, -1), 3);
    EQ(weft_read(fd, c, sizeof c, -1), 0);
    EQ(weft_poll(fd, POLLIN) & POLLIN, POLLIN);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fds, unwatchable_device_reads_and_writes)
{
    EQ(run_guarded(devnull_main, NULL), 0);
}

/* ---- 2. the caller's file status flags ----------------------------------------------------------- */

/* A pipe read that has to wait, a write, readv and writev: the flags of both ends are as they were. */
static intptr_t pipe_flags_main(void *arg)
{
    int extra = (int)(intptr_t)arg; /* 0, or O_NONBLOCK set by the user beforehand */
    int p[2];
    make_pipe(p);
    for (int i = 0; i < 2; i++)
        cr_assert(fcntl(p[i], F_SETFL, flags_of(p[i]) | extra) == 0);
    int before[2] = {flags_of(p[0]), flags_of(p[1])};
    struct late_write w = {p[1], "xy"};
    weft_task *writer = weft_spawn(late_write_main, &w);
    char buf[8];
    EQ(weft_read(p[0], buf, sizeof buf, -1), 2);
    EQ(weft_join(writer), 0);
    EQ(weft_write(p[1], "abcd", 4, -1), 4);
    struct iovec in[2] = {{buf, 1}, {buf + 1, 1}};
    EQ(weft_readv(p[0], in, 2, -1), 2);
    struct iovec out[2] = {{"e", 1}, {"f", 1}};
    EQ(weft_writev(p[1], out, 2, -1), 2);
    EQ(weft_read(p[0], buf, sizeof buf, -1), 4);
    EQ(flags_of(p[0]), before[0]);
    EQ(flags_of(p[1]), before[1]);
    EQ(weft_close(p[0]), 0);
    EQ(weft_close(p[1]), 0);
    return 0;
}

Test(fds, pipe_flags_unchanged)
{
    EQ(run_guarded(pipe_flags_main, (void *)0), 0);
}

Test(fds, pipe_flags_unchanged_when_already_nonblocking)
{
    EQ(run_guarded(pipe_flags_main, (void *)(intptr_t)O_NONBLOCK), 0);
}

/* A blocking socketpair: recv that waits, send, and read/write on a socket. */
static intptr_t socketpair_flags_main(void *arg)
{
    (void)arg;
    int sv[2];
    make_socketpair(sv);
    int before[2] = {flags_of(sv[0]), flags_of(sv[1])};
    struct late_write w = {sv[1], "xy"};
    weft_task *writer = weft_spawn(late_write_main, &w);
    char buf[8];
    EQ(weft_recv(sv[0], buf, sizeof buf, 0), 2);
    EQ(weft_join(writer), 0);
    EQ(weft_send(sv[1], "ab", 2, 0), 2);
    EQ(weft_read(sv[0], buf, sizeof buf, -1), 2);
    EQ(weft_write(sv[0], "cd", 2, -1), 2);
    EQ(weft_recv(sv[1], buf, sizeof buf, 0), 2);
    same_bytes((unsigned char *)buf, (const unsigned char *)"cd", 2, "bytes written with weft_write");
    EQ(flags_of(sv[0]), before[0]);
    EQ(flags_of(sv[1]), before[1]);
    EQ(weft_close(sv[0]), 0);
    EQ(weft_close(sv[1]), 0);
    return 0;
}

Test(fds, socketpair_flags_unchanged)
{
    EQ(run_guarded(socketpair_flags_main, NULL), 0);
}

/* Blocking TCP sockets made with socket(2): a listener that weft_accept waits on, and a client that
 * weft_connect connects. */
static intptr_t tcp_flags_main(void *arg)
{
    (void)arg;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(lfd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(lfd, 4) == 0);
    sin.sin_port = htons(port_of(lfd));
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(cfd >= 0);
    int lbefore = flags_of(lfd), cbefore = flags_of(cfd);
    weft_future *acc = weft_accept_async(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(acc != NULL);
    settle(); /* the accept waits */
    EQ(weft_connect(cfd, (struct sockaddr *)&sin, sizeof sin), 0);
    intptr_t sfd = weft_await(acc);
    weft_future_free(acc);
    cr_assert(sfd >= 0, "weft_accept: %jd (%s)", (intmax_t)sfd, res_name(sfd));
    int sbefore = flags_of((int)sfd);
    EQ(weft_send(cfd, "ab", 2, 0), 2);
    char buf[4];
    EQ(weft_recv((int)sfd, buf, sizeof buf, 0), 2);
    EQ(flags_of(lfd), lbefore);
    EQ(flags_of(cfd), cbefore);
    EQ(flags_of((int)sfd), sbefore);
    EQ(sbefore & O_NONBLOCK, 0);
    EQ(weft_close((int)sfd), 0);
    EQ(weft_close(cfd), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(fds, blocking_tcp_sockets_flags_unchanged)
{
    EQ(run_guarded(tcp_flags_main, NULL), 0);
}

/* weft_socket gives the socket socket(2) gives, on both backends: blocking unless asked otherwise. */
static intptr_t weft_socket_flags_main(void *arg)
{
    (void)arg;
    int fd = weft_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    EQ(flags_of(fd) & O_NONBLOCK, 0);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(fds, weft_socket_is_blocking_as_asked)
{
    EQ(run_guarded(weft_socket_flags_main, NULL), 0);
}

/* A terminal (a pty), which has no per-call non-blocking read: a read that waits for a line. */
static intptr_t tty_flags_main(void *arg)
{
    (void)arg;
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert(master >= 0, "posix_openpt: %s", strerror(errno));
    cr_assert(grantpt(master) == 0 && unlockpt(master) == 0);
    int tty = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert(tty >= 0, "open %s: %s", ptsname(master), strerror(errno));
    int before = flags_of(tty), mbefore = flags_of(master);
    struct late_write w = {master, "hi\n"};
    weft_task *writer = weft_spawn(late_write_main, &w);
    char buf[16];
    EQ(weft_read(tty, buf, sizeof buf, -1), 3);
    same_bytes((unsigned char *)buf, (const unsigned char *)"hi\n", 3, "the line read from the terminal");
    EQ(weft_join(writer), 0);
    EQ(weft_write(tty, "ok\n", 3, -1), 3);
    EQ(flags_of(tty), before);
    EQ(flags_of(master), mbefore);
    EQ(weft_close(tty), 0);
    EQ(weft_close(master), 0);
    return 0;
}

Test(fds, terminal_flags_unchanged)
{
    EQ(run_guarded(tty_flags_main, NULL), 0);
}

/* ---- 3. SIGPIPE --------------------------------------------------------------------------------- */

static volatile sig_atomic_t handler_calls;

static void count_sigpipe(int sig)
{
    (void)sig;
    handler_calls++;
}

/* Whether two sets hold the same signals (sigset_t has more bytes than the kernel fills). */
static bool same_set(const sigset_t *a, const sigset_t *b)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(a, sig) != sigismember(b, sig))
            return false;
    return true;
}

static bool same_action(const struct sigaction *a, const struct sigaction *b)
{
    return a->sa_handler == b->sa_handler && a->sa_flags == b->sa_flags && same_set(&a->sa_mask, &b->sa_mask);
}

static bool sigpipe_pending(void)
{
    sigset_t pending;
    cr_assert(sigpending(&pending) == 0);
    return sigismember(&pending, SIGPIPE) == 1;
}

/* Every write form to fd, whose reader is gone: -EPIPE each time. */
static void writes_get_epipe(int fd)
{
    EQ(weft_write(fd, "abc", 3, -1), -EPIPE);
    struct iovec iov[2] = {{"a", 1}, {"b", 1}};
    EQ(weft_writev(fd, iov, 2, -1), -EPIPE);
    weft_future *f = weft_write_async(fd, "abc", 3, -1);
    cr_assert(f != NULL);
    EQ(weft_await(f), -EPIPE);
    weft_future_free(f);
    f = weft_writev_async(fd, iov, 2, -1);
    cr_assert(f != NULL);
    EQ(weft_await(f), -EPIPE);
    weft_future_free(f);
}

/* A pipe and a socketpair whose readers are gone, with the disposition given as arg. */
static intptr_t sigpipe_main(void *arg)
{
    void (*disposition)(int) = (void (*)(int))arg;
    struct sigaction set = {.sa_handler = disposition}, before, after;
    sigemptyset(&set.sa_mask);
    sigaddset(&set.sa_mask, SIGUSR2);
    cr_assert(sigaction(SIGPIPE, &set, &before) == 0);
    cr_assert(sigaction(SIGPIPE, NULL, &before) == 0);
    sigset_t mask_before, mask_after;
    pthread_sigmask(SIG_SETMASK, NULL, &mask_before);
    handler_calls = 0;

    int p[2];
    make_pipe(p);
    close(p[0]);
    writes_get_epipe(p[1]);
    EQ(weft_close(p[1]), 0);

    int sv[2];
    make_socketpair(sv);
    close(sv[1]);
    writes_get_epipe(sv[0]);
    EQ(weft_send(sv[0], "x", 1, 0), -EPIPE);
    EQ(weft_close(sv[0]), 0);

    cr_assert(sigaction(SIGPIPE, NULL, &after) == 0);
    cr_assert(same_action(&before, &after), "the SIGPIPE disposition changed: handler %p flags 0x%x, was %p 0x%x",
              (void *)after.sa_handler, (unsigned)after.sa_flags, (void *)before.sa_handler,
              (unsigned)before.sa_flags);
    pthread_sigmask(SIG_SETMASK, NULL, &mask_after);
    cr_assert(same_set(&mask_before, &mask_after), "the thread's signal mask changed");
    EQ(handler_calls, 0);
    cr_assert(!sigpipe_pending(), "a SIGPIPE is left pending");
    return 0;
}

Test(fds, write_to_closed_pipe_gives_epipe_with_default_sigpipe)
{
    EQ(run_guarded(sigpipe_main, (void *)SIG_DFL), 0);
}

Test(fds, write_to_closed_pipe_gives_epipe_with_a_handler)
{
    EQ(run_guarded(sigpipe_main, (void *)count_sigpipe), 0);
}

Test(fds, write_to_closed_pipe_gives_epipe_with_sig_ign)
{
    EQ(run_guarded(sigpipe_main, (void *)SIG_IGN), 0);
}

/* A SIGPIPE the user raised (blocked, so pending) is theirs: a weft_write's EPIPE does not take it. */
static intptr_t user_sigpipe_main(void *arg)
{
    (void)arg;
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    raise(SIGPIPE);
    cr_assert(sigpipe_pending());
    int p[2];
    make_pipe(p);
    close(p[0]);
    EQ(weft_write(p[1], "abc", 3, -1), -EPIPE);
    EQ(weft_close(p[1]), 0);
    cr_assert(sigpipe_pending(), "the user's own SIGPIPE was taken");
    struct timespec zero = {0, 0};
    EQ(sigtimedwait(&pipe_only, NULL, &zero), SIGPIPE);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

Test(fds, users_own_pending_sigpipe_is_kept)
{
    EQ(run_guarded(user_sigpipe_main, NULL), 0);
}
