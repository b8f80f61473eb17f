/*
 * Files: every call is one request through the backend (io.c). On io_uring none of them touches a
 * thread of weft's: the kernel completes them inline or in its own workers.
 */
#include "internal.h"

#include <fcntl.h>
#include <string.h>
#include <linux/stat.h>
#include <sys/uio.h>

static intptr_t run_op(weft__op *op)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    return weft__io_wait(t, op);
}

int weft_openat(int dfd, const char *path, int flags, mode_t mode)
{
    weft__op op = {.opcode = WEFT__OP_OPENAT, .fd = dfd, .buf = (void *)path, .flags = (uint32_t)flags,
                   .arg.mode = mode};
    return (int)run_op(&op);
}

ssize_t weft_read(int fd, void *buf, size_t len, int64_t offset)
{
    weft__op op = {.opcode = WEFT__OP_READ, .fd = fd, .buf = buf, .len = len, .off = offset};
    return run_op(&op);
}

ssize_t weft_write(int fd, const void *buf, size_t len, int64_t offset)
{
    weft__op op = {.opcode = WEFT__OP_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = offset};
    return run_op(&op);
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0)
        return -EINVAL;
    weft__op op = {.opcode = WEFT__OP_READV, .fd = fd, .buf = (void *)iov, .len = (uint64_t)iovcnt, .off = offset};
    return run_op(&op);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt, int64_t offset)
{
    if (iovcnt < 0)
        return -EINVAL;
    weft__op op = {.opcode = WEFT__OP_WRITEV, .fd = fd, .buf = (void *)iov, .len = (uint64_t)iovcnt,
                   .off = offset};
    return run_op(&op);
}

int weft_fsync(int fd, bool datasync)
{
    weft__op op = {.opcode = WEFT__OP_FSYNC, .fd = fd, .flags = datasync};
    return (int)run_op(&op);
}

/*
 * A write and its fdatasync as one chain: on io_uring the kernel starts the sync the moment the write
 * has completed in full (IOSQE_IO_LINK), with no trip through the loop between them, and a write that
 * fails or falls short cancels the sync.
 */
ssize_t weft_write_durable(int fd, const void *buf, size_t len, int64_t offset)
{
    weft__op sync = {.opcode = WEFT__OP_FSYNC, .fd = fd, .flags = 1};
    weft__op write = {.opcode = WEFT__OP_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = offset,
                      .next = &sync, .link = WEFT__LINK_SOFT};
    intptr_t written = run_op(&write);
    if (written < 0 || !weft__op_full(&write, (int32_t)written))
        return written; /* the sync did not run */
    intptr_t synced = weft__op_result(&sync);
    return synced < 0 ? synced : written;
}

int weft_statx(int dfd, const char *path, int flags, unsigned mask, struct statx *out)
{
    if (!path || !out)
        return -EFAULT;
    weft__op op = {.opcode = WEFT__OP_STATX, .fd = dfd, .buf = (void *)path, .flags = (uint32_t)flags,
                   .arg.statx = {.mask = mask, .out = out}};
    return (int)run_op(&op);
}

int weft_unlinkat(int dfd, const char *path, int flags)
{
    weft__op op = {.opcode = WEFT__OP_UNLINKAT, .fd = dfd, .buf = (void *)path, .flags = (uint32_t)flags};
    return (int)run_op(&op);
}

int weft_renameat(int olddfd, const char *oldp, int newdfd, const char *newp, unsigned flags)
{
    weft__op op = {.opcode = WEFT__OP_RENAMEAT, .fd = olddfd, .buf = (void *)oldp, .flags = flags,
                   .arg.rename = {.newdfd = newdfd, .newpath = newp}};
    return (int)run_op(&op);
}

int weft_mkdirat(int dfd, const char *path, mode_t mode)
{
    weft__op op = {.opcode = WEFT__OP_MKDIRAT, .fd = dfd, .buf = (void *)path, .arg.mode = mode};
    return (int)run_op(&op);
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
