/*
 * The _async forms of the socket and file calls beyond read, write, recv and send (those are tested
 * with their concept): each resolves with what its suspending form returns, several stay in flight from
 * one task, and the paths and addresses they are given may go as soon as the call returns.
 */
#include "common.h"

#include <arpa/inet.h>
#include <linux/stat.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

TestSuite(async, .timeout = 30);

/* Awaits f, frees it, returns its result. */
static intptr_t take(weft_future *f)
{
    cr_assert(f != NULL, "an _async call returned NULL: %s", strerror(errno));
    intptr_t r = weft_await(f);
    weft_future_free(f);
    return r;
}

static intptr_t sockets_main(void *arg)
{
    (void)arg;
    int lfd = weft_tcp_listen("127.0.0.1", 0, 8, 0);
    cr_assert(lfd >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET};
    socklen_t tolen = sizeof to;
    EQ(getsockname(lfd, (struct sockaddr *)&to, &tolen), 0);

    int c = (int)take(weft_socket_async(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    cr_assert(c >= 0, "weft_socket_async: %d (%s)", c, res_name(c));
    /* accept and connect in flight together from one task. */
    struct sockaddr_in peer;
    socklen_t peerlen = sizeof peer;
    weft_future *acc = weft_accept_async(lfd, (struct sockaddr *)&peer, &peerlen, SOCK_CLOEXEC);
    struct sockaddr_in scratch = to;
    weft_future *con = weft_connect_async(c, (struct sockaddr *)&scratch, sizeof scratch);
    memset(&scratch, 0xff, sizeof scratch); /* the address was copied at the call */
    EQ(take(con), 0);
    int s = (int)take(acc);
    cr_assert(s >= 0, "weft_accept_async: %d (%s)", s, res_name(s));
    EQ(peerlen, sizeof peer);
    EQ(peer.sin_family, AF_INET);
    EQ(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));

    /* sendmsg / recvmsg, two iovecs each. */
    char a[] = "hello ", b[] = "world", in1[6], in2[5];
    struct iovec out_iov[2] = {{a, 6}, {b, 5}}, in_iov[2] = {{in1, 6}, {in2, 5}};
    struct msghdr out_msg = {.msg_iov = out_iov, .msg_iovlen = 2}, in_msg = {.msg_iov = in_iov, .msg_iovlen = 2};
    weft_future *rcv = weft_recvmsg_async(s, &in_msg, MSG_WAITALL);
    EQ(take(weft_sendmsg_async(c, &out_msg, 0)), 11);
    EQ(take(rcv), 11);
    cr_assert(memcmp(in1, "hello ", 6) == 0 && memcmp(in2, "world", 5) == 0);

    /* poll: writable at once; readable once data comes. */
    EQ(take(weft_poll_async(c, POLLOUT)) & POLLOUT, POLLOUT);
    weft_future *readable = weft_poll_async(s, POLLIN);
    EQ(weft_send(c, "x", 1, 0), 1);
    EQ(take(readable) & POLLIN, POLLIN);
    char x;
    EQ(weft_recv(s, &x, 1, 0), 1);

    /* shutdown: the peer sees the end of the stream. */
    EQ(take(weft_shutdown_async(c, SHUT_WR)), 0);
    EQ(weft_recv(s, &x, 1, 0), 0);

    /* Errors arrive as results. */
    EQ(take(weft_connect_async(c, (struct sockaddr *)&to, sizeof to)), -EISCONN);
    EQ(take(weft_shutdown_async(999, SHUT_RDWR)), -EBADF);
    NULL_WITH_ERRNO(weft_connect_async(c, NULL, 0), EINVAL);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(async, socket_accept_connect_msg_poll_and_shutdown_resolve_as_their_calls_return)
{
    EQ(run(sockets_main, NULL), 0);
}

static char scratch_dir[] = "/tmp/weft-async-XXXXXX";

static intptr_t files_main(void *arg)
{
    (void)arg;
    char path[256], other[256];
    snprintf(path, sizeof path, "%s/a", scratch_dir);
    /* The path is copied at the call: overwriting it at once changes nothing. */
    weft_future *op = weft_openat_async(AT_FDCWD, path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    memset(path, 'z', sizeof path - 1);
    int fd = (int)take(op);
    cr_assert(fd >= 0, "weft_openat_async: %d (%s)", fd, res_name(fd));

    char p1[] = "abc", p2[] = "defgh";
    struct iovec out[2] = {{p1, 3}, {p2, 5}};
    EQ(take(weft_writev_async(fd, out, 2, 0)), 8);
    EQ(take(weft_fsync_async(fd, true)), 0);
    EQ(take(weft_fsync_async(fd, false)), 0);
    char q1[4], q2[4];
    struct iovec in[2] = {{q1, 4}, {q2, 4}};
    EQ(take(weft_readv_async(fd, in, 2, 0)), 8);
    cr_assert(memcmp(q1, "abcd", 4) == 0 && memcmp(q2, "efgh", 4) == 0);

    snprintf(path, sizeof path, "%s/a", scratch_dir);
    struct statx stx;
    EQ(take(weft_statx_async(AT_FDCWD, path, 0, STATX_SIZE, &stx)), 0);
    EQ(stx.stx_size, 8);

    snprintf(other, sizeof other, "%s/b", scratch_dir);
    weft_future *ren = weft_renameat_async(AT_FDCWD, path, AT_FDCWD, other, 0);
    memset(path, 'z', sizeof path - 1);
    memset(other, 'z', sizeof other - 1);
    EQ(take(ren), 0);
    snprintf(path, sizeof path, "%s/a", scratch_dir);
    snprintf(other, sizeof other, "%s/b", scratch_dir);
    EQ(take(weft_statx_async(AT_FDCWD, path, 0, STATX_SIZE, &stx)), -ENOENT);
    EQ(take(weft_unlinkat_async(AT_FDCWD, other, 0)), 0);

    snprintf(path, sizeof path, "%s/d", scratch_dir);
    EQ(take(weft_mkdirat_async(AT_FDCWD, path, 0700)), 0);
    EQ(take(weft_mkdirat_async(AT_FDCWD, path, 0700)), -EEXIST);
    EQ(take(weft_unlinkat_async(AT_FDCWD, path, AT_REMOVEDIR)), 0);

    NULL_WITH_ERRNO(weft_openat_async(AT_FDCWD, NULL, O_RDONLY, 0), EFAULT);
    NULL_WITH_ERRNO(weft_statx_async(AT_FDCWD, path, 0, STATX_SIZE, NULL), EFAULT);
    NULL_WITH_ERRNO(weft_readv_async(fd, in, -1, 0), EINVAL);
    EQ(weft_close(fd), 0);
    return 0;
}

Test(async, openat_readv_writev_fsync_statx_rename_unlink_and_mkdir_resolve_as_their_calls_return)
{
    cr_assert(mkdtemp(scratch_dir) != NULL);
    EQ(run(files_main, NULL), 0);
    rmdir(scratch_dir);
}

Test(async, every_async_form_outside_a_loop_returns_null_with_eperm)
{
    struct iovec iov = {NULL, 0};
    struct msghdr msg = {0};
    struct statx stx;
    struct sockaddr_in to = {.sin_family = AF_INET};
    NULL_WITH_ERRNO(weft_socket_async(AF_INET, SOCK_STREAM, 0), EPERM);
    NULL_WITH_ERRNO(weft_accept_async(0, NULL, NULL, 0), EPERM);
    NULL_WITH_ERRNO(weft_connect_async(0, (struct sockaddr *)&to, sizeof to), EPERM);
    NULL_WITH_ERRNO(weft_recvmsg_async(0, &msg, 0), EPERM);
    NULL_WITH_ERRNO(weft_sendmsg_async(0, &msg, 0), EPERM);
    NULL_WITH_ERRNO(weft_shutdown_async(0, SHUT_RDWR), EPERM);
    NULL_WITH_ERRNO(weft_poll_async(0, POLLIN), EPERM);
    NULL_WITH_ERRNO(weft_openat_async(AT_FDCWD, "/", O_RDONLY, 0), EPERM);
    NULL_WITH_ERRNO(weft_readv_async(0, &iov, 1, 0), EPERM);
    NULL_WITH_ERRNO(weft_writev_async(1, &iov, 1, 0), EPERM);
    NULL_WITH_ERRNO(weft_fsync_async(1, false), EPERM);
    NULL_WITH_ERRNO(weft_statx_async(AT_FDCWD, "/", 0, STATX_SIZE, &stx), EPERM);
    NULL_WITH_ERRNO(weft_unlinkat_async(AT_FDCWD, "/nonexistent-weft", 0), EPERM);
    NULL_WITH_ERRNO(weft_renameat_async(AT_FDCWD, "/a-weft", AT_FDCWD, "/b-weft", 0), EPERM);
    NULL_WITH_ERRNO(weft_mkdirat_async(AT_FDCWD, "/nonexistent-weft", 0700), EPERM);
}
