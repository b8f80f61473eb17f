/*
 * Child processes: a payload through cat in both directions at once, exit codes and deaths by signal
 * as waitpid encodes them, kill, waiting twice and from two tasks, cancellation and deadlines during a
 * wait (and that no zombie is left), close in and outside tasks, spawn failures with the exec's error
 * and nothing left behind, the fds and the signal mask the child gets, stderr and the environment.
 */
#include <dirent.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "common.h"

TestSuite(process, .timeout = 60);

/* ---- helpers ------------------------------------------------------------------------------------- */

static void spawn_ok(weft_process *p, char *const argv[], unsigned flags)
{
    int r = weft_process_spawn(p, argv[0], argv, NULL, flags | WEFT_PROCESS_SEARCH_PATH);
    cr_assert(r == 0, "weft_process_spawn(%s): %d (%s)", argv[0], r, res_name(r));
    cr_assert(p->pid > 0 && p->pidfd >= 0 && p->status == -1);
}

/* A child that sleeps for 10 s unless it is killed. */
static void spawn_sleeper(weft_process *p, unsigned flags)
{
    char *argv[] = {"sleep", "10", NULL};
    spawn_ok(p, argv, flags);
}

/* Reads fd to its end into buf (NUL-terminated); returns the length. */
static size_t read_to_end(int fd, char *buf, size_t cap)
{
    size_t used = 0;
    for (;;) {
        cr_assert(used + 1 < cap, "more output than expected");
        ssize_t n = weft_read(fd, buf + used, cap - 1 - used, -1);
        cr_assert(n >= 0, "weft_read: %zd (%s)", n, res_name(n));
        if (n == 0)
            break;
        used += (size_t)n;
    }
    buf[used] = '\0';
    return used;
}

/* Whether pid has been reaped: waitpid knows no such child any more. */
static bool reaped(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD;
}

/* The state letter of a live process in /proc (R, S, Z...), or 0 if it has none. */
static char proc_state(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    char *paren = got ? strrchr(line, ')') : NULL;
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

static void status_exited(int status, int code)
{
    char what[96];
    describe_status(status, what, sizeof what);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == code, "child %s, want exit %d", what, code);
}

static void status_killed(int status, int sig)
{
    char what[96];
    describe_status(status, what, sizeof what);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == sig, "child %s, want signal %d", what, sig);
}

/* ---- pipes --------------------------------------------------------------------------------------- */

enum { PAYLOAD = 3 * 512 * 1024 + 123 };

struct echo {
    weft_process p;
    unsigned char *out, *in;
    size_t got;
};

static intptr_t echo_writer(void *arg)
{
    struct echo *e = arg;
    size_t done = 0;
    while (done < PAYLOAD) {
        size_t chunk = PAYLOAD - done < 65536 ? PAYLOAD - done : 65536;
        ssize_t n = weft_write(e->p.stdin_fd, e->out + done, chunk, -1);
        if (n <= 0)
            return n < 0 ? n : -EIO;
        done += (size_t)n;
    }
    /* EOF on the child's stdin ends cat. */
    int r = weft_close(e->p.stdin_fd);
    e->p.stdin_fd = -1;
    return r;
}

static intptr_t echo_reader(void *arg)
{
    struct echo *e = arg;
    for (;;) {
        ssize_t n = weft_read(e->p.stdout_fd, e->in + e->got, PAYLOAD + 1 - e->got, -1);
        if (n < 0)
            return n;
        if (n == 0)
            return 0;
        e->got += (size_t)n;
        if (e->got > PAYLOAD)
            return -EOVERFLOW;
    }
}

static intptr_t echo_main(void *arg)
{
    (void)arg;
    struct echo e = {.out = malloc(PAYLOAD), .in = malloc(PAYLOAD + 1)};
    cr_assert(e.out && e.in);
    for (size_t i = 0; i < PAYLOAD; i++)
        e.out[i] = (unsigned char)(i * 7 + (i >> 12));
    char *argv[] = {"cat", NULL};
    spawn_ok(&e.p, argv, WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT);
    EQ(e.p.stderr_fd, -1);
    cr_assert(fcntl(e.p.stdin_fd, F_GETFD) & FD_CLOEXEC, "the stdin pipe is not close-on-exec");
    cr_assert(fcntl(e.p.stdout_fd, F_GETFD) & FD_CLOEXEC, "the stdout pipe is not close-on-exec");
    cr_assert(fcntl(e.p.pidfd, F_GETFD) & FD_CLOEXEC, "the pidfd is not close-on-exec");
    /* Far more than a pipe holds: each direction needs the other to move at the same time. */
    weft_task *w = weft_spawn(echo_writer, &e);
    weft_task *r = weft_spawn(echo_reader, &e);
    EQ(weft_join(w), 0);
    EQ(weft_join(r), 0);
    EQ(e.got, PAYLOAD);
    cr_assert(memcmp(e.in, e.out, PAYLOAD) == 0, "the payload came back changed");
    int status = weft_process_wait(&e.p);
    status_exited(status, 0);
    EQ(e.p.status, status);
    weft_process_close(&e.p);
    EQ(e.p.stdout_fd, -1);
    EQ(e.p.pidfd, -1);
    free(e.out);
    free(e.in);
    return 0;
}

