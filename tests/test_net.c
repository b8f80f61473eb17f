/*
 * The proactor's network and pipe calls: TCP echo on loopback (IPv4 and IPv6), listening, name
 * resolution, accept/connect with addresses, recvmsg/sendmsg, shutdown, send_all/recv_exact, the
 * _async forms, cancellation and deadlines of blocked calls (with no byte lost), weft_close of an fd
 * in use, bad input, ring pressure and weft_poll.
 *
 * Every scenario runs under a weft deadline (run_net), so a call that hangs becomes -ETIMEDOUT and a
 * failed assertion rather than a stuck test. fds weft has used are closed with weft_close: the epoll
 * backend keeps per-fd state that a plain close would leave stale.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "common.h"

TestSuite(net, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------------------- */

static int listener(const char *host, int backlog)
{
    int fd = weft_tcp_listen(host, 0, backlog, 0);
    cr_assert(fd >= 0, "weft_tcp_listen(%s, 0): %d (%s)", host, fd, res_name(fd));
    return fd;
}

static struct sockaddr_in loopback4(uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sin;
}

/* No data waiting on fd (a socket or a pipe): poll(2) says it is not readable. */
static void nothing_pending(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, 0);
    cr_assert(r == 0, "unexpected bytes pending on fd %d: poll gave %d, revents 0x%x", fd, r, pfd.revents);
}

/* ---- TCP echo: 8 clients, 1 MiB each, compared byte for byte ------------------------------------- */

enum { ECHO_CLIENTS = 8, ECHO_BYTES = 1 << 20, ECHO_CHUNK = 64 * 1024 };

static intptr_t echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char *buf = malloc(ECHO_CHUNK);
    cr_assert(buf);
    intptr_t total = 0, err = 0;
    for (;;) {
        ssize_t n = weft_recv(fd, buf, ECHO_CHUNK, 0);
        if (n <= 0) {
            err = n;
            break;
        }
        ssize_t sent = weft_send_all(fd, buf, (size_t)n);
        if (sent != n) {
            err = sent < 0 ? sent : -EIO;
            break;
        }
        total += n;
    }
    free(buf);
    EQ(weft_close(fd), 0);
    return err < 0 ? err : total;
}

struct echo_server {
    int lfd;
    int conns;
};

static intptr_t echo_server(void *arg)
{
    struct echo_server *srv = arg;
    weft_task *conns[ECHO_CLIENTS];
    for (int i = 0; i < srv->conns; i++) {
        int fd = weft_accept(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return fd;
        conns[i] = weft_spawn(echo_conn, (void *)(intptr_t)fd);
        cr_assert(conns[i]);
    }
    intptr_t total = 0;
    for (int i = 0; i < srv->conns; i++) {
        intptr_t r = weft_join(conns[i]);
        EQ(r, ECHO_BYTES);
        total += r;
    }
    return total;
}

struct echo_client {
    const char *host;
    uint16_t port;
    uint32_t seed;
    int fd;
    unsigned char *out, *in;
};

/* Sends the client's pattern in pieces of varying size, then half-closes. */
static intptr_t echo_sender(void *arg)
{
    struct echo_client *c = arg;
    uint32_t s = c->seed + 77;
    size_t done = 0;
    while (done < ECHO_BYTES) {
        size_t piece = xorshift(&s) % (3 * ECHO_CHUNK) + 1;
        if (piece > ECHO_BYTES - done)
            piece = ECHO_BYTES - done;
        ssize_t n = weft_send_all(c->fd, c->out + done, piece);
        EQ(n, piece);
        done += piece;
    }
    EQ(weft_shutdown(c->fd, SHUT_WR), 0);
    return (intptr_t)done;
}

static intptr_t echo_client(void *arg)
{
    struct echo_client *c = arg;
    c->fd = weft_tcp_connect(c->host, c->port);
    cr_assert(c->fd >= 0, "weft_tcp_connect: %d (%s)", c->fd, res_name(c->fd));
    weft_task *sender = weft_spawn(echo_sender, c);
    /* Receive concurrently with sending: the server's replies fill our receive buffer otherwise. */
    ssize_t got = weft_recv_exact(c->fd, c->in, ECHO_BYTES);
    EQ(got, ECHO_BYTES);
    char extra;
    EQ(weft_recv(c->fd, &extra, 1, 0), 0); /* the server closed after our EOF: nothing more */
    EQ(weft_join(sender), ECHO_BYTES);
    EQ(weft_close(c->fd), 0);
    return got;
}

static intptr_t echo_main(void *arg)
{
    const char *host = arg;
    struct echo_server srv = {.lfd = listener(host, 64), .conns = ECHO_CLIENTS};
    uint16_t port = port_of(srv.lfd);
    cr_assert(port != 0);
    weft_task *server = weft_spawn_named("echo-server", echo_server, &srv);
    struct echo_client clients[ECHO_CLIENTS];
    weft_task *ts[ECHO_CLIENTS];
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        clients[i] = (struct echo_client){.host = host, .port = port, .seed = (uint32_t)i + 1};
        clients[i].out = malloc(ECHO_BYTES);
        clients[i].in = malloc(ECHO_BYTES);
        cr_assert(clients[i].out && clients[i].in);
        fill_pattern(clients[i].out, ECHO_BYTES, clients[i].seed);
        memset(clients[i].in, 0, ECHO_BYTES);
        ts[i] = weft_spawn(echo_client, &clients[i]);
    }
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        EQ(weft_join(ts[i]), ECHO_BYTES);
        char what[64];
        snprintf(what, sizeof what, "client %d's echo", i);
        same_bytes(clients[i].in, clients[i].out, ECHO_BYTES, what);
        free(clients[i].out);
        free(clients[i].in);
    }
    EQ(weft_join(server), (intptr_t)ECHO_CLIENTS * ECHO_BYTES);
    EQ(weft_close(srv.lfd), 0);
    return 0;
}

Test(net, echo_of_1mib_through_8_concurrent_clients_is_byte_exact)
{
    EQ(run_guarded(echo_main, "127.0.0.1"), 0);
}

Test(net, echo_over_ipv6_loopback_is_byte_exact)
{
    EQ(run_guarded(echo_main, "::1"), 0);
}

/* ---- listening and connecting ------------------------------------------------------------------------ */

struct family_case {
    const char *listen_host, *connect_host;
    int family;
};

