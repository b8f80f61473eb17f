/*
 * Child processes without a thread. posix_spawn starts the child: glibc's shares the parent's memory
 * until the exec (CLONE_VM | CLONE_VFORK, so nothing is copied however large the parent) and reports
 * a failed exec as the spawn's own error, not as a child exiting 127. A pidfd names the child from
 * then on: its exit is waited for through it (exit_wait: one IORING_OP_WAITID request on io_uring, the
 * pidfd's readiness on epoll), and signals go through it, so a recycled pid can never be hit.
 *
 * The pidfd is opened just after the spawn, from the pid. That is safe as long as the child is not
 * reaped by anyone else in between (SIGCHLD set to SIG_IGN, or a waitpid(-1) elsewhere): until it is
 * reaped, its pid cannot be reused.
 */
#include "internal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PROCESS_FLAGS                                                                                  \
    (WEFT_PROCESS_STDIN | WEFT_PROCESS_STDOUT | WEFT_PROCESS_STDERR | WEFT_PROCESS_SEARCH_PATH |       \
     WEFT_PROCESS_KEEP_FDS)

/* Closes an fd weft may have used, with weft_close so that the backend forgets it too. */
static void fd_release(int *fd)
{
    if (*fd < 0)
        return;
    weft_close(*fd);
    *fd = -1;
}

/*
 * A pipe for one of the child's standard streams, both ends close-on-exec and numbered above 2. A
 * parent running with 0, 1 or 2 closed gets those numbers from pipe2, and an end left there would be
 * overwritten by the dup2 of another stream in the child.
 */
static int pipe_above_stdio(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    weft__fd_new(weft__tls_loop, fds[0], WEFT__FD_OTHER);
    weft__fd_new(weft__tls_loop, fds[1], WEFT__FD_OTHER);
    for (int i = 0; i < 2; i++) {
        if (fds[i] > STDERR_FILENO)
            continue;
        int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
        if (moved < 0) {
            int err = -errno;
            close(fds[0]);
            close(fds[1]);
            return err;
        }
        close(fds[i]);
        fds[i] = moved;
        weft__fd_new(weft__tls_loop, moved, WEFT__FD_OTHER);
    }
    return 0;
}

/* The file actions and attributes of a spawn: the pipes' child ends on 0..2, the other fds closed,
 * and the signal mask of the calling thread without what weft blocked for weft_signal_wait. */
static int spawn_setup(posix_spawn_file_actions_t *actions, posix_spawnattr_t *attr, int pipes[3][2],
                       unsigned flags)
{
    static const unsigned stream_flag[3] = {WEFT_PROCESS_STDIN, WEFT_PROCESS_STDOUT, WEFT_PROCESS_STDERR};
    for (int stream = 0; stream < 3; stream++) {
        if (!(flags & stream_flag[stream]))
            continue;
        int err = pipe_above_stdio(pipes[stream]);
        if (err)
            return err;
        /* The child reads its stdin from the read end and writes the others into the write end. */
        int child_end = pipes[stream][stream == STDIN_FILENO ? 0 : 1];
        err = posix_spawn_file_actions_adddup2(actions, child_end, stream);
        if (err)
            return -err;
    }
    if (!(flags & WEFT_PROCESS_KEEP_FDS)) {
        /* EBADF: the fd limit is 3 or less and glibc refuses to name an fd beyond it. Only fds opened
         * before the limit was lowered can be above 2 then, and those the child inherits. */
        int err = posix_spawn_file_actions_addclosefrom_np(actions, STDERR_FILENO + 1);
        if (err && err != EBADF)
            return -err;
    }
    sigset_t mask;
    weft__signal_mask_own(&mask);
    int err = posix_spawnattr_setsigmask(attr, &mask);
    if (!err)
        err = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK);
    return -err;
}

