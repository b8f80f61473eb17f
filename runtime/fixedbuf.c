/*
 * Registered buffers: a set of buffers the loop hands to the kernel once (io_uring's fixed buffers,
 * IORING_REGISTER_BUFFERS), read into and written from by READ_FIXED and WRITE_FIXED. The kernel pins
 * and maps their pages at registration instead of at every request, which is what fio's fixedbufs
 * option measures. On epoll there is nothing to register with: the set is kept for the same checks,
 * and the calls are plain reads and writes (on the executor for files).
 *
 * weft keeps its own copy of the set and checks every call against it, so misuse is the same -EINVAL
 * on both backends and never reaches the kernel: an index past the set, a buffer that is not wholly
 * inside the registered buffer it names, a call with no set registered.
 */
#include "internal.h"

#include <sys/resource.h>

struct weft__buffers {
    unsigned count;
    struct iovec iov[];
};

/* io_uring's limits: IORING_MAX_REG_BUFFERS, and 1 GiB a buffer. */
#define BUFFERS_MAX 16384u
#define BUFFER_BYTES_MAX (1ull << 30)

/* The RLIMIT_MEMLOCK soft limit as text, for the message that says why pinning failed. */
static void memlock_text(char *out, size_t len)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        snprintf(out, len, "unknown");
    else if (rl.rlim_cur == RLIM_INFINITY)
        snprintf(out, len, "unlimited");
    else
        snprintf(out, len, "%llu KiB", (unsigned long long)rl.rlim_cur / 1024);
}

int weft_buffers_register(const struct iovec *iov, unsigned count)
{
    weft_loop *l = weft__tls_loop;
    if (!l)
        return -EPERM;
    if (!iov || count == 0 || count > BUFFERS_MAX)
        return -EINVAL;
    if (l->buffers)
        return -EBUSY;
    uint64_t total = 0;
    for (unsigned i = 0; i < count; i++) {
        uintptr_t base = (uintptr_t)iov[i].iov_base;
        if (!base || !iov[i].iov_len || iov[i].iov_len > BUFFER_BYTES_MAX || base + iov[i].iov_len < base)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    struct weft__buffers *set = malloc(sizeof *set + count * sizeof set->iov[0]);
    if (!set)
        return -ENOMEM;
    set->count = count;
    memcpy(set->iov, iov, count * sizeof set->iov[0]);
    if (l->backend->buffers_register) {
        int r = l->backend->buffers_register(l, set->iov, count);
        if (r < 0) {
            /* The kernel pins the pages and charges them to RLIMIT_MEMLOCK (unless the process has
             * CAP_IPC_LOCK): the one refusal a person has to act on. */
            if (r == -ENOMEM) {
                char limit[32];
                memlock_text(limit, sizeof limit);
                weft__log("weft_buffers_register: the kernel could not pin %llu bytes (ENOMEM); RLIMIT_MEMLOCK "
                          "is %s: raise it (ulimit -l) or register less\n",
                          (unsigned long long)total, limit);
            }
            free(set);
            return r;
        }
    }
    l->buffers = set;
    return 0;
}

int weft_buffers_unregister(void)
{
    weft_loop *l = weft__tls_loop;
    if (!l)
        return -EPERM;
    if (!l->buffers)
        return -ENXIO;
    if (l->backend->buffers_unregister) {
        int r = l->backend->buffers_unregister(l);
        if (r < 0)
            return r;
    }
    free(l->buffers);
    l->buffers = NULL;
    return 0;
}

void weft__buffers_free(weft_loop *l)
{
    free(l->buffers);
    l->buffers = NULL;
}

/* Fills op for a transfer through registered buffer index: 0, or -EINVAL unless [buf, buf + len) lies
 * inside that buffer of the loop's set. */
static int fixed_op(weft_loop *l, weft__op *op, int opcode, int fd, const void *buf, size_t len, int64_t offset,
                    unsigned index)
{
    const struct weft__buffers *set = l->buffers;
    if (!set || index >= set->count)
        return -EINVAL;
    uintptr_t start = (uintptr_t)set->iov[index].iov_base, end = start + set->iov[index].iov_len;
    uintptr_t at = (uintptr_t)buf;
    if (at < start || at > end || len > end - at)
        return -EINVAL;
    *op = (weft__op){.opcode = (uint8_t)opcode, .fd = fd, .buf = (void *)buf, .len = len, .off = offset,
                     .arg.buf_index = index};
    return 0;
}

static ssize_t fixed_call(int opcode, int fd, const void *buf, size_t len, int64_t offset, unsigned index)
{
    weft_task *t = weft__current();
    if (!t)
        return -EPERM;
    weft__op op;
    int r = fixed_op(t->loop, &op, opcode, fd, buf, len, offset, index);
    if (r < 0)
        return r;
    return weft__io_wait(t, &op);
}

static weft_future *fixed_async(int opcode, int fd, const void *buf, size_t len, int64_t offset, unsigned index)
{
    weft_loop *l = weft__tls_loop;
    if (!l) {
        errno = EPERM;
        return NULL;
    }
    weft__op op;
    int r = fixed_op(l, &op, opcode, fd, buf, len, offset, index);
    if (r < 0) {
        errno = -r;
        return NULL;
    }
    return weft__io_async(&op);
}

ssize_t weft_read_fixed(int fd, void *buf, size_t len, int64_t offset, unsigned index)
{
    return fixed_call(WEFT__OP_READ_FIXED, fd, buf, len, offset, index);
}

ssize_t weft_write_fixed(int fd, const void *buf, size_t len, int64_t offset, unsigned index)
{
    return fixed_call(WEFT__OP_WRITE_FIXED, fd, buf, len, offset, index);
}

weft_future *weft_read_fixed_async(int fd, void *buf, size_t len, int64_t offset, unsigned index)
{
    return fixed_async(WEFT__OP_READ_FIXED, fd, buf, len, offset, index);
}

weft_future *weft_write_fixed_async(int fd, const void *buf, size_t len, int64_t offset, unsigned index)
{
    return fixed_async(WEFT__OP_WRITE_FIXED, fd, buf, len, offset, index);
}
