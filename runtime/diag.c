/*
 * Diagnostics: the library's version, error names, counters and the log line format.
 */
#include "internal.h"

#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

void weft__log(const char *fmt, ...)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "weft: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    /* One write, so lines from several loops do not interleave. */
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

const char *weft_version(void)
{
    /* The header this file is compiled with is the library's own: its version is the library's. */
    return WEFT_VERSION_STRING;
}

const char *weft_strerror(int err)
{
    /* Negated as unsigned: -INT_MIN is not an int. */
    unsigned code = err < 0 ? 0u - (unsigned)err : (unsigned)err;
    if (code == 0)
        return "Success";
    if (code > 4095)
        return "Unknown error";
    /* strerrordesc_np returns a static string, unlike strerror, and NULL for unknown codes. */
    const char *s = strerrordesc_np((int)code);
    return s ? s : "Unknown error";
}

int weft_loop_stats_sized(const weft_loop *l, weft_stats *out, size_t size)
{
    if (!l || !out || size < WEFT__STATS_SIZE_0_1)
        return -EINVAL;
    weft_stats st = l->stats;
    st.stacks_mapped = l->stacks.mapped;
    st.stacks_trimmed = l->stacks.trims;
    st.slow_task_reports = atomic_load_explicit(&((weft_loop *)l)->slow_reports, memory_order_relaxed);
    st.recv_kept_now = weft__rx_kept_all(l);
    st.wake_writes = atomic_load_explicit(&((weft_loop *)l)->wake_writes, memory_order_relaxed);
    /* A caller built against a newer header has counters this library does not keep: they read 0. */
    if (size > sizeof st) {
        memset((char *)out + sizeof st, 0, size - sizeof st);
        size = sizeof st;
    }
    memcpy(out, &st, size);
    return 0;
}

/* The header makes these names macros that pass the caller's size; the functions serve callers that
 * reach the symbols themselves (function pointers, other languages) with the 0.1 structure. */
int(weft_loop_stats)(const weft_loop *l, weft_stats *out)
{
    return weft_loop_stats_sized(l, out, WEFT__STATS_SIZE_0_1);
}

int weft_stats_get_sized(weft_stats *out, size_t size)
{
    if (!out)
        return -EINVAL;
    if (!weft__tls_loop)
        return -EPERM;
    return weft_loop_stats_sized(weft__tls_loop, out, size);
}

int(weft_stats_get)(weft_stats *out)
{
    return weft_stats_get_sized(out, WEFT__STATS_SIZE_0_1);
}