int weft_process_spawn(weft_process *p, const char *path, char *const argv[], char *const envp[], unsigned flags)
{
    if (!p)
        return -EINVAL;
    *p = (weft_process){.pid = -1, .pidfd = -1, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .status = -1};
    if (!path || !argv || (flags & ~PROCESS_FLAGS))
        return -EINVAL;
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int err = -posix_spawn_file_actions_init(&actions);
    if (err)
        return err;
    err = -posix_spawnattr_init(&attr);
    if (err) {
        posix_spawn_file_actions_destroy(&actions);
        return err;
    }
    int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    err = spawn_setup(&actions, &attr, pipes, flags);
    pid_t pid = -1;
    if (!err) {
        char *const *env = envp ? envp : environ;
        err = -((flags & WEFT_PROCESS_SEARCH_PATH) ? posix_spawnp(&pid, path, &actions, &attr, argv, env)
                                                     : posix_spawn(&pid, path, &actions, &attr, argv, env));
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    /* The child has its ends (or there is no child): the parent keeps only its own. */
    for (int stream = 0; stream < 3; stream++) {
        int *child_end = &pipes[stream][stream == STDIN_FILENO ? 0 : 1];
        if (*child_end >= 0)
            close(*child_end);
        *child_end = -1;
    }
    int pidfd = -1;
    if (!err) {
        pidfd = pidfd_open(pid, 0);
        weft__fd_new(weft__tls_loop, pidfd, WEFT__FD_OTHER);
        if (pidfd < 0) {
            /* Out of fds just now: a child nobody could wait for must not run on, nor stay a zombie. */
            err = -errno;
            kill(pid, SIGKILL);
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    if (err) {
        for (int stream = 0; stream < 3; stream++)
            for (int end = 0; end < 2; end++)
                if (pipes[stream][end] >= 0)
                    close(pipes[stream][end]);
        return err;
    }
    p->pid = pid;
    p->pidfd = pidfd;
    p->stdin_fd = pipes[STDIN_FILENO][1];
    p->stdout_fd = pipes[STDOUT_FILENO][0];
    p->stderr_fd = pipes[STDERR_FILENO][0];
    return 0;
}

/* The status waitpid would have stored for the child waitid described. */
static int wait_status(const siginfo_t *info)
{
    if (info->si_code == CLD_EXITED)
        return W_EXITCODE(info->si_status & 0xff, 0);
    return W_EXITCODE(0, info->si_status & 0x7f) | (info->si_code == CLD_DUMPED ? WCOREFLAG : 0);
}

/* Reaps the child of pidfd if it has ended: 1 with *info filled, 0 if it still runs, or -errno. */
static int exit_reap(int pidfd, siginfo_t *info)
{
    info->si_pid = 0;
    if (waitid(P_PIDFD, (id_t)pidfd, info, WEXITED | WNOHANG) < 0)
        return -errno;
    return info->si_pid != 0;
}

/*
 * Suspends until the child of pidfd has ended and reaps it into *info. The wait is one WAITID request
 * (op.h): on io_uring IORING_OP_WAITID (Linux 6.7), which the kernel completes when the child ends and
 * a cancel withdraws; on epoll the pidfd's readiness, then a waitid that cannot block. It asks with
 * WNOWAIT, and the task reaps the child itself right after, without suspending in between: of several
 * tasks waiting for one child, the first to run reaps it and stores its status before any other looks
 * (weft_process_wait), whatever order their requests completed in. A cancelled task is refused before
 * anything is asked, and a request the child's end beat to its cancel still reaps: no exit is lost.
 *
 * An io_uring without the opcode (the probe, or WEFT_URING_NO_OPS=waitid) answers -EOPNOTSUPP: the wait
 * is then the epoll way, done here with weft_poll. So is it if the pidfd was made O_NONBLOCK, which has
 * the kernel answer at once (WNOHANG) that the child still runs.
 */
static int exit_wait(int pidfd, siginfo_t *info)
{
    info->si_pid = 0;
    weft__op op = {.opcode = WEFT__OP_WAITID, .fd = pidfd, .buf = info, .flags = WEXITED | WNOWAIT};
    int r = (int)weft__io_run(&op);
    if (r < 0 && r != -EOPNOTSUPP)
        return r;
    if (r == 0 && info->si_pid != 0) {
        r = exit_reap(pidfd, info);
        if (r)
            return r < 0 ? r : 0;
    }
    for (;;) {
        r = weft_poll(pidfd, POLLIN);
        if (r < 0)
            return r;
        r = exit_reap(pidfd, info);
        if (r)
            return r < 0 ? r : 0;
    }
}

/* exit_wait blocking the thread, for where no task can suspend. poll first: a pidfd its owner made
 * O_NONBLOCK has waitid answer EAGAIN instead of waiting. */
static int exit_wait_blocking(int pidfd, siginfo_t *info)
{
    for (;;) {
        struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
            return -errno;
        int r = exit_reap(pidfd, info);
        if (r)
            return r < 0 ? r : 0;
    }
}

int weft_process_wait(weft_process *p)
{
    if (!p)
        return -EINVAL;
    if (p->status >= 0)
        return p->status;
    if (p->pidfd < 0)
        return -EINVAL;
    siginfo_t info;
    int r = exit_wait(p->pidfd, &info);
    /* Another task waiting for the same child may have reaped it first (waitid then says ECHILD). */
    if (p->status >= 0)
        return p->status;
    if (r < 0)
        return r;
    p->status = wait_status(&info);
    return p->status;
}

int weft_process_kill(weft_process *p, int sig)
{
    if (!p || (p->pidfd < 0 && p->status < 0))
        return -EINVAL;
    if (p->status >= 0)
        return -ESRCH;
    return pidfd_send_signal(p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

void weft_process_close(weft_process *p)
{
    if (!p)
        return;
    fd_release(&p->stdin_fd);
    fd_release(&p->stdout_fd);
    fd_release(&p->stderr_fd);
    if (p->pidfd < 0)
        return;
    if (p->status < 0) {
        /* No zombie is left behind: a child still running is killed, and reaped either way. */
        pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
        siginfo_t info;
        int r = weft__current() ? exit_wait(p->pidfd, &info) : -EPERM;
        if (r < 0)
            r = exit_wait_blocking(p->pidfd, &info);
        if (r == 0)
            p->status = wait_status(&info);
    }
    fd_release(&p->pidfd);
}
