/*
 * Files: every call is one request through the backend (io.c). On io_uring none of them touches a
 * thread of weft's: the kernel completes them inline or in its own workers.
 */
#include "internal.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <linux/stat.h>
#include <sys/uio.h>

int weft_openat(int dfd, const char *path, int flags, mode_t mode)
{
    weft__op op = {.opcode = WEFT__OP_OPENAT, .fd = dfd, .buf = (void *)path, .flags = (uint32_t)flags,
                   .arg.mode = mode};
    return (int)weft__io_run(&op);
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t offset)
{
    weft__op op = {.opcode = WEFT__OP_READ, .fd = fd, .buf = buf, .len = len, .off = offset};
    return weft__io_run(&op);
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t offset)
{
    weft__op op = {.opcode = WEFT__OP_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = offset};
    return weft__io_run(&op);
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0)
        return -EINVAL;
    weft__op op = {.opcode = WEFT__OP_READV, .fd = fd, .buf = (void *)iov, .len = (uint64_t)iovcnt, .off = offset};
    return weft__io_run(&op);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0)
        return -EINVAL;
    weft__op op = {.opcode = WEFT__OP_WRITEV, .fd = fd, .buf = (void *)iov, .len = (uint64_t)iovcnt,
                   .off = offset};
    return weft__io_run(&op);
}

int weft_fsync(int fd, bool datasync)
{
    weft__op op = {.opcode = WEFT__OP_FSYNC, .fd = fd, .flags = datasync};
    return (int)weft__io_run(&op);
}

/*
 * A write and its fdatasync as one chain: on io_uring the kernel starts the sync the moment the write
 * has completed in full (IOSQE_IO_LINK), with no trip through the loop between them, and a write that
 * fails or falls short cancels the sync.
 *
 * The sync finds its fd only when it starts (the kernel resolves a linked request's fd then, and the
 * executor's fdatasync names it too). Were fd closed meanwhile by another task and its number given to
 * another file, the sync would sync that one, and the call would claim a durability its data does not
 * have. So the pair goes through a duplicate of weft's own, closed afterwards: the number keeps its
 * file until both are done. weft_close(fd) still cancels them on io_uring, which matches by file.
 */
ssize_t weft_write_durable(int fd, const void *buf, size_t len, int64_t offset)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0)
        return -errno;
    weft__fd_new(t->loop, own, WEFT__FD_OTHER);
    weft__op sync = {.opcode = WEFT__OP_FSYNC, .fd = own, .flags = 1};
    weft__op write = {.opcode = WEFT__OP_WRITE, .fd = own, .buf = (void *)buf, .len = len, .off = offset,
                      .next = &sync, .link = WEFT__LINK_SOFT};
    intptr_t written = weft__io_wait(t, &write);
    intptr_t result = written;
    if (written >= 0 && weft__op_full(&write, (int32_t)written)) {
        intptr_t synced = weft__op_result(&sync);
        result = synced < 0 ? synced : written;
    } /* else the sync did not run */
    close(own);
    return result;
}

int weft_statx(int dfd, const char *path, int flags, unsigned mask, struct statx *out)
{
    if (!path || !out)
        return -EFAULT;
    weft__op op = {.opcode = WEFT__OP_STATX, .fd = dfd, .buf = (void *)path, .flags = (uint32_t)flags,
                   .arg.statx = {.mask = mask, .out = out}};
    return (int)weft__io_run(&op);
}

int weft_unlinkat(int dfd, const char *path, int flags)
{
    weft__op op = {.opcode = WEFT__OP_UNLINKAT, .fd = dfd, .buf = (void *)path, .flags = (uint32_t)flags};
    return (int)weft__io_run(&op);
}

int weft_renameat(int olddfd, const char *oldp, int newdfd, const char *newp, unsigned flags)
{
    weft__op op = {.opcode = WEFT__OP_RENAMEAT, .fd = olddfd, .buf = (void *)oldp, .flags = flags,
                   .arg.rename = {.newdfd = newdfd, .newpath = newp}};
    return (int)weft__io_run(&op);
}