Test(process, cat_echoes_1_5_mib_written_and_read_by_two_tasks_at_once)
{
    int fds = count_open_fds();
    EQ(run_limited(echo_main, NULL, SEC(20)), 0);
    EQ(count_open_fds(), fds);
}

static intptr_t streams_main(void *arg)
{
    (void)arg;
    char out[256], err[256];
    weft_process p;
    char *argv[] = {"sh", "-c", "echo out; echo err >&2; echo \"$WEFT_X\"", NULL};
    char *envp[] = {"WEFT_X=42", NULL};
    EQ(weft_process_spawn(&p, "sh", argv, envp, WEFT_PROCESS_SEARCH_PATH | WEFT_PROCESS_STDOUT | WEFT_PROCESS_STDERR),
       0);
    EQ(p.stdin_fd, -1);
    read_to_end(p.stdout_fd, out, sizeof out);
    read_to_end(p.stderr_fd, err, sizeof err);
    cr_assert_str_eq(out, "out\n42\n");
    cr_assert_str_eq(err, "err\n");
    status_exited(weft_process_wait(&p), 0);
    weft_process_close(&p);

    /* envp NULL: the caller's environment. */
    EQ(setenv("WEFT_Y", "seven", 1), 0);
    char *argv2[] = {"sh", "-c", "echo \"$WEFT_Y\"", NULL};
    spawn_ok(&p, argv2, WEFT_PROCESS_STDOUT);
    read_to_end(p.stdout_fd, out, sizeof out);
    cr_assert_str_eq(out, "seven\n");
    status_exited(weft_process_wait(&p), 0);
    weft_process_close(&p);
    return 0;
}

Test(process, stderr_has_a_pipe_of_its_own_and_envp_replaces_the_environment)
{
    EQ(run_limited(streams_main, NULL, SEC(10)), 0);
}

static intptr_t low_fds_main(void *arg)
{
    (void)arg;
    weft_process p;
    char *argv[] = {"cat", NULL};
    spawn_ok(&p, argv, WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT);
    cr_assert(p.stdin_fd > 2 && p.stdout_fd > 2, "pipe ends on %d and %d", p.stdin_fd, p.stdout_fd);
    EQ(weft_write(p.stdin_fd, "hello\n", 6, -1), 6);
    EQ(weft_close(p.stdin_fd), 0);
    p.stdin_fd = -1;
    char out[64];
    read_to_end(p.stdout_fd, out, sizeof out);
    cr_assert_str_eq(out, "hello\n");
    status_exited(weft_process_wait(&p), 0);
    weft_process_close(&p);
    return 0;
}

Test(process, with_stdin_closed_in_the_parent_the_pipes_still_reach_the_childs_0_and_1)
{
    close(STDIN_FILENO);
    EQ(run_limited(low_fds_main, NULL, SEC(10)), 0);
}

/* ---- what the child inherits --------------------------------------------------------------------- */

/* The fds of this process a child inherits when they are kept: those not close-on-exec. */
static uint64_t inheritable_fds(void)
{
    uint64_t set = 0;
    for (int fd = 3; fd < 64; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC))
            set |= 1ull << fd;
    }
    return set;
}

/* The fd numbers open in pid, as a bit set (fds below 64). */
static uint64_t fds_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    cr_assert(dir != NULL, "opendir %s: %s", path, strerror(errno));
    uint64_t set = 0;
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.' && atoi(e->d_name) < 64)
            set |= 1ull << atoi(e->d_name);
    closedir(dir);
    return set;
}

/*
 * Waits until the sleeper pid is asleep in its clock_nanosleep: past its dynamic loader, which opens
 * the libraries it loads on the lowest free fds (3, ...) and closes them, so a look at its fds before
 * then can find one of the loader's.
 */
