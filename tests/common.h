/*
 * Helpers shared by the Criterion tests: running a scenario in a loop (under a deadline), asserting
 * values with their errno names, recording the order of events, test data, sockets, reading what weft
 * says on stderr, and running the child helper. A helper two test files need lives here, once.
 *
 * Criterion runs every test in its own process, so the globals below start fresh in each test.
 */
#ifndef WEFT_TEST_COMMON_H
#define WEFT_TEST_COMMON_H

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

extern char **environ;

#define MS(x) ((uint64_t)(x) * 1000000ull)
#define SEC(x) ((uint64_t)(x) * 1000000000ull)

/* A name for a result: the errno text for -1..-4095, "value" otherwise (libc's, not weft's). */
static inline const char *res_name(intmax_t v)
{
    return (v < 0 && v > -4096) ? strerror((int)-v) : "value";
}

/* Asserts actual == expected for integers and results, printing both with their errno names. */
#define EQ(actual, expected)                                                                          \
    do {                                                                                              \
        intmax_t eq_a_ = (intmax_t)(actual), eq_e_ = (intmax_t)(expected);                            \
        cr_assert(eq_a_ == eq_e_, "%s: got %jd (%s), want %s = %jd (%s)", #actual, eq_a_,             \
                  res_name(eq_a_), #expected, eq_e_, res_name(eq_e_));                                \
    } while (0)

/* Asserts a pointer result is NULL and errno is the expected one. */
#define NULL_WITH_ERRNO(call, want_errno)                                                             \
    do {                                                                                              \
        errno = 0;                                                                                    \
        void *nw_p_ = (void *)(call);                                                                 \
        int nw_e_ = errno;                                                                            \
        cr_assert(nw_p_ == NULL, "%s: got %p, want NULL", #call, nw_p_);                              \
        cr_assert(nw_e_ == (want_errno), "%s: errno %d (%s), want %s", #call, nw_e_, strerror(nw_e_), \
                  #want_errno);                                                                       \
    } while (0)

/* ---- the order of events ----------------------------------------------------------------------- */

#define EV_MAX 8192
static int ev_log[EV_MAX];
static size_t ev_len;

static inline void ev(int e)
{
    cr_assert(ev_len < EV_MAX, "event log full");
    ev_log[ev_len++] = e;
}

static inline void ev_format(char *out, size_t cap, const int *evs, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 16 < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, i ? " %d" : "%d", evs[i]);
}

static inline void ev_expect_(const int *want, size_t n)
{
    char got_s[1024], want_s[1024];
    ev_format(got_s, sizeof got_s, ev_log, ev_len);
    ev_format(want_s, sizeof want_s, want, n);
    bool same = ev_len == n;
    for (size_t i = 0; same && i < n; i++)
        same = ev_log[i] == want[i];
    cr_assert(same, "events: got [%s], want [%s]", got_s, want_s);
}

/* Asserts the events recorded so far are exactly the arguments, in order. */
#define EV_EXPECT(...)                                                                                \
    do {                                                                                              \
        const int ev_want_[] = {__VA_ARGS__};                                                         \
        ev_expect_(ev_want_, sizeof ev_want_ / sizeof ev_want_[0]);                                   \
    } while (0)

/* ---- running a scenario ------------------------------------------------------------------------ */

/* Runs main_fn(arg) with weft_run, asserts the loop started, returns main's result. */
static inline intptr_t run(weft_fn main_fn, void *arg)
{
    intptr_t result = INTPTR_MIN;
    int rc = weft_run(main_fn, arg, &result);
    cr_assert(rc == 0, "weft_run: got %d (%s), want 0", rc, res_name(rc));
    return result;
}

/* A task body returning its argument. */
static inline intptr_t return_arg(void *arg)
{
    return (intptr_t)arg;
}

/* The backend this run is for: WEFT_BACKEND (meson registers each test once per backend), or the
 * default when it is unset. */
static inline const char *backend_env(void)
{
    const char *env = getenv("WEFT_BACKEND");
    return env && *env ? env : "io_uring";
}

/* ---- a scenario under a deadline --------------------------------------------------------------------- */

/* A task body and its argument, run by guarded_main under a 10 s deadline: whatever hangs in it fails
 * with -ETIMEDOUT instead of hanging the test. */
struct guarded {
    weft_fn fn;
    void *arg;
};

static inline intptr_t guarded_main(void *arg)
{
    struct guarded *g = arg;
    weft_deadline_push(weft_now() + SEC(10));
    intptr_t r = g->fn(g->arg);
    weft_deadline_pop();
    return r;
}

/* run() with main under a 10 s deadline. */
static inline intptr_t run_guarded(weft_fn fn, void *arg)
{
    struct guarded g = {fn, arg};
    return run(guarded_main, &g);
}

/* run() with main under a deadline limit_ns away: a call in it that would hang returns -ETIMEDOUT. */
struct limited_run {
    weft_fn fn;
    void *arg;
    uint64_t limit_ns;
};

static inline intptr_t limited_main(void *arg)
{
    struct limited_run *b = arg;
    weft_deadline_push(weft_now() + b->limit_ns);
    intptr_t r = b->fn(b->arg);
    weft_deadline_pop();
    return r;
}

static inline intptr_t run_limited(weft_fn main_fn, void *arg, uint64_t limit_ns)
{
    struct limited_run b = {main_fn, arg, limit_ns};
    return run(limited_main, &b);
}

/* Runs fn(arg) as main of a loop made from cfg, under a 20 s deadline; returns main's result. */
static inline intptr_t run_config(weft_config *cfg, weft_fn fn, void *arg)
{
    weft_loop *l = weft_loop_new(cfg);
    cr_assert(l != NULL, "weft_loop_new: %s", strerror(errno));
    struct limited_run b = {fn, arg, SEC(20)};
    intptr_t result = INTPTR_MIN;
    EQ(weft_loop_run(l, limited_main, &b, &result), 0);
    weft_loop_free(l);
    return result;
}

/* Whether this run is on io_uring (WEFT_BACKEND). */
static inline bool on_uring(void)
{
    return strcmp(backend_env(), "io_uring") == 0;
}

/* The running loop's counters. */
static inline weft_stats stats_now(void)
{
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    return st;
}

/*
 * Lets the loop turn: sleeps 2 ms, so it hands queued requests to the kernel and reaps what
 * completes, runs due callbacks and timers, and sees executor threads' results. To let the other
 * ready tasks run once (each up to its next suspension), weft_yield() is enough and costs no time.
 */
static inline void settle(void)
{
    int rc = weft_sleep(MS(2));
    cr_assert(rc == 0, "settle: weft_sleep got %d (%s)", rc, res_name(rc));
}

struct callback_run {
    void (*fn)(void *arg);
    void *arg;
};

static inline void callback_run_cb(weft_future *f, void *arg)
{
    (void)f;
    struct callback_run *c = arg;
    c->fn(c->arg);
}

static inline intptr_t callback_run_main(void *arg)
{
    weft_future *f = weft_future_new();
    cr_assert(f != NULL, "weft_future_new: %s", strerror(errno));
    EQ(weft_future_on_done(f, callback_run_cb, arg), 0);
    EQ(weft_future_resolve(f, 0), 0);
    settle();
    weft_future_free(f);
    return 0;
}

/* Runs fn(arg) in a callback of a running loop: on the loop's thread, but outside any task. */
static inline void run_in_callback(void (*fn)(void *arg), void *arg)
{
    struct callback_run c = {fn, arg};
    EQ(run(callback_run_main, &c), 0);
}

static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- what weft says on stderr, in this process ------------------------------------------------------ */

/*
 * stderr_capture_begin() sends fd 2 to a temporary file until stderr_capture_end(), which puts the
 * old stderr back and returns what was written (NUL-terminated, truncated to 16 KiB, valid until the
 * next capture). weft writes each message with one write(2), so nothing is lost in a buffer. For
 * messages of calls that return; what kills the process is read from a child (run_child below).
 */
static int stderr_saved_fd = -1;
static FILE *stderr_capture_file;
static char stderr_captured[16384];

static inline void stderr_capture_begin(void)
{
    cr_assert(stderr_saved_fd < 0, "stderr is already being captured");
    stderr_capture_file = tmpfile();
    cr_assert(stderr_capture_file != NULL, "tmpfile: %s", strerror(errno));
    stderr_saved_fd = dup(STDERR_FILENO);
    cr_assert(stderr_saved_fd >= 0, "dup(2): %s", strerror(errno));
    cr_assert(dup2(fileno(stderr_capture_file), STDERR_FILENO) == STDERR_FILENO, "dup2: %s", strerror(errno));
}

static inline const char *stderr_capture_end(void)
{
    cr_assert(stderr_saved_fd >= 0, "stderr is not being captured");
    dup2(stderr_saved_fd, STDERR_FILENO);
    close(stderr_saved_fd);
    stderr_saved_fd = -1;
    ssize_t got = pread(fileno(stderr_capture_file), stderr_captured, sizeof stderr_captured - 1, 0);
    stderr_captured[got > 0 ? got : 0] = '\0';
    fclose(stderr_capture_file);
    stderr_capture_file = NULL;
    return stderr_captured;
}

/* Asserts that text (a message, or the part of one that matters) is in what was captured. */
#define CAPTURED_HAS(captured, text)                                                                  \
    cr_assert(strstr((captured), (text)) != NULL, "stderr lacks \"%s\"; it has:\n%s", (text), (captured))

/* ---- data ------------------------------------------------------------------------------------------- */

static inline uint32_t xorshift(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* Bytes that differ from seed to seed and from offset to offset (xorshift32). */
static inline void fill_pattern(unsigned char *buf, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(xorshift(&s) >> 24);
}

/* Asserts two buffers are equal, naming the first differing offset. */
static inline void same_bytes(const unsigned char *got, const unsigned char *want, size_t n, const char *what)
{
    if (memcmp(got, want, n) == 0)
        return;
    size_t i = 0;
    while (got[i] == want[i])
        i++;
    cr_assert_fail("%s: first difference at byte %zu of %zu: got 0x%02x, want 0x%02x", what, i, n, got[i], want[i]);
}

/* Asserts buf holds the first n bytes of fill_pattern(seed). */
static inline void expect_pattern(const unsigned char *buf, size_t n, uint32_t seed)
{
    unsigned char *want = malloc(n ? n : 1);
    cr_assert(want != NULL);
    fill_pattern(want, n, seed);
    char what[48];
    snprintf(what, sizeof what, "the bytes of pattern %u", (unsigned)seed);
    same_bytes(buf, want, n, what);
    free(want);
}

/* ---- many requests in flight --------------------------------------------------------------------------- */

/* Waits for the n futures together (weft_gather), asserts each resolved with want (>= 0), frees them. */
static inline void gather_each(weft_future **fs, size_t n, intptr_t want)
{
    intptr_t *results = calloc(n ? n : 1, sizeof *results);
    cr_assert(results != NULL);
    int r = weft_gather(fs, n, results);
    cr_assert(r == 0, "weft_gather: %d (%s)", r, res_name(r));
    for (size_t i = 0; i < n; i++) {
        cr_assert(results[i] == want, "future %zu of %zu: got %jd (%s), want %jd", i, n, (intmax_t)results[i],
                  res_name(results[i]), (intmax_t)want);
        weft_future_free(fs[i]);
    }
    free(results);
}

/* ---- files ------------------------------------------------------------------------------------------- */

#include <ftw.h>
#include <sys/stat.h>

static inline int remove_tree_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Removes path and everything under it, as rm -rf does (symbolic links themselves, not their targets). */
static inline void remove_tree(const char *path)
{
    nftw(path, remove_tree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new empty file in $TMPDIR (else /tmp), already unlinked (it goes with its last fd), opened O_RDWR |
 * O_CLOEXEC | extra_flags (O_DIRECT, say). */
static inline int temp_file(int extra_flags)
{
    const char *base = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/weft-test-XXXXXX", base && *base ? base : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    cr_assert(fd >= 0, "mkostemp(%s): %s", path, strerror(errno));
    if (extra_flags) {
        int again = open(path, O_RDWR | O_CLOEXEC | extra_flags);
        cr_assert(again >= 0, "open(%s) with flags 0x%x: %s", path, (unsigned)extra_flags, strerror(errno));
        close(fd);
        fd = again;
    }
    unlink(path);
    return fd;
}

/* ---- sockets ------------------------------------------------------------------------------------------ */

/* The port a socket is bound to (IPv4 or IPv6). */
static inline uint16_t port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    cr_assert(getsockname(fd, (struct sockaddr *)&ss, &len) == 0, "getsockname: %s", strerror(errno));
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A connected TCP pair on 127.0.0.1, made from inside a task: the kernel completes the handshake into
 * the listener's backlog, so no accept needs to be pending. The listener is closed. */
static inline void loopback_tcp_pair(int *client, int *server)
{
    int lfd = weft_tcp_listen("127.0.0.1", 0, 4, 0);
    cr_assert(lfd >= 0, "weft_tcp_listen: %s", res_name(lfd));
    *client = weft_tcp_connect("127.0.0.1", port_of(lfd));
    cr_assert(*client >= 0, "weft_tcp_connect: %s", res_name(*client));
    *server = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(*server >= 0, "weft_accept: %s", res_name(*server));
    cr_assert(weft_close(lfd) == 0);
}

/* ---- the child helper ---------------------------------------------------------------------------- */

/* ---- running a program ------------------------------------------------------------------------ */

#include <poll.h>

/* Appends what fd has now to buf (keeping cap - 1 bytes, NUL-terminated, dropping the rest); false at
 * end of file. */
static inline bool program_drain(int fd, char *buf, size_t *used, size_t cap)
{
    char sink[4096];
    bool keep = *used + 1 < cap;
    ssize_t got = read(fd, keep ? buf + *used : sink, keep ? cap - 1 - *used : sizeof sink);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (got <= 0)
        return false;
    if (keep) {
        *used += (size_t)got;
        buf[*used] = '\0';
    }
    return true;
}

/*
 * Runs argv[0] (a path) with argv, in[0..in_len) on its stdin (in NULL: /dev/null), its stdout captured
 * into out and its stderr into err (each NUL-terminated and truncated to its cap; out NULL: stdout goes
 * to /dev/null), and returns its wait status. A program still running after timeout_ms is killed and
 * the test fails, with what it wrote. The program is a fresh process (posix_spawn) with the test's
 * environment.
 */
static inline int run_program_input(char *const argv[], const void *in, size_t in_len, char *out, size_t out_cap,
                                    char *err, size_t err_cap, int timeout_ms)
{
    int out_pipe[2] = {-1, -1}, err_pipe[2], in_pipe[2] = {-1, -1};
    cr_assert(pipe2(err_pipe, O_CLOEXEC) == 0 && (!out || pipe2(out_pipe, O_CLOEXEC) == 0) &&
                  (!in || pipe2(in_pipe, O_CLOEXEC) == 0),
              "pipe2: %s", strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
    if (out)
        posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
    else /* not the test's stdout: a child left behind must not hold the runner's output open */
        posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    if (in)
        posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
    else
        posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(err_pipe[1]);
    if (out)
        close(out_pipe[1]);
    /* A program that exits without reading all of its input must not kill the test with SIGPIPE (set after
     * the spawn, so the program itself starts with the default). */
    struct sigaction ignore = {.sa_handler = SIG_IGN}, sigpipe;
    if (in) {
        close(in_pipe[0]);
        fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
        sigaction(SIGPIPE, &ignore, &sigpipe);
    }
    cr_assert(rc == 0, "posix_spawn %s: %s", argv[0], strerror(rc));
    size_t out_used = 0, err_used = 0, in_sent = 0;
    if (out)
        out[0] = '\0';
    err[0] = '\0';
    bool out_open = out != NULL, err_open = true, in_open = in != NULL;
    if (in_open && in_len == 0) {
        close(in_pipe[1]);
        in_open = false;
    }
    uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (out_open || err_open) {
        uint64_t now = mono_ns();
        if (now >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            cr_assert_fail("%s did not end within %d ms (killed); stdout:\n%s\nstderr:\n%s", argv[0], timeout_ms,
                           out ? out : "", err);
        }
        struct pollfd pfds[3] = {{.fd = err_open ? err_pipe[0] : -1, .events = POLLIN},
                                 {.fd = out_open ? out_pipe[0] : -1, .events = POLLIN},
                                 {.fd = in_open ? in_pipe[1] : -1, .events = POLLOUT}};
        int left = (int)((deadline - now) / 1000000) + 1;
        if (poll(pfds, 3, left) < 0)
            cr_assert(errno == EINTR, "poll: %s", strerror(errno));
        if (err_open && pfds[0].revents)
            err_open = program_drain(err_pipe[0], err, &err_used, err_cap);
        if (out_open && pfds[1].revents)
            out_open = program_drain(out_pipe[0], out, &out_used, out_cap);
        if (in_open && pfds[2].revents) {
            ssize_t n = write(in_pipe[1], (const char *)in + in_sent, in_len - in_sent);
            if (n > 0)
                in_sent += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_sent == in_len) {
                close(in_pipe[1]); /* all given, or the program stopped reading: its end of file */
                in_open = false;
            }
        }
    }
    if (in_open)
        close(in_pipe[1]);
    if (in)
        sigaction(SIGPIPE, &sigpipe, NULL);
    close(err_pipe[0]);
    if (out)
        close(out_pipe[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        cr_assert(errno == EINTR, "waitpid: %s", strerror(errno));
    return status;
}

/* run_program_input with nothing on stdin. */
static inline int run_program(char *const argv[], char *out, size_t out_cap, char *err, size_t err_cap,
                              int timeout_ms)
{
    return run_program_input(argv, NULL, 0, out, out_cap, err, err_cap, timeout_ms);
}

#ifdef WEFT_TEST_CHILD
/*
 * Runs `weft-test-child scenario` with its stderr captured into err (NUL-terminated, truncated to cap).
 * Returns the wait status.
 */
static inline int run_child(const char *scenario, char *err, size_t cap)
{
    char *argv[] = {(char *)WEFT_TEST_CHILD, (char *)scenario, NULL};
    return run_program(argv, NULL, 0, err, cap, 120000);
}

static inline void describe_status(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exited with %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "status 0x%x", status);
}
#endif

/* ---- leaks of fds ------------------------------------------------------------------------------ */

#include <dirent.h>

/* The fds this process has open now, counted in /proc/self/fd (the directory's own fd left out):
 * a scenario that leaks one shows as a count that differs from the one taken before it. */
static inline int count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    cr_assert(dir != NULL, "opendir /proc/self/fd: %s", strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(dir))
            n++;
    closedir(dir);
    return n;
}

#endif /* WEFT_TEST_COMMON_H */