int weft_mkdirat(int dfd, const char *path, mode_t mode)
{
    weft__op op = {.opcode = WEFT__OP_MKDIRAT, .fd = dfd, .buf = (void *)path, .arg.mode = mode};
    return (int)weft__io_run(&op);
}

/* ---- many in flight from one task --------------------------------------------------------- */

/* The bytes of path with its NUL, for the copy an _async path call keeps; 0 (and errno) for NULL. */
static size_t path_bytes(const char *path)
{
    if (!path) {
        errno = EFAULT;
        return 0;
    }
    return strlen(path) + 1;
}

weft_future *weft_openat_async(int dfd, const char *path, int flags, mode_t mode)
{
    size_t n = path_bytes(path);
    if (!n)
        return NULL;
    weft__op op = {.opcode = WEFT__OP_OPENAT, .fd = dfd, .buf = (void *)path, .flags = (uint32_t)flags,
                   .arg.mode = mode};
    return weft__io_async_copy(&op, n, 0);
}

weft_future *weft_readv_async(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0) {
        errno = EINVAL;
        return NULL;
    }
    weft__op op = {.opcode = WEFT__OP_READV, .fd = fd, .buf = (void *)iov, .len = (uint64_t)iovcnt, .off = offset};
    return weft__io_async(&op);
}

weft_future *weft_writev_async(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0) {
        errno = EINVAL;
        return NULL;
    }
    weft__op op = {.opcode = WEFT__OP_WRITEV, .fd = fd, .buf = (void *)iov, .len = (uint64_t)iovcnt, .off = offset};
    return weft__io_async(&op);
}

weft_future *weft_fsync_async(int fd, bool datasync)
{
    weft__op op = {.opcode = WEFT__OP_FSYNC, .fd = fd, .flags = datasync};
    return weft__io_async(&op);
}

weft_future *weft_statx_async(int dfd, const char *path, int flags, unsigned mask, struct statx *out)
{
    size_t n = path_bytes(path);
    if (!n)
        return NULL;
    if (!out) {
        errno = EFAULT;
        return NULL;
    }
    weft__op op = {.opcode = WEFT__OP_STATX, .fd = dfd, .buf = (void *)path, .flags = (uint32_t)flags,
                   .arg.statx = {.mask = mask, .out = out}};
    return weft__io_async_copy(&op, n, 0);
}

weft_future *weft_unlinkat_async(int dfd, const char *path, int flags)
{
    size_t n = path_bytes(path);
    if (!n)
        return NULL;
    weft__op op = {.opcode = WEFT__OP_UNLINKAT, .fd = dfd, .buf = (void *)path, .flags = (uint32_t)flags};
    return weft__io_async_copy(&op, n, 0);
}

weft_future *weft_renameat_async(int olddfd, const char *oldp, int newdfd, const char *newp, unsigned flags)
{
    size_t n = path_bytes(oldp), m = path_bytes(newp);
    if (!n || !m)
        return NULL;
    weft__op op = {.opcode = WEFT__OP_RENAMEAT, .fd = olddfd, .buf = (void *)oldp, .flags = flags,
                   .arg.rename = {.newdfd = newdfd, .newpath = newp}};
    return weft__io_async_copy(&op, n, m);
}

weft_future *weft_mkdirat_async(int dfd, const char *path, mode_t mode)
{
    size_t n = path_bytes(path);
    if (!n)
        return NULL;
    weft__op op = {.opcode = WEFT__OP_MKDIRAT, .fd = dfd, .buf = (void *)path, .arg.mode = mode};
    return weft__io_async_copy(&op, n, 0);
}

weft_future *weft_read_async(int fd, void *buf, size_t len, int64_t offset)
{
    weft__op op = {.opcode = WEFT__OP_READ, .fd = fd, .buf = buf, .len = len, .off = offset};
    return weft__io_async(&op);
}

weft_future *weft_write_async(int fd, const void *buf, size_t len, int64_t offset)
{
    weft__op op = {.opcode = WEFT__OP_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = offset};
    return weft__io_async(&op);
}
