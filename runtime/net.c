/*
 * Sockets: every call is one request through the backend (io.c), plus the conveniences built on them.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int weft_socket(int domain, int type, int protocol)
{
    weft__op op = {.opcode = WEFT__OP_SOCKET, .fd = -1,
                   .arg.socket = {.domain = domain, .type = type, .protocol = protocol}};
    return (int)weft__io_run(&op);
}

/*
 * Out of fds, accept fails while the connection stays queued: an accept loop retrying at once would
 * spin at full speed. Wait instead, doubling from 1 ms to 1 s, until an fd is free, the caller is
 * interrupted, or the error changes. The first time in a row, say so once.
 */
int weft_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    uint64_t backoff = 1000000;
    for (;;) {
        socklen_t saved = len ? *len : 0;
        weft__op op = {.opcode = WEFT__OP_ACCEPT, .fd = fd, .buf = addr, .arg.addrlen = len, .flags = (uint32_t)flags};
        int r = (int)weft__io_run(&op);
        if (r != -EMFILE && r != -ENFILE)
            return r;
        weft_loop *l = weft__tls_loop;
        if (l->stats.accept_backoffs++ == 0 || backoff == 1000000)
            weft__log("accept on fd %d: %s; retrying as fds free up\n", fd, weft_strerror(r));
        if (len)
            *len = saved;
        int s = weft_sleep(backoff);
        if (s < 0)
            return s;
        if (backoff < 1000000000u)
            backoff *= 2;
    }
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    weft__op op = {.opcode = WEFT__OP_CONNECT, .fd = fd, .buf = (void *)addr, .len = len};
    return (int)weft__io_run(&op);
}

ssize_t weft_recv(int fd, void *buf, size_t len, int flags)
{
    weft__op op = {.opcode = WEFT__OP_RECV, .fd = fd, .buf = buf, .len = len, .flags = (uint32_t)flags};
    return weft__io_run(&op);
}

ssize_t weft_send(int fd, const void *buf, size_t len, int flags)
{
    weft__op op = {.opcode = WEFT__OP_SEND, .fd = fd, .buf = (void *)buf, .len = len,
                   .flags = (uint32_t)(flags | MSG_NOSIGNAL)};
    return weft__io_run(&op);
}

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags)
{
    weft__op op = {.opcode = WEFT__OP_RECVMSG, .fd = fd, .buf = msg, .flags = (uint32_t)flags};
    return weft__io_run(&op);
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    weft__op op = {.opcode = WEFT__OP_SENDMSG, .fd = fd, .buf = (void *)msg,
                   .flags = (uint32_t)(flags | MSG_NOSIGNAL)};
    return weft__io_run(&op);
}

int weft_shutdown(int fd, int how)
{
    weft__op op = {.opcode = WEFT__OP_SHUTDOWN, .fd = fd, .flags = (uint32_t)how};
    return (int)weft__io_run(&op);
}

int weft_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    weft_task *t = weft__current();
    if (!t)
        return weft__io_close_now(weft__tls_loop, fd);
    /*
     * Operations in flight hold their own reference to the file, so closing the fd alone would leave
     * a pending recv waiting forever: cancel them first (they return -EBADF). Closing is not
     * interruptible: cleanup code in a cancelled task must still be able to release its fds.
     */
    weft__op cancel = {.opcode = WEFT__OP_CANCEL_FD, .fd = fd};
    weft__op close_op = {.opcode = WEFT__OP_CLOSE, .fd = fd};
    weft__io_wait_uninterruptible(t, &cancel);
    /* Then what weft kept for it: reads waiting on its receive stream end (-EBADF), the stream stops.
     * Right before the close: a woken task's next call on fd is then made after the close, and fails. */
    weft__rx_drop(t->loop, fd);
    return (int)weft__io_wait_uninterruptible(t, &close_op);
}

int weft_poll(int fd, short events)
{
    weft__op op = {.opcode = WEFT__OP_POLL, .fd = fd, .flags = (uint16_t)events};
    return (int)weft__io_run(&op);
}

weft_future *weft_recv_async(int fd, void *buf, size_t len, int flags)
{
    weft__op op = {.opcode = WEFT__OP_RECV, .fd = fd, .buf = buf, .len = len, .flags = (uint32_t)flags};
    return weft__io_async(&op);
}

weft_future *weft_send_async(int fd, const void *buf, size_t len, int flags)
{
    weft__op op = {.opcode = WEFT__OP_SEND, .fd = fd, .buf = (void *)buf, .len = len,
                   .flags = (uint32_t)(flags | MSG_NOSIGNAL)};
    return weft__io_async(&op);
}

/*
 * weft_send_all and weft_recv_exact: the whole of buf, or what went through before an error, which is
 * then held for fd (io.c) so that neither the bytes nor the error are lost. A receive stops early at
 * end of stream.
 */
