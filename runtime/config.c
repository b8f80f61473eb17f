/*
 * The loop's configuration: the caller's weft_config, overridden by the WEFT_* environment
 * variables, with defaults in place of zeros.
 */
#include "internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define WEFT__DEFAULT_RING_ENTRIES 256
/*
 * 256 KiB of address space per task, of which a task touches only what it uses (MAP_NORESERVE): deep
 * enough for getaddrinfo, printf-heavy code and TLS libraries, and the x86-64 address space holds a
 * million of them many times over. Memory per sleeping task stays a page or two.
 */
#define WEFT__DEFAULT_STACK_SIZE (256 * 1024)
#define WEFT__MIN_STACK_SIZE (16 * 1024)
/* asyncio's slow_callback_duration is 100 ms too. */
#define WEFT__DEFAULT_SLOW_NS (100 * 1000000ull)

static uint64_t env_u64(const char *name, uint64_t fallback, bool size_suffix)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    if (end == v)
        return fallback;
    if (size_suffix && (*end == 'k' || *end == 'K'))
        n *= 1024, end++;
    else if (size_suffix && (*end == 'm' || *end == 'M'))
        n *= 1024 * 1024, end++;
    return *end ? fallback : n;
}

/* weft 0.1's weft_config, backend to submit_batch: what a size of 0 stands for (see weft.h). */
#define CONFIG_SIZE_0_1 (offsetof(weft_config, submit_batch) + sizeof(unsigned))

/*
 * Copies as much of the caller's configuration as its size says it has, zeros (defaults) beyond. A
 * caller built against a newer header may pass a larger structure: fields this library lacks are
 * fine left zero, and refused when set, as the library cannot do what they ask (the rule Linux
 * applies to openat2's and clone3's growing structures).
 */
static int config_copy(weft_config *out, const weft_config *in)
{
    memset(out, 0, sizeof *out);
    if (!in)
        return 0;
    size_t size = in->size ? in->size : CONFIG_SIZE_0_1;
    if (size < CONFIG_SIZE_0_1) {
        weft__log("weft_config.size is %zu: set it to 0 or sizeof(weft_config) (WEFT_CONFIG_INIT)\n", size);
        return -EINVAL;
    }
    if (size > sizeof *out) {
        const unsigned char *beyond = (const unsigned char *)in + sizeof *out;
        for (size_t i = 0; i < size - sizeof *out; i++) {
            if (beyond[i]) {
                weft__log("weft_config of %zu bytes sets a field at byte %zu that weft %s lacks (it knows %zu "
                          "bytes): the program was built against a newer weft.h than the library it runs with\n",
                          size, sizeof *out + i, weft_version(), sizeof *out);
                return -E2BIG;
            }
        }
        size = sizeof *out;
    }
    memcpy(out, in, size);
    return 0;
}

int weft__config_resolve(weft_config *out, const weft_config *in)
{
    int r = config_copy(out, in);
    if (r < 0)
        return r;
    out->size = sizeof *out;
    const char *backend = getenv("WEFT_BACKEND");
    if (backend && *backend)
        out->backend = backend;
    if (out->backend && strcmp(out->backend, "io_uring") != 0 && strcmp(out->backend, "epoll") != 0)
        return -EINVAL;
    out->ring_entries = (unsigned)env_u64("WEFT_RING_ENTRIES", out->ring_entries, false);
    if (!out->ring_entries)
        out->ring_entries = WEFT__DEFAULT_RING_ENTRIES;
    out->stack_size = env_u64("WEFT_STACK_SIZE", out->stack_size, true);
    if (!out->stack_size)
        out->stack_size = WEFT__DEFAULT_STACK_SIZE;
    if (out->stack_size < WEFT__MIN_STACK_SIZE)
        out->stack_size = WEFT__MIN_STACK_SIZE;
    out->executor_threads = (unsigned)env_u64("WEFT_EXECUTOR_THREADS", out->executor_threads, false);
    out->executor_queue = env_u64("WEFT_EXECUTOR_QUEUE", out->executor_queue, false);
    out->submit_batch = (unsigned)env_u64("WEFT_SUBMIT_BATCH", out->submit_batch, false);
    uint64_t poll_us = env_u64("WEFT_IDLE_POLL_US", UINT64_MAX, false);
    if (poll_us != UINT64_MAX)
        out->idle_poll_ns = poll_us > UINT64_MAX / 1000u ? UINT64_MAX : poll_us * 1000u;
    uint64_t slow_ms = env_u64("WEFT_SLOW_MS", 0, false);
    if (slow_ms)
        out->slow_task_ns = slow_ms * 1000000u;
    if (!out->slow_task_ns)
        out->slow_task_ns = WEFT__DEFAULT_SLOW_NS;
    return 0;
}
