/*
 * The selector backend as a fallback: a process whose seccomp filter refuses io_uring_setup gets an
 * epoll loop (with one line on stderr saying why) unless it named io_uring, in which case it gets the
 * error; the fallen-back loop does real network and file I/O. Also WEFT_BACKEND choosing epoll, and
 * WEFT_URING_NO_OPS sending chosen opcodes to the executor on io_uring.
 *
 * The seccomp scenarios run in a child process (this same binary, re-executed with
 * WEFT_FALLBACK_SCENARIO set; a constructor runs the scenario before Criterion starts), because a
 * seccomp filter cannot be removed and the child's stderr is what is checked. The child reports
 * failures on stdout and through its exit status.
 */
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common.h"

TestSuite(fallback, .timeout = 30);

#define SCENARIO_ENV "WEFT_FALLBACK_SCENARIO"

/* ---- the child side ------------------------------------------------------------------------------------ */

#if defined(__x86_64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_SELF AUDIT_ARCH_AARCH64
#else
#error "no seccomp audit arch for this architecture"
#endif

/* In the child: report a failed check on stdout and exit with the line number (as a small code). */
#define CHECK(cond, ...)                                                                              \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            printf("line %d: check failed: %s: ", __LINE__, #cond);                                   \
            printf(__VA_ARGS__);                                                                      \
            printf("\n");                                                                             \
            fflush(stdout);                                                                           \
            _exit(10);                                                                                \
        }                                                                                             \
    } while (0)

/* Makes io_uring_setup fail with EPERM for this process and its children, as a container's
 * seccomp profile does. Calls of another architecture's ABI are refused outright. */
static void refuse_io_uring(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_SELF, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0, "PR_SET_SECCOMP: %s", strerror(errno));
    /* The filter works: the raw system call is refused. */
    char params[120] = {0}; /* struct io_uring_params */
    errno = 0;
    long r = syscall(__NR_io_uring_setup, 4, params);
    CHECK(r == -1 && errno == EPERM, "io_uring_setup under the filter: %ld, errno %d", r, errno);
}

static uint16_t child_port_of(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0, "getsockname: %s", strerror(errno));
    return ntohs(sin.sin_port);
}

static intptr_t echo_once(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    ssize_t n = weft_recv(fd, buf, sizeof buf, 0);
    if (n > 0)
        n = weft_send_all(fd, buf, (size_t)n);
    weft_close(fd);
    return n;
}

/* A TCP echo round trip and a file written and read back, on whatever loop runs this. */
static intptr_t round_trips(void *arg)
{
    (void)arg;
    weft_deadline_push(weft_now() + SEC(10));
    int lfd = weft_tcp_listen("127.0.0.1", 0, 4, 0);
    CHECK(lfd >= 0, "weft_tcp_listen: %s", weft_strerror(lfd));
    int c = weft_tcp_connect("127.0.0.1", child_port_of(lfd));
    CHECK(c >= 0, "weft_tcp_connect: %s", weft_strerror(c));
    int s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    CHECK(s >= 0, "weft_accept: %s", weft_strerror(s));
    weft_task *echo = weft_spawn(echo_once, (void *)(intptr_t)s);
    CHECK(weft_send_all(c, "round trip", 10) == 10, "send_all");
    char buf[16] = {0};
    ssize_t n = weft_recv_exact(c, buf, 10);
    CHECK(n == 10 && memcmp(buf, "round trip", 10) == 0, "echo: %zd '%.10s'", n, buf);
    CHECK(weft_join(echo) == 10, "echo task");
    CHECK(weft_close(c) == 0 && weft_close(lfd) == 0, "close");

    char dir[PATH_MAX];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/weft-fallback-XXXXXX", base && *base ? base : "/tmp");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    char path[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/f", dir);
    static char data[65536], back[65536];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 31 + 7);
    int fd = weft_openat(AT_FDCWD, path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    CHECK(fd >= 0, "weft_openat: %s", weft_strerror(fd));
    CHECK(weft_write(fd, data, sizeof data, 0) == (ssize_t)sizeof data, "weft_write");
    CHECK(weft_fsync(fd, false) == 0, "weft_fsync");
    CHECK(weft_read(fd, back, sizeof back, 0) == (ssize_t)sizeof back, "weft_read");
    CHECK(memcmp(back, data, sizeof data) == 0, "file read back differs");
    CHECK(weft_close(fd) == 0, "close file");
    CHECK(weft_unlinkat(AT_FDCWD, path, 0) == 0, "unlink");
    CHECK(weft_unlinkat(AT_FDCWD, dir, AT_REMOVEDIR) == 0, "rmdir");
    weft_stats st;
    CHECK(weft_stats_get(&st) == 0, "stats");
    weft_deadline_pop();
    return (intptr_t)st.offloaded_ops;
}

