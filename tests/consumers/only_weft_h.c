/*
 * Includes weft.h and nothing else, in strict C11 with no feature-test macro, and uses every type
 * its declarations name and every errno its comments promise: a user's file that includes only
 * weft.h must compile. Run, it checks that the errno values are distinct and positive.
 */
#include <weft.h>

static const int documented_errors[] = {
    E2BIG,   EAGAIN, EALREADY, EBADF,  EBUSY,       ECANCELED, ECONNREFUSED, ECONNRESET, EDEADLK, EFAULT, EINVAL,
    EMFILE,  ENFILE, ENOENT,   ENOMEM, ENETUNREACH, ENOSYS,    EPERM,        EPIPE,      ESRCH,   ETIMEDOUT,
};

/* The parameter types of the calls that take system types, through the pointers a user might keep. */
static int uses_the_types(void)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct iovec iov = {.iov_base = &ss, .iov_len = sizeof ss};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    mode_t mode = 0644;
    ssize_t (*recvmsg_fn)(int, struct msghdr *, int) = weft_recvmsg;
    int (*accept_fn)(int, struct sockaddr *, socklen_t *, int) = weft_accept;
    ssize_t (*readv_fn)(int, const struct iovec *, int, int64_t) = weft_readv;
    int (*openat_fn)(int, const char *, int, mode_t) = weft_openat;
    int (*statx_fn)(int, const char *, int, unsigned, struct statx *) = weft_statx;
    weft_config cfg = WEFT_CONFIG_INIT;
    weft_stats st;
    return (recvmsg_fn && accept_fn && readv_fn && openat_fn && statx_fn && msg.msg_iovlen == 1 && len > 0 &&
            mode == 0644 && cfg.size == sizeof cfg && sizeof st > 0 && WEFT_VERSION_NUMBER >= 0)
               ? 0
               : 1;
}

int main(void)
{
    int n = (int)(sizeof documented_errors / sizeof documented_errors[0]);
    for (int i = 0; i < n; i++) {
        if (documented_errors[i] <= 0)
            return 1;
        for (int j = 0; j < i; j++)
            if (documented_errors[i] == documented_errors[j])
                return 1;
    }
    return uses_the_types();
}