static ssize_t transfer_all(int fd, char *buf, size_t len, bool receiving)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = receiving ? weft_recv(fd, buf + done, len - done, 0) : weft_send(fd, buf + done, len - done, 0);
        if (n == 0 && receiving)
            break;
        if (n < 0) {
            if (!done)
                return n;
            weft__fd_error_hold(weft__tls_loop, fd, (int)n);
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

weft_future *weft_socket_async(int domain, int type, int protocol)
{
    weft__op op = {.opcode = WEFT__OP_SOCKET, .fd = -1,
                   .arg.socket = {.domain = domain, .type = type, .protocol = protocol}};
    return weft__io_async(&op);
}

weft_future *weft_accept_async(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    weft__op op = {.opcode = WEFT__OP_ACCEPT, .fd = fd, .buf = addr, .arg.addrlen = len, .flags = (uint32_t)flags};
    return weft__io_async(&op);
}

weft_future *weft_connect_async(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (!addr || len > sizeof(struct sockaddr_storage)) {
        errno = EINVAL;
        return NULL;
    }
    weft__op op = {.opcode = WEFT__OP_CONNECT, .fd = fd, .buf = (void *)addr, .len = len};
    return weft__io_async_copy(&op, len, 0);
}

weft_future *weft_recvmsg_async(int fd, struct msghdr *msg, int flags)
{
    weft__op op = {.opcode = WEFT__OP_RECVMSG, .fd = fd, .buf = msg, .flags = (uint32_t)flags};
    return weft__io_async(&op);
}

weft_future *weft_sendmsg_async(int fd, const struct msghdr *msg, int flags)
{
    weft__op op = {.opcode = WEFT__OP_SENDMSG, .fd = fd, .buf = (void *)msg,
                   .flags = (uint32_t)(flags | MSG_NOSIGNAL)};
    return weft__io_async(&op);
}

weft_future *weft_shutdown_async(int fd, int how)
{
    weft__op op = {.opcode = WEFT__OP_SHUTDOWN, .fd = fd, .flags = (uint32_t)how};
    return weft__io_async(&op);
}

weft_future *weft_poll_async(int fd, short events)
{
    weft__op op = {.opcode = WEFT__OP_POLL, .fd = fd, .flags = (uint16_t)events};
    return weft__io_async(&op);
}

ssize_t weft_send_all(int fd, const void *buf, size_t len)
{
    return transfer_all(fd, (char *)buf, len, false);
}

ssize_t weft_recv_exact(int fd, void *buf, size_t len)
{
    return transfer_all(fd, buf, len, true);
}

/* Parses a numeric IPv4 or IPv6 address (NULL or "" or "*": every IPv4 address). */
static int sockaddr_numeric(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (!host || !*host || strcmp(host, "*") == 0) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        *len = sizeof *in4;
        return 0;
    }
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        *len = sizeof *in4;
        return 0;
    }
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof *in6;
        return 0;
    }
    return -EINVAL;
}

/* getaddrinfo for the executor: the classic blocking call that must never run on the loop. */
typedef struct lookup {
    const char *host;
    char service[8];
    int socktype, ai_flags;
    struct addrinfo *result;
} lookup;

static intptr_t lookup_run(void *arg)
{
    lookup *q = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = q->socktype, .ai_flags = q->ai_flags};
    int r = getaddrinfo(q->host, q->service, &hints, &q->result);
    switch (r) {
    case 0:
        return 0;
    case EAI_SYSTEM:
        return errno ? -errno : -EIO;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_NONAME:
    case EAI_NODATA:
    case EAI_ADDRFAMILY:
        return -ENOENT;
    default:
        return -EINVAL;
    }
}

/* Makes a socket for one address; >= 0 the fd, else the reason to try the next address. */
typedef int (*addr_try_fn)(const struct sockaddr *addr, socklen_t len, void *ctx);

/*
 * Calls try on the addresses of host and port, in the order the resolver ranks them, until one gives
 * an fd or the caller is interrupted; returns that, or the last failure. A numeric address is used as
 * it is. A name is resolved where the lookup cannot stall a loop: on the executor from a task (which
 * suspends), with a plain getaddrinfo where no loop runs on this thread (set-up before weft_run); on
 * a loop's thread outside a task (a callback) it is refused with -EPERM.
 */
