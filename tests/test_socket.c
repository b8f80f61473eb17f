/*
 * The socket helpers beside TCP: UDP datagrams between a bound and a connected socket (boundaries,
 * order, senders, truncation, ICMP refusals), IPv6 and names; Unix stream sockets at a path and in the
 * abstract namespace, with their path errors; weft_socket_port; and weft_tcp_listen with a name, from
 * a task (on the executor), before any loop runs, and refused in a callback.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common.h"

TestSuite(socket, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------------------- */

static int fd_ok(int fd, const char *what)
{
    cr_assert(fd >= 0, "%s: %d (%s)", what, fd, res_name(fd));
    return fd;
}

static int port_ok(int fd)
{
    int port = weft_socket_port(fd);
    cr_assert(port > 0 && port < 65536, "weft_socket_port: %d (%s)", port, res_name(port));
    return port;
}

/* Whether addr is a loopback address of its family. */
static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return false;
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(seed + i * 13);
}

/* ---- UDP ----------------------------------------------------------------------------------------- */

static const size_t datagram_sizes[] = {1, 1000, 60000, 7};

static intptr_t udp_main(void *arg)
{
    const char *host = arg;
    int server = fd_ok(weft_udp_bind(host, 0, 0), "weft_udp_bind");
    cr_assert(fcntl(server, F_GETFD) & FD_CLOEXEC, "not close-on-exec");
    int port = port_ok(server);
    int client = fd_ok(weft_udp_connect(host, (uint16_t)port), "weft_udp_connect");
    cr_assert(fcntl(client, F_GETFD) & FD_CLOEXEC, "not close-on-exec");
    static unsigned char out[65536], in[65536];
    size_t n = sizeof datagram_sizes / sizeof datagram_sizes[0];
    for (size_t i = 0; i < n; i++) {
        fill(out, datagram_sizes[i], (unsigned)i);
        EQ(weft_send(client, out, datagram_sizes[i], 0), datagram_sizes[i]);
    }
    /* Each arrives whole, in order, from the client's address. */
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage from;
        struct iovec iov = {in, sizeof in};
        struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
        EQ(weft_recvmsg(server, &msg, 0), datagram_sizes[i]);
        fill(out, datagram_sizes[i], (unsigned)i);
        cr_assert(memcmp(in, out, datagram_sizes[i]) == 0, "datagram %zu changed", i);
        EQ(msg.msg_flags & MSG_TRUNC, 0);
        cr_assert(is_loopback(&from), "a datagram from a non-loopback address");
        EQ(ntohs(from.ss_family == AF_INET ? ((struct sockaddr_in *)&from)->sin_port
                                           : ((struct sockaddr_in6 *)&from)->sin6_port),
           weft_socket_port(client));
        /* The reply goes back to the sender's address. */
        struct iovec riov = {in, datagram_sizes[i]};
        struct msghdr reply = {.msg_name = &from, .msg_namelen = msg.msg_namelen, .msg_iov = &riov, .msg_iovlen = 1};
        EQ(weft_sendmsg(server, &reply, 0), datagram_sizes[i]);
        EQ(weft_recv(client, out, sizeof out, 0), datagram_sizes[i]);
        cr_assert(memcmp(in, out, datagram_sizes[i]) == 0, "reply %zu changed", i);
    }
    EQ(weft_close(client), 0);
    EQ(weft_close(server), 0);
    return 0;
}

Test(socket, udp_datagrams_keep_boundaries_order_and_sender_between_bound_and_connected_sockets)
{
    EQ(run_limited(udp_main, "127.0.0.1", SEC(10)), 0);
}

Test(socket, udp_works_the_same_over_ipv6_loopback)
{
    EQ(run_limited(udp_main, "::1", SEC(10)), 0);
    EQ(run_limited(udp_main, "[::1]", SEC(10)), 0);
}

static intptr_t trunc_main(void *arg)
{
    (void)arg;
    int server = fd_ok(weft_udp_bind("127.0.0.1", 0, 0), "weft_udp_bind");
    int client = fd_ok(weft_udp_connect("127.0.0.1", (uint16_t)port_ok(server)), "weft_udp_connect");
    unsigned char out[100], in[10];
    fill(out, sizeof out, 1);
    EQ(weft_send(client, out, sizeof out, 0), sizeof out);
    EQ(weft_send(client, "next", 4, 0), 4);
    struct iovec iov = {in, sizeof in};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    EQ(weft_recvmsg(server, &msg, 0), sizeof in);
    cr_assert(msg.msg_flags & MSG_TRUNC, "a cut datagram without MSG_TRUNC");
    cr_assert(memcmp(in, out, sizeof in) == 0);
    /* The rest of the long one is gone; the next is whole. */
    msg = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1};
    EQ(weft_recvmsg(server, &msg, 0), 4);
    EQ(msg.msg_flags & MSG_TRUNC, 0);
    cr_assert(memcmp(in, "next", 4) == 0);
    EQ(weft_close(client), 0);
    EQ(weft_close(server), 0);
    return 0;
}