/* io_uring refused by seccomp: named, it is an error; not named, epoll with one line saying why. */
static int scenario_refused(void)
{
    refuse_io_uring();
    unsetenv("WEFT_BACKEND"); /* tests/run sets it; it would override what the loops below ask for */

    weft_config named = {.backend = "io_uring"};
    errno = 0;
    weft_loop *l = weft_loop_new(&named);
    CHECK(l == NULL && errno == EPERM, "weft_loop_new(io_uring) under seccomp: %p, errno %d (%s)", (void *)l, errno,
          strerror(errno));

    l = weft_loop_new(NULL);
    CHECK(l != NULL, "weft_loop_new(NULL) under seccomp: %s", strerror(errno));
    CHECK(strcmp(weft_loop_backend(l), "epoll") == 0, "backend %s", weft_loop_backend(l));
    const char *why = weft_loop_fallback_reason(l);
    CHECK(why != NULL && strstr(why, "EPERM") != NULL, "fallback reason: %s", why ? why : "(null)");
    printf("reason: %s\n", why);
    weft_stats st;
    CHECK(weft_loop_stats(l, &st) == 0 && st.backend_fallbacks == 1, "backend_fallbacks %" PRIu64,
          st.backend_fallbacks);

    intptr_t offloaded = -1;
    int rc = weft_loop_run(l, round_trips, NULL, &offloaded);
    CHECK(rc == 0, "weft_loop_run: %s", weft_strerror(rc));
    CHECK(offloaded > 0, "the file calls of the fallen-back loop were not run on the executor (%jd)",
          (intmax_t)offloaded);
    CHECK(strcmp(weft_loop_backend(l), "epoll") == 0, "backend after running: %s", weft_loop_backend(l));
    weft_loop_free(l);
    return 0;
}

/* WEFT_BACKEND=io_uring names it too: the refusal is an error, for weft_run as well. */
static int scenario_refused_named_by_env(void)
{
    refuse_io_uring();
    setenv("WEFT_BACKEND", "io_uring", 1);
    errno = 0;
    weft_loop *l = weft_loop_new(NULL);
    CHECK(l == NULL && errno == EPERM, "weft_loop_new with WEFT_BACKEND=io_uring: %p, errno %d", (void *)l, errno);
    intptr_t result = 12345;
    int rc = weft_run(round_trips, NULL, &result);
    CHECK(rc == -EPERM, "weft_run: %d (%s)", rc, weft_strerror(rc));
    CHECK(result == 12345, "main ran: %jd", (intmax_t)result);
    return 0;
}

/* Choosing epoll is not a fallback: nothing is said, nothing is counted. */
static int scenario_refused_epoll_chosen(void)
{
    refuse_io_uring();
    setenv("WEFT_BACKEND", "epoll", 1);
    weft_loop *l = weft_loop_new(NULL);
    CHECK(l != NULL, "weft_loop_new: %s", strerror(errno));
    CHECK(strcmp(weft_loop_backend(l), "epoll") == 0, "backend %s", weft_loop_backend(l));
    CHECK(weft_loop_fallback_reason(l) == NULL, "fallback reason %s", weft_loop_fallback_reason(l));
    intptr_t offloaded = -1;
    CHECK(weft_loop_run(l, round_trips, NULL, &offloaded) == 0, "weft_loop_run");
    CHECK(offloaded > 0, "offloaded %jd", (intmax_t)offloaded);
    weft_stats st;
    CHECK(weft_loop_stats(l, &st) == 0 && st.backend_fallbacks == 0, "backend_fallbacks %" PRIu64,
          st.backend_fallbacks);
    weft_loop_free(l);
    return 0;
}

