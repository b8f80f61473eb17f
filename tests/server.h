/*
 * Running an example server as users run it, for the tests that speak to one (test_examples.c,
 * test_kv.c): started as its own process with --host 127.0.0.1 --port P --backend B (and the test's
 * own arguments), its "ready on <backend>" line awaited, its stderr collected, stopped by a signal;
 * and the plain-socket client side, every wait bounded.
 *
 * The backend is the one under test: WEFT_BACKEND, as tests/run and meson test set it. It is passed as
 * --backend and taken out of the server's environment, where it would override the flag, so the flag
 * is what chooses. Without WEFT_BACKEND the servers run with their default. A server whose test fails
 * is killed with it (PR_SET_PDEATHSIG) instead of outliving the run.
 */
#ifndef WEFT_TEST_SERVER_H
#define WEFT_TEST_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "common.h"

/* Generous for the sanitizer builds on a busy machine; a healthy server answers in milliseconds. */
#define IO_TIMEOUT_MS 5000
#define START_TIMEOUT_MS 15000
#define EXIT_TIMEOUT_MS 10000
#define ERR_CAP 65536

/* ---- running a server ---------------------------------------------------------------------------- */

struct server {
    const char *path;
    pid_t pid;
    uint16_t port;
    int out_fd, err_fd; /* read ends of its stdout and stderr; -1 once at end of file */
    char err[ERR_CAP];  /* what it wrote on stderr (the start of it), NUL-terminated */
    size_t err_len;
};

static inline const char *backend_under_test(void)
{
    const char *backend = getenv("WEFT_BACKEND");
    return backend && *backend ? backend : NULL;
}

static inline int ms_until(uint64_t deadline_ns)
{
    uint64_t now = mono_ns();
    return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
}

/* A port nobody listens on now: the kernel's pick for a socket bound to port 0, released again. */
static inline uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    cr_assert(bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0, "bind: %s", strerror(errno));
    cr_assert(getsockname(fd, (struct sockaddr *)&addr, &len) == 0, "getsockname: %s", strerror(errno));
    close(fd);
    return ntohs(addr.sin_port);
}

/* Appends what the non-blocking fd has now to buf (the first cap - 1 bytes are kept, NUL-terminated;
 * the rest is read and dropped). Returns false at end of file. */
static inline bool drain(int fd, char *buf, size_t *len, size_t cap)
{
    for (;;) {
        char sink[4096];
        bool keep = *len + 1 < cap;
        ssize_t n = read(fd, keep ? buf + *len : sink, keep ? cap - 1 - *len : sizeof sink);
        if (n > 0) {
            if (keep) {
                *len += (size_t)n;
                buf[*len] = '\0';
            }
            continue;
        }
        if (n == 0)
            return false;
        if (errno == EINTR)
            continue;
        cr_assert(errno == EAGAIN, "read from the server's pipe: %s", strerror(errno));
        return true;
    }
}

static inline void drain_stderr(struct server *s)
{
    if (s->err_fd >= 0 && !drain(s->err_fd, s->err, &s->err_len, sizeof s->err)) {
        close(s->err_fd);
        s->err_fd = -1;
    }
}

/* The servers' --threads: 1 unless a test asks for more before server_start; --handoff if asked. */
static unsigned server_threads = 1;
static bool server_handoff;
/* http_server's --root, when a test sets it before server_start. */
static const char *server_root;
/* More arguments for the server (NULL-terminated), or NULL: set by a test before server_start. */
static const char *const *server_args;

static inline pid_t spawn_server(const char *path, uint16_t port, int out_w, int err_w)
{
    char port_s[8], threads_s[8];
    snprintf(port_s, sizeof port_s, "%u", port);
    snprintf(threads_s, sizeof threads_s, "%u", server_threads);
    const char *backend = backend_under_test();
    char *argv[32] = {(char *)path, (char *)"--host", (char *)"127.0.0.1", (char *)"--port", port_s,
                      (char *)"--threads", threads_s};
    size_t argc = 7;
    if (server_handoff)
        argv[argc++] = (char *)"--handoff";
    if (server_root) {
        argv[argc++] = (char *)"--root";
        argv[argc++] = (char *)server_root;
    }
    if (backend) {
        argv[argc++] = (char *)"--backend";
        argv[argc++] = (char *)backend;
    }
    for (size_t i = 0; server_args && server_args[i]; i++) {
        cr_assert(argc + 1 < sizeof argv / sizeof argv[0], "too many server arguments");
        argv[argc++] = (char *)server_args[i];
    }
    argv[argc] = NULL;
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 1, sizeof *envp);
    cr_assert(envp != NULL);
    for (size_t i = 0, k = 0; i < n; i++)
        if (strncmp(environ[i], "WEFT_BACKEND=", 13) != 0)
            envp[k++] = environ[i];

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls until execve. The server dies with the test's process. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        if (dup2(out_w, STDOUT_FILENO) < 0 || dup2(err_w, STDERR_FILENO) < 0)
            _exit(127);
        /* What a shell gives a program: default dispositions, nothing blocked. The server must block
         * SIGTERM and SIGINT itself, or they kill it and the tests see the signal as its status. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGPIPE, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(path, argv, envp);
        _exit(127);
    }
    int fork_errno = errno;
    free(envp);
    cr_assert(pid > 0, "fork: %s", strerror(fork_errno));
    return pid;
}

/*
 * Waits up to timeout_ms for the server to exit, collecting its stderr meanwhile; returns its wait
 * status. A server still running then is killed and the test fails.
 */