static int addr_each(const char *host, uint16_t port, int socktype, int ai_flags, addr_try_fn try, void *ctx)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (sockaddr_numeric(host, port, &ss, &len) == 0)
        return try((struct sockaddr *)&ss, len, ctx);
    lookup q = {.host = host, .socktype = socktype, .ai_flags = ai_flags};
    snprintf(q.service, sizeof q.service, "%u", port);
    intptr_t r = weft__current() ? weft_offload(lookup_run, &q) : !weft__tls_loop ? lookup_run(&q) : -EPERM;
    if (r < 0)
        return (int)r;
    int fd = -ENOENT;
    for (struct addrinfo *ai = q.result; ai; ai = ai->ai_next) {
        fd = try(ai->ai_addr, ai->ai_addrlen, ctx);
        if (fd >= 0 || fd == -ECANCELED || fd == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(q.result);
    return fd;
}

/* How to bind: the socket type, WEFT_REUSEPORT, and the backlog of a stream socket's listen. */
typedef struct bind_spec {
    int type;
    int flags;
    int backlog;
} bind_spec;

/*
 * A close-on-exec socket bound to addr, listening if it is a stream. Binding and listening never
 * block: plain system calls, usable before any loop runs. A TCP listener gets SO_REUSEADDR, so a
 * restarted server has its port back while old connections linger in TIME_WAIT; a UDP socket does
 * not, as there it would let unrelated sockets share the port. A listener is non-blocking: weft made
 * it, for weft_accept, and epoll's accept then needs no O_NONBLOCK set and put back around each call.
 */
static int bind_addr(const struct sockaddr *addr, socklen_t len, void *ctx)
{
    const bind_spec *spec = ctx;
    int fd = socket(addr->sa_family, spec->type | SOCK_CLOEXEC | (spec->type == SOCK_STREAM ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    bool tcp = spec->type == SOCK_STREAM && addr->sa_family != AF_UNIX;
    if ((tcp && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) ||
        ((spec->flags & WEFT_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, addr, len) < 0 ||
        (spec->type == SOCK_STREAM && listen(fd, spec->backlog > 0 ? spec->backlog : SOMAXCONN) < 0)) {
        int err = -errno;
        close(fd);
        return err;
    }
    weft__fd_new(weft__tls_loop, fd, spec->type == SOCK_STREAM ? WEFT__FD_STREAM : WEFT__FD_OTHER);
    return fd;
}

int weft_tcp_listen(const char *host, uint16_t port, int backlog, int flags)
{
    if (flags & ~WEFT_REUSEPORT)
        return -EINVAL;
    bind_spec spec = {.type = SOCK_STREAM, .flags = flags, .backlog = backlog};
    return addr_each(host, port, SOCK_STREAM, AI_PASSIVE | AI_ADDRCONFIG, bind_addr, &spec);
}

/* A stream connection to addr (TCP with TCP_NODELAY, or Unix), close-on-exec. Suspends. */
static int connect_addr(const struct sockaddr *addr, socklen_t len, void *ctx)
{
    (void)ctx;
    int fd = weft_socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    int r = weft_connect(fd, addr, len);
    if (r < 0) {
        weft_close(fd);
        return r;
    }
    int one = 1;
    if (addr->sa_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int weft_tcp_connect(const char *host, uint16_t port)
{
    if (!weft__current())
        return -EPERM;
    return addr_each(host, port, SOCK_STREAM, AI_ADDRCONFIG, connect_addr, NULL);
}

/* ---- datagrams, Unix sockets, ports --------------------------------------------------------------- */

int weft_udp_bind(const char *host, uint16_t port, int flags)
{
    if (flags & ~WEFT_REUSEPORT)
        return -EINVAL;
    bind_spec spec = {.type = SOCK_DGRAM, .flags = flags};
    return addr_each(host, port, SOCK_DGRAM, AI_PASSIVE | AI_ADDRCONFIG, bind_addr, &spec);
}

/* connect(2) of a datagram socket only records the peer: a plain call that never waits. */
static int udp_connect_addr(const struct sockaddr *addr, socklen_t len, void *ctx)
{
    (void)ctx;
    int fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, addr, len) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    weft__fd_new(weft__tls_loop, fd, WEFT__FD_OTHER);
    return fd;
}

int weft_udp_connect(const char *host, uint16_t port)
{
    return addr_each(host, port, SOCK_DGRAM, AI_ADDRCONFIG, udp_connect_addr, NULL);
}

/*
 * The address of a Unix socket: a path in the file system, or with a leading '@' a name in Linux's
 * abstract namespace, which is the rest of path without a terminating NUL (as ss -x shows it).
 */
static int sockaddr_unix(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    if (!path || !path[0] || (path[0] == '@' && !path[1]))
        return -EINVAL;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (path[0] == '@') {
        /* The leading NUL takes the '@''s place: n bytes in all. */
        if (n > sizeof sun->sun_path)
            return -ENAMETOOLONG;
        memcpy(sun->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    if (n >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    memcpy(sun->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int weft_unix_listen(const char *path, int backlog)
{
    struct sockaddr_un sun;
    socklen_t len;
    int r = sockaddr_unix(path, &sun, &len);
    if (r < 0)
        return r;
    bind_spec spec = {.type = SOCK_STREAM, .backlog = backlog};
    return bind_addr((struct sockaddr *)&sun, len, &spec);
}

int weft_unix_connect(const char *path)
{
    if (!weft__current())
        return -EPERM;
    struct sockaddr_un sun;
    socklen_t len;
    int r = sockaddr_unix(path, &sun, &len);
    if (r < 0)
        return r;
    return connect_addr((struct sockaddr *)&sun, len, NULL);
}

int weft_socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}