static void wait_sleeping(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
    for (int i = 0;; i++) {
        FILE *f = fopen(path, "r");
        cr_assert(f != NULL, "fopen %s: %s", path, strerror(errno));
        long nr = -2;
        int got = fscanf(f, "%ld", &nr);
        fclose(f);
        if (got == 1 && nr == SYS_clock_nanosleep)
            return;
        cr_assert(i < 5000, "child %d never went to sleep (last system call %ld)", (int)pid, nr);
        EQ(weft_sleep(MS(1)), 0);
    }
}

static intptr_t inherit_main(void *arg)
{
    (void)arg;
    int kept = open("/dev/null", O_RDONLY); /* not close-on-exec */
    cr_assert(kept > 2 && kept < 64);
    weft_process p;
    unsigned streams = WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT | WEFT_PROCESS_STDERR;
    spawn_sleeper(&p, streams);
    wait_sleeping(p.pid);
    EQ(fds_of(p.pid), 0x7); /* 0, 1 and 2 only: not kept, nor the parent's pipe ends, nor weft's */
    weft_process_close(&p);
    status_killed(p.status, SIGKILL);

    spawn_sleeper(&p, streams | WEFT_PROCESS_KEEP_FDS);
    wait_sleeping(p.pid);
    /* kept, and whatever else the test's process left inheritable; the close-on-exec ones stay behind. */
    uint64_t inheritable = inheritable_fds();
    cr_assert(inheritable & 1ull << kept);
    EQ(fds_of(p.pid), 0x7 | inheritable);
    weft_process_close(&p);
    close(kept);
    return 0;
}

Test(process, the_child_gets_fds_0_to_2_only_and_with_keep_fds_also_those_not_close_on_exec)
{
    EQ(run_limited(inherit_main, NULL, SEC(10)), 0);
}

/* The child's blocked signals, from SigBlk in its /proc status. */
static uint64_t child_blocked(void)
{
    weft_process p;
    char *argv[] = {"cat", "/proc/self/status", NULL};
    spawn_ok(&p, argv, WEFT_PROCESS_STDOUT);
    char out[4096];
    read_to_end(p.stdout_fd, out, sizeof out);
    status_exited(weft_process_wait(&p), 0);
    weft_process_close(&p);
    unsigned long long mask;
    const char *line = strstr(out, "SigBlk:");
    cr_assert(line && sscanf(line, "SigBlk: %llx", &mask) == 1, "no SigBlk in '%s'", out);
    return mask;
}

static intptr_t wait_usr1(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    return weft_signal_wait(&set, NULL);
}

static intptr_t mask_main(void *arg)
{
    (void)arg;
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    EQ(pthread_sigmask(SIG_BLOCK, &usr2, NULL), 0);
    weft_task *waiter = weft_spawn(wait_usr1, NULL);
    settle();
    /* SIGUSR1 is blocked now, by weft, for the wait: the child must not start with it blocked. The
     * caller's own block of SIGUSR2 is inherited, as posix_spawn would pass it on. */
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    cr_assert(sigismember(&now, SIGUSR1) == 1);
    uint64_t blocked = child_blocked();
    cr_assert(!(blocked & 1ull << (SIGUSR1 - 1)), "the child starts with SIGUSR1 blocked (SigBlk %llx)",
              (unsigned long long)blocked);
    cr_assert(blocked & 1ull << (SIGUSR2 - 1), "the caller's block of SIGUSR2 is not inherited");
    EQ(weft_cancel(waiter), 0);
    EQ(weft_join(waiter), -ECANCELED);
    EQ(pthread_sigmask(SIG_UNBLOCK, &usr2, NULL), 0);
    return 0;
}

Test(process, the_child_starts_without_the_signals_weft_blocks_for_a_wait)
{
    EQ(run_limited(mask_main, NULL, SEC(10)), 0);
}

/* ---- ends, kills and waits ----------------------------------------------------------------------- */

static int run_to_end(char *script)
{
    weft_process p;
    char *argv[] = {"sh", "-c", script, NULL};
    spawn_ok(&p, argv, 0);
    int status = weft_process_wait(&p);
    weft_process_close(&p);
    cr_assert(reaped(p.pid), "child %d not reaped", (int)p.pid);
    return status;
}