static inline int server_wait(struct server *s, int timeout_ms, const char *why)
{
    uint64_t deadline = mono_ns() + MS(timeout_ms);
    for (;;) {
        int status;
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        cr_assert(r >= 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        if (r == s->pid) {
            s->pid = 0;
            drain_stderr(s); /* every writer has exited: what is left ends in end of file */
            if (s->out_fd >= 0)
                close(s->out_fd);
            s->out_fd = -1;
            return status;
        }
        int left = ms_until(deadline);
        if (left == 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            s->pid = 0;
            drain_stderr(s);
            cr_assert_fail("%s: %s did not exit within %d ms (killed); its stderr:\n%s", why, s->path,
                           timeout_ms, s->err);
        }
        struct pollfd pf = {.fd = s->err_fd, .events = POLLIN};
        poll(&pf, 1, left < 10 ? left : 10);
        drain_stderr(s);
    }
}

/*
 * Starts the server at path on a free loopback port and waits for its "ready" line. A port taken by
 * someone else between free_port and the server's bind is retried with another.
 */
static inline void server_start(struct server *s, const char *path)
{
    for (int attempt = 0;; attempt++) {
        memset(s, 0, sizeof *s);
        s->path = path;
        s->port = free_port();
        int out[2], err[2];
        cr_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
        /* Non-blocking for the test only: the server's ends stay blocking, as stdout and stderr usually are. */
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        fcntl(err[0], F_SETFL, O_NONBLOCK);
        s->pid = spawn_server(path, s->port, out[1], err[1]);
        close(out[1]);
        close(err[1]);
        s->out_fd = out[0];
        s->err_fd = err[0];

        char out_text[256];
        size_t out_len = 0;
        out_text[0] = '\0';
        bool out_open = true;
        uint64_t deadline = mono_ns() + MS(START_TIMEOUT_MS);
        while (out_open && !strchr(out_text, '\n')) {
            int left = ms_until(deadline);
            if (left == 0) {
                kill(s->pid, SIGKILL);
                server_wait(s, EXIT_TIMEOUT_MS, "killed for not starting");
                cr_assert_fail("%s printed no \"ready\" line within %d ms; stdout: \"%s\"; stderr:\n%s", path,
                               START_TIMEOUT_MS, out_text, s->err);
            }
            struct pollfd pf[2] = {{.fd = s->out_fd, .events = POLLIN}, {.fd = s->err_fd, .events = POLLIN}};
            poll(pf, 2, left);
            out_open = drain(s->out_fd, out_text, &out_len, sizeof out_text);
            drain_stderr(s);
        }
        if (strchr(out_text, '\n')) {
            /* "ready on <backend>": the one under test when there is one. */
            const char *b = backend_under_test();
            char want[64];
            snprintf(want, sizeof want, "ready on %s\n", b ? b : "");
            bool ok = b ? strncmp(out_text, want, strlen(want)) == 0
                        : strcmp(out_text, "ready on io_uring\n") == 0 || strcmp(out_text, "ready on epoll\n") == 0;
            cr_assert(ok, "%s: first line on stdout is \"%s\", want \"%s\"", path, out_text,
                      b ? want : "ready on io_uring|epoll");
            return;
        }
        /* Its stdout ended before "ready": it exited. */
        int status = server_wait(s, EXIT_TIMEOUT_MS, "exiting before ready");
        if (attempt < 4 && strstr(s->err, "in use"))
            continue;
        char status_s[96];
        describe_status(status, status_s, sizeof status_s);
        cr_assert_fail("%s %s before printing \"ready\"; stdout: \"%s\"; stderr:\n%s", path, status_s, out_text,
                       s->err);
    }
}

/* Sends sig and waits for the server to exit; asserts it exited with status 0. */
static inline void server_stop(struct server *s, int sig)
{
    cr_assert(kill(s->pid, sig) == 0, "kill: %s", strerror(errno));
    char why[64];
    snprintf(why, sizeof why, "after SIG%s", sigabbrev_np(sig));
    int status = server_wait(s, EXIT_TIMEOUT_MS, why);
    char status_s[96];
    describe_status(status, status_s, sizeof status_s);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s %s after SIG%s, want exit 0; its stderr:\n%s",
              s->path, status_s, sigabbrev_np(sig), s->err);
}

/* ---- clients ------------------------------------------------------------------------------------- */

/* A blocking loopback connection whose every call gives up after IO_TIMEOUT_MS. */
static inline int client_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000, .tv_usec = IO_TIMEOUT_MS % 1000 * 1000};
    int one = 1;
    cr_assert(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 &&
              setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0 &&
              setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0,
              "setsockopt: %s", strerror(errno));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r;
    while ((r = connect(fd, (struct sockaddr *)&addr, sizeof addr)) < 0 && errno == EINTR)
        ;
    cr_assert(r == 0, "connect to 127.0.0.1:%u: %s", port, strerror(errno));
    return fd;
}

static inline void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        cr_assert(n > 0, "send: %s", errno == EAGAIN ? "no room within the I/O timeout" : strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Closes with SO_LINGER 0: the kernel sends RST instead of FIN and drops what is unsent. */
static inline void reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0, "SO_LINGER: %s", strerror(errno));
    close(fd);
}

static inline void set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    cr_assert(flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0, "fcntl: %s", strerror(errno));
}

#endif /* WEFT_TEST_SERVER_H */