/* Each loop of a weft_run_cores: which backend it runs, and whether it counted the fallback. */
static atomic_int cores_on_epoll, cores_fallbacks;

static intptr_t cores_backend_main(void *arg)
{
    (void)arg;
    if (strcmp(weft_loop_backend(weft_loop_current()), "epoll") == 0)
        atomic_fetch_add(&cores_on_epoll, 1);
    weft_stats st;
    CHECK(weft_stats_get(&st) == 0, "stats");
    atomic_fetch_add(&cores_fallbacks, (int)st.backend_fallbacks);
    /* A wait in the fallen-back backend (round_trips, with its static buffers, is for one loop). */
    return weft_sleep(MS(1));
}

/* io_uring refused under weft_run_cores: every loop runs on epoll, and the fallback is said (and
 * counted) once, by the loop that chose, not by each of them. */
static int scenario_refused_cores(void)
{
    refuse_io_uring();
    unsetenv("WEFT_BACKEND");
    int rc = weft_run_cores(3, cores_backend_main, NULL, NULL);
    CHECK(rc == 0, "weft_run_cores: %s", weft_strerror(rc));
    CHECK(atomic_load(&cores_on_epoll) == 3, "%d of 3 loops on epoll", atomic_load(&cores_on_epoll));
    CHECK(atomic_load(&cores_fallbacks) == 1, "%d loops counted a fallback", atomic_load(&cores_fallbacks));
    return 0;
}

__attribute__((constructor)) static void scenario_entry(void)
{
    const char *scenario = getenv(SCENARIO_ENV);
    if (!scenario)
        return;
    /* Never outlive the test that started us, nor hang. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(20);
    int rc = 101;
    if (strcmp(scenario, "refused") == 0)
        rc = scenario_refused();
    else if (strcmp(scenario, "refused_named_by_env") == 0)
        rc = scenario_refused_named_by_env();
    else if (strcmp(scenario, "refused_epoll_chosen") == 0)
        rc = scenario_refused_epoll_chosen();
    else if (strcmp(scenario, "refused_cores") == 0)
        rc = scenario_refused_cores();
    fflush(stdout);
    exit(rc);
}

/* ---- the parent side ---------------------------------------------------------------------------------- */

struct child_run {
    int status;
    char out[8192], err[8192];
};

/* Re-executes this binary for scenario with stdout and stderr captured. */
static void run_scenario(const char *scenario, struct child_run *cr)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
    self[n] = '\0';
    int out[2], err[2];
    cr_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
    setenv(SCENARIO_ENV, scenario, 1);
    char *argv[] = {self, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, self, &fa, NULL, argv, environ);
    unsetenv(SCENARIO_ENV);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    cr_assert(rc == 0, "posix_spawn: %s", strerror(rc));
    struct pollfd pfd[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
    char *dst[2] = {cr->out, cr->err};
    size_t used[2] = {0, 0}, cap = sizeof cr->out;
    int open_pipes = 2;
    while (open_pipes) {
        if (poll(pfd, 2, -1) < 0) {
            cr_assert(errno == EINTR, "poll: %s", strerror(errno));
            continue;
        }
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd < 0 || !pfd[i].revents)
                continue;
            char sink[1024];
            char *to = used[i] + 1 < cap ? dst[i] + used[i] : sink;
            size_t room = used[i] + 1 < cap ? cap - 1 - used[i] : sizeof sink;
            ssize_t got = read(pfd[i].fd, to, room);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                close(pfd[i].fd);
                pfd[i].fd = -1;
                open_pipes--;
            } else if (to != sink) {
                used[i] += (size_t)got;
            }
        }
    }
    cr->out[used[0]] = '\0';
    cr->err[used[1]] = '\0';
    while (waitpid(pid, &cr->status, 0) < 0)
        cr_assert(errno == EINTR, "waitpid: %s", strerror(errno));
}