static intptr_t codes_main(void *arg)
{
    (void)arg;
    status_exited(run_to_end("exit 0"), 0);
    status_exited(run_to_end("exit 7"), 7);
    status_exited(run_to_end("exit 255"), 255);
    status_killed(run_to_end("kill -TERM $$"), SIGTERM);
    status_killed(run_to_end("kill -KILL $$"), SIGKILL);
    return 0;
}

Test(process, exit_codes_and_deaths_by_signal_come_back_as_waitpid_encodes_them)
{
    EQ(run_limited(codes_main, NULL, SEC(10)), 0);
}

static intptr_t kill_main(void *arg)
{
    (void)arg;
    weft_process p;
    spawn_sleeper(&p, 0);
    EQ(weft_process_kill(&p, 0), 0);
    EQ(weft_process_kill(&p, 1000), -EINVAL);
    EQ(weft_process_kill(&p, SIGTERM), 0);
    status_killed(weft_process_wait(&p), SIGTERM);
    EQ(weft_process_kill(&p, SIGTERM), -ESRCH); /* reaped: its pid may be someone else's now */
    EQ(weft_process_kill(&p, 0), -ESRCH);
    weft_process_close(&p);
    EQ(weft_process_kill(&p, SIGTERM), -ESRCH);
    return 0;
}

Test(process, kill_ends_a_sleeping_child_and_a_reaped_one_gives_esrch)
{
    EQ(run_limited(kill_main, NULL, SEC(10)), 0);
}

struct shared_wait {
    weft_process *p;
    int id;
};

static intptr_t wait_task(void *arg)
{
    struct shared_wait *s = arg;
    int status = weft_process_wait(s->p);
    ev(s->id);
    return status;
}

static intptr_t twice_main(void *arg)
{
    (void)arg;
    weft_process p;
    char *argv[] = {"sh", "-c", "sleep 0.05; exit 3", NULL};
    spawn_ok(&p, argv, 0);
    struct shared_wait a = {&p, 1}, b = {&p, 2};
    weft_task *ta = weft_spawn(wait_task, &a);
    weft_task *tb = weft_spawn(wait_task, &b);
    intptr_t sa = weft_join(ta), sb = weft_join(tb);
    status_exited((int)sa, 3);
    EQ(sb, sa);
    EQ(ev_len, 2);
    /* Reaped once; every later wait gives the same status at once. */
    EQ(weft_process_wait(&p), sa);
    weft_process_close(&p);
    EQ(weft_process_wait(&p), sa);
    cr_assert(reaped(p.pid));
    return sa;
}

Test(process, two_tasks_waiting_and_later_waits_all_get_the_one_status)
{
    intptr_t status = run_limited(twice_main, NULL, SEC(10));
    status_exited((int)status, 3);
}

static intptr_t cancel_main(void *arg)
{
    (void)arg;
    weft_process p;
    spawn_sleeper(&p, 0);
    struct shared_wait s = {&p, 1};
    weft_task *t = weft_spawn(wait_task, &s);
    settle();
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    /* The child runs on, unreaped and not a zombie. */
    EQ(p.status, -1);
    char state = proc_state(p.pid);
    cr_assert(state == 'S' || state == 'R', "child state '%c' after a cancelled wait", state ? state : '0');
    weft_deadline_push(weft_now() + MS(20));
    EQ(weft_process_wait(&p), -ETIMEDOUT);
    weft_deadline_pop();
    EQ(weft_process_kill(&p, 0), 0);
    /* close kills and reaps it. */
    weft_process_close(&p);
    status_killed(p.status, SIGKILL);
    cr_assert(reaped(p.pid), "child %d left unreaped", (int)p.pid);
    EQ(proc_state(p.pid), 0);
    return 0;
}

Test(process, a_cancelled_wait_leaves_the_child_running_and_close_kills_and_reaps_it)
{
    EQ(run_limited(cancel_main, NULL, SEC(10)), 0);
}

static intptr_t cancelled_close_task(void *arg)
{
    weft_process *p = arg;
    spawn_sleeper(p, WEFT_PROCESS_STDOUT);
    EQ(weft_cancel(weft_self()), 0);
    EQ(weft_process_wait(p), -ECANCELED);
    /* Cleanup in a cancelled task cannot suspend: close still kills and reaps the child. */
    weft_process_close(p);
    return p->status;
}

Test(process, close_in_a_cancelled_task_still_kills_and_reaps_the_child)
{
    weft_process p;
    int fds = count_open_fds();
    intptr_t status = run_limited(cancelled_close_task, &p, SEC(10));
    status_killed((int)status, SIGKILL);
    cr_assert(reaped(p.pid));
    EQ(count_open_fds(), fds);
}