Test(socket, a_datagram_longer_than_the_buffer_is_cut_and_flagged_msg_trunc)
{
    EQ(run_limited(trunc_main, NULL, SEC(10)), 0);
}

static intptr_t refused_main(void *arg)
{
    (void)arg;
    /* A port nobody listens on: bound once, then closed. */
    int gone = fd_ok(weft_udp_bind("127.0.0.1", 0, 0), "weft_udp_bind");
    int port = port_ok(gone);
    EQ(weft_close(gone), 0);
    int client = fd_ok(weft_udp_connect("127.0.0.1", (uint16_t)port), "weft_udp_connect");
    EQ(weft_send(client, "anyone?", 7, 0), 7);
    char buf[16];
    /* The loopback's ICMP port-unreachable comes back as the connected socket's error. */
    EQ(weft_recv(client, buf, sizeof buf, 0), -ECONNREFUSED);
    EQ(weft_close(client), 0);
    return 0;
}

Test(socket, connected_udp_to_a_port_nobody_listens_on_gives_econnrefused)
{
    EQ(run_limited(refused_main, NULL, SEC(10)), 0);
}

static intptr_t udp_names_main(void *arg)
{
    (void)arg;
    int server = fd_ok(weft_udp_bind("localhost", 0, 0), "weft_udp_bind(localhost)");
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    EQ(getsockname(server, (struct sockaddr *)&bound, &blen), 0);
    cr_assert(is_loopback(&bound), "localhost bound to a non-loopback address");
    /* A datagram socket connects to the first address of a name: no handshake says who listens. */
    int client = fd_ok(weft_udp_connect("localhost", 9), "weft_udp_connect(localhost)");
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    EQ(getpeername(client, (struct sockaddr *)&peer, &plen), 0);
    cr_assert(is_loopback(&peer), "localhost connected to a non-loopback address");
    EQ(weft_close(client), 0);
    EQ(weft_close(server), 0);
    EQ(weft_udp_connect("weft-no-such-host..invalid", 9), -ENOENT);
    EQ(weft_udp_bind("weft-no-such-host..invalid", 0, 0), -ENOENT);
    return 0;
}

Test(socket, udp_bind_and_connect_resolve_names_to_loopback_and_unknown_ones_give_enoent)
{
    EQ(run_limited(udp_names_main, NULL, SEC(10)), 0);
}

Test(socket, udp_bind_errors_and_reuseport_without_a_loop)
{
    int a = fd_ok(weft_udp_bind("127.0.0.1", 0, 0), "weft_udp_bind");
    int port = port_ok(a);
    EQ(weft_udp_bind("127.0.0.1", (uint16_t)port, 0), -EADDRINUSE);
    EQ(weft_udp_bind("127.0.0.1", 0, 0x100), -EINVAL);
    EQ(weft_udp_bind("192.0.2.1", 0, 0), -EADDRNOTAVAIL); /* TEST-NET-1: not this machine's */
    /* Two sockets share a port when both ask for it. */
    int r1 = fd_ok(weft_udp_bind("127.0.0.1", 0, WEFT_REUSEPORT), "weft_udp_bind(REUSEPORT)");
    int r2 = fd_ok(weft_udp_bind("127.0.0.1", (uint16_t)port_ok(r1), WEFT_REUSEPORT), "second REUSEPORT bind");
    EQ(weft_socket_port(r2), weft_socket_port(r1));
    /* Outside any loop a name is resolved with a blocking lookup: nothing to stall. */
    EQ(weft_udp_bind("weft-no-such-host..invalid", 0, 0), -ENOENT);
    int c = fd_ok(weft_udp_connect("127.0.0.1", (uint16_t)port), "weft_udp_connect outside a loop");
    close(c);
    close(r1);
    close(r2);
    close(a);
}

/* ---- Unix stream sockets ------------------------------------------------------------------------- */

enum { STREAM_BYTES = 1024 * 1024 };
static unsigned char stream_out[STREAM_BYTES];

static intptr_t stream_sender(void *arg)
{
    int fd = (int)(intptr_t)arg;
    fill(stream_out, sizeof stream_out, 3);
    ssize_t n = weft_send_all(fd, stream_out, sizeof stream_out);
    if (n != (ssize_t)sizeof stream_out)
        return n < 0 ? n : -EIO;
    return weft_shutdown(fd, SHUT_WR);
}