static void expect_clean_exit(const struct child_run *cr, const char *scenario)
{
    char how[64];
    describe_status(cr->status, how, sizeof how);
    cr_assert(WIFEXITED(cr->status) && WEXITSTATUS(cr->status) == 0, "scenario %s %s\nstdout:\n%s\nstderr:\n%s",
              scenario, how, cr->out, cr->err);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(fallback, io_uring_refused_by_seccomp_falls_back_to_epoll_with_one_line_unless_named)
{
    struct child_run cr;
    run_scenario("refused", &cr);
    expect_clean_exit(&cr, "refused");
    /* One line, from the fallback only (not from the loop that named io_uring): weft's prefix, the
     * refusal with its errno name, and the backend used instead. */
    cr_assert(count_lines(cr.err) == 1, "stderr should be one line, got:\n%s", cr.err);
    cr_assert(strncmp(cr.err, "weft: ", 6) == 0, "stderr: %s", cr.err);
    cr_assert(strstr(cr.err, "io_uring") && strstr(cr.err, "EPERM") && strstr(cr.err, "epoll"),
              "the line does not name the refusal and the fallback: %s", cr.err);
    cr_assert(strstr(cr.out, "reason: ") != NULL);
    /* weft_loop_fallback_reason returns the same text as the line says. */
    char reason[512];
    snprintf(reason, sizeof reason, "%s", strstr(cr.out, "reason: ") + 8);
    reason[strcspn(reason, "\n")] = '\0';
    cr_assert(reason[0] && strstr(cr.err, reason) != NULL, "reason '%s' is not in the line '%s'", reason, cr.err);
}

Test(fallback, io_uring_refused_under_run_cores_puts_every_loop_on_epoll_and_says_so_once)
{
    struct child_run cr;
    run_scenario("refused_cores", &cr);
    expect_clean_exit(&cr, "refused_cores");
    cr_assert(count_lines(cr.err) == 1, "stderr should be one line for three loops, got:\n%s", cr.err);
    cr_assert(strstr(cr.err, "io_uring") && strstr(cr.err, "EPERM") && strstr(cr.err, "using epoll"),
              "the line does not name the refusal and the fallback: %s", cr.err);
}

Test(fallback, io_uring_named_by_weft_backend_and_refused_is_an_error_for_loop_new_and_run)
{
    struct child_run cr;
    run_scenario("refused_named_by_env", &cr);
    expect_clean_exit(&cr, "refused_named_by_env");
    cr_assert(strstr(cr.err, "using epoll") == NULL, "a named backend fell back: %s", cr.err);
}

Test(fallback, epoll_chosen_where_io_uring_is_refused_is_silent_and_not_a_fallback)
{
    struct child_run cr;
    run_scenario("refused_epoll_chosen", &cr);
    expect_clean_exit(&cr, "refused_epoll_chosen");
    cr_assert(cr.err[0] == '\0', "stderr should be empty, got:\n%s", cr.err);
}

/* ---- choosing the backend in-process --------------------------------------------------------------- */

Test(fallback, weft_backend_epoll_gives_an_epoll_loop_whatever_the_config_asks)
{
    setenv("WEFT_BACKEND", "epoll", 1);
    weft_config cfg = {.backend = "io_uring"};
    weft_loop *l = weft_loop_new(&cfg);
    cr_assert(l, "weft_loop_new: %s", strerror(errno));
    cr_assert_str_eq(weft_loop_backend(l), "epoll");
    cr_assert(weft_loop_fallback_reason(l) == NULL, "choosing epoll is not a fallback");
    weft_stats st;
    EQ(weft_loop_stats(l, &st), 0);
    EQ(st.backend_fallbacks, 0);
    weft_loop_free(l);

    /* An empty WEFT_BACKEND is no choice: the config's stands. */
    setenv("WEFT_BACKEND", "", 1);
    cfg.backend = "epoll";
    l = weft_loop_new(&cfg);
    cr_assert(l);
    cr_assert_str_eq(weft_loop_backend(l), "epoll");
    weft_loop_free(l);

    EQ(weft_loop_fallback_reason(NULL) == NULL, 1);
    EQ(weft_loop_backend(NULL) == NULL, 1);
}

struct masked_counts {
    char path[PATH_MAX + 16];
    uint64_t masked;   /* offloaded_ops grown over openat + statx */
    uint64_t unmasked; /* over write, read, unlinkat, close */
};

static intptr_t masked_ops_main(void *arg)
{
    struct masked_counts *mc = arg;
    weft_deadline_push(weft_now() + SEC(10));
    weft_stats s0, s1, s2, s3;
    EQ(weft_stats_get(&s0), 0);
    int fd = weft_openat(AT_FDCWD, mc->path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    cr_assert(fd >= 0, "weft_openat: %d (%s)", fd, res_name(fd));
    EQ(weft_stats_get(&s1), 0);
    EQ(weft_write(fd, "12345", 5, 0), 5);
    EQ(weft_stats_get(&s2), 0);
    struct statx stx;
    memset(&stx, 0, sizeof stx);
    EQ(weft_statx(AT_FDCWD, mc->path, 0, STATX_SIZE | STATX_MODE, &stx), 0);
    EQ(stx.stx_size, 5);
    cr_assert(S_ISREG(stx.stx_mode));
    EQ(weft_statx(AT_FDCWD, "/nonexistent/weft", 0, STATX_SIZE, &stx), -ENOENT);
    EQ(weft_openat(AT_FDCWD, "/nonexistent/weft", O_RDONLY, 0), -ENOENT);
    EQ(weft_stats_get(&s3), 0);
    char buf[8] = {0};
    EQ(weft_read(fd, buf, sizeof buf, 0), 5);
    cr_assert(memcmp(buf, "12345", 5) == 0);
    EQ(weft_unlinkat(AT_FDCWD, mc->path, 0), 0);
    EQ(weft_close(fd), 0);
    weft_stats s4;
    EQ(weft_stats_get(&s4), 0);
    mc->masked = (s1.offloaded_ops - s0.offloaded_ops) + (s3.offloaded_ops - s2.offloaded_ops);
    mc->unmasked = (s2.offloaded_ops - s1.offloaded_ops) + (s4.offloaded_ops - s3.offloaded_ops);
    weft_deadline_pop();
    return 0;
}

static void masked_ops_run(struct masked_counts *mc, const char **backend)
{
    weft_loop *l = weft_loop_new(NULL);
    cr_assert(l, "weft_loop_new: %s", strerror(errno));
    *backend = weft_loop_backend(l);
    intptr_t result = -1;
    EQ(weft_loop_run(l, masked_ops_main, mc, &result), 0);
    EQ(result, 0);
    weft_loop_free(l);
}

Test(fallback, weft_uring_no_ops_runs_the_named_opcodes_on_the_executor_and_they_still_work)
{
    char dir[PATH_MAX];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/weft-noops-XXXXXX", base && *base ? base : "/tmp");
    cr_assert(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    struct masked_counts plain = {0}, masked = {0};
    snprintf(plain.path, sizeof plain.path, "%s/plain", dir);
    snprintf(masked.path, sizeof masked.path, "%s/masked", dir);
    const char *backend_plain, *backend_masked;

    unsetenv("WEFT_URING_NO_OPS");
    masked_ops_run(&plain, &backend_plain);
    setenv("WEFT_URING_NO_OPS", "statx,openat", 1);
    masked_ops_run(&masked, &backend_masked);
    unsetenv("WEFT_URING_NO_OPS");
    rmdir(dir);

    cr_assert(strcmp(backend_plain, backend_masked) == 0);
    if (strcmp(backend_masked, "io_uring") == 0) {
        /* Without the variable nothing runs on the executor; with it, exactly the 4 calls named
         * (2 openat, 2 statx, failures included) do, and nothing else. */
        EQ(plain.masked, 0);
        EQ(plain.unmasked, 0);
        EQ(masked.masked, 4);
        EQ(masked.unmasked, 0);
    } else {
        /* epoll runs every file call on the executor anyway (close is done on the loop). */
        EQ(plain.masked, 4);
        EQ(masked.masked, 4);
        cr_assert(plain.unmasked >= 3 && masked.unmasked >= 3, "unmasked %" PRIu64 ", %" PRIu64, plain.unmasked,
                  masked.unmasked);
    }
}

/* ---- waking the loop from other threads, with and without multishot poll --------------------------------- */

enum { WAKES = 200 };

static atomic_int posts_ran;
static weft_event *all_posted;

static intptr_t post_counted(void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&posts_ran, 1) + 1 == WAKES)
        weft_event_set(all_posted);
    return 0;
}

/* Another thread posts WAKES messages to loop 0, pausing between them so the loop falls asleep in the
 * kernel before most of them: each must wake it. */
static void *posting_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < WAKES; i++) {
        EQ(weft_post(0, post_counted, NULL), 0);
        usleep(200);
    }
    return NULL;
}