static intptr_t family_main(void *arg)
{
    const struct family_case *fc = arg;
    int lfd = weft_tcp_listen(fc->listen_host, 0, 8, 0);
    cr_assert(lfd >= 0, "weft_tcp_listen(%s): %d (%s)", fc->listen_host, lfd, res_name(lfd));
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    EQ(getsockname(lfd, (struct sockaddr *)&bound, &blen), 0);
    EQ(bound.ss_family, fc->family);
    uint16_t port = port_of(lfd);
    cr_assert(port != 0, "port 0 did not get a kernel-chosen port");
    int c = weft_tcp_connect(fc->connect_host, port);
    cr_assert(c >= 0, "weft_tcp_connect(%s): %d (%s)", fc->connect_host, c, res_name(c));
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    int s = weft_accept(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
    cr_assert(s >= 0, "weft_accept: %d (%s)", s, res_name(s));
    EQ(peer.ss_family, fc->family);
    EQ(plen, fc->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    /* weft_tcp_connect sets TCP_NODELAY. */
    int nodelay = 0;
    socklen_t nlen = sizeof nodelay;
    EQ(getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nodelay, &nlen), 0);
    cr_assert(nodelay, "weft_tcp_connect did not set TCP_NODELAY");
    EQ(weft_send(c, "ping", 4, 0), 4);
    char buf[8] = {0};
    EQ(weft_recv_exact(s, buf, 4), 4);
    cr_assert(memcmp(buf, "ping", 4) == 0);
    EQ(weft_send(s, "pong", 4, 0), 4);
    EQ(weft_recv_exact(c, buf, 4), 4);
    cr_assert(memcmp(buf, "pong", 4) == 0);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(net, ipv4_listen_on_port_0_then_connect_and_exchange)
{
    struct family_case fc = {"127.0.0.1", "127.0.0.1", AF_INET};
    EQ(run_guarded(family_main, &fc), 0);
}

Test(net, ipv6_listen_on_port_0_then_connect_and_exchange)
{
    struct family_case plain = {"::1", "::1", AF_INET6};
    EQ(run_guarded(family_main, &plain), 0);
    struct family_case bracketed = {"[::1]", "[::1]", AF_INET6};
    EQ(run_guarded(family_main, &bracketed), 0);
}

Test(net, tcp_listen_port_0_picks_distinct_ports_and_rejects_bad_input_without_a_loop)
{
    /* weft_tcp_listen does not suspend: usable before any loop runs. */
    int a = weft_tcp_listen("127.0.0.1", 0, 4, 0);
    int b = weft_tcp_listen("127.0.0.1", 0, 4, 0);
    cr_assert(a >= 0 && b >= 0, "weft_tcp_listen: %d, %d", a, b);
    cr_assert(port_of(a) != 0 && port_of(b) != 0 && port_of(a) != port_of(b));
    cr_assert(fcntl(a, F_GETFD) & FD_CLOEXEC, "listener is not close-on-exec");
    cr_assert(fcntl(a, F_GETFL) & O_NONBLOCK, "listener is not non-blocking");
    EQ(accept(a, NULL, NULL), -1); /* no connection waits: EAGAIN, not a blocked thread */
    EQ(errno, EAGAIN);
    /* The port is taken: a second listener without WEFT_REUSEPORT cannot have it. */
    EQ(weft_tcp_listen("127.0.0.1", port_of(a), 4, 0), -EADDRINUSE);
    EQ(weft_tcp_listen("weft-no-such-host..invalid", 0, 4, 0), -ENOENT); /* a name, looked up blocking */
    EQ(weft_tcp_listen("127.0.0.1", 0, 4, 0x100), -EINVAL); /* unknown flag */
    close(a);
    close(b);
}

enum { REUSE_CONNS = 32 };

struct reuse {
    int lfd[2];
    int accepted[2];
    int total;
    weft_event *all_in;
};

struct reuse_acceptor {
    struct reuse *r;
    int which;
};

static intptr_t reuse_accept_loop(void *arg)
{
    struct reuse_acceptor *a = arg;
    struct reuse *r = a->r;
    for (;;) {
        int fd = weft_accept(r->lfd[a->which], NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            return fd;
        r->accepted[a->which]++;
        EQ(weft_close(fd), 0);
        if (++r->total == REUSE_CONNS)
            weft_event_set(r->all_in);
    }
}

static intptr_t reuseport_main(void *arg)
{
    (void)arg;
    struct reuse r = {.all_in = weft_event_new()};
    r.lfd[0] = weft_tcp_listen("127.0.0.1", 0, 64, WEFT_REUSEPORT);
    cr_assert(r.lfd[0] >= 0, "first listener: %d (%s)", r.lfd[0], res_name(r.lfd[0]));
    uint16_t port = port_of(r.lfd[0]);
    r.lfd[1] = weft_tcp_listen("127.0.0.1", port, 64, WEFT_REUSEPORT);
    cr_assert(r.lfd[1] >= 0, "second listener on port %u: %d (%s)", port, r.lfd[1], res_name(r.lfd[1]));
    EQ(port_of(r.lfd[1]), port);
    struct reuse_acceptor acc[2] = {{&r, 0}, {&r, 1}};
    weft_task *ts[2] = {weft_spawn(reuse_accept_loop, &acc[0]), weft_spawn(reuse_accept_loop, &acc[1])};
    int clients[REUSE_CONNS];
    for (int i = 0; i < REUSE_CONNS; i++) {
        clients[i] = weft_tcp_connect("127.0.0.1", port);
        cr_assert(clients[i] >= 0, "connect %d: %d (%s)", i, clients[i], res_name(clients[i]));
    }
    EQ(weft_event_wait(r.all_in), 0);
    EQ(r.accepted[0] + r.accepted[1], REUSE_CONNS);
    /* The kernel spreads connections over the group by a hash of the 4-tuple: with 32 connections
     * from distinct ports, one listener getting none would be a 1 in 2^31 event. */
    cr_assert(r.accepted[0] > 0 && r.accepted[1] > 0, "accepted %d and %d: both listeners should accept",
              r.accepted[0], r.accepted[1]);
    for (int i = 0; i < 2; i++) {
        EQ(weft_cancel(ts[i]), 0);
        EQ(weft_join(ts[i]), -ECANCELED);
        EQ(weft_close(r.lfd[i]), 0);
    }
    for (int i = 0; i < REUSE_CONNS; i++)
        EQ(weft_close(clients[i]), 0);
    weft_event_free(r.all_in);
    return 0;
}

Test(net, reuseport_lets_two_listeners_share_a_port_and_both_accept)
{
    EQ(run_guarded(reuseport_main, NULL), 0);
}

static intptr_t localhost_main(void *arg)
{
    (void)arg;
    int lfd = listener("127.0.0.1", 8);
    weft_stats before, after;
    EQ(weft_stats_get(&before), 0);
    /* "localhost" may resolve to ::1 first, where nobody listens: each address is tried in turn. */
    int c = weft_tcp_connect("localhost", port_of(lfd));
    cr_assert(c >= 0, "weft_tcp_connect(localhost): %d (%s)", c, res_name(c));
    EQ(weft_stats_get(&after), 0);
    cr_assert(after.executor_jobs > before.executor_jobs, "the name was not resolved on the executor (jobs %" PRIu64
              " -> %" PRIu64 ")", before.executor_jobs, after.executor_jobs);
    int s = weft_accept(lfd, NULL, NULL, 0);
    cr_assert(s >= 0);
    EQ(weft_send(c, "hi", 2, 0), 2);
    char buf[2];
    EQ(weft_recv_exact(s, buf, 2), 2);
    cr_assert(memcmp(buf, "hi", 2) == 0);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    /* An empty label makes the name invalid before any DNS query: the answer is local and final. */
    EQ(weft_tcp_connect("weft-no-such-host..invalid", port_of(lfd)), -ENOENT);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(net, tcp_connect_resolves_localhost_on_the_executor_and_unknown_names_give_enoent)
{
    EQ(run_guarded(localhost_main, NULL), 0);
}

static intptr_t raw_calls_main(void *arg)
{
    (void)arg;
    int lfd = listener("127.0.0.1", 8);
    uint16_t port = port_of(lfd);
    int c = weft_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(c >= 0, "weft_socket: %d (%s)", c, res_name(c));
    cr_assert(fcntl(c, F_GETFD) & FD_CLOEXEC, "SOCK_CLOEXEC not applied by weft_socket");
    struct sockaddr_in to = loopback4(port);
    EQ(weft_connect(c, (struct sockaddr *)&to, sizeof to), 0);

    struct sockaddr_storage from;
    memset(&from, 0xAA, sizeof from);
    socklen_t len = sizeof from;
    int s = weft_accept(lfd, (struct sockaddr *)&from, &len, SOCK_CLOEXEC);
    cr_assert(s >= 0, "weft_accept: %d (%s)", s, res_name(s));
    cr_assert(fcntl(s, F_GETFD) & FD_CLOEXEC, "SOCK_CLOEXEC not applied by weft_accept");
    EQ(len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&from;
    EQ(sin->sin_family, AF_INET);
    EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    EQ(ntohs(sin->sin_port), port_of(c)); /* the peer's address is the client's own */

    /* accept4's contract on a short buffer: the address is truncated, len says the real size. */
    int c2 = weft_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(c2 >= 0);
    EQ(weft_connect(c2, (struct sockaddr *)&to, sizeof to), 0);
    struct sockaddr_storage small;
    socklen_t small_len = 4;
    int s2 = weft_accept(lfd, (struct sockaddr *)&small, &small_len, 0);
    cr_assert(s2 >= 0);
    EQ(small_len, sizeof(struct sockaddr_in));

    EQ(weft_send(c, "abc", 3, 0), 3);
    char buf[3];
    EQ(weft_recv_exact(s, buf, 3), 3);
    cr_assert(memcmp(buf, "abc", 3) == 0);
    int fds[] = {c, s, c2, s2, lfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        EQ(weft_close(fds[i]), 0);
    return 0;
}

Test(net, socket_connect_and_accept_fill_the_peer_address_and_its_length)
{
    EQ(run_guarded(raw_calls_main, NULL), 0);
}

/* ---- recvmsg / sendmsg, shutdown ------------------------------------------------------------------ */

static intptr_t msg_main(void *arg)
{
    (void)arg;
    int c, s;
    loopback_tcp_pair(&c, &s);
    char head[] = "head-", tail[] = "tail";
    struct iovec out[2] = {{head, 5}, {tail, 4}};
    struct msghdr smsg = {.msg_iov = out, .msg_iovlen = 2};
    EQ(weft_sendmsg(c, &smsg, 0), 9);
    char first[4], second[16];
    memset(second, 0, sizeof second);
    struct iovec in[2] = {{first, sizeof first}, {second, sizeof second}};
    struct msghdr rmsg = {.msg_iov = in, .msg_iovlen = 2};
    EQ(weft_recvmsg(s, &rmsg, 0), 9);
    cr_assert(memcmp(first, "head", 4) == 0, "first iovec: %.4s", first);
    cr_assert(memcmp(second, "-tail", 5) == 0, "second iovec: %.5s", second);
    EQ(rmsg.msg_flags, 0);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);

    /* Datagrams: sendmsg to msg_name, recvmsg fills in the sender's address. */
    int u1 = weft_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int u2 = weft_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(u1 >= 0 && u2 >= 0);
    struct sockaddr_in any = loopback4(0);
    EQ(bind(u1, (struct sockaddr *)&any, sizeof any), 0);
    EQ(bind(u2, (struct sockaddr *)&any, sizeof any), 0);
    struct sockaddr_in to = loopback4(port_of(u2));
    smsg = (struct msghdr){.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = out, .msg_iovlen = 2};
    EQ(weft_sendmsg(u1, &smsg, 0), 9);
    struct sockaddr_storage from;
    memset(&from, 0, sizeof from);
    memset(second, 0, sizeof second);
    rmsg = (struct msghdr){.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = in, .msg_iovlen = 2};
    EQ(weft_recvmsg(u2, &rmsg, 0), 9);
    EQ(rmsg.msg_namelen, sizeof(struct sockaddr_in));
    EQ(ntohs(((struct sockaddr_in *)&from)->sin_port), port_of(u1));
    cr_assert(memcmp(first, "head", 4) == 0 && memcmp(second, "-tail", 5) == 0);
    EQ(weft_close(u1), 0);
    EQ(weft_close(u2), 0);
    return 0;
}

Test(net, sendmsg_and_recvmsg_scatter_and_gather_two_iovecs)
{
    EQ(run_guarded(msg_main, NULL), 0);
}

static intptr_t shutdown_main(void *arg)
{
    (void)arg;
    int c, s;
    loopback_tcp_pair(&c, &s);
    EQ(weft_send(c, "abc", 3, 0), 3);
    EQ(weft_shutdown(c, SHUT_WR), 0);
    char buf[8];
    EQ(weft_recv_exact(s, buf, 3), 3);
    cr_assert(memcmp(buf, "abc", 3) == 0);
    EQ(weft_recv(s, buf, sizeof buf, 0), 0); /* EOF */
    EQ(weft_recv(s, buf, sizeof buf, 0), 0); /* and it stays EOF */
    /* A half-close: the other direction still works. */
    EQ(weft_send(s, "xyz", 3, 0), 3);
    EQ(weft_recv_exact(c, buf, 3), 3);
    cr_assert(memcmp(buf, "xyz", 3) == 0);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    return 0;
}

Test(net, shutdown_wr_gives_the_peer_eof_and_keeps_the_other_direction)
{
    EQ(run_guarded(shutdown_main, NULL), 0);
}

/* ---- send_all / recv_exact ----------------------------------------------------------------------- */

enum { BIG = 4 << 20 };

struct big_send {
    int fd;
    const unsigned char *buf;
};

static intptr_t big_sender(void *arg)
{
    struct big_send *b = arg;
    return weft_send_all(b->fd, b->buf, BIG);
}

struct partial {
    int fd;
    char buf[100];
    ssize_t first, second;
};

static intptr_t recv_exact_until_cancelled(void *arg)
{
    struct partial *p = arg;
    p->first = weft_recv_exact(p->fd, p->buf, sizeof p->buf);
    p->second = weft_recv_exact(p->fd, p->buf, sizeof p->buf);
    return 0;
}

static intptr_t exact_main(void *arg)
{
    (void)arg;
    int c, s;
    loopback_tcp_pair(&c, &s);
    /* 4 MiB is far more than the socket buffers: send_all must loop over partial sends. */
    unsigned char *out = malloc(BIG), *in = malloc(BIG);
    cr_assert(out && in);
    fill_pattern(out, BIG, 99);
    memset(in, 0, BIG);
    struct big_send bs = {c, out};
    weft_task *sender = weft_spawn(big_sender, &bs);
    size_t pieces[] = {1, 1000, (1 << 20) + 7, BIG - 1 - 1000 - ((1 << 20) + 7)};
    size_t at = 0;
    for (size_t i = 0; i < 4; i++) {
        EQ(weft_recv_exact(s, in + at, pieces[i]), pieces[i]);
        at += pieces[i];
    }
    EQ(weft_join(sender), BIG);
    same_bytes(in, out, BIG, "send_all -> recv_exact");
    free(out);
    free(in);

    /* Short only at end of stream: 100 bytes then EOF, asked for 200. */
    char msg[100], got[200];
    memset(msg, 'q', sizeof msg);
    EQ(weft_send_all(c, msg, sizeof msg), sizeof msg);
    EQ(weft_shutdown(c, SHUT_WR), 0);
    EQ(weft_recv_exact(s, got, sizeof got), 100);
    cr_assert(memcmp(got, msg, 100) == 0);
    EQ(weft_recv_exact(s, got, sizeof got), 0);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);

    /* An interruption after some bytes arrived: recv_exact returns them; the next call sees it. */
    loopback_tcp_pair(&c, &s);
    struct partial p = {.fd = s, .first = INT32_MIN, .second = INT32_MIN};
    weft_task *t = weft_spawn(recv_exact_until_cancelled, &p);
    EQ(weft_send(c, "0123456789", 10, 0), 10);
    settle();
    EQ(p.first, INT32_MIN); /* still waiting for 90 more bytes */
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), 0);
    EQ(p.first, 10);
    cr_assert(memcmp(p.buf, "0123456789", 10) == 0);
    EQ(p.second, -ECANCELED);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    return 0;
}

Test(net, send_all_sends_everything_and_recv_exact_is_short_only_at_eof_or_interruption)
{
    EQ(run_guarded(exact_main, NULL), 0);
}

/* The peer sends a little, then resets the connection: the reader has bytes, then an error. */
static intptr_t reset_after_ten(void *arg)
{
    int c = (int)(intptr_t)arg;
    EQ(weft_send(c, "0123456789", 10, 0), 10);
    settle();
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    EQ(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    EQ(weft_close(c), 0); /* with a zero linger: RST */
    return 0;
}

/* A socket domain whose value is a free fd number here, with a type it takes without privileges. */
static void free_domain(int *domain, int *type)
{
    static const int domains[][2] = {{AF_INET6, SOCK_STREAM}, {AF_NETLINK, SOCK_RAW}, {AF_INET, SOCK_STREAM}};
    for (size_t i = 0; i < sizeof domains / sizeof domains[0]; i++) {
        if (fcntl(domains[i][0], F_GETFD) < 0 && errno == EBADF) {
            *domain = domains[i][0];
            *type = domains[i][1];
            return;
        }
    }
    cr_assert_fail("fds 10, 16 and 2 are all in use in this test process");
}

/* Makes fd the number want (free, or fd itself), closing the old number. */
static int move_fd(int fd, int want)
{
    if (fd == want)
        return fd;
    cr_assert(dup2(fd, want) == want);
    close(fd);
    return want;
}

static intptr_t held_error_main(void *arg)
{
    (void)arg;
    /* The reader sits on an fd whose number is a socket domain's value (10, AF_INET6, where it is
     * free): an error held for it must not leak into a weft_socket of that domain, which names no fd. */
    int domain, type;
    free_domain(&domain, &type);
    int c, s;
    loopback_tcp_pair(&c, &s);
    s = move_fd(s, domain);
    weft_task *peer = weft_spawn(reset_after_ten, (void *)(intptr_t)c);
    char buf[100];
    EQ(weft_recv_exact(s, buf, sizeof buf), 10);
    cr_assert(memcmp(buf, "0123456789", 10) == 0);
    EQ(weft_join(peer), 0);
    int other = weft_socket(domain, type | SOCK_CLOEXEC, 0);
    cr_assert(other >= 0, "weft_socket got the error held for fd %d: %d (%s)", s, other, res_name(other));
    EQ(weft_close(other), 0);
    /* The next call on the fd itself gets it. */
    EQ(weft_recv(s, buf, sizeof buf, 0), -ECONNRESET);
    EQ(weft_close(s), 0);

    /* weft_close drops a held error: the next file with that number starts clean. */
    loopback_tcp_pair(&c, &s);
    s = move_fd(s, domain);
    peer = weft_spawn(reset_after_ten, (void *)(intptr_t)c);
    EQ(weft_recv_exact(s, buf, sizeof buf), 10);
    EQ(weft_join(peer), 0);
    EQ(weft_close(s), 0);
    loopback_tcp_pair(&c, &s);
    s = move_fd(s, domain);
    EQ(weft_send(c, "ok", 2, 0), 2);
    EQ(weft_recv(s, buf, sizeof buf, 0), 2);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    return 0;
}

Test(net, an_error_held_after_partial_progress_reaches_only_the_next_call_on_that_fd)
{
    EQ(run_guarded(held_error_main, NULL), 0);
}

/* ---- the _async forms ----------------------------------------------------------------------------- */

static intptr_t ping_pong_peer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4];
    EQ(weft_recv_exact(fd, buf, 4), 4);
    cr_assert(memcmp(buf, "ping", 4) == 0);
    EQ(weft_send(fd, "pong", 4, 0), 4);
    return 0;
}

static intptr_t await_it(void *arg)
{
    return weft_await(arg);
}

static intptr_t async_main(void *arg)
{
    (void)arg;
    int c, s;
    loopback_tcp_pair(&c, &s);

    /* A recv and a send in flight at once from this one task. */
    weft_task *peer = weft_spawn(ping_pong_peer, (void *)(intptr_t)s);
    char in[4] = {0};
    weft_future *fs[2];
    fs[0] = weft_recv_async(c, in, sizeof in, 0);
    fs[1] = weft_send_async(c, "ping", 4, 0);
    cr_assert(fs[0] && fs[1], "_async: %s", strerror(errno));
    cr_assert(!weft_future_done(fs[0]), "the recv completed before any reply could exist");
    intptr_t results[2] = {-1, -1};
    EQ(weft_gather(fs, 2, results), 0);
    EQ(results[0], 4);
    EQ(results[1], 4);
    cr_assert(memcmp(in, "pong", 4) == 0);
    weft_future_free(fs[0]);
    weft_future_free(fs[1]);
    EQ(weft_join(peer), 0);

    /* Freeing a pending recv_async cancels it: its awaiter wakes with -ECANCELED, no byte is taken. */
    char dropped[16];
    memset(dropped, '#', sizeof dropped);
    weft_future *f = weft_recv_async(c, dropped, sizeof dropped, 0);
    cr_assert(f);
    weft_task *awaiter = weft_spawn(await_it, f);
    settle();
    cr_assert(!weft_future_done(f));
    weft_future_free(f);
    EQ(weft_join(awaiter), -ECANCELED);
    settle();
    EQ(weft_send(s, "hello", 5, 0), 5);
    char buf[16] = {0};
    EQ(weft_recv(c, buf, sizeof buf, 0), 5);
    cr_assert(memcmp(buf, "hello", 5) == 0);
    for (size_t i = 0; i < sizeof dropped; i++)
        cr_assert(dropped[i] == '#', "the freed recv wrote byte %zu of its buffer", i);

    /* weft_future_cancel of a pending one: -ECANCELED, and again nothing is consumed. */
    f = weft_recv_async(c, dropped, sizeof dropped, 0);
    cr_assert(f);
    settle();
    EQ(weft_future_cancel(f), 0);
    EQ(weft_await(f), -ECANCELED);
    EQ(weft_future_cancel(f), -EALREADY);
    weft_future_free(f);
    EQ(weft_send(s, "world", 5, 0), 5);
    memset(buf, 0, sizeof buf);
    EQ(weft_recv(c, buf, sizeof buf, 0), 5);
    cr_assert(memcmp(buf, "world", 5) == 0);
    for (size_t i = 0; i < sizeof dropped; i++)
        cr_assert(dropped[i] == '#', "the cancelled recv wrote byte %zu of its buffer", i);

    /* Errors arrive as the future's result. */
    f = weft_recv_async(-1, buf, sizeof buf, 0);
    cr_assert(f);
    EQ(weft_await(f), -EBADF);
    weft_future_free(f);
    f = weft_send_async(-1, "x", 1, 0);
    cr_assert(f);
    EQ(weft_await(f), -EBADF);
    weft_future_free(f);

    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    return 0;
}

Test(net, async_recv_and_send_in_flight_together_and_free_or_cancel_consumes_nothing)
{
    EQ(run_guarded(async_main, NULL), 0);
}

/* Freed at once, with nobody awaiting: the op is cancelled wherever it waits, and the fd, the buffer
 * and the heap all stay intact. */
static intptr_t free_pending_at_once_main(void *arg)
{
    (void)arg;
    int c, s, p[2];
    loopback_tcp_pair(&c, &s);
    EQ(pipe2(p, O_CLOEXEC), 0);
    char dropped[16];
    memset(dropped, '#', sizeof dropped);
    for (int i = 0; i < 4; i++) {
        weft_future *f = weft_recv_async(c, dropped, sizeof dropped, 0);
        cr_assert(f);
        weft_future_free(f);
        f = weft_read_async(p[0], dropped, sizeof dropped, -1);
        cr_assert(f);
        weft_future_free(f);
    }
    settle();
    EQ(weft_send(s, "hello", 5, 0), 5);
    EQ(write(p[1], "world", 5), 5);
    char buf[16] = {0};
    EQ(weft_recv(c, buf, sizeof buf, 0), 5);
    cr_assert(memcmp(buf, "hello", 5) == 0);
    EQ(weft_read(p[0], buf, sizeof buf, -1), 5);
    cr_assert(memcmp(buf, "world", 5) == 0);
    for (size_t i = 0; i < sizeof dropped; i++)
        cr_assert(dropped[i] == '#', "a freed read wrote byte %zu of its buffer", i);
    int fds[] = {c, s, p[0], p[1]};
    for (size_t i = 0; i < 4; i++)
        EQ(weft_close(fds[i]), 0);
    return 0;
}

Test(net, freeing_a_pending_recv_or_read_async_at_once_is_safe_and_takes_nothing)
{
    EQ(run_guarded(free_pending_at_once_main, NULL), 0);
}

Test(net, async_forms_outside_a_loop_return_null_with_eperm)
{
    char buf[4];
    NULL_WITH_ERRNO(weft_recv_async(0, buf, sizeof buf, 0), EPERM);
    NULL_WITH_ERRNO(weft_send_async(1, buf, sizeof buf, 0), EPERM);
    NULL_WITH_ERRNO(weft_read_async(0, buf, sizeof buf, -1), EPERM);
    NULL_WITH_ERRNO(weft_write_async(1, buf, sizeof buf, -1), EPERM);
}

/* ---- cancellation of blocked calls ---------------------------------------------------------------- */

enum { UNSET = INT32_MIN };

/* A task blocked in one call; what that call and the next two calls returned. */
struct blocked {
    int kind;
    int fd;
    struct sockaddr_in addr;
    char buf[32];
    intptr_t first, second, third;
};

enum { IN_RECV, IN_READ, IN_ACCEPT, IN_CONNECT, IN_POLL };

static intptr_t call_once(struct blocked *b)
{
    switch (b->kind) {
    case IN_RECV:
        return weft_recv(b->fd, b->buf, sizeof b->buf, 0);
    case IN_READ:
        return weft_read(b->fd, b->buf, sizeof b->buf, -1);
    case IN_ACCEPT:
        return weft_accept(b->fd, NULL, NULL, SOCK_CLOEXEC);
    case IN_CONNECT:
        return weft_connect(b->fd, (struct sockaddr *)&b->addr, sizeof b->addr);
    default:
        return weft_poll(b->fd, POLLIN);
    }
}

static intptr_t blocked_task(void *arg)
{
    struct blocked *b = arg;
    b->first = call_once(b);
    b->second = call_once(b); /* sticky: the same call again */
    b->third = weft_nop();    /* and any other suspending call */
    return b->first;
}

/* Spawns a task blocked in b's call, checks it really blocks, cancels it: -ECANCELED, sticky. */
static void cancel_blocked(struct blocked *b)
{
    memset(b->buf, '#', sizeof b->buf);
    b->first = b->second = b->third = UNSET;
    weft_task *t = weft_spawn(blocked_task, b);
    settle();
    settle();
    EQ(b->first, UNSET); /* still blocked */
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), -ECANCELED);
    EQ(b->first, -ECANCELED);
    EQ(b->second, -ECANCELED);
    EQ(b->third, -ECANCELED);
    for (size_t i = 0; i < sizeof b->buf; i++)
        cr_assert(b->buf[i] == '#', "the cancelled call wrote byte %zu of its buffer", i);
}