static intptr_t unix_echo_main(void *arg)
{
    const char *path = arg;
    int lfd = fd_ok(weft_unix_listen(path, 4), "weft_unix_listen");
    cr_assert(fcntl(lfd, F_GETFL) & O_NONBLOCK, "unix listener is not non-blocking");
    cr_assert(fcntl(lfd, F_GETFD) & FD_CLOEXEC, "not close-on-exec");
    EQ(weft_socket_port(lfd), -EAFNOSUPPORT);
    struct stat st;
    if (path[0] == '@')
        cr_assert(stat(path, &st) < 0, "an abstract name made a file");
    else
        cr_assert(stat(path, &st) == 0 && S_ISSOCK(st.st_mode), "no socket file at %s", path);
    int c = fd_ok(weft_unix_connect(path), "weft_unix_connect");
    int s = fd_ok(weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC), "weft_accept");
    static unsigned char in[STREAM_BYTES];
    /* More than the socket buffers hold: the sender and the receiver must run at once. */
    weft_task *sender = weft_spawn(stream_sender, (void *)(intptr_t)c);
    EQ(weft_recv_exact(s, in, sizeof in), sizeof in);
    EQ(weft_join(sender), 0);
    cr_assert(memcmp(in, stream_out, sizeof in) == 0, "the stream changed on the way");
    EQ(weft_recv(s, in, 1, 0), 0);
    EQ(weft_send(s, "ok", 2, 0), 2);
    EQ(weft_recv_exact(c, in, 2), 2);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

static void temp_dir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/weft-sock-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
}

Test(socket, unix_stream_sockets_carry_a_stream_at_a_path_and_in_the_abstract_namespace)
{
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/s", dir);
    EQ(run_limited(unix_echo_main, path, SEC(10)), 0);
    EQ(unlink(path), 0);
    EQ(rmdir(dir), 0);
    char abstract[64];
    snprintf(abstract, sizeof abstract, "@weft-test-%d", (int)getpid());
    EQ(run_limited(unix_echo_main, abstract, SEC(10)), 0);
}

static intptr_t unix_errors_main(void *arg)
{
    const char *dir = arg;
    char path[256];
    /* 107 bytes and the NUL fill sun_path: the longest path that fits. */
    size_t base = strlen(dir) + 1;
    snprintf(path, sizeof path, "%s/%0*d", dir, (int)(107 - base), 0);
    EQ(strlen(path), 107);
    int lfd = fd_ok(weft_unix_listen(path, 4), "weft_unix_listen(107 bytes)");
    int c = fd_ok(weft_unix_connect(path), "weft_unix_connect(107 bytes)");
    EQ(weft_close(c), 0);
    /* The file stays after the listener: a second listener is refused until it is unlinked. */
    EQ(weft_close(lfd), 0);
    EQ(weft_unix_listen(path, 4), -EADDRINUSE);
    EQ(unlink(path), 0);
    /* 108 does not. */
    snprintf(path, sizeof path, "%s/%0*d", dir, (int)(108 - base), 0);
    EQ(weft_unix_listen(path, 4), -ENAMETOOLONG);
    EQ(weft_unix_connect(path), -ENAMETOOLONG);
    /* The abstract namespace: 107 bytes after the '@', not 108. */
    char name[128] = "@";
    memset(name + 1, 'w', 107);
    name[108] = '\0';
    lfd = fd_ok(weft_unix_listen(name, 4), "weft_unix_listen(@ and 107 bytes)");
    c = fd_ok(weft_unix_connect(name), "weft_unix_connect(@ and 107 bytes)");
    EQ(weft_close(c), 0);
    EQ(weft_close(lfd), 0);
    name[108] = 'w';
    name[109] = '\0';
    EQ(weft_unix_listen(name, 4), -ENAMETOOLONG);
    /* Missing things. */
    snprintf(path, sizeof path, "%s/missing/s", dir);
    EQ(weft_unix_listen(path, 4), -ENOENT);
    EQ(weft_unix_connect(path), -ENOENT);
    char nobody[64];
    snprintf(nobody, sizeof nobody, "@weft-nobody-%d", (int)getpid());
    EQ(weft_unix_connect(nobody), -ECONNREFUSED);
    EQ(weft_unix_listen(NULL, 4), -EINVAL);
    EQ(weft_unix_listen("", 4), -EINVAL);
    EQ(weft_unix_listen("@", 4), -EINVAL);
    EQ(weft_unix_connect(NULL), -EINVAL);
    EQ(weft_unix_connect("@"), -EINVAL);
    return 0;
}

Test(socket, unix_paths_longer_than_sun_path_give_enametoolong_and_bad_ones_their_errors)
{
    char dir[64];
    temp_dir(dir, sizeof dir);
    EQ(run_limited(unix_errors_main, dir, SEC(10)), 0);
    EQ(rmdir(dir), 0);
    EQ(weft_unix_connect("@weft-x"), -EPERM); /* it suspends: only in a task */
}

/* ---- ports ----------------------------------------------------------------------------------------- */