/* Long enough for the loop to fall asleep in the kernel before the result comes back. */
static intptr_t echo_job(void *arg)
{
    usleep(200);
    return (intptr_t)arg;
}

struct wakes {
    uint64_t offload_submissions; /* requests the loop handed the kernel during the offloads */
    bool io_uring;                /* the loop ran on io_uring */
};

static intptr_t wakes_main(void *arg)
{
    struct wakes *w = arg;
    w->io_uring = strcmp(weft_loop_backend(weft_loop_current()), "io_uring") == 0;
    atomic_store(&posts_ran, 0);
    all_posted = weft_event_new();
    cr_assert(all_posted);
    /* Each offload's result comes back from the worker's thread while the loop sleeps. */
    EQ(weft_offload(echo_job, NULL), 0); /* the worker is born */
    weft_stats before, after;
    EQ(weft_stats_get(&before), 0);
    for (intptr_t i = 1; i <= WAKES; i++)
        EQ(weft_offload(echo_job, (void *)i), i);
    EQ(weft_stats_get(&after), 0);
    w->offload_submissions = after.submissions - before.submissions;
    pthread_t t;
    cr_assert(pthread_create(&t, NULL, posting_thread, NULL) == 0);
    /* Nothing else wakes the loop: a lost wake-up is a timeout here. */
    weft_deadline_push(weft_now() + MS(10000));
    EQ(weft_event_wait(all_posted), 0);
    weft_deadline_pop();
    pthread_join(t, NULL);
    EQ(atomic_load(&posts_ran), WAKES);
    weft_event_free(all_posted);
    return 0;
}