/* ---- how the wait is made: IORING_OP_WAITID, or the pidfd's readiness ----------------------------------- */

/* What the task waiting for p is parked in, as weft_tasks_dump says it ("waitid on fd 7"). */
static void parked_in(const weft_process *p, char *out, size_t cap)
{
    char *dump = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&dump, &len);
    cr_assert(f != NULL);
    cr_assert(weft_tasks_dump(f) >= 2);
    fclose(f);
    const char *line = strstr(dump, "'waiter'");
    cr_assert(line != NULL, "no waiter in the dump:\n%s", dump);
    char fd_s[32];
    snprintf(fd_s, sizeof fd_s, " on fd %d", p->pidfd);
    const char *on = strstr(line, fd_s);
    const char *eol = strchr(line, '\n');
    cr_assert(on && (!eol || on < eol), "the waiter waits on no request on the pidfd:\n%s", dump);
    const char *call = on;
    while (call > line && call[-1] != ' ')
        call--;
    snprintf(out, cap, "%.*s", (int)(on - call), call);
    free(dump);
}

static intptr_t wait_way_main(void *arg)
{
    const char *want = arg;
    weft_process p;
    spawn_sleeper(&p, 0);
    struct shared_wait s = {&p, 1};
    weft_task *t = weft_spawn_named("waiter", wait_task, &s);
    settle();
    char call[32];
    parked_in(&p, call, sizeof call);
    cr_assert(strcmp(call, want) == 0, "the wait for a child is a %s request, want %s", call, want);
    EQ(weft_process_kill(&p, SIGTERM), 0);
    status_killed((int)weft_join(t), SIGTERM);
    weft_process_close(&p);
    cr_assert(reaped(p.pid));
    /* Neither way takes a thread of the executor. */
    weft_stats st;
    EQ(weft_stats_get(&st), 0);
    EQ(st.offloaded_ops, 0);
    return 0;
}

/* On io_uring the wait is one IORING_OP_WAITID (the kernel has it: 6.7 and later); on epoll the same
 * request waits for the pidfd's readiness. */
Test(process, the_wait_is_one_waitid_request_the_kernel_completes_or_on_epoll_the_pidfds_readiness)
{
    EQ(run_limited(wait_way_main, "waitid", SEC(10)), 0);
}

/* Where io_uring lacks IORING_OP_WAITID (masked here as the probe would find it), the wait is the
 * pidfd's readiness (a poll request), never a blocking waitid on the executor, which a cancel could not
 * stop. The scenarios above, on that path: exit codes, signals, two waiters, a cancel while waiting. */
Test(process, without_iouring_waitid_the_wait_polls_the_pidfd_and_keeps_every_promise)
{
    setenv("WEFT_URING_NO_OPS", "waitid", 1);
    bool uring = strcmp(backend_env(), "io_uring") == 0;
    EQ(run_limited(wait_way_main, uring ? "poll" : "waitid", SEC(10)), 0);
    EQ(run_limited(codes_main, NULL, SEC(10)), 0);
    ev_len = 0;
    status_exited((int)run_limited(twice_main, NULL, SEC(10)), 3);
    EQ(run_limited(cancel_main, NULL, SEC(10)), 0);
}

/* A pidfd its owner made O_NONBLOCK has the kernel answer a wait at once: the child is still waited
 * for, through its readiness. */
static intptr_t nonblocking_pidfd_main(void *arg)
{
    (void)arg;
    weft_process p;
    char *argv[] = {"sh", "-c", "sleep 0.05; exit 5", NULL};
    spawn_ok(&p, argv, 0);
    cr_assert(fcntl(p.pidfd, F_SETFL, fcntl(p.pidfd, F_GETFL) | O_NONBLOCK) == 0);
    status_exited(weft_process_wait(&p), 5);
    weft_process_close(&p);
    cr_assert(reaped(p.pid));
    return 0;
}

Test(process, a_child_whose_pidfd_is_nonblocking_is_still_waited_for)
{
    EQ(run_limited(nonblocking_pidfd_main, NULL, SEC(10)), 0);
}

Test(process, outside_a_task_spawn_and_close_work_and_wait_gives_eperm)
{
    weft_process p;
    spawn_sleeper(&p, WEFT_PROCESS_STDIN);
    EQ(weft_process_wait(&p), -EPERM);
    weft_process_close(&p);
    status_killed(p.status, SIGKILL);
    cr_assert(reaped(p.pid));
    EQ(weft_process_wait(&p), p.status);
}