Test(socket, socket_port_gives_the_port_the_kernel_picked_and_errors_for_what_has_none)
{
    int tcp4 = fd_ok(weft_tcp_listen("127.0.0.1", 0, 4, 0), "tcp4");
    int tcp6 = fd_ok(weft_tcp_listen("::1", 0, 4, 0), "tcp6");
    int udp4 = fd_ok(weft_udp_bind("127.0.0.1", 0, 0), "udp4");
    int udp6 = fd_ok(weft_udp_bind("::1", 0, 0), "udp6");
    int fds[] = {tcp4, tcp6, udp4, udp6};
    for (size_t i = 0; i < 4; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        EQ(getsockname(fds[i], (struct sockaddr *)&ss, &len), 0);
        int want = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                 : ((struct sockaddr_in6 *)&ss)->sin6_port);
        cr_assert(want != 0);
        EQ(weft_socket_port(fds[i]), want);
        close(fds[i]);
    }
    int unbound = socket(AF_INET, SOCK_DGRAM, 0);
    EQ(weft_socket_port(unbound), 0);
    close(unbound);
    int pipe_fds[2];
    EQ(pipe(pipe_fds), 0);
    EQ(weft_socket_port(pipe_fds[0]), -ENOTSOCK);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    EQ(weft_socket_port(-1), -EBADF);
    int sv[2];
    EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    EQ(weft_socket_port(sv[0]), -EAFNOSUPPORT);
    close(sv[0]);
    close(sv[1]);
}

/* ---- weft_tcp_listen with a name ----------------------------------------------------------------- */

static intptr_t listen_name_main(void *arg)
{
    (void)arg;
    weft_stats before, after;
    EQ(weft_stats_get(&before), 0);
    int lfd = fd_ok(weft_tcp_listen("localhost", 0, 4, 0), "weft_tcp_listen(localhost)");
    EQ(weft_stats_get(&after), 0);
    /* The lookup ran on the executor, not on the loop. */
    EQ(after.executor_jobs - before.executor_jobs, 1);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    EQ(getsockname(lfd, (struct sockaddr *)&bound, &blen), 0);
    cr_assert(is_loopback(&bound), "localhost bound to a non-loopback address");
    /* weft_tcp_connect tries each of localhost's addresses: one is the listener's. */
    int c = fd_ok(weft_tcp_connect("localhost", (uint16_t)port_ok(lfd)), "weft_tcp_connect(localhost)");
    int s = fd_ok(weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC), "weft_accept");
    EQ(weft_send(c, "hi", 2, 0), 2);
    char buf[2];
    EQ(weft_recv_exact(s, buf, 2), 2);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    EQ(weft_close(lfd), 0);
    EQ(weft_tcp_listen("weft-no-such-host..invalid", 0, 4, 0), -ENOENT);
    /* A cancelled task is refused before the lookup. */
    EQ(weft_cancel(weft_self()), 0);
    EQ(weft_tcp_listen("localhost", 0, 4, 0), -ECANCELED);
    return 0;
}

Test(socket, tcp_listen_resolves_localhost_on_the_executor_from_a_task)
{
    EQ(run_limited(listen_name_main, NULL, SEC(10)), 0);
}

Test(socket, tcp_listen_resolves_localhost_with_a_blocking_lookup_before_any_loop_runs)
{
    int lfd = fd_ok(weft_tcp_listen("localhost", 0, 4, 0), "weft_tcp_listen(localhost)");
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    EQ(getsockname(lfd, (struct sockaddr *)&bound, &blen), 0);
    cr_assert(is_loopback(&bound), "localhost bound to a non-loopback address");
    EQ(weft_tcp_listen("localhost", (uint16_t)port_ok(lfd), 4, 0), -EADDRINUSE);
    close(lfd);
    EQ(weft_tcp_listen("weft-no-such-host..invalid", 0, 4, 0), -ENOENT);
}

struct in_callback {
    int by_name, by_number, udp_by_name;
};

static void listen_in_callback(void *arg)
{
    struct in_callback *cb = arg;
    cb->by_name = weft_tcp_listen("localhost", 0, 4, 0);
    cb->udp_by_name = weft_udp_bind("localhost", 0, 0);
    cb->by_number = weft_tcp_listen("127.0.0.1", 0, 4, 0);
}

Test(socket, in_a_callback_a_name_gives_eperm_and_a_numeric_address_still_listens)
{
    struct in_callback cb = {0, -1, 0};
    run_in_callback(listen_in_callback, &cb);
    EQ(cb.by_name, -EPERM); /* a blocking lookup there would stall the loop */
    EQ(cb.udp_by_name, -EPERM);
    cr_assert(cb.by_number >= 0, "numeric listen in a callback: %d (%s)", cb.by_number, res_name(cb.by_number));
    close(cb.by_number);
}