static struct wakes wakes_with_mask(const char *mask)
{
    struct wakes w = {0};
    if (mask)
        setenv("WEFT_URING_NO_OPS", mask, 1);
    else
        unsetenv("WEFT_URING_NO_OPS");
    EQ(weft_run_cores(1, wakes_main, &w, NULL), 0);
    unsetenv("WEFT_URING_NO_OPS");
    return w;
}

/* On io_uring the loop sleeps on a multishot poll of its eventfd, never reading it, so a wake takes no
 * new request; with WEFT_URING_NO_OPS=poll_multishot (as on a kernel before 5.13) on a read of it,
 * armed again after each wake. Both wake the loop for every offloaded job's result and every post from
 * another thread. */
Test(fallback, other_threads_wake_the_loop_through_a_multishot_poll_or_a_read_of_its_eventfd)
{
    struct wakes polled = wakes_with_mask(NULL);
    struct wakes read = wakes_with_mask("poll_multishot");
    EQ(polled.io_uring, read.io_uring);
    if (polled.io_uring) {
        cr_assert(polled.offload_submissions < 10, "%" PRIu64 " requests for %d wakes through the poll",
                  polled.offload_submissions, WAKES);
        cr_assert(read.offload_submissions >= WAKES / 2, "%" PRIu64 " requests for %d wakes through reads",
                  read.offload_submissions, WAKES);
    }
}