/* ---- failures -------------------------------------------------------------------------------------- */

static void spawn_fails(const char *path, unsigned flags, int want)
{
    int fds = count_open_fds();
    weft_process p = {.pid = 99};
    char *argv[] = {(char *)path, NULL};
    int r = weft_process_spawn(&p, path, argv, NULL, flags | WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT);
    cr_assert(r == want, "spawn %s: got %d (%s), want %d (%s)", path, r, res_name(r), want, res_name(want));
    cr_assert(p.pid == -1 && p.pidfd == -1 && p.stdin_fd == -1 && p.stdout_fd == -1 && p.stderr_fd == -1);
    EQ(count_open_fds(), fds);
    errno = 0;
    EQ(waitpid(-1, NULL, WNOHANG), -1); /* no child was left behind */
    EQ(errno, ECHILD);
}

Test(process, spawn_failures_give_the_execs_error_and_leave_no_child_and_no_fd)
{
    spawn_fails("/nonexistent/weft-program", 0, -ENOENT);
    spawn_fails("weft-no-such-program", WEFT_PROCESS_SEARCH_PATH, -ENOENT);
    spawn_fails("/etc/passwd", 0, -EACCES); /* not executable */
    spawn_fails("/", 0, -EACCES);           /* a directory */
    char junk[] = "/tmp/weft-junk-XXXXXX";
    int fd = mkstemp(junk);
    cr_assert(fd >= 0);
    EQ(write(fd, "\x01\x02\x03\x04junk", 8), 8);
    close(fd);
    EQ(chmod(junk, 0700), 0);
    spawn_fails(junk, 0, -ENOEXEC); /* executable, but no format the kernel knows */
    unlink(junk);
    spawn_fails("cat", 0x100, -EINVAL); /* unknown flag */

    weft_process p;
    char *argv[] = {"cat", NULL};
    EQ(weft_process_spawn(NULL, "cat", argv, NULL, 0), -EINVAL);
    EQ(weft_process_spawn(&p, NULL, argv, NULL, 0), -EINVAL);
    EQ(weft_process_spawn(&p, "/bin/cat", NULL, NULL, 0), -EINVAL);
    /* A failed spawn leaves p safe for every call. */
    EQ(weft_process_wait(&p), -EINVAL);
    EQ(weft_process_kill(&p, SIGTERM), -EINVAL);
    weft_process_close(&p);
    EQ(weft_process_wait(NULL), -EINVAL);
    EQ(weft_process_kill(NULL, 0), -EINVAL);
    weft_process_close(NULL);
}

/* Lowers the fd limit to room fds above the lowest free number; returns the limit as it was. */
static struct rlimit fds_limit(int room)
{
    struct rlimit old;
    EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
    int lowest = fcntl(STDERR_FILENO, F_DUPFD, 0);
    cr_assert(lowest >= 0);
    close(lowest);
    struct rlimit low = {.rlim_cur = (rlim_t)(lowest + room), .rlim_max = old.rlim_max};
    EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    return old;
}

Test(process, out_of_fds_gives_emfile_for_the_pipes_or_the_pidfd_and_leaves_no_child)
{
    int fds = count_open_fds();
    weft_process piped, bare;
    char *cat[] = {"cat", NULL}, *sleep[] = {"sleep", "10", NULL};
    /* Room for the stdin pipe but not the stdout one: nothing is started, the first pipe is closed. */
    struct rlimit old = fds_limit(2);
    int r_piped = weft_process_spawn(&piped, "cat", cat, NULL,
                                     WEFT_PROCESS_SEARCH_PATH | WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT);
    EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    /* No room at all, and no pipes: the child starts, but no pidfd can name it; it is killed and
     * reaped before the call returns. */
    old = fds_limit(0);
    int r_bare = weft_process_spawn(&bare, "sleep", sleep, NULL, WEFT_PROCESS_SEARCH_PATH);
    EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
    EQ(r_piped, -EMFILE);
    EQ(r_bare, -EMFILE);
    cr_assert(piped.pidfd == -1 && piped.stdin_fd == -1 && piped.stdout_fd == -1 && bare.pidfd == -1);
    EQ(count_open_fds(), fds);
    errno = 0;
    EQ(waitpid(-1, NULL, WNOHANG), -1);
    EQ(errno, ECHILD);
}