static intptr_t cancel_recv_main(void *arg)
{
    (void)arg;
    int c, s;
    loopback_tcp_pair(&c, &s);
    struct blocked b = {.kind = IN_RECV, .fd = s};
    cancel_blocked(&b);
    /* The fd still works, and the bytes sent after the cancel all arrive. */
    EQ(weft_send(c, "after-cancel", 12, 0), 12);
    char buf[32] = {0};
    EQ(weft_recv_exact(s, buf, 12), 12);
    cr_assert(memcmp(buf, "after-cancel", 12) == 0);
    nothing_pending(s);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    return 0;
}

Test(net, cancel_during_recv_returns_ecanceled_sticks_and_keeps_every_byte)
{
    EQ(run_guarded(cancel_recv_main, NULL), 0);
}

static intptr_t cancel_read_main(void *arg)
{
    (void)arg;
    int p[2];
    EQ(pipe2(p, O_CLOEXEC), 0);
    struct blocked b = {.kind = IN_READ, .fd = p[0]};
    cancel_blocked(&b);
    EQ(write(p[1], "pipe-bytes", 10), 10);
    char buf[32] = {0};
    EQ(weft_read(p[0], buf, sizeof buf, -1), 10);
    cr_assert(memcmp(buf, "pipe-bytes", 10) == 0);
    EQ(weft_close(p[0]), 0);
    EQ(weft_close(p[1]), 0);
    return 0;
}

