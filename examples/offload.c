/*
 * offload — CPU work on the executor keeps the loop free; the same work on the loop blocks it. The
 * seeds' "a synchronous call inside a coroutine blocks the event loop", shown with numbers.
 *
 *   offload [--inline] [--mib 256] [--slow-ms 100] [--backend io_uring|epoll]
 *
 * A ticker task wants to run every 10 ms; a task named "hash" computes the 64-bit FNV-1a hash of a
 * buffer of --mib MiB. By default the hash runs on the executor (weft_offload, asyncio.to_thread):
 * the ticker keeps its period while it runs. With --inline it runs in the task itself, on the loop:
 * the ticker cannot run until it ends, weft's watchdog says on stderr that task 'hash' is blocking
 * the loop (after --slow-ms, weft_config.slow_task_ns), and the ticker reports its late and missed
 * ticks. Prints:
 *
 *   hash: 256 MiB, fnv1a64 0x..., 302.51 ms, on the executor
 *   ticker: 36 ticks, 30 while hashing, 0 late by more than 2 ms, worst 0.29 ms late, 0 missed
 *   watchdog reports: 0
 *
 * and with --inline "on the loop (--inline)", "0 while hashing", late ticks, missed ticks and at
 * least one watchdog report.
 */
#include "example.h"

#include <getopt.h>
#include <string.h>

#define PERIOD_NS (10 * 1000 * 1000ull)
#define LATE_NS (2 * 1000 * 1000ull)

static struct {
    bool inline_hash;
    size_t bytes;
    unsigned char *buf;
    uint64_t hash;
} job;

static struct ticker {
    unsigned long ticks, late, missed;
    uint64_t worst_ns;
} tick;

/* FNV-1a, 64 bits, a byte at a time: simple, and slow enough to be the CPU-bound job. */
static intptr_t hash_job(void *arg)
{
    (void)arg;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < job.bytes; i++) {
        h ^= job.buf[i];
        h *= 0x100000001b3ull;
    }
    job.hash = h;
    return 0;
}

/* Runs every PERIOD_NS until cancelled, on a fixed schedule: a tick that wakes more than LATE_NS
 * after its time is late, and the times it slept through are missed ticks (skipped, not made up). */
static intptr_t ticker(void *arg)
{
    (void)arg;
    uint64_t next = weft_now() + PERIOD_NS;
    for (;;) {
        uint64_t now = weft_now();
        if (next > now && weft_sleep(next - now) < 0)
            return 0;
        uint64_t woke = weft_now();
        uint64_t late = woke - next;
        tick.ticks++;
        if (late > LATE_NS)
            tick.late++;
        if (late > tick.worst_ns)
            tick.worst_ns = late;
        uint64_t skipped = late / PERIOD_NS;
        tick.missed += skipped;
        next += (skipped + 1) * PERIOD_NS;
    }
}

static unsigned long ticks_while_hashing;

static intptr_t hash_task(void *arg)
{
    (void)arg;
    unsigned long before = tick.ticks;
    /* Inline is the mistake the watchdog is there to catch: a loop that cannot turn for the whole job. */
    intptr_t r = job.inline_hash ? hash_job(NULL) : weft_offload(hash_job, NULL);
    ticks_while_hashing = tick.ticks - before;
    return r;
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn_named("ticker", ticker, NULL);
    if (!t)
        return -errno;
    weft_sleep(3 * PERIOD_NS); /* a few ticks before */
    uint64_t start = weft_now();
    weft_task *h = weft_spawn_named("hash", hash_task, NULL);
    intptr_t r = h ? weft_join(h) : -errno;
    uint64_t ns = weft_now() - start;
    weft_sleep(3 * PERIOD_NS); /* and a few after, the first of which sees how late it is */
    weft_cancel(t);
    weft_join(t);
    if (r < 0)
        return r;
    printf("hash: %zu MiB, fnv1a64 0x%016llx, %.2f ms, %s\n", job.bytes >> 20, (unsigned long long)job.hash,
           (double)ns / 1e6, job.inline_hash ? "on the loop (--inline)" : "on the executor");
    printf("ticker: %lu ticks, %lu while hashing, %lu late by more than %llu ms, worst %.2f ms late, %lu missed\n",
           tick.ticks, ticks_while_hashing, tick.late, LATE_NS / 1000000, (double)tick.worst_ns / 1e6, tick.missed);
    weft_stats st;
    weft_stats_get(&st);
    printf("watchdog reports: %llu\n", (unsigned long long)st.slow_task_reports);
    return 0;
}

int main(int argc, char **argv)
{
    weft_config cfg = WEFT_CONFIG_INIT;
    size_t mib = 256;
    static const struct option longopts[] = {
        {"inline", no_argument, NULL, 'i'}, {"mib", required_argument, NULL, 'm'},
        {"slow-ms", required_argument, NULL, 's'}, {"backend", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'i': job.inline_hash = true; break;
        case 'm': mib = example_number("offload", "--mib", optarg, 1); break;
        case 's': cfg.slow_task_ns = example_number("offload", "--slow-ms", optarg, 1) * 1000000ull; break;
        case 'b': cfg.backend = optarg; break;
        default:
            fprintf(stderr, "usage: offload [--inline] [--mib N] [--slow-ms MS] [--backend io_uring|epoll]\n");
            return 2;
        }
    }
    if (mib > 16384) {
        fprintf(stderr, "offload: --mib takes at most 16384\n");
        return 2;
    }
    job.bytes = mib << 20;
    job.buf = malloc(job.bytes);
    if (!job.buf) {
        fprintf(stderr, "offload: no memory for %zu MiB\n", mib);
        return 1;
    }
    /* Made before the loop starts, so only the hash is timed. */
    for (size_t i = 0; i < job.bytes; i++)
        job.buf[i] = (unsigned char)(i * 2654435761u >> 13);
    int rc = example_run("offload", &cfg, main_task, NULL);
    free(job.buf);
    return rc;
}
