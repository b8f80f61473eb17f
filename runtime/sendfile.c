/*
 * weft_sendfile: a file's bytes to a socket (or any fd) without passing through user memory, one
 * SENDFILE request after another until all are sent, the file ends, or something stops it. Each
 * request is sendfile(2)'s contract: up to len bytes from the file at an offset, the count sent
 * returned. The backend decides how: epoll tries sendfile(2) when the fd is writable; io_uring moves
 * each chunk through a pipe with a pair of linked splices (splice.c).
 *
 * What the loop here adds is sendfile(2)'s loose ends, handled as weft_send_all handles a send's: a
 * request that sent less goes round again from where it stopped; EAGAIN (a non-blocking socket that is
 * full, on io_uring) waits for the socket to be writable; an error or interruption after some bytes
 * went returns the count, and the error is held for the fd (the next call on it returns it).
 */
#include "internal.h"

#include <poll.h>

/* The most one request asks for: what sendfile(2) itself moves at most in one call. */
#define SENDFILE_MAX 0x7ffff000u

ssize_t weft_sendfile(int out_fd, int in_fd, int64_t offset, size_t len)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    if (offset < -1)
        return -EINVAL;
    size_t sent = 0;
    int64_t at = offset;
    while (sent < len) {
        size_t want = len - sent;
        weft__op op = {.opcode = WEFT__OP_SENDFILE, .fd = out_fd, .off = -1,
                       .len = want > SENDFILE_MAX ? SENDFILE_MAX : want, .arg.source = {.fd = in_fd, .off = at}};
        intptr_t r = weft__io_wait(t, &op);
        if (r == -EAGAIN) {
            r = weft_poll(out_fd, POLLOUT);
            if (r >= 0)
                continue;
        }
        if (r == 0)
            break; /* the end of the file */
        if (r < 0) {
            if (!sent)
                return r;
            weft__fd_error_hold(t->loop, out_fd, (int)r);
            break;
        }
        sent += (size_t)r;
        if (at >= 0)
            at += r;
    }
    return (ssize_t)sent;
}