Test(net, cancel_during_pipe_read_returns_ecanceled_sticks_and_keeps_every_byte)
{
    EQ(run_guarded(cancel_read_main, NULL), 0);
}

static intptr_t cancel_accept_main(void *arg)
{
    (void)arg;
    int lfd = listener("127.0.0.1", 8);
    struct blocked b = {.kind = IN_ACCEPT, .fd = lfd};
    cancel_blocked(&b);
    /* The listener still works and the connection made after the cancel is still queued for us. */
    int c = weft_tcp_connect("127.0.0.1", port_of(lfd));
    cr_assert(c >= 0);
    int s = weft_accept(lfd, NULL, NULL, 0);
    cr_assert(s >= 0, "accept after cancel: %d (%s)", s, res_name(s));
    EQ(weft_send(c, "z", 1, 0), 1);
    char z = 0;
    EQ(weft_recv(s, &z, 1, 0), 1);
    EQ(z, 'z');
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(net, cancel_during_accept_returns_ecanceled_sticks_and_the_listener_still_accepts)
{
    EQ(run_guarded(cancel_accept_main, NULL), 0);
}

/*
 * A listener with a backlog of 1 that nobody accepts: once its accept queue is full (two connections
 * on Linux) the kernel drops further SYNs, so the next connect waits for a retransmission that takes
 * seconds. Connects under a deadline until one times out; the held fds are returned. The deadline is
 * short of the first retransmission (1 s) and long enough that a connect a loaded host is slow to run
 * is not taken for one the queue refused.
 */
static int fill_backlog(int lfd, int *held, int cap)
{
    struct sockaddr_in to = loopback4(port_of(lfd));
    for (int n = 0; n < cap; n++) {
        int fd = weft_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(fd >= 0);
        weft_deadline_push(weft_now() + MS(800));
        int r = weft_connect(fd, (struct sockaddr *)&to, sizeof to);
        weft_deadline_pop();
        if (r == -ETIMEDOUT) {
            EQ(weft_close(fd), 0);
            return n;
        }
        EQ(r, 0);
        held[n] = fd;
    }
    cr_assert_fail("%d connects to a listener with backlog 1 all succeeded", cap);
    return cap;
}

static intptr_t cancel_connect_main(void *arg)
{
    (void)arg;
    int lfd = weft_tcp_listen("127.0.0.1", 0, 1, 0);
    cr_assert(lfd >= 0);
    int held[8];
    int n = fill_backlog(lfd, held, 8);
    cr_assert(n >= 1, "no connection fit in the backlog");
    struct blocked b = {.kind = IN_CONNECT, .addr = loopback4(port_of(lfd))};
    b.fd = weft_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(b.fd >= 0);
    cancel_blocked(&b);
    EQ(weft_close(b.fd), 0);
    /* The listener is fine: accept what is queued, and a new connect goes through. */
    for (int i = 0; i < n; i++) {
        int s = weft_accept(lfd, NULL, NULL, 0);
        cr_assert(s >= 0, "accept %d: %d (%s)", i, s, res_name(s));
        EQ(weft_close(s), 0);
        EQ(weft_close(held[i]), 0);
    }
    int c = weft_tcp_connect("127.0.0.1", port_of(lfd));
    cr_assert(c >= 0, "connect after the cancel: %d (%s)", c, res_name(c));
    EQ(weft_close(c), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(net, cancel_during_connect_to_a_full_backlog_returns_ecanceled_and_sticks)
{
    EQ(run_guarded(cancel_connect_main, NULL), 0);
}

/* Cancel and data arriving at the same moment: either the call returns the data, or it returns
 * -ECANCELED and the data is still there. Never both lost, never twice. */
struct racing {
    int fd;
    bool is_pipe;
    char buf[16];
    intptr_t first, second;
};

static intptr_t racing_reader(void *arg)
{
    struct racing *r = arg;
    r->first = r->is_pipe ? weft_read(r->fd, r->buf, sizeof r->buf, -1) : weft_recv(r->fd, r->buf, sizeof r->buf, 0);
    r->second = weft_nop();
    return 0;
}

static void race_cancel_with_data(int rfd, int wfd, bool is_pipe, int rounds, int *got_data, int *got_cancel)
{
    for (int i = 0; i < rounds; i++) {
        struct racing r = {.fd = rfd, .is_pipe = is_pipe, .first = UNSET, .second = UNSET};
        weft_task *t = weft_spawn(racing_reader, &r);
        settle();
        EQ(r.first, UNSET);
        /* Neither call suspends: both reach the backend in the same loop turn. */
        if (i % 2) {
            EQ(weft_cancel(t), 0);
            EQ(write(wfd, "hello", 5), 5);
        } else {
            EQ(write(wfd, "hello", 5), 5);
            EQ(weft_cancel(t), 0);
        }
        EQ(weft_join(t), 0);
        EQ(r.second, -ECANCELED);
        if (r.first == 5) {
            cr_assert(memcmp(r.buf, "hello", 5) == 0);
            ++*got_data;
        } else {
            EQ(r.first, -ECANCELED);
            char buf[16] = {0};
            ssize_t n = is_pipe ? weft_read(rfd, buf, sizeof buf, -1) : weft_recv(rfd, buf, sizeof buf, 0);
            EQ(n, 5);
            cr_assert(memcmp(buf, "hello", 5) == 0);
            ++*got_cancel;
        }
        nothing_pending(rfd);
    }
}

static intptr_t race_main(void *arg)
{
    (void)arg;
    int c, s, p[2];
    loopback_tcp_pair(&c, &s);
    EQ(pipe2(p, O_CLOEXEC), 0);
    int data = 0, cancelled = 0;
    race_cancel_with_data(s, c, false, 40, &data, &cancelled);
    race_cancel_with_data(p[0], p[1], true, 40, &data, &cancelled);
    EQ(data + cancelled, 80);
    EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    EQ(weft_close(p[0]), 0);
    EQ(weft_close(p[1]), 0);
    return 0;
}

Test(net, cancel_racing_with_arriving_data_loses_and_duplicates_no_byte)
{
    EQ(run_guarded(race_main, NULL), 0);
}

/* ---- deadlines on blocked calls ---------------------------------------------------------------------- */

static void elapsed_about(uint64_t t0, uint64_t deadline, const char *what)
{
    uint64_t now = weft_now();
    cr_assert(now >= deadline, "%s returned %" PRIu64 " us before its deadline", what, (deadline - now) / 1000);
    cr_assert(now - deadline < MS(500), "%s returned %" PRIu64 " ms after its deadline (%" PRIu64 " ms in all)",
              what, (now - deadline) / 1000000, (now - t0) / 1000000);
}

static intptr_t deadline_main(void *arg)
{
    (void)arg;
    int c, s;
    loopback_tcp_pair(&c, &s);
    char buf[16] = {0};
    uint64_t t0 = weft_now(), deadline = t0 + MS(100);
    weft_deadline_push(deadline);
    EQ(weft_recv(s, buf, sizeof buf, 0), -ETIMEDOUT);
    elapsed_about(t0, deadline, "recv");
    EQ(weft_recv(s, buf, sizeof buf, 0), -ETIMEDOUT); /* past it: at once, without parking */
    weft_deadline_pop();
    EQ(weft_send(c, "late", 4, 0), 4);
    EQ(weft_recv_exact(s, buf, 4), 4); /* the deadline took no byte */
    cr_assert(memcmp(buf, "late", 4) == 0);

    int lfd = listener("127.0.0.1", 4);
    t0 = weft_now(), deadline = t0 + MS(100);
    weft_deadline_push(deadline);
    EQ(weft_accept(lfd, NULL, NULL, 0), -ETIMEDOUT);
    elapsed_about(t0, deadline, "accept");
    weft_deadline_pop();
    int c2 = weft_tcp_connect("127.0.0.1", port_of(lfd));
    cr_assert(c2 >= 0);
    int s2 = weft_accept(lfd, NULL, NULL, 0);
    cr_assert(s2 >= 0);

    int p[2];
    EQ(pipe2(p, O_CLOEXEC), 0);
    t0 = weft_now(), deadline = t0 + MS(50);
    weft_deadline_push(deadline);
    EQ(weft_read(p[0], buf, sizeof buf, -1), -ETIMEDOUT);
    elapsed_about(t0, deadline, "pipe read");
    weft_deadline_pop();

    int fds[] = {c, s, lfd, c2, s2, p[0], p[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        EQ(weft_close(fds[i]), 0);
    return 0;
}

Test(net, deadline_on_blocked_recv_accept_and_read_returns_etimedout_at_the_deadline)
{
    EQ(run_guarded(deadline_main, NULL), 0);
}

/* ---- weft_close of an fd in use ---------------------------------------------------------------------- */

static intptr_t one_call_task(void *arg)
{
    struct blocked *b = arg;
    b->first = call_once(b);
    return b->first;
}

static intptr_t close_while_blocked_main(void *arg)
{
    (void)arg;
    int c, s;
    loopback_tcp_pair(&c, &s);
    struct blocked in_recv = {.kind = IN_RECV, .fd = s, .first = UNSET};
    struct blocked in_poll = {.kind = IN_POLL, .fd = s, .first = UNSET};
    weft_task *t1 = weft_spawn(one_call_task, &in_recv);
    weft_task *t2 = weft_spawn(one_call_task, &in_poll);
    settle();
    settle();
    EQ(in_recv.first, UNSET);
    EQ(in_poll.first, UNSET);
    EQ(weft_close(s), 0);
    /* Both calls end with -EBADF, and their tasks end. */
    EQ(weft_join(t1), -EBADF);
    EQ(weft_join(t2), -EBADF);
    char buf[4];
    EQ(weft_recv(c, buf, sizeof buf, 0), 0); /* the peer sees the close */
    EQ(weft_close(c), 0);
    return 0;
}

Test(net, close_of_an_fd_another_task_is_blocked_on_returns_ebadf_to_it)
{
    EQ(run_guarded(close_while_blocked_main, NULL), 0);
}

/*
 * The blocked tasks are woken by weft_close's cancel and, not being cancelled themselves, call again
 * on the same fd before weft_close has finished: a request made while the fd is being closed must end
 * too (-EBADF), not wait forever on a file only it still holds.
 */
static intptr_t close_while_retrying_main(void *arg)
{
    (void)arg;
    int c, s;
    loopback_tcp_pair(&c, &s);
    struct blocked in_recv = {.kind = IN_RECV, .fd = s, .first = UNSET};
    struct blocked in_poll = {.kind = IN_POLL, .fd = s, .first = UNSET};
    weft_task *t1 = weft_spawn(blocked_task, &in_recv);
    weft_task *t2 = weft_spawn(blocked_task, &in_poll);
    settle();
    settle();
    EQ(in_recv.first, UNSET);
    EQ(weft_close(s), 0);
    EQ(weft_join(t1), -EBADF);
    EQ(weft_join(t2), -EBADF);
    EQ(in_recv.second, -EBADF);
    EQ(in_poll.second, -EBADF);
    EQ(in_recv.third, 0);
    char buf[4];
    EQ(weft_recv(c, buf, sizeof buf, 0), 0);
    EQ(weft_close(c), 0);
    return 0;
}

Test(net, a_call_made_on_an_fd_while_weft_close_closes_it_also_ends)
{
    EQ(run_guarded(close_while_retrying_main, NULL), 0);
}

struct close_cancelled {
    int fd;
    intptr_t sleep_rc, recv_rc, close_rc;
};

static intptr_t close_in_cleanup(void *arg)
{
    struct close_cancelled *cc = arg;
    cc->sleep_rc = weft_sleep(SEC(10));
    char c;
    cc->recv_rc = weft_recv(cc->fd, &c, 1, 0);
    cc->close_rc = weft_close(cc->fd); /* cleanup in a cancelled task */
    return 0;
}

static intptr_t close_cancelled_main(void *arg)
{
    (void)arg;
    int c, s;
    loopback_tcp_pair(&c, &s);
    struct close_cancelled cc = {.fd = s, .sleep_rc = UNSET, .recv_rc = UNSET, .close_rc = UNSET};
    weft_task *t = weft_spawn(close_in_cleanup, &cc);
    settle();
    EQ(weft_cancel(t), 0);
    EQ(weft_join(t), 0);
    EQ(cc.sleep_rc, -ECANCELED);
    EQ(cc.recv_rc, -ECANCELED);
    EQ(cc.close_rc, 0);
    errno = 0;
    EQ(fcntl(s, F_GETFD), -1);
    EQ(errno, EBADF);
    char buf[4];
    EQ(weft_recv(c, buf, sizeof buf, 0), 0); /* the peer sees EOF: it really was closed */
    EQ(weft_close(c), 0);
    return 0;
}

Test(net, close_in_a_cancelled_task_still_closes_the_fd)
{
    EQ(run_guarded(close_cancelled_main, NULL), 0);
}

/* ---- bad input ------------------------------------------------------------------------------------ */

static intptr_t bad_fd_main(void *arg)
{
    (void)arg;
    /* -1, and a number that is not open. */
    enum { FREE_FD = 977 };
    cr_assert(fcntl(FREE_FD, F_GETFD) == -1, "fd %d is open in this process", FREE_FD);
    const int bad[] = {-1, FREE_FD};
    char buf[8];
    for (size_t i = 0; i < 2; i++) {
        int fd = bad[i];
        EQ(weft_recv(fd, buf, sizeof buf, 0), -EBADF);
        EQ(weft_send(fd, "x", 1, 0), -EBADF);
        EQ(weft_read(fd, buf, sizeof buf, -1), -EBADF);
        EQ(weft_read(fd, buf, sizeof buf, 0), -EBADF);
        EQ(weft_write(fd, "x", 1, -1), -EBADF);
        EQ(weft_accept(fd, NULL, NULL, 0), -EBADF);
        EQ(weft_shutdown(fd, SHUT_RDWR), -EBADF);
        EQ(weft_poll(fd, POLLIN), -EBADF);
        EQ(weft_close(fd), -EBADF);
    }
    /* A socket call on a pipe. */
    int p[2];
    EQ(pipe2(p, O_CLOEXEC), 0);
    EQ(weft_recv(p[0], buf, sizeof buf, 0), -ENOTSOCK);
    EQ(weft_close(p[0]), 0);
    EQ(weft_close(p[1]), 0);
    return 0;
}

Test(net, bad_fds_give_ebadf_and_socket_calls_on_a_pipe_give_enotsock)
{
    EQ(run_guarded(bad_fd_main, NULL), 0);
}

static intptr_t refused_main(void *arg)
{
    (void)arg;
    /* A port that was just free: listen, note it, close. */
    int lfd = listener("127.0.0.1", 1);
    uint16_t port = port_of(lfd);
    EQ(weft_close(lfd), 0);
    EQ(weft_tcp_connect("127.0.0.1", port), -ECONNREFUSED);
    int fd = weft_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in to = loopback4(port);
    EQ(weft_connect(fd, (struct sockaddr *)&to, sizeof to), -ECONNREFUSED);
    EQ(weft_close(fd), 0);
    int l6 = listener("::1", 1);
    port = port_of(l6);
    EQ(weft_close(l6), 0);
    EQ(weft_tcp_connect("::1", port), -ECONNREFUSED);
    return 0;
}

Test(net, connect_to_a_closed_port_gives_econnrefused)
{
    EQ(run_guarded(refused_main, NULL), 0);
}

static void expect_broken(intptr_t r, const char *what)
{
    cr_assert(r == -EPIPE || r == -ECONNRESET, "%s to a closed peer: got %jd (%s), want -EPIPE or -ECONNRESET",
              what, (intmax_t)r, res_name(r));
}

static intptr_t broken_pipe_main(void *arg)
{
    (void)arg;
    char buf[4096];
    memset(buf, 'b', sizeof buf);

    /* The peer resets the connection (SO_LINGER 0 then close sends RST). */
    int c, s;
    loopback_tcp_pair(&c, &s);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    EQ(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    EQ(weft_close(s), 0);
    settle();
    expect_broken(weft_send(c, buf, sizeof buf, 0), "send after reset");
    expect_broken(weft_send(c, buf, sizeof buf, 0), "second send after reset");
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    expect_broken(weft_sendmsg(c, &msg, 0), "sendmsg after reset");
    expect_broken(weft_send_all(c, buf, sizeof buf), "send_all after reset");
    weft_future *f = weft_send_async(c, buf, sizeof buf, 0);
    cr_assert(f);
    expect_broken(weft_await(f), "send_async after reset");
    weft_future_free(f);
    EQ(weft_close(c), 0);

    /* The peer closes normally: the first send goes out and draws a reset, later ones fail. */
    loopback_tcp_pair(&c, &s);
    EQ(weft_close(s), 0);
    settle();
    EQ(weft_send(c, buf, sizeof buf, 0), sizeof buf);
    settle();
    expect_broken(weft_send(c, buf, sizeof buf, 0), "send after close and a first send");
    expect_broken(weft_sendmsg(c, &msg, 0), "sendmsg after close and a first send");
    EQ(weft_close(c), 0);
    return 0;
}

Test(net, send_to_a_closed_peer_gives_epipe_or_econnreset_and_no_sigpipe)
{
    /* The default SIGPIPE action kills the process: surviving is part of the check. */
    signal(SIGPIPE, SIG_DFL);
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigprocmask(SIG_UNBLOCK, &pipe_set, NULL);
    EQ(run_guarded(broken_pipe_main, NULL), 0);
}

static void eperm_checks(void)
{
    char buf[8] = {0};
    struct sockaddr_in to = loopback4(9);
    struct iovec iov = {buf, sizeof buf};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    struct statx stx;
    EQ(weft_socket(AF_INET, SOCK_STREAM, 0), -EPERM);
    EQ(weft_accept(0, NULL, NULL, 0), -EPERM);
    EQ(weft_connect(0, (struct sockaddr *)&to, sizeof to), -EPERM);
    EQ(weft_recv(0, buf, sizeof buf, 0), -EPERM);
    EQ(weft_send(1, buf, sizeof buf, 0), -EPERM);
    EQ(weft_recvmsg(0, &msg, 0), -EPERM);
    EQ(weft_sendmsg(1, &msg, 0), -EPERM);
    EQ(weft_shutdown(0, SHUT_RDWR), -EPERM);
    EQ(weft_close(-1), -EBADF); /* close is the one call that works outside a task: see below */
    EQ(weft_openat(AT_FDCWD, "/dev/null", O_RDONLY, 0), -EPERM);
    EQ(weft_read(0, buf, sizeof buf, -1), -EPERM);
    EQ(weft_write(1, buf, sizeof buf, -1), -EPERM);
    EQ(weft_readv(0, &iov, 1, 0), -EPERM);
    EQ(weft_writev(1, &iov, 1, 0), -EPERM);
    EQ(weft_fsync(1, false), -EPERM);
    EQ(weft_statx(AT_FDCWD, "/", 0, STATX_SIZE, &stx), -EPERM);
    EQ(weft_unlinkat(AT_FDCWD, "/nonexistent-weft", 0), -EPERM);
    EQ(weft_renameat(AT_FDCWD, "/nonexistent-a", AT_FDCWD, "/nonexistent-b", 0), -EPERM);
    EQ(weft_mkdirat(AT_FDCWD, "/nonexistent-weft", 0700), -EPERM);
    EQ(weft_poll(0, POLLIN), -EPERM);
    EQ(weft_tcp_connect("127.0.0.1", 9), -EPERM);
    EQ(weft_send_all(1, buf, sizeof buf), -EPERM);
    EQ(weft_recv_exact(0, buf, sizeof buf), -EPERM);
    EQ(weft_nop(), -EPERM);
}

static int callback_ran;

static void eperm_in_callback(weft_future *f, void *arg)
{
    (void)f;
    (void)arg;
    eperm_checks(); /* a callback runs on the loop but outside any task */
    callback_ran = 1;
}

static intptr_t eperm_main(void *arg)
{
    (void)arg;
    weft_future *f = weft_future_new();
    EQ(weft_future_on_done(f, eperm_in_callback, NULL), 0);
    EQ(weft_future_resolve(f, 0), 0);
    settle();
    EQ(callback_ran, 1);
    weft_future_free(f);
    return 0;
}

Test(net, every_io_call_outside_a_task_returns_eperm)
{
    eperm_checks(); /* no loop at all */
    EQ(run_guarded(eperm_main, NULL), 0);
}

/* ---- weft_close outside a task ------------------------------------------------------------------ */

struct close_from_cb {
    int fd;
    ssize_t recv_result;
    int close_result;
};

static intptr_t recv_until_closed(void *arg)
{
    struct close_from_cb *c = arg;
    char buf[8];
    c->recv_result = weft_recv(c->fd, buf, sizeof buf, 0);
    return 0;
}

static void close_in_callback(weft_future *f, void *arg)
{
    (void)f;
    struct close_from_cb *c = arg;
    c->close_result = weft_close(c->fd);
}

static intptr_t close_from_callback_main(void *arg)
{
    (void)arg;
    int sv[2];
    EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct close_from_cb c = {.fd = sv[0], .recv_result = INT32_MIN, .close_result = INT32_MIN};
    weft_task *t = weft_spawn(recv_until_closed, &c);
    settle(); /* the recv waits on the fd */
    weft_future *f = weft_future_new();
    EQ(weft_future_on_done(f, close_in_callback, &c), 0);
    EQ(weft_future_resolve(f, 0), 0);
    EQ(weft_join(t), 0);
    EQ(c.close_result, 0);
    EQ(c.recv_result, -EBADF);
    cr_assert(fcntl(sv[0], F_GETFD) < 0 && errno == EBADF, "fd %d is still open", sv[0]);
    EQ(weft_close(sv[1]), 0);
    weft_future_free(f);
    return 0;
}

Test(net, close_outside_a_task_closes_and_ends_the_requests_waiting_on_the_fd)
{
    int p[2];
    EQ(pipe(p), 0);
    EQ(weft_close(p[0]), 0); /* no loop on this thread: a plain close */
    EQ(weft_close(p[1]), 0);
    cr_assert(fcntl(p[0], F_GETFD) < 0 && errno == EBADF);
    EQ(weft_close(p[0]), -EBADF);
    EQ(run_guarded(close_from_callback_main, NULL), 0);
}

/* ---- ring pressure ---------------------------------------------------------------------------------- */

enum { PRESSURE_TASKS = 2000 };

struct pressure {
    int in[2], out[2];
    int ready;
    unsigned char seen[PRESSURE_TASKS];
};

static intptr_t pressure_task(void *arg)
{
    struct pressure *p = arg;
    for (int i = 0; i < 3; i++) {
        int r = weft_nop();
        if (r)
            return r;
    }
    p->ready++;
    uint32_t v;
    ssize_t n = weft_read(p->in[0], &v, sizeof v, -1);
    if (n != sizeof v)
        return n < 0 ? n : -EIO;
    if (v >= PRESSURE_TASKS)
        return -ERANGE;
    uint32_t reply = v + 1;
    n = weft_write(p->out[1], &reply, sizeof reply, -1);
    if (n != sizeof reply)
        return n < 0 ? n : -EIO;
    return (intptr_t)v;
}

static intptr_t pressure_main(void *arg)
{
    struct pressure *p = arg;
    EQ(pipe2(p->in, O_CLOEXEC), 0);
    EQ(pipe2(p->out, O_CLOEXEC), 0);
    weft_task **ts = malloc(sizeof *ts * PRESSURE_TASKS);
    cr_assert(ts);
    for (int i = 0; i < PRESSURE_TASKS; i++) {
        ts[i] = weft_spawn(pressure_task, p);
        cr_assert(ts[i], "spawn %d: %s", i, strerror(errno));
    }
    while (p->ready < PRESSURE_TASKS)
        settle();
    settle(); /* every read is in flight */
    /* One write wakes every reader at once: far more completions than the 16-entry CQ holds. */
    uint32_t *values = malloc(sizeof *values * PRESSURE_TASKS);
    cr_assert(values);
    for (uint32_t i = 0; i < PRESSURE_TASKS; i++)
        values[i] = i;
    EQ(write(p->in[1], values, sizeof *values * PRESSURE_TASKS), sizeof *values * PRESSURE_TASKS);
    for (int i = 0; i < PRESSURE_TASKS; i++) {
        intptr_t v = weft_join(ts[i]);
        cr_assert(v >= 0 && v < PRESSURE_TASKS, "task %d: %jd (%s)", i, (intmax_t)v, res_name(v));
        cr_assert(!p->seen[v], "value %jd read twice", (intmax_t)v);
        p->seen[v] = 1;
    }
    /* Every reply arrived once. */
    memset(values, 0, sizeof *values * PRESSURE_TASKS);
    size_t want = sizeof *values * PRESSURE_TASKS, got = 0;
    while (got < want) {
        ssize_t n = weft_read(p->out[0], (char *)values + got, want - got, -1);
        cr_assert(n > 0, "reading the replies: %zd (%s)", n, res_name(n));
        got += (size_t)n;
    }
    memset(p->seen, 0, sizeof p->seen);
    for (int i = 0; i < PRESSURE_TASKS; i++) {
        uint32_t v = values[i] - 1;
        cr_assert(v < PRESSURE_TASKS && !p->seen[v], "reply %u is wrong or repeated", values[i]);
        p->seen[v] = 1;
    }
    free(values);
    free(ts);
    EQ(weft_close(p->in[0]), 0);
    EQ(weft_close(p->in[1]), 0);
    EQ(weft_close(p->out[0]), 0);
    EQ(weft_close(p->out[1]), 0);
    return 0;
}

/*
 * Runs fn(arg) as main (under run_net's deadline) on a loop with a 4-entry SQ and 16-entry CQ, checks
 * it returned 0, and gives the loop's counters; true if the loop ran on io_uring.
 */
static bool run_on_a_4_entry_ring(weft_fn fn, void *arg, weft_stats *st)
{
    unsetenv("WEFT_RING_ENTRIES");
    unsetenv("WEFT_SUBMIT_BATCH"); /* the SQ must fill before it is handed over */
    weft_config cfg = {.ring_entries = 4, .stack_size = 64 * 1024};
    weft_loop *l = weft_loop_new(&cfg);
    cr_assert(l, "weft_loop_new: %s", strerror(errno));
    struct limited_run g = {fn, arg, SEC(10)};
    intptr_t result = -1;
    EQ(weft_loop_run(l, limited_main, &g, &result), 0);
    EQ(result, 0);
    EQ(weft_loop_stats(l, st), 0);
    bool uring = strcmp(weft_loop_backend(l), "io_uring") == 0;
    weft_loop_free(l);
    return uring;
}

Test(net, a_4_entry_ring_serves_2000_tasks_doing_io_through_sq_full_and_cq_overflow)
{
    struct pressure *p = calloc(1, sizeof *p);
    cr_assert(p);
    weft_stats st;
    bool uring = run_on_a_4_entry_ring(pressure_main, p, &st);
    EQ(st.tasks_live, 0);
    cr_assert(st.tasks_peak >= PRESSURE_TASKS, "tasks_peak %" PRIu64, st.tasks_peak);
    if (uring) {
        cr_assert(st.sq_full > 0, "sq_full is 0 with a 4-entry SQ and 2000 tasks submitting");
        cr_assert(st.cq_overflows > 0, "cq_overflows is 0 with 2000 reads completing into a 16-entry CQ");
    } else {
        /* epoll has no rings: those counters stay 0, and no I/O was run on the executor. */
        EQ(st.sq_full, 0);
        EQ(st.cq_overflows, 0);
        EQ(st.offloaded_ops, 0);
    }
    free(p);
}

/* ---- weft_poll --------------------------------------------------------------------------------------- */

struct poller {
    int fd;
    short events;
    intptr_t revents;
};

static intptr_t poll_task(void *arg)
{
    struct poller *pl = arg;
    pl->revents = weft_poll(pl->fd, pl->events);
    return pl->revents;
}

static intptr_t poll_main(void *arg)
{
    (void)arg;
    int p[2];
    EQ(pipe2(p, O_CLOEXEC), 0);
    struct poller in = {.fd = p[0], .events = POLLIN, .revents = UNSET};
    weft_task *t = weft_spawn(poll_task, &in);
    settle();
    settle();
    EQ(in.revents, UNSET); /* nothing to read yet */
    EQ(write(p[1], "x", 1), 1);
    intptr_t r = weft_join(t);
    cr_assert(r > 0 && (r & POLLIN), "weft_poll(POLLIN) after a write: %jd (%s)", (intmax_t)r, res_name(r));
    char c;
    EQ(weft_read(p[0], &c, 1, -1), 1); /* poll consumed nothing */
    EQ(c, 'x');

    r = weft_poll(p[1], POLLOUT); /* an empty pipe is writable at once */
    cr_assert(r > 0 && (r & POLLOUT), "weft_poll(POLLOUT): %jd (%s)", (intmax_t)r, res_name(r));

    int a, b;
    loopback_tcp_pair(&a, &b);
    EQ(weft_send(a, "y", 1, 0), 1);
    settle();
    r = weft_poll(b, POLLIN); /* already readable */
    cr_assert(r > 0 && (r & POLLIN), "weft_poll(POLLIN) on a socket with data: %jd", (intmax_t)r);
    r = weft_poll(b, POLLOUT);
    cr_assert(r > 0 && (r & POLLOUT), "weft_poll(POLLOUT) on a connected socket: %jd", (intmax_t)r);
    int fds[] = {p[0], p[1], a, b};
    for (size_t i = 0; i < 4; i++)
        EQ(weft_close(fds[i]), 0);
    return 0;
}

Test(net, poll_for_pollin_waits_for_a_write_and_pollout_is_ready_at_once)
{
    EQ(run_guarded(poll_main, NULL), 0);
}

/* ---- short reads and the end of a stream ---------------------------------------------------------- */

/*
 * A reader parked on a byte stream; the peer then sends a few bytes and ends its side at once, so both
 * arrive before the reader runs again. The reader gets the bytes (a short read), and its next call must
 * see the end (0) or the reset without waiting for another wakeup: the kernel reports the end only once.
 */
struct ending {
    int rfd, wfd;     /* the reader's end and the peer's */
    int how;          /* 0: shutdown(SHUT_WR), 1: close, 2: reset (SO_LINGER 0) */
};

static intptr_t short_reader(void *arg)
{
    struct ending *e = arg;
    char buf[100];
    EQ(weft_recv(e->rfd, buf, sizeof buf, 0), 10);
    EQ(memcmp(buf, "0123456789", 10), 0);
    ssize_t n = weft_recv(e->rfd, buf, sizeof buf, 0);
    if (e->how == 2)
        cr_assert(n == -ECONNRESET, "after a reset: %zd (%s)", n, res_name((int)n));
    else
        EQ(n, 0);
    EQ(n == 0 ? weft_recv(e->rfd, buf, sizeof buf, 0) : 0, 0); /* and again: the end stays */
    return 0;
}

static intptr_t short_read_then_end_main(void *arg)
{
    int how = (int)(intptr_t)arg;
    int lfd = listener("127.0.0.1", 4);
    int c = weft_tcp_connect("127.0.0.1", port_of(lfd));
    cr_assert(c >= 0);
    int s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(s >= 0);
    struct ending e = {.rfd = s, .wfd = c, .how = how};
    weft_deadline_push(weft_now() + SEC(2));
    weft_task *t = weft_spawn(short_reader, &e);
    weft_yield(); /* the reader parks */
    EQ(weft_send(c, "0123456789", 10, 0), 10);
    if (how == 0) {
        EQ(weft_shutdown(c, SHUT_WR), 0);
    } else {
        if (how == 2) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            EQ(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        }
        EQ(weft_close(c), 0);
    }
    EQ(weft_join(t), 0);
    weft_deadline_pop();
    if (how == 0)
        EQ(weft_close(c), 0);
    EQ(weft_close(s), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

static intptr_t pipe_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[100];
    EQ(weft_read(fd, buf, sizeof buf, -1), 5);
    EQ(weft_read(fd, buf, sizeof buf, -1), 0);
    return 0;
}

static intptr_t short_pipe_read_then_close_main(void *arg)
{
    (void)arg;
    int p[2];
    EQ(pipe2(p, O_CLOEXEC), 0);
    weft_deadline_push(weft_now() + SEC(2));
    weft_task *t = weft_spawn(pipe_reader, (void *)(intptr_t)p[0]);
    weft_yield();
    EQ(weft_write(p[1], "abcde", 5, -1), 5);
    EQ(weft_close(p[1]), 0);
    EQ(weft_join(t), 0);
    weft_deadline_pop();
    EQ(weft_close(p[0]), 0);
    return 0;
}

Test(net, a_short_read_followed_by_eof_shutdown_or_reset_returns_the_end_at_once)
{
    for (int how = 0; how < 3; how++)
        EQ(run_guarded(short_read_then_end_main, (void *)(intptr_t)how), 0);
    EQ(run_guarded(short_pipe_read_then_close_main, NULL), 0);
}

/*
 * Many small messages each way between two tasks, each read asking for more than arrives: every short
 * read is followed by a wait for the next message, and none may be missed.
 */
static intptr_t pingpong_peer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    for (int i = 0; i < 20000; i++) {
        ssize_t n = weft_recv(fd, buf, sizeof buf, 0);
        if (n != 4)
            return n < 0 ? n : -EIO;
        if (weft_send(fd, buf, 4, 0) != 4)
            return -EIO;
    }
    return 0;
}

static intptr_t pingpong_main(void *arg)
{
    (void)arg;
    int sv[2];
    EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    weft_task *t = weft_spawn(pingpong_peer, (void *)(intptr_t)sv[1]);
    char buf[64];
    for (uint32_t i = 0; i < 20000; i++) {
        EQ(weft_send(sv[0], &i, 4, 0), 4);
        EQ(weft_recv(sv[0], buf, sizeof buf, 0), 4);
        uint32_t back;
        memcpy(&back, buf, 4);
        EQ(back, i);
    }
    EQ(weft_join(t), 0);
    EQ(weft_close(sv[0]), 0);
    EQ(weft_close(sv[1]), 0);
    return 0;
}

Test(net, ping_pong_of_20000_small_messages_over_a_unix_stream_misses_no_wakeup)
{
    EQ(run_guarded(pingpong_main, NULL), 0);
}

/* ---- accepting many connections --------------------------------------------------------------------- */

/* A client that connects and sends its index (4 bytes). */
struct burst_client {
    uint16_t port;
    uint32_t index;
};

static intptr_t burst_client_task(void *arg)
{
    struct burst_client *c = arg;
    int fd = weft_tcp_connect("127.0.0.1", c->port);
    if (fd < 0)
        return fd;
    ssize_t n = weft_send_all(fd, &c->index, 4);
    char end;
    ssize_t e = n == 4 ? weft_recv(fd, &end, 1, 0) : 0; /* until the server closes its side */
    weft_close(fd);
    return n != 4 ? -EIO : e;
}

/*
 * 300 connections arrive while the accepting task sleeps, most of them with no weft_accept waiting
 * (more than the 64 io_uring keeps before it stops accepting ahead): every one is accepted exactly once.
 */
static intptr_t accept_burst_main(void *arg)
{
    (void)arg;
    enum { N = 300 };
    int lfd = listener("127.0.0.1", N);
    uint16_t port = port_of(lfd);
    static struct burst_client clients[N];
    weft_task *tasks[N];
    for (uint32_t i = 0; i < N; i++) {
        clients[i] = (struct burst_client){.port = port, .index = i};
        tasks[i] = weft_spawn(burst_client_task, &clients[i]);
        cr_assert(tasks[i]);
    }
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    for (int k = 0; k < N; k++) {
        int s = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
        cr_assert(s >= 0, "accept %d: %d (%s)", k, s, res_name(s));
        if (k == 0)
            EQ(weft_sleep(50 * 1000 * 1000), 0); /* let the rest arrive with nobody accepting */
        uint32_t index = UINT32_MAX;
        EQ(weft_recv_exact(s, &index, 4), 4);
        cr_assert(index < N && !seen[index], "connection %u accepted twice or out of range", index);
        seen[index] = true;
        EQ(weft_close(s), 0);
    }
    for (int i = 0; i < N; i++)
        EQ(weft_join(tasks[i]), 0);
    EQ(weft_close(lfd), 0);
    return 0;
}

Test(net, a_burst_of_300_connections_is_accepted_once_each_with_none_lost)
{
    EQ(run_guarded(accept_burst_main, NULL), 0);
}

/*
 * Connections that arrived after a first accept, not yet accepted when the listener is closed with
 * weft_close: none stays open in the process, and their clients see the end.
 */
static intptr_t close_with_arrivals_main(void *arg)
{
    (void)arg;
    int before = count_open_fds();
    int lfd = listener("127.0.0.1", 16);
    uint16_t port = port_of(lfd);
    int c0 = weft_tcp_connect("127.0.0.1", port);
    cr_assert(c0 >= 0);
    int s0 = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(s0 >= 0);
    int c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = weft_tcp_connect("127.0.0.1", port);
        cr_assert(c[i] >= 0);
    }
    EQ(weft_sleep(20 * 1000 * 1000), 0);
    EQ(weft_close(lfd), 0);
    EQ(weft_close(s0), 0);
    EQ(weft_close(c0), 0);
    EQ(count_open_fds(), before + 5); /* the five clients only */
    for (int i = 0; i < 5; i++) {
        char x;
        ssize_t n = weft_recv(c[i], &x, 1, 0);
        cr_assert(n == 0 || n == -ECONNRESET, "client %d after its listener closed: %zd (%s)", i, n,
                  res_name((int)n));
        EQ(weft_close(c[i]), 0);
    }
    EQ(count_open_fds(), before);
    return 0;
}

Test(net, closing_a_listener_closes_connections_nobody_accepted)
{
    EQ(run_guarded(close_with_arrivals_main, NULL), 0);
}

/* A second weft_accept asking for other flags than the first gets an fd with its own flags. */
static intptr_t accept_flags_main(void *arg)
{
    (void)arg;
    int lfd = listener("127.0.0.1", 8);
    uint16_t port = port_of(lfd);
    int c1 = weft_tcp_connect("127.0.0.1", port), c2 = weft_tcp_connect("127.0.0.1", port);
    cr_assert(c1 >= 0 && c2 >= 0);
    int s1 = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(s1 >= 0);
    EQ(weft_sleep(10 * 1000 * 1000), 0);
    int s2 = weft_accept(lfd, NULL, NULL, SOCK_NONBLOCK);
    cr_assert(s2 >= 0);
    EQ(fcntl(s1, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    EQ(fcntl(s2, F_GETFD) & FD_CLOEXEC, 0);
    int fl2 = fcntl(s2, F_GETFL);
    cr_assert(fl2 >= 0 && (fl2 & O_NONBLOCK), "SOCK_NONBLOCK asked for, O_NONBLOCK not set");
    int s3;
    int c3 = weft_tcp_connect("127.0.0.1", port);
    cr_assert(c3 >= 0);
    s3 = weft_accept(lfd, NULL, NULL, 0);
    cr_assert(s3 >= 0);
    EQ(fcntl(s3, F_GETFD) & FD_CLOEXEC, 0);
    int fds[] = {s1, s2, s3, c1, c2, c3, lfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        EQ(weft_close(fds[i]), 0);
    return 0;
}

Test(net, accept_gives_each_call_the_flags_it_asked_for)
{
    EQ(run_guarded(accept_flags_main, NULL), 0);
}

/* The same burst on a 4-entry ring: the accept is re-armed and cancelled while the SQ is full. */
Test(net, a_burst_of_300_connections_on_a_4_entry_ring_loses_none)
{
    weft_stats st;
    if (run_on_a_4_entry_ring(accept_burst_main, NULL, &st))
        cr_assert(st.sq_full > 0, "the SQ never filled: the test did not test what it says");
}
